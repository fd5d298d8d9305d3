//! The control thread: every API request, one at a time, and the reconcile after every state
//! change (see the module docs of [`super`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, Notify};
use vxnet_dataplane::host::dns::{resolv_conf, Upstreams};
use vxnet_dataplane::host::{
    DropReason, Host as Dataplane, HostConfig, NetworkFailure, ThreadFailure,
};
use vxnet_proto::types::{MTU_MIN, NETWORK_KEY_LEN, SEAL_OVERHEAD, VXLAN_OVERHEAD};
use vxnet_proto::{
    command, request, Command, CreateNetwork, Disconnect, DropCount, Endpoint, FdbRow, Host,
    Network, NetworkCreateRequest, NetworkKey, NetworkStats, NetworkView, RemoveNetwork, Request,
    Response, RotateNetworkKey, Stats,
};

use super::error::{failure, RequestError};
use super::identity::{hostname, load_or_create_host_id};
use super::intents::{self, Intents};
use super::{ControlEvent, DaemonConfig, DaemonError};
use crate::cluster::{Cluster, ClusterError, ClusterOptions, NodeEvent};
use crate::program::Programmer;
use crate::state::Applied;
use crate::sys;

type Reply = Result<Response, RequestError>;

pub(super) struct Daemon {
    host_id: String,
    cluster: Cluster,
    /// The door to the dataplane: sandboxes, TAPs, veths, the engine.
    dataplane: Dataplane,
    default_mtu: u32,
    /// The largest overlay MTU this host's underlay carries (its MTU less the encapsulation).
    carried_mtu: u32,
    /// Networks whose MTU this host's underlay cannot carry, already logged.
    mtu_warned: std::collections::BTreeSet<String>,
    /// How long the request being handled may take (the CLI's --timeout, less a margin).
    timeout: Duration,
    /// Connects in flight, on disk: finished or undone after a crash or a timeout.
    intents: Intents,
    /// Set when the replicated state changed and the dataplane has not been reconciled since.
    state_dirty: Arc<AtomicBool>,
    /// Builds this host's program from the state, one changed network at a time.
    programmer: Programmer,
    /// `--key-rotation`: the age at which the leader gives an encrypted network a new key;
    /// `None`: never (but after `cluster remove`).
    key_lifetime: Option<Duration>,
    /// When to look for aged keys next (see [`Daemon::rotate_aged_keys`]).
    next_key_check: std::time::Instant,
    /// When to try again to publish this host's record, if the start could not.
    next_record_check: std::time::Instant,
}

/// How often the leader looks for encrypted networks whose key is older than `--key-rotation`.
const KEY_CHECK: Duration = Duration::from_secs(5);
/// How long a periodic write that failed (a key rotation, this host's record; no quorum, say)
/// waits before it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// The longest a request may take, whatever its caller asks: a request holds the control
/// thread, and so every other request, while it waits.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the daemon gives a request whose caller waits `timeout_ms` (0: the default): a
/// margin less, so the caller hears why, and within 100 ms..=[`MAX_TIMEOUT`].
fn request_timeout(timeout_ms: u32) -> Duration {
    match timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)).saturating_sub(TIMEOUT_MARGIN),
    }
    .clamp(Duration::from_millis(100), MAX_TIMEOUT)
}

/// A fresh network key: 32 random bytes, stamped with this host's clock (the epoch is the
/// state machine's to number).
fn new_network_key() -> Result<NetworkKey, RequestError> {
    let secret = sys::random_bytes::<NETWORK_KEY_LEN>().map_err(RequestError::Random)?;
    Ok(NetworkKey {
        epoch: 0,
        secret: secret.to_vec(),
        created_unix_secs: sys::unix_millis() / 1000,
    })
}

/// The daemon answers this much before the CLI gives up, so the user sees why.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(500);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Daemon {
    pub(super) fn open(
        config: &DaemonConfig,
        underlay_mtu: u32,
        runtime: tokio::runtime::Handle,
        changed: mpsc::UnboundedSender<NodeEvent>,
    ) -> Result<Daemon, DaemonError> {
        let host_id = load_or_create_host_id(&config.data_dir)?;
        let name = config.name.clone().unwrap_or_else(hostname);
        let host = Host {
            id: host_id,
            name,
            addr: u32::from(config.advertise_addr),
            raft_id: 0,
            cluster_port: u32::from(config.cluster_port),
            // Chosen below, once the state is open.
            seal_salt: 0,
        };
        let options = ClusterOptions {
            max_voters: config.voters,
            ..ClusterOptions::default()
        };
        let mut cluster = Cluster::open(&config.data_dir, host, options, runtime, changed)?;
        if config.force_new_cluster {
            let forced = cluster.force_new_cluster()?;
            for (member, endpoints) in &forced.dropped_members {
                tracing::warn!(name = %member.name, id = %member.id, endpoints, "--force-new-cluster: dropped a member and its endpoints");
            }
            tracing::warn!(
                members = forced.dropped_members.len(),
                log_entries = forced.dropped_entries,
                "--force-new-cluster: this host is now a cluster of its own"
            );
        }
        // With encrypted networks, every start draws a new seal salt (see `Salts` in the
        // dataplane's seal): what was sealed for this host before does not open now. Without,
        // the record's salt stays, and a restart costs no write.
        let (published, encrypted) = {
            let state = cluster.handle().state();
            let published = state.host(&cluster.host().id).map(|h| h.seal_salt);
            (published, state.networks().iter().any(|n| n.encrypted))
        };
        let salt = match published {
            Some(salt) if !encrypted => salt,
            _ => {
                u64::from_be_bytes(sys::random_bytes::<8>().map_err(|source| DaemonError::Os {
                    op: "read random bytes for this start's seal salt",
                    source,
                })?)
            }
        };
        cluster.set_seal_salt(salt);
        // A restarted host with a new name, address or salt tells the cluster; best effort, as
        // the cluster may be without quorum right now.
        if let Err(e) = cluster.refresh_own_record(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "cannot update this host's record in the cluster yet");
        }
        let dataplane = Dataplane::start(HostConfig {
            underlay: config.advertise_addr,
            vxlan_port: config.vxlan_port,
            offloads: config.offloads,
            kernel: config.kernel,
            busy_poll: config.busy_poll,
            queues: config.queues,
            sandbox_dir: config.data_dir.join("netns"),
            dns_upstreams: dns_upstreams(&config.dns),
            etc_netns: resolv_conf::ETC_NETNS.into(),
        })?;
        let host_id = cluster.host().id.clone();
        Ok(Daemon {
            programmer: Programmer::new(host_id.clone()),
            host_id,
            cluster,
            timeout: DEFAULT_TIMEOUT,
            intents: Intents::open(&config.data_dir).map_err(|source| DaemonError::File {
                op: "create",
                path: config.data_dir.join("intents"),
                source,
            })?,
            state_dirty: Arc::new(AtomicBool::new(false)),
            dataplane,
            default_mtu: underlay_mtu.saturating_sub(VXLAN_OVERHEAD).max(MTU_MIN),
            carried_mtu: underlay_mtu.saturating_sub(VXLAN_OVERHEAD),
            mtu_warned: std::collections::BTreeSet::new(),
            key_lifetime: config.key_rotation,
            next_key_check: std::time::Instant::now(),
            next_record_check: std::time::Instant::now(),
        })
    }

    /// Where the dataplane reports forwarding threads that stopped by themselves (once).
    pub(super) fn take_dataplane_failures(
        &mut self,
    ) -> Option<std::sync::mpsc::Receiver<ThreadFailure>> {
        self.dataplane.take_failures()
    }

    /// The daemon's "state changed, not yet reconciled" flag, for the task that forwards the
    /// cluster's change events.
    pub(super) fn state_dirty(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.state_dirty)
    }

    /// Handles events until shutdown. A fatal cluster error (see `cluster`'s docs) answers its
    /// request, notifies `fatal` and ends the loop with that error; so does a
    /// [`ControlEvent::Fatal`] (a part of the daemon stopped).
    pub(super) fn serve(
        mut self,
        mut events: mpsc::Receiver<ControlEvent>,
        fatal: &Notify,
    ) -> Result<(), DaemonError> {
        let mut stopped_by = None;
        while let Some(event) = events.blocking_recv() {
            match event {
                ControlEvent::Request(request, reply) => {
                    if reply.is_closed() {
                        // The caller gave up while the request waited its turn: doing it now
                        // would change things nobody is told about.
                        continue;
                    }
                    self.timeout = request_timeout(request.timeout_ms);
                    let response = match self.handle(request) {
                        Ok(response) => response,
                        Err(RequestError::Cluster(e)) if e.is_fatal() => {
                            tracing::error!(error = %e, "stopping: this host has no Raft node");
                            let _ = reply.send(failure(e.to_string(), e.code()));
                            stopped_by = Some(DaemonError::Cluster(e));
                            fatal.notify_one();
                            break;
                        }
                        Err(e) => e.to_response(),
                    };
                    let _ = reply.send(response);
                }
                ControlEvent::Tick => {
                    super::metrics::publish(&self.dataplane, &self.cluster);
                    // Intents first: a connect a crash interrupted is finished, not taken
                    // for a container that went away.
                    self.settle_intents();
                    self.disconnect_vanished();
                    self.rotate_aged_keys();
                    self.publish_own_record();
                }
                ControlEvent::StateChanged => {
                    self.settle_intents();
                    // Already done if a request handler reconciled since the change.
                    if self.state_dirty.load(Ordering::Acquire) {
                        self.reconcile_all();
                    }
                }
                ControlEvent::Fatal(e) => {
                    tracing::error!(error = %e, "stopping");
                    stopped_by = Some(e);
                    fatal.notify_one();
                    break;
                }
                ControlEvent::Shutdown => break,
            }
        }
        // Stop forwarding; sandboxes stay so that containers keep their interfaces.
        self.dataplane.shutdown();
        stopped_by.map_or(Ok(()), Err)
    }

    fn handle(&mut self, request: Request) -> Reply {
        let Some(kind) = request.kind else {
            return Err(RequestError::EmptyRequest);
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
            // Every request below decides by what it reads (which network a name means, which
            // endpoint a target is, which networks are idle): it reads fresh state, so that a
            // host cut off from the cluster answers "unavailable" rather than from stale data.
            request::Kind::NetworkRemove(r) => {
                self.fresh()?;
                self.remove(&r.networks)
            }
            request::Kind::NetworkPrune(_) => {
                self.fresh()?;
                self.prune()
            }
            request::Kind::NetworkConnect(r) => {
                self.fresh()?;
                self.connect(r)
            }
            request::Kind::NetworkDisconnect(r) => {
                self.fresh()?;
                self.disconnect(r)
            }
            request::Kind::EndpointUpdate(r) => {
                self.fresh()?;
                self.update_endpoint(r)
            }
            request::Kind::Fdb(r) => {
                self.fresh()?;
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
            request::Kind::ClusterToken(r) => Ok(Response {
                token: self.cluster.token(r.rotate, self.timeout)?,
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
            request::Kind::ClusterRemove(r) => {
                let removed = self.cluster.remove(&r.host, r.force, self.timeout)?;
                tracing::info!(name = %removed.name, force = r.force, "removed a member from the cluster");
                // The removed host knew every encrypted network's key.
                self.rotate_network_keys("a member was removed", |_| true);
                self.reconcile_all();
                Ok(Response::default())
            }
        }
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, crate::state::StateMachine> {
        self.cluster.handle().state()
    }

    /// Makes the next reads see everything the cluster committed before this request.
    fn fresh(&self) -> Result<(), RequestError> {
        Ok(self.cluster.handle().read_barrier(self.timeout)?)
    }

    fn network(&self, name_or_id: &str) -> Result<Network, RequestError> {
        Ok(self.state().network(name_or_id).cloned()?)
    }

    fn apply(&mut self, kind: command::Kind) -> Result<Applied, ClusterError> {
        let _timer = super::metrics::ProposalTimer::start();
        self.cluster
            .handle()
            .propose(Command { kind: Some(kind) }, self.timeout)
    }

    /// Endpoints of this host whose container namespace is gone: removed through Raft as a
    /// `disconnect` would, so that every host forgets them and their address is free again.
    fn disconnect_vanished(&mut self) {
        let gone = self.dataplane.vanished_endpoints();
        if gone.is_empty() {
            return;
        }
        for (network_id, endpoint_id) in gone {
            let known = self
                .state()
                .endpoint(&endpoint_id)
                .is_some_and(|e| e.host_id == self.host_id && e.network_id == network_id);
            if !known {
                continue;
            }
            match self.apply(command::Kind::Disconnect(Disconnect {
                endpoint_id: endpoint_id.clone(),
            })) {
                Ok(_) => {
                    tracing::info!(endpoint = %endpoint_id, "the endpoint's namespace is gone; disconnected it")
                }
                // Tried again at the next tick.
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint_id, error = %e, "cannot remove an endpoint whose namespace is gone")
                }
            }
        }
        self.reconcile_all();
    }

    /// Settles the connects that did not finish (see [`super::intents`]): one committed
    /// without a veth is finished if its namespace is still the one it began with, and undone
    /// otherwise; one that never committed is forgotten after [`intents::INTENT_TTL`].
    fn settle_intents(&mut self) {
        let pending = self.intents.load();
        if pending.is_empty() {
            return;
        }
        let now = SystemTime::now();
        for intent in pending {
            let found = {
                let state = self.state();
                state
                    .endpoint(&intent.endpoint_id)
                    .filter(|ep| ep.host_id == self.host_id)
                    .cloned()
                    .zip(state.network(&intent.network_id).ok().cloned())
            };
            let Some((ep, net)) = found else {
                if Intents::expired(&intent, now) {
                    self.intents.clear(&intent.endpoint_id);
                }
                continue;
            };
            if self.dataplane.has_endpoint_link(&net.id, &ep.id) {
                self.intents.clear(&ep.id);
                continue;
            }
            let target = Path::new(&intent.target);
            let finished = intents::same_netns(&intent)
                && match self.plumb(&net, &ep, target, false) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(endpoint = %ep.name, error = %e, "cannot finish an interrupted connect; undoing it");
                        false
                    }
                };
            if finished {
                tracing::info!(network = %net.name, endpoint = %ep.name, ip = %Ipv4Addr::from(ep.ipv4), "finished an interrupted connect");
                self.intents.clear(&ep.id);
            } else {
                self.undo_connect(&ep);
            }
        }
    }

    /// Disconnects a committed endpoint whose connect failed or cannot be finished, and
    /// forgets its intent once that is committed (else it is tried again later).
    fn undo_connect(&mut self, ep: &Endpoint) {
        match self.apply(command::Kind::Disconnect(Disconnect {
            endpoint_id: ep.id.clone(),
        })) {
            Ok(_) => {
                tracing::info!(endpoint = %ep.name, "undid a connect that did not finish");
                self.intents.clear(&ep.id);
            }
            Err(e) => {
                tracing::warn!(endpoint = %ep.name, error = %e, "cannot undo a connect yet; will retry")
            }
        }
        self.reconcile_all();
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
                    warnings: self.mtu_warning(&n).into_iter().collect(),
                    // The keys never leave the daemon.
                    network: Some(Network {
                        keys: Vec::new(),
                        ..n
                    }),
                    endpoints,
                    host_names,
                }
            })
            .collect()
    }

    /// What to say when this host's underlay cannot carry `net`'s MTU, which is the same on
    /// every host (fixed when the network was created): larger frames from or to this host
    /// would be dropped on the way.
    /// An encrypted network's datagrams are [`SEAL_OVERHEAD`] bytes longer.
    fn mtu_warning(&self, net: &Network) -> Option<String> {
        let carried = if net.encrypted {
            self.carried_mtu.saturating_sub(SEAL_OVERHEAD)
        } else {
            self.carried_mtu
        };
        (net.mtu > carried).then(|| {
            format!(
                "this host's underlay carries overlay frames of at most {carried} bytes, less \
                 than the network's MTU {}: larger packets to or from its containers are \
                 dropped; raise the underlay MTU, or recreate the network with --mtu {carried}",
                net.mtu
            )
        })
    }

    /// Publishes this host's record (its name, address and this start's seal salt) if the
    /// state does not have it yet: the start tries once, without waiting for a cluster that
    /// has no quorum; this tries again every [`RETRY_AFTER_FAILURE`]. Until it is published,
    /// peers seal for this host under its previous salt.
    fn publish_own_record(&mut self) {
        let now = std::time::Instant::now();
        if now < self.next_record_check {
            return;
        }
        self.next_record_check = now + RETRY_AFTER_FAILURE;
        if self.state().host(&self.host_id) == Some(self.cluster.host()) {
            return;
        }
        match self.cluster.refresh_own_record(Duration::from_secs(2)) {
            Ok(()) => tracing::info!("published this host's record"),
            Err(e) => tracing::debug!(error = %e, "cannot publish this host's record yet"),
        }
    }

    /// On the leader, every [`KEY_CHECK`]: gives each encrypted network whose key is older
    /// than `--key-rotation` a new one, as Docker's encrypted overlay does every 12 hours. The
    /// age is the key's `created_unix_secs`, replicated with it, so a new leader carries on
    /// where the old one was.
    fn rotate_aged_keys(&mut self) {
        let Some(lifetime) = self.key_lifetime else {
            return;
        };
        let now = std::time::Instant::now();
        if now < self.next_key_check {
            return;
        }
        self.next_key_check = now + KEY_CHECK;
        let view = self.cluster.handle().view();
        if view.leader_id != view.own_id {
            return;
        }
        let wall = sys::unix_millis() / 1000;
        let aged = |n: &vxnet_proto::Network| {
            n.keys
                .last()
                .is_some_and(|k| k.created_unix_secs.saturating_add(lifetime.as_secs()) <= wall)
        };
        if !self.rotate_network_keys("its key reached --key-rotation", aged) {
            self.next_key_check = now + RETRY_AFTER_FAILURE;
        }
    }

    /// Gives every encrypted network that `which` picks a new key, because of `why`. Best
    /// effort: a network whose rotation fails keeps its key, and the failure is logged. Returns
    /// whether every rotation it tried was applied.
    fn rotate_network_keys(
        &mut self,
        why: &str,
        which: impl Fn(&vxnet_proto::Network) -> bool,
    ) -> bool {
        let picked: Vec<(String, String)> = self
            .state()
            .networks()
            .iter()
            .filter(|n| n.encrypted && which(n))
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect();
        let mut all = true;
        for (id, name) in picked {
            let rotated = new_network_key().and_then(|key| {
                self.apply(command::Kind::RotateNetworkKey(RotateNetworkKey {
                    network_id: id,
                    key: Some(key),
                }))
                .map_err(RequestError::from)
            });
            match rotated {
                Ok(Applied::KeyRotated(net)) => {
                    let epoch = net.keys.last().map_or(0, |k| k.epoch);
                    tracing::info!(network = %name, epoch, because = why, "rotated the network key");
                }
                Ok(_) => tracing::warn!(network = %name, "key rotation applied as another command"),
                Err(e) => {
                    all = false;
                    tracing::warn!(network = %name, error = %e, "cannot rotate the network key");
                }
            }
        }
        all
    }

    fn create(&mut self, r: NetworkCreateRequest) -> Reply {
        let id = sys::random_id().map_err(RequestError::Random)?;
        // An encrypted network's key is chosen here, once, and carried in the command: every
        // host applies the same bytes. Its frames are SEAL_OVERHEAD bytes shorter by default.
        let (key, default_mtu) = if r.encrypted {
            let key = new_network_key()?;
            let mtu = self.default_mtu.saturating_sub(SEAL_OVERHEAD).max(MTU_MIN);
            (Some(key), mtu)
        } else {
            (None, self.default_mtu)
        };
        let applied = self.apply(command::Kind::CreateNetwork(CreateNetwork {
            id,
            name: r.name,
            subnet: r.subnet,
            gateway: r.gateway,
            ip_range: r.ip_range,
            vni: r.vni,
            mtu: r.mtu.unwrap_or(default_mtu),
            peers: r.peers,
            labels: r.labels,
            internal: r.internal,
            encrypted: r.encrypted,
            key,
        }))?;
        let Applied::NetworkCreated(net) = applied else {
            return Err(RequestError::AppliedAsOther("create"));
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
            let result = self
                .network(name)
                .and_then(|net| -> Result<Network, RequestError> {
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
                Err(e) => errors.push(e),
            }
        }
        self.reconcile_all();
        if errors.is_empty() {
            Ok(Response {
                names: removed,
                ..Default::default()
            })
        } else if errors.len() == 1 && removed.is_empty() {
            Err(errors.remove(0))
        } else {
            Err(RequestError::Several { errors, removed })
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

    /// Makes the dataplane match the state (see `vxnet_dataplane::host`); failures are
    /// logged, returned, and retried by the next reconcile.
    pub(super) fn reconcile_all(&mut self) -> Vec<NetworkFailure> {
        // Cleared before the state is read: a change applied after this raises it again.
        self.state_dirty.store(false, Ordering::Release);
        let too_large: Vec<(String, String)> = self
            .state()
            .networks()
            .into_iter()
            .filter(|n| !self.mtu_warned.contains(&n.id))
            .filter_map(|n| {
                self.mtu_warning(n)
                    .map(|w| (n.id.clone(), format!("{}: {w}", n.name)))
            })
            .collect();
        for (id, warning) in too_large {
            tracing::warn!("network {warning}");
            self.mtu_warned.insert(id);
        }
        let program = self.programmer.program(&self.cluster.handle().state());
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
        let calls = live.syscalls;
        Stats {
            networks,
            drops: drop_counts(&live.drops),
            syscalls: Some(vxnet_proto::SyscallStats {
                recvmmsg: calls.recvmmsg,
                sendmmsg: calls.sendmmsg,
                send_fallback: calls.send_fallback,
                tap_reads: calls.tap_reads,
                tap_writes: calls.tap_writes,
            }),
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

/// The resolvers the networks' DNS forwards to: `--dns`, else the host's `/etc/resolv.conf`.
fn dns_upstreams(given: &[std::net::IpAddr]) -> Upstreams {
    if !given.is_empty() {
        return Upstreams(given.iter().map(|&ip| (ip, 53).into()).collect());
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let found = Upstreams::from_resolv_conf(&conf);
    if found.0.is_empty() {
        tracing::warn!("no nameserver in /etc/resolv.conf: the networks' DNS answers only their own names; pass --dns");
    }
    found
}

mod endpoints;
#[cfg(test)]
mod tests;
