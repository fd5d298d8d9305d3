//! Counters read before and after a measured run, and what their differences say: CPU per GB
//! and per packet, context switches per packet, datagrams per syscall, and where drops happen.
//!
//! Rules:
//! - A snapshot reads everything at once, right before or after the iperf3 run, so the window
//!   includes iperf3's own start and end (about a second, with little traffic): CPU per unit is
//!   a slight overestimate, the same for every mode.
//! - Daemon figures exist where a mode has daemons: CPU and context switches of the vxnet
//!   daemons, or of the boringtun processes in `userspace-wg`; syscalls only for vxnet. The
//!   other kernel modes report the machine and softirq only. Counters that cannot be read are
//!   absent, not 0.
//! - Everything is summed over both hosts: for one flow, sender and receiver work both count.

use std::path::PathBuf;

use serde_json::Value;

use crate::analysis::{parse_link_drops, parse_snmp_udp, LinkDrops, UdpSnmp};
use crate::procfs::{self, MachineTicks, ProcessSample};
use vxnet_tests::lab::Lab;
use vxnet_tests::netns;

/// Where the counters of one topology are.
pub struct Sites {
    /// Host namespaces (both hosts).
    pub host_ns: Vec<String>,
    /// Container namespaces (empty for the underlay, whose endpoints are the hosts).
    pub container_ns: Vec<String>,
    /// Pids of the daemons: vxnet's, or the lab's boringtun processes.
    pub daemon_pids: Vec<u32>,
    /// vxnet hosts' sandbox namespace files (the TAPs are there).
    pub sandboxes: Vec<PathBuf>,
    /// Whether the hosts run vxnet (stats over the CLI) or kernel vxlan (`vx0`).
    pub vxnet: bool,
    /// Whether the hosts carry an overlay at all.
    pub overlay: bool,
}

impl Sites {
    pub fn of(lab: &Lab, hosts: usize, container_ns: Vec<String>, vxnet: bool) -> Sites {
        let overlay = !container_ns.is_empty();
        let hosts: Vec<_> = (0..hosts).map(|i| lab.host(i)).collect();
        Sites {
            host_ns: hosts.iter().map(|h| h.ns().to_string()).collect(),
            container_ns,
            daemon_pids: if vxnet {
                hosts.iter().filter_map(|h| h.daemon_pid()).collect()
            } else {
                lab.boringtun_pids()
            },
            sandboxes: if vxnet {
                hosts.iter().flat_map(|h| h.sandbox_namespaces()).collect()
            } else {
                Vec::new()
            },
            vxnet,
            overlay,
        }
    }
}

/// vxnet's own counters, both hosts summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VxnetCounters {
    /// Wire frames delivered into TAPs.
    pub rx_frames: u64,
    /// Datagrams sent to the wire.
    pub tx_frames: u64,
    pub recvmmsg: u64,
    /// `sendmmsg` calls plus single fallback sends.
    pub sends: u64,
    pub tap_reads: u64,
    pub tap_writes: u64,
}

/// Parses `vxnet stats --format json`: traffic of every network and the `Syscalls` key.
pub fn parse_vxnet_stats(json: &str) -> Option<VxnetCounters> {
    let v: Value = serde_json::from_str(json).ok()?;
    let calls = v.get("Syscalls")?;
    let call = |k: &str| calls.get(k).and_then(Value::as_u64);
    let mut c = VxnetCounters {
        recvmmsg: call("recvmmsg")?,
        sends: call("sendmmsg")? + call("send_fallback").unwrap_or(0),
        tap_reads: call("tap_reads")?,
        tap_writes: call("tap_writes")?,
        ..VxnetCounters::default()
    };
    for n in v.get("networks")?.as_array()? {
        c.rx_frames += n.get("RxFrames").and_then(Value::as_u64)?;
        c.tx_frames += n.get("TxFrames").and_then(Value::as_u64)?;
    }
    Some(c)
}

/// Everything read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub machine: Option<MachineTicks>,
    pub daemons: Option<ProcessSample>,
    pub vxnet: Option<VxnetCounters>,
    /// TAP tx_dropped (vxnet) or vx0 rx+tx dropped (kernel vxlan).
    pub overlay_dropped: Option<u64>,
    pub host_udp: Option<UdpSnmp>,
    pub container_udp: Option<UdpSnmp>,
    pub container_links: Option<LinkDrops>,
}

fn sum_opt<T, I: IntoIterator<Item = Option<T>>>(items: I, add: impl Fn(T, T) -> T) -> Option<T> {
    let mut it = items.into_iter();
    let first = it.next()??;
    it.try_fold(first, |acc, x| Some(add(acc, x?)))
}

fn snmp_in(ns: &str) -> Option<UdpSnmp> {
    // /proc/net follows the reader's network namespace.
    parse_snmp_udp(&netns::exec_ok(ns, &["cat", "/proc/net/snmp"]).ok()?)
}

fn add_snmp(a: UdpSnmp, b: UdpSnmp) -> UdpSnmp {
    UdpSnmp {
        rcvbuf_errors: a.rcvbuf_errors + b.rcvbuf_errors,
        in_errors: a.in_errors + b.in_errors,
    }
}

fn add_links(a: LinkDrops, b: LinkDrops) -> LinkDrops {
    LinkDrops {
        rx_dropped: a.rx_dropped + b.rx_dropped,
        tx_dropped: a.tx_dropped + b.tx_dropped,
    }
}

impl Snapshot {
    /// Reads the machine and daemon CPU only (cheap; for runs where drops do not matter).
    pub fn take(sites: &Sites, lab: &Lab, with_drops: bool) -> Snapshot {
        let mut s = Snapshot {
            machine: procfs::machine(),
            // None without daemons.
            daemons: sum_opt(
                sites.daemon_pids.iter().map(|&p| procfs::process(p)),
                |a, b| a + b,
            ),
            ..Snapshot::default()
        };
        if sites.vxnet {
            s.vxnet = sum_opt(
                (0..sites.host_ns.len()).map(|i| {
                    let out = lab
                        .host(i)
                        .vxnet_checked(&["stats", "--format", "json"])
                        .ok()?;
                    parse_vxnet_stats(&out)
                }),
                |a, b| VxnetCounters {
                    rx_frames: a.rx_frames + b.rx_frames,
                    tx_frames: a.tx_frames + b.tx_frames,
                    recvmmsg: a.recvmmsg + b.recvmmsg,
                    sends: a.sends + b.sends,
                    tap_reads: a.tap_reads + b.tap_reads,
                    tap_writes: a.tap_writes + b.tap_writes,
                },
            );
        }
        if !with_drops {
            return s;
        }
        s.host_udp = sum_opt(sites.host_ns.iter().map(|ns| snmp_in(ns)), add_snmp);
        if sites.overlay {
            s.container_udp = sum_opt(sites.container_ns.iter().map(|ns| snmp_in(ns)), add_snmp);
            s.container_links = sum_opt(
                sites.container_ns.iter().map(|ns| {
                    parse_link_drops(&netns::exec_ok(ns, &["ip", "-s", "-j", "link", "show"]).ok()?)
                }),
                add_links,
            );
            s.overlay_dropped = if sites.vxnet {
                sum_opt(
                    sites.sandboxes.iter().map(|sb| {
                        let out =
                            netns::exec_in_file(sb, &["ip", "-s", "-j", "link", "show", "vxtap0"])
                                .ok()?;
                        parse_link_drops(&String::from_utf8_lossy(&out.stdout))
                            .map(|d| d.tx_dropped)
                    }),
                    |a, b| a + b,
                )
            } else {
                sum_opt(
                    sites.host_ns.iter().map(|ns| {
                        let out =
                            netns::exec_ok(ns, &["ip", "-s", "-j", "link", "show", "vx0"]).ok()?;
                        parse_link_drops(&out).map(|d| d.rx_dropped + d.tx_dropped)
                    }),
                    |a, b| a + b,
                )
            };
        }
        s
    }
}

/// What changed between two snapshots, as figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub machine_cpu_s: Option<f64>,
    pub softirq_cpu_s: Option<f64>,
    pub daemon_cpu_s: Option<f64>,
    pub daemon_switches: Option<u64>,
    pub vxnet: Option<VxnetCounters>,
    pub overlay_dropped: Option<u64>,
    pub host_udp: Option<UdpSnmp>,
    pub container_udp: Option<UdpSnmp>,
    pub container_links: Option<LinkDrops>,
}

impl Delta {
    pub fn between(a: &Snapshot, b: &Snapshot, hz: f64) -> Delta {
        let sub = |x: u64, y: u64| y.saturating_sub(x);
        let both = |x: Option<MachineTicks>, y: Option<MachineTicks>| Some((x?, y?));
        let machine = both(a.machine, b.machine);
        let daemons = a.daemons.zip(b.daemons);
        Delta {
            machine_cpu_s: machine.map(|(x, y)| procfs::seconds_between(x.busy, y.busy, hz)),
            softirq_cpu_s: machine.map(|(x, y)| procfs::seconds_between(x.softirq, y.softirq, hz)),
            daemon_cpu_s: daemons.map(|(x, y)| procfs::seconds_between(x.ticks, y.ticks, hz)),
            daemon_switches: daemons.map(|(x, y)| sub(x.switches, y.switches)),
            vxnet: a.vxnet.zip(b.vxnet).map(|(x, y)| VxnetCounters {
                rx_frames: sub(x.rx_frames, y.rx_frames),
                tx_frames: sub(x.tx_frames, y.tx_frames),
                recvmmsg: sub(x.recvmmsg, y.recvmmsg),
                sends: sub(x.sends, y.sends),
                tap_reads: sub(x.tap_reads, y.tap_reads),
                tap_writes: sub(x.tap_writes, y.tap_writes),
            }),
            overlay_dropped: a
                .overlay_dropped
                .zip(b.overlay_dropped)
                .map(|(x, y)| sub(x, y)),
            host_udp: a.host_udp.zip(b.host_udp).map(|(x, y)| UdpSnmp {
                rcvbuf_errors: sub(x.rcvbuf_errors, y.rcvbuf_errors),
                in_errors: sub(x.in_errors, y.in_errors),
            }),
            container_udp: a.container_udp.zip(b.container_udp).map(|(x, y)| UdpSnmp {
                rcvbuf_errors: sub(x.rcvbuf_errors, y.rcvbuf_errors),
                in_errors: sub(x.in_errors, y.in_errors),
            }),
            container_links: a
                .container_links
                .zip(b.container_links)
                .map(|(x, y)| LinkDrops {
                    rx_dropped: sub(x.rx_dropped, y.rx_dropped),
                    tx_dropped: sub(x.tx_dropped, y.tx_dropped),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxnet_stats_with_syscalls() {
        let json = r#"{"networks":[{"Name":"net1","RxFrames":100,"TxFrames":40},
            {"Name":"net2","RxFrames":1,"TxFrames":2}],
            "Drops":{},"Syscalls":{"recvmmsg":10,"sendmmsg":5,"send_fallback":1,
            "tap_reads":7,"tap_writes":3}}"#;
        assert_eq!(
            parse_vxnet_stats(json),
            Some(VxnetCounters {
                rx_frames: 101,
                tx_frames: 42,
                recvmmsg: 10,
                sends: 6,
                tap_reads: 7,
                tap_writes: 3,
            })
        );
        // A daemon without the key gives no figure rather than zeros.
        assert_eq!(parse_vxnet_stats(r#"{"networks":[],"Drops":{}}"#), None);
    }

    #[test]
    fn sums_need_every_part() {
        assert_eq!(sum_opt([Some(1), Some(2)], |a, b| a + b), Some(3));
        assert_eq!(sum_opt([Some(1), None], |a, b| a + b), None);
        assert_eq!(sum_opt(Vec::<Option<u64>>::new(), |a, b| a + b), None);
    }

    #[test]
    fn deltas_subtract_and_convert_ticks() {
        let a = Snapshot {
            machine: Some(MachineTicks {
                busy: 1000,
                softirq: 100,
            }),
            daemons: Some(ProcessSample {
                ticks: 50,
                switches: 10,
            }),
            ..Snapshot::default()
        };
        let b = Snapshot {
            machine: Some(MachineTicks {
                busy: 1400,
                softirq: 150,
            }),
            daemons: Some(ProcessSample {
                ticks: 250,
                switches: 1010,
            }),
            ..Snapshot::default()
        };
        let d = Delta::between(&a, &b, 100.0);
        assert_eq!(d.machine_cpu_s, Some(4.0));
        assert_eq!(d.softirq_cpu_s, Some(0.5));
        assert_eq!(d.daemon_cpu_s, Some(2.0));
        assert_eq!(d.daemon_switches, Some(1000));
        assert_eq!(d.vxnet, None);
    }
}
