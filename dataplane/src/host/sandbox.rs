//! The overlay sandbox: one network namespace per network per host, holding the bridge `br0`
//! (with the gateway address), the TAP `vxtap0` the dataplane reads and writes, and one veth
//! per local endpoint whose other end sits in the container (the picture in the README).
//!
//! Rules a caller relies on:
//!
//! - **Blocking, thread-safe, no namespace side effects.** Every call blocks; the daemon calls
//!   them through `spawn_blocking`. Work inside the sandbox or a container runs on short-lived
//!   threads (see [`super::netns`]), never on the caller's thread.
//! - **Idempotent setup.** [`Sandbox::ensure`] creates what is missing and adopts what exists:
//!   after a daemon restart the pinned namespace, the bridge and the veths are still there and
//!   containers keep their addresses; after a reboot the pin is empty and everything is made
//!   afresh. [`Sandbox::disconnect`] of a missing veth and [`Sandbox::destroy`] of a missing
//!   sandbox succeed.
//! - **All-or-nothing connect.** [`Sandbox::connect`] either leaves a fully wired endpoint or
//!   nothing at all: on failure it deletes the veth pair it made and returns the first error.
//!   Errors a user can cause (interface name taken, target not a network namespace) say so.
//! - **The TAP outlives the daemon.** [`Sandbox::open_tap`] makes `vxtap0` persistent
//!   (`TUNSETPERSIST`) and opens the one a previous run left, so a restart never takes the
//!   bridge port away: frames that arrive while no daemon reads are dropped, nothing else
//!   changes. [`Sandbox::destroy`] deletes it. An open TAP fd keeps the sandbox namespace
//!   alive, so close it before [`Sandbox::destroy`].
//! - **One file per queue.** Where the kernel has it (3.8+), `vxtap0` is a multi-queue TAP
//!   ([`TapShape`]) and [`Sandbox::open_tap`] attaches one file per forwarding worker. The
//!   kernel hands each flow's frames to one queue, the one the flow's last frame was written
//!   into, so a worker that writes a flow into the TAP reads that flow's answers. A TAP is
//!   always opened with the same flag, whatever the number of queues, so a restart with
//!   another `--queues` attaches to the TAP that is there.
//! - **Stable gateway MAC.** `br0` gets the MAC [`MacAddr::for_ipv4`] of the gateway, the same rule
//!   as endpoints. A bridge without a set MAC takes the lowest MAC of its ports, so the
//!   gateway's MAC would change under the containers' ARP caches as veths come and go. Being
//!   the same on every host, it also keeps gateway traffic host-local: a bridge drops frames
//!   that arrive with its own MAC as source, so another host's gateway cannot answer here.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};
use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use super::egress::{self, TRANSIT_NAME};
use super::error::{netlink_errno, HostError};
use super::netns::{self, link_index, LinkSummary, NetnsWorker};
use crate::engine::TapShape;
use crate::wire::MacAddr;
use vxnet_proto::types::{MTU_MAX, MTU_MIN};

/// The sandbox's bridge; carries the gateway address.
pub const BRIDGE_NAME: &str = "br0";
/// The sandbox's TAP, a port of [`BRIDGE_NAME`]; the dataplane holds its fd.
pub const TAP_NAME: &str = "vxtap0";
/// Frames the kernel may queue on the TAP for the engine (`txqueuelen`; the kernel default is 500).
pub const TAP_QUEUE_LEN: u32 = 4096;

/// What a sandbox is made of; the same spec gives the same sandbox on every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// The pin file, under the daemon's data dir.
    pub netns_path: PathBuf,
    /// Address of `br0`, the network's gateway.
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    /// MTU of `br0`, `vxtap0` and every veth: underlay MTU − 50.
    pub mtu: u32,
}

/// One endpoint to wire: a veth from the sandbox into the container namespace `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Path of the container's network namespace (see [`netns::resolve_target`]).
    pub target: PathBuf,
    /// Name of the container side, e.g. `eth0`.
    pub ifname: String,
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// Where the container's default route points (the network's gateway), unless the
    /// container has one already; `None` for `--internal` networks.
    pub default_route: Option<Ipv4Addr>,
    /// Make the container end (MAC, MTU) but neither address it nor bring it up: a runtime
    /// moves it into its container and configures it (Docker's Join).
    pub hand_over: bool,
    /// Name of the sandbox side (≤ 15 bytes), derived by the caller from the endpoint id; it
    /// is what [`Sandbox::disconnect`] takes.
    pub veth_name: String,
}

/// A live sandbox namespace with its bridge, and the worker that does its netlink work; see
/// the module docs.
#[derive(Debug)]
pub struct Sandbox {
    spec: SandboxSpec,
    worker: NetnsWorker,
    /// The namespace was there already: a previous run made it (see [`Sandbox::adopted`]).
    adopted: bool,
}

impl Sandbox {
    /// Makes the sandbox exist as `spec` says, creating what is missing and adopting what is
    /// there (the pin, `lo` up, `br0` with MTU, gateway address and MAC, up).
    pub fn ensure(spec: SandboxSpec) -> Result<Sandbox, HostError> {
        check_mtu(spec.mtu)?;
        check_prefix_len(spec.prefix_len)?;
        let path = spec.netns_path.as_path();
        let adopted = netns::is_live_netns(path);
        if adopted {
            tracing::debug!(netns = %path.display(), "adopting sandbox namespace");
        } else {
            tracing::info!(netns = %path.display(), "creating sandbox namespace");
            netns::create_pinned_netns(path)?;
        }
        let worker = NetnsWorker::start(path)?;
        // Before `br0` exists, so that `default` covers the links made later.
        worker.run(|_| async {
            disable_ipv6_here(&["all", "default"])?;
            bridged_frames_skip_ip_hooks_here()
        })?;
        let sandbox = Sandbox {
            spec,
            worker,
            adopted,
        };
        sandbox.ensure_bridge()?;
        Ok(sandbox)
    }

    /// `lo` up; `br0` created if missing, then MTU, up and gateway address asserted.
    fn ensure_bridge(&self) -> Result<(), HostError> {
        let spec = self.spec.clone();
        self.worker.run(move |h| async move {
            set_link_up(&h, "lo").await?;
            let bridge = match link_index(&h, BRIDGE_NAME).await? {
                Some(index) => index,
                None => {
                    // Created with its MAC given, so the kernel never replaces it by a
                    // port's; MTU is (re)set below for adopted bridges too.
                    h.link()
                        .add(
                            LinkBridge::new(BRIDGE_NAME)
                                .address(MacAddr::for_ipv4(spec.gateway).0.to_vec())
                                .build(),
                        )
                        .execute()
                        .await
                        .map_err(|e| HostError::netlink("create bridge br0", e))?;
                    bridge_index(&h, &spec.netns_path).await?
                }
            };
            // An MTU set on the bridge itself stops it from following its ports' MTU.
            h.link()
                .set(
                    LinkUnspec::new_with_index(bridge)
                        .mtu(spec.mtu)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| HostError::netlink("configure bridge br0", e))?;
            add_ipv4_if_missing(&h, bridge, spec.gateway, spec.prefix_len).await
        })
    }

    /// Whether the namespace was left by a previous run rather than made now. Everything that
    /// run put into it is still there, nftables tables included: its guard still covers every
    /// veth that run made.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    pub fn netns_path(&self) -> &Path {
        &self.spec.netns_path
    }

    /// The MAC of `br0`.
    pub fn gateway_mac(&self) -> MacAddr {
        MacAddr::for_ipv4(self.spec.gateway)
    }

    /// Opens `vxtap0` inside the sandbox — the persistent one a previous run left, or a new
    /// one — as a port of `br0` (MTU set, up), marks it persistent and returns its fd, usable
    /// from any thread. With `offloads` it is opened with TAP offloads if the kernel allows
    /// (see `tap_builder`); the engine reads which from the device. A `vxtap0` that cannot be
    /// opened again is deleted and made afresh.
    pub fn open_tap(&self, shape: TapShape) -> Result<Vec<SyncDevice>, HostError> {
        let spec = self.spec.clone();
        self.worker.run(move |h| async move {
            // Opened on this thread, so the TAP is born inside the sandbox namespace; with the
            // same name, TUNSETIFF attaches to the one that is there.
            let device = match build_tap(shape) {
                Ok(device) => device,
                Err(e) => {
                    // Also a TAP an older daemon made with other flags (single-queue, say).
                    let Some(stale) = link_index(&h, TAP_NAME).await? else {
                        return Err(HostError::os("create TAP vxtap0", e));
                    };
                    tracing::warn!(netns = %spec.netns_path.display(), error = %e,
                        "cannot open the vxtap0 that is there; making it afresh");
                    delete_link(&h, stale, TAP_NAME).await?;
                    build_tap(shape).map_err(|e| HostError::os("create TAP vxtap0", e))?
                }
            };
            let queues = attach_queues(device, shape);
            // The queue of frames the kernel holds for us between two reads (500 by default):
            // room for several of the engine's batches, so a burst from the containers is not
            // dropped while the TAP's thread wakes up.
            if let Err(e) = queues[0].set_tx_queue_len(TAP_QUEUE_LEN) {
                tracing::debug!(error = %e, "cannot set the TAP's queue length; keeping the default");
            }
            let tap = link_index(&h, TAP_NAME).await?.ok_or_else(|| {
                HostError::os("find TAP vxtap0", std::io::ErrorKind::NotFound.into())
            })?;
            let bridge = bridge_index(&h, &spec.netns_path).await?;
            // On error `queues` drop here, which removes the TAP: nothing is left half-made.
            h.link()
                .set(
                    LinkUnspec::new_with_index(tap)
                        .mtu(spec.mtu)
                        .controller(bridge)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| HostError::netlink("attach vxtap0 to br0", e))?;
            // Wired: from here on it outlives the daemon, so a restart keeps the bridge port
            // and loses only what arrives while no one reads.
            queues[0]
                .persist()
                .map_err(|e| HostError::os("make vxtap0 persistent", e))?;
            Ok(queues)
        })
    }

    /// Wires an endpoint: a veth pair whose sandbox end `veth_name` is a port of `br0` and
    /// whose other end is `ifname` in `target` with the endpoint's MAC, MTU and address, up
    /// (and `lo` up there). All or nothing; see the module docs.
    pub fn connect(&self, ep: &EndpointSpec) -> Result<(), HostError> {
        netns::validate_ifname(&ep.ifname)?;
        netns::validate_ifname(&ep.veth_name)?;
        check_mtu(ep.mtu)?;
        check_prefix_len(ep.prefix_len)?;
        check_unicast(ep)?;
        // One worker in the container's namespace for every step there.
        let container = NetnsWorker::start(&ep.target)?;
        let target = netns::open_netns(&ep.target)?;
        // The kernel reports either name collision as a bare EEXIST; look first, to say which.
        if target_has(&container, ep)? {
            return Err(ifname_taken(ep));
        }

        // Step 1: the pair, with the container end born in the target under its final name,
        // MAC and MTU. Fails whole or not at all, so there is nothing to undo.
        let spec = ep.clone();
        let created = self.worker.run(move |h| async move {
            let ep = spec;
            if link_index(&h, &ep.veth_name).await?.is_some() {
                return Err(HostError::VethExists {
                    name: ep.veth_name.clone(),
                });
            }
            let peer = LinkUnspec::new_with_name(&ep.ifname)
                .mtu(ep.mtu)
                .address(ep.mac.0.to_vec())
                .setns_by_fd(target.as_raw_fd())
                .build();
            let pair = LinkVeth::new(&ep.veth_name, &ep.ifname)
                .mtu(ep.mtu)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .build();
            h.link()
                .add(pair)
                .execute()
                .await
                .map_err(|e| HostError::netlink(format!("create veth {}", ep.veth_name), e))
        });
        if let Err(e) = created {
            // Lost a race with whoever took the name since we looked.
            if matches!(&e, HostError::Netlink { source, .. } if netlink_errno(source) == Some(libc::EEXIST))
                && target_has(&container, ep).unwrap_or(false)
            {
                return Err(ifname_taken(ep));
            }
            return Err(e);
        }

        // Step 2: wire both ends. From here on, failure means deleting the pair.
        if let Err(e) = self.wire_endpoint(&container, ep) {
            if let Err(undo) = self.disconnect(&ep.veth_name) {
                tracing::warn!(veth = %ep.veth_name, error = %undo,
                    "could not delete the veth of a failed connect");
            }
            return Err(e);
        }
        tracing::debug!(veth = %ep.veth_name, ifname = %ep.ifname, ip = %ep.ipv4, "endpoint connected");
        Ok(())
    }

    fn wire_endpoint(&self, container: &NetnsWorker, ep: &EndpointSpec) -> Result<(), HostError> {
        let (spec, sandbox) = (ep.clone(), self.spec.netns_path.clone());
        self.worker.run(move |h| async move {
            let ep = spec;
            let veth = link_index(&h, &ep.veth_name).await?.ok_or_else(|| {
                HostError::os(
                    format!("find veth {} just created", ep.veth_name),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            let bridge = bridge_index(&h, &sandbox).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(veth)
                        .controller(bridge)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| HostError::netlink(format!("attach {} to br0", ep.veth_name), e))
        })?;
        if ep.hand_over {
            return Ok(());
        }
        let ep = ep.clone();
        container.run(move |h| async move {
            let index = link_index(&h, &ep.ifname).await?.ok_or_else(|| {
                HostError::os(
                    format!("find {} in {}", ep.ifname, ep.target.display()),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            disable_ipv6_here(&[&ep.ifname])?;
            add_ipv4_if_missing(&h, index, ep.ipv4, ep.prefix_len).await?;
            set_link_up(&h, &ep.ifname).await?;
            set_link_up(&h, "lo").await?;
            match ep.default_route {
                Some(gateway) => add_default_route(&h, index, gateway, false).await,
                None => Ok(()),
            }
        })
    }

    /// Makes the network's way out exist (see [`super::egress`]): the transit veth pair
    /// between `host` (a worker in the host namespace) and the sandbox, its /31 addresses,
    /// the sandbox's default route and forwarding on both sides. Adopts what a previous run
    /// made; the transit slot stays the same. Returns the sandbox end's address.
    pub fn ensure_egress(
        &self,
        host: &NetnsWorker,
        network_id: &str,
    ) -> Result<Ipv4Addr, HostError> {
        let host_end = egress::host_end_name(network_id);
        let links = host.links()?;
        let adopted = links
            .iter()
            .find(|l| l.name == host_end)
            .and_then(|l| l.ipv4.iter().find_map(|&(ip, _)| egress::slot_of(ip)));
        let slot = match adopted {
            Some(slot) => slot,
            None => egress::free_slot(
                links
                    .iter()
                    .flat_map(|l| l.ipv4.iter().filter_map(|&(ip, _)| egress::slot_of(ip))),
            )
            .ok_or(HostError::NoTransitSlot)?,
        };
        let (host_ip, sandbox_ip) = egress::transit_addrs(slot);

        // A sandbox end without its host end cannot be adopted: start the pair afresh.
        let paired = links.iter().any(|l| l.name == host_end);
        self.worker.run(move |h| async move {
            match link_index(&h, TRANSIT_NAME).await? {
                Some(index) if !paired => delete_link(&h, index, TRANSIT_NAME).await,
                _ => Ok(()),
            }
        })?;
        let sandbox = netns::open_netns(&self.spec.netns_path)?;
        host.run(move |h| async move {
            if link_index(&h, &host_end).await?.is_none() {
                let peer = LinkUnspec::new_with_name(TRANSIT_NAME)
                    .setns_by_fd(sandbox.as_raw_fd())
                    .build();
                let pair = LinkVeth::new(&host_end, TRANSIT_NAME)
                    .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                    .build();
                h.link().add(pair).execute().await.map_err(|e| {
                    HostError::netlink(format!("create transit link {host_end}"), e)
                })?;
            }
            let index = link_index(&h, &host_end).await?.ok_or_else(|| {
                HostError::os(
                    format!("find transit link {host_end}"),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            add_ipv4_if_missing(&h, index, host_ip, 31).await?;
            set_link_up(&h, &host_end).await?;
            egress::enable_forwarding_here()?;
            // The host's own connections to 127.0.0.1 at a published port leave by this link.
            let localnet = format!("/proc/sys/net/ipv4/conf/{host_end}/route_localnet");
            std::fs::write(&localnet, b"1")
                .map_err(|e| HostError::os(format!("write {localnet}"), e))
        })?;
        self.worker.run(move |h| async move {
            let index = link_index(&h, TRANSIT_NAME).await?.ok_or_else(|| {
                HostError::os(
                    format!("find {TRANSIT_NAME} in the sandbox"),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            add_ipv4_if_missing(&h, index, sandbox_ip, 31).await?;
            set_link_up(&h, TRANSIT_NAME).await?;
            add_default_route(&h, index, host_ip, true).await?;
            egress::enable_forwarding_here()
        })?;
        Ok(sandbox_ip)
    }

    /// The embedded DNS's sockets, bound to the gateway address, port 53, inside the sandbox
    /// (see [`super::dns`]).
    pub fn bind_dns(&self) -> Result<(std::net::UdpSocket, std::net::TcpListener), HostError> {
        let gateway = self.spec.gateway;
        self.worker.run(move |_| async move {
            let at = (gateway, 53);
            let op = |e| HostError::os(format!("bind the network's DNS to {gateway}:53"), e);
            let udp = std::net::UdpSocket::bind(at).map_err(op)?;
            let tcp = std::net::TcpListener::bind(at).map_err(op)?;
            Ok((udp, tcp))
        })
    }

    /// Runs the `nft -f` script `script` inside the sandbox (see [`egress`]).
    pub fn apply_rules(&self, script: String) -> Result<(), HostError> {
        self.worker
            .run(move |_| async move { egress::nft_apply(&script) })
    }

    /// Runs `nft` with `args` inside the sandbox and returns what it printed (see
    /// [`super::guard`]).
    pub fn nft_query(&self, args: &'static [&'static str]) -> Result<String, HostError> {
        self.worker
            .run(move |_| async move { egress::nft(args, None) })
    }

    /// Deletes the sandbox end `veth_name`; the container end goes with it. A missing veth is
    /// not an error.
    pub fn disconnect(&self, veth_name: &str) -> Result<(), HostError> {
        let veth_name = veth_name.to_string();
        self.worker.run(move |h| async move {
            match link_index(&h, &veth_name).await? {
                Some(index) => delete_link(&h, index, &veth_name).await,
                None => Ok(()),
            }
        })
    }

    /// Every link in the sandbox, for inspection and tests.
    pub fn links(&self) -> Result<Vec<LinkSummary>, HostError> {
        self.worker.links()
    }

    /// The sandbox ends of endpoint veths: every link but the sandbox's own (`lo`, the bridge
    /// and the TAP), whatever its name.
    pub fn endpoint_links(&self) -> Result<Vec<LinkSummary>, HostError> {
        let mut links = self.links()?;
        links.retain(|l| {
            !matches!(
                l.name.as_str(),
                "lo" | BRIDGE_NAME | TAP_NAME | TRANSIT_NAME
            )
        });
        Ok(links)
    }

    /// Removes the sandbox: deletes its veths, its transit link (their other ends go at once)
    /// and its persistent TAP, then unpins
    /// its namespace, which disappears with the rest once no TAP fd holds it. The kernel tears
    /// a namespace down asynchronously — seconds, on a busy host — so the veths are not left to
    /// that.
    pub fn destroy(self) -> Result<(), HostError> {
        tracing::info!(netns = %self.spec.netns_path.display(), "removing sandbox namespace");
        let deleted = self.links().and_then(|links| {
            let veths: Vec<(u32, String)> = links
                .into_iter()
                .filter(|l| !matches!(l.name.as_str(), "lo" | BRIDGE_NAME))
                .map(|l| (l.index, l.name))
                .collect();
            self.worker.run(move |h| async move {
                for (index, name) in &veths {
                    delete_link(&h, *index, name).await?;
                }
                Ok(())
            })
        });
        if let Err(e) = deleted {
            // The unpin below still takes them, only later.
            tracing::warn!(error = %e, "cannot delete the sandbox's veths");
        }
        let Sandbox { spec, worker, .. } = self;
        // The worker's thread is inside the namespace: it must leave before the unpin.
        drop(worker);
        netns::remove_pinned_netns(&spec.netns_path)
    }
}

/// The one place that decides how `vxtap0` is opened: L2, no packet-information header.
/// With `offloads`, the TAP carries a `virtio_net_hdr` in front of every frame
/// (IFF_VNET_HDR) and takes TCP superframes with unfinished checksums
/// (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`), which [`crate::core::offload`] splits and finishes.
fn tap_builder(offloads: bool, multi_queue: bool) -> DeviceBuilder {
    DeviceBuilder::new()
        .name(TAP_NAME)
        .layer(Layer::L2)
        .packet_information(false)
        .offload(offloads)
        .multi_queue(multi_queue)
        // Up/down, MTU and the bridge are set over netlink once it is a port.
        .inherit_enable_state()
}

/// Opens the TAP, with offloads if asked and the kernel agrees; otherwise without (said once
/// per process). Whether the result has them: [`SyncDevice::tcp_gso`].
fn build_tap(shape: TapShape) -> std::io::Result<SyncDevice> {
    static FALLBACK_LOGGED: std::sync::Once = std::sync::Once::new();
    if shape.offloads {
        match tap_builder(true, shape.multi_queue)
            .build_sync()
            .and_then(tcp_offloads_only)
        {
            Ok(device) => return Ok(device),
            Err(e) => FALLBACK_LOGGED.call_once(|| {
                tracing::warn!(error = %e, "the kernel refuses TAP offloads; running without");
            }),
        }
    }
    tap_builder(false, shape.multi_queue).build_sync()
}

/// The first queue and up to `shape.queues - 1` more attached to the same TAP; a queue the
/// kernel refuses (its limit, no memory) leaves fewer workers, said once per process.
fn attach_queues(first: SyncDevice, shape: TapShape) -> Vec<SyncDevice> {
    static SHORT_LOGGED: std::sync::Once = std::sync::Once::new();
    let mut queues = Vec::with_capacity(shape.queues.max(1));
    let offloaded = first.tcp_gso();
    queues.push(first);
    while shape.multi_queue && queues.len() < shape.queues {
        // Attaching a queue sets the device's offloads again (tun-rs adds UDP segmentation
        // where it can): set them back to what the engine splits.
        let queue = queues[0].try_clone().and_then(|q| {
            if offloaded {
                tcp_offloads_only(q)
            } else {
                Ok(q)
            }
        });
        match queue {
            Ok(q) => queues.push(q),
            Err(e) => {
                SHORT_LOGGED.call_once(|| {
                    tracing::warn!(error = %e, attached = queues.len(),
                        "cannot attach another TAP queue; running fewer workers");
                });
                break;
            }
        }
    }
    queues
}

/// tun-rs also turns on UDP segmentation (USO) where the kernel has it; vxnet splits TCP only,
/// so the mask is set to exactly checksum offload and TSO for IPv4 and IPv6.
fn tcp_offloads_only(device: SyncDevice) -> std::io::Result<SyncDevice> {
    let mask = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    // SAFETY: a live TUN fd and an integer argument, as TUNSETOFFLOAD takes.
    let rc = unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(mask),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(device)
}

async fn bridge_index(h: &Handle, netns: &Path) -> Result<u32, HostError> {
    link_index(h, BRIDGE_NAME)
        .await?
        .ok_or_else(|| HostError::BridgeMissing {
            netns: netns.to_path_buf(),
        })
}

async fn set_link_up(h: &Handle, name: &str) -> Result<(), HostError> {
    h.link()
        .set(LinkUnspec::new_with_name(name).up().build())
        .execute()
        .await
        .map_err(|e| HostError::netlink(format!("bring {name} up"), e))
}

async fn delete_link(h: &Handle, index: u32, name: &str) -> Result<(), HostError> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        // Gone in the meantime (e.g. its peer's namespace died): what we wanted.
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(HostError::netlink(format!("delete {name}"), e)),
    }
}

async fn add_ipv4_if_missing(
    h: &Handle,
    index: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), HostError> {
    match h
        .address()
        .add(index, ip.into(), prefix_len)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        // Already there (an adopted sandbox): idempotent by design.
        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(HostError::netlink(
            format!("add address {ip}/{prefix_len}"),
            e,
        )),
    }
}

/// A default route through `gateway` on link `index`. With `replace`, it takes the place of any
/// other; without, an existing default route is kept (a container on several networks keeps
/// the way out of the first, as in Docker).
async fn add_default_route(
    h: &Handle,
    index: u32,
    gateway: Ipv4Addr,
    replace: bool,
) -> Result<(), HostError> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    let add = h.route().add(route);
    let add = if replace { add.replace() } else { add };
    match add.execute().await {
        Ok(()) => Ok(()),
        Err(e) if !replace && netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(HostError::netlink(
            format!("add a default route via {gateway}"),
            e,
        )),
    }
}

fn target_has(container: &NetnsWorker, ep: &EndpointSpec) -> Result<bool, HostError> {
    let ifname = ep.ifname.clone();
    container.run(|h| async move { Ok(link_index(&h, &ifname).await?.is_some()) })
}

fn ifname_taken(ep: &EndpointSpec) -> HostError {
    HostError::IfnameTaken {
        ifname: ep.ifname.clone(),
        target: ep.target.clone(),
    }
}

fn check_mtu(mtu: u32) -> Result<(), HostError> {
    if (MTU_MIN..=MTU_MAX).contains(&mtu) {
        Ok(())
    } else {
        Err(HostError::InvalidSpec {
            what: "MTU",
            reason: format!("{mtu} is outside {MTU_MIN}..={MTU_MAX}"),
        })
    }
}

fn check_prefix_len(prefix_len: u8) -> Result<(), HostError> {
    if prefix_len <= 32 {
        Ok(())
    } else {
        Err(HostError::InvalidSpec {
            what: "prefix length",
            reason: format!("/{prefix_len} is longer than 32"),
        })
    }
}

fn check_unicast(ep: &EndpointSpec) -> Result<(), HostError> {
    if !ep.mac.is_unicast_source() {
        return Err(HostError::InvalidSpec {
            what: "MAC address",
            reason: format!("{} is not a unicast address", ep.mac),
        });
    }
    if ep.ipv4.is_unspecified() || ep.ipv4.is_multicast() || ep.ipv4.is_broadcast() {
        return Err(HostError::InvalidSpec {
            what: "IPv4 address",
            reason: format!("{} cannot be given to an interface", ep.ipv4),
        });
    }
    Ok(())
}

/// With `br_netfilter` loaded (Docker loads it), frames `br0` bridges between containers and
/// the TAP would also pass the sandbox's IP hooks — its nat table, conntrack — for nothing:
/// the sandbox's rules are for routed traffic (the transit link). Off here, per namespace
/// (kernels before 5.3 share the setting with the host and refuse the write from a sandbox;
/// that is left as it is).
fn bridged_frames_skip_ip_hooks_here() -> Result<(), HostError> {
    for table in ["iptables", "ip6tables", "arptables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{table}");
        match std::fs::write(&path, b"0") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::debug!(%path, error = %e, "cannot keep bridged frames out of the IP hooks")
            }
        }
    }
    Ok(())
}

/// Overlays are IPv4: without this, `br0`, `vxtap0`, the veths and the containers' interfaces
/// send router solicitations and MLD reports that every host would flood to every other
/// (Docker too disables IPv6 on the interfaces of IPv4-only networks).
///
/// Sets `disable_ipv6` for `interfaces` in the calling thread's namespace (/proc/sys/net
/// resolves to the namespace of the thread that opens it). A kernel without IPv6 has nothing
/// to disable.
fn disable_ipv6_here(interfaces: &[&str]) -> Result<(), HostError> {
    for name in interfaces {
        let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        match std::fs::write(&path, b"1") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(HostError::os(format!("write {path}"), source)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
