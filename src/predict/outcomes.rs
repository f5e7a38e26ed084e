//! Eventual outcomes of recorded predictions, read from a later snapshot and scan: did
//! the line arrive late, did the purchase line slip, did the customer go on hold, did the
//! key account change the order? Undecided until the facts say so.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::ModelKind;
use super::features::{CREDIT_HORIZON_DAYS, GRACE_HOURS, SLIP_DAYS};
use crate::core::{Exception, Kind};
use crate::domain::{Ix, PickingState, Snapshot};

/// Days after which an order-change prediction without a change counts as not happened.
pub const CHANGE_HORIZON_DAYS: i64 = 30;

/// Indexes of a snapshot and scan for resolving many predictions at once.
pub struct Lookup<'s> {
    s: &'s Snapshot,
    orders: HashMap<&'s str, Ix>,
    inbound: HashMap<i64, Ix>,
    late_orders: HashSet<&'s str>,
    held: HashSet<&'s str>,
    last_change: HashMap<Ix, DateTime<Utc>>,
}

impl<'s> Lookup<'s> {
    /// Index a snapshot and the present exceptions of its scan.
    pub fn new(s: &'s Snapshot, present: &'s [Exception]) -> Lookup<'s> {
        let mut last_change: HashMap<Ix, DateTime<Utc>> = HashMap::new();
        for c in &s.changes {
            let e = last_change.entry(c.order).or_insert(c.at);
            *e = (*e).max(c.at);
        }
        Lookup {
            s,
            orders: s
                .orders
                .iter()
                .enumerate()
                .map(|(i, o)| (o.name.as_str(), i as Ix))
                .collect(),
            inbound: s
                .inbound
                .iter()
                .enumerate()
                .map(|(i, b)| (b.id, i as Ix))
                .collect(),
            late_orders: present
                .iter()
                .filter(|e| !e.predicted && e.kind == Kind::ShipmentDelay)
                .map(|e| e.order_ref.as_str())
                .collect(),
            held: present
                .iter()
                .filter(|e| !e.predicted && e.kind == Kind::CreditHold)
                .map(|e| e.customer.as_str())
                .collect(),
            last_change,
        }
    }
}

/// The outcome of one prediction made at `first_at` about `subject`, if known by `now`:
/// (happened, how it was determined).
pub fn resolve(
    k: &Lookup,
    model: ModelKind,
    subject: &str,
    first_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(bool, String)> {
    let s = k.s;
    match model {
        ModelKind::LateFulfillment => {
            let (order, seq) = subject.split_once('/')?;
            let oi = *k.orders.get(order)?;
            let o = s.orders.get(oi as usize)?;
            let seq: u32 = seq.parse().ok()?;
            let l = s.order_lines(o).iter().find(|l| l.seq == seq)?;
            let promise = l
                .promised
                .or(o.promised)
                .unwrap_or(o.date_order + Duration::days(7))
                + Duration::hours(GRACE_HOURS);
            if k.late_orders.contains(o.name.as_str()) {
                return Some((true, "a shipment delay was detected".into()));
            }
            if l.open_qty() <= Decimal::ZERO {
                let shipped = s
                    .pickings
                    .iter()
                    .filter(|p| p.order == oi && p.state == PickingState::Done)
                    .filter_map(|p| p.done_at)
                    .max()
                    .unwrap_or(now);
                return Some((shipped > promise, "delivered".into()));
            }
            (now > promise).then(|| (true, "promise passed undelivered".into()))
        }
        ModelKind::SupplierDelay => {
            let id: i64 = subject.rsplit_once('#')?.1.parse().ok()?;
            let b = s.inbound.get(*k.inbound.get(&id)? as usize)?;
            let original = b.original_planned.or(b.planned)?;
            let limit = original + Duration::days(SLIP_DAYS);
            if b.planned.is_some_and(|p| p > limit) {
                return Some((true, "the planned date slipped".into()));
            }
            if b.open_qty() <= Decimal::ZERO {
                return Some((now > limit, "received".into()));
            }
            (now > limit).then(|| (true, "not received by the planned date".into()))
        }
        ModelKind::CreditHold => {
            let c = s.customers.iter().find(|c| c.reference == subject)?;
            if k.held.contains(c.name.as_str()) {
                return Some((true, "a credit hold was detected".into()));
            }
            (now - first_at > Duration::days(CREDIT_HORIZON_DAYS))
                .then(|| (false, "no hold within 30 days".into()))
        }
        ModelKind::OrderChange => {
            let oi = *k.orders.get(subject)?;
            let o = s.orders.get(oi as usize)?;
            if k.last_change.get(&oi).is_some_and(|at| *at > first_at) {
                return Some((true, "the order was changed".into()));
            }
            let open = s
                .order_lines(o)
                .iter()
                .any(|l| l.open_qty() > Decimal::ZERO);
            if !open {
                return Some((false, "delivered without a change".into()));
            }
            (now - first_at > Duration::days(CHANGE_HORIZON_DAYS))
                .then(|| (false, "no change within 30 days".into()))
        }
    }
}
