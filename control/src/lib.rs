//! The vxnet control plane: the daemon, its state and API, and the command line client.

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod program;
pub mod render;
pub mod state;
pub mod sys;

/// IPv4 prefixes and their allocation, part of the state machine; the command line parses
/// `--subnet` and `--ip-range` with it too.
pub use state::ipam;
