//! IPv4 header view (RFC 791), options included.
//!
//! ```text
//!  0                   1                   2                   3
//! |Version|  IHL  |    DSCP/ECN   |          Total Length         |
//! |         Identification        |Flags|     Fragment Offset     |
//! |      TTL      |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options (IHL > 5)                          |
//! ```
//! `new_checked` makes sure the whole header, options included, is in the buffer. The total
//! length is reported, not enforced: a frame may be truncated or padded, and what to do about
//! that is the caller's decision ([`Ipv4Packet::payload`] stays within both).

use std::net::Ipv4Addr;

use super::{checksum, get_u16, get_u32, put_u16, IpProtocol, WireError};

/// Length of a header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// Byte ranges of the fixed header's fields.
pub mod field {
    use std::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet: the header at the start of the buffer, and what follows it.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds an IPv4 header (version 4, IHL at least 5) whole.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < IPV4_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        if self.header_len() < IPV4_HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if b.len() < self.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length from IHL, options included, in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The length of the packet, header included, as the header declares it.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// The fragment offset, in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this is a fragment of a larger datagram: more follow, or it is not the first.
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..self.header_len()];
        checksum::fold(checksum::sum(header, 0)) == 0xffff
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(get_u32(self.buffer.as_ref(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(get_u32(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// What follows the header, up to the declared total length or the end of the buffer,
    /// whichever comes first (Ethernet padding is not payload).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let start = self.header_len();
        let end = usize::from(self.total_len()).clamp(start, b.len());
        &b[start..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_total_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    pub fn set_ident(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes the header checksum over the header as it is now, and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let len = self.header_len();
        let c = !checksum::fold(checksum::sum(&self.buffer.as_ref()[..len], 0));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ping -c1 10.10.0.3` from 10.10.0.2, the IPv4 header and 4 bytes of ICMP; DF, id 0x1c46.
    const ECHO: [u8; 24] = [
        0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x0a, 0x4b, //
        10, 10, 0, 2, 10, 10, 0, 3, //
        0x08, 0x00, 0xf7, 0xfc,
    ];

    #[test]
    fn views_header_fields() {
        let p = Ipv4Packet::new_checked(&ECHO[..]).expect("valid");
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 84);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol(1));
        assert_eq!(p.checksum(), 0x0a4b);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 10, 0, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 10, 0, 3));
        // Total length 84, but only 24 bytes here: the payload is what there is.
        assert_eq!(p.payload(), &ECHO[20..]);
    }

    #[test]
    fn fragments_are_seen() {
        let mut b = ECHO;
        b[6..8].copy_from_slice(&[0x20, 0x00]); // MF
        assert!(Ipv4Packet::new_unchecked(&b[..]).is_fragment());
        b[6..8].copy_from_slice(&[0x00, 0xb9]); // offset 185 * 8
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(p.is_fragment() && !p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn refuses_bad_headers() {
        let err = |b: &[u8]| Ipv4Packet::new_checked(b).err();
        assert_eq!(err(&ECHO[..19]), Some(WireError::Truncated));
        let mut b = ECHO;
        b[0] = 0x65;
        assert_eq!(err(&b), Some(WireError::BadVersion));
        b[0] = 0x44;
        assert_eq!(err(&b), Some(WireError::BadHeaderLength));
        b[0] = 0x46; // one option word, which is not there
        assert_eq!(err(&b[..23]), Some(WireError::Truncated));
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).map(|p| p.header_len()),
            Ok(24)
        );
    }

    #[test]
    fn setters_and_checksum_fill() {
        let mut b = ECHO;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_total_len(40);
        p.set_ident(0xbeef);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(&b[2..6], &[0x00, 0x28, 0xbe, 0xef]);
        // Recomputed over the old bytes, the original checksum comes back.
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_total_len(84);
        p.set_ident(0x1c46);
        p.fill_checksum();
        assert_eq!(b, ECHO);
    }
}
