//! ARP for IPv4 over Ethernet (RFC 826), the only kind the ARP proxy answers.

use std::net::Ipv4Addr;

use super::ethernet::{emit_header, EtherType, ETHERNET_HEADER_LEN};
use super::{MacAddr, WireError};

/// Length of an Ethernet/IPv4 ARP packet (without the Ethernet header).
pub const ARP_PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    Request,
    Reply,
    Other(u16),
}

/// A view of an Ethernet/IPv4 ARP packet; `new_checked` refuses other hardware or protocol
/// types, so the address accessors always read 6-byte MACs and 4-byte IPv4 addresses.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < ARP_PACKET_LEN {
            return Err(WireError::Truncated);
        }
        // htype Ethernet, ptype IPv4, hlen 6, plen 4.
        if b[0..6] != [0x00, 0x01, 0x08, 0x00, 6, 4] {
            return Err(WireError::NotEthernetIpv4Arp);
        }
        Ok(ArpPacket { buffer })
    }

    pub fn operation(&self) -> ArpOperation {
        let b = self.buffer.as_ref();
        match u16::from_be_bytes([b[6], b[7]]) {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Other(other),
        }
    }

    pub fn sender_mac(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[8], b[9], b[10], b[11], b[12], b[13]])
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[14], b[15], b[16], b[17])
    }

    pub fn target_mac(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[18], b[19], b[20], b[21], b[22], b[23]])
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[24], b[25], b[26], b[27])
    }
}

/// Writes into `buf` the Ethernet frame answering `request`: "`request.target_ip()` is at
/// `answer`". Returns the frame length, or `None` if `buf` is too small.
pub fn emit_arp_reply<T: AsRef<[u8]>>(
    request: &ArpPacket<T>,
    answer: MacAddr,
    buf: &mut [u8],
) -> Option<usize> {
    let len = ETHERNET_HEADER_LEN + ARP_PACKET_LEN;
    let frame = buf.get_mut(..len)?;
    emit_header(frame, request.sender_mac(), answer, EtherType::ARP);
    let arp = &mut frame[ETHERNET_HEADER_LEN..];
    arp[0..6].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]);
    arp[6..8].copy_from_slice(&2u16.to_be_bytes());
    arp[8..14].copy_from_slice(&answer.0);
    arp[14..18].copy_from_slice(&request.target_ip().octets());
    arp[18..24].copy_from_slice(&request.sender_mac().0);
    arp[24..28].copy_from_slice(&request.sender_ip().octets());
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `arping -I eth0 10.10.0.3` from 02:42:0a:0a:00:02 / 10.10.0.2, ARP part only.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
        0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02, 10, 10, 0, 2, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 10, 0, 3, // target
    ];

    #[test]
    fn parses_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).expect("valid");
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.sender_mac().to_string(), "02:42:0a:0a:00:02");
        assert_eq!(p.sender_ip(), Ipv4Addr::new(10, 10, 0, 2));
        assert_eq!(p.target_mac(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), Ipv4Addr::new(10, 10, 0, 3));
    }

    #[test]
    fn refuses_other_kinds() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).err(),
            Some(WireError::Truncated)
        );
        let mut ipv6ish = REQUEST;
        ipv6ish[5] = 16;
        assert_eq!(
            ArpPacket::new_checked(&ipv6ish[..]).err(),
            Some(WireError::NotEthernetIpv4Arp)
        );
    }

    #[test]
    fn reply_answers_the_request() {
        let req = ArpPacket::new_checked(&REQUEST[..]).expect("valid");
        let answer = MacAddr([0x02, 0x42, 0x0a, 0x0a, 0x00, 0x03]);
        let mut buf = [0u8; 64];
        let len = emit_arp_reply(&req, answer, &mut buf).expect("room");
        assert_eq!(len, 42);
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02, // to the asker
            0x02, 0x42, 0x0a, 0x0a, 0x00, 0x03, // from the answer
            0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
            0x02, 0x42, 0x0a, 0x0a, 0x00, 0x03, 10, 10, 0, 3,
            0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02, 10, 10, 0, 2,
        ];
        assert_eq!(&buf[..len], &expected[..]);
        assert_eq!(emit_arp_reply(&req, answer, &mut [0u8; 41]), None);
    }
}
