//! Names (README, "Names"): each network's gateway answers DNS for its endpoints' names and
//! aliases cluster-wide, over UDP and TCP, with PTR for their addresses; other names go to the
//! upstream resolver (`--dns`); a removed endpoint stops resolving; `ip netns exec` targets get
//! a `resolv.conf` pointing at the gateway, removed with the endpoint.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::lab::container::Container;
use vxnet_tests::lab::topology::UNDERLAY_GATEWAY;
use vxnet_tests::who::serve_dns;
use vxnet_tests::{require_root, wait_for, HostKind, Lab};

const GATEWAY: &str = "10.80.0.1";
const OUTSIDE_NAME: &str = "outside.example.";
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// `dig +short` from inside `c`, asking the gateway; the answer lines.
fn dig(c: &Container, args: &[&str]) -> Vec<String> {
    let server = format!("@{GATEWAY}");
    let mut all = vec!["dig", "+short", "+time=2", "+tries=1", server.as_str()];
    all.extend_from_slice(args);
    let out = c
        .exec_ok(&all)
        .unwrap_or_else(|e| panic!("dig {args:?} in {}: {e:#}", c.name));
    out.lines().map(str::to_string).collect()
}

#[test]
fn the_gateway_answers_names_aliases_and_addresses_and_forwards_the_rest() {
    if !require_root() {
        return;
    }
    let lab = Lab::builder()
        .hosts(HostKind::Vxnet, 2)
        .daemon_arg("--dns")
        .daemon_arg(&UNDERLAY_GATEWAY.to_string())
        .build()
        .expect("two hosts");
    lab.form_cluster(&[0, 1]).expect("one cluster");
    serve_dns(
        lab.underlay_ns(),
        SocketAddrV4::new(UNDERLAY_GATEWAY, 53),
        OUTSIDE_NAME,
        OUTSIDE_IP,
    )
    .expect("upstream resolver");
    let (h0, h1) = (lab.host(0), lab.host(1));
    h0.vxnet_ok(&["network", "create", "--subnet", "10.80.0.0/24", "shop"]);
    h1.wait_networks(&["shop"], REPLICATION_TIMEOUT)
        .expect("network replicated");
    let inspect: serde_json::Value =
        serde_json::from_str(&h1.vxnet_ok(&["network", "inspect", "shop"])).expect("JSON");
    assert_eq!(inspect[0]["DNS"], GATEWAY, "{inspect}");
    let web = lab.container(0, "web").expect("container");
    let cli = lab.container(1, "cli").expect("container");
    h0.vxnet_ok(&[
        "network",
        "connect",
        "--name",
        "web",
        "--alias",
        "www",
        "--ip",
        "10.80.0.10",
        "shop",
        &web.ns,
    ]);
    h1.vxnet_ok(&["network", "connect", "--name", "cli", "shop", &cli.ns]);

    // Names of a container on another host, its alias, under the network's name, over TCP.
    let resolved = wait_for(
        "web resolving on h1",
        REPLICATION_TIMEOUT,
        Duration::from_millis(100),
        || Ok(Some(dig(&cli, &["web"])).filter(|a| !a.is_empty())),
    )
    .expect("web resolves");
    assert_eq!(resolved, ["10.80.0.10"]);
    assert_eq!(dig(&cli, &["WWW"]), ["10.80.0.10"], "aliases, in any case");
    assert_eq!(
        dig(&cli, &["+tcp", "web.shop"]),
        ["10.80.0.10"],
        "over TCP, under the network"
    );
    assert_eq!(
        dig(&cli, &["-x", "10.80.0.10"]),
        ["web."],
        "PTR names the endpoint"
    );
    assert_eq!(
        dig(&cli, &["web", "AAAA"]),
        Vec::<String>::new(),
        "no AAAA, and not forwarded"
    );
    // Everything else goes to the upstream.
    assert_eq!(dig(&cli, &[OUTSIDE_NAME]), [OUTSIDE_IP.to_string()]);
    assert_eq!(dig(&cli, &["nosuch.example"]), Vec::<String>::new());

    // The system resolver of an `ip netns exec` target uses the gateway.
    let conf = Path::new("/etc/netns").join(&cli.ns).join("resolv.conf");
    let text = std::fs::read_to_string(&conf).expect("resolv.conf written for cli");
    assert!(text.contains(&format!("nameserver {GATEWAY}")), "{text}");
    let hosts = cli
        .exec_ok(&["getent", "hosts", "www"])
        .expect("getent hosts www");
    assert!(hosts.starts_with("10.80.0.10 "), "{hosts}");

    // A removed endpoint stops resolving as soon as the removal reaches the host.
    h0.vxnet_ok(&["network", "disconnect", "shop", &web.ns]);
    wait_for(
        "web to stop resolving on h1",
        REPLICATION_TIMEOUT,
        Duration::from_millis(50),
        || Ok(dig(&cli, &["web"]).is_empty().then_some(())),
    )
    .expect("web stops resolving");
    // cli's resolv.conf leaves with cli's endpoint; web's never existed beyond it.
    h1.vxnet_ok(&["network", "disconnect", "shop", &cli.ns]);
    assert!(!conf.exists(), "{} left behind", conf.display());
}
