use super::*;
use crate::core::forward::NetworkConfig;
use crate::core::offload::{GsoType, FLAG_NEEDS_CSUM};
use crate::core::seal::{NetworkKey, Salts};
use crate::wire::{Vni, VXLAN_HEADER_LEN};

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

#[test]
fn sealed_segments_keep_equal_sizes_and_each_vtep_gets_its_own_copy() {
    let (local, b, c) = (
        Ipv4Addr::new(198, 18, 0, 1),
        Ipv4Addr::new(198, 18, 0, 2),
        Ipv4Addr::new(198, 18, 0, 3),
    );
    let vni = Vni::new(4100).expect("24-bit");
    let keys = [NetworkKey {
        epoch: 0,
        secret: [1; 32],
    }];
    let now = Instant::now();
    let config = NetworkConfig {
        vni,
        mtu: 1426,
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        aging: Duration::from_secs(300),
        encrypted: true,
    };
    let plane = NetworkPlane::new(config, 0);
    plane.install_keys(local, &keys, &Salts::default(), now);
    let seal = plane.seal().expect("encrypted");
    let mut frames = Segments::with_rooms(&[0; SEALED_HEADER_LEN], SEAL_TAG_LEN);
    let run = split_superframe(&mut frames, 3 * 1000 + 10, 1000);
    let plain: Vec<Vec<u8>> = run.clone().map(|i| frames.get(i).to_vec()).collect();
    let copy = frames.duplicate(run.clone());
    assert!(seal_run(seal, &plane, &mut frames, b, run.clone(), now));
    assert!(seal_run(seal, &plane, &mut frames, c, copy.clone(), now));
    // Equal sizes, 24 bytes more than plain: one GSO message (the short last one ends it).
    assert_eq!(
        plan(true, std::slice::from_ref(&run), &frames),
        vec![(4, Some((VXLAN_HEADER_LEN + 54 + 1000 + 24) as u16))]
    );
    // Each receiver opens its own copy, and only its own.
    let receiver = |addr| {
        let s = Seal::new(vni, 0);
        s.install(addr, &keys, &Salts::default(), now);
        s
    };
    let (at_b, at_c) = (receiver(b), receiver(c));
    for (k, (i, j)) in run.zip(copy).enumerate() {
        let mut for_b = frames.run(i..i + 1).to_vec();
        let mut for_c = frames.run(j..j + 1).to_vec();
        assert_ne!(for_b, for_c);
        assert!(at_c.open(local, &mut for_b.clone()).is_err());
        assert_eq!(at_b.open(local, &mut for_b), Ok(&plain[k][..]));
        assert_eq!(at_c.open(local, &mut for_c), Ok(&plain[k][..]));
    }
}

#[test]
fn a_frame_without_a_key_is_dropped_not_sent_plain() {
    let config = NetworkConfig {
        vni: Vni::new(4100).expect("24-bit"),
        mtu: 1426,
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        aging: Duration::from_secs(300),
        encrypted: true,
    };
    let plane = NetworkPlane::new(config, 0);
    let mut frames = Segments::with_rooms(&[0; SEALED_HEADER_LEN], SEAL_TAG_LEN);
    let run = split_superframe(&mut frames, 2000, 1000);
    let seal = plane.seal().expect("encrypted");
    assert!(!seal_run(
        seal,
        &plane,
        &mut frames,
        Ipv4Addr::new(198, 18, 0, 2),
        run,
        Instant::now()
    ));
    assert_eq!(plane.counters.drops.get(DropReason::SealedNoKey), 2);
}
