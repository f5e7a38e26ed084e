//! Payment history against a real Odoo 17.0 and 18.0 (see `tests/real_odoo/mod.rs` for
//! how the servers are found): invoices posted and paid on chosen dates — late, on time, in
//! two parts, settled by a credit note, still open — must come back through `OdooSource`
//! as the customer's payment history (days late, share paid late, trend, oldest open
//! item), set the credit hold's confidence and stand in its evidence; a payment registered
//! after the first load arrives with the next incremental sync.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod real_odoo;

use std::sync::Arc;

use chrono::{Duration, Utc};
use order_copilot::core::exception::Kind;
use order_copilot::domain::{Snapshot, TrendDirection};
use order_copilot::odoo::config::{DEFAULT, OdooConfig};
use order_copilot::odoo::source::OdooSource;
use order_copilot::policy::Policy;
use real_odoo::RealOdoo;
use serde_json::json;

fn customer<'a>(snap: &'a Snapshot, name: &str) -> &'a order_copilot::domain::Customer {
    snap.customers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} not read"))
}

async fn payment_history(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "payment_history").await else {
        return;
    };
    let now = Utc::now();
    let ago = |d: i64| now - Duration::days(d);
    let widget = odoo.product("PH-W", "Payment Widget", 100.0, 60.0).await;
    odoo.set_stock(widget, 100.0).await;
    odoo.enable_credit_limits().await;

    // A customer paying later and later.
    let late = odoo.customer("Later Payer BV", json!({})).await;
    // Earlier in the year: 15 days late, and 2 days early.
    let i1 = odoo
        .posted_move("out_invoice", late, widget, 1000.0, ago(300), ago(270))
        .await;
    odoo.pay(i1, 1000.0, ago(255)).await;
    let i2 = odoo
        .posted_move("out_invoice", late, widget, 1000.0, ago(200), ago(170))
        .await;
    odoo.pay(i2, 1000.0, ago(172)).await;
    // Recently: paid in two parts, the second 30 days late; and one on its due date.
    let i3 = odoo
        .posted_move("out_invoice", late, widget, 1000.0, ago(80), ago(60))
        .await;
    odoo.pay(i3, 400.0, ago(65)).await;
    odoo.pay(i3, 600.0, ago(30)).await;
    let i4 = odoo
        .posted_move("out_invoice", late, widget, 500.0, ago(50), ago(20))
        .await;
    odoo.pay(i4, 500.0, ago(20)).await;
    // Cancelled by a credit note: settled, but not paid.
    let i5 = odoo
        .posted_move("out_invoice", late, widget, 300.0, ago(120), ago(100))
        .await;
    let cn = odoo
        .posted_move("out_refund", late, widget, 300.0, ago(95), ago(95))
        .await;
    odoo.apply_credit_note(i5, cn).await;
    // Open, half paid, due in ten days: the oldest open item (none is overdue).
    let i6 = odoo
        .posted_move("out_invoice", late, widget, 800.0, ago(40), ago(-10))
        .await;
    odoo.pay(i6, 400.0, ago(15)).await;
    // Due before the twelve months: not counted.
    let i7 = odoo
        .posted_move("out_invoice", late, widget, 1000.0, ago(430), ago(400))
        .await;
    odoo.pay(i7, 1000.0, ago(380)).await;
    odoo.set_credit_limit(late, 1000.0).await;
    let late_order = odoo.order(late, &[(widget, 10.0)], json!({})).await;

    // A customer who pays on time, over the limit all the same.
    let good = odoo.customer("On Time BV", json!({})).await;
    for k in 0..3 {
        let inv = odoo
            .posted_move(
                "out_invoice",
                good,
                widget,
                500.0,
                ago(100 + 60 * k),
                ago(70 + 60 * k),
            )
            .await;
        odoo.pay(inv, 500.0, ago(75 + 60 * k)).await;
    }
    odoo.set_credit_limit(good, 100.0).await;
    let good_order = odoo.order(good, &[(widget, 5.0)], json!({})).await;

    let source = OdooSource::new(
        odoo.admin.clone(),
        OdooConfig::parse("test", DEFAULT).unwrap(),
    );
    let snap = Arc::unwrap_or_clone(source.refresh().await.unwrap());
    assert!(
        !source
            .sync_status()
            .warnings
            .iter()
            .any(|w| w.contains("payment history")),
        "Odoo {version}: {:?}",
        source.sync_status().warnings
    );
    let h = &customer(&snap, "Later Payer BV").payments;
    assert_eq!(
        (h.invoices_paid, h.paid_late, h.max_days_late),
        (4, 2, 30),
        "Odoo {version}: {h:?}"
    );
    assert_eq!(h.avg_days_late, 22.5, "Odoo {version}: {h:?}");
    assert_eq!(
        (h.partially_paid, h.credited),
        (1, 1),
        "Odoo {version}: {h:?}"
    );
    let t = h.trend.expect("a trend");
    assert_eq!(
        (
            t.recent_invoices,
            t.recent_days_past_due,
            t.earlier_invoices,
            t.earlier_days_past_due
        ),
        (2, 15.0, 2, 7.5),
        "Odoo {version}: {t:?}"
    );
    assert_eq!(t.direction, TrendDirection::Worsening);
    let oldest = h.oldest_open.as_ref().expect("an open item");
    assert_eq!(oldest.id, i6, "Odoo {version}: {oldest:?}");
    assert_eq!(oldest.residual.round_dp(2).normalize().to_string(), "400");
    let g = &customer(&snap, "On Time BV").payments;
    assert_eq!(
        (g.invoices_paid, g.paid_late),
        (3, 0),
        "Odoo {version}: {g:?}"
    );
    assert!(
        g.trend
            .is_some_and(|t| t.direction == TrendDirection::Steady)
    );

    let policy = Policy::embedded().unwrap();
    let scan = order_copilot::core::detect(&snap, &policy, snap.taken_at);
    let hold = |order: &str| {
        scan.exceptions
            .iter()
            .find(|e| e.kind == Kind::CreditHold && e.order_ref == order)
            .unwrap_or_else(|| panic!("Odoo {version}: no credit hold on {order}"))
    };
    let late_name = odoo.name_of("sale.order", late_order).await;
    let e = hold(&late_name);
    assert_eq!(e.confidence, 0.95, "Odoo {version}: half paid late");
    let facts: Vec<&str> = e.evidence.iter().map(|x| x.fact.as_str()).collect();
    for want in [
        "paid 2 of 4 invoices late in the last 12 months (average 22 days late, at most 30)",
        "payments worsening: 15 days past due on average over the last 3 months (2 invoices), 8 in the 9 months before (2)",
        "1 open invoice(s) partly paid",
        "1 invoice(s) of the last 12 months settled in part by credit notes",
    ] {
        assert!(
            facts.contains(&want),
            "Odoo {version}: {want:?} not in {facts:#?}"
        );
    }
    assert!(
        facts.iter().any(|f| f.starts_with("oldest open item INV/")),
        "Odoo {version}: {facts:#?}"
    );
    let good_name = odoo.name_of("sale.order", good_order).await;
    assert_eq!(
        hold(&good_name).confidence,
        0.7,
        "Odoo {version}: pays on time"
    );

    // Registered after the first load: the next (incremental) sync sees it paid, on time.
    odoo.pay(i6, 400.0, ago(5)).await;
    let snap = source.refresh().await.unwrap();
    assert!(source.sync_status().incremental_calls.is_some());
    let h = &customer(&snap, "Later Payer BV").payments;
    assert_eq!(
        (h.invoices_paid, h.paid_late, h.partially_paid),
        (5, 2, 0),
        "Odoo {version}: {h:?}"
    );
    assert!(h.oldest_open.is_none(), "Odoo {version}: {h:?}");
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_history_17() {
    payment_history(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_history_18() {
    payment_history(18).await
}
