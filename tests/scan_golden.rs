//! Golden test of a whole scan: every exception and finding on seeded demos at a fixed
//! moment, as an insta snapshot (tests/snapshots/scan_golden__*.snap). Performance work
//! must not change a single byte of what a scan reports; when it does, the failure is a
//! line diff naming the exceptions that changed (`cargo insta review`, or read the
//! `.snap.new` file next to the snapshot).
//!
//! The snapshot is the scan's JSON with one compact line per exception and per finding:
//! the same values as the JSON (keys sorted), but a changed case is one changed
//! line instead of a hunk in a document of a hundred thousand lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write;

use chrono::{TimeZone, Utc};
use order_copilot::core;
use order_copilot::demo::{DemoConfig, generate};
use order_copilot::policy::Policy;
use serde_json::Value;

fn scan_json(seed: u64, lines: usize) -> Value {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
    let snap = generate(&DemoConfig::with_lines(seed, lines, now), &mut |_, _, _| {});
    let mut policy = Policy::embedded().unwrap();
    // Pin the version: editing a policy file's comments or unrelated sections changes the
    // content hash, and this test is about what the scan computes.
    policy.version = "golden".to_string();
    let scan = core::detect(&snap, &policy, now);
    serde_json::to_value(&scan).unwrap()
}

/// Top-level fields in order; a list as `name: [n]` and then one compact JSON line per
/// element, anything else as `name: <compact JSON>`.
fn render(scan: &Value) -> String {
    let Value::Object(fields) = scan else {
        panic!("a scan serialises to an object, got {scan}");
    };
    let mut out = String::new();
    for (name, value) in fields {
        match value {
            Value::Array(items) => {
                writeln!(out, "{name}: [{}]", items.len()).unwrap();
                for item in items {
                    writeln!(out, "  {item}").unwrap();
                }
            }
            other => writeln!(out, "{name}: {other}").unwrap(),
        }
    }
    out
}

#[test]
fn scan_of_seed_7_is_unchanged() {
    insta::assert_snapshot!("seed_7_12000_lines", render(&scan_json(7, 12_000)));
}

#[test]
fn scan_of_seed_42_is_unchanged() {
    insta::assert_snapshot!("seed_42_30000_lines", render(&scan_json(42, 30_000)));
}
