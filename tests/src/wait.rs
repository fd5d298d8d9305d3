//! Bounded waiting: "until X, or fail after a deadline".
//!
//! Rules:
//! - Every wait of the lab, the tests and the bench goes through [`wait_for`] or
//!   [`wait_for_strict`]: each looks at its condition first, then again every `interval`, and
//!   gives up once `timeout` has passed, failing with what it waited for and the last thing it
//!   saw. Nothing waits forever.
//! - [`wait_for`] counts an error from the check as "not yet" (a daemon still starting, a query
//!   that ran into its own `--timeout`) and reports the last one on expiry.
//! - [`wait_for_strict`] ends at the first error: for waits where an error means the thing being
//!   measured is broken, not late.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// How often a waiting loop looks again when it has no reason to pick its own pace. Short
/// enough that tests stay quick, long enough that two cores are not burnt on polling.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Ok(Some(v))` or `timeout` passes; an error counts as "not
/// yet". On expiry the error names `what` and the last error (or "still false").
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    poll(what, timeout, interval, OnError::Retry, check)
}

/// [`wait_for`], except that the first error from `check` ends the wait with that error.
pub fn wait_for_strict<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    poll(what, timeout, interval, OnError::Stop, check)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OnError {
    Retry,
    Stop,
}

fn poll<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    on_error: OnError,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => String::from("condition still false"),
            Err(e) if on_error == OnError::Stop => {
                return Err(e.context(format!("while waiting for {what}")))
            }
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests;
