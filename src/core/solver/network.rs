//! The residual network of [`solve`](super::solve), compressed to the supply
//! nodes, and its successive-shortest-path rounds (see the parent module's
//! docs for the algorithm).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Assignment, OrBug, Problem, Solution, SolveError};

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
pub(super) struct Network {
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
    pub(super) cand: Vec<Vec<(Reverse<i64>, usize)>>,
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
    pub(super) fn new(p: &Problem) -> Self {
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
    pub(super) fn run(&mut self) -> Result<usize, SolveError> {
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

    pub(super) fn solution(&self) -> Result<Solution, SolveError> {
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
