//! The inbound side: accepts connections, runs TLS and reads the `Hello`, and turns what
//! arrives into [`TransportEvent`]s (see the rules in the transport's module docs).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::raft::eraftpb::Message as RaftMessage;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tracing::{debug, warn};
use vxnet_proto::{envelope, Envelope, Hello};

use super::super::tls::{check_client_id, is_certificate_error};
use super::frame::{Accept, FrameCodec, FrameError, Kind};
use super::refusals::Reason;
use super::{envelope_frame, framed, lock, Shared, TransportEvent};

/// Join/leave requests one connection may have waiting for the node's answer.
const MAX_PENDING_REQUESTS: usize = 16;

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts every connection it serves.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    if connections.len() >= shared.config.max_connections {
                        shared.refused(
                            addr,
                            Reason::ConnectionLimit,
                            &"too many cluster connections are open",
                        );
                        continue;
                    }
                    let Some(slot) = SourceSlot::take(&shared, addr.ip()) else {
                        shared.refused(addr, Reason::SourceLimit, &format_args!(
                            "more than {} connections from one address",
                            shared.config.max_per_source
                        ));
                        continue;
                    };
                    connections.spawn(serve_connection(stream, addr, shared.clone(), slot));
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

/// One of the connections a source address may have open; given back on drop.
struct SourceSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl SourceSlot {
    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<SourceSlot> {
        let mut open = lock(&shared.per_source);
        let count = open.entry(ip).or_insert(0);
        if *count >= shared.config.max_per_source {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.shared.per_source);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was refused before its first envelope.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("reading its Hello: {0}")]
    Frame(#[from] FrameError),
    #[error("closed before its Hello")]
    Closed,
    #[error("undecodable Hello")]
    BadHello,
    #[error("its certificate is not for raft id {0}")]
    WrongId(u64),
    #[error("it claims raft id {0} without a certificate")]
    NoCertificate(u64),
    #[error("the certificate of raft id {0} is revoked (the host was removed)")]
    Revoked(u64),
    #[error("no TLS handshake and Hello within {0} ms")]
    Slow(u128),
}

impl Refusal {
    fn reason(&self) -> Reason {
        match self {
            Refusal::Tls(e) if is_certificate_error(e) => Reason::BadCertificate,
            Refusal::Tls(_) => Reason::TlsHandshake,
            Refusal::Frame(FrameError::TooBig { .. }) => Reason::FrameTooBig,
            Refusal::Frame(_) | Refusal::Closed | Refusal::BadHello => Reason::BadHello,
            Refusal::WrongId(_) | Refusal::NoCertificate(_) => Reason::WrongId,
            Refusal::Revoked(_) => Reason::Revoked,
            Refusal::Slow(_) => Reason::HandshakeTimeout,
        }
    }
}

/// TLS, then the `Hello`: the raft id the connection is certified for (`None`: a joiner).
async fn open<S>(
    stream: S,
    shared: &Shared,
) -> Result<
    (
        Framed<tokio_rustls::server::TlsStream<S>, FrameCodec>,
        Option<u64>,
    ),
    Refusal,
>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tls = TlsAcceptor::from(shared.tls.server_config())
        .accept(stream)
        .await
        .map_err(Refusal::Tls)?;
    let certified = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first().cloned());
    let mut framed = framed(tls, Accept::hello(), shared.config.max_frame);
    let frame = framed.next().await.ok_or(Refusal::Closed)??;
    let hello = Hello::decode(frame.body).map_err(|_| Refusal::BadHello)?;
    let peer = match (certified, hello.raft_id) {
        (None, 0) => None,
        (None, id) => return Err(Refusal::NoCertificate(id)),
        (Some(cert), id) => {
            if id == 0 || !check_client_id(&cert, id) {
                return Err(Refusal::WrongId(id));
            }
            if shared.is_revoked(id) {
                return Err(Refusal::Revoked(id));
            }
            Some(id)
        }
    };
    Ok((framed, peer))
}

async fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    _slot: SourceSlot,
) {
    let _ = stream.set_nodelay(true);
    let limit = shared.config.handshake_timeout;
    let opened = timeout(limit, open(stream, &shared))
        .await
        .unwrap_or_else(|_| Err(Refusal::Slow(limit.as_millis())));
    let (mut framed, peer) = match opened {
        Ok(opened) => opened,
        Err(refusal) => return shared.refused(addr, refusal.reason(), &refusal),
    };
    let max_frame = shared.config.max_frame;
    framed.codec_mut().set_accept(match peer {
        Some(_) => Accept::member(max_frame),
        None => Accept::joiner(max_frame),
    });
    debug!(%addr, ?peer, "accepted a cluster connection");
    match serve_envelopes(&mut framed, addr, peer, &shared).await {
        Ok(()) => debug!(%addr, ?peer, "cluster connection closed"),
        Err(fault) => {
            shared
                .counters
                .bad_connections
                .fetch_add(1, Ordering::Relaxed);
            shared.counters.reasons.add(fault.reason(peer.is_none()));
            debug!(%addr, ?peer, %fault, "closed a cluster connection");
        }
    }
}

/// Why an inbound connection was closed by this side.
#[derive(Debug, thiserror::Error)]
enum ConnectionFault {
    /// Includes a frame over its kind's cap or of a kind the connection does not take.
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("undecodable envelope")]
    BadEnvelope,
    #[error("a {0:?} frame whose body is another kind")]
    KindMismatch(Kind),
    #[error("undecodable raft message")]
    BadRaft,
    #[error("a raft message on a connection without a certificate")]
    NotAMember,
    #[error("raft id {0} was revoked")]
    Revoked(u64),
    #[error("no frame for {0} ms")]
    Idle(u128),
    #[error("a raft message for {0}, which is not this host")]
    WrongRecipient(u64),
    #[error("an unexpected {0} envelope")]
    Unexpected(&'static str),
    #[error("more than {MAX_PENDING_REQUESTS} requests waiting for answers")]
    TooManyRequests,
}

impl ConnectionFault {
    /// The reason it counts under; `joiner`: the connection has no certificate.
    fn reason(&self, joiner: bool) -> Reason {
        match self {
            ConnectionFault::Frame(FrameError::TooBig { .. }) => Reason::FrameTooBig,
            ConnectionFault::Frame(FrameError::Unexpected(_)) if joiner => Reason::NotAMember,
            ConnectionFault::Frame(FrameError::Io(_)) => Reason::ConnectionError,
            ConnectionFault::Frame(_)
            | ConnectionFault::BadEnvelope
            | ConnectionFault::KindMismatch(_)
            | ConnectionFault::BadRaft
            | ConnectionFault::Unexpected(_) => Reason::BadFrame,
            ConnectionFault::NotAMember => Reason::NotAMember,
            ConnectionFault::Revoked(_) => Reason::Revoked,
            ConnectionFault::Idle(_) => Reason::IdleTimeout,
            ConnectionFault::WrongRecipient(_) => Reason::WrongRecipient,
            ConnectionFault::TooManyRequests => Reason::TooManyRequests,
        }
    }
}

/// Serves a connection until the peer closes it (`Ok`) or misbehaves (`Err`). `peer` is the
/// certified raft id; `None` for a joiner.
async fn serve_envelopes<T>(
    framed: &mut Framed<T, FrameCodec>,
    addr: SocketAddr,
    peer: Option<u64>,
    shared: &Shared,
) -> Result<(), ConnectionFault>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending = FuturesUnordered::new();
    let idle = shared.config.idle_timeout;
    let mut last_frame = Instant::now();
    loop {
        tokio::select! {
            frame = framed.next() => {
                let Some(frame) = frame else { return Ok(()) };
                last_frame = Instant::now();
                if let Some(id) = peer.filter(|&id| shared.is_revoked(id)) {
                    return Err(ConnectionFault::Revoked(id));
                }
                let frame = frame?;
                let envelope = Envelope::decode(frame.body).map_err(|_| ConnectionFault::BadEnvelope)?;
                let event = match envelope.kind {
                    Some(envelope::Kind::Raft(bytes)) => {
                        let peer_id = peer.ok_or(ConnectionFault::NotAMember)?;
                        let msg: RaftMessage = protobuf::Message::parse_from_bytes(&bytes)
                            .map_err(|_| ConnectionFault::BadRaft)?;
                        if Kind::of_raft(&msg) != frame.kind {
                            return Err(ConnectionFault::KindMismatch(frame.kind));
                        }
                        if msg.from != peer_id {
                            // Another member's id on this member's connection: drop it, the
                            // connection's own messages still count.
                            shared.counters.spoofed_frames.fetch_add(1, Ordering::Relaxed);
                            shared.counters.reasons.add(Reason::WrongSender);
                            if let Some(unlogged) = lock(&shared.refusals).note(addr.ip(), std::time::Instant::now()) {
                                warn!(
                                    "dropped a raft message from {addr} claiming raft id {} on a \
                                     connection certified for {peer_id} ({unlogged} more since the \
                                     last such line)",
                                    msg.from
                                );
                            }
                            continue;
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
                        if peer.is_none() && !matches!(kind, envelope::Kind::JoinRequest(_)) {
                            return Err(ConnectionFault::NotAMember);
                        }
                        if Kind::of_envelope(&kind) != Some(frame.kind) {
                            return Err(ConnectionFault::KindMismatch(frame.kind));
                        }
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
                // A full queue holds this connection back (and, through TCP, its sender)
                // until the node has caught up with what came before.
                if shared.events.send(event).await.is_err() {
                    // The node is gone; nothing will answer.
                    return Ok(());
                }
            }
            () = sleep_until(last_frame + idle), if pending.is_empty() => {
                return Err(ConnectionFault::Idle(idle.as_millis()));
            }
            Some(answer) = pending.next(), if !pending.is_empty() => {
                last_frame = Instant::now();
                // A dropped `reply` means the node will not answer: closing tells the requester.
                let Ok(answer) = answer else { return Ok(()) };
                // Anything but an answer would be refused by the requester: close instead.
                let Some(answer) = envelope_frame(&answer).filter(|f| f.kind == Kind::Answer) else {
                    return Ok(());
                };
                framed.send(answer).await?;
            }
        }
    }
}
