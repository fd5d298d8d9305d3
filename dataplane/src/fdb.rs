//! The forwarding database of one network: which VTEP a MAC lives behind, and the IPv4→MAC
//! table the ARP proxy answers from.
//!
//! Rules:
//! - Entries have a kind. `Local` (an endpoint on this host) and `Control` (an endpoint the
//!   control plane placed on another host) are written only by the control plane, through
//!   [`Fdb::set_control_entries`], which replaces the whole set in one call so that a removed
//!   endpoint cannot linger. `Learned` entries are written only by the receive path.
//! - Learning never overrides a control-plane entry, and control entries replace learned ones.
//! - Learned entries expire `aging` after they were last refreshed; an expired entry is never
//!   returned by a lookup, even before [`Fdb::expire`] sweeps it away.
//! - Time is an input (`now`); nothing here reads a clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::wire::MacAddr;

pub const DEFAULT_AGING: Duration = Duration::from_secs(300);

/// Refreshing a learned entry takes a write lock on its shard; once a second is enough to keep
/// a busy flow's entry alive without taking that lock per packet.
const REFRESH_GRANULARITY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FdbKind {
    Local,
    Control,
    Static,
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

#[derive(Debug, Clone, Copy)]
struct FdbEntry {
    kind: FdbKind,
    target: FdbTarget,
    updated: Instant,
}

/// A control-plane entry: the MAC and address of an endpoint, and where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlEntry {
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub target: FdbTarget,
}

/// One row of `vxnet fdb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbRow {
    pub mac: MacAddr,
    pub vtep: Option<Ipv4Addr>,
    pub kind: FdbKind,
    pub age: Duration,
}

#[derive(Debug, Clone, Copy)]
struct ArpEntry {
    mac: MacAddr,
    learned: bool,
    updated: Instant,
}

#[derive(Debug)]
pub struct Fdb {
    macs: DashMap<MacAddr, FdbEntry>,
    arp: DashMap<Ipv4Addr, ArpEntry>,
    aging: Duration,
}

impl Fdb {
    pub fn new(aging: Duration) -> Fdb {
        Fdb {
            macs: DashMap::new(),
            arp: DashMap::new(),
            aging,
        }
    }

    fn live(&self, kind: FdbKind, updated: Instant, now: Instant) -> bool {
        kind != FdbKind::Learned || now.saturating_duration_since(updated) < self.aging
    }

    pub fn lookup(&self, mac: MacAddr, now: Instant) -> Option<FdbTarget> {
        let e = *self.macs.get(&mac)?;
        self.live(e.kind, e.updated, now).then_some(e.target)
    }

    /// The MAC that owns `ip`, if the control plane placed it or it was learned and is fresh.
    pub fn arp_lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<MacAddr> {
        let e = *self.arp.get(&ip)?;
        let kind = if e.learned {
            FdbKind::Learned
        } else {
            FdbKind::Control
        };
        self.live(kind, e.updated, now).then_some(e.mac)
    }

    /// Records that `mac` was seen behind `vtep`. Returns false when a control-plane entry
    /// owns the MAC (learning never overrides it).
    pub fn learn(&self, mac: MacAddr, vtep: Ipv4Addr, now: Instant) -> bool {
        if let Some(e) = self.macs.get(&mac) {
            if e.kind != FdbKind::Learned {
                return false;
            }
            let fresh = now.saturating_duration_since(e.updated) < REFRESH_GRANULARITY;
            if e.target == FdbTarget::Remote(vtep) && fresh {
                return true;
            }
        }
        let mut refused = false;
        self.macs
            .entry(mac)
            .and_modify(|e| {
                // Re-checked under the write lock: the control plane may have won the race.
                if e.kind == FdbKind::Learned {
                    e.target = FdbTarget::Remote(vtep);
                    e.updated = now;
                } else {
                    refused = true;
                }
            })
            .or_insert(FdbEntry {
                kind: FdbKind::Learned,
                target: FdbTarget::Remote(vtep),
                updated: now,
            });
        !refused
    }

    /// Records that `ip` answered from `mac` (an ARP packet from the wire). Control entries win.
    pub fn learn_arp(&self, ip: Ipv4Addr, mac: MacAddr, now: Instant) {
        if ip.is_unspecified() || !mac.is_unicast_source() {
            return;
        }
        if let Some(e) = self.arp.get(&ip) {
            let fresh = now.saturating_duration_since(e.updated) < REFRESH_GRANULARITY;
            if !e.learned || (e.mac == mac && fresh) {
                return;
            }
        }
        self.arp
            .entry(ip)
            .and_modify(|e| {
                if e.learned {
                    e.mac = mac;
                    e.updated = now;
                }
            })
            .or_insert(ArpEntry {
                mac,
                learned: true,
                updated: now,
            });
    }

    /// Replaces every control-plane entry (MAC and ARP) with `entries`, in one call: entries
    /// not in the new set are removed, learned entries for the same MACs or IPs are replaced.
    pub fn set_control_entries(&self, entries: &[ControlEntry], now: Instant) {
        self.macs
            .retain(|mac, e| e.kind == FdbKind::Learned || entries.iter().any(|c| c.mac == *mac));
        self.arp
            .retain(|ip, e| e.learned || entries.iter().any(|c| c.ipv4 == *ip));
        for c in entries {
            let kind = match c.target {
                FdbTarget::Local => FdbKind::Local,
                FdbTarget::Remote(_) => FdbKind::Control,
            };
            self.macs.insert(
                c.mac,
                FdbEntry {
                    kind,
                    target: c.target,
                    updated: now,
                },
            );
            self.arp.insert(
                c.ipv4,
                ArpEntry {
                    mac: c.mac,
                    learned: false,
                    updated: now,
                },
            );
        }
    }

    /// Removes learned entries older than the aging time. Returns how many went.
    pub fn expire(&self, now: Instant) -> usize {
        let before = self.macs.len() + self.arp.len();
        self.macs.retain(|_, e| self.live(e.kind, e.updated, now));
        self.arp
            .retain(|_, e| !e.learned || now.saturating_duration_since(e.updated) < self.aging);
        before - (self.macs.len() + self.arp.len())
    }

    /// Live MAC entries, sorted by kind then MAC.
    pub fn rows(&self, now: Instant) -> Vec<FdbRow> {
        let mut rows: Vec<FdbRow> = self
            .macs
            .iter()
            .filter(|e| self.live(e.kind, e.updated, now))
            .map(|e| FdbRow {
                mac: *e.key(),
                vtep: match e.target {
                    FdbTarget::Local => None,
                    FdbTarget::Remote(ip) => Some(ip),
                },
                kind: e.kind,
                age: now.saturating_duration_since(e.updated),
            })
            .collect();
        rows.sort_by_key(|r| (r.kind, r.mac));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0x42, 10, 0, 0, last])
    }
    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }
    const VTEP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const VTEP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

    #[test]
    fn learns_refreshes_and_ages_out() {
        let t0 = Instant::now();
        let fdb = Fdb::new(Duration::from_secs(300));
        assert_eq!(fdb.lookup(mac(2), t0), None);
        assert!(fdb.learn(mac(2), VTEP_A, t0));
        assert_eq!(fdb.lookup(mac(2), t0), Some(FdbTarget::Remote(VTEP_A)));
        // Refreshed at 200 s, so still alive at 400 s.
        fdb.learn(mac(2), VTEP_A, t0 + Duration::from_secs(200));
        assert_eq!(
            fdb.lookup(mac(2), t0 + Duration::from_secs(400)),
            Some(FdbTarget::Remote(VTEP_A))
        );
        // Expired entries are invisible before the sweep, and gone after it.
        let late = t0 + Duration::from_secs(501);
        assert_eq!(fdb.lookup(mac(2), late), None);
        assert!(fdb.rows(late).is_empty());
        assert_eq!(fdb.expire(late), 1);
        assert_eq!(fdb.expire(late), 0);
    }

    #[test]
    fn a_moved_mac_follows_its_new_vtep() {
        let t0 = Instant::now();
        let fdb = Fdb::new(DEFAULT_AGING);
        fdb.learn(mac(2), VTEP_A, t0);
        fdb.learn(mac(2), VTEP_B, t0);
        assert_eq!(fdb.lookup(mac(2), t0), Some(FdbTarget::Remote(VTEP_B)));
    }

    #[test]
    fn learning_never_overrides_control_entries() {
        let t0 = Instant::now();
        let fdb = Fdb::new(DEFAULT_AGING);
        let entries = [
            ControlEntry {
                mac: mac(2),
                ipv4: ip(2),
                target: FdbTarget::Local,
            },
            ControlEntry {
                mac: mac(3),
                ipv4: ip(3),
                target: FdbTarget::Remote(VTEP_A),
            },
        ];
        fdb.set_control_entries(&entries, t0);
        assert!(!fdb.learn(mac(2), VTEP_B, t0));
        assert!(!fdb.learn(mac(3), VTEP_B, t0));
        assert_eq!(fdb.lookup(mac(2), t0), Some(FdbTarget::Local));
        assert_eq!(fdb.lookup(mac(3), t0), Some(FdbTarget::Remote(VTEP_A)));
        // Control entries never age.
        let much_later = t0 + Duration::from_secs(100_000);
        assert_eq!(
            fdb.lookup(mac(3), much_later),
            Some(FdbTarget::Remote(VTEP_A))
        );
        fdb.learn_arp(ip(3), mac(9), t0);
        assert_eq!(fdb.arp_lookup(ip(3), t0), Some(mac(3)));
    }

    #[test]
    fn control_entries_replace_learned_and_removal_is_complete() {
        let t0 = Instant::now();
        let fdb = Fdb::new(DEFAULT_AGING);
        fdb.learn(mac(3), VTEP_B, t0);
        fdb.learn(mac(7), VTEP_B, t0);
        fdb.learn_arp(ip(3), mac(3), t0);
        let entries = [ControlEntry {
            mac: mac(3),
            ipv4: ip(3),
            target: FdbTarget::Remote(VTEP_A),
        }];
        fdb.set_control_entries(&entries, t0);
        assert_eq!(fdb.lookup(mac(3), t0), Some(FdbTarget::Remote(VTEP_A)));
        // The endpoint leaves: its MAC and IP are gone at once; learned mac(7) stays.
        fdb.set_control_entries(&[], t0);
        assert_eq!(fdb.lookup(mac(3), t0), None);
        assert_eq!(fdb.arp_lookup(ip(3), t0), None);
        assert_eq!(fdb.lookup(mac(7), t0), Some(FdbTarget::Remote(VTEP_B)));
    }

    #[test]
    fn arp_learning_ages_and_ignores_junk() {
        let t0 = Instant::now();
        let fdb = Fdb::new(Duration::from_secs(10));
        fdb.learn_arp(ip(5), mac(5), t0);
        fdb.learn_arp(Ipv4Addr::UNSPECIFIED, mac(6), t0);
        fdb.learn_arp(ip(6), MacAddr::BROADCAST, t0);
        assert_eq!(fdb.arp_lookup(ip(5), t0), Some(mac(5)));
        assert_eq!(fdb.arp_lookup(Ipv4Addr::UNSPECIFIED, t0), None);
        assert_eq!(fdb.arp_lookup(ip(6), t0), None);
        assert_eq!(fdb.arp_lookup(ip(5), t0 + Duration::from_secs(11)), None);
        assert_eq!(fdb.expire(t0 + Duration::from_secs(11)), 1);
    }

    #[test]
    fn rows_are_sorted_and_show_kind_and_vtep() {
        let t0 = Instant::now();
        let fdb = Fdb::new(DEFAULT_AGING);
        fdb.learn(mac(9), VTEP_B, t0);
        let entries = [ControlEntry {
            mac: mac(2),
            ipv4: ip(2),
            target: FdbTarget::Local,
        }];
        fdb.set_control_entries(&entries, t0);
        let rows = fdb.rows(t0 + Duration::from_secs(5));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].kind, rows[0].vtep), (FdbKind::Local, None));
        assert_eq!(
            (rows[1].kind, rows[1].vtep),
            (FdbKind::Learned, Some(VTEP_B))
        );
        assert_eq!(rows[1].age, Duration::from_secs(5));
    }
}
