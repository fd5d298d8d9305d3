//! TCP header view (RFC 9293 §3.1), options included.
//!
//! ```text
//!  0                   1                   2                   3
//! |          Source Port          |       Destination Port        |
//! |                        Sequence Number                        |
//! |                    Acknowledgment Number                      |
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |           Checksum            |         Urgent Pointer        |
//! |                    Options (data offset > 5)                  |
//! ```
//! The view spans the whole segment: the buffer from the header to the segment's end, which
//! is what the checksum covers.

use std::ops::BitOr;

use super::{checksum, get_u16, get_u32, put_u16, put_u32, WireError};

/// Length of a header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// Byte ranges of the fixed header's fields.
pub mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// The control bits of the flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;

    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// A view of a TCP segment: header, options, payload.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the whole header, options included, and that the data
    /// offset is at least 5 words.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < TCP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.header_len() < TCP_HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if len < self.header_len() {
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

    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// The header length from the data offset, options included, in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the checksum over the whole buffer and the pseudo-header (its unfolded sum,
    /// from [`checksum::pseudo_header_v4`] or `_v6`) is correct.
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), pseudo_header)) == 0xffff
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_seq_number(&mut self, value: u32) {
        put_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes the checksum over the whole buffer and the pseudo-header sum, and stores it.
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::sum(self.buffer.as_ref(), pseudo_header));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::IpProtocol;

    // An iperf3 data segment 10.10.0.2:40000 → 10.10.0.3:5201: ACK|PSH, timestamps, 4 bytes.
    const SEGMENT: [u8; 36] = [
        0x9c, 0x40, 0x14, 0x51, 0x10, 0x00, 0x00, 0x00, 0xab, 0xcd, 0x00, 0x01, //
        0x80, 0x18, 0x01, 0xf5, 0x00, 0x00, 0x00, 0x00, //
        0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x56, 0x78, //
        b'd', b'a', b't', b'a',
    ];

    fn pseudo() -> u64 {
        checksum::pseudo_header_v4(
            Ipv4Addr::new(10, 10, 0, 2),
            Ipv4Addr::new(10, 10, 0, 3),
            IpProtocol::TCP,
            SEGMENT.len(),
        )
    }

    #[test]
    fn views_header_fields() {
        let p = TcpPacket::new_checked(&SEGMENT[..]).expect("valid");
        assert_eq!((p.src_port(), p.dst_port()), (40000, 5201));
        assert_eq!(p.seq_number(), 0x1000_0000);
        assert_eq!(p.ack_number(), 0xabcd_0001);
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.flags(), TcpFlags::ACK | TcpFlags::PSH);
        assert!(p.flags().contains(TcpFlags::ACK));
        assert!(!p.flags().intersects(TcpFlags::SYN | TcpFlags::FIN));
        assert_eq!(p.window_len(), 0x01f5);
        assert_eq!(p.payload(), b"data");
    }

    #[test]
    fn refuses_bad_headers() {
        let err = |b: &[u8]| TcpPacket::new_checked(b).err();
        assert_eq!(err(&SEGMENT[..19]), Some(WireError::Truncated));
        assert_eq!(err(&SEGMENT[..31]), Some(WireError::Truncated));
        let mut b = SEGMENT;
        b[12] = 0x40;
        assert_eq!(err(&b), Some(WireError::BadHeaderLength));
    }

    #[test]
    fn setters_and_checksum() {
        let mut b = SEGMENT;
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        assert!(!p.verify_checksum(pseudo()));
        p.fill_checksum(pseudo());
        assert!(p.verify_checksum(pseudo()));
        let c = p.checksum();
        p.set_seq_number(0x1000_0004);
        let mut flags = p.flags();
        flags.remove(TcpFlags::PSH);
        flags.insert(TcpFlags::FIN);
        p.set_flags(flags);
        assert!(!p.verify_checksum(pseudo()));
        assert_eq!(&b[4..8], &[0x10, 0, 0, 4]);
        assert_eq!(b[13], 0x11);
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(pseudo());
        assert!(p.verify_checksum(pseudo()));
        assert_ne!(p.checksum(), c);
    }
}
