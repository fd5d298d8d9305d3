//! vxnet's test lab: multi-host networks in network namespaces, and helpers to drive the
//! `vxnet` CLI, ping, iperf3 and packet captures inside them.
//!
//! Rules a test relies on:
//! - Every test that builds a lab starts with `if !require_root() { return; }`: without root it
//!   fails loudly, unless `VXNET_SKIP_ROOT_TESTS=1` turns it into a skip ([`require_root`]).
//! - Traffic only ever goes to addresses inside namespaces the lab made; the underlay is
//!   198.18.0.0/24 on a bridge in the lab's own namespace ([`lab::topology`]).
//! - Every wait and every command is bounded in time ([`wait`], [`cmd`]).
//! - A [`Lab`] cleans up after itself in `Drop`, also when the test panics
//!   ([`lab::teardown`]).
//! - Cluster tests form clusters with [`Lab::cluster`] / [`Lab::form_cluster`]
//!   ([`lab::cluster`]) and read `members`/`fdb`/`inspect` JSON as [`vxnet_json`] types; every
//!   polling query runs with a short CLI `--timeout` ([`lab::daemon`]).
//! - Hand-made frames and VXLAN datagrams come from [`wire`]; captured ones are read with
//!   [`capture`].
//! - The `vxnet` binary is found by [`vxnet_bin`]: `$VXNET_BIN`, else next to the running test
//!   or bench executable in the cargo target dir; build it first with `cargo build --workspace`.

pub mod capture;
pub mod chaos;
pub mod cmd;
pub mod iperf;
pub mod lab;
pub mod netns;
pub mod ping;
pub mod scenario;
pub mod vxnet_json;
pub mod wait;
pub mod who;
pub mod wire;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub use capture::{Capture, Frame};
pub use lab::{Container, Host, HostKind, KernelNetwork, Lab, LabBuilder, TimedOutput};
pub use ping::{PingOptions, PingStats};
pub use vxnet_json::{EndpointInfo, FdbEntry, Member, NetworkInfo, Role};
pub use wait::{wait_for, wait_for_strict};

/// Environment variable that turns "needs root" into a skip instead of a failure.
pub const SKIP_ROOT_ENV: &str = "VXNET_SKIP_ROOT_TESTS";

/// Environment variable naming the vxnet binary to test.
pub const VXNET_BIN_ENV: &str = "VXNET_BIN";

/// Whether this process runs as root (effective uid 0), which building a lab needs.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The root check of every lab test. Returns true as root. Without root: with
/// `VXNET_SKIP_ROOT_TESTS=1`, prints a skip line and returns false (the test returns early);
/// otherwise panics, because a silently skipped integration suite looks exactly like a passing
/// one.
pub fn require_root() -> bool {
    if is_root() {
        return true;
    }
    if std::env::var(SKIP_ROOT_ENV).is_ok_and(|v| v == "1") {
        eprintln!(
            "skipped: {} needs root ({SKIP_ROOT_ENV}=1)",
            std::thread::current().name().unwrap_or("this test")
        );
        return false;
    }
    panic!(
        "this test needs root (network namespaces, TAP devices); run as root or set \
         {SKIP_ROOT_ENV}=1 to skip"
    );
}

/// The `vxnet` binary under test; panics with what to do if there is none.
pub fn vxnet_bin() -> PathBuf {
    match find_vxnet_bin() {
        Ok(p) => p,
        Err(e) => panic!("{e:#}"),
    }
}

/// Finds the `vxnet` binary: `$VXNET_BIN`; else `vxnet` in the directory of the running
/// executable or its parent (test binaries live in `target/<profile>/deps/`, the bench in
/// `target/<profile>/`); else `$CARGO_TARGET_DIR/<profile>/vxnet` or
/// `<workspace>/target/<profile>/vxnet`, the newest of debug and release.
pub fn find_vxnet_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(VXNET_BIN_ENV) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{VXNET_BIN_ENV}={} is not a file", p.display());
    }
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("vxnet");
            if candidate.is_file() {
                return Ok(candidate);
            }
            tried.push(candidate);
        }
    }
    let mut target_dirs = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        target_dirs.push(PathBuf::from(t));
    }
    target_dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for t in target_dirs {
        for profile in ["debug", "release"] {
            let candidate = t.join(profile).join("vxnet");
            if let Ok(mtime) = candidate.metadata().and_then(|m| m.modified()) {
                if newest.as_ref().is_none_or(|(m, _)| mtime > *m) {
                    newest = Some((mtime, candidate.clone()));
                }
            }
            if !tried.contains(&candidate) {
                tried.push(candidate);
            }
        }
    }
    if let Some((_, p)) = newest {
        return Ok(p);
    }
    bail!(
        "no vxnet binary (tried {}); build it first: cargo build --workspace (or set {VXNET_BIN_ENV})",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
