//! The sealed topologies of the benchmark (`vxnet-bench --modes vxnet-sealed,kernel-wg`,
//! README "Benchmark"), built as the bench builds them, so they cannot rot between runs:
//! - `vxnet-sealed`: the pair's network is `--encrypted`, its containers have the sealed MTU,
//!   and full-size pings cross it both ways.
//! - `kernel-wg`: kernel vxlan inside kernel WireGuard; full-size pings cross it, and the
//!   underlay leaving host 0 carries WireGuard's UDP 51820 and no VXLAN (UDP 4789) in the
//!   clear, counted by nftables on the host's uplink. On a kernel without WireGuard the
//!   topology must fail with one error that says so (the test then checks that and stops).
//! - `userspace-wg`: the same checks over boringtun, and after the lab is gone no
//!   `boringtun-cli` of it runs and its control sockets are gone. Ignored by default: it needs
//!   `boringtun-cli`, which only `scripts/install-deps.sh --bench` builds (run it with
//!   `cargo test -p vxnet-tests --test sealed_pairs -- --ignored`).

use serde_json::Value;
use vxnet_tests::lab::topology::HOST_UPLINK;
use vxnet_tests::lab::wireguard::boringtun::{socket_path, SOCKET_DIR};
use vxnet_tests::lab::wireguard::{WireGuard, WG_PORT};
use vxnet_tests::lab::{HostKind, Lab};
use vxnet_tests::netns::exec_ok;
use vxnet_tests::ping::ping_with;
use vxnet_tests::scenario::{self, Pair, Sealing, C1_IP, C2_IP, MTU, NET, SEAL_OVERHEAD};
use vxnet_tests::wire::VXLAN_PORT;
use vxnet_tests::{require_root, PingOptions};

/// The MTU of `eth0` in container `ns`.
fn container_mtu(ns: &str) -> u32 {
    exec_ok(ns, &["cat", "/sys/class/net/eth0/mtu"])
        .expect("read the MTU")
        .trim()
        .parse()
        .expect("MTU is a number")
}

/// Three pings each way of the largest size the overlay MTU carries unfragmented: a carrier
/// too small for the overlay MTU (seal or tunnel overhead not taken off) loses them.
fn full_size_pings(pair: &Pair, mtu: u32) {
    for (from, to) in [(&pair.c1, C2_IP), (&pair.c2, C1_IP)] {
        let opts = PingOptions {
            size: Some(mtu - 28),
            ..PingOptions::count(3)
        };
        let stats = ping_with(&from.ns, to, &opts).expect("full-size ping");
        assert_eq!(stats.received, 3, "{} -> {to}: {stats:?}", from.ns);
    }
}

#[test]
fn vxnet_sealed_pair_is_encrypted_and_carries_full_size_pings() {
    if !require_root() {
        return;
    }
    let pair = scenario::vxnet_pair_with(Lab::builder(), Sealing::Sealed).expect("sealed pair");
    let mtu = Sealing::Sealed.mtu(HostKind::Vxnet);
    assert_eq!(mtu, MTU - SEAL_OVERHEAD);
    for h in 0..2 {
        let text = pair.lab.host(h).vxnet_ok(&["network", "inspect", NET]);
        let v: Value = serde_json::from_str(&text).expect("inspect JSON");
        assert_eq!(v[0]["Encrypted"], true, "h{h}: {text}");
        assert_eq!(v[0]["MTU"], mtu, "h{h}: {text}");
    }
    assert_eq!(container_mtu(&pair.c1.ns), mtu);
    full_size_pings(&pair, mtu);
}

/// `nft list counter inet sealcheck NAME` in `ns`: its packet count.
fn nft_packets(ns: &str, name: &str) -> u64 {
    let text = exec_ok(ns, &["nft", "list", "counter", "inet", "sealcheck", name])
        .expect("list the counter");
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {text}"))
}

#[test]
fn kernel_wg_pair_carries_vxlan_only_inside_wireguard() {
    if !require_root() {
        return;
    }
    let pair = match scenario::kernel_pair_with(Lab::builder(), Sealing::Sealed) {
        Ok(pair) => pair,
        Err(e) => {
            let e = format!("{e:#}");
            assert!(
                e.contains("has no WireGuard") && !e.contains('\n'),
                "kernel-wg failed for another reason than a kernel without WireGuard: {e}"
            );
            eprintln!("kernel-wg not checked further: {e}");
            return;
        }
    };
    vxlan_only_inside_wireguard(&pair);
}

/// The kernel pair over WireGuard carries full-size pings, and host 0's uplink sees them as
/// WireGuard and sees no VXLAN.
fn vxlan_only_inside_wireguard(pair: &Pair) {
    let mtu = Sealing::Sealed.mtu(HostKind::KernelVxlan);
    assert_eq!(container_mtu(&pair.c1.ns), mtu);
    let h0 = pair.lab.host(0);
    h0.nft_load(
        "sealcheck",
        &format!(
            "table inet sealcheck {{\n\
             counter wg {{ }}\n\
             counter vxlan {{ }}\n\
             chain out {{\n\
             type filter hook postrouting priority 0; policy accept;\n\
             oifname \"{HOST_UPLINK}\" udp dport {WG_PORT} counter name \"wg\"\n\
             oifname \"{HOST_UPLINK}\" udp dport {VXLAN_PORT} counter name \"vxlan\"\n\
             }}\n\
             }}\n"
        ),
    )
    .expect("nftables counters");
    full_size_pings(pair, mtu);
    let (wg, vxlan) = (nft_packets(h0.ns(), "wg"), nft_packets(h0.ns(), "vxlan"));
    assert!(
        wg >= 6,
        "at least the 6 pings' packets leave as WireGuard: {wg}"
    );
    assert_eq!(vxlan, 0, "VXLAN left host 0 in the clear");
}

#[test]
#[ignore = "needs boringtun-cli (scripts/install-deps.sh --bench)"]
fn userspace_wg_pair_carries_vxlan_only_inside_wireguard_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let pair = scenario::kernel_wg_pair(Lab::builder(), WireGuard::Boringtun)
        .expect("kernel vxlan over boringtun");
    let pids = pair.lab.boringtun_pids();
    assert_eq!(pids.len(), 2, "one boringtun-cli per host");
    // Each host's tunnel is a device of its own name, served on its own socket.
    let devices: Vec<String> = (0..2)
        .map(|h| {
            let text = exec_ok(
                pair.lab.host(h).ns(),
                &["ip", "-o", "link", "show", "type", "tun"],
            )
            .expect("list TUN devices");
            let name = text
                .split(':')
                .nth(1)
                .map(|n| n.trim().to_string())
                .unwrap_or_else(|| panic!("h{h} has no TUN device: {text}"));
            assert!(socket_path(&name).exists(), "{name}: no control socket");
            name
        })
        .collect();
    assert_ne!(devices[0], devices[1]);
    vxlan_only_inside_wireguard(&pair);
    drop(pair);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "boringtun-cli {pid} outlived the lab"
        );
    }
    for d in &devices {
        assert!(
            !socket_path(d).exists(),
            "{d}'s socket outlived the lab in {SOCKET_DIR}"
        );
    }
}
