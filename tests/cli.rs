//! The command line as users run it: the built binary, its exit codes, its JSON and its
//! error messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_order-copilot"))
        .args(args)
        .env_remove("ORDER_COPILOT_POLICIES")
        .env("ORDER_COPILOT_DEMO_ORDERS", "300")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn scan_json_has_the_documented_fields() {
    let o = run(&["scan", "--demo", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert!(!arr.is_empty());
    for e in arr {
        for key in [
            "id",
            "kind",
            "order_ref",
            "score",
            "severity",
            "confidence",
            "owner_role",
            "evidence",
            "recommendations",
            "impact",
            "policy_rule",
            "policy_version",
            "customer",
            "tier",
        ] {
            assert!(e.get(key).is_some(), "missing {key} in {e}");
        }
        let score = e["score"].as_u64().unwrap();
        assert!(score <= 100);
        for r in e["recommendations"].as_array().unwrap() {
            assert!(r["action"].is_string());
            assert!(!r["approver_roles"].as_array().unwrap().is_empty());
        }
    }
    // Quiet when piped: no progress bar on stderr.
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn scan_filters_by_kind_owner_and_limit() {
    let o = run(&[
        "scan",
        "--json",
        "--kind",
        "stock_shortage,credit_hold",
        "--limit",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.len() <= 5 && !v.is_empty());
    assert!(
        v.iter()
            .all(|e| e["kind"] == "stock_shortage" || e["kind"] == "credit_hold")
    );
    let o = run(&["scan", "--json", "--owner", "buyer"]);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.iter().all(|e| e["owner_role"] == "buyer"));
}

#[test]
fn scan_table_is_readable() {
    let o = run(&["scan", "--limit", "5"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("exceptions in"), "{out}");
    assert!(out.contains("score"), "{out}");
    assert!(out.contains("by kind:"), "{out}");
}

#[test]
fn unknown_kind_and_role_are_clear_errors() {
    let o = run(&["scan", "--kind", "stock_shortages"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown kind `stock_shortages`"),
        "{}",
        stderr(&o)
    );
    let o = run(&["scan", "--owner", "ceo"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown role `ceo`"), "{}", stderr(&o));
}

#[test]
fn explain_known_and_unknown_orders() {
    let scan: Vec<serde_json::Value> = serde_json::from_slice(
        &run(&["scan", "--json", "--kind", "stock_shortage", "--limit", "1"]).stdout,
    )
    .unwrap();
    let order = scan[0]["order_ref"].as_str().unwrap();
    let o = run(&["explain", order]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("{order} — BLOCKED")),
        "{}",
        stdout(&o)
    );
    let o = run(&["explain", order, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["order"], order);
    assert_eq!(v["status"], "blocked");

    let o = run(&["explain", "S99999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("error: no order S99999"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn bench_scan_reports_json() {
    let o = run(&[
        "bench", "scan", "--lines", "2000", "--repeat", "1", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["lines", "seconds", "lines_per_second", "peak_rss_bytes"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    let lines = v["lines"].as_u64().unwrap();
    assert!((1500..2600).contains(&lines), "{lines}");
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 1_000_000);
}

#[test]
fn bad_policy_stops_everything_with_file_and_key() {
    let dir = std::env::temp_dir().join(format!("oc-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let routing = dir.join("routing.toml");
    let text = std::fs::read_to_string(&routing)
        .unwrap()
        .replace("owner = \"buyer\"", "owner = \"byer\"");
    std::fs::write(&routing, text).unwrap();
    let o = run(&["--policies", dir.to_str().unwrap(), "scan"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("routing.toml")
            && err.contains("routing.supplier_delay.owner")
            && err.contains("byer"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());

    let o = run(&["--policies", "/nonexistent/policies", "policy", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/policies"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn policy_check_prints_the_version() {
    let o = run(&["policy", "check"]);
    assert!(o.status.success());
    assert!(
        stdout(&o).starts_with("policy ") && stdout(&o).contains(" OK: 7 roles"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_numbers_are_rejected() {
    let o = run(&["scan", "--orders", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--orders must be at least 1"));
    let o = run(&["bench", "scan", "--lines", "0"]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(&["scan", "--orders", "many"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
}
