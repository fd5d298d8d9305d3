//! Wire formats as typed, zero-copy views over byte buffers, in the style of smoltcp's `wire`.
//!
//! Rules every view follows:
//! - `new_checked` is the only way to view bytes that came from a TAP or a socket; it verifies
//!   the length (and the fixed bits: VXLAN flags, IP version, minimum header lengths) so the
//!   accessors can index without checking again and can never panic.
//! - `new_unchecked` exists for buffers this process built itself, or bytes already checked
//!   (a [`FrameHeaders`] hands out views of what it checked).
//! - Setters exist where the offloads rewrite a field in place; they never move bytes.
//! - Errors are small `Copy` values that map one-to-one onto drop counters.
//! - A frame is parsed once: [`FrameHeaders::parse`] records where its Ethernet, IP and TCP/UDP
//!   headers are, and every later stage (splitting, coalescing, the flow hash) reads that.
//! - Multi-byte fields are big-endian (network order), except in the `virtio_net_hdr`.

mod arp;
pub mod checksum;
pub mod ethernet;
mod flow;
mod headers;
mod ip;
pub mod ipv4;
pub mod ipv6;
mod sealed;
pub mod tcp;
#[cfg(test)]
pub(crate) mod testing;
pub mod udp;
mod vnet_hdr;
mod vxlan;

pub use arp::{emit_arp_reply, ArpOperation, ArpPacket, ARP_PACKET_LEN};
pub use ethernet::{EtherType, EthernetFrame, ETHERNET_HEADER_LEN};
pub use flow::flow_hash;
pub use headers::{FrameHeaders, IpHeader, L4Header};
pub use ip::{IpProtocol, IpVersion};
pub use ipv4::{Ipv4Packet, IPV4_HEADER_LEN};
pub use ipv6::{Ipv6Packet, IPV6_HEADER_LEN};
pub use sealed::{
    emit_sealed_header, is_sealed, SealedPacket, FLAGS_SEALED, SEALED_HEADER_LEN, SEAL_OVERHEAD,
    SEAL_TAG_LEN, SEAL_VERSION,
};
pub use tcp::{TcpFlags, TcpPacket, TCP_HEADER_LEN};
pub use udp::{UdpPacket, UDP_HEADER_LEN};
pub use vnet_hdr::{GsoType, VirtioNetHdr, FLAG_DATA_VALID, FLAG_NEEDS_CSUM, VNET_HDR_LEN};
pub use vxlan::{VxlanHeader, VxlanPacket, VXLAN_HEADER_LEN};
/// Addresses and identifiers are the vocabulary shared with the control plane.
pub use vxnet_proto::types::{MacAddr, Vni};

/// Why bytes could not be viewed as the format they claim to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("buffer shorter than the header")]
    Truncated,
    #[error("VXLAN flags word is not 0x08000000")]
    BadFlags,
    #[error("VXLAN reserved bits are set")]
    ReservedBits,
    #[error("not an Ethernet/IPv4 ARP packet")]
    NotEthernetIpv4Arp,
    #[error("IP version field does not match the header")]
    BadVersion,
    #[error("header length field below the header's minimum")]
    BadHeaderLength,
    #[error("virtio_net_hdr with unknown bits or an inconsistent GSO request")]
    BadVnetHeader,
}

// Slicing to the field first leaves one bounds check per field, not one per byte.

/// The big-endian `u16` in `field` (two bytes long).
#[inline]
fn get_u16(b: &[u8], field: std::ops::Range<usize>) -> u16 {
    let b = &b[field];
    u16::from_be_bytes([b[0], b[1]])
}

/// The big-endian `u32` in `field` (four bytes long).
#[inline]
fn get_u32(b: &[u8], field: std::ops::Range<usize>) -> u32 {
    let b = &b[field];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[inline]
fn put_u16(b: &mut [u8], field: std::ops::Range<usize>, value: u16) {
    b[field].copy_from_slice(&value.to_be_bytes());
}

#[inline]
fn put_u32(b: &mut [u8], field: std::ops::Range<usize>, value: u32) {
    b[field].copy_from_slice(&value.to_be_bytes());
}
