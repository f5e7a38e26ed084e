//! Bad data never panics: random corruptions of a small demo (dangling references,
//! negative and absurd numbers, missing dates, truncated tables) are scanned and
//! explained; impossible records must come back as data-quality findings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, TimeZone, Utc};
use order_copilot::core::{self, explain};
use order_copilot::demo::{DemoConfig, generate};
use order_copilot::domain::Snapshot;
use order_copilot::policy::Policy;
use proptest::prelude::*;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
enum Corruption {
    LineProduct(usize, u32),
    LineOrder(usize, u32),
    LineQty(usize, i64),
    LineDiscount(usize, i64),
    LinePrice(usize, i64),
    OrderCustomer(usize, u32),
    OrderWarehouse(usize, u32),
    OrderLines(usize, u32, u32),
    OrderPromise(usize, Option<i64>),
    StockProduct(usize, u32),
    StockQty(usize, i64),
    InboundProduct(usize, u32),
    InboundPlanned(usize, Option<i64>),
    PickingOrder(usize, u32),
    InvoiceCustomer(usize, u32),
    ChangeOrder(usize, u32),
    Substitute(usize, u32),
    ProductCost(usize, Option<i64>),
    TruncateWarehouses(usize),
    TruncateProducts(usize),
    TruncateCustomers(usize),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    let i = 0usize..400;
    let ix = prop_oneof![0u32..50, Just(u32::MAX), 0u32..100_000];
    let n = -1_000_000i64..1_000_000;
    prop_oneof![
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::LineProduct(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::LineOrder(a, b)),
        (i.clone(), n.clone()).prop_map(|(a, b)| Corruption::LineQty(a, b)),
        (i.clone(), -500i64..500).prop_map(|(a, b)| Corruption::LineDiscount(a, b)),
        (i.clone(), n.clone()).prop_map(|(a, b)| Corruption::LinePrice(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::OrderCustomer(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::OrderWarehouse(a, b)),
        (i.clone(), ix.clone(), ix.clone()).prop_map(|(a, b, c)| Corruption::OrderLines(a, b, c)),
        (i.clone(), proptest::option::of(-5000i64..5000))
            .prop_map(|(a, b)| Corruption::OrderPromise(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::StockProduct(a, b)),
        (i.clone(), n.clone()).prop_map(|(a, b)| Corruption::StockQty(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::InboundProduct(a, b)),
        (i.clone(), proptest::option::of(-5000i64..5000))
            .prop_map(|(a, b)| Corruption::InboundPlanned(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::PickingOrder(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::InvoiceCustomer(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::ChangeOrder(a, b)),
        (i.clone(), ix.clone()).prop_map(|(a, b)| Corruption::Substitute(a, b)),
        (i.clone(), proptest::option::of(n)).prop_map(|(a, b)| Corruption::ProductCost(a, b)),
        (0usize..3).prop_map(Corruption::TruncateWarehouses),
        (0usize..50).prop_map(Corruption::TruncateProducts),
        (0usize..50).prop_map(Corruption::TruncateCustomers),
    ]
}

fn apply(s: &mut Snapshot, c: &Corruption) {
    let now = s.taken_at;
    fn at<T>(v: &mut [T], i: usize) -> Option<&mut T> {
        let n = v.len();
        if n == 0 { None } else { v.get_mut(i % n) }
    }
    match c.clone() {
        Corruption::LineProduct(i, x) => {
            if let Some(l) = at(&mut s.lines, i) {
                l.product = x
            }
        }
        Corruption::LineOrder(i, x) => {
            if let Some(l) = at(&mut s.lines, i) {
                l.order = x
            }
        }
        Corruption::LineQty(i, x) => {
            if let Some(l) = at(&mut s.lines, i) {
                l.qty = Decimal::new(x, 2)
            }
        }
        Corruption::LineDiscount(i, x) => {
            if let Some(l) = at(&mut s.lines, i) {
                l.discount = Decimal::from(x)
            }
        }
        Corruption::LinePrice(i, x) => {
            if let Some(l) = at(&mut s.lines, i) {
                l.price_unit = Decimal::new(x, 3)
            }
        }
        Corruption::OrderCustomer(i, x) => {
            if let Some(o) = at(&mut s.orders, i) {
                o.customer = x
            }
        }
        Corruption::OrderWarehouse(i, x) => {
            if let Some(o) = at(&mut s.orders, i) {
                o.warehouse = x
            }
        }
        Corruption::OrderLines(i, a, b) => {
            if let Some(o) = at(&mut s.orders, i) {
                o.first_line = a;
                o.line_count = b
            }
        }
        Corruption::OrderPromise(i, x) => {
            if let Some(o) = at(&mut s.orders, i) {
                o.promised = x.map(|h| now + Duration::hours(h))
            }
        }
        Corruption::StockProduct(i, x) => {
            if let Some(q) = at(&mut s.stock, i) {
                q.product = x
            }
        }
        Corruption::StockQty(i, x) => {
            if let Some(q) = at(&mut s.stock, i) {
                q.on_hand = Decimal::from(x);
                q.reserved = Decimal::from(x / 2 + 7)
            }
        }
        Corruption::InboundProduct(i, x) => {
            if let Some(b) = at(&mut s.inbound, i) {
                b.product = x
            }
        }
        Corruption::InboundPlanned(i, x) => {
            if let Some(b) = at(&mut s.inbound, i) {
                b.planned = x.map(|h| now + Duration::hours(h))
            }
        }
        Corruption::PickingOrder(i, x) => {
            if let Some(p) = at(&mut s.pickings, i) {
                p.order = x
            }
        }
        Corruption::InvoiceCustomer(i, x) => {
            if let Some(v) = at(&mut s.invoices, i) {
                v.customer = x
            }
        }
        Corruption::ChangeOrder(i, x) => {
            if let Some(v) = at(&mut s.changes, i) {
                v.order = x
            }
        }
        Corruption::Substitute(i, x) => {
            if let Some(p) = at(&mut s.products, i) {
                p.substitutes.push(x)
            }
        }
        Corruption::ProductCost(i, x) => {
            if let Some(p) = at(&mut s.products, i) {
                p.cost = x.map(|c| Decimal::new(c, 2))
            }
        }
        Corruption::TruncateWarehouses(n) => s.warehouses.truncate(n),
        Corruption::TruncateProducts(n) => {
            let k = s.products.len().saturating_sub(n);
            s.products.truncate(k)
        }
        Corruption::TruncateCustomers(n) => {
            let k = s.customers.len().saturating_sub(n);
            s.customers.truncate(k)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn corrupted_snapshots_never_panic(corruptions in proptest::collection::vec(corruption(), 1..12)) {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        let mut snap = generate(&DemoConfig { seed: 3, orders: 40, now }, &mut |_, _, _| {});
        for c in &corruptions {
            apply(&mut snap, c);
        }
        let policy = Policy::embedded().unwrap();
        let scan = core::detect(&snap, &policy, now);
        for e in &scan.exceptions {
            prop_assert!(e.score <= 100);
            prop_assert!((0.0..=1.0).contains(&e.confidence));
        }
        for o in snap.orders.iter().take(5) {
            let _ = explain::explain(&snap, &policy, &scan, &o.name);
        }
        let structural = corruptions.iter().any(|c| matches!(c,
            Corruption::LineProduct(_, x) | Corruption::OrderCustomer(_, x) if *x as usize >= 50_000));
        if structural {
            prop_assert!(!scan.findings.is_empty(), "dangling reference not reported");
        }
    }
}
