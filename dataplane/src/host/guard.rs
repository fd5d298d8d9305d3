//! The sandbox's guard: a container sends only as itself.
//!
//! Two containers on one host talk across `br0` alone, so what a container may put on the
//! bridge is checked in the bridge, by the kernel: one nftables table `bridge vxnet` per
//! sandbox, whose `prerouting` chain sees every frame a port hands the bridge — before the
//! bridge learns its source MAC, delivers it locally or passes it to the TAP.
//!
//! Rules, for a frame that enters `br0` from an endpoint's veth:
//! - its source MAC is the endpoint's (from the replicated state), else it is dropped
//!   (`spoofed_source_mac`) — so the bridge can never learn another endpoint's MAC on the
//!   wrong port, and a frame from a port no endpoint owns is dropped too;
//! - IPv4 carries the endpoint's address as source (`spoofed_source_ip`);
//! - ARP carries the endpoint's MAC and address as sender (`spoofed_arp`), or no address at
//!   all (`0.0.0.0`, a probe). Answers and announcements for every other address of the
//!   network come only from the ARP proxy (see [`crate::core::forward`]), through the TAP;
//! - anything else is dropped (`foreign_ethertype`): IPv6 is off on overlays, and a VLAN tag
//!   would carry a packet past the address checks.
//!
//! Frames from the TAP (`vxtap0`) are the forwarding core's to check, not the guard's.
//!
//! The table is rendered from the program as text and replaced whole in one `nft -f`
//! transaction, like the sandbox's `ip vxnet` table (see [`super::egress`]): idempotent at every
//! start, and redone whenever the local endpoints change. Each refusal reason is a named
//! counter; a new table starts its counters where the old one's stood, so connecting a
//! container or restarting the daemon does not set them back.

use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::egress::TABLE;
use super::error::HostError;
use super::sandbox::{Sandbox, TAP_NAME};
use crate::core::counters::DropReason;
use crate::wire::MacAddr;

/// The reasons the guard counts, each a named counter of its table.
pub const REASONS: [DropReason; 4] = [
    DropReason::SpoofedSourceMac,
    DropReason::SpoofedSourceIp,
    DropReason::SpoofedArp,
    DropReason::ForeignEthertype,
];

/// `nft` arguments that print the guard's counters as JSON (see [`parse_counters`]).
pub const LIST_COUNTERS: [&str; 6] = ["-j", "list", "counters", "table", "bridge", TABLE];

/// How old the counters [`Guard::counts`] gives a sampling caller may be.
pub const COUNTERS_MAX_AGE: Duration = Duration::from_secs(10);
/// How many sandboxes' counters one sampled reading ([`super::Host::stats_sampled`]) may
/// read from the kernel: each is an `nft` run of some milliseconds on the control thread.
pub const SAMPLED_READS: usize = 4;

/// One sandbox's guard: the ports it was last applied for, and its counters as last read.
#[derive(Debug, Default)]
pub struct Guard {
    ports: Option<Vec<GuardedPort>>,
    reading: Mutex<Reading>,
}

#[derive(Debug, Default)]
struct Reading {
    /// `None`: never read.
    at: Option<Instant>,
    counts: Vec<(DropReason, u64)>,
}

impl Guard {
    /// Puts the guard of `ports` into `sandbox`, unless it is there already (a new table's
    /// counters start where the old one's stand).
    pub fn ensure(&mut self, sandbox: &Sandbox, ports: Vec<GuardedPort>) -> Result<(), HostError> {
        if self.ports.as_ref() == Some(&ports) {
            return Ok(());
        }
        // A table that is not there yet (a new sandbox) has nothing to carry over.
        let counts = read_counts(sandbox).unwrap_or_default();
        sandbox.apply_rules(ruleset(&ports, &counts))?;
        self.ports = Some(ports);
        Ok(())
    }

    /// The guard's counters, read from `sandbox` again if the last reading is older than
    /// `max_age` and `reads` (the caller's budget of `nft` runs) is not used up; a reading
    /// that fails gives the last one (and a debug line).
    pub fn counts(
        &self,
        sandbox: &Sandbox,
        max_age: Duration,
        reads: &mut usize,
    ) -> Vec<(DropReason, u64)> {
        let mut last = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let stale = last
            .at
            .is_none_or(|at| now.saturating_duration_since(at) >= max_age);
        if stale && self.ports.is_some() && *reads > 0 {
            *reads -= 1;
            match read_counts(sandbox) {
                Ok(counts) => {
                    *last = Reading {
                        at: Some(now),
                        counts,
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the sandbox guard's counters"),
            }
        }
        last.counts.clone()
    }
}

/// The guard's counters as the kernel has them now.
fn read_counts(sandbox: &Sandbox) -> Result<Vec<(DropReason, u64)>, HostError> {
    Ok(parse_counters(&sandbox.nft_query(&LIST_COUNTERS)?))
}

/// A local endpoint's bridge port and what it may send as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedPort {
    /// The sandbox end of its veth.
    pub veth: String,
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
}

/// The `nft -f` script that replaces the sandbox's `bridge vxnet` table by the guard of
/// `ports`, its counters starting at `counts` (as [`parse_counters`] read them).
pub fn ruleset(ports: &[GuardedPort], counts: &[(DropReason, u64)]) -> String {
    let counters: String = REASONS
        .iter()
        .map(|&r| {
            let n = counts.iter().find(|(c, _)| *c == r).map_or(0, |&(_, n)| n);
            format!("\tcounter {} {{ packets {n} bytes 0 }}\n", r.as_str())
        })
        .collect();
    let macs = elements(ports.iter().map(|p| format!("\"{}\" . {}", p.veth, p.mac)));
    let ips = elements(ports.iter().map(|p| format!("\"{}\" . {}", p.veth, p.ipv4)));
    let count = |r: DropReason| format!("counter name \"{}\" drop", r.as_str());
    format!(
        "table bridge {TABLE}\n\
         delete table bridge {TABLE}\n\
         table bridge {TABLE} {{\n\
         {counters}\
         \tset port_macs {{ type ifname . ether_addr;{macs} }}\n\
         \tset port_ipv4 {{ type ifname . ipv4_addr;{ips} }}\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority -200; policy accept;\n\
         \t\tiifname \"{TAP_NAME}\" accept\n\
         \t\tiifname . ether saddr != @port_macs {mac}\n\
         \t\tether type ip iifname . ip saddr != @port_ipv4 {ip}\n\
         \t\tether type ip accept\n\
         \t\tether type arp iifname . arp saddr ether != @port_macs {arp}\n\
         \t\tether type arp arp saddr ip 0.0.0.0 accept\n\
         \t\tether type arp iifname . arp saddr ip != @port_ipv4 {arp}\n\
         \t\tether type arp accept\n\
         \t\t{other}\n\
         \t}}\n\
         }}\n",
        mac = count(DropReason::SpoofedSourceMac),
        ip = count(DropReason::SpoofedSourceIp),
        arp = count(DropReason::SpoofedArp),
        other = count(DropReason::ForeignEthertype),
    )
}

/// ` elements = { a, b }`, or nothing for an empty set (nft refuses `{ }`).
fn elements(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }}", items.join(", "))
    }
}

/// The guard's counters from `nft -j list counters table bridge vxnet`, as (reason, packets),
/// non-zero ones only. Counters that are not the guard's are skipped; output that is not
/// what nft prints gives nothing.
pub fn parse_counters(json: &str) -> Vec<(DropReason, u64)> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let Some(items) = value.get("nftables").and_then(|v| v.as_array()) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let counter = item.get("counter")?;
            let reason = DropReason::from_name(counter.get("name")?.as_str()?)?;
            let packets = counter.get("packets")?.as_u64()?;
            (REASONS.contains(&reason) && packets > 0).then_some((reason, packets))
        })
        .collect()
}

/// `a` and `b` added up per reason, non-zero ones in the order of [`DropReason::ALL`].
pub fn add_counts(a: &[(DropReason, u64)], b: &[(DropReason, u64)]) -> Vec<(DropReason, u64)> {
    DropReason::ALL
        .iter()
        .map(|&r| {
            let n: u64 = a
                .iter()
                .chain(b)
                .filter(|(c, _)| *c == r)
                .map(|(_, n)| n)
                .sum();
            (r, n)
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

#[cfg(test)]
mod tests;
