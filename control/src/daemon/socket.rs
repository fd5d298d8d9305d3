//! The API socket: one request per connection, handed to the control thread, its answer sent
//! back. The queue to the control thread is bounded: a request that finds it full is answered
//! "busy, retry" at once. Bound mode 0600, or 0660 with the `--api-group` group, and every
//! connection's peer checked by its credentials ([`super::access`]); a socket file nobody
//! answers on is a leftover of a daemon that died and is replaced.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use vxnet_proto::{ErrorCode, Request};

use super::access::{ApiAccess, Peer, RefusalLog, REFUSAL_LOG_EVERY};
use super::error::failure;
use super::{DaemonError, Door};
use crate::{api, sys};

/// How long a refused peer may take to send its request before it gets the refusal anyway.
const REFUSED_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves the socket at `path` until SIGTERM/SIGINT, or until `fatal` is notified.
pub(super) async fn serve(
    path: &Path,
    access: &ApiAccess,
    door: Door,
    fatal: &Notify,
) -> Result<(), DaemonError> {
    let listener = bind(path, access).await?;
    tracing::info!(socket = %path.display(), group = ?access.group.as_ref().map(|g| &g.name), "listening");
    let mut refusals = RefusalLog::new(REFUSAL_LOG_EVERY);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| DaemonError::Os {
            op: "handle SIGTERM",
            source,
        })?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match peer(&stream) {
                    Some(p) if access.admits(&p) => {
                        tokio::spawn(handle_connection(stream, door.clone()));
                    }
                    p => {
                        if let Some(suppressed) = refusals.note(Instant::now()) {
                            let (uid, gid, pid) = p.map_or((None, None, None), |p| (Some(p.uid), Some(p.gid), p.pid));
                            tracing::warn!(?uid, ?gid, ?pid, suppressed, "refused an API connection: only root and the --api-group group may use the API");
                        }
                        tokio::spawn(refuse(stream, access.refusal()));
                    }
                },
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

/// The peer's credentials; `None` when the kernel gives none (then it is refused).
fn peer(stream: &UnixStream) -> Option<Peer> {
    let cred = stream.peer_cred().ok()?;
    let pid = cred.pid();
    Some(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        groups: sys::peer_groups(stream.as_raw_fd(), pid),
        pid,
    })
}

/// Answers a refused peer: its request is read (bounded) so that the answer is not lost to a
/// peer still writing, then the refusal is sent and the connection closed.
async fn refuse(stream: UnixStream, message: String) {
    let mut framed = api::framed(stream);
    let _ = tokio::time::timeout(REFUSED_READ_TIMEOUT, api::recv::<_, Request>(&mut framed)).await;
    let _ = api::send(&mut framed, &failure(message, ErrorCode::Refused)).await;
}

async fn bind(path: &Path, access: &ApiAccess) -> Result<UnixListener, DaemonError> {
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
    if let Some(group) = &access.group {
        std::os::unix::fs::chown(path, None, Some(group.gid))
            .map_err(file_error("give the group its socket", path))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.socket_mode()))
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
