//! The one error type of the host side of the dataplane (sandboxes, namespaces, veths, the
//! engine's sockets): what went wrong, said as one sentence a user can act on. Errors a
//! user can cause (a missing namespace, a taken interface name) name the thing and the fix.

use std::path::PathBuf;

use super::sandbox::BRIDGE_NAME;

/// Everything that goes wrong in the sandbox plumbing. Each message reads as one sentence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error(
        "network namespace \"{name}\" not found (looked in {}); create it with `ip netns add {name}`",
        path.display()
    )]
    NamedNetnsNotFound { name: String, path: PathBuf },
    #[error("no process with pid {pid} (looked for {}); is the container running?", path.display())]
    ProcessNotFound { pid: u32, path: PathBuf },
    #[error("network namespace file {} does not exist", path.display())]
    NetnsFileNotFound { path: PathBuf },
    #[error(
        "{} is not a network namespace; give a name made by `ip netns add`, pid:PID, \
         /proc/PID/ns/net or a bind mount of one",
        path.display()
    )]
    NotANetns { path: PathBuf },
    #[error("invalid target \"{target}\": {reason}")]
    InvalidTarget {
        target: String,
        reason: &'static str,
    },
    #[error("invalid interface name \"{name}\": {reason}")]
    InvalidIfname { name: String, reason: &'static str },
    #[error("invalid {what}: {reason}")]
    InvalidSpec { what: &'static str, reason: String },
    #[error(
        "interface \"{ifname}\" already exists in network namespace {}; choose another --ifname",
        target.display()
    )]
    IfnameTaken { ifname: String, target: PathBuf },
    #[error(
        "the sandbox already has an interface \"{name}\"; is that endpoint connected already?"
    )]
    VethExists { name: String },
    #[error("no free interface name eth0..eth999 in network namespace {}", target.display())]
    NoFreeIfname { target: PathBuf },
    #[error(
        "the sandbox {} has no bridge {BRIDGE_NAME}; restart the daemon to rebuild it",
        netns.display()
    )]
    BridgeMissing { netns: PathBuf },
    #[error("could not {op}: {source}")]
    Os {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not {op}: {}", describe_netlink(source))]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("`nft` not found: install nftables (Debian: apt-get install nftables); the sandboxes' guard, egress and published ports are made with it")]
    NftMissing,
    #[error("nftables refused vxnet's rules: {message}")]
    Nft { message: String },
    #[error(
        "all {} transit links of this host are taken; remove a network",
        super::egress::TRANSIT_SLOTS
    )]
    NoTransitSlot,
    #[error("network {network} has no sandbox on this host; this is a bug in vxnet")]
    NotRunning { network: String },
    #[error("a namespace worker thread panicked while trying to {op}; this is a bug in vxnet")]
    WorkerPanicked { op: String },
}

impl HostError {
    pub(crate) fn os(op: impl Into<String>, source: std::io::Error) -> Self {
        HostError::Os {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        HostError::Netlink {
            op: op.into(),
            source,
        }
    }
}

/// rtnetlink's own Display wraps the errno in boilerplate; the errno's text is the sentence.
fn describe_netlink(e: &rtnetlink::Error) -> String {
    match netlink_errno(e) {
        Some(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
        None => e.to_string(),
    }
}

/// The errno inside a netlink error reply, if that is what `e` is.
pub(crate) fn netlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}
