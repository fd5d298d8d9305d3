//! The memory of the latest proposals' outcomes, which makes applying a proposal idempotent.
//!
//! Rules a caller relies on:
//! - A proposer may put the same proposal (same id) in the log more than once: it proposes
//!   again when the leader changes, since a proposal forwarded to a leader that died is lost.
//!   [`StateMachine::apply_proposal`] applies a proposal id at most once; a later copy changes
//!   nothing and is answered with the outcome of the first (a refusal as the same sentence and
//!   code, see [`Refusal::Repeated`]).
//! - The memory holds the outcomes of the last [`REMEMBERED`] proposals applied, oldest
//!   forgotten first. A retry comes within seconds of the first copy, far fewer entries than
//!   that. The memory is replicated state: it changes only in `apply_proposal`, the same on
//!   every host, and travels in snapshots ([`StateMachine::recent`],
//!   [`StateMachine::from_snapshot`]).

use std::collections::{BTreeMap, VecDeque};

use vxnet_proto::{outcome, Command, ErrorCode, Outcome, RefusedCommand, RemovedHost, State};

use super::{Applied, InvalidState, Refusal, StateMachine};

/// How many proposal outcomes are remembered; see the module docs.
pub const REMEMBERED: usize = 4096;

/// The outcomes of the latest proposals, by id and in apply order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Recent {
    order: VecDeque<u64>,
    outcomes: BTreeMap<u64, outcome::Result>,
}

impl Recent {
    fn get(&self, id: u64) -> Option<Result<Applied, Refusal>> {
        self.outcomes.get(&id).map(answer)
    }

    fn remember(&mut self, id: u64, result: &Result<Applied, Refusal>) {
        if self.outcomes.insert(id, record(result)).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }
}

impl StateMachine {
    /// Applies the command of proposal `id`, once: a proposal already applied changes nothing
    /// and gets the first outcome again. See the module docs.
    pub fn apply_proposal(&mut self, id: u64, cmd: &Command) -> Result<Applied, Refusal> {
        if let Some(first) = self.recent.get(id) {
            return first;
        }
        let result = self.apply(cmd);
        self.recent.remember(id, &result);
        result
    }

    /// The remembered outcomes, oldest first, for a snapshot.
    pub fn recent(&self) -> Vec<Outcome> {
        self.recent
            .order
            .iter()
            .filter_map(|id| {
                self.recent.outcomes.get(id).map(|result| Outcome {
                    proposal_id: *id,
                    result: Some(result.clone()),
                })
            })
            .collect()
    }

    /// [`StateMachine::from_state`], with the outcomes a snapshot remembered (oldest first).
    pub fn from_snapshot(state: State, recent: Vec<Outcome>) -> Result<Self, InvalidState> {
        let mut machine = Self::from_state(state)?;
        for outcome in recent {
            let Some(result) = outcome.result else {
                return Err(InvalidState(format!(
                    "the outcome of proposal {} is empty",
                    outcome.proposal_id
                )));
            };
            if machine
                .recent
                .outcomes
                .insert(outcome.proposal_id, result)
                .is_some()
            {
                return Err(InvalidState(format!(
                    "proposal {} is remembered twice",
                    outcome.proposal_id
                )));
            }
            machine.recent.order.push_back(outcome.proposal_id);
        }
        if machine.recent.order.len() > REMEMBERED {
            return Err(InvalidState(format!(
                "{} proposal outcomes remembered, more than {REMEMBERED}",
                machine.recent.order.len()
            )));
        }
        Ok(machine)
    }
}

fn record(result: &Result<Applied, Refusal>) -> outcome::Result {
    use outcome::Result as R;
    match result {
        Ok(Applied::HostAdded(h)) => R::HostAdded(h.clone()),
        Ok(Applied::HostRemoved { host, endpoints }) => R::HostRemoved(RemovedHost {
            host: Some(host.clone()),
            endpoints: endpoints.clone(),
        }),
        Ok(Applied::NetworkCreated(n)) => R::NetworkCreated(n.clone()),
        Ok(Applied::NetworkRemoved(n)) => R::NetworkRemoved(n.clone()),
        Ok(Applied::Connected(e)) => R::Connected(e.clone()),
        Ok(Applied::Disconnected(e)) => R::Disconnected(e.clone()),
        Ok(Applied::Updated(e)) => R::Updated(e.clone()),
        Ok(Applied::JoinSecretSet) => R::JoinSecretSet(vxnet_proto::JoinSecretSet {}),
        Ok(Applied::KeyRotated(n)) => R::KeyRotated(n.clone()),
        Err(refusal) => R::Refused(RefusedCommand {
            message: refusal.to_string(),
            code: refusal.code() as i32,
        }),
    }
}

fn answer(result: &outcome::Result) -> Result<Applied, Refusal> {
    use outcome::Result as R;
    Ok(match result {
        R::HostAdded(h) => Applied::HostAdded(h.clone()),
        R::HostRemoved(r) => Applied::HostRemoved {
            host: r.host.clone().unwrap_or_default(),
            endpoints: r.endpoints.clone(),
        },
        R::NetworkCreated(n) => Applied::NetworkCreated(n.clone()),
        R::NetworkRemoved(n) => Applied::NetworkRemoved(n.clone()),
        R::Connected(e) => Applied::Connected(e.clone()),
        R::Disconnected(e) => Applied::Disconnected(e.clone()),
        R::Updated(e) => Applied::Updated(e.clone()),
        R::JoinSecretSet(_) => Applied::JoinSecretSet,
        R::KeyRotated(n) => Applied::KeyRotated(n.clone()),
        R::Refused(r) => {
            return Err(Refusal::Repeated {
                message: r.message.clone(),
                code: ErrorCode::try_from(r.code).unwrap_or(ErrorCode::Refused),
            })
        }
    })
}

#[cfg(test)]
mod tests;
