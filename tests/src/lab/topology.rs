//! Names and addresses of a lab, and the underlay bridge that joins its hosts.
//!
//! Rules:
//! - A lab's prefix is `vl<pid>x<n>` ([`LAB_TAG`], the process id, a per-process counter): labs
//!   never collide, in one process or many, and a stale lab's owner can be read off its name.
//! - Namespaces: `PREFIX-u` (underlay), `PREFIX-h<i>` (host `i`), `PREFIX-<container>`. Files:
//!   `$TMPDIR/vxnet-lab-PREFIX/` (the lab root), `ROOT/h<i>/` (host `i`'s data dir).
//! - The underlay is 198.18.0.0/24 (RFC 2544 benchmarking space: never routed anywhere real):
//!   bridge [`UNDERLAY_BRIDGE`] in the underlay namespace holds [`UNDERLAY_GATEWAY`], host `i`
//!   is [`host_addr`]`(i)` on its [`HOST_UPLINK`], whose bridge port is the veth `h<i>`.
//! - Every namespace the lab makes has `lo` up and IPv6 off (see the lab docs).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{anyhow, bail, Context, Result};

use super::iproute::ip;
use super::{lock, Lab};
use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::netns;

/// First octets of the underlay subnet, 198.18.0.0/24.
pub const UNDERLAY_NET: [u8; 3] = [198, 18, 0];
/// The underlay prefix length.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
/// The underlay bridge's own address: a non-host sender for "not a peer" tests.
pub const UNDERLAY_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Name of the bridge in the underlay namespace.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// Name of a host's underlay interface, inside the host namespace.
pub const HOST_UPLINK: &str = "eth0";

/// Marks lab namespaces, so stale ones from a killed run can be recognised.
pub const LAB_TAG: &str = "vl";

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The underlay address of host `index`: 198.18.0.(10 + index).
pub fn host_addr(index: usize) -> Ipv4Addr {
    let last = u8::try_from(10 + index).unwrap_or(u8::MAX);
    Ipv4Addr::new(UNDERLAY_NET[0], UNDERLAY_NET[1], UNDERLAY_NET[2], last)
}

/// A fresh lab prefix, `vl<pid>x<n>`.
pub(super) fn new_prefix() -> String {
    let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
    prefix_of(std::process::id(), n)
}

fn prefix_of(pid: u32, n: u32) -> String {
    format!("{LAB_TAG}{pid}x{n}")
}

/// The pid in a lab namespace name (`vl<pid>x<n>-...`) and that name's prefix; `None` for a
/// name the lab did not make.
pub(super) fn owner_of(ns: &str) -> Option<(&str, u32)> {
    let prefix = ns.split('-').next()?;
    let pid = prefix
        .strip_prefix(LAB_TAG)
        .and_then(|r| r.split('x').next())
        .and_then(|p| p.parse().ok())?;
    Some((prefix, pid))
}

/// The temp root of the lab with `prefix`.
pub(super) fn lab_root(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vxnet-lab-{prefix}"))
}

/// The underlay namespace of the lab with `prefix`.
pub(super) fn underlay_ns(prefix: &str) -> String {
    format!("{prefix}-u")
}

/// Host `index`'s short name: its namespace suffix, bridge port, data dir and `--name`.
pub(super) fn host_name(index: usize) -> String {
    format!("h{index}")
}

/// Splits `A.B.C.D/LEN`.
pub fn split_cidr(cidr: &str) -> Result<(Ipv4Addr, u8)> {
    let (a, l) = cidr
        .split_once('/')
        .ok_or_else(|| anyhow!("{cidr:?} is not A.B.C.D/LEN"))?;
    let addr = a
        .parse()
        .with_context(|| format!("{cidr:?}: bad address"))?;
    let len: u8 = l.parse().with_context(|| format!("{cidr:?}: bad length"))?;
    if len > 32 {
        bail!("{cidr:?}: prefix length above 32");
    }
    Ok((addr, len))
}

/// Whether `ip` lies in `cidr` (`A.B.C.D/LEN`).
pub fn in_subnet(ip: Ipv4Addr, cidr: &str) -> Result<bool> {
    let (net, len) = split_cidr(cidr)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ok(u32::from(ip) & mask == u32::from(net) & mask)
}

impl Lab {
    /// `PREFIX-NAME`: the namespace of this lab's host or container `name`.
    pub(super) fn ns_name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Creates namespace `name` for this lab, registered for teardown before it exists.
    pub(super) fn add_namespace(&self, name: &str) -> Result<()> {
        // Registered before creation, so a half-made namespace is still cleaned up.
        lock(&self.namespaces).push(name.to_string());
        netns::create(name)?;
        // See the module docs: no IPv6 chatter on the overlay.
        for key in ["all", "default"] {
            let _ = netns::exec(
                name,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                ],
            );
        }
        Ok(())
    }

    /// The underlay namespace with its bridge up and addressed.
    pub(super) fn make_underlay(&self, mtu: u32) -> Result<()> {
        let ns = &self.underlay;
        self.add_namespace(ns)?;
        let mtu = mtu.to_string();
        ip(
            ns,
            &[
                "link",
                "add",
                UNDERLAY_BRIDGE,
                "mtu",
                &mtu,
                "type",
                "bridge",
            ],
        )?;
        // No STP delay: ports forward as soon as they are up.
        ip(
            ns,
            &[
                "link",
                "set",
                UNDERLAY_BRIDGE,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ],
        )?;
        ip(
            ns,
            &[
                "addr",
                "add",
                &format!("{UNDERLAY_GATEWAY}/{UNDERLAY_PREFIX_LEN}"),
                "dev",
                UNDERLAY_BRIDGE,
            ],
        )?;
        ip(ns, &["link", "set", UNDERLAY_BRIDGE, "up"])?;
        Ok(())
    }

    /// Makes `host_ns`'s uplink (peer of underlay `port`) receive through NAPI with GRO, as a
    /// NIC's driver does (see [`super::LabBuilder::nic_gro`]).
    pub(super) fn merge_received(&self, port: &str, host_ns: &str) -> Result<()> {
        ethtool_features(&self.underlay, port, &["tso", "off"])?;
        ethtool_features(host_ns, HOST_UPLINK, &["gro", "on"])
    }

    /// Plugs host namespace `host_ns` into the underlay: a veth whose bridge end is `port` and
    /// whose host end is [`HOST_UPLINK`], MTU `mtu`, addressed `addr`. The uplink is left
    /// down; the caller brings it up once it is configured.
    pub(super) fn add_uplink(
        &self,
        port: &str,
        host_ns: &str,
        addr: Ipv4Addr,
        mtu: u32,
    ) -> Result<()> {
        let mtu = mtu.to_string();
        // Created inside the underlay namespace, peer moved straight into the host namespace:
        // the root namespace never sees either end.
        ip(
            &self.underlay,
            &[
                "link",
                "add",
                port,
                "mtu",
                &mtu,
                "type",
                "veth",
                "peer",
                "name",
                HOST_UPLINK,
                "mtu",
                &mtu,
                "netns",
                host_ns,
            ],
        )?;
        ip(
            &self.underlay,
            &["link", "set", port, "master", UNDERLAY_BRIDGE],
        )?;
        ip(&self.underlay, &["link", "set", port, "up"])?;
        ip(
            host_ns,
            &[
                "addr",
                "add",
                &format!("{addr}/{UNDERLAY_PREFIX_LEN}"),
                "dev",
                HOST_UPLINK,
            ],
        )?;
        Ok(())
    }

    /// The index of the lab host whose underlay address is `ip`.
    pub fn host_by_addr(&self, ip: Ipv4Addr) -> Option<usize> {
        self.hosts().iter().position(|h| h.addr() == ip)
    }
}

/// `ethtool -K DEV SETTINGS...` in namespace `ns`.
pub(super) fn ethtool_features(ns: &str, dev: &str, settings: &[&str]) -> Result<()> {
    let mut args = vec!["ethtool", "-K", dev];
    args.extend_from_slice(settings);
    cmd::run_ok(&mut netns::command(ns, &args), DEFAULT_TIMEOUT)
        .map(drop)
        .with_context(|| {
            format!(
                "ethtool -K {dev} {} in {ns} (apt-get install -y ethtool)",
                settings.join(" ")
            )
        })
}

#[cfg(test)]
mod tests;
