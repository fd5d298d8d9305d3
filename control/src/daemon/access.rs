//! Who may use the API socket (README, "The command line"): root, and the members of the group
//! `vxnet daemon --api-group GROUP` names. No IO here: [`socket`](super::socket) reads the
//! peer's credentials from the kernel and asks.
//!
//! Rules:
//! - The socket file is the first gate: mode 0600 owned by root, or 0660 with group GROUP.
//!   Every accepted connection is checked again by the credentials the kernel gives for the
//!   peer (`SO_PEERCRED`, `SO_PEERGROUPS`), so a socket file whose mode someone loosened, or
//!   one reached through another path, lets in no one else.
//! - A peer is admitted when its uid is 0, or GROUP is its primary or one of its
//!   supplementary groups at the time it connected.
//! - A refused peer gets one error answer ([`ApiAccess::refusal`]), and the daemon logs at
//!   most one line per [`REFUSAL_LOG_EVERY`] about refusals ([`RefusalLog`]): a local user
//!   hammering the socket cannot flood the log.

use std::time::{Duration, Instant};

/// At most one log line per this long about refused connections.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The group besides root that may use the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGroup {
    pub name: String,
    pub gid: u32,
}

/// A connected peer, as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peer {
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// `None` when the peer is in a pid namespace this daemon cannot see into.
    pub pid: Option<i32>,
}

/// The API's access rule: root, and `group` if given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiAccess {
    pub group: Option<ApiGroup>,
}

impl ApiAccess {
    /// Whether `peer` may use the API.
    pub fn admits(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || self
                .group
                .as_ref()
                .is_some_and(|g| peer.gid == g.gid || peer.groups.contains(&g.gid))
    }

    /// The answer a refused peer gets: what the rule is and what to do.
    pub fn refusal(&self) -> String {
        match &self.group {
            Some(g) => format!(
                "permission denied: only root and members of group {} may use the vxnet API; \
                 run as root or join that group",
                g.name
            ),
            None => "permission denied: only root may use the vxnet API; run as root, or start \
                     the daemon with --api-group GROUP and join that group"
                .to_string(),
        }
    }

    /// The socket file's mode: 0660 for a group to connect, else 0600.
    pub fn socket_mode(&self) -> u32 {
        if self.group.is_some() {
            0o660
        } else {
            0o600
        }
    }
}

/// Rate limit of the refusal log lines: at most one per `every`.
#[derive(Debug)]
pub struct RefusalLog {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RefusalLog {
    pub fn new(every: Duration) -> RefusalLog {
        RefusalLog {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Notes a refusal at `now`. `Some(n)` when a line is due, `n` refusals not logged since
    /// the last line; `None` when this one is only counted.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if !due {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            groups: groups.to_vec(),
            pid: Some(42),
        }
    }

    #[test]
    fn root_always_and_the_group_only_when_given() {
        let root_only = ApiAccess::default();
        assert!(root_only.admits(&peer(0, 0, &[])));
        assert!(root_only.admits(&peer(0, 1000, &[])));
        assert!(!root_only.admits(&peer(1000, 0, &[0])), "gid 0 is not root");
        assert!(!root_only.admits(&peer(65534, 65534, &[])));
        assert_eq!(root_only.socket_mode(), 0o600);

        let ops = ApiAccess {
            group: Some(ApiGroup {
                name: "vxnet".into(),
                gid: 990,
            }),
        };
        assert!(ops.admits(&peer(0, 0, &[])));
        assert!(ops.admits(&peer(1000, 990, &[])), "primary group");
        assert!(ops.admits(&peer(1000, 1000, &[27, 990])), "supplementary");
        assert!(!ops.admits(&peer(1000, 1000, &[27])));
        assert_eq!(ops.socket_mode(), 0o660);
        assert!(ops.refusal().contains("group vxnet"), "{}", ops.refusal());
    }

    #[test]
    fn refusals_are_logged_at_most_once_per_period() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(Duration::from_secs(10));
        assert_eq!(log.note(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(log.note(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(log.note(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(log.note(t0 + Duration::from_secs(11)), None);
        assert_eq!(log.note(t0 + Duration::from_secs(25)), Some(1));
    }
}
