//! The inner-flow hash that picks the outer UDP source port, so that a receiver's RSS (and a
//! kernel vxlan peer's, which hashes the outer 5-tuple) spreads distinct flows over its queues
//! while one flow keeps one port and stays in order.

use super::{ethernet, FrameHeaders};

/// Hashes MACs, and for IPv4 the addresses, protocol and — for unfragmented TCP/UDP — the
/// ports. Both directions of a flow need not hash alike; one direction must be stable. A frame
/// shorter than an Ethernet header hashes to 0.
pub fn flow_hash(headers: &FrameHeaders<'_>) -> u32 {
    if headers.ethertype().is_none() {
        return 0;
    }
    let mut h = Fnv1a::new();
    // Destination and source MAC, as one piece.
    h.write(&headers.frame()[ethernet::field::DESTINATION.start..ethernet::field::SOURCE.end]);
    if let (Some(ip), Some(packet)) = (headers.ip(), headers.ipv4()) {
        h.write(&packet.src_addr().octets());
        h.write(&packet.dst_addr().octets());
        h.write(&[ip.protocol.0]);
        // Only a first fragment has ports: hash none, so that all fragments hash alike.
        if let (false, Some((src, dst))) = (ip.fragmented, headers.ports()) {
            h.write(&src.to_be_bytes());
            h.write(&dst.to_be_bytes());
        }
    }
    h.finish()
}

/// FNV-1a: tiny, no allocation, good enough spread for picking one of a few ports.
struct Fnv1a(u32);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0x811c_9dc5)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    fn finish(&self) -> u32 {
        // Fold the high bits in: callers take the hash modulo a small number.
        self.0 ^ (self.0 >> 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(src_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 3]);
        f[34..36].copy_from_slice(&src_port.to_be_bytes());
        f[36..38].copy_from_slice(&5201u16.to_be_bytes());
        f
    }

    fn hash(frame: &[u8]) -> u32 {
        flow_hash(&FrameHeaders::parse(frame))
    }

    /// The hash as it was defined over raw bytes: MACs, then for an IPv4 header the
    /// addresses, protocol and (unfragmented TCP/UDP) the 4 port bytes.
    fn reference(frame: &[u8]) -> u32 {
        let mut h = Fnv1a::new();
        h.write(&frame[..12]);
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 15) * 4;
        h.write(&ip[12..20]);
        h.write(&[ip[9]]);
        let unfragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff == 0;
        if unfragmented && (ip[9] == 6 || ip[9] == 17) && ip.len() >= ihl + 4 {
            h.write(&ip[ihl..ihl + 4]);
        }
        h.finish()
    }

    #[test]
    fn same_flow_same_hash_other_ports_spread() {
        assert_eq!(hash(&tcp_frame(40000)), hash(&tcp_frame(40000)));
        let ports: std::collections::HashSet<u32> =
            (40000..40064).map(|p| hash(&tcp_frame(p)) % 8).collect();
        assert!(
            ports.len() >= 6,
            "64 flows landed on only {} of 8 ports",
            ports.len()
        );
    }

    #[test]
    fn hashes_the_same_fields_as_before() {
        let mut udp = tcp_frame(1234);
        udp[23] = 17;
        let mut fragment = tcp_frame(1234);
        fragment[20] = 0x20;
        let mut icmp = tcp_frame(1234);
        icmp[23] = 1;
        for f in [
            tcp_frame(40000),
            udp,
            fragment,
            icmp,
            tcp_frame(1)[..36].to_vec(),
        ] {
            assert_eq!(hash(&f), reference(&f));
        }
    }

    #[test]
    fn junk_does_not_panic() {
        assert_eq!(hash(&[]), 0);
        let mut f = tcp_frame(1);
        f.truncate(20);
        let _ = hash(&f);
    }
}
