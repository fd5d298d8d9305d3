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
