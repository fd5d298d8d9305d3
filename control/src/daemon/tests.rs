use std::net::SocketAddr;
use std::time::Duration;

use vxnet_proto::Host;

use super::*;
use crate::cluster::raft::tls::ClusterCa;
use crate::cluster::raft::transport::testing::{send_poison_heartbeat, TestCa};
use crate::cluster::{Cluster, ClusterOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A daemon whose Raft node dies (here: raft-rs panics on a heartbeat with an absurd commit
/// index, sent under the id of a member with a certificate for it, which only a member can
/// mint) stops serving and `run` returns the error, for main to exit 1 with.
#[test]
fn a_dead_raft_node_ends_the_daemon_with_an_error() {
    let root = std::env::temp_dir().join(format!("vxnet-daemon-dies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let cluster_port = free_port();
    let config = DaemonConfig {
        advertise_addr: Ipv4Addr::LOCALHOST,
        data_dir: root.join("a"),
        socket: root.join("a.sock"),
        vxlan_port: free_port(),
        cluster_port,
        name: Some("doomed".into()),
        voters: 3,
        offloads: false,
        kernel: None,
        busy_poll: Duration::ZERO,
        queues: None,
        key_rotation: None,
        force_new_cluster: false,
        dns: Vec::new(),
        docker_plugin: None,
        docker_host: "/nonexistent/docker.sock".into(),
        metrics_addr: None,
        api_group: None,
    };
    let (done_tx, done) = std::sync::mpsc::channel();
    let daemon = {
        let config = config.clone();
        std::thread::spawn(move || {
            let _ = done_tx.send(run(config));
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !config.socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let request = vxnet_proto::Request {
        kind: Some(vxnet_proto::request::Kind::ClusterToken(
            vxnet_proto::ClusterTokenRequest { rotate: false },
        )),
        timeout_ms: 10_000,
    };
    let token = crate::api::call_blocking(&config.socket, &request, Duration::from_secs(10))
        .expect("the token")
        .token;
    let token = token.as_str();
    // Any member holds the CA's key: the impostor below is one that went rogue.
    let read = |name: &str| std::fs::read_to_string(config.data_dir.join(name)).expect(name);
    let ca = TestCa::of(
        &ClusterCa::from_pem(&read("cluster-ca.pem"), &read("cluster-ca-key.pem")).expect("CA"),
    );

    // A second member, so that there is a member id to send the poison under.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir_b = root.join("b");
    std::fs::create_dir_all(&dir_b).expect("mkdir");
    let host_b = Host {
        id: "be".repeat(32),
        name: "member".into(),
        addr: u32::from(Ipv4Addr::LOCALHOST),
        raft_id: 0,
        cluster_port: u32::from(free_port()),
        seal_salt: 0,
    };
    let (tx, _events) = mpsc::unbounded_channel();
    let mut member = Cluster::open(
        &dir_b,
        host_b,
        ClusterOptions::default(),
        runtime.handle().clone(),
        tx,
    )
    .expect("open the member");
    member
        .join(
            &format!("127.0.0.1:{cluster_port}"),
            token,
            Duration::from_secs(10),
        )
        .expect("join");
    let victim = member.handle().view().leader_id;
    let impersonated = member.host().raft_id;
    assert_ne!(victim, impersonated, "the daemon leads");

    let impostor = send_poison_heartbeat(
        &runtime,
        impersonated,
        victim,
        &ca,
        SocketAddr::from((Ipv4Addr::LOCALHOST, cluster_port)),
    );

    let ended = done
        .recv_timeout(Duration::from_secs(10))
        .expect("the daemon still runs 10 s after its Raft node died");
    let error = ended.expect_err("the daemon ended without an error");
    assert!(matches!(error, DaemonError::NodeDied(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("the Raft node stopped: raft-rs panicked"),
        "{error}"
    );
    let _ = daemon.join();
    runtime.block_on(impostor.shutdown());
    drop(member);
    let _ = std::fs::remove_dir_all(root);
}
