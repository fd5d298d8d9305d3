//! A daemon that cannot go on exits non-zero, after one error line, so that a supervisor
//! restarts it (README, "Running as a service"); restarted on its data dir, it forwards again.

use std::time::Duration;

use vxnet_tests::scenario::{self, C1_IP, C2_IP, WARMUP_TIMEOUT};
use vxnet_tests::{netns, require_root};

/// How long a daemon may take to notice that a part of it stopped, and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn a_tap_deleted_from_outside_ends_the_daemon_and_a_restart_rebuilds_it() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let lab = &pair.lab;
    let h0 = lab.host(0);
    let sandboxes = h0.sandbox_namespaces();
    assert_eq!(sandboxes.len(), 1, "one sandbox on h0: {sandboxes:?}");

    // The network's TAP thread can no longer read: forwarding for it has stopped for good.
    let deleted = netns::exec_in_file(&sandboxes[0], &["ip", "link", "del", "vxtap0"])
        .expect("nsenter ip link del");
    assert!(
        deleted.status.success(),
        "cannot delete the TAP: {deleted:?}"
    );
    let status = h0
        .wait_daemon_exit(EXIT_TIMEOUT)
        .expect("the daemon exits once its TAP thread stopped");
    assert_eq!(
        status.code(),
        Some(1),
        "exit status {status}; log:\n{}",
        h0.log_tail(20)
    );
    let log = h0.log_tail(20);
    assert!(
        log.contains("forwarding thread vxnet-tap-"),
        "the log does not say which thread stopped:\n{log}"
    );

    lab.start_daemon(0)
        .expect("restart h0 on the same data dir");
    pair.c1
        .wait_reachable(C2_IP, WARMUP_TIMEOUT)
        .expect("forwarding back after the restart");
    assert_eq!(pair.c2.ping(C1_IP, 3).expect("ping").received, 3);
}

/// `ip netns exec HOST vxnet daemon` (a habit of `ip` users) would run the daemon in a private
/// mount namespace, where the bind mounts that pin its sandboxes die with it: the daemon
/// refuses, with one line saying what to run instead, and makes nothing. The same daemon
/// entered into the namespace by `setns` alone (as `nsenter --net=` does) starts.
#[test]
fn a_daemon_started_by_ip_netns_exec_refuses_and_says_what_to_run() {
    if !require_root() {
        return;
    }
    let lab = vxnet_tests::Lab::builder()
        .hosts(vxnet_tests::HostKind::Vxnet, 1)
        .start_daemons(false)
        .build()
        .expect("one host, no daemon");
    let h0 = lab.host(0);
    let bin = vxnet_tests::find_vxnet_bin().expect("vxnet binary");
    let out = vxnet_tests::cmd::run(
        std::process::Command::new("ip")
            .args(["netns", "exec", h0.ns()])
            .arg(&bin)
            .args(["daemon", "--advertise-addr", &h0.addr().to_string()])
            .arg("--data-dir")
            .arg(h0.data_dir())
            .arg("--socket")
            .arg(h0.socket()),
        EXIT_TIMEOUT,
    )
    .expect("ip netns exec runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        vxnet_tests::lab::daemon::is_one_error_line(&stderr) && stderr.contains("nsenter --net="),
        "one `vxnet: ` line naming nsenter expected, got {stderr:?}"
    );
    assert!(!h0.socket().exists(), "the refused daemon made its socket");
    assert!(
        h0.sandbox_namespaces().is_empty() && !h0.data_dir().join("raft").exists(),
        "the refused daemon made state"
    );
    h0.start_daemon().expect("entered by setns, it starts");
}
