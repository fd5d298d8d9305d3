//! Bench results: medians per metric and mode, vxnet against the kernel, the tables and the
//! JSON.
//!
//! Rules:
//! - A metric with no sample is shown as `-` and written as `null`, never as 0, so a failed
//!   measurement cannot pass for a slow one.
//! - The "vxnet vs kernel" column is vxnet's value as a multiple of the kernel's ("N.NN×")
//!   for metrics where a ratio means something; each table says which way is better. Loss
//!   shows both percentages instead (a ratio of two near-100 % losses says nothing, one of two
//!   near-0 % ones is noise); counts with no kernel counterpart show "—".
//! - The sealed modes are compared the same way in a column of their own: vxnet-sealed ÷
//!   kernel-wg ("sealed vs kernel-wg", [`SEALED`]) when kernel-wg was measured, else ÷
//!   userspace-wg ("sealed vs userspace-wg", [`SEALED_USERSPACE`]) when that was, else ÷
//!   kernel-wg (dashes). A comparison column is shown when the run has either of its modes
//!   ("vxnet vs kernel" also when it has no pair at all). The sealed modes' overlay MTU is
//!   smaller; the head of the tables lists every mode's. The JSON has every pairing's ratios.
//! - One table per group, in [`Group::ALL`] order; the sweep has its own table of steps.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::analysis::SweepStep;

/// The tables of the report, in print order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Throughput,
    Cpu,
    Batching,
    Drops,
    Sweep,
    Latency,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::Throughput,
        Group::Cpu,
        Group::Batching,
        Group::Drops,
        Group::Sweep,
        Group::Latency,
    ];

    fn title(self) -> &'static str {
        match self {
            Group::Throughput => "Throughput (higher is better)",
            Group::Cpu => {
                "CPU cost (lower is better; TCP 1-stream run per GB received, UDP unlimited \
                 run per packet received)"
            }
            Group::Batching => {
                "Batching (vxnet daemons, both hosts; higher means fewer syscalls per packet)"
            }
            Group::Drops => "Where UDP drops happen (unlimited 64 B run, packets, both hosts)",
            Group::Sweep => "UDP 64 B rate sweep (higher is better)",
            Group::Latency => "Latency (lower is better)",
        }
    }
}

/// How vxnet is compared with the kernel for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// vxnet ÷ kernel; higher is better.
    Higher,
    /// vxnet ÷ kernel; lower is better.
    Lower,
    /// Both percentages side by side.
    Loss,
    /// Nothing to compare.
    None,
}

/// Everything measured, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Tcp1Gbps,
    Tcp4Gbps,
    Udp64Kpps,
    Udp64LossPct,
    TcpDaemonCpuSPerGb,
    TcpSoftirqCpuSPerGb,
    TcpMachineCpuSPerGb,
    UdpDaemonCpuUsPerPkt,
    UdpSoftirqCpuUsPerPkt,
    UdpMachineCpuUsPerPkt,
    UdpSwitchesPerPkt,
    TcpDgramsPerRecvmmsg,
    TcpDgramsPerSendmmsg,
    TcpFramesPerTapRead,
    TcpFramesPerTapWrite,
    UdpDgramsPerRecvmmsg,
    UdpDgramsPerSendmmsg,
    UdpFramesPerTapRead,
    UdpFramesPerTapWrite,
    DropOverlayDevice,
    DropHostRcvbuf,
    DropHostInErrors,
    DropContainerRcvbuf,
    DropContainerLink,
    SweepMaxKpps01,
    SweepMaxKpps1,
    RttP50Us,
    RttAvgUs,
    RttP99Us,
    RttP999Us,
    PingLossPct,
    LoadRttP50Us,
    LoadRttP99Us,
}

impl Metric {
    pub const ALL: [Metric; 33] = [
        Metric::Tcp1Gbps,
        Metric::Tcp4Gbps,
        Metric::Udp64Kpps,
        Metric::Udp64LossPct,
        Metric::TcpDaemonCpuSPerGb,
        Metric::TcpSoftirqCpuSPerGb,
        Metric::TcpMachineCpuSPerGb,
        Metric::UdpDaemonCpuUsPerPkt,
        Metric::UdpSoftirqCpuUsPerPkt,
        Metric::UdpMachineCpuUsPerPkt,
        Metric::UdpSwitchesPerPkt,
        Metric::TcpDgramsPerRecvmmsg,
        Metric::TcpDgramsPerSendmmsg,
        Metric::TcpFramesPerTapRead,
        Metric::TcpFramesPerTapWrite,
        Metric::UdpDgramsPerRecvmmsg,
        Metric::UdpDgramsPerSendmmsg,
        Metric::UdpFramesPerTapRead,
        Metric::UdpFramesPerTapWrite,
        Metric::DropOverlayDevice,
        Metric::DropHostRcvbuf,
        Metric::DropHostInErrors,
        Metric::DropContainerRcvbuf,
        Metric::DropContainerLink,
        Metric::SweepMaxKpps01,
        Metric::SweepMaxKpps1,
        Metric::RttP50Us,
        Metric::RttAvgUs,
        Metric::RttP99Us,
        Metric::RttP999Us,
        Metric::PingLossPct,
        Metric::LoadRttP50Us,
        Metric::LoadRttP99Us,
    ];

    /// JSON key, table label, group, comparison.
    fn spec(self) -> (&'static str, &'static str, Group, Compare) {
        use Compare::{Higher, Loss, Lower};
        use Group::*;
        match self {
            Metric::Tcp1Gbps => (
                "tcp_1_stream_gbit_s",
                "TCP 1 stream, Gbit/s",
                Throughput,
                Higher,
            ),
            Metric::Tcp4Gbps => (
                "tcp_4_streams_gbit_s",
                "TCP 4 streams, Gbit/s",
                Throughput,
                Higher,
            ),
            Metric::Udp64Kpps => (
                "udp_64b_kpackets_s",
                "UDP 64 B unlimited, rx kpkt/s",
                Throughput,
                Higher,
            ),
            Metric::Udp64LossPct => (
                "udp_64b_loss_percent",
                "UDP 64 B unlimited, loss %",
                Throughput,
                Loss,
            ),
            Metric::TcpDaemonCpuSPerGb => (
                "tcp_cpu_daemons_s_per_gb",
                "TCP: daemons, CPU s/GB",
                Cpu,
                Lower,
            ),
            Metric::TcpSoftirqCpuSPerGb => (
                "tcp_cpu_softirq_s_per_gb",
                "TCP: softirq, CPU s/GB",
                Cpu,
                Lower,
            ),
            Metric::TcpMachineCpuSPerGb => (
                "tcp_cpu_machine_s_per_gb",
                "TCP: whole machine, CPU s/GB",
                Cpu,
                Lower,
            ),
            Metric::UdpDaemonCpuUsPerPkt => (
                "udp_cpu_daemons_us_per_packet",
                "UDP: daemons, CPU us/pkt",
                Cpu,
                Lower,
            ),
            Metric::UdpSoftirqCpuUsPerPkt => (
                "udp_cpu_softirq_us_per_packet",
                "UDP: softirq, CPU us/pkt",
                Cpu,
                Lower,
            ),
            Metric::UdpMachineCpuUsPerPkt => (
                "udp_cpu_machine_us_per_packet",
                "UDP: whole machine, CPU us/pkt",
                Cpu,
                Lower,
            ),
            Metric::UdpSwitchesPerPkt => (
                "udp_daemon_context_switches_per_packet",
                "UDP: daemon ctx switches/pkt",
                Cpu,
                Lower,
            ),
            Metric::TcpDgramsPerRecvmmsg => (
                "tcp_datagrams_per_recvmmsg",
                "TCP: datagrams per recvmmsg",
                Batching,
                Compare::None,
            ),
            Metric::TcpDgramsPerSendmmsg => (
                "tcp_datagrams_per_sendmmsg",
                "TCP: datagrams per sendmmsg",
                Batching,
                Compare::None,
            ),
            Metric::TcpFramesPerTapRead => (
                "tcp_frames_per_tap_read",
                "TCP: frames per TAP read",
                Batching,
                Compare::None,
            ),
            Metric::TcpFramesPerTapWrite => (
                "tcp_frames_per_tap_write",
                "TCP: frames per TAP write",
                Batching,
                Compare::None,
            ),
            Metric::UdpDgramsPerRecvmmsg => (
                "udp_datagrams_per_recvmmsg",
                "UDP: datagrams per recvmmsg",
                Batching,
                Compare::None,
            ),
            Metric::UdpDgramsPerSendmmsg => (
                "udp_datagrams_per_sendmmsg",
                "UDP: datagrams per sendmmsg",
                Batching,
                Compare::None,
            ),
            Metric::UdpFramesPerTapRead => (
                "udp_frames_per_tap_read",
                "UDP: frames per TAP read",
                Batching,
                Compare::None,
            ),
            Metric::UdpFramesPerTapWrite => (
                "udp_frames_per_tap_write",
                "UDP: frames per TAP write",
                Batching,
                Compare::None,
            ),
            Metric::DropOverlayDevice => (
                "drops_overlay_device",
                "TAP tx_dropped / vx0 dropped",
                Drops,
                Compare::None,
            ),
            Metric::DropHostRcvbuf => (
                "drops_host_udp_rcvbuf_errors",
                "host UDP RcvbufErrors",
                Drops,
                Compare::None,
            ),
            Metric::DropHostInErrors => (
                "drops_host_udp_in_errors",
                "host UDP InErrors",
                Drops,
                Compare::None,
            ),
            Metric::DropContainerRcvbuf => (
                "drops_container_udp_rcvbuf_errors",
                "container UDP RcvbufErrors",
                Drops,
                Compare::None,
            ),
            Metric::DropContainerLink => (
                "drops_container_link",
                "container links rx+tx dropped",
                Drops,
                Compare::None,
            ),
            Metric::SweepMaxKpps01 => (
                "sweep_max_kpackets_s_loss_0_1_percent",
                "max offered kpkt/s, loss <= 0.1 %",
                Sweep,
                Higher,
            ),
            Metric::SweepMaxKpps1 => (
                "sweep_max_kpackets_s_loss_1_percent",
                "max offered kpkt/s, loss <= 1 %",
                Sweep,
                Higher,
            ),
            Metric::RttP50Us => ("ping_rtt_p50_us", "ping RTT p50, us", Latency, Lower),
            Metric::RttAvgUs => ("ping_rtt_avg_us", "ping RTT mean, us", Latency, Lower),
            Metric::RttP99Us => ("ping_rtt_p99_us", "ping RTT p99, us", Latency, Lower),
            Metric::RttP999Us => ("ping_rtt_p99_9_us", "ping RTT p99.9, us", Latency, Lower),
            Metric::PingLossPct => ("ping_loss_percent", "ping loss %", Latency, Loss),
            Metric::LoadRttP50Us => (
                "ping_under_tcp_load_rtt_p50_us",
                "under TCP load: RTT p50, us",
                Latency,
                Lower,
            ),
            Metric::LoadRttP99Us => (
                "ping_under_tcp_load_rtt_p99_us",
                "under TCP load: RTT p99, us",
                Latency,
                Lower,
            ),
        }
    }

    /// JSON key.
    pub fn key(self) -> &'static str {
        self.spec().0
    }

    /// Table label.
    pub fn label(self) -> &'static str {
        self.spec().1
    }

    pub fn group(self) -> Group {
        self.spec().2
    }

    pub fn compare(self) -> Compare {
        self.spec().3
    }
}

/// Two modes compared in a column of their own: `mode`'s value as a multiple of `baseline`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pairing {
    /// Column title.
    pub title: &'static str,
    pub mode: &'static str,
    pub baseline: &'static str,
    /// JSON key of the ratios.
    pub json_key: &'static str,
    /// What the column shows, for the head of the tables (after the title and a colon).
    pub explain: &'static str,
}

/// vxnet against kernel vxlan, both in the clear.
pub const PLAIN: Pairing = Pairing {
    title: "vxnet vs kernel",
    mode: "vxnet",
    baseline: "kernel",
    json_key: "ratio_vxnet_over_kernel",
    explain: "vxnet's value as a multiple of the kernel's (N.NN×); for loss, vxnet's % vs the \
              kernel's %",
};

/// Encrypted vxnet against kernel vxlan inside kernel WireGuard.
pub const SEALED: Pairing = Pairing {
    title: "sealed vs kernel-wg",
    mode: "vxnet-sealed",
    baseline: "kernel-wg",
    json_key: "ratio_vxnet_sealed_over_kernel_wg",
    explain: "vxnet-sealed's value as a multiple of kernel-wg's, the same way (--encrypted \
              network, AES-256-GCM, against kernel vxlan inside kernel WireGuard)",
};

/// Encrypted vxnet against kernel vxlan inside boringtun: the anchor where the kernel has no
/// WireGuard.
pub const SEALED_USERSPACE: Pairing = Pairing {
    title: "sealed vs userspace-wg",
    mode: "vxnet-sealed",
    baseline: "userspace-wg",
    json_key: "ratio_vxnet_sealed_over_userspace_wg",
    explain: "vxnet-sealed's value as a multiple of userspace-wg's, the same way (--encrypted \
              network, AES-256-GCM, against kernel vxlan inside boringtun, a userspace \
              WireGuard: the anchor where this kernel has no WireGuard, not the kernel's cost)",
};

/// The samples of one mode.
#[derive(Debug, Clone)]
pub struct ModeResult {
    pub mode: String,
    /// MTU of the endpoints' interfaces (the overlay's; the underlay's for `underlay`).
    pub mtu: Option<u32>,
    pub samples: BTreeMap<Metric, Vec<f64>>,
    /// The rate sweep's steps, by rising offered rate.
    pub sweep: Vec<SweepStep>,
    /// Every RTT of the idle latency runs, all rounds, in microseconds (for the CDF).
    pub rtts_us: Vec<f64>,
    pub error: Option<String>,
}

impl ModeResult {
    pub fn new(mode: &str) -> ModeResult {
        ModeResult {
            mode: mode.to_string(),
            mtu: None,
            samples: BTreeMap::new(),
            sweep: Vec::new(),
            rtts_us: Vec::new(),
            error: None,
        }
    }

    pub fn add(&mut self, metric: Metric, value: f64) {
        self.samples.entry(metric).or_default().push(value);
    }

    /// Adds `value` if there is one: a figure that could not be computed stays absent.
    pub fn add_some(&mut self, metric: Metric, value: Option<f64>) {
        if let Some(v) = value {
            self.add(metric, v);
        }
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
    /// The host uplinks merged what they received (GRO, `--nic-gro`).
    pub nic_gro: bool,
    pub modes: Vec<ModeResult>,
    /// PNG files written next to the JSON, by what they show.
    pub plots: BTreeMap<String, String>,
}

impl Report {
    pub fn new(duration_secs: u64, repeat: u32, veth_offloads: bool) -> Report {
        Report {
            duration_secs,
            repeat,
            veth_offloads,
            nic_gro: false,
            modes: Vec::new(),
            plots: BTreeMap::new(),
        }
    }

    fn mode(&self, name: &str) -> Option<&ModeResult> {
        self.modes.iter().find(|m| m.mode == name)
    }

    /// `pair.mode` ÷ `pair.baseline` for `metric`, when both have a value, the baseline's is
    /// not zero and the metric is compared by ratio.
    pub fn ratio(&self, metric: Metric, pair: Pairing) -> Option<f64> {
        if !matches!(metric.compare(), Compare::Higher | Compare::Lower) {
            return None;
        }
        let vx = self.mode(pair.mode)?.median(metric)?;
        let k = self.mode(pair.baseline)?.median(metric)?;
        (k != 0.0).then(|| vx / k)
    }

    /// The cell of `metric` in `pair`'s column.
    pub fn comparison(&self, metric: Metric, pair: Pairing) -> String {
        let value = |mode: &str| self.mode(mode).and_then(|m| m.median(metric));
        match metric.compare() {
            Compare::Loss => fmt_loss_pair(value(pair.mode), value(pair.baseline)),
            Compare::Higher | Compare::Lower => fmt_ratio(self.ratio(metric, pair)),
            Compare::None => "—".into(),
        }
    }

    /// The sealed column's pairing: against kernel-wg if it was measured, else against
    /// userspace-wg if that was, else against kernel-wg.
    pub fn sealed_pairing(&self) -> Pairing {
        let measured = |name: &str| self.mode(name).is_some_and(|m| m.error.is_none());
        if !measured(SEALED.baseline) && measured(SEALED_USERSPACE.baseline) {
            SEALED_USERSPACE
        } else {
            SEALED
        }
    }

    /// The comparison columns this run has: "vxnet vs kernel" if either of its modes ran, the
    /// sealed column ([`Report::sealed_pairing`]) if any sealed mode ran, and "vxnet vs
    /// kernel" when there is none (a run of the underlay alone).
    fn pairings(&self) -> Vec<Pairing> {
        let ran = |names: &[&str]| self.modes.iter().any(|m| names.contains(&m.mode.as_str()));
        let mut shown = Vec::new();
        if ran(&[PLAIN.mode, PLAIN.baseline]) {
            shown.push(PLAIN);
        }
        if ran(&[SEALED.mode, SEALED.baseline, SEALED_USERSPACE.baseline]) {
            shown.push(self.sealed_pairing());
        }
        if shown.is_empty() {
            shown.push(PLAIN);
        }
        shown
    }

    /// The human-readable tables.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", machine_line());
        let _ = writeln!(
            s,
            "{}s per iperf3 run, median of {}; host uplinks: {}{}",
            self.duration_secs,
            self.repeat,
            if self.veth_offloads {
                "veth offloads on"
            } else {
                "checksums finished in software (wire-like)"
            },
            if self.nic_gro { ", GRO on receive" } else { "" }
        );
        let pairings = self.pairings();
        for p in &pairings {
            let _ = writeln!(s, "{}: {}", p.title, p.explain);
        }
        let mtus: Vec<String> = self
            .modes
            .iter()
            .filter_map(|m| m.mtu.map(|mtu| format!("{} {mtu}", m.mode)))
            .collect();
        if !mtus.is_empty() {
            let _ = writeln!(s, "endpoint MTU: {}", mtus.join(", "));
        }
        for group in Group::ALL {
            let metrics: Vec<Metric> = Metric::ALL
                .into_iter()
                .filter(|m| m.group() == group)
                .collect();
            let _ = writeln!(s, "\n{}", group.title());
            let _ = write!(s, "{:<34}", "metric (median)");
            for m in &self.modes {
                let _ = write!(s, "{:>w$}", m.mode, w = column_width(&m.mode));
            }
            let titles: Vec<&str> = pairings.iter().map(|p| p.title).collect();
            let _ = writeln!(s, "  {}", titles.join(" | "));
            for metric in metrics {
                let _ = write!(s, "{:<34}", metric.label());
                for m in &self.modes {
                    let v = m.median(metric);
                    let cell = if group == Group::Drops {
                        // Packet counts: whole numbers.
                        v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
                    } else {
                        fmt_value(v)
                    };
                    let _ = write!(s, "{cell:>w$}", w = column_width(&m.mode));
                }
                let cells: Vec<String> = pairings
                    .iter()
                    .map(|&p| {
                        // Padded to the title, so the second column lines up.
                        format!("{:<w$}", self.comparison(metric, p), w = p.title.len())
                    })
                    .collect();
                let _ = writeln!(s, "  {}", cells.join(" | ").trim_end());
            }
            if group == Group::Sweep {
                s.push_str(&self.sweep_table());
            }
        }
        if !self.plots.is_empty() {
            let _ = writeln!(s);
            for (what, path) in &self.plots {
                let _ = writeln!(s, "plot, {what}: {path}");
            }
        }
        for m in &self.modes {
            if let Some(e) = &m.error {
                let _ = writeln!(s, "{}: FAILED: {e}", m.mode);
            }
        }
        s
    }

    /// The sweep's steps: per offered rate, each mode's received rate and loss.
    fn sweep_table(&self) -> String {
        let mut rates: Vec<f64> = self
            .modes
            .iter()
            .flat_map(|m| m.sweep.iter().map(|st| st.offered_kpps))
            .collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        if rates.is_empty() {
            return String::new();
        }
        let mut s = String::new();
        let _ = write!(s, "  {:<16}", "offered kpkt/s");
        let heads: Vec<String> = self
            .modes
            .iter()
            .map(|m| format!("{}: sent -> rx (loss)", m.mode))
            .collect();
        // At least 28 wide, and two spaces before a long mode's head.
        let widths: Vec<usize> = heads
            .iter()
            .map(|h| (h.chars().count() + 2).max(28))
            .collect();
        for (head, w) in heads.iter().zip(&widths) {
            let _ = write!(s, "{head:>w$}");
        }
        let _ = writeln!(s);
        for rate in rates {
            let _ = write!(s, "  {:<16}", fmt_value(Some(rate)));
            for (m, w) in self.modes.iter().zip(&widths) {
                let cell = m
                    .sweep
                    .iter()
                    .find(|st| st.offered_kpps == rate)
                    .map_or_else(
                        || "-".to_string(),
                        |st| {
                            format!(
                                "{} -> {} ({})",
                                fmt_value(Some(st.sent_kpps)),
                                fmt_value(Some(st.received_kpps)),
                                fmt_pct(st.loss_pct)
                            )
                        },
                    );
                let _ = write!(s, "{cell:>w$}");
            }
            let _ = writeln!(s);
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
                let sweep: Vec<Value> = m
                    .sweep
                    .iter()
                    .map(|st| {
                        json!({
                            "offered_kpackets_s": st.offered_kpps,
                            "sent_kpackets_s": st.sent_kpps,
                            "received_kpackets_s": st.received_kpps,
                            "loss_percent": st.loss_pct,
                        })
                    })
                    .collect();
                o.insert("udp_sweep".into(), json!(sweep));
                o.insert("ping_rtt_samples".into(), json!(m.rtts_us.len()));
                o.insert("mtu".into(), json!(m.mtu));
                o.insert("error".into(), json!(m.error));
                (m.mode.clone(), Value::Object(o))
            })
            .collect();
        let ratios = |pair: Pairing| -> Value {
            Metric::ALL
                .iter()
                .map(|m| (m.key().to_string(), json!(self.ratio(*m, pair))))
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        let mut doc = machine_facts();
        let rest = json!({
            "duration_secs": self.duration_secs,
            "repeat": self.repeat,
            "veth_offloads": self.veth_offloads,
            "nic_gro": self.nic_gro,
            "statistic": "median",
            "modes": Value::Object(modes),
            PLAIN.json_key: ratios(PLAIN),
            SEALED.json_key: ratios(SEALED),
            SEALED_USERSPACE.json_key: ratios(SEALED_USERSPACE),
            "plots": json!(self.plots),
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

/// Width of a mode's table column: at least 10, and one space more than its name.
fn column_width(mode: &str) -> usize {
    (mode.chars().count() + 1).max(10)
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

/// vxnet as a multiple of the kernel: "0.85×"; "—" when there is no meaningful ratio.
pub fn fmt_ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.2}×"),
        _ => "—".into(),
    }
}

/// A loss percentage with as many decimals as small losses need.
pub fn fmt_pct(v: f64) -> String {
    if v == 0.0 || v >= 10.0 {
        format!("{v:.0} %")
    } else if v >= 0.1 {
        format!("{v:.1} %")
    } else {
        format!("{v:.3} %")
    }
}

/// The two losses side by side, "69 % vs 0.9 %"; "—" unless both were measured.
pub fn fmt_loss_pair(vxnet: Option<f64>, kernel: Option<f64>) -> String {
    match (vxnet, kernel) {
        (Some(v), Some(k)) => format!("{} vs {}", fmt_pct(v), fmt_pct(k)),
        _ => "—".into(),
    }
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
