//! Supplier delay: an open purchase line that is overdue, whose planned arrival slipped,
//! or that the supplier has not confirmed in time — with the sales order lines that
//! depend on it (from the available-to-promise walk), whose value is what is at risk.

use crate::core::fmt::Num;
use chrono::Duration;
use rust_decimal::Decimal;

use super::shortage::human_hours;
use super::{bare, day, ev, line_ref, margin_on, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Impact, Kind};
use crate::domain::{PurchaseState, Tier};

/// Affected orders listed by name at most.
const MAX_RELATED: usize = 20;

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let t = &ctx.policy.thresholds.supplier_delay;
    for (bi, b) in snap.inbound.iter().enumerate() {
        if b.state != PurchaseState::Purchase || b.open_qty() <= Decimal::ZERO {
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
        let what = if let Some(h) = overdue_h {
            format!("{} overdue", human_hours(h))
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
            Action::ExpeditePurchase {
                po_ref: b.po_ref.clone(),
                line: b.id,
                supplier: supplier.name.clone(),
            },
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
