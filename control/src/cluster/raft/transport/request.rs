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
use tokio_util::codec::Framed;
use vxnet_proto::{Envelope, Hello};

use super::super::tls::{joiner_client_config, name_to_dial};
use super::frame::{Accept, Frame, FrameCodec, FrameError, Kind};
use super::{envelope_frame, framed, ClusterTls, TransportConfig, TransportError};

/// An outbound cluster connection.
pub(super) type ClientConn = Framed<TlsStream<TcpStream>, FrameCodec>;

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
        let frame = envelope_frame(&envelope).ok_or_else(|| TransportError::Protocol {
            addr,
            detail: "only a request can be sent this way".to_owned(),
        })?;
        let mut framed = connect(addr, credentials, None, &config).await?;
        framed
            .codec_mut()
            .set_accept(Accept::answers(config.max_frame));
        framed
            .send(frame)
            .await
            .map_err(|e| TransportError::frame(addr, e))?;
        let frame = framed
            .next()
            .await
            .ok_or(TransportError::Closed { addr })?
            .map_err(|e| match e {
                // The member dropped the connection without TLS's goodbye: it did not answer.
                FrameError::Io(source) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                    TransportError::Closed { addr }
                }
                other => TransportError::frame(addr, other),
            })?;
        Envelope::decode(frame.body).map_err(|e| TransportError::Protocol {
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
        // The server says nothing on a connection unless asked (see `request`).
        let mut framed = framed(tls, Accept::nothing(), config.max_frame);
        let hello = Frame {
            kind: Kind::Hello,
            body: Bytes::from(Hello { raft_id: own_id }.encode_to_vec()),
        };
        framed
            .send(hello)
            .await
            .map_err(|e| TransportError::frame(addr, e))?;
        Ok::<_, TransportError>(framed)
    };
    timeout(config.handshake_timeout, handshake)
        .await
        .map_err(|_| TransportError::Timeout {
            addr,
            timeout: config.handshake_timeout,
        })?
}
