//! Multicast across hosts (README, "Reaching out and in"): a sender on one host reaches
//! receivers that joined the group on two other hosts — something Docker's overlay never did.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::netns::in_netns_thread;
use vxnet_tests::{require_root, Lab};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const PORT: u16 = 5007;
const PAYLOAD: &[u8] = b"vxnet multicast";

#[test]
fn a_multicast_sender_reaches_receivers_on_two_other_hosts() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.81.0.0/24", "mc"]);
    for h in [1, 2] {
        lab.host(h)
            .wait_networks(&["mc"], REPLICATION_TIMEOUT)
            .expect("network replicated");
    }
    let mut containers = Vec::new();
    for h in 0..3 {
        let c = lab.container(h, &format!("m{h}")).expect("container");
        let ip = format!("10.81.0.{}", 10 + h);
        lab.host(h).connect("mc", &c, &ip).expect("connect");
        containers.push((c, ip));
    }

    // Receivers join the group on their eth0 and wait (bounded) for the payload.
    let (got_tx, got_rx) = mpsc::channel();
    for (c, ip) in &containers[1..] {
        let (ns, ip, got) = (
            c.ns.clone(),
            ip.parse::<Ipv4Addr>().expect("ip"),
            got_tx.clone(),
        );
        let (joined_tx, joined_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let outcome = in_netns_thread(&ns, move || {
                let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT))?;
                socket.join_multicast_v4(&GROUP, &ip)?;
                socket.set_read_timeout(Some(Duration::from_secs(8)))?;
                let _ = joined_tx.send(());
                let mut buf = [0u8; 64];
                loop {
                    let (n, from) = socket.recv_from(&mut buf)?;
                    if &buf[..n] == PAYLOAD {
                        return Ok(from);
                    }
                }
            });
            let _ = got.send((ns, outcome.map_err(|e| format!("{e:#}"))));
        });
        joined_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("receiver joined the group");
    }
    drop(got_tx);

    // The sender repeats for up to 4 s, so a report still in flight does not lose the test.
    let sender_ns = containers[0].0.ns.clone();
    let sender_ip: Ipv4Addr = containers[0].1.parse().expect("ip");
    in_netns_thread(&sender_ns, move || {
        let socket = UdpSocket::bind(SocketAddrV4::new(sender_ip, 0))?;
        // Out of eth0: the default route (the gateway) is there.
        socket.set_multicast_ttl_v4(1)?;
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            socket.send_to(PAYLOAD, SocketAddrV4::new(GROUP, PORT))?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })
    .expect("send to the group");

    let received: Vec<_> = got_rx.iter().collect();
    assert_eq!(received.len(), 2, "{received:?}");
    for (ns, outcome) in received {
        let from = outcome.unwrap_or_else(|e| panic!("{ns} got nothing from the group: {e}"));
        assert_eq!(from.ip(), std::net::IpAddr::V4(sender_ip), "{ns}");
    }
}
