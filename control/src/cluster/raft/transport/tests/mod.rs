use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;
use vxnet_proto::{Hello, JoinRequest, JoinResponse, LeaveRequest};

use super::backoff::Backoff;
use super::frame::{Accept, Frame, Kind, JOIN_MAX_FRAME};
use super::request::{connect, ClientConn};
use super::testing::TestCa;
use super::*;

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn fast_config() -> TransportConfig {
    TransportConfig {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..TransportConfig::default()
    }
}

async fn start(id: u64, ca: &TestCa) -> (Transport, Receiver<TransportEvent>) {
    start_at(loopback(), id, ca, fast_config()).await
}

async fn start_at(
    addr: SocketAddr,
    id: u64,
    ca: &TestCa,
    config: TransportConfig,
) -> (Transport, Receiver<TransportEvent>) {
    let (tx, rx) = mpsc::channel(1024);
    let t = Transport::start_with(addr, ca.member(id), tx, config)
        .await
        .expect("start transport");
    (t, rx)
}

fn heartbeat(from: u64, to: u64, commit: u64) -> RaftMessage {
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.commit = commit;
    m
}

fn snapshot(from: u64, to: u64, len: usize) -> RaftMessage {
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = from;
    m.to = to;
    let mut snap = ::raft::eraftpb::Snapshot {
        data: Bytes::from(vec![0x5a; len]),
        ..Default::default()
    };
    snap.mut_metadata().index = 10;
    snap.mut_metadata().term = 2;
    m.set_snapshot(snap);
    m
}

/// The next event that `pick` accepts, skipping others; panics after `WAIT`.
async fn expect_event<T>(
    rx: &mut Receiver<TransportEvent>,
    mut pick: impl FnMut(TransportEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("event channel closed");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

fn raft_msg(e: TransportEvent) -> Option<RaftMessage> {
    match e {
        TransportEvent::Raft(m) => Some(m),
        _ => None,
    }
}

fn unreachable_id(e: TransportEvent) -> Option<u64> {
    match e {
        TransportEvent::Unreachable(id) => Some(id),
        _ => None,
    }
}

/// Asserts nothing but `allowed` events arrive within `wait`.
async fn expect_quiet(
    rx: &mut Receiver<TransportEvent>,
    wait: Duration,
    allowed: impl Fn(&TransportEvent) -> bool,
) {
    let deadline = Instant::now() + wait;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert!(allowed(&e), "unexpected event {e:?}");
    }
}

/// A connection that has passed TLS and said `Hello`, for sending hand-made frames.
async fn raw_client(addr: SocketAddr, credentials: &Credentials) -> ClientConn {
    connect(addr, credentials, None, &TransportConfig::default())
        .await
        .expect("a TLS connection")
}

/// Whether the peer closed `stream` within `WAIT` (reading until EOF or an error).
async fn closes<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends one raft message on a raw connection.
async fn send_raft(f: &mut ClientConn, msg: &RaftMessage) {
    f.send(raft_frame(msg).expect("encode"))
        .await
        .expect("send");
}

/// A frame of `kind` with `body`, whatever the body is.
fn frame_of(kind: Kind, body: impl Into<Bytes>) -> Frame {
    Frame {
        kind,
        body: body.into(),
    }
}

/// Writes a frame header of `kind` announcing `len` bytes on a raw connection, and no body.
async fn send_header(f: &mut ClientConn, kind: Kind, len: usize) {
    let mut header = vec![kind as u8];
    header.extend_from_slice(&u32::try_from(len).expect("u32").to_be_bytes());
    f.get_mut().write_all(&header).await.expect("write");
    f.get_mut().flush().await.expect("flush");
}

#[tokio::test]
async fn framing_round_trip() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let accept = Accept::member(1 << 20);
    let (mut a, mut b) = (framed(a, accept, 1 << 20), framed(b, accept, 1 << 20));
    let msg = heartbeat(1, 2, 77);
    a.send(raft_frame(&msg).expect("encode"))
        .await
        .expect("send");
    let frame = b.next().await.expect("a frame").expect("readable");
    assert_eq!(frame.kind, Kind::Raft);
    let envelope = Envelope::decode(frame.body).expect("envelope");
    let Some(envelope::Kind::Raft(bytes)) = envelope.kind else {
        panic!("not a raft envelope: {envelope:?}");
    };
    let back: RaftMessage = protobuf::Message::parse_from_bytes(&bytes).expect("raft");
    assert_eq!(back, msg);

    // The header: the kind, then the body's length in 4 bytes big-endian.
    let (a, mut b) = tokio::io::duplex(64);
    let mut a = framed(a, Accept::member(16), 16);
    a.send(frame_of(Kind::Snapshot, &b"abc"[..]))
        .await
        .expect("send");
    let mut wire = [0u8; 8];
    b.read_exact(&mut wire).await.expect("read");
    assert_eq!(wire, [3, 0, 0, 0, 3, b'a', b'b', b'c']);

    // Over the limit: refused on both sides, not allocated.
    assert!(a.send(frame_of(Kind::Snapshot, vec![0; 17])).await.is_err());
    b.write_all(&[3, 0, 0, 0, 17]).await.expect("write");
    assert!(a.next().await.expect("an item").is_err());
}

#[tokio::test]
async fn thousand_messages_in_order() {
    let ca = TestCa::new();
    let (a, _a_rx) = start(1, &ca).await;
    let (b, mut b_rx) = start(2, &ca).await;
    a.set_peer(2, b.local_addr());
    for i in 0..1000 {
        a.send(heartbeat(1, 2, i));
    }
    for i in 0..1000 {
        let m = expect_event(&mut b_rx, raft_msg).await;
        assert_eq!(m.commit, i);
    }
    assert_eq!(a.stats().dropped_messages, 0);
}

#[tokio::test]
async fn full_queue_drops_and_reports() {
    let ca = TestCa::new();
    let config = TransportConfig {
        queue_len: 4,
        ..fast_config()
    };
    let (a, mut a_rx) = start_at(loopback(), 1, &ca, config).await;
    let (b, _b_rx) = start(2, &ca).await;
    a.set_peer(2, b.local_addr());
    // Synchronous sends outpace the peer task, which cannot run in between.
    for i in 0..10 {
        a.send(heartbeat(1, 2, i));
    }
    assert_eq!(a.stats().dropped_messages, 6);
    for _ in 0..6 {
        let id = expect_event(&mut a_rx, |e| match e {
            TransportEvent::Unreachable(id) => Some(id),
            _ => None,
        })
        .await;
        assert_eq!(id, 2);
    }
}

#[tokio::test]
async fn unknown_and_removed_peers_are_unreachable() {
    let ca = TestCa::new();
    let (a, mut a_rx) = start(1, &ca).await;
    let (b, _b_rx) = start(2, &ca).await;
    a.send(heartbeat(1, 9, 0));
    assert!(matches!(
        expect_event(&mut a_rx, Some).await,
        TransportEvent::Unreachable(9)
    ));
    a.set_peer(2, b.local_addr());
    a.remove_peer(2);
    assert_eq!(a.peer_addr(2), None);
    a.send(heartbeat(1, 2, 0));
    assert!(matches!(
        expect_event(&mut a_rx, Some).await,
        TransportEvent::Unreachable(2)
    ));
}

#[tokio::test]
async fn unreachable_then_delivery_resumes() {
    let ca = TestCa::new();
    // A free port, for a peer that is down now and comes up later.
    let addr = {
        let l = std::net::TcpListener::bind(loopback()).expect("bind");
        l.local_addr().expect("addr")
    };
    // The daemon's own backoff (100 ms .. 5 s), to show it stays bounded.
    let (a, mut a_rx) = start_at(loopback(), 1, &ca, TransportConfig::default()).await;
    a.set_peer(2, addr);
    a.send(heartbeat(1, 2, 0));
    assert!(matches!(
        expect_event(&mut a_rx, Some).await,
        TransportEvent::Unreachable(2)
    ));
    // Stay down through a few failed attempts, like a peer that reboots.
    let down_until = Instant::now() + Duration::from_millis(700);
    let mut unreachable = 1;
    while Instant::now() < down_until {
        a.send(heartbeat(1, 2, 0));
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(e) = a_rx.try_recv() {
            assert!(matches!(e, TransportEvent::Unreachable(2)), "{e:?}");
            unreachable += 1;
        }
    }
    assert!(unreachable > 10, "{unreachable}");

    let (b, mut b_rx) = start_at(addr, 2, &ca, fast_config()).await;
    let up = Instant::now();
    let mut commit = 1;
    loop {
        a.send(heartbeat(1, 2, commit));
        commit += 1;
        let got = tokio::time::timeout(Duration::from_millis(20), b_rx.recv()).await;
        if let Ok(Some(TransportEvent::Raft(m))) = got {
            assert_eq!(m.from, 1);
            break;
        }
        assert!(up.elapsed() < WAIT, "delivery did not resume");
    }
    // The backoff had reached at most 800 ms (drawn from [400, 800]).
    assert!(
        up.elapsed() < Duration::from_millis(1500),
        "{:?}",
        up.elapsed()
    );

    // The peer goes down again (connection open): reported, then back once more.
    b.shutdown().await;
    drop(b_rx);
    let deadline = Instant::now() + WAIT;
    loop {
        a.send(heartbeat(1, 2, 0));
        let got = tokio::time::timeout(Duration::from_millis(20), a_rx.recv()).await;
        if let Ok(Some(TransportEvent::Unreachable(2))) = got {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Unreachable after the peer went down"
        );
    }
    let (_b, mut b_rx) = start_at(addr, 2, &ca, fast_config()).await;
    let deadline = Instant::now() + WAIT;
    loop {
        a.send(heartbeat(1, 2, 1));
        let got = tokio::time::timeout(Duration::from_millis(20), b_rx.recv()).await;
        if let Ok(Some(TransportEvent::Raft(_))) = got {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivery did not resume the second time"
        );
    }
}

#[tokio::test]
async fn peer_moves_to_a_new_address() {
    let ca = TestCa::new();
    let (a, _a_rx) = start(1, &ca).await;
    let (old, mut old_rx) = start(2, &ca).await;
    let (new, mut new_rx) = start(2, &ca).await;
    a.set_peer(2, old.local_addr());
    a.send(heartbeat(1, 2, 1));
    assert_eq!(expect_event(&mut old_rx, raft_msg).await.commit, 1);
    a.set_peer(2, new.local_addr());
    // The move is seen by the peer task before the next message (watch before queue is
    // not guaranteed), so retry until the new address gets one.
    let deadline = Instant::now() + WAIT;
    let mut commit = 2;
    loop {
        a.send(heartbeat(1, 2, commit));
        commit += 1;
        let got = tokio::time::timeout(Duration::from_millis(20), new_rx.recv()).await;
        if let Ok(Some(TransportEvent::Raft(_))) = got {
            break;
        }
        assert!(Instant::now() < deadline, "the new address got nothing");
    }
}

fn join_request() -> Envelope {
    Envelope {
        kind: Some(envelope::Kind::JoinRequest(JoinRequest::default())),
    }
}

#[tokio::test]
async fn request_reply_round_trip() {
    let ca = TestCa::new();
    let (b, mut b_rx) = start(2, &ca).await;
    let node = tokio::spawn(async move {
        // Answer a join, drop a leave (the node gave up on it).
        for _ in 0..2 {
            let Some(TransportEvent::Request {
                from,
                envelope,
                reply,
            }) = b_rx.recv().await
            else {
                panic!("expected a request");
            };
            assert!(from.ip().is_loopback());
            if let Some(envelope::Kind::JoinRequest(_)) = envelope.kind {
                let answer = Envelope {
                    kind: Some(envelope::Kind::JoinResponse(JoinResponse {
                        leader_addr: "10.0.0.1:7000".into(),
                        ..JoinResponse::default()
                    })),
                };
                reply.send(answer).expect("requester waiting");
            }
        }
        b_rx
    });
    let answer = request(
        b.local_addr(),
        &ca.creds(9),
        join_request(),
        Duration::from_secs(5),
    )
    .await
    .expect("answer");
    let Some(envelope::Kind::JoinResponse(r)) = answer.kind else {
        panic!("not a join response: {answer:?}");
    };
    assert_eq!(r.leader_addr, "10.0.0.1:7000");

    let leave = Envelope {
        kind: Some(envelope::Kind::LeaveRequest(LeaveRequest {
            host_id: "h".into(),
        })),
    };
    let err = request(b.local_addr(), &ca.creds(9), leave, Duration::from_secs(5))
        .await
        .expect_err("dropped");
    assert!(matches!(err, TransportError::Closed { .. }), "{err:?}");
    let _b_rx = node.await.expect("node task");

    // Nobody answers at all: the requester's timeout.
    let err = request(
        b.local_addr(),
        &ca.creds(9),
        join_request(),
        Duration::from_millis(200),
    )
    .await
    .expect_err("no answer");
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().ends_with("did not answer within 200 ms"),
        "{err}"
    );

    // Nobody listens.
    let (free, _) = {
        let l = std::net::TcpListener::bind(loopback()).expect("bind");
        (l.local_addr().expect("addr"), ())
    };
    let err = request(free, &ca.creds(9), join_request(), Duration::from_secs(5))
        .await
        .expect_err("refused");
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn snapshot_status_reported() {
    let ca = TestCa::new();
    let (a, mut a_rx) = start(1, &ca).await;
    let (b, mut b_rx) = start(2, &ca).await;
    a.set_peer(2, b.local_addr());
    let snap = snapshot(1, 2, 4 << 20);
    a.send(snap.clone());
    let status = expect_event(&mut a_rx, |e| match e {
        TransportEvent::SnapshotStatus(id, s) => Some((id, s)),
        _ => None,
    })
    .await;
    assert_eq!(status, (2, SnapshotStatus::Finish));
    assert_eq!(expect_event(&mut b_rx, raft_msg).await, snap);

    // To a peer nobody knows: Unreachable and Failure.
    a.send(snapshot(1, 3, 10));
    assert!(matches!(
        expect_event(&mut a_rx, Some).await,
        TransportEvent::Unreachable(3)
    ));
    assert!(matches!(
        expect_event(&mut a_rx, Some).await,
        TransportEvent::SnapshotStatus(3, SnapshotStatus::Failure)
    ));
}

#[tokio::test]
async fn oversized_snapshot_fails() {
    let ca = TestCa::new();
    let config = TransportConfig {
        max_frame: 64 << 10,
        ..fast_config()
    };
    let (a, mut a_rx) = start_at(loopback(), 1, &ca, config).await;
    let (b, mut b_rx) = start(2, &ca).await;
    a.set_peer(2, b.local_addr());
    a.send(snapshot(1, 2, 128 << 10));
    let status = expect_event(&mut a_rx, |e| match e {
        TransportEvent::SnapshotStatus(id, s) => Some((id, s)),
        _ => None,
    })
    .await;
    assert_eq!(status, (2, SnapshotStatus::Failure));
    // The connection is still good for what fits.
    a.send(heartbeat(1, 2, 3));
    assert_eq!(expect_event(&mut b_rx, raft_msg).await.commit, 3);
}

#[test]
fn backoff_doubles_with_jitter_up_to_max() {
    let min = Duration::from_millis(100);
    let max = Duration::from_secs(5);
    let mut b = Backoff::new(min, max);
    let mut d = min;
    for _ in 0..20 {
        let delay = b.next_delay();
        assert!(delay >= d / 2 && delay <= d, "{delay:?} vs {d:?}");
        d = (d * 2).min(max);
    }
    b.reset();
    assert!(b.next_delay() <= min);
}

#[tokio::test]
async fn shutdown_frees_the_port_and_stops_sending() {
    let ca = TestCa::new();
    let (a, mut a_rx) = start(1, &ca).await;
    let addr = a.local_addr();
    a.set_peer(2, addr);
    a.shutdown().await;
    a.send(heartbeat(1, 2, 0));
    expect_quiet(&mut a_rx, Duration::from_millis(50), |_| false).await;
    let (_again, _rx) = start_at(addr, 1, &ca, fast_config()).await;
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let ca = TestCa::new();
    let (a, _rx) = start(1, &ca).await;
    let (tx, _rx2) = mpsc::channel(1024);
    let err = Transport::start(a.local_addr(), ca.member(2), tx)
        .await
        .err()
        .expect("address in use");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot listen for cluster connections on {}",
            a.local_addr()
        )),
        "{err}"
    );
}

mod security;
