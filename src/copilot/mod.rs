//! The copilot: answers questions about orders and exceptions with tools over the core,
//! the store and retrieval, through a language model or offline templates.
//!
//! - [`model`] — the one interface to a language model.
//! - [`openai`] — [`model::Model`] over any OpenAI-compatible endpoint (async-openai).
//! - [`tools`] — typed tools (JSON Schema from their Rust argument types) in three risk
//!   classes; act tools only ever create approval requests.
//! - [`engine`] — [`Copilot`]: one turn = a stream of [`ChatEvent`]s, answered by a model
//!   (tool loop, retries, budget, fallback) or offline.
//! - [`offline`] — deterministic intent and entity recognition and templated answers.
//! - [`governance`] — the data-access policy: redaction before a prompt leaves.
//! - [`grounding`] — the figure check every model answer passes before it is shown.
//! - [`prompts`] — the minijinja templates of `prompts/`.
//! - [`knowledge`] — what the copilot needs from retrieval.
//! - [`event`] — the typed events of a turn (rendered as SSE by the HTTP layer).
//! - [`fake`] — scripted and instant fake models for tests and benchmarks.
//! - [`eval`] — the eval runner over `evals/cases.toml`.
//!
//! Must not depend on HTTP: the API, the CLI and the Odoo bot all call [`Copilot`].

pub mod claims;
pub mod engine;
pub mod eval;
pub mod event;
pub mod fake;
pub mod governance;
pub mod grounding;
pub mod knowledge;
pub mod model;
pub mod offline;
pub mod openai;
pub mod prompts;
pub mod tools;

pub use engine::{ChatRequest, Copilot, CopilotConfig, Started, TurnOutcome};
pub use event::{ChatEvent, Mode, Risk, Source, SourceKind, Tokens};
