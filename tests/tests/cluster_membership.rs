//! Cluster membership through the CLI (README, "Clustering"): the token guards joining, `join`
//! never merges state, `leave` takes a host's endpoints with it, and `members` JSON has exactly
//! the documented keys with voters, learners and one leader (the first three hosts vote, the
//! rest learn).

use std::collections::BTreeSet;
use std::time::Duration;

use vxnet_tests::lab::cluster::{CLUSTER_TIMEOUT, REPLICATION_TIMEOUT};
use vxnet_tests::lab::daemon::is_one_error_line;
use vxnet_tests::vxnet_json::{parse, Role, MEMBER_KEYS};
use vxnet_tests::wire::mac_string_for_ip;
use vxnet_tests::{require_root, wait_for, Lab};

/// The member IDs `host` lists, as a set.
fn member_ids(lab: &Lab, host: usize) -> BTreeSet<String> {
    lab.host(host)
        .members()
        .expect("members")
        .into_iter()
        .map(|m| m.id)
        .collect()
}

#[test]
fn join_with_a_wrong_token_fails_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(3).expect("three hosts");
    lab.form_cluster(&[0, 1]).expect("h0 and h1 in one cluster");
    let before = member_ids(&lab, 0);
    assert_eq!(before.len(), 2);
    let token = lab.host(0).cluster_token().expect("token");
    // One token that is nothing like a token, one that is the real one with its first
    // character changed (whatever the format, that is a different secret or an invalid one).
    let mut altered: Vec<char> = token.chars().collect();
    altered[0] = if altered[0] == 'a' { 'b' } else { 'a' };
    let altered: String = altered.into_iter().collect();
    let seed = lab.host(0).addr().to_string();
    for wrong in ["not-the-token", altered.as_str()] {
        let out = lab
            .host(2)
            .vxnet_timed(
                &["cluster", "join", &seed, "--token", wrong],
                Duration::from_secs(10),
            )
            .expect("CLI runs");
        assert!(!out.success(), "join with token {wrong:?} succeeded");
        assert!(
            is_one_error_line(&out.stderr()),
            "one `vxnet: ` line expected, got {:?}",
            out.stderr()
        );
        assert_eq!(member_ids(&lab, 0), before, "h0's members changed");
        assert_eq!(member_ids(&lab, 1), before, "h1's members changed");
        let alone = lab.host(2).members().expect("members on h2");
        assert_eq!(
            lab.member_hosts(&alone).expect("lab hosts"),
            vec![2],
            "h2 must still be a cluster of its own"
        );
    }
    // The right token works: the failures were about the token, not the setup.
    lab.host(2)
        .join_cluster(lab.host(0).addr(), &token)
        .expect("join with the right token");
    lab.wait_members(&[0, 1, 2], &[0, 1, 2], CLUSTER_TIMEOUT)
        .expect("three members");
}

#[test]
fn join_is_refused_with_networks_and_leave_removes_the_hosts_endpoints() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(3).expect("three hosts");
    lab.form_cluster(&[0, 1]).expect("h0 and h1 in one cluster");
    let token = lab.host(0).cluster_token().expect("token");
    let h2 = lab.host(2);
    h2.vxnet_ok(&["network", "create", "mine"]);
    let out = h2
        .try_join_cluster(lab.host(0).addr(), &token, Duration::from_secs(10))
        .expect("CLI runs");
    assert!(!out.success(), "join with a network of its own succeeded");
    assert_eq!(
        out.stderr().trim(),
        "vxnet: this host already has networks; remove them first"
    );
    // Nothing merged, nothing lost.
    assert_eq!(h2.network_names().expect("ls"), vec!["mine".to_string()]);
    assert!(lab.host(0).network_names().expect("ls").is_empty());
    assert_eq!(
        lab.member_hosts(&lab.host(0).members().expect("members"))
            .expect("lab hosts"),
        vec![0, 1]
    );

    h2.vxnet_ok(&["network", "rm", "mine"]);
    h2.join_cluster(lab.host(0).addr(), &token)
        .expect("join once the network is gone");
    lab.wait_members(&[0, 1, 2], &[0, 1, 2], CLUSTER_TIMEOUT)
        .expect("three members");

    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.90.0.0/24", "shared"]);
    h2.wait_networks(&["shared"], REPLICATION_TIMEOUT)
        .expect("replicated to h2");
    let mut containers = Vec::new();
    for h in 0..3 {
        let c = lab.container(h, &format!("c{h}")).expect("container");
        let ip = lab.host(h).connect_auto("shared", &c).expect("connect");
        containers.push((c, ip));
    }
    let all_names: Vec<&str> = containers.iter().map(|(c, _)| c.ns.as_str()).collect();
    for h in 0..2 {
        lab.host(h)
            .wait_endpoints("shared", &all_names, REPLICATION_TIMEOUT)
            .expect("every endpoint listed");
    }
    let h2_mac = mac_string_for_ip(containers[2].1);

    h2.vxnet_ok(&["cluster", "leave"]);
    let staying = &all_names[..2];
    for h in 0..2 {
        lab.host(h)
            .wait_endpoints("shared", staying, REPLICATION_TIMEOUT)
            .expect("h2's endpoint removed cluster-wide");
        lab.host(h)
            .wait_fdb("shared", &[h2_mac.as_str()], false, REPLICATION_TIMEOUT)
            .expect("h2's MAC forgotten");
    }
    lab.wait_members(&[0, 1], &[0, 1], CLUSTER_TIMEOUT)
        .expect("h2 no longer a member");
}

#[test]
fn members_json_has_the_documented_keys_three_voters_one_learner_one_leader() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(4).expect("four hosts in one cluster");
    let all = [0, 1, 2, 3];
    for h in all {
        let host = lab.host(h);
        // Reachability is learned from heartbeats: give the newest member a moment.
        let members = wait_for(
            &format!("every member reachable as {} sees it", host.name()),
            CLUSTER_TIMEOUT,
            Duration::from_millis(200),
            || {
                let m = host.members()?;
                Ok(m.iter().all(|m| m.reachable).then_some(m))
            },
        )
        .expect("all reachable");

        let raw = host.vxnet_ok(&["cluster", "members", "--format", "json"]);
        let v = parse(&raw).expect("JSON");
        let objects = v.as_array().expect("members JSON is an array");
        assert_eq!(objects.len(), 4, "{raw}");
        let want: BTreeSet<&str> = MEMBER_KEYS.into_iter().collect();
        for o in objects {
            let keys: BTreeSet<&str> = o
                .as_object()
                .expect("member is an object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, want, "exactly the documented keys: {o}");
        }

        assert_eq!(lab.member_hosts(&members).expect("lab hosts"), all.to_vec());
        for m in &members {
            let idx = lab.host_by_addr(m.ip().expect("Addr")).expect("a lab host");
            assert_eq!(m.name, lab.host(idx).name(), "Name is the daemon's --name");
            assert!(!m.id.is_empty());
        }
        let ids: BTreeSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.len(), 4, "IDs are distinct: {members:?}");
        let learners: Vec<&str> = members
            .iter()
            .filter(|m| m.role == Role::Learner)
            .map(|m| m.name.as_str())
            .collect();
        // --voters 3 by default: the first three hosts vote, the fourth to join learns.
        assert_eq!(learners, vec!["h3"], "{members:?}");
        let leaders: Vec<_> = members.iter().filter(|m| m.leader).collect();
        assert_eq!(leaders.len(), 1, "exactly one leader: {members:?}");
        assert_eq!(leaders[0].role, Role::Voter, "a learner cannot lead");

        let table = host.vxnet_ok(&["cluster", "members"]);
        for h in lab.hosts() {
            assert!(
                table.contains(h.name()),
                "table lacks {}:\n{table}",
                h.name()
            );
        }
    }
    let leader = lab.leader(&all).expect("all four agree on the leader");
    assert!(leader < 3, "the leader h{leader} must be a voter");
}

/// The token need not be on the command line (`/proc/*/cmdline`, shell history): `--token-file
/// F` and `--token -` (standard input) join as `--token T` does; both at once is a usage error.
#[test]
fn join_takes_the_token_from_a_file_or_standard_input() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(3).expect("three hosts");
    let token = lab.host(0).cluster_token().expect("token");
    let seed = lab.host(0).addr().to_string();
    let file = lab.root().join("token");
    std::fs::write(&file, format!("{token}\n")).expect("write the token file");
    let file = file.to_string_lossy().into_owned();

    lab.host(1)
        .vxnet_checked(&["cluster", "join", &seed, "--token-file", &file])
        .expect("join with --token-file");

    let mut piped = lab
        .host(2)
        .vxnet_command(&["cluster", "join", &seed, "--token", "-"])
        .expect("command")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = piped.stdin.take().expect("stdin");
        stdin.write_all(token.as_bytes()).expect("write the token");
    }
    let out = piped.wait_with_output().expect("wait");
    assert!(out.status.success(), "join with --token -: {out:?}");
    lab.wait_members(&[0, 1, 2], &[0, 1, 2], CLUSTER_TIMEOUT)
        .expect("three members");

    let both = lab.host(2).vxnet(&[
        "cluster",
        "join",
        &seed,
        "--token",
        &token,
        "--token-file",
        &file,
    ]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");
}
