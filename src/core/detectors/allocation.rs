//! Allocation conflict: scarce stock reserved by lower-priority lines while a
//! higher-priority line due soon starves.
//!
//! For every product with a starving line, the allocation solver computes the best
//! assignment of the pool's stock and inbound supply to the competing lines (objective:
//! customer tier × timeliness, a small penalty for cross-warehouse transfers). Where the
//! solver gives a starving line stock in its own warehouse that lower-priority lines now
//! hold in reservation (after any unreserved stock is used), the exception names those
//! lines and proposes the reallocation.

use crate::core::fmt::Num;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::{base, day, ev, impact, line_ref, margin_on, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};
use crate::core::solver::{Demand, Problem, Supply, solve};
use crate::domain::{Ix, PurchaseState, Tier};

/// At most this many competing lines per product go to the solver (the earliest needed).
const MAX_DEMANDS: usize = 400;

fn units(q: Decimal) -> i64 {
    q.max(Decimal::ZERO).trunc().to_i64().unwrap_or(0)
}

enum Source {
    Stock { warehouse: Ix },
    Inbound { warehouse: Ix, at: DateTime<Utc> },
}

/// Value per unit of serving a line from a supply.
fn value(ctx: &Context, tier: Tier, need: DateTime<Utc>, dest: Ix, src: &Source) -> Option<i64> {
    let (w, at) = match src {
        Source::Stock { warehouse } => (*warehouse, ctx.now),
        Source::Inbound { warehouse, at } => (*warehouse, *at),
    };
    let cross = w != dest;
    let transfer = if cross {
        i64::from(ctx.snap.warehouses.get(dest as usize)?.transfer_hours)
    } else {
        0
    };
    let arrival = at + Duration::hours(transfer);
    let timeliness = if arrival <= need {
        100
    } else {
        (60 - 2 * (arrival - need).num_days()).max(5)
    };
    let weight = 20 + (ctx.policy.scoring.tier_factor.of(tier) * 100.0).round() as i64;
    Some(weight * timeliness - if cross { 30 } else { 0 })
}

/// A line due soon that cannot ship in full from its own reservation.
fn starving(ctx: &Context, l: Ix, starving_by: DateTime<Utc>) -> bool {
    ctx.need(l) <= starving_by
        && ctx
            .snap
            .lines
            .get(l as usize)
            .is_some_and(|x| x.qty_reserved < x.open_qty())
}

fn priority_key(ctx: &Context, li: Ix) -> (Tier, DateTime<Utc>) {
    let tier = ctx
        .order_of(li)
        .and_then(|o| ctx.snap.customers.get(o.customer as usize))
        .map(|c| c.tier)
        .unwrap_or(Tier::C);
    (tier, ctx.need(li))
}

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let starving_by = ctx.now
        + Duration::days(i64::from(
            ctx.policy
                .thresholds
                .allocation_conflict
                .starving_within_days,
        ));
    let horizon =
        ctx.now + Duration::days(i64::from(ctx.policy.thresholds.stock_shortage.horizon_days));

    let n_wh = snap.warehouses.len();
    let mut pools: Vec<u16> = Vec::new();
    for p in 0..snap.products.len() as Ix {
        if ctx.product_lines(p).is_empty() {
            continue;
        }
        pools.clear();
        for (w, wh) in snap.warehouses.iter().enumerate() {
            let lines = ctx.slot_lines(p as usize * n_wh + w);
            if lines.iter().any(|sl| starving(ctx, sl.line, starving_by))
                && !pools.contains(&wh.pool)
            {
                pools.push(wh.pool);
            }
        }
        for &pool in &pools {
            solve_pool(ctx, p, pool, horizon, starving_by, out);
        }
    }
}

fn solve_pool(
    ctx: &Context,
    p: Ix,
    pool: u16,
    horizon: DateTime<Utc>,
    starving_by: DateTime<Utc>,
    out: &mut Vec<Exception>,
) {
    let snap = ctx.snap;
    let in_pool = |w: Ix| {
        snap.warehouses
            .get(w as usize)
            .is_some_and(|x| x.pool == pool)
    };
    let horizon_ts = horizon.timestamp();
    let mut demands: Vec<Ix> = ctx
        .product_lines(p)
        .iter()
        .filter(|sl| {
            sl.need <= horizon_ts && ctx.order_of(sl.line).is_some_and(|o| in_pool(o.warehouse))
        })
        .map(|sl| sl.line)
        .collect();
    demands.sort_unstable_by_key(|&l| (ctx.need(l), l));
    demands.truncate(MAX_DEMANDS);

    let mut sources = Vec::new();
    let mut supplies = Vec::new();
    for w in 0..snap.warehouses.len() as Ix {
        if !in_pool(w) {
            continue;
        }
        let on_hand = ctx
            .stock
            .get(ctx.slot(p, w))
            .map(|s| s.0)
            .unwrap_or_default();
        if units(on_hand) > 0 {
            sources.push(Source::Stock { warehouse: w });
            supplies.push(Supply {
                qty: units(on_hand),
            });
        }
    }
    for b in ctx
        .product_inbound(p)
        .iter()
        .filter_map(|&i| snap.inbound.get(i as usize))
    {
        if b.state == PurchaseState::Purchase
            && in_pool(b.warehouse)
            && let Some(at) = b.planned
            && units(b.open_qty()) > 0
        {
            sources.push(Source::Inbound {
                warehouse: b.warehouse,
                at,
            });
            supplies.push(Supply {
                qty: units(b.open_qty()),
            });
        }
    }
    if supplies.is_empty() || demands.is_empty() {
        return;
    }
    let keys: Vec<(Tier, DateTime<Utc>, Ix)> = demands
        .iter()
        .map(|&l| {
            let (t, n) = priority_key(ctx, l);
            (t, n, ctx.order_of(l).map(|o| o.warehouse).unwrap_or(0))
        })
        .collect();
    let value_matrix: Vec<Vec<Option<i64>>> = sources
        .iter()
        .map(|s| {
            keys.iter()
                .map(|&(t, n, w)| value(ctx, t, n, w, s))
                .collect()
        })
        .collect();
    let problem = Problem {
        supplies,
        demands: demands
            .iter()
            .map(|&l| Demand {
                qty: units(
                    snap.lines
                        .get(l as usize)
                        .map(|x| x.open_qty())
                        .unwrap_or_default(),
                ),
            })
            .collect(),
        value: value_matrix,
    };
    let Ok(solution) = solve(&problem) else {
        return;
    };

    // Ideal stock (same warehouse) per demand.
    let mut ideal = vec![0i64; demands.len()];
    for a in &solution.assignments {
        if let (Some(Source::Stock { warehouse }), Some(k)) =
            (sources.get(a.supply), keys.get(a.demand))
            && *warehouse == k.2
            && let Some(x) = ideal.get_mut(a.demand)
        {
            *x += a.qty;
        }
    }

    for w in 0..snap.warehouses.len() as Ix {
        if !in_pool(w) {
            continue;
        }
        let (on_hand, reserved_total, stock_ix) =
            ctx.stock.get(ctx.slot(p, w)).cloned().unwrap_or_default();
        let mut free = units(on_hand - reserved_total);
        let idx: Vec<usize> = (0..demands.len())
            .filter(|&i| keys.get(i).is_some_and(|k| k.2 == w))
            .collect();
        let reserved = |i: usize| {
            demands
                .get(i)
                .and_then(|&l| snap.lines.get(l as usize))
                .map(|l| units(l.qty_reserved.min(l.open_qty())))
                .unwrap_or(0)
        };
        // Givers: hold more than the solver gives them.
        let mut givers: Vec<(usize, i64)> = idx
            .iter()
            .filter_map(|&i| {
                let excess = reserved(i) - ideal.get(i).copied().unwrap_or(0);
                (excess > 0).then_some((i, excess))
            })
            .collect();
        // Lowest priority gives first.
        givers.sort_by(|a, b| {
            keys.get(b.0)
                .map(|k| (k.0, k.1))
                .cmp(&keys.get(a.0).map(|k| (k.0, k.1)))
        });
        // Receivers: starving, highest priority first.
        let mut receivers: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| {
                let l = demands.get(i).copied().unwrap_or(0);
                ideal.get(i).copied().unwrap_or(0) > reserved(i) && starving(ctx, l, starving_by)
            })
            .collect();
        receivers.sort_by_key(|&i| keys.get(i).map(|k| (k.0, k.1)));

        for r in receivers {
            let Some(&rl) = demands.get(r) else { continue };
            let mut deficit = ideal.get(r).copied().unwrap_or(0) - reserved(r);
            let from_free = deficit.min(free);
            free -= from_free;
            deficit -= from_free;
            if deficit <= 0 {
                continue;
            }
            let rkey = keys.get(r).map(|k| (k.0, k.1));
            let mut moves = Vec::new();
            for g in givers.iter_mut() {
                if deficit == 0 {
                    break;
                }
                let gkey = keys.get(g.0).map(|k| (k.0, k.1));
                // Only strictly lower priority: a worse tier, or the same tier needed later.
                let lower = match (gkey, rkey) {
                    (Some((gt, gn)), Some((rt, rn))) => gt > rt || (gt == rt && gn > rn),
                    _ => false,
                };
                if !lower || g.1 == 0 {
                    continue;
                }
                let q = deficit.min(g.1);
                g.1 -= q;
                deficit -= q;
                if let Some(&gl) = demands.get(g.0) {
                    moves.push((gl, q));
                }
            }
            if moves.is_empty() {
                continue;
            }
            emit(ctx, rl, w, &moves, stock_ix, on_hand, reserved_total, out);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    ctx: &Context,
    rl: Ix,
    w: Ix,
    moves: &[(Ix, i64)],
    stock_ix: Option<Ix>,
    on_hand: Decimal,
    reserved_total: Decimal,
    out: &mut Vec<Exception>,
) {
    let snap = ctx.snap;
    let (Some(line), Some(order)) = (snap.lines.get(rl as usize), ctx.order_of(rl)) else {
        return;
    };
    let (Some(product), Some(wh)) = (
        snap.products.get(line.product as usize),
        snap.warehouses.get(w as usize),
    ) else {
        return;
    };
    let total: i64 = moves.iter().map(|m| m.1).sum();
    let qty = Decimal::from(total);
    let lref = line_ref(order, line);
    let need = ctx.need(rl);
    // Late only if the walk could not cover it either; otherwise the reallocation keeps it on time.
    let hours = match ctx.coverage(rl) {
        Some(c) if c.short > Decimal::ZERO => c
            .eta
            .map(|eta| (eta - need).num_hours())
            .unwrap_or(i64::from(ctx.policy.scoring.lateness_full_at_hours)),
        _ => 0,
    }
    .max(ctx.hours_late(rl, ctx.now));
    let holders: Vec<String> = moves
        .iter()
        .filter_map(|(gl, _)| ctx.order_of(*gl).map(|o| o.name.clone()))
        .collect();
    let title = format!(
        "{lref} (tier {}) starves for {} × {} held by {}",
        snap.customers
            .get(order.customer as usize)
            .map(|c| c.tier.as_str())
            .unwrap_or("?"),
        qty,
        product.sku,
        holders.join(", ")
    );
    let mut e = base(
        ctx,
        Kind::AllocationConflict,
        &[&order.name, &line.id.to_string(), &wh.code],
        order,
        Some(line),
        title,
        "thresholds.allocation_conflict.starving_within_days".into(),
        impact(
            ctx,
            order,
            qty * line.net_price(),
            margin_on(ctx, line, qty),
            hours,
        ),
    );
    e.related_orders = holders;
    e.related_orders.dedup();
    let tier_of = |o: &crate::domain::SalesOrder| {
        snap.customers
            .get(o.customer as usize)
            .map(|c| c.tier.as_str())
            .unwrap_or("?")
    };
    e.evidence.push(ev(
        format!(
            "{lref} (tier {}) needs {} × {} by {} and has {} reserved",
            tier_of(order),
            Num(line.open_qty()),
            product.sku,
            day(need),
            Num(line.qty_reserved)
        ),
        "sale.order.line",
        line.id,
        lref.clone(),
    ));
    e.evidence.push(ev(
        format!(
            "{} × {} on hand in {}, {} of it reserved",
            Num(on_hand),
            product.sku,
            wh.code,
            Num(reserved_total)
        ),
        "stock.quant",
        stock_ix
            .and_then(|i| snap.stock.get(i as usize))
            .map(|s| s.id)
            .unwrap_or(0),
        format!("{}@{}", product.sku, wh.code),
    ));
    for &(gl, q) in moves {
        let (Some(gline), Some(gorder)) = (snap.lines.get(gl as usize), ctx.order_of(gl)) else {
            continue;
        };
        let gref = line_ref(gorder, gline);
        let gneed = ctx.need(gl);
        e.evidence.push(ev(
            format!(
                "{gref} (tier {}, needed {}) holds {} reserved",
                tier_of(gorder),
                day(gneed),
                Num(gline.qty_reserved)
            ),
            "sale.order.line",
            gline.id,
            gref.clone(),
        ));
        let mut tradeoffs = vec![format!(
            "{} (tier {}) then waits for the next supply; it is needed {}",
            gorder.name,
            tier_of(gorder),
            day(gneed)
        )];
        if let Some(eta) = ctx
            .coverage(gl)
            .and_then(|c| c.eta)
            .or_else(|| ctx.coverage(rl).and_then(|c| c.eta))
        {
            tradeoffs.push(format!("next supply for it is planned for {}", day(eta)));
        }
        e.recommendations.push(rec(
            ctx,
            Action::Reallocate {
                product: product.sku.clone(),
                qty: Decimal::from(q),
                warehouse: wh.code.clone(),
                from_order: gorder.name.clone(),
                from_line: gline.id,
                to_order: order.name.clone(),
                to_line: line.id,
            },
            format!(
                "Reallocate {} × {} in {} from {gref} to {lref}",
                q, product.sku, wh.code
            ),
            tradeoffs,
        ));
    }
    e.evidence.push(policy_ev(
        ctx,
        "thresholds.allocation_conflict.starving_within_days",
        format!(
            "lines due within {} days may take stock from lower-priority reservations",
            ctx.policy
                .thresholds
                .allocation_conflict
                .starving_within_days
        ),
    ));
    e.confidence = 0.85;
    super::push(out, e);
}
