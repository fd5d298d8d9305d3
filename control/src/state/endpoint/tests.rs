use std::net::Ipv4Addr;
use std::str::FromStr;

use vxnet_proto::{command, Endpoint, UpdateEndpoint};

use super::super::testing::{
    cidr, connect, connected, create, created, disconnect, id, ip, machine, machine_with_net1, ok,
    refuse, wrap,
};
use super::super::{Applied, InvalidState, Refusal};

#[test]
fn connect_allocates_lowest_addresses_and_macs() {
    let mut m = machine_with_net1();
    let c1 = connected(&mut m, connect(10, 1, "c1").aliases(&["web", "www"]));
    assert_eq!(
        c1,
        Endpoint {
            id: id(10),
            name: "c1".into(),
            network_id: id(1),
            host_id: "h1".into(),
            mac: vec![0x02, 0x42, 10, 0, 0, 2],
            ipv4: ip("10.0.0.2"),
            aliases: vec!["web".into(), "www".into()],
            ifname: "eth0".into(),
            target: "/run/netns/c1".into(),
            ports: Vec::new(),
        }
    );
    let c2 = connected(&mut m, connect(11, 1, "c2").host("h2"));
    assert_eq!(c2.ipv4, ip("10.0.0.3"));
    assert_eq!(c2.mac, vec![0x02, 0x42, 10, 0, 0, 3]);
    assert_eq!(m.endpoints(&id(1)), vec![&c1, &c2]);
}

#[test]
fn connect_with_explicit_address() {
    let mut m = machine_with_net1();
    let c1 = connected(&mut m, connect(10, 1, "c1").ipv4(ip("10.0.0.2")));
    assert_eq!(c1.ipv4, ip("10.0.0.2"));
    let c2 = connected(&mut m, connect(11, 1, "c2").ipv4(ip("10.0.0.254")));
    assert_eq!(c2.mac, vec![0x02, 0x42, 10, 0, 0, 254]);
    // Allocation skips explicit addresses.
    assert_eq!(connected(&mut m, connect(12, 1, "c3")).ipv4, ip("10.0.0.3"));
}

#[test]
fn connect_allocates_from_the_ip_range() {
    let mut m = machine();
    created(
        &mut m,
        create("net1", 1)
            .subnet("10.0.0.0/24")
            .ip_range("10.0.0.252/30"),
    );
    assert_eq!(
        connected(&mut m, connect(10, 1, "c1")).ipv4,
        ip("10.0.0.252")
    );
    assert_eq!(
        connected(&mut m, connect(11, 1, "c2")).ipv4,
        ip("10.0.0.253")
    );
    assert_eq!(
        connected(&mut m, connect(12, 1, "c3")).ipv4,
        ip("10.0.0.254")
    );
    // .255 is the broadcast address: the range is full.
    let r = refuse(&mut m, connect(13, 1, "c4"));
    assert_eq!(
        r.to_string(),
        "network net1 has no free address left in 10.0.0.252/30; disconnect an endpoint first"
    );
    assert_eq!(r.exit_code(), 1);
    // An explicit address outside the range but inside the subnet is fine.
    assert_eq!(
        connected(&mut m, connect(13, 1, "c4").ipv4(ip("10.0.0.9"))).ipv4,
        ip("10.0.0.9")
    );
}

#[test]
fn connect_refuses_a_corrupt_stored_ip_range_rather_than_widening_it() {
    let mut m = machine();
    created(
        &mut m,
        create("net1", 1)
            .subnet("10.0.0.0/24")
            .ip_range("10.0.0.252/30"),
    );
    for (range, why) in [
        (
            "10.0.0.253/30",
            "invalid ip range 10.0.0.253/30: host bits are set; did you mean 10.0.0.252/30?",
        ),
        (
            "10.0.1.0/30",
            "ip range 10.0.1.0/30 is outside subnet 10.0.0.0/24",
        ),
    ] {
        m.state.networks[0].ip_range = Some(cidr(range));
        let r = refuse(&mut m, connect(10, 1, "c1"));
        assert_eq!(
            r,
            Refusal::Inconsistent(InvalidState(format!("network net1: {why}")))
        );
        assert_eq!(
            r.to_string(),
            format!(
                "inconsistent state: network net1: {why}; this is a bug in vxnet, please report it"
            )
        );
        assert_eq!(r.exit_code(), 1);
    }
}

#[test]
fn connect_refuses_when_the_subnet_is_full() {
    let mut m = machine();
    created(&mut m, create("tiny", 1).subnet("10.0.0.4/30"));
    assert_eq!(connected(&mut m, connect(10, 1, "c1")).ipv4, ip("10.0.0.6"));
    let r = refuse(&mut m, connect(11, 1, "c2"));
    assert_eq!(
        r,
        Refusal::NoFreeAddress {
            network: "tiny".into(),
            range: "10.0.0.4/30".parse().expect("cidr")
        }
    );
}

#[test]
fn disconnect_frees_the_address_for_reuse() {
    let mut m = machine_with_net1();
    connected(&mut m, connect(10, 1, "c1"));
    let c2 = connected(&mut m, connect(11, 1, "c2"));
    connected(&mut m, connect(12, 1, "c3"));
    assert_eq!(
        ok(&mut m, disconnect(11)),
        Applied::Disconnected(c2.clone())
    );
    assert!(m.endpoint(&id(11)).is_none());
    // The freed address is the lowest free one; the target and name may come back.
    let again = connected(&mut m, connect(13, 1, "c2"));
    assert_eq!(again.ipv4, c2.ipv4);
    assert_eq!(again.mac, c2.mac);
    // An explicit request for a freed address works too.
    ok(&mut m, disconnect(13));
    let explicit = connected(&mut m, connect(14, 1, "c9").ipv4(c2.ipv4));
    assert_eq!(explicit.ipv4, c2.ipv4);
}

#[test]
fn disconnect_refuses_unknown_endpoints() {
    let mut m = machine_with_net1();
    let r = refuse(&mut m, disconnect(10));
    assert_eq!(r, Refusal::NoSuchEndpoint { id: id(10) });
    assert_eq!(r.exit_code(), 1);
    connected(&mut m, connect(10, 1, "c1"));
    ok(&mut m, disconnect(10));
    refuse(&mut m, disconnect(10));
}

#[test]
fn connect_refuses_malformed_arguments() {
    let mut m = machine_with_net1();
    let r = refuse(&mut m, connect(0, 1, "c1").endpoint_id("e1"));
    assert_eq!(
        r,
        Refusal::InvalidId {
            what: "endpoint",
            id: "e1".into()
        }
    );
    assert_eq!(r.exit_code(), 2);

    let r = refuse(&mut m, connect(10, 1, "c1").name(""));
    assert_eq!(r, Refusal::EmptyEndpointName);
    assert_eq!(r.exit_code(), 2);

    let r = refuse(&mut m, connect(10, 1, "c1").target(""));
    assert_eq!(r, Refusal::EmptyTarget);
    assert_eq!(r.exit_code(), 2);

    for bad in [
        "",
        ".",
        "..",
        "eth/0",
        "eth:0",
        "eth 0",
        "eth\t0",
        "sixteen_chars_xx",
    ] {
        let r = refuse(&mut m, connect(10, 1, "c1").ifname(bad));
        assert_eq!(r, Refusal::InvalidIfname { ifname: bad.into() });
        assert_eq!(r.exit_code(), 2);
    }
    connected(&mut m, connect(10, 1, "c1").ifname("fifteen_chars_x"));
}

#[test]
fn connect_refuses_unknown_network_and_host() {
    let mut m = machine_with_net1();
    let r = refuse(&mut m, connect(10, 9, "c1"));
    assert_eq!(r, Refusal::NoSuchNetwork { network: id(9) });
    assert_eq!(r.exit_code(), 1);

    let r = refuse(&mut m, connect(10, 1, "c1").host("h9"));
    assert_eq!(
        r.to_string(),
        "host h9 is not a member of the cluster; its daemon must register it before \
         endpoints can be connected there"
    );
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn connect_refuses_reserved_and_outside_addresses() {
    let mut m = machine_with_net1();
    let with_ip = |addr: &str| connect(10, 1, "c1").ipv4(ip(addr));
    let r = refuse(&mut m, with_ip("10.0.1.5"));
    assert_eq!(
        r.to_string(),
        "address 10.0.1.5 is outside subnet 10.0.0.0/24 of network net1; pick an address inside it"
    );
    assert_eq!(r.exit_code(), 1);
    for (addr, role) in [
        ("10.0.0.0", "network address"),
        ("10.0.0.255", "broadcast address"),
        ("10.0.0.1", "gateway"),
    ] {
        let r = refuse(&mut m, with_ip(addr));
        assert_eq!(
            r,
            Refusal::AddressReserved {
                addr: Ipv4Addr::from_str(addr).expect("ip"),
                network: "net1".into(),
                role
            }
        );
        assert_eq!(r.exit_code(), 1);
    }
    assert_eq!(
        refuse(&mut m, with_ip("10.0.0.1")).to_string(),
        "address 10.0.0.1 is the gateway of network net1; pick another address"
    );
}

#[test]
fn connect_refuses_an_address_in_use() {
    let mut m = machine_with_net1();
    connected(&mut m, connect(10, 1, "c1").ipv4(ip("10.0.0.5")));
    let r = refuse(&mut m, connect(11, 1, "c2").ipv4(ip("10.0.0.5")).host("h2"));
    assert_eq!(
        r.to_string(),
        "address 10.0.0.5 is already in use by c1 on network net1; pick another address \
         or leave --ip out"
    );
    assert_eq!(r.exit_code(), 1);
    // The same address on another network (an overlapping subnet) is fine.
    created(&mut m, create("net2", 2).subnet("10.0.0.0/24"));
    connected(&mut m, connect(11, 2, "c2").ipv4(ip("10.0.0.5")));
}

#[test]
fn connect_refuses_duplicate_ids_names_and_targets() {
    let mut m = machine_with_net1();
    connected(&mut m, connect(10, 1, "c1"));

    let r = refuse(&mut m, connect(10, 1, "c2"));
    assert_eq!(r, Refusal::EndpointIdInUse { id: id(10) });
    assert_eq!(r.exit_code(), 1);

    let r = refuse(&mut m, connect(11, 1, "c1").name("other"));
    assert_eq!(
        r.to_string(),
        "/run/netns/c1 is already connected to network net1 as c1; disconnect it first"
    );
    assert_eq!(r.exit_code(), 1);

    let r = refuse(&mut m, connect(11, 1, "c1").target("/run/netns/x"));
    assert_eq!(
        r.to_string(),
        "endpoint name c1 is already in use on network net1; pass --name to choose another"
    );
    assert_eq!(r.exit_code(), 1);

    // The same target path on another host is another namespace.
    connected(&mut m, connect(11, 1, "c1").host("h2").name("c1-h2"));
}

#[test]
fn connect_refuses_overlapping_subnets_and_reused_ifnames_in_one_namespace() {
    let mut m = machine_with_net1();
    created(&mut m, create("wide", 2).subnet("10.0.0.0/16"));
    created(&mut m, create("other", 3).subnet("10.9.0.0/24"));
    connected(&mut m, connect(10, 1, "c1"));

    let r = refuse(&mut m, connect(11, 2, "c1").ifname("eth1"));
    assert_eq!(
        r.to_string(),
        "/run/netns/c1 is already connected to network net1, whose subnet 10.0.0.0/24 \
         overlaps subnet 10.0.0.0/16 of network wide; disconnect it from net1 first"
    );
    assert_eq!(r.exit_code(), 1);

    let r = refuse(&mut m, connect(11, 3, "c1"));
    assert_eq!(
        r.to_string(),
        "interface eth0 of /run/netns/c1 is already used by network net1; pick another --ifname"
    );
    assert_eq!(r.exit_code(), 1);

    connected(&mut m, connect(11, 3, "c1").ifname("eth1"));
    // Another namespace may join the overlapping network; so may c1 on another host.
    connected(&mut m, connect(12, 2, "c2"));
    connected(&mut m, connect(13, 2, "c1").host("h2"));
    // Once c1 leaves net1, it may join the overlapping network.
    ok(&mut m, disconnect(10));
    connected(&mut m, connect(14, 2, "c1").name("c1-again"));
}

#[test]
fn published_ports_are_kept_and_a_host_port_is_taken_once_per_protocol_per_host() {
    let mut m = machine_with_net1();
    created(&mut m, create("net2", 2).subnet("10.1.0.0/24"));
    let web = connected(
        &mut m,
        connect(10, 1, "web").publish(&["8080:80", "53:53/udp"]),
    );
    assert_eq!(
        web.ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["0.0.0.0:8080:80/tcp", "0.0.0.0:53:53/udp"]
    );
    // The same host port on the same host, from any network or address: refused.
    for taken in [
        connect(11, 1, "a").publish(&["8080:81"]),
        connect(11, 2, "a").publish(&["10.9.9.9:8080:80"]),
        connect(11, 2, "a").publish(&["53:5353/udp"]),
    ] {
        let r = refuse(&mut m, taken);
        assert!(
            matches!(r, Refusal::HostPortInUse { ref endpoint, .. } if endpoint == "web"),
            "{r}"
        );
        assert_eq!(r.exit_code(), 1);
    }
    // Another protocol, another port, or another host: fine.
    connected(&mut m, connect(11, 2, "a").publish(&["8080:80/udp"]));
    connected(&mut m, connect(12, 2, "b").publish(&["8081:80"]));
    connected(&mut m, connect(13, 1, "c").host("h2").publish(&["8080:80"]));
    // Gone with its endpoint: the port is free again.
    ok(&mut m, disconnect(10));
    connected(&mut m, connect(14, 1, "d").publish(&["8080:80"]));
}

#[test]
fn bad_published_ports_are_refused() {
    let mut m = machine_with_net1();
    created(&mut m, create("inside", 2).subnet("10.1.0.0/24").internal());
    let r = refuse(&mut m, connect(10, 2, "a").publish(&["8080:80"]));
    assert!(matches!(r, Refusal::PublishOnInternal { .. }), "{r}");
    let r = refuse(&mut m, connect(10, 1, "a").publish(&["8080:80", "8080:81"]));
    assert!(matches!(r, Refusal::InvalidPort { .. }), "{r}");
    assert_eq!(r.exit_code(), 2);
    let mut zero = vxnet_proto::PortMapping::parse("8080:80").expect("mapping");
    zero.container_port = 0;
    let mut big = zero;
    (big.container_port, big.host_port) = (80, 70_000);
    let mut proto = zero;
    (proto.container_port, proto.protocol) = (80, 7);
    for bad in [zero, big, proto] {
        let r = refuse(&mut m, connect(10, 1, "a").raw_ports(vec![bad]));
        assert!(matches!(r, Refusal::InvalidPort { .. }), "{bad:?}: {r}");
    }
}

#[test]
fn update_renames_realiases_and_republishes_with_the_connect_checks() {
    let mut m = machine_with_net1();
    connected(&mut m, connect(10, 1, "a").publish(&["8080:80"]));
    connected(&mut m, connect(11, 1, "b"));
    let update = |name: Option<&str>, ports: Option<&[&str]>| {
        wrap(command::Kind::UpdateEndpoint(UpdateEndpoint {
            endpoint_id: id(11),
            name: name.map(str::to_owned),
            set_aliases: true,
            aliases: vec!["bee".into()],
            set_ports: ports.is_some(),
            ports: ports
                .unwrap_or_default()
                .iter()
                .map(|p| vxnet_proto::PortMapping::parse(p).expect("mapping"))
                .collect(),
        }))
    };
    let r = refuse(&mut m, update(Some("a"), None));
    assert!(matches!(r, Refusal::EndpointNameInUse { .. }), "{r}");
    let r = refuse(&mut m, update(None, Some(&["8080:81"])));
    assert!(matches!(r, Refusal::HostPortInUse { .. }), "{r}");
    let Applied::Updated(b) = ok(&mut m, update(Some("web"), Some(&["9090:80"]))) else {
        panic!("not an update");
    };
    assert_eq!(
        (b.name.as_str(), b.aliases.as_slice()),
        ("web", ["bee".to_string()].as_slice())
    );
    assert_eq!(b.ports[0].to_string(), "0.0.0.0:9090:80/tcp");
    // Its own port again is no clash; the id of a missing endpoint is refused.
    ok(&mut m, update(Some("web"), Some(&["9090:80"])));
    let missing = wrap(command::Kind::UpdateEndpoint(UpdateEndpoint {
        endpoint_id: id(99),
        ..Default::default()
    }));
    assert!(matches!(
        refuse(&mut m, missing),
        Refusal::NoSuchEndpoint { .. }
    ));
}
