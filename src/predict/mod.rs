//! Predictive risk: four calibrated models over the history the source reports, and the
//! bridge from their predictions to *predicted* exceptions.
//!
//! - late fulfillment per open order line,
//! - supplier delay per open purchase line,
//! - credit hold per customer (within 30 days),
//! - order change per open order of a key account.
//!
//! [`train`] builds each model's features from the history ([`features`]), fits it on
//! the oldest part, calibrates it on the next and evaluates it on the most recent part
//! (a time-based hold-out) against a one-number baseline. [`score`] turns an open
//! snapshot into predictions; [`exceptions::append`] turns those above the policy's
//! threshold into exceptions routed and recommended like any other. Models are plain
//! JSON, versioned by a content hash. Pure apart from [`Models::save`] and
//! [`Models::load`].

pub mod exceptions;
pub mod features;
pub mod metrics;
pub mod model;
pub mod outcomes;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::{Context, Kind};
use crate::domain::{History, Snapshot};
use features::{Example, Subject, Tables};
use metrics::{AtThreshold, CalibrationBin, round4};
pub use model::{Factor, Logistic, TrainError};

/// The four models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Will an open order line reach the customer after its promise?
    LateFulfillment,
    /// Will an open purchase line arrive more than three days after its first planned date?
    SupplierDelay,
    /// Will a customer go on credit hold within 30 days?
    CreditHold,
    /// Will a key account change an open order?
    OrderChange,
}

impl ModelKind {
    /// Every model.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::LateFulfillment,
        ModelKind::SupplierDelay,
        ModelKind::CreditHold,
        ModelKind::OrderChange,
    ];

    /// Machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::LateFulfillment => "late_fulfillment",
            ModelKind::SupplierDelay => "supplier_delay",
            ModelKind::CreditHold => "credit_hold",
            ModelKind::OrderChange => "order_change",
        }
    }

    /// Parse a machine name.
    pub fn parse(s: &str) -> Option<ModelKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The exception kind its predictions become.
    pub fn exception_kind(self) -> Kind {
        match self {
            ModelKind::LateFulfillment => Kind::ShipmentDelay,
            ModelKind::SupplierDelay => Kind::SupplierDelay,
            ModelKind::CreditHold => Kind::CreditHold,
            ModelKind::OrderChange => Kind::RepeatedChanges,
        }
    }

    /// Feature names.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            ModelKind::LateFulfillment => features::LATE_FEATURES,
            ModelKind::SupplierDelay => features::SUPPLIER_FEATURES,
            ModelKind::CreditHold => features::CREDIT_FEATURES,
            ModelKind::OrderChange => features::CHANGE_FEATURES,
        }
    }

    /// What the baseline is.
    pub fn baseline(self) -> &'static str {
        match self {
            ModelKind::LateFulfillment => "the carrier's historical late rate alone",
            ModelKind::SupplierDelay => "the supplier's historical late rate alone",
            ModelKind::CreditHold => "the customer's late-payment share (120 days) alone",
            ModelKind::OrderChange => "the customer's historical change rate alone",
        }
    }
}

/// Where the hold-out splits fall, in days before the end of the history.
pub const CALIBRATION_DAYS: i64 = 150;
/// Test split: the most recent days.
pub const TEST_DAYS: i64 = 75;

/// How a model did on its hold-out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evaluation {
    /// Training examples (oldest).
    pub train: usize,
    /// Calibration examples (next).
    pub calibration: usize,
    /// Hold-out examples (most recent).
    pub test: usize,
    /// Start of the calibration split.
    pub calibration_from: DateTime<Utc>,
    /// Start of the hold-out.
    pub test_from: DateTime<Utc>,
    /// Share of hold-out examples where it happened.
    pub test_positive_rate: f64,
    /// Hold-out ROC AUC of the model.
    pub auc: f64,
    /// Hold-out Brier score of the model.
    pub brier: f64,
    /// Hold-out ROC AUC of the baseline.
    pub baseline_auc: f64,
    /// Hold-out Brier score of the baseline.
    pub baseline_brier: f64,
    /// What the baseline is.
    pub baseline: String,
    /// Reliability table of the calibrated model on the hold-out.
    pub calibration_table: Vec<CalibrationBin>,
    /// Expected calibration error on the hold-out.
    pub calibration_error: f64,
    /// Precision and recall on the hold-out at thresholds 0.10, 0.15, … 0.90.
    pub thresholds: Vec<AtThreshold>,
}

impl Evaluation {
    /// Precision and recall at the tabulated threshold nearest to `t`.
    pub fn at(&self, t: f64) -> Option<&AtThreshold> {
        self.thresholds
            .iter()
            .min_by(|a, b| (a.threshold - t).abs().total_cmp(&(b.threshold - t).abs()))
    }

    /// Whether the model beats its baseline on both AUC and Brier.
    pub fn beats_baseline(&self) -> bool {
        self.auc > self.baseline_auc && self.brier < self.baseline_brier
    }
}

/// A trained, calibrated, evaluated model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// Which model.
    pub kind: ModelKind,
    /// Content hash (12 hex digits of SHA-256 over kind, tables and weights).
    pub version: String,
    /// When it was trained.
    pub trained_at: DateTime<Utc>,
    /// The history it learned from.
    pub history_since: DateTime<Utc>,
    /// End of that history.
    pub history_until: DateTime<Utc>,
    /// Historical rates its features read.
    pub tables: Tables,
    /// Weights and calibration.
    pub model: Logistic,
    /// Hold-out results.
    pub evaluation: Evaluation,
}

impl TrainedModel {
    fn content_hash(kind: ModelKind, tables: &Tables, model: &Logistic) -> String {
        let body = serde_json::to_string(&(kind, tables, model)).unwrap_or_default();
        hex::encode(&Sha256::digest(body.as_bytes())[..6])
    }
}

/// The set of trained models.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Models {
    /// One per kind (a kind that could not be trained is missing).
    pub models: Vec<TrainedModel>,
}

/// Why models could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ModelStoreError {
    /// File trouble.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A model file is not valid.
    #[error("{path}: not a valid model file: {source}")]
    Format {
        /// File.
        path: String,
        /// Cause.
        source: serde_json::Error,
    },
    /// A model file was edited: its content hash does not match its version.
    #[error("{path}: content does not match version {version}")]
    Tampered {
        /// File.
        path: String,
        /// Claimed version.
        version: String,
    },
}

impl Models {
    /// The model of a kind.
    pub fn get(&self, kind: ModelKind) -> Option<&TrainedModel> {
        self.models.iter().find(|m| m.kind == kind)
    }

    /// Write each model as `DIR/<kind>.json` (the current one) and
    /// `DIR/<kind>-<version>.json` (kept, so every version that ever scored stays readable).
    pub fn save(&self, dir: &Path) -> Result<(), ModelStoreError> {
        let io = |path: &Path, source| ModelStoreError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for m in &self.models {
            let json = serde_json::to_string_pretty(m).map_err(|e| ModelStoreError::Format {
                path: dir.display().to_string(),
                source: e,
            })?;
            let versioned = dir.join(format!("{}-{}.json", m.kind.as_str(), m.version));
            std::fs::write(&versioned, &json).map_err(|e| io(&versioned, e))?;
            // Write then rename: a reader never sees half a model.
            let current = dir.join(format!("{}.json", m.kind.as_str()));
            let tmp = dir.join(format!(".{}.json.tmp", m.kind.as_str()));
            std::fs::write(&tmp, &json).map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, &current).map_err(|e| io(&current, e))?;
        }
        Ok(())
    }

    /// Read `DIR/<kind>.json` for every kind; `None` when any is missing.
    pub fn load(dir: &Path) -> Result<Option<Models>, ModelStoreError> {
        let mut models = Vec::new();
        for kind in ModelKind::ALL {
            let path = dir.join(format!("{}.json", kind.as_str()));
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(ModelStoreError::Io {
                        path: path.display().to_string(),
                        source: e,
                    });
                }
            };
            let m: TrainedModel =
                serde_json::from_str(&text).map_err(|e| ModelStoreError::Format {
                    path: path.display().to_string(),
                    source: e,
                })?;
            if TrainedModel::content_hash(m.kind, &m.tables, &m.model) != m.version
                || m.kind != kind
            {
                return Err(ModelStoreError::Tampered {
                    path: path.display().to_string(),
                    version: m.version,
                });
            }
            models.push(m);
        }
        Ok(Some(Models { models }))
    }
}

/// Train every model on the history. A model that cannot be trained (too little history)
/// is reported and left out.
pub fn train(
    s: &Snapshot,
    h: &History,
    trained_at: DateTime<Utc>,
) -> (Models, Vec<(ModelKind, TrainError)>) {
    let mut models = Vec::new();
    let mut failed = Vec::new();
    for kind in ModelKind::ALL {
        match train_one(kind, s, h, trained_at) {
            Ok(m) => models.push(m),
            Err(e) => failed.push((kind, e)),
        }
    }
    (Models { models }, failed)
}

fn examples(kind: ModelKind, s: &Snapshot, h: &History, tables: &Tables) -> Vec<Example> {
    match kind {
        ModelKind::LateFulfillment => features::late_examples(s, h, tables),
        ModelKind::SupplierDelay => features::supplier_examples(s, h, tables),
        ModelKind::CreditHold => features::credit_examples(s, h),
        ModelKind::OrderChange => features::change_examples(s, h, tables),
    }
}

/// Rows, outcomes and baseline probabilities of the examples in `[from, to)`.
type Split = (Vec<Vec<f64>>, Vec<bool>, Vec<f64>);

fn split(examples: &[Example], from: DateTime<Utc>, to: DateTime<Utc>) -> Split {
    let part: Vec<&Example> = examples
        .iter()
        .filter(|e| e.at >= from && e.at < to)
        .collect();
    (
        part.iter().map(|e| e.x.clone()).collect(),
        part.iter().map(|e| e.y).collect(),
        part.iter().map(|e| e.baseline).collect(),
    )
}

/// Train, calibrate and evaluate one model.
pub fn train_one(
    kind: ModelKind,
    s: &Snapshot,
    h: &History,
    trained_at: DateTime<Utc>,
) -> Result<TrainedModel, TrainError> {
    let calibration_from = h.until - Duration::days(CALIBRATION_DAYS);
    let test_from = h.until - Duration::days(TEST_DAYS);
    let tables = Tables::build(s, h, calibration_from);
    let all = examples(kind, s, h, &tables);
    let (tx, ty, _) = split(&all, DateTime::<Utc>::MIN_UTC, calibration_from);
    let (cx, cy, _) = split(&all, calibration_from, test_from);
    let model = Logistic::train(kind.features(), (&tx, &ty), (&cx, &cy))?;
    let version = TrainedModel::content_hash(kind, &tables, &model);
    let mut m = TrainedModel {
        kind,
        version,
        trained_at,
        history_since: h.since,
        history_until: h.until,
        tables,
        model,
        evaluation: Evaluation::default(),
    };
    m.evaluation = evaluate(&m, s, h)?;
    m.evaluation.train = tx.len();
    Ok(m)
}

/// Evaluate a model on the time-based hold-out of a history: the examples of its last
/// [`TEST_DAYS`] days, against the baseline.
pub fn evaluate(m: &TrainedModel, s: &Snapshot, h: &History) -> Result<Evaluation, TrainError> {
    let calibration_from = h.until - Duration::days(CALIBRATION_DAYS);
    let test_from = h.until - Duration::days(TEST_DAYS);
    let all = examples(m.kind, s, h, &m.tables);
    let (tx, _, _) = split(&all, DateTime::<Utc>::MIN_UTC, calibration_from);
    let (cx, _, _) = split(&all, calibration_from, test_from);
    let (ex, ey, eb) = split(&all, test_from, DateTime::<Utc>::MAX_UTC);
    if ex.len() < 20 || !ey.iter().any(|y| *y) {
        return Err(TrainError::Data(format!(
            "{} hold-out examples with {} positives: too few to evaluate",
            ex.len(),
            ey.iter().filter(|y| **y).count()
        )));
    }
    let probs: Vec<f64> = ex.iter().map(|x| m.model.probability(x)).collect();
    let table = metrics::calibration(&probs, &ey);
    Ok(Evaluation {
        train: tx.len(),
        calibration: cx.len(),
        test: ex.len(),
        calibration_from,
        test_from,
        test_positive_rate: round4(ey.iter().filter(|y| **y).count() as f64 / ey.len() as f64),
        auc: round4(metrics::auc(&probs, &ey)),
        brier: round4(metrics::brier(&probs, &ey)),
        baseline_auc: round4(metrics::auc(&eb, &ey)),
        baseline_brier: round4(metrics::brier(&eb, &ey)),
        baseline: m.kind.baseline().to_string(),
        calibration_error: round4(metrics::calibration_error(&table)),
        calibration_table: table,
        thresholds: (2..=18)
            .map(|i| metrics::at_threshold(&probs, &ey, f64::from(i) * 0.05))
            .collect(),
    })
}

/// One prediction about the present.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Which model.
    pub kind: ModelKind,
    /// What it is about.
    pub subject: Subject,
    /// Calibrated probability.
    pub probability: f64,
    /// The feature values.
    pub x: Vec<f64>,
}

/// Score every open line, open purchase line, customer with open orders and open order
/// of a key account. Credit features read `history` (payment behaviour); without one they
/// fall back to a neutral prior.
pub fn score(models: &Models, ctx: &Context, history: Option<&History>) -> Vec<Prediction> {
    let empty = History::default();
    let h = history.unwrap_or(&empty);
    let mut out = Vec::new();
    for m in &models.models {
        let rows = match m.kind {
            ModelKind::LateFulfillment => features::late_present(ctx, &m.tables),
            ModelKind::SupplierDelay => features::supplier_present(ctx, &m.tables),
            ModelKind::CreditHold => features::credit_present(ctx, h),
            ModelKind::OrderChange => features::change_present(ctx, &m.tables),
        };
        out.reserve(rows.len());
        for (subject, x, _) in rows {
            out.push(Prediction {
                kind: m.kind,
                subject,
                probability: m.model.probability(&x),
                x,
            });
        }
    }
    out
}

/// Input drift per feature of one model: PSI of the present values against training.
pub fn drift(model: &TrainedModel, predictions: &[Prediction]) -> Vec<(String, f64)> {
    let rows: Vec<&Prediction> = predictions
        .iter()
        .filter(|p| p.kind == model.kind)
        .collect();
    model
        .model
        .features
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let values: Vec<f64> = rows.iter().filter_map(|p| p.x.get(j).copied()).collect();
            let psi = model
                .model
                .reference
                .get(j)
                .map(|h| h.psi(&values))
                .unwrap_or(0.0);
            (name.clone(), round4(psi))
        })
        .collect()
}
