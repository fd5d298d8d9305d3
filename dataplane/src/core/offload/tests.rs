//! The offload core against constructed frames, with a checksum verifier of its own (a plain
//! word-by-word RFC 1071 sum that shares no code with the one under test).

use super::*;
use crate::wire::checksum::{fold, sum as sum_be};

// TCP flag bits as RFC 9293 numbers them, kept apart from the code under test.
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_URG: u8 = 0x20;
const TCP_CWR: u8 = 0x80;

const MAC_A: [u8; 6] = [0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02];
const MAC_B: [u8; 6] = [0x02, 0x42, 0x0a, 0x0a, 0x00, 0x03];
const V4_SRC: [u8; 4] = [10, 10, 0, 2];
const V4_DST: [u8; 4] = [10, 10, 0, 3];
const V6_SRC: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const V6_DST: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
/// NOP NOP timestamp(10): what Linux puts on every data segment.
const TS_OPTIONS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78];

// ---- independent checksum verifier ---------------------------------------------------------

fn naive_sum(bytes: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        let hi = u32::from(bytes[i]) << 8;
        let lo = bytes.get(i + 1).map_or(0, |&b| u32::from(b));
        sum += hi | lo;
        i += 2;
    }
    sum
}

fn naive_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// (IP header checksum ok, L4 checksum ok) of a complete Ethernet/IP/TCP-or-UDP frame.
fn verify(frame: &[u8]) -> (bool, bool) {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let ip = &frame[14..];
    let (ip_ok, l4, proto, pseudo) = if ethertype == 0x0800 {
        let ihl = usize::from(ip[0] & 15) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let l4 = &ip[ihl..total];
        let mut p = naive_sum(&ip[12..20]);
        p += u32::from(ip[9]) + l4.len() as u32;
        (naive_fold(naive_sum(&ip[..ihl])) == 0xffff, l4, ip[9], p)
    } else {
        let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        let l4 = &ip[40..40 + payload];
        let mut p = naive_sum(&ip[8..40]);
        p += u32::from(ip[6]) + l4.len() as u32;
        (true, l4, ip[6], p)
    };
    if proto == 17 && l4[6] == 0 && l4[7] == 0 {
        return (ip_ok, false);
    }
    (ip_ok, naive_fold(pseudo + naive_sum(l4)) == 0xffff)
}

// ---- frame builders --------------------------------------------------------------------

#[derive(Clone)]
struct Tcp {
    v6: bool,
    seq: u32,
    flags: u8,
    options: Vec<u8>,
    payload: Vec<u8>,
    id: u16,
    /// Checksum filled in (else: the pseudo-header sum, as a NEEDS_CSUM frame has it).
    complete: bool,
    src_port: u16,
}

impl Tcp {
    fn v4(payload_len: usize) -> Tcp {
        Tcp {
            v6: false,
            seq: 0x1000_0000,
            flags: TCP_ACK | TCP_PSH,
            options: TS_OPTIONS.to_vec(),
            payload: (0..payload_len).map(|i| (i * 7 + 3) as u8).collect(),
            id: 0x4242,
            complete: true,
            src_port: 40000,
        }
    }

    fn v6(payload_len: usize) -> Tcp {
        Tcp {
            v6: true,
            ..Tcp::v4(payload_len)
        }
    }

    fn l4(&self) -> usize {
        if self.v6 {
            54
        } else {
            34
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&MAC_A);
        let tcp_len = 20 + self.options.len();
        let l4_len = tcp_len + self.payload.len();
        if self.v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&V6_SRC);
            f.extend_from_slice(&V6_DST);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            f.extend_from_slice(&self.id.to_be_bytes());
            f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&V4_SRC);
            f.extend_from_slice(&V4_DST);
            let c = !naive_fold(naive_sum(&f[14..34]));
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&5201u16.to_be_bytes());
        f.extend_from_slice(&self.seq.to_be_bytes());
        f.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
        f.push(((tcp_len / 4) as u8) << 4);
        f.push(self.flags);
        f.extend_from_slice(&[0x01, 0xf5, 0, 0, 0, 0]);
        f.extend_from_slice(&self.options);
        f.extend_from_slice(&self.payload);
        let l4 = self.l4();
        let pseudo = if self.v6 {
            naive_sum(&f[22..54]) + 6 + l4_len as u32
        } else {
            naive_sum(&f[26..34]) + 6 + l4_len as u32
        };
        let c = if self.complete {
            !naive_fold(pseudo + naive_sum(&f[l4..]))
        } else {
            naive_fold(pseudo)
        };
        f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// The frame as a TAP with TSO hands it over, with its header.
    fn superframe(&self, mss: u16) -> (VirtioNetHdr, Vec<u8>) {
        let tcp = Tcp {
            complete: false,
            ..self.clone()
        };
        let hdr = VirtioNetHdr {
            flags: FLAG_NEEDS_CSUM,
            gso_type: if self.v6 {
                GsoType::TcpV6
            } else {
                GsoType::TcpV4
            },
            ecn: false,
            // Deliberately wrong: the splitter must not believe it.
            hdr_len: 14,
            gso_size: mss,
            csum_start: self.l4() as u16,
            csum_offset: 16,
        };
        (hdr, tcp.build())
    }
}

fn udp_v4(payload: &[u8], complete: bool) -> Vec<u8> {
    udp_v4_with(payload, complete, 1, 40000)
}

/// A UDP datagram with IPv4 id `id` from port `src_port` to 5201.
fn udp_v4_with(payload: &[u8], complete: bool, id: u16, src_port: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((28 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&V4_SRC);
    f.extend_from_slice(&V4_DST);
    let c = !naive_fold(naive_sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&src_port.to_be_bytes());
    f.extend_from_slice(&5201u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let pseudo = naive_sum(&f[26..34]) + 17 + (8 + payload.len()) as u32;
    let c = if complete {
        !naive_fold(pseudo + naive_sum(&f[34..]))
    } else {
        naive_fold(pseudo)
    };
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f
}

fn split(hdr: &VirtioNetHdr, frame: &[u8]) -> Result<Vec<Vec<u8>>, OffloadError> {
    let mut out = Segments::new();
    let n = segment(hdr, &FrameHeaders::parse(frame), &mut out)?;
    assert_eq!(n, out.len());
    Ok(out.iter().map(<[u8]>::to_vec).collect())
}

fn coalesce(frames: &[Vec<u8>]) -> Vec<(VirtioNetHdr, Vec<u8>, u32)> {
    coalesce_with(Coalescer::new(), frames)
}

fn coalesce_with(mut c: Coalescer, frames: &[Vec<u8>]) -> Vec<(VirtioNetHdr, Vec<u8>, u32)> {
    for f in frames {
        c.push(f);
    }
    let out = c
        .finish()
        .map(|w| {
            let hdr = VirtioNetHdr::parse(w.bytes).expect("own header parses");
            (hdr, w.bytes[VNET_HDR_LEN..].to_vec(), w.frames)
        })
        .collect();
    assert!(c.is_empty());
    out
}

fn seq_of(frame: &[u8], l4: usize) -> u32 {
    u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]])
}

mod coalesce;
mod coalesce_udp;
mod segment;
