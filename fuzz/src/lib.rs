//! What the fuzz targets share: a reader that turns fuzz input into choices, an Internet
//! checksum (RFC 1071) of their own, and a builder of Ethernet/IP/TCP frames.
//!
//! The checksum here shares no code with `vxnet_dataplane::wire::checksum` on purpose: a
//! target that verified the dataplane's output with the dataplane's own sum would pass
//! whatever that sum got wrong. It is the plain definition — big-endian 16-bit words, an odd
//! last byte padded with zero, carries folded back in — written for clarity, not speed.

/// Fuzz input read front to back as a sequence of choices. Running out is not an error: every
/// read past the end gives zeros, so any input, however short, is a complete (if dull) case.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// One of `options`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[usize::from(self.u8()) % options.len()]
    }

    /// Up to `max` bytes, the count read first (one byte when `max` < 256, two otherwise).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let want = if max < 256 {
            usize::from(self.u8())
        } else {
            usize::from(self.u16())
        };
        let n = want.min(max).min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// The RFC 1071 sum of `data`, not yet folded: big-endian words, an odd byte padded.
pub fn ones_sum(data: &[u8]) -> u64 {
    let mut total = 0u64;
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |&b| u64::from(b));
        total += hi | lo;
    }
    total
}

/// Folds the carries of `sum` back in until it fits 16 bits.
pub fn ones_fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Where the headers of an Ethernet/IPv4-or-IPv6/TCP frame are, found without the dataplane's
/// views. `None` for anything else, or for a frame whose length fields disagree with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLayout {
    pub v6: bool,
    /// Offsets of the TCP header and of the payload.
    pub l4: usize,
    pub payload: usize,
}

pub const ETH_LEN: usize = 14;

/// The layout of `frame`, which must end exactly where its IP length field says.
pub fn tcp_layout(frame: &[u8]) -> Option<TcpLayout> {
    let (v6, l4) = l4_offset(frame, 6)?;
    if frame.len() < l4 + 20 {
        return None;
    }
    let doff = usize::from(frame[l4 + 12] >> 4) * 4;
    if doff < 20 || l4 + doff > frame.len() {
        return None;
    }
    Some(TcpLayout {
        v6,
        l4,
        payload: l4 + doff,
    })
}

/// The layout of an Ethernet/IP/UDP `frame` (as [`tcp_layout`]; the payload follows the
/// 8-byte UDP header), which must end exactly where its IP length field says.
pub fn udp_layout(frame: &[u8]) -> Option<TcpLayout> {
    let (v6, l4) = l4_offset(frame, 17)?;
    (frame.len() >= l4 + 8).then_some(TcpLayout {
        v6,
        l4,
        payload: l4 + 8,
    })
}

/// Whether `frame` is IPv4 or IPv6 carrying `protocol`, ending where its IP length says;
/// where its L4 header starts.
fn l4_offset(frame: &[u8], protocol: u8) -> Option<(bool, usize)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH_LEN..)?;
    let (v6, ip_hdr, ip_total, proto) = match ethertype {
        0x0800 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (false, ihl, total, ip[9])
        }
        0x86dd => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let total = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            (true, 40, total, ip[6])
        }
        _ => return None,
    };
    (proto == protocol && ip_total == ip.len()).then_some((v6, ETH_LEN + ip_hdr))
}

/// The unfolded pseudo-header sum of a TCP segment of `l4_len` bytes in `frame`.
pub fn tcp_pseudo_header(frame: &[u8], layout: &TcpLayout, l4_len: usize) -> u64 {
    pseudo_header(frame, layout, 6, l4_len)
}

/// The unfolded pseudo-header sum of an L4 `protocol` segment of `l4_len` bytes in `frame`.
pub fn pseudo_header(frame: &[u8], layout: &TcpLayout, protocol: u8, l4_len: usize) -> u64 {
    let addrs = if layout.v6 {
        &frame[ETH_LEN + 8..ETH_LEN + 40]
    } else {
        &frame[ETH_LEN + 12..ETH_LEN + 20]
    };
    // The protocol and the length, as 16-bit words (IPv6's 32-bit length sums the same).
    ones_sum(addrs) + u64::from(protocol) + (l4_len as u64 >> 16) + (l4_len as u64 & 0xffff)
}

/// The UDP checksum `frame` should carry, over its UDP header (checksum field taken as zero)
/// and payload: a computed 0 is sent as 0xffff (RFC 768).
pub fn udp_checksum(frame: &[u8], layout: &TcpLayout) -> u16 {
    let l4 = layout.l4;
    let l4_len = frame.len() - l4;
    let sum = pseudo_header(frame, layout, 17, l4_len)
        + ones_sum(&frame[l4..l4 + 6])
        + ones_sum(&frame[l4 + 8..]);
    match !ones_fold(sum) {
        0 => 0xffff,
        c => c,
    }
}

/// Fills in the IPv4 header checksum of `frame` (nothing for IPv6).
pub fn fill_ipv4_checksum(frame: &mut [u8], layout: &TcpLayout) {
    if !layout.v6 {
        frame[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        let c = !ones_fold(ones_sum(&frame[ETH_LEN..layout.l4]));
        frame[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
    }
}

/// Whether the IPv4 header checksum of `frame` is right (true for IPv6, which has none).
pub fn ipv4_header_ok(frame: &[u8], layout: &TcpLayout) -> bool {
    layout.v6 || ones_fold(ones_sum(&frame[ETH_LEN..layout.l4])) == 0xffff
}

/// Whether the TCP checksum of `frame` is right.
pub fn tcp_checksum_ok(frame: &[u8], layout: &TcpLayout) -> bool {
    let segment = &frame[layout.l4..];
    let pseudo = tcp_pseudo_header(frame, layout, segment.len());
    ones_fold(pseudo + ones_sum(segment)) == 0xffff
}

/// Fills in the IPv4 header checksum (if IPv4) and the TCP checksum of `frame`.
pub fn fill_checksums(frame: &mut [u8], layout: &TcpLayout) {
    fill_ipv4_checksum(frame, layout);
    let l4 = layout.l4;
    frame[l4 + 16..l4 + 18].fill(0);
    let pseudo = tcp_pseudo_header(frame, layout, frame.len() - l4);
    let c = !ones_fold(pseudo + ones_sum(&frame[l4..]));
    frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// TCP flag bits (RFC 9293), spelled out here rather than taken from the code under test.
pub mod tcp_flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const CWR: u8 = 0x80;
}

/// The parts of an Ethernet/IP/TCP frame [`TcpFrame::build`] puts together.
#[derive(Debug, Clone)]
pub struct TcpFrame<'a> {
    pub v6: bool,
    /// Which of a few address/port pairs: frames of one flow share it.
    pub flow: u8,
    /// IPv4 options (a multiple of 4 bytes, at most 40) / TCP options (likewise).
    pub ip_options: &'a [u8],
    pub tcp_options: &'a [u8],
    pub ident: u16,
    pub seq: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

impl TcpFrame<'_> {
    /// The frame, with its lengths and both checksums right.
    pub fn build(&self) -> Vec<u8> {
        let ip_opts = &self.ip_options[..self.ip_options.len().min(40) / 4 * 4];
        let tcp_opts = &self.tcp_options[..self.tcp_options.len().min(40) / 4 * 4];
        let mut f = Vec::with_capacity(ETH_LEN + 60 + 60 + self.payload.len());
        f.extend_from_slice(&[0x02, 0x42, 10, 10, 0, 3, 0x02, 0x42, 10, 10, 0, 2]);
        let tcp_len = 20 + tcp_opts.len() + self.payload.len();
        let host = 2 + (self.flow & 1);
        if self.v6 {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host]);
            f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        } else {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let ihl = (20 + ip_opts.len()) / 4;
            let total = 20 + ip_opts.len() + tcp_len;
            f.push(0x40 | ihl as u8);
            f.push(0);
            f.extend_from_slice(&(total as u16).to_be_bytes());
            f.extend_from_slice(&self.ident.to_be_bytes());
            f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]); // DF, TTL 64, TCP, checksum
            f.extend_from_slice(&[10, 10, 0, host]);
            f.extend_from_slice(&[10, 10, 0, 9]);
            f.extend_from_slice(ip_opts);
        }
        let doff = (20 + tcp_opts.len()) / 4;
        f.extend_from_slice(&(40000 + u16::from(self.flow >> 1)).to_be_bytes());
        f.extend_from_slice(&5201u16.to_be_bytes());
        f.extend_from_slice(&self.seq.to_be_bytes());
        f.extend_from_slice(&0x1000_0000u32.to_be_bytes()); // ack
        f.push((doff as u8) << 4);
        f.push(self.flags);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, checksum, urgent
        f.extend_from_slice(tcp_opts);
        f.extend_from_slice(self.payload);
        if let Some(layout) = tcp_layout(&f) {
            fill_checksums(&mut f, &layout);
        }
        f
    }
}

/// The parts of an Ethernet/IP/UDP frame [`UdpFrame::build`] puts together.
#[derive(Debug, Clone)]
pub struct UdpFrame<'a> {
    pub v6: bool,
    /// Which of a few address/port pairs: datagrams of one flow share it.
    pub flow: u8,
    pub ident: u16,
    /// IPv4 flags and fragment offset (DF 0x4000, MF 0x2000).
    pub frag: u16,
    pub ttl: u8,
    /// Sent without a UDP checksum (0), as IPv4 allows.
    pub no_checksum: bool,
    pub payload: &'a [u8],
}

impl UdpFrame<'_> {
    /// The frame, with its lengths and checksums right (the UDP one absent if asked).
    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(ETH_LEN + 40 + 8 + self.payload.len());
        f.extend_from_slice(&[0x02, 0x42, 10, 10, 0, 3, 0x02, 0x42, 10, 10, 0, 2]);
        let udp_len = 8 + self.payload.len();
        let host = 2 + (self.flow & 1);
        if self.v6 {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp_len as u16).to_be_bytes());
            f.extend_from_slice(&[17, self.ttl]);
            f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host]);
            f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        } else {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            f.extend_from_slice(&self.ident.to_be_bytes());
            f.extend_from_slice(&self.frag.to_be_bytes());
            f.extend_from_slice(&[self.ttl, 17, 0, 0]);
            f.extend_from_slice(&[10, 10, 0, host]);
            f.extend_from_slice(&[10, 10, 0, 9]);
        }
        f.extend_from_slice(&(40000 + u16::from(self.flow >> 1)).to_be_bytes());
        f.extend_from_slice(&5201u16.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(self.payload);
        if let Some(layout) = udp_layout(&f) {
            fill_ipv4_checksum(&mut f, &layout);
            if !self.no_checksum {
                let c = udp_checksum(&f, &layout);
                f[layout.l4 + 6..layout.l4 + 8].copy_from_slice(&c.to_be_bytes());
            }
        }
        f
    }
}

/// `len` payload bytes that say where they are: a byte's value depends on `seed` and its
/// offset, so payloads that are merged or split in the wrong order do not compare equal.
pub fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}
