//! Credit hold: shipping an order would take the customer's exposure (open receivables +
//! confirmed-not-invoiced orders + this order) over the credit limit, or the customer has
//! invoices overdue beyond the policy. Orders are taken oldest first, so the order that
//! crosses the limit (and every later one) is held, not the ones that fit. Payment
//! behaviour sets the confidence.
//!
//! As in Odoo's own check, everything counts with its taxes: the open amounts of posted
//! invoices (`amount_residual`, after partial payments) and the confirmed, not yet
//! invoiced part of each order at its tax rate.

use crate::core::fmt::{Money, Plain};
use crate::text;
use rust_decimal::Decimal;

use super::{base, day, ev, impact, margin_on, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};
use crate::domain::{Customer, TrendDirection};

/// Paid invoices it takes before paying on time counts as a record.
const RELIABLE_AFTER: u32 = 3;

/// What the customer's payment history says, one evidence line per fact: how many of the
/// last twelve months' invoices were paid late and by how much, the trend, partial
/// payments, credit notes, and the oldest open item (when no overdue invoice already
/// stands for it).
fn payment_evidence(e: &mut Exception, customer: &Customer, show_oldest_open: bool) {
    let pay = &customer.payments;
    let mut facts = Vec::new();
    if pay.invoices_paid > 0 {
        let mut f = format!(
            "paid {} of {} invoices late in the last 12 months (average {:.0} days late",
            pay.paid_late, pay.invoices_paid, pay.avg_days_late
        );
        if pay.max_days_late > 0 {
            f.push_str(&format!(", at most {}", pay.max_days_late));
        }
        f.push(')');
        facts.push(("res.partner", customer.id, customer.reference.clone(), f));
    }
    if let Some(tr) = pay
        .trend
        .filter(|tr| tr.direction != TrendDirection::Steady)
    {
        facts.push((
            "res.partner",
            customer.id,
            customer.reference.clone(),
            format!(
                "payments {}: {:.0} days past due on average over the last 3 months ({} invoices), {:.0} in the 9 months before ({})",
                tr.direction.as_str(),
                tr.recent_days_past_due,
                tr.recent_invoices,
                tr.earlier_days_past_due,
                tr.earlier_invoices
            ),
        ));
    }
    if pay.partially_paid > 0 {
        facts.push((
            "res.partner",
            customer.id,
            customer.reference.clone(),
            format!("{} open invoice(s) partly paid", pay.partially_paid),
        ));
    }
    if pay.credited > 0 {
        facts.push((
            "res.partner",
            customer.id,
            customer.reference.clone(),
            format!(
                "{} invoice(s) of the last 12 months settled in part by credit notes",
                pay.credited
            ),
        ));
    }
    if let Some(o) = pay.oldest_open.as_ref().filter(|_| show_oldest_open) {
        facts.push((
            "account.move",
            o.id,
            o.invoice.clone(),
            text!(
                "oldest open item ",
                o.invoice,
                " (",
                Money(o.residual),
                " open), due ",
                day(o.due)
            ),
        ));
    }
    for (model, id, reference, fact) in facts {
        e.evidence.push(ev(fact, model, id, reference));
    }
}

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
        let pay = &customer.payments;
        let paid = pay.invoices_paid;
        let late_share = pay.late_share();
        let weak_payer = late_share >= t.late_payer_share;
        let worsening = pay
            .trend
            .is_some_and(|tr| tr.direction == TrendDirection::Worsening);
        // A record of paying on time (a few invoices, few late, not getting worse) makes a
        // hold over the limit alone less certain to matter.
        let reliable = paid >= RELIABLE_AFTER
            && late_share < t.late_payer_share / 2.0
            && !worsening
            && pay.partially_paid == 0;

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
                .unwrap_or_default()
                * (Decimal::ONE + order.tax_rate);
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
            payment_evidence(&mut e, customer, pos.oldest_overdue.is_none());
            e.evidence.push(policy_ev(
                ctx,
                "thresholds.credit_hold.max_overdue_days",
                text!(
                    "shipments hold when exposure exceeds the limit or invoices are over ",
                    t.max_overdue_days,
                    " days overdue"
                ),
            ));
            e.confidence = if weak_payer || overdue {
                0.95
            } else if worsening {
                0.9
            } else if reliable {
                0.7
            } else {
                0.8
            };

            e.recommendations.push(rec(
                ctx,
                Action::ContactCustomer {
                    order: order.name.clone(),
                    purpose: if overdue {
                        "collect the overdue invoices before shipping".into()
                    } else {
                        "ask for a prepayment or a partial payment to free credit".into()
                    },
                    message: None,
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
