//! The lab's cluster-test helpers on what works without a cluster (static peers, one-host
//! clusters): FDB and inspect parsing against a real daemon, `connect` without `--ip`, cutting
//! a host off the underlay, timed CLI calls, and starting several daemons at once. The cluster
//! tests (`cluster_*.rs`) build on these, so a failure here points at the lab, not at Raft.

use std::time::Duration;

use vxnet_tests::lab::daemon::is_one_error_line;
use vxnet_tests::scenario::{self, C1_IP, C2_IP, NET};
use vxnet_tests::wire::mac_string_for_ip;
use vxnet_tests::{require_root, Lab};

#[test]
fn fdb_and_inspect_of_a_static_peer_pair() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let h0 = pair.lab.host(0);
    let c1_mac = mac_string_for_ip(C1_IP.parse().expect("literal"));
    let c2_mac = mac_string_for_ip(C2_IP.parse().expect("literal"));

    let fdb = h0.fdb(NET).expect("fdb on h0");
    let local = fdb
        .iter()
        .find(|e| e.mac == c1_mac)
        .unwrap_or_else(|| panic!("c1's MAC not in h0's fdb: {fdb:?}"));
    assert_eq!(local.vtep, None, "a local endpoint has no VTEP: {local:?}");
    // After the warm-up ping, c2's MAC is known behind h1 (learned: static peers share no state).
    let remote = fdb
        .iter()
        .find(|e| e.mac == c2_mac)
        .unwrap_or_else(|| panic!("c2's MAC not in h0's fdb after traffic: {fdb:?}"));
    assert_eq!(remote.vtep, Some(pair.lab.host(1).addr()), "{remote:?}");
    assert!(h0.fdb_has_mac(NET, &c2_mac.to_uppercase()).expect("fdb"));
    assert!(!h0.fdb_has_mac(NET, "02:42:0a:0a:00:63").expect("fdb"));

    let net = h0.inspect_network(NET).expect("inspect");
    assert_eq!(net.name, NET);
    assert_eq!(net.vni, u64::from(scenario::VNI));
    assert_eq!(net.subnet, scenario::SUBNET);
    assert_eq!(net.id.len(), 64, "Id is 64 hex digits: {}", net.id);
    let ep = net
        .endpoint(&pair.c1.ns)
        .expect("c1 listed by its namespace name");
    assert_eq!(ep.ipv4.to_string(), C1_IP);
    assert_eq!(ep.mac, c1_mac);
    assert_eq!(h0.network_names().expect("ls"), vec![NET.to_string()]);
}

#[test]
fn connect_without_ip_takes_the_lowest_free_address() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).expect("one vxnet host");
    let h0 = lab.host(0);
    h0.vxnet_ok(&["network", "create", "--subnet", "10.30.0.0/24", "auto"]);
    let a = lab.container(0, "a").expect("a");
    let b = lab.container(0, "b").expect("b");
    let ip_a = h0.connect_auto("auto", &a).expect("connect a");
    let ip_b = h0.connect_auto("auto", &b).expect("connect b");
    // The lowest free address, and the gateway .1 is the network's own, never an endpoint's.
    assert_eq!(ip_a.to_string(), "10.30.0.2");
    assert_eq!(ip_b.to_string(), "10.30.0.3");
    h0.vxnet_ok(&["network", "disconnect", "auto", &a.ns]);
    let c = lab.container(0, "c").expect("c");
    assert_eq!(h0.connect_auto("auto", &c).expect("connect c"), ip_a);
}

#[test]
fn a_cut_host_is_unreachable_until_restored() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let h1 = pair.lab.host(1);
    assert!(h1.underlay_up().expect("link state"));
    h1.cut_underlay().expect("cut h1");
    assert!(!h1.underlay_up().expect("link state"));
    let cut = pair.c1.ping(C2_IP, 2).expect("ping runs");
    assert_eq!(
        cut.received, 0,
        "c2 answered through a cut underlay: {cut:?}"
    );
    // The daemon itself keeps running: a pulled cable, not a crash.
    assert!(h1.daemon_running());
    h1.cut_underlay().expect("cutting twice is harmless");
    h1.restore_underlay().expect("restore h1");
    assert!(h1.underlay_up().expect("link state"));
    pair.c1
        .wait_reachable(C2_IP, scenario::WARMUP_TIMEOUT)
        .expect("reachable again after the link came back");
}

#[test]
fn timed_cli_calls_and_starting_daemons_together() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).expect("two vxnet hosts");
    let ok = lab
        .host(0)
        .vxnet_timed(&["network", "ls"], Duration::from_secs(2))
        .expect("ls runs");
    assert!(ok.success(), "{}", ok.stderr());

    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    lab.kill_daemon(1, libc::SIGTERM).expect("stop h1");
    let down = lab
        .host(0)
        .vxnet_timed(&["network", "ls"], Duration::from_secs(2))
        .expect("ls runs");
    assert!(!down.success(), "ls with no daemon must fail");
    assert!(is_one_error_line(&down.stderr()), "{:?}", down.stderr());
    assert!(down.elapsed < Duration::from_secs(3), "{:?}", down.elapsed);

    lab.start_daemons(&[0, 1]).expect("start both");
    assert!(lab.host(0).daemon_running() && lab.host(1).daemon_running());
    assert!(lab.host(1).network_names().expect("ls").is_empty());
}
