//! Frame builders for this crate's tests, one per need, so that every test builds the same
//! bytes the same way. Parsing goes through the real views ([`super::ArpPacket`], ...).

use std::net::Ipv4Addr;

use super::MacAddr;

/// An Ethernet II frame.
pub(crate) fn ethernet(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet/IPv4 ARP packet with operation `op` (1 request, 2 reply) from `sender`, asking
/// for (or answering to) `target_ip`; a request goes to broadcast. 42 bytes, unpadded.
pub(crate) fn arp(op: u16, sender: (MacAddr, Ipv4Addr), target_ip: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0x00, 0x01, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sender.0 .0);
    a.extend_from_slice(&sender.1.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target_ip.octets());
    let dst = if op == 1 {
        MacAddr::BROADCAST
    } else {
        MacAddr::ZERO
    };
    ethernet(dst, sender.0, 0x0806, &a)
}
