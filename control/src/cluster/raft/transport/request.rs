//! Dialing a member: [`connect`] opens an authenticated connection (the outbound peer tasks
//! keep theirs), [`request`] makes a one-shot exchange over a fresh one, for a host that is
//! not a member yet (join) or wants an answer rather than a raft message (leave,
//! reachability).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use vxnet_proto::Envelope;

use super::super::auth::client_handshake;
use super::{framed, ClusterToken, TransportConfig, TransportError, HANDSHAKE_MAX_FRAME};

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
pub(super) async fn connect(
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
