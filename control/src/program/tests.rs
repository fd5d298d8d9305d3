use std::net::Ipv4Addr;

use vxnet_proto::{Cidr, Endpoint, Host, Network, State};

use super::*;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
const C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 13);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);

fn host(id: &str, addr: Ipv4Addr) -> Host {
    Host {
        id: id.into(),
        name: id.into(),
        addr: u32::from(addr),
        ..Default::default()
    }
}

fn network(id: &str, vni: u32, peers: &[Ipv4Addr]) -> Network {
    Network {
        id: id.into(),
        name: format!("net-{id}"),
        vni,
        subnet: Some(Cidr {
            addr: u32::from(Ipv4Addr::new(10, 0, 0, 0)),
            prefix_len: 24,
        }),
        gateway: u32::from(Ipv4Addr::new(10, 0, 0, 1)),
        mtu: 1450,
        peers: peers.iter().map(|&p| u32::from(p)).collect(),
        ..Default::default()
    }
}

fn endpoint(id: &str, network: &str, host: &str, last: u8) -> Endpoint {
    let ipv4 = Ipv4Addr::new(10, 0, 0, last);
    Endpoint {
        id: id.into(),
        name: id.into(),
        network_id: network.into(),
        host_id: host.into(),
        mac: MacAddr::for_ipv4(ipv4).0.to_vec(),
        ipv4: u32::from(ipv4),
        ..Default::default()
    }
}

/// Three hosts; n1 has endpoints on a (2) and b (1), n2 only on c and a static peer, n3 none.
fn cluster() -> State {
    State {
        hosts: vec![host("a", A), host("b", B), host("c", C)],
        networks: vec![
            network("n1", 4100, &[]),
            network("n2", 4200, &[PEER]),
            network("n3", 4300, &[]),
        ],
        endpoints: vec![
            endpoint("e1", "n1", "a", 2),
            endpoint("e2", "n1", "a", 3),
            endpoint("e3", "n1", "b", 4),
            endpoint("e4", "n2", "c", 2),
        ],
    }
}

#[test]
fn every_network_is_programmed_and_endpoints_are_placed() {
    let program = host_program(&cluster(), "a");
    let ids: Vec<&str> = program.networks.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["n1", "n2", "n3"]);
    let n1 = program.network("n1").expect("n1");
    assert_eq!(n1.vni.get(), 4100);
    assert_eq!((n1.mtu, n1.prefix_len), (1450, 24));
    assert_eq!(n1.gateway, Ipv4Addr::new(10, 0, 0, 1));
    let placed: Vec<(&str, Location)> = n1
        .endpoints
        .iter()
        .map(|e| (e.id.as_str(), e.location))
        .collect();
    assert_eq!(
        placed,
        [
            ("e1", Location::Local),
            ("e2", Location::Local),
            ("e3", Location::Remote(B))
        ]
    );
    assert_eq!(n1.endpoints[2].mac.to_string(), "02:42:0a:00:00:04");
    assert_eq!(n1.endpoints[2].ipv4, Ipv4Addr::new(10, 0, 0, 4));
    assert!(n1.has_local_endpoint());
    assert!(!program.network("n2").expect("n2").has_local_endpoint());
}

#[test]
fn floods_go_to_hosts_with_endpoints_and_peers_trust_goes_to_every_host() {
    let program = host_program(&cluster(), "a");
    let n1 = program.network("n1").expect("n1");
    assert_eq!(n1.flood, [B], "c has no endpoint in n1; a is this host");
    assert_eq!(n1.trusted, [B, C]);
    let n2 = program.network("n2").expect("n2");
    assert_eq!(n2.flood, [C, PEER]);
    assert_eq!(n2.trusted, [B, C, PEER]);
    assert_eq!(n2.peers, [PEER]);
    let n3 = program.network("n3").expect("n3");
    assert!(n3.flood.is_empty() && n3.endpoints.is_empty());
    assert_eq!(n3.trusted, [B, C]);

    // Seen from b, a's two endpoints make one flood target.
    let from_b = host_program(&cluster(), "b");
    assert_eq!(from_b.network("n1").expect("n1").flood, [A]);
}

#[test]
fn a_host_outside_the_state_sees_everything_remote() {
    let program = host_program(&cluster(), "stranger");
    let n1 = program.network("n1").expect("n1");
    assert!(!n1.has_local_endpoint());
    assert_eq!(n1.trusted, [A, B, C]);
}

#[test]
fn what_the_state_cannot_place_is_left_out_not_invented() {
    let mut state = cluster();
    state.endpoints[0].mac = vec![1, 2, 3];
    state.endpoints[2].host_id = "gone".into();
    state.networks[1].vni = 1 << 24;
    state.networks[2].subnet = None;
    let program = host_program(&state, "a");
    let ids: Vec<&str> = program.networks.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["n1"]);
    let eps: Vec<&str> = program.networks[0]
        .endpoints
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(eps, ["e2"]);
    assert!(program.networks[0].flood.is_empty());
}

#[test]
fn the_same_state_gives_the_same_program() {
    assert_eq!(host_program(&cluster(), "a"), host_program(&cluster(), "a"));
}

#[test]
fn an_encrypted_network_carries_its_usable_keys() {
    let mut state = cluster();
    let key = |epoch, len| vxnet_proto::NetworkKey {
        epoch,
        secret: vec![3; len],
    };
    state.networks[0].encrypted = true;
    state.networks[0].keys = vec![key(0, 32), key(1, 31), key(256, 32), key(2, 32)];
    let program = host_program(&state, "a");
    let n1 = program.network("n1").expect("n1");
    assert!(n1.encrypted);
    let epochs: Vec<u8> = n1.keys.iter().map(|k| k.epoch).collect();
    assert_eq!(
        epochs,
        [0, 2],
        "a short secret or an epoch past 255 is left out"
    );
    assert_eq!(n1.keys[0].secret, [3; 32]);
    assert!(!program.network("n2").expect("n2").encrypted);
}
