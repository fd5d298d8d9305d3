//! iperf3 between two namespaces, with its `-J` report parsed.
//!
//! Rules: every measurement starts a one-shot server (`iperf3 -s -1`), waits until it listens,
//! runs the client with a deadline of the test length plus slack, and reaps the server; nothing
//! is left running afterwards, even on error.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::cmd::{self, Background};
use crate::netns;
use crate::wait::{wait_for, POLL_INTERVAL};

/// iperf3's default port; each server lives in its own namespace, so it never collides.
pub const IPERF_PORT: u16 = 5201;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IperfTest {
    /// TCP bulk transfer with `streams` parallel connections (`-P`).
    Tcp {
        /// Parallel streams.
        streams: u32,
    },
    /// UDP at unlimited rate (`-b 0`) with `payload`-byte datagrams (`-l`).
    Udp {
        /// UDP payload length.
        payload: u32,
    },
    /// UDP at a fixed offered rate of `packets_per_second` datagrams of `payload` bytes
    /// (`-b` is in payload bits, so the rate is converted).
    UdpRate {
        /// UDP payload length.
        payload: u32,
        /// Datagrams the client sends per second.
        packets_per_second: u64,
    },
}

/// The receiver-side result of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IperfResult {
    /// Goodput seen by the receiver.
    pub bits_per_second: f64,
    /// UDP only: datagrams that arrived, per second.
    pub packets_per_second: Option<f64>,
    /// UDP only: percentage of datagrams lost.
    pub lost_percent: Option<f64>,
    /// TCP only: retransmitted segments (sender side).
    pub retransmits: Option<u64>,
    /// Bytes that arrived (receiver side); 0 when the report lacks them.
    pub bytes: f64,
    /// Length of the receiver's measurement, in seconds; 0 when the report lacks it.
    pub seconds: f64,
    /// UDP only: datagrams that arrived (sent minus lost).
    pub packets: Option<f64>,
}

/// Parses an `iperf3 -J` client report. Uses the receiver's sums (`sum_received`), which is
/// what arrived, not what was pushed into the sender's socket.
pub fn parse_iperf_json(text: &str) -> Result<IperfResult> {
    let v: Value = serde_json::from_str(text).context("iperf3 -J output is not JSON")?;
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        bail!("iperf3 reported an error: {err}");
    }
    let end = v
        .get("end")
        .ok_or_else(|| anyhow!("iperf3 report has no `end` section"))?;
    let received = end
        .get("sum_received")
        .or_else(|| end.get("sum"))
        .ok_or_else(|| anyhow!("iperf3 report has neither end.sum_received nor end.sum"))?;
    let num = |obj: &Value, key: &str| obj.get(key).and_then(Value::as_f64);
    let bits_per_second = num(received, "bits_per_second")
        .ok_or_else(|| anyhow!("no bits_per_second in iperf3 report"))?;
    let is_udp = v
        .pointer("/start/test_start/protocol")
        .and_then(Value::as_str)
        .is_some_and(|p| p.eq_ignore_ascii_case("udp"));
    let mut result = IperfResult {
        bits_per_second,
        bytes: num(received, "bytes").unwrap_or(0.0),
        seconds: num(received, "seconds").unwrap_or(0.0),
        ..IperfResult::default()
    };
    if is_udp {
        let packets = num(received, "packets").unwrap_or(0.0);
        let lost = num(received, "lost_packets").unwrap_or(0.0);
        let seconds = num(received, "seconds").unwrap_or(0.0);
        result.packets = Some((packets - lost).max(0.0));
        if seconds > 0.0 {
            result.packets_per_second = Some((packets - lost).max(0.0) / seconds);
        }
        result.lost_percent = num(received, "lost_percent");
    } else {
        result.retransmits = end.pointer("/sum_sent/retransmits").and_then(Value::as_u64);
    }
    Ok(result)
}

/// The `-b` value (payload bits per second) that makes iperf3 send `packets_per_second`
/// datagrams of `payload` bytes.
pub fn udp_rate_bits(payload: u32, packets_per_second: u64) -> u64 {
    packets_per_second * u64::from(payload) * 8
}

/// Waits (bounded) until something listens on TCP `port` in namespace `ns`.
pub fn wait_listening(ns: &str, port: u16, timeout: Duration) -> Result<()> {
    let filter = format!("sport = :{port}");
    wait_for(
        &format!("a TCP listener on port {port} in {ns}"),
        timeout,
        POLL_INTERVAL,
        || {
            let out = netns::exec_ok(ns, &["ss", "-Hltn", &filter])?;
            Ok((!out.trim().is_empty()).then_some(()))
        },
    )
}

/// Runs one iperf3 measurement: server in `server_ns` bound to `server_ip`, client in
/// `client_ns`. `log_dir` receives the server's log.
pub fn run_iperf(
    server_ns: &str,
    client_ns: &str,
    server_ip: &str,
    test: IperfTest,
    duration: Duration,
    log_dir: &Path,
) -> Result<IperfResult> {
    let port = IPERF_PORT.to_string();
    let log = log_dir.join(format!("iperf3-server-{server_ns}.log"));
    let server = Background::spawn(
        "iperf3 server",
        &mut netns::command(
            server_ns,
            &["iperf3", "-s", "-1", "-B", server_ip, "-p", &port],
        ),
        &log,
    )
    .context("starting iperf3 server (apt-get install -y iperf3)")?;
    wait_listening(server_ns, IPERF_PORT, Duration::from_secs(10))
        .with_context(|| format!("iperf3 server log: {}", server.log()))?;

    let secs = duration.as_secs().max(1).to_string();
    let mut args = vec!["iperf3", "-c", server_ip, "-p", &port, "-t", &secs, "-J"];
    let streams;
    let payload;
    let rate;
    match test {
        IperfTest::Tcp { streams: n } => {
            streams = n.to_string();
            args.extend(["-P", streams.as_str()]);
        }
        IperfTest::Udp { payload: len } => {
            payload = len.to_string();
            args.extend(["-u", "-l", payload.as_str(), "-b", "0"]);
        }
        IperfTest::UdpRate {
            payload: len,
            packets_per_second,
        } => {
            payload = len.to_string();
            rate = udp_rate_bits(len, packets_per_second).to_string();
            args.extend(["-u", "-l", payload.as_str(), "-b", rate.as_str()]);
        }
    }
    // iperf3 may spend a few seconds on setup and on the final exchange; 20 s of slack keeps a
    // slow machine from failing while still bounding a stuck transfer.
    let out = cmd::run(
        &mut netns::command(client_ns, &args),
        duration + Duration::from_secs(20),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let result = parse_iperf_json(&text).with_context(|| {
        format!(
            "iperf3 {test:?} {client_ns} -> {server_ip}: exit {}; stderr: {}; server log: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            server.log().trim()
        )
    })?;
    // The one-shot server exits after the client's report; give it a moment, then drop kills.
    let _ = server.wait(Duration::from_secs(3));
    Ok(result)
}

#[cfg(test)]
mod tests;
