//! UDP header view (RFC 768).
//!
//! ```text
//!  0                   1                   2                   3
//! |          Source Port          |       Destination Port        |
//! |            Length             |           Checksum            |
//! ```
//! The view spans the whole datagram, as the checksum does. A checksum of 0 means "none"; one
//! that computes to 0 is sent as `0xffff`.

use super::{checksum, get_u16, put_u16, WireError};

pub const UDP_HEADER_LEN: usize = 8;

/// Byte ranges of the header's fields.
pub mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A view of a UDP datagram: header and payload.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the header. The length field is reported, not enforced.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < UDP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The datagram length, header included, as the header declares it.
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the checksum over the whole buffer and the pseudo-header sum is correct, or
    /// absent (0).
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        self.checksum() == 0
            || checksum::fold(checksum::sum(self.buffer.as_ref(), pseudo_header)) == 0xffff
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[UDP_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_length(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes the checksum over the whole buffer and the pseudo-header sum, and stores it
    /// (`0xffff` for a computed 0).
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::sum(self.buffer.as_ref(), pseudo_header));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::IpProtocol;

    // A VXLAN datagram's UDP header 10.0.0.1:49152 → 10.0.0.2:4789, 4 payload bytes.
    const DATAGRAM: [u8; 12] = [
        0xc0, 0x00, 0x12, 0xb5, 0x00, 0x0c, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
    ];

    fn pseudo() -> u64 {
        checksum::pseudo_header_v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            IpProtocol::UDP,
            DATAGRAM.len(),
        )
    }

    #[test]
    fn views_header_fields() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).expect("valid");
        assert_eq!((p.src_port(), p.dst_port()), (49152, 4789));
        assert_eq!(p.length(), 12);
        assert_eq!(p.checksum(), 0);
        assert!(p.verify_checksum(pseudo()), "no checksum is no error");
        assert_eq!(p.payload(), &[0x08, 0, 0, 0]);
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]).err(),
            Some(WireError::Truncated)
        );
    }

    #[test]
    fn fills_and_verifies_the_checksum() {
        let mut b = DATAGRAM;
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(pseudo());
        assert!(p.verify_checksum(pseudo()));
        // 0a00 0001 0a00 0002 0011 000c + c000 12b5 000c + 0800 = 0xeee1, complemented.
        assert_eq!(p.checksum(), 0x111e);
        p.set_checksum(0x111f);
        assert!(!p.verify_checksum(pseudo()));
    }
}
