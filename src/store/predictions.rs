//! Predictions and their outcomes (model governance): upserted every scan, resolved when
//! the outcome becomes known, summarised per model.

use sqlx::Row;

use super::{Store, StoreError};

/// A prediction as the scan records it.
#[derive(Debug, Clone)]
pub struct PredictionUpsert {
    /// `model:version:subject`.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: String,
    /// Subject reference.
    pub subject: String,
    /// Calibrated probability.
    pub probability: f64,
    /// Policy threshold.
    pub threshold: f64,
    /// The predicted exception raised for it, if any.
    pub exception_id: Option<String>,
}

/// A stored prediction.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PredictionRow {
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: String,
    /// Subject reference.
    pub subject: String,
    /// Latest probability.
    pub probability: f64,
    /// Highest probability seen.
    pub max_probability: f64,
    /// Threshold in force.
    pub threshold: f64,
    /// Whether it reached the threshold.
    pub flagged: bool,
    /// The predicted exception (case id).
    pub exception_id: Option<String>,
    /// First predicted (Unix µs).
    pub first_at: i64,
    /// Last scored (Unix µs).
    pub last_at: i64,
    /// Outcome once known.
    pub outcome: Option<bool>,
    /// How the outcome was determined.
    pub outcome_note: Option<String>,
}

/// A prediction whose outcome is not known yet.
#[derive(Debug, Clone)]
pub struct PendingPrediction {
    /// Row id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Subject reference.
    pub subject: String,
    /// First predicted (Unix µs).
    pub first_at: i64,
}

/// Counts per model over every version.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PredictionCounts {
    /// Model name.
    pub model: String,
    /// Predictions recorded.
    pub predictions: i64,
    /// Of those, at or above the threshold.
    pub flagged: i64,
    /// Outcomes known.
    pub outcomes_known: i64,
    /// Outcomes that happened.
    pub happened: i64,
    /// Flagged and happened.
    pub true_positives: i64,
    /// Flagged and did not happen.
    pub false_positives: i64,
}

/// An approval request on a predicted case.
#[derive(Debug, Clone)]
pub struct PredictedDecision {
    /// Model name.
    pub model: String,
    /// Requested action.
    pub action: String,
    /// The case's top recommended action.
    pub top_action: Option<String>,
    /// Request status.
    pub status: String,
}

const COLUMNS: &str = "model, model_version, subject, probability, max_probability, threshold, flagged, exception_id, first_at, last_at, outcome, outcome_note";

fn row(r: &sqlx::any::AnyRow) -> Result<PredictionRow, StoreError> {
    let flagged: i64 = r.try_get(6)?;
    let outcome: Option<i64> = r.try_get(10)?;
    Ok(PredictionRow {
        model: r.try_get(0)?,
        model_version: r.try_get(1)?,
        subject: r.try_get(2)?,
        probability: r.try_get(3)?,
        max_probability: r.try_get(4)?,
        threshold: r.try_get(5)?,
        flagged: flagged != 0,
        exception_id: r.try_get(7)?,
        first_at: r.try_get(8)?,
        last_at: r.try_get(9)?,
        outcome: outcome.map(|o| o != 0),
        outcome_note: r.try_get(11)?,
    })
}

impl Store {
    /// Record a scan's predictions in one transaction. A subject scored again keeps its
    /// first time and outcome; its latest and highest probability and flag are updated.
    pub async fn record_predictions(
        &self,
        rows: &[PredictionUpsert],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for p in rows {
            let flagged = i64::from(p.probability >= p.threshold);
            sqlx::query(
                "INSERT INTO predictions (id, model, model_version, subject, first_at, last_at, probability, max_probability, threshold, flagged, exception_id) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET last_at = excluded.last_at, probability = excluded.probability, \
                 max_probability = CASE WHEN excluded.probability > predictions.max_probability THEN excluded.probability ELSE predictions.max_probability END, \
                 threshold = excluded.threshold, \
                 flagged = CASE WHEN excluded.flagged = 1 THEN 1 ELSE predictions.flagged END, \
                 exception_id = COALESCE(excluded.exception_id, predictions.exception_id) \
                 WHERE predictions.outcome IS NULL",
            )
            .bind(&p.id)
            .bind(&p.model)
            .bind(&p.model_version)
            .bind(&p.subject)
            .bind(now)
            .bind(p.probability)
            .bind(p.threshold)
            .bind(flagged)
            .bind(&p.exception_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Predictions whose outcome is not known yet.
    pub async fn pending_predictions(&self) -> Result<Vec<PendingPrediction>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, model, subject, first_at FROM predictions WHERE outcome IS NULL",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingPrediction {
                    id: r.try_get(0)?,
                    model: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    first_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Record outcomes (id, happened, how it was determined).
    pub async fn set_outcomes(
        &self,
        outcomes: &[(String, bool, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (id, happened, note) in outcomes {
            sqlx::query(
                "UPDATE predictions SET outcome = $2, outcome_at = $3, outcome_note = $4 WHERE id = $1 AND outcome IS NULL",
            )
            .bind(id)
            .bind(i64::from(*happened))
            .bind(now)
            .bind(note)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The most probable predictions, optionally of one model.
    pub async fn list_predictions(
        &self,
        model: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PredictionRow>, StoreError> {
        let limit = limit.clamp(1, 500);
        let rows = match model {
            Some(m) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM predictions WHERE model = $1 ORDER BY probability DESC, subject LIMIT {limit}"
                )))
                .bind(m)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM predictions ORDER BY probability DESC, subject LIMIT {limit}"
                )))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(row).collect()
    }

    /// Counts per model.
    pub async fn prediction_counts(&self) -> Result<Vec<PredictionCounts>, StoreError> {
        let rows = sqlx::query(
            "SELECT model, COUNT(*), \
               SUM(flagged), \
               SUM(CASE WHEN outcome IS NULL THEN 0 ELSE 1 END), \
               SUM(CASE WHEN outcome = 1 THEN 1 ELSE 0 END), \
               SUM(CASE WHEN flagged = 1 AND outcome = 1 THEN 1 ELSE 0 END), \
               SUM(CASE WHEN flagged = 1 AND outcome = 0 THEN 1 ELSE 0 END) \
             FROM predictions GROUP BY model ORDER BY model",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PredictionCounts {
                    model: r.try_get(0)?,
                    predictions: r.try_get(1)?,
                    flagged: r.try_get(2)?,
                    outcomes_known: r.try_get(3)?,
                    happened: r.try_get(4)?,
                    true_positives: r.try_get(5)?,
                    false_positives: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Predicted cases per model: how many were raised and how many dismissed.
    pub async fn predicted_case_counts(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.model, COUNT(DISTINCT c.id), COUNT(DISTINCT CASE WHEN c.status = 'dismissed' THEN c.id END) \
             FROM predictions p JOIN cases c ON c.id = p.exception_id GROUP BY p.model",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Approval requests on predicted cases, with the case's top action.
    pub async fn predicted_decisions(&self) -> Result<Vec<PredictedDecision>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.model, a.id, a.action, a.status, pl.exception_json FROM approvals a \
             JOIN predictions p ON p.exception_id = a.case_id JOIN case_payloads pl ON pl.id = a.case_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let json: String = r.try_get(4)?;
                let top_action = serde_json::from_str::<serde_json::Value>(&json)
                    .ok()
                    .and_then(|v| {
                        v.get("recommendations")?
                            .get(0)?
                            .get("action")?
                            .as_str()
                            .map(str::to_string)
                    });
                Ok(PredictedDecision {
                    model: r.try_get(0)?,
                    action: r.try_get(2)?,
                    top_action,
                    status: r.try_get(3)?,
                })
            })
            .collect()
    }
}
