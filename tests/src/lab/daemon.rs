//! vxnet daemons on lab hosts: starting, stopping and killing them, and driving them through
//! the `vxnet` CLI, with the JSON it prints read into typed values ([`vxnet_json`]).
//!
//! Rules a test relies on:
//! - A daemon runs with `--advertise-addr` = the host's underlay address, `--data-dir`,
//!   `--socket` and `--name` from the host, then the lab's extra daemon arguments, and
//!   `--log-level` from [`LOG_LEVEL_ENV`] (`VXNET_LAB_LOG_LEVEL`) when that is set. It is put
//!   into the host namespace by `setns` in `pre_exec` ([`netns::enter_in_child`]), so it shares
//!   the test's mount namespace.
//! - With `VXNET_LAB_KERNEL=3.10` (in the environment, or in one start's `env`) a daemon also
//!   gets `--kernel 3.10` and runs under a seccomp filter that answers like Linux 3.10,
//!   installed in `pre_exec` after the `setns` ([`super::seccomp`]).
//! - A restart reuses the data dir: that is how restart and crash tests work.
//! - Every CLI call has a process deadline. [`Host::vxnet_timed`] also passes `--timeout` and
//!   allows [`CLI_DEADLINE_MARGIN`] on top; the polling queries ([`Host::fdb`],
//!   [`Host::inspect_network`], [`Host::network_names`], the `wait_*` helpers) run with
//!   [`PROBE_TIMEOUT`], so a host without quorum or cut off costs seconds per look, and every
//!   wait has its own deadline on top.
//! - The CLI wrappers differ only in what a failure is: [`Host::try_vxnet`] returns the output
//!   whatever the exit status, [`Host::vxnet_checked`] makes a non-zero exit an error (with the
//!   daemon log's tail), and [`Host::vxnet`] / [`Host::vxnet_ok`] are the panicking forms for
//!   tests.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::seccomp::LabKernel;
use super::{lock, Host, HostKind, Lab};
use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::netns;
use crate::vxnet_json::{self, parse_fdb, parse_inspect, FdbEntry, NetworkInfo};
use crate::wait::wait_for;

/// How long a freshly started daemon may take to answer on its socket.
pub const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon gets to exit after SIGTERM before it is SIGKILLed.
pub const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How far past its own `--timeout` a CLI call may run before the lab kills it: process start,
/// connecting, printing. The CLI answers within `--timeout` (README, "The command line"), so
/// this only has to cover what happens around the request.
pub const CLI_DEADLINE_MARGIN: Duration = Duration::from_secs(5);
/// `--timeout` of the queries that polling loops make.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Environment variable whose value every lab daemon gets as `--log-level`.
pub const LOG_LEVEL_ENV: &str = "VXNET_LAB_LOG_LEVEL";

/// What [`Host::vxnet_timed`] saw: the CLI's output and the wall time of the call.
#[derive(Debug, Clone)]
pub struct TimedOutput {
    /// Exit status, stdout and stderr.
    pub output: Output,
    /// From spawning the CLI to its exit.
    pub elapsed: Duration,
}

impl TimedOutput {
    /// Whether the CLI exited 0.
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// Whether `stderr` is exactly one line `vxnet: ...`, the CLI's error shape (README, "The
/// command line"). Blank lines are ignored.
pub fn is_one_error_line(stderr: &str) -> bool {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.len() == 1 && lines[0].starts_with("vxnet: ")
}

impl Host {
    fn bin(&self) -> Result<&Path> {
        self.bin
            .as_deref()
            .ok_or_else(|| anyhow!("host {} is not a vxnet host", self.name))
    }

    /// `vxnet --socket SOCKET args...`, ready to run.
    pub fn vxnet_command(&self, args: &[&str]) -> Result<Command> {
        let mut c = Command::new(self.bin()?);
        c.arg("--socket").arg(&self.socket).args(args);
        Ok(c)
    }

    /// Runs the CLI against this host's daemon; the output whatever the exit status. Errors
    /// only when the CLI cannot start or runs past its deadline (it must never hang).
    pub fn try_vxnet(&self, args: &[&str]) -> Result<Output> {
        cmd::run(&mut self.vxnet_command(args)?, DEFAULT_TIMEOUT)
    }

    /// A failed CLI call on this host, with the tail of the daemon log.
    fn cli_failure(&self, args: &[&str], what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "vxnet {args:?} on {}{what}\n---- daemon log ----\n{}",
            self.name,
            self.log_tail(40)
        )
    }

    /// [`Host::try_vxnet`] for tests: panics (with the daemon log) if the CLI cannot run.
    pub fn vxnet(&self, args: &[&str]) -> Output {
        self.try_vxnet(args)
            .unwrap_or_else(|e| panic!("{}", self.cli_failure(args, format_args!(": {e:#}"))))
    }

    /// Runs the CLI; a non-zero exit is an error carrying its stderr and the daemon log's
    /// tail. Returns stdout.
    pub fn vxnet_checked(&self, args: &[&str]) -> Result<String> {
        let out = self
            .try_vxnet(args)
            .map_err(|e| self.cli_failure(args, format_args!(": {e:#}")))?;
        if !out.status.success() {
            return Err(self.cli_failure(
                args,
                format_args!(
                    " failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// [`Host::vxnet_checked`] for tests: panics unless the CLI exits 0; returns stdout.
    pub fn vxnet_ok(&self, args: &[&str]) -> String {
        self.vxnet_checked(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs the CLI with its own `--timeout cli_timeout` and a process deadline a little past
    /// it; returns the output whatever the exit status, and how long the call took. For tests
    /// of "fails within --timeout": the deadline only catches a CLI that hangs regardless.
    pub fn vxnet_timed(&self, args: &[&str], cli_timeout: Duration) -> Result<TimedOutput> {
        let timeout_arg = format!("{}ms", cli_timeout.as_millis());
        let mut full = vec!["--timeout", timeout_arg.as_str()];
        full.extend_from_slice(args);
        let mut c = self.vxnet_command(&full)?;
        let started = Instant::now();
        let output = cmd::run(&mut c, cli_timeout + CLI_DEADLINE_MARGIN)?;
        Ok(TimedOutput {
            output,
            elapsed: started.elapsed(),
        })
    }

    /// Runs a query with [`PROBE_TIMEOUT`]; non-zero exit is an error with its stderr.
    pub(super) fn probe(&self, args: &[&str]) -> Result<String> {
        let out = self.vxnet_timed(args, PROBE_TIMEOUT)?;
        if !out.success() {
            bail!(
                "vxnet {args:?} on {} failed ({}): {}",
                self.name,
                out.output.status,
                out.stderr().trim()
            );
        }
        Ok(out.stdout())
    }

    /// Whether a daemon process started by the lab is alive.
    pub fn daemon_running(&self) -> bool {
        lock(&self.daemon)
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Pid of the daemon started by the lab, if it is still owned.
    pub fn daemon_pid(&self) -> Option<u32> {
        lock(&self.daemon).as_ref().map(Child::id)
    }

    /// Starts `vxnet daemon` in the host namespace on this host's data dir and socket, and
    /// waits (bounded) until `network ls` answers. A restart uses the same data dir.
    pub fn start_daemon(&self) -> Result<()> {
        self.start_daemon_with(&[], &[])
    }

    /// [`Host::start_daemon`] with `extra` daemon arguments (e.g. `--force-new-cluster`) and
    /// environment variables `env` (e.g. a crash point) for this start only.
    pub fn start_daemon_with(&self, extra: &[&str], env: &[(&str, &str)]) -> Result<()> {
        self.spawn_daemon_with(extra, env)?;
        self.wait_ready(DAEMON_READY_TIMEOUT)
    }

    /// Starts `vxnet daemon` like [`Host::start_daemon`] but returns at once, without waiting
    /// for it to answer. A restarted cluster member may only answer once a quorum of its peers
    /// is up too, so a whole cluster is started with this first and [`Host::wait_ready`] after.
    pub fn spawn_daemon(&self) -> Result<()> {
        self.spawn_daemon_with(&[], &[])
    }

    /// [`Host::spawn_daemon`] with `extra` daemon arguments and `env` for this start only.
    pub fn spawn_daemon_with(&self, extra: &[&str], env: &[(&str, &str)]) -> Result<()> {
        let bin = self.bin()?.to_path_buf();
        let mut slot = lock(&self.daemon);
        if let Some(c) = slot.as_mut() {
            if matches!(c.try_wait(), Ok(None)) {
                bail!("the daemon of {} is already running", self.name);
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let log_err = log.try_clone().context("duplicating the log handle")?;
        let mut c = Command::new(&bin);
        c.arg("daemon")
            .arg("--advertise-addr")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--name")
            .arg(&self.name);
        if let Ok(level) = std::env::var(LOG_LEVEL_ENV) {
            c.arg("--log-level").arg(level);
        }
        let old_kernel = LabKernel::for_start(env)?;
        if let Some(version) = old_kernel.as_ref().and_then(|k| k.flag) {
            c.arg("--kernel").arg(version);
        }
        c.args(&self.daemon_args)
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let ns_file = netns::enter_in_child(&mut c, &netns::netns_path(&self.ns))?;
        if let Some(kernel) = &old_kernel {
            kernel.filter.install_in_child(&mut c);
        }
        let child = c
            .spawn()
            .with_context(|| format!("starting {}", cmd::describe(&c)))?;
        drop(ns_file);
        *slot = Some(child);
        Ok(())
    }

    /// Polls `vxnet network ls` until it exits 0; fails early if the daemon exits.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        wait_for(
            &format!(
                "the daemon of {} to answer on {}",
                self.name,
                self.socket.display()
            ),
            timeout,
            Duration::from_millis(100),
            || {
                if let Some(c) = lock(&self.daemon).as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        bail!(
                            "daemon exited ({status}) before becoming ready; log:\n{}",
                            self.log_tail(40)
                        );
                    }
                }
                if !self.socket.exists() {
                    return Ok(None);
                }
                let mut c = self.vxnet_command(&["network", "ls"])?;
                let out = cmd::run(&mut c, Duration::from_secs(5))?;
                Ok(out.status.success().then_some(()))
            },
        )
        .map_err(|e| anyhow!("{e:#}\n---- daemon log ----\n{}", self.log_tail(40)))
    }

    /// Waits (bounded) for the daemon to exit by itself, and returns how it exited. Error if
    /// no daemon was running, or if it is still running after `timeout`.
    pub fn wait_daemon_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut slot = lock(&self.daemon);
                let child = slot
                    .as_mut()
                    .ok_or_else(|| anyhow!("no daemon running on {}", self.name))?;
                if let Some(status) = child.try_wait().context("waiting for the daemon")? {
                    *slot = None;
                    return Ok(status);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon of {} still runs after {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` to the daemon and waits for it to exit (SIGKILL after
    /// [`DAEMON_STOP_TIMEOUT`]). Returns the exit status if it exited on `signal`, `None` if it
    /// had to be killed. Error if no daemon was running.
    pub fn kill_daemon(&self, signal: i32) -> Result<Option<ExitStatus>> {
        let mut child = lock(&self.daemon)
            .take()
            .ok_or_else(|| anyhow!("no daemon running on {}", self.name))?;
        Ok(cmd::signal_and_reap(
            &mut child,
            signal,
            DAEMON_STOP_TIMEOUT,
        ))
    }

    /// `fdb NETWORK --format json`, parsed.
    pub fn fdb(&self, network: &str) -> Result<Vec<FdbEntry>> {
        parse_fdb(&self.probe(&["fdb", network, "--format", "json"])?)
    }

    /// Whether this host's FDB of `network` holds `mac` (any kind, either case).
    pub fn fdb_has_mac(&self, network: &str, mac: &str) -> Result<bool> {
        let mac = mac.to_ascii_lowercase();
        Ok(self.fdb(network)?.iter().any(|e| e.mac == mac))
    }

    /// `network inspect NETWORK`, parsed; exactly one network expected.
    pub fn inspect_network(&self, network: &str) -> Result<NetworkInfo> {
        let mut nets = parse_inspect(&self.probe(&["network", "inspect", network])?)?;
        if nets.len() != 1 {
            bail!(
                "inspect {network} on {} gave {} networks",
                self.name,
                nets.len()
            );
        }
        Ok(nets.remove(0))
    }

    /// Names of every network this host lists (`network ls --format json`), sorted.
    pub fn network_names(&self) -> Result<Vec<String>> {
        vxnet_json::network_names(&self.probe(&["network", "ls", "--format", "json"])?)
    }

    /// Waits (bounded) until this host lists every network of `names`.
    pub fn wait_networks(&self, names: &[&str], timeout: Duration) -> Result<()> {
        wait_for(
            &format!("{} to list networks {names:?}", self.name),
            timeout,
            Duration::from_millis(100),
            || {
                let have = self.network_names()?;
                Ok(names
                    .iter()
                    .all(|n| have.iter().any(|h| h == n))
                    .then_some(()))
            },
        )
    }

    /// Waits (bounded) until `network inspect NETWORK` on this host lists exactly the endpoints
    /// named `names` (lab container namespace names); returns that inspect.
    pub fn wait_endpoints(
        &self,
        network: &str,
        names: &[&str],
        timeout: Duration,
    ) -> Result<NetworkInfo> {
        let mut want: Vec<&str> = names.to_vec();
        want.sort_unstable();
        wait_for(
            &format!("{} to list endpoints {want:?} in {network}", self.name),
            timeout,
            Duration::from_millis(100),
            || {
                let net = self.inspect_network(network)?;
                let have: Vec<&str> = net.endpoints.iter().map(|e| e.name.as_str()).collect();
                if have == want {
                    Ok(Some(net.clone()))
                } else {
                    bail!("lists {have:?}")
                }
            },
        )
    }

    /// Waits (bounded) until this host's FDB of `network` holds (`present`) or no longer
    /// holds every MAC of `macs`.
    pub fn wait_fdb(
        &self,
        network: &str,
        macs: &[impl AsRef<str> + std::fmt::Debug],
        present: bool,
        timeout: Duration,
    ) -> Result<()> {
        wait_for(
            &format!(
                "{}'s fdb of {network} to {} {macs:?}",
                self.name,
                if present { "hold" } else { "drop" }
            ),
            timeout,
            Duration::from_millis(50),
            || {
                let fdb = self.fdb(network)?;
                let ok = macs
                    .iter()
                    .map(|m| m.as_ref().to_ascii_lowercase())
                    .all(|m| fdb.iter().any(|e| e.mac == m) == present);
                if ok {
                    Ok(Some(()))
                } else {
                    bail!("fdb is {fdb:?}")
                }
            },
        )
    }
}

impl Lab {
    /// Stops host `host`'s daemon with `signal` (see [`Host::kill_daemon`]).
    pub fn kill_daemon(&self, host: usize, signal: i32) -> Result<Option<ExitStatus>> {
        self.host(host).kill_daemon(signal)
    }

    /// (Re)starts host `host`'s daemon on its data dir (see [`Host::start_daemon`]).
    pub fn start_daemon(&self, host: usize) -> Result<()> {
        self.host(host).start_daemon()
    }

    /// (Re)starts the daemons of `hosts` together: all are spawned first, then each is waited
    /// for (bounded). A restarted cluster needs a quorum up before any member can answer, so
    /// starting them one by one with [`Lab::start_daemon`] could wait on the first forever.
    pub fn start_daemons(&self, hosts: &[usize]) -> Result<()> {
        for &h in hosts {
            self.host(h).spawn_daemon()?;
        }
        for &h in hosts {
            self.host(h).wait_ready(DAEMON_READY_TIMEOUT)?;
        }
        Ok(())
    }

    /// Creates overlay `name` (VNI `vni`, `subnet`) on each of the vxnet hosts `hosts`, each
    /// with every other listed host as a static `--peer` (separate one-host clusters, no
    /// `cluster join`). `extra` arguments go before the name (e.g. `["--mtu", "1400"]`).
    pub fn vxnet_network(
        &self,
        name: &str,
        vni: u32,
        subnet: &str,
        hosts: &[usize],
        extra: &[&str],
    ) -> Result<()> {
        let vni = vni.to_string();
        for &h in hosts {
            let peers: Vec<String> = hosts
                .iter()
                .filter(|&&p| p != h)
                .map(|&p| self.host(p).addr().to_string())
                .collect();
            let mut args = vec!["network", "create", "--subnet", subnet, "--vni", &vni];
            for p in &peers {
                args.extend(["--peer", p.as_str()]);
            }
            args.extend(extra);
            args.push(name);
            self.host(h).vxnet_checked(&args)?;
        }
        Ok(())
    }

    /// The tails of every daemon log, for failure messages.
    pub fn daemon_logs(&self, lines: usize) -> String {
        let mut s = String::new();
        for h in self.hosts() {
            if h.kind() == HostKind::Vxnet {
                s.push_str(&format!(
                    "---- {} ({}) daemon log, last {lines} lines: {} ----\n{}\n",
                    h.name,
                    h.addr,
                    h.log.display(),
                    h.log_tail(lines)
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests;
