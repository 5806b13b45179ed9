//! Getting an app's image into the engine: load an archive or pull a
//! reference. Whatever a failed intake added to the engine is removed again.

use crate::archive::{self, ArchiveError, ArchiveImage};
use crate::error::OpError;
use berth_core::engine::{Engine, EngineError, ProgressSink};
use berth_core::source::Source;
use std::collections::HashSet;

/// The image an intake produced.
#[derive(Debug, Clone)]
pub struct Intake {
    pub image_id: String,
    /// `repo:tag` for display, or the id when the image has no tag.
    pub image_ref: String,
}

/// How to fetch, beyond the source itself.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Expected SHA-256 of the archive's bytes, lowercase hex.
    pub sha256: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
    /// A login for this pull only (`--registry-auth`); else the stored one.
    pub registry_auth: Option<berth_core::engine::RegistryCredentials>,
    /// berth's root, where stored logins are.
    pub root: std::path::PathBuf,
    /// Authentication and host keys for scp and sftp sources.
    pub ssh: crate::ssh::SshOptions,
}

pub async fn fetch(
    engine: &dyn Engine,
    source: &Source,
    options: &FetchOptions,
    preexisting: &HashSet<String>,
    progress: ProgressSink,
) -> Result<Intake, OpError> {
    match source {
        Source::Archive { path } => {
            let input = archive::ArchiveInput::file(path)?;
            load(engine, input, options.sha256.as_deref(), preexisting, progress).await
        }
        Source::Url { url } => {
            let input = crate::download::open(url, options.ca_file.as_deref()).await?;
            load(engine, input, options.sha256.as_deref(), preexisting, progress).await
        }
        Source::Ssh { protocol, server, username, path } => {
            let input = crate::ssh::open(*protocol, server, username, path, &options.ssh).await?;
            load(engine, input, options.sha256.as_deref(), preexisting, progress).await
        }
        Source::Registry { reference } => {
            let text = reference.to_string();
            let credentials = match &options.registry_auth {
                Some(given) => Some(given.clone()),
                None => crate::registries::for_registry(&options.root, reference.registry())?,
            };
            engine.pull_image(&text, credentials.as_ref(), progress).await?;
            let image = engine.inspect_image(&text).await?.ok_or_else(|| EngineError::Pull {
                reference: text.clone(),
                reason: "the engine reported success but has no such image".into(),
            })?;
            Ok(Intake { image_id: image.id, image_ref: text })
        }
    }
}

/// Streams an image archive into the engine while checking it (and its
/// SHA-256, when expected); returns its one image. Whatever a refused archive
/// loaded is taken out again, unless it was in `preexisting`.
pub async fn load(
    engine: &dyn Engine,
    input: archive::ArchiveInput,
    sha256: Option<&str>,
    preexisting: &HashSet<String>,
    progress: ProgressSink,
) -> Result<Intake, OpError> {
    let origin = input.origin.display().to_string();
    let (body, checker) = archive::stream(input, progress.clone());
    let loaded = engine.load_image(body, progress).await;
    let verdict = checker.await.map_err(|_| OpError::ShuttingDown)?;
    let verdict = verdict.map_err(OpError::from).and_then(|checked| match sha256 {
        Some(expected) if expected != checked.sha256 => Err(OpError::ChecksumMismatch {
            origin: origin.clone(),
            expected: expected.to_owned(),
            actual: checked.sha256,
        }),
        _ => Ok(checked.image),
    });
    match (verdict, loaded) {
        (Ok(image), Ok(_)) => confirm_loaded(engine, image).await,
        (Ok(_), Err(engine_error)) => Err(engine_error.into()),
        (Err(refusal), loaded) => {
            // A multi-image archive, or one whose checksum is wrong, loads
            // fine in the engine but is refused here: take back what it added.
            if let Ok(references) = loaded {
                remove_added(engine, &references, preexisting).await;
            }
            Err(refusal)
        }
    }
}

async fn confirm_loaded(engine: &dyn Engine, image: ArchiveImage) -> Result<Intake, OpError> {
    let found = engine.inspect_image(&image.id).await?;
    if found.is_none() {
        return Err(EngineError::Load {
            reason: format!("the engine did not keep image {} from the archive", image.id),
        }
        .into());
    }
    let image_ref = image.repo_tags.first().cloned().unwrap_or_else(|| image.id.clone());
    Ok(Intake { image_id: image.id, image_ref })
}

async fn remove_added(engine: &dyn Engine, references: &[String], preexisting: &HashSet<String>) {
    for reference in references {
        if let Ok(Some(image)) = engine.inspect_image(reference).await {
            if !preexisting.contains(&image.id) {
                if let Err(e) = engine.remove_image(&image.id).await {
                    tracing::warn!(image = %image.id, error = %e, "could not remove an image of a refused archive");
                }
            }
        }
    }
}

/// After a crash during intake: which image did the interrupted intake bring
/// (or was about to)? Reads the archive's manifest again, or asks the engine
/// about the reference.
pub async fn identify(engine: &dyn Engine, source: &Source) -> Option<String> {
    match source {
        Source::Archive { path } => {
            let path = path.clone();
            let image: Result<ArchiveImage, ArchiveError> =
                tokio::task::spawn_blocking(move || archive::identify(&path)).await.ok()?;
            image.ok().map(|i| i.id)
        }
        // Reading the archive again would mean downloading it again; the
        // journal's window between load and record is one SQLite write.
        Source::Url { .. } | Source::Ssh { .. } => None,
        Source::Registry { reference } => {
            engine.inspect_image(&reference.to_string()).await.ok().flatten().map(|i| i.id)
        }
    }
}
