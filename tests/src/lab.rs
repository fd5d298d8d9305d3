//! A multi-host lab in network namespaces.
//!
//! ```text
//!  underlay ns  PREFIX-u:  br0 198.18.0.1/24 ── h0 ── h1 ── ...   (one veth port per host)
//!  host ns      PREFIX-h0: eth0 198.18.0.10/24  [vxnet daemon | kernel vx0 + br0]
//!  host ns      PREFIX-h1: eth0 198.18.0.11/24  ...
//!  containers   PREFIX-NAME: namespaces the tests connect to overlays
//! ```
//!
//! Rules a test relies on:
//! - Names are unique per lab (`vl<pid>x<counter>`), so labs run in parallel, in one process
//!   or many. Interface names are fixed and short; they only need to be unique inside their own
//!   namespace, so nothing is ever created in the machine's root namespace.
//! - A `Vxnet` host runs a real `vxnet daemon`, entered into its host namespace by `setns` in
//!   `pre_exec` (not `ip netns exec`, whose private mount namespace would take the daemon's
//!   bind-mounted sandbox namespaces with it). Its log is `DATA_DIR/daemon.log`.
//! - A `KernelVxlan` host runs no daemon: [`Lab::kernel_network`] builds the Linux kernel vxlan
//!   equivalent (vx0 + br0, head-end replication through all-zero FDB entries), usable as the
//!   `--peer` of a vxnet network or on its own (the benchmark's baseline).
//! - Every wait is bounded; every command has a deadline.
//! - Teardown runs in `Drop`, also while a test panics, never panics itself, and is idempotent:
//!   daemons get SIGTERM then SIGKILL, helpers are killed, processes left in lab namespaces are
//!   killed, every mount under the lab's temp root is detached, every namespace deleted, the
//!   temp root removed. On a panic the tail of every daemon log is printed first.
//! - IPv6 is disabled in lab namespaces: router solicitations and MLD reports would otherwise
//!   cross the overlay at random times and make "no frames of kind X on the wire" assertions
//!   flaky.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::capture::Capture;
use crate::cmd::{self, Background, DEFAULT_TIMEOUT};
use crate::netns;
use crate::ping::{self, PingStats};
use crate::wire;

/// First octets of the underlay subnet, 198.18.0.0/24 (RFC 2544 benchmarking space: never
/// routed anywhere real).
pub const UNDERLAY_NET: [u8; 3] = [198, 18, 0];
/// The underlay prefix length.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
/// The underlay bridge's own address: a non-host sender for "not a peer" tests.
pub const UNDERLAY_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Name of the bridge in the underlay namespace.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// Name of a host's underlay interface, inside the host namespace.
pub const HOST_UPLINK: &str = "eth0";
/// How long a freshly started daemon may take to answer on its socket.
pub const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon gets to exit after SIGTERM before it is SIGKILLed.
pub const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The underlay address of host `index`: 198.18.0.(10 + index).
pub fn host_addr(index: usize) -> Ipv4Addr {
    let last = u8::try_from(10 + index).unwrap_or(u8::MAX);
    Ipv4Addr::new(UNDERLAY_NET[0], UNDERLAY_NET[1], UNDERLAY_NET[2], last)
}

/// What runs on a lab host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A `vxnet daemon`.
    Vxnet,
    /// A Linux kernel vxlan device and bridge, no daemon.
    KernelVxlan,
}

/// The kernel vxlan overlay of a [`HostKind::KernelVxlan`] host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNetwork {
    /// VXLAN network identifier.
    pub vni: u32,
    /// MTU of the vxlan device, the bridge and the containers' interfaces.
    pub mtu: u32,
    /// Remote VTEPs that get broadcast/unknown traffic (all-zero FDB entries).
    pub peers: Vec<Ipv4Addr>,
}

/// Builds a [`Lab`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    kinds: Vec<HostKind>,
    start_daemons: bool,
    underlay_mtu: u32,
    daemon_args: Vec<String>,
    bin: Option<PathBuf>,
    wire_checksums: bool,
}

impl LabBuilder {
    /// Uses `bin` as the vxnet binary instead of [`crate::find_vxnet_bin`] (the lab's own
    /// self-tests run a stand-in daemon this way).
    pub fn vxnet_bin(mut self, bin: &Path) -> Self {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// Adds one host of `kind`; hosts are numbered in the order added.
    pub fn host(mut self, kind: HostKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Adds `n` hosts of `kind`.
    pub fn hosts(mut self, kind: HostKind, n: usize) -> Self {
        self.kinds.extend(std::iter::repeat_n(kind, n));
        self
    }

    /// Whether `build` starts the vxnet daemons (default true).
    pub fn start_daemons(mut self, start: bool) -> Self {
        self.start_daemons = start;
        self
    }

    /// MTU of the underlay links (default 1500).
    pub fn underlay_mtu(mut self, mtu: u32) -> Self {
        self.underlay_mtu = mtu;
        self
    }

    /// Whether host uplinks finish checksums in software before sending (default true), so the
    /// underlay carries complete checksums as a physical wire does. Off keeps the veth
    /// offloads: faster, but datagrams leave with unfinished inner checksums.
    pub fn wire_checksums(mut self, on: bool) -> Self {
        self.wire_checksums = on;
        self
    }

    /// Extra arguments for every `vxnet daemon` (after the lab's own).
    pub fn daemon_arg(mut self, arg: &str) -> Self {
        self.daemon_args.push(arg.to_string());
        self
    }

    /// Creates the namespaces, links and daemons. On error everything made so far is torn down.
    pub fn build(self) -> Result<Lab> {
        reap_stale_labs();
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{LAB_TAG}{}x{n}", std::process::id());
        let root = std::env::temp_dir().join(format!("vxnet-lab-{prefix}"));
        if root.exists() {
            netns::unmount_all_under(&root);
            let _ = fs::remove_dir_all(&root);
        }
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let needs_bin = self.kinds.contains(&HostKind::Vxnet);
        let mut lab = Lab {
            underlay: format!("{prefix}-u"),
            prefix,
            root,
            hosts: Vec::new(),
            namespaces: Mutex::new(Vec::new()),
            helpers: Mutex::new(Vec::new()),
            captures: AtomicU32::new(0),
            torn_down: AtomicBool::new(false),
        };
        let bin = match (&self.bin, needs_bin) {
            (Some(b), _) => Some(b.clone()),
            (None, true) => Some(crate::find_vxnet_bin()?),
            (None, false) => None,
        };
        lab.make_underlay(self.underlay_mtu)?;
        for (index, kind) in self.kinds.iter().enumerate() {
            let host = lab.make_host(index, *kind, bin.clone(), &self)?;
            lab.hosts.push(host);
        }
        if self.start_daemons {
            for host in &lab.hosts {
                if host.kind == HostKind::Vxnet {
                    host.start_daemon()?;
                }
            }
        }
        Ok(lab)
    }
}

/// Marks lab namespaces, so stale ones from a killed run can be recognised.
const LAB_TAG: &str = "vl";

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running lab. See the module docs for the rules.
pub struct Lab {
    prefix: String,
    root: PathBuf,
    underlay: String,
    hosts: Vec<Host>,
    namespaces: Mutex<Vec<String>>,
    helpers: Mutex<Vec<Background>>,
    captures: AtomicU32,
    torn_down: AtomicBool,
}

/// Locks a mutex even if a panicking thread poisoned it: teardown must still run.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lab {
    /// A builder with no hosts yet.
    pub fn builder() -> LabBuilder {
        LabBuilder {
            kinds: Vec::new(),
            start_daemons: true,
            underlay_mtu: 1500,
            daemon_args: Vec::new(),
            bin: None,
            wire_checksums: true,
        }
    }

    /// `n` vxnet hosts with their daemons running.
    pub fn new(n: usize) -> Result<Lab> {
        Lab::builder().hosts(HostKind::Vxnet, n).build()
    }

    /// One host per entry of `kinds`, daemons running.
    pub fn with_hosts(kinds: &[HostKind]) -> Result<Lab> {
        kinds.iter().fold(Lab::builder(), |b, k| b.host(*k)).build()
    }

    /// The unique prefix of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's temp directory (data dirs, logs, captures).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Name of the underlay namespace.
    pub fn underlay_ns(&self) -> &str {
        &self.underlay
    }

    /// Host `index`. Panics on a bad index (a bug in the test).
    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    /// All hosts, in index order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Every namespace this lab created (underlay, hosts, containers).
    pub fn namespaces(&self) -> Vec<String> {
        lock(&self.namespaces).clone()
    }

    fn add_namespace(&self, name: &str) -> Result<()> {
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

    fn make_underlay(&self, mtu: u32) -> Result<()> {
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

    fn make_host(
        &self,
        index: usize,
        kind: HostKind,
        bin: Option<PathBuf>,
        opts: &LabBuilder,
    ) -> Result<Host> {
        let name = format!("h{index}");
        let ns = format!("{}-{name}", self.prefix);
        self.add_namespace(&ns)?;
        let addr = host_addr(index);
        let mtu = opts.underlay_mtu.to_string();
        // Created inside the underlay namespace, peer moved straight into the host namespace:
        // the root namespace never sees either end.
        ip(
            &self.underlay,
            &[
                "link",
                "add",
                &name,
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
                &ns,
            ],
        )?;
        ip(
            &self.underlay,
            &["link", "set", &name, "master", UNDERLAY_BRIDGE],
        )?;
        ip(&self.underlay, &["link", "set", &name, "up"])?;
        ip(
            &ns,
            &[
                "addr",
                "add",
                &format!("{addr}/{UNDERLAY_PREFIX_LEN}"),
                "dev",
                HOST_UPLINK,
            ],
        )?;
        if opts.wire_checksums {
            // A veth never computes checksums a sender left to "hardware": a kernel vxlan
            // sender would put inner TCP/UDP checksums on the underlay unfinished, which a
            // kernel receiver trusts but a userspace receiver (vxnet) rightly cannot. A real
            // NIC finishes them, so the lab does it in software here: what is on the wire is
            // what a wire would carry.
            cmd::run_ok(
                &mut netns::command(&ns, &["ethtool", "-K", HOST_UPLINK, "tx", "off"]),
                DEFAULT_TIMEOUT,
            )
            .context("turning off tx checksum offload (apt-get install -y ethtool)")?;
        }
        ip(&ns, &["link", "set", HOST_UPLINK, "up"])?;
        let data_dir = self.root.join(&name);
        fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        Ok(Host {
            index,
            kind,
            socket: data_dir.join("vxnet.sock"),
            log: data_dir.join("daemon.log"),
            data_dir,
            name,
            ns,
            addr,
            bin,
            daemon_args: opts.daemon_args.clone(),
            daemon: Mutex::new(None),
            kernel: Mutex::new(None),
            kernel_ports: AtomicU32::new(0),
        })
    }

    /// Creates container namespace `PREFIX-NAME` belonging to host `host` (nothing attached
    /// yet: connect it with `vxnet network connect NET <container.ns>`, or use
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
        let ns = format!("{}-{name}", self.prefix);
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

    /// Sets up the kernel vxlan overlay on kernel host `host`: `vx0` (VNI, dstport 4789, local
    /// = host address) enslaved to bridge `br0`, and an all-zero FDB entry per peer so
    /// broadcast and unknown unicast are replicated to every peer. MAC learning stays on, so
    /// replies are sent straight to the VTEP they came from.
    pub fn kernel_network(&self, host: usize, net: &KernelNetwork) -> Result<()> {
        let h = self.host(host);
        if h.kind != HostKind::KernelVxlan {
            bail!("host {host} is not a kernel vxlan host");
        }
        let mut slot = lock(&h.kernel);
        if slot.is_some() {
            bail!("host {host} already has its kernel vxlan network");
        }
        let ns = &h.ns;
        let mtu = net.mtu.to_string();
        let addr = h.addr.to_string();
        let vni = net.vni.to_string();
        ip(
            ns,
            &[
                "link",
                "add",
                "vx0",
                "mtu",
                &mtu,
                "type",
                "vxlan",
                "id",
                &vni,
                "dstport",
                "4789",
                "local",
                &addr,
                "dev",
                HOST_UPLINK,
            ],
        )?;
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
    /// vxnet would give that address (`02:42:` + IPv4 bytes).
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
        let mac = wire::format_mac(wire::mac_for_ip(addr));
        ip(&c.ns, &["link", "set", "eth0", "address", &mac])?;
        ip(&c.ns, &["addr", "add", ip_cidr, "dev", "eth0"])?;
        ip(&c.ns, &["link", "set", "eth0", "up"])?;
        Ok(c)
    }

    /// Creates overlay `name` (VNI `vni`, `subnet`) on each of the vxnet hosts `hosts`, each
    /// with every other listed host as a static `--peer` (separate one-host clusters, no
    /// `cluster join`). `extra` arguments go before the name (e.g. `["--mtu", "1400"]`).
    pub fn vxnet_network(
        &self,
        name: &str,
        vni: u32,
        subnet: &str,
        hosts: &[usize],
        extra: &[&str],
    ) -> Result<()> {
        let vni = vni.to_string();
        for &h in hosts {
            let peers: Vec<String> = hosts
                .iter()
                .filter(|&&p| p != h)
                .map(|&p| self.host(p).addr().to_string())
                .collect();
            let mut args = vec!["network", "create", "--subnet", subnet, "--vni", &vni];
            for p in &peers {
                args.extend(["--peer", p.as_str()]);
            }
            args.extend(extra);
            args.push(name);
            self.host(h).vxnet_checked(&args)?;
        }
        Ok(())
    }

    /// Stops host `host`'s daemon with `signal` (see [`Host::kill_daemon`]).
    pub fn kill_daemon(&self, host: usize, signal: i32) -> Result<Option<ExitStatus>> {
        self.host(host).kill_daemon(signal)
    }

    /// (Re)starts host `host`'s daemon on its data dir (see [`Host::start_daemon`]).
    pub fn start_daemon(&self, host: usize) -> Result<()> {
        self.host(host).start_daemon()
    }

    /// (Re)starts the daemons of `hosts` together: all are spawned first, then each is waited
    /// for (bounded). A restarted cluster needs a quorum up before any member can answer, so
    /// starting them one by one with [`Lab::start_daemon`] could wait on the first forever.
    pub fn start_daemons(&self, hosts: &[usize]) -> Result<()> {
        for &h in hosts {
            self.host(h).spawn_daemon()?;
        }
        for &h in hosts {
            self.host(h).wait_ready(DAEMON_READY_TIMEOUT)?;
        }
        Ok(())
    }

    /// Starts tcpdump on the underlay bridge with BPF `filter` ("" for all frames). Stop it
    /// with [`Capture::stop`] to get the decoded frames.
    pub fn capture(&self, filter: &str) -> Result<Capture> {
        let n = self.captures.fetch_add(1, Ordering::Relaxed);
        let pcap = self.root.join(format!("capture-{n}.pcap"));
        Capture::start(&self.underlay, UNDERLAY_BRIDGE, &pcap, filter)
    }

    /// Starts a long-running helper in namespace `ns`, killed at teardown at the latest.
    /// Returns its pid.
    pub fn spawn_in(&self, ns: &str, args: &[&str]) -> Result<u32> {
        let mut helpers = lock(&self.helpers);
        let log = self.root.join(format!("helper-{}.log", helpers.len()));
        let name = args.first().copied().unwrap_or("helper");
        let bg = Background::spawn(name, &mut netns::command(ns, args), &log)?;
        let pid = bg.pid().unwrap_or(0);
        helpers.push(bg);
        Ok(pid)
    }

    /// Sends each of `datagrams` from namespace `ns` (from an ephemeral port) to `dst`.
    /// Fragmentation is allowed, so datagrams above the link MTU go out too (oversize tests).
    pub fn send_udp(&self, ns: &str, dst: SocketAddrV4, datagrams: Vec<Vec<u8>>) -> Result<()> {
        netns::in_netns_thread(ns, move || {
            let sock = UdpSocket::bind("0.0.0.0:0").context("binding a UDP socket")?;
            allow_fragmentation(&sock)?;
            for d in &datagrams {
                sock.send_to(d, dst)
                    .with_context(|| format!("sending {} bytes to {dst}", d.len()))?;
                // Keep a burst from overrunning the receiver's socket buffer: the test counts
                // drops by reason, and a buffer overflow would lose some before they are counted.
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        })
    }

    /// The tails of every daemon log, for failure messages.
    pub fn daemon_logs(&self, lines: usize) -> String {
        let mut s = String::new();
        for h in &self.hosts {
            if h.kind == HostKind::Vxnet {
                s.push_str(&format!(
                    "---- {} ({}) daemon log, last {lines} lines: {} ----\n{}\n",
                    h.name,
                    h.addr,
                    h.log.display(),
                    h.log_tail(lines)
                ));
            }
        }
        s
    }

    /// Tears the lab down (see the module docs). Idempotent; also run by `Drop`.
    pub fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        for h in &self.hosts {
            if let Some(mut child) = lock(&h.daemon).take() {
                cmd::signal_and_reap(&mut child, libc::SIGTERM, DAEMON_STOP_TIMEOUT);
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.daemon_logs(60));
        }
        lock(&self.helpers).clear();
        let namespaces = lock(&self.namespaces).clone();
        kill_namespace_processes(&namespaces);
        netns::unmount_all_under(&self.root);
        for ns in namespaces.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                eprintln!("vxnet lab teardown: {e:#}");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.root) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("vxnet lab teardown: removing {}: {e}", self.root.display());
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// SIGKILLs every process still inside `namespaces` and gives them a moment to go.
fn kill_namespace_processes(namespaces: &[String]) {
    let mut killed = false;
    for ns in namespaces {
        for pid in netns::pids(ns) {
            // SAFETY: kill(2) on a pid `ip netns pids` just reported inside a lab namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed = true;
        }
    }
    if killed {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes what a killed test run left behind: namespaces named `vl<pid>x<n>-...` whose pid is
/// gone (and that are over two minutes old), and their temp roots. Best effort, silent.
fn reap_stale_labs() {
    let Ok(entries) = fs::read_dir(netns::NETNS_DIR) else {
        return;
    };
    let mut stale_prefixes = Vec::new();
    let mut stale_ns = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(prefix) = name.split('-').next() else {
            continue;
        };
        let Some(pid) = prefix
            .strip_prefix(LAB_TAG)
            .and_then(|r| r.split('x').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // Dead owner, and not brand new: a namespace made a moment ago by a process in
        // another pid namespace (invisible in our /proc) is left alone.
        let old_enough = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(120));
        if old_enough && !Path::new(&format!("/proc/{pid}")).exists() {
            stale_ns.push(name.clone());
            if !stale_prefixes.contains(&prefix.to_string()) {
                stale_prefixes.push(prefix.to_string());
            }
        }
    }
    if stale_ns.is_empty() {
        return;
    }
    kill_namespace_processes(&stale_ns);
    for prefix in &stale_prefixes {
        let root = std::env::temp_dir().join(format!("vxnet-lab-{prefix}"));
        netns::unmount_all_under(&root);
        let _ = fs::remove_dir_all(&root);
    }
    for ns in &stale_ns {
        let _ = netns::delete(ns);
    }
}

/// Lets a socket's datagrams be fragmented even above the path MTU.
fn allow_fragmentation(sock: &UdpSocket) -> Result<()> {
    use std::os::fd::AsRawFd;
    let val: libc::c_int = libc::IP_PMTUDISC_DONT;
    // SAFETY: setsockopt(2) with a valid fd and a c_int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!("IP_MTU_DISCOVER: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `ip -n NS args...`, failing with ip's message.
fn ip(ns: &str, args: &[&str]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(["-n", ns]).args(args);
    cmd::run_ok(&mut c, DEFAULT_TIMEOUT)
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

/// One lab host.
pub struct Host {
    index: usize,
    kind: HostKind,
    name: String,
    ns: String,
    addr: Ipv4Addr,
    data_dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    bin: Option<PathBuf>,
    daemon_args: Vec<String>,
    daemon: Mutex<Option<Child>>,
    kernel: Mutex<Option<KernelNetwork>>,
    kernel_ports: AtomicU32,
}

impl Host {
    /// Index in the lab.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Vxnet or kernel vxlan.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// Short name (`h0`), also the daemon's `--name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Underlay address (VTEP, advertise address).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The daemon's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The daemon's `--socket`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's log file (stdout and stderr, all runs appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the daemon log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn bin(&self) -> Result<&Path> {
        self.bin
            .as_deref()
            .ok_or_else(|| anyhow!("host {} is not a vxnet host", self.name))
    }

    /// `vxnet --socket SOCKET args...`, ready to run.
    pub fn vxnet_command(&self, args: &[&str]) -> Result<Command> {
        let mut c = Command::new(self.bin()?);
        c.arg("--socket").arg(&self.socket).args(args);
        Ok(c)
    }

    /// Runs the CLI against this host's daemon; the output whatever the exit status. Errors
    /// only when the CLI cannot start or runs past its deadline (CLI.md: it never hangs).
    pub fn try_vxnet(&self, args: &[&str]) -> Result<Output> {
        cmd::run(&mut self.vxnet_command(args)?, DEFAULT_TIMEOUT)
    }

    /// [`Host::try_vxnet`] for tests: panics (with the daemon log) if the CLI cannot run.
    pub fn vxnet(&self, args: &[&str]) -> Output {
        match self.try_vxnet(args) {
            Ok(out) => out,
            Err(e) => panic!(
                "vxnet {args:?} on {}: {e:#}\n---- daemon log ----\n{}",
                self.name,
                self.log_tail(40)
            ),
        }
    }

    /// Runs the CLI with its own `--timeout cli_timeout` and a process deadline a little past
    /// it; returns the output whatever the exit status, and how long the call took. For tests
    /// of "fails within --timeout": the deadline only catches a CLI that hangs regardless.
    pub fn vxnet_timed(&self, args: &[&str], cli_timeout: Duration) -> Result<TimedOutput> {
        let timeout_arg = format!("{}ms", cli_timeout.as_millis());
        let mut full = vec!["--timeout", timeout_arg.as_str()];
        full.extend_from_slice(args);
        let mut c = self.vxnet_command(&full)?;
        let started = Instant::now();
        let output = cmd::run(&mut c, cli_timeout + CLI_DEADLINE_MARGIN)?;
        Ok(TimedOutput {
            output,
            elapsed: started.elapsed(),
        })
    }

    /// Takes this host off the underlay: its uplink goes down, so nothing reaches it or leaves
    /// it, while the daemon keeps running (a cable pulled, not a crash).
    pub fn cut_underlay(&self) -> Result<()> {
        ip(&self.ns, &["link", "set", HOST_UPLINK, "down"]).map(drop)
    }

    /// Puts the uplink back up ([`Host::cut_underlay`] undone). The address stayed configured,
    /// and the kernel restores its connected route when the link comes up.
    pub fn restore_underlay(&self) -> Result<()> {
        ip(&self.ns, &["link", "set", HOST_UPLINK, "up"]).map(drop)
    }

    /// Whether the uplink is administratively up.
    pub fn underlay_up(&self) -> Result<bool> {
        let out = ip(&self.ns, &["-o", "link", "show", HOST_UPLINK])?;
        Ok(link_flags(&out).iter().any(|f| f == "UP"))
    }

    /// Runs the CLI, panics unless it exits 0; returns stdout.
    pub fn vxnet_ok(&self, args: &[&str]) -> String {
        let out = self.vxnet(args);
        if !out.status.success() {
            panic!(
                "vxnet {args:?} on {} failed ({}): {}\n---- daemon log ----\n{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail(40)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI; a non-zero exit is an error carrying its stderr. Returns stdout.
    pub fn vxnet_checked(&self, args: &[&str]) -> Result<String> {
        let out = self.try_vxnet(args)?;
        if !out.status.success() {
            bail!(
                "vxnet {args:?} on {} failed ({}): {}\n---- daemon log ----\n{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail(40)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `vxnet network connect --ip IP NETWORK <container ns>`.
    pub fn connect(&self, network: &str, container: &Container, ip: &str) -> Result<String> {
        self.vxnet_checked(&["network", "connect", "--ip", ip, network, &container.ns])
    }

    /// Interface names in the host namespace and in every sandbox namespace of this host, each
    /// as `WHERE:NAME`, sorted: a snapshot for "a failed command left nothing behind" checks.
    pub fn link_snapshot(&self) -> Result<Vec<String>> {
        let mut all = Vec::new();
        let host = netns::exec_ok(&self.ns, &["ip", "-o", "link", "show"])?;
        all.extend(
            parse_link_names(&host)
                .into_iter()
                .map(|n| format!("host:{n}")),
        );
        for sb in self.sandbox_namespaces() {
            let out = netns::exec_in_file(&sb, &["ip", "-o", "link", "show"])?;
            let text = String::from_utf8_lossy(&out.stdout);
            let tag = sb.display().to_string();
            all.extend(
                parse_link_names(&text)
                    .into_iter()
                    .map(|n| format!("{tag}:{n}")),
            );
        }
        all.sort();
        Ok(all)
    }

    /// Runs `args` in the host namespace.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        netns::exec(&self.ns, args)
    }

    /// Whether a daemon process started by the lab is alive.
    pub fn daemon_running(&self) -> bool {
        lock(&self.daemon)
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Pid of the daemon started by the lab, if it is still owned.
    pub fn daemon_pid(&self) -> Option<u32> {
        lock(&self.daemon).as_ref().map(Child::id)
    }

    /// Starts `vxnet daemon` in the host namespace on this host's data dir and socket, and
    /// waits (bounded) until `network ls` answers. A restart uses the same data dir.
    pub fn start_daemon(&self) -> Result<()> {
        self.spawn_daemon()?;
        self.wait_ready(DAEMON_READY_TIMEOUT)
    }

    /// Starts `vxnet daemon` like [`Host::start_daemon`] but returns at once, without waiting
    /// for it to answer. A restarted cluster member may only answer once a quorum of its peers
    /// is up too, so a whole cluster is started with this first and [`Host::wait_ready`] after.
    pub fn spawn_daemon(&self) -> Result<()> {
        let bin = self.bin()?.to_path_buf();
        let mut slot = lock(&self.daemon);
        if let Some(c) = slot.as_mut() {
            if matches!(c.try_wait(), Ok(None)) {
                bail!("the daemon of {} is already running", self.name);
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let log_err = log.try_clone().context("duplicating the log handle")?;
        let mut c = Command::new(&bin);
        c.arg("daemon")
            .arg("--advertise-addr")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--name")
            .arg(&self.name);
        if let Ok(level) = std::env::var("VXNET_LAB_LOG_LEVEL") {
            c.arg("--log-level").arg(level);
        }
        c.args(&self.daemon_args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let ns_file = netns::enter_in_child(&mut c, &netns::netns_path(&self.ns))?;
        let child = c
            .spawn()
            .with_context(|| format!("starting {}", cmd::describe(&c)))?;
        drop(ns_file);
        *slot = Some(child);
        Ok(())
    }

    /// Polls `vxnet network ls` until it exits 0; fails early if the daemon exits.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        cmd::wait_for(
            &format!(
                "the daemon of {} to answer on {}",
                self.name,
                self.socket.display()
            ),
            timeout,
            Duration::from_millis(100),
            || {
                if let Some(c) = lock(&self.daemon).as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        bail!(
                            "daemon exited ({status}) before becoming ready; log:\n{}",
                            self.log_tail(40)
                        );
                    }
                }
                if !self.socket.exists() {
                    return Ok(None);
                }
                let mut c = self.vxnet_command(&["network", "ls"])?;
                let out = cmd::run(&mut c, Duration::from_secs(5))?;
                Ok(out.status.success().then_some(()))
            },
        )
        .map_err(|e| anyhow!("{e:#}\n---- daemon log ----\n{}", self.log_tail(40)))
    }

    /// Sends `signal` to the daemon and waits for it to exit (SIGKILL after
    /// [`DAEMON_STOP_TIMEOUT`]). Returns the exit status if it exited on `signal`, `None` if it
    /// had to be killed. Error if no daemon was running.
    pub fn kill_daemon(&self, signal: i32) -> Result<Option<ExitStatus>> {
        let mut child = lock(&self.daemon)
            .take()
            .ok_or_else(|| anyhow!("no daemon running on {}", self.name))?;
        Ok(cmd::signal_and_reap(
            &mut child,
            signal,
            DAEMON_STOP_TIMEOUT,
        ))
    }

    /// Network namespace files of the daemon's sandboxes: `nsfs` bind mounts under the data
    /// dir, plus any file in `DATA_DIR/netns/`.
    pub fn sandbox_namespaces(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = netns::mounts_under(&self.data_dir)
            .into_iter()
            .filter(|m| m.fs_type == "nsfs")
            .map(|m| m.mount_point)
            .collect();
        if let Ok(entries) = fs::read_dir(self.data_dir.join("netns")) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_file() && !found.contains(&p) {
                    found.push(p);
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// The kernel vxlan network of a kernel host, if set up.
    pub fn kernel_network(&self) -> Option<KernelNetwork> {
        lock(&self.kernel).clone()
    }
}

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
        let out = self.exec_ok(&["ip", "neigh", "show", ip])?;
        Ok(out
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .map(str::to_string))
    }
}

/// What [`Host::vxnet_timed`] saw: the CLI's output and the wall time of the call.
#[derive(Debug, Clone)]
pub struct TimedOutput {
    /// Exit status, stdout and stderr.
    pub output: Output,
    /// From spawning the CLI to its exit.
    pub elapsed: Duration,
}

impl TimedOutput {
    /// Whether the CLI exited 0.
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// How far past its own `--timeout` a CLI call may run before the lab kills it: process start,
/// connecting, printing. CLI.md promises an answer within `--timeout`, so this only has to
/// cover what happens around the request.
pub const CLI_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The flags of `ip -o link show DEV` output (`<BROADCAST,MULTICAST,UP,LOWER_UP>`).
pub fn link_flags(text: &str) -> Vec<String> {
    text.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Interface names from `ip -o link show` output (`2: eth0@if5: <...>` → `eth0`).
pub fn parse_link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses() {
        assert_eq!(host_addr(0), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(host_addr(3), Ipv4Addr::new(198, 18, 0, 13));
    }

    #[test]
    fn cidr_split() {
        assert_eq!(
            split_cidr("10.10.0.3/24").expect("valid"),
            (Ipv4Addr::new(10, 10, 0, 3), 24)
        );
        assert!(split_cidr("10.10.0.3").is_err());
        assert!(split_cidr("10.10.0.3/33").is_err());
    }

    #[test]
    fn link_names() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n\
                    7: eth0@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue\n";
        assert_eq!(parse_link_names(text), vec!["lo", "eth0"]);
    }

    #[test]
    fn flags_of_a_link() {
        let up = "2: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue";
        assert!(link_flags(up).iter().any(|f| f == "UP"));
        let down = "2: eth0@if5: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN";
        assert!(!link_flags(down).iter().any(|f| f == "UP"));
        assert!(link_flags("garbage").is_empty());
    }

    #[test]
    fn prefix_fits_interface_name_limits() {
        // vl + pid (at most 7 digits) + x + counter: namespaces stay short enough to read, and
        // interface names never include the prefix at all.
        let prefix = format!("{LAB_TAG}{}x{}", 4_194_304, 999);
        assert!(prefix.len() <= 15, "{prefix}");
    }
}
