use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The MAC vxnet (like Docker) gives an endpoint: `02:42` and the four bytes of its IPv4.
    pub fn for_ipv4(ip: std::net::Ipv4Addr) -> MacAddr {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address (expected six hex octets like 02:42:0a:00:00:02)")]
pub struct ParseMacError;

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
    fn display_and_parse_round_trip() {
        let mac = MacAddr([0x02, 0x42, 0x0a, 0x00, 0x00, 0x02]);
        assert_eq!(mac.to_string(), "02:42:0a:00:00:02");
        assert_eq!("02:42:0a:00:00:02".parse::<MacAddr>(), Ok(mac));
        assert_eq!("02:42:0a:00:00".parse::<MacAddr>(), Err(ParseMacError));
        assert_eq!(
            "02:42:0a:00:00:02:03".parse::<MacAddr>(),
            Err(ParseMacError)
        );
        assert_eq!("02:42:0a:00:00:zz".parse::<MacAddr>(), Err(ParseMacError));
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr::ZERO.is_unicast_source());
        assert!(MacAddr::for_ipv4("10.0.0.2".parse().expect("ip")).is_unicast_source());
        assert_eq!(
            MacAddr::for_ipv4("10.1.2.3".parse().expect("ip")).to_string(),
            "02:42:0a:01:02:03"
        );
    }
}
