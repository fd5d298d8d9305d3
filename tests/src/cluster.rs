//! Cluster helpers: forming a Raft cluster of lab hosts with the CLI (`cluster token`,
//! `cluster join`), finding its leader, and reading the JSON of `cluster members`, `fdb` and
//! `network inspect` (CLI.md) into typed values.
//!
//! Rules a test relies on:
//! - Parsers only rely on keys CLI.md lists and fail naming a missing key, so a contract break
//!   is a clear error rather than a default value. Extra keys are tolerated here; the test of the
//!   `members` keys checks for exactness itself with [`MEMBER_KEYS`].
//! - Every query that polls (members, fdb, inspect while waiting) runs with a short CLI
//!   `--timeout` ([`PROBE_TIMEOUT`]): a host without quorum or cut off the underlay costs a few
//!   seconds per look, never the CLI's default 10 s, and every wait has its own deadline.
//! - Hosts are identified by their underlay address: `Addr` of a member is `IP` or `IP:PORT`,
//!   and [`Lab::host_by_addr`] maps the IP back to a lab host index.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::cmd::{self, POLL_INTERVAL};
use crate::lab::{split_cidr, Container, Host, Lab};
use crate::vxnet_json::parse;

/// The keys of one `cluster members --format json` object, exactly (CLI.md).
pub const MEMBER_KEYS: [&str; 6] = ["ID", "Name", "Addr", "Role", "Leader", "Reachable"];

/// The keys of one `fdb --format json` object, exactly (CLI.md).
pub const FDB_KEYS: [&str; 4] = ["MAC", "VTEP", "Kind", "AgeSeconds"];

/// `--timeout` of the queries that polling loops make.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long forming a cluster, or agreeing on a leader, may take in a lab.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a change made on one host may take to show on the others in these tests. Far above
/// what a healthy cluster needs (a few Raft round trips on one machine); it only bounds a
/// failure.
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(20);

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
    /// `ID`, as text (CLI.md does not fix its type; a number is kept as its decimal text).
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
                let (ipv4, _) = split_cidr(&str_field(e, "IPv4Address")?)?;
                Ok(EndpointInfo {
                    endpoint_id: key.clone(),
                    name: str_field(e, "Name")?,
                    mac: str_field(e, "MacAddress")?.to_ascii_lowercase(),
                    ipv4,
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

/// `(interface, address, prefix length)` of every line of `ip -o -4 addr show`.
pub fn parse_ipv4_addrs(text: &str) -> Result<Vec<(String, Ipv4Addr, u8)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // "12: eth0    inet 10.10.0.2/24 brd 10.10.0.255 scope global eth0\ ..."
            let words: Vec<&str> = l.split_whitespace().collect();
            let inet = words
                .iter()
                .position(|w| *w == "inet")
                .ok_or_else(|| anyhow!("no inet in {l:?}"))?;
            let ifname = words
                .get(1)
                .ok_or_else(|| anyhow!("no interface in {l:?}"))?;
            let cidr = words
                .get(inet + 1)
                .ok_or_else(|| anyhow!("no address in {l:?}"))?;
            let (addr, len) = split_cidr(cidr)?;
            let ifname = ifname.split('@').next().unwrap_or(ifname);
            Ok((ifname.to_string(), addr, len))
        })
        .collect()
}

/// The MAC vxnet gives the endpoint with address `ip` (CLI.md), as `fdb` prints it.
pub fn mac_for(ip: Ipv4Addr) -> String {
    crate::wire::format_mac(crate::wire::mac_for_ip(ip)).to_ascii_lowercase()
}

/// Whether `stderr` is exactly one line `vxnet: ...` (CLI.md's error shape).
pub fn is_one_error_line(stderr: &str) -> bool {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.len() == 1 && lines[0].starts_with("vxnet: ")
}

impl Container {
    /// Every IPv4 address configured in the container, as `(interface, address, length)`.
    pub fn ipv4_addrs(&self) -> Result<Vec<(String, Ipv4Addr, u8)>> {
        parse_ipv4_addrs(&self.exec_ok(&["ip", "-o", "-4", "addr", "show"])?)
    }
}

impl Host {
    /// Runs a query with [`PROBE_TIMEOUT`]; non-zero exit is an error with its stderr.
    fn probe(&self, args: &[&str]) -> Result<String> {
        let out = self.vxnet_timed(args, PROBE_TIMEOUT)?;
        if !out.success() {
            bail!(
                "vxnet {args:?} on {} failed ({}): {}",
                self.name(),
                out.output.status,
                out.stderr().trim()
            );
        }
        Ok(out.stdout())
    }

    /// `cluster token`, trimmed.
    pub fn cluster_token(&self) -> Result<String> {
        let token = self
            .vxnet_checked(&["cluster", "token"])?
            .trim()
            .to_string();
        if token.is_empty() {
            bail!("cluster token on {} printed nothing", self.name());
        }
        Ok(token)
    }

    /// `cluster join ADDR --token TOKEN`.
    pub fn join_cluster(&self, addr: Ipv4Addr, token: &str) -> Result<()> {
        self.vxnet_checked(&["cluster", "join", &addr.to_string(), "--token", token])
            .map(drop)
    }

    /// `cluster members --format json`, parsed.
    pub fn members(&self) -> Result<Vec<Member>> {
        parse_members(&self.probe(&["cluster", "members", "--format", "json"])?)
    }

    /// `fdb NETWORK --format json`, parsed.
    pub fn fdb(&self, network: &str) -> Result<Vec<FdbEntry>> {
        parse_fdb(&self.probe(&["fdb", network, "--format", "json"])?)
    }

    /// Whether this host's FDB of `network` holds `mac` (any kind).
    pub fn fdb_has_mac(&self, network: &str, mac: &str) -> Result<bool> {
        let mac = mac.to_ascii_lowercase();
        Ok(self.fdb(network)?.iter().any(|e| e.mac == mac))
    }

    /// `network inspect NETWORK`, parsed; exactly one network expected.
    pub fn inspect_network(&self, network: &str) -> Result<NetworkInfo> {
        let mut nets = parse_inspect(&self.probe(&["network", "inspect", network])?)?;
        if nets.len() != 1 {
            bail!(
                "inspect {network} on {} gave {} networks",
                self.name(),
                nets.len()
            );
        }
        Ok(nets.remove(0))
    }

    /// Names of every network this host lists (`network ls --format json`), sorted.
    pub fn network_names(&self) -> Result<Vec<String>> {
        crate::vxnet_json::network_names(&self.probe(&["network", "ls", "--format", "json"])?)
    }

    /// Waits (bounded) until this host lists every network of `names`.
    pub fn wait_networks(&self, names: &[&str], timeout: Duration) -> Result<()> {
        cmd::wait_for(
            &format!("{} to list networks {names:?}", self.name()),
            timeout,
            Duration::from_millis(100),
            || {
                let have = self.network_names()?;
                Ok(names
                    .iter()
                    .all(|n| have.iter().any(|h| h == n))
                    .then_some(()))
            },
        )
    }

    /// Waits (bounded) until `network inspect NETWORK` on this host lists exactly the endpoints
    /// named `names` (lab container namespace names); returns that inspect.
    pub fn wait_endpoints(
        &self,
        network: &str,
        names: &[&str],
        timeout: Duration,
    ) -> Result<NetworkInfo> {
        let mut want: Vec<&str> = names.to_vec();
        want.sort_unstable();
        cmd::wait_for(
            &format!("{} to list endpoints {want:?} in {network}", self.name()),
            timeout,
            Duration::from_millis(100),
            || {
                let net = self.inspect_network(network)?;
                let have: Vec<&str> = net.endpoints.iter().map(|e| e.name.as_str()).collect();
                if have == want {
                    Ok(Some(net.clone()))
                } else {
                    bail!("lists {have:?}")
                }
            },
        )
    }

    /// Waits (bounded) until this host's FDB of `network` holds (`present`) or no longer
    /// holds every MAC of `macs`.
    pub fn wait_fdb(
        &self,
        network: &str,
        macs: &[impl AsRef<str> + std::fmt::Debug],
        present: bool,
        timeout: Duration,
    ) -> Result<()> {
        cmd::wait_for(
            &format!(
                "{}'s fdb of {network} to {} {macs:?}",
                self.name(),
                if present { "hold" } else { "drop" }
            ),
            timeout,
            Duration::from_millis(50),
            || {
                let fdb = self.fdb(network)?;
                let ok = macs
                    .iter()
                    .map(|m| m.as_ref().to_ascii_lowercase())
                    .all(|m| fdb.iter().any(|e| e.mac == m) == present);
                if ok {
                    Ok(Some(()))
                } else {
                    bail!("fdb is {fdb:?}")
                }
            },
        )
    }

    /// `network connect NETWORK <container>` without `--ip`; returns the address the daemon
    /// chose, read from inside the container (the one address that was not there before).
    pub fn connect_auto(&self, network: &str, container: &Container) -> Result<Ipv4Addr> {
        let before = container.ipv4_addrs()?;
        self.vxnet_checked(&["network", "connect", network, &container.ns])?;
        let after = container.ipv4_addrs()?;
        let new: Vec<Ipv4Addr> = after
            .iter()
            .filter(|a| !before.contains(a))
            .map(|(_, ip, _)| *ip)
            .collect();
        match new.as_slice() {
            [ip] => Ok(*ip),
            _ => bail!(
                "connect {network} {}: expected one new address in the container, got {after:?} \
                 (before: {before:?})",
                container.ns
            ),
        }
    }
}

/// A lab of `n` vxnet hosts formed into one cluster ([`Lab::form_cluster`] with host 0 as the
/// seed, the others joining in index order).
pub fn cluster_lab(n: usize) -> Result<Lab> {
    let lab = Lab::new(n)?;
    let all: Vec<usize> = (0..n).collect();
    lab.form_cluster(&all)?;
    Ok(lab)
}

/// Whether `ip` lies in `cidr` (`A.B.C.D/LEN`).
pub fn in_subnet(ip: Ipv4Addr, cidr: &str) -> Result<bool> {
    let (net, len) = split_cidr(cidr)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ok(u32::from(ip) & mask == u32::from(net) & mask)
}

impl Lab {
    /// The index of the lab host whose underlay address is `ip`.
    pub fn host_by_addr(&self, ip: Ipv4Addr) -> Option<usize> {
        self.hosts().iter().position(|h| h.addr() == ip)
    }

    /// The lab host indexes of `members`, sorted; an error for a member that is no lab host.
    pub fn member_hosts(&self, members: &[Member]) -> Result<Vec<usize>> {
        let mut hosts = members
            .iter()
            .map(|m| {
                let ip = m.ip()?;
                self.host_by_addr(ip)
                    .ok_or_else(|| anyhow!("member {m:?} is no lab host"))
            })
            .collect::<Result<Vec<_>>>()?;
        hosts.sort_unstable();
        Ok(hosts)
    }

    /// Forms one cluster of `hosts`: the first one's `cluster token`, then `cluster join
    /// <first's address> --token T` on each other host in order, each join waited for until the
    /// first host lists the newcomer (membership changes go one at a time). Returns once every
    /// host of `hosts` lists exactly `hosts` and they agree on a leader (bounded).
    pub fn form_cluster(&self, hosts: &[usize]) -> Result<()> {
        let (&seed, _) = hosts
            .split_first()
            .ok_or_else(|| anyhow!("form_cluster needs at least one host"))?;
        let seed_host = self.host(seed);
        let token = seed_host.cluster_token()?;
        for n in 1..hosts.len() {
            let joiner = self.host(hosts[n]);
            joiner
                .join_cluster(seed_host.addr(), &token)
                .with_context(|| format!("{} joining {}", joiner.name(), seed_host.name()))?;
            self.wait_members(&[seed], &hosts[..=n], CLUSTER_TIMEOUT)?;
        }
        self.wait_members(hosts, hosts, CLUSTER_TIMEOUT)?;
        self.wait_leader(hosts, CLUSTER_TIMEOUT)?;
        Ok(())
    }

    /// Waits (bounded) until `cluster members` on every host of `observers` lists exactly the
    /// hosts `expected`.
    pub fn wait_members(
        &self,
        observers: &[usize],
        expected: &[usize],
        timeout: Duration,
    ) -> Result<()> {
        let want: BTreeSet<usize> = expected.iter().copied().collect();
        for &o in observers {
            let host = self.host(o);
            cmd::wait_for(
                &format!("{} to list members {want:?}", host.name()),
                timeout,
                Duration::from_millis(100),
                || {
                    let have: BTreeSet<usize> =
                        self.member_hosts(&host.members()?)?.into_iter().collect();
                    if have == want {
                        Ok(Some(()))
                    } else {
                        bail!("lists {have:?}")
                    }
                },
            )?;
        }
        Ok(())
    }

    /// The leader as `hosts` see it right now: every host of `hosts` that answers names the
    /// same leader, a majority of them answers, and the leader is one of `hosts`. Hosts that
    /// do not answer (daemon down, cut off) are skipped.
    pub fn leader(&self, hosts: &[usize]) -> Result<usize> {
        let mut seen = BTreeSet::new();
        let mut answered = 0;
        let mut errors = Vec::new();
        for &h in hosts {
            let members = match self.host(h).members() {
                Ok(m) => m,
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    continue;
                }
            };
            answered += 1;
            match leader_of(&members)? {
                Some(l) => {
                    let ip = l.ip()?;
                    seen.insert(
                        self.host_by_addr(ip)
                            .ok_or_else(|| anyhow!("leader {l:?} is no lab host"))?,
                    );
                }
                None => bail!("{} knows no leader", self.host(h).name()),
            }
        }
        if answered * 2 <= hosts.len() {
            bail!(
                "only {answered} of {} hosts answered: {errors:?}",
                hosts.len()
            );
        }
        match (seen.len(), seen.first()) {
            (1, Some(&l)) if hosts.contains(&l) => Ok(l),
            (1, Some(&l)) => bail!(
                "the leader is {}, not one of {hosts:?}",
                self.host(l).name()
            ),
            _ => bail!("hosts disagree on the leader: {seen:?}"),
        }
    }

    /// Polls [`Lab::leader`] until it gives an answer (bounded).
    pub fn wait_leader(&self, hosts: &[usize], timeout: Duration) -> Result<usize> {
        cmd::wait_for(
            &format!("hosts {hosts:?} to agree on a leader"),
            timeout,
            POLL_INTERVAL.max(Duration::from_millis(100)),
            || self.leader(hosts).map(Some),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERS: &str = r#"[
      {"ID":"a1b2","Name":"h0","Addr":"198.18.0.10:7946","Role":"voter","Leader":true,"Reachable":true},
      {"ID":7,"Name":"h1","Addr":"198.18.0.11","Role":"learner","Leader":false,"Reachable":false}]"#;

    #[test]
    fn members_parse_with_both_addr_forms_and_id_types() {
        let m = parse_members(MEMBERS).expect("valid members");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, "a1b2");
        assert_eq!(m[1].id, "7");
        assert_eq!(m[0].ip().expect("ip"), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(m[1].ip().expect("ip"), Ipv4Addr::new(198, 18, 0, 11));
        assert_eq!((m[0].role, m[1].role), (Role::Voter, Role::Learner));
        assert!(!m[1].reachable);
        assert_eq!(
            leader_of(&m).expect("one leader").map(|l| l.name.as_str()),
            Some("h0")
        );
    }

    #[test]
    fn members_contract_breaks_are_errors() {
        // Unknown role, missing key, non-boolean Leader.
        assert!(parse_members(
            r#"[{"ID":"1","Name":"h0","Addr":"x","Role":"boss","Leader":true,"Reachable":true}]"#
        )
        .is_err());
        assert!(parse_members(r#"[{"ID":"1","Name":"h0","Addr":"x","Role":"voter"}]"#).is_err());
        assert!(parse_members(
            r#"[{"ID":"1","Name":"h0","Addr":"x","Role":"voter","Leader":"yes","Reachable":true}]"#
        )
        .is_err());
        assert!(parse_members("{}").is_err());
        let bad_addr = parse_members(
            r#"[{"ID":"1","Name":"h0","Addr":"nowhere","Role":"voter","Leader":false,"Reachable":true}]"#,
        )
        .expect("parses");
        assert!(bad_addr[0].ip().is_err());
    }

    #[test]
    fn two_leaders_is_an_error() {
        let two = MEMBERS.replace("\"Leader\":false", "\"Leader\":true");
        let m = parse_members(&two).expect("parses");
        assert!(leader_of(&m).is_err());
        let none = MEMBERS.replace("\"Leader\":true", "\"Leader\":false");
        let m = parse_members(&none).expect("parses");
        assert_eq!(leader_of(&m).expect("no error"), None);
    }

    #[test]
    fn fdb_parses_local_and_remote_entries() {
        let f = parse_fdb(
            r#"[{"MAC":"02:42:0A:0A:00:02","VTEP":null,"Kind":"local","AgeSeconds":0},
                {"MAC":"02:42:0a:0a:00:03","VTEP":"198.18.0.11","Kind":"control","AgeSeconds":12}]"#,
        )
        .expect("valid fdb");
        assert_eq!(
            f[0].mac, "02:42:0a:0a:00:02",
            "MACs are normalised to lower case"
        );
        assert_eq!(f[0].vtep, None);
        assert_eq!(f[1].vtep, Some(Ipv4Addr::new(198, 18, 0, 11)));
        assert_eq!(f[1].kind, "control");
        assert_eq!(f[1].age_seconds, 12);
        assert!(parse_fdb(r#"[{"MAC":"x","Kind":"local","AgeSeconds":0}]"#).is_err());
        assert!(parse_fdb(r#"[{"MAC":"x","VTEP":"nope","Kind":"l","AgeSeconds":0}]"#).is_err());
    }

    #[test]
    fn inspect_parses_endpoints() {
        let text = r#"[{"Name":"net1","Id":"ab12","Driver":"overlay","VNI":256,"MTU":1450,
            "IPAM":{"Config":[{"Subnet":"10.128.0.0/24","Gateway":"10.128.0.1","IPRange":""}]},
            "Peers":[],"Labels":{},
            "Containers":{
              "e2":{"Name":"vl1x0-c2","EndpointID":"e2","MacAddress":"02:42:0A:80:00:03",
                    "IPv4Address":"10.128.0.3/24","Host":"h1","Aliases":[]},
              "e1":{"Name":"vl1x0-c1","EndpointID":"e1","MacAddress":"02:42:0a:80:00:02",
                    "IPv4Address":"10.128.0.2/24","Host":"h0","Aliases":[]}}}]"#;
        let nets = parse_inspect(text).expect("valid inspect");
        assert_eq!(nets.len(), 1);
        let n = &nets[0];
        assert_eq!(
            (n.name.as_str(), n.id.as_str(), n.vni),
            ("net1", "ab12", 256)
        );
        assert_eq!(n.subnet, "10.128.0.0/24");
        assert_eq!(n.gateway, Some(Ipv4Addr::new(10, 128, 0, 1)));
        assert_eq!(n.endpoints.len(), 2);
        assert_eq!(n.endpoints[0].name, "vl1x0-c1", "sorted by name");
        let c2 = n.endpoint("vl1x0-c2").expect("c2 listed");
        assert_eq!(c2.ipv4, Ipv4Addr::new(10, 128, 0, 3));
        assert_eq!(c2.mac, "02:42:0a:80:00:03");
        assert_eq!(c2.host, "h1");
        assert!(n.endpoint("vl1x0-c3").is_none());
        let empty = text.replace("\"Containers\":{", "\"Containers\":null,\"X\":{");
        assert!(parse_inspect(&empty)
            .expect("null containers")
            .remove(0)
            .endpoints
            .is_empty());
        assert!(parse_inspect(r#"[{"Name":"n"}]"#).is_err());
    }

    #[test]
    fn ipv4_addrs_from_ip_o() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                    12: eth0    inet 10.128.0.2/24 brd 10.128.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        let a = parse_ipv4_addrs(text).expect("parses");
        assert_eq!(
            a,
            vec![
                ("lo".to_string(), Ipv4Addr::new(127, 0, 0, 1), 8),
                ("eth0".to_string(), Ipv4Addr::new(10, 128, 0, 2), 24)
            ]
        );
        assert!(parse_ipv4_addrs("").expect("empty is fine").is_empty());
        assert!(parse_ipv4_addrs("2: eth0 link/ether").is_err());
    }

    #[test]
    fn subnets() {
        let ip = Ipv4Addr::new(10, 128, 0, 7);
        assert!(in_subnet(ip, "10.128.0.0/24").expect("valid"));
        assert!(!in_subnet(ip, "10.128.1.0/24").expect("valid"));
        assert!(in_subnet(ip, "0.0.0.0/0").expect("valid"));
        assert!(in_subnet(ip, "10.128.0.7/32").expect("valid"));
        assert!(in_subnet(ip, "bad").is_err());
    }

    #[test]
    fn macs_and_error_lines() {
        assert_eq!(mac_for(Ipv4Addr::new(10, 128, 0, 3)), "02:42:0a:80:00:03");
        assert!(is_one_error_line("vxnet: no quorum; retry later\n"));
        assert!(!is_one_error_line("vxnet: a\nvxnet: b\n"));
        assert!(!is_one_error_line("error: something\n"));
        assert!(!is_one_error_line(""));
    }
}
