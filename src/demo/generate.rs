//! The generator, one phase a function, in the order the phases run.
//!
//! Every phase draws from the one random stream in a fixed order, so the order of the
//! calls in [`generate_with_causes`] and of the draws inside each phase is part of the
//! output: the same seed must keep giving the same distributor (the scan golden test
//! pins it). A phase reads what earlier phases built from the snapshot, or from the
//! small structs they return.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;

use super::names::*;
use super::{
    Causes, DemoConfig, Progress, Rand, cumulative, home_warehouse, money, open_order,
    plant_canaries, qty,
};
use crate::domain::*;

/// Contract price and discount (percent) per `(customer, product)`.
type Contracts = HashMap<(usize, usize), (Decimal, i64)>;

/// Runs every phase; the snapshot plus the hidden traits the history is drawn from.
pub(super) fn generate_with_causes(cfg: &DemoConfig, progress: Progress) -> (Snapshot, Causes) {
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

    partners(&mut s);
    progress("products", 0, n_products as u64);
    let catalogue = products(&mut r, &mut s, n_products);
    let clientele = customers(&mut r, &mut s, n_customers);
    let contracts = contract_prices(&mut r, &mut s, &catalogue.cumulative, now);
    let market = Market {
        now,
        product_cum: &catalogue.cumulative,
        customer_cum: &clientele.cumulative,
        contracts: &contracts,
        dangerous: &catalogue.dangerous,
        chaotic: &clientele.chaotic,
    };
    orders(&mut r, &mut s, &market, n_orders, progress);

    progress("stock", 0, 1);
    let mut stock = size_stock(&mut r, &s, &catalogue.popularity);
    reserve(&mut s, &mut stock);
    ship(&mut r, &mut s, &mut stock, now);
    quants(&mut r, &mut s, &stock);
    documents(&mut r, &mut s, now);
    progress("stock", 1, 1);

    progress("purchases", 0, 1);
    inbound(&mut r, &mut s, &stock, &catalogue.supplier, now);
    progress("purchases", 1, 1);

    progress("invoices", 0, 1);
    invoices(&mut r, &mut s, now);
    credit_limits(&mut r, &mut s);
    progress("invoices", 1, 1);

    past_exceptions(&mut r, &mut s, &market, n_orders);
    plant_canaries(&mut s);
    (
        s,
        Causes {
            popularity: catalogue.popularity,
            product_supplier: catalogue.supplier,
            chaotic: clientele.chaotic,
        },
    )
}

/// What the order phases draw from: the clock and the skew of customers and products.
struct Market<'a> {
    now: DateTime<Utc>,
    product_cum: &'a [f64],
    customer_cum: &'a [f64],
    contracts: &'a Contracts,
    /// Per product: dangerous goods (needs a DG declaration to ship).
    dangerous: &'a [bool],
    /// Per customer: changes their orders constantly.
    chaotic: &'a [bool],
}

/// Warehouses, suppliers and carriers (fixed lists, no randomness).
fn partners(s: &mut Snapshot) {
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
}

/// The catalogue's hidden traits, per product.
struct Catalogue {
    popularity: Vec<f64>,
    /// Index into `SUPPLIERS`.
    supplier: Vec<usize>,
    dangerous: Vec<bool>,
    /// Cumulative popularity, for weighted draws.
    cumulative: Vec<f64>,
}

/// Products: popularity follows a power law; a share of SKUs is chronically scarce.
fn products(r: &mut Rand, s: &mut Snapshot, n_products: usize) -> Catalogue {
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
    let cumulative = cumulative(popularity.iter().copied());
    Catalogue {
        popularity,
        supplier: product_supplier,
        dangerous,
        cumulative,
    }
}

/// The customer base's hidden traits, per customer.
struct Clientele {
    /// Cumulative order weight by tier, for weighted draws.
    cumulative: Vec<f64>,
    chaotic: Vec<bool>,
}

/// Customers: tiers, regions, credit terms and payment behaviour.
fn customers(r: &mut Rand, s: &mut Snapshot, n_customers: usize) -> Clientele {
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
            credit_limit: None, // sized from exposure in `credit_limits`
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
    let cumulative = cumulative(s.customers.iter().map(|c| match c.tier {
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
    Clientele {
        cumulative,
        chaotic,
    }
}

/// Contract prices for A/B customers on some of the catalogue.
fn contract_prices(
    r: &mut Rand,
    s: &mut Snapshot,
    product_cum: &[f64],
    now: DateTime<Utc>,
) -> Contracts {
    let mut contract_of = HashMap::new();
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
            let p = r.weighted(product_cum);
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
    contract_of
}

/// Orders: open ones (confirmed, partly or not delivered) and recent deliveries, each
/// with its lines, its delivery and (open ones) the changes made to it.
fn orders(r: &mut Rand, s: &mut Snapshot, m: &Market, n_orders: usize, progress: Progress) {
    let now = m.now;
    let n_delivered = n_orders / 2;
    let total = n_orders + n_delivered;
    let mut picking_seq = [1u32; 3];
    for (order_seq, k) in (1u32..).zip(0..total) {
        if k % 4096 == 0 {
            progress("orders", k as u64, total as u64);
        }
        let open = k < n_orders;
        let ci = r.weighted(m.customer_cum);
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
        let draft = Draft {
            order: s.orders.len() as Ix,
            customer: ci,
            tier,
            open,
            age_days,
        };
        let first_line = s.lines.len() as Ix;
        let n_lines =
            (r.normal(DemoConfig::LINES_PER_ORDER, 2.0).round() as i64).clamp(1, 12) as u32;
        for seq in 1..=n_lines {
            order_line(r, s, m, &draft, seq);
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
        let need = promised.unwrap_or(date_order + Duration::days(7));
        delivery(r, s, m, &draft, k, need, &mut picking_seq);
        if open {
            order_changes(r, s, m, &draft, need);
        }
    }
    progress("orders", total as u64, total as u64);
}

/// The order being generated, as its line, delivery and change phases see it.
struct Draft {
    /// Index the order gets in `Snapshot::orders`.
    order: Ix,
    customer: usize,
    tier: Tier,
    open: bool,
    /// Whole days since the order date.
    age_days: i64,
}

/// One order line, priced from the contract or the tier discount.
fn order_line(r: &mut Rand, s: &mut Snapshot, m: &Market, o: &Draft, seq: u32) {
    let p = r.weighted(m.product_cum);
    let product = &s.products[p];
    let list = product.list_price;
    let base_qty = if list > Decimal::from(200) {
        r.range(1, 6)
    } else {
        r.range(2, 60)
    };
    let q = qty(base_qty * if o.tier == Tier::A { 2 } else { 1 });
    // Pricing: contract price as a discount off list, tier discount otherwise;
    // order entry is right most of the time.
    let (mut price_unit, mut discount) = match m.contracts.get(&(o.customer, p)) {
        Some(&(_, disc)) => (list, Decimal::from(disc)),
        None => (
            list,
            Decimal::from(match o.tier {
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
        price_unit = (list * Decimal::from(r.range(82, 93)) / Decimal::ONE_HUNDRED).round_dp(2);
    }
    let delivered = if o.open {
        if o.age_days > 6 && r.chance(0.15) {
            qty(base_qty / 2)
        } else {
            Decimal::ZERO
        }
    } else {
        q
    };
    let invoiced = if o.open {
        delivered
    } else if r.chance(0.7) {
        q
    } else {
        Decimal::ZERO
    };
    s.lines.push(OrderLine {
        id: 100_000 + s.lines.len() as i64,
        order: o.order,
        seq,
        product: p as Ix,
        qty: q,
        qty_delivered: delivered.min(q),
        qty_invoiced: invoiced.min(q),
        qty_reserved: Decimal::ZERO, // reserved in `reserve`, in confirmation order
        price_unit,
        discount,
        promised: None,
    });
}

/// The delivery (outgoing picking) of the order just pushed, needed at `need`.
fn delivery(
    r: &mut Rand,
    s: &mut Snapshot,
    m: &Market,
    o: &Draft,
    k: usize,
    need: DateTime<Utc>,
    picking_seq: &mut [u32; 3],
) {
    let now = m.now;
    let order = &s.orders[o.order as usize];
    let (wh, first_line, n_lines) = (order.warehouse, order.first_line, order.line_count);
    let w = wh as usize;
    let carrier = if r.chance(0.97) {
        Some(r.0.u32(0..CARRIERS.len() as u32))
    } else {
        None
    };
    let transit = carrier.map(|c| CARRIERS[c as usize].2 as i64).unwrap_or(24);
    // Planners schedule the ship date to arrive on time, a few slip.
    let mut scheduled = need - Duration::hours(transit + r.range(4, 30));
    if r.chance(0.025) {
        scheduled = need + Duration::hours(r.range(6, 96));
    }
    let export = EXPORT_COUNTRIES.contains(&s.customers[o.customer].country.as_str());
    let lines_dg = (first_line..first_line + n_lines)
        .any(|li| m.dangerous[s.lines[li as usize].product as usize]);
    let mut required = vec![DocumentKind::DeliverySlip, DocumentKind::ProofOfDelivery];
    if export {
        required.push(DocumentKind::CommercialInvoice);
        required.push(DocumentKind::CertificateOfOrigin);
    }
    if lines_dg {
        required.push(DocumentKind::DangerousGoods);
    }
    let (state, done_at) = if o.open {
        (PickingState::Confirmed, None)
    } else {
        let shipped = (scheduled + Duration::hours(r.range(-12, 30))).min(now - Duration::hours(2));
        (PickingState::Done, Some(shipped))
    };
    s.pickings.push(Picking {
        id: 7_000 + k as i64,
        name: format!("WH{}/OUT/{:05}", w + 1, picking_seq[w]),
        order: o.order,
        warehouse: wh,
        carrier,
        state,
        scheduled: Some(scheduled),
        done_at,
        tracking_ref: done_at.map(|_| format!("TRK{}", r.range(10_000_000, 99_999_999))),
        documents_required: required,
        documents_present: Vec::new(), // attached in `documents`, once shipping is known
    });
    picking_seq[w] += 1;
}

/// Order changes: key accounts change their orders; a few do it constantly.
fn order_changes(r: &mut Rand, s: &mut Snapshot, m: &Market, o: &Draft, need: DateTime<Utc>) {
    let now = m.now;
    let order = &s.orders[o.order as usize];
    let (date_order, promised, first_line, n_lines) = (
        order.date_order,
        order.promised,
        order.first_line,
        order.line_count,
    );
    let mean = if m.chaotic[o.customer] {
        3.0
    } else if s.customers[o.customer].key_account {
        0.4
    } else {
        0.15
    };
    let mut n = 0;
    while r.f() < mean / (mean + 1.0) && n < 8 {
        n += 1;
    }
    for _ in 0..n {
        let at = date_order + Duration::hours(r.range(1, (o.age_days * 24).max(2)));
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
                s.products[r.weighted(m.product_cum)].sku.clone(),
            ),
        };
        s.changes.push(OrderChange {
            id: s.changes.len() as i64 + 1,
            order: o.order,
            at,
            field: field.into(),
            old_value: old,
            new_value: new,
            author: (*r.pick(USERS)).into(),
        });
    }
}

/// Stock per `(product, warehouse)` slot (`product * n_wh + warehouse`), as the stock
/// phases size, reserve and ship it.
struct Stock {
    n_wh: usize,
    /// Open demand.
    demand: Vec<Decimal>,
    on_hand: Vec<Decimal>,
    reserved: Vec<Decimal>,
    /// Coverage below demand when sized.
    scarce: Vec<bool>,
}

/// Stock: sized from each product's open demand with a coverage that varies — most
/// SKUs are healthy, popular ones run tight, a few are out.
fn size_stock(r: &mut Rand, s: &Snapshot, popularity: &[f64]) -> Stock {
    let n_products = s.products.len();
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
    Stock {
        n_wh,
        reserved: vec![Decimal::ZERO; n_products * n_wh],
        demand,
        on_hand,
        scarce,
    }
}

/// Reservations: Odoo reserves in confirmation order, first come first served.
fn reserve(s: &mut Snapshot, stock: &mut Stock) {
    let n_wh = stock.n_wh;
    let mut order_idx: Vec<usize> = (0..s.orders.len()).filter(|&i| open_order(s, i)).collect();
    order_idx.sort_by_key(|&i| (s.orders[i].date_order, i));
    for &oi in &order_idx {
        let o = &s.orders[oi];
        let w = o.warehouse as usize;
        for li in o.first_line..o.first_line + o.line_count {
            let l = &mut s.lines[li as usize];
            let slot = l.product as usize * n_wh + w;
            let take = l
                .open_qty()
                .min(stock.on_hand[slot] - stock.reserved[slot])
                .max(Decimal::ZERO);
            stock.reserved[slot] += take;
            l.qty_reserved = take;
        }
    }
}

/// Shipping: the warehouse ships what is due and fully reserved; a few slip through.
fn ship(r: &mut Rand, s: &mut Snapshot, stock: &mut Stock, now: DateTime<Utc>) {
    let n_wh = stock.n_wh;
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
            stock.on_hand[slot] -= l.qty_reserved;
            stock.reserved[slot] -= l.qty_reserved;
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
}

/// Quants; a few physical-count errors leave negative stock, as in real databases.
fn quants(r: &mut Rand, s: &mut Snapshot, stock: &Stock) {
    let n_wh = stock.n_wh;
    for slot in 0..stock.on_hand.len() {
        let dirty = r.chance(0.0005);
        let (p, w) = (slot / n_wh, slot % n_wh);
        if stock.on_hand[slot] == Decimal::ZERO
            && !dirty
            && stock.demand[slot] == Decimal::ZERO
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
                stock.on_hand[slot]
            },
            reserved: if dirty {
                Decimal::ZERO
            } else {
                stock.reserved[slot]
            },
        });
    }
}

/// Documents: the warehouse prepares shipping documents a day or two ahead and a few
/// fall through; proof of delivery comes back days after shipping, most of the time.
fn documents(r: &mut Rand, s: &mut Snapshot, now: DateTime<Utc>) {
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
}

/// Inbound: buyers reorder scarce SKUs (not always in time) and replenish others.
fn inbound(
    r: &mut Rand,
    s: &mut Snapshot,
    stock: &Stock,
    product_supplier: &[usize],
    now: DateTime<Utc>,
) {
    let n_wh = stock.n_wh;
    let mut po_seq = 1u32;
    for slot in 0..stock.demand.len() {
        let (p, w) = (slot / n_wh, slot % n_wh);
        let d = stock.demand[slot];
        let reorder = if stock.scarce[slot] {
            r.chance(0.75)
        } else {
            d > Decimal::ZERO && r.chance(0.04)
        };
        if !reorder {
            continue;
        }
        let si = product_supplier[p];
        let (_, _, lead, on_time, confirm) = SUPPLIERS[si];
        let gap = (d - stock.on_hand[slot]).max(Decimal::ONE);
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
}

/// Invoices: from recent deliveries and older business; weak payers carry overdue ones.
fn invoices(r: &mut Rand, s: &mut Snapshot, now: DateTime<Utc>) {
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
}

/// Credit limits: finance sizes them from the usual exposure; most have headroom, some
/// have grown into their limit, a few have none set.
fn credit_limits(r: &mut Rand, s: &mut Snapshot) {
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
}

/// History: a year of resolved exceptions, shaped by the same causes.
fn past_exceptions(r: &mut Rand, s: &mut Snapshot, m: &Market, n_orders: usize) {
    let now = m.now;
    let n_hist = (n_orders / 3).clamp(200, 20_000);
    for i in 0..n_hist {
        let ci = r.weighted(m.customer_cum);
        let p = r.weighted(m.product_cum);
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
}
