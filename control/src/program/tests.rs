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
        ..State::default()
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

mod incremental {
    use std::sync::Arc;

    use vxnet_proto::{
        command, AddHost, Command, Connect, CreateNetwork, Disconnect, RemoveHost, RemoveNetwork,
        UpdateEndpoint,
    };

    use super::*;
    use crate::state::StateMachine;

    fn id(n: u32) -> String {
        format!("{n:064x}")
    }

    fn wrap(kind: command::Kind) -> Command {
        Command { kind: Some(kind) }
    }

    fn add_host(n: u32, addr: Ipv4Addr) -> Command {
        wrap(command::Kind::AddHost(AddHost {
            host: Some(host(&id(n), addr)),
        }))
    }

    fn create_message(n: u32) -> CreateNetwork {
        CreateNetwork {
            id: id(n),
            name: format!("net{n}"),
            mtu: 1450,
            ..Default::default()
        }
    }

    fn create(n: u32) -> Command {
        wrap(command::Kind::CreateNetwork(create_message(n)))
    }

    fn connect(ep: u32, net: u32, host: u32) -> Command {
        wrap(command::Kind::Connect(Connect {
            endpoint_id: id(ep),
            network_id: id(net),
            host_id: id(host),
            name: format!("c{ep}"),
            ifname: "eth0".into(),
            target: format!("/run/netns/c{ep}"),
            ..Default::default()
        }))
    }

    fn disconnect(ep: u32) -> Command {
        wrap(command::Kind::Disconnect(Disconnect {
            endpoint_id: id(ep),
        }))
    }

    /// Hosts 1–3, networks 10 and 11, endpoints 100–103 spread over both.
    fn machine() -> StateMachine {
        let mut m = StateMachine::new();
        for c in [
            add_host(1, A),
            add_host(2, B),
            add_host(3, C),
            create(10),
            create(11),
            connect(100, 10, 1),
            connect(101, 10, 2),
            connect(102, 11, 1),
            connect(103, 11, 3),
        ] {
            m.apply(&c).expect("fixture command");
        }
        m
    }

    fn by_id(p: &HostProgram, n: u32) -> &Arc<NetworkProgram> {
        p.network(&id(n)).expect("network in the program")
    }

    #[test]
    fn builds_what_host_program_builds_after_every_kind_of_change() {
        let mut m = machine();
        let mut programmer = Programmer::new(id(1));
        let changes = [
            connect(104, 10, 3),
            disconnect(101),
            wrap(command::Kind::UpdateEndpoint(UpdateEndpoint {
                endpoint_id: id(100),
                set_aliases: true,
                aliases: vec!["web".into()],
                ..Default::default()
            })),
            add_host(2, Ipv4Addr::new(198, 18, 0, 42)),
            create(12),
            connect(105, 12, 2),
            wrap(command::Kind::RemoveHost(RemoveHost { host_id: id(3) })),
            disconnect(105),
            wrap(command::Kind::RemoveNetwork(RemoveNetwork {
                network_id: id(12),
            })),
            wrap(command::Kind::CreateNetwork(CreateNetwork {
                encrypted: true,
                key: Some(vxnet_proto::NetworkKey {
                    epoch: 0,
                    secret: vec![1; 32],
                    created_unix_secs: 0,
                }),
                ..create_message(13)
            })),
            connect(106, 13, 1),
            wrap(command::Kind::RotateNetworkKey(
                vxnet_proto::RotateNetworkKey {
                    network_id: id(13),
                    key: Some(vxnet_proto::NetworkKey {
                        epoch: 0,
                        secret: vec![2; 32],
                        created_unix_secs: 0,
                    }),
                },
            )),
        ];
        assert_eq!(programmer.program(&m), host_program(&m.to_state(), &id(1)));
        for c in changes {
            m.apply(&c).expect("change");
            assert_eq!(
                programmer.program(&m),
                host_program(&m.to_state(), &id(1)),
                "after {c:?}"
            );
        }
        assert_eq!(programmer.built.len(), 3, "removed networks are forgotten");
    }

    #[test]
    fn only_the_network_a_change_touched_is_built_again() {
        let mut m = machine();
        let mut programmer = Programmer::new(id(1));
        let first = programmer.program(&m);
        m.apply(&connect(104, 10, 3)).expect("connect");
        let second = programmer.program(&m);
        assert!(!Arc::ptr_eq(by_id(&first, 10), by_id(&second, 10)));
        assert!(Arc::ptr_eq(by_id(&first, 11), by_id(&second, 11)));
        // A refused command changes nothing, so nothing is built again.
        m.apply(&connect(104, 10, 3)).expect_err("same id twice");
        let third = programmer.program(&m);
        assert!(Arc::ptr_eq(by_id(&second, 10), by_id(&third, 10)));
        // A host's new address changes every network's flood and trust lists.
        m.apply(&add_host(3, Ipv4Addr::new(198, 18, 0, 43)))
            .expect("move host 3");
        let fourth = programmer.program(&m);
        assert!(!Arc::ptr_eq(by_id(&third, 10), by_id(&fourth, 10)));
        assert!(!Arc::ptr_eq(by_id(&third, 11), by_id(&fourth, 11)));
        // Re-adding a host exactly as it is changes nothing.
        m.apply(&add_host(3, Ipv4Addr::new(198, 18, 0, 43)))
            .expect("same host");
        let fifth = programmer.program(&m);
        assert!(Arc::ptr_eq(by_id(&fourth, 11), by_id(&fifth, 11)));
    }

    #[test]
    fn a_machine_rebuilt_from_its_state_is_built_again_whole() {
        let m = machine();
        let mut programmer = Programmer::new(id(1));
        let first = programmer.program(&m);
        let restored = StateMachine::from_state(m.to_state().clone()).expect("valid state");
        let second = programmer.program(&restored);
        assert_eq!(first, second);
        assert!(!Arc::ptr_eq(by_id(&first, 10), by_id(&second, 10)));
        assert!(!Arc::ptr_eq(by_id(&first, 11), by_id(&second, 11)));
    }
}

#[test]
fn an_encrypted_network_carries_its_usable_keys() {
    let mut state = cluster();
    let key = |epoch, len| vxnet_proto::NetworkKey {
        epoch,
        secret: vec![3; len],
        created_unix_secs: 0,
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
