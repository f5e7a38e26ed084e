//! A snapshot written as Odoo records, the way a distributor's Odoo would hold it: partners
//! with tier tags, warehouses with stock locations and operation types, quants, purchase
//! orders, sales orders with lines, outgoing moves (reservations) and pickings with
//! attachments, customer pricelists, posted invoices with their payments (receivable lines
//! and partial reconciliations, from each customer's payment history), and tracked changes
//! in the chatter.
//!
//! Facts Odoo does not hold (a supplier's on-time rate, a purchase line's first planned
//! date) are not written: the connector reads them from configuration or does without,
//! exactly as it must against a real server.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

use super::{Db, FakeUser};
use crate::domain::*;
use crate::odoo::wire::format_datetime;

/// Partner ids: customers and vendors live in separate ranges of res.partner.
pub const CUSTOMER_BASE: i64 = 100_000;
/// Vendors.
pub const SUPPLIER_BASE: i64 = 200_000;
const AUTHOR_BASE: i64 = 300_000;
const PRICELIST_BASE: i64 = 500_000;
const MESSAGE_BASE: i64 = 1_000_000;
const FIELD_BASE: i64 = 7_000;
/// Ids of the confirmation messages (and their tracking values), per order id.
const STATE_MESSAGE_OFFSET: i64 = 5_000_000;
/// Ids of the `amount_untaxed` tracking values that accompany a quantity edit.
const AMOUNT_VALUE_OFFSET: i64 = 8_000_000;
/// Receipt moves of purchase lines, by purchase line id.
const RECEIPT_BASE: i64 = 9_000_000;

fn rec(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn f(d: Decimal) -> Value {
    json!(d.to_f64().unwrap_or(0.0))
}

fn dt(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| json!(format_datetime(t)))
        .unwrap_or(Value::Bool(false))
}

fn date(t: DateTime<Utc>) -> Value {
    json!(t.format("%Y-%m-%d").to_string())
}

fn opt(s: Option<&str>) -> Value {
    s.map(|x| json!(x)).unwrap_or(Value::Bool(false))
}

/// Load `snap` into a fresh database of `version`.
pub fn load(version: u32, snap: &Snapshot, users: &[FakeUser]) -> Db {
    let mut db = Db::new(version);
    let written = json!(format_datetime(snap.taken_at));
    let put = |db: &mut Db, model: &str, mut r: Map<String, Value>| {
        r.entry("write_date").or_insert_with(|| written.clone());
        db.insert(model, r)
    };

    put(
        &mut db,
        "res.currency",
        rec(vec![("id", json!(1)), ("name", json!(snap.currency))]),
    );
    put(
        &mut db,
        "res.partner",
        rec(vec![
            ("id", json!(1)),
            ("name", json!("Demo Distributor")),
            ("is_company", json!(true)),
        ]),
    );
    put(
        &mut db,
        "res.company",
        rec(vec![
            ("id", json!(1)),
            ("name", json!("Demo Distributor")),
            ("currency_id", json!(1)),
            ("partner_id", json!(1)),
            (
                "account_use_credit_limit",
                json!(snap.customers.iter().any(|c| c.credit_limit.is_some())),
            ),
        ]),
    );
    for u in users {
        put(
            &mut db,
            "res.partner",
            rec(vec![
                ("id", json!(u.partner_id)),
                ("name", json!(u.name)),
                ("commercial_partner_id", json!(u.partner_id)),
                ("email", json!(format!("{}@example.com", u.login))),
            ]),
        );
        put(
            &mut db,
            "res.users",
            rec(vec![
                ("id", json!(u.id)),
                ("login", json!(u.login)),
                ("name", json!(u.name)),
                ("partner_id", json!(u.partner_id)),
                ("email", json!(format!("{}@example.com", u.login))),
                ("active", json!(true)),
                ("share", json!(false)),
            ]),
        );
    }
    put(
        &mut db,
        "discuss.channel",
        rec(vec![
            ("id", json!(1)),
            ("name", json!("general")),
            ("channel_type", json!("channel")),
            (
                "description",
                json!("General announcements for all employees."),
            ),
            ("channel_partner_ids", json!([3, 7])),
            ("member_count", json!(2)),
        ]),
    );
    put(
        &mut db,
        "mail.activity.type",
        rec(vec![("id", json!(4)), ("name", json!("To-Do"))]),
    );
    for (i, m) in [
        "mail.message",
        "sale.order",
        "discuss.channel",
        "stock.picking",
        "purchase.order",
    ]
    .iter()
    .enumerate()
    {
        put(
            &mut db,
            "ir.model",
            rec(vec![
                ("id", json!(180 + i as i64)),
                ("model", json!(m)),
                ("name", json!(m)),
            ]),
        );
    }
    // ir.model.fields of mail.message, for webhook field selections.
    let mm_fields: Vec<String> = db
        .models
        .get("mail.message")
        .map(|m| m.fields.keys().cloned().collect())
        .unwrap_or_default();
    for (i, name) in mm_fields.iter().enumerate() {
        put(
            &mut db,
            "ir.model.fields",
            rec(vec![
                ("id", json!(2000 + i as i64)),
                ("name", json!(name)),
                ("model", json!("mail.message")),
                ("model_id", json!(180)),
            ]),
        );
    }

    // Warehouses, their stock locations and operation types.
    for (i, w) in snap.warehouses.iter().enumerate() {
        let (view, stock, tin, tout) = (
            100 + 2 * i as i64,
            101 + 2 * i as i64,
            200 + i as i64,
            300 + i as i64,
        );
        put(
            &mut db,
            "stock.location",
            rec(vec![
                ("id", json!(view)),
                ("name", json!(w.code)),
                ("complete_name", json!(w.code)),
                ("usage", json!("view")),
                ("warehouse_id", json!(w.id)),
            ]),
        );
        put(
            &mut db,
            "stock.location",
            rec(vec![
                ("id", json!(stock)),
                ("name", json!("Stock")),
                ("complete_name", json!(format!("{}/Stock", w.code))),
                ("usage", json!("internal")),
                ("location_id", json!(view)),
                ("warehouse_id", json!(w.id)),
                ("active", json!(true)),
            ]),
        );
        put(
            &mut db,
            "stock.picking.type",
            rec(vec![
                ("id", json!(tin)),
                ("name", json!(format!("{}: Receipts", w.name))),
                ("code", json!("incoming")),
                ("warehouse_id", json!(w.id)),
            ]),
        );
        put(
            &mut db,
            "stock.picking.type",
            rec(vec![
                ("id", json!(tout)),
                ("name", json!(format!("{}: Delivery Orders", w.name))),
                ("code", json!("outgoing")),
                ("warehouse_id", json!(w.id)),
            ]),
        );
        put(
            &mut db,
            "stock.warehouse",
            rec(vec![
                ("id", json!(w.id)),
                ("name", json!(w.name)),
                ("code", json!(w.code)),
                ("company_id", json!(1)),
                ("lot_stock_id", json!(stock)),
                ("view_location_id", json!(view)),
                ("in_type_id", json!(tin)),
                ("out_type_id", json!(tout)),
                ("active", json!(true)),
                ("delivery_steps", json!("ship_only")),
                ("reception_steps", json!("one_step")),
            ]),
        );
    }
    let stock_loc = |w: Ix| 101 + 2 * i64::from(w);
    let wh_id = |w: Ix| snap.warehouses.get(w as usize).map(|x| x.id).unwrap_or(0);

    // Products and categories.
    let mut categ: BTreeMap<&str, i64> = BTreeMap::new();
    for p in &snap.products {
        let n = categ.len() as i64 + 10;
        categ.entry(p.category.as_str()).or_insert(n);
    }
    for (name, id) in &categ {
        put(
            &mut db,
            "product.category",
            rec(vec![
                ("id", json!(id)),
                ("name", json!(name)),
                ("complete_name", json!(format!("All / {name}"))),
            ]),
        );
    }
    for p in &snap.products {
        let subs: Vec<i64> = p
            .substitutes
            .iter()
            .filter_map(|&s| snap.products.get(s as usize))
            .map(|s| s.id)
            .collect();
        let display = format!("[{}] {}", p.sku, p.name);
        let mut r = rec(vec![
            ("id", json!(p.id)),
            ("name", json!(p.name)),
            ("display_name", json!(display)),
            ("default_code", json!(p.sku)),
            (
                "categ_id",
                json!(categ.get(p.category.as_str()).copied().unwrap_or(10)),
            ),
            ("standard_price", p.cost.map(f).unwrap_or(json!(0.0))),
            ("list_price", f(p.list_price)),
            ("lst_price", f(p.list_price)),
            ("product_tmpl_id", json!(p.id)),
            ("optional_product_ids", json!(subs)),
            ("sale_ok", json!(true)),
            ("purchase_ok", json!(true)),
            ("active", json!(true)),
        ]);
        if version >= 18 {
            r.insert("type".into(), json!("consu"));
            r.insert("is_storable".into(), json!(true));
        } else {
            r.insert("type".into(), json!("product"));
            r.insert("detailed_type".into(), json!("product"));
        }
        put(&mut db, "product.template", r.clone());
        put(&mut db, "product.product", r);
    }

    for q in &snap.stock {
        put(
            &mut db,
            "stock.quant",
            rec(vec![
                ("id", json!(q.id)),
                (
                    "product_id",
                    json!(snap.products.get(q.product as usize).map(|p| p.id)),
                ),
                ("location_id", json!(stock_loc(q.warehouse))),
                ("warehouse_id", json!(wh_id(q.warehouse))),
                ("quantity", f(q.on_hand)),
                ("reserved_quantity", f(q.reserved)),
                ("company_id", json!(1)),
            ]),
        );
    }

    // Partners: tags, payment terms, customers, vendors.
    put(
        &mut db,
        "res.partner.category",
        rec(vec![("id", json!(1)), ("name", json!("Tier A"))]),
    );
    put(
        &mut db,
        "res.partner.category",
        rec(vec![("id", json!(2)), ("name", json!("Tier B"))]),
    );
    put(
        &mut db,
        "res.partner.category",
        rec(vec![("id", json!(3)), ("name", json!("Key Account"))]),
    );
    let mut terms: BTreeMap<u32, i64> = BTreeMap::new();
    for c in &snap.customers {
        let n = terms.len() as i64 + 1;
        terms.entry(c.payment_terms_days).or_insert(n);
    }
    let days_field = if version <= 16 { "days" } else { "nb_days" };
    for (days, id) in &terms {
        put(
            &mut db,
            "account.payment.term",
            rec(vec![
                ("id", json!(id)),
                ("name", json!(format!("{days} Days"))),
                ("line_ids", json!([id])),
            ]),
        );
        put(
            &mut db,
            "account.payment.term.line",
            rec(vec![
                ("id", json!(id)),
                ("payment_id", json!(id)),
                (days_field, json!(days)),
            ]),
        );
    }
    let mut countries: BTreeMap<&str, i64> = BTreeMap::new();
    for c in snap
        .customers
        .iter()
        .map(|c| c.country.as_str())
        .chain(snap.suppliers.iter().map(|s| s.country.as_str()))
    {
        let n = countries.len() as i64 + 1;
        countries.entry(c).or_insert(n);
    }
    for (code, id) in &countries {
        put(
            &mut db,
            "res.country",
            rec(vec![
                ("id", json!(id)),
                ("name", json!(code)),
                ("code", json!(code)),
            ]),
        );
    }
    let mut pricelist_of: HashMap<Ix, i64> = HashMap::new();
    for cp in &snap.contract_prices {
        let id = PRICELIST_BASE
            + snap
                .customers
                .get(cp.customer as usize)
                .map(|c| c.id)
                .unwrap_or(0);
        if pricelist_of.insert(cp.customer, id).is_none() {
            put(
                &mut db,
                "product.pricelist",
                rec(vec![("id", json!(id)), ("name", json!(cp.reference))]),
            );
        }
        put(
            &mut db,
            "product.pricelist.item",
            rec(vec![
                ("id", json!(cp.id)),
                ("pricelist_id", json!(id)),
                ("applied_on", json!("0_product_variant")),
                ("compute_price", json!("fixed")),
                (
                    "product_id",
                    json!(snap.products.get(cp.product as usize).map(|p| p.id)),
                ),
                ("fixed_price", f(cp.price)),
                ("date_start", dt(cp.valid_from)),
                ("date_end", dt(cp.valid_to)),
                ("min_quantity", f(cp.min_qty)),
            ]),
        );
    }
    for (ci, c) in snap.customers.iter().enumerate() {
        let id = CUSTOMER_BASE + c.id;
        let mut tags = match c.tier {
            Tier::A => vec![1],
            Tier::B => vec![2],
            Tier::C => vec![],
        };
        if c.key_account {
            tags.push(3);
        }
        let lang = if c.lang == "en" {
            "en_US".to_string()
        } else {
            format!("{}_{}", c.lang, c.lang.to_uppercase())
        };
        put(
            &mut db,
            "res.partner",
            rec(vec![
                ("id", json!(id)),
                ("name", json!(c.name)),
                ("ref", json!(c.reference)),
                ("is_company", json!(true)),
                ("commercial_partner_id", json!(id)),
                ("customer_rank", json!(1)),
                ("supplier_rank", json!(0)),
                ("category_id", json!(tags)),
                ("credit_limit", c.credit_limit.map(f).unwrap_or(json!(0.0))),
                ("use_partner_credit_limit", json!(c.credit_limit.is_some())),
                (
                    "property_payment_term_id",
                    json!(terms.get(&c.payment_terms_days)),
                ),
                (
                    "property_product_pricelist",
                    json!(pricelist_of.get(&(ci as Ix))),
                ),
                ("lang", json!(lang)),
                ("country_code", json!(c.country)),
                ("country_id", json!(countries.get(c.country.as_str()))),
                ("email", opt(c.email.as_deref())),
                ("active", json!(true)),
            ]),
        );
    }
    for s in &snap.suppliers {
        let id = SUPPLIER_BASE + s.id;
        put(
            &mut db,
            "res.partner",
            rec(vec![
                ("id", json!(id)),
                ("name", json!(s.name)),
                ("is_company", json!(true)),
                ("commercial_partner_id", json!(id)),
                ("customer_rank", json!(0)),
                ("supplier_rank", json!(1)),
                ("country_code", json!(s.country)),
                ("country_id", json!(countries.get(s.country.as_str()))),
                ("active", json!(true)),
            ]),
        );
    }
    let cust_partner =
        |c: Ix| CUSTOMER_BASE + snap.customers.get(c as usize).map(|c| c.id).unwrap_or(0);

    for inv in &snap.invoices {
        let state = if inv.residual.is_zero() {
            "paid"
        } else if inv.residual < inv.amount_total {
            "partial"
        } else {
            "not_paid"
        };
        put(
            &mut db,
            "account.move",
            rec(vec![
                ("id", json!(inv.id)),
                ("name", json!(inv.name)),
                ("move_type", json!("out_invoice")),
                ("state", json!("posted")),
                ("payment_state", json!(state)),
                ("partner_id", json!(cust_partner(inv.customer))),
                ("commercial_partner_id", json!(cust_partner(inv.customer))),
                ("amount_total", f(inv.amount_total)),
                ("amount_untaxed", f(inv.amount_total)),
                ("amount_residual", f(inv.residual)),
                ("amount_residual_signed", f(inv.residual)),
                ("invoice_date", date(inv.invoice_date)),
                ("invoice_date_due", date(inv.due_date)),
                ("currency_id", json!(1)),
                ("company_id", json!(1)),
            ]),
        );
    }

    write_settlements(&mut db, snap, &put);

    // Purchase orders (one per reference) and their lines.
    let mut po_ids: HashMap<&str, i64> = HashMap::new();
    let confirmed_field = if version >= 19 {
        "acknowledged"
    } else {
        "mail_reception_confirmed"
    };
    for b in &snap.inbound {
        let next = po_ids.len() as i64 + 1;
        let po = *po_ids.entry(b.po_ref.as_str()).or_insert_with(|| next);
        if !db
            .models
            .get("purchase.order")
            .is_some_and(|m| m.rows.contains_key(&po))
        {
            let state = match b.state {
                PurchaseState::Draft => "draft",
                PurchaseState::Sent => "sent",
                PurchaseState::Purchase => "purchase",
                PurchaseState::Done => "done",
                PurchaseState::Cancel => "cancel",
            };
            put(
                &mut db,
                "purchase.order",
                rec(vec![
                    ("id", json!(po)),
                    ("name", json!(b.po_ref)),
                    (
                        "partner_id",
                        json!(
                            SUPPLIER_BASE
                                + snap
                                    .suppliers
                                    .get(b.supplier as usize)
                                    .map(|s| s.id)
                                    .unwrap_or(0)
                        ),
                    ),
                    ("state", json!(state)),
                    ("date_order", dt(Some(b.ordered_at))),
                    (
                        "date_approve",
                        if matches!(b.state, PurchaseState::Draft | PurchaseState::Sent) {
                            json!(false)
                        } else {
                            dt(Some(b.ordered_at))
                        },
                    ),
                    ("date_planned", dt(b.planned)),
                    ("picking_type_id", json!(200 + i64::from(b.warehouse))),
                    (confirmed_field, json!(b.confirmed)),
                    ("currency_id", json!(1)),
                    ("company_id", json!(1)),
                ]),
            );
        }
        put(
            &mut db,
            "purchase.order.line",
            rec(vec![
                ("id", json!(b.id)),
                ("order_id", json!(po)),
                (
                    "product_id",
                    json!(snap.products.get(b.product as usize).map(|p| p.id)),
                ),
                (
                    "name",
                    json!(
                        snap.products
                            .get(b.product as usize)
                            .map(|p| p.name.as_str())
                            .unwrap_or("")
                    ),
                ),
                ("product_qty", f(b.qty)),
                ("qty_received", f(b.qty_received)),
                ("date_planned", dt(b.planned)),
                ("display_type", json!(false)),
                ("currency_id", json!(1)),
                // A confirmed line's receipt move (purchase_stock).
                (
                    "move_ids",
                    if matches!(b.state, PurchaseState::Draft | PurchaseState::Sent) {
                        json!([])
                    } else {
                        json!([RECEIPT_BASE + b.id])
                    },
                ),
            ]),
        );
    }

    for (i, c) in snap.carriers.iter().enumerate() {
        put(
            &mut db,
            "delivery.carrier",
            rec(vec![
                ("id", json!(c.id.max(i as i64 + 1))),
                ("name", json!(c.name)),
            ]),
        );
    }
    let carrier_id = |c: Ix| {
        snap.carriers
            .get(c as usize)
            .map(|x| x.id.max(c as i64 + 1))
    };

    // Sales orders, lines and reservations.
    for o in &snap.orders {
        let lines = snap.order_lines(o);
        let delivered = lines.iter().filter(|l| l.open_qty().is_zero()).count();
        let status = if lines.is_empty() || delivered == 0 {
            "pending"
        } else if delivered == lines.len() {
            "full"
        } else {
            "partial"
        };
        let (state, locked) = match (o.state, version) {
            (OrderState::Done, 16) => ("done", false),
            (OrderState::Done, _) => ("sale", true),
            (s, _) => (s.as_str(), false),
        };
        put(
            &mut db,
            "sale.order",
            rec(vec![
                ("id", json!(o.id)),
                ("name", json!(o.name)),
                ("partner_id", json!(cust_partner(o.customer))),
                ("partner_invoice_id", json!(cust_partner(o.customer))),
                ("partner_shipping_id", json!(cust_partner(o.customer))),
                ("warehouse_id", json!(wh_id(o.warehouse))),
                ("state", json!(state)),
                ("locked", json!(locked)),
                ("date_order", dt(Some(o.date_order))),
                ("commitment_date", dt(o.promised)),
                (
                    "pricelist_id",
                    pricelist_of
                        .get(&o.customer)
                        .map(|p| json!(p))
                        .unwrap_or(Value::Bool(false)),
                ),
                ("client_order_ref", opt(o.client_ref.as_deref())),
                (
                    "note",
                    o.note
                        .as_deref()
                        .map(|n| json!(format!("<p>{}</p>", crate::odoo::wire::escape_html(n))))
                        .unwrap_or(json!(false)),
                ),
                ("user_id", json!(2)),
                ("delivery_status", json!(status)),
                ("currency_id", json!(1)),
                ("company_id", json!(1)),
                (
                    "order_line",
                    json!(lines.iter().map(|l| l.id).collect::<Vec<_>>()),
                ),
                (
                    "amount_untaxed",
                    f(lines.iter().map(|l| l.qty * l.net_price()).sum()),
                ),
                (
                    "amount_total",
                    f(lines.iter().map(|l| l.qty * l.net_price()).sum()),
                ),
            ]),
        );
        let out_picking = snap.pickings.iter().find(|p| {
            snap.orders
                .get(p.order as usize)
                .is_some_and(|x| x.id == o.id)
                && !matches!(p.state, PickingState::Done | PickingState::Cancel)
        });
        for l in lines {
            let product = snap.products.get(l.product as usize);
            put(
                &mut db,
                "sale.order.line",
                rec(vec![
                    ("id", json!(l.id)),
                    ("order_id", json!(o.id)),
                    ("sequence", json!(l.seq * 10)),
                    ("product_id", json!(product.map(|p| p.id))),
                    (
                        "name",
                        json!(product.map(|p| p.name.as_str()).unwrap_or("")),
                    ),
                    ("product_uom_qty", f(l.qty)),
                    ("qty_delivered", f(l.qty_delivered)),
                    ("qty_invoiced", f(l.qty_invoiced)),
                    ("price_unit", f(l.price_unit)),
                    ("discount", f(l.discount)),
                    ("display_type", json!(false)),
                    ("state", json!(state)),
                    ("warehouse_id", json!(wh_id(o.warehouse))),
                    ("currency_id", json!(1)),
                ]),
            );
            let open = l.open_qty();
            if open > Decimal::ZERO && o.state == OrderState::Sale {
                let mv_state = if l.qty_reserved >= open {
                    "assigned"
                } else if l.qty_reserved > Decimal::ZERO {
                    "partially_available"
                } else {
                    "confirmed"
                };
                let qty_field = if version <= 16 {
                    "reserved_availability"
                } else {
                    "quantity"
                };
                put(
                    &mut db,
                    "stock.move",
                    rec(vec![
                        ("id", json!(l.id)),
                        ("sale_line_id", json!(l.id)),
                        ("product_id", json!(product.map(|p| p.id))),
                        // Make-to-order: the receipt of the purchase bought for the line.
                        (
                            "move_orig_ids",
                            json!(
                                snap.supply_links
                                    .iter()
                                    .filter(|k| snap
                                        .lines
                                        .get(k.line as usize)
                                        .is_some_and(|x| x.id == l.id))
                                    .filter_map(|k| snap.inbound.get(k.inbound as usize))
                                    .map(|b| RECEIPT_BASE + b.id)
                                    .collect::<Vec<_>>()
                            ),
                        ),
                        ("product_uom_qty", f(open)),
                        (qty_field, f(l.qty_reserved)),
                        ("state", json!(mv_state)),
                        ("picking_type_id", json!(300 + i64::from(o.warehouse))),
                        ("picking_id", json!(out_picking.map(|p| p.id))),
                        (
                            "reference",
                            json!(out_picking.map(|p| p.name.as_str()).unwrap_or("")),
                        ),
                    ]),
                );
            }
        }
    }

    // Pickings and their document attachments.
    let mut att = 1;
    for p in &snap.pickings {
        let state = match p.state {
            PickingState::Waiting => "waiting",
            PickingState::Confirmed => "confirmed",
            PickingState::Assigned => "assigned",
            PickingState::Done => "done",
            PickingState::Cancel => "cancel",
        };
        let order = snap.orders.get(p.order as usize);
        put(
            &mut db,
            "stock.picking",
            rec(vec![
                ("id", json!(p.id)),
                ("name", json!(p.name)),
                ("sale_id", json!(order.map(|o| o.id))),
                ("origin", json!(order.map(|o| o.name.as_str()))),
                ("partner_id", json!(order.map(|o| cust_partner(o.customer)))),
                ("picking_type_id", json!(300 + i64::from(p.warehouse))),
                ("picking_type_code", json!("outgoing")),
                ("state", json!(state)),
                ("scheduled_date", dt(p.scheduled)),
                // Odoo's deadline is the order's commitment date, else its expected date
                // (the order date: no customer lead time).
                (
                    "date_deadline",
                    dt(order.map(|o| o.promised.unwrap_or(o.date_order))),
                ),
                ("date_done", dt(p.done_at)),
                ("carrier_id", json!(p.carrier.and_then(carrier_id))),
                ("carrier_tracking_ref", opt(p.tracking_ref.as_deref())),
                (
                    "x_required_documents",
                    json!(
                        p.documents_required
                            .iter()
                            .map(|d| d.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                ),
                ("location_id", json!(stock_loc(p.warehouse))),
            ]),
        );
        for d in &p.documents_present {
            let prefix = match d {
                DocumentKind::DeliverySlip => "SLIP",
                DocumentKind::CommercialInvoice => "CINV",
                DocumentKind::CertificateOfOrigin => "COO",
                DocumentKind::DangerousGoods => "DGD",
                DocumentKind::ProofOfDelivery => "POD",
            };
            put(
                &mut db,
                "ir.attachment",
                rec(vec![
                    ("id", json!(att)),
                    (
                        "name",
                        json!(format!("{prefix}-{}.pdf", p.name.replace('/', "-"))),
                    ),
                    ("res_model", json!("stock.picking")),
                    ("res_id", json!(p.id)),
                ]),
            );
            att += 1;
        }
    }

    // Tracked changes, shaped as Odoo 17/18 track them: confirming an order is a message
    // tracking `state`; a quantity edit is one message tracking `amount_untaxed` and
    // `amount_total` (the line quantity itself is not tracked); other changes one value.
    let mut field_ids: BTreeMap<&str, i64> = BTreeMap::new();
    let mut authors: BTreeMap<&str, i64> = BTreeMap::new();
    let field_id = |name: &'static str, field_ids: &mut BTreeMap<&str, i64>| {
        let n = field_ids.len() as i64;
        *field_ids.entry(name).or_insert(FIELD_BASE + n)
    };
    let tracked = |field: (&'static str, i64), old: Value, new: Value| -> Vec<(&str, Value)> {
        let (side_old, side_new) = match (&old, &new) {
            (Value::Number(_), _) => ("old_value_float", "new_value_float"),
            _ => ("old_value_char", "new_value_char"),
        };
        let tf = if version <= 16 {
            ("field", json!(field.0))
        } else {
            ("field_id", json!(field.1))
        };
        vec![tf, (side_old, old), (side_new, new)]
    };
    let message = |db: &mut Db,
                   mid: i64,
                   order: &crate::domain::SalesOrder,
                   at: DateTime<Utc>,
                   author: i64,
                   values: Vec<(i64, Vec<(&str, Value)>)>| {
        put(
            db,
            "mail.message",
            rec(vec![
                ("id", json!(mid)),
                ("model", json!("sale.order")),
                ("res_id", json!(order.id)),
                ("record_name", json!(order.name)),
                ("body", json!("")),
                ("author_id", json!(author)),
                ("date", dt(Some(at))),
                ("message_type", json!("notification")),
                ("subtype_id", json!(2)),
                (
                    "tracking_value_ids",
                    json!(values.iter().map(|v| v.0).collect::<Vec<_>>()),
                ),
            ]),
        );
        for (id, fields) in values {
            let mut r = rec(vec![("id", json!(id)), ("mail_message_id", json!(mid))]);
            r.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
            put(db, "mail.tracking.value", r);
        }
    };
    let state_field = field_id("state", &mut field_ids);
    let admin = AUTHOR_BASE;
    authors.insert("Mitchell Admin", admin);
    for o in &snap.orders {
        if matches!(o.state, OrderState::Sale | OrderState::Done) {
            let v = tracked(
                ("state", state_field),
                json!("Quotation"),
                json!("Sales Order"),
            );
            message(
                &mut db,
                MESSAGE_BASE + STATE_MESSAGE_OFFSET + o.id,
                o,
                o.date_order,
                admin,
                vec![(STATE_MESSAGE_OFFSET + o.id, v)],
            );
        }
    }
    for ch in &snap.changes {
        let n = authors.len() as i64;
        let aid = *authors.entry(ch.author.as_str()).or_insert(AUTHOR_BASE + n);
        let Some(order) = snap.orders.get(ch.order as usize) else {
            continue;
        };
        let values = if ch.field == "product_uom_qty" {
            let num = |v: &str| json!(v.parse::<f64>().unwrap_or(0.0));
            let (untaxed, total) = (
                field_id("amount_untaxed", &mut field_ids),
                field_id("amount_total", &mut field_ids),
            );
            vec![
                (
                    AMOUNT_VALUE_OFFSET + ch.id,
                    tracked(
                        ("amount_untaxed", untaxed),
                        num(&ch.old_value),
                        num(&ch.new_value),
                    ),
                ),
                (
                    ch.id,
                    tracked(
                        ("amount_total", total),
                        num(&ch.old_value),
                        num(&ch.new_value),
                    ),
                ),
            ]
        } else {
            let n = field_ids.len() as i64;
            let fid = *field_ids.entry(ch.field.as_str()).or_insert(FIELD_BASE + n);
            let tf = if version <= 16 {
                ("field", json!(ch.field))
            } else {
                ("field_id", json!(fid))
            };
            vec![(
                ch.id,
                vec![
                    tf,
                    ("old_value_char", json!(ch.old_value)),
                    ("new_value_char", json!(ch.new_value)),
                ],
            )]
        };
        message(&mut db, MESSAGE_BASE + ch.id, order, ch.at, aid, values);
    }
    for (name, id) in &field_ids {
        put(
            &mut db,
            "ir.model.fields",
            rec(vec![
                ("id", json!(id)),
                ("name", json!(name)),
                ("model", json!("sale.order")),
                ("model_id", json!(181)),
            ]),
        );
    }
    for (name, id) in &authors {
        put(
            &mut db,
            "res.partner",
            rec(vec![("id", json!(id)), ("name", json!(name))]),
        );
    }
    put(
        &mut db,
        "mail.message.subtype",
        rec(vec![("id", json!(1)), ("name", json!("Discussions"))]),
    );
    put(
        &mut db,
        "mail.message.subtype",
        rec(vec![("id", json!(2)), ("name", json!("Note"))]),
    );
    db
}

/// How [`load`] writes a row (stamping its `write_date`).
type Put<'a> = dyn Fn(&mut Db, &str, Map<String, Value>) -> i64 + 'a;

/// Move ids of the paid invoices written from the customers' payment history.
const PAID_INVOICE_BASE: i64 = 20_000_000;
/// Move ids of the payments (journal entries), and their receivable lines' ids.
const PAYMENT_BASE: i64 = 30_000_000;

/// Customer payments as Odoo keeps them: each invoice's receivable line
/// (`account.move.line`), each payment's receivable line (a journal entry), and the partial
/// reconciliation between the two whose `max_date` is when the payment came (as on the
/// real 17 and 18 servers). The open invoices get their lines (a partly paid one, the
/// payment of what is no longer open); each customer's [`PaymentHistory`] becomes that
/// many paid invoices, the late ones spread evenly over the year and late by the average.
fn write_settlements(db: &mut Db, snap: &Snapshot, put: &Put<'_>) {
    let mut next_partial = 1i64;
    let mut next_payment = PAYMENT_BASE;
    let mut settle = |db: &mut Db,
                      line: i64,
                      partner: i64,
                      invoice_date: DateTime<Utc>,
                      paid: DateTime<Utc>,
                      amount: Decimal|
     -> i64 {
        let (payment, partial) = (next_payment, next_partial);
        next_payment += 1;
        next_partial += 1;
        put(
            db,
            "account.move",
            rec(vec![
                ("id", json!(payment)),
                (
                    "name",
                    json!(format!(
                        "PBNK1/{}/{:05}",
                        paid.format("%Y"),
                        payment - PAYMENT_BASE + 1
                    )),
                ),
                ("move_type", json!("entry")),
                ("state", json!("posted")),
                ("payment_state", json!("not_paid")),
                ("partner_id", json!(partner)),
                ("commercial_partner_id", json!(partner)),
                ("amount_total", f(amount)),
                ("amount_residual", json!(0.0)),
                ("currency_id", json!(1)),
                ("company_id", json!(1)),
            ]),
        );
        put(
            db,
            "account.move.line",
            rec(vec![
                ("id", json!(payment)),
                ("move_id", json!(payment)),
                ("partner_id", json!(partner)),
                ("date", date(paid)),
                ("date_maturity", date(paid)),
                ("balance", f(-amount)),
                ("amount_residual", json!(0.0)),
                ("reconciled", json!(true)),
                ("matched_debit_ids", json!([partial])),
                ("parent_state", json!("posted")),
                ("account_type", json!("asset_receivable")),
            ]),
        );
        put(
            db,
            "account.partial.reconcile",
            rec(vec![
                ("id", json!(partial)),
                ("debit_move_id", json!(line)),
                ("credit_move_id", json!(payment)),
                ("amount", f(amount)),
                ("max_date", date(paid.max(invoice_date))),
            ]),
        );
        partial
    };
    let receivable = |id: i64,
                      partner: i64,
                      invoice_date: DateTime<Utc>,
                      due: DateTime<Utc>,
                      amount: Decimal,
                      residual: Decimal,
                      partials: Vec<i64>| {
        rec(vec![
            ("id", json!(id)),
            ("move_id", json!(id)),
            ("partner_id", json!(partner)),
            ("date", date(invoice_date)),
            ("date_maturity", date(due)),
            ("balance", f(amount)),
            ("amount_residual", f(residual)),
            ("reconciled", json!(residual.is_zero())),
            ("matched_credit_ids", json!(partials)),
            ("parent_state", json!("posted")),
            ("account_type", json!("asset_receivable")),
        ])
    };
    let partner = |c: Ix| CUSTOMER_BASE + snap.customers.get(c as usize).map(|c| c.id).unwrap_or(0);

    for inv in &snap.invoices {
        let p = partner(inv.customer);
        let paid = inv.amount_total - inv.residual;
        let partials = if paid > Decimal::ZERO {
            let on = (inv.invoice_date + chrono::Duration::days(5)).min(snap.taken_at);
            vec![settle(db, inv.id, p, inv.invoice_date, on, paid)]
        } else {
            Vec::new()
        };
        let line = receivable(
            inv.id,
            p,
            inv.invoice_date,
            inv.due_date,
            inv.amount_total,
            inv.residual,
            partials,
        );
        put(db, "account.move.line", line);
    }

    let mut seq = 0i64;
    for (ci, c) in snap.customers.iter().enumerate() {
        let h = &c.payments;
        let n = i64::from(h.invoices_paid);
        let late = i64::from(h.paid_late.min(h.invoices_paid));
        let total_late = (f64::from(h.avg_days_late) * late as f64)
            .round()
            .max(late as f64) as i64;
        let p = partner(ci as Ix);
        let mut late_seen = 0;
        for j in 0..n {
            // Due between 350 and 60 days ago: even 45 days late, paid before today.
            let due = snap.taken_at - chrono::Duration::days(60 + j * 290 / n.max(1));
            let invoice_date = due - chrono::Duration::days(i64::from(c.payment_terms_days));
            let is_late = (j + 1) * late / n > j * late / n;
            let paid_on = if is_late {
                let days = total_late / late + i64::from(late_seen < total_late % late);
                late_seen += 1;
                due + chrono::Duration::days(days)
            } else {
                due - chrono::Duration::days(3)
            };
            let id = PAID_INVOICE_BASE + seq;
            seq += 1;
            let amount = Decimal::from(1000);
            let name = format!("INV/{}/P{:06}", invoice_date.format("%Y"), seq);
            put(
                db,
                "account.move",
                rec(vec![
                    ("id", json!(id)),
                    ("name", json!(name)),
                    ("move_type", json!("out_invoice")),
                    ("state", json!("posted")),
                    ("payment_state", json!("paid")),
                    ("partner_id", json!(p)),
                    ("commercial_partner_id", json!(p)),
                    ("amount_total", f(amount)),
                    ("amount_untaxed", f(amount)),
                    ("amount_residual", json!(0.0)),
                    ("amount_residual_signed", json!(0.0)),
                    ("invoice_date", date(invoice_date)),
                    ("invoice_date_due", date(due)),
                    ("currency_id", json!(1)),
                    ("company_id", json!(1)),
                ]),
            );
            let partial = settle(db, id, p, invoice_date, paid_on, amount);
            let line = receivable(
                id,
                p,
                invoice_date,
                due,
                amount,
                Decimal::ZERO,
                vec![partial],
            );
            put(db, "account.move.line", line);
        }
    }
}
