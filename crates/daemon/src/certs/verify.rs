//! Mutual TLS for berth's remote listeners: a client presents a
//! certificate signed by the CA (checked by rustls' WebPKI verifier) that is
//! not revoked, or none and then must sign in as the web UI's administrator. The revoked set is shared and re-read on every `berth certs
//! revoke`, so a revoked client is refused from its next handshake on, with
//! no restart.

use super::{fingerprint, CertError, CertsDir};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// SHA-256 fingerprints of the revoked client certificates.
pub type Revoked = Arc<RwLock<BTreeSet<String>>>;

#[derive(Debug)]
struct NotRevoked {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Revoked,
}

impl ClientCertVerifier for NotRevoked {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// A browser without a certificate may connect: it reaches only the
    /// web UI's page and sign-in until it signs in (berth_web's guard).
    /// A certificate that is presented must still verify.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let print = fingerprint::<sha2::Sha256>(end_entity.as_ref());
        if self.revoked.read().unwrap_or_else(|e| e.into_inner()).contains(&print) {
            tracing::warn!(certificate = %print, "a revoked client certificate was refused");
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS 1.2+ with the server certificate; client certificates are asked for
/// and verified when presented.
pub fn server_config(certs: &CertsDir, revoked: Revoked) -> Result<rustls::ServerConfig, CertError> {
    let (chain, key) = certs.server()?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs.ca()? {
        roots
            .add(CertificateDer::from(ca))
            .map_err(|e| CertError::NotCertificate { what: "ca.crt", reason: e.to_string() })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| CertError::NotCertificate { what: "ca.crt", reason: e.to_string() })?;
    let verifier = Arc::new(NotRevoked { inner, revoked });
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CertError::Generate(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.into_iter().map(CertificateDer::from).collect(), PrivateKeyDer::Pkcs8(key.into()))
        .map_err(|e| CertError::BadKey(e.to_string()))
}
