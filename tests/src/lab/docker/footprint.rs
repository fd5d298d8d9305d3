//! What a Docker Engine leaves behind, found from /proc, mountinfo and the cgroup trees
//! ([`DockerFootprint`]); and the process table reads the engine needs.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::super::cgroups::cgroups_named;
use crate::netns;

/// What a [`Docker`](super::Docker) could leave behind, to check after it is gone: processes, mounts under
/// its directory, its cgroups. A process is the engine's when its command line names the
/// engine's directory other than by the API socket, which its clients name (the launcher,
/// docker-init, dockerd, containerd, shims, runc; not the vxnet daemon's `--docker-host`), or
/// when it is in a cgroup under the engine's cgroup parent (containers, `docker exec`). Not by
/// pid namespace: a freed namespace's number is soon another's.
#[derive(Debug, Clone)]
pub struct DockerFootprint {
    pub(super) dir: PathBuf,
    pub(super) cgroup_parent: String,
}

impl DockerFootprint {
    /// The engine's processes still there (see the type's docs), as `(pid, comm)`.
    pub fn processes(&self) -> Vec<(i32, String)> {
        let dir = self.dir.as_os_str().as_bytes();
        let cgroup = format!("/{}", self.cgroup_parent);
        let me = std::process::id() as i32;
        let mut found = Vec::new();
        for (pid, _, comm) in all_processes() {
            if pid == me {
                continue;
            }
            let in_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| {
                t.lines().any(|l| {
                    l.split(':')
                        .nth(2)
                        .is_some_and(|p| p == cgroup || p.starts_with(&format!("{cgroup}/")))
                })
            });
            let names_dir =
                fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| names_engine_dir(&c, dir));
            if in_cgroup || names_dir {
                found.push((pid, comm));
            }
        }
        found
    }

    /// Mounts of the test's mount namespace at or under the engine's directory.
    pub fn mounts(&self) -> Vec<PathBuf> {
        netns::mounts_under(&self.dir)
            .into_iter()
            .map(|m| m.mount_point)
            .collect()
    }

    /// Cgroup directories named after its cgroup parent, in every hierarchy.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        cgroups_named(&self.cgroup_parent)
    }

    /// Error naming whatever is left: processes, mounts, cgroups, the directory itself.
    pub fn check_gone(&self) -> Result<()> {
        let processes = self.processes();
        let mounts = self.mounts();
        let cgroups = self.cgroups();
        let dir = self.dir.exists();
        if processes.is_empty() && mounts.is_empty() && cgroups.is_empty() && !dir {
            return Ok(());
        }
        bail!(
            "left behind by the Docker in {}: processes {processes:?}, mounts {mounts:?}, \
             cgroups {cgroups:?}{}",
            self.dir.display(),
            if dir { ", the directory" } else { "" }
        )
    }
}

/// Whether a `/proc/PID/cmdline` (NUL-separated arguments) has an argument that names `dir`
/// other than as the path of the engine's API socket (`DIR/docker.sock`).
pub(super) fn names_engine_dir(cmdline: &[u8], dir: &[u8]) -> bool {
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg.windows(dir.len()).any(|w| w == dir) && !arg.ends_with(b"/docker.sock"))
}

/// `(pid, ppid, comm)` of every process in /proc.
fn all_processes() -> Vec<(i32, i32, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let (ppid, comm) = parse_stat(&stat)?;
            Some((pid, ppid, comm))
        })
        .collect()
}

/// `(ppid, comm)` from a `/proc/PID/stat` line (`PID (COMM) STATE PPID ...`; COMM may hold
/// spaces and parentheses, so it ends at the last `)`).
pub(super) fn parse_stat(stat: &str) -> Option<(i32, String)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let ppid = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ppid, comm))
}

/// `(pid, comm)` of the children of `ppid`.
pub(super) fn children(ppid: i32) -> Vec<(i32, String)> {
    all_processes()
        .into_iter()
        .filter(|(_, parent, _)| *parent == ppid)
        .map(|(pid, _, comm)| (pid, comm))
        .collect()
}
