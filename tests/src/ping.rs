//! `ping` from inside a namespace, and the parsing of its output.
//!
//! Rules: [`ping`] never fails because of packet loss (the caller asserts what it expects);
//! it fails only when ping cannot run or its output cannot be understood. Every ping has a
//! deadline (`-w`), so a black hole costs at most that long.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cmd;
use crate::netns;
use crate::wait::{wait_for, POLL_INTERVAL};

/// What one `ping` run saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PingStats {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
    /// Round-trip time of every reply, in milliseconds, in arrival order.
    pub rtts_ms: Vec<f64>,
}

impl PingStats {
    /// Fraction of requests without a reply (0.0 ..= 1.0); 1.0 when nothing was sent.
    pub fn loss(&self) -> f64 {
        if self.transmitted == 0 {
            return 1.0;
        }
        1.0 - f64::from(self.received) / f64::from(self.transmitted)
    }

    /// Mean RTT in ms, `None` without replies.
    pub fn avg_ms(&self) -> Option<f64> {
        if self.rtts_ms.is_empty() {
            return None;
        }
        Some(self.rtts_ms.iter().sum::<f64>() / self.rtts_ms.len() as f64)
    }

    /// The `p`-th percentile RTT (nearest rank, `p` in 0..=100), `None` without replies.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        percentile(&self.rtts_ms, p)
    }
}

/// Nearest-rank percentile of `values` (`p` in 0..=100); `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

/// Parses iputils `ping` output: per-reply `time=` values and the summary line.
pub fn parse_ping_output(text: &str) -> Result<PingStats> {
    let mut stats = PingStats::default();
    let mut summary = false;
    for line in text.lines() {
        if line.contains("bytes from") && !line.contains("(DUP!)") {
            if let Some(t) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("time="))
            {
                // "time=0.045" followed by " ms", or "time<1" on some builds: both parse.
                let value: f64 = t
                    .trim_end_matches("ms")
                    .parse()
                    .with_context(|| format!("bad RTT in ping line {line:?}"))?;
                stats.rtts_ms.push(value);
            }
        } else if line.contains("packets transmitted") {
            // "3 packets transmitted, 3 received, 0% packet loss, time 2003ms"
            let mut parts = line.split(',');
            let tx = parts.next().and_then(|p| p.split_whitespace().next());
            let rx = parts.next().and_then(|p| p.split_whitespace().next());
            match (
                tx.and_then(|v| v.parse().ok()),
                rx.and_then(|v| v.parse().ok()),
            ) {
                (Some(tx), Some(rx)) => {
                    stats.transmitted = tx;
                    stats.received = rx;
                    summary = true;
                }
                _ => bail!("cannot parse ping summary {line:?}"),
            }
        }
    }
    if !summary {
        bail!("no summary line in ping output: {text:?}");
    }
    Ok(stats)
}

/// Options for [`ping_with`].
#[derive(Debug, Clone)]
pub struct PingOptions {
    /// Number of echo requests.
    pub count: u32,
    /// Interval between requests (below 0.2 s needs root, which the lab has).
    pub interval: Duration,
    /// Payload size in bytes (`-s`); `None` for ping's default 56.
    pub size: Option<u32>,
    /// Hard deadline for the whole run (`-w`).
    pub deadline: Duration,
}

impl PingOptions {
    /// `count` pings 0.2 s apart with a deadline that leaves room for a slow first ARP.
    pub fn count(count: u32) -> PingOptions {
        PingOptions {
            count,
            interval: Duration::from_millis(200),
            size: None,
            deadline: Duration::from_secs(u64::from(count) / 5 + 3),
        }
    }
}

/// `ping -c COUNT` from namespace `ns` to `ip`. Loss is not an error.
pub fn ping(ns: &str, ip: &str, count: u32) -> Result<PingStats> {
    ping_with(ns, ip, &PingOptions::count(count))
}

/// `ping` from namespace `ns` to `ip` with explicit options. Loss is not an error.
pub fn ping_with(ns: &str, ip: &str, opts: &PingOptions) -> Result<PingStats> {
    let count = opts.count.to_string();
    let interval = format!("{:.3}", opts.interval.as_secs_f64());
    let deadline = opts.deadline.as_secs().max(1).to_string();
    let mut args = vec![
        "ping", "-n", "-c", &count, "-i", &interval, "-W", "1", "-w", &deadline,
    ];
    let size;
    if let Some(s) = opts.size {
        size = s.to_string();
        args.extend(["-s", size.as_str()]);
    }
    args.push(ip);
    let out = cmd::run(
        &mut netns::command(ns, &args),
        opts.deadline + Duration::from_secs(5),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ping_output(&text).with_context(|| {
        format!(
            "ping {ip} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Pings `ip` from `ns` once a second until one reply comes back or `timeout` passes.
/// For "connectivity is back" waits (after a restart, after ARP/FDB warm-up).
pub fn wait_reachable(ns: &str, ip: &str, timeout: Duration) -> Result<()> {
    wait_for(
        &format!("{ip} to answer ping from {ns}"),
        timeout,
        POLL_INTERVAL,
        || {
            let opts = PingOptions {
                count: 1,
                interval: Duration::from_millis(200),
                size: None,
                deadline: Duration::from_secs(1),
            };
            Ok((ping_with(ns, ip, &opts)?.received > 0).then_some(()))
        },
    )
}

#[cfg(test)]
mod tests;
