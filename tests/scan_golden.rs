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
    let mut policy = Policy::embedded().unwrap();
    // Pin the version: editing a policy file's comments or unrelated sections changes the
    // content hash, and this test is about what the scan computes.
    policy.version = "golden".to_string();
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
        "29d034f3eb50d9573177a04a2e2e90ad91d19d1d070f1c6bf93284e9a4519364",
    );
}

#[test]
fn scan_of_seed_42_is_unchanged() {
    check(
        42,
        30_000,
        "c77f5aa928ee37c59d53b403e1eadc7b775caebc083278c4c6d1d746ef5b7650",
    );
}
