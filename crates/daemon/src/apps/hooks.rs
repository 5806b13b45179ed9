//! TPCM's upgrade hooks (seed 003, "TPC Docker Upgrade"): `/tpc/hook/pre.sh`
//! of the old image runs in the old container and writes
//! `/tpc/backup/data.tar.gz`; `/tpc/hook/post.sh` of the new image runs in
//! the new container and restores it. The private directory is mounted over
//! `/tpc`, which hides the image's own `/tpc/hook`: so berth copies the hook
//! out of the image into the private directory (`<dir>/hook/<hook>.sh`,
//! which the container sees at `/tpc/hook/<hook>.sh`) just before running it.

use super::error::AppError;
use crate::fs::blocking;
use crate::services::Services;
use berth_core::engine::ExecRequest;
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Lines of hook output kept in an error message.
const OUTPUT_TAIL_LINES: usize = 20;
/// A hook script larger than this is not a script.
const MAX_HOOK_BYTES: u64 = 16 << 20;

/// What happened to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookRun {
    Skipped(String),
    Succeeded,
}

impl HookRun {
    pub fn describe(&self, hook: &str) -> String {
        match self {
            HookRun::Skipped(why) => format!("{hook} hook: skipped ({why})"),
            HookRun::Succeeded => format!("{hook} hook: done"),
        }
    }
}

/// Runs hook `hook` ("pre" or "post") of `image` in `container`.
pub async fn run(
    services: &Services,
    app: &str,
    image: &str,
    private_dir: &Path,
    hook: &'static str,
    cancel: &CancellationToken,
) -> Result<HookRun, AppError> {
    let path_in_image = format!("/tpc/hook/{hook}.sh");
    let Some(tar) = crate::intake::scratch::image_files(services, image, &path_in_image, MAX_HOOK_BYTES).await? else {
        return Ok(HookRun::Skipped(format!("{path_in_image} is not in image {image}")));
    };
    let failed =
        |exit_code, output_tail: String| AppError::HookFailed { app: app.to_owned(), hook, exit_code, output_tail };
    let script =
        single_file(&tar).ok_or_else(|| failed(None, format!("{path_in_image} in the image is not a regular file")))?;
    // The private directory is the container's to change: a link it put in
    // place of `hook` (or of the script) is not followed, or root would
    // write wherever it points.
    blocking("writing a hook", {
        let (dir, name, app) = (private_dir.to_owned(), format!("{hook}.sh"), app.to_owned());
        move || {
            berth_fs::write_beneath(&dir, Path::new("hook"), &name, &script, 0o755).map_err(|e| AppError::HookFailed {
                app,
                hook,
                exit_code: None,
                output_tail: format!("the hook could not be put in place: {e}"),
            })
        }
    })
    .await?;

    let timeout = Duration::from_secs(services.config.settings.hook_timeout_secs);
    let stop = {
        let cancel = cancel.clone();
        Box::pin(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {}
                _ = cancel.cancelled() => {}
            }
        })
    };
    let request = ExecRequest { argv: vec![path_in_image.clone()], ..Default::default() };
    let outcome = services.engine.exec(app, request, stop).await?;
    let output = String::from_utf8_lossy(&outcome.combined).into_owned();
    for line in output.lines() {
        tracing::info!(app, hook, "{line}");
    }
    match outcome.exit_code {
        Some(0) => Ok(HookRun::Succeeded),
        None if cancel.is_cancelled() => Err(AppError::Cancelled { app: app.to_owned() }),
        None => Err(failed(None, format!("did not finish within {}s; output:\n{}", timeout.as_secs(), tail(&output)))),
        code => Err(failed(code, tail(&output))),
    }
}

fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("\n")
}

/// The content of the one regular file in a tar from the Engine's archive endpoint.
fn single_file(tar: &[u8]) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).ok()?;
            return Some(content);
        }
    }
    None
}
