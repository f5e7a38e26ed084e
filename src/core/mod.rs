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
    detect_observed(snap, policy, now, &|_| {})
}

/// [`detect`], telling `phase` the name of each step as it finishes (`context`, each
/// detector, `score`, `rank`), so a caller can time them. Detectors run on two threads,
/// so `phase` may be called from either.
pub fn detect_observed(
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    phase: &(dyn Fn(&'static str) + Sync),
) -> ScanResult {
    detect_all(snap, policy, now, phase, &mut |_, _| {})
}

/// [`detect`], then `extra` appends further exceptions — predicted ones — seeing the
/// scan's context and the exceptions found so far; all are scored and ranked together.
pub fn detect_with(
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    extra: &mut dyn FnMut(&Context, &mut Vec<Exception>),
) -> ScanResult {
    detect_all(snap, policy, now, &|_| {}, extra)
}

fn detect_all(
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    phase: &(dyn Fn(&'static str) + Sync),
    extra: &mut dyn FnMut(&Context, &mut Vec<Exception>),
) -> ScanResult {
    let (ctx, findings) = Context::new(snap, policy, now);
    phase("context");
    // Reserve generously up front: grown by doubling, the vector would copy itself and
    // leave its earlier blocks resident (tens of MB at a million lines), while capacity
    // that is never written stays virtual. Scans find far fewer exceptions than a quarter
    // of the open lines; if one finds more, the vector simply grows.
    let mut exceptions = Vec::with_capacity(ctx.open_lines.len() / 4 + 64);
    detectors::run_all(&ctx, &mut exceptions, phase);
    extra(&ctx, &mut exceptions);
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
pub fn rank(exceptions: &mut [Exception]) {
    exceptions.sort_unstable_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| b.impact.revenue_at_risk.cmp(&a.impact.revenue_at_risk))
            .then_with(|| a.id.cmp(&b.id))
    });
}
