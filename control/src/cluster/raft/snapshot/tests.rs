use vxnet_proto::{command, AddHost, Command, CreateNetwork};

use super::*;

fn host(n: u8) -> Host {
    Host {
        id: format!("{n:02x}").repeat(32),
        name: format!("host{n}"),
        addr: u32::from(std::net::Ipv4Addr::new(198, 18, 0, n)),
        raft_id: u64::from(n),
        cluster_port: 7946,
        seal_salt: 0,
    }
}

fn populated() -> StateMachine {
    let mut sm = StateMachine::new();
    let commands = [
        command::Kind::AddHost(AddHost {
            host: Some(host(1)),
        }),
        command::Kind::CreateNetwork(CreateNetwork {
            id: "ab".repeat(32),
            name: "app".into(),
            mtu: 1450,
            ..Default::default()
        }),
    ];
    for kind in commands {
        sm.apply(&Command { kind: Some(kind) }).expect("applies");
    }
    sm
}

#[test]
fn state_round_trips_to_the_same_bytes() {
    let sm = populated();
    let data = encode(&sm);
    let back = decode(&data).expect("decodes");
    assert_eq!(back, sm);
    assert_eq!(encode(&back), data);
}

#[test]
fn data_without_a_state_is_an_error() {
    assert!(matches!(decode(&[]), Err(SnapshotError::NoState)));
    let empty = Snapshot::default().encode_to_vec();
    assert!(matches!(decode(&empty), Err(SnapshotError::NoState)));
    let err = decode(&[]).expect_err("an error");
    assert_eq!(err.to_string(), "the snapshot holds no state");
}

#[test]
fn garbage_is_undecodable() {
    let err = decode(&[0xff, 0xff, 0xff]).expect_err("an error");
    assert!(matches!(err, SnapshotError::Undecodable(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("undecodable snapshot: "),
        "{err}"
    );
}

#[test]
fn a_state_that_breaks_the_invariants_is_refused() {
    let state = State {
        hosts: vec![host(1), host(1)],
        ..Default::default()
    };
    let data = Snapshot {
        state: Some(state),
        ..Default::default()
    }
    .encode_to_vec();
    let err = decode(&data).expect_err("an error");
    assert!(matches!(err, SnapshotError::Invalid(_)), "{err:?}");
}

#[test]
fn bootstrap_holds_the_founder_as_only_voter_and_host() {
    let founder = host(7);
    let snapshot = bootstrap(&founder);
    let meta = snapshot.get_metadata();
    assert_eq!(meta.index, BOOTSTRAP_INDEX);
    assert_eq!(meta.term, 1);
    assert_eq!(meta.get_conf_state().voters, vec![7]);
    assert!(meta.get_conf_state().learners.is_empty());
    let sm = decode(snapshot.get_data()).expect("decodes");
    assert_eq!(sm.hosts(), [founder].as_slice());
    assert!(sm.networks().is_empty());
}

#[test]
fn remembered_proposal_outcomes_travel_in_the_snapshot() {
    let mut sm = populated();
    let create = Command {
        kind: Some(command::Kind::CreateNetwork(CreateNetwork {
            id: "cd".repeat(32),
            name: "web".into(),
            mtu: 1450,
            ..Default::default()
        })),
    };
    let first = sm.apply_proposal(42, &create);
    assert!(first.is_ok(), "{first:?}");
    let data = encode(&sm);
    let mut back = decode(&data).expect("decodes");
    assert_eq!(back, sm);
    assert_eq!(encode(&back), data);
    // The restored machine answers the retry as the first time and creates nothing.
    assert_eq!(back.apply_proposal(42, &create), first);
    assert_eq!(back.to_state(), sm.to_state());
}
