//! Containers: network namespaces that belong to one lab host, and connecting them to vxnet
//! overlays.
//!
//! Rules:
//! - A container is the namespace `PREFIX-NAME`, made empty (only `lo`) by [`Lab::container`];
//!   its namespace name is the TARGET of `vxnet network connect` and, by default, the endpoint
//!   name `network inspect` lists.
//! - Container names are 1–24 of `[a-z0-9-]` and unique per lab.
//! - On a kernel vxlan host, [`Lab::kernel_container`](super::Lab::kernel_container) makes and
//!   plugs in a container in one step instead.

use std::net::Ipv4Addr;
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::iproute::{neighbour_lladdr, parse_ipv4_addrs, parse_link_names};
use super::{lock, Host, Lab};
use crate::netns;
use crate::ping::{self, PingStats};

/// A container: a network namespace that belongs to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Name given by the test (`c1`).
    pub name: String,
    /// Namespace name (`PREFIX-c1`): the TARGET of `vxnet network connect`.
    pub ns: String,
    /// Index of its host.
    pub host: usize,
}

impl Container {
    /// Runs `args` inside the container; the output whatever the status.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        netns::exec(&self.ns, args)
    }

    /// Runs `args` inside the container; non-zero exit is an error. Returns stdout.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        netns::exec_ok(&self.ns, args)
    }

    /// `ping -c count ip` from the container; loss is not an error.
    pub fn ping(&self, ip: &str, count: u32) -> Result<PingStats> {
        ping::ping(&self.ns, ip, count)
    }

    /// Waits (bounded) until `ip` answers a ping from the container.
    pub fn wait_reachable(&self, ip: &str, timeout: Duration) -> Result<()> {
        ping::wait_reachable(&self.ns, ip, timeout)
    }

    /// Interface names in the container (`ip -o link`), for "no half state" checks.
    pub fn links(&self) -> Result<Vec<String>> {
        Ok(parse_link_names(
            &self.exec_ok(&["ip", "-o", "link", "show"])?,
        ))
    }

    /// The MAC the container's neighbour table holds for `ip`, if any entry has one.
    pub fn neighbour_mac(&self, ip: &str) -> Result<Option<String>> {
        Ok(neighbour_lladdr(
            &self.exec_ok(&["ip", "neigh", "show", ip])?,
        ))
    }

    /// Every IPv4 address configured in the container, as `(interface, address, length)`.
    pub fn ipv4_addrs(&self) -> Result<Vec<(String, Ipv4Addr, u8)>> {
        parse_ipv4_addrs(&self.exec_ok(&["ip", "-o", "-4", "addr", "show"])?)
    }
}

impl Lab {
    /// Creates container namespace `PREFIX-NAME` belonging to host `host` (nothing attached
    /// yet: connect it with [`Host::connect`] or [`Host::connect_auto`], or use
    /// [`Lab::kernel_container`] on a kernel host).
    pub fn container(&self, host: usize, name: &str) -> Result<Container> {
        if name.is_empty()
            || name.len() > 24
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!("container name {name:?}: use 1-24 of [a-z0-9-]");
        }
        if host >= self.hosts.len() {
            bail!("no host {host} in a lab of {}", self.hosts.len());
        }
        let ns = self.ns_name(name);
        if lock(&self.namespaces).contains(&ns) {
            bail!("container {name} already exists in this lab");
        }
        self.add_namespace(&ns)?;
        Ok(Container {
            name: name.to_string(),
            ns,
            host,
        })
    }

    /// One new container `c<h>` on each host `h` of `hosts`, connected to `network` without
    /// `--ip` ([`Host::connect_auto`]); each with the address it got, in the order of `hosts`.
    pub fn container_per_host(
        &self,
        network: &str,
        hosts: &[usize],
    ) -> Result<Vec<(Container, Ipv4Addr)>> {
        hosts
            .iter()
            .map(|&h| {
                let c = self.container(h, &format!("c{h}"))?;
                let ip = self
                    .host(h)
                    .connect_auto(network, &c)
                    .with_context(|| format!("connect c{h} on h{h}"))?;
                Ok((c, ip))
            })
            .collect()
    }
}

impl Host {
    /// `vxnet network connect --ip IP NETWORK <container ns>`.
    pub fn connect(&self, network: &str, container: &Container, ip: &str) -> Result<String> {
        self.vxnet_checked(&["network", "connect", "--ip", ip, network, &container.ns])
    }

    /// `network connect NETWORK <container>` without `--ip`; returns the address the daemon
    /// chose, read from inside the container (the one address that was not there before).
    pub fn connect_auto(&self, network: &str, container: &Container) -> Result<Ipv4Addr> {
        let before = container.ipv4_addrs()?;
        self.vxnet_checked(&["network", "connect", network, &container.ns])?;
        let after = container.ipv4_addrs()?;
        let new: Vec<Ipv4Addr> = after
            .iter()
            .filter(|a| !before.contains(a))
            .map(|(_, ip, _)| *ip)
            .collect();
        match new.as_slice() {
            [ip] => Ok(*ip),
            _ => bail!(
                "connect {network} {}: expected one new address in the container, got {after:?} \
                 (before: {before:?})",
                container.ns
            ),
        }
    }
}
