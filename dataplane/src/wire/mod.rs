//! Wire formats as typed, zero-copy views over byte buffers, in the style of smoltcp's `wire`.
//!
//! Rules every view follows:
//! - `new_checked` is the only way to view bytes that came from a TAP or a socket; it verifies
//!   the length (and, for VXLAN, the fixed header bits) so the accessors can index without
//!   checking again and can never panic.
//! - `new_unchecked` exists for buffers this process built itself.
//! - Errors are small `Copy` values that map one-to-one onto drop counters.

mod arp;
mod ethernet;
mod flow;
#[cfg(test)]
pub(crate) mod testing;
mod vxlan;

pub use arp::{emit_arp_reply, ArpOperation, ArpPacket, ARP_PACKET_LEN};
pub use ethernet::{EtherType, EthernetFrame, ETHERNET_HEADER_LEN};
pub use flow::flow_hash;
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
}
