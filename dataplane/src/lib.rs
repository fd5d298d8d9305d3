//! The userspace VXLAN dataplane of vxnet.
//!
//! - [`wire`]: typed views of VXLAN, Ethernet and ARP, checked on every input;
//! - [`fdb`]: a network's forwarding database and ARP table (control vs learned entries);
//! - [`forward`]: the sans-IO forwarding core — bytes and time in, decisions out;
//! - [`offload`]: TAP offloads — `virtio_net_hdr`, splitting superframes, coalescing (GRO);
//! - [`counters`]: traffic and drop counters (`vxnet stats`);
//! - [`engine`]: the drivers that carry decisions out on TAP devices and a UDP socket;
//! - [`host`]: the door the control plane uses — [`host::Host`] owns the engine, the
//!   per-network sandboxes (`br0` + `vxtap0` in a pinned namespace) and the veths that join
//!   containers to them, and takes a [`host::HostProgram`].
//!
//! The control plane uses [`host`] alone; the other modules are public for the benchmarks and
//! the tests.

pub mod counters;
pub mod engine;
pub mod fdb;
pub mod forward;
pub mod host;
pub mod offload;
pub mod wire;
