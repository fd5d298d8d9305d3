//! The API socket: one request per connection, handed to the control thread, its answer sent
//! back. The queue to the control thread is bounded: a request that finds it full is answered
//! "busy, retry" at once. Bound mode 0600 (only root drives the daemon); a socket file nobody answers on is a
//! leftover of a daemon that died and is replaced.

use std::path::Path;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use vxnet_proto::{ErrorCode, Request};

use super::error::failure;
use super::{DaemonError, Door};
use crate::api;

/// Serves the socket at `path` until SIGTERM/SIGINT, or until `fatal` is notified.
pub(super) async fn serve(path: &Path, door: Door, fatal: &Notify) -> Result<(), DaemonError> {
    let listener = bind(path).await?;
    tracing::info!(socket = %path.display(), "listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| DaemonError::Os {
            op: "handle SIGTERM",
            source,
        })?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(handle_connection(stream, door.clone())); }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = fatal.notified() => break,
        }
    }
    tracing::info!("stopping");
    Ok(())
}

async fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    if UnixStream::connect(path).await.is_ok() {
        return Err(DaemonError::SocketInUse(path.to_path_buf()));
    }
    // Nobody answers: whatever is there is a leftover of a daemon that died.
    let _ = std::fs::remove_file(path);
    let file_error = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| DaemonError::File { op, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_error("create", dir))?;
    }
    let listener = UnixListener::bind(path).map_err(file_error("listen on", path))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(file_error("restrict", path))?;
    Ok(listener)
}

async fn handle_connection(stream: UnixStream, door: Door) {
    let mut framed = api::framed(stream);
    let request = match api::recv::<_, Request>(&mut framed).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "bad API request");
            let message =
                format!("malformed request ({e}); is the CLI the same version as the daemon?");
            let _ = api::send(&mut framed, &failure(message, ErrorCode::Internal)).await;
            return;
        }
    };
    let response = door.call(request).await;
    let _ = api::send(&mut framed, &response).await;
}
