//! A vxnet host and a Linux kernel vxlan host on one overlay: the wire format, checksums and
//! MTU must be what the kernel expects, in both directions.

use std::time::Duration;

use vxnet_tests::capture::describe_frames;
use vxnet_tests::iperf::{run_iperf, IperfTest};
use vxnet_tests::require_root;
use vxnet_tests::scenario::{self, C1_IP, C2_IP, VNI, WARMUP_TIMEOUT};

#[test]
fn vxnet_and_kernel_vxlan_ping_both_ways() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_kernel_pair_cold().expect("vxnet host + kernel host");
    let (vx, kern) = (pair.lab.host(0).addr(), pair.lab.host(1).addr());
    pair.c1
        .wait_reachable(C2_IP, WARMUP_TIMEOUT)
        .expect("vxnet container reaches the kernel container");
    pair.c2
        .wait_reachable(C1_IP, WARMUP_TIMEOUT)
        .expect("kernel container reaches the vxnet container");

    let capture = pair.lab.capture("udp port 4789").expect("capture");
    let there = pair.c1.ping(C2_IP, 5).expect("ping vxnet -> kernel");
    let back = pair.c2.ping(C1_IP, 5).expect("ping kernel -> vxnet");
    // Full-size frames: the MTU (1450) and the inner checksums must be right for the kernel.
    let big = vxnet_tests::ping::ping_with(
        &pair.c1.ns,
        C2_IP,
        &vxnet_tests::PingOptions {
            size: Some(1450 - 28),
            ..vxnet_tests::PingOptions::count(3)
        },
    )
    .expect("large ping");
    let frames = capture.stop().expect("decode");
    assert_eq!(there.received, 5, "vxnet -> kernel {there:?}");
    assert_eq!(back.received, 5, "kernel -> vxnet {back:?}");
    assert_eq!(
        big.received, 3,
        "1450-byte packets vxnet <-> kernel {big:?}"
    );

    let shown = describe_frames(&frames);
    for f in &frames {
        assert_eq!(f.vni(), Some(VNI), "{f}");
        assert_eq!(f.udp_dst_port(), Some(4789), "{f}");
    }
    // Traffic really flows in both directions between the two VTEPs.
    assert!(
        frames
            .iter()
            .any(|f| f.outer_src() == Some(vx) && f.outer_dst() == Some(kern)),
        "nothing from vxnet to the kernel VTEP:\n{shown}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.outer_src() == Some(kern) && f.outer_dst() == Some(vx)),
        "nothing from the kernel VTEP to vxnet:\n{shown}"
    );
}

#[test]
fn vxnet_and_kernel_vxlan_iperf3_tcp() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_kernel_pair_cold().expect("vxnet host + kernel host");
    pair.wait_connected().expect("warm-up ping");
    let duration = Duration::from_secs(3);
    // vxnet container sends, kernel container receives...
    let up = run_iperf(
        &pair.c2.ns,
        &pair.c1.ns,
        C2_IP,
        IperfTest::Tcp { streams: 1 },
        duration,
        pair.lab.root(),
    )
    .expect("iperf3 vxnet -> kernel");
    // ...and the other way round.
    let down = run_iperf(
        &pair.c1.ns,
        &pair.c2.ns,
        C1_IP,
        IperfTest::Tcp { streams: 1 },
        duration,
        pair.lab.root(),
    )
    .expect("iperf3 kernel -> vxnet");
    assert!(up.bits_per_second > 1e6, "vxnet -> kernel {up:?}");
    assert!(down.bits_per_second > 1e6, "kernel -> vxnet {down:?}");
    eprintln!(
        "vxnet<->kernel TCP: {:.2} Gbit/s up, {:.2} Gbit/s down",
        up.bits_per_second / 1e9,
        down.bits_per_second / 1e9
    );
}
