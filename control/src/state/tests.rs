//! Tests of the machine as a whole: dispatch, determinism, and loading a stored state.

use prost::Message;
use vxnet_proto::{Command, Endpoint, Network, State};

use super::testing::{
    add_host, cidr, connect, connected, create, disconnect, id, ip, machine, machine_with_net1,
    refuse, remove_network,
};
use super::{Refusal, StateMachine};

#[test]
fn empty_command_is_refused() {
    let mut m = machine();
    let r = refuse(&mut m, Command { kind: None });
    assert_eq!(r, Refusal::EmptyCommand);
    assert_eq!(r.exit_code(), 1);
    assert_eq!(
        r.to_string(),
        "the command carries no known change; every host must run the same vxnet version"
    );
}

// ------------------------------------------------------------------ determinism, snapshots

/// A command sequence with creates, connects, refusals, disconnects and removals, in an id
/// order that differs from the apply order.
fn scenario() -> Vec<Command> {
    vec![
        add_host("h2", "192.168.1.2"),
        add_host("h1", "192.168.1.1"),
        create("net9", 9)
            .labels(&[("z", "1"), ("a", "2"), ("m", "3")])
            .peers(&["172.16.0.2", "172.16.0.1"])
            .into(),
        create("net3", 3).into(),
        create("net3", 4).into(), // refused: name in use
        create("net5", 5).subnet("10.0.0.0/24").vni(7).into(),
        connect(30, 9, "c3").into(),
        connect(20, 9, "c2").host("h2").into(),
        connect(10, 3, "c3").ifname("eth1").into(),
        connect(40, 9, "c3").into(), // refused: already connected
        disconnect(30),
        connect(50, 9, "c5").into(),
        remove_network(5),
        add_host("h1", "192.168.1.11"),
    ]
}

#[test]
fn two_machines_applying_the_same_commands_agree_byte_for_byte() {
    let mut a = StateMachine::new();
    let mut b = StateMachine::new();
    for cmd in scenario() {
        assert_eq!(a.apply(&cmd), b.apply(&cmd));
    }
    assert_eq!(a, b);
    assert_eq!(a.to_state().encode_to_vec(), b.to_state().encode_to_vec());
    // The lists are in id order whatever the apply order was.
    let state = a.to_state();
    let ids: Vec<&str> = state.endpoints.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [id(10), id(20), id(50)]);
    assert_eq!(a.to_state().hosts[0].id, "h1");
    // A re-encoding of a decoded state is the same bytes (BTreeMap labels, sorted lists).
    let bytes = a.to_state().encode_to_vec();
    let decoded = State::decode(bytes.as_slice()).expect("decode");
    assert_eq!(decoded.encode_to_vec(), bytes);
}

#[test]
fn from_state_rebuilds_an_equal_machine() {
    let mut a = StateMachine::new();
    for cmd in scenario() {
        let _ = a.apply(&cmd);
    }
    let bytes = a.to_state().encode_to_vec();
    let mut b = StateMachine::from_state(State::decode(bytes.as_slice()).expect("decode"))
        .expect("valid state");
    assert_eq!(a, b);
    // And both keep agreeing after the reload.
    let next: [Command; 3] = [
        create("after", 11).into(),
        connect(60, 11, "c6").into(),
        create("net9", 12).into(),
    ];
    for cmd in next {
        assert_eq!(a.apply(&cmd), b.apply(&cmd));
    }
    assert_eq!(a.to_state().encode_to_vec(), b.to_state().encode_to_vec());
    assert_eq!(b.network("net9").map(|n| n.id.clone()), Ok(id(9)));
}

#[test]
fn from_state_sorts_an_unsorted_state() {
    let mut a = StateMachine::new();
    for cmd in scenario() {
        let _ = a.apply(&cmd);
    }
    let mut shuffled = a.to_state().clone();
    shuffled.hosts.reverse();
    shuffled.networks.reverse();
    shuffled.endpoints.reverse();
    assert_eq!(StateMachine::from_state(shuffled).expect("valid"), a);
}

#[test]
fn from_state_rejects_inconsistent_states() {
    let mut m = machine_with_net1();
    connected(&mut m, connect(10, 1, "c1"));
    let good = m.to_state().clone();
    assert!(StateMachine::from_state(good.clone()).is_ok());

    let mut cases: Vec<(&str, State)> = Vec::new();
    let mut s = good.clone();
    s.hosts.push(s.hosts[0].clone());
    cases.push(("host id", s));
    let mut s = good.clone();
    s.networks.push(s.networks[0].clone());
    cases.push(("network id", s));
    let mut s = good.clone();
    s.networks.push(Network {
        id: id(2),
        vni: 999,
        ..s.networks[0].clone()
    });
    cases.push(("network name", s));
    let mut s = good.clone();
    s.networks.push(Network {
        id: id(2),
        name: "x".into(),
        ..s.networks[0].clone()
    });
    cases.push(("VNI", s));
    let mut s = good.clone();
    s.networks[0].subnet = None;
    cases.push(("no subnet", s));
    let mut s = good.clone();
    s.networks[0].subnet = Some(cidr("10.0.0.1/24"));
    cases.push(("host bits", s));
    let mut s = good.clone();
    s.endpoints.push(s.endpoints[0].clone());
    cases.push(("endpoint id", s));
    let mut s = good.clone();
    s.endpoints.push(Endpoint {
        id: id(11),
        ..s.endpoints[0].clone()
    });
    cases.push(("used twice", s));
    let mut s = good.clone();
    s.endpoints[0].ipv4 = ip("10.9.9.9");
    cases.push(("outside", s));
    let mut s = good.clone();
    s.networks[0].ip_range = Some(cidr("10.0.0.1/25"));
    cases.push(("invalid ip range 10.0.0.1/25: host bits", s));
    let mut s = good.clone();
    s.networks[0].ip_range = Some(cidr("10.0.0.0/16"));
    cases.push(("ip range 10.0.0.0/16 is outside subnet 10.0.0.0/24", s));
    let mut s = good;
    s.endpoints[0].network_id = id(9);
    cases.push(("unknown network", s));

    for (what, state) in cases {
        let err = StateMachine::from_state(state).expect_err(what);
        assert!(err.to_string().starts_with("inconsistent state: "), "{err}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}
