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
//! - broadcast, multicast → [`TapAction::Flood`] (head-end replication) to every VTEP;
//! - unknown unicast → [`TapAction::Flood`] to the static peers only: the control plane told
//!   this host every MAC of the cluster's hosts, so only behind a peer can an unknown MAC
//!   live. Without peers it is dropped ([`DropReason::UnknownUnicast`]): a container cannot
//!   turn one frame into a copy for every host.
//!
//! wire → TAP ([`Dataplane::handle_datagram`]): VXLAN header valid → VNI known → sender is a
//! trusted VTEP of that network → opened, if the network is encrypted ([`crate::core::seal`]:
//! a sealed datagram on a plain network, or a plain one on an encrypted network, is dropped)
//! → inner frame sane → a source MAC the control plane placed comes from its own VTEP
//! ([`DropReason::WrongSourceVtep`]; one placed here: [`DropReason::MacConflict`]) → an ARP
//! sender address the control plane placed comes with its MAC ([`DropReason::SpoofedArp`]) →
//! learn the inner source MAC (and, from ARP, its IPv4) → [`WireAction::Deliver`]. A datagram
//! that belongs to no network is counted in [`Dataplane::drops`]; one that does, in its
//! network's counters.
//!
//! What a container may send into its sandbox's bridge is checked there, by the kernel (see
//! [`crate::host::guard`]): local traffic never reaches this core.
//!
//! [`Dataplane`] is the one VNI → network table: each entry is a [`Port`], the network's
//! plane together with the device its frames are written to (a TAP in the engine; nothing in
//! the tests), so a delivered datagram comes with its device and nothing is looked up twice.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::core::counters::{DropCounters, DropReason, NetworkCounters};
pub use crate::core::fdb::VtepSet;
use crate::core::fdb::{ControlEntry, Fdb, FdbTarget};
use crate::core::seal::{NetworkKey, Salts, Seal};
use crate::wire::{
    emit_arp_reply, is_sealed, ArpOperation, ArpPacket, EtherType, EthernetFrame, FrameHeaders,
    MacAddr, SealedPacket, Vni, VxlanPacket, ETHERNET_HEADER_LEN,
};

/// Room for one 802.1Q tag beyond the Ethernet header.
const VLAN_TAG_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConfig {
    pub vni: Vni,
    /// MTU of the overlay (of the container interfaces and the TAP).
    pub mtu: u32,
    /// The gateway address on every host's `br0`; ARP for it is never sent across.
    pub gateway: Ipv4Addr,
    pub aging: Duration,
    /// Every datagram of the network is sealed ([`crate::core::seal`]); nothing goes out or
    /// is accepted in plaintext.
    pub encrypted: bool,
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
pub enum WireAction<'a, D> {
    Deliver { port: Arc<Port<D>>, frame: &'a [u8] },
    Drop(DropReason),
}

/// A network's plane and the device its decapsulated frames are written to.
pub struct Port<D> {
    pub plane: NetworkPlane,
    pub device: D,
}

/// One network's forwarding state on this host.
pub struct NetworkPlane {
    config: NetworkConfig,
    pub fdb: Fdb,
    pub counters: NetworkCounters,
    /// Encrypted networks only.
    seal: Option<Seal>,
}

impl NetworkPlane {
    /// `counter_base`: where an encrypted network's nonce counter starts (the wall-clock time
    /// in nanoseconds, see [`crate::core::seal`]); unused by a plain one.
    pub fn new(config: NetworkConfig, counter_base: u64) -> NetworkPlane {
        NetworkPlane {
            config,
            fdb: Fdb::new(config.aging),
            counters: NetworkCounters::default(),
            seal: config
                .encrypted
                .then(|| Seal::new(config.vni, counter_base)),
        }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The sealing state of an encrypted network; `None` for a plain one.
    pub fn seal(&self) -> Option<&Seal> {
        self.seal.as_ref()
    }

    /// Swaps in an encrypted network's keys, as this host (VTEP `local`) uses them (see
    /// [`Seal::install`]); nothing for a plain network.
    pub fn install_keys(&self, local: Ipv4Addr, keys: &[NetworkKey], salts: &Salts, now: Instant) {
        if let Some(seal) = &self.seal {
            seal.install(local, keys, salts, now);
        }
    }

    /// Swaps in what the control plane programmed (see [`Fdb::install`]).
    pub fn install(&self, entries: &[ControlEntry], vteps: &VtepSet, now: Instant) {
        self.fdb.install(entries, vteps, now);
    }

    /// Counts `frames` drops for `reason` and says so.
    fn drop(&self, reason: DropReason, frames: usize) -> TapAction {
        self.counters.drops.bump_by(reason, frames as u64);
        TapAction::Drop(reason)
    }

    fn flood(&self, frames: usize) -> TapAction {
        let flood = Arc::clone(self.fdb.control().flood());
        if flood.is_empty() {
            return self.drop(DropReason::NoVtep, frames);
        }
        TapAction::Flood(flood)
    }

    /// Decides the fate of one TAP read: `headers` is its one parse ([`FrameHeaders::parse`]),
    /// and it goes out as `frames` wire frames of at most `wire_len` bytes (a superframe split
    /// into segments, which share its headers and so its fate; a drop counts each). `reply`
    /// must hold at least 42 bytes; an ARP answer is written there.
    pub fn handle_tap_frame(
        &self,
        headers: &FrameHeaders,
        wire_len: usize,
        frames: usize,
        now: Instant,
        reply: &mut [u8],
    ) -> TapAction {
        let Ok(eth) = headers.ethernet() else {
            return self.drop(DropReason::Truncated, frames);
        };
        if wire_len > self.config.max_frame_len() {
            return self.drop(DropReason::Oversize, frames);
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
            return self.flood(frames);
        }
        match self.fdb.lookup(dst, now) {
            Some(FdbTarget::Remote(vtep)) => TapAction::Unicast(vtep),
            Some(FdbTarget::Local) => TapAction::Local,
            None => self.unknown_unicast(frames),
        }
    }

    /// Unknown unicast goes to the static peers alone (see the module docs).
    fn unknown_unicast(&self, frames: usize) -> TapAction {
        let peers = Arc::clone(self.fdb.control().peers());
        if peers.is_empty() {
            return self.drop(DropReason::UnknownUnicast, frames);
        }
        TapAction::Flood(peers)
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
        let control = self.fdb.control();
        // A MAC the control plane placed speaks only from where it was placed.
        match control.placed(smac) {
            Some(FdbTarget::Local) => return Err(DropReason::MacConflict),
            Some(FdbTarget::Remote(vtep)) if vtep != src => {
                return Err(DropReason::WrongSourceVtep)
            }
            _ => {}
        }
        let arp = (eth.ethertype() == EtherType::ARP)
            .then(|| ArpPacket::new_checked(eth.payload()).ok())
            .flatten();
        if let Some(arp) = &arp {
            // An address the control plane placed is announced by its own MAC only, or a
            // receiver's ARP cache would send its traffic elsewhere.
            let sender = arp.sender_ip();
            if control
                .owner_of(sender)
                .is_some_and(|owner| owner != arp.sender_mac())
            {
                return Err(DropReason::SpoofedArp);
            }
        }
        drop(control);
        if smac.is_unicast_source() {
            self.fdb.learn(smac, src, now);
        }
        if let Some(arp) = arp {
            if arp.sender_mac() == smac {
                self.fdb.learn_arp(arp.sender_ip(), smac, now);
            }
        }
        Ok(())
    }
}

/// Every network of this host, by VNI, and the drops that belong to none of them.
pub struct Dataplane<D> {
    ports: DashMap<Vni, Arc<Port<D>>>,
    pub drops: DropCounters,
}

impl<D> Default for Dataplane<D> {
    fn default() -> Self {
        Dataplane {
            ports: DashMap::new(),
            drops: DropCounters::default(),
        }
    }
}

impl<D> Dataplane<D> {
    pub fn new() -> Dataplane<D> {
        Dataplane::default()
    }

    /// Adds a network, replacing one with the same VNI.
    pub fn insert(&self, port: Arc<Port<D>>) {
        self.ports.insert(port.plane.config.vni, port);
    }

    pub fn remove(&self, vni: Vni) -> Option<Arc<Port<D>>> {
        self.ports.remove(&vni).map(|(_, p)| p)
    }

    pub fn get(&self, vni: Vni) -> Option<Arc<Port<D>>> {
        self.ports.get(&vni).map(|p| Arc::clone(&p))
    }

    pub fn ports(&self) -> Vec<Arc<Port<D>>> {
        self.ports.iter().map(|p| Arc::clone(&p)).collect()
    }

    fn drop<'a>(&self, reason: DropReason) -> WireAction<'a, D> {
        self.drops.bump(reason);
        WireAction::Drop(reason)
    }

    /// Decides the fate of `datagram`, the UDP payload received from `src`; a sealed one is
    /// opened in place.
    pub fn handle_datagram<'a>(
        &self,
        src: Ipv4Addr,
        datagram: &'a mut [u8],
        now: Instant,
    ) -> WireAction<'a, D> {
        // The first byte tells a sealed datagram from a plain one.
        let sealed = is_sealed(datagram);
        let vni = if sealed {
            SealedPacket::new_checked(&*datagram).map(|p| p.vni())
        } else {
            VxlanPacket::new_checked(&*datagram).map(|p| p.vni())
        };
        let vni = match vni {
            Ok(vni) => vni,
            Err(e) => return self.drop(e.into()),
        };
        let Some(port) = self.get(vni) else {
            return self.drop(DropReason::UnknownVni);
        };
        if !port.plane.fdb.control().trusts(src) {
            return self.drop(DropReason::UnknownVtep);
        }
        let frame = match (sealed, &port.plane.seal) {
            (false, None) => Ok(VxlanPacket::new_unchecked(&*datagram).into_payload()),
            (true, Some(seal)) => seal.open(src, datagram).map_err(DropReason::from),
            (false, Some(_)) => Err(DropReason::PlaintextOnEncrypted),
            (true, None) => Err(DropReason::SealedOnPlain),
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(reason) => {
                port.plane.counters.drops.bump(reason);
                return WireAction::Drop(reason);
            }
        };
        if let Err(reason) = port.plane.accept_from_wire(src, frame, now) {
            port.plane.counters.drops.bump(reason);
            return WireAction::Drop(reason);
        }
        WireAction::Deliver { port, frame }
    }

    /// Counts a datagram the socket cut short (larger than a receive slot): it belongs to no
    /// network we could tell.
    pub fn drop_cut_short(&self) {
        self.drops.bump(DropReason::Oversize);
    }
}

#[cfg(test)]
mod tests;
