//! The cluster's PKI and the TLS settings of the cluster transport.
//!
//! Rules a caller relies on:
//!
//! - **The CA.** A cluster has one CA: an ECDSA P-256 key and a self-signed certificate
//!   (subject `vxnet cluster CA`, no expiry), made when the cluster is born (first start on an
//!   empty data dir, `leave`, `--force-new-cluster`). Every member holds the CA's key (it gets
//!   it when it joins, inside mutual TLS), so whichever member leads can admit a joiner. Its
//!   fingerprint is the SHA-256 of the certificate's DER ([`ClusterCa::fingerprint`]), the
//!   first part of the join token.
//! - **Host certificates.** A host's certificate is issued by the CA for the host's own
//!   ECDSA P-256 public key (the private key never leaves the host) and names the host's raft
//!   id: its subject alternative names are [`MEMBER_NAME`] and [`raft_name`] of the id, and it
//!   allows both server and client authentication. The CA signs nothing else.
//! - **Connections** are TLS 1.3 only (rustls with the *ring* provider). A member presents its
//!   certificate and the CA as chain, as server and as client. A client dialing a given peer
//!   asks for that peer's [`raft_name`], so a certificate of another member does not pass for
//!   it; a client that wants any member (a join, leave or reachability request) asks for
//!   [`MEMBER_NAME`]. The server accepts clients without a certificate (joiners: the transport
//!   lets them send a join request only) and checks a client certificate's chain against the
//!   CA; [`check_client_id`] checks that it names the raft id the client claims.
//! - **Joiners** have no CA yet: [`joiner_client_config`] accepts a server only if the chain it
//!   presents contains the CA whose fingerprint the token carries, and the server's
//!   certificate is signed by that CA for [`MEMBER_NAME`]. Anything else fails the TLS handshake
//!   before the joiner has sent a byte of its own data.

use std::fmt;
use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

/// The name every member's certificate carries.
pub const MEMBER_NAME: &str = "member.vxnet";
/// Bytes of a raw (uncompressed) ECDSA P-256 public key.
pub const PUBLIC_KEY_LEN: usize = 65;
const CA_SUBJECT: &str = "vxnet cluster CA";

/// The name a host's certificate carries for its raft id.
pub fn raft_name(raft_id: u64) -> String {
    format!("{raft_id}.raft.vxnet")
}

fn server_name(name: String) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name).map_err(|_| TlsError::Name)
}

/// The name a client asks for: that of `peer`, or of any member.
pub fn name_to_dial(peer: Option<u64>) -> Result<ServerName<'static>, TlsError> {
    server_name(peer.map_or_else(|| MEMBER_NAME.to_owned(), raft_name))
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate or sign a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot set up TLS client verification: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("a certificate in PEM does not parse: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("a host public key is {0} bytes, not an uncompressed P-256 point of 65")]
    PublicKey(usize),
    #[error("a certificate name does not parse")]
    Name,
    #[error("the CA is not the one the join token names")]
    WrongCa,
}

// rustls marks its *ring* provider deprecated because it has no post-quantum key exchange;
// the alternative (aws-lc-rs) needs a C toolchain and cmake to build. X25519 and P-256 it is.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The parameters of the CA certificate. The same every time, so that an [`Issuer`] made from
/// them and the CA key signs as the stored certificate's subject.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_SUBJECT);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The cluster CA: its certificate and key.
pub struct ClusterCa {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key: KeyPair,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterCa({})", super::token::hex(&self.fingerprint()))
    }
}

impl ClusterCa {
    /// A new CA (a new cluster).
    pub fn generate() -> Result<ClusterCa, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = ca_params().self_signed(&key)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key,
        })
    }

    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, TlsError> {
        Ok(ClusterCa {
            cert: CertificateDer::from_pem_slice(cert_pem.as_bytes())?,
            cert_pem: cert_pem.to_owned(),
            key: KeyPair::from_pem(key_pem)?,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// SHA-256 of the certificate's DER: what a join token pins.
    pub fn fingerprint(&self) -> [u8; 32] {
        fingerprint(&self.cert)
    }

    /// A host certificate for `raft_id` and the raw P-256 `public_key` (see the module docs).
    pub fn issue(
        &self,
        raft_id: u64,
        public_key: &[u8],
    ) -> Result<CertificateDer<'static>, TlsError> {
        if public_key.len() != PUBLIC_KEY_LEN || public_key[0] != 0x04 {
            return Err(TlsError::PublicKey(public_key.len()));
        }
        let mut params = CertificateParams::new(vec![MEMBER_NAME.to_owned(), raft_name(raft_id)])?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("vxnet host {raft_id}"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let serial: [u8; 16] = crate::sys::random_bytes().map_err(rcgen_io)?;
        params.serial_number = Some(serial.to_vec().into());
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&RawPublicKey(public_key), &issuer)?;
        Ok(cert.der().clone())
    }
}

fn rcgen_io(_: std::io::Error) -> TlsError {
    TlsError::Rcgen(rcgen::Error::RingUnspecified)
}

pub fn fingerprint(cert: &CertificateDer<'_>) -> [u8; 32] {
    Sha256::digest(cert.as_ref()).into()
}

/// A joiner's public key as it comes in a join request.
struct RawPublicKey<'a>(&'a [u8]);

impl PublicKeyData for RawPublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// A new host key pair: the private key in PKCS#8 PEM, and the raw public key a join request
/// carries.
pub fn generate_host_key() -> Result<(String, Vec<u8>), TlsError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    Ok((key.serialize_pem(), key.public_key_raw().to_vec()))
}

/// The raw public key of a host key in PEM.
pub fn public_key_of(key_pem: &str) -> Result<Vec<u8>, TlsError> {
    Ok(KeyPair::from_pem(key_pem)?.public_key_raw().to_vec())
}

/// Everything a member needs for cluster connections: the CA, its own certificate and key,
/// and the TLS settings made from them.
pub struct ClusterTls {
    pub raft_id: u64,
    ca: ClusterCa,
    cert: CertificateDer<'static>,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterTls({}, {:?})", self.raft_id, self.ca)
    }
}

impl ClusterTls {
    /// `cert` is this host's certificate (DER), `key_pem` its private key.
    pub fn new(
        raft_id: u64,
        ca: ClusterCa,
        cert: CertificateDer<'static>,
        key_pem: &str,
    ) -> Result<ClusterTls, TlsError> {
        let key = KeyPair::from_pem(key_pem)?;
        let key_der = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let chain = vec![cert.clone(), ca.cert.clone()];
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert.clone())?;
        let roots = Arc::new(roots);

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .allow_unauthenticated()
                .build()?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key_der())?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der())?;
        Ok(ClusterTls {
            raft_id,
            ca,
            cert,
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// A CA, and this host's key and certificate from it: a new cluster.
    pub fn generate(raft_id: u64) -> Result<(ClusterTls, String), TlsError> {
        let ca = ClusterCa::generate()?;
        let (key_pem, public_key) = generate_host_key()?;
        let cert = ca.issue(raft_id, &public_key)?;
        Ok((ClusterTls::new(raft_id, ca, cert, &key_pem)?, key_pem))
    }

    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    /// This host's certificate.
    pub fn own_cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}

/// Whether a failed TLS handshake failed over a certificate — the other side's is not of this
/// cluster's CA (or malformed), or the other side refused ours — rather than for want of TLS.
pub fn is_certificate_error(error: &io::Error) -> bool {
    use rustls::AlertDescription as Alert;
    let Some(error) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return false;
    };
    matches!(
        error,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            // A certificate of another CA (same subject) fails on its signature: DecryptError.
            | rustls::Error::AlertReceived(
                Alert::DecryptError
                    | Alert::BadCertificate
                    | Alert::UnsupportedCertificate
                    | Alert::CertificateRevoked
                    | Alert::CertificateExpired
                    | Alert::CertificateUnknown
                    | Alert::UnknownCA
                    | Alert::CertificateRequired
            )
    )
}

/// Whether the end-entity certificate a client presented (already chain-checked against the
/// CA by the handshake) names `raft_id`.
pub fn check_client_id(cert: &CertificateDer<'_>, raft_id: u64) -> bool {
    let Ok(parsed) = ParsedCertificate::try_from(cert) else {
        return false;
    };
    let Ok(name) = server_name(raft_name(raft_id)) else {
        return false;
    };
    verify_server_name(&parsed, &name).is_ok()
}

/// The TLS client settings of a host that is not a member yet: it trusts the CA whose
/// fingerprint is `ca_fingerprint`, found in the chain the server presents.
pub fn joiner_client_config(ca_fingerprint: [u8; 32]) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = PinnedCa {
        fingerprint: ca_fingerprint,
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Trusts the CA with a given fingerprint, taken from the server's own chain.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.fingerprint)
            .ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
