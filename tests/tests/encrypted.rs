//! Encrypted networks (README, "Encrypted networks"): on the underlay every datagram of an
//! encrypted network is sealed — no inner frame, no payload byte in the clear — while a plain
//! network beside it still carries plain VXLAN; a sealed datagram replayed, tampered with, or
//! a plaintext one injected on the encrypted VNI is dropped and counted; `--encrypted` with
//! `--peer` is refused.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vxnet_tests::capture::describe_frames;
use vxnet_tests::iperf::{run_iperf, IperfTest};
use vxnet_tests::lab::cluster::{CLUSTER_TIMEOUT, REPLICATION_TIMEOUT};
use vxnet_tests::lab::daemon::is_one_error_line;
use vxnet_tests::netns::{exec_ok, in_netns_thread};
use vxnet_tests::ping::ping_with;
use vxnet_tests::scenario::WARMUP_TIMEOUT;
use vxnet_tests::vxnet_json::drop_counts;
use vxnet_tests::{require_root, wait_for, Container, Host, Lab, PingOptions};

const VXLAN_PORT: u16 = 4789;
/// What the echo requests carry (`ping -p`), repeated over their payload.
const PATTERN: &str = "5eca1ed0c0ffee42";
/// First byte of a sealed datagram (flags I + S), of a plain VXLAN one (I).
const SEALED: u8 = 0x09;
const PLAIN: u8 = 0x08;

/// One captured UDP datagram to the VXLAN port: outer addresses and the UDP payload.
#[derive(Debug, Clone)]
struct Datagram {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: Vec<u8>,
}

/// The UDP datagrams to [`VXLAN_PORT`] in a pcap file of Ethernet frames (as tcpdump writes
/// it: either byte order, micro- or nanosecond stamps).
fn vxlan_datagrams(pcap: &Path) -> Vec<Datagram> {
    let bytes = std::fs::read(pcap).expect("read the capture");
    assert!(bytes.len() >= 24, "no pcap header in {}", pcap.display());
    let magic = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let little = matches!(magic, 0xa1b2_c3d4 | 0xa1b2_3c4d);
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type must be Ethernet");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32_at(at + 8) as usize;
        let frame = &bytes[(at + 16).min(bytes.len())..(at + 16 + len).min(bytes.len())];
        at += 16 + len;
        // Ethernet, IPv4, UDP to the VXLAN port.
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let udp = 14 + ihl;
        if frame.len() < udp + 8
            || u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]) != VXLAN_PORT
        {
            continue;
        }
        let ip = |o: usize| Ipv4Addr::new(frame[o], frame[o + 1], frame[o + 2], frame[o + 3]);
        out.push(Datagram {
            src: ip(26),
            dst: ip(30),
            payload: frame[udp + 8..].to_vec(),
        });
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn pattern_bytes() -> Vec<u8> {
    (0..PATTERN.len() / 2)
        .map(|i| u8::from_str_radix(&PATTERN[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The key epochs the sealed datagrams in `pcap` carry, sorted, each once.
fn epochs(pcap: &Path) -> Vec<u8> {
    let mut e: Vec<u8> = vxlan_datagrams(pcap).iter().map(|d| d.payload[2]).collect();
    e.sort_unstable();
    e.dedup();
    e
}

/// Host 0 creates encrypted network `name` on `subnet`; once host 1 has it, container a0 on
/// host 0 and a1 on host 1 join it and reach each other. Returns a0 and a1's address.
fn sealed_pair(lab: &Lab, name: &str, subnet: &str) -> (Container, Ipv4Addr) {
    let (h0, h1) = (lab.host(0), lab.host(1));
    h0.vxnet_ok(&["network", "create", "--encrypted", "--subnet", subnet, name]);
    h1.wait_networks(&[name], REPLICATION_TIMEOUT)
        .expect("network replicated");
    let a0 = lab.container(0, "a0").expect("a0");
    let a1 = lab.container(1, "a1").expect("a1");
    h0.connect_auto(name, &a0).expect("connect a0");
    let a1_ip = h1.connect_auto(name, &a1).expect("connect a1");
    a0.wait_reachable(&a1_ip.to_string(), WARMUP_TIMEOUT)
        .expect("a0 reaches a1");
    (a0, a1_ip)
}

/// Pings from a container to an address every 50 ms, in runs of 20, on a thread of its own
/// until [`Pinger::stop`].
struct Pinger {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, u32)>,
}

impl Pinger {
    fn start(from: &Container, to: Ipv4Addr) -> Pinger {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, ns, ip) = (Arc::clone(&stop), from.ns.clone(), to.to_string());
            std::thread::spawn(move || {
                let opts = PingOptions {
                    count: 20,
                    interval: Duration::from_millis(50),
                    size: None,
                    deadline: Duration::from_secs(5),
                };
                let (mut sent, mut received) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let s = ping_with(&ns, &ip, &opts).expect("ping runs");
                    sent += s.transmitted;
                    received += s.received;
                }
                (sent, received)
            })
        };
        Pinger { stop, thread }
    }

    /// Stops after the run in progress; (echo requests sent, replies received).
    fn stop(self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("pinger")
    }
}

/// `ping -p PATTERN` from `from` to `to`: echo requests whose payload repeats [`PATTERN`].
fn ping_pattern(from: &Container, to: Ipv4Addr) {
    let out = exec_ok(
        &from.ns,
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-w",
            "5",
            "-p",
            PATTERN,
            &to.to_string(),
        ],
    )
    .expect("ping with a pattern");
    assert!(out.contains(" 0% packet loss"), "{out}");
}

/// Sends `payload` to `to`:4789 from inside host `from`'s namespace, from its underlay
/// address: as the real daemon there would (another source port, which vxnet does not check).
fn inject(from: &Host, to: Ipv4Addr, payload: Vec<u8>) {
    let src = from.addr();
    in_netns_thread(from.ns(), move || {
        let socket = UdpSocket::bind(SocketAddrV4::new(src, 0))?;
        socket.send_to(&payload, SocketAddrV4::new(to, VXLAN_PORT))?;
        Ok(())
    })
    .expect("send from the host's namespace");
}

/// Host `host`'s drop counter `reason` (every network together).
fn drops(host: &Host, reason: &str) -> u64 {
    let stats = host.vxnet_ok(&["stats", "--format", "json"]);
    drop_counts(&stats)
        .expect("stats JSON")
        .get(reason)
        .copied()
        .unwrap_or(0)
}

/// Waits until `host`'s counter `reason` reaches `at_least`.
fn wait_drops(host: &Host, reason: &str, at_least: u64) {
    let what = format!("{reason} on {} to reach {at_least}", host.name());
    let reached = wait_for(
        &what,
        Duration::from_secs(5),
        Duration::from_millis(100),
        || Ok((drops(host, reason) >= at_least).then_some(())),
    );
    if let Err(e) = reached {
        panic!(
            "{e:#}; stats:\n{}",
            host.vxnet_ok(&["stats", "--format", "json"])
        );
    }
}

fn inspect(host: &Host, network: &str) -> Value {
    let text = host.vxnet_ok(&["network", "inspect", network]);
    assert!(
        !text.to_lowercase().contains("key") && !text.to_lowercase().contains("secret"),
        "inspect shows key material:\n{text}"
    );
    let v: Value = serde_json::from_str(&text).expect("inspect JSON");
    v[0].clone()
}

#[test]
fn encrypted_network_seals_every_datagram_and_drops_replays_tampering_and_plaintext() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(2).expect("two hosts in one cluster");
    let (h0, h1) = (lab.host(0), lab.host(1));

    // `--encrypted` with a static peer: one line, usage error, nothing made.
    let refused = h0.vxnet(&[
        "network",
        "create",
        "--encrypted",
        "--peer",
        "198.18.0.99",
        "kernelpeer",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        is_one_error_line(&stderr) && stderr.contains("encrypted"),
        "{stderr}"
    );

    h0.vxnet_ok(&[
        "network",
        "create",
        "--encrypted",
        "--subnet",
        "10.61.0.0/24",
        "sealed",
    ]);
    h0.vxnet_ok(&["network", "create", "--subnet", "10.62.0.0/24", "plain"]);
    assert!(!h0
        .network_names()
        .expect("ls")
        .contains(&"kernelpeer".to_string()));
    h1.wait_networks(&["sealed", "plain"], REPLICATION_TIMEOUT)
        .expect("networks replicated");
    let (sealed, plain) = (inspect(h1, "sealed"), inspect(h1, "plain"));
    assert_eq!(sealed["Encrypted"], true);
    assert_eq!(plain["Encrypted"], false);
    let mtu = |v: &Value| v["MTU"].as_u64().expect("MTU");
    assert_eq!(
        mtu(&sealed) + 24,
        mtu(&plain),
        "the MTU leaves room for the seal"
    );
    let sealed_vni = sealed["VNI"].as_u64().expect("VNI") as u32;

    let a0 = lab.container(0, "a0").expect("a0");
    let a1 = lab.container(1, "a1").expect("a1");
    let b0 = lab.container(0, "b0").expect("b0");
    let b1 = lab.container(1, "b1").expect("b1");
    let a0_ip = h0.connect_auto("sealed", &a0).expect("connect a0");
    let a1_ip = h1.connect_auto("sealed", &a1).expect("connect a1");
    h0.connect_auto("plain", &b0).expect("connect b0");
    let b1_ip = h1.connect_auto("plain", &b1).expect("connect b1");
    let container_mtu = exec_ok(&a0.ns, &["cat", "/sys/class/net/eth0/mtu"]).expect("mtu");
    assert_eq!(container_mtu.trim(), mtu(&sealed).to_string());
    a0.wait_reachable(&a1_ip.to_string(), WARMUP_TIMEOUT)
        .expect("a0 reaches a1 over the encrypted network");
    b0.wait_reachable(&b1_ip.to_string(), WARMUP_TIMEOUT)
        .expect("b0 reaches b1 over the plain network");

    // The encrypted network on the wire: pings with a pattern and a TCP exchange.
    let capture = lab.capture("udp port 4789").expect("capture");
    let pcap = capture.pcap().to_path_buf();
    ping_pattern(&a0, a1_ip);
    let server = SocketAddrV4::new(a1_ip, 7000);
    vxnet_tests::who::serve_tcp(&a1.ns, server).expect("TCP server in a1");
    vxnet_tests::who::ask_tcp(&a0.ns, server).expect("a TCP exchange over the sealed network");
    let frames = capture.stop().expect("decode");
    let shown = describe_frames(&frames);
    assert!(!frames.is_empty(), "nothing captured");
    for f in &frames {
        let protocols = f.protocols();
        assert!(
            f.icmp_type().is_none() && !protocols.contains("tcp") && f.inner_src().is_none(),
            "tshark decodes an inner frame on the encrypted network:\n{shown}"
        );
    }
    let datagrams = vxlan_datagrams(&pcap);
    assert!(
        datagrams.len() >= 6,
        "echo requests and replies: {datagrams:?}"
    );
    let pattern = pattern_bytes();
    for d in &datagrams {
        assert_eq!(d.payload[0], SEALED, "a datagram not sealed: {d:?}");
        assert!(
            !contains(&d.payload, &pattern),
            "the ping pattern is in the clear"
        );
    }

    // The plain network beside it is plain VXLAN, pattern and all (and the method above sees
    // what is there to see).
    let capture = lab.capture("udp port 4789").expect("capture plain");
    let plain_pcap = capture.pcap().to_path_buf();
    ping_pattern(&b0, b1_ip);
    let plain_frames = capture.stop().expect("decode plain");
    assert!(
        plain_frames.iter().any(|f| f.icmp_type() == Some(8)),
        "the plain network's pings are not decoded:\n{}",
        describe_frames(&plain_frames)
    );
    let plain_datagrams = vxlan_datagrams(&plain_pcap);
    assert!(plain_datagrams.iter().all(|d| d.payload[0] == PLAIN));
    assert!(plain_datagrams
        .iter()
        .any(|d| contains(&d.payload, &pattern)));

    // A sealed datagram from h0 to h1, replayed from h0's own address: dropped as a replay.
    let original = datagrams
        .iter()
        .find(|d| d.src == h0.addr() && d.dst == h1.addr())
        .expect("a datagram from h0 to h1")
        .clone();
    let before = drops(h1, "sealed_replay");
    inject(h0, h1.addr(), original.payload.clone());
    wait_drops(h1, "sealed_replay", before + 1);

    // Tampered: a counter never used (so it is not a replay) and a changed ciphertext byte.
    let mut tampered = original.payload.clone();
    tampered[8] ^= 0x01;
    let last = tampered.len() - 20;
    tampered[last] ^= 0x80;
    let before = drops(h1, "sealed_bad_tag");
    inject(h0, h1.addr(), tampered);
    wait_drops(h1, "sealed_bad_tag", before + 1);

    // Plain VXLAN on the encrypted network's VNI: a broadcast frame any plain VTEP would take.
    let [_, v0, v1, v2] = sealed_vni.to_be_bytes();
    let mut plaintext = vec![PLAIN, 0, 0, 0, v0, v1, v2, 0];
    plaintext.extend_from_slice(&[0xff; 6]);
    plaintext.extend_from_slice(&[0x02, 0x42, 10, 61, 0, 99, 0x08, 0x06]);
    plaintext.extend_from_slice(&[0; 46]);
    let before = drops(h1, "plaintext_on_encrypted");
    inject(h0, h1.addr(), plaintext);
    wait_drops(h1, "plaintext_on_encrypted", before + 1);

    // And a sealed datagram on the plain network's VNI.
    let plain_vni = plain["VNI"].as_u64().expect("VNI") as u32;
    let mut misplaced = original.payload.clone();
    misplaced[4..7].copy_from_slice(&plain_vni.to_be_bytes()[1..]);
    let before = drops(h1, "sealed_on_plain");
    inject(h0, h1.addr(), misplaced);
    wait_drops(h1, "sealed_on_plain", before + 1);

    // None of it disturbed the real traffic: a short TCP transfer each way.
    for (server, client, ip) in [(&a1, &a0, a1_ip), (&a0, &a1, a0_ip)] {
        let result = run_iperf(
            &server.ns,
            &client.ns,
            &ip.to_string(),
            IperfTest::Tcp { streams: 1 },
            Duration::from_secs(2),
            lab.root(),
        )
        .expect("iperf3 over the encrypted network");
        assert!(result.bits_per_second > 1e6, "{result:?}");
        eprintln!(
            "encrypted network TCP {} -> {}: {:.2} Gbit/s",
            client.name,
            server.name,
            result.bits_per_second / 1e9
        );
    }
    assert_eq!(drops(h0, "sealed_bad_tag") + drops(h1, "sealed_bad_tag"), 1);
    // For comparison, the plain network on the same hosts (printed, not asserted).
    let plain_tcp = run_iperf(
        &b1.ns,
        &b0.ns,
        &b1_ip.to_string(),
        IperfTest::Tcp { streams: 1 },
        Duration::from_secs(2),
        lab.root(),
    )
    .expect("iperf3 over the plain network");
    eprintln!(
        "plain network TCP b0 -> b1: {:.2} Gbit/s",
        plain_tcp.bits_per_second / 1e9
    );

    // h1 crashes and starts again: its replay windows start empty, but it published a new salt
    // before forwarding, so the recording from before does not open: dropped for its tag, and
    // nothing reaches a1. It is replayed before h0 sends anything new, which would have moved
    // the window past it.
    lab.kill_daemon(1, libc::SIGKILL).expect("kill -9 h1");
    lab.start_daemon(1).expect("restart h1");
    let sealed_rx = |host: &Host| -> Option<u64> {
        let stats: Value =
            serde_json::from_str(&host.vxnet_ok(&["stats", "--format", "json"])).ok()?;
        stats["networks"]
            .as_array()?
            .iter()
            .find(|n| n["Name"] == "sealed")?["RxFrames"]
            .as_u64()
    };
    let received = wait_for(
        "h1 to forward the sealed network again",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok(sealed_rx(h1)),
    )
    .expect("sealed network up on h1");
    inject(h0, h1.addr(), original.payload);
    wait_drops(h1, "sealed_bad_tag", 1);
    assert_eq!(sealed_rx(h1), Some(received), "the recording reached a1");
    a0.wait_reachable(&a1_ip.to_string(), WARMUP_TIMEOUT)
        .expect("a0 reaches a1 after h1's restart");
}

#[test]
fn removing_a_host_rotates_the_key_without_losing_a_ping() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    let (h0, h1) = (lab.host(0), lab.host(1));
    let (a0, a1_ip) = sealed_pair(&lab, "sealed", "10.63.0.0/24");
    let capture = lab.capture("udp port 4789").expect("capture");
    let pcap = capture.pcap().to_path_buf();
    ping_pattern(&a0, a1_ip);
    capture.stop().expect("decode");
    assert_eq!(epochs(&pcap), [0], "a new network's key is epoch 0");

    let pinger = Pinger::start(&a0, a1_ip);

    // h2 dies and is removed: it knew the key, so every encrypted network gets a new one.
    let victim = lab.host(2).name().to_owned();
    lab.kill_daemon(2, libc::SIGKILL).expect("kill -9 h2");
    wait_for(
        "cluster remove of the dead host to succeed",
        CLUSTER_TIMEOUT,
        Duration::from_millis(500),
        || {
            let out = h0.vxnet_timed(&["cluster", "remove", &victim], Duration::from_secs(15))?;
            Ok(out.success().then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));
    let removed = Instant::now();
    // Hosts switch to the new epoch 10 s after they learn it; until then they send with the
    // old one, and both are accepted.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(removed.elapsed()));
    let capture = lab
        .capture("udp port 4789")
        .expect("capture after the rotation");
    let pcap = capture.pcap().to_path_buf();
    std::thread::sleep(Duration::from_secs(1));
    capture.stop().expect("decode");
    let (sent, received) = pinger.stop();
    assert_eq!(
        epochs(&pcap),
        [1],
        "both hosts send with the new epoch\n{}",
        lab.daemon_logs(20)
    );
    assert!(sent >= 100, "{sent} pings");
    assert_eq!(received, sent, "pings lost across the key change");
    assert_eq!(drops(h0, "sealed_no_key") + drops(h1, "sealed_no_key"), 0);
}

/// With `--key-rotation`, the leader gives an encrypted network a new key once its key is that
/// old (Docker rotates every 12 hours; here 20 s, the shortest allowed), and traffic carries on
/// through the switch without a lost ping.
#[test]
fn keys_are_rotated_when_they_reach_their_age_without_losing_a_ping() {
    if !require_root() {
        return;
    }
    let lab = Lab::builder()
        .hosts(vxnet_tests::lab::HostKind::Vxnet, 2)
        .daemon_arg("--key-rotation=20")
        .build()
        .expect("lab");
    lab.form_cluster(&[0, 1]).expect("cluster");
    let created = Instant::now();
    let (a0, a1_ip) = sealed_pair(&lab, "aging", "10.64.0.0/24");
    let pinger = Pinger::start(&a0, a1_ip);
    // The key is due at 20 s and rotated at the leader's next check (every 5 s).
    wait_for(
        "the leader to rotate the aged key",
        Duration::from_secs(45),
        Duration::from_millis(500),
        || {
            Ok(lab
                .daemon_logs(200)
                .contains("its key reached --key-rotation")
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));
    assert!(
        created.elapsed() >= Duration::from_secs(19),
        "rotated before the key was 20 s old"
    );
    // Hosts send with the new key 10 s after they learn it.
    std::thread::sleep(Duration::from_secs(11));
    let capture = lab.capture("udp port 4789").expect("capture");
    let pcap = capture.pcap().to_path_buf();
    std::thread::sleep(Duration::from_secs(1));
    capture.stop().expect("decode");
    let (sent, received) = pinger.stop();
    let seen = epochs(&pcap);
    assert!(
        !seen.is_empty() && !seen.contains(&0),
        "the first key retired after its 20 s, not {seen:?}\n{}",
        lab.daemon_logs(20)
    );
    assert!(sent >= 300, "{sent} pings");
    assert_eq!(received, sent, "pings lost across the key change");
}
