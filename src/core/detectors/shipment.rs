//! Shipment delay: an open delivery that will reach the customer after the promise (plus
//! the grace period), because it is planned after the promise or the promised date has
//! already passed without shipping.
//!
//! Odoo plans a delivery order on the promised date itself: confirming an order with a
//! commitment date gives its delivery that date as `scheduled_date` and as `date_deadline`
//! (backorders keep both; without a commitment date both are the order's expected date). So
//! the planned date is compared with the promise as it stands, with no transit time added
//! (adding one made every promised order "late"): a delivery is late when the warehouse
//! moved it past the promise, or when the promise passed and it has not shipped.

use rust_decimal::Decimal;

use super::shortage::HumanHours;
use super::{base, day, ev, impact, margin_on, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};
use crate::core::fmt::DayOr;
use crate::domain::PickingState;
use crate::text;

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let grace = i64::from(ctx.policy.thresholds.shipment_delay.grace_hours);
    for p in &snap.pickings {
        if matches!(p.state, PickingState::Done | PickingState::Cancel) {
            continue;
        }
        let Some(order) = snap.orders.get(p.order as usize) else {
            continue;
        };
        if !order.state.is_open_demand() || !ctx.valid.order(p.order as usize) {
            continue;
        }
        let lines = snap.order_lines(order);
        // The order's usable lines with something left to deliver, walked without
        // collecting them (this runs for every open picking).
        let open = (0..lines.len() as u32)
            .map(|k| order.first_line + k)
            .filter(|&li| ctx.valid.line(li as usize) && !ctx.open(li).is_zero());
        let Some(first) = open.clone().min_by_key(|&li| ctx.need(li)) else {
            continue;
        };
        let promise = ctx.need(first);
        let promised_for_real = ctx
            .has_promise
            .get(first as usize)
            .copied()
            .unwrap_or(false);
        let carrier = p.carrier.and_then(|c| snap.carriers.get(c as usize));
        // Planned for its scheduled date; once that has passed, the earliest is now.
        let expected = p.scheduled.unwrap_or(ctx.now).max(ctx.now);
        let late = (expected - promise).num_hours();
        if late <= grace {
            continue;
        }
        let already = ctx.now > promise;
        let open_value: Decimal = open.clone().map(|li| ctx.open_value(li)).sum();
        let margin: Decimal = open
            .filter_map(|li| snap.lines.get(li as usize))
            .map(|l| margin_on(ctx, l, l.open_qty()))
            .sum();
        let title = if already {
            text!(
                p.name,
                ": promised ",
                day(promise),
                ", not shipped yet (",
                HumanHours((ctx.now - promise).num_hours()),
                " late)"
            )
        } else {
            text!(
                p.name,
                ": expected ",
                day(expected),
                ", ",
                HumanHours(late),
                " after the promise"
            )
        };
        let mut e = base(
            ctx,
            Kind::ShipmentDelay,
            &[&p.name],
            order,
            None,
            title,
            "thresholds.shipment_delay.grace_hours".into(),
            impact(ctx, order, open_value, margin, late),
        );
        e.evidence.push(ev(
            text!(
                order.name,
                " promised ",
                day(promise),
                if promised_for_real {
                    ""
                } else {
                    " (no promised date: order date plus default lead time)"
                }
            ),
            "sale.order",
            order.id,
            order.name.clone(),
        ));
        e.evidence.push(ev(
            text!(
                p.name,
                " is ",
                match p.state {
                    PickingState::Assigned => "ready",
                    PickingState::Confirmed => "waiting for stock",
                    _ => "waiting",
                },
                " and scheduled to ship ",
                DayOr(p.scheduled, "with no date")
            ),
            "stock.picking",
            p.id,
            p.name.clone(),
        ));
        if let Some(c) = carrier {
            e.evidence.push(ev(
                format!(
                    "{} carries it (about {} h in transit{})",
                    c.name,
                    c.transit_hours,
                    c.on_time_rate
                        .map(|r| format!(", {:.0}% on time", r * 100.0))
                        .unwrap_or_default()
                ),
                "delivery.carrier",
                c.id,
                c.name.clone(),
            ));
        }
        e.evidence.push(policy_ev(
            ctx,
            "thresholds.shipment_delay.grace_hours",
            text!(
                "deliveries more than ",
                grace,
                " h past the promise are delays"
            ),
        ));
        e.confidence = match (already, promised_for_real) {
            (_, false) => 0.6,
            (true, true) => 0.97,
            (false, true) => match carrier.and_then(|c| c.on_time_rate) {
                Some(r) => (0.75 + 0.2 * f64::from(r)).min(0.95),
                None => 0.85,
            },
        };
        e.recommendations.push(rec(
            ctx,
            Action::ContactCustomer {
                order: order.name.clone(),
                purpose: text!("tell the customer the delivery is expected ", day(expected)),
                message: None,
            },
            "Tell the customer now, with the new expected date".to_string(),
            vec!["sets expectations before the customer chases; admits the delay".to_string()],
        ));
        e.recommendations.push(rec(
            ctx,
            Action::Reschedule {
                order: order.name.clone(),
                new_date: expected,
            },
            text!("Move the promised date to ", day(expected)),
            vec![text!("the promise moves by ", HumanHours(late))],
        ));
        super::push(out, e);
    }
}
