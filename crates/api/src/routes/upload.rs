//! Requests that carry an archive: `multipart/form-data` with a `request`
//! part (the JSON) followed by an `archive` part (the bytes, streamed — never
//! buffered), or plain JSON when the source is remote.

use crate::error::json_rejection;
use crate::streaming::Upload;
use crate::{ApiError, ErrorKind};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use futures::StreamExt;
use serde::de::DeserializeOwned;

/// The request and, for an upload, the archive's byte stream.
pub struct WithArchive<T> {
    pub request: T,
    pub archive: Option<Upload>,
}

/// Largest `request` part (the JSON).
const MAX_REQUEST_PART: usize = 1 << 20;

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequest<S> for WithArchive<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if !content_type.starts_with("multipart/form-data") {
            let axum::Json(parsed) = axum::Json::<T>::from_request(request, state).await.map_err(json_rejection)?;
            return Ok(WithArchive { request: parsed, archive: None });
        }
        let invalid = |message: String| ApiError::new(ErrorKind::InvalidInput, message);
        let boundary =
            multer::parse_boundary(&content_type).map_err(|e| invalid(format!("bad multipart body: {e}")))?;
        let body = request.into_body().into_data_stream();
        let mut multipart = multer::Multipart::new(body, boundary);
        let first = multipart
            .next_field()
            .await
            .map_err(|e| invalid(format!("bad multipart body: {e}")))?
            .ok_or_else(|| invalid("the multipart body has no `request` part".into()))?;
        if first.name() != Some("request") {
            return Err(invalid("the first part of a multipart body must be `request` (the JSON)".into()));
        }
        let mut json = Vec::new();
        let mut first = first;
        while let Some(chunk) = first.chunk().await.map_err(|e| invalid(format!("bad `request` part: {e}")))? {
            json.extend_from_slice(&chunk);
            if json.len() > MAX_REQUEST_PART {
                return Err(ApiError::new(ErrorKind::TooLarge, "the `request` part is larger than 1 MiB"));
            }
        }
        // The next part can only be read once this one is gone.
        drop(first);
        let parsed: T =
            serde_json::from_slice(&json).map_err(|e| invalid(format!("the `request` part is not accepted: {e}")))?;
        let archive = multipart
            .next_field()
            .await
            .map_err(|e| invalid(format!("bad multipart body: {e}")))?
            .ok_or_else(|| invalid("the multipart body has no `archive` part after `request`".into()))?;
        if archive.name() != Some("archive") {
            return Err(invalid("the second part of a multipart body must be `archive`".into()));
        }
        // The multipart reader lives as long as the archive's stream; after
        // the archive, the body's end (its closing boundary) is read too.
        let body = futures::stream::unfold(Some((multipart, archive)), |state| async move {
            let (mut multipart, mut field) = state?;
            match field.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some((multipart, field)))),
                Ok(None) => {
                    drop(field);
                    while let Ok(Some(extra)) = multipart.next_field().await {
                        drop(extra);
                    }
                    None
                }
                Err(e) => Some((Err(std::io::Error::other(format!("the upload broke off: {e}"))), None)),
            }
        })
        .boxed();
        Ok(WithArchive { request: parsed, archive: Some(Upload { body: draining(body) }) })
    }
}

/// How long the rest of an upload left unread is drained.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// An upload that, dropped before its end (the operation failed or was
/// refused early), reads the rest and throws it away: the request then ends
/// cleanly and the client reads the answer instead of a broken connection.
/// (The client stops sending once it has the answer.)
pub fn draining(
    body: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
) -> futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> {
    Draining { inner: Some(body), ended: false }.boxed()
}

struct Draining {
    inner: Option<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>>,
    ended: bool,
}

impl futures::Stream for Draining {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else { return std::task::Poll::Ready(None) };
        let next = inner.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(None | Some(Err(_))) = &next {
            self.ended = true;
        }
        next
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        let (Some(mut rest), false) = (self.inner.take(), self.ended) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(DRAIN_LIMIT, async { while let Some(Ok(_)) = rest.next().await {} }).await;
            });
        }
    }
}
