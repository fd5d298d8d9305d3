//! Kernel vxlan hosts: the Linux kernel's own VTEP, as the `--peer` of a vxnet network (the
//! interop tests) or on its own (the lab self-tests and the benchmark's baseline).
//!
//! Rules:
//! - A [`HostKind::KernelVxlan`] host runs no daemon. [`Lab::kernel_network`] gives it one
//!   overlay: `vx0` (the VNI, dstport 4789, local = the host's underlay address, or a tunnel's
//!   address when [`KernelNetwork::tunnel`] says so, see `wireguard.rs`) enslaved to
//!   bridge `br0`, with an all-zero FDB entry per peer, so broadcast and unknown unicast are
//!   replicated to every peer (head-end replication, no underlay multicast). MAC learning stays
//!   on, so replies go straight to the VTEP they came from. This is the kernel side of
//!   README, "Static peers and kernel vxlan".
//! - Containers on it get the MAC vxnet would give their address (`02:42:` + the IPv4 bytes),
//!   so captures and neighbour tables read the same on both kinds of host.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use anyhow::{anyhow, bail, Result};

use super::iproute::ip;
use super::topology::{split_cidr, HOST_UPLINK};
use super::{lock, Container, Host, HostKind, Lab};
use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::netns;
use crate::wire::{self, VXLAN_PORT};

/// The kernel vxlan overlay of a [`HostKind::KernelVxlan`] host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNetwork {
    /// VXLAN network identifier.
    pub vni: u32,
    /// MTU of the vxlan device, the bridge and the containers' interfaces.
    pub mtu: u32,
    /// Remote VTEPs that get broadcast/unknown traffic (all-zero FDB entries).
    pub peers: Vec<Ipv4Addr>,
    /// The VTEP's own address when it is a tunnel's (WireGuard's `wg0`) rather than the host's
    /// underlay address. Then `vx0` is bound to no device: the route to the peers (the
    /// tunnel's subnet) picks the tunnel.
    pub tunnel: Option<Ipv4Addr>,
}

impl Host {
    /// The kernel vxlan network of a kernel host, if set up.
    pub fn kernel_network(&self) -> Option<KernelNetwork> {
        lock(&self.kernel).clone()
    }
}

impl Lab {
    /// Sets up the kernel vxlan overlay on kernel host `host` (see the module docs).
    pub fn kernel_network(&self, host: usize, net: &KernelNetwork) -> Result<()> {
        let h = self.host(host);
        if h.kind() != HostKind::KernelVxlan {
            bail!("host {host} is not a kernel vxlan host");
        }
        let mut slot = lock(&h.kernel);
        if slot.is_some() {
            bail!("host {host} already has its kernel vxlan network");
        }
        let ns = &h.ns;
        let mtu = net.mtu.to_string();
        let addr = net.tunnel.unwrap_or(h.addr).to_string();
        let vni = net.vni.to_string();
        let port = VXLAN_PORT.to_string();
        let mut vx0 = vec![
            "link", "add", "vx0", "mtu", &mtu, "type", "vxlan", "id", &vni, "dstport", &port,
            "local", &addr,
        ];
        if net.tunnel.is_none() {
            vx0.extend(["dev", HOST_UPLINK]);
        }
        ip(ns, &vx0)?;
        ip(ns, &["link", "add", "br0", "mtu", &mtu, "type", "bridge"])?;
        ip(
            ns,
            &["link", "set", "br0", "type", "bridge", "forward_delay", "0"],
        )?;
        ip(ns, &["link", "set", "vx0", "master", "br0"])?;
        for peer in &net.peers {
            cmd::run_ok(
                &mut netns::command(
                    ns,
                    &[
                        "bridge",
                        "fdb",
                        "append",
                        "00:00:00:00:00:00",
                        "dev",
                        "vx0",
                        "dst",
                        &peer.to_string(),
                    ],
                ),
                DEFAULT_TIMEOUT,
            )?;
        }
        ip(ns, &["link", "set", "vx0", "up"])?;
        ip(ns, &["link", "set", "br0", "up"])?;
        *slot = Some(net.clone());
        Ok(())
    }

    /// Creates container `name` on kernel host `host` and plugs it into the kernel overlay's
    /// bridge: `eth0` with address `ip_cidr` (e.g. `10.10.0.3/24`), the overlay MTU, and the MAC
    /// vxnet would give that address.
    pub fn kernel_container(&self, host: usize, name: &str, ip_cidr: &str) -> Result<Container> {
        let h = self.host(host);
        let net = lock(&h.kernel)
            .clone()
            .ok_or_else(|| anyhow!("host {host} has no kernel network; call kernel_network"))?;
        let (addr, _) = split_cidr(ip_cidr)?;
        let c = self.container(host, name)?;
        let port = format!("kc{}", h.kernel_ports.fetch_add(1, Ordering::Relaxed));
        let mtu = net.mtu.to_string();
        ip(
            &h.ns,
            &[
                "link", "add", &port, "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "mtu",
                &mtu, "netns", &c.ns,
            ],
        )?;
        ip(&h.ns, &["link", "set", &port, "master", "br0"])?;
        ip(&h.ns, &["link", "set", &port, "up"])?;
        let mac = wire::mac_string_for_ip(addr);
        ip(&c.ns, &["link", "set", "eth0", "address", &mac])?;
        ip(&c.ns, &["addr", "add", ip_cidr, "dev", "eth0"])?;
        ip(&c.ns, &["link", "set", "eth0", "up"])?;
        Ok(c)
    }
}
