//! A daemon restarted on the same data dir comes back with the same networks and endpoints,
//! rebuilds its dataplane, and containers keep their addresses (README, "The command line": the
//! data dir holds everything a daemon must remember).

use vxnet_tests::scenario::{self, C1_IP, C2_IP, NET, WARMUP_TIMEOUT};
use vxnet_tests::vxnet_json::{network_names, parse_inspect};
use vxnet_tests::{netns, require_root, Host};

/// `IPv4Address` (`A.B.C.D/LEN`) of every endpoint of `NET` on `host`, sorted.
fn endpoint_addresses(host: &Host) -> Vec<String> {
    let nets = parse_inspect(&host.vxnet_ok(&["network", "inspect", NET])).expect("inspect JSON");
    let mut addrs: Vec<String> = nets
        .first()
        .map(|n| {
            n.endpoints
                .iter()
                .map(|e| format!("{}/{}", e.ipv4, e.prefix_len))
                .collect()
        })
        .unwrap_or_default();
    addrs.sort();
    addrs
}

#[test]
fn restarted_daemons_restore_networks_and_forwarding() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let lab = &pair.lab;
    let h0 = lab.host(0);
    assert_eq!(endpoint_addresses(h0), vec![format!("{C1_IP}/24")]);

    // Crash: no chance to clean up or flush anything.
    lab.kill_daemon(0, libc::SIGKILL).expect("SIGKILL h0");
    assert!(!h0.daemon_running());
    // What a crash mid-connect leaves behind: a veth in the sandbox that no endpoint owns.
    let sandboxes = h0.sandbox_namespaces();
    assert_eq!(sandboxes.len(), 1, "one sandbox on h0: {sandboxes:?}");
    let stray = "vx0123456789ab";
    let made = netns::exec_in_file(
        &sandboxes[0],
        &[
            "ip",
            "link",
            "add",
            stray,
            "type",
            "veth",
            "peer",
            "name",
            "stray-peer",
        ],
    )
    .expect("nsenter ip link add");
    assert!(
        made.status.success(),
        "cannot make the stray veth: {made:?}"
    );
    lab.start_daemon(0)
        .expect("restart h0 on the same data dir");
    let nets =
        network_names(&h0.vxnet_ok(&["network", "ls", "--format", "json"])).expect("ls JSON");
    assert_eq!(nets, vec![NET.to_string()], "networks lost across a crash");
    assert_eq!(endpoint_addresses(h0), vec![format!("{C1_IP}/24")]);
    let links =
        netns::exec_in_file(&sandboxes[0], &["ip", "-o", "link", "show"]).expect("sandbox links");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(stray),
        "the restarted daemon kept a veth no endpoint owns:\n{links}"
    );
    let addr = pair
        .c1
        .exec_ok(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        .expect("c1 eth0");
    assert!(
        addr.contains(&format!("{C1_IP}/24")),
        "c1 lost its address: {addr}"
    );
    pair.c1
        .wait_reachable(C2_IP, WARMUP_TIMEOUT)
        .expect("forwarding back after the crash");
    assert_eq!(pair.c1.ping(C2_IP, 3).expect("ping").received, 3);
    assert_eq!(pair.c2.ping(C1_IP, 3).expect("ping").received, 3);

    // Clean stop: SIGTERM ends the daemon by itself, and it comes back the same way.
    let status = lab.kill_daemon(1, libc::SIGTERM).expect("SIGTERM h1");
    assert!(
        status.is_some(),
        "daemon ignored SIGTERM for 5 s:\n{}",
        lab.host(1).log_tail(40)
    );
    lab.start_daemon(1).expect("restart h1");
    pair.c2
        .wait_reachable(C1_IP, WARMUP_TIMEOUT)
        .expect("forwarding back after a clean restart");
    assert_eq!(pair.c1.ping(C2_IP, 3).expect("ping").received, 3);
}

/// `ifindex` of `name` in the namespace at `ns` (a sandbox pin or a container), if it exists.
fn ifindex_in(ns: &std::path::Path, name: &str) -> Option<u32> {
    // `ip`, not /sys/class/net: sysfs shows the namespace it was mounted in.
    let out = netns::exec_in_file(ns, &["ip", "-o", "link", "show", name]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':').next()?.trim().parse().ok()
}

/// The TAP is persistent and everything in the sandbox stays: a ping across hosts runs through
/// a restart of each daemon (clean and crashed), losing only the packets of the restart
/// window, and neither the TAP nor the container's interface is ever made again.
#[test]
fn a_ping_runs_through_a_restart_and_the_tap_stays() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let lab = &pair.lab;
    let sandbox = lab.host(1).sandbox_namespaces().remove(0);
    let c2_ns = netns::netns_path(&pair.c2.ns);
    let before = (ifindex_in(&sandbox, "vxtap0"), ifindex_in(&c2_ns, "eth0"));
    assert!(before.0.is_some() && before.1.is_some(), "{before:?}");

    for signal in [libc::SIGTERM, libc::SIGKILL] {
        // 20 ms apart for up to 8 s: the restart happens 1 s in.
        let pinger = {
            let ns = pair.c1.ns.clone();
            std::thread::spawn(move || {
                vxnet_tests::ping::ping_with(
                    &ns,
                    C2_IP,
                    &vxnet_tests::PingOptions {
                        count: 400,
                        interval: std::time::Duration::from_millis(20),
                        size: None,
                        deadline: std::time::Duration::from_secs(12),
                    },
                )
            })
        };
        std::thread::sleep(std::time::Duration::from_secs(1));
        lab.kill_daemon(1, signal).expect("stop h1");
        assert_eq!(
            ifindex_in(&sandbox, "vxtap0"),
            before.0,
            "the TAP left with the daemon"
        );
        lab.start_daemon(1).expect("restart h1");
        let stats = pinger.join().expect("ping thread").expect("ping");
        let lost = stats.transmitted - stats.received;
        assert!(
            stats.received > 0 && lost < stats.transmitted / 2,
            "signal {signal}: {} of {} echo requests lost across the restart",
            lost,
            stats.transmitted
        );
        assert_eq!(
            (ifindex_in(&sandbox, "vxtap0"), ifindex_in(&c2_ns, "eth0")),
            before,
            "the restart made the TAP or the container's interface again"
        );
    }
}

/// A restarted daemon forwards before it renders its sandbox's guard again: the previous run's
/// guard is still in the namespace, and `nft` runs (some milliseconds each, on a busy host
/// far more) are kept out of the restart window. Here every `nft` the daemon runs takes 2 s;
/// replies must come back well before the first of them could have finished.
#[test]
fn forwarding_resumes_before_the_guard_is_rendered_again() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let lab = &pair.lab;
    let nft = vxnet_tests::cmd::run_ok(
        std::process::Command::new("sh").args(["-c", "command -v nft"]),
        vxnet_tests::cmd::DEFAULT_TIMEOUT,
    )
    .expect("nft on the PATH");
    let nft = nft.trim();
    let slow = lab.root().join("slow-nft");
    std::fs::create_dir_all(&slow).expect("a dir for the wrapper");
    let wrapper = slow.join("nft");
    std::fs::write(&wrapper, format!("#!/bin/sh\nsleep 2\nexec {nft} \"$@\"\n")).expect("wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let path = format!(
        "{}:{}",
        slow.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    lab.kill_daemon(1, libc::SIGKILL).expect("kill h1");
    let restarted = lab.host(1);
    restarted
        .spawn_daemon_with(&[], &[("PATH", &path)])
        .expect("start h1 with a slow nft");
    let early = vxnet_tests::ping::ping_with(
        &pair.c1.ns,
        C2_IP,
        &vxnet_tests::PingOptions {
            count: 40,
            interval: std::time::Duration::from_millis(25),
            size: None,
            deadline: std::time::Duration::from_secs(2),
        },
    )
    .expect("ping");
    assert!(
        early.received > 0,
        "no reply in the first 2 s after the restart ({} sent): forwarding waited for nft",
        early.transmitted
    );
    // The rest of the start (the guard, the way out) still happens.
    restarted
        .wait_ready(std::time::Duration::from_secs(60))
        .expect("h1 ready once its nft runs are done");
    let after = pair.c1.ping(C2_IP, 3).expect("ping after the start");
    assert_eq!(after.received, 3, "{after:?}");
}
