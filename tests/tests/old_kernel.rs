//! The old-kernel path, run by the real binary: daemons under the lab's 3.10 seccomp filter
//! (`VXNET_LAB_KERNEL`, README "Kernel features") forward TCP with TAP offloads and use
//! neither UDP GSO nor UDP GRO — with `--kernel 3.10` because they are told, without it because
//! detection finds the kernel refusing them. A daemon without the filter on this machine's
//! kernel uses both, so the assertions above can fail; and `--kernel` alone, without the filter,
//! takes away what is newer than its version (4.18: UDP GSO but no GRO; 3.10: neither).
//! Forwarding workers (`--queues`) need a multi-queue TAP (3.8) and `SO_REUSEPORT` (3.9):
//! a daemon asked for three runs three sockets on the VXLAN port and three files on its TAP,
//! under the 3.10 filter too, and one of each with `--kernel 3.8`.

use std::time::Duration;

use vxnet_tests::iperf::{run_iperf, IperfTest};
use vxnet_tests::lab::seccomp::KERNEL_ENV;
use vxnet_tests::lab::{HostKind, Lab};
use vxnet_tests::scenario::{Pair, C1_IP, C2_IP, NET, SUBNET, VNI};
use vxnet_tests::{require_root, Host};

/// The engine's start line ("dataplane offloads ..."), from the daemon log.
fn offloads_line(host: &Host) -> String {
    let log = std::fs::read_to_string(host.log_path()).expect("daemon log");
    log.lines()
        .rev()
        .find(|l| l.contains("dataplane offloads"))
        .unwrap_or_else(|| panic!("no 'dataplane offloads' line in {}:\n{log}", host.name()))
        .to_string()
}

/// `Seccomp_filters` of the daemon process: how many filters bind it.
fn seccomp_filters(host: &Host) -> String {
    let pid = host.daemon_pid().expect("daemon pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .map(|v| v.trim().to_string())
        .expect("the kernel reports Seccomp_filters")
}

/// iperf3 TCP with `streams` streams for 2 s, c1 → c2 then c2 → c1: each carries something.
fn tcp_both_ways(pair: &Pair, streams: u32) {
    for (server, client, ip) in [(&pair.c2, &pair.c1, C2_IP), (&pair.c1, &pair.c2, C1_IP)] {
        let result = run_iperf(
            &server.ns,
            &client.ns,
            ip,
            IperfTest::Tcp { streams },
            Duration::from_secs(2),
            pair.lab.root(),
        )
        .expect("iperf3 across the overlay");
        assert!(
            result.bits_per_second > 1e6,
            "{} -> {}: {result:?}",
            client.ns,
            server.ns
        );
    }
}

/// Two hosts whose daemons start with `env` each, net1 on both, c1 and c2 connected and
/// answering pings.
fn pair(envs: [&[(&str, &str)]; 2]) -> Pair {
    let lab = Lab::builder()
        .hosts(HostKind::Vxnet, 2)
        .start_daemons(false)
        .build()
        .expect("lab");
    for (h, env) in envs.iter().enumerate() {
        lab.host(h)
            .spawn_daemon_with(&[], env)
            .expect("spawn daemon");
    }
    for h in 0..2 {
        lab.host(h)
            .wait_ready(vxnet_tests::lab::daemon::DAEMON_READY_TIMEOUT)
            .expect("daemon ready");
    }
    lab.vxnet_network(NET, VNI, SUBNET, &[0, 1], &[])
        .expect("net1");
    let c1 = lab.container(0, "c1").expect("c1");
    let c2 = lab.container(1, "c2").expect("c2");
    lab.host(0).connect(NET, &c1, C1_IP).expect("connect c1");
    lab.host(1).connect(NET, &c2, C2_IP).expect("connect c2");
    let pair = Pair { lab, c1, c2 };
    pair.wait_connected().expect("c1 and c2 ping each other");
    pair
}

#[test]
fn under_the_3_10_filter_daemons_forward_without_udp_gso_or_gro() {
    if !require_root() {
        return;
    }
    // h0 is told (--kernel 3.10); h1 must find out for itself.
    let pair = pair([&[(KERNEL_ENV, "3.10")], &[(KERNEL_ENV, "3.10-filter-only")]]);
    let (h0, h1) = (pair.lab.host(0), pair.lab.host(1));
    // Three programs: socket options, TUN ioctls, syscall numbers.
    assert_eq!(seccomp_filters(h0), "3", "h0 runs under the filter");
    assert_eq!(seccomp_filters(h1), "3", "h1 runs under the filter");
    // TCP both ways through TAPs with offloads (TSO superframes split, segments coalesced).
    tcp_both_ways(&pair, 1);
    let told = offloads_line(h0);
    for want in ["udp_gso=false", "udp_gro=false", "kernel_limit=3.10"] {
        assert!(
            told.contains(want),
            "h0 (--kernel 3.10): {want} not in {told}"
        );
    }
    let found = offloads_line(h1);
    for want in ["udp_gso=false", "udp_gro=false", "kernel_limit=none"] {
        assert!(
            found.contains(want),
            "h1 (filter only): {want} not in {found}"
        );
    }
    for h in [h0, h1] {
        let log = std::fs::read_to_string(h.log_path()).expect("daemon log");
        assert!(
            !log.contains("refuses TAP offloads"),
            "{}: TAP offloads (3.10 has them) were refused:\n{log}",
            h.name()
        );
    }
}

#[test]
fn without_the_filter_this_kernel_gives_udp_gso_and_gro_unless_kernel_says_no() {
    if !require_root() {
        return;
    }
    let lab = Lab::builder()
        .hosts(HostKind::Vxnet, 3)
        .start_daemons(false)
        .build()
        .expect("lab");
    // Empty: no filter even when the whole run has VXNET_LAB_KERNEL set.
    let no_filter = [(KERNEL_ENV, "")];
    let flags: [&[&str]; 3] = [&[], &["--kernel", "3.10"], &["--kernel", "4.18"]];
    for (h, extra) in flags.iter().enumerate() {
        lab.host(h)
            .start_daemon_with(extra, &no_filter)
            .expect("daemon");
        assert_eq!(seccomp_filters(lab.host(h)), "0");
    }
    // UDP_SEGMENT is 4.18, UDP_GRO 5.0 but trusted from 5.12 only.
    let running = running_kernel();
    assert!(
        running >= (4, 18),
        "this test wants a kernel with UDP GSO, not {running:?}"
    );
    let gro = if running >= (5, 12) {
        "udp_gro=true"
    } else {
        "udp_gro=false"
    };
    let wants: [&[&str]; 3] = [
        &["udp_gso=true", gro, "kernel_limit=none"],
        &["udp_gso=false", "udp_gro=false", "kernel_limit=3.10"],
        &["udp_gso=true", "udp_gro=false", "kernel_limit=4.18"],
    ];
    for (h, want) in wants.iter().enumerate() {
        let line = offloads_line(lab.host(h));
        for w in *want {
            assert!(
                line.contains(w),
                "{} ({:?}): {w} not in {line}",
                lab.host(h).name(),
                flags[h]
            );
        }
    }
}

/// How many UDP sockets are bound on the VXLAN port in `host`'s namespace.
fn vxlan_sockets(host: &Host) -> usize {
    let out = host
        .exec(&["ss", "-H", "-u", "-l", "-n", "sport = :4789"])
        .expect("ss");
    assert!(out.status.success(), "ss: {out:?}");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// How many files the daemon of `host` has open on a TAP named `vxtap0` (the kernel's fdinfo
/// of a TUN file names its device): the queues it reads.
fn tap_queues(host: &Host) -> usize {
    let pid = host.daemon_pid().expect("daemon pid");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("fdinfo");
    fds.filter_map(|fd| std::fs::read_to_string(fd.ok()?.path()).ok())
        .filter(|info| info.lines().any(|l| l == "iff:\tvxtap0"))
        .count()
}

#[test]
fn forwarding_workers_share_the_vxlan_port_and_the_tap() {
    if !require_root() {
        return;
    }
    // h0 runs three workers under the 3.10 filter (3.10 has both features); h1 is told 3.8,
    // which has multi-queue TAPs but no SO_REUSEPORT.
    let lab = Lab::builder()
        .hosts(HostKind::Vxnet, 2)
        .start_daemons(false)
        .build()
        .expect("lab");
    let flags: [&[&str]; 2] = [&["--queues", "3"], &["--queues", "3", "--kernel", "3.8"]];
    let envs = [[(KERNEL_ENV, "3.10-filter-only")], [(KERNEL_ENV, "")]];
    for h in 0..2 {
        lab.host(h)
            .start_daemon_with(flags[h], &envs[h])
            .expect("daemon");
    }
    lab.vxnet_network(NET, VNI, SUBNET, &[0, 1], &[])
        .expect("net1");
    let c1 = lab.container(0, "c1").expect("c1");
    let c2 = lab.container(1, "c2").expect("c2");
    lab.host(0).connect(NET, &c1, C1_IP).expect("connect c1");
    lab.host(1).connect(NET, &c2, C2_IP).expect("connect c2");
    let pair = Pair { lab, c1, c2 };
    pair.wait_connected().expect("c1 and c2 ping each other");
    let (h0, h1) = (pair.lab.host(0), pair.lab.host(1));
    assert_eq!(seccomp_filters(h0), "3", "h0 runs under the filter");
    assert!(
        offloads_line(h0).contains("queues=3"),
        "{}",
        offloads_line(h0)
    );
    assert!(
        offloads_line(h1).contains("queues=1"),
        "{}",
        offloads_line(h1)
    );
    assert_eq!(vxlan_sockets(h0), 3, "h0: a SO_REUSEPORT group of three");
    assert_eq!(vxlan_sockets(h1), 1, "h1: one socket without SO_REUSEPORT");
    assert_eq!(tap_queues(h0), 3, "h0: three files on its TAP");
    assert_eq!(tap_queues(h1), 1, "h1: one file on its TAP");
    // Several flows both ways, spread over the workers, all arrive.
    tcp_both_ways(&pair, 4);
}

/// MAJOR.MINOR of the running kernel.
fn running_kernel() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let mut next = || -> u32 {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("kernel release {release:?}"))
    };
    (next(), next())
}
