//! Long operations over HTTP: they run on their own task, so a client that
//! hangs up does not cut one short between two journal steps; instead its
//! cancellation token fires and the operation undoes itself. With `Accept:
//! application/x-ndjson` the answer streams progress lines, then one `done`
//! or `error` line; an empty line is sent every second while nothing else
//! is, so a client that went away is noticed (a write to it fails) within a
//! second. Without that `Accept` the answer is the result once it is there.

use crate::{ApiError, ErrorKind};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often an idle ndjson stream sends an empty line.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// What a long operation gets from the API: where its progress goes, and a
/// token cancelled when its client goes away.
#[derive(Debug, Clone)]
pub struct Operation<E> {
    pub progress: mpsc::UnboundedSender<E>,
    pub cancel: CancellationToken,
}

impl<E> Operation<E> {
    /// An operation nobody watches (start-up work, tests).
    pub fn detached() -> Self {
        let (progress, _) = mpsc::unbounded_channel();
        Self { progress, cancel: CancellationToken::new() }
    }

    pub fn send(&self, event: E) {
        let _ = self.progress.send(event);
    }
}

/// Bytes the client streams with its request (an image archive).
pub struct Upload {
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upload")
    }
}

/// An ndjson progress line type whose last line carries the outcome.
pub trait StreamedEvent: serde::Serialize + Send + 'static {
    type Outcome: serde::Serialize + Send + 'static;
    fn finished(result: Result<Self::Outcome, ApiError>) -> Self;
}

pub fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/x-ndjson"))
}

pub async fn run<E, F, Fut>(headers: &HeaderMap, success: StatusCode, start: F) -> Response
where
    E: StreamedEvent,
    F: FnOnce(Operation<E>) -> Fut,
    Fut: std::future::Future<Output = Result<E::Outcome, ApiError>> + Send + 'static,
{
    let cancel = CancellationToken::new();
    // Dropped with the response (or the handler, when the client goes first): cancels.
    let guard = cancel.clone().drop_guard();
    let (progress, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(start(Operation { progress, cancel }));
    if !wants_ndjson(headers) {
        let outcome = task.await;
        drop(guard.disarm());
        return match outcome {
            Ok(Ok(outcome)) => (success, axum::Json(outcome)).into_response(),
            Ok(Err(error)) => error.into_response(),
            Err(join) => {
                ApiError::new(ErrorKind::Internal, format!("the operation's task failed: {join}")).into_response()
            }
        };
    }
    let (lines_tx, lines_rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let mut task = task;
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        let outcome = loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => { let _ = lines_tx.send(line(&event)); }
                    None => break (&mut task).await,
                },
                outcome = &mut task => break outcome,
                _ = keepalive.tick() => { let _ = lines_tx.send(Bytes::from_static(b"\n")); }
            }
        };
        while let Ok(event) = events.try_recv() {
            let _ = lines_tx.send(line(&event));
        }
        let last = match outcome {
            Ok(result) => E::finished(result),
            Err(join) => {
                E::finished(Err(ApiError::new(ErrorKind::Internal, format!("the operation's task failed: {join}"))))
            }
        };
        let _ = lines_tx.send(line(&last));
    });
    let lines = tokio_stream::wrappers::UnboundedReceiverStream::new(lines_rx).map(move |line| {
        // The guard lives as long as the body: when hyper drops it (the client is gone), the operation is cancelled.
        let _alive = &guard;
        Ok::<_, std::convert::Infallible>(line)
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn line<E: serde::Serialize>(event: &E) -> Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
