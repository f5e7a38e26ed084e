//! Criterion benchmarks of the exception core: a full scan of generated demos of growing
//! size (cost should grow linearly), and the allocation solver on a large instance.
//!
//! `cargo bench --bench scan`; the README reports the numbers with `order-copilot bench
//! scan`, which also reports peak memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use order_copilot::core::{self, solver};
use order_copilot::demo::{DemoConfig, generate};
use order_copilot::policy::Policy;

fn scan(c: &mut Criterion) {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
    let policy = Policy::embedded().unwrap();
    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    for lines in [10_000usize, 100_000] {
        let snap = generate(&DemoConfig::with_lines(42, lines, now), &mut |_, _, _| {});
        let open = snap.open_line_count();
        group.throughput(Throughput::Elements(open as u64));
        group.bench_with_input(BenchmarkId::from_parameter(lines), &snap, |b, snap| {
            b.iter(|| core::detect(snap, &policy, now))
        });
    }
    group.finish();
}

fn solver_large(c: &mut Criterion) {
    // 50 supply lots × 2,000 competing lines with a deterministic value pattern.
    let supplies = (0..50)
        .map(|s| solver::Supply {
            qty: 40 + (s * 7) % 50,
        })
        .collect();
    let demands = (0..2000)
        .map(|d| solver::Demand {
            qty: 1 + (d * 13) % 9,
        })
        .collect();
    let value = (0..50i64)
        .map(|s| {
            (0..2000i64)
                .map(|d| {
                    if (s + d) % 5 == 0 {
                        None
                    } else {
                        Some(10 + (s * 31 + d * 17) % 90)
                    }
                })
                .collect()
        })
        .collect();
    let p = solver::Problem {
        supplies,
        demands,
        value,
    };
    c.bench_function("solver 50x2000", |b| b.iter(|| solver::solve(&p).unwrap()));
}

criterion_group!(benches, scan, solver_large);
criterion_main!(benches);
