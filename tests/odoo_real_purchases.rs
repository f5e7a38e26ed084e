//! Supplier confirmations and slips against a real Odoo 17.0 and 18.0 (see
//! `tests/real_odoo/mod.rs` for how the servers are found):
//! - a request for quotation sent (Print RFQ marks it sent) and not confirmed after the
//!   policy's days is a supplier delay; a recent one and a draft never sent are not;
//! - a confirmed purchase moved later (the buyer edits the line's planned date in the
//!   form, which Odoo does not track) is a slip, seen only because the store kept the date
//!   it had at the first scan; the slip names the sale order it now makes late. A move of
//!   one day stays under the policy's slip days.
//!
//! The store is the suite's PostgreSQL when `TEST_DATABASE_URL` is set, else SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;
mod real_odoo;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::Db;
use order_copilot::app::planned::keep_planned_dates;
use order_copilot::app::source::Source;
use order_copilot::core::{Exception, Kind, detect};
use order_copilot::domain::Snapshot;
use order_copilot::odoo::config::{DEFAULT, OdooConfig};
use order_copilot::odoo::source::OdooSource;
use order_copilot::policy::Policy;
use order_copilot::store::Store;
use real_odoo::{RealOdoo, odoo_datetime};
use serde_json::json;

/// A request for quotation of one line, dated `dated`, sent to the vendor (Print RFQ marks
/// it sent) unless `send` is false.
async fn rfq(
    odoo: &RealOdoo,
    vendor: i64,
    product: i64,
    dated: DateTime<Utc>,
    send: bool,
) -> String {
    let po = odoo
        .create(
            "purchase.order",
            json!({"partner_id": vendor, "date_order": odoo_datetime(dated), "order_line": [[0, 0, {
                "product_id": product, "product_qty": 10.0,
                "date_planned": odoo_datetime(Utc::now() + Duration::days(20)),
            }]]}),
        )
        .await;
    if send {
        odoo.call(
            "purchase.order",
            "print_quotation",
            json!([[po]]),
            json!({}),
        )
        .await;
    }
    let r = odoo.read("purchase.order", &[po], &["state", "name"]).await;
    assert_eq!(
        r[0]["state"],
        if send { "sent" } else { "draft" },
        "RFQ state"
    );
    r[0]["name"].as_str().unwrap().to_string()
}

/// One scan as the server runs it: a sync of the source, the store's planned dates, detect.
async fn scan(source: &OdooSource, store: &Store) -> (Arc<Snapshot>, Vec<Exception>) {
    let snap = source.refresh().await.unwrap();
    let now = snap.taken_at;
    let snap = keep_planned_dates(store, &source.key(), snap, now)
        .await
        .unwrap();
    let result = detect(&snap, &Policy::embedded().unwrap(), now);
    (snap, result.exceptions)
}

fn delay_on<'a>(found: &'a [Exception], reference: &str) -> Option<&'a Exception> {
    found
        .iter()
        .find(|e| e.kind == Kind::SupplierDelay && e.order_ref == reference)
}

async fn confirmations_and_slips(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "purchases").await else {
        return;
    };
    let db = if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.trim().is_empty()) {
        Db::Postgres
    } else {
        Db::Sqlite
    };
    let (store, _store_cfg) = common::open(db).await;
    let vendor = odoo.vendor("Slow Answers GmbH").await;
    let customer = odoo.customer("Waiting Customer", json!({})).await;

    // ---- RFQs --------------------------------------------------------------------------
    let p = odoo.product("RFQ-1", "Quoted Part", 100.0, 60.0).await;
    let old_rfq = rfq(&odoo, vendor, p, Utc::now() - Duration::days(10), true).await;
    let recent_rfq = rfq(&odoo, vendor, p, Utc::now() - Duration::days(2), true).await;
    let draft_rfq = rfq(&odoo, vendor, p, Utc::now() - Duration::days(10), false).await;

    // ---- slips -------------------------------------------------------------------------
    // 1. Planned before the promise at the first scan, then moved 8 days later: after it.
    let p = odoo.product("SL-1", "Slipping Gear", 100.0, 60.0).await;
    let po = odoo
        .purchase(vendor, p, 20.0, Utc::now() + Duration::days(3))
        .await;
    let (slip_po, slip_line) = (
        odoo.name_of("purchase.order", po).await,
        odoo.purchase_line(po).await,
    );
    let o = odoo
        .order(
            customer,
            &[(p, 8.0)],
            json!({"commitment_date": odoo_datetime(Utc::now() + Duration::days(7))}),
        )
        .await;
    let late_order = odoo.name_of("sale.order", o).await;
    // 2. Moved one day: under the policy's three slip days.
    let p = odoo.product("SL-2", "Steady Gear", 100.0, 60.0).await;
    let po = odoo
        .purchase(vendor, p, 20.0, Utc::now() + Duration::days(3))
        .await;
    let (small_po, small_line) = (
        odoo.name_of("purchase.order", po).await,
        odoo.purchase_line(po).await,
    );
    odoo.order(
        customer,
        &[(p, 8.0)],
        json!({"commitment_date": odoo_datetime(Utc::now() + Duration::days(10))}),
    )
    .await;

    let cfg = OdooConfig::parse("default", DEFAULT).unwrap();
    let source = OdooSource::new(odoo.admin.clone(), cfg);
    let (_, first) = scan(&source, &store).await;
    let e = delay_on(&first, &old_rfq).unwrap_or_else(|| {
        panic!("Odoo {version}: the RFQ sent 10 days ago is a supplier delay: {first:#?}")
    });
    assert_eq!(e.policy_rule, "thresholds.supplier_delay.rfq_confirm_days");
    assert!(
        e.title.contains("not confirmed after 10 days"),
        "Odoo {version}: {}",
        e.title
    );
    assert!(delay_on(&first, &recent_rfq).is_none(), "Odoo {version}");
    assert!(delay_on(&first, &draft_rfq).is_none(), "Odoo {version}");
    for po in [&slip_po, &small_po] {
        assert!(
            delay_on(&first, po).is_none(),
            "Odoo {version}: {po} is on time at the first scan: {:#?}",
            delay_on(&first, po)
        );
    }
    assert!(
        first
            .iter()
            .all(|e| !(e.order_ref == late_order && e.kind == Kind::SupplierDelay)),
        "Odoo {version}: {late_order} is supplied in time at the first scan"
    );

    // The buyer moves the purchases in the form (Odoo keeps no trace of the old date).
    odoo.replan_purchase_line(
        odoo.find("purchase.order", json!([["name", "=", slip_po]]))
            .await,
        slip_line,
        Utc::now() + Duration::days(11),
    )
    .await;
    odoo.replan_purchase_line(
        odoo.find("purchase.order", json!([["name", "=", small_po]]))
            .await,
        small_line,
        Utc::now() + Duration::days(4),
    )
    .await;

    let (snap, second) = scan(&source, &store).await;
    let b = snap.inbound.iter().find(|b| b.id == slip_line).unwrap();
    assert!(
        b.original_planned.is_some() && b.original_planned < b.planned,
        "Odoo {version}: the store gave the line its first planned date"
    );
    let e = delay_on(&second, &slip_po)
        .unwrap_or_else(|| panic!("Odoo {version}: {slip_po} slipped 8 days: {second:#?}"));
    assert_eq!(e.policy_rule, "thresholds.supplier_delay.slip_days");
    assert!(
        e.title.contains(&format!("now makes {late_order} late")),
        "Odoo {version}: {}",
        e.title
    );
    assert!(
        e.evidence.iter().any(|x| x.fact.contains("moved from")
            && x.source.model == "purchase.order.line"
            && x.source.id == slip_line),
        "Odoo {version}: {:#?}",
        e.evidence
    );
    assert!(
        e.evidence.iter().any(|x| x
            .fact
            .starts_with(&format!("the slip makes {late_order} late"))),
        "Odoo {version}: {:#?}",
        e.evidence
    );
    assert_eq!(
        e.related_orders,
        std::slice::from_ref(&late_order),
        "Odoo {version}"
    );
    // The sale order now waits for a purchase planned after its promise.
    assert!(
        second
            .iter()
            .any(|e| e.order_ref == late_order && e.kind == Kind::SupplierDelay),
        "Odoo {version}: {late_order} waits for {slip_po}"
    );
    assert!(
        delay_on(&second, &small_po).is_none(),
        "Odoo {version}: {small_po} moved one day: {:#?}",
        delay_on(&second, &small_po)
    );
    let changes = store
        .planned_changes(&source.key(), slip_line)
        .await
        .unwrap();
    assert_eq!(changes.len(), 1, "Odoo {version}: one change kept");
    assert!(changes[0].to > changes[0].from);
    // A third scan with nothing changed records no new change and keeps the slip.
    let (_, third) = scan(&source, &store).await;
    assert!(delay_on(&third, &slip_po).is_some());
    assert_eq!(
        store
            .planned_changes(&source.key(), slip_line)
            .await
            .unwrap()
            .len(),
        1
    );
    eprintln!(
        "Odoo {version}: RFQ {old_rfq} and slip {slip_po} (making {late_order} late) found; store on {db:?}"
    );
    odoo.drop_db().await;
}

/// The store's own history of planned dates, on both backends: first seen, changes, and
/// sources kept apart.
async fn planned_dates_kept(db: Db) {
    use order_copilot::store::purchase_dates::PlannedSeen;
    let (store, _cfg) = common::open(db).await;
    let seen = |planned: i64| {
        vec![
            PlannedSeen {
                line_id: 7,
                po_ref: "P00007".into(),
                planned,
            },
            PlannedSeen {
                line_id: 8,
                po_ref: "P00008".into(),
                planned: 500,
            },
        ]
    };
    let first = store
        .keep_planned_dates("odoo a", &seen(100), 1)
        .await
        .unwrap();
    assert_eq!((first[&7].first_planned, first[&7].changes), (100, 0));
    let same = store
        .keep_planned_dates("odoo a", &seen(100), 2)
        .await
        .unwrap();
    assert_eq!(same, first, "nothing changed, nothing recorded");
    let moved = store
        .keep_planned_dates("odoo a", &seen(300), 3)
        .await
        .unwrap();
    assert_eq!(
        (
            moved[&7].first_planned,
            moved[&7].planned,
            moved[&7].changes,
            moved[&7].changed_at
        ),
        (100, 300, 1, Some(3))
    );
    assert_eq!(moved[&8], first[&8]);
    let back = store
        .keep_planned_dates("odoo a", &seen(200), 4)
        .await
        .unwrap();
    assert_eq!((back[&7].first_planned, back[&7].changes), (100, 2));
    let changes = store.planned_changes("odoo a", 7).await.unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.seen_at, c.from, c.to))
            .collect::<Vec<_>>(),
        [(3, 100, 300), (4, 300, 200)]
    );
    // Another source's line 7 is another line.
    let other = store
        .keep_planned_dates("odoo b", &seen(900), 5)
        .await
        .unwrap();
    assert_eq!((other[&7].first_planned, other[&7].changes), (900, 0));
}

both!(planned_dates_kept);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_and_slips_17() {
    confirmations_and_slips(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_and_slips_18() {
    confirmations_and_slips(18).await
}
