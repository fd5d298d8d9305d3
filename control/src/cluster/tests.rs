use super::raft::transport::testing::{send_poison_heartbeat, TestCa};
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
fn messages_and_exit_codes() {
    let cases: [(ClusterError, &str, u8); 6] = [
        (
            ClusterError::HasNetworks,
            "this host already has networks; remove them first",
            1,
        ),
        (
            ClusterError::BadAddress("host.example".into()),
            "\"host.example\" is not ADDR or ADDR:PORT (e.g. 192.0.2.10 or 192.0.2.10:7946)",
            2,
        ),
        (
            ClusterError::BadToken(transport::TokenError::OldFormat),
            "this cluster token is from a vxnet before mutual TLS (it has no CA fingerprint); print a current one with `vxnet cluster token` on a member",
            2,
        ),
        (
            ClusterError::JoinRefused(Rejection::refused("no room")),
            "the cluster refused to add this host: no room",
            1,
        ),
        (
            ClusterError::file(
                FileOp::Restrict,
                "/d/cluster-ca-key.pem",
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ),
            "cannot restrict /d/cluster-ca-key.pem: permission denied",
            1,
        ),
        (
            ClusterError::Timeout(Duration::from_secs(3)),
            "the cluster did not confirm the change within 3s; it may still commit (is a majority of its voting hosts up and reachable?); check `vxnet cluster members`",
            1,
        ),
    ];
    for (error, message, code) in cases {
        assert_eq!(error.to_string(), message);
        assert_eq!(error.exit_code(), code, "{error:?}");
    }
    assert!(ClusterError::Timeout(Duration::from_secs(1)).is_timeout());
    assert!(!ClusterError::NoLeader.is_timeout());
    let down = ClusterError::NodeDown {
        source: Box::new(ClusterError::Stopped),
    };
    assert!(down.is_fatal() && !ClusterError::Stopped.is_fatal());
    assert!(matches!(
        ClusterError::Timeout(Duration::from_millis(5)).with_timeout(Duration::from_secs(2)),
        ClusterError::Timeout(t) if t == Duration::from_secs(2)
    ));
}

#[test]
fn answers_carry_a_code() {
    for rejection in [
        Rejection::not_leader(),
        Rejection::busy(),
        Rejection::bad_request("no host"),
        Rejection::refused("full"),
    ] {
        let (code, error) = Rejection::to_answer(&Err(rejection.clone()));
        assert_eq!(Rejection::from_answer(code, &error), Some(rejection));
    }
    let (code, error) = Rejection::to_answer(&Ok(()));
    assert_eq!((code, error.as_str()), (ClusterErrorCode::Ok as i32, ""));
    assert_eq!(Rejection::from_answer(code, &error), None);
    // Nothing is mistaken for success: an unknown code, or a text without a code.
    assert_eq!(
        Rejection::from_answer(99, "from the future"),
        Some(Rejection::refused("from the future"))
    );
    assert_eq!(
        Rejection::from_answer(ClusterErrorCode::Ok as i32, "not the leader"),
        Some(Rejection::refused("not the leader"))
    );
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

    let lab = Lab::new("cluster", 4);
    let host = |i: usize| lab.host(i);
    // A tiny compaction interval: the restarted host below must catch up from a snapshot,
    // since the log it missed is gone by then.
    let open = |i: usize| lab.open(i, 5);
    let ports = &lab.ports;
    let t = Duration::from_secs(10);
    let mut c: Vec<Cluster> = (0..3).map(open).collect();
    let token = c[0].token(false, t).expect("token");
    assert_eq!(
        c[0].token(false, t).expect("token"),
        token,
        "stable until rotated"
    );

    // A wrong secret, or a CA that is not the cluster's, is refused, and leaves both sides as
    // they were.
    let (fingerprint, secret) = token["vxnet-".len()..].split_once('-').expect("two parts");
    let wrong_secret = format!("vxnet-{fingerprint}-{}", "0".repeat(64));
    let wrong_ca = format!("vxnet-{}-{secret}", "0".repeat(64));
    let seed0 = format!("127.0.0.1:{}", ports[0]);
    let err = c[1]
        .join(&seed0, &wrong_secret, t)
        .expect_err("wrong secret");
    assert!(
        err.to_string().contains("secret is not this cluster's"),
        "{err}"
    );
    let err = c[1].join(&seed0, &wrong_ca, t).expect_err("wrong CA");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    assert_eq!(c[0].handle().state().hosts().len(), 1);
    assert_eq!(c[1].handle().state().hosts().len(), 1);

    // A rotated secret: the old token no longer admits anyone.
    let rotated = c[0].token(true, t).expect("rotate");
    assert_ne!(rotated, token);
    assert!(rotated.starts_with(&format!("vxnet-{fingerprint}-")));
    let err = c[1].join(&seed0, &token, t).expect_err("old token");
    assert!(
        err.to_string().contains("secret is not this cluster's"),
        "{err}"
    );
    let token = rotated;

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
    let (crate::state::Applied::Connected(a), crate::state::Applied::Connected(b)) = (a, b) else {
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
}

/// In-process hosts on loopback, each with its own data dir under a fresh temporary root.
struct Lab {
    runtime: tokio::runtime::Runtime,
    root: std::path::PathBuf,
    ports: Vec<u16>,
}

impl Lab {
    fn new(tag: &str, hosts: usize) -> Lab {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let root = std::env::temp_dir().join(format!("vxnet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        };
        let ports = (0..hosts).map(|_| free_port()).collect();
        Lab {
            runtime,
            root,
            ports,
        }
    }

    fn host(&self, i: usize) -> Host {
        Host {
            id: format!("{:064x}", i + 1),
            name: format!("host{i}"),
            addr: u32::from(Ipv4Addr::LOCALHOST),
            raft_id: 0,
            cluster_port: u32::from(self.ports[i]),
            seal_salt: 0,
        }
    }

    fn open(&self, i: usize, compact_every: u64) -> Cluster {
        let dir = self.root.join(format!("h{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (tx, _rx) = mpsc::unbounded_channel();
        let options = ClusterOptions {
            max_voters: 3,
            compact_every,
        };
        Cluster::open(
            &dir,
            self.host(i),
            options,
            self.runtime.handle().clone(),
            tx,
        )
        .expect("open")
    }

    /// Opens three hosts and joins the last two to the first.
    fn three_voters(&self, timeout: Duration) -> Vec<Cluster> {
        let mut c: Vec<Cluster> = (0..3).map(|i| self.open(i, 1000)).collect();
        let token = c[0].token(false, timeout).expect("token");
        for joiner in &mut c[1..] {
            let seed = format!("127.0.0.1:{}", self.ports[0]);
            joiner.join(&seed, &token, timeout).expect("join");
        }
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Three voters whose leader is then stopped at once: the two survivors, which still take the
/// stopped one for their leader until the election timeout.
fn survivors_of_a_stopped_leader(lab: &Lab, t: Duration) -> Vec<Cluster> {
    let mut c = lab.three_voters(t);
    c[2].handle().read_barrier(t).expect("read barrier");
    let leader_id = c[0].handle().view().leader_id;
    let leader = c
        .iter()
        .position(|x| x.handle().view().own_id == leader_id)
        .expect("a leader among the three");
    drop(c.remove(leader));
    c
}

/// A write on a follower right after the leader stopped: raft-rs forwards it to the dead
/// leader, where it is lost; the node proposes it again to the next leader, well within the
/// caller's timeout, and it is applied once.
#[test]
fn a_write_right_after_the_leader_stops_commits_under_the_next_leader() {
    use vxnet_proto::{command, Command, CreateNetwork};

    let lab = Lab::new("leader-stop", 3);
    let t = Duration::from_secs(10);
    let c = survivors_of_a_stopped_leader(&lab, t);
    let create = Command {
        kind: Some(command::Kind::CreateNetwork(CreateNetwork {
            id: "cd".repeat(32),
            name: "after".into(),
            mtu: 1450,
            ..Default::default()
        })),
    };
    let started = std::time::Instant::now();
    let created = c[0].handle().propose(create, t).expect("create");
    let took = started.elapsed();
    assert!(matches!(created, crate::state::Applied::NetworkCreated(_)));
    // An election takes 1–2 s (plus the pre-vote round); a lost proposal would take all of t.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    c[1].handle().read_barrier(t).expect("read barrier");
    assert_eq!(c[1].handle().state().networks().len(), 1);
}

#[test]
fn a_read_right_after_the_leader_stops_is_answered_by_the_next_leader() {
    let lab = Lab::new("leader-stop-read", 3);
    let t = Duration::from_secs(10);
    let c = survivors_of_a_stopped_leader(&lab, t);
    let started = std::time::Instant::now();
    c[0].handle()
        .read_barrier(t)
        .expect("read barrier after the leader stopped");
    let took = started.elapsed();
    // An election takes 1–2 s; a ReadIndex lost with the old leader would take all of t.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// raft-rs trusts its peers: a heartbeat with an absurd commit index stops the node that
/// steps it. One from an id outside the configuration, sent by a process with a certificate of
/// the cluster's CA for that id, is dropped instead, and the node goes on committing.
#[test]
fn a_message_from_a_non_member_does_not_stop_the_node() {
    use vxnet_proto::{command, Command, CreateNetwork};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("vxnet-stranger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let host = Host {
        id: "cd".repeat(32),
        name: "lonely".into(),
        addr: u32::from(Ipv4Addr::LOCALHOST),
        raft_id: 0,
        cluster_port: u32::from(port),
        seal_salt: 0,
    };
    let (tx, mut events) = mpsc::unbounded_channel();
    let cluster = Cluster::open(
        &dir,
        host,
        ClusterOptions::default(),
        runtime.handle().clone(),
        tx,
    )
    .expect("open");
    let t = Duration::from_secs(10);
    let create = |name: &str| Command {
        kind: Some(command::Kind::CreateNetwork(CreateNetwork {
            id: name.repeat(32),
            name: name.into(),
            mtu: 1450,
            ..Default::default()
        })),
    };
    cluster
        .handle()
        .propose(create("aa"), t)
        .expect("first write");

    let stranger = send_poison_heartbeat(
        &runtime,
        99,
        cluster.host().raft_id,
        &TestCa::of(cluster.tls.ca()),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    );
    // Connected, authenticated and delivered well within this; a node that stepped it would
    // have died by then.
    std::thread::sleep(Duration::from_secs(1));

    cluster
        .handle()
        .propose(create("bb"), t)
        .expect("a write after the poison");
    while let Ok(event) = events.try_recv() {
        assert_eq!(event, NodeEvent::Applied);
    }
    runtime.block_on(stranger.shutdown());
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
}

/// The same message under the id of a member, with a certificate for that id (only a rogue
/// member can make one: every member holds the CA key) stops raft-rs: the
/// node reports its death instead of leaving a handle that only answers "stopped".
#[test]
fn a_node_that_dies_says_so() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let root = std::env::temp_dir().join(format!("vxnet-dies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        })
        .collect();
    let open = |i: usize| {
        let dir = root.join(format!("h{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let host = Host {
            id: format!("{:064x}", i + 1),
            name: format!("host{i}"),
            addr: u32::from(Ipv4Addr::LOCALHOST),
            raft_id: 0,
            cluster_port: u32::from(ports[i]),
            seal_salt: 0,
        };
        let (tx, events) = mpsc::unbounded_channel();
        let cluster = Cluster::open(
            &dir,
            host,
            ClusterOptions::default(),
            runtime.handle().clone(),
            tx,
        )
        .expect("open");
        (cluster, events)
    };
    let (leader, mut events) = open(0);
    let (mut member, _member_events) = open(1);
    let seed = format!("127.0.0.1:{}", ports[0]);
    member
        .join(
            &seed,
            &leader.token(false, Duration::from_secs(10)).expect("token"),
            Duration::from_secs(10),
        )
        .expect("join");
    let (victim, impersonated) = (leader.host().raft_id, member.host().raft_id);
    let impostor = send_poison_heartbeat(
        &runtime,
        impersonated,
        victim,
        &TestCa::of(leader.tls.ca()),
        SocketAddr::from((Ipv4Addr::LOCALHOST, ports[0])),
    );
    let died = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match events.recv().await {
                    Some(NodeEvent::Died(why)) => return Some(why),
                    Some(NodeEvent::Applied) => continue,
                    None => return None,
                }
            }
        })
        .await
    });
    let why = died
        .expect("no death reported within 5 s")
        .expect("events closed");
    assert!(why.contains("raft-rs panicked"), "{why}");
    runtime.block_on(impostor.shutdown());
    drop(member);
    drop(leader);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn the_tls_identity_persists_and_a_half_written_one_is_replaced() {
    let dir = std::env::temp_dir().join(format!("vxnet-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("cluster-token"), "vxnet-00\n").expect("an old token file");
    let (first, born) = load_or_create_tls(&dir, 7).expect("a new identity");
    assert!(born);
    assert!(
        !dir.join("cluster-token").exists(),
        "the old token file goes"
    );
    let (again, born) = load_or_create_tls(&dir, 7).expect("the same identity");
    assert!(!born);
    assert_eq!(again.ca().fingerprint(), first.ca().fingerprint());
    assert_eq!(again.own_cert(), first.own_cert());
    for file in [
        "cluster-ca.pem",
        "cluster-ca-key.pem",
        "host-key.pem",
        "host-cert.der",
    ] {
        let mode = std::fs::metadata(dir.join(file)).expect(file).permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600,
            "{file}"
        );
    }
    // A crash while saving leaves no host certificate: a new cluster's identity.
    std::fs::remove_file(dir.join("host-cert.der")).expect("rm");
    let (fresh, born) = load_or_create_tls(&dir, 7).expect("a fresh identity");
    assert!(born);
    assert_ne!(fresh.ca().fingerprint(), first.ca().fingerprint());
    // A corrupt CA is an error naming the data dir, never silently replaced.
    std::fs::write(dir.join("cluster-ca.pem"), "junk").expect("corrupt");
    let err = load_or_create_tls(&dir, 7).expect_err("corrupt CA");
    assert!(err.to_string().contains("unusable"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A change larger than one proposal may be is refused before it reaches Raft (the transport
/// caps raft messages by it), and the node goes on.
#[test]
fn a_change_too_large_for_one_proposal_is_refused() {
    use vxnet_proto::{command, Command, CreateNetwork};
    let lab = Lab::new("too-large", 1);
    let cluster = lab.open(0, 1000);
    let t = Duration::from_secs(10);
    let create = |name: String| Command {
        kind: Some(command::Kind::CreateNetwork(CreateNetwork {
            id: "ab".repeat(32),
            name,
            mtu: 1450,
            ..Default::default()
        })),
    };
    let huge = "n".repeat(super::raft::transport::MAX_PROPOSAL);
    let err = cluster
        .handle()
        .propose(create(huge), t)
        .expect_err("too large");
    assert!(
        matches!(err, ClusterError::TooLarge { max, .. } if max == super::raft::transport::MAX_PROPOSAL),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 2);
    cluster
        .handle()
        .propose(create("small".into()), t)
        .expect("a change of a sane size");
}
