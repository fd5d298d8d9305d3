//! Ready-made topologies shared by the integration tests and the benchmark: two hosts, one
//! container on each, one overlay between them.
//!
//! Rules: every topology uses the same names and numbers ([`NET`], [`VNI`], [`SUBNET`],
//! [`C1_IP`] on host 0, [`C2_IP`] on host 1, overlay MTU [`MTU`]), so results of different
//! modes compare like with like. The sealed variants ([`Sealing::Sealed`]) differ only in what
//! the seal needs: a smaller overlay MTU ([`Sealing::mtu`]), and for vxnet a two-host cluster
//! instead of static peers (an encrypted network cannot have `--peer`s). A returned [`Pair`]
//! is ready to carry traffic: the first ping has already been answered (bounded wait).

use std::time::Duration;

use anyhow::{Context, Result};

use crate::lab::cluster::REPLICATION_TIMEOUT;
use crate::lab::topology::host_addr;
use crate::lab::wireguard::{wg_addr, WireGuard, WG_MTU};
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
/// What AES-256-GCM adds to every datagram of a vxnet `--encrypted` network (README,
/// "Encrypted networks"), so its overlay MTU is [`MTU`] minus this.
pub const SEAL_OVERHEAD: u32 = 24;
/// VXLAN's 50 bytes of encapsulation, taken from the carrier's MTU.
const VXLAN_OVERHEAD: u32 = 50;

/// Whether the pair's overlay crosses the underlay in the clear or sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sealing {
    /// Plain VXLAN on the underlay.
    #[default]
    Clear,
    /// vxnet: the network is `--encrypted` (every datagram sealed with AES-256-GCM). Kernel
    /// vxlan: the VTEPs talk over WireGuard between the host namespaces (ChaCha20-Poly1305;
    /// kernel WireGuard unless [`kernel_wg_pair`] says otherwise), so the underlay carries only
    /// WireGuard's UDP.
    Sealed,
}

impl Sealing {
    /// The overlay MTU of a pair: [`MTU`] in the clear; sealed, vxnet leaves
    /// [`SEAL_OVERHEAD`] for the seal and kernel vxlan sits inside WireGuard's [`WG_MTU`].
    pub fn mtu(self, kind: HostKind) -> u32 {
        match (self, kind) {
            (Sealing::Clear, _) => MTU,
            (Sealing::Sealed, HostKind::Vxnet) => MTU - SEAL_OVERHEAD,
            (Sealing::Sealed, HostKind::KernelVxlan) => WG_MTU - VXLAN_OVERHEAD,
        }
    }
}

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
    vxnet_pair_cold_with(builder, Sealing::Clear)
}

/// [`vxnet_pair_cold_on`], sealed or not. Sealed, the two hosts form a cluster and host 0
/// creates net1 with `--encrypted` (same VNI and subnet), waited for on host 1.
pub fn vxnet_pair_cold_with(builder: LabBuilder, sealing: Sealing) -> Result<Pair> {
    let lab = builder.hosts(HostKind::Vxnet, 2).build()?;
    match sealing {
        Sealing::Clear => lab.vxnet_network(NET, VNI, SUBNET, &[0, 1], &[])?,
        Sealing::Sealed => {
            lab.form_cluster(&[0, 1])?;
            let vni = VNI.to_string();
            lab.host(0).vxnet_checked(&[
                "network",
                "create",
                "--encrypted",
                "--subnet",
                SUBNET,
                "--vni",
                &vni,
                NET,
            ])?;
            lab.host(1).wait_networks(&[NET], REPLICATION_TIMEOUT)?;
        }
    }
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
    vxnet_pair_with(builder, Sealing::Clear)
}

/// [`vxnet_pair_cold_with`], warmed up.
pub fn vxnet_pair_with(builder: LabBuilder, sealing: Sealing) -> Result<Pair> {
    let pair = vxnet_pair_cold_with(builder, sealing)?;
    pair.wait_connected()?;
    Ok(pair)
}

/// Two kernel vxlan hosts, same numbers as [`vxnet_pair`]: the baseline. Warmed up.
pub fn kernel_pair() -> Result<Pair> {
    kernel_pair_on(Lab::builder())
}

/// [`kernel_pair`] on a lab made from `builder` (which must have no hosts yet).
pub fn kernel_pair_on(builder: LabBuilder) -> Result<Pair> {
    kernel_pair_with(builder, Sealing::Clear)
}

/// [`kernel_pair_cold_with`], warmed up.
pub fn kernel_pair_with(builder: LabBuilder, sealing: Sealing) -> Result<Pair> {
    let pair = kernel_pair_cold_with(builder, sealing)?;
    pair.wait_connected()?;
    Ok(pair)
}

/// [`kernel_pair`] before any traffic.
pub fn kernel_pair_cold() -> Result<Pair> {
    kernel_pair_cold_on(Lab::builder())
}

/// [`kernel_pair_cold`] on a lab made from `builder` (which must have no hosts yet).
pub fn kernel_pair_cold_on(builder: LabBuilder) -> Result<Pair> {
    kernel_pair_cold_with(builder, Sealing::Clear)
}

/// [`kernel_pair_cold_on`], sealed or not. Sealed, the host namespaces are joined by kernel
/// WireGuard first (`Lab::wireguard`) and each `vx0` uses the tunnel addresses as its local
/// address and peer; this fails on a kernel without WireGuard.
pub fn kernel_pair_cold_with(builder: LabBuilder, sealing: Sealing) -> Result<Pair> {
    let carrier = match sealing {
        Sealing::Clear => None,
        Sealing::Sealed => Some(WireGuard::Kernel),
    };
    kernel_pair_cold_over(builder, carrier)
}

/// The sealed kernel pair ([`kernel_pair_with`] with [`Sealing::Sealed`]) over WireGuard of
/// kind `wg`: the kernel's, or boringtun in userspace (for kernels without WireGuard; it needs
/// `boringtun-cli`). Warmed up.
pub fn kernel_wg_pair(builder: LabBuilder, wg: WireGuard) -> Result<Pair> {
    let pair = kernel_pair_cold_over(builder, Some(wg))?;
    pair.wait_connected()?;
    Ok(pair)
}

/// The kernel pair, its VXLAN on the underlay (`None`) or inside WireGuard of that kind.
fn kernel_pair_cold_over(builder: LabBuilder, carrier: Option<WireGuard>) -> Result<Pair> {
    let sealing = match carrier {
        None => Sealing::Clear,
        Some(_) => Sealing::Sealed,
    };
    let lab = builder.hosts(HostKind::KernelVxlan, 2).build()?;
    if let Some(wg) = carrier {
        lab.wireguard(&[0, 1], wg)?;
    }
    for (host, peer) in [(0, 1), (1, 0)] {
        let (peer, tunnel) = match sealing {
            Sealing::Clear => (host_addr(peer), None),
            Sealing::Sealed => (wg_addr(peer), Some(wg_addr(host))),
        };
        lab.kernel_network(
            host,
            &KernelNetwork {
                vni: VNI,
                mtu: sealing.mtu(HostKind::KernelVxlan),
                peers: vec![peer],
                tunnel,
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
            tunnel: None,
        },
    )?;
    let c1 = lab.container(0, "c1")?;
    lab.host(0).connect(NET, &c1, C1_IP)?;
    let c2 = lab.kernel_container(1, "c2", &format!("{C2_IP}/{SUBNET_LEN}"))?;
    Ok(Pair { lab, c1, c2 })
}
