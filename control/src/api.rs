//! The CLI ↔ daemon API: prost `Request`/`Response` messages, one request per connection,
//! each message length-delimited (4-byte big-endian length, as tokio-util's codec writes).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Upper bound on one API message; a bigger one is refused instead of allocated.
pub const MAX_MESSAGE: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("connection closed before a message arrived")]
    Closed,
}

pub fn framed<T: AsyncRead + AsyncWrite>(io: T) -> Framed<T, LengthDelimitedCodec> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_MESSAGE)
        .new_codec();
    Framed::new(io, codec)
}

pub async fn send<T, M>(
    framed: &mut Framed<T, LengthDelimitedCodec>,
    msg: &M,
) -> Result<(), ApiError>
where
    T: AsyncRead + AsyncWrite + Unpin,
    M: Message,
{
    framed.send(Bytes::from(msg.encode_to_vec())).await?;
    Ok(())
}

pub async fn recv<T, M>(framed: &mut Framed<T, LengthDelimitedCodec>) -> Result<M, ApiError>
where
    T: AsyncRead + AsyncWrite + Unpin,
    M: Message + Default,
{
    let frame = framed.next().await.ok_or(ApiError::Closed)??;
    Ok(M::decode(frame)?)
}

/// Why [`call_blocking`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
    /// Nobody listens on the socket, or the request could not be sent.
    #[error("{0}")]
    Unreachable(ApiError),
    /// Something answered, but not with a `Response`.
    #[error("the daemon did not answer properly: {0}")]
    Malformed(ApiError),
    #[error("no answer in time")]
    TimedOut,
}

/// Sends `request` to the daemon at `socket` and waits at most `timeout` for its `Response`,
/// on a runtime of its own: for callers that have none (the CLI, the CNI plugin). The
/// response's own `error` is the caller's to read.
pub fn call_blocking(
    socket: &std::path::Path,
    request: &vxnet_proto::Request,
    timeout: std::time::Duration,
) -> Result<vxnet_proto::Response, CallError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CallError::Runtime)?;
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| CallError::Unreachable(e.into()))?;
        let mut framed = framed(stream);
        send(&mut framed, request)
            .await
            .map_err(CallError::Unreachable)?;
        recv(&mut framed).await.map_err(CallError::Malformed)
    };
    runtime
        .block_on(async { tokio::time::timeout(timeout, exchange).await })
        .map_err(|_| CallError::TimedOut)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use vxnet_proto::{request, NetworkListRequest, Request};

    #[tokio::test]
    async fn round_trip_and_refusals() {
        let (a, b) = tokio::io::duplex(1024);
        let (mut a, mut b) = (framed(a), framed(b));
        let req = Request {
            kind: Some(request::Kind::NetworkList(NetworkListRequest {})),
            timeout_ms: 0,
        };
        send(&mut a, &req).await.expect("send");
        let got: Request = recv(&mut b).await.expect("recv");
        assert_eq!(got, req);
        drop(a);
        assert!(matches!(
            recv::<_, Request>(&mut b).await,
            Err(ApiError::Closed)
        ));
    }

    #[tokio::test]
    async fn oversized_and_garbage_frames_are_errors() {
        use tokio::io::AsyncWriteExt;
        let (mut raw, b) = tokio::io::duplex(64);
        let mut b = framed(b);
        // A length prefix far above MAX_MESSAGE.
        raw.write_all(&[0x7f, 0xff, 0xff, 0xff])
            .await
            .expect("write");
        assert!(matches!(
            recv::<_, Request>(&mut b).await,
            Err(ApiError::Io(_))
        ));

        let (mut raw, b) = tokio::io::duplex(64);
        let mut b = framed(b);
        raw.write_all(&[0, 0, 0, 2, 0xff, 0xff])
            .await
            .expect("write");
        assert!(matches!(
            recv::<_, Request>(&mut b).await,
            Err(ApiError::Decode(_))
        ));
    }
}
