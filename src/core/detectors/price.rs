//! Price / discount mismatch: a line's net price deviates from the customer's contract
//! price beyond the tolerance, its margin falls below the floor, or its discount exceeds
//! what the policy allows without a manager. One exception per line, with every reason
//! that applies as evidence.

use crate::core::fmt::{Money, Num, Plain};
use crate::text;
use rust_decimal::Decimal;

use super::{base, ev, impact, line_ref, policy_ev, rec};
use crate::core::context::{Context, bucket};
use crate::core::exception::{Action, Exception, Kind};
use crate::domain::{Ix, OrderState};

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let t = &ctx.policy.thresholds.price_mismatch;
    let hundred = Decimal::ONE_HUNDRED;

    // Contracts grouped by customer in linear time (a customer has a few dozen at most),
    // with the product beside each index so the search touches one compact array.
    let (offsets, by_customer) = bucket(
        snap.customers.len(),
        snap.contract_prices
            .iter()
            .enumerate()
            .map(|(i, c)| (c.customer as usize, i as Ix)),
    );
    let products_of: Vec<Ix> = by_customer
        .iter()
        .map(|&i| {
            snap.contract_prices
                .get(i as usize)
                .map(|c| c.product)
                .unwrap_or(Ix::MAX)
        })
        .collect();
    // Of the rules that apply (a quantity break applies from its minimum quantity), the one
    // with the largest minimum, as Odoo orders a pricelist's rules.
    let contract_for = |customer: Ix, product: Ix, qty: Decimal, at| {
        let (a, b) = (
            offsets.get(customer as usize).copied().unwrap_or(0) as usize,
            offsets.get(customer as usize + 1).copied().unwrap_or(0) as usize,
        );
        (a..b)
            .filter(|&k| products_of.get(k) == Some(&product))
            .filter_map(|k| {
                by_customer
                    .get(k)
                    .and_then(|&i| snap.contract_prices.get(i as usize))
            })
            .filter(|c| c.applies(qty, at))
            .max_by_key(|c| c.min_qty)
    };

    // Lowest net price that keeps the margin floor: cost × 100 / (100 − floor %). Lines
    // are tested against it by cross-multiplying (`net × (100 − floor %) < cost × 100`),
    // which is exact and spares a decimal division per product; the division is done only
    // for the lines that fall below. (The quotient rounded to 28 digits cannot fall on the
    // other side of a price with a handful of decimals, so the outcome is the same.)
    let floor_den = (t.margin_floor_pct < hundred).then(|| hundred - t.margin_floor_pct);
    let floor_of = |cost: Decimal| match floor_den {
        Some(den) => cost * hundred / den,
        None => cost,
    };
    let below_floor = |net: Decimal, cost: Decimal| match floor_den {
        Some(den) => match (net.checked_mul(den), cost.checked_mul(hundred)) {
            (Some(a), Some(b)) => a < b,
            _ => net < floor_of(cost),
        },
        None => net < cost,
    };

    for (li, line) in snap.lines.iter().enumerate() {
        if ctx.open(li as Ix).is_zero() || !ctx.valid.line(li) {
            continue;
        }
        let Some(order) = snap.orders.get(line.order as usize) else {
            continue;
        };
        if !matches!(
            order.state,
            OrderState::Draft | OrderState::Sent | OrderState::Sale
        ) {
            continue;
        }
        let Some(product) = snap.products.get(line.product as usize) else {
            continue;
        };
        let net = ctx.net(li as Ix);
        let qty = ctx.open(li as Ix);

        let mut reasons = Vec::new(); // (policy key, evidence)
        let mut revenue = Decimal::ZERO;
        let mut margin = Decimal::ZERO;
        let mut target: Option<Decimal> = None;

        // Contract price valid at the order date.
        let contract = contract_for(order.customer, line.product, line.qty, order.date_order);
        if let Some(c) = contract
            && c.price > Decimal::ZERO
            && (net - c.price).abs() * hundred > t.contract_tolerance_pct * c.price
        {
            let dev = (net - c.price) / c.price * hundred;
            {
                let gap = (c.price - net) * qty;
                if gap > Decimal::ZERO {
                    revenue += gap;
                    margin += gap;
                } else {
                    // Overcharging a contract customer risks a credit note for the difference.
                    revenue += -gap;
                }
                target = Some(c.price);
                reasons.push((
                    "thresholds.price_mismatch.contract_tolerance_pct",
                    ev(
                        text!(
                            "net price ",
                            Money(net),
                            " is ",
                            Plain(dev.abs().round_dp(1)),
                            "% ",
                            if dev < Decimal::ZERO {
                                "below"
                            } else {
                                "above"
                            },
                            " the contract price ",
                            Money(c.price),
                            " (",
                            c.reference,
                            ")"
                        ),
                        "product.pricelist.item",
                        c.id,
                        c.reference.clone(),
                    ),
                ));
            }
        }

        // Margin floor (only with a known cost).
        if let Some(cost) = product.cost
            && net > Decimal::ZERO
            && below_floor(net, cost)
        {
            let floor_price = floor_of(cost);
            let margin_pct = (net - cost) / net * hundred;
            {
                let lost = (floor_price - net) * qty;
                margin = margin.max(lost);
                revenue = revenue.max(lost);
                if target.is_none() {
                    target = Some(floor_price.round_dp(2));
                }
                reasons.push((
                    "thresholds.price_mismatch.margin_floor_pct",
                    ev(
                        text!(
                            "margin ",
                            Plain(margin_pct.round_dp(1)),
                            "% at net price ",
                            Money(net),
                            " and cost ",
                            Money(cost),
                            " is below the ",
                            Plain(t.margin_floor_pct),
                            "% floor"
                        ),
                        "product.product",
                        product.id,
                        product.sku.clone(),
                    ),
                ));
            }
        }

        // Discount ceiling.
        if line.discount > t.max_discount_pct {
            // What is at risk is the discount beyond what the policy allows.
            revenue =
                revenue.max(line.price_unit * (line.discount - t.max_discount_pct) / hundred * qty);
            reasons.push((
                "thresholds.price_mismatch.max_discount_pct",
                ev(
                    text!(
                        "discount ",
                        Num(line.discount),
                        "% exceeds the ",
                        Plain(t.max_discount_pct),
                        "% allowed without a manager"
                    ),
                    "sale.order.line",
                    line.id,
                    line_ref(order, line),
                ),
            ));
        }

        let Some((rule, _)) = reasons.first() else {
            continue;
        };
        let lref = line_ref(order, line);
        let rule = rule.to_string();
        // The title says why: "0% off list" alone reads like a list price flagged for
        // nothing when the reason is the margin floor.
        let why = match rule.as_str() {
            "thresholds.price_mismatch.margin_floor_pct" => "margin below the floor",
            "thresholds.price_mismatch.max_discount_pct" => "discount above the limit",
            _ => "off the contract price",
        };
        let title = text!(
            lref,
            ": ",
            product.sku,
            " at ",
            Money(net),
            " net (",
            Num(line.discount),
            "% off list ",
            Money(line.price_unit),
            "), ",
            why
        );
        let mut e = base(
            ctx,
            Kind::PriceMismatch,
            &[&order.name, &text!(line.id)],
            order,
            Some(line),
            title,
            rule.clone(),
            impact(ctx, order, revenue, margin, 0),
        );
        e.evidence.push(ev(
            text!(
                lref,
                ": ",
                Num(qty),
                " × ",
                product.sku,
                " at ",
                Money(line.price_unit),
                " less ",
                Num(line.discount),
                "% = ",
                Money(net),
                " net"
            ),
            "sale.order.line",
            line.id,
            lref.clone(),
        ));
        let keys: Vec<&str> = reasons.iter().map(|r| r.0).collect();
        for (_, evd) in reasons {
            e.evidence.push(evd);
        }
        if product.cost.is_none() {
            e.evidence.push(ev(
                text!(
                    product.sku,
                    " has no cost in the data; the margin floor was not checked"
                ),
                "product.product",
                product.id,
                product.sku.clone(),
            ));
        }
        e.evidence.push(policy_ev(
            ctx,
            &rule,
            text!("policy thresholds fired: ", keys.join(", ")),
        ));
        e.confidence = if contract.is_some() || product.cost.is_some() {
            0.9
        } else {
            0.7
        };

        if let Some(price) = target {
            e.recommendations.push(rec(
                ctx,
                Action::ApplyPrice {
                    order: order.name.clone(),
                    line: line.id,
                    price,
                },
                text!("Set the net price of ", lref, " to ", Money(price)),
                vec![
                    text!(
                        "changes the line value by ",
                        Plain(((price - net) * qty).round_dp(2))
                    ),
                    "a quotation already sent needs the customer's agreement".to_string(),
                ],
            ));
        }
        let manager = ctx
            .policy
            .approvers("apply_price")
            .first()
            .cloned()
            .unwrap_or_else(|| "sales_manager".to_string());
        e.recommendations.push(rec(
            ctx,
            Action::RouteForApproval {
                order: order.name.clone(),
                role: manager.clone(),
            },
            text!("Ask the ", manager, " to approve the price as it stands"),
            vec!["keeps the deal; the margin loss stays".to_string()],
        ));
        super::push(out, e);
    }
}
