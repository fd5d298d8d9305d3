//! The requests other hosts send this node over the transport: join and leave (answered by
//! the leader only) and reachability.
//!
//! Rules:
//! - A host that is not the leader answers `NotLeader`, with the leader's address when it
//!   knows one; the requester asks there.
//! - What a join or leave changes is decided by the membership policy; this turns the
//!   decision into one `ConfChangeV2` whose context is the matching host command, and answers
//!   once that entry is applied here, with the outcome of applying the command.
//! - A retry of a join or leave that went through is answered as the first time.
//! - A join must carry the join token's secret (the replicated one, compared in constant
//!   time) and the joiner's public key; the leader issues the joiner's certificate for its
//!   raft id before it proposes the change, and hands it over, with the CA, only in the
//!   answer that says the change was applied. A wrong secret is refused (and logged at warn
//!   at most once a minute: a token holder that lost the race with `--rotate` retries). A
//!   raft id that was revoked (a removed host's) clashes like one a member holds.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use prost::Message as _;
use raft::INVALID_ID;
use tokio::sync::oneshot;
use vxnet_proto::{
    command, envelope, AddHost, Command, Envelope, Host, JoinRequest, JoinResponse, LeaveRequest,
    LeaveResponse, Proposal, ReachabilityResponse, RemoveHost,
};

use super::super::membership::{self, Change, JoinPlan, Joiner, LeavePlan, Progress, Recorded};
use super::{conf_change, single, Node, Waiter};

/// How often a wrong join secret is logged at most.
const BAD_SECRET_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
use crate::cluster::Rejection;

impl Node {
    pub(super) fn handle_request(&mut self, envelope: Envelope, reply: oneshot::Sender<Envelope>) {
        match envelope.kind {
            Some(envelope::Kind::JoinRequest(req)) => self.handle_join(req, reply),
            Some(envelope::Kind::LeaveRequest(req)) => self.handle_leave(req, reply),
            Some(envelope::Kind::ReachabilityRequest(_)) => {
                let _ = reply.send(self.reachability());
            }
            _ => {
                let _ = reply.send(Envelope::default());
            }
        }
    }

    /// Whom the leader hears from; a follower only hears from the leader, so it says nothing.
    fn reachability(&self) -> Envelope {
        let leader = self.is_leader();
        let reachable = if leader {
            let view = self.view.read().unwrap_or_else(|e| e.into_inner());
            view.reachable.iter().copied().collect()
        } else {
            Vec::new()
        };
        Envelope {
            kind: Some(envelope::Kind::ReachabilityResponse(ReachabilityResponse {
                reachable,
                leader,
            })),
        }
    }

    /// The leader's `A.B.C.D:PORT`, or empty while there is none (or it is not in the state).
    fn leader_addr(&self) -> String {
        let leader = self.raw.raft.leader_id;
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .hosts()
            .iter()
            .find(|h| h.raft_id == leader && leader != INVALID_ID)
            .map(|h| format!("{}:{}", Ipv4Addr::from(h.addr), h.cluster_port))
            .unwrap_or_default()
    }

    /// A join answer: on success the members (so the newcomer can reach them before the log
    /// says who they are), otherwise where the leader is.
    /// `Ok` carries the joiner's certificate.
    pub(super) fn join_reply(&self, outcome: Result<Vec<u8>, Rejection>) -> Envelope {
        let (code, error) = Rejection::to_answer(&outcome.as_ref().map(drop).map_err(Clone::clone));
        let mut answer = JoinResponse {
            error,
            code,
            ..Default::default()
        };
        match outcome {
            Ok(cert) => {
                let state = self.state.read().unwrap_or_else(|e| e.into_inner());
                answer.members = state.hosts().to_vec();
                answer.ca_cert_pem = self.tls.ca().cert_pem().to_owned();
                answer.ca_key_pem = self.tls.ca().key_pem();
                answer.host_cert = cert;
            }
            Err(_) => answer.leader_addr = self.leader_addr(),
        }
        Envelope {
            kind: Some(envelope::Kind::JoinResponse(answer)),
        }
    }

    pub(super) fn leave_reply(&self, outcome: Result<(), Rejection>) -> Envelope {
        let (code, error) = Rejection::to_answer(&outcome);
        let leader_addr = match outcome {
            Ok(()) => String::new(),
            Err(_) => self.leader_addr(),
        };
        Envelope {
            kind: Some(envelope::Kind::LeaveResponse(LeaveResponse {
                error,
                leader_addr,
                code,
            })),
        }
    }

    fn handle_join(&mut self, req: JoinRequest, reply: oneshot::Sender<Envelope>) {
        let Some(host) = req.host else {
            let refusal = Rejection::bad_request("the join request names no host");
            let _ = reply.send(self.join_reply(Err(refusal)));
            return;
        };
        if !self.is_leader() {
            let _ = reply.send(self.join_reply(Err(Rejection::not_leader())));
            return;
        }
        if !self.secret_matches(&req.secret) {
            let now = std::time::Instant::now();
            if self
                .last_bad_secret_log
                .is_none_or(|at| now.duration_since(at) >= BAD_SECRET_LOG_EVERY)
            {
                self.last_bad_secret_log = Some(now);
                tracing::warn!(name = %host.name, "join refused: the token's secret is not this cluster's");
            }
            let refusal = Rejection::refused(
                "the token's secret is not this cluster's (rotated?); print the current token with \
                 `vxnet cluster token` on a member",
            );
            let _ = reply.send(self.join_reply(Err(refusal)));
            return;
        }
        let cert = match self.tls.ca().issue(host.raft_id, &req.public_key) {
            Ok(cert) => cert.to_vec(),
            Err(e) => {
                let refusal = Rejection::bad_request(format!("no certificate for the joiner: {e}"));
                let _ = reply.send(self.join_reply(Err(refusal)));
                return;
            }
        };
        let (recorded, clash) = self.recorded(&host);
        let joiner = Joiner {
            raft_id: host.raft_id,
            has_host_id: !host.id.is_empty(),
            recorded,
        };
        let change = match membership::plan_join(&self.membership(), joiner) {
            JoinPlan::AlreadyMember => {
                let _ = reply.send(self.join_reply(Ok(cert)));
                return;
            }
            JoinPlan::NoId => {
                let refusal = Rejection::bad_request("the joining host has no id");
                let _ = reply.send(self.join_reply(Err(refusal)));
                return;
            }
            JoinPlan::Clash => {
                let other = clash.unwrap_or_default();
                tracing::warn!(name = %host.name, raft_id = host.raft_id, clashes_with = %other.name, "join refused: ids of a member");
                let refusal = Rejection::refused(format!(
                    "its host id or raft id is already the member {} at {}: this host's data dir \
                     is a copy of that host's; start this host on an empty --data-dir",
                    other.name,
                    Ipv4Addr::from(other.addr),
                ));
                let _ = reply.send(self.join_reply(Err(refusal)));
                return;
            }
            JoinPlan::Busy => {
                let _ = reply.send(self.join_reply(Err(Rejection::busy())));
                return;
            }
            JoinPlan::Add(change) => change,
        };
        // The leader must be able to reach the newcomer as soon as the change commits.
        self.add_peer(&host);
        let command = command::Kind::AddHost(AddHost {
            host: Some(host.clone()),
        });
        match self.propose_membership(&[change], command) {
            Ok(id) => {
                let kind = single(change).get_change_type();
                tracing::info!(name = %host.name, raft_id = host.raft_id, ?kind, "adding a host to the cluster");
                self.wait_for(id, Waiter::Join(reply, cert));
            }
            Err(e) => {
                let _ = reply.send(self.join_reply(Err(e)));
            }
        }
    }

    fn handle_leave(&mut self, req: LeaveRequest, reply: oneshot::Sender<Envelope>) {
        if !self.is_leader() {
            let _ = reply.send(self.leave_reply(Err(Rejection::not_leader())));
            return;
        }
        let host = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .host(&req.host_id)
            .cloned();
        let Some(host) = host else {
            // Already gone: a retry of a leave that went through.
            let _ = reply.send(self.leave_reply(Ok(())));
            return;
        };
        let caught_up = self.caught_up_learners();
        let plan = membership::plan_leave(
            &self.membership(),
            host.raft_id,
            self.host.raft_id,
            &caught_up,
        );
        let changes = match plan {
            LeavePlan::HandOver => {
                // The new leader removes us once asked again.
                if let Some(to) = self.best_successor() {
                    self.raw.transfer_leader(to);
                }
                let _ = reply.send(self.leave_reply(Err(Rejection::not_leader())));
                return;
            }
            LeavePlan::Busy => {
                let _ = reply.send(self.leave_reply(Err(Rejection::busy())));
                return;
            }
            LeavePlan::Change(changes) => changes,
        };
        let command = command::Kind::RemoveHost(RemoveHost {
            host_id: host.id.clone(),
        });
        match self.propose_membership(&changes, command) {
            Ok(id) => {
                tracing::info!(name = %host.name, raft_id = host.raft_id, "removing a host from the cluster");
                self.wait_for(id, Waiter::Leave(reply));
            }
            Err(e) => {
                let _ = reply.send(self.leave_reply(Err(e)));
            }
        }
    }

    /// Proposes `changes` with `command` in the same entry; returns the proposal's id.
    fn propose_membership(
        &mut self,
        changes: &[Change],
        command: command::Kind,
    ) -> Result<u64, Rejection> {
        let id = self.next_id();
        let context = Proposal {
            id,
            command: Some(Command {
                kind: Some(command),
            }),
        }
        .encode_to_vec();
        self.raw
            .propose_conf_change(context, conf_change(changes))
            .map_err(|e| {
                Rejection::refused(format!("the leader refused the membership change: {e}"))
            })?;
        Ok(id)
    }

    /// Whether `secret` is the replicated join secret (never, while there is none).
    fn secret_matches(&self, secret: &[u8]) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let expected = state.join_secret();
        if expected.is_empty() || expected.len() != secret.len() {
            return false;
        }
        // Constant time: every byte is looked at whatever the first difference.
        expected
            .iter()
            .zip(secret)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// What the state holds of a joiner's ids, and the member it clashes with, if any.
    fn recorded(&self, joiner: &Host) -> (Recorded, Option<Host>) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        if state
            .revoked_raft_ids()
            .binary_search(&joiner.raft_id)
            .is_ok()
        {
            // A removed host's id: its certificate is refused for good.
            let removed = Host {
                name: format!("removed (raft id {})", joiner.raft_id),
                ..Host::default()
            };
            return (Recorded::Clash, Some(removed));
        }
        let raft_id_taken = state
            .hosts()
            .iter()
            .find(|h| h.raft_id == joiner.raft_id && h.id != joiner.id);
        match (state.host(&joiner.id), raft_id_taken) {
            (_, Some(other)) => (Recorded::Clash, Some(other.clone())),
            (Some(h), None)
                if h.raft_id == joiner.raft_id
                    && h.addr == joiner.addr
                    && h.cluster_port == joiner.cluster_port =>
            {
                (Recorded::Same, None)
            }
            (Some(h), None) => (Recorded::Clash, Some(h.clone())),
            (None, None) => (Recorded::No, None),
        }
    }

    /// The leader's view of how far each of `ids` is.
    fn progress(&self, ids: impl IntoIterator<Item = u64>) -> Vec<Progress> {
        let prs = self.raw.raft.prs();
        ids.into_iter()
            .filter_map(|raft_id| {
                prs.get(raft_id).map(|p| Progress {
                    raft_id,
                    matched: p.matched,
                    active: p.recent_active,
                })
            })
            .collect()
    }

    fn caught_up_learners(&self) -> BTreeSet<u64> {
        let committed = self.raw.raft.raft_log.committed;
        let learners = self.raw.raft.prs().conf().learners().clone();
        self.progress(learners)
            .into_iter()
            .filter(|p| p.caught_up(committed))
            .map(|p| p.raft_id)
            .collect()
    }

    fn best_successor(&self) -> Option<u64> {
        let voters = self
            .raw
            .raft
            .prs()
            .conf()
            .voters()
            .ids()
            .iter()
            .collect::<Vec<_>>();
        membership::best_successor(self.host.raft_id, self.progress(voters))
    }

    /// On the leader: promotes a caught-up learner while voters are missing (see
    /// [`membership::plan_promotion`]). Called every tick.
    pub(super) fn maybe_promote(&mut self) {
        if !self.is_leader() {
            return;
        }
        let learners = self.raw.raft.prs().conf().learners().clone();
        let committed = self.raw.raft.raft_log.committed;
        let Some(id) = membership::plan_promotion(
            &self.membership(),
            self.progress(learners),
            committed,
            self.max_voters,
        ) else {
            return;
        };
        match self
            .raw
            .propose_conf_change(vec![], conf_change(&[Change::AddVoter(id)]))
        {
            Ok(()) => tracing::info!(raft_id = id, "promoting a caught-up learner to voter"),
            Err(e) => tracing::warn!(raft_id = id, error = %e, "cannot promote a learner"),
        }
    }
}
