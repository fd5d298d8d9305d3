//! `vxnet-bench`: throughput and latency between two containers on two lab hosts, for vxnet,
//! for Linux kernel vxlan with the same topology, and for the bare underlay
//! (`--scenario dataplane`, the default), and sealed: vxnet with an `--encrypted` network
//! against kernel vxlan inside kernel WireGuard (modes `vxnet-sealed`, `kernel-wg`), or inside
//! boringtun's userspace WireGuard where the kernel has none (`userspace-wg`); or the
//! control plane of a three-host Raft cluster: commit latency, convergence and leader failover
//! (`--scenario cluster`, see `cluster.rs`); or
//! the restart window of a daemon whose TAP outlives it: milliseconds from killing h1's daemon
//! (SIGTERM and SIGKILL) to the first ping reply after it was started again, with the echo
//! requests lost (`--scenario restart`, see `restart.rs`).
//!
//! Per mode, the dataplane scenario measures throughput (iperf3 TCP 1 and 4 streams, UDP 64 B
//! unlimited), what it costs (CPU seconds per GB and per packet for the daemons, softirq and the
//! whole machine; daemon context switches per packet; datagrams per syscall in vxnet), where
//! UDP drops happen (TAP or vx0, host and container sockets, container links), a UDP rate sweep
//! (the highest offered rate with ≤ 0.1 % and ≤ 1 % loss), and latency (thousands of pings 2 ms
//! apart: p50/mean/p99/p99.9, and ping under one TCP stream). It prints one table per group,
//! writes the JSON and, next to it, PNG plots of the loss curve and the RTT CDF (`plot.rs`).
//!
//! Rules of the dataplane scenario:
//! - Every mode uses the same numbers (`vxnet_tests::scenario`: VNI 4100, 10.10.0.0/24, overlay
//!   MTU 1450, c1 on host 0 sends to c2 on host 1); `underlay` runs host namespace to host
//!   namespace (MTU 1500), the ceiling of what any overlay can reach on this machine. The
//!   sealed modes keep the numbers but not the MTU, which the seal shrinks (1426 for
//!   `vxnet-sealed`, 1390 for `kernel-wg` and `userspace-wg`: `scenario::Sealing::mtu`); the
//!   report lists each mode's.
//! - Each metric is measured `--repeat` times and the median is reported, because a shared
//!   two-core machine is noisy.
//! - The rate sweep and the RTT samples for the CDF are taken once per mode (the sweep is many
//!   runs already); their figures are not medians of rounds.
//! - A mode that fails is reported with its error and the others still run; the exit status is
//!   then non-zero.

mod analysis;
mod cluster;
mod plot;
mod probe;
mod procfs;
mod report;
mod restart;
mod scale;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use vxnet_tests::iperf::{run_iperf, IperfTest};
use vxnet_tests::lab::topology::host_addr;
use vxnet_tests::lab::wireguard::{boringtun, WireGuard};
use vxnet_tests::lab::{HostKind, Lab, LabBuilder};
use vxnet_tests::ping::{ping_with, PingOptions};
use vxnet_tests::scenario::{self, Sealing, C2_IP};

use analysis::{highest_rate_within, LatencySummary, SweepStep};
use probe::{Delta, Sites, Snapshot, VxnetCounters};
use procfs::{per, per_gb, us_per_packet};
use report::{Metric, ModeResult, Report};

#[global_allocator]
static ALLOC: scale::CountingAlloc = scale::CountingAlloc;

/// What is measured between the two endpoints of each mode.
#[derive(Parser, Debug)]
#[command(name = "vxnet-bench", version, about)]
struct Args {
    /// dataplane: iperf3/ping between containers (the --modes). cluster: Raft control plane of
    /// three vxnet hosts (commit latency, convergence, failover). restart: kill and restart
    /// one daemon of the vxnet pair under a 5 ms ping (--repeat runs per signal).
    #[arg(long, value_enum, default_value_t = Scenario::Dataplane)]
    scenario: Scenario,
    /// cluster: number of timed `network create` calls.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=500))]
    commit_samples: u32,
    /// cluster: number of timed connect-to-remote-fdb convergences.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
    convergence_samples: u32,
    /// cluster: number of leader kills (the killed daemon is restarted between runs).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    failover_runs: u32,
    /// Length of each iperf3 run, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Comma-separated modes, run in this order: vxnet, kernel, underlay, vxnet-sealed
    /// (--encrypted network), kernel-wg (kernel vxlan inside kernel WireGuard), userspace-wg
    /// (kernel vxlan inside boringtun, userspace WireGuard; needs boringtun-cli).
    #[arg(long, value_delimiter = ',', default_value = "vxnet,kernel,underlay")]
    modes: Vec<Mode>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// Measure every metric N times and report the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    repeat: u32,
    /// Number of pings per latency run (sent --ping-interval-ms apart).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    ping_count: u32,
    /// Milliseconds between pings (below 200 needs root, which the bench has).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1000))]
    ping_interval_ms: u64,
    /// Number of pings sent while one TCP stream runs (same interval); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    load_ping_count: u32,
    /// Skip the UDP rate sweep.
    #[arg(long)]
    no_udp_sweep: bool,
    /// Offered rates of the UDP 64 B sweep, thousands of packets per second, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "25,50,100,150,200,300,400"
    )]
    sweep_kpps: Vec<u64>,
    /// Length of each sweep step, in seconds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    sweep_secs: u64,
    /// Keep the veth checksum/segmentation offloads on the host uplinks. By default the lab
    /// finishes checksums in software, so the underlay carries what a physical wire would (and
    /// kernel vxlan peers interoperate with vxnet); with offloads, kernel vxlan and the
    /// underlay pass unfinished 64 KB superframes over the veths, like an ideal NIC.
    #[arg(long)]
    veth_offloads: bool,
    /// Host uplinks receive through GRO, as a NIC's driver merges what it receives (the lab's
    /// default veths do not): the daemons' sockets get UDP GRO messages, kernel vxlan merges
    /// at the outer header.
    #[arg(long)]
    nic_gro: bool,
    /// scale: endpoint counts to measure at (the state is built up to each in turn).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    scale_endpoints: Vec<usize>,
    /// scale: networks the endpoints are spread over.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=65536))]
    scale_networks: u32,
    /// scale: hosts the endpoints are spread over.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=65536))]
    scale_hosts: u32,
    /// scale: also run N real daemons in one cluster and time connect → FDB on all others
    /// (needs root); 0 skips the lab part.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=200))]
    scale_lab_hosts: u32,
    /// scale: connects timed in the lab part.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    scale_lab_connects: u32,
    /// scale: also simulate N hosts (5 voters, the rest learners) in process over an
    /// in-memory bus; 0 skips it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=5000))]
    scale_sim_hosts: u32,
    /// scale: connects timed in the simulation.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    scale_sim_changes: u32,
    /// scale: connects committed in the simulation while one learner is away.
    #[arg(long, default_value_t = 10000)]
    scale_sim_away: u32,
    /// scale: single changes timed at each size.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..))]
    scale_changes: u32,
    /// Extra argument for every vxnet daemon (repeatable), e.g. `--daemon-arg=--no-offloads`.
    #[arg(long, allow_hyphen_values = true)]
    daemon_arg: Vec<String>,
}

/// What the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Throughput and latency of the overlay (and its baselines).
    Dataplane,
    /// The Raft control plane of three vxnet hosts.
    Cluster,
    /// The restart window of a daemon (SIGTERM and SIGKILL) under a running ping.
    Restart,
    /// How the state and one host's programming grow with the endpoints, in process.
    Scale,
}

/// A way of connecting the two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Two vxnet hosts with static peers.
    Vxnet,
    /// Two Linux kernel vxlan hosts.
    Kernel,
    /// The two host namespaces directly, no overlay.
    Underlay,
    /// Two vxnet hosts in one cluster, the network `--encrypted`.
    VxnetSealed,
    /// Two Linux kernel vxlan hosts whose VTEPs talk over kernel WireGuard.
    KernelWg,
    /// Two Linux kernel vxlan hosts whose VTEPs talk over boringtun (userspace WireGuard).
    UserspaceWg,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Vxnet => "vxnet",
            Mode::Kernel => "kernel",
            Mode::Underlay => "underlay",
            Mode::VxnetSealed => "vxnet-sealed",
            Mode::KernelWg => "kernel-wg",
            Mode::UserspaceWg => "userspace-wg",
        }
    }

    /// Whether the hosts run vxnet daemons.
    fn is_vxnet(self) -> bool {
        matches!(self, Mode::Vxnet | Mode::VxnetSealed)
    }

    /// Whether the overlay crosses the underlay sealed.
    fn sealing(self) -> Sealing {
        match self {
            Mode::VxnetSealed | Mode::KernelWg | Mode::UserspaceWg => Sealing::Sealed,
            Mode::Vxnet | Mode::Kernel | Mode::Underlay => Sealing::Clear,
        }
    }

    /// The WireGuard that carries a kernel pair's VXLAN, if one does.
    fn wireguard(self) -> Option<WireGuard> {
        match self {
            Mode::KernelWg => Some(WireGuard::Kernel),
            Mode::UserspaceWg => Some(WireGuard::Boringtun),
            Mode::Vxnet | Mode::Kernel | Mode::Underlay | Mode::VxnetSealed => None,
        }
    }
}

/// MTU of the lab's underlay links (the lab's default), the underlay mode's endpoint MTU.
const UNDERLAY_MTU: u32 = 1500;

/// A built topology: the lab (kept alive while measuring) and who talks to whom.
struct Topology {
    lab: Lab,
    /// The endpoints' namespaces when they are containers (empty for the underlay).
    containers: Vec<String>,
    client_ns: String,
    server_ns: String,
    server_ip: String,
    /// MTU of the endpoints' interfaces.
    mtu: u32,
}

/// A lab builder with the options every scenario on the two-host pair shares.
fn lab_builder(args: &Args) -> LabBuilder {
    args.daemon_arg.iter().fold(
        Lab::builder()
            .wire_checksums(!args.veth_offloads)
            .nic_gro(args.nic_gro),
        |b, a| b.daemon_arg(a),
    )
}

fn build(mode: Mode, args: &Args) -> Result<Topology> {
    let builder = lab_builder(args);
    let sealing = mode.sealing();
    let (pair, mtu) = match mode {
        Mode::Vxnet | Mode::VxnetSealed => (
            scenario::vxnet_pair_with(builder, sealing)?,
            sealing.mtu(HostKind::Vxnet),
        ),
        Mode::Kernel | Mode::KernelWg | Mode::UserspaceWg => (
            match mode.wireguard() {
                Some(wg) => scenario::kernel_wg_pair(builder, wg)?,
                None => scenario::kernel_pair_with(builder, sealing)?,
            },
            sealing.mtu(HostKind::KernelVxlan),
        ),
        Mode::Underlay => {
            let lab = builder.hosts(HostKind::KernelVxlan, 2).build()?;
            let topo = Topology {
                containers: Vec::new(),
                client_ns: lab.host(0).ns().to_string(),
                server_ns: lab.host(1).ns().to_string(),
                server_ip: host_addr(1).to_string(),
                mtu: UNDERLAY_MTU,
                lab,
            };
            vxnet_tests::ping::wait_reachable(
                &topo.client_ns,
                &topo.server_ip,
                scenario::WARMUP_TIMEOUT,
            )?;
            return Ok(topo);
        }
    };
    Ok(Topology {
        containers: vec![pair.c1.ns.clone(), pair.c2.ns.clone()],
        client_ns: pair.c1.ns.clone(),
        server_ns: pair.c2.ns.clone(),
        server_ip: C2_IP.to_string(),
        mtu,
        lab: pair.lab,
    })
}

fn measure(mode: Mode, args: &Args) -> Result<ModeResult> {
    let topo = build(mode, args).with_context(|| format!("setting up mode {}", mode.name()))?;
    let mut result = ModeResult::new(mode.name());
    result.mtu = Some(topo.mtu);
    let duration = Duration::from_secs(args.duration);
    let iperf_for = |test, duration| {
        run_iperf(
            &topo.server_ns,
            &topo.client_ns,
            &topo.server_ip,
            test,
            duration,
            topo.lab.root(),
        )
    };
    let iperf = |test| iperf_for(test, duration);
    let sites = Sites::of(&topo.lab, 2, topo.containers.clone(), mode.is_vxnet());
    let hz = procfs::ticks_per_second();
    // Counters around one run: (what iperf3 saw, what changed meanwhile).
    let probed = |test, with_drops| -> Result<_> {
        let before = Snapshot::take(&sites, &topo.lab, with_drops);
        let r = iperf(test)?;
        let after = Snapshot::take(&sites, &topo.lab, with_drops);
        Ok((r, Delta::between(&before, &after, hz)))
    };
    for round in 1..=args.repeat {
        eprintln!("[{}] round {round}/{}", mode.name(), args.repeat);
        let (tcp1, d) = probed(IperfTest::Tcp { streams: 1 }, false).context("iperf3 TCP -P 1")?;
        result.add(Metric::Tcp1Gbps, tcp1.bits_per_second / 1e9);
        let gb = |cpu: Option<f64>| cpu.and_then(|c| per_gb(c, tcp1.bytes));
        result.add_some(Metric::TcpDaemonCpuSPerGb, gb(d.daemon_cpu_s));
        result.add_some(Metric::TcpSoftirqCpuSPerGb, gb(d.softirq_cpu_s));
        result.add_some(Metric::TcpMachineCpuSPerGb, gb(d.machine_cpu_s));
        if let Some(v) = d.vxnet {
            add_batching(
                &mut result,
                v,
                [
                    Metric::TcpDgramsPerRecvmmsg,
                    Metric::TcpDgramsPerSendmmsg,
                    Metric::TcpFramesPerTapRead,
                    Metric::TcpFramesPerTapWrite,
                ],
            );
        }

        let tcp4 = iperf(IperfTest::Tcp { streams: 4 }).context("iperf3 TCP -P 4")?;
        result.add(Metric::Tcp4Gbps, tcp4.bits_per_second / 1e9);

        let (udp, d) = probed(IperfTest::Udp { payload: 64 }, true).context("iperf3 UDP -l 64")?;
        result.add_some(Metric::Udp64Kpps, udp.packets_per_second.map(|p| p / 1e3));
        result.add_some(Metric::Udp64LossPct, udp.lost_percent);
        let packets = udp.packets.unwrap_or(0.0);
        let pkt = |cpu: Option<f64>| cpu.and_then(|c| us_per_packet(c, packets));
        result.add_some(Metric::UdpDaemonCpuUsPerPkt, pkt(d.daemon_cpu_s));
        result.add_some(Metric::UdpSoftirqCpuUsPerPkt, pkt(d.softirq_cpu_s));
        result.add_some(Metric::UdpMachineCpuUsPerPkt, pkt(d.machine_cpu_s));
        result.add_some(
            Metric::UdpSwitchesPerPkt,
            d.daemon_switches
                .and_then(|s| (packets > 0.0).then(|| s as f64 / packets)),
        );
        if let Some(v) = d.vxnet {
            add_batching(
                &mut result,
                v,
                [
                    Metric::UdpDgramsPerRecvmmsg,
                    Metric::UdpDgramsPerSendmmsg,
                    Metric::UdpFramesPerTapRead,
                    Metric::UdpFramesPerTapWrite,
                ],
            );
        }
        let count = |v: Option<u64>| v.map(|n| n as f64);
        result.add_some(Metric::DropOverlayDevice, count(d.overlay_dropped));
        result.add_some(
            Metric::DropHostRcvbuf,
            count(d.host_udp.map(|u| u.rcvbuf_errors)),
        );
        result.add_some(
            Metric::DropHostInErrors,
            count(d.host_udp.map(|u| u.in_errors)),
        );
        result.add_some(
            Metric::DropContainerRcvbuf,
            count(d.container_udp.map(|u| u.rcvbuf_errors)),
        );
        result.add_some(
            Metric::DropContainerLink,
            count(d.container_links.map(|l| l.rx_dropped + l.tx_dropped)),
        );

        let ping = ping_with(
            &topo.client_ns,
            &topo.server_ip,
            &ping_options(args, args.ping_count),
        )
        .context("ping")?;
        let rtts_us: Vec<f64> = ping.rtts_ms.iter().map(|ms| ms * 1e3).collect();
        if let Some(l) = LatencySummary::of(&rtts_us) {
            result.add(Metric::RttP50Us, l.p50);
            result.add(Metric::RttAvgUs, l.mean);
            result.add(Metric::RttP99Us, l.p99);
            result.add(Metric::RttP999Us, l.p999);
        }
        result.add(Metric::PingLossPct, ping.loss() * 100.0);
        if round == 1 {
            result.rtts_us = rtts_us;
        }

        if args.load_ping_count > 0 {
            let opts = ping_options(args, args.load_ping_count);
            // The stream runs a second before and a second after the pings, so every ping
            // meets a flow at full speed.
            let load_for = opts.interval * args.load_ping_count + Duration::from_secs(2);
            let (load, ping) = std::thread::scope(|s| {
                let load = s.spawn(|| iperf_for(IperfTest::Tcp { streams: 1 }, load_for));
                std::thread::sleep(Duration::from_secs(1));
                let ping = ping_with(&topo.client_ns, &topo.server_ip, &opts);
                (load.join(), ping)
            });
            match load {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("[{}] TCP load for ping: {e:#}", mode.name()),
                Err(_) => eprintln!("[{}] TCP load for ping panicked", mode.name()),
            }
            let rtts: Vec<f64> = ping
                .context("ping under load")?
                .rtts_ms
                .iter()
                .map(|ms| ms * 1e3)
                .collect();
            if let Some(l) = LatencySummary::of(&rtts) {
                result.add(Metric::LoadRttP50Us, l.p50);
                result.add(Metric::LoadRttP99Us, l.p99);
            }
        }
    }
    if !args.no_udp_sweep {
        for &kpps in &args.sweep_kpps {
            let test = IperfTest::UdpRate {
                payload: 64,
                packets_per_second: kpps * 1000,
            };
            eprintln!("[{}] sweep {kpps} kpkt/s", mode.name());
            match iperf_for(test, Duration::from_secs(args.sweep_secs)) {
                Ok(r) => {
                    let received_kpps = r.packets_per_second.unwrap_or(0.0) / 1e3;
                    let loss_pct = r.lost_percent.unwrap_or(100.0);
                    result.sweep.push(SweepStep {
                        offered_kpps: kpps as f64,
                        sent_kpps: if loss_pct < 100.0 {
                            received_kpps / (1.0 - loss_pct / 100.0)
                        } else {
                            0.0
                        },
                        received_kpps,
                        loss_pct,
                    })
                }
                Err(e) => eprintln!("[{}] sweep step {kpps} kpkt/s failed: {e:#}", mode.name()),
            }
        }
        result.add_some(
            Metric::SweepMaxKpps01,
            highest_rate_within(&result.sweep, 0.1),
        );
        result.add_some(
            Metric::SweepMaxKpps1,
            highest_rate_within(&result.sweep, 1.0),
        );
    }
    Ok(result)
}

/// `count` pings `--ping-interval-ms` apart, with a deadline of their time plus a generous
/// margin: a stall costs seconds, not forever.
fn ping_options(args: &Args, count: u32) -> PingOptions {
    let interval = Duration::from_millis(args.ping_interval_ms);
    PingOptions {
        count,
        interval,
        size: None,
        deadline: interval * count + Duration::from_secs(10),
    }
}

/// Datagrams per `recvmmsg` and per send call, frames per TAP read and write, into `metrics`
/// (in that order). Received datagrams are those delivered into a TAP; sent ones those the
/// kernel took.
fn add_batching(result: &mut ModeResult, v: VxnetCounters, metrics: [Metric; 4]) {
    result.add_some(metrics[0], per(v.rx_frames, v.recvmmsg));
    result.add_some(metrics[1], per(v.tx_frames, v.sends));
    result.add_some(metrics[2], per(v.tx_frames, v.tap_reads));
    result.add_some(metrics[3], per(v.rx_frames, v.tap_writes));
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.scenario == Scenario::Scale && args.scale_lab_hosts == 0 {
        return scale_scenario(&args);
    }
    if !vxnet_tests::is_root() {
        bail!("vxnet-bench needs root (network namespaces, TAP devices)");
    }
    match args.scenario {
        Scenario::Dataplane => dataplane(&args),
        Scenario::Cluster => cluster_scenario(&args),
        Scenario::Restart => restart_scenario(&args),
        Scenario::Scale => scale_scenario(&args),
    }
}

fn scale_scenario(args: &Args) -> Result<()> {
    if args.scale_lab_hosts > 0 {
        vxnet_tests::find_vxnet_bin()?;
    }
    let report = scale::run(scale::ScaleParams {
        sizes: args.scale_endpoints.clone(),
        networks: args.scale_networks as usize,
        hosts: args.scale_hosts as usize,
        changes: args.scale_changes as usize,
        lab_hosts: args.scale_lab_hosts as usize,
        lab_connects: args.scale_lab_connects as usize,
        sim_hosts: args.scale_sim_hosts as usize,
        sim_changes: args.scale_sim_changes as usize,
        sim_away: args.scale_sim_away as usize,
    })?;
    publish(args, &report.table(), &report.to_json())?;
    if report.failed() {
        bail!("the lab part failed (see above)");
    }
    Ok(())
}

/// Prints a scenario's table and writes its JSON to `--json`.
fn publish(args: &Args, table: &str, json: &serde_json::Value) -> Result<()> {
    print!("{table}");
    let text = serde_json::to_string_pretty(json)?;
    std::fs::write(&args.json, text + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("results written to {}", args.json.display());
    Ok(())
}

fn restart_scenario(args: &Args) -> Result<()> {
    vxnet_tests::find_vxnet_bin()?;
    let report = restart::run(lab_builder(args), args.repeat);
    publish(args, &report.table(), &report.to_json())?;
    if report.failed() {
        bail!("some restart runs failed (see above)");
    }
    Ok(())
}

fn cluster_scenario(args: &Args) -> Result<()> {
    vxnet_tests::find_vxnet_bin()?;
    let as_count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    let samples = cluster::Samples {
        commit: as_count(args.commit_samples),
        convergence: as_count(args.convergence_samples),
        failover: as_count(args.failover_runs),
    };
    let report = cluster::run(samples, args.veth_offloads);
    publish(args, &report.table(), &report.to_json())?;
    if report.failed() {
        bail!("some cluster measurements failed (see above)");
    }
    Ok(())
}

fn dataplane(args: &Args) -> Result<()> {
    if args.modes.iter().any(|m| m.is_vxnet()) {
        // Fail before spending minutes on the other modes.
        vxnet_tests::find_vxnet_bin()?;
    }
    if args.modes.contains(&Mode::UserspaceWg) {
        boringtun::find_bin()?;
    }
    let mut report = Report::new(args.duration, args.repeat, args.veth_offloads);
    report.nic_gro = args.nic_gro;
    for &mode in &args.modes {
        match measure(mode, args) {
            Ok(r) => report.modes.push(r),
            Err(e) => {
                eprintln!("[{}] failed: {e:#}", mode.name());
                let mut r = ModeResult::new(mode.name());
                r.error = Some(format!("{e:#}"));
                report.modes.push(r);
            }
        }
    }
    match plot::write_plots(&report, &args.json) {
        Ok(drawn) => {
            for (what, path) in drawn {
                report.plots.insert(what, path.display().to_string());
            }
        }
        Err(e) => eprintln!("plots not drawn: {e:#}"),
    }
    publish(args, &report.table(), &report.to_json())?;
    if report.modes.iter().any(|m| m.error.is_some()) {
        bail!("some modes failed (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
