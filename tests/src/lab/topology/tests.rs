use super::*;

#[test]
fn host_addresses() {
    assert_eq!(host_addr(0), Ipv4Addr::new(198, 18, 0, 10));
    assert_eq!(host_addr(3), Ipv4Addr::new(198, 18, 0, 13));
}

#[test]
fn cidr_split() {
    assert_eq!(
        split_cidr("10.10.0.3/24").expect("valid"),
        (Ipv4Addr::new(10, 10, 0, 3), 24)
    );
    assert!(split_cidr("10.10.0.3").is_err());
    assert!(split_cidr("10.10.0.3/33").is_err());
}

#[test]
fn subnets() {
    let ip = Ipv4Addr::new(10, 128, 0, 7);
    assert!(in_subnet(ip, "10.128.0.0/24").expect("valid"));
    assert!(!in_subnet(ip, "10.128.1.0/24").expect("valid"));
    assert!(in_subnet(ip, "0.0.0.0/0").expect("valid"));
    assert!(in_subnet(ip, "10.128.0.7/32").expect("valid"));
    assert!(in_subnet(ip, "bad").is_err());
}

#[test]
fn prefix_fits_interface_name_limits() {
    // vl + pid (at most 7 digits) + x + counter: namespaces stay short enough to read, and
    // interface names never include the prefix at all.
    let prefix = prefix_of(4_194_304, 999);
    assert!(prefix.len() <= 15, "{prefix}");
}

#[test]
fn owners_are_read_off_lab_names_only() {
    let prefix = prefix_of(4242, 7);
    assert_eq!(
        owner_of(&format!("{prefix}-h0")),
        Some((prefix.as_str(), 4242))
    );
    assert_eq!(
        owner_of(&underlay_ns(&prefix)),
        Some((prefix.as_str(), 4242))
    );
    assert_eq!(owner_of("vlan5"), None);
    assert_eq!(owner_of("blue-h0"), None);
    assert_eq!(owner_of("vlx1-h0"), None);
}
