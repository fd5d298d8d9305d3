//! Decoding of every message that reaches a daemon from outside: the API's `Request` (from
//! the CLI) and `Response` (read by the CLI), the cluster transport's `Envelope` and the Raft
//! message it carries, the `Hello` that opens a cluster connection (inside TLS), the `Proposal` in a log entry, and the
//! `Snapshot` a host restores from (also through `cluster::raft::snapshot::decode`, which
//! rebuilds a state machine from it).
//!
//! Checks, for arbitrary bytes decoded as each message:
//! - decoding never panics;
//! - what decoded encodes, and decodes again to the same value, whose encoding is the same
//!   bytes (prost encodes canonically: the second encoding must equal the first); for
//!   raft-rs's message (rust-protobuf), its known fields come back the same;
//! - a snapshot that `snapshot::decode` accepts encodes (`snapshot::encode`) into data that
//!   decodes to the same machine.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vxnet_control::cluster::raft::snapshot;
use vxnet_proto::{
    envelope, Command, Envelope, Hello, Proposal, Request, Response, Snapshot, State,
};

fuzz_target!(|data: &[u8]| {
    round_trip::<Request>(data);
    round_trip::<Response>(data);
    round_trip::<Hello>(data);
    round_trip::<Proposal>(data);
    round_trip::<Command>(data);
    round_trip::<State>(data);
    round_trip::<Snapshot>(data);
    if let Some(Envelope {
        kind: Some(envelope::Kind::Raft(raft)),
    }) = round_trip::<Envelope>(data)
    {
        raft_message(&raft);
    }
    // The bytes as the Raft payload itself, without an envelope to find first.
    raft_message(data);
    if let Ok(machine) = snapshot::decode(data) {
        let again = snapshot::decode(&snapshot::encode(&machine)).expect("own encoding decodes");
        assert_eq!(again, machine);
    }
});

/// Decodes `data` as `M`; see the module docs for what is checked.
fn round_trip<M: Message + Default + PartialEq>(data: &[u8]) -> Option<M> {
    let first = M::decode(data).ok()?;
    let bytes = first.encode_to_vec();
    let second = M::decode(&bytes[..]).expect("an encoded message decodes");
    assert!(second == first, "decode(encode(m)) != m");
    assert_eq!(second.encode_to_vec(), bytes, "encoding is not canonical");
    Some(first)
}

/// raft-rs's message, in rust-protobuf's encoding, as the transport decodes it.
fn raft_message(data: &[u8]) {
    let Ok(msg) = <raft::eraftpb::Message as protobuf::Message>::parse_from_bytes(data) else {
        return;
    };
    let bytes = protobuf::Message::write_to_bytes(&msg).expect("a parsed message encodes");
    let again: raft::eraftpb::Message =
        protobuf::Message::parse_from_bytes(&bytes).expect("an encoded message parses");
    // rust-protobuf keeps unknown fields, in a hash map: `==` sees them and their encoding
    // comes out in any order, so neither is canonical. The known fields, which raft-rs
    // reads, must come back the same; its `Debug` (text format) shows exactly those.
    assert_eq!(
        format!("{again:?}"),
        format!("{msg:?}"),
        "raft message does not round-trip"
    );
}
