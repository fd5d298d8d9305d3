//! A container sends only as itself (README, "Who may send what"): each attack of issue 11 is
//! replayed from inside a container namespace (raw frames on its eth0) or from a trusted
//! host's underlay, and must fail — the victim receives nothing, no ARP cache or bridge is
//! taught a lie, unknown unicast does not multiply on the underlay — and be counted by reason
//! in `vxnet stats`; honest traffic on one host and across hosts still flows, also after a
//! restart of the daemon.
//!
//! Lab: three hosts; on h0 the attacker `a` and its neighbour `n`, on h1 the victim `v`, on
//! h2 a third container `t`. Seen packets are counted in the receivers' own namespaces by
//! nftables counters (table `inet spoofspy`), matched by ICMP identifier so that honest pings
//! never count.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::netns;
use vxnet_tests::vxnet_json::drop_counts;
use vxnet_tests::wire::{
    arp_frame, format_mac, icmp_echo_frame, mac_for_ip, send_raw_frames, vxlan_datagram, BROADCAST,
    VXLAN_PORT,
};
use vxnet_tests::{require_root, Container, Host, Lab};

const NET: &str = "sp";
const VNI: u32 = 4242;
const A: Ipv4Addr = Ipv4Addr::new(10, 82, 0, 10);
const N: Ipv4Addr = Ipv4Addr::new(10, 82, 0, 11);
const V: Ipv4Addr = Ipv4Addr::new(10, 82, 0, 20);
const T: Ipv4Addr = Ipv4Addr::new(10, 82, 0, 30);
const M: Ipv4Addr = Ipv4Addr::new(10, 82, 0, 12);
const WARMUP: Duration = Duration::from_secs(15);
/// Frames per replayed attack.
const BURST: u16 = 20;

fn me(ip: Ipv4Addr) -> ([u8; 6], Ipv4Addr) {
    (mac_for_ip(ip), ip)
}

/// `vxnet stats` drop counters of a host (every network and none, summed per reason).
fn drops(host: &Host) -> BTreeMap<String, u64> {
    drop_counts(&host.vxnet_ok(&["stats", "--format", "json"])).expect("stats JSON")
}

fn count(drops: &BTreeMap<String, u64>, reason: &str) -> u64 {
    drops.get(reason).copied().unwrap_or(0)
}

/// Puts a named counter `name` into namespace `ns` that counts packets matching `rule` at
/// `hook` (table `inet spoofspy`, made on first use).
fn spy(ns: &str, name: &str, hook: &str, rule: &str) {
    let chain = format!("spy_{hook}");
    let script = format!(
        "add table inet spoofspy; add counter inet spoofspy {name}; \
         add chain inet spoofspy {chain} {{ type filter hook {hook} priority -400; }}; \
         add rule inet spoofspy {chain} {rule} counter name {name}"
    );
    netns::exec_ok(ns, &["nft", &script]).expect("load a spy counter");
}

fn spied(ns: &str, name: &str) -> u64 {
    let out =
        netns::exec_ok(ns, &["nft", "list", "counter", "inet", "spoofspy", name]).expect("spy");
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "packets")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {out}"))
}

/// ICMP echo requests with identifier `id` seen by `c`, counted by a spy made now.
fn spy_echo(c: &Container, id: u16) -> String {
    let name = format!("echo_{id:x}");
    spy(
        &c.ns,
        &name,
        "prerouting",
        &format!("icmp type echo-request icmp id {id}"),
    );
    name
}

fn echo_burst(from: ([u8; 6], Ipv4Addr), to: ([u8; 6], Ipv4Addr), id: u16) -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|seq| icmp_echo_frame(from, to, id, seq))
        .collect()
}

/// Sends `frames` from inside container `c`, out of its eth0.
fn replay(c: &Container, frames: Vec<Vec<u8>>) {
    send_raw_frames(&c.ns, "eth0", frames).expect("raw frames from the container");
}

/// Sends `frames` as VXLAN datagrams from host `from`'s underlay address to host `to`.
fn replay_on_wire(lab: &Lab, from: usize, to: usize, frames: Vec<Vec<u8>>) {
    let dst = SocketAddrV4::new(lab.host(to).addr(), VXLAN_PORT);
    let datagrams = frames.iter().map(|f| vxlan_datagram(VNI, f)).collect();
    lab.send_udp(lab.host(from).ns(), dst, datagrams)
        .expect("VXLAN datagrams on the underlay");
}

fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

/// `nft list table bridge vxnet` in the host's one sandbox.
fn guard_table(host: &Host) -> String {
    let sandboxes = host.sandbox_namespaces();
    assert_eq!(sandboxes.len(), 1, "one sandbox: {sandboxes:?}");
    let out = netns::exec_in_file(&sandboxes[0], &["nft", "list", "table", "bridge", "vxnet"])
        .expect("nft in the sandbox");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `bridge fdb` lines of h0's sandbox that put `mac` behind a port other than the TAP.
fn learned_on_a_container_port(host: &Host, mac: [u8; 6]) -> Vec<String> {
    let sandboxes = host.sandbox_namespaces();
    assert_eq!(sandboxes.len(), 1, "one sandbox: {sandboxes:?}");
    let out = netns::exec_in_file(&sandboxes[0], &["bridge", "fdb", "show", "br", "br0"])
        .expect("bridge fdb in the sandbox");
    let mac = format_mac(mac);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&mac) && !l.contains("dev vxtap0"))
        .map(str::to_string)
        .collect()
}

/// The attacks that got through: every check runs, and the test fails at the end with the
/// whole list.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn neighbour(&mut self, c: &Container, ip: Ipv4Addr, owner: Ipv4Addr, what: &str) {
        let mac = c.neighbour_mac(&ip.to_string()).expect("ip neigh");
        let want = format_mac(mac_for_ip(owner));
        self.check(mac.as_deref() == Some(want.as_str()), || {
            format!("{what}: {} maps {ip} to {mac:?}, not {want}", c.name)
        });
    }

    fn pings(&mut self, from: &Container, to: Ipv4Addr, what: &str) {
        let stats = from.ping(&to.to_string(), 3).expect("ping");
        self.check(stats.received == 3, || {
            format!("{what}: {} → {to}: {stats:?}", from.name)
        });
    }

    /// That `reason` went up by at least `by` on `host` since `before`.
    fn counted(&mut self, host: &Host, before: &BTreeMap<String, u64>, reason: &str, by: u64) {
        let after = drops(host);
        self.check(count(&after, reason) >= count(before, reason) + by, || {
            format!(
                "{reason} did not go up by {by} on {}: {before:?} → {after:?}",
                host.name()
            )
        });
    }
}

#[test]
fn a_container_sends_only_as_itself() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    let (h0, h1, h2) = (lab.host(0), lab.host(1), lab.host(2));
    let vni = VNI.to_string();
    h0.vxnet_ok(&[
        "network",
        "create",
        "--subnet",
        "10.82.0.0/24",
        "--vni",
        &vni,
        NET,
    ]);
    for h in [h1, h2] {
        h.wait_networks(&[NET], REPLICATION_TIMEOUT)
            .expect("network replicated");
    }
    let mut containers = Vec::new();
    for (host, name, ip) in [(0, "a", A), (0, "n", N), (1, "v", V), (2, "t", T)] {
        let c = lab.container(host, name).expect("container");
        lab.host(host)
            .connect(NET, &c, &ip.to_string())
            .expect("connect");
        containers.push(c);
    }
    let [a, n, v, t] = <[Container; 4]>::try_from(containers).expect("four");

    // Honest traffic, which also fills the ARP caches the attacks below try to poison.
    for (from, to) in [(&a, V), (&n, V), (&n, A), (&t, V), (&v, T)] {
        from.wait_reachable(&to.to_string(), WARMUP)
            .unwrap_or_else(|e| panic!("{} → {to} before any attack: {e:#}", from.name));
    }

    let mut failed = Failures::default();

    // 1. Another container's address as source, across hosts.
    let seen = spy_echo(&v, 0x5151);
    let before = drops(h0);
    replay(&a, echo_burst((mac_for_ip(A), N), me(V), 0x5151));
    settle();
    let got = spied(&v.ns, &seen);
    failed.check(got == 0, || {
        format!("v got {got} echoes from a posing as n")
    });
    failed.counted(h0, &before, "spoofed_source_ip", u64::from(BURST));

    // 2a. A remote endpoint's MAC and address, from a container on the wrong host.
    let seen = spy_echo(&t, 0x5152);
    let before = drops(h0);
    replay(&a, echo_burst(me(V), me(T), 0x5152));
    // 3. ... which must not teach h0's bridge that v lives behind a's port: n still
    // reaches v.
    let learned = learned_on_a_container_port(h0, mac_for_ip(V));
    failed.check(learned.is_empty(), || {
        format!("h0's br0 learned v's MAC on a container's port: {learned:?}")
    });
    failed.pings(&n, V, "after a sent with v's MAC");
    settle();
    let got = spied(&t.ns, &seen);
    failed.check(got == 0, || {
        format!("t got {got} echoes from a posing as v")
    });
    failed.counted(h0, &before, "spoofed_source_mac", u64::from(BURST));

    // 2b. The same frames straight from h0's underlay address (a trusted VTEP, but not v's).
    let seen = spy_echo(&t, 0x5153);
    let before = drops(h2);
    replay_on_wire(&lab, 0, 2, echo_burst(me(V), me(T), 0x5153));
    settle();
    let got = spied(&t.ns, &seen);
    failed.check(got == 0, || {
        format!("t got {got} echoes with v's MAC from h0's VTEP")
    });
    failed.counted(h2, &before, "wrong_source_vtep", u64::from(BURST));

    // 4a. A unicast ARP reply from a, to t on a third host: "v is at a's MAC".
    // 4b. A gratuitous ARP from a to its neighbour on the same host, for v's address.
    let before = drops(h0);
    replay(
        &a,
        vec![arp_frame(mac_for_ip(T), 2, (mac_for_ip(A), V), me(T)); 3],
    );
    replay(
        &a,
        vec![arp_frame(BROADCAST, 1, (mac_for_ip(A), V), ([0; 6], V)); 3],
    );
    settle();
    failed.neighbour(&t, V, V, "unicast ARP reply from a");
    failed.neighbour(&n, V, V, "gratuitous ARP from a");
    failed.counted(h0, &before, "spoofed_arp", 6);
    // 4c. The reply from h0's underlay, with a MAC no endpoint owns.
    let stranger = [0x02, 0x99, 0, 0, 0, 1];
    let before = drops(h2);
    replay_on_wire(
        &lab,
        0,
        2,
        vec![arp_frame(mac_for_ip(T), 2, (stranger, V), me(T)); 3],
    );
    settle();
    failed.neighbour(&t, V, V, "ARP reply on the wire");
    failed.counted(h2, &before, "spoofed_arp", 3);

    // 5. 300 frames to unknown unicast MACs: not one datagram per host each.
    spy(
        h0.ns(),
        "vxlan_out",
        "output",
        &format!("udp dport {VXLAN_PORT}"),
    );
    let before = drops(h0);
    let out_before = spied(h0.ns(), "vxlan_out");
    let frames: Vec<Vec<u8>> = (0..300u16)
        .map(|i| {
            let [hi, lo] = i.to_be_bytes();
            let to = ([0x02, 0x77, 0, 0, hi, lo], Ipv4Addr::new(10, 82, 0, 250));
            icmp_echo_frame(me(A), to, 0x5154, i)
        })
        .collect();
    replay(&a, frames);
    settle();
    let sent = spied(h0.ns(), "vxlan_out") - out_before;
    failed.check(sent < 30, || {
        format!("300 unknown unicast frames became {sent} datagrams")
    });
    failed.counted(h0, &before, "unknown_unicast", 300);

    // A restart puts the guard back in place over the old one, counters kept.
    let before = drops(h0);
    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    lab.start_daemon(0).expect("restart h0");
    let seen = spy_echo(&t, 0x5155);
    replay(&a, echo_burst(me(V), me(T), 0x5155));
    settle();
    let got = spied(&t.ns, &seen);
    failed.check(got == 0, || {
        format!("after a restart, t got {got} echoes from a posing as v")
    });
    failed.counted(h0, &before, "spoofed_source_mac", u64::from(BURST));

    // Honest traffic still flows, on one host and across hosts.
    let back = a.wait_reachable(&V.to_string(), WARMUP);
    if let Err(e) = back {
        failed.0.push(format!("a → v after the restart: {e:#}"));
    }
    for (from, to) in [(&a, V), (&n, A), (&a, N), (&t, V), (&v, A)] {
        failed.pings(from, to, "honest, after the attacks");
    }
    // A container connected later is guarded for what it is, and its entry goes with it.
    let m = lab.container(0, "m").expect("container");
    h0.connect(NET, &m, &M.to_string()).expect("connect m");
    failed.pings(&m, V, "a container connected after the guard was made");
    h0.vxnet_ok(&["network", "disconnect", NET, &m.ns]);
    let table = guard_table(h0);
    let m_mac = format_mac(mac_for_ip(M));
    failed.check(table.contains(&format_mac(mac_for_ip(A))), || {
        format!("the guard does not list a:\n{table}")
    });
    failed.check(!table.contains(&m_mac), || {
        format!("the guard still lets m's MAC in after its disconnect:\n{table}")
    });
    assert!(
        failed.0.is_empty(),
        "attacks that got through or went uncounted:\n{}",
        failed.0.join("\n")
    );
}
