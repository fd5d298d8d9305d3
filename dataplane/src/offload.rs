//! TAP offloads, sans-IO: the `virtio_net_hdr` a TAP opened with `IFF_VNET_HDR` puts in front
//! of every frame, the split of a TCP superframe read from the TAP into wire-sized frames
//! ([`segment`]), and the reverse on receive: merging a batch of decapsulated TCP segments into
//! superframes to write into the TAP ([`Coalescer`]).
//!
//! Rules a caller relies on:
//! - Everything that leaves [`segment`] is a complete frame as a kernel vxlan peer expects it:
//!   IPv4 header checksum and TCP/UDP checksums are filled in (DESIGN.md §2). The kernel's
//!   `hdr_len`, `csum_start` and `csum_offset` are never trusted for a GSO frame; header lengths
//!   are read from the packet itself.
//! - Only plain Ethernet (no 802.1Q tag) carrying IPv4 or IPv6 (no extension headers) with TCP
//!   is split; any other GSO request is refused with [`OffloadError::Unsupported`] (the TAP is
//!   opened with TSO4/TSO6 only, so the kernel does not send others).
//! - The [`Coalescer`] merges only what the kernel's own GRO would: consecutive in-order
//!   segments of one flow with identical headers, each with a verified checksum. Whatever it
//!   does not merge goes out byte for byte as it came, behind a zero header.
//! - Buffers are owned by the caller ([`Segments`], [`Coalescer`]) and reused: no allocation
//!   per packet once they have grown to the largest superframe.
//! - Multi-byte fields of the header are little-endian: the legacy header is in the host's
//!   byte order, and vxnet runs on little-endian hosts (x86, arm).

use std::ops::Range;

/// Length of the legacy `virtio_net_hdr` (without `num_buffers`), the TAP default.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum has been verified.
pub const FLAG_DATA_VALID: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_NEEDS_CSUM | FLAG_DATA_VALID;

const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP: u8 = 3;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPV6_HEADER_LEN: usize = 40;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_MIN_HEADER: usize = 20;
const TCP_CSUM_OFFSET: usize = 16;
const UDP_CSUM_OFFSET: usize = 6;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_URG: u8 = 0x20;
const TCP_CWR: u8 = 0x80;

/// The largest IP packet a superframe may carry (the 16-bit length fields).
const MAX_IP_PACKET: usize = 65535;
/// How far back the coalescer looks for the flow of a segment: flows interleave in a batch,
/// but only a few at a time.
const FLOW_SCAN: usize = 8;

/// Why a TAP read or a header could not be used. Each maps onto one drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("shorter than the headers it must carry")]
    Truncated,
    #[error("virtio_net_hdr with unknown bits or fields outside the frame")]
    BadVnetHeader,
    #[error("GSO request for something other than Ethernet/IP/TCP")]
    Unsupported,
}

/// What kind of segmentation a superframe asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GsoType {
    #[default]
    None,
    TcpV4,
    TcpV6,
    /// UFO (IP fragmentation of a large datagram): never split here.
    Udp,
    /// UDP segmentation (USO): never split here.
    UdpL4,
}

/// The legacy `virtio_net_hdr`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    /// `FLAG_*` bits.
    pub flags: u8,
    pub gso_type: GsoType,
    /// The TCP stream uses ECN (`VIRTIO_NET_HDR_GSO_ECN`): CWR goes on the first segment only.
    pub ecn: bool,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Reads the header at the start of `buf`, refusing unknown flags and GSO types and a GSO
    /// request without a segment size.
    pub fn parse(buf: &[u8]) -> Result<VirtioNetHdr, OffloadError> {
        let b: &[u8; VNET_HDR_LEN] = buf
            .get(..VNET_HDR_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(OffloadError::Truncated)?;
        let flags = b[0];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(OffloadError::BadVnetHeader);
        }
        let gso_type = match b[1] & !GSO_ECN {
            GSO_NONE => GsoType::None,
            GSO_TCPV4 => GsoType::TcpV4,
            GSO_TCPV6 => GsoType::TcpV6,
            GSO_UDP => GsoType::Udp,
            GSO_UDP_L4 => GsoType::UdpL4,
            _ => return Err(OffloadError::BadVnetHeader),
        };
        let ecn = b[1] & GSO_ECN != 0;
        let field = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let hdr = VirtioNetHdr {
            flags,
            gso_type,
            ecn,
            hdr_len: field(2),
            gso_size: field(4),
            csum_start: field(6),
            csum_offset: field(8),
        };
        if (gso_type != GsoType::None && hdr.gso_size == 0) || (ecn && gso_type == GsoType::None) {
            return Err(OffloadError::BadVnetHeader);
        }
        Ok(hdr)
    }

    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let gso = match self.gso_type {
            GsoType::None => GSO_NONE,
            GsoType::TcpV4 => GSO_TCPV4,
            GsoType::TcpV6 => GSO_TCPV6,
            GsoType::Udp => GSO_UDP,
            GsoType::UdpL4 => GSO_UDP_L4,
        } | if self.ecn { GSO_ECN } else { 0 };
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = gso;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// Writes the header into the first [`VNET_HDR_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter; callers reserve the room themselves.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[..VNET_HDR_LEN].copy_from_slice(&self.to_bytes());
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & FLAG_NEEDS_CSUM != 0
    }
}

// ---- Internet checksum -------------------------------------------------------------------

/// Adds `data` as big-endian 16-bit words to `acc`, unfolded. A piece must start at an even
/// offset of the checksummed whole for the pieces' sums to add up.
pub fn sum_be(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (end-around carry).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The unfolded sum of the TCP/UDP pseudo-header of the IP header at the start of `ip`
/// (version from its first nibble), for an L4 segment of `l4_len` bytes of protocol `proto`.
fn pseudo_sum(ip: &[u8], proto: u8, l4_len: usize) -> u64 {
    let addrs = if ip[0] >> 4 == 4 {
        &ip[12..20]
    } else {
        &ip[8..40]
    };
    sum_be(addrs, u64::from(proto) + l4_len as u64)
}

fn put_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Recomputes the header checksum of the IPv4 header `ip` (exactly the header, options
/// included).
fn fix_ipv4_checksum(ip: &mut [u8]) {
    put_u16(ip, 10, 0);
    let c = !fold(sum_be(ip, 0));
    put_u16(ip, 10, c);
}

// ---- Parsing the headers of a frame ------------------------------------------------------

/// Where the headers of an Ethernet/IP frame are. Lengths come from the packet itself.
#[derive(Debug, Clone, Copy)]
struct IpLayout {
    v6: bool,
    /// Offset of the L4 header (= Ethernet + IP header lengths).
    l4: usize,
    proto: u8,
    /// End of the IP packet as its header declares it (Ethernet padding excluded).
    ip_end: usize,
}

/// Parses Ethernet + IPv4/IPv6 without extension headers. `None` for anything else or for a
/// frame shorter than its headers.
fn ip_layout(frame: &[u8]) -> Option<IpLayout> {
    if frame.len() < ETH_LEN {
        return None;
    }
    match get_u16(frame, 12) {
        ETHERTYPE_IPV4 => {
            let ip = frame.get(ETH_LEN..ETH_LEN + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 || frame.len() < ETH_LEN + ihl {
                return None;
            }
            let total = usize::from(get_u16(ip, 2));
            Some(IpLayout {
                v6: false,
                l4: ETH_LEN + ihl,
                proto: ip[9],
                ip_end: ETH_LEN + total,
            })
        }
        ETHERTYPE_IPV6 => {
            let ip = frame.get(ETH_LEN..ETH_LEN + IPV6_HEADER_LEN)?;
            if ip[0] >> 4 != 6 {
                return None;
            }
            let payload = usize::from(get_u16(ip, 4));
            Some(IpLayout {
                v6: true,
                l4: ETH_LEN + IPV6_HEADER_LEN,
                proto: ip[6],
                ip_end: ETH_LEN + IPV6_HEADER_LEN + payload,
            })
        }
        _ => None,
    }
}

// ---- Splitting (TAP → wire) ---------------------------------------------------------------

/// The frames [`segment`] produced, back to back in one reusable buffer, each behind a copy
/// of the headroom given at creation (the VXLAN header, for the engine): frames `i..j` with
/// their headrooms are then one contiguous run of datagrams ([`Segments::run`]), as UDP
/// segmentation offload wants them.
#[derive(Debug, Default)]
pub struct Segments {
    buf: Vec<u8>,
    starts: Vec<usize>,
    ends: Vec<usize>,
    headroom: Vec<u8>,
}

impl Segments {
    pub fn new() -> Segments {
        Segments::default()
    }

    pub fn with_headroom(headroom: &[u8]) -> Segments {
        Segments {
            headroom: headroom.to_vec(),
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

    /// Frames `range` with their headrooms, back to back. Panics if out of bounds.
    pub fn run(&self, range: Range<usize>) -> &[u8] {
        if range.is_empty() {
            return &[];
        }
        &self.buf[self.starts[range.start] - self.headroom.len()..self.ends[range.end - 1]]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Keeps the first `len` frames.
    pub fn truncate(&mut self, len: usize) {
        self.starts.truncate(len);
        self.ends.truncate(len);
        self.buf.truncate(self.ends.last().copied().unwrap_or(0));
    }

    fn push(&mut self, bytes: &[u8]) -> usize {
        self.buf.extend_from_slice(&self.headroom);
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.starts.push(start);
        self.ends.push(self.buf.len());
        start
    }

    fn extend_last(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if let Some(end) = self.ends.last_mut() {
            *end = self.buf.len();
        }
    }
}

/// Turns one TAP read — `hdr` and the Ethernet `frame` behind it — into complete frames
/// appended to `out`: a GSO superframe into MSS-sized segments, a frame whose checksum the
/// kernel left to us into the same frame with it filled in, anything else into itself. The
/// count of frames appended is returned; on error, nothing is appended.
pub fn segment(
    hdr: &VirtioNetHdr,
    frame: &[u8],
    out: &mut Segments,
) -> Result<usize, OffloadError> {
    match hdr.gso_type {
        GsoType::None => {
            let start = out.push(frame);
            if hdr.needs_csum() {
                let end = out.buf.len();
                if let Err(e) = complete_checksum(hdr, &mut out.buf[start..end]) {
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
/// 0 means "none").
fn complete_checksum(hdr: &VirtioNetHdr, frame: &mut [u8]) -> Result<(), OffloadError> {
    let start = usize::from(hdr.csum_start);
    let at = start + usize::from(hdr.csum_offset);
    if start > frame.len() || at + 2 > frame.len() || hdr.csum_offset & 1 != 0 {
        return Err(OffloadError::BadVnetHeader);
    }
    // Ethernet padding is not part of the IP packet, so not of the sum.
    let layout = ip_layout(frame);
    let end = match layout {
        Some(l) if l.ip_end <= frame.len() && l.ip_end >= at + 2 => l.ip_end,
        _ => frame.len(),
    };
    let mut c = !fold(sum_be(&frame[start..end], 0));
    let udp = layout.is_some_and(|l| {
        l.proto == PROTO_UDP && l.l4 == start && hdr.csum_offset as usize == UDP_CSUM_OFFSET
    });
    if udp && c == 0 {
        c = 0xffff;
    }
    put_u16(frame, at, c);
    Ok(())
}

fn split_tcp(hdr: &VirtioNetHdr, frame: &[u8], out: &mut Segments) -> Result<usize, OffloadError> {
    let want_v6 = hdr.gso_type == GsoType::TcpV6;
    let ethertype = frame.get(12..14).ok_or(OffloadError::Truncated)?;
    let expected = if want_v6 {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    if get_u16(ethertype, 0) != expected {
        return Err(OffloadError::Unsupported);
    }
    let layout = ip_layout(frame).ok_or(OffloadError::Truncated)?;
    if layout.v6 != want_v6 || layout.proto != PROTO_TCP {
        return Err(OffloadError::Unsupported);
    }
    let l4 = layout.l4;
    let doff_byte = *frame.get(l4 + 12).ok_or(OffloadError::Truncated)?;
    let tcp_len = usize::from(doff_byte >> 4) * 4;
    if tcp_len < TCP_MIN_HEADER {
        return Err(OffloadError::Truncated);
    }
    let hdr_len = l4 + tcp_len;
    if frame.len() < hdr_len {
        return Err(OffloadError::Truncated);
    }
    let mss = usize::from(hdr.gso_size);
    // Every segment's lengths must fit their 16-bit fields.
    if hdr_len - ETH_LEN + mss > MAX_IP_PACKET {
        return Err(OffloadError::BadVnetHeader);
    }
    let headers = &frame[..hdr_len];
    let payload = &frame[hdr_len..];
    let count = payload.len().div_ceil(mss).max(1);

    let ip_start = ETH_LEN;
    let seq0 = get_u32(headers, l4 + 4);
    let id0 = get_u16(headers, ip_start + 4);
    let flags0 = headers[l4 + 13];
    // The pseudo-header is the same for every segment but for the length.
    let pseudo_base = pseudo_sum(&headers[ip_start..], PROTO_TCP, 0);

    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let start = out.push(headers);
        out.extend_last(chunk);
        let seg = &mut out.buf[start..];
        let l4_len = tcp_len + chunk.len();
        if layout.v6 {
            put_u16(seg, ip_start + 4, l4_len as u16);
        } else {
            put_u16(seg, ip_start + 2, (l4 - ip_start + l4_len) as u16);
            put_u16(seg, ip_start + 4, id0.wrapping_add(i as u16));
            fix_ipv4_checksum(&mut seg[ip_start..l4]);
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if i + 1 < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            flags &= !TCP_CWR;
        }
        seg[l4 + 13] = flags;
        put_u16(seg, l4 + TCP_CSUM_OFFSET, 0);
        let sum = sum_be(&seg[l4..l4 + l4_len], pseudo_base + l4_len as u64);
        put_u16(seg, l4 + TCP_CSUM_OFFSET, !fold(sum));
    }
    Ok(count)
}

// ---- Coalescing (wire → TAP) --------------------------------------------------------------

/// One frame to write into the TAP: header and frame, back to back.
struct Item {
    buf: Vec<u8>,
    /// Wire frames merged into it, and their bytes (for the rx counters).
    frames: u32,
    wire_bytes: usize,
    tcp: Option<TcpRun>,
}

/// The state of a run of merged TCP segments.
#[derive(Debug, Clone, Copy)]
struct TcpRun {
    v6: bool,
    /// Offset of the TCP header in the frame, and of the payload.
    l4: usize,
    hdr_len: usize,
    gso_size: usize,
    next_seq: u32,
    /// The last segment was shorter than `gso_size` or had PSH: nothing may follow it.
    closed: bool,
}

/// A TCP segment that may be merged: checksums verified, nothing but ACK (and PSH) set.
#[derive(Debug, Clone, Copy)]
struct TcpSegment {
    v6: bool,
    l4: usize,
    hdr_len: usize,
    seq: u32,
    psh: bool,
}

impl TcpSegment {
    fn payload_len(&self, frame: &[u8]) -> usize {
        frame.len() - self.hdr_len
    }
}

/// Whether `frame` is a TCP segment the coalescer may merge, with its layout.
fn mergeable_tcp(frame: &[u8]) -> Option<TcpSegment> {
    let layout = ip_layout(frame)?;
    // Ethernet padding or a truncated packet: pass it on untouched.
    if layout.proto != PROTO_TCP || layout.ip_end != frame.len() {
        return None;
    }
    let l4 = layout.l4;
    let ip = &frame[ETH_LEN..l4];
    if !layout.v6 {
        // Fragments never merge; MF or an offset means one.
        if get_u16(ip, 6) & 0x3fff != 0 || fold(sum_be(ip, 0)) != 0xffff {
            return None;
        }
    }
    let tcp = frame.get(l4..l4 + TCP_MIN_HEADER)?;
    let tcp_len = usize::from(tcp[12] >> 4) * 4;
    let hdr_len = l4 + tcp_len;
    if tcp_len < TCP_MIN_HEADER || hdr_len >= frame.len() {
        return None;
    }
    let flags = tcp[13];
    if flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG | TCP_CWR) != 0 || flags & TCP_ACK == 0 {
        return None;
    }
    let l4_len = frame.len() - l4;
    let sum = sum_be(
        &frame[l4..],
        pseudo_sum(&frame[ETH_LEN..], PROTO_TCP, l4_len),
    );
    if fold(sum) != 0xffff {
        return None;
    }
    Some(TcpSegment {
        v6: layout.v6,
        l4,
        hdr_len,
        seq: get_u32(tcp, 4),
        psh: flags & TCP_PSH != 0,
    })
}

/// Whether `a` and `b`, both TCP frames with the IP version and L4 offset given, belong to
/// the same flow: MACs, IP addresses and ports.
fn same_flow(a: &[u8], b: &[u8], v6: bool, l4: usize) -> bool {
    let addrs = if v6 {
        ETH_LEN + 8..ETH_LEN + 40
    } else {
        ETH_LEN + 12..ETH_LEN + 20
    };
    a[..ETH_LEN] == b[..ETH_LEN] && a[addrs.clone()] == b[addrs] && a[l4..l4 + 4] == b[l4..l4 + 4]
}

/// Whether the headers of `b` equal those of `a` in every field that must not change within
/// a superframe: all but the IP length, IPv4 id and checksum, TCP sequence number, PSH and
/// checksum.
fn same_headers(a: &[u8], b: &[u8], seg: &TcpSegment) -> bool {
    let ip = ETH_LEN;
    let l4 = seg.l4;
    let ip_same = if seg.v6 {
        a[ip..ip + 4] == b[ip..ip + 4] && a[ip + 6..l4] == b[ip + 6..l4]
    } else {
        a[ip..ip + 2] == b[ip..ip + 2]
            && a[ip + 6..ip + 10] == b[ip + 6..ip + 10]
            && a[ip + 12..l4] == b[ip + 12..l4]
    };
    ip_same
        && a[l4 + 8..l4 + 13] == b[l4 + 8..l4 + 13]
        && (a[l4 + 13] & !TCP_PSH) == (b[l4 + 13] & !TCP_PSH)
        && a[l4 + 14..l4 + 16] == b[l4 + 14..l4 + 16]
        && a[l4 + 18..seg.hdr_len] == b[l4 + 18..seg.hdr_len]
}

/// Merges a batch of decapsulated frames of one network into as few TAP writes as the
/// kernel's GRO would. Feed it with [`Coalescer::push`], then drain [`Coalescer::finish`];
/// the buffers stay for the next batch.
#[derive(Default)]
pub struct Coalescer {
    items: Vec<Item>,
    active: usize,
}

/// One write for the TAP: the vnet header and frame, and what it stands for on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Coalesced<'a> {
    /// [`VNET_HDR_LEN`] header bytes, then the frame.
    pub bytes: &'a [u8],
    /// Wire frames it carries, and their bytes.
    pub frames: u32,
    pub wire_bytes: usize,
}

impl Coalescer {
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    pub fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// Adds one frame, merging it into an earlier one of its flow when it continues it.
    pub fn push(&mut self, frame: &[u8]) {
        if let Some(seg) = mergeable_tcp(frame) {
            if self.try_merge(frame, &seg) {
                return;
            }
            let item = self.new_item(frame);
            item.tcp = Some(TcpRun {
                v6: seg.v6,
                l4: seg.l4,
                hdr_len: seg.hdr_len,
                gso_size: seg.payload_len(frame),
                next_seq: seg.seq.wrapping_add(seg.payload_len(frame) as u32),
                closed: seg.psh,
            });
        } else {
            // A TCP segment we may not merge (FIN, a bad checksum, a pure ACK...) ends the run
            // of its flow: what follows must not overtake it.
            if let Some(l) = ip_layout(frame) {
                if l.proto == PROTO_TCP && frame.len() >= l.l4 + 4 {
                    self.close_flow(frame, l.v6, l.l4);
                }
            }
            self.new_item(frame);
        }
    }

    fn close_flow(&mut self, frame: &[u8], v6: bool, l4: usize) {
        let first = self.active.saturating_sub(FLOW_SCAN);
        for item in &mut self.items[first..self.active] {
            if let Some(run) = item.tcp.as_mut() {
                if run.v6 == v6
                    && run.l4 == l4
                    && same_flow(&item.buf[VNET_HDR_LEN..], frame, v6, l4)
                {
                    run.closed = true;
                }
            }
        }
    }

    fn try_merge(&mut self, frame: &[u8], seg: &TcpSegment) -> bool {
        let payload = seg.payload_len(frame);
        let first = self.active.saturating_sub(FLOW_SCAN);
        for item in self.items[first..self.active].iter_mut().rev() {
            let Some(run) = item.tcp.as_mut() else {
                continue;
            };
            let head = &item.buf[VNET_HDR_LEN..];
            if run.v6 != seg.v6 || run.l4 != seg.l4 || !same_flow(head, frame, seg.v6, seg.l4) {
                continue;
            }
            // The latest item of this flow: merge into it or into nothing, so that the
            // flow's segments keep their order.
            let fits = head.len() - ETH_LEN + payload <= MAX_IP_PACKET;
            if run.closed
                || run.hdr_len != seg.hdr_len
                || seg.seq != run.next_seq
                || payload > run.gso_size
                || !fits
                || !same_headers(head, frame, seg)
            {
                return false;
            }
            item.buf.extend_from_slice(&frame[seg.hdr_len..]);
            if seg.psh {
                item.buf[VNET_HDR_LEN + run.l4 + 13] |= TCP_PSH;
            }
            run.next_seq = seg.seq.wrapping_add(payload as u32);
            run.closed = seg.psh || payload < run.gso_size;
            item.frames += 1;
            item.wire_bytes += frame.len();
            return true;
        }
        false
    }

    fn new_item(&mut self, frame: &[u8]) -> &mut Item {
        if self.active == self.items.len() {
            self.items.push(Item {
                buf: Vec::new(),
                frames: 0,
                wire_bytes: 0,
                tcp: None,
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
        item
    }

    /// Completes the merged superframes (lengths, IPv4 header checksum, TCP pseudo-header
    /// sum, vnet header) and yields every write in order; the coalescer is empty afterwards.
    pub fn finish(&mut self) -> impl Iterator<Item = Coalesced<'_>> + '_ {
        let active = std::mem::take(&mut self.active);
        self.items[..active].iter_mut().map(|item| {
            if let (Some(run), true) = (item.tcp, item.frames > 1) {
                finish_superframe(&mut item.buf, &run);
            }
            Coalesced {
                bytes: &item.buf,
                frames: item.frames,
                wire_bytes: item.wire_bytes,
            }
        })
    }
}

/// Turns merged segments (`buf` = zero vnet header + first segment's headers + all payloads)
/// into a superframe the kernel accepts from a TAP: `NEEDS_CSUM` with the pseudo-header sum in
/// the TCP checksum field, `gso_size` the first segment's payload.
fn finish_superframe(buf: &mut [u8], run: &TcpRun) {
    let frame = &mut buf[VNET_HDR_LEN..];
    let ip = ETH_LEN;
    let l4_len = frame.len() - run.l4;
    if run.v6 {
        put_u16(frame, ip + 4, l4_len as u16);
    } else {
        put_u16(frame, ip + 2, (frame.len() - ETH_LEN) as u16);
        fix_ipv4_checksum(&mut frame[ip..run.l4]);
    }
    let pseudo = fold(pseudo_sum(&frame[ip..], PROTO_TCP, l4_len));
    put_u16(frame, run.l4 + TCP_CSUM_OFFSET, pseudo);
    let hdr = VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        gso_type: if run.v6 {
            GsoType::TcpV6
        } else {
            GsoType::TcpV4
        },
        ecn: false,
        hdr_len: run.hdr_len as u16,
        gso_size: run.gso_size as u16,
        csum_start: run.l4 as u16,
        csum_offset: TCP_CSUM_OFFSET as u16,
    };
    hdr.emit(buf);
}

#[cfg(test)]
mod tests;
