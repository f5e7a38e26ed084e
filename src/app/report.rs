//! The operational-intelligence and model report: one self-contained HTML file (inline
//! CSS and SVG charts, no scripts, no external references) with the same numbers the API
//! serves — models against their baselines with reliability diagrams, governance and
//! drift, trends, backlog and cycle time, revenue and margin at risk this month, and the
//! repeated-change patterns of key accounts.

use std::fmt::Write;

use chrono::Utc;
use rust_decimal::prelude::ToPrimitive;

use super::{App, AppError};
use crate::intel::svg::{bar_chart, esc, line_chart, reliability};
use crate::intel::{Bucket, RiskBy, TrendBy, Trends};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin-bottom:.3em}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:13px}\
.ok{color:#2a7d2a}.bad{color:#b22}.flex{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}";

fn trend_chart(title: &str, t: &Trends) -> String {
    let labels: Vec<String> = t
        .series
        .first()
        .map(|s| s.points.iter().map(|p| p.date.clone()).collect())
        .unwrap_or_default();
    let series: Vec<(String, Vec<f64>)> = t
        .series
        .iter()
        .take(8)
        .map(|s| {
            (
                s.label.clone(),
                s.points.iter().map(|p| p.count as f64).collect(),
            )
        })
        .collect();
    line_chart(title, &labels, &series)
}

fn totals(t: &Trends) -> Vec<(String, f64)> {
    t.series
        .iter()
        .map(|s| {
            (
                s.label.clone(),
                s.points.iter().map(|p| p.count as f64).sum(),
            )
        })
        .collect()
}

impl App {
    /// Render the report (scans first if no scan has completed).
    pub async fn report_html(&self) -> Result<String, AppError> {
        if self.latest().await.is_none() {
            self.scan("report").await?;
        }
        let mut h = String::new();
        let now = Utc::now();
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>order-copilot report</title><style>{STYLE}</style></head><body>\
             <h1>order-copilot: predictive risk and operational intelligence</h1>\
             <p class=\"note\">Generated {} from {} · policy {}</p>",
            now.format("%Y-%m-%d %H:%M UTC"),
            esc(&self.source.describe()),
            esc(&self.policy.version)
        );

        // Models.
        let models = self.model_reports().await?;
        h.push_str("<h2>Models</h2>");
        if models.is_empty() {
            h.push_str(
                "<p>No models are in use (the source keeps no history, or none were trained).</p>",
            );
        } else {
            h.push_str("<p class=\"note\">Time-based hold-out: each model is fitted on the oldest part of the year of history, calibrated (Platt scaling) on the next, and evaluated on the most recent days against a one-number baseline. Margins are model minus baseline.</p>");
            h.push_str("<table><tr><th>model</th><th>version</th><th>train</th><th>hold-out</th><th>positive</th><th>AUC</th><th>baseline</th><th>margin</th><th>Brier</th><th>baseline</th><th>margin</th><th>ECE</th><th>threshold</th><th>precision</th><th>recall</th></tr>");
            for m in &models {
                let e = &m.evaluation;
                let at = m.threshold.and_then(|t| e.at(t));
                let cls = if e.beats_baseline() { "ok" } else { "bad" };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.3}</td><td>{:.3}</td><td class=\"{cls}\">{:+.3}</td><td>{:.4}</td><td>{:.4}</td><td class=\"{cls}\">{:+.4}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    m.model.as_str(),
                    esc(&m.version),
                    e.train,
                    e.test,
                    e.test_positive_rate * 100.0,
                    e.auc,
                    e.baseline_auc,
                    e.auc - e.baseline_auc,
                    e.brier,
                    e.baseline_brier,
                    e.brier - e.baseline_brier,
                    e.calibration_error,
                    m.threshold
                        .map(|t| format!("{t:.2}"))
                        .unwrap_or_else(|| "—".into()),
                    at.map(|a| format!("{:.3}", a.precision))
                        .unwrap_or_else(|| "—".into()),
                    at.map(|a| format!("{:.3}", a.recall))
                        .unwrap_or_else(|| "—".into()),
                );
            }
            h.push_str("</table>");
            for m in &models {
                let e = &m.evaluation;
                let _ = write!(
                    h,
                    "<h3>{} — reliability on the hold-out</h3><p class=\"note\">Baseline: {}.</p><div class=\"flex\">{}<table><tr><th>predicted</th><th>n</th><th>mean predicted</th><th>observed</th></tr>",
                    m.model.as_str(),
                    esc(&e.baseline),
                    reliability(
                        &format!("{} reliability", m.model.as_str()),
                        &e.calibration_table
                            .iter()
                            .map(|b| (b.predicted, b.observed, b.n))
                            .collect::<Vec<_>>()
                    )
                );
                for b in &e.calibration_table {
                    let _ = write!(
                        h,
                        "<tr><td>{:.1}–{:.1}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                        b.lo, b.hi, b.n, b.predicted, b.observed
                    );
                }
                h.push_str("</table></div>");
            }

            h.push_str("<h2>Governance</h2><p class=\"note\">Every prediction is recorded with its eventual outcome. Precision at the threshold counts flagged predictions whose outcome is known; acceptance and overrides count approval requests on predicted cases; drift is the population stability index of each input against training (under 0.1 stable, over 0.25 shifted).</p>");
            h.push_str("<table><tr><th>model</th><th>predictions</th><th>flagged</th><th>outcomes known</th><th>true positives</th><th>false positives</th><th>precision at threshold</th><th>cases</th><th>accepted</th><th>overridden</th><th>dismissed</th><th>acceptance</th><th>override rate</th></tr>");
            for m in &models {
                let g = &m.governance;
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                    m.model.as_str(),
                    g.counts.predictions,
                    g.counts.flagged,
                    g.counts.outcomes_known,
                    g.counts.true_positives,
                    g.counts.false_positives,
                    g.precision_at_threshold
                        .map(|p| format!("{p:.3}"))
                        .unwrap_or_else(|| "not yet known".into()),
                    g.cases,
                    g.accepted,
                    g.overridden,
                    g.dismissed,
                    g.acceptance_rate,
                    g.override_rate
                );
            }
            h.push_str("</table><div class=\"flex\">");
            for m in &models {
                let rows: Vec<(String, f64)> =
                    m.drift.iter().map(|d| (d.feature.clone(), d.psi)).collect();
                let _ = write!(
                    h,
                    "<div><h3>{} input drift (PSI)</h3>{}</div>",
                    m.model.as_str(),
                    bar_chart(&format!("{} drift", m.model.as_str()), &rows)
                );
            }
            h.push_str("</div>");
        }

        // Trends.
        h.push_str("<h2>Trends</h2>");
        let by_kind = self.trends(TrendBy::Kind, 365, Bucket::Week).await?;
        let _ = write!(
            h,
            "<h3>Exceptions detected per week, by kind (365 days)</h3>{}",
            trend_chart("exceptions per week by kind", &by_kind)
        );
        h.push_str("<div class=\"flex\">");
        for (by, name) in [
            (TrendBy::Customer, "customer"),
            (TrendBy::Supplier, "supplier"),
            (TrendBy::Warehouse, "warehouse"),
            (TrendBy::Route, "route"),
        ] {
            let t = self.trends(by, 90, Bucket::Week).await?;
            let _ = write!(
                h,
                "<div><h3>Exceptions by {name}, last 90 days (largest {})</h3>{}</div>",
                t.series.len(),
                bar_chart(&format!("exceptions by {name}"), &totals(&t))
            );
        }
        h.push_str("</div>");

        // Backlog.
        let b = self.backlog().await?;
        h.push_str("<h2>Backlog and cycle time</h2>");
        let labels: Vec<String> = b.daily.iter().map(|d| d.date.clone()).collect();
        let _ = write!(
            h,
            "{}",
            line_chart(
                "backlog, last 30 days",
                &labels,
                &[
                    (
                        "opened".into(),
                        b.daily.iter().map(|d| d.opened as f64).collect()
                    ),
                    (
                        "closed".into(),
                        b.daily.iter().map(|d| d.closed as f64).collect()
                    ),
                    (
                        "open".into(),
                        b.daily.iter().map(|d| d.open as f64).collect()
                    ),
                ]
            )
        );
        h.push_str(
            "<table><tr><th>kind</th><th>open</th><th>cycle time p50 (h)</th><th>p90 (h)</th></tr>",
        );
        for c in &b.cycle_time_hours {
            let open = b
                .open_by_kind
                .iter()
                .find(|o| o.kind == c.kind)
                .map(|o| o.count)
                .unwrap_or(0);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{open}</td><td>{:.1}</td><td>{:.1}</td></tr>",
                esc(&c.kind),
                c.p50,
                c.p90
            );
        }
        h.push_str("</table>");

        // At risk.
        h.push_str("<h2>Revenue and margin at risk this month</h2><div class=\"flex\">");
        for (by, name) in [
            (RiskBy::Customer, "customer"),
            (RiskBy::Supplier, "supplier"),
            (RiskBy::Warehouse, "warehouse"),
        ] {
            let r = self.at_risk(by, 10).await?;
            let rows: Vec<(String, f64)> = r
                .rows
                .iter()
                .map(|x| (x.label.clone(), x.revenue_at_risk.to_f64().unwrap_or(0.0)))
                .collect();
            let _ = write!(
                h,
                "<div><h3>By {name} ({})</h3>{}<table><tr><th>{name}</th><th>revenue</th><th>margin</th><th>cases</th></tr>",
                esc(&r.currency),
                bar_chart(&format!("revenue at risk by {name}"), &rows)
            );
            for x in &r.rows {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&x.label),
                    x.revenue_at_risk,
                    x.margin_at_risk,
                    x.cases
                );
            }
            h.push_str("</table></div>");
        }
        h.push_str("</div>");

        // Repeated changes and recommendations.
        h.push_str("<h2>Key accounts that change their orders</h2><table><tr><th>customer</th><th>tier</th><th>past orders</th><th>changed</th><th>changes per changed order</th><th>days to first change (median)</th><th>open orders</th><th>changes, last 30 days</th><th>most changed</th></tr>");
        for c in self.change_patterns(15).await? {
            let _ = write!(
                h,
                "<tr><td>{} ({})</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.2}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.label),
                esc(&c.key),
                esc(&c.tier),
                c.past_orders,
                c.changed_share * 100.0,
                c.changes_per_changed_order,
                c.median_days_to_first_change,
                c.open_orders,
                c.recent_changes,
                esc(c.top_field.as_deref().unwrap_or("—"))
            );
        }
        h.push_str("</table><h2>Recommendations: accepted and overridden</h2><table><tr><th>kind</th><th>proposed</th><th>accepted</th><th>overridden</th><th>dismissed</th><th>acceptance</th><th>override rate</th></tr>");
        for r in self.recommendation_stats().await? {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                esc(&r.kind),
                r.proposed,
                r.accepted,
                r.overridden,
                r.dismissed,
                r.acceptance_rate,
                r.override_rate
            );
        }
        h.push_str("</table></body></html>\n");
        Ok(h)
    }
}
