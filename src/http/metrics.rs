//! Prometheus metrics in the text exposition format: request counts and latency
//! histograms per route, plus gauges read from the application at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::app::App;

/// Histogram bucket bounds in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

/// Request metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Series>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Metrics {
    /// Record one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        *lock(&self.requests)
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let mut lat = lock(&self.latency);
        let s = lat.entry(route.to_string()).or_insert_with(|| Series {
            buckets: vec![0; BUCKETS.len()],
            ..Series::default()
        });
        let secs = elapsed.as_secs_f64();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b
                && let Some(c) = s.buckets.get_mut(i)
            {
                *c += 1;
            }
        }
    }

    /// The exposition text.
    pub async fn render(&self, app: &App) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP http_requests_total HTTP requests by method, route and status."
        );
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        for ((m, r, s), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{}\",route=\"{}\",status=\"{s}\"}} {n}",
                label(m),
                label(r)
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds Request latency by route."
        );
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        for (r, s) in lock(&self.latency).iter() {
            for (b, c) in BUCKETS.iter().zip(&s.buckets) {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{route=\"{}\",le=\"{b}\"}} {c}",
                    label(r)
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}",
                label(r),
                s.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{route=\"{}\"}} {}",
                label(r),
                s.sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{route=\"{}\"}} {}",
                label(r),
                s.count
            );
        }
        let c = &app.counters;
        for (name, help, v) in [
            (
                "order_copilot_scans_total",
                "Scans completed.",
                c.scans.load(Ordering::Relaxed),
            ),
            (
                "order_copilot_scan_failures_total",
                "Scans failed.",
                c.scan_failures.load(Ordering::Relaxed),
            ),
            (
                "order_copilot_login_failures_total",
                "Failed logins.",
                c.login_failures.load(Ordering::Relaxed),
            ),
            (
                "order_copilot_executions_total",
                "Approved actions executed.",
                c.executions.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        if let Some(l) = app.latest().await {
            let age = (chrono::Utc::now() - l.finished_at).num_seconds();
            let _ = writeln!(
                out,
                "# HELP order_copilot_scan_age_seconds Seconds since the last completed scan.\n# TYPE order_copilot_scan_age_seconds gauge\norder_copilot_scan_age_seconds {age}"
            );
            let _ = writeln!(
                out,
                "# HELP order_copilot_scan_duration_seconds Detection time of the last scan.\n# TYPE order_copilot_scan_duration_seconds gauge\norder_copilot_scan_duration_seconds {}",
                l.duration.as_secs_f64()
            );
            let _ = writeln!(
                out,
                "# HELP order_copilot_exceptions Exceptions in the last scan.\n# TYPE order_copilot_exceptions gauge\norder_copilot_exceptions {}",
                l.result.exceptions.len()
            );
        }
        if let Ok(counts) = app.case_counts().await {
            let _ = writeln!(
                out,
                "# HELP order_copilot_cases Cases by status.\n# TYPE order_copilot_cases gauge"
            );
            for (status, n) in counts {
                let _ = writeln!(
                    out,
                    "order_copilot_cases{{status=\"{}\"}} {n}",
                    label(&status)
                );
            }
        }
        out
    }
}
