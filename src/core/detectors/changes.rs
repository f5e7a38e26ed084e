//! Repeated changes: an order changed at least `min_changes` times within the window
//! (quantities, dates, lines), which disrupts planning and often precedes cancellations.
//! Key accounts get a higher confidence: the pattern matters most there.

use chrono::Duration;
use rust_decimal::Decimal;

use crate::text;

use super::{base, day, ev, impact, margin_on, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let t = &ctx.policy.thresholds.repeated_changes;
    let window = Duration::days(i64::from(t.window_days));
    let mut by_order: Vec<Vec<u32>> = Vec::new();
    for (oi, &n) in ctx.recent_changes.iter().enumerate() {
        if n < t.min_changes {
            continue;
        }
        let Some(order) = snap.orders.get(oi) else {
            continue;
        };
        if !ctx.valid.order(oi) || !ctx.order_active(order) {
            continue;
        }
        if by_order.is_empty() {
            // Changes grouped per order, built only when some order qualifies.
            by_order = vec![Vec::new(); snap.orders.len()];
            for (ci, ch) in snap.changes.iter().enumerate() {
                if ch.at <= ctx.now
                    && ctx.now - ch.at <= window
                    && let Some(v) = by_order.get_mut(ch.order as usize)
                {
                    v.push(ci as u32);
                }
            }
        }
        let Some(customer) = snap.customers.get(order.customer as usize) else {
            continue;
        };
        let lines = snap.order_lines(order);
        let value = ctx.order_value(oi as u32);
        let margin: Decimal = lines.iter().map(|l| margin_on(ctx, l, l.open_qty())).sum();
        let title = text!(
            order.name,
            ": changed ",
            n,
            " times in ",
            t.window_days,
            " days by ",
            customer.name
        );
        let mut e = base(
            ctx,
            Kind::RepeatedChanges,
            &[&order.name],
            order,
            None,
            title,
            "thresholds.repeated_changes.min_changes".into(),
            impact(ctx, order, value, margin, 0),
        );
        let empty = Vec::new();
        let changes = by_order.get(oi).unwrap_or(&empty);
        for &ci in changes.iter().rev().take(6) {
            let Some(ch) = snap.changes.get(ci as usize) else {
                continue;
            };
            e.evidence.push(ev(
                text!(
                    day(ch.at),
                    ": ",
                    ch.field,
                    " changed from ",
                    ch.old_value,
                    " to ",
                    ch.new_value,
                    " by ",
                    ch.author
                ),
                "mail.tracking.value",
                ch.id,
                order.name.clone(),
            ));
        }
        if customer.key_account {
            e.evidence.push(ev(
                text!(
                    customer.name,
                    " is a key account (tier ",
                    customer.tier.as_str(),
                    ")"
                ),
                "res.partner",
                customer.id,
                customer.reference.clone(),
            ));
        }
        e.evidence.push(policy_ev(
            ctx,
            "thresholds.repeated_changes.min_changes",
            text!(
                t.min_changes,
                " or more changes within ",
                t.window_days,
                " days"
            ),
        ));
        e.confidence = if customer.key_account { 0.9 } else { 0.75 };
        e.recommendations.push(rec(
            ctx,
            Action::ContactCustomer {
                order: order.name.clone(),
                purpose: "confirm the final quantities and dates before picking".into(),
                message: None,
            },
            "Confirm the final quantities and dates with the buyer before picking".to_string(),
            vec![
                "one call now saves re-picking and a second delivery".to_string(),
                "frequent changes from a key account may call for a standing forecast".to_string(),
            ],
        ));
        super::push(out, e);
    }
}
