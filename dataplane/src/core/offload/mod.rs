//! TAP offloads, sans-IO: the split of a TCP superframe read from a TAP opened with
//! `IFF_VNET_HDR` into wire-sized frames ([`segment`]), and the reverse on receive: merging a
//! batch of decapsulated TCP segments (and, where the TAP takes them, UDP datagrams) into
//! superframes to write into the TAP ([`Coalescer`]).
//! The `virtio_net_hdr` itself ([`VirtioNetHdr`]) is a wire format, re-exported here.
//!
//! Rules a caller relies on:
//! - Everything that leaves [`segment`] is a complete frame as a kernel vxlan peer expects it:
//!   the IPv4 header checksum and the TCP/UDP checksums are filled in, because a peer's NIC
//!   and kernel verify them and nothing between here and there would fill them. The kernel's
//!   `hdr_len`, `csum_start` and `csum_offset` are never trusted for a GSO frame; header
//!   lengths are read from the packet itself.
//! - Only plain Ethernet (no 802.1Q tag) carrying IPv4 or IPv6 (no extension headers) with TCP
//!   is split; any other GSO request is refused with [`OffloadError::Unsupported`] (the TAP is
//!   opened with TSO4/TSO6 only, so the kernel does not send others).
//! - Frames are parsed once ([`FrameHeaders`]): [`segment`] takes the caller's parse, which the
//!   caller can hand on (to the flow hash); the [`Coalescer`] parses each frame it is fed once.
//! - The [`Coalescer`] merges only what the kernel's own GRO would: consecutive in-order
//!   segments of one flow with identical headers, each with a verified checksum; UDP
//!   datagrams only when asked, and only runs the kernel cuts back into the same datagrams
//!   (one payload size but a shorter last, consecutive IPv4 ids, checksums present). Whatever it
//!   does not merge goes out byte for byte as it came, behind a zero header.
//! - Buffers are owned by the caller ([`Segments`], [`Coalescer`]) and reused: no allocation
//!   per packet once they have grown to the largest superframe.

mod coalesce;
mod segment;

pub use crate::wire::{
    FrameHeaders, GsoType, VirtioNetHdr, FLAG_DATA_VALID, FLAG_NEEDS_CSUM, VNET_HDR_LEN,
};
pub use coalesce::{Coalesced, Coalescer};
pub use segment::{segment, Segments};

/// The largest IP packet a superframe may carry (the 16-bit length fields).
const MAX_IP_PACKET: usize = 65535;

/// Why a TAP read could not be turned into wire frames. Each maps onto one drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("shorter than the headers it must carry")]
    Truncated,
    #[error("virtio_net_hdr with fields outside the frame or a segment size too large")]
    BadVnetHeader,
    #[error("GSO request for something other than Ethernet/IP/TCP")]
    Unsupported,
}

#[cfg(test)]
mod tests;
