//! The demo distributor: a seeded generator of a believable wholesale distributor of
//! industrial supplies (MRO) — three regional warehouses in one shared pool, a few hundred
//! customers across tiers with contracts and credit terms, thousands of SKUs with
//! substitutes and skewed demand, overseas suppliers with variable lead times and
//! unreliable confirmations, carriers of differing reliability, open orders, recent
//! deliveries, open invoices, order changes and a history of resolved exceptions.
//!
//! Nothing here labels an exception. The generator draws *conditions* — demand skewed to
//! popular SKUs, stock sized from a coverage that varies by product, reservations made in
//! confirmation order the way Odoo makes them, credit limits sized from each customer's
//! usual exposure, supplier confirmations drawn from the supplier's reliability — and the
//! exception core finds whatever arises from them. The same seed and size give the same
//! data; size scales to a million order lines for benchmarks.

mod generate;
mod history;
mod names;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::*;
use generate::generate_with_causes;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Random seed.
    pub seed: u64,
    /// Number of open (confirmed, undelivered) sales orders.
    pub orders: usize,
    /// The present moment; all dates are relative to it.
    pub now: DateTime<Utc>,
}

impl DemoConfig {
    /// The default demo: 1,500 open orders (about 6,000 open lines).
    pub const DEFAULT_ORDERS: usize = 1500;
    /// Average lines per order.
    pub const LINES_PER_ORDER: f64 = 4.0;
    /// Open lines per generated open order, measured: the warehouse ships what is due and
    /// reserved, so about one order in seven is delivered by the time of the snapshot.
    pub const OPEN_LINES_PER_ORDER: f64 = 3.4;

    /// A config sized to roughly `lines` open order lines.
    pub fn with_lines(seed: u64, lines: usize, now: DateTime<Utc>) -> DemoConfig {
        DemoConfig {
            seed,
            orders: ((lines as f64 / Self::OPEN_LINES_PER_ORDER).ceil() as usize).max(1),
            now,
        }
    }
}

/// Progress callback: (phase, done, total).
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Deterministic random numbers with the distributions the generator needs.
struct Rand(fastrand::Rng);

impl Rand {
    fn f(&mut self) -> f64 {
        self.0.f64()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.f64() < p
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo { lo } else { self.0.i64(lo..=hi) }
    }
    fn pick<'t, T>(&mut self, xs: &'t [T]) -> &'t T {
        // Callers only pass non-empty constant lists.
        &xs[self.0.usize(..xs.len())]
    }
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = self.0.f64().max(1e-12);
        let u2 = self.0.f64();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Draw an index from cumulative weights.
    fn weighted(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = self.0.f64() * total;
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len().saturating_sub(1))
    }
}

fn money(x: f64) -> Decimal {
    Decimal::from_f64_retain(x).unwrap_or_default().round_dp(2)
}

fn qty(x: i64) -> Decimal {
    Decimal::from(x.max(0))
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn open_order(s: &Snapshot, i: usize) -> bool {
    s.orders[i].state == OrderState::Sale
        && s.lines[s.orders[i].first_line as usize
            ..(s.orders[i].first_line + s.orders[i].line_count) as usize]
            .iter()
            .any(|l| l.open_qty() > Decimal::ZERO)
}

/// Generate the demo distributor.
pub fn generate(cfg: &DemoConfig, progress: Progress) -> Snapshot {
    generate_with_causes(cfg, progress).0
}

/// Generate the demo distributor and the year of history before it (past orders,
/// purchase lines and invoices whose outcomes follow from the same hidden causes).
pub fn generate_with_history(cfg: &DemoConfig, progress: Progress) -> (Snapshot, History) {
    let (s, causes) = generate_with_causes(cfg, progress);
    let h = history::generate(cfg.seed, &s, &causes);
    (s, h)
}

/// The traits the generator draws and never writes into the snapshot: the history is
/// drawn from the same ones, so the past predicts the present only through what the
/// data shows.
struct Causes {
    /// Relative demand per product.
    popularity: Vec<f64>,
    /// Index into `SUPPLIERS` of each product's supplier.
    product_supplier: Vec<usize>,
    /// Customers that change their orders constantly.
    chaotic: Vec<bool>,
}

/// The warehouse that serves a customer's country.
fn home_warehouse(c: &Customer) -> Ix {
    match c.country.as_str() {
        "NL" | "BE" | "GB" => 0,
        "DE" | "PL" | "CH" => 1,
        _ => 2,
    }
}

/// The phone number in the canary order's note (a reserved fictional Amsterdam number).
pub const CANARY_PHONE: &str = "+31-20-5550142";

/// Values of every data class that appear nowhere else in the demo, so a test can look for
/// them in everything sent to a model: the contact e-mail and phone in one customer's order
/// note, that customer's credit limit (with cents no other limit has).
#[derive(Debug, Clone)]
pub struct Canaries {
    /// The order whose note carries the contact data.
    pub order: String,
    /// The customer's reference (`C00192`).
    pub customer: String,
    /// personal_contact: the customer's e-mail.
    pub email: String,
    /// personal_contact: the phone number in the note.
    pub phone: String,
    /// credit_payment: the credit limit as text shows it.
    pub credit_limit: String,
}

/// The first open order's customer becomes the canary: an accounts-payable e-mail (the
/// others are `orders@`), a limit with 37 cents, and a note asking for confirmations by
/// e-mail or phone — the kind of contact data real order notes carry.
fn plant_canaries(s: &mut Snapshot) {
    let Some(oi) = (0..s.orders.len()).find(|&i| open_order(s, i)) else {
        return;
    };
    let ci = s.orders[oi].customer as usize;
    let Some(c) = s.customers.get_mut(ci) else {
        return;
    };
    let domain = c
        .email
        .as_deref()
        .and_then(|e| e.split_once('@'))
        .map_or("customer.example", |(_, d)| d)
        .to_string();
    let email = format!("payables.{}@{domain}", c.reference.to_lowercase());
    c.email = Some(email.clone());
    c.credit_limit = Some(c.credit_limit.unwrap_or(Decimal::from(25_000)) + Decimal::new(37, 2));
    s.orders[oi].note = Some(format!(
        "Send order confirmations to {email} or call {CANARY_PHONE} before delivery."
    ));
}

/// The canary values of a demo snapshot (see [`Canaries`]); `None` for a snapshot without
/// an open order.
pub fn canaries(s: &Snapshot) -> Option<Canaries> {
    let o = s
        .orders
        .iter()
        .find(|o| o.note.as_deref().is_some_and(|n| n.contains(CANARY_PHONE)))?;
    let c = s.customers.get(o.customer as usize)?;
    Some(Canaries {
        order: o.name.clone(),
        customer: c.reference.clone(),
        email: c.email.clone()?,
        phone: CANARY_PHONE.to_string(),
        credit_limit: crate::core::fmt::Money(c.credit_limit?).to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
    }

    #[test]
    fn same_seed_same_data() {
        let cfg = DemoConfig {
            seed: 7,
            orders: 300,
            now: now(),
        };
        let a = generate(&cfg, &mut |_, _, _| {});
        let b = generate(&cfg, &mut |_, _, _| {});
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    #[test]
    fn references_look_like_odoo() {
        let s = generate(
            &DemoConfig {
                seed: 1,
                orders: 200,
                now: now(),
            },
            &mut |_, _, _| {},
        );
        assert_eq!(s.orders[41].name, "S00042");
        assert!(
            s.pickings
                .iter()
                .all(|p| p.name.starts_with("WH") && p.name.contains("/OUT/"))
        );
        assert!(
            s.inbound
                .iter()
                .all(|b| b.po_ref.starts_with('P') && b.po_ref.len() == 6)
        );
        let (validity, findings) = s.check();
        assert!(validity.lines.iter().all(|&v| v), "{findings:?}");
    }

    #[test]
    fn sized_by_lines() {
        let s = generate(&DemoConfig::with_lines(3, 4000, now()), &mut |_, _, _| {});
        let open = s.open_line_count();
        assert!((3000..5000).contains(&open), "{open}");
        assert!(s.customers.len() >= 300);
        assert!(s.products.len() >= 2000);
    }
}
