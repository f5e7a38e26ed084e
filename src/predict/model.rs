//! A calibrated logistic model: standardised features, coefficients fitted by smartcore's
//! logistic regression (L-BFGS), Platt scaling fitted (by the same library) on a separate
//! calibration split, and the per-feature reference distributions drift is measured
//! against. Scoring is a dot product and two sigmoids; explaining a prediction lists the
//! features that pushed it up the most (coefficient × standardised value).

use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use super::metrics::Histogram;

/// Why a model could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Too few examples, or only one outcome.
    #[error("{0}")]
    Data(String),
    /// The library refused.
    #[error("fitting failed: {0}")]
    Fit(String),
}

/// Fitted weights of a logistic model on standardised inputs, with Platt calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Feature names, in input order.
    pub features: Vec<String>,
    /// Training mean per feature.
    pub mean: Vec<f64>,
    /// Training standard deviation per feature (1 where constant).
    pub scale: Vec<f64>,
    /// Coefficient per standardised feature.
    pub coef: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
    /// Platt scaling: calibrated p = σ(a · logit + b).
    pub platt_a: f64,
    /// Platt intercept.
    pub platt_b: f64,
    /// Training distribution of each feature.
    pub reference: Vec<Histogram>,
}

/// One feature's push on a prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    /// Feature name.
    pub feature: String,
    /// Its value.
    pub value: f64,
    /// Coefficient × standardised value (log-odds it adds; positive raises the risk).
    pub contribution: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn matrix(rows: &[Vec<f64>], cols: usize) -> Result<DenseMatrix<f64>, TrainError> {
    let mut values = Vec::with_capacity(rows.len() * cols);
    for r in rows {
        values.extend_from_slice(r);
    }
    DenseMatrix::new(rows.len(), cols, values, false).map_err(|e| TrainError::Fit(e.to_string()))
}

fn fit(
    rows: &[Vec<f64>],
    cols: usize,
    y: &[bool],
    alpha: f64,
) -> Result<(Vec<f64>, f64), TrainError> {
    let pos = y.iter().filter(|v| **v).count();
    if pos == 0 || pos == y.len() {
        return Err(TrainError::Data(format!(
            "{} examples with {pos} positives: both outcomes are needed",
            y.len()
        )));
    }
    let x = matrix(rows, cols)?;
    let labels: Vec<i32> = y.iter().map(|v| i32::from(*v)).collect();
    let m = LogisticRegression::fit(
        &x,
        &labels,
        LogisticRegressionParameters::default().with_alpha(alpha),
    )
    .map_err(|e| TrainError::Fit(e.to_string()))?;
    let coef: Vec<f64> = (0..cols).map(|j| *m.coefficients().get((0, j))).collect();
    let intercept = *m.intercept().get((0, 0));
    if coef.iter().chain([&intercept]).any(|c| !c.is_finite()) {
        return Err(TrainError::Fit("non-finite coefficients".into()));
    }
    Ok((coef, intercept))
}

impl Logistic {
    /// Fit on `train`, calibrate on `calib`. Rows are raw feature vectors of `names.len()`.
    pub fn train(
        names: &[&str],
        train: (&[Vec<f64>], &[bool]),
        calib: (&[Vec<f64>], &[bool]),
    ) -> Result<Logistic, TrainError> {
        let d = names.len();
        let (xs, ys) = train;
        if xs.len() < 50 || calib.0.len() < 20 {
            return Err(TrainError::Data(format!(
                "{} training and {} calibration examples: too few",
                xs.len(),
                calib.0.len()
            )));
        }
        let n = xs.len() as f64;
        let mut mean = vec![0.0; d];
        for r in xs {
            for j in 0..d {
                mean[j] += r[j] / n;
            }
        }
        let mut scale = vec![0.0; d];
        for r in xs {
            for j in 0..d {
                scale[j] += (r[j] - mean[j]).powi(2) / n;
            }
        }
        for s in &mut scale {
            *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
        }
        let standard =
            |r: &Vec<f64>| -> Vec<f64> { (0..d).map(|j| (r[j] - mean[j]) / scale[j]).collect() };
        let zs: Vec<Vec<f64>> = xs.iter().map(standard).collect();
        // A light ridge keeps coefficients finite when features are collinear.
        let (coef, intercept) = fit(&zs, d, ys, 1.0)?;
        let reference = (0..d)
            .map(|j| Histogram::of(&xs.iter().map(|r| r[j]).collect::<Vec<_>>()))
            .collect();
        let mut m = Logistic {
            features: names.iter().map(|s| s.to_string()).collect(),
            mean,
            scale,
            coef,
            intercept,
            platt_a: 1.0,
            platt_b: 0.0,
            reference,
        };
        let logits: Vec<Vec<f64>> = calib.0.iter().map(|r| vec![m.logit(r)]).collect();
        let (a, b) = fit(&logits, 1, calib.1, 0.0)?;
        m.platt_a = a[0];
        m.platt_b = b;
        Ok(m)
    }

    /// The uncalibrated log-odds of a raw feature vector.
    pub fn logit(&self, x: &[f64]) -> f64 {
        self.intercept
            + self
                .coef
                .iter()
                .zip(x)
                .zip(self.mean.iter().zip(&self.scale))
                .map(|((c, v), (m, sd))| c * (v - m) / sd)
                .sum::<f64>()
    }

    /// The calibrated probability.
    pub fn probability(&self, x: &[f64]) -> f64 {
        sigmoid(self.platt_a * self.logit(x) + self.platt_b)
    }

    /// The features that raised this prediction most, strongest first (at most `k`).
    pub fn explain(&self, x: &[f64], k: usize) -> Vec<Factor> {
        let mut f: Vec<Factor> = (0..self.coef.len().min(x.len()))
            .map(|j| Factor {
                feature: self.features[j].clone(),
                value: x[j],
                contribution: self.platt_a * self.coef[j] * (x[j] - self.mean[j]) / self.scale[j],
            })
            .filter(|f| f.contribution > 0.0)
            .collect();
        f.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        f.truncate(k);
        f
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<bool>) {
        let mut r = fastrand::Rng::with_seed(seed);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..n {
            let a = r.f64() * 4.0 - 2.0;
            let b = r.f64() * 4.0 - 2.0;
            let noise = r.f64();
            let p = sigmoid(1.5 * a - 0.5);
            xs.push(vec![a, b, noise]);
            ys.push(r.f64() < p);
        }
        (xs, ys)
    }

    #[test]
    fn learns_the_signal_and_explains_with_it() {
        let (xs, ys) = data(3000, 1);
        let (cx, cy) = data(1000, 2);
        let m = Logistic::train(&["a", "b", "noise"], (&xs, &ys), (&cx, &cy)).unwrap();
        assert!(m.coef[0] > 1.0, "{:?}", m.coef);
        assert!(
            m.coef[1].abs() < 0.2 && m.coef[2].abs() < 0.2,
            "{:?}",
            m.coef
        );
        let top = m.explain(&[1.8, 0.0, 0.5], 3);
        assert_eq!(top[0].feature, "a");
        let p = m.probability(&[1.8, 0.0, 0.5]);
        assert!((p - sigmoid(1.5 * 1.8 - 0.5)).abs() < 0.08, "{p}");
    }

    #[test]
    fn one_outcome_is_an_error() {
        let (xs, _) = data(200, 3);
        let ys = vec![false; 200];
        assert!(matches!(
            Logistic::train(&["a", "b", "c"], (&xs, &ys), (&xs, &ys)),
            Err(TrainError::Data(_))
        ));
    }
}
