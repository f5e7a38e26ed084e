//! `serve`, `token` and `audit`: the commands that touch storage. They all take the same
//! `--data-dir DIR` (or `DATABASE_URL`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::SourceArgs;
use super::source::{self, Need};
use crate::app::identity;
use crate::http;
use crate::policy::Policy;
use crate::store::audit;
use crate::store::{Store, StoreConfig};

/// Where cases, approvals, tokens and the audit log live.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite file and indexes (created if missing).
    #[arg(
        long,
        env = "ORDER_COPILOT_DATA_DIR",
        default_value = "data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// PostgreSQL (postgres://…) or SQLite (sqlite://…) URL; overrides --data-dir for storage.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StorageArgs {
    fn config(&self) -> StoreConfig {
        StoreConfig {
            database_url: self.database_url.clone().filter(|s| !s.trim().is_empty()),
            data_dir: self.data_dir.clone(),
        }
    }

    /// Open (and migrate) the store.
    pub async fn open(&self) -> anyhow::Result<Store> {
        let cfg = self.config();
        Store::open(&cfg)
            .await
            .with_context(|| format!("cannot open storage at {}", cfg.describe()))
    }
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ORDER_COPILOT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Seconds between scans of the source.
    #[arg(long, env = "ORDER_COPILOT_SCAN_INTERVAL", default_value_t = 300)]
    pub scan_interval: u64,
    #[command(flatten)]
    pub bot: super::odoo::BotArgs,
    #[command(flatten)]
    pub llm: super::copilot::LlmArgs,
    #[command(flatten)]
    pub retrieval: crate::retrieval::RetrievalConfig,
    #[command(flatten)]
    pub outbox: crate::app::outbox::OutboxConfig,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; prints the token (and nothing else) on standard output.
    Create {
        /// Role of the token's holder.
        #[arg(long)]
        role: String,
        /// Name of the holder (never reused, even after revocation).
        #[arg(long)]
        name: String,
        /// How long the token lasts: 90d, 12h, 30m or `never` (default: the policy's
        /// `limits.token_expiry_days`).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List every token: name, role, created, expires, and whether it is active, expired
    /// or revoked (never the secrets).
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a token by name.
    Revoke {
        /// Name of the token.
        name: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the keyed hash chain and the checkpoints outside the database; names the
    /// first bad row (edited, deleted, recomputed without the key) and exits 1 if any.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Retire the audit key file's key (kept as audit.key.<id> to verify older rows) and
    /// sign from now on with a new one; the rotation is an audit event. Stop every server
    /// on the database first, then give them the new key.
    RotateKey {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Replace prompt and response bodies older than `retention.body_days` with their
    /// SHA-256 (the chain still verifies); a running server does this every
    /// `retention.every_hours`.
    Expire {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Write rows as JSON Lines, prompt and response bodies decrypted (the operator holds
    /// the body key; over the API only holders of `read_audit` read them).
    Export {
        /// From this time: RFC 3339 (2026-11-01T00:00:00Z) or a date (2026-11-01).
        #[arg(long)]
        since: Option<String>,
        /// Leave bodies as their digests, as stored (no decryption).
        #[arg(long)]
        sealed: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORDER_COPILOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Run the server until SIGINT/SIGTERM.
pub fn serve(
    policy: Policy,
    policies_dir: Option<&std::path::Path>,
    a: ServeArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let policies_dir = policies_dir.map(std::path::Path::to_path_buf);
    init_tracing();
    if a.scan_interval == 0 {
        anyhow::bail!("--scan-interval must be at least 1 second");
    }
    a.outbox.validate().map_err(anyhow::Error::msg)?;
    let model = a.llm.model()?;
    let rt = runtime()?;
    rt.block_on(async move {
        let store = a.storage.open().await?;
        tracing::info!(storage = %a.storage.config().describe(), backend = ?store.backend(), "storage ready");
        let opened = source::open(&a.source, Need::History).await?;
        tracing::info!(source = %opened.info, "source ready");
        writeln!(out, "source: {}", opened.info)?;
        let (app, writer) = opened.start(store.clone(), policy).await?;
        let copilot = Arc::new(crate::copilot::Copilot::new(app.clone(), model, a.llm.copilot_config())?);
        copilot.set_knowledge(Arc::new(crate::copilot::knowledge::AppPassages::new(app.clone())));
        tracing::info!(mode = copilot.mode().as_str(), model = %copilot.model_name(), "copilot ready");
        let mut extra = axum::Router::new();
        // Held for the server's lifetime (the poller holds only a weak reference).
        let mut _bot = None;
        if let Some(bot_client) = a.source.odoo.connect_bot(&a.bot).await? {
            let cfg = a.source.odoo.odoo_config()?;
            let answerer = Arc::new(crate::odoo::bot::CopilotAnswerer::new(copilot.clone()));
            let bot = crate::odoo::bot::Bot::start(Arc::new(bot_client), cfg.bot, answerer, Some(app.audit.clone())).await?;
            match std::env::var("ODOO_WEBHOOK_SECRET").ok().filter(|s| s.len() >= 16) {
                Some(secret) => {
                    extra = crate::odoo::bot::routes(bot.clone(), crate::odoo::client::Secret::new(secret));
                    tracing::info!("Odoo bot: webhook at /odoo/webhook");
                }
                None if !a.bot.poll => anyhow::bail!("the Odoo bot needs ODOO_WEBHOOK_SECRET (16+ characters) for its webhook, or --odoo-poll"),
                None => {}
            }
            if a.bot.poll {
                bot.spawn_poller();
                tracing::info!("Odoo bot: polling mail.message");
            }
            _bot = Some(bot);
        }
        // Odoo events (`odoo setup` installs the rules): a scan seconds after a change.
        let (events_stop, events_rx) = tokio::sync::watch::channel(false);
        if let Some(secret) = std::env::var("ODOO_EVENTS_SECRET").ok().filter(|s| !s.is_empty()) {
            anyhow::ensure!(secret.len() >= 16, "ODOO_EVENTS_SECRET must have 16+ characters");
            let scanner = crate::odoo::events::EventScanner::start(&app, events_rx);
            extra = extra.merge(crate::odoo::events::routes(scanner, crate::odoo::client::Secret::new(secret)));
            tracing::info!("Odoo events at /odoo/events: a change scans within seconds; the poll stays as the safety net");
        }
        if let Some(path) = &store.audit_keys().created {
            writeln!(out, "First start: the audit log's key was created at {} (mode 0600). It signs every audit row; keep a copy somewhere safe and outside this machine's backups of the database — without it the log cannot be verified. Replicas on one database need the same key (AUDIT_KEY).\n", path.display())?;
        }
        if let Some(path) = &store.body_keys().created {
            writeln!(out, "First start: the key that encrypts prompts and responses at rest was created at {} (mode 0600). Keep a copy outside the database's backups — without it stored bodies cannot be read. Replicas on one database need the same key (BODY_KEY).\n", path.display())?;
        }
        if store.token_count().await? == 0 {
            let token = identity::create_token(&store, &app.policy, "admin", "admin").await?;
            writeln!(out, "First start: an admin token was created. It is shown only this once:\n\n  {token}\n\nUse it as `Authorization: Bearer {token}`; create more with `order-copilot token create`.")?;
            out.flush()?;
        }
        load_or_train_models(&app, &a.storage.data_dir).await?;
        let summary = app.scan("system").await?;
        tracing::info!(exceptions = summary.exceptions, open_lines = summary.open_lines, new = summary.merge.new, "initial scan done");
        start_retrieval(&app, &a.retrieval, policies_dir).await?;

        let listener = tokio::net::TcpListener::bind(a.addr).await.with_context(|| format!("cannot listen on {}", a.addr))?;
        let local = listener.local_addr()?;
        tracing::info!(addr = %local, "listening");
        writeln!(out, "order-copilot listening on http://{local}")?;
        out.flush()?;

        let worker = start_outbox_worker(&app, &a.outbox);
        spawn_retention(&app);
        let shutdown = async move {
            shutdown_signal().await;
            let _ = events_stop.send(true);
            // Executions in flight end (or keep their lease for another worker) before the
            // audit log is flushed and closed.
            worker.stop(Duration::from_secs(10)).await;
        };
        http::run_with(app, copilot, writer, listener, Duration::from_secs(a.scan_interval), extra, shutdown).await?;
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Apply `retention.body_days` now and every `retention.every_hours` while the server
/// runs (each run is audited when it expired anything).
fn spawn_retention(app: &Arc<crate::app::App>) {
    let weak = Arc::downgrade(app);
    let every = Duration::from_secs(u64::from(app.policy.retention.every_hours) * 3600);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { return };
            match app
                .expire_bodies(chrono::Utc::now().timestamp_micros())
                .await
            {
                Ok(Some(done)) => tracing::info!(
                    audit_bodies = done.audit_bodies,
                    turns = done.turns,
                    legacy_rows = done.legacy_rows,
                    "retention applied"
                ),
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "retention run failed"),
            }
        }
    });
}

/// Start this process's outbox worker: it executes approved actions (this replica's and,
/// once their leases expire, a crashed one's) under leases.
fn start_outbox_worker(
    app: &Arc<crate::app::App>,
    cfg: &crate::app::outbox::OutboxConfig,
) -> crate::app::outbox::OutboxWorker {
    tracing::info!(
        worker = app.worker_id(),
        lease_secs = cfg.lease_secs,
        attempts = cfg.attempts,
        "outbox worker started"
    );
    crate::app::outbox::OutboxWorker::spawn(app, cfg.clone())
}

/// Load the saved models from `DATA_DIR/models`, or train them on the source's history
/// when there are none (and save them). A source without history runs without models.
pub(super) async fn load_or_train_models(
    app: &crate::app::App,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let dir = super::model::models_dir(data_dir);
    if let Some(models) = crate::predict::Models::load(&dir)? {
        tracing::info!(dir = %dir.display(), versions = ?models.models.iter().map(|m| format!("{}@{}", m.kind.as_str(), m.version)).collect::<Vec<_>>(), "models loaded");
        app.set_models(models);
        return Ok(());
    }
    let Some(history) = app
        .source
        .history()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    else {
        tracing::warn!("the source keeps no history: predictive models are off");
        return Ok(());
    };
    let snap = app
        .source
        .snapshot()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = std::time::Instant::now();
    let (models, failed) = tokio::task::spawn_blocking(move || {
        crate::predict::train(&snap, &history, chrono::Utc::now())
    })
    .await?;
    for (k, e) in &failed {
        tracing::warn!(model = k.as_str(), error = %e, "model not trained");
    }
    models.save(&dir)?;
    tracing::info!(dir = %dir.display(), seconds = started.elapsed().as_secs_f64(), trained = models.models.len(), "no saved models: trained on the source's history");
    app.set_models(models);
    Ok(())
}

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// `report --out FILE`: scan the configured source once (recorded like any scan), then write the
/// self-contained HTML report of models, governance and operational intelligence.
pub fn report(policy: Policy, a: ReportArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let opened = source::open(&a.source, Need::History).await?;
        let info = opened.info.clone();
        let store = a.storage.open().await?;
        let (app, writer) = opened.start(store.clone(), policy).await?;
        load_or_train_models(&app, &a.storage.data_dir).await?;
        app.scan("report").await?;
        let html = app.report_html().await?;
        std::fs::write(&a.out, &html)
            .with_context(|| format!("cannot write {}", a.out.display()))?;
        writer.finish().await;
        store.close().await;
        writeln!(
            out,
            "report written to {} ({} KiB; source: {})",
            a.out.display(),
            html.len() / 1024,
            info
        )?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Load the embedding model now (a broken configuration stops the start), then build the
/// search indexes in the background and attach them to the app when ready: embedding the
/// corpus takes seconds, and the API need not wait for it.
async fn start_retrieval(
    app: &Arc<crate::app::App>,
    cfg: &crate::retrieval::RetrievalConfig,
    policies_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let build = retrieval_job(app, cfg, policies_dir.as_deref()).await?;
    let app = app.clone();
    tokio::spawn(async move {
        match build.await {
            Ok(r) => {
                app.set_retriever(Arc::new(r));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "retrieval indexes could not be built; search is unavailable")
            }
        }
    });
    Ok(())
}

/// The retriever over the app's latest scan: the embedding model is loaded and the corpus
/// (policies, past and resolved cases, products) gathered now; the returned future embeds
/// and indexes it. `serve` runs it in the background, `ask` and `eval` wait for it.
pub(super) async fn retrieval_job(
    app: &Arc<crate::app::App>,
    cfg: &crate::retrieval::RetrievalConfig,
    policies_dir: Option<&std::path::Path>,
) -> anyhow::Result<
    impl std::future::Future<Output = anyhow::Result<crate::retrieval::Retriever>> + Send + 'static,
> {
    let embedder = crate::retrieval::embed::from_config(cfg).await?;
    // An endpoint off this machine receives texts under the `external` data-access policy.
    let embedder = match (embedder, cfg.embeddings_base_url.as_deref()) {
        (Some(e), Some(url))
            if crate::copilot::openai::infer_provider(url)
                == crate::copilot::model::Provider::External =>
        {
            Some(Arc::new(crate::retrieval::embed::ScrubbingEmbedder::new(
                e,
                app.embeddings_scrub("external"),
            )) as Arc<dyn crate::retrieval::embed::Embedder>)
        }
        (e, _) => e,
    };
    let state = app.latest().await.context("no scan to index")?;
    let resolved = app.resolved_case_docs(20_000).await?;
    let docs = crate::retrieval::corpus_docs(policies_dir, &state.snapshot, resolved)?;
    let cfg = cfg.clone();
    Ok(async move { crate::retrieval::Retriever::build_with_embedder(&cfg, embedder, docs).await })
}

/// `token create` / `token revoke`.
pub fn token(policy: Policy, cmd: TokenCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match cmd {
            TokenCommand::Create {
                role,
                name,
                expires,
                storage,
            } => {
                let expiry = match expires {
                    Some(e) => e.parse::<identity::Expiry>()?,
                    None => identity::Expiry::PolicyDefault,
                };
                let store = storage.open().await?;
                let secret =
                    identity::create_token_expiring(&store, &policy, &name, &role, "cli", expiry)
                        .await?;
                writeln!(out, "{secret}")?;
                store.close().await;
            }
            TokenCommand::List { storage } => {
                let store = storage.open().await?;
                let tokens = store.list_tokens().await?;
                store.close().await;
                let now = chrono::Utc::now().timestamp_micros();
                let day = |us: Option<i64>| {
                    us.and_then(chrono::DateTime::from_timestamp_micros)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                };
                writeln!(
                    out,
                    "{:<24} {:<14} {:<8} {:<16} {:<16}",
                    "NAME", "ROLE", "STATE", "CREATED", "EXPIRES"
                )?;
                for t in tokens {
                    writeln!(
                        out,
                        "{:<24} {:<14} {:<8} {:<16} {:<16}",
                        t.name,
                        t.role,
                        t.state(now),
                        day(Some(t.created_at)).unwrap_or_default(),
                        day(t.expires_at).unwrap_or_else(|| "never".into())
                    )?;
                }
            }
            TokenCommand::Revoke { name, storage } => {
                let store = storage.open().await?;
                identity::revoke_token(&store, &name, "cli").await?;
                eprintln!("revoked token {name}");
                store.close().await;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_micros());
    }
    anyhow::bail!(
        "--since `{s}` is neither an RFC 3339 time (2026-11-01T00:00:00Z) nor a date (2026-11-01)"
    )
}

/// `audit verify` / `audit rotate-key` / `audit expire` / `audit export`.
pub fn audit_cmd(
    policy: &Policy,
    cmd: AuditCommand,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let retention = policy.retention.clone();
    let version = policy.version.clone();
    runtime()?.block_on(async move {
        match cmd {
            AuditCommand::Verify { storage } => {
                let store = storage.open().await?;
                let mut bar = super::progress::Bar::new("verifying");
                let v = audit::verify(&store, |n| bar.update("rows", n as u64, n as u64)).await?;
                bar.finish();
                store.close().await;
                match v.first_bad {
                    None => {
                        writeln!(
                            out,
                            "audit log OK: {} rows, chain intact, keyed, {} checkpoints outside the database agree",
                            v.rows, v.checkpoints
                        )?;
                        if v.legacy_rows > 0 {
                            writeln!(
                                out,
                                "note: the first {} rows are from before the chain was keyed (plain SHA-256): they chain into the keyed rows, but whoever could write the database then could have rewritten them",
                                v.legacy_rows
                            )?;
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Some((seq, why)) => {
                        writeln!(out, "audit log BROKEN at row {seq}: {why}")?;
                        Ok(ExitCode::FAILURE)
                    }
                }
            }
            AuditCommand::RotateKey { storage } => {
                if std::env::var("AUDIT_KEY").is_ok_and(|k| !k.trim().is_empty()) {
                    anyhow::bail!(
                        "AUDIT_KEY is set: rotate by changing it yourself is not supported; unset it to rotate the key file in {}",
                        storage.data_dir.display()
                    );
                }
                // Open once first: it checks the current key against the chain (and
                // creates the key file of a new installation).
                let store = storage.open().await?;
                audit::checkpoint_now(&store).await?;
                store.close().await;
                let (from, to) =
                    crate::store::audit_key::AuditKeys::rotate_file(&storage.data_dir)?;
                let store = storage.open().await?;
                // The first write under the new key records the rotation (audit.key_rotated).
                audit::write_batch(&store, Vec::new()).await?;
                audit::checkpoint_now(&store).await?;
                store.close().await;
                writeln!(
                    out,
                    "audit key rotated: {from} → {to} (the old key stays in {} to verify older rows; give every server the new {})",
                    storage
                        .data_dir
                        .join(format!("{}.{from}", crate::store::audit_key::KEY_FILE))
                        .display(),
                    crate::store::audit_key::KEY_FILE
                )?;
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Expire { storage } => {
                let Some(before) = retention.cutoff(chrono::Utc::now().timestamp_micros()) else {
                    writeln!(out, "retention.body_days is 0: bodies are kept forever")?;
                    return Ok(ExitCode::SUCCESS);
                };
                let store = storage.open().await?;
                let done = audit::expire_bodies(&store, before).await?;
                if done.audit_bodies > 0 || done.turns > 0 {
                    audit::write_batch(
                        &store,
                        vec![done.event(before, retention.body_days).policy(&version)],
                    )
                    .await?;
                }
                store.close().await;
                writeln!(
                    out,
                    "bodies older than {} days replaced by their digests: {} audit bodies, {} conversation turns",
                    retention.body_days, done.audit_bodies, done.turns
                )?;
                if done.legacy_rows > 0 {
                    writeln!(
                        out,
                        "note: {} older audit rows were written before bodies were sealed and keep them inline (rewriting them would break the chain)",
                        done.legacy_rows
                    )?;
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Export {
                since,
                sealed,
                out: file,
                storage,
            } => {
                let since = since
                    .as_deref()
                    .map(parse_since)
                    .transpose()?
                    .unwrap_or(i64::MIN);
                let store = storage.open().await?;
                let n = match file {
                    Some(path) => {
                        let f = std::fs::File::create(&path)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        let mut w = std::io::BufWriter::new(f);
                        let n = audit::export_with(&store, since, !sealed, &mut w).await?;
                        w.flush()?;
                        n
                    }
                    None => {
                        let mut buf = Vec::new();
                        let n = audit::export_with(&store, since, !sealed, &mut buf).await?;
                        out.write_all(&buf)?;
                        n
                    }
                };
                eprintln!("exported {n} audit rows");
                store.close().await;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
