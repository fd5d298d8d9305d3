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

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vxnet_proto::{envelope, Envelope, Host, JoinRequest, LeaveRequest, Member};

use self::raft::node::{
    is_busy, is_redirect, ClusterError, NodeConfig, RaftHandle, RaftNode, COMPACT_EVERY,
};
use self::raft::storage::RaftStorage;
use self::raft::transport::{self, ClusterToken};
use crate::sys;

pub mod raft;

pub const DEFAULT_CLUSTER_PORT: u16 = 7946;
/// How many "ask the leader instead" answers a join or leave follows.
const MAX_REDIRECTS: usize = 5;

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
    changed: mpsc::UnboundedSender<()>,
    node: Option<RaftNode>,
}

fn fail(msg: impl Into<String>) -> ClusterError {
    ClusterError::Other(msg.into())
}

impl Cluster {
    /// Starts this host's node: the cluster it was part of, or a new one-host cluster.
    pub fn open(
        data_dir: &Path,
        mut host: Host,
        options: ClusterOptions,
        runtime: tokio::runtime::Handle,
        changed: mpsc::UnboundedSender<()>,
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
        let storage = RaftStorage::open(&self.data_dir.join("raft")).map_err(|e| {
            fail(format!(
                "cannot open the Raft log in {}: {e}",
                self.data_dir.display()
            ))
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

    /// Starts the node again after a join or leave replaced its storage. Without a node the
    /// daemon can do nothing, so if it cannot start (its port taken, the disk failing) the
    /// process exits, to be restarted on the same data dir, rather than limp on.
    fn restart_node(&mut self, bootstrap: bool, seed_members: Vec<Host>) {
        for attempt in 1..=5 {
            match self.start_node(bootstrap, seed_members.clone()) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "cannot start the raft node");
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                }
            }
        }
        tracing::error!(
            "the raft node does not start; exiting so a supervisor restarts the daemon"
        );
        std::process::exit(1);
    }

    fn stop_node(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown();
        }
    }

    pub fn handle(&self) -> &RaftHandle {
        match &self.node {
            Some(node) => node.handle(),
            // start_node is the only place that empties it, and it refills it or fails the
            // daemon's request; a missing node here is a bug, not an input.
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
        let token: ClusterToken = token
            .parse()
            .map_err(|e| ClusterError::Usage(format!("{e}")))?;
        {
            let state = self.handle().state();
            if state.hosts().iter().any(|h| h.id != self.host.id) {
                return Err(fail(
                    "this host is already part of a cluster; run `vxnet cluster leave` first",
                ));
            }
            if !state.networks().is_empty() {
                return Err(fail("this host already has networks; remove them first"));
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
                .map_err(|e| fail(format!("cannot join through {target}: {e}")))?;
            let Some(envelope::Kind::JoinResponse(r)) = reply.kind else {
                return Err(fail(format!("{target} answered the join with something else; is it a vxnet daemon of the same version?")));
            };
            if r.error.is_empty() {
                break r.members;
            } else if is_busy(&r.error) {
                // Another host is joining or leaving right now: one change at a time.
                std::thread::sleep(Duration::from_millis(200));
            } else if is_redirect(&r.error) && !r.leader_addr.is_empty() {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(fail("the cluster kept redirecting the join; retry"));
                }
                target = parse_member_addr(&r.leader_addr)?;
            } else if is_redirect(&r.error) {
                return Err(ClusterError::NoLeader);
            } else {
                return Err(fail(format!(
                    "the cluster refused to add this host: {}",
                    r.error
                )));
            }
        };

        // Committed: this host's one-host cluster is over. Start as an empty member.
        self.stop_node();
        wipe_raft(&self.data_dir)?;
        save_token(&self.data_dir, &token)?;
        self.restart_node(false, members);
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
            return Err(fail(
                "this host is not in a cluster with other hosts; there is nothing to leave",
            ));
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
                Ok(Some(envelope::Kind::LeaveResponse(r))) if r.error.is_empty() => break,
                Ok(Some(envelope::Kind::LeaveResponse(r)))
                    if is_redirect(&r.error) || is_busy(&r.error) =>
                {
                    // Leadership is moving (possibly away from us); ask again shortly.
                    std::thread::sleep(Duration::from_millis(300));
                }
                Ok(Some(envelope::Kind::LeaveResponse(r))) => {
                    return Err(fail(format!(
                        "the cluster refused to let this host leave: {}",
                        r.error
                    )))
                }
                Ok(_) => return Err(fail("the leader answered the leave with something else")),
                Err(e) => {
                    tracing::debug!(error = %e, %leader, "leave request failed; retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
        self.stop_node();
        wipe_raft(&self.data_dir)?;
        let _ = std::fs::remove_file(self.data_dir.join("cluster-token"));
        self.host.raft_id = load_or_create_raft_id(&self.data_dir, true)?;
        self.restart_node(true, Vec::new());
        Ok(())
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
    let bad = || {
        ClusterError::Usage(format!(
            "{addr:?} is not ADDR or ADDR:PORT (e.g. 192.0.2.10 or 192.0.2.10:7946)"
        ))
    };
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        return Ok(SocketAddr::V4(SocketAddrV4::new(ip, DEFAULT_CLUSTER_PORT)));
    }
    addr.parse::<SocketAddrV4>()
        .map(SocketAddr::V4)
        .map_err(|_| bad())
}

fn write_atomically(path: &Path, contents: &str) -> Result<(), ClusterError> {
    sys::write_atomically(path, contents)
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

fn load_or_create_raft_id(data_dir: &Path, fresh: bool) -> Result<u64, ClusterError> {
    let path = data_dir.join("raft-id");
    if !fresh {
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                return s
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&id| id != 0)
                    .ok_or_else(|| {
                        fail(format!(
                            "{} is corrupt; restore it or remove the data dir",
                            path.display()
                        ))
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
        }
    }
    let id = loop {
        let bytes =
            sys::random_bytes().map_err(|e| fail(format!("cannot read random bytes: {e}")))?;
        // 63 bits: positive in every language a tool might read it with.
        let id = u64::from_le_bytes(bytes) >> 1;
        if id != 0 {
            break id;
        }
    };
    write_atomically(&path, &format!("{id}\n"))?;
    Ok(id)
}

fn load_or_create_token(data_dir: &Path) -> Result<ClusterToken, ClusterError> {
    let path = data_dir.join("cluster-token");
    match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().map_err(|e| {
            fail(format!(
                "{} is corrupt ({e}); restore it or leave and rejoin the cluster",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = ClusterToken::generate()
                .map_err(|e| fail(format!("cannot make a cluster token: {e}")))?;
            save_token(data_dir, &token)?;
            Ok(token)
        }
        Err(e) => Err(fail(format!("cannot read {}: {e}", path.display()))),
    }
}

fn save_token(data_dir: &Path, token: &ClusterToken) -> Result<(), ClusterError> {
    let path = data_dir.join("cluster-token");
    write_atomically(&path, &format!("{token}\n"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(format!("cannot restrict {}: {e}", path.display())))
}

fn wipe_raft(data_dir: &Path) -> Result<(), ClusterError> {
    let dir = data_dir.join("raft");
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(format!("cannot remove {}: {e}", dir.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses() {
        assert_eq!(
            parse_member_addr("198.18.0.10").expect("addr"),
            "198.18.0.10:7946".parse::<SocketAddr>().expect("sa")
        );
        assert_eq!(
            parse_member_addr("198.18.0.10:8000").expect("addr"),
            "198.18.0.10:8000".parse::<SocketAddr>().expect("sa")
        );
        assert!(parse_member_addr("host.example").is_err());
        assert!(parse_member_addr("198.18.0.10:99999").is_err());
    }

    #[test]
    fn raft_ids_persist_and_renew() {
        let dir = std::env::temp_dir().join(format!("vxnet-raftid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let a = load_or_create_raft_id(&dir, false).expect("id");
        assert_ne!(a, 0);
        assert_eq!(load_or_create_raft_id(&dir, false).expect("id"), a);
        let b = load_or_create_raft_id(&dir, true).expect("id");
        assert_ne!(a, b);
        assert_eq!(load_or_create_raft_id(&dir, false).expect("id"), b);
        std::fs::write(dir.join("raft-id"), "zero\n").expect("write");
        assert!(load_or_create_raft_id(&dir, false).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Three daemons' clusters in one process, on loopback: join, replicate, read fresh,
    /// refuse a wrong token, leave, restart. No root needed.
    #[test]
    fn three_hosts_join_replicate_leave_and_restart() {
        use vxnet_proto::{command, Command, Connect, CreateNetwork};

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let root = std::env::temp_dir().join(format!("vxnet-cluster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        };
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let host = |i: usize| Host {
            id: format!("{:064x}", i + 1),
            name: format!("host{i}"),
            addr: u32::from(Ipv4Addr::LOCALHOST),
            raft_id: 0,
            cluster_port: u32::from(ports[i]),
        };
        let open = |i: usize| {
            let dir = root.join(format!("h{i}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let (tx, _rx) = mpsc::unbounded_channel();
            // A tiny compaction interval: the restarted host below must catch up from a
            // snapshot, since the log it missed is gone by then.
            let options = ClusterOptions {
                max_voters: 3,
                compact_every: 5,
            };
            Cluster::open(&dir, host(i), options, runtime.handle().clone(), tx).expect("open")
        };
        let t = Duration::from_secs(10);
        let mut c: Vec<Cluster> = (0..3).map(open).collect();
        let token = c[0].token();

        // A wrong token is refused, and leaves both sides as they were.
        let wrong = format!("vxnet-{}", "0".repeat(64));
        assert!(c[1]
            .join(&format!("127.0.0.1:{}", ports[0]), &wrong, t)
            .is_err());
        assert_eq!(c[0].handle().state().hosts().len(), 1);

        // Two hosts join at once: one membership change at a time, the other waits its turn.
        std::thread::scope(|scope| {
            for joiner in &mut c[1..] {
                let (token, seed) = (&token, format!("127.0.0.1:{}", ports[0]));
                scope.spawn(move || joiner.join(&seed, token, t).expect("join"));
            }
        });
        let members = c[2].members(t);
        assert_eq!(members.len(), 3);
        assert_eq!(members.iter().filter(|m| m.leader).count(), 1);
        assert!(members.iter().all(|m| m.role == "voter"));

        // A write on a follower is answered once applied there (read-your-writes)...
        let created = c[2]
            .handle()
            .propose(
                Command {
                    kind: Some(command::Kind::CreateNetwork(CreateNetwork {
                        id: "ab".repeat(32),
                        name: "app".into(),
                        mtu: 1450,
                        ..Default::default()
                    })),
                },
                t,
            )
            .expect("create");
        assert!(matches!(created, crate::state::Applied::NetworkCreated(_)));
        assert!(c[2].handle().state().network("app").is_ok());
        // ...and a fresh read anywhere sees it.
        c[1].handle().read_barrier(t).expect("read barrier");
        let vni = c[1]
            .handle()
            .state()
            .network("app")
            .expect("replicated")
            .vni;
        assert_eq!(vni, 256);

        // Allocation happens in apply: two hosts never get the same address.
        let connect = |i: usize, ep: u8| Command {
            kind: Some(command::Kind::Connect(Connect {
                endpoint_id: format!("{ep:02x}").repeat(32),
                network_id: "ab".repeat(32),
                host_id: host(i).id,
                name: format!("c{ep}"),
                ifname: "eth0".into(),
                target: format!("/run/netns/c{ep}"),
                ..Default::default()
            })),
        };
        let a = c[1]
            .handle()
            .propose(connect(1, 1), t)
            .expect("connect on h1");
        let b = c[2]
            .handle()
            .propose(connect(2, 2), t)
            .expect("connect on h2");
        let (crate::state::Applied::Connected(a), crate::state::Applied::Connected(b)) = (a, b)
        else {
            panic!("not connected");
        };
        assert_ne!(a.ipv4, b.ipv4);

        // A host down while the others write (and compact their logs) catches up on restart,
        // from a snapshot: the log it missed is gone by then.
        let down = c.remove(1);
        drop(down);
        for n in 0..20u8 {
            let create = Command {
                kind: Some(command::Kind::CreateNetwork(CreateNetwork {
                    id: format!("{:02x}", 0x80 + n).repeat(32),
                    name: format!("n{n}"),
                    mtu: 1450,
                    ..Default::default()
                })),
            };
            c[0].handle()
                .propose(create, t)
                .expect("create while h1 is down");
        }
        c.insert(1, open(1));
        c[1].handle()
            .read_barrier(t)
            .expect("read barrier after restart");
        assert!(c[1].handle().state().endpoint(&a.id).is_some());
        assert!(c[1].handle().state().network("n19").is_ok());

        // A fourth host is a learner (three voters at most)...
        c.push(open(3));
        c[3].join(&format!("127.0.0.1:{}", ports[0]), &token, t)
            .expect("join h3");
        let role = |c: &Cluster, name: &str| {
            c.members(t)
                .into_iter()
                .find(|m| m.name == name)
                .map(|m| m.role)
        };
        assert_eq!(role(&c[0], "host3").as_deref(), Some("learner"));

        // ...until a voter leaves: then it is promoted, in the same change. Leaving takes the
        // host's endpoints with it, everywhere.
        c[2].leave(t).expect("leave");
        c[0].handle().read_barrier(t).expect("read barrier");
        assert_eq!(role(&c[0], "host3").as_deref(), Some("voter"));
        assert_eq!(role(&c[0], "host2"), None);
        {
            let state = c[0].handle().state();
            assert_eq!(state.hosts().len(), 3);
            assert!(state.endpoint(&b.id).is_none());
            assert!(state.endpoint(&a.id).is_some());
        }
        // The leaver is a cluster of one again, with nothing of the old cluster.
        assert_eq!(c[2].handle().state().hosts().len(), 1);
        assert!(c[2].handle().state().networks().is_empty());
        drop(c);
        let _ = std::fs::remove_dir_all(&root);
    }
}
