//! The command line (README, "The command line"): what `vxnet` accepts ([`args`]), how a
//! command becomes one API request to the local daemon ([`client`]), and what it prints
//! ([`render`]); `version`, `completions` and `man` need no daemon ([`generate`]), nor does
//! `cni install` ([`crate::cni::install`]). Every
//! failure becomes one line `vxnet: …` on stderr and an exit code: 2 for a usage error, 1
//! otherwise.

pub mod args;
pub mod client;
pub mod generate;
pub mod render;

pub use args::{Cli, ClusterCommand, CniCommand, Command, DaemonArgs, Format, NetworkCommand};
