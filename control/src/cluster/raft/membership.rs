//! The membership policy, as pure functions of the configuration: who votes, who is a learner,
//! which learner replaces a leaving voter, when a joint configuration is left. The node asks
//! these questions on the leader and turns the answers into raft-rs conf changes; nothing here
//! touches raft-rs, the state or the network.
//!
//! Rules:
//! - One change at a time: while a conf change is proposed but not applied, or the
//!   configuration is joint, every join and leave is answered [`JoinPlan::Busy`] /
//!   [`LeavePlan::Busy`], and the requester asks again shortly.
//! - A joining host always starts as a learner: it has no data yet, and a voter that cannot
//!   be reached or has not caught up would count against the quorum (a one-host cluster whose
//!   newcomer never answered would be stuck for good). The leader promotes a learner to voter
//!   ([`plan_promotion`]) once it is caught up ([`Progress::caught_up`]) and there are fewer
//!   than `max_voters` voters.
//! - A joiner whose host id or raft id another member already holds is refused
//!   ([`Recorded::Clash`]): its data dir was copied, and adding it would overwrite the other
//!   host's record and give two processes one raft id.
//! - A leaving voter is replaced, in the same change, by the caught-up learner with the lowest
//!   raft id (if there is one), so the number of voters holds; otherwise promotion fills the
//!   place later. A leaving learner just goes. `cluster remove` of a dead host is a leave
//!   asked by another host.
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
    /// What the replicated state already holds of the joiner's ids.
    pub recorded: Recorded,
}

/// What the replicated state holds of a joiner's host id and raft id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Neither id.
    No,
    /// This very host: same host id, raft id and address (a retry of a join that went through).
    Same,
    /// Another host holds the host id or the raft id, or the host id is recorded at another
    /// address: the joiner's data dir is a copy.
    Clash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinPlan {
    /// A member already, and recorded: a retry of a join that went through. Answer as then.
    AlreadyMember,
    /// The request names no raft id or no host id.
    NoId,
    /// See [`Recorded::Clash`].
    Clash,
    Busy,
    Add(Change),
}

/// What the leader does with a join request.
pub fn plan_join(membership: &Membership, joiner: Joiner) -> JoinPlan {
    if joiner.raft_id == raft::INVALID_ID || !joiner.has_host_id {
        return JoinPlan::NoId;
    }
    match joiner.recorded {
        Recorded::Same if membership.is_member(joiner.raft_id) => return JoinPlan::AlreadyMember,
        Recorded::Clash => return JoinPlan::Clash,
        Recorded::Same | Recorded::No => {}
    }
    if membership.busy() {
        return JoinPlan::Busy;
    }
    JoinPlan::Add(Change::AddLearner(joiner.raft_id))
}

/// The learner the leader promotes to voter now, if any: only while there are fewer than
/// `max_voters` voters and no change is under way, and only a caught-up one (the one with the
/// most log, the lowest raft id among equals). `committed` is the leader's commit index.
pub fn plan_promotion(
    membership: &Membership,
    learners: impl IntoIterator<Item = Progress>,
    committed: u64,
    max_voters: usize,
) -> Option<u64> {
    if membership.busy() || membership.voters.len() >= max_voters {
        return None;
    }
    learners
        .into_iter()
        .filter(|p| membership.learners.contains(&p.raft_id) && p.caught_up(committed))
        .max_by_key(|p| (p.matched, std::cmp::Reverse(p.raft_id)))
        .map(|p| p.raft_id)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeavePlan {
    /// The leader itself is leaving: hand leadership over, and have the requester ask again.
    HandOver,
    Busy,
    /// The steps of the one change that removes the host.
    Change(Vec<Change>),
}

/// What the leader `own_id` does with a request to remove the host `leaver` (a host of the
/// replicated state; one that is not there has already left), asked by the host itself
/// (`leave`) or by another (`remove`). `caught_up` are the learners that may replace a voter.
pub fn plan_leave(
    membership: &Membership,
    leaver: u64,
    own_id: u64,
    caught_up: &BTreeSet<u64>,
) -> LeavePlan {
    if leaver == own_id {
        return LeavePlan::HandOver;
    }
    if membership.busy() {
        return LeavePlan::Busy;
    }
    let mut changes = vec![Change::Remove(leaver)];
    if membership.voters.contains(&leaver) {
        let replacement = membership
            .learners
            .iter()
            .find(|id| caught_up.contains(id) && **id != leaver);
        if let Some(&learner) = replacement {
            changes.push(Change::AddVoter(learner));
        }
    }
    LeavePlan::Change(changes)
}

/// How far a member is, as the leader tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub raft_id: u64,
    /// The highest log index known to be replicated on it.
    pub matched: u64,
    /// Whether it answered recently.
    pub active: bool,
}

/// How many entries behind the leader's commit index a learner may be and still count as
/// caught up: under a steady stream of writes it is never exactly at the commit index.
pub const CAUGHT_UP_SLACK: u64 = 64;

impl Progress {
    /// Answering, and within [`CAUGHT_UP_SLACK`] entries of `committed`.
    pub fn caught_up(&self, committed: u64) -> bool {
        self.active && self.matched > 0 && self.matched + CAUGHT_UP_SLACK >= committed
    }
}

/// The voter other than `own_id` most likely to win a leadership transfer: an active one with
/// the most log, the lowest raft id among equals. `None` if no other voter is active.
pub fn best_successor(own_id: u64, voters: impl IntoIterator<Item = Progress>) -> Option<u64> {
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
