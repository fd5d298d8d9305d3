//! Environment and stdin to an invocation, and each refusal with its code.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::*;

const CID: &str = "c0ffee";

fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn attach_env(command: &str) -> BTreeMap<String, String> {
    env_of(&[
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", CID),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ])
}

fn parse_with(env: &BTreeMap<String, String>, stdin: &[u8]) -> Result<Invocation, CniError> {
    parse(&|k: &str| env.get(k).cloned(), stdin)
}

fn conf() -> serde_json::Value {
    json!({"cniVersion": "1.1.0", "name": "lab", "type": "vxnet", "network": "shop"})
}

fn with(mut c: serde_json::Value, key: &str, value: serde_json::Value) -> Vec<u8> {
    c[key] = value;
    serde_json::to_vec(&c).expect("json")
}

fn bytes(c: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(c).expect("json")
}

fn code_of(r: Result<Invocation, CniError>) -> u32 {
    match r {
        Err(e) => e.code.number(),
        Ok(i) => panic!("expected an error, got {i:?}"),
    }
}

#[test]
fn add_with_defaults() {
    let inv = parse_with(&attach_env("ADD"), &bytes(&conf())).expect("ADD");
    let Invocation::Add {
        conf,
        attachment,
        netns,
        options,
    } = inv
    else {
        panic!("not an ADD: {inv:?}");
    };
    assert_eq!(conf.cni_version, "1.1.0");
    assert_eq!(conf.name, "lab");
    assert_eq!(conf.network, "shop");
    assert_eq!(conf.socket, PathBuf::from(DEFAULT_SOCKET));
    assert_eq!(conf.prev_result, None);
    assert_eq!(attachment.container_id, CID);
    assert_eq!(attachment.ifname, "eth0");
    assert_eq!(netns, PathBuf::from("/run/netns/c1"));
    assert_eq!(options, AddOptions::default());
}

#[test]
fn every_command_parses() {
    let c = with(conf(), "socket", json!("/tmp/x.sock"));
    for command in ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] {
        let inv = parse_with(&attach_env(command), &c).expect(command);
        let ok = match (command, &inv) {
            ("ADD", Invocation::Add { conf, .. })
            | ("DEL", Invocation::Del { conf, .. })
            | ("CHECK", Invocation::Check { conf, .. })
            | ("STATUS", Invocation::Status { conf })
            | ("GC", Invocation::Gc { conf, .. }) => conf.socket == Path::new("/tmp/x.sock"),
            ("VERSION", Invocation::Version { cni_version }) => cni_version == "1.1.0",
            _ => false,
        };
        assert!(ok, "{command}: {inv:?}");
    }
    // STATUS, GC and VERSION need no attachment variables.
    for command in ["STATUS", "GC", "VERSION"] {
        let env = env_of(&[("CNI_COMMAND", command)]);
        assert!(parse_with(&env, &bytes(&conf())).is_ok(), "{command}");
    }
}

#[test]
fn environment_errors_are_code_4_and_name_the_variables() {
    let env = env_of(&[]);
    let err = parse_with(&env, &bytes(&conf())).expect_err("no command");
    assert_eq!(err.code, Code::InvalidEnvironment);
    assert!(err.msg.contains("CNI_COMMAND"), "{err}");

    let err = parse_with(&env_of(&[("CNI_COMMAND", "FROB")]), b"{}").expect_err("unknown");
    assert_eq!(err.code, Code::InvalidEnvironment);

    let mut env = attach_env("ADD");
    env.remove("CNI_CONTAINERID");
    env.insert("CNI_NETNS".into(), String::new());
    let err = parse_with(&env, &bytes(&conf())).expect_err("missing");
    assert_eq!(err.code, Code::InvalidEnvironment);
    assert!(
        err.msg.contains("[CNI_CONTAINERID,CNI_NETNS]"),
        "both named: {err}"
    );

    // DEL needs no namespace.
    let mut env = attach_env("DEL");
    env.remove("CNI_NETNS");
    assert!(matches!(
        parse_with(&env, &bytes(&conf())),
        Ok(Invocation::Del { netns: None, .. })
    ));

    for (var, value) in [
        ("CNI_CONTAINERID", "-leading-dash"),
        ("CNI_CONTAINERID", "has space"),
        ("CNI_IFNAME", "sixteen-chars-xx"),
        ("CNI_IFNAME", "a/b"),
        ("CNI_IFNAME", "a:b"),
        ("CNI_IFNAME", ".."),
        ("CNI_NETNS", "relative/path"),
        ("CNI_ARGS", "IP=10.0.0.1;junk"),
        ("CNI_ARGS", "IP=not-an-ip"),
    ] {
        let mut env = attach_env("ADD");
        env.insert(var.into(), value.into());
        let err = parse_with(&env, &bytes(&conf())).expect_err(value);
        assert_eq!(err.code, Code::InvalidEnvironment, "{var}={value}: {err}");
        assert!(err.msg.contains(var), "{var}: {err}");
    }
}

#[test]
fn stdin_errors() {
    let env = attach_env("ADD");
    assert_eq!(code_of(parse_with(&env, b"{bad")), 6);
    assert_eq!(code_of(parse_with(&env, b"")), 6);
    assert_eq!(code_of(parse_with(&env, b"[1]")), 6);
    assert_eq!(
        code_of(parse_with(&env, &with(conf(), "network", json!(5)))),
        6
    );

    // Versions.
    let mut c = conf();
    c.as_object_mut().map(|m| m.remove("cniVersion"));
    assert_eq!(code_of(parse_with(&env, &bytes(&c))), 1);
    assert_eq!(
        code_of(parse_with(
            &env,
            &with(conf(), "cniVersion", json!("0.2.0"))
        )),
        1
    );
    assert_eq!(
        code_of(parse_with(
            &env,
            &with(conf(), "cniVersion", json!("2.0.0"))
        )),
        1
    );
    let old = with(conf(), "cniVersion", json!("0.3.1"));
    assert!(parse_with(&env, &old).is_ok(), "ADD exists in 0.3.1");
    assert_eq!(code_of(parse_with(&attach_env("CHECK"), &old)), 1);
    let v1 = with(conf(), "cniVersion", json!("1.0.0"));
    assert!(parse_with(&attach_env("CHECK"), &v1).is_ok());
    let err = parse_with(&attach_env("GC"), &v1).expect_err("GC in 1.0.0");
    assert_eq!(err.code, Code::IncompatibleVersion);
    assert!(err.msg.contains("GC"), "{err}");
    assert_eq!(code_of(parse_with(&attach_env("STATUS"), &v1)), 1);

    // Configuration.
    assert_eq!(
        code_of(parse_with(&env, &with(conf(), "name", json!("")))),
        7
    );
    let mut c = conf();
    c.as_object_mut().map(|m| m.remove("network"));
    let err = parse_with(&env, &bytes(&c)).expect_err("no network");
    assert_eq!(err.code, Code::InvalidConfig);
    assert!(err.msg.contains("network"), "{err}");
    let err =
        parse_with(&env, &with(conf(), "ipam", json!({"type": "host-local"}))).expect_err("ipam");
    assert_eq!(err.code, Code::UnsupportedField);
    assert!(
        err.msg.contains("ipam") && err.msg.contains("host-local"),
        "{err}"
    );
}

#[test]
fn capability_arguments_and_cni_args() {
    let rc = json!({
        "ips": ["10.7.0.9/24"],
        "portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"},
        ],
        "aliases": {"lab": ["www", "bad.name", "www"], "other": ["x"]},
    });
    let mut env = attach_env("ADD");
    env.insert(
        "CNI_ARGS".into(),
        "IgnoreUnknown=1;IP=10.7.0.3;K8S_POD_NAME=web".into(),
    );
    let inv = parse_with(&env, &with(conf(), "runtimeConfig", rc)).expect("ADD");
    let Invocation::Add { options, .. } = inv else {
        panic!("not an ADD");
    };
    assert_eq!(
        options.ipv4,
        Some(Ipv4Addr::new(10, 7, 0, 9)),
        "the capability wins"
    );
    assert_eq!(options.aliases, ["web", "www"]);
    let shown: Vec<String> = options.ports.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["0.0.0.0:8080:80/tcp", "127.0.0.1:5353:53/udp"]);

    let inv = parse_with(&env, &bytes(&conf())).expect("ADD");
    let Invocation::Add { options, .. } = inv else {
        panic!("not an ADD");
    };
    assert_eq!(
        options.ipv4,
        Some(Ipv4Addr::new(10, 7, 0, 3)),
        "CNI_ARGS IP"
    );

    for bad in [
        json!({"ips": ["fd00::5/64"]}),
        json!({"portMappings": [{"hostPort": 0, "containerPort": 80}]}),
        json!({"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}),
        json!({"portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": "::1"}]}),
    ] {
        let r = parse_with(
            &attach_env("ADD"),
            &with(conf(), "runtimeConfig", bad.clone()),
        );
        assert_eq!(code_of(r), 7, "{bad}");
    }
}

#[test]
fn prev_result_and_valid_attachments() {
    let prev = json!({"cniVersion": "1.1.0", "interfaces": []});
    let inv = parse_with(
        &attach_env("CHECK"),
        &with(conf(), "prevResult", prev.clone()),
    )
    .expect("CHECK");
    assert!(matches!(inv, Invocation::Check { conf, .. } if conf.prev_result == Some(prev)));

    let valid =
        json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "net1"}]);
    let inv = parse_with(
        &env_of(&[("CNI_COMMAND", "GC")]),
        &with(conf(), "cni.dev/valid-attachments", valid),
    )
    .expect("GC");
    let Invocation::Gc { valid, .. } = inv else {
        panic!("not a GC");
    };
    assert_eq!(
        valid,
        [
            Attachment {
                container_id: "a".into(),
                ifname: "eth0".into()
            },
            Attachment {
                container_id: "b".into(),
                ifname: "net1".into()
            }
        ]
    );
}

#[test]
fn version_reads_no_configuration() {
    let env = env_of(&[("CNI_COMMAND", "VERSION")]);
    for (stdin, want) in [
        (&b"{\"cniVersion\": \"0.4.0\"}"[..], "0.4.0"),
        (b"", LATEST_VERSION),
        (b"not json", LATEST_VERSION),
    ] {
        assert_eq!(
            parse_with(&env, stdin),
            Ok(Invocation::Version {
                cni_version: want.into()
            })
        );
    }
    assert_eq!(
        peek_version(br#"{"cniVersion": "1.0.0", "name": 5}"#),
        Some("1.0.0".into())
    );
    assert_eq!(peek_version(b"{"), None);
}
