//! The command line: `scan`, `explain`, `bench scan`, `policy check`.
//!
//! Owns argument parsing, choosing the source (`source`: the Odoo named by `ODOO_URL`,
//! else the demo distributor, `--demo` forcing the demo), progress on a terminal (quiet
//! when piped), and rendering tables and JSON. Errors are printed once, as `error: …`,
//! with a non-zero exit code.

mod bench;
mod bench_predict;
mod bench_retrieval;
pub mod copilot;
pub mod model;
pub mod odoo;
mod progress;
pub mod server;
pub mod source;
mod table;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};

pub use self::source::SourceArgs;
use self::source::WithSource;
use crate::core::{self, Exception, Kind};
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
    /// Scan for exceptions and print the ranked queue (from the Odoo named by ODOO_URL, else
    /// the demo; --demo forces the demo).
    Scan(ScanArgs),
    /// Explain everything that blocks or threatens one order (from the Odoo named by
    /// ODOO_URL, else the demo; --demo forces the demo).
    Explain(ExplainArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the server: HTTP API, scans on an interval, approvals, audit log (over the Odoo
    /// named by ODOO_URL, else the demo; --demo forces the demo).
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
    /// Write the predictive-risk and operational-intelligence report as one HTML file (from
    /// the Odoo named by ODOO_URL, else the demo; --demo forces the demo).
    Report(server::ReportArgs),
    /// Ask the copilot a question (about the Odoo named by ODOO_URL, else the demo; --demo
    /// forces the demo).
    Ask(copilot::AskArgs),
    /// Run the copilot's eval cases and report accuracy, groundedness and boundary violations
    /// (always on the generated demo: the cases are written for its data; ODOO_URL is not read).
    Eval(copilot::EvalArgs),
}

/// `scan` arguments.
#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Print JSON instead of a table: `{"source": {...}, "exceptions": [...]}`.
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
    /// Print JSON instead of text (with the `source` read).
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
        Command::Audit(c) => server::audit_cmd(&policy, c, out),
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

/// The body of `scan --json` (the source read goes before it, through `WithSource`).
#[derive(serde::Serialize)]
struct ScanJson<'a> {
    exceptions: Vec<&'a Exception>,
}

fn scan(policy: &Policy, a: ScanArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let (snap, info) = source::snapshot(&a.source)?;
    let result = core::detect(&snap, policy, Utc::now());
    let selected = filter(&result.exceptions, &a.kind, a.owner.as_deref(), policy)?;
    if a.json {
        let n = a.limit.unwrap_or(selected.len());
        let body = ScanJson {
            exceptions: selected.iter().take(n).copied().collect(),
        };
        let doc = WithSource {
            source: &info,
            body: &body,
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        writeln!(out, "source: {info}")?;
        let n = a.limit.unwrap_or(30);
        table::queue(out, &snap, &result, &selected, n)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(policy: &Policy, a: ExplainArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let (snap, info) = source::snapshot(&a.source)?;
    let result = core::detect(&snap, policy, Utc::now());
    let x = core::explain::explain(&snap, policy, &result, &a.order)?;
    if a.json {
        let doc = WithSource {
            source: &info,
            body: &x,
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        writeln!(out, "source: {info}")?;
        write!(out, "{}", core::explain::render_text(&x))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command's arguments (unique ids, no clashing flags) only when it is
    /// built; two flattened `Args` with a field of the same name panic at start-up.
    #[test]
    fn every_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
