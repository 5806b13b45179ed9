//! Streaming an image archive into the engine while checking it.
//!
//! The file is read once: a blocking task decompresses it (when it is gzip),
//! hands every byte to the engine's load request through a bounded channel,
//! and parses the same bytes as a tar to find `manifest.json`. Nothing is
//! buffered beyond the channel. When the archive turns out to be corrupt,
//! foreign, or to hold no or several images, the caller undoes whatever the
//! engine loaded (see `intake`).

use berth_core::engine::{ByteStream, Progress, ProgressSink};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the reader and the engine: 2 MiB of memory at most.
const CHANNEL_DEPTH: usize = 8;
/// A manifest larger than this is not a docker-save manifest.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: corrupt gzip data: {reason}")]
    CorruptGzip { path: PathBuf, reason: String },
    #[error("{path} is not a tar archive: {reason}")]
    NotTar { path: PathBuf, reason: String },
    #[error("{path} is not an image archive: it has no manifest.json (make one with `docker save`)")]
    NotImageArchive { path: PathBuf },
    #[error("{path}: manifest.json is malformed: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{path} holds no image")]
    NoImages { path: PathBuf },
    #[error("{path} holds {count} images ({tags}); an app is made from exactly one")]
    SeveralImages { path: PathBuf, count: usize, tags: String },
    #[error("{path}: {reason}")]
    Source { path: PathBuf, reason: String },
    #[error("{path}: the engine stopped reading the archive")]
    EngineHungUp { path: PathBuf },
}

/// One image named by the archive's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    /// `sha256:<hex>`, the image id the engine will report.
    pub id: String,
    pub repo_tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

/// Where an archive's bytes come from: a file, or a download.
pub struct ArchiveInput {
    /// The path or URL, for messages.
    pub origin: PathBuf,
    pub reader: Box<dyn Read + Send>,
    pub total: Option<u64>,
    /// What the progress bar says ("loading image", "downloading").
    pub phase: &'static str,
}

impl ArchiveInput {
    pub fn file(path: &Path) -> Result<Self, ArchiveError> {
        let file = open(path)?;
        let total = file.metadata().map(|m| m.len()).ok();
        Ok(Self { origin: path.to_owned(), reader: Box::new(file), total, phase: "loading image" })
    }
}

/// A checked archive: the one image it holds, and the SHA-256 of its bytes as
/// read (compressed, as stored), for `--sha256`.
#[derive(Debug, Clone)]
pub struct Checked {
    pub image: ArchiveImage,
    pub sha256: String,
}

/// The failure of the byte source itself (a download that gave up), told
/// apart from what the bytes say (corrupt gzip, not a tar).
#[derive(Debug)]
pub struct SourceFailure(pub String);

impl std::fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceFailure {}

/// Starts streaming `input`. Returns the bytes for the engine and the
/// checker's verdict, which is ready once the stream has been consumed.
pub fn stream(input: ArchiveInput, progress: ProgressSink) -> (ByteStream, JoinHandle<Result<Checked, ArchiveError>>) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let checker = tokio::task::spawn_blocking(move || {
        let digest = Arc::new(OnceLock::new());
        let counted = CountingReader {
            inner: input.reader,
            read: 0,
            reported: 0,
            total: input.total,
            phase: input.phase,
            progress,
            hasher: Sha256::new(),
            digest: digest.clone(),
        };
        let result = check_and_forward(&input.origin, counted, &tx);
        if let Err(error) = &result {
            // Fail the upload too, so the engine does not load a partial archive.
            let _ = tx.blocking_send(Err(io::Error::other(error.to_string())));
        }
        let image = result?;
        let sha256 = digest.get().cloned().unwrap_or_default();
        Ok(Checked { image, sha256 })
    });
    (tokio_stream::wrappers::ReceiverStream::new(rx).boxed(), checker)
}

/// Reads the archive only to learn which image it holds (crash recovery).
pub fn identify(path: &Path) -> Result<ArchiveImage, ArchiveError> {
    let file = open(path)?;
    let (decoded, gzip) = decompressing(path, file)?;
    let mut tee = Tee { inner: decoded, tx: None, hung_up: false };
    single_image(path, read_manifest(path, &mut tee, gzip)?)
}

/// The archive's tar bytes: gunzipped when the file starts with gzip's magic
/// (whatever its name says), as is otherwise.
fn decompressing(path: &Path, reader: impl Read + 'static) -> Result<(Box<dyn Read>, bool), ArchiveError> {
    let mut buffered = BufReader::with_capacity(CHUNK, reader);
    let head =
        buffered.fill_buf().map_err(|e| ArchiveError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let decoded: Box<dyn Read> = if gzip { Box::new(MultiGzDecoder::new(buffered)) } else { Box::new(buffered) };
    Ok((decoded, gzip))
}

/// Opens a regular file, with errors a user can act on.
pub fn open(path: &Path) -> Result<File, ArchiveError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ArchiveError::Missing { path: path.to_owned() },
        _ => ArchiveError::Unreadable { path: path.to_owned(), reason: e.to_string() },
    })?;
    let metadata =
        file.metadata().map_err(|e| ArchiveError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    if !metadata.is_file() {
        return Err(ArchiveError::NotAFile { path: path.to_owned() });
    }
    Ok(file)
}

fn check_and_forward(
    path: &Path,
    file: CountingReader,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<ArchiveImage, ArchiveError> {
    let (decoded, gzip) = decompressing(path, file)?;
    let mut tee = Tee { inner: decoded, tx: Some(tx), hung_up: false };
    let manifest = read_manifest(path, &mut tee, gzip);
    // Forward the tail (tar end blocks, padding) even after the last entry.
    let drained = io::copy(&mut tee, &mut io::sink());
    if tee.hung_up {
        return Err(ArchiveError::EngineHungUp { path: path.to_owned() });
    }
    let manifest = manifest?;
    drained.map_err(|e| classify_read_error(path, e, gzip))?;
    single_image(path, manifest)
}

fn read_manifest(path: &Path, tee: &mut Tee<'_>, gzip: bool) -> Result<Vec<ManifestEntry>, ArchiveError> {
    let mut archive = tar::Archive::new(tee);
    let mut manifest = None;
    let entries = archive.entries().map_err(|e| classify_read_error(path, e, gzip))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| classify_read_error(path, e, gzip))?;
        let is_manifest = entry.path().map(|p| p == Path::new("manifest.json")).unwrap_or(false);
        if is_manifest {
            if entry.size() > MAX_MANIFEST_BYTES {
                return Err(ArchiveError::BadManifest {
                    path: path.to_owned(),
                    reason: format!("{} bytes is too large", entry.size()),
                });
            }
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(|e| classify_read_error(path, e, gzip))?;
            let parsed: Vec<ManifestEntry> = serde_json::from_slice(&text)
                .map_err(|e| ArchiveError::BadManifest { path: path.to_owned(), reason: e.to_string() })?;
            manifest = Some(parsed);
        } else {
            io::copy(&mut entry, &mut io::sink()).map_err(|e| classify_read_error(path, e, gzip))?;
        }
    }
    manifest.ok_or_else(|| ArchiveError::NotImageArchive { path: path.to_owned() })
}

fn single_image(path: &Path, manifest: Vec<ManifestEntry>) -> Result<ArchiveImage, ArchiveError> {
    match manifest.len() {
        0 => Err(ArchiveError::NoImages { path: path.to_owned() }),
        1 => {
            let entry = manifest.into_iter().next().ok_or_else(|| ArchiveError::NoImages { path: path.to_owned() })?;
            Ok(ArchiveImage { id: image_id_of(path, &entry.config)?, repo_tags: entry.repo_tags.unwrap_or_default() })
        }
        count => {
            let tags: Vec<String> = manifest
                .iter()
                .map(|m| m.repo_tags.as_ref().and_then(|t| t.first().cloned()).unwrap_or_else(|| "untagged".into()))
                .collect();
            Err(ArchiveError::SeveralImages { path: path.to_owned(), count, tags: tags.join(", ") })
        }
    }
}

/// `abc….json` (legacy layout) or `blobs/sha256/abc…` (OCI layout) to `sha256:abc…`.
fn image_id_of(path: &Path, config: &str) -> Result<String, ArchiveError> {
    let name = config.rsplit('/').next().unwrap_or(config);
    let hex = name.strip_suffix(".json").unwrap_or(name);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
    } else {
        Err(ArchiveError::BadManifest {
            path: path.to_owned(),
            reason: format!("config {config:?} does not name a sha256 digest"),
        })
    }
}

fn classify_read_error(path: &Path, error: io::Error, gzip: bool) -> ArchiveError {
    if let Some(failure) = error.get_ref().and_then(|e| e.downcast_ref::<SourceFailure>()) {
        return ArchiveError::Source { path: path.to_owned(), reason: failure.0.clone() };
    }
    let reason = error.to_string();
    if gzip
        && (error.kind() == io::ErrorKind::InvalidInput
            || error.kind() == io::ErrorKind::InvalidData
            || error.kind() == io::ErrorKind::UnexpectedEof
            || reason.contains("corrupt deflate")
            || reason.contains("invalid gzip"))
    {
        return ArchiveError::CorruptGzip { path: path.to_owned(), reason };
    }
    ArchiveError::NotTar { path: path.to_owned(), reason }
}

/// Passes every byte read on to the engine.
struct Tee<'a> {
    inner: Box<dyn Read>,
    /// `None` when only checking (crash recovery).
    tx: Option<&'a mpsc::Sender<io::Result<Bytes>>>,
    hung_up: bool,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let (true, false, Some(tx)) = (n > 0, self.hung_up, self.tx) {
            if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                // The engine closed the request; keep reading to report a verdict.
                self.hung_up = true;
            }
        }
        Ok(n)
    }
}

/// Counts and hashes the source's bytes (compressed, as stored) for the
/// progress bar and `--sha256`; the digest is published at the end.
struct CountingReader {
    inner: Box<dyn Read + Send>,
    read: u64,
    reported: u64,
    total: Option<u64>,
    phase: &'static str,
    progress: ProgressSink,
    hasher: Sha256,
    digest: Arc<OnceLock<String>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if n == 0 && self.digest.get().is_none() {
            let digest = std::mem::take(&mut self.hasher).finalize();
            let _ = self.digest.set(digest.iter().map(|b| format!("{b:02x}")).collect());
        }
        self.read += n as u64;
        if self.read - self.reported >= 4 << 20 || (n == 0 && self.read != self.reported) {
            self.reported = self.read;
            (self.progress)(Progress { phase: self.phase.into(), current: self.read, total: self.total });
        }
        Ok(n)
    }
}
