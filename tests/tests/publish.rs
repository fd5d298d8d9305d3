//! Reaching in (README, "Reaching out and in"): `network connect --publish` makes a
//! container's TCP and UDP ports reachable at its host's address — from outside, from another
//! host and from the host itself — and nowhere else once it is disconnected; a host port that
//! is taken is refused with one `vxnet:` line and nothing made; publishing survives a restart.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::lab::daemon::is_one_error_line;
use vxnet_tests::lab::topology::UNDERLAY_GATEWAY;
use vxnet_tests::netns::in_netns_thread;
use vxnet_tests::who::{ask_tcp, ask_udp, serve_tcp, serve_udp};
use vxnet_tests::{require_root, wait_for, Lab};

fn any(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
}

#[test]
fn published_ports_reach_the_container_and_taken_ports_are_refused() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(2).expect("two hosts in one cluster");
    let (h0, h1) = (lab.host(0), lab.host(1));
    h0.vxnet_ok(&["network", "create", "--subnet", "10.79.0.0/24", "web"]);
    h1.wait_networks(&["web"], REPLICATION_TIMEOUT)
        .expect("network replicated");

    let w0 = lab.container(0, "w0").expect("container");
    serve_tcp(&w0.ns, any(80)).expect("TCP server in w0");
    serve_udp(&w0.ns, any(5353)).expect("UDP server in w0");
    h0.vxnet_ok(&[
        "network",
        "connect",
        "--ip",
        "10.79.0.10",
        "-p",
        "8080:80",
        "--publish",
        "5353:5353/udp",
        "web",
        &w0.ns,
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&h1.vxnet_ok(&["network", "inspect", "web"])).expect("JSON");
    let container = inspect[0]["Containers"]
        .as_object()
        .and_then(|c| c.values().next())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        container["Ports"],
        serde_json::json!(["0.0.0.0:8080:80/tcp", "0.0.0.0:5353:5353/udp"]),
        "{inspect}"
    );

    let tcp = SocketAddrV4::new(h0.addr(), 8080);
    let udp = SocketAddrV4::new(h0.addr(), 5353);
    let reached = |ns: &str| {
        wait_for(
            "the published port answering",
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(100),
            || Ok(ask_tcp(ns, tcp).ok()),
        )
    };
    // From outside, the container sees the client's own address.
    assert_eq!(
        reached(lab.underlay_ns()).expect("outside → published TCP port"),
        UNDERLAY_GATEWAY
    );
    assert_eq!(
        ask_udp(lab.underlay_ns(), udp).expect("outside → published UDP port"),
        UNDERLAY_GATEWAY
    );
    // From another host of the cluster, and from the host itself.
    assert_eq!(ask_tcp(h1.ns(), tcp).expect("h1 → h0:8080"), h1.addr());
    ask_tcp(h0.ns(), tcp).expect("h0 → its own address:8080");
    ask_tcp(h0.ns(), SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)).expect("h0 → 127.0.0.1:8080");

    // The same host port again: refused, nothing made.
    let w1 = lab.container(0, "w1").expect("container");
    let again = h0.vxnet(&["network", "connect", "-p", "8080:81", "web", &w1.ns]);
    assert!(
        !again.status.success(),
        "a second publish of 8080/tcp was accepted"
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(is_one_error_line(&err) && err.contains("8080/tcp"), "{err}");
    // A port some other program on the host holds: refused too.
    let held = in_netns_thread(h0.ns(), || Ok(TcpListener::bind(any(9090))?)).expect("hold 9090");
    let taken = h0.vxnet(&["network", "connect", "-p", "9090:80", "web", &w1.ns]);
    assert!(
        !taken.status.success(),
        "a port held by another program was published"
    );
    let err = String::from_utf8_lossy(&taken.stderr);
    assert!(is_one_error_line(&err) && err.contains("9090/tcp"), "{err}");
    drop(held);
    assert!(
        w1.links().expect("links").iter().all(|l| l == "lo"),
        "a refused connect left an interface in w1: {:?}",
        w1.links()
    );

    // Through a restart of the daemon.
    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    lab.start_daemon(0).expect("restart h0");
    reached(lab.underlay_ns()).expect("the published port after a restart");

    // Disconnected: the port is closed.
    h0.vxnet_ok(&["network", "disconnect", "web", &w0.ns]);
    wait_for(
        "the published port closing",
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(100),
        || Ok(ask_tcp(lab.underlay_ns(), tcp).is_err().then_some(())),
    )
    .expect("the port closes after disconnect");
}
