//! [`Coalescer`]: merging what GRO would merge, and nothing else.

use super::*;

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
