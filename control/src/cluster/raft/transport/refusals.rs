//! Rate-limited logging of refused connections: one line per source address per minute, with
//! how many more were refused since the last line. Sans-IO: time is an argument.
//!
//! Rules: the table holds at most [`MAX_SOURCES`] addresses; when it is full, entries whose
//! minute is over are forgotten, and if none is, a new source is counted but not logged (a
//! flood from many addresses cannot grow memory or the log without bound).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long after a line about a source the next one may come.
pub const LOG_EVERY: Duration = Duration::from_secs(60);
/// Sources remembered at once.
pub const MAX_SOURCES: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged_at: Instant,
    /// Refusals since the line at `logged_at`.
    since: u64,
}

#[derive(Debug, Default)]
pub struct RefusalLog {
    sources: HashMap<IpAddr, Entry>,
}

impl RefusalLog {
    /// Notes a refusal from `source`. Returns `Some(n)` when a line is due now, `n` being how
    /// many refusals from that source went unlogged before this one.
    pub fn note(&mut self, source: IpAddr, now: Instant) -> Option<u64> {
        if let Some(entry) = self.sources.get_mut(&source) {
            if now.duration_since(entry.logged_at) < LOG_EVERY {
                entry.since += 1;
                return None;
            }
            let unlogged = entry.since;
            *entry = Entry {
                logged_at: now,
                since: 0,
            };
            return Some(unlogged);
        }
        if self.sources.len() >= MAX_SOURCES {
            self.sources
                .retain(|_, e| now.duration_since(e.logged_at) < LOG_EVERY);
            if self.sources.len() >= MAX_SOURCES {
                return None;
            }
        }
        self.sources.insert(
            source,
            Entry {
                logged_at: now,
                since: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_source_per_minute() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(log.note(a, t0), Some(0));
        for i in 1..=100 {
            assert_eq!(log.note(a, t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(
            log.note(b, t0),
            Some(0),
            "another source has its own minute"
        );
        assert_eq!(log.note(a, t0 + LOG_EVERY), Some(100));
        assert_eq!(log.note(a, t0 + LOG_EVERY), None);
    }

    #[test]
    fn bounded_table() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            assert!(log.note(IpAddr::from(i.to_be_bytes()), t0).is_some());
        }
        let late: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(log.note(late, t0), None, "table full: counted, not logged");
        assert_eq!(log.sources.len(), MAX_SOURCES);
        assert_eq!(
            log.note(late, t0 + LOG_EVERY),
            Some(0),
            "old entries make room"
        );
        assert_eq!(log.sources.len(), 1);
    }
}
