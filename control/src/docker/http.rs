//! The plugin socket: HTTP/1 with hyper on a Unix socket, every `POST /<Method>` handed to the
//! [`Driver`]. Bodies are capped at [`MAX_BODY`]; the socket is mode 0600 and a leftover file
//! nobody answers on is replaced, as for the API socket.

use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};

use super::driver::{Driver, Engine, Vxnet};

/// The largest request body read; Docker's are a few hundred bytes.
const MAX_BODY: usize = 1 << 20;
/// What Docker expects plugins to answer with.
const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Serves the plugin at `path` until the runtime stops.
pub async fn serve<V, E>(path: &Path, vxnet: V, engine: E) -> std::io::Result<()>
where
    V: Vxnet + 'static,
    E: Engine + 'static,
{
    if UnixStream::connect(path).await.is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("{} is in use by another plugin", path.display()),
        ));
    }
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %path.display(), "serving the Docker network and IPAM driver");
    let driver = Arc::new(Driver::new(vxnet, engine));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "plugin socket accept failed");
                continue;
            }
        };
        let driver = Arc::clone(&driver);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&driver), request));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "plugin connection ended");
            }
        });
    }
}

async fn answer<V: Vxnet + 'static, E: Engine + 'static>(
    driver: Arc<Driver<V, E>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = request.uri().path().trim_start_matches('/').to_string();
    let (status, body) = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => {
            let body = body.to_bytes();
            let answer = driver.handle(&method, &body).await;
            tracing::debug!(%method, request = %String::from_utf8_lossy(&body), answer = %answer.1,
                "docker plugin call");
            // A joined endpoint is named like its container once Docker shows which it is.
            if method == "NetworkDriver.Join" && answer.1.get("Err").is_none() {
                if let Ok(join) = serde_json::from_slice::<super::wire::Join>(&body) {
                    let driver = Arc::clone(&driver);
                    tokio::spawn(async move {
                        driver
                            .name_endpoint(&join.network_id, &join.endpoint_id)
                            .await;
                    });
                }
            }
            answer
        }
        Err(e) => (
            400,
            super::wire::error(&format!("cannot read the request: {e}")),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Ok(value) = CONTENT_TYPE.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    Ok(response)
}
