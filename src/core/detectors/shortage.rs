//! Stock shortage: an open line whose quantity is not covered by stock on hand plus
//! inbound arriving by its need date, after earlier-needed lines of the same product in
//! the same warehouse were served (the available-to-promise walk in the context), and for
//! which no confirmed purchase is in sight either. A line whose missing quantity waits for
//! a confirmed purchase planned after its promise is that purchase's delay, reported by
//! the supplier-delay detector on the line's order.

use crate::core::fmt::{Money, Num, Put};
use crate::text;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::{base, day, ev, impact, line_ref, margin_on, policy_ev, rec};
use crate::core::context::{Context, Coverage};
use crate::core::exception::{Action, Exception, Kind};
use crate::domain::Ix;

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let full_lateness = i64::from(ctx.policy.scoring.lateness_full_at_hours);
    for (cov, li, need) in short_lines(ctx) {
        // With an ETA the line waits for a confirmed purchase: a supplier delay.
        if cov.eta.is_some() {
            continue;
        }
        let (Some(line), Some(order)) = (snap.lines.get(li as usize), ctx.order_of(li)) else {
            continue;
        };
        let (Some(product), Some(wh)) = (
            snap.products.get(line.product as usize),
            snap.warehouses.get(order.warehouse as usize),
        ) else {
            continue;
        };
        let lref = line_ref(order, line);
        let hours = full_lateness.max(ctx.hours_late(li, ctx.now));
        let revenue = cov.short * line.net_price();
        let title = text!(
            lref,
            ": ",
            Num(cov.short),
            " of ",
            Num(line.open_qty()),
            " × ",
            product.sku,
            " not covered by ",
            day(need)
        );
        let mut e = base(
            ctx,
            Kind::StockShortage,
            &[&order.name, &text!(line.id)],
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
            text!(
                lref,
                " needs ",
                Num(line.open_qty()),
                " × ",
                product.sku,
                " by ",
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
            text!(
                product.sku,
                " has ",
                Num(on_hand),
                " on hand and ",
                Num(reserved),
                " reserved in ",
                wh.code,
                "; ",
                Num(cov.from_stock),
                " of it is left for this line after earlier-needed orders"
            ),
            "stock.quant",
            stock_rec.map(|s| s.id).unwrap_or(0),
            text!(product.sku, '@', wh.code),
        ));
        if cov.from_inbound > Decimal::ZERO {
            e.evidence.push(ev(
                text!(
                    Num(cov.from_inbound),
                    " arrives from inbound purchases by the need date"
                ),
                "purchase.order.line",
                0,
                product.sku.clone(),
            ));
        }
        e.evidence.push(ev(
            text!("no open purchase covers the missing ", Num(cov.short)),
            "purchase.order.line",
            0,
            product.sku.clone(),
        ));
        e.confidence = 0.95;
        e.evidence.push(policy_ev(
            ctx,
            "thresholds.stock_shortage.horizon_days",
            text!(
                "demand due within ",
                ctx.policy.thresholds.stock_shortage.horizon_days,
                " days is checked against stock and inbound"
            ),
        ));

        recommend(ctx, &mut e, li, cov.short);
        super::push(out, e);
    }
}

/// Open lines not covered by their need date, needed within the shortage horizon:
/// (coverage, line, need date). Walks the coverage in slot order (it is aligned with
/// `lines_by_product`): most lines are covered, and skipping them from one sequential array
/// is far cheaper than looking each open line up. The order does not matter: exceptions
/// are ranked by a total order afterwards.
pub(super) fn short_lines<'c>(
    ctx: &'c Context,
) -> impl Iterator<Item = (&'c Coverage, Ix, DateTime<Utc>)> + 'c {
    let horizon =
        ctx.now + Duration::days(i64::from(ctx.policy.thresholds.stock_shortage.horizon_days));
    ctx.coverage
        .iter()
        .zip(&ctx.lines_by_product)
        .filter(|(cov, _)| cov.short > Decimal::ZERO)
        .map(|(cov, sl)| (cov, sl.line, ctx.need(sl.line)))
        .filter(move |(_, _, need)| *need <= horizon)
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
        let mut t = vec![text!(
            "arrives in about ",
            wh.transfer_hours,
            " h (",
            day(arrives),
            "), ",
            if arrives <= need {
                "before the need date"
            } else {
                "after the need date"
            }
        )];
        if qty < short {
            t.push(text!("covers ", Num(qty), " of the missing ", Num(short)));
        }
        t.push(text!("leaves ", Num(left - qty), " free in ", other.code));
        e.recommendations.push(rec(
            ctx,
            Action::Transfer {
                product: product.sku.clone(),
                qty,
                from_warehouse: other.code.clone(),
                to_warehouse: wh.code.clone(),
            },
            text!(
                "Transfer ",
                Num(qty),
                " × ",
                product.sku,
                " from ",
                other.code,
                " to ",
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
            text!(
                "Offer ",
                sub.sku,
                " (",
                sub.name,
                ") instead of ",
                product.sku,
                " for the missing ",
                Num(short)
            ),
            vec![
                "needs the customer's consent".to_string(),
                if diff > Decimal::ZERO {
                    text!(
                        "list price ",
                        Money(diff),
                        " higher per unit; hold the contract price to keep goodwill"
                    )
                } else {
                    text!("list price ", Money(-diff), " lower per unit")
                },
                text!(Num(left), " free in ", wh.code),
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
            text!("Ship ", Num(available), " now and back-order ", Num(short)),
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
                    message: None,
                },
                text!(
                    "Ask ",
                    supplier.map(|s| s.name.as_str()).unwrap_or("the supplier"),
                    " to expedite ",
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
                text!(
                    "Buy ",
                    Num(short),
                    " × ",
                    product.sku,
                    " from another supplier"
                ),
                vec![
                    "spot purchases usually cost more than the contracted supplier".to_string(),
                    "no inbound is planned, so waiting does not help".to_string(),
                ],
            ));
        }
    }

    // Agree a new date.
    if let Some(eta) = cov.eta {
        e.recommendations.push(reschedule(ctx, order, eta, need));
    }
}

/// Agree `eta` as the order's new delivery date (the need date was `need`).
pub(super) fn reschedule(
    ctx: &Context,
    order: &crate::domain::SalesOrder,
    eta: DateTime<Utc>,
    need: DateTime<Utc>,
) -> crate::core::exception::Recommendation {
    rec(
        ctx,
        Action::Reschedule {
            order: order.name.clone(),
            new_date: eta,
        },
        text!(
            "Agree ",
            day(eta),
            " with the customer as the new delivery date"
        ),
        vec![text!(
            "the promise moves by ",
            HumanHours((eta - need).num_hours())
        )],
    )
}

/// "3 days", "5 h".
pub(crate) fn human_hours(h: i64) -> String {
    text!(HumanHours(h))
}

/// [`human_hours`] as a text piece.
pub(crate) struct HumanHours(pub(crate) i64);

impl Put for HumanHours {
    fn max_len(&self) -> usize {
        25
    }
    fn put(&self, out: &mut String) {
        let h = self.0;
        if h.abs() >= 48 {
            (h / 24).put(out);
            out.push_str(" days");
        } else {
            h.put(out);
            out.push_str(" h");
        }
    }
}
