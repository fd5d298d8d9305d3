//! The typed wire views on arbitrary bytes: VXLAN, Ethernet, ARP, IPv4, IPv6, TCP, UDP, the
//! `virtio_net_hdr` and the one-pass [`FrameHeaders`].
//!
//! Checks:
//! - `new_checked` (and `VirtioNetHdr::parse`, `FrameHeaders::parse`) never panics, and every
//!   accessor of a view it accepted never panics;
//! - what can be emitted again is emitted as it came: a VXLAN header from its VNI, a
//!   `virtio_net_hdr` from its fields, an ARP reply that parses as the answer to its request;
//! - a filled-in IPv4 header checksum verifies, by the view and by an independent RFC 1071 sum;
//! - `FrameHeaders` agrees with the views taken one by one, and the offsets it records lie
//!   inside the frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vxnet_dataplane::wire::{
    emit_arp_reply, flow_hash, ArpOperation, ArpPacket, EtherType, EthernetFrame, FrameHeaders,
    IpVersion, Ipv4Packet, Ipv6Packet, MacAddr, TcpPacket, UdpPacket, VirtioNetHdr, VxlanHeader,
    VxlanPacket, ETHERNET_HEADER_LEN, VNET_HDR_LEN, VXLAN_HEADER_LEN,
};
use vxnet_fuzz::{ones_fold, ones_sum};

fuzz_target!(|data: &[u8]| {
    vxlan(data);
    ethernet_and_arp(data);
    // The same bytes as an IP packet (as the payload of an Ethernet frame would be viewed).
    ipv4(data);
    ipv6(data);
    l4(data);
    vnet_hdr(data);
    frame_headers(data);
    // And as a VXLAN datagram's inner frame, the way the receive path sees one.
    if let Ok(v) = VxlanPacket::new_checked(data) {
        frame_headers(v.payload());
    }
});

fn vxlan(data: &[u8]) {
    let Ok(v) = VxlanPacket::new_checked(data) else {
        return;
    };
    let vni = v.vni();
    assert_eq!(v.payload().len(), data.len() - VXLAN_HEADER_LEN);
    // The check admits exactly the header vxnet emits: flags word fixed, last byte zero.
    assert_eq!(VxlanHeader { vni }.to_bytes()[..], data[..VXLAN_HEADER_LEN]);
    assert_eq!(v.into_payload(), &data[VXLAN_HEADER_LEN..]);
}

fn ethernet_and_arp(data: &[u8]) {
    let Ok(eth) = EthernetFrame::new_checked(data) else {
        assert!(data.len() < ETHERNET_HEADER_LEN);
        return;
    };
    let (_, _, ethertype) = (eth.dst(), eth.src(), eth.ethertype());
    assert_eq!(ethertype.0, u16::from_be_bytes([data[12], data[13]]));
    let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
        return;
    };
    let op = arp.operation();
    let (smac, sip, _, tip) = (
        arp.sender_mac(),
        arp.sender_ip(),
        arp.target_mac(),
        arp.target_ip(),
    );
    let answer = MacAddr([0x02, 0x42, 10, 10, 0, 7]);
    let mut buf = [0u8; 64];
    let len = emit_arp_reply(&arp, answer, &mut buf).expect("64 bytes hold an ARP reply");
    let reply = EthernetFrame::new_checked(&buf[..len]).expect("emitted");
    assert_eq!(reply.ethertype(), EtherType::ARP);
    assert_eq!((reply.dst(), reply.src()), (smac, answer));
    let r = ArpPacket::new_checked(reply.payload()).expect("emitted reply parses");
    assert_eq!(r.operation(), ArpOperation::Reply);
    assert_eq!((r.sender_mac(), r.sender_ip()), (answer, tip));
    assert_eq!((r.target_mac(), r.target_ip()), (smac, sip));
    assert_eq!(emit_arp_reply(&arp, answer, &mut buf[..len - 1]), None);
    let _ = op;
}

fn ipv4(data: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.version(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    );
    let header = p.header();
    assert!(header.len() >= 20 && header.len() <= data.len());
    let independent_ok = ones_fold(ones_sum(header)) == 0xffff;
    assert_eq!(p.verify_checksum(), independent_ok);
    assert!(p.payload().len() <= data.len() - header.len());
    // Filling the checksum in makes it verify, by the view and independently.
    let mut copy = data.to_vec();
    let mut q = Ipv4Packet::new_checked(&mut copy[..]).expect("same bytes");
    q.fill_checksum();
    assert!(q.verify_checksum());
    let hl = q.header_len();
    assert_eq!(ones_fold(ones_sum(&copy[..hl])), 0xffff);
    assert_eq!(copy[..10], data[..10]);
    assert_eq!(copy[12..], data[12..]);
}

fn ipv6(data: &[u8]) {
    let Ok(p) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.version(),
        p.payload_len(),
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
    );
    assert!(p.payload().len() <= data.len() - 40);
}

fn l4(data: &[u8]) {
    if let Ok(t) = TcpPacket::new_checked(data) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.seq_number(),
            t.ack_number(),
            t.flags(),
            t.window_len(),
            t.checksum(),
            t.verify_checksum(0),
            t.verify_checksum(u64::from(u32::MAX)),
        );
        assert!(t.header_len() >= 20 && t.header_len() <= data.len());
        assert_eq!(t.payload().len(), data.len() - t.header_len());
        let mut copy = data.to_vec();
        let pseudo = 0x1234_5678;
        let mut t = TcpPacket::new_checked(&mut copy[..]).expect("same bytes");
        t.fill_checksum(pseudo);
        assert!(t.verify_checksum(pseudo));
        assert_eq!(ones_fold(pseudo + ones_sum(&copy)), 0xffff);
    }
    if let Ok(u) = UdpPacket::new_checked(data) {
        let _ = (
            u.src_port(),
            u.dst_port(),
            u.length(),
            u.checksum(),
            u.verify_checksum(0),
            u.payload(),
        );
    }
}

fn vnet_hdr(data: &[u8]) {
    let Ok(h) = VirtioNetHdr::parse(data) else {
        return;
    };
    let _ = h.needs_csum();
    // Every field is kept, so the bytes come back as they were, and parse again the same.
    assert_eq!(h.to_bytes()[..], data[..VNET_HDR_LEN]);
    assert_eq!(VirtioNetHdr::parse(&h.to_bytes()), Ok(h));
}

fn frame_headers(frame: &[u8]) {
    let h = FrameHeaders::parse(frame);
    assert_eq!(h.frame().len(), frame.len());
    let _ = flow_hash(&h);
    let _ = h.ports();
    match h.ethernet() {
        Ok(eth) => {
            assert_eq!(Some(eth.ethertype()), h.ethertype());
            let _ = (eth.src(), eth.dst(), eth.payload());
        }
        Err(_) => {
            assert!(frame.len() < ETHERNET_HEADER_LEN);
            assert!(h.ip().is_none() && h.l4().is_none());
            return;
        }
    }
    let inner = &frame[ETHERNET_HEADER_LEN..];
    // The one parse agrees with the views taken one by one.
    let v4 = h.ethertype() == Some(EtherType::IPV4) && Ipv4Packet::new_checked(inner).is_ok();
    let v6 = h.ethertype() == Some(EtherType::IPV6) && Ipv6Packet::new_checked(inner).is_ok();
    assert_eq!(h.ipv4().is_some(), v4);
    assert_eq!(h.ipv6().is_some(), v6);
    let Some(ip) = h.ip() else {
        assert!(h.l4().is_none());
        return;
    };
    assert_eq!(ip.offset, ETHERNET_HEADER_LEN);
    assert!(ip.payload_offset() <= frame.len());
    assert_eq!(ip.version == IpVersion::V4, v4);
    let _ = h.pseudo_header(usize::from(u16::MAX));
    if let Some(p) = h.ipv4() {
        let _ = (
            p.payload(),
            p.verify_checksum(),
            p.src_addr(),
            p.total_len(),
        );
    }
    if let Some(p) = h.ipv6() {
        let _ = (p.payload(), p.src_addr(), p.payload_len());
    }
    if let Some(l4) = h.l4() {
        assert_eq!(l4.offset, ip.payload_offset());
        assert!(l4.offset + 4 <= frame.len());
        if let Some(len) = l4.header_len {
            assert!(l4.offset + len <= frame.len());
        }
        assert!(h.ports().is_some());
    }
    if let Some(t) = h.tcp() {
        let _ = (t.payload(), t.flags(), t.seq_number(), t.header_len());
        let pseudo = h
            .pseudo_header(t.payload().len() + t.header_len())
            .expect("IP is there");
        let _ = t.verify_checksum(pseudo);
    }
    if let Some(u) = h.udp() {
        let _ = (u.payload(), u.length());
    }
}
