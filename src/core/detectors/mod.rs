//! One detector per exception kind, each a pure function of the scan [`Context`] that
//! appends exceptions. Shared here: building an exception's common fields from an order
//! (customer, tier, routing, policy version), evidence and recommendation constructors.

mod allocation;
mod changes;
mod credit;
pub mod custom;
mod documents;
mod price;
mod shipment;
mod shortage;
mod supplier;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::context::Context;
use super::exception::{
    Action, Evidence, Exception, Impact, Kind, Recommendation, SourceRef, stable_id,
};
use super::fmt::Day;
use crate::domain::{OrderLine, SalesOrder, SourceId, Tier};
use crate::policy::{Route, Severity};

/// A detector: appends the exceptions it finds.
type Detector = fn(&Context, &mut Vec<Exception>);

/// Every detector with its kind name and the thread (0 or 1) it runs on, built-in kinds
/// first, then custom rules. The two lanes are balanced by their measured times at 100,000
/// lines (about half the detector time each).
const DETECTORS: &[(&str, u8, Detector)] = &[
    ("stock_shortage", 1, shortage::detect),
    ("allocation_conflict", 1, allocation::detect),
    ("price_mismatch", 0, price::detect),
    ("credit_hold", 0, credit::detect),
    ("shipment_delay", 0, shipment::detect),
    ("supplier_delay", 1, supplier::detect),
    ("missing_documents", 0, documents::detect),
    ("repeated_changes", 1, changes::detect),
    ("custom_rules", 1, custom::detect),
];

/// Run every detector, on two threads (detectors only read the context); `done` is told
/// the name of each one as it finishes (the bench uses it to time them; the core itself
/// never reads a clock). Lane 1's exceptions follow lane 0's; ranking orders them anyway.
pub fn run_all(ctx: &Context, out: &mut Vec<Exception>, done: &(dyn Fn(&'static str) + Sync)) {
    let lane = |n: u8, out: &mut Vec<Exception>| {
        for (name, _, detect) in DETECTORS.iter().filter(|d| d.1 == n) {
            detect(ctx, out);
            done(name);
        }
    };
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            let mut v = Vec::with_capacity(ctx.open_lines.len() / 8 + 64);
            lane(1, &mut v);
            v
        });
        lane(0, out);
        match other.join() {
            Ok(v) => out.extend(v),
            // Detectors do not panic (clippy denies it; robustness tests corrupt
            // snapshots); should one, re-raise it on this thread.
            Err(e) => std::panic::resume_unwind(e),
        }
    });
}

/// Append a finished exception, first dropping the spare capacity of its evidence and
/// recommendations. They are pushed one by one, so their capacity runs ahead of what they
/// hold (one recommendation takes room for four); at a million lines that slack is a
/// sizeable part of the scan's memory. `shrink_to_fit` is not enough: the allocator keeps
/// a block that shrinks by less than half where it is. Moving the few elements into an
/// exact allocation costs a small copy, and the freed block is reused for the next one.
pub(crate) fn push(out: &mut Vec<Exception>, mut e: Exception) {
    compact(&mut e.evidence);
    compact(&mut e.recommendations);
    out.push(e);
}

fn compact<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() {
        let mut exact = Vec::with_capacity(v.len());
        exact.append(v);
        *v = exact;
    }
}

/// A fact with its source record.
pub(crate) fn ev(
    fact: String,
    model: &'static str,
    id: SourceId,
    reference: impl Into<String>,
) -> Evidence {
    Evidence {
        fact,
        source: SourceRef {
            model: std::borrow::Cow::Borrowed(model),
            id,
            reference: reference.into(),
        },
    }
}

/// The policy clause that fired, as evidence.
pub(crate) fn policy_ev(ctx: &Context, key: &str, fact: String) -> Evidence {
    let section = key.split('.').next().unwrap_or(key);
    let file = ctx
        .policy
        .sources
        .get(section)
        .cloned()
        .unwrap_or_else(|| "policies".to_string());
    ev(fact, "policy", 0, crate::text!(file, '#', key))
}

/// A recommendation with the approver roles the policy names for its action.
pub(crate) fn rec(
    ctx: &Context,
    action: Action,
    summary: String,
    tradeoffs: Vec<String>,
) -> Recommendation {
    let approver_roles = ctx.policy.approvers(action.name()).to_vec();
    Recommendation {
        action,
        summary,
        tradeoffs,
        approver_roles,
    }
}

/// Line reference as users see it (`S00042/3`).
pub(crate) fn line_ref(order: &SalesOrder, line: &OrderLine) -> String {
    crate::text!(order.name, '/', line.seq)
}

/// A date for evidence text (`2026-12-01`), formatted without allocating.
pub(crate) fn day(t: DateTime<Utc>) -> Day {
    Day(t)
}

/// Margin at risk on a quantity of a line (zero when cost is unknown or margin negative).
pub(crate) fn margin_on(ctx: &Context, line: &OrderLine, qty: Decimal) -> Decimal {
    match ctx
        .snap
        .products
        .get(line.product as usize)
        .and_then(|p| p.cost)
    {
        Some(cost) => ((line.net_price() - cost) * qty).max(Decimal::ZERO),
        None => Decimal::ZERO,
    }
}

/// The common fields of an exception about an order (and optionally one of its lines).
/// Score, severity and escalation are filled in by `score::finish`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn base(
    ctx: &Context,
    kind: Kind,
    key: &[&str],
    order: &SalesOrder,
    line: Option<&OrderLine>,
    title: String,
    policy_rule: String,
    impact: Impact,
) -> Exception {
    let snap = ctx.snap;
    let customer = snap.customers.get(order.customer as usize);
    let mut e = bare(
        ctx,
        kind,
        key,
        order.name.clone(),
        title,
        policy_rule,
        impact,
    );
    e.line = line.map(|l| l.seq);
    e.line_id = line.map(|l| l.id);
    e.customer = customer.map(|c| c.name.clone()).unwrap_or_default();
    e.warehouse = snap
        .warehouses
        .get(order.warehouse as usize)
        .map(|w| w.code.clone());
    e.product = line
        .and_then(|l| snap.products.get(l.product as usize))
        .map(|p| p.sku.clone());
    e
}

/// An exception with only its identity, routing and policy filled in.
pub(crate) fn bare(
    ctx: &Context,
    kind: Kind,
    key: &[&str],
    order_ref: String,
    title: String,
    policy_rule: String,
    impact: Impact,
) -> Exception {
    let route = route_for(ctx, &kind);
    Exception {
        id: stable_id(kind.as_str(), key),
        title,
        order_ref,
        line: None,
        line_id: None,
        related_orders: Vec::new(),
        customer: String::new(),
        tier: impact.tier,
        warehouse: None,
        product: None,
        impact,
        score: 0,
        severity: Severity::Low,
        confidence: 1.0,
        owner_role: route
            .map(|r| r.owner.clone())
            .unwrap_or_else(|| "admin".to_string()),
        escalation: None,
        evidence: Vec::new(),
        policy_rule,
        policy_version: ctx.policy.version.clone(),
        recommendations: Vec::new(),
        predicted: false,
        kind,
    }
}

/// Routing for a kind: built-in kinds from `routing`, custom ones from their rule.
pub(crate) fn route_for<'p>(ctx: &Context<'p>, kind: &Kind) -> Option<&'p Route> {
    match kind {
        Kind::Custom(name) => ctx
            .policy
            .rules
            .iter()
            .find(|r| &r.name == name)
            .map(|r| &r.route),
        k => ctx.policy.route(k.as_str()),
    }
}

/// Impact for a customer tier with the given amounts.
pub(crate) fn impact(
    ctx: &Context,
    order: &SalesOrder,
    revenue: Decimal,
    margin: Decimal,
    hours: i64,
) -> Impact {
    Impact {
        revenue_at_risk: revenue.round_dp(2),
        margin_at_risk: margin.round_dp(2),
        hours_past_promise: hours.max(0),
        tier: ctx
            .snap
            .customers
            .get(order.customer as usize)
            .map(|c| c.tier)
            .unwrap_or(Tier::C),
    }
}
