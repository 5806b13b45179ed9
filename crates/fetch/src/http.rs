//! Files over http and https (TPCM's "HTTP SERVER" source), streamed: the
//! body is handed on chunk by chunk and never held whole.
//!
//! A transfer that breaks off is resumed only when it is safe to splice: the
//! first response must carry a validator (a strong `ETag`, else
//! `Last-Modified`), and the retry asks for `Range: bytes=N-` with
//! `If-Range: <validator>`. A `206` that continues at byte N goes on; anything
//! else means the file is no longer the one whose first N bytes were passed
//! on, and the stream ends with [`HttpError::Changed`]. Without a validator a
//! break ends the stream with [`HttpError::Interrupted`]. Both ask the caller
//! to start again from byte 0 ([`HttpError::is_restartable`]).
//!
//! TLS is rustls with the *ring* provider, trusting the Mozilla roots compiled
//! in (webpki-roots) plus the CA certificates the caller hands over as PEM
//! content. Redirects are followed here, at most [`MAX_REDIRECTS`], and an
//! https page that redirects to plain http is refused unless allowed.

use berth_core::ErrorKind;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use headers::{AcceptRanges, ContentLength, ContentRange, ETag, HeaderMapExt, IfRange, LastModified, Range};
use http::{HeaderMap, StatusCode};
use reqwest::Url;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Redirects followed before giving up (browsers and curl use about as many).
pub const MAX_REDIRECTS: usize = 10;
/// The wait before the first resume; it doubles for each further one.
const FIRST_RETRY: Duration = Duration::from_millis(300);

/// How a download is made and bounded.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// PEM content of CA certificates trusted besides the Mozilla roots. The
    /// content, never a path: the daemon opens no file a client names.
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// No body byte for this long fails the attempt (resumed if it can be).
    /// A response head is waited for this long after the connect timeout.
    pub idle_timeout: Duration,
    /// The whole transfer, every attempt and pause included, counted from [`open`].
    pub overall_timeout: Duration,
    /// Bodies larger than this are refused: by their `Content-Length` before
    /// any byte flows, or when the count passes it.
    pub max_bytes: Option<u64>,
    /// Attempts at the body, the first included (resumes need a validator).
    pub attempts: u32,
    /// Follow an https page that redirects to plain http.
    pub allow_downgrade: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            extra_roots_pem: None,
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            overall_timeout: Duration::from_secs(60 * 60),
            max_bytes: None,
            attempts: 5,
            allow_downgrade: false,
        }
    }
}

/// Why a download could not be made. Every variant names the url (shown
/// without any password it holds) or the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url:?} is not a usable URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the extra CA certificates are not usable: {reason}")]
    CaPem { reason: String },
    #[error("cannot set up the http client: {reason}")]
    Client { reason: String },
    #[error("{url}: cannot reach the server: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url}: the redirect to {location:?} is not usable: {reason}")]
    BadRedirect { url: String, location: String, reason: String },
    #[error("{url}: more than {limit} redirects")]
    TooManyRedirects { url: String, limit: usize },
    #[error(
        "{from} redirects to {to}, which is not https; refusing to continue without TLS (--allow-downgrade allows it)"
    )]
    Downgrade { from: String, to: String },
    #[error("{url}: the file changed on the server during the download (or the server cannot resume it); it must be downloaded again from the start")]
    Changed { url: String },
    #[error("{url}: the transfer broke off after {received} bytes and cannot be resumed safely (the server gives no strong ETag or Last-Modified to resume by): {reason}")]
    Interrupted { url: String, received: u64, reason: String },
    #[error(
        "{url}: download failed after {attempts} attempts (the last broke off after {received} bytes in all): {reason}"
    )]
    Exhausted { url: String, attempts: u32, received: u64, reason: String },
    #[error("{url}: the server sent nothing for {secs} s")]
    Idle { url: String, secs: u64 },
    #[error("{url}: the download did not finish within {secs} s")]
    TooSlow { url: String, secs: u64 },
    #[error("{url}: the file is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

impl HttpError {
    /// The kind berth reports it as (HTTP status, exit code). Exhaustive: a
    /// new variant does not compile until it is placed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HttpError::BadUrl { .. } | HttpError::CaPem { .. } => ErrorKind::InvalidInput,
            HttpError::Client { .. } => ErrorKind::Internal,
            HttpError::TooLarge { .. } => ErrorKind::TooLarge,
            HttpError::Unreachable { .. }
            | HttpError::Status { .. }
            | HttpError::BadRedirect { .. }
            | HttpError::TooManyRedirects { .. }
            | HttpError::Downgrade { .. }
            | HttpError::Changed { .. }
            | HttpError::Interrupted { .. }
            | HttpError::Exhausted { .. }
            | HttpError::Idle { .. }
            | HttpError::TooSlow { .. } => ErrorKind::BadSource,
        }
    }

    /// The bytes passed on so far must be thrown away and the download made
    /// again from byte 0 (with a new [`open`]): the file changed under the
    /// transfer, or the transfer broke off where it could not be resumed.
    pub fn is_restartable(&self) -> bool {
        matches!(self, HttpError::Changed { .. } | HttpError::Interrupted { .. })
    }
}

/// An open download: the first response has arrived with a success status.
pub struct Download {
    url: String,
    total: Option<u64>,
    transfer: Transfer,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download").field("url", &self.url).field("total", &self.total).finish_non_exhaustive()
    }
}

impl Download {
    /// Where the file was found, after redirects (without any password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The file's length, when the server said it.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The body, in order, resumed where that is safe. The stream ends after
    /// the last byte, or with one error after which nothing follows.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes, HttpError>> {
        stream::unfold(self.transfer, |mut transfer| async move {
            let item = transfer.next().await?;
            Some((item, transfer))
        })
        .boxed()
    }
}

/// Opens `url` and waits for its first response, so that an unreachable
/// server, a refused certificate or a 404 is reported before any byte flows.
pub async fn open(url: &str, options: &HttpOptions) -> Result<Download, HttpError> {
    let deadline = deadline_after(options.overall_timeout);
    let parsed = Url::parse(url).map_err(|e| HttpError::BadUrl { url: url.to_owned(), reason: e.to_string() })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HttpError::BadUrl { url: url.to_owned(), reason: "only http and https are supported".into() });
    }
    let requester = Requester {
        client: client(options)?,
        connect_timeout: options.connect_timeout,
        idle_timeout: options.idle_timeout,
        overall_timeout: options.overall_timeout,
        deadline,
        allow_downgrade: options.allow_downgrade,
    };
    let (url, response) = requester.get(&parsed, None).await?;
    if response.status() != StatusCode::OK {
        return Err(HttpError::Status { url: shown(&url), status: response.status() });
    }
    let total = response.headers().typed_get::<ContentLength>().map(|ContentLength(n)| n);
    if let (Some(limit), Some(total)) = (options.max_bytes, total) {
        if total > limit {
            return Err(HttpError::TooLarge { url: shown(&url), limit });
        }
    }
    let validator = Validator::of(response.headers());
    tracing::debug!(url = %shown(&url), ?total, resumable = validator.is_some(), "download opened");
    Ok(Download {
        url: shown(&url),
        total,
        transfer: Transfer {
            requester,
            url,
            total,
            validator,
            max_bytes: options.max_bytes,
            attempts: options.attempts.max(1),
            attempt: 1,
            received: 0,
            body: Some(response.bytes_stream().boxed()),
            finished: false,
        },
    })
}

/// What lets a resume prove it continues the same file (RFC 9110, 13.1.5):
/// `If-Range` takes a strong entity tag or a date, never a weak tag.
#[derive(Clone, Debug)]
enum Validator {
    ETag(ETag),
    LastModified(LastModified),
}

impl Validator {
    fn of(headers: &HeaderMap) -> Option<Self> {
        if headers.typed_get::<AcceptRanges>().is_some_and(|ranges| ranges.is_none()) {
            return None;
        }
        let strong = headers.typed_get::<ETag>().filter(|tag| !tag.is_weak());
        strong.map(Validator::ETag).or_else(|| headers.typed_get::<LastModified>().map(Validator::LastModified))
    }

    /// Whether a partial answer is of the same version: it must carry the
    /// validator again. A server that ignores `If-Range` answers 206 for a
    /// file it replaced; one that leaves the validator out cannot be
    /// trusted to continue (starting over is slower, never wrong).
    fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            Validator::ETag(tag) => headers.typed_get::<ETag>().is_some_and(|now| now == *tag),
            Validator::LastModified(date) => headers.typed_get::<LastModified>().is_some_and(|now| now == *date),
        }
    }

    fn if_range(&self) -> IfRange {
        match self {
            Validator::ETag(tag) => IfRange::etag(tag.clone()),
            Validator::LastModified(date) => IfRange::date(SystemTime::from(*date)),
        }
    }
}

fn tls_config(extra_roots_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, HttpError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = extra_roots_pem {
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate =
                certificate.map_err(|e| HttpError::CaPem { reason: format!("the PEM cannot be read: {e}") })?;
            roots
                .add(certificate)
                .map_err(|e| HttpError::CaPem { reason: format!("certificate {} is not usable: {e}", added + 1) })?;
            added += 1;
        }
        if added == 0 {
            return Err(HttpError::CaPem { reason: "the PEM holds no CERTIFICATE block".into() });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Client { reason: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // reqwest speaks http/1.1 only here (no http2 feature).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn client(options: &HttpOptions) -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        // Redirects are followed by `Requester::get`, which checks each hop.
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls_config(options.extra_roots_pem.as_deref())?)
        .build()
        .map_err(|e| HttpError::Client { reason: error_chain(&e) })
}

/// Sends requests within the download's time bounds, following redirects.
struct Requester {
    client: reqwest::Client,
    connect_timeout: Duration,
    idle_timeout: Duration,
    overall_timeout: Duration,
    deadline: Instant,
    allow_downgrade: bool,
}

impl Requester {
    /// GET `url`, from `offset` on when resuming, and the url that answered.
    async fn get(&self, url: &Url, resume: Option<(u64, &Validator)>) -> Result<(Url, reqwest::Response), HttpError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = HeaderMap::new();
            if let Some((offset, validator)) = resume {
                // An open range `offset..` is always valid; without it the
                // server answers 200 and the resume is refused as a change.
                if let Ok(range) = Range::bytes(offset..) {
                    headers.typed_insert(range);
                }
                headers.typed_insert(validator.if_range());
            }
            let sending = self.client.get(url.clone()).headers(headers).send();
            let response = match self.within(self.connect_timeout + self.idle_timeout, sending).await {
                Waited::Done(Ok(response)) => response,
                Waited::Done(Err(e)) => {
                    return Err(HttpError::Unreachable { url: shown(&url), reason: error_chain(&e) })
                }
                Waited::Idle => return Err(self.idle(&url)),
                Waited::Deadline => return Err(self.too_slow(&url)),
            };
            let status = response.status();
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok((url, response));
            }
            let location = response.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok());
            let bad = |location: &str, reason: &str| HttpError::BadRedirect {
                url: shown(&url),
                location: location.to_owned(),
                reason: reason.to_owned(),
            };
            let location = location.ok_or_else(|| bad("", "the Location header is missing or not text"))?;
            let next = url.join(location).map_err(|e| bad(location, &e.to_string()))?;
            match (url.scheme(), next.scheme()) {
                ("https", "http") if !self.allow_downgrade => {
                    return Err(HttpError::Downgrade { from: shown(&url), to: shown(&next) })
                }
                (_, "http" | "https") => {}
                _ => return Err(bad(location, "only http and https are followed")),
            }
            tracing::debug!(from = %shown(&url), to = %shown(&next), "following a redirect");
            url = next;
        }
        Err(HttpError::TooManyRedirects { url: shown(&url), limit: MAX_REDIRECTS })
    }

    /// Runs `future` for at most `idle` and never past the overall deadline.
    async fn within<T>(&self, idle: Duration, future: impl Future<Output = T>) -> Waited<T> {
        let idle_at = Instant::now() + idle;
        if idle_at < self.deadline {
            tokio::time::timeout_at(idle_at, future).await.map_or(Waited::Idle, Waited::Done)
        } else {
            tokio::time::timeout_at(self.deadline, future).await.map_or(Waited::Deadline, Waited::Done)
        }
    }

    fn idle(&self, url: &Url) -> HttpError {
        HttpError::Idle { url: shown(url), secs: self.idle_timeout.as_secs() }
    }

    fn too_slow(&self, url: &Url) -> HttpError {
        HttpError::TooSlow { url: shown(url), secs: self.overall_timeout.as_secs() }
    }
}

enum Waited<T> {
    Done(T),
    Idle,
    Deadline,
}

/// Why one attempt at the body failed.
enum Failure {
    /// No byte for the idle timeout.
    Idle,
    /// The connection failed or the body ended short.
    Broken(String),
    /// A resume request failed in a way worth another try.
    Request(HttpError),
}

/// A resume request that did not give a body to continue with.
enum Refusal {
    Retry(HttpError),
    Final(HttpError),
}

/// The state of a download between chunks.
struct Transfer {
    requester: Requester,
    url: Url,
    total: Option<u64>,
    validator: Option<Validator>,
    max_bytes: Option<u64>,
    attempts: u32,
    attempt: u32,
    received: u64,
    /// The body being read; `None` while a resume is due.
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    finished: bool,
}

impl Transfer {
    async fn next(&mut self) -> Option<Result<Bytes, HttpError>> {
        if self.finished {
            return None;
        }
        let item = self.advance().await;
        if !matches!(item, Some(Ok(_))) {
            self.finished = true;
            self.body = None;
        }
        item
    }

    async fn advance(&mut self) -> Option<Result<Bytes, HttpError>> {
        loop {
            let failure = match self.body.as_mut() {
                None => match self.resume().await {
                    Ok(body) => {
                        self.body = Some(body);
                        continue;
                    }
                    Err(Refusal::Final(e)) => return Some(Err(e)),
                    Err(Refusal::Retry(e)) => Failure::Request(e),
                },
                Some(body) => match self.requester.within(self.requester.idle_timeout, body.next()).await {
                    Waited::Done(Some(Ok(chunk))) if chunk.is_empty() => continue,
                    Waited::Done(Some(Ok(chunk))) => {
                        self.received += chunk.len() as u64;
                        if let Some(limit) = self.max_bytes.filter(|limit| self.received > *limit) {
                            return Some(Err(HttpError::TooLarge { url: shown(&self.url), limit }));
                        }
                        return Some(Ok(chunk));
                    }
                    Waited::Done(Some(Err(e))) => Failure::Broken(error_chain(&e)),
                    Waited::Done(None) => match self.total {
                        Some(total) if self.received < total => {
                            Failure::Broken(format!("the body ended after {} of {total} bytes", self.received))
                        }
                        _ => return None,
                    },
                    Waited::Idle => Failure::Idle,
                    Waited::Deadline => return Some(Err(self.requester.too_slow(&self.url))),
                },
            };
            self.body = None;
            if let Err(e) = self.pause_before_resume(failure).await {
                return Some(Err(e));
            }
        }
    }

    /// Decides whether a failed attempt may be resumed and waits the backoff;
    /// otherwise gives the error that ends the stream.
    async fn pause_before_resume(&mut self, failure: Failure) -> Result<(), HttpError> {
        let url = shown(&self.url);
        let idle = HttpError::Idle { url: url.clone(), secs: self.requester.idle_timeout.as_secs() };
        if self.validator.is_none() {
            return Err(match failure {
                Failure::Idle => idle,
                Failure::Broken(reason) => HttpError::Interrupted { url, received: self.received, reason },
                Failure::Request(e) => e,
            });
        }
        if self.attempt >= self.attempts {
            return Err(match failure {
                Failure::Idle => idle,
                Failure::Broken(reason) => {
                    HttpError::Exhausted { url, attempts: self.attempt, received: self.received, reason }
                }
                Failure::Request(e) => e,
            });
        }
        let delay = FIRST_RETRY.saturating_mul(2u32.saturating_pow(self.attempt - 1));
        if Instant::now() + delay >= self.requester.deadline {
            return Err(self.requester.too_slow(&self.url));
        }
        let reason = match &failure {
            Failure::Idle => idle.to_string(),
            Failure::Broken(reason) => reason.clone(),
            Failure::Request(e) => e.to_string(),
        };
        tracing::warn!(%url, received = self.received, attempt = self.attempt, %reason, "download interrupted; resuming");
        tokio::time::sleep(delay).await;
        self.attempt += 1;
        Ok(())
    }

    /// Asks for the rest of the file, on condition that it is still the same file.
    async fn resume(&mut self) -> Result<BoxStream<'static, reqwest::Result<Bytes>>, Refusal> {
        // Only a transfer with a validator is ever resumed (see `pause_before_resume`).
        let validator =
            self.validator.as_ref().ok_or_else(|| Refusal::Final(HttpError::Changed { url: shown(&self.url) }))?;
        let (url, response) = match self.requester.get(&self.url, Some((self.received, validator))).await {
            Ok(answer) => answer,
            Err(e @ (HttpError::Unreachable { .. } | HttpError::Idle { .. })) => return Err(Refusal::Retry(e)),
            Err(e) => return Err(Refusal::Final(e)),
        };
        let changed = || Refusal::Final(HttpError::Changed { url: shown(&url) });
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let range = response.headers().typed_get::<ContentRange>().ok_or_else(changed)?;
                let (start, end) = range.bytes_range().ok_or_else(changed)?;
                let total = self.total.or(range.bytes_len());
                let same_length = match (self.total, range.bytes_len()) {
                    (Some(before), Some(now)) => before == now,
                    _ => true,
                };
                if start != self.received || !same_length || total.is_some_and(|total| end + 1 != total) {
                    return Err(changed());
                }
                if !validator.matches(response.headers()) {
                    return Err(changed());
                }
                self.total = total;
                self.url = url;
                Ok(response.bytes_stream().boxed())
            }
            // The validator no longer matches (or ranges are not served): a
            // 200 carries another file, or the same one from byte 0; either
            // way the bytes already passed on cannot be continued.
            StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => Err(changed()),
            status if status.is_server_error() || matches!(status.as_u16(), 408 | 429) => {
                Err(Refusal::Retry(HttpError::Status { url: shown(&url), status }))
            }
            status => Err(Refusal::Final(HttpError::Status { url: shown(&url), status })),
        }
    }
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    // A timeout too large to add means none: thirty years stand for ever.
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 60 * 60))
}

/// The url for messages and logs: any password in it is left out.
fn shown(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut clean = url.clone();
    let _ = clean.set_password(None);
    clean.to_string()
}

/// reqwest's errors say little at the top level; the cause chain says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_prefer_a_strong_etag_and_never_a_weak_one() {
        let mut headers = HeaderMap::new();
        headers.insert("etag", "\"abc\"".parse().unwrap());
        headers.insert("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT".parse().unwrap());
        assert!(matches!(Validator::of(&headers), Some(Validator::ETag(_))));
        headers.insert("etag", "W/\"abc\"".parse().unwrap());
        assert!(matches!(Validator::of(&headers), Some(Validator::LastModified(_))));
        headers.remove("last-modified");
        assert!(Validator::of(&headers).is_none(), "a weak tag cannot go in If-Range");
        headers.insert("etag", "\"abc\"".parse().unwrap());
        headers.insert("accept-ranges", "none".parse().unwrap());
        assert!(Validator::of(&headers).is_none(), "the server said it serves no ranges");
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let url = Url::parse("https://user:secret@example.org/a.tar").unwrap();
        assert_eq!(shown(&url), "https://user@example.org/a.tar");
    }

    #[test]
    fn restartable_kinds() {
        let url = String::from("http://x/");
        assert!(HttpError::Changed { url: url.clone() }.is_restartable());
        assert!(HttpError::Interrupted { url: url.clone(), received: 1, reason: String::new() }.is_restartable());
        assert!(!HttpError::Idle { url, secs: 1 }.is_restartable());
    }
}
