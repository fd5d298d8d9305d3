//! Two vxnet hosts with static peers: reachability, ARP proxying, the wire format, the absence
//! of kernel vxlan devices, and isolation between networks.

use std::net::Ipv4Addr;

use vxnet_tests::capture::describe_frames;
use vxnet_tests::netns;
use vxnet_tests::scenario::{self, C1_IP, C2_IP, SUBNET, VNI};
use vxnet_tests::{require_root, Frame, Lab};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("literal IPv4 address")
}

/// ARP frames on the overlay that belong to *c1 resolving someone*: its requests, and the
/// replies addressed to it. (Unicast probes c2's kernel may send to re-confirm c1 are not c1's
/// resolution and are left out.)
fn c1_arp(frames: &[Frame]) -> Vec<&Frame> {
    frames
        .iter()
        .filter(|f| match f.overlay_arp_opcode() {
            Some(1) => f.arp_sender_ip() == Some(ip(C1_IP)),
            Some(2) => f.arp_target_ip() == Some(ip(C1_IP)),
            _ => false,
        })
        .collect()
}

#[test]
fn static_peers_ping_both_ways() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let there = pair.c1.ping(C2_IP, 5).expect("ping c1 -> c2");
    let back = pair.c2.ping(C1_IP, 5).expect("ping c2 -> c1");
    assert_eq!(there.received, 5, "c1 -> c2 {there:?}");
    assert_eq!(back.received, 5, "c2 -> c1 {back:?}");
    // Endpoint MACs are 02:42 + the IPv4 address (README, "The command line").
    assert_eq!(
        pair.c1
            .neighbour_mac(C2_IP)
            .expect("ip neigh in c1")
            .as_deref(),
        Some("02:42:0a:0a:00:03")
    );
}

#[test]
fn arp_is_flooded_once_then_answered_by_the_proxy() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair_cold().expect("two vxnet hosts with net1");
    let lab = &pair.lab;

    // First ping ever: c1 knows nothing about c2, its ARP request must be flooded to the peer.
    let capture = lab.capture("udp port 4789").expect("capture 1");
    let first = pair.c1.ping(C2_IP, 2).expect("first ping");
    let first_frames = capture.stop().expect("decode capture 1");
    assert!(first.received >= 1, "first ping: {first:?}");
    let first_requests = c1_arp(&first_frames)
        .into_iter()
        .filter(|f| f.arp_opcode() == Some(1))
        .count();
    // Static peers, no shared cluster: the daemon cannot know c2 yet, so the request is
    // flooded, and with one peer that is exactly one copy.
    assert_eq!(
        first_requests,
        1,
        "c1's first ARP request must cross the wire exactly once:\n{}",
        describe_frames(&first_frames)
    );

    // Forget c2 in c1 and ping again: the daemon now knows c2's IP and MAC and must answer
    // the new ARP request itself.
    pair.c1
        .exec_ok(&["ip", "neigh", "flush", "all"])
        .expect("flush neighbours");
    assert_eq!(
        pair.c1.neighbour_mac(C2_IP).expect("ip neigh"),
        None,
        "flush did not flush"
    );
    let capture = lab.capture("udp port 4789").expect("capture 2");
    let second = pair.c1.ping(C2_IP, 2).expect("second ping");
    let second_frames = capture.stop().expect("decode capture 2");
    assert_eq!(second.received, 2, "second ping: {second:?}");
    let on_wire = c1_arp(&second_frames);
    assert!(
        on_wire.is_empty(),
        "ARP for c1 crossed the wire although the daemon could answer it:\n{}",
        describe_frames(&second_frames)
    );
    assert!(
        first_requests + on_wire.len() <= 1,
        "at most one ARP request in total"
    );
    // The proxy answered with c2's real MAC.
    assert_eq!(
        pair.c1.neighbour_mac(C2_IP).expect("ip neigh").as_deref(),
        Some("02:42:0a:0a:00:03")
    );
    // And the ICMP itself did cross, encapsulated.
    assert!(
        second_frames.iter().any(|f| f.icmp_type() == Some(8)),
        "no echo request on the wire:\n{}",
        describe_frames(&second_frames)
    );
}

#[test]
fn underlay_carries_vxlan_with_the_network_vni_on_4789() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let (h0, h1) = (pair.lab.host(0).addr(), pair.lab.host(1).addr());
    // Everything UDP, not just 4789: traffic on any other port would be a bug too.
    let capture = pair.lab.capture("udp").expect("capture");
    let there = pair.c1.ping(C2_IP, 3).expect("ping c1 -> c2");
    let back = pair.c2.ping(C1_IP, 3).expect("ping c2 -> c1");
    let frames = capture.stop().expect("decode");
    assert_eq!((there.received, back.received), (3, 3));
    let shown = describe_frames(&frames);
    assert!(!frames.is_empty(), "nothing captured");
    for f in &frames {
        assert!(
            f.is_vxlan(),
            "UDP that is not VXLAN on the underlay: {f}\n{shown}"
        );
        assert_eq!(f.udp_dst_port(), Some(4789), "{f}");
        assert_eq!(f.vni(), Some(VNI), "{f}");
        assert_eq!(
            f.vxlan_flags(),
            Some(0x0800),
            "flags word must be 0x08000000: {f}"
        );
        // The source port comes from a hash of the inner flow, in the ephemeral range, as RFC
        // 7348 recommends: never a fixed or well-known port.
        assert!(f.udp_src_port().is_some_and(|p| p >= 1024), "{f}");
        let outer = (f.outer_src(), f.outer_dst());
        assert!(
            outer == (Some(h0), Some(h1)) || outer == (Some(h1), Some(h0)),
            "VTEP addresses must be the hosts' advertise addresses: {f}"
        );
    }
    // Each direction's echo requests, inside VXLAN, from the right VTEP.
    let requests = |from: &str, vtep: Ipv4Addr| {
        frames
            .iter()
            .filter(|f| {
                f.icmp_type() == Some(8)
                    && f.inner_src() == Some(ip(from))
                    && f.outer_src() == Some(vtep)
            })
            .count()
    };
    assert_eq!(requests(C1_IP, h0), 3, "{shown}");
    assert_eq!(requests(C2_IP, h1), 3, "{shown}");
}

/// `ip link show type vxlan` in a namespace (given by name or file) must print nothing, and
/// `ip -d link` must not mention a vxlan kind.
fn assert_no_vxlan_device(where_: &str, type_out: &str, detail_out: &str) {
    assert!(
        type_out.trim().is_empty(),
        "vxlan device in {where_}:\n{type_out}"
    );
    let kinds: Vec<&str> = detail_out
        .lines()
        .filter(|l| l.trim_start().starts_with("vxlan "))
        .collect();
    assert!(kinds.is_empty(), "vxlan device in {where_}:\n{detail_out}");
}

#[test]
fn no_kernel_vxlan_device_in_any_namespace_vxnet_touched() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let mut sandboxes = 0;
    for host in pair.lab.hosts() {
        let t = netns::exec_ok(host.ns(), &["ip", "link", "show", "type", "vxlan"])
            .expect("ip link in host ns");
        let d = netns::exec_ok(host.ns(), &["ip", "-d", "link", "show"]).expect("ip -d link");
        assert_no_vxlan_device(host.ns(), &t, &d);
        for sb in host.sandbox_namespaces() {
            sandboxes += 1;
            let t = netns::exec_in_file(&sb, &["ip", "link", "show", "type", "vxlan"])
                .expect("nsenter sandbox");
            let d = netns::exec_in_file(&sb, &["ip", "-d", "link", "show"]).expect("nsenter");
            assert!(d.status.success(), "ip -d link in {}", sb.display());
            let d = String::from_utf8_lossy(&d.stdout).into_owned();
            assert_no_vxlan_device(
                &sb.display().to_string(),
                &String::from_utf8_lossy(&t.stdout),
                &d,
            );
            // The sandbox holds the userspace dataplane's TAP instead (README, the diagram at
            // the top).
            assert!(
                d.contains("vxtap0") && d.contains("tun type tap"),
                "no TAP vxtap0 in sandbox {}:\n{d}",
                sb.display()
            );
        }
    }
    assert!(
        sandboxes >= 2,
        "expected a sandbox namespace per host under the data dirs, found {sandboxes}"
    );
    for c in [&pair.c1, &pair.c2] {
        let t = c
            .exec_ok(&["ip", "link", "show", "type", "vxlan"])
            .expect("ip link");
        let d = c
            .exec_ok(&["ip", "-d", "link", "show"])
            .expect("ip -d link");
        assert_no_vxlan_device(&c.ns, &t, &d);
    }
}

#[test]
fn networks_with_overlapping_subnets_on_different_vnis_are_isolated() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).expect("two vxnet hosts");
    // Same subnet, different VNIs: two separate L2 domains, like two separate VPCs.
    lab.vxnet_network("net1", 4100, SUBNET, &[0, 1], &[])
        .expect("net1");
    lab.vxnet_network("net2", 4200, SUBNET, &[0, 1], &[])
        .expect("net2");
    let a1 = lab.container(0, "a1").expect("a1");
    let a2 = lab.container(1, "a2").expect("a2");
    let b1 = lab.container(0, "b1").expect("b1");
    let b2 = lab.container(1, "b2").expect("b2");
    lab.host(0).connect("net1", &a1, "10.10.0.2").expect("a1");
    lab.host(1).connect("net1", &a2, "10.10.0.3").expect("a2");
    lab.host(0).connect("net2", &b1, "10.10.0.12").expect("b1");
    lab.host(1).connect("net2", &b2, "10.10.0.13").expect("b2");
    let warm = scenario::WARMUP_TIMEOUT;
    a1.wait_reachable("10.10.0.3", warm).expect("net1 works");
    b1.wait_reachable("10.10.0.13", warm).expect("net2 works");

    let capture = lab.capture("udp port 4789").expect("capture");
    let cross = [
        (&a1, "10.10.0.13"), // net1 -> net2's remote container
        (&a1, "10.10.0.12"), // net1 -> net2's container on the same host
        (&b1, "10.10.0.3"),
        (&b2, "10.10.0.2"),
    ];
    for (from, to) in cross {
        let s = from.ping(to, 2).expect("ping runs");
        assert_eq!(
            s.received, 0,
            "{} reached {to} across networks: {s:?}",
            from.ns
        );
    }
    let frames = capture.stop().expect("decode");
    // a1's attempts may only ever be flooded inside VNI 4100, b1's/b2's inside 4200.
    for f in &frames {
        let src = f.arp_sender_ip().or(f.inner_src());
        match src.map(|a| a.octets()[3]) {
            Some(2 | 3) => assert_eq!(f.vni(), Some(4100), "net1 frame in another VNI: {f}"),
            Some(12 | 13) => assert_eq!(f.vni(), Some(4200), "net2 frame in another VNI: {f}"),
            _ => {}
        }
    }
    // Each network still works inside itself.
    assert_eq!(a1.ping("10.10.0.3", 2).expect("ping").received, 2);
    assert_eq!(b2.ping("10.10.0.12", 2).expect("ping").received, 2);
}

/// `--busy-poll`: the forwarding threads poll instead of sleeping while traffic flows (README,
/// "How the dataplane is fast"); they forward as they do without it, and go back to sleep
/// when it stops (the daemon still stops cleanly).
#[test]
fn busy_polling_daemons_forward_pings_and_tcp() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair_on(Lab::builder().daemon_arg("--busy-poll=200"))
        .expect("two busy-polling vxnet hosts with net1");
    let there = pair.c1.ping(C2_IP, 10).expect("ping c1 -> c2");
    assert_eq!(there.received, 10, "c1 -> c2 {there:?}");
    let tcp = vxnet_tests::iperf::run_iperf(
        &pair.c2.ns,
        &pair.c1.ns,
        C2_IP,
        vxnet_tests::iperf::IperfTest::Tcp { streams: 1 },
        std::time::Duration::from_secs(2),
        pair.lab.root(),
    )
    .expect("iperf3 c1 -> c2");
    assert!(tcp.bits_per_second > 1e6, "{tcp:?}");
    for h in 0..2 {
        let status = pair.lab.kill_daemon(h, libc::SIGTERM).expect("stop");
        assert!(
            status.is_some_and(|s| s.success()),
            "h{h} did not stop cleanly on SIGTERM: {status:?}"
        );
    }
}

/// Without UDP GSO (here: `--no-offloads`), datagrams leave with an outer UDP checksum of zero,
/// as RFC 7348 recommends and kernel vxlan does: the receiver then skips a pass over every
/// byte, and the inner frame keeps its own checksums (the pings still arrive).
#[test]
fn without_udp_gso_the_outer_udp_checksum_is_zero() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair_on(Lab::builder().daemon_arg("--no-offloads"))
        .expect("two vxnet hosts without offloads");
    pair.wait_connected().expect("warm-up ping");
    let capture = pair.lab.capture("udp port 4789").expect("capture");
    let there = pair.c1.ping(C2_IP, 3).expect("ping c1 -> c2");
    let frames = capture.stop().expect("decode");
    assert_eq!(there.received, 3);
    assert!(!frames.is_empty(), "nothing captured");
    for f in &frames {
        assert_eq!(f.udp_checksum(), Some(0), "{f}");
    }
}

/// The `PROTO:` counters (`Udp`, `Tcp`) of `/proc/net/snmp` in namespace `ns`, by name.
fn snmp(ns: &str, proto: &str) -> std::collections::BTreeMap<String, u64> {
    let snmp = netns::exec_ok(ns, &["cat", "/proc/net/snmp"]).expect("snmp");
    let head = format!("{proto}:");
    let mut rows = snmp.lines().filter(|l| l.starts_with(&head));
    let (names, values) = (
        rows.next().expect("counter names"),
        rows.next().expect("counter values"),
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        // Counters only: a setting such as Tcp's MaxConn (-1) is left out.
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

/// Whether this run of the suite limits the dataplane's kernel features: without offloads,
/// or under the 3.10 filter (see README, "Tests").
fn offloads_limited() -> bool {
    std::env::var_os("VXNET_NO_OFFLOADS").is_some_and(|v| v != "0" && !v.is_empty())
        || std::env::var_os(vxnet_tests::lab::seccomp::KERNEL_ENV).is_some_and(|v| !v.is_empty())
}

/// What one 2 s iperf3 run of `test` from c1 to c2 did on the receiving side: frames h1
/// wrote into its TAPs, h1's calls of `syscall`, and the change of c2's `proto` counters
/// (`/proc/net/snmp`).
struct Crossing {
    iperf: vxnet_tests::iperf::IperfResult,
    frames: u64,
    calls: u64,
    counters: std::collections::BTreeMap<String, u64>,
}

fn cross(
    pair: &scenario::Pair,
    test: vxnet_tests::iperf::IperfTest,
    syscall: &str,
    proto: &str,
) -> Crossing {
    let h1 = pair.lab.host(1);
    let (frames0, calls0) = received_frames_and_calls(h1, syscall);
    let before = snmp(&pair.c2.ns, proto);
    let iperf = vxnet_tests::iperf::run_iperf(
        &pair.c2.ns,
        &pair.c1.ns,
        C2_IP,
        test,
        std::time::Duration::from_secs(2),
        pair.lab.root(),
    )
    .expect("iperf3 c1 -> c2");
    let (frames1, calls1) = received_frames_and_calls(h1, syscall);
    let after = snmp(&pair.c2.ns, proto);
    Crossing {
        iperf,
        frames: frames1 - frames0,
        calls: calls1 - calls0,
        counters: after
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.saturating_sub(before.get(k).copied().unwrap_or(0)),
                )
            })
            .collect(),
    }
}

/// (frames written into the TAPs, calls of `syscall` — a key of `"Syscalls"`) so far on
/// `host`, from `vxnet stats`.
fn received_frames_and_calls(host: &vxnet_tests::Host, syscall: &str) -> (u64, u64) {
    let stats: serde_json::Value =
        serde_json::from_str(&host.vxnet_ok(&["stats", "--format", "json"])).expect("JSON");
    let frames = stats["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .map(|n| n["RxFrames"].as_u64().expect("RxFrames"))
        .sum();
    (
        frames,
        stats["Syscalls"][syscall].as_u64().expect("syscall count"),
    )
}

/// Small UDP datagrams of one flow reach the TAP as UDP superframes where the kernel takes
/// them (6.2+, offloads on, no `--kernel` limit below): far fewer writes than datagrams. In
/// every mode, each datagram written arrives in the container whole — the kernel cut the
/// superframes back into datagrams whose checksums verify.
#[test]
fn small_udp_datagrams_reach_the_container_whole_in_few_tap_writes() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair().expect("two vxnet hosts with net1");
    let h1 = pair.lab.host(1);
    let log = std::fs::read_to_string(h1.log_path()).expect("daemon log");
    let merging = log.contains("tap_udp_gso=true");
    let limited = offloads_limited();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut version = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = version.next().and_then(|v| v.parse().ok()).expect("major");
    let minor: u32 = version.next().and_then(|v| v.parse().ok()).expect("minor");
    assert_eq!(
        merging,
        !limited && (major, minor) >= (6, 2),
        "UDP superframes into the TAP exactly where offloads, the limit and the kernel allow"
    );

    let udp = cross(
        &pair,
        vxnet_tests::iperf::IperfTest::Udp { payload: 64 },
        "tap_writes",
        "Udp",
    );
    let delta = |k: &str| udp.counters[k];
    let (frames, writes) = (udp.frames, udp.calls);
    let arrived = delta("InDatagrams") + delta("RcvbufErrors");
    assert!(
        frames > 10_000,
        "a flood of small datagrams: {frames} frames"
    );
    assert_eq!(delta("InCsumErrors"), 0, "no datagram arrived broken");
    assert_eq!(
        delta("InErrors"),
        delta("RcvbufErrors"),
        "no UDP error but a full socket buffer"
    );
    // iperf3's own TCP connection adds a few frames that are not UDP; under this flood the
    // kernel may drop some frames between the TAP and c2 (its backlog), never add any.
    assert!(
        arrived * 10 >= frames * 9 && arrived <= frames,
        "{arrived} UDP datagrams reached c2 for {frames} frames written"
    );
    let per_write = frames as f64 / writes.max(1) as f64;
    if merging {
        assert!(per_write >= 2.0, "{frames} frames in {writes} TAP writes");
    } else {
        assert!(per_write < 1.5, "{frames} frames in {writes} TAP writes");
    }
}

/// Where the underlay's NIC merges what it receives (GRO, here the lab's uplinks as a NIC's
/// driver does), a daemon with UDP GRO gets several datagrams of a flow per message — more
/// datagrams per `recvmmsg` than one call has messages — and takes each apart: a TCP stream
/// arrives with no checksum error in the container. Without UDP GRO (`--no-offloads`, the
/// 3.10 filter), the kernel keeps the datagrams apart.
#[test]
fn datagrams_the_nic_merged_are_taken_apart_whole() {
    if !require_root() {
        return;
    }
    /// Messages one `recvmmsg` takes (`RX_BATCH` in the engine).
    const MESSAGES_PER_CALL: f64 = 32.0;
    let pair = scenario::vxnet_pair_on(Lab::builder().nic_gro(true))
        .expect("two vxnet hosts on uplinks with GRO");
    let h1 = pair.lab.host(1);
    let log = std::fs::read_to_string(h1.log_path()).expect("daemon log");
    let gro = log.contains("udp_gro=true");
    assert_eq!(
        gro,
        !offloads_limited(),
        "UDP GRO on exactly where nothing limits it"
    );

    let tcp = cross(
        &pair,
        vxnet_tests::iperf::IperfTest::Tcp { streams: 1 },
        "recvmmsg",
        "Tcp",
    );
    assert!(tcp.iperf.bits_per_second > 1e7, "{:?}", tcp.iperf);
    assert_eq!(
        tcp.counters["InCsumErrors"], 0,
        "segments arrived broken in c2"
    );
    let per_call = tcp.frames as f64 / tcp.calls.max(1) as f64;
    if gro {
        assert!(
            per_call > MESSAGES_PER_CALL,
            "{per_call:.1} datagrams per recvmmsg: the NIC's merged datagrams did not arrive merged"
        );
    } else {
        assert!(
            per_call <= MESSAGES_PER_CALL,
            "{per_call:.1} datagrams per recvmmsg"
        );
    }
}
