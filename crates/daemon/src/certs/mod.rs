//! The certificates directory (VIC appliance layout, seed 001 "Security"):
//! `cert_gen_type` (self-signed | custom), `ca.crt`, `ca.key`, `ca.srl`,
//! `server.csr`, `server.crt`, `server.key`, `extfile.cnf` (the SANs), and
//! berth's `clients.json` (the client certificates it issued, and which are
//! revoked). Self-signed certificates are made at start when files are
//! missing, when `cert_gen_type` says otherwise, or when the server
//! certificate's CN is not the hostname or its addresses are not the
//! listen addresses. Keys are 0600 and every file is written atomically.
//! rcgen makes certificates, x509-parser reads them; never the openssl command.

pub mod api;
pub mod pem;
pub mod verify;

pub use crate::services::now_secs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub const SELF_SIGNED: &str = "self-signed";
pub const CUSTOM: &str = "custom";
/// A certificate expiring sooner is warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 60;
const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 825;
const CLIENT_DAYS: i64 = 825;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pem(#[from] pem::PemError),
    #[error("{what} is not a readable X.509 certificate: {reason}")]
    NotCertificate { what: &'static str, reason: String },
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    #[error("the private key cannot be used: {0}")]
    BadKey(String),
    #[error("the certificate is not signed by the given CA")]
    NotSignedByCa,
    #[error("the certificate expired on {0}")]
    Expired(String),
    #[error("the certificate is not valid before {0}")]
    NotYetValid(String),
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error("the CA's key is not here (custom certificates): issue client certificates with your own CA")]
    NoCaKey,
    #[error("a client named {0:?} has a certificate already; revoke it first")]
    ClientExists(String),
    #[error("no client certificate named {0:?}")]
    NoSuchClient(String),
    #[error("client names are 1 to 64 letters, digits, '.', '_' or '-', not {0:?}")]
    BadClientName(String),
}

impl CertError {
    pub fn kind(&self) -> berth_core::ErrorKind {
        use berth_core::ErrorKind;
        match self {
            CertError::Io { .. } | CertError::Generate(_) => ErrorKind::Internal,
            CertError::ClientExists(_) => ErrorKind::Conflict,
            CertError::NoSuchClient(_) => ErrorKind::NotFound,
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// What `berth certs show` says of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    /// Seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub sha256: String,
    pub sha1: String,
}

/// A client certificate berth issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedClient {
    pub name: String,
    pub sha256: String,
    pub not_after: i64,
    pub revoked: bool,
}

pub struct CertsDir {
    pub dir: PathBuf,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CertError + 'a {
    move |source| CertError::Io { what, path: path.to_owned(), source }
}

pub fn fingerprint<D: sha2::Digest>(der: &[u8]) -> String {
    D::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn parse<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, CertError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CertError::NotCertificate { what, reason: e.to_string() })
}

pub fn summary(der: &[u8], what: &'static str) -> Result<CertSummary, CertError> {
    let cert = parse(der, what)?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                GeneralName::IPAddress(ip) => {
                    if let Some(ip) = ip_of(ip) {
                        sans.push(format!("IP:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        sha256: fingerprint::<sha2::Sha256>(der),
        sha1: fingerprint::<sha1::Sha1>(der),
    })
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned)
}

fn ips_of(cert: &X509Certificate<'_>) -> BTreeSet<IpAddr> {
    let mut ips = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            if let GeneralName::IPAddress(ip) = name {
                ips.extend(ip_of(ip));
            }
        }
    }
    ips
}

fn offset(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

fn generate(e: rcgen::Error) -> CertError {
    CertError::Generate(e.to_string())
}

/// The key of a certificate matches the private key.
fn key_matches(cert_der: &[u8], key: &rcgen::KeyPair) -> Result<bool, CertError> {
    let cert = parse(cert_der, "the certificate")?;
    Ok(cert.tbs_certificate.subject_pki.raw == rcgen::PublicKeyData::subject_public_key_info(key).as_slice())
}

impl CertsDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<String>, CertError> {
        let path = self.path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    fn write(&self, name: &str, contents: &[u8], mode: u32) -> Result<(), CertError> {
        let path = self.path(name);
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        berth_fs::atomic_write_mode(&path, contents, mode).map_err(|e| CertError::Io {
            what: "write",
            path: path.clone(),
            source: std::io::Error::other(e),
        })
    }

    pub fn kind(&self) -> Result<Option<String>, CertError> {
        Ok(self.read("cert_gen_type")?.map(|t| t.trim().to_owned()))
    }

    /// Makes (or remakes) the self-signed CA and server certificate where
    /// needed; returns what was done, for the log. Custom certificates are
    /// never replaced.
    pub fn ensure(&self, hostname: &str, ips: &BTreeSet<IpAddr>) -> Result<Option<String>, CertError> {
        let kind = self.kind()?;
        if kind.as_deref() == Some(CUSTOM) {
            self.server()?;
            return Ok(None);
        }
        let reason = match (kind.as_deref(), self.read("server.crt")?, self.read("ca.key")?) {
            (Some(SELF_SIGNED), Some(server), Some(_)) => {
                let der = pem::certificates(&server, "server.crt")?.into_iter().next().unwrap_or_default();
                let cert = parse(&der, "server.crt")?;
                if common_name(&cert).as_deref() != Some(hostname) {
                    Some(format!("its CN is not the hostname {hostname}"))
                } else if &ips_of(&cert) != ips {
                    Some("its addresses are not the listen addresses".to_owned())
                } else if cert.validity().not_after.timestamp() - now_secs() < EXPIRY_WARNING_DAYS * 86_400 {
                    Some("it expires within 60 days".to_owned())
                } else {
                    None
                }
            }
            (Some(SELF_SIGNED) | None, _, _) => Some("files are missing".to_owned()),
            (Some(other), _, _) => Some(format!("cert_gen_type was {other:?}")),
        };
        let Some(reason) = reason else {
            return Ok(None);
        };
        if self.read("ca.key")?.is_none() || self.read("ca.crt")?.is_none() || kind.as_deref() != Some(SELF_SIGNED) {
            self.make_ca(hostname)?;
        }
        self.make_server(hostname, ips)?;
        self.write("cert_gen_type", format!("{SELF_SIGNED}\n").as_bytes(), 0o644)?;
        Ok(Some(format!("made a self-signed server certificate for {hostname} ({reason})")))
    }

    fn make_ca(&self, hostname: &str) -> Result<(), CertError> {
        let key = rcgen::KeyPair::generate().map_err(generate)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("berth CA {hostname}"));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        params.not_before = offset(-1);
        params.not_after = offset(CA_DAYS);
        let cert = params.self_signed(&key).map_err(generate)?;
        self.write("ca.key", key.serialize_pem().as_bytes(), 0o600)?;
        self.write("ca.crt", cert.pem().as_bytes(), 0o644)?;
        self.write("ca.srl", b"01\n", 0o644)?;
        // Clients of an old CA are not clients of this one.
        self.write("clients.json", b"[]\n", 0o600)?;
        Ok(())
    }

    /// The CA as an issuer (self-signed certificates only).
    fn issuer(&self) -> Result<rcgen::Issuer<'static, rcgen::KeyPair>, CertError> {
        let (Some(ca), Some(key)) = (self.read("ca.crt")?, self.read("ca.key")?) else {
            return Err(CertError::NoCaKey);
        };
        let key = rcgen::KeyPair::from_pem(&key).map_err(|e| CertError::BadKey(e.to_string()))?;
        rcgen::Issuer::from_ca_cert_pem(&ca, key).map_err(generate)
    }

    fn next_serial(&self) -> Result<u64, CertError> {
        let current = self.read("ca.srl")?.and_then(|s| u64::from_str_radix(s.trim(), 16).ok()).unwrap_or(1);
        self.write("ca.srl", format!("{:02X}\n", current + 1).as_bytes(), 0o644)?;
        Ok(current + 1)
    }

    fn make_server(&self, hostname: &str, ips: &BTreeSet<IpAddr>) -> Result<(), CertError> {
        let issuer = self.issuer()?;
        let key = rcgen::KeyPair::generate().map_err(generate)?;
        let mut names = vec![hostname.to_owned(), "localhost".to_owned()];
        names.extend(ips.iter().map(IpAddr::to_string));
        let mut params = rcgen::CertificateParams::new(names.clone()).map_err(generate)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, hostname);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = offset(-1);
        params.not_after = offset(SERVER_DAYS);
        params.serial_number = Some(rcgen::SerialNumber::from(self.next_serial()?));
        // The CSR carries the subject and names (validity and serial are the CA's to set).
        let mut request = rcgen::CertificateParams::new(names).map_err(generate)?;
        request.distinguished_name.push(rcgen::DnType::CommonName, hostname);
        let csr = request.serialize_request(&key).map_err(generate)?;
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        let sans: Vec<String> = std::iter::once(format!("DNS:{hostname}"))
            .chain(std::iter::once("DNS:localhost".to_owned()))
            .chain(ips.iter().map(|ip| format!("IP:{ip}")))
            .collect();
        self.write("extfile.cnf", format!("subjectAltName = {}\n", sans.join(",")).as_bytes(), 0o644)?;
        self.write("server.csr", csr.pem().map_err(generate)?.as_bytes(), 0o644)?;
        self.write("server.key", key.serialize_pem().as_bytes(), 0o600)?;
        self.write("server.crt", cert.pem().as_bytes(), 0o644)?;
        Ok(())
    }

    /// The server's certificate chain and key (PKCS#8 DER).
    pub fn server(&self) -> Result<(Vec<Vec<u8>>, Vec<u8>), CertError> {
        let cert = self
            .read("server.crt")?
            .ok_or(CertError::NotCertificate { what: "server.crt", reason: "it is missing".into() })?;
        let key = self.read("server.key")?.ok_or(CertError::BadKey("server.key is missing".into()))?;
        Ok((pem::certificates(&cert, "server.crt")?, pem::private_key_pkcs8(&key)?))
    }

    /// The CA certificates client certificates are checked against.
    pub fn ca(&self) -> Result<Vec<Vec<u8>>, CertError> {
        let ca =
            self.read("ca.crt")?.ok_or(CertError::NotCertificate { what: "ca.crt", reason: "it is missing".into() })?;
        Ok(pem::certificates(&ca, "ca.crt")?)
    }

    pub fn ca_pem(&self) -> Result<String, CertError> {
        self.read("ca.crt")?.ok_or(CertError::NotCertificate { what: "ca.crt", reason: "it is missing".into() })
    }

    /// Installs a user's certificate: checked whole (PEM, key form, match,
    /// CA signature, validity) before anything is written.
    pub fn install(&self, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<CertSummary, CertError> {
        let chain = pem::certificates(cert_pem, "the certificate")?;
        let leaf = chain
            .first()
            .ok_or(CertError::NotCertificate { what: "the certificate", reason: "no CERTIFICATE block".into() })?;
        let ca = pem::certificates(ca_pem, "the CA certificate")?;
        let ca_der = ca
            .first()
            .ok_or(CertError::NotCertificate { what: "the CA certificate", reason: "no CERTIFICATE block".into() })?;
        let key_der = pem::private_key_pkcs8(key_pem)?;
        let key = rcgen::KeyPair::try_from(key_der.as_slice()).map_err(|e| CertError::BadKey(e.to_string()))?;
        if !key_matches(leaf, &key)? {
            return Err(CertError::KeyMismatch);
        }
        let cert = parse(leaf, "the certificate")?;
        let ca_cert = parse(ca_der, "the CA certificate")?;
        if cert.verify_signature(Some(ca_cert.public_key())).is_err() {
            return Err(CertError::NotSignedByCa);
        }
        let now = now_secs();
        if cert.validity().not_after.timestamp() < now {
            return Err(CertError::Expired(cert.validity().not_after.to_string()));
        }
        if cert.validity().not_before.timestamp() > now {
            return Err(CertError::NotYetValid(cert.validity().not_before.to_string()));
        }
        let summary = summary(leaf, "the certificate")?;
        let chain_pem: String = chain.iter().map(|c| pem::encode("CERTIFICATE", c)).collect();
        self.write("server.key", pem::encode("PRIVATE KEY", &key_der).as_bytes(), 0o600)?;
        self.write("server.crt", chain_pem.as_bytes(), 0o644)?;
        self.write("ca.crt", pem::encode("CERTIFICATE", ca_der).as_bytes(), 0o644)?;
        // The old CA's key cannot sign for the new CA.
        let _ = std::fs::remove_file(self.path("ca.key"));
        self.write("extfile.cnf", format!("subjectAltName = {}\n", summary.sans.join(",")).as_bytes(), 0o644)?;
        self.write("cert_gen_type", format!("{CUSTOM}\n").as_bytes(), 0o644)?;
        Ok(summary)
    }

    pub fn clients(&self) -> Result<Vec<IssuedClient>, CertError> {
        let Some(text) = self.read("clients.json")? else {
            return Ok(Vec::new());
        };
        serde_json::from_str(&text).map_err(|e| CertError::Io {
            what: "read",
            path: self.path("clients.json"),
            source: std::io::Error::other(e),
        })
    }

    fn save_clients(&self, clients: &[IssuedClient]) -> Result<(), CertError> {
        let text = serde_json::to_vec_pretty(clients).unwrap_or_default();
        self.write("clients.json", &text, 0o600)
    }

    /// Issues a client certificate signed by the CA: (cert PEM, key PEM).
    pub fn issue_client(&self, name: &str) -> Result<(String, String, IssuedClient), CertError> {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(CertError::BadClientName(name.to_owned()));
        }
        let mut clients = self.clients()?;
        if clients.iter().any(|c| c.name == name && !c.revoked) {
            return Err(CertError::ClientExists(name.to_owned()));
        }
        let issuer = self.issuer()?;
        let key = rcgen::KeyPair::generate().map_err(generate)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = offset(-1);
        params.not_after = offset(CLIENT_DAYS);
        params.serial_number = Some(rcgen::SerialNumber::from(self.next_serial()?));
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        let issued = IssuedClient {
            name: name.to_owned(),
            sha256: fingerprint::<sha2::Sha256>(cert.der()),
            not_after: offset(CLIENT_DAYS).unix_timestamp(),
            revoked: false,
        };
        clients.retain(|c| c.name != name);
        clients.push(issued.clone());
        self.save_clients(&clients)?;
        Ok((cert.pem(), key.serialize_pem(), issued))
    }

    /// Revokes a client: its certificate is refused from now on.
    pub fn revoke(&self, name: &str) -> Result<IssuedClient, CertError> {
        let mut clients = self.clients()?;
        let client =
            clients.iter_mut().find(|c| c.name == name).ok_or_else(|| CertError::NoSuchClient(name.to_owned()))?;
        client.revoked = true;
        let revoked = client.clone();
        self.save_clients(&clients)?;
        Ok(revoked)
    }

    /// SHA-256 fingerprints (as written by [`fingerprint`]) of revoked clients.
    pub fn revoked(&self) -> Result<BTreeSet<String>, CertError> {
        Ok(self.clients()?.into_iter().filter(|c| c.revoked).map(|c| c.sha256).collect())
    }
}

#[cfg(test)]
mod tests;
