use super::*;

fn token(byte: u8) -> ClusterToken {
    ClusterToken::from_bytes([byte; TOKEN_LEN])
}

fn framed<T: AsyncRead + AsyncWrite>(io: T) -> Framed<T, LengthDelimitedCodec> {
    Framed::new(io, LengthDelimitedCodec::new())
}

#[test]
fn token_round_trip() {
    let t = ClusterToken::generate().expect("urandom");
    let s = t.to_string();
    assert!(s.starts_with("vxnet-"));
    assert_eq!(s.len(), 6 + 64);
    assert_eq!(s.parse::<ClusterToken>(), Ok(t.clone()));
    assert_eq!(
        format!("  {}\n", s.to_uppercase().replace("VXNET-", "vxnet-")).parse(),
        Ok(t)
    );
    assert_ne!(
        ClusterToken::generate().expect("urandom"),
        ClusterToken::generate().expect("urandom")
    );
}

#[test]
fn token_debug_hides_secret() {
    assert_eq!(format!("{:?}", token(0xab)), "ClusterToken(..)");
}

#[test]
fn malformed_tokens() {
    let digits = "0".repeat(64);
    assert_eq!(
        digits.parse::<ClusterToken>(),
        Err(TokenError::MissingPrefix)
    );
    assert_eq!(
        format!("SWMTKN-{digits}").parse::<ClusterToken>(),
        Err(TokenError::MissingPrefix)
    );
    assert_eq!(
        "vxnet-abc".parse::<ClusterToken>(),
        Err(TokenError::Length(3))
    );
    assert_eq!(
        format!("vxnet-{digits}0").parse::<ClusterToken>(),
        Err(TokenError::Length(65))
    );
    assert_eq!(
        format!("vxnet-{}g", &digits[1..]).parse::<ClusterToken>(),
        Err(TokenError::NotHex('g'))
    );
    assert_eq!(
        "vxnet-é".parse::<ClusterToken>(),
        Err(TokenError::NotHex('é'))
    );
    assert_eq!(
        TokenError::Length(3).to_string(),
        "a cluster token has 64 hex digits after \"vxnet-\", but this one has 3"
    );
}

// Pins the wire format: computed independently with Python's hmac module.
#[test]
fn proofs_match_fixture() {
    let t: ClusterToken = format!("vxnet-{}", "01".repeat(32))
        .parse()
        .expect("valid token");
    let nonce_s = [0x11u8; NONCE_LEN];
    let nonce_c = [0x22u8; NONCE_LEN];
    assert_eq!(
        hex(&client_proof(&t, &nonce_s, &nonce_c, 7)),
        CLIENT_FIXTURE
    );
    assert_eq!(hex(&server_proof(&t, &nonce_c, &nonce_s)), SERVER_FIXTURE);
}

const CLIENT_FIXTURE: &str = "209fd46c33d6d46b75f7e236d51b5b1986dbd4e7ffbd8b0b2f86c07257633226";
const SERVER_FIXTURE: &str = "e937de9f0b6215965806d1211f611360ff72817fe2d482d919a32c614fd48b9e";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn handshake_succeeds_with_same_token() {
    let (a, b) = tokio::io::duplex(4096);
    let (mut a, mut b) = (framed(a), framed(b));
    let t = token(1);
    let (server, client) = tokio::join!(
        server_handshake(&mut a, &t),
        client_handshake(&mut b, 42, &t)
    );
    assert_eq!(server.expect("server accepts"), 42);
    client.expect("client accepts");
}

#[tokio::test]
async fn server_refuses_wrong_token() {
    let (a, b) = tokio::io::duplex(4096);
    let (mut a, mut b) = (framed(a), framed(b));
    let other = token(2);
    let server = async move {
        let r = server_handshake(&mut a, &token(1)).await;
        drop(a); // the transport closes the connection on failure
        r
    };
    let (server, client) = tokio::join!(server, client_handshake(&mut b, 42, &other));
    assert!(
        matches!(server, Err(HandshakeError::BadProof)),
        "{server:?}"
    );
    assert!(matches!(client, Err(HandshakeError::Refused)), "{client:?}");
}

#[tokio::test]
async fn client_refuses_server_without_token() {
    let (a, b) = tokio::io::duplex(4096);
    let (mut a, mut b) = (framed(a), framed(b));
    // A server that skips the check and answers with a proof made from another token.
    let server = async move {
        let nonce_s = [5u8; NONCE_LEN];
        let challenge = AuthChallenge {
            nonce: nonce_s.to_vec(),
        };
        a.send(Bytes::from(challenge.encode_to_vec()))
            .await
            .expect("send challenge");
        let response: AuthResponse = recv(&mut a, HandshakeError::Closed)
            .await
            .expect("response");
        let confirm = AuthConfirm {
            mac: server_proof(&token(3), &response.nonce, &nonce_s),
        };
        a.send(Bytes::from(confirm.encode_to_vec()))
            .await
            .expect("send confirm");
    };
    let t = token(1);
    let (_, client) = tokio::join!(server, client_handshake(&mut b, 42, &t));
    assert!(
        matches!(client, Err(HandshakeError::BadProof)),
        "{client:?}"
    );
}

#[tokio::test]
async fn malformed_handshake_messages() {
    let (a, b) = tokio::io::duplex(4096);
    let (mut a, mut b) = (framed(a), framed(b));
    let bad_client = async move {
        let _: AuthChallenge = recv(&mut b, HandshakeError::Closed)
            .await
            .expect("challenge");
        // A short nonce.
        let response = AuthResponse {
            raft_id: 1,
            nonce: vec![1, 2, 3],
            mac: vec![0; 32],
        };
        b.send(Bytes::from(response.encode_to_vec()))
            .await
            .expect("send");
    };
    let t = token(1);
    let (server, _) = tokio::join!(server_handshake(&mut a, &t), bad_client);
    assert!(
        matches!(server, Err(HandshakeError::Malformed(_))),
        "{server:?}"
    );

    let (a, b) = tokio::io::duplex(4096);
    let (mut a, mut b) = (framed(a), framed(b));
    a.send(Bytes::from_static(&[0xff, 0xff, 0xff]))
        .await
        .expect("send garbage");
    let client = client_handshake(&mut b, 1, &token(1)).await;
    assert!(
        matches!(client, Err(HandshakeError::Malformed(_))),
        "{client:?}"
    );
}
