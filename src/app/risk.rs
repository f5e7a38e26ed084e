//! Predictive-risk use-cases: the models the scan scores with, recording every
//! prediction and its eventual outcome, and the governance numbers a risk committee asks
//! for (precision at the policy threshold, false positives, acceptance and override of
//! the recommendations on predicted cases, input drift).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{App, AppError};
use crate::core::ScanResult;
use crate::domain::Snapshot;
use crate::predict::{self, ModelKind, Models, Prediction, exceptions, outcomes};
use crate::store::predictions::{PredictionCounts, PredictionRow, PredictionUpsert};

/// What the last scan's scoring left for governance.
#[derive(Debug, Clone, Default)]
pub struct ScoringState {
    /// Input drift per model: (feature, PSI against training).
    pub drift: Vec<(ModelKind, Vec<(String, f64)>)>,
    /// Subjects scored per model.
    pub scored: Vec<(ModelKind, usize)>,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

/// Governance numbers of one model.
#[derive(Debug, Clone, Serialize)]
pub struct Governance {
    /// Recorded predictions and their outcomes.
    #[serde(flatten)]
    pub counts: PredictionCounts,
    /// `true_positives / (true_positives + false_positives)` over flagged predictions
    /// whose outcome is known; `null` before any is.
    pub precision_at_threshold: Option<f64>,
    /// Predicted cases raised.
    pub cases: i64,
    /// Approval requests for the case's top recommendation that were approved.
    pub accepted: i64,
    /// Requests for another option, or rejections.
    pub overridden: i64,
    /// Predicted cases dismissed.
    pub dismissed: i64,
    /// `accepted / cases`.
    pub acceptance_rate: f64,
    /// `overridden / (accepted + overridden)`.
    pub override_rate: f64,
}

/// One model as `/api/models` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// Model name.
    pub model: ModelKind,
    /// Version (content hash).
    pub version: String,
    /// When trained.
    pub trained_at: DateTime<Utc>,
    /// Feature names.
    pub features: Vec<String>,
    /// Policy threshold.
    pub threshold: Option<f64>,
    /// Hold-out evaluation.
    pub evaluation: predict::Evaluation,
    /// Governance from recorded predictions.
    pub governance: Governance,
    /// Input drift of the last scoring: PSI per feature.
    pub drift: Vec<Drift>,
    /// Subjects scored in the last scan.
    pub scored: usize,
}

/// PSI of one feature.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// Feature.
    pub feature: String,
    /// Population stability index against training (< 0.1 stable, > 0.25 shifted).
    pub psi: f64,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b <= 0 {
        0.0
    } else {
        ((a as f64 / b as f64) * 1000.0).round() / 1000.0
    }
}

impl App {
    /// Use these models from the next scan on.
    pub fn set_models(&self, models: Models) {
        let mut g = match self.models.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Some(Arc::new(models));
    }

    /// The models in use.
    pub fn models(&self) -> Option<Arc<Models>> {
        match self.models.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Record a scan's predictions, resolve the outcomes that became known, keep drift.
    pub(super) async fn record_scoring(
        &self,
        snap: &Snapshot,
        result: &ScanResult,
        models: &Models,
        scored: &[Prediction],
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let raised: HashSet<&str> = result
            .exceptions
            .iter()
            .filter(|e| e.predicted)
            .map(|e| e.id.as_str())
            .collect();
        let mut rows = Vec::with_capacity(scored.len());
        for p in scored {
            let (Some(m), Some(subject)) =
                (models.get(p.kind), exceptions::subject_ref(snap, p.subject))
            else {
                continue;
            };
            let threshold = self
                .policy
                .predictions
                .map(|pp| exceptions::threshold(&pp, p.kind))
                .unwrap_or(1.0);
            let exception_id =
                exceptions::exception_id(snap, p.subject).filter(|id| raised.contains(id.as_str()));
            rows.push(PredictionUpsert {
                id: format!("{}:{}:{subject}", m.kind.as_str(), m.version),
                model: m.kind.as_str().to_string(),
                model_version: m.version.clone(),
                subject,
                probability: (p.probability * 10_000.0).round() / 10_000.0,
                threshold,
                exception_id,
            });
        }
        let now_us = now.timestamp_micros();
        self.store.record_predictions(&rows, now_us).await?;
        let pending = self.store.pending_predictions().await?;
        let lookup = outcomes::Lookup::new(snap, &result.exceptions);
        let resolved: Vec<(String, bool, String)> = pending
            .into_iter()
            .filter_map(|p| {
                let kind = ModelKind::parse(&p.model)?;
                let first = DateTime::from_timestamp_micros(p.first_at)?;
                let (happened, note) = outcomes::resolve(&lookup, kind, &p.subject, first, now)?;
                Some((p.id, happened, note))
            })
            .collect();
        self.store.set_outcomes(&resolved, now_us).await?;
        let state = ScoringState {
            drift: models
                .models
                .iter()
                .map(|m| (m.kind, predict::drift(m, scored)))
                .collect(),
            scored: models
                .models
                .iter()
                .map(|m| (m.kind, scored.iter().filter(|p| p.kind == m.kind).count()))
                .collect(),
            at: Some(now),
        };
        let mut g = match self.scoring.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = state;
        Ok(())
    }

    /// Recorded predictions, most probable first.
    pub async fn predictions(
        &self,
        model: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PredictionRow>, AppError> {
        if let Some(m) = model
            && ModelKind::parse(m).is_none()
        {
            return Err(AppError::BadRequest(format!(
                "unknown model `{m}` (known: {})",
                ModelKind::ALL.map(|k| k.as_str()).join(", ")
            )));
        }
        if !(1..=500).contains(&limit) {
            return Err(AppError::BadRequest(
                "limit must be between 1 and 500".into(),
            ));
        }
        Ok(self.store.list_predictions(model, limit).await?)
    }

    /// Every model in use with its evaluation, governance and drift.
    pub async fn model_reports(&self) -> Result<Vec<ModelReport>, AppError> {
        let Some(models) = self.models() else {
            return Ok(Vec::new());
        };
        let counts: HashMap<String, PredictionCounts> = self
            .store
            .prediction_counts()
            .await?
            .into_iter()
            .map(|c| (c.model.clone(), c))
            .collect();
        let cases: HashMap<String, (i64, i64)> = self
            .store
            .predicted_case_counts()
            .await?
            .into_iter()
            .map(|(m, n, d)| (m, (n, d)))
            .collect();
        let mut decisions: HashMap<String, (i64, i64)> = HashMap::new();
        for d in self.store.predicted_decisions().await? {
            let e = decisions.entry(d.model).or_default();
            match d.status.as_str() {
                "approved" | "executing" | "executed" | "failed"
                    if d.top_action.as_deref() == Some(d.action.as_str()) =>
                {
                    e.0 += 1
                }
                "pending" | "expired" => {}
                _ => e.1 += 1,
            }
        }
        let scoring = match self.scoring.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        Ok(models
            .models
            .iter()
            .map(|m| {
                let name = m.kind.as_str();
                let c = counts
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| PredictionCounts {
                        model: name.to_string(),
                        ..PredictionCounts::default()
                    });
                let known_flagged = c.true_positives + c.false_positives;
                let (n_cases, dismissed) = cases.get(name).copied().unwrap_or((0, 0));
                let (accepted, overridden) = decisions.get(name).copied().unwrap_or((0, 0));
                ModelReport {
                    model: m.kind,
                    version: m.version.clone(),
                    trained_at: m.trained_at,
                    features: m.model.features.clone(),
                    threshold: self
                        .policy
                        .predictions
                        .map(|p| exceptions::threshold(&p, m.kind)),
                    evaluation: m.evaluation.clone(),
                    governance: Governance {
                        precision_at_threshold: (known_flagged > 0)
                            .then(|| ratio(c.true_positives, known_flagged)),
                        counts: c,
                        cases: n_cases,
                        accepted,
                        overridden,
                        dismissed,
                        acceptance_rate: ratio(accepted, n_cases),
                        override_rate: ratio(overridden, accepted + overridden),
                    },
                    drift: scoring
                        .drift
                        .iter()
                        .find(|(k, _)| *k == m.kind)
                        .map(|(_, d)| {
                            d.iter()
                                .map(|(f, psi)| Drift {
                                    feature: f.clone(),
                                    psi: *psi,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    scored: scoring
                        .scored
                        .iter()
                        .find(|(k, _)| *k == m.kind)
                        .map(|(_, n)| *n)
                        .unwrap_or(0),
                }
            })
            .collect())
    }
}
