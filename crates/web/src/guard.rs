//! The guard in front of everything a browser-facing listener serves: who
//! is asking (a client certificate or a session cookie), and whether a
//! request that changes something really comes from berth's own page.

use crate::account::constant_time_eq;
use crate::WebAuth;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_api::{ApiError, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The session cookie's name.
pub const COOKIE: &str = "berth_session";
/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-berth-csrf";

/// Who is at the other end of a connection, set by the listener on every
/// request: its address, and whether it presented a client certificate
/// that berth's CA signed (the TLS handshake has verified it).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub address: SocketAddr,
    pub certificate: bool,
}

/// How a request was signed in, for the handlers behind the guard.
#[derive(Debug, Clone)]
pub enum SignedIn {
    Certificate,
    Password { user: String, csrf: String, token: String },
}

/// What anyone may fetch: the page itself and the sign-in.
fn is_public(path: &str) -> bool {
    matches!(path, "/" | "/index.html" | "/ui/login" | "/ui/session") || path.starts_with("/assets/")
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn refused(message: impl Into<String>) -> Response {
    ApiError::new(ErrorKind::Unauthenticated, message).into_response()
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A request from another site's page (by `Origin` or `Sec-Fetch-Site`).
/// Browsers send one of them on every cross-site POST, so a page elsewhere
/// cannot ride on a browser's certificate or cookie.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "cross-site" || site == "same-site" {
            return Some(format!("a request from another site (Sec-Fetch-Site: {site}) is refused"));
        }
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (origin_host != host).then(|| format!("a request from another origin ({}) is refused", berth_api::short(origin)))
}

pub async fn guard(State(auth): State<Arc<WebAuth>>, mut request: Request, next: Next) -> Response {
    // A listener that does not say who is asking is refused: fail closed.
    let Some(peer) = request.extensions().get::<Peer>().copied() else {
        return refused("this listener does not identify its clients");
    };
    let headers = request.headers();
    let changes = changes_state(request.method());
    if changes {
        if let Some(reason) = cross_site(headers) {
            tracing::warn!(peer = %peer.address, "{reason}");
            return refused(reason);
        }
    }
    let signed_in = if peer.certificate {
        Some(SignedIn::Certificate)
    } else {
        cookie(headers, COOKIE).and_then(|token| {
            auth.sessions.get(token, Instant::now()).map(|session| SignedIn::Password {
                user: session.user,
                csrf: session.csrf,
                token: token.to_owned(),
            })
        })
    };
    let path = request.uri().path();
    match &signed_in {
        None if !is_public(path) => {
            return refused("not signed in: sign in on the web UI, or present a client certificate of berth's CA")
        }
        Some(SignedIn::Password { csrf, .. }) if changes && path != "/ui/login" => {
            let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
            if !constant_time_eq(sent, csrf.as_bytes()) {
                return refused("the request does not carry the session's X-Berth-CSRF token");
            }
        }
        _ => {}
    }
    if let Some(signed_in) = signed_in {
        request.extensions_mut().insert(signed_in);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; berth_session=tok; b=2"));
        assert_eq!(cookie(&headers, COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn only_same_origin_changes_pass() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8470"));
        assert!(cross_site(&headers).is_none(), "a CLI sends neither header");
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8470"));
        assert!(cross_site(&headers).is_none());
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&headers).unwrap().contains("evil.example"));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8470"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&headers).is_some());
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(cross_site(&headers).is_none());
    }
}
