//! [`segment`]: splitting superframes and completing `NEEDS_CSUM` frames, checked with the
//! independent verifier.

use super::*;

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
