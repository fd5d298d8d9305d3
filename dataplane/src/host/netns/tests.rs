use super::*;
use crate::host::testutil::{add_veth, root_or_skip, unique, Scratch};

fn own_netns() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").expect("read own netns")
}

#[test]
fn pinned_netns_lifecycle() {
    if !root_or_skip("pinned_netns_lifecycle") {
        return;
    }
    let scratch = Scratch::new("pin");
    let pin = scratch.path("sub/dir/ns");
    assert!(!is_live_netns(&pin));

    create_pinned_netns(&pin).expect("create pinned netns");
    assert!(is_live_netns(&pin));
    let err = create_pinned_netns(&pin).expect_err("second pin on a live one");
    assert!(err.to_string().contains("already pinned"), "{err}");

    let names: Vec<String> = links(&pin)
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["lo"], "a fresh namespace has only lo");

    remove_pinned_netns(&pin).expect("remove");
    assert!(!pin.exists());
    assert!(!is_live_netns(&pin));
    remove_pinned_netns(&pin).expect("removing twice is fine");
}

#[test]
fn stale_pin_file_is_not_live_and_is_reused() {
    if !root_or_skip("stale_pin_file_is_not_live_and_is_reused") {
        return;
    }
    let scratch = Scratch::new("stale");
    let pin = scratch.path("ns");
    // What a pin looks like after a reboot: an empty regular file.
    std::fs::write(&pin, b"").expect("write stale pin");
    assert!(!is_live_netns(&pin));
    let err = open_netns(&pin).expect_err("empty file is not a netns");
    assert!(matches!(err, HostError::NotANetns { .. }), "{err}");

    create_pinned_netns(&pin).expect("re-pin over stale file");
    assert!(is_live_netns(&pin));
}

#[test]
fn in_netns_works_inside_and_leaves_caller_alone() {
    if !root_or_skip("in_netns_works_inside_and_leaves_caller_alone") {
        return;
    }
    let scratch = Scratch::new("inns");
    let pin = scratch.path("ns");
    create_pinned_netns(&pin).expect("pin");
    let before = own_netns();
    add_veth(&pin, &unique("vxd"), &unique("vxd"));
    assert_eq!(own_netns(), before, "caller thread must not move");
    let inside = links(&pin).expect("links inside");
    assert!(inside.iter().any(|l| l.name.starts_with("vxd")));
    let here = links(Path::new("/proc/self/ns/net")).expect("links here");
    assert!(!here.iter().any(|l| l.name.starts_with("vxd")));

    let seen = run_in_netns(&pin, || Ok(own_netns())).expect("run inside");
    assert_ne!(seen, before);
}

#[test]
fn next_free_ifname_skips_taken_names() {
    if !root_or_skip("next_free_ifname_skips_taken_names") {
        return;
    }
    let scratch = Scratch::new("ifname");
    let pin = scratch.path("ns");
    create_pinned_netns(&pin).expect("pin");
    assert_eq!(next_free_ifname(&pin).expect("free"), "eth0");
    add_veth(&pin, "eth0", "eth1");
    add_veth(&pin, "eth3", "peer3");
    assert_eq!(next_free_ifname(&pin).expect("free"), "eth2");
}

#[test]
fn resolve_target_forms_and_errors() {
    if !root_or_skip("resolve_target_forms_and_errors") {
        return;
    }
    let pid = std::process::id();
    assert_eq!(
        resolve_target(&format!("pid:{pid}")).expect("own pid"),
        PathBuf::from(format!("/proc/{pid}/ns/net"))
    );
    assert_eq!(
        resolve_target("/proc/self/ns/net").expect("absolute path"),
        PathBuf::from("/proc/self/ns/net")
    );

    let name = unique("vxnet-nope-");
    let err = resolve_target(&name).expect_err("missing name");
    assert_eq!(
        err.to_string(),
        format!(
            "network namespace \"{name}\" not found (looked in /var/run/netns/{name}); \
             create it with `ip netns add {name}`"
        )
    );
    let err = resolve_target("pid:abc").expect_err("bad pid");
    assert!(matches!(err, HostError::InvalidTarget { .. }), "{err}");
    assert!(err.to_string().contains("pid:abc"), "{err}");
    let err = resolve_target("pid:4000000000").expect_err("no such pid");
    assert!(matches!(err, HostError::ProcessNotFound { .. }), "{err}");
    let err = resolve_target("relative/path").expect_err("relative path");
    assert!(err.to_string().contains("absolute"), "{err}");
    let err = resolve_target("/nonexistent/vxnet/ns").expect_err("missing path");
    assert!(matches!(err, HostError::NetnsFileNotFound { .. }), "{err}");
    // Another kind of namespace, and a plain file.
    let err = resolve_target("/proc/self/ns/uts").expect_err("uts ns");
    assert!(matches!(err, HostError::NotANetns { .. }), "{err}");
    let err = resolve_target("/etc/hostname").expect_err("plain file");
    assert!(
        err.to_string().contains("is not a network namespace"),
        "{err}"
    );

    // A name made by `ip netns add`.
    struct IpNetns(String);
    impl Drop for IpNetns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let named = IpNetns(unique("vxnet-t-"));
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &named.0])
        .status()
        .expect("run ip netns add");
    assert!(status.success());
    assert_eq!(
        resolve_target(&named.0).expect("named netns"),
        Path::new(NETNS_RUN_DIR).join(&named.0)
    );
}

#[test]
fn ifname_validation() {
    for ok in ["eth0", "a", "vx-0123456789ab"] {
        validate_ifname(ok).expect(ok);
    }
    for bad in ["", ".", "..", "a/b", "a b", "a:b", "0123456789abcdef"] {
        let err = validate_ifname(bad).expect_err(bad);
        assert!(
            err.to_string().starts_with("invalid interface name"),
            "{err}"
        );
    }
}
