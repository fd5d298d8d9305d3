use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

fn member(ca: &ClusterCa, id: u64) -> ClusterTls {
    let again = ClusterCa::from_pem(ca.cert_pem(), &ca.key_pem()).expect("CA from PEM");
    assert_eq!(again.fingerprint(), ca.fingerprint());
    let (key_pem, public_key) = generate_host_key().expect("key");
    assert_eq!(public_key_of(&key_pem).expect("public key"), public_key);
    let cert = ca.issue(id, &public_key).expect("issue");
    ClusterTls::new(id, again, cert, &key_pem).expect("identity")
}

/// Runs one TLS handshake over an in-memory pipe, and a byte each way; the server side's
/// client certificate, if any.
async fn handshake(
    server: &ClusterTls,
    client: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<Option<CertificateDer<'static>>, String> {
    let (c, s) = tokio::io::duplex(1 << 16);
    let acceptor = TlsAcceptor::from(server.server_config());
    let server_side = tokio::spawn(async move {
        let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        tls.write_all(&byte).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(
            tls.get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first().cloned()),
        )
    });
    let client_side = async {
        let mut tls = TlsConnector::from(client)
            .connect(name, c)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"x").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let client_result = client_side.await;
    let server_result = server_side.await.expect("server task");
    client_result?;
    server_result
}

#[tokio::test]
async fn members_authenticate_each_other_by_raft_id() {
    let ca = ClusterCa::generate().expect("CA");
    let (a, b) = (member(&ca, 1), member(&ca, 2));
    let cert = handshake(&b, a.client_config(), name_to_dial(Some(2)).expect("name"))
        .await
        .expect("member to member")
        .expect("a client certificate");
    assert!(check_client_id(&cert, 1));
    assert!(!check_client_id(&cert, 2));
    // Any member answers to the member name.
    handshake(&b, a.client_config(), name_to_dial(None).expect("name"))
        .await
        .expect("member name");
    // b is not raft id 3.
    let err = handshake(&b, a.client_config(), name_to_dial(Some(3)).expect("name"))
        .await
        .expect_err("wrong id");
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn another_clusters_member_is_refused_both_ways() {
    let (ca1, ca2) = (
        ClusterCa::generate().expect("CA"),
        ClusterCa::generate().expect("CA"),
    );
    let (a, b) = (member(&ca1, 1), member(&ca2, 2));
    assert!(
        handshake(&b, a.client_config(), name_to_dial(None).expect("name"))
            .await
            .is_err()
    );
    assert!(
        handshake(&a, b.client_config(), name_to_dial(None).expect("name"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_joiner_pins_the_ca_by_fingerprint() {
    let ca = ClusterCa::generate().expect("CA");
    let b = member(&ca, 2);
    let joiner = joiner_client_config(ca.fingerprint()).expect("config");
    let cert = handshake(&b, joiner, name_to_dial(None).expect("name"))
        .await
        .expect("pinned CA");
    assert!(cert.is_none(), "a joiner has no certificate");

    let mut wrong = ca.fingerprint();
    wrong[0] ^= 1;
    let joiner = joiner_client_config(wrong).expect("config");
    let err = handshake(&b, joiner, name_to_dial(None).expect("name"))
        .await
        .expect_err("another CA");
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn only_p256_public_keys_are_certified() {
    let ca = ClusterCa::generate().expect("CA");
    assert!(matches!(
        ca.issue(1, &[4; 64]),
        Err(TlsError::PublicKey(64))
    ));
    assert!(matches!(
        ca.issue(1, &[3; 65]),
        Err(TlsError::PublicKey(65))
    ));
}
