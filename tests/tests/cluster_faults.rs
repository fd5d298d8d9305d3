//! A cluster under failure (README, "Clustering"; every command gives up within `--timeout`):
//! the leader killed (and a write right after it), a host cut off the underlay, every daemon restarted. Writes need a quorum
//! and fail in time without one; nothing acknowledged is lost; a host that was away catches up.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vxnet_tests::lab::cluster::{WriteRetry, CLUSTER_TIMEOUT, REPLICATION_TIMEOUT};
use vxnet_tests::lab::daemon::is_one_error_line;
use vxnet_tests::scenario::WARMUP_TIMEOUT;
use vxnet_tests::{require_root, Lab};

/// Endpoint name → address, as `host` shows `network`.
fn endpoint_map(lab: &Lab, host: usize, network: &str) -> BTreeMap<String, Ipv4Addr> {
    lab.host(host)
        .inspect_network(network)
        .expect("inspect")
        .endpoints
        .into_iter()
        .map(|e| (e.name, e.ipv4))
        .collect()
}

#[test]
fn killed_leader_is_replaced_within_5s_and_catches_up_on_restart() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    let all = [0, 1, 2];
    // Acknowledged before the kill: two networks made on different hosts, one endpoint per host.
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.60.0.0/24", "before-a"]);
    lab.host(2).vxnet_ok(&["network", "create", "before-b"]);
    for h in all {
        lab.host(h)
            .wait_networks(&["before-a", "before-b"], REPLICATION_TIMEOUT)
            .expect("replicated");
    }
    let containers = lab
        .container_per_host("before-a", &all)
        .expect("a container per host");
    let names: Vec<&str> = containers.iter().map(|(c, _)| c.ns.as_str()).collect();
    lab.host(0)
        .wait_endpoints("before-a", &names, REPLICATION_TIMEOUT)
        .expect("endpoints replicated");
    let ids: BTreeMap<&str, String> = ["before-a", "before-b"]
        .into_iter()
        .map(|n| (n, lab.host(0).inspect_network(n).expect("inspect").id))
        .collect();

    let leader = lab.leader(&all).expect("a leader");
    let survivors: Vec<usize> = all.into_iter().filter(|&h| h != leader).collect();
    lab.kill_daemon(leader, libc::SIGKILL)
        .expect("kill -9 the leader");
    let killed = Instant::now();

    // Retry with a short per-command timeout, alternating survivors, each attempt under a new
    // name.
    let retry = WriteRetry {
        attempt_timeout: Duration::from_secs(1),
        pause: Duration::from_millis(50),
        limit: Duration::from_secs(5),
    };
    let write = lab
        .create_network_retrying(&survivors, |n| format!("after-{n}"), killed, retry)
        .unwrap_or_else(|e| {
            panic!(
                "no network create succeeded on a survivor within 5 s of killing h{leader}: \
                 {e:#}\n{}",
                lab.daemon_logs(30)
            )
        });
    let (after, took) = (write.name, write.after);
    assert!(
        took <= Duration::from_secs(5),
        "first successful write {took:?} after the kill"
    );
    let new_leader = lab
        .wait_leader(&survivors, CLUSTER_TIMEOUT)
        .expect("survivors agree on a new leader");
    assert_ne!(new_leader, leader);

    let expected = ["before-a", "before-b", after.as_str()];
    for &h in &survivors {
        lab.host(h)
            .wait_networks(&expected, REPLICATION_TIMEOUT)
            .expect("survivors have everything acknowledged");
    }
    lab.start_daemon(leader)
        .expect("the killed host starts again on its data dir");
    lab.host(leader)
        .wait_networks(&expected, REPLICATION_TIMEOUT)
        .expect("the restarted host catches up");
    for h in all {
        for (name, id) in &ids {
            let net = lab.host(h).inspect_network(name).expect("inspect");
            assert_eq!(&net.id, id, "{name} has another ID on h{h}");
        }
        let eps = lab
            .host(h)
            .wait_endpoints("before-a", &names, REPLICATION_TIMEOUT)
            .expect("endpoints kept");
        for (c, ip) in &containers {
            assert_eq!(eps.endpoint(&c.ns).map(|e| e.ipv4), Some(*ip), "h{h}");
        }
    }
    // The restarted host rebuilt its dataplane: its container reaches a survivor's.
    let (from, _) = &containers[leader];
    let (_, to_ip) = &containers[survivors[0]];
    from.wait_reachable(&to_ip.to_string(), WARMUP_TIMEOUT)
        .expect("forwarding on the restarted host");
}

/// The write a user runs right after the leader died: raft-rs forwards it to the dead leader,
/// where it is lost, so the survivor must propose it again to the next leader, at once and
/// only once, rather than wait out the default `--timeout` (10 s).
#[test]
fn a_write_right_after_a_leader_kill_commits_under_the_next_leader() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    let all = [0, 1, 2];
    let leader = lab.leader(&all).expect("a leader");
    let survivors: Vec<usize> = all.into_iter().filter(|&h| h != leader).collect();
    lab.kill_daemon(leader, libc::SIGKILL)
        .expect("kill -9 the leader");
    let killed = Instant::now();
    let out = lab
        .host(survivors[0])
        .vxnet(&["network", "create", "at-once"]);
    let took = killed.elapsed();
    assert!(
        out.status.success(),
        "network create on h{} right after killing h{leader} failed after {took:?}: {}\n{}",
        survivors[0],
        String::from_utf8_lossy(&out.stderr).trim(),
        lab.daemon_logs(30)
    );
    // An election takes 1–2 s; a proposal left lost would take the whole --timeout.
    eprintln!("network create after the leader kill took {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    for &h in &survivors {
        lab.host(h)
            .wait_networks(&["at-once"], REPLICATION_TIMEOUT)
            .expect("replicated");
        let names = lab.host(h).network_names().expect("network ls");
        assert_eq!(names, ["at-once"], "h{h}: created once");
    }
}

#[test]
fn host_cut_off_the_underlay_fails_writes_in_time_and_catches_up() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    let all = [0, 1, 2];
    let leader = lab.leader(&all).expect("a leader");
    // Cut a follower: the other two keep the leader and a quorum, so they must keep working
    // without any election.
    let cut = all.into_iter().find(|&h| h != leader).expect("a follower");
    let majority: Vec<usize> = all.into_iter().filter(|&h| h != cut).collect();
    lab.host(leader)
        .vxnet_ok(&["network", "create", "--subnet", "10.70.0.0/24", "pre"]);
    lab.host(cut)
        .wait_networks(&["pre"], REPLICATION_TIMEOUT)
        .expect("replicated before the cut");

    let k = lab.container(cut, "k").expect("container k");
    lab.host(cut)
        .connect_auto("pre", &k)
        .expect("connect k before the cut");

    lab.host(cut).cut_underlay().expect("cut the link");
    // A disconnect without quorum fails and leaves the container as it was: the state still
    // lists it, so its interface stays.
    let out = lab
        .host(cut)
        .vxnet_timed(
            &["network", "disconnect", "pre", &k.ns],
            Duration::from_secs(3),
        )
        .expect("CLI runs");
    assert!(!out.success(), "a disconnect without quorum must fail");
    assert!(
        k.links().expect("k's links").iter().any(|l| l == "eth0"),
        "a failed disconnect must leave k its interface"
    );
    let out = lab
        .host(cut)
        .vxnet_timed(&["network", "create", "while-cut"], Duration::from_secs(3))
        .expect("CLI runs");
    assert!(
        !out.success(),
        "a write without quorum must fail; stdout {:?}",
        out.stdout()
    );
    assert!(
        out.elapsed <= Duration::from_secs(4),
        "--timeout 3s, yet the write took {:?}",
        out.elapsed
    );
    assert!(
        is_one_error_line(&out.stderr()),
        "one `vxnet: ` line expected, got {:?}",
        out.stderr()
    );

    // Reads that decide (here `fdb`, as `connect`, `disconnect`, `rm` and `prune` do) are
    // fresh: the cut host says it cannot answer instead of answering from what it last saw.
    let out = lab
        .host(cut)
        .vxnet_timed(&["fdb", "pre"], Duration::from_secs(3))
        .expect("CLI runs");
    assert!(
        !out.success() && is_one_error_line(&out.stderr()),
        "a read without quorum must fail with one line; stdout {:?}, stderr {:?}",
        out.stdout(),
        out.stderr()
    );
    assert!(out.elapsed <= Duration::from_secs(4), "{:?}", out.elapsed);

    // Bounded queues: while one request waits for a quorum that is not there, a flood of
    // others does not pile up behind it; those beyond the queue are told "busy" at once.
    let flood: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..100)
            .map(|_| {
                s.spawn(|| {
                    lab.host(cut)
                        .vxnet_timed(&["network", "ls"], Duration::from_secs(3))
                        .expect("CLI runs")
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let busy: Vec<_> = flood
        .iter()
        .filter(|o| o.stderr().contains("busy"))
        .collect();
    assert!(
        !busy.is_empty() && busy.iter().all(|o| o.elapsed < Duration::from_millis(1500)),
        "some of 100 requests at once must be answered busy, at once: {:?}",
        flood
            .iter()
            .map(|o| (o.stderr(), o.elapsed))
            .collect::<Vec<_>>()
    );
    for o in &flood {
        assert!(
            !o.success() && is_one_error_line(&o.stderr()),
            "{:?}",
            o.stderr()
        );
    }

    // The majority does not notice beyond a missing member.
    lab.host(majority[0])
        .vxnet_ok(&["network", "create", "--subnet", "10.71.0.0/24", "during"]);
    lab.host(majority[1])
        .wait_networks(&["during"], REPLICATION_TIMEOUT)
        .expect("replicated among the majority");
    let m = lab.container(majority[1], "m").expect("container m");
    let m_ip = lab
        .host(majority[1])
        .connect_auto("during", &m)
        .expect("connect on the majority");
    lab.host(majority[0])
        .wait_endpoints("during", &[m.ns.as_str()], REPLICATION_TIMEOUT)
        .expect("endpoint replicated among the majority");

    lab.host(cut).restore_underlay().expect("link back up");
    lab.host(cut)
        .wait_networks(&["pre", "during"], REPLICATION_TIMEOUT)
        .expect("the cut host catches up");
    lab.host(cut)
        .wait_endpoints("during", &[m.ns.as_str()], REPLICATION_TIMEOUT)
        .expect("and learns the endpoint made meanwhile");
    // Fully back: it can write, and its containers reach the majority's.
    let c = lab.container(cut, "c").expect("container c");
    lab.host(cut)
        .connect_auto("during", &c)
        .expect("connect on the host that was cut");
    c.wait_reachable(&m_ip.to_string(), WARMUP_TIMEOUT)
        .expect("c -> m after the link came back");
}

#[test]
fn restarting_every_daemon_keeps_networks_endpoints_and_forwarding() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    let all = [0, 1, 2];
    lab.host(2)
        .vxnet_ok(&["network", "create", "--subnet", "10.80.0.0/24", "persist"]);
    lab.host(0).vxnet_ok(&["network", "create", "spare"]);
    for h in all {
        lab.host(h)
            .wait_networks(&["persist", "spare"], REPLICATION_TIMEOUT)
            .expect("replicated");
    }
    let containers = lab
        .container_per_host("persist", &all)
        .expect("a container per host");
    let names: Vec<&str> = containers.iter().map(|(c, _)| c.ns.as_str()).collect();
    for h in all {
        lab.host(h)
            .wait_endpoints("persist", &names, REPLICATION_TIMEOUT)
            .expect("endpoints replicated");
    }
    for (i, (from, _)) in containers.iter().enumerate() {
        let (_, to_ip) = &containers[(i + 1) % containers.len()];
        from.wait_reachable(&to_ip.to_string(), WARMUP_TIMEOUT)
            .expect("pings before the restart");
    }
    let ids: Vec<String> = ["persist", "spare"]
        .into_iter()
        .map(|n| lab.host(0).inspect_network(n).expect("inspect").id)
        .collect();
    let endpoints_before = endpoint_map(&lab, 0, "persist");

    for h in all {
        let status = lab.kill_daemon(h, libc::SIGTERM).expect("SIGTERM");
        assert!(
            status.is_some(),
            "h{h} ignored SIGTERM:\n{}",
            lab.host(h).log_tail(30)
        );
    }
    lab.start_daemons(&all).expect("start all three again");
    lab.wait_leader(&all, CLUSTER_TIMEOUT)
        .expect("a leader after the restart");
    lab.wait_members(&all, &all, CLUSTER_TIMEOUT)
        .expect("membership kept");
    for h in all {
        assert_eq!(
            lab.host(h).network_names().expect("ls"),
            vec!["persist".to_string(), "spare".to_string()],
            "networks on h{h} after the restart"
        );
        for (n, id) in ["persist", "spare"].into_iter().zip(&ids) {
            assert_eq!(&lab.host(h).inspect_network(n).expect("inspect").id, id);
        }
        assert_eq!(
            endpoint_map(&lab, h, "persist"),
            endpoints_before,
            "endpoints on h{h} after the restart"
        );
    }
    for (from, _) in &containers {
        for (to, to_ip) in &containers {
            if from == to {
                continue;
            }
            let to_ip = to_ip.to_string();
            from.wait_reachable(&to_ip, WARMUP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{} -> {}: {e:#}", from.name, to.name));
            assert_eq!(from.ping(&to_ip, 2).expect("ping").received, 2);
        }
    }
}
