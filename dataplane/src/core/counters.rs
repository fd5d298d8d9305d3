//! Traffic and drop counters. Every packet the dataplane refuses bumps exactly one counter
//! here; nothing is logged per packet.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a frame or datagram was dropped. The names (`as_str`) are the keys of `vxnet stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the headers it must carry.
    Truncated,
    /// VXLAN flags word is not exactly 0x08000000.
    BadFlags,
    /// VXLAN reserved bits (low byte of the VNI word) are set.
    ReservedBits,
    /// No network with this VNI on this host.
    UnknownVni,
    /// The sender is neither a cluster host nor a static peer of the network.
    UnknownVtep,
    /// Inner frame larger than the network's MTU allows.
    Oversize,
    /// Inner source MAC claims to be one of this host's endpoints.
    MacConflict,
    /// Nowhere to send: unknown destination and no VTEP to flood to.
    NoVtep,
    /// The UDP socket refused the datagram.
    SendError,
    /// The TAP device refused the frame.
    TapWriteError,
    /// A TAP read whose offload header or superframe could not be used (see
    /// [`crate::core::offload::OffloadError`]).
    BadOffload,
    /// A datagram or TCP message to the embedded DNS that is not a DNS query.
    DnsMalformed,
    /// A forwarded DNS query no upstream resolver answered (the client got SERVFAIL).
    DnsUpstreamFailed,
    /// From the wire: the inner source MAC is an endpoint the control plane placed behind
    /// another VTEP than the one that sent the datagram.
    WrongSourceVtep,
    /// A unicast frame for a MAC no endpoint owns and nothing learned, with no static peer
    /// to send it to: vxnet hosts never get unknown unicast (the control plane told them
    /// every MAC they have).
    UnknownUnicast,
    /// An ARP packet whose sender is not who the control plane says: from a container, a
    /// sender MAC or address not its own (the sandbox's guard, see `host::guard`); from the
    /// wire, an address the control plane gives to another MAC.
    SpoofedArp,
    /// From a container: a source MAC not its own (the sandbox's guard), or a frame from a
    /// bridge port that belongs to no endpoint.
    SpoofedSourceMac,
    /// From a container: an IPv4 packet with a source address not its own (the sandbox's
    /// guard).
    SpoofedSourceIp,
    /// From a container: neither IPv4 nor ARP (IPv6 is off on overlays; a VLAN tag would
    /// carry a packet past the address checks).
    ForeignEthertype,
    /// A sealed datagram whose tag does not match: tampered, forged, or another key's.
    SealedBadTag,
    /// A sealed datagram whose counter was already accepted, or is too old to tell.
    SealedReplay,
    /// A plain VXLAN datagram for an encrypted network.
    PlaintextOnEncrypted,
    /// A sealed datagram for a network that is not encrypted.
    SealedOnPlain,
    /// An encrypted network's datagram this host has no key for (its epoch), or a frame it
    /// could not seal (no key yet): never sent in plaintext.
    SealedNoKey,
}

impl DropReason {
    pub const ALL: [DropReason; 24] = [
        DropReason::Truncated,
        DropReason::BadFlags,
        DropReason::ReservedBits,
        DropReason::UnknownVni,
        DropReason::UnknownVtep,
        DropReason::Oversize,
        DropReason::MacConflict,
        DropReason::NoVtep,
        DropReason::SendError,
        DropReason::TapWriteError,
        DropReason::BadOffload,
        DropReason::DnsMalformed,
        DropReason::DnsUpstreamFailed,
        DropReason::WrongSourceVtep,
        DropReason::UnknownUnicast,
        DropReason::SpoofedArp,
        DropReason::SpoofedSourceMac,
        DropReason::SpoofedSourceIp,
        DropReason::ForeignEthertype,
        DropReason::SealedBadTag,
        DropReason::SealedReplay,
        DropReason::PlaintextOnEncrypted,
        DropReason::SealedOnPlain,
        DropReason::SealedNoKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadFlags => "bad_flags",
            DropReason::ReservedBits => "reserved_bits",
            DropReason::UnknownVni => "unknown_vni",
            DropReason::UnknownVtep => "unknown_source_vtep",
            DropReason::Oversize => "oversize",
            DropReason::MacConflict => "mac_conflict",
            DropReason::NoVtep => "no_vtep",
            DropReason::SendError => "send_error",
            DropReason::TapWriteError => "tap_write_error",
            DropReason::BadOffload => "bad_offload",
            DropReason::DnsMalformed => "dns_malformed",
            DropReason::DnsUpstreamFailed => "dns_upstream_failed",
            DropReason::WrongSourceVtep => "wrong_source_vtep",
            DropReason::UnknownUnicast => "unknown_unicast",
            DropReason::SpoofedArp => "spoofed_arp",
            DropReason::SpoofedSourceMac => "spoofed_source_mac",
            DropReason::SpoofedSourceIp => "spoofed_source_ip",
            DropReason::ForeignEthertype => "foreign_ethertype",
            DropReason::SealedBadTag => "sealed_bad_tag",
            DropReason::SealedReplay => "sealed_replay",
            DropReason::PlaintextOnEncrypted => "plaintext_on_encrypted",
            DropReason::SealedOnPlain => "sealed_on_plain",
            DropReason::SealedNoKey => "sealed_no_key",
        }
    }

    /// The reason named `name` by [`DropReason::as_str`].
    pub fn from_name(name: &str) -> Option<DropReason> {
        DropReason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<crate::wire::WireError> for DropReason {
    fn from(e: crate::wire::WireError) -> Self {
        use crate::wire::WireError;
        match e {
            // A header whose own length or kind is wrong does not carry what it must.
            WireError::Truncated
            | WireError::NotEthernetIpv4Arp
            | WireError::BadVersion
            | WireError::BadHeaderLength => DropReason::Truncated,
            WireError::BadFlags => DropReason::BadFlags,
            WireError::ReservedBits => DropReason::ReservedBits,
            WireError::BadVnetHeader => DropReason::BadOffload,
        }
    }
}

impl From<crate::core::seal::SealError> for DropReason {
    fn from(e: crate::core::seal::SealError) -> Self {
        use crate::core::seal::SealError;
        match e {
            SealError::NoKey => DropReason::SealedNoKey,
            SealError::BadTag => DropReason::SealedBadTag,
            SealError::Replay => DropReason::SealedReplay,
            SealError::Malformed => DropReason::Truncated,
        }
    }
}

impl From<crate::core::offload::OffloadError> for DropReason {
    fn from(e: crate::core::offload::OffloadError) -> Self {
        use crate::core::offload::OffloadError;
        match e {
            OffloadError::Truncated => DropReason::Truncated,
            OffloadError::BadVnetHeader | OffloadError::Unsupported => DropReason::BadOffload,
        }
    }
}

#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn bump(&self, reason: DropReason) {
        self.bump_by(reason, 1);
    }

    pub fn bump_by(&self, reason: DropReason, count: u64) {
        self.0[reason.index()].fetch_add(count, Relaxed);
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()].load(Relaxed)
    }

    /// Non-zero counters, in the order of [`DropReason::ALL`].
    pub fn nonzero(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// Per-network counters. rx = from the wire into the TAP, tx = from the TAP onto the wire
/// (a flooded frame counts once per copy sent).
#[derive(Debug, Default)]
pub struct NetworkCounters {
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub drops: DropCounters,
}

/// A network's counters at one moment, as plain numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Non-zero drop counters, in the order of [`DropReason::ALL`].
    pub drops: Vec<(DropReason, u64)>,
}

impl NetworkCounters {
    pub fn snapshot(&self) -> TrafficStats {
        TrafficStats {
            rx_frames: self.rx_frames.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_frames: self.tx_frames.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            drops: self.drops.nonzero(),
        }
    }

    pub fn count_rx(&self, bytes: usize) {
        self.rx_frames.fetch_add(1, Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub fn count_tx(&self, bytes: usize) {
        self.tx_frames.fetch_add(1, Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Relaxed);
    }
}

/// System calls of the forwarding threads, for the whole engine (every network together):
/// divided into the datagrams and frames they moved, they say what batching buys. One bump per
/// call, whatever it returned — a call that found nothing costs a syscall too (every drain of
/// a TAP ends with one read that finds it empty).
#[derive(Debug, Default)]
pub struct SyscallCounters {
    /// `recvmmsg` on the VXLAN socket.
    pub recvmmsg: AtomicU64,
    /// `sendmmsg` on a sending socket.
    pub sendmmsg: AtomicU64,
    /// Single `sendto` of a datagram whose segmented send was refused.
    pub send_fallback: AtomicU64,
    /// `read` from a TAP.
    pub tap_reads: AtomicU64,
    /// `write` into a TAP.
    pub tap_writes: AtomicU64,
}

/// [`SyscallCounters`] at one moment, as plain numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyscallStats {
    pub recvmmsg: u64,
    pub sendmmsg: u64,
    pub send_fallback: u64,
    pub tap_reads: u64,
    pub tap_writes: u64,
}

impl SyscallCounters {
    /// Counts one call on `counter` (a field of `self`).
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> SyscallStats {
        SyscallStats {
            recvmmsg: self.recvmmsg.load(Relaxed),
            sendmmsg: self.sendmmsg.load(Relaxed),
            send_fallback: self.send_fallback.load(Relaxed),
            tap_reads: self.tap_reads.load(Relaxed),
            tap_writes: self.tap_writes.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_dense() {
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn bump_and_read() {
        let c = DropCounters::default();
        c.bump(DropReason::UnknownVni);
        c.bump(DropReason::UnknownVni);
        c.bump(DropReason::Oversize);
        assert_eq!(c.get(DropReason::UnknownVni), 2);
        assert_eq!(
            c.nonzero(),
            vec![(DropReason::UnknownVni, 2), (DropReason::Oversize, 1)]
        );
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn syscall_snapshot_reads_each_counter() {
        let c = SyscallCounters::default();
        SyscallCounters::bump(&c.recvmmsg);
        SyscallCounters::bump(&c.tap_writes);
        SyscallCounters::bump(&c.tap_writes);
        assert_eq!(
            c.snapshot(),
            SyscallStats {
                recvmmsg: 1,
                tap_writes: 2,
                ..SyscallStats::default()
            }
        );
    }
}
