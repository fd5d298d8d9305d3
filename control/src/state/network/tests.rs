use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;

use vxnet_proto::types::VNI_MAX;
use vxnet_proto::Network;

use super::super::testing::{
    cidr, connect, connected, create, created, disconnect, id, ip, machine, machine_with_net1, ok,
    refuse, remove_network,
};
use super::super::{Applied, CidrError, InvalidState, Refusal};
use super::lowest_free_number;

// ------------------------------------------------------------------ CreateNetwork

#[test]
fn create_network_with_defaults() {
    let mut m = machine();
    let net = created(&mut m, create("net1", 1));
    assert_eq!(
        net,
        Network {
            id: id(1),
            name: "net1".into(),
            driver: "overlay".into(),
            vni: 256,
            subnet: Some(cidr("10.128.0.0/24")),
            gateway: ip("10.128.0.1"),
            ip_range: None,
            mtu: 1450,
            peers: vec![],
            labels: BTreeMap::new(),
            internal: false,
            encrypted: false,
            keys: vec![],
        }
    );
    assert_eq!(m.to_state().networks, vec![net.clone()]);
    assert_eq!(m.network("net1"), Ok(&net));

    let net2 = created(&mut m, create("net2", 2));
    assert_eq!(net2.vni, 257);
    assert_eq!(net2.subnet, Some(cidr("10.128.1.0/24")));
    assert_eq!(net2.gateway, ip("10.128.1.1"));
}

#[test]
fn create_network_with_everything_given() {
    let mut m = machine();
    let labels: BTreeMap<String, String> = [("b", "2"), ("a", "1")]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
    let net = created(
        &mut m,
        create("lab.net-1_x", 1)
            .subnet("192.168.0.0/16")
            .gateway("192.168.0.254")
            .ip_range("192.168.10.0/24")
            .vni(4096)
            .mtu(9000)
            .peers(&["172.16.0.9", "172.16.0.3", "172.16.0.9"])
            .labels(&[("b", "2"), ("a", "1")]),
    );
    assert_eq!(net.name, "lab.net-1_x");
    assert_eq!(net.vni, 4096);
    assert_eq!(net.subnet, Some(cidr("192.168.0.0/16")));
    assert_eq!(net.gateway, ip("192.168.0.254"));
    assert_eq!(net.ip_range, Some(cidr("192.168.10.0/24")));
    assert_eq!(net.mtu, 9000);
    assert_eq!(net.peers, vec![ip("172.16.0.3"), ip("172.16.0.9")]);
    assert_eq!(net.labels, labels);
}

#[test]
fn create_network_accepts_edge_values() {
    let mut m = machine();
    created(&mut m, create("a", 1).vni(1).mtu(576));
    created(&mut m, create("B9", 2).vni(VNI_MAX).mtu(9000));
    let p30 = created(&mut m, create("9", 3).subnet("10.0.0.4/30"));
    assert_eq!(p30.gateway, ip("10.0.0.5"));
    // Gateway at the last host address; range equal to the subnet.
    created(
        &mut m,
        create("d", 4)
            .subnet("10.1.0.0/24")
            .gateway("10.1.0.254")
            .ip_range("10.1.0.0/24"),
    );
}

#[test]
fn explicit_subnets_of_different_networks_may_overlap() {
    let mut m = machine_with_net1();
    created(&mut m, create("net2", 2).subnet("10.0.0.0/24"));
    created(&mut m, create("net3", 3).subnet("10.0.0.0/8"));
    assert_eq!(m.networks().len(), 3);
}

#[test]
fn default_subnet_avoids_every_existing_subnet() {
    let mut m = machine();
    created(&mut m, create("big", 1).subnet("10.128.0.0/16"));
    created(&mut m, create("half", 2).subnet("10.129.0.128/25"));
    let net = created(&mut m, create("auto", 3));
    assert_eq!(net.subnet, Some(cidr("10.129.1.0/24")));
    // Freed subnets are reused first.
    let first = created(&mut m, create("auto2", 4));
    assert_eq!(first.subnet, Some(cidr("10.129.2.0/24")));
    ok(&mut m, remove_network(3));
    assert_eq!(
        created(&mut m, create("auto3", 5)).subnet,
        Some(cidr("10.129.1.0/24"))
    );
}

#[test]
fn default_vni_is_the_lowest_free_from_256() {
    let mut m = machine();
    created(&mut m, create("low", 1).vni(42));
    created(&mut m, create("n256", 2).vni(256));
    created(&mut m, create("n258", 3).vni(258));
    assert_eq!(created(&mut m, create("a", 4)).vni, 257);
    assert_eq!(created(&mut m, create("b", 5)).vni, 259);
    ok(&mut m, remove_network(2));
    assert_eq!(created(&mut m, create("c", 6)).vni, 256);
}

#[test]
fn lowest_free_number_bounds() {
    assert_eq!(lowest_free_number([], 256, 300), Some(256));
    assert_eq!(
        lowest_free_number([1, 2, 256, 257, 300], 256, 300),
        Some(258)
    );
    assert_eq!(lowest_free_number(256..=300, 256, 300), None);
    assert_eq!(lowest_free_number(256..=299, 256, 300), Some(300));
    assert_eq!(lowest_free_number([u32::MAX], u32::MAX, u32::MAX), None);
}

#[test]
fn create_network_refuses_bad_names() {
    let mut m = machine();
    let r = refuse(&mut m, create("", 1));
    assert_eq!(r, Refusal::EmptyNetworkName);
    assert_eq!(r.exit_code(), 2);
    for bad in [
        "-net", "_net", ".net", "a b", "net/1", "net:1", "nét", "net\n", "a+b",
    ] {
        let r = refuse(&mut m, create(bad, 1));
        assert_eq!(r, Refusal::InvalidNetworkName { name: bad.into() }, "{bad}");
        assert_eq!(r.exit_code(), 2);
    }
    assert_eq!(
        refuse(&mut m, create("a b", 1)).to_string(),
        "invalid network name \"a b\": use letters, digits, '_', '.' and '-', \
         starting with a letter or a digit"
    );
}

#[test]
fn create_network_refuses_bad_ids() {
    let mut m = machine();
    let valid = id(1);
    for bad in [
        String::new(),
        "abc".to_owned(),
        format!("{}A", &valid[..63]), // uppercase hex
        format!("{}g", &valid[..63]), // not hex
        format!("{valid}0"),          // 65 digits
        valid[..63].to_owned(),       // 63 digits
    ] {
        let r = refuse(&mut m, create("n", 0).id(bad.clone()));
        assert_eq!(
            r,
            Refusal::InvalidId {
                what: "network",
                id: bad
            },
            "{r}"
        );
        assert_eq!(r.exit_code(), 2);
    }
    let r = refuse(&mut m, create("n", 0).id("xyz"));
    assert_eq!(
        r.to_string(),
        "invalid network id \"xyz\": expected 64 lowercase hex digits"
    );
}

#[test]
fn create_network_refuses_vni_out_of_range() {
    let mut m = machine();
    for vni in [0, VNI_MAX + 1, u32::MAX] {
        let r = refuse(&mut m, create("n", 1).vni(vni));
        assert_eq!(r, Refusal::VniOutOfRange { vni });
        assert_eq!(r.exit_code(), 2);
    }
    assert_eq!(
        Refusal::VniOutOfRange { vni: 0 }.to_string(),
        "VNI 0 is out of range: use 1 to 16777215"
    );
}

#[test]
fn create_network_refuses_mtu_out_of_range() {
    let mut m = machine();
    for mtu in [0, 575, 9001] {
        let r = refuse(&mut m, create("n", 1).mtu(mtu));
        assert_eq!(r, Refusal::MtuOutOfRange { mtu });
        assert_eq!(r.exit_code(), 2);
    }
    assert_eq!(
        Refusal::MtuOutOfRange { mtu: 575 }.to_string(),
        "MTU 575 is out of range: use 576 to 9000"
    );
}

#[test]
fn create_network_refuses_bad_subnets() {
    let mut m = machine();
    let r = refuse(&mut m, create("n", 1).subnet("10.0.0.1/24"));
    assert_eq!(
        r.to_string(),
        "invalid subnet 10.0.0.1/24: host bits are set; did you mean 10.0.0.0/24?"
    );
    assert_eq!(r.exit_code(), 2);
    let r = refuse(&mut m, create("n", 1).subnet("10.0.0.0/33"));
    assert!(
        matches!(r, Refusal::InvalidCidr(CidrError::PrefixTooLong { .. })),
        "{r}"
    );
    assert_eq!(r.exit_code(), 2);
    for small in ["10.0.0.0/31", "10.0.0.1/32"] {
        let r = refuse(&mut m, create("n", 1).subnet(small));
        assert!(matches!(r, Refusal::SubnetTooSmall { .. }), "{r}");
        assert_eq!(r.exit_code(), 2);
    }
    assert_eq!(
        refuse(&mut m, create("n", 1).subnet("10.0.0.0/31")).to_string(),
        "subnet 10.0.0.0/31 is too small for a network: use a prefix of /30 or shorter"
    );
}

#[test]
fn create_network_refuses_gateway_and_range_without_subnet() {
    let mut m = machine();
    let r = refuse(&mut m, create("n", 1).gateway("10.128.0.1"));
    assert_eq!(r, Refusal::NeedsSubnet { what: "gateway" });
    assert_eq!(
        r.to_string(),
        "a gateway needs an explicit subnet; add --subnet"
    );
    assert_eq!(r.exit_code(), 2);
    let r = refuse(&mut m, create("n", 1).ip_range("10.128.0.0/25"));
    assert_eq!(r, Refusal::NeedsSubnet { what: "ip range" });
}

#[test]
fn create_network_refuses_bad_gateways() {
    let mut m = machine();
    let with_gw = |gw: &str| create("n", 1).subnet("10.0.0.0/24").gateway(gw);
    let r = refuse(&mut m, with_gw("10.0.1.1"));
    assert_eq!(
        r.to_string(),
        "gateway 10.0.1.1 is outside subnet 10.0.0.0/24; pick an address inside it"
    );
    assert_eq!(r.exit_code(), 2);
    let r = refuse(&mut m, with_gw("10.0.0.0"));
    assert_eq!(
        r.to_string(),
        "gateway 10.0.0.0 is the network address of subnet 10.0.0.0/24; pick a host address"
    );
    assert_eq!(r.exit_code(), 2);
    let r = refuse(&mut m, with_gw("10.0.0.255"));
    assert_eq!(
        r,
        Refusal::GatewayNotHostAddress {
            gateway: Ipv4Addr::new(10, 0, 0, 255),
            subnet: "10.0.0.0/24".parse().expect("cidr"),
            role: "broadcast address"
        }
    );
}

#[test]
fn create_network_refuses_bad_ip_ranges() {
    let mut m = machine();
    let with_range = |range: &str| create("n", 1).subnet("10.0.0.0/24").ip_range(range);
    for outside in ["10.0.1.0/24", "10.0.0.0/23", "0.0.0.0/0"] {
        let r = refuse(&mut m, with_range(outside));
        assert!(matches!(r, Refusal::IpRangeOutsideSubnet { .. }), "{r}");
        assert_eq!(r.exit_code(), 2);
    }
    assert_eq!(
        refuse(&mut m, with_range("10.0.1.0/25")).to_string(),
        "ip range 10.0.1.0/25 is outside subnet 10.0.0.0/24; pick a range inside it"
    );
    assert_eq!(
        refuse(&mut m, with_range("10.0.0.1/25")).to_string(),
        "invalid ip range 10.0.0.1/25: host bits are set; did you mean 10.0.0.0/25?"
    );
}

#[test]
fn create_network_refuses_non_unicast_peers() {
    let mut m = machine();
    for peer in ["0.0.0.0", "224.0.0.1", "239.1.2.3", "255.255.255.255"] {
        let r = refuse(&mut m, create("n", 1).peers(&["172.16.0.1", peer]));
        assert_eq!(
            r,
            Refusal::InvalidPeer {
                peer: Ipv4Addr::from_str(peer).expect("ip")
            }
        );
        assert_eq!(r.exit_code(), 2);
    }
}

fn network_key(epoch: u32, len: usize) -> vxnet_proto::NetworkKey {
    vxnet_proto::NetworkKey {
        epoch,
        secret: vec![7; len],
        created_unix_secs: 0,
    }
}

#[test]
fn an_encrypted_network_keeps_the_proposers_key() {
    let mut m = machine();
    let net = created(
        &mut m,
        create("sealed", 1).encrypted(Some(network_key(0, 32))),
    );
    assert!(net.encrypted);
    assert_eq!(net.keys, vec![network_key(0, 32)]);
    // A plain network keeps no key, whatever the command carries.
    let plain = create("plain", 2).key(Some(network_key(0, 32)));
    assert!(created(&mut m, plain).keys.is_empty());
    // Debug never shows the secret.
    assert!(!format!("{net:?}").contains("7, 7"));
}

#[test]
fn create_network_refuses_encrypted_with_peers_and_bad_keys() {
    let mut m = machine();
    let r = refuse(
        &mut m,
        create("n", 1)
            .encrypted(Some(network_key(0, 32)))
            .peers(&["172.16.0.1"]),
    );
    assert_eq!(r, Refusal::EncryptedWithPeers);
    assert_eq!(r.exit_code(), 2);
    assert_eq!(
        refuse(&mut m, create("n", 1).encrypted(None)),
        Refusal::MissingField {
            field: "network key"
        }
    );
    for bad in [network_key(0, 16), network_key(1, 32)] {
        let r = refuse(&mut m, create("n", 1).encrypted(Some(bad)));
        assert_eq!(r, Refusal::MalformedNetworkKey);
    }
    assert!(m.to_state().networks.is_empty());
}

fn rotate(n: u32, key: Option<vxnet_proto::NetworkKey>) -> vxnet_proto::Command {
    super::super::testing::wrap(vxnet_proto::command::Kind::RotateNetworkKey(
        vxnet_proto::RotateNetworkKey {
            network_id: id(n),
            key,
        },
    ))
}

#[test]
fn rotation_numbers_the_new_epoch_and_keeps_the_current_key_beside_it() {
    let mut m = machine();
    created(
        &mut m,
        create("sealed", 1).encrypted(Some(network_key(0, 32))),
    );
    let fresh = |byte: u8| vxnet_proto::NetworkKey {
        epoch: 77, // the proposer's epoch is ignored
        secret: vec![byte; 32],
        created_unix_secs: 0,
    };
    let Ok(Applied::KeyRotated(net)) = m.apply(&rotate(1, Some(fresh(1)))) else {
        panic!("rotated");
    };
    let epochs = |net: &Network| net.keys.iter().map(|k| k.epoch).collect::<Vec<_>>();
    assert_eq!(epochs(&net), [0, 1]);
    assert_eq!(net.keys[1].secret, vec![1; 32]);
    ok(&mut m, rotate(1, Some(fresh(2))));
    let net = m.network("sealed").expect("there").clone();
    assert_eq!(
        epochs(&net),
        [1, 2],
        "only the current key stays beside the new one"
    );
    // Epochs wrap at 256.
    for i in 0..254 {
        ok(&mut m, rotate(1, Some(fresh(i as u8))));
    }
    assert_eq!(epochs(m.network("sealed").expect("there")), [255, 0]);
}

#[test]
fn rotation_refusals() {
    let mut m = machine();
    created(&mut m, create("plain", 1));
    created(
        &mut m,
        create("sealed", 2).encrypted(Some(network_key(0, 32))),
    );
    assert_eq!(
        refuse(&mut m, rotate(1, Some(network_key(0, 32)))),
        Refusal::NotEncrypted {
            network: "plain".into()
        }
    );
    assert_eq!(
        refuse(&mut m, rotate(3, Some(network_key(0, 32)))),
        Refusal::NoSuchNetwork { network: id(3) }
    );
    assert_eq!(
        refuse(&mut m, rotate(2, Some(network_key(0, 31)))),
        Refusal::MalformedNetworkKey
    );
    assert_eq!(
        refuse(&mut m, rotate(2, None)),
        Refusal::MissingField {
            field: "network key"
        }
    );
    assert_eq!(m.network("sealed").expect("there").keys.len(), 1);
}

#[test]
fn create_network_refuses_conflicts() {
    let mut m = machine_with_net1();
    let r = refuse(&mut m, create("net1", 2));
    assert_eq!(
        r.to_string(),
        "network name net1 is already in use; choose another name"
    );
    assert_eq!(r.exit_code(), 1);

    let r = refuse(&mut m, create("net2", 1));
    assert_eq!(r, Refusal::NetworkIdInUse { id: id(1) });
    assert_eq!(r.exit_code(), 1);

    let r = refuse(&mut m, create("net2", 2).vni(256));
    assert_eq!(
        r.to_string(),
        "VNI 256 is already in use by network net1; choose another VNI or leave --vni out"
    );
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn create_network_refuses_when_the_pool_is_full() {
    let mut m = machine();
    created(&mut m, create("all", 1).subnet("10.128.0.0/9"));
    let r = refuse(&mut m, create("n", 2));
    assert_eq!(r, Refusal::NoFreeSubnet);
    assert_eq!(
        r.to_string(),
        "no free /24 is left in 10.128.0.0/9; pass --subnet"
    );
    assert_eq!(r.exit_code(), 1);
    // An explicit subnet still works.
    created(&mut m, create("n", 2).subnet("10.0.0.0/24"));
}

#[test]
fn default_subnet_refuses_a_corrupt_stored_subnet_rather_than_ignoring_it() {
    let mut m = machine_with_net1();
    m.state.networks[0].subnet = Some(cidr("10.0.0.1/24"));
    let r = refuse(&mut m, create("auto", 2));
    assert_eq!(
        r,
        Refusal::Inconsistent(InvalidState(
            "network net1: invalid subnet 10.0.0.1/24: host bits are set; \
             did you mean 10.0.0.0/24?"
                .into()
        ))
    );
    assert_eq!(r.exit_code(), 1);
    // An explicit subnet needs no look at the others.
    created(&mut m, create("explicit", 2).subnet("10.1.0.0/24"));
}

#[test]
fn usage_checks_come_before_conflicts() {
    // Duplicate name and a bad MTU: the argument error is reported.
    let mut m = machine_with_net1();
    let r = refuse(&mut m, create("net1", 1).mtu(1));
    assert_eq!(r, Refusal::MtuOutOfRange { mtu: 1 });
}

// ------------------------------------------------------------------ RemoveNetwork

#[test]
fn remove_network_frees_name_vni_and_subnet() {
    let mut m = machine();
    let net = created(&mut m, create("net1", 1));
    assert_eq!(
        ok(&mut m, remove_network(1)),
        Applied::NetworkRemoved(net.clone())
    );
    assert!(m.to_state().networks.is_empty());
    assert!(m.network("net1").is_err());
    assert_eq!(m, machine());
    // Name, VNI and subnet are free again: a re-create gets the same ones.
    let again = created(&mut m, create("net1", 2));
    assert_eq!((again.vni, again.subnet), (net.vni, net.subnet));
}

#[test]
fn remove_network_refusals() {
    let mut m = machine_with_net1();
    let r = refuse(&mut m, remove_network(9));
    assert_eq!(r, Refusal::NoSuchNetwork { network: id(9) });
    assert_eq!(r.exit_code(), 1);

    connected(&mut m, connect(11, 1, "c2"));
    connected(&mut m, connect(10, 1, "c1"));
    let r = refuse(&mut m, remove_network(1));
    assert_eq!(
        r.to_string(),
        "network net1 has active endpoints (c1, c2); disconnect them first"
    );
    assert_eq!(r.exit_code(), 1);

    ok(&mut m, disconnect(10));
    ok(&mut m, disconnect(11));
    ok(&mut m, remove_network(1));
}
