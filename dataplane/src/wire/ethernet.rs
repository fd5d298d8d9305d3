//! Ethernet II header view. 802.1Q-tagged frames are forwarded as they are; only the outer
//! EtherType is looked at.

use super::{MacAddr, WireError};

pub const ETHERNET_HEADER_LEN: usize = 14;

/// Byte ranges of the header's fields.
pub mod field {
    use std::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86dd);
}

#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < ETHERNET_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    pub fn dst(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    pub fn src(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[6], b[7], b[8], b[9], b[10], b[11]])
    }

    pub fn ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([b[12], b[13]]))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[ETHERNET_HEADER_LEN..]
    }
}

/// Writes an Ethernet header into the first 14 bytes of `buf` (which the caller sized).
pub(crate) fn emit_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: EtherType) {
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype.0.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_header_fields() {
        let frame = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
            0x02, 0x42, 0x0a, 0x00, 0x00, 0x02, // src
            0x08, 0x06, // ARP
            0xde, 0xad,
        ];
        let f = EthernetFrame::new_checked(&frame[..]).expect("long enough");
        assert!(f.dst().is_broadcast());
        assert_eq!(f.src().to_string(), "02:42:0a:00:00:02");
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload(), &[0xde, 0xad]);
        assert_eq!(
            EthernetFrame::new_checked(&frame[..13]).err(),
            Some(WireError::Truncated)
        );
    }
}
