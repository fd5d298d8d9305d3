//! The vxnet control plane: the daemon, its state and API, and the command line client.

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod ipam;
pub mod render;
pub mod state;
pub mod sys;
