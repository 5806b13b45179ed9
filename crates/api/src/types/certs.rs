//! Wire types of `/v1/certs`: the daemon's certificates and the client
//! certificates of its remote listeners.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One certificate, as `berth certs show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub days_left: i64,
    pub sha256: String,
    pub sha1: String,
}

/// A client certificate the daemon issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientCertInfo {
    pub name: String,
    pub sha256: String,
    pub not_after: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertsView {
    /// `self-signed` or `custom` (the appliance's `cert_gen_type`).
    pub kind: String,
    pub dir: String,
    pub server: CertInfo,
    pub ca: CertInfo,
    /// `tcp://ADDR:PORT` of each mutual-TLS listener.
    pub listen: Vec<String>,
    pub clients: Vec<ClientCertInfo>,
}

/// `POST /v1/certs`: a user's certificate (PEM; one-line PEM is taken).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallCertRequest {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// `POST /v1/certs/clients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertRequest {
    pub name: String,
}

/// A client's bundle: what `berth --host` needs (the CLI writes the files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientBundle {
    pub client: ClientCertInfo,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub listen: Vec<String>,
}
