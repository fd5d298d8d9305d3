use super::boringtun::{device_name, socket_owner, socket_path};
use super::*;

/// Linux's largest possible pid (`pid_max` is at most 2²²).
const PID_MAX: u32 = 4_194_304;
/// Longest interface name Linux takes (`IFNAMSIZ` − 1).
const IFNAME_MAX: usize = 15;

#[test]
fn boringtun_device_names_fit_an_interface_name_and_differ() {
    for n in [0, 7, 99_999, 100_000, u32::MAX] {
        let name = device_name(PID_MAX, n);
        assert!(name.len() <= IFNAME_MAX, "{name} is too long");
    }
    assert_eq!(device_name(4242, 0), "wg4242-0");
    // Two hosts of one lab, and the same host number in two processes, never share a name:
    // their control sockets share one directory.
    assert_ne!(device_name(4242, 0), device_name(4242, 1));
    assert_ne!(device_name(4242, 0), device_name(4243, 0));
    assert_ne!(device_name(4242, 0), WG_DEV);
    assert_eq!(
        socket_path("wg4242-0"),
        std::path::Path::new("/var/run/wireguard/wg4242-0.sock")
    );
}

#[test]
fn stale_socket_owner_is_read_only_from_lab_device_names() {
    let name = device_name(4242, 3);
    assert_eq!(socket_owner(&format!("{name}.sock")), Some(4242));
    for other in [
        "wg0.sock",
        "wg4242-3",
        "wg-3.sock",
        "wg4242-.sock",
        "wgx-3.sock",
        "utun4242-3.sock",
        "wg4242-3x.sock",
    ] {
        assert_eq!(socket_owner(other), None, "{other}");
    }
}

#[test]
fn tunnel_addresses_are_one_per_host() {
    assert_eq!(wg_addr(0), Ipv4Addr::new(10, 250, 0, 1));
    assert_eq!(wg_addr(1), Ipv4Addr::new(10, 250, 0, 2));
}
