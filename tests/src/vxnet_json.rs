//! Reading the JSON the vxnet CLI prints (`--format json`, `network inspect`) into typed
//! values: networks, endpoints, FDB entries, cluster members, drop counters.
//!
//! Rules a test relies on:
//! - Only the keys the CLI documents are relied on, and a missing or mistyped key is an error
//!   naming it, so a contract break is a clear test failure rather than a default value or a
//!   zero.
//! - Extra keys are tolerated; a test that wants exactly the documented keys checks for them
//!   itself with [`MEMBER_KEYS`] or [`FDB_KEYS`].
//! - MACs are normalised to lower case, as `ip` prints them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::lab::topology::split_cidr;

/// Parses CLI output as JSON, with the text in the error.
pub fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("vxnet printed invalid JSON: {text:?}"))
}

/// `Name` of every network in `network ls --format json` (or `inspect`) output, sorted.
pub fn network_names(ls_json: &str) -> Result<Vec<String>> {
    let v = parse(ls_json)?;
    let mut names = array(&v, "network list")?
        .iter()
        .map(|n| str_field(n, "Name"))
        .collect::<Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// Drop counters from `vxnet stats --format json`: the top-level `Drops` plus every network's
/// `Drops`, summed per reason.
pub fn drop_counts(stats_json: &str) -> Result<BTreeMap<String, u64>> {
    let v = parse(stats_json)?;
    let mut total = BTreeMap::new();
    let mut add = |drops: &Value| -> Result<()> {
        let map = drops
            .as_object()
            .ok_or_else(|| anyhow!("Drops is not an object: {drops}"))?;
        for (reason, n) in map {
            let n = n
                .as_u64()
                .ok_or_else(|| anyhow!("drop count {reason} is not a number: {n}"))?;
            *total.entry(reason.clone()).or_insert(0) += n;
        }
        Ok(())
    };
    add(v
        .get("Drops")
        .ok_or_else(|| anyhow!("stats JSON has no top-level Drops: {stats_json}"))?)?;
    let networks = v
        .get("networks")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("stats JSON has no networks array: {stats_json}"))?;
    for n in networks {
        if let Some(d) = n.get("Drops") {
            add(d)?;
        }
    }
    Ok(total)
}

/// Sum of the counters whose reason contains any of `needles` (case-insensitive).
pub fn sum_matching(drops: &BTreeMap<String, u64>, needles: &[&str]) -> u64 {
    drops
        .iter()
        .filter(|(reason, _)| {
            let r = reason.to_ascii_lowercase();
            needles.iter().any(|n| r.contains(&n.to_ascii_lowercase()))
        })
        .map(|(_, n)| n)
        .sum()
}

/// Sum of all counters.
pub fn sum_all(drops: &BTreeMap<String, u64>) -> u64 {
    drops.values().sum()
}

/// One network's field from `stats --format json` (e.g. `RxFrames`), by network name.
pub fn network_stat(stats_json: &str, network: &str, field: &str) -> Result<u64> {
    let v = parse(stats_json)?;
    v.get("networks")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|n| n.get("Name").and_then(Value::as_str) == Some(network))
        })
        .and_then(|n| n.get(field))
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("no {field} for network {network} in stats: {stats_json}"))
}

/// The keys of one `cluster members --format json` object, exactly.
pub const MEMBER_KEYS: [&str; 6] = ["ID", "Name", "Addr", "Role", "Leader", "Reachable"];

/// The keys of one `fdb --format json` object, exactly.
pub const FDB_KEYS: [&str; 4] = ["MAC", "VTEP", "Kind", "AgeSeconds"];

/// A member's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Votes in elections and counts for the commit quorum.
    Voter,
    /// Receives the log, does not vote.
    Learner,
}

/// One entry of `cluster members --format json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `ID`, as text (its JSON type is not part of the contract; a number is kept as its decimal
    /// text).
    pub id: String,
    /// `Name`: the daemon's `--name` (`h0` in a lab).
    pub name: String,
    /// `Addr`: the cluster address, `IP` or `IP:PORT`.
    pub addr: String,
    /// `Role`.
    pub role: Role,
    /// `Leader`.
    pub leader: bool,
    /// `Reachable`.
    pub reachable: bool,
}

impl Member {
    /// The IP part of [`Member::addr`].
    pub fn ip(&self) -> Result<Ipv4Addr> {
        let ip = self.addr.split(':').next().unwrap_or(&self.addr);
        ip.parse()
            .with_context(|| format!("member Addr {:?} is not IP or IP:PORT", self.addr))
    }
}

fn field<'a>(obj: &'a Value, key: &str) -> Result<&'a Value> {
    obj.get(key)
        .ok_or_else(|| anyhow!("object without key {key}: {obj}"))
}

fn str_field(obj: &Value, key: &str) -> Result<String> {
    field(obj, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{key} is not a string: {obj}"))
}

fn bool_field(obj: &Value, key: &str) -> Result<bool> {
    field(obj, key)?
        .as_bool()
        .ok_or_else(|| anyhow!("{key} is not a boolean: {obj}"))
}

fn u64_field(obj: &Value, key: &str) -> Result<u64> {
    field(obj, key)?
        .as_u64()
        .ok_or_else(|| anyhow!("{key} is not a non-negative integer: {obj}"))
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| anyhow!("{what} is not a JSON array: {v}"))
}

/// Parses `cluster members --format json`.
pub fn parse_members(text: &str) -> Result<Vec<Member>> {
    let v = parse(text)?;
    array(&v, "cluster members")?
        .iter()
        .map(|m| {
            let id = match field(m, "ID")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => bail!("ID is neither a string nor a number: {other}"),
            };
            let role = match str_field(m, "Role")?.as_str() {
                "voter" => Role::Voter,
                "learner" => Role::Learner,
                other => bail!("Role {other:?} is neither \"voter\" nor \"learner\": {m}"),
            };
            Ok(Member {
                id,
                name: str_field(m, "Name")?,
                addr: str_field(m, "Addr")?,
                role,
                leader: bool_field(m, "Leader")?,
                reachable: bool_field(m, "Reachable")?,
            })
        })
        .collect()
}

/// The one member marked `Leader`; `None` when none is; an error when several are.
pub fn leader_of(members: &[Member]) -> Result<Option<&Member>> {
    let leaders: Vec<&Member> = members.iter().filter(|m| m.leader).collect();
    match leaders.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => bail!("{} members claim to lead: {many:?}", many.len()),
    }
}

/// One entry of `fdb NETWORK --format json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// `MAC`, lower case.
    pub mac: String,
    /// `VTEP`; `None` (JSON null) for a local endpoint.
    pub vtep: Option<Ipv4Addr>,
    /// `Kind`: local, control, static or learned.
    pub kind: String,
    /// `AgeSeconds`.
    pub age_seconds: u64,
}

/// Parses `fdb NETWORK --format json`.
pub fn parse_fdb(text: &str) -> Result<Vec<FdbEntry>> {
    let v = parse(text)?;
    array(&v, "fdb")?
        .iter()
        .map(|e| {
            let vtep = match field(e, "VTEP")? {
                Value::Null => None,
                Value::String(s) => Some(
                    s.parse()
                        .with_context(|| format!("VTEP {s:?} is not an IPv4 address"))?,
                ),
                other => bail!("VTEP is neither null nor a string: {other}"),
            };
            Ok(FdbEntry {
                mac: str_field(e, "MAC")?.to_ascii_lowercase(),
                vtep,
                kind: str_field(e, "Kind")?,
                age_seconds: u64_field(e, "AgeSeconds")?,
            })
        })
        .collect()
}

/// One endpoint of a network, from `network inspect`'s `Containers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The key of the `Containers` map.
    pub endpoint_id: String,
    /// `Name`: by default the namespace name (the lab's `PREFIX-NAME`).
    pub name: String,
    /// `MacAddress`, lower case.
    pub mac: String,
    /// The address part of `IPv4Address`.
    pub ipv4: Ipv4Addr,
    /// The prefix length of `IPv4Address` (the network's, as the container has it).
    pub prefix_len: u8,
    /// `Host`, as the daemon reports it.
    pub host: String,
}

/// One network of `network inspect` (or `network ls --format json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// `Name`.
    pub name: String,
    /// `Id` (64 hex digits).
    pub id: String,
    /// `VNI`.
    pub vni: u64,
    /// `IPAM.Config[0].Subnet`.
    pub subnet: String,
    /// `IPAM.Config[0].Gateway`, if present.
    pub gateway: Option<Ipv4Addr>,
    /// `Containers`, sorted by name.
    pub endpoints: Vec<EndpointInfo>,
}

impl NetworkInfo {
    /// The endpoint called `name` (a lab container's namespace name), if attached.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointInfo> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

/// Parses `network inspect` (an array, one object per network).
pub fn parse_inspect(text: &str) -> Result<Vec<NetworkInfo>> {
    let v = parse(text)?;
    array(&v, "network inspect")?
        .iter()
        .map(parse_network)
        .collect()
}

fn parse_network(n: &Value) -> Result<NetworkInfo> {
    let ipam = field(field(n, "IPAM")?, "Config")?;
    let config = array(ipam, "IPAM.Config")?
        .first()
        .ok_or_else(|| anyhow!("IPAM.Config is empty: {n}"))?;
    let gateway = match config.get("Gateway") {
        Some(Value::String(g)) if !g.is_empty() => Some(
            g.parse()
                .with_context(|| format!("Gateway {g:?} is not an IPv4 address"))?,
        ),
        _ => None,
    };
    let containers = field(n, "Containers")?;
    let mut endpoints = match containers {
        Value::Null => Vec::new(),
        Value::Object(map) => map
            .iter()
            .map(|(key, e)| {
                let (ipv4, prefix_len) = split_cidr(&str_field(e, "IPv4Address")?)?;
                Ok(EndpointInfo {
                    endpoint_id: key.clone(),
                    name: str_field(e, "Name")?,
                    mac: str_field(e, "MacAddress")?.to_ascii_lowercase(),
                    ipv4,
                    prefix_len,
                    host: str_field(e, "Host")?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
        other => bail!("Containers is not an object: {other}"),
    };
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(NetworkInfo {
        name: str_field(n, "Name")?,
        id: str_field(n, "Id")?,
        vni: u64_field(n, "VNI")?,
        subnet: str_field(config, "Subnet")?,
        gateway,
        endpoints,
    })
}

#[cfg(test)]
mod tests;
