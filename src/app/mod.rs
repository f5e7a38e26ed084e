//! The use-cases of the server, independent of HTTP: scanning into cases, the case
//! lifecycle, approvals with exactly-once execution, identity (API tokens and roles), and
//! explaining an order. [`App`] is the one composition of store, audit log, policy,
//! source and executor; the HTTP layer and the CLI call its methods and nothing else.

pub mod identity;
mod insight;
mod report;
pub mod risk;
pub mod source;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Mutex, RwLock};

use crate::core::{self, Action, Exception, ScanResult};
use crate::domain::Snapshot;
use crate::policy::Policy;
use crate::store::audit::{self, AuditEvent, AuditLog, AuditQuery, AuditRecord};
use crate::store::{
    ApprovalRow, ApprovalStatus, CaseDetail, CaseQuery, CaseStatus, CaseSummary, CaseUpsert,
    MergeStats, Store, StoreError,
};
pub use identity::User;
use source::{Executor, Source};

/// What a use-case can refuse or fail with. The HTTP layer maps these to status codes in
/// one place; `Internal` text is logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// The user's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state (already decided, expired…).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Something broke inside.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<crate::store::audit::AuditError> for AppError {
    fn from(e: crate::store::audit::AuditError) -> Self {
        AppError::Internal(e.to_string())
    }
}

/// The latest scan, kept in memory for the queue's explain and for staleness.
pub struct ScanState {
    /// The snapshot scanned.
    pub snapshot: Arc<Snapshot>,
    /// What the scan found.
    pub result: ScanResult,
    /// When it finished.
    pub finished_at: chrono::DateTime<Utc>,
    /// How long the detection took.
    pub duration: Duration,
    /// What the merge did.
    pub merge: MergeStats,
}

/// Summary of a scan, as returned to callers.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    /// Exceptions found.
    pub exceptions: usize,
    /// Open lines examined.
    pub open_lines: usize,
    /// Data-quality findings.
    pub findings: usize,
    /// Merge counts.
    pub merge: MergeStats,
    /// Milliseconds spent detecting.
    pub detect_ms: u128,
    /// Policy version.
    pub policy_version: String,
}

/// Failed logins allowed per address per minute before answering 429.
pub const LOGIN_FAILURES_PER_MINUTE: usize = 10;

/// Counters exported at `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Scans completed.
    pub scans: std::sync::atomic::AtomicU64,
    /// Scans failed.
    pub scan_failures: std::sync::atomic::AtomicU64,
    /// Failed logins.
    pub login_failures: std::sync::atomic::AtomicU64,
    /// Approvals executed.
    pub executions: std::sync::atomic::AtomicU64,
}

/// The server's use-cases.
pub struct App {
    /// Storage.
    pub store: Store,
    /// Audit log.
    pub audit: AuditLog,
    /// Loaded policy.
    pub policy: Arc<Policy>,
    /// Snapshot source.
    pub source: Arc<dyn Source>,
    /// Action executor.
    pub executor: Arc<dyn Executor>,
    latest: RwLock<Option<Arc<ScanState>>>,
    scan_lock: Mutex<()>,
    failures: std::sync::Mutex<std::collections::HashMap<IpAddr, Vec<Instant>>>,
    /// Counters for metrics.
    pub counters: Counters,
    models: std::sync::RwLock<Option<Arc<crate::predict::Models>>>,
    scoring: std::sync::RwLock<risk::ScoringState>,
    /// Search over policies, past cases and the catalogue, once built (it builds after the
    /// first scan, in the background); cases people resolve are added to it.
    retriever: std::sync::OnceLock<Arc<crate::retrieval::Retriever>>,
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// A fresh random id with a prefix (`ap_…`).
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to time + a counter (ids need uniqueness, not secrecy).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return format!("{prefix}_{:x}{n:x}", now_us());
    }
    format!(
        "{prefix}_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

impl App {
    /// Compose the application.
    pub fn new(
        store: Store,
        audit: AuditLog,
        policy: Arc<Policy>,
        source: Arc<dyn Source>,
        executor: Arc<dyn Executor>,
    ) -> App {
        App {
            store,
            audit,
            policy,
            source,
            executor,
            latest: RwLock::new(None),
            scan_lock: Mutex::new(()),
            failures: std::sync::Mutex::new(Default::default()),
            counters: Counters::default(),
            models: std::sync::RwLock::new(None),
            scoring: std::sync::RwLock::new(risk::ScoringState::default()),
            retriever: std::sync::OnceLock::new(),
        }
    }

    /// Attach the retriever (once; later calls are ignored and return false).
    pub fn set_retriever(&self, r: Arc<crate::retrieval::Retriever>) -> bool {
        self.retriever.set(r).is_ok()
    }

    /// The retriever, when it has been built.
    pub fn retriever(&self) -> Option<Arc<crate::retrieval::Retriever>> {
        self.retriever.get().cloned()
    }

    /// Cases people resolved, as retrieval documents (newest first, at most `limit`).
    pub async fn resolved_case_docs(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::retrieval::Doc>, AppError> {
        let mut docs = Vec::new();
        let mut offset = 0i64;
        while docs.len() < limit {
            let q = CaseQuery {
                status: Some(CaseStatus::Resolved),
                sort: crate::store::CaseSort::Updated,
                limit: 500,
                offset,
                ..CaseQuery::default()
            };
            let (rows, _) = self.store.list_cases(&q).await?;
            if rows.is_empty() {
                break;
            }
            offset += rows.len() as i64;
            docs.extend(rows.iter().filter_map(crate::retrieval::resolved_case_doc));
            // Most resolved rows may be automatic clears (skipped); stop looking eventually.
            if offset > 50_000 {
                break;
            }
        }
        docs.truncate(limit);
        Ok(docs)
    }

    /// Make a case a person just resolved findable as a past case. Failure is logged, not
    /// returned: the decision is already recorded and must not be undone by search.
    async fn index_resolved(&self, id: &str) {
        let Some(r) = self.retriever() else { return };
        let doc = match self.store.get_case(id).await {
            Ok(Some(c)) => crate::retrieval::resolved_case_doc(&c.summary),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(case = id, error = %e, "resolved case not indexed for search");
                None
            }
        };
        if let Some(doc) = doc
            && let Err(e) = r.upsert(vec![doc]).await
        {
            tracing::warn!(case = id, error = %format!("{e:#}"), "resolved case not indexed for search");
        }
    }

    /// The latest scan, if any.
    pub async fn latest(&self) -> Option<Arc<ScanState>> {
        self.latest.read().await.clone()
    }

    /// Scan the source now and merge the result into the cases. Scans never overlap.
    pub async fn scan(&self, actor: &str) -> Result<ScanSummary, AppError> {
        let _guard = self.scan_lock.lock().await;
        let snapshot = self
            .source
            .snapshot()
            .await
            .map_err(|e| AppError::Internal(format!("source unavailable: {e}")))?;
        let policy = self.policy.clone();
        let snap = snapshot.clone();
        let now = Utc::now();
        let models = self.models();
        let history = match &models {
            Some(_) => self
                .source
                .history()
                .await
                .map_err(|e| AppError::Internal(format!("source history unavailable: {e}")))?,
            None => None,
        };
        let started = Instant::now();
        let (result, scored) = tokio::task::spawn_blocking(move || match models {
            None => (core::detect(&snap, &policy, now), None),
            Some(m) => {
                let mut scored = Vec::new();
                let result = core::detect_with(&snap, &policy, now, &mut |ctx, out| {
                    scored = crate::predict::score(&m, ctx, history.as_deref());
                    if let Some(p) = &policy.predictions {
                        crate::predict::exceptions::append(ctx, out, &scored, &m, p);
                    }
                });
                (result, Some((m, scored)))
            }
        })
        .await
        .map_err(|e| AppError::Internal(format!("scan task failed: {e}")))?;
        let duration = started.elapsed();
        let upserts: Vec<CaseUpsert> = result
            .exceptions
            .iter()
            .map(case_upsert)
            .collect::<Result<_, _>>()?;
        let merge = self.store.merge_scan(&upserts, now_us()).await?;
        if let Some((models, scored)) = &scored {
            self.record_scoring(&snapshot, &result, models, scored, now)
                .await?;
        }
        let expired = self.store.expire_approvals(now_us()).await?;
        let summary = ScanSummary {
            exceptions: result.exceptions.len(),
            open_lines: result.open_lines,
            findings: result.findings.len(),
            merge,
            detect_ms: duration.as_millis(),
            policy_version: result.policy_version.clone(),
        };
        self.audit
            .append(
                AuditEvent::new(
                    "scan.completed",
                    actor,
                    json!({"source": self.source.describe(), "summary": summary, "expired_approvals": expired}),
                )
                .policy(&self.policy.version),
            )
            .await?;
        *self.latest.write().await = Some(Arc::new(ScanState {
            snapshot,
            result,
            finished_at: Utc::now(),
            duration,
            merge,
        }));
        self.counters
            .scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(summary)
    }

    // ---- identity ---------------------------------------------------------------

    /// The user a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, AppError> {
        let hash = identity::hash_token(token);
        Ok(self
            .store
            .find_token(&hash)
            .await?
            .map(|(name, role)| User { name, role }))
    }

    /// Whether an address has failed too often in the last minute.
    pub fn rate_limited(&self, ip: IpAddr) -> bool {
        let mut map = match self.failures.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let cutoff = Instant::now() - Duration::from_secs(60);
        let list = map.entry(ip).or_default();
        list.retain(|t| *t > cutoff);
        list.len() >= LOGIN_FAILURES_PER_MINUTE
    }

    /// Record a failed login (audited; the token itself is never logged).
    pub async fn login_failed(&self, ip: IpAddr, path: &str, reason: &str) {
        {
            let mut map = match self.failures.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            map.entry(ip).or_default().push(Instant::now());
            if map.len() > 10_000 {
                let cutoff = Instant::now() - Duration::from_secs(60);
                map.retain(|_, v| v.iter().any(|t| *t > cutoff));
            }
        }
        self.counters
            .login_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self
            .audit
            .append(AuditEvent::new(
                "auth.failed",
                "anonymous",
                json!({"ip": ip.to_string(), "path": path, "reason": reason}),
            ))
            .await;
    }

    /// Refuse unless the user's role holds the permission.
    pub fn require(&self, user: &User, permission: &str) -> Result<(), AppError> {
        if self.policy.permits(&user.role, permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "role {} may not {}",
                user.role,
                permission.replace('_', " ")
            )))
        }
    }

    // ---- cases ------------------------------------------------------------------

    /// The ranked queue.
    pub async fn list_cases(&self, q: &CaseQuery) -> Result<(Vec<CaseSummary>, i64), AppError> {
        Ok(self.store.list_cases(q).await?)
    }

    /// How many active cases each value of the queue's filters has.
    pub async fn case_facets(&self) -> Result<crate::store::CaseFacets, AppError> {
        Ok(self.store.case_facets().await?)
    }

    /// One case with its approvals.
    pub async fn case(&self, id: &str) -> Result<(CaseDetail, Vec<ApprovalRow>), AppError> {
        let case = self
            .store
            .get_case(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no case {id}")))?;
        let approvals = self.store.list_approvals(None, None, Some(id), 100).await?;
        Ok((case, approvals))
    }

    /// Acknowledge, resolve or dismiss a case; returns the audit sequence number.
    pub async fn decide_case(
        &self,
        user: &User,
        id: &str,
        to: CaseStatus,
        outcome: Option<&str>,
    ) -> Result<i64, AppError> {
        let case = self
            .store
            .get_case(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no case {id}")))?;
        let owner = case.summary.owner_role == user.role;
        if !owner && !self.policy.permits(&user.role, "decide_any_case") {
            return Err(AppError::Forbidden(format!(
                "this case belongs to the {}; role {} may not decide it",
                case.summary.owner_role, user.role
            )));
        }
        let outcome = outcome.map(str::trim).filter(|s| !s.is_empty());
        let (from, verb): (&[CaseStatus], &str) = match to {
            CaseStatus::Acknowledged => (&[CaseStatus::Open], "acknowledged"),
            CaseStatus::Resolved | CaseStatus::Dismissed => {
                if outcome.is_none() {
                    return Err(AppError::BadRequest(
                        "an outcome (what was decided, and why) is required".into(),
                    ));
                }
                (&[CaseStatus::Open, CaseStatus::Acknowledged], to.as_str())
            }
            CaseStatus::Open => {
                return Err(AppError::BadRequest(
                    "cases reopen by themselves when the condition returns".into(),
                ));
            }
        };
        if outcome.is_some_and(|o| o.len() > 2000) {
            return Err(AppError::BadRequest(
                "outcome is longer than 2000 characters".into(),
            ));
        }
        if !self
            .store
            .transition_case(id, from, to, outcome, &user.name, now_us())
            .await?
        {
            return Err(AppError::Conflict(format!(
                "case {id} is {} and cannot be {verb}",
                case.summary.status.as_str()
            )));
        }
        let seq = self
            .audit
            .append(
                AuditEvent::new(
                    &format!("case.{}", to.as_str()),
                    &user.name,
                    json!({"role": user.role, "outcome": outcome}),
                )
                .case(id)
                .policy(&self.policy.version),
            )
            .await?;
        if to == CaseStatus::Resolved {
            self.index_resolved(id).await;
        }
        Ok(seq)
    }

    // ---- approvals --------------------------------------------------------------

    /// Ask for one of a case's recommended actions; creates a pending approval request.
    pub async fn request_action(
        &self,
        user: &User,
        case_id: &str,
        recommendation: usize,
    ) -> Result<ApprovalRow, AppError> {
        self.require(user, "request_actions")?;
        let case = self
            .store
            .get_case(case_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no case {case_id}")))?;
        if !case.summary.status.is_active() {
            return Err(AppError::Conflict(format!(
                "case {case_id} is {}",
                case.summary.status.as_str()
            )));
        }
        let exception: Exception = serde_json::from_value(case.exception.clone())
            .map_err(|e| AppError::Internal(format!("stored exception unreadable: {e}")))?;
        let rec = exception
            .recommendations
            .get(recommendation)
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "case {case_id} has {} recommendations; {recommendation} is out of range",
                    exception.recommendations.len()
                ))
            })?;
        self.request(
            user,
            Some(case_id),
            &rec.action,
            &exception.evidence,
            &exception.policy_rule,
        )
        .await
    }

    /// Create an approval request for an exact action (used by the copilot's `act` tools too).
    pub async fn request(
        &self,
        user: &User,
        case_id: Option<&str>,
        action: &Action,
        evidence: &[crate::core::Evidence],
        fired_rule: &str,
    ) -> Result<ApprovalRow, AppError> {
        let name = action.name();
        let rule = self
            .policy
            .approvals
            .get(name)
            .ok_or_else(|| AppError::Internal(format!("no approval rule for {name}")))?;
        let now = now_us();
        let row = ApprovalRow {
            id: new_id("ap"),
            case_id: case_id.map(str::to_string),
            action: name.to_string(),
            params: serde_json::to_value(action).map_err(|e| AppError::Internal(e.to_string()))?,
            evidence: serde_json::to_value(evidence)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            policy_rule: format!("approvals.{name} (raised by {fired_rule})"),
            policy_version: self.policy.version.clone(),
            approver_roles: rule.roles.clone(),
            requested_by: user.name.clone(),
            requested_at: now,
            expires_at: now + i64::from(rule.expires_hours) * 3_600_000_000,
            status: ApprovalStatus::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
            result: None,
            executed_at: None,
        };
        self.store.insert_approval(&row).await?;
        let mut ev = AuditEvent::new(
            "approval.requested",
            &user.name,
            json!({"approval": row.id, "action": action, "approver_roles": row.approver_roles, "expires_at": row.expires_at}),
        )
        .policy(&self.policy.version);
        ev.case_id = case_id.map(str::to_string);
        self.audit.append(ev).await?;
        Ok(row)
    }

    /// Approve or reject. Only a holder of one of the request's roles may; exactly one of
    /// any concurrent decisions wins; an approval executes exactly once.
    pub async fn decide_approval(
        &self,
        user: &User,
        id: &str,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<ApprovalRow, AppError> {
        let row = self
            .store
            .get_approval(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no approval request {id}")))?;
        if !row.approver_roles.iter().any(|r| r == &user.role) {
            let mut ev = AuditEvent::new(
                "approval.refused",
                &user.name,
                json!({"approval": id, "role": user.role, "needs": row.approver_roles}),
            );
            ev.case_id = row.case_id.clone();
            let _ = self.audit.append(ev).await;
            return Err(AppError::Forbidden(format!(
                "only {} may decide this request; you are {}",
                row.approver_roles.join(" or "),
                user.role
            )));
        }
        if reason.is_some_and(|r| r.len() > 2000) {
            return Err(AppError::BadRequest(
                "reason is longer than 2000 characters".into(),
            ));
        }
        let now = now_us();
        if row.status == ApprovalStatus::Pending && row.expires_at <= now {
            self.store.expire_approvals(now).await?;
            return Err(AppError::Conflict(format!("approval request {id} expired")));
        }
        let to = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        if !self
            .store
            .decide_approval(id, to, &user.name, reason, now)
            .await?
        {
            let current = self
                .store
                .get_approval(id)
                .await?
                .map(|r| r.status.as_str())
                .unwrap_or("gone");
            return Err(AppError::Conflict(format!(
                "approval request {id} is already {current}"
            )));
        }
        let mut ev = AuditEvent::new(
            "approval.decided",
            &user.name,
            json!({"approval": id, "decision": to.as_str(), "role": user.role, "reason": reason}),
        )
        .policy(&row.policy_version);
        ev.case_id = row.case_id.clone();
        self.audit.append(ev).await?;
        if approve {
            self.execute(id).await?;
        }
        self.store
            .get_approval(id)
            .await?
            .ok_or_else(|| AppError::Internal(format!("approval {id} vanished")))
    }

    /// Execute an approved request if this caller wins the claim; record the result.
    pub async fn execute(&self, id: &str) -> Result<(), AppError> {
        if !self.store.claim_execution(id).await? {
            return Ok(()); // someone else executes (or executed) it
        }
        self.run_claimed(id).await
    }

    async fn run_claimed(&self, id: &str) -> Result<(), AppError> {
        let row = self
            .store
            .get_approval(id)
            .await?
            .ok_or_else(|| AppError::Internal(format!("approval {id} vanished")))?;
        let action: Action = serde_json::from_value(row.params.clone())
            .map_err(|e| AppError::Internal(format!("stored action unreadable: {e}")))?;
        let started = Instant::now();
        let outcome = self.executor.execute(id, &action).await;
        let (ok, result) = match outcome {
            Ok(v) => (true, v),
            Err(e) => (false, json!({"error": e.to_string()})),
        };
        self.store
            .finish_execution(id, ok, &result.to_string(), now_us())
            .await?;
        let mut ev = AuditEvent::new(
            if ok {
                "action.executed"
            } else {
                "action.failed"
            },
            "system",
            json!({"approval": id, "action": action, "result": result}),
        )
        .policy(&row.policy_version);
        ev.case_id = row.case_id.clone();
        ev.latency_ms = Some(started.elapsed().as_millis() as i64);
        self.audit.append(ev).await?;
        self.counters
            .executions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if ok {
            // Let the queue reflect the change now rather than at the next interval.
            if let Err(e) = self.scan("system").await {
                tracing::warn!(error = %e, "re-scan after execution failed");
            }
        }
        Ok(())
    }

    /// Finish executions a crash interrupted (the executor is idempotent per request id).
    pub async fn recover(&self) -> Result<usize, AppError> {
        let stuck = self.store.reclaim_executing().await?;
        for a in &stuck {
            self.run_claimed(&a.id).await?;
        }
        Ok(stuck.len())
    }

    /// Approvals, optionally only those the user may decide.
    pub async fn approvals(
        &self,
        user: &User,
        status: Option<ApprovalStatus>,
        mine: bool,
    ) -> Result<Vec<ApprovalRow>, AppError> {
        let role = mine.then_some(user.role.as_str());
        Ok(self.store.list_approvals(status, role, None, 200).await?)
    }

    /// One approval.
    pub async fn approval(&self, id: &str) -> Result<ApprovalRow, AppError> {
        self.store
            .get_approval(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no approval request {id}")))
    }

    /// A case's audit history, newest first.
    pub async fn case_history(&self, id: &str) -> Result<Vec<AuditRecord>, AppError> {
        let q = AuditQuery {
            case_id: Some(id.to_string()),
            limit: Some(100),
            ..AuditQuery::default()
        };
        Ok(audit::search(&self.store, &q).await?)
    }

    /// Search the audit log (needs `read_audit`).
    pub async fn search_audit(
        &self,
        user: &User,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, AppError> {
        self.require(user, "read_audit")?;
        Ok(audit::search(&self.store, q).await?)
    }

    /// Verify the audit chain (needs `read_audit`).
    pub async fn verify_audit(&self, user: &User) -> Result<audit::Verification, AppError> {
        self.require(user, "read_audit")?;
        Ok(audit::verify(&self.store, |_| {}).await?)
    }

    /// Number of cases per status.
    pub async fn case_counts(&self) -> Result<Vec<(String, i64)>, AppError> {
        Ok(self.store.case_counts().await?)
    }

    /// Explain an order from the latest scan.
    pub async fn explain(&self, order: &str) -> Result<core::explain::OrderExplanation, AppError> {
        let state = self
            .latest()
            .await
            .ok_or_else(|| AppError::Conflict("no scan has completed yet".into()))?;
        core::explain::explain(&state.snapshot, &self.policy, &state.result, order)
            .map_err(|e| AppError::NotFound(e.to_string()))
    }
}

/// Start the application over an opened store: the audit writer, the `policy.loaded`
/// event, and recovery of executions a crash interrupted. The one composition used by
/// `serve` and by the tests.
pub async fn start(
    store: Store,
    policy: Arc<Policy>,
    source: Arc<dyn Source>,
    executor: Arc<dyn Executor>,
) -> Result<(Arc<App>, crate::store::audit::AuditWriter), AppError> {
    let (audit, writer) = AuditLog::start(store.clone());
    audit
        .append(
            AuditEvent::new(
                "policy.loaded",
                "system",
                json!({"version": policy.version, "sources": policy.sources, "rules": policy.rules.len()}),
            )
            .policy(&policy.version),
        )
        .await?;
    let app = Arc::new(App::new(store, audit, policy, source, executor));
    let recovered = app.recover().await?;
    if recovered > 0 {
        tracing::warn!(recovered, "finished executions interrupted by a crash");
    }
    Ok((app, writer))
}

/// The stored form of a detected exception.
fn case_upsert(e: &Exception) -> Result<CaseUpsert, AppError> {
    Ok(CaseUpsert {
        id: e.id.clone(),
        kind: e.kind.as_str().to_string(),
        order_ref: e.order_ref.clone(),
        customer: e.customer.clone(),
        tier: e.tier.to_string(),
        warehouse: e.warehouse.clone(),
        product: e.product.clone(),
        owner_role: e.owner_role.clone(),
        severity: e.severity.as_str().to_string(),
        score: e.score,
        revenue_cents: (e.impact.revenue_at_risk * rust_decimal::Decimal::ONE_HUNDRED)
            .round()
            .to_i64()
            .unwrap_or(i64::MAX),
        title: e.title.clone(),
        policy_version: e.policy_version.clone(),
        exception_json: serde_json::to_string(e).map_err(|x| AppError::Internal(x.to_string()))?,
    })
}
