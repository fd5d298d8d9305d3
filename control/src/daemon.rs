//! The per-host daemon: the API server on the Unix socket, the cluster (a Raft node holding the
//! replicated state), and the dataplane it programs from that state.
//!
//! Rules:
//! - Requests are handled one at a time by one control thread, the only proposer of changes
//!   and the only writer of the sandboxes and the control-plane FDB entries; tokio moves bytes
//!   on the socket and runs the Raft node.
//! - Writes go through Raft and are answered once applied here (read-your-writes); `network
//!   ls`/`inspect` first pass a ReadIndex barrier, so they see every write the cluster
//!   acknowledged before them.
//! - When the replicated state changes (a write here or on any other host), the control thread
//!   reconciles.
//! - Every request either completes or leaves nothing behind: a `connect` whose plumbing fails
//!   gives its address back; a `disconnect` removes the veth before the endpoint.
//! - After every change, `Daemon::reconcile_all` builds the host's program from the state
//!   ([`crate::program`]) and hands it to the dataplane's door (`vxnet_dataplane::host`),
//!   which makes the sandboxes, TAPs, veths and forwarding tables match it. Startup runs the
//!   same reconcile, which is how a restarted daemon rebuilds its TAPs around existing
//!   sandboxes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use vxnet_dataplane::host::{
    next_free_ifname, resolve_target, Attachment, DropReason, Host as Dataplane, HostConfig,
    HostError, NetworkFailure,
};
use vxnet_proto::types::{MacAddr, MTU_MIN, VXLAN_OVERHEAD};
use vxnet_proto::{
    command, request, Command, Connect, CreateNetwork, Disconnect, DropCount, Endpoint, FdbRow,
    Host, Network, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
    NetworkStats, NetworkView, RemoveNetwork, Request, Response, Stats,
};

use crate::api;
use crate::cli::DaemonArgs;
use crate::cluster::{Cluster, ClusterError, ClusterOptions};
use crate::program::host_program;
use crate::state::Applied;
use crate::sys;

pub fn run(args: DaemonArgs, socket: PathBuf) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).with_context(|| {
        format!(
            "--log-level {:?} is not a level (use trace, debug, info, warn or error)",
            args.log_level
        )
    })?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let _lock = sys::DirLock::acquire(&args.data_dir.join("lock"))?.with_context(|| {
        format!(
            "another vxnet daemon is using data dir {}; stop it or pass another --data-dir",
            args.data_dir.display()
        )
    })?;
    let (ifname, underlay_mtu) = sys::interface_with_addr(args.advertise_addr)?.with_context(|| {
        format!("--advertise-addr {} is not an address of any interface here; pass this host's underlay address", args.advertise_addr)
    })?;
    tracing::info!(addr = %args.advertise_addr, interface = %ifname, mtu = underlay_mtu, "underlay");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (events, rx) = mpsc::unbounded_channel::<ControlEvent>();
    let (changed, mut changes) = mpsc::unbounded_channel::<()>();
    let mut daemon = Daemon::open(&args, underlay_mtu, runtime.handle().clone(), changed)?;
    daemon.reconcile_all();
    let forward = events.clone();
    let dirty = Arc::clone(&daemon.state_dirty);
    runtime.spawn(async move {
        while changes.recv().await.is_some() {
            // One event stands for any number of changes not yet reconciled.
            if !dirty.swap(true, Ordering::AcqRel)
                && forward.send(ControlEvent::StateChanged).is_err()
            {
                break;
            }
        }
    });
    let control = std::thread::Builder::new()
        .name("vxnet-control".into())
        .spawn(move || daemon.serve(rx))?;
    let result = runtime.block_on(serve_socket(&socket, events.clone()));
    let _ = events.send(ControlEvent::Shutdown);
    // The channel is closed once serve_socket returned: the control thread drains and ends.
    let _ = control.join();
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    result
}

/// What the control thread acts on: API requests, and news that the replicated state changed.
enum ControlEvent {
    Request(Request, oneshot::Sender<Response>),
    StateChanged,
    Shutdown,
}

async fn serve_socket(
    path: &Path,
    jobs: mpsc::UnboundedSender<ControlEvent>,
) -> anyhow::Result<()> {
    let listener = bind_socket(path).await?;
    tracing::info!(socket = %path.display(), "listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(handle_connection(stream, jobs.clone())); }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("stopping");
    Ok(())
}

async fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if UnixStream::connect(path).await.is_ok() {
        bail!(
            "a daemon already listens on {}; stop it or pass another --socket",
            path.display()
        );
    }
    // Nobody answers: whatever is there is a leftover of a daemon that died.
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn handle_connection(stream: UnixStream, jobs: mpsc::UnboundedSender<ControlEvent>) {
    let mut framed = api::framed(stream);
    let request = match api::recv::<_, Request>(&mut framed).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "bad API request");
            let _ = api::send(
                &mut framed,
                &failure(
                    format!("malformed request ({e}); is the CLI the same version as the daemon?"),
                    1,
                ),
            )
            .await;
            return;
        }
    };
    let (tx, rx) = oneshot::channel();
    if jobs.send(ControlEvent::Request(request, tx)).is_err() {
        return;
    }
    if let Ok(response) = rx.await {
        let _ = api::send(&mut framed, &response).await;
    }
}

fn failure(message: impl Into<String>, exit_code: u32) -> Response {
    Response {
        error: message.into(),
        exit_code,
        ..Default::default()
    }
}

/// A request that failed: what to tell the user, and the CLI's exit code.
struct Failed(String, u32);

impl From<ClusterError> for Failed {
    fn from(e: ClusterError) -> Failed {
        let code = e.exit_code();
        Failed(e.to_string(), u32::from(code))
    }
}

impl From<HostError> for Failed {
    fn from(e: HostError) -> Failed {
        Failed(e.to_string(), 1)
    }
}

type Reply = Result<Response, Failed>;

struct Daemon {
    host_id: String,
    cluster: Cluster,
    /// The door to the dataplane: sandboxes, TAPs, veths, the engine.
    dataplane: Dataplane,
    default_mtu: u32,
    /// How long the request being handled may take (the CLI's --timeout, less a margin).
    timeout: Duration,
    /// Whether the last proposal timed out (it may still commit).
    cluster_timed_out: bool,
    /// Endpoint ids of connects that timed out, and when.
    abandoned: BTreeMap<String, Instant>,
    /// Set when the replicated state changed and the dataplane has not been reconciled since.
    state_dirty: Arc<AtomicBool>,
}

/// How long a timed-out connect is watched for.
const ABANDONED_TTL: Duration = Duration::from_secs(300);

/// The daemon answers this much before the CLI gives up, so the user sees why.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(500);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Daemon {
    fn open(
        args: &DaemonArgs,
        underlay_mtu: u32,
        runtime: tokio::runtime::Handle,
        changed: mpsc::UnboundedSender<()>,
    ) -> anyhow::Result<Daemon> {
        let host_id = load_or_create_host_id(&args.data_dir)?;
        let name = match &args.name {
            Some(n) => n.clone(),
            None => hostname(),
        };
        let host = Host {
            id: host_id,
            name,
            addr: u32::from(args.advertise_addr),
            raft_id: 0,
            cluster_port: u32::from(args.cluster_port),
        };
        let options = ClusterOptions {
            max_voters: args.voters as usize,
            ..ClusterOptions::default()
        };
        let cluster = Cluster::open(&args.data_dir, host, options, runtime, changed)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // A restarted host with a new name or address tells the cluster; best effort, as the
        // cluster may be without quorum right now.
        if let Err(e) = cluster.refresh_own_record(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "cannot update this host's record in the cluster yet");
        }
        let dataplane = Dataplane::start(HostConfig {
            underlay: args.advertise_addr,
            vxlan_port: args.vxlan_port,
            offloads: !args.no_offloads,
            sandbox_dir: args.data_dir.join("netns"),
        })
        .map_err(|e| anyhow::anyhow!("cannot {e}"))?;
        Ok(Daemon {
            host_id: cluster.host().id.clone(),
            cluster,
            timeout: DEFAULT_TIMEOUT,
            cluster_timed_out: false,
            abandoned: BTreeMap::new(),
            state_dirty: Arc::new(AtomicBool::new(false)),
            dataplane,
            default_mtu: underlay_mtu.saturating_sub(VXLAN_OVERHEAD).max(MTU_MIN),
        })
    }

    fn serve(mut self, mut events: mpsc::UnboundedReceiver<ControlEvent>) {
        while let Some(event) = events.blocking_recv() {
            match event {
                ControlEvent::Request(request, reply) => {
                    self.timeout = match request.timeout_ms {
                        0 => DEFAULT_TIMEOUT,
                        ms => Duration::from_millis(u64::from(ms)).saturating_sub(TIMEOUT_MARGIN),
                    }
                    .max(Duration::from_millis(100));
                    let response = self
                        .handle(request)
                        .unwrap_or_else(|Failed(msg, code)| failure(msg, code));
                    let _ = reply.send(response);
                }
                ControlEvent::StateChanged => {
                    self.disconnect_abandoned();
                    // Already done if a request handler reconciled since the change.
                    if self.state_dirty.load(Ordering::Acquire) {
                        self.reconcile_all();
                    }
                }
                ControlEvent::Shutdown => break,
            }
        }
        // Stop forwarding; sandboxes stay so that containers keep their interfaces.
        self.dataplane.shutdown();
    }

    fn handle(&mut self, request: Request) -> Reply {
        let Some(kind) = request.kind else {
            return Err(Failed(
                "empty request; is the CLI the same version as the daemon?".into(),
                1,
            ));
        };
        match kind {
            request::Kind::NetworkCreate(r) => self.create(r),
            request::Kind::NetworkList(_) => {
                self.fresh()?;
                let networks = self.state().networks().into_iter().cloned().collect();
                Ok(Response {
                    networks: self.views(networks),
                    ..Default::default()
                })
            }
            request::Kind::NetworkInspect(r) => {
                self.fresh()?;
                let mut nets = Vec::new();
                for name in &r.networks {
                    nets.push(self.network(name)?);
                }
                Ok(Response {
                    networks: self.views(nets),
                    ..Default::default()
                })
            }
            request::Kind::NetworkRemove(r) => self.remove(&r.networks),
            request::Kind::NetworkPrune(_) => self.prune(),
            request::Kind::NetworkConnect(r) => self.connect(r),
            request::Kind::NetworkDisconnect(r) => self.disconnect(r),
            request::Kind::Fdb(r) => {
                let net = self.network(&r.network)?;
                Ok(Response {
                    fdb: self.fdb_rows(&net),
                    ..Default::default()
                })
            }
            request::Kind::Stats(_) => Ok(Response {
                stats: Some(self.stats()),
                ..Default::default()
            }),
            request::Kind::ClusterToken(_) => Ok(Response {
                token: self.cluster.token(),
                ..Default::default()
            }),
            request::Kind::ClusterMembers(_) => Ok(Response {
                members: self.cluster.members(self.timeout),
                ..Default::default()
            }),
            request::Kind::ClusterJoin(r) => {
                self.cluster.join(&r.addr, &r.token, self.timeout)?;
                tracing::info!(via = %r.addr, "joined a cluster");
                self.reconcile_all();
                Ok(Response::default())
            }
            request::Kind::ClusterLeave(_) => {
                self.cluster.leave(self.timeout)?;
                tracing::info!("left the cluster; this host is a cluster of its own again");
                self.reconcile_all();
                Ok(Response::default())
            }
        }
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, crate::state::StateMachine> {
        self.cluster.handle().state()
    }

    /// Makes the next reads see everything the cluster committed before this request.
    fn fresh(&self) -> Result<(), Failed> {
        Ok(self.cluster.handle().read_barrier(self.timeout)?)
    }

    fn network(&self, name_or_id: &str) -> Result<Network, Failed> {
        self.state()
            .network(name_or_id)
            .cloned()
            .map_err(|r| Failed(r.to_string(), u32::from(r.exit_code())))
    }

    fn apply(&mut self, kind: command::Kind) -> Result<Applied, Failed> {
        let result = self
            .cluster
            .handle()
            .propose(Command { kind: Some(kind) }, self.timeout);
        self.cluster_timed_out = matches!(result, Err(ClusterError::Timeout(_)));
        Ok(result?)
    }

    /// Endpoints whose connect timed out but committed after all: nobody plumbed them, so
    /// they go again, instead of holding an address forever.
    fn disconnect_abandoned(&mut self) {
        let now = Instant::now();
        self.abandoned
            .retain(|_, since| now.duration_since(*since) < ABANDONED_TTL);
        let found: Vec<String> = {
            let state = self.state();
            self.abandoned
                .keys()
                .filter(|id| state.endpoint(id).is_some())
                .cloned()
                .collect()
        };
        for id in found {
            let done = self.apply(command::Kind::Disconnect(Disconnect {
                endpoint_id: id.clone(),
            }));
            if done.is_ok() {
                tracing::info!(endpoint = %id, "removed an endpoint whose connect had timed out");
                self.abandoned.remove(&id);
            }
        }
    }

    fn views(&self, networks: Vec<Network>) -> Vec<NetworkView> {
        let state = self.state();
        let host_names: std::collections::BTreeMap<String, String> = state
            .hosts()
            .iter()
            .map(|h| (h.id.clone(), h.name.clone()))
            .collect();
        networks
            .into_iter()
            .map(|n| {
                let endpoints: Vec<Endpoint> =
                    state.endpoints(&n.id).into_iter().cloned().collect();
                let host_names = endpoints
                    .iter()
                    .filter_map(|e| host_names.get_key_value(&e.host_id))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                NetworkView {
                    network: Some(n),
                    endpoints,
                    host_names,
                }
            })
            .collect()
    }

    fn create(&mut self, r: NetworkCreateRequest) -> Reply {
        let id =
            sys::random_id().map_err(|e| Failed(format!("cannot read random bytes: {e}"), 1))?;
        let applied = self.apply(command::Kind::CreateNetwork(CreateNetwork {
            id,
            name: r.name,
            subnet: r.subnet,
            gateway: r.gateway,
            ip_range: r.ip_range,
            vni: r.vni,
            mtu: r.mtu.unwrap_or(self.default_mtu),
            peers: r.peers,
            labels: r.labels,
        }))?;
        let Applied::NetworkCreated(net) = applied else {
            return Err(Failed(
                "internal: create applied as something else".into(),
                1,
            ));
        };
        tracing::info!(name = %net.name, id = %net.id, vni = net.vni, "network created");
        Ok(Response {
            names: vec![net.id],
            ..Default::default()
        })
    }

    fn remove(&mut self, names: &[String]) -> Reply {
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        for name in names {
            let result = self.network(name).and_then(|net| {
                self.apply(command::Kind::RemoveNetwork(RemoveNetwork {
                    network_id: net.id.clone(),
                }))?;
                Ok(net)
            });
            match result {
                Ok(net) => {
                    tracing::info!(name = %net.name, "network removed");
                    removed.push(name.clone());
                }
                Err(Failed(msg, code)) => errors.push((msg, code)),
            }
        }
        self.reconcile_all();
        if errors.is_empty() {
            Ok(Response {
                names: removed,
                ..Default::default()
            })
        } else {
            let code = errors.iter().map(|e| e.1).max().unwrap_or(1);
            let mut msg: Vec<String> = errors.into_iter().map(|e| e.0).collect();
            if !removed.is_empty() {
                msg.push(format!("removed: {}", removed.join(", ")));
            }
            Err(Failed(msg.join("; "), code))
        }
    }

    fn prune(&mut self) -> Reply {
        let idle: Vec<Network> = {
            let state = self.state();
            state
                .networks()
                .into_iter()
                .filter(|n| state.endpoints(&n.id).is_empty())
                .cloned()
                .collect()
        };
        let mut names = Vec::new();
        for net in idle {
            self.apply(command::Kind::RemoveNetwork(RemoveNetwork {
                network_id: net.id,
            }))?;
            names.push(net.name);
        }
        self.reconcile_all();
        Ok(Response {
            names,
            ..Default::default()
        })
    }

    fn connect(&mut self, r: NetworkConnectRequest) -> Reply {
        let net = self.network(&r.network)?;
        let target = resolve_target(&r.target)?;
        let ifname = match r.ifname {
            Some(name) => name,
            None => next_free_ifname(&target)?,
        };
        let name = r.name.unwrap_or_else(|| default_endpoint_name(&r.target));
        let id =
            sys::random_id().map_err(|e| Failed(format!("cannot read random bytes: {e}"), 1))?;
        let proposed = self.apply(command::Kind::Connect(Connect {
            endpoint_id: id.clone(),
            network_id: net.id.clone(),
            host_id: self.host_id.clone(),
            name,
            ipv4: r.ipv4,
            aliases: r.aliases,
            ifname,
            target: target.to_string_lossy().into_owned(),
        }));
        let applied = match proposed {
            Err(e @ Failed(..)) if self.cluster_timed_out => {
                // The entry may still commit later, with nobody to plumb it: remember it, so
                // that it is disconnected again if it ever shows up.
                self.abandoned.insert(id, Instant::now());
                return Err(e);
            }
            other => other?,
        };
        let Applied::Connected(ep) = applied else {
            return Err(Failed(
                "internal: connect applied as something else".into(),
                1,
            ));
        };
        if let Err(e) = self.plumb(&net, &ep, &target) {
            // Give the address back: a failed connect leaves nothing behind.
            let _ = self.apply(command::Kind::Disconnect(Disconnect {
                endpoint_id: ep.id.clone(),
            }));
            self.reconcile_all();
            return Err(e);
        }
        tracing::info!(network = %net.name, endpoint = %ep.name, ip = %Ipv4Addr::from(ep.ipv4), "connected");
        Ok(Response {
            endpoint: Some(ep),
            ..Default::default()
        })
    }

    /// Wires a committed endpoint into this host's sandbox of its network, setting that
    /// sandbox up first if this is the network's first local endpoint.
    fn plumb(&mut self, net: &Network, ep: &Endpoint, target: &Path) -> Result<(), Failed> {
        if let Some(failure) = self
            .reconcile_all()
            .into_iter()
            .find(|f| f.network_id == net.id)
        {
            return Err(failure.error.into());
        }
        let mac = MacAddr::from_slice(&ep.mac).ok_or_else(|| {
            Failed(
                format!("internal: endpoint {} has a malformed MAC", ep.name),
                1,
            )
        })?;
        self.dataplane.attach(&Attachment {
            network_id: net.id.clone(),
            endpoint_id: ep.id.clone(),
            target: target.to_path_buf(),
            ifname: ep.ifname.clone(),
            mac,
            ipv4: Ipv4Addr::from(ep.ipv4),
        })?;
        Ok(())
    }

    fn disconnect(&mut self, r: NetworkDisconnectRequest) -> Reply {
        let net = self.network(&r.network)?;
        let ep = self.find_endpoint(&net, &r.target).ok_or_else(|| {
            Failed(
                format!(
                    "{:?} is not connected to network {}; see `vxnet network inspect {}`",
                    r.target, net.name, net.name
                ),
                1,
            )
        })?;
        self.dataplane.detach(&net.id, &ep.id)?;
        self.apply(command::Kind::Disconnect(Disconnect {
            endpoint_id: ep.id.clone(),
        }))?;
        self.reconcile_all();
        tracing::info!(network = %net.name, endpoint = %ep.name, "disconnected");
        Ok(Response {
            endpoint: Some(ep),
            ..Default::default()
        })
    }

    /// The local endpoint of `net` that `target` names: by endpoint name, or by namespace.
    fn find_endpoint(&self, net: &Network, target: &str) -> Option<Endpoint> {
        let state = self.state();
        // Only this host's endpoints: another host's container is disconnected there.
        if let Some(ep) = state
            .endpoint_by_name(&net.id, target)
            .filter(|ep| ep.host_id == self.host_id)
        {
            return Some(ep.clone());
        }
        let path = resolve_target(target).ok()?;
        state
            .endpoint_by_target(&net.id, &self.host_id, &path.to_string_lossy())
            .cloned()
    }

    /// Makes the dataplane match the state (see `vxnet_dataplane::host`); failures are
    /// logged, returned, and retried by the next reconcile.
    fn reconcile_all(&mut self) -> Vec<NetworkFailure> {
        // Cleared before the state is read: a change applied after this raises it again.
        self.state_dirty.store(false, Ordering::Release);
        let program = host_program(self.state().state(), &self.host_id);
        let failures = self.dataplane.apply(program, Instant::now());
        for f in &failures {
            tracing::error!(network = %f.name, error = %f.error, "cannot set up the network's dataplane");
        }
        failures
    }

    fn fdb_rows(&self, net: &Network) -> Vec<FdbRow> {
        self.dataplane
            .fdb(&net.id, Instant::now())
            .into_iter()
            .map(|r| FdbRow {
                mac: r.mac.0.to_vec(),
                vtep: r.vtep.map_or(0, u32::from),
                kind: r.kind.as_str().into(),
                age_seconds: r.age.as_secs(),
            })
            .collect()
    }

    fn stats(&self) -> Stats {
        let mut live = self.dataplane.stats();
        let networks = self
            .state()
            .networks()
            .into_iter()
            .map(|net| {
                let t = live.networks.remove(&net.id).unwrap_or_default();
                NetworkStats {
                    name: net.name.clone(),
                    vni: net.vni,
                    rx_frames: t.rx_frames,
                    rx_bytes: t.rx_bytes,
                    tx_frames: t.tx_frames,
                    tx_bytes: t.tx_bytes,
                    drops: drop_counts(&t.drops),
                }
            })
            .collect();
        Stats {
            networks,
            drops: drop_counts(&live.drops),
        }
    }
}

fn drop_counts(drops: &[(DropReason, u64)]) -> Vec<DropCount> {
    drops
        .iter()
        .map(|&(reason, count)| DropCount {
            reason: reason.as_str().into(),
            count,
        })
        .collect()
}

/// CLI.md: the namespace's name, or `pid:PID`; for a path, its last component.
fn default_endpoint_name(target: &str) -> String {
    if target.starts_with("pid:") || !target.starts_with('/') {
        return target.to_string();
    }
    match Path::new(target).file_name().and_then(|n| n.to_str()) {
        Some(name) if name != "net" => name.to_string(),
        _ => target.to_string(),
    }
}

fn load_or_create_host_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("host-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if id.trim().len() == 64 => return Ok(id.trim().to_string()),
        Ok(_) => bail!(
            "{} is corrupt; remove it to give this host a new identity",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let id = sys::random_id()?;
    sys::write_atomically(&path, &format!("{id}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_endpoint_names() {
        assert_eq!(default_endpoint_name("c1"), "c1");
        assert_eq!(default_endpoint_name("pid:42"), "pid:42");
        assert_eq!(default_endpoint_name("/var/run/netns/c1"), "c1");
        assert_eq!(default_endpoint_name("/proc/42/ns/net"), "/proc/42/ns/net");
    }
}
