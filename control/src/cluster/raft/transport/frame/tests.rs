use ::raft::eraftpb::{Entry, Message as RaftMessage, MessageType};

use super::*;
use crate::cluster::raft::transport::{encode_raft, MAX_FRAME};

/// A header of `kind` announcing `len` bytes.
fn header(kind: u8, len: usize) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u8(kind);
    b.put_u32(u32::try_from(len).expect("u32"));
    b
}

fn member() -> FrameCodec {
    FrameCodec::new(Accept::member(MAX_FRAME), MAX_FRAME)
}

#[test]
fn each_kind_is_refused_over_its_cap_on_the_header_alone() {
    let cases = [
        (Accept::hello(), Kind::Hello, HELLO_MAX_FRAME),
        (Accept::joiner(MAX_FRAME), Kind::Join, JOIN_MAX_FRAME),
        (Accept::member(MAX_FRAME), Kind::Join, JOIN_MAX_FRAME),
        (Accept::member(MAX_FRAME), Kind::Request, REQUEST_MAX_FRAME),
        (Accept::member(MAX_FRAME), Kind::Raft, RAFT_MAX_FRAME),
        (Accept::member(MAX_FRAME), Kind::Snapshot, MAX_FRAME),
        (Accept::answers(MAX_FRAME), Kind::Answer, MAX_FRAME),
    ];
    for (accept, kind, cap) in cases {
        let mut codec = FrameCodec::new(accept, MAX_FRAME);
        // One byte over: refused with nothing but the header in, and nothing reserved.
        let mut src = header(kind as u8, cap + 1);
        let before = src.capacity();
        match codec.decode(&mut src) {
            Err(FrameError::TooBig {
                kind: k,
                len,
                cap: c,
            }) => {
                assert_eq!((k, len, c), (kind, cap + 1, cap));
            }
            other => panic!("{kind:?} over its cap: {other:?}"),
        }
        assert!(
            src.capacity() <= before.max(64),
            "{kind:?}: reserved for the body"
        );
        // At the cap: waits for the body.
        let mut src = header(kind as u8, cap);
        assert!(
            codec.decode(&mut src).expect("at the cap").is_none(),
            "{kind:?}"
        );
    }
}

#[test]
fn a_frame_at_its_cap_is_decoded_whole() {
    let mut codec = FrameCodec::new(Accept::joiner(MAX_FRAME), MAX_FRAME);
    let mut src = header(Kind::Join as u8, JOIN_MAX_FRAME);
    assert!(codec.decode(&mut src).expect("header").is_none());
    src.extend_from_slice(&vec![7u8; JOIN_MAX_FRAME - 1]);
    assert!(codec.decode(&mut src).expect("partial").is_none());
    src.extend_from_slice(&[7u8, 0xee]);
    let frame = codec.decode(&mut src).expect("whole").expect("a frame");
    assert_eq!(frame.kind, Kind::Join);
    assert_eq!(frame.body.len(), JOIN_MAX_FRAME);
    assert_eq!(&src[..], &[0xee], "the next frame's first byte stays");
}

#[test]
fn kinds_a_connection_does_not_take_are_refused() {
    // A joiner's raft message, a member's Hello after the Hello, an answer sent to a server.
    let cases = [
        (Accept::joiner(MAX_FRAME), Kind::Raft),
        (Accept::joiner(MAX_FRAME), Kind::Snapshot),
        (Accept::joiner(MAX_FRAME), Kind::Request),
        (Accept::member(MAX_FRAME), Kind::Hello),
        (Accept::member(MAX_FRAME), Kind::Answer),
        (Accept::hello(), Kind::Raft),
        (Accept::nothing(), Kind::Answer),
    ];
    for (accept, kind) in cases {
        let mut codec = FrameCodec::new(accept, MAX_FRAME);
        let mut src = header(kind as u8, 1);
        assert!(
            matches!(codec.decode(&mut src), Err(FrameError::Unexpected(k)) if k == kind),
            "{kind:?}"
        );
    }
    for byte in [0u8, 7, 0xff] {
        let mut src = header(byte, 1);
        assert!(matches!(
            member().decode(&mut src),
            Err(FrameError::UnknownKind(b)) if b == byte
        ));
    }
}

#[test]
fn a_smaller_max_frame_lowers_every_cap() {
    let mut codec = FrameCodec::new(Accept::member(4096), 4096);
    let mut src = header(Kind::Raft as u8, 4097);
    assert!(matches!(
        codec.decode(&mut src),
        Err(FrameError::TooBig { cap: 4096, .. })
    ));
}

#[test]
fn frames_round_trip_and_the_encoder_keeps_to_the_caps() {
    let mut codec = member();
    let mut wire = BytesMut::new();
    for (kind, len) in [(Kind::Raft, 3), (Kind::Snapshot, 0), (Kind::Request, 70)] {
        let frame = Frame {
            kind,
            body: Bytes::from(vec![1u8; len]),
        };
        codec.encode(frame, &mut wire).expect("encode");
    }
    let kinds: Vec<(Kind, usize)> = std::iter::from_fn(|| codec.decode(&mut wire).expect("decode"))
        .map(|f| (f.kind, f.body.len()))
        .collect();
    assert_eq!(
        kinds,
        [(Kind::Raft, 3), (Kind::Snapshot, 0), (Kind::Request, 70)]
    );
    let too_big = Frame {
        kind: Kind::Join,
        body: Bytes::from(vec![0u8; JOIN_MAX_FRAME + 1]),
    };
    assert!(matches!(
        codec.encode(too_big, &mut wire),
        Err(FrameError::TooBig {
            kind: Kind::Join,
            ..
        })
    ));
    assert!(wire.is_empty(), "nothing written for a refused frame");
}

#[test]
fn raft_messages_take_their_kind() {
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgAppend);
    assert_eq!(Kind::of_raft(&m), Kind::Raft);
    m.set_msg_type(MessageType::MsgSnapshot);
    assert_eq!(Kind::of_raft(&m), Kind::Snapshot);
}

/// The largest append raft-rs sends with the node's settings fits a `Raft` frame: entries as
/// small as they come adding up to the batch size, then one proposal as large as allowed.
#[test]
fn the_largest_append_fits_the_raft_cap() {
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgAppend);
    (m.from, m.to, m.term, m.log_term, m.index, m.commit) =
        (u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    let mut size = 0u64;
    let mut index = 1u64;
    while size < RAFT_BATCH_BYTES {
        let e = Entry {
            term: 1,
            index,
            ..Default::default()
        };
        size += u64::from(protobuf::Message::compute_size(&e));
        index += 1;
        m.mut_entries().push(e);
    }
    m.mut_entries().push(Entry {
        term: u64::MAX,
        index: u64::MAX,
        data: vec![0xa5; MAX_PROPOSAL].into(),
        context: vec![0xa5; 64].into(),
        ..Default::default()
    });
    let len = encode_raft(&m).expect("encode").len();
    assert!(len <= RAFT_MAX_FRAME, "{len} > {RAFT_MAX_FRAME}");
    // An ordinary raft message cannot make a peer buffer a snapshot's worth.
    const { assert!(RAFT_MAX_FRAME < MAX_FRAME / 8) };
}
