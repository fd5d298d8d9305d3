//! The one parse against hand-written frames, and against etherparse (an independent parser)
//! on frames etherparse builds, checksums included.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};

use super::*;
use crate::wire::TcpFlags;

const MACS: [u8; 12] = [
    0x02, 0x42, 0x0a, 0x0a, 0x00, 0x03, 0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02,
];

/// Ethernet + IPv4 with one option word (NOP NOP NOP EOL) + TCP with timestamps + "hi".
fn v4_tcp_with_options() -> Vec<u8> {
    let mut f = MACS.to_vec();
    #[rustfmt::skip]
    f.extend_from_slice(&[
        0x08, 0x00,
        0x46, 0x00, 0x00, 0x3a, 0x42, 0x42, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
        10, 10, 0, 2, 10, 10, 0, 3, 1, 1, 1, 0,
        0x9c, 0x40, 0x14, 0x51, 0x10, 0x00, 0x00, 0x00, 0xab, 0xcd, 0x00, 0x01,
        0x80, 0x18, 0x01, 0xf5, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x56, 0x78,
        b'h', b'i',
    ]);
    f
}

#[test]
fn records_ipv4_tcp_with_options() {
    let f = v4_tcp_with_options();
    let h = FrameHeaders::parse(&f);
    assert_eq!(h.ethertype(), Some(EtherType::IPV4));
    assert_eq!(h.frame(), &f[..]);
    assert_eq!(h.ethernet().map(|e| e.ethertype()), Ok(EtherType::IPV4));
    assert_eq!(
        h.ip(),
        Some(IpHeader {
            version: IpVersion::V4,
            offset: 14,
            header_len: 24,
            end: 14 + 58,
            protocol: IpProtocol::TCP,
            fragmented: false,
        })
    );
    assert_eq!(
        h.l4(),
        Some(L4Header {
            protocol: IpProtocol::TCP,
            offset: 38,
            header_len: Some(32),
        })
    );
    assert_eq!(h.ports(), Some((40000, 5201)));
    assert_eq!(h.tcp().expect("TCP").payload(), b"hi");
    assert!(h.udp().is_none() && h.ipv6().is_none());
    assert_eq!(h.ipv4().map(|p| p.ident()), Some(0x4242));
}

#[test]
fn records_what_there_is_and_no_more() {
    let f = v4_tcp_with_options();
    // Shorter than Ethernet.
    let h = FrameHeaders::parse(&f[..13]);
    assert_eq!((h.ethertype(), h.ip(), h.l4()), (None, None, None));
    assert_eq!(h.ethernet().err(), Some(WireError::Truncated));
    // IP header cut inside its option.
    let h = FrameHeaders::parse(&f[..14 + 23]);
    assert_eq!((h.ethertype(), h.ip()), (Some(EtherType::IPV4), None));
    // Ports, but not the whole TCP header: L4 without a header length, no TCP view.
    let h = FrameHeaders::parse(&f[..38 + 4]);
    assert_eq!(h.l4().map(|l| l.header_len), Some(None));
    assert_eq!(h.ports(), Some((40000, 5201)));
    assert!(h.tcp().is_none());
    let h = FrameHeaders::parse(&f[..38 + 3]);
    assert!(h.ip().is_some() && h.l4().is_none() && h.ports().is_none());
    // A data offset below 5.
    let mut bad = f.clone();
    bad[38 + 12] = 0x40;
    let h = FrameHeaders::parse(&bad);
    assert_eq!(h.l4().map(|l| l.header_len), Some(None));
    // Padding: the declared end stays where the header says.
    let mut padded = f.clone();
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(FrameHeaders::parse(&padded).ip().map(|ip| ip.end), Some(72));
    // A fragment still records its ports; `fragmented` says what they are worth.
    let mut frag = f.clone();
    frag[20] = 0x20;
    let h = FrameHeaders::parse(&frag);
    assert_eq!(h.ip().map(|ip| ip.fragmented), Some(true));
    assert!(h.ports().is_some());
    // Other protocols have no L4; other EtherTypes no IP.
    let mut icmp = f.clone();
    icmp[23] = 1;
    assert!(FrameHeaders::parse(&icmp).l4().is_none());
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&f[12..]);
    let h = FrameHeaders::parse(&tagged);
    assert_eq!((h.ethertype(), h.ip()), (Some(EtherType::VLAN), None));
    // A version nibble that does not match the EtherType.
    let mut v6ish = f.clone();
    v6ish[14] = 0x66;
    assert!(FrameHeaders::parse(&v6ish).ip().is_none());
}

/// The frames etherparse builds, parsed by both.
fn built() -> Vec<Vec<u8>> {
    let src = [2, 0x42, 10, 10, 0, 2];
    let dst = [2, 0x42, 10, 10, 0, 3];
    let v6a = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let v6b = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
    let payload: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 1) as u8).collect();
    let mut frames = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 10, 0, 2], [10, 10, 0, 3], 64)
        .tcp(40000, 5201, 0x1000_0000, 501)
        .ack(7)
        .psh()
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(1, 2),
        ])
        .expect("options fit")
        .write(&mut frames[0], &payload)
        .expect("builds");
    PacketBuilder::ethernet2(src, dst)
        .ipv6(v6a, v6b, 64)
        .tcp(40001, 5201, 0xffff_fff0, 501)
        .ack(9)
        .write(&mut frames[1], &payload[..777])
        .expect("builds");
    PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 10, 0, 2], [10, 10, 0, 3], 64)
        .udp(53000, 53)
        .write(&mut frames[2], &payload[..33])
        .expect("builds");
    PacketBuilder::ethernet2(src, dst)
        .ipv6(v6a, v6b, 64)
        .udp(53001, 4789)
        .write(&mut frames[3], &payload[..1])
        .expect("builds");
    frames
}

#[test]
fn agrees_with_etherparse() {
    for f in built() {
        let ours = FrameHeaders::parse(&f);
        let theirs = SlicedPacket::from_ethernet(&f).expect("etherparse parses");
        let offset_of = |s: &[u8]| s.as_ptr() as usize - f.as_ptr() as usize;
        let ip = ours.ip().expect("IP");
        match theirs.net.expect("IP") {
            NetSlice::Ipv4(p) => {
                let h = p.header();
                assert_eq!(ip.version, IpVersion::V4);
                assert_eq!(offset_of(h.slice()), ip.offset);
                assert_eq!(h.slice().len(), ip.header_len);
                assert_eq!(ip.offset + usize::from(h.total_len()), ip.end);
                assert_eq!(h.protocol().0, ip.protocol.0);
                assert_eq!(h.is_fragmenting_payload(), ip.fragmented);
                assert!(ours.ipv4().expect("view").verify_checksum());
            }
            NetSlice::Ipv6(p) => {
                assert_eq!(ip.version, IpVersion::V6);
                assert_eq!(offset_of(p.header().slice()), ip.offset);
                assert_eq!(p.header().next_header().0, ip.protocol.0);
                assert_eq!(ip.end, f.len());
            }
            NetSlice::Arp(_) => panic!("not built"),
        }
        let l4 = ours.l4().expect("L4");
        let pseudo = ours
            .pseudo_header(f.len() - l4.offset)
            .expect("pseudo-header");
        match theirs.transport.expect("L4") {
            TransportSlice::Tcp(t) => {
                let view = ours.tcp().expect("TCP view");
                assert_eq!(offset_of(t.slice()), l4.offset);
                assert_eq!(Some(t.header_len()), l4.header_len);
                assert_eq!(ours.ports(), Some((t.source_port(), t.destination_port())));
                assert_eq!(view.seq_number(), t.sequence_number());
                assert_eq!(view.flags().contains(TcpFlags::PSH), t.psh());
                assert_eq!(view.checksum(), t.checksum());
                assert!(view.verify_checksum(pseudo), "etherparse's checksum");
            }
            TransportSlice::Udp(u) => {
                let view = ours.udp().expect("UDP view");
                assert_eq!(offset_of(u.slice()), l4.offset);
                assert_eq!(ours.ports(), Some((u.source_port(), u.destination_port())));
                assert_eq!(view.length(), u.length());
                assert_ne!(view.checksum(), 0);
                assert!(view.verify_checksum(pseudo), "etherparse's checksum");
            }
            _ => panic!("not built"),
        }
    }
}
