//! The command line: `scan`, `explain`, `bench scan`, `policy check`.
//!
//! Owns argument parsing, choosing the source (the demo distributor until an Odoo
//! connection is configured), progress on a terminal (quiet when piped), and rendering
//! tables and JSON. Errors are printed once, as `error: …`, with a non-zero exit code.

mod bench;
mod bench_predict;
mod bench_retrieval;
pub mod copilot;
pub mod model;
pub mod odoo;
mod progress;
pub mod server;
mod table;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};

use crate::core::{self, Exception, Kind};
use crate::demo::{self, DemoConfig};
use crate::domain::Snapshot;
use crate::policy::Policy;

/// Catch and resolve order exceptions for distributors running Odoo.
#[derive(Debug, Parser)]
#[command(name = "order-copilot", version, about, propagate_version = true)]
pub struct Cli {
    /// Directory of policy files (*.toml). Default: the policies built into the binary.
    #[arg(
        long,
        global = true,
        env = "ORDER_COPILOT_POLICIES",
        value_name = "DIR"
    )]
    pub policies: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan for exceptions and print the ranked queue.
    Scan(ScanArgs),
    /// Explain everything that blocks or threatens one order.
    Explain(ExplainArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the server: HTTP API, scans on an interval, approvals, audit log.
    Serve(Box<server::ServeArgs>),
    /// Create and revoke API tokens.
    #[command(subcommand)]
    Token(server::TokenCommand),
    /// Verify or export the audit log.
    #[command(subcommand)]
    Audit(server::AuditCommand),
    /// The Odoo connection: set up the bot, check a full load.
    #[command(subcommand)]
    Odoo(odoo::OdooCommand),
    /// Train and evaluate the predictive models.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Write the predictive-risk and operational-intelligence report as one HTML file.
    Report(server::ReportArgs),
    /// Ask the copilot a question (demo data by default).
    Ask(copilot::AskArgs),
    /// Run the copilot's eval cases and report accuracy, groundedness and boundary violations.
    Eval(copilot::EvalArgs),
}

/// Where the data comes from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Use the generated demo distributor (the default while no Odoo connection is configured).
    #[arg(long)]
    pub demo: bool,
    /// Number of open sales orders in the demo.
    #[arg(long, env = "ORDER_COPILOT_DEMO_ORDERS", default_value_t = DemoConfig::DEFAULT_ORDERS)]
    pub orders: usize,
    /// Seed of the demo generator (same seed, same data).
    #[arg(long, env = "ORDER_COPILOT_DEMO_SEED", default_value_t = 42)]
    pub seed: u64,
}

/// `scan` arguments.
#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Print a JSON array of exceptions instead of a table.
    #[arg(long)]
    json: bool,
    /// Only these kinds (repeatable or comma-separated), e.g. `stock_shortage,credit_hold`.
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
    /// Only exceptions owned by this role.
    #[arg(long)]
    owner: Option<String>,
    /// At most this many (default: all for --json, 30 for the table).
    #[arg(long)]
    limit: Option<usize>,
}

/// `explain` arguments.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Order reference, e.g. S00042.
    order: String,
    #[command(flatten)]
    source: SourceArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Generate a demo of N open order lines, scan it, report lines per second and peak memory.
    Scan(bench::BenchScanArgs),
    /// Latency of the ranked queue (`GET /api/exceptions`) with N open cases.
    Queue(bench::BenchQueueArgs),
    /// Throughput of durable audit appends.
    Audit(bench::BenchAuditArgs),
    /// A full load and an incremental sync from a fake Odoo over loopback.
    Odoo(odoo::BenchOdooArgs),
    /// Train the predictive models on a year of history, then score every open line of N.
    Predict(bench_predict::BenchPredictArgs),
    /// Copilot server overhead per turn (200 concurrent conversations, instant fake model)
    /// and the prompt budget of a typical turn.
    Chat(copilot::BenchChatArgs),
    /// Search index build time and query latency over the demo corpus.
    Retrieval(bench_retrieval::BenchRetrievalArgs),
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate the policy files, print the version.
    Check,
}

/// Entry point used by the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match run(cli, &mut out) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A reader that closed the pipe early (`scan | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

/// Run a parsed command, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let policy = load_policy(cli.policies.as_deref())?;
    match cli.command {
        Command::Scan(a) => scan(&policy, a, out),
        Command::Explain(a) => explain(&policy, a, out),
        Command::Bench(BenchCommand::Scan(a)) => bench::scan(&policy, a, out),
        Command::Bench(BenchCommand::Queue(a)) => bench::queue(policy, a, out),
        Command::Bench(BenchCommand::Audit(a)) => bench::audit(a, out),
        Command::Bench(BenchCommand::Odoo(a)) => odoo::bench(a, out),
        Command::Odoo(c) => odoo::run(c, out),
        Command::Bench(BenchCommand::Predict(a)) => bench_predict::run(&policy, a, out),
        Command::Bench(BenchCommand::Retrieval(a)) => bench_retrieval::retrieval(a, out),
        Command::Serve(a) => server::serve(policy, cli.policies.as_deref(), *a, out),
        Command::Token(c) => server::token(policy, c, out),
        Command::Audit(c) => server::audit_cmd(c, out),
        Command::Model(c) => model::run(&policy, c, out),
        Command::Report(a) => server::report(policy, a, out),
        Command::Bench(BenchCommand::Chat(a)) => copilot::bench_chat(policy, a, out),
        Command::Ask(a) => copilot::ask(policy, cli.policies.as_deref(), a, out),
        Command::Eval(a) => copilot::eval(policy, cli.policies.as_deref(), a, out),
        Command::Policy(PolicyCommand::Check) => {
            writeln!(
                out,
                "policy {} OK: {} roles, {} custom rules",
                policy.version,
                policy.roles.len(),
                policy.rules.len()
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Load the policy from a directory or the embedded defaults.
pub fn load_policy(dir: Option<&std::path::Path>) -> anyhow::Result<Policy> {
    Ok(match dir {
        Some(d) => Policy::load_dir(d)?,
        None => Policy::embedded()?,
    })
}

pub(crate) fn demo_config(a: &SourceArgs) -> anyhow::Result<DemoConfig> {
    if a.orders == 0 {
        anyhow::bail!("--orders must be at least 1");
    }
    if a.orders > 2_000_000 {
        anyhow::bail!(
            "--orders {} is more than the demo supports (2,000,000)",
            a.orders
        );
    }
    Ok(DemoConfig {
        seed: a.seed,
        orders: a.orders,
        now: Utc::now(),
    })
}

/// Build the snapshot and the year of history before it.
pub fn load_source_with_history(
    a: &SourceArgs,
) -> anyhow::Result<(Snapshot, crate::domain::History)> {
    let cfg = demo_config(a)?;
    let mut bar = progress::Bar::new("generating demo");
    let out = demo::generate_with_history(&cfg, &mut |phase, done, total| {
        bar.update(phase, done, total)
    });
    bar.finish();
    Ok(out)
}

/// Build the snapshot for a command.
pub fn load_source(a: &SourceArgs) -> anyhow::Result<Snapshot> {
    let cfg = demo_config(a)?;
    let mut bar = progress::Bar::new("generating demo");
    let snap = demo::generate(&cfg, &mut |phase, done, total| {
        bar.update(phase, done, total)
    });
    bar.finish();
    Ok(snap)
}

fn filter<'a>(
    exceptions: &'a [Exception],
    kinds: &[String],
    owner: Option<&str>,
    policy: &Policy,
) -> anyhow::Result<Vec<&'a Exception>> {
    for k in kinds {
        let known = Kind::BUILTIN.iter().any(|b| b.as_str() == k)
            || policy.rules.iter().any(|r| &r.name == k);
        if !known {
            let mut names: Vec<&str> = Kind::BUILTIN.iter().map(|b| b.as_str()).collect();
            names.extend(policy.rules.iter().map(|r| r.name.as_str()));
            anyhow::bail!("unknown kind `{k}` (known kinds: {})", names.join(", "));
        }
    }
    if let Some(o) = owner
        && !policy.roles.iter().any(|r| r == o)
    {
        anyhow::bail!(
            "unknown role `{o}` (known roles: {})",
            policy.roles.join(", ")
        );
    }
    Ok(exceptions
        .iter()
        .filter(|e| kinds.is_empty() || kinds.iter().any(|k| k == e.kind.as_str()))
        .filter(|e| owner.is_none_or(|o| e.owner_role == o))
        .collect())
}

fn scan(policy: &Policy, a: ScanArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let snap = load_source(&a.source)?;
    let result = core::detect(&snap, policy, Utc::now());
    let selected = filter(&result.exceptions, &a.kind, a.owner.as_deref(), policy)?;
    if a.json {
        let n = a.limit.unwrap_or(selected.len());
        serde_json::to_writer_pretty(&mut *out, &selected.iter().take(n).collect::<Vec<_>>())?;
        writeln!(out)?;
    } else {
        let n = a.limit.unwrap_or(30);
        table::queue(out, &snap, &result, &selected, n)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(policy: &Policy, a: ExplainArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let snap = load_source(&a.source)?;
    let result = core::detect(&snap, policy, Utc::now());
    let x = core::explain::explain(&snap, policy, &result, &a.order)?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &x)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", core::explain::render_text(&x))?;
    }
    Ok(ExitCode::SUCCESS)
}
