//! The lab's cgroups: the cgroup parents of the Docker Engines' and Podman's containers
//! (`vxnet-lab-PREFIX-h<i>`, `...-podman`), in every hierarchy, and their removal — at teardown,
//! and by the sweep of stale labs.
//!
//! Rules:
//! - Every lab cgroup is a top-level cgroup whose name starts with [`CGROUP_TAG`] and the
//!   lab's prefix (`vl<pid>x<n>`), so its owner is known from its name alone.
//! - Removal is rmdir(2), child cgroups first: a cgroup that still holds a process stays, so a
//!   live lab in another pid namespace never loses one. Errors are ignored.

use std::fs;
use std::path::{Path, PathBuf};

use super::teardown::STALE_AFTER;
use super::topology::owner_of;
use crate::netns::parse_mountinfo;

/// Starts the name of every lab cgroup: `vxnet-lab-PREFIX-h<i>`.
pub(super) const CGROUP_TAG: &str = "vxnet-lab-";

/// Mount points of every cgroup hierarchy (v1 controllers, the v2 unified tree).
pub(super) fn cgroup_roots() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| m.mount_point)
        .collect()
}

/// The cgroup directories named `name` (a cgroup parent) that exist, in every hierarchy.
pub(super) fn cgroups_named(name: &str) -> Vec<PathBuf> {
    cgroup_roots()
        .into_iter()
        .map(|r| r.join(name))
        .filter(|p| p.exists())
        .collect()
}

/// Removes the cgroup `name` (and the containers' cgroups in it) from every hierarchy.
/// A cgroup that still holds a process stays; errors are ignored.
pub(super) fn remove_cgroups(name: &str) {
    for root in cgroup_roots() {
        remove_cgroup_tree(&root.join(name));
    }
}

/// rmdir(2) of a cgroup directory, its child cgroups first (cgroupfs removes a directory with
/// its control files, but never one with child cgroups).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Removes the cgroups of the Docker Engines of the lab with `prefix` (for the sweep of stale
/// labs, once their processes are killed). A cgroup that still holds a process stays.
pub(super) fn reap_stale(prefix: &str) {
    remove_cgroups_where(|name| {
        name.strip_prefix(CGROUP_TAG)
            .and_then(owner_of)
            .is_some_and(|(p, _)| p == prefix)
    });
}

/// Removes the cgroups of Docker Engines whose lab's process is gone and that are over
/// [`STALE_AFTER`] old: what a killed run left once its processes were killed (by an earlier
/// sweep, or by anyone). Rmdir never takes a cgroup that holds a process, so a live lab in
/// another pid namespace loses nothing.
pub(super) fn reap_stale_cgroups() {
    let old = |p: &Path| {
        p.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER)
    };
    for root in cgroup_roots() {
        let Ok(entries) = fs::read_dir(&root) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dead = name
                .strip_prefix(CGROUP_TAG)
                .and_then(owner_of)
                .is_some_and(|(_, pid)| !Path::new(&format!("/proc/{pid}")).exists());
            if dead && old(&e.path()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
}

/// Removes the top-level cgroups whose name `matches`, in every hierarchy.
fn remove_cgroups_where(matches: impl Fn(&str) -> bool) {
    for root in cgroup_roots() {
        let Ok(entries) = fs::read_dir(&root) else {
            continue;
        };
        for e in entries.flatten() {
            if matches(&e.file_name().to_string_lossy()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
}
