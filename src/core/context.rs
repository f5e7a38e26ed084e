//! Per-scan derived data shared by the detectors: which lines are open demand, when each
//! is needed, customer credit positions, stock per product and warehouse, and the
//! available-to-promise walk that tells, per line, how much stock and inbound supply
//! covers it and when the rest arrives. Computed once, in time linear in the snapshot.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::domain::{
    DataQualityFinding, Ix, OrderState, PurchaseState, SalesOrder, Snapshot, Validity,
};
use crate::policy::Policy;

/// A customer's credit position.
#[derive(Debug, Clone, Default)]
pub struct CreditPosition {
    /// Residual of open invoices.
    pub receivables: Decimal,
    /// Residual of invoices past due.
    pub overdue: Decimal,
    /// Days the oldest overdue invoice is past due.
    pub max_overdue_days: i64,
    /// Index of that invoice.
    pub oldest_overdue: Option<Ix>,
    /// Open invoices (indices).
    pub invoices: Vec<Ix>,
    /// Confirmed, undelivered orders (indices), oldest first.
    pub open_orders: Vec<Ix>,
}

/// What the available-to-promise walk found for one open line.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// Covered from stock on hand.
    pub from_stock: Decimal,
    /// Covered from inbound arriving by the need date.
    pub from_inbound: Decimal,
    /// Not covered by the need date.
    pub short: Decimal,
    /// When the short part is covered by later inbound (None: no supply in sight).
    pub eta: Option<DateTime<Utc>>,
    /// The inbound line the line depends on (the last lot it consumed or waits for).
    pub inbound: Option<Ix>,
}

/// An open line in its (product, warehouse) slot, with what the walk reads, kept together
/// so the walk reads memory in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotLine {
    /// Index into [`Snapshot::lines`].
    pub line: Ix,
    /// Need-by date, Unix seconds.
    pub need: i64,
    /// Quantity left to deliver.
    pub open: Decimal,
}

/// What the walk produces.
struct WalkOut {
    coverage: Vec<Coverage>,
    leftover: Vec<Decimal>,
    /// (inbound line, dependent open line), in the order the walk finds them; grouped per
    /// inbound line afterwards. One flat vector instead of a growing vector per inbound line.
    dependents: Vec<(Ix, Ix)>,
}

/// Derived, read-only data for one scan.
pub struct Context<'a> {
    /// The snapshot.
    pub snap: &'a Snapshot,
    /// The policy.
    pub policy: &'a Policy,
    /// The time the scan measures against.
    pub now: DateTime<Utc>,
    /// Usable records.
    pub valid: Validity,
    /// Open demand lines (confirmed order, quantity left), in snapshot order.
    pub open_lines: Vec<Ix>,
    /// Per line: when it is needed (line promise, order promise, or order date plus the default lead).
    pub need_by: Vec<DateTime<Utc>>,
    /// Per line: whether `need_by` comes from a real promise.
    pub has_promise: Vec<bool>,
    /// Per line: net unit price after discount (computed once; detectors read it often).
    pub net: Vec<Decimal>,
    /// Per line: quantity left to deliver (never negative).
    pub open: Vec<Decimal>,
    /// Per order: undelivered value at net prices.
    pub order_open_value: Vec<Decimal>,
    /// Per order: confirmed but not yet invoiced value.
    pub order_uninvoiced: Vec<Decimal>,
    /// Per customer: credit position.
    pub credit: Vec<CreditPosition>,
    /// Stock per `product * warehouses + warehouse`: (on hand, reserved, stock record index).
    pub stock: Vec<(Decimal, Decimal, Option<Ix>)>,
    /// Per `product * warehouses + warehouse`: stock left after the walk served all demand.
    pub leftover: Vec<Decimal>,
    /// Coverage from the walk, aligned with `lines_by_product`; see [`Context::coverage`].
    pub coverage: Vec<Coverage>,
    /// Open demand lines grouped by (product, warehouse) slot: the lines of slot `k` are
    /// `lines_by_product[product_offsets[k]..product_offsets[k+1]]`.
    pub product_offsets: Vec<u32>,
    /// See `product_offsets`.
    pub lines_by_product: Vec<SlotLine>,
    /// Per line: its position in `lines_by_product` (and `coverage`), `u32::MAX` if not open.
    pub line_pos: Vec<u32>,
    /// Inbound lines grouped by product, like `lines_by_product`.
    pub inbound_offsets: Vec<u32>,
    /// See `inbound_offsets`.
    pub inbound_by_product: Vec<Ix>,
    /// Per order: number of tracked changes within the repeated-changes window.
    pub recent_changes: Vec<u32>,
    /// Open demand lines that depend on each inbound line, grouped per inbound line like
    /// `lines_by_product`; see [`Context::dependents`].
    pub dependent_offsets: Vec<u32>,
    /// See `dependent_offsets`.
    pub dependent_lines: Vec<Ix>,
}

impl<'a> Context<'a> {
    /// Build the context; also returns the snapshot's data-quality findings.
    pub fn new(
        snap: &'a Snapshot,
        policy: &'a Policy,
        now: DateTime<Utc>,
    ) -> (Context<'a>, Vec<DataQualityFinding>) {
        // Two independent halves run on two threads: the data-quality check with the credit
        // positions and change counts (which need the check's verdict on orders), and the
        // per-line pass with the stock slots. Lines are filtered by the check afterwards.
        let ((valid, findings, credit, recent_changes), lines) = std::thread::scope(|s| {
            let checked = s.spawn(|| {
                let (valid, findings) = snap.check();
                let credit = credit_positions(snap, &valid, now);
                let recent = recent_changes(snap, policy, now);
                (valid, findings, credit, recent)
            });
            let lines = line_pass(snap, policy, now);
            match checked.join() {
                Ok(c) => (c, lines),
                // The check cannot panic on any snapshot (clippy denies panics and the
                // robustness tests corrupt snapshots); should it, re-raise it here.
                Err(e) => std::panic::resume_unwind(e),
            }
        });
        let LinePass {
            candidates,
            need_by,
            has_promise,
            net,
            open,
            order_open_value,
            order_uninvoiced,
            stock,
        } = lines;
        let mut open_lines = candidates;
        open_lines.retain(|&i| valid.line(i as usize));
        let n_wh = snap.warehouses.len();

        // Group open lines and inbound lines by product (counting sort: linear time).
        let n_products = snap.products.len();
        // Lines are bucketed by (product, warehouse) slot; a product's slots are adjacent,
        // so one product's lines are one contiguous range too.
        let (product_offsets, mut lines_by_product) = bucket(
            n_products * n_wh,
            open_lines.iter().filter_map(|&li| {
                let l = snap.lines.get(li as usize)?;
                let o = snap.orders.get(l.order as usize)?;
                let slot_line = SlotLine {
                    line: li,
                    need: need_by.get(li as usize).map(|t| t.timestamp()).unwrap_or(0),
                    open: open.get(li as usize).copied().unwrap_or_default(),
                };
                Some((l.product as usize * n_wh + o.warehouse as usize, slot_line))
            }),
        );
        // Within a slot: earliest need first (ties by line), the order the walk serves them.
        for w in product_offsets.windows(2) {
            if let [a, b] = *w
                && let Some(group) = lines_by_product.get_mut(a as usize..b as usize)
            {
                group.sort_unstable_by_key(|s| (s.need, s.line));
            }
        }
        let mut line_pos = vec![u32::MAX; snap.lines.len()];
        for (pos, sl) in lines_by_product.iter().enumerate() {
            if let Some(p) = line_pos.get_mut(sl.line as usize) {
                *p = pos as u32;
            }
        }
        let (inbound_offsets, inbound_by_product) = bucket(
            n_products,
            snap.inbound
                .iter()
                .enumerate()
                .map(|(i, b)| (b.product as usize, i as Ix)),
        );

        let mut ctx = Context {
            snap,
            policy,
            now,
            valid,
            open_lines,
            need_by,
            has_promise,
            net,
            open,
            order_open_value,
            order_uninvoiced,
            credit,
            stock,
            leftover: Vec::new(),
            coverage: Vec::new(),
            product_offsets,
            lines_by_product,
            line_pos,
            inbound_offsets,
            inbound_by_product,
            recent_changes,
            dependent_offsets: Vec::new(),
            dependent_lines: Vec::new(),
        };
        ctx.walk();
        (ctx, findings)
    }

    /// Open demand lines of product `p`.
    pub fn product_lines(&self, p: Ix) -> &[SlotLine] {
        let n_wh = self.snap.warehouses.len();
        let (a, b) = (p as usize * n_wh, (p as usize + 1) * n_wh);
        match (self.product_offsets.get(a), self.product_offsets.get(b)) {
            (Some(&x), Some(&y)) => self
                .lines_by_product
                .get(x as usize..y as usize)
                .unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Open demand lines of one (product, warehouse) slot.
    pub fn slot_lines(&self, slot: usize) -> &[SlotLine] {
        slice_of(&self.product_offsets, &self.lines_by_product, slot as Ix)
    }

    /// What the walk found for an open line.
    pub fn coverage(&self, line: Ix) -> Option<&Coverage> {
        let pos = *self.line_pos.get(line as usize)?;
        self.coverage.get(pos as usize)
    }

    /// Open demand lines that depend on inbound line `b` (in the order the walk served them).
    pub fn dependents(&self, b: Ix) -> &[Ix] {
        slice_of(&self.dependent_offsets, &self.dependent_lines, b)
    }

    /// Inbound purchase lines of product `p`.
    pub fn product_inbound(&self, p: Ix) -> &[Ix] {
        slice_of(&self.inbound_offsets, &self.inbound_by_product, p)
    }

    /// Stock slot index of a product in a warehouse.
    pub fn slot(&self, product: Ix, warehouse: Ix) -> usize {
        product as usize * self.snap.warehouses.len() + warehouse as usize
    }

    /// The order of a line.
    pub fn order_of(&self, line: Ix) -> Option<&'a SalesOrder> {
        let l = self.snap.lines.get(line as usize)?;
        self.snap.orders.get(l.order as usize)
    }

    /// Net unit price of a line.
    pub fn net(&self, line: Ix) -> Decimal {
        self.net.get(line as usize).copied().unwrap_or_default()
    }

    /// Undelivered value of a line at its net price.
    pub fn open_value(&self, line: Ix) -> Decimal {
        self.open(line) * self.net(line)
    }

    /// Quantity left to deliver on a line.
    pub fn open(&self, line: Ix) -> Decimal {
        self.open.get(line as usize).copied().unwrap_or_default()
    }

    /// Undelivered value of an order.
    pub fn order_value(&self, order: Ix) -> Decimal {
        self.order_open_value
            .get(order as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Hours past the need date at `t` (zero when `t` is before it).
    pub fn hours_late(&self, line: Ix, t: DateTime<Utc>) -> i64 {
        let need = self.need(line);
        (t - need).num_hours().max(0)
    }

    /// Need-by date of a line.
    pub fn need(&self, line: Ix) -> DateTime<Utc> {
        self.need_by.get(line as usize).copied().unwrap_or(self.now)
    }

    /// The available-to-promise walk: per product and warehouse, serve open lines in
    /// need-date order from stock on hand, then from inbound arriving by the need date;
    /// unmet quantities wait (earliest need first) for later inbound, which gives their ETA.
    fn walk(&mut self) {
        let snap = self.snap;
        let n_wh = snap.warehouses.len();
        let mut w_out = WalkOut {
            coverage: vec![Coverage::default(); self.lines_by_product.len()],
            leftover: self.stock.iter().map(|s| s.0.max(Decimal::ZERO)).collect(),
            dependents: Vec::new(),
        };

        // Inbound lots grouped per (product, warehouse) slot, by planned date.
        let mut lots: Vec<(usize, DateTime<Utc>, Ix)> = Vec::with_capacity(snap.inbound.len());
        lots.extend(
            snap.inbound
                .iter()
                .enumerate()
                .filter(|(_, b)| {
                    b.state == PurchaseState::Purchase
                        && b.open_qty() > Decimal::ZERO
                        && (b.product as usize) < snap.products.len()
                        && (b.warehouse as usize) < n_wh
                })
                .filter_map(|(i, b)| {
                    b.planned
                        .map(|d| (b.product as usize * n_wh + b.warehouse as usize, d, i as Ix))
                }),
        );
        lots.sort_unstable();

        let mut backlog: VecDeque<(usize, Decimal)> = VecDeque::new();
        let mut lot_start = 0usize;
        for (slot, w) in self.product_offsets.windows(2).enumerate() {
            let [a, b] = *w else { continue };
            if a == b {
                continue;
            }
            // Advance to this slot's lots (lots are sorted by slot).
            while lots.get(lot_start).is_some_and(|l| l.0 < slot) {
                lot_start += 1;
            }
            let mut lot_end = lot_start;
            while lots.get(lot_end).is_some_and(|l| l.0 == slot) {
                lot_end += 1;
            }
            let slot_lots = lots.get(lot_start..lot_end).unwrap_or(&[]);
            self.walk_slot(
                &mut w_out,
                slot,
                a as usize..b as usize,
                slot_lots,
                &mut backlog,
            );
        }
        self.coverage = w_out.coverage;
        self.leftover = w_out.leftover;
        let (offsets, lines) = bucket(
            snap.inbound.len(),
            w_out.dependents.iter().map(|&(b, l)| (b as usize, l)),
        );
        self.dependent_offsets = offsets;
        self.dependent_lines = lines;
    }

    /// Walk one slot: `range` is its part of `lines_by_product` (need-date order).
    fn walk_slot(
        &self,
        out: &mut WalkOut,
        slot: usize,
        range: std::ops::Range<usize>,
        lots: &[(usize, DateTime<Utc>, Ix)],
        backlog: &mut VecDeque<(usize, Decimal)>,
    ) {
        backlog.clear();
        let mut stock_left = out.leftover.get(slot).copied().unwrap_or_default();
        let mut inbound_avail = Decimal::ZERO;
        let mut avail_lot: Option<Ix> = None;
        let mut next_lot = 0usize;

        let snap = self.snap;
        let lines = &self.lines_by_product;
        // A lot arrives: it first fills waiting lines (earliest need first), the rest is
        // available to the lines that follow.
        let arrive = |out: &mut WalkOut,
                      lot: &(usize, DateTime<Utc>, Ix),
                      backlog: &mut VecDeque<(usize, Decimal)>|
         -> Decimal {
            let mut q = snap
                .inbound
                .get(lot.2 as usize)
                .map(|b| b.open_qty())
                .unwrap_or_default();
            while q > Decimal::ZERO {
                let Some(front) = backlog.front_mut() else {
                    break;
                };
                let take = q.min(front.1);
                front.1 -= take;
                q -= take;
                let pos = front.0;
                if let Some(c) = out.coverage.get_mut(pos) {
                    c.inbound = Some(lot.2);
                    if front.1 <= Decimal::ZERO {
                        c.eta = Some(lot.1);
                    }
                }
                if let Some(sl) = lines.get(pos) {
                    out.dependents.push((lot.2, sl.line));
                }
                if front.1 <= Decimal::ZERO {
                    backlog.pop_front();
                }
            }
            q
        };

        for pos in range {
            let Some(&sl) = lines.get(pos) else { break };
            while let Some(lot) = lots.get(next_lot).filter(|l| l.1.timestamp() <= sl.need) {
                let rest = arrive(out, lot, backlog);
                if rest > Decimal::ZERO {
                    inbound_avail += rest;
                    avail_lot = Some(lot.2);
                }
                next_lot += 1;
            }
            let open = sl.open;
            let s = open.min(stock_left);
            stock_left -= s;
            let i = if inbound_avail.is_zero() {
                Decimal::ZERO
            } else {
                (open - s).min(inbound_avail)
            };
            inbound_avail -= i;
            let short = open - s - i;
            if let Some(c) = out.coverage.get_mut(pos) {
                c.from_stock = s;
                c.from_inbound = i;
                c.short = short;
                if i > Decimal::ZERO {
                    c.inbound = avail_lot;
                }
            }
            if i > Decimal::ZERO
                && let Some(lot) = avail_lot
            {
                out.dependents.push((lot, sl.line));
            }
            if short > Decimal::ZERO {
                backlog.push_back((pos, short));
            }
        }
        while let Some(lot) = lots.get(next_lot) {
            arrive(out, lot, backlog);
            next_lot += 1;
        }
        if let Some(l) = out.leftover.get_mut(slot) {
            *l = stock_left;
        }
    }

    /// Whether an order is in a state where the core should look at it at all.
    pub fn order_active(&self, o: &SalesOrder) -> bool {
        !matches!(o.state, OrderState::Cancel | OrderState::Done)
    }
}

/// Group items by a dense key in linear time: returns offsets (`n + 1` entries) and the
/// items ordered by key (stable within a key). Items with a key `>= n` are dropped.
pub(crate) fn bucket<T: Copy + Default>(
    n: usize,
    items: impl Iterator<Item = (usize, T)> + Clone,
) -> (Vec<u32>, Vec<T>) {
    let mut offsets = vec![0u32; n + 1];
    for (k, _) in items.clone() {
        if let Some(c) = offsets.get_mut(k + 1).filter(|_| k < n) {
            *c += 1;
        }
    }
    for k in 0..n {
        offsets[k + 1] += offsets[k];
    }
    let total = offsets.get(n).copied().unwrap_or(0) as usize;
    let mut cursor = offsets.clone();
    let mut out = vec![T::default(); total];
    for (k, item) in items {
        if k < n
            && let Some(c) = cursor.get_mut(k)
        {
            if let Some(slot) = out.get_mut(*c as usize) {
                *slot = item;
            }
            *c += 1;
        }
    }
    (offsets, out)
}

pub(crate) fn slice_of<'s, T>(offsets: &[u32], items: &'s [T], k: Ix) -> &'s [T] {
    let k = k as usize;
    match (offsets.get(k), offsets.get(k + 1)) {
        (Some(&a), Some(&b)) => items.get(a as usize..b as usize).unwrap_or(&[]),
        _ => &[],
    }
}

/// What the per-line pass computes (see [`line_pass`]).
struct LinePass {
    /// Lines with quantity left on open-demand orders, before the validity filter.
    candidates: Vec<Ix>,
    need_by: Vec<DateTime<Utc>>,
    has_promise: Vec<bool>,
    net: Vec<Decimal>,
    open: Vec<Decimal>,
    order_open_value: Vec<Decimal>,
    order_uninvoiced: Vec<Decimal>,
    stock: Vec<(Decimal, Decimal, Option<Ix>)>,
}

/// One pass over the lines: need-by dates, candidate open lines, net prices, open
/// quantities, per-order open and uninvoiced values; then stock per product and warehouse.
fn line_pass(snap: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> LinePass {
    let n_wh = snap.warehouses.len();
    let lead = Duration::days(i64::from(policy.thresholds.default_lead_days));
    let n_lines = snap.lines.len();
    let mut need_by = Vec::with_capacity(n_lines);
    let mut has_promise = Vec::with_capacity(n_lines);
    // Reserved for every line: capacity never written stays virtual, while growing by
    // doubling would copy and fault in fresh memory several times.
    let mut candidates = Vec::with_capacity(n_lines);
    let mut net = Vec::with_capacity(n_lines);
    let mut open = Vec::with_capacity(n_lines);
    let mut order_open_value = vec![Decimal::ZERO; snap.orders.len()];
    let mut order_uninvoiced = vec![Decimal::ZERO; snap.orders.len()];
    for (i, l) in snap.lines.iter().enumerate() {
        let order = snap.orders.get(l.order as usize);
        let promise = l.promised.or(order.and_then(|o| o.promised));
        has_promise.push(promise.is_some());
        need_by.push(promise.unwrap_or_else(|| order.map(|o| o.date_order + lead).unwrap_or(now)));
        let n = l.net_price();
        let q = l.open_qty();
        if !q.is_zero() {
            if order.is_some_and(|o| o.state.is_open_demand()) {
                candidates.push(i as Ix);
            }
            if let Some(v) = order_open_value.get_mut(l.order as usize) {
                *v += q * n;
            }
        }
        if l.qty > l.qty_invoiced
            && let Some(v) = order_uninvoiced.get_mut(l.order as usize)
        {
            *v += (l.qty - l.qty_invoiced) * n;
        }
        net.push(n);
        open.push(q);
    }

    let mut stock = vec![(Decimal::ZERO, Decimal::ZERO, None); snap.products.len() * n_wh];
    for (i, s) in snap.stock.iter().enumerate() {
        if (s.warehouse as usize) < n_wh
            && let Some(slot) = stock.get_mut(s.product as usize * n_wh + s.warehouse as usize)
        {
            slot.0 += s.on_hand;
            slot.1 += s.reserved;
            slot.2 = Some(i as Ix);
        }
    }
    LinePass {
        candidates,
        need_by,
        has_promise,
        net,
        open,
        order_open_value,
        order_uninvoiced,
        stock,
    }
}

/// Credit positions per customer: open receivables, overdue amounts, open orders.
fn credit_positions(snap: &Snapshot, valid: &Validity, now: DateTime<Utc>) -> Vec<CreditPosition> {
    let mut credit = vec![CreditPosition::default(); snap.customers.len()];
    for (i, inv) in snap.invoices.iter().enumerate() {
        let Some(c) = credit.get_mut(inv.customer as usize) else {
            continue;
        };
        if inv.residual <= Decimal::ZERO {
            continue;
        }
        c.receivables += inv.residual;
        c.invoices.push(i as Ix);
        let days = (now - inv.due_date).num_days();
        if days > 0 {
            c.overdue += inv.residual;
            if days > c.max_overdue_days {
                c.max_overdue_days = days;
                c.oldest_overdue = Some(i as Ix);
            }
        }
    }
    for (i, o) in snap.orders.iter().enumerate() {
        if valid.order(i)
            && o.state.is_open_demand()
            && let Some(c) = credit.get_mut(o.customer as usize)
        {
            c.open_orders.push(i as Ix);
        }
    }
    for c in &mut credit {
        c.open_orders.sort_by_key(|&o| {
            snap.orders
                .get(o as usize)
                .map(|o| (o.date_order, o.id))
                .unwrap_or_default()
        });
    }
    credit
}

/// Per order: tracked changes within the repeated-changes window.
fn recent_changes(snap: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> Vec<u32> {
    let window = Duration::days(i64::from(policy.thresholds.repeated_changes.window_days));
    let mut recent = vec![0u32; snap.orders.len()];
    for ch in &snap.changes {
        if ch.at <= now
            && now - ch.at <= window
            && let Some(c) = recent.get_mut(ch.order as usize)
        {
            *c += 1;
        }
    }
    recent
}
