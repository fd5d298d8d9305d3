//! Dialing a member: [`connect`] opens a TLS connection and says `Hello` (the outbound peer
//! tasks keep theirs), [`request`] makes a one-shot exchange over a fresh one, for a host that
//! is not a member yet (join) or wants an answer rather than a raft message (leave,
//! reachability).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use vxnet_proto::{Envelope, Hello};

use super::super::tls::{joiner_client_config, name_to_dial};
use super::{framed, ClusterTls, TransportConfig, TransportError, HANDSHAKE_MAX_FRAME};

/// An outbound cluster connection.
pub(super) type ClientConn = Framed<TlsStream<TcpStream>, LengthDelimitedCodec>;

/// Who dials.
#[derive(Clone)]
pub enum Credentials {
    /// A member, with its certificate.
    Member(Arc<ClusterTls>),
    /// A host that is not a member yet: no certificate; it trusts only the CA with this
    /// fingerprint (from the join token).
    Joiner { ca_fingerprint: [u8; 32] },
}

impl Credentials {
    /// The TLS settings, and the raft id the `Hello` names (0: none).
    fn client_config(&self) -> Result<(Arc<ClientConfig>, u64), TransportError> {
        Ok(match self {
            Credentials::Member(tls) => (tls.client_config(), tls.raft_id),
            Credentials::Joiner { ca_fingerprint } => (joiner_client_config(*ca_fingerprint)?, 0),
        })
    }
}

/// Sends `envelope` to `addr` over a fresh connection and returns the first envelope that
/// comes back. `timeout` bounds the whole exchange, connecting included.
pub async fn request(
    addr: SocketAddr,
    credentials: &Credentials,
    envelope: Envelope,
    timeout: Duration,
) -> Result<Envelope, TransportError> {
    let config = TransportConfig::default();
    let exchange = async {
        let mut framed = connect(addr, credentials, None, &config).await?;
        let bytes = envelope.encode_to_vec();
        let max = framed.codec().max_frame_length();
        if bytes.len() > max {
            return Err(TransportError::TooLarge {
                len: bytes.len(),
                max,
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
            .map_err(|source| match source.kind() {
                // The member dropped the connection without TLS's goodbye: it did not answer.
                std::io::ErrorKind::UnexpectedEof => TransportError::Closed { addr },
                _ => TransportError::Io { addr, source },
            })?;
        Envelope::decode(frame).map_err(|e| TransportError::Protocol {
            addr,
            detail: format!("undecodable answer ({e})"),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| TransportError::Timeout { addr, timeout })?
}

/// Connects to `addr`, runs the TLS handshake expecting the member `peer` (or any member),
/// and says `Hello`; the result carries envelopes.
pub(super) async fn connect(
    addr: SocketAddr,
    credentials: &Credentials,
    peer: Option<u64>,
    config: &TransportConfig,
) -> Result<ClientConn, TransportError> {
    let (client_config, own_id) = credentials.client_config()?;
    let name = name_to_dial(peer)?;
    let stream = timeout(config.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| TransportError::Timeout {
            addr,
            timeout: config.connect_timeout,
        })?
        .map_err(|source| TransportError::Connect { addr, source })?;
    // Raft messages are small and latency-bound (heartbeats, votes).
    let _ = stream.set_nodelay(true);
    let handshake = async {
        let tls = TlsConnector::from(client_config)
            .connect(name, stream)
            .await
            .map_err(|source| TransportError::Tls { addr, source })?;
        let mut framed = framed(tls, HANDSHAKE_MAX_FRAME);
        let hello = Hello { raft_id: own_id };
        framed
            .send(Bytes::from(hello.encode_to_vec()))
            .await
            .map_err(|source| TransportError::Io { addr, source })?;
        Ok::<_, TransportError>(framed)
    };
    let mut framed = timeout(config.handshake_timeout, handshake)
        .await
        .map_err(|_| TransportError::Timeout {
            addr,
            timeout: config.handshake_timeout,
        })??;
    // The server is verified by now: its answers may be as large as any member's frame (a
    // join answer lists every member). What this side may send, the server checks.
    framed.codec_mut().set_max_frame_length(config.max_frame);
    Ok(framed)
}
