//! `model train` and `model evaluate`: fit the predictive models on the source's history
//! and save them under the data directory; re-evaluate saved models on the hold-out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use clap::{Args, Subcommand};

use super::source::{self, DemoArgs};
use crate::policy::Policy;
use crate::predict::{self, Evaluation, Models, TrainedModel, exceptions};

/// `model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Train every model on the source's year of history and save it under DATA_DIR/models.
    Train(ModelArgs),
    /// Evaluate the saved models on the time-based hold-out, against their baselines.
    Evaluate(ModelArgs),
}

/// Arguments of `model train` / `model evaluate`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The demo whose year of history the models learn from (the Odoo connector keeps no
    /// history yet, so `model` always reads the demo).
    #[command(flatten)]
    source: DemoArgs,
    /// Data directory; models live in DIR/models.
    #[arg(
        long,
        env = "ORDER_COPILOT_DATA_DIR",
        default_value = "data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Where a data directory keeps its models.
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// Run a `model` command.
pub fn run(policy: &Policy, cmd: ModelCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Train(a) => train(policy, a, out),
        ModelCommand::Evaluate(a) => evaluate(policy, a, out),
    }
}

fn train(policy: &Policy, a: ModelArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let (snap, history) = source::generate_with_history(&a.source.config()?);
    let started = Instant::now();
    let (models, failed) = predict::train(&snap, &history, Utc::now());
    let took = started.elapsed();
    let dir = models_dir(&a.data_dir);
    models.save(&dir)?;
    if a.json {
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({
                "dir": dir.display().to_string(),
                "seconds": took.as_secs_f64(),
                "models": models.models.iter().map(summary).collect::<Vec<_>>(),
                "failed": failed.iter().map(|(k, e)| serde_json::json!({"model": k.as_str(), "error": e.to_string()})).collect::<Vec<_>>(),
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "trained {} models on {} past order lines, {} purchase lines, {} invoices in {:.1} s; saved in {}",
            models.models.len(),
            history.lines.len(),
            history.purchases.len(),
            history.invoices.len(),
            took.as_secs_f64(),
            dir.display()
        )?;
        table(out, &models, policy)?;
        for (k, e) in &failed {
            writeln!(out, "{}: not trained: {e}", k.as_str())?;
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn evaluate(policy: &Policy, a: ModelArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let dir = models_dir(&a.data_dir);
    let Some(mut models) = Models::load(&dir)? else {
        anyhow::bail!(
            "no trained models in {}; run `order-copilot model train` first",
            dir.display()
        );
    };
    let (snap, history) = source::generate_with_history(&a.source.config()?);
    for m in &mut models.models {
        let train = m.evaluation.train;
        m.evaluation = predict::evaluate(m, &snap, &history)?;
        m.evaluation.train = train;
    }
    if a.json {
        serde_json::to_writer_pretty(
            &mut *out,
            &models
                .models
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "model": m.kind.as_str(),
                        "version": m.version,
                        "evaluation": m.evaluation,
                    })
                })
                .collect::<Vec<_>>(),
        )?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    table(out, &models, policy)?;
    for m in &models.models {
        writeln!(out)?;
        reliability(out, m)?;
    }
    let all_beat = models.models.iter().all(|m| m.evaluation.beats_baseline());
    Ok(if all_beat {
        ExitCode::SUCCESS
    } else {
        writeln!(
            out,
            "\nsome model does not beat its baseline on the hold-out"
        )?;
        ExitCode::FAILURE
    })
}

fn summary(m: &TrainedModel) -> serde_json::Value {
    serde_json::json!({
        "model": m.kind.as_str(),
        "version": m.version,
        "evaluation": m.evaluation,
    })
}

/// The one-line-per-model summary: hold-out AUC and Brier against the baseline.
fn table(out: &mut dyn Write, models: &Models, policy: &Policy) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<17} {:<12} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>9}",
        "model",
        "version",
        "train",
        "test",
        "AUC",
        "base",
        "Brier",
        "base",
        "ECE",
        "thr",
        "precision"
    )?;
    for m in &models.models {
        let e: &Evaluation = &m.evaluation;
        let thr = policy
            .predictions
            .map(|p| exceptions::threshold(&p, m.kind))
            .unwrap_or(0.5);
        let prec = e.at(thr).map(|a| a.precision).unwrap_or(0.0);
        writeln!(
            out,
            "{:<17} {:<12} {:>7} {:>6} {:>6.3} {:>6.3} {:>7.4} {:>7.4} {:>7.4} {:>6.2} {:>9.3}",
            m.kind.as_str(),
            m.version,
            e.train,
            e.test,
            e.auc,
            e.baseline_auc,
            e.brier,
            e.baseline_brier,
            e.calibration_error,
            thr,
            prec
        )?;
    }
    Ok(())
}

fn reliability(out: &mut dyn Write, m: &TrainedModel) -> std::io::Result<()> {
    let e = &m.evaluation;
    writeln!(
        out,
        "{} — hold-out from {}: {} examples, {:.1} % positive; AUC {:.3} vs {:.3} ({:+.3}), Brier {:.4} vs {:.4} ({:+.4}); baseline: {}",
        m.kind.as_str(),
        e.test_from.format("%Y-%m-%d"),
        e.test,
        e.test_positive_rate * 100.0,
        e.auc,
        e.baseline_auc,
        e.auc - e.baseline_auc,
        e.brier,
        e.baseline_brier,
        e.brier - e.baseline_brier,
        e.baseline
    )?;
    writeln!(
        out,
        "  {:<11} {:>6} {:>10} {:>9}",
        "predicted", "n", "mean pred", "observed"
    )?;
    for b in &e.calibration_table {
        writeln!(
            out,
            "  {:.1}–{:.1}     {:>6} {:>10.3} {:>9.3}",
            b.lo, b.hi, b.n, b.predicted, b.observed
        )?;
    }
    Ok(())
}
