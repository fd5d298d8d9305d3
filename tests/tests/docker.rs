//! vxnet as Docker's network and IPAM driver (README, "With Docker"), driven by a real Docker
//! Engine on each of two lab hosts: `docker network create -d vxnet --ipam-driver vxnet` on
//! both makes one cluster-wide network; containers on the two hosts ping and resolve each other
//! by name and alias; `--ip` and `-p` work; `docker rm -f` gives the address back; a network
//! whose subnet disagrees with the cluster's is refused with a clear error. A dockerd restart
//! (`--live-restore`) keeps running containers connected, and Docker still manages them after.

use std::net::SocketAddrV4;
use std::time::Duration;

use vxnet_tests::lab::docker::{Docker, BUSYBOX_IMAGE};
use vxnet_tests::{require_root, wait_for, HostKind, Lab};

const SUBNET: &str = "10.90.0.0/24";
const GATEWAY: &str = "10.90.0.1";

/// A lab of two clustered hosts whose daemons serve the Docker driver to their host's engine.
fn docker_lab() -> (Lab, Vec<Docker>) {
    let lab = Lab::builder()
        .hosts(HostKind::Vxnet, 2)
        .start_daemons(false)
        .build()
        .expect("two hosts");
    for host in lab.hosts() {
        start_vxnet(host);
    }
    lab.form_cluster(&[0, 1]).expect("one cluster");
    let engines: Vec<Docker> = (0..2)
        .map(|i| {
            let d = lab.start_docker(i).expect("dockerd");
            d.import_busybox().expect("busybox image");
            d
        })
        .collect();
    (lab, engines)
}

/// Starts `host`'s vxnet daemon serving the Docker driver to that host's engine.
fn start_vxnet(host: &vxnet_tests::Host) {
    let plugin = Docker::plugins_dir_for(host).join("vxnet.sock");
    let engine = Docker::socket_for(host);
    let args = [
        "--docker-plugin",
        &plugin.to_string_lossy(),
        "--docker-host",
        &engine.to_string_lossy(),
        "--log-level",
        "debug",
    ];
    host.start_daemon_with(&args, &[])
        .expect("vxnet daemon with the Docker driver");
}

fn run(lab: &Lab, d: &Docker, name: &str, extra: &[&str]) -> String {
    let dns = format!("--dns={GATEWAY}");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "shop",
        dns.as_str(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[BUSYBOX_IMAGE, "sleep", "600"]);
    d.docker_ok(&args)
        .unwrap_or_else(|e| panic!("docker run {name}: {e:#}\n{}", plugin_log(lab)))
}

#[test]
fn docker_containers_on_two_hosts_share_a_vxnet_network() {
    if !require_root() {
        return;
    }
    let (lab, engines) = docker_lab();
    create_shop(&engines);
    run(
        &lab,
        &engines[0],
        "web",
        &[
            "--ip",
            "10.90.0.10",
            "--network-alias",
            "www",
            "-p",
            "8080:80",
        ],
    );
    run(&lab, &engines[1], "cli", &[]);
    // The same network, cluster-wide, under Docker's name.
    let inspect: serde_json::Value =
        serde_json::from_str(&lab.host(1).vxnet_ok(&["network", "inspect", "shop"]))
            .expect("inspect JSON");
    assert_eq!(
        inspect[0]["IPAM"]["Config"][0]["Subnet"], SUBNET,
        "{inspect}"
    );

    // Across hosts, by address, by name, by alias.
    let cli = &engines[1];
    let ping = |target: &str| cli.docker(&["exec", "cli", "ping", "-c", "2", "-W", "2", target]);
    let out = ping("10.90.0.10").expect("docker exec");
    assert!(
        out.status.success(),
        "cli cannot ping web's address: {out:?}"
    );
    for name in ["web", "www"] {
        wait_for(
            &format!("{name} resolving in cli"),
            Duration::from_secs(10),
            Duration::from_millis(200),
            || Ok(ping(name)?.status.success().then_some(())),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(20)));
    }

    // A restart of vxnet keeps running containers connected.
    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0's vxnet");
    start_vxnet(lab.host(0));
    let out = ping("web").expect("docker exec");
    assert!(
        out.status.success(),
        "cli lost web across a vxnet restart: {out:?}"
    );

    // docker network connect / disconnect on a running container.
    cli.docker_ok(&[
        "network",
        "create",
        "-d",
        "vxnet",
        "--ipam-driver",
        "vxnet",
        "--subnet",
        "10.93.0.0/24",
        "side",
    ])
    .expect("create side");
    cli.docker_ok(&["network", "connect", "side", "cli"])
        .expect("docker network connect");
    let addrs = cli
        .docker_ok(&["exec", "cli", "ip", "-o", "-4", "addr"])
        .expect("ip addr");
    assert!(
        addrs.contains("10.93.0."),
        "no address on side after connect: {addrs}"
    );
    cli.docker_ok(&["network", "disconnect", "side", "cli"])
        .expect("docker network disconnect");
    let addrs = cli
        .docker_ok(&["exec", "cli", "ip", "-o", "-4", "addr"])
        .expect("ip addr");
    assert!(
        !addrs.contains("10.93.0."),
        "side's address stayed after disconnect: {addrs}"
    );
    let side: serde_json::Value =
        serde_json::from_str(&lab.host(0).vxnet_ok(&["network", "inspect", "side"]))
            .expect("inspect JSON");
    assert_eq!(
        side[0]["Containers"],
        serde_json::json!({}),
        "side's endpoint stayed: {side}"
    );

    // -p 8080:80: a server in web answers at h0's address.
    engines[0]
        .docker_ok(&["exec", "-d", "web", "sh", "-c", SERVE_HI])
        .expect("server in web");
    assert!(
        answers_from_outside(&lab, SocketAddrV4::new(lab.host(0).addr(), 8080)),
        "published port 8080 does not answer"
    );

    // -p 80: vxnet picks the host port; `vxnet network inspect` shows it (Docker cannot show a
    // remote driver's ports).
    run(&lab, &engines[1], "web3", &["-p", "80"]);
    engines[1]
        .docker_ok(&["exec", "-d", "web3", "sh", "-c", SERVE_HI])
        .expect("server in web3");
    let port = wait_for(
        "web3's published port in inspect",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let v: serde_json::Value =
                serde_json::from_str(&lab.host(1).vxnet_ok(&["network", "inspect", "shop"]))?;
            let ports: Vec<String> = v[0]["Containers"]
                .as_object()
                .into_iter()
                .flat_map(|c| c.values())
                .filter(|c| c["Name"] == "web3")
                .flat_map(|c| c["Ports"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            // "0.0.0.0:HOSTPORT:80/tcp"
            Ok(ports
                .first()
                .and_then(|p| p.split(':').nth(1))
                .and_then(|p| p.parse::<u16>().ok()))
        },
    )
    .expect("web3 publishes a host port");
    assert!(
        answers_from_outside(&lab, SocketAddrV4::new(lab.host(1).addr(), port)),
        "the host port vxnet chose ({port}) does not answer"
    );

    // docker rm -f: the endpoint goes everywhere and its address is free for the other host.
    engines[0]
        .docker_ok(&["rm", "-f", "web"])
        .expect("docker rm -f web");
    web_endpoint_leaves(&lab);
    run(&lab, &engines[1], "web2", &["--ip", "10.90.0.10"]);

    // A Docker network of the same name but another subnet cannot join the cluster's.
    engines[0]
        .docker_ok(&[
            "network",
            "create",
            "-d",
            "vxnet",
            "--ipam-driver",
            "vxnet",
            "--subnet",
            "10.91.0.0/24",
            "shop2",
        ])
        .expect("create shop2 on h0");
    engines[0]
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "s2a",
            "--network",
            "shop2",
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ])
        .expect("a container on shop2");
    engines[1]
        .docker_ok(&[
            "network",
            "create",
            "-d",
            "vxnet",
            "--ipam-driver",
            "vxnet",
            "--subnet",
            "10.92.0.0/24",
            "shop2",
        ])
        .expect("create shop2 on h1");
    let refused = engines[1]
        .docker(&[
            "run",
            "-d",
            "--name",
            "s2b",
            "--network",
            "shop2",
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ])
        .expect("docker run");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("--subnet 10.91.0.0/24"),
        "a disagreeing subnet was not refused clearly: {err}"
    );
}

/// `docker network create -d vxnet ... shop` on every engine: one vxnet network.
fn create_shop(engines: &[Docker]) {
    for d in engines {
        d.docker_ok(&[
            "network",
            "create",
            "-d",
            "vxnet",
            "--ipam-driver",
            "vxnet",
            "--subnet",
            SUBNET,
            "shop",
        ])
        .expect("docker network create");
    }
}

/// Waits (bounded) until web's endpoint (10.90.0.10) has left `shop` on h1.
fn web_endpoint_leaves(lab: &Lab) {
    wait_for(
        "web's endpoint to leave",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let text = lab.host(1).vxnet_ok(&["network", "inspect", "shop"]);
            Ok((!text.contains("10.90.0.10/")).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plugin_log(lab)));
}

/// Lines of a busybox `ping` log that are replies.
fn replies(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("bytes from"))
        .count()
}

#[test]
fn a_dockerd_restart_keeps_containers_connected() {
    if !require_root() {
        return;
    }
    let (lab, engines) = docker_lab();
    create_shop(&engines);
    // web writes its ping log to a host directory, readable while its dockerd is down.
    let out = lab.host(0).data_dir().join("web-out");
    std::fs::create_dir_all(&out).expect("web's output directory");
    let volume = format!("{}:/out", out.display());
    let (h0, h1) = (&engines[0], &engines[1]);
    run(&lab, h0, "web", &["--ip", "10.90.0.10", "-v", &volume]);
    run(&lab, h1, "cli", &[]);
    let ping = |d: &Docker, from: &str, to: &str| {
        d.docker(&["exec", from, "ping", "-c", "1", "-W", "2", to])
            .is_ok_and(|o| o.status.success())
    };
    wait_for(
        "cli reaching web by name",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || Ok(ping(h1, "cli", "web").then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(20)));
    // web pings cli (across hosts, by name) until the test ends: at most 60 s.
    h0.docker_ok(&[
        "exec",
        "-d",
        "web",
        "sh",
        "-c",
        "ping -i 0.2 -w 60 cli > /out/ping.log 2>&1",
    ])
    .expect("a pinger in web");
    let log = out.join("ping.log");
    wait_for(
        "web's pings to cli answered",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || Ok((replies(&log) >= 2).then_some(())),
    )
    .expect("web reaches cli");

    h0.stop_dockerd().expect("SIGTERM to h0's dockerd");
    assert!(h0.dockerd_pid().is_err(), "h0's dockerd still runs");
    // While it is down: web goes on pinging cli, cli reaches web by address and name.
    let before = replies(&log);
    wait_for(
        "web's pings answered while its dockerd is down",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || Ok((replies(&log) >= before + 5).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", h0.log_tail(40)));
    for target in ["10.90.0.10", "web"] {
        assert!(
            ping(h1, "cli", target),
            "cli cannot reach {target} while h0's dockerd is down"
        );
    }

    h0.start_dockerd().expect("h0's dockerd again");
    // Docker has them back: listed, on the network, and reachable both ways by name.
    assert_eq!(h0.container_names().expect("docker ps"), ["web"]);
    let state = h0
        .docker_ok(&["inspect", "-f", "{{.State.Running}}", "web"])
        .expect("inspect web");
    assert_eq!(state.trim(), "true");
    let net: serde_json::Value = serde_json::from_str(
        &h0.docker_ok(&["network", "inspect", "shop"])
            .expect("inspect"),
    )
    .expect("network inspect JSON");
    let members: Vec<&str> = net[0]["Containers"]
        .as_object()
        .into_iter()
        .flat_map(|c| c.values())
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert_eq!(members, ["web"], "{net}");
    assert!(ping(h1, "cli", "web"), "cli lost web after the restart");
    assert!(ping(h0, "web", "cli"), "web lost cli after the restart");
    let during = replies(&log);
    wait_for(
        "web's pinger to go on after the restart",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || Ok((replies(&log) > during).then_some(())),
    )
    .expect("web's pinger goes on");

    // Docker still manages the endpoint: docker rm -f removes it from vxnet.
    h0.docker_ok(&["rm", "-f", "web"])
        .expect("docker rm -f web");
    web_endpoint_leaves(&lab);

    // A restarted engine's teardown still leaves nothing: no process, mount or cgroup.
    let footprints: Vec<_> = engines.iter().map(Docker::footprint).collect();
    drop(engines);
    for f in footprints {
        f.check_gone().expect("the engines leave nothing behind");
    }
}

/// A server for a busybox container: says "hi" to every TCP connection on port 80.
const SERVE_HI: &str = "while true; do echo hi | nc -l -p 80; done";

/// Whether `addr` answers "hi" to a client in the underlay namespace, within 5 s.
fn answers_from_outside(lab: &Lab, addr: SocketAddrV4) -> bool {
    wait_for(
        &format!("{addr} answering"),
        Duration::from_secs(5),
        Duration::from_millis(100),
        || Ok(in_ns_read(lab.underlay_ns(), addr)),
    )
    .is_ok()
}

/// Connects from namespace `ns` to `addr` and reads what the server says (any text).
fn in_ns_read(ns: &str, addr: SocketAddrV4) -> Option<()> {
    vxnet_tests::netns::in_netns_thread(ns, move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        anyhow::ensure!(text.contains("hi"), "got {text:?}");
        Ok(())
    })
    .ok()
}

/// The Docker driver's calls in every host's daemon log (logged at debug level).
fn plugin_log(lab: &Lab) -> String {
    lab.hosts()
        .iter()
        .map(|h| {
            let log = std::fs::read_to_string(h.log_path()).unwrap_or_default();
            let calls: Vec<&str> = log.lines().filter(|l| l.contains("docker")).collect();
            format!("---- {} ----\n{}", h.name(), calls.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
