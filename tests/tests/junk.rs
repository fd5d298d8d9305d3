//! Garbage on UDP 4789 must be dropped and counted (`vxnet stats`), never crash the daemon or
//! reach a container (README, the dataplane overview at the top: "every malformed or unwanted
//! packet is dropped and counted").

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use vxnet_tests::lab::topology::UNDERLAY_GATEWAY;
use vxnet_tests::scenario::{self, C1_IP, C2_IP, NET, VNI};
use vxnet_tests::vxnet_json::{drop_counts, parse_fdb, sum_all, sum_matching};
use vxnet_tests::wire::{self, VXLAN_PORT};
use vxnet_tests::{require_root, wait_for, Host};

const PER_KIND: u64 = 5;

/// Reason names are the daemon's choice; these are the words they can reasonably contain.
const TRUNCATED: &[&str] = &["truncat", "short"];
const FLAGS: &[&str] = &["flag"];
const UNKNOWN_VNI: &[&str] = &["vni"];
const UNKNOWN_SOURCE: &[&str] = &["vtep", "source", "peer"];
const OVERSIZE: &[&str] = &["oversize", "too_big", "toobig", "mtu", "giant"];

fn drops(host: &Host) -> BTreeMap<String, u64> {
    let out = host.vxnet_ok(&["stats", "--format", "json"]);
    drop_counts(&out).expect("stats JSON")
}

/// A deterministic byte soup (no rand crate needed): xorshift.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn junk_on_4789_is_dropped_and_counted() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let lab = &pair.lab;
    let target = lab.host(0);
    let dst = SocketAddrV4::new(target.addr(), VXLAN_PORT);
    let before = drops(target);

    let junk_mac = [0x02, 0x99, 0, 0, 0, 0x01];
    let c1_mac = wire::mac_for_ip(C1_IP.parse().expect("ip"));
    let valid_inner = wire::arp_request(
        junk_mac,
        Ipv4Addr::new(10, 10, 0, 99),
        C1_IP.parse().expect("ip"),
    );

    // Sent from the peer host's namespace, so the source is a legitimate VTEP and the only
    // thing wrong with each datagram is the one thing the test means.
    let truncated: Vec<Vec<u8>> = [1usize, 3, 4, 6, 7]
        .iter()
        .map(|&n| wire::vxlan_header(VNI)[..n].to_vec())
        .collect();
    let bad_flags: Vec<Vec<u8>> = [0x00u8, 0x0c, 0x80, 0x09, 0xff]
        .iter()
        .map(|&flags| {
            let mut d = wire::vxlan_datagram(VNI, &valid_inner);
            d[0] = flags;
            d
        })
        .collect();
    let unknown_vni: Vec<Vec<u8>> = (0..PER_KIND)
        .map(|i| wire::vxlan_datagram(9000 + u32::try_from(i).expect("small"), &valid_inner))
        .collect();
    // A frame far above the network MTU (1450 + 14): fragmented on the underlay, reassembled by
    // the receiving kernel, and must still be refused by the daemon.
    let oversize: Vec<Vec<u8>> = (0..PER_KIND)
        .map(|i| {
            let payload = noise(i + 100, 3000);
            let frame = wire::ethernet_frame(c1_mac, junk_mac, 0x88b5, &payload);
            wire::vxlan_datagram(VNI, &frame)
        })
        .collect();
    let random: Vec<Vec<u8>> = (0..PER_KIND)
        .map(|i| {
            let len = usize::try_from(16 + i * 37).expect("small");
            noise(i + 1, len)
        })
        .collect();
    let peer_ns = lab.host(1).ns().to_string();
    for (what, batch) in [
        ("truncated", truncated),
        ("bad flags", bad_flags),
        ("unknown VNI", unknown_vni),
        ("oversize", oversize),
        ("random", random),
    ] {
        lab.send_udp(&peer_ns, dst, batch)
            .unwrap_or_else(|e| panic!("sending {what}: {e:#}"));
    }
    // A perfectly valid datagram for net1 from the underlay's own address, which is neither a
    // cluster host nor a static peer.
    let not_peer: Vec<Vec<u8>> = (0..PER_KIND)
        .map(|_| wire::vxlan_datagram(VNI, &valid_inner))
        .collect();
    lab.send_udp(lab.underlay_ns(), dst, not_peer)
        .expect("sending from a non-peer");
    assert_ne!(UNDERLAY_GATEWAY, lab.host(1).addr());

    let kinds = 6 * PER_KIND;
    let after = wait_for(
        "the drop counters to count every junk datagram",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let now = drops(target);
            Ok((sum_all(&now) >= sum_all(&before) + kinds).then_some(now))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nbefore: {before:?}\nafter: {:?}", drops(target)));

    let rose = |needles: &[&str]| {
        sum_matching(&after, needles).saturating_sub(sum_matching(&before, needles))
    };
    let report = format!("before: {before:?}\nafter: {after:?}");
    assert!(
        rose(TRUNCATED) >= PER_KIND,
        "truncated not counted\n{report}"
    );
    assert!(rose(FLAGS) >= PER_KIND, "bad flags not counted\n{report}");
    assert!(
        rose(UNKNOWN_VNI) >= PER_KIND,
        "unknown VNI not counted\n{report}"
    );
    assert!(
        rose(UNKNOWN_SOURCE) >= PER_KIND,
        "non-peer source not counted\n{report}"
    );
    assert!(rose(OVERSIZE) >= PER_KIND, "oversize not counted\n{report}");

    // Still alive, still forwarding, and nothing was learned from the junk.
    assert!(
        target.daemon_running(),
        "daemon died:\n{}",
        target.log_tail(40)
    );
    let fdb = parse_fdb(&target.vxnet_ok(&["fdb", NET, "--format", "json"])).expect("fdb JSON");
    let junk = wire::format_mac(junk_mac);
    let macs: Vec<String> = fdb.into_iter().map(|e| e.mac).collect();
    assert!(!macs.contains(&junk), "MAC learned from junk: {macs:?}");
    let s = pair.c1.ping(C2_IP, 3).expect("ping after junk");
    assert_eq!(s.received, 3, "forwarding broken after junk: {s:?}");
    // The junk ARP "who has c1" must not have reached c1: it has no neighbour entry for .99.
    assert_eq!(
        pair.c1.neighbour_mac("10.10.0.99").expect("ip neigh"),
        None,
        "a dropped frame reached the container"
    );
}
