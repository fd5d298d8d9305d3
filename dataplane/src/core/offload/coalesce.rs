//! wire → TAP: a batch of decapsulated TCP segments merged into superframes, as GRO would;
//! and, where the TAP takes UDP segmentation (Linux 6.2+), a flow's UDP datagrams of one size
//! merged into one UDP superframe, which the kernel cuts into the same datagrams again.

use std::ops::Range;

use super::MAX_IP_PACKET;
use crate::wire::{
    checksum, ipv4, ipv6, tcp, udp, FrameHeaders, GsoType, IpProtocol, IpVersion, Ipv4Packet,
    Ipv6Packet, TcpFlags, TcpPacket, UdpPacket, VirtioNetHdr, ETHERNET_HEADER_LEN, FLAG_NEEDS_CSUM,
    UDP_HEADER_LEN, VNET_HDR_LEN,
};

/// How far back the coalescer looks for the flow of a segment: flows interleave in a batch,
/// but only a few at a time.
const FLOW_SCAN: usize = 8;
/// Most datagrams one UDP superframe carries (`UDP_MAX_SEGMENTS` of older kernels).
const UDP_MAX_SEGMENTS: u32 = 64;

/// One frame to write into the TAP: header and frame, back to back.
struct Item {
    buf: Vec<u8>,
    /// Wire frames merged into it, and their bytes (for the rx counters).
    frames: u32,
    wire_bytes: usize,
    tcp: Option<TcpRun>,
    udp: Option<UdpRun>,
}

impl Item {
    /// Whether this item holds a run of `protocol` of `frame`'s flow, whose IP and L4 headers
    /// start at `ip` and `l4`.
    fn is_flow(
        &self,
        frame: &[u8],
        protocol: IpProtocol,
        version: IpVersion,
        ip: usize,
        l4: usize,
    ) -> bool {
        let run = match (&self.tcp, &self.udp) {
            (Some(run), _) => Some((IpProtocol::TCP, run.layout)),
            (None, Some(run)) => Some((IpProtocol::UDP, run.layout)),
            (None, None) => None,
        };
        run.is_some_and(|(runs, at)| {
            runs == protocol
                && at.version == version
                && at.ip == ip
                && at.l4 == l4
                && same_flow(&self.buf[VNET_HDR_LEN..], frame, &at)
        })
    }

    /// Lets nothing more be merged into this item's run.
    fn close(&mut self) {
        if let Some(run) = self.tcp.as_mut() {
            run.closed = true;
        }
        if let Some(run) = self.udp.as_mut() {
            run.closed = true;
        }
    }
}

/// Where a TCP segment's (or UDP datagram's) headers are; the same for every segment of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TcpLayout {
    version: IpVersion,
    /// Offsets of the IP header, of the TCP header, and of the payload.
    ip: usize,
    l4: usize,
    hdr_len: usize,
}

/// The state of a run of merged TCP segments.
#[derive(Debug, Clone, Copy)]
struct TcpRun {
    layout: TcpLayout,
    /// The pseudo-header sum but for the length: the addresses do not change within a run.
    pseudo_base: u64,
    gso_size: usize,
    next_seq: u32,
    /// The last segment was shorter than `gso_size` or had PSH: nothing may follow it.
    closed: bool,
}

/// The state of a run of merged UDP datagrams.
#[derive(Debug, Clone, Copy)]
struct UdpRun {
    layout: TcpLayout,
    pseudo_base: u64,
    /// The first datagram's payload: every later one has it, but the last may be shorter.
    gso_size: usize,
    /// IPv4: the id the next datagram must carry, as the kernel numbers the datagrams it cuts
    /// from a superframe on from the first one's id.
    next_id: Option<u16>,
    closed: bool,
}

/// A UDP datagram that may be merged: not a fragment, checksums present and verified.
#[derive(Debug, Clone, Copy)]
struct UdpDatagram {
    layout: TcpLayout,
    pseudo_base: u64,
    ident: Option<u16>,
    payload_len: usize,
}

/// Whether the parsed frame is a UDP datagram the coalescer may merge, and where its parts are.
fn mergeable_udp(parsed: &FrameHeaders<'_>) -> Option<UdpDatagram> {
    let frame = parsed.frame();
    let ip = parsed.ip()?;
    if ip.protocol != IpProtocol::UDP || ip.end != frame.len() {
        return None;
    }
    let ident = match parsed.ipv4() {
        Some(v4) if v4.is_fragment() || !v4.verify_checksum() => return None,
        Some(v4) => Some(v4.ident()),
        None => None,
    };
    let datagram = parsed.udp()?;
    let l4 = ip.payload_offset();
    let l4_len = frame.len() - l4;
    // No checksum (0) would get one when the kernel cuts the superframe: pass it on as it is.
    if l4_len <= UDP_HEADER_LEN
        || usize::from(datagram.length()) != l4_len
        || datagram.checksum() == 0
    {
        return None;
    }
    let pseudo_base = parsed.pseudo_header(0)?;
    if !datagram.verify_checksum(pseudo_base + l4_len as u64) {
        return None;
    }
    Some(UdpDatagram {
        layout: TcpLayout {
            version: ip.version,
            ip: ip.offset,
            l4,
            hdr_len: l4 + UDP_HEADER_LEN,
        },
        pseudo_base,
        ident,
        payload_len: l4_len - UDP_HEADER_LEN,
    })
}

/// A TCP segment that may be merged: checksums verified, nothing but ACK (and PSH) set.
#[derive(Debug, Clone, Copy)]
struct TcpSegment {
    layout: TcpLayout,
    pseudo_base: u64,
    seq: u32,
    psh: bool,
    payload_len: usize,
}

/// Whether the parsed frame is a TCP segment the coalescer may merge, and where its parts are.
fn mergeable_tcp(parsed: &FrameHeaders<'_>) -> Option<TcpSegment> {
    let frame = parsed.frame();
    let ip = parsed.ip()?;
    // Ethernet padding or a truncated packet: pass it on untouched.
    if ip.protocol != IpProtocol::TCP || ip.end != frame.len() {
        return None;
    }
    if let Some(v4) = parsed.ipv4() {
        if v4.is_fragment() || !v4.verify_checksum() {
            return None;
        }
    }
    let tcp = parsed.tcp()?;
    let l4 = ip.payload_offset();
    let hdr_len = l4 + tcp.header_len();
    if hdr_len >= frame.len() {
        return None;
    }
    let flags = tcp.flags();
    let special = TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST | TcpFlags::URG | TcpFlags::CWR;
    if flags.intersects(special) || !flags.contains(TcpFlags::ACK) {
        return None;
    }
    let pseudo_base = parsed.pseudo_header(0)?;
    if !tcp.verify_checksum(pseudo_base + (frame.len() - l4) as u64) {
        return None;
    }
    Some(TcpSegment {
        layout: TcpLayout {
            version: ip.version,
            ip: ip.offset,
            l4,
            hdr_len,
        },
        pseudo_base,
        seq: tcp.seq_number(),
        psh: flags.contains(TcpFlags::PSH),
        payload_len: frame.len() - hdr_len,
    })
}

/// The addresses of the IP header, relative to it.
fn addresses(version: IpVersion) -> Range<usize> {
    match version {
        IpVersion::V4 => ipv4::field::SRC_ADDR.start..ipv4::field::DST_ADDR.end,
        IpVersion::V6 => ipv6::field::SRC_ADDR.start..ipv6::field::DST_ADDR.end,
    }
}

/// Whether `a` and `b`, both TCP (or both UDP) frames with the header offsets `at`, belong to
/// the same flow: MACs (and EtherType), IP addresses and ports (where TCP and UDP both keep
/// them).
fn same_flow(a: &[u8], b: &[u8], at: &TcpLayout) -> bool {
    let addrs = addresses(at.version);
    let addrs = at.ip + addrs.start..at.ip + addrs.end;
    let ports = at.l4 + tcp::field::SRC_PORT.start..at.l4 + tcp::field::DST_PORT.end;
    a[..ETHERNET_HEADER_LEN] == b[..ETHERNET_HEADER_LEN]
        && a[addrs.clone()] == b[addrs]
        && a[ports.clone()] == b[ports]
}

/// Whether the headers of `b` equal those of `a` in every field that must not change within
/// a superframe: all but the IP length, IPv4 id and checksum, TCP sequence number, PSH and
/// checksum. Fixed offsets, so that each compare is a few loads, not a `memcmp` call.
fn same_headers(a: &[u8], b: &[u8], at: &TcpLayout) -> bool {
    same_ip_headers(a, b, at) && same_tcp_headers(a, b, at)
}

/// Whether the IP headers of `a` and `b` are equal but for the length, IPv4 id and checksum.
fn same_ip_headers(a: &[u8], b: &[u8], at: &TcpLayout) -> bool {
    let (ip_a, ip_b) = (&a[at.ip..at.l4], &b[at.ip..at.l4]);
    match at.version {
        IpVersion::V4 => {
            use ipv4::field::{CHECKSUM, FLAGS_FRAG, LENGTH};
            // Skipped: LENGTH and IDENT (adjacent), CHECKSUM.
            ip_a[..LENGTH.start] == ip_b[..LENGTH.start]
                && ip_a[FLAGS_FRAG.start..CHECKSUM.start] == ip_b[FLAGS_FRAG.start..CHECKSUM.start]
                && ip_a[CHECKSUM.end..] == ip_b[CHECKSUM.end..]
        }
        IpVersion::V6 => {
            use ipv6::field::PAYLOAD_LEN;
            ip_a[..PAYLOAD_LEN.start] == ip_b[..PAYLOAD_LEN.start]
                && ip_a[PAYLOAD_LEN.end..] == ip_b[PAYLOAD_LEN.end..]
        }
    }
}

/// The TCP part of [`same_headers`]: all but the sequence number, PSH and checksum.
fn same_tcp_headers(a: &[u8], b: &[u8], at: &TcpLayout) -> bool {
    let (tcp_a, tcp_b) = (&a[at.l4..at.hdr_len], &b[at.l4..at.hdr_len]);
    let flags = |t: &[u8]| {
        let mut f = TcpPacket::new_unchecked(t).flags();
        f.remove(TcpFlags::PSH);
        f
    };
    use tcp::field::{ACK_NUM, FLAGS, URGENT, WINDOW};
    // Skipped: the ports (same flow, compared already), SEQ_NUM, CHECKSUM; FLAGS but PSH.
    tcp_a[ACK_NUM.start..FLAGS] == tcp_b[ACK_NUM.start..FLAGS]
        && flags(tcp_a) == flags(tcp_b)
        && tcp_a[WINDOW] == tcp_b[WINDOW]
        && tcp_a[URGENT.start..] == tcp_b[URGENT.start..]
}

/// Merges a batch of decapsulated frames of one network into as few TAP writes as the
/// kernel's GRO would. Feed it with [`Coalescer::push`], then drain [`Coalescer::finish`];
/// the buffers stay for the next batch.
#[derive(Default)]
pub struct Coalescer {
    items: Vec<Item>,
    active: usize,
    /// Merge UDP datagrams too ([`Coalescer::merging_udp`]).
    udp: bool,
}

/// One write for the TAP: the vnet header and frame, and what it stands for on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Coalesced<'a> {
    /// [`VNET_HDR_LEN`] header bytes, then the frame.
    pub bytes: &'a [u8],
    /// Wire frames it carries, and their bytes.
    pub frames: u32,
    pub wire_bytes: usize,
    /// What the kernel is asked to cut it into: [`GsoType::None`] for a frame as it came.
    pub gso: GsoType,
}

impl Coalescer {
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    /// With `yes`, UDP datagrams of a flow are merged as well: only for a TAP whose kernel
    /// takes UDP superframes (`VIRTIO_NET_HDR_GSO_UDP_L4`, Linux 6.2+). Takes effect with the
    /// next frame pushed.
    pub fn merge_udp(&mut self, yes: bool) {
        self.udp = yes;
    }

    pub fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// Adds one frame (parsed once, here), merging it into an earlier one of its flow when it
    /// continues it.
    pub fn push(&mut self, frame: &[u8]) {
        let parsed = FrameHeaders::parse(frame);
        if let Some(seg) = mergeable_tcp(&parsed) {
            if self.try_merge(frame, &seg) {
                return;
            }
            let item = self.new_item(frame);
            item.tcp = Some(TcpRun {
                layout: seg.layout,
                pseudo_base: seg.pseudo_base,
                gso_size: seg.payload_len,
                next_seq: seg.seq.wrapping_add(seg.payload_len as u32),
                closed: seg.psh,
            });
        } else if let Some(datagram) = self.udp.then(|| mergeable_udp(&parsed)).flatten() {
            if self.try_merge_udp(frame, &datagram) {
                return;
            }
            let item = self.new_item(frame);
            item.udp = Some(UdpRun {
                layout: datagram.layout,
                pseudo_base: datagram.pseudo_base,
                gso_size: datagram.payload_len,
                next_id: datagram.ident.map(|id| id.wrapping_add(1)),
                closed: false,
            });
        } else {
            // A segment or datagram we may not merge (FIN, a bad checksum, a pure ACK, a
            // fragment...) ends the run of its flow: what follows must not overtake it.
            if let (Some(ip), Some(l4)) = (parsed.ip(), parsed.l4()) {
                if matches!(l4.protocol, IpProtocol::TCP | IpProtocol::UDP) {
                    self.close_flow(frame, l4.protocol, ip.version, ip.offset, l4.offset);
                }
            }
            self.new_item(frame);
        }
    }

    fn close_flow(
        &mut self,
        frame: &[u8],
        protocol: IpProtocol,
        version: IpVersion,
        ip: usize,
        l4: usize,
    ) {
        let first = self.active.saturating_sub(FLOW_SCAN);
        for item in &mut self.items[first..self.active] {
            if item.is_flow(frame, protocol, version, ip, l4) {
                item.close();
            }
        }
    }

    /// The latest of the last [`FLOW_SCAN`] items that holds a run of `protocol` of `frame`'s
    /// flow (laid out as `at`): a frame merges into it or into nothing, so that a flow keeps
    /// its order.
    fn latest_of_flow(
        &mut self,
        frame: &[u8],
        protocol: IpProtocol,
        at: &TcpLayout,
    ) -> Option<&mut Item> {
        let first = self.active.saturating_sub(FLOW_SCAN);
        self.items[first..self.active]
            .iter_mut()
            .rev()
            .find(|item| item.is_flow(frame, protocol, at.version, at.ip, at.l4))
    }

    fn try_merge_udp(&mut self, frame: &[u8], datagram: &UdpDatagram) -> bool {
        let payload = datagram.payload_len;
        let at = &datagram.layout;
        let Some(item) = self.latest_of_flow(frame, IpProtocol::UDP, at) else {
            return false;
        };
        let head = &item.buf[VNET_HDR_LEN..];
        let fits = head.len() - at.ip + payload <= MAX_IP_PACKET;
        let frames = item.frames;
        let Some(run) = item.udp.as_mut() else {
            return false;
        };
        if run.closed
            || payload > run.gso_size
            || datagram.ident != run.next_id
            || frames >= UDP_MAX_SEGMENTS
            || !fits
            || !same_ip_headers(head, frame, at)
        {
            return false;
        }
        run.next_id = run.next_id.map(|id| id.wrapping_add(1));
        run.closed = payload < run.gso_size;
        item.buf.extend_from_slice(&frame[at.hdr_len..]);
        item.frames += 1;
        item.wire_bytes += frame.len();
        true
    }

    fn try_merge(&mut self, frame: &[u8], seg: &TcpSegment) -> bool {
        let payload = seg.payload_len;
        let at = &seg.layout;
        let Some(item) = self.latest_of_flow(frame, IpProtocol::TCP, at) else {
            return false;
        };
        let head = &item.buf[VNET_HDR_LEN..];
        let fits = head.len() - at.ip + payload <= MAX_IP_PACKET;
        let Some(run) = item.tcp.as_mut() else {
            return false;
        };
        if run.closed
            || run.layout.hdr_len != at.hdr_len
            || seg.seq != run.next_seq
            || payload > run.gso_size
            || !fits
            || !same_headers(head, frame, at)
        {
            return false;
        }
        run.next_seq = seg.seq.wrapping_add(payload as u32);
        run.closed = seg.psh || payload < run.gso_size;
        item.buf.extend_from_slice(&frame[at.hdr_len..]);
        if seg.psh {
            let mut t = TcpPacket::new_unchecked(&mut item.buf[VNET_HDR_LEN + at.l4..]);
            let mut flags = t.flags();
            flags.insert(TcpFlags::PSH);
            t.set_flags(flags);
        }
        item.frames += 1;
        item.wire_bytes += frame.len();
        true
    }

    fn new_item(&mut self, frame: &[u8]) -> &mut Item {
        if self.active == self.items.len() {
            self.items.push(Item {
                buf: Vec::new(),
                frames: 0,
                wire_bytes: 0,
                tcp: None,
                udp: None,
            });
        }
        let item = &mut self.items[self.active];
        self.active += 1;
        item.buf.clear();
        item.buf.extend_from_slice(&[0u8; VNET_HDR_LEN]);
        item.buf.extend_from_slice(frame);
        item.frames = 1;
        item.wire_bytes = frame.len();
        item.tcp = None;
        item.udp = None;
        item
    }

    /// Completes the merged superframes (lengths, IPv4 header checksum, TCP pseudo-header
    /// sum, vnet header) and yields every write in order; the coalescer is empty afterwards.
    pub fn finish(&mut self) -> impl Iterator<Item = Coalesced<'_>> + '_ {
        let active = std::mem::take(&mut self.active);
        self.items[..active].iter_mut().map(|item| {
            let mut gso = GsoType::None;
            if item.frames > 1 {
                if let Some(run) = item.tcp {
                    gso = finish_superframe(&mut item.buf, &run);
                } else if let Some(run) = item.udp {
                    gso = finish_udp_superframe(&mut item.buf, &run);
                }
            }
            Coalesced {
                bytes: &item.buf,
                frames: item.frames,
                wire_bytes: item.wire_bytes,
                gso,
            }
        })
    }
}

/// Turns merged datagrams (`buf` = zero vnet header + first datagram's headers + all
/// payloads) into a UDP superframe: `NEEDS_CSUM` with the pseudo-header sum in the UDP
/// checksum field, `gso_size` the first datagram's payload. The kernel cuts it into datagrams
/// of that payload, each with its own length, IPv4 id (counting on from the first) and
/// checksums: the datagrams that came in.
fn finish_udp_superframe(buf: &mut [u8], run: &UdpRun) -> GsoType {
    let at = &run.layout;
    let frame = &mut buf[VNET_HDR_LEN..];
    let l4_len = frame.len() - at.l4;
    set_ip_length(frame, at);
    let mut datagram = UdpPacket::new_unchecked(&mut frame[at.l4..]);
    datagram.set_length(l4_len as u16);
    datagram.set_checksum(checksum::fold(run.pseudo_base + l4_len as u64));
    let hdr = VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        gso_type: GsoType::UdpL4,
        ecn: false,
        hdr_len: at.hdr_len as u16,
        gso_size: run.gso_size as u16,
        csum_start: at.l4 as u16,
        csum_offset: udp::field::CHECKSUM.start as u16,
    };
    hdr.emit(buf);
    hdr.gso_type
}

/// Sets the IP header's length (and the IPv4 header checksum) for the frame as it now is.
fn set_ip_length(frame: &mut [u8], at: &TcpLayout) {
    let l4_len = frame.len() - at.l4;
    match at.version {
        IpVersion::V6 => {
            Ipv6Packet::new_unchecked(&mut frame[at.ip..]).set_payload_len(l4_len as u16);
        }
        IpVersion::V4 => {
            let ip_len = frame.len() - at.ip;
            let mut p = Ipv4Packet::new_unchecked(&mut frame[at.ip..at.l4]);
            p.set_total_len(ip_len as u16);
            p.fill_checksum();
        }
    }
}

/// Turns merged segments (`buf` = zero vnet header + first segment's headers + all payloads)
/// into a superframe the kernel accepts from a TAP: `NEEDS_CSUM` with the pseudo-header sum in
/// the TCP checksum field, `gso_size` the first segment's payload.
fn finish_superframe(buf: &mut [u8], run: &TcpRun) -> GsoType {
    let at = &run.layout;
    let frame = &mut buf[VNET_HDR_LEN..];
    let l4_len = frame.len() - at.l4;
    set_ip_length(frame, at);
    let pseudo = checksum::fold(run.pseudo_base + l4_len as u64);
    TcpPacket::new_unchecked(&mut frame[at.l4..]).set_checksum(pseudo);
    let hdr = VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        gso_type: match at.version {
            IpVersion::V4 => GsoType::TcpV4,
            IpVersion::V6 => GsoType::TcpV6,
        },
        ecn: false,
        hdr_len: at.hdr_len as u16,
        gso_size: run.gso_size as u16,
        csum_start: at.l4 as u16,
        csum_offset: tcp::field::CHECKSUM.start as u16,
    };
    hdr.emit(buf);
    hdr.gso_type
}
