//! Handlers: extract, call one use-case, map the result. No SQL and no business rules here.

use std::str::FromStr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, openapi};
use crate::app::User;
use crate::store::audit::AuditQuery;
use crate::store::{ApprovalStatus, CaseQuery, CaseSort, CaseStatus};

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// Parse an optional JSON body (empty body = defaults).
fn body<T: DeserializeOwned + Default>(b: &Bytes) -> Result<T, ApiError> {
    if b.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn bounded(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.len() > max => Err(ApiError::BadRequest(format!(
            "{field} is longer than {max} characters"
        ))),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

pub(super) async fn me(State(s): State<AppState>, Extension(user): Extension<User>) -> ApiResult {
    let perms: Vec<&str> = crate::policy::PERMISSIONS
        .iter()
        .copied()
        .filter(|p| s.app.policy.permits(&user.role, p))
        .collect();
    let approves: Vec<&String> = s
        .app
        .policy
        .approvals
        .iter()
        .filter(|(_, r)| r.roles.contains(&user.role))
        .map(|(a, _)| a)
        .collect();
    ok(json!({"name": user.name, "role": user.role, "permissions": perms, "approves": approves}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExceptionsQuery {
    status: Option<String>,
    kind: Option<String>,
    owner: Option<String>,
    severity: Option<String>,
    warehouse: Option<String>,
    tier: Option<String>,
    customer: Option<String>,
    order: Option<String>,
    product: Option<String>,
    ids: Option<String>,
    opened_from: Option<String>,
    opened_to: Option<String>,
    sort: Option<CaseSort>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list_exceptions(
    State(s): State<AppState>,
    q: Result<Query<ExceptionsQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let (status, all) = match q.status.as_deref() {
        None | Some("") | Some("active") => (None, false),
        Some("all") => (None, true),
        Some(x) => (
            Some(CaseStatus::from_str(x).map_err(ApiError::BadRequest)?),
            false,
        ),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 500".into(),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest("offset must not be negative".into()));
    }
    let cq = CaseQuery {
        status,
        kind: bounded("kind", q.kind, 64)?,
        owner: bounded("owner", q.owner, 64)?,
        severity: bounded("severity", q.severity, 16)?,
        warehouse: bounded("warehouse", q.warehouse, 32)?,
        tier: bounded("tier", q.tier, 4)?,
        customer: bounded("customer", q.customer, 128)?,
        order_ref: bounded("order", q.order, 64)?,
        product: bounded("product", q.product, 64)?,
        ids: case_ids(q.ids)?,
        all,
        opened_from: day_start("opened_from", q.opened_from, 0)?,
        opened_before: day_start("opened_to", q.opened_to, 1)?,
        sort: q.sort.unwrap_or_default(),
        limit,
        offset,
    };
    let (items, total) = s.app.list_cases(&cq).await?;
    ok(json!({"items": items, "total": total, "limit": limit, "offset": offset}))
}

/// Most case ids one queue request may name (a chart bar's drill-down names up to 50).
const MAX_IDS: usize = 100;

/// `ids=a,b,c` → the ids, each bounded; at most [`MAX_IDS`].
fn case_ids(v: Option<String>) -> Result<Vec<String>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let ids: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_IDS {
        return Err(ApiError::BadRequest(format!(
            "ids names {} cases; at most {MAX_IDS} are allowed",
            ids.len()
        )));
    }
    if let Some(long) = ids.iter().find(|s| s.len() > 64) {
        return Err(ApiError::BadRequest(format!(
            "case id `{}…` is longer than 64 characters",
            long.chars().take(16).collect::<String>()
        )));
    }
    Ok(ids)
}

/// A `YYYY-MM-DD` date (UTC) → the Unix µs at the start of that day plus `days_after` days
/// (`opened_to` is inclusive, so it bounds by the start of the next day).
fn day_start(field: &str, v: Option<String>, days_after: i64) -> Result<Option<i64>, ApiError> {
    let Some(v) = v.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let day = chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_days(chrono::Days::new(days_after.unsigned_abs())))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{field} must be a date like 2026-11-26, not `{}`",
                v.chars().take(32).collect::<String>()
            ))
        })?;
    Ok(Some(day.and_utc().timestamp_micros()))
}

pub(super) async fn exception_facets(State(s): State<AppState>) -> ApiResult {
    let f = s.app.case_facets().await?;
    let pairs = |v: Vec<(String, i64)>| -> Value {
        v.into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect()
    };
    ok(json!({
        "kind": pairs(f.kind),
        "owner": pairs(f.owner),
        "severity": pairs(f.severity),
        "warehouse": pairs(f.warehouse),
        "tier": pairs(f.tier),
    }))
}

pub(super) async fn get_case(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult {
    let (case, approvals) = s.app.case(&id).await?;
    let (scope, history) = s.app.case_history_for(&user, &id).await?;
    ok(json!({"case": case, "approvals": approvals, "history": history, "history_scope": scope}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Outcome {
    outcome: Option<String>,
    reason: Option<String>,
}

async fn decide(s: &AppState, user: &User, id: &str, to: CaseStatus, b: &Bytes) -> ApiResult {
    let o: Outcome = body(b)?;
    let text = o.outcome.or(o.reason);
    let seq = s.app.decide_case(user, id, to, text.as_deref()).await?;
    let (case, _) = s.app.case(id).await?;
    ok(json!({"case": case.summary, "audit_seq": seq}))
}

pub(super) async fn acknowledge(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    b: Bytes,
) -> ApiResult {
    decide(&s, &user, &id, CaseStatus::Acknowledged, &b).await
}

pub(super) async fn resolve(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    b: Bytes,
) -> ApiResult {
    decide(&s, &user, &id, CaseStatus::Resolved, &b).await
}

pub(super) async fn dismiss(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    b: Bytes,
) -> ApiResult {
    decide(&s, &user, &id, CaseStatus::Dismissed, &b).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionRequest {
    recommendation: Option<usize>,
    /// The exact text sent, for an action that contacts a customer or supplier.
    message: Option<String>,
}

pub(super) async fn request_action(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    b: Bytes,
) -> ApiResult {
    let r: ActionRequest = body(&b)?;
    let idx = r.recommendation.ok_or_else(|| {
        ApiError::BadRequest(
            "`recommendation` (the index of the case's recommendation) is required".into(),
        )
    })?;
    let row = s
        .app
        .request_action(&user, &id, idx, r.message.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"approval": row}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalsQuery {
    status: Option<String>,
    mine: Option<bool>,
}

pub(super) async fn list_approvals(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    q: Result<Query<ApprovalsQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let status = match q.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(x) => Some(ApprovalStatus::from_str(x).map_err(ApiError::BadRequest)?),
    };
    let items = s
        .app
        .approvals(&user, status, q.mine.unwrap_or(false))
        .await?;
    ok(json!({"items": items}))
}

pub(super) async fn get_approval(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    ok(json!({"approval": s.app.approval(&id).await?}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    reason: Option<String>,
}

async fn decide_request(
    s: &AppState,
    user: &User,
    id: &str,
    approve: bool,
    b: &Bytes,
) -> ApiResult {
    let d: Decision = body(b)?;
    let row = s
        .app
        .decide_approval(user, id, approve, d.reason.as_deref())
        .await?;
    ok(json!({"approval": row}))
}

pub(super) async fn approve(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    b: Bytes,
) -> ApiResult {
    decide_request(&s, &user, &id, true, &b).await
}

pub(super) async fn reject(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    b: Bytes,
) -> ApiResult {
    decide_request(&s, &user, &id, false, &b).await
}

pub(super) async fn audit_search(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let items = s.app.search_audit(&user, &q).await?;
    ok(json!({"items": items}))
}

pub(super) async fn audit_verify(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult {
    let v = s.app.verify_audit(&user).await?;
    ok(
        json!({"ok": v.ok(), "rows": v.rows, "first_bad": v.first_bad.map(|(seq, why)| json!({"seq": seq, "problem": why}))}),
    )
}

pub(super) async fn explain(State(s): State<AppState>, Path(order): Path<String>) -> ApiResult {
    if order.len() > 64 {
        return Err(ApiError::BadRequest(
            "order reference is longer than 64 characters".into(),
        ));
    }
    ok(serde_json::to_value(s.app.explain(&order).await?)
        .map_err(|e| ApiError::App(crate::app::AppError::Internal(e.to_string())))?)
}

pub(super) async fn scan(State(s): State<AppState>, Extension(user): Extension<User>) -> ApiResult {
    s.app.require(&user, "run_scan")?;
    ok(json!({"scan": s.app.scan(&user.name).await?}))
}

pub(super) async fn status(State(s): State<AppState>) -> ApiResult {
    let latest = s.app.latest().await;
    let counts = s.app.case_counts().await?;
    let scan = latest.map(|l| {
        json!({
            "finished_at": l.finished_at,
            "age_seconds": (chrono::Utc::now() - l.finished_at).num_seconds(),
            "detect_ms": l.duration.as_millis(),
            "exceptions": l.result.exceptions.len(),
            "open_lines": l.result.open_lines,
            "findings": l.result.findings.len(),
            "merge": l.merge,
            "snapshot_taken_at": l.snapshot.taken_at,
        })
    });
    ok(json!({
        "source": s.app.source.describe(),
        "source_status": s.app.source.status(),
        "policy_version": s.app.policy.version,
        "last_scan": scan,
        "cases": counts.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

pub(super) async fn readyz(State(s): State<AppState>) -> Response {
    let db = s.app.store.ping().await;
    let scanned = s.app.latest().await.is_some();
    let status = if db && scanned {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"database": db, "scanned": scanned}))).into_response()
}

pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let text = s.metrics.render(&s.app).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(super) async fn openapi() -> Response {
    Json(openapi::document()).into_response()
}

// ---- operational intelligence ---------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrendsQuery {
    by: Option<crate::intel::TrendBy>,
    days: Option<u32>,
    bucket: Option<crate::intel::Bucket>,
}

pub(super) async fn intel_trends(
    State(s): State<AppState>,
    q: Result<Query<TrendsQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let t = s
        .app
        .trends(
            q.by.unwrap_or_default(),
            q.days.unwrap_or(90),
            q.bucket.unwrap_or_default(),
        )
        .await?;
    ok(json!(t))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AtRiskQuery {
    by: Option<crate::intel::RiskBy>,
    limit: Option<usize>,
}

pub(super) async fn intel_at_risk(
    State(s): State<AppState>,
    q: Result<Query<AtRiskQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let r = s
        .app
        .at_risk(q.by.unwrap_or_default(), q.limit.unwrap_or(20))
        .await?;
    ok(json!(r))
}

pub(super) async fn intel_backlog(State(s): State<AppState>) -> ApiResult {
    ok(json!(s.app.backlog().await?))
}

pub(super) async fn intel_recommendations(State(s): State<AppState>) -> ApiResult {
    ok(json!({"rows": s.app.recommendation_stats().await?}))
}

// ---- predictive risk ----------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PredictionsQuery {
    kind: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn predictions(
    State(s): State<AppState>,
    q: Result<Query<PredictionsQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let kind = bounded("kind", q.kind, 64)?;
    let rows = s
        .app
        .predictions(kind.as_deref(), q.limit.unwrap_or(50))
        .await?;
    ok(json!({"rows": rows}))
}

pub(super) async fn models(State(s): State<AppState>) -> ApiResult {
    ok(json!({"models": s.app.model_reports().await?}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitQuery {
    limit: Option<usize>,
}

pub(super) async fn intel_change_patterns(
    State(s): State<AppState>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    ok(json!({"rows": s.app.change_patterns(q.limit.unwrap_or(20)).await?}))
}
