//! Offline Docker image archives for tests and demos.
//!
//! Tests have no registry access, so every image is assembled here from the
//! host's `busybox-static` binary and written in the exact `docker save`
//! layout (legacy layout with `manifest.json`, which every engine loads via
//! `POST /images/load`):
//!
//! ```text
//! <layerid>/               directory entry
//! <layerid>/VERSION        "1.0"
//! <layerid>/json           minimal legacy v1 json
//! <layerid>/layer.tar      the single, uncompressed filesystem layer
//! <confighex>.json         image config; its sha256 is the image id
//! repositories             legacy tag map (only when tagged)
//! manifest.json            last, like `docker save`
//! ```
//!
//! Output is deterministic (fixed mtimes, uid/gid 0, sorted entries, sorted
//! JSON keys), so one builder always yields the same image id.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Where busybox-static lives on the test machines (Debian `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Applets linked to `/bin/busybox` by [`ImageBuilder::busybox`].
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "mkdir", "rm", "tar", "gzip", "touch", "date", "wc", "true", "false", "kill",
    "ps", "env", "id", "head", "tail", "grep", "sed", "printf", "test", "[", "seq", "cp", "mv", "chmod",
];

/// The `Cmd` of [`ImageBuilder::service`]: runs forever, exits 0 on TERM/INT.
///
/// As PID 1 the shell gets no default signal dispositions from the kernel, so
/// without the trap `docker stop` would wait the full timeout and SIGKILL.
/// `sleep & wait` keeps the shell interruptible: a foreground `sleep` would
/// delay the trap until the sleep ends.
pub const SERVICE_CMD: &[&str] = &["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1 & wait $!; done"];

/// Docker's default `PATH`; images built by `docker build` from scratch get none,
/// but every image on Docker Hub carries this one, and tests expect it.
pub const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// 2026-01-01T00:00:00Z: the fixed mtime of every tar entry.
const FIXED_MTIME: u64 = 1_767_225_600;
/// Same instant as [`FIXED_MTIME`], for JSON `created` fields.
const FIXED_CREATED: &str = "2026-01-01T00:00:00Z";
/// Marker file written by [`ImageBuilder::layer_marker`].
const MARKER_PATH: &str = "/etc/berth-marker";
/// Healthcheck probes may be slow on a loaded 2-core CI box: never time out sooner.
const MIN_HEALTHCHECK_TIMEOUT_MS: u64 = 2_000;

/// Result of writing an image archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    /// `sha256:<hex of the config json>`: exactly what `docker inspect` reports as `Id`.
    pub image_id: String,
    /// Normalized `repo:tag` (`:latest` added when no tag was given), `None` if untagged.
    pub repo_tag: Option<String>,
    /// The archive file (empty for in-memory archives).
    pub path: PathBuf,
}

/// Builds one single-layer Docker image and writes it as a `docker save` archive.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    repo_tag: Option<String>,
    /// Layer entries keyed by their path inside the image, without leading `/`.
    /// A `BTreeMap` sorts parents before children (a prefix sorts first).
    entries: BTreeMap<String, LayerEntry>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    env: Vec<String>,
    labels: BTreeMap<String, String>,
    workdir: Option<String>,
    healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Clone)]
enum LayerEntry {
    Dir { mode: u32 },
    File { source: FileSource, mode: u32 },
    Symlink { target: String },
}

/// File contents are produced at write time, so the builder stays infallible.
#[derive(Debug, Clone)]
enum FileSource {
    Bytes(Vec<u8>),
    HostFile(PathBuf),
    Pseudorandom { len: u64, seed: u64 },
}

#[derive(Debug, Clone)]
struct Healthcheck {
    test: Vec<String>,
    interval_ms: u64,
    retries: u32,
}

impl ImageBuilder {
    /// An image tagged `repo_tag` (e.g. `berth-test/sample:1`); `""` means untagged.
    pub fn new(repo_tag: &str) -> Self {
        let mut builder = Self::untagged();
        builder.repo_tag = normalize_repo_tag(repo_tag);
        builder
    }

    /// An image whose manifest has `RepoTags: null`; load it and refer to it by id.
    pub fn untagged() -> Self {
        Self {
            repo_tag: None,
            entries: BTreeMap::new(),
            cmd: None,
            entrypoint: None,
            env: Vec::new(),
            labels: BTreeMap::new(),
            workdir: None,
            healthcheck: None,
        }
    }

    /// The normalized tag this builder writes, if any.
    pub fn repo_tag(&self) -> Option<&str> {
        self.repo_tag.as_deref()
    }

    /// Adds `/bin/busybox` from the host, applet symlinks, and `/tmp`, `/etc`, `/root`.
    pub fn busybox(self) -> Self {
        let mut builder = self
            .dir("/bin", 0o755)
            .host_file("/bin/busybox", HOST_BUSYBOX, 0o755)
            .dir("/tmp", 0o1777)
            .dir("/etc", 0o755)
            .dir("/root", 0o700);
        for applet in BUSYBOX_APPLETS {
            // Relative target: resolves the same inside the container and when
            // the layer is unpacked somewhere else for inspection.
            builder = builder.symlink(&format!("/bin/{applet}"), "busybox");
        }
        builder
    }

    /// Adds a regular file at absolute `path`; missing parent dirs are added (0755).
    pub fn file(self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        let source = FileSource::Bytes(contents.into());
        self.insert_file(path, source, mode)
    }

    /// Adds a file copied from the host when the archive is written.
    pub fn host_file(self, path: &str, host_path: impl Into<PathBuf>, mode: u32) -> Self {
        let source = FileSource::HostFile(host_path.into());
        self.insert_file(path, source, mode)
    }

    /// Adds a file of `len` deterministic pseudo-random bytes, generated while
    /// streaming (never held in memory), so large archives don't compress away.
    pub fn pseudorandom_file(self, path: &str, len: u64, seed: u64) -> Self {
        let source = FileSource::Pseudorandom { len, seed };
        self.insert_file(path, source, 0o644)
    }

    /// Adds a directory (replacing an implicitly created parent's mode).
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let key = layer_key(path);
        self.add_parent_dirs(&key);
        self.entries.insert(key, LayerEntry::Dir { mode });
        self
    }

    /// Adds a symlink at absolute `path` pointing to `target` (stored verbatim).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let key = layer_key(path);
        self.add_parent_dirs(&key);
        let entry = LayerEntry::Symlink { target: target.to_owned() };
        self.entries.insert(key, entry);
        self
    }

    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.cmd = Some(to_strings(argv));
        self
    }

    pub fn entrypoint(mut self, argv: &[&str]) -> Self {
        self.entrypoint = Some(to_strings(argv));
        self
    }

    /// Adds `KEY=VALUE` to the config `Env` (a `PATH=` entry replaces the default PATH).
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_owned());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets `WorkingDir` and adds the directory to the layer, so it exists
    /// with a known mode rather than whatever the engine would create.
    pub fn workdir(mut self, dir: &str) -> Self {
        self.workdir = Some(dir.to_owned());
        let key = layer_key(dir);
        if key.is_empty() || self.entries.contains_key(&key) {
            return self;
        }
        self.dir(dir, 0o755)
    }

    /// Sets the config `Healthcheck`.
    ///
    /// `test` follows Docker: a first element of `CMD`, `CMD-SHELL` or `NONE`
    /// is kept; otherwise `CMD` is prepended, so `&["true"]` means exec `true`.
    /// `Timeout` is `max(interval, 2 s)`; `StartPeriod` is 0.
    pub fn healthcheck(mut self, test: &[&str], interval_ms: u64, retries: u32) -> Self {
        let test = healthcheck_test(test);
        self.healthcheck = Some(Healthcheck { test, interval_ms, retries });
        self
    }

    /// busybox plus [`SERVICE_CMD`]: a container that runs until stopped and
    /// exits 0 promptly on SIGTERM.
    pub fn service(self) -> Self {
        self.busybox().cmd(SERVICE_CMD)
    }

    /// Adds `/etc/berth-marker` holding `text`: a cheap way to get a distinct image id.
    pub fn layer_marker(self, text: &str) -> Self {
        self.file(MARKER_PATH, text, 0o644)
    }

    /// Writes an uncompressed `docker save` archive to `path`.
    pub fn write_tar(&self, path: &Path) -> io::Result<ImageArchive> {
        let file = BufWriter::new(File::create(path)?);
        let (archive, file) = self.write_archive_to(file)?;
        finish_file(file)?;
        Ok(archive.at(path))
    }

    /// Writes a gzip-compressed `docker save` archive to `path`.
    pub fn write_tar_gz(&self, path: &Path) -> io::Result<ImageArchive> {
        let gzip = gzip_writer(BufWriter::new(File::create(path)?));
        let (archive, gzip) = self.write_archive_to(gzip)?;
        finish_file(gzip.finish()?)?;
        Ok(archive.at(path))
    }

    /// The uncompressed `docker save` archive in memory.
    pub fn to_tar_bytes(&self) -> io::Result<Vec<u8>> {
        let (_, bytes) = self.write_archive_to(Vec::new())?;
        Ok(bytes)
    }

    /// Streams the archive into `out`, returning it for finishing (gzip, flush).
    fn write_archive_to<W: Write>(&self, out: W) -> io::Result<(ImageArchive, W)> {
        let prepared = self.prepare()?;
        let archive = prepared.archive();
        let out = write_docker_save(out, &mut [prepared])?;
        Ok((archive, out))
    }

    fn insert_file(mut self, path: &str, source: FileSource, mode: u32) -> Self {
        let key = layer_key(path);
        self.add_parent_dirs(&key);
        self.entries.insert(key, LayerEntry::File { source, mode });
        self
    }

    /// Adds 0755 entries for missing ancestors; explicit dirs keep their mode.
    fn add_parent_dirs(&mut self, key: &str) {
        for (index, _) in key.match_indices('/') {
            let parent = &key[..index];
            if !self.entries.contains_key(parent) {
                self.entries.insert(parent.to_owned(), LayerEntry::Dir { mode: 0o755 });
            }
        }
    }

    /// Writes the layer to an anonymous temp file (hashing it on the way) and
    /// derives the config from its digest. The layer is never held in memory.
    fn prepare(&self) -> io::Result<PreparedImage> {
        let layer = write_layer(&self.entries)?;
        let config_bytes = self.config_bytes(&layer.diff_hex)?;
        let config_hex = sha256_hex(&config_bytes);
        Ok(PreparedImage { repo_tag: self.repo_tag.clone(), layer, config_bytes, config_hex })
    }

    fn config_bytes(&self, diff_hex: &str) -> io::Result<Vec<u8>> {
        let config = json!({
            "architecture": docker_architecture(),
            "os": "linux",
            "created": FIXED_CREATED,
            "config": self.container_config(),
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_hex}")] },
            "history": [{ "created": FIXED_CREATED, "created_by": "berth-testkit" }],
        });
        // serde_json sorts object keys (no preserve_order), so bytes are stable.
        serde_json::to_vec(&config).map_err(io::Error::other)
    }

    /// The `config` object; absent settings are omitted rather than null.
    fn container_config(&self) -> Value {
        let mut config = serde_json::Map::new();
        config.insert("Env".into(), json!(self.effective_env()));
        if let Some(cmd) = &self.cmd {
            config.insert("Cmd".into(), json!(cmd));
        }
        if let Some(entrypoint) = &self.entrypoint {
            config.insert("Entrypoint".into(), json!(entrypoint));
        }
        if !self.labels.is_empty() {
            config.insert("Labels".into(), json!(self.labels));
        }
        if let Some(workdir) = &self.workdir {
            config.insert("WorkingDir".into(), json!(workdir));
        }
        if let Some(healthcheck) = &self.healthcheck {
            config.insert("Healthcheck".into(), healthcheck.to_json());
        }
        Value::Object(config)
    }

    fn effective_env(&self) -> Vec<String> {
        let sets_path = self.env.iter().any(|kv| kv.starts_with("PATH="));
        let default_path = (!sets_path).then(|| DEFAULT_PATH_ENV.to_owned());
        default_path.into_iter().chain(self.env.iter().cloned()).collect()
    }
}

impl Healthcheck {
    fn to_json(&self) -> Value {
        const NANOS_PER_MS: u64 = 1_000_000;
        let timeout_ms = self.interval_ms.max(MIN_HEALTHCHECK_TIMEOUT_MS);
        json!({
            "Test": self.test,
            "Interval": self.interval_ms.saturating_mul(NANOS_PER_MS),
            "Timeout": timeout_ms.saturating_mul(NANOS_PER_MS),
            "Retries": self.retries,
            "StartPeriod": 0,
        })
    }
}

// ---------------------------------------------------------------------------
// Hostile / malformed archives for bad-input tests.
// ---------------------------------------------------------------------------

/// One `docker save` archive holding several images (one manifest entry each).
/// Layers or configs shared between images are written once, as docker does.
pub fn write_multi_image_tar(path: &Path, images: &[ImageBuilder]) -> io::Result<Vec<ImageArchive>> {
    let mut prepared = images.iter().map(ImageBuilder::prepare).collect::<io::Result<Vec<_>>>()?;
    let archives = prepared.iter().map(|image| image.archive().at(path)).collect();
    let file = write_docker_save(BufWriter::new(File::create(path)?), &mut prepared)?;
    finish_file(file)?;
    Ok(archives)
}

/// A tar whose only member is `manifest.json` = `[]`.
pub fn write_empty_manifest_tar(path: &Path) -> io::Result<()> {
    let mut tar = new_tar(BufWriter::new(File::create(path)?));
    append_bytes(&mut tar, "manifest.json", b"[]", 0o644)?;
    finish_file(tar.into_inner()?)
}

/// A valid tar of ordinary files with no `manifest.json`: not an image archive.
pub fn write_plain_tar(path: &Path) -> io::Result<()> {
    let mut tar = new_tar(BufWriter::new(File::create(path)?));
    append_dir(&mut tar, "docs/", 0o755)?;
    append_bytes(&mut tar, "docs/readme.txt", b"just some notes, not an image\n", 0o644)?;
    append_bytes(&mut tar, "hello.txt", b"hello\n", 0o644)?;
    finish_file(tar.into_inner()?)
}

/// Gzip magic and a correctly compressed start of a real image archive, then
/// garbage and no trailer: gunzip succeeds for a while and fails mid-stream.
pub fn write_corrupt_gzip(path: &Path) -> io::Result<()> {
    const VALID_PREFIX_MAX: usize = 64 * 1024;
    let archive = ImageBuilder::new("berth-test/corrupt-gzip:1").service().to_tar_bytes()?;
    let prefix_len = (archive.len() / 2).min(VALID_PREFIX_MAX);
    let mut gzip = gzip_writer(Vec::new());
    gzip.write_all(&archive[..prefix_len])?;
    // A sync flush ends on a byte boundary, so everything so far decodes.
    gzip.flush()?;
    // Copy only what is flushed: the encoder (and the trailer it would add) is dropped.
    let valid_start = gzip.get_ref().clone();
    let mut file = File::create(path)?;
    file.write_all(&valid_start)?;
    // 0xFF starts a deflate block of the reserved type 3: a decode error, not
    // merely an unexpected EOF.
    file.write_all(&[0xFF; 256])?;
    file.sync_all()
}

/// A real archive of `builder` cut in the middle of its `layer.tar`.
pub fn write_truncated_tar(path: &Path, builder: &ImageBuilder) -> io::Result<()> {
    let bytes = builder.to_tar_bytes()?;
    let cut = layer_midpoint(&bytes)?;
    let mut file = File::create(path)?;
    file.write_all(&bytes[..cut])?;
    file.sync_all()
}

/// Offset halfway through the first `layer.tar` member's data.
fn layer_midpoint(archive_bytes: &[u8]) -> io::Result<usize> {
    let mut archive = tar::Archive::new(archive_bytes);
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.path()?.ends_with("layer.tar") {
            let start = entry.raw_file_position() + entry.size() / 2;
            return usize::try_from(start).map_err(io::Error::other);
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "archive has no layer.tar"))
}

// ---------------------------------------------------------------------------
// docker save layout.
// ---------------------------------------------------------------------------

/// An image whose layer is written (to a temp file) and config computed.
struct PreparedImage {
    repo_tag: Option<String>,
    layer: WrittenLayer,
    config_bytes: Vec<u8>,
    config_hex: String,
}

impl PreparedImage {
    fn archive(&self) -> ImageArchive {
        ImageArchive {
            image_id: format!("sha256:{}", self.config_hex),
            repo_tag: self.repo_tag.clone(),
            path: PathBuf::new(),
        }
    }

    fn manifest_entry(&self) -> Value {
        json!({
            "Config": format!("{}.json", self.config_hex),
            "RepoTags": self.repo_tag.as_ref().map(|tag| vec![tag]),
            "Layers": [format!("{}/layer.tar", self.layer.id())],
        })
    }
}

impl ImageArchive {
    fn at(mut self, path: &Path) -> Self {
        self.path = path.to_owned();
        self
    }
}

/// A finished `layer.tar` in an anonymous temp file, with its digest and size.
struct WrittenLayer {
    file: File,
    len: u64,
    diff_hex: String,
}

impl WrittenLayer {
    /// The legacy layer directory name. Using the diff digest keeps it
    /// deterministic and lets identical layers share one directory.
    fn id(&self) -> &str {
        &self.diff_hex
    }
}

fn write_layer(entries: &BTreeMap<String, LayerEntry>) -> io::Result<WrittenLayer> {
    let spill = HashingWriter::new(BufWriter::new(tempfile::tempfile()?));
    let mut tar = new_tar(spill);
    for (key, entry) in entries {
        append_layer_entry(&mut tar, key, entry)?;
    }
    let (spill, diff_hex, len) = tar.into_inner()?.finish();
    let mut file = spill.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(WrittenLayer { file, len, diff_hex })
}

fn append_layer_entry<W: Write>(tar: &mut tar::Builder<W>, key: &str, entry: &LayerEntry) -> io::Result<()> {
    match entry {
        LayerEntry::Dir { mode } => append_dir(tar, &format!("{key}/"), *mode),
        LayerEntry::Symlink { target } => append_symlink(tar, key, target),
        LayerEntry::File { source, mode } => append_source(tar, key, source, *mode),
    }
}

fn append_source<W: Write>(tar: &mut tar::Builder<W>, key: &str, source: &FileSource, mode: u32) -> io::Result<()> {
    match source {
        FileSource::Bytes(bytes) => append_bytes(tar, key, bytes, mode),
        FileSource::HostFile(host_path) => {
            let file = File::open(host_path)
                .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", host_path.display())))?;
            let len = file.metadata()?.len();
            // take(): a file that grows meanwhile must not overrun its header size.
            append_reader(tar, key, file.take(len), len, mode)
        }
        FileSource::Pseudorandom { len, seed } => {
            append_reader(tar, key, PseudorandomReader::new(*seed).take(*len), *len, mode)
        }
    }
}

/// Writes the outer archive: per image its layer dir and config, then the
/// `repositories` file (if anything is tagged) and `manifest.json` last.
fn write_docker_save<W: Write>(out: W, images: &mut [PreparedImage]) -> io::Result<W> {
    let mut tar = new_tar(out);
    let mut written = std::collections::BTreeSet::new();
    for image in images.iter_mut() {
        if written.insert(image.layer.id().to_owned()) {
            append_layer_dir(&mut tar, &mut image.layer)?;
        }
        let config_name = format!("{}.json", image.config_hex);
        if written.insert(config_name.clone()) {
            append_bytes(&mut tar, &config_name, &image.config_bytes, 0o644)?;
        }
    }
    if let Some(repositories) = repositories_json(images) {
        append_bytes(&mut tar, "repositories", &to_json_bytes(&repositories)?, 0o644)?;
    }
    let manifest = Value::Array(images.iter().map(PreparedImage::manifest_entry).collect());
    append_bytes(&mut tar, "manifest.json", &to_json_bytes(&manifest)?, 0o644)?;
    tar.into_inner()
}

fn append_layer_dir<W: Write>(tar: &mut tar::Builder<W>, layer: &mut WrittenLayer) -> io::Result<()> {
    let id = layer.id().to_owned();
    append_dir(tar, &format!("{id}/"), 0o755)?;
    append_bytes(tar, &format!("{id}/VERSION"), b"1.0", 0o644)?;
    let legacy_json = json!({ "id": id, "created": FIXED_CREATED, "os": "linux" });
    append_bytes(tar, &format!("{id}/json"), &to_json_bytes(&legacy_json)?, 0o644)?;
    let len = layer.len;
    append_reader(tar, &format!("{id}/layer.tar"), (&mut layer.file).take(len), len, 0o644)
}

/// Legacy `{"repo": {"tag": "<top layer id>"}}`, merged over all tagged images.
fn repositories_json(images: &[PreparedImage]) -> Option<Value> {
    let mut repositories: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for image in images {
        if let Some((repo, tag)) = image.repo_tag.as_deref().and_then(split_repo_tag) {
            repositories.entry(repo).or_default().insert(tag, image.layer.id());
        }
    }
    (!repositories.is_empty()).then(|| json!(repositories))
}

// ---------------------------------------------------------------------------
// Deterministic tar entries.
// ---------------------------------------------------------------------------

fn new_tar<W: Write>(out: W) -> tar::Builder<W> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    tar
}

fn header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(FIXED_MTIME);
    header
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str, mode: u32) -> io::Result<()> {
    let mut header = header(tar::EntryType::Directory, mode, 0);
    tar.append_data(&mut header, path, io::empty())
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    append_reader(tar, path, bytes, bytes.len() as u64, mode)
}

fn append_reader<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: R,
    len: u64,
    mode: u32,
) -> io::Result<()> {
    let mut header = header(tar::EntryType::Regular, mode, len);
    tar.append_data(&mut header, path, data)
}

fn append_symlink<W: Write>(tar: &mut tar::Builder<W>, path: &str, target: &str) -> io::Result<()> {
    let mut header = header(tar::EntryType::Symlink, 0o777, 0);
    tar.append_link(&mut header, path, target)
}

// ---------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------

/// Counts and hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), len: 0 }
    }

    /// Returns the inner writer, the hex digest and the byte count.
    fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Endless deterministic bytes (splitmix64): incompressible, cheap, reproducible.
struct PseudorandomReader {
    state: u64,
    pending: [u8; 8],
    pending_len: usize,
}

impl PseudorandomReader {
    fn new(seed: u64) -> Self {
        Self { state: seed, pending: [0; 8], pending_len: 0 }
    }

    fn next_word(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Read for PseudorandomReader {
    /// Whole words go straight into `buf`; the tail of a word that does not
    /// fit is kept, so the stream is the same whatever the read sizes.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = self.drain_pending(buf);
        let mut words = buf[filled..].chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_word().to_le_bytes());
        }
        let tail = words.into_remainder().len();
        filled = buf.len() - tail;
        if tail > 0 {
            self.pending = self.next_word().to_le_bytes();
            self.pending_len = 8;
            self.drain_pending(&mut buf[filled..]);
        }
        Ok(buf.len())
    }
}

impl PseudorandomReader {
    /// Copies leftover bytes of the previous word into `buf`; returns how many.
    fn drain_pending(&mut self, buf: &mut [u8]) -> usize {
        let start = 8 - self.pending_len;
        let count = self.pending_len.min(buf.len());
        buf[..count].copy_from_slice(&self.pending[start..start + count]);
        self.pending_len -= count;
        count
    }
}

fn gzip_writer<W: Write>(out: W) -> GzEncoder<W> {
    // flate2 writes mtime 0 in the gzip header, so output stays deterministic.
    GzEncoder::new(out, Compression::fast())
}

fn finish_file<W: Write>(mut out: W) -> io::Result<()> {
    out.flush()
}

fn to_json_bytes(value: &Value) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

/// Image-relative key for an absolute path: no leading `/`, no `.` or empty parts.
///
/// # Panics
/// On `..` components: a test wrote a nonsensical path, not a runtime condition.
fn layer_key(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty() && *part != ".").collect();
    assert!(!parts.contains(&".."), "image path must not contain '..': {path:?}");
    parts.join("/")
}

/// `""` → untagged; `repo` → `repo:latest`; `repo:tag` unchanged.
fn normalize_repo_tag(repo_tag: &str) -> Option<String> {
    let repo_tag = repo_tag.trim();
    if repo_tag.is_empty() {
        return None;
    }
    if split_repo_tag(repo_tag).is_some() {
        return Some(repo_tag.to_owned());
    }
    Some(format!("{repo_tag}:latest"))
}

/// Splits `repo:tag`; the tag's colon must come after the last `/` (a
/// registry port like `localhost:5000/x` is not a tag).
fn split_repo_tag(repo_tag: &str) -> Option<(&str, &str)> {
    let (repo, tag) = repo_tag.rsplit_once(':')?;
    (!tag.contains('/')).then_some((repo, tag))
}

fn healthcheck_test(test: &[&str]) -> Vec<String> {
    let already_typed = matches!(test.first(), Some(&("CMD" | "CMD-SHELL" | "NONE")));
    let prefix = (!already_typed).then_some("CMD");
    prefix.into_iter().chain(test.iter().copied()).map(str::to_owned).collect()
}

fn to_strings(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|arg| (*arg).to_owned()).collect()
}

/// Docker's name for the host architecture (Go's GOARCH).
fn docker_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        other => other,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_dirs_are_implicit_and_explicit_modes_win() {
        let builder = ImageBuilder::untagged().file("/a/b/c.txt", "x", 0o600).dir("/a", 0o700);
        let keys: Vec<&str> = builder.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "a/b", "a/b/c.txt"]);
        assert!(matches!(builder.entries["a"], LayerEntry::Dir { mode: 0o700 }));
        assert!(matches!(builder.entries["a/b"], LayerEntry::Dir { mode: 0o755 }));
    }

    #[test]
    fn repo_tags_are_normalized() {
        assert_eq!(normalize_repo_tag(""), None);
        assert_eq!(normalize_repo_tag("x/y:2").as_deref(), Some("x/y:2"));
        assert_eq!(normalize_repo_tag("x/y").as_deref(), Some("x/y:latest"));
        assert_eq!(normalize_repo_tag("host:5000/y").as_deref(), Some("host:5000/y:latest"));
    }

    #[test]
    fn healthcheck_test_gets_cmd_prefix_only_when_untyped() {
        assert_eq!(healthcheck_test(&["true"]), ["CMD", "true"]);
        assert_eq!(healthcheck_test(&["CMD-SHELL", "true"]), ["CMD-SHELL", "true"]);
    }

    #[test]
    fn pseudorandom_reader_is_deterministic_across_read_sizes() {
        let mut reference = PseudorandomReader::new(7);
        let expected: Vec<u8> = (0..8).flat_map(|_| reference.next_word().to_le_bytes()).collect();
        for piece_len in [1, 3, 5, 8, 13, 64] {
            let mut reader = PseudorandomReader::new(7);
            let mut actual = vec![0; expected.len()];
            for piece in actual.chunks_mut(piece_len) {
                reader.read_exact(piece).unwrap();
            }
            assert_eq!(actual, expected, "pieces of {piece_len}");
        }
    }
}
