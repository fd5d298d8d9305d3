use super::super::testing::ip;
use super::*;

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().expect("valid CIDR in test")
}

fn used(addrs: &[&str]) -> BTreeSet<u32> {
    addrs.iter().map(|a| ip(a)).collect()
}

#[test]
fn parses_and_displays() {
    let c = cidr("10.0.0.0/24");
    assert_eq!(c.network(), 0x0a00_0000);
    assert_eq!(c.prefix_len(), 24);
    assert_eq!(c.to_string(), "10.0.0.0/24");
    assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
    assert_eq!(cidr("10.1.2.3/32").to_string(), "10.1.2.3/32");
    assert_eq!(DEFAULT_POOL.to_string(), "10.128.0.0/9");
}

#[test]
fn parse_rejects_bad_syntax() {
    for bad in [
        "",
        "10.0.0.0",
        "10.0.0.0/",
        "/24",
        "10.0.0/24",
        "10.0.0.256/24",
        "10.0.0.0/+24",
        "10.0.0.0/-1",
        "10.0.0.0/24/1",
        "10.0.0.0/ 24",
        " 10.0.0.0/24",
        "10.0.0.0/0024",
        "fe80::/64",
        "ten/8",
    ] {
        let err = Ipv4Cidr::parse_as(bad, "subnet").expect_err(bad);
        assert!(matches!(err, CidrError::Syntax { .. }), "{bad}: {err:?}");
        assert!(err.to_string().starts_with("invalid subnet "), "{err}");
    }
}

#[test]
fn parse_rejects_prefix_above_32() {
    let err = Ipv4Cidr::parse_as("10.0.0.0/33", "subnet").expect_err("/33");
    assert_eq!(
        err.to_string(),
        "invalid subnet 10.0.0.0/33: the prefix length 33 is larger than 32"
    );
    assert!(matches!(
        Ipv4Cidr::parse_as("10.0.0.0/999", "subnet"),
        Err(CidrError::PrefixTooLong {
            prefix_len: 999,
            ..
        })
    ));
}

#[test]
fn parse_rejects_host_bits_with_a_hint() {
    let err = Ipv4Cidr::parse_as("10.0.0.1/24", "subnet").expect_err("host bits");
    assert_eq!(
        err.to_string(),
        "invalid subnet 10.0.0.1/24: host bits are set; did you mean 10.0.0.0/24?"
    );
    let err = Ipv4Cidr::parse_as("10.255.1.0/9", "ip range").expect_err("host bits");
    assert_eq!(
        err.to_string(),
        "invalid ip range 10.255.1.0/9: host bits are set; did you mean 10.128.0.0/9?"
    );
    assert!("1.0.0.0/0".parse::<Ipv4Cidr>().is_err());
}

#[test]
fn new_checks_like_parse() {
    assert_eq!(Ipv4Cidr::new(0x0a00_0000, 8), Ok(cidr("10.0.0.0/8")));
    assert!(matches!(
        Ipv4Cidr::new(0x0a00_0001, 8),
        Err(CidrError::HostBitsSet { .. })
    ));
    assert!(matches!(
        Ipv4Cidr::new(0, 33),
        Err(CidrError::PrefixTooLong { .. })
    ));
}

#[test]
fn proto_round_trip() {
    let c = cidr("192.168.4.0/22");
    let p: Cidr = c.into();
    assert_eq!(
        p,
        Cidr {
            addr: 0xc0a8_0400,
            prefix_len: 22
        }
    );
    assert_eq!(Ipv4Cidr::try_from(&p), Ok(c));
    let bad = Cidr {
        addr: 0xc0a8_0401,
        prefix_len: 22,
    };
    assert_eq!(
        Ipv4Cidr::from_proto(&bad, "subnet")
            .expect_err("host bits")
            .to_string(),
        "invalid subnet 192.168.4.1/22: host bits are set; did you mean 192.168.4.0/22?"
    );
    let bad = Cidr {
        addr: 0,
        prefix_len: u32::MAX,
    };
    assert!(matches!(
        Ipv4Cidr::try_from(&bad),
        Err(CidrError::PrefixTooLong { .. })
    ));
}

#[test]
fn network_broadcast_first_host_size() {
    let c = cidr("10.0.0.0/24");
    assert_eq!(c.mask(), 0xffff_ff00);
    assert_eq!(c.network(), ip("10.0.0.0"));
    assert_eq!(c.broadcast(), ip("10.0.0.255"));
    assert_eq!(c.first_host(), Some(ip("10.0.0.1")));
    assert_eq!(c.size(), 256);

    let all = cidr("0.0.0.0/0");
    assert_eq!(all.mask(), 0);
    assert_eq!(all.broadcast(), u32::MAX);
    assert_eq!(all.size(), 1 << 32);

    let p31 = cidr("10.0.0.4/31");
    assert_eq!(p31.broadcast(), ip("10.0.0.5"));
    assert_eq!(p31.first_host(), Some(ip("10.0.0.5")));
    assert_eq!(p31.size(), 2);

    let p32 = cidr("10.0.0.7/32");
    assert_eq!(p32.mask(), u32::MAX);
    assert_eq!(p32.broadcast(), ip("10.0.0.7"));
    assert_eq!(p32.first_host(), None);
    assert_eq!(p32.size(), 1);
}

#[test]
fn contains_and_overlaps() {
    let net = cidr("10.0.0.0/24");
    assert!(net.contains(ip("10.0.0.0")));
    assert!(net.contains(ip("10.0.0.255")));
    assert!(!net.contains(ip("10.0.1.0")));
    assert!(!net.contains(ip("9.255.255.255")));

    assert!(net.contains_cidr(cidr("10.0.0.128/25")));
    assert!(net.contains_cidr(net));
    assert!(!net.contains_cidr(cidr("10.0.0.0/23")));
    assert!(!net.contains_cidr(cidr("10.0.1.0/24")));

    assert!(net.overlaps(cidr("10.0.0.0/16")));
    assert!(cidr("10.0.0.0/16").overlaps(net));
    assert!(net.overlaps(cidr("10.0.0.200/32")));
    assert!(!net.overlaps(cidr("10.0.1.0/24")));
    assert!(cidr("0.0.0.0/0").overlaps(net));
}

#[test]
fn lowest_free_address_skips_network_gateway_and_used() {
    let net = cidr("10.0.0.0/24");
    let gw = ip("10.0.0.1");
    assert_eq!(
        lowest_free_address(net, net, gw, &used(&[])),
        Some(ip("10.0.0.2"))
    );
    assert_eq!(
        lowest_free_address(net, net, gw, &used(&["10.0.0.2", "10.0.0.3"])),
        Some(ip("10.0.0.4"))
    );
    // A hole is reused first.
    assert_eq!(
        lowest_free_address(net, net, gw, &used(&["10.0.0.2", "10.0.0.4"])),
        Some(ip("10.0.0.3"))
    );
    // A gateway elsewhere in the subnet leaves .1 free.
    assert_eq!(
        lowest_free_address(net, net, ip("10.0.0.254"), &used(&[])),
        Some(ip("10.0.0.1"))
    );
    // Used addresses outside the range do not matter.
    assert_eq!(
        lowest_free_address(net, net, gw, &used(&["10.0.1.2", "9.0.0.0"])),
        Some(ip("10.0.0.2"))
    );
}

#[test]
fn lowest_free_address_full_subnet() {
    let net = cidr("10.0.0.0/24");
    let gw = ip("10.0.0.1");
    let all: BTreeSet<u32> = (ip("10.0.0.2")..=ip("10.0.0.254")).collect();
    assert_eq!(lowest_free_address(net, net, gw, &all), None);
    let mut one_free = all.clone();
    one_free.remove(&ip("10.0.0.254"));
    assert_eq!(
        lowest_free_address(net, net, gw, &one_free),
        Some(ip("10.0.0.254"))
    );
}

#[test]
fn lowest_free_address_in_a_range() {
    let net = cidr("10.0.0.0/24");
    let gw = ip("10.0.0.1");
    let range = cidr("10.0.0.128/25");
    assert_eq!(
        lowest_free_address(net, range, gw, &used(&["10.0.0.2"])),
        Some(ip("10.0.0.128"))
    );
    // The range's last address is the subnet's broadcast address: never given.
    let top = cidr("10.0.0.254/31");
    assert_eq!(
        lowest_free_address(net, top, gw, &used(&[])),
        Some(ip("10.0.0.254"))
    );
    assert_eq!(
        lowest_free_address(net, top, gw, &used(&["10.0.0.254"])),
        None
    );
    // The range's first address is the subnet's network address, its second the gateway.
    let bottom = cidr("10.0.0.0/30");
    assert_eq!(
        lowest_free_address(net, bottom, gw, &used(&[])),
        Some(ip("10.0.0.2"))
    );
    assert_eq!(
        lowest_free_address(net, bottom, gw, &used(&["10.0.0.2", "10.0.0.3"])),
        None
    );
    // A one-address range.
    let one = cidr("10.0.0.77/32");
    assert_eq!(
        lowest_free_address(net, one, gw, &used(&[])),
        Some(ip("10.0.0.77"))
    );
    assert_eq!(
        lowest_free_address(net, one, gw, &used(&["10.0.0.77"])),
        None
    );
    // A range wider than the subnet is clipped to it.
    assert_eq!(
        lowest_free_address(net, cidr("10.0.0.0/16"), gw, &used(&[])),
        Some(ip("10.0.0.2"))
    );
    // A range outside the subnet yields nothing.
    assert_eq!(
        lowest_free_address(net, cidr("10.0.1.0/24"), gw, &used(&[])),
        None
    );
}

#[test]
fn lowest_free_address_small_subnets() {
    // /30: network, gateway, one endpoint, broadcast.
    let p30 = cidr("10.0.0.4/30");
    let gw = ip("10.0.0.5");
    assert_eq!(
        lowest_free_address(p30, p30, gw, &used(&[])),
        Some(ip("10.0.0.6"))
    );
    assert_eq!(
        lowest_free_address(p30, p30, gw, &used(&["10.0.0.6"])),
        None
    );
    // /31 and /32 have no address besides network and broadcast.
    let p31 = cidr("10.0.0.4/31");
    assert_eq!(
        lowest_free_address(p31, p31, ip("10.0.0.5"), &used(&[])),
        None
    );
    let p32 = cidr("10.0.0.4/32");
    assert_eq!(lowest_free_address(p32, p32, 0, &used(&[])), None);
}

#[test]
fn lowest_free_address_at_the_top_of_the_address_space() {
    // No overflow past 255.255.255.255.
    let net = cidr("255.255.255.0/24");
    let gw = ip("255.255.255.1");
    let all: BTreeSet<u32> = (ip("255.255.255.2")..=ip("255.255.255.254")).collect();
    assert_eq!(lowest_free_address(net, net, gw, &all), None);
    let big = cidr("0.0.0.0/0");
    assert_eq!(lowest_free_address(big, big, 1, &used(&[])), Some(2));
}

#[test]
fn lowest_free_address_in_a_huge_full_range_is_fast() {
    // A /8 with its first 100 000 addresses taken: answered without walking 16M addresses.
    let net = cidr("10.0.0.0/8");
    let taken: BTreeSet<u32> = (ip("10.0.0.2")..ip("10.0.0.2") + 100_000).collect();
    assert_eq!(
        lowest_free_address(net, net, ip("10.0.0.1"), &taken),
        Some(ip("10.0.0.2") + 100_000)
    );
}

#[test]
fn lowest_free_subnet_from_the_default_pool() {
    let none: [Ipv4Cidr; 0] = [];
    assert_eq!(
        lowest_free_subnet(DEFAULT_POOL, DEFAULT_SUBNET_PREFIX, none),
        Some(cidr("10.128.0.0/24"))
    );
    assert_eq!(
        lowest_free_subnet(DEFAULT_POOL, 24, [cidr("10.128.0.0/24")]),
        Some(cidr("10.128.1.0/24"))
    );
    // A hole is reused first; order of `taken` does not matter.
    assert_eq!(
        lowest_free_subnet(
            DEFAULT_POOL,
            24,
            [cidr("10.128.2.0/24"), cidr("10.128.0.0/24")]
        ),
        Some(cidr("10.128.1.0/24"))
    );
}

#[test]
fn lowest_free_subnet_avoids_odd_sized_neighbours() {
    // A /25 in the middle of the first /24, a /16 covering the start, a /8 outside.
    assert_eq!(
        lowest_free_subnet(DEFAULT_POOL, 24, [cidr("10.128.0.128/25")]),
        Some(cidr("10.128.1.0/24"))
    );
    assert_eq!(
        lowest_free_subnet(
            DEFAULT_POOL,
            24,
            [
                cidr("10.128.0.0/16"),
                cidr("10.129.0.0/24"),
                cidr("192.168.0.0/16")
            ]
        ),
        Some(cidr("10.129.1.0/24"))
    );
    // Nested and duplicate taken prefixes.
    assert_eq!(
        lowest_free_subnet(
            DEFAULT_POOL,
            24,
            [
                cidr("10.128.0.0/22"),
                cidr("10.128.1.0/24"),
                cidr("10.128.0.0/22"),
                cidr("10.128.4.0/24")
            ]
        ),
        Some(cidr("10.128.5.0/24"))
    );
    // A supernet of the whole pool leaves nothing.
    assert_eq!(
        lowest_free_subnet(DEFAULT_POOL, 24, [cidr("10.0.0.0/8")]),
        None
    );
}

#[test]
fn lowest_free_subnet_last_and_exhausted() {
    let all_but_last: Vec<Ipv4Cidr> = (0..32767u32)
        .map(|i| Ipv4Cidr::new(0x0a80_0000 + (i << 8), 24).expect("aligned /24"))
        .collect();
    assert_eq!(
        lowest_free_subnet(DEFAULT_POOL, 24, all_but_last.iter().copied()),
        Some(cidr("10.255.255.0/24"))
    );
    let mut all = all_but_last;
    all.push(cidr("10.255.255.0/24"));
    assert_eq!(lowest_free_subnet(DEFAULT_POOL, 24, all), None);
}

#[test]
fn lowest_free_subnet_rejects_impossible_sizes() {
    let none: [Ipv4Cidr; 0] = [];
    assert_eq!(lowest_free_subnet(DEFAULT_POOL, 8, none), None);
    assert_eq!(lowest_free_subnet(DEFAULT_POOL, 33, none), None);
    assert_eq!(
        lowest_free_subnet(DEFAULT_POOL, 9, none),
        Some(DEFAULT_POOL)
    );
    // At the very top of the address space: no overflow.
    assert_eq!(
        lowest_free_subnet(cidr("255.255.255.0/24"), 25, [cidr("255.255.255.0/25")]),
        Some(cidr("255.255.255.128/25"))
    );
    assert_eq!(
        lowest_free_subnet(
            cidr("255.255.255.0/24"),
            25,
            [cidr("255.255.255.128/25"), cidr("255.255.255.0/25")]
        ),
        None
    );
}
