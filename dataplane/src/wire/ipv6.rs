//! IPv6 fixed header view (RFC 8200 §3). Extension headers are not parsed: what follows the
//! fixed header is whatever `next_header` says.
//!
//! ```text
//!  0                   1                   2                   3
//! |Version| Traffic Class |           Flow Label                  |
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! |                 Source Address (16 bytes)                     |
//! |              Destination Address (16 bytes)                   |
//! ```

use std::net::Ipv6Addr;

use super::{get_u16, put_u16, IpProtocol, WireError};

pub const IPV6_HEADER_LEN: usize = 40;

/// Byte ranges of the fixed header's fields.
pub mod field {
    use std::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// A view of an IPv6 packet: the fixed header at the start of the buffer, and what follows.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header, with version 6. The payload length is
    /// reported, not enforced (see [`Ipv6Packet::payload`]).
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < IPV6_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// The length of what follows the fixed header, as the header declares it.
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr(field::SRC_ADDR.start))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr(field::DST_ADDR.start))
    }

    fn addr(&self, at: usize) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[at..at + 16]);
        a
    }

    /// What follows the fixed header, up to the declared payload length or the end of the
    /// buffer, whichever comes first.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (IPV6_HEADER_LEN + usize::from(self.payload_len())).min(b.len());
        &b[IPV6_HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    pub fn set_payload_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ping -6 -c1 fd00::3` from fd00::2: the fixed header and 4 bytes of ICMPv6.
    const ECHO: [u8; 44] = [
        0x60, 0x0a, 0xbc, 0xde, 0x00, 0x40, 0x3a, 0x40, //
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, //
        0x80, 0x00, 0x1f, 0x9d,
    ];

    #[test]
    fn views_header_fields() {
        let p = Ipv6Packet::new_checked(&ECHO[..]).expect("valid");
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload_len(), 64);
        assert_eq!(p.next_header(), IpProtocol(58));
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(
            p.src_addr(),
            "fd00::2".parse::<Ipv6Addr>().expect("address")
        );
        assert_eq!(
            p.dst_addr(),
            "fd00::3".parse::<Ipv6Addr>().expect("address")
        );
        assert_eq!(p.payload(), &ECHO[40..]);
    }

    #[test]
    fn refuses_bad_headers_and_sets_the_length() {
        assert_eq!(
            Ipv6Packet::new_checked(&ECHO[..39]).err(),
            Some(WireError::Truncated)
        );
        let mut b = ECHO;
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).err(),
            Some(WireError::BadVersion)
        );
        let mut b = ECHO;
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_payload_len(4);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(&b[4..6], &[0, 4]);
    }
}
