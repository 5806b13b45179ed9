//! Starting an app's container and making sure it stays up.

use super::error::AppError;
use crate::services::Services;
use berth_core::engine::{Engine, EngineError, RunState};
use futures::StreamExt;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Log lines shown when an app dies right after starting.
const FAILURE_LOG_LINES: u64 = 10;

/// Starts the container and requires it to be running `start_check_ms`
/// later; otherwise the error carries the exit code and the last lines of
/// its output.
pub async fn start_and_check(services: &Services, name: &str, cancel: &CancellationToken) -> Result<(), AppError> {
    start_then_check(services, name, cancel, None).await
}

/// [`start_and_check`], giving up `turn` (a reconcile's) once the engine
/// has started the container, before the check's wait.
pub async fn start_then_check(
    services: &Services,
    name: &str,
    cancel: &CancellationToken,
    turn: Option<tokio::sync::SemaphorePermit<'_>>,
) -> Result<(), AppError> {
    let engine = services.engine.as_ref();
    let started = engine.start(name).await;
    drop(turn);
    if let Err(e) = started {
        return Err(match e {
            e if e.is_unavailable() => e.into(),
            other => AppError::DidNotStart { name: name.to_owned(), reason: other.to_string() },
        });
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(services.config.settings.start_check_ms)) => {}
        _ = cancel.cancelled() => return Err(AppError::Cancelled { app: name.to_owned() }),
    }
    match engine.inspect(name).await? {
        Some(c) if c.state == RunState::Running => Ok(()),
        Some(c) => {
            let mut reason = match (c.exit_code, &c.error) {
                (_, Some(error)) => error.clone(),
                (Some(code), None) => {
                    format!("it exited with code {code}{}", if c.oom_killed { " (out of memory)" } else { "" })
                }
                _ => format!("it is {:?}", c.state),
            };
            let output = last_output(engine, name).await;
            if !output.is_empty() {
                reason.push_str("; last output:\n");
                reason.push_str(&output);
            }
            Err(AppError::DidNotStart { name: name.to_owned(), reason })
        }
        None => Err(AppError::DidNotStart { name: name.to_owned(), reason: "its container disappeared".into() }),
    }
}

async fn last_output(engine: &dyn Engine, name: &str) -> String {
    let mut logs = engine.logs(name, false, Some(FAILURE_LOG_LINES));
    let mut text = Vec::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&text).trim_end().to_owned()
}

/// Stops a container with the configured grace period.
pub async fn stop(services: &Services, name: &str) -> Result<(), EngineError> {
    services.engine.stop(name, services.config.settings.stop_timeout_secs).await
}
