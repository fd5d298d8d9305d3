//! The userspace VXLAN dataplane of vxnet.
