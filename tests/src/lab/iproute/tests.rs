use super::*;

#[test]
fn link_names() {
    let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n\
                7: eth0@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue\n";
    assert_eq!(parse_link_names(text), vec!["lo", "eth0"]);
}

#[test]
fn flags_of_a_link() {
    let up = "2: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue";
    assert!(link_flags(up).iter().any(|f| f == "UP"));
    let down = "2: eth0@if5: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN";
    assert!(!link_flags(down).iter().any(|f| f == "UP"));
    assert!(link_flags("garbage").is_empty());
}

#[test]
fn ipv4_addrs_from_ip_o() {
    let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                12: eth0    inet 10.128.0.2/24 brd 10.128.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n";
    let a = parse_ipv4_addrs(text).expect("parses");
    assert_eq!(
        a,
        vec![
            ("lo".to_string(), Ipv4Addr::new(127, 0, 0, 1), 8),
            ("eth0".to_string(), Ipv4Addr::new(10, 128, 0, 2), 24)
        ]
    );
    assert!(parse_ipv4_addrs("").expect("empty is fine").is_empty());
    assert!(parse_ipv4_addrs("2: eth0 link/ether").is_err());
}

#[test]
fn neighbour_entries() {
    assert_eq!(
        neighbour_lladdr("10.10.0.3 dev eth0 lladdr 02:42:0a:0a:00:03 REACHABLE\n").as_deref(),
        Some("02:42:0a:0a:00:03")
    );
    assert_eq!(neighbour_lladdr("10.10.0.3 dev eth0 FAILED\n"), None);
    assert_eq!(neighbour_lladdr(""), None);
}
