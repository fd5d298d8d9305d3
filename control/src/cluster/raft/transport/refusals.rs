//! What the transport refuses: the reasons, counted ([`Reason`], [`ReasonCounters`]), and
//! rate-limited logging of refused connections: one line per source address per minute, with
//! how many more were refused since the last line ([`RefusalLog`]). Sans-IO: time is an
//! argument.
//!
//! Rules: every refusal counts under exactly one [`Reason`]; the counters only grow. The log's
//! table holds at most [`MAX_SOURCES`] addresses; when it is full, entries whose minute is over
//! are forgotten, and if none is, a new source is counted but not logged (a flood from many
//! addresses cannot grow memory or the log without bound).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why the transport refused a connection, closed one or dropped a frame: the `reason` label
/// of `vxnet_cluster_refusals_total` (README, "Metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// On accept: the transport serves as many connections as it may.
    ConnectionLimit,
    /// On accept: the source address has as many connections open as it may.
    SourceLimit,
    /// No TLS handshake and `Hello` within the handshake timeout.
    HandshakeTimeout,
    /// The TLS handshake failed for another reason than a certificate: not TLS, broken off.
    TlsHandshake,
    /// The client's certificate was refused (not of this cluster's CA).
    BadCertificate,
    /// No `Hello`: closed or failed before it, or not a `Hello`.
    BadHello,
    /// The `Hello` claims a raft id the certificate does not name (or any without one).
    WrongId,
    /// A revoked raft id, at the `Hello` or at a later frame.
    Revoked,
    /// A frame over the cap of its kind.
    FrameTooBig,
    /// A frame of an unknown or unexpected kind, or whose body does not decode as its kind.
    BadFrame,
    /// A host without a certificate sent something other than a join request.
    NotAMember,
    /// A raft message in another member's name (dropped; the connection stays).
    WrongSender,
    /// A raft message for another host.
    WrongRecipient,
    /// More requests waiting for answers than one connection may have.
    TooManyRequests,
    /// No frame for the idle timeout.
    IdleTimeout,
    /// The connection failed after the `Hello` (a record that does not decrypt, a reset).
    ConnectionError,
}

impl Reason {
    pub const ALL: [Reason; 16] = [
        Reason::ConnectionLimit,
        Reason::SourceLimit,
        Reason::HandshakeTimeout,
        Reason::TlsHandshake,
        Reason::BadCertificate,
        Reason::BadHello,
        Reason::WrongId,
        Reason::Revoked,
        Reason::FrameTooBig,
        Reason::BadFrame,
        Reason::NotAMember,
        Reason::WrongSender,
        Reason::WrongRecipient,
        Reason::TooManyRequests,
        Reason::IdleTimeout,
        Reason::ConnectionError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConnectionLimit => "connection_limit",
            Reason::SourceLimit => "source_limit",
            Reason::HandshakeTimeout => "handshake_timeout",
            Reason::TlsHandshake => "tls_handshake",
            Reason::BadCertificate => "bad_certificate",
            Reason::BadHello => "bad_hello",
            Reason::WrongId => "wrong_id",
            Reason::Revoked => "revoked",
            Reason::FrameTooBig => "frame_too_big",
            Reason::BadFrame => "bad_frame",
            Reason::NotAMember => "not_a_member",
            Reason::WrongSender => "wrong_sender",
            Reason::WrongRecipient => "wrong_recipient",
            Reason::TooManyRequests => "too_many_requests",
            Reason::IdleTimeout => "idle_timeout",
            Reason::ConnectionError => "connection_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Refusals so far, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCounts([u64; Reason::ALL.len()]);

impl RefusalCounts {
    pub fn get(&self, reason: Reason) -> u64 {
        self.0[reason.index()]
    }

    /// Every reason with its count, zeros included, in [`Reason::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL.into_iter().map(|r| (r, self.get(r)))
    }
}

/// The live counters behind [`RefusalCounts`].
#[derive(Debug, Default)]
pub struct ReasonCounters([AtomicU64; Reason::ALL.len()]);

impl ReasonCounters {
    pub fn add(&self, reason: Reason) {
        self.0[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> RefusalCounts {
        RefusalCounts(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

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
    fn reasons_are_listed_once_in_order() {
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        let counters = ReasonCounters::default();
        counters.add(Reason::FrameTooBig);
        counters.add(Reason::FrameTooBig);
        let counts = counters.counts();
        assert_eq!(counts.get(Reason::FrameTooBig), 2);
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }

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
