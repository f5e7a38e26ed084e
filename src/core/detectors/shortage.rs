//! Stock shortage: an open line whose quantity is not covered by stock on hand plus
//! inbound arriving by its need date, after earlier-needed lines of the same product in
//! the same warehouse were served (the available-to-promise walk in the context).

use crate::core::fmt::{Money, Num};
use chrono::Duration;
use rust_decimal::Decimal;

use super::{base, day, ev, impact, line_ref, margin_on, open_lines, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let horizon =
        ctx.now + Duration::days(i64::from(ctx.policy.thresholds.stock_shortage.horizon_days));
    let full_lateness = i64::from(ctx.policy.scoring.lateness_full_at_hours);
    for (li, line, order) in open_lines(ctx) {
        let Some(cov) = ctx.coverage(li) else {
            continue;
        };
        let need = ctx.need(li);
        if cov.short <= Decimal::ZERO || need > horizon {
            continue;
        }
        let (Some(product), Some(wh)) = (
            snap.products.get(line.product as usize),
            snap.warehouses.get(order.warehouse as usize),
        ) else {
            continue;
        };
        let lref = line_ref(order, line);
        let hours = match cov.eta {
            Some(eta) => (eta - need).num_hours().max(ctx.hours_late(li, ctx.now)),
            None => full_lateness.max(ctx.hours_late(li, ctx.now)),
        };
        let revenue = cov.short * line.net_price();
        let title = format!(
            "{lref}: {} of {} × {} not covered by {}",
            Num(cov.short),
            Num(line.open_qty()),
            product.sku,
            day(need)
        );
        let mut e = base(
            ctx,
            Kind::StockShortage,
            &[&order.name, &line.id.to_string()],
            order,
            Some(line),
            title,
            "thresholds.stock_shortage.horizon_days".into(),
            impact(ctx, order, revenue, margin_on(ctx, line, cov.short), hours),
        );

        let slot = ctx.slot(line.product, order.warehouse);
        let (on_hand, reserved, stock_ix) = ctx.stock.get(slot).cloned().unwrap_or_default();
        let stock_rec = stock_ix.and_then(|i| snap.stock.get(i as usize));
        e.evidence.push(ev(
            format!(
                "{lref} needs {} × {} by {}{}",
                Num(line.open_qty()),
                product.sku,
                day(need),
                if ctx.has_promise.get(li as usize).copied().unwrap_or(false) {
                    " (promised date)"
                } else {
                    " (no promised date: order date plus default lead time)"
                }
            ),
            "sale.order.line",
            line.id,
            lref.clone(),
        ));
        e.evidence.push(ev(
            format!(
                "{} has {} on hand and {} reserved in {}; {} of it is left for this line after earlier-needed orders",
                product.sku,
                Num(on_hand),
                Num(reserved),
                wh.code,
                Num(cov.from_stock)
            ),
            "stock.quant",
            stock_rec.map(|s| s.id).unwrap_or(0),
            format!("{}@{}", product.sku, wh.code),
        ));
        if cov.from_inbound > Decimal::ZERO {
            e.evidence.push(ev(
                format!(
                    "{} arrives from inbound purchases by the need date",
                    Num(cov.from_inbound)
                ),
                "purchase.order.line",
                0,
                product.sku.clone(),
            ));
        }
        let waiting = cov.inbound.and_then(|i| snap.inbound.get(i as usize));
        match (cov.eta, waiting) {
            (Some(eta), Some(b)) => {
                let supplier = snap.suppliers.get(b.supplier as usize);
                e.evidence.push(ev(
                    format!(
                        "the rest is covered only by {} from {} planned for {} ({}), {} after the need date",
                        b.po_ref,
                        supplier.map(|s| s.name.as_str()).unwrap_or("an unknown supplier"),
                        day(eta),
                        if b.confirmed { "confirmed by the supplier" } else { "not confirmed by the supplier" },
                        human_hours((eta - need).num_hours())
                    ),
                    "purchase.order.line",
                    b.id,
                    b.po_ref.clone(),
                ));
                e.confidence = if b.confirmed { 0.9 } else { 0.75 };
            }
            _ => {
                e.evidence.push(ev(
                    format!("no open purchase covers the missing {}", Num(cov.short)),
                    "purchase.order.line",
                    0,
                    product.sku.clone(),
                ));
                e.confidence = 0.95;
            }
        }
        e.evidence.push(policy_ev(
            ctx,
            "thresholds.stock_shortage.horizon_days",
            format!(
                "demand due within {} days is checked against stock and inbound",
                ctx.policy.thresholds.stock_shortage.horizon_days
            ),
        ));

        recommend(ctx, &mut e, li, cov.short);
        out.push(e);
    }
}

/// Options for a short line: transfer, substitute, split, expedite or re-source, reschedule.
pub(super) fn recommend(ctx: &Context, e: &mut Exception, li: crate::domain::Ix, short: Decimal) {
    let snap = ctx.snap;
    let (Some(line), Some(order)) = (snap.lines.get(li as usize), ctx.order_of(li)) else {
        return;
    };
    let (Some(product), Some(wh)) = (
        snap.products.get(line.product as usize),
        snap.warehouses.get(order.warehouse as usize),
    ) else {
        return;
    };
    let Some(cov) = ctx.coverage(li) else { return };
    let need = ctx.need(li);

    // Transfer from a warehouse of the same pool with stock left after its own demand.
    let mut best: Option<(usize, Decimal)> = None;
    for (wi, other) in snap.warehouses.iter().enumerate() {
        if wi == order.warehouse as usize || other.pool != wh.pool {
            continue;
        }
        let left = ctx
            .leftover
            .get(ctx.slot(line.product, wi as u32))
            .copied()
            .unwrap_or_default();
        if left > Decimal::ZERO && best.is_none_or(|(_, b)| left > b) {
            best = Some((wi, left));
        }
    }
    if let Some((wi, left)) = best
        && let Some(other) = snap.warehouses.get(wi)
    {
        let qty = short.min(left);
        let arrives = ctx.now + Duration::hours(i64::from(wh.transfer_hours));
        let mut t = vec![format!(
            "arrives in about {} h ({}), {}",
            wh.transfer_hours,
            day(arrives),
            if arrives <= need {
                "before the need date"
            } else {
                "after the need date"
            }
        )];
        if qty < short {
            t.push(format!("covers {} of the missing {}", Num(qty), Num(short)));
        }
        t.push(format!("leaves {} free in {}", Num(left - qty), other.code));
        e.recommendations.push(rec(
            ctx,
            Action::Transfer {
                product: product.sku.clone(),
                qty,
                from_warehouse: other.code.clone(),
                to_warehouse: wh.code.clone(),
            },
            format!(
                "Transfer {} × {} from {} to {}",
                Num(qty),
                product.sku,
                other.code,
                wh.code
            ),
            t,
        ));
    }

    // Substitutes with stock left in the same warehouse.
    for &si in product.substitutes.iter().take(3) {
        let Some(sub) = snap.products.get(si as usize) else {
            continue;
        };
        let left = ctx
            .leftover
            .get(ctx.slot(si, order.warehouse))
            .copied()
            .unwrap_or_default();
        if left < short {
            continue;
        }
        let diff = sub.list_price - product.list_price;
        e.recommendations.push(rec(
            ctx,
            Action::Substitute {
                order: order.name.clone(),
                line: line.id,
                from_product: product.sku.clone(),
                to_product: sub.sku.clone(),
                qty: short,
            },
            format!(
                "Offer {} ({}) instead of {} for the missing {}",
                sub.sku,
                sub.name,
                product.sku,
                Num(short)
            ),
            vec![
                "needs the customer's consent".to_string(),
                if diff > Decimal::ZERO {
                    format!(
                        "list price {} higher per unit; hold the contract price to keep goodwill",
                        Money(diff)
                    )
                } else {
                    format!("list price {} lower per unit", Money(-diff))
                },
                format!("{} free in {}", Num(left), wh.code),
            ],
        ));
        break;
    }

    // Ship what is available now.
    let available = cov.from_stock + cov.from_inbound;
    if available > Decimal::ZERO {
        e.recommendations.push(rec(
            ctx,
            Action::SplitShipment {
                order: order.name.clone(),
                line: line.id,
                ship_now: available,
                backorder: short,
            },
            format!("Ship {} now and back-order {}", Num(available), Num(short)),
            vec![
                "a second delivery adds freight cost".to_string(),
                "the customer receives a partial delivery on time".to_string(),
            ],
        ));
    }

    // Expedite the purchase the line waits for, or buy elsewhere.
    match cov.inbound.and_then(|i| snap.inbound.get(i as usize)) {
        Some(b) if cov.eta.is_some() => {
            let supplier = snap.suppliers.get(b.supplier as usize);
            let mut t = vec!["expedited freight costs more".to_string()];
            if let Some(rate) = supplier.and_then(|s| s.on_time_rate) {
                t.push(format!(
                    "{} delivered {:.0}% of lines on time last year",
                    supplier.map(|s| s.name.as_str()).unwrap_or(""),
                    rate * 100.0
                ));
            }
            e.recommendations.push(rec(
                ctx,
                Action::ExpeditePurchase {
                    po_ref: b.po_ref.clone(),
                    line: b.id,
                    supplier: supplier.map(|s| s.name.clone()).unwrap_or_default(),
                },
                format!(
                    "Ask {} to expedite {}",
                    supplier.map(|s| s.name.as_str()).unwrap_or("the supplier"),
                    b.po_ref
                ),
                t,
            ));
        }
        _ => {
            e.recommendations.push(rec(
                ctx,
                Action::ResourcePurchase {
                    product: product.sku.clone(),
                    qty: short,
                    warehouse: wh.code.clone(),
                },
                format!("Buy {} × {} from another supplier", Num(short), product.sku),
                vec![
                    "spot purchases usually cost more than the contracted supplier".to_string(),
                    "no inbound is planned, so waiting does not help".to_string(),
                ],
            ));
        }
    }

    // Agree a new date.
    if let Some(eta) = cov.eta {
        e.recommendations.push(rec(
            ctx,
            Action::Reschedule {
                order: order.name.clone(),
                new_date: eta,
            },
            format!(
                "Agree {} with the customer as the new delivery date",
                day(eta)
            ),
            vec![format!(
                "the promise moves by {}",
                human_hours((eta - need).num_hours())
            )],
        ));
    }
}

/// "3 days", "5 h".
pub(crate) fn human_hours(h: i64) -> String {
    if h.abs() >= 48 {
        format!("{} days", h / 24)
    } else {
        format!("{h} h")
    }
}
