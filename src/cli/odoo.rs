//! The Odoo side of the command line: the connection settings shared by every command that
//! reads the configured source (`scan`, `explain`, `ask`, `serve`, `report`) and by
//! `odoo …`, the bot's settings (`serve`, `odoo setup`), `odoo setup` (the bot's channel and automation rule), `odoo check` (a full
//! load with its warnings), and `bench odoo` (a full load and an incremental sync over
//! loopback against `FakeOdoo`). API keys come only from the environment.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::odoo::client::{ClientOptions, Credentials, OdooClient, Secret};
use crate::odoo::config::OdooConfig;
use crate::odoo::source::OdooSource;

/// Connection to Odoo. The API key is read from `ODOO_API_KEY` only.
#[derive(Debug, Clone, Args)]
pub struct OdooArgs {
    /// Odoo base URL (http://… or https://…); when set, the command reads this Odoo instead
    /// of the demo (unless --demo).
    #[arg(long = "odoo-url", env = "ODOO_URL")]
    pub url: Option<String>,
    /// Database name.
    #[arg(long = "odoo-db", env = "ODOO_DB", default_value = "")]
    pub db: String,
    /// Login of the integration user (least privilege; its API key in ODOO_API_KEY).
    #[arg(long = "odoo-login", env = "ODOO_LOGIN", default_value = "")]
    pub login: String,
    /// Connector mappings (TOML; default: the built-in src/odoo/default.toml).
    #[arg(long = "odoo-config", env = "ODOO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds per Odoo request before it times out.
    #[arg(long = "odoo-timeout", env = "ODOO_TIMEOUT", default_value_t = 30)]
    pub timeout: u64,
    /// Odoo requests in flight at once.
    #[arg(
        long = "odoo-concurrency",
        env = "ODOO_CONCURRENCY",
        default_value_t = 4
    )]
    pub concurrency: usize,
    /// PEM file of the CA that signed Odoo's certificate, for https:// behind a company CA
    /// (trusted besides the system's roots).
    #[arg(long = "odoo-ca-file", env = "ODOO_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// The chatter/Discuss bot. Its API key is read from `ODOO_BOT_API_KEY` only.
#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    /// Login of the bot user (its API key in ODOO_BOT_API_KEY); enables the chatter/Discuss bot.
    #[arg(long = "odoo-bot-login", env = "ODOO_BOT_LOGIN")]
    pub bot_login: Option<String>,
    /// Poll mail.message for the bot instead of (or besides) the webhook.
    #[arg(long = "odoo-poll", env = "ODOO_POLL")]
    pub poll: bool,
}

fn env_secret(name: &str) -> anyhow::Result<Secret> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
        _ => anyhow::bail!("{name} is not set: the API key comes only from the environment"),
    }
}

impl OdooArgs {
    /// The mappings.
    pub fn odoo_config(&self) -> anyhow::Result<OdooConfig> {
        match &self.config {
            Some(p) => OdooConfig::load(p),
            None => OdooConfig::embedded(),
        }
        .map_err(anyhow::Error::msg)
    }

    fn options(&self) -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(self.timeout.max(1)),
            concurrency: self.concurrency.clamp(1, 64),
            ca_file: self.ca_file.clone(),
            ..ClientOptions::default()
        }
    }

    /// Whether an Odoo is configured (a non-blank URL).
    pub fn url_set(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.trim().is_empty())
    }

    /// Connect as the integration user (`None` when no URL is configured).
    pub async fn connect(&self) -> anyhow::Result<Option<OdooClient>> {
        let Some(url) = self.url.clone().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        if self.db.is_empty() || self.login.is_empty() {
            anyhow::bail!("ODOO_URL is set: ODOO_DB and ODOO_LOGIN are needed too");
        }
        let creds = Credentials {
            url: url.clone(),
            db: self.db.clone(),
            login: self.login.clone(),
            api_key: env_secret("ODOO_API_KEY")?,
        };
        Ok(Some(
            OdooClient::connect(creds, self.options())
                .await
                .with_context(|| {
                    format!("cannot connect to Odoo at {} (db {})", url.trim(), self.db)
                })?,
        ))
    }

    /// Connect as the bot user, when one is configured.
    pub async fn connect_bot(&self, bot: &BotArgs) -> anyhow::Result<Option<OdooClient>> {
        let (Some(url), Some(login)) = (self.url.clone(), bot.bot_login.clone()) else {
            return Ok(None);
        };
        let creds = Credentials {
            url,
            db: self.db.clone(),
            login,
            api_key: env_secret("ODOO_BOT_API_KEY")?,
        };
        Ok(Some(
            OdooClient::connect(creds, self.options())
                .await
                .context("cannot connect to Odoo as the bot user")?,
        ))
    }
}

/// `odoo` subcommands.
#[derive(Debug, Subcommand)]
pub enum OdooCommand {
    /// Create the bot's channel membership and the webhook automation rule, and with
    /// ODOO_EVENTS_SECRET the rules that send order, delivery, purchase and invoice changes
    /// to `/odoo/events` (idempotent).
    Setup {
        #[command(flatten)]
        odoo: OdooArgs,
        #[command(flatten)]
        bot: BotArgs,
        /// The copilot's public base URL as Odoo reaches it, e.g. http://copilot.internal:8080.
        #[arg(long)]
        public_url: String,
    },
    /// Connect, load everything once, and print counts, warnings and RPC calls.
    Check {
        #[command(flatten)]
        odoo: OdooArgs,
    },
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Run an `odoo` subcommand.
pub fn run(cmd: OdooCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match cmd {
            OdooCommand::Setup { odoo, bot, public_url } => {
                let cfg = odoo.odoo_config()?;
                let client = odoo.connect().await?.context("ODOO_URL is not set")?;
                let bot = bot.bot_login.clone().context("--odoo-bot-login (ODOO_BOT_LOGIN) names the bot user")?;
                let secret = env_secret("ODOO_WEBHOOK_SECRET")?;
                let url = format!("{}/odoo/webhook?secret={}", public_url.trim_end_matches('/'), secret.expose());
                let r = crate::odoo::setup::setup(&client, &cfg, &bot, &url).await?;
                writeln!(out, "channel {:?} #{}: {}; bot {}", cfg.bot.channel, r.channel_id, if r.channel_created { "created" } else { "exists" }, if r.member_added { "added as a member" } else { "already a member" })?;
                writeln!(
                    out,
                    "automation {:?} #{}: {}",
                    cfg.bot.automation_name,
                    r.automation_id,
                    if r.automation_created { "created" } else if r.url_updated { "webhook URL updated" } else { "unchanged" }
                )?;
                match std::env::var("ODOO_EVENTS_SECRET").ok().filter(|s| !s.is_empty()) {
                    Some(events) => {
                        anyhow::ensure!(events.len() >= 16, "ODOO_EVENTS_SECRET must have 16+ characters");
                        let url = format!("{}/odoo/events?secret={events}", public_url.trim_end_matches('/'));
                        for r in crate::odoo::events::setup_events(&client, &url).await? {
                            writeln!(
                                out,
                                "events: {} #{} on {}: {}",
                                crate::odoo::events::rule_name(r.model),
                                r.automation_id,
                                r.model,
                                if r.created { "created" } else if r.url_updated { "webhook URL updated" } else { "unchanged" }
                            )?;
                        }
                    }
                    None => writeln!(out, "events: ODOO_EVENTS_SECRET is not set, no event rules installed (changes reach the server at the next poll)")?,
                }
                Ok(ExitCode::SUCCESS)
            }
            OdooCommand::Check { odoo } => {
                let cfg = odoo.odoo_config()?;
                let client = Arc::new(odoo.connect().await?.context("ODOO_URL is not set")?);
                let source = OdooSource::new(client.clone(), cfg);
                let started = Instant::now();
                let snap = source.refresh().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let st = source.sync_status();
                writeln!(out, "Odoo {} at {} ({:?}), uid {}", client.version().text, client.url(), client.protocol(), client.uid())?;
                writeln!(out, "loaded {} orders, {} lines, {} products, {} customers, {} pickings, {} inbound lines in {:.1} s with {} RPC calls", snap.orders.len(), snap.lines.len(), snap.products.len(), snap.customers.len(), snap.pickings.len(), snap.inbound.len(), started.elapsed().as_secs_f64(), st.full_load_calls)?;
                for w in &st.warnings {
                    writeln!(out, "warning: {w}")?;
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// `bench odoo` arguments.
#[derive(Debug, Args)]
pub struct BenchOdooArgs {
    /// Open sales orders in the generated data.
    #[arg(long, default_value_t = 10_000)]
    orders: usize,
    /// Odoo version whose wire shape the fake serves (16–19; 19 speaks JSON-2).
    #[arg(long = "odoo-version", default_value_t = 17)]
    odoo_version: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A full load and an incremental sync against `FakeOdoo` over loopback.
pub fn bench(a: BenchOdooArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if !(16..=19).contains(&a.odoo_version) {
        anyhow::bail!("--odoo-version must be 16, 17, 18 or 19");
    }
    let snap = super::source::generate(
        &super::source::DemoArgs {
            orders: a.orders,
            seed: 42,
        }
        .config()?,
    );
    runtime()?.block_on(async move {
        use crate::odoo::fake::{FakeConfig, FakeOdoo};
        let fake = FakeOdoo::start(FakeConfig::version(a.odoo_version), &snap).await?;
        let user = fake.user("admin").context("the fake has no admin")?;
        let client = Arc::new(
            OdooClient::connect(Credentials { url: fake.url(), db: fake.db(), login: user.login, api_key: Secret::new(user.key) }, ClientOptions::default()).await?,
        );
        let source = OdooSource::new(client.clone(), OdooConfig::embedded().map_err(anyhow::Error::msg)?);
        let t = Instant::now();
        let loaded = source.refresh().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let full = t.elapsed();
        // Change a few orders, then sync incrementally.
        let changed = fake.with_db(|db| {
            let now = json!(crate::odoo::wire::format_datetime(chrono::Utc::now() + chrono::Duration::seconds(2)));
            let mut n = 0;
            if let Some(m) = db.models.get_mut("sale.order") {
                for r in m.rows.values_mut().step_by(100) {
                    r.insert("write_date".into(), now.clone());
                    n += 1;
                }
            }
            n
        });
        let t = Instant::now();
        let again = source.refresh().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let incr = t.elapsed();
        let st = source.sync_status();
        let result = json!({
            "orders": loaded.orders.len(), "lines": loaded.lines.len(), "version": a.odoo_version,
            "full_load_s": full.as_secs_f64(), "full_load_rpc_calls": st.full_load_calls,
            "incremental_s": incr.as_secs_f64(), "incremental_rpc_calls": st.incremental_calls, "incremental_changed_records": st.incremental_changes,
            "orders_touched": changed, "orders_after": again.orders.len(),
        });
        if a.json {
            writeln!(out, "{result}")?;
        } else {
            writeln!(out, "Odoo {} shape over loopback: {} orders, {} lines", a.odoo_version, loaded.orders.len(), loaded.lines.len())?;
            writeln!(out, "full load:        {:>7.2} s, {} RPC calls", full.as_secs_f64(), st.full_load_calls)?;
            writeln!(out, "incremental sync: {:>7.2} s, {} RPC calls, {} changed records ({changed} orders touched)", incr.as_secs_f64(), st.incremental_calls.unwrap_or(0), st.incremental_changes)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
