//! A proposal applied twice: the second copy changes nothing and gets the first answer.

use prost::Message;

use super::super::testing::{
    add_host, connect, create, machine, machine_with_net1, remove_network,
};
use super::{StateMachine, REMEMBERED};

#[test]
fn a_create_applied_twice_creates_once_and_answers_the_same() {
    let mut m = machine();
    let first = m.apply_proposal(7, &create("net1", 1).into());
    assert!(first.is_ok(), "{first:?}");
    let after_first = m.to_state().encode_to_vec();
    let again = m.apply_proposal(7, &create("net1", 1).into());
    assert_eq!(again, first);
    assert_eq!(m.to_state().encode_to_vec(), after_first);
    assert_eq!(m.to_state().networks.len(), 1);
}

#[test]
fn a_connect_applied_twice_allocates_one_address() {
    let mut m = machine_with_net1();
    let first = m.apply_proposal(9, &connect(10, 1, "c1").into());
    assert!(first.is_ok(), "{first:?}");
    let after_first = m.clone();
    let again = m.apply_proposal(9, &connect(10, 1, "c1").into());
    assert_eq!(again, first);
    assert_eq!(m, after_first);
    assert_eq!(m.to_state().endpoints.len(), 1);
}

#[test]
fn a_refusal_is_repeated_even_when_the_command_would_now_succeed() {
    let mut m = machine();
    m.apply_proposal(1, &create("net1", 1).into())
        .expect("created");
    let refused = m
        .apply_proposal(2, &create("net1", 2).into())
        .expect_err("name in use");
    // The duplicate comes after the name became free: it must still not create.
    m.apply_proposal(3, &remove_network(1)).expect("removed");
    let state = m.to_state().clone();
    let again = m
        .apply_proposal(2, &create("net1", 2).into())
        .expect_err("remembered refusal");
    assert_eq!(again.to_string(), refused.to_string());
    assert_eq!(again.code(), refused.code());
    assert_eq!(again.exit_code(), refused.exit_code());
    assert_eq!(m.to_state(), state);
}

#[test]
fn the_memory_survives_a_snapshot() {
    let mut m = machine();
    m.apply_proposal(5, &add_host("h2", "192.168.1.2"))
        .expect("added");
    let first = m.apply_proposal(6, &create("net1", 1).into());
    let refused = m.apply_proposal(8, &create("net1", 2).into());
    let mut back = StateMachine::from_snapshot(m.to_state().clone(), m.recent()).expect("loads");
    assert_eq!(back, m);
    let state = back.to_state().clone();
    assert_eq!(back.apply_proposal(6, &create("net1", 1).into()), first);
    let again = back.apply_proposal(8, &create("net1", 2).into());
    assert_eq!(
        again.map_err(|r| r.to_string()),
        refused.map_err(|r| r.to_string())
    );
    assert_eq!(back.to_state(), state);
}

#[test]
fn the_memory_is_bounded_and_forgets_the_oldest() {
    let mut m = machine();
    for id in 0..(REMEMBERED as u64 + 10) {
        let _ = m.apply_proposal(id, &vxnet_proto::Command { kind: None });
    }
    let recent = m.recent();
    assert_eq!(recent.len(), REMEMBERED);
    assert_eq!(recent[0].proposal_id, 10);
    assert!(StateMachine::from_snapshot(m.to_state().clone(), recent).is_ok());
}

#[test]
fn a_snapshot_remembering_a_proposal_twice_is_refused() {
    let mut m = machine();
    m.apply_proposal(1, &create("net1", 1).into())
        .expect("created");
    let mut recent = m.recent();
    recent.push(recent[0].clone());
    assert!(StateMachine::from_snapshot(m.to_state().clone(), recent).is_err());
}
