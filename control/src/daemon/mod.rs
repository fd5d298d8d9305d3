//! The per-host daemon: the API server on the Unix socket, the cluster (a Raft node holding the
//! replicated state), and the dataplane it programs from that state.
//!
//! Rules:
//! - Requests are handled one at a time by one control thread ([`dispatch`]), the only
//!   proposer of changes and the only caller of the dataplane's door
//!   (`vxnet_dataplane::host::Host`); tokio moves bytes on the socket ([`socket`]) and runs
//!   the Raft node.
//! - Writes go through Raft and are answered once applied here (read-your-writes); every read
//!   that answers or decides (`ls`, `inspect`, `fdb`, and the lookups of `connect`,
//!   `disconnect`, `rm`, `prune`) first passes a ReadIndex barrier, so it sees every write the
//!   cluster acknowledged before it.
//! - When the replicated state changes (a write here or on any other host), the control thread
//!   builds this host's program from it ([`crate::program`]) and applies it: sandboxes, TAPs,
//!   veths and forwarding tables then match the state. Startup does the same, which is how a
//!   restarted daemon rebuilds its TAPs around existing sandboxes.
//! - Every request either completes or leaves nothing behind: a `connect` whose plumbing fails
//!   gives its address back; a `disconnect` commits before it removes the veth, so a failed one
//!   leaves the container connected.
//! - A failed request is a typed [`RequestError`]: its message and its API error code.
//! - `--metrics-addr` serves Prometheus metrics from a snapshot the control thread takes once
//!   a second; a scrape never waits on it ([`metrics`]).
//! - SIGTERM/SIGINT stop the daemon cleanly: forwarding stops, state and sandboxes stay. A
//!   join or leave that leaves the host without a Raft node stops it too, with an error, so
//!   that a supervisor restarts it on the same data dir; so does a Raft node that stopped by
//!   itself (its storage failed, raft-rs panicked) and a forwarding thread of the dataplane
//!   that stopped (a TAP that cannot be read): the daemon logs why and exits non-zero rather
//!   than answer or forward from a frozen state.

mod access;
mod dispatch;
mod error;
mod identity;
mod intents;
mod metrics;
mod socket;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};
use vxnet_dataplane::host::{HostError, KernelVersion, ThreadFailure};
use vxnet_proto::{Request, Response};

use crate::cluster::{ClusterError, NodeEvent};
use crate::sys;

pub use self::error::RequestError;

/// How a daemon runs: what `vxnet daemon` was told (README, "The command line").
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// This host's underlay address: VTEP source address and cluster address.
    pub advertise_addr: Ipv4Addr,
    /// Everything the daemon must remember.
    pub data_dir: PathBuf,
    /// Where the API listens.
    pub socket: PathBuf,
    pub vxlan_port: u16,
    pub cluster_port: u16,
    /// This host's name in the cluster (default: the hostname).
    pub name: Option<String>,
    /// How many hosts of the cluster vote.
    pub voters: usize,
    /// Use TAP offloads and UDP GSO/GRO where the kernel has them.
    pub offloads: bool,
    /// `--kernel`: use no kernel feature newer than this Linux version; `None`: no limit.
    pub kernel: Option<KernelVersion>,
    /// `--busy-poll`: how long forwarding threads poll after the last packet; zero: never.
    pub busy_poll: std::time::Duration,
    /// `--queues`: forwarding workers; `None`: one per core.
    pub queues: Option<usize>,
    /// `--key-rotation`: the leader gives an encrypted network a new key when its key is this
    /// old; `None`: never (`0`).
    pub key_rotation: Option<std::time::Duration>,
    /// `--force-new-cluster`: start as a cluster of this host alone.
    pub force_new_cluster: bool,
    /// `--dns`: where the networks' DNS forwards; empty: the host's `/etc/resolv.conf`.
    pub dns: Vec<std::net::IpAddr>,
    /// `--docker-plugin`: where to serve Docker's network and IPAM driver, if at all.
    pub docker_plugin: Option<PathBuf>,
    /// `--docker-host`: the API socket of the Docker engine the driver serves.
    pub docker_host: PathBuf,
    /// `--metrics-addr`: where Prometheus metrics are served ([`metrics`]); `None`: nowhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--api-group`: the group besides root that may use the API socket (module `access`).
    pub api_group: Option<String>,
}

/// The way into the control thread for everything that is not the control thread: the API
/// socket and the Docker driver hand it requests and get the answers. A request that finds
/// the queue full is answered "busy, retry" at once.
#[derive(Clone)]
pub struct Door(mpsc::Sender<ControlEvent>);

impl Door {
    pub async fn call(&self, request: Request) -> Response {
        let (tx, rx) = oneshot::channel();
        match self.0.try_send(ControlEvent::Request(request, tx)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Waiting behind a full queue would only turn into a timeout later; say so now.
                let message = format!(
                    "the daemon is busy ({} requests are waiting); retry shortly",
                    self.0.max_capacity()
                );
                return error::failure(message, vxnet_proto::ErrorCode::Unavailable);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return error::failure(
                    "the daemon is stopping".into(),
                    vxnet_proto::ErrorCode::Unavailable,
                )
            }
        }
        rx.await.unwrap_or_else(|_| {
            error::failure(
                "the daemon stopped before answering".into(),
                vxnet_proto::ErrorCode::Unavailable,
            )
        })
    }
}

impl crate::docker::driver::Vxnet for Door {
    async fn call(&self, kind: vxnet_proto::request::Kind) -> Response {
        Door::call(
            self,
            Request {
                kind: Some(kind),
                timeout_ms: DOCKER_TIMEOUT_MS,
            },
        )
        .await
    }
}

/// How long the daemon may take for one request of the Docker driver (Docker's own plugin
/// timeout is longer).
const DOCKER_TIMEOUT_MS: u32 = 20_000;

/// Why the daemon could not start, or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create data dir {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another vxnet daemon is using data dir {}; stop it or pass another --data-dir", .0.display())]
    DataDirLocked(PathBuf),
    #[error("--advertise-addr {0} is not an address of any interface here; pass this host's underlay address")]
    NoSuchAddress(Ipv4Addr),
    #[error("a daemon already listens on {}; stop it or pass another --socket", .0.display())]
    SocketInUse(PathBuf),
    #[error("--api-group {0}: no such group; create it (groupadd {0}) or pass another")]
    NoSuchGroup(String),
    #[error("cannot {op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is corrupt; remove it to give this host a new identity", .0.display())]
    CorruptHostId(PathBuf),
    #[error(
        "the daemon runs in a mount namespace of its own (as `ip netns exec` makes), where the \
         sandbox namespaces it pins under {} would die with it; start it with \
         `nsenter --net=/var/run/netns/NAME vxnet daemon ...` instead", .0.display()
    )]
    PrivateMountNamespace(PathBuf),
    #[error("cannot {op}: {source}")]
    Os {
        op: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot start the dataplane: {0}")]
    Dataplane(#[from] HostError),
    #[error("the Raft node stopped: {0}; exiting so that a supervisor restarts the daemon")]
    NodeDied(String),
    #[error("{0}; exiting so that a supervisor restarts the daemon")]
    DataplaneDied(ThreadFailure),
    #[error("cannot serve metrics on {addr}: {source}; pass another --metrics-addr")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// How many events may wait for the control thread: API requests beyond this are answered
/// "busy" at once instead of waiting behind the others ([`socket`]).
const MAX_QUEUED_EVENTS: usize = 64;

/// How often the control thread looks for endpoints whose container namespace is gone: they
/// are removed cluster-wide within this (plus one commit).
const ENDPOINT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// What the control thread acts on: API requests, news that the replicated state changed, and
/// news that a part the daemon cannot go on without stopped.
enum ControlEvent {
    Request(Request, oneshot::Sender<Response>),
    StateChanged,
    /// Once a second: look for endpoints whose container is gone.
    Tick,
    Fatal(DaemonError),
    Shutdown,
}

/// Runs the daemon until SIGTERM/SIGINT, or until it cannot go on.
pub fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let data_dir = &config.data_dir;
    // First, before anything is made or changed: a daemon that cannot keep its sandboxes
    // alive refuses outright.
    if sys::mounts_die_with_process(data_dir) {
        return Err(DaemonError::PrivateMountNamespace(data_dir.clone()));
    }
    // The data dir holds the cluster keys and the state: the owner's alone.
    let loose = sys::private_dir(data_dir).map_err(|source| DaemonError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    if let Some(mode) = loose {
        tracing::warn!(dir = %data_dir.display(), old_mode = format!("{mode:o}"), "data dir was open to others; made it 0700");
    }
    let access = access::ApiAccess {
        group: match &config.api_group {
            None => None,
            Some(name) => {
                let gid = sys::group_id(name)
                    .map_err(|source| DaemonError::Os {
                        op: "look up the --api-group group",
                        source,
                    })?
                    .ok_or_else(|| DaemonError::NoSuchGroup(name.clone()))?;
                Some(access::ApiGroup {
                    name: name.clone(),
                    gid,
                })
            }
        },
    };
    // Every endpoint holds descriptors (its TAP, namespace files): the default soft limit of
    // 1024 would cap a host's endpoints well before anything else does.
    match sys::raise_open_files_limit() {
        Ok((old, new)) if old != new => tracing::info!(old, new, "raised the open files limit"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let lock_path = data_dir.join("lock");
    let _lock = sys::DirLock::acquire(&lock_path)
        .map_err(|source| DaemonError::File {
            op: "lock",
            path: lock_path,
            source,
        })?
        .ok_or_else(|| DaemonError::DataDirLocked(data_dir.clone()))?;
    let (ifname, underlay_mtu) = sys::interface_with_addr(config.advertise_addr)
        .map_err(|source| DaemonError::Os {
            op: "list the interfaces",
            source,
        })?
        .ok_or(DaemonError::NoSuchAddress(config.advertise_addr))?;
    tracing::info!(addr = %config.advertise_addr, interface = %ifname, mtu = underlay_mtu, "underlay");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Os {
            op: "start the tokio runtime",
            source,
        })?;
    if let Some(addr) = config.metrics_addr {
        let server = metrics::start(addr)?;
        tracing::info!(addr = %addr, "serving metrics at /metrics");
        runtime.spawn(server.serve());
    }
    let (events, rx) = mpsc::channel::<ControlEvent>(MAX_QUEUED_EVENTS);
    let (changed, mut changes) = mpsc::unbounded_channel::<NodeEvent>();
    let mut daemon =
        dispatch::Daemon::open(&config, underlay_mtu, runtime.handle().clone(), changed)?;
    daemon.reconcile_all();
    let forward = events.clone();
    let dirty = daemon.state_dirty();
    runtime.spawn(async move {
        while let Some(event) = changes.recv().await {
            let sent = match event {
                // One event stands for any number of changes not yet reconciled.
                NodeEvent::Applied if dirty.swap(true, Ordering::AcqRel) => Ok(()),
                NodeEvent::Applied => forward.send(ControlEvent::StateChanged).await,
                NodeEvent::Died(why) => {
                    forward
                        .send(ControlEvent::Fatal(DaemonError::NodeDied(why)))
                        .await
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let ticks = events.clone();
    runtime.spawn(async move {
        let mut every = tokio::time::interval(ENDPOINT_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            // A tick that finds the queue full is skipped: the next one comes in a second.
            if let Err(mpsc::error::TrySendError::Closed(_)) = ticks.try_send(ControlEvent::Tick) {
                break;
            }
        }
    });
    if let Some(failures) = daemon.take_dataplane_failures() {
        let forward = events.clone();
        // Ends when the dataplane is shut down, which closes the channel.
        std::thread::Builder::new()
            .name("vxnet-dp-watch".into())
            .spawn(move || {
                for failure in failures {
                    let _ = forward
                        .blocking_send(ControlEvent::Fatal(DaemonError::DataplaneDied(failure)));
                }
            })
            .map_err(|source| DaemonError::Os {
                op: "start the dataplane watch thread",
                source,
            })?;
    }
    let fatal = Arc::new(Notify::new());
    let control = {
        let fatal = Arc::clone(&fatal);
        std::thread::Builder::new()
            .name("vxnet-control".into())
            .spawn(move || daemon.serve(rx, &fatal))
            .map_err(|source| DaemonError::Os {
                op: "start the control thread",
                source,
            })?
    };
    if let Some(path) = config.docker_plugin.clone() {
        let (door, engine) = (
            Door(events.clone()),
            crate::docker::engine::EngineSocket(config.docker_host.clone()),
        );
        runtime.spawn(async move {
            if let Err(e) = crate::docker::serve(&path, door, engine).await {
                tracing::error!(socket = %path.display(), error = %e, "cannot serve the Docker driver");
            }
        });
    }
    let served = runtime.block_on(socket::serve(
        &config.socket,
        &access,
        Door(events.clone()),
        &fatal,
    ));
    let _ = runtime.block_on(events.send(ControlEvent::Shutdown));
    // The channel is closed once serving returned: the control thread drains and ends.
    let stopped = control.join().unwrap_or(Ok(()));
    let _ = std::fs::remove_file(&config.socket);
    if let Some(path) = &config.docker_plugin {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    served.and(stopped)
}

#[cfg(test)]
mod tests;
