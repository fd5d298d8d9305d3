//! Prometheus metrics: `vxnet daemon --metrics-addr IP:PORT` serves the Prometheus text format
//! (version 0.0.4) at `http://IP:PORT/metrics` (README, "Metrics"). Off unless given.
//!
//! Who owns what:
//! - The control thread owns the dataplane and the cluster, as for every request. Once a
//!   second, on its tick, it reads them — `Host::stats`, `Host::fdb` of every network, the
//!   replicated state (read lock held only to list networks, endpoints and hosts) and the Raft
//!   node's published view — into an immutable [`Snapshot`], and swaps that in ([`publish`]):
//!   one pointer store, no lock a scrape could hold against it.
//! - The HTTP server is a few tokio tasks on the daemon's runtime (hyper). A scrape loads the
//!   latest snapshot and encodes it (prometheus-client): it never waits on the control thread,
//!   never touches the dataplane or the Raft node, and two scrapes never wait on each other.
//! - The proposal histogram (`vxnet_proposal_duration_seconds`) is observed on the control
//!   thread where it proposes ([`ProposalTimer`]): every proposal of this host, from the call to
//!   its answer — applied, refused or timed out.
//!
//! How fresh: as of the control thread's last tick, so at most about a second old while it is
//! idle. While one request holds it (a join, a write waiting for a quorum: up to that request's
//! timeout) the numbers stay as of the tick before; `vxnet_metrics_age_seconds` says how old
//! the numbers of a scrape are, so a stuck control thread shows.
//!
//! Rules a caller relies on:
//! - Only `GET /metrics` answers 200; other paths 404, other methods on it 405.
//! - Labels never carry a MAC or an IP address: `network` is the network's name, `reason` a
//!   drop or refusal reason, `kind` an FDB kind, `role` voter or learner. `network=""` counts datagrams
//!   that belong to no network.
//! - Every network of the replicated state has its series (zero where it does not run here);
//!   drop counters appear once non-zero, as in `vxnet stats`; the cluster port's refusal
//!   counters all appear, zeros included.
//! - [`publish`] and [`ProposalTimer`] do nothing in a daemon started without
//!   `--metrics-addr` ([`start`] installs the process's one [`Metrics`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use vxnet_dataplane::host::{FdbKind, Host as Dataplane};

use super::DaemonError;
use crate::cluster::Cluster;

/// Upper bounds of the proposal histogram's buckets, in seconds: a healthy cluster on a LAN
/// commits in a few milliseconds (one round trip and one fsync); the top is the default
/// request timeout.
const PROPOSAL_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The kinds of FDB entry, each given a series (zero included) for every network.
const FDB_KINDS: [FdbKind; 4] = [
    FdbKind::Local,
    FdbKind::Control,
    FdbKind::Static,
    FdbKind::Learned,
];

/// How many scrapes may be served at once; more connections wait to be accepted.
const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's metrics, once `--metrics-addr` asked for them.
static INSTALLED: OnceLock<Arc<Metrics>> = OnceLock::new();

/// What a scrape shows: the latest [`Snapshot`] and the live proposal histogram.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    latest: Arc<ArcSwapOption<Snapshot>>,
    proposals: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let latest = Arc::new(ArcSwapOption::empty());
        let proposals = Histogram::new(PROPOSAL_BUCKETS);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector {
            latest: Arc::clone(&latest),
        }));
        registry.register(
            "vxnet_proposal_duration_seconds",
            "Time from proposing a change to its answer on this host (applied, refused or timed out)",
            proposals.clone(),
        );
        Metrics {
            registry,
            latest,
            proposals,
        }
    }

    /// Makes `snapshot` what scrapes show from now on.
    pub fn store(&self, snapshot: Snapshot) {
        self.latest.store(Some(Arc::new(snapshot)));
    }

    pub fn observe_proposal(&self, took: Duration) {
        self.proposals.observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String fails only if an encoder says so, and ours never do.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

/// What the control thread saw at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub taken: Instant,
    /// Every network of the replicated state, by name.
    pub networks: Vec<NetworkSample>,
    /// Drops of datagrams that belong to no network, by reason.
    pub drops: Vec<(&'static str, u64)>,
    pub raft: RaftSample,
    pub voters: u64,
    pub learners: u64,
    /// What the cluster transport refused, by reason (every reason, zeros included).
    pub refusals: Vec<(&'static str, u64)>,
}

/// One network's numbers on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSample {
    pub name: String,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Non-zero drop counters, by reason.
    pub drops: Vec<(&'static str, u64)>,
    /// Endpoints of the network on this host.
    pub endpoints: u64,
    /// FDB entries by kind (`FdbKind::as_str`), every kind present.
    pub fdb: BTreeMap<&'static str, u64>,
}

/// This host's Raft node, as it last published itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftSample {
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub is_leader: bool,
}

/// Binds `addr` and installs the process's [`Metrics`]: from here on the control thread
/// publishes snapshots. Fails at once on an address that cannot be bound.
pub(super) fn start(addr: SocketAddr) -> Result<MetricsServer, DaemonError> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| DaemonError::Metrics { addr, source })?;
    let metrics = Arc::clone(INSTALLED.get_or_init(|| Arc::new(Metrics::new())));
    Ok(MetricsServer { listener, metrics })
}

/// Called by the control thread on every tick: takes a [`Snapshot`] of the dataplane and the
/// cluster for the scrapes to come. Does nothing without `--metrics-addr`.
pub(super) fn publish(dataplane: &Dataplane, cluster: &Cluster) {
    if let Some(metrics) = INSTALLED.get() {
        metrics.store(snapshot(dataplane, cluster, Instant::now()));
    }
}

/// Times one proposal: made before proposing, observed when dropped with the answer in hand.
#[must_use = "the proposal is timed until this is dropped"]
pub(super) struct ProposalTimer(Instant);

impl ProposalTimer {
    pub(super) fn start() -> ProposalTimer {
        ProposalTimer(Instant::now())
    }
}

impl Drop for ProposalTimer {
    fn drop(&mut self) {
        if let Some(metrics) = INSTALLED.get() {
            metrics.observe_proposal(self.0.elapsed());
        }
    }
}

fn snapshot(dataplane: &Dataplane, cluster: &Cluster, now: Instant) -> Snapshot {
    let view = cluster.handle().view();
    let own_host = &cluster.host().id;
    // The state's lock is held only to copy these out: the Raft node waits for it to apply.
    let (networks, learners, voters) = {
        let state = cluster.handle().state();
        let networks: Vec<(String, String, u64)> = state
            .networks()
            .into_iter()
            .map(|n| {
                let local = state
                    .endpoints(&n.id)
                    .into_iter()
                    .filter(|e| &e.host_id == own_host)
                    .count();
                (n.id.clone(), n.name.clone(), local as u64)
            })
            .collect();
        // As `cluster members` shows them: a host is a learner if Raft has it as one.
        let learners = state
            .hosts()
            .iter()
            .filter(|h| view.learners.contains(&h.raft_id))
            .count() as u64;
        let voters = state.hosts().len() as u64 - learners;
        (networks, learners, voters)
    };
    let mut live = dataplane.stats_sampled();
    let networks = networks
        .into_iter()
        .map(|(id, name, endpoints)| {
            let traffic = live.networks.remove(&id).unwrap_or_default();
            let mut fdb: BTreeMap<&'static str, u64> =
                FDB_KINDS.iter().map(|k| (k.as_str(), 0)).collect();
            for row in dataplane.fdb(&id, now) {
                *fdb.entry(row.kind.as_str()).or_default() += 1;
            }
            NetworkSample {
                name,
                rx_frames: traffic.rx_frames,
                rx_bytes: traffic.rx_bytes,
                tx_frames: traffic.tx_frames,
                tx_bytes: traffic.tx_bytes,
                drops: traffic
                    .drops
                    .iter()
                    .map(|&(reason, n)| (reason.as_str(), n))
                    .collect(),
                endpoints,
                fdb,
            }
        })
        .collect();
    Snapshot {
        taken: now,
        networks,
        drops: live
            .drops
            .iter()
            .map(|&(reason, n)| (reason.as_str(), n))
            .collect(),
        raft: RaftSample {
            term: view.term,
            commit: view.commit,
            applied: view.applied,
            is_leader: view.leader_id != raft::INVALID_ID && view.leader_id == view.own_id,
        },
        voters,
        learners,
        refusals: view
            .refusals
            .iter()
            .map(|(reason, n)| (reason.as_str(), n))
            .collect(),
    }
}

/// Encodes the latest snapshot at each scrape.
#[derive(Debug)]
struct SnapshotCollector {
    latest: Arc<ArcSwapOption<Snapshot>>,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Nothing before the control thread's first tick (a second at most).
        let Some(s) = self.latest.load_full() else {
            return Ok(());
        };
        let counters: [(&str, &str, PerNetwork); 4] = [
            (
                "vxnet_rx_frames",
                "Frames received from the wire for the network's containers on this host.",
                |n| n.rx_frames,
            ),
            (
                "vxnet_tx_frames",
                "Frames sent on the wire from the network's containers on this host, a flooded frame once per copy.",
                |n| n.tx_frames,
            ),
            (
                "vxnet_rx_bytes",
                "Bytes of the frames received from the wire for the network on this host.",
                |n| n.rx_bytes,
            ),
            (
                "vxnet_tx_bytes",
                "Bytes of the frames sent on the wire from the network on this host.",
                |n| n.tx_bytes,
            ),
        ];
        for (name, help, value) in counters {
            let samples = per_network(&s, value);
            family(&mut encoder, name, help, MetricType::Counter, &samples)?;
        }
        let mut drops: Samples = s
            .drops
            .iter()
            .map(|&(reason, n)| {
                let labels = vec![("network", String::new()), ("reason", reason.to_string())];
                (labels, n)
            })
            .collect();
        for net in &s.networks {
            drops.extend(net.drops.iter().map(|&(reason, n)| {
                let labels = vec![
                    ("network", net.name.clone()),
                    ("reason", reason.to_string()),
                ];
                (labels, n)
            }));
        }
        family(
            &mut encoder,
            "vxnet_drops",
            "Datagrams and frames dropped, by reason; network=\"\" for datagrams of no network.",
            MetricType::Counter,
            &drops,
        )?;
        family(
            &mut encoder,
            "vxnet_endpoints",
            "Endpoints of the network on this host.",
            MetricType::Gauge,
            &per_network(&s, |n| n.endpoints),
        )?;
        let fdb: Samples = s
            .networks
            .iter()
            .flat_map(|net| {
                net.fdb.iter().map(|(&kind, &n)| {
                    let labels = vec![("network", net.name.clone()), ("kind", kind.to_string())];
                    (labels, n)
                })
            })
            .collect();
        family(
            &mut encoder,
            "vxnet_fdb_entries",
            "Forwarding entries of the network on this host, by kind (local, control, static, learned).",
            MetricType::Gauge,
            &fdb,
        )?;
        let raft: [(&str, &str, u64); 4] = [
            (
                "vxnet_raft_term",
                "The Raft term of this host's node.",
                s.raft.term,
            ),
            (
                "vxnet_raft_commit_index",
                "The last Raft log index this host knows to be committed.",
                s.raft.commit,
            ),
            (
                "vxnet_raft_applied_index",
                "The last Raft log index applied to the state on this host.",
                s.raft.applied,
            ),
            (
                "vxnet_raft_is_leader",
                "1 if this host is the Raft leader, else 0.",
                u64::from(s.raft.is_leader),
            ),
        ];
        for (name, help, value) in raft {
            family(
                &mut encoder,
                name,
                help,
                MetricType::Gauge,
                &[(vec![], value)],
            )?;
        }
        let members = [
            (vec![("role", "voter".to_string())], s.voters),
            (vec![("role", "learner".to_string())], s.learners),
        ];
        family(
            &mut encoder,
            "vxnet_cluster_members",
            "Hosts of the cluster as this host knows them, by Raft role.",
            MetricType::Gauge,
            &members,
        )?;
        let refusals: Samples = s
            .refusals
            .iter()
            .map(|&(reason, n)| (vec![("reason", reason.to_string())], n))
            .collect();
        family(
            &mut encoder,
            "vxnet_cluster_refusals",
            "Connections the cluster port refused or closed, and raft messages it dropped, by reason.",
            MetricType::Counter,
            &refusals,
        )?;
        let age = ConstGauge::new(s.taken.elapsed().as_secs_f64());
        age.encode(encoder.encode_descriptor(
            "vxnet_metrics_age_seconds",
            "How old the numbers of this scrape are (taken by the control thread once a second).",
            None,
            age.metric_type(),
        )?)
    }
}

/// The samples of a family: label sets (name, value) and their values.
type Samples = Vec<(Vec<(&'static str, String)>, u64)>;

/// Which number of a network a family shows.
type PerNetwork = fn(&NetworkSample) -> u64;

/// One sample per network, labelled with its name.
fn per_network(s: &Snapshot, value: PerNetwork) -> Samples {
    s.networks
        .iter()
        .map(|n| (vec![("network", n.name.clone())], value(n)))
        .collect()
}

/// One metric family: a `# HELP`/`# TYPE` pair and one sample per label set.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(Vec<(&'static str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let one = metric.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*value).encode(one)?,
            // Gauges are i64 in prometheus-client; no count here comes near 2^63.
            _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(one)?,
        }
    }
    Ok(())
}

/// The bound `--metrics-addr`, ready to serve.
pub(super) struct MetricsServer {
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
}

impl MetricsServer {
    /// Serves scrapes until the runtime stops; at most [`MAX_CONNECTIONS`] at once.
    pub(super) async fn serve(self) {
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve metrics");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    // Out of file descriptors, say: give it a moment rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = Arc::clone(&self.metrics);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let metrics = Arc::clone(&metrics);
                    async move { Ok::<_, Infallible>(answer(&metrics, &request)) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "metrics: connection ended with an error");
                }
                drop(slot);
            });
        }
    }
}

/// The answer to one HTTP request.
fn answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            metrics.render(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
    }
    response
}

#[cfg(test)]
mod tests;
