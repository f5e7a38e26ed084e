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
//! [`brute_force`] is an independent exhaustive enumeration used to prove
//! [`solve`] on tiny instances; [`objective`] checks a candidate assignment for
//! feasibility and scores it.
#![deny(clippy::indexing_slicing)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::Location;

/// [`brute_force`] refuses instances whose search space (the product of
/// `cap + 1` over all allowed pairs, `cap = min(supply qty, demand qty)`)
/// exceeds this many combinations.
pub const BRUTE_FORCE_LIMIT: u128 = 2_000_000;

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

/// Why a problem or an assignment was rejected.
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

/// Checks that `a` is feasible for `p` (indices in range, quantities
/// non-negative, only allowed pairs, no supply or demand exceeded; the same
/// pair may appear more than once) and returns `sum qty * value`.
pub fn objective(p: &Problem, a: &[Assignment]) -> Result<i128, SolveError> {
    p.validate()?;
    let mut used_s = vec![0i128; p.supplies.len()];
    let mut used_d = vec![0i128; p.demands.len()];
    let mut values = Vec::with_capacity(a.len());
    for (index, asg) in a.iter().enumerate() {
        let out_of_range = SolveError::AssignmentOutOfRange {
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
            return Err(SolveError::NegativeAssignment {
                index,
                qty: asg.qty,
            });
        }
        let Some(value) = value else {
            return Err(SolveError::PairNotAllowed {
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
            return Err(SolveError::SupplyExceeded {
                supply,
                assigned,
                available: sup.qty,
            });
        }
    }
    for (demand, (&assigned, dem)) in used_d.iter().zip(&p.demands).enumerate() {
        if assigned > i128::from(dem.qty) {
            return Err(SolveError::DemandExceeded {
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
/// [`solve`]. Returns [`SolveError::TooLarge`] when the product of
/// `min(supply qty, demand qty) + 1` over the allowed pairs exceeds
/// [`BRUTE_FORCE_LIMIT`].
pub fn brute_force(p: &Problem) -> Result<Solution, SolveError> {
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
                return Err(SolveError::TooLarge {
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

/// "Unreachable" reduced distance; real distances are bounded by
/// `(2·S + 1) · 2^63` in magnitude, far below this.
const INF: i128 = i128::MAX / 4;

/// Cost sentinel for "no relay edge". Real relay costs are differences of two
/// values in `1..=i64::MAX`, so they never reach `i64::MAX`.
const NO_RELAY: i64 = i64::MAX;

/// Best relay `from -> d -> to`: its cost `value[to][d] - value[from][d]`
/// and `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Relay {
    cost: i64,
    demand: usize,
}

const NONE_RELAY: Relay = Relay {
    cost: NO_RELAY,
    demand: usize::MAX,
};

/// Residual network of [`solve`], compressed to supply nodes.
struct Network {
    ns: usize,
    nd: usize,
    /// `val_t[d * ns + s]`: value if usable (> 0), else 0 (demand-major, so
    /// the supplies competing for one demand are contiguous).
    val_t: Vec<i64>,
    /// `x[s * nd + d]`: current flow.
    x: Vec<i64>,
    /// Residual supply.
    rs: Vec<i64>,
    /// Residual demand; never increases (paths never leave the sink).
    rd: Vec<i64>,
    /// Per supply: its usable demands as `(Reverse(value), demand)`, best
    /// first.
    cand: Vec<Vec<(Reverse<i64>, usize)>>,
    /// Per supply: position in `cand` before which every demand is closed.
    cursor: Vec<usize>,
    /// Per supply: its most valuable open demand and that value (the entry
    /// of `cand` at `cursor`), kept current as demands close.
    best_open: Vec<Option<(usize, i64)>>,
    /// `relay[from * ns + to]`: min-heap of the relays `from -> d -> to`
    /// pushed when `x[to][d]` became positive; an entry is stale while
    /// `x[to][d] == 0` and is dropped lazily.
    relay: Vec<BinaryHeap<Reverse<Relay>>>,
    /// `best[from * ns + to]`: the cheapest live relay, or [`NONE_RELAY`].
    best: Vec<Relay>,
    /// Dijkstra state per supply, reused across rounds.
    nodes: Vec<Node>,
    /// Unsettled supplies during a Dijkstra round.
    active: Vec<usize>,
}

/// Per-supply Dijkstra state.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Johnson potential.
    pi: i128,
    /// Reduced distance from the source in the current round.
    dist: i128,
    /// Reached from supply `.0` through demand `.1` (the relay
    /// `.0 -> .1 -> this`); `None` when reached directly from the source.
    prev: Option<(usize, usize)>,
}

impl Network {
    fn new(p: &Problem) -> Self {
        let ns = p.supplies.len();
        let nd = p.demands.len();
        let mut val_t = vec![0; ns * nd];
        let mut cand = Vec::with_capacity(ns);
        for (s, (row, sup)) in p.value.iter().zip(&p.supplies).enumerate() {
            let mut list = Vec::new();
            for (d, (value, dem)) in row.iter().zip(&p.demands).enumerate() {
                if let Some(v) = *value
                    && v > 0
                    && sup.qty > 0
                    && dem.qty > 0
                {
                    list.push((Reverse(v), d));
                    if let Some(slot) = val_t.get_mut(d * ns + s) {
                        *slot = v;
                    }
                }
            }
            list.sort_unstable();
            cand.push(list);
        }
        Network {
            ns,
            nd,
            val_t,
            x: vec![0; ns * nd],
            rs: p.supplies.iter().map(|s| s.qty).collect(),
            rd: p.demands.iter().map(|d| d.qty).collect(),
            cand,
            cursor: vec![0; ns],
            best_open: vec![None; ns],
            relay: vec![BinaryHeap::new(); ns * ns],
            best: vec![NONE_RELAY; ns * ns],
            nodes: vec![
                Node {
                    pi: 0,
                    dist: INF,
                    prev: None,
                };
                ns
            ],
            active: Vec::with_capacity(ns),
        }
    }

    /// Advances supply `s`'s cursor past closed demands and refreshes
    /// `best_open[s]`.
    fn refresh_open(&mut self, s: usize) -> Result<(), SolveError> {
        let list = self.cand.get(s).or_bug()?;
        let cursor = self.cursor.get_mut(s).or_bug()?;
        let best = self.best_open.get_mut(s).or_bug()?;
        *best = None;
        while let Some(&(Reverse(v), d)) = list.get(*cursor) {
            if *self.rd.get(d).or_bug()? > 0 {
                *best = Some((d, v));
                break;
            }
            *cursor += 1;
        }
        Ok(())
    }

    /// Runs successive shortest paths until no path has positive profit.
    /// Returns the number of augmentations.
    fn run(&mut self) -> Result<usize, SolveError> {
        let ns = self.ns;
        // Initial potentials: the empty flow has no relay edges, so the
        // network is acyclic and pi(s) = 0, pi(sink) = the cheapest edge into
        // the sink are valid.
        let mut pi_sink: i128 = 0;
        for s in 0..ns {
            self.refresh_open(s)?;
            if let Some((_, v)) = *self.best_open.get(s).or_bug()? {
                pi_sink = pi_sink.min(-i128::from(v));
            }
        }
        let mut path = Vec::new();
        let mut augmentations = 0usize;
        loop {
            // Dijkstra over the supplies on reduced costs, O(S²): `active`
            // holds the unsettled supplies; each settle relaxes them and
            // finds the next closest in the same pass.
            self.active.clear();
            self.active.extend(0..ns);
            let mut next: Option<usize> = None;
            let mut next_key = (INF, usize::MAX);
            for (s, (node, &left)) in self.nodes.iter_mut().zip(&self.rs).enumerate() {
                // Source edges cost 0; their reduced cost is -pi(s) >= 0.
                node.dist = if left > 0 { -node.pi } else { INF };
                node.prev = None;
                if (node.dist, s) < next_key {
                    next_key = (node.dist, s);
                    next = Some(s);
                }
            }
            let mut sink_dist = INF;
            let mut sink_prev: Option<(usize, usize)> = None;
            while let Some(pos) = next {
                let s = *self.active.get(pos).or_bug()?;
                let settled = *self.nodes.get(s).or_bug()?;
                if settled.dist >= INF || sink_dist <= settled.dist {
                    break;
                }
                self.active.swap_remove(pos);
                let base = settled.dist + settled.pi;
                let row = self.best.get(s * ns..(s + 1) * ns).or_bug()?;
                next = None;
                next_key = (INF, usize::MAX);
                for (i, &t) in self.active.iter().enumerate() {
                    let node = self.nodes.get_mut(t).or_bug()?;
                    let relay = row.get(t).or_bug()?;
                    if relay.cost != NO_RELAY {
                        let cand = base + i128::from(relay.cost) - node.pi;
                        if cand < node.dist {
                            node.dist = cand;
                            node.prev = Some((s, relay.demand));
                        }
                    }
                    if (node.dist, t) < next_key {
                        next_key = (node.dist, t);
                        next = Some(i);
                    }
                }
                if let Some((d, v)) = *self.best_open.get(s).or_bug()? {
                    let cand = base - i128::from(v) - pi_sink;
                    if cand < sink_dist {
                        sink_dist = cand;
                        sink_prev = Some((s, d));
                    }
                }
            }
            let Some(last) = sink_prev else { break };
            // True cost of the path = reduced distance + pi(sink) - pi(source),
            // and pi(source) stays 0.
            if sink_dist + pi_sink >= 0 {
                break;
            }
            // Nodes not settled (or not reached) get sink_dist: this keeps
            // every residual edge's reduced cost non-negative.
            for node in &mut self.nodes {
                node.pi += node.dist.min(sink_dist);
            }
            pi_sink += sink_dist;
            self.path(last, &mut path)?;
            self.augment(&path)?;
            augmentations += 1;
        }
        Ok(augmentations)
    }

    /// Writes into `path` the augmenting path ending with `last = (s_k, d_k)`
    /// as steps `(s_i, d_i)`: `s_1 -> d_1 -> s_2 -> ... -> s_k -> d_k -> sink`,
    /// with repeated demands loop-erased so that every supply and demand
    /// occurs at most once (the erased loops have zero reduced cost).
    fn path(&self, last: (usize, usize), path: &mut Vec<(usize, usize)>) -> Result<(), SolveError> {
        path.clear();
        path.push(last);
        let mut cur = last.0;
        while let Some(step) = self.nodes.get(cur).or_bug()?.prev {
            if path.len() > self.ns {
                return None.or_bug();
            }
            path.push(step);
            cur = step.0;
        }
        path.reverse();
        let mut kept = 0;
        for i in 0..path.len() {
            let (s, d) = *path.get(i).or_bug()?;
            let head = path.get(..kept).or_bug()?;
            match head.iter().position(|&(_, pd)| pd == d) {
                Some(pos) => kept = pos + 1,
                None => {
                    *path.get_mut(kept).or_bug()? = (s, d);
                    kept += 1;
                }
            }
        }
        path.truncate(kept);
        Ok(())
    }

    /// Pushes the bottleneck capacity along `path`.
    fn augment(&mut self, path: &[(usize, usize)]) -> Result<(), SolveError> {
        let nd = self.nd;
        let &(first, _) = path.first().or_bug()?;
        let &(_, last) = path.last().or_bug()?;
        let mut f = (*self.rs.get(first).or_bug()?).min(*self.rd.get(last).or_bug()?);
        for (&(_, d), &(next, _)) in path.iter().zip(path.iter().skip(1)) {
            f = f.min(*self.x.get(next * nd + d).or_bug()?);
        }
        if f <= 0 {
            return None.or_bug();
        }
        *self.rs.get_mut(first).or_bug()? -= f;
        let open = self.rd.get_mut(last).or_bug()?;
        *open -= f;
        if *open == 0 {
            for s in 0..self.ns {
                if matches!(self.best_open.get(s).or_bug()?, Some((d, _)) if *d == last) {
                    self.refresh_open(s)?;
                }
            }
        }
        // Loop erasure makes every (s, d) below distinct, so no entry is both
        // increased and decreased.
        for &(s, d) in path {
            let x = self.x.get_mut(s * nd + d).or_bug()?;
            *x += f;
            if *x == f {
                self.support_added(s, d)?;
            }
        }
        for (&(_, d), &(next, _)) in path.iter().zip(path.iter().skip(1)) {
            let x = self.x.get_mut(next * nd + d).or_bug()?;
            *x -= f;
            if *x == 0 {
                self.support_removed(next, d)?;
            }
        }
        Ok(())
    }

    /// `x[to][d]` became positive: every supply `from` that can serve `d`
    /// gains the relay `from -> d -> to`.
    fn support_added(&mut self, to: usize, d: usize) -> Result<(), SolveError> {
        let ns = self.ns;
        let column = self.val_t.get(d * ns..(d + 1) * ns).or_bug()?;
        let v_to = *column.get(to).or_bug()?;
        for (from, &v_from) in column.iter().enumerate() {
            if from == to || v_from <= 0 {
                continue;
            }
            // Both values are in 1..=i64::MAX, so the difference fits.
            let relay = Relay {
                cost: v_to - v_from,
                demand: d,
            };
            self.relay
                .get_mut(from * ns + to)
                .or_bug()?
                .push(Reverse(relay));
            let best = self.best.get_mut(from * ns + to).or_bug()?;
            if relay < *best {
                *best = relay;
            }
        }
        Ok(())
    }

    /// `x[to][d]` became zero: the relays `from -> d -> to` die; refresh the
    /// pairs whose best relay it was.
    fn support_removed(&mut self, to: usize, d: usize) -> Result<(), SolveError> {
        let (ns, nd) = (self.ns, self.nd);
        let x_to = self.x.get(to * nd..(to + 1) * nd).or_bug()?;
        for from in 0..ns {
            let best = self.best.get_mut(from * ns + to).or_bug()?;
            if best.demand != d {
                continue;
            }
            let heap = self.relay.get_mut(from * ns + to).or_bug()?;
            *best = NONE_RELAY;
            while let Some(&Reverse(top)) = heap.peek() {
                if *x_to.get(top.demand).or_bug()? > 0 {
                    *best = top;
                    break;
                }
                heap.pop();
            }
        }
        Ok(())
    }

    fn solution(&self) -> Result<Solution, SolveError> {
        let (ns, nd) = (self.ns, self.nd);
        let mut assignments = Vec::new();
        let mut objective: i128 = 0;
        for s in 0..ns {
            let xs = self.x.get(s * nd..(s + 1) * nd).or_bug()?;
            for (d, &qty) in xs.iter().enumerate() {
                if qty > 0 {
                    let v = *self.val_t.get(d * ns + s).or_bug()?;
                    assignments.push(Assignment {
                        supply: s,
                        demand: d,
                        qty,
                    });
                    objective += i128::from(qty) * i128::from(v);
                }
            }
        }
        Ok(Solution {
            assignments,
            objective,
        })
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn problem(supplies: &[i64], demands: &[i64], value: Vec<Vec<Option<i64>>>) -> Problem {
        Problem {
            supplies: supplies.iter().map(|&qty| Supply { qty }).collect(),
            demands: demands.iter().map(|&qty| Demand { qty }).collect(),
            value,
        }
    }

    fn asg(supply: usize, demand: usize, qty: i64) -> Assignment {
        Assignment {
            supply,
            demand,
            qty,
        }
    }

    /// Checks every documented invariant of a `solve` result.
    fn check_solution(p: &Problem, sol: &Solution) {
        assert_eq!(objective(p, &sol.assignments).unwrap(), sol.objective);
        for w in sol.assignments.windows(2) {
            assert!((w[0].supply, w[0].demand) < (w[1].supply, w[1].demand));
        }
        for a in &sol.assignments {
            assert!(a.qty > 0);
            assert!(p.value[a.supply][a.demand].unwrap() > 0);
        }
    }

    /// Greedy by highest value: the obvious heuristic `solve` must beat.
    fn greedy(p: &Problem) -> i128 {
        let mut pairs = Vec::new();
        for (s, row) in p.value.iter().enumerate() {
            for (d, v) in row.iter().enumerate() {
                if let Some(v) = *v
                    && v > 0
                {
                    pairs.push((v, s, d));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut rs: Vec<i64> = p.supplies.iter().map(|s| s.qty).collect();
        let mut rd: Vec<i64> = p.demands.iter().map(|d| d.qty).collect();
        let mut total = 0i128;
        for (v, s, d) in pairs {
            let q = rs[s].min(rd[d]);
            rs[s] -= q;
            rd[d] -= q;
            total += i128::from(q) * i128::from(v);
        }
        total
    }

    /// Independent reference for medium instances: textbook successive
    /// shortest paths on the full (uncompressed) network, Bellman-Ford, one
    /// unit per augmentation, all allowed pairs (any sign) as edges.
    fn reference_unit_ssp(p: &Problem) -> i128 {
        let ns = p.supplies.len();
        let nd = p.demands.len();
        let n = ns + nd + 2;
        let (src, sink) = (ns + nd, ns + nd + 1);
        // (to, cap, cost, rev)
        let mut g: Vec<Vec<(usize, i64, i128, usize)>> = vec![Vec::new(); n];
        fn add(g: &mut [Vec<(usize, i64, i128, usize)>], a: usize, b: usize, cap: i64, cost: i128) {
            let ra = g[b].len();
            let rb = g[a].len();
            g[a].push((b, cap, cost, ra));
            g[b].push((a, 0, -cost, rb));
        }
        for (s, sup) in p.supplies.iter().enumerate() {
            add(&mut g, src, s, sup.qty, 0);
        }
        for (d, dem) in p.demands.iter().enumerate() {
            add(&mut g, ns + d, sink, dem.qty, 0);
        }
        for (s, row) in p.value.iter().enumerate() {
            for (d, v) in row.iter().enumerate() {
                if let Some(v) = *v {
                    add(&mut g, s, ns + d, i64::MAX, -i128::from(v));
                }
            }
        }
        let mut total = 0i128;
        loop {
            let mut dist = vec![i128::MAX; n];
            let mut prev: Vec<Option<(usize, usize)>> = vec![None; n];
            dist[src] = 0;
            for _ in 0..n {
                let mut changed = false;
                for u in 0..n {
                    if dist[u] == i128::MAX {
                        continue;
                    }
                    for (i, &(v, cap, cost, _)) in g[u].iter().enumerate() {
                        if cap > 0 && dist[u] + cost < dist[v] {
                            dist[v] = dist[u] + cost;
                            prev[v] = Some((u, i));
                            changed = true;
                        }
                    }
                }
                if !changed {
                    break;
                }
            }
            if dist[sink] == i128::MAX || dist[sink] >= 0 {
                return total;
            }
            total -= dist[sink];
            let mut v = sink;
            while let Some((u, i)) = prev[v] {
                g[u][i].1 -= 1;
                let r = g[u][i].3;
                g[v][r].1 += 1;
                v = u;
            }
        }
    }

    /// Small deterministic PRNG (xorshift64*) for generated instances.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
    }

    /// A realistic-ish instance: each demand has a base value (priority ×
    /// margin), each supply a lateness/transfer penalty for it, some pairs
    /// are not allowed and a few are loss-making.
    fn generated(ns: usize, nd: usize, supply_max: i64, demand_max: i64, seed: u64) -> Problem {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let supplies: Vec<i64> = (0..ns).map(|_| rng.range(0, supply_max)).collect();
        let demands: Vec<i64> = (0..nd).map(|_| rng.range(1, demand_max)).collect();
        let base: Vec<i64> = (0..nd).map(|_| rng.range(50, 1_000)).collect();
        let value = (0..ns)
            .map(|_| {
                let penalty = rng.range(0, 200);
                base.iter()
                    .map(|&b| match rng.range(0, 9) {
                        0 => None,
                        1..=4 => Some(b - penalty - rng.range(0, 100)),
                        _ => Some(b - penalty),
                    })
                    .collect()
            })
            .collect();
        problem(&supplies, &demands, value)
    }

    #[test]
    fn empty_problem() {
        let p = problem(&[], &[], vec![]);
        let sol = solve(&p).unwrap();
        assert!(sol.assignments.is_empty());
        assert_eq!(sol.objective, 0);
        assert_eq!(brute_force(&p).unwrap(), sol);
    }

    #[test]
    fn no_demands_or_no_supplies() {
        let p = problem(&[5, 3], &[], vec![vec![], vec![]]);
        assert_eq!(solve(&p).unwrap(), Solution::default());
        let p = problem(&[], &[5, 3], vec![]);
        assert_eq!(solve(&p).unwrap(), Solution::default());
    }

    #[test]
    fn zero_quantities() {
        let p = problem(
            &[0, 4],
            &[3, 0],
            vec![vec![Some(9), Some(9)], vec![Some(2), Some(9)]],
        );
        let sol = solve(&p).unwrap();
        assert_eq!(sol.assignments, vec![asg(1, 0, 3)]);
        assert_eq!(sol.objective, 6);
    }

    #[test]
    fn single_demand_takes_best_supply_first() {
        let p = problem(&[3, 4], &[5], vec![vec![Some(3)], vec![Some(7)]]);
        let sol = solve(&p).unwrap();
        assert_eq!(sol.assignments, vec![asg(0, 0, 1), asg(1, 0, 4)]);
        assert_eq!(sol.objective, 31);
        check_solution(&p, &sol);
    }

    #[test]
    fn all_pairs_none() {
        let p = problem(&[5, 5], &[2, 3, 4], vec![vec![None; 3], vec![None; 3]]);
        let (sol, stats) = solve_with_stats(&p).unwrap();
        assert_eq!(sol, Solution::default());
        assert_eq!(stats.augmentations, 0);
        assert_eq!(brute_force(&p).unwrap().objective, 0);
    }

    #[test]
    fn non_positive_values_are_never_used() {
        let p = problem(
            &[10, 10],
            &[5, 5, 5],
            vec![
                vec![Some(-3), Some(0), Some(4)],
                vec![Some(-1), Some(-7), None],
            ],
        );
        let sol = solve(&p).unwrap();
        assert_eq!(sol.assignments, vec![asg(0, 2, 5)]);
        assert_eq!(sol.objective, 20);
        assert_eq!(brute_force(&p).unwrap().objective, 20);
    }

    #[test]
    fn beats_greedy_by_highest_value() {
        // Greedy gives s0 -> d0 (10) and then s1 has nowhere to go: 10.
        // Optimal: s0 -> d1 (9) and s1 -> d0 (8): 17.
        let p = problem(
            &[1, 1],
            &[1, 1],
            vec![vec![Some(10), Some(9)], vec![Some(8), None]],
        );
        let sol = solve(&p).unwrap();
        assert_eq!(greedy(&p), 10);
        assert_eq!(sol.objective, 17);
        assert_eq!(sol.assignments, vec![asg(0, 1, 1), asg(1, 0, 1)]);
        assert_eq!(brute_force(&p).unwrap().objective, 17);
    }

    #[test]
    fn long_relay_chain() {
        // Supply i can serve demand i (value 10) and demand i+1 (value 11);
        // only the last supply reaches the very valuable last demand. The
        // optimum needs a path relaying through every supply.
        let n = 6;
        let mut value = vec![vec![None; n + 1]; n];
        for (i, row) in value.iter_mut().enumerate() {
            row[i] = Some(10);
            row[i + 1] = Some(11);
        }
        value[n - 1][n] = Some(1_000);
        let supplies = vec![1; n];
        let demands = vec![1; n + 1];
        let p = problem(&supplies, &demands, value);
        let sol = solve(&p).unwrap();
        check_solution(&p, &sol);
        assert_eq!(sol.objective, reference_unit_ssp(&p));
        assert_eq!(sol.objective, 1_000 + 11 * (n as i128 - 1));
    }

    #[test]
    fn huge_quantities_take_few_augmentations() {
        let g = 1_000_000_000;
        let p = problem(
            &[g, g / 2, 3 * g],
            &[g, g, g, 7],
            vec![
                vec![Some(10), Some(9), None, Some(1)],
                vec![Some(8), None, Some(12), Some(1)],
                vec![Some(2), Some(1), Some(3), None],
            ],
        );
        let start = Instant::now();
        let (sol, stats) = solve_with_stats(&p).unwrap();
        assert!(start.elapsed().as_millis() < 1_000);
        assert!(stats.augmentations <= 12, "{stats:?}");
        check_solution(&p, &sol);
        // s1 -> d2 (12) for g/2, s2 tops d2 up (3) for g/2, s0 and s2 share
        // d0/d1 (10 + 1 or 9 + 2 per pair of units): 18.5·g. Moving s0's
        // units to d3 (value 1) is never worth it.
        assert_eq!(sol.objective, 37 * i128::from(g) / 2);
        // The same shape with small quantities agrees with the unit reference.
        let small = problem(&[10, 6, 30], &[10, 10, 10, 7], p.value.clone());
        assert_eq!(solve(&small).unwrap().objective, reference_unit_ssp(&small));
    }

    #[test]
    fn more_supplies_than_demands_solves_the_transpose() {
        let p = generated(30, 4, 50, 40, 11);
        let t = Problem {
            supplies: p.demands.iter().map(|d| Supply { qty: d.qty }).collect(),
            demands: p.supplies.iter().map(|s| Demand { qty: s.qty }).collect(),
            value: (0..4)
                .map(|d| p.value.iter().map(|r| r[d]).collect())
                .collect(),
        };
        let sol = solve(&p).unwrap();
        check_solution(&p, &sol);
        assert_eq!(sol.objective, reference_unit_ssp(&p));
        assert_eq!(sol.objective, solve(&t).unwrap().objective);
        // Many thousands of supplies stay cheap (no supplies² structure).
        let wide = generated(5_000, 3, 1_000, 1_000_000, 12);
        let (sol, stats) = solve_with_stats(&wide).unwrap();
        check_solution(&wide, &sol);
        assert!(stats.augmentations <= 2 * (5_000 + 3), "{stats:?}");
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let p = problem(
            &[1, 1],
            &[1, 1],
            vec![
                vec![Some(i64::MAX), Some(i64::MAX - 1)],
                vec![Some(i64::MAX), None],
            ],
        );
        let sol = solve(&p).unwrap();
        assert_eq!(sol.objective, i128::from(i64::MAX) * 2 - 1);
        check_solution(&p, &sol);
    }

    #[test]
    fn bad_input_is_rejected() {
        let ok = vec![vec![Some(1)]];
        assert_eq!(
            solve(&problem(&[-1], &[1], ok.clone())),
            Err(SolveError::NegativeSupply { index: 0, qty: -1 })
        );
        assert_eq!(
            solve(&problem(&[1], &[-2], ok.clone())),
            Err(SolveError::NegativeDemand { index: 0, qty: -2 })
        );
        assert_eq!(
            solve(&problem(&[1, 1], &[1], ok.clone())),
            Err(SolveError::RowCount {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            solve(&problem(&[1], &[1, 1], ok.clone())),
            Err(SolveError::RowLength {
                supply: 0,
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            solve(&problem(&[2], &[3], vec![vec![Some(i64::MAX)]])),
            Err(SolveError::Overflow {
                supply: 0,
                demand: 0
            })
        );
        assert_eq!(
            solve(&problem(
                &[1_000_000_000],
                &[1_000_000_000],
                vec![vec![Some(-10_000_000_000)]]
            )),
            Err(SolveError::Overflow {
                supply: 0,
                demand: 0
            })
        );
        // The same errors from the other entry points.
        assert!(brute_force(&problem(&[-1], &[1], ok.clone())).is_err());
        assert!(objective(&problem(&[1], &[1, 1], ok), &[]).is_err());
    }

    #[test]
    fn objective_checks_feasibility() {
        let p = problem(
            &[3, 2],
            &[2, 4],
            vec![vec![Some(5), None], vec![Some(1), Some(2)]],
        );
        assert_eq!(objective(&p, &[]), Ok(0));
        assert_eq!(objective(&p, &[asg(0, 0, 2), asg(1, 1, 2)]), Ok(14));
        assert_eq!(objective(&p, &[asg(0, 0, 1), asg(0, 0, 1)]), Ok(10));
        assert_eq!(
            objective(&p, &[asg(2, 0, 1)]),
            Err(SolveError::AssignmentOutOfRange {
                index: 0,
                supply: 2,
                demand: 0
            })
        );
        assert_eq!(
            objective(&p, &[asg(0, 0, 1), asg(0, 5, 1)]),
            Err(SolveError::AssignmentOutOfRange {
                index: 1,
                supply: 0,
                demand: 5
            })
        );
        assert_eq!(
            objective(&p, &[asg(0, 0, -1)]),
            Err(SolveError::NegativeAssignment { index: 0, qty: -1 })
        );
        assert_eq!(
            objective(&p, &[asg(0, 1, 1)]),
            Err(SolveError::PairNotAllowed {
                index: 0,
                supply: 0,
                demand: 1
            })
        );
        assert_eq!(
            objective(&p, &[asg(1, 0, 2), asg(1, 1, 1)]),
            Err(SolveError::SupplyExceeded {
                supply: 1,
                assigned: 3,
                available: 2
            })
        );
        assert_eq!(
            objective(&p, &[asg(0, 0, 2), asg(1, 0, 1)]),
            Err(SolveError::DemandExceeded {
                demand: 0,
                assigned: 3,
                wanted: 2
            })
        );
        // Huge bogus quantities are reported, not overflowed.
        assert!(matches!(
            objective(&p, &[asg(0, 0, i64::MAX), asg(0, 0, i64::MAX)]),
            Err(SolveError::SupplyExceeded { .. })
        ));
    }

    #[test]
    fn brute_force_refuses_large_instances() {
        let p = problem(&[1_000], &[1_000, 1_000, 1_000], vec![vec![Some(1); 3]]);
        assert_eq!(
            brute_force(&p),
            Err(SolveError::TooLarge {
                limit: BRUTE_FORCE_LIMIT
            })
        );
        // Zero-capacity pairs do not count towards the limit.
        let p = problem(&[0; 40], &[1_000; 40], vec![vec![Some(1); 40]; 40]);
        assert_eq!(brute_force(&p).unwrap(), Solution::default());
    }

    #[test]
    fn error_messages_are_readable() {
        let e = SolveError::RowLength {
            supply: 1,
            expected: 3,
            found: 2,
        };
        assert_eq!(
            e.to_string(),
            "value row 1 has 2 entries but there are 3 demands"
        );
    }

    #[test]
    fn medium_generated_instances_match_reference() {
        for seed in 1..=40u64 {
            let p = generated(
                2 + (seed % 5) as usize,
                3 + (seed % 9) as usize,
                12,
                6,
                seed,
            );
            let sol = solve(&p).unwrap();
            check_solution(&p, &sol);
            assert_eq!(sol.objective, reference_unit_ssp(&p), "seed {seed}");
            assert!(sol.objective >= greedy(&p));
        }
    }

    #[test]
    fn large_instance_in_debug_is_feasible_and_not_worse_than_greedy() {
        let p = generated(20, 400, 2_000_000, 100_000, 7);
        let (sol, stats) = solve_with_stats(&p).unwrap();
        check_solution(&p, &sol);
        assert!(sol.objective >= greedy(&p));
        assert!(stats.augmentations < 4 * 420, "{stats:?}");
    }

    /// Timing for the documented size limit. Run with
    /// `cargo test --release -- --ignored --nocapture timing`.
    #[test]
    #[ignore = "timing; run in release mode"]
    fn timing_50_by_2000() {
        let cases = [
            ("scarce", 20_000_000i64, 1_000_000i64),
            ("balanced", 40_000_000, 1_000_000),
            ("ample", 1_000_000_000, 1_000_000),
            ("unit", 50, 1),
        ];
        for (name, supply_max, demand_max) in cases {
            for seed in [1u64, 2, 3] {
                let p = generated(50, 2_000, supply_max, demand_max, seed);
                // Best of 5: the machine is shared.
                let mut took = std::time::Duration::MAX;
                for _ in 0..5 {
                    let start = Instant::now();
                    std::hint::black_box(solve(std::hint::black_box(&p)).unwrap());
                    took = took.min(start.elapsed());
                }
                let (sol, stats) = solve_with_stats(&p).unwrap();
                check_solution(&p, &sol);
                println!(
                    "50x2000 {name:>8} seed {seed}: {:>8.2} ms, {} augmentations, {} assignments, greedy gap {}",
                    took.as_secs_f64() * 1e3,
                    stats.augmentations,
                    sol.assignments.len(),
                    sol.objective - greedy(&p)
                );
            }
        }
        let p = generated(2_000, 50, 1_000_000, 20_000_000, 4);
        let start = Instant::now();
        let (sol, stats) = solve_with_stats(&p).unwrap();
        let took = start.elapsed();
        check_solution(&p, &sol);
        println!(
            "2000x50 (transposed): {:.2} ms, {} augmentations",
            took.as_secs_f64() * 1e3,
            stats.augmentations
        );
        let p = generated(5, 100, 500, 20, 9);
        let (_, stats) = solve_with_stats(&p).unwrap();
        let runs = 1_000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..runs {
                std::hint::black_box(solve(std::hint::black_box(&p)).unwrap());
            }
            best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(runs));
        }
        println!(
            "5x100 typical: {best:.1} µs per solve, {} augmentations",
            stats.augmentations
        );
    }

    fn small_problem() -> impl Strategy<Value = Problem> {
        (1usize..=3, 1usize..=3)
            .prop_flat_map(|(ns, nd)| {
                (
                    prop::collection::vec(0i64..=4, ns),
                    prop::collection::vec(0i64..=4, nd),
                    prop::collection::vec(
                        prop::collection::vec(prop::option::weighted(0.75, -5i64..=20), nd),
                        ns,
                    ),
                )
            })
            .prop_map(|(s, d, value)| problem(&s, &d, value))
    }

    fn medium_problem() -> impl Strategy<Value = Problem> {
        (1usize..=7, 1usize..=10)
            .prop_flat_map(|(ns, nd)| {
                (
                    prop::collection::vec(0i64..=15, ns),
                    prop::collection::vec(0i64..=15, nd),
                    prop::collection::vec(
                        prop::collection::vec(prop::option::weighted(0.7, -5i64..=30), nd),
                        ns,
                    ),
                )
            })
            .prop_map(|(s, d, value)| problem(&s, &d, value))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn solve_matches_brute_force(p in small_problem()) {
            let sol = solve(&p).unwrap();
            let brute = brute_force(&p).unwrap();
            prop_assert_eq!(objective(&p, &sol.assignments).unwrap(), sol.objective);
            prop_assert_eq!(objective(&p, &brute.assignments).unwrap(), brute.objective);
            prop_assert_eq!(sol.objective, brute.objective);
            for w in sol.assignments.windows(2) {
                prop_assert!((w[0].supply, w[0].demand) < (w[1].supply, w[1].demand));
            }
            for a in &sol.assignments {
                prop_assert!(a.qty > 0);
                prop_assert!(p.value[a.supply][a.demand].unwrap() > 0);
            }
        }

        #[test]
        fn scaling_quantities_scales_the_objective(p in small_problem(), k in prop_oneof![Just(1_000_003i64), Just(100_000_000i64)]) {
            // The LP is totally unimodular, so its integer optimum scales
            // linearly with the quantities: this proves solve on huge
            // quantities against brute force on the small ones.
            let mut big = p.clone();
            for s in &mut big.supplies {
                s.qty *= k;
            }
            for d in &mut big.demands {
                d.qty *= k;
            }
            let (sol, stats) = solve_with_stats(&big).unwrap();
            prop_assert_eq!(objective(&big, &sol.assignments).unwrap(), sol.objective);
            prop_assert_eq!(sol.objective, i128::from(k) * brute_force(&p).unwrap().objective);
            prop_assert!(stats.augmentations <= 3 * (p.supplies.len() + p.demands.len()) + 9);
        }

        #[test]
        fn solve_is_deterministic(p in medium_problem()) {
            let first = solve(&p).unwrap();
            let again = solve(&p.clone()).unwrap();
            prop_assert_eq!(&first, &again);
            prop_assert_eq!(first, solve(&p).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn solve_matches_unit_reference_on_medium_instances(p in medium_problem()) {
            let sol = solve(&p).unwrap();
            prop_assert_eq!(objective(&p, &sol.assignments).unwrap(), sol.objective);
            prop_assert_eq!(sol.objective, reference_unit_ssp(&p));
            prop_assert!(sol.objective >= greedy(&p));
        }
    }
}
