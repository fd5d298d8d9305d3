//! The peer table: for each raft id, the address to reach it at, the queue of messages for it
//! and the task that owns its connection (see `outbound`).
//!
//! Rules: at most one live task per peer; a peer whose task has ended (its queue closed) is
//! replaced by a fresh one on the next `set`; every table update is one insert or remove, so a
//! panic elsewhere never leaves the table half-changed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use ::raft::eraftpb::Message as RaftMessage;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::lock;

struct Peer {
    addr: watch::Sender<SocketAddr>,
    queue: mpsc::Sender<RaftMessage>,
    task: JoinHandle<()>,
}

/// What a new peer's task is started with: where to connect (it follows moves) and the
/// messages to send.
pub(super) struct PeerChannels {
    pub addr: watch::Receiver<SocketAddr>,
    pub queue: mpsc::Receiver<RaftMessage>,
}

#[derive(Default)]
pub(super) struct PeerTable {
    peers: Mutex<HashMap<u64, Peer>>,
}

impl PeerTable {
    /// Adds a peer, or moves a known one to `addr`. For a new peer, `spawn` starts its task
    /// on the channels given, with a queue of `queue_len` messages.
    pub fn set(
        &self,
        id: u64,
        addr: SocketAddr,
        queue_len: usize,
        spawn: impl FnOnce(PeerChannels) -> JoinHandle<()>,
    ) {
        let mut peers = lock(&self.peers);
        if let Some(peer) = peers.get(&id) {
            if !peer.task.is_finished() {
                peer.addr.send_if_modified(|old| {
                    let moved = *old != addr;
                    *old = addr;
                    moved
                });
                return;
            }
        }
        let (addr_tx, addr_rx) = watch::channel(addr);
        let (queue_tx, queue_rx) = mpsc::channel(queue_len.max(1));
        let task = spawn(PeerChannels {
            addr: addr_rx,
            queue: queue_rx,
        });
        peers.insert(
            id,
            Peer {
                addr: addr_tx,
                queue: queue_tx,
                task,
            },
        );
    }

    /// Forgets a peer and stops its task; what was queued for it is dropped.
    pub fn remove(&self, id: u64) {
        if let Some(peer) = lock(&self.peers).remove(&id) {
            peer.task.abort();
        }
    }

    pub fn addr(&self, id: u64) -> Option<SocketAddr> {
        lock(&self.peers).get(&id).map(|p| *p.addr.borrow())
    }

    /// Queues `msg` for `msg.to` without waiting; hands it back (`Some`) if there is no such
    /// peer or its queue is full.
    pub fn route(&self, msg: RaftMessage) -> Option<RaftMessage> {
        match lock(&self.peers).get(&msg.to) {
            None => Some(msg),
            Some(peer) => match peer.queue.try_send(msg) {
                Ok(()) => None,
                Err(TrySendError::Full(msg) | TrySendError::Closed(msg)) => Some(msg),
            },
        }
    }

    /// Empties the table, aborting every task; returns the tasks for a caller that wants to
    /// wait until they are gone.
    pub fn abort_all(&self) -> Vec<JoinHandle<()>> {
        let tasks: Vec<JoinHandle<()>> = lock(&self.peers).drain().map(|(_, p)| p.task).collect();
        for task in &tasks {
            task.abort();
        }
        tasks
    }
}
