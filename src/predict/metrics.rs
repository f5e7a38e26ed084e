//! How good a probability is: ROC AUC, Brier score, a reliability (calibration) table,
//! precision at a threshold, and the population stability index of an input.

use serde::{Deserialize, Serialize};

/// Area under the ROC curve: the chance that a random positive scores above a random
/// negative (ties count half). 0.5 when either class is missing.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos, mut i) = (0.0, 0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg;
                pos += 1.0;
            }
        }
        i = j + 1;
    }
    let neg = idx.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Mean squared error of the probabilities against the outcomes.
pub fn brier(probs: &[f64], labels: &[bool]) -> f64 {
    let n = probs.len().min(labels.len());
    if n == 0 {
        return 0.0;
    }
    probs
        .iter()
        .zip(labels)
        .map(|(p, &y)| (p - f64::from(u8::from(y))).powi(2))
        .sum::<f64>()
        / n as f64
}

/// One bin of a reliability table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge of predicted probability.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Examples in the bin.
    pub n: usize,
    /// Mean predicted probability.
    pub predicted: f64,
    /// Share that happened.
    pub observed: f64,
}

/// Ten equal-width bins of predicted probability (empty bins left out).
pub fn calibration(probs: &[f64], labels: &[bool]) -> Vec<CalibrationBin> {
    let mut sums = [(0usize, 0.0f64, 0.0f64); 10];
    for (p, &y) in probs.iter().zip(labels) {
        let b = ((p * 10.0).floor() as usize).min(9);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += f64::from(u8::from(y));
    }
    sums.iter()
        .enumerate()
        .filter(|(_, s)| s.0 > 0)
        .map(|(i, s)| CalibrationBin {
            lo: i as f64 / 10.0,
            hi: (i + 1) as f64 / 10.0,
            n: s.0,
            predicted: round4(s.1 / s.0 as f64),
            observed: round4(s.2 / s.0 as f64),
        })
        .collect()
}

/// Expected calibration error: the bins' |predicted − observed|, weighted by size.
pub fn calibration_error(bins: &[CalibrationBin]) -> f64 {
    let n: usize = bins.iter().map(|b| b.n).sum();
    if n == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|b| b.n as f64 * (b.predicted - b.observed).abs())
        .sum::<f64>()
        / n as f64
}

/// Precision and recall when flagging at a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtThreshold {
    /// The threshold (flag when p ≥ it).
    pub threshold: f64,
    /// Examples flagged.
    pub flagged: usize,
    /// Flagged that happened.
    pub true_positives: usize,
    /// Flagged that did not.
    pub false_positives: usize,
    /// `true_positives / flagged` (0 when nothing is flagged).
    pub precision: f64,
    /// Share of what happened that was flagged.
    pub recall: f64,
}

/// Precision and recall at `threshold`.
pub fn at_threshold(probs: &[f64], labels: &[bool], threshold: f64) -> AtThreshold {
    let (mut tp, mut fp, mut pos) = (0, 0, 0);
    for (p, &y) in probs.iter().zip(labels) {
        pos += usize::from(y);
        if *p >= threshold {
            if y {
                tp += 1;
            } else {
                fp += 1;
            }
        }
    }
    AtThreshold {
        threshold,
        flagged: tp + fp,
        true_positives: tp,
        false_positives: fp,
        precision: if tp + fp == 0 {
            0.0
        } else {
            round4(tp as f64 / (tp + fp) as f64)
        },
        recall: if pos == 0 {
            0.0
        } else {
            round4(tp as f64 / pos as f64)
        },
    }
}

/// A feature's distribution: decile edges from training and the share in each bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Inner bin edges (ascending, deduplicated): bin `i` holds `edges[i-1] < x <= edges[i]`.
    pub edges: Vec<f64>,
    /// Share of training values per bin (`edges.len() + 1` bins).
    pub shares: Vec<f64>,
}

impl Histogram {
    /// Decile edges of `values` and their shares.
    pub fn of(values: &[f64]) -> Histogram {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = Vec::new();
        if !v.is_empty() {
            for q in 1..10 {
                let e = v[(q * v.len() / 10).min(v.len() - 1)];
                if edges.last().is_none_or(|l| e > *l) {
                    edges.push(e);
                }
            }
        }
        let shares = Self::shares_of(&edges, values);
        Histogram { edges, shares }
    }

    fn shares_of(edges: &[f64], values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; edges.len() + 1];
        for x in values {
            counts[edges.partition_point(|e| e < x)] += 1;
        }
        let n = values.len().max(1) as f64;
        counts.iter().map(|c| *c as f64 / n).collect()
    }

    /// Population stability index of `values` against this (training) distribution:
    /// Σ (actual − expected) · ln(actual / expected); under 0.1 is stable, over 0.25 a shift.
    pub fn psi(&self, values: &[f64]) -> f64 {
        if values.is_empty() {
            return 0.0;
        }
        let actual = Self::shares_of(&self.edges, values);
        let eps = 1e-4;
        self.shares
            .iter()
            .zip(&actual)
            .map(|(e, a)| {
                let (e, a) = (e.max(eps), a.max(eps));
                (a - e) * (a / e).ln()
            })
            .sum::<f64>()
    }
}

/// Round to four decimals (reports and JSON stay readable).
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_inverted_rankings() {
        let y = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &y), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &y), 0.0);
        assert_eq!(auc(&[0.5, 0.5, 0.5, 0.5], &y), 0.5);
        assert_eq!(auc(&[0.1, 0.6, 0.4, 0.9], &y), 0.75);
    }

    #[test]
    fn brier_and_calibration() {
        assert_eq!(brier(&[1.0, 0.0], &[true, false]), 0.0);
        assert_eq!(brier(&[0.5, 0.5], &[true, false]), 0.25);
        let bins = calibration(&[0.05, 0.05, 0.95, 0.95], &[false, false, true, true]);
        assert_eq!(bins.len(), 2);
        assert_eq!(bins[1].observed, 1.0);
        assert!(calibration_error(&bins) < 0.06);
    }

    #[test]
    fn precision_at_threshold() {
        let a = at_threshold(&[0.9, 0.8, 0.3, 0.7], &[true, false, true, true], 0.5);
        assert_eq!((a.flagged, a.true_positives, a.false_positives), (3, 2, 1));
        assert_eq!(a.recall, round4(2.0 / 3.0));
    }

    #[test]
    fn psi_is_zero_on_the_same_data_and_grows_with_a_shift() {
        let xs: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let h = Histogram::of(&xs);
        assert!(h.psi(&xs) < 1e-9);
        let shifted: Vec<f64> = xs.iter().map(|x| x + 0.3).collect();
        assert!(h.psi(&shifted) > 0.25);
    }
}
