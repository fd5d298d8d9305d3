//! Packet capture on the lab's underlay, decoded with tshark.
//!
//! Rules:
//! - [`Capture::start`] returns only once tcpdump says it is listening, so traffic generated
//!   after it is on the capture.
//! - The capture runs on the underlay bridge, which tcpdump puts in promiscuous mode; a Linux
//!   bridge in promiscuous mode passes every frame it forwards up to its own interface, so
//!   traffic between any two hosts is seen exactly once.
//! - Decoding forces UDP 4789 to VXLAN (`-d udp.port==4789,vxlan`), so the inner Ethernet/ARP/IP
//!   fields of encapsulated frames are available next to the outer ones. Fields that occur more
//!   than once (outer and inner `ip.src`) keep every occurrence, outer first.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::netns;

/// The tshark fields every captured [`Frame`] carries.
pub const FIELDS: &[&str] = &[
    "frame.number",
    "frame.len",
    "frame.protocols",
    "eth.src",
    "eth.dst",
    "ip.src",
    "ip.dst",
    "udp.srcport",
    "udp.dstport",
    "vxlan.flags",
    "vxlan.vni",
    "arp.opcode",
    "arp.src.proto_ipv4",
    "arp.dst.proto_ipv4",
    "icmp.type",
    "udp.checksum",
];

/// A running tcpdump.
pub struct Capture {
    child: Option<Child>,
    pcap: PathBuf,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Capture {
    /// Starts tcpdump in namespace `ns` on `iface`, writing `pcap`, with BPF `filter` (empty
    /// for everything). Waits (bounded) until tcpdump is listening.
    pub fn start(ns: &str, iface: &str, pcap: &Path, filter: &str) -> Result<Capture> {
        let pcap_arg = pcap.to_string_lossy().into_owned();
        // --immediate-mode: hand every packet to tcpdump at once; otherwise TPACKET_V3 holds
        // packets in a ring block for up to a second and a stop loses the last ones.
        // -U: write each packet to the file as it arrives. -Z root: do not drop privileges to
        // a user that cannot write into the lab's root-owned directory. -n: no DNS.
        let mut args = vec![
            "tcpdump",
            "--immediate-mode",
            "-Z",
            "root",
            "-i",
            iface,
            "-U",
            "-n",
            "-w",
            pcap_arg.as_str(),
        ];
        if !filter.is_empty() {
            args.push(filter);
        }
        let mut child = netns::command(ns, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start tcpdump (apt-get install -y tcpdump)")?;
        let Some(stderr) = child.stderr.take() else {
            bail!("tcpdump stderr was not captured");
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut text = String::new();
            let mut lines = BufReader::new(stderr);
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains("listening on") {
                    let _ = ready_tx.send(());
                }
                text.push_str(&line);
                line.clear();
            }
            let mut rest = String::new();
            let _ = lines.read_to_string(&mut rest);
            text.push_str(&rest);
            text
        });
        let mut capture = Capture {
            child: Some(child),
            pcap: pcap.to_path_buf(),
            stderr: Some(reader),
        };
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let log = capture.finish();
            bail!("tcpdump on {ns}/{iface} did not start listening: {log}");
        }
        Ok(capture)
    }

    /// Path of the pcap file being written.
    pub fn pcap(&self) -> &Path {
        &self.pcap
    }

    /// Stops tcpdump (after a short grace period for frames still in flight) and decodes the
    /// capture.
    pub fn stop(mut self) -> Result<Vec<Frame>> {
        thread::sleep(Duration::from_millis(200));
        let log = self.finish();
        if !self.pcap.exists() {
            bail!("tcpdump wrote no {}: {log}", self.pcap.display());
        }
        decode_pcap(&self.pcap)
    }

    /// SIGINT (tcpdump flushes and exits), bounded wait, then SIGKILL; returns tcpdump's stderr.
    fn finish(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            cmd::signal_and_reap(&mut child, libc::SIGINT, Duration::from_secs(5));
        }
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Decodes a pcap file into [`Frame`]s with tshark.
pub fn decode_pcap(pcap: &Path) -> Result<Vec<Frame>> {
    let mut c = Command::new("tshark");
    c.args(["-r"])
        .arg(pcap)
        .args(["-n", "-d", "udp.port==4789,vxlan", "-T", "fields"])
        .args([
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ]);
    for f in FIELDS {
        c.args(["-e", f]);
    }
    let text = cmd::run_ok(&mut c, DEFAULT_TIMEOUT)
        .context("decoding the capture (apt-get install -y tshark)")?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(Frame::parse_tshark_line)
        .collect()
}

/// One captured frame: every [`FIELDS`] entry with all its occurrences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    fields: BTreeMap<&'static str, Vec<String>>,
}

impl Frame {
    /// Parses one line of `tshark -T fields` output made with [`FIELDS`] (tab between fields,
    /// `,` between occurrences).
    pub fn parse_tshark_line(line: &str) -> Result<Frame> {
        let values: Vec<&str> = line.split('\t').collect();
        if values.len() != FIELDS.len() {
            bail!(
                "tshark line has {} fields, expected {}: {line:?}",
                values.len(),
                FIELDS.len()
            );
        }
        let fields = FIELDS
            .iter()
            .zip(values)
            .map(|(name, v)| {
                let occ = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                (*name, occ)
            })
            .collect();
        Ok(Frame { fields })
    }

    /// Every occurrence of `field` (outer first); empty when absent.
    pub fn get(&self, field: &str) -> &[String] {
        self.fields.get(field).map(Vec::as_slice).unwrap_or(&[])
    }

    fn first<T: std::str::FromStr>(&self, field: &str) -> Option<T> {
        self.get(field).first().and_then(|v| parse_number(v))
    }

    /// The frame's protocol stack, e.g. `eth:ethertype:ip:udp:vxlan:eth:ethertype:arp`.
    pub fn protocols(&self) -> &str {
        self.get("frame.protocols")
            .first()
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Whether tshark decoded a VXLAN header.
    pub fn is_vxlan(&self) -> bool {
        self.protocols().split(':').any(|p| p == "vxlan")
    }

    /// The VXLAN network identifier, if this is a VXLAN frame.
    pub fn vni(&self) -> Option<u32> {
        self.first("vxlan.vni")
    }

    /// The first 16 bits of the VXLAN header as tshark shows them: `0x0800` for a valid
    /// RFC 7348 header (I flag only).
    pub fn vxlan_flags(&self) -> Option<u32> {
        self.first("vxlan.flags")
    }

    /// Outer UDP destination port.
    pub fn udp_dst_port(&self) -> Option<u16> {
        self.first("udp.dstport")
    }

    /// Outer UDP source port.
    pub fn udp_src_port(&self) -> Option<u16> {
        self.first("udp.srcport")
    }

    /// Outer UDP checksum field (0: none, as RFC 7348 recommends).
    pub fn udp_checksum(&self) -> Option<u16> {
        self.first("udp.checksum")
    }

    /// Outer IPv4 source.
    pub fn outer_src(&self) -> Option<Ipv4Addr> {
        self.first("ip.src")
    }

    /// Outer IPv4 destination.
    pub fn outer_dst(&self) -> Option<Ipv4Addr> {
        self.first("ip.dst")
    }

    /// IPv4 source inside VXLAN (the container's address); `None` without an inner IPv4
    /// header (e.g. an inner ARP frame).
    pub fn inner_src(&self) -> Option<Ipv4Addr> {
        self.get("ip.src").get(1).and_then(|v| v.parse().ok())
    }

    /// IPv4 destination inside VXLAN; `None` without an inner IPv4 header.
    pub fn inner_dst(&self) -> Option<Ipv4Addr> {
        self.get("ip.dst").get(1).and_then(|v| v.parse().ok())
    }

    /// ARP opcode (1 request, 2 reply) of an ARP payload, inner or plain.
    pub fn arp_opcode(&self) -> Option<u16> {
        self.first("arp.opcode")
    }

    /// ARP opcode only when the ARP travelled inside VXLAN (an overlay ARP, not an underlay one).
    pub fn overlay_arp_opcode(&self) -> Option<u16> {
        if self.is_vxlan() {
            self.arp_opcode()
        } else {
            None
        }
    }

    /// ARP sender protocol address.
    pub fn arp_sender_ip(&self) -> Option<Ipv4Addr> {
        self.first("arp.src.proto_ipv4")
    }

    /// ARP target protocol address.
    pub fn arp_target_ip(&self) -> Option<Ipv4Addr> {
        self.first("arp.dst.proto_ipv4")
    }

    /// ICMP type of the innermost ICMP header (8 echo request, 0 echo reply).
    pub fn icmp_type(&self) -> Option<u8> {
        self.get("icmp.type").last().and_then(|v| parse_number(v))
    }
}

/// Parses decimal or `0x` hex, as tshark prints either depending on the field.
fn parse_number<T: std::str::FromStr>(v: &str) -> Option<T> {
    if let Some(hex) = v.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|n| n.to_string().parse().ok());
    }
    v.parse().ok()
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} {}->{} dport={:?} vni={:?} arp={:?} inner {:?}->{:?}",
            self.get("frame.number").first().map_or("?", String::as_str),
            self.protocols(),
            self.outer_src()
                .map_or_else(|| "?".into(), |a| a.to_string()),
            self.outer_dst()
                .map_or_else(|| "?".into(), |a| a.to_string()),
            self.udp_dst_port(),
            self.vni(),
            self.arp_opcode(),
            self.inner_src(),
            self.inner_dst(),
        )
    }
}

/// One line per frame, for assertion messages.
pub fn describe_frames(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| format!("  {f}\n"))
        .collect::<String>()
}

#[cfg(test)]
mod tests;
