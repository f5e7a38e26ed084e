//! `ask`: one question to the copilot from the command line, over the configured source
//! (the Odoo named by `ODOO_URL`, else the demo); `eval`, always over the demo its cases
//! are written for; and the language-model selection shared with `serve`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::SourceArgs;
use super::server::StorageArgs;
use super::source::{self, Need, SourceInfo, WithSource};
use crate::app::User;
use crate::app::source::DemoSource;
use crate::copilot::model::Model;
use crate::copilot::openai::{OpenAiConfig, OpenAiModel};
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
    /// Seconds a turn may spend on the model before answering offline (a small local
    /// model on a busy CPU needs minutes).
    #[arg(long, env = "ORDER_COPILOT_TURN_BUDGET", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub turn_budget: u64,
}

impl LlmArgs {
    /// The engine's configuration: the defaults with this turn budget.
    pub fn copilot_config(&self) -> CopilotConfig {
        CopilotConfig {
            turn_budget: std::time::Duration::from_secs(self.turn_budget),
            ..CopilotConfig::default()
        }
    }

    /// The model to use, or `None` for offline answers.
    pub fn model(&self) -> anyhow::Result<Option<Arc<dyn Model>>> {
        if self.llm == LlmMode::Offline {
            return Ok(None);
        }
        match (self.llm, OpenAiConfig::from_env()?) {
            (LlmMode::Openai, None) => {
                anyhow::bail!(
                    "--llm openai needs LLM_BASE_URL (and LLM_MODEL, optionally LLM_API_KEY)"
                )
            }
            (_, None) => Ok(None),
            (_, Some(cfg)) => {
                tracing::info!(
                    base_url = %cfg.base_url,
                    model = %cfg.model,
                    provider = ?cfg.provider,
                    "copilot answers through an OpenAI-compatible model"
                );
                Ok(Some(Arc::new(OpenAiModel::new(cfg)?)))
            }
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
    /// Also embed the corpus for semantic search, as `serve` does (the embedding settings
    /// come from the environment: ORDER_COPILOT_EMBEDDINGS, EMBEDDINGS_BASE_URL, …).
    /// Without it, search is BM25 alone, which is ready in about a second.
    #[arg(long)]
    pub semantic: bool,
}

/// Run `ask`.
pub fn ask(
    policy: Policy,
    policies_dir: Option<&std::path::Path>,
    a: AskArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if !policy.roles.iter().any(|r| r == &a.role) {
        anyhow::bail!(
            "unknown role `{}` (known roles: {})",
            a.role,
            policy.roles.join(", ")
        );
    }
    let model = a.llm.model()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let opened = source::open(&a.source, Need::Snapshot).await?;
        let info = opened.info.clone();
        let store = a.storage.open().await?;
        let (app, writer) = opened.start(store.clone(), policy).await?;
        app.scan("cli").await?;
        let copilot = Copilot::new(app.clone(), model, a.llm.copilot_config())?;
        attach_retrieval(&copilot, a.semantic, policies_dir).await?;
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
            let doc = WithSource {
                source: &info,
                body: &turn,
            };
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        } else {
            writeln!(out, "source: {info}")?;
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

/// `eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Print the report as JSON (with every turn) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A cases file instead of the built-in `evals/cases.toml`.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<std::path::PathBuf>,
    /// Open orders in the demo the cases run against (eval always reads the demo, seed 42).
    #[arg(long, default_value_t = crate::demo::DemoConfig::DEFAULT_ORDERS)]
    pub orders: usize,
    /// Run only the first N cases of each category (a small model on a CPU takes about a
    /// minute per turn; the report says how many cases ran).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub per_category: Option<u32>,
    /// Also embed the corpus for semantic search, as `serve` does (the embedding settings
    /// come from the environment: ORDER_COPILOT_EMBEDDINGS, EMBEDDINGS_BASE_URL, …).
    /// Without it, search is BM25 alone, which is ready in about a second.
    #[arg(long)]
    pub semantic: bool,
}

/// Build the search indexes (as `serve` does, but waiting for them) and give them to the
/// copilot, saying on stderr what is happening: embedding the corpus takes seconds.
async fn attach_retrieval(
    copilot: &Copilot,
    semantic: bool,
    policies_dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use crate::retrieval::RetrievalConfig;
    let cfg = if semantic {
        RetrievalConfig::from_env()?
    } else {
        RetrievalConfig::bm25_only()
    };
    let cfg = &cfg;
    let app = copilot.app();
    let started = std::time::Instant::now();
    eprintln!("building the search indexes…");
    let retriever = super::server::retrieval_job(app, cfg, policies_dir)
        .await?
        .await?;
    let info = retriever.info();
    eprintln!(
        "search indexes ready in {:.1} s: {} documents, {}",
        started.elapsed().as_secs_f64(),
        info.docs.iter().map(|(_, n)| n).sum::<usize>(),
        match &info.embedder {
            Some(m) => format!("BM25 + vectors ({m})"),
            None => "BM25 only (no embedding model configured or installed)".into(),
        }
    );
    app.set_retriever(Arc::new(retriever));
    copilot.set_knowledge(Arc::new(crate::copilot::knowledge::AppPassages::new(
        app.clone(),
    )));
    Ok(())
}

/// A throwaway SQLite store in the temp directory.
pub(super) async fn temp_store(
    prefix: &str,
) -> anyhow::Result<(crate::store::Store, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!(
        "order-copilot-{prefix}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let store = crate::store::Store::open(&crate::store::StoreConfig {
        database_url: None,
        data_dir: dir.clone(),
    })
    .await?;
    Ok((store, dir))
}

/// Run `eval`.
pub fn eval(
    policy: Policy,
    policies_dir: Option<&std::path::Path>,
    a: EvalArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    use crate::copilot::eval;
    let text = match &a.cases {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => eval::CASES.to_string(),
    };
    let mut cases = eval::parse(&text).map_err(|e| anyhow::anyhow!("eval cases: {e}"))?;
    if let Some(n) = a.per_category {
        let mut seen = std::collections::HashMap::<String, u32>::new();
        cases.cases.retain(|c| {
            let k = seen.entry(c.category.clone()).or_default();
            *k += 1;
            *k <= n
        });
    }
    if a.orders == 0 || a.orders > 100_000 {
        anyhow::bail!("--orders must be between 1 and 100,000");
    }
    let info = SourceInfo::Demo {
        seed: eval::DEMO_SEED,
        orders: a.orders,
    };
    if std::env::var("ODOO_URL").is_ok_and(|u| !u.trim().is_empty()) {
        // The cases name the demo's orders and customers: against another database they
        // would measure nothing. Said, not silently done.
        eprintln!(
            "note: eval runs its cases on the generated demo (they are written for its data); ODOO_URL is not read"
        );
    }
    let model = a.llm.model()?;
    if a.llm.llm == LlmMode::Openai && model.is_none() {
        anyhow::bail!("--llm openai needs LLM_BASE_URL and LLM_MODEL");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let (store, dir) = temp_store("eval").await?;
        let world = eval::world(&cases, store.clone(), Arc::new(policy), a.orders)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let copilot = Copilot::new(world.app.clone(), model, a.llm.copilot_config())?;
        attach_retrieval(&copilot, a.semantic, policies_dir).await?;
        let total = cases.cases.len();
        let with_model = copilot.mode() != crate::copilot::Mode::Offline;
        let started = std::time::Instant::now();
        let mut progress = |done: usize, last: &eval::TurnScore| {
            // A real model takes minutes per case on a small CPU: say where the run is.
            if with_model {
                eprintln!(
                    "[{done}/{total}] {} {} ({:.1} s{}) — {:.0} s so far",
                    last.case,
                    if last.correct() { "ok" } else { "MISSED" },
                    last.ms / 1000.0,
                    if last.fallback {
                        ", fell back to offline"
                    } else {
                        ""
                    },
                    started.elapsed().as_secs_f64()
                );
            }
        };
        let report = eval::run_with_progress(&world, &copilot, &cases, &mut progress).await;
        let eval::EvalWorld { writer, .. } = world;
        writer.finish().await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        if a.json {
            let doc = WithSource {
                source: &info,
                body: &report,
            };
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        } else {
            writeln!(out, "source: {info}")?;
            write!(out, "{}", eval::table(&report))?;
        }
        Ok(if report.boundary_violations == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// `bench chat` arguments.
#[derive(Debug, Args)]
pub struct BenchChatArgs {
    /// Concurrent conversations.
    #[arg(long, default_value_t = 200)]
    pub conversations: usize,
    /// Turns per conversation.
    #[arg(long, default_value_t = 5)]
    pub turns: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// With a model configured (`--llm openai`, or `auto` with LLM_BASE_URL set), the
    /// typical turn's prompt is also sent to it once (max_tokens 1) and the prompt budget is
    /// reported as the model counts it. The overhead benchmark always uses an instant fake.
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// Run `bench chat`: server overhead per turn against an instant fake model, and the
/// prompt budget of a typical turn.
pub fn bench_chat(
    policy: Policy,
    a: BenchChatArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    use crate::copilot::fake::FakeInstantModel;
    use std::time::Instant;
    if a.conversations == 0 || a.conversations > 10_000 || a.turns == 0 || a.turns > 100 {
        anyhow::bail!("--conversations must be 1..=10000 and --turns 1..=100");
    }
    let counter = a.llm.model()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let (store, dir) = temp_store("bench-chat").await?;
        let demo = Arc::new(DemoSource::new(&crate::demo::DemoConfig {
            seed: 42,
            orders: crate::demo::DemoConfig::DEFAULT_ORDERS,
            now: chrono::Utc::now(),
        }));
        let (app, writer) =
            crate::app::start(store.clone(), Arc::new(policy), demo.clone(), demo).await?;
        app.scan("bench").await?;
        let state = app.latest().await.ok_or_else(|| anyhow::anyhow!("no scan"))?;
        let orders: Vec<String> = state
            .result
            .exceptions
            .iter()
            .filter(|e| e.order_ref.starts_with('S'))
            .map(|e| e.order_ref.clone())
            .take(500)
            .collect();
        let copilot = Arc::new(Copilot::new(
            app.clone(),
            Some(Arc::new(FakeInstantModel)),
            CopilotConfig::default(),
        )?);
        let budget = prompt_budget(&copilot, &orders, counter.as_deref()).await?;
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(a.conversations);
        for c in 0..a.conversations {
            let copilot = copilot.clone();
            let orders = orders.clone();
            let turns = a.turns;
            tasks.push(tokio::spawn(async move {
                let user = User {
                    name: format!("bench-{c}"),
                    role: "service_rep".into(),
                };
                let mut conversation = None;
                let mut overhead = Vec::with_capacity(turns);
                for t in 0..turns {
                    let order = &orders[(c * turns + t) % orders.len().max(1)];
                    let turn = copilot
                        .answer(
                            &user,
                            ChatRequest {
                                message: format!("why is {order} blocked?"),
                                conversation_id: conversation.clone(),
                                order: None,
                            },
                        )
                        .await?;
                    conversation = Some(turn.conversation_id.clone());
                    overhead.push(turn.ms - turn.model_ms);
                }
                Ok::<_, crate::app::AppError>(overhead)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let wall = started.elapsed().as_secs_f64();
        writer.finish().await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        all.sort_by(f64::total_cmp);
        let at = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
        let report = serde_json::json!({
            "conversations": a.conversations, "turns": all.len(),
            "overhead_ms": {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)},
            "turns_per_second": all.len() as f64 / wall.max(1e-9),
            "prompt_budget_tokens": budget,
        });
        if a.json {
            writeln!(out, "{report}")?;
        } else {
            writeln!(
                out,
                "{} turns in {} concurrent conversations ({:.0} turns/s): server overhead per turn p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 10 ms)",
                all.len(), a.conversations, all.len() as f64 / wall.max(1e-9), at(0.5), at(0.9), at(0.99), at(1.0)
            )?;
            writeln!(
                out,
                "prompt budget of a typical turn: {} tokens estimated (system {}, tool schemas {}, context {}; target ≤ 1,200)",
                budget["total"], budget["system"], budget["tools"], budget["context"]
            )?;
            if let Some(n) = budget.get("by_model") {
                writeln!(
                    out,
                    "  counted by {}: {} prompt tokens for the turn's one request",
                    budget["model"].as_str().unwrap_or("the model"),
                    n
                )?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Estimated tokens (4 characters each) of a typical turn's prompt: the system prompt, the
/// narrowed tool schemas, and the context (question and the evidence fetched for one
/// order before the model is called). With a `counter` model, that request is also sent
/// to it (one token generated) and its own count reported as `by_model` — the chat template's wrapping of
/// the tool schemas included.
pub async fn prompt_budget(
    copilot: &Copilot,
    orders: &[String],
    counter: Option<&dyn Model>,
) -> anyhow::Result<serde_json::Value> {
    use crate::copilot::fake::{FakeScriptedModel, Step, text};
    let order = orders
        .first()
        .ok_or_else(|| anyhow::anyhow!("no order with an exception"))?;
    // The engine fetches the evidence before the model is called: a typical turn is one
    // request, the one measured.
    let model = Arc::new(FakeScriptedModel::new(vec![Step::Output(text("ok"))]));
    let probe = Copilot::new(
        copilot.app().clone(),
        Some(model.clone()),
        CopilotConfig::default(),
    )?;
    let user = User {
        name: "budget".into(),
        role: "service_rep".into(),
    };
    probe
        .answer(
            &user,
            ChatRequest {
                message: format!("Why is {order} blocked and what are my options?"),
                ..ChatRequest::default()
            },
        )
        .await?;
    let reqs = model.requests();
    let last = reqs
        .first()
        .ok_or_else(|| anyhow::anyhow!("the probe sent no request"))?;
    let est = |s: &str| s.chars().count().div_ceil(4);
    let system: usize = last
        .messages
        .iter()
        .filter(|m| m.role == crate::copilot::model::Role::System)
        .map(|m| est(&m.content))
        .sum();
    let context: usize = last
        .messages
        .iter()
        .filter(|m| m.role != crate::copilot::model::Role::System)
        .map(|m| {
            est(&m.content)
                + m.tool_calls
                    .iter()
                    .map(|c| est(&c.name) + est(&c.arguments))
                    .sum::<usize>()
        })
        .sum();
    let tools = est(&serde_json::to_string(&last.tools)?);
    let mut budget = serde_json::json!({"system": system, "tools": tools, "context": context, "total": system + tools + context});
    if let Some(m) = counter {
        let req = crate::copilot::model::ModelRequest {
            max_tokens: 1,
            timeout: std::time::Duration::from_secs(600),
            ..last.clone()
        };
        let out = m
            .complete(&req, &mut |_| {})
            .await
            .map_err(|e| anyhow::anyhow!("counting the prompt with {}: {e}", m.name()))?;
        budget["by_model"] = out.prompt_tokens.into();
        budget["model"] = m.name().into();
    }
    Ok(budget)
}
