//! Cluster connections under attack (README, "Clustering"): members talk mutual TLS with
//! certificates of the cluster's CA; a relay in the middle (of a join, or of two members'
//! connection) sees only ciphertext and cannot alter it; a joiner whose token names another CA
//! sends nothing; `cluster token --rotate` retires old tokens; a removed host's
//! certificate is refused; a stranger flooding port 7946 neither locks members out nor grows
//! the daemon; a cluster from before mutual TLS says so and is formed again as the README says.
//!
//! The relay and the stranger run in this process, on threads inside the lab's underlay
//! namespace (the bridge's own address, 198.18.0.1, and a few more added there).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vxnet_tests::lab::cluster::{CLUSTER_TIMEOUT, REPLICATION_TIMEOUT};
use vxnet_tests::lab::daemon::{is_one_error_line, TimedOutput};
use vxnet_tests::lab::topology::UNDERLAY_GATEWAY;
use vxnet_tests::netns;
use vxnet_tests::{require_root, wait_for, Lab};

const CLUSTER_PORT: u16 = 7946;
/// TLS record content types.
const TLS_APPLICATION_DATA: u8 = 23;

/// What a relay does to the client's bytes on their way to the member.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tamper {
    /// Pass them on as they are.
    None,
    /// Flip one bit in every TLS application-data record after the first (the first is the
    /// client's encrypted Finished): whatever it says once the handshake is done.
    AppData,
}

/// A TCP relay on the underlay bridge's address: forwards every connection to `target`,
/// records what the client sent, and tampers with it as told.
struct Relay {
    addr: SocketAddrV4,
    /// Every byte the clients sent, in arrival order per connection, concatenated.
    from_clients: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(lab: &Lab, target: SocketAddrV4, tamper: Tamper) -> Relay {
        let from_clients = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (from_clients.clone(), stop.clone());
        let addr = netns::in_netns_thread(lab.underlay_ns(), move || {
            let listener = TcpListener::bind((UNDERLAY_GATEWAY, 0))?;
            listener.set_nonblocking(true)?;
            let std::net::SocketAddr::V4(addr) = listener.local_addr()? else {
                anyhow::bail!("not IPv4");
            };
            // Threads spawned here stay in the underlay namespace: they connect from there.
            std::thread::spawn(move || relay_loop(listener, target, tamper, log, halt));
            Ok(addr)
        })
        .expect("the relay listens");
        Relay {
            addr,
            from_clients,
            stop,
        }
    }

    /// Every connection's client bytes so far.
    fn client_streams(&self) -> Vec<Vec<u8>> {
        self.from_clients.lock().expect("relay log").clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay_loop(
    listener: TcpListener,
    target: SocketAddrV4,
    tamper: Tamper,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
) {
    // Bounded: the relay lives at most as long as one test needs it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let Ok((client, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(server) = TcpStream::connect_timeout(&target.into(), Duration::from_secs(5)) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let slot = {
            let mut log = log.lock().expect("relay log");
            log.push(Vec::new());
            log.len() - 1
        };
        let (c2, s2) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        let log = log.clone();
        std::thread::spawn(move || pump_client(client, server, tamper, log, slot));
        std::thread::spawn(move || pump(s2, c2));
    }
}

/// Member to client, untouched.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 << 10];
    let _ = from.set_read_timeout(Some(Duration::from_secs(60)));
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Client to member: recorded, and tampered with as told.
fn pump_client(
    mut from: TcpStream,
    mut to: TcpStream,
    tamper: Tamper,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
    slot: usize,
) {
    let mut records = RecordWalker::default();
    let mut buf = [0u8; 16 << 10];
    let _ = from.set_read_timeout(Some(Duration::from_secs(60)));
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        log.lock().expect("relay log")[slot].extend_from_slice(&buf[..n]);
        if tamper == Tamper::AppData {
            for at in records.first_payload_bytes(&buf[..n], TLS_APPLICATION_DATA, 1) {
                buf[at] ^= 0x01;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Follows the TLS record layer across chunks: 5-byte headers (type, version, length).
#[derive(Default)]
struct RecordWalker {
    header: Vec<u8>,
    /// Payload bytes left in the current record.
    left: usize,
    /// Whether the current record's first payload byte is still to come, and it is a target.
    target_pending: bool,
    /// Records of the target type seen so far.
    seen: usize,
}

impl RecordWalker {
    /// Offsets in `chunk` of the first payload byte of each record of type `kind`, skipping
    /// the first `skip` such records.
    fn first_payload_bytes(&mut self, chunk: &[u8], kind: u8, skip: usize) -> Vec<usize> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < chunk.len() {
            if self.left == 0 {
                self.header.push(chunk[i]);
                i += 1;
                if self.header.len() == 5 {
                    self.left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                    if self.header[0] == kind {
                        self.target_pending = self.seen >= skip;
                        self.seen += 1;
                    }
                    self.header.clear();
                }
                continue;
            }
            if self.target_pending {
                found.push(i);
                self.target_pending = false;
            }
            let take = self.left.min(chunk.len() - i);
            self.left -= take;
            i += take;
        }
        found
    }
}

/// The TLS records in a client's byte stream: (content type, payload length).
fn records(stream: &[u8]) -> Vec<(u8, usize)> {
    let mut records = Vec::new();
    let mut i = 0;
    while i + 5 <= stream.len() {
        let len = usize::from(u16::from_be_bytes([stream[i + 3], stream[i + 4]]));
        records.push((stream[i], len));
        i += 5 + len;
    }
    records
}

/// The longest application-data record in a client's byte stream (0: none).
fn longest_app_data(stream: &[u8]) -> usize {
    records(stream)
        .into_iter()
        .filter(|&(kind, _)| kind == TLS_APPLICATION_DATA)
        .map(|(_, len)| len)
        .max()
        .unwrap_or(0)
}

/// A join request (host record, 32-byte secret, 65-byte public key), encrypted, is longer.
const JOIN_REQUEST_MIN: usize = 100;
/// TLS 1.3 encrypts what follows the ServerHello, alerts included: an encrypted alert is 2
/// bytes, the content type and a 16-byte tag.
const ENCRYPTED_ALERT: usize = 19;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// `vxnet cluster join` on h4 through `relay` with `token` (bounded).
fn join_through(lab: &Lab, relay: &Relay, token: &str) -> TimedOutput {
    lab.host(4)
        .vxnet_timed(
            &["cluster", "join", &relay.addr.to_string(), "--token", token],
            Duration::from_secs(15),
        )
        .expect("CLI runs")
}

fn member_addr(lab: &Lab, host: usize) -> SocketAddrV4 {
    SocketAddrV4::new(lab.host(host).addr(), CLUSTER_PORT)
}

#[test]
fn members_replicate_over_mutual_tls_and_a_relay_can_neither_read_nor_alter() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(5).expect("five hosts");
    lab.form_cluster(&[0, 1, 2])
        .expect("three hosts over mutual TLS");
    lab.host(2).vxnet_ok(&["network", "create", "over-tls"]);
    lab.host(0)
        .wait_networks(&["over-tls"], REPLICATION_TIMEOUT)
        .expect("replicated from h2 to h0");
    for h in 0..3 {
        let dir = lab.host(h).data_dir();
        for file in IDENTITY_FILES {
            let mode = std::fs::metadata(dir.join(file)).expect(file).permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o600,
                "{file}"
            );
        }
    }

    let token = lab.host(0).cluster_token().expect("token");
    let (fingerprint, secret) = token["vxnet-".len()..].split_once('-').expect("two parts");

    // h3 joins through a relay that only forwards: it works, and the relay saw ciphertext.
    let relay = Relay::start(&lab, member_addr(&lab, 0), Tamper::None);
    lab.host(3)
        .vxnet_checked(&[
            "cluster",
            "join",
            &relay.addr.to_string(),
            "--token",
            &token,
        ])
        .expect("join through a forwarding relay");
    lab.wait_members(&[0], &[0, 1, 2, 3], CLUSTER_TIMEOUT)
        .expect("h3 joined");
    let seen: Vec<u8> = relay.client_streams().concat();
    assert!(
        seen.len() > 200,
        "the relay carried the join ({} bytes)",
        seen.len()
    );
    for (what, needle) in [
        ("the secret", hex_decode(secret)),
        ("the secret in hex", secret.as_bytes().to_vec()),
        ("the host's name", lab.host(3).name().as_bytes().to_vec()),
        ("the host's id", b"\"h3\"".to_vec()),
    ] {
        assert!(!contains(&seen, &needle), "the relay saw {what} in clear");
    }
    drop(relay);

    // h4 joins through a relay that flips one bit of what it says after the handshake: the
    // member drops the connection, and nothing is applied.
    let before = lab.host(0).members().expect("members").len();
    let relay = Relay::start(&lab, member_addr(&lab, 0), Tamper::AppData);
    let out = join_through(&lab, &relay, &token);
    assert!(!out.success(), "a tampered join went through");
    assert!(is_one_error_line(&out.stderr()), "{:?}", out.stderr());
    assert!(
        relay
            .client_streams()
            .iter()
            .any(|s| longest_app_data(s) > JOIN_REQUEST_MIN),
        "the joiner got as far as sending its join request"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.host(0).members().expect("members").len(), before);
    let alone = lab.host(4).members().expect("members on h4");
    assert_eq!(lab.member_hosts(&alone).expect("lab hosts"), vec![4]);
    drop(relay);

    // A token naming another CA: the joiner stops at the TLS handshake; past its ClientHello
    // it sends nothing longer than an alert (the secret travels only inside the join request).
    let relay = Relay::start(&lab, member_addr(&lab, 0), Tamper::None);
    let other_ca = format!("vxnet-{}-{secret}", "ab".repeat(32));
    assert_ne!(&other_ca["vxnet-".len().."vxnet-".len() + 64], fingerprint);
    let out = join_through(&lab, &relay, &other_ca);
    assert!(!out.success(), "joined a cluster the token does not name");
    assert!(
        is_one_error_line(&out.stderr()) && out.stderr().contains("TLS"),
        "{:?}",
        out.stderr()
    );
    let streams = relay.client_streams();
    assert!(!streams.is_empty(), "the joiner did connect");
    for s in &streams {
        assert!(
            longest_app_data(s) <= ENCRYPTED_ALERT,
            "the joiner sent more than an alert to an unverified server: records {:?}",
            records(s)
        );
        assert!(
            !contains(s, &hex_decode(secret)),
            "the secret left the joiner"
        );
    }

    // An old-format token is refused with a message saying what to do.
    let old = format!("vxnet-{}", "0".repeat(64));
    let out = lab
        .host(4)
        .try_join_cluster(lab.host(0).addr(), &old, Duration::from_secs(10))
        .expect("CLI runs");
    assert!(!out.success());
    assert!(
        out.stderr().contains("before mutual TLS"),
        "{:?}",
        out.stderr()
    );
}

#[test]
fn a_removed_host_cannot_reconnect_and_rotation_retires_old_tokens() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(4).expect("four hosts");
    lab.form_cluster(&[0, 1, 2]).expect("three hosts");
    let old_token = lab.host(0).cluster_token().expect("token");

    // h2 goes down and is removed; when it comes back it still believes it is a member.
    lab.kill_daemon(2, libc::SIGKILL).expect("kill h2");
    let victim = lab.host(2).name().to_owned();
    wait_for(
        "h0 to remove h2",
        CLUSTER_TIMEOUT,
        Duration::from_millis(500),
        || {
            let out = lab.host(0).vxnet_timed(
                &["cluster", "remove", &victim, "--force"],
                Duration::from_secs(15),
            )?;
            Ok(out.success().then_some(()))
        },
    )
    .expect("remove h2");
    lab.wait_members(&[0, 1], &[0, 1], CLUSTER_TIMEOUT)
        .expect("h2 gone");
    // Not waited for: without a leader it cannot answer reads.
    lab.host(2).spawn_daemon().expect("h2 back");
    wait_for(
        "a member to refuse h2's revoked certificate",
        CLUSTER_TIMEOUT,
        Duration::from_millis(200),
        || {
            let logs = format!("{}{}", lab.host(0).log_tail(400), lab.host(1).log_tail(400));
            Ok(logs.contains("is revoked").then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(40)));
    // The cluster goes on without it, and h2 hears nothing of it.
    lab.host(0)
        .vxnet_ok(&["network", "create", "after-removal"]);
    lab.host(1)
        .wait_networks(&["after-removal"], REPLICATION_TIMEOUT)
        .expect("replicated");
    std::thread::sleep(Duration::from_secs(2));
    let ls = lab
        .host(2)
        .vxnet_timed(&["network", "ls"], Duration::from_secs(3))
        .expect("CLI runs");
    assert!(
        !ls.stdout().contains("after-removal"),
        "the removed host still receives the log"
    );
    lab.wait_members(&[0, 1], &[0, 1], CLUSTER_TIMEOUT)
        .expect("h2 stays out");

    // `--rotate` on a member other than the one that printed the old token: the old token
    // no longer admits anyone, the new one does, and h0 prints the new one too.
    let new_token = lab
        .host(1)
        .vxnet_checked(&["cluster", "token", "--rotate"])
        .expect("rotate")
        .trim()
        .to_string();
    assert_ne!(new_token, old_token);
    assert_eq!(new_token[..70], old_token[..70], "same CA");
    wait_for(
        "h0 to print the rotated token",
        REPLICATION_TIMEOUT,
        Duration::from_millis(100),
        || Ok((lab.host(0).cluster_token()? == new_token).then_some(())),
    )
    .expect("the rotation is replicated");
    let out = lab
        .host(3)
        .try_join_cluster(lab.host(0).addr(), &old_token, Duration::from_secs(15))
        .expect("CLI runs");
    assert!(!out.success(), "the old token still admits");
    assert!(
        is_one_error_line(&out.stderr()) && out.stderr().contains("secret"),
        "{:?}",
        out.stderr()
    );
    lab.host(3)
        .join_cluster(lab.host(0).addr(), &new_token)
        .expect("the new token admits");
    lab.wait_members(&[0, 1, 3], &[0, 1, 3], CLUSTER_TIMEOUT)
        .expect("h3 in");
}

/// Open descriptors and resident memory of a process.
fn footprint(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss_kib)
}

#[test]
fn a_stranger_flooding_the_cluster_port_locks_nobody_out() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(3).expect("three hosts");
    lab.form_cluster(&[0, 1, 2]).expect("three hosts");
    let pid = lab.host(0).daemon_pid().expect("h0 runs");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let (fds_before, rss_before) = footprint(pid);

    // Four stranger addresses on the underlay, each opening connections as fast as it can,
    // each one a TLS record header announcing 16 KiB and a little of it, then silence.
    let sources: Vec<Ipv4Addr> = (200..204).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
    for ip in &sources {
        netns::exec_ok(
            lab.underlay_ns(),
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "br0"],
        )
        .expect("stranger address");
    }
    let target = member_addr(&lab, 0);
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let mut floods = Vec::new();
    for ip in sources.clone() {
        let (stop, opened) = (stop.clone(), opened.clone());
        let ns = lab.underlay_ns().to_owned();
        floods.push(std::thread::spawn(move || {
            netns::in_netns_thread(&ns, move || {
                let mut held = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let socket = socket_from(ip)?;
                    match socket.connect_timeout(&target.into(), Duration::from_millis(500)) {
                        Ok(()) => {
                            let mut s = TcpStream::from(socket);
                            let _ = s.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]);
                            let _ = s.write_all(&[0u8; 4096]);
                            opened.fetch_add(1, Ordering::Relaxed);
                            held.push(s);
                            if held.len() > 400 {
                                held.remove(0);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                Ok(())
            })
        }));
    }

    // Meanwhile: a member restarts and reconnects, and writes commit.
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    lab.kill_daemon(1, libc::SIGTERM).expect("stop h1");
    lab.start_daemon(1).expect("start h1");
    lab.host(1).vxnet_ok(&["network", "create", "during-flood"]);
    lab.host(0)
        .wait_networks(&["during-flood"], REPLICATION_TIMEOUT)
        .expect("a write commits during the flood");
    lab.wait_members(&[0], &[0, 1, 2], CLUSTER_TIMEOUT)
        .expect("members during the flood");
    let write_took = started.elapsed();
    let mut peak = (0, 0);
    for _ in 0..10 {
        let (fds, rss) = footprint(pid);
        peak = (peak.0.max(fds), peak.1.max(rss));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().expect("flood thread").expect("flood");
    }
    let connections = opened.load(Ordering::Relaxed);
    let logged = lab.host(0).log_tail(5000);
    let refusal_lines = logged
        .matches("refused a cluster connection from 198.18.0.2")
        .count();
    println!(
        "h0 ({}, pid {pid}): {connections} stranger connections; fds {fds_before} before, {} at \
         peak; RSS {rss_before} KiB before, {} KiB at peak; restart + write took {write_took:?}; \
         {refusal_lines} refusal log lines",
        comm.trim(),
        peak.0,
        peak.1
    );
    assert!(
        connections > 200,
        "the flood opened only {connections} connections"
    );
    // 16 per source address, 4 sources, plus the members' own connections and slack.
    assert!(
        peak.0 <= fds_before + 4 * 16 + 32,
        "fds grew from {fds_before} to {}",
        peak.0
    );
    assert!(
        peak.1 <= rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {} KiB",
        peak.1
    );
    // One line per source per minute (plus the members' own, if any).
    assert!(
        refusal_lines <= 2 * sources.len(),
        "{refusal_lines} refusal lines for {} sources",
        sources.len()
    );
}

/// A TCP socket bound to `ip` (a stranger address on the underlay).
fn socket_from(ip: Ipv4Addr) -> anyhow::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddrV4::new(ip, 0).into())?;
    Ok(socket)
}

#[test]
fn a_relay_between_two_members_can_break_their_connection_and_nothing_else() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(3).expect("three hosts");
    lab.form_cluster(&[0, 1, 2]).expect("three hosts");
    // h1's connections to h0 go through a relay that flips a bit in what h1 says once the
    // handshake is done.
    let relay = Relay::start(&lab, member_addr(&lab, 0), Tamper::AppData);
    let rules = format!(
        "table ip vxrelay {{\n  chain out {{\n    type nat hook output priority -100; policy accept;\n    \
         ip daddr {} tcp dport {CLUSTER_PORT} dnat to {}\n  }}\n}}\n",
        lab.host(0).addr(),
        relay.addr
    );
    lab.host(1)
        .nft_load("relay", &rules)
        .expect("DNAT through the relay");
    // A restart: h1's connections to h0 are made anew, through the relay.
    lab.kill_daemon(1, libc::SIGTERM).expect("stop h1");
    lab.host(1).spawn_daemon().expect("h1 back");
    wait_for(
        "h0 to refuse what the relay altered",
        CLUSTER_TIMEOUT,
        Duration::from_millis(200),
        || {
            let logs = lab.host(0).log_tail(400);
            Ok(logs
                .lines()
                .find(|l| {
                    l.contains(&format!(
                        "refused a cluster connection from {UNDERLAY_GATEWAY}"
                    ))
                })
                .map(str::to_owned))
        },
    )
    .map(|line| println!("h0: {line}"))
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));
    assert!(
        relay
            .client_streams()
            .iter()
            .any(|s| longest_app_data(s) > 0),
        "h1 reached the relay"
    );
    // The majority (h0, h2) goes on committing, with nothing of the relay's making in it.
    lab.host(2)
        .vxnet_ok(&["network", "create", "despite-relay"]);
    lab.host(0)
        .wait_networks(&["despite-relay"], REPLICATION_TIMEOUT)
        .expect("a write commits");
    let names = lab.host(0).network_names().expect("ls on h0");
    assert_eq!(names, vec!["despite-relay".to_string()]);
    lab.wait_members(&[0, 2], &[0, 1, 2], CLUSTER_TIMEOUT)
        .expect("membership unchanged");
}

/// The certificate files of a data dir.
const IDENTITY_FILES: [&str; 4] = [
    "cluster-ca.pem",
    "cluster-ca-key.pem",
    "host-key.pem",
    "host-cert.der",
];

#[test]
fn a_cluster_from_before_mutual_tls_is_formed_again_as_the_readme_says() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).expect("two hosts");
    lab.form_cluster(&[0, 1]).expect("two hosts");
    lab.host(0).vxnet_ok(&["network", "create", "kept"]);
    lab.host(1)
        .wait_networks(&["kept"], REPLICATION_TIMEOUT)
        .expect("replicated");

    // What a vxnet before mutual TLS left behind: a token file and no certificates.
    for h in [0, 1] {
        lab.kill_daemon(h, libc::SIGTERM).expect("stop");
        let dir = lab.host(h).data_dir();
        for file in IDENTITY_FILES {
            std::fs::remove_file(dir.join(file)).expect(file);
        }
        std::fs::write(
            dir.join("cluster-token"),
            format!("vxnet-{}\n", "5a".repeat(32)),
        )
        .expect("old token file");
    }
    for h in [0, 1] {
        lab.host(h).spawn_daemon().expect("start");
    }
    for h in [0, 1] {
        wait_for(
            "the daemon to say its data dir predates mutual TLS",
            CLUSTER_TIMEOUT,
            Duration::from_millis(200),
            || {
                Ok(lab
                    .host(h)
                    .log_tail(200)
                    .contains("predates mutual TLS")
                    .then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(30)));
        assert!(!lab.host(h).data_dir().join("cluster-token").exists());
    }

    // The README's way back: the host whose state to keep starts with --force-new-cluster,
    // the other starts on an empty data dir and joins.
    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    lab.host(0)
        .start_daemon_with(&["--force-new-cluster"], &[])
        .expect("h0 alone");
    lab.kill_daemon(1, libc::SIGTERM).expect("stop h1");
    let dir = lab.host(1).data_dir();
    for entry in std::fs::read_dir(dir).expect("h1's data dir") {
        let path = entry.expect("entry").path();
        let keep = ["daemon.log", "vxnet.sock"]
            .iter()
            .any(|k| path.file_name().is_some_and(|n| n == *k));
        if keep {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("rm -r");
        } else {
            std::fs::remove_file(&path).expect("rm");
        }
    }
    lab.start_daemon(1).expect("h1 anew");
    let token = lab.host(0).cluster_token().expect("token");
    lab.host(1)
        .join_cluster(lab.host(0).addr(), &token)
        .expect("h1 joins");
    lab.wait_members(&[0, 1], &[0, 1], CLUSTER_TIMEOUT)
        .expect("one cluster again");
    lab.host(1)
        .wait_networks(&["kept"], REPLICATION_TIMEOUT)
        .expect("the kept state reaches h1");
}
