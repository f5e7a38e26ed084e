//! The one place that chooses status codes. Every error answers with the same JSON shape,
//! `{"error": {"code": "...", "message": "...", "request_id": "..."}}`; internal error
//! text is logged here and never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppError;

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
    Unauthorized(&'static str),
    /// Too many failed logins.
    RateLimited,
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
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
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.to_string()),
            ApiError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed logins from this address; wait a minute".to_string(),
            ),
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
        resp
    }
}
