//! The vxnet control plane, by role:
//!
//! - [`state`]: the replicated state machine — hosts, networks, endpoints, IP and VNI
//!   allocation — deterministic, no IO;
//! - [`cluster`]: the Raft group that replicates it (node, storage, transport, membership);
//! - [`program`]: the pure step from the state to what this host's dataplane must run;
//! - [`daemon`]: the API server and the control thread that proposes changes and programs
//!   the dataplane through its one door (`vxnet_dataplane::host`);
//! - [`cli`]: the command line, a client of the daemon's API ([`api`]).

pub mod api;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod daemon;
pub mod docker;
pub mod program;
pub mod state;
pub mod sys;
