use super::*;
use crate::host::testutil::{add_veth, nsexec, root_or_skip, unique, Scratch};
use crate::wire::{
    testing, ArpOperation, ArpPacket, EtherType, EthernetFrame, ETHERNET_HEADER_LEN,
};
use std::time::{Duration, Instant};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const MTU: u32 = 1450;

fn spec_in(scratch: &Scratch) -> SandboxSpec {
    SandboxSpec {
        netns_path: scratch.path("sandbox"),
        gateway: GATEWAY,
        prefix_len: 24,
        mtu: MTU,
    }
}

/// A container namespace pinned in the scratch dir.
fn container(scratch: &Scratch, name: &str) -> PathBuf {
    let path = scratch.path(name);
    netns::create_pinned_netns(&path).expect("pin container netns");
    path
}

fn endpoint(target: &Path, ifname: &str, host: u8) -> EndpointSpec {
    let ipv4 = Ipv4Addr::new(10, 77, 0, host);
    EndpointSpec {
        target: target.to_path_buf(),
        ifname: ifname.to_string(),
        mac: MacAddr::for_ipv4(ipv4),
        ipv4,
        prefix_len: 24,
        mtu: MTU,
        default_route: None,
        hand_over: false,
        veth_name: unique("vxv"),
    }
}

fn find<'a>(links: &'a [LinkSummary], name: &str) -> Option<&'a LinkSummary> {
    links.iter().find(|l| l.name == name)
}

fn names(ns: &Path) -> Vec<String> {
    let mut names: Vec<String> = netns::links(ns)
        .expect("list links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    names.sort();
    names
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn ensure_creates_adopts_and_recreates_after_reboot() {
    if !root_or_skip("ensure_creates_adopts_and_recreates_after_reboot") {
        return;
    }
    let scratch = Scratch::new("ensure");
    let spec = spec_in(&scratch);
    let sandbox = Sandbox::ensure(spec.clone()).expect("ensure");
    let links = sandbox.links().expect("links");
    assert!(find(&links, "lo").expect("lo").up);
    let br = find(&links, BRIDGE_NAME).expect("br0").clone();
    assert!(br.up);
    assert_eq!(br.mtu, MTU);
    assert_eq!(br.mac, Some(sandbox.gateway_mac()));
    assert_eq!(br.ipv4, [(GATEWAY, 24)]);

    // A restarted daemon: same spec, nothing duplicated, same bridge.
    let adopted = Sandbox::ensure(spec.clone()).expect("ensure again");
    let again = adopted.links().expect("links");
    assert_eq!(find(&again, BRIDGE_NAME), Some(&br));
    assert_eq!(again.len(), links.len());

    // A reboot: the pin file is left empty.
    adopted.destroy().expect("destroy");
    assert!(!spec.netns_path.exists());
    drop(sandbox);
    std::fs::write(&spec.netns_path, b"").expect("stale pin");
    let fresh = Sandbox::ensure(spec).expect("ensure after reboot");
    let br = fresh.links().expect("links");
    assert_eq!(find(&br, BRIDGE_NAME).expect("br0").ipv4, [(GATEWAY, 24)]);
}

#[test]
fn open_tap_makes_a_persistent_bridge_port_and_replaces_leftovers() {
    if !root_or_skip("open_tap_makes_a_persistent_bridge_port_and_replaces_leftovers") {
        return;
    }
    let scratch = Scratch::new("tap");
    let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
    // A leftover of the same name, which must not stop the TAP from being made.
    add_veth(sandbox.netns_path(), TAP_NAME, "leftover-peer");
    let leftover = find(&sandbox.links().expect("links"), TAP_NAME)
        .expect("leftover")
        .index;

    let queues = sandbox
        .open_tap(TapShape {
            offloads: false,
            multi_queue: true,
            queues: 3,
        })
        .expect("open tap");
    assert_eq!(queues.len(), 3, "one file per queue");
    let links = sandbox.links().expect("links");
    let br = find(&links, BRIDGE_NAME).expect("br0");
    let port = find(&links, TAP_NAME).expect("vxtap0");
    assert_ne!(port.index, leftover);
    assert!(port.up);
    assert_eq!(port.mtu, MTU);
    assert_eq!(port.controller, Some(br.index));
    assert_eq!(
        br.mac,
        Some(sandbox.gateway_mac()),
        "a port must not change br0's MAC"
    );
    let shown = nsexec(
        sandbox.netns_path(),
        &["ip", "-o", "link", "show", TAP_NAME],
    );
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("qlen {TAP_QUEUE_LEN}")),
        "the TAP's queue is {TAP_QUEUE_LEN} frames: {shown}"
    );
    let details = nsexec(
        sandbox.netns_path(),
        &["ip", "-d", "-o", "link", "show", TAP_NAME],
    );
    let details = String::from_utf8_lossy(&details.stdout);
    assert!(
        details.contains("multi_queue"),
        "a multi-queue TAP: {details}"
    );

    let tap_was_offloaded = queues.iter().any(|q| q.tcp_gso());
    drop(queues);
    assert!(!tap_was_offloaded, "asked for no offloads");
    // Persistent: the daemon's exit (the fd closed) leaves the port where it is, and the next
    // open takes the same device, whatever its offloads.
    std::thread::sleep(Duration::from_millis(200));
    let after = sandbox.links().expect("links");
    let kept = find(&after, TAP_NAME).expect("vxtap0 outlives its fd");
    assert_eq!((kept.index, kept.controller), (port.index, Some(br.index)));
    // Another number of queues attaches to the same device.
    let again = sandbox
        .open_tap(TapShape {
            offloads: true,
            multi_queue: true,
            queues: 2,
        })
        .expect("reopen tap");
    let reopened = sandbox.links().expect("links");
    assert_eq!(find(&reopened, TAP_NAME).expect("vxtap0").index, port.index);
    // Kernels since 2.6.27 take TSO on a TAP; this one must, on every queue.
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|q| q.tcp_gso()), "asked for offloads");
    drop(again);
    // A TAP made with other flags (an older daemon's single-queue one) is made afresh.
    let single = sandbox.open_tap(ONE_QUEUE).expect("open single-queue");
    assert_eq!(single.len(), 1);
    let replaced = sandbox.links().expect("links");
    let fresh = find(&replaced, TAP_NAME).expect("vxtap0");
    assert_ne!(fresh.index, port.index, "the multi-queue TAP was replaced");
    assert_eq!(fresh.controller, Some(br.index), "and the new one wired");
}

/// A plain TAP: one queue, no offloads.
const ONE_QUEUE: TapShape = TapShape {
    offloads: false,
    multi_queue: false,
    queues: 1,
};

#[test]
fn connect_wires_endpoints_and_the_gateway_answers() {
    if !root_or_skip("connect_wires_endpoints_and_the_gateway_answers") {
        return;
    }
    let scratch = Scratch::new("connect");
    let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
    let c1 = container(&scratch, "c1");
    let c2 = container(&scratch, "c2");
    let ep1 = endpoint(&c1, &netns::next_free_ifname(&c1).expect("ifname"), 2);
    assert_eq!(ep1.ifname, "eth0");
    let ep2 = endpoint(&c2, "eth7", 3);
    sandbox.connect(&ep1).expect("connect c1");
    sandbox.connect(&ep2).expect("connect c2");

    let inside = netns::links(&c1).expect("links in c1");
    assert_eq!(inside.len(), 2, "lo and eth0: {inside:?}");
    assert!(find(&inside, "lo").expect("lo").up);
    let eth0 = find(&inside, "eth0").expect("eth0");
    assert!(eth0.up);
    assert_eq!(eth0.mac, Some(MacAddr([0x02, 0x42, 10, 77, 0, 2])));
    assert_eq!(eth0.mtu, MTU);
    assert_eq!(eth0.ipv4, [(Ipv4Addr::new(10, 77, 0, 2), 24)]);
    assert!(find(&netns::links(&c2).expect("links in c2"), "eth7").is_some());

    let links = sandbox.links().expect("sandbox links");
    let br = find(&links, BRIDGE_NAME).expect("br0");
    assert_eq!(
        br.mac,
        Some(sandbox.gateway_mac()),
        "ports must not change br0's MAC"
    );
    for ep in [&ep1, &ep2] {
        let veth = find(&links, &ep.veth_name).expect("sandbox end");
        assert!(veth.up);
        assert_eq!(veth.mtu, MTU);
        assert_eq!(veth.controller, Some(br.index));
    }

    for (from, to) in [(&c1, "10.77.0.1"), (&c1, "10.77.0.3"), (&c2, "10.77.0.2")] {
        let out = nsexec(from, &["ping", "-c", "2", "-W", "1", to]);
        assert!(
            out.status.success(),
            "ping {to} from {}: {}{}",
            from.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn failed_connects_leave_nothing_behind() {
    if !root_or_skip("failed_connects_leave_nothing_behind") {
        return;
    }
    let scratch = Scratch::new("fail");
    let spec = spec_in(&scratch);
    let sandbox = Sandbox::ensure(spec.clone()).expect("ensure");
    let c1 = container(&scratch, "c1");
    let c2 = container(&scratch, "c2");
    let first = endpoint(&c1, "eth0", 2);
    sandbox.connect(&first).expect("connect");
    let before = names(sandbox.netns_path());

    // The interface name is taken in the target.
    let taken = endpoint(&c1, "eth0", 3);
    let err = sandbox.connect(&taken).expect_err("ifname taken");
    assert!(matches!(err, HostError::IfnameTaken { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "interface \"eth0\" already exists in network namespace {}; choose another --ifname",
            c1.display()
        )
    );
    assert_eq!(names(sandbox.netns_path()), before);
    assert_eq!(names(&c1), ["eth0", "lo"]);

    // The sandbox-side name is taken: the existing endpoint must survive.
    let mut twin = endpoint(&c2, "eth0", 4);
    twin.veth_name = first.veth_name.clone();
    let err = sandbox.connect(&twin).expect_err("veth exists");
    assert!(matches!(err, HostError::VethExists { .. }), "{err}");
    assert_eq!(names(sandbox.netns_path()), before);
    assert_eq!(names(&c2), ["lo"]);
    assert_eq!(names(&c1), ["eth0", "lo"]);

    // Not a namespace; a bad name.
    let plain = scratch.path("plain");
    std::fs::write(&plain, b"").expect("plain file");
    let err = sandbox
        .connect(&endpoint(&plain, "eth0", 5))
        .expect_err("not a netns");
    assert!(matches!(err, HostError::NotANetns { .. }), "{err}");
    let err = sandbox
        .connect(&endpoint(&c2, "much-too-long-name", 5))
        .expect_err("bad ifname");
    assert!(matches!(err, HostError::InvalidIfname { .. }), "{err}");

    // A failure after the pair exists (a damaged sandbox without br0) is rolled back.
    crate::host::netns::in_netns(sandbox.netns_path(), |h| async move {
        let br = link_index(&h, BRIDGE_NAME).await?.expect("br0 exists");
        delete_link(&h, br, BRIDGE_NAME).await
    })
    .expect("delete br0");
    let late = endpoint(&c2, "eth0", 6);
    let err = sandbox.connect(&late).expect_err("no bridge");
    assert!(matches!(err, HostError::BridgeMissing { .. }), "{err}");
    assert!(find(&sandbox.links().expect("links"), &late.veth_name).is_none());
    assert_eq!(names(&c2), ["lo"]);

    // ensure() repairs the sandbox, and the same endpoint now connects.
    let sandbox = Sandbox::ensure(spec).expect("repair");
    sandbox.connect(&late).expect("connect after repair");
    assert_eq!(names(&c2), ["eth0", "lo"]);
}

#[test]
fn disconnect_removes_both_ends_and_is_idempotent() {
    if !root_or_skip("disconnect_removes_both_ends_and_is_idempotent") {
        return;
    }
    let scratch = Scratch::new("disc");
    let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
    let c1 = container(&scratch, "c1");
    let ep = endpoint(&c1, "eth0", 2);
    sandbox.connect(&ep).expect("connect");
    sandbox.disconnect(&ep.veth_name).expect("disconnect");
    assert!(find(&sandbox.links().expect("links"), &ep.veth_name).is_none());
    assert_eq!(names(&c1), ["lo"]);
    sandbox.disconnect(&ep.veth_name).expect("disconnect again");
    // The same endpoint can come back.
    sandbox.connect(&ep).expect("reconnect");
    assert_eq!(names(&c1), ["eth0", "lo"]);
}

#[test]
fn destroy_takes_container_ends_along() {
    if !root_or_skip("destroy_takes_container_ends_along") {
        return;
    }
    let scratch = Scratch::new("destroy");
    let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
    let c1 = container(&scratch, "c1");
    sandbox.connect(&endpoint(&c1, "eth0", 2)).expect("connect");
    let pin = sandbox.netns_path().to_path_buf();
    sandbox.destroy().expect("destroy");
    assert!(!pin.exists());
    // Namespace teardown runs in a kernel work queue: give it a moment.
    assert!(
        wait_until(Duration::from_secs(10), || names(&c1) == ["lo"]),
        "container end still there: {:?}",
        names(&c1)
    );
}

/// An ARP packet, just the fields the tests look at.
/// The ARP packet in `frame`, if it carries one.
fn arp_in(frame: &[u8]) -> Option<ArpPacket<&[u8]>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::ARP {
        return None;
    }
    ArpPacket::new_checked(&frame[ETHERNET_HEADER_LEN..]).ok()
}

/// An ARP request as a container would send it, padded to the Ethernet minimum.
fn arp_request(sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = testing::arp(1, (sha, spa), tpa);
    f.resize(60, 0);
    f
}

/// Reads frames from the TAP until one satisfies `want`, or gives up after `timeout`;
/// other traffic (IPv6 router solicitations, MLD reports) is skipped.
fn read_until(tap: &SyncDevice, timeout: Duration, want: impl Fn(&[u8]) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        match tap.recv(&mut buf) {
            Ok(n) if want(&buf[..n]) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("read from the TAP: {e}"),
        }
    }
    false
}

#[test]
fn tap_is_wired_to_the_bridge_both_ways() {
    if !root_or_skip("tap_is_wired_to_the_bridge_both_ways") {
        return;
    }
    let scratch = Scratch::new("wire");
    let sandbox = Sandbox::ensure(spec_in(&scratch)).expect("ensure");
    let tap = sandbox
        .open_tap(ONE_QUEUE)
        .expect("open tap")
        .pop()
        .expect("a queue");
    tap.set_nonblocking(true).expect("nonblocking");
    let c1 = container(&scratch, "c1");
    let ep = endpoint(&c1, "eth0", 2);
    sandbox.connect(&ep).expect("connect");

    // Container → TAP: an ARP broadcast for an address nobody has is flooded to vxtap0.
    let nobody = Ipv4Addr::new(10, 77, 0, 99);
    let mut ping = std::process::Command::new("nsenter")
        .arg(format!("--net={}", c1.display()))
        .args(["ping", "-c", "2", "-W", "1", "10.77.0.99"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ping");
    let seen = read_until(&tap, Duration::from_secs(5), |f| {
        arp_in(f).is_some_and(|a| {
            a.operation() == ArpOperation::Request
                && a.sender_mac() == ep.mac
                && a.target_ip() == nobody
        })
    });
    let _ = ping.wait();
    assert!(seen, "the container's ARP broadcast never reached the TAP");

    // TAP → bridge: ARP requests written to the fd reach br0 and the container, whose
    // replies come back out of the TAP to the sender's MAC.
    let me = MacAddr([0x02, 0, 0, 0, 0, 0x42]);
    let my_ip = Ipv4Addr::new(10, 77, 0, 200);
    for (ask, mac) in [(GATEWAY, sandbox.gateway_mac()), (ep.ipv4, ep.mac)] {
        let sent = tap
            .send(&arp_request(me, my_ip, ask))
            .expect("write to the TAP");
        assert_eq!(sent, 60);
        let answered = read_until(&tap, Duration::from_secs(5), |f| {
            f[..6] == me.0
                && arp_in(f).is_some_and(|a| {
                    a.operation() == ArpOperation::Reply
                        && a.sender_mac() == mac
                        && a.sender_ip() == ask
                        && a.target_mac() == me
                        && a.target_ip() == my_ip
                })
        });
        assert!(answered, "no ARP reply for {ask} came out of the TAP");
    }
}
