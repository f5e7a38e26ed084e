//! The one interface between the copilot and a language model.
//!
//! The copilot's engine (tool loop, approval boundary, fallback to offline answers) talks
//! only to [`Model`]; `openai.rs` implements it for any OpenAI-compatible endpoint and
//! tests implement it with scripted models. Nothing here knows about tools' meaning: a
//! model proposes tool calls, the engine decides what happens to them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::app::source::BoxFuture;

/// Who wrote a message of the conversation sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One message as sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Tool calls the assistant made in this message (assistant messages only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Which call this message answers (tool messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message without tool calls.
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// The result of a tool call, answering `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
        }
    }
}

/// A tool call proposed by the model. `arguments` is the raw JSON text the model wrote:
/// the engine validates it against the tool's schema, never the adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool offered to the model: name, description and JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// One completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    /// The adapter must give up (with [`ModelError::Timeout`]) after this long.
    pub timeout: Duration,
}

/// What a model streams while it answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// A piece of answer text.
    TextDelta(String),
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    ToolCalls,
    Length,
    Other,
}

/// A finished completion: the whole text, the tool calls, token counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// Where a model runs: decides which data classes may be sent to it (the data-access
/// policy in `policies/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// On this machine or the customer's own network.
    Local,
    /// A hosted service outside the customer's control.
    External,
}

/// Why a completion failed, classified so the engine knows what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Worth retrying (connection refused, 429, 5xx) — the adapter already retried within
    /// its budget.
    #[error("model temporarily unavailable: {0}")]
    Transient(String),
    /// Retrying will not help (bad key, unknown model, malformed request).
    #[error("model request failed: {0}")]
    Permanent(String),
    /// The prompt did not fit the model's context: trim and retry once.
    #[error("prompt too long for the model: {0}")]
    ContextTooLong(String),
    /// No answer within the request's timeout.
    #[error("model did not answer within {0:?}")]
    Timeout(Duration),
}

/// A language model that can call tools.
pub trait Model: Send + Sync {
    /// Model name for logs, the audit trail and the eval report (`qwen2.5-coder-1.5b`).
    fn name(&self) -> String;
    /// Where it runs.
    fn provider(&self) -> Provider;
    /// Complete `req`, streaming text through `sink` as it arrives.
    fn complete<'a>(
        &'a self,
        req: &'a ModelRequest,
        sink: &'a mut (dyn FnMut(ModelEvent) + Send),
    ) -> BoxFuture<'a, Result<ModelOutput, ModelError>>;
}
