//! A failed CNI command as the runtime reads it: the spec's error result
//! (`{"cniVersion", "code", "msg", "details"}` on stdout, exit status 1), with the codes the
//! module docs list. What the daemon answered is mapped here, once, by its [`ErrorCode`].

use std::fmt;

use vxnet_proto::ErrorCode;

/// The CNI error codes vxnet returns: the spec's well-known ones (0–99) and its own (100+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the configuration's `cniVersion` is not one vxnet speaks, or too old for the command.
    IncompatibleVersion,
    /// 2: a configuration key vxnet does not do (`ipam`: vxnet allocates addresses itself).
    UnsupportedField,
    /// 4: a `CNI_*` variable is missing or malformed.
    InvalidEnvironment,
    /// 5: stdin could not be read.
    Io,
    /// 6: stdin is not the JSON the command needs.
    Decode,
    /// 7: the configuration is wrong: no `name` or `network`, an unknown vxnet network, a
    /// malformed address or port mapping, a missing `prevResult` for CHECK.
    InvalidConfig,
    /// 11: the daemon cannot take the change now (down, no leader, timed out): retry.
    TryAgainLater,
    /// 50 (STATUS): cannot serve ADD (no quorum, the network missing).
    NotAvailable,
    /// 51 (STATUS): the daemon does not answer, so this host forwards nothing either.
    NotAvailableDegraded,
    /// 100: the attachment clashes with what exists (already attached, an address, name,
    /// interface or host port in use).
    Conflict,
    /// 101: no free address left in the network.
    Exhausted,
    /// 102: well formed, but the cluster's state does not allow it (an address outside the
    /// subnet, ports on an `--internal` network).
    Refused,
    /// 103: this host could not do it (namespaces, interfaces, files).
    HostFailed,
    /// 104 (CHECK): the attachment is missing or differs from `prevResult`.
    CheckFailed,
    /// 999: a bug, or a daemon answer that makes no sense.
    Internal,
}

impl Code {
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::InvalidEnvironment => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::NotAvailableDegraded => 51,
            Code::Conflict => 100,
            Code::Exhausted => 101,
            Code::Refused => 102,
            Code::HostFailed => 103,
            Code::CheckFailed => 104,
            Code::Internal => 999,
        }
    }

    /// The CNI code for a request the daemon answered with `code`. A missing network or
    /// namespace is a configuration the runtime gave; the rest says what happened.
    pub fn for_daemon(code: ErrorCode) -> Code {
        match code {
            ErrorCode::Usage | ErrorCode::NotFound => Code::InvalidConfig,
            ErrorCode::Conflict => Code::Conflict,
            ErrorCode::Exhausted => Code::Exhausted,
            ErrorCode::Unavailable => Code::TryAgainLater,
            ErrorCode::Refused => Code::Refused,
            ErrorCode::Failed => Code::HostFailed,
            ErrorCode::None | ErrorCode::Internal => Code::Internal,
        }
    }
}

/// One failed command: its code, a short `msg` and the longer `details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.msg, self.code.number())?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error result, in the JSON the spec gives, for a configuration of `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code.number(),
            "msg": self.msg,
            "details": self.details,
        })
    }
}

/// Why a request to the daemon failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaemonError {
    /// Nothing answered: no socket, a refused connection, or no answer in time.
    #[error("{0}")]
    Unreachable(String),
    /// The daemon said no: its one sentence and its code.
    #[error("{message}")]
    Answered { message: String, code: ErrorCode },
    /// An answer that is not a `Response`, or lacks what the request asked for.
    #[error("{0}")]
    Malformed(String),
}

impl DaemonError {
    /// The CNI error for this failure of what the plugin was doing (`what`: "attach
    /// container c1 to network shop").
    pub fn into_cni(self, what: &str) -> CniError {
        let msg = format!("cannot {what}");
        match self {
            DaemonError::Unreachable(why) => CniError::new(Code::TryAgainLater, msg, why),
            DaemonError::Answered { message, code } => {
                CniError::new(Code::for_daemon(code), msg, message)
            }
            DaemonError::Malformed(why) => CniError::new(Code::Internal, msg, why),
        }
    }

    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            DaemonError::Answered { code, .. } => Some(*code),
            _ => None,
        }
    }
}
