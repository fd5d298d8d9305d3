//! The door between the control plane and the dataplane: [`Host`] owns everything this host
//! runs for its overlays — the engine (sockets and forwarding threads), one sandbox per
//! network with local endpoints (namespace, `br0`, TAP), the endpoints' veths and their
//! names — and takes one pure description of what should be there, a [`HostProgram`].
//!
//! Rules a caller relies on:
//! - [`Host::apply`] makes the host match the program and can be called any number of times:
//!   a sandbox for each network with a local endpoint, none for the others, each network's
//!   control entries and VTEP lists swapped in whole, veths no local endpoint owns deleted,
//!   sandboxes on disk that no network owns removed. A network it cannot set up is reported
//!   and tried again by the next apply; the others are not held back.
//! - Each running sandbox's guard (see [`guard`]) lets every local endpoint of the program
//!   send as itself only; it is in place before forwarding takes new endpoints and before
//!   their veths exist, and a network whose guard cannot be applied is a failed network.
//!   After a restart the previous run's guard, still in the sandbox, covers its veths while
//!   forwarding resumes; it is rendered again right after, so that no `nft` run is in the
//!   restart window.
//! - [`Host::attach`] wires one endpoint of a network the last program placed on this host,
//!   all or nothing; [`Host::detach`] removes its veth (a missing one is not an error).
//! - The caller never sees a namespace, a TAP, a veth name or an engine counter: it asks
//!   [`Host::fdb`] and [`Host::stats`].
//! - Stopping ([`Host::shutdown`], or drop) stops forwarding and leaves the sandboxes, so that
//!   containers keep their interfaces while the daemon restarts.
//! - A forwarding thread that stops by itself (a TAP deleted from outside, a panic) leaves its
//!   network without forwarding: it is reported once on [`Host::take_failures`], and the
//!   caller is expected to stop, so that a restart rebuilds the TAPs.
//! - Every call blocks (netlink, thread joins); the daemon makes them from its control thread.

pub mod dns;
pub mod egress;
mod error;
pub mod guard;
pub mod netns;
mod program;
pub mod publish;
pub mod sandbox;
#[cfg(test)]
pub(crate) mod testutil;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use self::dns::resolv_conf;
use self::dns::serve::{DnsServer, DnsService};
use self::dns::{Names, Upstreams};
pub use self::error::HostError;
use self::guard::{Guard, GuardedPort};
use self::netns::NetnsWorker;
pub use self::netns::{next_free_ifname, resolve_target};
pub use self::program::{
    EndpointProgram, HostProgram, Location, NetworkKey, NetworkProgram, Salts,
};
use self::publish::{Proto, Publish};
use self::sandbox::{EndpointSpec, Sandbox, SandboxSpec};
pub use crate::core::counters::{DropReason, SyscallStats, TrafficStats};
pub use crate::core::fdb::{FdbKind, FdbRow};
pub use crate::engine::ThreadFailure;
use crate::engine::{Engine, EngineConfig, TapPort};
pub use crate::kernel::KernelVersion;
use crate::wire::MacAddr;

/// The daemon's own network namespace (its main thread's), where transit links end and
/// hand-over interfaces wait for their runtime.
const HOST_NS: &str = "/proc/self/ns/net";

/// How the host's dataplane runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Underlay address: VTEP source address, where the VXLAN socket binds.
    pub underlay: Ipv4Addr,
    /// UDP port of VXLAN (4789).
    pub vxlan_port: u16,
    /// Use TAP offloads, UDP GSO/GRO where the kernel has them.
    pub offloads: bool,
    /// Use no kernel feature newer than this Linux version (`--kernel`); `None`: no limit.
    pub kernel: Option<KernelVersion>,
    /// How long forwarding threads poll after the last packet before sleeping; zero: never.
    pub busy_poll: std::time::Duration,
    /// Forwarding workers (`--queues`); `None`: one per core.
    pub queues: Option<usize>,
    /// Where sandbox namespaces are pinned (under the daemon's data dir).
    pub sandbox_dir: PathBuf,
    /// Where the networks' DNS forwards names that are not theirs (`--dns`, else the host's
    /// `/etc/resolv.conf`).
    pub dns_upstreams: Upstreams,
    /// Where `resolv.conf` files for `ip netns` targets go ([`dns::resolv_conf::ETC_NETNS`]).
    pub etc_netns: PathBuf,
}

/// One endpoint to wire on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub network_id: String,
    pub endpoint_id: String,
    /// The container's network namespace (from [`resolve_target`]).
    pub target: PathBuf,
    /// Name of the container's interface.
    pub ifname: String,
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
    /// Leave the container end unconfigured in the daemon's own namespace under `ifname`, for
    /// the runtime to move into `target` and address (Docker's Join).
    pub hand_over: bool,
}

/// A network whose dataplane [`Host::apply`] could not set up.
#[derive(Debug)]
pub struct NetworkFailure {
    pub network_id: String,
    pub name: String,
    pub error: HostError,
}

/// Traffic of every running network (by network id), and the drops of datagrams that belong
/// to no network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    pub networks: BTreeMap<String, TrafficStats>,
    pub drops: Vec<(DropReason, u64)>,
    /// The forwarding threads' system calls, all networks together.
    pub syscalls: SyscallStats,
}

/// A network this host forwards for: its sandbox, its plane and TAP in the engine, and the
/// veths in the sandbox as of the last apply (`None`: not listed yet).
struct Running {
    sandbox: Sandbox,
    port: Arc<TapPort>,
    /// The program this network was last set up from, wholly; `None` until that succeeds
    /// (see [`HostProgram`]: an unchanged network is not programmed again).
    programmed: Option<Arc<NetworkProgram>>,
    veths: Option<BTreeSet<String>>,
    /// The sandbox end's address once the transit link is in place (see [`egress`]).
    egress: Option<Ipv4Addr>,
    /// The sandbox's nftables script as last applied.
    rules: Option<String>,
    /// The sandbox's guard as last applied (see [`guard`]).
    guard: Guard,
    /// The network's DNS, once its sockets are bound.
    dns: Option<DnsServer>,
}

/// See the module docs.
pub struct Host {
    engine: Engine,
    /// Netlink work in the daemon's own namespace (the transit links' host ends).
    host_ns: NetnsWorker,
    /// The host namespace's nftables script as last applied (see [`egress`]); `None` until a
    /// network with egress runs (a previous run's table is replaced then).
    host_rules: Option<String>,
    /// Sockets holding the published host ports (see [`publish`]).
    reserved: BTreeMap<(Proto, Ipv4Addr, u16), socket2::Socket>,
    dns: DnsService,
    etc_netns: PathBuf,
    /// VXLAN's UDP port, kept out of conntrack by the host's nftables table.
    vxlan_port: u16,
    sandbox_dir: PathBuf,
    /// Whether stray sandboxes were looked for since the start.
    swept: bool,
    program: HostProgram,
    running: BTreeMap<String, Running>,
}

impl Host {
    /// Binds the VXLAN sockets and starts the engine. Nothing else is made until the first
    /// [`Host::apply`].
    pub fn start(config: HostConfig) -> Result<Host, HostError> {
        let mut engine_config = EngineConfig::new(config.underlay, config.vxlan_port);
        engine_config.offloads = config.offloads;
        engine_config.kernel = config.kernel;
        engine_config.busy_poll = config.busy_poll;
        if let Some(queues) = config.queues {
            engine_config.queues = queues;
        }
        let engine = Engine::start(engine_config).map_err(|e| {
            HostError::os(
                format!(
                    "bind the VXLAN socket on {}:{}",
                    config.underlay, config.vxlan_port
                ),
                e,
            )
        })?;
        std::fs::create_dir_all(&config.sandbox_dir)
            .map_err(|e| HostError::os(format!("create {}", config.sandbox_dir.display()), e))?;
        let host_ns = NetnsWorker::start(Path::new(HOST_NS))?;
        Ok(Host {
            engine,
            host_ns,
            host_rules: None,
            reserved: BTreeMap::new(),
            dns: DnsService::new(config.dns_upstreams)
                .map_err(|e| HostError::os("start the DNS runtime", e))?,
            etc_netns: config.etc_netns,
            vxlan_port: config.vxlan_port,
            sandbox_dir: config.sandbox_dir,
            swept: false,
            program: HostProgram::default(),
            running: BTreeMap::new(),
        })
    }

    /// The channel on which forwarding threads that stopped by themselves are reported (see
    /// the module docs); `None` after the first call. It closes once the host is shut down.
    pub fn take_failures(&mut self) -> Option<mpsc::Receiver<ThreadFailure>> {
        self.engine.take_failures()
    }

    /// Makes the host match `program` (see the module docs); returns the networks it could
    /// not set up, which the next apply tries again.
    pub fn apply(&mut self, program: HostProgram, now: Instant) -> Vec<NetworkFailure> {
        let previous = std::mem::replace(&mut self.program, program);
        self.forget_resolv_confs(&previous);
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|id| {
                self.program
                    .network(id)
                    .is_none_or(|n| !n.has_local_endpoint())
            })
            .cloned()
            .collect();
        let sandboxes_changed = !gone.is_empty();
        for id in gone {
            self.stop_network(&id);
        }
        let started = self.running.len();
        let mut failures = Vec::new();
        let failed = |net: &NetworkProgram, error| NetworkFailure {
            network_id: net.id.clone(),
            name: net.name.clone(),
            error,
        };
        let networks: Vec<Arc<NetworkProgram>> = self.program.networks.clone();
        let here: Vec<&Arc<NetworkProgram>> =
            networks.iter().filter(|n| n.has_local_endpoint()).collect();
        // Every network forwards before any is programmed further: the rest takes `nft` runs
        // of some milliseconds each, which a restarted host's traffic need not wait for.
        for net in &here {
            if let Err(error) = self.start_forwarding(net, now) {
                failures.push(failed(net, error));
            }
        }
        for net in here {
            if self.running.contains_key(&net.id) {
                if let Err(error) = self.program_network(net, now) {
                    failures.push(failed(net, error));
                }
            }
        }
        // Only when sandboxes came or went (or at the first apply): a crash may have left one
        // that no network owns, and looking costs a directory walk.
        if sandboxes_changed || self.running.len() != started || !self.swept {
            self.remove_stray_sandboxes();
            self.swept = true;
        }
        if let Err(error) = self.program_host_rules() {
            tracing::warn!(%error, "cannot program vxnet's nftables table in the host namespace");
        }
        failures
    }

    /// Puts vxnet's table into the host namespace while a network with egress runs here, with
    /// the DNATs of the published ports, and takes it out after the last one (see
    /// [`egress`]); holds the published ports (see [`publish`]).
    fn program_host_rules(&mut self) -> Result<(), HostError> {
        let mut ports = Vec::new();
        let mut any_egress = false;
        for (id, running) in &self.running {
            let (Some(net), Some(to)) = (self.program.network(id), running.egress) else {
                continue;
            };
            any_egress = true;
            ports.extend(local_ports(net).map(|p| (p, to)));
        }
        self.hold_ports(ports.iter().map(|(p, _)| p.host_side()).collect());
        let script = if any_egress {
            egress::host_ruleset(&ports, self.vxlan_port)
        } else if self.host_rules.is_some() {
            egress::remove_table()
        } else {
            // Nothing with egress has run yet: leave the namespace's nftables alone.
            return Ok(());
        };
        if self.host_rules.as_ref() != Some(&script) {
            egress::nft_apply(&script)?;
            self.host_rules = Some(script);
        }
        Ok(())
    }

    /// Keeps a socket bound to each of `wanted` and to nothing else.
    fn hold_ports(&mut self, wanted: BTreeSet<(Proto, Ipv4Addr, u16)>) {
        self.reserved.retain(|key, _| wanted.contains(key));
        for key @ (proto, ip, port) in wanted {
            if self.reserved.contains_key(&key) {
                continue;
            }
            match publish::reserve(proto, ip, port) {
                Ok(socket) => {
                    self.reserved.insert(key, socket);
                }
                Err(e) => tracing::warn!(port, proto = proto.name(), %ip, error = %e,
                    "cannot hold a published port; another program may take it"),
            }
        }
    }

    /// Starts forwarding for `net` unless it runs already. A sandbox a previous run left (a
    /// restart) gets its forwarding tables at once, before its guard is rendered again: that
    /// run's guard is still in the namespace and covers every veth it made, and the veths
    /// no endpoint owns any more go first.
    fn start_forwarding(&mut self, net: &NetworkProgram, now: Instant) -> Result<(), HostError> {
        if self.running.contains_key(&net.id) {
            return Ok(());
        }
        let mut running = start_network(&self.engine, &self.sandbox_dir, net)?;
        if running.sandbox.adopted() {
            remove_stray_veths(&mut running, net);
            install_forwarding(&running, net, self.engine.local(), now);
        }
        self.running.insert(net.id.clone(), running);
        Ok(())
    }

    /// Programs a running network from `net`, unless it was programmed from that very program.
    fn program_network(
        &mut self,
        net: &Arc<NetworkProgram>,
        now: Instant,
    ) -> Result<(), HostError> {
        let Some(running) = self.running.get_mut(&net.id) else {
            return Ok(());
        };
        if running
            .programmed
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, net))
        {
            return Ok(());
        }
        // Whatever fails is retried by the next apply, even with the same program.
        running.programmed = None;
        let local = self.engine.local();
        set_up_network(running, net, local, &self.dns, &self.host_ns, now)?;
        running.programmed = Some(Arc::clone(net));
        Ok(())
    }

    /// Wires `endpoint` into its network's sandbox. The network must have been placed on this
    /// host by the last [`Host::apply`] (the endpoint is in its program).
    pub fn attach(&mut self, endpoint: &Attachment) -> Result<(), HostError> {
        let (net, running) = self.running_network(&endpoint.network_id)?;
        let target = if endpoint.hand_over {
            PathBuf::from(HOST_NS)
        } else {
            endpoint.target.clone()
        };
        running.sandbox.connect(&EndpointSpec {
            target,
            hand_over: endpoint.hand_over,
            ifname: endpoint.ifname.clone(),
            mac: endpoint.mac,
            ipv4: endpoint.ipv4,
            prefix_len: net.prefix_len,
            mtu: net.mtu,
            default_route: (!net.internal).then_some(net.gateway),
            veth_name: veth_name(&endpoint.endpoint_id),
        })?;
        let gateway = net.gateway;
        if let Err(e) = resolv_conf::write(&self.etc_netns, &endpoint.target, &net.id, gateway) {
            tracing::warn!(target = %endpoint.target.display(), error = %e,
                "cannot write the container's resolv.conf");
        }
        Ok(())
    }

    /// Removes the `resolv.conf` files written for local endpoints of `previous` that the
    /// current program no longer has (see [`dns::resolv_conf`]).
    fn forget_resolv_confs(&self, previous: &HostProgram) {
        for net in &previous.networks {
            let kept = self.program.network(&net.id);
            if kept.is_some_and(|k| Arc::ptr_eq(k, net)) {
                continue;
            }
            for ep in net.local_endpoints() {
                let gone = kept.is_none_or(|n| n.local_endpoints().all(|e| e.id != ep.id));
                let Some(target) = ep.target.as_deref().filter(|_| gone) else {
                    continue;
                };
                if let Err(e) = resolv_conf::remove(&self.etc_netns, target, &net.id) {
                    tracing::warn!(target = %target.display(), error = %e,
                        "cannot remove the container's resolv.conf");
                }
            }
        }
    }

    /// Removes an endpoint's veth, if its network runs here; the container's interface goes
    /// with it.
    pub fn detach(&mut self, network_id: &str, endpoint_id: &str) -> Result<(), HostError> {
        match self.running.get(network_id) {
            Some(running) => running.sandbox.disconnect(&veth_name(endpoint_id)),
            None => Ok(()),
        }
    }

    /// This host's endpoints whose veth is gone from their sandbox — their container's
    /// namespace was deleted (the container exited, `ip netns del`), which takes both ends of
    /// the veth with it — as (network id, endpoint id). A sandbox that cannot be listed is
    /// skipped (and logged): nothing is reported gone on a guess.
    pub fn vanished_endpoints(&self) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        for id in self.running.keys() {
            let (Some(net), Some(present)) = (self.program.network(id), self.endpoint_links(id))
            else {
                continue;
            };
            gone.extend(
                net.local_endpoints()
                    .filter(|e| !present.contains(&veth_name(&e.id)))
                    .map(|e| (id.clone(), e.id.clone())),
            );
        }
        gone
    }

    /// Whether the sandbox of `network_id` runs here and has the veth of `endpoint_id`.
    pub fn has_endpoint_link(&self, network_id: &str, endpoint_id: &str) -> bool {
        self.endpoint_links(network_id)
            .is_some_and(|present| present.contains(&veth_name(endpoint_id)))
    }

    /// The names of the endpoint veths in the sandbox of `network_id`; `None` if it does not
    /// run here or cannot be listed right now.
    fn endpoint_links(&self, network_id: &str) -> Option<BTreeSet<String>> {
        let running = self.running.get(network_id)?;
        match running.sandbox.endpoint_links() {
            Ok(links) => Some(links.into_iter().map(|l| l.name).collect()),
            Err(e) => {
                tracing::warn!(network = %network_id, error = %e, "cannot list the sandbox's links");
                None
            }
        }
    }

    fn running_network(&self, id: &str) -> Result<(&NetworkProgram, &Running), HostError> {
        self.program
            .network(id)
            .map(|n| &**n)
            .zip(self.running.get(id))
            .ok_or_else(|| HostError::NotRunning { network: id.into() })
    }

    /// The forwarding entries of a network: live ones where it runs here, else what the
    /// control plane would program; then one `static` row per static peer (they receive every
    /// flood, like `bridge fdb append 00:00:00:00:00:00 dst IP`).
    pub fn fdb(&self, network_id: &str, now: Instant) -> Vec<FdbRow> {
        let Some(net) = self.program.network(network_id) else {
            return Vec::new();
        };
        let mut rows = match self.running.get(network_id) {
            Some(running) => running.port.plane.fdb.rows(now),
            None => net
                .endpoints
                .iter()
                .filter_map(|e| match e.location {
                    Location::Remote(vtep) => Some(FdbRow {
                        mac: e.mac,
                        vtep: Some(vtep),
                        kind: FdbKind::Control,
                        age: Duration::ZERO,
                    }),
                    Location::Local => None,
                })
                .collect(),
        };
        rows.extend(net.peers.iter().map(|&peer| FdbRow {
            mac: MacAddr::ZERO,
            vtep: Some(peer),
            kind: FdbKind::Static,
            age: Duration::ZERO,
        }));
        rows
    }

    /// Counters of every running network — the forwarding core's, and the refusals of each
    /// sandbox's guard read from the kernel now — and the drops that belong to none.
    pub fn stats(&self) -> HostStats {
        self.stats_within(Duration::ZERO, usize::MAX)
    }

    /// [`Host::stats`] for a caller that samples often: the guards' counters may be up to
    /// [`guard::COUNTERS_MAX_AGE`] old, and older on a host with many networks, since reading
    /// them runs `nft` once per network and one call reads at most
    /// [`guard::SAMPLED_READS`] of them (the stalest come first in turn, as each fresh one
    /// waits out its age).
    pub fn stats_sampled(&self) -> HostStats {
        self.stats_within(guard::COUNTERS_MAX_AGE, guard::SAMPLED_READS)
    }

    fn stats_within(&self, max_age: Duration, mut reads: usize) -> HostStats {
        HostStats {
            networks: self
                .running
                .iter()
                .map(|(id, r)| {
                    let mut traffic = r.port.plane.counters.snapshot();
                    traffic.drops = guard::add_counts(
                        &traffic.drops,
                        &r.guard.counts(&r.sandbox, max_age, &mut reads),
                    );
                    (id.clone(), traffic)
                })
                .collect(),
            drops: self.engine.dataplane().drops.nonzero(),
            syscalls: self.engine.syscalls(),
        }
    }

    /// Stops forwarding; sandboxes stay (see the module docs).
    pub fn shutdown(self) {
        self.engine.shutdown();
    }

    fn stop_network(&mut self, id: &str) {
        let Some(running) = self.running.remove(id) else {
            return;
        };
        self.engine.remove_network(running.port.plane.config().vni);
        if let Err(e) = running.sandbox.destroy() {
            tracing::warn!(network = id, error = %e, "cannot remove the sandbox");
        }
    }

    /// Sandboxes on disk that no running network owns: left by a crash between creating a
    /// sandbox and recording why. They hold nothing anyone uses.
    fn remove_stray_sandboxes(&self) {
        let Ok(dir) = std::fs::read_dir(&self.sandbox_dir) else {
            return;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let owned = self
                .running
                .values()
                .any(|r| r.sandbox.netns_path() == path);
            if !owned {
                if let Err(e) = netns::remove_pinned_netns(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a stray sandbox");
                }
            }
        }
    }
}

fn start_network(
    engine: &Engine,
    sandbox_dir: &Path,
    net: &NetworkProgram,
) -> Result<Running, HostError> {
    let sandbox = Sandbox::ensure(SandboxSpec {
        netns_path: sandbox_path(sandbox_dir, &net.id),
        gateway: net.gateway,
        prefix_len: net.prefix_len,
        mtu: net.mtu,
    })?;
    let queues = sandbox.open_tap(engine.tap_shape())?;
    let port = engine
        .add_network(net.plane_config(), queues)
        .map_err(|e| HostError::os(format!("start forwarding for network {}", net.name), e))?;
    tracing::info!(network = %net.name, vni = net.vni.get(), "sandbox up");
    Ok(Running {
        sandbox,
        port,
        programmed: None,
        veths: None,
        egress: None,
        rules: None,
        guard: Guard::default(),
        dns: None,
    })
}

/// Programs a running network from `net`: forwarding tables, stray veths, names, then its way
/// out (see [`Host::apply`]).
fn set_up_network(
    running: &mut Running,
    net: &NetworkProgram,
    local: Ipv4Addr,
    dns: &DnsService,
    host_ns: &NetnsWorker,
    now: Instant,
) -> Result<(), HostError> {
    // Before forwarding takes the new endpoints, and before any of their veths exist: a
    // container is never on the bridge unguarded. A guard that cannot be put in place fails
    // the network, so its connects fail too.
    guard_ports(running, net)?;
    install_forwarding(running, net, local, now);
    remove_stray_veths(running, net);
    // After forwarding runs: the network's names, then its way out. Either failing leaves
    // the overlay running, and the next apply tries again.
    if running.dns.is_none() {
        let (udp, tcp) = running.sandbox.bind_dns()?;
        let server = dns
            .start(
                udp,
                tcp,
                Names::default(),
                !net.internal,
                running.port.clone(),
            )
            .map_err(|e| HostError::os("serve the network's DNS", e))?;
        running.dns = Some(server);
    }
    if let Some(dns) = &running.dns {
        dns.set_names(Names::new(
            &net.name,
            net.endpoints.iter().map(|e| (e.names.as_slice(), e.ipv4)),
        ));
    }
    // After forwarding runs: a network without its way out still carries its overlay,
    // and the next apply tries again.
    if net.internal {
        return Ok(());
    }
    if running.egress.is_none() {
        running.egress = Some(running.sandbox.ensure_egress(host_ns, &net.id)?);
    }
    let ports: Vec<Publish> = local_ports(net).collect();
    let script = egress::sandbox_ruleset(&ports);
    if running.rules.as_ref() != Some(&script) {
        running.sandbox.apply_rules(script.clone())?;
        running.rules = Some(script);
    }
    Ok(())
}

/// Puts the sandbox's guard in place for the network's local endpoints (see [`guard`]).
fn guard_ports(running: &mut Running, net: &NetworkProgram) -> Result<(), HostError> {
    let ports = net
        .local_endpoints()
        .map(|e| GuardedPort {
            veth: veth_name(&e.id),
            mac: e.mac,
            ipv4: e.ipv4,
        })
        .collect();
    running.guard.ensure(&running.sandbox, ports)
}

/// The ports published by a network's local endpoints.
fn local_ports(net: &NetworkProgram) -> impl Iterator<Item = Publish> + '_ {
    net.local_endpoints().flat_map(|e| e.ports.iter().copied())
}

/// Gives the network's forwarding its tables (where each MAC is, the VTEPs) and its keys.
fn install_forwarding(running: &Running, net: &NetworkProgram, local: Ipv4Addr, now: Instant) {
    let plane = &running.port.plane;
    plane.install(&net.control_entries(), &net.vteps(), now);
    plane.install_keys(local, &net.keys, &net.salts, now);
}

/// Deletes the sandbox's veths that belong to no local endpoint of the program — left by a
/// crash mid-connect, or by an endpoint removed while the daemon was down — so that no
/// container keeps an address the cluster may hand out again. The first time, it lists the
/// sandbox's links; after that, it compares with what the last apply kept.
fn remove_stray_veths(running: &mut Running, net: &NetworkProgram) {
    let wanted: BTreeSet<String> = net.local_endpoints().map(|e| veth_name(&e.id)).collect();
    let present: BTreeSet<String> = match running.veths.take() {
        Some(known) => known,
        None => match running.sandbox.endpoint_links() {
            Ok(links) => links.into_iter().map(|l| l.name).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the sandbox's links");
                return;
            }
        },
    };
    for stray in present.difference(&wanted) {
        match running.sandbox.disconnect(stray) {
            Ok(()) => tracing::info!(veth = %stray, "removed a veth that no endpoint owns"),
            Err(e) => tracing::warn!(veth = %stray, error = %e, "cannot remove a stray veth"),
        }
    }
    running.veths = Some(wanted);
}

/// Where a network's sandbox namespace is pinned.
fn sandbox_path(sandbox_dir: &Path, network_id: &str) -> PathBuf {
    sandbox_dir.join(&network_id[..12.min(network_id.len())])
}

/// The sandbox side of an endpoint's veth: unique per endpoint, and within IFNAMSIZ.
fn veth_name(endpoint_id: &str) -> String {
    format!("vx{}", &endpoint_id[..12.min(endpoint_id.len())])
}

#[cfg(test)]
mod tests;
