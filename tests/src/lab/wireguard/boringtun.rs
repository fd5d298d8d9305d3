//! boringtun, Cloudflare's userspace WireGuard, as a lab host's tunnel: the carrier of the
//! benchmark's `userspace-wg` anchor on kernels without WireGuard.
//!
//! Rules:
//! - One `boringtun-cli DEV --foreground --disable-drop-privileges --threads N` per host,
//!   entered into the host's network namespace only, with `nsenter --net` (not `ip netns
//!   exec`, which also gives it a mount namespace of its own): like the lab's daemons it stays
//!   in the machine's mount namespace, where `wg` finds its socket. It makes the TUN
//!   device `DEV` in that namespace and serves WireGuard's userspace control socket
//!   `/var/run/wireguard/DEV.sock`, through which `wg set DEV ...` configures it exactly like a
//!   kernel device. N is the machine's CPU count, as the kernel's WireGuard encrypts on every
//!   CPU.
//! - `/var/run/wireguard` is one directory for the whole machine, whatever the network
//!   namespace, and boringtun takes over a socket path that exists: device names must be unique
//!   on the machine, not only in their namespace. They are `wg<pid>-<n>` ([`device_name`]): the
//!   lab process's pid and a counter of the devices it made, at most 15 bytes (`IFNAMSIZ`).
//! - `Boringtun::start` returns once the control socket exists (bounded wait), or fails with
//!   the process's log if it exits first.
//! - Dropping a [`Boringtun`] (at lab teardown) stops the process with SIGTERM, on which it
//!   removes its socket, SIGKILL after [`STOP_TIMEOUT`]; the socket is removed if still there.
//!   The TUN device goes with the process. `reap_stale_sockets` removes the sockets that a
//!   killed lab process left (owner pid gone, older than
//!   [`STALE_AFTER`](crate::lab::teardown::STALE_AFTER)).
//! - The binary is `$VXNET_BORINGTUN`, else `boringtun-cli` on the PATH, else
//!   [`TOOLS_BIN`]`/boringtun-cli`, where `scripts/install-deps.sh --bench` installs it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cmd::Background;
use crate::lab::teardown::left_by_the_dead;
use crate::netns;

/// Environment variable that names the `boringtun-cli` binary.
pub const BORINGTUN_ENV: &str = "VXNET_BORINGTUN";
/// Where `scripts/install-deps.sh --bench` installs `boringtun-cli`.
pub const TOOLS_BIN: &str = "/opt/vxnet-tools/bin";
/// The directory of WireGuard's userspace control sockets, fixed in boringtun and in `wg`.
pub const SOCKET_DIR: &str = "/var/run/wireguard";
/// How long a fresh `boringtun-cli` may take to serve its control socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `boringtun-cli` has to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Counts the devices this process made, for [`device_name`].
static DEVICES: AtomicU32 = AtomicU32::new(0);

/// Counter values are taken modulo this, which keeps a name within 15 bytes for any pid
/// (at most 7 digits: Linux's `pid_max` is at most 2²²).
const COUNTER_MODULUS: u32 = 100_000;

/// The device name of the `n`th boringtun device made by process `pid`: `wg<pid>-<n>`.
pub fn device_name(pid: u32, n: u32) -> String {
    format!("wg{pid}-{}", n % COUNTER_MODULUS)
}

/// The pid in a control socket's file name that [`device_name`] made (`wg<pid>-<n>.sock`);
/// `None` for any other name.
pub fn socket_owner(file_name: &str) -> Option<u32> {
    let (pid, n) = file_name
        .strip_prefix("wg")?
        .strip_suffix(".sock")?
        .split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// The control socket of device `dev`.
pub fn socket_path(dev: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{dev}.sock"))
}

/// The `boringtun-cli` binary (see the module docs for where it is looked for).
pub fn find_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(BORINGTUN_ENV) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{BORINGTUN_ENV}={} is not a file", p.display());
    }
    if let Some(p) = super::on_path("boringtun-cli") {
        return Ok(p);
    }
    let p = Path::new(TOOLS_BIN).join("boringtun-cli");
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "`boringtun-cli` not found (${BORINGTUN_ENV}, PATH, {TOOLS_BIN}): install it with \
         `scripts/install-deps.sh --bench` (cargo install boringtun-cli --locked --root \
         /opt/vxnet-tools)"
    )
}

/// A running `boringtun-cli` and its device (see the module docs).
pub struct Boringtun {
    /// `None` once stopped.
    process: Option<Background>,
    device: String,
    socket: PathBuf,
}

impl Boringtun {
    /// Starts `bin` in the lab host namespace `ns`, logging to `DATA_DIR/boringtun.log`, and
    /// waits for its control socket.
    pub(in crate::lab) fn start(bin: &Path, ns: &str, data_dir: &Path) -> Result<Boringtun> {
        let n = DEVICES.fetch_add(1, Ordering::Relaxed);
        let device = device_name(std::process::id(), n);
        let socket = socket_path(&device);
        // Only a process with our pid made this name: a socket left by one that died.
        let _ = fs::remove_file(&socket);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", netns::netns_path(ns).display()))
            .arg(bin)
            .arg(&device)
            .args(["--foreground", "--disable-drop-privileges", "--threads"])
            .arg(&threads);
        let log = data_dir.join("boringtun.log");
        let process = Background::spawn("boringtun-cli", &mut c, &log)?;
        let mut bt = Boringtun {
            process: Some(process),
            device,
            socket,
        };
        bt.wait_ready(&log)?;
        Ok(bt)
    }

    /// Waits (bounded) for the control socket; fails if the process exits first.
    fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.socket.exists() {
                return Ok(());
            }
            let exited = self.process.as_mut().and_then(Background::try_wait);
            if exited.is_some() || Instant::now() > deadline {
                let why = match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!(
                        "served no {} within {START_TIMEOUT:?}",
                        self.socket.display()
                    ),
                };
                let text = fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "boringtun-cli {} {why}; its log ({}): {}",
                    self.device,
                    log.display(),
                    text.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TUN device's name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Background::pid)
    }
}

impl Drop for Boringtun {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop(libc::SIGTERM, STOP_TIMEOUT);
        }
        let _ = fs::remove_file(&self.socket);
    }
}

/// Removes the control sockets of [`device_name`]s whose owner process is gone and that are
/// older than [`STALE_AFTER`](crate::lab::teardown::STALE_AFTER) (one of a process in another
/// pid namespace, invisible in our /proc, is left alone while young). Best effort and silent.
pub(in crate::lab) fn reap_stale_sockets() {
    let Ok(entries) = fs::read_dir(SOCKET_DIR) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(socket_owner) else {
            continue;
        };
        if left_by_the_dead(&e, pid) {
            let _ = fs::remove_file(e.path());
        }
    }
}
