//! Networks and endpoints in a Raft cluster (README, "Clustering"): a network made on one host
//! exists on every host with the same ID and VNI, addresses are allocated once cluster-wide,
//! the ARP proxy answers for remote endpoints from the replicated state, and a disconnect is
//! forgotten everywhere at once.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vxnet_tests::capture::describe_frames;
use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::lab::topology::in_subnet;
use vxnet_tests::scenario::WARMUP_TIMEOUT;
use vxnet_tests::wire::mac_string_for_ip;
use vxnet_tests::{require_root, wait_for, Lab};

#[test]
fn network_made_on_one_host_is_everywhere_and_every_pair_pings() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    // On host 1, not the seed, and without --peer: membership alone makes it cluster-wide.
    let id = lab
        .host(1)
        .vxnet_ok(&["network", "create", "shared"])
        .trim()
        .to_string();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "create prints the ID: {id:?}"
    );
    let made = lab
        .host(1)
        .inspect_network("shared")
        .expect("inspect on h1");
    assert_eq!(made.id, id);
    for h in [0, 2] {
        let host = lab.host(h);
        host.wait_networks(&["shared"], REPLICATION_TIMEOUT)
            .expect("network replicated");
        let seen = host.inspect_network("shared").expect("inspect");
        assert_eq!(seen.id, made.id, "same ID on h{h}");
        assert_eq!(seen.vni, made.vni, "same VNI on h{h}");
        assert_eq!(seen.subnet, made.subnet, "same subnet on h{h}");
    }

    let containers = lab
        .container_per_host("shared", &[0, 1, 2])
        .expect("a container per host");
    let mut ips: Vec<Ipv4Addr> = containers.iter().map(|(_, ip)| *ip).collect();
    for ip in &ips {
        assert!(
            in_subnet(*ip, &made.subnet).expect("subnet"),
            "{ip} outside {}",
            made.subnet
        );
        assert_ne!(Some(*ip), made.gateway, "the gateway is never given out");
    }
    ips.sort_unstable();
    ips.dedup();
    assert_eq!(ips.len(), 3, "addresses must be distinct: {containers:?}");

    let names: Vec<&str> = containers.iter().map(|(c, _)| c.ns.as_str()).collect();
    for h in 0..3 {
        let net = lab
            .host(h)
            .wait_endpoints("shared", &names, REPLICATION_TIMEOUT)
            .expect("every endpoint listed on every host");
        for (c, ip) in &containers {
            let ep = net.endpoint(&c.ns).expect("listed");
            assert_eq!(ep.ipv4, *ip, "h{h} shows {} with another address", c.ns);
            assert_eq!(ep.mac, mac_string_for_ip(*ip), "MAC is 02:42 + the address");
        }
    }
    for (from, _) in &containers {
        for (to, to_ip) in &containers {
            if from == to {
                continue;
            }
            let to_ip = to_ip.to_string();
            from.wait_reachable(&to_ip, WARMUP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{} -> {}: {e:#}", from.name, to.name));
            let s = from.ping(&to_ip, 3).expect("ping runs");
            assert_eq!(s.received, 3, "{} -> {}: {s:?}", from.name, to.name);
        }
    }
}

#[test]
fn first_ping_sends_no_arp_over_the_wire() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(2).expect("two hosts in one cluster");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.40.0.0/24", "arpnet"]);
    lab.host(1)
        .wait_networks(&["arpnet"], REPLICATION_TIMEOUT)
        .expect("network replicated");
    let vni = lab.host(0).inspect_network("arpnet").expect("inspect").vni;
    let c1 = lab.container(0, "c1").expect("c1");
    let c2 = lab.container(1, "c2").expect("c2");
    let ip1 = lab.host(0).connect_auto("arpnet", &c1).expect("connect c1");
    let ip2 = lab.host(1).connect_auto("arpnet", &c2).expect("connect c2");
    // Both daemons must know both endpoints before the first packet: that is what lets them
    // answer ARP themselves.
    let macs = vec![mac_string_for_ip(ip1), mac_string_for_ip(ip2)];
    for h in 0..2 {
        lab.host(h)
            .wait_fdb("arpnet", &macs, true, REPLICATION_TIMEOUT)
            .expect("both endpoints in the fdb");
    }
    assert_eq!(c1.neighbour_mac(&ip2.to_string()).expect("ip neigh"), None);

    let capture = lab.capture("udp port 4789").expect("capture");
    let first = c1.ping(&ip2.to_string(), 3).expect("ping");
    let frames = capture.stop().expect("decode capture");
    let shown = describe_frames(&frames);
    assert!(first.received >= 1, "first ping: {first:?}");
    // Neither c1 resolving c2 nor c2 resolving c1 to answer: the cluster knows every endpoint's
    // IP and MAC, so no ARP request is ever flooded.
    let requests: Vec<_> = frames
        .iter()
        .filter(|f| f.overlay_arp_opcode() == Some(1))
        .collect();
    assert!(
        requests.is_empty(),
        "ARP requests crossed the wire although the cluster knows both endpoints:\n{shown}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.icmp_type() == Some(8) && f.inner_src() == Some(ip1)),
        "no echo request from c1 on the wire:\n{shown}"
    );
    for f in &frames {
        assert_eq!(
            f.vni(),
            Some(u32::try_from(vni).expect("24-bit VNI")),
            "{f}"
        );
    }
    assert_eq!(
        c1.neighbour_mac(&ip2.to_string()).expect("ip neigh"),
        Some(mac_string_for_ip(ip2)),
        "the proxy must answer with c2's real MAC"
    );
}

#[test]
fn disconnect_is_forgotten_everywhere_within_a_second_and_frees_the_address() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(3).expect("three hosts in one cluster");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.50.0.0/24", "dis"]);
    for h in 1..3 {
        lab.host(h)
            .wait_networks(&["dis"], REPLICATION_TIMEOUT)
            .expect("network replicated");
    }
    let containers = lab
        .container_per_host("dis", &[0, 1, 2])
        .expect("a container per host");
    let macs: Vec<String> = containers
        .iter()
        .map(|(_, ip)| mac_string_for_ip(*ip))
        .collect();
    for h in 0..3 {
        lab.host(h)
            .wait_fdb("dis", &macs, true, REPLICATION_TIMEOUT)
            .expect("every endpoint in every fdb");
    }
    let (c0, _) = &containers[0];
    let (c1, ip1) = &containers[1];
    // Real traffic first, so any entry a host may have learned from the wire exists too.
    c0.wait_reachable(&ip1.to_string(), WARMUP_TIMEOUT)
        .expect("c0 -> c1 before the disconnect");

    lab.host(1)
        .vxnet_ok(&["network", "disconnect", "dis", &c1.ns]);
    let disconnected = Instant::now();
    let gone_mac = mac_string_for_ip(*ip1);
    // Poll well past the 1 s budget so a slow host is reported with its time, not as a hang.
    let forgotten_after = wait_for(
        &format!("every host to forget {gone_mac}"),
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            let mut still = Vec::new();
            for h in 0..3 {
                // An fdb query that fails is a failure of the test, not a "not yet".
                if lab.host(h).fdb_has_mac("dis", &gone_mac).expect("fdb") {
                    still.push(format!("h{h}"));
                }
            }
            if still.is_empty() {
                Ok(Some(disconnected.elapsed()))
            } else {
                anyhow::bail!("{still:?} still hold {gone_mac}")
            }
        },
    )
    .unwrap_or_else(|e| panic!("MAC never forgotten: {e:#}"));
    assert!(
        forgotten_after <= Duration::from_secs(1),
        "every host must forget {gone_mac} within 1 s of the disconnect; took {forgotten_after:?}"
    );
    for h in 0..3 {
        let net = lab.host(h).inspect_network("dis").expect("inspect");
        assert!(net.endpoint(&c1.ns).is_none(), "h{h} still lists c1");
    }

    // The address is free again: the next connect without --ip gets it (lowest free address),
    // here on another host, so the same MAC now lives behind another VTEP.
    let c3 = lab.container(2, "c3").expect("c3");
    let ip3 = lab.host(2).connect_auto("dis", &c3).expect("connect c3");
    assert_eq!(ip3, *ip1, "the freed address is reused");
    lab.host(0)
        .wait_fdb("dis", &[mac_string_for_ip(ip3)], true, REPLICATION_TIMEOUT)
        .expect("c3 known on h0");
    let entry = lab
        .host(0)
        .fdb("dis")
        .expect("fdb")
        .into_iter()
        .find(|e| e.mac == mac_string_for_ip(ip3))
        .expect("present");
    assert_eq!(
        entry.vtep,
        Some(lab.host(2).addr()),
        "the reused MAC must point at c3's host, not c1's old one"
    );
    c0.wait_reachable(&ip3.to_string(), WARMUP_TIMEOUT)
        .expect("c0 reaches c3 at the reused address");
}

#[test]
fn an_endpoint_whose_namespace_is_deleted_is_removed_everywhere_within_2s() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(2).expect("two hosts in one cluster");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.51.0.0/24", "gone"]);
    lab.host(1)
        .wait_networks(&["gone"], REPLICATION_TIMEOUT)
        .expect("network replicated");
    let containers = lab
        .container_per_host("gone", &[0, 1])
        .expect("a container per host");
    let (c1, ip1) = &containers[1];
    let gone_mac = mac_string_for_ip(*ip1);
    lab.host(0)
        .wait_fdb(
            "gone",
            std::slice::from_ref(&gone_mac),
            true,
            REPLICATION_TIMEOUT,
        )
        .expect("c1 known on h0");

    // The container exits: its namespace goes, and the veth with it. Nobody disconnects.
    let status = std::process::Command::new("ip")
        .args(["netns", "del", &c1.ns])
        .status()
        .expect("run ip netns del");
    assert!(status.success(), "ip netns del {}", c1.ns);
    let deleted = Instant::now();
    let removed_after = wait_for(
        &format!("both hosts to drop the endpoint of {}", c1.ns),
        Duration::from_secs(6),
        Duration::from_millis(20),
        || {
            let mut still = Vec::new();
            for h in 0..2 {
                let net = lab.host(h).inspect_network("gone")?;
                if net.endpoint(&c1.ns).is_some() || lab.host(h).fdb_has_mac("gone", &gone_mac)? {
                    still.push(format!("h{h}"));
                }
            }
            if still.is_empty() {
                Ok(Some(deleted.elapsed()))
            } else {
                anyhow::bail!("{still:?} still list it")
            }
        },
    )
    .unwrap_or_else(|e| panic!("endpoint never removed: {e:#}"));
    assert!(
        removed_after <= Duration::from_secs(2),
        "an endpoint whose namespace is gone must be removed within 2 s; took {removed_after:?}"
    );
    // Its address is free again.
    let c2 = lab.container(0, "c2").expect("c2");
    let ip2 = lab.host(0).connect_auto("gone", &c2).expect("connect c2");
    assert_eq!(ip2, *ip1, "the dead container's address is reused");
}

/// A network's MTU is fixed cluster-wide when it is created (from the creating host's
/// underlay); a host whose own underlay cannot carry it says so, in its log and in `inspect`
/// ("Warnings"), instead of dropping large packets in silence.
#[test]
fn a_host_whose_underlay_cannot_carry_the_mtu_says_so() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).expect("two hosts");
    // h1's underlay is smaller than h0's: restarted so that its daemon reads the new MTU.
    lab.kill_daemon(1, libc::SIGTERM).expect("stop h1");
    let out = lab
        .host(1)
        .exec(&["ip", "link", "set", "eth0", "mtu", "1400"])
        .expect("ip link set");
    assert!(out.status.success(), "{out:?}");
    lab.start_daemon(1).expect("restart h1");
    lab.form_cluster(&[0, 1]).expect("one cluster");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.53.0.0/24", "wide"]);
    lab.host(1)
        .wait_networks(&["wide"], REPLICATION_TIMEOUT)
        .expect("replicated");
    let warnings = |h: usize| {
        let raw = lab.host(h).vxnet_ok(&["network", "inspect", "wide"]);
        let v = vxnet_tests::vxnet_json::parse(&raw).expect("JSON");
        assert_eq!(v[0]["MTU"], 1450, "the creator's underlay decides: {raw}");
        v[0]["Warnings"]
            .as_array()
            .expect("Warnings is an array")
            .iter()
            .map(|w| w.as_str().expect("a sentence").to_string())
            .collect::<Vec<_>>()
    };
    assert!(warnings(0).is_empty(), "h0 carries 1450");
    let on_h1 = warnings(1);
    assert!(
        on_h1.len() == 1 && on_h1[0].contains("1350") && on_h1[0].contains("1450"),
        "h1 must say it carries 1350 of the 1450: {on_h1:?}"
    );
    assert!(
        lab.host(1)
            .log_tail(100)
            .contains("network wide: this host's underlay"),
        "h1 logs it:\n{}",
        lab.host(1).log_tail(20)
    );
}
