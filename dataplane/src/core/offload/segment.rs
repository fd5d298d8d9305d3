//! TAP → wire: a superframe split into MSS-sized segments, a `NEEDS_CSUM` frame completed.

use std::ops::Range;

use super::{OffloadError, MAX_IP_PACKET};
use crate::wire::{
    checksum, udp, EtherType, FrameHeaders, GsoType, IpProtocol, IpVersion, Ipv4Packet, Ipv6Packet,
    TcpFlags, TcpPacket, VirtioNetHdr,
};

/// The frames [`segment`] produced, back to back in one reusable buffer, each behind a copy
/// of the headroom given at creation (the VXLAN header, for the engine) and before a tailroom
/// of zeros (an encrypted network's tag): frames `i..j` with their rooms are then one
/// contiguous run of datagrams ([`Segments::run`]), as UDP segmentation offload wants them.
#[derive(Debug, Default)]
pub struct Segments {
    buf: Vec<u8>,
    starts: Vec<usize>,
    ends: Vec<usize>,
    headroom: Vec<u8>,
    tailroom: usize,
}

impl Segments {
    pub fn new() -> Segments {
        Segments::default()
    }

    pub fn with_headroom(headroom: &[u8]) -> Segments {
        Segments::with_rooms(headroom, 0)
    }

    /// Every frame behind `headroom` and before `tailroom` zero bytes.
    pub fn with_rooms(headroom: &[u8], tailroom: usize) -> Segments {
        Segments {
            headroom: headroom.to_vec(),
            tailroom,
            ..Segments::default()
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.starts.clear();
        self.ends.clear();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th frame. Panics if `i >= len()`.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.buf[self.starts[i]..self.ends[i]]
    }

    /// Frames `range` with their rooms, back to back. Panics if out of bounds.
    pub fn run(&self, range: Range<usize>) -> &[u8] {
        if range.is_empty() {
            return &[];
        }
        &self.buf[self.starts[range.start] - self.headroom.len()
            ..self.ends[range.end - 1] + self.tailroom]
    }

    /// The `i`th frame with its rooms: one datagram. Panics if `i >= len()`.
    pub fn datagram_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[self.starts[i] - self.headroom.len()..self.ends[i] + self.tailroom]
    }

    /// The length of the `i`th frame with its rooms. Panics if `i >= len()`.
    pub fn datagram_len(&self, i: usize) -> usize {
        self.headroom.len() + (self.ends[i] - self.starts[i]) + self.tailroom
    }

    /// Appends a copy of frames `range` (with their rooms); returns where the copies are.
    /// Panics if out of bounds.
    pub fn duplicate(&mut self, range: Range<usize>) -> Range<usize> {
        let first = self.len();
        for i in range {
            let (start, end) = (self.starts[i], self.ends[i]);
            let from = start - self.headroom.len();
            let at = self.buf.len();
            self.buf.extend_from_within(from..end + self.tailroom);
            self.starts.push(at + (start - from));
            self.ends.push(at + (end - from));
        }
        first..self.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Keeps the first `len` frames.
    pub fn truncate(&mut self, len: usize) {
        self.starts.truncate(len);
        self.ends.truncate(len);
        self.buf
            .truncate(self.ends.last().map_or(0, |end| end + self.tailroom));
    }

    /// Appends headroom, `parts` (together one frame) and tailroom; returns where the frame
    /// is in `buf`.
    fn push(&mut self, parts: &[&[u8]]) -> Range<usize> {
        self.buf.extend_from_slice(&self.headroom);
        let start = self.buf.len();
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        let end = self.buf.len();
        self.buf.resize(end + self.tailroom, 0);
        self.starts.push(start);
        self.ends.push(end);
        start..end
    }
}

/// Turns one TAP read — `hdr` and the parse of the Ethernet frame behind it — into complete
/// frames appended to `out`: a GSO superframe into MSS-sized segments, a frame whose checksum
/// the kernel left to us into the same frame with it filled in, anything else into itself.
/// The count of frames appended is returned; on error, nothing is appended.
pub fn segment(
    hdr: &VirtioNetHdr,
    frame: &FrameHeaders<'_>,
    out: &mut Segments,
) -> Result<usize, OffloadError> {
    match hdr.gso_type {
        GsoType::None => {
            let at = out.push(&[frame.frame()]);
            if hdr.needs_csum() {
                if let Err(e) = complete_checksum(hdr, frame, &mut out.buf[at]) {
                    out.truncate(out.len() - 1);
                    return Err(e);
                }
            }
            Ok(1)
        }
        GsoType::TcpV4 | GsoType::TcpV6 => split_tcp(hdr, frame, out),
        GsoType::Udp | GsoType::UdpL4 => Err(OffloadError::Unsupported),
    }
}

/// Fills in the checksum a `NEEDS_CSUM` frame carries as a pseudo-header partial sum: the
/// one's complement of the sum from `csum_start` to the end, stored at
/// `csum_start + csum_offset`. A UDP checksum that comes out 0 is sent as 0xffff (RFC 768:
/// 0 means "none"). `copy` is the copy of `parsed`'s frame to write into.
fn complete_checksum(
    hdr: &VirtioNetHdr,
    parsed: &FrameHeaders<'_>,
    copy: &mut [u8],
) -> Result<(), OffloadError> {
    let start = usize::from(hdr.csum_start);
    let at = start + usize::from(hdr.csum_offset);
    if start > copy.len() || at + 2 > copy.len() || hdr.csum_offset & 1 != 0 {
        return Err(OffloadError::BadVnetHeader);
    }
    // Ethernet padding is not part of the IP packet, so not of the sum.
    let ip = parsed.ip();
    let end = match ip {
        Some(ip) if ip.end <= copy.len() && ip.end >= at + 2 => ip.end,
        _ => copy.len(),
    };
    let mut c = !checksum::fold(checksum::sum(&copy[start..end], 0));
    let udp = ip.is_some_and(|ip| {
        ip.protocol == IpProtocol::UDP
            && ip.payload_offset() == start
            && usize::from(hdr.csum_offset) == udp::field::CHECKSUM.start
    });
    if udp && c == 0 {
        c = 0xffff;
    }
    copy[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

fn split_tcp(
    hdr: &VirtioNetHdr,
    parsed: &FrameHeaders<'_>,
    out: &mut Segments,
) -> Result<usize, OffloadError> {
    let expected = if hdr.gso_type == GsoType::TcpV6 {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    if parsed.ethertype().ok_or(OffloadError::Truncated)? != expected {
        return Err(OffloadError::Unsupported);
    }
    let ip = parsed.ip().ok_or(OffloadError::Truncated)?;
    if ip.protocol != IpProtocol::TCP {
        return Err(OffloadError::Unsupported);
    }
    let tcp = parsed.tcp().ok_or(OffloadError::Truncated)?;
    let l4 = ip.payload_offset();
    let tcp_len = tcp.header_len();
    let hdr_len = l4 + tcp_len;
    let mss = usize::from(hdr.gso_size);
    // Every segment's lengths must fit their 16-bit fields.
    if hdr_len - ip.offset + mss > MAX_IP_PACKET {
        return Err(OffloadError::BadVnetHeader);
    }
    let (headers, payload) = parsed.frame().split_at(hdr_len);
    let count = payload.len().div_ceil(mss).max(1);

    let seq0 = tcp.seq_number();
    let flags0 = tcp.flags();
    let id0 = parsed.ipv4().map_or(0, |p| p.ident());
    // The pseudo-header is the same for every segment but for the length.
    let pseudo_base = parsed.pseudo_header(0).ok_or(OffloadError::Truncated)?;

    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let at = out.push(&[headers, chunk]);
        let seg = &mut out.buf[at];
        let l4_len = tcp_len + chunk.len();
        match ip.version {
            IpVersion::V6 => {
                Ipv6Packet::new_unchecked(&mut seg[ip.offset..]).set_payload_len(l4_len as u16);
            }
            IpVersion::V4 => {
                let mut p = Ipv4Packet::new_unchecked(&mut seg[ip.offset..l4]);
                p.set_total_len((ip.header_len + l4_len) as u16);
                p.set_ident(id0.wrapping_add(i as u16));
                p.fill_checksum();
            }
        }
        let mut t = TcpPacket::new_unchecked(&mut seg[l4..]);
        t.set_seq_number(seq0.wrapping_add((i * mss) as u32));
        let mut flags = flags0;
        if i + 1 < count {
            flags.remove(TcpFlags::FIN | TcpFlags::PSH);
        }
        if i > 0 {
            flags.remove(TcpFlags::CWR);
        }
        t.set_flags(flags);
        t.fill_checksum(pseudo_base + l4_len as u64);
    }
    Ok(count)
}
