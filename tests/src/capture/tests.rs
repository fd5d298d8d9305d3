use super::*;

fn line(values: &[&str]) -> String {
    values.join("\t")
}

#[test]
fn parses_vxlan_arp_frame() {
    let l = line(&[
        "7",
        "92",
        "eth:ethertype:ip:udp:vxlan:eth:ethertype:arp",
        "aa:aa:aa:aa:aa:aa,02:42:0a:0a:00:02",
        "bb:bb:bb:bb:bb:bb,ff:ff:ff:ff:ff:ff",
        "198.18.0.10",
        "198.18.0.11",
        "51234",
        "4789",
        "0x0800",
        "4100",
        "1",
        "10.10.0.2",
        "10.10.0.3",
        "",
        "",
    ]);
    let f = Frame::parse_tshark_line(&l).expect("well-formed line");
    assert!(f.is_vxlan());
    assert_eq!(f.vni(), Some(4100));
    assert_eq!(f.vxlan_flags(), Some(0x0800));
    assert_eq!(f.inner_src(), None, "inner ARP has no IPv4 header");
    assert_eq!(f.udp_dst_port(), Some(4789));
    assert_eq!(f.overlay_arp_opcode(), Some(1));
    assert_eq!(f.arp_sender_ip(), Some(Ipv4Addr::new(10, 10, 0, 2)));
    assert_eq!(f.outer_src(), Some(Ipv4Addr::new(198, 18, 0, 10)));
    assert_eq!(f.get("eth.src").len(), 2);
    assert_eq!(f.icmp_type(), None);
}

#[test]
fn parses_vxlan_icmp_frame_inner_addresses() {
    let l = line(&[
        "3",
        "148",
        "eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp:data",
        "a,b",
        "c,d",
        "198.18.0.11,10.10.0.3",
        "198.18.0.10,10.10.0.2",
        "40000",
        "4789",
        "0x08",
        "4100",
        "",
        "",
        "",
        "0",
        "0x0000",
    ]);
    let f = Frame::parse_tshark_line(&l).expect("well-formed line");
    assert_eq!(f.udp_checksum(), Some(0));
    assert_eq!(f.outer_src(), Some(Ipv4Addr::new(198, 18, 0, 11)));
    assert_eq!(f.inner_src(), Some(Ipv4Addr::new(10, 10, 0, 3)));
    assert_eq!(f.inner_dst(), Some(Ipv4Addr::new(10, 10, 0, 2)));
    assert_eq!(f.icmp_type(), Some(0));
    assert_eq!(f.arp_opcode(), None);
}

#[test]
fn underlay_arp_is_not_overlay_arp() {
    let mut v = vec![""; FIELDS.len()];
    v[2] = "eth:ethertype:arp";
    v[11] = "1";
    let f = Frame::parse_tshark_line(&line(&v)).expect("well-formed line");
    assert_eq!(f.arp_opcode(), Some(1));
    assert_eq!(f.overlay_arp_opcode(), None);
    assert!(!f.is_vxlan());
}

#[test]
fn wrong_field_count_is_an_error() {
    assert!(Frame::parse_tshark_line("1\t2").is_err());
}
