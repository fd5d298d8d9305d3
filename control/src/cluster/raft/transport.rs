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
//! - [`request`] is a one-shot RPC over a fresh connection, for a host that is not a member yet.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ::raft::eraftpb::{Message as RaftMessage, MessageType};
use ::raft::SnapshotStatus;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{timeout, Instant};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, info, warn};
use vxnet_proto::{envelope, Envelope};

use super::auth::{client_handshake, server_handshake, HandshakeError};
pub use super::auth::{ClusterToken, TokenError};

/// Default upper bound on one frame: a snapshot of the whole state travels in one.
pub const MAX_FRAME: usize = 64 << 20;

/// Frame limit until a connection is authenticated; the handshake messages are ~100 bytes.
const HANDSHAKE_MAX_FRAME: usize = 4 << 10;

/// Raft messages written before one flush: batches bursts without delaying a lone message.
const MAX_BATCH: usize = 64;

/// Join/leave requests one connection may have waiting for the node's answer.
const MAX_PENDING_REQUESTS: usize = 16;

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
    peers: Mutex<HashMap<u64, Peer>>,
    accept: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

/// What every task of the transport shares.
struct Shared {
    own_id: u64,
    config: TransportConfig,
    token: watch::Sender<ClusterToken>,
    events: mpsc::UnboundedSender<TransportEvent>,
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
        // A closed channel means the node is gone; nobody is left to tell.
        let _ = self.events.send(TransportEvent::Unreachable(msg.to));
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            let _ = self.events.send(TransportEvent::SnapshotStatus(
                msg.to,
                SnapshotStatus::Failure,
            ));
        }
    }
}

struct Peer {
    addr: watch::Sender<SocketAddr>,
    queue: mpsc::Sender<RaftMessage>,
    task: JoinHandle<()>,
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
        events: mpsc::UnboundedSender<TransportEvent>,
    ) -> Result<Transport, TransportError> {
        Transport::start_with(listen, own_id, token, events, TransportConfig::default()).await
    }

    pub async fn start_with(
        listen: SocketAddr,
        own_id: u64,
        token: ClusterToken,
        events: mpsc::UnboundedSender<TransportEvent>,
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
            peers: Mutex::new(HashMap::new()),
            accept: Mutex::new(Some(accept)),
            closed: AtomicBool::new(false),
        })
    }

    /// The address the listener is bound to (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn own_id(&self) -> u64 {
        self.shared.own_id
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
        let (queue_tx, queue_rx) = mpsc::channel(self.shared.config.queue_len.max(1));
        let task = self
            .runtime
            .spawn(run_peer(id, addr_rx, queue_rx, self.shared.clone()));
        peers.insert(
            id,
            Peer {
                addr: addr_tx,
                queue: queue_tx,
                task,
            },
        );
    }

    /// Forgets a peer: its connection closes and messages still queued for it are dropped
    /// without reports (the node removed it, so nothing waits on them).
    pub fn remove_peer(&self, id: u64) {
        if let Some(peer) = lock(&self.peers).remove(&id) {
            peer.task.abort();
        }
    }

    /// The address `set_peer` gave for `id`.
    pub fn peer_addr(&self, id: u64) -> Option<SocketAddr> {
        lock(&self.peers).get(&id).map(|p| *p.addr.borrow())
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
        let rejected = match lock(&self.peers).get(&msg.to) {
            None => Some(msg),
            Some(peer) => match peer.queue.try_send(msg) {
                Ok(()) => None,
                Err(TrySendError::Full(msg) | TrySendError::Closed(msg)) => Some(msg),
            },
        };
        if let Some(msg) = rejected {
            self.shared.undeliverable(&msg);
        }
    }

    /// Stops the listener, every connection and every peer task, and waits until the listener
    /// is closed (so its port can be bound again).
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let accept = lock(&self.accept).take();
        let peers: Vec<Peer> = lock(&self.peers).drain().map(|(_, p)| p).collect();
        for peer in &peers {
            peer.task.abort();
        }
        if let Some(accept) = accept {
            accept.abort();
            // Cancelled is the expected outcome; a panic in it would already have been logged.
            let _ = accept.await;
        }
        for peer in peers {
            let _ = peer.task.await;
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
        for (_, peer) in lock(&self.peers).drain() {
            peer.task.abort();
        }
    }
}

/// Sends `envelope` to `addr` over a fresh authenticated connection and returns the first
/// envelope that comes back. `timeout` bounds the whole exchange, connecting included.
pub async fn request(
    addr: SocketAddr,
    own_id: u64,
    token: &ClusterToken,
    envelope: Envelope,
    timeout: Duration,
) -> Result<Envelope, TransportError> {
    let config = TransportConfig::default();
    let exchange = async {
        let mut framed = connect(addr, own_id, token, &config).await?;
        let bytes = envelope.encode_to_vec();
        if bytes.len() > config.max_frame {
            return Err(TransportError::TooLarge {
                len: bytes.len(),
                max: config.max_frame,
            });
        }
        framed
            .send(Bytes::from(bytes))
            .await
            .map_err(|source| TransportError::Io { addr, source })?;
        let frame = framed
            .next()
            .await
            .ok_or(TransportError::Closed { addr })?
            .map_err(|source| TransportError::Io { addr, source })?;
        Envelope::decode(frame).map_err(|e| TransportError::Protocol {
            addr,
            detail: format!("undecodable answer ({e})"),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| TransportError::Timeout { addr, timeout })?
}

/// Connects to `addr` and authenticates as `own_id`; the result carries envelopes.
async fn connect(
    addr: SocketAddr,
    own_id: u64,
    token: &ClusterToken,
    config: &TransportConfig,
) -> Result<Framed<TcpStream, LengthDelimitedCodec>, TransportError> {
    let stream = timeout(config.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| TransportError::Timeout {
            addr,
            timeout: config.connect_timeout,
        })?
        .map_err(|source| TransportError::Connect { addr, source })?;
    // Raft messages are small and latency-bound (heartbeats, votes).
    let _ = stream.set_nodelay(true);
    let mut framed = framed(stream, HANDSHAKE_MAX_FRAME);
    timeout(
        config.handshake_timeout,
        client_handshake(&mut framed, own_id, token),
    )
    .await
    .map_err(|_| TransportError::Timeout {
        addr,
        timeout: config.handshake_timeout,
    })?
    .map_err(|e| TransportError::from_handshake(addr, e))?;
    framed.codec_mut().set_max_frame_length(config.max_frame);
    Ok(framed)
}

// ------------------------------------------------------------------------------ inbound

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts every connection it serves.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    if connections.len() >= shared.config.max_connections {
                        shared.counters.bad_connections.fetch_add(1, Ordering::Relaxed);
                        debug!(%addr, "closed a cluster connection: too many are open");
                        continue;
                    }
                    connections.spawn(serve_connection(stream, addr, shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!(error = %e, "cannot accept cluster connections");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, addr: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut framed = framed(stream, HANDSHAKE_MAX_FRAME);
    let token = shared.token();
    let handshake = timeout(
        shared.config.handshake_timeout,
        server_handshake(&mut framed, &token),
    );
    let peer_id = match handshake.await {
        Ok(Ok(peer_id)) => peer_id,
        Ok(Err(HandshakeError::BadProof)) => {
            shared
                .counters
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
            warn!("refused a cluster connection from {addr}: it does not know the cluster token");
            return;
        }
        Ok(Err(e)) => {
            shared
                .counters
                .bad_connections
                .fetch_add(1, Ordering::Relaxed);
            debug!(%addr, error = %e, "closed a cluster connection during authentication");
            return;
        }
        Err(_) => {
            shared
                .counters
                .bad_connections
                .fetch_add(1, Ordering::Relaxed);
            debug!(%addr, "closed a cluster connection: authentication took too long");
            return;
        }
    };
    framed
        .codec_mut()
        .set_max_frame_length(shared.config.max_frame);
    debug!(%addr, peer_id, "accepted a cluster connection");
    match serve_envelopes(&mut framed, addr, peer_id, &shared).await {
        Ok(()) => debug!(%addr, peer_id, "cluster connection closed"),
        Err(fault) => {
            shared
                .counters
                .bad_connections
                .fetch_add(1, Ordering::Relaxed);
            debug!(%addr, peer_id, %fault, "closed a cluster connection");
        }
    }
}

/// Why an inbound connection was closed by this side.
#[derive(Debug, thiserror::Error)]
enum ConnectionFault {
    /// Includes a frame over the limit (the codec's "frame size too big").
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("undecodable envelope")]
    BadEnvelope,
    #[error("undecodable raft message")]
    BadRaft,
    #[error("a raft message from {claimed} on a connection authenticated as {proved}")]
    WrongSender { claimed: u64, proved: u64 },
    #[error("a raft message for {0}, which is not this host")]
    WrongRecipient(u64),
    #[error("an unexpected {0} envelope")]
    Unexpected(&'static str),
    #[error("more than {MAX_PENDING_REQUESTS} requests waiting for answers")]
    TooManyRequests,
}

/// Serves an authenticated connection until the peer closes it (`Ok`) or misbehaves (`Err`).
async fn serve_envelopes<T>(
    framed: &mut Framed<T, LengthDelimitedCodec>,
    addr: SocketAddr,
    peer_id: u64,
    shared: &Shared,
) -> Result<(), ConnectionFault>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending = FuturesUnordered::new();
    loop {
        tokio::select! {
            frame = framed.next() => {
                let Some(frame) = frame else { return Ok(()) };
                let envelope = Envelope::decode(frame?).map_err(|_| ConnectionFault::BadEnvelope)?;
                let event = match envelope.kind {
                    Some(envelope::Kind::Raft(bytes)) => {
                        let msg: RaftMessage = protobuf::Message::parse_from_bytes(&bytes)
                            .map_err(|_| ConnectionFault::BadRaft)?;
                        if msg.from != peer_id {
                            return Err(ConnectionFault::WrongSender { claimed: msg.from, proved: peer_id });
                        }
                        if msg.to != shared.own_id {
                            return Err(ConnectionFault::WrongRecipient(msg.to));
                        }
                        TransportEvent::Raft(msg)
                    }
                    Some(
                        kind @ (envelope::Kind::JoinRequest(_)
                        | envelope::Kind::LeaveRequest(_)
                        | envelope::Kind::ReachabilityRequest(_)),
                    ) => {
                        if pending.len() >= MAX_PENDING_REQUESTS {
                            return Err(ConnectionFault::TooManyRequests);
                        }
                        let (reply, answer) = oneshot::channel();
                        pending.push(answer);
                        TransportEvent::Request {
                            from: addr,
                            envelope: Envelope { kind: Some(kind) },
                            reply,
                        }
                    }
                    Some(
                        envelope::Kind::JoinResponse(_)
                        | envelope::Kind::LeaveResponse(_)
                        | envelope::Kind::ReachabilityResponse(_),
                    ) => {
                        return Err(ConnectionFault::Unexpected("response"));
                    }
                    None => return Err(ConnectionFault::Unexpected("empty")),
                };
                if shared.events.send(event).is_err() {
                    // The node is gone; nothing will answer.
                    return Ok(());
                }
            }
            Some(answer) = pending.next(), if !pending.is_empty() => {
                // A dropped `reply` means the node will not answer: closing tells the requester.
                let Ok(answer) = answer else { return Ok(()) };
                framed.send(Bytes::from(answer.encode_to_vec())).await?;
            }
        }
    }
}

// ------------------------------------------------------------------------------ outbound

/// Exponential backoff with jitter: each delay is drawn from [d/2, d] for a `d` that doubles
/// from `min` up to `max`, so peers that failed together do not retry together.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        let seed = crate::sys::random_bytes::<8>()
            .map(u64::from_ne_bytes)
            // Jitter only spreads retries; the clock is random enough for that.
            .unwrap_or_else(|_| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        Backoff {
            min,
            max: max.max(min),
            next: min,
            rng: seed | 1, // xorshift must not start at 0
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = d / 2;
        let spread = half.as_nanos() as u64 + 1;
        half + Duration::from_nanos(self.rng % spread)
    }
}

/// What woke a peer task.
enum Wake {
    Message(Option<RaftMessage>),
    AddressChanged(bool),
    ConnectionClosed,
}

/// Resolves when the peer closes the connection (or sends anything: it has no reason to on a
/// connection this side opened); never, without a connection.
async fn closed(conn: Option<&mut Framed<TcpStream, LengthDelimitedCodec>>) {
    match conn {
        Some(framed) => {
            let _ = framed.next().await;
        }
        None => std::future::pending().await,
    }
}

/// The outbound side of one peer: owns the queue and the connection.
async fn run_peer(
    id: u64,
    mut addr: watch::Receiver<SocketAddr>,
    mut queue: mpsc::Receiver<RaftMessage>,
    shared: Arc<Shared>,
) {
    let config = &shared.config;
    let mut conn: Option<Framed<TcpStream, LengthDelimitedCodec>> = None;
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut retry_at: Option<Instant> = None;
    // The last failure logged at warn, so a peer that stays down is not logged every retry.
    let mut last_failure: Option<String> = None;
    loop {
        let wake = tokio::select! {
            msg = queue.recv() => Wake::Message(msg),
            changed = addr.changed() => Wake::AddressChanged(changed.is_ok()),
            () = closed(conn.as_mut()) => Wake::ConnectionClosed,
        };
        let first = match wake {
            Wake::Message(Some(msg)) => msg,
            Wake::Message(None) | Wake::AddressChanged(false) => return,
            Wake::AddressChanged(true) => {
                // A new address deserves a prompt first attempt.
                conn = None;
                retry_at = None;
                backoff.reset();
                continue;
            }
            Wake::ConnectionClosed => {
                debug!(peer = id, "the cluster connection to a peer closed");
                conn = None;
                continue;
            }
        };

        if conn.is_none() {
            if retry_at.is_some_and(|at| Instant::now() < at) {
                shared.undeliverable(&first);
                continue;
            }
            let peer_addr = *addr.borrow_and_update();
            match connect(peer_addr, shared.own_id, &shared.token(), config).await {
                Ok(framed) => {
                    if last_failure.take().is_some() {
                        info!(peer = id, addr = %peer_addr, "reached the cluster peer again");
                    } else {
                        debug!(peer = id, addr = %peer_addr, "connected to a cluster peer");
                    }
                    conn = Some(framed);
                    backoff.reset();
                    retry_at = None;
                }
                Err(e) => {
                    if e.is_auth_failure() {
                        shared
                            .counters
                            .auth_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let text = e.to_string();
                    if last_failure.as_deref() != Some(text.as_str()) {
                        warn!(peer = id, "{text}");
                        last_failure = Some(text);
                    } else {
                        debug!(peer = id, "{text}");
                    }
                    shared.undeliverable(&first);
                    retry_at = Some(Instant::now() + backoff.next_delay());
                    continue;
                }
            }
        }
        let Some(framed) = conn.as_mut() else {
            continue;
        };

        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        let mut frames = Vec::with_capacity(batch.len());
        let mut sent = Vec::with_capacity(batch.len());
        for msg in batch {
            match encode_raft(&msg) {
                Ok(bytes) if bytes.len() <= config.max_frame => {
                    frames.push(bytes);
                    sent.push(msg);
                }
                Ok(bytes) => {
                    // Not transient: raft will keep producing it, so say so every time.
                    warn!(
                        peer = id,
                        "dropped a raft {:?}: {}",
                        msg.get_msg_type(),
                        TransportError::TooLarge {
                            len: bytes.len(),
                            max: config.max_frame
                        }
                    );
                    shared.undeliverable(&msg);
                }
                Err(e) => {
                    warn!(peer = id, error = %e, "cannot encode a raft message");
                    shared.undeliverable(&msg);
                }
            }
        }
        if frames.is_empty() {
            continue;
        }

        let write = async {
            for frame in frames {
                framed.feed(frame).await?;
            }
            // `Framed` is a sink of anything its codec encodes; name the item.
            SinkExt::<Bytes>::flush(framed).await
        };
        match timeout(config.write_timeout, write).await {
            Ok(Ok(())) => {
                for msg in &sent {
                    if msg.get_msg_type() == MessageType::MsgSnapshot {
                        let _ = shared
                            .events
                            .send(TransportEvent::SnapshotStatus(id, SnapshotStatus::Finish));
                    }
                }
            }
            outcome => {
                let reason = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no progress for {} ms", config.write_timeout.as_millis()),
                };
                debug!(peer = id, %reason, "lost the cluster connection to a peer");
                conn = None;
                // Which of the batch got through is unknown; raft resends what matters.
                for msg in &sent {
                    shared.undeliverable(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::raft::auth;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc::UnboundedReceiver;
    use vxnet_proto::{JoinRequest, JoinResponse, LeaveRequest};

    const WAIT: Duration = Duration::from_secs(10);

    fn token(byte: u8) -> ClusterToken {
        ClusterToken::from_bytes([byte; auth::TOKEN_LEN])
    }

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    fn fast_config() -> TransportConfig {
        TransportConfig {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..TransportConfig::default()
        }
    }

    async fn start(id: u64, token: ClusterToken) -> (Transport, UnboundedReceiver<TransportEvent>) {
        start_at(loopback(), id, token, fast_config()).await
    }

    async fn start_at(
        addr: SocketAddr,
        id: u64,
        token: ClusterToken,
        config: TransportConfig,
    ) -> (Transport, UnboundedReceiver<TransportEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let t = Transport::start_with(addr, id, token, tx, config)
            .await
            .expect("start transport");
        (t, rx)
    }

    fn heartbeat(from: u64, to: u64, commit: u64) -> RaftMessage {
        let mut m = RaftMessage::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.from = from;
        m.to = to;
        m.commit = commit;
        m
    }

    fn snapshot(from: u64, to: u64, len: usize) -> RaftMessage {
        let mut m = RaftMessage::default();
        m.set_msg_type(MessageType::MsgSnapshot);
        m.from = from;
        m.to = to;
        let mut snap = ::raft::eraftpb::Snapshot {
            data: Bytes::from(vec![0x5a; len]),
            ..Default::default()
        };
        snap.mut_metadata().index = 10;
        snap.mut_metadata().term = 2;
        m.set_snapshot(snap);
        m
    }

    /// The next event that `pick` accepts, skipping others; panics after `WAIT`.
    async fn expect_event<T>(
        rx: &mut UnboundedReceiver<TransportEvent>,
        mut pick: impl FnMut(TransportEvent) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("timed out waiting for a transport event")
                .expect("events channel open");
            if let Some(t) = pick(event) {
                return t;
            }
        }
    }

    fn raft_msg(e: TransportEvent) -> Option<RaftMessage> {
        match e {
            TransportEvent::Raft(m) => Some(m),
            _ => None,
        }
    }

    /// Asserts nothing but `allowed` events arrive within `wait`.
    async fn expect_quiet(
        rx: &mut UnboundedReceiver<TransportEvent>,
        wait: Duration,
        allowed: impl Fn(&TransportEvent) -> bool,
    ) {
        let deadline = Instant::now() + wait;
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            assert!(allowed(&e), "unexpected event {e:?}");
        }
    }

    /// A raw TCP connection that has passed the handshake, for sending hand-made frames.
    async fn raw_client(
        addr: SocketAddr,
        id: u64,
        token: &ClusterToken,
    ) -> Framed<TcpStream, LengthDelimitedCodec> {
        connect(addr, id, token, &TransportConfig::default())
            .await
            .expect("authenticated connection")
    }

    /// Whether the peer closed `stream` within `WAIT` (reading until EOF or reset).
    async fn closes(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }

    #[tokio::test]
    async fn framing_round_trip() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut a, mut b) = (framed(a, 1 << 20), framed(b, 1 << 20));
        let msg = heartbeat(1, 2, 77);
        a.send(encode_raft(&msg).expect("encode"))
            .await
            .expect("send");
        let frame = b.next().await.expect("a frame").expect("readable");
        let envelope = Envelope::decode(frame).expect("envelope");
        let Some(envelope::Kind::Raft(bytes)) = envelope.kind else {
            panic!("not a raft envelope: {envelope:?}");
        };
        let back: RaftMessage = protobuf::Message::parse_from_bytes(&bytes).expect("raft");
        assert_eq!(back, msg);

        // The length prefix is 4 bytes big-endian.
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = framed(a, 16);
        a.send(Bytes::from_static(b"abc")).await.expect("send");
        let mut wire = [0u8; 7];
        b.read_exact(&mut wire).await.expect("read");
        assert_eq!(wire, [0, 0, 0, 3, b'a', b'b', b'c']);

        // Over the limit: refused on both sides, not allocated.
        assert!(a.send(Bytes::from(vec![0; 17])).await.is_err());
        b.write_all(&[0, 0, 0, 17]).await.expect("write");
        assert!(a.next().await.expect("an item").is_err());
    }

    #[tokio::test]
    async fn authenticated_both_ways() {
        let (a, mut a_rx) = start(1, token(7)).await;
        let (b, mut b_rx) = start(2, token(7)).await;
        a.set_peer(2, b.local_addr());
        b.set_peer(1, a.local_addr());
        a.send(heartbeat(1, 2, 5));
        b.send(heartbeat(2, 1, 6));
        assert_eq!(expect_event(&mut b_rx, raft_msg).await, heartbeat(1, 2, 5));
        assert_eq!(expect_event(&mut a_rx, raft_msg).await, heartbeat(2, 1, 6));
        assert_eq!(a.stats().auth_failures + b.stats().auth_failures, 0);
        assert_eq!(a.peer_addr(2), Some(b.local_addr()));
        a.shutdown().await;
        b.shutdown().await;
    }

    #[tokio::test]
    async fn server_refuses_client_with_wrong_token() {
        let (a, mut a_rx) = start(1, token(1)).await;
        let (b, mut b_rx) = start(2, token(2)).await;
        a.set_peer(2, b.local_addr());
        a.send(heartbeat(1, 2, 1));
        assert_eq!(
            expect_event(&mut a_rx, |e| match e {
                TransportEvent::Unreachable(id) => Some(id),
                _ => None,
            })
            .await,
            2
        );
        assert_eq!(b.stats().auth_failures, 1);
        assert_eq!(a.stats().auth_failures, 1);
        expect_quiet(&mut b_rx, Duration::from_millis(100), |_| false).await;

        let err = request(
            b.local_addr(),
            1,
            &token(1),
            join_request(),
            Duration::from_secs(5),
        )
        .await
        .expect_err("wrong token");
        assert!(matches!(err, TransportError::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains("refused this host"), "{err}");
        assert_eq!(b.stats().auth_failures, 2);

        // The right token still gets through.
        b.set_token(token(1));
        a.send(heartbeat(1, 2, 2));
        let deadline = Instant::now() + WAIT;
        loop {
            // The first sends may land in the backoff window and be dropped.
            a.send(heartbeat(1, 2, 3));
            let got = tokio::time::timeout(Duration::from_millis(50), b_rx.recv()).await;
            if let Ok(Some(TransportEvent::Raft(m))) = got {
                assert_eq!(m.from, 1);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no delivery after the token changed"
            );
        }
    }

    /// A server that knows some other token but pretends: it answers every proof.
    async fn impostor() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind(loopback()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            for _ in 0..10 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut f = framed(stream, 4096);
                let nonce_s = [9u8; auth::NONCE_LEN];
                let challenge = vxnet_proto::AuthChallenge {
                    nonce: nonce_s.to_vec(),
                };
                let _ = f.send(Bytes::from(challenge.encode_to_vec())).await;
                let Some(Ok(frame)) = f.next().await else {
                    continue;
                };
                let response = vxnet_proto::AuthResponse::decode(frame).expect("response");
                let confirm = vxnet_proto::AuthConfirm {
                    mac: auth::server_proof(&token(99), &response.nonce, &nonce_s),
                };
                let _ = f.send(Bytes::from(confirm.encode_to_vec())).await;
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn client_refuses_server_without_token() {
        let (addr, impostor) = impostor().await;
        let err = request(addr, 1, &token(1), join_request(), Duration::from_secs(5))
            .await
            .expect_err("impostor");
        assert!(
            matches!(err, TransportError::Unauthenticated { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("refused the host at {addr}: it does not know the cluster token")
        );

        let (a, mut a_rx) = start(1, token(1)).await;
        a.set_peer(2, addr);
        a.send(heartbeat(1, 2, 1));
        assert_eq!(
            expect_event(&mut a_rx, |e| match e {
                TransportEvent::Unreachable(id) => Some(id),
                _ => None,
            })
            .await,
            2
        );
        assert_eq!(a.stats().auth_failures, 1);
        impostor.abort();
    }

    #[tokio::test]
    async fn refusal_is_logged_at_warn_with_the_address() {
        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                lock(&self.0).extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // A current-thread test runtime: every task runs on this thread, under this subscriber.
        let _guard = tracing::subscriber::set_default(subscriber);

        let (b, _b_rx) = start(2, token(2)).await;
        let mut stream = TcpStream::connect(b.local_addr()).await.expect("connect");
        let client_addr = stream.local_addr().expect("addr");
        let mut f = framed(&mut stream, 4096);
        let err = client_handshake(&mut f, 1, &token(1))
            .await
            .expect_err("refused");
        assert!(matches!(err, HandshakeError::Refused), "{err:?}");
        let logged = String::from_utf8_lossy(&lock(&capture.0)).into_owned();
        assert!(logged.contains("WARN"), "{logged}");
        assert!(
            logged.contains(&format!(
                "refused a cluster connection from {client_addr}: it does not know the cluster token"
            )),
            "{logged}"
        );
    }

    #[tokio::test]
    async fn bad_frames_close_the_connection_and_the_server_keeps_serving() {
        let (b, mut b_rx) = start(2, token(3)).await;
        let addr = b.local_addr();

        // Before authentication: garbage instead of an AuthResponse.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
            .await
            .expect("write");
        assert!(closes(&mut s).await);

        // Before authentication: a length far above the handshake limit.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&[0x7f, 0xff, 0xff, 0xff]).await.expect("write");
        assert!(closes(&mut s).await);

        // After authentication: a length above 64 MiB.
        let mut f = raw_client(addr, 1, &token(3)).await;
        f.get_mut()
            .write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .expect("write");
        assert!(closes(f.get_mut()).await);

        // After authentication: not an envelope; a raft payload that is not a raft message;
        // an empty envelope; a response nobody asked for; a forged sender; the wrong host.
        let forged = encode_raft(&heartbeat(5, 2, 1)).expect("encode");
        let misrouted = encode_raft(&heartbeat(1, 3, 1)).expect("encode");
        let junk = [
            Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Bytes::from(
                Envelope {
                    kind: Some(envelope::Kind::Raft(vec![0xff; 9])),
                }
                .encode_to_vec(),
            ),
            Bytes::new(),
            Bytes::from(
                Envelope {
                    kind: Some(envelope::Kind::JoinResponse(JoinResponse::default())),
                }
                .encode_to_vec(),
            ),
            forged,
            misrouted,
        ];
        for frame in junk {
            let mut f = raw_client(addr, 1, &token(3)).await;
            f.send(frame).await.expect("send");
            assert!(closes(f.get_mut()).await);
        }
        let stats = b.stats();
        assert_eq!(stats.bad_connections, 9, "{stats:?}");
        assert_eq!(stats.auth_failures, 0, "{stats:?}");
        expect_quiet(&mut b_rx, Duration::from_millis(50), |_| false).await;

        // Still serving.
        let (a, _a_rx) = start(1, token(3)).await;
        a.set_peer(2, addr);
        a.send(heartbeat(1, 2, 42));
        assert_eq!(expect_event(&mut b_rx, raft_msg).await, heartbeat(1, 2, 42));
    }

    #[tokio::test]
    async fn handshake_timeout_closes_silent_connections() {
        let config = TransportConfig {
            handshake_timeout: Duration::from_millis(100),
            ..fast_config()
        };
        let (b, _b_rx) = start_at(loopback(), 2, token(1), config).await;
        let mut s = TcpStream::connect(b.local_addr()).await.expect("connect");
        assert!(closes(&mut s).await);
        assert_eq!(b.stats().bad_connections, 1);
    }

    #[tokio::test]
    async fn thousand_messages_in_order() {
        let (a, _a_rx) = start(1, token(4)).await;
        let (b, mut b_rx) = start(2, token(4)).await;
        a.set_peer(2, b.local_addr());
        for i in 0..1000 {
            a.send(heartbeat(1, 2, i));
        }
        for i in 0..1000 {
            let m = expect_event(&mut b_rx, raft_msg).await;
            assert_eq!(m.commit, i);
        }
        assert_eq!(a.stats().dropped_messages, 0);
    }

    #[tokio::test]
    async fn full_queue_drops_and_reports() {
        let config = TransportConfig {
            queue_len: 4,
            ..fast_config()
        };
        let (a, mut a_rx) = start_at(loopback(), 1, token(4), config).await;
        let (b, _b_rx) = start(2, token(4)).await;
        a.set_peer(2, b.local_addr());
        // Synchronous sends outpace the peer task, which cannot run in between.
        for i in 0..10 {
            a.send(heartbeat(1, 2, i));
        }
        assert_eq!(a.stats().dropped_messages, 6);
        for _ in 0..6 {
            let id = expect_event(&mut a_rx, |e| match e {
                TransportEvent::Unreachable(id) => Some(id),
                _ => None,
            })
            .await;
            assert_eq!(id, 2);
        }
    }

    #[tokio::test]
    async fn unknown_and_removed_peers_are_unreachable() {
        let (a, mut a_rx) = start(1, token(4)).await;
        let (b, _b_rx) = start(2, token(4)).await;
        a.send(heartbeat(1, 9, 0));
        assert!(matches!(
            expect_event(&mut a_rx, Some).await,
            TransportEvent::Unreachable(9)
        ));
        a.set_peer(2, b.local_addr());
        a.remove_peer(2);
        assert_eq!(a.peer_addr(2), None);
        a.send(heartbeat(1, 2, 0));
        assert!(matches!(
            expect_event(&mut a_rx, Some).await,
            TransportEvent::Unreachable(2)
        ));
    }

    #[tokio::test]
    async fn unreachable_then_delivery_resumes() {
        // A free port, for a peer that is down now and comes up later.
        let addr = {
            let l = std::net::TcpListener::bind(loopback()).expect("bind");
            l.local_addr().expect("addr")
        };
        // The daemon's own backoff (100 ms .. 5 s), to show it stays bounded.
        let (a, mut a_rx) = start_at(loopback(), 1, token(5), TransportConfig::default()).await;
        a.set_peer(2, addr);
        a.send(heartbeat(1, 2, 0));
        assert!(matches!(
            expect_event(&mut a_rx, Some).await,
            TransportEvent::Unreachable(2)
        ));
        // Stay down through a few failed attempts, like a peer that reboots.
        let down_until = Instant::now() + Duration::from_millis(700);
        let mut unreachable = 1;
        while Instant::now() < down_until {
            a.send(heartbeat(1, 2, 0));
            tokio::time::sleep(Duration::from_millis(20)).await;
            while let Ok(e) = a_rx.try_recv() {
                assert!(matches!(e, TransportEvent::Unreachable(2)), "{e:?}");
                unreachable += 1;
            }
        }
        assert!(unreachable > 10, "{unreachable}");

        let (b, mut b_rx) = start_at(addr, 2, token(5), fast_config()).await;
        let up = Instant::now();
        let mut commit = 1;
        loop {
            a.send(heartbeat(1, 2, commit));
            commit += 1;
            let got = tokio::time::timeout(Duration::from_millis(20), b_rx.recv()).await;
            if let Ok(Some(TransportEvent::Raft(m))) = got {
                assert_eq!(m.from, 1);
                break;
            }
            assert!(up.elapsed() < WAIT, "delivery did not resume");
        }
        // The backoff had reached at most 800 ms (drawn from [400, 800]).
        assert!(
            up.elapsed() < Duration::from_millis(1500),
            "{:?}",
            up.elapsed()
        );

        // The peer goes down again (connection open): reported, then back once more.
        b.shutdown().await;
        drop(b_rx);
        let deadline = Instant::now() + WAIT;
        loop {
            a.send(heartbeat(1, 2, 0));
            let got = tokio::time::timeout(Duration::from_millis(20), a_rx.recv()).await;
            if let Ok(Some(TransportEvent::Unreachable(2))) = got {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no Unreachable after the peer went down"
            );
        }
        let (_b, mut b_rx) = start_at(addr, 2, token(5), fast_config()).await;
        let deadline = Instant::now() + WAIT;
        loop {
            a.send(heartbeat(1, 2, 1));
            let got = tokio::time::timeout(Duration::from_millis(20), b_rx.recv()).await;
            if let Ok(Some(TransportEvent::Raft(_))) = got {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "delivery did not resume the second time"
            );
        }
    }

    #[tokio::test]
    async fn peer_moves_to_a_new_address() {
        let (a, _a_rx) = start(1, token(6)).await;
        let (old, mut old_rx) = start(2, token(6)).await;
        let (new, mut new_rx) = start(2, token(6)).await;
        a.set_peer(2, old.local_addr());
        a.send(heartbeat(1, 2, 1));
        assert_eq!(expect_event(&mut old_rx, raft_msg).await.commit, 1);
        a.set_peer(2, new.local_addr());
        // The move is seen by the peer task before the next message (watch before queue is
        // not guaranteed), so retry until the new address gets one.
        let deadline = Instant::now() + WAIT;
        let mut commit = 2;
        loop {
            a.send(heartbeat(1, 2, commit));
            commit += 1;
            let got = tokio::time::timeout(Duration::from_millis(20), new_rx.recv()).await;
            if let Ok(Some(TransportEvent::Raft(_))) = got {
                break;
            }
            assert!(Instant::now() < deadline, "the new address got nothing");
        }
    }

    fn join_request() -> Envelope {
        Envelope {
            kind: Some(envelope::Kind::JoinRequest(JoinRequest::default())),
        }
    }

    #[tokio::test]
    async fn request_reply_round_trip() {
        let (b, mut b_rx) = start(2, token(8)).await;
        let node = tokio::spawn(async move {
            // Answer a join, drop a leave (the node gave up on it).
            for _ in 0..2 {
                let Some(TransportEvent::Request {
                    from,
                    envelope,
                    reply,
                }) = b_rx.recv().await
                else {
                    panic!("expected a request");
                };
                assert!(from.ip().is_loopback());
                if let Some(envelope::Kind::JoinRequest(_)) = envelope.kind {
                    let answer = Envelope {
                        kind: Some(envelope::Kind::JoinResponse(JoinResponse {
                            leader_addr: "10.0.0.1:7000".into(),
                            ..JoinResponse::default()
                        })),
                    };
                    reply.send(answer).expect("requester waiting");
                }
            }
            b_rx
        });
        let answer = request(
            b.local_addr(),
            9,
            &token(8),
            join_request(),
            Duration::from_secs(5),
        )
        .await
        .expect("answer");
        let Some(envelope::Kind::JoinResponse(r)) = answer.kind else {
            panic!("not a join response: {answer:?}");
        };
        assert_eq!(r.leader_addr, "10.0.0.1:7000");

        let leave = Envelope {
            kind: Some(envelope::Kind::LeaveRequest(LeaveRequest {
                host_id: "h".into(),
            })),
        };
        let err = request(b.local_addr(), 9, &token(8), leave, Duration::from_secs(5))
            .await
            .expect_err("dropped");
        assert!(matches!(err, TransportError::Closed { .. }), "{err:?}");
        let _b_rx = node.await.expect("node task");

        // Nobody answers at all: the requester's timeout.
        let err = request(
            b.local_addr(),
            9,
            &token(8),
            join_request(),
            Duration::from_millis(200),
        )
        .await
        .expect_err("no answer");
        assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
        assert!(
            err.to_string().ends_with("did not answer within 200 ms"),
            "{err}"
        );

        // Nobody listens.
        let (free, _) = {
            let l = std::net::TcpListener::bind(loopback()).expect("bind");
            (l.local_addr().expect("addr"), ())
        };
        let err = request(free, 9, &token(8), join_request(), Duration::from_secs(5))
            .await
            .expect_err("refused");
        assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn snapshot_status_reported() {
        let (a, mut a_rx) = start(1, token(9)).await;
        let (b, mut b_rx) = start(2, token(9)).await;
        a.set_peer(2, b.local_addr());
        let snap = snapshot(1, 2, 4 << 20);
        a.send(snap.clone());
        let status = expect_event(&mut a_rx, |e| match e {
            TransportEvent::SnapshotStatus(id, s) => Some((id, s)),
            _ => None,
        })
        .await;
        assert_eq!(status, (2, SnapshotStatus::Finish));
        assert_eq!(expect_event(&mut b_rx, raft_msg).await, snap);

        // To a peer nobody knows: Unreachable and Failure.
        a.send(snapshot(1, 3, 10));
        assert!(matches!(
            expect_event(&mut a_rx, Some).await,
            TransportEvent::Unreachable(3)
        ));
        assert!(matches!(
            expect_event(&mut a_rx, Some).await,
            TransportEvent::SnapshotStatus(3, SnapshotStatus::Failure)
        ));
    }

    #[tokio::test]
    async fn oversized_snapshot_fails() {
        let config = TransportConfig {
            max_frame: 64 << 10,
            ..fast_config()
        };
        let (a, mut a_rx) = start_at(loopback(), 1, token(9), config).await;
        let (b, mut b_rx) = start(2, token(9)).await;
        a.set_peer(2, b.local_addr());
        a.send(snapshot(1, 2, 128 << 10));
        let status = expect_event(&mut a_rx, |e| match e {
            TransportEvent::SnapshotStatus(id, s) => Some((id, s)),
            _ => None,
        })
        .await;
        assert_eq!(status, (2, SnapshotStatus::Failure));
        // The connection is still good for what fits.
        a.send(heartbeat(1, 2, 3));
        assert_eq!(expect_event(&mut b_rx, raft_msg).await.commit, 3);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_max() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(min, max);
        let mut d = min;
        for _ in 0..20 {
            let delay = b.next_delay();
            assert!(delay >= d / 2 && delay <= d, "{delay:?} vs {d:?}");
            d = (d * 2).min(max);
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[tokio::test]
    async fn shutdown_frees_the_port_and_stops_sending() {
        let (a, mut a_rx) = start(1, token(1)).await;
        let addr = a.local_addr();
        a.set_peer(2, addr);
        a.shutdown().await;
        a.send(heartbeat(1, 2, 0));
        expect_quiet(&mut a_rx, Duration::from_millis(50), |_| false).await;
        let (_again, _rx) = start_at(addr, 1, token(1), fast_config()).await;
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let (a, _rx) = start(1, token(1)).await;
        let (tx, _rx2) = mpsc::unbounded_channel();
        let err = Transport::start(a.local_addr(), 2, token(1), tx)
            .await
            .err()
            .expect("address in use");
        assert!(
            err.to_string().starts_with(&format!(
                "cannot listen for cluster connections on {}",
                a.local_addr()
            )),
            "{err}"
        );
    }
}
