use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    assert!(parse_duration("0").is_err());
    assert!(parse_duration("fast").is_err());
    assert!(parse_duration("10h").is_err());
}

#[test]
fn labels() {
    assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
    assert!(parse_label("=b").is_err());
    assert!(parse_label("ab").is_err());
}

#[test]
fn the_contract_parses() {
    let cli = Cli::try_parse_from([
        "vxnet",
        "network",
        "create",
        "--subnet",
        "10.10.0.0/24",
        "--vni",
        "4100",
        "--peer",
        "198.18.0.12",
        "--label",
        "env=lab",
        "net1",
    ])
    .expect("parses");
    let Command::Network(NetworkCommand::Create(c)) = cli.command else {
        panic!("not create")
    };
    assert_eq!(c.vni, Some(4100));
    assert_eq!(c.peers, vec![Ipv4Addr::new(198, 18, 0, 12)]);
    assert!(Cli::try_parse_from(["vxnet", "network", "create", "--vni", "16777216", "n"]).is_err());
    assert!(
        Cli::try_parse_from(["vxnet", "network", "create", "--subnet", "10.0.0.0/33", "n"])
            .is_err()
    );
    assert!(Cli::try_parse_from(["vxnet", "network", "ls", "-q", "--format", "json"]).is_ok());
    let cli =
        Cli::try_parse_from(["vxnet", "cni", "install", "--network", "shop"]).expect("parses");
    let Command::Cni(CniCommand::Install(i)) = cli.command else {
        panic!("not cni install")
    };
    assert_eq!(
        (
            i.bin_dir.as_path(),
            i.conf_dir.as_path(),
            i.network.as_deref()
        ),
        (
            std::path::Path::new("/opt/cni/bin"),
            std::path::Path::new("/etc/cni/net.d"),
            Some("shop")
        )
    );
    assert!(
        Cli::try_parse_from(["vxnet", "network", "connect", "--ip", "10.0.0.5", "n", "pid:1"])
            .is_ok()
    );
}

#[test]
fn kernel_takes_major_minor() {
    let daemon = |extra: &[&str]| {
        let mut argv = vec!["vxnet", "daemon", "--advertise-addr", "198.18.0.10"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Daemon(d) => d.kernel,
            _ => panic!("not daemon"),
        })
    };
    assert_eq!(daemon(&[]).expect("parses"), None);
    assert_eq!(
        daemon(&["--kernel", "3.10"]).expect("parses"),
        Some(KernelVersion::new(3, 10))
    );
    assert_eq!(
        daemon(&["--kernel", "5.12"]).expect("parses"),
        Some(KernelVersion::new(5, 12))
    );
    for bad in ["3", "3.10.0", "three", "3.x", ""] {
        assert!(
            daemon(&["--kernel", bad]).is_err(),
            "--kernel {bad:?} parsed"
        );
    }
}
