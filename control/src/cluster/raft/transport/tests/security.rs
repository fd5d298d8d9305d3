//! The transport's security rules: mutual TLS, the `Hello`, revocation, spoofed senders,
//! what a joiner may send, and the limits on inbound connections (see the module docs).

use tokio::io::AsyncWriteExt;

use crate::cluster::raft::tls;

use super::*;

#[tokio::test]
async fn members_of_one_ca_talk_both_ways() {
    let ca = TestCa::new();
    let (a, mut a_rx) = start(1, &ca).await;
    let (b, mut b_rx) = start(2, &ca).await;
    a.set_peer(2, b.local_addr());
    b.set_peer(1, a.local_addr());
    a.send(heartbeat(1, 2, 5));
    b.send(heartbeat(2, 1, 6));
    assert_eq!(expect_event(&mut b_rx, raft_msg).await, heartbeat(1, 2, 5));
    assert_eq!(expect_event(&mut a_rx, raft_msg).await, heartbeat(2, 1, 6));
    assert_eq!(a.stats().auth_failures + b.stats().auth_failures, 0);
    assert_eq!(
        a.stats().refused_connections + b.stats().refused_connections,
        0
    );
    assert_eq!(a.peer_addr(2), Some(b.local_addr()));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn members_of_another_ca_are_refused() {
    let (ca1, ca2) = (TestCa::new(), TestCa::new());
    let (a, mut a_rx) = start(1, &ca1).await;
    let (b, mut b_rx) = start(2, &ca2).await;
    a.set_peer(2, b.local_addr());
    a.send(heartbeat(1, 2, 1));
    assert_eq!(expect_event(&mut a_rx, unreachable_id).await, 2);
    assert_eq!(a.stats().auth_failures, 1);
    expect_quiet(&mut b_rx, Duration::from_millis(100), |_| false).await;
    assert_eq!(b.stats().refused_connections, 1);
    assert_eq!(b.stats().refusals.get(RefusalReason::BadCertificate), 1);

    // As a client: b's certificate is not signed by a's CA, so a's server refuses it.
    let err = request(
        a.local_addr(),
        &ca2.creds(2),
        join_request(),
        Duration::from_secs(5),
    )
    .await
    .expect_err("another cluster's member");
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    // A joiner with a's CA in its token gets through to b's neighbour a, not to b.
    let err = request(
        b.local_addr(),
        &ca1.joiner(),
        join_request(),
        Duration::from_secs(5),
    )
    .await
    .expect_err("b is not of the pinned CA");
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
}

#[tokio::test]
async fn a_member_cannot_pass_for_another() {
    let ca = TestCa::new();
    let (a, mut a_rx) = start(1, &ca).await;
    // Raft id 3 listens where a believes raft id 2 is.
    let (c, mut c_rx) = start(3, &ca).await;
    a.set_peer(2, c.local_addr());
    a.send(heartbeat(1, 2, 1));
    assert_eq!(expect_event(&mut a_rx, unreachable_id).await, 2);
    assert_eq!(a.stats().auth_failures, 1);
    expect_quiet(&mut c_rx, Duration::from_millis(100), |_| false).await;
}

#[tokio::test]
async fn the_hello_must_match_the_certificate() {
    let ca = TestCa::new();
    let (b, mut b_rx) = start(2, &ca).await;
    let addr = b.local_addr();
    // A certificate for 1 claiming 5; no certificate claiming 5; a certificate claiming 0.
    for (creds, claim) in [(ca.creds(1), 5u64), (ca.joiner(), 5), (ca.creds(1), 0)] {
        let mut f = hello_client(addr, &creds, claim).await;
        assert!(closes(f.get_mut()).await, "claim {claim}");
    }
    expect_quiet(&mut b_rx, Duration::from_millis(50), |_| false).await;
    assert!(b.stats().refused_connections >= 3, "{:?}", b.stats());
    assert_eq!(b.stats().refusals.get(RefusalReason::WrongId), 3);
}

/// Runs TLS as `credentials` and says `Hello` with `claim`, whatever the certificate says.
async fn hello_client(addr: SocketAddr, credentials: &Credentials, claim: u64) -> ClientConn {
    let config = credentials_config(credentials);
    let stream = TcpStream::connect(addr).await.expect("connect");
    let name = tls::name_to_dial(None).expect("name");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .expect("TLS");
    let mut f = framed(tls, Accept::nothing(), MAX_FRAME);
    f.send(frame_of(
        Kind::Hello,
        Hello { raft_id: claim }.encode_to_vec(),
    ))
    .await
    .expect("hello");
    f
}

fn credentials_config(credentials: &Credentials) -> Arc<rustls::ClientConfig> {
    match credentials {
        Credentials::Member(tls) => tls.client_config(),
        Credentials::Joiner { ca_fingerprint } => {
            tls::joiner_client_config(*ca_fingerprint).expect("config")
        }
    }
}

#[tokio::test]
async fn revoked_ids_are_refused_and_cut_off() {
    let ca = TestCa::new();
    let (b, mut b_rx) = start(2, &ca).await;
    let addr = b.local_addr();
    let mut open = raw_client(addr, &ca.creds(1)).await;
    send_raft(&mut open, &heartbeat(1, 2, 1)).await;
    assert_eq!(expect_event(&mut b_rx, raft_msg).await.commit, 1);

    b.set_revoked(vec![7, 1]);
    // The open connection closes at its next frame, which is not delivered.
    send_raft(&mut open, &heartbeat(1, 2, 2)).await;
    assert!(closes(open.get_mut()).await);
    // A new one is refused after its Hello.
    let mut again = raw_client(addr, &ca.creds(1)).await;
    assert!(closes(again.get_mut()).await);
    expect_quiet(&mut b_rx, Duration::from_millis(50), |_| false).await;
    assert_eq!(b.stats().refused_connections, 1, "{:?}", b.stats());
    // Once cut off, once refused.
    assert_eq!(b.stats().refusals.get(RefusalReason::Revoked), 2);
}

#[tokio::test]
async fn another_members_id_is_dropped_not_delivered() {
    let ca = TestCa::new();
    let (b, mut b_rx) = start(2, &ca).await;
    let mut f = raw_client(b.local_addr(), &ca.creds(1)).await;
    send_raft(&mut f, &heartbeat(3, 2, 9)).await;
    send_raft(&mut f, &heartbeat(1, 2, 10)).await;
    // Only the message in the connection's own name arrives; the connection stays up.
    assert_eq!(expect_event(&mut b_rx, raft_msg).await, heartbeat(1, 2, 10));
    assert_eq!(b.stats().spoofed_frames, 1);
    assert_eq!(b.stats().refusals.get(RefusalReason::WrongSender), 1);
    send_raft(&mut f, &heartbeat(1, 2, 11)).await;
    assert_eq!(expect_event(&mut b_rx, raft_msg).await.commit, 11);
}

#[tokio::test]
async fn a_joiner_may_only_ask_to_join() {
    let ca = TestCa::new();
    let (b, mut b_rx) = start(2, &ca).await;
    let addr = b.local_addr();
    let leave = Envelope {
        kind: Some(envelope::Kind::LeaveRequest(LeaveRequest::default())),
    };
    let raft = raft_frame(&heartbeat(1, 2, 1)).expect("encode");
    // A raft message, a leave request, and a raft message in a join request's frame.
    let disguised = frame_of(Kind::Join, raft.body.clone());
    let leave = envelope_frame(&leave).expect("a request");
    for frame in [raft, leave, disguised] {
        let mut f = raw_client(addr, &ca.joiner()).await;
        f.send(frame).await.expect("send");
        assert!(closes(f.get_mut()).await);
    }
    // A frame above the join request's cap.
    let mut f = raw_client(addr, &ca.joiner()).await;
    send_header(&mut f, Kind::Join, JOIN_MAX_FRAME + 1).await;
    assert!(closes(f.get_mut()).await);
    expect_quiet(&mut b_rx, Duration::from_millis(50), |_| false).await;
    let stats = b.stats();
    assert_eq!(stats.bad_connections, 4);
    assert_eq!(
        stats.refusals.get(RefusalReason::NotAMember),
        3,
        "{stats:?}"
    );
    assert_eq!(
        stats.refusals.get(RefusalReason::FrameTooBig),
        1,
        "{stats:?}"
    );

    // A join request is passed on.
    let asked = tokio::spawn(async move {
        request(addr, &ca.joiner(), join_request(), Duration::from_secs(5)).await
    });
    let TransportEvent::Request { reply, .. } = b_rx.recv().await.expect("a request") else {
        panic!("expected the join request");
    };
    let answer = Envelope {
        kind: Some(envelope::Kind::JoinResponse(JoinResponse::default())),
    };
    reply.send(answer.clone()).expect("requester waiting");
    assert_eq!(asked.await.expect("task").expect("answer"), answer);
}

#[tokio::test]
async fn refusals_are_logged_once_per_source_per_minute() {
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread test runtime: every task runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let ca = TestCa::new();
    let (b, _b_rx) = start(2, &ca).await;
    for _ in 0..5 {
        // Not TLS at all.
        let mut s = TcpStream::connect(b.local_addr()).await.expect("connect");
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.expect("write");
        assert!(closes(&mut s).await);
    }
    assert_eq!(b.stats().refused_connections, 5);
    assert_eq!(b.stats().refusals.get(RefusalReason::TlsHandshake), 5);
    let logged = String::from_utf8_lossy(&lock(&capture.0)).into_owned();
    assert_eq!(logged.matches("WARN").count(), 1, "{logged}");
    assert!(
        logged.contains("refused a cluster connection from 127.0.0.1:"),
        "{logged}"
    );
    assert!(logged.contains("TLS handshake failed"), "{logged}");
}

#[tokio::test]
async fn bad_frames_close_the_connection_and_the_server_keeps_serving() {
    let ca = TestCa::new();
    let (b, mut b_rx) = start(2, &ca).await;
    let addr = b.local_addr();

    // Before TLS: garbage.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    assert!(closes(&mut s).await);

    // After TLS, before the Hello: a Hello far above its cap; a frame of no known kind.
    for header in [[1, 0x7f, 0xff, 0xff, 0xff], [0x7f, 0, 0, 0, 1]] {
        let mut f = hello_client_raw(addr, &ca.creds(1)).await;
        f.write_all(&header).await.expect("write");
        assert!(closes(&mut f).await);
    }
    let stats = b.stats();
    assert_eq!(stats.refused_connections, 3);
    assert_eq!(stats.refusals.get(RefusalReason::TlsHandshake), 1);
    assert_eq!(stats.refusals.get(RefusalReason::FrameTooBig), 1);
    assert_eq!(stats.refusals.get(RefusalReason::BadHello), 1);

    // After the Hello: a snapshot above 64 MiB.
    let mut f = raw_client(addr, &ca.creds(1)).await;
    send_header(&mut f, Kind::Snapshot, MAX_FRAME + 1).await;
    assert!(closes(f.get_mut()).await);

    // After the Hello: not an envelope; a raft payload that is not a raft message; an empty
    // envelope; a response nobody asked for, in an answer's frame and in a request's; a
    // heartbeat in a snapshot's frame; a snapshot in a plain raft message's; the wrong host.
    let misrouted = raft_frame(&heartbeat(1, 3, 1)).expect("encode");
    let response = Envelope {
        kind: Some(envelope::Kind::JoinResponse(JoinResponse::default())),
    }
    .encode_to_vec();
    let beat = encode_raft(&heartbeat(1, 2, 1)).expect("encode");
    let snap = encode_raft(&snapshot(1, 2, 10)).expect("encode");
    let junk = [
        frame_of(Kind::Raft, &[0xff, 0xff, 0xff, 0xff, 0x0f][..]),
        frame_of(
            Kind::Raft,
            Envelope {
                kind: Some(envelope::Kind::Raft(vec![0xff; 9])),
            }
            .encode_to_vec(),
        ),
        frame_of(Kind::Raft, Bytes::new()),
        frame_of(Kind::Answer, response.clone()),
        frame_of(Kind::Request, response),
        frame_of(Kind::Snapshot, beat),
        frame_of(Kind::Raft, snap),
        misrouted,
    ];
    for frame in junk {
        let mut f = raw_client(addr, &ca.creds(1)).await;
        f.send(frame).await.expect("send");
        assert!(closes(f.get_mut()).await);
    }
    let stats = b.stats();
    assert_eq!(stats.bad_connections, 9, "{stats:?}");
    assert_eq!(stats.refusals.get(RefusalReason::FrameTooBig), 2);
    assert_eq!(stats.refusals.get(RefusalReason::BadFrame), 7, "{stats:?}");
    assert_eq!(stats.refusals.get(RefusalReason::WrongRecipient), 1);
    expect_quiet(&mut b_rx, Duration::from_millis(50), |_| false).await;

    // Still serving.
    let (a, _a_rx) = start(1, &ca).await;
    a.set_peer(2, addr);
    a.send(heartbeat(1, 2, 42));
    assert_eq!(expect_event(&mut b_rx, raft_msg).await, heartbeat(1, 2, 42));
}

/// TLS as `credentials`, nothing more: the raw stream.
async fn hello_client_raw(
    addr: SocketAddr,
    credentials: &Credentials,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = credentials_config(credentials);
    let stream = TcpStream::connect(addr).await.expect("connect");
    let name = tls::name_to_dial(None).expect("name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .expect("TLS")
}

#[tokio::test]
async fn handshake_timeout_closes_silent_connections() {
    let ca = TestCa::new();
    let config = TransportConfig {
        handshake_timeout: Duration::from_millis(100),
        ..fast_config()
    };
    let (b, _b_rx) = start_at(loopback(), 2, &ca, config).await;
    let mut s = TcpStream::connect(b.local_addr()).await.expect("connect");
    assert!(closes(&mut s).await);
    // TLS done, no Hello.
    let mut f = hello_client_raw(b.local_addr(), &ca.creds(1)).await;
    assert!(closes(&mut f).await);
    assert_eq!(b.stats().refused_connections, 2);
    assert_eq!(b.stats().refusals.get(RefusalReason::HandshakeTimeout), 2);
}

#[tokio::test]
async fn idle_connections_close() {
    let ca = TestCa::new();
    let config = TransportConfig {
        idle_timeout: Duration::from_millis(200),
        ..fast_config()
    };
    let (b, mut b_rx) = start_at(loopback(), 2, &ca, config).await;
    let mut f = raw_client(b.local_addr(), &ca.creds(1)).await;
    send_raft(&mut f, &heartbeat(1, 2, 1)).await;
    expect_event(&mut b_rx, raft_msg).await;
    let started = Instant::now();
    assert!(closes(f.get_mut()).await);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(b.stats().refusals.get(RefusalReason::IdleTimeout), 1);
}

#[tokio::test]
async fn connections_per_source_are_capped() {
    let ca = TestCa::new();
    let config = TransportConfig {
        max_per_source: 3,
        ..fast_config()
    };
    let (b, mut b_rx) = start_at(loopback(), 2, &ca, config).await;
    let addr = b.local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut fourth = TcpStream::connect(addr).await.expect("connect");
    assert!(closes(&mut fourth).await);
    assert_eq!(b.stats().refused_connections, 1);
    assert_eq!(b.stats().refusals.get(RefusalReason::SourceLimit), 1);
    // Freed slots are usable again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut f = raw_client(addr, &ca.creds(1)).await;
    send_raft(&mut f, &heartbeat(1, 2, 3)).await;
    assert_eq!(expect_event(&mut b_rx, raft_msg).await.commit, 3);
}

#[tokio::test]
async fn a_member_cannot_send_an_ordinary_message_of_a_snapshots_size() {
    let ca = TestCa::new();
    let (b, mut b_rx) = start(2, &ca).await;
    let addr = b.local_addr();
    // A plain raft message's header one byte over its cap: closed on the header.
    let mut f = raw_client(addr, &ca.creds(1)).await;
    send_header(&mut f, Kind::Raft, RAFT_MAX_FRAME + 1).await;
    assert!(closes(f.get_mut()).await);
    assert_eq!(b.stats().refusals.get(RefusalReason::FrameTooBig), 1);
    // A snapshot of that size is a snapshot's right.
    let mut f = raw_client(addr, &ca.creds(1)).await;
    let snap = snapshot(1, 2, RAFT_MAX_FRAME + 1);
    send_raft(&mut f, &snap).await;
    assert_eq!(expect_event(&mut b_rx, raft_msg).await, snap);
    // And the sender does not send a plain message over its cap: it reports it undeliverable.
    let (a, mut a_rx) = start(1, &ca).await;
    a.set_peer(2, addr);
    let mut big = heartbeat(1, 2, 1);
    big.set_context(vec![0u8; RAFT_MAX_FRAME].into());
    a.send(big);
    assert_eq!(expect_event(&mut a_rx, unreachable_id).await, 2);
    a.send(heartbeat(1, 2, 2));
    assert_eq!(expect_event(&mut b_rx, raft_msg).await.commit, 2);
}
