use super::*;

fn ids(v: &[u64]) -> BTreeSet<u64> {
    v.iter().copied().collect()
}

fn membership(voters: &[u64], learners: &[u64]) -> Membership {
    Membership {
        voters: ids(voters),
        learners: ids(learners),
        ..Membership::default()
    }
}

fn joiner(raft_id: u64) -> Joiner {
    Joiner {
        raft_id,
        has_host_id: true,
        recorded: Recorded::No,
    }
}

fn progress(raft_id: u64, matched: u64, active: bool) -> Progress {
    Progress {
        raft_id,
        matched,
        active,
    }
}

/// Every configuration of hosts 1..=4 (each a voter, a learner or absent), plain, joint, with
/// or without a change pending.
fn all_memberships() -> Vec<Membership> {
    let mut out = Vec::new();
    for roles in 0..3u32.pow(4) {
        let mut m = Membership::default();
        for id in 1..=4u64 {
            match roles / 3u32.pow(id as u32 - 1) % 3 {
                1 => {
                    m.voters.insert(id);
                }
                2 => {
                    m.learners.insert(id);
                }
                _ => {}
            }
        }
        for joint in [false, true] {
            for change_pending in [false, true] {
                let mut m = m.clone();
                if joint {
                    m.voters_outgoing = ids(&[1, 2]);
                }
                m.change_pending = change_pending;
                out.push(m);
            }
        }
    }
    out
}

/// The configuration after `changes`, as raft-rs would make it.
fn after(m: &Membership, changes: &[Change]) -> Membership {
    let mut m = m.clone();
    for change in changes {
        match *change {
            Change::AddVoter(id) => {
                m.learners.remove(&id);
                m.voters.insert(id);
            }
            Change::AddLearner(id) => {
                m.voters.remove(&id);
                m.learners.insert(id);
            }
            Change::Remove(id) => {
                m.voters.remove(&id);
                m.learners.remove(&id);
            }
        }
    }
    m
}

#[test]
fn joiners_always_start_as_learners() {
    for voters in 0..=4u64 {
        let voter_ids: Vec<u64> = (1..=voters).collect();
        let plan = plan_join(&membership(&voter_ids, &[]), joiner(9));
        assert_eq!(
            plan,
            JoinPlan::Add(Change::AddLearner(9)),
            "{voters} voters"
        );
    }
}

#[test]
fn join_in_every_configuration() {
    for m in all_memberships() {
        let busy = m.change_pending || !m.voters_outgoing.is_empty();
        for raft_id in 0..=5 {
            for has_host_id in [false, true] {
                for recorded in [Recorded::No, Recorded::Same, Recorded::Clash] {
                    let who = Joiner {
                        raft_id,
                        has_host_id,
                        recorded,
                    };
                    let plan = plan_join(&m, who);
                    let valid = raft_id != 0 && has_host_id;
                    let retry = valid && m.is_member(raft_id) && recorded == Recorded::Same;
                    let clash = valid && recorded == Recorded::Clash;
                    match plan {
                        // A retry is answered as then, whatever else is going on.
                        JoinPlan::AlreadyMember => assert!(retry, "{m:?} {who:?}"),
                        JoinPlan::NoId => assert!(!valid, "{m:?} {who:?}"),
                        // A copied data dir is refused, whatever else is going on.
                        JoinPlan::Clash => assert!(clash, "{m:?} {who:?}"),
                        JoinPlan::Busy => {
                            assert!(!retry && !clash && valid && busy, "{m:?} {who:?}")
                        }
                        JoinPlan::Add(change) => {
                            assert!(!retry && !clash && valid && !busy, "{m:?} {who:?}");
                            assert_eq!(change, Change::AddLearner(raft_id));
                            assert!(after(&m, &[change]).is_member(raft_id));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_caught_up_learner_is_promoted_while_voters_are_missing() {
    let m = membership(&[1], &[2, 3]);
    // Not answering, or too far behind: not yet.
    assert_eq!(plan_promotion(&m, [progress(2, 500, false)], 500, 3), None);
    assert_eq!(plan_promotion(&m, [progress(2, 10, true)], 500, 3), None);
    // Waiting for its first snapshot.
    assert_eq!(plan_promotion(&m, [progress(2, 0, true)], 1, 3), None);
    // Caught up (within the slack): the one with the most log, then the lowest id.
    let behind = 500 - CAUGHT_UP_SLACK;
    assert_eq!(
        plan_promotion(&m, [progress(2, behind, true)], 500, 3),
        Some(2)
    );
    assert_eq!(
        plan_promotion(&m, [progress(3, 499, true), progress(2, 498, true)], 500, 3),
        Some(3)
    );
    assert_eq!(
        plan_promotion(&m, [progress(3, 500, true), progress(2, 500, true)], 500, 3),
        Some(2)
    );
    // A progress entry of a host that is not a learner (a voter, a stranger) is no candidate.
    assert_eq!(plan_promotion(&m, [progress(1, 500, true)], 500, 3), None);
    assert_eq!(plan_promotion(&m, [progress(7, 500, true)], 500, 3), None);
}

#[test]
fn promotion_in_every_configuration() {
    for m in all_memberships() {
        let busy = m.change_pending || !m.voters_outgoing.is_empty();
        for max_voters in 1..=4 {
            let all: Vec<Progress> = (1..=4).map(|id| progress(id, 100, true)).collect();
            match plan_promotion(&m, all, 100, max_voters) {
                Some(id) => {
                    assert!(!busy && m.voters.len() < max_voters, "{m:?}");
                    assert_eq!(Some(&id), m.learners.first(), "{m:?}");
                    let next = after(&m, &[Change::AddVoter(id)]);
                    assert!(next.voters.len() <= max_voters);
                }
                None => assert!(busy || m.voters.len() >= max_voters || m.learners.is_empty()),
            }
        }
    }
}

#[test]
fn a_leaving_voter_is_replaced_by_the_lowest_caught_up_learner() {
    let m = membership(&[1, 2, 3], &[5, 4, 6]);
    assert_eq!(
        plan_leave(&m, 2, 1, &ids(&[4, 5])),
        LeavePlan::Change(vec![Change::Remove(2), Change::AddVoter(4)])
    );
    assert_eq!(
        plan_leave(&m, 2, 1, &ids(&[6, 5])),
        LeavePlan::Change(vec![Change::Remove(2), Change::AddVoter(5)])
    );
    // No learner caught up: the voter goes, and promotion fills its place later.
    assert_eq!(
        plan_leave(&m, 2, 1, &ids(&[])),
        LeavePlan::Change(vec![Change::Remove(2)])
    );
    // A leaving learner just goes; so does a voter with no learner to replace it.
    assert_eq!(
        plan_leave(&m, 5, 1, &ids(&[4, 5])),
        LeavePlan::Change(vec![Change::Remove(5)])
    );
    assert_eq!(
        plan_leave(&membership(&[1, 2, 3], &[]), 3, 1, &ids(&[])),
        LeavePlan::Change(vec![Change::Remove(3)])
    );
}

#[test]
fn leave_in_every_configuration() {
    for m in all_memberships() {
        let busy = m.change_pending || !m.voters_outgoing.is_empty();
        for caught_up in [ids(&[]), ids(&[1, 2, 3, 4]), ids(&[4])] {
            for own_id in 1..=4 {
                for leaver in 1..=4 {
                    let plan = plan_leave(&m, leaver, own_id, &caught_up);
                    let ready: Vec<u64> = m
                        .learners
                        .iter()
                        .copied()
                        .filter(|id| caught_up.contains(id))
                        .collect();
                    match plan {
                        LeavePlan::HandOver => assert_eq!(leaver, own_id),
                        LeavePlan::Busy => assert!(leaver != own_id && busy, "{m:?}"),
                        LeavePlan::Change(changes) => {
                            assert!(leaver != own_id && !busy, "{m:?}");
                            assert_eq!(changes[0], Change::Remove(leaver));
                            let next = after(&m, &changes);
                            assert!(!next.is_member(leaver));
                            let was_voter = m.voters.contains(&leaver);
                            if let [_, Change::AddVoter(promoted)] = changes[..] {
                                assert!(was_voter);
                                assert_eq!(Some(&promoted), ready.first());
                                assert_eq!(next.voters.len(), m.voters.len());
                            } else {
                                assert_eq!(changes.len(), 1, "{changes:?}");
                                assert!(!was_voter || ready.is_empty());
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn successor_is_active_with_most_log_then_lowest_id() {
    let p = progress;
    assert_eq!(best_successor(1, []), None);
    assert_eq!(best_successor(1, [p(1, 100, true)]), None);
    assert_eq!(best_successor(1, [p(1, 9, true), p(2, 5, false)]), None);
    assert_eq!(
        best_successor(1, [p(1, 9, true), p(2, 5, true), p(3, 7, true)]),
        Some(3)
    );
    assert_eq!(
        best_successor(1, [p(4, 7, true), p(2, 7, true), p(3, 7, false)]),
        Some(2)
    );
    assert_eq!(
        best_successor(2, [p(3, 1, true), p(4, 9, false), p(1, 1, true)]),
        Some(1)
    );
}

#[test]
fn joint_configurations_are_left_once_nothing_is_pending() {
    for m in all_memberships() {
        let joint = !m.voters_outgoing.is_empty();
        assert_eq!(must_leave_joint(&m), joint && !m.change_pending, "{m:?}");
    }
}

#[test]
fn membership_from_conf_state() {
    let conf = ConfState {
        voters: vec![3, 1],
        learners: vec![4],
        voters_outgoing: vec![1, 2],
        ..Default::default()
    };
    let m = Membership::new(&conf, true);
    assert_eq!(m.voters, ids(&[1, 3]));
    assert_eq!(m.learners, ids(&[4]));
    assert_eq!(m.voters_outgoing, ids(&[1, 2]));
    assert!(m.change_pending);
    assert!(m.is_member(4) && m.is_member(3) && !m.is_member(2));
}
