//! Which data a command reads — decided in one place, [`SourceArgs::choice`], for `scan`,
//! `explain`, `ask`, `serve` and `report`: the live Odoo when `ODOO_URL` is set (with the
//! other `ODOO_*` connection settings), else the generated demo distributor; `--demo`
//! forces the demo. A configured Odoo that cannot be reached is an error, never a silent
//! fallback to the demo. [`SourceInfo`] names what was read, for the first line of text
//! output and the `source` field of JSON output.

use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use serde::Serialize;

use super::odoo::OdooArgs;
use super::progress;
use crate::app::App;
use crate::app::source::{DemoSource, Executor, Source};
use crate::demo::{self, DemoConfig};
use crate::domain::{History, Snapshot};
use crate::odoo::executor::OdooExecutor;
use crate::odoo::source::OdooSource;
use crate::store::audit::AuditWriter;

/// The generated demo distributor's size and seed.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of open sales orders in the demo.
    #[arg(long, env = "ORDER_COPILOT_DEMO_ORDERS", default_value_t = DemoConfig::DEFAULT_ORDERS)]
    pub orders: usize,
    /// Seed of the demo generator (same seed, same data).
    #[arg(long, env = "ORDER_COPILOT_DEMO_SEED", default_value_t = 42)]
    pub seed: u64,
}

impl DemoArgs {
    /// The generator's configuration, validated.
    pub fn config(&self) -> anyhow::Result<DemoConfig> {
        if self.orders == 0 {
            anyhow::bail!("--orders must be at least 1");
        }
        if self.orders > 2_000_000 {
            anyhow::bail!(
                "--orders {} is more than the demo supports (2,000,000)",
                self.orders
            );
        }
        Ok(DemoConfig {
            seed: self.seed,
            orders: self.orders,
            now: Utc::now(),
        })
    }
}

/// Where the data comes from: the Odoo named by `ODOO_URL`, else the demo.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read the generated demo distributor even when ODOO_URL is set (without ODOO_URL the
    /// demo is read anyway).
    #[arg(long)]
    pub demo: bool,
    #[command(flatten)]
    pub generated: DemoArgs,
    #[command(flatten)]
    pub odoo: OdooArgs,
}

/// What [`SourceArgs::choice`] decided.
pub enum Choice<'a> {
    /// The generated demo.
    Demo(DemoConfig),
    /// The Odoo these settings name (not yet connected).
    Odoo(&'a OdooArgs),
}

impl SourceArgs {
    /// The one decision every command makes: `--demo` → the demo; else `ODOO_URL` set →
    /// Odoo; else the demo.
    pub fn choice(&self) -> anyhow::Result<Choice<'_>> {
        if !self.demo && self.odoo.url_set() {
            return Ok(Choice::Odoo(&self.odoo));
        }
        Ok(Choice::Demo(self.generated.config()?))
    }
}

/// What a command read, as it says so to its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceInfo {
    /// The generated demo distributor.
    Demo {
        /// Generator seed.
        seed: u64,
        /// Open sales orders asked for.
        orders: usize,
    },
    /// A live Odoo (no credentials).
    Odoo {
        /// Base URL.
        url: String,
        /// Database.
        db: String,
        /// Server version, e.g. `17.0`.
        version: String,
    },
}

impl SourceInfo {
    /// The demo of this configuration.
    pub fn demo(cfg: &DemoConfig) -> SourceInfo {
        SourceInfo::Demo {
            seed: cfg.seed,
            orders: cfg.orders,
        }
    }
}

impl fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceInfo::Demo { seed, orders } => {
                write!(f, "demo (seed {seed}, {orders} orders)")
            }
            SourceInfo::Odoo { url, db, version } => write!(f, "odoo {url} db={db} ({version})"),
        }
    }
}

/// A JSON answer with the source it was read from as its first field.
#[derive(Serialize)]
pub struct WithSource<'a, T: Serialize> {
    /// What was read.
    pub source: &'a SourceInfo,
    /// The answer's own fields.
    #[serde(flatten)]
    pub body: &'a T,
}

/// An opened source and the executor of approved actions that goes with it.
pub struct Opened {
    /// Snapshots.
    pub source: Arc<dyn Source>,
    /// Approved actions.
    pub executor: Arc<dyn Executor>,
    /// What it is.
    pub info: SourceInfo,
}

impl Opened {
    /// Start the app over this source.
    pub async fn start(
        self,
        store: crate::store::Store,
        policy: crate::policy::Policy,
    ) -> anyhow::Result<(Arc<App>, AuditWriter)> {
        Ok(crate::app::start(store, Arc::new(policy), self.source, self.executor).await?)
    }
}

/// Whether a demo source needs its year of history (for training the predictive models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The snapshot only (`ask`).
    Snapshot,
    /// The snapshot and its history (`serve`, `report`).
    History,
}

/// Open the configured source: connect to Odoo (an error when it cannot be reached), or
/// generate the demo.
pub async fn open(a: &SourceArgs, need: Need) -> anyhow::Result<Opened> {
    match a.choice()? {
        Choice::Odoo(odoo) => open_odoo(odoo).await,
        Choice::Demo(cfg) => {
            let demo = Arc::new(match need {
                Need::History => {
                    let (s, h) = generate_with_history(&cfg);
                    DemoSource::with_history(s, h)
                }
                Need::Snapshot => DemoSource::from_snapshot(generate(&cfg)),
            });
            Ok(Opened {
                source: demo.clone(),
                executor: demo,
                info: SourceInfo::demo(&cfg),
            })
        }
    }
}

async fn open_odoo(odoo: &OdooArgs) -> anyhow::Result<Opened> {
    let cfg = odoo.odoo_config()?;
    let client = Arc::new(odoo.connect().await?.context("ODOO_URL is not set")?);
    let info = SourceInfo::Odoo {
        url: client.url().to_string(),
        db: client.db().to_string(),
        version: client.version().text.clone(),
    };
    Ok(Opened {
        source: Arc::new(OdooSource::new(client.clone(), cfg.clone())),
        executor: Arc::new(OdooExecutor::new(client, cfg)),
        info,
    })
}

/// One snapshot of the configured source, for the commands that only read (`scan`,
/// `explain`).
pub fn snapshot(a: &SourceArgs) -> anyhow::Result<(Snapshot, SourceInfo)> {
    match a.choice()? {
        Choice::Demo(cfg) => Ok((generate(&cfg), SourceInfo::demo(&cfg))),
        Choice::Odoo(odoo) => super::odoo::runtime()?.block_on(async {
            let opened = open_odoo(odoo).await?;
            let snap = opened
                .source
                .snapshot()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((Arc::unwrap_or_clone(snap), opened.info))
        }),
    }
}

/// Generate the demo, with a progress bar on a terminal.
pub fn generate(cfg: &DemoConfig) -> Snapshot {
    let mut bar = progress::Bar::new("generating demo");
    let snap = demo::generate(cfg, &mut |phase, done, total| {
        bar.update(phase, done, total)
    });
    bar.finish();
    snap
}

/// Generate the demo and the year of history before it, with a progress bar on a terminal.
pub fn generate_with_history(cfg: &DemoConfig) -> (Snapshot, History) {
    let mut bar = progress::Bar::new("generating demo");
    let out = demo::generate_with_history(cfg, &mut |phase, done, total| {
        bar.update(phase, done, total)
    });
    bar.finish();
    out
}
