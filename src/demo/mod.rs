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

mod history;
mod names;

use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;

use crate::domain::*;
use names::*;

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

fn generate_with_causes(cfg: &DemoConfig, progress: Progress) -> (Snapshot, Causes) {
    let mut r = Rand(fastrand::Rng::with_seed(cfg.seed));
    let now = cfg
        .now
        .duration_trunc(Duration::hours(1))
        .unwrap_or(cfg.now);
    let n_orders = cfg.orders.max(1);
    let n_customers = (n_orders / 4).clamp(300, 25_000);
    let n_products = (n_orders * 3 / 2).clamp(2_000, 40_000);

    let mut s = Snapshot {
        source: format!("demo seed={} orders={}", cfg.seed, n_orders),
        taken_at: now,
        currency: "EUR".into(),
        ..Snapshot::default()
    };

    // Warehouses: one pool, transfers take a day or two.
    for (i, (code, name, hours)) in [
        ("WH1", "Rotterdam", 24),
        ("WH2", "Duisburg", 24),
        ("WH3", "Lyon", 48),
    ]
    .into_iter()
    .enumerate()
    {
        s.warehouses.push(Warehouse {
            id: i as i64 + 1,
            code: code.into(),
            name: name.into(),
            pool: 1,
            transfer_hours: hours,
        });
    }

    for (i, (name, country, lead, on_time, _)) in SUPPLIERS.iter().enumerate() {
        s.suppliers.push(Supplier {
            id: 5000 + i as i64,
            name: (*name).into(),
            country: (*country).into(),
            lead_time_days: *lead,
            on_time_rate: Some(*on_time),
        });
    }
    for (i, (name, on_time, transit)) in CARRIERS.iter().enumerate() {
        s.carriers.push(Carrier {
            id: i as i64 + 1,
            name: (*name).into(),
            on_time_rate: Some(*on_time),
            transit_hours: *transit,
        });
    }

    // Products: popularity follows a power law; a share of SKUs is chronically scarce.
    progress("products", 0, n_products as u64);
    let mut popularity = Vec::with_capacity(n_products);
    let mut product_supplier = Vec::with_capacity(n_products);
    let mut dangerous = Vec::with_capacity(n_products);
    for i in 0..n_products {
        let (cat, dg, families) = r.pick(CATEGORIES);
        let (noun, variants) = r.pick(families);
        let variant = r.pick(variants);
        let brand = r.pick(BRANDS);
        let list = (r.normal(3.2, 1.1).exp()).clamp(0.8, 4000.0);
        let margin = r.normal(0.32, 0.08).clamp(0.12, 0.55);
        let cost = if r.chance(0.01) {
            None
        } else {
            Some(money(list * (1.0 - margin)))
        };
        s.products.push(Product {
            id: 10_000 + i as i64,
            sku: format!("SKU-{}", 10_000 + i),
            name: format!("{noun} {variant} {brand}"),
            category: (*cat).into(),
            cost,
            list_price: money(list),
            substitutes: Vec::new(),
        });
        popularity.push(1.0 / ((i + 1) as f64).powf(0.6));
        dangerous.push(*dg && r.chance(0.5));
        // Overseas suppliers carry most of the catalogue.
        product_supplier.push(r.0.usize(..SUPPLIERS.len()));
    }
    // Shuffle popularity so popular SKUs are spread over the catalogue.
    r.0.shuffle(&mut popularity);
    // Substitutes: nearby SKUs of the same category.
    for i in 0..n_products {
        let mut subs = Vec::new();
        for d in 1..40 {
            let j = (i + d * 7) % n_products;
            if j != i && s.products[j].category == s.products[i].category {
                subs.push(j as Ix);
                if subs.len() == 2 {
                    break;
                }
            }
        }
        if r.chance(0.6) {
            s.products[i].substitutes = subs;
        }
    }
    let product_cum = cumulative(popularity.iter().copied());

    // Customers: tiers, regions, credit terms and payment behaviour.
    for i in 0..n_customers {
        let (country, lang, prefixes, stems, suffixes) = r.pick(COUNTRIES);
        let tier = match r.f() {
            x if x < 0.08 => Tier::A,
            x if x < 0.35 => Tier::B,
            _ => Tier::C,
        };
        let late_prone = r.chance(0.08);
        let invoices_paid = r.range(6, 60) as u32;
        let late_share = if late_prone {
            r.f() * 0.5 + 0.3
        } else {
            r.f() * 0.18
        };
        let name = format!(
            "{} {} {}",
            r.pick(prefixes),
            r.pick(stems),
            r.pick(suffixes)
        );
        s.customers.push(Customer {
            id: 20_000 + i as i64,
            reference: format!("C{:05}", i + 1),
            email: Some(format!(
                "orders@{}.example",
                name.split_whitespace()
                    .next()
                    .unwrap_or("customer")
                    .to_lowercase()
            )),
            name,
            tier,
            key_account: tier == Tier::A || (tier == Tier::B && r.chance(0.3)),
            credit_limit: None, // sized from exposure below
            payment_terms_days: *r.pick(&[30u32, 30, 45, 60]),
            payments: PaymentHistory {
                invoices_paid,
                paid_late: (f64::from(invoices_paid) * late_share).round() as u32,
                avg_days_late: if late_prone {
                    r.range(12, 45) as f32
                } else {
                    r.range(2, 9) as f32
                },
                ..PaymentHistory::default()
            },
            lang: (*lang).into(),
            country: (*country).into(),
        });
    }
    let customer_cum = cumulative(s.customers.iter().map(|c| match c.tier {
        Tier::A => 6.0,
        Tier::B => 2.5,
        Tier::C => 1.0,
    }));
    // Customers that change their orders a lot (a few key accounts).
    let chaotic: Vec<bool> = s
        .customers
        .iter()
        .map(|c| c.key_account && r.chance(0.08))
        .collect();

    // Contract prices for A/B customers on some of the catalogue.
    let mut contract_of = std::collections::HashMap::new();
    for (ci, c) in s.customers.iter().enumerate() {
        if c.tier == Tier::C {
            continue;
        }
        let disc = if c.tier == Tier::A {
            r.range(10, 18)
        } else {
            r.range(5, 12)
        };
        for _ in 0..r.range(15, 40) {
            let p = r.weighted(&product_cum);
            let list = s.products[p].list_price;
            let price = (list * Decimal::from(100 - disc) / Decimal::ONE_HUNDRED).round_dp(2);
            let id = s.contract_prices.len() as i64 + 1;
            if contract_of.insert((ci, p), (price, disc)).is_none() {
                s.contract_prices.push(ContractPrice {
                    id,
                    customer: ci as Ix,
                    product: p as Ix,
                    price,
                    min_qty: Decimal::ZERO,
                    valid_from: Some(now - Duration::days(200)),
                    valid_to: Some(now + Duration::days(165)),
                    reference: format!("{}-{}", c.reference, s.products[p].sku),
                });
            }
        }
    }

    // Orders: open ones (confirmed, partly or not delivered) and recent deliveries.
    let n_delivered = n_orders / 2;
    let total = n_orders + n_delivered;
    let mut picking_seq = [1u32; 3];
    for (order_seq, k) in (1u32..).zip(0..total) {
        if k % 4096 == 0 {
            progress("orders", k as u64, total as u64);
        }
        let open = k < n_orders;
        let ci = r.weighted(&customer_cum);
        let cust = &s.customers[ci];
        let tier = cust.tier;
        let wh = if r.chance(0.9) {
            home_warehouse(cust)
        } else {
            r.0.u32(0..3)
        };
        let lead = match tier {
            Tier::A => r.range(2, 7),
            Tier::B => r.range(3, 10),
            Tier::C => r.range(5, 14),
        };
        // Open orders are mostly due in the coming two weeks; a few are already overdue.
        // Delivered ones were ordered in the last weeks.
        let (date_order, due) = if open {
            let due = if r.chance(0.03) {
                now - Duration::hours(r.range(12, 240))
            } else {
                now + Duration::hours(r.range(8, 14 * 24))
            };
            let date_order =
                (due - Duration::days(lead)).min(now - Duration::hours(r.range(1, 48)));
            (date_order, due.max(date_order + Duration::days(1)))
        } else {
            let date_order = now - Duration::days(r.range(5, 40)) - Duration::hours(r.range(0, 23));
            (date_order, date_order + Duration::days(lead))
        };
        let age_days = (now - date_order).num_days();
        let promised = if r.chance(0.04) {
            None
        } else {
            Some(due.duration_trunc(Duration::hours(1)).unwrap_or(due))
        };
        let oi = s.orders.len() as Ix;
        let first_line = s.lines.len() as Ix;
        let n_lines =
            (r.normal(DemoConfig::LINES_PER_ORDER, 2.0).round() as i64).clamp(1, 12) as u32;
        for seq in 1..=n_lines {
            let p = r.weighted(&product_cum);
            let product = &s.products[p];
            let list = product.list_price;
            let base_qty = if list > Decimal::from(200) {
                r.range(1, 6)
            } else {
                r.range(2, 60)
            };
            let q = qty(base_qty * if tier == Tier::A { 2 } else { 1 });
            // Pricing: contract price as a discount off list, tier discount otherwise;
            // order entry is right most of the time.
            let (mut price_unit, mut discount) = match contract_of.get(&(ci, p)) {
                Some(&(_, disc)) => (list, Decimal::from(disc)),
                None => (
                    list,
                    Decimal::from(match tier {
                        Tier::A => 8,
                        Tier::B => 4,
                        Tier::C => *r.pick(&[0i64, 0, 0, 2, 5]),
                    }),
                ),
            };
            if r.chance(0.007) {
                // Rep grants a deep discount to win the deal.
                discount = Decimal::from(r.range(22, 38));
            } else if r.chance(0.006) {
                // Stale price from an old quotation.
                price_unit =
                    (list * Decimal::from(r.range(82, 93)) / Decimal::ONE_HUNDRED).round_dp(2);
            }
            let delivered = if open {
                if age_days > 6 && r.chance(0.15) {
                    qty(base_qty / 2)
                } else {
                    Decimal::ZERO
                }
            } else {
                q
            };
            let invoiced = if open {
                delivered
            } else if r.chance(0.7) {
                q
            } else {
                Decimal::ZERO
            };
            s.lines.push(OrderLine {
                id: 100_000 + s.lines.len() as i64,
                order: oi,
                seq,
                product: p as Ix,
                qty: q,
                qty_delivered: delivered.min(q),
                qty_invoiced: invoiced.min(q),
                qty_reserved: Decimal::ZERO, // reserved below, in confirmation order
                price_unit,
                discount,
                promised: None,
            });
        }
        let note = if r.chance(0.03) {
            Some(
                r.pick(&[
                    "Please deliver to gate 4, before 14:00.",
                    "Call the site manager one day ahead.",
                    "Partial deliveries are not accepted.",
                    "Urgent: production line stopped.",
                ])
                .to_string(),
            )
        } else {
            None
        };
        s.orders.push(SalesOrder {
            id: 1_000 + k as i64,
            name: format!("S{:05}", order_seq),
            customer: ci as Ix,
            warehouse: wh,
            state: OrderState::Sale,
            date_order,
            promised,
            client_ref: if r.chance(0.5) {
                Some(format!("PO-{}", r.range(10_000, 99_999)))
            } else {
                None
            },
            note,
            first_line,
            line_count: n_lines,
            tax_rate: Decimal::ZERO,
        });

        // Delivery for the order.
        let w = wh as usize;
        let carrier = if r.chance(0.97) {
            Some(r.0.u32(0..CARRIERS.len() as u32))
        } else {
            None
        };
        let transit = carrier.map(|c| CARRIERS[c as usize].2 as i64).unwrap_or(24);
        let need = promised.unwrap_or(date_order + Duration::days(7));
        // Planners schedule the ship date to arrive on time, a few slip.
        let mut scheduled = need - Duration::hours(transit + r.range(4, 30));
        if r.chance(0.025) {
            scheduled = need + Duration::hours(r.range(6, 96));
        }
        let export = EXPORT_COUNTRIES.contains(&s.customers[ci].country.as_str());
        let lines_dg = (first_line..first_line + n_lines)
            .any(|li| dangerous[s.lines[li as usize].product as usize]);
        let mut required = vec![DocumentKind::DeliverySlip, DocumentKind::ProofOfDelivery];
        if export {
            required.push(DocumentKind::CommercialInvoice);
            required.push(DocumentKind::CertificateOfOrigin);
        }
        if lines_dg {
            required.push(DocumentKind::DangerousGoods);
        }
        let (state, done_at) = if open {
            (PickingState::Confirmed, None)
        } else {
            let shipped =
                (scheduled + Duration::hours(r.range(-12, 30))).min(now - Duration::hours(2));
            (PickingState::Done, Some(shipped))
        };
        s.pickings.push(Picking {
            id: 7_000 + k as i64,
            name: format!("WH{}/OUT/{:05}", w + 1, picking_seq[w]),
            order: oi,
            warehouse: wh,
            carrier,
            state,
            scheduled: Some(scheduled),
            done_at,
            tracking_ref: done_at.map(|_| format!("TRK{}", r.range(10_000_000, 99_999_999))),
            documents_required: required,
            documents_present: Vec::new(), // attached below, once shipping is known
        });
        picking_seq[w] += 1;

        // Order changes: key accounts change their orders; a few do it constantly.
        if open {
            let mean = if chaotic[ci] {
                3.0
            } else if s.customers[ci].key_account {
                0.4
            } else {
                0.15
            };
            let mut n = 0;
            while r.f() < mean / (mean + 1.0) && n < 8 {
                n += 1;
            }
            for _ in 0..n {
                let at = date_order + Duration::hours(r.range(1, (age_days * 24).max(2)));
                let at = at.min(now - Duration::minutes(30));
                let li = first_line + r.0.u32(0..n_lines);
                let line = &s.lines[li as usize];
                let (field, old, new) = match r.range(0, 2) {
                    0 => (
                        "product_uom_qty",
                        line.qty.to_string(),
                        (line.qty + Decimal::from(r.range(-5, 20)))
                            .max(Decimal::ONE)
                            .to_string(),
                    ),
                    1 => (
                        "commitment_date",
                        promised
                            .map(|p| p.format("%Y-%m-%d").to_string())
                            .unwrap_or_default(),
                        (need + Duration::days(r.range(-3, 7)))
                            .format("%Y-%m-%d")
                            .to_string(),
                    ),
                    _ => (
                        "order_line",
                        "".into(),
                        s.products[r.weighted(&product_cum)].sku.clone(),
                    ),
                };
                s.changes.push(OrderChange {
                    id: s.changes.len() as i64 + 1,
                    order: oi,
                    at,
                    field: field.into(),
                    old_value: old,
                    new_value: new,
                    author: (*r.pick(USERS)).into(),
                });
            }
        }
    }
    progress("orders", total as u64, total as u64);

    // Stock: sized from each product's open demand with a coverage that varies — most
    // SKUs are healthy, popular ones run tight, a few are out.
    progress("stock", 0, 1);
    let n_wh = s.warehouses.len();
    let mut demand = vec![Decimal::ZERO; n_products * n_wh];
    for l in &s.lines {
        let o = &s.orders[l.order as usize];
        if o.state == OrderState::Sale {
            demand[l.product as usize * n_wh + o.warehouse as usize] += l.open_qty();
        }
    }
    let mut on_hand = vec![Decimal::ZERO; n_products * n_wh];
    let mut scarce = vec![false; n_products * n_wh];
    for slot in 0..n_products * n_wh {
        let p = slot / n_wh;
        let d = demand[slot];
        let hot = popularity[p] > 0.08;
        let coverage = match r.f() {
            x if x < 0.006 => 0.0,
            x if x < if hot { 0.12 } else { 0.015 } => r.f() * 0.9,
            _ => 1.2 + r.f() * 3.0,
        };
        scarce[slot] = coverage < 1.0 && d > Decimal::ZERO;
        on_hand[slot] = if d > Decimal::ZERO {
            (d * money(coverage)).floor()
        } else {
            Decimal::from(r.range(0, 40))
        };
    }

    // Reservations: Odoo reserves in confirmation order, first come first served.
    let mut order_idx: Vec<usize> = (0..s.orders.len()).filter(|&i| open_order(&s, i)).collect();
    order_idx.sort_by_key(|&i| (s.orders[i].date_order, i));
    let mut reserved = vec![Decimal::ZERO; n_products * n_wh];
    for &oi in &order_idx {
        let o = &s.orders[oi];
        let w = o.warehouse as usize;
        for li in o.first_line..o.first_line + o.line_count {
            let l = &mut s.lines[li as usize];
            let slot = l.product as usize * n_wh + w;
            let take = l
                .open_qty()
                .min(on_hand[slot] - reserved[slot])
                .max(Decimal::ZERO);
            reserved[slot] += take;
            l.qty_reserved = take;
        }
    }

    // Shipping: the warehouse ships what is due and fully reserved; a few slip through.
    for pk in &mut s.pickings {
        if pk.state != PickingState::Confirmed {
            continue;
        }
        let o = &s.orders[pk.order as usize];
        let range = o.first_line as usize..(o.first_line + o.line_count) as usize;
        let ready = s.lines[range.clone()]
            .iter()
            .all(|l| l.qty_reserved >= l.open_qty());
        let due = pk.scheduled.is_some_and(|t| t < now - Duration::hours(4));
        if ready {
            pk.state = PickingState::Assigned;
        }
        if !(ready && due) || r.chance(0.02) {
            continue;
        }
        for l in &mut s.lines[range] {
            let slot = l.product as usize * n_wh + o.warehouse as usize;
            on_hand[slot] -= l.qty_reserved;
            reserved[slot] -= l.qty_reserved;
            l.qty_delivered = l.qty;
            l.qty_reserved = Decimal::ZERO;
            if r.chance(0.6) {
                l.qty_invoiced = l.qty;
            }
        }
        pk.state = PickingState::Done;
        let shipped = pk.scheduled.unwrap_or(now) + Duration::hours(r.range(0, 4));
        pk.done_at = Some(shipped.min(now - Duration::hours(1)));
        pk.tracking_ref = Some(format!("TRK{}", r.range(10_000_000, 99_999_999)));
    }

    // Quants; a few physical-count errors leave negative stock, as in real databases.
    for slot in 0..n_products * n_wh {
        let dirty = r.chance(0.0005);
        let (p, w) = (slot / n_wh, slot % n_wh);
        if on_hand[slot] == Decimal::ZERO
            && !dirty
            && demand[slot] == Decimal::ZERO
            && !r.chance(0.3)
        {
            continue;
        }
        s.stock.push(StockLevel {
            id: 30_000 + slot as i64,
            product: p as Ix,
            warehouse: w as Ix,
            on_hand: if dirty {
                -Decimal::from(r.range(1, 5))
            } else {
                on_hand[slot]
            },
            reserved: if dirty { Decimal::ZERO } else { reserved[slot] },
        });
    }

    // Documents: the warehouse prepares shipping documents a day or two ahead and a few
    // fall through; proof of delivery comes back days after shipping, most of the time.
    for pk in &mut s.pickings {
        let mut present = Vec::new();
        for d in &pk.documents_required {
            let ok = match d {
                DocumentKind::ProofOfDelivery => match pk.done_at {
                    Some(t) => (now - t).num_hours() > r.range(24, 120) && !r.chance(0.05),
                    None => false,
                },
                DocumentKind::DeliverySlip => true,
                _ => {
                    let hours_to_ship = pk.scheduled.map(|t| (t - now).num_hours()).unwrap_or(0);
                    (hours_to_ship > r.range(24, 96) || pk.done_at.is_some() || r.chance(0.9))
                        && !r.chance(0.015)
                }
            };
            if ok {
                present.push(*d);
            }
        }
        pk.documents_present = present;
    }
    progress("stock", 1, 1);

    // Inbound: buyers reorder scarce SKUs (not always in time) and replenish others.
    progress("purchases", 0, 1);
    let mut po_seq = 1u32;
    for slot in 0..n_products * n_wh {
        let (p, w) = (slot / n_wh, slot % n_wh);
        let d = demand[slot];
        let reorder = if scarce[slot] {
            r.chance(0.75)
        } else {
            d > Decimal::ZERO && r.chance(0.04)
        };
        if !reorder {
            continue;
        }
        let si = product_supplier[p];
        let (_, _, lead, on_time, confirm) = SUPPLIERS[si];
        let gap = (d - on_hand[slot]).max(Decimal::ONE);
        let q = (gap * money(0.8 + r.f() * 1.5)).ceil().max(Decimal::ONE);
        let ordered_at = now - Duration::days(r.range(2, i64::from(lead)));
        let original = ordered_at + Duration::days(i64::from(lead));
        // Unreliable suppliers slip; the slip is visible as a changed planned date.
        let slip = if r.chance(f64::from(on_time)) {
            0
        } else {
            r.range(3, 25)
        };
        let planned = original + Duration::days(slip);
        let confirmed = (now - ordered_at).num_days() > 1 && r.chance(f64::from(confirm));
        let received = if planned < now && r.chance(0.5) {
            (q * money(0.3 + r.f() * 0.4)).floor()
        } else {
            Decimal::ZERO
        };
        s.inbound.push(InboundLine {
            id: 60_000 + s.inbound.len() as i64,
            po_ref: format!("P{:05}", po_seq),
            supplier: si as Ix,
            product: p as Ix,
            warehouse: w as Ix,
            qty: q,
            qty_received: received,
            ordered_at,
            original_planned: Some(original),
            planned: Some(planned),
            confirmed,
            state: PurchaseState::Purchase,
        });
        po_seq += 1;
    }
    progress("purchases", 1, 1);

    // Invoices: from recent deliveries and older business; weak payers carry overdue ones.
    progress("invoices", 0, 1);
    let mut inv_seq = 1u32;
    let year = now.format("%Y").to_string();
    for (oi, o) in s.orders.iter().enumerate() {
        let lines = &s.lines[o.first_line as usize..(o.first_line + o.line_count) as usize];
        let invoiced: Decimal = lines.iter().map(|l| l.qty_invoiced * l.net_price()).sum();
        if invoiced <= Decimal::ZERO {
            continue;
        }
        let c = &s.customers[o.customer as usize];
        let invoice_date = o.date_order + Duration::days(r.range(1, 8));
        let due = invoice_date + Duration::days(i64::from(c.payment_terms_days));
        let paid = due < now && r.chance(0.85);
        if paid {
            continue;
        }
        s.invoices.push(Invoice {
            id: 80_000 + oi as i64,
            name: format!("INV/{year}/{:05}", inv_seq),
            customer: o.customer,
            amount_total: invoiced.round_dp(2),
            residual: invoiced.round_dp(2),
            invoice_date,
            due_date: due,
        });
        inv_seq += 1;
    }
    for (ci, c) in s.customers.iter().enumerate() {
        let late = c.payments.paid_late as f64 / f64::from(c.payments.invoices_paid.max(1));
        let n_old = if late > 0.3 {
            r.range(1, 4)
        } else if r.chance(0.3) {
            1
        } else {
            0
        };
        for _ in 0..n_old {
            let age = if late > 0.3 {
                r.range(30, 100)
            } else {
                r.range(10, 45)
            };
            let invoice_date = now - Duration::days(age);
            let amount = money(r.normal(4000.0, 2500.0).abs() + 200.0)
                * if c.tier == Tier::A {
                    Decimal::from(4)
                } else {
                    Decimal::ONE
                };
            s.invoices.push(Invoice {
                id: 90_000 + s.invoices.len() as i64,
                name: format!("INV/{year}/{:05}", inv_seq),
                customer: ci as Ix,
                amount_total: amount,
                residual: if r.chance(0.3) {
                    (amount / Decimal::TWO).round_dp(2)
                } else {
                    amount
                },
                invoice_date,
                due_date: invoice_date + Duration::days(i64::from(c.payment_terms_days)),
            });
            inv_seq += 1;
        }
    }

    // Credit limits: finance sizes them from the usual exposure; most have headroom, some
    // have grown into their limit, a few have none set.
    let mut exposure = vec![Decimal::ZERO; s.customers.len()];
    for inv in &s.invoices {
        exposure[inv.customer as usize] += inv.residual;
    }
    for l in &s.lines {
        let o = &s.orders[l.order as usize];
        if o.state == OrderState::Sale {
            exposure[o.customer as usize] += l.uninvoiced_value();
        }
    }
    for (ci, c) in s.customers.iter_mut().enumerate() {
        if r.chance(0.06) {
            continue; // no limit set
        }
        let factor = if r.chance(0.05) {
            0.8 + r.f() * 0.25
        } else {
            1.4 + r.f() * 2.0
        };
        let base = exposure[ci].max(Decimal::from(5_000));
        let limit = (base * money(factor) / Decimal::from(1000)).round() * Decimal::from(1000);
        c.credit_limit = Some(limit.max(Decimal::from(5_000)));
    }
    progress("invoices", 1, 1);

    // History: a year of resolved exceptions, shaped by the same causes.
    let n_hist = (n_orders / 3).clamp(200, 20_000);
    for i in 0..n_hist {
        let ci = r.weighted(&customer_cum);
        let p = r.weighted(&product_cum);
        let (kind, resolutions): (&str, &[(&str, &str)]) = match r.range(0, 7) {
            0 => (
                "stock_shortage",
                &[
                    (
                        "transfer",
                        "stock moved from another warehouse; shipped one day late",
                    ),
                    (
                        "split_shipment",
                        "partial delivery on time, rest shipped with the next inbound",
                    ),
                    (
                        "substitute",
                        "customer accepted the substitute at the contract price",
                    ),
                    ("reschedule", "customer agreed a new date"),
                ],
            ),
            1 => (
                "allocation_conflict",
                &[
                    (
                        "reallocate",
                        "reservation moved to the tier A order; the other order shipped a week later",
                    ),
                    ("reschedule", "lower-priority customer agreed to wait"),
                ],
            ),
            2 => (
                "price_mismatch",
                &[
                    (
                        "apply_price",
                        "price corrected to the contract before invoicing",
                    ),
                    (
                        "route_for_approval",
                        "manager approved the discount to keep the deal",
                    ),
                ],
            ),
            3 => (
                "credit_hold",
                &[
                    (
                        "contact_customer",
                        "customer paid the overdue invoice; order released",
                    ),
                    (
                        "release_credit_hold",
                        "finance released the order against a payment promise",
                    ),
                ],
            ),
            4 => (
                "shipment_delay",
                &[
                    ("contact_customer", "customer informed; no complaint"),
                    (
                        "reschedule",
                        "delivery moved; customer asked for a discount",
                    ),
                ],
            ),
            5 => (
                "supplier_delay",
                &[
                    (
                        "expedite_purchase",
                        "supplier shipped by air; arrived 9 days earlier",
                    ),
                    ("resource_purchase", "bought locally at a higher price"),
                ],
            ),
            6 => (
                "missing_documents",
                &[(
                    "request_documents",
                    "carrier sent the signed proof of delivery",
                )],
            ),
            _ => (
                "repeated_changes",
                &[("contact_customer", "buyer agreed to a weekly forecast")],
            ),
        };
        let (resolution, outcome) = r.pick(resolutions);
        let detected_at = now - Duration::days(r.range(7, 365));
        s.history.push(PastException {
            id: i as i64 + 1,
            kind: kind.into(),
            order_ref: format!("S{:05}", r.range(1, 99_999)),
            customer: ci as Ix,
            product: Some(p as Ix),
            detected_at,
            resolved_at: detected_at + Duration::hours(r.range(2, 120)),
            resolution: (*resolution).into(),
            outcome: (*outcome).into(),
        });
    }
    plant_canaries(&mut s);
    (
        s,
        Causes {
            popularity,
            product_supplier,
            chaotic,
        },
    )
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
