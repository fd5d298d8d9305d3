//! The CLI's error contract (README, "The command line"): one line `vxnet: ...` on stderr, exit
//! 2 for usage errors and 1 otherwise, an answer within the timeout, and no half state after a
//! failed command.

use std::os::unix::net::UnixListener;
use std::process::Output;
use std::time::{Duration, Instant};

use vxnet_tests::cmd;
use vxnet_tests::vxnet_json::{network_names, parse_inspect};
use vxnet_tests::{require_root, vxnet_bin, Host, Lab};

/// Asserts `out` is a failed command by the error contract; `code` is the exact exit code
/// expected.
#[track_caller]
fn assert_cli_error(what: &str, out: &Output, code: i32) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit status {} (stderr {stderr:?})",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: stderr must be one line: {stderr:?}"
    );
    assert!(
        lines[0].starts_with("vxnet: ") && lines[0].len() > "vxnet: ".len(),
        "{what}: stderr must read `vxnet: <what went wrong>`: {stderr:?}"
    );
}

fn names(host: &Host) -> Vec<String> {
    network_names(&host.vxnet_ok(&["network", "ls", "--format", "json"])).expect("network ls JSON")
}

fn container_count(host: &Host, net: &str) -> usize {
    let nets = parse_inspect(&host.vxnet_ok(&["network", "inspect", net])).expect("inspect JSON");
    nets.first().map_or(0, |n| n.endpoints.len())
}

#[test]
fn failed_commands_report_one_line_and_leave_no_half_state() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).expect("one vxnet host");
    let host = lab.host(0);
    host.vxnet_ok(&["network", "create", "--subnet", "10.10.0.0/24", "net1"]);
    let nets = names(host);
    assert_eq!(nets, vec!["net1"]);

    // Usage errors: exit 2, nothing created.
    for subnet in ["10.0.0.0/33", "10.0.0/24", "not-a-cidr"] {
        let out = host.vxnet(&["network", "create", "--subnet", subnet, "bad"]);
        assert_cli_error(&format!("--subnet {subnet}"), &out, 2);
    }
    assert_eq!(names(host), nets, "a refused create left a network behind");

    // Duplicate name.
    let out = host.vxnet(&["network", "create", "--subnet", "10.20.0.0/24", "net1"]);
    assert_cli_error("duplicate name", &out, 1);
    assert_eq!(names(host), nets);

    let c1 = lab.container(0, "c1").expect("c1");
    let c2 = lab.container(0, "c2").expect("c2");
    let c3 = lab.container(0, "c3").expect("c3");
    host.connect("net1", &c1, "10.10.0.5").expect("connect c1");
    let links = host.link_snapshot().expect("link snapshot");

    // --ip already in use.
    let out = host.vxnet(&["network", "connect", "--ip", "10.10.0.5", "net1", &c2.ns]);
    assert_cli_error("--ip in use", &out, 1);
    assert_eq!(
        c2.links().expect("links"),
        vec!["lo"],
        "orphan interface in c2"
    );
    assert_eq!(
        host.link_snapshot().expect("snapshot"),
        links,
        "orphan link"
    );

    // --ip outside the subnet.
    let out = host.vxnet(&["network", "connect", "--ip", "10.99.0.5", "net1", &c2.ns]);
    assert_cli_error("--ip outside the subnet", &out, 1);
    assert_eq!(
        c2.links().expect("links"),
        vec!["lo"],
        "orphan interface in c2"
    );
    assert_eq!(
        host.link_snapshot().expect("snapshot"),
        links,
        "orphan link"
    );

    // A namespace that does not exist: refused, and its address stays free.
    let missing = format!("{}-nosuch", lab.prefix());
    let out = host.vxnet(&["network", "connect", "--ip", "10.10.0.7", "net1", &missing]);
    assert_cli_error("missing namespace", &out, 1);
    assert_eq!(
        host.link_snapshot().expect("snapshot"),
        links,
        "orphan link"
    );
    assert_eq!(container_count(host, "net1"), 1);
    host.connect("net1", &c3, "10.10.0.7")
        .expect("the address of a failed connect is still free");
    // c2 was never half-attached: it can still join with a fresh address.
    host.connect("net1", &c2, "10.10.0.6")
        .expect("c2 connects after its failed attempts");
    assert_eq!(container_count(host, "net1"), 3);

    // Unknown network, in every command that takes one.
    let c4 = lab.container(0, "c4").expect("c4");
    for args in [
        vec!["network", "connect", "nosuch", c4.ns.as_str()],
        vec!["network", "inspect", "nosuch"],
        vec!["network", "rm", "nosuch"],
        vec!["network", "disconnect", "nosuch", c4.ns.as_str()],
        vec!["fdb", "nosuch"],
    ] {
        let out = host.vxnet(&args);
        assert_cli_error(&format!("{args:?}"), &out, 1);
    }
    assert_eq!(c4.links().expect("links"), vec!["lo"]);

    // rm of a network with endpoints is refused and names them.
    let out = host.vxnet(&["network", "rm", "net1"]);
    assert_cli_error("rm with endpoints", &out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("c1"),
        "rm must name the endpoints: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(host), nets);
}

/// Runs the CLI against `socket` and checks it fails cleanly and promptly.
fn assert_daemon_unreachable(socket: &std::path::Path, max: Duration) {
    let started = Instant::now();
    let out = cmd::run(
        std::process::Command::new(vxnet_bin())
            .arg("--socket")
            .arg(socket)
            .args(["network", "ls"]),
        max + Duration::from_secs(10),
    )
    .expect("the CLI must not hang when the daemon is unreachable");
    let took = started.elapsed();
    assert!(
        !out.status.success(),
        "network ls succeeded without a daemon"
    );
    assert_cli_error("daemon unreachable", &out, 1);
    assert!(took <= max, "took {took:?}, the contract allows {max:?}");
}

#[test]
fn cli_without_a_daemon_fails_with_one_line_in_time() {
    // No lab and no root needed: only the CLI binary.
    let dir = std::env::temp_dir().join(format!("vxnet-nodaemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // Nothing at the path.
    assert_daemon_unreachable(&dir.join("absent.sock"), Duration::from_secs(5));

    // A socket file nobody listens on any more (a crashed daemon's leftover).
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    assert_daemon_unreachable(&stale, Duration::from_secs(5));

    // A listener that accepts connections (kernel backlog) but never answers: the CLI must give
    // up within its default --timeout of 10 s.
    let mute = dir.join("mute.sock");
    let _listener = UnixListener::bind(&mute).expect("bind");
    assert_daemon_unreachable(&mute, Duration::from_secs(12));

    let _ = std::fs::remove_dir_all(&dir);
}

/// Daemon flags out of range are refused before anything starts: one line, exit 2.
#[test]
fn daemon_flags_out_of_range_are_refused_with_one_line() {
    let bin = vxnet_bin();
    for (what, flag, value) in [
        ("--queues 0", "--queues", "0"),
        ("--queues 17", "--queues", "17"),
        ("--key-rotation below 20 s", "--key-rotation", "5"),
        ("--key-rotation not a number", "--key-rotation", "12h"),
    ] {
        let out = std::process::Command::new(&bin)
            .args(["daemon", "--advertise-addr", "192.0.2.1", flag, value])
            .output()
            .expect("run vxnet");
        assert_cli_error(what, &out, 2);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{what}: names the flag"
        );
    }
}
