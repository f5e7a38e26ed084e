//! The use-cases of the server, independent of HTTP: scanning into cases, the case
//! lifecycle, approvals with exactly-once execution, identity (API tokens and roles), and
//! explaining an order. [`App`] is the one composition of store, audit log, policy,
//! source and executor; the HTTP layer and the CLI call its methods and nothing else.

pub mod access;
pub mod identity;
mod insight;
pub mod limits;
pub mod outbox;
pub mod planned;
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
    DecisionOutcome, MergeStats, Store, StoreError,
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

/// What a bearer token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// A valid token.
    User(User),
    /// A token past its expiry (`token create --expires`).
    Expired {
        /// Its holder.
        name: String,
        /// When it expired.
        at: chrono::DateTime<Utc>,
    },
    /// Unknown or revoked.
    Unknown,
}

/// Why a copilot turn may not start now.
#[derive(Debug)]
pub enum TurnRefused {
    /// A limit (concurrent turns, model tokens per day).
    Limited(limits::Limited),
    /// Something broke.
    App(AppError),
}

impl From<limits::Limited> for TurnRefused {
    fn from(l: limits::Limited) -> Self {
        TurnRefused::Limited(l)
    }
}

impl From<StoreError> for TurnRefused {
    fn from(e: StoreError) -> Self {
        TurnRefused::App(e.into())
    }
}

/// How much of a case's history a reader gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryScope {
    /// Every audit event on the case, with its payload and chain hashes (`read_audit`).
    Audit,
    /// The decisions only: status changes, approval requests and decisions, executions —
    /// who, when, and the outcome, reason or action; nothing else of the payload.
    Decisions,
}

/// Event kinds that are decisions on a case (what a reader without `read_audit` sees).
const DECISION_KINDS: &[&str] = &[
    "approval.requested",
    "approval.decided",
    "action.executed",
    "action.failed",
];

/// Payload keys a decision keeps in the decisions view.
const DECISION_KEYS: &[&str] = &["outcome", "reason", "decision", "status"];

/// The decisions view of one audit record, or `None` when it is not a decision.
fn decision_only(mut r: AuditRecord) -> Option<AuditRecord> {
    let kind = r.event.kind.as_str();
    if !(kind.starts_with("case.") || DECISION_KINDS.contains(&kind)) {
        return None;
    }
    let mut kept = serde_json::Map::new();
    if let Some(p) = r.event.payload.as_object() {
        for k in DECISION_KEYS {
            if let Some(v) = p.get(*k) {
                kept.insert((*k).to_string(), v.clone());
            }
        }
        if let Some(a) = p.get("action").and_then(|a| a.get("action")) {
            kept.insert("action".into(), json!({"action": a}));
        }
    }
    r.event = AuditEvent {
        kind: r.event.kind,
        actor: r.event.actor,
        case_id: r.event.case_id,
        payload: serde_json::Value::Object(kept),
        ..AuditEvent::default()
    };
    r.prev_hash = String::new();
    r.hash = String::new();
    r.key_id = None;
    Some(r)
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
    /// The snapshot's sensitive values, learned on first use.
    pub sensitive: std::sync::OnceLock<access::Sensitive>,
}

impl ScanState {
    /// The sensitive values of this scan's snapshot (learned once, on first use).
    pub fn sensitive(&self) -> &access::Sensitive {
        self.sensitive
            .get_or_init(|| access::Sensitive::learn(&self.snapshot, &self.result))
    }
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
    /// Request rates per token (`limits.toml`).
    rates: limits::RateLimiter,
    /// Copilot turns running per person.
    turns: limits::TurnCounter,
    /// Counters for metrics.
    pub counters: Counters,
    models: std::sync::RwLock<Option<Arc<crate::predict::Models>>>,
    scoring: std::sync::RwLock<risk::ScoringState>,
    /// Search over policies, past cases and the catalogue, once built (it builds after the
    /// first scan, in the background); cases people resolve are added to it.
    retriever: std::sync::OnceLock<Arc<crate::retrieval::Retriever>>,
    /// This process's execution-lease owner id and the worker's wake-up bell.
    outbox: outbox::Outbox,
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
    format!("{prefix}_{}", hex::encode(b))
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
            rates: limits::RateLimiter::default(),
            turns: limits::TurnCounter::default(),
            counters: Counters::default(),
            models: std::sync::RwLock::new(None),
            scoring: std::sync::RwLock::new(risk::ScoringState::default()),
            retriever: std::sync::OnceLock::new(),
            outbox: outbox::Outbox::new(),
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
        let now = Utc::now();
        let snapshot =
            planned::keep_planned_dates(&self.store, &self.source.key(), snapshot, now).await?;
        let policy = self.policy.clone();
        let snap = snapshot.clone();
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
            sensitive: Default::default(),
        }));
        self.counters
            .scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(summary)
    }

    // ---- identity ---------------------------------------------------------------

    /// Who a bearer token belongs to, if it is known, not revoked and not expired.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, AppError> {
        let hash = identity::hash_token(token);
        Ok(match self.store.find_active_token(&hash).await? {
            None => Authenticated::Unknown,
            Some(t) => match t.expires_at {
                Some(at) if at <= now_us() => Authenticated::Expired {
                    name: t.name,
                    at: chrono::DateTime::from_timestamp_micros(at).unwrap_or_default(),
                },
                _ => Authenticated::User(User {
                    name: t.name,
                    role: t.role,
                }),
            },
        })
    }

    /// Take one request from the user's bucket for `class` (rates from `limits.toml`).
    pub fn check_rate(&self, user: &User, class: limits::RateClass) -> Result<(), limits::Limited> {
        let l = &self.policy.limits;
        let rate = match class {
            limits::RateClass::Chat => l.chat,
            limits::RateClass::Api => l.api,
        };
        self.rates.check(&user.name, class, rate, Instant::now())
    }

    /// Start a copilot turn for `user`: refused when they have `limits.concurrent_turns`
    /// running, or their turns have spent `limits.model_tokens_per_day` model tokens today
    /// (that refusal is audited as `limit.model_tokens`). The slot is freed when dropped.
    pub async fn begin_turn(&self, user: &User) -> Result<limits::TurnSlot, TurnRefused> {
        let l = &self.policy.limits;
        let slot = self.turns.begin(&user.name, l.concurrent_turns)?;
        if l.model_tokens_per_day > 0 {
            let now = Utc::now();
            let spent = self
                .store
                .model_tokens_since(&user.name, limits::day_start_us(now))
                .await?;
            let spent = u64::try_from(spent).unwrap_or(0);
            if let Err(refused) =
                limits::model_budget(&user.name, spent, l.model_tokens_per_day, now)
            {
                let ev = AuditEvent::new(
                    "limit.model_tokens",
                    &user.name,
                    json!({"spent_today": spent, "cap": l.model_tokens_per_day}),
                )
                .policy(&self.policy.version);
                if let Err(e) = self.audit.append(ev).await {
                    tracing::error!(error = %e, "could not audit a refused turn");
                }
                return Err(TurnRefused::Limited(refused));
            }
        }
        Ok(slot)
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

    // ---- data access --------------------------------------------------------------

    /// Whether people holding a role may see every data class.
    pub fn sees_all(&self, role: &str) -> bool {
        access::Audience::role(&self.policy, role).sees_all()
    }

    /// The one data-access filter for what leaves towards a person: API answers (cases,
    /// exceptions, explanations, intelligence, conversations) pass it for their user's
    /// role. What the role may not see is replaced by a marker that says so.
    pub async fn withhold(&self, role: &str, v: &mut serde_json::Value) {
        let audience = access::Audience::role(&self.policy, role);
        let state = self.latest().await;
        let sensitive = state.as_deref().map(ScanState::sensitive);
        access::Withhold::new(&audience, sensitive).value(v, &mut Default::default());
    }

    /// The same filter over text read by a group (a Discuss channel): what any of the
    /// roles may not see is withheld.
    pub async fn withhold_text(&self, roles: &[String], text: &str) -> String {
        let audience = access::Audience::roles(&self.policy, roles);
        let state = self.latest().await;
        let sensitive = state.as_deref().map(ScanState::sensitive);
        access::Withhold::new(&audience, sensitive).text(text, &mut Default::default())
    }

    /// The model-side filter over texts leaving for a provider (`local`, `external`), such
    /// as embeddings inputs: what the provider may not receive is withheld.
    pub async fn redact_for(&self, provider: &str, texts: Vec<String>) -> Vec<String> {
        let audience = access::Audience::provider(&self.policy, provider);
        if audience.sees_all() {
            return texts;
        }
        let state = self.latest().await;
        let sensitive = state.as_deref().map(ScanState::sensitive);
        let w = access::Withhold::new(&audience, sensitive);
        let mut counts = Default::default();
        texts.iter().map(|t| w.text(t, &mut counts)).collect()
    }

    /// [`App::redact_for`] as an embeddings filter.
    pub fn embeddings_scrub(
        self: &Arc<Self>,
        provider: &'static str,
    ) -> crate::retrieval::embed::Scrub {
        let app = self.clone();
        Arc::new(move |texts| {
            let app = app.clone();
            Box::pin(async move { app.redact_for(provider, texts).await })
        })
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
        let change = crate::store::Change::TransitionCase {
            id: id.to_string(),
            from: from.to_vec(),
            to,
            outcome: outcome.map(str::to_string),
            actor: user.name.clone(),
            now: now_us(),
        };
        let event = AuditEvent::new(
            &format!("case.{}", to.as_str()),
            &user.name,
            json!({"role": user.role, "outcome": outcome}),
        )
        .case(id)
        .policy(&self.policy.version);
        let (applied, seqs) = self
            .audit
            .commit(
                change,
                move |a| if a.changed() { vec![event] } else { vec![] },
            )
            .await?;
        let Some(seq) = seqs.first().copied().filter(|_| applied.changed()) else {
            return Err(AppError::Conflict(format!(
                "case {id} is {} and cannot be {verb}",
                case.summary.status.as_str()
            )));
        };
        if to == CaseStatus::Resolved {
            self.index_resolved(id).await;
        }
        Ok(seq)
    }

    // ---- approvals --------------------------------------------------------------

    /// Ask for one of a case's recommended actions; creates a pending approval request.
    /// `message` is the exact text an action that contacts someone sends (required to
    /// contact a customer; see [`Action::with_message`]).
    pub async fn request_action(
        &self,
        user: &User,
        case_id: &str,
        recommendation: usize,
        message: Option<&str>,
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
        let action = rec
            .action
            .clone()
            .with_message(message)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        self.request(
            user,
            Some(case_id),
            &action,
            &exception.evidence,
            &exception.policy_rule,
        )
        .await
    }

    /// Create an approval request for an exact action (used by the copilot's `act` tools too).
    /// An action that sends a message must carry its text: the approver approves that text
    /// and the executor sends it and nothing else.
    pub async fn request(
        &self,
        user: &User,
        case_id: Option<&str>,
        action: &Action,
        evidence: &[crate::core::Evidence],
        fired_rule: &str,
    ) -> Result<ApprovalRow, AppError> {
        let name = action.name();
        let action = &action
            .clone()
            .with_message(None)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let rule = self
            .policy
            .approvals
            .get(name)
            .ok_or_else(|| AppError::Internal(format!("no approval rule for {name}")))?;
        let now = now_us();
        let owner_role = match case_id {
            Some(c) => self.store.get_case(c).await?.map(|c| c.summary),
            None => None,
        };
        let order_value = match &owner_role {
            Some(c) => self.order_value(&c.order_ref).await,
            None => None,
        };
        let row = ApprovalRow {
            id: new_id("ap"),
            case_id: case_id.map(str::to_string),
            action: name.to_string(),
            params: serde_json::to_value(action).map_err(|e| AppError::Internal(e.to_string()))?,
            evidence: serde_json::to_value(evidence)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            policy_rule: format!("approvals.{name} (raised by {fired_rule})"),
            policy_version: self.policy.version.clone(),
            approver_roles: rule.roles_for_case(owner_role.as_ref().map(|c| c.owner_role.as_str())),
            approvers_needed: rule.approvers_for(order_value),
            requester_may_approve: rule.requester_may_approve,
            order_value: order_value.map(|v| v.to_string()),
            decisions: Vec::new(),
            requested_by: user.name.clone(),
            requested_at: now,
            expires_at: now + i64::from(rule.expires_hours) * 3_600_000_000,
            status: ApprovalStatus::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
            result: None,
            executed_at: None,
            execution: None,
        };
        let mut ev = AuditEvent::new(
            "approval.requested",
            &user.name,
            json!({"approval": row.id, "action": action, "approver_roles": row.approver_roles,
                "approvers_needed": row.approvers_needed, "requester_may_approve": row.requester_may_approve,
                "order_value": row.order_value, "expires_at": row.expires_at}),
        )
        .policy(&self.policy.version);
        ev.case_id = case_id.map(str::to_string);
        let (applied, _) = self
            .audit
            .commit(
                crate::store::Change::InsertApproval(Box::new(row.clone())),
                move |a| if a.changed() { vec![ev] } else { vec![] },
            )
            .await?;
        if !applied.changed() {
            return Err(AppError::Internal(format!(
                "approval {} not stored",
                row.id
            )));
        }
        Ok(row)
    }

    /// The value of an order (every line at its net price) in the latest scan.
    async fn order_value(&self, order_ref: &str) -> Option<rust_decimal::Decimal> {
        let state = self.latest().await?;
        let snap = &state.snapshot;
        let o = snap.orders.iter().find(|o| o.name == order_ref)?;
        let first = o.first_line as usize;
        let lines = snap.lines.get(first..first + o.line_count as usize)?;
        Some(lines.iter().map(|l| l.qty * l.net_price()).sum())
    }

    /// Approve or reject. Only a holder of one of the request's roles may; the requester
    /// may approve only where the policy allows it, and nobody counts twice. A request
    /// needing several approvers stays pending ("waiting for a second approver") until
    /// enough distinct people approved; exactly one of any concurrent decisions completes
    /// it. The decision that approves enqueues the execution in the same transaction as
    /// the decision and its audit event, and returns at once (`approved`): the outbox
    /// worker executes it exactly once ([`outbox`]). Every refusal is audited.
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
        // The role first (403), then the state (409), then separation of duties (403).
        let role_refusal = row.role_refusal(&user.role);
        if role_refusal.is_none() && row.status != ApprovalStatus::Pending {
            return Err(AppError::Conflict(format!(
                "approval request {id} is already {}",
                row.status.as_str()
            )));
        }
        let refusal = role_refusal.or_else(|| {
            approve
                .then(|| row.approve_refusal(&user.name, &user.role))
                .flatten()
        });
        if let Some(why) = refusal {
            let mut ev = AuditEvent::new(
                "approval.refused",
                &user.name,
                json!({"approval": id, "role": user.role, "needs": row.approver_roles,
                    "requested_by": row.requested_by, "approve": approve, "why": why}),
            );
            ev.case_id = row.case_id.clone();
            let _ = self.audit.append(ev).await;
            return Err(AppError::Forbidden(why));
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
        let decision = crate::store::Decision {
            id: id.to_string(),
            actor: user.name.clone(),
            role: user.role.clone(),
            approve,
            reason: reason.map(str::to_string),
            now,
        };
        let (name, role, why) = (
            user.name.clone(),
            user.role.clone(),
            reason.map(str::to_string),
        );
        let (case_id, version, approval) = (
            row.case_id.clone(),
            row.policy_version.clone(),
            id.to_string(),
        );
        let (applied, _) = self
            .audit
            .commit(
                crate::store::Change::DecideApproval(decision),
                move |a| {
                    let payload = match a {
                        crate::store::Applied::Decision(DecisionOutcome::Waiting { approvals, needed }) => json!({
                            "approval": approval, "decision": "approved", "role": role, "reason": why,
                            "approvals": approvals, "needed": needed, "status": "pending",
                        }),
                        crate::store::Applied::Decision(DecisionOutcome::Approved | DecisionOutcome::Rejected) => json!({
                            "approval": approval, "decision": if approve { "approved" } else { "rejected" },
                            "role": role, "reason": why,
                        }),
                        _ => return vec![],
                    };
                    let mut ev = AuditEvent::new("approval.decided", &name, payload).policy(&version);
                    ev.case_id = case_id;
                    vec![ev]
                },
            )
            .await?;
        match applied {
            // Enqueued with the decision; the worker executes it.
            crate::store::Applied::Decision(DecisionOutcome::Approved) => self.outbox.ring(),
            crate::store::Applied::Decision(
                DecisionOutcome::Waiting { .. } | DecisionOutcome::Rejected,
            ) => {}
            crate::store::Applied::Decision(DecisionOutcome::AlreadyDecided) => {
                return Err(AppError::Conflict(format!(
                    "you already decided approval request {id}"
                )));
            }
            _ => {
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
        }
        self.store
            .get_approval(id)
            .await?
            .ok_or_else(|| AppError::Internal(format!("approval {id} vanished")))
    }

    /// Approvals, optionally only those the user may decide (for pending ones: approve).
    pub async fn approvals(
        &self,
        user: &User,
        status: Option<ApprovalStatus>,
        mine: bool,
    ) -> Result<Vec<ApprovalRow>, AppError> {
        let role = mine.then_some(user.role.as_str());
        let mut rows = self.store.list_approvals(status, role, None, 200).await?;
        if mine {
            // "Mine" is what waits for this person: not their own request where the policy
            // wants someone else, nor one they already approved.
            rows.retain(|a| {
                a.status != ApprovalStatus::Pending
                    || a.approve_refusal(&user.name, &user.role).is_none()
            });
        }
        Ok(rows)
    }

    /// One approval.
    pub async fn approval(&self, id: &str) -> Result<ApprovalRow, AppError> {
        self.store
            .get_approval(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no approval request {id}")))
    }

    /// A case's decisions, newest first (the view anyone who may read the case gets): see
    /// [`HistoryScope::Decisions`].
    pub async fn case_history(&self, id: &str) -> Result<Vec<AuditRecord>, AppError> {
        Ok(self
            .case_audit(id)
            .await?
            .into_iter()
            .filter_map(decision_only)
            .collect())
    }

    /// A case's history for `user`, newest first: the whole audit trail for holders of
    /// `read_audit`, the decisions for everyone else.
    pub async fn case_history_for(
        &self,
        user: &User,
        id: &str,
    ) -> Result<(HistoryScope, Vec<AuditRecord>), AppError> {
        if self.policy.permits(&user.role, "read_audit") {
            Ok((HistoryScope::Audit, self.case_audit(id).await?))
        } else {
            Ok((HistoryScope::Decisions, self.case_history(id).await?))
        }
    }

    async fn case_audit(&self, id: &str) -> Result<Vec<AuditRecord>, AppError> {
        let q = AuditQuery {
            case_id: Some(id.to_string()),
            limit: Some(100),
            ..AuditQuery::default()
        };
        let mut rows = audit::search(&self.store, &q).await?;
        audit::open_bodies(&self.store, &mut rows).await?;
        Ok(rows)
    }

    /// Search the audit log (needs `read_audit`).
    pub async fn search_audit(
        &self,
        user: &User,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, AppError> {
        self.require(user, "read_audit")?;
        let mut rows = audit::search(&self.store, q).await?;
        // Holders of `read_audit` read the bodies (decrypted, checked against the chain).
        audit::open_bodies(&self.store, &mut rows).await?;
        Ok(rows)
    }

    /// Apply `retention.body_days`: bodies stored before the cut-off become their digests.
    /// The run is audited (`retention.expired`). `None` when bodies are kept forever.
    pub async fn expire_bodies(&self, now: i64) -> Result<Option<audit::Expired>, AppError> {
        let Some(before) = self.policy.retention.cutoff(now) else {
            return Ok(None);
        };
        let done = audit::expire_bodies(&self.store, before).await?;
        if done.audit_bodies > 0 || done.turns > 0 {
            let ev = done
                .event(before, self.policy.retention.body_days)
                .policy(&self.policy.version);
            if let Err(e) = self.audit.append(ev).await {
                tracing::warn!(error = %e, "retention run not audited");
            }
        }
        Ok(Some(done))
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

/// Start the application over an opened store: the audit writer and the `policy.loaded`
/// event. The one composition used by `serve` and by the tests. Approved actions run in
/// an [`outbox::OutboxWorker`], started separately (`serve` does; a crash's interrupted
/// executions are taken over by whichever worker runs once their leases expire).
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
    Ok((
        Arc::new(App::new(store, audit, policy, source, executor)),
        writer,
    ))
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
