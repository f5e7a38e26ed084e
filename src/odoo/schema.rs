//! What the connector reads from Odoo, per version: every field rename between 16, 17,
//! 18 and 19 lives here and nowhere else. [`tables`] is the read plan: for each model,
//! its domain, the fields it needs, the fields it can do without (dropped, with a warning,
//! when `fields_get` does not show them — a missing module, or missing rights), and which
//! detector depends on it when the whole model is unreadable.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::config::OdooConfig;
use super::wire;
use crate::domain::OrderState;

/// Field names that differ between versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Major server version.
    pub major: u32,
}

impl Schema {
    /// `stock.move`: quantity reserved (16 `reserved_availability`; 17+ `quantity`).
    pub fn move_reserved_qty(self) -> &'static str {
        if self.major <= 16 {
            "reserved_availability"
        } else {
            "quantity"
        }
    }

    /// `mail.tracking.value`: the changed field (16 `field`, a name; 17+ `field_id`).
    pub fn tracking_field(self) -> &'static str {
        if self.major <= 16 {
            "field"
        } else {
            "field_id"
        }
    }

    /// `purchase.order`: the vendor confirmed the order (19 `acknowledged`).
    pub fn po_confirmed(self) -> &'static str {
        if self.major >= 19 {
            "acknowledged"
        } else {
            "mail_reception_confirmed"
        }
    }

    /// `account.payment.term.line`: days (16 `days`; 17+ `nb_days`).
    pub fn payment_days(self) -> &'static str {
        if self.major <= 16 { "days" } else { "nb_days" }
    }

    /// `product.product`: the storable flag (18+ `is_storable`; before, `type == 'product'`).
    pub fn storable_field(self) -> &'static str {
        if self.major >= 18 {
            "is_storable"
        } else {
            "type"
        }
    }

    /// Whether a product record is storable.
    pub fn is_storable(self, r: &wire::Record) -> bool {
        if self.major >= 18 {
            r.get("is_storable")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        } else {
            r.get("type").and_then(Value::as_str) == Some("product")
        }
    }

    /// The Discuss channel model (16 `mail.channel`).
    pub fn channel_model(self) -> &'static str {
        if self.major <= 16 {
            "mail.channel"
        } else {
            "discuss.channel"
        }
    }

    /// `res.users`: its groups (19 `group_ids`).
    pub fn user_groups(self) -> &'static str {
        if self.major >= 19 {
            "group_ids"
        } else {
            "groups_id"
        }
    }

    /// Sales order state (16 has `done`; 17+ locks confirmed orders with `locked` instead).
    pub fn order_state(self, state: &str) -> Option<OrderState> {
        Some(match state {
            "draft" => OrderState::Draft,
            "sent" => OrderState::Sent,
            "sale" => OrderState::Sale,
            "done" => OrderState::Done,
            "cancel" => OrderState::Cancel,
            _ => return None,
        })
    }
}

/// One model to read.
#[derive(Debug, Clone)]
pub struct Table {
    /// Model name.
    pub model: &'static str,
    /// Which records.
    pub domain: Value,
    /// Fields that must exist.
    pub fields: Vec<String>,
    /// Fields used when present.
    pub optional: Vec<String>,
    /// Without it there is no snapshot at all.
    pub essential: bool,
    /// What is lost when the model cannot be read (for the warning).
    pub affects: &'static str,
    /// Read by the ids the other tables reference (the domain is then ignored) rather than
    /// by a domain of its own.
    pub by_reference: bool,
}

fn t(
    model: &'static str,
    domain: Value,
    fields: &[&str],
    optional: &[&str],
    essential: bool,
    affects: &'static str,
) -> Table {
    Table {
        model,
        domain,
        fields: fields.iter().map(|s| s.to_string()).collect(),
        optional: optional.iter().map(|s| s.to_string()).collect(),
        essential,
        affects,
        by_reference: false,
    }
}

/// The read plan for a version and configuration at time `now`.
pub fn tables(s: Schema, cfg: &OdooConfig, now: DateTime<Utc>) -> Vec<Table> {
    let cutoff = wire::format_datetime(now - Duration::days(i64::from(cfg.orders.lookback_days)));
    let changes_from =
        wire::format_datetime(now - Duration::days(i64::from(cfg.changes.window_days)));
    let order_domain = json!([
        "&",
        ["state", "in", ["draft", "sent", "sale", "done"]],
        "|",
        ["delivery_status", "!=", "full"],
        ["date_order", ">=", cutoff]
    ]);
    let via = |prefix: &str| -> Value {
        json!([
            "&",
            [
                format!("{prefix}.state"),
                "in",
                ["draft", "sent", "sale", "done"]
            ],
            "|",
            [format!("{prefix}.delivery_status"), "!=", "full"],
            [format!("{prefix}.date_order"), ">=", cutoff]
        ])
    };
    let payments_from = (now - Duration::days(crate::domain::payments::PAYMENT_WINDOW_DAYS))
        .format("%Y-%m-%d")
        .to_string();
    let promised = cfg.orders.promised_date_field.as_str();
    let required_docs = cfg.documents.required_field.as_str();
    let mut line_domain = via("order_id");
    if let Value::Array(a) = &mut line_domain {
        a.insert(0, json!("&"));
        a.push(json!(["display_type", "=", false]));
    }
    vec![
        t(
            "res.company",
            json!([]),
            &["name", "currency_id"],
            &["account_use_credit_limit"],
            true,
            "the currency",
        ),
        t(
            "stock.warehouse",
            json!([]),
            &["name", "code", "lot_stock_id", "in_type_id", "out_type_id"],
            &[],
            true,
            "warehouses",
        ),
        t(
            "stock.location",
            json!([["usage", "=", "internal"]]),
            &["warehouse_id"],
            &[],
            true,
            "stock per warehouse",
        ),
        t(
            "product.product",
            json!([["type", "!=", "service"]]),
            &[
                "default_code",
                "name",
                "categ_id",
                "standard_price",
                "lst_price",
                "product_tmpl_id",
                s.storable_field(),
            ],
            &["optional_product_ids"],
            true,
            "products",
        ),
        t(
            "stock.quant",
            json!([["location_id.usage", "=", "internal"]]),
            &["product_id", "location_id", "quantity", "reserved_quantity"],
            &[],
            true,
            "stock on hand",
        ),
        // Partners are read by reference — the customers of the orders and invoices read,
        // the vendors of the purchases read, and their companies — not by rank: Odoo raises
        // `customer_rank` only when an invoice is posted (and `supplier_rank` on a vendor
        // bill), so a new account's first order has a customer of rank 0.
        Table {
            by_reference: true,
            ..t(
                "res.partner",
                json!([]),
                &[
                    "name",
                    "ref",
                    "category_id",
                    "commercial_partner_id",
                    "property_payment_term_id",
                    "lang",
                    "country_code",
                    "email",
                ],
                &["credit_limit", "property_product_pricelist"],
                true,
                "customers and vendors",
            )
        },
        t(
            "res.partner.category",
            json!([]),
            &["name"],
            &[],
            false,
            "customer tiers",
        ),
        t(
            "account.payment.term.line",
            json!([]),
            &["payment_id", s.payment_days()],
            &[],
            false,
            "payment terms (credit_hold)",
        ),
        t(
            "account.move",
            json!([
                "&",
                "&",
                ["move_type", "=", "out_invoice"],
                ["state", "=", "posted"],
                ["payment_state", "in", ["not_paid", "partial"]]
            ]),
            &[
                "name",
                "commercial_partner_id",
                "amount_total",
                "amount_residual",
                "invoice_date",
                "invoice_date_due",
            ],
            &[],
            false,
            "open invoices (credit_hold)",
        ),
        // Payment history: the receivable lines of customer invoices and credit notes due
        // in the payment window (or still open), and the reconciliations that settled the
        // invoices' lines — a payment's date is its partial's `max_date`.
        t(
            "account.move.line",
            json!([
                "&",
                "&",
                "&",
                ["move_id.move_type", "in", ["out_invoice", "out_refund"]],
                ["parent_state", "=", "posted"],
                ["account_type", "=", "asset_receivable"],
                "|",
                ["reconciled", "=", false],
                ["date_maturity", ">=", payments_from]
            ]),
            &[
                "move_id",
                "partner_id",
                "date_maturity",
                "balance",
                "amount_residual",
                "matched_credit_ids",
            ],
            &[],
            false,
            "payment history (credit_hold confidence)",
        ),
        t(
            "account.partial.reconcile",
            json!([
                "&",
                "&",
                ["debit_move_id.move_id.move_type", "=", "out_invoice"],
                ["debit_move_id.parent_state", "=", "posted"],
                "|",
                ["debit_move_id.reconciled", "=", false],
                ["debit_move_id.date_maturity", ">=", payments_from]
            ]),
            &["debit_move_id", "credit_move_id", "amount", "max_date"],
            &[],
            false,
            "payment history (credit_hold confidence)",
        ),
        t(
            "purchase.order",
            json!([["state", "in", ["draft", "sent", "to approve", "purchase"]]]),
            &[
                "name",
                "partner_id",
                "state",
                "date_order",
                "date_approve",
                "picking_type_id",
            ],
            &[s.po_confirmed()],
            false,
            "inbound supply (supplier_delay, stock_shortage)",
        ),
        t(
            "purchase.order.line",
            json!([
                "&",
                [
                    "order_id.state",
                    "in",
                    ["draft", "sent", "to approve", "purchase"]
                ],
                ["display_type", "=", false]
            ]),
            &[
                "order_id",
                "product_id",
                "product_qty",
                "qty_received",
                "date_planned",
            ],
            // Its receipt moves (purchase_stock), to follow make-to-order links.
            &["move_ids"],
            false,
            "inbound supply (supplier_delay, stock_shortage)",
        ),
        t(
            "sale.order",
            order_domain,
            &[
                "name",
                "partner_id",
                "warehouse_id",
                "state",
                "date_order",
                "client_order_ref",
                "note",
                "user_id",
            ],
            &[promised, "pricelist_id", "amount_untaxed", "amount_total"],
            true,
            "orders",
        ),
        t(
            "sale.order.line",
            line_domain,
            &[
                "order_id",
                "sequence",
                "product_id",
                "product_uom_qty",
                "qty_delivered",
                "qty_invoiced",
                "price_unit",
                "discount",
            ],
            &[],
            true,
            "order lines",
        ),
        t(
            "stock.move",
            json!([
                "&",
                "&",
                ["sale_line_id", "!=", false],
                ["picking_type_id.code", "=", "outgoing"],
                ["state", "not in", ["draft", "done", "cancel"]]
            ]),
            &["sale_line_id", s.move_reserved_qty()],
            // The moves it waits for (make-to-order: the purchase's receipt).
            &["move_orig_ids"],
            false,
            "reservations (allocation_conflict)",
        ),
        t(
            "stock.picking",
            json!([
                "&",
                "&",
                ["picking_type_code", "=", "outgoing"],
                ["sale_id", "!=", false],
                ["state", "!=", "cancel"]
            ]),
            &[
                "name",
                "sale_id",
                "picking_type_id",
                "state",
                "scheduled_date",
                "date_done",
            ],
            &["carrier_id", "carrier_tracking_ref", required_docs],
            false,
            "deliveries (shipment_delay, missing_documents)",
        ),
        t(
            "delivery.carrier",
            json!([]),
            &["name"],
            &[],
            false,
            "carriers (shipment_delay)",
        ),
        t(
            "ir.attachment",
            json!([["res_model", "=", "stock.picking"]]),
            &["name", "res_id"],
            &[],
            false,
            "shipping documents (missing_documents)",
        ),
        t(
            "product.pricelist.item",
            json!([
                "&",
                ["applied_on", "=", "0_product_variant"],
                ["compute_price", "=", "fixed"]
            ]),
            &[
                "pricelist_id",
                "product_id",
                "fixed_price",
                "min_quantity",
                "date_start",
                "date_end",
            ],
            &[],
            false,
            "contract prices (price_mismatch)",
        ),
        t(
            "mail.message",
            json!([
                "&",
                "&",
                ["model", "=", "sale.order"],
                ["tracking_value_ids", "!=", false],
                ["date", ">=", changes_from]
            ]),
            &["res_id", "date", "author_id", "tracking_value_ids"],
            &[],
            false,
            "tracked changes (repeated_changes)",
        ),
        t(
            "mail.tracking.value",
            json!([
                "&",
                ["mail_message_id.model", "=", "sale.order"],
                ["mail_message_id.date", ">=", changes_from]
            ]),
            &[
                s.tracking_field(),
                "old_value_char",
                "new_value_char",
                "old_value_float",
                "new_value_float",
                "old_value_integer",
                "new_value_integer",
                "old_value_datetime",
                "new_value_datetime",
                "mail_message_id",
            ],
            &[],
            false,
            "tracked changes (repeated_changes)",
        ),
    ]
}

/// `[A, B]` as one explicit conjunction in prefix notation.
pub fn and(a: Value, b: Value) -> Value {
    let mut out = vec![json!("&")];
    for d in [a, b] {
        match d {
            Value::Array(v) if v.is_empty() => out.push(json!([1, "=", 1])),
            Value::Array(v) if is_leaf(&v) => out.push(Value::Array(v)),
            Value::Array(v) => out.extend(explicit(v)),
            other => out.push(other),
        }
    }
    Value::Array(out)
}

/// `NOT domain`.
pub fn not(d: Value) -> Value {
    match d {
        Value::Array(v) if v.is_empty() => json!([[0, "=", 1]]),
        Value::Array(v) => {
            let mut out = vec![json!("!")];
            out.extend(explicit(v));
            Value::Array(out)
        }
        other => other,
    }
}

fn is_leaf(v: &[Value]) -> bool {
    v.len() == 3 && !v[0].is_array() && v[0].as_str().is_some_and(|s| !matches!(s, "&" | "|" | "!"))
        || v.len() == 3 && v[0].is_number()
}

/// A domain list with its implicit top-level ANDs made explicit, so it is one term.
fn explicit(v: Vec<Value>) -> Vec<Value> {
    // Count the terms at the top level: each operator consumes terms, leaves produce one.
    let mut terms = 0i64;
    for x in v.iter().rev() {
        match x.as_str() {
            Some("&") | Some("|") => terms -= 1,
            Some("!") => {}
            _ => terms += 1,
        }
    }
    let mut out: Vec<Value> = (1..terms.max(1)).map(|_| json!("&")).collect();
    out.extend(v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames() {
        let (s16, s17, s18, s19) = (
            Schema { major: 16 },
            Schema { major: 17 },
            Schema { major: 18 },
            Schema { major: 19 },
        );
        assert_eq!(s16.move_reserved_qty(), "reserved_availability");
        assert_eq!(s17.move_reserved_qty(), "quantity");
        assert_eq!(s16.tracking_field(), "field");
        assert_eq!(s18.tracking_field(), "field_id");
        assert_eq!(s17.storable_field(), "type");
        assert_eq!(s18.storable_field(), "is_storable");
        assert_eq!(s19.po_confirmed(), "acknowledged");
        assert_eq!(s16.channel_model(), "mail.channel");
        assert_eq!(s17.payment_days(), "nb_days");
    }

    #[test]
    fn domain_algebra() {
        assert_eq!(
            and(
                json!([["a", "=", 1], ["b", "=", 2]]),
                json!(["write_date", ">=", "x"])
            ),
            json!([
                "&",
                "&",
                ["a", "=", 1],
                ["b", "=", 2],
                ["write_date", ">=", "x"]
            ])
        );
        assert_eq!(
            not(json!([["a", "=", 1], ["b", "=", 2]])),
            json!(["!", "&", ["a", "=", 1], ["b", "=", 2]])
        );
        assert_eq!(
            not(json!(["|", ["a", "=", 1], ["b", "=", 2]])),
            json!(["!", "|", ["a", "=", 1], ["b", "=", 2]])
        );
    }
}
