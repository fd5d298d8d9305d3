//! The vocabulary both rooms share — the control plane (state machine, CLI, daemon) and the
//! dataplane (wire formats, sandboxes) — and the limits they both check against. Each value
//! lives here once: a limit the CLI, the state machine and the sandbox all enforce cannot drift
//! apart.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// VNIs are 24 bits wide (RFC 7348 §5).
pub const VNI_MAX: u32 = 0x00ff_ffff;
/// The lowest VNI a network may have: 0 is refused because some VTEPs treat it as "no VNI".
pub const VNI_MIN: u32 = 1;
/// The lowest VNI handed out when the user gives none; below it are VNIs people pick by hand.
pub const FIRST_AUTO_VNI: u32 = 256;
const _: () = assert!(FIRST_AUTO_VNI >= VNI_MIN && FIRST_AUTO_VNI <= VNI_MAX);

/// The smallest overlay MTU: what IPv4 guarantees to work (RFC 791).
pub const MTU_MIN: u32 = 576;
/// The largest overlay MTU: jumbo frames; beyond that no underlay carries the encapsulated frame.
pub const MTU_MAX: u32 = 9000;
/// What VXLAN over IPv4 costs: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. The
/// default overlay MTU is the underlay's less this.
pub const VXLAN_OVERHEAD: u32 = 50;
/// What sealing adds on an encrypted network: a 64-bit counter and a 16-byte AEAD tag (the
/// datagram format is in the README, "Encrypted networks"). Its overlay MTU is that much
/// smaller.
pub const SEAL_OVERHEAD: u32 = 24;
/// Bytes of an encrypted network's key.
pub const NETWORK_KEY_LEN: usize = 32;

/// The longest interface name Linux accepts (IFNAMSIZ − 1 bytes).
pub const IFNAME_MAX: usize = 15;

/// A 24-bit VXLAN network identifier (0 included: it is a valid value on the wire, even
/// though no network is given it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// `None` above [`VNI_MAX`].
    pub const fn new(value: u32) -> Option<Vni> {
        if value <= VNI_MAX {
            Some(Vni(value))
        } else {
            None
        }
    }

    /// The 24 bits of a VNI as they stand in bytes 4..7 of a VXLAN header.
    pub const fn from_be_bytes(bytes: [u8; 3]) -> Vni {
        Vni(u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]))
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    pub const fn to_be_bytes(self) -> [u8; 3] {
        let b = self.0.to_be_bytes();
        [b[1], b[2], b[3]]
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The MAC vxnet (like Docker) gives an endpoint and a gateway: `02:42` and the four bytes
    /// of its IPv4 address.
    pub fn for_ipv4(ip: Ipv4Addr) -> MacAddr {
        let o = ip.octets();
        MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// Group addresses (broadcast included) have the I/G bit set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// An address a frame may legitimately carry as its source: unicast and not all-zero.
    pub fn is_unicast_source(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }

    /// Exactly six bytes, else `None` (a stored MAC of another length is corrupt, not zero).
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        Some(MacAddr(bytes.try_into().ok()?))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six colon-separated hex octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (expected six hex octets like 02:42:0a:00:00:02)")
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or(ParseMacError)?;
            if part.len() != 2 {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_display_and_parse_round_trip() {
        let mac = MacAddr([0x02, 0x42, 0x0a, 0x00, 0x00, 0x02]);
        assert_eq!(mac.to_string(), "02:42:0a:00:00:02");
        assert_eq!("02:42:0a:00:00:02".parse::<MacAddr>(), Ok(mac));
        assert_eq!("02:42:0a:00:00".parse::<MacAddr>(), Err(ParseMacError));
        assert_eq!(
            "02:42:0a:00:00:02:03".parse::<MacAddr>(),
            Err(ParseMacError)
        );
        assert_eq!("02:42:0a:00:00:zz".parse::<MacAddr>(), Err(ParseMacError));
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr::ZERO.is_unicast_source());
        assert!(MacAddr::for_ipv4(Ipv4Addr::new(10, 0, 0, 2)).is_unicast_source());
        assert_eq!(
            MacAddr::for_ipv4(Ipv4Addr::new(10, 1, 2, 3)).to_string(),
            "02:42:0a:01:02:03"
        );
    }

    #[test]
    fn vni_is_24_bits() {
        assert_eq!(Vni::new(VNI_MAX).map(Vni::get), Some(VNI_MAX));
        assert_eq!(Vni::new(VNI_MAX + 1), None);
        let v = Vni::new(4100).expect("in range");
        assert_eq!(v.to_be_bytes(), [0x00, 0x10, 0x04]);
        assert_eq!(Vni::from_be_bytes(v.to_be_bytes()), v);
    }
}
