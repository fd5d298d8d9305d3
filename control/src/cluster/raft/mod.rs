//! The Raft group the daemons form: the node task ([`node`]) and the daemon's handle to it
//! ([`handle`]), the membership policy ([`membership`]), the snapshot codec ([`snapshot`]), the
//! durable log ([`storage`]), and the mutual-TLS transport between hosts ([`transport`]) with
//! the cluster's certificates ([`tls`]) and join token ([`token`]).

pub mod handle;
mod log;
pub mod membership;
pub mod node;
pub mod snapshot;
pub mod storage;
pub mod tls;
pub mod token;
pub mod transport;

pub use handle::{ClusterView, RaftHandle};
pub use node::{NodeConfig, NodeError, NodeEvent, RaftNode, COMPACT_EVERY};
