//! Every action the executor carries out, against a real Odoo 17.0 and 18.0 (see
//! `tests/real_odoo/mod.rs` for how the servers are found), read back from Odoo: the value
//! written, the activity and whom it is for, the message sent — exactly the approved text,
//! public or internal as intended — and exactly one of each after running the same request
//! twice and after a crash between the starting note and the side effect.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod real_odoo;

use std::collections::BTreeMap;

use chrono::{Duration, Timelike, Utc};
use order_copilot::app::source::Executor;
use order_copilot::core::Action;
use order_copilot::odoo::config::OdooConfig;
use order_copilot::odoo::executor::{Marks, OdooExecutor, message_html};
use order_copilot::odoo::wire;
use real_odoo::RealOdoo;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// What the test planted.
struct Planted {
    so: i64,
    so_name: String,
    line: i64,
    po: i64,
    po_name: String,
    po_line: i64,
    picking: i64,
    picking_name: String,
    product: i64,
    planner: i64,
    admin: i64,
}

async fn plant(odoo: &RealOdoo) -> Planted {
    let customer = odoo
        .customer(
            "Executor Retail SA",
            json!({"email": "buyer@executor-retail.example"}),
        )
        .await;
    let vendor = odoo.vendor("Executor Supply GmbH").await;
    let product = odoo.product("EXE-100", "Executor Widget", 12.0, 7.0).await;
    odoo.set_stock(product, 40.0).await;
    let so = odoo
        .order(
            customer,
            &[(product, 5.0)],
            json!({"commitment_date": real_odoo::odoo_datetime(Utc::now() + Duration::days(3))}),
        )
        .await;
    let so_name = odoo.name_of("sale.order", so).await;
    let line = odoo.read("sale.order", &[so], &["order_line"]).await[0]["order_line"][0]
        .as_i64()
        .unwrap();
    let picking = odoo.deliveries(so).await[0];
    let picking_name = odoo.name_of("stock.picking", picking).await;
    let po = odoo
        .purchase(vendor, product, 30.0, Utc::now() + Duration::days(12))
        .await;
    let po_name = odoo.name_of("purchase.order", po).await;
    let po_line = odoo.read("purchase.order", &[po], &["order_line"]).await[0]["order_line"][0]
        .as_i64()
        .unwrap();
    // A second person, who receives the planner's and the buyer's activities.
    let planner = odoo
        .create(
            "res.users",
            json!({"name": "Pat Planner", "login": "pat.planner"}),
        )
        .await;
    let admin = odoo.admin.uid();
    Planted {
        so,
        so_name,
        line,
        po,
        po_name,
        po_line,
        picking,
        picking_name,
        product,
        planner,
        admin,
    }
}

fn config() -> OdooConfig {
    let mut cfg = OdooConfig::embedded().unwrap();
    cfg.actions.role_users = BTreeMap::from([
        ("planner".to_string(), "pat.planner".to_string()),
        ("buyer".to_string(), "pat.planner".to_string()),
    ]);
    cfg
}

/// The messages on a record, oldest first.
async fn messages(odoo: &RealOdoo, model: &str, id: i64) -> Vec<Value> {
    let mut rows = odoo
        .search_read(
            "mail.message",
            json!([["model", "=", model], ["res_id", "=", id]]),
            &["body", "message_id", "subtype_id", "message_type"],
        )
        .await;
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

/// The activities on a record.
async fn activities(odoo: &RealOdoo, model: &str, id: i64) -> Vec<Value> {
    odoo.search_read(
        "mail.activity",
        json!([["res_model", "=", model], ["res_id", "=", id]]),
        &["summary", "user_id", "note"],
    )
    .await
}

/// Messages and activities of one request on a record.
struct Seen {
    started: usize,
    finished: usize,
    public: Vec<Value>,
    activities: Vec<Value>,
}

async fn seen(odoo: &RealOdoo, model: &str, id: i64, key: &str) -> Seen {
    let m = Marks::of(key).unwrap();
    let msgs = messages(odoo, model, id).await;
    let with = |mid: &str| msgs.iter().filter(|r| r["message_id"] == mid).count();
    Seen {
        started: with(&m.started),
        finished: with(&m.finished),
        public: msgs
            .iter()
            .filter(|r| r["message_id"] == m.message.as_str())
            .cloned()
            .collect(),
        activities: activities(odoo, model, id)
            .await
            .into_iter()
            .filter(|a| {
                a["summary"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&m.activity))
            })
            .collect(),
    }
}

/// An action, the model and id it lands on, whom its activity is for (if it schedules one)
/// and the public text it sends (if any).
struct Expect<'a>(Action, &'static str, i64, Option<i64>, Option<&'a str>);

fn subtype(m: &Value) -> &str {
    m["subtype_id"][1].as_str().unwrap_or("")
}

async fn every_action_is_read_back(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "executor_actions").await else {
        return;
    };
    let p = plant(&odoo).await;
    let exec = OdooExecutor::new(odoo.admin.clone(), config());
    let new_date = (Utc::now() + Duration::days(9))
        .with_nanosecond(0)
        .unwrap()
        .with_second(0)
        .unwrap();
    let customer_text = "Dear customer,\n\nYour order ships on 14 June — 2 days later than promised. Sorry for the <delay> & thanks!";
    let supplier_text = "Could you ship our order earlier? We need it by Friday.";
    let purpose = "tell the customer the delivery is expected 2026-06-14";
    let cases = vec![
        Expect(
            Action::Reschedule {
                order: p.so_name.clone(),
                new_date,
            },
            "sale.order",
            p.so,
            None,
            None,
        ),
        Expect(
            Action::ApplyPrice {
                order: p.so_name.clone(),
                line: p.line,
                price: Decimal::new(1075, 2),
            },
            "sale.order",
            p.so,
            None,
            None,
        ),
        Expect(
            Action::ContactCustomer {
                order: p.so_name.clone(),
                purpose: purpose.into(),
                message: Some(customer_text.into()),
            },
            "sale.order",
            p.so,
            None,
            Some(customer_text),
        ),
        Expect(
            Action::ExpeditePurchase {
                po_ref: p.po_name.clone(),
                line: p.po_line,
                supplier: "Executor Supply GmbH".into(),
                message: Some(supplier_text.into()),
            },
            "purchase.order",
            p.po,
            Some(p.planner),
            Some(supplier_text),
        ),
        Expect(
            Action::Reallocate {
                product: "EXE-100".into(),
                qty: Decimal::new(2, 0),
                warehouse: "WH".into(),
                from_order: "S99999".into(),
                from_line: 1,
                to_order: p.so_name.clone(),
                to_line: p.line,
            },
            "sale.order",
            p.so,
            Some(p.planner),
            None,
        ),
        Expect(
            Action::SplitShipment {
                order: p.so_name.clone(),
                line: p.line,
                ship_now: Decimal::new(3, 0),
                backorder: Decimal::new(2, 0),
            },
            "sale.order",
            p.so,
            Some(p.planner),
            None,
        ),
        Expect(
            Action::Substitute {
                order: p.so_name.clone(),
                line: p.line,
                from_product: "EXE-100".into(),
                to_product: "EXE-200".into(),
                qty: Decimal::new(5, 0),
            },
            "sale.order",
            p.so,
            Some(p.planner),
            None,
        ),
        Expect(
            Action::Transfer {
                product: "EXE-100".into(),
                qty: Decimal::new(4, 0),
                from_warehouse: "WH".into(),
                to_warehouse: "WH2".into(),
            },
            "product.product",
            p.product,
            Some(p.planner),
            None,
        ),
        Expect(
            Action::ResourcePurchase {
                product: "EXE-100".into(),
                qty: Decimal::new(10, 0),
                warehouse: "WH".into(),
            },
            "product.product",
            p.product,
            Some(p.planner),
            None,
        ),
        Expect(
            Action::ReleaseCreditHold {
                order: p.so_name.clone(),
                customer: "Executor Retail SA".into(),
            },
            "sale.order",
            p.so,
            // finance has no login in role_users: the order's salesperson.
            Some(p.admin),
            None,
        ),
        Expect(
            Action::RequestDocuments {
                picking: p.picking_name.clone(),
                documents: vec!["delivery_slip".into()],
            },
            "stock.picking",
            p.picking,
            Some(p.admin),
            None,
        ),
        Expect(
            Action::RouteForApproval {
                order: p.so_name.clone(),
                role: "planner".into(),
            },
            "sale.order",
            p.so,
            Some(p.planner),
            None,
        ),
    ];
    for (i, Expect(action, model, id, user, public)) in cases.iter().enumerate() {
        let key = format!("ap_real{version}x{i}");
        let what = format!("{} on Odoo {version}", action.name());
        let r = exec
            .execute(&key, action)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(r["calls"].is_array(), "{what}: {r}");
        // The same request again, by an executor that remembers nothing: nothing new.
        let again = OdooExecutor::new(odoo.admin.clone(), config())
            .execute(&key, action)
            .await
            .unwrap();
        assert_eq!(again["already_executed"], true, "{what}: {again}");
        let s = seen(&odoo, model, *id, &key).await;
        assert_eq!((s.started, s.finished), (1, 1), "{what}");
        match public {
            Some(text) => {
                assert_eq!(s.public.len(), 1, "{what}: {:?}", s.public);
                let m = &s.public[0];
                assert_eq!(m["body"], json!(message_html(text)), "{what}");
                assert_eq!(subtype(m), "Discussions", "{what}: a public message");
                assert_eq!(m["message_type"], "comment", "{what}");
            }
            None => assert!(s.public.is_empty(), "{what}: {:?}", s.public),
        }
        match user {
            Some(u) => {
                assert_eq!(s.activities.len(), 1, "{what}: {:?}", s.activities);
                assert_eq!(s.activities[0]["user_id"][0], *u, "{what}");
            }
            None => assert!(s.activities.is_empty(), "{what}: {:?}", s.activities),
        }
    }
    // The values written.
    let so = odoo.read("sale.order", &[p.so], &["commitment_date"]).await;
    assert_eq!(
        so[0]["commitment_date"],
        json!(wire::format_datetime(new_date))
    );
    let line = odoo
        .read("sale.order.line", &[p.line], &["price_unit", "discount"])
        .await;
    assert_eq!(line[0]["price_unit"], json!(10.75));
    assert_eq!(line[0]["discount"], json!(0.0));
    // The customer never sees the purpose: only internal notes carry it.
    for m in messages(&odoo, "sale.order", p.so).await {
        if m["body"].as_str().is_some_and(|b| b.contains(purpose)) {
            assert_eq!(subtype(&m), "Note", "purpose in a public message: {m}");
        }
    }
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_is_read_back_17() {
    every_action_is_read_back(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_is_read_back_18() {
    every_action_is_read_back(18).await
}

/// Post what an execution posts before crashing: the starting note, and optionally the
/// public message (a crash after the side effect, before the finished note).
async fn crashed_after(odoo: &RealOdoo, model: &str, id: i64, key: &str, public: Option<&str>) {
    let m = Marks::of(key).unwrap();
    let post = |html: String, note: bool, mid: String| {
        let mut kw = wire::message_post_kwargs(&html, note);
        kw.insert("message_id".into(), json!(mid));
        odoo.call(model, "message_post", json!([[id]]), Value::Object(kw))
    };
    post(format!("<p>starting {key}</p>"), true, m.started.clone()).await;
    if let Some(text) = public {
        post(message_html(text), false, m.message.clone()).await;
    }
}

async fn retries_after_a_crash_send_once(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "executor_crash").await else {
        return;
    };
    let p = plant(&odoo).await;
    let text = "Your order is confirmed for Tuesday.";
    let contact = Action::ContactCustomer {
        order: p.so_name.clone(),
        purpose: "internal: confirm the date".into(),
        message: Some(text.into()),
    };
    // Crashed between the starting note and the message: the retry sends it, once.
    let key = format!("ap_crash{version}a");
    crashed_after(&odoo, "sale.order", p.so, &key, None).await;
    let r = OdooExecutor::new(odoo.admin.clone(), config())
        .execute(&key, &contact)
        .await
        .unwrap();
    assert_eq!(r["resumed"], true, "{r}");
    let s = seen(&odoo, "sale.order", p.so, &key).await;
    assert_eq!((s.started, s.finished, s.public.len()), (1, 1, 1));
    // Crashed after the message, before the finished note: the retry does not send again.
    let key = format!("ap_crash{version}b");
    crashed_after(&odoo, "sale.order", p.so, &key, Some(text)).await;
    for _ in 0..2 {
        OdooExecutor::new(odoo.admin.clone(), config())
            .execute(&key, &contact)
            .await
            .unwrap();
    }
    let s = seen(&odoo, "sale.order", p.so, &key).await;
    assert_eq!((s.started, s.finished, s.public.len()), (1, 1, 1));
    assert_eq!(s.public[0]["body"], json!(message_html(text)));
    // Crashed after scheduling the activity (and the human already marked it done): the
    // retry schedules no second one.
    let key = format!("ap_crash{version}c");
    let m = Marks::of(&key).unwrap();
    crashed_after(&odoo, "purchase.order", p.po, &key, None).await;
    odoo.call(
        "purchase.order",
        "activity_schedule",
        json!([[p.po], "mail.mail_activity_data_todo"]),
        json!({"summary": format!("{} expedite purchase", m.activity), "user_id": p.planner}),
    )
    .await;
    let act = activities(&odoo, "purchase.order", p.po).await[0]["id"]
        .as_i64()
        .unwrap();
    odoo.call(
        "mail.activity",
        "action_feedback",
        json!([[act]]),
        json!({"feedback": "done"}),
    )
    .await;
    let expedite = Action::ExpeditePurchase {
        po_ref: p.po_name.clone(),
        line: p.po_line,
        supplier: "Executor Supply GmbH".into(),
        message: Some("Please ship sooner.".into()),
    };
    OdooExecutor::new(odoo.admin.clone(), config())
        .execute(&key, &expedite)
        .await
        .unwrap();
    let s = seen(&odoo, "purchase.order", p.po, &key).await;
    assert!(s.activities.is_empty(), "{:?}", s.activities);
    assert_eq!((s.started, s.finished, s.public.len()), (1, 1, 1));
    // Crashed after writing the promised date: the retry sees the approved value and does
    // not write again.
    let key = format!("ap_crash{version}d");
    let date = (Utc::now() + Duration::days(20))
        .with_nanosecond(0)
        .unwrap()
        .with_second(0)
        .unwrap();
    crashed_after(&odoo, "sale.order", p.so, &key, None).await;
    odoo.write(
        "sale.order",
        &[p.so],
        json!({"commitment_date": wire::format_datetime(date)}),
    )
    .await;
    let r = OdooExecutor::new(odoo.admin.clone(), config())
        .execute(
            &key,
            &Action::Reschedule {
                order: p.so_name.clone(),
                new_date: date,
            },
        )
        .await
        .unwrap();
    let methods: Vec<&str> = r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["message_post"], "only the finished note: {r}");
    let s = seen(&odoo, "sale.order", p.so, &key).await;
    assert_eq!((s.started, s.finished), (1, 1));
    // A request stored before the text was required fails before anything is written,
    // and never sends the purpose.
    let before = messages(&odoo, "sale.order", p.so).await.len();
    let old = Action::ContactCustomer {
        order: p.so_name.clone(),
        purpose: "tell the customer the delivery is late".into(),
        message: None,
    };
    let e = OdooExecutor::new(odoo.admin.clone(), config())
        .execute(&format!("ap_old{version}"), &old)
        .await
        .unwrap_err();
    assert!(
        !e.transient && e.message.contains("without the text"),
        "{e}"
    );
    assert_eq!(messages(&odoo, "sale.order", p.so).await.len(), before);
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_a_crash_send_once_17() {
    retries_after_a_crash_send_once(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_a_crash_send_once_18() {
    retries_after_a_crash_send_once(18).await
}
