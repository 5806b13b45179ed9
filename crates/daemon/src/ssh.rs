//! Image archives over scp and sftp (TPCM's "SCP PATH" and "SFTP SERVER"
//! sources), with a maintained SSH implementation (russh), streamed like a
//! download. The server's host key is verified against
//! `/etc/ssh/ssh_known_hosts` and the invoking user's `known_hosts`; an
//! unknown key is refused showing its fingerprint unless the user passes
//! that exact fingerprint (`--accept-host-key`). A key that differs from a
//! recorded one is always refused. Passwords travel only in memory.

use crate::archive::{ArchiveInput, SourceFailure};
use berth_core::source::SshProtocol;
use bytes::Bytes;
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{server}: unknown host key {fingerprint}; if it is right, pass --accept-host-key {fingerprint}")]
    UnknownHostKey { server: String, fingerprint: String },
    #[error("{server}: the host key {fingerprint} differs from the one recorded in {file}; refusing (possible man-in-the-middle)")]
    HostKeyChanged { server: String, fingerprint: String, file: String },
    #[error("{server}: authentication as {username} failed")]
    AuthenticationFailed { server: String, username: String },
    #[error("{server}: no way to authenticate: give --password, --identity, or have a key in ~/.ssh")]
    NoCredentials { server: String },
    #[error("identity {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("{server}:{path}: {reason}")]
    Remote { server: String, path: String, reason: String },
}

/// How to authenticate and whom to trust.
#[derive(Clone, Default)]
pub struct SshOptions {
    pub password: Option<String>,
    pub identity: Option<PathBuf>,
    /// Files of known host keys, checked in order.
    pub known_hosts: Vec<PathBuf>,
    /// `SHA256:…` of a host key the user accepts although it is not recorded.
    pub accept_host_key: Option<String>,
    /// Keys tried when neither a password nor an identity is given.
    pub default_identities: Vec<PathBuf>,
    /// The invoking user's ssh agent (`SSH_AUTH_SOCK`), tried before the default keys.
    pub agent: Option<PathBuf>,
}

impl std::fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshOptions").field("identity", &self.identity).finish_non_exhaustive()
    }
}

struct HostKeyCheck {
    host: String,
    port: u16,
    options: SshOptions,
    /// Why the key was refused, for the error message.
    verdict: Arc<Mutex<Option<SshError>>>,
    server: String,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, offered: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        // Host certificates are not trusted on their own: the key inside must be known.
        let key: PublicKey = match offered {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            russh::keys::PublicKeyOrCertificate::Certificate(certificate) => {
                PublicKey::from(certificate.public_key().clone())
            }
        };
        let key = &key;
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        for file in &self.options.known_hosts {
            match russh::keys::known_hosts::check_known_hosts_path(&self.host, self.port, key, file) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(russh::keys::Error::KeyChanged { .. }) => {
                    *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(SshError::HostKeyChanged {
                        server: self.server.clone(),
                        fingerprint,
                        file: file.display().to_string(),
                    });
                    return Ok(false);
                }
                // A missing or unreadable file simply records nothing.
                Err(_) => {}
            }
        }
        if self.options.accept_host_key.as_deref() == Some(fingerprint.as_str()) {
            return Ok(true);
        }
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(SshError::UnknownHostKey { server: self.server.clone(), fingerprint });
        Ok(false)
    }
}

fn split_server(server: &str) -> (String, u16) {
    match server.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            (host.trim_matches(['[', ']']).to_owned(), port.parse().unwrap_or(22))
        }
        _ => (server.trim_matches(['[', ']']).to_owned(), 22),
    }
}

/// Connects, authenticates and starts streaming `path`.
pub async fn open(
    protocol: SshProtocol,
    server: &str,
    username: &str,
    path: &str,
    options: &SshOptions,
) -> Result<ArchiveInput, SshError> {
    let (host, port) = split_server(server);
    let unreachable = |reason: String| SshError::Unreachable { server: server.to_owned(), reason };
    let verdict = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        host: host.clone(),
        port,
        options: options.clone(),
        verdict: verdict.clone(),
        server: server.to_owned(),
    };
    let config = Arc::new(client::Config { inactivity_timeout: Some(Duration::from_secs(60)), ..Default::default() });
    let connecting = client::connect(config, (host.as_str(), port), handler);
    let mut session = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => return Err(unreachable("timed out connecting".into())),
        Ok(Err(e)) => {
            if let Some(refusal) = verdict.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(refusal);
            }
            return Err(unreachable(e.to_string()));
        }
        Ok(Ok(session)) => session,
    };
    authenticate(&mut session, server, username, options).await?;

    let channel = session.channel_open_session().await.map_err(|e| unreachable(e.to_string()))?;
    let remote = |reason: String| SshError::Remote { server: server.to_owned(), path: path.to_owned(), reason };
    let (tx, rx) = mpsc::channel(8);
    let total = match protocol {
        SshProtocol::Sftp => {
            channel.request_subsystem(true, "sftp").await.map_err(|e| remote(e.to_string()))?;
            let sftp =
                russh_sftp::client::SftpSession::new(channel.into_stream()).await.map_err(|e| remote(e.to_string()))?;
            let size = sftp.metadata(path).await.map_err(|e| remote(e.to_string()))?.size;
            let file = sftp.open(path).await.map_err(|e| remote(e.to_string()))?;
            tokio::spawn(pump(file, size, tx, session, Some(sftp)));
            size
        }
        SshProtocol::Scp => {
            channel.exec(true, format!("scp -f {}", shell_quote(path))).await.map_err(|e| remote(e.to_string()))?;
            let mut stream = channel.into_stream();
            stream.write_all(&[0]).await.map_err(|e| remote(e.to_string()))?;
            let size = scp_header(&mut stream).await.map_err(remote)?;
            stream.write_all(&[0]).await.map_err(|e| remote(e.to_string()))?;
            tokio::spawn(pump(stream, Some(size), tx, session, None));
            Some(size)
        }
    };
    Ok(ArchiveInput {
        origin: PathBuf::from(format!("{protocol}://{username}@{server}{path}")),
        reader: Box::new(crate::download::ChannelReader::new(rx)),
        total,
        phase: "copying",
    })
}

async fn authenticate(
    session: &mut client::Handle<HostKeyCheck>,
    server: &str,
    username: &str,
    options: &SshOptions,
) -> Result<(), SshError> {
    let failed = || SshError::AuthenticationFailed { server: server.to_owned(), username: username.to_owned() };
    let unreachable = |e: russh::Error| SshError::Unreachable { server: server.to_owned(), reason: e.to_string() };
    if let Some(password) = &options.password {
        let result = session.authenticate_password(username, password.as_str()).await.map_err(unreachable)?;
        return if result.success() { Ok(()) } else { Err(failed()) };
    }
    if options.identity.is_none() {
        if let Some(socket) = &options.agent {
            if authenticate_with_agent(session, username, socket).await? {
                return Ok(());
            }
        }
    }
    let identities: Vec<PathBuf> = match &options.identity {
        Some(identity) => vec![identity.clone()],
        None => options.default_identities.iter().filter(|p| p.is_file()).cloned().collect(),
    };
    if identities.is_empty() && options.agent.is_some() {
        return Err(failed());
    }
    if identities.is_empty() {
        return Err(SshError::NoCredentials { server: server.to_owned() });
    }
    for identity in identities {
        let key = russh::keys::load_secret_key(&identity, None)
            .map_err(|e| SshError::Identity { path: identity.clone(), reason: e.to_string() })?;
        let hash = session.best_supported_rsa_hash().await.map_err(unreachable)?.flatten();
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        if session.authenticate_publickey(username, key).await.map_err(unreachable)?.success() {
            return Ok(());
        }
    }
    Err(failed())
}

/// Tries every key the agent holds; `false` when none is accepted (or the
/// agent cannot be reached, which is not worth failing for: keys may follow).
async fn authenticate_with_agent(
    session: &mut client::Handle<HostKeyCheck>,
    username: &str,
    socket: &std::path::Path,
) -> Result<bool, SshError> {
    let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_uds(socket).await else {
        tracing::warn!(socket = %socket.display(), "cannot reach the ssh agent");
        return Ok(false);
    };
    let identities = agent.request_identities().await.unwrap_or_default();
    for identity in identities {
        let key = identity.public_key().into_owned();
        let hash = session.best_supported_rsa_hash().await.ok().flatten().flatten();
        match session.authenticate_publickey_with(username, key, hash, &mut agent).await {
            Ok(result) if result.success() => return Ok(true),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the ssh agent could not sign"),
        }
    }
    Ok(false)
}

/// scp's source side announces a file as `C<mode> <size> <name>\n`; errors
/// come as `\x01`/`\x02` and a message.
async fn scp_header(stream: &mut (impl AsyncRead + Unpin)) -> Result<u64, String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await.map_err(|e| format!("the scp transfer ended: {e}"))?;
        if byte == b'\n' {
            break;
        }
        line.push(byte);
        if line.len() > 4096 {
            return Err("scp sent an overlong header".into());
        }
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    match line.first() {
        Some(b'C') => text
            .split_whitespace()
            .nth(1)
            .and_then(|size| size.parse().ok())
            .ok_or_else(|| format!("scp sent a header it should not: {text:?}")),
        Some(1 | 2) => Err(text[1..].trim().to_owned()),
        Some(b'D') => Err("it is a directory".into()),
        _ => Err(format!("scp sent {text:?}")),
    }
}

/// Single-quotes `text` for the remote shell that runs `scp -f`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Copies the remote file into the channel for the archive checker, `size`
/// bytes (scp follows the file with a status byte that is not data).
async fn pump<R: AsyncRead + Unpin, H: client::Handler>(
    mut reader: R,
    size: Option<u64>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    _session: client::Handle<H>,
    _sftp: Option<russh_sftp::client::SftpSession>,
) {
    let mut left = size.unwrap_or(u64::MAX);
    let mut buffer = vec![0u8; 128 * 1024];
    while left > 0 {
        let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match reader.read(&mut buffer[..want]).await {
            Ok(0) if size.is_none() => return,
            Ok(0) => {
                let failure = SourceFailure(format!("the transfer ended {left} bytes short"));
                let _ = tx.send(Err(io::Error::other(failure))).await;
                return;
            }
            Ok(n) => {
                left -= n as u64;
                if tx.send(Ok(Bytes::copy_from_slice(&buffer[..n]))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(SourceFailure(format!("the transfer failed: {e}"))))).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_quoting() {
        assert_eq!(split_server("host"), ("host".into(), 22));
        assert_eq!(split_server("127.0.0.1:2222"), ("127.0.0.1".into(), 2222));
        assert_eq!(split_server("[::1]:22"), ("::1".into(), 22));
        assert_eq!(shell_quote("/a b/it's.tar"), "'/a b/it'\\''s.tar'");
    }

    #[tokio::test]
    async fn scp_headers() {
        let mut ok: &[u8] = b"C0644 1234 app.tar\n";
        assert_eq!(scp_header(&mut ok).await, Ok(1234));
        let mut error: &[u8] = b"\x01scp: /x: No such file or directory\n";
        assert_eq!(scp_header(&mut error).await, Err("scp: /x: No such file or directory".into()));
    }
}
