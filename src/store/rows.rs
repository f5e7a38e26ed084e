//! The records the store reads and writes, and their decoding from rows.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{StoreError, corrupt};

/// Lifecycle of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Detected, nobody has looked yet.
    Open,
    /// Someone owns it.
    Acknowledged,
    /// Done (by a person, or "cleared" when the condition vanished).
    Resolved,
    /// Not worth acting on, by decision.
    Dismissed,
}

impl CaseStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Acknowledged => "acknowledged",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Dismissed => "dismissed",
        }
    }

    /// Still needs work.
    pub fn is_active(self) -> bool {
        matches!(self, CaseStatus::Open | CaseStatus::Acknowledged)
    }
}

impl FromStr for CaseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "open" => CaseStatus::Open,
            "acknowledged" => CaseStatus::Acknowledged,
            "resolved" => CaseStatus::Resolved,
            "dismissed" => CaseStatus::Dismissed,
            other => return Err(format!("unknown case status `{other}`")),
        })
    }
}

/// A detection to merge into the cases table.
#[derive(Debug, Clone)]
pub struct CaseUpsert {
    /// Stable exception id.
    pub id: String,
    /// Kind name.
    pub kind: String,
    /// Order reference.
    pub order_ref: String,
    /// Customer name.
    pub customer: String,
    /// Tier letter.
    pub tier: String,
    /// Warehouse code.
    pub warehouse: Option<String>,
    /// Product SKU.
    pub product: Option<String>,
    /// Owner role.
    pub owner_role: String,
    /// Severity name.
    pub severity: String,
    /// Score.
    pub score: u8,
    /// Revenue at risk in cents.
    pub revenue_cents: i64,
    /// Title.
    pub title: String,
    /// Policy version.
    pub policy_version: String,
    /// The full exception, JSON.
    pub exception_json: String,
}

/// What a scan merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MergeStats {
    /// New cases.
    pub new: u64,
    /// Existing cases refreshed.
    pub updated: u64,
    /// Resolved cases whose condition came back.
    pub reopened: u64,
    /// Active cases whose condition vanished (auto-resolved as "cleared").
    pub cleared: u64,
}

/// Queue order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseSort {
    /// Highest score first (the ranked queue).
    #[default]
    Score,
    /// Most revenue at risk first.
    Revenue,
    /// Longest open first.
    Oldest,
    /// Most recently changed first.
    Updated,
}

/// Filters of the queue.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    /// Status (default: open and acknowledged).
    pub status: Option<CaseStatus>,
    /// Kind.
    pub kind: Option<String>,
    /// Owner role.
    pub owner: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// Warehouse code.
    pub warehouse: Option<String>,
    /// Tier letter.
    pub tier: Option<String>,
    /// Customer name contains.
    pub customer: Option<String>,
    /// Order reference.
    pub order_ref: Option<String>,
    /// Product SKU.
    pub product: Option<String>,
    /// Only these case ids (a chart's drill-down); empty means no id filter.
    pub ids: Vec<String>,
    /// With no `status`: every case, closed ones too (default: open and acknowledged).
    pub all: bool,
    /// First detected at or after this time (Unix µs).
    pub opened_from: Option<i64>,
    /// First detected before this time (Unix µs).
    pub opened_before: Option<i64>,
    /// Order.
    pub sort: CaseSort,
    /// Page size.
    pub limit: i64,
    /// Offset.
    pub offset: i64,
}

/// How many active cases each value of a queue filter has (the filter menus' options).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseFacets {
    /// Per kind.
    pub kind: Vec<(String, i64)>,
    /// Per owner role.
    pub owner: Vec<(String, i64)>,
    /// Per severity.
    pub severity: Vec<(String, i64)>,
    /// Per warehouse (cases without one are left out).
    pub warehouse: Vec<(String, i64)>,
    /// Per customer tier.
    pub tier: Vec<(String, i64)>,
}

/// A row of the queue.
#[derive(Debug, Clone, Serialize)]
pub struct CaseSummary {
    /// Case id (= exception id).
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Order reference.
    pub order_ref: String,
    /// Customer.
    pub customer: String,
    /// Tier.
    pub tier: String,
    /// Warehouse.
    pub warehouse: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Owner role.
    pub owner_role: String,
    /// Severity.
    pub severity: String,
    /// Score.
    pub score: i64,
    /// Revenue at risk (currency units, two decimals).
    pub revenue_at_risk: f64,
    /// Title.
    pub title: String,
    /// Status.
    pub status: CaseStatus,
    /// Outcome, once decided.
    pub outcome: Option<String>,
    /// First detected (Unix µs).
    pub first_seen: i64,
    /// Last detected (Unix µs).
    pub last_seen: i64,
    /// Times reopened.
    pub reopened: i64,
}

fn status_of(r: &AnyRow, i: usize) -> Result<CaseStatus, StoreError> {
    let s: String = r.try_get(i)?;
    CaseStatus::from_str(&s).map_err(|e| corrupt("cases.status", e))
}

impl CaseSummary {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let cents: i64 = r.try_get(10)?;
        Ok(CaseSummary {
            id: r.try_get(0)?,
            kind: r.try_get(1)?,
            order_ref: r.try_get(2)?,
            customer: r.try_get(3)?,
            tier: r.try_get(4)?,
            warehouse: r.try_get(5)?,
            product: r.try_get(6)?,
            owner_role: r.try_get(7)?,
            severity: r.try_get(8)?,
            score: r.try_get(9)?,
            revenue_at_risk: cents as f64 / 100.0,
            title: r.try_get(11)?,
            status: status_of(r, 12)?,
            outcome: r.try_get(13)?,
            first_seen: r.try_get(14)?,
            last_seen: r.try_get(15)?,
            reopened: r.try_get(16)?,
        })
    }
}

/// One case in full.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDetail {
    /// The queue row.
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// Who completed the decision (the last approver, or the one who rejected).
    pub decided_by: Option<String>,
    /// When (Unix µs).
    pub decided_at: Option<i64>,
    /// The exception with evidence and recommendations.
    pub exception: serde_json::Value,
    /// Policy version of the last detection.
    pub policy_version: String,
}

impl CaseDetail {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let json: String = r.try_get(19)?;
        Ok(CaseDetail {
            summary: CaseSummary::from_row(r)?,
            decided_by: r.try_get(17)?,
            decided_at: r.try_get(18)?,
            exception: serde_json::from_str(&json)
                .map_err(|e| corrupt("cases.exception_json", e.to_string()))?,
            policy_version: r.try_get(20)?,
        })
    }
}

/// Lifecycle of an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a decision.
    Pending,
    /// Approved, about to execute.
    Approved,
    /// Being executed (claimed by exactly one worker).
    Executing,
    /// Executed successfully.
    Executed,
    /// Execution failed.
    Failed,
    /// Rejected.
    Rejected,
    /// Nobody decided in time.
    Expired,
}

impl ApprovalStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Executing => "executing",
            ApprovalStatus::Executed => "executed",
            ApprovalStatus::Failed => "failed",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }
}

impl FromStr for ApprovalStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "executing" => ApprovalStatus::Executing,
            "executed" => ApprovalStatus::Executed,
            "failed" => ApprovalStatus::Failed,
            "rejected" => ApprovalStatus::Rejected,
            "expired" => ApprovalStatus::Expired,
            other => return Err(format!("unknown approval status `{other}`")),
        })
    }
}

pub(super) const APPROVAL_COLUMNS: &str = "id, case_id, action, params_json, evidence_json, policy_rule, policy_version, approver_roles, requested_by, requested_at, expires_at, status, decided_by, decided_at, reason, result_json, executed_at, approvers_needed, requester_may_approve, order_value";

/// One person's decision on an approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalDecision {
    /// Who decided.
    pub by: String,
    /// Their role then.
    pub role: String,
    /// `approved` or `rejected`.
    pub decision: String,
    /// Reason given.
    pub reason: Option<String>,
    /// When (Unix µs).
    pub at: i64,
}

/// An approval request as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRow {
    /// Request id.
    pub id: String,
    /// Case it belongs to.
    pub case_id: Option<String>,
    /// Action name (`reallocate`, …).
    pub action: String,
    /// The exact action parameters (a `core::Action`).
    pub params: serde_json::Value,
    /// Evidence (an array of facts with sources).
    pub evidence: serde_json::Value,
    /// Policy rule that requires the approval.
    pub policy_rule: String,
    /// Policy version.
    pub policy_version: String,
    /// Roles allowed to decide.
    pub approver_roles: Vec<String>,
    /// Distinct people who must approve before it executes.
    pub approvers_needed: u32,
    /// Whether the requester may be one of them.
    pub requester_may_approve: bool,
    /// The order value that chose `approvers_needed` (decimal text), when known.
    pub order_value: Option<String>,
    /// Every decision so far, oldest first (approvals while it waits for more approvers).
    pub decisions: Vec<ApprovalDecision>,
    /// Who asked.
    pub requested_by: String,
    /// When (Unix µs).
    pub requested_at: i64,
    /// Expiry (Unix µs).
    pub expires_at: i64,
    /// Status.
    pub status: ApprovalStatus,
    /// Who completed the decision (the last approver, or the one who rejected).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// Reason given.
    pub reason: Option<String>,
    /// Execution result.
    pub result: Option<serde_json::Value>,
    /// When executed.
    pub executed_at: Option<i64>,
    /// Where the execution stands (attempts, the worker holding it, the last transient
    /// error), once approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<super::ExecutionState>,
}

impl ApprovalRow {
    /// Distinct people who approved so far.
    pub fn approvals(&self) -> u32 {
        self.decisions
            .iter()
            .filter(|d| d.decision == "approved")
            .count() as u32
    }

    /// Why a holder of `role` may not decide (approve or reject) this request, if not.
    pub fn role_refusal(&self, role: &str) -> Option<String> {
        (!self.approver_roles.iter().any(|r| r == role)).then(|| {
            format!(
                "only {} may decide this request; you are {role}",
                self.approver_roles.join(" or ")
            )
        })
    }

    /// Why `user` (with `role`) may not approve this request now, if they may not. The
    /// role check comes first; then separation of duties: the requester (unless the
    /// policy allowed it when the request was made) and anyone who already approved.
    pub fn approve_refusal(&self, user: &str, role: &str) -> Option<String> {
        if let Some(why) = self.role_refusal(role) {
            return Some(why);
        }
        if !self.requester_may_approve && self.requested_by == user {
            return Some(format!(
                "you requested this {}; the policy needs someone else to approve it",
                self.action
            ));
        }
        if self.decisions.iter().any(|d| d.by == user) {
            return Some(format!(
                "you already approved this request; it needs {} distinct approvers",
                self.approvers_needed
            ));
        }
        None
    }

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let roles: String = r.try_get(7)?;
        let status: String = r.try_get(11)?;
        let json = |i: usize, what: &'static str| -> Result<serde_json::Value, StoreError> {
            let s: String = r.try_get(i)?;
            serde_json::from_str(&s).map_err(|e| corrupt(what, e.to_string()))
        };
        let result: Option<String> = r.try_get(15)?;
        Ok(ApprovalRow {
            id: r.try_get(0)?,
            case_id: r.try_get(1)?,
            action: r.try_get(2)?,
            params: json(3, "approvals.params_json")?,
            evidence: json(4, "approvals.evidence_json")?,
            policy_rule: r.try_get(5)?,
            policy_version: r.try_get(6)?,
            approver_roles: roles
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            requested_by: r.try_get(8)?,
            requested_at: r.try_get(9)?,
            expires_at: r.try_get(10)?,
            status: ApprovalStatus::from_str(&status)
                .map_err(|e| corrupt("approvals.status", e))?,
            decided_by: r.try_get(12)?,
            decided_at: r.try_get(13)?,
            reason: r.try_get(14)?,
            result: result
                .map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))),
            executed_at: r.try_get(16)?,
            approvers_needed: u32::try_from(r.try_get::<i64, _>(17)?)
                .map_err(|e| corrupt("approvals.approvers_needed", e.to_string()))?,
            requester_may_approve: r.try_get::<i64, _>(18)? != 0,
            order_value: r.try_get(19)?,
            decisions: Vec::new(),
            execution: None,
        })
    }
}
