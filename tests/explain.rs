//! Snapshot tests of `explain`: the text a service rep reads for one order, on the seeded
//! demo at a fixed moment, so any change to evidence, options or wording shows in review.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use order_copilot::core::explain::{OrderStatus, explain, render_text};
use order_copilot::core::{self};
use order_copilot::demo::{DemoConfig, generate};
use order_copilot::policy::Policy;

fn demo() -> (order_copilot::domain::Snapshot, Policy, core::ScanResult) {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
    let snap = generate(
        &DemoConfig {
            seed: 42,
            orders: 400,
            now,
        },
        &mut |_, _, _| {},
    );
    let policy = Policy::embedded().unwrap();
    let scan = core::detect(&snap, &policy, now);
    (snap, policy, scan)
}

/// The order with the most exceptions about it, ties by name.
fn busiest(scan: &core::ScanResult) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in &scan.exceptions {
        if e.order_ref.starts_with('S') {
            *counts.entry(&e.order_ref).or_default() += 1;
        }
    }
    let max = counts.values().copied().max().unwrap();
    counts
        .into_iter()
        .find(|(_, n)| *n == max)
        .unwrap()
        .0
        .to_string()
}

#[test]
fn explain_the_busiest_order() {
    let (snap, policy, scan) = demo();
    let order = busiest(&scan);
    let x = explain(&snap, &policy, &scan, &order).unwrap();
    assert_ne!(x.status, OrderStatus::Clear);
    insta::assert_snapshot!(render_text(&x));
}

#[test]
fn explain_a_blocked_order_per_kind() {
    let (snap, policy, scan) = demo();
    for kind in ["stock_shortage", "allocation_conflict", "credit_hold"] {
        let e = scan
            .exceptions
            .iter()
            .find(|e| e.kind.as_str() == kind)
            .unwrap();
        let x = explain(&snap, &policy, &scan, &e.order_ref).unwrap();
        assert_eq!(x.status, OrderStatus::Blocked, "{kind}");
        insta::assert_snapshot!(kind, render_text(&x));
    }
}

#[test]
fn explain_a_clear_order() {
    let (snap, policy, scan) = demo();
    let clear = snap
        .orders
        .iter()
        .find(|o| {
            !scan
                .exceptions
                .iter()
                .any(|e| e.order_ref == o.name || e.related_orders.contains(&o.name))
        })
        .unwrap();
    let x = explain(&snap, &policy, &scan, &clear.name.to_lowercase()).unwrap();
    assert_eq!(x.status, OrderStatus::Clear);
    insta::assert_snapshot!(render_text(&x));
}

#[test]
fn unknown_order_suggests_close_matches() {
    let (snap, policy, scan) = demo();
    let err = explain(&snap, &policy, &scan, "S42")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no order S42"), "{err}");
    assert!(err.contains("did you mean S00042"), "{err}");
    let err = explain(&snap, &policy, &scan, "hello")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("did you mean"), "{err}");
}
