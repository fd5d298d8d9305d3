//! What can go wrong in the cluster: each case with the message the user reads (the daemon
//! sends `to_string()` to the CLI) and the CLI's exit code ([`ClusterError::exit_code`]).
//!
//! Two cases a caller must tell apart from the rest:
//! - [`ClusterError::Timeout`] ([`ClusterError::is_timeout`]): the change was proposed but not
//!   seen applied in time. It may still commit later.
//! - [`ClusterError::NodeDown`] ([`ClusterError::is_fatal`]): a join or leave replaced this
//!   host's Raft storage and the node did not start again. The [`Cluster`](super::Cluster) has
//!   no node from then on and must not be used; the caller exits, so that a supervisor
//!   restarts the daemon on the same data dir, which then comes up as a member of the cluster
//!   it joined (or as a cluster of one after a leave).
//!
//! A join or leave the leader does not do comes back as a [`Rejection`]: a
//! [`ClusterErrorCode`] the requester acts on (retry, redirect, give up) and the leader's
//! words for it, which only people read.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vxnet_proto::{ClusterErrorCode, ErrorCode};

use super::raft::node::NodeError;
use super::raft::storage::StorageError;
use super::raft::tls::TlsError;
use super::raft::transport::{TokenError, TransportError};
use crate::state::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The state machine refused the command; its exit code is the refusal's.
    #[error(transparent)]
    Refused(#[from] Refusal),

    // ------------------------------------------------------------------ the Raft group
    #[error("the cluster has no leader right now (is a majority of its voting hosts up and reachable?); retry in a few seconds")]
    NoLeader,
    /// The caller's whole timeout, not what was left of it when it ran out.
    #[error("the cluster did not confirm the change within {0:?}; it may still commit (is a majority of its voting hosts up and reachable?); check `vxnet cluster members`")]
    Timeout(Duration),
    #[error("the raft node has stopped; see the daemon's log")]
    Stopped,
    #[error("the raft node is busy ({0} requests are waiting); retry shortly")]
    NodeBusy(usize),
    #[error("replaying the Raft log took longer than {0:?}")]
    ReplayTimeout(Duration),
    #[error("cannot open the Raft log in {}: {source}", data_dir.display())]
    OpenLog {
        data_dir: PathBuf,
        source: StorageError,
    },
    #[error("cannot listen for the cluster on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: TransportError,
    },
    /// The node could not start (its storage, raft-rs, a snapshot).
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Fatal: see the module docs.
    #[error("the raft node does not start after the membership change: {source}")]
    NodeDown { source: Box<ClusterError> },

    // --------------------------------------------------------- bad arguments (exit code 2)
    #[error(transparent)]
    BadToken(TokenError),
    #[error("{0:?} is not ADDR or ADDR:PORT (e.g. 192.0.2.10 or 192.0.2.10:7946)")]
    BadAddress(String),
    #[error("the change is {len} bytes encoded, more than the {max} bytes one replicated change may have")]
    TooLarge { len: usize, max: usize },

    // ------------------------------------------------------------------- join and leave
    #[error("this host is already part of a cluster; run `vxnet cluster leave` first")]
    AlreadyInCluster,
    #[error("this host already has networks; remove them first")]
    HasNetworks,
    #[error("this host is not in a cluster with other hosts; there is nothing to leave")]
    NothingToLeave,
    #[error("cannot join through {target}: {source}")]
    JoinUnreachable {
        target: SocketAddr,
        source: TransportError,
    },
    #[error(
        "{0} answered the join with something else; is it a vxnet daemon of the same version?"
    )]
    NotAJoinAnswer(SocketAddr),
    #[error("the leader answered the leave with something else")]
    NotALeaveAnswer,
    #[error("the cluster kept redirecting the join; retry")]
    TooManyRedirects,
    #[error("the cluster refused to add this host: {0}")]
    JoinRefused(Rejection),
    #[error("the cluster refused to let this host leave: {0}")]
    LeaveRefused(Rejection),
    #[error("the cluster refused to remove {host}: {rejection}")]
    RemoveRefused { host: String, rejection: Rejection },
    #[error(
        "no member of this cluster is called {0:?} or has that ID; see `vxnet cluster members`"
    )]
    NoSuchMember(String),
    #[error("{0:?} names several members; give the ID of the one to remove (`vxnet cluster members --format json`)")]
    AmbiguousMember(String),
    #[error("{0} is this host; to take it out of the cluster, run `vxnet cluster leave`")]
    RemoveSelf(String),
    #[error("{0} is up and reachable; run `vxnet cluster leave` on it, or add --force to evict it anyway (its endpoints go with it)")]
    MemberReachable(String),

    // ------------------------------------------------------------- files in the data dir
    #[error("cannot {op} {}: {source}", path.display())]
    File {
        op: FileOp,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} is corrupt; restore it or remove the data dir", .0.display())]
    CorruptRaftId(PathBuf),
    #[error("the cluster certificates in {} are unusable ({source}); restore them, or remove them and start with --force-new-cluster (the other hosts must then join again)", data_dir.display())]
    Identity { data_dir: PathBuf, source: TlsError },
    #[error("the join answer carries no usable certificate ({0}); is the member a vxnet daemon of the same version?")]
    BadJoinCredentials(TlsError),
    #[error("cannot read random bytes: {0}")]
    Random(io::Error),
}

impl ClusterError {
    /// What kind of failure this is, for the API's clients; the CLI's exit code follows from
    /// it (2 for a bad argument, the refusal's own for a refused command, 1 otherwise).
    pub fn code(&self) -> ErrorCode {
        use ClusterError::*;
        match self {
            Refused(r) => r.code(),
            BadToken(_) | BadAddress(_) | TooLarge { .. } => ErrorCode::Usage,
            NoLeader
            | Timeout(_)
            | Stopped
            | NodeBusy(_)
            | TooManyRedirects
            | JoinUnreachable { .. } => ErrorCode::Unavailable,
            JoinRefused(r) | LeaveRefused(r) | RemoveRefused { rejection: r, .. } => match r.code {
                ClusterErrorCode::NotLeader | ClusterErrorCode::Busy => ErrorCode::Unavailable,
                _ => ErrorCode::Refused,
            },
            AlreadyInCluster | HasNetworks | MemberReachable(_) => ErrorCode::Conflict,
            NothingToLeave | RemoveSelf(_) => ErrorCode::Refused,
            NoSuchMember(_) => ErrorCode::NotFound,
            AmbiguousMember(_) => ErrorCode::Usage,
            CorruptRaftId(_) | Identity { .. } => ErrorCode::Internal,
            ReplayTimeout(_)
            | OpenLog { .. }
            | Listen { .. }
            | Node(_)
            | NodeDown { .. }
            | NotAJoinAnswer(_)
            | NotALeaveAnswer
            | File { .. }
            | BadJoinCredentials(_)
            | Random(_) => ErrorCode::Failed,
        }
    }

    /// The CLI's exit code (see [`ClusterError::code`]).
    pub fn exit_code(&self) -> u8 {
        self.code().exit_code()
    }

    /// Whether the change may still commit: see the module docs.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClusterError::Timeout(_))
    }

    /// Whether the cluster is unusable and the process must exit: see the module docs.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ClusterError::NodeDown { .. })
    }

    /// Reports the caller's whole timeout, not what was left of it.
    pub(crate) fn with_timeout(self, timeout: Duration) -> ClusterError {
        match self {
            ClusterError::Timeout(_) => ClusterError::Timeout(timeout),
            other => other,
        }
    }

    pub(crate) fn file(op: FileOp, path: impl Into<PathBuf>, source: io::Error) -> ClusterError {
        ClusterError::File {
            op,
            path: path.into(),
            source,
        }
    }
}

/// What was being done to a file in the data dir when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    Read,
    Write,
    Remove,
    Rename,
    /// Making it readable by its owner only.
    Restrict,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOp::Read => "read",
            FileOp::Write => "write",
            FileOp::Remove => "remove",
            FileOp::Rename => "rename",
            FileOp::Restrict => "restrict",
        })
    }
}

/// A join or leave the leader did not do, as it answered: the code the requester acts on and
/// the leader's words for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub code: ClusterErrorCode,
    pub reason: String,
}

impl Rejection {
    pub fn not_leader() -> Rejection {
        Rejection {
            code: ClusterErrorCode::NotLeader,
            reason: "not the leader".into(),
        }
    }

    pub fn busy() -> Rejection {
        Rejection {
            code: ClusterErrorCode::Busy,
            reason: "another membership change is in progress; retry in a moment".into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Rejection {
        Rejection {
            code: ClusterErrorCode::BadRequest,
            reason: reason.into(),
        }
    }

    pub fn refused(reason: impl fmt::Display) -> Rejection {
        Rejection {
            code: ClusterErrorCode::Refused,
            reason: reason.to_string(),
        }
    }

    /// Reads the `code` and `error` of a join or leave answer: `None` if it was done. A code
    /// this version does not know, or an error text without a code, counts as refused, so
    /// that nothing is mistaken for success.
    pub fn from_answer(code: i32, error: &str) -> Option<Rejection> {
        match ClusterErrorCode::try_from(code) {
            Ok(ClusterErrorCode::Ok) if error.is_empty() => None,
            Ok(ClusterErrorCode::Ok) | Err(_) => Some(Rejection::refused(error)),
            Ok(code) => Some(Rejection {
                code,
                reason: error.to_owned(),
            }),
        }
    }

    /// The `code` and `error` fields of an answer: `Ok` and empty for a request done.
    pub fn to_answer(outcome: &Result<(), Rejection>) -> (i32, String) {
        match outcome {
            Ok(()) => (ClusterErrorCode::Ok as i32, String::new()),
            Err(r) => (r.code as i32, r.reason.clone()),
        }
    }
}
