//! The TAP offloads: the split of a superframe ([`segment`]) and the merge of received
//! segments ([`Coalescer`]), checked with this crate's own RFC 1071 checksum.
//!
//! The input's first byte picks a mode. Raw mode hands arbitrary bytes over as a
//! `virtio_net_hdr` and a frame. Built modes make well-formed TCP frames (right lengths and
//! checksums, unless the input asks to spoil one) from a few choices, so that the fuzzer
//! reaches the splitting and merging itself rather than spending its time on finding a
//! checksum.
//!
//! Checks on [`segment`]:
//! - it never panics; on an error it appends nothing;
//! - a TSO superframe comes out as frames whose IPv4 header checksum and TCP checksum verify
//!   (independent sum), whose IP length fields match their length, whose payloads are at
//!   most `gso_size` long and, put back together, are the superframe's payload, with sequence
//!   numbers that follow one another; FIN and PSH only on the last, CWR only on the first;
//! - a `NEEDS_CSUM` frame comes out the same but for its checksum field, which now holds the
//!   complement of the sum from `csum_start` (the field's partial sum included); any other frame comes out as it went in;
//! - [`Segments::run`] is each frame behind its headroom, back to back.
//!
//! Checks on the [`Coalescer`] (fed up to 16 frames, twice its look-back; UDP merging on
//! or off as the input says, always on for the built datagrams):
//! - it never panics; every input frame is in exactly one output, in order;
//! - an output of one frame is that frame, byte for byte, behind a zero `virtio_net_hdr`;
//! - a merged output is made only of segments whose IPv4 and TCP checksums verify
//!   (independent sum), with consecutive sequence numbers; its payload is the concatenation
//!   of their payloads; its headers are the first segment's but for the lengths, checksums
//!   and PSH; its IP length matches, its IPv4 header checksum verifies, its
//!   `virtio_net_hdr` asks for TSO with the first segment's payload size, and its TCP
//!   checksum, completed from `csum_start` the way the kernel does, verifies;
//! - a merged UDP output (only with UDP merging on) is made only of whole datagrams that are
//!   not fragments and whose checksums are present and verify; its `virtio_net_hdr` asks for
//!   UDP segmentation with the first datagram's payload size, its checksum field holds the
//!   pseudo-header sum; and cut the way the kernel cuts it (a plain model here: payload
//!   pieces of that size behind the first datagram's headers, IPv4 ids counting on, lengths
//!   and checksums recomputed), it gives back the input datagrams byte for byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vxnet_dataplane::core::offload::{
    segment, Coalescer, FrameHeaders, GsoType, Segments, VirtioNetHdr, FLAG_NEEDS_CSUM,
    VNET_HDR_LEN,
};
use vxnet_fuzz::{
    fill_ipv4_checksum, ipv4_header_ok, ones_fold, ones_sum, payload, pseudo_header,
    tcp_checksum_ok, tcp_flag, tcp_layout, udp_checksum, udp_layout, Choices, TcpFrame, TcpLayout,
    UdpFrame, ETH_LEN,
};

/// The VXLAN header the engine puts in front of each frame; any bytes do.
const HEADROOM: [u8; 8] = [0x08, 0, 0, 0, 0, 0x10, 0x04, 0];
const MAX_COALESCED: usize = 16;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`, spelled out rather than taken from the code under test.
const GSO_UDP_L4: u8 = 5;

fuzz_target!(|data: &[u8]| {
    let mut input = Choices::new(data);
    match input.u8() % 5 {
        0 => {
            let raw = input.rest();
            if raw.len() >= VNET_HDR_LEN {
                split(&raw[..VNET_HDR_LEN], &raw[VNET_HDR_LEN..]);
            }
        }
        1 => {
            let (hdr, frame) = built_superframe(&mut input);
            split(&hdr, &frame);
        }
        2 => {
            let merge_udp = input.bool();
            let frames = built_segments(&mut input);
            coalesce(&frames, merge_udp);
        }
        3 => {
            let frames = built_datagrams(&mut input);
            coalesce(&frames, true);
        }
        _ => {
            // Raw frames for the coalescer, each behind a one-byte length.
            let merge_udp = input.bool();
            let mut frames = Vec::new();
            while !input.is_empty() && frames.len() < MAX_COALESCED {
                frames.push(input.bytes(255).to_vec());
            }
            coalesce(&frames, merge_udp);
        }
    }
});

/// A TSO request and a well-formed superframe for it, from a few choices.
fn built_superframe(input: &mut Choices) -> ([u8; VNET_HDR_LEN], Vec<u8>) {
    let v6 = input.bool();
    let ecn = input.u8() % 8 == 0;
    let gso_size = input.u16() % 9000 + 1;
    // At most 64 segments: a thousand one-byte segments check nothing more than 64 do,
    // and would slow every run down.
    let payload_len = usize::from(input.u16()).min(usize::from(gso_size) * 64);
    let flags = input.u8();
    let seq = input.u32();
    let ip_options = input.bytes(40);
    let tcp_options = input.bytes(40);
    let payload = payload(input.u8(), payload_len);
    let frame = TcpFrame {
        v6,
        flow: 0,
        ip_options,
        tcp_options,
        ident: input.u16(),
        seq,
        flags,
        payload: &payload,
    }
    .build();
    let gso = if v6 { 4 } else { 1 } | if ecn { 0x80 } else { 0 };
    let mut hdr = [0u8; VNET_HDR_LEN];
    hdr[0] = FLAG_NEEDS_CSUM;
    hdr[1] = gso;
    // hdr_len, csum_start and csum_offset as the input says: they must not be trusted.
    hdr[2..4].copy_from_slice(&input.u16().to_le_bytes());
    hdr[4..6].copy_from_slice(&gso_size.to_le_bytes());
    hdr[6..8].copy_from_slice(&input.u16().to_le_bytes());
    hdr[8..10].copy_from_slice(&input.u16().to_le_bytes());
    (hdr, frame)
}

fn split(hdr_bytes: &[u8], frame: &[u8]) {
    let Ok(hdr) = VirtioNetHdr::parse(hdr_bytes) else {
        return;
    };
    let parsed = FrameHeaders::parse(frame);
    let mut out = Segments::with_headroom(&HEADROOM);
    let count = match segment(&hdr, &parsed, &mut out) {
        Ok(count) => count,
        Err(_) => {
            assert!(out.is_empty(), "a refused frame left segments behind");
            return;
        }
    };
    assert_eq!(out.len(), count);
    let mut run = Vec::new();
    for f in out.iter() {
        run.extend_from_slice(&HEADROOM);
        run.extend_from_slice(f);
    }
    assert_eq!(out.run(0..count), &run[..]);
    match hdr.gso_type {
        GsoType::TcpV4 | GsoType::TcpV6 => check_split(&hdr, frame, &out),
        GsoType::None => {
            assert_eq!(count, 1);
            let f = out.get(0);
            assert_eq!(f.len(), frame.len());
            if hdr.needs_csum() {
                check_completed(&hdr, &parsed, frame, f);
            } else {
                assert_eq!(f, frame);
            }
        }
        GsoType::Udp | GsoType::UdpL4 => panic!("UDP GSO is refused, not split"),
    }
}

/// The segments of a TSO superframe: see the module docs.
fn check_split(hdr: &VirtioNetHdr, superframe: &[u8], out: &Segments) {
    // The superframe's own layout: its IP length field is not trusted by the split, so take
    // the headers' lengths from the header fields alone.
    let ethertype = u16::from_be_bytes([superframe[12], superframe[13]]);
    let ip_hdr = if ethertype == 0x0800 {
        usize::from(superframe[ETH_LEN] & 0x0f) * 4
    } else {
        40
    };
    let l4 = ETH_LEN + ip_hdr;
    let hdr_len = l4 + usize::from(superframe[l4 + 12] >> 4) * 4;
    let whole_payload = &superframe[hdr_len..];
    let seq0 = u32::from_be_bytes(superframe[l4 + 4..l4 + 8].try_into().expect("4 bytes"));
    let flags0 = superframe[l4 + 13];
    let mss = usize::from(hdr.gso_size);

    let mut joined = Vec::with_capacity(whole_payload.len());
    let last = out.len() - 1;
    for (i, seg) in out.iter().enumerate() {
        let layout = tcp_layout(seg).expect("a segment is a whole Ethernet/IP/TCP frame");
        assert_eq!(layout.l4, l4);
        assert_eq!(layout.payload, hdr_len);
        assert!(
            ipv4_header_ok(seg, &layout),
            "segment {i}: bad IPv4 header checksum"
        );
        assert!(
            tcp_checksum_ok(seg, &layout),
            "segment {i}: bad TCP checksum"
        );
        let chunk = &seg[hdr_len..];
        assert!(chunk.len() <= mss);
        assert!(
            i == last || chunk.len() == mss,
            "only the last segment is short"
        );
        let seq = u32::from_be_bytes(seg[l4 + 4..l4 + 8].try_into().expect("4 bytes"));
        assert_eq!(seq, seq0.wrapping_add(joined.len() as u32));
        let flags = seg[l4 + 13];
        let mut want = flags0;
        if i != last {
            want &= !(tcp_flag::FIN | tcp_flag::PSH);
        }
        if i != 0 {
            want &= !tcp_flag::CWR;
        }
        assert_eq!(flags, want, "segment {i}: flags");
        joined.extend_from_slice(chunk);
    }
    assert_eq!(&joined[..], whole_payload);
}

/// A `NEEDS_CSUM` frame after completion: see the module docs.
fn check_completed(hdr: &VirtioNetHdr, parsed: &FrameHeaders, before: &[u8], after: &[u8]) {
    let start = usize::from(hdr.csum_start);
    let at = start + usize::from(hdr.csum_offset);
    assert_eq!(before[..at], after[..at]);
    assert_eq!(before[at + 2..], after[at + 2..]);
    // The sum covers the IP packet, not the Ethernet padding after it.
    let end = match parsed.ip() {
        Some(ip) if ip.end <= after.len() && ip.end >= at + 2 => ip.end,
        _ => after.len(),
    };
    // The field held a partial sum (the pseudo-header's) that the completion includes: the
    // stored checksum is the complement of the sum of the bytes as they were.
    let stored = u16::from_be_bytes([after[at], after[at + 1]]);
    assert_eq!(
        ones_fold(ones_sum(&before[start..end]) + u64::from(stored)),
        0xffff,
        "completed checksum does not verify"
    );
}

/// Segments of up to four flows, well formed unless the input spoils them.
fn built_segments(input: &mut Choices) -> Vec<Vec<u8>> {
    let mut next_seq = [0u32; 4];
    let mut frames = Vec::new();
    while !input.is_empty() && frames.len() < MAX_COALESCED {
        let ctl = input.u8();
        let flow = ctl & 3;
        let v6 = flow & 2 != 0;
        let mut flags = tcp_flag::ACK;
        if ctl & 0x04 != 0 {
            flags |= tcp_flag::PSH;
        }
        if ctl & 0x08 != 0 {
            flags = input.u8();
        }
        // Mostly in order; now and then a gap, a retransmission or a reordering.
        let seq = if ctl & 0x10 != 0 {
            next_seq[usize::from(flow)].wrapping_add(u32::from(input.u16()))
        } else {
            next_seq[usize::from(flow)]
        };
        let len = match input.u8() {
            0 => 0,
            n @ 1..=15 => usize::from(n),
            n => 1448 - usize::from(n & 0x0f),
        };
        let tcp_options: &[u8] = if ctl & 0x20 != 0 {
            &[1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]
        } else {
            &[]
        };
        let body = payload(frames.len() as u8, len);
        let mut frame = TcpFrame {
            v6,
            flow,
            ip_options: &[],
            tcp_options,
            ident: frames.len() as u16,
            seq,
            flags,
            payload: &body,
        }
        .build();
        if ctl & 0x40 != 0 {
            // Spoil a byte: a checksum that no longer verifies, or a header that differs.
            let at = usize::from(input.u16()) % frame.len();
            frame[at] ^= input.u8() | 1;
        }
        if ctl & 0x80 != 0 {
            // Ethernet padding: the frame outgrows its IP packet.
            frame.extend_from_slice(&[0; 6]);
        }
        next_seq[usize::from(flow)] = seq.wrapping_add(len as u32);
        frames.push(frame);
    }
    frames
}

/// Datagrams of up to four flows, well formed unless the input spoils them: mostly runs of
/// one size with consecutive IPv4 ids; now and then a new size, a shorter one, an id gap, a
/// fragment, no checksum, another TTL or a spoiled byte.
fn built_datagrams(input: &mut Choices) -> Vec<Vec<u8>> {
    let mut next_id = [0u16; 4];
    let mut size = [64usize; 4];
    let mut frames = Vec::new();
    while !input.is_empty() && frames.len() < MAX_COALESCED {
        let ctl = input.u8();
        let flow = ctl & 3;
        let f = usize::from(flow);
        if ctl & 0x04 != 0 {
            size[f] = usize::from(input.u16() % 1473);
        }
        let len = if ctl & 0x08 != 0 {
            size[f].saturating_sub(usize::from(input.u8() % 16) + 1)
        } else {
            size[f]
        };
        let ident = if ctl & 0x10 != 0 {
            next_id[f].wrapping_add(input.u16())
        } else {
            next_id[f]
        };
        let odd = if ctl & 0x20 != 0 { input.u8() } else { 0 };
        let frag = match odd & 3 {
            1 => 0x2000,                    // MF: a first fragment
            2 => 0x2000 | input.u16() >> 3, // a later one
            _ if ctl & 0x40 != 0 => 0,      // DF clear
            _ => 0x4000,
        };
        let body = payload(frames.len() as u8, len);
        let mut frame = UdpFrame {
            v6: flow & 2 != 0,
            flow,
            ident,
            frag,
            ttl: if odd & 4 != 0 { input.u8() } else { 64 },
            no_checksum: odd & 8 != 0,
            payload: &body,
        }
        .build();
        if odd & 16 != 0 {
            let at = usize::from(input.u16()) % frame.len();
            frame[at] ^= input.u8() | 1;
        }
        if ctl & 0x80 != 0 {
            // Ethernet padding: the frame outgrows its IP packet.
            frame.extend_from_slice(&[0; 6]);
        }
        next_id[f] = ident.wrapping_add(1);
        frames.push(frame);
    }
    frames
}

/// Outputs of a coalescer fed `frames`: (bytes, frames merged, wire bytes).
fn run_coalescer(frames: &[Vec<u8>], merge_udp: bool) -> Vec<(Vec<u8>, u32, usize)> {
    let mut c = Coalescer::new();
    c.merge_udp(merge_udp);
    for f in frames {
        c.push(f);
    }
    let out = c
        .finish()
        .map(|o| (o.bytes.to_vec(), o.frames, o.wire_bytes))
        .collect();
    assert!(c.is_empty());
    out
}

fn coalesce(frames: &[Vec<u8>], merge_udp: bool) {
    // Which output holds which input: the coalescer never looks ahead, so feeding one more
    // frame either adds an output or grows exactly one.
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut prev: Vec<u32> = Vec::new();
    for n in 1..=frames.len() {
        let counts: Vec<u32> = run_coalescer(&frames[..n], merge_udp)
            .iter()
            .map(|o| o.1)
            .collect();
        if counts.len() == prev.len() + 1 {
            assert_eq!(counts[..prev.len()], prev[..]);
            assert_eq!(counts[prev.len()], 1);
            members.push(vec![n - 1]);
        } else {
            assert_eq!(counts.len(), prev.len(), "outputs vanished");
            let grown: Vec<usize> = (0..counts.len())
                .filter(|&i| counts[i] != prev[i])
                .collect();
            assert_eq!(grown.len(), 1, "one frame changed several outputs");
            assert_eq!(counts[grown[0]], prev[grown[0]] + 1);
            members[grown[0]].push(n - 1);
        }
        prev = counts;
    }

    let outputs = run_coalescer(frames, merge_udp);
    assert_eq!(outputs.len(), members.len());
    for ((bytes, count, wire_bytes), inputs) in outputs.iter().zip(&members) {
        assert_eq!(*count as usize, inputs.len());
        let total: usize = inputs.iter().map(|&i| frames[i].len()).sum();
        assert_eq!(*wire_bytes, total);
        let (hdr, frame) = bytes.split_at(VNET_HDR_LEN);
        if let [only] = inputs[..] {
            assert_eq!(hdr, &[0u8; VNET_HDR_LEN][..]);
            assert_eq!(frame, &frames[only][..]);
        } else if hdr[1] == GSO_UDP_L4 {
            assert!(merge_udp, "UDP datagrams merged with UDP merging off");
            check_udp_superframe(hdr, frame, inputs, frames);
        } else {
            check_superframe(hdr, frame, inputs, frames);
        }
    }
}

/// A merged output: see the module docs.
fn check_superframe(hdr: &[u8], frame: &[u8], inputs: &[usize], frames: &[Vec<u8>]) {
    let layouts: Vec<TcpLayout> = inputs
        .iter()
        .map(|&i| tcp_layout(&frames[i]).expect("only whole TCP segments are merged"))
        .collect();
    let first = &frames[inputs[0]];
    let lay = layouts[0];
    let mut joined = Vec::new();
    let mut seq = u32::from_be_bytes(first[lay.l4 + 4..lay.l4 + 8].try_into().expect("4"));
    for (&i, l) in inputs.iter().zip(&layouts) {
        let f = &frames[i];
        assert_eq!(*l, lay, "segments of one superframe share their layout");
        assert!(
            ipv4_header_ok(f, l),
            "merged a segment with a bad IPv4 checksum"
        );
        assert!(
            tcp_checksum_ok(f, l),
            "merged a segment with a bad TCP checksum"
        );
        let flags = f[l.l4 + 13];
        let refused = tcp_flag::SYN | tcp_flag::FIN | tcp_flag::RST | tcp_flag::URG | tcp_flag::CWR;
        assert!(
            flags & tcp_flag::ACK != 0 && flags & refused == 0,
            "merged flags {flags:#x}"
        );
        assert_eq!(
            u32::from_be_bytes(f[l.l4 + 4..l.l4 + 8].try_into().expect("4")),
            seq,
            "merged out of sequence"
        );
        seq = seq.wrapping_add((f.len() - l.payload) as u32);
        joined.extend_from_slice(&f[l.payload..]);
    }
    assert_eq!(
        &frame[lay.payload..],
        &joined[..],
        "payloads not concatenated"
    );

    // Headers: the first segment's (its IPv4 id too) but for lengths, checksums and PSH.
    let mask = |h: &[u8]| {
        let mut h = h[..lay.payload].to_vec();
        if lay.v6 {
            h[ETH_LEN + 4..ETH_LEN + 6].fill(0);
        } else {
            h[ETH_LEN + 2..ETH_LEN + 4].fill(0);
            h[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        }
        h[lay.l4 + 13] &= !tcp_flag::PSH;
        h[lay.l4 + 16..lay.l4 + 18].fill(0);
        h
    };
    assert_eq!(
        mask(frame),
        mask(first),
        "superframe headers differ from the first"
    );
    let out_layout = tcp_layout(frame).expect("IP length matches the superframe");
    assert_eq!(out_layout, lay);
    assert!(
        ipv4_header_ok(frame, &lay),
        "superframe IPv4 header checksum"
    );

    let gso = if lay.v6 { 4 } else { 1 };
    let le = |i: usize| usize::from(u16::from_le_bytes([hdr[i], hdr[i + 1]]));
    assert_eq!((hdr[0], hdr[1]), (FLAG_NEEDS_CSUM, gso));
    assert_eq!(le(2), lay.payload, "hdr_len");
    assert_eq!(le(4), first.len() - lay.payload, "gso_size");
    assert_eq!((le(6), le(8)), (lay.l4, 16), "csum_start, csum_offset");
    // Complete the checksum as the kernel would, then verify it as a receiver would.
    let mut done = frame.to_vec();
    let c = !ones_fold(ones_sum(&done[lay.l4..]));
    done[lay.l4 + 16..lay.l4 + 18].copy_from_slice(&c.to_be_bytes());
    assert!(
        tcp_checksum_ok(&done, &lay),
        "superframe TCP pseudo-header sum"
    );
}

/// A merged UDP output: see the module docs.
fn check_udp_superframe(hdr: &[u8], frame: &[u8], inputs: &[usize], frames: &[Vec<u8>]) {
    let first = &frames[inputs[0]];
    let lay = udp_layout(first).expect("only whole UDP datagrams are merged");
    for &i in inputs {
        let f = &frames[i];
        assert_eq!(
            udp_layout(f),
            Some(lay),
            "datagrams of one superframe share their layout"
        );
        assert!(
            ipv4_header_ok(f, &lay),
            "merged a datagram with a bad IPv4 checksum"
        );
        if !lay.v6 {
            let frag = u16::from_be_bytes([f[ETH_LEN + 6], f[ETH_LEN + 7]]);
            assert_eq!(frag & 0x3fff, 0, "merged a fragment");
        }
        let stored = u16::from_be_bytes([f[lay.l4 + 6], f[lay.l4 + 7]]);
        assert_ne!(stored, 0, "merged a datagram without a checksum");
        assert_eq!(
            stored,
            udp_checksum(f, &lay),
            "merged a datagram with a bad checksum"
        );
    }
    let gso_size = first.len() - lay.payload;
    assert!(gso_size > 0, "merged empty datagrams");
    let le = |i: usize| usize::from(u16::from_le_bytes([hdr[i], hdr[i + 1]]));
    assert_eq!((hdr[0], hdr[1]), (FLAG_NEEDS_CSUM, GSO_UDP_L4));
    assert_eq!(le(2), lay.payload, "hdr_len");
    assert_eq!(le(4), gso_size, "gso_size");
    assert_eq!((le(6), le(8)), (lay.l4, 6), "csum_start, csum_offset");
    assert_eq!(
        udp_layout(frame),
        Some(lay),
        "IP length matches the superframe"
    );
    assert!(
        ipv4_header_ok(frame, &lay),
        "superframe IPv4 header checksum"
    );
    let l4_len = frame.len() - lay.l4;
    assert_eq!(
        u16::from_be_bytes([frame[lay.l4 + 6], frame[lay.l4 + 7]]),
        ones_fold(pseudo_header(frame, &lay, 17, l4_len)),
        "superframe UDP pseudo-header sum"
    );

    // The kernel's cut: pieces of `gso_size` behind the first datagram's headers.
    let pieces: Vec<&[u8]> = frame[lay.payload..].chunks(gso_size).collect();
    assert_eq!(pieces.len(), inputs.len(), "the cut gives another count");
    let id0 = u16::from_be_bytes([frame[ETH_LEN + 4], frame[ETH_LEN + 5]]);
    for (k, (piece, &i)) in pieces.iter().zip(inputs).enumerate() {
        let mut d = frame[..lay.payload].to_vec();
        d.extend_from_slice(piece);
        let udp_len = (8 + piece.len()) as u16;
        if lay.v6 {
            d[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&udp_len.to_be_bytes());
        } else {
            let total = (lay.l4 - ETH_LEN) as u16 + udp_len;
            d[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&total.to_be_bytes());
            d[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&id0.wrapping_add(k as u16).to_be_bytes());
            fill_ipv4_checksum(&mut d, &lay);
        }
        d[lay.l4 + 4..lay.l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
        let c = udp_checksum(&d, &lay);
        d[lay.l4 + 6..lay.l4 + 8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            d, frames[i],
            "piece {k} of the cut is not the datagram that came in"
        );
    }
}
