//! One lab host: its namespace, its uplink to the underlay, its data dir, and commands run in
//! it.
//!
//! Rules:
//! - A host's namespace is `PREFIX-h<i>`, its uplink [`HOST_UPLINK`] with address
//!   [`host_addr`](super::topology::host_addr)`(i)`, its data dir `ROOT/h<i>/` (the daemon's
//!   `--data-dir`, socket `vxnet.sock` and log `daemon.log` in it).
//! - By default the uplink finishes checksums in software (`ethtool -K eth0 tx off`), so the
//!   underlay carries what a physical wire would; see [`LabBuilder::wire_checksums`].
//! - [`Host::cut_underlay`] pulls the cable: the uplink goes down, the daemon keeps running.
//! - What runs on a host is in [`daemon`](super::daemon) (vxnet) and
//!   [`kernel_vxlan`](super::kernel_vxlan) (the kernel's VTEP).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

use anyhow::{Context, Result};

use super::iproute::{ip, link_flags, parse_link_names};
use super::kernel_vxlan::KernelNetwork;
use super::topology::{self, HOST_UPLINK};
use super::{HostKind, Lab, LabBuilder};
use crate::netns;

/// One lab host.
pub struct Host {
    index: usize,
    kind: HostKind,
    pub(super) name: String,
    pub(super) ns: String,
    pub(super) addr: Ipv4Addr,
    pub(super) data_dir: PathBuf,
    pub(super) socket: PathBuf,
    pub(super) log: PathBuf,
    /// The vxnet binary; `None` on a lab without vxnet hosts.
    pub(super) bin: Option<PathBuf>,
    pub(super) daemon_args: Vec<String>,
    /// The daemon the lab started, until it is stopped or killed.
    pub(super) daemon: Mutex<Option<Child>>,
    /// The kernel vxlan overlay, once a kernel host has one.
    pub(super) kernel: Mutex<Option<KernelNetwork>>,
    /// Numbers the kernel bridge ports of containers (`kc0`, `kc1`, ...).
    pub(super) kernel_ports: AtomicU32,
}

impl Lab {
    /// Creates host `index`: its namespace, its uplink (up, addressed, checksums finished in
    /// software unless turned off) and its data dir. No daemon yet.
    pub(super) fn make_host(
        &self,
        index: usize,
        kind: HostKind,
        bin: Option<PathBuf>,
        opts: &LabBuilder,
    ) -> Result<Host> {
        let name = topology::host_name(index);
        let ns = self.ns_name(&name);
        self.add_namespace(&ns)?;
        let addr = topology::host_addr(index);
        self.add_uplink(&name, &ns, addr, opts.underlay_mtu)?;
        if opts.wire_checksums {
            // A veth never computes checksums a sender left to "hardware": a kernel vxlan
            // sender would put inner TCP/UDP checksums on the underlay unfinished, which a
            // kernel receiver trusts but a userspace receiver (vxnet) rightly cannot. A real
            // NIC finishes them, so the lab does it in software here: what is on the wire is
            // what a wire would carry.
            topology::ethtool_features(&ns, HOST_UPLINK, &["tx", "off"])?;
        }
        if opts.nic_gro {
            self.merge_received(&name, &ns)?;
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
        super::tail(&self.log, lines)
    }

    /// Runs `args` in the host namespace.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        netns::exec(&self.ns, args)
    }

    /// Loads the nftables script `rules` (`nft -f`) in the host namespace, from a file `NAME.nft`
    /// beside the host's data dir: how the tests drop traffic (this kernel has no `sch_netem`).
    /// The rules should live in a table of the caller's own, for [`Host::nft_delete_table`].
    pub fn nft_load(&self, name: &str, rules: &str) -> Result<()> {
        let file = self
            .data_dir
            .with_file_name(format!("{}-{name}.nft", self.name));
        fs::write(&file, rules).with_context(|| format!("writing {}", file.display()))?;
        netns::exec_ok(&self.ns, &["nft", "-f", &file.to_string_lossy()])
            .context("loading nftables rules (apt-get install nftables)")
            .map(drop)
    }

    /// Deletes the nftables table `inet TABLE` in the host namespace; whether it was there.
    pub fn nft_delete_table(&self, table: &str) -> Result<bool> {
        let tables = netns::exec_ok(&self.ns, &["nft", "list", "tables"])?;
        let there = tables
            .lines()
            .any(|l| l.split_whitespace().eq(["table", "inet", table]));
        if there {
            netns::exec_ok(&self.ns, &["nft", "delete", "table", "inet", table])?;
        }
        Ok(there)
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
}
