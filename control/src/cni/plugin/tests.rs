//! Every command against a fake daemon and fake namespaces: results, refusals, and the error
//! code of each failure path.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use vxnet_proto::types::MacAddr;
use vxnet_proto::{
    request, Cidr, Endpoint, ErrorCode, FdbRow, Member, Network, NetworkView, PortMapping, Response,
};

use super::*;
use crate::cni::invocation::{parse, Invocation};

const LOCAL: &str = "host-a";
const REMOTE: &str = "host-b";
const NETNS: &str = "/run/netns/c1";
const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A daemon with one network `shop` (10.7.0.0/24, gateway .1, MTU 1450) and namespaces that
/// exist unless said otherwise; connect makes the interface the daemon would.
struct Fake {
    views: Vec<NetworkView>,
    leader: bool,
    /// Whether the leader hears from the second of the two voters.
    peer_reachable: bool,
    down: bool,
    /// Changes and fresh reads answer UNAVAILABLE, as without quorum.
    no_quorum: bool,
    netns: BTreeMap<PathBuf, Netns>,
    interfaces: BTreeMap<(PathBuf, String), Interface>,
    /// Disconnects of these endpoint ids fail.
    failing: Vec<String>,
    requests: Vec<request::Kind>,
}

impl Fake {
    fn new() -> Fake {
        let network = Network {
            id: "f".repeat(64),
            name: "shop".into(),
            driver: "overlay".into(),
            vni: 256,
            subnet: Some(Cidr {
                addr: u32::from(Ipv4Addr::new(10, 7, 0, 0)),
                prefix_len: 24,
            }),
            gateway: u32::from(Ipv4Addr::new(10, 7, 0, 1)),
            mtu: 1450,
            ..Default::default()
        };
        Fake {
            views: vec![NetworkView {
                network: Some(network),
                ..Default::default()
            }],
            leader: true,
            peer_reachable: true,
            down: false,
            no_quorum: false,
            netns: BTreeMap::new(),
            interfaces: BTreeMap::new(),
            failing: Vec::new(),
            requests: Vec::new(),
        }
    }

    fn view(&mut self, name: &str) -> Result<&mut NetworkView, DaemonError> {
        self.views
            .iter_mut()
            .find(|v| {
                v.network
                    .as_ref()
                    .is_some_and(|n| n.name == name || n.id == name)
            })
            .ok_or_else(|| DaemonError::Answered {
                message: format!("no network named {name:?}; see `vxnet network ls`"),
                code: ErrorCode::NotFound,
            })
    }

    fn endpoints(&self) -> &[Endpoint] {
        &self.views[0].endpoints
    }

    /// An endpoint made by someone else (another host, the CLI).
    fn add_endpoint(&mut self, id: &str, name: &str, host: &str, ip: [u8; 4]) {
        let ip = Ipv4Addr::from(ip);
        self.views[0].endpoints.push(Endpoint {
            id: id.into(),
            name: name.into(),
            network_id: "f".repeat(64),
            host_id: host.into(),
            mac: MacAddr::for_ipv4(ip).0.to_vec(),
            ipv4: u32::from(ip),
            ifname: "eth0".into(),
            target: format!("/run/netns/{name}"),
            ..Default::default()
        });
    }

    fn unavailable() -> DaemonError {
        DaemonError::Answered {
            message: "the cluster has no leader; retry when a majority of voters is up".into(),
            code: ErrorCode::Unavailable,
        }
    }
}

impl PluginIo for Fake {
    fn call(
        &mut self,
        _socket: &Path,
        kind: request::Kind,
        timeout: Duration,
    ) -> Result<Response, DaemonError> {
        let status = matches!(kind, request::Kind::ClusterMembers(_))
            || self
                .requests
                .last()
                .is_some_and(|k| matches!(k, request::Kind::ClusterMembers(_)));
        assert_eq!(
            timeout,
            if status {
                STATUS_TIMEOUT
            } else {
                REQUEST_TIMEOUT
            },
            "{kind:?}"
        );
        self.requests.push(kind.clone());
        if self.down {
            return Err(DaemonError::Unreachable("connection refused".into()));
        }
        let no_quorum = self.no_quorum;
        let gate = |r: Response| {
            if no_quorum {
                Err(Fake::unavailable())
            } else {
                Ok(r)
            }
        };
        match kind {
            request::Kind::NetworkInspect(r) => {
                let view = self.view(&r.networks[0])?.clone();
                gate(Response {
                    networks: vec![view],
                    ..Default::default()
                })
            }
            request::Kind::NetworkConnect(r) => {
                if no_quorum {
                    return Err(Fake::unavailable());
                }
                let view = self.view(&r.network)?;
                let id = r.endpoint_id.unwrap_or_default();
                let name = r.name.unwrap_or_default();
                let conflict = |message: String| DaemonError::Answered {
                    message,
                    code: ErrorCode::Conflict,
                };
                if view.endpoints.iter().any(|e| e.id == id) {
                    return Err(conflict(format!("endpoint id {id} is in use")));
                }
                if view.endpoints.iter().any(|e| e.name == name) {
                    return Err(conflict(format!("endpoint name {name} is in use")));
                }
                let ip = match r.ipv4 {
                    Some(ip) if view.endpoints.iter().any(|e| e.ipv4 == ip) => {
                        return Err(conflict(format!(
                            "address {} is in use",
                            Ipv4Addr::from(ip)
                        )))
                    }
                    Some(ip) => Ipv4Addr::from(ip),
                    None => Ipv4Addr::new(10, 7, 0, 2 + view.endpoints.len() as u8),
                };
                let ep = Endpoint {
                    id,
                    name,
                    network_id: "f".repeat(64),
                    host_id: LOCAL.into(),
                    mac: MacAddr::for_ipv4(ip).0.to_vec(),
                    ipv4: u32::from(ip),
                    aliases: r.aliases,
                    ifname: r.ifname.unwrap_or_default(),
                    target: r.target,
                    ports: r.ports,
                };
                view.endpoints.push(ep.clone());
                self.interfaces.insert(
                    (PathBuf::from(&ep.target), ep.ifname.clone()),
                    Interface {
                        mac: Some(MacAddr::for_ipv4(ip)),
                        addresses: vec![(ip, 24)],
                    },
                );
                Ok(Response {
                    endpoint: Some(ep),
                    ..Default::default()
                })
            }
            request::Kind::NetworkDisconnect(r) => {
                if no_quorum {
                    return Err(Fake::unavailable());
                }
                if self.failing.contains(&r.endpoint_id) {
                    return Err(DaemonError::Answered {
                        message: "cannot delete the veth".into(),
                        code: ErrorCode::Failed,
                    });
                }
                let view = self.view(&r.network)?;
                let at = view
                    .endpoints
                    .iter()
                    .position(|e| e.id == r.endpoint_id && e.host_id == LOCAL);
                if let Some(at) = at {
                    let ep = view.endpoints.remove(at);
                    self.interfaces
                        .remove(&(PathBuf::from(&ep.target), ep.ifname.clone()));
                }
                Ok(Response::default())
            }
            request::Kind::ClusterMembers(_) => Ok(Response {
                members: vec![
                    Member {
                        id: LOCAL.into(),
                        role: "voter".into(),
                        leader: self.leader,
                        reachable: true,
                        ..Default::default()
                    },
                    Member {
                        id: REMOTE.into(),
                        role: "voter".into(),
                        reachable: self.peer_reachable,
                        ..Default::default()
                    },
                    Member {
                        id: "host-c".into(),
                        role: "learner".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            request::Kind::Fdb(r) => {
                let view = self.view(&r.network)?;
                let fdb = view
                    .endpoints
                    .iter()
                    .map(|e| FdbRow {
                        mac: e.mac.clone(),
                        vtep: if e.host_id == LOCAL { 0 } else { 0xc612_000b },
                        kind: if e.host_id == LOCAL {
                            "local"
                        } else {
                            "control"
                        }
                        .into(),
                        age_seconds: 0,
                    })
                    .collect();
                Ok(Response {
                    fdb,
                    ..Default::default()
                })
            }
            other => panic!("the plugin sent an unexpected request: {other:?}"),
        }
    }

    fn netns(&mut self, path: &Path) -> Netns {
        self.netns.get(path).copied().unwrap_or(Netns::Other)
    }

    fn interface(&mut self, netns: &Path, ifname: &str) -> std::io::Result<Option<Interface>> {
        Ok(self
            .interfaces
            .get(&(netns.to_path_buf(), ifname.to_string()))
            .cloned())
    }
}

fn conf(version: &str, extra: Value) -> Vec<u8> {
    let mut c = json!({"cniVersion": version, "name": "lab", "type": "vxnet", "network": "shop"});
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    serde_json::to_vec(&c).expect("json")
}

fn run(
    io: &mut Fake,
    command: &str,
    vars: &[(&str, &str)],
    stdin: &[u8],
) -> Result<Output, CniError> {
    let mut env: BTreeMap<String, String> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", CID),
        ("CNI_NETNS", NETNS),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in vars {
        env.insert(k.to_string(), v.to_string());
    }
    let get = |k: &str| env.get(k).cloned();
    execute(parse(&get, stdin)?, io)
}

fn add(io: &mut Fake) -> Value {
    match run(io, "ADD", &[], &conf("1.1.0", json!({}))) {
        Ok(Output::Json(v)) => v,
        other => panic!("ADD: {other:?}"),
    }
}

fn code(r: Result<Output, CniError>) -> u32 {
    match r {
        Err(e) => e.code.number(),
        Ok(o) => panic!("expected an error, got {o:?}"),
    }
}

fn attachment(cid: &str, ifname: &str) -> Attachment {
    Attachment {
        container_id: cid.into(),
        ifname: ifname.into(),
    }
}

#[test]
fn endpoint_ids_are_a_digest_of_container_and_interface() {
    let a = endpoint_id(&attachment(CID, "eth0"));
    assert_eq!(a.len(), 64);
    assert!(a
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(a, endpoint_id(&attachment(CID, "eth0")), "deterministic");
    assert_ne!(a, endpoint_id(&attachment(CID, "eth1")));
    assert_ne!(a, endpoint_id(&attachment("other", "eth0")));
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert_ne!(
        endpoint_id(&attachment("ab", "c")),
        endpoint_id(&attachment("a", "bc"))
    );
}

#[test]
fn endpoint_names_show_the_container_id_or_a_digest_of_it() {
    assert_eq!(endpoint_name(CID), "cni-0123456789ab");
    assert_eq!(endpoint_name(&CID.to_uppercase()), "cni-0123456789ab");
    let (a, b) = (
        endpoint_name("test-container-1"),
        endpoint_name("test-container-2"),
    );
    assert_ne!(a, b, "hand-made ids with a common start get distinct names");
    for n in [&a, &b, &endpoint_name("x")] {
        assert!(is_plugin_endpoint_name(n), "{n}");
    }
    for n in [
        "cni-0123456789a",
        "cni-0123456789abc",
        "cni-0123456789aB",
        "web",
        "xcni-0123456789ab",
    ] {
        assert!(!is_plugin_endpoint_name(n), "{n}");
    }
}

#[test]
fn add_connects_and_prints_the_result() {
    let mut io = Fake::new();
    let r = add(&mut io);
    assert_eq!(
        r,
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "02:42:0a:07:00:02", "sandbox": NETNS, "mtu": 1450}],
            "ips": [{"address": "10.7.0.2/24", "gateway": "10.7.0.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.7.0.1"}],
            "dns": {"nameservers": ["10.7.0.1"]},
        })
    );
    let ep = &io.endpoints()[0];
    assert_eq!(ep.id, endpoint_id(&attachment(CID, "eth0")));
    assert_eq!(ep.name, "cni-0123456789ab");
    assert_eq!(ep.target, NETNS);
    assert_eq!(ep.ifname, "eth0");
    // The connect named the network by id (found by the inspect before it).
    assert!(io.requests.iter().any(|k| matches!(
        k,
        request::Kind::NetworkConnect(c) if c.network == "f".repeat(64)
    )));
}

#[test]
fn add_on_an_internal_network_gives_no_default_route() {
    let mut io = Fake::new();
    if let Some(n) = io.views[0].network.as_mut() {
        n.internal = true;
    }
    let r = add(&mut io);
    assert_eq!(r["routes"], json!([]));
    assert_eq!(r["ips"][0]["gateway"], "10.7.0.1");
    assert_eq!(r["dns"]["nameservers"], json!(["10.7.0.1"]));
}

#[test]
fn add_passes_address_aliases_and_ports_on() {
    let mut io = Fake::new();
    let stdin = conf(
        "1.0.0",
        json!({"runtimeConfig": {
            "ips": ["10.7.0.9/24"],
            "aliases": {"lab": ["www", "web"], "other": ["nope"]},
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        }}),
    );
    let args = "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default";
    let r = run(&mut io, "ADD", &[("CNI_ARGS", args)], &stdin).expect("ADD");
    let Output::Json(r) = r else {
        panic!("no result")
    };
    assert_eq!(r["ips"][0]["address"], "10.7.0.9/24");
    assert!(r["interfaces"][0].get("mtu").is_none(), "mtu is 1.1.0's");
    let ep = &io.endpoints()[0];
    assert_eq!(ep.aliases, vec!["web".to_string(), "www".into()]);
    let mut want = PortMapping {
        host_port: 8080,
        container_port: 80,
        ..Default::default()
    };
    want.set_protocol(vxnet_proto::Protocol::Tcp);
    assert_eq!(ep.ports, vec![want]);
}

#[test]
fn add_with_cni_args_ip_and_the_old_result_format() {
    let mut io = Fake::new();
    let r = run(
        &mut io,
        "ADD",
        &[("CNI_ARGS", "IP=10.7.0.20")],
        &conf("0.4.0", json!({})),
    )
    .expect("ADD");
    let Output::Json(r) = r else {
        panic!("no result")
    };
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    assert_eq!(r["ips"][0]["address"], "10.7.0.20/24");
}

#[test]
fn add_chained_appends_to_prev_result() {
    let mut io = Fake::new();
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "net0", "sandbox": NETNS}],
        "ips": [{"address": "192.168.5.5/24", "interface": 0}],
        "dns": {"nameservers": ["10.7.0.1", "9.9.9.9"], "search": ["lab"]},
        "custom": 1,
    });
    let r = run(
        &mut io,
        "ADD",
        &[],
        &conf("1.1.0", json!({"prevResult": prev})),
    )
    .expect("ADD");
    let Output::Json(r) = r else {
        panic!("no result")
    };
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(r["ips"][1]["interface"], 1);
    assert_eq!(r["ips"][0]["address"], "192.168.5.5/24");
    assert_eq!(r["dns"]["nameservers"], json!(["10.7.0.1", "9.9.9.9"]));
    assert_eq!(r["dns"]["search"], json!(["lab"]));
    assert_eq!(r["custom"], 1);
}

#[test]
fn a_second_add_of_the_same_attachment_is_refused() {
    let mut io = Fake::new();
    add(&mut io);
    let err = run(&mut io, "ADD", &[], &conf("1.1.0", json!({}))).expect_err("second ADD");
    assert_eq!(err.code, Code::Conflict);
    assert!(err.msg.contains("already has eth0"), "{err}");
    assert_eq!(io.endpoints().len(), 1);
}

#[test]
fn add_failures_and_their_codes() {
    // An unknown network: a configuration error that names it.
    let mut io = Fake::new();
    let err = run(
        &mut io,
        "ADD",
        &[],
        &serde_json::to_vec(&json!({"cniVersion": "1.1.0", "name": "lab", "network": "nosuch"}))
            .expect("json"),
    )
    .expect_err("unknown network");
    assert_eq!(err.code, Code::InvalidConfig);
    assert!(err.msg.contains("\"nosuch\" does not exist"), "{err}");
    assert!(err.details.contains("vxnet network create nosuch"), "{err}");

    // The namespace is missing, or the plugin's own.
    let mut io = Fake::new();
    io.netns.insert(NETNS.into(), Netns::Missing);
    assert_eq!(code(run(&mut io, "ADD", &[], &conf("1.1.0", json!({})))), 4);
    io.netns.insert(NETNS.into(), Netns::Own);
    assert_eq!(code(run(&mut io, "ADD", &[], &conf("1.1.0", json!({})))), 4);
    assert!(io.requests.is_empty(), "nothing asked of the daemon");

    // The daemon is down, or has no quorum: try again later.
    let mut io = Fake::new();
    io.down = true;
    assert_eq!(
        code(run(&mut io, "ADD", &[], &conf("1.1.0", json!({})))),
        11
    );
    let mut io = Fake::new();
    io.no_quorum = true;
    assert_eq!(
        code(run(&mut io, "ADD", &[], &conf("1.1.0", json!({})))),
        11
    );

    // An address in use.
    let mut io = Fake::new();
    io.add_endpoint(&"a".repeat(64), "other", REMOTE, [10, 7, 0, 9]);
    let r = run(
        &mut io,
        "ADD",
        &[("CNI_ARGS", "IP=10.7.0.9")],
        &conf("1.1.0", json!({})),
    );
    assert_eq!(code(r), 100);
}

#[test]
fn del_is_idempotent() {
    let mut io = Fake::new();
    add(&mut io);
    let stdin = conf("1.1.0", json!({}));
    assert_eq!(run(&mut io, "DEL", &[], &stdin), Ok(Output::Nothing));
    assert!(io.endpoints().is_empty());
    assert_eq!(run(&mut io, "DEL", &[], &stdin), Ok(Output::Nothing));
    // Without a namespace (the runtime deleted it already).
    let get = |k: &str| match k {
        "CNI_COMMAND" => Some("DEL".to_string()),
        "CNI_CONTAINERID" => Some(CID.to_string()),
        "CNI_IFNAME" => Some("eth0".to_string()),
        _ => None,
    };
    let inv = parse(&get, &stdin).expect("DEL without CNI_NETNS");
    assert!(matches!(inv, Invocation::Del { netns: None, .. }));
    assert_eq!(execute(inv, &mut io), Ok(Output::Nothing));
    // Of a network that is gone.
    let gone =
        serde_json::to_vec(&json!({"cniVersion": "1.1.0", "name": "lab", "network": "gone"}))
            .expect("json");
    assert_eq!(run(&mut io, "DEL", &[], &gone), Ok(Output::Nothing));
}

#[test]
fn del_needs_a_daemon_that_can_commit() {
    let mut io = Fake::new();
    add(&mut io);
    io.no_quorum = true;
    assert_eq!(
        code(run(&mut io, "DEL", &[], &conf("1.1.0", json!({})))),
        11
    );
    io.no_quorum = false;
    io.down = true;
    assert_eq!(
        code(run(&mut io, "DEL", &[], &conf("1.1.0", json!({})))),
        11
    );
}

#[test]
fn check_compares_prev_result_the_endpoint_and_the_interface() {
    let mut io = Fake::new();
    let prev = add(&mut io);
    let stdin = conf("1.1.0", json!({"prevResult": prev}));
    assert_eq!(run(&mut io, "CHECK", &[], &stdin), Ok(Output::Nothing));

    // No prevResult.
    assert_eq!(
        code(run(&mut io, "CHECK", &[], &conf("1.1.0", json!({})))),
        7
    );

    // prevResult says another address.
    let mut other = prev.clone();
    other["ips"][0]["address"] = json!("10.7.0.77/24");
    let r = run(
        &mut io,
        "CHECK",
        &[],
        &conf("1.1.0", json!({"prevResult": other})),
    );
    assert_eq!(code(r), 104);

    // The interface lost its address, then went.
    let key = (PathBuf::from(NETNS), "eth0".to_string());
    if let Some(i) = io.interfaces.get_mut(&key) {
        i.addresses.clear();
    }
    assert_eq!(code(run(&mut io, "CHECK", &[], &stdin)), 104);
    io.interfaces.remove(&key);
    assert_eq!(code(run(&mut io, "CHECK", &[], &stdin)), 104);

    // The namespace went.
    io.netns.insert(NETNS.into(), Netns::Missing);
    assert_eq!(code(run(&mut io, "CHECK", &[], &stdin)), 104);

    // The endpoint went.
    let mut io = Fake::new();
    let prev = add(&mut io);
    io.views[0].endpoints.clear();
    let r = run(
        &mut io,
        "CHECK",
        &[],
        &conf("1.1.0", json!({"prevResult": prev})),
    );
    assert_eq!(code(r), 104);

    // The daemon is down.
    io.down = true;
    assert_eq!(code(run(&mut io, "CHECK", &[], &stdin)), 11);
}

#[test]
fn check_accepts_a_mac_a_later_plugin_set() {
    let mut io = Fake::new();
    let mut prev = add(&mut io);
    prev["interfaces"][0]["mac"] = json!("0a:58:00:00:00:01");
    let key = (PathBuf::from(NETNS), "eth0".to_string());
    if let Some(i) = io.interfaces.get_mut(&key) {
        i.mac = "0a:58:00:00:00:01".parse().ok();
    }
    let stdin = conf("1.1.0", json!({"prevResult": prev}));
    assert_eq!(run(&mut io, "CHECK", &[], &stdin), Ok(Output::Nothing));
}

#[test]
fn status_says_whether_add_can_be_served() {
    let stdin = conf("1.1.0", json!({}));
    let mut io = Fake::new();
    assert_eq!(run(&mut io, "STATUS", &[], &stdin), Ok(Output::Nothing));

    io.leader = false;
    let err = run(&mut io, "STATUS", &[], &stdin).expect_err("no leader");
    assert_eq!(err.code.number(), 50);
    assert!(err.msg.contains("no leader"), "{err}");

    let mut io = Fake::new();
    io.no_quorum = true;
    assert_eq!(code(run(&mut io, "STATUS", &[], &stdin)), 50);

    // A leader that hears from one voter of two (the learner does not count).
    let mut io = Fake::new();
    io.peer_reachable = false;
    let err = run(&mut io, "STATUS", &[], &stdin).expect_err("no quorum");
    assert_eq!(err.code.number(), 50);
    assert!(err.details.contains("1 of 2 voters"), "{err}");
    assert!(
        !io.requests
            .iter()
            .any(|k| matches!(k, request::Kind::NetworkInspect(_))),
        "answered without waiting for a read"
    );

    let mut io = Fake::new();
    io.down = true;
    assert_eq!(code(run(&mut io, "STATUS", &[], &stdin)), 51);

    let mut io = Fake::new();
    let gone =
        serde_json::to_vec(&json!({"cniVersion": "1.1.0", "name": "lab", "network": "gone"}))
            .expect("json");
    let err = run(&mut io, "STATUS", &[], &gone).expect_err("no network");
    assert_eq!(err.code.number(), 50);
    assert!(err.msg.contains("\"gone\" does not exist"), "{err}");
}

#[test]
fn gc_removes_this_hosts_stale_plugin_endpoints_only() {
    let mut io = Fake::new();
    let keep = "1111111111111111111111111111111111111111111111111111111111111111";
    let stale = "2222222222222222222222222222222222222222222222222222222222222222";
    for cid in [keep, stale] {
        let r = run(
            &mut io,
            "ADD",
            &[
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", &format!("/run/netns/{}", &cid[..4])),
            ],
            &conf("1.1.0", json!({})),
        );
        assert!(r.is_ok(), "{r:?}");
    }
    // Not the plugin's (by name), and the plugin's but on another host.
    io.add_endpoint(&"c".repeat(64), "web", LOCAL, [10, 7, 0, 30]);
    io.add_endpoint(&"d".repeat(64), "cni-dddddddddddd", REMOTE, [10, 7, 0, 31]);
    let stdin = conf(
        "1.1.0",
        json!({"cni.dev/valid-attachments": [
            {"containerID": keep, "ifname": "eth0"},
            {"containerID": "not-attached", "ifname": "eth0"},
        ]}),
    );
    assert_eq!(run(&mut io, "GC", &[], &stdin), Ok(Output::Nothing));
    let mut left: Vec<&str> = io.endpoints().iter().map(|e| e.name.as_str()).collect();
    left.sort();
    assert_eq!(left, ["cni-111111111111", "cni-dddddddddddd", "web"]);

    // Again: nothing left to do.
    assert_eq!(run(&mut io, "GC", &[], &stdin), Ok(Output::Nothing));
}

#[test]
fn gc_removes_what_it_can_and_reports_the_rest() {
    let mut io = Fake::new();
    let ids = ["3", "4", "5"].map(|d| d.repeat(64));
    for cid in &ids {
        let netns = format!("/run/netns/{}", &cid[..4]);
        let r = run(
            &mut io,
            "ADD",
            &[("CNI_CONTAINERID", cid), ("CNI_NETNS", &netns)],
            &conf("1.1.0", json!({})),
        );
        assert!(r.is_ok(), "{r:?}");
    }
    io.failing.push(endpoint_id(&attachment(&ids[0], "eth0")));
    let stdin = conf("1.1.0", json!({"cni.dev/valid-attachments": []}));
    let err = run(&mut io, "GC", &[], &stdin).expect_err("one failed");
    assert_eq!(err.code, Code::HostFailed);
    assert!(err.msg.contains("1 of 3"), "{err}");
    assert!(err.details.contains("cni-333333333333"), "{err}");
    assert_eq!(io.endpoints().len(), 1, "the other two went");
}

#[test]
fn gc_of_a_missing_network_or_without_a_daemon() {
    let gone =
        serde_json::to_vec(&json!({"cniVersion": "1.1.0", "name": "lab", "network": "gone"}))
            .expect("json");
    let mut io = Fake::new();
    assert_eq!(run(&mut io, "GC", &[], &gone), Ok(Output::Nothing));
    io.down = true;
    assert_eq!(code(run(&mut io, "GC", &[], &conf("1.1.0", json!({})))), 11);
}

#[test]
fn version_lists_what_vxnet_speaks() {
    let mut io = Fake::new();
    let r = run(&mut io, "VERSION", &[], br#"{"cniVersion": "1.0.0"}"#).expect("VERSION");
    assert_eq!(
        r,
        Output::Json(json!({
            "cniVersion": "1.0.0",
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        }))
    );
    let r = run(&mut io, "VERSION", &[], b"").expect("VERSION without input");
    assert_eq!(
        r,
        Output::Json(json!({
            "cniVersion": "1.1.0",
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        }))
    );
    assert!(io.requests.is_empty());
}
