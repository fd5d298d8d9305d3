//! Docker Engines on lab hosts: one real `dockerd` per host, for tests that drive vxnet through
//! Docker's network plugin API.
//!
//! ```text
//!  test process ── unshare --pid --fork --kill-child --mount-proc      (all in the host netns,
//!   │                └─ docker-init (tini), PID 1 of a new pid ns       in a mount ns of
//!   │                     ├─ sleep (ROOT/h<i>-docker/pid-ns-init)       their own)
//!   │                     └─ shims ── containers (once containerd is gone)
//!   └─ nsenter --target INIT --pid --mount --net
//!        └─ dockerd ── containerd ── shims ── containers
//!  ROOT/h<i>-docker/        data/ (--data-root), exec/ (--exec-root), docker.sock, etc/, cli/
//!  ROOT/h<i>-dockerd.log    dockerd's (and containerd's) output
//!  ROOT/h<i>/docker-plugins bind-mounted over /run/docker/plugins for this dockerd only
//! ```
//!
//! Rules a test relies on:
//! - [`Docker::start`] runs `dockerd` in the host's network namespace (the launcher enters it
//!   by `setns` like the vxnet daemon, dockerd by `nsenter`), with `--storage-driver vfs --iptables=false --ip-masq=false
//!   --bridge=none --ip-forward=false` and its own `--data-root`, `--exec-root`, `--pidfile`,
//!   `--config-file`, `--cgroup-parent` and `--host unix://ROOT/h<i>-docker/docker.sock`, and
//!   returns once `docker info` answers (bounded by [`DOCKER_READY_TIMEOUT`]). Several run side
//!   by side, in one lab or many: each starts its own containerd (socket under its exec-root)
//!   and nothing they write is shared.
//! - Its mount namespace (`private_mounts`, made by the launcher) is the test's with
//!   four differences: the host's plugin directory
//!   ([`Docker::plugins_dir_for`], `ROOT/h<i>/docker-plugins`) is bind-mounted over
//!   `/run/docker/plugins`, so this dockerd finds exactly that host's plugin sockets (vxnet's
//!   will be `vxnet.sock` there); `ROOT/h<i>-docker/etc` is over `/etc/docker` (its own
//!   `key.json`, so its own engine ID, and no system `daemon.json`); a tmpfs is over
//!   `/run/containerd` (a system containerd is never picked up, shim sockets stay private); and
//!   the namespace files the test's namespace had mounted (`ip netns`, vxnet sandboxes) are
//!   unmounted, so a long-lived dockerd pins no other lab's namespaces.
//! - Mounts propagate out of it only under `ROOT/h<i>-docker/`: that directory is a shared
//!   bind mount, the one peer dockerd's namespace keeps with the test's; every other shared
//!   mount is made a slave in it before anything is mounted there (it still receives what the
//!   test's namespace mounts and unmounts, and sends nothing back). So a container's
//!   `SandboxKey` (`exec/netns/<id>`) is its network namespace in the test's mount namespace
//!   too, where the vxnet daemon opens it, and the bind mounts above stay dockerd's own.
//! - The pid namespace's init is `docker-init`, which reaps orphans (shims, once containerd is
//!   gone) and lives as long as its one child, a `sleep` that only waits: the namespace
//!   outlives dockerd. When init dies, for whatever reason, the kernel kills everything left in
//!   the namespace — containerd, shims, containers. `unshare --kill-child` kills it when the
//!   launcher dies, and every process here lives in the host's network namespace, so the sweep
//!   of a killed run's stale labs ([`super::teardown`]) kills them with everything else; it
//!   also removes their cgroups.
//! - dockerd is started by `nsenter` into init's pid, mount and network namespaces, with
//!   `--live-restore`: [`Docker::stop_dockerd`] (SIGTERM, as an operator does) leaves the
//!   containers running and connected, [`Docker::start_dockerd`] brings dockerd back, and it
//!   finds them again through the same containerd state (same mount namespace, same
//!   exec-root).
//! - Containers get the cgroup parent `/vxnet-lab-PREFIX-h<i>` ([`Docker::cgroup_parent`],
//!   cgroupfs driver).
//! - Teardown ([`Docker::stop`], also `Drop`, also while a test panics, idempotent): every
//!   container is removed (`docker rm -f -v`), dockerd gets SIGTERM, then init (each SIGKILL
//!   after [`DOCKER_STOP_TIMEOUT`]), which takes the whole pid namespace down, then every mount
//!   under `ROOT/h<i>-docker/` is detached, the cgroups removed and the directory deleted; the log
//!   stays until the lab's own teardown. On a panic its tail is printed first.
//!   [`Docker::footprint`] tells what would be left; the self-test checks it is nothing.
//! - A `Docker` and its [`Lab`] may be dropped in either order: the lab's teardown kills what
//!   runs in its namespaces, which takes dockerd's pid namespace with it.
//! - The image [`BUSYBOX_IMAGE`] is built from Debian's `busybox-static` (`/bin/busybox` and a
//!   link per applet, `/etc/passwd`, `/etc/group`) once per test process and `docker import`ed
//!   by [`Docker::import_busybox`]. Nothing is ever pulled: no registry is reachable.
//! - Every `docker` CLI call has a deadline ([`Docker::docker`]); the CLI is the one that came
//!   with dockerd (`/usr/bin/docker` next to `/usr/sbin/dockerd`) when there is one, and runs with
//!   a `DOCKER_CONFIG` of its own.
//! - Tools: `dockerd`, `docker`, `docker-init`, `containerd`, `runc` (`apt-get install docker.io`),
//!   a static busybox (`apt-get install busybox-static`), `unshare`, `nsenter` and `tar`.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use super::busybox::busybox_rootfs_tar;
use super::cgroups::{remove_cgroups, CGROUP_TAG};
use super::private_mounts::PrivateMounts;
use super::{lock, Host, Lab};
use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::netns;
use crate::wait::{wait_for, wait_for_strict};
use footprint::children;
pub use footprint::DockerFootprint;

/// The image [`Docker::import_busybox`] makes: busybox-static's applets, nothing else.
pub const BUSYBOX_IMAGE: &str = "vxnet-lab/busybox:latest";
/// How long a freshly started dockerd may take until `docker info` answers.
pub const DOCKER_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dockerd gets to exit after SIGTERM before its pid namespace is SIGKILLed.
pub const DOCKER_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline of each `docker` call teardown makes (listing and removing containers).
pub const TEARDOWN_CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variable whose value every lab dockerd gets as `--log-level` (default info;
/// `debug` shows every plugin request).
pub const DOCKERD_LOG_LEVEL_ENV: &str = "VXNET_LAB_DOCKERD_LOG_LEVEL";
/// Name of the plugin directory inside a host's data dir.
pub const PLUGINS_DIR_NAME: &str = "docker-plugins";
/// Where Docker looks for plugin sockets (fixed in dockerd).
pub const DOCKER_PLUGINS_DIR: &str = "/run/docker/plugins";

/// Where dockerd keeps its configuration (fixed in dockerd; per-dockerd in the lab).
const DOCKER_ETC: &str = "/etc/docker";
/// Where a system containerd has its socket, and where shims put theirs (per-dockerd tmpfs).
const CONTAINERD_RUN: &str = "/run/containerd";

/// A Docker Engine running on one lab host. See the module docs for the rules.
pub struct Docker {
    host: String,
    ns: String,
    dir: PathBuf,
    plugins: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    cgroup_parent: String,
    cli: PathBuf,
    dockerd_bin: PathBuf,
    nsenter: PathBuf,
    /// The `unshare` process; its only child is the pid namespace's init.
    launcher: Mutex<Option<Child>>,
    /// Pid (in our pid namespace) of the namespace's init (`docker-init`).
    init_pid: Mutex<Option<i32>>,
    /// The `nsenter` process whose only child is the running dockerd; `None` while stopped.
    dockerd: Mutex<Option<Child>>,
    stopped: AtomicBool,
}

impl Lab {
    /// Starts a Docker Engine on host `index` ([`Docker::start`]).
    pub fn start_docker(&self, index: usize) -> Result<Docker> {
        Docker::start(self.host(index))
    }
}

impl Docker {
    /// `ROOT/h<i>-docker/`: everything this host's dockerd writes but its log.
    pub fn dir_for(host: &Host) -> PathBuf {
        host.data_dir()
            .with_file_name(format!("{}-docker", host.name()))
    }

    /// The dockerd API socket of `host` (known before the engine starts: the vxnet daemon's
    /// `--docker-host`).
    pub fn socket_for(host: &Host) -> PathBuf {
        Docker::dir_for(host).join("docker.sock")
    }

    /// `DATA_DIR/docker-plugins`: the directory `host`'s dockerd sees as `/run/docker/plugins`
    /// (vxnet's plugin socket goes there as `vxnet.sock`). Created by [`Docker::start`].
    pub fn plugins_dir_for(host: &Host) -> PathBuf {
        host.data_dir().join(PLUGINS_DIR_NAME)
    }

    /// Starts dockerd on `host` (see the module docs) and waits, bounded, until it answers.
    /// On error nothing is left running.
    pub fn start(host: &Host) -> Result<Docker> {
        let dockerd = find_program("dockerd", DOCKER_PACKAGES)?;
        let cli = find_cli(&dockerd)?;
        let init = find_beside("docker-init", &cli)?;
        let unshare = find_program("unshare", "util-linux")?;
        let nsenter = find_program("nsenter", "util-linux")?;
        let dir = Docker::dir_for(host);
        if dir.exists() {
            netns::unmount_all_under(&dir);
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let plugins = Docker::plugins_dir_for(host);
        for d in [
            dir.join("data"),
            dir.join("exec"),
            dir.join("etc"),
            dir.join("cli"),
            plugins.clone(),
            PathBuf::from(DOCKER_PLUGINS_DIR),
            PathBuf::from(DOCKER_ETC),
            PathBuf::from(CONTAINERD_RUN),
        ] {
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        fs::write(dir.join("daemon.json"), "{}\n").context("writing daemon.json")?;
        let docker = Docker {
            host: host.name().to_string(),
            ns: host.ns().to_string(),
            socket: dir.join("docker.sock"),
            log: host
                .data_dir()
                .with_file_name(format!("{}-dockerd.log", host.name())),
            cgroup_parent: format!("{CGROUP_TAG}{}", host.ns()),
            dir,
            plugins,
            cli,
            dockerd_bin: dockerd,
            nsenter,
            launcher: Mutex::new(None),
            init_pid: Mutex::new(None),
            dockerd: Mutex::new(None),
            stopped: AtomicBool::new(false),
        };
        // From here on, Drop cleans up whatever a failure leaves.
        share_dir(&docker.dir)?;
        docker.spawn_namespaces(&unshare, &init)?;
        docker.start_dockerd()?;
        Ok(docker)
    }

    fn open_log(&self) -> Result<(fs::File, fs::File)> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let log_err = log.try_clone().context("duplicating the log handle")?;
        Ok((log, log_err))
    }

    /// Starts the launcher: the pid namespace's init, and under it a placeholder that only
    /// waits (`sleep`, named after [`Docker::init_marker`] so the footprint sees it), in the
    /// host's network namespace and the engine's mount namespace.
    fn spawn_namespaces(&self, unshare: &Path, init: &Path) -> Result<()> {
        let (log, log_err) = self.open_log()?;
        let mut c = Command::new(unshare);
        c.args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "unchanged",
            "--",
        ])
        .arg(init)
        .args(["--", "bash", "-c", r#"exec -a "$0" sleep infinity"#])
        .arg(self.init_marker())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
        let ns_file = netns::enter_in_child(&mut c, &netns::netns_path(&self.ns))?;
        let plan = PrivateMounts::new(&self.dir)?
            .detach_namespace_files(&self.dir)?
            .tmpfs(Path::new(CONTAINERD_RUN))?
            .bind(&self.plugins, Path::new(DOCKER_PLUGINS_DIR))?
            .bind(&self.dir.join("etc"), Path::new(DOCKER_ETC))?;
        // SAFETY: the closure runs in the forked child before exec; `PrivateMounts::apply` makes
        // only async-signal-safe system calls on strings built before the fork.
        unsafe {
            c.pre_exec(move || plan.apply());
        }
        let child = c
            .spawn()
            .with_context(|| format!("starting {}", cmd::describe(&c)))?;
        drop(ns_file);
        let launcher = child.id() as i32;
        *lock(&self.launcher) = Some(child);
        // Strict: a launcher that exited ends the wait at once, with the log.
        let init = wait_for_strict(
            &format!("the pid namespace of {}'s dockerd", self.host),
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                if let Some(status) = self.launcher_exit() {
                    bail!(
                        "dockerd's launcher exited ({status}); log:\n{}",
                        self.log_tail(40)
                    );
                }
                Ok(children(launcher).first().map(|(pid, _)| *pid))
            },
        )?;
        *lock(&self.init_pid) = Some(init);
        Ok(())
    }

    /// `DIR/pid-ns-init`: the name the pid namespace's placeholder runs under.
    fn init_marker(&self) -> PathBuf {
        self.dir.join("pid-ns-init")
    }

    /// Starts dockerd in the engine's namespaces (`nsenter` into init's pid, mount and network
    /// namespaces) and waits, bounded, until it answers. Error if it is running already.
    pub fn start_dockerd(&self) -> Result<()> {
        if lock(&self.dockerd).is_some() {
            bail!("{}'s dockerd is running already", self.host);
        }
        let init = lock(&self.init_pid).ok_or_else(|| anyhow!("no pid namespace for dockerd"))?;
        let (log, log_err) = self.open_log()?;
        let mut c = Command::new(&self.nsenter);
        c.arg(format!("--target={init}"))
            .args(["--pid", "--mount", "--net", "--"])
            .arg(&self.dockerd_bin)
            .args(self.dockerd_args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = c
            .spawn()
            .with_context(|| format!("starting {}", cmd::describe(&c)))?;
        *lock(&self.dockerd) = Some(child);
        self.wait_ready()
    }

    /// Stops dockerd the way an operator does (SIGTERM; SIGKILL after [`DOCKER_STOP_TIMEOUT`])
    /// and waits until it is gone. With `--live-restore` its containers keep running, under the
    /// pid namespace's init. A no-op when it is not running.
    pub fn stop_dockerd(&self) -> Result<()> {
        let Some(mut nsenter) = lock(&self.dockerd).take() else {
            return Ok(());
        };
        if let Ok(Some(_)) = nsenter.try_wait() {
            return Ok(());
        }
        let pid = children(nsenter.id() as i32)
            .into_iter()
            .find(|(_, comm)| comm == "dockerd")
            .map(|(pid, _)| pid);
        // nsenter does not forward signals: dockerd gets them itself.
        let signal = |sig| {
            if let Some(pid) = pid {
                // SAFETY: kill(2) has no memory effects. The pid was read a moment ago as a
                // child of the nsenter we hold and have not reaped; nsenter exits as soon as
                // dockerd does, so a pid of a dockerd that is gone is not reused this soon.
                unsafe {
                    libc::kill(pid, sig);
                }
            }
        };
        signal(libc::SIGTERM);
        let deadline = Instant::now() + DOCKER_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = nsenter.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(libc::SIGKILL);
        let _ = nsenter.kill();
        let _ = nsenter.wait();
        bail!(
            "{}'s dockerd did not stop within {DOCKER_STOP_TIMEOUT:?} of SIGTERM",
            self.host
        )
    }

    /// [`Docker::stop_dockerd`], then [`Docker::start_dockerd`].
    pub fn restart_dockerd(&self) -> Result<()> {
        self.stop_dockerd()?;
        self.start_dockerd()
    }

    fn dockerd_args(&self) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).to_string_lossy().into_owned();
        let mut args = vec![
            format!("--config-file={}", d("daemon.json")),
            format!("--data-root={}", d("data")),
            format!("--exec-root={}", d("exec")),
            format!("--pidfile={}", d("dockerd.pid")),
            format!("--host=unix://{}", self.socket.display()),
            format!("--cgroup-parent=/{}", self.cgroup_parent),
            "--storage-driver=vfs".into(),
            // --cgroup-parent is a path for cgroupfs (systemd's driver wants a slice).
            "--exec-opt=native.cgroupdriver=cgroupfs".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-masq=false".into(),
            "--ip-forward=false".into(),
            "--bridge=none".into(),
            // Containers keep running while dockerd is down (Docker::stop_dockerd).
            "--live-restore".into(),
            // Containers are removed before teardown stops dockerd; should one be left, the pid
            // namespace takes it.
            "--shutdown-timeout=2".into(),
        ];
        if let Ok(level) = std::env::var(DOCKERD_LOG_LEVEL_ENV) {
            args.push(format!("--log-level={level}"));
        }
        args
    }

    fn launcher_exit(&self) -> Option<std::process::ExitStatus> {
        lock(&self.launcher)
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Polls `docker info` until it answers; ends at once (with the log) if dockerd exits.
    fn wait_ready(&self) -> Result<()> {
        wait_for_strict(
            &format!(
                "{}'s dockerd to answer on {}",
                self.host,
                self.socket.display()
            ),
            DOCKER_READY_TIMEOUT,
            Duration::from_millis(50),
            || {
                if let Some(status) = self.launcher_exit() {
                    bail!("dockerd's pid namespace ended ({status}) before dockerd answered");
                }
                if let Some(status) = lock(&self.dockerd)
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    bail!("dockerd exited ({status}) before it answered");
                }
                if !self.socket.exists() {
                    return Ok(None);
                }
                // A CLI that failed or ran out of time: not yet.
                let out = cmd::run(
                    &mut self.command(&["info", "--format", "{{.ID}}"]),
                    Duration::from_secs(10),
                );
                Ok(out.is_ok_and(|o| o.status.success()).then_some(()))
            },
        )
        .map_err(|e| anyhow!("{e:#}\n---- dockerd log ----\n{}", self.log_tail(40)))
    }

    /// The lab host's short name (`h0`).
    pub fn host_name(&self) -> &str {
        &self.host
    }

    /// The API socket: `unix://SOCKET` is the CLI's `--host`; the path is the vxnet daemon's
    /// `--docker-host`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `ROOT/h<i>-docker/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host directory this dockerd sees as `/run/docker/plugins`.
    pub fn plugins_dir(&self) -> &Path {
        &self.plugins
    }

    /// `PLUGINS_DIR/NAME.sock`: where a plugin called `name` serves for this dockerd.
    pub fn plugin_socket(&self, name: &str) -> PathBuf {
        self.plugins.join(format!("{name}.sock"))
    }

    /// The cgroup (under every hierarchy's root) its containers go in, without the leading `/`.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// dockerd's log (with containerd's): `ROOT/h<i>-dockerd.log`, kept until the lab's
    /// teardown.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of dockerd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        super::tail(&self.log, lines)
    }

    /// Pid (as the test sees it) of the running dockerd. Error if it is not running.
    pub fn dockerd_pid(&self) -> Result<i32> {
        let nsenter = lock(&self.dockerd)
            .as_ref()
            .map(|c| c.id() as i32)
            .ok_or_else(|| anyhow!("no dockerd on {}", self.host))?;
        children(nsenter)
            .into_iter()
            .find(|(_, comm)| comm == "dockerd")
            .map(|(pid, _)| pid)
            .ok_or_else(|| anyhow!("{}'s dockerd is not running", self.host))
    }

    /// The `docker` CLI against this engine, ready to run: `docker --host unix://SOCKET args...`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.cli);
        c.env("DOCKER_CONFIG", self.dir.join("cli"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        c
    }

    /// Runs the CLI; the output whatever the exit status. Errors only when the CLI cannot start
    /// or runs past [`DEFAULT_TIMEOUT`].
    pub fn docker(&self, args: &[&str]) -> Result<Output> {
        cmd::run(&mut self.command(args), DEFAULT_TIMEOUT)
    }

    /// Runs the CLI; a non-zero exit is an error with its stderr and the tail of dockerd's log.
    /// Returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.docker(args)?;
        if !out.status.success() {
            bail!(
                "docker {args:?} on {} failed ({}): {}\n---- dockerd log ----\n{}",
                self.host,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail(20)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Names of every container this engine has (`docker ps -a`), sorted.
    pub fn container_names(&self) -> Result<Vec<String>> {
        let out = self.docker_ok(&["ps", "-a", "--format", "{{.Names}}"])?;
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        Ok(names)
    }

    /// Imports [`BUSYBOX_IMAGE`] (built once per process, see [`busybox_rootfs_tar`]).
    pub fn import_busybox(&self) -> Result<()> {
        super::busybox::import_into(&self.dir, BUSYBOX_IMAGE, |args| self.docker_ok(args))
    }

    /// What this engine could leave behind, to check once it is gone.
    pub fn footprint(&self) -> DockerFootprint {
        DockerFootprint {
            dir: self.dir.clone(),
            cgroup_parent: self.cgroup_parent.clone(),
        }
    }

    /// Stops the engine and cleans up after it (see the module docs). Idempotent; also run by
    /// `Drop`. Never panics.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "---- {} dockerd log, last 40 lines: {} ----\n{}",
                self.host,
                self.log.display(),
                self.log_tail(40)
            );
        }
        let running = lock(&self.dockerd)
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running {
            self.remove_containers();
        }
        if let Err(e) = self.stop_dockerd() {
            eprintln!("vxnet lab docker teardown: {e:#}");
        }
        let launcher = lock(&self.launcher).take();
        if let Some(mut launcher) = launcher {
            let init = *lock(&self.init_pid);
            stop_launcher(&mut launcher, init, DOCKER_STOP_TIMEOUT);
        }
        let footprint = self.footprint();
        // The pid namespace is gone once init is reaped; a moment for stragglers anyway.
        let _ = wait_for(
            "dockerd's processes to go",
            Duration::from_secs(5),
            Duration::from_millis(20),
            || Ok(footprint.processes().is_empty().then_some(())),
        );
        netns::unmount_all_under(&self.dir);
        remove_cgroups(&self.cgroup_parent);
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!(
                    "vxnet lab docker teardown: removing {}: {e}",
                    self.dir.display()
                );
            }
        }
    }

    /// `docker rm -f -v` of every container, each call bounded by [`TEARDOWN_CLI_TIMEOUT`];
    /// errors are printed, not returned (the pid namespace takes whatever is left).
    fn remove_containers(&self) {
        let run = |args: &[&str]| -> Result<String> {
            let out = cmd::run(&mut self.command(args), TEARDOWN_CLI_TIMEOUT)?;
            if !out.status.success() {
                bail!(
                    "docker {args:?} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let ids = match run(&["ps", "-aq", "--no-trunc"]) {
            Ok(out) => out,
            Err(e) => {
                eprintln!("vxnet lab docker teardown on {}: {e:#}", self.host);
                return;
            }
        };
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(&ids);
        if let Err(e) = run(&args) {
            eprintln!("vxnet lab docker teardown on {}: {e:#}", self.host);
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM to init (docker-init forwards it to the placeholder and exits with it, which takes
/// the whole pid namespace down); the launcher exits with init. After `timeout`, SIGKILL to init and the launcher. Always reaps the launcher.
fn stop_launcher(launcher: &mut Child, init: Option<i32>, timeout: Duration) {
    if let Ok(Some(_)) = launcher.try_wait() {
        return;
    }
    // init is the launcher's child, alive while the launcher is (--kill-child), so its pid is
    // still init's here.
    let signal_init = |sig| {
        if let Some(pid) = init {
            // SAFETY: kill(2) on the pid namespace's init, which the unreaped launcher still
            // waits for.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    };
    signal_init(libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = launcher.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_init(libc::SIGKILL);
    let _ = launcher.kill();
    let _ = launcher.wait();
}

/// Makes `dir` a shared bind mount of itself in the test's mount namespace, so that the mounts
/// dockerd makes under it (container namespaces) show here too.
fn share_dir(dir: &Path) -> Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes()).context("a NUL in the docker dir")?;
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: mount(2) with NUL-terminated strings and null where allowed.
    unsafe {
        if libc::mount(c.as_ptr(), c.as_ptr(), null, libc::MS_BIND, null.cast()) != 0 {
            bail!(
                "bind-mounting {} on itself: {}",
                dir.display(),
                io::Error::last_os_error()
            );
        }
        if libc::mount(null, c.as_ptr(), null, libc::MS_SHARED, null.cast()) != 0 {
            bail!(
                "making {} shared: {}",
                dir.display(),
                io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// What to install for the engine (scripts/install-deps.sh does).
const DOCKER_PACKAGES: &str = "docker.io";

/// `name` on `$PATH`, or in the usual system directories (a test's `$PATH` may lack `sbin`);
/// the error says to install `package`.
fn find_program(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .map(PathBuf::from),
    );
    for d in dirs {
        let p = d.join(name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    bail!("no {name} on $PATH or in /usr/sbin, /usr/bin: apt-get install -y {package} (or run scripts/install-deps.sh)")
}

/// The `docker` CLI that came with `dockerd` (same directory, or `bin` beside its `sbin`), else
/// the first on `$PATH`.
fn find_cli(dockerd: &Path) -> Result<PathBuf> {
    if let Some(dir) = dockerd.parent() {
        let mut candidates = vec![dir.join("docker")];
        if dir.file_name().is_some_and(|n| n == "sbin") {
            candidates.push(dir.with_file_name("bin").join("docker"));
        }
        if let Some(p) = candidates.into_iter().find(|p| is_executable(p)) {
            return Ok(p);
        }
    }
    find_program("docker", DOCKER_PACKAGES)
}

/// `name` beside the docker CLI, else anywhere [`find_program`] looks.
fn find_beside(name: &str, cli: &Path) -> Result<PathBuf> {
    match cli.parent().map(|d| d.join(name)) {
        Some(p) if is_executable(&p) => Ok(p),
        _ => find_program(name, DOCKER_PACKAGES),
    }
}

pub(super) fn is_executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

mod footprint;
#[cfg(test)]
mod tests;
