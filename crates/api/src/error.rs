//! The API's error body, `{"code": "...", "message": "..."}`, for every error
//! of every route — the daemon's own, and malformed requests that never reach
//! it (bad JSON, a wrong content type, unknown fields, bad query parameters,
//! unknown paths and methods). The kinds and their HTTP statuses and exit
//! codes are `berth_core::error`'s one table.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use berth_core::error::ErrorKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
pub struct ApiError {
    pub code: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorKind, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

/// A JSON body whose every refusal is an [`ApiError`] naming what was wrong.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    let kind = match rejection {
        JsonRejection::BytesRejection(_) => ErrorKind::TooLarge,
        _ => ErrorKind::InvalidInput,
    };
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON (Content-Type: application/json)".to_owned()
        }
        other => format!("the request body is not accepted: {}", short(&other.body_text())),
    };
    ApiError::new(kind, message)
}

/// Query parameters, refused as [`ApiError`]s.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(ErrorKind::InvalidInput, format!("bad query parameters: {}", short(&rejection.body_text())))
}

/// Path parameters, refused as [`ApiError`]s.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::new(ErrorKind::InvalidInput, format!("bad path: {}", short(&rejection.body_text())))
}

/// Keeps an echoed input short: a message names what was wrong, it does not
/// repeat a 300-digit number.
pub fn short(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}…")
}
