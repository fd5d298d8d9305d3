//! Who may use the API socket (README, "The command line"): root, and with `vxnet daemon
//! --api-group GROUP` the members of GROUP. A user who is neither cannot connect (the socket's
//! mode), and is refused by the daemon itself even when the socket's mode is loosened (the
//! peer's credentials, `SO_PEERCRED`), with one clear line, and at most one log line per
//! period. The data dir is 0700 (tightened at start), the daemon's open-files soft limit is
//! its hard limit.
//!
//! Other users run the CLI through `setpriv` (util-linux) as uid/gid 65534 (`nobody`), with or
//! without the supplementary group `users` (gid 100, in Debian's base group file). The lab's
//! socket is in the 0700 data dir, so it is hard-linked into a directory they can enter.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use vxnet_tests::{cmd, require_root, vxnet_bin, HostKind, Lab};

/// The group given to `--api-group` (Debian's `users`).
const GROUP: &str = "users";
const GROUP_GID: &str = "100";

/// Runs `vxnet --socket SOCKET network ls` as uid/gid 65534, with `groups` (`""`: none).
fn ls_as_nobody(bin: &Path, socket: &Path, groups: &str) -> Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534"]);
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        c.args(["--groups", groups]);
    }
    c.arg(bin)
        .arg("--socket")
        .arg(socket)
        .args(["network", "ls", "-q"]);
    cmd::run(&mut c, Duration::from_secs(20)).expect("setpriv vxnet network ls")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Asserts `out` failed with one line `vxnet: ...` that contains `says`.
#[track_caller]
fn assert_refused(out: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("vxnet: ") && stderr.contains(says),
        "expected {says:?}: {stderr}"
    );
}

#[test]
fn only_root_and_the_api_group_use_the_api() {
    if !require_root() {
        return;
    }
    let lab = Lab::builder()
        .hosts(HostKind::Vxnet, 1)
        .start_daemons(false)
        .build()
        .expect("one host");
    let host = lab.host(0);
    // A directory, a binary and a link to the socket that uid 65534 can reach.
    let open = lab.root().join("open");
    std::fs::create_dir_all(&open).expect("open dir");
    chmod(&open, 0o755);
    chmod(lab.root(), 0o755);
    let bin = open.join("vxnet");
    std::fs::copy(vxnet_bin(), &bin).expect("copy vxnet");
    chmod(&bin, 0o755);
    let socket: PathBuf = open.join("vxnet.sock");
    let relink = || {
        let _ = std::fs::remove_file(&socket);
        std::fs::hard_link(host.socket(), &socket).expect("link the socket");
    };

    // A data dir someone opened up is closed at start.
    std::fs::create_dir_all(host.data_dir()).expect("data dir");
    chmod(host.data_dir(), 0o755);
    host.start_daemon_with(&["--api-group", GROUP], &[])
        .expect("daemon with --api-group");
    assert_eq!(mode(host.data_dir()), 0o700, "the data dir is not 0700");
    let pid = host.daemon_pid().expect("daemon pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files")
        .split_whitespace()
        .collect();
    assert_eq!(open_files[3], open_files[4], "soft != hard: {open_files:?}");

    // The socket is the group's: its members get in, others not even to the daemon.
    assert_eq!(mode(host.socket()), 0o660);
    relink();
    let member = ls_as_nobody(&bin, &socket, GROUP_GID);
    assert!(member.status.success(), "a member of {GROUP}: {member:?}");
    assert_refused(&ls_as_nobody(&bin, &socket, ""), "permission denied on");
    host.vxnet_ok(&["network", "ls"]);

    // A loosened socket lets anyone connect: the daemon refuses who is neither root nor in the
    // group, by the peer's credentials, and logs it once.
    chmod(host.socket(), 0o666);
    for _ in 0..3 {
        assert_refused(
            &ls_as_nobody(&bin, &socket, ""),
            "only root and members of group users may use the vxnet API",
        );
    }
    assert!(ls_as_nobody(&bin, &socket, GROUP_GID).status.success());
    let log = std::fs::read_to_string(host.log_path()).expect("daemon log");
    assert_eq!(
        log.matches("refused an API connection").count(),
        1,
        "refusals are not rate-limited in the log:\n{log}"
    );

    // Without --api-group: root only, members of the group too are refused.
    host.kill_daemon(libc::SIGTERM).expect("stop");
    host.start_daemon().expect("daemon without --api-group");
    assert_eq!(mode(host.socket()), 0o600);
    relink();
    assert_refused(
        &ls_as_nobody(&bin, &socket, GROUP_GID),
        "permission denied on",
    );
    chmod(host.socket(), 0o666);
    assert_refused(
        &ls_as_nobody(&bin, &socket, GROUP_GID),
        "only root may use the vxnet API",
    );
    host.vxnet_ok(&["network", "ls"]);
}
