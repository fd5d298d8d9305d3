//! One parse of a frame's headers: where its Ethernet, IP and TCP/UDP headers are, found once
//! and read by every later stage (splitting, checksum completion, coalescing, the flow hash).
//!
//! Rules a caller relies on:
//! - [`FrameHeaders::parse`] never fails: what is not there, or not sane, is `None`. A frame
//!   shorter than an Ethernet header has no EtherType (and [`FrameHeaders::ethernet`] says
//!   [`WireError::Truncated`]).
//! - Only plain Ethernet II is looked into: IP must follow the Ethernet header directly (an
//!   802.1Q-tagged frame has no IP here). IPv6 extension headers are not followed: the L4
//!   protocol is the fixed header's next header.
//! - IP is recorded when its header is whole and sane (what `Ipv4Packet::new_checked` and
//!   `Ipv6Packet::new_checked` accept). The end its length field declares is reported as it
//!   is: it may lie beyond the frame (truncated) or short of it (Ethernet padding).
//! - TCP and UDP are recorded when their ports are in the frame, with the header length when
//!   the whole header is ([`FrameHeaders::tcp`], [`FrameHeaders::udp`] need that). They are
//!   recorded for IPv4 fragments too: a caller that must not read the first bytes of a
//!   later fragment as ports checks [`IpHeader::fragmented`].
//! - The views it hands out cover the frame from their header to its end, and were checked by
//!   the parse: their accessors index without checking again.

use super::ethernet::{EtherType, EthernetFrame, ETHERNET_HEADER_LEN};
use super::ipv4::Ipv4Packet;
use super::ipv6::{Ipv6Packet, IPV6_HEADER_LEN};
use super::tcp::{self, TcpPacket};
use super::udp::{UdpPacket, UDP_HEADER_LEN};
use super::{checksum, get_u16, IpProtocol, IpVersion, WireError};

/// Where the IP header of a frame is, and what it says about the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHeader {
    pub version: IpVersion,
    /// Offset of the IP header in the frame.
    pub offset: usize,
    /// Its length, IPv4 options included.
    pub header_len: usize,
    /// End of the IP packet in the frame, as its length field declares it.
    pub end: usize,
    /// IPv4 protocol, IPv6 next header.
    pub protocol: IpProtocol,
    /// An IPv4 fragment: more fragments follow, or this is not the first (never for IPv6,
    /// whose fragment header is not followed).
    pub fragmented: bool,
}

impl IpHeader {
    /// Offset of what the IP header carries (the L4 header).
    #[inline]
    pub fn payload_offset(&self) -> usize {
        self.offset + self.header_len
    }
}

/// Where the TCP or UDP header of a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Header {
    /// [`IpProtocol::TCP`] or [`IpProtocol::UDP`].
    pub protocol: IpProtocol,
    /// Offset of the header in the frame; the ports at least are in the frame.
    pub offset: usize,
    /// The header length (TCP: from its data offset, options included), when the whole header
    /// is in the frame.
    pub header_len: Option<usize>,
}

/// A frame and where its headers are: built once per frame by [`FrameHeaders::parse`].
#[derive(Debug, Clone, Copy)]
pub struct FrameHeaders<'a> {
    frame: &'a [u8],
    ethertype: Option<EtherType>,
    ip: Option<IpHeader>,
    l4: Option<L4Header>,
}

impl<'a> FrameHeaders<'a> {
    #[inline]
    pub fn parse(frame: &'a [u8]) -> FrameHeaders<'a> {
        let mut headers = FrameHeaders {
            frame,
            ethertype: None,
            ip: None,
            l4: None,
        };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return headers;
        };
        let ethertype = eth.ethertype();
        headers.ethertype = Some(ethertype);
        headers.ip = parse_ip(ethertype, frame);
        if let Some(ip) = headers.ip {
            headers.l4 = parse_l4(&ip, frame);
        }
        headers
    }

    /// The whole frame.
    #[inline]
    pub fn frame(&self) -> &'a [u8] {
        self.frame
    }

    /// The outer EtherType; `None` for a frame shorter than an Ethernet header.
    #[inline]
    pub fn ethertype(&self) -> Option<EtherType> {
        self.ethertype
    }

    /// The Ethernet view of the frame, without checking its length again.
    #[inline]
    pub fn ethernet(&self) -> Result<EthernetFrame<&'a [u8]>, WireError> {
        match self.ethertype {
            Some(_) => Ok(EthernetFrame::new_unchecked(self.frame)),
            None => Err(WireError::Truncated),
        }
    }

    #[inline]
    pub fn ip(&self) -> Option<IpHeader> {
        self.ip
    }

    #[inline]
    pub fn l4(&self) -> Option<L4Header> {
        self.l4
    }

    #[inline]
    pub fn ipv4(&self) -> Option<Ipv4Packet<&'a [u8]>> {
        let ip = self.ip.filter(|ip| ip.version == IpVersion::V4)?;
        Some(Ipv4Packet::new_unchecked(&self.frame[ip.offset..]))
    }

    #[inline]
    pub fn ipv6(&self) -> Option<Ipv6Packet<&'a [u8]>> {
        let ip = self.ip.filter(|ip| ip.version == IpVersion::V6)?;
        Some(Ipv6Packet::new_unchecked(&self.frame[ip.offset..]))
    }

    /// The TCP segment, when its whole header is in the frame.
    #[inline]
    pub fn tcp(&self) -> Option<TcpPacket<&'a [u8]>> {
        let l4 = self
            .l4
            .filter(|l4| l4.protocol == IpProtocol::TCP && l4.header_len.is_some())?;
        Some(TcpPacket::new_unchecked(&self.frame[l4.offset..]))
    }

    /// The UDP datagram, when its whole header is in the frame.
    #[inline]
    pub fn udp(&self) -> Option<UdpPacket<&'a [u8]>> {
        let l4 = self
            .l4
            .filter(|l4| l4.protocol == IpProtocol::UDP && l4.header_len.is_some())?;
        Some(UdpPacket::new_unchecked(&self.frame[l4.offset..]))
    }

    /// Source and destination port of TCP or UDP.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        let l4 = &self.frame[self.l4?.offset..];
        // TCP and UDP put their ports at the same place.
        Some((
            get_u16(l4, tcp::field::SRC_PORT),
            get_u16(l4, tcp::field::DST_PORT),
        ))
    }

    /// The unfolded pseudo-header sum for an L4 segment of `length` bytes of the IP header's
    /// protocol, as TCP and UDP checksums include it.
    #[inline]
    pub fn pseudo_header(&self, length: usize) -> Option<u64> {
        let ip = self.ip?;
        Some(match ip.version {
            IpVersion::V4 => {
                let p = Ipv4Packet::new_unchecked(&self.frame[ip.offset..]);
                checksum::pseudo_header_v4(p.src_addr(), p.dst_addr(), ip.protocol, length)
            }
            IpVersion::V6 => {
                let p = Ipv6Packet::new_unchecked(&self.frame[ip.offset..]);
                checksum::pseudo_header_v6(p.src_addr(), p.dst_addr(), ip.protocol, length)
            }
        })
    }
}

#[inline]
fn parse_ip(ethertype: EtherType, frame: &[u8]) -> Option<IpHeader> {
    let offset = ETHERNET_HEADER_LEN;
    let packet = &frame[offset..];
    match ethertype {
        EtherType::IPV4 => {
            let p = Ipv4Packet::new_checked(packet).ok()?;
            Some(IpHeader {
                version: IpVersion::V4,
                offset,
                header_len: p.header_len(),
                end: offset + usize::from(p.total_len()),
                protocol: p.protocol(),
                fragmented: p.is_fragment(),
            })
        }
        EtherType::IPV6 => {
            let p = Ipv6Packet::new_checked(packet).ok()?;
            Some(IpHeader {
                version: IpVersion::V6,
                offset,
                header_len: IPV6_HEADER_LEN,
                end: offset + IPV6_HEADER_LEN + usize::from(p.payload_len()),
                protocol: p.next_header(),
                fragmented: false,
            })
        }
        _ => None,
    }
}

#[inline]
fn parse_l4(ip: &IpHeader, frame: &[u8]) -> Option<L4Header> {
    let offset = ip.payload_offset();
    // In the frame: the IP header was checked whole.
    let l4 = &frame[offset..];
    if l4.len() < tcp::field::DST_PORT.end {
        return None;
    }
    let header_len = match ip.protocol {
        IpProtocol::TCP => TcpPacket::new_checked(l4).ok().map(|t| t.header_len()),
        IpProtocol::UDP => UdpPacket::new_checked(l4).ok().map(|_| UDP_HEADER_LEN),
        _ => return None,
    };
    Some(L4Header {
        protocol: ip.protocol,
        offset,
        header_len,
    })
}

#[cfg(test)]
mod tests;
