//! The inner-flow hash that picks the outer UDP source port, so that a receiver's RSS (and a
//! kernel vxlan peer's, which hashes the outer 5-tuple) spreads distinct flows over its queues
//! while one flow keeps one port and stays in order.

use etherparse::{IpNumber, Ipv4HeaderSlice};

use super::{EtherType, EthernetFrame};

/// Hashes MACs, and for IPv4 the addresses, protocol and — for unfragmented TCP/UDP — the
/// ports. Both directions of a flow need not hash alike; one direction must be stable.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return 0;
    };
    let mut h = Fnv1a::new();
    h.write(&frame[..12]);
    if eth.ethertype() == EtherType::IPV4 {
        if let Ok(ip) = Ipv4HeaderSlice::from_slice(eth.payload()) {
            h.write(&ip.source());
            h.write(&ip.destination());
            h.write(&[ip.protocol().0]);
            let unfragmented = !ip.more_fragments() && ip.fragments_offset().value() == 0;
            let is_l4 = ip.protocol() == IpNumber::TCP || ip.protocol() == IpNumber::UDP;
            let l4 = &eth.payload()[ip.slice().len()..];
            if unfragmented && is_l4 && l4.len() >= 4 {
                h.write(&l4[..4]);
            }
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

    #[test]
    fn same_flow_same_hash_other_ports_spread() {
        assert_eq!(flow_hash(&tcp_frame(40000)), flow_hash(&tcp_frame(40000)));
        let ports: std::collections::HashSet<u32> = (40000..40064)
            .map(|p| flow_hash(&tcp_frame(p)) % 8)
            .collect();
        assert!(
            ports.len() >= 6,
            "64 flows landed on only {} of 8 ports",
            ports.len()
        );
    }

    #[test]
    fn junk_does_not_panic() {
        assert_eq!(flow_hash(&[]), 0);
        let mut f = tcp_frame(1);
        f.truncate(20);
        let _ = flow_hash(&f);
    }
}
