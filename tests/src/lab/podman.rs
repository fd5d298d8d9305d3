//! Podman on lab hosts: a real container runtime driving vxnet as its CNI plugin, for the CNI
//! tests. Podman has no daemon: each [`Podman::podman`] call is one `podman` process, and a
//! running container is its `conmon` and the container's processes.
//!
//! ```text
//!  test process ── podman (setns into PREFIX-h<i>; a mount ns of its own, see below)
//!                    └─ conmon ── container        CNI: DIR/cni-bin/vxnet (the vxnet binary)
//!  DIR = ROOT/h<i>-podman/   root/ runroot/ tmp/ net/ cni-bin/ varlib/ volumes/ *.conf
//!  ROOT/h<i>-podman.log      every podman call and what it printed on stderr
//! ```
//!
//! Rules a test relies on:
//! - Every `podman` runs in the host's network namespace, entered by `setns` like the vxnet
//!   daemon (CNI plugins run in the runtime's namespace, so the plugin reaches the host's
//!   daemon socket and publishes ports there), with its own `--root`, `--runroot`, `--tmpdir`,
//!   `--network-config-dir` (`DIR/net`, where [`Podman::add_network`] writes conflists) and a
//!   `containers.conf`, `storage.conf` and `registries.conf` of its own (`CONTAINERS_CONF`,
//!   ...: the machine's are never read): cgroupfs, file locks and events under `DIR` (nothing
//!   in `/dev/shm`), the CNI backend with `DIR/cni-bin` as the only plugin directory (`vxnet`,
//!   a link to the lab's vxnet binary, beside links to every plugin of `/usr/lib/cni`).
//! - Its mount namespace is the test's with two differences, so that nothing of the machine's
//!   own Podman or CNI state is read or written: `DIR/varlib` is bind-mounted over `/var/lib`
//!   (libcni's result cache `/var/lib/cni`, the image blob cache `/var/lib/containers`), and
//!   every shared mount but `/run/netns` is made a slave first, so that bind stays Podman's.
//!   `/run/netns` stays shared: the container namespaces Podman makes there
//!   (`/run/netns/netns-<uuid>`, fixed in Podman 4) must be the same files for the vxnet daemon,
//!   which opens the `CNI_NETNS` path in the test's mount namespace.
//! - Containers get `--cgroup-parent /vxnet-lab-PREFIX-h<i>-podman` (cgroupfs), conmon goes
//!   under it too; the resource limits Podman asks for by default are above what this machine
//!   allows without `CAP_SYS_RESOURCE`, so `containers.conf` sets `nofile` to this process's
//!   hard limit and `nproc` to at most 32768 (conmon's own limit with Debian's Podman 4.3).
//! - The image [`BUSYBOX_IMAGE`] is [`busybox_rootfs_tar`] imported by
//!   [`Podman::import_busybox`]; nothing is ever pulled.
//! - Teardown ([`Podman::stop`], also `Drop`, also while a test panics, idempotent): `podman rm
//!   -a -f -t 0`, then every process of the footprint is killed, the container namespaces it
//!   made and every mount under `DIR` are detached, the cgroups removed and `DIR` deleted; the
//!   log stays until the lab's teardown. [`Podman::footprint`] tells what would be left.
//!   A killed run's conmons die with the lab's host namespaces in the next lab's sweep, and its
//!   cgroups go with the Docker Engines' ([`super::docker`], same `vxnet-lab-PREFIX` names).
//! - Every `podman` call has a deadline ([`PODMAN_TIMEOUT`]).
//! - Tools: `podman`, `conmon`, `runc` (`apt-get install podman`), the reference plugins in
//!   `/usr/lib/cni` (`containernetworking-plugins`), a static busybox (`busybox-static`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::cgroups::{cgroups_named, remove_cgroups, CGROUP_TAG};
use super::private_mounts::PrivateMounts;
use super::{lock, Host, Lab};
use crate::cmd;
use crate::netns;
use crate::wait::wait_for;

/// The image [`Podman::import_busybox`] makes.
pub const BUSYBOX_IMAGE: &str = "localhost/vxnet-lab-busybox:latest";
/// Deadline of one `podman` call (a `run` includes the CNI ADD).
pub const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);
/// Where the reference CNI plugins are (`containernetworking-plugins`).
pub const SYSTEM_CNI_DIR: &str = "/usr/lib/cni";
/// The highest `nproc` limit given to containers (see the module docs).
const NPROC_CAP: u64 = 32768;

/// Podman on one lab host. See the module docs for the rules.
pub struct Podman {
    host: String,
    ns: String,
    dir: PathBuf,
    log: PathBuf,
    cgroup_parent: String,
    /// Container namespaces seen (`SandboxKey`), removed at teardown if Podman left them.
    sandboxes: Mutex<Vec<PathBuf>>,
    stopped: AtomicBool,
}

/// What a [`Podman`] could leave behind: processes (in its cgroup, or naming its directory on
/// their command line: conmon, `podman container cleanup`), mounts under its directory,
/// container namespaces, cgroups.
#[derive(Debug, Clone)]
pub struct PodmanFootprint {
    dir: PathBuf,
    cgroup_parent: String,
    sandboxes: Vec<PathBuf>,
}

impl Lab {
    /// Sets up Podman on host `index` ([`Podman::start`]).
    pub fn start_podman(&self, index: usize) -> Result<Podman> {
        Podman::start(self.host(index))
    }
}

impl Podman {
    /// `ROOT/h<i>-podman/`.
    pub fn dir_for(host: &Host) -> PathBuf {
        host.data_dir()
            .with_file_name(format!("{}-podman", host.name()))
    }

    /// Makes Podman's directories and configuration on `host` and checks that `podman` runs.
    /// On error nothing is left behind.
    pub fn start(host: &Host) -> Result<Podman> {
        let podman = find_podman()?;
        let dir = Podman::dir_for(host);
        if dir.exists() {
            netns::unmount_all_under(&dir);
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let p = Podman {
            host: host.name().to_string(),
            ns: host.ns().to_string(),
            log: host
                .data_dir()
                .with_file_name(format!("{}-podman.log", host.name())),
            cgroup_parent: format!("{CGROUP_TAG}{}-podman", host.ns()),
            dir,
            sandboxes: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        };
        // From here on, Drop cleans up whatever a failure leaves.
        p.write_config(host)?;
        let version = p
            .podman_ok(&["version", "--format", "{{.Client.Version}}"])
            .with_context(|| format!("running {}", podman.display()))?;
        if version.trim().is_empty() {
            bail!("podman printed no version");
        }
        Ok(p)
    }

    fn write_config(&self, host: &Host) -> Result<()> {
        for d in [
            "root", "runroot", "tmp", "net", "cni-bin", "varlib", "volumes",
        ] {
            let d = self.dir.join(d);
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let bin = self.dir.join("cni-bin");
        let vxnet = host
            .bin
            .clone()
            .map_or_else(crate::find_vxnet_bin, Ok)
            .context("the vxnet binary for the CNI bin dir")?;
        symlink(&vxnet, bin.join("vxnet")).context("linking vxnet into the CNI bin dir")?;
        let plugins = fs::read_dir(SYSTEM_CNI_DIR).with_context(|| {
            format!(
                "no {SYSTEM_CNI_DIR}: apt-get install -y containernetworking-plugins (or run \
                 scripts/install-deps.sh)"
            )
        })?;
        for e in plugins.flatten() {
            symlink(e.path(), bin.join(e.file_name()))
                .with_context(|| format!("linking {}", e.path().display()))?;
        }
        let d = |p: &str| self.dir.join(p).to_string_lossy().into_owned();
        let (nofile, nproc) = (
            hard_limit(libc::RLIMIT_NOFILE),
            hard_limit(libc::RLIMIT_NPROC),
        );
        let nproc = nproc.min(NPROC_CAP);
        let containers_conf = format!(
            r#"[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
tmp_dir = "{tmp}"
lock_type = "file"
volume_path = "{volumes}"
# conmon runs `podman container cleanup` (the CNI DEL) when a container exits: with this
# configuration too.
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF={conf}", "CONTAINERS_STORAGE_CONF={storage}", "CONTAINERS_REGISTRIES_CONF={registries}"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["{bin}"]
network_config_dir = "{net}"
default_network = "none"
"#,
            events = d("events.log"),
            tmp = d("tmp"),
            volumes = d("volumes"),
            conf = d("containers.conf"),
            storage = d("storage.conf"),
            registries = d("registries.conf"),
            bin = d("cni-bin"),
            net = d("net"),
        );
        let storage_conf = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            d("root"),
            d("runroot")
        );
        for (name, text) in [
            ("containers.conf", containers_conf.as_str()),
            ("storage.conf", storage_conf.as_str()),
            ("registries.conf", ""),
        ] {
            fs::write(self.dir.join(name), text).with_context(|| format!("writing {name}"))?;
        }
        Ok(())
    }

    pub fn host_name(&self) -> &str {
        &self.host
    }

    /// `ROOT/h<i>-podman/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CNI bin dir: `vxnet` and the reference plugins.
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.dir.join("cni-bin")
    }

    /// The cgroup (under every hierarchy's root) containers go in, without the leading `/`.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// `ROOT/h<i>-podman.log`.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        super::tail(&self.log, lines)
    }

    /// A conflist with vxnet first — on vxnet network `network` through the daemon at
    /// `socket`, with the capabilities it serves (`portMappings`, `ips`, `aliases`) — then
    /// `chained` plugins (e.g. `tuning`), which get vxnet's result as their `prevResult`.
    pub fn vxnet_conflist(
        cni_version: &str,
        name: &str,
        network: &str,
        socket: &Path,
        chained: &[Value],
    ) -> Value {
        let mut plugins = vec![json!({
            "type": "vxnet",
            "network": network,
            "socket": socket.to_string_lossy(),
            "capabilities": {"portMappings": true, "ips": true, "aliases": true},
        })];
        plugins.extend(chained.iter().cloned());
        json!({"cniVersion": cni_version, "name": name, "plugins": plugins})
    }

    /// Writes `conflist` as `DIR/net/NAME.conflist`: the CNI network `NAME` for `--network`.
    pub fn add_network(&self, conflist: &Value) -> Result<()> {
        let name = conflist["name"]
            .as_str()
            .ok_or_else(|| anyhow!("a conflist needs a name: {conflist}"))?;
        let file = self.dir.join("net").join(format!("{name}.conflist"));
        fs::write(&file, format!("{conflist:#}\n"))
            .with_context(|| format!("writing {}", file.display()))
    }

    /// `podman` with this host's global options, environment, namespace and mounts, ready to
    /// run.
    pub fn command(&self, args: &[&str]) -> Result<Command> {
        let d = |p: &str| self.dir.join(p);
        let mut c = Command::new(find_podman()?);
        c.env("CONTAINERS_CONF", d("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d("registries.conf"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .arg("--root")
            .arg(d("root"))
            .arg("--runroot")
            .arg(d("runroot"))
            .arg("--tmpdir")
            .arg(d("tmp"))
            .arg("--network-config-dir")
            .arg(d("net"))
            .arg("--cgroup-manager=cgroupfs")
            .arg("--events-backend=file")
            .args(args);
        Ok(c)
    }

    /// Runs `podman args...` (see [`Podman::command`]); the output whatever the exit status.
    /// Errors only when podman cannot start or runs past [`PODMAN_TIMEOUT`].
    pub fn podman(&self, args: &[&str]) -> Result<Output> {
        let mut c = self.command(args)?;
        let ns_file = netns::enter_in_child(&mut c, &netns::netns_path(&self.ns))?;
        let plan = podman_mounts(&self.dir.join("varlib"))?;
        // SAFETY: runs in the forked child before exec; `PrivateMounts::apply` makes only
        // async-signal-safe system calls on strings built before the fork.
        unsafe {
            c.pre_exec(move || plan.apply());
        }
        let out = cmd::run(&mut c, PODMAN_TIMEOUT);
        drop(ns_file);
        let mut entry = format!("$ podman {}\n", args.join(" "));
        match &out {
            Ok(o) => {
                entry.push_str(&String::from_utf8_lossy(&o.stderr));
                entry.push_str(&format!("[{}]\n", o.status));
            }
            Err(e) => entry.push_str(&format!("[{e:#}]\n")),
        }
        let _ = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .and_then(|mut f| io::Write::write_all(&mut f, entry.as_bytes()));
        out
    }

    /// Runs podman; a non-zero exit is an error with its stderr. Returns stdout.
    pub fn podman_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.podman(args)?;
        if !out.status.success() {
            bail!(
                "podman {args:?} on {} failed ({}): {}",
                self.host,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Imports [`BUSYBOX_IMAGE`] from [`busybox_rootfs_tar`].
    pub fn import_busybox(&self) -> Result<()> {
        super::busybox::import_into(&self.dir, BUSYBOX_IMAGE, |args| self.podman_ok(args))
    }

    /// `podman run -d --name NAME --network NETWORK --cgroup-parent ... extra... IMAGE cmd...`;
    /// returns the container id. Records its network namespace for teardown.
    pub fn run(&self, name: &str, network: &str, extra: &[&str], cmd: &[&str]) -> Result<String> {
        let parent = format!("/{}", self.cgroup_parent);
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--cgroup-parent",
            &parent,
        ];
        args.extend_from_slice(extra);
        args.push(BUSYBOX_IMAGE);
        args.extend_from_slice(cmd);
        let out = self.podman(&args)?;
        // A failed run may still have made a namespace: look either way.
        if let Ok(key) = self.sandbox_key(name) {
            lock(&self.sandboxes).push(key);
        }
        if !out.status.success() {
            bail!(
                "podman run {name} on {} failed ({}): {}",
                self.host,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The container's network namespace file (`SandboxKey`).
    pub fn sandbox_key(&self, name: &str) -> Result<PathBuf> {
        let key = self.podman_ok(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.SandboxKey}}",
            name,
        ])?;
        let key = key.trim();
        if key.is_empty() {
            bail!("container {name} has no network namespace");
        }
        Ok(PathBuf::from(key))
    }

    /// `podman exec NAME cmd...`; the output whatever the exit status.
    pub fn exec(&self, name: &str, cmd: &[&str]) -> Result<Output> {
        let mut args = vec!["exec", name];
        args.extend_from_slice(cmd);
        self.podman(&args)
    }

    /// What this Podman could leave behind, to check once it is gone.
    pub fn footprint(&self) -> PodmanFootprint {
        PodmanFootprint {
            dir: self.dir.clone(),
            cgroup_parent: self.cgroup_parent.clone(),
            sandboxes: lock(&self.sandboxes).clone(),
        }
    }

    /// Removes every container and cleans up after them (see the module docs). Idempotent;
    /// also run by `Drop`. Never panics.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "---- {} podman log, last 40 lines: {} ----\n{}",
                self.host,
                self.log.display(),
                self.log_tail(40)
            );
        }
        if let Err(e) = self.podman_ok(&["rm", "-a", "-f", "-t", "0"]) {
            eprintln!("vxnet lab podman teardown on {}: {e:#}", self.host);
        }
        let footprint = self.footprint();
        for (pid, _) in footprint.processes() {
            // SAFETY: kill(2) on a process in this Podman's cgroup or naming its directory.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = wait_for(
            "podman's processes to go",
            Duration::from_secs(5),
            Duration::from_millis(20),
            || Ok(footprint.processes().is_empty().then_some(())),
        );
        for ns in footprint.sandboxes_left() {
            detach(&ns);
            let _ = fs::remove_file(&ns);
        }
        netns::unmount_all_under(&self.dir);
        remove_cgroups(&self.cgroup_parent);
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!(
                    "vxnet lab podman teardown: removing {}: {e}",
                    self.dir.display()
                );
            }
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PodmanFootprint {
    /// Its processes still there, as `(pid, comm)`.
    pub fn processes(&self) -> Vec<(i32, String)> {
        let dir = self.dir.as_os_str().as_bytes();
        let cgroup = format!("/{}", self.cgroup_parent);
        let me = std::process::id() as i32;
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                let in_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| {
                    t.lines().any(|l| {
                        l.split(':')
                            .nth(2)
                            .is_some_and(|p| p == cgroup || p.starts_with(&format!("{cgroup}/")))
                    })
                });
                let names_dir = fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.windows(dir.len()).any(|w| w == dir));
                in_cgroup || names_dir
            })
            .map(|pid| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                (pid, comm.trim().to_string())
            })
            .collect()
    }

    /// Container namespaces it made that are still there.
    pub fn sandboxes_left(&self) -> Vec<PathBuf> {
        self.sandboxes
            .iter()
            .filter(|p| p.exists())
            .cloned()
            .collect()
    }

    /// Cgroup directories named after its cgroup parent, in every hierarchy.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        cgroups_named(&self.cgroup_parent)
    }

    /// Error naming whatever is left.
    pub fn check_gone(&self) -> Result<()> {
        let processes = self.processes();
        let mounts: Vec<PathBuf> = netns::mounts_under(&self.dir)
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        let sandboxes = self.sandboxes_left();
        let cgroups = self.cgroups();
        let dir = self.dir.exists();
        if processes.is_empty()
            && mounts.is_empty()
            && sandboxes.is_empty()
            && cgroups.is_empty()
            && !dir
        {
            return Ok(());
        }
        bail!(
            "left behind by the Podman in {}: processes {processes:?}, mounts {mounts:?}, \
             namespaces {sandboxes:?}, cgroups {cgroups:?}{}",
            self.dir.display(),
            if dir { ", the directory" } else { "" }
        )
    }
}

/// Lazily unmounts `path` (a namespace file); errors are ignored.
fn detach(path: &Path) {
    if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: umount2(2) with a valid NUL-terminated path.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Podman's mount namespace (see the module docs): `/run/netns` stays shared, `varlib` is over
/// `/var/lib`.
fn podman_mounts(varlib: &Path) -> Result<PrivateMounts> {
    let netns_dir = fs::canonicalize(netns::NETNS_DIR)
        .with_context(|| format!("resolving {}", netns::NETNS_DIR))?;
    let plan = PrivateMounts::new(&netns_dir)?;
    if !plan
        .mounts()
        .iter()
        .any(|m| m.shared && m.mount_point == netns_dir)
    {
        bail!(
            "{} is not a shared mount: the namespaces Podman makes there would not be seen \
             by the vxnet daemon (`ip netns add` makes it one)",
            netns_dir.display()
        );
    }
    plan.bind(varlib, Path::new("/var/lib"))
}

/// This process's hard limit of `resource`.
fn hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_max
}

/// `podman` on `$PATH` or in `/usr/bin`.
fn find_podman() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("podman"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("no podman: apt-get install -y --no-install-recommends podman (or run scripts/install-deps.sh)")
        })
}

#[cfg(test)]
mod tests;
