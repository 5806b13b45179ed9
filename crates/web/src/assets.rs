//! The front end's files, embedded at build time from `web/dist` (made by
//! `scripts/build-web.sh`). Hashed assets are cached for good; the page
//! itself is revalidated, so an upgraded berth serves its new UI at once.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist/"]
#[allow_missing = true]
struct Dist;

/// What the page may load and do: only berth's own files and API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const NOT_BUILT: &str = "<!doctype html><html lang=en><meta charset=utf-8><title>berth</title>\
<p>berth's web UI is not in this binary: it was compiled before the front end was built. \
Run <code>scripts/build-web.sh</code>, then build berth again. The API works as ever.</p></html>";

pub fn routes() -> Router {
    Router::new().route("/", get(index)).route("/index.html", get(index)).route("/assets/{*path}", get(asset))
}

/// Whether the UI was built into this binary.
pub fn built() -> bool {
    Dist::get("index.html").is_some()
}

async fn index(headers: HeaderMap) -> Response {
    if !built() {
        let mut headers = security_headers();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        return (headers, NOT_BUILT).into_response();
    }
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), &headers)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(file) = Dist::get(name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let mut headers = security_headers();
    let immutable = name.starts_with("assets/");
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mime = file.metadata.mimetype();
    if let Ok(value) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let gzip_ok = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if gzip_ok && compressible(mime) {
        if let Some(compressed) = gzipped(name, &file.data) {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return (headers, compressed).into_response();
        }
    }
    (headers, file.data.into_owned()).into_response()
}

/// What every file of the UI is served with: no framing, no sniffing, no
/// referrer, and the page confined to berth's own origin.
fn security_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
}

fn compressible(mime: &str) -> bool {
    mime.starts_with("text/") || mime.contains("javascript") || mime.contains("json") || mime.contains("svg")
}

/// The gzip of an embedded file, made once on first request and kept.
fn gzipped(name: &str, data: &[u8]) -> Option<Bytes> {
    static CACHE: OnceLock<Mutex<HashMap<String, Bytes>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(done) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
        return Some(done.clone());
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let compressed = Bytes::from(encoder.write_all(data).and_then(|()| encoder.finish()).ok()?);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), compressed.clone());
    Some(compressed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
