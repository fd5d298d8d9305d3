//! For the crate's tests: a peer that holds the token and says whatever it likes.

use std::net::SocketAddr;

use ::raft::eraftpb::{Message as RaftMessage, MessageType};
use tokio::sync::mpsc;

use super::{ClusterToken, Transport};

/// Sends the node `to` at `target`, from a transport of its own under raft id `from`, a
/// heartbeat no sane leader sends: term 1000, commit index `u64::MAX / 2` (raft-rs panics on
/// stepping it). The transport is returned: it must live until the message is delivered.
pub(crate) fn send_poison_heartbeat(
    runtime: &tokio::runtime::Runtime,
    from: u64,
    to: u64,
    token: ClusterToken,
    target: SocketAddr,
) -> Transport {
    let (events, _) = mpsc::channel(1024);
    let impostor = runtime
        .block_on(Transport::start(
            "127.0.0.1:0".parse().expect("addr"),
            from,
            token,
            events,
        ))
        .expect("the impostor's transport");
    impostor.set_peer(to, target);
    let mut poison = RaftMessage::default();
    poison.set_msg_type(MessageType::MsgHeartbeat);
    poison.from = from;
    poison.to = to;
    poison.term = 1000;
    poison.commit = u64::MAX / 2;
    impostor.send(poison);
    impostor
}
