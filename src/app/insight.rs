//! Operational-intelligence use-cases: gather the incidents (stored cases plus the
//! source's resolved past exceptions) and the latest scan, and hand them to the pure
//! functions of [`crate::intel`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{App, AppError};
use crate::intel::{
    self, AtRisk, Backlog, Bucket, Incident, Links, RecommendationRow, RiskBy, TrendBy, Trends,
};
use crate::store::ApprovalStatus;

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl App {
    /// The latest scan, after checking a row limit (1..=100).
    async fn scanned_with_limit(
        &self,
        limit: usize,
    ) -> Result<std::sync::Arc<super::ScanState>, AppError> {
        if !(1..=100).contains(&limit) {
            return Err(AppError::BadRequest(
                "limit must be between 1 and 100".into(),
            ));
        }
        self.latest()
            .await
            .ok_or_else(|| AppError::Conflict("no scan has completed yet".into()))
    }

    /// Every incident known: each stored case, and each resolved past exception of the
    /// latest snapshot (the history the source reports).
    pub async fn incidents(&self) -> Result<Vec<Incident>, AppError> {
        let facts = self.store.case_facts().await?;
        let latest = self.latest().await;
        let snap = latest.as_ref().map(|l| l.snapshot.clone());
        let empty = crate::domain::Snapshot::default();
        let links = Links::new(snap.as_deref().unwrap_or(&empty));
        let mut out = Vec::with_capacity(facts.len());
        for f in &facts {
            out.push(Incident {
                kind: f.kind.clone(),
                opened: from_us(f.first_seen),
                closed: if f.status.is_active() {
                    None
                } else {
                    Some(from_us(f.decided_at.unwrap_or(f.first_seen)))
                },
                supplier: links
                    .supplier(&f.order_ref, f.product.as_deref())
                    .map(str::to_string),
                route: links.route(f.warehouse.as_deref(), &f.customer),
                customer: f.customer.clone(),
                warehouse: f.warehouse.clone(),
                revenue: Some(Decimal::new(f.revenue_cents, 2)),
            });
        }
        if let Some(s) = snap.as_deref() {
            for h in &s.history {
                let customer = s
                    .customers
                    .get(h.customer as usize)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                let sku = h
                    .product
                    .and_then(|p| s.products.get(p as usize))
                    .map(|p| p.sku.as_str());
                out.push(Incident {
                    kind: h.kind.clone(),
                    opened: h.detected_at,
                    closed: Some(h.resolved_at),
                    supplier: links.supplier(&h.order_ref, sku).map(str::to_string),
                    route: None,
                    customer,
                    warehouse: None,
                    revenue: None,
                });
            }
        }
        Ok(out)
    }

    /// Exceptions detected per day or week, grouped.
    pub async fn trends(&self, by: TrendBy, days: u32, bucket: Bucket) -> Result<Trends, AppError> {
        if !(1..=730).contains(&days) {
            return Err(AppError::BadRequest(
                "days must be between 1 and 730".into(),
            ));
        }
        let incidents = self.incidents().await?;
        Ok(intel::trends(&incidents, by, days, bucket, Utc::now()))
    }

    /// Open exceptions per kind, cycle times, the daily backlog.
    pub async fn backlog(&self) -> Result<Backlog, AppError> {
        let incidents = self.incidents().await?;
        Ok(intel::backlog(&incidents, Utc::now()))
    }

    /// Revenue and margin at risk this month, grouped.
    pub async fn at_risk(&self, by: RiskBy, limit: usize) -> Result<AtRisk, AppError> {
        let state = self.scanned_with_limit(limit).await?;
        let links = Links::new(&state.snapshot);
        Ok(intel::at_risk(
            &state.result.exceptions,
            &links,
            by,
            limit,
            Utc::now(),
            self.policy.thresholds.default_lead_days,
        ))
    }

    /// Acceptance and override of recommendations per kind.
    pub async fn recommendation_stats(&self) -> Result<Vec<RecommendationRow>, AppError> {
        let counts = self.store.recommendation_counts().await?;
        let approvals = self.store.approval_facts().await?;
        let proposed: Vec<(String, u64, u64)> = counts
            .into_iter()
            .map(|c| (c.kind, c.proposed.max(0) as u64, c.dismissed.max(0) as u64))
            .collect();
        let decisions: Vec<intel::Decision> = approvals
            .into_iter()
            .filter_map(|a| {
                let approved = match a.status {
                    ApprovalStatus::Approved
                    | ApprovalStatus::Executing
                    | ApprovalStatus::Executed
                    | ApprovalStatus::Failed => true,
                    ApprovalStatus::Rejected => false,
                    ApprovalStatus::Pending | ApprovalStatus::Expired => return None,
                };
                Some(intel::Decision {
                    top: a.top_action.as_deref() == Some(a.action.as_str()),
                    kind: a.kind,
                    approved,
                })
            })
            .collect();
        Ok(intel::recommendations(&proposed, &decisions))
    }
}

impl App {
    /// Key accounts by how often they change orders.
    pub async fn change_patterns(
        &self,
        limit: usize,
    ) -> Result<Vec<intel::ChangePattern>, AppError> {
        let state = self.scanned_with_limit(limit).await?;
        let history = self
            .source
            .history()
            .await
            .map_err(|e| AppError::Internal(format!("source history unavailable: {e}")))?;
        Ok(intel::change_patterns(
            &state.snapshot,
            history.as_deref(),
            Utc::now(),
            limit,
        ))
    }
}
