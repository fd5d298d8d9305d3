//! What the CLI prints: the JSON shapes and table columns of `shared/CLI.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde_json::{json, Value};
use vxnet_proto::{Cidr, DropCount, FdbRow, Member, NetworkView, Stats};

pub fn cidr(c: &Option<Cidr>) -> String {
    c.as_ref()
        .map(|c| format!("{}/{}", Ipv4Addr::from(c.addr), c.prefix_len))
        .unwrap_or_default()
}

pub fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One object of `network inspect`.
pub fn network_json(view: &NetworkView) -> Value {
    let n = view.network.clone().unwrap_or_default();
    let prefix_len = n.subnet.as_ref().map_or(0, |s| s.prefix_len);
    let containers: serde_json::Map<String, Value> = view
        .endpoints
        .iter()
        .map(|e| {
            let host = view
                .host_names
                .get(&e.host_id)
                .cloned()
                .unwrap_or_else(|| e.host_id.clone());
            (
                e.id.clone(),
                json!({
                    "Name": e.name,
                    "EndpointID": e.id,
                    "MacAddress": mac(&e.mac),
                    "IPv4Address": format!("{}/{}", Ipv4Addr::from(e.ipv4), prefix_len),
                    "Host": host,
                    "Aliases": e.aliases,
                }),
            )
        })
        .collect();
    let labels: BTreeMap<_, _> = n.labels.iter().collect();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Driver": n.driver,
        "VNI": n.vni,
        "MTU": n.mtu,
        "IPAM": {"Config": [{
            "Subnet": cidr(&n.subnet),
            "Gateway": Ipv4Addr::from(n.gateway).to_string(),
            "IPRange": cidr(&n.ip_range),
        }]},
        "Peers": n.peers.iter().map(|p| Ipv4Addr::from(*p).to_string()).collect::<Vec<_>>(),
        "Containers": containers,
        "Labels": labels,
    })
}

pub fn networks_json(views: &[NetworkView]) -> String {
    pretty(&Value::Array(views.iter().map(network_json).collect()))
}

pub fn networks_table(views: &[NetworkView]) -> String {
    let rows = views
        .iter()
        .filter_map(|v| v.network.as_ref())
        .map(|n| {
            vec![
                n.id.chars().take(12).collect(),
                n.name.clone(),
                n.driver.clone(),
                n.vni.to_string(),
                cidr(&n.subnet),
            ]
        })
        .collect();
    table(&["NETWORK ID", "NAME", "DRIVER", "VNI", "SUBNET"], rows)
}

pub fn fdb_json(rows: &[FdbRow]) -> String {
    let rows = rows
        .iter()
        .map(|r| {
            json!({
                "MAC": mac(&r.mac),
                "VTEP": (r.vtep != 0).then(|| Ipv4Addr::from(r.vtep).to_string()),
                "Kind": r.kind,
                "AgeSeconds": r.age_seconds,
            })
        })
        .collect();
    pretty(&Value::Array(rows))
}

pub fn fdb_table(rows: &[FdbRow]) -> String {
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                mac(&r.mac),
                if r.vtep == 0 {
                    "-".into()
                } else {
                    Ipv4Addr::from(r.vtep).to_string()
                },
                r.kind.clone(),
                r.age_seconds.to_string(),
            ]
        })
        .collect();
    table(&["MAC", "VTEP", "KIND", "AGE"], rows)
}

fn drops_json(drops: &[DropCount]) -> Value {
    let map: serde_json::Map<String, Value> = drops
        .iter()
        .map(|d| (d.reason.clone(), json!(d.count)))
        .collect();
    Value::Object(map)
}

fn drops_text(drops: &[DropCount]) -> String {
    if drops.is_empty() {
        return "0".into();
    }
    drops
        .iter()
        .map(|d| format!("{}={}", d.reason, d.count))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn stats_json(stats: &Stats) -> String {
    let networks: Vec<Value> = stats
        .networks
        .iter()
        .map(|n| {
            json!({
                "Name": n.name, "VNI": n.vni,
                "RxFrames": n.rx_frames, "RxBytes": n.rx_bytes,
                "TxFrames": n.tx_frames, "TxBytes": n.tx_bytes,
                "Drops": drops_json(&n.drops),
            })
        })
        .collect();
    pretty(&json!({"networks": networks, "Drops": drops_json(&stats.drops)}))
}

pub fn stats_table(stats: &Stats) -> String {
    let rows = stats
        .networks
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.vni.to_string(),
                n.rx_frames.to_string(),
                n.rx_bytes.to_string(),
                n.tx_frames.to_string(),
                n.tx_bytes.to_string(),
                drops_text(&n.drops),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "NAME",
            "VNI",
            "RX FRAMES",
            "RX BYTES",
            "TX FRAMES",
            "TX BYTES",
            "DROPS",
        ],
        rows,
    );
    let _ = writeln!(
        out,
        "\nDropped outside any network: {}",
        drops_text(&stats.drops)
    );
    out
}

pub fn members_json(members: &[Member]) -> String {
    let rows = members
        .iter()
        .map(|m| {
            json!({
                "ID": m.id, "Name": m.name, "Addr": m.addr, "Role": m.role,
                "Leader": m.leader, "Reachable": m.reachable,
            })
        })
        .collect();
    pretty(&Value::Array(rows))
}

pub fn members_table(members: &[Member]) -> String {
    let rows = members
        .iter()
        .map(|m| {
            vec![
                m.id.chars().take(12).collect(),
                m.name.clone(),
                m.addr.clone(),
                m.role.clone(),
                if m.leader { "yes".into() } else { "".into() },
                if m.reachable {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    table(&["ID", "NAME", "ADDR", "ROLE", "LEADER", "REACHABLE"], rows)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

/// Left-aligned columns, three spaces apart, like docker's tables.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
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
            }],
            host_names: [("h1".to_string(), "host1".to_string())].into(),
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
        assert_eq!(v["Labels"]["env"], "lab");
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
        };
        let v: Value = serde_json::from_str(&stats_json(&stats)).expect("json");
        assert_eq!(v["networks"][0]["RxFrames"], 3);
        assert_eq!(v["networks"][0]["Drops"]["oversize"], 2);
        assert_eq!(v["Drops"]["unknown_vni"], 5);
    }
}
