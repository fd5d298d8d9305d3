use super::*;

#[test]
fn vxlan_header_layout() {
    assert_eq!(vxlan_header(4100), [0x08, 0, 0, 0, 0x00, 0x10, 0x04, 0]);
    assert_eq!(vxlan_header(0x00ab_cdef), [8, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
}

#[test]
fn arp_request_layout() {
    let mac = mac_for_ip(Ipv4Addr::new(10, 10, 0, 2));
    let f = arp_request(
        mac,
        Ipv4Addr::new(10, 10, 0, 2),
        Ipv4Addr::new(10, 10, 0, 3),
    );
    assert_eq!(f.len(), 42);
    assert_eq!(&f[0..6], &BROADCAST);
    assert_eq!(&f[6..12], &mac);
    assert_eq!(&f[12..14], &[0x08, 0x06]);
    assert_eq!(&f[20..22], &[0, 1]);
    assert_eq!(&f[38..42], &[10, 10, 0, 3]);
}

#[test]
fn mac_round_trip() {
    let mac = mac_for_ip(Ipv4Addr::new(10, 10, 0, 3));
    assert_eq!(format_mac(mac), "02:42:0a:0a:00:03");
    assert_eq!(
        mac_string_for_ip(Ipv4Addr::new(10, 128, 0, 3)),
        "02:42:0a:80:00:03"
    );
    assert_eq!(parse_mac("02:42:0A:0a:00:03").expect("valid"), mac);
    assert!(parse_mac("02:42:0a:0a:00").is_err());
    assert!(parse_mac("02:42:0a:0a:00:3").is_err());
    assert!(parse_mac("zz:42:0a:0a:00:03").is_err());
}

#[test]
fn icmp_echo_checksums_verify() {
    let a = Ipv4Addr::new(10, 10, 0, 2);
    let b = Ipv4Addr::new(10, 10, 0, 3);
    let f = icmp_echo_frame((mac_for_ip(a), a), (mac_for_ip(b), b), 0x5150, 7);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    assert_eq!(internet_checksum(&f[14..34]), 0, "IPv4 header");
    assert_eq!(internet_checksum(&f[34..]), 0, "ICMP");
    assert_eq!(&f[26..30], &a.octets());
    assert_eq!(&f[38..40], &[0x51, 0x50]);
}

#[test]
fn gratuitous_arp_layout() {
    let ip = Ipv4Addr::new(10, 10, 0, 9);
    let mac = mac_for_ip(Ipv4Addr::new(10, 10, 0, 2));
    let f = arp_frame(BROADCAST, 1, (mac, ip), ([0; 6], ip));
    assert_eq!(f.len(), 42);
    assert_eq!(&f[28..32], &ip.octets());
    assert_eq!(&f[38..42], &ip.octets());
}
