//! For the crate's tests: a cluster CA that issues member identities at will, and a peer that
//! holds a member's certificate and says whatever it likes.

use std::net::SocketAddr;
use std::sync::Arc;

use ::raft::eraftpb::{Message as RaftMessage, MessageType};
use tokio::sync::mpsc;

use super::super::tls::{generate_host_key, ClusterCa, ClusterTls};
use super::{Credentials, Transport};

/// A cluster CA for tests.
pub(crate) struct TestCa(pub ClusterCa);

impl TestCa {
    pub fn new() -> TestCa {
        TestCa(ClusterCa::generate().expect("a CA"))
    }

    /// The CA of a data dir.
    pub fn of(ca: &ClusterCa) -> TestCa {
        TestCa(ClusterCa::from_pem(ca.cert_pem(), &ca.key_pem()).expect("the CA again"))
    }

    /// An identity of raft id `id` in this cluster.
    pub fn member(&self, id: u64) -> Arc<ClusterTls> {
        let ca = ClusterCa::from_pem(self.0.cert_pem(), &self.0.key_pem()).expect("the CA again");
        let (key_pem, public_key) = generate_host_key().expect("a key");
        let cert = self.0.issue(id, &public_key).expect("a certificate");
        Arc::new(ClusterTls::new(id, ca, cert, &key_pem).expect("an identity"))
    }

    pub fn creds(&self, id: u64) -> Credentials {
        Credentials::Member(self.member(id))
    }

    /// A host that holds a token of this cluster but no certificate.
    pub fn joiner(&self) -> Credentials {
        Credentials::Joiner {
            ca_fingerprint: self.0.fingerprint(),
        }
    }
}

/// Sends the node `to` at `target`, from a transport of its own with a certificate of
/// `ca` for raft id `from`, a heartbeat no sane leader sends: term 1000, commit index
/// `u64::MAX / 2` (raft-rs panics on stepping it). The transport is returned: it must live
/// until the message is delivered.
pub(crate) fn send_poison_heartbeat(
    runtime: &tokio::runtime::Runtime,
    from: u64,
    to: u64,
    ca: &TestCa,
    target: SocketAddr,
) -> Transport {
    let (events, _) = mpsc::channel(1024);
    let impostor = runtime
        .block_on(Transport::start(
            "127.0.0.1:0".parse().expect("addr"),
            ca.member(from),
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
