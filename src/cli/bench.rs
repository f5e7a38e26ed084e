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
    /// For each step of the fastest scan, seconds from the scan's start until it finished.
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

/// The bounds every generated-demo benchmark checks: `lines` in 1..=`max_lines`, `repeat`
/// in 1..=100.
pub(super) fn check_size(lines: usize, max_lines: usize, repeat: usize) -> anyhow::Result<()> {
    if lines == 0 || lines > max_lines {
        anyhow::bail!("--lines must be between 1 and {max_lines}");
    }
    if repeat == 0 || repeat > 100 {
        anyhow::bail!("--repeat must be between 1 and 100");
    }
    Ok(())
}

pub(super) fn scan(
    policy: &Policy,
    a: BenchScanArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    check_size(a.lines, 5_000_000, a.repeat)?;
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
        let this_phases = std::sync::Mutex::new(Vec::new());
        let r = core::detect_observed(&snap, policy, now, &|name| {
            let at = t.elapsed().as_secs_f64();
            if let Ok(mut p) = this_phases.lock() {
                p.push((name, at));
            }
        });
        let secs = t.elapsed().as_secs_f64();
        if runs.iter().all(|&b| secs < b) {
            phases = this_phases.into_inner().unwrap_or_default();
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
        writeln!(
            out,
            "phases (ms from the start of the scan until each finished; detectors run on two threads): {}",
            phases.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench queue` arguments.
#[derive(Debug, Args)]
pub struct BenchQueueArgs {
    /// Open cases to load into the store.
    #[arg(long, default_value_t = 10_000)]
    cases: usize,
    /// Queue requests to time.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// PostgreSQL URL to benchmark instead of a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `bench audit` arguments.
#[derive(Debug, Args)]
pub struct BenchAuditArgs {
    /// Events to append.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 64)]
    producers: usize,
    /// PostgreSQL URL to benchmark instead of a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn temp_store_config(
    database_url: Option<String>,
) -> (crate::store::StoreConfig, Option<std::path::PathBuf>) {
    match database_url {
        Some(url) => (
            crate::store::StoreConfig {
                database_url: Some(url),
                data_dir: std::env::temp_dir(),
            },
            None,
        ),
        None => {
            let dir =
                std::env::temp_dir().join(format!("order-copilot-bench-{}", std::process::id()));
            (
                crate::store::StoreConfig {
                    database_url: None,
                    data_dir: dir.clone(),
                },
                Some(dir),
            )
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// Time `GET /api/exceptions` through the real router (authentication, query, JSON) with
/// N open cases in the store. Requests go through the router in-process (no TCP), one at
/// a time, with a mix of filters and pages.
pub(super) fn queue(
    policy: Policy,
    a: BenchQueueArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;
    use tower::ServiceExt;
    if a.cases == 0 || a.cases > 1_000_000 || a.requests == 0 || a.requests > 1_000_000 {
        anyhow::bail!("--cases and --requests must be between 1 and 1,000,000");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (cfg, tmp) = temp_store_config(a.database_url.clone());
        let store = crate::store::Store::open(&cfg).await?;
        // Enough demo to produce the cases (about 9 exceptions per 100 open lines).
        let now = Utc::now();
        let mut lines = (a.cases * 12).max(2_000);
        let snap = loop {
            let snap = demo::generate(&DemoConfig::with_lines(42, lines, now), &mut |_, _, _| {});
            let n = core::detect(&snap, &policy, now).exceptions.len();
            if n >= a.cases || lines > 20_000_000 {
                break snap;
            }
            lines = lines * a.cases / n.max(1) + 1_000;
        };
        let demo_src = Arc::new(crate::app::source::DemoSource::from_snapshot(snap));
        // The bench times queries, not the per-token rate limit: one token sends them all.
        let mut policy = policy;
        policy.limits.api.burst = u32::try_from(a.requests).unwrap_or(u32::MAX);
        let policy = Arc::new(policy);
        let (app, writer) = crate::app::start(store.clone(), policy.clone(), demo_src.clone(), demo_src).await?;
        app.scan("bench").await?;
        let token = crate::app::identity::create_token(&store, &policy, "bench", "planner").await?;
        let copilot = Arc::new(crate::copilot::Copilot::offline(app.clone())?);
        let state = crate::http::AppState::new(app.clone(), copilot);
        let router = crate::http::router(state);
        let paths = [
            "/api/exceptions?limit=50",
            "/api/exceptions?limit=50&offset=200",
            "/api/exceptions?limit=50&kind=stock_shortage",
            "/api/exceptions?limit=50&owner=planner&severity=high",
            "/api/exceptions?limit=50&sort=revenue",
            "/api/exceptions?limit=50&tier=A&warehouse=WH1",
            "/api/exceptions?limit=50&customer=bau",
        ];
        let peer: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
        let mut times = Vec::with_capacity(a.requests);
        let mut per_path: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
        let mut bar = Bar::new("querying");
        for i in 0..a.requests {
            if i % 100 == 0 {
                bar.update("requests", i as u64, a.requests as u64);
            }
            let path = paths[i % paths.len()];
            let mut req = axum::http::Request::builder()
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())?;
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let t = Instant::now();
            let resp = router.clone().oneshot(req).await?;
            let status = resp.status();
            let _body = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            times.push(ms);
            per_path[i % paths.len()].push(ms);
            if !status.is_success() {
                anyhow::bail!("{path} answered {status}");
            }
        }
        bar.finish();
        times.sort_by(f64::total_cmp);
        let by_path: serde_json::Map<String, serde_json::Value> = paths
            .iter()
            .zip(per_path.iter_mut())
            .map(|(p, t)| {
                t.sort_by(f64::total_cmp);
                (p.to_string(), serde_json::json!({"p50_ms": percentile(t, 0.5), "p99_ms": percentile(t, 0.99)}))
            })
            .collect();
        let open: i64 = store.case_counts().await?.iter().filter(|(s, _)| s == "open").map(|(_, n)| *n).sum();
        let report = serde_json::json!({
            "backend": format!("{:?}", store.backend()),
            "open_cases": open,
            "requests": a.requests,
            "p50_ms": percentile(&times, 0.50),
            "p95_ms": percentile(&times, 0.95),
            "p99_ms": percentile(&times, 0.99),
            "max_ms": times.last().copied().unwrap_or(0.0),
            "by_path": by_path,
        });
        writer.finish().await;
        store.close().await;
        if let Some(d) = tmp {
            let _ = std::fs::remove_dir_all(d);
        }
        if a.json {
            writeln!(out, "{report}")?;
        } else {
            writeln!(
                out,
                "queue listing over {} open cases ({}), {} requests: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                report["open_cases"], report["backend"].as_str().unwrap_or(""), a.requests,
                report["p50_ms"].as_f64().unwrap_or(0.0), report["p95_ms"].as_f64().unwrap_or(0.0),
                report["p99_ms"].as_f64().unwrap_or(0.0), report["max_ms"].as_f64().unwrap_or(0.0)
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Append N events from concurrent producers through the batching writer; every append
/// waits for its durable commit.
pub(super) fn audit(a: BenchAuditArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if a.events == 0 || a.events > 10_000_000 || a.producers == 0 || a.producers > 10_000 {
        anyhow::bail!("--events must be 1..=10,000,000 and --producers 1..=10,000");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (cfg, tmp) = temp_store_config(a.database_url.clone());
        let store = crate::store::Store::open(&cfg).await?;
        let (log, writer) = crate::store::audit::AuditLog::start(store.clone());
        let per = a.events.div_ceil(a.producers);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..a.producers {
            let log = log.clone();
            let n = per.min(a.events.saturating_sub(p * per));
            tasks.push(tokio::spawn(async move {
                for i in 0..n {
                    let ev = crate::store::audit::AuditEvent::new(
                        "bench.event",
                        "bench",
                        serde_json::json!({"producer": p, "i": i, "note": "a typical small payload with a few fields"}),
                    );
                    log.append(ev).await?;
                }
                Ok::<(), crate::store::audit::AuditError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let secs = t.elapsed().as_secs_f64();
        drop(log);
        writer.finish().await;
        let v = crate::store::audit::verify(&store, |_| {}).await?;
        store.close().await;
        if let Some(d) = tmp {
            let _ = std::fs::remove_dir_all(d);
        }
        let report = serde_json::json!({
            "backend": format!("{:?}", store.backend()),
            "events": a.events,
            "producers": a.producers,
            "seconds": secs,
            "events_per_second": a.events as f64 / secs.max(1e-9),
            "chain_ok": v.ok(),
        });
        if a.json {
            writeln!(out, "{report}")?;
        } else {
            writeln!(
                out,
                "appended {} audit events from {} producers in {:.2} s: {:.0} events/s (each acknowledged after a durable commit); chain {}",
                a.events, a.producers, secs, a.events as f64 / secs.max(1e-9), if v.ok() { "intact" } else { "BROKEN" }
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
