//! The Raft group the daemons form: the node ([`node`]), its durable log ([`storage`]), and the
//! TCP transport between hosts ([`transport`]) with its token challenge ([`auth`]).

pub mod auth;
mod log;
pub mod node;
pub mod storage;
pub mod transport;
