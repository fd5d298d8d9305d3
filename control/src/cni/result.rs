//! What the plugin prints on success, in the format of the configuration's `cniVersion`, and
//! what CHECK reads back from `prevResult`. No IO.
//!
//! Rules:
//! - ADD's result has one interface — the container's, with its `mac` and `sandbox` (the
//!   `CNI_NETNS` given), and its `mtu` from 1.1.0 on — one IPv4 address with the network's
//!   prefix and gateway, the default route through the gateway unless the network is
//!   `--internal` (the daemon installs exactly that route), and the gateway as nameserver
//!   (every vxnet network's gateway answers DNS). Before 1.0.0 each address also says
//!   `"version": "4"`.
//! - With a `prevResult` (vxnet chained after another interface plugin), that result is kept,
//!   unknown keys included, and vxnet's interface, address, route and nameserver are appended
//!   to it, the address pointing at the appended interface.
//! - The host end of the veth is not listed: it is in the network's sandbox namespace, which
//!   the daemon owns, not on the host.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use vxnet_proto::types::MacAddr;

use super::invocation::SUPPORTED_VERSIONS;

/// The attachment ADD made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddResult {
    pub ifname: String,
    pub mac: MacAddr,
    pub mtu: u32,
    pub sandbox: PathBuf,
    pub address: Ipv4Addr,
    pub prefix_len: u32,
    pub gateway: Ipv4Addr,
    /// Whether the container got a default route (not on an `--internal` network).
    pub default_route: bool,
}

impl AddResult {
    /// The result to print: `prev` with this attachment appended, or this attachment alone.
    pub fn to_json(&self, cni_version: &str, prev: Option<&Value>) -> Value {
        let before_1_0 = matches!(cni_version, "0.3.0" | "0.3.1" | "0.4.0");
        let mut result = match prev {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        result.insert("cniVersion".into(), json!(cni_version));

        let mut interface = json!({
            "name": self.ifname,
            "mac": self.mac.to_string(),
            "sandbox": self.sandbox.to_string_lossy(),
        });
        if cni_version == "1.1.0" {
            interface["mtu"] = json!(self.mtu);
        }
        let index = push(&mut result, "interfaces", interface);

        let mut ip = json!({
            "address": format!("{}/{}", self.address, self.prefix_len),
            "gateway": self.gateway.to_string(),
            "interface": index,
        });
        if before_1_0 {
            ip["version"] = json!("4");
        }
        push(&mut result, "ips", ip);

        let mut routes = take_array(&mut result, "routes");
        if self.default_route {
            routes.push(json!({"dst": "0.0.0.0/0", "gw": self.gateway.to_string()}));
        }
        result.insert("routes".into(), Value::Array(routes));

        let mut dns = match result.remove("dns") {
            Some(Value::Object(d)) => d,
            _ => Map::new(),
        };
        let mut nameservers = take_array(&mut dns, "nameservers");
        let gateway = json!(self.gateway.to_string());
        if !nameservers.contains(&gateway) {
            nameservers.push(gateway);
        }
        dns.insert("nameservers".into(), Value::Array(nameservers));
        result.insert("dns".into(), Value::Object(dns));
        Value::Object(result)
    }
}

/// Removes `map[key]` and returns it if it is an array; else an empty one (a malformed
/// `prevResult` entry is replaced rather than trusted).
fn take_array(map: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match map.remove(key) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

/// Appends `item` to the array `map[key]`; returns its index.
fn push(map: &mut Map<String, Value>, key: &str, item: Value) -> usize {
    let mut items = take_array(map, key);
    items.push(item);
    let index = items.len() - 1;
    map.insert(key.into(), Value::Array(items));
    index
}

/// VERSION's answer.
pub fn version_json(cni_version: &str) -> Value {
    json!({"cniVersion": cni_version, "supportedVersions": SUPPORTED_VERSIONS})
}

/// What a `prevResult` says an attachment should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub mac: Option<MacAddr>,
    /// Its IPv4 addresses with their prefix lengths.
    pub addresses: Vec<(Ipv4Addr, u32)>,
}

/// The interface `ifname` in `netns` as `prev` lists it (an interface without `sandbox` is
/// taken to be the container's), with the addresses that point at it; `None` if it is not
/// listed.
pub fn expected(prev: &Value, ifname: &str, netns: &Path) -> Option<Expected> {
    let interfaces = prev.get("interfaces")?.as_array()?;
    let index = interfaces.iter().position(|i| {
        i.get("name").and_then(Value::as_str) == Some(ifname)
            && i.get("sandbox")
                .and_then(Value::as_str)
                .is_none_or(|s| s.is_empty() || Path::new(s) == netns)
    })?;
    let mac = interfaces[index]
        .get("mac")
        .and_then(Value::as_str)
        .and_then(|m| m.parse().ok());
    let addresses = prev
        .get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter(|ip| ip.get("interface").and_then(Value::as_u64) == Some(index as u64))
                .filter_map(|ip| parse_cidr(ip.get("address")?.as_str()?))
                .collect()
        })
        .unwrap_or_default();
    Some(Expected { mac, addresses })
}

/// `A.B.C.D/LEN`; `None` for anything else (IPv6 included).
fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u32)> {
    let (addr, len) = s.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((addr.parse().ok()?, len))
}

#[cfg(test)]
mod tests;
