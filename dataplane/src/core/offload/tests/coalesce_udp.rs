//! [`Coalescer::merging_udp`]: a flow's UDP datagrams of one size merged into one UDP
//! superframe, which the kernel cuts into exactly the datagrams that came in.

use super::*;

/// What the kernel does with a UDP superframe written into a TAP, written out plainly as the
/// oracle: cut the payload at `gso_size`, give every piece the first datagram's headers with
/// its own lengths, the next IPv4 id and both checksums completed.
fn kernel_cut(hdr: &VirtioNetHdr, superframe: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(hdr.gso_type, GsoType::UdpL4);
    assert!(hdr.needs_csum());
    let l4 = usize::from(hdr.csum_start);
    assert_eq!(hdr.csum_offset, 6);
    assert_eq!(usize::from(hdr.hdr_len), l4 + 8);
    let (headers, payload) = superframe.split_at(l4 + 8);
    let first_id = u16::from_be_bytes([headers[18], headers[19]]);
    payload
        .chunks(usize::from(hdr.gso_size))
        .enumerate()
        .map(|(i, piece)| {
            let mut f = headers.to_vec();
            f.extend_from_slice(piece);
            let l4_len = 8 + piece.len();
            f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            f[18..20].copy_from_slice(&first_id.wrapping_add(i as u16).to_be_bytes());
            f[24..26].copy_from_slice(&[0, 0]);
            let c = !naive_fold(naive_sum(&f[14..34]));
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            f[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
            let pseudo = naive_sum(&f[26..34]) + 17 + l4_len as u32;
            let mut c = !naive_fold(pseudo + naive_sum(&f[l4..]));
            if c == 0 {
                c = 0xffff;
            }
            f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
            f
        })
        .collect()
}

/// `count` datagrams of `len` payload bytes (each different), ids on from `id`.
fn datagrams(count: usize, len: usize, id: u16, src_port: u16) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let payload: Vec<u8> = (0..len).map(|b| (b * 13 + i * 7) as u8).collect();
            udp_v4_with(&payload, true, id.wrapping_add(i as u16), src_port)
        })
        .collect()
}

fn merged(frames: &[Vec<u8>]) -> Vec<(VirtioNetHdr, Vec<u8>, u32)> {
    let mut c = Coalescer::new();
    c.merge_udp(true);
    coalesce_with(c, frames)
}

/// What the TAP's reader would see: every write cut as the kernel cuts it.
fn delivered(writes: &[(VirtioNetHdr, Vec<u8>, u32)]) -> Vec<Vec<u8>> {
    writes
        .iter()
        .flat_map(|(hdr, frame, frames)| {
            let out = if hdr.gso_type == GsoType::None {
                vec![frame.clone()]
            } else {
                kernel_cut(hdr, frame)
            };
            assert_eq!(out.len(), *frames as usize, "counted as what it carries");
            out
        })
        .collect()
}

#[test]
fn a_run_of_one_size_becomes_one_superframe_the_kernel_cuts_back() {
    // The last one shorter, as the end of a burst may be; the id wraps in the middle.
    let mut frames = datagrams(10, 64, 0xfffa, 40000);
    frames.extend(datagrams(1, 20, 0x0004, 40000));
    let out = merged(&frames);
    assert_eq!(out.len(), 1, "one write");
    let (hdr, superframe, count) = &out[0];
    assert_eq!(*count, 11);
    assert_eq!(hdr.gso_type, GsoType::UdpL4);
    assert_eq!(hdr.gso_size, 64);
    assert_eq!(superframe.len(), 42 + 10 * 64 + 20);
    assert!(verify(superframe).0, "the IPv4 header checksum is redone");
    assert_eq!(kernel_cut(hdr, superframe), frames);
}

#[test]
fn without_merging_udp_every_datagram_passes_alone() {
    let frames = datagrams(4, 64, 1, 40000);
    let out = coalesce(&frames);
    assert_eq!(out.len(), 4);
    assert!(out
        .iter()
        .all(|(h, _, n)| *h == VirtioNetHdr::default() && *n == 1));
}

#[test]
fn what_the_kernel_would_not_give_back_is_not_merged() {
    // A gap in the ids.
    let mut gap = datagrams(2, 64, 10, 40000);
    gap.extend(datagrams(2, 64, 13, 40000));
    // A longer datagram after the first ones, and anything after a shorter one.
    let mut sizes = datagrams(2, 64, 20, 40000);
    sizes.extend(datagrams(1, 100, 22, 40000));
    sizes.extend(datagrams(1, 10, 23, 40000));
    sizes.extend(datagrams(1, 10, 24, 40000));
    // No checksum: it must not gain one, and the run before it must not take what follows.
    let mut bare = datagrams(3, 64, 30, 40000);
    bare[1][40..42].copy_from_slice(&[0, 0]);
    // A bad checksum.
    let mut bad = datagrams(2, 64, 40, 40000);
    bad[1][50] ^= 1;
    for (name, frames, writes) in [
        ("gap", gap, 2),
        ("sizes", sizes, 3),
        ("no checksum", bare, 3),
        ("bad checksum", bad, 2),
    ] {
        let out = merged(&frames);
        assert_eq!(out.len(), writes, "{name}: {out:?}");
        assert_eq!(delivered(&out), frames, "{name}: delivered as they came");
    }
}

#[test]
fn runs_stop_at_64_datagrams_and_flows_merge_each() {
    let a = datagrams(70, 32, 100, 40000);
    let b = datagrams(3, 48, 500, 40001);
    let mut mixed = Vec::new();
    for i in 0..70 {
        mixed.push(a[i].clone());
        if i < 3 {
            mixed.push(b[i].clone());
        }
    }
    let out = merged(&mixed);
    let counts: Vec<u32> = out.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(counts, vec![64, 3, 6]);
    let delivered = delivered(&out);
    let of_flow = |port: [u8; 2]| -> Vec<Vec<u8>> {
        delivered
            .iter()
            .filter(|f| f[34..36] == port)
            .cloned()
            .collect()
    };
    assert_eq!(of_flow(40000u16.to_be_bytes()), a, "flow a in order");
    assert_eq!(of_flow(40001u16.to_be_bytes()), b, "flow b in order");
}
