//! The overlay sandbox: one network namespace per network per host, holding the bridge `br0`
//! (with the gateway address), the TAP `vxtap0` the dataplane reads and writes, and one veth
//! per local endpoint whose other end sits in the container (DESIGN.md §1).
//!
//! Rules a caller relies on:
//!
//! - **Blocking, thread-safe, no namespace side effects.** Every call blocks; the daemon calls
//!   them through `spawn_blocking`. Work inside the sandbox or a container runs on short-lived
//!   threads (see [`crate::netns`]), never on the caller's thread.
//! - **Idempotent setup.** [`Sandbox::ensure`] creates what is missing and adopts what exists:
//!   after a daemon restart the pinned namespace, the bridge and the veths are still there and
//!   containers keep their addresses; after a reboot the pin is empty and everything is made
//!   afresh. [`Sandbox::disconnect`] of a missing veth and [`Sandbox::destroy`] of a missing
//!   sandbox succeed.
//! - **All-or-nothing connect.** [`Sandbox::connect`] either leaves a fully wired endpoint or
//!   nothing at all: on failure it deletes the veth pair it made and returns the first error.
//!   Errors a user can cause (interface name taken, target not a network namespace) say so.
//! - **The TAP lives as long as its fd.** [`Sandbox::open_tap`] returns the only fd of a
//!   non-persistent TAP; dropping it removes `vxtap0`. An open TAP fd also keeps the sandbox
//!   namespace alive, so close it before [`Sandbox::destroy`].
//! - **Stable gateway MAC.** `br0` gets the MAC [`MacAddr::for_ipv4`] of the gateway, the same rule
//!   as endpoints. A bridge without a set MAC takes the lowest MAC of its ports, so the
//!   gateway's MAC would change under the containers' ARP caches as veths come and go. Being
//!   the same on every host, it also keeps gateway traffic host-local: a bridge drops frames
//!   that arrive with its own MAC as source, so another host's gateway cannot answer here.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth};
use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use crate::netns::{self, in_netns, link_index, netlink_errno, LinkSummary};
use crate::wire::MacAddr;
use vxnet_proto::types::{MTU_MAX, MTU_MIN};

/// The sandbox's bridge; carries the gateway address.
pub const BRIDGE_NAME: &str = "br0";
/// The sandbox's TAP, a port of [`BRIDGE_NAME`]; the dataplane holds its fd.
pub const TAP_NAME: &str = "vxtap0";

/// Everything that goes wrong in the sandbox plumbing. Each message reads as one sentence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    #[error(
        "network namespace \"{name}\" not found (looked in {}); create it with `ip netns add {name}`",
        path.display()
    )]
    NamedNetnsNotFound { name: String, path: PathBuf },
    #[error("no process with pid {pid} (looked for {}); is the container running?", path.display())]
    ProcessNotFound { pid: u32, path: PathBuf },
    #[error("network namespace file {} does not exist", path.display())]
    NetnsFileNotFound { path: PathBuf },
    #[error(
        "{} is not a network namespace; give a name made by `ip netns add`, pid:PID, \
         /proc/PID/ns/net or a bind mount of one",
        path.display()
    )]
    NotANetns { path: PathBuf },
    #[error("invalid target \"{target}\": {reason}")]
    InvalidTarget {
        target: String,
        reason: &'static str,
    },
    #[error("invalid interface name \"{name}\": {reason}")]
    InvalidIfname { name: String, reason: &'static str },
    #[error("invalid {what}: {reason}")]
    InvalidSpec { what: &'static str, reason: String },
    #[error(
        "interface \"{ifname}\" already exists in network namespace {}; choose another --ifname",
        target.display()
    )]
    IfnameTaken { ifname: String, target: PathBuf },
    #[error(
        "the sandbox already has an interface \"{name}\"; is that endpoint connected already?"
    )]
    VethExists { name: String },
    #[error("no free interface name eth0..eth999 in network namespace {}", target.display())]
    NoFreeIfname { target: PathBuf },
    #[error(
        "the sandbox {} has no bridge {BRIDGE_NAME}; restart the daemon to rebuild it",
        netns.display()
    )]
    BridgeMissing { netns: PathBuf },
    #[error("could not {op}: {source}")]
    Os {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not {op}: {}", describe_netlink(source))]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("a namespace worker thread panicked while trying to {op}; this is a bug in vxnet")]
    WorkerPanicked { op: String },
}

impl SandboxError {
    pub(crate) fn os(op: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Os {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        SandboxError::Netlink {
            op: op.into(),
            source,
        }
    }

    /// True if the request was at fault (bad or taken name, missing namespace), not the host:
    /// the daemon reports these as the user's to fix.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            SandboxError::NamedNetnsNotFound { .. }
                | SandboxError::ProcessNotFound { .. }
                | SandboxError::NetnsFileNotFound { .. }
                | SandboxError::NotANetns { .. }
                | SandboxError::InvalidTarget { .. }
                | SandboxError::InvalidIfname { .. }
                | SandboxError::InvalidSpec { .. }
                | SandboxError::IfnameTaken { .. }
                | SandboxError::NoFreeIfname { .. }
        )
    }
}

/// rtnetlink's own Display wraps the errno in boilerplate; the errno's text is the sentence.
fn describe_netlink(e: &rtnetlink::Error) -> String {
    match netlink_errno(e) {
        Some(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
        None => e.to_string(),
    }
}

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
    pub mac: [u8; 6],
    pub ipv4: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// Name of the sandbox side (≤ 15 bytes), derived by the caller from the endpoint id; it
    /// is what [`Sandbox::disconnect`] takes.
    pub veth_name: String,
}

/// A live sandbox namespace with its bridge; see the module docs.
#[derive(Debug)]
pub struct Sandbox {
    spec: SandboxSpec,
}

impl Sandbox {
    /// Makes the sandbox exist as `spec` says, creating what is missing and adopting what is
    /// there (the pin, `lo` up, `br0` with MTU, gateway address and MAC, up).
    pub fn ensure(spec: SandboxSpec) -> Result<Sandbox, SandboxError> {
        check_mtu(spec.mtu)?;
        check_prefix_len(spec.prefix_len)?;
        let path = spec.netns_path.as_path();
        if netns::is_live_netns(path) {
            tracing::debug!(netns = %path.display(), "adopting sandbox namespace");
        } else {
            tracing::info!(netns = %path.display(), "creating sandbox namespace");
            netns::create_pinned_netns(path)?;
        }
        disable_ipv6(path)?;
        let sandbox = Sandbox { spec };
        sandbox.ensure_bridge()?;
        Ok(sandbox)
    }

    /// `lo` up; `br0` created if missing, then MTU, up and gateway address asserted.
    fn ensure_bridge(&self) -> Result<(), SandboxError> {
        let spec = &self.spec;
        in_netns(&spec.netns_path, |h| async move {
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
                        .map_err(|e| SandboxError::netlink("create bridge br0", e))?;
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
                .map_err(|e| SandboxError::netlink("configure bridge br0", e))?;
            add_ipv4_if_missing(&h, bridge, spec.gateway, spec.prefix_len).await
        })
    }

    pub fn spec(&self) -> &SandboxSpec {
        &self.spec
    }

    pub fn netns_path(&self) -> &Path {
        &self.spec.netns_path
    }

    /// The MAC of `br0`.
    pub fn gateway_mac(&self) -> [u8; 6] {
        MacAddr::for_ipv4(self.spec.gateway).0
    }

    /// Creates `vxtap0` inside the sandbox as a port of `br0` (MTU set, up) and returns its fd,
    /// usable from any thread. A leftover `vxtap0` is deleted first. Dropping the device
    /// removes the TAP. With `offloads` it is opened with TAP offloads if the kernel allows
    /// (see `tap_builder`); the engine reads which from the device.
    pub fn open_tap(&self, offloads: bool) -> Result<SyncDevice, SandboxError> {
        let spec = &self.spec;
        in_netns(&spec.netns_path, |h| async move {
            if let Some(stale) = link_index(&h, TAP_NAME).await? {
                tracing::warn!(netns = %spec.netns_path.display(), "deleting a leftover vxtap0");
                delete_link(&h, stale, TAP_NAME).await?;
            }
            // Opened on this thread, so the TAP is born inside the sandbox namespace.
            let device =
                build_tap(offloads).map_err(|e| SandboxError::os("create TAP vxtap0", e))?;
            let tap = link_index(&h, TAP_NAME).await?.ok_or_else(|| {
                SandboxError::os("find TAP vxtap0", std::io::ErrorKind::NotFound.into())
            })?;
            let bridge = bridge_index(&h, &spec.netns_path).await?;
            // On error `device` drops here, which removes the TAP: nothing is left half-made.
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
                .map_err(|e| SandboxError::netlink("attach vxtap0 to br0", e))?;
            Ok(device)
        })
    }

    /// Wires an endpoint: a veth pair whose sandbox end `veth_name` is a port of `br0` and
    /// whose other end is `ifname` in `target` with the endpoint's MAC, MTU and address, up
    /// (and `lo` up there). All or nothing; see the module docs.
    pub fn connect(&self, ep: &EndpointSpec) -> Result<(), SandboxError> {
        netns::validate_ifname(&ep.ifname)?;
        netns::validate_ifname(&ep.veth_name)?;
        check_mtu(ep.mtu)?;
        check_prefix_len(ep.prefix_len)?;
        check_unicast(ep)?;
        let target = netns::open_netns(&ep.target)?;
        // The kernel reports either name collision as a bare EEXIST; look first, to say which.
        if target_has(ep)? {
            return Err(ifname_taken(ep));
        }

        // Step 1: the pair, with the container end born in the target under its final name,
        // MAC and MTU. Fails whole or not at all, so there is nothing to undo.
        let created = in_netns(&self.spec.netns_path, |h| async move {
            if link_index(&h, &ep.veth_name).await?.is_some() {
                return Err(SandboxError::VethExists {
                    name: ep.veth_name.clone(),
                });
            }
            let peer = LinkUnspec::new_with_name(&ep.ifname)
                .mtu(ep.mtu)
                .address(ep.mac.to_vec())
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
                .map_err(|e| SandboxError::netlink(format!("create veth {}", ep.veth_name), e))
        });
        if let Err(e) = created {
            // Lost a race with whoever took the name since we looked.
            if matches!(&e, SandboxError::Netlink { source, .. } if netlink_errno(source) == Some(libc::EEXIST))
                && target_has(ep).unwrap_or(false)
            {
                return Err(ifname_taken(ep));
            }
            return Err(e);
        }

        // Step 2: wire both ends. From here on, failure means deleting the pair.
        if let Err(e) = self.wire_endpoint(ep) {
            if let Err(undo) = self.disconnect(&ep.veth_name) {
                tracing::warn!(veth = %ep.veth_name, error = %undo,
                    "could not delete the veth of a failed connect");
            }
            return Err(e);
        }
        tracing::debug!(veth = %ep.veth_name, ifname = %ep.ifname, ip = %ep.ipv4, "endpoint connected");
        Ok(())
    }

    fn wire_endpoint(&self, ep: &EndpointSpec) -> Result<(), SandboxError> {
        let sandbox = &self.spec.netns_path;
        in_netns(sandbox, |h| async move {
            let veth = link_index(&h, &ep.veth_name).await?.ok_or_else(|| {
                SandboxError::os(
                    format!("find veth {} just created", ep.veth_name),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            let bridge = bridge_index(&h, sandbox).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(veth)
                        .controller(bridge)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| SandboxError::netlink(format!("attach {} to br0", ep.veth_name), e))
        })?;
        in_netns(&ep.target, |h| async move {
            let index = link_index(&h, &ep.ifname).await?.ok_or_else(|| {
                SandboxError::os(
                    format!("find {} in {}", ep.ifname, ep.target.display()),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            disable_ipv6_here(&[&ep.ifname])?;
            add_ipv4_if_missing(&h, index, ep.ipv4, ep.prefix_len).await?;
            set_link_up(&h, &ep.ifname).await?;
            set_link_up(&h, "lo").await
        })
    }

    /// Deletes the sandbox end `veth_name`; the container end goes with it. A missing veth is
    /// not an error.
    pub fn disconnect(&self, veth_name: &str) -> Result<(), SandboxError> {
        in_netns(&self.spec.netns_path, |h| async move {
            match link_index(&h, veth_name).await? {
                Some(index) => delete_link(&h, index, veth_name).await,
                None => Ok(()),
            }
        })
    }

    /// Every link in the sandbox, for inspection and tests.
    pub fn links(&self) -> Result<Vec<LinkSummary>, SandboxError> {
        netns::links(&self.spec.netns_path)
    }

    /// Removes the sandbox: deletes its veths (their container ends go at once), then unpins
    /// its namespace, which disappears with the rest once no TAP fd holds it. The kernel tears
    /// a namespace down asynchronously — seconds, on a busy host — so the veths are not left to
    /// that.
    pub fn destroy(self) -> Result<(), SandboxError> {
        tracing::info!(netns = %self.spec.netns_path.display(), "removing sandbox namespace");
        let deleted = self.links().and_then(|links| {
            let veths: Vec<(u32, String)> = links
                .into_iter()
                .filter(|l| !matches!(l.name.as_str(), "lo" | BRIDGE_NAME | TAP_NAME))
                .map(|l| (l.index, l.name))
                .collect();
            in_netns(&self.spec.netns_path, |h| async move {
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
        netns::remove_pinned_netns(&self.spec.netns_path)
    }
}

/// The one place that decides how `vxtap0` is opened: L2, no packet-information header.
/// Offloads (`IFF_VNET_HDR`, DESIGN.md §5) and multi-queue get switched on here.
/// How `vxtap0` is opened. With `offloads`, the TAP carries a `virtio_net_hdr` in front of
/// every frame (IFF_VNET_HDR) and takes TCP superframes with unfinished checksums
/// (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`), which [`crate::offload`] splits and finishes.
fn tap_builder(offloads: bool) -> DeviceBuilder {
    DeviceBuilder::new()
        .name(TAP_NAME)
        .layer(Layer::L2)
        .packet_information(false)
        .offload(offloads)
        .multi_queue(false)
        // Up/down, MTU and the bridge are set over netlink once it is a port.
        .inherit_enable_state()
}

/// Opens the TAP, with offloads if asked and the kernel agrees; otherwise without (said once
/// per process). Whether the result has them: [`SyncDevice::tcp_gso`].
fn build_tap(offloads: bool) -> std::io::Result<SyncDevice> {
    static FALLBACK_LOGGED: std::sync::Once = std::sync::Once::new();
    if offloads {
        match tap_builder(true).build_sync().and_then(tcp_offloads_only) {
            Ok(device) => return Ok(device),
            Err(e) => FALLBACK_LOGGED.call_once(|| {
                tracing::warn!(error = %e, "the kernel refuses TAP offloads; running without");
            }),
        }
    }
    tap_builder(false).build_sync()
}

/// tun-rs also turns on UDP segmentation (USO) where the kernel has it; vxnet splits TCP only,
/// so the mask is set to exactly what DESIGN.md §5 names.
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

async fn bridge_index(h: &Handle, netns: &Path) -> Result<u32, SandboxError> {
    link_index(h, BRIDGE_NAME)
        .await?
        .ok_or_else(|| SandboxError::BridgeMissing {
            netns: netns.to_path_buf(),
        })
}

async fn set_link_up(h: &Handle, name: &str) -> Result<(), SandboxError> {
    h.link()
        .set(LinkUnspec::new_with_name(name).up().build())
        .execute()
        .await
        .map_err(|e| SandboxError::netlink(format!("bring {name} up"), e))
}

async fn delete_link(h: &Handle, index: u32, name: &str) -> Result<(), SandboxError> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        // Gone in the meantime (e.g. its peer's namespace died): what we wanted.
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(SandboxError::netlink(format!("delete {name}"), e)),
    }
}

async fn add_ipv4_if_missing(
    h: &Handle,
    index: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), SandboxError> {
    match h
        .address()
        .add(index, ip.into(), prefix_len)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        // Already there (an adopted sandbox): idempotent by design.
        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(SandboxError::netlink(
            format!("add address {ip}/{prefix_len}"),
            e,
        )),
    }
}

fn target_has(ep: &EndpointSpec) -> Result<bool, SandboxError> {
    in_netns(&ep.target, |h| async move {
        Ok(link_index(&h, &ep.ifname).await?.is_some())
    })
}

fn ifname_taken(ep: &EndpointSpec) -> SandboxError {
    SandboxError::IfnameTaken {
        ifname: ep.ifname.clone(),
        target: ep.target.clone(),
    }
}

fn check_mtu(mtu: u32) -> Result<(), SandboxError> {
    if (MTU_MIN..=MTU_MAX).contains(&mtu) {
        Ok(())
    } else {
        Err(SandboxError::InvalidSpec {
            what: "MTU",
            reason: format!("{mtu} is outside {MTU_MIN}..={MTU_MAX}"),
        })
    }
}

fn check_prefix_len(prefix_len: u8) -> Result<(), SandboxError> {
    if prefix_len <= 32 {
        Ok(())
    } else {
        Err(SandboxError::InvalidSpec {
            what: "prefix length",
            reason: format!("/{prefix_len} is longer than 32"),
        })
    }
}

fn check_unicast(ep: &EndpointSpec) -> Result<(), SandboxError> {
    if ep.mac[0] & 1 != 0 || ep.mac == [0; 6] {
        return Err(SandboxError::InvalidSpec {
            what: "MAC address",
            reason: format!("{} is not a unicast address", fmt_mac(ep.mac)),
        });
    }
    if ep.ipv4.is_unspecified() || ep.ipv4.is_multicast() || ep.ipv4.is_broadcast() {
        return Err(SandboxError::InvalidSpec {
            what: "IPv4 address",
            reason: format!("{} cannot be given to an interface", ep.ipv4),
        });
    }
    Ok(())
}

fn fmt_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Overlays are IPv4: without this, `br0`, `vxtap0`, the veths and the containers' interfaces
/// send router solicitations and MLD reports that every host would flood to every other
/// (Docker too disables IPv6 on the interfaces of IPv4-only networks). The sandbox's knobs are
/// set before `br0` exists, so that `default` covers the links made later.
fn disable_ipv6(netns_path: &Path) -> Result<(), SandboxError> {
    netns::run_in_netns(netns_path, || disable_ipv6_here(&["all", "default"]))
}

/// Sets `disable_ipv6` for `interfaces` in the calling thread's namespace (/proc/sys/net
/// resolves to the namespace of the thread that opens it). A kernel without IPv6 has nothing
/// to disable.
fn disable_ipv6_here(interfaces: &[&str]) -> Result<(), SandboxError> {
    for name in interfaces {
        let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        match std::fs::write(&path, b"1") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SandboxError::os(format!("write {path}"), source)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::testutil::{add_veth, nsexec, root_or_skip, unique, Scratch};
    use std::time::{Duration, Instant};

    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const MTU: u32 = 1450;

    fn spec_in(scratch: &Scratch) -> SandboxSpec {
        SandboxSpec {
            netns_path: scratch.path("sandbox"),
            gateway: GATEWAY,
            prefix_len: 24,
            mtu: MTU,
        }
    }

    /// A container namespace pinned in the scratch dir.
    fn container(scratch: &Scratch, name: &str) -> PathBuf {
        let path = scratch.path(name);
        netns::create_pinned_netns(&path).expect("pin container netns");
        path
    }

    fn endpoint(target: &Path, ifname: &str, host: u8) -> EndpointSpec {
        let ipv4 = Ipv4Addr::new(10, 77, 0, host);
        EndpointSpec {
            target: target.to_path_buf(),
            ifname: ifname.to_string(),
            mac: MacAddr::for_ipv4(ipv4).0,
            ipv4,
            prefix_len: 24,
            mtu: MTU,
            veth_name: unique("vxv"),
        }
    }

    fn find<'a>(links: &'a [LinkSummary], name: &str) -> Option<&'a LinkSummary> {
        links.iter().find(|l| l.name == name)
    }

    fn names(ns: &Path) -> Vec<String> {
        let mut names: Vec<String> = netns::links(ns)
            .expect("list links")
            .into_iter()
            .map(|l| l.name)
            .collect();
        names.sort();
        names
    }

    fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        done()
    }

    #[test]
    fn ensure_creates_adopts_and_recreates_after_reboot() {
        if !root_or_skip("ensure_creates_adopts_and_recreates_after_reboot") {
            return;
        }
        let scratch = Scratch::new("ensure");
        let spec = spec_in(&scratch);
        let sandbox = Sandbox::ensure(spec.clone()).expect("ensure");
        let links = sandbox.links().expect("links");
        assert!(find(&links, "lo").expect("lo").up);
        let br = find(&links, BRIDGE_NAME).expect("br0").clone();
        assert!(br.up);
        assert_eq!(br.mtu, MTU);
        assert_eq!(br.mac, Some(sandbox.gateway_mac()));
        assert_eq!(br.ipv4, [(GATEWAY, 24)]);

        // A restarted daemon: same spec, nothing duplicated, same bridge.
        let adopted = Sandbox::ensure(spec.clone()).expect("ensure again");
        let again = adopted.links().expect("links");
        assert_eq!(find(&again, BRIDGE_NAME), Some(&br));
        assert_eq!(again.len(), links.len());

        // A reboot: the pin file is left empty.
        adopted.destroy().expect("destroy");
        assert!(!spec.netns_path.exists());
        drop(sandbox);
        std::fs::write(&spec.netns_path, b"").expect("stale pin");
        let fresh = Sandbox::ensure(spec).expect("ensure after reboot");
        let br = fresh.links().expect("links");
        assert_eq!(find(&br, BRIDGE_NAME).expect("br0").ipv4, [(GATEWAY, 24)]);
    }

    #[test]
    fn open_tap_makes_an_up_bridge_port_and_replaces_leftovers() {
        if !root_or_skip("open_tap_makes_an_up_bridge_port_and_replaces_leftovers") {
            return;
        }
        let scratch = Scratch::new("tap");
        let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
        // A leftover of the same name, which must not stop the TAP from being made.
        add_veth(sandbox.netns_path(), TAP_NAME, "leftover-peer");
        let leftover = find(&sandbox.links().expect("links"), TAP_NAME)
            .expect("leftover")
            .index;

        let tap = sandbox.open_tap(false).expect("open tap");
        let links = sandbox.links().expect("links");
        let br = find(&links, BRIDGE_NAME).expect("br0");
        let port = find(&links, TAP_NAME).expect("vxtap0");
        assert_ne!(port.index, leftover);
        assert!(port.up);
        assert_eq!(port.mtu, MTU);
        assert_eq!(port.controller, Some(br.index));
        assert_eq!(
            br.mac,
            Some(sandbox.gateway_mac()),
            "a port must not change br0's MAC"
        );

        let tap_was_offloaded = tap.tcp_gso();
        drop(tap);
        let gone = wait_until(Duration::from_secs(5), || {
            find(&sandbox.links().expect("links"), TAP_NAME).is_none()
        });
        assert!(gone, "closing the fd removes the TAP");
        assert!(!tap_was_offloaded, "asked for no offloads");
        let again = sandbox.open_tap(true).expect("reopen tap");
        // Kernels since 2.6.27 take TSO on a TAP; this one must.
        assert!(again.tcp_gso(), "asked for offloads");
    }

    #[test]
    fn connect_wires_endpoints_and_the_gateway_answers() {
        if !root_or_skip("connect_wires_endpoints_and_the_gateway_answers") {
            return;
        }
        let scratch = Scratch::new("connect");
        let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
        let c1 = container(&scratch, "c1");
        let c2 = container(&scratch, "c2");
        let ep1 = endpoint(&c1, &netns::next_free_ifname(&c1).expect("ifname"), 2);
        assert_eq!(ep1.ifname, "eth0");
        let ep2 = endpoint(&c2, "eth7", 3);
        sandbox.connect(&ep1).expect("connect c1");
        sandbox.connect(&ep2).expect("connect c2");

        let inside = netns::links(&c1).expect("links in c1");
        assert_eq!(inside.len(), 2, "lo and eth0: {inside:?}");
        assert!(find(&inside, "lo").expect("lo").up);
        let eth0 = find(&inside, "eth0").expect("eth0");
        assert!(eth0.up);
        assert_eq!(eth0.mac, Some([0x02, 0x42, 10, 77, 0, 2]));
        assert_eq!(eth0.mtu, MTU);
        assert_eq!(eth0.ipv4, [(Ipv4Addr::new(10, 77, 0, 2), 24)]);
        assert!(find(&netns::links(&c2).expect("links in c2"), "eth7").is_some());

        let links = sandbox.links().expect("sandbox links");
        let br = find(&links, BRIDGE_NAME).expect("br0");
        assert_eq!(
            br.mac,
            Some(sandbox.gateway_mac()),
            "ports must not change br0's MAC"
        );
        for ep in [&ep1, &ep2] {
            let veth = find(&links, &ep.veth_name).expect("sandbox end");
            assert!(veth.up);
            assert_eq!(veth.mtu, MTU);
            assert_eq!(veth.controller, Some(br.index));
        }

        for (from, to) in [(&c1, "10.77.0.1"), (&c1, "10.77.0.3"), (&c2, "10.77.0.2")] {
            let out = nsexec(from, &["ping", "-c", "2", "-W", "1", to]);
            assert!(
                out.status.success(),
                "ping {to} from {}: {}{}",
                from.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn failed_connects_leave_nothing_behind() {
        if !root_or_skip("failed_connects_leave_nothing_behind") {
            return;
        }
        let scratch = Scratch::new("fail");
        let spec = spec_in(&scratch);
        let sandbox = Sandbox::ensure(spec.clone()).expect("ensure");
        let c1 = container(&scratch, "c1");
        let c2 = container(&scratch, "c2");
        let first = endpoint(&c1, "eth0", 2);
        sandbox.connect(&first).expect("connect");
        let before = names(sandbox.netns_path());

        // The interface name is taken in the target.
        let taken = endpoint(&c1, "eth0", 3);
        let err = sandbox.connect(&taken).expect_err("ifname taken");
        assert!(matches!(err, SandboxError::IfnameTaken { .. }), "{err}");
        assert!(err.is_user_error());
        assert_eq!(
            err.to_string(),
            format!(
                "interface \"eth0\" already exists in network namespace {}; choose another --ifname",
                c1.display()
            )
        );
        assert_eq!(names(sandbox.netns_path()), before);
        assert_eq!(names(&c1), ["eth0", "lo"]);

        // The sandbox-side name is taken: the existing endpoint must survive.
        let mut twin = endpoint(&c2, "eth0", 4);
        twin.veth_name = first.veth_name.clone();
        let err = sandbox.connect(&twin).expect_err("veth exists");
        assert!(matches!(err, SandboxError::VethExists { .. }), "{err}");
        assert_eq!(names(sandbox.netns_path()), before);
        assert_eq!(names(&c2), ["lo"]);
        assert_eq!(names(&c1), ["eth0", "lo"]);

        // Not a namespace; a bad name.
        let plain = scratch.path("plain");
        std::fs::write(&plain, b"").expect("plain file");
        let err = sandbox
            .connect(&endpoint(&plain, "eth0", 5))
            .expect_err("not a netns");
        assert!(matches!(err, SandboxError::NotANetns { .. }), "{err}");
        let err = sandbox
            .connect(&endpoint(&c2, "much-too-long-name", 5))
            .expect_err("bad ifname");
        assert!(matches!(err, SandboxError::InvalidIfname { .. }), "{err}");

        // A failure after the pair exists (a damaged sandbox without br0) is rolled back.
        in_netns(sandbox.netns_path(), |h| async move {
            let br = link_index(&h, BRIDGE_NAME).await?.expect("br0 exists");
            delete_link(&h, br, BRIDGE_NAME).await
        })
        .expect("delete br0");
        let late = endpoint(&c2, "eth0", 6);
        let err = sandbox.connect(&late).expect_err("no bridge");
        assert!(matches!(err, SandboxError::BridgeMissing { .. }), "{err}");
        assert!(find(&sandbox.links().expect("links"), &late.veth_name).is_none());
        assert_eq!(names(&c2), ["lo"]);

        // ensure() repairs the sandbox, and the same endpoint now connects.
        let sandbox = Sandbox::ensure(spec).expect("repair");
        sandbox.connect(&late).expect("connect after repair");
        assert_eq!(names(&c2), ["eth0", "lo"]);
    }

    #[test]
    fn disconnect_removes_both_ends_and_is_idempotent() {
        if !root_or_skip("disconnect_removes_both_ends_and_is_idempotent") {
            return;
        }
        let scratch = Scratch::new("disc");
        let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
        let c1 = container(&scratch, "c1");
        let ep = endpoint(&c1, "eth0", 2);
        sandbox.connect(&ep).expect("connect");
        sandbox.disconnect(&ep.veth_name).expect("disconnect");
        assert!(find(&sandbox.links().expect("links"), &ep.veth_name).is_none());
        assert_eq!(names(&c1), ["lo"]);
        sandbox.disconnect(&ep.veth_name).expect("disconnect again");
        // The same endpoint can come back.
        sandbox.connect(&ep).expect("reconnect");
        assert_eq!(names(&c1), ["eth0", "lo"]);
    }

    #[test]
    fn destroy_takes_container_ends_along() {
        if !root_or_skip("destroy_takes_container_ends_along") {
            return;
        }
        let scratch = Scratch::new("destroy");
        let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
        let c1 = container(&scratch, "c1");
        sandbox.connect(&endpoint(&c1, "eth0", 2)).expect("connect");
        let pin = sandbox.netns_path().to_path_buf();
        sandbox.destroy().expect("destroy");
        assert!(!pin.exists());
        // Namespace teardown runs in a kernel work queue: give it a moment.
        assert!(
            wait_until(Duration::from_secs(10), || names(&c1) == ["lo"]),
            "container end still there: {:?}",
            names(&c1)
        );
    }

    /// An ARP packet, just the fields the tests look at.
    #[derive(Debug, PartialEq, Eq)]
    struct Arp {
        op: u16,
        sha: [u8; 6],
        spa: Ipv4Addr,
        tha: [u8; 6],
        tpa: Ipv4Addr,
    }

    fn parse_arp(frame: &[u8]) -> Option<Arp> {
        if frame.len() < 42 || frame[12..14] != [0x08, 0x06] {
            return None;
        }
        let arp = &frame[14..42];
        let mac = |at: usize| -> [u8; 6] { arp[at..at + 6].try_into().unwrap_or_default() };
        let ip = |at: usize| Ipv4Addr::new(arp[at], arp[at + 1], arp[at + 2], arp[at + 3]);
        Some(Arp {
            op: u16::from_be_bytes([arp[6], arp[7]]),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        })
    }

    fn arp_request(sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut f = Vec::with_capacity(60);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa.octets());
        f.resize(60, 0);
        f
    }

    /// Reads frames from the TAP until one satisfies `want`, or gives up after `timeout`;
    /// other traffic (IPv6 router solicitations, MLD reports) is skipped.
    fn read_until(tap: &SyncDevice, timeout: Duration, want: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            match tap.recv(&mut buf) {
                Ok(n) if want(&buf[..n]) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("read from the TAP: {e}"),
            }
        }
        false
    }

    #[test]
    fn tap_is_wired_to_the_bridge_both_ways() {
        if !root_or_skip("tap_is_wired_to_the_bridge_both_ways") {
            return;
        }
        let scratch = Scratch::new("wire");
        let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
        let tap = sandbox.open_tap(false).expect("open tap");
        tap.set_nonblocking(true).expect("nonblocking");
        let c1 = container(&scratch, "c1");
        let ep = endpoint(&c1, "eth0", 2);
        sandbox.connect(&ep).expect("connect");

        // Container → TAP: an ARP broadcast for an address nobody has is flooded to vxtap0.
        let nobody = Ipv4Addr::new(10, 77, 0, 99);
        let mut ping = std::process::Command::new("nsenter")
            .arg(format!("--net={}", c1.display()))
            .args(["ping", "-c", "2", "-W", "1", "10.77.0.99"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ping");
        let seen = read_until(&tap, Duration::from_secs(5), |f| {
            parse_arp(f).is_some_and(|a| a.op == 1 && a.sha == ep.mac && a.tpa == nobody)
        });
        let _ = ping.wait();
        assert!(seen, "the container's ARP broadcast never reached the TAP");

        // TAP → bridge: ARP requests written to the fd reach br0 and the container, whose
        // replies come back out of the TAP to the sender's MAC.
        let me = [0x02, 0, 0, 0, 0, 0x42];
        let my_ip = Ipv4Addr::new(10, 77, 0, 200);
        for (ask, mac) in [(GATEWAY, sandbox.gateway_mac()), (ep.ipv4, ep.mac)] {
            let sent = tap
                .send(&arp_request(me, my_ip, ask))
                .expect("write to the TAP");
            assert_eq!(sent, 60);
            let answered = read_until(&tap, Duration::from_secs(5), |f| {
                f[..6] == me
                    && parse_arp(f).is_some_and(|a| {
                        a.op == 2 && a.sha == mac && a.spa == ask && a.tha == me && a.tpa == my_ip
                    })
            });
            assert!(answered, "no ARP reply for {ask} came out of the TAP");
        }
    }
}
