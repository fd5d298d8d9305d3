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
    arp_frame(BROADCAST, 1, (sender_mac, sender_ip), ([0; 6], target_ip))
}

/// An ARP frame (Ethernet, IPv4) from `sender.0` to `dst`: operation `op` (1 request, 2
/// reply), sender and target (MAC, address) as given. A gratuitous ARP is a broadcast request
/// whose target address is its sender address.
pub fn arp_frame(
    dst: [u8; 6],
    op: u16,
    sender: ([u8; 6], Ipv4Addr),
    target: ([u8; 6], Ipv4Addr),
) -> Vec<u8> {
    let mut arp = Vec::with_capacity(28);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4]); // Ethernet, IPv4, lengths
    arp.extend_from_slice(&op.to_be_bytes());
    arp.extend_from_slice(&sender.0);
    arp.extend_from_slice(&sender.1.octets());
    arp.extend_from_slice(&target.0);
    arp.extend_from_slice(&target.1.octets());
    ethernet_frame(dst, sender.0, ETHERTYPE_ARP, &arp)
}

/// An IPv4 ICMP echo request frame with identifier `id` and sequence `seq`, checksums right.
pub fn icmp_echo_frame(
    (src_mac, src_ip): ([u8; 6], Ipv4Addr),
    (dst_mac, dst_ip): ([u8; 6], Ipv4Addr),
    id: u16,
    seq: u16,
) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"vxnet spoof test");
    let sum = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]); // id, DF, TTL 64, ICMP, checksum
    ip.extend_from_slice(&src_ip.octets());
    ip.extend_from_slice(&dst_ip.octets());
    let sum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ethernet_frame(dst_mac, src_mac, ETHERTYPE_IPV4, &ip)
}

/// The ones' complement sum of RFC 1071.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends each of `frames` as is (Ethernet header included) out of interface `ifname` of
/// namespace `ns`, through an `AF_PACKET` raw socket: what a container with `CAP_NET_RAW` can
/// put on its link, whatever addresses it carries.
pub fn send_raw_frames(ns: &str, ifname: &str, frames: Vec<Vec<u8>>) -> Result<()> {
    let ifname = ifname.to_string();
    crate::netns::in_netns_thread(ns, move || {
        let name = std::ffi::CString::new(ifname.clone())?;
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            bail!("no interface {ifname}: {}", std::io::Error::last_os_error());
        }
        // SAFETY: socket(2) with constant arguments; the fd is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        addr.sll_halen = 6;
        let mut outcome = Ok(());
        for frame in &frames {
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            // SAFETY: a buffer of frame.len() bytes and a sockaddr_ll of its own size.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if sent < 0 {
                outcome = Err(anyhow::anyhow!(
                    "sending a raw frame on {ifname}: {}",
                    std::io::Error::last_os_error()
                ));
                break;
            }
        }
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(fd) };
        outcome
    })
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
