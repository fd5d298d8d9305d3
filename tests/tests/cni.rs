//! vxnet as a CNI plugin (README, "With Podman and CNI"): a real runtime, Podman 4.3 with its
//! CNI backend, on each of two clustered lab hosts — containers on both hosts ping each other
//! by address and by name, a chained `tuning` plugin gets vxnet's result, `podman rm -f`
//! removes the endpoint cluster-wide; and a harness that runs the
//! `vxnet` binary exactly as the CNI spec's execution protocol says (variables, configuration
//! on stdin, result or error on stdout) through every command and error path.

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vxnet_tests::lab::podman::Podman;
use vxnet_tests::{cmd, netns, require_root, vxnet_bin, wait_for, Host, Lab};

/// The CNI version of the Podman test's conflist: Podman 4.3's libcni and the Debian
/// reference plugins (1.1.1) speak up to 1.0.0; the harness below runs 1.1.0.
const PODMAN_CNI_VERSION: &str = "1.0.0";
const SUBNET: &str = "10.91.0.0/24";
const GATEWAY: &str = "10.91.0.1";

/// What the plugin answered: its exit status and stdout, parsed (`Null` when empty).
#[derive(Debug)]
struct Answer {
    status: i32,
    json: Value,
    stdout: String,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status == 0
    }

    /// The CNI error code, if this is an error result.
    fn code(&self) -> Option<u64> {
        self.json.get("code").and_then(Value::as_u64)
    }
}

/// One attachment's variables for the plugin.
struct Call<'a> {
    command: &'a str,
    container_id: &'a str,
    netns: Option<&'a Path>,
    ifname: &'a str,
    args: &'a str,
}

/// Runs the `vxnet` binary as a runtime runs a CNI plugin: in the runtime's (the host's)
/// network namespace, with only the `CNI_*` variables and `PATH`, the configuration on stdin.
fn plugin(host: &Host, call: &Call, stdin: &Value) -> Answer {
    let mut c = Command::new(vxnet_bin());
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", call.command)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in [
        ("CNI_CONTAINERID", call.container_id),
        ("CNI_IFNAME", call.ifname),
        ("CNI_ARGS", call.args),
    ] {
        if !v.is_empty() {
            c.env(k, v);
        }
    }
    if let Some(ns) = call.netns {
        c.env("CNI_NETNS", ns);
    }
    plugin_raw(host, c, stdin.to_string().as_bytes())
}

fn plugin_raw(host: &Host, mut c: Command, stdin: &[u8]) -> Answer {
    let ns = netns::enter_in_child(&mut c, &netns::netns_path(host.ns())).expect("host netns");
    let mut child = c.spawn().expect("run the vxnet binary");
    drop(ns);
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).expect("write stdin");
    }
    let status = cmd::wait_deadline(&mut child, Duration::from_secs(30))
        .expect("wait for the plugin")
        .unwrap_or_else(|| panic!("the plugin did not finish within 30 s"));
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("read stdout");
    }
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout:?}"))
    };
    Answer {
        status: status.code().unwrap_or(-1),
        json,
        stdout,
    }
}

/// `GET /` from namespace `ns` to `addr`; the whole answer, headers included.
fn http_get(ns: &str, addr: SocketAddrV4) -> anyhow::Result<String> {
    netns::in_netns_thread(ns, move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
}

fn conf(version: &str, network: &str, socket: &Path) -> Value {
    json!({"cniVersion": version, "name": "spec-net", "type": "vxnet", "network": network,
           "socket": socket.to_string_lossy()})
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn endpoint_names(host: &Host, network: &str) -> Vec<String> {
    let mut names: Vec<String> = host
        .inspect_network(network)
        .expect("inspect")
        .endpoints
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    names
}

fn secs(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

#[test]
fn podman_containers_on_two_hosts_share_a_vxnet_network() {
    if !require_root() {
        return;
    }
    let started = Instant::now();
    let lab = Lab::cluster(2).expect("a cluster of two hosts");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", SUBNET, "shop"]);
    let pods: Vec<Podman> = (0..2)
        .map(|i| {
            let p = lab.start_podman(i).expect("podman");
            p.import_busybox().expect("busybox image");
            // tuning runs after vxnet, with vxnet's result as its prevResult.
            let tuning = json!({"type": "tuning", "sysctl": {"net.core.somaxconn": "500"}});
            p.add_network(&Podman::vxnet_conflist(
                PODMAN_CNI_VERSION,
                "vxnet-lab",
                "shop",
                lab.host(i).socket(),
                &[tuning],
            ))
            .expect("conflist");
            p
        })
        .collect();
    eprintln!("lab and podman ready: {}", secs(started));

    let dns = format!("--dns={GATEWAY}");
    let t = Instant::now();
    let web = pods[0]
        .run("web", "vxnet-lab", &[&dns], &["sleep", "600"])
        .unwrap_or_else(|e| panic!("podman run web: {e:#}\n{}", lab.daemon_logs(20)));
    eprintln!("podman run web (with CNI ADD): {}", secs(t));
    pods[1]
        .run("cli", "vxnet-lab", &[&dns], &["sleep", "600"])
        .unwrap_or_else(|e| panic!("podman run cli: {e:#}\n{}", lab.daemon_logs(20)));

    // Both endpoints, cluster-wide, named after the containers' ids.
    let net = lab.host(1).inspect_network("shop").expect("inspect");
    let web_ep = net
        .endpoints
        .iter()
        .find(|e| e.name == format!("cni-{}", &web[..12]))
        .unwrap_or_else(|| panic!("no endpoint for web ({web}) in {net:?}"));
    let web_ip = web_ep.ipv4.to_string();
    assert_eq!(net.endpoints.len(), 2, "{net:?}");

    // Across hosts, by address and by name (the K8S_POD_NAME alias Podman passes).
    let ping = |target: &str| pods[1].exec("cli", &["ping", "-c", "2", "-W", "2", target]);
    let out = ping(&web_ip).expect("podman exec");
    assert!(
        out.status.success(),
        "cli cannot ping web at {web_ip}: {out:?}"
    );
    wait_for(
        "web resolving in cli",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || Ok(ping("web")?.status.success().then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(20)));

    // The chained tuning plugin ran, on vxnet's result.
    let somaxconn = pods[1]
        .exec("cli", &["cat", "/proc/sys/net/core/somaxconn"])
        .expect("podman exec");
    assert_eq!(String::from_utf8_lossy(&somaxconn.stdout).trim(), "500");

    // podman rm -f: the runtime's DEL removes the endpoint cluster-wide.
    let t = Instant::now();
    pods[0]
        .podman_ok(&["rm", "-f", "-t", "0", "web"])
        .expect("podman rm -f web");
    eprintln!("podman rm -f web (with CNI DEL): {}", secs(t));
    let left = endpoint_names(lab.host(1), "shop");
    assert_eq!(
        left,
        [format!("cni-{}", &pods_id(&pods[1], "cli")[..12])],
        "after rm"
    );

    // DEL again, as a runtime retrying would: success, twice.
    let conf = with(
        conf(PODMAN_CNI_VERSION, "shop", lab.host(0).socket()),
        "name",
        json!("vxnet-lab"),
    );
    for _ in 0..2 {
        let del = Call {
            command: "DEL",
            container_id: &web,
            netns: None,
            ifname: "eth0",
            args: "",
        };
        let a = plugin(lab.host(0), &del, &conf);
        assert!(a.ok() && a.stdout.is_empty(), "DEL after rm: {a:?}");
    }

    // Nothing of Podman's is left once it is stopped.
    let footprints: Vec<_> = pods.iter().map(Podman::footprint).collect();
    drop(pods);
    for f in footprints {
        f.check_gone().expect("podman leaves nothing behind");
    }
    eprintln!("whole test: {}", secs(started));
}

fn pods_id(p: &Podman, name: &str) -> String {
    p.podman_ok(&["inspect", "--format", "{{.Id}}", name])
        .expect("podman inspect")
        .trim()
        .to_string()
}

#[test]
fn cni_spec_harness() {
    if !require_root() {
        return;
    }
    let started = Instant::now();
    let lab = Lab::cluster(2).expect("a cluster of two hosts");
    lab.host(0)
        .vxnet_ok(&["network", "create", "--subnet", "10.92.0.0/24", "spec"]);
    let h0 = lab.host(0);
    let conf0 = conf("1.1.0", "spec", h0.socket());
    let ns = |name: &str| lab.container(0, name).expect("netns").ns;
    let (a_name, b_name, c_name) = (ns("a"), ns("b"), ns("c"));
    let [a_ns, b_ns, c_ns] = [&a_name, &b_name, &c_name].map(|n| netns::netns_path(n));
    let call = |command, container_id, netns, args| Call {
        command,
        container_id,
        netns,
        ifname: "eth0",
        args,
    };
    let (a, b, c) = ("aaaaaaaaaaaa1111", "bbbbbbbbbbbb2222", "cccccccccccc3333");

    // VERSION.
    let v = plugin(
        h0,
        &call("VERSION", "", None, ""),
        &json!({"cniVersion": "1.1.0"}),
    );
    assert!(v.ok(), "{v:?}");
    for want in ["0.4.0", "1.0.0", "1.1.0"] {
        assert!(
            v.json["supportedVersions"]
                .as_array()
                .is_some_and(|s| s.contains(&json!(want))),
            "{v:?}"
        );
    }

    // ADD: the result, and the container as it says; a port published through the
    // portMappings capability.
    let ports =
        json!({"portMappings": [{"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}]});
    let add = plugin(
        h0,
        &call("ADD", a, Some(&a_ns), "K8S_POD_NAME=alpha"),
        &with(conf0.clone(), "runtimeConfig", ports),
    );
    assert!(add.ok(), "ADD: {add:?}\n{}", lab.daemon_logs(20));
    let r = &add.json;
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(
        r["interfaces"][0]["sandbox"],
        a_ns.to_string_lossy().as_ref()
    );
    let address = r["ips"][0]["address"]
        .as_str()
        .expect("an address")
        .to_string();
    assert!(
        address.starts_with("10.92.0.") && address.ends_with("/24"),
        "{r}"
    );
    assert_eq!(r["ips"][0]["gateway"], "10.92.0.1");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.92.0.1"}])
    );
    assert_eq!(r["dns"], json!({"nameservers": ["10.92.0.1"]}));
    let inside =
        netns::exec_in_file(&a_ns, &["ip", "-o", "-4", "addr", "show", "eth0"]).expect("ip addr");
    assert!(
        String::from_utf8_lossy(&inside.stdout).contains(&address),
        "{inside:?}"
    );
    let mac = r["interfaces"][0]["mac"].as_str().unwrap_or_default();
    let link = netns::exec_in_file(&a_ns, &["ip", "-o", "link", "show", "eth0"]).expect("ip link");
    assert!(
        String::from_utf8_lossy(&link.stdout).contains(mac),
        "{link:?}"
    );
    let prev = r.clone();
    let www = lab.root().join("www");
    std::fs::create_dir_all(&www).expect("www dir");
    std::fs::write(www.join("index.html"), "hello-from-a\n").expect("index.html");
    let www = www.to_string_lossy().into_owned();
    lab.spawn_in(&a_name, &["busybox", "httpd", "-f", "-p", "80", "-h", &www])
        .expect("httpd in a");
    let published = SocketAddrV4::new(h0.addr(), 18081);
    let body = wait_for(
        "a's published port",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || Ok(http_get(lab.underlay_ns(), published).ok()),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(20)));
    assert!(body.ends_with("hello-from-a\n"), "{body:?}");
    // The pod name is a DNS alias: another container resolves it at the gateway.
    let b_probe = lab.container(0, "probe").expect("netns");
    h0.vxnet_ok(&["network", "connect", "spec", &b_probe.ns]);
    let looked_up = b_probe
        .exec_ok(&["dig", "+short", "+time=2", "@10.92.0.1", "alpha"])
        .expect("dig alpha");
    assert!(
        looked_up.contains(address.split('/').next().unwrap_or_default()),
        "{looked_up}"
    );

    // ADD of the same attachment again: refused, nothing changed.
    let again = plugin(h0, &call("ADD", a, Some(&a_ns), ""), &conf0);
    assert_eq!((again.status, again.code()), (1, Some(100)), "{again:?}");
    let names = endpoint_names(h0, "spec");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("cni-"))
            .collect::<Vec<_>>(),
        ["cni-aaaaaaaaaaaa"]
    );

    // CHECK with the ADD's result; then with the address gone from the interface.
    let check = plugin(
        h0,
        &call("CHECK", a, Some(&a_ns), ""),
        &with(conf0.clone(), "prevResult", prev.clone()),
    );
    assert!(check.ok() && check.stdout.is_empty(), "CHECK: {check:?}");
    let add_b = plugin(h0, &call("ADD", b, Some(&b_ns), ""), &conf0);
    assert!(add_b.ok(), "{add_b:?}");
    let b_addr = add_b.json["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    netns::exec_in_file(&b_ns, &["ip", "addr", "del", &b_addr, "dev", "eth0"])
        .expect("ip addr del");
    let check_b = plugin(
        h0,
        &call("CHECK", b, Some(&b_ns), ""),
        &with(conf0.clone(), "prevResult", add_b.json.clone()),
    );
    assert_eq!(check_b.code(), Some(104), "{check_b:?}");

    // STATUS while all is well.
    let status = plugin(h0, &call("STATUS", "", None, ""), &conf0);
    assert!(
        status.ok() && status.stdout.is_empty(),
        "STATUS: {status:?}"
    );

    // GC: an attachment made on h1 (a CNI endpoint of another host) stays, as does `a`
    // (valid) and an endpoint the CLI made; `b` goes.
    let r_ns = netns::netns_path(&lab.container(1, "r").expect("netns").ns);
    let conf1 = conf("1.1.0", "spec", lab.host(1).socket());
    let add_r = plugin(
        lab.host(1),
        &call("ADD", "dddddddddddd4444", Some(&r_ns), ""),
        &conf1,
    );
    assert!(add_r.ok(), "{add_r:?}");
    let cli = lab.container(0, "cli").expect("netns");
    h0.vxnet_ok(&["network", "connect", "spec", &cli.ns]);
    let gc = plugin(
        h0,
        &call("GC", "", None, ""),
        &with(
            conf0.clone(),
            "cni.dev/valid-attachments",
            json!([{"containerID": a, "ifname": "eth0"}]),
        ),
    );
    assert!(gc.ok() && gc.stdout.is_empty(), "GC: {gc:?}");
    let mut want = vec![
        "cni-aaaaaaaaaaaa".to_string(),
        "cni-dddddddddddd".into(),
        cli.ns.clone(),
        b_probe.ns.clone(),
    ];
    want.sort();
    assert_eq!(endpoint_names(h0, "spec"), want, "after GC");

    // DEL, twice; DEL after the namespace is deleted.
    for _ in 0..2 {
        let del = plugin(
            h0,
            &call("DEL", a, Some(&a_ns), ""),
            &with(conf0.clone(), "prevResult", prev.clone()),
        );
        assert!(del.ok() && del.stdout.is_empty(), "DEL: {del:?}");
    }
    let add_c = plugin(h0, &call("ADD", c, Some(&c_ns), ""), &conf0);
    assert!(add_c.ok(), "{add_c:?}");
    netns::delete(&c_name).expect("ip netns del");
    let del_c = plugin(h0, &call("DEL", c, Some(&c_ns), ""), &conf0);
    assert!(del_c.ok(), "DEL after the netns went: {del_c:?}");
    assert!(!endpoint_names(h0, "spec").contains(&"cni-cccccccccccc".to_string()));

    // Errors: bad JSON, a missing variable, an unknown network, an old version for STATUS.
    let mut raw = Command::new(vxnet_bin());
    raw.env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "x1")
        .env("CNI_NETNS", &a_ns)
        .env("CNI_IFNAME", "eth0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let bad = plugin_raw(h0, raw, b"{\"cniVersion\": \"1.1.0\", \"name\": ");
    assert_eq!((bad.status, bad.code()), (1, Some(6)), "{bad:?}");
    assert_eq!(bad.json["cniVersion"], "1.1.0");
    assert!(
        bad.json["msg"].is_string() && bad.json["details"].is_string(),
        "{bad:?}"
    );
    let missing = plugin(h0, &call("ADD", "", Some(&a_ns), ""), &conf0);
    assert_eq!(missing.code(), Some(4), "{missing:?}");
    assert!(missing.json["msg"]
        .as_str()
        .unwrap_or_default()
        .contains("CNI_CONTAINERID"));
    let unknown = plugin(
        h0,
        &call("ADD", "x2", Some(&a_ns), ""),
        &conf("1.1.0", "nosuch", h0.socket()),
    );
    assert_eq!(unknown.code(), Some(7), "{unknown:?}");
    assert!(
        unknown.json["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("vxnet network \"nosuch\" does not exist"),
        "{unknown:?}"
    );
    let old = plugin(
        h0,
        &call("STATUS", "", None, ""),
        &conf("1.0.0", "spec", h0.socket()),
    );
    assert_eq!(old.code(), Some(1), "{old:?}");

    // STATUS without quorum (h1's daemon stopped: one voter of two) is 50; DEL then is 11.
    lab.kill_daemon(1, libc::SIGTERM).expect("stop h1");
    let t = Instant::now();
    let no_quorum = wait_for(
        "STATUS to see no quorum",
        Duration::from_secs(40),
        Duration::from_millis(500),
        || {
            let s = plugin(h0, &call("STATUS", "", None, ""), &conf0);
            Ok((s.code() == Some(50)).then_some(s))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.daemon_logs(20)));
    eprintln!(
        "STATUS without quorum: {:?} after {}",
        no_quorum.json["msg"],
        secs(t)
    );
    let del_nq = plugin(h0, &call("DEL", b, Some(&b_ns), ""), &conf0);
    assert_eq!(del_nq.code(), Some(11), "DEL without quorum: {del_nq:?}");

    // STATUS with the daemon stopped: 51 (this host forwards nothing either).
    lab.kill_daemon(0, libc::SIGTERM).expect("stop h0");
    let down = plugin(h0, &call("STATUS", "", None, ""), &conf0);
    assert_eq!(down.code(), Some(51), "{down:?}");
    let del_down = plugin(h0, &call("DEL", b, Some(&b_ns), ""), &conf0);
    assert_eq!(del_down.code(), Some(11), "{del_down:?}");
    eprintln!("whole harness: {}", secs(started));
}

/// `vxnet cni install` (README, "With Podman and CNI"): the installed file is an executable
/// copy of vxnet that answers as the plugin, the conflist is one a runtime reads, its socket is
/// `--socket`'s; a directory it cannot write gives one `vxnet: ` line, exit 1, and nothing.
#[test]
fn cni_install_puts_the_plugin_and_a_conflist_in_place() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("vxnet-cni-install-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (bin_dir, conf_dir) = (dir.join("opt/cni/bin"), dir.join("etc/cni/net.d"));
    let install = |bin_dir: &Path, conf_dir: &Path| {
        let mut c = Command::new(vxnet_bin());
        c.args([
            "cni",
            "install",
            "--network",
            "shop",
            "--socket",
            "/run/vxnet/h1.sock",
        ])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--conf-dir")
        .arg(conf_dir)
        .env_remove("CNI_COMMAND");
        cmd::run(&mut c, Duration::from_secs(30)).expect("vxnet cni install")
    };
    let out = install(&bin_dir, &conf_dir);
    assert!(out.status.success(), "{out:?}");
    let plugin = bin_dir.join("vxnet");
    let conflist = conf_dir.join("vxnet-shop.conflist");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n{}\n", plugin.display(), conflist.display())
    );
    let mode = std::fs::metadata(&plugin)
        .expect("plugin")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // The conflist: what the README shows, for network shop on --socket.
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(&conflist).expect("conflist")).expect("JSON");
    assert_eq!(list["cniVersion"], PODMAN_CNI_VERSION);
    assert_eq!(list["name"], "vxnet-shop");
    let conf = &list["plugins"][0];
    assert_eq!(conf["type"], "vxnet");
    assert_eq!(conf["network"], "shop");
    assert_eq!(conf["socket"], "/run/vxnet/h1.sock");

    // The installed file is the plugin: VERSION answers with the configuration's version.
    let mut c = Command::new(&plugin);
    c.env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().expect("run the installed plugin");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut passed = conf.clone();
    passed["name"] = list["name"].clone();
    passed["cniVersion"] = list["cniVersion"].clone();
    stdin
        .write_all(passed.to_string().as_bytes())
        .expect("write the configuration");
    drop(stdin);
    let out = child.wait_with_output().expect("plugin output");
    assert!(out.status.success(), "{out:?}");
    let version: Value = serde_json::from_slice(&out.stdout).expect("VERSION JSON");
    assert_eq!(version["cniVersion"], PODMAN_CNI_VERSION);
    assert!(
        version["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("1.0.0"))),
        "{version}"
    );

    // A conf dir that cannot be made: one line, exit 1, the plugin not touched.
    let before = std::fs::metadata(&plugin).expect("plugin").modified().ok();
    let out = install(&bin_dir, &conflist.join("under-a-file"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("vxnet: cannot write "), "{stderr}");
    assert_eq!(
        std::fs::metadata(&plugin).expect("plugin").modified().ok(),
        before
    );
    assert_eq!(std::fs::read_dir(&bin_dir).expect("ls").count(), 1);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
