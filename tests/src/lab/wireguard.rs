//! WireGuard between lab hosts: the sealed carrier of the benchmark's `kernel-wg` and
//! `userspace-wg` anchors, kernel vxlan whose VTEPs talk over the tunnel instead of the underlay.
//!
//! Rules:
//! - [`Lab::wireguard`] gives every listed host namespace a WireGuard device with address
//!   [`wg_addr`]`(i)`/24, listening on UDP [`WG_PORT`], with one peer per other listed host:
//!   its public key, its underlay address as the endpoint, its tunnel address as the only
//!   allowed IP. Keys come from `wg genkey` / `wg pubkey` (wireguard-tools), the private one in
//!   the host's data dir, 0600. Both implementations ([`WireGuard`]) are configured alike, with
//!   `wg set` and `ip`; only the device differs:
//!   - [`WireGuard::Kernel`]: `ip link add wg0 type wireguard` ([`WG_DEV`]). A kernel without
//!     WireGuard (`CONFIG_WIREGUARD` unset, no module) fails with one error that says so,
//!     before any key is made.
//!   - [`WireGuard::Boringtun`]: boringtun, Cloudflare's userspace WireGuard, one
//!     `boringtun-cli` process per host serving a TUN device (see [`boringtun`]). A missing
//!     `boringtun-cli` fails with one error that says how to install it, before any process
//!     starts.
//! - The device has MTU [`WG_MTU`]: the underlay's 1500 minus what WireGuard adds on IPv4
//!   (outer IP 20, UDP 8, WireGuard header 16, tag 16), so a full tunnel packet still fits the
//!   underlay; the protocol, hence the overhead, is the same in both implementations. A kernel
//!   vxlan device over it then has [`WG_MTU`] − 50.
//! - A missing `wg` tool names the package.
//! - Nothing outlives the lab: kernel devices die with the host namespaces; boringtun processes
//!   are stopped at teardown (their TUN devices and control sockets go with them); the keys go
//!   with the lab root.

pub mod boringtun;

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use super::iproute::ip;
use super::{lock, Lab};
use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::netns;

/// Name of the kernel tunnel device in a host namespace.
pub const WG_DEV: &str = "wg0";
/// UDP port every host's WireGuard device listens on.
pub const WG_PORT: u16 = 51820;
/// MTU of the WireGuard device: 1500 − 60 (IPv4 20 + UDP 8 + WireGuard header 16 + tag 16).
pub const WG_MTU: u32 = 1440;

/// Which WireGuard carries the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireGuard {
    /// The Linux kernel's (`CONFIG_WIREGUARD`), device [`WG_DEV`].
    Kernel,
    /// boringtun in userspace: a `boringtun-cli` process per host, device
    /// [`boringtun::device_name`].
    Boringtun,
}

/// The tunnel address of host `index`: 10.250.0.(1 + index).
pub fn wg_addr(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, 0, u8::try_from(1 + index).unwrap_or(u8::MAX))
}

impl Lab {
    /// Joins the host namespaces of `hosts` with WireGuard of kind `kind` (see the module
    /// docs).
    pub fn wireguard(&self, hosts: &[usize], kind: WireGuard) -> Result<()> {
        let mtu = WG_MTU.to_string();
        let mut devices = Vec::new();
        match kind {
            WireGuard::Kernel => {
                for &h in hosts {
                    let ns = self.host(h).ns();
                    ip(
                        ns,
                        &["link", "add", WG_DEV, "mtu", &mtu, "type", "wireguard"],
                    )
                    .map_err(|e| {
                        anyhow!(
                            "this kernel ({}) has no WireGuard (CONFIG_WIREGUARD, module \
                             wireguard): {e:#}",
                            kernel_release()
                        )
                    })?;
                    devices.push(WG_DEV.to_string());
                }
            }
            WireGuard::Boringtun => {
                let bin = boringtun::find_bin()?;
                for &h in hosts {
                    let host = self.host(h);
                    let bt = boringtun::Boringtun::start(&bin, host.ns(), host.data_dir())?;
                    let dev = bt.device().to_string();
                    // Kept by the lab at once, so a later failure still stops it.
                    lock(&self.boringtuns).push(bt);
                    ip(host.ns(), &["link", "set", &dev, "mtu", &mtu])?;
                    devices.push(dev);
                }
            }
        }
        let mut public = Vec::new();
        for &h in hosts {
            let key = self.host(h).data_dir().join("wg.key");
            let private = wg(Command::new("wg").arg("genkey"))?;
            // Made 0600 before the key is in it, never readable by others.
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)
                .and_then(|mut f| f.write_all(private.trim().as_bytes()))
                .with_context(|| format!("writing {}", key.display()))?;
            let mut pubkey = Command::new("sh");
            pubkey.args(["-c", "wg pubkey < \"$1\"", "sh"]).arg(&key);
            public.push(wg(&mut pubkey)?.trim().to_string());
        }
        let port = WG_PORT.to_string();
        for (i, (&h, dev)) in hosts.iter().zip(&devices).enumerate() {
            let host = self.host(h);
            let key = host.data_dir().join("wg.key");
            let key = key.to_string_lossy();
            let mut args = vec![
                "wg".to_string(),
                "set".into(),
                dev.clone(),
                "private-key".into(),
                key.into_owned(),
                "listen-port".into(),
                port.clone(),
            ];
            for (j, &p) in hosts.iter().enumerate() {
                if j != i {
                    args.extend([
                        "peer".into(),
                        public[j].clone(),
                        "endpoint".into(),
                        format!("{}:{WG_PORT}", self.host(p).addr()),
                        "allowed-ips".into(),
                        format!("{}/32", wg_addr(p)),
                    ]);
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            wg(&mut netns::command(host.ns(), &args))?;
            let cidr = format!("{}/24", wg_addr(h));
            ip(host.ns(), &["addr", "add", &cidr, "dev", dev])?;
            ip(host.ns(), &["link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// Pids of the lab's `boringtun-cli` processes (none without [`WireGuard::Boringtun`]):
    /// the benchmark counts their CPU as the userspace anchor's daemons.
    pub fn boringtun_pids(&self) -> Vec<u32> {
        lock(&self.boringtuns)
            .iter()
            .filter_map(boringtun::Boringtun::pid)
            .collect()
    }
}

/// Runs a `wg` command line, naming the package when the tool is missing.
fn wg(c: &mut Command) -> Result<String> {
    if !have_wg() {
        bail!("`wg` not found: install wireguard-tools (scripts/install-deps.sh does)");
    }
    cmd::run_ok(c, DEFAULT_TIMEOUT)
}

/// Whether the `wg` tool is on the PATH.
fn have_wg() -> bool {
    on_path("wg").is_some()
}

/// Where `program` is on the PATH, if it is.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `uname -r`, for the error message.
fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests;
