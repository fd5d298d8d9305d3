//! Reaching out (README, "Reaching out and in"): containers on two hosts reach a server beyond
//! every host, masqueraded to their host's address; two networks with the same subnet both get
//! out; an `--internal` network does not; the rules live in vxnet's own nftables table and
//! survive a daemon restart, and leave with the last network.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use vxnet_tests::lab::cluster::REPLICATION_TIMEOUT;
use vxnet_tests::lab::container::Container;
use vxnet_tests::lab::topology::UNDERLAY_GATEWAY;
use vxnet_tests::netns::exec;
use vxnet_tests::who::{ask_tcp, serve_tcp};
use vxnet_tests::{require_root, wait_for, Lab};

/// The server standing for the internet, in the underlay namespace beyond every host.
const OUTSIDE: SocketAddrV4 = SocketAddrV4::new(UNDERLAY_GATEWAY, 8080);

/// Connects from inside `c` to the outside server; the address the server saw.
fn reach_out(c: &Container) -> anyhow::Result<Ipv4Addr> {
    ask_tcp(&c.ns, OUTSIDE)
}

fn default_route(c: &Container) -> String {
    c.exec_ok(&["ip", "-4", "route", "show", "default"])
        .unwrap_or_default()
}

fn has_vxnet_table(lab: &Lab, host: usize) -> bool {
    exec(
        lab.host(host).ns(),
        &["nft", "list", "table", "ip", "vxnet"],
    )
    .is_ok_and(|o| o.status.success())
}

#[test]
fn containers_reach_the_outside_masqueraded_and_internal_networks_do_not() {
    if !require_root() {
        return;
    }
    let lab = Lab::cluster(2).expect("two hosts in one cluster");
    let h0 = lab.host(0);
    for args in [
        &["network", "create", "--subnet", "10.77.0.0/24", "a"][..],
        &["network", "create", "--subnet", "10.77.0.0/24", "b"],
        &[
            "network",
            "create",
            "--subnet",
            "10.78.0.0/24",
            "--internal",
            "c",
        ],
    ] {
        h0.vxnet_ok(args);
    }
    lab.host(1)
        .wait_networks(&["a", "b", "c"], REPLICATION_TIMEOUT)
        .expect("networks replicated");

    let a0 = lab.container(0, "a0").expect("container");
    let a1 = lab.container(1, "a1").expect("container");
    let b0 = lab.container(0, "b0").expect("container");
    let c1 = lab.container(1, "c1").expect("container");
    // The same address in the two overlapping networks, on the same host.
    h0.connect("a", &a0, "10.77.0.10").expect("connect a0");
    h0.connect("b", &b0, "10.77.0.10").expect("connect b0");
    lab.host(1)
        .connect("a", &a1, "10.77.0.11")
        .expect("connect a1");
    lab.host(1)
        .connect("c", &c1, "10.78.0.10")
        .expect("connect c1");

    assert!(
        default_route(&a0).contains("default via 10.77.0.1 dev eth0"),
        "a0's default route is the gateway: {}",
        default_route(&a0)
    );
    assert_eq!(
        default_route(&c1).trim(),
        "",
        "an internal network gives no default route"
    );
    let inspect = lab.host(1).vxnet_ok(&["network", "inspect", "c", "a"]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    assert_eq!(inspect[0]["Internal"], serde_json::json!(true), "{inspect}");
    assert_eq!(
        inspect[1]["Internal"],
        serde_json::json!(false),
        "{inspect}"
    );

    serve_tcp(lab.underlay_ns(), OUTSIDE).expect("outside server");
    for (c, host) in [(&a0, 0), (&a1, 1), (&b0, 0)] {
        let seen = reach_out(c).unwrap_or_else(|e| {
            panic!(
                "{} cannot reach out: {e:#}\n{}",
                c.name,
                lab.daemon_logs(30)
            )
        });
        assert_eq!(
            seen,
            lab.host(host).addr(),
            "{} is masqueraded to its host's address",
            c.name
        );
    }
    assert!(
        reach_out(&c1).is_err(),
        "a container on an internal network got out"
    );
    for h in [0, 1] {
        assert!(has_vxnet_table(&lab, h), "h{h} has vxnet's table");
    }

    // A restart re-creates the rules idempotently: still one table, and the way out works.
    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    lab.start_daemon(0).expect("restart h0");
    let tables = exec(h0.ns(), &["nft", "list", "tables"]).expect("nft list tables");
    let tables = String::from_utf8_lossy(&tables.stdout).to_string();
    assert_eq!(tables.matches("table ip vxnet").count(), 1, "{tables}");
    let seen = wait_for(
        "a0 reaching out after the restart",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || Ok(reach_out(&a0).ok()),
    )
    .expect("a0 reaches out after the restart");
    assert_eq!(seen, h0.addr());

    // The last network with egress leaving h1 takes vxnet's table with it.
    lab.host(1)
        .vxnet_ok(&["network", "disconnect", "a", &a1.ns]);
    wait_for(
        "vxnet's table leaving h1 with its last network with egress",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || Ok((!has_vxnet_table(&lab, 1)).then_some(())),
    )
    .expect("the table leaves");
}
