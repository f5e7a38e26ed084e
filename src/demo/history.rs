//! The year before the demo snapshot: delivered orders, received purchase lines and
//! invoices. Outcomes follow from hidden causes, with noise:
//!
//! - a line arrives late more often when stock did not cover it at confirmation (then
//!   the supplier's reliability matters), with an unreliable carrier, a short lead time,
//!   in the peak seasons (August, December) and from the Lyon warehouse;
//! - a purchase line slips more often with an unreliable supplier, a long lead time, no
//!   confirmation within four days, and around the Lunar New Year for Asian suppliers;
//! - invoices are paid late by customers whose payment behaviour is weak and, more so,
//!   in their months of financial stress (persistent from month to month) and in
//!   January and February;
//! - key accounts change orders more when they are chaotic, with a long lead time, many
//!   lines, and before the holidays.
//!
//! Nothing records the causes or the outcomes: only dates and quantities. Drawn from its
//! own random stream, so the snapshot stays exactly what `generate` makes.

use chrono::{DateTime, Datelike, Duration, Utc};
use rust_decimal::Decimal;

use super::names::{CARRIERS, SUPPLIERS};
use super::{Causes, Rand, cumulative, home_warehouse, money, qty};
use crate::domain::history::{PastInvoice, PastLine, PastOrder, PastPurchase};
use crate::domain::{History, Ix, Snapshot, Tier};

/// Days of history.
pub const DAYS: i64 = 365;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Peak months (August, December): the warehouses run at capacity.
fn peak(t: DateTime<Utc>) -> bool {
    matches!(t.month(), 8 | 12)
}

/// Around the Lunar New Year (20 January to the end of February), Asian factories close.
fn lunar_new_year(t: DateTime<Utc>) -> bool {
    (t.month() == 1 && t.day() >= 20) || t.month() == 2
}

/// Past orders for a demo of `orders` open orders: about twenty times as many over the
/// year (the open ones are two weeks of business), bounded to keep generation fast.
pub fn past_order_count(orders: usize) -> usize {
    (orders * 20).clamp(2_000, 60_000)
}

pub(super) fn generate(seed: u64, s: &Snapshot, c: &Causes) -> History {
    let mut r = Rand(fastrand::Rng::with_seed(seed ^ 0x6869_7374_6f72_7921));
    let now = s.taken_at;
    let since = now - Duration::days(DAYS);
    let mut h = History {
        since,
        until: now,
        ..History::default()
    };
    if s.customers.is_empty() || s.products.is_empty() || s.warehouses.is_empty() {
        return h;
    }
    let product_cum = cumulative(c.popularity.iter().copied());
    let customer_cum = cumulative(s.customers.iter().map(|c| match c.tier {
        Tier::A => 6.0,
        Tier::B => 2.5,
        Tier::C => 1.0,
    }));
    // A lasting habit per customer of changing orders, beyond being chaotic.
    let change_habit: Vec<f64> = s.customers.iter().map(|_| r.normal(0.0, 0.4)).collect();

    let n_orders = past_order_count(s.orders.len().max(1));
    let mut times: Vec<i64> = (0..n_orders)
        .map(|_| r.range(0, (DAYS - 16) * 24))
        .collect();
    times.sort_unstable();
    for (k, hours) in times.into_iter().enumerate() {
        let ci = r.weighted(&customer_cum);
        let cust = &s.customers[ci];
        let wh = if r.chance(0.9) {
            home_warehouse(cust).min(s.warehouses.len() as Ix - 1)
        } else {
            r.0.u32(0..s.warehouses.len() as u32)
        };
        let lead = match cust.tier {
            Tier::A => r.range(2, 7),
            Tier::B => r.range(3, 10),
            Tier::C => r.range(5, 14),
        };
        let ordered_at = since + Duration::hours(hours);
        let promised = ordered_at + Duration::days(lead);
        let carrier = if r.chance(0.97) && !s.carriers.is_empty() {
            Some(r.0.u32(0..s.carriers.len().min(CARRIERS.len()) as u32))
        } else {
            None
        };
        let carrier_rate = carrier.map_or(0.85, |c| f64::from(CARRIERS[c as usize].1));
        let n_lines = (r.normal(4.0, 2.0).round() as i64).clamp(1, 12) as u32;
        let first_line = h.lines.len() as Ix;
        let disc = match cust.tier {
            Tier::A => 0.9,
            Tier::B => 0.95,
            Tier::C => 0.99,
        };
        for _ in 0..n_lines {
            let p = r.weighted(&product_cum).min(s.products.len() - 1);
            let product = &s.products[p];
            let list =
                rust_decimal::prelude::ToPrimitive::to_f64(&product.list_price).unwrap_or(10.0);
            let q = if list > 200.0 {
                r.range(1, 6)
            } else {
                r.range(2, 60)
            };
            let hot = c.popularity[p] > 0.08;
            let coverage = if r.chance(if hot { 0.3 } else { 0.05 }) {
                r.f()
            } else {
                1.0 + r.f() * 3.0
            };
            let supplier_rate = f64::from(SUPPLIERS[c.product_supplier[p]].3);
            let short = (1.0 - coverage).max(0.0);
            let z = -3.4
                + 2.2 * short
                + if coverage < 1.0 {
                    5.0 * (0.95 - supplier_rate)
                } else {
                    0.0
                }
                + 6.0 * (0.95 - carrier_rate)
                - 0.12 * lead as f64
                + if peak(promised) { 0.8 } else { 0.0 }
                + if wh == 2 { 0.45 } else { 0.0 }
                + r.normal(0.0, 0.5);
            let late = r.chance(sigmoid(z));
            let delivered_at = if late {
                promised + Duration::hours(r.range(6, 144))
            } else {
                promised - Duration::hours(r.range(0, 48))
            };
            h.lines.push(PastLine {
                order: k as Ix,
                product: p as Ix,
                qty: qty(q),
                value: money(list * q as f64 * disc),
                available_at_order: qty((q as f64 * coverage).floor() as i64),
                delivered_at,
            });
        }
        let mut changes = Vec::new();
        let z = if cust.key_account {
            -3.4 + if c.chaotic[ci] { 2.4 } else { 0.0 }
                + change_habit[ci]
                + 0.2 * lead as f64
                + 0.2 * f64::from(n_lines)
                + if matches!(ordered_at.month(), 11 | 12) {
                    0.9
                } else {
                    0.0
                }
                + r.normal(0.0, 0.4)
        } else {
            -3.0 + 0.05 * lead as f64
        };
        if r.chance(sigmoid(z)) {
            let n = 1 + usize::from(r.chance(0.5)) + usize::from(r.chance(0.25));
            for _ in 0..n {
                changes.push(ordered_at + Duration::hours(r.range(1, (lead * 24).max(2))));
            }
            changes.sort_unstable();
        }
        h.orders.push(PastOrder {
            name: format!("S{:06}", 900_000 + k),
            customer: ci as Ix,
            warehouse: wh,
            carrier,
            ordered_at,
            promised,
            changes,
            first_line,
            line_count: n_lines,
        });
    }

    // Purchase lines: replenishment of the catalogue, popular products more often.
    for k in 0..n_orders * 2 / 3 {
        let p = r.weighted(&product_cum).min(s.products.len() - 1);
        let si = c.product_supplier[p];
        let (_, country, lead, on_time, confirm) = SUPPLIERS[si];
        let lead = i64::from(lead) + r.range(-3, 5);
        // Received (or overdue) by now: the outcome is known.
        let latest = DAYS * 24 - (lead + 31) * 24;
        let ordered_at = since + Duration::hours(r.range(0, latest.max(1)));
        let original_planned = ordered_at + Duration::days(lead);
        let confirmed_at = if r.chance(f64::from(confirm)) {
            Some(ordered_at + Duration::hours(r.range(4, 96)))
        } else if r.chance(0.6) {
            Some(ordered_at + Duration::days(r.range(5, 20)))
        } else {
            None
        };
        let unconfirmed = confirmed_at.is_none_or(|t| t > ordered_at + Duration::days(4));
        let asian = matches!(country, "CN" | "VN" | "TW" | "IN");
        let q = r.range(10, 400);
        let z = -1.6
            + 4.5 * (0.8 - f64::from(on_time))
            + 0.03 * (lead - 30) as f64
            + if unconfirmed { 1.5 } else { 0.0 }
            + if asian && lunar_new_year(original_planned) {
                2.0
            } else {
                0.0
            }
            + 0.5 * (q as f64 / 100.0).ln()
            + r.normal(0.0, 0.6);
        let slip = if r.chance(sigmoid(z)) {
            r.range(4, 30)
        } else {
            r.range(-3, 2)
        };
        h.purchases.push(PastPurchase {
            po_ref: format!("P{:06}", 900_000 + k),
            supplier: si as Ix,
            product: p as Ix,
            warehouse: r.0.u32(0..s.warehouses.len() as u32),
            qty: qty(q),
            ordered_at,
            original_planned,
            confirmed_at,
            received_at: original_planned + Duration::days(slip),
        });
    }

    // Invoices: monthly business per customer, paid by habit, worse in stressed months.
    let months = (DAYS / 30) as usize;
    for (ci, cust) in s.customers.iter().enumerate() {
        let p = &cust.payments;
        let base = (f64::from(p.paid_late) + 0.5) / (f64::from(p.invoices_paid) + 1.0);
        let base_logit = (base / (1.0 - base).max(0.01)).ln();
        let per_month = match cust.tier {
            Tier::A => 4,
            Tier::B => 2,
            Tier::C => 1,
        };
        let mut stress: f64 = 0.0;
        for m in 0..months {
            stress = 0.75 * stress + r.normal(0.0, 0.7);
            for _ in 0..r.range(per_month / 2, per_month + 1) {
                let invoice_date = since
                    + Duration::days(m as i64 * 30)
                    + Duration::hours(r.range(0, 30 * 24 - 1));
                let due_date = invoice_date + Duration::days(i64::from(cust.payment_terms_days));
                let jan_feb = matches!(due_date.month(), 1 | 2);
                let z = base_logit + 1.1 * stress + if jan_feb { 0.5 } else { 0.0 };
                let paid = if r.chance(sigmoid(z)) {
                    let spread = if stress > 0.8 {
                        r.range(15, 80)
                    } else {
                        r.range(1, 25)
                    };
                    due_date + Duration::days(spread)
                } else {
                    due_date - Duration::days(r.range(0, 6))
                };
                let amount = money(r.normal(4000.0, 2500.0).abs() + 200.0)
                    * Decimal::from(if cust.tier == Tier::A { 4 } else { 1 });
                h.invoices.push(PastInvoice {
                    customer: ci as Ix,
                    amount,
                    invoice_date,
                    due_date,
                    paid_at: (paid <= now).then_some(paid),
                });
            }
        }
    }
    h.invoices.sort_by_key(|i| (i.invoice_date, i.customer));
    h
}
