//! Network namespaces and the mounts that pin them.
//!
//! Rules:
//! - Named namespaces are the `ip netns` kind: files under `/var/run/netns`. Commands run inside
//!   one with [`exec`] (`ip netns exec`, fine for short tools).
//! - A long-lived process that must share the test's *mount* namespace (the vxnet daemon: it
//!   bind-mounts its sandbox namespaces under its data dir, and those mounts must outlive a
//!   private mount namespace) is put into a network namespace with [`enter_in_child`] — a
//!   `setns(CLONE_NEWNET)` in `pre_exec` — never with `ip netns exec`.
//! - [`in_netns_thread`] runs a closure on a fresh thread that has entered a namespace, so the
//!   test's own threads never change namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd::{self, DEFAULT_TIMEOUT};

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/var/run/netns";

/// Path of a named namespace's file.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether `ip netns` knows `name`.
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// `ip netns add NAME`, with `lo` up. A leftover namespace of the same name is removed first.
pub fn create(name: &str) -> Result<()> {
    if exists(name) {
        delete(name)?;
    }
    cmd::run_ok(
        Command::new("ip").args(["netns", "add", name]),
        DEFAULT_TIMEOUT,
    )?;
    cmd::run_ok(
        Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]),
        DEFAULT_TIMEOUT,
    )?;
    Ok(())
}

/// `ip netns del NAME`; a missing namespace is not an error.
pub fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    cmd::run_ok(
        Command::new("ip").args(["netns", "del", name]),
        DEFAULT_TIMEOUT,
    )?;
    Ok(())
}

/// The command `ip netns exec NS args...`, for callers that want to adjust it.
pub fn command(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Runs `args` inside namespace `ns` with the default deadline; returns its output whatever the
/// exit status.
pub fn exec(ns: &str, args: &[&str]) -> Result<Output> {
    cmd::run(&mut command(ns, args), DEFAULT_TIMEOUT)
}

/// Runs `args` inside `ns`; non-zero exit is an error. Returns stdout.
pub fn exec_ok(ns: &str, args: &[&str]) -> Result<String> {
    cmd::run_ok(&mut command(ns, args), DEFAULT_TIMEOUT)
}

/// Runs `args` inside the namespace whose file is `path` (a sandbox namespace bind-mounted by
/// the daemon, `/proc/PID/ns/net`, ...). Uses `nsenter --net=`, which keeps the mount namespace.
pub fn exec_in_file(path: &Path, args: &[&str]) -> Result<Output> {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", path.display())).args(args);
    cmd::run(&mut c, DEFAULT_TIMEOUT)
}

/// Arranges for `command` to enter the network namespace file `ns_file` between fork and exec.
/// The returned `File` must stay alive until the command has been spawned.
pub fn enter_in_child(command: &mut Command, ns_file: &Path) -> Result<File> {
    let file =
        File::open(ns_file).with_context(|| format!("opening namespace {}", ns_file.display()))?;
    let fd = file.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls setns(2), which is
    // async-signal-safe; `fd` stays open because the caller keeps `file` alive across spawn.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(file)
}

/// Runs `f` on a new thread that first enters namespace `ns` (only that thread changes
/// namespace; it ends with `f`).
pub fn in_netns_thread<T, F>(ns: &str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let path = netns_path(ns);
    let handle = thread::spawn(move || -> Result<T> {
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: setns(2) on an fd we own; it affects only this thread, which is ours alone.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!(
                "setns into {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        f()
    });
    handle
        .join()
        .map_err(|_| anyhow!("thread inside namespace {ns} panicked"))?
}

/// Process ids that live in namespace `ns` (`ip netns pids`).
pub fn pids(ns: &str) -> Vec<i32> {
    let Ok(out) = cmd::run(
        Command::new("ip").args(["netns", "pids", ns]),
        DEFAULT_TIMEOUT,
    ) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// One line of `/proc/self/mountinfo`, the parts the lab needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: PathBuf,
    /// Filesystem type: `nsfs` for a bind-mounted namespace file.
    pub fs_type: String,
    /// Root of the mount within its filesystem: `net:[4026532...]` for a network namespace.
    pub root: String,
    /// Has a `shared:N` tag: in a peer group, so mounts under it propagate.
    pub shared: bool,
}

/// Parses the text of a mountinfo file. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [optional...] - FSTYPE SOURCE SUPER
            let sep = fields.iter().position(|f| *f == "-")?;
            if sep < 6 {
                return None;
            }
            Some(MountEntry {
                root: unescape_mount(fields[3]),
                mount_point: PathBuf::from(std::ffi::OsStr::from_bytes(&unescape_mountinfo(
                    fields[4],
                ))),
                fs_type: fields.get(sep + 1)?.to_string(),
                shared: fields[6..sep].iter().any(|f| f.starts_with("shared:")),
            })
        })
        .collect()
}

/// Decodes the `\NNN` octal escapes mountinfo uses for space, tab, newline and backslash, as
/// bytes (a path need not be UTF-8).
pub fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match escape {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn unescape_mount(s: &str) -> String {
    String::from_utf8_lossy(&unescape_mountinfo(s)).into_owned()
}

/// Mounts of this process's mount namespace at or below `dir`, deepest first (the order to
/// unmount them in).
pub fn mounts_under(dir: &Path) -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<MountEntry> = parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.mount_point.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
    found
}

/// Detaches every mount at or below `dir` (lazy unmount: a namespace file still in use by a
/// process goes away when that process lets go). Errors are ignored: teardown must go on.
pub fn unmount_all_under(dir: &Path) {
    // A mount can be stacked several times on one point; a few rounds take them all.
    for _ in 0..4 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let Ok(c) = std::ffi::CString::new(m.mount_point.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: umount2(2) with a valid NUL-terminated path.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

#[cfg(test)]
mod tests;
