//! Max-profit transportation solver for one scarce product.
//!
//! # What this module owns
//!
//! Given a set of supply lots (each with an integer quantity), a set of
//! competing demands (each with an integer quantity) and, for every
//! `(supply, demand)` pair, either the integer value per unit of serving that
//! demand from that supply or `None` when the pair is not allowed, it finds
//! integer quantities `x[s][d] >= 0` with
//!
//! * `sum_d x[s][d] <= supply[s].qty` for every supply,
//! * `sum_s x[s][d] <= demand[d].qty` for every demand,
//! * `x[s][d] == 0` whenever `value[s][d]` is `None`,
//!
//! that **maximise** `sum x[s][d] * value[s][d]`. Units may stay unassigned: a
//! pair whose value is zero or negative is never worth using and is never used
//! by [`solve`].
//!
//! The module is pure and domain-free: no I/O, no clock, no randomness, no
//! global state, and it knows nothing about orders, warehouses or lead times;
//! the caller turns its domain into quantities and per-unit values (scaling
//! fractional units of measure to integers) and maps the [`Assignment`]s back.
//! Equal inputs always give equal outputs (ties are broken by index).
//!
//! # Algorithm
//!
//! [`solve`] runs min-cost flow by successive shortest paths on the network
//! `source -> supply s -> demand d -> sink`, with capacity `supply[s].qty` on
//! source edges, `demand[d].qty` on sink edges and cost `-value[s][d]` on the
//! middle edges, keeping only pairs with a positive value (dropping the others
//! never lowers the optimum). Each augmentation pushes the bottleneck capacity
//! of the shortest path, so the running time does not depend on the size of
//! the quantities. Because the marginal cost of the k-th unit of flow is
//! non-decreasing in k, stopping as soon as the shortest path has cost `>= 0`
//! (profit `<= 0`) yields a maximum-profit solution rather than a maximum flow.
//!
//! Shortest paths are computed with Dijkstra on reduced costs (Johnson
//! potentials, initialised in closed form because the empty flow's network is
//! acyclic; nodes not settled when the sink is reached get the sink's
//! distance, which keeps every reduced cost non-negative) over a graph
//! *compressed to the supply nodes*: a residual path alternates
//! `supply -> demand -> supply -> ... -> demand -> sink`, so a hop
//! `s -> d -> s'` (give `d`'s units from `s'` to `s` instead, freeing `s'`) is
//! an edge `s -> s'` costing the cheapest such relay, and a last hop
//! `s -> d -> sink` uses the most valuable still-open demand of `s`. Relay
//! costs are kept incrementally, touched only where the flow's support
//! changes: a lazily pruned min-heap per ordered supply pair plus a cached
//! minimum. The best open demand per supply is a cursor over its demands
//! sorted by value (demands only ever close, because no path leaves the
//! sink). Repeated demands in a path are loop-erased before augmenting (the
//! erased loops have zero reduced cost), so each augmentation saturates a
//! supply, a demand or an existing assignment.
//!
//! The problem is symmetric in supplies and demands, so when there are more
//! supplies than demands the transpose is solved instead; below, `S` is the
//! smaller side and `D` the larger. With `A` augmentations and paths of at
//! most `L <= S` hops, the cost is `O(S·D·log D)` set-up plus
//! `O(A·(S² + L·S·log(S·D)))`, and memory is `O(S·D)`. `A` does not depend on the size of the
//! quantities; it is `O(S + D)` in practice (about `S + D` on random and
//! realistic instances), but no tighter worst-case bound is claimed. The
//! common case (a handful of supplies, up to ~200 demands) takes tens of
//! microseconds, 50 × 2,000 about 10–20 ms in release mode.
//!

mod network;
#[cfg(test)]
mod reference;
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests;

use std::panic::Location;

use network::Network;

/// One supply lot: stock on hand or an inbound line, in integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Supply {
    /// Units available; must be `>= 0`.
    pub qty: i64,
}

/// One competing demand (an order line), in integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Demand {
    /// Units wanted; must be `>= 0`.
    pub qty: i64,
}

/// A transportation instance for one product.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problem {
    /// Supply lots, indexed by `s`.
    pub supplies: Vec<Supply>,
    /// Demands, indexed by `d`.
    pub demands: Vec<Demand>,
    /// `value[s][d]`: value per unit of serving demand `d` from supply `s`
    /// (higher is better), or `None` when the pair is not allowed. Must have
    /// exactly `supplies.len()` rows of `demands.len()` entries.
    pub value: Vec<Vec<Option<i64>>>,
}

/// `qty` units of supply `supply` go to demand `demand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Assignment {
    /// Index into [`Problem::supplies`].
    pub supply: usize,
    /// Index into [`Problem::demands`].
    pub demand: usize,
    /// Units assigned.
    pub qty: i64,
}

/// An optimal assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Solution {
    /// Sorted by `(supply, demand)`, one entry per pair, `qty > 0` only.
    pub assignments: Vec<Assignment>,
    /// `sum qty * value` over the assignments.
    pub objective: i128,
}

/// Diagnostics from [`solve_with_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SolveStats {
    /// Number of augmenting paths pushed.
    pub augmentations: usize,
    /// Number of `(supply, demand)` pairs with a positive value and positive
    /// quantities on both sides (the only pairs the solver considers).
    pub usable_pairs: usize,
}

/// Why a problem was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SolveError {
    /// A supply has a negative quantity.
    #[error("supply {index} has negative quantity {qty}")]
    NegativeSupply {
        /// Supply index.
        index: usize,
        /// The offending quantity.
        qty: i64,
    },
    /// A demand has a negative quantity.
    #[error("demand {index} has negative quantity {qty}")]
    NegativeDemand {
        /// Demand index.
        index: usize,
        /// The offending quantity.
        qty: i64,
    },
    /// The value matrix does not have one row per supply.
    #[error("value matrix has {found} rows but there are {expected} supplies")]
    RowCount {
        /// Number of supplies.
        expected: usize,
        /// Number of rows.
        found: usize,
    },
    /// A value row does not have one entry per demand.
    #[error("value row {supply} has {found} entries but there are {expected} demands")]
    RowLength {
        /// Row (supply) index.
        supply: usize,
        /// Number of demands.
        expected: usize,
        /// Number of entries in the row.
        found: usize,
    },
    /// `min(supply qty, demand qty) * value` does not fit in an `i64`.
    #[error("quantity × value for supply {supply} and demand {demand} overflows i64")]
    Overflow {
        /// Supply index.
        supply: usize,
        /// Demand index.
        demand: usize,
    },
    /// An internal invariant was violated. This is a bug in the solver; it is
    /// reported instead of panicking.
    #[error("internal solver invariant violated at line {line} (this is a bug)")]
    Internal {
        /// Source line where the invariant check failed.
        line: u32,
    },
}

/// Turns a missing value (an index that should always be in range) into
/// [`SolveError::Internal`] instead of a panic.
trait OrBug<T> {
    fn or_bug(self) -> Result<T, SolveError>;
}

impl<T> OrBug<T> for Option<T> {
    #[track_caller]
    fn or_bug(self) -> Result<T, SolveError> {
        match self {
            Some(v) => Ok(v),
            None => Err(SolveError::Internal {
                line: Location::caller().line(),
            }),
        }
    }
}

impl Problem {
    /// Checks quantities, matrix shape and overflow risk.
    ///
    /// Every allowed pair must satisfy `min(supply qty, demand qty) * value`
    /// within `i64`, so every single assignment's contribution fits in `i64`
    /// and objectives (summed in `i128`) cannot overflow.
    pub fn validate(&self) -> Result<(), SolveError> {
        for (index, s) in self.supplies.iter().enumerate() {
            if s.qty < 0 {
                return Err(SolveError::NegativeSupply { index, qty: s.qty });
            }
        }
        for (index, d) in self.demands.iter().enumerate() {
            if d.qty < 0 {
                return Err(SolveError::NegativeDemand { index, qty: d.qty });
            }
        }
        if self.value.len() != self.supplies.len() {
            return Err(SolveError::RowCount {
                expected: self.supplies.len(),
                found: self.value.len(),
            });
        }
        for (supply, (row, sup)) in self.value.iter().zip(&self.supplies).enumerate() {
            if row.len() != self.demands.len() {
                return Err(SolveError::RowLength {
                    supply,
                    expected: self.demands.len(),
                    found: row.len(),
                });
            }
            for (demand, (value, dem)) in row.iter().zip(&self.demands).enumerate() {
                if let Some(v) = *value
                    && sup.qty.min(dem.qty).checked_mul(v).is_none()
                {
                    return Err(SolveError::Overflow { supply, demand });
                }
            }
        }
        Ok(())
    }
}

/// Finds a maximum-profit assignment (see the module docs).
///
/// Deterministic: the same problem always yields the same solution. Only
/// pairs with a positive value are ever used.
pub fn solve(p: &Problem) -> Result<Solution, SolveError> {
    solve_with_stats(p).map(|(solution, _)| solution)
}

/// [`solve`], also reporting how much work it did.
pub fn solve_with_stats(p: &Problem) -> Result<(Solution, SolveStats), SolveError> {
    p.validate()?;
    if p.supplies.len() <= p.demands.len() {
        return solve_valid(p);
    }
    // The problem is symmetric in supplies and demands, and the work per
    // augmentation is quadratic in the side the network is compressed to:
    // solve the transpose so that side is the smaller one.
    let transposed = Problem {
        supplies: p.demands.iter().map(|d| Supply { qty: d.qty }).collect(),
        demands: p.supplies.iter().map(|s| Demand { qty: s.qty }).collect(),
        value: (0..p.demands.len())
            .map(|d| {
                p.value
                    .iter()
                    .map(|row| row.get(d).copied().flatten())
                    .collect()
            })
            .collect(),
    };
    let (solution, stats) = solve_valid(&transposed)?;
    let mut assignments: Vec<Assignment> = solution
        .assignments
        .into_iter()
        .map(|a| Assignment {
            supply: a.demand,
            demand: a.supply,
            qty: a.qty,
        })
        .collect();
    assignments.sort_unstable();
    Ok((
        Solution {
            assignments,
            objective: solution.objective,
        },
        stats,
    ))
}

/// Solves an already validated problem whose supplies are the smaller side.
fn solve_valid(p: &Problem) -> Result<(Solution, SolveStats), SolveError> {
    let mut net = Network::new(p);
    let usable_pairs = net.cand.iter().map(Vec::len).sum();
    let augmentations = if usable_pairs == 0 { 0 } else { net.run()? };
    let solution = net.solution()?;
    Ok((
        solution,
        SolveStats {
            augmentations,
            usable_pairs,
        },
    ))
}
