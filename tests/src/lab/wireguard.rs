//! Kernel WireGuard between lab hosts: the sealed carrier of the benchmark's `kernel-wg` anchor,
//! kernel vxlan whose VTEPs talk over the tunnel instead of the underlay.
//!
//! Rules:
//! - [`Lab::wireguard`] gives every listed host namespace a `wg0` ([`WG_DEV`]) with address
//!   [`wg_addr`]`(i)`/24, listening on UDP [`WG_PORT`], with one peer per other listed host:
//!   its public key, its underlay address as the endpoint, its `wg0` address as the only
//!   allowed IP. Keys come from `wg genkey` / `wg pubkey` (wireguard-tools), the private one in
//!   the host's data dir, 0600.
//! - `wg0` has MTU [`WG_MTU`]: the underlay's 1500 minus what WireGuard adds on IPv4 (outer IP
//!   20, UDP 8, WireGuard header 16, tag 16), so a full tunnel packet still fits the underlay.
//!   A kernel vxlan device over it then has [`WG_MTU`] − 50.
//! - A kernel without WireGuard (`CONFIG_WIREGUARD` unset, no module) fails with one error
//!   that says so, before any key is made; a missing `wg` tool names the package.
//! - Nothing outlives the lab: the devices die with the host namespaces, the keys with the lab
//!   root.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use super::iproute::ip;
use super::Lab;
use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::netns;

/// Name of the tunnel device in a host namespace.
pub const WG_DEV: &str = "wg0";
/// UDP port every host's `wg0` listens on.
pub const WG_PORT: u16 = 51820;
/// MTU of `wg0`: 1500 − 60 (IPv4 20 + UDP 8 + WireGuard header 16 + tag 16).
pub const WG_MTU: u32 = 1440;

/// The tunnel address of host `index`: 10.250.0.(1 + index).
pub fn wg_addr(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, 0, u8::try_from(1 + index).unwrap_or(u8::MAX))
}

impl Lab {
    /// Joins the host namespaces of `hosts` with kernel WireGuard (see the module docs).
    pub fn wireguard(&self, hosts: &[usize]) -> Result<()> {
        for &h in hosts {
            let ns = self.host(h).ns();
            let mtu = WG_MTU.to_string();
            ip(
                ns,
                &["link", "add", WG_DEV, "mtu", &mtu, "type", "wireguard"],
            )
            .map_err(|e| {
                anyhow!(
                    "this kernel ({}) has no WireGuard (CONFIG_WIREGUARD, module wireguard): \
                     {e:#}",
                    kernel_release()
                )
            })?;
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
        for (i, &h) in hosts.iter().enumerate() {
            let host = self.host(h);
            let key = host.data_dir().join("wg.key");
            let key = key.to_string_lossy();
            let mut args = vec![
                "wg".to_string(),
                "set".into(),
                WG_DEV.into(),
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
            ip(host.ns(), &["addr", "add", &cidr, "dev", WG_DEV])?;
            ip(host.ns(), &["link", "set", WG_DEV, "up"])?;
        }
        Ok(())
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
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("wg").is_file()))
}

/// `uname -r`, for the error message.
fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
