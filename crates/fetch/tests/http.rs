//! Downloads against the testkit's loopback file server: what arrives, what
//! goes over the wire when a transfer is resumed, and each way a download is
//! refused. Timeouts are configured short; the assertions are on the kind of
//! error, never on how long anything took.

use berth_fetch::http::{self, Download, HttpError, HttpOptions};
use berth_testkit::http_server::{FileServer, Request, Validator};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `len` bytes that differ with `seed`, in a file under `dir`.
fn content(dir: &Path, name: &str, len: usize, seed: u32) -> (PathBuf, Vec<u8>) {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// Everything the stream gives: the bytes before the end, and the error it ended with.
async fn drain(download: Download) -> (Vec<u8>, Option<HttpError>) {
    let mut stream = download.into_stream();
    let mut bytes = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(e) => {
                assert!(stream.next().await.is_none(), "nothing follows an error");
                return (bytes, Some(e));
            }
        }
    }
    (bytes, None)
}

async fn fetch(url: &str, options: &HttpOptions) -> Vec<u8> {
    let download = http::open(url, options).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    let (bytes, error) = drain(download).await;
    if let Some(e) = error {
        panic!("{url}: {e}");
    }
    bytes
}

fn ranges(requests: &[Request]) -> Vec<Option<&str>> {
    requests.iter().map(|r| r.range.as_deref()).collect()
}

struct Served {
    _dir: tempfile::TempDir,
    server: FileServer,
    path: &'static str,
    bytes: Vec<u8>,
}

impl Served {
    fn url(&self) -> String {
        self.server.url(self.path)
    }
}

fn served(len: usize) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = content(dir.path(), "a.bin", len, 1);
    let server = FileServer::start();
    server.file("/a.bin", &file);
    Served { _dir: dir, server, path: "/a.bin", bytes }
}

#[tokio::test]
async fn a_plain_download_streams_the_whole_file() {
    let s = served(1_000_000);
    let download = http::open(&s.url(), &HttpOptions::default()).await.unwrap();
    assert_eq!((download.url(), download.total()), (s.url().as_str(), Some(1_000_000)));
    let (bytes, error) = drain(download).await;
    assert!(error.is_none(), "{error:?}");
    assert!(bytes == s.bytes, "the bytes arrive as served");
    assert_eq!(ranges(&s.server.requests_for(s.path)), [None]);
}

#[tokio::test]
async fn a_break_is_resumed_with_range_and_if_range_on_the_etag() {
    let s = served(300_000);
    s.server.break_after(s.path, 100_000, 2);
    assert!(fetch(&s.url(), &HttpOptions::default()).await == s.bytes);
    let requests = s.server.requests_for(s.path);
    assert_eq!(ranges(&requests), [None, Some("bytes=100000-"), Some("bytes=200000-")]);
    let if_ranges: Vec<_> = requests.iter().map(|r| r.if_range.as_deref()).collect();
    assert_eq!(if_ranges, [None, Some("\"berth-0\""), Some("\"berth-0\"")]);
}

#[tokio::test]
async fn without_a_strong_etag_last_modified_validates_the_resume() {
    let s = served(200_000);
    s.server.validators(s.path, &[Validator::WeakETag, Validator::LastModified]);
    s.server.break_after(s.path, 50_000, 1);
    assert!(fetch(&s.url(), &HttpOptions::default()).await == s.bytes);
    let requests = s.server.requests_for(s.path);
    assert_eq!(ranges(&requests), [None, Some("bytes=50000-")]);
    assert_eq!(requests[1].if_range.as_deref(), Some("Mon, 01 Jan 2024 00:00:00 GMT"), "never the weak tag");
}

/// The old intake sent a bare `Range` and spliced whatever came back onto the
/// bytes it had passed on: half of one file, half of another.
#[tokio::test]
async fn a_file_replaced_between_attempts_is_never_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let (old, old_bytes) = content(dir.path(), "old.bin", 200_000, 1);
    let (new, new_bytes) = content(dir.path(), "new.bin", 200_000, 2);
    let server = FileServer::start();
    server.versions("/a.bin", &[&old, &new]);
    server.break_after("/a.bin", 100_000, 1);
    let url = server.url("/a.bin");
    let (bytes, error) = drain(http::open(&url, &HttpOptions::default()).await.unwrap()).await;
    let error = error.expect("the change is an error");
    assert!(matches!(error, HttpError::Changed { .. }) && error.is_restartable(), "{error}");
    assert!(error.to_string().contains(&url), "{error}");
    assert!(bytes == old_bytes[..100_000], "only the old file's own bytes were passed on");
    let requests = server.requests_for("/a.bin");
    assert_eq!(requests[1].if_range.as_deref(), Some("\"berth-0\""));

    // The caller starts again from byte 0 and gets the new file whole.
    assert!(fetch(&url, &HttpOptions::default()).await == new_bytes);
}

#[tokio::test]
async fn a_server_that_honours_range_but_not_if_range_is_caught_by_the_length() {
    let dir = tempfile::tempdir().unwrap();
    let (old, _) = content(dir.path(), "old.bin", 200_000, 1);
    let (new, _) = content(dir.path(), "new.bin", 250_000, 2);
    let server = FileServer::start();
    server.versions("/a.bin", &[&old, &new]);
    server.ignore_if_range("/a.bin");
    server.break_after("/a.bin", 100_000, 1);
    let (_, error) = drain(http::open(&server.url("/a.bin"), &HttpOptions::default()).await.unwrap()).await;
    assert!(matches!(error, Some(HttpError::Changed { .. })), "{error:?}");
}

#[tokio::test]
async fn a_server_that_ignores_range_is_a_change_not_a_splice() {
    let s = served(200_000);
    s.server.ignore_range(s.path);
    s.server.break_after(s.path, 100_000, 1);
    let (bytes, error) = drain(http::open(&s.url(), &HttpOptions::default()).await.unwrap()).await;
    assert!(matches!(error, Some(HttpError::Changed { .. })), "{error:?}");
    assert_eq!(bytes.len(), 100_000);
}

#[tokio::test]
async fn without_any_validator_a_break_is_not_resumed() {
    for validators in [&[][..], &[Validator::WeakETag][..]] {
        let s = served(200_000);
        s.server.validators(s.path, validators);
        s.server.break_after(s.path, 100_000, 1);
        let (bytes, error) = drain(http::open(&s.url(), &HttpOptions::default()).await.unwrap()).await;
        match error {
            Some(e @ HttpError::Interrupted { received: 100_000, .. }) => assert!(e.is_restartable()),
            other => panic!("{validators:?}: {other:?}"),
        }
        assert!(bytes == s.bytes[..100_000]);
        assert_eq!(ranges(&s.server.requests_for(s.path)), [None], "no second request");
    }
}

#[tokio::test]
async fn a_transfer_that_keeps_breaking_is_given_up_after_the_attempts() {
    let s = served(200_000);
    s.server.break_after(s.path, 1_000, 100);
    let options = HttpOptions { attempts: 3, ..Default::default() };
    let (bytes, error) = drain(http::open(&s.url(), &options).await.unwrap()).await;
    let error = error.expect("given up");
    assert!(matches!(error, HttpError::Exhausted { attempts: 3, received: 3_000, .. }), "{error:?}");
    assert!(!error.is_restartable(), "restarting would only fail again");
    assert!(error.to_string().contains("download failed after 3 attempts"), "{error}");
    assert!(bytes == s.bytes[..3_000], "what came was right");
    assert_eq!(s.server.requests_for(s.path).len(), 3);
}

#[tokio::test]
async fn error_statuses_and_a_missing_server_are_reported_at_open() {
    let s = served(10);
    let missing = s.server.url("/missing.bin");
    match http::open(&missing, &HttpOptions::default()).await {
        Err(e @ HttpError::Status { status, .. }) => {
            assert_eq!(status, 404);
            assert!(e.to_string().contains(&missing) && e.to_string().contains("404"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    s.server.status("/broken.bin", 500);
    let error = http::open(&s.server.url("/broken.bin"), &HttpOptions::default()).await.unwrap_err();
    assert!(matches!(error, HttpError::Status { status, .. } if status == 500), "{error:?}");

    // Nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/a.bin");
    let error = http::open(&url, &HttpOptions::default()).await.unwrap_err();
    assert!(matches!(error, HttpError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains(&url) && error.to_string().contains("refused"), "the cause chain: {error}");

    for bad in ["not a url", "ftp://127.0.0.1/a.bin"] {
        let error = http::open(bad, &HttpOptions::default()).await.unwrap_err();
        assert!(matches!(error, HttpError::BadUrl { .. }), "{bad}: {error:?}");
    }
}

#[tokio::test]
async fn a_body_that_goes_silent_fails_each_attempt_on_the_idle_timeout() {
    let s = served(100_000);
    s.server.trickle(s.path);
    let options = HttpOptions { idle_timeout: Duration::from_millis(500), attempts: 2, ..Default::default() };
    let (bytes, error) = drain(http::open(&s.url(), &options).await.unwrap()).await;
    assert!(matches!(error, Some(HttpError::Idle { .. })), "{error:?}");
    // Each attempt gave one byte, the second resumed after the first.
    assert!(bytes == s.bytes[..2]);
    assert_eq!(ranges(&s.server.requests_for(s.path)), [None, Some("bytes=1-")]);
}

#[tokio::test]
async fn a_server_that_never_answers_is_idle_at_open() {
    let s = served(10);
    s.server.silent(s.path);
    let options = HttpOptions {
        connect_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let error = http::open(&s.url(), &options).await.unwrap_err();
    assert!(matches!(error, HttpError::Idle { .. }), "{error:?}");
}

#[tokio::test]
async fn the_overall_timeout_bounds_open_and_the_body() {
    let s = served(100_000);
    s.server.trickle(s.path);
    let options = HttpOptions { overall_timeout: Duration::from_millis(300), ..Default::default() };
    let (bytes, error) = drain(http::open(&s.url(), &options).await.unwrap()).await;
    assert!(matches!(error, Some(HttpError::TooSlow { .. })), "{error:?}");
    assert_eq!(bytes.len(), 1);

    s.server.silent("/never");
    let error = http::open(&s.server.url("/never"), &options).await.unwrap_err();
    assert!(matches!(error, HttpError::TooSlow { .. }), "{error:?}");
}

#[tokio::test]
async fn bodies_beyond_max_bytes_are_refused() {
    let s = served(100_000);
    let options = HttpOptions { max_bytes: Some(99_999), ..Default::default() };
    let error = http::open(&s.url(), &options).await.unwrap_err();
    assert!(matches!(error, HttpError::TooLarge { limit: 99_999, .. }), "by Content-Length: {error:?}");

    s.server.hide_length(s.path);
    let download = http::open(&s.url(), &options).await.unwrap();
    assert_eq!(download.total(), None);
    let (bytes, error) = drain(download).await;
    assert!(matches!(error, Some(HttpError::TooLarge { limit: 99_999, .. })), "counted: {error:?}");
    assert!(bytes.len() <= 99_999);

    let exact = HttpOptions { max_bytes: Some(100_000), ..Default::default() };
    assert!(fetch(&s.url(), &exact).await == s.bytes, "a body of exactly the limit passes");
}

#[tokio::test]
async fn redirects_are_followed_and_bounded() {
    let s = served(1_000);
    s.server.redirect("/old", "/a.bin");
    let download = http::open(&s.server.url("/old"), &HttpOptions::default()).await.unwrap();
    assert_eq!(download.url(), s.url(), "the final url");
    assert!(drain(download).await.0 == s.bytes);

    s.server.redirect("/loop", "/loop");
    let error = http::open(&s.server.url("/loop"), &HttpOptions::default()).await.unwrap_err();
    assert!(matches!(error, HttpError::TooManyRedirects { limit: 10, .. }), "{error:?}");
}

#[tokio::test]
async fn https_trusts_extra_roots_from_pem_content_and_refuses_a_downgrade() {
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = content(dir.path(), "a.bin", 100_000, 3);
    let (tls, ca_pem) = FileServer::start_tls();
    tls.file("/a.bin", &file);
    let url = tls.url("/a.bin");

    let error = http::open(&url, &HttpOptions::default()).await.unwrap_err();
    assert!(matches!(error, HttpError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().to_lowercase().contains("certificate"), "the cause chain: {error}");

    let trusting = HttpOptions { extra_roots_pem: Some(ca_pem.into_bytes()), ..Default::default() };
    assert!(fetch(&url, &trusting).await == bytes);

    let plain = FileServer::start();
    plain.file("/a.bin", &file);
    tls.redirect("/moved", &plain.url("/a.bin"));
    let moved = tls.url("/moved");
    match http::open(&moved, &trusting).await {
        Err(HttpError::Downgrade { from, to }) => assert_eq!((from, to), (moved.clone(), plain.url("/a.bin"))),
        other => panic!("{other:?}"),
    }
    assert!(plain.requests().is_empty(), "nothing was sent in the clear");
    let allowing = HttpOptions { allow_downgrade: true, ..trusting };
    assert!(fetch(&moved, &allowing).await == bytes);
}

#[tokio::test]
async fn extra_roots_that_are_not_certificates_are_refused() {
    let key_only = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let not_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for pem in ["not a certificate", "", key_only, bad_base64, not_der] {
        let options = HttpOptions { extra_roots_pem: Some(pem.as_bytes().to_vec()), ..Default::default() };
        let error = http::open("https://127.0.0.1:1/a.bin", &options).await.unwrap_err();
        assert!(matches!(error, HttpError::CaPem { .. }), "{pem:?}: {error:?}");
    }
}
