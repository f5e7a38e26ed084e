//! Explain one order: everything that blocks or threatens it, why (evidence), who owns it
//! and what the options are — plus the state of each of its lines (how much stock and
//! inbound covers it) and any data-quality findings about it.

use crate::core::fmt::Num;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Context, Exception, Kind, ScanResult};
use crate::domain::{DataQualityFinding, Snapshot};
use crate::policy::Policy;

/// Why an order could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// No order has that reference.
    #[error("no order {reference} in {source_name}{}", suggest(.suggestions))]
    UnknownOrder {
        /// What was asked for.
        reference: String,
        /// Where we looked.
        source_name: String,
        /// Close matches.
        suggestions: Vec<String>,
    },
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

/// One line of the order and how it is covered.
#[derive(Debug, Clone, Serialize)]
pub struct LineStatus {
    /// Position in the order.
    pub seq: u32,
    /// Product SKU.
    pub product: String,
    /// Ordered quantity.
    pub qty: Decimal,
    /// Left to deliver.
    pub open_qty: Decimal,
    /// Reserved now.
    pub reserved: Decimal,
    /// Covered from stock on hand.
    pub from_stock: Decimal,
    /// Covered from inbound by the need date.
    pub from_inbound: Decimal,
    /// Not covered by the need date.
    pub short: Decimal,
    /// When it is needed.
    pub need_by: DateTime<Utc>,
    /// When the short part arrives, if known.
    pub eta: Option<DateTime<Utc>>,
    /// Net unit price.
    pub net_price: Decimal,
}

/// Overall state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Something stops it from shipping (shortage, credit hold, missing shipping documents).
    Blocked,
    /// It can ship but something threatens the promise or the deal.
    AtRisk,
    /// Nothing found.
    Clear,
}

/// Everything known about one order.
#[derive(Debug, Clone, Serialize)]
pub struct OrderExplanation {
    /// Order reference.
    pub order: String,
    /// Overall status.
    pub status: OrderStatus,
    /// Customer name.
    pub customer: String,
    /// Customer tier.
    pub tier: String,
    /// Odoo state.
    pub state: String,
    /// Warehouse code.
    pub warehouse: String,
    /// Order date.
    pub date_order: DateTime<Utc>,
    /// Promised date.
    pub promised: Option<DateTime<Utc>>,
    /// Undelivered value.
    pub open_value: Decimal,
    /// Currency.
    pub currency: String,
    /// Lines.
    pub lines: Vec<LineStatus>,
    /// Exceptions about this order, highest score first.
    pub exceptions: Vec<Exception>,
    /// Roles that own them.
    pub owners: Vec<String>,
    /// Data-quality findings about this order.
    pub findings: Vec<DataQualityFinding>,
    /// Policy version.
    pub policy_version: String,
}

/// Explain an order from a scan of the same snapshot.
pub fn explain(
    snap: &Snapshot,
    policy: &Policy,
    scan: &ScanResult,
    reference: &str,
) -> Result<OrderExplanation, ExplainError> {
    let reference = reference.trim();
    let Some((_, order)) = snap.order_by_name(reference) else {
        return Err(ExplainError::UnknownOrder {
            reference: reference.to_string(),
            source_name: snap.source.clone(),
            suggestions: similar(snap, reference),
        });
    };
    let (ctx, _) = Context::new(snap, policy, scan.now);
    let lines = snap
        .order_lines(order)
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let li = order.first_line + k as u32;
            let cov = ctx.coverage(li).cloned().unwrap_or_default();
            LineStatus {
                seq: l.seq,
                product: snap
                    .products
                    .get(l.product as usize)
                    .map(|p| p.sku.clone())
                    .unwrap_or_default(),
                qty: l.qty,
                open_qty: l.open_qty(),
                reserved: l.qty_reserved,
                from_stock: cov.from_stock,
                from_inbound: cov.from_inbound,
                short: cov.short,
                need_by: ctx.need(li),
                eta: cov.eta,
                net_price: l.net_price().round_dp(2),
            }
        })
        .collect();
    let name = order.name.as_str();
    let exceptions: Vec<Exception> = scan
        .exceptions
        .iter()
        .filter(|e| e.order_ref == name || e.related_orders.iter().any(|r| r == name))
        .cloned()
        .collect();
    let blocking = |k: &Kind| {
        matches!(
            k,
            Kind::StockShortage
                | Kind::AllocationConflict
                | Kind::CreditHold
                | Kind::MissingDocuments
        )
    };
    let status = if exceptions
        .iter()
        .any(|e| blocking(&e.kind) && e.order_ref == name)
    {
        OrderStatus::Blocked
    } else if exceptions.is_empty() {
        OrderStatus::Clear
    } else {
        OrderStatus::AtRisk
    };
    let mut owners: Vec<String> = exceptions.iter().map(|e| e.owner_role.clone()).collect();
    owners.sort();
    owners.dedup();
    let prefix = format!("{name}/");
    let findings = scan
        .findings
        .iter()
        .filter(|f| f.record == name || f.record.starts_with(&prefix))
        .cloned()
        .collect();
    let customer = snap.customers.get(order.customer as usize);
    Ok(OrderExplanation {
        order: order.name.clone(),
        status,
        customer: customer.map(|c| c.name.clone()).unwrap_or_default(),
        tier: customer.map(|c| c.tier.to_string()).unwrap_or_default(),
        state: order.state.as_str().to_string(),
        warehouse: snap
            .warehouses
            .get(order.warehouse as usize)
            .map(|w| w.code.clone())
            .unwrap_or_default(),
        date_order: order.date_order,
        promised: order.promised,
        open_value: snap
            .order_lines(order)
            .iter()
            .map(|l| l.open_value())
            .sum::<Decimal>()
            .round_dp(2),
        currency: snap.currency.clone(),
        lines,
        exceptions,
        owners,
        findings,
        policy_version: policy.version.clone(),
    })
}

/// Orders whose number matches the digits asked for (`S42` → `S00042`).
fn similar(snap: &Snapshot, reference: &str) -> Vec<String> {
    let digits: String = reference.chars().filter(|c| c.is_ascii_digit()).collect();
    let Ok(n) = digits.parse::<u64>() else {
        return Vec::new();
    };
    snap.orders
        .iter()
        .filter(|o| {
            let d: String = o.name.chars().filter(|c| c.is_ascii_digit()).collect();
            d.parse::<u64>().is_ok_and(|m| m == n)
        })
        .take(3)
        .map(|o| o.name.clone())
        .collect()
}

/// Render an explanation as readable text.
pub fn render_text(x: &OrderExplanation) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let status = match x.status {
        OrderStatus::Blocked => "BLOCKED",
        OrderStatus::AtRisk => "AT RISK",
        OrderStatus::Clear => "CLEAR",
    };
    let _ = writeln!(s, "{} — {}", x.order, status);
    let _ = writeln!(
        s,
        "Customer {} (tier {}), {} from {}, state {}, ordered {}, promised {}",
        x.customer,
        x.tier,
        fmt_money(x.open_value, &x.currency),
        x.warehouse,
        x.state,
        x.date_order.format("%Y-%m-%d"),
        x.promised
            .map(|p| p.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "—".into())
    );
    let _ = writeln!(s, "\nLines:");
    for l in &x.lines {
        let _ = write!(
            s,
            "  {:>2}. {:<10} {:>6} ordered, {:>6} open, {:>6} reserved; needed {}",
            l.seq,
            l.product,
            Num(l.qty),
            Num(l.open_qty),
            Num(l.reserved),
            l.need_by.format("%Y-%m-%d")
        );
        if l.short > Decimal::ZERO {
            let _ = write!(
                s,
                " — {} short{}",
                Num(l.short),
                l.eta
                    .map(|e| format!(", covered {}", e.format("%Y-%m-%d")))
                    .unwrap_or_else(|| ", no supply in sight".into())
            );
        }
        let _ = writeln!(s);
    }
    if x.exceptions.is_empty() {
        let _ = writeln!(s, "\nNothing blocks or threatens this order.");
    }
    for (i, e) in x.exceptions.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n{}. [{} {}] {} — {}",
            i + 1,
            e.severity.as_str(),
            e.score,
            e.kind,
            e.title
        );
        let _ = writeln!(
            s,
            "   owner: {}{}; confidence {:.0}%; at risk {} revenue, {} margin{}",
            e.owner_role,
            e.escalation
                .as_ref()
                .map(|x| format!(" (escalated to {}: {})", x.to_role, x.reason))
                .unwrap_or_default(),
            e.confidence * 100.0,
            fmt_money(e.impact.revenue_at_risk, &x.currency),
            fmt_money(e.impact.margin_at_risk, &x.currency),
            if e.impact.hours_past_promise > 0 {
                format!(", {} h past the promise", e.impact.hours_past_promise)
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "   why:");
        for ev in &e.evidence {
            let _ = writeln!(
                s,
                "     - {} [{} {}]",
                ev.fact, ev.source.model, ev.source.reference
            );
        }
        if !e.recommendations.is_empty() {
            let _ = writeln!(s, "   options:");
            for (k, r) in e.recommendations.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "     {}) {} — approval: {}",
                    k + 1,
                    r.summary,
                    r.approver_roles.join(" or ")
                );
                for t in &r.tradeoffs {
                    let _ = writeln!(s, "        · {t}");
                }
            }
        }
        let _ = writeln!(
            s,
            "   rule: {} (policy {})",
            e.policy_rule, e.policy_version
        );
    }
    if !x.findings.is_empty() {
        let _ = writeln!(s, "\nData quality:");
        for f in &x.findings {
            let _ = writeln!(s, "  - {}", f.message);
        }
    }
    s
}

/// `12,345.67 EUR`.
pub fn fmt_money(v: Decimal, currency: &str) -> String {
    let v = v.round_dp(2);
    let neg = v < Decimal::ZERO;
    let abs = v.abs();
    let int = abs.trunc().to_string();
    let frac = ((abs - abs.trunc()) * Decimal::ONE_HUNDRED)
        .round()
        .to_string();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!(
        "{}{grouped}.{:0>2} {currency}",
        if neg { "-" } else { "" },
        frac
    )
}
