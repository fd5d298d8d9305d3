//! Hand-made frames and VXLAN datagrams, for tests that talk to a daemon's UDP port directly.
//!
//! Rules: builders produce exactly the bytes RFC 7348 and IEEE 802.3 describe, without
//! validation, so tests can also build the *wrong* thing on purpose by editing the output.

use std::net::Ipv4Addr;

use anyhow::{bail, Result};

/// The IANA VXLAN port, which vxnet and the lab's kernel peers use.
pub const VXLAN_PORT: u16 = 4789;

/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;

/// The broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// The 8-byte VXLAN header: flags word `0x08000000` (I flag), VNI in the top 24 bits of the
/// second word.
pub fn vxlan_header(vni: u32) -> [u8; 8] {
    let v = vni.to_be_bytes();
    [0x08, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// A VXLAN datagram payload (header + inner frame), as sent to UDP 4789.
pub fn vxlan_datagram(vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    let mut d = vxlan_header(vni).to_vec();
    d.extend_from_slice(inner_frame);
    d
}

/// An Ethernet II frame (no FCS).
pub fn ethernet_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A broadcast ARP request frame: who has `target_ip`, tell `sender_ip` at `sender_mac`.
pub fn arp_request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut arp = Vec::with_capacity(28);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet, IPv4, lengths, request
    arp.extend_from_slice(&sender_mac);
    arp.extend_from_slice(&sender_ip.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&target_ip.octets());
    ethernet_frame(BROADCAST, sender_mac, ETHERTYPE_ARP, &arp)
}

/// The MAC vxnet gives an endpoint: `02:42` followed by the IPv4 address (README, "The
/// command line").
pub fn mac_for_ip(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// [`mac_for_ip`] as text, the way `ip`, `fdb` and `network inspect` print it.
pub fn mac_string_for_ip(ip: Ipv4Addr) -> String {
    format_mac(mac_for_ip(ip))
}

/// `aa:bb:cc:dd:ee:ff`, lower case, as `ip` and the vxnet CLI print it.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        bail!("not a MAC address: {text:?}");
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        match u8::from_str_radix(part, 16) {
            Ok(b) if part.len() == 2 => *slot = b,
            _ => bail!("not a MAC address: {text:?}"),
        }
    }
    Ok(mac)
}

#[cfg(test)]
mod tests;
