//! Image archives over http and https (TPCM "HTTP SERVER" source), streamed:
//! the body goes straight on to the archive checker and the engine, never to
//! a temporary file. A transfer that drops is resumed where it stopped with a
//! `Range` request, a few times with backoff; redirects are followed; TLS is
//! verified against the bundled web roots plus an optional CA file.

use crate::archive::{ArchiveInput, SourceFailure};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Attempts per download, the first included.
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A transfer that sends nothing for this long is dropped (and resumed).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
}

/// Opens `url` and returns its body as an archive input. The first response
/// is awaited here, so an unreachable server or a 404 is reported before
/// anything reaches the engine.
pub async fn open(url: &str, ca_file: Option<&Path>) -> Result<ArchiveInput, DownloadError> {
    let client = client(ca_file)?;
    let response = request(&client, url, 0).await?;
    let total = response.content_length();
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(transfer(client, url.to_owned(), response, tx));
    Ok(ArchiveInput {
        origin: PathBuf::from(url),
        reader: Box::new(ChannelReader::new(rx)),
        total,
        phase: "downloading",
    })
}

fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, DownloadError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(10));
    if let Some(path) = ca_file {
        let ca_error = |reason: String| DownloadError::CaFile { path: path.to_owned(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(ca_error("holds no PEM certificate".into()));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| DownloadError::Unreachable { url: String::new(), reason: e.to_string() })
}

/// GET `url` from byte `offset` on.
async fn request(client: &reqwest::Client, url: &str, offset: u64) -> Result<reqwest::Response, DownloadError> {
    let mut request = client.get(url);
    if offset > 0 {
        request = request.header(RANGE, format!("bytes={offset}-"));
    }
    let response = request
        .send()
        .await
        .map_err(|e| DownloadError::Unreachable { url: url.to_owned(), reason: error_chain(&e) })?;
    let status = response.status();
    if !(status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT) {
        return Err(DownloadError::Status { url: url.to_owned(), status: status.as_u16() });
    }
    Ok(response)
}

/// Feeds the body to the reader, resuming after a drop. Gives up (and says
/// why through the stream) after [`ATTEMPTS`] tries.
async fn transfer(client: reqwest::Client, url: String, first: reqwest::Response, tx: mpsc::Sender<io::Result<Bytes>>) {
    let expected = first.content_length();
    let mut received = 0u64;
    let mut response = Some(first);
    let mut attempt = 1;
    loop {
        let outcome = match response.take() {
            Some(r) => pump(r, received, &mut received, &tx).await,
            None => match request(&client, &url, received).await {
                Ok(r) => pump(r, received, &mut received, &tx).await,
                Err(e) => Err(e.to_string()),
            },
        };
        let reason = match outcome {
            Ok(()) if expected.is_none_or(|total| received >= total) => return,
            Ok(()) => format!("the transfer ended after {received} of {} bytes", expected.unwrap_or_default()),
            Err(reason) if reason == "receiver gone" => return,
            Err(reason) => reason,
        };
        if attempt >= ATTEMPTS {
            let message = format!("download failed after {attempt} attempts: {reason}");
            let _ = tx.send(Err(io::Error::other(SourceFailure(message)))).await;
            return;
        }
        tracing::warn!(%url, received, attempt, %reason, "download interrupted; resuming");
        tokio::time::sleep(FIRST_RETRY * 2u32.pow(attempt - 1)).await;
        attempt += 1;
    }
}

/// Streams one response from `offset`. A server that ignores `Range` (200
/// instead of 206) sends the whole file again: the bytes already passed on
/// are skipped.
async fn pump(
    response: reqwest::Response,
    offset: u64,
    received: &mut u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<(), String> {
    let resumed = response.status() == StatusCode::PARTIAL_CONTENT;
    if resumed {
        let starts_at = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.parse::<u64>().ok());
        if starts_at != Some(offset) {
            return Err(format!("the server resumed at {starts_at:?} instead of byte {offset}"));
        }
    }
    let mut skip = if resumed { 0 } else { offset };
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| error_chain(&e))?;
        if skip > 0 {
            let dropped = skip.min(chunk.len() as u64);
            chunk = chunk.slice(dropped as usize..);
            skip -= dropped;
        }
        if chunk.is_empty() {
            continue;
        }
        *received += chunk.len() as u64;
        tx.send(Ok(chunk)).await.map_err(|_| "receiver gone".to_owned())?;
    }
    Ok(())
}

/// reqwest's errors say little at the top level; the cause chain says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A transfer as a blocking reader, for the archive checker's thread.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    pending: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self { rx, pending: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.pending = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending = self.pending.slice(n..);
        Ok(n)
    }
}
