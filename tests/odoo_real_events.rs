//! Events in seconds against a real Odoo 17.0 and 18.0: `setup_events` installs the
//! automation rules (run twice: the second changes nothing), a server on loopback takes
//! Odoo's webhooks at `/odoo/events`, and each confirmation of a sale order without stock
//! must reach the case queue as a stock shortage — with no poll running, so only the event
//! can bring it. Measured: the time from the `action_confirm` call to the case in the
//! queue, p50 and p95 (goal: p95 < 3 s on an idle loopback; asserted: < 10 s). Wrong secrets and foreign models are
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod real_odoo;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::Db;
use order_copilot::app::source::{BoxFuture, ExecError, Executor};
use order_copilot::core::Kind;
use order_copilot::odoo::client::Secret;
use order_copilot::odoo::config::{DEFAULT, OdooConfig};
use order_copilot::odoo::events::{EVENT_MODELS, EventScanner, routes, setup_events};
use order_copilot::odoo::source::OdooSource;
use order_copilot::policy::Policy;
use real_odoo::{RealOdoo, odoo_datetime};
use serde_json::json;

/// Nothing is executed here: an executor that refuses fills the slot.
struct Refuse;

impl Executor for Refuse {
    fn execute<'a>(
        &'a self,
        _key: &'a str,
        _action: &'a order_copilot::core::Action,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>> {
        Box::pin(async { Err(ExecError::permanent("not in this test")) })
    }
}

/// Confirmations timed per version.
const WRITES: usize = 8;

/// Whether the latest scan (merged into the stored queue before it is published) has a
/// shortage on `name`.
async fn has_case(app: &order_copilot::app::App, name: &str) -> bool {
    app.latest().await.is_some_and(|s| {
        s.result
            .exceptions
            .iter()
            .any(|e| e.order_ref == name && e.kind == Kind::StockShortage)
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn events_to_queue(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "events").await else {
        return;
    };
    let db = if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.trim().is_empty()) {
        Db::Postgres
    } else {
        Db::Sqlite
    };
    let (store, _store_cfg) = common::open(db).await;
    let cfg = OdooConfig::parse("default", DEFAULT).unwrap();
    let source = Arc::new(OdooSource::new(odoo.admin.clone(), cfg));
    let executor = Arc::new(Refuse);
    let (app, writer) = order_copilot::app::start(
        store,
        Arc::new(Policy::embedded().unwrap()),
        source,
        executor,
    )
    .await
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scanner = EventScanner::start(&app, stop_rx);
    let secret = "events-secret-0123456789".to_string();
    let router = routes(scanner.clone(), Secret::new(secret.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{addr}/odoo/events?secret={secret}");

    // Refusals.
    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "http://{addr}/odoo/events?secret=wrong-secret-0123456789"
        ))
        .json(&json!({"_model": "sale.order", "_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(&url)
        .json(&json!({"_model": "res.users", "_id": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .post(&url)
        .body(vec![b' '; 100 * 1024])
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413, "bodies are capped");

    // Setup, twice.
    let rules = setup_events(&odoo.admin, &url).await.unwrap();
    assert_eq!(rules.len(), EVENT_MODELS.len());
    assert!(rules.iter().all(|r| r.created), "{rules:?}");
    let again = setup_events(&odoo.admin, &url).await.unwrap();
    assert!(
        again.iter().all(|r| !r.created && !r.url_updated),
        "{again:?}"
    );

    // Quotations first (no case for a draft), then the first scan, settled.
    let customer = odoo.customer("Evented Customer", json!({})).await;
    let mut quotes = Vec::new();
    for i in 0..WRITES {
        let p = odoo
            .product(&format!("EV-{i}"), "Evented Part", 100.0, 60.0)
            .await;
        let q = odoo
            .quotation(
                customer,
                &[(p, 5.0)],
                json!({"commitment_date": odoo_datetime(Utc::now() + chrono::Duration::days(4))}),
            )
            .await;
        quotes.push((q, odoo.name_of("sale.order", q).await));
    }
    app.scan("system").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events_before = scanner.received.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        events_before > 0,
        "Odoo {version}: creating records sent events"
    );

    let mut took = Vec::new();
    for (q, name) in &quotes {
        assert!(!has_case(&app, name).await, "{name} is a quotation");
        let t0 = Instant::now();
        odoo.confirm(*q).await;
        loop {
            if has_case(&app, name).await {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "Odoo {version}: no case for {name} 20 s after confirming it"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (cases, _) = app
            .list_cases(&order_copilot::store::CaseQuery {
                order_ref: Some(name.clone()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            cases.iter().any(|c| &c.order_ref == name),
            "Odoo {version}: {name} is in the stored queue"
        );
        took.push(t0.elapsed().as_secs_f64());
    }
    took.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p95) = (percentile(&took, 0.5), percentile(&took, 0.95));
    eprintln!(
        "Odoo {version}: write→queue over {WRITES} confirmations: p50 {p50:.2} s, p95 {p95:.2} s, max {:.2} s ({} events, {} event scans)",
        took[took.len() - 1],
        scanner.received.load(std::sync::atomic::Ordering::Relaxed),
        scanner.scans.load(std::sync::atomic::Ordering::Relaxed)
    );
    // The goal is p95 < 3 s on an idle loopback; this suite shares two cores with
    // compilers, so the bound asserted is "within seconds, not at the next poll" (none runs
    // here) and the figures are printed for the README.
    assert!(p95 < 10.0, "Odoo {version}: p95 {p95:.2} s");

    let _ = stop_tx.send(true);
    server.abort();
    drop(app);
    writer.finish().await;
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_to_queue_17() {
    events_to_queue(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_to_queue_18() {
    events_to_queue(18).await
}
