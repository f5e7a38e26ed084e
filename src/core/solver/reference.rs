//! The test-only reference: an exhaustive solver that shares no logic with
//! [`solve`](super::solve), and a feasibility check that scores any assignment.
//! Nothing here ships; the property tests use both to prove the fast solver.

use super::{Assignment, OrBug, Problem, Solution, SolveError};

/// [`brute_force`] refuses instances whose search space (the product of
/// `cap + 1` over all allowed pairs, `cap = min(supply qty, demand qty)`)
/// exceeds this many combinations.
pub const BRUTE_FORCE_LIMIT: u128 = 2_000_000;

/// Why [`objective`] rejected an assignment or [`brute_force`] refused a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The problem itself is invalid.
    #[error(transparent)]
    Invalid(#[from] SolveError),
    /// [`brute_force`] was asked to enumerate too many combinations.
    #[error("instance too large for exhaustive search (more than {limit} combinations)")]
    TooLarge {
        /// The enumeration limit ([`BRUTE_FORCE_LIMIT`]).
        limit: u128,
    },
    /// An assignment names a supply or demand that does not exist.
    #[error("assignment {index} refers to supply {supply} / demand {demand}, outside the problem")]
    AssignmentOutOfRange {
        /// Position in the assignment slice.
        index: usize,
        /// Supply index given.
        supply: usize,
        /// Demand index given.
        demand: usize,
    },
    /// An assignment has a negative quantity.
    #[error("assignment {index} has negative quantity {qty}")]
    NegativeAssignment {
        /// Position in the assignment slice.
        index: usize,
        /// The offending quantity.
        qty: i64,
    },
    /// An assignment uses a pair whose value is `None`.
    #[error("assignment {index} uses supply {supply} for demand {demand}, which is not allowed")]
    PairNotAllowed {
        /// Position in the assignment slice.
        index: usize,
        /// Supply index.
        supply: usize,
        /// Demand index.
        demand: usize,
    },
    /// The assignments take more from a supply than it has.
    #[error("supply {supply} is over-assigned: {assigned} > {available}")]
    SupplyExceeded {
        /// Supply index.
        supply: usize,
        /// Units assigned in total.
        assigned: i128,
        /// Units available.
        available: i64,
    },
    /// The assignments give a demand more than it wants.
    #[error("demand {demand} is over-served: {assigned} > {wanted}")]
    DemandExceeded {
        /// Demand index.
        demand: usize,
        /// Units assigned in total.
        assigned: i128,
        /// Units wanted.
        wanted: i64,
    },
}

/// Checks that `a` is feasible for `p` (indices in range, quantities
/// non-negative, only allowed pairs, no supply or demand exceeded; the same
/// pair may appear more than once) and returns `sum qty * value`.
pub fn objective(p: &Problem, a: &[Assignment]) -> Result<i128, CheckError> {
    p.validate()?;
    let mut used_s = vec![0i128; p.supplies.len()];
    let mut used_d = vec![0i128; p.demands.len()];
    let mut values = Vec::with_capacity(a.len());
    for (index, asg) in a.iter().enumerate() {
        let out_of_range = CheckError::AssignmentOutOfRange {
            index,
            supply: asg.supply,
            demand: asg.demand,
        };
        let value = *p
            .value
            .get(asg.supply)
            .and_then(|row| row.get(asg.demand))
            .ok_or(out_of_range)?;
        if asg.qty < 0 {
            return Err(CheckError::NegativeAssignment {
                index,
                qty: asg.qty,
            });
        }
        let Some(value) = value else {
            return Err(CheckError::PairNotAllowed {
                index,
                supply: asg.supply,
                demand: asg.demand,
            });
        };
        // Sums of at most `a.len()` non-negative i64s: cannot overflow i128.
        *used_s.get_mut(asg.supply).ok_or(out_of_range)? += i128::from(asg.qty);
        *used_d.get_mut(asg.demand).ok_or(out_of_range)? += i128::from(asg.qty);
        values.push(value);
    }
    for (supply, (&assigned, sup)) in used_s.iter().zip(&p.supplies).enumerate() {
        if assigned > i128::from(sup.qty) {
            return Err(CheckError::SupplyExceeded {
                supply,
                assigned,
                available: sup.qty,
            });
        }
    }
    for (demand, (&assigned, dem)) in used_d.iter().zip(&p.demands).enumerate() {
        if assigned > i128::from(dem.qty) {
            return Err(CheckError::DemandExceeded {
                demand,
                assigned,
                wanted: dem.qty,
            });
        }
    }
    // Feasible, so each qty <= min(supply qty, demand qty) and, by
    // `validate`, each product fits in i64; the i128 sum cannot overflow.
    Ok(a.iter()
        .zip(values)
        .map(|(asg, v)| i128::from(asg.qty) * i128::from(v))
        .sum())
}

/// Exhaustive reference solver for tests and tiny instances.
///
/// Enumerates every integer assignment of every allowed pair (including pairs
/// with zero or negative value) within the remaining supply and demand, and
/// keeps the first one with the highest objective. Shares no logic with
/// [`solve`](super::solve). Returns [`CheckError::TooLarge`] when the product of
/// `min(supply qty, demand qty) + 1` over the allowed pairs exceeds
/// [`BRUTE_FORCE_LIMIT`].
pub fn brute_force(p: &Problem) -> Result<Solution, CheckError> {
    p.validate()?;
    let mut vars = Vec::new();
    let mut combinations: u128 = 1;
    for (s, (row, sup)) in p.value.iter().zip(&p.supplies).enumerate() {
        for (d, (value, dem)) in row.iter().zip(&p.demands).enumerate() {
            let Some(value) = *value else { continue };
            let cap = sup.qty.min(dem.qty);
            if cap == 0 {
                continue;
            }
            // cap <= i64::MAX, so cap + 1 fits in u128.
            combinations = combinations.saturating_mul(u128::from(cap.unsigned_abs()) + 1);
            if combinations > BRUTE_FORCE_LIMIT {
                return Err(CheckError::TooLarge {
                    limit: BRUTE_FORCE_LIMIT,
                });
            }
            vars.push(Var { s, d, value, cap });
        }
    }
    let mut search = Search {
        vars: &vars,
        left_s: p.supplies.iter().map(|s| s.qty).collect(),
        left_d: p.demands.iter().map(|d| d.qty).collect(),
        current: vec![0; vars.len()],
        best: vec![0; vars.len()],
        best_objective: 0,
    };
    search.enumerate(0, 0)?;
    let assignments = vars
        .iter()
        .zip(&search.best)
        .filter(|(_, q)| **q > 0)
        .map(|(var, &qty)| Assignment {
            supply: var.s,
            demand: var.d,
            qty,
        })
        .collect();
    Ok(Solution {
        assignments,
        objective: search.best_objective,
    })
}

/// One enumerated variable of [`brute_force`].
struct Var {
    s: usize,
    d: usize,
    value: i64,
    cap: i64,
}

/// Depth-first enumeration state of [`brute_force`].
struct Search<'a> {
    vars: &'a [Var],
    left_s: Vec<i64>,
    left_d: Vec<i64>,
    current: Vec<i64>,
    best: Vec<i64>,
    best_objective: i128,
}

impl Search<'_> {
    /// Tries every quantity for variable `i` and recurses (depth is at most
    /// `log2(BRUTE_FORCE_LIMIT)` because zero-capacity pairs are skipped).
    fn enumerate(&mut self, i: usize, objective: i128) -> Result<(), SolveError> {
        let Some(var) = self.vars.get(i) else {
            if objective > self.best_objective {
                self.best_objective = objective;
                self.best.clone_from(&self.current);
            }
            return Ok(());
        };
        let left_s = *self.left_s.get(var.s).or_bug()?;
        let left_d = *self.left_d.get(var.d).or_bug()?;
        let max = var.cap.min(left_s).min(left_d);
        for q in 0..=max {
            *self.left_s.get_mut(var.s).or_bug()? = left_s - q;
            *self.left_d.get_mut(var.d).or_bug()? = left_d - q;
            *self.current.get_mut(i).or_bug()? = q;
            let gain = i128::from(q) * i128::from(var.value);
            self.enumerate(i + 1, objective + gain)?;
        }
        *self.left_s.get_mut(var.s).or_bug()? = left_s;
        *self.left_d.get_mut(var.d).or_bug()? = left_d;
        *self.current.get_mut(i).or_bug()? = 0;
        Ok(())
    }
}
