//! Unit tests of every detector on hand-made snapshots, including the edge cases the data
//! throws at them: cancelled and delivered orders, negative stock, missing promise dates,
//! products without cost, customers without a credit limit, dangling references.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rust_decimal::Decimal;

use crate::core::{Action, Exception, Kind, ScanResult, detect};
use crate::domain::testkit::{Kit, d, days, now};
use crate::domain::{DocumentKind, OrderState, PickingState, Tier};
use crate::policy::Policy;

fn scan(k: &Kit) -> ScanResult {
    detect(&k.s, &Policy::embedded().unwrap(), now())
}

fn of_kind(r: &ScanResult, kind: Kind) -> Vec<&Exception> {
    r.exceptions.iter().filter(|e| e.kind == kind).collect()
}

fn one(r: &ScanResult, kind: Kind) -> &Exception {
    let v = of_kind(r, kind.clone());
    assert_eq!(v.len(), 1, "expected one {kind}, got {:#?}", v);
    v[0]
}

fn actions(e: &Exception) -> Vec<&str> {
    e.recommendations.iter().map(|r| r.action.name()).collect()
}

// ---- stock shortage -------------------------------------------------------------

#[test]
fn shortage_when_demand_exceeds_stock_and_inbound() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 10, 0);
    let o = k.order(c, 0, Some(5), &[(p, 25)]);
    let r = scan(&k);
    let e = one(&r, Kind::StockShortage);
    assert_eq!(e.order_ref, k.s.orders[o as usize].name);
    assert_eq!(e.line, Some(1));
    assert_eq!(e.impact.revenue_at_risk, d(1500)); // 15 short × 100
    assert_eq!(e.owner_role, "planner");
    assert!(e.evidence.iter().any(|x| x.source.model == "stock.quant"));
    assert!(actions(e).contains(&"split_shipment"), "{:?}", actions(e));
    assert!(
        actions(e).contains(&"resource_purchase"),
        "no inbound: buy elsewhere"
    );
    assert!(e.policy_rule.starts_with("thresholds.stock_shortage"));
    assert_eq!(e.policy_version.len(), 12);
}

#[test]
fn no_shortage_when_stock_covers_demand() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 30, 0);
    k.order(c, 0, Some(5), &[(p, 25)]);
    assert!(of_kind(&scan(&k), Kind::StockShortage).is_empty());
}

/// The earlier need is served from stock; the later one waits for a confirmed purchase
/// planned after its promise: that purchase's delay on the order (not a shortage).
#[test]
fn earlier_need_is_served_first_and_inbound_gives_eta() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 10, 0);
    k.inbound(p, 0, 50, 12, true);
    let early = k.order(c, 0, Some(2), &[(p, 10)]);
    let late = k.order(c, 0, Some(6), &[(p, 10)]);
    let r = scan(&k);
    assert!(of_kind(&r, Kind::StockShortage).is_empty());
    let e = one(&r, Kind::SupplierDelay);
    assert_eq!(e.order_ref, k.s.orders[late as usize].name);
    assert_ne!(e.order_ref, k.s.orders[early as usize].name);
    // Covered when the purchase arrives, 6 days after the need date.
    assert_eq!(e.impact.hours_past_promise, 6 * 24);
    assert!(actions(e).contains(&"expedite_purchase"));
    assert!(actions(e).contains(&"reschedule"));
    let reschedule = e
        .recommendations
        .iter()
        .find_map(|r| match &r.action {
            Action::Reschedule { new_date, .. } => Some(*new_date),
            _ => None,
        })
        .unwrap();
    assert_eq!(reschedule, days(12));
}

#[test]
fn shortage_recommends_transfer_and_substitute_with_free_stock() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let sub = k.product("SKU-2");
    k.s.products[p as usize].substitutes = vec![sub];
    let c = k.customer("Acme", Tier::A, None);
    k.stock(p, 0, 0, 0);
    k.stock(p, 1, 40, 0);
    k.stock(sub, 0, 40, 0);
    k.order(c, 0, Some(5), &[(p, 20)]);
    let r = scan(&k);
    let e = one(&r, Kind::StockShortage);
    let transfer = e
        .recommendations
        .iter()
        .find_map(|r| match &r.action {
            Action::Transfer {
                from_warehouse,
                qty,
                ..
            } => Some((from_warehouse.clone(), *qty)),
            _ => None,
        })
        .unwrap();
    assert_eq!(transfer, ("WH2".to_string(), d(20)));
    assert!(actions(e).contains(&"substitute"));
    assert!(
        e.recommendations
            .iter()
            .all(|r| !r.approver_roles.is_empty())
    );
}

#[test]
fn cancelled_and_delivered_orders_are_not_demand() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 0, 0);
    let cancelled = k.order(c, 0, Some(5), &[(p, 10)]);
    k.s.orders[cancelled as usize].state = OrderState::Cancel;
    let delivered = k.order(c, 0, Some(5), &[(p, 10)]);
    k.line_mut(delivered, 1).qty_delivered = d(10);
    let r = scan(&k);
    assert!(r.exceptions.is_empty(), "{:#?}", r.exceptions);
    assert_eq!(r.open_lines, 0);
}

#[test]
fn negative_stock_counts_as_zero_and_is_reported() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, -5, 0);
    k.order(c, 0, Some(5), &[(p, 3)]);
    let r = scan(&k);
    let e = one(&r, Kind::StockShortage);
    assert_eq!(e.impact.revenue_at_risk, d(300));
    assert!(r.findings.iter().any(|f| f.code == "negative_stock"));
}

#[test]
fn missing_promise_date_uses_default_lead_time_and_says_so() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.order(c, 0, None, &[(p, 3)]);
    let r = scan(&k);
    let e = one(&r, Kind::StockShortage);
    assert!(
        e.evidence[0].fact.contains("no promised date"),
        "{}",
        e.evidence[0].fact
    );
    assert!(r.findings.iter().any(|f| f.code == "order_without_promise"));
}

#[test]
fn demand_beyond_the_horizon_is_not_checked() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.order(c, 0, Some(200), &[(p, 3)]);
    assert!(of_kind(&scan(&k), Kind::StockShortage).is_empty());
}

// ---- allocation conflict --------------------------------------------------------

#[test]
fn stock_held_by_lower_tier_while_tier_a_starves() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let a = k.customer("Strategic", Tier::A, None);
    let c = k.customer("Standard", Tier::C, None);
    k.stock(p, 0, 10, 10);
    // The tier C order was confirmed first and got the stock; it is needed much later.
    let holder = k.order(c, 0, Some(20), &[(p, 10)]);
    k.line_mut(holder, 1).qty_reserved = d(10);
    let starving = k.order(a, 0, Some(2), &[(p, 10)]);
    let r = scan(&k);
    let e = one(&r, Kind::AllocationConflict);
    assert_eq!(e.order_ref, k.s.orders[starving as usize].name);
    assert_eq!(
        e.related_orders,
        vec![k.s.orders[holder as usize].name.clone()]
    );
    match &e.recommendations[0].action {
        Action::Reallocate {
            from_order,
            to_order,
            qty,
            ..
        } => {
            assert_eq!(from_order, &k.s.orders[holder as usize].name);
            assert_eq!(to_order, &k.s.orders[starving as usize].name);
            assert_eq!(*qty, d(10));
        }
        other => panic!("expected a reallocation, got {other:?}"),
    }
    assert_eq!(
        e.recommendations[0].approver_roles,
        vec!["planner", "sales_manager"]
    );
}

#[test]
fn no_conflict_when_free_stock_covers_the_starving_line() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let a = k.customer("Strategic", Tier::A, None);
    let c = k.customer("Standard", Tier::C, None);
    k.stock(p, 0, 20, 10);
    let holder = k.order(c, 0, Some(20), &[(p, 10)]);
    k.line_mut(holder, 1).qty_reserved = d(10);
    k.order(a, 0, Some(2), &[(p, 10)]);
    assert!(of_kind(&scan(&k), Kind::AllocationConflict).is_empty());
}

#[test]
fn higher_priority_holder_is_not_robbed() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let a = k.customer("Strategic", Tier::A, None);
    let c = k.customer("Standard", Tier::C, None);
    k.stock(p, 0, 10, 10);
    let holder = k.order(a, 0, Some(2), &[(p, 10)]);
    k.line_mut(holder, 1).qty_reserved = d(10);
    k.order(c, 0, Some(3), &[(p, 10)]);
    assert!(of_kind(&scan(&k), Kind::AllocationConflict).is_empty());
}

// ---- price mismatch -------------------------------------------------------------

#[test]
fn price_below_contract_and_margin_floor() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(5), &[(p, 10)]);
    k.s.contract_prices.push(crate::domain::ContractPrice {
        id: 1,
        customer: c,
        product: p,
        price: d(90),
        min_qty: Decimal::ZERO,
        valid_from: Some(days(-100)),
        valid_to: Some(days(100)),
        reference: "CT-1".into(),
    });
    k.line_mut(o, 1).discount = d(35); // net 65: below contract 90 and below the 8% floor (65.22)
    let r = scan(&k);
    let e = one(&r, Kind::PriceMismatch);
    assert_eq!(
        e.policy_rule,
        "thresholds.price_mismatch.contract_tolerance_pct"
    );
    assert!(
        e.evidence
            .iter()
            .any(|x| x.source.model == "product.pricelist.item")
    );
    assert!(e.evidence.iter().any(|x| x.fact.contains("floor")));
    assert!(
        e.evidence
            .iter()
            .any(|x| x.fact.contains("exceeds the 25%"))
    );
    assert_eq!(e.impact.revenue_at_risk, d(250)); // (90 - 65) × 10
    match &e.recommendations[0].action {
        Action::ApplyPrice { price, .. } => assert_eq!(*price, d(90)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn contract_within_tolerance_is_fine() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(5), &[(p, 10)]);
    k.s.contract_prices.push(crate::domain::ContractPrice {
        id: 1,
        customer: c,
        product: p,
        price: Decimal::new(9020, 2),
        min_qty: Decimal::ZERO,
        valid_from: None,
        valid_to: None,
        reference: "CT-1".into(),
    });
    k.line_mut(o, 1).discount = d(10); // net 90.00 vs 90.20: 0.2% off
    assert!(of_kind(&scan(&k), Kind::PriceMismatch).is_empty());
}

/// A quantity break ("80 from 100 units") does not apply to a quotation of 4: at list
/// price, 0 % off, it is what Odoo's pricelist gives, not a mismatch.
#[test]
fn quantity_break_applies_only_from_its_minimum() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 1000, 0);
    let small = k.order(c, 0, Some(5), &[(p, 4)]);
    k.s.orders[small as usize].state = OrderState::Draft;
    let big = k.order(c, 0, Some(5), &[(p, 100)]);
    k.s.contract_prices.push(crate::domain::ContractPrice {
        id: 1,
        customer: c,
        product: p,
        price: d(80),
        min_qty: d(100),
        valid_from: None,
        valid_to: None,
        reference: "Volume".into(),
    });
    let r = scan(&k);
    let e = one(&r, Kind::PriceMismatch);
    assert_eq!(e.order_ref, k.s.orders[big as usize].name);
    assert!(
        e.evidence
            .iter()
            .any(|x| x.fact.contains("contract price 80"))
    );
}

#[test]
fn product_without_cost_skips_the_margin_check() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    k.s.products[p as usize].cost = None;
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(5), &[(p, 10)]);
    k.line_mut(o, 1).discount = d(20); // would break a 60 cost floor
    assert!(of_kind(&scan(&k), Kind::PriceMismatch).is_empty());
}

// ---- credit hold ----------------------------------------------------------------

#[test]
fn order_that_crosses_the_limit_is_held_not_the_ones_before() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, Some(2500));
    k.stock(p, 0, 100, 0);
    k.invoice(c, 1000, 10);
    let first = k.order(c, 0, Some(5), &[(p, 10)]); // 1000 → exposure 2000
    let second = k.order(c, 0, Some(5), &[(p, 10)]); // → 3000 > 2500
    k.s.orders[second as usize].date_order =
        k.s.orders[first as usize].date_order + chrono::Duration::hours(1);
    let r = scan(&k);
    let e = one(&r, Kind::CreditHold);
    assert_eq!(e.order_ref, k.s.orders[second as usize].name);
    assert_eq!(e.owner_role, "finance");
    assert!(actions(e).contains(&"release_credit_hold"));
    let release = e
        .recommendations
        .iter()
        .find(|r| r.action.name() == "release_credit_hold")
        .unwrap();
    assert_eq!(release.approver_roles, vec!["finance"]);
}

/// Invoices weigh with their taxes (`amount_residual`), so the uninvoiced part of an order
/// does too: 1 000 untaxed at 15 % is 1 150 against a 1 100 limit.
#[test]
fn uninvoiced_exposure_counts_the_orders_taxes() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, Some(1100));
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(5), &[(p, 10)]);
    assert!(of_kind(&scan(&k), Kind::CreditHold).is_empty());
    k.s.orders[o as usize].tax_rate = Decimal::new(15, 2);
    let r = scan(&k);
    let e = one(&r, Kind::CreditHold);
    assert!(
        e.title.contains("exposure 50.00 over the 1100 limit"),
        "{}",
        e.title
    );
}

/// Payment history sets the confidence of a hold over the limit and is its own evidence:
/// a customer who pays on time makes it less certain, one who pays later and later more.
#[test]
fn payment_history_sets_the_confidence_and_is_evidence() {
    use crate::domain::{OpenItem, PaymentHistory, PaymentTrend, TrendDirection};
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, Some(500));
    k.stock(p, 0, 100, 0);
    k.order(c, 0, Some(5), &[(p, 10)]); // 1000 on a 500 limit
    let hold = |k: &Kit| one(&scan(k), Kind::CreditHold).clone();
    assert_eq!(hold(&k).confidence, 0.8, "no history");

    k.s.customers[c as usize].payments = PaymentHistory {
        invoices_paid: 10,
        paid_late: 1,
        avg_days_late: 3.0,
        max_days_late: 3,
        ..PaymentHistory::default()
    };
    let e = hold(&k);
    assert_eq!(e.confidence, 0.7, "pays on time");
    assert!(
        e.evidence.iter().any(|x| x.fact
            == "paid 1 of 10 invoices late in the last 12 months (average 3 days late, at most 3)"),
        "{:?}",
        e.evidence
    );

    k.s.customers[c as usize].payments.trend = Some(PaymentTrend {
        recent_days_past_due: 12.0,
        recent_invoices: 2,
        earlier_days_past_due: 0.5,
        earlier_invoices: 8,
        direction: TrendDirection::Worsening,
    });
    k.s.customers[c as usize].payments.partially_paid = 1;
    k.s.customers[c as usize].payments.oldest_open = Some(OpenItem {
        id: 77,
        invoice: "INV/2026/00077".into(),
        due: k.s.taken_at + chrono::Duration::days(5),
        residual: Decimal::from(250),
    });
    let e = hold(&k);
    assert_eq!(e.confidence, 0.9, "paying later and later");
    let facts: Vec<&str> = e.evidence.iter().map(|x| x.fact.as_str()).collect();
    assert!(
        facts
            .iter()
            .any(|f| f.starts_with("payments worsening: 12 days past due")),
        "{facts:?}"
    );
    assert!(
        facts.contains(&"1 open invoice(s) partly paid"),
        "{facts:?}"
    );
    let oldest = e
        .evidence
        .iter()
        .find(|x| x.fact.starts_with("oldest open item"))
        .unwrap();
    assert_eq!(
        (oldest.source.model.as_ref(), oldest.source.id),
        ("account.move", 77)
    );

    k.s.customers[c as usize].payments.paid_late = 5;
    assert_eq!(hold(&k).confidence, 0.95, "a late payer");
}

#[test]
fn customer_without_limit_is_not_held_unless_overdue() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 1000, 0);
    k.invoice(c, 100_000, 10);
    k.order(c, 0, Some(5), &[(p, 100)]);
    assert!(of_kind(&scan(&k), Kind::CreditHold).is_empty());
    k.invoice(c, 500, -45); // 45 days overdue
    let r = scan(&k);
    let e = one(&r, Kind::CreditHold);
    assert_eq!(e.policy_rule, "thresholds.credit_hold.max_overdue_days");
    assert!(
        e.evidence
            .iter()
            .any(|x| x.source.model == "account.move" && x.fact.contains("45 days"))
    );
}

// ---- shipment delay -------------------------------------------------------------

#[test]
fn delivery_moved_past_the_promise() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(3), &[(p, 10)]);
    k.picking(o, 4); // the warehouse moved it a day past the promise
    let r = scan(&k);
    let e = one(&r, Kind::ShipmentDelay);
    assert_eq!(e.impact.hours_past_promise, 24);
    assert!(e.title.contains("WH1/OUT/"));
}

/// Odoo schedules a promised order's delivery on the promise itself (`scheduled_date` =
/// `date_deadline` = `commitment_date`): that is on time, not "a transit time late".
#[test]
fn delivery_scheduled_on_the_promise_is_on_time() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(10), &[(p, 10)]);
    k.picking(o, 10);
    assert!(of_kind(&scan(&k), Kind::ShipmentDelay).is_empty());
}

#[test]
fn shipment_on_time_or_done_is_fine() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(5), &[(p, 10)]);
    k.picking(o, 2);
    let late = k.order(c, 0, Some(1), &[(p, 10)]);
    let pk = k.picking(late, 3);
    k.s.pickings[pk as usize].state = PickingState::Done;
    k.s.pickings[pk as usize].done_at = Some(now());
    assert!(of_kind(&scan(&k), Kind::ShipmentDelay).is_empty());
}

#[test]
fn promise_passed_without_shipping() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::A, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(-2), &[(p, 10)]);
    k.picking(o, -3);
    let r = scan(&k);
    let e = one(&r, Kind::ShipmentDelay);
    assert!(e.title.contains("not shipped yet"), "{}", e.title);
    assert!(e.confidence > 0.9);
}

// ---- supplier delay -------------------------------------------------------------

#[test]
fn overdue_purchase_names_the_orders_waiting_for_it() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::A, None);
    let b = k.inbound(p, 0, 50, -2, true);
    let o = k.order(c, 0, Some(5), &[(p, 20)]);
    let r = scan(&k);
    let e = one(&r, Kind::SupplierDelay);
    assert_eq!(e.order_ref, k.s.inbound[b as usize].po_ref);
    assert_eq!(e.related_orders, vec![k.s.orders[o as usize].name.clone()]);
    assert_eq!(e.tier, Tier::A);
    assert_eq!(e.owner_role, "buyer");
    assert!(actions(e).contains(&"expedite_purchase"));
}

#[test]
fn slipped_and_unconfirmed_purchases() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let slipped = k.inbound(p, 0, 50, 20, true);
    k.s.inbound[slipped as usize].original_planned = Some(days(10));
    let unconfirmed = k.inbound(p, 1, 50, 20, false);
    let fine = k.inbound(p, 1, 50, 25, true);
    let r = scan(&k);
    let refs: Vec<&str> = of_kind(&r, Kind::SupplierDelay)
        .iter()
        .map(|e| e.order_ref.as_str())
        .collect();
    assert!(refs.contains(&k.s.inbound[slipped as usize].po_ref.as_str()));
    assert!(refs.contains(&k.s.inbound[unconfirmed as usize].po_ref.as_str()));
    assert!(!refs.contains(&k.s.inbound[fine as usize].po_ref.as_str()));
}

/// A purchase moved later names the sales orders it now makes late (needed before the new
/// date), and not those it still serves in time.
#[test]
fn a_slip_names_the_orders_it_makes_late() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    let b = k.inbound(p, 0, 50, 12, true);
    k.s.inbound[b as usize].original_planned = Some(days(4));
    let late = k.order(c, 0, Some(6), &[(p, 10)]);
    let fine = k.order(c, 0, Some(20), &[(p, 10)]);
    let r = scan(&k);
    let po = k.s.inbound[b as usize].po_ref.clone();
    let e = of_kind(&r, Kind::SupplierDelay)
        .into_iter()
        .find(|e| e.order_ref == po)
        .unwrap();
    let late_name = &k.s.orders[late as usize].name;
    let fine_name = &k.s.orders[fine as usize].name;
    assert!(
        e.title.contains(&format!("now makes {late_name} late")),
        "{}",
        e.title
    );
    assert!(!e.title.contains(fine_name.as_str()), "{}", e.title);
    assert!(e.evidence.iter().any(|x| x.fact.contains("moved from")));
    assert!(e.evidence.iter().any(|x| {
        x.fact
            .starts_with(&format!("the slip makes {late_name} late"))
    }));
    assert!(
        !e.evidence
            .iter()
            .any(|x| x.fact.contains(&format!("makes {fine_name}")))
    );
    assert_eq!(e.policy_rule, "thresholds.supplier_delay.slip_days");
}

/// An RFQ sent to the supplier and not confirmed after the policy's days is late; a recent
/// one, and a draft never sent, are not.
#[test]
fn an_rfq_sent_and_not_confirmed() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let old = k.inbound(p, 0, 50, 12, false);
    k.s.inbound[old as usize].state = crate::domain::PurchaseState::Sent;
    let recent = k.inbound(p, 0, 50, 12, false);
    k.s.inbound[recent as usize].state = crate::domain::PurchaseState::Sent;
    k.s.inbound[recent as usize].ordered_at = now() - chrono::Duration::days(2);
    let draft = k.inbound(p, 0, 50, 12, false);
    k.s.inbound[draft as usize].state = crate::domain::PurchaseState::Draft;
    let r = scan(&k);
    let delays = of_kind(&r, Kind::SupplierDelay);
    assert_eq!(delays.len(), 1, "{delays:#?}");
    let e = delays[0];
    assert_eq!(e.order_ref, k.s.inbound[old as usize].po_ref);
    assert_eq!(e.policy_rule, "thresholds.supplier_delay.rfq_confirm_days");
    assert!(
        e.title.contains("not confirmed after 10 days"),
        "{}",
        e.title
    );
    assert!(actions(e).contains(&"expedite_purchase"));
}

/// A confirmed purchase planned after the promise of the order it supplies is a supplier
/// delay on that order, with the purchase line as evidence (it used to be only a shortage).
#[test]
fn purchase_planned_after_the_promise_delays_the_order_it_supplies() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 4, 0);
    let b = k.inbound(p, 0, 50, 12, true);
    let waiting = k.order(c, 0, Some(5), &[(p, 10)]);
    let in_time = k.order(c, 0, Some(20), &[(p, 10)]);
    let r = scan(&k);
    let delays = of_kind(&r, Kind::SupplierDelay);
    assert_eq!(delays.len(), 1, "{delays:#?}");
    let e = delays[0];
    assert_eq!(e.order_ref, k.s.orders[waiting as usize].name);
    assert_ne!(e.order_ref, k.s.orders[in_time as usize].name);
    assert_eq!(e.line, Some(1));
    let po = &k.s.inbound[b as usize];
    assert!(
        e.evidence
            .iter()
            .any(|x| x.source.model == "purchase.order.line" && x.source.id == po.id),
        "{:#?}",
        e.evidence
    );
    assert_eq!(e.related_orders, vec![po.po_ref.clone()]);
    assert_eq!(e.impact.hours_past_promise, 7 * 24);
    assert_eq!(e.impact.revenue_at_risk, d(600)); // 6 short × 100
    assert!(actions(e).contains(&"expedite_purchase"));
    assert!(actions(e).contains(&"reschedule"));
    assert!(actions(e).contains(&"split_shipment"), "4 ship now");
    // One diagnosis per line: the stock is on order, only too late — not a shortage.
    assert!(of_kind(&r, Kind::StockShortage).is_empty());
}

/// Make-to-order: a line bought for with its own purchase waits for that purchase, even
/// with stock on the shelf (Odoo does not reserve stock for it) — its purchase planned
/// after the promise is a supplier delay on the order; planned in time, nothing.
#[test]
fn made_to_order_line_waits_for_its_own_purchase() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let late_po = k.inbound(p, 0, 8, 12, true);
    let timely_po = k.inbound(p, 0, 8, 3, true);
    let late = k.order(c, 0, Some(5), &[(p, 8)]);
    let timely = k.order(c, 0, Some(5), &[(p, 8)]);
    for (inbound, order) in [(late_po, late), (timely_po, timely)] {
        let line = k.s.orders[order as usize].first_line;
        k.s.supply_links
            .push(crate::domain::SupplyLink { inbound, line });
    }
    let r = scan(&k);
    assert!(of_kind(&r, Kind::StockShortage).is_empty());
    let e = one(&r, Kind::SupplierDelay);
    assert_eq!(e.order_ref, k.s.orders[late as usize].name);
    let po = &k.s.inbound[late_po as usize];
    assert!(
        e.evidence
            .iter()
            .any(|x| x.source.model == "purchase.order.line" && x.source.id == po.id)
    );
    assert!(e.evidence.iter().any(|x| x.fact.contains("make-to-order")));
    assert_eq!(e.impact.hours_past_promise, 7 * 24);
    assert!(actions(e).contains(&"expedite_purchase"));
    assert!(actions(e).contains(&"reschedule"));
}

/// A draft RFQ planned late is no delay of anyone's: nothing is ordered yet.
#[test]
fn draft_purchase_planned_late_is_no_supplier_delay() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    let b = k.inbound(p, 0, 50, 12, true);
    k.s.inbound[b as usize].state = crate::domain::PurchaseState::Draft;
    k.order(c, 0, Some(5), &[(p, 10)]);
    assert!(of_kind(&scan(&k), Kind::SupplierDelay).is_empty());
}

// ---- missing documents ----------------------------------------------------------

#[test]
fn missing_shipping_documents_before_shipping() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(3), &[(p, 10)]);
    let pk = k.picking(o, 1) as usize;
    k.s.pickings[pk]
        .documents_required
        .push(DocumentKind::CommercialInvoice);
    let r = scan(&k);
    let e = one(&r, Kind::MissingDocuments);
    assert!(e.title.contains("commercial_invoice"));
    // Far from the ship date it is not yet an exception.
    k.s.pickings[pk].scheduled = Some(days(10));
    k.s.orders[o as usize].promised = Some(days(12));
    assert!(of_kind(&scan(&k), Kind::MissingDocuments).is_empty());
}

#[test]
fn missing_proof_of_delivery_after_shipping() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    let o = k.order(c, 0, Some(-10), &[(p, 10)]);
    k.line_mut(o, 1).qty_delivered = d(10);
    let pk = k.picking(o, -12) as usize;
    k.s.pickings[pk].state = PickingState::Done;
    k.s.pickings[pk].done_at = Some(days(-6));
    let r = scan(&k);
    let e = one(&r, Kind::MissingDocuments);
    assert!(e.title.contains("proof_of_delivery"));
    k.s.pickings[pk].done_at = Some(days(-2)); // within 96 h
    assert!(of_kind(&scan(&k), Kind::MissingDocuments).is_empty());
}

/// The delivery slip is printed when the delivery ships: an open delivery about to ship is
/// not missing it, a shipped one without it (or anything else attached) is.
#[test]
fn delivery_slip_is_due_at_shipping() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, None, &[(p, 10)]);
    let pk = k.picking(o, 0) as usize;
    k.s.pickings[pk].documents_present.clear();
    assert!(of_kind(&scan(&k), Kind::MissingDocuments).is_empty());
    k.line_mut(o, 1).qty_delivered = d(10);
    k.s.pickings[pk].state = PickingState::Done;
    k.s.pickings[pk].done_at = Some(now());
    let r = scan(&k);
    let e = one(&r, Kind::MissingDocuments);
    assert!(e.title.ends_with("missing delivery_slip"), "{}", e.title);
    assert!(e.evidence[0].fact.contains("without delivery_slip"));
    // The signed proof of delivery is the signed slip.
    k.s.pickings[pk].documents_present = vec![DocumentKind::ProofOfDelivery];
    assert!(of_kind(&scan(&k), Kind::MissingDocuments).is_empty());
    // Long after shipping with nothing attached: both.
    k.s.pickings[pk].documents_present.clear();
    k.s.pickings[pk].done_at = Some(days(-6));
    let r = scan(&k);
    let e = one(&r, Kind::MissingDocuments);
    assert!(
        e.title.ends_with("delivery_slip, proof_of_delivery"),
        "{}",
        e.title
    );
    assert!(
        e.evidence[0]
            .fact
            .ends_with("without delivery_slip and has no proof of delivery"),
        "{}",
        e.evidence[0].fact
    );
    // Delivered and signed for, but shipped without its dangerous-goods declaration.
    k.s.pickings[pk]
        .documents_required
        .push(DocumentKind::DangerousGoods);
    k.s.pickings[pk].documents_present = vec![DocumentKind::ProofOfDelivery];
    let r = scan(&k);
    let e = one(&r, Kind::MissingDocuments);
    assert!(e.title.ends_with("missing dangerous_goods"), "{}", e.title);
    assert!(
        e.evidence[0].fact.ends_with("without dangerous_goods"),
        "{}",
        e.evidence[0].fact
    );
}

// ---- repeated changes -----------------------------------------------------------

#[test]
fn three_changes_in_the_window() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::A, None);
    k.stock(p, 0, 100, 0);
    let o = k.order(c, 0, Some(5), &[(p, 10)]);
    k.change(o, 1);
    k.change(o, 2);
    assert!(of_kind(&scan(&k), Kind::RepeatedChanges).is_empty());
    k.change(o, 40); // outside the 30-day window
    assert!(of_kind(&scan(&k), Kind::RepeatedChanges).is_empty());
    k.change(o, 3);
    let r = scan(&k);
    let e = one(&r, Kind::RepeatedChanges);
    assert_eq!(
        e.evidence
            .iter()
            .filter(|x| x.source.model == "mail.tracking.value")
            .count(),
        3
    );
    assert!(e.confidence >= 0.9, "key account");
}

// ---- custom rules ---------------------------------------------------------------

#[test]
fn custom_rule_fires_with_field_evidence_and_routing() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Small Shop", Tier::C, None);
    k.stock(p, 0, 1000, 0);
    k.order(c, 0, Some(5), &[(p, 500)]); // 50,000 open
    let r = scan(&k);
    let e = one(&r, Kind::Custom("large_order_standard_account".into()));
    assert_eq!(e.owner_role, "sales_manager");
    assert_eq!(e.policy_rule, "rules.large_order_standard_account");
    assert!(
        e.evidence[0].fact.contains("customer.tier = 'C'"),
        "{}",
        e.evidence[0].fact
    );
    assert!(
        e.evidence[0].fact.contains("order.open_value = 50000"),
        "{}",
        e.evidence[0].fact
    );
    assert_eq!(actions(e), vec!["route_for_approval"]);
}

// ---- identity, data quality, robustness ------------------------------------------

#[test]
fn ids_are_stable_across_scans_and_unrelated_changes() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let q = k.product("SKU-2");
    let c = k.customer("Acme", Tier::B, None);
    k.order(c, 0, Some(5), &[(p, 25)]);
    let first: Vec<String> = scan(&k).exceptions.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        first,
        scan(&k)
            .exceptions
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    );
    k.stock(q, 1, 5, 0);
    k.order(c, 1, Some(5), &[(q, 1)]);
    let after: Vec<String> = scan(&k).exceptions.iter().map(|e| e.id.clone()).collect();
    assert!(first.iter().all(|id| after.contains(id)));
}

#[test]
fn dangling_references_become_findings_not_panics() {
    let mut k = Kit::new();
    let p = k.product("SKU-1");
    let c = k.customer("Acme", Tier::B, None);
    let o = k.order(c, 0, Some(5), &[(p, 5), (p, 5)]);
    k.line_mut(o, 1).product = 999;
    k.line_mut(o, 2).discount = d(140);
    k.s.pickings.push(crate::domain::Picking {
        id: 1,
        name: "WH9/OUT/1".into(),
        order: 77,
        warehouse: 9,
        carrier: Some(9),
        state: PickingState::Assigned,
        scheduled: None,
        done_at: None,
        tracking_ref: None,
        documents_required: vec![],
        documents_present: vec![],
    });
    k.s.orders.push(crate::domain::SalesOrder {
        line_count: 50,
        customer: 42,
        ..k.s.orders[0].clone()
    });
    let r = scan(&k);
    let codes: Vec<&str> = r.findings.iter().map(|f| f.code).collect();
    for code in [
        "line_unknown_product",
        "line_discount_out_of_range",
        "picking_unknown_reference",
        "picking_unknown_carrier",
        "order_unknown_customer",
        "order_lines_out_of_range",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    assert!(
        r.exceptions
            .iter()
            .all(|e| e.line != Some(1) || e.kind != Kind::StockShortage)
    );
}

#[test]
fn every_builtin_kind_appears_in_the_default_demo() {
    let snap = crate::demo::generate(
        &crate::demo::DemoConfig {
            seed: 42,
            orders: crate::demo::DemoConfig::DEFAULT_ORDERS,
            now: now(),
        },
        &mut |_, _, _| {},
    );
    let r = detect(&snap, &Policy::embedded().unwrap(), now());
    for kind in Kind::BUILTIN {
        assert!(
            r.exceptions.iter().any(|e| e.kind == kind),
            "no {kind} in the demo"
        );
    }
    // A healthy distributor: most open orders are clean.
    let open_orders = snap
        .orders
        .iter()
        .filter(|o| {
            snap.order_lines(o)
                .iter()
                .any(|l| l.open_qty() > Decimal::ZERO)
        })
        .count();
    let mut touched: Vec<&str> = r
        .exceptions
        .iter()
        .filter(|e| e.order_ref.starts_with('S'))
        .map(|e| e.order_ref.as_str())
        .collect();
    touched.sort();
    touched.dedup();
    let share = touched.len() as f64 / open_orders as f64;
    assert!((0.05..0.35).contains(&share), "{share}");
    // Ranked: scores never increase down the queue.
    assert!(r.exceptions.windows(2).all(|w| w[0].score >= w[1].score));
}
