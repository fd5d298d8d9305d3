//! The forwarding database of one network: which VTEP a MAC lives behind, the IPv4→MAC table
//! the ARP proxy answers from, and the VTEPs floods go to and datagrams may come from.
//!
//! Two tables, one writer side each:
//! - The **control table** ([`ControlTable`]) holds what the control plane placed: endpoints
//!   on this host (`local`) and on others (`control`), and the VTEP lists. It is immutable;
//!   [`Fdb::install`] builds the next one and swaps it in with one atomic store, so a reader
//!   sees the old table or the new one, never a mix, and a removed endpoint cannot linger.
//!   Only the control plane calls `install`.
//! - The **learned table** holds what the receive path saw on the wire. Only the receive
//!   threads write it ([`Fdb::learn`], [`Fdb::learn_arp`], [`Fdb::expire`]): one per worker,
//!   each write one insert under its shard's lock, so two threads that see one key at once
//!   leave one of their two observations, and the key's next datagram refreshes it.
//!
//! Rules:
//! - Control entries win: a lookup asks the control table first, and learning a MAC or an
//!   address the control table holds is refused.
//! - When the control plane drops a MAC or an address, what was learned of it before is
//!   forgotten at once: each table has a generation, every learned entry records the
//!   generation it was last seen under, and the control table remembers for one aging time
//!   the generation at which it retired each MAC and address. A learned entry older than its
//!   key's retirement is invisible, and the next sweep removes it.
//! - Learned entries expire `aging` after they were last refreshed; an expired entry is never
//!   returned by a lookup, even before [`Fdb::expire`] sweeps it away.
//! - Time is an input (`now`); nothing here reads a clock.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::wire::MacAddr;

pub const DEFAULT_AGING: Duration = Duration::from_secs(300);

/// Refreshing a learned entry takes a write lock on its shard; once a second is enough to keep
/// a busy flow's entry alive without taking that lock per packet.
const REFRESH_GRANULARITY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FdbKind {
    /// An endpoint on this host.
    Local,
    /// An endpoint the control plane placed on another host.
    Control,
    /// A static peer outside the cluster: receives every flood.
    Static,
    /// Seen on the wire.
    Learned,
}

impl FdbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FdbKind::Local => "local",
            FdbKind::Control => "control",
            FdbKind::Static => "static",
            FdbKind::Learned => "learned",
        }
    }
}

/// Where a frame for a MAC goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbTarget {
    /// Behind this host's bridge: the kernel bridge already delivers it.
    Local,
    Remote(Ipv4Addr),
}

/// A control-plane entry: the MAC and address of an endpoint, and where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlEntry {
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub target: FdbTarget,
}

/// The VTEPs of one network.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VtepSet {
    /// Receivers of broadcast and multicast.
    pub flood: Vec<Ipv4Addr>,
    /// Senders whose datagrams are accepted (the flood list is accepted too).
    pub trusted: Vec<Ipv4Addr>,
    /// Static peers (kernel or hardware VTEPs outside the cluster): the only receivers of
    /// unknown unicast, since only behind them can a MAC live that the control plane does
    /// not know. They are in `flood` too.
    pub peers: Vec<Ipv4Addr>,
}

impl VtepSet {
    /// A set where every VTEP receives floods and unknown unicast and is trusted (static
    /// peers).
    pub fn symmetric(mut vteps: Vec<Ipv4Addr>) -> VtepSet {
        vteps.sort_unstable();
        vteps.dedup();
        VtepSet {
            flood: vteps.clone(),
            trusted: vteps.clone(),
            peers: vteps,
        }
    }
}

/// One row of `vxnet fdb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbRow {
    pub mac: MacAddr,
    pub vtep: Option<Ipv4Addr>,
    pub kind: FdbKind,
    pub age: Duration,
}

/// When the control plane let go of a key: its generation, and the time (to forget it once
/// everything learned before it has aged out anyway).
#[derive(Debug, Clone, Copy)]
struct Retired {
    generation: u64,
    at: Instant,
}

/// Everything the control plane programmed into a network, as of one [`Fdb::install`].
#[derive(Debug, Default)]
pub struct ControlTable {
    generation: u64,
    macs: HashMap<MacAddr, FdbTarget>,
    arp: HashMap<Ipv4Addr, MacAddr>,
    retired_macs: HashMap<MacAddr, Retired>,
    retired_ips: HashMap<Ipv4Addr, Retired>,
    flood: Arc<[Ipv4Addr]>,
    peers: Arc<[Ipv4Addr]>,
    /// Sorted, for a binary search per datagram.
    trusted: Box<[Ipv4Addr]>,
    installed: Option<Instant>,
}

impl ControlTable {
    /// Receivers of broadcast and multicast.
    pub fn flood(&self) -> &Arc<[Ipv4Addr]> {
        &self.flood
    }

    /// Receivers of unknown unicast: the static peers.
    pub fn peers(&self) -> &Arc<[Ipv4Addr]> {
        &self.peers
    }

    /// Where the control plane placed `mac`, if it did (learned entries aside).
    pub fn placed(&self, mac: MacAddr) -> Option<FdbTarget> {
        self.macs.get(&mac).copied()
    }

    /// The MAC the control plane gives `ip`, if it does.
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.arp.get(&ip).copied()
    }

    /// Whether datagrams from `vtep` are accepted.
    pub fn trusts(&self, vtep: Ipv4Addr) -> bool {
        self.trusted.binary_search(&vtep).is_ok()
    }

    /// Whether a learned entry for `key`, last seen under `generation`, predates the
    /// control plane letting go of that key.
    fn outdates<K: std::hash::Hash + Eq>(
        retired: &HashMap<K, Retired>,
        key: &K,
        generation: u64,
    ) -> bool {
        retired.get(key).is_some_and(|r| r.generation > generation)
    }
}

#[derive(Debug, Clone, Copy)]
struct Learned<T> {
    value: T,
    updated: Instant,
    generation: u64,
}

#[derive(Debug)]
pub struct Fdb {
    control: ArcSwap<ControlTable>,
    macs: DashMap<MacAddr, Learned<Ipv4Addr>>,
    arp: DashMap<Ipv4Addr, Learned<MacAddr>>,
    aging: Duration,
}

impl Fdb {
    pub fn new(aging: Duration) -> Fdb {
        Fdb {
            control: ArcSwap::from_pointee(ControlTable::default()),
            macs: DashMap::new(),
            arp: DashMap::new(),
            aging,
        }
    }

    /// The control table now in force.
    pub fn control(&self) -> arc_swap::Guard<Arc<ControlTable>> {
        self.control.load()
    }

    fn fresh(&self, updated: Instant, now: Instant) -> bool {
        now.saturating_duration_since(updated) < self.aging
    }

    /// Replaces everything the control plane programmed — endpoints and VTEP lists — in one
    /// swap. Only the control plane calls this.
    pub fn install(&self, entries: &[ControlEntry], vteps: &VtepSet, now: Instant) {
        let old = self.control.load_full();
        let generation = old.generation + 1;
        let macs: HashMap<MacAddr, FdbTarget> = entries.iter().map(|c| (c.mac, c.target)).collect();
        let arp: HashMap<Ipv4Addr, MacAddr> = entries.iter().map(|c| (c.ipv4, c.mac)).collect();
        let retired = Retired {
            generation,
            at: now,
        };
        let retired_macs = retire(&old.retired_macs, &old.macs, &macs, retired, self.aging);
        let retired_ips = retire(&old.retired_ips, &old.arp, &arp, retired, self.aging);
        let mut trusted = vteps.trusted.clone();
        trusted.extend_from_slice(&vteps.flood);
        trusted.sort_unstable();
        trusted.dedup();
        self.control.store(Arc::new(ControlTable {
            generation,
            macs,
            arp,
            retired_macs,
            retired_ips,
            flood: vteps.flood.as_slice().into(),
            peers: vteps.peers.as_slice().into(),
            trusted: trusted.into(),
            installed: Some(now),
        }));
    }

    /// The VTEP lists now in force.
    pub fn vteps(&self) -> VtepSet {
        let c = self.control();
        VtepSet {
            flood: c.flood.to_vec(),
            trusted: c.trusted.to_vec(),
            peers: c.peers.to_vec(),
        }
    }

    pub fn lookup(&self, mac: MacAddr, now: Instant) -> Option<FdbTarget> {
        let control = self.control();
        if let Some(&target) = control.macs.get(&mac) {
            return Some(target);
        }
        let e = *self.macs.get(&mac)?;
        let valid = self.fresh(e.updated, now)
            && !ControlTable::outdates(&control.retired_macs, &mac, e.generation);
        valid.then_some(FdbTarget::Remote(e.value))
    }

    /// The MAC that owns `ip`, if the control plane placed it or it was learned and is fresh.
    pub fn arp_lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<MacAddr> {
        let control = self.control();
        if let Some(&mac) = control.arp.get(&ip) {
            return Some(mac);
        }
        let e = *self.arp.get(&ip)?;
        let valid = self.fresh(e.updated, now)
            && !ControlTable::outdates(&control.retired_ips, &ip, e.generation);
        valid.then_some(e.value)
    }

    /// Records that `mac` was seen behind `vtep` (receive threads only). Returns false when a
    /// control-plane entry owns the MAC: learning never overrides it.
    pub fn learn(&self, mac: MacAddr, vtep: Ipv4Addr, now: Instant) -> bool {
        let generation = {
            let control = self.control();
            if control.macs.contains_key(&mac) {
                return false;
            }
            control.generation
        };
        refresh(&self.macs, mac, vtep, generation, now);
        true
    }

    /// Records that `ip` answered from `mac` (an ARP packet from the wire; receive
    /// threads only). Control entries win.
    pub fn learn_arp(&self, ip: Ipv4Addr, mac: MacAddr, now: Instant) {
        if ip.is_unspecified() || !mac.is_unicast_source() {
            return;
        }
        let generation = {
            let control = self.control();
            if control.arp.contains_key(&ip) {
                return;
            }
            control.generation
        };
        refresh(&self.arp, ip, mac, generation, now);
    }

    /// Removes learned entries older than the aging time, or older than the control plane's
    /// letting go of their key (receive threads only). Returns how many went.
    pub fn expire(&self, now: Instant) -> usize {
        let control = self.control();
        let before = self.macs.len() + self.arp.len();
        self.macs.retain(|mac, e| {
            self.fresh(e.updated, now)
                && !ControlTable::outdates(&control.retired_macs, mac, e.generation)
        });
        self.arp.retain(|ip, e| {
            self.fresh(e.updated, now)
                && !ControlTable::outdates(&control.retired_ips, ip, e.generation)
        });
        before - (self.macs.len() + self.arp.len())
    }

    /// Live MAC entries, sorted by kind then MAC; control entries show their age since the
    /// last install.
    pub fn rows(&self, now: Instant) -> Vec<FdbRow> {
        let control = self.control();
        let installed = control.installed.unwrap_or(now);
        let mut rows: Vec<FdbRow> = control
            .macs
            .iter()
            .map(|(&mac, &target)| FdbRow {
                mac,
                vtep: match target {
                    FdbTarget::Local => None,
                    FdbTarget::Remote(ip) => Some(ip),
                },
                kind: match target {
                    FdbTarget::Local => FdbKind::Local,
                    FdbTarget::Remote(_) => FdbKind::Control,
                },
                age: now.saturating_duration_since(installed),
            })
            .collect();
        rows.extend(
            self.macs
                .iter()
                .filter(|e| !control.macs.contains_key(e.key()))
                .filter(|e| {
                    self.fresh(e.updated, now)
                        && !ControlTable::outdates(&control.retired_macs, e.key(), e.generation)
                })
                .map(|e| FdbRow {
                    mac: *e.key(),
                    vtep: Some(e.value),
                    kind: FdbKind::Learned,
                    age: now.saturating_duration_since(e.updated),
                }),
        );
        rows.sort_by_key(|r| (r.kind, r.mac));
        rows
    }
}

/// The retirements of the next control table: those of the last one still within an aging
/// time of `now`, and every key the last table held and the next one does not.
fn retire<K, V, W>(
    retired: &HashMap<K, Retired>,
    old: &HashMap<K, V>,
    new: &HashMap<K, W>,
    now: Retired,
    aging: Duration,
) -> HashMap<K, Retired>
where
    K: std::hash::Hash + Eq + Copy,
{
    retired
        .iter()
        .filter(|(_, r)| now.at.saturating_duration_since(r.at) < aging)
        .map(|(k, r)| (*k, *r))
        .chain(
            old.keys()
                .filter(|k| !new.contains_key(k))
                .map(|k| (*k, now)),
        )
        .collect()
}

/// Inserts or refreshes a learned entry; a fresh entry with the same value and generation is
/// left alone, so that a busy flow does not take the shard's write lock per packet.
fn refresh<K, T>(table: &DashMap<K, Learned<T>>, key: K, value: T, generation: u64, now: Instant)
where
    K: std::hash::Hash + Eq,
    T: Copy + PartialEq,
{
    if let Some(e) = table.get(&key) {
        let recent = now.saturating_duration_since(e.updated) < REFRESH_GRANULARITY;
        if e.value == value && e.generation == generation && recent {
            return;
        }
    }
    table.insert(
        key,
        Learned {
            value,
            updated: now,
            generation,
        },
    );
}

#[cfg(test)]
mod tests;
