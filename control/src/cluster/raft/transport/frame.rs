//! The frames of a cluster connection, sans-IO: a 5-byte header — what the frame carries
//! ([`Kind`], one byte) and the body's length (`u32`, big-endian) — then the body.
//!
//! Rules:
//! - Every kind has its own cap ([`cap`]): a `Hello` 1 KiB, a join request 64 KiB, any other
//!   request 64 KiB, a raft message without a snapshot [`RAFT_MAX_FRAME`] (about 4 MiB), a raft
//!   message with a snapshot and an answer [`TransportConfig::max_frame`](super::TransportConfig)
//!   (64 MiB).
//! - A connection accepts only some kinds at each point ([`Accept`]): the `Hello` first, then a
//!   joiner's join requests, or a member's raft messages and requests; a client reads answers.
//! - The decoder judges a frame by its header alone, before it reserves room for the body or
//!   reads it: a kind this connection does not accept, an unknown kind or a length over the
//!   kind's cap is an error ([`FrameError`]), and the caller closes the connection. So a peer
//!   can make this side buffer a large frame only with a kind that may be large.
//! - The header's kind is a claim: the reader checks it against the body it decodes (a raft
//!   message in a `Raft` frame is no snapshot, one in a `Snapshot` frame is) and closes the
//!   connection on a mismatch.
//! - The encoder refuses a body over its kind's cap ([`FrameError::TooBig`]) rather than send
//!   what the other side would refuse.
//! - Compatibility: all daemons of a cluster run the same vxnet version. A daemon before this
//!   header (frames of a bare 4-byte length) and one with it do not understand each other; the
//!   connection closes at the first frame, as with a host of another cluster.

use std::io;

use ::raft::eraftpb::{Message as RaftMessage, MessageType};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};
use vxnet_proto::envelope;

/// Header bytes before the body.
pub const HEADER_LEN: usize = 5;

/// raft-rs's `max_size_per_msg` as the node sets it: the entries of one append add up to at
/// most this many bytes, or are a single entry.
pub const RAFT_BATCH_BYTES: u64 = 1 << 20;

/// The largest encoded proposal the node hands raft-rs; it refuses a larger change. With
/// [`RAFT_BATCH_BYTES`] this bounds every raft message but a snapshot.
pub const MAX_PROPOSAL: usize = 1 << 20;

/// Cap of a raft message without a snapshot. Its entries add up to at most
/// `max(RAFT_BATCH_BYTES, one entry)`; an entry is a proposal and a few fields. In the
/// message each entry costs at most 4 bytes more (tag and length) and is at least 4 bytes
/// (term and index), so twice the sum bounds them; the message's own fields are a few
/// hundred bytes.
pub const RAFT_MAX_FRAME: usize = 2 * (RAFT_BATCH_BYTES as usize + MAX_PROPOSAL) + (64 << 10);

/// Cap of the `Hello`: a raft id.
pub const HELLO_MAX_FRAME: usize = 1 << 10;

/// Cap of a join request: a host record, the secret and a public key fit easily.
pub const JOIN_MAX_FRAME: usize = 64 << 10;

/// Cap of a leave or reachability request: an id or nothing.
pub const REQUEST_MAX_FRAME: usize = 64 << 10;

/// What a frame carries: the first byte of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The client's first frame: a `Hello`.
    Hello = 1,
    /// An envelope with a raft message that carries no snapshot.
    Raft = 2,
    /// An envelope with a raft `MsgSnapshot`.
    Snapshot = 3,
    /// An envelope with a join request.
    Join = 4,
    /// An envelope with a leave or reachability request.
    Request = 5,
    /// An envelope with an answer to a request.
    Answer = 6,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Hello,
        Kind::Raft,
        Kind::Snapshot,
        Kind::Join,
        Kind::Request,
        Kind::Answer,
    ];

    fn from_byte(byte: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == byte)
    }

    /// The kind of a frame that carries `msg`.
    pub fn of_raft(msg: &RaftMessage) -> Kind {
        match msg.get_msg_type() {
            MessageType::MsgSnapshot => Kind::Snapshot,
            _ => Kind::Raft,
        }
    }

    /// The kind of a frame that carries an envelope of `kind`; `None` for a raft message
    /// (see [`Kind::of_raft`]).
    pub fn of_envelope(kind: &envelope::Kind) -> Option<Kind> {
        use envelope::Kind as E;
        Some(match kind {
            E::Raft(_) => return None,
            E::JoinRequest(_) => Kind::Join,
            E::LeaveRequest(_) | E::ReachabilityRequest(_) => Kind::Request,
            E::JoinResponse(_) | E::LeaveResponse(_) | E::ReachabilityResponse(_) => Kind::Answer,
        })
    }

    fn index(self) -> usize {
        self as usize - 1
    }
}

/// The cap of a frame of `kind`; `max_frame` is that of the largest kinds (snapshots, answers).
pub fn cap(kind: Kind, max_frame: usize) -> usize {
    match kind {
        Kind::Hello => HELLO_MAX_FRAME,
        Kind::Raft => RAFT_MAX_FRAME,
        Kind::Join => JOIN_MAX_FRAME,
        Kind::Request => REQUEST_MAX_FRAME,
        Kind::Snapshot | Kind::Answer => max_frame,
    }
    .min(max_frame)
}

/// The kinds a connection accepts now, each with its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    caps: [Option<usize>; Kind::ALL.len()],
}

impl Accept {
    /// Only `kinds`, each up to its [`cap`].
    pub fn only(kinds: &[Kind], max_frame: usize) -> Accept {
        let mut caps = [None; Kind::ALL.len()];
        for &kind in kinds {
            caps[kind.index()] = Some(cap(kind, max_frame));
        }
        Accept { caps }
    }

    /// Until the `Hello`.
    pub fn hello() -> Accept {
        Accept::only(&[Kind::Hello], HELLO_MAX_FRAME)
    }

    /// From a host without a certificate: join requests.
    pub fn joiner(max_frame: usize) -> Accept {
        Accept::only(&[Kind::Join], max_frame)
    }

    /// From a member: raft messages and requests.
    pub fn member(max_frame: usize) -> Accept {
        Accept::only(
            &[Kind::Raft, Kind::Snapshot, Kind::Join, Kind::Request],
            max_frame,
        )
    }

    /// What a client reads: answers.
    pub fn answers(max_frame: usize) -> Accept {
        Accept::only(&[Kind::Answer], max_frame)
    }

    /// Nothing at all (a connection on which the other side has nothing to say).
    pub fn nothing() -> Accept {
        Accept::only(&[], 0)
    }

    fn cap(&self, kind: Kind) -> Option<usize> {
        self.caps[kind.index()]
    }
}

/// One frame: its kind and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub body: Bytes,
}

/// Why a frame is refused; the connection closes.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("a frame of unknown kind {0}")]
    UnknownKind(u8),
    #[error("a {0:?} frame, which this connection does not take now")]
    Unexpected(Kind),
    #[error("a {kind:?} frame of {len} bytes, over the {cap}-byte cap of its kind")]
    TooBig { kind: Kind, len: usize, cap: usize },
}

/// The codec of a cluster connection: decodes what [`Accept`] allows, encodes any kind up to
/// its cap.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    accept: Accept,
    max_frame: usize,
}

impl FrameCodec {
    /// `max_frame`: the cap of snapshots and answers, on both sides.
    pub fn new(accept: Accept, max_frame: usize) -> FrameCodec {
        FrameCodec { accept, max_frame }
    }

    /// From the next frame on, accept what `accept` allows.
    pub fn set_accept(&mut self, accept: Accept) {
        self.accept = accept;
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let kind = Kind::from_byte(header[0]).ok_or(FrameError::UnknownKind(header[0]))?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let cap = self.accept.cap(kind).ok_or(FrameError::Unexpected(kind))?;
        if len > cap {
            return Err(FrameError::TooBig { kind, len, cap });
        }
        let whole = HEADER_LEN + len;
        if src.len() < whole {
            // Only now, with a length this kind may have: room for the rest of the frame.
            src.reserve(whole - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(len).freeze();
        Ok(Some(Frame { kind, body }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let (kind, len) = (frame.kind, frame.body.len());
        let cap = cap(kind, self.max_frame);
        if len > cap {
            return Err(FrameError::TooBig { kind, len, cap });
        }
        dst.reserve(HEADER_LEN + len);
        dst.put_u8(kind as u8);
        // Within a cap, so within u32.
        dst.put_u32(len as u32);
        dst.extend_from_slice(&frame.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
