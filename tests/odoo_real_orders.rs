//! Shipment delays, missing documents, price mismatches and credit holds against a real
//! Odoo 17.0 and 18.0 (see `tests/real_odoo/mod.rs` for how the servers are found): each
//! situation is planted the way users make it, beside a clean counter-example, in one
//! database per version; one load through `OdooSource` and one scan must flag exactly the
//! planted kinds on the planted orders and none of these kinds on the clean ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod real_odoo;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use order_copilot::core::exception::Exception;
use order_copilot::odoo::config::{DEFAULT, OdooConfig};
use order_copilot::odoo::source::OdooSource;
use order_copilot::policy::Policy;
use real_odoo::{RealOdoo, odoo_datetime};
use serde_json::json;

/// The kinds this file proves.
const KINDS: [&str; 4] = [
    "shipment_delay",
    "missing_documents",
    "price_mismatch",
    "credit_hold",
];

/// Customers in Belgium are at home; shipments elsewhere need export documents.
fn config() -> OdooConfig {
    let text = DEFAULT.replace("home_countries = []", "home_countries = [\"BE\"]");
    assert_ne!(
        text, DEFAULT,
        "the default config has no empty home_countries"
    );
    OdooConfig::parse("test", &text).unwrap()
}

/// What the scan should say about each planted order: the kinds of this file it flags.
struct Expect {
    orders: BTreeMap<String, BTreeSet<&'static str>>,
}

impl Expect {
    async fn order(&mut self, odoo: &RealOdoo, id: i64, kinds: &[&'static str]) {
        let name = odoo.name_of("sale.order", id).await;
        self.orders.insert(name, kinds.iter().copied().collect());
    }
}

fn flagged(exceptions: &[Exception]) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut out: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for e in exceptions {
        if let Some(k) = KINDS.iter().find(|k| **k == e.kind.as_str()) {
            out.entry(e.order_ref.clone()).or_default().insert(k);
        }
    }
    out
}

fn at(t: DateTime<Utc>) -> String {
    odoo_datetime(t)
}

async fn order_desk(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "order_desk").await else {
        return;
    };
    let now = Utc::now();
    let mut expect = Expect {
        orders: BTreeMap::new(),
    };
    let be = odoo.country("BE").await;
    let de = odoo.country("DE").await;
    let home = |name: &str| (name.to_string(), json!({"country_id": be}));
    let widget = odoo.product("OD-W", "Order Desk Widget", 100.0, 60.0).await;
    odoo.set_stock(widget, 1000.0).await;
    let scarce = odoo.product("OD-S", "Scarce Widget", 100.0, 60.0).await;
    odoo.set_stock(scarce, 4.0).await;
    let customer =
        async |(name, extra): (String, serde_json::Value)| odoo.customer(&name, extra).await;

    // ---- shipment delay -------------------------------------------------------------
    // The promised date passed and the delivery is still in the warehouse.
    let c = customer(home("Late Promise BV")).await;
    let so = odoo
        .order(
            c,
            &[(widget, 5.0)],
            json!({"commitment_date": at(now - Duration::days(2))}),
        )
        .await;
    expect.order(&odoo, so, &["shipment_delay"]).await;
    // The warehouse moved the delivery three days past the promise.
    let c = customer(home("Moved Delivery BV")).await;
    let so = odoo
        .order(
            c,
            &[(widget, 5.0)],
            json!({"commitment_date": at(now + Duration::days(5))}),
        )
        .await;
    let pk = odoo.deliveries(so).await[0];
    odoo.reschedule(pk, &at(now + Duration::days(8))).await;
    expect.order(&odoo, so, &["shipment_delay"]).await;
    // Part shipped before the promise, which passed with the backorder still waiting.
    let c = customer(home("Backorder BV")).await;
    let so = odoo
        .order(
            c,
            &[(scarce, 10.0)],
            json!({"commitment_date": at(now - Duration::days(1))}),
        )
        .await;
    let pk = odoo.deliveries(so).await[0];
    odoo.check_availability(pk).await;
    odoo.validate_with_backorder(pk).await;
    odoo.attach(
        "stock.picking",
        pk,
        "POD-backorder-first-part.pdf",
        b"signed",
    )
    .await;
    expect.order(&odoo, so, &["shipment_delay"]).await;
    // Clean: a future promise with the stock reserved.
    let c = customer(home("Future Promise BV")).await;
    let so = odoo
        .order(
            c,
            &[(widget, 5.0)],
            json!({"commitment_date": at(now + Duration::days(10))}),
        )
        .await;
    expect.order(&odoo, so, &[]).await;
    // Clean: no promised date, stock reserved, confirmed today.
    let c = customer(home("No Promise BV")).await;
    let so = odoo.order(c, &[(widget, 5.0)], json!({})).await;
    expect.order(&odoo, so, &[]).await;

    // ---- missing documents ----------------------------------------------------------
    // Shipped with nothing attached.
    let c = customer(home("Bare Shipment BV")).await;
    let so = odoo.order(c, &[(widget, 3.0)], json!({})).await;
    odoo.ship(so).await;
    expect.order(&odoo, so, &["missing_documents"]).await;
    // An export delivery ready to ship tomorrow without its commercial invoice and
    // certificate of origin.
    let c = customer(("Export Ohne Papiere GmbH".into(), json!({"country_id": de}))).await;
    let so = odoo
        .order(
            c,
            &[(widget, 3.0)],
            json!({"commitment_date": at(now + Duration::days(1))}),
        )
        .await;
    expect.order(&odoo, so, &["missing_documents"]).await;
    // Clean: shipped, and the signed proof of delivery is attached.
    let c = customer(home("Signed For BV")).await;
    let so = odoo.order(c, &[(widget, 3.0)], json!({})).await;
    let pk = odoo.ship(so).await;
    odoo.attach("stock.picking", pk, "POD-signed.pdf", b"signed")
        .await;
    expect.order(&odoo, so, &[]).await;
    // Clean: an export delivery shipping tomorrow with its export documents attached.
    let c = customer(("Export Mit Papieren GmbH".into(), json!({"country_id": de}))).await;
    let so = odoo
        .order(
            c,
            &[(widget, 3.0)],
            json!({"commitment_date": at(now + Duration::days(1))}),
        )
        .await;
    let pk = odoo.deliveries(so).await[0];
    odoo.attach("stock.picking", pk, "CINV-2291.pdf", b"invoice")
        .await;
    odoo.attach("stock.picking", pk, "COO-2291.pdf", b"origin")
        .await;
    expect.order(&odoo, so, &[]).await;
    // Clean: a domestic delivery not shipped yet (its slip is printed when it ships).
    let c = customer(home("Not Yet Shipped BV")).await;
    let so = odoo.order(c, &[(widget, 3.0)], json!({})).await;
    expect.order(&odoo, so, &[]).await;

    // ---- price mismatch -------------------------------------------------------------
    odoo.enable_pricelists().await;
    // A discount beyond what the policy allows without a manager.
    let c = customer(home("Deep Discount BV")).await;
    let so = odoo
        .quotation_with(c, widget, 4.0, json!({"discount": 30.0}))
        .await;
    odoo.confirm(so).await;
    expect.order(&odoo, so, &["price_mismatch"]).await;
    // A contract customer whose quotation line was typed over with another price.
    let c = customer(home("Contract Override BV")).await;
    odoo.contract_price(c, "Contract Override", widget, 80.0, 0.0)
        .await;
    let so = odoo.quotation(c, &[(widget, 4.0)], json!({})).await;
    let line = odoo.order_lines(so).await[0];
    odoo.edit_line(so, line, json!({"price_unit": 95.0})).await;
    expect.order(&odoo, so, &["price_mismatch"]).await;
    // Clean: a draft quotation at list price.
    let c = customer(home("List Price BV")).await;
    let so = odoo.quotation(c, &[(widget, 4.0)], json!({})).await;
    expect.order(&odoo, so, &[]).await;
    // Clean: a contract customer's order at the contract price (the pricelist set it).
    let c = customer(home("Contract Kept BV")).await;
    odoo.contract_price(c, "Contract Kept", widget, 80.0, 0.0)
        .await;
    let so = odoo.order(c, &[(widget, 4.0)], json!({})).await;
    let price = odoo
        .read(
            "sale.order.line",
            &[odoo.order_lines(so).await[0]],
            &["price_unit"],
        )
        .await[0]["price_unit"]
        .as_f64();
    assert_eq!(price, Some(80.0), "the pricelist sets the contract price");
    expect.order(&odoo, so, &[]).await;
    // Clean: a draft quotation of 4 at list price for a customer whose contract price
    // starts at 100 units (Odoo's pricelist gives the list price: 0 % off).
    let c = customer(home("Volume Contract BV")).await;
    odoo.contract_price(c, "Volume Contract", widget, 80.0, 100.0)
        .await;
    let so = odoo.quotation(c, &[(widget, 4.0)], json!({})).await;
    expect.order(&odoo, so, &[]).await;

    // ---- credit hold ----------------------------------------------------------------
    odoo.enable_credit_limits().await;
    // Over the limit: 1 000 allowed, 1 500 confirmed.
    let c = customer(home("Over Limit BV")).await;
    odoo.set_credit_limit(c, 1000.0).await;
    let so = odoo.order(c, &[(widget, 15.0)], json!({})).await;
    expect.order(&odoo, so, &["credit_hold"]).await;
    // Over the limit with the taxes: 1 000 untaxed is 1 150 with the 15 % sales tax of a
    // fresh database, against 1 100 allowed.
    let c = customer(home("Taxed Over Limit BV")).await;
    odoo.set_credit_limit(c, 1100.0).await;
    let so = odoo.order(c, &[(widget, 10.0)], json!({})).await;
    let amounts = odoo
        .read("sale.order", &[so], &["amount_untaxed", "amount_total"])
        .await;
    assert!(
        amounts[0]["amount_total"].as_f64() > Some(1100.0),
        "the premise: a sales tax on the product: {amounts:?}"
    );
    expect.order(&odoo, so, &["credit_hold"]).await;
    // An invoice 45 days overdue (policy: 30), and a new order.
    let c = customer(home("Slow Payer BV")).await;
    let old = odoo.order(c, &[(widget, 2.0)], json!({})).await;
    odoo.ship(old).await;
    let pk = odoo.deliveries(old).await[0];
    odoo.attach("stock.picking", pk, "POD-old.pdf", b"signed")
        .await;
    odoo.invoice(old, now - Duration::days(75), now - Duration::days(45))
        .await;
    expect.order(&odoo, old, &[]).await;
    let so = odoo.order(c, &[(widget, 1.0)], json!({})).await;
    expect.order(&odoo, so, &["credit_hold"]).await;
    // Clean: under the limit.
    let c = customer(home("Under Limit BV")).await;
    odoo.set_credit_limit(c, 10_000.0).await;
    let so = odoo.order(c, &[(widget, 5.0)], json!({})).await;
    expect.order(&odoo, so, &[]).await;
    // Clean: an invoice partly paid leaves 500 open; with a 1 000 order the exposure is
    // 1 500 of a 2 800 limit (unpaid it would be 2 000 + tax + 1 000: over).
    let c = customer(home("Partly Paid BV")).await;
    odoo.set_credit_limit(c, 2800.0).await;
    let first = odoo.order(c, &[(widget, 20.0)], json!({})).await;
    let pk = odoo.ship(first).await;
    odoo.attach("stock.picking", pk, "POD-first.pdf", b"signed")
        .await;
    let inv = odoo
        .invoice(first, now - Duration::days(5), now + Duration::days(25))
        .await;
    let total = odoo.read("account.move", &[inv], &["amount_total"]).await[0]["amount_total"]
        .as_f64()
        .unwrap();
    odoo.pay(inv, total - 500.0, now).await;
    expect.order(&odoo, first, &[]).await;
    let so = odoo.order(c, &[(widget, 10.0)], json!({})).await;
    expect.order(&odoo, so, &[]).await;

    // ---- one load, one scan -----------------------------------------------------------
    let source = OdooSource::new(odoo.admin.clone(), config());
    let snap = Arc::unwrap_or_clone(source.refresh().await.unwrap());
    let credit: BTreeMap<&str, Option<String>> = snap
        .customers
        .iter()
        .map(|c| (c.name.as_str(), c.credit_limit.map(|l| l.to_string())))
        .collect();
    assert_eq!(
        credit["Over Limit BV"].as_deref(),
        Some("1000"),
        "{credit:?}"
    );
    assert_eq!(
        credit["Under Limit BV"].as_deref(),
        Some("10000"),
        "{credit:?}"
    );
    assert_eq!(credit["Late Promise BV"], None, "{credit:?}");
    let residual: Vec<String> = snap
        .invoices
        .iter()
        .filter(|i| snap.customers[i.customer as usize].name == "Partly Paid BV")
        .map(|i| i.residual.round_dp(2).normalize().to_string())
        .collect();
    assert_eq!(
        residual,
        ["500"],
        "the open part of the partly paid invoice"
    );

    let policy = Policy::embedded().unwrap();
    let scan = order_copilot::core::detect(&snap, &policy, snap.taken_at);
    let got = flagged(&scan.exceptions);
    let mut wrong = Vec::new();
    for (order, want) in &expect.orders {
        let have = got.get(order).cloned().unwrap_or_default();
        if &have != want {
            wrong.push(format!("{order}: expected {want:?}, flagged {have:?}"));
        }
    }
    let titles: Vec<String> = scan
        .exceptions
        .iter()
        .filter(|e| KINDS.contains(&e.kind.as_str()))
        .map(|e| format!("{} {}: {}", e.kind.as_str(), e.order_ref, e.title))
        .collect();
    assert!(
        wrong.is_empty(),
        "Odoo {version}:\n{}\nexceptions of these kinds:\n{}",
        wrong.join("\n"),
        titles.join("\n")
    );
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_desk_17() {
    order_desk(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_desk_18() {
    order_desk(18).await
}
