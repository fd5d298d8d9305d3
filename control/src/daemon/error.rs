//! Why a request failed: one typed value per cause, each with the sentence the user reads
//! (`vxnet: <message>`) and the [`ErrorCode`] clients act on. Nothing here is compared as a
//! string.

use vxnet_dataplane::host::HostError;
use vxnet_proto::{ErrorCode, Response};

use crate::cluster::ClusterError;
use crate::state::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The state machine said no (read without proposing).
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The dataplane could not do it (namespaces, veths, the TAP).
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("empty request; is the CLI the same version as the daemon?")]
    EmptyRequest,
    #[error(
        "{target:?} is not connected to network {network}; see `vxnet network inspect {network}`"
    )]
    NotConnected { target: String, network: String },
    #[error("host port {port} is taken on this host ({source}); stop the program that holds it or choose another host port")]
    HostPortBusy {
        port: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read random bytes: {0}")]
    Random(#[source] std::io::Error),
    #[error("cannot record the connect in the data dir ({0}); is the disk full?")]
    Intent(#[source] std::io::Error),
    /// The state machine applied a command as something else than it was: a bug.
    #[error("internal: {0} applied as something else")]
    AppliedAsOther(&'static str),
    #[error("internal: endpoint {0} has a malformed MAC")]
    MalformedMac(String),
    /// Several networks named in one `rm`: what failed, and what was removed all the same.
    #[error("{}", several(errors, removed))]
    Several {
        errors: Vec<RequestError>,
        removed: Vec<String>,
    },
}

fn several(errors: &[RequestError], removed: &[String]) -> String {
    let mut parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if !removed.is_empty() {
        parts.push(format!("removed: {}", removed.join(", ")));
    }
    parts.join("; ")
}

impl RequestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::Refused(r) => r.code(),
            RequestError::Cluster(e) => e.code(),
            RequestError::Host(e) => host_code(e),
            RequestError::EmptyRequest
            | RequestError::AppliedAsOther(_)
            | RequestError::MalformedMac(_) => ErrorCode::Internal,
            RequestError::NotConnected { .. } => ErrorCode::NotFound,
            RequestError::HostPortBusy { .. } => ErrorCode::Conflict,
            RequestError::Random(_) | RequestError::Intent(_) => ErrorCode::Failed,
            // The gravest: a usage error first (exit code 2), else whatever the first says.
            RequestError::Several { errors, .. } => errors
                .iter()
                .map(RequestError::code)
                .find(|c| *c == ErrorCode::Usage)
                .or_else(|| errors.first().map(RequestError::code))
                .unwrap_or(ErrorCode::Internal),
        }
    }

    /// The API's answer for this failure.
    pub fn to_response(&self) -> Response {
        failure(self.to_string(), self.code())
    }
}

/// The answer for a request that failed.
pub fn failure(message: String, code: ErrorCode) -> Response {
    let mut response = Response {
        error: message,
        ..Default::default()
    };
    response.set_code(code);
    response
}

/// What a dataplane error says about the request: a namespace or name the user gave that is
/// wrong or taken, or a failure of this host.
fn host_code(e: &HostError) -> ErrorCode {
    match e {
        HostError::NamedNetnsNotFound { .. }
        | HostError::ProcessNotFound { .. }
        | HostError::NetnsFileNotFound { .. } => ErrorCode::NotFound,
        HostError::NotANetns { .. }
        | HostError::InvalidTarget { .. }
        | HostError::InvalidIfname { .. }
        | HostError::InvalidSpec { .. } => ErrorCode::Refused,
        HostError::IfnameTaken { .. } | HostError::VethExists { .. } => ErrorCode::Conflict,
        HostError::NoFreeIfname { .. } => ErrorCode::Exhausted,
        HostError::NotRunning { .. } | HostError::WorkerPanicked { .. } => ErrorCode::Internal,
        _ => ErrorCode::Failed,
    }
}

#[cfg(test)]
mod tests;
