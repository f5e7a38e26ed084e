//! Reads for operational intelligence: every case's lifecycle facts, recommendation
//! counts per kind, and the approvals people decided with the case's top recommendation.
//! Plain rows; the arithmetic lives in `crate::intel`.

use std::str::FromStr;

use sqlx::Row;

use super::{ApprovalStatus, CaseStatus, Store, StoreError, corrupt};

/// A case as intelligence needs it.
#[derive(Debug, Clone)]
pub struct CaseFact {
    /// Case id (the exception's stable id).
    pub id: String,
    /// Kind name.
    pub kind: String,
    /// Order (or purchase order) reference.
    pub order_ref: String,
    /// Customer name.
    pub customer: String,
    /// Warehouse code.
    pub warehouse: Option<String>,
    /// Product SKU.
    pub product: Option<String>,
    /// Revenue at risk in cents.
    pub revenue_cents: i64,
    /// Lifecycle status.
    pub status: CaseStatus,
    /// When first detected (Unix µs).
    pub first_seen: i64,
    /// When resolved or dismissed (Unix µs).
    pub decided_at: Option<i64>,
}

/// Per kind: cases, cases that carried at least one recommendation, cases dismissed.
#[derive(Debug, Clone, Default)]
pub struct KindRecommendations {
    /// Kind name.
    pub kind: String,
    /// Cases with at least one recommendation.
    pub proposed: i64,
    /// Cases dismissed.
    pub dismissed: i64,
}

/// An approval request with its case's kind and the case's top recommended action.
#[derive(Debug, Clone)]
pub struct ApprovalFact {
    /// Kind of the case.
    pub kind: String,
    /// The action requested.
    pub action: String,
    /// The first (best) recommendation's action on the case, if any.
    pub top_action: Option<String>,
    /// The request's status.
    pub status: ApprovalStatus,
}

impl Store {
    /// Every case's lifecycle facts.
    pub async fn case_facts(&self) -> Result<Vec<CaseFact>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, order_ref, customer, warehouse, product, revenue_cents, status, first_seen, decided_at FROM cases",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get(7)?;
                let status =
                    CaseStatus::from_str(&status).map_err(|e| corrupt("cases.status", e))?;
                Ok(CaseFact {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    order_ref: r.try_get(2)?,
                    customer: r.try_get(3)?,
                    warehouse: r.try_get(4)?,
                    product: r.try_get(5)?,
                    revenue_cents: r.try_get(6)?,
                    status,
                    first_seen: r.try_get(8)?,
                    decided_at: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// Cases with recommendations and dismissed cases, per kind. An exception without
    /// options serialises its list as exactly `"recommendations":[]`.
    pub async fn recommendation_counts(&self) -> Result<Vec<KindRecommendations>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.kind, \
                    SUM(CASE WHEN p.exception_json LIKE '%\"recommendations\":[]%' THEN 0 ELSE 1 END), \
                    SUM(CASE WHEN c.status = 'dismissed' THEN 1 ELSE 0 END) \
             FROM cases c JOIN case_payloads p ON p.id = c.id GROUP BY c.kind ORDER BY c.kind",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KindRecommendations {
                    kind: r.try_get(0)?,
                    proposed: r.try_get(1)?,
                    dismissed: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Every approval request that belongs to a case, with the case's kind and top action.
    pub async fn approval_facts(&self) -> Result<Vec<ApprovalFact>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.kind, a.action, a.status, p.exception_json FROM approvals a \
             JOIN cases c ON c.id = a.case_id JOIN case_payloads p ON p.id = a.case_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get(2)?;
                let status = ApprovalStatus::from_str(&status)
                    .map_err(|e| corrupt("approvals.status", e))?;
                let json: String = r.try_get(3)?;
                let exception: serde_json::Value = serde_json::from_str(&json)
                    .map_err(|e| corrupt("cases.exception_json", e.to_string()))?;
                let top_action = exception
                    .get("recommendations")
                    .and_then(|v| v.get(0))
                    .and_then(|v| v.get("action"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                Ok(ApprovalFact {
                    kind: r.try_get(0)?,
                    action: r.try_get(1)?,
                    top_action,
                    status,
                })
            })
            .collect()
    }
}
