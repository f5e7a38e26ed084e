//! `ask`: one question to the copilot from the command line, over the demo distributor
//! by default; and the language-model selection shared with `serve` and `eval`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::SourceArgs;
use super::server::StorageArgs;
use crate::app::User;
use crate::app::source::DemoSource;
use crate::copilot::model::Model;
use crate::copilot::{ChatEvent, ChatRequest, Copilot, CopilotConfig};
use crate::policy::Policy;

/// How the copilot answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LlmMode {
    /// `openai` when `LLM_BASE_URL` is set, else `offline`.
    Auto,
    /// Deterministic intent routing and templates; no model.
    Offline,
    /// An OpenAI-compatible endpoint (`LLM_BASE_URL`, `LLM_MODEL`, `LLM_API_KEY`).
    Openai,
}

/// Language-model selection.
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// How the copilot answers.
    #[arg(long, env = "ORDER_COPILOT_LLM", value_enum, default_value_t = LlmMode::Auto)]
    pub llm: LlmMode,
}

impl LlmArgs {
    /// The model to use, or `None` for offline answers.
    pub fn model(&self) -> anyhow::Result<Option<Arc<dyn Model>>> {
        let configured = std::env::var("LLM_BASE_URL")
            .ok()
            .filter(|s| !s.trim().is_empty());
        match (self.llm, configured) {
            (LlmMode::Offline, _) | (LlmMode::Auto, None) => Ok(None),
            (LlmMode::Openai, None) => {
                anyhow::bail!(
                    "--llm openai needs LLM_BASE_URL (and LLM_MODEL, optionally LLM_API_KEY)"
                )
            }
            (_, Some(_)) => anyhow::bail!(
                "openai mode is not available in this build: the OpenAI-compatible adapter is missing"
            ),
        }
    }
}

/// `ask` arguments.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question, e.g. "why is S00042 blocked?".
    pub message: String,
    /// Ask as a user of this role.
    #[arg(long = "as", default_value = "service_rep", value_name = "ROLE")]
    pub role: String,
    /// The order you have open (used when the question names none).
    #[arg(long)]
    pub order: Option<String>,
    /// Continue this conversation.
    #[arg(long)]
    pub conversation: Option<String>,
    /// Print the whole turn (answer, tool calls, events) as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Run `ask`.
pub fn ask(policy: Policy, a: AskArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if !policy.roles.iter().any(|r| r == &a.role) {
        anyhow::bail!(
            "unknown role `{}` (known roles: {})",
            a.role,
            policy.roles.join(", ")
        );
    }
    let model = a.llm.model()?;
    let snap = super::load_source(&a.source)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let store = a.storage.open().await?;
        let demo = Arc::new(DemoSource::from_snapshot(snap));
        let (app, writer) =
            crate::app::start(store.clone(), Arc::new(policy), demo.clone(), demo).await?;
        app.scan("cli").await?;
        let copilot = Copilot::new(app.clone(), model, CopilotConfig::default())?;
        let user = User {
            name: format!("cli-{}", a.role),
            role: a.role.clone(),
        };
        let turn = copilot
            .answer(
                &user,
                ChatRequest {
                    message: a.message.clone(),
                    conversation_id: a.conversation.clone(),
                    order: a.order.clone(),
                },
            )
            .await;
        writer.finish().await;
        store.close().await;
        let turn = turn?;
        if a.json {
            serde_json::to_writer_pretty(&mut *out, &turn)?;
            writeln!(out)?;
        } else {
            for e in &turn.events {
                if let ChatEvent::Notice { message } = e {
                    writeln!(out, "note: {message}")?;
                }
            }
            writeln!(out, "{}", turn.answer.trim_end())?;
            if !turn.citations.is_empty() {
                let refs: Vec<&str> = turn
                    .citations
                    .iter()
                    .map(|s| s.reference.as_str())
                    .collect();
                writeln!(out, "\nsources: {}", refs.join(", "))?;
            }
            writeln!(
                out,
                "conversation {} ({}{})",
                turn.conversation_id,
                turn.mode.as_str(),
                if turn.fallback {
                    ", fell back to offline"
                } else {
                    ""
                }
            )?;
        }
        Ok(match turn.error {
            Some(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
            None => ExitCode::SUCCESS,
        })
    })
}
