use super::*;
use vxnet_proto::{Endpoint, Network};

fn view() -> NetworkView {
    NetworkView {
        network: Some(Network {
            id: "ab".repeat(32),
            name: "net1".into(),
            driver: "overlay".into(),
            vni: 4100,
            subnet: Some(Cidr {
                addr: 0x0a0a_0000,
                prefix_len: 24,
            }),
            gateway: 0x0a0a_0001,
            ip_range: None,
            mtu: 1450,
            peers: vec![0xc612_000c],
            labels: [("env".to_string(), "lab".to_string())].into(),
            internal: false,
            encrypted: true,
            keys: vec![],
        }),
        endpoints: vec![Endpoint {
            id: "cd".repeat(32),
            name: "c1".into(),
            network_id: "ab".repeat(32),
            host_id: "h1".into(),
            mac: vec![2, 0x42, 10, 10, 0, 2],
            ipv4: 0x0a0a_0002,
            aliases: vec!["web".into()],
            ifname: "eth0".into(),
            target: "/var/run/netns/c1".into(),
            ports: vec![vxnet_proto::PortMapping::parse("8080:80").expect("mapping")],
        }],
        host_names: [("h1".to_string(), "host1".to_string())].into(),
        warnings: Vec::new(),
    }
}

#[test]
fn inspect_has_the_contract_keys() {
    let v = network_json(&view());
    assert_eq!(v["Name"], "net1");
    assert_eq!(v["VNI"], 4100);
    assert_eq!(v["MTU"], 1450);
    assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.10.0.0/24");
    assert_eq!(v["IPAM"]["Config"][0]["Gateway"], "10.10.0.1");
    assert_eq!(v["IPAM"]["Config"][0]["IPRange"], "");
    assert_eq!(v["Peers"][0], "198.18.0.12");
    let c = &v["Containers"]["cd".repeat(32)];
    assert_eq!(c["Name"], "c1");
    assert_eq!(c["MacAddress"], "02:42:0a:0a:00:02");
    assert_eq!(c["IPv4Address"], "10.10.0.2/24");
    assert_eq!(c["Host"], "host1");
    assert_eq!(c["Aliases"][0], "web");
    assert_eq!(c["Ports"], serde_json::json!(["0.0.0.0:8080:80/tcp"]));
    assert_eq!(v["Labels"]["env"], "lab");
    assert_eq!(v["Internal"], false);
    assert_eq!(v["Encrypted"], true);
    assert_eq!(v["DNS"], "10.10.0.1");
    assert_eq!(
        v["Warnings"],
        serde_json::json!([]),
        "nothing to warn about"
    );
}

#[test]
fn ls_table_columns() {
    let t = networks_table(&[view()]);
    let mut lines = t.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
        Some("NETWORK ID NAME DRIVER VNI SUBNET".into())
    );
    let row: Vec<_> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(
        row,
        vec!["abababababab", "net1", "overlay", "4100", "10.10.0.0/24"]
    );
}

#[test]
fn fdb_and_stats_json() {
    let rows = [
        FdbRow {
            mac: vec![2, 0x42, 10, 10, 0, 2],
            vtep: 0,
            kind: "local".into(),
            age_seconds: 0,
        },
        FdbRow {
            mac: vec![0; 6],
            vtep: 0xc612_000c,
            kind: "static".into(),
            age_seconds: 0,
        },
    ];
    let v: Value = serde_json::from_str(&fdb_json(&rows)).expect("json");
    assert_eq!(v[0]["VTEP"], Value::Null);
    assert_eq!(v[1]["VTEP"], "198.18.0.12");
    assert_eq!(v[1]["MAC"], "00:00:00:00:00:00");
    let stats = Stats {
        networks: vec![vxnet_proto::NetworkStats {
            name: "net1".into(),
            vni: 4100,
            rx_frames: 3,
            drops: vec![DropCount {
                reason: "oversize".into(),
                count: 2,
            }],
            ..Default::default()
        }],
        drops: vec![DropCount {
            reason: "unknown_vni".into(),
            count: 5,
        }],
        syscalls: Some(vxnet_proto::SyscallStats {
            recvmmsg: 7,
            tap_writes: 9,
            ..Default::default()
        }),
    };
    let v: Value = serde_json::from_str(&stats_json(&stats)).expect("json");
    assert_eq!(v["networks"][0]["RxFrames"], 3);
    assert_eq!(v["networks"][0]["Drops"]["oversize"], 2);
    assert_eq!(v["Syscalls"]["recvmmsg"], 7);
    assert_eq!(v["Syscalls"]["tap_writes"], 9);
    assert_eq!(v["Syscalls"]["sendmmsg"], 0);
    assert_eq!(v["Drops"]["unknown_vni"], 5);
}
