//! Self-tests of the lab on kernel vxlan hosts only: they need no vxnet daemon, so they show
//! that the lab (namespaces, underlay, kernel VTEPs, capture, iperf3, teardown) is sound before
//! any vxnet test blames the daemon.

use std::path::Path;
use std::time::Duration;

use vxnet_tests::iperf::{run_iperf, IperfTest};
use vxnet_tests::lab::topology::host_addr;
use vxnet_tests::netns;
use vxnet_tests::{require_root, HostKind, Lab};

const VNI: u32 = vxnet_tests::scenario::VNI;

/// Two kernel vxlan hosts, one container each: c1 10.10.0.2 on h0, c2 10.10.0.3 on h1; no
/// traffic yet.
fn kernel_pair() -> (Lab, vxnet_tests::Container, vxnet_tests::Container) {
    let p = vxnet_tests::scenario::kernel_pair_cold().expect("kernel-only lab");
    (p.lab, p.c1, p.c2)
}

#[test]
fn underlay_hosts_reach_each_other() {
    if !require_root() {
        return;
    }
    let lab = Lab::builder()
        .hosts(HostKind::KernelVxlan, 2)
        .build()
        .expect("lab");
    let stats =
        vxnet_tests::ping::ping(lab.host(0).ns(), &host_addr(1).to_string(), 3).expect("ping runs");
    assert_eq!(stats.received, 3, "{stats:?}");
}

#[test]
fn kernel_vxlan_containers_ping_over_vxlan_4789() {
    if !require_root() {
        return;
    }
    let (lab, c1, c2) = kernel_pair();
    let capture = lab.capture("udp port 4789").expect("capture");
    let there = c1.ping("10.10.0.3", 3).expect("ping c1 -> c2");
    let back = c2.ping("10.10.0.2", 3).expect("ping c2 -> c1");
    let frames = capture.stop().expect("decode capture");
    assert_eq!(there.received, 3, "c1 -> c2: {there:?}");
    assert_eq!(back.received, 3, "c2 -> c1: {back:?}");

    let shown = vxnet_tests::capture::describe_frames(&frames);
    let echo_requests: Vec<_> = frames.iter().filter(|f| f.icmp_type() == Some(8)).collect();
    assert_eq!(
        echo_requests.len(),
        6,
        "one VXLAN frame per echo request:\n{shown}"
    );
    for f in &frames {
        assert!(f.is_vxlan(), "not decoded as VXLAN: {f}");
        assert_eq!(f.vni(), Some(VNI), "{f}");
        assert_eq!(f.udp_dst_port(), Some(4789), "{f}");
        assert_eq!(f.vxlan_flags(), Some(0x0800), "{f}");
    }
    // Head-end replication: c1's first ARP request crosses the wire exactly once (one peer).
    let requests_from_c1 = frames
        .iter()
        .filter(|f| {
            f.overlay_arp_opcode() == Some(1)
                && f.arp_sender_ip() == Some("10.10.0.2".parse().expect("ip"))
        })
        .count();
    assert_eq!(requests_from_c1, 1, "{shown}");
    // The lab gives containers the vxnet MAC convention.
    assert_eq!(
        c1.neighbour_mac("10.10.0.3").expect("ip neigh").as_deref(),
        Some("02:42:0a:0a:00:03")
    );
}

#[test]
fn kernel_vxlan_iperf3_tcp() {
    if !require_root() {
        return;
    }
    let (lab, c1, c2) = kernel_pair();
    let r = run_iperf(
        &c2.ns,
        &c1.ns,
        "10.10.0.3",
        IperfTest::Tcp { streams: 1 },
        Duration::from_secs(2),
        lab.root(),
    )
    .expect("iperf3 over kernel vxlan");
    assert!(r.bits_per_second > 1e6, "{r:?}");
}

#[test]
fn teardown_removes_namespaces_mounts_and_files() {
    if !require_root() {
        return;
    }
    let (lab, c1, _c2) = kernel_pair();
    // A helper left running inside a container must not keep anything alive.
    lab.spawn_in(&c1.ns, &["sleep", "60"]).expect("helper");
    let namespaces = lab.namespaces();
    let root = lab.root().to_path_buf();
    assert_eq!(namespaces.len(), 5, "underlay, 2 hosts, 2 containers");
    assert!(namespaces.iter().all(|n| netns::exists(n)));
    lab.teardown();
    lab.teardown(); // idempotent
    for n in &namespaces {
        assert!(!netns::exists(n), "{n} survived teardown");
    }
    assert!(!Path::new(&root).exists(), "{} survived", root.display());
    assert!(netns::mounts_under(&root).is_empty());
}

#[test]
fn teardown_runs_when_a_test_panics() {
    if !require_root() {
        return;
    }
    let (names, root) = std::thread::spawn(|| {
        let lab = Lab::builder()
            .hosts(HostKind::KernelVxlan, 1)
            .build()
            .expect("lab");
        let names = lab.namespaces();
        let root = lab.root().to_path_buf();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _lab = lab;
            panic!("deliberate panic inside a lab");
        }));
        assert!(result.is_err());
        (names, root)
    })
    .join()
    .expect("thread");
    assert!(!names.is_empty());
    for n in &names {
        assert!(!netns::exists(n), "{n} survived a panicking test");
    }
    assert!(!root.exists());
}

#[test]
fn labs_in_parallel_do_not_collide() {
    if !require_root() {
        return;
    }
    let a = Lab::builder()
        .hosts(HostKind::KernelVxlan, 1)
        .build()
        .expect("lab a");
    let b = Lab::builder()
        .hosts(HostKind::KernelVxlan, 1)
        .build()
        .expect("lab b");
    assert_ne!(a.prefix(), b.prefix());
    assert_ne!(a.host(0).ns(), b.host(0).ns());
    // Same addresses, separate underlays: each host reaches only its own lab's gateway.
    let ping = vxnet_tests::ping::ping(b.host(0).ns(), "198.18.0.1", 1).expect("ping");
    assert_eq!(ping.received, 1);
}

/// Just enough of the vxnet CLI to be started, polled, killed and restarted by the
/// lab: the daemon records the addresses it sees (to prove it runs in the host namespace) and
/// bind-mounts a "sandbox" namespace under its data dir like the real one.
const FAKE_VXNET: &str = r#"#!/bin/sh
sock=""
if [ "$1" = "--socket" ]; then sock=$2; shift 2; fi
cmd=$1; shift
case "$cmd" in
daemon)
  while [ $# -gt 0 ]; do
    case "$1" in
      --data-dir) dd=$2; shift 2;;
      --socket) sock=$2; shift 2;;
      --advertise-addr) addr=$2; shift 2;;
      *) shift;;
    esac
  done
  mkdir -p "$dd/netns"
  if [ ! -e "$dd/netns/sb0" ]; then
    touch "$dd/netns/sb0"
    unshare --net sh -c "mount --bind /proc/self/ns/net $dd/netns/sb0" || exit 1
  fi
  ip -o addr show > "$dd/addrs.txt"
  echo $$ > "$sock.pid"
  : > "$sock"
  echo "fake daemon up on $addr"
  trap 'echo got TERM; rm -f "$sock"; exit 0' TERM
  while true; do sleep 1 & wait $!; done
  ;;
network)
  pid=$(cat "$sock.pid" 2>/dev/null) || exit 1
  kill -0 "$pid" 2>/dev/null || { echo "vxnet: daemon not running" >&2; exit 1; }
  echo "[]"
  ;;
*) echo "vxnet: unknown command $cmd" >&2; exit 2;;
esac
"#;

#[test]
fn daemon_lifecycle_with_a_stand_in_binary() {
    use std::os::unix::fs::PermissionsExt;
    if !require_root() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vxnet-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join("vxnet");
    std::fs::write(&bin, FAKE_VXNET).expect("write stand-in");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let lab = Lab::builder()
        .host(HostKind::Vxnet)
        .vxnet_bin(&bin)
        .build()
        .expect("lab with a stand-in daemon");
    let host = lab.host(0);
    assert!(host.daemon_running());
    // setns in pre_exec put the daemon in the host namespace...
    let addrs = std::fs::read_to_string(host.data_dir().join("addrs.txt")).expect("addrs.txt");
    assert!(addrs.contains("198.18.0.10/24"), "{addrs}");
    // ...and kept it in our mount namespace: its sandbox bind mount is visible here.
    let sandboxes = host.sandbox_namespaces();
    assert_eq!(sandboxes, vec![host.data_dir().join("netns/sb0")]);
    let links = netns::exec_in_file(&sandboxes[0], &["ip", "-o", "link", "show"])
        .expect("nsenter into the sandbox");
    assert_eq!(
        vxnet_tests::lab::iproute::parse_link_names(&String::from_utf8_lossy(&links.stdout)),
        vec!["lo"]
    );
    assert_eq!(host.vxnet_ok(&["network", "ls"]).trim(), "[]");

    let killed = lab.kill_daemon(0, libc::SIGKILL).expect("kill");
    assert!(killed.is_some_and(|s| !s.success()), "{killed:?}");
    assert!(!host.daemon_running());
    assert!(!host.vxnet(&["network", "ls"]).status.success());
    lab.start_daemon(0).expect("restart on the same data dir");
    assert!(host.daemon_running());
    let stopped = lab.kill_daemon(0, libc::SIGTERM).expect("stop");
    assert!(
        stopped.is_some_and(|s| s.success()),
        "SIGTERM is a clean exit: {stopped:?}"
    );
    lab.start_daemon(0).expect("second restart");
    assert!(host.log_tail(10).contains("fake daemon up"));

    let root = lab.root().to_path_buf();
    drop(lab);
    assert!(
        netns::mounts_under(&root).is_empty(),
        "sandbox mount left behind"
    );
    assert!(!root.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
