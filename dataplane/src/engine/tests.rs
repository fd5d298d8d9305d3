//! The engine's receive group: several workers share one port, and a second engine cannot.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use super::*;

/// The port `socket` is bound to.
fn port_of(socket: &UdpSocket) -> u16 {
    socket.local_addr().map_or(0, |a| a.port())
}

#[test]
fn the_workers_share_one_port_and_a_second_engine_is_refused() {
    let mut config = EngineConfig::new(Ipv4Addr::LOCALHOST, 0);
    config.queues = 3;
    let group = receive_group(&mut config).expect("a group on a free port");
    assert_eq!(config.queues, 3);
    assert_eq!(group.len(), 3);
    let port = port_of(&group[0]);
    assert!(group.iter().all(|s| port_of(s) == port), "one port for all");
    // Another engine on that address, with one worker or several, is refused as before.
    for queues in [1, 2] {
        let mut other = EngineConfig::new(Ipv4Addr::LOCALHOST, port);
        other.queues = queues;
        let refused = receive_group(&mut other).expect_err("the port is held");
        assert_eq!(refused.kind(), io::ErrorKind::AddrInUse, "{queues} workers");
    }
    // Every socket of the group is one a sender reaches (the kernel spreads by flow).
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    for _ in 0..64 {
        // A fresh source port per datagram: another flow each time.
        let from = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("sender");
        from.send_to(b"x", to).expect("send");
    }
    let mut seen = 0;
    for socket in &group {
        socket.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 8];
        if socket.recv_from(&mut buf).is_ok() {
            seen += 1;
        }
    }
    assert!(seen >= 2, "64 flows reached only {seen} of the 3 sockets");
}

#[test]
fn a_kernel_limit_below_reuseport_gives_one_worker() {
    let mut config = EngineConfig::new(Ipv4Addr::LOCALHOST, 0);
    config.queues = 4;
    config.kernel = Some(KernelVersion::new(3, 8));
    let group = receive_group(&mut config).expect("one socket");
    assert_eq!((group.len(), config.queues), (1, 1));
}

#[test]
fn stopping_wakes_the_receive_threads_without_waiting_for_a_datagram() {
    let mut config = EngineConfig::new(Ipv4Addr::LOCALHOST, 0);
    config.queues = 3;
    let engine = Engine::start(config).expect("an engine on a free port");
    // Let every receive thread fall asleep in `recvmmsg` on its quiet socket.
    std::thread::sleep(Duration::from_millis(20));
    let stopping = Instant::now();
    engine.shutdown();
    let took = stopping.elapsed();
    // Without the wake, each thread sleeps until its read timeout (`RX_TICK`) runs out.
    assert!(
        took < RX_TICK / 2,
        "stopping took {took:?}: the receive threads waited for their read timeout"
    );
}
