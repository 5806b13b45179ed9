//! Files on ssh servers (TPCM's "SCP PATH" and "SFTP SERVER" sources) over
//! russh, streamed like a download: a chunk at a time, memory bounded by the
//! ssh channel's window.
//!
//! Nothing here opens a file: known hosts and private keys come as content,
//! so the daemon can be handed them by a client without reading client
//! paths. The one local path is an ssh agent's socket, which only the CLI
//! uses, in the user's own process.
//!
//! The server's host key must be recorded for it in the known hosts given
//! ([`Trust::known_hosts`]), or be the one the user accepted by fingerprint
//! ([`Trust::accept_fingerprint`]). A key that differs from one recorded for
//! the server is refused even then, and so is a key marked `@revoked`.

mod known_hosts;
mod scp;

use berth_core::source::SshProtocol;
use berth_core::{ErrorKind, HostPort};
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use known_hosts::Verdict;
use russh::client;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Bytes asked of the channel per read, and so at most per chunk.
const CHUNK: usize = 128 * 1024;

/// A file on an ssh server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    pub protocol: SshProtocol,
    /// The server, port 22 unless it says otherwise.
    pub server: HostPort,
    pub username: String,
    /// The file's absolute path on the server.
    pub path: String,
}

impl SshTarget {
    /// `protocol://username@server/path`, as berth shows an ssh source.
    pub fn origin(&self) -> String {
        format!("{}://{}@{}{}", self.protocol, self.username, self.server, self.path)
    }
}

/// One way to log in, tried in the order given to [`open`].
#[derive(Clone)]
pub enum Credential {
    Password(String),
    /// An OpenSSH, PKCS#1, PKCS#8 or PuTTY private key: `pem` is the key's
    /// content, `origin` says where it came from for messages. A key
    /// encrypted with a passphrase is refused ([`SshError::Key`]): it can be
    /// loaded into an agent instead.
    PrivateKey {
        origin: String,
        pem: String,
    },
    /// The socket of an ssh agent (`SSH_AUTH_SOCK`), every key it holds tried.
    /// Only for the CLI, in the user's own process.
    Agent(PathBuf),
}

/// Key material and passwords stay out of logs and error output.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(..)"),
            Credential::PrivateKey { origin, .. } => {
                f.debug_struct("PrivateKey").field("origin", origin).finish_non_exhaustive()
            }
            Credential::Agent(socket) => f.debug_tuple("Agent").field(socket).finish(),
        }
    }
}

/// The content of a known_hosts file (OpenSSH's format), and where it came
/// from for messages: the user's `~/.ssh/known_hosts`, `/etc/ssh/ssh_known_hosts`.
#[derive(Clone, Debug)]
pub struct KnownHosts {
    pub origin: String,
    pub content: String,
}

/// Which host keys are trusted.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Checked together; a key recorded in any of them for the server is trusted.
    pub known_hosts: Vec<KnownHosts>,
    /// `SHA256:…` (as `ssh-keygen -l` prints it) of a key the user accepts for
    /// a server that has none recorded.
    pub accept_fingerprint: Option<String>,
}

/// How long each step may take.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// To connect, and then for the ssh handshake.
    pub connect_timeout: Duration,
    /// For any one answer of the server afterwards: a login step, a channel,
    /// the next bytes of the file.
    pub idle_timeout: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(15), idle_timeout: Duration::from_secs(30) }
    }
}

/// Why a file could not be fetched over ssh. Every variant names the server
/// (as given, `host[:port]`) and, once logged in, the path.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{server}: cannot connect: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{server}: unknown host key {fingerprint}; if it is right, accept it by its fingerprint (--accept-host-key {fingerprint})")]
    UnknownHostKey { server: String, fingerprint: String },
    #[error("{server}: the host key {fingerprint} differs from the one recorded in {origin}; refusing (possible man-in-the-middle)")]
    HostKeyChanged { server: String, fingerprint: String, origin: String },
    #[error("{server}: the host key {fingerprint} is marked @revoked in {origin}; refusing")]
    HostKeyRevoked { server: String, fingerprint: String, origin: String },
    #[error("{server}: no way to authenticate: give a password, a private key or an ssh agent")]
    NoCredentials { server: String },
    #[error("private key {origin}: {reason}")]
    Key { origin: String, reason: String },
    #[error("{server}: authentication as {username} failed (tried {tried})")]
    AuthenticationFailed { server: String, username: String, tried: String },
    #[error("{server}: the ssh session failed: {reason}")]
    Session { server: String, reason: String },
    #[error("{server}:{path}: {reason}")]
    Remote { server: String, path: String, reason: String },
    #[error("{server}:{path}: the transfer ended after {received} of {expected} bytes")]
    Truncated { server: String, path: String, received: u64, expected: u64 },
    #[error("{server}: no answer for {secs} s while {step}")]
    Idle { server: String, step: &'static str, secs: u64 },
}

impl SshError {
    /// The kind berth reports it as (HTTP status, exit code). Exhaustive: a
    /// new variant does not compile until it is placed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SshError::NoCredentials { .. } | SshError::Key { .. } => ErrorKind::InvalidInput,
            SshError::Unreachable { .. }
            | SshError::UnknownHostKey { .. }
            | SshError::HostKeyChanged { .. }
            | SshError::HostKeyRevoked { .. }
            | SshError::AuthenticationFailed { .. }
            | SshError::Session { .. }
            | SshError::Remote { .. }
            | SshError::Truncated { .. }
            | SshError::Idle { .. } => ErrorKind::BadSource,
        }
    }
}

/// An open remote file: logged in, the file found, its bytes about to flow.
pub struct RemoteFile {
    /// `protocol://username@server/path`.
    pub origin: String,
    /// The file's length, when the server said it (scp always does).
    pub size: Option<u64>,
    copy: RemoteCopy,
}

impl fmt::Debug for RemoteFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteFile").field("origin", &self.origin).field("size", &self.size).finish_non_exhaustive()
    }
}

impl RemoteFile {
    /// The file's bytes, in order. The stream ends after the last byte, or
    /// with one error after which nothing follows; one that ends short of the
    /// announced size ends with [`SshError::Truncated`].
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes, SshError>> {
        stream::unfold(self.copy, |mut copy| async move {
            let item = copy.next().await?;
            Some((item, copy))
        })
        .boxed()
    }
}

/// Connects to `target.server`, checks its host key against `trust`, logs
/// in with the first of `credentials` that works and opens the file. Every
/// failure up to the first byte is reported here.
pub async fn open(
    target: &SshTarget,
    credentials: &[Credential],
    trust: &Trust,
    options: &SshOptions,
) -> Result<RemoteFile, SshError> {
    let server = target.server.to_string();
    if credentials.is_empty() {
        return Err(SshError::NoCredentials { server });
    }
    // Keys are read before connecting: a key that cannot be used is the
    // user's to fix, whatever the server would say.
    let methods = credentials.iter().map(Method::of).collect::<Result<Vec<_>, _>>()?;
    let steps = Steps { server, idle: options.idle_timeout };
    let mut session = connect(&target.server, trust, options).await?;
    authenticate(&mut session, &target.username, &methods, &steps).await?;
    let channel = steps.run("opening a channel", session.channel_open_session()).await?.map_err(|e| steps.failed(e))?;
    let opened = match target.protocol {
        SshProtocol::Sftp => start_sftp(channel, session, &target.path, &steps).await?,
        SshProtocol::Scp => start_scp(channel, session, &target.path, &steps).await?,
    };
    tracing::debug!(origin = %target.origin(), size = ?opened.size, "remote file opened");
    Ok(RemoteFile {
        origin: target.origin(),
        size: opened.size,
        copy: RemoteCopy {
            steps,
            path: target.path.clone(),
            scp: target.protocol == SshProtocol::Scp,
            reader: opened.reader,
            size: opened.size,
            received: 0,
            buffer: vec![0; CHUNK],
            finished: false,
            _connection: opened.connection,
        },
    })
}

/// The TCP connection and the ssh handshake, each within the connect timeout.
async fn connect(
    server: &HostPort,
    trust: &Trust,
    options: &SshOptions,
) -> Result<client::Handle<HostKeyCheck>, SshError> {
    let (host, port) = (server.host.as_str(), server.port_or(22));
    let unreachable = |reason: String| SshError::Unreachable { server: server.to_string(), reason };
    let within = format!("within {} s", options.connect_timeout.as_secs());
    let connecting = tokio::net::TcpStream::connect((host, port));
    let socket = match tokio::time::timeout(options.connect_timeout, connecting).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no connection {within}"))),
    };
    let _ = socket.set_nodelay(true);
    let config = client::Config {
        // The idle timeout is kept by each step here instead.
        inactivity_timeout: None,
        preferred: preferred_algorithms(&trust.known_hosts, host, port),
        ..Default::default()
    };
    let check = HostKeyCheck { server: server.to_string(), host: host.to_owned(), port, trust: trust.clone() };
    let handshake = client::connect_stream(Arc::new(config), socket, check);
    match tokio::time::timeout(options.connect_timeout, handshake).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(Refusal::HostKey(refusal))) => Err(refusal),
        Ok(Err(Refusal::Ssh(e))) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no ssh handshake {within}"))),
    }
}

/// A file ready to be read, and what must stay alive while it is.
struct Opened {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    size: Option<u64>,
    connection: Box<dyn Any + Send>,
}

async fn start_sftp(
    channel: russh::Channel<client::Msg>,
    session: client::Handle<HostKeyCheck>,
    path: &str,
    steps: &Steps,
) -> Result<Opened, SshError> {
    let remote = |reason: String| steps.remote(path, reason);
    steps
        .run("starting sftp", channel.request_subsystem(true, "sftp"))
        .await?
        .map_err(|e| remote(format!("the server refused sftp: {e}")))?;
    let sftp = steps
        .run("starting sftp", russh_sftp::client::SftpSession::new(channel.into_stream()))
        .await?
        .map_err(|e| remote(format!("sftp did not start: {e}")))?;
    sftp.set_timeout(steps.idle.as_secs().max(1));
    let file = steps.run("opening the file", sftp.open(path)).await?.map_err(|e| remote(sftp_reason(e)))?;
    let metadata = steps.run("opening the file", file.metadata()).await?.map_err(|e| remote(sftp_reason(e)))?;
    if metadata.is_dir() {
        return Err(remote("it is a directory".into()));
    }
    Ok(Opened { reader: Box::new(file), size: metadata.size, connection: Box::new((session, sftp)) })
}

async fn start_scp(
    channel: russh::Channel<client::Msg>,
    session: client::Handle<HostKeyCheck>,
    path: &str,
    steps: &Steps,
) -> Result<Opened, SshError> {
    let remote = |reason: String| steps.remote(path, reason);
    steps.run("starting scp", channel.exec(true, scp::command(path))).await?.map_err(|e| steps.failed(e))?;
    let mut stream = channel.into_stream();
    // A zero byte says "ready" (for the first header, after a time header, and for the data).
    let size = loop {
        steps.run("starting scp", stream.write_all(&[0])).await?.map_err(|e| remote(e.to_string()))?;
        match steps.run("waiting for the scp header", scp::read_header(&mut stream)).await?.map_err(remote)? {
            scp::Header::File { size } => break size,
            scp::Header::Times => continue,
        }
    };
    steps.run("starting scp", stream.write_all(&[0])).await?.map_err(|e| remote(e.to_string()))?;
    Ok(Opened { reader: Box::new(stream), size: Some(size), connection: Box::new(session) })
}

/// The host key algorithms to ask for: those recorded for the server first,
/// as OpenSSH does, so that a server with several host keys shows the one on
/// record; host certificates are not asked for, as none is trusted.
fn preferred_algorithms(known_hosts: &[KnownHosts], host: &str, port: u16) -> russh::Preferred {
    let defaults = russh::Preferred::default();
    let recorded = known_hosts::recorded_algorithms(known_hosts, host, port);
    let same_kind = |a: &Algorithm, b: &Algorithm| {
        a == b || (matches!(a, Algorithm::Rsa { .. }) && matches!(b, Algorithm::Rsa { .. }))
    };
    let (mut first, rest): (Vec<_>, Vec<_>) =
        defaults.key.iter().cloned().partition(|offered| recorded.iter().any(|r| same_kind(r, offered)));
    first.sort_by_key(|offered| recorded.iter().position(|r| same_kind(r, offered)));
    first.extend(rest);
    russh::Preferred { key: Cow::Owned(first), host_key_certificates: Cow::Borrowed(&[]), ..defaults }
}

/// What sftp said went wrong: the server's own message when it gave one.
fn sftp_reason(error: russh_sftp::client::error::Error) -> String {
    match error {
        russh_sftp::client::error::Error::Status(status) if !status.error_message.is_empty() => status.error_message,
        other => other.to_string(),
    }
}

/// The ssh handler: decides whether the server's host key is trusted.
struct HostKeyCheck {
    server: String,
    host: String,
    port: u16,
    trust: Trust,
}

/// Why the handshake stopped: the host key was refused, or ssh failed.
#[derive(Debug)]
enum Refusal {
    HostKey(SshError),
    Ssh(russh::Error),
}

impl From<russh::Error> for Refusal {
    fn from(error: russh::Error) -> Self {
        Refusal::Ssh(error)
    }
}

impl client::Handler for HostKeyCheck {
    type Error = Refusal;

    async fn check_server_key(&mut self, offered: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        // No host certificate is asked for; should one come, the key inside must be known.
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(certificate) => PublicKey::from(certificate.public_key().clone()),
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let server = self.server.clone();
        let refusal = match known_hosts::check(&self.trust.known_hosts, &self.host, self.port, &key) {
            Verdict::Known => return Ok(true),
            Verdict::Unknown
                if self.trust.accept_fingerprint.as_deref().map(str::trim) == Some(fingerprint.as_str()) =>
            {
                tracing::info!(%server, %fingerprint, "host key accepted by its fingerprint");
                return Ok(true);
            }
            Verdict::Unknown => SshError::UnknownHostKey { server, fingerprint },
            Verdict::Changed { origin } => SshError::HostKeyChanged { server, fingerprint, origin },
            Verdict::Revoked { origin } => SshError::HostKeyRevoked { server, fingerprint, origin },
        };
        Err(Refusal::HostKey(refusal))
    }
}

/// A credential made ready: keys decoded.
enum Method<'a> {
    Password(&'a str),
    Key { origin: &'a str, key: Arc<PrivateKey> },
    Agent(&'a Path),
}

impl<'a> Method<'a> {
    fn of(credential: &'a Credential) -> Result<Self, SshError> {
        Ok(match credential {
            Credential::Password(password) => Method::Password(password),
            Credential::Agent(socket) => Method::Agent(socket),
            Credential::PrivateKey { origin, pem } => {
                let key = russh::keys::decode_secret_key(pem, None).map_err(|e| SshError::Key {
                    origin: origin.clone(),
                    reason: match e {
                        russh::keys::Error::KeyIsEncrypted => {
                            "it is encrypted with a passphrase; load it into ssh-agent, or remove the passphrase with ssh-keygen -p".into()
                        }
                        other => format!("it cannot be read: {other}"),
                    },
                })?;
                Method::Key { origin, key: Arc::new(key) }
            }
        })
    }
}

async fn authenticate(
    session: &mut client::Handle<HostKeyCheck>,
    username: &str,
    methods: &[Method<'_>],
    steps: &Steps,
) -> Result<(), SshError> {
    let mut tried = Vec::new();
    for method in methods {
        let accepted = match method {
            Method::Password(password) => {
                tried.push("a password".to_owned());
                let attempt = session.authenticate_password(username, *password);
                steps.run("logging in", attempt).await?.map_err(|e| steps.failed(e))?.success()
            }
            Method::Key { origin, key } => {
                tried.push(format!("key {origin}"));
                let hash = rsa_hash(session, key.algorithm().is_rsa(), steps).await?;
                let attempt = session.authenticate_publickey(username, PrivateKeyWithHashAlg::new(key.clone(), hash));
                steps.run("logging in", attempt).await?.map_err(|e| steps.failed(e))?.success()
            }
            Method::Agent(socket) => match authenticate_with_agent(session, username, socket, steps).await? {
                Ok(accepted) => {
                    tried.push(format!("the agent at {}", socket.display()));
                    accepted
                }
                Err(reason) => {
                    tried.push(format!("the agent at {} ({reason})", socket.display()));
                    false
                }
            },
        };
        if accepted {
            return Ok(());
        }
    }
    Err(SshError::AuthenticationFailed {
        server: steps.server.clone(),
        username: username.to_owned(),
        tried: tried.join(", "),
    })
}

/// The signature hash for an RSA key: SHA-2 when the server lists it in
/// `server-sig-algs` (RFC 8332), as modern servers refuse SHA-1.
async fn rsa_hash(
    session: &client::Handle<HostKeyCheck>,
    is_rsa: bool,
    steps: &Steps,
) -> Result<Option<HashAlg>, SshError> {
    if !is_rsa {
        return Ok(None);
    }
    let best = steps.run("logging in", session.best_supported_rsa_hash()).await?.map_err(|e| steps.failed(e))?;
    Ok(best.flatten())
}

/// Tries every key the agent holds: `Ok(accepted)`, or `Err` saying why the
/// agent could not be used (then the next credential is tried).
async fn authenticate_with_agent(
    session: &mut client::Handle<HostKeyCheck>,
    username: &str,
    socket: &Path,
    steps: &Steps,
) -> Result<Result<bool, String>, SshError> {
    let mut agent = match russh::keys::agent::client::AgentClient::connect_uds(socket).await {
        Ok(agent) => agent,
        Err(e) => return Ok(Err(format!("unreachable: {e}"))),
    };
    let identities = match steps.run("asking the ssh agent", agent.request_identities()).await? {
        Ok(identities) => identities,
        Err(e) => return Ok(Err(format!("it did not list its keys: {e}"))),
    };
    if identities.is_empty() {
        return Ok(Err("it holds no key".into()));
    }
    for identity in identities {
        let key = identity.public_key().into_owned();
        let hash = rsa_hash(session, key.algorithm().is_rsa(), steps).await?;
        let attempt = session.authenticate_publickey_with(username, key, hash, &mut agent);
        match steps.run("logging in", attempt).await? {
            Ok(result) if result.success() => return Ok(Ok(true)),
            Ok(_) => {}
            Err(e) => tracing::warn!(socket = %socket.display(), error = %e, "the ssh agent could not sign"),
        }
    }
    Ok(Ok(false))
}

/// Bounds each step after the handshake by the idle timeout, naming the step when it runs out.
struct Steps {
    server: String,
    idle: Duration,
}

impl Steps {
    async fn run<T>(&self, step: &'static str, future: impl Future<Output = T>) -> Result<T, SshError> {
        tokio::time::timeout(self.idle, future).await.map_err(|_| SshError::Idle {
            server: self.server.clone(),
            step,
            secs: self.idle.as_secs(),
        })
    }

    fn failed(&self, error: impl fmt::Display) -> SshError {
        SshError::Session { server: self.server.clone(), reason: error.to_string() }
    }

    fn remote(&self, path: &str, reason: String) -> SshError {
        SshError::Remote { server: self.server.clone(), path: path.to_owned(), reason }
    }
}

/// The state of a copy between chunks. It owns the session (and the sftp
/// client), which end when it is dropped.
struct RemoteCopy {
    steps: Steps,
    path: String,
    /// scp follows the file with a status byte that is not data.
    scp: bool,
    reader: Box<dyn AsyncRead + Send + Unpin>,
    size: Option<u64>,
    received: u64,
    buffer: Vec<u8>,
    finished: bool,
    /// The ssh session (and sftp client) the reader reads from.
    _connection: Box<dyn Any + Send>,
}

impl RemoteCopy {
    async fn next(&mut self) -> Option<Result<Bytes, SshError>> {
        if self.finished {
            return None;
        }
        let item = self.advance().await.transpose();
        if !matches!(item, Some(Ok(_))) {
            self.finished = true;
        }
        item
    }

    async fn advance(&mut self) -> Result<Option<Bytes>, SshError> {
        let left = self.size.map(|size| size - self.received);
        if left == Some(0) {
            return self.end().await.map(|()| None);
        }
        let want = left.map_or(CHUNK, |left| CHUNK.min(usize::try_from(left).unwrap_or(CHUNK)));
        let read = self.reader.read(&mut self.buffer[..want]);
        let n = self.steps.run("copying", read).await?.map_err(|e| self.remote(format!("the transfer failed: {e}")))?;
        if n == 0 {
            return match self.size {
                Some(expected) => Err(SshError::Truncated {
                    server: self.steps.server.clone(),
                    path: self.path.clone(),
                    received: self.received,
                    expected,
                }),
                None => Ok(None),
            };
        }
        self.received += n as u64;
        Ok(Some(Bytes::copy_from_slice(&self.buffer[..n])))
    }

    /// After the last byte: scp's status byte says whether the source read the whole file.
    async fn end(&mut self) -> Result<(), SshError> {
        if self.scp {
            let status = self.steps.run("finishing", scp::read_status(&mut self.reader)).await?;
            status.map_err(|reason| self.remote(reason))?;
        }
        Ok(())
    }

    fn remote(&self, reason: String) -> SshError {
        self.steps.remote(&self.path, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let credentials = [
            Credential::Password("hunter2".into()),
            Credential::PrivateKey {
                origin: "~/.ssh/id_ed25519".into(),
                pem: "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
            },
        ];
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("BEGIN"), "{shown}");
        assert!(shown.contains("~/.ssh/id_ed25519"), "{shown}");
    }

    fn copy(content: &'static [u8], size: Option<u64>, scp: bool) -> RemoteCopy {
        RemoteCopy {
            steps: Steps { server: "h:2222".into(), idle: Duration::from_secs(5) },
            path: "/a.tar".into(),
            scp,
            reader: Box::new(content),
            size,
            received: 0,
            buffer: vec![0; CHUNK],
            finished: false,
            _connection: Box::new(()),
        }
    }

    async fn drain(mut copy: RemoteCopy) -> (Vec<u8>, Option<SshError>) {
        let mut bytes = Vec::new();
        while let Some(item) = copy.next().await {
            match item {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(e) => {
                    assert!(copy.next().await.is_none(), "nothing follows an error");
                    return (bytes, Some(e));
                }
            }
        }
        (bytes, None)
    }

    #[tokio::test]
    async fn a_copy_gives_the_announced_bytes_and_checks_the_end() {
        let (bytes, error) = drain(copy(b"abc\0", Some(3), true)).await;
        assert_eq!((bytes.as_slice(), error.map(|e| e.to_string())), (&b"abc"[..], None));
        let (bytes, error) = drain(copy(b"abcdef", None, false)).await;
        assert_eq!((bytes.as_slice(), error.is_none()), (&b"abcdef"[..], true), "no size: to the end");

        let (bytes, error) = drain(copy(b"ab", Some(5), false)).await;
        assert_eq!(bytes, b"ab");
        assert!(matches!(error, Some(SshError::Truncated { received: 2, expected: 5, .. })), "{error:?}");
        let (_, error) = drain(copy(b"abc\x01scp: /a.tar: Input/output error\n", Some(3), true)).await;
        let error = error.expect("the source's complaint");
        assert_eq!(error.to_string(), "h:2222:/a.tar: scp: /a.tar: Input/output error");
        let (_, error) = drain(copy(b"abc", Some(3), true)).await;
        assert!(matches!(error, Some(SshError::Remote { .. })), "scp's end status is missing: {error:?}");
    }

    #[test]
    fn origins() {
        let target = SshTarget {
            protocol: SshProtocol::Sftp,
            server: HostPort::parse("[::1]:2222").unwrap(),
            username: "u".into(),
            path: "/srv/a.tar".into(),
        };
        assert_eq!(target.origin(), "sftp://u@[::1]:2222/srv/a.tar");
    }

    #[test]
    fn recorded_host_key_algorithms_are_asked_for_first() {
        let known = [KnownHosts {
            origin: "k".into(),
            content: "[h]:2222 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC88Fmmy9ZQHAR5SBn2tB2RLOLKUlFAATMXyQfOIa0xWjeFmyA96aSVR/9s2jmDYNjKTRJpkPY9Leidn8G0Q49ct2Tx6i2+ONpDh2375EGveUwtzIFCUUcTFvS2THxKkky/cVLx8LD7oPyGJ4c0moJDicX+68hvtb0vWXH/CQctqw==\n".into(),
        }];
        let preferred = preferred_algorithms(&known, "h", 2222);
        assert!(matches!(preferred.key[0], russh::keys::Algorithm::Rsa { .. }), "{:?}", preferred.key);
        assert_eq!(preferred.key.len(), russh::Preferred::default().key.len(), "nothing dropped");
        assert!(preferred.host_key_certificates.is_empty());
        let unknown = preferred_algorithms(&known, "h", 22);
        assert_eq!(unknown.key, russh::Preferred::default().key);
    }
}
