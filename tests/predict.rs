//! Predictive risk end to end: the demo's history, the four models against their
//! baselines on the time-based hold-out, calibration, determinism, saved model files,
//! and predicted exceptions flowing into cases, approvals and the governance API on a
//! real server (SQLite and PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use chrono::{TimeZone, Utc};
use common::{Db, TestServer, api_get as get, api_post as post, client};
use order_copilot::demo::{DemoConfig, generate, generate_with_history};
use order_copilot::predict::{self, ModelKind, Models};
use serde_json::{Value, json};

fn demo() -> (
    order_copilot::domain::Snapshot,
    order_copilot::domain::History,
) {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
    generate_with_history(
        &DemoConfig {
            seed: 42,
            orders: 1500,
            now,
        },
        &mut |_, _, _| {},
    )
}

#[test]
fn history_leaves_the_snapshot_unchanged() {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
    let cfg = DemoConfig {
        seed: 7,
        orders: 300,
        now,
    };
    let (with, history) = generate_with_history(&cfg, &mut |_, _, _| {});
    let without = generate(&cfg, &mut |_, _, _| {});
    assert_eq!(
        serde_json::to_string(&with).unwrap(),
        serde_json::to_string(&without).unwrap()
    );
    assert!(history.orders.len() >= 2000);
    assert!(history.lines.len() > history.orders.len());
    assert!(history.purchases.len() > 500);
    assert!(history.invoices.len() > 1000);
    assert!(
        history
            .orders
            .iter()
            .all(|o| o.promised <= now && o.ordered_at >= history.since)
    );
}

#[test]
fn models_beat_their_baselines_and_are_calibrated() {
    let (s, h) = demo();
    let (models, failed) = predict::train(&s, &h, Utc::now());
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(models.models.len(), 4);
    for m in &models.models {
        let e = &m.evaluation;
        eprintln!(
            "{}: n={} AUC {:.3} vs {:.3}, Brier {:.4} vs {:.4}, ECE {:.4}",
            m.kind.as_str(),
            e.test,
            e.auc,
            e.baseline_auc,
            e.brier,
            e.baseline_brier,
            e.calibration_error
        );
        assert!(
            e.test >= 300,
            "{}: {} hold-out examples",
            m.kind.as_str(),
            e.test
        );
        assert!(e.train > e.test, "{}", m.kind.as_str());
        assert!(
            e.auc >= e.baseline_auc + 0.02,
            "{}: AUC {} does not beat the baseline's {} by 0.02",
            m.kind.as_str(),
            e.auc,
            e.baseline_auc
        );
        assert!(
            e.brier < e.baseline_brier,
            "{}: Brier {} not below the baseline's {}",
            m.kind.as_str(),
            e.brier,
            e.baseline_brier
        );
        assert!(
            e.calibration_error < 0.05,
            "{}: expected calibration error {}",
            m.kind.as_str(),
            e.calibration_error
        );
        // Reliability: bins with enough examples observe about what they predict.
        for b in e.calibration_table.iter().filter(|b| b.n >= 200) {
            assert!(
                (b.predicted - b.observed).abs() < 0.1,
                "{}: bin {:?}",
                m.kind.as_str(),
                b
            );
        }
    }
}

#[test]
fn training_is_deterministic_and_files_are_verified() {
    let (s, h) = demo();
    let (a, _) = predict::train(&s, &h, Utc::now());
    let (b, _) = predict::train(&s, &h, Utc::now());
    for (x, y) in a.models.iter().zip(&b.models) {
        assert_eq!(x.version, y.version);
        assert_eq!(x.model, y.model);
        assert_eq!(x.evaluation, y.evaluation);
    }
    let dir = common::temp_dir("oc-models");
    a.save(&dir).unwrap();
    let loaded = Models::load(&dir).unwrap().unwrap();
    assert_eq!(loaded, a);
    // Each version is kept beside the current file.
    for m in &a.models {
        assert!(
            dir.join(format!("{}-{}.json", m.kind.as_str(), m.version))
                .exists()
        );
    }
    // An edited model is refused, not silently used.
    let path = dir.join("credit_hold.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["model"]["intercept"] = json!(5.0);
    std::fs::write(&path, v.to_string()).unwrap();
    let err = Models::load(&dir).unwrap_err().to_string();
    assert!(err.contains("does not match version"), "{err}");
    // A missing model means none are loaded (the server trains afresh).
    std::fs::remove_file(&path).unwrap();
    assert!(Models::load(&dir).unwrap().is_none());
}

async fn predicted_cases(db: Db) {
    let s = TestServer::start_with_models(db, 400).await;
    let rep = s.token("sam", "service_rep").await;

    // Governance API: four models, evaluated, with drift per feature.
    let (st, m) = get(&s, &rep, "/api/models").await;
    assert_eq!(st, 200, "{m}");
    let models = m["models"].as_array().unwrap();
    assert_eq!(models.len(), 4, "{m}");
    for x in models {
        assert!(x["version"].as_str().unwrap().len() == 12);
        assert!(x["evaluation"]["auc"].as_f64().unwrap() > 0.5);
        assert!(
            !x["evaluation"]["calibration_table"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let features = x["features"].as_array().unwrap();
        let drift = x["drift"].as_array().unwrap();
        assert_eq!(drift.len(), features.len());
        assert!(x["scored"].as_i64().unwrap() > 0, "{x}");
        assert!(x["governance"]["predictions"].as_i64().unwrap() > 0);
        assert!(x["threshold"].as_f64().unwrap() > 0.0);
    }

    // Every scored subject is recorded; the most probable come first.
    let (st, p) = get(&s, &rep, "/api/predictions?kind=late_fulfillment&limit=500").await;
    assert_eq!(st, 200, "{p}");
    let rows = p["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    let probs: Vec<f64> = rows
        .iter()
        .map(|r| r["probability"].as_f64().unwrap())
        .collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]));
    assert!(rows.iter().all(|r| r["model"] == "late_fulfillment"));
    for bad in ["/api/predictions?kind=weather", "/api/predictions?limit=0"] {
        let (st, _) = get(&s, &rep, bad).await;
        assert_eq!(st, 400, "{bad}");
    }

    // Predictions over the threshold are cases: predicted, with the probability as
    // confidence, factors as evidence, routed and recommended like their kind.
    let (_, all) = get(&s, &rep, "/api/predictions?limit=500").await;
    let flagged: Vec<&Value> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["exception_id"].is_string())
        .collect();
    assert!(!flagged.is_empty(), "no prediction became a case");
    let mut seen_kinds = std::collections::BTreeSet::new();
    let mut a_case = None;
    for r in &flagged {
        assert!(r["probability"].as_f64().unwrap() >= r["threshold"].as_f64().unwrap());
        let id = r["exception_id"].as_str().unwrap();
        let (st, c) = get(&s, &rep, &format!("/api/cases/{id}")).await;
        assert_eq!(st, 200, "{c}");
        let e = &c["case"]["exception"];
        assert_eq!(e["predicted"], true);
        assert!(
            (e["confidence"].as_f64().unwrap() - r["probability"].as_f64().unwrap()).abs() <= 0.006
        );
        let evidence = e["evidence"].as_array().unwrap();
        assert!(evidence.iter().any(|f| f["source"]["model"] == "model"));
        assert!(evidence.iter().any(|f| {
            f["source"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("predictions.toml#predictions.")
        }));
        let kind = e["kind"].as_str().unwrap();
        let expected_owner = match kind {
            "shipment_delay" => "service_rep",
            "supplier_delay" => "buyer",
            "credit_hold" => "finance",
            "repeated_changes" => "service_rep",
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(e["owner_role"], expected_owner);
        let recs = e["recommendations"].as_array().unwrap();
        assert!(!recs.is_empty());
        assert!(
            recs.iter()
                .all(|x| !x["approver_roles"].as_array().unwrap().is_empty())
        );
        seen_kinds.insert(kind.to_string());
        if kind == "shipment_delay" && a_case.is_none() {
            let last = recs.len() - 1;
            a_case = Some((id.to_string(), last, recs[last]["action"].clone()));
        }
    }
    assert!(seen_kinds.len() >= 2, "{seen_kinds:?}");

    // Acting on a predicted case counts for its model's acceptance.
    let (id, last, action) = a_case.expect("a predicted late delivery");
    // Contacting the customer carries the exact text they will receive.
    let body = if action == "contact_customer" {
        json!({"recommendation": last, "message": "Your delivery may arrive a day late; we will confirm the date tomorrow."})
    } else {
        json!({"recommendation": last})
    };
    let (st, v) = post(&s, &rep, &format!("/api/cases/{id}/actions"), body).await;
    assert_eq!(st, 201, "{v}");
    let ap = v["approval"]["id"].as_str().unwrap().to_string();
    let approver = v["approval"]["approver_roles"][0]
        .as_str()
        .unwrap()
        .to_string();
    let tok = s.token("approver", &approver).await;
    let (st, v) = post(&s, &tok, &format!("/api/approvals/{ap}/approve"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    let (_, m) = get(&s, &rep, "/api/models").await;
    let late = m["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["model"] == "late_fulfillment")
        .unwrap();
    let g = &late["governance"];
    assert_eq!(
        g["accepted"].as_i64().unwrap() + g["overridden"].as_i64().unwrap(),
        1,
        "{g}"
    );
    assert!(g["cases"].as_i64().unwrap() >= 1);

    let r = client().get(s.url("/api/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

both!(predicted_cases);

#[test]
fn every_model_kind_has_features_and_a_baseline() {
    for k in ModelKind::ALL {
        assert!(!k.features().is_empty());
        assert!(!k.baseline().is_empty());
        assert_eq!(ModelKind::parse(k.as_str()), Some(k));
    }
}
