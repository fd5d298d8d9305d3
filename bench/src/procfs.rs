//! CPU and context-switch accounting from /proc, sampled before and after a measured run.
//!
//! Rules:
//! - The machine's time comes from the first (`cpu`) line of /proc/stat, in clock ticks:
//!   busy = user + nice + system + irq + softirq + steal (idle and iowait are not work;
//!   guest time is already inside user). softirq is also kept on its own, because the kernel
//!   does most of the forwarding work of kernel vxlan and of the underlay there.
//! - A process's time is the sum over all its threads (/proc/PID/task/*/stat, utime + stime),
//!   and its context switches the sum of voluntary and nonvoluntary switches of the same
//!   threads (/proc/PID/task/*/status). A thread that exits between two samples takes its
//!   share with it; the daemon's forwarding threads live as long as their network.
//! - Parsers take text and return `None` when a field is missing, so a kernel that changes a
//!   format yields "no figure", never a wrong one.

use std::path::Path;

/// Ticks of the first line of /proc/stat that matter here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// Every non-idle tick, all CPUs.
    pub busy: u64,
    /// Ticks spent in softirq (a part of `busy`).
    pub softirq: u64,
}

/// Parses the `cpu` line of /proc/stat.
pub fn parse_proc_stat(text: &str) -> Option<MachineTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    if v.len() < 8 {
        return None;
    }
    Some(MachineTicks {
        busy: v[0] + v[1] + v[2] + v[5] + v[6] + v[7],
        softirq: v[6],
    })
}

/// utime + stime of one /proc/PID/task/TID/stat line, in ticks.
pub fn parse_task_stat(text: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields are counted from the
    // last ')'. After it come field 3 (state) onward; utime and stime are fields 14 and 15.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// voluntary + nonvoluntary context switches from one /proc/PID/task/TID/status.
pub fn parse_task_switches(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// A process's CPU ticks and context switches, all threads together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSample {
    pub ticks: u64,
    pub switches: u64,
}

impl std::ops::Add for ProcessSample {
    type Output = ProcessSample;
    fn add(self, o: ProcessSample) -> ProcessSample {
        ProcessSample {
            ticks: self.ticks + o.ticks,
            switches: self.switches + o.switches,
        }
    }
}

/// Reads /proc/stat; `None` if it cannot be read or parsed.
pub fn machine() -> Option<MachineTicks> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Sums every thread of `pid`; `None` if the process is gone.
pub fn process(pid: u32) -> Option<ProcessSample> {
    let tasks = std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("task")).ok()?;
    let mut sum = ProcessSample::default();
    for task in tasks.flatten() {
        let dir = task.path();
        // A thread may end while we read: skip it rather than fail the whole sample.
        let stat = std::fs::read_to_string(dir.join("stat")).ok();
        let status = std::fs::read_to_string(dir.join("status")).ok();
        sum.ticks += stat.as_deref().and_then(parse_task_stat).unwrap_or(0);
        sum.switches += status.as_deref().and_then(parse_task_switches).unwrap_or(0);
    }
    Some(sum)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on every Linux we know; the fallback).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// CPU seconds between two samples of a tick counter (0 if the counter went backwards).
pub fn seconds_between(before: u64, after: u64, hz: f64) -> f64 {
    after.saturating_sub(before) as f64 / hz
}

/// CPU seconds per gigabyte (10⁹ bytes) moved; `None` when nothing moved.
pub fn per_gb(cpu_seconds: f64, bytes: f64) -> Option<f64> {
    (bytes > 0.0).then(|| cpu_seconds / (bytes / 1e9))
}

/// CPU microseconds per packet; `None` when no packet arrived.
pub fn us_per_packet(cpu_seconds: f64, packets: f64) -> Option<f64> {
    (packets > 0.0).then(|| cpu_seconds * 1e6 / packets)
}

/// `count` per unit of `per` (e.g. datagrams per syscall); `None` when `per` is 0.
pub fn per(count: u64, per: u64) -> Option<f64> {
    (per > 0).then(|| count as f64 / per as f64)
}

#[cfg(test)]
mod tests;
