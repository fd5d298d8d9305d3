//! The cluster transport: carries raft-rs messages between the members of a cluster, and the
//! join/leave requests of hosts that are not members yet, over TCP.
//!
//! Rules a caller relies on:
//!
//! - **Framing.** Every message is one length-delimited frame (4-byte big-endian length, as
//!   tokio-util's `LengthDelimitedCodec` writes). After authentication a frame holds one prost
//!   [`Envelope`]; a raft message travels as opaque bytes in raft-rs's own (rust-protobuf)
//!   encoding. A frame longer than [`TransportConfig::max_frame`] (64 MiB: snapshots are
//!   large), an undecodable frame, or an envelope that makes no sense on that connection
//!   closes the connection. It is counted ([`TransportStats::bad_connections`]) and logged once
//!   at debug; nothing a peer sends can panic the transport or stop it serving others.
//! - **Authentication.** Every connection opens with the mutual challenge of [`super::auth`]
//!   before any envelope, bounded by [`TransportConfig::handshake_timeout`]; until it passes,
//!   frames are limited to a few KiB so a stranger cannot make this host allocate. A peer that
//!   does not know the cluster token is refused and logged at warn with its address. Raft
//!   messages on an inbound connection must come from the raft id the client proved and be
//!   addressed to this host; anything else closes the connection, since a sender with a stale
//!   address book is best told the peer is unreachable.
//! - **Sending.** [`Transport::send`] never blocks: it routes by `msg.to` to one task per peer
//!   that owns a bounded queue and at most one connection. The task connects lazily, keeps the
//!   connection, and after a failed attempt waits (exponential backoff with jitter, from
//!   [`TransportConfig::backoff_min`] to [`TransportConfig::backoff_max`]) before trying again;
//!   messages sent meanwhile are dropped. Raft tolerates loss, so every message that cannot be
//!   delivered (unknown peer, full queue, no connection, failed write) is dropped and reported
//!   as [`TransportEvent::Unreachable`], plus [`TransportEvent::SnapshotStatus`] `Failure` for a
//!   `MsgSnapshot`; a `MsgSnapshot` written out is reported as `Finish`. Messages to one peer
//!   arrive in the order they were sent, except that any may be lost.
//! - **Receiving.** Every raft message received becomes a [`TransportEvent::Raft`]; every
//!   join/leave request a [`TransportEvent::Request`] whose `reply` goes back on the connection
//!   that carried it. Dropping `reply` closes that connection, which the requester sees as an
//!   error rather than a wait until its timeout.
//! - **Token changes** ([`Transport::set_token`]) apply to connections opened afterwards; a
//!   connection already authenticated stays up.
//! - [`request()`] is a one-shot RPC over a fresh connection, for a host that is not a member yet.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ::raft::eraftpb::{Message as RaftMessage, MessageType};
use ::raft::SnapshotStatus;
use bytes::Bytes;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::debug;
use vxnet_proto::{envelope, Envelope};

use super::auth::HandshakeError;
pub use super::auth::{ClusterToken, TokenError};

mod backoff;
mod inbound;
mod outbound;
mod peer;
mod request;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use inbound::accept_loop;
use outbound::run_peer;
use peer::PeerTable;
pub use request::request;

/// Default upper bound on one frame: a snapshot of the whole state travels in one.
pub const MAX_FRAME: usize = 64 << 20;

/// Frame limit until a connection is authenticated; the handshake messages are ~100 bytes.
const HANDSHAKE_MAX_FRAME: usize = 4 << 10;

/// Tunables; [`Default`] is what a daemon uses, tests shrink the times.
#[derive(Debug, Clone)]
pub struct TransportConfig {
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
    /// Handshakes that failed because one side does not know the token (either direction).
    pub auth_failures: u64,
    /// Connections closed for a malformed or oversized frame, an unexpected envelope, or a
    /// handshake that failed for another reason or took too long.
    pub bad_connections: u64,
    /// Raft messages dropped instead of sent.
    pub dropped_messages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen for cluster connections on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot connect to the cluster member at {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("the cluster member at {addr} did not answer within {} ms", .timeout.as_millis())]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error(
        "the cluster member at {addr} refused this host: it does not accept this cluster token"
    )]
    Refused { addr: SocketAddr },
    #[error("refused the host at {addr}: it does not know the cluster token")]
    Unauthenticated { addr: SocketAddr },
    #[error("the host at {addr} does not speak the vxnet cluster protocol: {detail}")]
    Protocol { addr: SocketAddr, detail: String },
    #[error("lost the connection to the cluster member at {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    #[error("the cluster member at {addr} closed the connection before it answered")]
    Closed { addr: SocketAddr },
    #[error("a cluster message of {len} bytes is larger than the {max}-byte frame limit")]
    TooLarge { len: usize, max: usize },
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(io::Error),
}

impl TransportError {
    fn from_handshake(addr: SocketAddr, e: HandshakeError) -> TransportError {
        match e {
            HandshakeError::Io(source) => TransportError::Io { addr, source },
            HandshakeError::Closed => TransportError::Closed { addr },
            HandshakeError::Refused => TransportError::Refused { addr },
            HandshakeError::Malformed(detail) => TransportError::Protocol {
                addr,
                detail: detail.to_string(),
            },
            HandshakeError::BadProof => TransportError::Unauthenticated { addr },
            HandshakeError::Random(e) => TransportError::Random(e),
        }
    }

    /// Whether the failure means the two sides hold different tokens.
    fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            TransportError::Refused { .. } | TransportError::Unauthenticated { .. }
        )
    }
}

/// A length-delimited framing with the given frame limit, as both sides of a cluster
/// connection use it.
pub fn framed<T: AsyncRead + AsyncWrite>(
    io: T,
    max_frame: usize,
) -> Framed<T, LengthDelimitedCodec> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec();
    Framed::new(io, codec)
}

/// Encodes a raft message into an envelope's bytes.
pub fn encode_raft(msg: &RaftMessage) -> Result<Bytes, protobuf::ProtobufError> {
    let raft = protobuf::Message::write_to_bytes(msg)?;
    let envelope = Envelope {
        kind: Some(envelope::Kind::Raft(raft)),
    };
    Ok(Bytes::from(envelope.encode_to_vec()))
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
    token: watch::Sender<ClusterToken>,
    events: mpsc::Sender<TransportEvent>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    auth_failures: AtomicU64,
    bad_connections: AtomicU64,
    dropped_messages: AtomicU64,
}

impl Shared {
    fn token(&self) -> ClusterToken {
        self.token.borrow().clone()
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
        own_id: u64,
        token: ClusterToken,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<Transport, TransportError> {
        Transport::start_with(listen, own_id, token, events, TransportConfig::default()).await
    }

    pub async fn start_with(
        listen: SocketAddr,
        own_id: u64,
        token: ClusterToken,
        events: mpsc::Sender<TransportEvent>,
        config: TransportConfig,
    ) -> Result<Transport, TransportError> {
        let bind_error = |source| TransportError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let (token, _) = watch::channel(token);
        let shared = Arc::new(Shared {
            own_id,
            config,
            token,
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
            bad_connections: c.bad_connections.load(Ordering::Relaxed),
            dropped_messages: c.dropped_messages.load(Ordering::Relaxed),
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

    /// Switches to another cluster token (a host joining a cluster takes the cluster's).
    pub fn set_token(&self, token: ClusterToken) {
        self.shared.token.send_replace(token);
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
