//! The commands this host proposes for its own callers ([`super::RaftHandle::propose`]):
//! kept until their entry is applied here, and proposed again until then.
//!
//! Rules:
//! - raft-rs forwards a follower's proposal to the leader it knows, and a message to a leader
//!   that just died is lost without a word. So a command stays here, with its encoded
//!   proposal, and is proposed again (same id) whenever this node sees a new leader or a new
//!   term — including when it becomes the leader — and every election timeout while its entry
//!   is not applied, until the caller's deadline. While there is no leader it waits and is
//!   proposed as soon as one is known.
//! - Read barriers (ReadIndex) asked for local callers are asked again on a change of leader
//!   or term, for the same reason.
//! - Proposing an id again can put it in the log twice; the state machine applies a proposal
//!   id at most once and answers a copy with the first outcome (see the `crate::state` docs),
//!   so a retry never applies a command twice, and the caller gets one answer.

use std::time::Instant;

use prost::Message as _;
use raft::INVALID_ID;
use vxnet_proto::{Command, Proposal};

use super::{Node, Pending, Waiter, ELECTION_TICKS, HEARTBEAT_TICKS, TICK};
use crate::cluster::raft::transport::MAX_PROPOSAL;
use crate::cluster::ClusterError;
use crate::state::Applied;

/// A read barrier asked for a local caller, not yet answered.
pub(super) struct AskedRead {
    pub(super) first_asked: Instant,
    pub(super) last_asked: Instant,
    pub(super) reply: std::sync::mpsc::Sender<Result<(), ClusterError>>,
}

/// A local proposal still to be applied.
pub(super) struct Retry {
    /// The encoded `Proposal`, as proposed the first time.
    data: Vec<u8>,
    /// The caller's deadline: no point proposing after it.
    deadline: Instant,
    /// When it was last handed to raft-rs (`None`: not yet, for want of a leader).
    proposed: Option<Instant>,
}

impl Node {
    /// Proposes `command` for a local caller, answered on `reply` once applied here.
    pub(super) fn propose_local(
        &mut self,
        command: Command,
        deadline: Instant,
        reply: std::sync::mpsc::Sender<Result<Applied, ClusterError>>,
    ) {
        let id = self.next_id();
        let data = Proposal {
            id,
            command: Some(command),
        }
        .encode_to_vec();
        // The transport caps raft messages by what one proposal may be (see its module docs).
        if data.len() > MAX_PROPOSAL {
            let _ = reply.send(Err(ClusterError::TooLarge {
                len: data.len(),
                max: MAX_PROPOSAL,
            }));
            return;
        }
        let retry = Retry {
            data,
            deadline,
            proposed: None,
        };
        self.pending.insert(
            id,
            Pending {
                waiter: Waiter::Local(reply),
                since: Instant::now(),
                retry: Some(retry),
            },
        );
        self.try_propose(id);
    }

    /// Proposes again what is due: everything after a change of leader or term, otherwise
    /// what has waited an election timeout since it was last proposed. See the module docs.
    pub(super) fn retry_proposals(&mut self) {
        let seen = (self.raw.raft.leader_id, self.raw.raft.term);
        let changed = seen != self.leader_seen;
        self.leader_seen = seen;
        if seen.0 == INVALID_ID {
            return;
        }
        let now = Instant::now();
        self.retry_reads(changed, now);
        let every = TICK * ELECTION_TICKS as u32;
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.retry.as_ref().is_some_and(|r| {
                    now < r.deadline
                        && (changed || r.proposed.is_none_or(|at| now.duration_since(at) >= every))
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.try_propose(id);
        }
    }

    /// Asks again for the read barriers not yet answered: all of them after a change of leader
    /// or term, otherwise those asked a heartbeat ago. A ReadIndex forwarded to a leader that
    /// died is lost like a proposal, and a leader that has not yet committed in its term drops
    /// it; raft-rs answers each context once, and a late answer to an earlier ask finds the
    /// request gone.
    fn retry_reads(&mut self, changed: bool, now: Instant) {
        let every = TICK * HEARTBEAT_TICKS as u32;
        for (id, read) in self.reads_asked.iter_mut() {
            if changed || now.duration_since(read.last_asked) >= every {
                read.last_asked = now;
                self.raw.read_index(id.to_le_bytes().to_vec());
            }
        }
    }

    /// Hands proposal `id` to raft-rs if a leader is known; a proposal raft-rs drops (no
    /// leader, a leader transfer) is simply tried again later.
    fn try_propose(&mut self, id: u64) {
        if self.raw.raft.leader_id == INVALID_ID {
            return;
        }
        let Some(retry) = self.pending.get_mut(&id).and_then(|p| p.retry.as_mut()) else {
            return;
        };
        retry.proposed = Some(Instant::now());
        let data = retry.data.clone();
        if let Err(e) = self.raw.propose(vec![], data) {
            tracing::debug!(error = %e, id, "proposal dropped; proposing it again later");
        }
    }
}
