//! Cluster authentication: the shared cluster token and the mutual challenge that opens every
//! cluster connection.
//!
//! Rules a caller relies on:
//!
//! - A [`ClusterToken`] is 32 random bytes, written `vxnet-` followed by 64 lowercase hex
//!   digits. Parsing accepts either case and surrounding whitespace; anything else is a
//!   [`TokenError`] that says what is wrong. `Debug` never shows the secret.
//! - The token never crosses the wire. The server (the side that accepted the connection)
//!   sends a 32-byte nonce; the client answers with its own nonce, its raft id and
//!   `HMAC-SHA256(token, "vxnet-client" || nonce_s || nonce_c || raft_id as 8 bytes BE)`;
//!   the server checks it and proves itself with
//!   `HMAC-SHA256(token, "vxnet-server" || nonce_c || nonce_s)`. Both sides pick fresh nonces
//!   from `/dev/urandom`, so a recorded exchange proves nothing later. The two labels and the
//!   swapped nonce order keep one side's proof from ever being valid for the other side.
//! - Proofs are compared in constant time (`hmac`'s `verify_slice`).
//! - The handshake functions do not bound their own duration; the caller wraps them in a
//!   timeout, because only it knows how long it is willing to wait.

use std::fmt;
use std::io;
use std::str::FromStr;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use vxnet_proto::{AuthChallenge, AuthConfirm, AuthResponse};

use crate::sys::random_bytes;

type HmacSha256 = Hmac<Sha256>;

/// What every printed token starts with, so a token is recognisable in a shell history.
pub const TOKEN_PREFIX: &str = "vxnet-";
/// Bytes of secret in a token.
pub const TOKEN_LEN: usize = 32;
/// Bytes in each side's challenge nonce.
pub const NONCE_LEN: usize = 32;

const CLIENT_LABEL: &[u8] = b"vxnet-client";
const SERVER_LABEL: &[u8] = b"vxnet-server";

/// The secret every member of a cluster shares.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken([u8; TOKEN_LEN]);

impl ClusterToken {
    /// A fresh token from `/dev/urandom`.
    pub fn generate() -> io::Result<ClusterToken> {
        Ok(ClusterToken(random_bytes()?))
    }

    pub fn from_bytes(bytes: [u8; TOKEN_LEN]) -> ClusterToken {
        ClusterToken(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; only the `InvalidLength` of fixed-key MACs can fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl fmt::Display for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TOKEN_PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClusterToken {
    // Debug output ends up in logs; the secret must not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterToken(..)")
    }
}

/// Why a string is not a cluster token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "a cluster token starts with \"vxnet-\"; print it with `vxnet cluster token` on a member"
    )]
    MissingPrefix,
    #[error("a cluster token has 64 hex digits after \"vxnet-\", but this one has {0}")]
    Length(usize),
    #[error("a cluster token has only hex digits after \"vxnet-\", but this one contains {0:?}")]
    NotHex(char),
}

impl FromStr for ClusterToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<ClusterToken, TokenError> {
        let hex = s
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::MissingPrefix)?;
        if let Some(c) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(TokenError::NotHex(c));
        }
        // Only ASCII hex digits are left, so bytes and chars agree.
        if hex.len() != 2 * TOKEN_LEN {
            return Err(TokenError::Length(hex.len()));
        }
        let mut bytes = [0u8; TOKEN_LEN];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        Ok(ClusterToken(bytes))
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0, // unreachable: the caller checked every digit
    }
}

/// The client's proof of the token.
pub fn client_proof(token: &ClusterToken, nonce_s: &[u8], nonce_c: &[u8], raft_id: u64) -> Vec<u8> {
    client_mac(token, nonce_s, nonce_c, raft_id)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// The server's proof of the token.
pub fn server_proof(token: &ClusterToken, nonce_c: &[u8], nonce_s: &[u8]) -> Vec<u8> {
    server_mac(token, nonce_c, nonce_s)
        .finalize()
        .into_bytes()
        .to_vec()
}

fn client_mac(token: &ClusterToken, nonce_s: &[u8], nonce_c: &[u8], raft_id: u64) -> HmacSha256 {
    let mut mac = token.mac();
    mac.update(CLIENT_LABEL);
    mac.update(nonce_s);
    mac.update(nonce_c);
    mac.update(&raft_id.to_be_bytes());
    mac
}

fn server_mac(token: &ClusterToken, nonce_c: &[u8], nonce_s: &[u8]) -> HmacSha256 {
    let mut mac = token.mac();
    mac.update(SERVER_LABEL);
    mac.update(nonce_c);
    mac.update(nonce_s);
    mac
}

/// How a handshake failed. The transport turns it into a `TransportError` naming the peer.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the connection closed during authentication")]
    Closed,
    /// The server closed the connection right after reading our proof: what a server that
    /// holds a different token does.
    #[error("the peer closed the connection after reading this host's proof of the token")]
    Refused,
    #[error("the peer sent a malformed authentication message: {0}")]
    Malformed(&'static str),
    /// The peer's proof did not match: it does not know the cluster token.
    #[error("the peer does not know the cluster token")]
    BadProof,
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(io::Error),
}

/// Runs the server side of the handshake; returns the raft id the client claimed (and proved
/// with the token).
pub async fn server_handshake<T>(
    framed: &mut Framed<T, LengthDelimitedCodec>,
    token: &ClusterToken,
) -> Result<u64, HandshakeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let nonce_s: [u8; NONCE_LEN] = random_bytes().map_err(HandshakeError::Random)?;
    let challenge = AuthChallenge {
        nonce: nonce_s.to_vec(),
    };
    framed.send(Bytes::from(challenge.encode_to_vec())).await?;

    let response: AuthResponse = recv(framed, HandshakeError::Closed).await?;
    if response.nonce.len() != NONCE_LEN {
        return Err(HandshakeError::Malformed(
            "the client nonce is not 32 bytes",
        ));
    }
    client_mac(token, &nonce_s, &response.nonce, response.raft_id)
        .verify_slice(&response.mac)
        .map_err(|_| HandshakeError::BadProof)?;

    let confirm = AuthConfirm {
        mac: server_proof(token, &response.nonce, &nonce_s),
    };
    framed.send(Bytes::from(confirm.encode_to_vec())).await?;
    Ok(response.raft_id)
}

/// Runs the client side of the handshake, proving `raft_id` and the token, and checking that
/// the server knows the token too.
pub async fn client_handshake<T>(
    framed: &mut Framed<T, LengthDelimitedCodec>,
    raft_id: u64,
    token: &ClusterToken,
) -> Result<(), HandshakeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let challenge: AuthChallenge = recv(framed, HandshakeError::Closed).await?;
    if challenge.nonce.len() != NONCE_LEN {
        return Err(HandshakeError::Malformed(
            "the server nonce is not 32 bytes",
        ));
    }
    let nonce_c: [u8; NONCE_LEN] = random_bytes().map_err(HandshakeError::Random)?;
    let response = AuthResponse {
        raft_id,
        nonce: nonce_c.to_vec(),
        mac: client_proof(token, &challenge.nonce, &nonce_c, raft_id),
    };
    framed.send(Bytes::from(response.encode_to_vec())).await?;

    // A server that does not know our token closes the connection here, and that is the
    // only sign of it we get; a reset instead of a clean close means the same.
    let confirm: AuthConfirm = match recv(framed, HandshakeError::Refused).await {
        Err(HandshakeError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
            return Err(HandshakeError::Refused)
        }
        other => other?,
    };
    server_mac(token, &nonce_c, &challenge.nonce)
        .verify_slice(&confirm.mac)
        .map_err(|_| HandshakeError::BadProof)
}

async fn recv<T, M>(
    framed: &mut Framed<T, LengthDelimitedCodec>,
    on_eof: HandshakeError,
) -> Result<M, HandshakeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
    M: Message + Default,
{
    let frame = framed.next().await.ok_or(on_eof)??;
    M::decode(frame).map_err(|_| HandshakeError::Malformed("undecodable frame"))
}

#[cfg(test)]
mod tests;
