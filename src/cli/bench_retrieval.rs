//! `bench retrieval`: build the search indexes over the demo corpus (policy clauses,
//! catalogue, past cases) and time queries — the fused search the copilot calls, BM25
//! alone, and the exact vector scan alone at the corpus size and at 100,000 vectors.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use crate::demo::{self, DemoConfig};
use crate::retrieval::vector::{ExactIndex, Point};
use crate::retrieval::{Corpus, RetrievalConfig, Retriever, RetrieverInfo, corpus_docs, embed};

/// `bench retrieval` arguments.
#[derive(Debug, Args)]
pub struct BenchRetrievalArgs {
    /// Open orders of the demo whose catalogue and history are indexed.
    #[arg(long, default_value_t = DemoConfig::DEFAULT_ORDERS)]
    orders: usize,
    /// Queries to time (a fixed mix of policy, product and past-case questions, repeated).
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 8)]
    k: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    retrieval: RetrievalConfig,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    docs: usize,
    built: RetrieverInfo,
    build_total_ms: f64,
    queries: usize,
    /// The fused search (`Retriever::search`): BM25 + query embedding + vector scan + fusion.
    search: Latency,
    /// BM25 alone (a retriever without vectors).
    bm25_only: Latency,
    /// The exact vector scan alone, over as many vectors as documents.
    vector_scan: Option<Latency>,
    /// The exact vector scan alone over 100,000 vectors.
    vector_scan_100k: Option<Latency>,
}

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let i = ((ms.len() as f64 - 1.0) * p).round() as usize;
        ms.get(i).copied().unwrap_or(0.0)
    };
    Latency {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
    }
}

/// The questions timed: what a service rep, a planner and finance ask, with a product
/// name and a product code drawn from the catalogue (one misspelt).
fn queries(snap: &crate::domain::Snapshot) -> Vec<String> {
    let mut q: Vec<String> = [
        "who approves a credit release",
        "how many days overdue before shipments go on hold",
        "who owns supplier delays",
        "what did we do last time a supplier was late",
        "customer paid the overdue invoice",
        "split shipment partial delivery",
        "can the accounting team unblock a buyer who owes us money",
        "discount above the manager threshold",
        "missing proof of delivery",
        "reallocate stock from a lower priority order",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(p) = snap.products.get(17) {
        q.push(p.name.clone());
        q.push(format!("is {} in stock", p.sku));
        q.push(p.name.replacen("o", "0", 1).replacen("e", "", 1));
    }
    q
}

pub(super) fn retrieval(a: BenchRetrievalArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if a.orders == 0 || a.orders > 200_000 {
        anyhow::bail!("--orders must be between 1 and 200,000");
    }
    if a.queries == 0 || a.queries > 100_000 || a.k == 0 || a.k > crate::retrieval::MAX_K {
        anyhow::bail!("--queries must be between 1 and 100,000 and --k between 1 and 100");
    }
    let snap = demo::generate(
        &DemoConfig {
            seed: 42,
            orders: a.orders,
            now: Utc::now(),
        },
        &mut |_, _, _| {},
    );
    let docs = corpus_docs(None, &snap, Vec::new())?;
    let n_docs = docs.len();
    let qs = queries(&snap);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let t = Instant::now();
        let hybrid = Retriever::build(&a.retrieval, docs.clone()).await?;
        let build_total_ms = t.elapsed().as_secs_f64() * 1000.0;
        let lexical = Retriever::build(&RetrievalConfig::bm25_only(), docs).await?;
        let search = time_queries(&hybrid, &qs, a.queries, a.k).await?;
        let bm25_only = time_queries(&lexical, &qs, a.queries, a.k).await?;
        let (vector_scan, vector_scan_100k) = if hybrid.has_vectors() {
            (
                Some(scan_latency(n_docs, a.queries, a.k)),
                Some(scan_latency(100_000, a.queries.min(200), a.k)),
            )
        } else {
            (None, None)
        };
        anyhow::Ok(Report {
            docs: n_docs,
            built: hybrid.info(),
            build_total_ms,
            queries: a.queries,
            search,
            bm25_only,
            vector_scan,
            vector_scan_100k,
        })
    })?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let counts: Vec<String> = report
        .built
        .docs
        .iter()
        .map(|(c, n)| format!("{n} {}", c.as_str()))
        .collect();
    writeln!(
        out,
        "corpus: {} documents ({})",
        report.docs,
        counts.join(", ")
    )?;
    writeln!(
        out,
        "embeddings: {}; vector index: {}",
        report
            .built
            .embedder
            .as_deref()
            .unwrap_or("none (BM25 only)"),
        report.built.vector_index.as_deref().unwrap_or("none")
    )?;
    writeln!(
        out,
        "build: {:.0} ms total (BM25 {:.0} ms, embedding + vector index {:.0} ms)",
        report.build_total_ms, report.built.bm25_build_ms, report.built.vector_build_ms
    )?;
    let line = |name: &str, l: &Latency| {
        format!(
            "{name:<28} p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms",
            l.p50_ms, l.p99_ms, l.max_ms
        )
    };
    writeln!(out, "{} queries, k = {}:", report.queries, a.k)?;
    writeln!(out, "  {}", line("search (fused)", &report.search))?;
    writeln!(out, "  {}", line("BM25 only", &report.bm25_only))?;
    if let Some(l) = &report.vector_scan {
        writeln!(
            out,
            "  {}",
            line(&format!("vector scan ({} vectors)", report.docs), l)
        )?;
    }
    if let Some(l) = &report.vector_scan_100k {
        writeln!(out, "  {}", line("vector scan (100,000)", l))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Time `n` searches cycling through `qs`.
async fn time_queries(r: &Retriever, qs: &[String], n: usize, k: usize) -> anyhow::Result<Latency> {
    let mut ms = Vec::with_capacity(n);
    for q in qs.iter().cycle().take(n) {
        let t = Instant::now();
        let hits = r.search(q, &[], k).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(hits);
    }
    Ok(latency(ms))
}

/// Time the exact scan alone over `n` random unit vectors of 384 dimensions (its cost does
/// not depend on the values).
fn scan_latency(n: usize, queries: usize, k: usize) -> Latency {
    let dim = 384;
    let mut rng = fastrand::Rng::with_seed(1);
    let mut v = || embed::normalise((0..dim).map(|_| rng.f32() - 0.5).collect());
    let ix = ExactIndex::new(dim);
    let points: Vec<Point> = (0..n)
        .map(|i| Point {
            id: format!("d{i}"),
            corpus: Corpus::ALL[i % 3],
            vector: v(),
        })
        .collect();
    if ix.upsert_now(points).is_err() {
        return latency(Vec::new());
    }
    let mut ms = Vec::with_capacity(queries);
    for _ in 0..queries {
        let q = v();
        let t = Instant::now();
        std::hint::black_box(ix.search_now(&q, &Corpus::ALL, k));
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latency(ms)
}
