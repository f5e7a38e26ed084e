//! From predictions to predicted exceptions: a prediction at or above its policy
//! threshold (`predictions.toml`) becomes an exception of the matching kind, flagged
//! `predicted`, with the calibrated probability as its confidence, the strongest
//! contributing factors as evidence, and recommendations that act before the problem
//! happens. A present condition on the same line, purchase line, customer or order wins:
//! it is already in the queue, so no prediction is added beside it.

use std::collections::HashSet;

use rust_decimal::Decimal;

use super::features::Subject;
use super::{Factor, ModelKind, Models, Prediction, TrainedModel};
use crate::core::detectors::{base, ev, impact, line_ref, margin_on, policy_ev, push, rec};
use crate::core::{Action, Context, Exception, Kind};
use crate::domain::Ix;
use crate::policy::Predictions;

/// Most factors listed per predicted exception.
pub const MAX_FACTORS: usize = 3;

/// The threshold of a model under the policy.
pub fn threshold(p: &Predictions, kind: ModelKind) -> f64 {
    match kind {
        ModelKind::LateFulfillment => p.late_fulfillment.threshold,
        ModelKind::SupplierDelay => p.supplier_delay.threshold,
        ModelKind::CreditHold => p.credit_hold.threshold,
        ModelKind::OrderChange => p.order_change.threshold,
    }
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// A factor in words.
pub fn describe(f: &Factor) -> String {
    let v = f.value;
    match f.feature.as_str() {
        "stock_shortage" => format!("stock covered only {} of the quantity", pct(1.0 - v)),
        "shortage_x_supplier_late_rate" => {
            "short of stock, and its supplier is often late".to_string()
        }
        "supplier_late_rate" => format!("the supplier delivered {} of past lines late", pct(v)),
        "carrier_late_rate" => format!("the carrier delivered {} of past lines late", pct(v)),
        "warehouse_late_rate" => format!("the warehouse shipped {} of past lines late", pct(v)),
        "lead_days" => format!("{v:.0} days between order and promise"),
        "peak_season" => "due in a peak month (August, December)".to_string(),
        "log_value" => format!("value {:.0}", v.exp() - 1.0),
        "unconfirmed_after_4_days" => "the supplier has not confirmed it within 4 days".to_string(),
        "lunar_new_year_asia" => "planned to arrive during the Lunar New Year closures".to_string(),
        "log_qty" => format!("{:.0} units", v.exp() * 100.0),
        "late_share_120d" => format!("paid {} of invoices late in the last 120 days", pct(v)),
        "avg_days_late_120d" => format!("{v:.0} days late on average when late"),
        "max_days_overdue" => format!("oldest open invoice {v:.0} days overdue"),
        "receivables_to_monthly_billing" => format!("open receivables {v:.1} × monthly billing"),
        "payment_terms_days" => format!("{v:.0}-day payment terms"),
        "jan_feb" => "January or February, when cash is tight after year end".to_string(),
        "customer_change_rate" => format!("changed {} of past orders", pct(v)),
        "lines" => format!("{v:.0} lines"),
        "holiday_season" => "ordered in November or December".to_string(),
        other => format!("{other} = {v:.3}"),
    }
}

/// Ask the supplier of a purchase line to expedite it.
fn expedite(
    ctx: &Context,
    b: &crate::domain::InboundLine,
    supplier: &str,
    summary: String,
) -> crate::core::Recommendation {
    rec(
        ctx,
        Action::ExpeditePurchase {
            po_ref: b.po_ref.clone(),
            line: b.id,
            supplier: supplier.to_string(),
            message: None,
        },
        summary,
        vec!["expedited freight costs more".to_string()],
    )
}

fn model_ref(m: &TrainedModel) -> String {
    format!("models/{}@{}", m.kind.as_str(), m.version)
}

/// Append the predicted exceptions for `predictions` to `out` (which holds the scan's
/// present exceptions).
pub fn append(
    ctx: &Context,
    out: &mut Vec<Exception>,
    predictions: &[Prediction],
    models: &Models,
    policy: &Predictions,
) {
    // What the present conditions already cover.
    let mut lines: HashSet<i64> = HashSet::new();
    let mut orders_late: HashSet<String> = HashSet::new();
    let mut purchases: HashSet<(String, Option<String>)> = HashSet::new();
    let mut held: HashSet<String> = HashSet::new();
    let mut changing: HashSet<String> = HashSet::new();
    for e in out.iter() {
        match e.kind {
            Kind::StockShortage | Kind::AllocationConflict | Kind::ShipmentDelay => {
                if let Some(l) = e.line_id {
                    lines.insert(l);
                }
                if e.kind == Kind::ShipmentDelay {
                    orders_late.insert(e.order_ref.clone());
                }
            }
            Kind::SupplierDelay => {
                purchases.insert((e.order_ref.clone(), e.product.clone()));
                // On a sales line (the line waits for a purchase planned too late): the
                // line is already known to be late.
                if e.line.is_some()
                    && let Some(l) = e.line_id
                {
                    lines.insert(l);
                }
            }
            Kind::CreditHold => {
                held.insert(e.customer.clone());
            }
            Kind::RepeatedChanges => {
                changing.insert(e.order_ref.clone());
            }
            _ => {}
        }
    }
    for p in predictions {
        let Some(m) = models.get(p.kind) else {
            continue;
        };
        let t = threshold(policy, p.kind);
        if p.probability < t {
            continue;
        }
        let factors = m.model.explain(&p.x, MAX_FACTORS);
        let e = match p.subject {
            Subject::Line(li) => late_line(ctx, li, p, m, t, &factors, &lines, &orders_late),
            Subject::Purchase(bi) => supplier_line(ctx, bi, p, m, t, &factors, &purchases),
            Subject::Customer(ci) => credit(ctx, ci, p, m, t, &factors, &held),
            Subject::Order(oi) => change(ctx, oi, p, m, t, &factors, &changing),
        };
        if let Some(e) = e {
            push(out, e);
        }
    }
}

/// The common evidence: the probability against the threshold, then the factors.
fn explain_into(
    ctx: &Context,
    e: &mut Exception,
    p: &Prediction,
    m: &TrainedModel,
    t: f64,
    factors: &[Factor],
) {
    e.predicted = true;
    e.confidence = p.probability;
    e.evidence.push(ev(
        format!(
            "model {} v{} gives {} (hold-out AUC {:.2}, baseline {:.2})",
            m.kind.as_str(),
            m.version,
            pct(p.probability),
            m.evaluation.auc,
            m.evaluation.baseline_auc
        ),
        "model",
        0,
        model_ref(m),
    ));
    for f in factors {
        e.evidence.push(ev(
            format!(
                "{} (adds {:.2} to the log-odds)",
                describe(f),
                f.contribution
            ),
            "model",
            0,
            format!("{}#{}", model_ref(m), f.feature),
        ));
    }
    e.evidence.push(policy_ev(
        ctx,
        &format!("predictions.{}.threshold", m.kind.as_str()),
        format!(
            "predictions at or above {} become predicted exceptions",
            pct(t)
        ),
    ));
}

#[allow(clippy::too_many_arguments)]
fn late_line(
    ctx: &Context,
    li: Ix,
    p: &Prediction,
    m: &TrainedModel,
    t: f64,
    factors: &[Factor],
    covered: &HashSet<i64>,
    orders_late: &HashSet<String>,
) -> Option<Exception> {
    let s = ctx.snap;
    let l = s.lines.get(li as usize)?;
    let o = s.orders.get(l.order as usize)?;
    if covered.contains(&l.id) || orders_late.contains(&o.name) {
        return None;
    }
    let open = ctx.open.get(li as usize).copied().unwrap_or(l.open_qty());
    let product = s.products.get(l.product as usize)?;
    let wh = s.warehouses.get(o.warehouse as usize)?;
    let need = ctx
        .need_by
        .get(li as usize)
        .copied()
        .unwrap_or(o.date_order);
    let revenue = open * l.net_price();
    let mut e = base(
        ctx,
        Kind::ShipmentDelay,
        &["predicted", &o.name, &l.id.to_string()],
        o,
        Some(l),
        format!(
            "{} likely to arrive late ({})",
            line_ref(o, l),
            pct(p.probability)
        ),
        format!("predictions.{}.threshold", m.kind.as_str()),
        impact(ctx, o, revenue, margin_on(ctx, l, open), 0),
    );
    explain_into(ctx, &mut e, p, m, t, factors);
    // Act on the cause: stock first (another warehouse, then the inbound), then the customer.
    let n_wh = s.warehouses.len().max(1);
    let donor = (0..n_wh)
        .filter(|&w| w != o.warehouse as usize)
        .find_map(|w| {
            let (on, res, _) = ctx.stock.get(l.product as usize * n_wh + w)?;
            (*on - *res >= open && open > Decimal::ZERO).then_some(w)
        });
    if let Some(w) = donor.and_then(|w| s.warehouses.get(w)) {
        e.recommendations.push(rec(
            ctx,
            Action::Transfer {
                product: product.sku.clone(),
                qty: open,
                from_warehouse: w.code.clone(),
                to_warehouse: wh.code.clone(),
            },
            format!(
                "Move {} × {} from {} to {} now",
                open, product.sku, w.code, wh.code
            ),
            vec![format!("transfer takes about {} h", wh.transfer_hours)],
        ));
    }
    if let Some(b) = s.inbound.iter().find(|b| {
        b.product == l.product && b.warehouse == o.warehouse && b.open_qty() > Decimal::ZERO
    }) && let Some(sup) = s.suppliers.get(b.supplier as usize)
    {
        e.recommendations.push(expedite(
            ctx,
            b,
            &sup.name,
            format!(
                "Ask {} to expedite {} before it is needed",
                sup.name, b.po_ref
            ),
        ));
    }
    e.recommendations.push(rec(
        ctx,
        Action::ContactCustomer {
            order: o.name.clone(),
            purpose: format!(
                "confirm the delivery of {} due {} and warn of a possible delay",
                product.sku,
                need.format("%Y-%m-%d")
            ),
            message: None,
        },
        "Warn the customer early that the delivery may slip".to_string(),
        vec!["the delay is a prediction; it may not happen".to_string()],
    ));
    Some(e)
}

fn supplier_line(
    ctx: &Context,
    bi: Ix,
    p: &Prediction,
    m: &TrainedModel,
    t: f64,
    factors: &[Factor],
    covered: &HashSet<(String, Option<String>)>,
) -> Option<Exception> {
    let s = ctx.snap;
    let b = s.inbound.get(bi as usize)?;
    let product = s.products.get(b.product as usize)?;
    let sup = s.suppliers.get(b.supplier as usize)?;
    let wh = s.warehouses.get(b.warehouse as usize)?;
    if covered.contains(&(b.po_ref.clone(), Some(product.sku.clone()))) {
        return None;
    }
    // The open demand of the product in the warehouse that this line would serve.
    let deps = ctx.dependents(bi);
    let mut revenue = Decimal::ZERO;
    let mut margin = Decimal::ZERO;
    let mut related = Vec::new();
    let mut tier = crate::domain::Tier::C;
    for &li in deps {
        let Some(l) = s.lines.get(li as usize) else {
            continue;
        };
        let Some(o) = s.orders.get(l.order as usize) else {
            continue;
        };
        let open = ctx.open.get(li as usize).copied().unwrap_or_default();
        revenue += open * l.net_price();
        margin += margin_on(ctx, l, open);
        if let Some(c) = s.customers.get(o.customer as usize) {
            tier = tier.min(c.tier);
        }
        if !related.contains(&o.name) {
            related.push(o.name.clone());
        }
    }
    let mut e = crate::core::detectors::bare(
        ctx,
        Kind::SupplierDelay,
        &["predicted", &b.po_ref, &b.id.to_string()],
        b.po_ref.clone(),
        format!(
            "{} ({}) likely to slip ({})",
            b.po_ref,
            product.sku,
            pct(p.probability)
        ),
        format!("predictions.{}.threshold", m.kind.as_str()),
        crate::core::Impact {
            revenue_at_risk: revenue.round_dp(2),
            margin_at_risk: margin.round_dp(2),
            hours_past_promise: 0,
            tier,
        },
    );
    e.customer = sup.name.clone();
    e.warehouse = Some(wh.code.clone());
    e.product = Some(product.sku.clone());
    e.line_id = Some(b.id);
    e.related_orders = related;
    explain_into(ctx, &mut e, p, m, t, factors);
    e.recommendations.push(expedite(
        ctx,
        b,
        &sup.name,
        format!(
            "Confirm the date with {} now and ask to expedite {}",
            sup.name, b.po_ref
        ),
    ));
    e.recommendations.push(rec(
        ctx,
        Action::ResourcePurchase {
            product: product.sku.clone(),
            qty: b.open_qty(),
            warehouse: wh.code.clone(),
        },
        format!(
            "Line up a second source for {} × {}",
            b.open_qty(),
            product.sku
        ),
        vec![
            "higher unit cost than the contracted supplier".to_string(),
            format!("{} may still arrive on time", b.po_ref),
        ],
    ));
    Some(e)
}

fn credit(
    ctx: &Context,
    ci: Ix,
    p: &Prediction,
    m: &TrainedModel,
    t: f64,
    factors: &[Factor],
    held: &HashSet<String>,
) -> Option<Exception> {
    let s = ctx.snap;
    let c = s.customers.get(ci as usize)?;
    if held.contains(&c.name) {
        return None;
    }
    let pos = ctx.credit.get(ci as usize)?;
    // The customer's largest open order carries the case.
    let (oi, value) = pos
        .open_orders
        .iter()
        .filter_map(|&oi| Some((oi, *ctx.order_open_value.get(oi as usize)?)))
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))?;
    let o = s.orders.get(oi as usize)?;
    let exposure: Decimal = pos
        .open_orders
        .iter()
        .filter_map(|&oi| ctx.order_uninvoiced.get(oi as usize))
        .copied()
        .sum();
    let mut e = base(
        ctx,
        Kind::CreditHold,
        &["predicted", &c.reference],
        o,
        None,
        format!(
            "{} likely to go on credit hold within 30 days ({})",
            c.name,
            pct(p.probability)
        ),
        format!("predictions.{}.threshold", m.kind.as_str()),
        impact(ctx, o, exposure.max(value), Decimal::ZERO, 0),
    );
    explain_into(ctx, &mut e, p, m, t, factors);
    e.recommendations.push(rec(
        ctx,
        Action::ContactCustomer {
            order: o.name.clone(),
            purpose: "remind the customer of the invoices falling due and agree a payment date"
                .to_string(),
            message: None,
        },
        format!(
            "Call {} about payment before their orders are blocked",
            c.name
        ),
        vec!["a reminder before anything is overdue; the hold may not come".to_string()],
    ));
    e.recommendations.push(rec(
        ctx,
        Action::RouteForApproval {
            order: o.name.clone(),
            role: "finance".to_string(),
        },
        "Ask finance to review the account's credit now".to_string(),
        vec!["may delay the customer's next orders".to_string()],
    ));
    Some(e)
}

fn change(
    ctx: &Context,
    oi: Ix,
    p: &Prediction,
    m: &TrainedModel,
    t: f64,
    factors: &[Factor],
    changing: &HashSet<String>,
) -> Option<Exception> {
    let s = ctx.snap;
    let o = s.orders.get(oi as usize)?;
    if changing.contains(&o.name) {
        return None;
    }
    let value = ctx
        .order_open_value
        .get(oi as usize)
        .copied()
        .unwrap_or_default();
    let mut e = base(
        ctx,
        Kind::RepeatedChanges,
        &["predicted", &o.name],
        o,
        None,
        format!(
            "{} likely to be changed by the customer ({})",
            o.name,
            pct(p.probability)
        ),
        format!("predictions.{}.threshold", m.kind.as_str()),
        impact(ctx, o, value, Decimal::ZERO, 0),
    );
    explain_into(ctx, &mut e, p, m, t, factors);
    e.recommendations.push(rec(
        ctx,
        Action::ContactCustomer {
            order: o.name.clone(),
            purpose: "confirm quantities and dates before the order is picked".to_string(),
            message: None,
        },
        "Confirm the order with the buyer before picking".to_string(),
        vec!["one more contact with the customer; saves re-picking if they change it".to_string()],
    ));
    Some(e)
}

/// How a subject is named in records and evidence: `S00042/3`, `P00017#60012`,
/// `C00012`, `S00042`.
pub fn subject_ref(s: &crate::domain::Snapshot, subject: Subject) -> Option<String> {
    Some(match subject {
        Subject::Line(li) => {
            let l = s.lines.get(li as usize)?;
            line_ref(s.orders.get(l.order as usize)?, l)
        }
        Subject::Purchase(bi) => {
            let b = s.inbound.get(bi as usize)?;
            format!("{}#{}", b.po_ref, b.id)
        }
        Subject::Customer(ci) => s.customers.get(ci as usize)?.reference.clone(),
        Subject::Order(oi) => s.orders.get(oi as usize)?.name.clone(),
    })
}

/// The stable id the predicted exception of a subject gets (whether or not it is raised).
pub fn exception_id(s: &crate::domain::Snapshot, subject: Subject) -> Option<String> {
    use crate::core::stable_id;
    Some(match subject {
        Subject::Line(li) => {
            let l = s.lines.get(li as usize)?;
            let o = s.orders.get(l.order as usize)?;
            stable_id("shipment_delay", &["predicted", &o.name, &l.id.to_string()])
        }
        Subject::Purchase(bi) => {
            let b = s.inbound.get(bi as usize)?;
            stable_id(
                "supplier_delay",
                &["predicted", &b.po_ref, &b.id.to_string()],
            )
        }
        Subject::Customer(ci) => stable_id(
            "credit_hold",
            &["predicted", &s.customers.get(ci as usize)?.reference],
        ),
        Subject::Order(oi) => stable_id(
            "repeated_changes",
            &["predicted", &s.orders.get(oi as usize)?.name],
        ),
    })
}
