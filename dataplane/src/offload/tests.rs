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
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((28 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&V4_SRC);
    f.extend_from_slice(&V4_DST);
    let c = !naive_fold(naive_sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
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
    let mut c = Coalescer::new();
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

#[test]
fn checksum_helpers_agree_with_the_naive_sum() {
    let data: Vec<u8> = (0..1001u32).map(|i| (i * 31 + 7) as u8).collect();
    for len in [0, 1, 2, 7, 8, 9, 15, 16, 17, 1000, 1001] {
        let d = &data[..len];
        assert_eq!(fold(sum_be(d, 0)), naive_fold(naive_sum(d)), "len {len}");
    }
    // RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2.
    assert_eq!(
        fold(sum_be(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
        0xddf2
    );
}

// ---- splitting ---------------------------------------------------------------------------

fn check_split(tcp: &Tcp, mss: u16) -> Vec<Vec<u8>> {
    let (hdr, sf) = tcp.superframe(mss);
    let segs = split(&hdr, &sf).expect("splits");
    let mss = usize::from(mss);
    let want = tcp.payload.len().div_ceil(mss).max(1);
    assert_eq!(segs.len(), want);
    let l4 = tcp.l4();
    let hdr_len = l4 + 20 + tcp.options.len();
    let mut payload = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        assert_eq!(verify(s), (true, true), "segment {i} checksums");
        let body = &s[hdr_len..];
        if !last {
            assert_eq!(body.len(), mss, "segment {i} is one MSS");
        }
        assert!(body.len() <= mss);
        assert_eq!(seq_of(s, l4), tcp.seq.wrapping_add((i * mss) as u32));
        let flags = s[l4 + 13];
        let mut want_flags = tcp.flags;
        if !last {
            want_flags &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            want_flags &= !TCP_CWR;
        }
        assert_eq!(flags, want_flags, "segment {i} flags");
        assert_eq!(
            &s[l4 + 20..hdr_len],
            &tcp.options[..],
            "options on every segment"
        );
        if tcp.v6 {
            assert_eq!(
                usize::from(u16::from_be_bytes([s[18], s[19]])),
                s.len() - 54
            );
        } else {
            assert_eq!(
                usize::from(u16::from_be_bytes([s[16], s[17]])),
                s.len() - 14
            );
            let id = u16::from_be_bytes([s[18], s[19]]);
            assert_eq!(id, tcp.id.wrapping_add(i as u16));
        }
        payload.extend_from_slice(body);
    }
    assert_eq!(payload, tcp.payload);
    segs
}

#[test]
fn splits_ipv4_tcp_with_a_short_last_segment() {
    let segs = check_split(&Tcp::v4(3 * 1398 + 500), 1398);
    assert_eq!(segs.len(), 4);
    assert_eq!(segs[3].len(), 66 + 500);
}

#[test]
fn splits_exact_multiples_without_an_empty_tail() {
    assert_eq!(check_split(&Tcp::v4(1398), 1398).len(), 1);
    assert_eq!(check_split(&Tcp::v4(4 * 1398), 1398).len(), 4);
    assert_eq!(check_split(&Tcp::v4(1), 1398).len(), 1);
}

#[test]
fn splits_ipv6_tcp() {
    let segs = check_split(&Tcp::v6(45 * 1378 + 17), 1378);
    assert_eq!(segs.len(), 46);
}

#[test]
fn splits_a_full_64k_superframe_and_wraps_ids_and_seq() {
    let mut tcp = Tcp::v4(65535 - 20 - 32);
    tcp.id = 0xfffe;
    tcp.seq = 0xffff_f000;
    check_split(&tcp, 1398);
}

#[test]
fn flags_fin_psh_last_cwr_first() {
    let mut tcp = Tcp::v4(3000);
    tcp.flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR;
    let segs = check_split(&tcp, 1000);
    assert_eq!(segs[0][34 + 13], TCP_ACK | TCP_CWR);
    assert_eq!(segs[1][34 + 13], TCP_ACK);
    assert_eq!(segs[2][34 + 13], TCP_ACK | TCP_PSH | TCP_FIN);
}

#[test]
fn splits_without_options_and_with_odd_mss() {
    let mut tcp = Tcp::v4(5000);
    tcp.options.clear();
    check_split(&tcp, 1001);
    let mut tcp = Tcp::v6(777);
    tcp.options.clear();
    check_split(&tcp, 333);
}

#[test]
fn ipv4_options_are_read_from_the_packet() {
    // IHL 6: a 4-byte option (NOP NOP NOP EOL) that a hdr_len-trusting splitter would miss.
    let tcp = Tcp::v4(2000);
    let (hdr, sf) = tcp.superframe(1000);
    let mut f = sf[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&sf[34..]);
    f[14] = 0x46;
    let total = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    let segs = split(&hdr, &f).expect("splits");
    assert_eq!(segs.len(), 2);
    for s in &segs {
        assert_eq!(verify(s), (true, true));
        assert_eq!(s[14], 0x46);
    }
    assert_eq!(segs[0].len(), 14 + 24 + 32 + 1000);
}

#[test]
fn split_refuses_what_it_cannot_split() {
    let (hdr, sf) = Tcp::v4(3000).superframe(1000);
    // Truncated inside the headers.
    for len in [10, 20, 40, 60] {
        assert_eq!(
            split(&hdr, &sf[..len]),
            Err(OffloadError::Truncated),
            "{len}"
        );
    }
    // TCPV6 asked for an IPv4 frame.
    let v6 = VirtioNetHdr {
        gso_type: GsoType::TcpV6,
        ..hdr
    };
    assert_eq!(split(&v6, &sf), Err(OffloadError::Unsupported));
    // An 802.1Q tag.
    let mut tagged = sf[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&sf[12..]);
    assert_eq!(split(&hdr, &tagged), Err(OffloadError::Unsupported));
    // Not TCP.
    let mut udp = sf.clone();
    udp[23] = 17;
    assert_eq!(split(&hdr, &udp), Err(OffloadError::Unsupported));
    // UDP segmentation is not ours to do.
    let uso = VirtioNetHdr {
        gso_type: GsoType::UdpL4,
        ..hdr
    };
    assert_eq!(split(&uso, &sf), Err(OffloadError::Unsupported));
    // A segment size whose segments would not fit a 16-bit length.
    let huge = VirtioNetHdr {
        gso_size: 65500,
        ..hdr
    };
    assert_eq!(split(&huge, &sf), Err(OffloadError::BadVnetHeader));
    // A bad data offset.
    let mut bad = sf.clone();
    bad[34 + 12] = 0x40;
    assert_eq!(split(&hdr, &bad), Err(OffloadError::Truncated));
}

#[test]
fn completes_needs_csum_for_tcp_and_udp() {
    let mut tcp = Tcp::v4(300);
    tcp.complete = false;
    let f = tcp.build();
    let hdr = VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..VirtioNetHdr::default()
    };
    let out = split(&hdr, &f).expect("completes");
    assert_eq!(out.len(), 1);
    assert_eq!(verify(&out[0]), (true, true));
    tcp.complete = true;
    assert_eq!(out[0], tcp.build());

    let mut tcp6 = Tcp::v6(99);
    tcp6.complete = false;
    let hdr6 = VirtioNetHdr {
        csum_start: 54,
        ..hdr
    };
    let out = split(&hdr6, &tcp6.build()).expect("completes");
    assert_eq!(verify(&out[0]), (true, true));

    let udp = udp_v4(b"hello, vxlan", false);
    let hdr_udp = VirtioNetHdr {
        csum_offset: 6,
        ..hdr
    };
    let out = split(&hdr_udp, &udp).expect("completes");
    assert_eq!(out[0], udp_v4(b"hello, vxlan", true));
    assert_eq!(verify(&out[0]), (true, true));
}

#[test]
fn a_udp_checksum_of_zero_goes_out_as_ffff() {
    // Find a payload whose checksum comes out 0: make the last two bytes cancel the rest.
    let mut payload = vec![0x11, 0x22, 0x33, 0x44, 0, 0];
    let partial = udp_v4(&payload, true);
    let c = u16::from_be_bytes([partial[40], partial[41]]);
    // Adding the current checksum as data makes the sum 0xffff: the checksum then is 0.
    payload[4..6].copy_from_slice(&c.to_be_bytes());
    let f = udp_v4(&payload, false);
    let hdr = VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..VirtioNetHdr::default()
    };
    let out = split(&hdr, &f).expect("completes");
    assert_eq!(&out[0][40..42], &[0xff, 0xff]);
    assert_eq!(verify(&out[0]), (true, true));
}

#[test]
fn needs_csum_outside_the_frame_is_refused() {
    let f = udp_v4(b"x", false);
    for (start, offset) in [(34u16, 200u16), (500, 0), (34, 5)] {
        let hdr = VirtioNetHdr {
            flags: FLAG_NEEDS_CSUM,
            csum_start: start,
            csum_offset: offset,
            ..VirtioNetHdr::default()
        };
        assert_eq!(split(&hdr, &f), Err(OffloadError::BadVnetHeader));
    }
}

#[test]
fn frames_without_offload_pass_unchanged() {
    let f = Tcp::v4(100).build();
    assert_eq!(split(&VirtioNetHdr::default(), &f), Ok(vec![f.clone()]));
    let arp = vec![0xffu8; 42];
    assert_eq!(split(&VirtioNetHdr::default(), &arp), Ok(vec![arp]));
}

// ---- coalescing --------------------------------------------------------------------------

#[test]
fn split_then_coalesce_gives_back_the_superframe() {
    for tcp in [
        Tcp::v4(20 * 1398 + 11),
        Tcp::v6(30 * 1378),
        Tcp::v4(2 * 1398),
    ] {
        let mss = if tcp.v6 { 1378 } else { 1398 };
        let (hdr, sf) = tcp.superframe(mss);
        let segs = split(&hdr, &sf).expect("splits");
        let out = coalesce(&segs);
        assert_eq!(out.len(), 1, "one superframe");
        let (h, frame, frames) = &out[0];
        assert_eq!(*frames as usize, segs.len());
        assert_eq!(h.gso_type, hdr.gso_type);
        assert_eq!(h.gso_size, mss);
        assert!(h.needs_csum());
        assert_eq!(usize::from(h.csum_start), tcp.l4());
        assert_eq!(h.csum_offset, 16);
        assert_eq!(usize::from(h.hdr_len), tcp.l4() + 32);
        assert_eq!(frame, &sf, "same bytes as the kernel's superframe");
        // And splitting the result again gives the same segments.
        assert_eq!(split(h, frame).expect("splits again"), segs);
    }
}

#[test]
fn one_segment_passes_with_a_zero_header() {
    let f = Tcp::v4(1398).build();
    let out = coalesce(std::slice::from_ref(&f));
    assert_eq!(out, vec![(VirtioNetHdr::default(), f, 1)]);
}

#[test]
fn interleaved_flows_coalesce_each() {
    let (hdr, sf) = Tcp::v4(4 * 1000).superframe(1000);
    let a = split(&hdr, &sf).expect("splits");
    let mut other = Tcp::v4(4 * 1000);
    other.src_port = 40001;
    let (hdr, sf2) = other.superframe(1000);
    let b = split(&hdr, &sf2).expect("splits");
    let arp = vec![0xffu8; 42];
    let mixed = vec![
        a[0].clone(),
        b[0].clone(),
        a[1].clone(),
        arp.clone(),
        b[1].clone(),
        a[2].clone(),
        b[2].clone(),
        a[3].clone(),
        b[3].clone(),
    ];
    let out = coalesce(&mixed);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].1, sf);
    assert_eq!(out[1].1, sf2);
    assert_eq!(
        (out[2].0, &out[2].1, out[2].2),
        (VirtioNetHdr::default(), &arp, 1)
    );
}

#[test]
fn gaps_and_reordering_start_new_superframes() {
    let (hdr, sf) = Tcp::v4(4 * 1000).superframe(1000);
    let s = split(&hdr, &sf).expect("splits");
    let out = coalesce(&[s[0].clone(), s[2].clone(), s[3].clone(), s[1].clone()]);
    let counts: Vec<u32> = out.iter().map(|o| o.2).collect();
    assert_eq!(counts, vec![1, 2, 1]);
    assert_eq!(out[0].1, s[0]);
    assert_eq!(out[2].1, s[1]);
    for (h, f, n) in &out {
        if *n > 1 {
            // Finishing the checksum makes a valid frame of it.
            let mut seg = Segments::new();
            segment(h, &FrameHeaders::parse(f), &mut seg).expect("splits");
            assert!(seg.iter().all(|f| verify(f) == (true, true)));
        }
    }
}

#[test]
fn nothing_follows_a_short_or_pushed_segment() {
    let mut a = Tcp::v4(1000);
    a.flags = TCP_ACK;
    let mut b = a.clone();
    b.seq += 1000;
    b.payload.truncate(500);
    let mut c = a.clone();
    c.seq += 1500;
    let out = coalesce(&[a.build(), b.build(), c.build()]);
    assert_eq!(out.iter().map(|o| o.2).collect::<Vec<_>>(), vec![2, 1]);

    let mut p = a.clone();
    p.flags = TCP_ACK | TCP_PSH;
    let mut q = a.clone();
    q.seq += 1000;
    let out = coalesce(&[p.build(), q.build()]);
    assert_eq!(out.iter().map(|o| o.2).collect::<Vec<_>>(), vec![1, 1]);
}

#[test]
fn bad_checksums_and_special_flags_are_not_merged() {
    let (hdr, sf) = Tcp::v4(3 * 1000).superframe(1000);
    let s = split(&hdr, &sf).expect("splits");
    let mut corrupt = s[1].clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let out = coalesce(&[s[0].clone(), corrupt.clone(), s[2].clone()]);
    assert_eq!(out.len(), 3);
    assert_eq!(out[1].1, corrupt, "passed on for the kernel to drop");

    let mut bad_ip = s[1].clone();
    bad_ip[24] ^= 1;
    assert_eq!(coalesce(&[s[0].clone(), bad_ip]).len(), 2);

    for flag in [TCP_SYN, TCP_FIN, TCP_RST, TCP_URG, TCP_CWR] {
        let mut a = Tcp::v4(1000);
        a.flags = TCP_ACK;
        let mut b = a.clone();
        b.seq += 1000;
        b.flags |= flag;
        assert_eq!(coalesce(&[a.build(), b.build()]).len(), 2, "flag {flag:#x}");
    }
}

#[test]
fn differing_headers_are_not_merged() {
    let mut a = Tcp::v4(1000);
    a.flags = TCP_ACK;
    let next = |t: &Tcp| {
        let mut n = t.clone();
        n.seq += 1000;
        n.id += 1;
        n
    };
    let mut b = next(&a);
    b.options[11] ^= 1; // another timestamp
    assert_eq!(coalesce(&[a.build(), b.build()]).len(), 2);
    let mut b = next(&a);
    b.options.clear();
    assert_eq!(coalesce(&[a.build(), b.build()]).len(), 2);
    // Same headers: merged.
    assert_eq!(coalesce(&[a.build(), next(&a).build()]).len(), 1);
    // Another ACK number: not.
    let mut f = next(&a).build();
    f[34 + 11] ^= 1;
    let c = !naive_fold(
        naive_sum(&f[26..34]) + 6 + (f.len() - 34) as u32 + {
            f[50] = 0;
            f[51] = 0;
            naive_sum(&f[34..])
        },
    );
    f[50..52].copy_from_slice(&c.to_be_bytes());
    assert_eq!(verify(&f), (true, true));
    assert_eq!(coalesce(&[a.build(), f]).len(), 2);
}

#[test]
fn a_fin_or_pure_ack_of_the_flow_ends_its_run() {
    let mut a = Tcp::v4(1000);
    a.flags = TCP_ACK;
    let mut ack = a.clone();
    ack.payload.clear();
    ack.seq += 1000;
    let mut b = a.clone();
    b.seq += 1000;
    let out = coalesce(&[a.build(), ack.build(), b.build()]);
    assert_eq!(out.len(), 3, "b may not overtake the pure ACK");
}

#[test]
fn superframes_stay_within_64k() {
    let mut segs = Vec::new();
    for i in 0..60u32 {
        let mut t = Tcp::v4(1398);
        t.flags = TCP_ACK;
        t.seq += i * 1398;
        t.id += i as u16;
        segs.push(t.build());
    }
    let out = coalesce(&segs);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.1.len() - 14 <= 65535));
    assert_eq!(out[0].2 + out[1].2, 60);
    assert_eq!(out[0].2, (65535 - 52) / 1398);
}

#[test]
fn padded_and_non_ip_frames_pass_through() {
    let mut t = Tcp::v4(2);
    t.options.clear();
    let mut f = t.build();
    f.extend_from_slice(&[0, 0, 0, 0]); // Ethernet padding to 60 bytes
    let mut t2 = t.clone();
    t2.seq += 2;
    let mut f2 = t2.build();
    f2.extend_from_slice(&[0, 0, 0, 0]);
    let out = coalesce(&[f.clone(), f2.clone()]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].1, f);
    assert_eq!(out[0].0, VirtioNetHdr::default());
    // Junk shorter than an Ethernet header.
    let out = coalesce(&[vec![1, 2, 3]]);
    assert_eq!(out[0].1, vec![1, 2, 3]);
}

#[test]
fn buffers_are_reused_across_batches() {
    let (hdr, sf) = Tcp::v4(10 * 1000).superframe(1000);
    let s = split(&hdr, &sf).expect("splits");
    let mut c = Coalescer::new();
    for _ in 0..3 {
        for f in &s {
            c.push(f);
        }
        let out: Vec<_> = c.finish().map(|w| w.bytes.to_vec()).collect();
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][VNET_HDR_LEN..], &sf[..]);
    }
}

#[test]
fn segments_append_behind_their_headroom() {
    let head = [0xaa; 8];
    let mut out = Segments::with_headroom(&head);
    let arp = vec![0xffu8; 42];
    assert_eq!(
        segment(
            &VirtioNetHdr::default(),
            &FrameHeaders::parse(&arp),
            &mut out
        ),
        Ok(1)
    );
    let (hdr, sf) = Tcp::v4(2500).superframe(1000);
    assert_eq!(segment(&hdr, &FrameHeaders::parse(&sf), &mut out), Ok(3));
    assert_eq!(out.len(), 4);
    assert_eq!(out.get(0), &arp[..]);
    let run = out.run(1..4);
    let mut at = 0;
    for i in 1..4 {
        assert_eq!(&run[at..at + 8], &head);
        assert_eq!(&run[at + 8..at + 8 + out.get(i).len()], out.get(i));
        assert_eq!(verify(out.get(i)), (true, true));
        at += 8 + out.get(i).len();
    }
    assert_eq!(at, run.len());
    // A refused read appends nothing.
    let bad = VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        csum_start: 500,
        ..VirtioNetHdr::default()
    };
    assert_eq!(
        segment(&bad, &FrameHeaders::parse(&arp), &mut out),
        Err(OffloadError::BadVnetHeader)
    );
    assert_eq!(out.len(), 4);
    assert_eq!(out.run(3..4).len(), 8 + out.get(3).len());
    out.truncate(1);
    assert_eq!(out.run(0..1), [&head[..], &arp[..]].concat());
}
