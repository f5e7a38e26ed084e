//! Features and outcomes. Each model has one function that turns the history into
//! examples (features as of the moment the prediction would have been made, and what
//! happened afterwards) and one that turns the present snapshot into feature rows of the
//! same shape. Historical rates (a carrier's, a supplier's, a warehouse's, a customer's)
//! come from [`Tables`], built only from history before a cutoff, so a hold-out never
//! sees its own outcomes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use crate::core::Context;
use crate::domain::{History, Ix, OrderState, PurchaseState, Snapshot, SourceId};

/// Hours after the promise a delivery may arrive and still count as on time.
pub const GRACE_HOURS: i64 = 4;
/// Days a purchase line may arrive after its first planned date and still count as on time.
pub const SLIP_DAYS: i64 = 3;
/// Days an invoice may be overdue before shipments go on hold.
pub const HOLD_OVERDUE_DAYS: i64 = 30;
/// Days a supplier has to confirm a purchase line.
pub const CONFIRM_DAYS: i64 = 4;
/// Days of payment behaviour the credit features look back over.
pub const PAYMENT_LOOKBACK_DAYS: i64 = 120;
/// Days ahead a credit-hold prediction covers.
pub const CREDIT_HORIZON_DAYS: i64 = 30;

/// One example: features as of `at`, and whether the outcome happened.
#[derive(Debug, Clone)]
pub struct Example {
    /// When the prediction would have been made.
    pub at: DateTime<Utc>,
    /// Feature values.
    pub x: Vec<f64>,
    /// Whether it happened.
    pub y: bool,
    /// The baseline's probability (a single historical rate).
    pub baseline: f64,
}

/// What a present prediction is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// An open order line (index into the snapshot's lines).
    Line(Ix),
    /// An open purchase line (index into the snapshot's inbound lines).
    Purchase(Ix),
    /// A customer (index into the snapshot's customers).
    Customer(Ix),
    /// An open order (index into the snapshot's orders).
    Order(Ix),
}

/// Historical rates the features read, keyed by source ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tables {
    /// Share of lines delivered on time, per carrier id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub carrier_on_time: BTreeMap<SourceId, f64>,
    /// Share of lines delivered late, per warehouse id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub warehouse_late: BTreeMap<SourceId, f64>,
    /// Share of purchase lines received on time, per supplier id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub supplier_on_time: BTreeMap<SourceId, f64>,
    /// Each product's supplier (product id → supplier id), from purchase history.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub product_supplier: BTreeMap<SourceId, SourceId>,
    /// Share of orders changed after confirmation, per customer id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub customer_change: BTreeMap<SourceId, f64>,
    /// Overall on-time share of carriers (for one without history).
    pub carrier_prior: f64,
    /// Overall late share of warehouses.
    pub warehouse_prior: f64,
    /// Overall on-time share of suppliers.
    pub supplier_prior: f64,
    /// Overall change share of orders.
    pub change_prior: f64,
}

/// Smoothed share: `hits` of `n`, pulled towards `prior` as if `k` more examples had it.
fn smoothed(hits: f64, n: f64, prior: f64, k: f64) -> f64 {
    (hits + k * prior) / (n + k)
}

fn rates(counts: HashMap<SourceId, (f64, f64)>, prior: f64) -> BTreeMap<SourceId, f64> {
    counts
        .into_iter()
        .map(|(id, (hits, n))| (id, smoothed(hits, n, prior, 5.0)))
        .collect()
}

fn share(counts: &HashMap<SourceId, (f64, f64)>) -> f64 {
    let (h, n) = counts
        .values()
        .fold((0.0, 0.0), |(a, b), (h, n)| (a + h, b + n));
    if n == 0.0 { 0.5 } else { h / n }
}

fn line_late(h: &History, li: usize) -> Option<bool> {
    let l = h.lines.get(li)?;
    let o = h.orders.get(l.order as usize)?;
    Some(l.delivered_at > o.promised + Duration::hours(GRACE_HOURS))
}

fn purchase_late(p: &crate::domain::history::PastPurchase) -> bool {
    p.received_at > p.original_planned + Duration::days(SLIP_DAYS)
}

fn id_of<T>(xs: &[T], i: Ix, id: impl Fn(&T) -> SourceId) -> Option<SourceId> {
    xs.get(i as usize).map(id)
}

impl Tables {
    /// Rates from the history before `cutoff`; product suppliers also from the
    /// snapshot's open purchase lines (present facts, not outcomes).
    pub fn build(s: &Snapshot, h: &History, cutoff: DateTime<Utc>) -> Tables {
        let mut carrier: HashMap<SourceId, (f64, f64)> = HashMap::new();
        let mut warehouse: HashMap<SourceId, (f64, f64)> = HashMap::new();
        for (li, l) in h.lines.iter().enumerate() {
            let Some(o) = h.orders.get(l.order as usize) else {
                continue;
            };
            // Only outcomes known by the cutoff.
            if l.delivered_at.max(o.promised) >= cutoff {
                continue;
            }
            let late = line_late(h, li).unwrap_or(false);
            if let Some(c) = o.carrier.and_then(|c| id_of(&s.carriers, c, |x| x.id)) {
                let e = carrier.entry(c).or_default();
                e.0 += f64::from(u8::from(!late));
                e.1 += 1.0;
            }
            if let Some(w) = id_of(&s.warehouses, o.warehouse, |x| x.id) {
                let e = warehouse.entry(w).or_default();
                e.0 += f64::from(u8::from(late));
                e.1 += 1.0;
            }
        }
        let mut supplier: HashMap<SourceId, (f64, f64)> = HashMap::new();
        let mut product_supplier = BTreeMap::new();
        for p in &h.purchases {
            let (Some(sid), Some(pid)) = (
                id_of(&s.suppliers, p.supplier, |x| x.id),
                id_of(&s.products, p.product, |x| x.id),
            ) else {
                continue;
            };
            product_supplier.insert(pid, sid);
            if p.received_at.max(p.original_planned) >= cutoff {
                continue;
            }
            let e = supplier.entry(sid).or_default();
            e.0 += f64::from(u8::from(!purchase_late(p)));
            e.1 += 1.0;
        }
        for b in &s.inbound {
            if let (Some(sid), Some(pid)) = (
                id_of(&s.suppliers, b.supplier, |x| x.id),
                id_of(&s.products, b.product, |x| x.id),
            ) {
                product_supplier.entry(pid).or_insert(sid);
            }
        }
        let mut change: HashMap<SourceId, (f64, f64)> = HashMap::new();
        // An order can change until it is delivered: count those promised before the cutoff.
        for o in h.orders.iter().filter(|o| o.promised < cutoff) {
            if let Some(c) = id_of(&s.customers, o.customer, |x| x.id) {
                let e = change.entry(c).or_default();
                e.0 += f64::from(u8::from(!o.changes.is_empty()));
                e.1 += 1.0;
            }
        }
        let (carrier_prior, warehouse_prior, supplier_prior, change_prior) = (
            share(&carrier),
            share(&warehouse),
            share(&supplier),
            share(&change),
        );
        Tables {
            carrier_on_time: rates(carrier, carrier_prior),
            warehouse_late: rates(warehouse, warehouse_prior),
            supplier_on_time: rates(supplier, supplier_prior),
            product_supplier,
            customer_change: rates(change, change_prior),
            carrier_prior,
            warehouse_prior,
            supplier_prior,
            change_prior,
        }
    }

    fn carrier_late(&self, carrier: Option<SourceId>) -> f64 {
        1.0 - carrier
            .and_then(|c| self.carrier_on_time.get(&c))
            .copied()
            .unwrap_or(self.carrier_prior)
    }

    fn supplier_late(&self, supplier: Option<SourceId>) -> f64 {
        1.0 - supplier
            .and_then(|c| self.supplier_on_time.get(&c))
            .copied()
            .unwrap_or(self.supplier_prior)
    }

    fn warehouse_late(&self, w: Option<SourceId>) -> f64 {
        w.and_then(|c| self.warehouse_late.get(&c))
            .copied()
            .unwrap_or(self.warehouse_prior)
    }

    fn change_rate(&self, c: Option<SourceId>) -> f64 {
        c.and_then(|c| self.customer_change.get(&c))
            .copied()
            .unwrap_or(self.change_prior)
    }
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

fn days(d: Duration) -> f64 {
    d.num_minutes() as f64 / 1440.0
}

fn peak(t: DateTime<Utc>) -> f64 {
    f64::from(u8::from(matches!(t.month(), 8 | 12)))
}

// ---- late fulfillment ---------------------------------------------------------------

/// Features of the late-fulfillment model.
pub const LATE_FEATURES: &[&str] = &[
    "stock_shortage",
    "shortage_x_supplier_late_rate",
    "supplier_late_rate",
    "carrier_late_rate",
    "warehouse_late_rate",
    "lead_days",
    "peak_season",
    "log_value",
];

#[allow(clippy::too_many_arguments)]
fn late_row(
    t: &Tables,
    qty: f64,
    available: f64,
    supplier: Option<SourceId>,
    carrier: Option<SourceId>,
    warehouse: Option<SourceId>,
    lead_days: f64,
    promised: DateTime<Utc>,
    value: f64,
) -> (Vec<f64>, f64) {
    let shortage = if qty > 0.0 {
        (1.0 - available / qty).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let sl = t.supplier_late(supplier);
    let cl = t.carrier_late(carrier);
    (
        vec![
            shortage,
            shortage * sl,
            sl,
            cl,
            t.warehouse_late(warehouse),
            lead_days,
            peak(promised),
            (1.0 + value.max(0.0)).ln(),
        ],
        cl,
    )
}

/// Past lines: features at confirmation; outcome: delivered after the promise (plus grace).
pub fn late_examples(s: &Snapshot, h: &History, t: &Tables) -> Vec<Example> {
    let mut out = Vec::with_capacity(h.lines.len());
    for (li, l) in h.lines.iter().enumerate() {
        let Some(o) = h.orders.get(l.order as usize) else {
            continue;
        };
        let pid = id_of(&s.products, l.product, |x| x.id);
        let (x, baseline) = late_row(
            t,
            f(l.qty),
            f(l.available_at_order),
            pid.and_then(|p| t.product_supplier.get(&p).copied()),
            o.carrier.and_then(|c| id_of(&s.carriers, c, |x| x.id)),
            id_of(&s.warehouses, o.warehouse, |x| x.id),
            days(o.promised - o.ordered_at),
            o.promised,
            f(l.value),
        );
        out.push(Example {
            at: o.ordered_at,
            x,
            y: line_late(h, li).unwrap_or(false),
            baseline,
        });
    }
    out
}

/// Open lines of the scan: shortage from the line's reservation plus free stock.
pub fn late_present(ctx: &Context, t: &Tables) -> Vec<(Subject, Vec<f64>, f64)> {
    let s = ctx.snap;
    let n_wh = s.warehouses.len().max(1);
    let mut carrier_of: Vec<Option<SourceId>> = vec![None; s.orders.len()];
    for p in &s.pickings {
        if let Some(slot) = carrier_of.get_mut(p.order as usize)
            && slot.is_none()
        {
            *slot = p.carrier.and_then(|c| id_of(&s.carriers, c, |x| x.id));
        }
    }
    let supplier_of: Vec<Option<SourceId>> = s
        .products
        .iter()
        .map(|p| t.product_supplier.get(&p.id).copied())
        .collect();
    let mut out = Vec::with_capacity(ctx.open_lines.len());
    for &li in &ctx.open_lines {
        let i = li as usize;
        let (Some(l), Some(open)) = (s.lines.get(i), ctx.open.get(i)) else {
            continue;
        };
        let Some(o) = s.orders.get(l.order as usize) else {
            continue;
        };
        let slot = l.product as usize * n_wh + o.warehouse as usize;
        let free = ctx
            .stock
            .get(slot)
            .map(|(on, res, _)| (f(*on) - f(*res)).max(0.0))
            .unwrap_or(0.0);
        let promised = ctx.need_by.get(i).copied().unwrap_or(o.date_order);
        let value = ctx.net.get(i).map(|n| f(*n) * f(*open)).unwrap_or(0.0);
        let (x, b) = late_row(
            t,
            f(*open),
            f(l.qty_reserved) + free,
            supplier_of.get(l.product as usize).copied().flatten(),
            carrier_of.get(l.order as usize).copied().flatten(),
            id_of(&s.warehouses, o.warehouse, |x| x.id),
            days(promised - o.date_order),
            promised,
            value,
        );
        out.push((Subject::Line(li), x, b));
    }
    out
}

// ---- supplier delay ----------------------------------------------------------------

/// Features of the supplier-delay model.
pub const SUPPLIER_FEATURES: &[&str] = &[
    "supplier_late_rate",
    "lead_days",
    "unconfirmed_after_4_days",
    "lunar_new_year_asia",
    "log_qty",
];

fn asian(country: &str) -> bool {
    matches!(country, "CN" | "VN" | "TW" | "IN" | "TH" | "MY" | "ID")
}

fn lunar_new_year(t: DateTime<Utc>) -> bool {
    (t.month() == 1 && t.day() >= 20) || t.month() == 2
}

fn supplier_row(
    t: &Tables,
    s: &Snapshot,
    supplier: Ix,
    ordered: DateTime<Utc>,
    planned: DateTime<Utc>,
    unconfirmed: bool,
    qty: f64,
) -> (Vec<f64>, f64) {
    let sup = s.suppliers.get(supplier as usize);
    let sl = t.supplier_late(sup.map(|x| x.id));
    let asia = sup.is_some_and(|x| asian(&x.country)) && lunar_new_year(planned);
    (
        vec![
            sl,
            days(planned - ordered),
            f64::from(u8::from(unconfirmed)),
            f64::from(u8::from(asia)),
            (qty.max(1.0) / 100.0).ln(),
        ],
        sl,
    )
}

/// Past purchase lines: features four days after ordering; outcome: received more than
/// the slip allowance after the first planned date.
pub fn supplier_examples(s: &Snapshot, h: &History, t: &Tables) -> Vec<Example> {
    h.purchases
        .iter()
        .map(|p| {
            let unconfirmed = p
                .confirmed_at
                .is_none_or(|c| c > p.ordered_at + Duration::days(CONFIRM_DAYS));
            let (x, baseline) = supplier_row(
                t,
                s,
                p.supplier,
                p.ordered_at,
                p.original_planned,
                unconfirmed,
                f(p.qty),
            );
            // Split by the planned arrival: the hold-out then holds every supplier,
            // however long its lead time.
            Example {
                at: p.original_planned,
                x,
                y: purchase_late(p),
                baseline,
            }
        })
        .collect()
}

/// Open purchase lines not yet received.
pub fn supplier_present(ctx: &Context, t: &Tables) -> Vec<(Subject, Vec<f64>, f64)> {
    let s = ctx.snap;
    s.inbound
        .iter()
        .enumerate()
        .filter(|(_, b)| b.state == PurchaseState::Purchase && b.open_qty() > Decimal::ZERO)
        .filter_map(|(i, b)| {
            let planned = b.original_planned.or(b.planned)?;
            let unconfirmed = !b.confirmed && ctx.now - b.ordered_at > Duration::days(CONFIRM_DAYS);
            let (x, base) = supplier_row(
                t,
                s,
                b.supplier,
                b.ordered_at,
                planned,
                unconfirmed,
                f(b.open_qty()),
            );
            Some((Subject::Purchase(i as Ix), x, base))
        })
        .collect()
}

// ---- credit hold -------------------------------------------------------------------

/// Features of the credit-hold model.
pub const CREDIT_FEATURES: &[&str] = &[
    "late_share_120d",
    "avg_days_late_120d",
    "max_days_overdue",
    "receivables_to_monthly_billing",
    "payment_terms_days",
    "jan_feb",
];

/// Payment behaviour before `t` from a customer's invoices.
struct Payments {
    late_share: f64,
    avg_days_late: f64,
    monthly: f64,
}

fn payments(invs: &[&crate::domain::history::PastInvoice], t: DateTime<Utc>) -> Payments {
    let from = t - Duration::days(PAYMENT_LOOKBACK_DAYS);
    let (mut n, mut late, mut late_days, mut billed) = (0.0, 0.0, 0.0, 0.0);
    for i in invs {
        if i.invoice_date >= from && i.invoice_date < t {
            billed += f(i.amount);
        }
        if i.due_date < from || i.due_date >= t {
            continue;
        }
        n += 1.0;
        let settled = i.paid_at.filter(|p| *p <= t).unwrap_or(t);
        if settled > i.due_date {
            late += 1.0;
            late_days += days(settled - i.due_date);
        }
    }
    Payments {
        late_share: smoothed(late, n, 0.15, 2.0),
        avg_days_late: if late > 0.0 { late_days / late } else { 0.0 },
        monthly: billed * 30.0 / PAYMENT_LOOKBACK_DAYS as f64,
    }
}

fn credit_row(
    p: &Payments,
    max_overdue: f64,
    receivables: f64,
    terms: f64,
    t: DateTime<Utc>,
) -> (Vec<f64>, f64) {
    let mid = t + Duration::days(CREDIT_HORIZON_DAYS / 2);
    (
        vec![
            p.late_share,
            p.avg_days_late,
            max_overdue,
            receivables / p.monthly.max(100.0),
            terms,
            f64::from(u8::from(matches!(mid.month(), 1 | 2))),
        ],
        p.late_share,
    )
}

fn invoices_by_customer<'h>(
    s: &Snapshot,
    h: &'h History,
) -> Vec<Vec<&'h crate::domain::history::PastInvoice>> {
    let mut by: Vec<Vec<_>> = vec![Vec::new(); s.customers.len()];
    for i in &h.invoices {
        if let Some(v) = by.get_mut(i.customer as usize) {
            v.push(i);
        }
    }
    by
}

/// Customer × fortnight: features at its start; outcome: an invoice passes the hold
/// threshold (more than 30 days overdue, unpaid) within the next 30 days. Customers
/// already on hold at the start are left out: that is a present condition.
pub fn credit_examples(s: &Snapshot, h: &History) -> Vec<Example> {
    let by = invoices_by_customer(s, h);
    let mut out = Vec::new();
    let mut t = h.since + Duration::days(PAYMENT_LOOKBACK_DAYS);
    while t + Duration::days(CREDIT_HORIZON_DAYS) <= h.until {
        let end = t + Duration::days(CREDIT_HORIZON_DAYS);
        for (ci, invs) in by.iter().enumerate() {
            let Some(c) = s.customers.get(ci) else {
                continue;
            };
            let (mut max_overdue, mut receivables) = (0.0f64, 0.0);
            let mut happened = false;
            for i in invs {
                let open_at_t = i.invoice_date < t && i.paid_at.is_none_or(|p| p > t);
                if open_at_t {
                    receivables += f(i.amount);
                    max_overdue = max_overdue.max(days(t - i.due_date));
                }
                let hold_at = i.due_date + Duration::days(HOLD_OVERDUE_DAYS);
                if hold_at < end && i.paid_at.is_none_or(|p| p > hold_at.max(t)) {
                    happened = true;
                }
            }
            if max_overdue > HOLD_OVERDUE_DAYS as f64 {
                continue;
            }
            let p = payments(invs, t);
            let (x, baseline) = credit_row(
                &p,
                max_overdue.max(0.0),
                receivables,
                f64::from(c.payment_terms_days),
                t,
            );
            out.push(Example {
                at: t,
                x,
                y: happened,
                baseline,
            });
        }
        t += Duration::days(15);
    }
    out
}

/// Customers with open orders and no present hold: behaviour from the payment history,
/// position from the snapshot's open invoices.
pub fn credit_present(ctx: &Context, h: &History) -> Vec<(Subject, Vec<f64>, f64)> {
    let s = ctx.snap;
    let by = invoices_by_customer(s, h);
    let mut out = Vec::new();
    for (ci, c) in s.customers.iter().enumerate() {
        let Some(pos) = ctx.credit.get(ci) else {
            continue;
        };
        if pos.open_orders.is_empty() || pos.max_overdue_days > HOLD_OVERDUE_DAYS {
            continue;
        }
        let p = payments(by.get(ci).map(|v| v.as_slice()).unwrap_or(&[]), ctx.now);
        let (x, b) = credit_row(
            &p,
            pos.max_overdue_days.max(0) as f64,
            f(pos.receivables),
            f64::from(c.payment_terms_days),
            ctx.now,
        );
        out.push((Subject::Customer(ci as Ix), x, b));
    }
    out
}

// ---- order change ------------------------------------------------------------------

/// Features of the order-change model.
pub const CHANGE_FEATURES: &[&str] = &[
    "customer_change_rate",
    "lead_days",
    "lines",
    "holiday_season",
    "log_value",
];

fn change_row(
    t: &Tables,
    customer: Option<SourceId>,
    ordered: DateTime<Utc>,
    promised: DateTime<Utc>,
    lines: f64,
    value: f64,
) -> (Vec<f64>, f64) {
    let rate = t.change_rate(customer);
    (
        vec![
            rate,
            days(promised - ordered),
            lines,
            f64::from(u8::from(matches!(ordered.month(), 11 | 12))),
            (1.0 + value.max(0.0)).ln(),
        ],
        rate,
    )
}

/// Past orders of key accounts: features at confirmation; outcome: changed afterwards.
pub fn change_examples(s: &Snapshot, h: &History, t: &Tables) -> Vec<Example> {
    h.orders
        .iter()
        .filter(|o| {
            s.customers
                .get(o.customer as usize)
                .is_some_and(|c| c.key_account)
        })
        .map(|o| {
            let start = o.first_line as usize;
            let end = start + o.line_count as usize;
            let value: f64 = h
                .lines
                .get(start..end)
                .unwrap_or(&[])
                .iter()
                .map(|l| f(l.value))
                .sum();
            let (x, baseline) = change_row(
                t,
                id_of(&s.customers, o.customer, |x| x.id),
                o.ordered_at,
                o.promised,
                f64::from(o.line_count),
                value,
            );
            Example {
                at: o.ordered_at,
                x,
                y: !o.changes.is_empty(),
                baseline,
            }
        })
        .collect()
}

/// Open orders of key accounts.
pub fn change_present(ctx: &Context, t: &Tables) -> Vec<(Subject, Vec<f64>, f64)> {
    let s = ctx.snap;
    s.orders
        .iter()
        .enumerate()
        .filter(|(_, o)| o.state == OrderState::Sale)
        .filter_map(|(oi, o)| {
            let c = s.customers.get(o.customer as usize)?;
            if !c.key_account {
                return None;
            }
            let value = ctx.order_open_value.get(oi).map(|v| f(*v)).unwrap_or(0.0);
            if value <= 0.0 {
                return None;
            }
            let promised = o.promised.unwrap_or(
                o.date_order + Duration::days(i64::from(ctx.policy.thresholds.default_lead_days)),
            );
            let (x, b) = change_row(
                t,
                Some(c.id),
                o.date_order,
                promised,
                f64::from(o.line_count),
                value,
            );
            Some((Subject::Order(oi as Ix), x, b))
        })
        .collect()
}
