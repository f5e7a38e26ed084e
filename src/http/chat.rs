//! `POST /api/chat` (a turn streamed as Server-Sent Events) and
//! `GET /api/conversations/{id}`. The turn itself is the copilot's; this file only
//! validates, starts it, and renders its events as `event:`/`data:` frames.

use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::app::User;
use crate::copilot::ChatRequest;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChatBody {
    message: String,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    order: Option<String>,
}

pub(super) async fn chat(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let body: serde_json::Value = serde_json::from_slice(&b)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    // serde would also read the struct from an array (`["hi"]`): only an object is a body.
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "invalid JSON body: expected an object like {\"message\": \"…\"}".into(),
        ));
    }
    let body: ChatBody = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    // Held by the stream below: the slot frees when the turn's last event is sent or the
    // client goes away.
    let slot = s.app.begin_turn(&user).await?;
    let started = s
        .copilot
        .start(
            &user,
            ChatRequest {
                message: body.message,
                conversation_id: body.conversation_id,
                order: body.order,
            },
        )
        .await?;
    let rx = s.copilot.stream(started);
    let frames = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv()
            .await
            .map(|e| (Ok::<_, Infallible>(Bytes::from(e.to_sse())), (rx, slot)))
    });
    let mut resp = Body::from_stream(frames).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

pub(super) async fn conversation(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.copilot.conversation(&user, &id).await?).into_response())
}
