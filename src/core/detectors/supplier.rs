//! Supplier delay, seen from both sides:
//! - the purchase: an open purchase line that is overdue, whose planned arrival slipped,
//!   or that the supplier has not confirmed in time — with the sales order lines that
//!   depend on it (from the available-to-promise walk), whose value is what is at risk;
//! - the sale: an open sales line whose missing quantity waits for a confirmed purchase
//!   planned after the line's promise — reported on that sales order, with the purchase as
//!   evidence and the shortage's options (transfer, substitute, split, expedite,
//!   reschedule), instead of as a stock shortage: the stock is on order, only too late.

use crate::core::fmt::Num;
use crate::text;
use chrono::Duration;
use rust_decimal::Decimal;

use super::shortage::{HumanHours, human_hours};
use super::{bare, base, day, ev, impact, line_ref, margin_on, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Impact, Kind};
use crate::domain::{InboundLine, Ix, PurchaseState, Supplier, Tier};

/// Affected orders listed by name at most.
const MAX_RELATED: usize = 20;

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    late_purchases(ctx, out);
    orders_waiting(ctx, out);
}

/// Purchase lines late on their own terms (overdue, slipped, unconfirmed).
fn late_purchases(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let t = &ctx.policy.thresholds.supplier_delay;
    for (bi, b) in snap.inbound.iter().enumerate() {
        if b.open_qty() <= Decimal::ZERO {
            continue;
        }
        if b.state == PurchaseState::Sent {
            unanswered_rfq(ctx, b, out);
            continue;
        }
        if b.state != PurchaseState::Purchase {
            continue;
        }
        let (Some(product), Some(wh), Some(supplier)) = (
            snap.products.get(b.product as usize),
            snap.warehouses.get(b.warehouse as usize),
            snap.suppliers.get(b.supplier as usize),
        ) else {
            continue;
        };
        let overdue_h = b
            .planned
            .map(|p| (ctx.now - p).num_hours())
            .filter(|&h| h > 0);
        let slip_days = match (b.original_planned, b.planned) {
            (Some(o), Some(p)) => (p - o).num_days(),
            _ => 0,
        };
        let slipped = slip_days >= i64::from(t.slip_days);
        let unconfirmed = !b.confirmed
            && ctx.now - b.ordered_at > Duration::days(i64::from(t.confirm_within_days));
        if overdue_h.is_none() && !slipped && !unconfirmed {
            continue;
        }
        let rule = if overdue_h.is_some() {
            "thresholds.supplier_delay"
        } else if slipped {
            "thresholds.supplier_delay.slip_days"
        } else {
            "thresholds.supplier_delay.confirm_within_days"
        };

        // Downstream lines and their value.
        let deps = ctx.dependents(bi as u32);
        let mut revenue = Decimal::ZERO;
        let mut margin = Decimal::ZERO;
        let mut hours = overdue_h.unwrap_or(0);
        let mut tier = Tier::C;
        let mut top_customer: Option<String> = None;
        let mut related: Vec<String> = Vec::new();
        for &li in deps {
            let (Some(l), Some(o)) = (snap.lines.get(li as usize), ctx.order_of(li)) else {
                continue;
            };
            revenue += l.open_value();
            margin += margin_on(ctx, l, l.open_qty());
            if let Some(p) = b.planned {
                hours = hours.max((p - ctx.need(li)).num_hours());
            }
            if let Some(c) = snap.customers.get(o.customer as usize)
                && (top_customer.is_none() || c.tier < tier)
            {
                tier = c.tier;
                top_customer = Some(c.name.clone());
            }
            if !related.contains(&o.name) {
                related.push(o.name.clone());
            }
        }
        // The orders the slip makes late: dependents needed before the new planned date.
        let made_late: Vec<(Ix, &str)> = match (slipped, b.planned) {
            (true, Some(p)) => {
                let mut v: Vec<(Ix, &str)> = Vec::new();
                for &li in deps {
                    if ctx.need(li) < p
                        && let Some(o) = ctx.order_of(li)
                        && !v.iter().any(|(_, n)| *n == o.name)
                    {
                        v.push((li, o.name.as_str()));
                    }
                }
                v
            }
            _ => Vec::new(),
        };
        let what = if let Some(h) = overdue_h {
            format!("{} overdue", human_hours(h))
        } else if slipped && !made_late.is_empty() {
            let names: Vec<&str> = made_late.iter().take(3).map(|(_, n)| *n).collect();
            format!(
                "slipped {slip_days} days, now makes {}{} late",
                names.join(", "),
                if made_late.len() > 3 {
                    format!(" and {} more", made_late.len() - 3)
                } else {
                    String::new()
                }
            )
        } else if slipped {
            format!("slipped {slip_days} days")
        } else {
            "not confirmed by the supplier".to_string()
        };
        let title = format!(
            "{} {} × {} from {}: {}{}",
            b.po_ref,
            Num(b.open_qty()),
            product.sku,
            supplier.name,
            what,
            if related.is_empty() {
                String::new()
            } else {
                format!(", {} orders waiting", related.len())
            }
        );
        let mut e = bare(
            ctx,
            Kind::SupplierDelay,
            &[&b.po_ref, &b.id.to_string()],
            b.po_ref.clone(),
            title,
            rule.into(),
            Impact {
                revenue_at_risk: revenue.round_dp(2),
                margin_at_risk: margin.round_dp(2),
                hours_past_promise: hours.max(0),
                tier,
            },
        );
        e.customer = top_customer.unwrap_or_else(|| supplier.name.clone());
        e.warehouse = Some(wh.code.clone());
        e.product = Some(product.sku.clone());
        e.line_id = Some(b.id);
        e.evidence.push(ev(
            format!(
                "{}: {} × {} ordered {} from {} ({}), {} received; planned {}{}",
                b.po_ref,
                Num(b.qty),
                product.sku,
                day(b.ordered_at),
                supplier.name,
                supplier.country,
                Num(b.qty_received),
                b.planned
                    .map(|t| day(t).to_string())
                    .unwrap_or_else(|| "with no date".into()),
                b.original_planned
                    .filter(|_| slip_days != 0)
                    .map(|o| format!(", first planned {}", day(o)))
                    .unwrap_or_default()
            ),
            "purchase.order.line",
            b.id,
            b.po_ref.clone(),
        ));
        e.evidence.push(ev(
            if b.confirmed {
                "the supplier confirmed the line".to_string()
            } else {
                format!(
                    "the supplier has not confirmed the line after {} days",
                    (ctx.now - b.ordered_at).num_days()
                )
            },
            "purchase.order.line",
            b.id,
            b.po_ref.clone(),
        ));
        if let (Some(o), Some(p)) = (b.original_planned.filter(|_| slipped), b.planned) {
            e.evidence.push(ev(
                format!(
                    "{} moved from {} to {} ({slip_days} days later); the store has kept this line's planned date since it was first read",
                    b.po_ref,
                    day(o),
                    day(p)
                ),
                "purchase.order.line",
                b.id,
                b.po_ref.clone(),
            ));
            for &(li, name) in made_late.iter().take(MAX_RELATED) {
                let Some(l) = snap.lines.get(li as usize) else {
                    continue;
                };
                e.evidence.push(ev(
                    format!(
                        "the slip makes {name} late: needed by {}, now arriving {}",
                        day(ctx.need(li)),
                        day(p)
                    ),
                    "sale.order.line",
                    l.id,
                    name.to_string(),
                ));
            }
        }
        if let Some(r) = supplier.on_time_rate {
            e.evidence.push(ev(
                format!(
                    "{} delivered {:.0}% of lines on time in the last year (lead time {} days)",
                    supplier.name,
                    r * 100.0,
                    supplier.lead_time_days
                ),
                "res.partner",
                supplier.id,
                supplier.name.clone(),
            ));
        }
        for &li in deps.iter().take(5) {
            let (Some(l), Some(o)) = (snap.lines.get(li as usize), ctx.order_of(li)) else {
                continue;
            };
            let lref = line_ref(o, l);
            e.evidence.push(ev(
                format!(
                    "{lref} needs {} × {} by {} and waits for this purchase",
                    Num(l.open_qty()),
                    product.sku,
                    day(ctx.need(li))
                ),
                "sale.order.line",
                l.id,
                lref,
            ));
        }
        if deps.len() > 5 {
            e.evidence.push(ev(
                format!("{} more order lines depend on it", deps.len() - 5),
                "purchase.order.line",
                b.id,
                b.po_ref.clone(),
            ));
        }
        e.evidence.push(policy_ev(
            ctx,
            rule,
            format!(
                "purchase lines that are overdue, slip {} days or stay unconfirmed {} days are delays",
                t.slip_days, t.confirm_within_days
            ),
        ));
        related.truncate(MAX_RELATED);
        e.related_orders = related;
        e.confidence = if overdue_h.is_some() {
            0.95
        } else if slipped {
            0.85
        } else {
            0.6 + 0.3 * (1.0 - f64::from(supplier.on_time_rate.unwrap_or(0.5)))
        };
        e.recommendations.push(rec(
            ctx,
            expedite(b, supplier),
            if unconfirmed && overdue_h.is_none() && !slipped {
                format!("Chase {} for a confirmation of {}", supplier.name, b.po_ref)
            } else {
                format!("Ask {} to expedite {}", supplier.name, b.po_ref)
            },
            vec![
                "expedited freight costs more".to_string(),
                format!("{} orders wait for it", e.related_orders.len()),
            ],
        ));
        if !deps.is_empty() {
            e.recommendations.push(rec(
                ctx,
                Action::ResourcePurchase {
                    product: product.sku.clone(),
                    qty: b.open_qty(),
                    warehouse: wh.code.clone(),
                },
                format!(
                    "Buy {} × {} from another supplier",
                    Num(b.open_qty()),
                    product.sku
                ),
                vec![
                    "higher unit cost than the contracted supplier".to_string(),
                    format!("{} remains open and may arrive on top", b.po_ref),
                ],
            ));
        }
        super::push(out, e);
    }
}

/// A request for quotation sent to the supplier and still not confirmed after the policy's
/// days: nothing is on order yet, so the sales lines short of that product wait for an
/// answer.
fn unanswered_rfq(ctx: &Context, b: &InboundLine, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let t = &ctx.policy.thresholds.supplier_delay;
    let waited = (ctx.now - b.ordered_at).num_days();
    if waited <= i64::from(t.rfq_confirm_days) {
        return;
    }
    let (Some(product), Some(wh), Some(supplier)) = (
        snap.products.get(b.product as usize),
        snap.warehouses.get(b.warehouse as usize),
        snap.suppliers.get(b.supplier as usize),
    ) else {
        return;
    };
    let rule = "thresholds.supplier_delay.rfq_confirm_days";
    let title = format!(
        "{} {} × {} to {}: request for quotation sent, not confirmed after {waited} days",
        b.po_ref,
        Num(b.open_qty()),
        product.sku,
        supplier.name,
    );
    let mut e = bare(
        ctx,
        Kind::SupplierDelay,
        &[&b.po_ref, &b.id.to_string(), "rfq"],
        b.po_ref.clone(),
        title,
        rule.into(),
        Impact {
            revenue_at_risk: Decimal::ZERO,
            margin_at_risk: Decimal::ZERO,
            hours_past_promise: 0,
            tier: Tier::C,
        },
    );
    e.customer = supplier.name.clone();
    e.warehouse = Some(wh.code.clone());
    e.product = Some(product.sku.clone());
    e.line_id = Some(b.id);
    e.evidence.push(ev(
        format!(
            "{}: request for quotation of {} × {} dated {}, sent to {}; not confirmed after {waited} days{}",
            b.po_ref,
            Num(b.qty),
            product.sku,
            day(b.ordered_at),
            supplier.name,
            b.planned
                .map(|p| format!(", asked for {}", day(p)))
                .unwrap_or_default()
        ),
        "purchase.order.line",
        b.id,
        b.po_ref.clone(),
    ));
    e.evidence.push(policy_ev(
        ctx,
        rule,
        format!(
            "a request for quotation unconfirmed {} days after it was sent is late",
            t.rfq_confirm_days
        ),
    ));
    e.confidence = 0.7;
    e.recommendations.push(rec(
        ctx,
        expedite(b, supplier),
        format!("Chase {} for an answer to {}", supplier.name, b.po_ref),
        vec!["the supplier may quote a later date or a higher price".to_string()],
    ));
    super::push(out, e);
}

/// Sales lines whose missing quantity is covered only by a confirmed purchase planned after
/// their promise (the lot that completes them in the available-to-promise walk), and
/// make-to-order lines whose own purchase is planned after their promise (Odoo's link,
/// whatever stock the walk finds: such a delivery waits for its receipt): one delay per
/// such line, on its sales order, with the purchase line as evidence.
fn orders_waiting(ctx: &Context, out: &mut Vec<Exception>) {
    let mut reported = std::collections::HashSet::new();
    for (cov, li, need) in super::shortage::short_lines(ctx) {
        let (Some(eta), Some(bi)) = (cov.eta, cov.inbound) else {
            continue;
        };
        if eta > need && waiting(ctx, out, li, bi, cov.short, Waits::Walk) {
            reported.insert(li);
        }
    }
    let horizon =
        ctx.now + Duration::days(i64::from(ctx.policy.thresholds.stock_shortage.horizon_days));
    for link in &ctx.snap.supply_links {
        let (li, bi) = (link.line, link.inbound);
        let Some(b) = ctx.snap.inbound.get(bi as usize) else {
            continue;
        };
        let need = ctx.need(li);
        let qty = ctx.open(li).min(b.open_qty());
        if reported.contains(&li)
            || ctx.coverage(li).is_none()
            || need > horizon
            || b.planned.is_none_or(|p| p <= need)
            || qty <= Decimal::ZERO
        {
            continue;
        }
        if waiting(ctx, out, li, bi, qty, Waits::MadeToOrder) {
            reported.insert(li);
        }
    }
}

/// Why a sales line waits for a purchase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waits {
    /// The available-to-promise walk: the missing quantity is covered by this lot only.
    Walk,
    /// Odoo's make-to-order link: the delivery waits for this purchase's receipt.
    MadeToOrder,
}

/// Report sales line `li` waiting for `short` from inbound line `bi`, planned after the
/// line's need date; whether it was reported.
fn waiting(
    ctx: &Context,
    out: &mut Vec<Exception>,
    li: Ix,
    bi: Ix,
    short: Decimal,
    why: Waits,
) -> bool {
    let snap = ctx.snap;
    let need = ctx.need(li);
    let (Some(b), Some(line), Some(order)) = (
        snap.inbound.get(bi as usize),
        snap.lines.get(li as usize),
        ctx.order_of(li),
    ) else {
        return false;
    };
    let Some(eta) = b.planned else {
        return false;
    };
    if b.state != PurchaseState::Purchase {
        return false;
    }
    let (Some(product), Some(supplier)) = (
        snap.products.get(line.product as usize),
        snap.suppliers.get(b.supplier as usize),
    ) else {
        return false;
    };
    let lref = line_ref(order, line);
    let late = (eta - need).num_hours();
    let title = text!(
        lref,
        ": ",
        Num(short),
        " × ",
        product.sku,
        " waits for ",
        b.po_ref,
        " from ",
        supplier.name,
        ", planned ",
        HumanHours(late),
        " after the promise"
    );
    let mut e = base(
        ctx,
        Kind::SupplierDelay,
        &[&order.name, &text!(line.id), &b.po_ref, &text!(b.id)],
        order,
        Some(line),
        title,
        "thresholds.supplier_delay".into(),
        impact(
            ctx,
            order,
            short * line.net_price(),
            margin_on(ctx, line, short),
            late.max(ctx.hours_late(li, ctx.now)),
        ),
    );
    e.related_orders = vec![b.po_ref.clone()];
    e.evidence.push(ev(
        text!(
            lref,
            " needs ",
            Num(line.open_qty()),
            " × ",
            product.sku,
            " by ",
            day(need),
            "; ",
            Num(short),
            if why == Waits::MadeToOrder {
                " of it is bought for it (make-to-order) and waits for that purchase"
            } else {
                " of it is not covered by stock or earlier supply"
            }
        ),
        "sale.order.line",
        line.id,
        lref.clone(),
    ));
    e.evidence.push(ev(
        text!(
            b.po_ref,
            ": ",
            Num(b.open_qty()),
            " × ",
            product.sku,
            " from ",
            supplier.name,
            " planned for ",
            day(eta),
            ", ",
            HumanHours(late),
            " after ",
            order.name,
            "'s need date (",
            if b.confirmed {
                "confirmed by the supplier"
            } else {
                "not confirmed by the supplier"
            },
            ")"
        ),
        "purchase.order.line",
        b.id,
        b.po_ref.clone(),
    ));
    e.evidence.push(policy_ev(
        ctx,
        "thresholds.supplier_delay",
        "a purchase planned after the promise of the sales order it supplies is a delay for that order"
            .to_string(),
    ));
    e.confidence = if b.confirmed { 0.9 } else { 0.8 };
    if why == Waits::Walk {
        super::shortage::recommend(ctx, &mut e, li, short);
    } else {
        e.recommendations.push(rec(
            ctx,
            expedite(b, supplier),
            text!(
                "Ask ",
                supplier.name,
                " to deliver ",
                b.po_ref,
                " by ",
                day(need)
            ),
            vec!["expedited freight costs more".to_string()],
        ));
        e.recommendations
            .push(super::shortage::reschedule(ctx, order, eta, need));
    }
    super::push(out, e);
    true
}

/// Ask the supplier to ship an inbound line sooner (the text is written or drafted when it
/// is requested).
fn expedite(b: &InboundLine, supplier: &Supplier) -> Action {
    Action::ExpeditePurchase {
        po_ref: b.po_ref.clone(),
        line: b.id,
        supplier: supplier.name.clone(),
        message: None,
    }
}
