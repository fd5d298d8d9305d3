//! The daemon's side of the Raft node: [`RaftHandle`] reads the replicated state and the
//! node's view of the cluster, and proposes commands, all without waiting on the node task
//! except for the answer it asks for.
//!
//! Rules:
//! - The calls block (they are meant for the daemon's control thread, never for a tokio task)
//!   and are bounded by the caller's timeout, which is what a [`ClusterError::Timeout`]
//!   reports.
//! - [`RaftHandle::propose`] answers with the result of applying the command on this host:
//!   read-your-writes. The node proposes it again after a leader change until it is applied
//!   or the timeout ends, and it is applied at most once; a [`ClusterError::Timeout`] means
//!   the outcome is unknown: the change may still commit.
//! - After [`RaftHandle::read_barrier`], reads see everything the cluster had committed when
//!   it was called.

use std::collections::BTreeSet;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use raft::INVALID_ID;
use tokio::sync::{mpsc, Notify};
use vxnet_proto::Command;

use super::transport::RefusalCounts;
use crate::cluster::ClusterError;
use crate::state::{Applied, StateMachine};

/// How this node sees the cluster, for `cluster members` and the daemon's metrics.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub own_id: u64,
    pub leader_id: u64,
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    pub reachable: BTreeSet<u64>,
    /// The last log index applied to the state machine here.
    pub applied: u64,
    /// The Raft term this node is in.
    pub term: u64,
    /// The last log index this node knows to be committed.
    pub commit: u64,
    /// What the cluster transport refused since it started, by reason.
    pub refusals: RefusalCounts,
}

/// What the handle asks the node task.
pub(super) enum NodeCommand {
    Propose {
        /// Boxed: a command is large, and the queue holds many of these.
        command: Box<Command>,
        /// The caller's deadline, after which the node stops proposing it again.
        deadline: Instant,
        reply: std_mpsc::Sender<Result<Applied, ClusterError>>,
    },
    ReadIndex {
        reply: std_mpsc::Sender<Result<(), ClusterError>>,
    },
}

/// How many commands may wait for the node task; more are answered [`ClusterError::NodeBusy`].
pub(super) const MAX_QUEUED_COMMANDS: usize = 256;

#[derive(Clone)]
pub struct RaftHandle {
    commands: mpsc::Sender<NodeCommand>,
    /// Tells the node task to stop; a permit is kept if the task is busy, so it is never lost.
    stop: Arc<Notify>,
    state: Arc<RwLock<StateMachine>>,
    view: Arc<RwLock<ClusterView>>,
}

impl RaftHandle {
    /// A handle to the node task that reads `commands` and keeps `state` and `view` current.
    pub(super) fn new(
        commands: mpsc::Sender<NodeCommand>,
        stop: Arc<Notify>,
        state: Arc<RwLock<StateMachine>>,
        view: Arc<RwLock<ClusterView>>,
    ) -> RaftHandle {
        RaftHandle {
            commands,
            stop,
            state,
            view,
        }
    }

    pub fn state(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn view(&self) -> ClusterView {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replicates `command` and returns the result of applying it here.
    pub fn propose(&self, command: Command, timeout: Duration) -> Result<Applied, ClusterError> {
        let deadline = Instant::now() + timeout;
        self.wait_for_leader(deadline)?;
        let (reply, rx) = std_mpsc::channel();
        self.send(NodeCommand::Propose {
            command: Box::new(command),
            deadline,
            reply,
        })?;
        wait(&rx, deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| e.with_timeout(timeout))?
    }

    /// Returns once this host has applied everything the cluster had committed when the call
    /// was made (raft's ReadIndex, confirmed by a quorum): what it reads next is fresh.
    pub fn read_barrier(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        self.wait_for_leader(deadline)?;
        let (reply, rx) = std_mpsc::channel();
        self.send(NodeCommand::ReadIndex { reply })?;
        wait(&rx, deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| e.with_timeout(timeout))?
    }

    /// Asks the node task to stop; a task already gone needs no asking.
    pub(super) fn shutdown(&self) {
        self.stop.notify_one();
    }

    fn send(&self, command: NodeCommand) -> Result<(), ClusterError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ClusterError::NodeBusy(MAX_QUEUED_COMMANDS),
            mpsc::error::TrySendError::Closed(_) => ClusterError::Stopped,
        })
    }

    /// Right after a start or an election there is briefly no leader: wait for one rather
    /// than fail a request that would succeed a moment later.
    fn wait_for_leader(&self, deadline: Instant) -> Result<(), ClusterError> {
        while self.view().leader_id == INVALID_ID {
            if Instant::now() >= deadline {
                return Err(ClusterError::NoLeader);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

fn wait<T>(rx: &std_mpsc::Receiver<T>, timeout: Duration) -> Result<T, ClusterError> {
    rx.recv_timeout(timeout).map_err(|e| match e {
        std_mpsc::RecvTimeoutError::Timeout => ClusterError::Timeout(timeout),
        std_mpsc::RecvTimeoutError::Disconnected => ClusterError::Stopped,
    })
}
