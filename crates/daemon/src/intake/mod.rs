//! Getting an image into the engine, for every profile: an archive the
//! client streams, one on an http(s) or ssh server, one of the daemon's own
//! (the migration store), or a registry pull. The archive is checked while
//! it streams (see [`archive`]); the operation's undo entry that releases the
//! image is persisted before the engine can finish loading it. The one rule
//! for taking an image back out lives here too ([`release`]).

pub mod archive;
pub mod logins;
pub mod scratch;

use crate::fs::TaskFailed;
use crate::journal::{EffectError, Journal, JournalError, Op};
use crate::services::Services;
use archive::{ArchiveError, ArchiveImage, CheckOptions, Found, ManifestGate, SourceFailure, Verdict, CHANNEL_DEPTH};
use berth_core::engine::{ByteStream, EngineError, Filter, ProgressSink, RegistryCredentials};
use berth_core::journal::{Effect, ImageHandle};
use berth_core::source::ImageReference;
use berth_core::{AppName, ErrorKind};
use berth_fetch::http::{HttpError, HttpOptions};
use berth_fetch::ssh::{Credential, SshError, SshTarget, Trust};
use berth_store::StoreError;
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The host's own known hosts, trusted for every ssh source.
const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";
/// A fetch that hits a changed or broken source is started over this often.
const RESTARTS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{origin}: SHA-256 is {actual}, not the expected {expected}")]
    ChecksumMismatch { origin: String, expected: String, actual: String },
    #[error(
        "the tag {tag} belongs to image {image}, which app {app:?} uses; refusing to move it to the image of {origin}"
    )]
    TagTaken { origin: String, tag: String, image: String, app: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Logins(#[from] logins::LoginsError),
    #[error("{origin}: {path}: {source}")]
    File { origin: String, path: PathBuf, source: std::io::Error },
    #[error("the fetch of {origin} was cancelled")]
    Cancelled { origin: String },
    #[error("{origin}: {reason}")]
    Stalled { origin: String, reason: String },
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

impl From<StoreError> for IntakeError {
    fn from(e: StoreError) -> Self {
        IntakeError::Journal(JournalError::Store(e))
    }
}

impl IntakeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IntakeError::Archive(e) => match e {
                ArchiveError::TooLarge { .. } => ErrorKind::TooLarge,
                ArchiveError::EngineHungUp { .. } => ErrorKind::EngineUnavailable,
                ArchiveError::CorruptGzip { .. }
                | ArchiveError::NotTar { .. }
                | ArchiveError::NotImageArchive { .. }
                | ArchiveError::BadManifest { .. }
                | ArchiveError::NoImages { .. }
                | ArchiveError::SeveralImages { .. }
                | ArchiveError::DuplicateMember { .. }
                | ArchiveError::BadTag { .. }
                | ArchiveError::TrailingData { .. }
                | ArchiveError::Source { .. }
                | ArchiveError::Refused { .. } => ErrorKind::BadSource,
            },
            IntakeError::Http(e) => e.kind(),
            IntakeError::Ssh(e) => e.kind(),
            IntakeError::ChecksumMismatch { .. } => ErrorKind::BadSource,
            IntakeError::TagTaken { .. } => ErrorKind::Conflict,
            IntakeError::Engine(e) => engine_kind(e),
            IntakeError::Journal(e) => e.kind(),
            IntakeError::Logins(e) => e.kind(),
            IntakeError::File { .. } => ErrorKind::BadSource,
            IntakeError::Cancelled { .. } => ErrorKind::Cancelled,
            IntakeError::Stalled { .. } => ErrorKind::BadSource,
            IntakeError::Task(_) => ErrorKind::Internal,
        }
    }

    pub fn is_halted(&self) -> bool {
        matches!(self, IntakeError::Journal(e) if e.is_halted())
    }
}

/// The kind of an engine error, wherever it surfaces.
pub fn engine_kind(e: &EngineError) -> ErrorKind {
    match e {
        EngineError::Unreachable { .. } | EngineError::Timeout { .. } => ErrorKind::EngineUnavailable,
        EngineError::NotFound { .. } | EngineError::Pull { .. } | EngineError::Load { .. } => ErrorKind::BadSource,
        EngineError::Conflict { .. } => ErrorKind::Conflict,
        EngineError::Rejected { status, .. } if *status < 500 => ErrorKind::InvalidInput,
        EngineError::Rejected { .. } => ErrorKind::OperationFailed,
    }
}

/// Where an image comes from, validated.
pub enum FetchSource {
    /// The client streams the archive with its request.
    Upload {
        origin: String,
        size: Option<u64>,
        body: ByteStream,
    },
    Url {
        url: String,
        http: HttpOptions,
    },
    Registry {
        reference: ImageReference,
        auth: Option<RegistryCredentials>,
    },
    Ssh {
        target: SshTarget,
        credentials: Vec<Credential>,
        trust: Trust,
    },
    /// A file of the daemon's own (the migration store); never a client's path.
    OwnFile {
        path: PathBuf,
    },
}

impl std::fmt::Debug for FetchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.origin())
    }
}

impl FetchSource {
    /// For messages; credentials are never part of it.
    pub fn origin(&self) -> String {
        match self {
            FetchSource::Upload { origin, .. } => origin.clone(),
            FetchSource::Url { url, .. } => berth_core::source::redact_url(url),
            FetchSource::Registry { reference, .. } => reference.to_string(),
            FetchSource::Ssh { target, .. } => {
                format!("{}://{}@{}{}", target.protocol, target.username, target.server, target.path)
            }
            FetchSource::OwnFile { path } => path.display().to_string(),
        }
    }
}

#[derive(Debug)]
pub struct FetchRequest {
    pub source: FetchSource,
    /// Expected SHA-256 of the archive's bytes, lowercase hex.
    pub sha256: Option<String>,
}

/// The image an intake produced.
#[derive(Debug, Clone)]
pub struct Intake {
    pub image_id: String,
    /// `repo:tag` for display, or the id when the image has no tag.
    pub image_ref: String,
}

/// The operation an intake works for: its journal entry (where the undo
/// entry releasing the image goes), the app it is for, its cancellation.
pub struct ForOperation<'a> {
    pub journal: &'a Journal,
    pub op: &'a mut Op,
    pub app: Option<&'a AppName>,
    pub cancel: &'a CancellationToken,
    pub progress: ProgressSink,
}

pub async fn fetch(
    services: &Services,
    request: FetchRequest,
    mut ctx: ForOperation<'_>,
) -> Result<Intake, IntakeError> {
    let origin = request.source.origin();
    let sha256 = request.sha256;
    match request.source {
        FetchSource::Registry { reference, auth } => pull(services, &reference, auth, &mut ctx).await,
        FetchSource::Upload { origin, size, body } => {
            load(services, body, Input { origin, total: size, phase: "loading image" }, sha256.as_deref(), &mut ctx)
                .await
        }
        FetchSource::OwnFile { path } => {
            let file = tokio::fs::File::open(&path).await.map_err(|source| IntakeError::File {
                origin: origin.clone(),
                path: path.clone(),
                source,
            })?;
            let total = file.metadata().await.ok().map(|m| m.len());
            let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed();
            load(services, body, Input { origin, total, phase: "loading image" }, sha256.as_deref(), &mut ctx).await
        }
        FetchSource::Ssh { target, credentials, mut trust } => {
            // The host's own list is the daemon's trust, read by the daemon.
            if let Ok(content) = tokio::fs::read_to_string(SYSTEM_KNOWN_HOSTS).await {
                trust
                    .known_hosts
                    .insert(0, berth_fetch::ssh::KnownHosts { origin: SYSTEM_KNOWN_HOSTS.into(), content });
            }
            let options = berth_fetch::ssh::SshOptions {
                idle_timeout: Duration::from_secs(services.config.settings.fetch.idle_timeout_secs),
                ..Default::default()
            };
            let remote =
                cancellable(ctx.cancel, &origin, berth_fetch::ssh::open(&target, &credentials, &trust, &options))
                    .await??;
            let total = remote.size;
            let body = remote
                .into_stream()
                .map(|chunk| chunk.map_err(|e| std::io::Error::other(SourceFailure(e.to_string()))))
                .boxed();
            load(services, body, Input { origin, total, phase: "copying" }, sha256.as_deref(), &mut ctx).await
        }
        FetchSource::Url { url, http } => {
            // A source that changed (or broke off where it cannot be resumed
            // safely) is fetched again from byte 0, in a new load.
            let mut restarts = 0;
            loop {
                let download = cancellable(ctx.cancel, &origin, berth_fetch::http::open(&url, &http)).await??;
                let total = download.total();
                let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<HttpError>();
                let body = download
                    .into_stream()
                    .map(move |chunk| {
                        chunk.map_err(|e| {
                            let message = e.to_string();
                            let _ = changed_tx.send(e);
                            std::io::Error::other(SourceFailure(message))
                        })
                    })
                    .boxed();
                let input = Input { origin: origin.clone(), total, phase: "downloading" };
                let result = load(services, body, input, sha256.as_deref(), &mut ctx).await;
                let source_error = changed_rx.try_recv().ok();
                match (result, source_error) {
                    (Err(_), Some(e)) if e.is_restartable() && restarts < RESTARTS => {
                        restarts += 1;
                        tracing::warn!(%origin, error = %e, "the download has to start over");
                    }
                    (Err(_), Some(e)) => return Err(e.into()),
                    (result, _) => return result,
                }
            }
        }
    }
}

async fn cancellable<T>(
    cancel: &CancellationToken,
    origin: &str,
    work: impl std::future::Future<Output = T>,
) -> Result<T, IntakeError> {
    tokio::select! {
        result = work => Ok(result),
        _ = cancel.cancelled() => Err(IntakeError::Cancelled { origin: origin.to_owned() }),
    }
}

async fn pull(
    services: &Services,
    reference: &ImageReference,
    auth: Option<RegistryCredentials>,
    ctx: &mut ForOperation<'_>,
) -> Result<Intake, IntakeError> {
    let engine = services.engine.as_ref();
    let text = reference.to_string();
    let credentials = match auth {
        Some(given) => Some(given),
        None => logins::for_registry(&services.config.root, reference.registry()).await?,
    };
    // The id is known only after the pull: the undo names the reference and
    // what it pointed at before.
    let before = engine.inspect_image(&text).await?.map(|i| i.id);
    let handle = ImageHandle::Reference { reference: text.clone(), before };
    ctx.journal.add_undo(ctx.op, Effect::ReleaseImage { image: handle, app: None }).await?;
    let settings = &services.config.settings.fetch;
    let watchdog = Watchdog::new(
        Duration::from_secs(settings.idle_timeout_secs),
        Duration::from_secs(settings.overall_timeout_secs),
    );
    let progress = watchdog.observe(ctx.progress.clone());
    let pulling = engine.pull_image(&text, credentials.as_ref(), progress);
    tokio::select! {
        result = pulling => result?,
        reason = watchdog.expired() => return Err(IntakeError::Stalled { origin: text, reason }),
        _ = ctx.cancel.cancelled() => return Err(IntakeError::Cancelled { origin: text }),
    }
    let image = engine.inspect_image(&text).await?.ok_or_else(|| EngineError::Pull {
        reference: text.clone(),
        reason: "the engine reported success but has no such image".into(),
    })?;
    Ok(Intake { image_id: image.id, image_ref: text })
}

struct Input {
    origin: String,
    total: Option<u64>,
    phase: &'static str,
}

/// Streams an image archive into the engine while checking it (and its
/// SHA-256, when expected); returns its one image.
async fn load(
    services: &Services,
    body: ByteStream,
    input: Input,
    sha256: Option<&str>,
    ctx: &mut ForOperation<'_>,
) -> Result<Intake, IntakeError> {
    let settings = &services.config.settings.fetch;
    let origin = input.origin.clone();
    let body = timed(
        body,
        Duration::from_secs(settings.idle_timeout_secs),
        Duration::from_secs(settings.overall_timeout_secs),
    );
    // However this load ends (cancelled, refused, the engine failing), the
    // checker's blocked read of the source ends with it, and the source —
    // a download's connection — is dropped at once.
    let abort = CancellationToken::new();
    let _stop_reading = abort.clone().drop_guard();
    let body = until_aborted(body, abort);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body));
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let (found_tx, mut found_rx) = oneshot::channel::<Found>();
    let (verdict_tx, verdict_rx) = std::sync::mpsc::channel();
    let options = CheckOptions {
        origin: origin.clone(),
        total: input.total,
        phase: input.phase,
        max_bytes: settings.max_archive_bytes,
        progress: ctx.progress.clone(),
        hash: sha256.is_some(),
    };
    let mut checker = tokio::task::spawn_blocking(move || {
        archive::check(reader, options, &tx, ManifestGate { found: found_tx, verdict: verdict_rx })
    });
    let engine = services.engine.clone();
    let progress = ctx.progress.clone();
    // The load request starts with the first bytes the checker lets out:
    // none when the engine has the image, or the archive is refused first.
    let mut loading = Box::pin(async move {
        let mut rx = rx;
        match rx.recv().await {
            None | Some(Err(_)) => Ok(false),
            Some(Ok(first)) => {
                let archive = futures::stream::once(std::future::ready(Ok(first)))
                    .chain(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .boxed();
                engine.load_image(archive, progress).await.map(|_| true)
            }
        }
    });
    let mut gate_open = true;
    let mut loaded = None;
    let mut verdict = None;
    while loaded.is_none() || verdict.is_none() {
        tokio::select! {
            found = &mut found_rx, if gate_open => {
                gate_open = false;
                if let Ok(found) = found {
                    let decision = gate(services, &found, &origin, ctx).await;
                    let _ = verdict_tx.send(decision.as_ref().copied().map_err(|e| e.to_string()));
                    decision?;
                }
            }
            result = &mut loading, if loaded.is_none() => loaded = Some(result),
            result = &mut checker, if verdict.is_none() => {
                verdict = Some(result.map_err(|e| TaskFailed { what: "the archive check", reason: e.to_string() })?);
            }
            _ = ctx.cancel.cancelled() => {
                // Dropping the load aborts it in the engine; the checker stops on its closed channel.
                let _ = verdict_tx.send(Err("cancelled".into()));
                return Err(IntakeError::Cancelled { origin });
            }
        }
    }
    let (Some(loaded), Some(verdict)) = (loaded, verdict) else {
        return Err(IntakeError::Cancelled { origin });
    };
    match (verdict, loaded) {
        // The engine going away explains the checker finding it gone; a
        // refusal of the archive explains the load failing (berth broke it off).
        (Ok(_) | Err(ArchiveError::EngineHungUp { .. }), Err(e)) if e.is_unavailable() => Err(e.into()),
        (Ok(checked), Ok(_)) => match sha256 {
            Some(expected) if Some(expected) != checked.sha256.as_deref() => Err(IntakeError::ChecksumMismatch {
                origin,
                expected: expected.to_owned(),
                actual: checked.sha256.unwrap_or_default(),
            }),
            _ => confirm_loaded(services, checked.image).await,
        },
        (Ok(_), Err(engine_error)) => Err(engine_error.into()),
        (Err(refusal), _) => Err(refusal.into()),
    }
}

/// At the manifest: refuse a tag another app's image holds, persist the
/// undo that releases the image if this load brings it, and skip the load
/// of an archive that holds exactly an image the engine has with its tags.
async fn gate(
    services: &Services,
    found: &Found,
    origin: &str,
    ctx: &mut ForOperation<'_>,
) -> Result<Verdict, IntakeError> {
    let engine = services.engine.as_ref();
    let image = &found.image;
    let mut tags_in_place = true;
    for tag in &image.repo_tags {
        let Some(holder) = engine.inspect_image(tag).await? else {
            tags_in_place = false;
            continue;
        };
        if holder.id == image.id {
            continue;
        }
        tags_in_place = false;
        let (holder_id, except) = (holder.id.clone(), ctx.app.map(|a| a.to_string()));
        let user = services
            .db::<_, IntakeError, _>("checking image use", move |s| {
                Ok(s.apps()?
                    .into_iter()
                    .find(|a| {
                        Some(a.spec.name.as_str()) != except.as_deref()
                            && (a.spec.image_id == holder_id
                                || a.previous.as_ref().is_some_and(|p| p.image_id == holder_id))
                    })
                    .map(|a| a.spec.name.to_string()))
            })
            .await?;
        if let Some(app) = user {
            return Err(IntakeError::TagTaken { origin: origin.to_owned(), tag: tag.clone(), image: holder.id, app });
        }
    }
    if engine.inspect_image(&image.id).await?.is_none() {
        let effect = Effect::ReleaseImage { image: ImageHandle::Id { id: image.id.clone() }, app: None };
        ctx.journal.add_undo(ctx.op, effect).await?;
        return Ok(Verdict::Load);
    }
    if found.verified && tags_in_place {
        tracing::debug!(image = %image.id, %origin, "the engine has the image and its tags: not loading it again");
        return Ok(Verdict::Skip);
    }
    Ok(Verdict::Load)
}

async fn confirm_loaded(services: &Services, image: ArchiveImage) -> Result<Intake, IntakeError> {
    if services.engine.inspect_image(&image.id).await?.is_none() {
        return Err(EngineError::Load {
            reason: format!("the engine did not keep image {} from the archive", image.id),
        }
        .into());
    }
    let image_ref = image.repo_tags.first().cloned().unwrap_or_else(|| image.id.clone());
    Ok(Intake { image_id: image.id, image_ref })
}

/// Ends `body` (with an error, dropping it) once `abort` is cancelled.
fn until_aborted(body: ByteStream, abort: CancellationToken) -> ByteStream {
    futures::stream::unfold(Some(body), move |state| {
        let abort = abort.clone();
        async move {
            let mut body = state?;
            tokio::select! {
                item = body.next() => item.map(|item| (item, Some(body))),
                _ = abort.cancelled() => {
                    Some((Err(std::io::Error::other(SourceFailure("the fetch was given up".into()))), None))
                }
            }
        }
    })
    .boxed()
}

/// A byte source that sends nothing for `idle`, or is not done within
/// `overall`, fails (a stalled upload, a server that trickles).
fn timed(body: ByteStream, idle: Duration, overall: Duration) -> ByteStream {
    let deadline = tokio::time::Instant::now() + overall;
    futures::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        let limit = (tokio::time::Instant::now() + idle).min(deadline);
        match tokio::time::timeout_at(limit, body.next()).await {
            Ok(Some(item)) => Some((item, Some(body))),
            Ok(None) => None,
            Err(_) => {
                let reason = if limit == deadline {
                    format!("not done within {}s ([fetch] overall_timeout_secs)", overall.as_secs())
                } else {
                    format!("nothing arrived for {}s ([fetch] idle_timeout_secs)", idle.as_secs())
                };
                Some((Err(std::io::Error::other(SourceFailure(reason))), None))
            }
        }
    })
    .boxed()
}

/// Watches a transfer the engine makes on berth's behalf (a registry
/// pull): every progress report is a sign of life. It expires after `idle`
/// without one, or at `overall`; dropping the transfer's future then hangs
/// up on the engine, which abandons the pull.
struct Watchdog {
    last_sign: std::sync::Arc<std::sync::Mutex<tokio::time::Instant>>,
    idle: Duration,
    overall: Duration,
    deadline: tokio::time::Instant,
}

impl Watchdog {
    fn new(idle: Duration, overall: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Self { last_sign: std::sync::Arc::new(std::sync::Mutex::new(now)), idle, overall, deadline: now + overall }
    }

    /// A sink that forwards to `inner` and counts as a sign of life.
    fn observe(&self, inner: ProgressSink) -> ProgressSink {
        let last_sign = self.last_sign.clone();
        std::sync::Arc::new(move |progress| {
            *last_sign.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
            inner(progress);
        })
    }

    /// Completes, with the reason, once the transfer has stalled or run out of time.
    async fn expired(&self) -> String {
        loop {
            let last = *self.last_sign.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let limit = (last + self.idle).min(self.deadline);
            tokio::time::sleep_until(limit).await;
            if limit == self.deadline {
                return format!("not done within {}s ([fetch] overall_timeout_secs)", self.overall.as_secs());
            }
            let latest = *self.last_sign.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if latest == last {
                return format!("nothing arrived for {}s ([fetch] idle_timeout_secs)", self.idle.as_secs());
            }
        }
    }
}

/// Removes an image an operation added, when nothing else uses it: no app
/// (other than `app`, whose own row may still name it), no other open
/// operation, and no container at all (berth's or anyone's). Its tags go
/// first, then the image. The engine being away is worth a retry; the
/// engine refusing because something outside berth holds it is not.
pub async fn release(
    services: &Services,
    image: &ImageHandle,
    app: Option<&AppName>,
    entry: i64,
) -> Result<(), EffectError> {
    let engine = services.engine.as_ref();
    let retry_or_not = EffectError::engine;
    let id = match image {
        ImageHandle::Id { id } => id.clone(),
        ImageHandle::Reference { reference, before } => {
            match engine.inspect_image(reference).await.map_err(retry_or_not)? {
                Some(info) if Some(&info.id) != before.as_ref() => info.id,
                _ => return Ok(()),
            }
        }
    };
    let (image_id, except) = (id.clone(), app.map(|a| a.to_string()));
    let in_use = services
        .db::<_, StoreOrTask, _>("checking image use", move |s| {
            s.image_in_use(&image_id, except.as_deref(), Some(entry))
        })
        .await
        .map_err(|e| EffectError::permanent(e.to_string()))?;
    if in_use {
        tracing::info!(image = %id, "image kept: another app or operation uses it");
        return Ok(());
    }
    remove_unused_image(engine, &id).await.map(drop).map_err(retry_or_not)
}

/// Removes image `id` (its tags, then itself) unless a container — anyone's
/// — uses it; `Ok(false)` when it is kept (or already gone).
pub async fn remove_unused_image(engine: &dyn berth_core::engine::Engine, id: &str) -> Result<bool, EngineError> {
    let Some(info) = engine.inspect_image(id).await? else { return Ok(false) };
    let users = engine.list(&Filter::default()).await?;
    if users.iter().any(|c| c.image_id == info.id) {
        tracing::info!(image = %id, "image kept: a container uses it");
        return Ok(false);
    }
    for tag in &info.repo_tags {
        match engine.remove_image(tag).await {
            Ok(()) | Err(EngineError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    match engine.remove_image(id).await {
        Ok(()) => Ok(true),
        Err(EngineError::NotFound { .. }) => Ok(false),
        Err(EngineError::Conflict { what }) => {
            tracing::info!(image = %id, %what, "image kept: still in use outside berth");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A store call's failure, for effects (which report text).
#[derive(Debug, thiserror::Error)]
enum StoreOrTask {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}
