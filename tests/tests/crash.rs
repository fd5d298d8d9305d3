//! No half state across crashes (README, "What survives a crash"): a daemon killed between
//! committing a connect and making its veth finishes that connect when it comes back if the
//! container is still there, and undoes it if the container is gone. The crash is exact: the
//! daemon kills itself at the crash point `connect-committed` (`VXNET_CRASH_AT`).

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::scenario::WARMUP_TIMEOUT;
use vxnet_tests::{require_root, wait_for, Lab};

const CRASH_AT: (&str, &str) = ("VXNET_CRASH_AT", "connect-committed");

/// The address of the endpoint called `ns` in `network`, as `host` lists it.
fn endpoint_ip(lab: &Lab, host: usize, network: &str, ns: &str) -> std::net::Ipv4Addr {
    lab.host(host)
        .inspect_network(network)
        .expect("inspect")
        .endpoint(ns)
        .unwrap_or_else(|| panic!("{ns} listed on h{host}"))
        .ipv4
}

/// Runs `connect NETWORK NS` on `host`, whose daemon is armed to crash after the commit, and
/// waits for that crash.
fn connect_and_crash(lab: &Lab, host: usize, network: &str, ns: &str) {
    let out = lab
        .host(host)
        .vxnet_timed(
            &["network", "connect", network, ns],
            Duration::from_secs(10),
        )
        .expect("CLI runs");
    assert!(!out.success(), "the connect was to crash the daemon");
    let status = lab
        .host(host)
        .wait_daemon_exit(Duration::from_secs(10))
        .expect("the daemon dies at the crash point");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

#[test]
fn a_connect_cut_by_a_crash_is_finished_or_undone_at_restart() {
    if !require_root() {
        return;
    }
    // Three hosts: h0 and h2 keep a quorum while h1 is down.
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.52.0.0/24", "crash"]);
    lab.host(1)
        .wait_networks(&["crash"], REPLICATION_TIMEOUT)
        .expect("replicated");
    let p = lab.container(0, "p").expect("container p");
    lab.host(0).connect_auto("crash", &p).expect("connect p");

    lab.kill_daemon(1, libc::SIGTERM).expect("stop h1");
    lab.host(1)
        .start_daemon_with(&[], &[CRASH_AT])
        .expect("h1 armed to crash");
    let k = lab.container(1, "k").expect("container k");
    connect_and_crash(&lab, 1, "crash", &k.ns);
    // The crash came after the commit (the other host lists k) and before the veth.
    lab.host(0)
        .wait_endpoints(
            "crash",
            &[p.ns.as_str(), k.ns.as_str()],
            REPLICATION_TIMEOUT,
        )
        .expect("k's endpoint committed");
    assert!(
        !k.links().expect("k's links").iter().any(|l| l == "eth0"),
        "k has its interface although the daemon died before making it"
    );
    let k_ip = endpoint_ip(&lab, 0, "crash", &k.ns);

    // Back up (armed again, for the next connect): k's connect is finished, with the
    // address it was given, and k reaches p on the other host.
    lab.host(1)
        .start_daemon_with(&[], &[CRASH_AT])
        .expect("h1 restarts");
    wait_for(
        "k to get eth0 with its address",
        REPLICATION_TIMEOUT,
        Duration::from_millis(100),
        || {
            Ok(k.ipv4_addrs()?
                .iter()
                .any(|(ifname, ip, _)| ifname == "eth0" && *ip == k_ip)
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));
    let p_ip = endpoint_ip(&lab, 1, "crash", &p.ns);
    k.wait_reachable(&p_ip.to_string(), WARMUP_TIMEOUT)
        .expect("k -> p after the finished connect");
    assert_eq!(
        endpoint_ip(&lab, 1, "crash", &k.ns),
        k_ip,
        "the endpoint stays as committed"
    );

    // The same crash, but the container is gone before the daemon is back: the connect is
    // undone everywhere and its address is free again.
    let j = lab.container(1, "j").expect("container j");
    connect_and_crash(&lab, 1, "crash", &j.ns);
    lab.host(0)
        .wait_endpoints(
            "crash",
            &[p.ns.as_str(), k.ns.as_str(), j.ns.as_str()],
            REPLICATION_TIMEOUT,
        )
        .expect("j's endpoint committed");
    let status = std::process::Command::new("ip")
        .args(["netns", "del", &j.ns])
        .status()
        .expect("run ip netns del");
    assert!(status.success(), "ip netns del {}", j.ns);
    lab.start_daemon(1).expect("h1 restarts, unarmed");
    for h in [0, 1] {
        lab.host(h)
            .wait_endpoints(
                "crash",
                &[p.ns.as_str(), k.ns.as_str()],
                REPLICATION_TIMEOUT,
            )
            .expect("j's endpoint removed everywhere");
    }
    let intents = lab.host(1).data_dir().join("intents");
    wait_for(
        "h1's connect intents to be settled",
        REPLICATION_TIMEOUT,
        Duration::from_millis(100),
        || Ok((std::fs::read_dir(&intents)?.count() == 0).then_some(())),
    )
    .expect("no intent left");
}
