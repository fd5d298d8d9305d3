//! The sans-IO core of the dataplane: bytes and `now` in, decisions out. No fds, no threads,
//! no clock; the engine ([`crate::engine`]) carries the decisions out.
//!
//! - [`forward`]: the forwarding decision for a frame from a TAP and a datagram from the wire,
//!   and the one VNI → network table;
//! - [`fdb`]: a network's forwarding database and ARP table — the control plane's immutable
//!   table, the receive path's learned one;
//! - [`counters`]: traffic and drop counters (`vxnet stats`); every drop the core decides is
//!   counted here;
//! - [`offload`]: TAP offloads — splitting a superframe read from the TAP into wire frames,
//!   merging received TCP segments into superframes for the TAP;
//! - [`seal`]: the AEAD of encrypted networks — keys per host pair and direction, counters,
//!   replay windows.

pub mod counters;
pub mod fdb;
pub mod forward;
pub mod offload;
pub mod seal;
