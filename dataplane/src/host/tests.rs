use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::*;
use crate::core::fdb::FdbTarget;
use crate::wire::Vni;

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);

fn endpoint(id: &str, last: u8, location: Location) -> EndpointProgram {
    let ipv4 = Ipv4Addr::new(10, 9, 0, last);
    EndpointProgram {
        id: id.repeat(32),
        mac: MacAddr::for_ipv4(ipv4),
        ipv4,
        location,
        ports: Vec::new(),
        names: vec![id.to_string()],
        target: None,
    }
}

fn network(endpoints: Vec<EndpointProgram>) -> NetworkProgram {
    NetworkProgram {
        id: "ab".repeat(32),
        name: "n1".into(),
        vni: Vni::new(4100).expect("24-bit"),
        mtu: 1450,
        gateway: GATEWAY,
        prefix_len: 24,
        // These tests run in the test process's own namespace: no transit link, no nftables.
        internal: true,
        encrypted: false,
        keys: Vec::new(),
        salts: Salts::default(),
        endpoints,
        flood: vec![REMOTE, PEER],
        trusted: vec![REMOTE, PEER],
        peers: vec![PEER],
    }
}

/// A host on loopback with an ephemeral VXLAN port: enough for everything that needs no
/// namespace.
fn loopback_host(dir: &Path) -> Host {
    Host::start(HostConfig {
        underlay: Ipv4Addr::LOCALHOST,
        vxlan_port: 0,
        offloads: false,
        kernel: None,
        busy_poll: std::time::Duration::ZERO,
        queues: Some(2),
        sandbox_dir: dir.to_path_buf(),
        dns_upstreams: crate::host::dns::Upstreams(Vec::new()),
        etc_netns: dir.join("etc-netns"),
    })
    .expect("start a host on loopback")
}

#[test]
fn veth_names_fit_and_differ_from_the_sandbox_links() {
    let name = veth_name(&"ab".repeat(32));
    assert_eq!(name, "vxabababababab");
    assert!(name.len() <= vxnet_proto::types::IFNAME_MAX);
    assert_ne!(veth_name(&"ta".repeat(32)), sandbox::TAP_NAME);
}

#[test]
fn control_entries_place_endpoints_and_keep_the_gateway_local() {
    let net = network(vec![
        endpoint("0a", 2, Location::Local),
        endpoint("0b", 3, Location::Remote(REMOTE)),
    ]);
    let entries = net.control_entries();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].target, FdbTarget::Local);
    assert_eq!(entries[1].target, FdbTarget::Remote(REMOTE));
    let gw = entries.last().expect("gateway entry");
    assert_eq!(
        (gw.mac, gw.ipv4, gw.target),
        (MacAddr::for_ipv4(GATEWAY), GATEWAY, FdbTarget::Local)
    );
}

#[test]
fn a_network_without_local_endpoints_runs_nothing_and_shows_its_control_entries() {
    let dir = std::env::temp_dir().join(format!("vxnet-host-test-{}", std::process::id()));
    let mut host = loopback_host(&dir);
    let net = network(vec![endpoint("0b", 3, Location::Remote(REMOTE))]);
    let id = net.id.clone();
    let failures = host.apply(
        HostProgram {
            networks: vec![net.into()],
        },
        Instant::now(),
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(host.stats().networks.is_empty(), "no sandbox, no counters");
    let rows = host.fdb(&id, Instant::now());
    let kinds: Vec<(FdbKind, Option<Ipv4Addr>)> = rows.iter().map(|r| (r.kind, r.vtep)).collect();
    assert_eq!(
        kinds,
        [
            (FdbKind::Control, Some(REMOTE)),
            (FdbKind::Static, Some(PEER))
        ]
    );
    assert_eq!(rows[1].mac, MacAddr::ZERO);
    assert_eq!(rows[0].age, Duration::ZERO);
    assert!(host.fdb("unknown", Instant::now()).is_empty());
    let err = host
        .attach(&Attachment {
            network_id: id.clone(),
            endpoint_id: "0b".repeat(32),
            target: PathBuf::from("/proc/self/ns/net"),
            ifname: "eth0".into(),
            mac: MacAddr::for_ipv4(Ipv4Addr::new(10, 9, 0, 3)),
            ipv4: Ipv4Addr::new(10, 9, 0, 3),
            hand_over: false,
        })
        .expect_err("no sandbox here");
    assert!(matches!(err, HostError::NotRunning { .. }), "{err}");
    host.detach(&id, &"0b".repeat(32))
        .expect("detaching where nothing runs is a no-op");
    host.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TAP deleted from outside stops its network's threads: each is reported, once, and a
/// shutdown afterwards reports nothing more and closes the channel.
#[test]
fn a_tap_thread_that_stops_by_itself_is_reported() {
    use crate::host::testutil::{nsexec, root_or_skip, Scratch};

    if !root_or_skip("a_tap_thread_that_stops_by_itself_is_reported") {
        return;
    }
    let scratch = Scratch::new("host-tap-dies");
    let mut host = loopback_host(&scratch.path("netns"));
    let failures = host.take_failures().expect("the failure channel");
    assert!(host.take_failures().is_none(), "given once");
    let net = network(vec![endpoint("0a", 2, Location::Local)]);
    let sandbox = sandbox_path(&scratch.path("netns"), &net.id);
    let failed = host.apply(
        HostProgram {
            networks: vec![net.into()],
        },
        Instant::now(),
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(failures.try_recv().is_err(), "nothing failed yet");

    let deleted = nsexec(&sandbox, &["ip", "link", "del", sandbox::TAP_NAME]);
    assert!(deleted.status.success(), "{deleted:?}");
    // Two workers: the TAP has two queues, each read by its own thread, and each reports.
    let mut stopped: Vec<String> = (0..2)
        .map(|_| {
            failures
                .recv_timeout(Duration::from_secs(5))
                .expect("each TAP thread's end is reported")
                .thread
        })
        .collect();
    stopped.sort();
    assert_eq!(stopped, ["vxnet-tap-4100-0", "vxnet-tap-4100-1"]);
    host.shutdown();
    assert!(
        failures.recv_timeout(Duration::from_secs(5)).is_err(),
        "a shutdown reports nothing, and closes the channel"
    );
    // Sandboxes outlive the host; this one is below the scratch dir's top level.
    netns::remove_pinned_netns(&sandbox).expect("unpin the sandbox");
}
