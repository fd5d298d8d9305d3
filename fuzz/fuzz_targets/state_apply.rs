//! The replicated state machine on random command sequences.
//!
//! The input is a small command language: each step picks a command (add or remove a host,
//! create or remove a network, rotate a network's key, connect or disconnect an endpoint, an
//! empty command) and its
//! arguments from short lists of ids, names, subnets, addresses and VNIs — small enough that
//! commands collide often, with now and then a raw value from the input — and applies it
//! through `apply` or, with a proposal id, through `apply_proposal`.
//!
//! Checks after every step:
//! - `apply` never panics;
//! - a refused command leaves the machine unchanged (`==`) and its encoded state byte for
//!   byte; a proposal applied again changes nothing and gets the first answer;
//! - no two networks share an id, a VNI or a name; every VNI is in range; an encrypted
//!   network has no peer and one or two 32-byte keys of consecutive epochs, a plain one none;
//! - no two endpoints of a network share an IP, a MAC or a name; every endpoint's network and
//!   host exist, its IP lies inside the network's subnet and is neither the gateway nor the
//!   subnet's network or broadcast address, and its MAC is `02:42:` and that IP;
//! - every list is sorted by id, and the state passes `StateMachine::from_state`.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vxnet_control::state::{Applied, Ipv4Cidr, Refusal, StateMachine};
use vxnet_fuzz::Choices;
use vxnet_proto::types::{VNI_MAX, VNI_MIN};
use vxnet_proto::{
    command, AddHost, Cidr, Command, Connect, CreateNetwork, Disconnect, Host, NetworkKey,
    PortMapping, Protocol, RemoveHost, RemoveNetwork, RotateNetworkKey, UpdateEndpoint,
};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const NETWORK_NAMES: [&str; 5] = ["blue", "red", "b-1.x", "-bad", ""];
const ENDPOINT_NAMES: [&str; 4] = ["web", "db", "cache", ""];
const IFNAMES: [&str; 4] = ["eth0", "eth1", "", "sixteen-chars-xx"];
const TARGETS: [&str; 4] = ["/run/netns/a", "/run/netns/b", "pid:42", ""];
/// Subnets that overlap, nest, are too small, or have host bits set.
const SUBNETS: [(u32, u32); 8] = [
    (0x0a00_0000, 24),
    (0x0a00_0000, 30),
    (0x0a00_0080, 25),
    (0x0a00_0100, 24),
    (0x0a00_0000, 16),
    (0x0a00_0001, 24),
    (0x0a00_0000, 31),
    (0xc0a8_0000, 29),
];
const VNIS: [u32; 6] = [256, 257, 4100, 0, VNI_MAX, VNI_MAX + 1];
const MTUS: [u32; 5] = [1450, 576, 575, 9000, 9001];

fn id(n: u8) -> String {
    format!("{n:064x}")
}

fn wrap(kind: command::Kind) -> Command {
    Command { kind: Some(kind) }
}

/// An address near the subnets above (or, now and then, any address).
fn address(input: &mut Choices) -> u32 {
    match input.u8() % 4 {
        0 => input.u32(),
        1 => 0x0a00_0100 | u32::from(input.u8()),
        2 => 0xc0a8_0000 | u32::from(input.u8() % 8),
        _ => 0x0a00_0000 | u32::from(input.u8()),
    }
}

fn cidr(input: &mut Choices) -> Cidr {
    let (addr, prefix_len) = if input.u8() % 8 == 0 {
        (input.u32(), u32::from(input.u8() % 40))
    } else {
        input.pick(&SUBNETS)
    };
    Cidr { addr, prefix_len }
}

/// Zero to two published ports from few host ports, so that they clash; now and then out of
/// range or of an unknown protocol.
fn port_mappings(input: &mut Choices) -> Vec<PortMapping> {
    (0..input.u8() % 3)
        .map(|_| PortMapping {
            host_ip: 0,
            host_port: u32::from(input.u8() % 4) * 20_000,
            container_port: 80,
            protocol: i32::from(input.u8() % 3),
        })
        .collect()
}

fn command(input: &mut Choices) -> Command {
    match input.u8() % 8 {
        0 => wrap(command::Kind::AddHost(AddHost {
            host: (input.u8() % 8 != 0).then(|| Host {
                id: input.pick(&["h1", "h2", "h3", ""]).to_owned(),
                name: "host".to_owned(),
                addr: 0xc612_0000 | u32::from(input.u8()),
                raft_id: u64::from(input.u8()),
                cluster_port: 7946,
                seal_salt: u64::from(input.u32()),
            }),
        })),
        1 => wrap(command::Kind::RemoveHost(RemoveHost {
            host_id: input.pick(&HOSTS).to_owned(),
        })),
        2 | 3 => {
            let flags = input.u8();
            wrap(command::Kind::CreateNetwork(CreateNetwork {
                id: if flags & 0x80 != 0 {
                    "NOT-AN-ID".to_owned()
                } else {
                    id(input.u8() % 4)
                },
                name: input.pick(&NETWORK_NAMES).to_owned(),
                subnet: (flags & 1 != 0).then(|| cidr(input)),
                gateway: (flags & 2 != 0).then(|| address(input)),
                ip_range: (flags & 4 != 0).then(|| cidr(input)),
                vni: (flags & 8 != 0).then(|| {
                    if input.u8() % 4 == 0 {
                        input.u32()
                    } else {
                        input.pick(&VNIS)
                    }
                }),
                mtu: input.pick(&MTUS),
                peers: if flags & 0x10 != 0 {
                    vec![0xc612_0063]
                } else {
                    vec![]
                },
                labels: if flags & 0x20 != 0 {
                    BTreeMap::from([("k".to_owned(), "v".to_owned())])
                } else {
                    BTreeMap::new()
                },
                internal: flags & 0x40 != 0,
                // Encrypted with a well-formed, short or missing key, by the next input byte.
                encrypted: flags & 0x40 != 0 && flags & 0x01 == 0,
                key: match input.u8() % 3 {
                    0 => None,
                    n => Some(vxnet_proto::NetworkKey {
                        epoch: 0,
                        secret: vec![9; if n == 1 { 32 } else { 31 }],
                        created_unix_secs: u64::from(input.u32()),
                    }),
                },
            }))
        }
        4 => wrap(command::Kind::RemoveNetwork(RemoveNetwork {
            network_id: id(input.u8() % 4),
        })),
        5 | 6 => {
            let flags = input.u8();
            wrap(command::Kind::Connect(Connect {
                endpoint_id: id(16 + input.u8() % 8),
                network_id: id(input.u8() % 4),
                host_id: input.pick(&HOSTS).to_owned(),
                name: input.pick(&ENDPOINT_NAMES).to_owned(),
                ipv4: (flags & 1 != 0).then(|| address(input)),
                aliases: if flags & 2 != 0 {
                    vec!["alias".to_owned()]
                } else {
                    vec![]
                },
                ifname: input.pick(&IFNAMES).to_owned(),
                target: input.pick(&TARGETS).to_owned(),
                ports: if flags & 4 != 0 {
                    port_mappings(input)
                } else {
                    vec![]
                },
            }))
        }
        _ => match input.u8() % 5 {
            0 => Command { kind: None },
            3 => wrap(command::Kind::RotateNetworkKey(RotateNetworkKey {
                network_id: id(input.u8() % 4),
                key: (input.u8() % 8 != 0).then(|| NetworkKey {
                    epoch: u32::from(input.u8()),
                    secret: vec![input.u8(); if input.u8() % 8 == 0 { 16 } else { 32 }],
                    created_unix_secs: u64::from(input.u32()),
                }),
            })),
            1 => {
                let flags = input.u8();
                wrap(command::Kind::UpdateEndpoint(UpdateEndpoint {
                    endpoint_id: id(16 + input.u8() % 8),
                    name: (flags & 1 != 0).then(|| input.pick(&ENDPOINT_NAMES).to_owned()),
                    set_aliases: flags & 2 != 0,
                    aliases: vec!["alias".to_owned()],
                    set_ports: flags & 4 != 0,
                    ports: port_mappings(input),
                }))
            }
            _ => wrap(command::Kind::Disconnect(Disconnect {
                endpoint_id: id(16 + input.u8() % 8),
            })),
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Choices::new(data);
    let mut machine = StateMachine::new();
    let mut answers: BTreeMap<u64, Result<Applied, Refusal>> = BTreeMap::new();
    while !input.is_empty() {
        let proposal = input.u8();
        let cmd = command(&mut input);
        let before = machine.clone();
        let before_bytes = machine.to_state().encode_to_vec();
        if proposal < 0x40 {
            // Through the proposal path, with ids that repeat.
            let pid = u64::from(proposal % 8);
            let result = machine.apply_proposal(pid, &cmd);
            if let Some(first) = answers.get(&pid) {
                // A refusal is answered again as the same sentence and code.
                match (&result, first) {
                    (Ok(again), Ok(first)) => assert_eq!(again, first),
                    (Err(again), Err(first)) => {
                        assert_eq!(again.to_string(), first.to_string());
                        assert_eq!(again.code(), first.code());
                    }
                    _ => panic!("a repeated proposal got another answer: {result:?}"),
                }
                assert_eq!(machine, before, "a repeated proposal changed the machine");
            } else {
                if result.is_err() {
                    assert_eq!(
                        machine.to_state(),
                        before.to_state(),
                        "a refusal changed the state"
                    );
                    assert_eq!(machine.to_state().encode_to_vec(), before_bytes);
                }
                answers.insert(pid, result);
            }
        } else if machine.apply(&cmd).is_err() {
            assert_eq!(machine, before, "a refused command changed the machine");
            assert_eq!(machine.to_state().encode_to_vec(), before_bytes);
        }
        check_invariants(&machine);
    }
});

fn check_invariants(machine: &StateMachine) {
    let state = machine.to_state();
    let sorted = |ids: Vec<&str>| ids.windows(2).all(|w| w[0] < w[1]);
    assert!(sorted(state.hosts.iter().map(|h| h.id.as_str()).collect()));
    assert!(sorted(
        state.networks.iter().map(|n| n.id.as_str()).collect()
    ));
    assert!(sorted(
        state.endpoints.iter().map(|e| e.id.as_str()).collect()
    ));

    let mut names = BTreeSet::new();
    let mut vnis = BTreeSet::new();
    let mut subnets = BTreeMap::new();
    for net in &state.networks {
        assert!(
            names.insert(net.name.as_str()),
            "network name {} twice",
            net.name
        );
        assert!(vnis.insert(net.vni), "VNI {} twice", net.vni);
        assert!((VNI_MIN..=VNI_MAX).contains(&net.vni));
        if net.encrypted {
            assert!(net.peers.is_empty(), "an encrypted network with peers");
            assert!((1..=2).contains(&net.keys.len()), "{} keys", net.keys.len());
            assert!(net
                .keys
                .iter()
                .all(|k| k.secret.len() == 32 && k.epoch < 256));
            if let [old, new] = &net.keys[..] {
                assert_eq!(new.epoch, (old.epoch + 1) % 256, "epochs not consecutive");
            }
        } else {
            assert!(net.keys.is_empty(), "a plain network with keys");
        }
        let subnet = net.subnet.as_ref().expect("a network has a subnet");
        let subnet = Ipv4Cidr::from_proto(subnet, "subnet").expect("a stored subnet parses");
        assert!(subnet.contains(net.gateway), "gateway outside the subnet");
        subnets.insert(net.id.as_str(), (subnet, net.gateway));
    }

    let hosts: BTreeSet<&str> = state.hosts.iter().map(|h| h.id.as_str()).collect();
    let mut per_network: BTreeSet<(&str, u32)> = BTreeSet::new();
    let mut macs: BTreeSet<(&str, &[u8])> = BTreeSet::new();
    let mut ep_names: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut host_ports: BTreeSet<(&str, i32, u32)> = BTreeSet::new();
    for ep in &state.endpoints {
        let net = ep.network_id.as_str();
        let &(subnet, gateway) = subnets.get(net).expect("endpoint of a known network");
        assert!(
            hosts.contains(ep.host_id.as_str()),
            "endpoint of a removed host"
        );
        assert!(per_network.insert((net, ep.ipv4)), "address used twice");
        assert!(macs.insert((net, &ep.mac)), "MAC used twice");
        assert!(ep_names.insert((net, &ep.name)), "endpoint name used twice");
        assert!(subnet.contains(ep.ipv4), "address outside the subnet");
        assert_ne!(ep.ipv4, gateway, "endpoint on the gateway address");
        assert_ne!(ep.ipv4, subnet.network(), "endpoint on the network address");
        assert_ne!(
            ep.ipv4,
            subnet.broadcast(),
            "endpoint on the broadcast address"
        );
        let mut mac = vec![0x02, 0x42];
        mac.extend_from_slice(&ep.ipv4.to_be_bytes());
        assert_eq!(ep.mac, mac);
        for p in &ep.ports {
            assert!((1..=65535).contains(&p.host_port) && (1..=65535).contains(&p.container_port));
            assert!(
                Protocol::try_from(p.protocol).is_ok(),
                "unknown protocol kept"
            );
            assert!(
                host_ports.insert((ep.host_id.as_str(), p.protocol, p.host_port)),
                "host port {} published twice on one host",
                p.host_port
            );
        }
    }
    // The machine's per-network and per-namespace orders list exactly what the state holds.
    for net in &state.networks {
        let indexed: Vec<&str> = machine
            .endpoints(&net.id)
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        let scanned: Vec<&str> = state
            .endpoints
            .iter()
            .filter(|e| e.network_id == net.id)
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(indexed, scanned, "the network's endpoints disagree");
    }
    for ep in &state.endpoints {
        let found = machine.endpoint_by_target(&ep.network_id, &ep.host_id, &ep.target);
        assert_eq!(found.map(|e| e.id.as_str()), Some(ep.id.as_str()));
    }
    StateMachine::from_state(state.clone()).expect("the state passes its own check");
}
