//! Golden test of a whole scan: the JSON of every exception and finding on seeded demos at
//! a fixed moment, pinned by its SHA-256. Performance work must not change a single byte
//! of what a scan reports; if this fails, the JSON is written next to the test binary's
//! temp dir (see the message) so it can be diffed against the last good one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use order_copilot::core;
use order_copilot::demo::{DemoConfig, generate};
use order_copilot::policy::Policy;
use sha2::{Digest, Sha256};

fn scan_json(seed: u64, lines: usize) -> String {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
    let snap = generate(&DemoConfig::with_lines(seed, lines, now), &mut |_, _, _| {});
    let policy = Policy::embedded().unwrap();
    let scan = core::detect(&snap, &policy, now);
    serde_json::to_string_pretty(&scan).unwrap()
}

fn check(seed: u64, lines: usize, expected: &str) {
    let json = scan_json(seed, lines);
    let hash = format!("{:x}", Sha256::digest(json.as_bytes()));
    if hash != expected {
        let path = std::env::temp_dir().join(format!("scan_golden_{seed}_{lines}.json"));
        std::fs::write(&path, &json).unwrap();
        panic!(
            "scan of seed {seed}, {lines} lines changed: hash {hash}, JSON in {}",
            path.display()
        );
    }
}

#[test]
fn scan_of_seed_7_is_unchanged() {
    check(
        7,
        12_000,
        "5c1a2a8b238e2cee3ad6c0d9b724b6af1e9221dd49d7eb710b7a2d9ac5de5f10",
    );
}

#[test]
fn scan_of_seed_42_is_unchanged() {
    check(
        42,
        30_000,
        "d12328e6d75feb89590ebd15556aad0bae61455ec6af373d5419e15aac1f3c92",
    );
}
