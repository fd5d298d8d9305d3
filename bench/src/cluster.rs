//! `vxnet-bench --scenario cluster`: the control plane of three vxnet hosts formed into one Raft
//! cluster, measured through the CLI as a user sees it.
//!
//! - **commit**: wall time of `vxnet network create` on host 0 (a Raft commit plus the CLI's
//!   process start and socket round trip); each network is removed again, untimed, so the
//!   state stays small. p50/p99.
//! - **convergence**: from `network connect` returning on host 0 to host 1's
//!   `fdb --format json` holding the new endpoint's MAC, polled every [`POLL`]. A poll is a CLI
//!   call of a few ms itself, so values are "at most this late" to within one call. p50/p99.
//! - **failover**: kill -9 the leader, then time until the next `network create` succeeds on a
//!   survivor (attempts with `--timeout` [`FAILOVER_ATTEMPT_TIMEOUT`], alternating survivors).
//!   The killed daemon is restarted and caught up between runs. Median.
//!
//! Rules: every phase is bounded; a phase that fails is reported with its error (its metric
//! shows `-`/null, never 0) and the other phases still run.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use vxnet_tests::lab::cluster::{WriteRetry, CLUSTER_TIMEOUT, REPLICATION_TIMEOUT};
use vxnet_tests::lab::{HostKind, Lab};
use vxnet_tests::ping::percentile;
use vxnet_tests::wait_for_strict;
use vxnet_tests::wire::mac_string_for_ip;

use crate::report::{fmt_value, machine_facts, machine_line, median};

/// How often the convergence phase looks at the remote FDB.
pub const POLL: Duration = Duration::from_millis(5);
/// `--timeout` of each write attempt while a new leader is being elected.
pub const FAILOVER_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// Give up on a failover run after this long.
pub const FAILOVER_LIMIT: Duration = Duration::from_secs(30);
/// `--timeout` of the measured CLI calls: generous, a slow commit is a result, not an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The cluster has this many hosts.
pub const HOSTS: usize = 3;

/// How many samples each phase takes.
#[derive(Debug, Clone, Copy)]
pub struct Samples {
    pub commit: usize,
    pub convergence: usize,
    pub failover: usize,
}

/// The metrics of the cluster scenario, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMetric {
    Commit,
    Convergence,
    Failover,
}

impl ClusterMetric {
    pub const ALL: [ClusterMetric; 3] = [
        ClusterMetric::Commit,
        ClusterMetric::Convergence,
        ClusterMetric::Failover,
    ];

    /// JSON key.
    pub fn key(self) -> &'static str {
        match self {
            ClusterMetric::Commit => "network_create_commit_ms",
            ClusterMetric::Convergence => "connect_to_remote_fdb_ms",
            ClusterMetric::Failover => "leader_failover_ms",
        }
    }

    /// Table label.
    pub fn label(self) -> &'static str {
        match self {
            ClusterMetric::Commit => "network create      ms",
            ClusterMetric::Convergence => "connect -> fdb      ms",
            ClusterMetric::Failover => "leader failover     ms",
        }
    }
}

/// One metric's samples, or why there are none (or too few).
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub samples_ms: Vec<f64>,
    pub error: Option<String>,
}

impl Series {
    pub fn p50(&self) -> Option<f64> {
        percentile(&self.samples_ms, 50.0)
    }

    pub fn p99(&self) -> Option<f64> {
        percentile(&self.samples_ms, 99.0)
    }

    pub fn median(&self) -> Option<f64> {
        median(&self.samples_ms)
    }

    pub fn max(&self) -> Option<f64> {
        self.samples_ms.iter().copied().reduce(f64::max)
    }
}

/// The whole cluster run.
#[derive(Debug, Clone, Default)]
pub struct ClusterReport {
    pub commit: Series,
    pub convergence: Series,
    pub failover: Series,
    /// Whether host 0 (where commits are timed) led the cluster when the commit phase started.
    pub commit_host_role: Option<String>,
    /// A failure before any phase could run (building the lab, forming the cluster).
    pub setup_error: Option<String>,
}

impl ClusterReport {
    fn series(&self, m: ClusterMetric) -> &Series {
        match m {
            ClusterMetric::Commit => &self.commit,
            ClusterMetric::Convergence => &self.convergence,
            ClusterMetric::Failover => &self.failover,
        }
    }

    /// Whether anything failed.
    pub fn failed(&self) -> bool {
        self.setup_error.is_some()
            || ClusterMetric::ALL
                .iter()
                .any(|m| self.series(*m).error.is_some())
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", machine_line());
        let _ = writeln!(
            s,
            "cluster: {HOSTS} vxnet hosts, one Raft group; commits timed on h0 ({})",
            self.commit_host_role.as_deref().unwrap_or("role unknown")
        );
        let _ = writeln!(
            s,
            "{:<24}{:>6}{:>10}{:>10}{:>10}{:>10}",
            "metric", "n", "p50", "p99", "median", "max"
        );
        for m in ClusterMetric::ALL {
            let series = self.series(m);
            let _ = writeln!(
                s,
                "{:<24}{:>6}{:>10}{:>10}{:>10}{:>10}",
                m.label(),
                series.samples_ms.len(),
                fmt_value(series.p50()),
                fmt_value(series.p99()),
                fmt_value(series.median()),
                fmt_value(series.max()),
            );
        }
        if let Some(e) = &self.setup_error {
            let _ = writeln!(s, "setup: FAILED: {e}");
        }
        for m in ClusterMetric::ALL {
            if let Some(e) = &self.series(m).error {
                let _ = writeln!(s, "{}: FAILED: {e}", m.key());
            }
        }
        s
    }

    /// The JSON document written by `--json`.
    pub fn to_json(&self) -> Value {
        let mut doc = machine_facts();
        let metrics: serde_json::Map<String, Value> = ClusterMetric::ALL
            .iter()
            .map(|m| {
                let s = self.series(*m);
                (
                    m.key().to_string(),
                    json!({
                        "n": s.samples_ms.len(),
                        "p50": s.p50(),
                        "p99": s.p99(),
                        "median": s.median(),
                        "max": s.max(),
                        "samples": s.samples_ms,
                        "error": s.error,
                    }),
                )
            })
            .collect();
        doc.insert("scenario".into(), json!("cluster"));
        doc.insert("hosts".into(), json!(HOSTS));
        doc.insert("commit_host_role".into(), json!(self.commit_host_role));
        doc.insert("setup_error".into(), json!(self.setup_error));
        doc.insert("metrics".into(), Value::Object(metrics));
        Value::Object(doc)
    }
}

/// Builds the cluster and runs every phase.
pub fn run(samples: Samples, veth_offloads: bool) -> ClusterReport {
    let mut report = ClusterReport::default();
    let lab = match build(veth_offloads) {
        Ok(lab) => lab,
        Err(e) => {
            report.setup_error = Some(format!("{e:#}"));
            return report;
        }
    };
    eprintln!("[cluster] commit latency, {} creates", samples.commit);
    report.commit_host_role = Some(match lab.leader(&[0, 1, 2]) {
        Ok(0) => "leader".into(),
        Ok(_) => "follower".into(),
        Err(e) => format!("unknown: {e:#}"),
    });
    report.commit = collect(|out| commit_latency(&lab, samples.commit, out));
    eprintln!("[cluster] convergence, {} connects", samples.convergence);
    report.convergence = collect(|out| convergence(&lab, samples.convergence, out));
    eprintln!("[cluster] failover, {} runs", samples.failover);
    report.failover = collect(|out| failover(&lab, samples.failover, out));
    report
}

/// Runs a phase that pushes samples into a vector; keeps what it measured before an error.
fn collect(phase: impl FnOnce(&mut Vec<f64>) -> Result<()>) -> Series {
    let mut samples = Vec::new();
    let error = phase(&mut samples).err().map(|e| format!("{e:#}"));
    Series {
        samples_ms: samples,
        error,
    }
}

fn build(veth_offloads: bool) -> Result<Lab> {
    let lab = Lab::builder()
        .wire_checksums(!veth_offloads)
        .hosts(HostKind::Vxnet, HOSTS)
        .build()?;
    let all: Vec<usize> = (0..HOSTS).collect();
    lab.form_cluster(&all).context("forming the cluster")?;
    Ok(lab)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn commit_latency(lab: &Lab, n: usize, out: &mut Vec<f64>) -> Result<()> {
    let host = lab.host(0);
    for i in 0..n {
        let name = format!("commit-{i}");
        let call = host.vxnet_timed(&["network", "create", &name], CALL_TIMEOUT)?;
        if !call.success() {
            bail!("network create {name}: {}", call.stderr().trim());
        }
        out.push(ms(call.elapsed));
        host.vxnet_checked(&["network", "rm", &name])?;
    }
    Ok(())
}

fn convergence(lab: &Lab, n: usize, out: &mut Vec<f64>) -> Result<()> {
    let (a, b) = (lab.host(0), lab.host(1));
    a.vxnet_checked(&["network", "create", "--subnet", "10.99.0.0/24", "conv"])?;
    b.wait_networks(&["conv"], REPLICATION_TIMEOUT)?;
    for i in 0..n {
        // A fixed --ip, so the MAC to wait for (02:42 + address) is known before the connect
        // returns and the clock starts without an extra lookup.
        let ip = Ipv4Addr::new(10, 99, 0, u8::try_from(10 + i).context("too many samples")?);
        let mac = mac_string_for_ip(ip);
        let c = lab.container(0, &format!("cv{i}"))?;
        a.vxnet_checked(&["network", "connect", "--ip", &ip.to_string(), "conv", &c.ns])?;
        let connected = Instant::now();
        // Strict: a failed fdb query ends the phase rather than passing for a slow convergence.
        let took = wait_for_strict(
            &format!("{mac} to reach h1's fdb"),
            REPLICATION_TIMEOUT,
            POLL,
            || Ok(b.fdb_has_mac("conv", &mac)?.then(|| connected.elapsed())),
        )?;
        out.push(ms(took));
    }
    Ok(())
}

fn failover(lab: &Lab, runs: usize, out: &mut Vec<f64>) -> Result<()> {
    let all: Vec<usize> = (0..HOSTS).collect();
    for run in 0..runs {
        let leader = lab.wait_leader(&all, CLUSTER_TIMEOUT)?;
        let survivors: Vec<usize> = all.iter().copied().filter(|&h| h != leader).collect();
        lab.kill_daemon(leader, libc::SIGKILL)?;
        let killed = Instant::now();
        let retry = WriteRetry {
            attempt_timeout: FAILOVER_ATTEMPT_TIMEOUT,
            pause: Duration::ZERO,
            limit: FAILOVER_LIMIT,
        };
        let write = lab
            .create_network_retrying(&survivors, |n| format!("fo-{run}-{n}"), killed, retry)
            .with_context(|| format!("run {run}: after killing h{leader}"))?;
        let name = write.name;
        out.push(ms(write.after));
        // Back to three healthy members before the next run.
        lab.start_daemon(leader)?;
        lab.host(leader)
            .wait_networks(&[name.as_str()], REPLICATION_TIMEOUT)
            .with_context(|| format!("run {run}: h{leader} catching up"))?;
        lab.wait_leader(&all, CLUSTER_TIMEOUT)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
