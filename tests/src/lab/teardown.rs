//! Cleaning up: a lab's own teardown, and sweeping what killed runs left behind.
//!
//! Rules:
//! - [`Lab::teardown`] runs from `Drop`, also while a test panics; it never panics itself and is
//!   idempotent. Order: daemons get SIGTERM (SIGKILL after
//!   [`DAEMON_STOP_TIMEOUT`]); on a panic the tail of every
//!   daemon log is printed; userspace WireGuard processes are stopped (SIGTERM, so they
//!   remove their control sockets); helpers are killed; every process still in a lab namespace is
//!   SIGKILLed; every mount under the lab root is detached; the namespaces are deleted, newest
//!   first; the lab root is removed.
//! - Every [`LabBuilder::build`](super::LabBuilder::build) first sweeps stale labs: namespaces
//!   named `vl<pid>x<n>-...` whose pid is gone and that are over [`STALE_AFTER`] old, with
//!   their temp roots. Best effort and silent; a lab of a live process is never touched. A
//!   stale lab's Docker Engines go with it: killing what runs in its host namespaces kills
//!   each dockerd's pid namespace (containerd, shims, containers); then their cgroups are
//!   removed, or by a later sweep once the owner is gone and they are [`STALE_AFTER`] old
//!   (`cgroups`). So are the WireGuard control sockets of its boringtun processes
//!   (`wireguard::boringtun`).

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::daemon::DAEMON_STOP_TIMEOUT;
use super::topology::{lab_root, owner_of};
use super::{lock, Lab};
use crate::cmd;
use crate::netns;

/// How old a dead process's namespace must be before a sweep removes it: one made a moment ago
/// by a process in another pid namespace (invisible in our /proc) is left alone.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// Whether `entry` (named for process `pid`) is a lab's leftover: over [`STALE_AFTER`] old,
/// and `pid` is gone.
pub(crate) fn left_by_the_dead(entry: &fs::DirEntry, pid: impl std::fmt::Display) -> bool {
    let old_enough = entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER);
    old_enough && !Path::new(&format!("/proc/{pid}")).exists()
}

impl Lab {
    /// Tears the lab down (see the module docs). Idempotent; also run by `Drop`.
    pub fn teardown(&self) {
        if self
            .torn_down
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        for h in &self.hosts {
            if let Some(mut child) = lock(&h.daemon).take() {
                cmd::signal_and_reap(&mut child, libc::SIGTERM, DAEMON_STOP_TIMEOUT);
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.daemon_logs(60));
        }
        // Userspace WireGuard first, by SIGTERM: it removes its control socket, which lives
        // outside the lab's namespaces and root.
        lock(&self.boringtuns).clear();
        lock(&self.helpers).clear();
        let namespaces = lock(&self.namespaces).clone();
        kill_namespace_processes(&namespaces);
        netns::unmount_all_under(&self.root);
        for ns in namespaces.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                eprintln!("vxnet lab teardown: {e:#}");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.root) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("vxnet lab teardown: removing {}: {e}", self.root.display());
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Detaches every mount under a lab root and removes it; errors are ignored.
pub(super) fn remove_root(root: &Path) {
    netns::unmount_all_under(root);
    let _ = fs::remove_dir_all(root);
}

/// SIGKILLs every process still inside `namespaces` and gives them a moment to go.
fn kill_namespace_processes(namespaces: &[String]) {
    let mut killed = false;
    for ns in namespaces {
        for pid in netns::pids(ns) {
            // SAFETY: kill(2) on a pid `ip netns pids` just reported inside a lab namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed = true;
        }
    }
    if killed {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes the namespaces and temp roots of labs whose process is gone (see the module docs).
pub(super) fn reap_stale_labs() {
    super::cgroups::reap_stale_cgroups();
    super::wireguard::boringtun::reap_stale_sockets();
    let Ok(entries) = fs::read_dir(netns::NETNS_DIR) else {
        return;
    };
    let mut stale_prefixes: Vec<String> = Vec::new();
    let mut stale_ns = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((prefix, pid)) = owner_of(&name) else {
            continue;
        };
        if left_by_the_dead(&e, pid) {
            if !stale_prefixes.iter().any(|p| p == prefix) {
                stale_prefixes.push(prefix.to_string());
            }
            stale_ns.push(name);
        }
    }
    if stale_ns.is_empty() {
        return;
    }
    kill_namespace_processes(&stale_ns);
    for prefix in &stale_prefixes {
        remove_root(&lab_root(prefix));
        super::cgroups::reap_stale(prefix);
    }
    for ns in &stale_ns {
        let _ = netns::delete(ns);
    }
}
