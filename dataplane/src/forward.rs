//! The forwarding core: what to do with a frame read from a network's TAP, and with a datagram
//! read from the UDP socket. Sans-IO: bytes and `now` in, a decision out; drops are counted
//! here so that no caller can forget one. The drivers in [`crate::engine`] carry decisions out.
//!
//! TAP → wire ([`NetworkPlane::handle_tap_frame`]):
//! - ARP request for an address the FDB can place on another host → answered into the TAP
//!   ([`TapAction::Reply`]); nothing crosses the wire. For a local endpoint or the gateway →
//!   [`TapAction::Local`]: the kernel bridge in the sandbox already delivered it.
//! - anything the gateway (this host's `br0`) sends → [`TapAction::Local`]: each host has its
//!   own gateway, under the same MAC.
//! - known unicast → [`TapAction::Unicast`] to the VTEP; local → [`TapAction::Local`];
//! - broadcast, multicast, unknown unicast → [`TapAction::Flood`] (head-end replication).
//!
//! wire → TAP ([`Dataplane::handle_datagram`]): VXLAN header valid → VNI known → sender is a
//! trusted VTEP of that network → inner frame sane → learn the inner source MAC (and, from
//! ARP, its IPv4) → [`WireAction::Deliver`]. A datagram that belongs to no network is counted
//! in [`Dataplane::drops`]; one that does, in its network's counters.

use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::counters::{DropCounters, DropReason, NetworkCounters};
use crate::fdb::{ControlEntry, Fdb, FdbTarget};
use crate::wire::{
    emit_arp_reply, ArpOperation, ArpPacket, EtherType, EthernetFrame, MacAddr, Vni, VxlanPacket,
    ETHERNET_HEADER_LEN,
};

/// Room for one 802.1Q tag beyond the Ethernet header.
const VLAN_TAG_LEN: usize = 4;

/// Where decapsulated frames of one network go: its TAP, or an in-memory sink in tests.
pub trait FrameSink: Send + Sync {
    fn write_frame(&self, frame: &[u8]) -> io::Result<()>;
}

/// The VTEPs of one network.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VtepSet {
    /// Receivers of broadcast, multicast and unknown unicast.
    pub flood: Vec<Ipv4Addr>,
    /// Senders whose datagrams are accepted (a superset of `flood`).
    pub trusted: Vec<Ipv4Addr>,
}

impl VtepSet {
    /// A set where every VTEP both receives floods and is trusted (static peers).
    pub fn symmetric(mut vteps: Vec<Ipv4Addr>) -> VtepSet {
        vteps.sort_unstable();
        vteps.dedup();
        VtepSet {
            flood: vteps.clone(),
            trusted: vteps,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConfig {
    pub vni: Vni,
    /// MTU of the overlay (of the container interfaces and the TAP).
    pub mtu: u32,
    /// The gateway address on every host's `br0`; ARP for it is never sent across.
    pub gateway: Ipv4Addr,
    pub aging: Duration,
}

impl NetworkConfig {
    fn max_frame_len(&self) -> usize {
        self.mtu as usize + ETHERNET_HEADER_LEN + VLAN_TAG_LEN
    }
}

/// What to do with a frame read from the TAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapAction {
    Unicast(Ipv4Addr),
    Flood(Arc<[Ipv4Addr]>),
    /// An answer of this many bytes was written into the reply buffer; write it to the TAP.
    Reply(usize),
    /// For this host only: nothing to do.
    Local,
    Drop(DropReason),
}

/// What to do with a datagram read from the UDP socket.
pub enum WireAction<'a> {
    Deliver {
        plane: Arc<NetworkPlane>,
        frame: &'a [u8],
    },
    Drop(DropReason),
}

/// One network's forwarding state on this host.
pub struct NetworkPlane {
    config: NetworkConfig,
    pub fdb: Fdb,
    vteps: RwLock<VtepSnapshot>,
    pub counters: NetworkCounters,
    sink: Arc<dyn FrameSink>,
}

/// The VTEP lists as the hot path reads them: cheap to clone out from under the lock.
#[derive(Clone, Default)]
struct VtepSnapshot {
    flood: Arc<[Ipv4Addr]>,
    trusted: Arc<[Ipv4Addr]>,
}

impl NetworkPlane {
    pub fn new(config: NetworkConfig, sink: Arc<dyn FrameSink>) -> NetworkPlane {
        NetworkPlane {
            config,
            fdb: Fdb::new(config.aging),
            vteps: RwLock::new(VtepSnapshot::default()),
            counters: NetworkCounters::default(),
            sink,
        }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    pub fn sink(&self) -> &Arc<dyn FrameSink> {
        &self.sink
    }

    pub fn set_vteps(&self, set: &VtepSet) {
        let mut trusted = set.trusted.clone();
        trusted.extend_from_slice(&set.flood);
        trusted.sort_unstable();
        trusted.dedup();
        let snapshot = VtepSnapshot {
            flood: set.flood.as_slice().into(),
            trusted: trusted.into(),
        };
        *self.vteps.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    pub fn vteps(&self) -> VtepSet {
        let v = self.snapshot();
        VtepSet {
            flood: v.flood.to_vec(),
            trusted: v.trusted.to_vec(),
        }
    }

    fn snapshot(&self) -> VtepSnapshot {
        // A poisoned lock only means a writer panicked between two whole assignments.
        self.vteps.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_control_entries(&self, entries: &[ControlEntry], now: Instant) {
        self.fdb.set_control_entries(entries, now);
    }

    fn drop(&self, reason: DropReason) -> TapAction {
        self.counters.drops.bump(reason);
        TapAction::Drop(reason)
    }

    fn flood(&self) -> TapAction {
        let flood = self.snapshot().flood;
        if flood.is_empty() {
            return self.drop(DropReason::NoVtep);
        }
        TapAction::Flood(flood)
    }

    /// Decides the fate of `frame`, read from this network's TAP. `reply` must hold at least
    /// 42 bytes; an ARP answer is written there.
    pub fn handle_tap_frame(&self, frame: &[u8], now: Instant, reply: &mut [u8]) -> TapAction {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return self.drop(DropReason::Truncated);
        };
        if frame.len() > self.config.max_frame_len() {
            return self.drop(DropReason::Oversize);
        }
        if eth.src() == MacAddr::for_ipv4(self.config.gateway) {
            // From this host's br0 (its IGMP reports, its ARP): every host has its own
            // gateway under the same MAC, so nothing it says concerns another host.
            return TapAction::Local;
        }
        if eth.ethertype() == EtherType::ARP {
            if let Some(action) = self.proxy_arp(eth.payload(), now, reply) {
                return action;
            }
        }
        let dst = eth.dst();
        if dst.is_multicast() {
            return self.flood();
        }
        match self.fdb.lookup(dst, now) {
            Some(FdbTarget::Remote(vtep)) => TapAction::Unicast(vtep),
            Some(FdbTarget::Local) => TapAction::Local,
            None => self.flood(),
        }
    }

    /// The ARP proxy. `None` means "not ours to answer": forward the frame as any other.
    fn proxy_arp(&self, arp: &[u8], now: Instant, reply: &mut [u8]) -> Option<TapAction> {
        let arp = ArpPacket::new_checked(arp).ok()?;
        if arp.operation() != ArpOperation::Request {
            return None;
        }
        let target = arp.target_ip();
        if target == self.config.gateway {
            return Some(TapAction::Local);
        }
        let mac = self.fdb.arp_lookup(target, now)?;
        match self.fdb.lookup(mac, now)? {
            FdbTarget::Local => Some(TapAction::Local),
            FdbTarget::Remote(_) => {
                let len = emit_arp_reply(&arp, mac, reply)?;
                Some(TapAction::Reply(len))
            }
        }
    }

    /// Checks and learns from a decapsulated frame that came from `src`, a trusted VTEP.
    fn accept_from_wire(
        &self,
        src: Ipv4Addr,
        frame: &[u8],
        now: Instant,
    ) -> Result<(), DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Truncated)?;
        if frame.len() > self.config.max_frame_len() {
            return Err(DropReason::Oversize);
        }
        let smac = eth.src();
        if smac.is_unicast_source() && !self.fdb.learn(smac, src, now) {
            // A control entry owns this MAC; only a remote control entry may send from it.
            if self.fdb.lookup(smac, now) == Some(FdbTarget::Local) {
                return Err(DropReason::MacConflict);
            }
        }
        if eth.ethertype() == EtherType::ARP {
            if let Ok(arp) = ArpPacket::new_checked(eth.payload()) {
                if arp.sender_mac() == smac {
                    self.fdb.learn_arp(arp.sender_ip(), smac, now);
                }
            }
        }
        Ok(())
    }
}

/// Every network of this host, by VNI, and the drops that belong to none of them.
#[derive(Default)]
pub struct Dataplane {
    planes: DashMap<Vni, Arc<NetworkPlane>>,
    pub drops: DropCounters,
}

impl Dataplane {
    pub fn new() -> Dataplane {
        Dataplane::default()
    }

    pub fn insert(&self, plane: Arc<NetworkPlane>) {
        self.planes.insert(plane.config.vni, plane);
    }

    pub fn remove(&self, vni: Vni) -> Option<Arc<NetworkPlane>> {
        self.planes.remove(&vni).map(|(_, p)| p)
    }

    pub fn get(&self, vni: Vni) -> Option<Arc<NetworkPlane>> {
        self.planes.get(&vni).map(|p| Arc::clone(&p))
    }

    pub fn planes(&self) -> Vec<Arc<NetworkPlane>> {
        self.planes.iter().map(|p| Arc::clone(&p)).collect()
    }

    fn drop<'a>(&self, reason: DropReason) -> WireAction<'a> {
        self.drops.bump(reason);
        WireAction::Drop(reason)
    }

    /// Decides the fate of `datagram`, the UDP payload received from `src`.
    pub fn handle_datagram<'a>(
        &self,
        src: Ipv4Addr,
        datagram: &'a [u8],
        now: Instant,
    ) -> WireAction<'a> {
        let vxlan = match VxlanPacket::new_checked(datagram) {
            Ok(v) => v,
            Err(e) => return self.drop(e.into()),
        };
        let Some(plane) = self.get(vxlan.vni()) else {
            return self.drop(DropReason::UnknownVni);
        };
        if plane.snapshot().trusted.binary_search(&src).is_err() {
            return self.drop(DropReason::UnknownVtep);
        }
        let frame = vxlan.into_payload();
        if let Err(reason) = plane.accept_from_wire(src, frame, now) {
            plane.counters.drops.bump(reason);
            return WireAction::Drop(reason);
        }
        WireAction::Deliver { plane, frame }
    }
}

#[cfg(test)]
mod tests;
