//! The lab part of `vxnet-bench --scenario scale` (`--scale-lab-hosts N`): N real daemons in one
//! Raft cluster on this machine, one network, and `--scale-lab-connects` connects made on the
//! hosts in turn. Measured per connect: from `vxnet network connect` returning on its host to
//! the new endpoint's MAC being in the forwarding table of every other host, asked over each
//! daemon's API socket every [`POLL`] (one thread per host, no process started per poll); then
//! each daemon's resident memory.
//!
//! Every poll is an `fdb` request, which passes a ReadIndex barrier on the leader before it
//! answers (README, "Clustering"): the figure includes that round trip, and the polling adds
//! load of its own on this machine's two cores.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use vxnet_proto::{request, FdbRequest, Request};
use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::lab::{HostKind, Lab};

/// How often each host's table is asked.
const POLL: Duration = Duration::from_millis(2);
/// The longest one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the lab run measured.
#[derive(Debug, Clone, Default)]
pub struct LabFigures {
    pub hosts: usize,
    /// Per connect: milliseconds until the last other host had the MAC.
    pub convergence_ms: Vec<f64>,
    /// Each daemon's resident memory at the end, KiB.
    pub rss_kib: Vec<u64>,
    pub error: Option<String>,
}

pub fn run(hosts: usize, connects: usize) -> LabFigures {
    let mut figures = LabFigures {
        hosts,
        ..LabFigures::default()
    };
    if let Err(e) = measure(hosts, connects, &mut figures) {
        figures.error = Some(format!("{e:#}"));
    }
    figures
}

fn measure(hosts: usize, connects: usize, figures: &mut LabFigures) -> Result<()> {
    if hosts < 2 {
        bail!("the lab part needs at least 2 hosts");
    }
    eprintln!("[scale] building {hosts} hosts and forming one cluster");
    let lab = Lab::builder().hosts(HostKind::Vxnet, hosts).build()?;
    let all: Vec<usize> = (0..hosts).collect();
    lab.form_cluster(&all).context("forming the cluster")?;
    lab.host(0)
        .vxnet_checked(&["network", "create", "--subnet", "10.77.0.0/16", "scale"])?;
    for &h in &all {
        lab.host(h).wait_networks(&["scale"], REPLICATION_TIMEOUT)?;
    }
    eprintln!(
        "[scale] {connects} connects, each waited for on the {} other hosts",
        hosts - 1
    );
    for i in 0..connects {
        let origin = i % hosts;
        let ip = Ipv4Addr::new(10, 77, (i / 250) as u8, (i % 250 + 2) as u8);
        let mac = ip_mac(ip);
        let c = lab.container(origin, &format!("sc{i}"))?;
        lab.host(origin).vxnet_checked(&[
            "network",
            "connect",
            "--ip",
            &ip.to_string(),
            "scale",
            &c.ns,
        ])?;
        let connected = Instant::now();
        let others: Vec<&Path> = all
            .iter()
            .filter(|&&h| h != origin)
            .map(|&h| lab.host(h).socket())
            .collect();
        let seen = std::thread::scope(|s| {
            let waits: Vec<_> = others
                .iter()
                .map(|socket| s.spawn(move || wait_for_mac(socket, &mac, connected)))
                .collect();
            waits
                .into_iter()
                .map(|w| w.join().map_err(|_| anyhow!("a poller panicked"))?)
                .collect::<Result<Vec<Duration>>>()
        })
        .with_context(|| format!("connect {i} on h{origin}"))?;
        let last = seen.into_iter().max().unwrap_or_default();
        figures.convergence_ms.push(last.as_secs_f64() * 1e3);
    }
    for &h in &all {
        let pid = lab
            .host(h)
            .daemon_pid()
            .ok_or_else(|| anyhow!("h{h} has no daemon"))?;
        figures.rss_kib.push(rss_kib(pid)?);
    }
    Ok(())
}

/// The MAC vxnet gives address `ip` (02:42 and its four bytes).
fn ip_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Polls the daemon at `socket` until network `scale`'s table has `mac`; how long after
/// `since` it was first seen.
fn wait_for_mac(socket: &Path, mac: &[u8; 6], since: Instant) -> Result<Duration> {
    let ask = Request {
        kind: Some(request::Kind::Fdb(FdbRequest {
            network: "scale".into(),
        })),
        ..Default::default()
    };
    loop {
        let answer = vxnet_control::api::call_blocking(socket, &ask, CALL_TIMEOUT)
            .map_err(|e| anyhow!("fdb on {}: {e}", socket.display()))?;
        if !answer.error.is_empty() {
            bail!("fdb on {}: {}", socket.display(), answer.error);
        }
        if answer.fdb.iter().any(|row| row.mac.as_slice() == mac) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > REPLICATION_TIMEOUT {
            bail!("{} never saw the endpoint", socket.display());
        }
        std::thread::sleep(POLL);
    }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for pid {pid}"))
}

impl LabFigures {
    pub fn table(&self) -> String {
        let mut c = self.convergence_ms.clone();
        let mut rss: Vec<f64> = self.rss_kib.iter().map(|&k| k as f64 / 1024.0).collect();
        let mut out = format!(
            "lab: {} hosts, one cluster; connect on one host -> MAC in every other host's fdb\n\
             | metric | n | p50 | p99 | max |\n|---|---|---|---|---|\n",
            self.hosts
        );
        out += &format!(
            "| convergence on all hosts, ms | {} | {:.1} | {:.1} | {:.1} |\n",
            c.len(),
            super::pct(&mut c, 0.5),
            super::pct(&mut c, 0.99),
            super::pct(&mut c, 1.0)
        );
        out += &format!(
            "| daemon RSS per host, MiB | {} | {:.1} | {:.1} | {:.1} |\n",
            rss.len(),
            super::pct(&mut rss, 0.5),
            super::pct(&mut rss, 0.99),
            super::pct(&mut rss, 1.0)
        );
        if let Some(e) = &self.error {
            out += &format!("lab: FAILED: {e}\n");
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "hosts": self.hosts,
            "convergence_ms": self.convergence_ms,
            "rss_kib": self.rss_kib,
            "error": self.error,
        })
    }
}
