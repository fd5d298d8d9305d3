//! The membership policy, as pure functions of the configuration: who votes, who is a learner,
//! which learner replaces a leaving voter, when a joint configuration is left. The node asks
//! these questions on the leader and turns the answers into raft-rs conf changes; nothing here
//! touches raft-rs, the state or the network.
//!
//! Rules:
//! - One change at a time: while a conf change is proposed but not applied, or the
//!   configuration is joint, every join and leave is answered [`JoinPlan::Busy`] /
//!   [`LeavePlan::Busy`], and the requester asks again shortly.
//! - A joining host votes while there are fewer than `max_voters` voters, and is a learner
//!   otherwise.
//! - A leaving voter is replaced, in the same change, by the learner with the lowest raft id
//!   (if there is a learner), so the number of voters holds. A leaving learner just goes.
//! - The leader never removes itself: it hands leadership to [`best_successor`] and tells the
//!   requester to ask the new leader, which then removes it.
//! - A joint configuration left behind (raft-rs leaves one by itself, unless a leader change
//!   interrupted that) is left by the next leader ([`must_leave_joint`]).

use std::collections::BTreeSet;

use raft::eraftpb::ConfState;

/// The configuration as the policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    /// The voters of the configuration being left; non-empty while it is joint.
    pub voters_outgoing: BTreeSet<u64>,
    /// A conf change has been proposed and not applied yet.
    pub change_pending: bool,
}

impl Membership {
    pub fn new(conf: &ConfState, change_pending: bool) -> Membership {
        Membership {
            voters: conf.voters.iter().copied().collect(),
            learners: conf.learners.iter().copied().collect(),
            voters_outgoing: conf.voters_outgoing.iter().copied().collect(),
            change_pending,
        }
    }

    pub fn is_member(&self, raft_id: u64) -> bool {
        self.voters.contains(&raft_id) || self.learners.contains(&raft_id)
    }

    fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    fn busy(&self) -> bool {
        self.change_pending || self.is_joint()
    }
}

/// One step of a membership change; several steps go in one (joint) change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Adds a host as a voter, or promotes a learner.
    AddVoter(u64),
    AddLearner(u64),
    Remove(u64),
}

/// Who asks to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joiner {
    /// 0 if the request carried none.
    pub raft_id: u64,
    /// Whether the request carried a host id.
    pub has_host_id: bool,
    /// Whether the replicated state already holds this host with this raft id.
    pub recorded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinPlan {
    /// A member already, and recorded: a retry of a join that went through. Answer as then.
    AlreadyMember,
    /// The request names no raft id or no host id.
    NoId,
    Busy,
    Add(Change),
}

/// What the leader does with a join request.
pub fn plan_join(membership: &Membership, joiner: Joiner, max_voters: usize) -> JoinPlan {
    if membership.is_member(joiner.raft_id) && joiner.recorded {
        return JoinPlan::AlreadyMember;
    }
    if joiner.raft_id == raft::INVALID_ID || !joiner.has_host_id {
        return JoinPlan::NoId;
    }
    if membership.busy() {
        return JoinPlan::Busy;
    }
    if membership.voters.len() < max_voters {
        JoinPlan::Add(Change::AddVoter(joiner.raft_id))
    } else {
        JoinPlan::Add(Change::AddLearner(joiner.raft_id))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeavePlan {
    /// The leader itself is leaving: hand leadership over, and have the requester ask again.
    HandOver,
    Busy,
    /// The steps of the one change that removes the host.
    Change(Vec<Change>),
}

/// What the leader `own_id` does with a leave request from the host `leaver` (a host of the
/// replicated state; one that is not there has already left).
pub fn plan_leave(membership: &Membership, leaver: u64, own_id: u64) -> LeavePlan {
    if leaver == own_id {
        return LeavePlan::HandOver;
    }
    if membership.busy() {
        return LeavePlan::Busy;
    }
    let mut changes = vec![Change::Remove(leaver)];
    if membership.voters.contains(&leaver) {
        if let Some(&learner) = membership.learners.first() {
            changes.push(Change::AddVoter(learner));
        }
    }
    LeavePlan::Change(changes)
}

/// How far a voter is, as the leader tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoterProgress {
    pub raft_id: u64,
    /// The highest log index known to be replicated on it.
    pub matched: u64,
    /// Whether it answered recently.
    pub active: bool,
}

/// The voter other than `own_id` most likely to win a leadership transfer: an active one with
/// the most log, the lowest raft id among equals. `None` if no other voter is active.
pub fn best_successor(own_id: u64, voters: impl IntoIterator<Item = VoterProgress>) -> Option<u64> {
    voters
        .into_iter()
        .filter(|v| v.raft_id != own_id && v.active)
        .max_by_key(|v| (v.matched, std::cmp::Reverse(v.raft_id)))
        .map(|v| v.raft_id)
}

/// Whether the leader must propose leaving a joint configuration: it is joint, and no change
/// (which would be that very leave) is pending.
pub fn must_leave_joint(membership: &Membership) -> bool {
    membership.is_joint() && !membership.change_pending
}

#[cfg(test)]
mod tests;
