//! Cluster membership as the daemon sees it: the Raft node's lifecycle and the files beside
//! it in the data dir.
//!
//! ```text
//! <data-dir>/raft-id              this host's id in the Raft group (a new one after `leave`)
//! <data-dir>/cluster-ca.pem       the cluster CA's certificate
//! <data-dir>/cluster-ca-key.pem   the cluster CA's private key (every member holds it)
//! <data-dir>/host-key.pem         this host's private key (never leaves the host)
//! <data-dir>/host-cert.der        this host's certificate, issued by the CA for its raft id
//! <data-dir>/raft/                the Raft log, HardState and snapshots (raft-engine)
//! ```
//!
//! All of them are readable by their owner only. A daemon with an empty data dir bootstraps a
//! one-host cluster, with a new CA (see [`raft::tls`]). The join token
//! ([`raft::token`]) is the CA's fingerprint and the replicated join secret, made at the
//! first `cluster token` and replaced by `cluster token --rotate`. `join` pins the CA by the
//! token's fingerprint, proves the secret inside TLS and sends a new public key; the leader
//! answers, once the join is committed, with the CA and this host's certificate. A data dir
//! from before mutual TLS gets a new CA at start (a one-host cluster goes on as before; the
//! members of an older multi-host cluster no longer reach each other and must join again, see
//! the README). `join` asks a member of
//! another cluster (redirected to its leader) to add this host; once the leader has committed
//! that, this host drops its own one-host log and starts over as an empty member that the
//! leader fills with a snapshot. `leave` asks the leader to remove this host (its endpoints go
//! in the same entry), then starts over as a fresh one-host cluster.
//!
//! Rules a caller relies on:
//! - Calls block (they are made from the daemon's control thread) and are bounded by the
//!   timeout they are given.
//! - A join or leave that fails before the leader committed it changes nothing here. Once it
//!   is committed, this host replaces its Raft storage and starts its node again; if the node
//!   does not start, the error is fatal ([`ClusterError::is_fatal`]) and the `Cluster` must
//!   not be used again: the caller exits, and the daemon restarted on the same data dir comes
//!   up in its new cluster.
//! - Errors carry the message the CLI prints and its exit code ([`ClusterError`]).
//! - `changed` is sent [`NodeEvent::Applied`] whenever the replicated state changed, and
//!   [`NodeEvent::Died`] if the node stopped by itself (storage or raft-rs failure): the
//!   `Cluster` is then of no use, and the caller exits like for a fatal error.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vxnet_proto::{envelope, ClusterErrorCode, Envelope, Host, JoinRequest, LeaveRequest, Member};

use self::data_dir::{
    finish_raft_swap, load_or_create_raft_id, load_or_create_tls, new_raft_dir, raft_dir,
    remove_dir_if_present, remove_tls, save_tls, swap_in_raft, wipe_raft,
};
use self::raft::storage::RaftStorage;
use self::raft::tls::{self as pki, ClusterCa};
use self::raft::transport::{self, ClusterTls, Credentials, JoinToken};
pub use self::raft::NodeEvent;
use self::raft::{NodeConfig, RaftHandle, RaftNode, COMPACT_EVERY};

mod data_dir;
mod error;
pub mod raft;
#[cfg(test)]
mod tests;

pub use error::{ClusterError, FileOp, Rejection};
pub use raft::ClusterView;

pub const DEFAULT_CLUSTER_PORT: u16 = 7946;
/// How many "ask the leader instead" answers a join follows.
const MAX_REDIRECTS: usize = 5;
/// How often a join or leave tries to start the new node before giving up (fatally).
const NODE_START_ATTEMPTS: u64 = 5;

/// How the Raft group is run.
#[derive(Debug, Clone, Copy)]
pub struct ClusterOptions {
    /// The first this many hosts vote; later ones are learners.
    pub max_voters: usize,
    /// Applied entries between two snapshots of the state.
    pub compact_every: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            max_voters: 3,
            compact_every: COMPACT_EVERY,
        }
    }
}

pub struct Cluster {
    data_dir: PathBuf,
    /// The CA and this host's certificate (the files' contents, kept at hand).
    tls: Arc<ClusterTls>,
    host: Host,
    options: ClusterOptions,
    runtime: tokio::runtime::Handle,
    changed: mpsc::UnboundedSender<NodeEvent>,
    node: Option<RaftNode>,
}

impl Cluster {
    /// Starts this host's node: the cluster it was part of, or a new one-host cluster.
    pub fn open(
        data_dir: &Path,
        mut host: Host,
        options: ClusterOptions,
        runtime: tokio::runtime::Handle,
        changed: mpsc::UnboundedSender<NodeEvent>,
    ) -> Result<Cluster, ClusterError> {
        host.raft_id = load_or_create_raft_id(data_dir, false)?;
        let (tls, born) = load_or_create_tls(data_dir, host.raft_id)?;
        let mut cluster = Cluster {
            data_dir: data_dir.to_path_buf(),
            tls: Arc::new(tls),
            host,
            options,
            runtime,
            changed,
            node: None,
        };
        cluster.start_node(true, Vec::new())?;
        if born
            && cluster
                .handle()
                .state()
                .hosts()
                .iter()
                .any(|h| h.id != cluster.host.id)
        {
            tracing::warn!(
                "this data dir predates mutual TLS between members: this host made a CA of its \
                 own and cannot reach the other members; see the README (\"Clustering\") to \
                 re-form the cluster"
            );
        }
        Ok(cluster)
    }

    fn start_node(&mut self, bootstrap: bool, seed_members: Vec<Host>) -> Result<(), ClusterError> {
        // A join saved the new cluster's certificates, a leave removed the old ones: read
        // them again (or make a new cluster's).
        let (tls, born) = load_or_create_tls(&self.data_dir, self.host.raft_id)?;
        if born {
            tracing::info!(ca = %raft::token::hex(&tls.ca().fingerprint()), "made a new cluster CA");
        }
        self.tls = Arc::new(tls);
        finish_raft_swap(&self.data_dir)?;
        let storage = RaftStorage::open(&raft_dir(&self.data_dir)).map_err(|source| {
            ClusterError::OpenLog {
                data_dir: self.data_dir.clone(),
                source,
            }
        })?;
        let config = NodeConfig {
            host: self.host.clone(),
            storage,
            tls: self.tls.clone(),
            max_voters: self.options.max_voters,
            compact_every: self.options.compact_every,
            bootstrap,
            seed_members,
        };
        self.node = Some(RaftNode::start(
            config,
            &self.runtime,
            self.changed.clone(),
        )?);
        Ok(())
    }

    /// Replaces the node after a join or leave committed: stops it, lets `replace` change the
    /// files in the data dir, and starts a new node on them. Without a node the daemon can do
    /// nothing, so any failure from here on is fatal ([`ClusterError::NodeDown`]): the caller
    /// exits, to be restarted on the same data dir, rather than limp on.
    fn replace_node(
        &mut self,
        replace: impl FnOnce(&mut Cluster) -> Result<(), ClusterError>,
        bootstrap: bool,
        seed_members: Vec<Host>,
    ) -> Result<(), ClusterError> {
        self.stop_node();
        let down = |source| ClusterError::NodeDown {
            source: Box::new(source),
        };
        replace(self).map_err(down)?;
        // A port still held by the old transport or a slow disk may take a moment.
        let mut attempt = 1;
        loop {
            match self.start_node(bootstrap, seed_members.clone()) {
                Ok(()) => return Ok(()),
                Err(e) if attempt < NODE_START_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "cannot start the raft node");
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                    attempt += 1;
                }
                Err(e) => return Err(down(e)),
            }
        }
    }

    fn stop_node(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown();
        }
    }

    pub fn handle(&self) -> &RaftHandle {
        match &self.node {
            Some(node) => node.handle(),
            // Only replace_node empties it, and it refills it or returns the fatal error after
            // which the cluster is not used again; a missing node here is a bug, not an input.
            None => unreachable!("the cluster always has a running node between requests"),
        }
    }

    /// Sets the seal salt this host publishes with its record ([`Cluster::refresh_own_record`]).
    pub fn set_seal_salt(&mut self, salt: u64) {
        self.host.seal_salt = salt;
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The join token; with `rotate` (or while the cluster has no join secret yet) a new
    /// secret is replicated first, and tokens printed before stop working for new joins.
    pub fn token(&self, rotate: bool, timeout: Duration) -> Result<String, ClusterError> {
        let current = || self.handle().state().join_secret().to_vec();
        if rotate || current().len() != crate::state::JOIN_SECRET_LEN {
            let secret: [u8; crate::state::JOIN_SECRET_LEN] =
                crate::sys::random_bytes().map_err(ClusterError::Random)?;
            let cmd = vxnet_proto::Command {
                kind: Some(vxnet_proto::command::Kind::SetJoinSecret(
                    vxnet_proto::SetJoinSecret {
                        secret: secret.to_vec(),
                        only_if_unset: !rotate,
                    },
                )),
            };
            // Answered once applied here: the state now holds the secret that won.
            self.handle().propose(cmd, timeout)?;
            if rotate {
                tracing::info!("rotated the join token's secret");
            }
        }
        let secret = <[u8; crate::state::JOIN_SECRET_LEN]>::try_from(current().as_slice())
            .map_err(|_| ClusterError::NoLeader)?;
        Ok(JoinToken {
            ca_fingerprint: self.tls.ca().fingerprint(),
            secret,
        }
        .to_string())
    }

    fn credentials(&self) -> Credentials {
        Credentials::Member(self.tls.clone())
    }

    /// Brings this host's record (name, addresses) up to date in the replicated state.
    pub fn refresh_own_record(&self, timeout: Duration) -> Result<(), ClusterError> {
        let current = self.handle().state().host(&self.host.id).cloned();
        if current.as_ref() == Some(&self.host) {
            return Ok(());
        }
        let cmd = vxnet_proto::Command {
            kind: Some(vxnet_proto::command::Kind::AddHost(vxnet_proto::AddHost {
                host: Some(self.host.clone()),
            })),
        };
        self.handle().propose(cmd, timeout).map(|_| ())
    }

    /// The members, with reachability as the leader sees it (a follower only hears from the
    /// leader); if the leader cannot be asked, as this host sees it.
    pub fn members(&self, timeout: Duration) -> Vec<Member> {
        let mut view = self.handle().view();
        if view.leader_id != view.own_id {
            if let Some(reachable) = self.leader_reachability(timeout.min(Duration::from_secs(2))) {
                view.reachable = reachable;
            }
        }
        let state = self.handle().state();
        state
            .hosts()
            .iter()
            .map(|h| Member {
                id: h.id.clone(),
                name: h.name.clone(),
                addr: format!("{}:{}", Ipv4Addr::from(h.addr), h.cluster_port),
                role: if view.learners.contains(&h.raft_id) {
                    "learner"
                } else {
                    "voter"
                }
                .into(),
                leader: h.raft_id == view.leader_id,
                reachable: view.reachable.contains(&h.raft_id),
            })
            .collect()
    }

    /// Joins the cluster `addr` belongs to. Refused while this host has networks of its own
    /// or is already in a cluster with other hosts.
    pub fn join(&mut self, addr: &str, token: &str, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        let token: JoinToken = token.parse().map_err(ClusterError::BadToken)?;
        {
            let state = self.handle().state();
            if state.hosts().iter().any(|h| h.id != self.host.id) {
                return Err(ClusterError::AlreadyInCluster);
            }
            if !state.networks().is_empty() {
                return Err(ClusterError::HasNetworks);
            }
        }
        let mut target = parse_member_addr(addr)?;
        // A new key for the new cluster: only its public half travels.
        let (host_key_pem, public_key) =
            pki::generate_host_key().map_err(|source| ClusterError::Identity {
                data_dir: self.data_dir.clone(),
                source,
            })?;
        let credentials = Credentials::Joiner {
            ca_fingerprint: token.ca_fingerprint,
        };
        let request = Envelope {
            kind: Some(envelope::Kind::JoinRequest(JoinRequest {
                host: Some(self.host.clone()),
                secret: token.secret.to_vec(),
                public_key,
            })),
        };
        let mut redirects = 0;
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::Timeout(timeout));
            }
            let reply = self
                .runtime
                .block_on(transport::request(
                    target,
                    &credentials,
                    request.clone(),
                    left,
                ))
                .map_err(|source| ClusterError::JoinUnreachable { target, source })?;
            let Some(envelope::Kind::JoinResponse(r)) = reply.kind else {
                return Err(ClusterError::NotAJoinAnswer(target));
            };
            let Some(rejection) = Rejection::from_answer(r.code, &r.error) else {
                break r;
            };
            match rejection.code {
                ClusterErrorCode::Busy => {
                    // Another host is joining or leaving right now: one change at a time.
                    std::thread::sleep(Duration::from_millis(200));
                }
                ClusterErrorCode::NotLeader if !r.leader_addr.is_empty() => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(ClusterError::TooManyRedirects);
                    }
                    target = parse_member_addr(&r.leader_addr)?;
                }
                ClusterErrorCode::NotLeader => return Err(ClusterError::NoLeader),
                _ => return Err(ClusterError::JoinRefused(rejection)),
            }
        };

        // The CA must be the one the token pins (the TLS handshake checked the chain the
        // member presented; this checks what it hands over).
        let ca = ClusterCa::from_pem(&answer.ca_cert_pem, &answer.ca_key_pem)
            .map_err(ClusterError::BadJoinCredentials)?;
        if ca.fingerprint() != token.ca_fingerprint {
            return Err(ClusterError::BadJoinCredentials(pki::TlsError::WrongCa));
        }
        let tls = ClusterTls::new(
            self.host.raft_id,
            ca,
            answer.host_cert.into(),
            &host_key_pem,
        )
        .map_err(ClusterError::BadJoinCredentials)?;

        // Committed: this host's one-host cluster is over. Start as an empty member.
        self.replace_node(
            |c| {
                wipe_raft(&c.data_dir)?;
                save_tls(&c.data_dir, &tls, &host_key_pem)
            },
            false,
            answer.members,
        )?;
        // Wait (bounded) until the leader's snapshot is here and the leader hears this host,
        // so that the next command sees the cluster and `members` shows this host reachable;
        // and until the leader has promoted it, if it is to vote (a joiner starts as a
        // learner, see the membership docs), so that `members` shows its lasting role.
        let joined = |c: &Cluster| {
            let view = c.handle().view();
            let settled =
                view.voters.contains(&c.host.raft_id) || view.voters.len() >= c.options.max_voters;
            settled
                && c.handle().state().host(&c.host.id).is_some()
                && c.leader_reachability(Duration::from_millis(500))
                    .is_some_and(|r| r.contains(&c.host.raft_id))
        };
        while Instant::now() < deadline {
            if joined(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!("joined, but the cluster's state has not arrived yet; it will catch up");
        Ok(())
    }

    /// Leaves the cluster: the leader removes this host and its endpoints everywhere; this
    /// host then starts over as a fresh one-host cluster.
    pub fn leave(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        if !self
            .handle()
            .state()
            .hosts()
            .iter()
            .any(|h| h.id != self.host.id)
        {
            return Err(ClusterError::NothingToLeave);
        }
        self.ask_leader_to_remove(&self.host.id, deadline, timeout)
            .map_err(|e| match e {
                RemoveError::Refused(r) => ClusterError::LeaveRefused(r),
                RemoveError::Other(e) => e,
            })?;
        self.replace_node(
            |c| {
                wipe_raft(&c.data_dir)?;
                remove_tls(&c.data_dir);
                c.host.raft_id = load_or_create_raft_id(&c.data_dir, true)?;
                Ok(())
            },
            true,
            Vec::new(),
        )
    }

    /// `--force-new-cluster`: makes this host's state a cluster of this host alone, for when
    /// the majority is lost for good. Keeps every network and this host's endpoints; drops the
    /// other members with their endpoints (as `remove` would) and the log entries not known
    /// to be committed. The new Raft store is built beside the old one and swapped in by
    /// renames, so a crash leaves the old cluster or the new one. Returns what it dropped.
    pub fn force_new_cluster(&mut self) -> Result<ForcedNewCluster, ClusterError> {
        let view = self.handle().view();
        let others: Vec<Host> = self
            .handle()
            .state()
            .hosts()
            .iter()
            .filter(|h| h.id != self.host.id)
            .cloned()
            .collect();
        let alone = view.voters.len() == 1 && view.learners.is_empty() && others.is_empty();
        let mut report = ForcedNewCluster::default();
        if alone && view.voters.contains(&self.host.raft_id) {
            return Ok(report);
        }
        let mut state = self.handle().state().clone();
        for host in others {
            let cmd = vxnet_proto::Command {
                kind: Some(vxnet_proto::command::Kind::RemoveHost(
                    vxnet_proto::RemoveHost {
                        host_id: host.id.clone(),
                    },
                )),
            };
            // Outside the log: no proposal id to remember.
            if let Ok(crate::state::Applied::HostRemoved { host, endpoints }) = state.apply(&cmd) {
                report.dropped_members.push((host, endpoints.len()));
            }
        }
        let applied = view.applied.max(raft::snapshot::BOOTSTRAP_INDEX);
        let own = self.host.clone();
        self.replace_node(
            |c| {
                let (last, mut hard_state) = {
                    let old = RaftStorage::open(&raft_dir(&c.data_dir)).map_err(|source| {
                        ClusterError::OpenLog {
                            data_dir: c.data_dir.clone(),
                            source,
                        }
                    })?;
                    let last = ::raft::Storage::last_index(&old).unwrap_or(applied);
                    (last, old.hard_state().map_err(raft::NodeError::from)?)
                };
                report.dropped_entries = last.saturating_sub(applied);
                let snapshot = raft::snapshot::forced(&state, &own, applied, hard_state.term);
                hard_state.commit = applied;
                hard_state.vote = own.raft_id;
                let new_dir = new_raft_dir(&c.data_dir);
                remove_dir_if_present(&new_dir)?;
                let new = RaftStorage::open(&new_dir).map_err(|source| ClusterError::OpenLog {
                    data_dir: c.data_dir.clone(),
                    source,
                })?;
                new.persist_ready(&[], Some(&hard_state), Some(&snapshot))
                    .map_err(raft::NodeError::from)?;
                drop(new);
                swap_in_raft(&c.data_dir)?;
                // A new cluster, a new CA: the dropped members' certificates are worthless here.
                remove_tls(&c.data_dir);
                Ok(())
            },
            false,
            Vec::new(),
        )?;
        Ok(report)
    }

    /// Evicts another member: the leader removes it and its endpoints everywhere, as if it had
    /// left (a voter is replaced by a caught-up learner). `host` is a member's name or ID.
    /// Refused for this host (that is `leave`), and for a member the leader still hears from,
    /// unless `force`. Returns the removed host's record.
    pub fn remove(
        &mut self,
        host: &str,
        force: bool,
        timeout: Duration,
    ) -> Result<Host, ClusterError> {
        let deadline = Instant::now() + timeout;
        // Decide on what the cluster has committed, not on what this host has applied so far.
        self.handle().read_barrier(timeout)?;
        let target = self.member(host)?;
        if target.id == self.host.id {
            return Err(ClusterError::RemoveSelf(target.name));
        }
        if !force {
            let left = deadline.saturating_duration_since(Instant::now());
            let reachable = match self.leader_reachability(left.min(Duration::from_secs(2))) {
                Some(reachable) => reachable,
                // This host leads (or the leader cannot be asked): its own view.
                None => self.handle().view().reachable,
            };
            if reachable.contains(&target.raft_id) {
                return Err(ClusterError::MemberReachable(target.name));
            }
        }
        tracing::info!(name = %target.name, raft_id = target.raft_id, force, "removing a member");
        self.ask_leader_to_remove(&target.id, deadline, timeout)
            .map_err(|e| match e {
                RemoveError::Refused(rejection) => ClusterError::RemoveRefused {
                    host: target.name.clone(),
                    rejection,
                },
                RemoveError::Other(e) => e,
            })?;
        // The next command on this host must not see the member still there.
        let left = deadline.saturating_duration_since(Instant::now());
        self.handle()
            .read_barrier(left.max(Duration::from_millis(100)))?;
        Ok(target)
    }

    /// The member `name_or_id` names: an exact ID, or the one member with that name.
    fn member(&self, name_or_id: &str) -> Result<Host, ClusterError> {
        let state = self.handle().state();
        if let Some(h) = state.host(name_or_id) {
            return Ok(h.clone());
        }
        let mut named = state.hosts().iter().filter(|h| h.name == name_or_id);
        match (named.next(), named.next()) {
            (Some(h), None) => Ok(h.clone()),
            (Some(_), Some(_)) => Err(ClusterError::AmbiguousMember(name_or_id.to_owned())),
            (None, _) => Err(ClusterError::NoSuchMember(name_or_id.to_owned())),
        }
    }

    /// Asks the leader (following leadership as it moves) to remove the host `host_id`, until
    /// it has committed that or `deadline` passes.
    fn ask_leader_to_remove(
        &self,
        host_id: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), RemoveError> {
        let request = Envelope {
            kind: Some(envelope::Kind::LeaveRequest(LeaveRequest {
                host_id: host_id.to_owned(),
            })),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RemoveError::Other(ClusterError::Timeout(timeout)));
            }
            let Some(leader) = self.leader_addr() else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            let reply = self.runtime.block_on(transport::request(
                leader,
                &self.credentials(),
                request.clone(),
                left,
            ));
            match reply.map(|r| r.kind) {
                Ok(Some(envelope::Kind::LeaveResponse(r))) => {
                    match Rejection::from_answer(r.code, &r.error) {
                        None => return Ok(()),
                        Some(Rejection {
                            code: ClusterErrorCode::NotLeader | ClusterErrorCode::Busy,
                            ..
                        }) => {
                            // Leadership is moving (possibly away from the leaver), or another
                            // change is under way: ask again shortly.
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        Some(rejection) => return Err(RemoveError::Refused(rejection)),
                    }
                }
                Ok(_) => return Err(RemoveError::Other(ClusterError::NotALeaveAnswer)),
                Err(e) => {
                    tracing::debug!(error = %e, %leader, "leave request failed; retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
    }

    fn leader_reachability(&self, timeout: Duration) -> Option<std::collections::BTreeSet<u64>> {
        let leader = self.leader_addr()?;
        let request = Envelope {
            kind: Some(envelope::Kind::ReachabilityRequest(
                vxnet_proto::ReachabilityRequest {},
            )),
        };
        let reply = match self.runtime.block_on(transport::request(
            leader,
            &self.credentials(),
            request,
            timeout,
        )) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, %leader, "cannot ask the leader who it hears from");
                return None;
            }
        };
        match reply.kind {
            Some(envelope::Kind::ReachabilityResponse(r)) if r.leader => {
                Some(r.reachable.into_iter().collect())
            }
            _ => None,
        }
    }

    fn leader_addr(&self) -> Option<SocketAddr> {
        let view = self.handle().view();
        let state = self.handle().state();
        let leader = state
            .hosts()
            .iter()
            .find(|h| h.raft_id == view.leader_id && view.leader_id != 0)?;
        Some(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(leader.addr),
            leader.cluster_port as u16,
        )))
    }
}

/// What `--force-new-cluster` dropped.
#[derive(Debug, Default)]
pub struct ForcedNewCluster {
    /// The other members, each with how many endpoints went with it.
    pub dropped_members: Vec<(Host, usize)>,
    /// Log entries after the last one known to be committed.
    pub dropped_entries: u64,
}

/// Why [`Cluster::ask_leader_to_remove`] did not get its answer.
enum RemoveError {
    /// The leader refused; the caller says whose removal.
    Refused(Rejection),
    Other(ClusterError),
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_node();
    }
}

/// `A.B.C.D` or `A.B.C.D:PORT`.
fn parse_member_addr(addr: &str) -> Result<SocketAddr, ClusterError> {
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        return Ok(SocketAddr::V4(SocketAddrV4::new(ip, DEFAULT_CLUSTER_PORT)));
    }
    addr.parse::<SocketAddrV4>()
        .map(SocketAddr::V4)
        .map_err(|_| ClusterError::BadAddress(addr.to_owned()))
}
