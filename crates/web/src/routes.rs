//! `/ui/session`, `/ui/login`, `/ui/logout`: the browser's sign-in.

use crate::guard::{Peer, SignedIn, COOKIE};
use crate::WebAuth;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use berth_api::{ApiError, ErrorKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Largest sign-in body taken.
const MAX_LOGIN_BYTES: usize = 4096;

#[derive(Debug, Serialize)]
struct SessionView {
    user: String,
    /// Empty for a certificate: the guard checks its requests' origin instead.
    csrf: String,
    method: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
    password: String,
}

pub fn routes(auth: Arc<WebAuth>) -> Router {
    Router::new()
        .route("/ui/session", get(session))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .with_state(auth)
}

async fn session(signed_in: Option<Extension<SignedIn>>, State(auth): State<Arc<WebAuth>>) -> Response {
    match signed_in.map(|Extension(s)| s) {
        Some(SignedIn::Certificate) => {
            Json(SessionView { user: "certificate".into(), csrf: String::new(), method: "certificate" }).into_response()
        }
        Some(SignedIn::Password { user, csrf, .. }) => {
            Json(SessionView { user, csrf, method: "password" }).into_response()
        }
        None => {
            let message = match auth.admin().await {
                Ok(Some(_)) => "not signed in".to_owned(),
                Ok(None) => "not signed in, and no administrator account is set: set one with `berth web passwd`, or use a client certificate of berth's CA".to_owned(),
                Err(e) => format!("not signed in; the administrator account cannot be read: {e}"),
            };
            ApiError::new(ErrorKind::Unauthenticated, message).into_response()
        }
    }
}

async fn login(State(auth): State<Arc<WebAuth>>, Extension(peer): Extension<Peer>, body: Bytes) -> Response {
    let address = peer.address.ip();
    if let Err(wait) = auth.limiter.check(address, Instant::now()) {
        let secs = wait.as_secs_f64().ceil() as u64;
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        let error = ApiError::new(ErrorKind::RateLimited, format!("too many failed sign-ins; try again in {secs} s"));
        return (headers, error).into_response();
    }
    if body.len() > MAX_LOGIN_BYTES {
        return ApiError::new(ErrorKind::TooLarge, format!("a sign-in is at most {MAX_LOGIN_BYTES} bytes"))
            .into_response();
    }
    let Login { user, password } = match serde_json::from_slice(&body) {
        Ok(login) => login,
        Err(e) => {
            return ApiError::new(ErrorKind::InvalidInput, format!("a sign-in is {{\"user\":…,\"password\":…}}: {e}"))
                .into_response()
        }
    };
    let account = match auth.read_account().await {
        Ok(Some(account)) => account,
        Ok(None) => {
            return ApiError::new(
                ErrorKind::Unauthenticated,
                "no administrator account is set on this daemon: set one with `berth web passwd`",
            )
            .into_response()
        }
        Err(e) => return ApiError::new(ErrorKind::Internal, e.to_string()).into_response(),
    };
    let Ok(_permit) = auth.hashing.acquire().await else {
        return ApiError::new(ErrorKind::Internal, "the daemon is shutting down").into_response();
    };
    let checked_user = user.clone();
    let right = tokio::task::spawn_blocking(move || account.verify(&checked_user, &password)).await.unwrap_or(false);
    if !right {
        auth.limiter.failed(address, Instant::now());
        tracing::warn!(peer = %peer.address, "a web UI sign-in failed");
        return ApiError::new(ErrorKind::Unauthenticated, "wrong user name or password").into_response();
    }
    auth.limiter.succeeded(address);
    let (token, session) = auth.sessions.open(&user, Instant::now());
    tracing::info!(peer = %peer.address, %user, "signed in to the web UI");
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        auth.sessions.lifetime().as_secs()
    );
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    (headers, Json(SessionView { user: session.user, csrf: session.csrf, method: "password" })).into_response()
}

async fn logout(State(auth): State<Arc<WebAuth>>, signed_in: Option<Extension<SignedIn>>) -> Response {
    if let Some(Extension(SignedIn::Password { token, .. })) = signed_in {
        auth.sessions.close(&token);
    }
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&expired) {
        headers.insert(header::SET_COOKIE, value);
    }
    (StatusCode::NO_CONTENT, headers).into_response()
}
