//! The inbound side: accepts connections, authenticates them, and turns what arrives into
//! [`TransportEvent`]s (see the rules in the transport's module docs).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::raft::eraftpb::Message as RaftMessage;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, warn};
use vxnet_proto::{envelope, Envelope};

use super::super::auth::{server_handshake, HandshakeError};
use super::{framed, Shared, TransportEvent, HANDSHAKE_MAX_FRAME};

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
                // A full queue holds this connection back (and, through TCP, its sender)
                // until the node has caught up with what came before.
                if shared.events.send(event).await.is_err() {
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
