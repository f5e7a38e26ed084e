//! The exception core: pure, deterministic functions over a [`Snapshot`] and a [`Policy`].
//!
//! [`detect`] runs every detector (one module per kind under [`detectors`]), scores each
//! exception ([`score`]), routes it by policy and returns them ranked. Nothing here does
//! I/O, reads the clock or knows where the snapshot came from; `now` is an argument so a
//! scan is reproducible. Allocation proposals come from [`solver`], an exact
//! transportation solver.

pub mod detectors;
pub mod exception;
pub mod explain;
pub mod fmt;
pub mod score;
pub mod solver;

mod context;

pub use context::Context;
pub use exception::{
    Action, Escalation, Evidence, Exception, Impact, Kind, Recommendation, SourceRef, stable_id,
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{DataQualityFinding, Snapshot};
use crate::policy::Policy;

/// Everything one scan found.
#[derive(Debug, Clone, Serialize)]
pub struct ScanResult {
    /// Exceptions, highest score first (ties broken by id, so the order is stable).
    pub exceptions: Vec<Exception>,
    /// Problems with the data itself.
    pub findings: Vec<DataQualityFinding>,
    /// Open order lines examined.
    pub open_lines: usize,
    /// Policy version used.
    pub policy_version: String,
    /// The time the scan measured against.
    pub now: DateTime<Utc>,
}

/// Run every detector over the snapshot and return the ranked exceptions.
pub fn detect(snap: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> ScanResult {
    detect_observed(snap, policy, now, &mut |_| {})
}

/// [`detect`], telling `phase` the name of each step as it finishes (`context`, each
/// detector, `score`, `rank`), so a caller can time them.
pub fn detect_observed(
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    phase: &mut dyn FnMut(&'static str),
) -> ScanResult {
    let (ctx, findings) = Context::new(snap, policy, now);
    phase("context");
    let mut exceptions = Vec::new();
    detectors::run_all(&ctx, &mut exceptions, phase);
    for e in &mut exceptions {
        score::finish(e, policy);
    }
    phase("score");
    rank(&mut exceptions);
    phase("rank");
    ScanResult {
        exceptions,
        findings,
        open_lines: ctx.open_lines.len(),
        policy_version: policy.version.clone(),
        now,
    }
}

/// Sort exceptions by score (highest first), then revenue at risk, then id.
pub fn rank(exceptions: &mut Vec<Exception>) {
    // Sort small keys, then move each (large) exception once.
    let mut keys: Vec<(std::cmp::Reverse<u8>, std::cmp::Reverse<rust_decimal::Decimal>, usize)> = exceptions
        .iter()
        .enumerate()
        .map(|(i, e)| (std::cmp::Reverse(e.score), std::cmp::Reverse(e.impact.revenue_at_risk), i))
        .collect();
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| exceptions.get(a.2).map(|e| &e.id).cmp(&exceptions.get(b.2).map(|e| &e.id)))
    });
    let mut slots: Vec<Option<Exception>> = std::mem::take(exceptions).into_iter().map(Some).collect();
    exceptions.extend(keys.iter().filter_map(|k| slots.get_mut(k.2).and_then(Option::take)));
}
