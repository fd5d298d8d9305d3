//! What the CLI prints: the JSON shapes and table columns of README, "The command line".

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
                    "Ports": e.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
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
        "Internal": n.internal,
        "Encrypted": n.encrypted,
        "DNS": Ipv4Addr::from(n.gateway).to_string(),
        "Warnings": view.warnings,
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
    let calls = stats.syscalls.unwrap_or_default();
    pretty(&json!({
        "networks": networks,
        "Drops": drops_json(&stats.drops),
        "Syscalls": {
            "recvmmsg": calls.recvmmsg, "sendmmsg": calls.sendmmsg,
            "send_fallback": calls.send_fallback,
            "tap_reads": calls.tap_reads, "tap_writes": calls.tap_writes,
        },
    }))
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
    let calls = stats.syscalls.unwrap_or_default();
    let _ = writeln!(
        out,
        "Syscalls: recvmmsg={} sendmmsg={} send_fallback={} tap_reads={} tap_writes={}",
        calls.recvmmsg, calls.sendmmsg, calls.send_fallback, calls.tap_reads, calls.tap_writes
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
mod tests;
