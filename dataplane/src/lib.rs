//! The userspace VXLAN dataplane of vxnet, in four rooms:
//!
//! - [`wire`]: typed, zero-copy views of every format on the path (VXLAN, Ethernet, ARP, IPv4,
//!   IPv6, TCP, UDP, `virtio_net_hdr`, the Internet checksum), checked on every input;
//! - [`core`]: the sans-IO forwarding core — the decision for each frame and datagram, the FDB,
//!   the counters, the split and merge of TAP superframes;
//! - [`engine`]: the threads that carry decisions out on TAP devices and UDP sockets;
//! - [`host`]: the door the control plane uses — [`host::Host`] owns the engine, the
//!   per-network sandboxes (`br0` + `vxtap0` in a pinned namespace) and the veths that join
//!   containers to them, and takes a [`host::HostProgram`].
//!
//! The control plane uses [`host`] alone; the other modules are public for the benchmarks and
//! the tests.

pub mod core;
pub mod engine;
pub mod host;
pub mod kernel;
pub mod wire;
