//! The client side of `/v1` over the daemon's unix socket. One connection per
//! request: a unix socket connects in microseconds and the CLI makes one or
//! two requests per run. Archives are streamed from the client (never read
//! whole into memory), as the `archive` part of a multipart body.

use crate::{
    ApiError, AppView, DaemonInfo, ErrorKind, InstallEvent, InstallRequest, LoginRequest, MigrationStatus,
    RmDeploymentLocation, RmError, RmInstanceQuery, RmOutboxState, RmResourceInstance, RmResourceType,
    RmTransitionAccepted, RmTransitionRequest, RmTransitionStatus, SraConfigCopyRequest, SraConfigState, SraEvent,
    SraExecRequest, SraExecResult, SraImage, SraRunRequest, Uninstalled, UpgradeRequest,
};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

/// An archive the client streams to the daemon.
pub type ArchiveStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the berth daemon at {socket}: {reason} (is `berth daemon` running? set --socket or BERTH_SOCKET)"
    )]
    Unreachable { socket: PathBuf, reason: String },
    #[error(
        "no permission to use the berth daemon's socket {socket}: it is for root and the group it belongs to (ask to be added to that group, or use sudo)"
    )]
    NoPermission { socket: PathBuf },
    #[error("the berth daemon went away during the request: {0}")]
    Gone(String),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("the daemon sent an answer that is not understood: {0}")]
    Protocol(String),
    #[error("cannot read {what}: {reason}")]
    Local { what: String, reason: String },
}

impl ClientError {
    /// The error kind for exit codes; `None` for the client's own failures.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }
}

type RequestBody = UnsyncBoxBody<Bytes, std::io::Error>;

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    /// A remote daemon over mutual TLS instead of the socket.
    remote: Option<Remote>,
}

/// A daemon's mutual-TLS listener: its address, and the TLS client made
/// from the user's bundle (`ca.pem`, `cert.pem`, `key.pem`).
#[derive(Clone)]
pub struct Remote {
    pub address: String,
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("address", &self.address).finish_non_exhaustive()
    }
}

impl Remote {
    /// `host` is `tcp://HOST:PORT`; the PEM texts are the bundle's.
    pub fn new(host: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let address = host.strip_prefix("tcp://").ok_or_else(|| format!("{host:?} is not tcp://HOST:PORT"))?.to_owned();
        let name =
            address.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')).unwrap_or(&address);
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned())
            .map_err(|e| format!("{name:?} is not a host name or address: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.map_err(|e| format!("ca.pem: {e}"))?).map_err(|e| format!("ca.pem: {e}"))?;
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cert.pem: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key.pem: {e}"))?;
        let config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and key: {e}"))?;
        Ok(Self { address, connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)), server_name })
    }
}

fn full(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(value).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// The archive's bytes until `answered` is cancelled.
fn until(archive: ArchiveStream, answered: &tokio_util::sync::CancellationToken) -> ArchiveStream {
    archive.take_until(answered.clone().cancelled_owned()).boxed()
}

/// A `multipart/form-data` body: the request's JSON, then the archive, streamed.
fn multipart(json: Vec<u8>, archive: ArchiveStream) -> (String, RequestBody) {
    let boundary = format!("berth-{:016x}", rand_u64());
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n"
    );
    let middle = format!(
        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"archive\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut prefix = head.into_bytes();
    prefix.extend_from_slice(&json);
    prefix.extend_from_slice(middle.as_bytes());
    let frames = futures::stream::iter([Ok(Bytes::from(prefix))])
        .chain(archive)
        .chain(futures::stream::iter([Ok(Bytes::from(tail))]))
        .map(|chunk| chunk.map(Frame::data));
    (format!("multipart/form-data; boundary={boundary}"), BodyExt::boxed_unsync(StreamBody::new(frames)))
}

/// A boundary unlikely to appear in the archive; not a secret.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish()
}

/// An error with its causes ("connection error: received fatal alert: …").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// An HTTP/1 connection over any stream, driven by its own task.
async fn handshake<S>(stream: S) -> Result<hyper::client::conn::http1::SendRequest<RequestBody>, ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Gone(e.to_string()))?;
    tokio::spawn(connection);
    Ok(sender)
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self { socket: socket.into(), remote: None }
    }

    /// A client of a remote daemon's mutual-TLS listener.
    pub fn remote(remote: Remote) -> Self {
        Self { socket: PathBuf::from(format!("tcp://{}", remote.address)), remote: Some(remote) }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One request over a fresh connection to the socket; any status.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: RequestBody,
        accept: &str,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut sender = match &self.remote {
            None => {
                let stream = UnixStream::connect(&self.socket).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::PermissionDenied => ClientError::NoPermission { socket: self.socket.clone() },
                    _ => ClientError::Unreachable { socket: self.socket.clone(), reason: e.to_string() },
                })?;
                handshake(stream).await?
            }
            Some(remote) => {
                let unreachable = |reason: String| ClientError::Unreachable { socket: self.socket.clone(), reason };
                let stream =
                    tokio::net::TcpStream::connect(&remote.address).await.map_err(|e| unreachable(e.to_string()))?;
                let stream = remote
                    .connector
                    .connect(remote.server_name.clone(), stream)
                    .await
                    .map_err(|e| unreachable(format!("the TLS handshake failed: {e}")))?;
                handshake(stream).await?
            }
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "berth")
            .header("accept", accept)
            .header("content-type", content_type)
            .body(body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender.send_request(request).await.map_err(|e| match &self.remote {
            // With TLS 1.3 a refused client certificate shows only on the
            // first read: say what the daemon's alert said.
            Some(_) => ClientError::Unreachable {
                socket: self.socket.clone(),
                reason: format!("the TLS handshake failed or the connection was refused: {}", chain(&e)),
            },
            None => ClientError::Gone(e.to_string()),
        })
    }

    /// A request of the native API; an error status is its [`ApiError`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: RequestBody,
        accept: &str,
    ) -> Result<Response<Incoming>, ClientError> {
        let response = self.exchange(method, path, content_type, body, accept).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = collect(response).await?;
        Err(serde_json::from_slice::<ApiError>(&bytes)
            .map(ClientError::Api)
            .unwrap_or_else(|_| ClientError::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)))))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let response =
            self.send(method, path, "application/json", full(body.unwrap_or_default()), "application/json").await?;
        let bytes = collect(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn info(&self) -> Result<DaemonInfo, ClientError> {
        self.json(Method::GET, "/v1/info", None).await
    }

    /// The apps; `secrets` shows environment values in their `args`.
    pub async fn list(&self, secrets: bool) -> Result<Vec<AppView>, ClientError> {
        self.json(Method::GET, &format!("/v1/apps?secrets={secrets}"), None).await
    }

    /// The raw JSON of `GET /v1/apps`, for `list --output json` (no re-encoding).
    pub async fn list_raw(&self, secrets: bool) -> Result<Bytes, ClientError> {
        let path = format!("/v1/apps?secrets={secrets}");
        collect(self.send(Method::GET, &path, "application/json", full(Bytes::new()), "application/json").await?).await
    }

    pub async fn show(&self, name: &str, secrets: bool) -> Result<AppView, ClientError> {
        self.json(Method::GET, &format!("{}?secrets={secrets}", app_path(name, "")), None).await
    }

    /// Installs, calling `on_progress` for every progress event; a local
    /// archive is streamed along.
    pub async fn install(
        &self,
        request: &InstallRequest,
        archive: Option<ArchiveStream>,
        on_progress: impl FnMut(&InstallEvent),
    ) -> Result<AppView, ClientError> {
        self.operation("/v1/apps", to_json(request)?, archive, on_progress).await
    }

    pub async fn upgrade(
        &self,
        name: &str,
        request: &UpgradeRequest,
        archive: Option<ArchiveStream>,
        on_progress: impl FnMut(&InstallEvent),
    ) -> Result<AppView, ClientError> {
        self.operation(&app_path(name, "upgrade"), to_json(request)?, archive, on_progress).await
    }

    pub async fn rollback(&self, name: &str, on_progress: impl FnMut(&InstallEvent)) -> Result<AppView, ClientError> {
        self.operation(&app_path(name, "rollback"), Vec::new(), None, on_progress).await
    }

    /// A long operation answered with progress lines, then `done` or `error`.
    async fn operation(
        &self,
        path: &str,
        json: Vec<u8>,
        archive: Option<ArchiveStream>,
        mut on_progress: impl FnMut(&InstallEvent),
    ) -> Result<AppView, ClientError> {
        // Once the answer is in, the rest of an upload is not sent: the daemon
        // reads what is on its way and discards it.
        let answered = tokio_util::sync::CancellationToken::new();
        let (content_type, body) = match archive {
            Some(archive) => multipart(json, until(archive, &answered)),
            None => ("application/json".to_owned(), full(json)),
        };
        let outcome = self
            .streamed(path, &content_type, body, |event: InstallEvent| match event {
                InstallEvent::Done { app } => Some(Ok(*app)),
                InstallEvent::Error { error } => Some(Err(error)),
                progress => {
                    on_progress(&progress);
                    None
                }
            })
            .await;
        answered.cancel();
        outcome
    }

    /// Reads ndjson events until `last` turns one into the outcome. Empty
    /// lines are the daemon's keepalives.
    async fn streamed<E: DeserializeOwned, T>(
        &self,
        path: &str,
        content_type: &str,
        body: RequestBody,
        mut last: impl FnMut(E) -> Option<Result<T, ApiError>>,
    ) -> Result<T, ClientError> {
        let response = self.send(Method::POST, path, content_type, body, "application/x-ndjson").await?;
        let mut lines = ndjson_lines(response);
        while let Some(line) = lines.next().await {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: E = serde_json::from_slice(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(outcome) = last(event) {
                return outcome.map_err(ClientError::Api);
            }
        }
        Err(ClientError::Gone(format!("the answer to {path} ended without a result")))
    }

    pub async fn uninstall(&self, name: &str, keep_data: bool) -> Result<Uninstalled, ClientError> {
        self.json(Method::DELETE, &format!("{}?keep_data={keep_data}", app_path(name, "")), None).await
    }

    /// `verb` is `start`, `stop` or `restart`.
    pub async fn lifecycle(&self, name: &str, verb: &str) -> Result<AppView, ClientError> {
        self.json(Method::POST, &app_path(name, verb), None).await
    }

    /// Cancels the operation running on the app.
    pub async fn cancel(&self, name: &str) -> Result<(), ClientError> {
        self.send(Method::POST, &app_path(name, "cancel"), "application/json", full(Bytes::new()), "application/json")
            .await
            .map(drop)
    }

    pub async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, ClientError>>, ClientError> {
        let mut path = format!("{}?follow={follow}", app_path(name, "logs"));
        if let Some(tail) = tail {
            path.push_str(&format!("&tail={tail}"));
        }
        let response =
            self.send(Method::GET, &path, "application/json", full(Bytes::new()), "application/octet-stream").await?;
        Ok(body_chunks(response))
    }

    /// Loads an SRA image archive, streamed.
    pub async fn sra_load(&self, archive: ArchiveStream, origin: &str) -> Result<SraImage, ClientError> {
        let path = format!("/v1/sra/images?origin={}", encode(origin));
        let answered = tokio_util::sync::CancellationToken::new();
        let frames = until(archive, &answered).map(|chunk| chunk.map(Frame::data));
        let response = self
            .send(
                Method::POST,
                &path,
                "application/octet-stream",
                BodyExt::boxed_unsync(StreamBody::new(frames)),
                "application/json",
            )
            .await;
        answered.cancel();
        let bytes = collect(response?).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn sra_list(&self) -> Result<Vec<SraImage>, ClientError> {
        self.json(Method::GET, "/v1/sra/images", None).await
    }

    pub async fn sra_remove(&self, image: &str, force: bool) -> Result<SraImage, ClientError> {
        self.json(Method::DELETE, &format!("/v1/sra/images/{}?force={force}", encode(image)), None).await
    }

    pub async fn sra_exec(
        &self,
        request: &SraExecRequest,
        on_progress: impl FnMut(Option<u8>),
    ) -> Result<SraExecResult, ClientError> {
        self.sra_streamed("/v1/sra/exec", to_json(request)?, on_progress).await
    }

    pub async fn sra_run(
        &self,
        request: &SraRunRequest,
        on_progress: impl FnMut(Option<u8>),
    ) -> Result<SraExecResult, ClientError> {
        self.sra_streamed("/v1/sra/run", to_json(request)?, on_progress).await
    }

    async fn sra_streamed(
        &self,
        path: &str,
        body: Vec<u8>,
        mut on_progress: impl FnMut(Option<u8>),
    ) -> Result<SraExecResult, ClientError> {
        self.streamed(path, "application/json", full(body), |event: SraEvent| match event {
            SraEvent::Progress { percent } => {
                on_progress(percent);
                None
            }
            SraEvent::Done { result } => Some(Ok(*result)),
            SraEvent::Error { error } => Some(Err(error)),
        })
        .await
    }

    pub async fn sra_config_download(&self, image: &str) -> Result<Bytes, ClientError> {
        let path = format!("/v1/sra/images/{}/config", encode(image));
        collect(self.send(Method::GET, &path, "application/json", full(Bytes::new()), "application/gzip").await?).await
    }

    pub async fn sra_config_upload(&self, image: &str, archive: Vec<u8>) -> Result<SraConfigState, ClientError> {
        let path = format!("/v1/sra/images/{}/config", encode(image));
        let response = self.send(Method::PUT, &path, "application/gzip", full(archive), "application/json").await?;
        let bytes = collect(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn sra_config_copy(&self, from: &str, to: &str) -> Result<SraConfigState, ClientError> {
        let body = to_json(&SraConfigCopyRequest { from: from.to_owned(), to: to.to_owned() })?;
        self.json(Method::POST, "/v1/sra/config/copy", Some(body)).await
    }

    pub async fn sra_config_reset(&self, image: &str) -> Result<SraConfigState, ClientError> {
        self.json(Method::POST, &format!("/v1/sra/images/{}/config/reset", encode(image)), None).await
    }

    pub async fn login(&self, request: &LoginRequest) -> Result<(), ClientError> {
        self.send(Method::POST, "/v1/registries", "application/json", full(to_json(request)?), "application/json")
            .await
            .map(drop)
    }

    pub async fn logout(&self, registry: &str) -> Result<(), ClientError> {
        let path = format!("/v1/registries/{}", encode(registry));
        self.send(Method::DELETE, &path, "application/json", full(Bytes::new()), "application/json").await.map(drop)
    }

    /// `verb` is `export` or `import`; `None` reads the status.
    pub async fn migrate(&self, verb: Option<&str>) -> Result<MigrationStatus, ClientError> {
        match verb {
            Some(verb) => self.json(Method::POST, &format!("/v1/migrate/{verb}"), None).await,
            None => self.json(Method::GET, "/v1/migrate", None).await,
        }
    }

    pub async fn doctor(&self) -> Result<crate::DoctorReport, ClientError> {
        self.json(Method::GET, "/v1/doctor", None).await
    }

    pub async fn rebuild(&self) -> Result<crate::RebuildReport, ClientError> {
        self.json(Method::POST, "/v1/doctor/rebuild", None).await
    }

    pub async fn certs_show(&self) -> Result<crate::CertsView, ClientError> {
        self.json(Method::GET, "/v1/certs", None).await
    }

    pub async fn certs_install(&self, request: &crate::InstallCertRequest) -> Result<crate::CertsView, ClientError> {
        self.json(Method::POST, "/v1/certs", Some(serde_json::to_vec(request).unwrap_or_default())).await
    }

    pub async fn certs_issue_client(&self, name: &str) -> Result<crate::ClientBundle, ClientError> {
        let body = serde_json::to_vec(&crate::ClientCertRequest { name: name.to_owned() }).unwrap_or_default();
        self.json(Method::POST, "/v1/certs/clients", Some(body)).await
    }

    pub async fn certs_clients(&self) -> Result<Vec<crate::ClientCertInfo>, ClientError> {
        self.json(Method::GET, "/v1/certs/clients", None).await
    }

    pub async fn certs_revoke(&self, name: &str) -> Result<crate::ClientCertInfo, ClientError> {
        self.json(Method::DELETE, &format!("/v1/certs/clients/{}", encode(name)), None).await
    }

    pub async fn host_create(&self, request: &crate::HostCreateRequest) -> Result<crate::HostCreated, ClientError> {
        self.json(Method::POST, "/v1/hosts", Some(serde_json::to_vec(request).unwrap_or_default())).await
    }

    pub async fn hosts(&self) -> Result<Vec<crate::HostView>, ClientError> {
        self.json(Method::GET, "/v1/hosts", None).await
    }

    pub async fn host(&self, name: &str) -> Result<crate::HostView, ClientError> {
        self.json(Method::GET, &format!("/v1/hosts/{}", encode(name)), None).await
    }

    pub async fn host_delete(&self, name: &str, force: bool) -> Result<crate::HostDeleted, ClientError> {
        self.json(Method::DELETE, &format!("/v1/hosts/{}?force={force}", encode(name)), None).await
    }

    pub async fn web_status(&self) -> Result<crate::WebStatus, ClientError> {
        self.json(Method::GET, "/v1/web", None).await
    }

    pub async fn web_set_admin(&self, request: &crate::WebAdminRequest) -> Result<crate::WebStatus, ClientError> {
        self.json(Method::PUT, "/v1/web/admin", Some(serde_json::to_vec(request).unwrap_or_default())).await
    }

    pub async fn web_remove_admin(&self) -> Result<crate::WebStatus, ClientError> {
        self.json(Method::DELETE, "/v1/web/admin", None).await
    }

    /// The event stream: stored events after `query.since`, then (with
    /// `follow`) new ones; gaps where events were missed and are gone.
    pub async fn events(
        &self,
        query: &crate::EventsQuery,
    ) -> Result<BoxStream<'static, Result<crate::EventItem, ClientError>>, ClientError> {
        let mut path = format!("/v1/events?follow={}", query.follow);
        if let Some(since) = query.since {
            path.push_str(&format!("&since={since}"));
        }
        if let Some(tail) = query.tail {
            path.push_str(&format!("&tail={tail}"));
        }
        if let Some(kind) = &query.kind {
            path.push_str(&format!("&kind={}", encode(kind)));
        }
        if let Some(name) = &query.name {
            path.push_str(&format!("&name={}", encode(name)));
        }
        let response =
            self.send(Method::GET, &path, "application/json", full(Bytes::new()), "text/event-stream").await?;
        Ok(sse_items(ndjson_lines(response)))
    }

    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.json(Method::GET, "/v1/openapi.json", None).await
    }
}

/// Where the resource manager's API is on the socket (the first of its two prefixes).
const RM: &str = crate::routes::resources::PREFIXES[0];

/// An answer of the resource manager: its JSON as sent (what `--output json`
/// prints) and read.
#[derive(Debug, Clone)]
pub struct RmAnswer<T> {
    pub raw: Bytes,
    pub value: T,
}

/// The kind of a resource manager's error (its body is an [`RmError`], not an
/// [`ApiError`]), by the HTTP status.
fn rm_kind(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::InvalidInput,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        413 => ErrorKind::TooLarge,
        503 => ErrorKind::EngineUnavailable,
        _ => ErrorKind::Internal,
    }
}

/// A refusal of the resource manager as a [`ClientError::Api`]; an
/// [`ApiError`] body (an unknown path outside the API) is taken as it is.
fn rm_error(status: u16, body: &[u8]) -> ClientError {
    if let Ok(error) = serde_json::from_slice::<RmError>(body) {
        return ClientError::Api(ApiError::new(rm_kind(status), error.localized_message));
    }
    serde_json::from_slice::<ApiError>(body).map(ClientError::Api).unwrap_or_else(|_| {
        ClientError::Protocol(format!("HTTP {status}: {}", crate::short(&String::from_utf8_lossy(body))))
    })
}

/// The resource manager (OSLM Resource Manager API 1.0) under `/api/resource-manager`.
impl Client {
    /// One exchange with the resource manager, its error body read as an [`RmError`].
    async fn rm<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<RmAnswer<T>, ClientError> {
        let response =
            self.exchange(method, &format!("{RM}{path}"), content_type, full(body), "application/json").await?;
        let status = response.status();
        let raw = collect(response).await?;
        if !status.is_success() {
            return Err(rm_error(status.as_u16(), &raw));
        }
        let value = serde_json::from_slice(&raw).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(RmAnswer { raw, value })
    }

    async fn rm_get<T: DeserializeOwned>(&self, path: &str) -> Result<RmAnswer<T>, ClientError> {
        self.rm(Method::GET, path, "application/json", Vec::new()).await
    }

    pub async fn rm_types(&self) -> Result<RmAnswer<Vec<RmResourceType>>, ClientError> {
        self.rm_get("/types").await
    }

    /// A type with its descriptor.
    pub async fn rm_type(&self, name: &str) -> Result<RmAnswer<RmResourceType>, ClientError> {
        self.rm_get(&format!("/types/{}", encode(name))).await
    }

    /// Onboards a package archive (`.tar.gz`, `.tar` or `.zip`), sent whole.
    pub async fn rm_onboard(&self, archive: Vec<u8>) -> Result<RmAnswer<RmResourceType>, ClientError> {
        self.rm(Method::POST, "/types", "application/octet-stream", archive).await
    }

    pub async fn rm_remove_type(&self, name: &str) -> Result<RmAnswer<RmResourceType>, ClientError> {
        self.rm(Method::DELETE, &format!("/types/{}", encode(name)), "application/json", Vec::new()).await
    }

    /// Onboards the packages of the daemon's package directories again.
    pub async fn rm_base_image(&self) -> Result<RmAnswer<crate::RmBaseImage>, ClientError> {
        self.rm(Method::POST, "/base-image", "application/json", Vec::new()).await
    }

    pub async fn rm_reload(&self) -> Result<RmAnswer<Vec<RmResourceType>>, ClientError> {
        self.rm(Method::PUT, "/onboarding", "application/json", Vec::new()).await
    }

    pub async fn rm_locations(&self) -> Result<RmAnswer<Vec<RmDeploymentLocation>>, ClientError> {
        self.rm_get("/topology/deployment-locations").await
    }

    /// The instances of a location: `instance_type` exact, `instance_name` in part.
    pub async fn rm_instances(
        &self,
        location: &str,
        query: &RmInstanceQuery,
    ) -> Result<RmAnswer<Vec<RmResourceInstance>>, ClientError> {
        let mut path = format!("/topology/deployment-locations/{}/instances", encode(location));
        let filters = [("instanceType", &query.instance_type), ("instanceName", &query.instance_name)];
        let mut separator = '?';
        for (key, value) in filters {
            if let Some(value) = value {
                path.push_str(&format!("{separator}{key}={}", encode(value)));
                separator = '&';
            }
        }
        self.rm_get(&path).await
    }

    pub async fn rm_instance(&self, id: &str) -> Result<RmAnswer<RmResourceInstance>, ClientError> {
        self.rm_get(&format!("/topology/instances/{}", encode(id))).await
    }

    /// The transition requests of an instance, newest first.
    pub async fn rm_requests_of(&self, id: &str) -> Result<RmAnswer<Vec<RmTransitionStatus>>, ClientError> {
        self.rm_get(&format!("/topology/instances/{}/requests", encode(id))).await
    }

    pub async fn rm_transition(
        &self,
        request: &RmTransitionRequest,
    ) -> Result<RmAnswer<RmTransitionAccepted>, ClientError> {
        self.rm(Method::POST, "/lifecycle/transitions", "application/json", to_json(request)?).await
    }

    pub async fn rm_status(&self, request_id: &str) -> Result<RmAnswer<RmTransitionStatus>, ClientError> {
        self.rm_get(&format!("/lifecycle/transitions/{}/status", encode(request_id))).await
    }

    /// The asynchronous responses waiting for delivery to Kafka.
    pub async fn rm_outbox(&self) -> Result<RmAnswer<RmOutboxState>, ClientError> {
        self.rm_get("/outbox").await
    }
}

/// `/v1/apps/<name>[/<verb>]`, with the name percent-encoded so that no input
/// can change the path.
fn app_path(name: &str, verb: &str) -> String {
    let encoded = encode(name);
    if verb.is_empty() {
        format!("/v1/apps/{encoded}")
    } else {
        format!("/v1/apps/{encoded}/{verb}")
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn collect(response: Response<Incoming>) -> Result<Bytes, ClientError> {
    Ok(response.into_body().collect().await.map_err(|e| ClientError::Gone(e.to_string()))?.to_bytes())
}

fn body_chunks(response: Response<Incoming>) -> BoxStream<'static, Result<Bytes, ClientError>> {
    BodyStream::new(response.into_body())
        .filter_map(|frame| async move {
            match frame {
                Ok(frame) => frame.into_data().ok().map(Ok),
                Err(e) => Some(Err(ClientError::Gone(e.to_string()))),
            }
        })
        .boxed()
}

/// Splits a body into newline-terminated lines.
fn ndjson_lines(response: Response<Incoming>) -> BoxStream<'static, Result<Vec<u8>, ClientError>> {
    let chunks = body_chunks(response);
    futures::stream::unfold((chunks, Vec::<u8>::new(), false), |(mut chunks, mut buffer, mut ended)| async move {
        loop {
            if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                return Some((Ok(line), (chunks, buffer, ended)));
            }
            if ended {
                return None;
            }
            match chunks.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Some((Err(e), (chunks, buffer, true))),
                None => {
                    ended = true;
                    if !buffer.is_empty() {
                        buffer.push(b'\n');
                    }
                }
            }
        }
    })
    .boxed()
}

/// Server-sent events as items: `event:` and `data:` lines up to a blank
/// line make one; comments (the keep-alive) are skipped.
fn sse_items(
    lines: BoxStream<'static, Result<Vec<u8>, ClientError>>,
) -> BoxStream<'static, Result<crate::EventItem, ClientError>> {
    futures::stream::unfold((lines, String::new(), String::new()), |(mut lines, mut event, mut data)| async move {
        loop {
            let line = match lines.next().await? {
                Ok(line) => String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_owned(),
                Err(e) => return Some((Err(e), (lines, event, data))),
            };
            if let Some(value) = line.strip_prefix("event:") {
                event = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            } else if line.is_empty() && !data.is_empty() {
                let item = if event == "gap" {
                    let gap: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
                    Ok(crate::EventItem::Gap {
                        after: gap["after"].as_i64().unwrap_or_default(),
                        next: gap["next"].as_i64().unwrap_or_default(),
                    })
                } else {
                    serde_json::from_str(&data)
                        .map(crate::EventItem::Event)
                        .map_err(|e| ClientError::Protocol(format!("an event that is not JSON: {e}")))
                };
                event.clear();
                data.clear();
                return Some((item, (lines, event, data)));
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::app_path;

    #[test]
    fn names_cannot_escape_the_path() {
        assert_eq!(app_path("web", "logs"), "/v1/apps/web/logs");
        assert_eq!(app_path("../x?y", ""), "/v1/apps/..%2Fx%3Fy");
    }
}

#[cfg(test)]
mod rm_tests {
    use super::{rm_error, ClientError};
    use crate::ErrorKind;

    fn kind(status: u16, body: &str) -> Option<ErrorKind> {
        rm_error(status, body.as_bytes()).kind()
    }

    #[test]
    fn resource_manager_errors_keep_their_message_and_map_their_status() {
        let body = |status| {
            format!(r#"{{"localizedMessage":"no type x","url":"/api/resource-manager/types/x","status":{status}}}"#)
        };
        assert_eq!(kind(400, &body(400)), Some(ErrorKind::InvalidInput));
        assert_eq!(kind(404, &body(404)), Some(ErrorKind::NotFound));
        assert_eq!(kind(409, &body(409)), Some(ErrorKind::Conflict));
        assert_eq!(kind(503, &body(503)), Some(ErrorKind::EngineUnavailable));
        assert_eq!(kind(500, &body(500)), Some(ErrorKind::Internal));
        assert_eq!(rm_error(404, body(404).as_bytes()).to_string(), "no type x");
        assert_eq!(kind(404, r#"{"code":"not_found","message":"no endpoint"}"#), Some(ErrorKind::NotFound));
        assert!(matches!(rm_error(502, b"<html>"), ClientError::Protocol(_)));
    }
}
