//! Self-test of the lab's Docker Engines (`vxnet_tests::lab::docker`): a real dockerd on each
//! of two lab hosts, each with its own containers, its own plugin directory and its own pid
//! namespace, and nothing left behind after teardown — also when a test panics. Run it first
//! when a test that drives vxnet through Docker fails oddly.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vxnet_tests::lab::docker::{BUSYBOX_IMAGE, DOCKER_PLUGINS_DIR};
use vxnet_tests::netns;
use vxnet_tests::{require_root, HostKind, Lab};

/// Just enough of Docker's plugin protocol for `docker network create -d NAME`: activation as a
/// network driver, local scope, and `{}` to everything else. Records the methods called.
struct FakePlugin {
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakePlugin {
    fn serve(socket: &Path) -> FakePlugin {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind the fake plugin's socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (stop.clone(), calls.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let c = c.clone();
                        std::thread::spawn(move || answer(stream, &c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FakePlugin {
            stop,
            calls,
            thread: Some(thread),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }
}

impl Drop for FakePlugin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves HTTP/1.1 requests on one connection until it closes (or idles for 5 s).
fn answer(stream: UnixStream, calls: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let method = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        calls.lock().expect("calls").push(method.clone());
        let reply = match method.as_str() {
            "/Plugin.Activate" => r#"{"Implements":["NetworkDriver"]}"#,
            "/NetworkDriver.GetCapabilities" => r#"{"Scope":"local","ConnectivityScope":"local"}"#,
            _ => "{}",
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\n\
             Content-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The inode of a namespace file: two files name the same namespace when these are equal.
fn ns_inode(path: impl AsRef<Path>) -> u64 {
    let p = path.as_ref();
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .ino()
}

/// Entries of `dir` as dockerd `pid` sees it (from inside its mount namespace), sorted.
fn ls_in_mount_ns(pid: i32, dir: &str) -> Vec<String> {
    let out = vxnet_tests::cmd::run_ok(
        std::process::Command::new("nsenter")
            .arg(format!("--mount=/proc/{pid}/ns/mnt"))
            .args(["ls", "-1A", dir]),
        Duration::from_secs(10),
    )
    .expect("nsenter into dockerd's mount namespace");
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn two_docker_engines_side_by_side() {
    if !require_root() {
        return;
    }
    let test_started = Instant::now();
    let lab = Lab::new(2).expect("lab with two vxnet hosts");
    let root = lab.root().to_path_buf();

    let started = Instant::now();
    let d0 = lab.start_docker(0).expect("dockerd on h0");
    let start0 = started.elapsed();
    let d1 = lab.start_docker(1).expect("dockerd on h1");
    let start1 = started.elapsed() - start0;
    let started = Instant::now();
    d0.import_busybox().expect("import on h0");
    let import0 = started.elapsed();
    d1.import_busybox().expect("import on h1");
    let import1 = started.elapsed() - import0;
    eprintln!(
        "dockerd ready: h0 {start0:?}, h1 {start1:?}; busybox import (first builds the rootfs): \
         h0 {import0:?}, h1 {import1:?}"
    );

    // Two engines, two identities (each has its own /etc/docker/key.json).
    let id0 = d0
        .docker_ok(&["info", "--format", "{{.ID}}"])
        .expect("info");
    let id1 = d1
        .docker_ok(&["info", "--format", "{{.ID}}"])
        .expect("info");
    assert_ne!(id0.trim(), id1.trim(), "both engines have the same ID");

    // Each has its own /etc/docker (its key.json is what makes its ID).
    for d in [&d0, &d1] {
        assert!(
            d.dir().join("etc/key.json").exists(),
            "{}",
            d.dir().display()
        );
    }

    // dockerd runs in its host's network namespace.
    for (d, host) in [(&d0, lab.host(0)), (&d1, lab.host(1))] {
        let pid = d.dockerd_pid().expect("dockerd pid");
        assert_eq!(
            ns_inode(format!("/proc/{pid}/ns/net")),
            ns_inode(netns::netns_path(host.ns())),
            "{}'s dockerd is not in {}",
            host.name(),
            host.ns()
        );
    }

    // A container on each engine; each engine sees only its own.
    for (d, name) in [(&d0, "c-h0"), (&d1, "c-h1")] {
        let started = Instant::now();
        d.docker_ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ])
        .expect("docker run");
        eprintln!("docker run -d {name}: {:?}", started.elapsed());
        d.docker_ok(&["exec", name, "busybox", "true"])
            .expect("docker exec");
        let applets = d
            .docker_ok(&[
                "exec",
                name,
                "sh",
                "-c",
                "for a in sh ping ip nslookup wget nc sleep cat hostname; do command -v $a; done",
            ])
            .expect("applets");
        assert_eq!(applets.lines().count(), 9, "{applets}");
    }
    assert_eq!(d0.container_names().expect("ps"), ["c-h0"]);
    assert_eq!(d1.container_names().expect("ps"), ["c-h1"]);

    // The container's network namespace, which dockerd mounts at its SandboxKey in its own
    // mount namespace, is that namespace in ours too (where the vxnet daemon opens it).
    let key = d0
        .docker_ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "c-h0"])
        .expect("inspect");
    let key = key.trim();
    assert!(
        Path::new(key).starts_with(d0.dir()),
        "{key} is not under {}",
        d0.dir().display()
    );
    let inside = d0
        .docker_ok(&["exec", "c-h0", "readlink", "/proc/self/ns/net"])
        .expect("the container's netns");
    assert_eq!(
        inside.trim(),
        format!("net:[{}]", ns_inode(key)),
        "SandboxKey {key} is not the container's network namespace here"
    );

    // Each dockerd sees its own host's plugin directory at /run/docker/plugins; the machine's
    // stays as it was.
    std::fs::write(d0.plugins_dir().join("marker-h0"), "").expect("marker");
    let pid0 = d0.dockerd_pid().expect("pid");
    let pid1 = d1.dockerd_pid().expect("pid");
    assert_eq!(ls_in_mount_ns(pid0, DOCKER_PLUGINS_DIR), ["marker-h0"]);
    assert!(ls_in_mount_ns(pid1, DOCKER_PLUGINS_DIR).is_empty());
    assert!(
        !Path::new(DOCKER_PLUGINS_DIR).join("marker-h0").exists(),
        "the marker leaked into the machine's {DOCKER_PLUGINS_DIR}"
    );
    assert!(
        netns::mounts_under(Path::new(DOCKER_PLUGINS_DIR)).is_empty(),
        "{DOCKER_PLUGINS_DIR} is a mount point in the test's namespace"
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid0}/mountinfo")).expect("mountinfo");
    let plugins_mount = netns::parse_mountinfo(&mountinfo)
        .into_iter()
        .find(|m| m.mount_point == Path::new(DOCKER_PLUGINS_DIR))
        .expect("a mount at /run/docker/plugins in dockerd's namespace");
    assert!(
        plugins_mount.root.ends_with("/h0/docker-plugins"),
        "{plugins_mount:?}"
    );
    // dockerd's mount namespace pins no namespace the lab had mounted when it started (its
    // copies were unmounted): `ip netns del` of a lab namespace really frees it.
    let netns_dir = std::fs::canonicalize(netns::NETNS_DIR).expect("the netns directory");
    let lab_namespaces: Vec<_> = lab.namespaces().iter().map(|n| netns_dir.join(n)).collect();
    assert!(!lab_namespaces.is_empty());
    let pinned: Vec<_> = netns::parse_mountinfo(&mountinfo)
        .into_iter()
        .filter(|m| m.fs_type == "nsfs" && lab_namespaces.contains(&m.mount_point))
        .collect();
    assert!(pinned.is_empty(), "dockerd holds {pinned:?}");
    // ... and a container sees none of it.
    let inside = d0
        .docker(&["exec", "c-h0", "ls", DOCKER_PLUGINS_DIR])
        .expect("exec");
    assert!(!inside.status.success(), "{inside:?}");

    // A plugin socket in h0's directory is a plugin for h0's dockerd (as vxnet's will be).
    let plugin = FakePlugin::serve(&d0.plugin_socket("labprobe"));
    d0.docker_ok(&["network", "create", "-d", "labprobe", "probenet"])
        .expect("a network of the fake plugin on h0");
    d0.docker_ok(&["network", "rm", "probenet"])
        .expect("network rm");
    let calls = plugin.calls();
    for m in [
        "/Plugin.Activate",
        "/NetworkDriver.CreateNetwork",
        "/NetworkDriver.DeleteNetwork",
    ] {
        assert!(calls.iter().any(|c| c == m), "{m} not called: {calls:?}");
    }
    drop(plugin);

    // Teardown: stopped explicitly (h0), dropped by a panicking thread (h1); nothing is left.
    let fp0 = d0.footprint();
    let fp1 = d1.footprint();
    assert!(!fp0.processes().is_empty(), "the footprint sees dockerd");
    let started = Instant::now();
    d0.stop();
    let stop0 = started.elapsed();
    fp0.check_gone().expect("h0's Docker cleaned up");
    let started = Instant::now();
    let panicked = std::thread::spawn(move || {
        let _d1 = d1;
        panic!("deliberate panic with a running Docker Engine");
    })
    .join();
    assert!(panicked.is_err());
    let stop1 = started.elapsed();
    fp1.check_gone()
        .expect("h1's Docker cleaned up by a panicking test");
    eprintln!("teardown: h0 {stop0:?}, h1 (panicking) {stop1:?}");
    drop(d0);
    drop(lab);
    for fp in [&fp0, &fp1] {
        fp.check_gone()
            .expect("still nothing after the lab's teardown");
    }
    assert!(!root.exists(), "{} survived", root.display());
    assert!(netns::mounts_under(&root).is_empty());
    eprintln!("whole test: {:?}", test_started.elapsed());
}

#[test]
fn a_lab_torn_down_first_takes_its_docker_with_it() {
    if !require_root() {
        return;
    }
    // A kernel vxlan host: a Docker needs only the host's namespace and data dir.
    let lab = Lab::builder()
        .host(HostKind::KernelVxlan)
        .build()
        .expect("lab");
    let docker = lab.start_docker(0).expect("dockerd");
    docker.import_busybox().expect("import");
    docker
        .docker_ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "left",
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ])
        .expect("docker run");
    let footprint = docker.footprint();
    assert!(
        footprint
            .processes()
            .iter()
            .any(|(_, comm)| comm == "sleep"),
        "{:?}",
        footprint.processes()
    );
    // The lab goes first (a test that declared its Docker before its Lab): killing what runs
    // in the host namespace takes dockerd's pid namespace, containers included.
    drop(lab);
    vxnet_tests::wait_for(
        "the container to die with the lab",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let left = footprint.processes();
            if left.is_empty() {
                Ok(Some(()))
            } else {
                anyhow::bail!("left: {left:?}")
            }
        },
    )
    .expect("no process of the Docker outlives its lab");
    drop(docker);
    footprint.check_gone().expect("nothing left");
}
