//! `bench predict`: generate a demo of N open order lines with its year of history,
//! train the four models (timed), then score every open line, purchase line, customer and
//! key-account order of the snapshot (timed, best of `--repeat`), and the whole scan with
//! predicted exceptions for comparison.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use super::progress::Bar;
use crate::core::{self, Context};
use crate::demo::{self, DemoConfig};
use crate::policy::Policy;
use crate::predict;

/// `bench predict` arguments.
#[derive(Debug, Args)]
pub struct BenchPredictArgs {
    /// Open order lines to generate.
    #[arg(long, default_value_t = 100_000)]
    lines: usize,
    /// Scoring runs; the fastest is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Demo seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    open_lines: usize,
    history_order_lines: usize,
    history_purchase_lines: usize,
    history_invoices: usize,
    generate_seconds: f64,
    train_seconds: f64,
    /// Scoring all subjects (features, probability) on a built scan context, best run.
    score_seconds: f64,
    score_runs_seconds: Vec<f64>,
    /// Building the scan context the scoring reads (the scan builds it anyway).
    context_seconds: f64,
    predictions: usize,
    /// Scoring only the open order lines (late-fulfillment model), best run.
    open_lines_score_seconds: f64,
    open_lines_scored: usize,
    /// A whole scan with scoring and predicted exceptions.
    scan_with_predictions_seconds: f64,
    predicted_exceptions: usize,
    models: Vec<(String, f64, f64, f64, f64)>,
}

pub(super) fn run(
    policy: &Policy,
    a: BenchPredictArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    super::bench::check_size(a.lines, 2_000_000, a.repeat)?;
    let now = Utc::now();
    let cfg = DemoConfig::with_lines(a.seed, a.lines, now);
    let t0 = Instant::now();
    let mut bar = Bar::new("generating demo");
    let (snap, history) = demo::generate_with_history(&cfg, &mut |phase, done, total| {
        bar.update(phase, done, total)
    });
    bar.finish();
    let generate_seconds = t0.elapsed().as_secs_f64();

    let t = Instant::now();
    let (models, failed) = predict::train(&snap, &history, now);
    let train_seconds = t.elapsed().as_secs_f64();
    if let Some((k, e)) = failed.first() {
        anyhow::bail!("{} could not be trained: {e}", k.as_str());
    }

    let t = Instant::now();
    let (ctx, _) = Context::new(&snap, policy, now);
    let context_seconds = t.elapsed().as_secs_f64();
    let mut runs = Vec::with_capacity(a.repeat);
    let mut predictions = 0;
    for _ in 0..a.repeat {
        let t = Instant::now();
        let p = predict::score(&models, &ctx, Some(&history));
        runs.push(t.elapsed().as_secs_f64());
        predictions = p.len();
    }
    // The target is about open lines: the late-fulfillment model alone.
    let lines_only = predict::Models {
        models: models
            .models
            .iter()
            .filter(|m| m.kind == predict::ModelKind::LateFulfillment)
            .cloned()
            .collect(),
    };
    let mut line_runs = Vec::with_capacity(a.repeat);
    let mut lines_scored = 0;
    for _ in 0..a.repeat {
        let t = Instant::now();
        lines_scored = predict::score(&lines_only, &ctx, None).len();
        line_runs.push(t.elapsed().as_secs_f64());
    }
    drop(ctx);
    let t = Instant::now();
    let mut predicted = 0;
    let result = core::detect_with(&snap, policy, now, &mut |ctx, out| {
        let scored = predict::score(&models, ctx, Some(&history));
        if let Some(p) = &policy.predictions {
            let before = out.len();
            predict::exceptions::append(ctx, out, &scored, &models, p);
            predicted = out.len() - before;
        }
    });
    let scan_seconds = t.elapsed().as_secs_f64();
    let r = Report {
        open_lines: result.open_lines,
        history_order_lines: history.lines.len(),
        history_purchase_lines: history.purchases.len(),
        history_invoices: history.invoices.len(),
        generate_seconds,
        train_seconds,
        score_seconds: runs.iter().copied().fold(f64::INFINITY, f64::min),
        score_runs_seconds: runs,
        context_seconds,
        predictions,
        open_lines_score_seconds: line_runs.iter().copied().fold(f64::INFINITY, f64::min),
        open_lines_scored: lines_scored,
        scan_with_predictions_seconds: scan_seconds,
        predicted_exceptions: predicted,
        models: models
            .models
            .iter()
            .map(|m| {
                let e = &m.evaluation;
                (
                    m.kind.as_str().to_string(),
                    e.auc,
                    e.baseline_auc,
                    e.brier,
                    e.baseline_brier,
                )
            })
            .collect(),
    };
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &r)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{} open lines; history: {} order lines, {} purchase lines, {} invoices (generated in {:.1} s)",
            r.open_lines,
            r.history_order_lines,
            r.history_purchase_lines,
            r.history_invoices,
            r.generate_seconds
        )?;
        writeln!(out, "train 4 models:           {:>9.3} s", r.train_seconds)?;
        writeln!(
            out,
            "score {} subjects:   {:>9.1} ms (best of {}; context build {:.1} ms more)",
            r.predictions,
            r.score_seconds * 1000.0,
            r.score_runs_seconds.len(),
            r.context_seconds * 1000.0
        )?;
        writeln!(
            out,
            "score {} open lines:  {:>9.1} ms (late fulfillment alone, best of {})",
            r.open_lines_scored,
            r.open_lines_score_seconds * 1000.0,
            r.score_runs_seconds.len()
        )?;
        writeln!(
            out,
            "scan with predictions:   {:>9.1} ms ({} predicted exceptions)",
            r.scan_with_predictions_seconds * 1000.0,
            r.predicted_exceptions
        )?;
        for (k, auc, bauc, brier, bbrier) in &r.models {
            writeln!(
                out,
                "  {k:<17} AUC {auc:.3} (baseline {bauc:.3}, {:+.3})  Brier {brier:.4} (baseline {bbrier:.4}, {:+.4})",
                auc - bauc,
                brier - bbrier
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
