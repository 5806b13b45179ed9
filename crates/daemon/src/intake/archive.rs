//! Streaming an image archive into the engine while checking it.
//!
//! The bytes are read once, on the blocking pool: gunzipped when they start
//! with gzip's magic, parsed as a tar, and passed on — as the tar they are —
//! to the engine's load request through a bounded channel. Nothing is
//! buffered beyond the channel and what is held back until the manifest
//! (below).
//!
//! When the tar's `manifest.json` has been read, the checker stops and hands
//! the image it names to the caller through a [`ManifestGate`], and goes on
//! only when the caller says so: the caller persists the undo entry that
//! removes the image before the engine has the whole archive (it cannot
//! finish loading before), and refuses a tag that belongs to another app.
//!
//! Until then the bytes are held back (up to [`HOLD_MAX`]) and every member
//! is hashed: when the manifest comes while nothing has gone out, and the
//! config and layers it names hash to the image id and the config's
//! `diff_ids`, the archive holds exactly that image ([`Found::verified`]).
//! An engine that has it, with the archive's tags, need not read it again:
//! the caller says [`Verdict::Skip`] and the engine is never asked. An
//! archive refused before anything went out never reaches the engine at all.
//!
//! Refused: a stream that is not gzip or tar, a tar without a manifest or
//! naming no or several images, a member that appears twice (`./x` is `x`:
//! docker would read one, berth another), a bad tag, more than the allowed
//! bytes, and data after the end of the tar beyond the padding of a tar record.

use berth_core::engine::{Progress, ProgressSink};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the reader and the engine: 2 MiB of memory at most.
pub const CHANNEL_DEPTH: usize = 8;
/// A manifest larger than this is not a docker-save manifest.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// What may follow the tar's end: tar tools pad to records of 10 KiB; more
/// is not part of the image (an endless body after a valid tar, say).
const MAX_TRAILING_BYTES: u64 = 1 << 20;
/// The bytes held back while the checker cannot yet tell whether the engine
/// needs them: an archive (of an image the engine has) up to this size is
/// never sent; a larger one goes to the engine from here on, as before.
pub const HOLD_MAX: usize = 4 << 20;
/// Members up to this size are kept while held, for the one among them that
/// the manifest names as the image config.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The reads of a member's content: larger than `io::copy`'s 8 KiB.
const DRAIN_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{origin}: corrupt gzip data: {reason}")]
    CorruptGzip { origin: String, reason: String },
    #[error("{origin} is not a tar archive: {reason}")]
    NotTar { origin: String, reason: String },
    #[error("{origin} is not an image archive: it has no manifest.json (make one with `docker save`)")]
    NotImageArchive { origin: String },
    #[error("{origin}: manifest.json is malformed: {reason}")]
    BadManifest { origin: String, reason: String },
    #[error("{origin} holds no image")]
    NoImages { origin: String },
    #[error("{origin} holds {count} images ({tags}); an app is made from exactly one")]
    SeveralImages { origin: String, count: usize, tags: String },
    #[error("{origin} holds {member:?} twice (as {first:?} and {second:?}); refusing an archive that reads differently depending on who reads it")]
    DuplicateMember { origin: String, member: String, first: String, second: String },
    #[error("{origin}: the manifest tags the image {tag:?}, which is not a valid image reference: {reason}")]
    BadTag { origin: String, tag: String, reason: String },
    #[error("{origin} is larger than the {limit} bytes allowed ([fetch] max_archive_bytes)")]
    TooLarge { origin: String, limit: u64 },
    #[error("{origin} goes on after the end of its tar archive; refusing the extra data")]
    TrailingData { origin: String },
    #[error("{origin}: {reason}")]
    Source { origin: String, reason: String },
    #[error("{origin}: the engine stopped reading the archive")]
    EngineHungUp { origin: String },
    #[error("{origin}: the image was refused: {reason}")]
    Refused { origin: String, reason: String },
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
    #[serde(default)]
    layers: Vec<String>,
}

/// The part of an image config that names its layers.
#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// A checked archive: its one image and, when asked for, the SHA-256 of its
/// bytes as read (compressed, as stored), for `--sha256`.
#[derive(Debug, Clone)]
pub struct Checked {
    pub image: ArchiveImage,
    pub sha256: Option<String>,
}

/// What the checker found at the manifest.
#[derive(Debug, Clone)]
pub struct Found {
    pub image: ArchiveImage,
    /// Nothing has gone to the engine yet, and the config and every layer
    /// the manifest names came before it and hash to the image id and the
    /// config's `diff_ids`: the archive holds exactly image `image.id`.
    pub verified: bool,
}

/// The caller's answer at the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the archive to the engine.
    Load,
    /// The engine has the image and its tags: send it nothing (only after a
    /// [`Found::verified`]; otherwise the same as `Load`).
    Skip,
}

/// The checker's pause at the manifest: it sends what it found, then waits
/// for the caller's verdict (`Err(reason)` refuses the archive).
pub struct ManifestGate {
    pub found: oneshot::Sender<Found>,
    pub verdict: std::sync::mpsc::Receiver<Result<Verdict, String>>,
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

/// Limits and labels of one check.
pub struct CheckOptions {
    /// The path or URL, for messages.
    pub origin: String,
    pub total: Option<u64>,
    /// What the progress bar says ("loading image", "downloading").
    pub phase: &'static str,
    pub max_bytes: u64,
    pub progress: ProgressSink,
    /// Hash the bytes as read (only `--sha256` needs it: a 100 MB archive
    /// is a tenth of a CPU second).
    pub hash: bool,
}

/// Reads `input` to its end, passing the tar on through `tx`; blocking.
pub fn check(
    input: impl Read,
    options: CheckOptions,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    gate: ManifestGate,
) -> Result<Checked, ArchiveError> {
    let origin = options.origin.clone();
    let mut counted = CountingReader {
        inner: input,
        read: 0,
        reported: 0,
        total: options.total,
        phase: options.phase,
        progress: options.progress,
        hasher: options.hash.then(Sha256::new),
        max_bytes: options.max_bytes,
        too_large: false,
    };
    let result = check_and_forward(&origin, &mut counted, tx, gate);
    let result = match result {
        Err(_) if counted.too_large => Err(ArchiveError::TooLarge { origin: origin.clone(), limit: options.max_bytes }),
        other => other,
    };
    if let Err(error) = &result {
        // Fail the upload too, so the engine does not load a partial archive.
        let _ = tx.blocking_send(Err(io::Error::other(error.to_string())));
    }
    let image = result?;
    Ok(Checked { image, sha256: counted.hasher.map(|h| hex::encode(h.finalize())) })
}

fn check_and_forward(
    origin: &str,
    input: &mut dyn Read,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    gate: ManifestGate,
) -> Result<ArchiveImage, ArchiveError> {
    let mut buffered = BufReader::with_capacity(CHUNK, input);
    let head = buffered.fill_buf().map_err(|e| classify(origin, e, false))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let mut decoded: Box<dyn Read + '_> =
        if gzip { Box::new(MultiGzDecoder::new(buffered)) } else { Box::new(buffered) };
    let forward = RefCell::new(Forward { tx: tx.clone(), mode: Mode::Holding(Vec::new()), hung_up: false });
    let image = read_entries(origin, Tee { inner: &mut decoded, forward: &forward }, &forward, gzip, gate)
        .and_then(|image| forward.borrow_mut().finish().map(|()| image).map_err(|e| classify(origin, e, gzip)));
    if forward.borrow().hung_up {
        return Err(ArchiveError::EngineHungUp { origin: origin.to_owned() });
    }
    let image = image?;
    // The end of the tar has been passed on; what follows is read (for the
    // checksum and the gzip trailer) but not forwarded, and only so much.
    let trailing = io::copy(&mut (&mut decoded).take(MAX_TRAILING_BYTES + 1), &mut io::sink())
        .map_err(|e| classify(origin, e, gzip))?;
    if trailing > MAX_TRAILING_BYTES {
        return Err(ArchiveError::TrailingData { origin: origin.to_owned() });
    }
    Ok(image)
}

fn read_entries(
    origin: &str,
    tee: Tee<'_>,
    forward: &RefCell<Forward>,
    gzip: bool,
    gate: ManifestGate,
) -> Result<ArchiveImage, ArchiveError> {
    let mut archive = tar::Archive::new(tee);
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut names: HashMap<PathBuf, String> = HashMap::new();
    let mut held = HeldMembers::default();
    let mut buf = vec![0u8; DRAIN_BUFFER];
    let mut image = None;
    let mut gate = Some(gate);
    let entries = archive.entries().map_err(|e| classify(origin, e, gzip))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| classify(origin, e, gzip))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let normal = normalize(&raw);
        if !seen.insert(normal.clone()) {
            return Err(ArchiveError::DuplicateMember {
                origin: origin.to_owned(),
                member: normal.display().to_string(),
                first: names.get(&normal).cloned().unwrap_or_default(),
                second: raw,
            });
        }
        names.insert(normal.clone(), raw);
        if normal == Path::new("manifest.json") {
            if entry.size() > MAX_MANIFEST_BYTES {
                return Err(ArchiveError::BadManifest {
                    origin: origin.to_owned(),
                    reason: format!("{} bytes is too large", entry.size()),
                });
            }
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(|e| classify(origin, e, gzip))?;
            let parsed: Vec<ManifestEntry> = serde_json::from_slice(&text)
                .map_err(|e| ArchiveError::BadManifest { origin: origin.to_owned(), reason: e.to_string() })?;
            let (found, layout) = single_image(origin, parsed)?;
            let verified = forward.borrow().is_holding() && held.hold_exactly(&found.id, &layout);
            // Pause: the caller records what it needs before the engine can finish.
            if let Some(gate) = gate.take() {
                let _ = gate.found.send(Found { image: found.clone(), verified });
                let verdict = match gate.verdict.recv() {
                    Ok(Ok(verdict)) => verdict,
                    Ok(Err(reason)) => return Err(ArchiveError::Refused { origin: origin.to_owned(), reason }),
                    Err(_) => {
                        return Err(ArchiveError::Refused { origin: origin.to_owned(), reason: "cancelled".into() })
                    }
                };
                let mut forward = forward.borrow_mut();
                match verdict {
                    Verdict::Skip if verified => forward.discard(),
                    _ => forward.release().map_err(|e| classify(origin, e, gzip))?,
                }
            }
            held = HeldMembers::default();
            image = Some(found);
        } else if forward.borrow().is_holding() {
            held.read(normal, &mut entry, &mut buf).map_err(|e| classify(origin, e, gzip))?;
        } else {
            drain(&mut entry, &mut buf).map_err(|e| classify(origin, e, gzip))?;
        }
    }
    image.ok_or_else(|| ArchiveError::NotImageArchive { origin: origin.to_owned() })
}

/// Reads a member to its end (the bytes go on through the [`Tee`]).
fn drain(entry: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    while entry.read(buf)? > 0 {}
    Ok(())
}

/// The digests (and, when small, the contents) of the members read while
/// the bytes were held back.
#[derive(Default)]
struct HeldMembers {
    digests: HashMap<PathBuf, String>,
    small: HashMap<PathBuf, Vec<u8>>,
}

impl HeldMembers {
    fn read(&mut self, member: PathBuf, entry: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let mut small = true;
        loop {
            let n = entry.read(buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            small = small && (kept.len() + n) as u64 <= MAX_CONFIG_BYTES;
            if small {
                kept.extend_from_slice(&buf[..n]);
            } else {
                kept = Vec::new();
            }
        }
        self.digests.insert(member.clone(), format!("sha256:{}", hex::encode(hasher.finalize())));
        if small {
            self.small.insert(member, kept);
        }
        Ok(())
    }

    /// Whether the members read so far are image `id`: its config (whose
    /// digest is the id) and the layers `layout` names, in order, each with
    /// the digest the config lists for it.
    fn hold_exactly(&self, id: &str, layout: &ManifestEntry) -> bool {
        let config = normalize(&layout.config);
        if self.digests.get(&config).map(String::as_str) != Some(id) {
            return false;
        }
        let Some(parsed) = self.small.get(&config).and_then(|b| serde_json::from_slice::<ImageConfig>(b).ok()) else {
            return false;
        };
        let diff_ids = parsed.rootfs.diff_ids;
        diff_ids.len() == layout.layers.len()
            && layout.layers.iter().zip(&diff_ids).all(|(layer, diff_id)| {
                self.digests.get(&normalize(layer)).is_some_and(|digest| digest.eq_ignore_ascii_case(diff_id))
            })
    }
}

/// `./a//b/` → `a/b`: how a tar reader that resolves paths sees a member name.
fn normalize(raw: &str) -> PathBuf {
    Path::new(raw)
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_owned()),
            _ => None,
        })
        .collect()
}

/// The one image the manifest names, with its entry (the config and layer members).
fn single_image(origin: &str, manifest: Vec<ManifestEntry>) -> Result<(ArchiveImage, ManifestEntry), ArchiveError> {
    match manifest.len() {
        0 => Err(ArchiveError::NoImages { origin: origin.to_owned() }),
        1 => {
            let entry =
                manifest.into_iter().next().ok_or_else(|| ArchiveError::NoImages { origin: origin.to_owned() })?;
            let repo_tags = entry.repo_tags.clone().unwrap_or_default();
            for tag in &repo_tags {
                berth_core::source::ImageReference::parse(tag).map_err(|e| ArchiveError::BadTag {
                    origin: origin.to_owned(),
                    tag: tag.clone(),
                    reason: e.to_string(),
                })?;
            }
            Ok((ArchiveImage { id: image_id_of(origin, &entry.config)?, repo_tags }, entry))
        }
        count => {
            let tags: Vec<String> = manifest
                .iter()
                .map(|m| m.repo_tags.as_ref().and_then(|t| t.first().cloned()).unwrap_or_else(|| "untagged".into()))
                .collect();
            Err(ArchiveError::SeveralImages { origin: origin.to_owned(), count, tags: tags.join(", ") })
        }
    }
}

/// `abc….json` (legacy layout) or `blobs/sha256/abc…` (OCI layout) to `sha256:abc…`.
fn image_id_of(origin: &str, config: &str) -> Result<String, ArchiveError> {
    let name = config.rsplit('/').next().unwrap_or(config);
    let hex = name.strip_suffix(".json").unwrap_or(name);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
    } else {
        Err(ArchiveError::BadManifest {
            origin: origin.to_owned(),
            reason: format!("config {config:?} does not name a sha256 digest"),
        })
    }
}

fn classify(origin: &str, error: io::Error, gzip: bool) -> ArchiveError {
    if let Some(failure) = error.get_ref().and_then(|e| e.downcast_ref::<SourceFailure>()) {
        return ArchiveError::Source { origin: origin.to_owned(), reason: failure.0.clone() };
    }
    let reason = error.to_string();
    if gzip
        && (error.kind() == io::ErrorKind::InvalidInput
            || error.kind() == io::ErrorKind::InvalidData
            || error.kind() == io::ErrorKind::UnexpectedEof
            || reason.contains("corrupt deflate")
            || reason.contains("invalid gzip"))
    {
        return ArchiveError::CorruptGzip { origin: origin.to_owned(), reason };
    }
    ArchiveError::NotTar { origin: origin.to_owned(), reason }
}

/// Where the tar's bytes go: held back while undecided, then to the engine
/// or nowhere.
struct Forward {
    tx: mpsc::Sender<io::Result<Bytes>>,
    mode: Mode,
    hung_up: bool,
}

enum Mode {
    Holding(Vec<u8>),
    /// Bytes gathered into a chunk: the tar reader reads 8 KiB at a time,
    /// and a send (a wake-up of the upload, a write to the engine) per read
    /// costs more than the copy.
    Sending(Vec<u8>),
    Discarding,
}

impl Forward {
    fn is_holding(&self) -> bool {
        matches!(self.mode, Mode::Holding(_))
    }

    fn pass(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.mode {
            Mode::Holding(held) => {
                // Grow by doubling, but never past the hold (plus this read):
                // a Vec left to itself would take 8 MiB to pass 4.
                let needed = held.len() + data.len();
                if needed > held.capacity() {
                    let target = (held.capacity() * 2).clamp(CHUNK, HOLD_MAX + CHUNK).max(needed);
                    held.reserve_exact(target - held.len());
                }
                held.extend_from_slice(data);
                if held.len() > HOLD_MAX {
                    return self.release();
                }
                Ok(())
            }
            Mode::Sending(pending) => {
                pending.extend_from_slice(data);
                if pending.len() >= CHUNK {
                    let chunk = std::mem::replace(pending, Vec::with_capacity(CHUNK + data.len()));
                    return self.send(Bytes::from(chunk));
                }
                Ok(())
            }
            Mode::Discarding => Ok(()),
        }
    }

    /// Sends what was held back, and from now on every byte as it comes.
    fn release(&mut self) -> io::Result<()> {
        let Mode::Holding(held) = &mut self.mode else { return Ok(()) };
        let held = Bytes::from(std::mem::take(held));
        self.mode = Mode::Sending(Vec::with_capacity(CHUNK));
        for start in (0..held.len()).step_by(CHUNK) {
            self.send(held.slice(start..(start + CHUNK).min(held.len())))?;
        }
        Ok(())
    }

    /// Sends what is held or gathered: the tar has ended.
    fn finish(&mut self) -> io::Result<()> {
        self.release()?;
        match &mut self.mode {
            Mode::Sending(pending) if !pending.is_empty() => {
                let chunk = std::mem::take(pending);
                self.send(Bytes::from(chunk))
            }
            _ => Ok(()),
        }
    }

    /// Drops what was held back and all that follows: the engine has the image.
    fn discard(&mut self) {
        self.mode = Mode::Discarding;
    }

    fn send(&mut self, chunk: Bytes) -> io::Result<()> {
        if self.tx.blocking_send(Ok(chunk)).is_err() {
            // The engine (or a cancelled operation) closed the request: stop
            // reading, an endless source must not keep this thread busy.
            self.hung_up = true;
            return Err(io::Error::other("the engine stopped reading"));
        }
        Ok(())
    }
}

/// Passes every byte the tar reader reads on to [`Forward`].
struct Tee<'a> {
    inner: &'a mut dyn Read,
    forward: &'a RefCell<Forward>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.forward.borrow_mut().pass(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Counts, limits and hashes the source's bytes (compressed, as stored) for
/// the progress bar, `max_archive_bytes` and `--sha256`.
struct CountingReader<R> {
    inner: R,
    read: u64,
    reported: u64,
    total: Option<u64>,
    phase: &'static str,
    progress: ProgressSink,
    hasher: Option<Sha256>,
    max_bytes: u64,
    too_large: bool,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.read += n as u64;
        if self.read > self.max_bytes {
            self.too_large = true;
            return Err(io::Error::other("too large"));
        }
        if self.read - self.reported >= 4 << 20 || (n == 0 && self.read != self.reported) {
            self.reported = self.read;
            (self.progress)(Progress { phase: self.phase.into(), current: self.read, total: self.total });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_testkit::ImageBuilder;

    #[test]
    fn member_names_are_compared_as_a_tar_reader_resolves_them() {
        assert_eq!(normalize("./manifest.json"), PathBuf::from("manifest.json"));
        assert_eq!(normalize("manifest.json"), PathBuf::from("manifest.json"));
        assert_eq!(normalize("a//b/"), PathBuf::from("a/b"));
        assert_eq!(normalize("/x"), PathBuf::from("x"));
    }

    /// What one check did: what it found at the manifest, the bytes it let
    /// out to the engine, and its result.
    struct Run {
        found: Found,
        sent: Vec<u8>,
        result: Result<Checked, ArchiveError>,
    }

    /// A check without limits or progress.
    fn options(origin: &str, hash: bool) -> CheckOptions {
        CheckOptions {
            origin: origin.into(),
            total: None,
            phase: "loading image",
            max_bytes: u64::MAX,
            progress: std::sync::Arc::new(|_| {}),
            hash,
        }
    }

    fn check_with(bytes: Vec<u8>, verdict: Verdict) -> Run {
        let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
        let (found_tx, found_rx) = oneshot::channel();
        let (verdict_tx, verdict_rx) = std::sync::mpsc::channel();
        let drain = std::thread::spawn(move || {
            let mut sent = Vec::new();
            while let Some(chunk) = rx.blocking_recv() {
                sent.extend_from_slice(&chunk.expect("a chunk, not an error"));
            }
            sent
        });
        let checker = std::thread::spawn(move || {
            let options = options("test.tar", true);
            check(io::Cursor::new(bytes), options, &tx, ManifestGate { found: found_tx, verdict: verdict_rx })
        });
        let found = found_rx.blocking_recv().expect("the checker reaches the manifest");
        verdict_tx.send(Ok(verdict)).unwrap();
        let result = checker.join().unwrap();
        Run { found, sent: drain.join().unwrap(), result }
    }

    fn image(marker: &str) -> ImageBuilder {
        ImageBuilder::new("berth-test/archive:1").layer_marker(marker)
    }

    #[test]
    fn a_small_archive_is_verified_and_a_skip_sends_the_engine_nothing() {
        let bytes = image("verified").to_tar_bytes().unwrap();
        let run = check_with(bytes, Verdict::Skip);
        assert!(run.found.verified);
        assert!(run.sent.is_empty(), "{} bytes went out", run.sent.len());
        assert_eq!(run.result.unwrap().image, run.found.image);
    }

    #[test]
    fn a_load_sends_the_whole_tar_as_it_was() {
        let bytes = image("loaded").to_tar_bytes().unwrap();
        let run = check_with(bytes.clone(), Verdict::Load);
        assert!(run.found.verified);
        run.result.unwrap();
        assert_eq!(run.sent, bytes[..run.sent.len()].to_vec());
        // What follows the tar's end blocks (record padding) is not forwarded.
        assert!(
            run.sent.len() >= bytes.len().saturating_sub(10240)
                && !run.sent.is_empty()
                && run.sent.len() <= bytes.len()
        );
    }

    #[test]
    fn a_layer_that_is_not_the_configs_is_not_verified_and_a_skip_still_loads() {
        let mut bytes = image("marker-aaaa").to_tar_bytes().unwrap();
        let at = bytes.windows(11).position(|w| w == b"marker-aaaa").expect("the marker is in the layer");
        bytes[at..at + 11].copy_from_slice(b"marker-bbbb");
        let run = check_with(bytes.clone(), Verdict::Skip);
        assert!(!run.found.verified);
        run.result.unwrap();
        assert_eq!(run.sent, bytes[..run.sent.len()].to_vec());
        assert!(!run.sent.is_empty());
    }

    #[test]
    fn an_archive_larger_than_the_hold_goes_out_before_the_manifest() {
        let big = image("big").pseudorandom_file("/big", HOLD_MAX as u64 + (1 << 20) + 77, 7);
        let bytes = big.to_tar_bytes().unwrap();
        let run = check_with(bytes.clone(), Verdict::Skip);
        assert!(!run.found.verified, "nothing may be verified once bytes went out");
        run.result.unwrap();
        assert_eq!(run.sent, bytes[..run.sent.len()].to_vec());
        assert!(run.sent.len() >= bytes.len() - 10240, "{} of {} bytes went out", run.sent.len(), bytes.len());
    }

    #[test]
    fn an_archive_refused_before_the_manifest_never_reaches_the_engine() {
        let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
        let (found_tx, _found_rx) = oneshot::channel();
        let (_verdict_tx, verdict_rx) = std::sync::mpsc::channel();
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_cksum();
        tar.append_data(&mut header, "a", &b"abc"[..]).unwrap();
        tar.append_data(&mut header, "./a", &b"abc"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let options = options("dup.tar", false);
        let result = check(io::Cursor::new(bytes), options, &tx, ManifestGate { found: found_tx, verdict: verdict_rx });
        assert!(matches!(result, Err(ArchiveError::DuplicateMember { .. })), "{result:?}");
        drop(tx);
        // Only the refusal goes out, no byte of the archive.
        assert!(rx.blocking_recv().expect("the refusal").is_err());
        assert!(rx.blocking_recv().is_none());
    }
}
