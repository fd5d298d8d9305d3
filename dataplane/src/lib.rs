//! The userspace VXLAN dataplane of vxnet.

pub mod netns;
pub mod sandbox;
