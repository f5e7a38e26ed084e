//! `bench scan`: generate a demo of N open order lines, scan it, and report lines per
//! second and peak memory. The timing covers the scan alone, not the generation.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use super::progress::Bar;
use crate::core;
use crate::demo::{self, DemoConfig};
use crate::policy::Policy;

/// `bench scan` arguments.
#[derive(Debug, Args)]
pub struct BenchScanArgs {
    /// Open order lines to generate.
    #[arg(long, default_value_t = 100_000)]
    lines: usize,
    /// Scans to run; the fastest is reported (the others show the spread).
    #[arg(long, default_value_t = 3)]
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
    lines: usize,
    orders: usize,
    exceptions: usize,
    seconds: f64,
    runs_seconds: Vec<f64>,
    lines_per_second: f64,
    generate_seconds: f64,
    peak_rss_bytes: u64,
    rss_before_scan_bytes: u64,
    /// Time of each step of the fastest scan.
    phases_seconds: Vec<(String, f64)>,
}

/// Peak resident memory of this process (Linux `VmHWM`), or current if unavailable.
pub fn peak_rss_bytes() -> u64 {
    proc_status_kb("VmHWM:").unwrap_or(0) * 1024
}

fn rss_bytes() -> u64 {
    proc_status_kb("VmRSS:").unwrap_or(0) * 1024
}

fn proc_status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn scan(
    policy: &Policy,
    a: BenchScanArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if a.lines == 0 || a.lines > 5_000_000 {
        anyhow::bail!("--lines must be between 1 and 5,000,000");
    }
    if a.repeat == 0 || a.repeat > 100 {
        anyhow::bail!("--repeat must be between 1 and 100");
    }
    let now = Utc::now();
    let cfg = DemoConfig::with_lines(a.seed, a.lines, now);
    let t0 = Instant::now();
    let mut bar = Bar::new("generating demo");
    let snap = demo::generate(&cfg, &mut |phase, done, total| {
        bar.update(phase, done, total)
    });
    bar.finish();
    let generate_seconds = t0.elapsed().as_secs_f64();
    let rss_before_scan_bytes = rss_bytes();

    let mut bar = Bar::new("scanning");
    let mut runs = Vec::with_capacity(a.repeat);
    let mut last = None;
    let mut phases: Vec<(&'static str, f64)> = Vec::new();
    for i in 0..a.repeat {
        bar.update("scan", i as u64, a.repeat as u64);
        drop(last.take());
        let t = Instant::now();
        let mut mark = t;
        let mut this_phases = Vec::new();
        let r = core::detect_observed(&snap, policy, now, &mut |name| {
            let n = Instant::now();
            this_phases.push((name, (n - mark).as_secs_f64()));
            mark = n;
        });
        let secs = t.elapsed().as_secs_f64();
        if runs.iter().all(|&b| secs < b) {
            phases = this_phases;
        }
        runs.push(secs);
        last = Some(r);
    }
    bar.finish();
    let result = last.ok_or_else(|| anyhow::anyhow!("no scan ran"))?;
    let best = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let report = Report {
        lines: result.open_lines,
        orders: snap.orders.len(),
        exceptions: result.exceptions.len(),
        seconds: best,
        runs_seconds: runs,
        lines_per_second: result.open_lines as f64 / best.max(1e-9),
        generate_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        rss_before_scan_bytes,
        phases_seconds: phases.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
    };
    if a.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "scanned {} open lines ({} orders) in {:.1} ms (best of {}): {:.0} lines/s, {} exceptions",
            report.lines,
            report.orders,
            report.seconds * 1000.0,
            report.runs_seconds.len(),
            report.lines_per_second,
            report.exceptions
        )?;
        writeln!(
            out,
            "generation {:.2} s; memory: {:.0} MiB before the scan, {:.0} MiB peak",
            report.generate_seconds,
            report.rss_before_scan_bytes as f64 / 1048576.0,
            report.peak_rss_bytes as f64 / 1048576.0
        )?;
        let phases: Vec<String> = report
            .phases_seconds
            .iter()
            .map(|(n, s)| format!("{n} {:.1}", s * 1000.0))
            .collect();
        writeln!(out, "phases (ms): {}", phases.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}
