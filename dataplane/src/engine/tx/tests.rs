use super::*;
use crate::core::offload::{GsoType, FLAG_NEEDS_CSUM};

/// A TSO superframe of `payload` bytes cut at `mss`, split into `frames`.
fn split_superframe(frames: &mut Segments, payload: usize, mss: u16) -> Range<usize> {
    let mut f = vec![0u8; 14 + 20 + 20 + payload];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    f[23] = 6;
    f[46] = 0x50;
    f[47] = 0x10;
    let hdr = VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        gso_type: GsoType::TcpV4,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
        ..VirtioNetHdr::default()
    };
    let first = frames.len();
    let n = segment(&hdr, &FrameHeaders::parse(&f), frames).expect("splits");
    first..first + n
}

fn plan(gso: bool, entries: &[Range<usize>], frames: &Segments) -> Vec<(usize, Option<u16>)> {
    let mut tx = TxQueue::default();
    for (i, r) in entries.iter().enumerate() {
        tx.push(i % 2, Ipv4Addr::new(198, 18, 0, 2), r.clone());
    }
    tx.plan(frames, gso);
    tx.messages
        .iter()
        .map(|m| (m.frames.len(), m.gso_size))
        .collect()
}

#[test]
fn gso_sends_stay_within_the_kernel_limits() {
    let mut frames = Segments::with_headroom(&[0; VXLAN_HEADER_LEN]);
    // 47 segments of 1398 + one of 500: 1460 + 8 bytes each, > 64 KB together.
    let big = split_superframe(&mut frames, 47 * 1398 + 500, 1398);
    assert_eq!(big.len(), 48);
    let planned = plan(true, std::slice::from_ref(&big), &frames);
    assert_eq!(planned, vec![(44, Some(1460)), (4, Some(1460))]);
    let datagram = VXLAN_HEADER_LEN + 54 + 1398;
    assert_eq!(datagram, 1460);
    assert!(44 * datagram <= GSO_MAX_BYTES);
    assert!(45 * datagram > GSO_MAX_BYTES);

    // Tiny segments: the segment count limit, not the byte limit.
    let tiny = split_superframe(&mut frames, 100 * 10, 10);
    let planned = plan(true, std::slice::from_ref(&tiny), &frames);
    assert_eq!(planned, vec![(64, Some(72)), (36, Some(72))]);
}

#[test]
fn without_gso_or_alone_every_datagram_is_a_message() {
    let mut frames = Segments::with_headroom(&[0; VXLAN_HEADER_LEN]);
    let run = split_superframe(&mut frames, 3 * 1000, 1000);
    let single = split_superframe(&mut frames, 700, 1000);
    assert_eq!(
        plan(false, std::slice::from_ref(&run), &frames),
        vec![(1, None); 3]
    );
    assert_eq!(
        plan(true, &[run, single], &frames),
        vec![(3, Some(8 + 54 + 1000)), (1, None)]
    );
}

#[test]
fn a_short_segment_ends_a_gso_run() {
    let mut frames = Segments::with_headroom(&[0; VXLAN_HEADER_LEN]);
    let a = split_superframe(&mut frames, 1500, 1000);
    let b = split_superframe(&mut frames, 1000, 1000);
    // Queued as one entry, the short end of `a` may not be followed by `b`.
    let both = a.start..b.end;
    let planned = plan(true, std::slice::from_ref(&both), &frames);
    assert_eq!(planned, vec![(2, Some(1062)), (1, None)]);
}
