//! Unit and property tests of the solver against the reference.

use super::reference::{BRUTE_FORCE_LIMIT, CheckError, brute_force, objective};
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
        Err(CheckError::AssignmentOutOfRange {
            index: 0,
            supply: 2,
            demand: 0
        })
    );
    assert_eq!(
        objective(&p, &[asg(0, 0, 1), asg(0, 5, 1)]),
        Err(CheckError::AssignmentOutOfRange {
            index: 1,
            supply: 0,
            demand: 5
        })
    );
    assert_eq!(
        objective(&p, &[asg(0, 0, -1)]),
        Err(CheckError::NegativeAssignment { index: 0, qty: -1 })
    );
    assert_eq!(
        objective(&p, &[asg(0, 1, 1)]),
        Err(CheckError::PairNotAllowed {
            index: 0,
            supply: 0,
            demand: 1
        })
    );
    assert_eq!(
        objective(&p, &[asg(1, 0, 2), asg(1, 1, 1)]),
        Err(CheckError::SupplyExceeded {
            supply: 1,
            assigned: 3,
            available: 2
        })
    );
    assert_eq!(
        objective(&p, &[asg(0, 0, 2), asg(1, 0, 1)]),
        Err(CheckError::DemandExceeded {
            demand: 0,
            assigned: 3,
            wanted: 2
        })
    );
    // Huge bogus quantities are reported, not overflowed.
    assert!(matches!(
        objective(&p, &[asg(0, 0, i64::MAX), asg(0, 0, i64::MAX)]),
        Err(CheckError::SupplyExceeded { .. })
    ));
}

#[test]
fn brute_force_refuses_large_instances() {
    let p = problem(&[1_000], &[1_000, 1_000, 1_000], vec![vec![Some(1); 3]]);
    assert_eq!(
        brute_force(&p),
        Err(CheckError::TooLarge {
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
