//! Egress: how a container on an overlay reaches beyond it — Docker's `docker_gwbridge` role,
//! without a second interface in the container.
//!
//! ```text
//!  container ── eth0 ── veth ── br0 (gateway) ─┐ sandbox: ip_forward, masquerade to T+1
//!                                              transit0 (T+1/31)
//!                                                 │ veth pair
//!  host namespace:                             vxg<network id> (T/31) ── routing ── uplink
//!                                              masquerade to the uplink's address
//! ```
//!
//! Rules:
//! - **One transit link per network and host** (not for `--internal` networks): a veth pair
//!   whose host end is `vxg` + the first 12 hex digits of the network id, whose sandbox end is
//!   [`TRANSIT_NAME`], addressed from a /31 in [`TRANSIT_RANGE`] (host end even, sandbox end
//!   odd). The slot is the lowest /31 no link of the host namespace uses yet; an existing
//!   transit link keeps its slot across daemon restarts.
//! - **Overlapping subnets work** because the host never sees a container address: each
//!   sandbox masquerades what leaves through its transit link to its own transit address, and
//!   the host masquerades that again to the address of the interface it leaves by.
//! - **nftables, in vxnet's own tables only.** The host gets one table, `ip vxnet` (see
//!   [`host_ruleset`]); each sandbox gets its own `ip vxnet` (see [`sandbox_ruleset`]). A
//!   ruleset is replaced whole in one `nft -f` transaction (create, delete, fill: atomic, and
//!   idempotent at every start); nobody else's tables or chains are read, flushed or
//!   reordered. The host table also refuses new connections *into* a sandbox unless a
//!   published port's DNAT made them, so one network cannot reach another's sandbox through
//!   the host.
//! - IPv4 forwarding is switched on in each sandbox and in the host namespace (as Docker does),
//!   the first time a network with egress starts.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::error::HostError;
use super::publish::{self, Publish};

/// The sandbox end of the transit link.
pub const TRANSIT_NAME: &str = "transit0";
/// Prefix of the host end's name.
pub const HOST_PREFIX: &str = "vxg";
/// Where transit addresses come from: link-local space, below 169.254.128.0 so that the
/// metadata address clouds use (169.254.169.254) is never taken.
pub const TRANSIT_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(169, 254, 0, 0), 17);
/// How many /31s [`TRANSIT_RANGE`] holds: networks with egress one host can run at once.
pub const TRANSIT_SLOTS: u32 = 1 << (31 - TRANSIT_RANGE.1);
/// The nftables table vxnet owns, in the host namespace and in each sandbox.
pub const TABLE: &str = "vxnet";

/// The host end's name for a network.
pub fn host_end_name(network_id: &str) -> String {
    format!("{HOST_PREFIX}{}", &network_id[..12.min(network_id.len())])
}

/// The two addresses of transit slot `slot`: (host end, sandbox end), both /31.
pub fn transit_addrs(slot: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(TRANSIT_RANGE.0) + 2 * (slot % TRANSIT_SLOTS);
    (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
}

/// The slot an address of the transit range belongs to, if it is one.
pub fn slot_of(ip: Ipv4Addr) -> Option<u32> {
    let offset = u32::from(ip).checked_sub(u32::from(TRANSIT_RANGE.0))?;
    (offset / 2 < TRANSIT_SLOTS).then_some(offset / 2)
}

/// The lowest slot not in `used`, if any is left.
pub fn free_slot(used: impl IntoIterator<Item = u32>) -> Option<u32> {
    let used: std::collections::BTreeSet<u32> = used.into_iter().collect();
    (0..TRANSIT_SLOTS).find(|s| !used.contains(s))
}

/// The host namespace's table: masquerade what the sandboxes send out of the host (and what
/// the host sends from 127.0.0.1 to a published port), let into a sandbox only replies and
/// connections a published port's DNAT made, and the DNATs of `ports` (each with the
/// transit address of its sandbox; see [`publish`]). VXLAN itself (UDP `vxlan_port`) is kept
/// out of conntrack: the nat hooks would otherwise make the kernel track every tunnel flow,
/// which costs the forwarding path and buys nothing.
pub fn host_ruleset(ports: &[(Publish, Ipv4Addr)], vxlan_port: u16) -> String {
    let (range, len) = TRANSIT_RANGE;
    let ends = format!("\"{HOST_PREFIX}*\"");
    replace_table(&format!(
        "\tchain raw_prerouting {{\n\
         \t\ttype filter hook prerouting priority -300; policy accept;\n\
         \t\tudp dport {vxlan_port} notrack\n\
         \t}}\n\
         \tchain raw_output {{\n\
         \t\ttype filter hook output priority -300; policy accept;\n\
         \t\tudp dport {vxlan_port} notrack\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority 100; policy accept;\n\
         \t\tip saddr {range}/{len} oifname != {ends} masquerade\n\
         \t\tip saddr 127.0.0.0/8 oifname {ends} masquerade\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority 0; policy accept;\n\
         \t\toifname {ends} ct state established,related accept\n\
         \t\toifname {ends} ct status dnat accept\n\
         \t\toifname {ends} drop\n\
         \t}}\n{}",
        publish::host_rules(ports)
    ))
}

/// A sandbox's table: what leaves by the transit link is masqueraded to the sandbox's transit
/// address; published `ports` arriving on it go to their containers.
pub fn sandbox_ruleset(ports: &[Publish]) -> String {
    replace_table(&format!(
        "\tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority 100; policy accept;\n\
         \t\toifname \"{TRANSIT_NAME}\" masquerade\n\
         \t}}\n{}",
        publish::sandbox_rules(TRANSIT_NAME, ports)
    ))
}

/// An `nft -f` script that replaces table `ip vxnet` by one holding `body`, atomically: the
/// first line makes sure the delete has something to delete.
fn replace_table(body: &str) -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n{body}}}\n")
}

/// An `nft -f` script that removes vxnet's table, if it is there.
pub fn remove_table() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// Runs `nft -f -` with `script`, in the calling thread's network namespace (a child process
/// starts in the namespace of the thread that forks it).
pub fn nft_apply(script: &str) -> Result<(), HostError> {
    nft(&["-f", "-"], Some(script)).map(drop)
}

/// Runs `nft` with `args` (and `stdin`, if any) in the calling thread's network namespace;
/// returns what it printed.
pub fn nft(args: &[&str], stdin: Option<&str>) -> Result<String, HostError> {
    let op = || format!("run `nft {}`", args.join(" "));
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HostError::NftMissing,
            _ => HostError::os(op(), e),
        })?;
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| HostError::os(op(), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| HostError::os(op(), e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // nft points at the offending line over three; one line reads better in a log.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Err(HostError::Nft {
        message: message.join(" | "),
    })
}

/// Switches IPv4 forwarding on in the calling thread's namespace (see
/// [`super::sandbox`] on /proc/sys/net).
pub fn enable_forwarding_here() -> Result<(), HostError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read(path).is_ok_and(|v| v.starts_with(b"1")) {
        return Ok(());
    }
    std::fs::write(path, b"1").map_err(|e| HostError::os(format!("write {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_distinct_slash_31s_inside_the_range() {
        assert_eq!(
            transit_addrs(0),
            (Ipv4Addr::new(169, 254, 0, 0), Ipv4Addr::new(169, 254, 0, 1))
        );
        assert_eq!(
            transit_addrs(200),
            (
                Ipv4Addr::new(169, 254, 1, 144),
                Ipv4Addr::new(169, 254, 1, 145)
            )
        );
        let (host, sandbox) = transit_addrs(TRANSIT_SLOTS - 1);
        assert_eq!(sandbox, Ipv4Addr::new(169, 254, 127, 255));
        assert_eq!(
            (slot_of(host), slot_of(sandbox)),
            (Some(TRANSIT_SLOTS - 1), Some(TRANSIT_SLOTS - 1))
        );
        assert_eq!(slot_of(Ipv4Addr::new(169, 254, 169, 254)), None);
        assert_eq!(slot_of(Ipv4Addr::new(10, 0, 0, 1)), None);
    }

    #[test]
    fn free_slot_takes_the_lowest_gap() {
        assert_eq!(free_slot([]), Some(0));
        assert_eq!(free_slot([0, 1, 3]), Some(2));
        assert_eq!(free_slot(0..TRANSIT_SLOTS), None);
    }

    #[test]
    fn rulesets_replace_only_vxnets_table() {
        for script in [host_ruleset(&[], 4789), sandbox_ruleset(&[])] {
            let lines: Vec<&str> = script.lines().collect();
            assert_eq!(
                lines[..3],
                [
                    "table ip vxnet",
                    "delete table ip vxnet",
                    "table ip vxnet {"
                ]
            );
            assert!(!script.contains("flush"), "{script}");
            assert_eq!(script.matches("table ").count(), 3, "{script}");
        }
        assert!(host_ruleset(&[], 4789)
            .contains("ip saddr 169.254.0.0/17 oifname != \"vxg*\" masquerade"));
        assert!(sandbox_ruleset(&[]).contains("oifname \"transit0\" masquerade"));
        assert_eq!(host_end_name(&"ab".repeat(32)), "vxgabababababab");
    }
}
