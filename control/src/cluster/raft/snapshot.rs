//! How the replicated state travels in a Raft snapshot, and the snapshot a new one-host cluster
//! starts from.
//!
//! Rules:
//! - A snapshot's data is a prost-encoded `vxnet_proto::Snapshot` holding the whole state
//!   machine: the state and the outcomes it remembers of the latest proposals.
//!   Equal states encode to equal bytes on every host (every map in the messages is a
//!   `BTreeMap`).
//! - [`decode`] checks the state's invariants ([`StateMachine::from_state`]). Data that holds
//!   no state is an error, never an empty state: a host that took it for one would tear down
//!   every sandbox it runs.
//! - [`bootstrap`] is the snapshot at index [`BOOTSTRAP_INDEX`] (term 1) that a fresh host
//!   founds its one-host cluster on: itself as the only voter and the only host. Every later
//!   member gets that snapshot, or a newer one, from the leader, so no member ever needs the
//!   log from index 1.

use prost::Message as _;
use raft::eraftpb::Snapshot as RaftSnapshot;
use vxnet_proto::{Host, Snapshot, State};

use crate::state::{InvalidState, StateMachine};

/// The index of the bootstrap snapshot; see the module docs.
pub const BOOTSTRAP_INDEX: u64 = 1;

/// Why snapshot data is not a state this host can run on.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("undecodable snapshot: {0}")]
    Undecodable(#[from] prost::DecodeError),
    #[error("the snapshot holds no state")]
    NoState,
    #[error(transparent)]
    Invalid(#[from] InvalidState),
}

/// The data of a snapshot of `state`.
pub fn encode(state: &StateMachine) -> Vec<u8> {
    Snapshot {
        state: Some(state.to_state()),
        recent: state.recent(),
    }
    .encode_to_vec()
}

/// The state machine a snapshot's data holds.
pub fn decode(data: &[u8]) -> Result<StateMachine, SnapshotError> {
    let snapshot = Snapshot::decode(data)?;
    let state = snapshot.state.ok_or(SnapshotError::NoState)?;
    Ok(StateMachine::from_snapshot(state, snapshot.recent)?)
}

/// The snapshot a fresh host founds its one-host cluster on; see the module docs.
pub fn bootstrap(host: &Host) -> RaftSnapshot {
    let state = State {
        hosts: vec![host.clone()],
        ..Default::default()
    };
    let mut snapshot = RaftSnapshot::default();
    let data = Snapshot {
        state: Some(state),
        recent: Vec::new(),
    };
    snapshot.set_data(data.encode_to_vec().into());
    let meta = snapshot.mut_metadata();
    meta.index = BOOTSTRAP_INDEX;
    meta.term = 1;
    meta.mut_conf_state().voters = vec![host.raft_id];
    snapshot
}

/// The snapshot `--force-new-cluster` restarts a host from: `state` at `index` (of `term`),
/// with `host` as the only voter.
pub fn forced(state: &StateMachine, host: &Host, index: u64, term: u64) -> RaftSnapshot {
    let mut snapshot = RaftSnapshot::default();
    snapshot.set_data(encode(state).into());
    let meta = snapshot.mut_metadata();
    meta.index = index;
    meta.term = term.max(1);
    meta.mut_conf_state().voters = vec![host.raft_id];
    snapshot
}

#[cfg(test)]
mod tests;
