//! `vxnet-bench`: throughput and latency between two containers on two lab hosts, for vxnet,
//! for Linux kernel vxlan with the same topology, and for the bare underlay
//! (`--scenario dataplane`, the default); or the control plane of a three-host Raft cluster:
//! commit latency, convergence and leader failover (`--scenario cluster`, see `cluster.rs`).
//!
//! Rules of the dataplane scenario:
//! - Every mode uses the same numbers (`vxnet_tests::scenario`: VNI 4100, 10.10.0.0/24, overlay
//!   MTU 1450, c1 on host 0 sends to c2 on host 1); `underlay` runs host namespace to host
//!   namespace (MTU 1500), the ceiling of what any overlay can reach on this machine.
//! - Each metric is measured `--repeat` times and the median is reported, because a shared
//!   two-core machine is noisy.
//! - A mode that fails is reported with its error and the others still run; the exit status is
//!   then non-zero.

mod cluster;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use vxnet_tests::iperf::{run_iperf, IperfTest};
use vxnet_tests::lab::topology::host_addr;
use vxnet_tests::lab::{HostKind, Lab};
use vxnet_tests::ping::{ping_with, PingOptions};
use vxnet_tests::scenario::{self, C2_IP};

use report::{Metric, ModeResult, Report};

/// What is measured between the two endpoints of each mode.
#[derive(Parser, Debug)]
#[command(name = "vxnet-bench", version, about)]
struct Args {
    /// dataplane: iperf3/ping between containers (the --modes). cluster: Raft control plane of
    /// three vxnet hosts (commit latency, convergence, failover).
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
    /// Comma-separated modes, run in this order: vxnet, kernel, underlay.
    #[arg(long, value_delimiter = ',', default_value = "vxnet,kernel,underlay")]
    modes: Vec<Mode>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// Measure every metric N times and report the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    repeat: u32,
    /// Number of pings per latency run (sent 10 ms apart).
    #[arg(long, default_value_t = 200)]
    ping_count: u32,
    /// Keep the veth checksum/segmentation offloads on the host uplinks. By default the lab
    /// finishes checksums in software, so the underlay carries what a physical wire would (and
    /// kernel vxlan peers interoperate with vxnet); with offloads, kernel vxlan and the
    /// underlay pass unfinished 64 KB superframes over the veths, like an ideal NIC.
    #[arg(long)]
    veth_offloads: bool,
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
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Vxnet => "vxnet",
            Mode::Kernel => "kernel",
            Mode::Underlay => "underlay",
        }
    }
}

/// A built topology: the lab (kept alive while measuring) and who talks to whom.
struct Topology {
    lab: Lab,
    client_ns: String,
    server_ns: String,
    server_ip: String,
}

fn build(mode: Mode, args: &Args) -> Result<Topology> {
    let builder = args.daemon_arg.iter().fold(
        Lab::builder().wire_checksums(!args.veth_offloads),
        |b, a| b.daemon_arg(a),
    );
    let (pair, server_ip) = match mode {
        Mode::Vxnet => (scenario::vxnet_pair_on(builder)?, C2_IP.to_string()),
        Mode::Kernel => (scenario::kernel_pair_on(builder)?, C2_IP.to_string()),
        Mode::Underlay => {
            let lab = builder.hosts(HostKind::KernelVxlan, 2).build()?;
            let topo = Topology {
                client_ns: lab.host(0).ns().to_string(),
                server_ns: lab.host(1).ns().to_string(),
                server_ip: host_addr(1).to_string(),
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
        client_ns: pair.c1.ns.clone(),
        server_ns: pair.c2.ns.clone(),
        server_ip,
        lab: pair.lab,
    })
}

fn measure(mode: Mode, args: &Args) -> Result<ModeResult> {
    let topo = build(mode, args).with_context(|| format!("setting up mode {}", mode.name()))?;
    let mut result = ModeResult::new(mode.name());
    let duration = Duration::from_secs(args.duration);
    let iperf = |test| {
        run_iperf(
            &topo.server_ns,
            &topo.client_ns,
            &topo.server_ip,
            test,
            duration,
            topo.lab.root(),
        )
    };
    for round in 1..=args.repeat {
        eprintln!("[{}] round {round}/{}", mode.name(), args.repeat);
        let tcp1 = iperf(IperfTest::Tcp { streams: 1 }).context("iperf3 TCP -P 1")?;
        result.add(Metric::Tcp1Gbps, tcp1.bits_per_second / 1e9);
        let tcp4 = iperf(IperfTest::Tcp { streams: 4 }).context("iperf3 TCP -P 4")?;
        result.add(Metric::Tcp4Gbps, tcp4.bits_per_second / 1e9);
        let udp = iperf(IperfTest::Udp { payload: 64 }).context("iperf3 UDP -l 64")?;
        if let Some(pps) = udp.packets_per_second {
            result.add(Metric::Udp64Kpps, pps / 1e3);
        }
        if let Some(loss) = udp.lost_percent {
            result.add(Metric::Udp64LossPct, loss);
        }
        let opts = PingOptions {
            count: args.ping_count,
            interval: Duration::from_millis(10),
            size: None,
            // 10 ms apart plus a generous margin: a stall costs seconds, not forever.
            deadline: Duration::from_millis(u64::from(args.ping_count) * 10)
                + Duration::from_secs(10),
        };
        let ping = ping_with(&topo.client_ns, &topo.server_ip, &opts).context("ping")?;
        if let (Some(avg), Some(p99)) = (ping.avg_ms(), ping.percentile_ms(99.0)) {
            result.add(Metric::RttAvgUs, avg * 1e3);
            result.add(Metric::RttP99Us, p99 * 1e3);
        }
        result.add(Metric::PingLossPct, ping.loss() * 100.0);
    }
    Ok(result)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !vxnet_tests::is_root() {
        bail!("vxnet-bench needs root (network namespaces, TAP devices)");
    }
    match args.scenario {
        Scenario::Dataplane => dataplane(&args),
        Scenario::Cluster => cluster_scenario(&args),
    }
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
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report.to_json())?;
    std::fs::write(&args.json, json + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("results written to {}", args.json.display());
    if report.failed() {
        bail!("some cluster measurements failed (see above)");
    }
    Ok(())
}

fn dataplane(args: &Args) -> Result<()> {
    if args.modes.contains(&Mode::Vxnet) {
        // Fail before spending minutes on the other modes.
        vxnet_tests::find_vxnet_bin()?;
    }
    let mut report = Report::new(args.duration, args.repeat, args.veth_offloads);
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
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report.to_json())?;
    std::fs::write(&args.json, json + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("results written to {}", args.json.display());
    if report.modes.iter().any(|m| m.error.is_some()) {
        bail!("some modes failed (see above)");
    }
    Ok(())
}
