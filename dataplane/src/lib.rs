//! The userspace VXLAN dataplane of vxnet.
//!
//! - [`wire`]: typed views of VXLAN, Ethernet and ARP, checked on every input;
//! - [`fdb`]: a network's forwarding database and ARP table (control vs learned entries);
//! - [`forward`]: the sans-IO forwarding core — bytes and time in, decisions out;
//! - [`offload`]: TAP offloads — `virtio_net_hdr`, splitting superframes, coalescing (GRO);
//! - [`counters`]: traffic and drop counters (`vxnet stats`);
//! - [`engine`]: the drivers that carry decisions out on TAP devices and a UDP socket;
//! - [`netns`], [`sandbox`]: pinned network namespaces, and the per-network sandbox
//!   (`br0` + `vxtap0`) with the veths that join containers to it.

pub mod counters;
pub mod engine;
pub mod fdb;
pub mod forward;
pub mod netns;
pub mod offload;
pub mod sandbox;
pub mod wire;
