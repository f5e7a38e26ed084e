//! The one place that chooses status codes. Every error answers with the same JSON shape,
//! `{"error": {"code": "...", "message": "...", "request_id": "..."}}`; internal error
//! text is logged here and never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::limits::Limited;
use crate::app::{AppError, TurnRefused};

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// From a use-case.
    App(AppError),
    /// No or bad credentials.
    Unauthorized(String),
    /// Too many failed logins.
    RateLimited,
    /// A limit of `limits.toml` (request rate, concurrent turns, model tokens per day).
    Limited(Limited),
    /// Malformed request (bad JSON, bad query).
    BadRequest(String),
    /// No such route or resource.
    NotFound(String),
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::App(e)
    }
}

impl From<TurnRefused> for ApiError {
    fn from(e: TurnRefused) -> Self {
        match e {
            TurnRefused::Limited(l) => ApiError::Limited(l),
            TurnRefused::App(e) => ApiError::App(e),
        }
    }
}

/// How long a client rate-limited for failed logins waits.
const LOGIN_RETRY_AFTER_SECS: u64 = 60;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::RateLimited => Some(LOGIN_RETRY_AFTER_SECS),
            ApiError::Limited(l) => Some(l.retry_after_secs()),
            _ => None,
        };
        let (status, code, message) = match self {
            ApiError::App(AppError::NotFound(m)) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::App(AppError::Forbidden(m)) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::App(AppError::Conflict(m)) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::App(AppError::BadRequest(m)) | ApiError::BadRequest(m) => {
                (StatusCode::BAD_REQUEST, "bad_request", m)
            }
            ApiError::App(AppError::Internal(m)) => {
                tracing::error!(error = %m, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log".to_string(),
                )
            }
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            ApiError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed logins from this address; wait a minute".to_string(),
            ),
            ApiError::Limited(l) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", l.message),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
        };
        let request_id = REQUEST_ID.try_with(|r| r.clone()).unwrap_or_default();
        let mut resp = (
            status,
            Json(json!({"error": {"code": code, "message": message, "request_id": request_id}})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = axum::http::HeaderValue::from_str("Bearer")
        {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        resp
    }
}
