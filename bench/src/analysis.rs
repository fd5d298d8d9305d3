//! The arithmetic of the bench, apart from any measuring: latency percentiles, the rate-sweep
//! decision, the CDF the plot draws, and the parsing of the drop counters the kernel exposes.
//!
//! Rules:
//! - Percentiles are nearest-rank (the value of a real sample, never an interpolation), so a
//!   p99.9 of 5000 pings is the 4995th smallest RTT.
//! - The sweep's "highest rate with ≤ x % loss" is the highest offered rate at which that step
//!   and every slower one stayed within x %: one lucky step above a failing one is noise, not
//!   capacity.

use serde_json::Value;

/// Nearest-rank percentile of `values` (`p` in 0..=100); `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    // 99.9 has no exact binary form: 0.999 × 5000 comes out a hair above 4995, and a plain
    // ceil would take the 4996th sample. The tolerance is far below one rank.
    let exact = p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64;
    let rank = (exact - 1e-9).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// What a latency run says, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl LatencySummary {
    /// Summary of RTTs given in microseconds; `None` without any.
    pub fn of(rtts_us: &[f64]) -> Option<LatencySummary> {
        Some(LatencySummary {
            count: rtts_us.len(),
            mean: rtts_us.iter().sum::<f64>() / rtts_us.len().max(1) as f64,
            p50: percentile(rtts_us, 50.0)?,
            p99: percentile(rtts_us, 99.0)?,
            p999: percentile(rtts_us, 99.9)?,
        })
    }
}

/// One step of the UDP rate sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepStep {
    /// What iperf3 was asked to send, thousands of datagrams per second.
    pub offered_kpps: f64,
    /// What the client managed to send, thousands per second: on a busy machine iperf3 falls
    /// short of the offered rate, and loss is counted against what it sent.
    pub sent_kpps: f64,
    /// What arrived, thousands per second.
    pub received_kpps: f64,
    /// Datagrams lost, percent of those sent.
    pub loss_pct: f64,
}

/// The highest offered rate whose step, and every step at a lower rate, lost at most
/// `max_loss_pct`; `None` when even the slowest step lost more (or there are no steps).
pub fn highest_rate_within(steps: &[SweepStep], max_loss_pct: f64) -> Option<f64> {
    let mut sorted = steps.to_vec();
    sorted.sort_by(|a, b| a.offered_kpps.total_cmp(&b.offered_kpps));
    sorted
        .iter()
        .take_while(|s| s.loss_pct <= max_loss_pct)
        .last()
        .map(|s| s.offered_kpps)
}

/// Points of the empirical CDF of `values`: (value, fraction of samples ≤ value), ascending.
pub fn cdf(values: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, (i + 1) as f64 / n))
        .collect()
}

/// The `Udp:` counters of /proc/net/snmp (a header line of names, then a line of values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpSnmp {
    /// Datagrams dropped because the receiving socket's buffer was full.
    pub rcvbuf_errors: u64,
    /// Datagrams that could not be delivered (includes `RcvbufErrors` and checksum errors).
    pub in_errors: u64,
}

/// Parses the `Udp:` lines of /proc/net/snmp.
pub fn parse_snmp_udp(text: &str) -> Option<UdpSnmp> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(UdpSnmp {
        rcvbuf_errors: get("RcvbufErrors")?,
        in_errors: get("InErrors")?,
    })
}

/// Dropped-packet counters of one interface (`ip -s -j link show`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkDrops {
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// Sums the drop counters of the interfaces in `ip -s -j link show` output, leaving out `lo`.
pub fn parse_link_drops(json: &str) -> Option<LinkDrops> {
    let links: Value = serde_json::from_str(json).ok()?;
    let mut sum = LinkDrops::default();
    for link in links.as_array()? {
        if link.get("ifname").and_then(Value::as_str) == Some("lo") {
            continue;
        }
        let stats = link.get("stats64").or_else(|| link.get("stats"))?;
        let dropped = |dir: &str| stats.pointer(&format!("/{dir}/dropped"))?.as_u64();
        sum.rx_dropped += dropped("rx")?;
        sum.tx_dropped += dropped("tx")?;
    }
    Some(sum)
}

#[cfg(test)]
mod tests;
