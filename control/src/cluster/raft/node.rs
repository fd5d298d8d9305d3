//! The Raft node: one tokio task owns the raft-rs `RawNode`, its storage and the replicated
//! state machine; everything else talks to it through a [`RaftHandle`].
//!
//! Rules:
//! - `Ready` is handled in the order of raft-rs `examples/five_mem_node`: send `messages`,
//!   apply a snapshot, apply committed entries, persist entries + HardState in one synced
//!   batch, then send `persisted_messages`, `advance`, handle the `LightReady`, `advance_apply`.
//! - Every log entry carries a [`Proposal`] with an id; the host that proposed it waits for the
//!   result of applying that id on its own state machine. Results are therefore read-your-
//!   writes, and identical on every host, because `apply` is deterministic.
//! - A local caller's proposal is proposed again after a leader change and periodically
//!   until applied (see `proposals`); the state machine applies a proposal id once.
//! - Membership changes (ConfChangeV2) carry the matching host command (`AddHost`,
//!   `RemoveHost`) in their context: the Raft membership and the replicated host list change in
//!   the same entry, on every host. Who votes and who learns is the policy of
//!   [`super::membership`]; the requests that ask for changes are answered in
//!   `requests`.
//! - A fresh host bootstraps a one-host cluster from the snapshot of
//!   [`snapshot::bootstrap`]; a joining host starts empty and waits for the leader's snapshot.
//! - A failure of the storage or of raft-rs inside the task ([`NodeError`], or a panic of
//!   raft-rs) stops the node: a `Ready` cannot be taken back (see the storage docs). Waiting
//!   callers get [`ClusterError::Stopped`], and the owner is sent [`NodeEvent::Died`]; a node
//!   stopped by [`RaftNode::shutdown`] sends nothing.
//! - Raft messages from an id that is not in the current configuration (voters of either half
//!   of a joint configuration, learners) are dropped before raft-rs sees them: raft-rs trusts
//!   its peers, and one absurd message would stop the node. A host that has no configuration
//!   yet (joined, waiting for the leader's snapshot) takes messages from its transport peers.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType, Message as RaftMessage, Snapshot as RaftSnapshot,
};
use raft::{Config, RawNode, ReadOnlyOption, StateRole, INVALID_ID};
use tokio::sync::{mpsc, oneshot, Notify};
use vxnet_proto::{Envelope, Host, Proposal};

use super::handle::{ClusterView, NodeCommand, RaftHandle, MAX_QUEUED_COMMANDS};
use super::membership::{self, Change, Membership};
use super::snapshot::{self, SnapshotError};
use super::storage::{RaftStorage, StorageError};
use super::transport::{ClusterTls, Transport, TransportEvent, RAFT_BATCH_BYTES};
use crate::cluster::{ClusterError, Rejection};
use crate::state::{Applied, StateMachine};

mod events;
mod proposals;

use self::proposals::AskedRead;
mod requests;

use self::events::report_death;
pub use self::events::NodeEvent;

/// One tick: elections time out after 10–20 ticks, heartbeats every 2.
const TICK: Duration = Duration::from_millis(100);
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;
/// Applied entries between two snapshots (after which the log before them is dropped).
pub const COMPACT_EVERY: u64 = 1000;
/// A waiter that never got its answer (a proposal lost with a leader) is forgotten after this.
const PENDING_TTL: Duration = Duration::from_secs(120);
/// How long a starting node may take to apply the log it has on disk.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many messages and requests from peers may wait for the node task; beyond that the
/// connections they come on wait (and, through TCP, their senders).
const MAX_QUEUED_TRANSPORT_EVENTS: usize = 1024;

/// Why the node failed inside: fatal to it (see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Raft(#[from] raft::Error),
    /// A conf change entry that does not decode.
    #[error(transparent)]
    Codec(#[from] protobuf::ProtobufError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// What a daemon needs to start its node.
pub struct NodeConfig {
    pub host: Host,
    pub storage: RaftStorage,
    /// The cluster CA and this host's certificate.
    pub tls: Arc<ClusterTls>,
    pub max_voters: usize,
    /// Applied entries between two snapshots.
    pub compact_every: u64,
    /// Bootstrap a one-host cluster if the storage is empty (false: wait to be sent one).
    pub bootstrap: bool,
    /// Other members to reach before the log says who they are (after a join).
    pub seed_members: Vec<Host>,
}

/// A running node: its task and the handle to it.
pub struct RaftNode {
    handle: RaftHandle,
    task: Option<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Handle,
}

impl RaftNode {
    /// Starts the node's task (and its transport on `host.addr:host.cluster_port`), and returns
    /// once the log this host already had is applied. `changed` is sent [`NodeEvent::Applied`]
    /// after every batch of applied entries, and [`NodeEvent::Died`] if the node stops by
    /// itself.
    pub fn start(
        config: NodeConfig,
        runtime: &tokio::runtime::Handle,
        changed: mpsc::UnboundedSender<NodeEvent>,
    ) -> Result<RaftNode, ClusterError> {
        let (commands, rx) = mpsc::channel(MAX_QUEUED_COMMANDS);
        let stop = Arc::new(Notify::new());
        let state = Arc::new(RwLock::new(StateMachine::new()));
        let view = Arc::new(RwLock::new(ClusterView::default()));
        let handle = RaftHandle::new(
            commands,
            Arc::clone(&stop),
            Arc::clone(&state),
            Arc::clone(&view),
        );
        let died = changed.clone();
        let node = runtime.block_on(Node::open(config, state, view, changed))?;
        let committed = node.storage.hard_state().map_err(NodeError::from)?.commit;
        let task = runtime.spawn(report_death(runtime.spawn(node.run(rx, stop)), died));
        let node = RaftNode {
            handle,
            task: Some(task),
            runtime: runtime.clone(),
        };
        // Before anyone reads the state, apply what this host already knew was committed:
        // a daemon that acted on a half-replayed state would tear down live sandboxes.
        // The replay takes well under a millisecond on a small log; the daemon's restart
        // window waits for it, so the first looks come soon and the later ones back off.
        let deadline = Instant::now() + REPLAY_TIMEOUT;
        let mut pause = Duration::from_micros(100);
        while node.handle.view().applied < committed {
            if Instant::now() > deadline {
                return Err(ClusterError::ReplayTimeout(REPLAY_TIMEOUT));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        Ok(node)
    }

    pub fn handle(&self) -> &RaftHandle {
        &self.handle
    }

    /// Stops the node and its transport, and waits until the storage is closed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.shutdown();
        if let Some(task) = self.task.take() {
            let _ = self.runtime.block_on(task);
        }
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Who waits for the result of an entry.
enum Waiter {
    Local(std_mpsc::Sender<Result<Applied, ClusterError>>),
    /// With the certificate issued for the joiner, handed over once it is a member.
    Join(oneshot::Sender<Envelope>, Vec<u8>),
    Leave(oneshot::Sender<Envelope>),
}

struct Pending {
    waiter: Waiter,
    since: Instant,
    /// A local proposal, proposed again until applied (see `proposals`).
    retry: Option<proposals::Retry>,
}

struct Node {
    raw: RawNode<RaftStorage>,
    storage: RaftStorage,
    transport: Transport,
    events: mpsc::Receiver<TransportEvent>,
    state: Arc<RwLock<StateMachine>>,
    view: Arc<RwLock<ClusterView>>,
    changed: mpsc::UnboundedSender<NodeEvent>,
    host: Host,
    tls: Arc<ClusterTls>,
    max_voters: usize,
    compact_every: u64,
    pending: HashMap<u64, Pending>,
    /// ReadIndex requests by context (with when they were first asked), then by the index
    /// they wait for.
    reads_asked: HashMap<u64, AskedRead>,
    reads_ready: Vec<(u64, std_mpsc::Sender<Result<(), ClusterError>>)>,
    next_id: u64,
    /// The leader and term the pending proposals were last proposed under.
    leader_seen: (u64, u64),
    applied: u64,
    last_compacted: u64,
    /// Take a snapshot at the next chance, whatever the log's length (see `apply_entries`).
    snapshot_now: bool,
    peers: BTreeSet<u64>,
    /// When each peer last sent us a Raft message.
    last_heard: HashMap<u64, Instant>,
    /// Raft messages dropped because their sender is not a member.
    dropped_from_strangers: u64,
    /// When a join with a wrong secret was last logged.
    last_bad_secret_log: Option<Instant>,
}

impl Node {
    async fn open(
        config: NodeConfig,
        state: Arc<RwLock<StateMachine>>,
        view: Arc<RwLock<ClusterView>>,
        changed: mpsc::UnboundedSender<NodeEvent>,
    ) -> Result<Node, ClusterError> {
        let NodeConfig {
            host,
            storage,
            tls,
            max_voters,
            compact_every,
            bootstrap,
            seed_members,
        } = config;
        if !storage.is_initialized().map_err(NodeError::from)? && bootstrap {
            storage
                .apply_snapshot(&snapshot::bootstrap(&host))
                .map_err(NodeError::from)?;
        }
        // The state machine restarts from the latest snapshot; raft-rs then hands back every
        // committed entry after it, which we apply again (deterministically). A joining host
        // has no snapshot yet: it starts empty and waits for the leader's.
        let applied = match storage.latest_snapshot().map_err(NodeError::from)? {
            Some(latest) => {
                *state.write().unwrap_or_else(|e| e.into_inner()) =
                    snapshot::decode(latest.get_data()).map_err(NodeError::from)?;
                latest.get_metadata().index
            }
            None => 0,
        };
        let raft_config = Config {
            id: host.raft_id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied,
            pre_vote: true,
            check_quorum: true,
            read_only_option: ReadOnlyOption::Safe,
            // The transport caps raft messages by this (see its module docs).
            max_size_per_msg: RAFT_BATCH_BYTES,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        raft_config.validate().map_err(NodeError::from)?;
        let mut raw = RawNode::new(&raft_config, storage.clone(), &super::log::logger())
            .map_err(NodeError::from)?;
        let (events_tx, events) = mpsc::channel(MAX_QUEUED_TRANSPORT_EVENTS);
        let listen = SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(host.addr),
            host.cluster_port as u16,
        ));
        let transport = Transport::start(listen, tls.clone(), events_tx)
            .await
            .map_err(|source| ClusterError::Listen {
                addr: listen,
                source,
            })?;
        // Removed hosts stay refused across restarts (the list comes with the state).
        transport.set_revoked(
            state
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .revoked_raft_ids()
                .to_vec(),
        );
        let voters = raw.raft.prs().conf().voters().ids().iter().count();
        if voters == 1 && raw.raft.prs().conf().voters().contains(host.raft_id) {
            // Alone: no need to wait for an election timeout.
            let _ = raw.campaign();
        }
        let mut node = Node {
            raw,
            storage,
            transport,
            events,
            state,
            view,
            changed,
            host,
            tls,
            max_voters: max_voters.max(1),
            compact_every: compact_every.max(1),
            pending: HashMap::new(),
            reads_asked: HashMap::new(),
            reads_ready: Vec::new(),
            // Proposal ids only need to differ from those of this node's earlier runs.
            next_id: u64::from_le_bytes(crate::sys::random_bytes().map_err(ClusterError::Random)?),
            leader_seen: (INVALID_ID, 0),
            applied,
            last_compacted: applied,
            snapshot_now: false,
            peers: BTreeSet::new(),
            last_heard: HashMap::new(),
            dropped_from_strangers: 0,
            last_bad_secret_log: None,
        };
        for member in seed_members {
            node.add_peer(&member);
        }
        node.sync_peers();
        node.publish_view();
        Ok(node)
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<NodeCommand>,
        stop: Arc<Notify>,
    ) -> Result<(), NodeError> {
        let mut failed = None;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.raw.tick();
                    self.housekeeping();
                }
                _ = stop.notified() => break,
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle_command(cmd),
                    None => break,
                },
                Some(event) = self.events.recv() => self.handle_event(event),
            }
            self.retry_proposals();
            if let Err(e) = self.on_ready() {
                failed = Some(e);
                break;
            }
        }
        self.transport.shutdown().await;
        for (_, p) in self.pending.drain() {
            if let Waiter::Local(tx) = p.waiter {
                let _ = tx.send(Err(ClusterError::Stopped));
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn next_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Has `waiter` answered once the entry of proposal `id` is applied here.
    fn wait_for(&mut self, id: u64, waiter: Waiter) {
        let since = Instant::now();
        let retry = None; // a join or leave: the requester asks again
        self.pending.insert(
            id,
            Pending {
                waiter,
                since,
                retry,
            },
        );
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    fn handle_command(&mut self, cmd: NodeCommand) {
        match cmd {
            NodeCommand::Propose {
                command,
                deadline,
                reply,
            } => self.propose_local(*command, deadline, reply),
            NodeCommand::ReadIndex { reply } => {
                if self.raw.raft.leader_id == INVALID_ID {
                    let _ = reply.send(Err(ClusterError::NoLeader));
                    return;
                }
                let id = self.next_id();
                self.raw.read_index(id.to_le_bytes().to_vec());
                let now = Instant::now();
                self.reads_asked.insert(
                    id,
                    AskedRead {
                        first_asked: now,
                        last_asked: now,
                        reply,
                    },
                );
            }
        }
    }

    fn handle_event(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Raft(msg) => {
                if !self.is_member(msg.from) {
                    self.dropped_from_strangers += 1;
                    tracing::debug!(
                        from = msg.from,
                        dropped = self.dropped_from_strangers,
                        "raft message from a non-member dropped"
                    );
                    return;
                }
                self.last_heard.insert(msg.from, Instant::now());
                if let Err(e) = self.raw.step(msg) {
                    tracing::debug!(error = %e, "raft message ignored");
                }
            }
            TransportEvent::Unreachable(id) => self.raw.report_unreachable(id),
            TransportEvent::SnapshotStatus(id, status) => self.raw.report_snapshot(id, status),
            TransportEvent::Request {
                envelope, reply, ..
            } => self.handle_request(envelope, reply),
        }
    }

    /// Whether Raft messages from `id` are stepped (see the module docs).
    fn is_member(&self, id: u64) -> bool {
        let conf = self.raw.raft.prs().conf();
        if conf.voters().ids().iter().next().is_none() && conf.learners().is_empty() {
            return self.peers.contains(&id);
        }
        conf.voters().contains(id) || conf.learners().contains(&id)
    }

    fn conf(&self) -> ConfState {
        self.raw.raft.prs().conf().to_conf_state()
    }

    fn membership(&self) -> Membership {
        Membership::new(&self.conf(), self.raw.raft.has_pending_conf())
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        self.pending
            .retain(|_, p| now.duration_since(p.since) < PENDING_TTL);
        // A ReadIndex whose answer was lost (its leader died) would wait here forever; its
        // caller gave up long ago.
        self.reads_asked
            .retain(|_, r| now.duration_since(r.first_asked) < PENDING_TTL);
        // raft-rs leaves a joint configuration by itself (transition Auto); if a leader change
        // interrupted that, the new leader finishes it here.
        if self.is_leader() && membership::must_leave_joint(&self.membership()) {
            tracing::info!("leaving a joint configuration left behind");
            let _ = self
                .raw
                .propose_conf_change(vec![], ConfChangeV2::default());
        }
        self.maybe_promote();
        self.publish_view();
    }

    fn on_ready(&mut self) -> Result<(), NodeError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if !ready.messages().is_empty() {
            self.send(ready.take_messages());
        }
        if *ready.snapshot() != RaftSnapshot::default() {
            let snapshot = ready.snapshot().clone();
            self.storage.apply_snapshot(&snapshot)?;
            let restored = snapshot::decode(snapshot.get_data())?;
            *self.state.write().unwrap_or_else(|e| e.into_inner()) = restored;
            self.applied = snapshot.get_metadata().index;
            self.last_compacted = self.applied;
            tracing::info!(index = self.applied, "state restored from a snapshot");
            self.after_apply();
        }
        self.apply_entries(ready.take_committed_entries())?;
        self.storage
            .persist_ready(ready.entries(), ready.hs(), None)?;
        if !ready.persisted_messages().is_empty() {
            self.send(ready.take_persisted_messages());
        }
        for rs in ready.take_read_states() {
            let ctx: [u8; 8] = rs.request_ctx.as_slice().try_into().unwrap_or_default();
            if let Some(AskedRead { reply, .. }) = self.reads_asked.remove(&u64::from_le_bytes(ctx))
            {
                self.reads_ready.push((rs.index, reply));
            }
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.persist_commit(commit)?;
        }
        self.send(light.take_messages());
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.answer_reads();
        self.maybe_compact()?;
        Ok(())
    }

    fn send(&mut self, messages: Vec<RaftMessage>) {
        for m in messages {
            self.transport.send(m);
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in entries {
            self.applied = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if entry.data.is_empty() {
                        continue; // a new leader's empty entry
                    }
                    self.apply_proposal(&entry.data);
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    // The ConfState is not stored here: on restart the log after the latest
                    // snapshot is applied again, conf changes included (see storage docs).
                    let is_add = |t: ConfChangeType| {
                        matches!(t, ConfChangeType::AddNode | ConfChangeType::AddLearnerNode)
                    };
                    let adds = if entry.get_entry_type() == EntryType::EntryConfChange {
                        let cc = ConfChange::parse_from_bytes(&entry.data)?;
                        self.raw.apply_conf_change(&cc)?;
                        is_add(cc.get_change_type())
                    } else {
                        let cc = ConfChangeV2::parse_from_bytes(&entry.data)?;
                        self.raw.apply_conf_change(&cc)?;
                        cc.get_changes().iter().any(|c| is_add(c.get_change_type()))
                    };
                    // A newcomer starts from a snapshot, and raft-rs only restores one whose
                    // ConfState includes the newcomer: take one that does, now.
                    if adds {
                        self.snapshot_now = true;
                    }
                    if !entry.context.is_empty() {
                        self.apply_proposal(&entry.context);
                    }
                }
            }
        }
        self.after_apply();
        Ok(())
    }

    fn apply_proposal(&mut self, bytes: &[u8]) {
        let proposal = match Proposal::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                // Written by a newer or broken vxnet: skipping it keeps every host identical.
                tracing::error!(error = %e, "undecodable log entry skipped");
                return;
            }
        };
        let result = self
            .state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply_proposal(proposal.id, &proposal.command.unwrap_or_default());
        let Some(pending) = self.pending.remove(&proposal.id) else {
            return;
        };
        match pending.waiter {
            Waiter::Local(tx) => {
                let _ = tx.send(result.map_err(ClusterError::from));
            }
            Waiter::Join(tx, cert) => {
                let outcome = result.map(|_| cert).map_err(Rejection::refused);
                let _ = tx.send(self.join_reply(outcome));
            }
            Waiter::Leave(tx) => {
                let outcome = result.map(drop).map_err(Rejection::refused);
                let _ = tx.send(self.leave_reply(outcome));
            }
        }
    }

    fn after_apply(&mut self) {
        self.sync_peers();
        let revoked = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revoked_raft_ids()
            .to_vec();
        self.transport.set_revoked(revoked);
        self.publish_view();
        let _ = self.changed.send(NodeEvent::Applied);
    }

    fn answer_reads(&mut self) {
        let applied = self.applied;
        self.reads_ready.retain(|(index, reply)| {
            if *index <= applied {
                let _ = reply.send(Ok(()));
                false
            } else {
                true
            }
        });
    }

    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        let due = self.applied >= self.last_compacted + self.compact_every;
        if !(due || self.snapshot_now) || self.applied <= self.last_compacted {
            return Ok(());
        }
        self.snapshot_now = false;
        let data = snapshot::encode(&self.state.read().unwrap_or_else(|e| e.into_inner()));
        let conf = self.conf();
        self.storage.compact(self.applied, data, conf)?;
        self.last_compacted = self.applied;
        tracing::debug!(index = self.applied, "log compacted");
        Ok(())
    }

    fn add_peer(&mut self, host: &Host) {
        if host.raft_id == self.host.raft_id || host.raft_id == INVALID_ID {
            return;
        }
        let addr = SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(host.addr),
            host.cluster_port as u16,
        ));
        self.transport.set_peer(host.raft_id, addr);
        self.peers.insert(host.raft_id);
    }

    /// Transport peers = the hosts of the replicated state (after a join, the seeds too).
    fn sync_peers(&mut self) {
        let hosts: Vec<Host> = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .hosts()
            .to_vec();
        let wanted: BTreeSet<u64> = hosts.iter().map(|h| h.raft_id).collect();
        if !hosts.is_empty() {
            let stale: Vec<u64> = self
                .peers
                .iter()
                .copied()
                .filter(|id| !wanted.contains(id))
                .collect();
            let conf = self.conf();
            for id in stale {
                // Keep a peer Raft still counts on (a newcomer whose AddHost is in flight).
                if !conf.voters.contains(&id) && !conf.learners.contains(&id) {
                    self.transport.remove_peer(id);
                    self.peers.remove(&id);
                }
            }
        }
        for h in &hosts {
            self.add_peer(h);
        }
    }

    fn publish_view(&self) {
        let conf = self.conf();
        let leader = self.raw.raft.leader_id;
        // Heartbeats go every HEARTBEAT_TICKS; a peer silent for two election timeouts is not
        // answering. (The leader hears from everyone; a follower asks the leader.)
        let horizon = TICK * (2 * ELECTION_TICKS) as u32;
        let now = Instant::now();
        let mut reachable: BTreeSet<u64> = self
            .last_heard
            .iter()
            .filter(|(_, at)| now.duration_since(**at) < horizon)
            .map(|(id, _)| *id)
            .collect();
        reachable.insert(self.host.raft_id);
        let applied = self.applied;
        let view = ClusterView {
            own_id: self.host.raft_id,
            leader_id: leader,
            voters: conf.voters.iter().copied().collect(),
            learners: conf.learners.iter().copied().collect(),
            reachable,
            applied,
            term: self.raw.raft.term,
            commit: self.raw.raft.raft_log.committed,
            refusals: self.transport.stats().refusals,
        };
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
    }
}

fn single(change: Change) -> ConfChangeSingle {
    let (node_id, change_type) = match change {
        Change::AddVoter(id) => (id, ConfChangeType::AddNode),
        Change::AddLearner(id) => (id, ConfChangeType::AddLearnerNode),
        Change::Remove(id) => (id, ConfChangeType::RemoveNode),
    };
    let mut c = ConfChangeSingle {
        node_id,
        ..Default::default()
    };
    c.set_change_type(change_type);
    c
}

fn conf_change(changes: &[Change]) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    cc.set_transition(ConfChangeTransition::Auto);
    cc.set_changes(
        changes
            .iter()
            .copied()
            .map(single)
            .collect::<Vec<_>>()
            .into(),
    );
    cc
}
