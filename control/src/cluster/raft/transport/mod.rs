//! The cluster transport: carries raft-rs messages between the members of a cluster, and the
//! join/leave requests of hosts that are not members yet, over TCP.
//!
//! Rules a caller relies on:
//!
//! - **Security.** Every connection is TLS 1.3 (see [`super::tls`] for the certificates and
//!   what each side checks). Inside, the client's first frame is a `Hello` with its raft id,
//!   within [`TransportConfig::handshake_timeout`] of the accept (TLS included). A client with a
//!   certificate must claim the raft id its certificate names, and that id must not be revoked
//!   (the replicated list of removed hosts, [`Transport::set_revoked`]); such a connection
//!   carries raft messages and requests. A client without a certificate (a joiner, raft id 0)
//!   may send join requests only. A raft message whose `from` is not the connection's certified
//!   raft id is dropped and counted ([`TransportStats::spoofed_frames`]); one addressed to
//!   another host closes the connection. A revoked id's open connections close at their next
//!   frame.
//! - **Frames** (see `frame`): each names its kind in a header before its body, and each kind
//!   has its own cap, checked on the header before the body is read: a `Hello` 1 KiB, a join
//!   or other request 64 KiB, a raft message [`RAFT_MAX_FRAME`] (about 4 MiB: what raft-rs
//!   sends in one message, see `frame`), a raft message with a snapshot and an answer
//!   [`TransportConfig::max_frame`] (64 MiB). A connection takes only the kinds its side may
//!   send at that point (the `Hello` first; then a joiner's join requests, or a member's raft
//!   messages and requests). All daemons of a cluster run the same version: a daemon of a
//!   version before these headers cannot talk to one after them.
//! - **Limits.** At most [`TransportConfig::max_connections`] inbound connections, and at most
//!   [`TransportConfig::max_per_source`] from one address; more are closed on accept. An
//!   inbound connection with no frame for [`TransportConfig::idle_timeout`] (and no request
//!   waiting for an answer) is closed. A refused connection (TLS failure, bad `Hello`, revoked
//!   id, over a limit) is counted ([`TransportStats::refused_connections`]) and logged at warn
//!   at most once per source address per minute, with how many more there were (see
//!   `refusals`). A frame over its kind's cap, of a kind the connection does not take, that
//!   does not decode as its kind, or an envelope that makes no sense on that connection closes
//!   it and is counted ([`TransportStats::bad_connections`]), logged at debug; nothing a peer
//!   sends can panic the transport or stop it serving others. Every refusal, closed connection
//!   and dropped frame also counts under one reason ([`TransportStats::refusals`], exported as
//!   `vxnet_cluster_refusals_total{reason}`).
//! - **Sending.** [`Transport::send`] never blocks: it routes by `msg.to` to one task per peer
//!   that owns a bounded queue and at most one connection. The task connects lazily, keeps the
//!   connection, and after a failed attempt waits (exponential backoff with jitter, from
//!   [`TransportConfig::backoff_min`] to [`TransportConfig::backoff_max`]) before trying again;
//!   messages sent meanwhile are dropped. Raft tolerates loss, so every message that cannot be
//!   delivered (unknown peer, full queue, no connection, failed write, over its kind's cap) is
//!   dropped and reported as [`TransportEvent::Unreachable`], plus
//!   [`TransportEvent::SnapshotStatus`] `Failure` for a `MsgSnapshot`; a `MsgSnapshot` written
//!   out is reported as `Finish`. Messages to one peer arrive in the order they were sent,
//!   except that any may be lost.
//! - **Receiving.** Every raft message received becomes a [`TransportEvent::Raft`]; every
//!   join/leave request a [`TransportEvent::Request`] whose `reply` goes back on the connection
//!   that carried it. Dropping `reply` closes that connection, which the requester sees as an
//!   error rather than a wait until its timeout.
//! - [`request()`] is a one-shot RPC over a fresh connection, as a member or as a joiner
//!   ([`Credentials`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ::raft::eraftpb::{Message as RaftMessage, MessageType};
use ::raft::SnapshotStatus;
use bytes::Bytes;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;
use tracing::{debug, warn};
use vxnet_proto::{envelope, Envelope};

pub use super::tls::ClusterTls;
use super::tls::TlsError;
pub use super::token::{JoinToken, TokenError};

mod backoff;
mod frame;
mod inbound;
mod outbound;
mod peer;
mod refusals;
mod request;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use frame::{Accept, Frame, FrameCodec, Kind};
pub use frame::{FrameError, MAX_PROPOSAL, RAFT_BATCH_BYTES, RAFT_MAX_FRAME};
use inbound::accept_loop;
use outbound::run_peer;
use peer::PeerTable;
pub use refusals::{Reason as RefusalReason, RefusalCounts};
pub use request::{request, Credentials};

/// Default cap of the largest frames (a raft message with a snapshot, an answer): a snapshot
/// of the whole state travels in one.
pub const MAX_FRAME: usize = 64 << 20;

/// Tunables; [`Default`] is what a daemon uses, tests shrink the times.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Cap of the frames that may be largest: snapshots and answers (see `frame`).
    pub max_frame: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Bound on writing one batch; a peer that stops reading counts as unreachable.
    pub write_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Raft messages queued per peer before `send` drops them.
    pub queue_len: usize,
    /// Inbound connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Inbound connections served at once from one address.
    pub max_per_source: usize,
    /// An inbound connection silent this long (no request waiting) is closed.
    pub idle_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            max_frame: MAX_FRAME,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            // Long enough for a 64 MiB snapshot over a slow underlay.
            write_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            queue_len: 4096,
            max_connections: 1024,
            // A member keeps one connection to each peer, plus short-lived requests.
            max_per_source: 16,
            // Heartbeats flow every 200 ms on a leader's connections; a quiet connection
            // between followers is cheap to open again.
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What the transport tells the node.
#[derive(Debug)]
pub enum TransportEvent {
    /// A raft message for this host; step it.
    Raft(RaftMessage),
    /// A join or leave request; answer on `reply` (a `JoinResponse` or `LeaveResponse`).
    Request {
        from: SocketAddr,
        envelope: Envelope,
        reply: oneshot::Sender<Envelope>,
    },
    /// A message to this raft id was dropped; call `report_unreachable`.
    Unreachable(u64),
    /// A `MsgSnapshot` to this raft id was written out or dropped; call `report_snapshot`.
    SnapshotStatus(u64, SnapshotStatus),
}

/// Counters since start; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Outbound connections whose TLS handshake failed (the peer's certificate, or ours).
    pub auth_failures: u64,
    /// Inbound connections refused before any envelope: TLS failure, no or bad `Hello`, a
    /// revoked or mismatched raft id, a limit, or too slow.
    pub refused_connections: u64,
    /// Connections closed for a malformed or oversized frame or an unexpected envelope.
    pub bad_connections: u64,
    /// Raft messages dropped because their `from` is not the connection's certified raft id.
    pub spoofed_frames: u64,
    /// Raft messages dropped instead of sent.
    pub dropped_messages: u64,
    /// Every refusal above (and each dropped spoofed message) by its one reason.
    pub refusals: RefusalCounts,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen for cluster connections on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot connect to the cluster member at {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("the cluster member at {addr} did not answer within {} ms", .timeout.as_millis())]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("the TLS handshake with {addr} failed: {source}")]
    Tls { addr: SocketAddr, source: io::Error },
    #[error("cannot set up TLS: {0}")]
    Setup(#[from] TlsError),
    #[error("the host at {addr} does not speak the vxnet cluster protocol: {detail}")]
    Protocol { addr: SocketAddr, detail: String },
    #[error("lost the connection to the cluster member at {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    #[error("the cluster member at {addr} closed the connection before it answered")]
    Closed { addr: SocketAddr },
    #[error("a cluster message of {len} bytes is larger than the {max}-byte cap of its kind")]
    TooLarge { len: usize, max: usize },
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(io::Error),
}

impl TransportError {
    /// Whether the TLS handshake failed (a certificate the other side does not accept).
    fn is_auth_failure(&self) -> bool {
        matches!(self, TransportError::Tls { .. })
    }

    /// A frame that could not be written to or read from `addr`.
    fn frame(addr: SocketAddr, error: FrameError) -> TransportError {
        match error {
            FrameError::Io(source) => TransportError::Io { addr, source },
            FrameError::TooBig { len, cap, .. } => TransportError::TooLarge { len, max: cap },
            other => TransportError::Protocol {
                addr,
                detail: other.to_string(),
            },
        }
    }
}

/// A connection's framing (see `frame`), taking `accept` at first; `max_frame` is the cap of
/// snapshots and answers.
fn framed<T: AsyncRead + AsyncWrite>(
    io: T,
    accept: Accept,
    max_frame: usize,
) -> Framed<T, FrameCodec> {
    Framed::new(io, FrameCodec::new(accept, max_frame))
}

/// Encodes a raft message into an envelope's bytes.
pub fn encode_raft(msg: &RaftMessage) -> Result<Bytes, protobuf::ProtobufError> {
    let raft = protobuf::Message::write_to_bytes(msg)?;
    let envelope = Envelope {
        kind: Some(envelope::Kind::Raft(raft)),
    };
    Ok(Bytes::from(envelope.encode_to_vec()))
}

/// The frame that carries a raft message.
fn raft_frame(msg: &RaftMessage) -> Result<Frame, protobuf::ProtobufError> {
    Ok(Frame {
        kind: Kind::of_raft(msg),
        body: encode_raft(msg)?,
    })
}

/// The frame that carries a request or an answer; `None` for a raft message or nothing.
fn envelope_frame(envelope: &Envelope) -> Option<Frame> {
    let kind = Kind::of_envelope(envelope.kind.as_ref()?)?;
    Some(Frame {
        kind,
        body: Bytes::from(envelope.encode_to_vec()),
    })
}

/// The running transport: a listener and one outbound task per peer. Dropping it stops
/// everything, as [`Transport::shutdown`] does (without waiting).
pub struct Transport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    peers: PeerTable,
    accept: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

/// What every task of the transport shares.
struct Shared {
    own_id: u64,
    config: TransportConfig,
    tls: Arc<ClusterTls>,
    /// Raft ids whose certificates are refused, ascending.
    revoked: arc_swap::ArcSwap<Vec<u64>>,
    /// Inbound connections open per source address.
    per_source: Mutex<HashMap<IpAddr, usize>>,
    refusals: Mutex<refusals::RefusalLog>,
    events: mpsc::Sender<TransportEvent>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    auth_failures: AtomicU64,
    refused_connections: AtomicU64,
    bad_connections: AtomicU64,
    spoofed_frames: AtomicU64,
    dropped_messages: AtomicU64,
    reasons: refusals::ReasonCounters,
}

impl Shared {
    fn is_revoked(&self, raft_id: u64) -> bool {
        self.revoked.load().binary_search(&raft_id).is_ok()
    }

    /// Counts a refused inbound connection and logs it, at most once per source per minute.
    fn refused(&self, addr: SocketAddr, reason: refusals::Reason, why: &dyn std::fmt::Display) {
        self.counters
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
        self.counters.reasons.add(reason);
        if let Some(unlogged) = lock(&self.refusals).note(addr.ip(), Instant::now()) {
            if unlogged == 0 {
                warn!("refused a cluster connection from {addr}: {why}");
            } else {
                warn!(
                    "refused a cluster connection from {addr}: {why} ({unlogged} more from {} \
                     since the last such line)",
                    addr.ip()
                );
            }
        }
    }

    /// Drops `msg` and tells the node, so raft stops counting on its delivery.
    fn undeliverable(&self, msg: &RaftMessage) {
        self.counters
            .dropped_messages
            .fetch_add(1, Ordering::Relaxed);
        // Advice only: with the queue full, raft learns it from the missing answers instead.
        let _ = self.events.try_send(TransportEvent::Unreachable(msg.to));
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            self.tell(TransportEvent::SnapshotStatus(
                msg.to,
                SnapshotStatus::Failure,
            ));
        }
    }

    /// Queues an event the node must hear (a snapshot's outcome: without it raft would wait for
    /// that snapshot for good) without blocking the caller: at once if there is room, else
    /// from a task that waits for room. A closed queue means the node is gone.
    fn tell(&self, event: TransportEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            let events = self.events.clone();
            tokio::spawn(async move {
                let _ = events.send(event).await;
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked: every update is one insert/remove.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Transport {
    /// Binds `listen` and starts serving inbound connections with [`TransportConfig::default`].
    pub async fn start(
        listen: SocketAddr,
        tls: Arc<ClusterTls>,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<Transport, TransportError> {
        Transport::start_with(listen, tls, events, TransportConfig::default()).await
    }

    pub async fn start_with(
        listen: SocketAddr,
        tls: Arc<ClusterTls>,
        events: mpsc::Sender<TransportEvent>,
        config: TransportConfig,
    ) -> Result<Transport, TransportError> {
        let own_id = tls.raft_id;
        let bind_error = |source| TransportError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared {
            own_id,
            config,
            tls,
            revoked: arc_swap::ArcSwap::from_pointee(Vec::new()),
            per_source: Mutex::new(HashMap::new()),
            refusals: Mutex::new(refusals::RefusalLog::default()),
            events,
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        debug!(%local_addr, own_id, "cluster transport listening");
        Ok(Transport {
            shared,
            local_addr,
            // `set_peer` is not async; it spawns on the runtime the transport started on.
            runtime: tokio::runtime::Handle::current(),
            peers: PeerTable::default(),
            accept: Mutex::new(Some(accept)),
            closed: AtomicBool::new(false),
        })
    }

    /// The address the listener is bound to (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> TransportStats {
        let c = &self.shared.counters;
        TransportStats {
            auth_failures: c.auth_failures.load(Ordering::Relaxed),
            refused_connections: c.refused_connections.load(Ordering::Relaxed),
            bad_connections: c.bad_connections.load(Ordering::Relaxed),
            spoofed_frames: c.spoofed_frames.load(Ordering::Relaxed),
            dropped_messages: c.dropped_messages.load(Ordering::Relaxed),
            refusals: c.reasons.counts(),
        }
    }

    /// Adds a peer or moves it to a new address; a move drops the connection to the old one.
    pub fn set_peer(&self, id: u64, addr: SocketAddr) {
        if id == self.shared.own_id || self.closed.load(Ordering::Relaxed) {
            return;
        }
        let shared = &self.shared;
        self.peers
            .set(id, addr, shared.config.queue_len, |channels| {
                self.runtime.spawn(run_peer(id, channels, shared.clone()))
            });
    }

    /// Forgets a peer: its connection closes and messages still queued for it are dropped
    /// without reports (the node removed it, so nothing waits on them).
    pub fn remove_peer(&self, id: u64) {
        self.peers.remove(id);
    }

    /// The address `set_peer` gave for `id`.
    pub fn peer_addr(&self, id: u64) -> Option<SocketAddr> {
        self.peers.addr(id)
    }

    /// Replaces the list of raft ids whose certificates are refused (any order).
    pub fn set_revoked(&self, mut revoked: Vec<u64>) {
        revoked.sort_unstable();
        revoked.dedup();
        if **self.shared.revoked.load() != revoked {
            self.shared.revoked.store(Arc::new(revoked));
        }
    }

    /// Queues a raft message for `msg.to`; never blocks. See the module docs for what happens
    /// to a message that cannot be delivered.
    pub fn send(&self, msg: RaftMessage) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Some(msg) = self.peers.route(msg) {
            self.shared.undeliverable(&msg);
        }
    }

    /// Stops the listener, every connection and every peer task, and waits until the listener
    /// is closed (so its port can be bound again).
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let accept = lock(&self.accept).take();
        let peers = self.peers.abort_all();
        if let Some(accept) = accept {
            accept.abort();
            // Cancelled is the expected outcome; a panic in it would already have been logged.
            let _ = accept.await;
        }
        for peer in peers {
            let _ = peer.await;
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
        self.peers.abort_all();
    }
}
