//! Structural checks of a snapshot: every cross-reference in range, every quantity and
//! price possible. Impossible records become [`DataQualityFinding`]s and are marked
//! unusable in [`Validity`], so detectors skip them instead of panicking or producing
//! nonsense.

use rust_decimal::Decimal;
use serde::Serialize;

use super::{Ix, Snapshot};

/// One problem with the source data, reported beside the exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataQualityFinding {
    /// Stable machine code (`line_unknown_product`, `negative_stock`, …).
    pub code: &'static str,
    /// The record it concerns (`S00042/3`, `SKU-10023@WH2`).
    pub record: String,
    /// What is wrong, for a person.
    pub message: String,
}

/// Which records the detectors may use.
#[derive(Debug, Clone, Default)]
pub struct Validity {
    /// Per order: usable.
    pub orders: Vec<bool>,
    /// Per line: usable (its order, product and numbers are sound).
    pub lines: Vec<bool>,
}

impl Validity {
    /// Whether line `i` is usable.
    pub fn line(&self, i: usize) -> bool {
        self.lines.get(i).copied().unwrap_or(false)
    }

    /// Whether order `i` is usable.
    pub fn order(&self, i: usize) -> bool {
        self.orders.get(i).copied().unwrap_or(false)
    }
}

/// Strictly below zero, without a full decimal comparison (this runs for every line).
fn negative(d: Decimal) -> bool {
    d.is_sign_negative() && !d.is_zero()
}

/// `d > 100`, compared on the integer mantissa (`m > 100 · 10^scale`, exact: the scale is
/// at most 28, so the bound fits an i128) instead of a general decimal comparison.
fn over_hundred(d: Decimal) -> bool {
    match 10i128.checked_pow(d.scale()) {
        Some(p) => d.mantissa() > 100 * p,
        None => d > Decimal::ONE_HUNDRED,
    }
}

fn in_range<T>(v: &[T], i: Ix) -> bool {
    (i as usize) < v.len()
}

impl Snapshot {
    /// Check every reference and number; return what is usable and what is wrong.
    pub fn check(&self) -> (Validity, Vec<DataQualityFinding>) {
        let mut findings = Vec::new();
        let mut push = |code: &'static str, record: String, message: String| {
            findings.push(DataQualityFinding {
                code,
                record,
                message,
            })
        };

        let mut orders = vec![true; self.orders.len()];
        for (i, o) in self.orders.iter().enumerate() {
            if !in_range(&self.customers, o.customer) {
                push(
                    "order_unknown_customer",
                    o.name.clone(),
                    format!(
                        "order {} refers to a customer that is not in the data",
                        o.name
                    ),
                );
                orders[i] = false;
            }
            if !in_range(&self.warehouses, o.warehouse) {
                push(
                    "order_unknown_warehouse",
                    o.name.clone(),
                    format!(
                        "order {} refers to a warehouse that is not in the data",
                        o.name
                    ),
                );
                orders[i] = false;
            }
            let end = (o.first_line as usize).saturating_add(o.line_count as usize);
            if end > self.lines.len() {
                push(
                    "order_lines_out_of_range",
                    o.name.clone(),
                    format!("order {} claims lines that are not in the data", o.name),
                );
                orders[i] = false;
            }
            if o.state.is_open_demand() && o.promised.is_none() {
                let lines = self.order_lines(o);
                // An open quantity is never negative: non-zero means open.
                let open = lines.iter().any(|l| !l.open_qty().is_zero());
                if open && !lines.iter().any(|l| l.promised.is_some()) {
                    push(
                        "order_without_promise",
                        o.name.clone(),
                        format!(
                            "confirmed order {} has no promised date; delays are measured against the order date plus the policy's default lead time",
                            o.name
                        ),
                    );
                }
            }
        }

        let mut lines = vec![true; self.lines.len()];
        for (i, l) in self.lines.iter().enumerate() {
            let order = self.orders.get(l.order as usize);
            let problem: Option<(&'static str, &str)> = if order.is_none() {
                Some(("line_unknown_order", "belongs to no known order"))
            } else if !orders.get(l.order as usize).copied().unwrap_or(false) {
                lines[i] = false; // its order is already reported
                None
            } else if !in_range(&self.products, l.product) {
                Some((
                    "line_unknown_product",
                    "refers to a product that is not in the data",
                ))
            } else if negative(l.qty) {
                Some(("line_negative_quantity", "has a negative ordered quantity"))
            } else if negative(l.qty_delivered) || negative(l.qty_invoiced) {
                Some((
                    "line_negative_progress",
                    "has a negative delivered or invoiced quantity",
                ))
            } else if negative(l.price_unit) {
                Some(("line_negative_price", "has a negative unit price"))
            } else if negative(l.discount) || over_hundred(l.discount) {
                Some((
                    "line_discount_out_of_range",
                    "has a discount outside 0–100%",
                ))
            } else {
                None
            };
            if let Some((code, what)) = problem {
                // Names are built only for the rare bad line: this loop sees every line.
                let name = match order {
                    Some(o) => format!("{}/{}", o.name, l.seq),
                    None => format!("line {}", l.id),
                };
                push(
                    code,
                    name.clone(),
                    format!(
                        "{name} {what} (qty {}, delivered {}, invoiced {}, price {}, discount {}%)",
                        l.qty, l.qty_delivered, l.qty_invoiced, l.price_unit, l.discount
                    ),
                );
                lines[i] = false;
            }
        }

        for s in &self.stock {
            let p = self.products.get(s.product as usize);
            let w = self.warehouses.get(s.warehouse as usize);
            match (p, w) {
                (Some(p), Some(w)) => {
                    if s.on_hand < Decimal::ZERO {
                        push(
                            "negative_stock",
                            format!("{}@{}", p.sku, w.code),
                            format!(
                                "{} shows {} on hand in {} (negative); counted as 0",
                                p.sku, s.on_hand, w.code
                            ),
                        );
                    }
                    if s.reserved > s.on_hand.max(Decimal::ZERO) {
                        push(
                            "over_reserved_stock",
                            format!("{}@{}", p.sku, w.code),
                            format!(
                                "{} has {} reserved but only {} on hand in {}",
                                p.sku, s.reserved, s.on_hand, w.code
                            ),
                        );
                    }
                }
                _ => push(
                    "stock_unknown_reference",
                    format!("quant {}", s.id),
                    format!(
                        "stock record {} refers to an unknown product or warehouse",
                        s.id
                    ),
                ),
            }
        }

        for b in &self.inbound {
            if !in_range(&self.products, b.product)
                || !in_range(&self.warehouses, b.warehouse)
                || !in_range(&self.suppliers, b.supplier)
            {
                push(
                    "inbound_unknown_reference",
                    b.po_ref.clone(),
                    format!(
                        "purchase line {} of {} refers to an unknown product, warehouse or supplier",
                        b.id, b.po_ref
                    ),
                );
            }
        }

        for p in &self.pickings {
            if !in_range(&self.orders, p.order) || !in_range(&self.warehouses, p.warehouse) {
                push(
                    "picking_unknown_reference",
                    p.name.clone(),
                    format!("picking {} refers to an unknown order or warehouse", p.name),
                );
            }
            if p.carrier.is_some_and(|c| !in_range(&self.carriers, c)) {
                push(
                    "picking_unknown_carrier",
                    p.name.clone(),
                    format!("picking {} refers to an unknown carrier", p.name),
                );
            }
        }

        for inv in &self.invoices {
            if !in_range(&self.customers, inv.customer) {
                push(
                    "invoice_unknown_customer",
                    inv.name.clone(),
                    format!("invoice {} refers to an unknown customer", inv.name),
                );
            }
        }

        for c in &self.contract_prices {
            if !in_range(&self.customers, c.customer) || !in_range(&self.products, c.product) {
                push(
                    "contract_unknown_reference",
                    c.reference.clone(),
                    format!(
                        "contract price {} refers to an unknown customer or product",
                        c.reference
                    ),
                );
            }
        }

        for ch in &self.changes {
            if !in_range(&self.orders, ch.order) {
                push(
                    "change_unknown_order",
                    format!("change {}", ch.id),
                    format!("order change {} refers to an unknown order", ch.id),
                );
            }
        }

        for p in &self.products {
            if p.substitutes.iter().any(|&s| !in_range(&self.products, s)) {
                push(
                    "substitute_unknown_product",
                    p.sku.clone(),
                    format!("{} lists a substitute that is not in the data", p.sku),
                );
            }
        }

        (Validity { orders, lines }, findings)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn over_hundred_matches_the_decimal_comparison() {
        for s in [
            "0", "100", "100.00", "100.0001", "99.9999", "-150", "101", "1000", "-0",
        ] {
            let d = Decimal::from_str(s).unwrap();
            assert_eq!(over_hundred(d), d > Decimal::ONE_HUNDRED, "{s}");
        }
        for d in [Decimal::MAX, Decimal::MIN, Decimal::new(1, 28)] {
            assert_eq!(over_hundred(d), d > Decimal::ONE_HUNDRED, "{d}");
        }
    }
}
