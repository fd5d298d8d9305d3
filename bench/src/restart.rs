//! `vxnet-bench --scenario restart`: the restart window of a vxnet daemon. The TAP is
//! persistent, so when a daemon restarts the containers' interfaces and the bridge port stay and
//! only the packets of the window are lost; this measures how long that window is.
//!
//! On the two-host pair of the dataplane scenario (c1 on h0, c2 on h1, warmed up), each run
//! starts `ping -D -n -i 0.005 -W 1 -w 15 C2_IP` in c1, lets it run [`LEAD_IN`], stops h1's
//! daemon with SIGTERM (clean) or SIGKILL (crash), starts it again at once on the same data dir,
//! waits until ping has seen [`REPLIES_AFTER`] of replies again, and stops ping with SIGINT.
//! Per run, from ping's own `[epoch.micros]` reply timestamps and the wall clock at the kill:
//!
//! - **kill -> first reply**: the first reply after the old daemon was gone, minus the kill.
//!   The figure of the scenario.
//! - **outage**: that reply minus the last one before it (for SIGTERM the old daemon may still
//!   forward while it shuts down, so this can be shorter than the above).
//! - **lost echo requests**: transmitted − received of the whole ping run.
//! - **kill -> exit**: until the old daemon was reaped; **kill -> ready**: until
//!   `Lab::start_daemon` returned (the new daemon answers `network ls`, polled every 100 ms, so
//!   this is rounded up to that poll).
//!
//! Rules:
//! - The ping interval bounds the resolution of the reply figures: [`PING_INTERVAL`] while
//!   replies come, but [`PING_PACE_UNANSWERED`] across the outage. Asked for less than a clock
//!   tick, iputils ping sleeps its minimum interval (10 ms) whenever a request is unanswered, so
//!   the requests "lost" were sent 10 ms apart, not 5.
//! - Every ping is bounded by its deadline ([`PING_DEADLINE`]).
//! - The signals alternate within each repetition; a failed run is reported with its error (its
//!   figures stay out of the medians) and the other runs still go ahead as long as h1's daemon
//!   can be started again.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use vxnet_tests::cmd::signal_and_reap;
use vxnet_tests::lab::LabBuilder;
use vxnet_tests::netns;
use vxnet_tests::ping::parse_ping_output;
use vxnet_tests::scenario::{self, Pair, C2_IP};

use crate::report::{fmt_value, machine_facts, machine_line, median};

/// Between two echo requests; the resolution of the reply-based figures.
pub const PING_INTERVAL: Duration = Duration::from_millis(5);
/// How far apart iputils ping sends while a request is unanswered (its `MININTERVAL`), whatever
/// `-i` says below that: the resolution of the figures across the outage.
pub const PING_PACE_UNANSWERED: Duration = Duration::from_millis(10);
/// ping's `-w`: no run lasts longer than this.
pub const PING_DEADLINE: Duration = Duration::from_secs(15);
/// How long ping runs before the kill.
pub const LEAD_IN: Duration = Duration::from_millis(500);
/// How long replies must have come back before ping is stopped.
pub const REPLIES_AFTER: Duration = Duration::from_secs(1);
/// The host whose daemon is restarted (c2's).
pub const RESTARTED_HOST: usize = 1;
/// How long ping gets to print its summary after SIGINT.
const PING_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How the daemon is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: a clean shutdown.
    Term,
    /// SIGKILL: a crash.
    Kill,
}

impl Stop {
    pub const ALL: [Stop; 2] = [Stop::Term, Stop::Kill];

    pub fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Kill => "SIGKILL",
        }
    }

    fn signal(self) -> i32 {
        match self {
            Stop::Term => libc::SIGTERM,
            Stop::Kill => libc::SIGKILL,
        }
    }
}

/// What one kill-and-restart saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Kill -> first reply after the old daemon was gone.
    pub window_ms: f64,
    /// Last reply before that one -> that one.
    pub outage_ms: f64,
    /// RTT of that first reply: a long one means the request waited somewhere (a queue, ARP).
    pub first_reply_rtt_ms: Option<f64>,
    pub transmitted: u32,
    pub received: u32,
    /// Kill -> old daemon reaped.
    pub exit_ms: f64,
    /// Kill -> `start_daemon` returned.
    pub ready_ms: f64,
    /// Whether the old daemon exited on the signal by itself (false: SIGKILLed after 5 s).
    pub exited_on_signal: bool,
}

impl Run {
    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }
}

/// The metrics of the scenario, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMetric {
    Window,
    Outage,
    Lost,
    Exit,
    Ready,
}

impl RestartMetric {
    pub const ALL: [RestartMetric; 5] = [
        RestartMetric::Window,
        RestartMetric::Outage,
        RestartMetric::Lost,
        RestartMetric::Exit,
        RestartMetric::Ready,
    ];

    /// JSON key.
    pub fn key(self) -> &'static str {
        match self {
            RestartMetric::Window => "kill_to_first_reply_ms",
            RestartMetric::Outage => "outage_ms",
            RestartMetric::Lost => "lost_echo_requests",
            RestartMetric::Exit => "kill_to_exit_ms",
            RestartMetric::Ready => "kill_to_ready_ms",
        }
    }

    /// Table label.
    pub fn label(self) -> &'static str {
        match self {
            RestartMetric::Window => "kill -> first reply  ms",
            RestartMetric::Outage => "outage (no replies)  ms",
            RestartMetric::Lost => "lost echo requests",
            RestartMetric::Exit => "kill -> daemon exit  ms",
            RestartMetric::Ready => "kill -> daemon ready ms",
        }
    }

    fn of(self, run: &Run) -> f64 {
        match self {
            RestartMetric::Window => run.window_ms,
            RestartMetric::Outage => run.outage_ms,
            RestartMetric::Lost => f64::from(run.lost()),
            RestartMetric::Exit => run.exit_ms,
            RestartMetric::Ready => run.ready_ms,
        }
    }
}

/// The runs of one signal.
#[derive(Debug, Clone)]
pub struct SignalRuns {
    pub stop: Stop,
    pub runs: Vec<Run>,
    /// One per failed run.
    pub errors: Vec<String>,
}

impl SignalRuns {
    fn new(stop: Stop) -> SignalRuns {
        SignalRuns {
            stop,
            runs: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The samples of `metric`, in run order.
    pub fn samples(&self, metric: RestartMetric) -> Vec<f64> {
        self.runs.iter().map(|r| metric.of(r)).collect()
    }
}

fn min(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::min)
}

fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

/// The whole restart run.
#[derive(Debug, Clone)]
pub struct RestartReport {
    pub repeat: u32,
    pub signals: Vec<SignalRuns>,
    /// A failure before any run (building the pair, warming it up).
    pub setup_error: Option<String>,
}

impl RestartReport {
    pub fn new(repeat: u32) -> RestartReport {
        RestartReport {
            repeat,
            signals: Stop::ALL.iter().map(|&s| SignalRuns::new(s)).collect(),
            setup_error: None,
        }
    }

    fn signal_mut(&mut self, stop: Stop) -> &mut SignalRuns {
        let i = Stop::ALL.iter().position(|&s| s == stop).unwrap_or(0);
        &mut self.signals[i]
    }

    /// Whether anything failed.
    pub fn failed(&self) -> bool {
        self.setup_error.is_some() || self.signals.iter().any(|s| !s.errors.is_empty())
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", machine_line());
        let _ = writeln!(
            s,
            "restart: h{RESTARTED_HOST}'s daemon stopped and started again at once while c1 pings \
             c2 (ping -i {}; {} runs per signal)",
            PING_INTERVAL.as_secs_f64(),
            self.repeat,
        );
        let _ = writeln!(
            s,
            "the ping interval bounds the resolution of the reply figures: {} ms, and {} ms \
             across the outage (iputils' pace while a request is unanswered); daemon ready is \
             rounded up to the lab's 100 ms poll",
            PING_INTERVAL.as_millis(),
            PING_PACE_UNANSWERED.as_millis()
        );
        let _ = writeln!(
            s,
            "{:<9}{:<25}{:>4}{:>10}{:>10}{:>10}",
            "signal", "metric", "n", "median", "min", "max"
        );
        for sig in &self.signals {
            for m in RestartMetric::ALL {
                let v = sig.samples(m);
                let _ = writeln!(
                    s,
                    "{:<9}{:<25}{:>4}{:>10}{:>10}{:>10}",
                    sig.stop.name(),
                    m.label(),
                    v.len(),
                    fmt_value(median(&v)),
                    fmt_value(min(&v)),
                    fmt_value(max(&v)),
                );
            }
            let forced = sig.runs.iter().filter(|r| !r.exited_on_signal).count();
            if sig.stop == Stop::Term && forced > 0 {
                let _ = writeln!(
                    s,
                    "{:<9}{forced} run(s) ignored SIGTERM and were SIGKILLed",
                    sig.stop.name()
                );
            }
        }
        if let Some(e) = &self.setup_error {
            let _ = writeln!(s, "setup: FAILED: {e}");
        }
        for sig in &self.signals {
            for e in &sig.errors {
                let _ = writeln!(s, "{}: FAILED: {e}", sig.stop.name());
            }
        }
        s
    }

    /// The JSON document written by `--json`.
    pub fn to_json(&self) -> Value {
        let mut doc = machine_facts();
        let signals: serde_json::Map<String, Value> = self
            .signals
            .iter()
            .map(|sig| {
                let metrics: serde_json::Map<String, Value> = RestartMetric::ALL
                    .iter()
                    .map(|m| {
                        let v = sig.samples(*m);
                        (
                            m.key().to_string(),
                            json!({
                                "n": v.len(),
                                "median": median(&v),
                                "min": min(&v),
                                "max": max(&v),
                                "samples": v,
                            }),
                        )
                    })
                    .collect();
                let runs: Vec<Value> = sig
                    .runs
                    .iter()
                    .map(|r| {
                        json!({
                            "kill_to_first_reply_ms": r.window_ms,
                            "outage_ms": r.outage_ms,
                            "first_reply_rtt_ms": r.first_reply_rtt_ms,
                            "transmitted": r.transmitted,
                            "received": r.received,
                            "lost_echo_requests": r.lost(),
                            "kill_to_exit_ms": r.exit_ms,
                            "kill_to_ready_ms": r.ready_ms,
                            "exited_on_signal": r.exited_on_signal,
                        })
                    })
                    .collect();
                (
                    sig.stop.name().to_string(),
                    json!({
                        "metrics": metrics,
                        "runs": runs,
                        "errors": sig.errors,
                    }),
                )
            })
            .collect();
        doc.insert("scenario".into(), json!("restart"));
        doc.insert("repeat".into(), json!(self.repeat));
        doc.insert(
            "ping_interval_ms".into(),
            json!(PING_INTERVAL.as_secs_f64() * 1e3),
        );
        doc.insert(
            "ping_pace_unanswered_ms".into(),
            json!(PING_PACE_UNANSWERED.as_secs_f64() * 1e3),
        );
        doc.insert("restarted_host".into(), json!(RESTARTED_HOST));
        doc.insert("setup_error".into(), json!(self.setup_error));
        doc.insert("signals".into(), Value::Object(signals));
        Value::Object(doc)
    }
}

/// Builds the pair on `builder` and runs `repeat` kill-and-restarts per signal.
pub fn run(builder: LabBuilder, repeat: u32) -> RestartReport {
    let mut report = RestartReport::new(repeat);
    eprintln!("[restart] building the vxnet pair");
    let pair = match scenario::vxnet_pair_on(builder) {
        Ok(p) => p,
        Err(e) => {
            report.setup_error = Some(format!("{e:#}"));
            return report;
        }
    };
    for round in 1..=repeat {
        for stop in Stop::ALL {
            eprintln!("[restart] round {round}/{repeat}: {}", stop.name());
            match one_run(&pair, stop) {
                Ok(r) => {
                    eprintln!(
                        "[restart]   kill -> first reply {:.1} ms (its RTT {}), outage {:.1} ms, \
                         {} lost, exit after {:.1} ms, ready after {:.0} ms",
                        r.window_ms,
                        r.first_reply_rtt_ms
                            .map_or_else(|| "?".into(), |t| format!("{t} ms")),
                        r.outage_ms,
                        r.lost(),
                        r.exit_ms,
                        r.ready_ms
                    );
                    report.signal_mut(stop).runs.push(r);
                }
                Err(e) => {
                    eprintln!("[restart]   failed: {e:#}");
                    report
                        .signal_mut(stop)
                        .errors
                        .push(format!("round {round}: {e:#}"));
                    let host = pair.lab.host(RESTARTED_HOST);
                    if !host.daemon_running() {
                        if let Err(e) = host.start_daemon() {
                            report.setup_error =
                                Some(format!("h{RESTARTED_HOST}'s daemon did not start: {e:#}"));
                            return report;
                        }
                    }
                }
            }
        }
    }
    report
}

/// Seconds since the epoch, like ping -D's timestamps.
fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One kill-and-restart of h1's daemon under a running ping.
fn one_run(pair: &Pair, stop: Stop) -> Result<Run> {
    let ping = BackgroundPing::start(&pair.c1.ns, C2_IP)?;
    thread::sleep(LEAD_IN);
    if ping.replies().is_empty() {
        let out = ping.finish()?;
        bail!("no replies before the kill; ping said:\n{out}");
    }
    let host = pair.lab.host(RESTARTED_HOST);
    let kill_wall = epoch_secs(SystemTime::now());
    let killed = Instant::now();
    let status = host
        .kill_daemon(stop.signal())
        .with_context(|| format!("stopping h{RESTARTED_HOST}'s daemon"))?;
    let exit = killed.elapsed();
    let started = host.start_daemon();
    let ready = killed.elapsed();
    if let Err(e) = started {
        let _ = ping.finish();
        return Err(e.context(format!("restarting h{RESTARTED_HOST}'s daemon")));
    }
    let exit_wall = kill_wall + exit.as_secs_f64();
    // Replies again for REPLIES_AFTER, or ping's deadline.
    let seen = ping.wait_replies_after(exit_wall, REPLIES_AFTER);
    let text = ping.finish()?;
    let replies = parse_timestamped_replies(&text);
    let stats = parse_ping_output(&text).context("ping output")?;
    if !seen {
        bail!(
            "no {REPLIES_AFTER:?} of replies after the restart within ping's deadline \
             ({} sent, {} received); daemon log:\n{}",
            stats.transmitted,
            stats.received,
            host.log_tail(20)
        );
    }
    let gap = restart_gap(&replies, exit_wall)
        .ok_or_else(|| anyhow!("no reply after the restart in ping's output"))?;
    Ok(Run {
        window_ms: (gap.first_after.at - kill_wall) * 1e3,
        outage_ms: gap
            .last_before
            .map_or(f64::NAN, |b| (gap.first_after.at - b) * 1e3),
        first_reply_rtt_ms: gap.first_after.rtt_ms,
        transmitted: stats.transmitted,
        received: stats.received,
        exit_ms: exit.as_secs_f64() * 1e3,
        ready_ms: ready.as_secs_f64() * 1e3,
        exited_on_signal: status.is_some(),
    })
}

/// One echo reply of `ping -D`: its `[epoch.micros]` timestamp and `icmp_seq`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    pub at: f64,
    pub seq: u32,
    /// `time=`, if printed.
    pub rtt_ms: Option<f64>,
}

/// The reply in a `ping -D` line such as
/// `[1765100000.123456] 64 bytes from 10.10.0.3: icmp_seq=12 ttl=64 time=0.2 ms`; `None` for
/// other lines (errors, duplicates, the summary).
pub fn parse_timestamped_reply(line: &str) -> Option<Reply> {
    if !line.contains("bytes from") || line.contains("(DUP!)") {
        return None;
    }
    let rest = line.trim_start().strip_prefix('[')?;
    let (stamp, rest) = rest.split_once(']')?;
    let at: f64 = stamp.trim().parse().ok()?;
    let seq = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("icmp_seq="))?
        .parse()
        .ok()?;
    let rtt_ms = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("time="))
        .and_then(|t| t.trim_end_matches("ms").parse().ok());
    Some(Reply { at, seq, rtt_ms })
}

/// Every reply in `ping -D` output, in arrival order.
pub fn parse_timestamped_replies(text: &str) -> Vec<Reply> {
    text.lines().filter_map(parse_timestamped_reply).collect()
}

/// The replies on either side of a restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    /// The last reply at or before the old daemon was gone, if any.
    pub last_before: Option<f64>,
    /// The first reply after it.
    pub first_after: Reply,
}

/// The gap in `replies` around `gone` (epoch seconds): no daemon forwards after it until the new
/// one runs, so the first reply after it came through the restarted daemon.
pub fn restart_gap(replies: &[Reply], gone: f64) -> Option<Gap> {
    let first_after = *replies.iter().find(|r| r.at > gone)?;
    let last_before = replies
        .iter()
        .map(|r| r.at)
        .filter(|&t| t <= gone)
        .reduce(f64::max);
    Some(Gap {
        last_before,
        first_after,
    })
}

/// What the reader thread has seen of ping's stdout.
#[derive(Debug, Default)]
struct Seen {
    text: String,
    reply_times: Vec<f64>,
}

/// `ping -D` from a namespace in the background, its stdout read as it comes.
struct BackgroundPing {
    child: Child,
    seen: Arc<Mutex<Seen>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
}

impl BackgroundPing {
    fn start(ns: &str, ip: &str) -> Result<BackgroundPing> {
        let interval = format!("{:.3}", PING_INTERVAL.as_secs_f64());
        let deadline = PING_DEADLINE.as_secs().to_string();
        // `ip netns exec` execs ping in place, so the child's pid is ping's (SIGINT reaches it).
        let mut c = netns::command(
            ns,
            &[
                "ping", "-D", "-n", "-i", &interval, "-W", "1", "-w", &deadline, ip,
            ],
        );
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ping")?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let out = child.stdout.take().context("ping's stdout")?;
        let err = child.stderr.take().context("ping's stderr")?;
        let sink = Arc::clone(&seen);
        let stdout = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut s = lock(&sink);
                if let Some(r) = parse_timestamped_reply(&line) {
                    s.reply_times.push(r.at);
                }
                s.text.push_str(&line);
                s.text.push('\n');
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(err).read_to_string(&mut text);
            text
        });
        Ok(BackgroundPing {
            child,
            seen,
            stdout: Some(stdout),
            stderr: Some(stderr),
            started: Instant::now(),
        })
    }

    /// Reply timestamps so far.
    fn replies(&self) -> Vec<f64> {
        lock(&self.seen).reply_times.clone()
    }

    /// Waits until the replies after `after` (epoch seconds) span `span`; false if ping ended
    /// (its deadline) first.
    fn wait_replies_after(&self, after: f64, span: Duration) -> bool {
        let limit = PING_DEADLINE + Duration::from_secs(1);
        while self.started.elapsed() < limit {
            {
                let s = lock(&self.seen);
                let mut later = s.reply_times.iter().filter(|&&t| t > after);
                if let Some(first) = later.next() {
                    let last = s.reply_times.last().copied().unwrap_or(*first);
                    if last - first >= span.as_secs_f64() {
                        return true;
                    }
                }
            }
            if self.stdout.as_ref().is_some_and(JoinHandle::is_finished) {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Stops ping with SIGINT (it prints its summary) and returns all it printed.
    fn finish(mut self) -> Result<String> {
        signal_and_reap(&mut self.child, libc::SIGINT, PING_STOP_TIMEOUT);
        if let Some(h) = self.stdout.take() {
            let _ = h.join();
        }
        let err = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut text = std::mem::take(&mut lock(&self.seen).text);
        if !err.trim().is_empty() {
            // Kept for the summary parser's error message; no reply lines in there.
            text.push_str(&err);
        }
        Ok(text)
    }
}

impl Drop for BackgroundPing {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests;
