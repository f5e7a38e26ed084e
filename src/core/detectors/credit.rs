//! Credit hold: shipping an order would take the customer's exposure (open receivables +
//! confirmed-not-invoiced orders + this order) over the credit limit, or the customer has
//! invoices overdue beyond the policy. Orders are taken oldest first, so the order that
//! crosses the limit (and every later one) is held, not the ones that fit. Payment
//! behaviour sets the confidence.

use crate::core::fmt::{Money, Plain};
use crate::text;
use rust_decimal::Decimal;

use super::{base, day, ev, impact, margin_on, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let t = &ctx.policy.thresholds.credit_hold;
    for (ci, customer) in snap.customers.iter().enumerate() {
        let Some(pos) = ctx.credit.get(ci) else {
            continue;
        };
        if pos.open_orders.is_empty() {
            continue;
        }
        let overdue = pos.max_overdue_days > i64::from(t.max_overdue_days);
        let paid = customer.payments.invoices_paid;
        let late_share = if paid > 0 {
            f64::from(customer.payments.paid_late) / f64::from(paid)
        } else {
            0.0
        };
        let weak_payer = late_share >= t.late_payer_share;

        let mut exposure = pos.receivables;
        for &oi in &pos.open_orders {
            let Some(order) = snap.orders.get(oi as usize) else {
                continue;
            };
            let lines = snap.order_lines(order);
            let this = ctx
                .order_uninvoiced
                .get(oi as usize)
                .copied()
                .unwrap_or_default();
            exposure += this;
            let open_value = ctx.order_value(oi);
            if open_value <= Decimal::ZERO {
                continue; // nothing left to ship: nothing to hold
            }
            let over_limit = customer.credit_limit.filter(|&limit| exposure > limit);
            if over_limit.is_none() && !overdue {
                continue;
            }
            let rule = if over_limit.is_some() {
                "thresholds.credit_hold"
            } else {
                "thresholds.credit_hold.max_overdue_days"
            };
            let title = match over_limit {
                Some(limit) => text!(
                    order.name,
                    ": ",
                    customer.name,
                    " exposure ",
                    Money(exposure - limit),
                    " over the ",
                    Plain(limit.round_dp(0)),
                    " limit"
                ),
                None => text!(
                    order.name,
                    ": ",
                    customer.name,
                    " has invoices ",
                    pos.max_overdue_days,
                    " days overdue"
                ),
            };
            let margin: Decimal = lines.iter().map(|l| margin_on(ctx, l, l.open_qty())).sum();
            let hours = lines
                .iter()
                .enumerate()
                .map(|(k, _)| ctx.hours_late(order.first_line + k as u32, ctx.now))
                .max()
                .unwrap_or(0);
            let mut e = base(
                ctx,
                Kind::CreditHold,
                &[&order.name],
                order,
                None,
                title,
                rule.into(),
                impact(ctx, order, open_value, margin, hours),
            );
            e.evidence.push(ev(
                text!(
                    "open receivables ",
                    Money(pos.receivables),
                    " across ",
                    pos.invoices.len(),
                    " invoices"
                ),
                "res.partner",
                customer.id,
                customer.reference.clone(),
            ));
            e.evidence.push(ev(
                text!(
                    order.name,
                    " is ",
                    Money(this),
                    " uninvoiced; with earlier open orders exposure reaches ",
                    Money(exposure)
                ),
                "sale.order",
                order.id,
                order.name.clone(),
            ));
            match customer.credit_limit {
                Some(limit) => e.evidence.push(ev(
                    text!("credit limit ", Money(limit)),
                    "res.partner",
                    customer.id,
                    customer.reference.clone(),
                )),
                None => e.evidence.push(ev(
                    "no credit limit is set".to_string(),
                    "res.partner",
                    customer.id,
                    customer.reference.clone(),
                )),
            }
            if let Some(inv) = pos
                .oldest_overdue
                .and_then(|i| snap.invoices.get(i as usize))
            {
                e.evidence.push(ev(
                    text!(
                        inv.name,
                        " (",
                        Money(inv.residual),
                        " open) was due ",
                        day(inv.due_date),
                        ", ",
                        pos.max_overdue_days,
                        " days ago"
                    ),
                    "account.move",
                    inv.id,
                    inv.name.clone(),
                ));
            }
            if paid > 0 {
                e.evidence.push(ev(
                    format!(
                        "paid {} of {} invoices late in the last 12 months (average {:.0} days late)",
                        customer.payments.paid_late, paid, customer.payments.avg_days_late
                    ),
                    "res.partner",
                    customer.id,
                    customer.reference.clone(),
                ));
            }
            e.evidence.push(policy_ev(
                ctx,
                "thresholds.credit_hold.max_overdue_days",
                text!(
                    "shipments hold when exposure exceeds the limit or invoices are over ",
                    t.max_overdue_days,
                    " days overdue"
                ),
            ));
            e.confidence = if weak_payer || overdue { 0.95 } else { 0.8 };

            e.recommendations.push(rec(
                ctx,
                Action::ContactCustomer {
                    order: order.name.clone(),
                    purpose: if overdue {
                        "collect the overdue invoices before shipping".into()
                    } else {
                        "ask for a prepayment or a partial payment to free credit".into()
                    },
                },
                "Ask the customer to pay overdue invoices or prepay".to_string(),
                vec!["the shipment waits until the payment arrives".to_string()],
            ));
            let headroom = customer
                .credit_limit
                .map(|l| (l - (exposure - this)).max(Decimal::ZERO))
                .unwrap_or_default();
            if !overdue && headroom > Decimal::ZERO && headroom < this {
                e.recommendations.push(rec(
                    ctx,
                    Action::RouteForApproval {
                        order: order.name.clone(),
                        role: ctx
                            .policy
                            .approvers("release_credit_hold")
                            .first()
                            .cloned()
                            .unwrap_or_default(),
                    },
                    text!(
                        "Ship only what fits the remaining credit (",
                        Money(headroom),
                        ")"
                    ),
                    vec!["partial delivery; the rest waits for payment".to_string()],
                ));
            }
            e.recommendations.push(rec(
                ctx,
                Action::ReleaseCreditHold {
                    order: order.name.clone(),
                    customer: customer.name.clone(),
                },
                text!("Release ", order.name, " despite the credit position"),
                vec![
                    text!(
                        "adds ",
                        Money(this),
                        " to an exposure already at ",
                        Money(exposure - this)
                    ),
                    if weak_payer {
                        format!("{:.0}% of invoices were paid late", late_share * 100.0)
                    } else {
                        "the customer usually pays on time".to_string()
                    },
                ],
            ));
            super::push(out, e);
        }
    }
}
