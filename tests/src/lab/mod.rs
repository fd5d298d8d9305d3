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
//!   namespace, so nothing is ever created in the machine's root namespace ([`topology`]).
//! - A `Vxnet` host runs a real `vxnet daemon`, entered into its host namespace by `setns` in
//!   `pre_exec` (not `ip netns exec`, whose private mount namespace would take the daemon's
//!   bind-mounted sandbox namespaces with it). Its log is `DATA_DIR/daemon.log` ([`daemon`]).
//! - A `KernelVxlan` host runs no daemon: [`Lab::kernel_network`] builds the Linux kernel vxlan
//!   equivalent (vx0 + br0, head-end replication through all-zero FDB entries), usable as the
//!   `--peer` of a vxnet network or on its own (the benchmark's baseline) ([`kernel_vxlan`]).
//! - Every wait is bounded; every command has a deadline.
//! - Teardown runs in `Drop`, also while a test panics, never panics itself, and is idempotent:
//!   daemons get SIGTERM then SIGKILL, helpers are killed, processes left in lab namespaces are
//!   killed, every mount under the lab's temp root is detached, every namespace deleted, the
//!   temp root removed. On a panic the tail of every daemon log is printed first
//!   ([`teardown`]).
//! - IPv6 is disabled in lab namespaces: router solicitations and MLD reports would otherwise
//!   cross the overlay at random times and make "no frames of kind X on the wire" assertions
//!   flaky.
//!
//! Where things live: [`topology`] names and addresses everything and builds the underlay;
//! [`host`] is one lab host (its namespace, its uplink, commands run in it); [`daemon`] starts,
//! stops and kills vxnet daemons and drives their CLI; [`cluster`] forms Raft clusters of lab
//! hosts and finds their leader; [`container`] makes container namespaces and connects them;
//! [`kernel_vxlan`] sets up kernel vxlan hosts; [`wireguard`] joins host namespaces with kernel
//! or userspace (boringtun) WireGuard (the benchmark's sealed kernel anchors); [`teardown`] cleans up, also after a killed run;
//! [`iproute`] reads what `ip` prints; [`docker`] runs a real Docker Engine on a lab host (a
//! `dockerd` per host, in the host namespace, seeing only that host's plugin sockets in
//! `/run/docker/plugins`, restartable with running containers, torn down with its containers;
//! `Lab::start_docker`); [`podman`] runs Podman with vxnet as its CNI plugin;
//! `private_mounts` gives both their own mount namespace.

mod busybox;
mod cgroups;
pub mod cluster;
pub mod container;
pub mod daemon;
pub mod docker;
pub mod host;
pub mod iproute;
pub mod kernel_vxlan;
pub mod podman;
mod private_mounts;
pub mod seccomp;
pub mod teardown;
pub mod topology;
pub mod wireguard;

use std::fs;
use std::net::{SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::capture::Capture;
use crate::cmd::Background;
use crate::netns;

pub use cluster::{RetriedWrite, WriteRetry};
pub use container::Container;
pub use daemon::TimedOutput;
pub use host::Host;
pub use kernel_vxlan::KernelNetwork;

/// What runs on a lab host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A `vxnet daemon`.
    Vxnet,
    /// A Linux kernel vxlan device and bridge, no daemon.
    KernelVxlan,
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
    nic_gro: bool,
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

    /// Whether host uplinks merge what they receive as a physical NIC's driver does (GRO in
    /// NAPI; default false): the underlay's ports stop offering TSO, which a veth needs before
    /// its peer takes its frames through NAPI, and the uplinks turn GRO on. The daemons'
    /// sockets then get UDP GRO messages, several datagrams of a flow in one.
    pub fn nic_gro(mut self, on: bool) -> Self {
        self.nic_gro = on;
        self
    }

    /// Extra arguments for every `vxnet daemon` (after the lab's own).
    pub fn daemon_arg(mut self, arg: &str) -> Self {
        self.daemon_args.push(arg.to_string());
        self
    }

    /// Creates the namespaces, links and daemons. On error everything made so far is torn down.
    pub fn build(self) -> Result<Lab> {
        teardown::reap_stale_labs();
        let prefix = topology::new_prefix();
        let root = topology::lab_root(&prefix);
        if root.exists() {
            teardown::remove_root(&root);
        }
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let needs_bin = self.kinds.contains(&HostKind::Vxnet);
        let mut lab = Lab {
            underlay: topology::underlay_ns(&prefix),
            prefix,
            root,
            hosts: Vec::new(),
            namespaces: Mutex::new(Vec::new()),
            helpers: Mutex::new(Vec::new()),
            boringtuns: Mutex::new(Vec::new()),
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
                if host.kind() == HostKind::Vxnet {
                    host.start_daemon()?;
                }
            }
        }
        Ok(lab)
    }
}

/// A running lab. See the module docs for the rules.
pub struct Lab {
    prefix: String,
    root: PathBuf,
    underlay: String,
    hosts: Vec<Host>,
    namespaces: Mutex<Vec<String>>,
    helpers: Mutex<Vec<Background>>,
    /// Userspace WireGuard processes ([`wireguard::WireGuard::Boringtun`]).
    boringtuns: Mutex<Vec<wireguard::boringtun::Boringtun>>,
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
            nic_gro: false,
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

    /// Starts tcpdump on the underlay bridge with BPF `filter` ("" for all frames). Stop it
    /// with [`Capture::stop`] to get the decoded frames.
    pub fn capture(&self, filter: &str) -> Result<Capture> {
        let n = self.captures.fetch_add(1, Ordering::Relaxed);
        let pcap = self.root.join(format!("capture-{n}.pcap"));
        Capture::start(&self.underlay, topology::UNDERLAY_BRIDGE, &pcap, filter)
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

/// The last `lines` lines of the log file at `path` (empty if it cannot be read): what a
/// failing test prints of a daemon's, dockerd's or podman's log.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
