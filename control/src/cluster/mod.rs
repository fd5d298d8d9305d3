//! Cluster membership as the daemon sees it: the Raft node's lifecycle and the files beside
//! it in the data dir.
//!
//! ```text
//! <data-dir>/raft-id         this host's id in the Raft group (a new one after `leave`)
//! <data-dir>/cluster-token   the secret members prove to each other (`cluster token`)
//! <data-dir>/raft/           the Raft log, HardState and snapshots (raft-engine)
//! ```
//!
//! A daemon with an empty data dir bootstraps a one-host cluster. `join` asks a member of
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
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vxnet_proto::{envelope, ClusterErrorCode, Envelope, Host, JoinRequest, LeaveRequest, Member};

use self::data_dir::{
    load_or_create_raft_id, load_or_create_token, raft_dir, remove_token, save_token, wipe_raft,
};
use self::raft::storage::RaftStorage;
use self::raft::transport::{self, ClusterToken};
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
    /// The secret of the cluster this host is in (the file's contents, kept at hand).
    token: ClusterToken,
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
        let mut cluster = Cluster {
            data_dir: data_dir.to_path_buf(),
            token: load_or_create_token(data_dir)?,
            host,
            options,
            runtime,
            changed,
            node: None,
        };
        cluster.start_node(true, Vec::new())?;
        Ok(cluster)
    }

    fn start_node(&mut self, bootstrap: bool, seed_members: Vec<Host>) -> Result<(), ClusterError> {
        // A join saved the new cluster's token, a leave removed the old one: read it again.
        self.token = load_or_create_token(&self.data_dir)?;
        let storage = RaftStorage::open(&raft_dir(&self.data_dir)).map_err(|source| {
            ClusterError::OpenLog {
                data_dir: self.data_dir.clone(),
                source,
            }
        })?;
        let config = NodeConfig {
            host: self.host.clone(),
            storage,
            token: self.token.clone(),
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

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn token(&self) -> String {
        self.token.to_string()
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
        let token: ClusterToken = token.parse().map_err(ClusterError::BadToken)?;
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
        let request = Envelope {
            kind: Some(envelope::Kind::JoinRequest(JoinRequest {
                host: Some(self.host.clone()),
            })),
        };
        let mut redirects = 0;
        let members = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::Timeout(timeout));
            }
            let reply = self
                .runtime
                .block_on(transport::request(
                    target,
                    self.host.raft_id,
                    &token,
                    request.clone(),
                    left,
                ))
                .map_err(|source| ClusterError::JoinUnreachable { target, source })?;
            let Some(envelope::Kind::JoinResponse(r)) = reply.kind else {
                return Err(ClusterError::NotAJoinAnswer(target));
            };
            let Some(rejection) = Rejection::from_answer(r.code, &r.error) else {
                break r.members;
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

        // Committed: this host's one-host cluster is over. Start as an empty member.
        self.replace_node(
            |c| {
                wipe_raft(&c.data_dir)?;
                save_token(&c.data_dir, &token)
            },
            false,
            members,
        )?;
        // Wait (bounded) until the leader's snapshot is here and the leader hears this host,
        // so that the next command sees the cluster and `members` shows this host reachable.
        let joined = |c: &Cluster| {
            c.handle().state().host(&c.host.id).is_some()
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
        let request = Envelope {
            kind: Some(envelope::Kind::LeaveRequest(LeaveRequest {
                host_id: self.host.id.clone(),
            })),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClusterError::Timeout(timeout));
            }
            let Some(leader) = self.leader_addr() else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            let reply = self.runtime.block_on(transport::request(
                leader,
                self.host.raft_id,
                &self.token,
                request.clone(),
                left,
            ));
            match reply.map(|r| r.kind) {
                Ok(Some(envelope::Kind::LeaveResponse(r))) => {
                    match Rejection::from_answer(r.code, &r.error) {
                        None => break,
                        Some(Rejection {
                            code: ClusterErrorCode::NotLeader | ClusterErrorCode::Busy,
                            ..
                        }) => {
                            // Leadership is moving (possibly away from us); ask again shortly.
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        Some(rejection) => return Err(ClusterError::LeaveRefused(rejection)),
                    }
                }
                Ok(_) => return Err(ClusterError::NotALeaveAnswer),
                Err(e) => {
                    tracing::debug!(error = %e, %leader, "leave request failed; retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
        self.replace_node(
            |c| {
                wipe_raft(&c.data_dir)?;
                remove_token(&c.data_dir);
                c.host.raft_id = load_or_create_raft_id(&c.data_dir, true)?;
                Ok(())
            },
            true,
            Vec::new(),
        )
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
            self.host.raft_id,
            &self.token,
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
