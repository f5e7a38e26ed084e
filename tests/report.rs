//! `model train`, `model evaluate` and `report` as users run them: the built binary, the
//! files it writes, the report's self-containment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_order-copilot"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("ORDER_COPILOT_POLICIES")
        .env_remove("DATABASE_URL")
        // The demo: these tests are not about the Odoo a developer may have configured.
        .env_remove("ODOO_URL")
        .env("ORDER_COPILOT_DEMO_ORDERS", "1500")
        .env("ORDER_COPILOT_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn train_evaluate_and_report() {
    // Removed when the test ends, passed or failed.
    let tmp = tempfile::Builder::new()
        .prefix("oc-report-")
        .tempdir()
        .unwrap();
    let data = tmp.path();
    // Evaluating before training says what to do.
    let o = run(data, &["model", "evaluate"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("model train"),
        "{}",
        text(&o.stderr)
    );

    let o = run(data, &["model", "train"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    for k in [
        "late_fulfillment",
        "supplier_delay",
        "credit_hold",
        "order_change",
    ] {
        assert!(out.contains(k), "{out}");
        assert!(data.join("models").join(format!("{k}.json")).exists());
    }

    let o = run(data, &["model", "evaluate", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for m in v.as_array().unwrap() {
        let e = &m["evaluation"];
        assert!(
            e["auc"].as_f64().unwrap() > e["baseline_auc"].as_f64().unwrap(),
            "{m}"
        );
        assert!(
            e["brier"].as_f64().unwrap() < e["baseline_brier"].as_f64().unwrap(),
            "{m}"
        );
    }
    let o = run(data, &["model", "evaluate"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("mean pred"));

    let file = data.join("report.html");
    let o = run(data, &["report", "--out", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    // Self-contained: no scripts, no external files, every chart inline.
    assert!(!html.contains("<script"));
    assert!(!html.contains(" src="));
    assert!(!html.contains(" href="));
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
    assert!(
        html.matches("<svg").count() >= 10,
        "{}",
        html.matches("<svg").count()
    );
    for section in [
        "Models",
        "Governance",
        "Trends",
        "Backlog and cycle time",
        "Revenue and margin at risk this month",
        "Key accounts that change their orders",
        "reliability on the hold-out",
    ] {
        assert!(html.contains(section), "missing {section}");
    }
    // The report reused the trained models rather than training new ones.
    for k in ["late_fulfillment", "credit_hold"] {
        let saved: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(data.join("models").join(format!("{k}.json"))).unwrap(),
        )
        .unwrap();
        assert!(html.contains(saved["version"].as_str().unwrap()));
    }
}
