//! The arguments `vxnet` takes, as clap parses them. Every failure becomes one line `vxnet: …`
//! on stderr and an exit code: 2 for a usage error, 1 otherwise.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vxnet_proto::types::{MTU_MAX, MTU_MIN, VNI_MAX, VNI_MIN};
use vxnet_proto::PortMapping;

use crate::state::Ipv4Cidr;
use vxnet_dataplane::host::KernelVersion;

pub const DEFAULT_SOCKET: &str = "/run/vxnet/vxnet.sock";

#[derive(Debug, Parser)]
#[command(
    name = "vxnet",
    version,
    about = "Overlay networks for containers across hosts: a userspace VXLAN dataplane with built-in Raft."
)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "VXNET_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Give up on the daemon after this long (e.g. 10s, 500ms, 2m).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the per-host daemon.
    Daemon(DaemonArgs),
    /// Manage overlay networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Show a network's forwarding database.
    Fdb(FdbArgs),
    /// Show traffic and drop counters.
    Stats(FormatArgs),
    /// Manage the cluster of hosts.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Set vxnet up as a container runtime's CNI plugin on this host.
    #[command(subcommand)]
    Cni(CniCommand),
    /// Print vxnet's version and, when known, the git commit it was built from.
    Version,
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    ///
    /// E.g. `vxnet completions bash > /etc/bash_completion.d/vxnet`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one per command with --dir.
    ///
    /// E.g. `vxnet man | man -l -`.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// This host's underlay address: VTEP source address and cluster address.
    #[arg(long)]
    pub advertise_addr: Ipv4Addr,
    /// Where the daemon keeps everything it must remember.
    #[arg(long, default_value = "/var/lib/vxnet")]
    pub data_dir: PathBuf,
    /// UDP port of the VXLAN dataplane (the IANA port; kernel peers need `dstport 4789`).
    #[arg(long, default_value_t = 4789)]
    pub vxlan_port: u16,
    /// TCP port of the cluster transport.
    #[arg(long, default_value_t = 7946)]
    pub cluster_port: u16,
    /// This host's name in the cluster (default: the hostname).
    #[arg(long)]
    pub name: Option<String>,
    /// How many hosts of the cluster vote (the rest are learners).
    #[arg(long, default_value_t = 3)]
    pub voters: u32,
    /// trace, debug, info, warn or error.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Run the dataplane without TAP offloads (no vnet header, TSO, checksum offload or
    /// receive coalescing): one frame per TAP read and write.
    #[arg(long, env = "VXNET_NO_OFFLOADS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_offloads: bool,
    /// Use no kernel feature newer than this Linux version (MAJOR.MINOR, e.g. 3.10): at 3.10,
    /// TAP offloads, sendmmsg/recvmmsg, but no UDP GSO or GRO. Features that are allowed are
    /// still detected at start, with a fallback each.
    #[arg(long, value_name = "VERSION", value_parser = parse_kernel)]
    pub kernel: Option<KernelVersion>,
    /// After the last packet, keep polling the socket and TAPs for this many microseconds
    /// before sleeping: lower latency for a core's worth of CPU while traffic flows. Off (0)
    /// by default.
    #[arg(long, value_name = "USEC", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub busy_poll: u32,
    /// Forwarding workers: receive sockets sharing the VXLAN port (SO_REUSEPORT) and queues
    /// per network's TAP, each with its thread; flows spread over them. Default: one per core
    /// (at most 16). 1 where the kernel (or --kernel) lacks multi-queue TAPs or SO_REUSEPORT.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=16))]
    pub queues: Option<u8>,
    /// Seconds after which the cluster's leader gives an encrypted network a new key (hosts
    /// switch 10 s after they learn it, accepting both meanwhile); 0: only when a member is
    /// removed. Default: 12 hours, as Docker's encrypted overlay rotates.
    #[arg(long, value_name = "SECS", default_value_t = 43_200, value_parser = parse_key_rotation)]
    pub key_rotation: u64,
    /// Start this data dir's state as a cluster of this host alone (recovery after the
    /// majority is lost for good); logs what it dropped.
    #[arg(long)]
    pub force_new_cluster: bool,
    /// A resolver the networks' DNS forwards other names to; repeatable. Default: the
    /// nameservers of the host's /etc/resolv.conf.
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<std::net::IpAddr>,
    /// Serve Docker's network and IPAM driver `vxnet` on this socket.
    #[arg(long, value_name = "PATH", num_args = 0..=1,
          default_missing_value = "/run/docker/plugins/vxnet.sock")]
    pub docker_plugin: Option<PathBuf>,
    /// The API socket of the Docker engine the driver serves (it asks it for network names).
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub docker_host: PathBuf,
    /// Serve Prometheus metrics at http://IP:PORT/metrics (off unless given).
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Let the members of this group (name or gid) use the API socket too (it is then mode
    /// 0660 with that group); else only root.
    #[arg(long, value_name = "GROUP")]
    pub api_group: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network; prints its ID.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks in detail (JSON).
    Inspect {
        #[arg(required = true, value_name = "NAME|ID")]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "NAME|ID")]
        networks: Vec<String>,
    },
    /// Remove every network without endpoints.
    Prune,
    /// Attach a network namespace to a network.
    Connect(ConnectArgs),
    /// Detach a network namespace from a network.
    Disconnect { network: String, target: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Network driver; only `overlay` exists.
    #[arg(short = 'd', long, default_value = "overlay")]
    pub driver: String,
    #[arg(long, value_parser = parse_cidr)]
    pub subnet: Option<Ipv4Cidr>,
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    #[arg(long, value_parser = parse_cidr)]
    pub ip_range: Option<Ipv4Cidr>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(i64::from(VNI_MIN)..=i64::from(VNI_MAX)))]
    pub vni: Option<u32>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(i64::from(MTU_MIN)..=i64::from(MTU_MAX)))]
    pub mtu: Option<u32>,
    /// A static VTEP outside the cluster (kernel vxlan, hardware VTEP); repeatable.
    #[arg(long = "peer", value_name = "IP")]
    pub peers: Vec<Ipv4Addr>,
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// No way out of the overlay: containers get no default route and no egress.
    #[arg(long)]
    pub internal: bool,
    /// Seal every datagram between hosts with an AEAD (AES-256-GCM); no static peers.
    #[arg(long)]
    pub encrypted: bool,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only IDs.
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    #[arg(long)]
    pub ifname: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// Publish a port at this host: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]; repeatable.
    #[arg(short = 'p', long = "publish", value_name = "PORTS", value_parser = PortMapping::parse)]
    pub ports: Vec<PortMapping>,
    pub network: String,
    /// A namespace name (ip netns), an absolute path to a namespace file, or pid:PID.
    pub target: String,
}

#[derive(Debug, Subcommand)]
pub enum CniCommand {
    /// Copy this binary into the CNI bin dir as the plugin `vxnet` and, with --network, write
    /// CONF_DIR/vxnet-NAME.conflist for the vxnet network NAME (its `socket` is --socket).
    /// Prints the files written.
    ///
    /// E.g. `vxnet cni install --network shop`.
    Install(CniInstallArgs),
}

#[derive(Debug, Args)]
pub struct CniInstallArgs {
    /// The runtime's CNI plugin directory.
    #[arg(long, value_name = "DIR", default_value = crate::cni::install::DEFAULT_BIN_DIR)]
    pub bin_dir: PathBuf,
    /// The runtime's CNI configuration directory.
    #[arg(long, value_name = "DIR", default_value = crate::cni::install::DEFAULT_CONF_DIR)]
    pub conf_dir: PathBuf,
    /// Also write a conflist joining containers to this vxnet network.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write vxnet.1 and a page for every subcommand (vxnet-network-create.1, ...) into DIR
    /// instead, and print their paths.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FdbArgs {
    pub network: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FormatArgs {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Print the token another host needs to join this cluster.
    Token {
        /// Make a new secret first: tokens printed before stop working for new joins (hosts
        /// already in the cluster are not affected).
        #[arg(long)]
        rotate: bool,
    },
    /// Join the cluster that ADDR belongs to.
    Join {
        addr: String,
        /// The cluster token (`vxnet cluster token` on a member); `-` reads it from standard
        /// input.
        #[arg(
            long,
            required_unless_present = "token_file",
            conflicts_with = "token_file"
        )]
        token: Option<String>,
        /// A file holding the token: keeps it out of the process list and the shell history.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Leave the cluster.
    Leave,
    /// Evict a dead member (name or ID) and its endpoints.
    Remove {
        host: String,
        /// Evict it even if it is up and reachable.
        #[arg(long)]
        force: bool,
    },
    /// List the cluster's hosts.
    Members(FormatArgs),
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    s.parse::<Ipv4Cidr>().map_err(|e| e.to_string())
}

/// `--key-rotation`: 0 (never), or at least [`MIN_KEY_ROTATION`] seconds.
fn parse_key_rotation(s: &str) -> Result<u64, String> {
    let secs: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs != 0 && secs < MIN_KEY_ROTATION {
        return Err(format!(
            "{secs} s is too short: hosts switch keys 10 s after a rotation, so the next one may \
             come {MIN_KEY_ROTATION} s after it at the earliest (or 0: never)"
        ));
    }
    Ok(secs)
}

/// Hosts send with a new key 10 s after they learn it and a rotation drops the key before the
/// previous one: a key must live past the switch, with a margin.
const MIN_KEY_ROTATION: u64 = 20;

fn parse_kernel(s: &str) -> Result<KernelVersion, String> {
    s.parse::<KernelVersion>().map_err(|e| e.to_string())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label {s:?} is not KEY=VALUE")),
    }
}

/// `10s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 10s, 500ms or 2m");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests;
