//! TPCM's upgrade hooks (seed 003, "TPC Docker Upgrade"): `/tpc/hook/pre.sh`
//! of the old image runs in the old container and writes
//! `/tpc/backup/data.tar.gz`; `/tpc/hook/post.sh` of the new image runs in
//! the new container and restores it. The private directory is mounted over
//! `/tpc`, which hides the image's own `/tpc/hook`: so berth copies the hook
//! out of the image into the private directory (`<dir>/hook/<hook>.sh`,
//! which the container sees at `/tpc/hook/<hook>.sh`) just before running it.

use crate::error::OpError;
use berth_core::engine::Engine;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Lines of hook output kept in an error message.
const OUTPUT_TAIL_LINES: usize = 20;

/// What happened to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookRun {
    Skipped(String),
    Succeeded(String),
}

/// Runs hook `hook` ("pre" or "post") of `image` in `container`.
pub async fn run(
    engine: &dyn Engine,
    app: &str,
    image: &str,
    container: &str,
    private_dir: &Path,
    hook: &'static str,
    timeout: Duration,
) -> Result<HookRun, OpError> {
    let path_in_image = format!("/tpc/hook/{hook}.sh");
    let Some(tar) = engine.image_files(image, &path_in_image).await? else {
        return Ok(HookRun::Skipped(format!("{path_in_image} is not in image {image}")));
    };
    let script = single_file(&tar).ok_or_else(|| OpError::HookFailed {
        app: app.to_owned(),
        hook,
        exit_code: None,
        output_tail: format!("{path_in_image} in the image is not a regular file"),
    })?;
    let hook_dir = private_dir.join("hook");
    std::fs::create_dir_all(&hook_dir).map_err(OpError::io(&hook_dir))?;
    let target = hook_dir.join(format!("{hook}.sh"));
    crate::files::atomic_write(&target, &script)?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(OpError::io(&target))?;

    let outcome = engine.exec(container, std::slice::from_ref(&path_in_image), timeout).await?;
    for line in outcome.output.lines() {
        tracing::info!(app, hook, "{line}");
    }
    match outcome.exit_code {
        Some(0) => Ok(HookRun::Succeeded(outcome.output)),
        code => Err(OpError::HookFailed {
            app: app.to_owned(),
            hook,
            exit_code: code,
            output_tail: match code {
                None => format!("did not finish within {}s; output:\n{}", timeout.as_secs(), tail(&outcome.output)),
                Some(_) => tail(&outcome.output),
            },
        }),
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
