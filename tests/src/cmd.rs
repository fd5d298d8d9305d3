//! Running external commands with a deadline.
//!
//! Rules:
//! - Every command the lab runs goes through [`run`], which kills the child when its deadline
//!   passes: a test must fail, never hang, when the daemon or a tool gets stuck.
//! - [`run`] waits for the child and for its stdout/stderr pipes, so commands that daemonize
//!   (and keep the pipes open in a grandchild) must be started with [`Background`] instead.
//! - [`Background`] processes are killed (SIGKILL) and reaped when dropped.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::wait::POLL_INTERVAL;

/// The deadline of a command that has no reason to take long (`ip`, the vxnet CLI).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cmd` to completion with its output captured; kills it if `timeout` passes first.
///
/// A non-zero exit is not an error here (the caller decides); failing to start and running out
/// of time are.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let shown = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    // Drain both pipes on their own threads: a child that fills one pipe while we wait on the
    // other would otherwise deadlock with us.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let status = wait_deadline(&mut child, timeout)?;
    let stdout = stdout.map(join_drain).unwrap_or_default();
    let stderr = stderr.map(join_drain).unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => bail!(
            "`{shown}` did not finish within {timeout:?}; killed it. stdout: {} stderr: {}",
            String::from_utf8_lossy(&stdout).trim(),
            String::from_utf8_lossy(&stderr).trim()
        ),
    }
}

/// Like [`run`], but a non-zero exit is an error carrying stderr; returns stdout as text.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let shown = describe(cmd);
    let out = run(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits for `child` until `timeout`; on expiry kills and reaps it and returns `None`.
///
/// Polls from 100 µs up, doubling to [`POLL_INTERVAL`]: a command of a few milliseconds (the
/// vxnet CLI, which the bench times) is seen to end within a tenth of its own time, not
/// rounded up to the next 20 ms, and a long one costs no more wakeups than before.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(100);
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(POLL_INTERVAL);
    }
}

/// `program arg arg ...`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn join_drain(h: thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    h.join().unwrap_or_default()
}

/// A long-running helper (iperf3 server, tcpdump, ...) whose output goes to a log file.
/// Dropping it kills it.
pub struct Background {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Background {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Background> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating a log file handle")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}: `{}`", describe(cmd)))?;
        Ok(Background {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Process id, if still owned.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for the process to exit on its own; kills it after that.
    /// Returns its exit status, `None` if it had to be killed.
    pub fn wait(mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        match self.child.take() {
            Some(mut c) => wait_deadline(&mut c, timeout),
            None => Ok(None),
        }
    }

    /// Sends `signal` and waits up to `timeout` for exit, then SIGKILLs.
    pub fn stop(mut self, signal: i32, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal_and_reap(&mut child, signal, timeout)
    }

    /// The helper's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `signal` to `child`, waits up to `timeout`, then SIGKILLs; always reaps.
/// Returns the exit status if the process went away by itself after `signal`.
pub fn signal_and_reap(child: &mut Child, signal: i32, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: plain kill(2) on a child we have not reaped yet, so the pid is still ours.
        unsafe {
            libc::kill(pid, signal);
        }
    }
    match wait_deadline(child, timeout) {
        Ok(Some(status)) => Some(status),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

#[cfg(test)]
mod tests;
