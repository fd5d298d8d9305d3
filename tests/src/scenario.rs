//! Ready-made topologies shared by the integration tests and the benchmark: two hosts, one
//! container on each, one overlay between them.
//!
//! Rules: every topology uses the same names and numbers ([`NET`], [`VNI`], [`SUBNET`],
//! [`C1_IP`] on host 0, [`C2_IP`] on host 1, overlay MTU [`MTU`]), so results of different
//! modes compare like with like. A returned [`Pair`] is ready to carry traffic: the first ping
//! has already been answered (bounded wait).

use std::time::Duration;

use anyhow::{Context, Result};

use crate::lab::topology::host_addr;
use crate::lab::{Container, HostKind, KernelNetwork, Lab, LabBuilder};

/// Name of the overlay.
pub const NET: &str = "net1";
/// Its VNI.
pub const VNI: u32 = 4100;
/// Its subnet.
pub const SUBNET: &str = "10.10.0.0/24";
/// Prefix length of [`SUBNET`].
pub const SUBNET_LEN: u8 = 24;
/// Overlay MTU: underlay 1500 minus the 50 bytes VXLAN encapsulation adds (outer Ethernet 14,
/// IPv4 20, UDP 8, VXLAN 8).
pub const MTU: u32 = 1450;
/// Address of container `c1` on host 0.
pub const C1_IP: &str = "10.10.0.2";
/// Address of container `c2` on host 1.
pub const C2_IP: &str = "10.10.0.3";
/// How long a fresh overlay may take to carry its first ping.
pub const WARMUP_TIMEOUT: Duration = Duration::from_secs(15);

/// A lab with container `c1` (host 0) and `c2` (host 1) on one overlay.
pub struct Pair {
    /// The lab; dropping the pair tears it down.
    pub lab: Lab,
    /// Container on host 0, address [`C1_IP`].
    pub c1: Container,
    /// Container on host 1, address [`C2_IP`].
    pub c2: Container,
}

impl Pair {
    /// Waits (bounded) until c1 and c2 answer each other's pings.
    pub fn wait_connected(&self) -> Result<()> {
        self.c1
            .wait_reachable(C2_IP, WARMUP_TIMEOUT)
            .context("c1 -> c2")?;
        self.c2
            .wait_reachable(C1_IP, WARMUP_TIMEOUT)
            .context("c2 -> c1")?;
        Ok(())
    }
}

/// Two vxnet hosts with static peers (`--peer` each other, no cluster join), net1 on both,
/// c1 and c2 connected with fixed addresses. Not yet warmed up: tests that look at the first
/// packets need them on the wire.
pub fn vxnet_pair_cold() -> Result<Pair> {
    vxnet_pair_cold_on(Lab::builder())
}

/// [`vxnet_pair_cold`] on a lab made from `builder` (which must have no hosts yet).
pub fn vxnet_pair_cold_on(builder: LabBuilder) -> Result<Pair> {
    let lab = builder.hosts(HostKind::Vxnet, 2).build()?;
    lab.vxnet_network(NET, VNI, SUBNET, &[0, 1], &[])?;
    let c1 = lab.container(0, "c1")?;
    let c2 = lab.container(1, "c2")?;
    lab.host(0).connect(NET, &c1, C1_IP)?;
    lab.host(1).connect(NET, &c2, C2_IP)?;
    Ok(Pair { lab, c1, c2 })
}

/// [`vxnet_pair_cold`], warmed up.
pub fn vxnet_pair() -> Result<Pair> {
    vxnet_pair_on(Lab::builder())
}

/// [`vxnet_pair`] on a lab made from `builder` (which must have no hosts yet).
pub fn vxnet_pair_on(builder: LabBuilder) -> Result<Pair> {
    let pair = vxnet_pair_cold_on(builder)?;
    pair.wait_connected()?;
    Ok(pair)
}

/// Two kernel vxlan hosts, same numbers as [`vxnet_pair`]: the baseline. Warmed up.
pub fn kernel_pair() -> Result<Pair> {
    kernel_pair_on(Lab::builder())
}

/// [`kernel_pair`] on a lab made from `builder` (which must have no hosts yet).
pub fn kernel_pair_on(builder: LabBuilder) -> Result<Pair> {
    let pair = kernel_pair_cold_on(builder)?;
    pair.wait_connected()?;
    Ok(pair)
}

/// [`kernel_pair`] before any traffic.
pub fn kernel_pair_cold() -> Result<Pair> {
    kernel_pair_cold_on(Lab::builder())
}

/// [`kernel_pair_cold`] on a lab made from `builder` (which must have no hosts yet).
pub fn kernel_pair_cold_on(builder: LabBuilder) -> Result<Pair> {
    let lab = builder.hosts(HostKind::KernelVxlan, 2).build()?;
    for (host, peer) in [(0, 1), (1, 0)] {
        lab.kernel_network(
            host,
            &KernelNetwork {
                vni: VNI,
                mtu: MTU,
                peers: vec![host_addr(peer)],
            },
        )?;
    }
    let c1 = lab.kernel_container(0, "c1", &format!("{C1_IP}/{SUBNET_LEN}"))?;
    let c2 = lab.kernel_container(1, "c2", &format!("{C2_IP}/{SUBNET_LEN}"))?;
    Ok(Pair { lab, c1, c2 })
}

/// Host 0 runs vxnet (net1 with the kernel host as `--peer`), host 1 is a kernel vxlan VTEP
/// whose FDB points at host 0: the interop topology.
pub fn vxnet_kernel_pair_cold() -> Result<Pair> {
    let lab = Lab::with_hosts(&[HostKind::Vxnet, HostKind::KernelVxlan])?;
    let kernel_addr = lab.host(1).addr().to_string();
    let vni = VNI.to_string();
    lab.host(0).vxnet_checked(&[
        "network",
        "create",
        "--subnet",
        SUBNET,
        "--vni",
        &vni,
        "--peer",
        &kernel_addr,
        NET,
    ])?;
    lab.kernel_network(
        1,
        &KernelNetwork {
            vni: VNI,
            mtu: MTU,
            peers: vec![lab.host(0).addr()],
        },
    )?;
    let c1 = lab.container(0, "c1")?;
    lab.host(0).connect(NET, &c1, C1_IP)?;
    let c2 = lab.kernel_container(1, "c2", &format!("{C2_IP}/{SUBNET_LEN}"))?;
    Ok(Pair { lab, c1, c2 })
}
