//! Bench results: medians per metric and mode, the vxnet/kernel ratio, the table and the JSON.
//!
//! Rules: a metric with no sample is shown as `-` and written as `null`, never as 0, so a
//! failed measurement cannot pass for a slow one. Ratios are plain vxnet ÷ kernel for every
//! metric: above 1 is better for throughput, worse for RTT and loss.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Everything measured, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Tcp1Gbps,
    Tcp4Gbps,
    Udp64Kpps,
    Udp64LossPct,
    RttAvgUs,
    RttP99Us,
    PingLossPct,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::Tcp1Gbps,
        Metric::Tcp4Gbps,
        Metric::Udp64Kpps,
        Metric::Udp64LossPct,
        Metric::RttAvgUs,
        Metric::RttP99Us,
        Metric::PingLossPct,
    ];

    /// JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Tcp1Gbps => "tcp_1_stream_gbit_s",
            Metric::Tcp4Gbps => "tcp_4_streams_gbit_s",
            Metric::Udp64Kpps => "udp_64b_kpackets_s",
            Metric::Udp64LossPct => "udp_64b_loss_percent",
            Metric::RttAvgUs => "ping_rtt_avg_us",
            Metric::RttP99Us => "ping_rtt_p99_us",
            Metric::PingLossPct => "ping_loss_percent",
        }
    }

    /// Table label.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Tcp1Gbps => "TCP 1 stream   Gbit/s",
            Metric::Tcp4Gbps => "TCP 4 streams  Gbit/s",
            Metric::Udp64Kpps => "UDP 64 B rx    kpkt/s",
            Metric::Udp64LossPct => "UDP 64 B loss  %",
            Metric::RttAvgUs => "ping RTT avg   us",
            Metric::RttP99Us => "ping RTT p99   us",
            Metric::PingLossPct => "ping loss      %",
        }
    }
}

/// The samples of one mode.
#[derive(Debug, Clone)]
pub struct ModeResult {
    pub mode: String,
    pub samples: BTreeMap<Metric, Vec<f64>>,
    pub error: Option<String>,
}

impl ModeResult {
    pub fn new(mode: &str) -> ModeResult {
        ModeResult {
            mode: mode.to_string(),
            samples: BTreeMap::new(),
            error: None,
        }
    }

    pub fn add(&mut self, metric: Metric, value: f64) {
        self.samples.entry(metric).or_default().push(value);
    }

    pub fn median(&self, metric: Metric) -> Option<f64> {
        median(self.samples.get(&metric)?)
    }
}

/// Median (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if mid * 2 == v.len() {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Report {
    pub duration_secs: u64,
    pub repeat: u32,
    pub veth_offloads: bool,
    pub modes: Vec<ModeResult>,
}

impl Report {
    pub fn new(duration_secs: u64, repeat: u32, veth_offloads: bool) -> Report {
        Report {
            duration_secs,
            repeat,
            veth_offloads,
            modes: Vec::new(),
        }
    }

    fn mode(&self, name: &str) -> Option<&ModeResult> {
        self.modes.iter().find(|m| m.mode == name)
    }

    /// vxnet ÷ kernel for `metric`, when both have a non-zero value.
    pub fn ratio(&self, metric: Metric) -> Option<f64> {
        let vx = self.mode("vxnet")?.median(metric)?;
        let k = self.mode("kernel")?.median(metric)?;
        (k != 0.0).then(|| vx / k)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}s per iperf3 run, median of {}; host uplinks: {}",
            self.duration_secs,
            self.repeat,
            if self.veth_offloads {
                "veth offloads on"
            } else {
                "checksums finished in software (wire-like)"
            }
        );
        let _ = write!(s, "{:<24}", "metric (median)");
        for m in &self.modes {
            let _ = write!(s, "{:>12}", m.mode);
        }
        let _ = writeln!(s, "{:>14}", "vxnet/kernel");
        for metric in Metric::ALL {
            let _ = write!(s, "{:<24}", metric.label());
            for m in &self.modes {
                let _ = write!(s, "{:>12}", fmt_value(m.median(metric)));
            }
            let _ = writeln!(s, "{:>14}", fmt_ratio(self.ratio(metric)));
        }
        for m in &self.modes {
            if let Some(e) = &m.error {
                let _ = writeln!(s, "{}: FAILED: {e}", m.mode);
            }
        }
        s
    }

    /// The JSON document written by `--json`.
    pub fn to_json(&self) -> Value {
        let modes: serde_json::Map<String, Value> = self
            .modes
            .iter()
            .map(|m| {
                let mut o = serde_json::Map::new();
                for metric in Metric::ALL {
                    o.insert(metric.key().into(), json!(m.median(metric)));
                }
                let samples: serde_json::Map<String, Value> = m
                    .samples
                    .iter()
                    .map(|(k, v)| (k.key().to_string(), json!(v)))
                    .collect();
                o.insert("samples".into(), Value::Object(samples));
                o.insert("error".into(), json!(m.error));
                (m.mode.clone(), Value::Object(o))
            })
            .collect();
        let ratios: serde_json::Map<String, Value> = Metric::ALL
            .iter()
            .map(|m| (m.key().to_string(), json!(self.ratio(*m))))
            .collect();
        let mut doc = machine_facts();
        let rest = json!({
            "duration_secs": self.duration_secs,
            "repeat": self.repeat,
            "veth_offloads": self.veth_offloads,
            "statistic": "median",
            "modes": Value::Object(modes),
            "ratio_vxnet_over_kernel": Value::Object(ratios),
        });
        if let Value::Object(rest) = rest {
            doc.extend(rest);
        }
        Value::Object(doc)
    }
}

/// The facts about this machine every report carries: `date` (UTC), `kernel`, `nproc`,
/// `cpu_model`. Results from different machines or kernels are not comparable without them.
pub fn machine_facts() -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("date".into(), json!(utc_now_iso8601()));
    m.insert("kernel".into(), json!(kernel_version()));
    m.insert(
        "nproc".into(),
        json!(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)),
    );
    m.insert("cpu_model".into(), json!(cpu_model()));
    m
}

/// [`machine_facts`] on one line, for the head of a table.
pub fn machine_line() -> String {
    let f = machine_facts();
    let text = |k: &str| {
        f.get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
    };
    format!(
        "{} | kernel {} | {} CPUs | {}",
        text("date").unwrap_or_default(),
        text("kernel").unwrap_or_default(),
        text("nproc").unwrap_or_default(),
        text("cpu_model").unwrap_or_default()
    )
}

/// A value for a table cell: `-` for none, fewer decimals for bigger numbers.
pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}x"))
}

/// `uname -r`.
fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The first `model name` of /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn utc_now_iso8601() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    iso8601(secs)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's civil-from-days).
fn iso8601(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(0);
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
