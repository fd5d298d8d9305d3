//! Membership that cannot wedge (README, "Clustering"): a joiner starts as a learner and only
//! votes once it has caught up, so a leader that cannot reach it keeps its quorum; `cluster
//! remove` evicts a dead host with its endpoints and a learner takes its vote; `daemon
//! --force-new-cluster` turns a lone survivor into a cluster of its own; a copied data dir
//! is refused at join.

use std::time::{Duration, Instant};

use vxnet_tests::lab::cluster::{CLUSTER_TIMEOUT, REPLICATION_TIMEOUT};
use vxnet_tests::lab::daemon::is_one_error_line;
use vxnet_tests::vxnet_json::Role;
use vxnet_tests::{require_root, wait_for, Lab};

/// A table of our own in a lab host's namespace, so that removing it removes exactly the rule.
const BLOCK_TABLE: &str = "vxnet_test_block";

/// Drops what host `from` sends to host `to`'s cluster port (the connections `from` opens to
/// `to`: Raft messages from `from` to `to`), and nothing else.
fn block_cluster_traffic(lab: &Lab, from: usize, to: usize) {
    let rule = format!(
        "add table inet {BLOCK_TABLE}\n\
         add chain inet {BLOCK_TABLE} out {{ type filter hook output priority 0; }}\n\
         add rule inet {BLOCK_TABLE} out ip daddr {} tcp dport 7946 drop\n",
        lab.host(to).addr()
    );
    lab.host(from)
        .nft_load(&format!("block-h{to}"), &rule)
        .expect("nft rules loaded");
}

fn unblock(lab: &Lab, from: usize) {
    let deleted = lab
        .host(from)
        .nft_delete_table(BLOCK_TABLE)
        .expect("nft delete");
    assert!(deleted, "no block table on h{from}");
}

/// `(lab host, role)` of every member `observer` lists, sorted by host.
fn roles(lab: &Lab, observer: usize) -> Vec<(usize, Role)> {
    let members = lab.host(observer).members().expect("members");
    let mut roles: Vec<(usize, Role)> = members
        .iter()
        .map(|m| {
            let ip = m.ip().expect("Addr");
            (lab.host_by_addr(ip).expect("a lab host"), m.role)
        })
        .collect();
    roles.sort_unstable_by_key(|&(h, _)| h);
    roles
}

#[test]
fn a_joiner_the_leader_cannot_reach_does_not_take_its_quorum() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).expect("two hosts");
    // The leader (h0, alone) can hear h1 but not talk to it: h1's join reaches h0, and h0
    // commits it, but h1 never gets a byte of the log.
    block_cluster_traffic(&lab, 0, 1);
    let token = lab.host(0).cluster_token().expect("token");
    let _ = lab
        .host(1)
        .try_join_cluster(lab.host(0).addr(), &token, Duration::from_secs(5));
    // h1 is a member of h0's cluster, as a learner: it has no data, so it has no vote.
    lab.wait_members(&[0], &[0, 1], CLUSTER_TIMEOUT)
        .expect("h0 lists h1");
    assert_eq!(roles(&lab, 0), vec![(0, Role::Voter), (1, Role::Learner)]);
    // h0 alone is still a quorum: writes commit (a voter h1 would have stopped them for good).
    let out = lab
        .host(0)
        .vxnet_timed(
            &["network", "create", "while-h1-is-away"],
            Duration::from_secs(5),
        )
        .expect("CLI runs");
    assert!(
        out.success(),
        "a write on the leader failed while the joiner was unreachable: {}\n{}",
        out.stderr(),
        lab.daemon_logs(30)
    );
    // Once h0 can reach it, h1 catches up, sees what was written meanwhile, and is promoted.
    unblock(&lab, 0);
    lab.host(1)
        .wait_networks(&["while-h1-is-away"], REPLICATION_TIMEOUT)
        .expect("h1 caught up");
    wait_for(
        "h1 promoted to voter",
        CLUSTER_TIMEOUT,
        Duration::from_millis(200),
        || Ok((roles(&lab, 0) == vec![(0, Role::Voter), (1, Role::Voter)]).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));
}

#[test]
fn a_dead_host_is_removed_with_its_endpoints_and_a_learner_takes_its_vote() {
    if !require_root() {
        return;
    }
    // Three voters and a learner (h3).
    let lab = Lab::cluster(4).expect("four hosts in one cluster");
    let all = [0, 1, 2, 3];
    assert_eq!(roles(&lab, 0)[3], (3, Role::Learner));
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.70.0.0/24", "app"]);
    for h in all {
        lab.host(h)
            .wait_networks(&["app"], REPLICATION_TIMEOUT)
            .expect("replicated");
    }
    let containers = lab
        .container_per_host("app", &all)
        .expect("a container per host");
    let names: Vec<&str> = containers.iter().map(|(c, _)| c.ns.as_str()).collect();
    lab.host(0)
        .wait_endpoints("app", &names, REPLICATION_TIMEOUT)
        .expect("endpoints replicated");

    // The victim: a voter that does not lead, so the leader is there to evict it.
    let leader = lab.leader(&all).expect("a leader");
    let victim = [0, 1, 2]
        .into_iter()
        .find(|&h| h != leader)
        .expect("a voter");
    let asker = [0, 1, 2]
        .into_iter()
        .find(|&h| h != victim)
        .expect("another voter");
    let victim_name = lab.host(victim).name().to_owned();

    // Refusals first, each one clear line, changing nothing: a host that is up (without
    // --force), this host itself, a name nobody has.
    let asker_name = lab.host(asker).name().to_owned();
    for (args, want) in [
        (vec!["cluster", "remove", victim_name.as_str()], "--force"),
        (
            vec!["cluster", "remove", asker_name.as_str()],
            "cluster leave",
        ),
        (vec!["cluster", "remove", "no-such-host"], "no member"),
    ] {
        let out = lab
            .host(asker)
            .vxnet_timed(&args, Duration::from_secs(15))
            .expect("CLI runs");
        assert!(!out.success(), "{args:?} succeeded");
        assert!(
            is_one_error_line(&out.stderr()) && out.stderr().contains(want),
            "{args:?}: one `vxnet: ` line naming {want:?} expected, got {:?}",
            out.stderr()
        );
    }
    lab.wait_members(&[asker], &all, CLUSTER_TIMEOUT)
        .expect("nobody removed by a refusal");

    lab.kill_daemon(victim, libc::SIGKILL)
        .expect("kill -9 the victim");
    // The leader needs an election timeout or two to see the victim as gone: until then a
    // removal without --force is refused as "reachable", which is what it is for.
    let removed_at = Instant::now();
    wait_for(
        "cluster remove of the dead host to succeed",
        CLUSTER_TIMEOUT,
        Duration::from_millis(500),
        || {
            let out = lab.host(asker).vxnet_timed(
                &["cluster", "remove", &victim_name],
                Duration::from_secs(15),
            )?;
            Ok(out.success().then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));
    eprintln!(
        "removed h{victim} {:?} after its kill",
        removed_at.elapsed()
    );

    let staying: Vec<usize> = all.into_iter().filter(|&h| h != victim).collect();
    let staying_names: Vec<&str> = staying.iter().map(|&h| names[h]).collect();
    for &h in &staying {
        lab.host(h)
            .wait_endpoints("app", &staying_names, REPLICATION_TIMEOUT)
            .expect("the dead host's endpoint removed everywhere");
    }
    lab.wait_members(&staying, &staying, CLUSTER_TIMEOUT)
        .expect("the dead host is no member");
    // The learner took the free vote.
    wait_for(
        "h3 promoted to voter",
        CLUSTER_TIMEOUT,
        Duration::from_millis(200),
        || {
            let r = roles(&lab, asker);
            Ok(r.iter().all(|&(_, role)| role == Role::Voter).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));

    // With h3 voting, the cluster survives the loss of one more of its first voters.
    let leader = lab.leader(&staying).expect("a leader");
    let second = staying
        .iter()
        .copied()
        .find(|&h| h != leader && h != 3)
        .expect("another first voter");
    lab.kill_daemon(second, libc::SIGKILL)
        .expect("kill -9 another voter");
    let left: Vec<usize> = staying.into_iter().filter(|&h| h != second).collect();
    let write = lab
        .create_network_retrying(
            &left,
            |n| format!("after-{n}"),
            Instant::now(),
            vxnet_tests::lab::WriteRetry {
                attempt_timeout: Duration::from_secs(2),
                pause: Duration::from_millis(100),
                limit: Duration::from_secs(15),
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "no write with two of three voters left: {e:#}\n{}",
                lab.daemon_logs(30)
            )
        });
    for &h in &left {
        lab.host(h)
            .wait_networks(&[write.name.as_str()], REPLICATION_TIMEOUT)
            .expect("replicated");
    }
}

#[test]
fn force_new_cluster_makes_a_lone_survivor_a_cluster_of_its_own() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.71.0.0/24", "kept"]);
    for h in 0..3 {
        lab.host(h)
            .wait_networks(&["kept"], REPLICATION_TIMEOUT)
            .expect("replicated");
    }
    let c0 = lab.container(0, "c0").expect("container");
    let ip0 = lab
        .host(0)
        .connect_auto("kept", &c0)
        .expect("connect on h0");
    let c1 = lab.container(1, "c1").expect("container");
    lab.host(1)
        .connect_auto("kept", &c1)
        .expect("connect on h1");
    lab.host(0)
        .wait_endpoints(
            "kept",
            &[c0.ns.as_str(), c1.ns.as_str()],
            REPLICATION_TIMEOUT,
        )
        .expect("both endpoints on h0");

    // The majority is gone for good: h0 cannot write.
    for h in [1, 2] {
        lab.kill_daemon(h, libc::SIGKILL).expect("kill -9");
    }
    let out = lab
        .host(0)
        .vxnet_timed(&["network", "create", "no-quorum"], Duration::from_secs(3))
        .expect("CLI runs");
    assert!(!out.success(), "a write without a quorum succeeded");

    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    lab.host(0)
        .start_daemon_with(&["--force-new-cluster"], &[])
        .expect("h0 starts as a cluster of its own");
    assert!(
        lab.host(0).log_tail(60).contains("--force-new-cluster"),
        "the daemon says what it dropped:\n{}",
        lab.host(0).log_tail(60)
    );
    lab.wait_members(&[0], &[0], CLUSTER_TIMEOUT)
        .expect("h0 is the only member");
    // Its networks and its own endpoints stay (the container keeps its address); the
    // endpoints of the dropped hosts go.
    lab.host(0)
        .wait_endpoints("kept", &[c0.ns.as_str()], REPLICATION_TIMEOUT)
        .expect("h1's endpoint dropped, h0's kept");
    let ep = lab
        .host(0)
        .inspect_network("kept")
        .expect("inspect")
        .endpoint(&c0.ns)
        .cloned()
        .expect("h0's endpoint");
    assert_eq!(ep.ipv4, ip0);
    lab.host(0)
        .vxnet_ok(&["--timeout", "5s", "network", "create", "after-recovery"]);

    // Restarted without the flag, it stays what it became.
    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    lab.start_daemon(0).expect("restart h0");
    lab.wait_members(&[0], &[0], CLUSTER_TIMEOUT)
        .expect("still alone");
    let mut names = lab.host(0).network_names().expect("ls");
    names.sort();
    assert_eq!(names, vec!["after-recovery", "kept"]);
    lab.host(0)
        .vxnet_ok(&["--timeout", "5s", "network", "create", "after-restart"]);
}

#[test]
fn a_copied_data_dir_is_refused_at_join() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(3).expect("three hosts");
    // h2's data dir becomes a copy of h1's (a VM image cloned after its first boot).
    for h in [1, 2] {
        lab.kill_daemon(h, libc::SIGTERM).expect("stop");
    }
    let (src, dst) = (lab.host(1).data_dir(), lab.host(2).data_dir());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "rm -rf {dst}/* && cp -a {src}/raft {src}/raft-id {src}/host-id {src}/cluster-ca.pem {src}/cluster-ca-key.pem {src}/host-key.pem {src}/host-cert.der {dst}/",
            src = src.display(),
            dst = dst.display()
        ))
        .output()
        .expect("cp");
    assert!(out.status.success(), "copying the data dir: {out:?}");
    lab.start_daemons(&[1, 2]).expect("both start");

    let token = lab.host(0).cluster_token().expect("token");
    lab.host(1)
        .join_cluster(lab.host(0).addr(), &token)
        .expect("the original joins");
    lab.wait_members(&[0], &[0, 1], CLUSTER_TIMEOUT)
        .expect("h0 lists h1");
    let out = lab
        .host(2)
        .try_join_cluster(lab.host(0).addr(), &token, Duration::from_secs(15))
        .expect("CLI runs");
    assert!(!out.success(), "the copy joined");
    assert!(
        is_one_error_line(&out.stderr()) && out.stderr().contains("copy"),
        "one `vxnet: ` line saying the data dir is a copy expected, got {:?}",
        out.stderr()
    );
    // Nothing changed: h1 is still h1, and the copy is still a cluster of its own.
    lab.wait_members(&[0, 1], &[0, 1], CLUSTER_TIMEOUT)
        .expect("h0 and h1 unchanged");
    let alone = lab.host(2).members().expect("members on h2");
    assert_eq!(lab.member_hosts(&alone).expect("lab hosts"), vec![2]);
}
