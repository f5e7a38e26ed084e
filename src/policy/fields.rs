//! The fields custom rules may read, with their types. The exception core supplies their
//! values (see `core::custom`); this list is the single source of truth for both the
//! rule compiler and the README's field table.

use super::expr::{FieldType, Schema};

/// A field a custom rule can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `order.name` — order reference.
    OrderName,
    /// `order.state` — Odoo state (`sale`, …).
    OrderState,
    /// `order.warehouse` — warehouse code.
    OrderWarehouse,
    /// `order.open_value` — undelivered value at net prices.
    OrderOpenValue,
    /// `order.line_count` — number of lines.
    OrderLineCount,
    /// `order.has_promise` — whether a promised date is set.
    OrderHasPromise,
    /// `order.hours_to_promise` — hours until the promised date (negative when past).
    OrderHoursToPromise,
    /// `order.age_days` — days since the order date.
    OrderAgeDays,
    /// `order.change_count` — tracked changes in the repeated-changes window.
    OrderChangeCount,
    /// `line.qty` — ordered quantity.
    LineQty,
    /// `line.open_qty` — quantity left to deliver.
    LineOpenQty,
    /// `line.reserved_qty` — quantity reserved in the warehouse.
    LineReservedQty,
    /// `line.price_unit` — unit price before discount.
    LinePriceUnit,
    /// `line.discount_pct` — discount in percent.
    LineDiscountPct,
    /// `line.net_price` — unit price after discount.
    LineNetPrice,
    /// `line.margin_pct` — margin in percent of the net price (null without cost).
    LineMarginPct,
    /// `line.open_value` — open quantity times net price.
    LineOpenValue,
    /// `line.hours_to_promise` — hours until the line's promised date.
    LineHoursToPromise,
    /// `product.sku` — internal reference.
    ProductSku,
    /// `product.category` — category name.
    ProductCategory,
    /// `product.cost` — unit cost (null when unknown).
    ProductCost,
    /// `product.list_price` — list price.
    ProductListPrice,
    /// `product.free_stock` — on hand minus reserved in the order's warehouse.
    ProductFreeStock,
    /// `customer.name` — display name.
    CustomerName,
    /// `customer.tier` — `A`, `B` or `C`.
    CustomerTier,
    /// `customer.key_account` — key account flag.
    CustomerKeyAccount,
    /// `customer.country` — ISO country code.
    CustomerCountry,
    /// `customer.has_credit_limit` — whether a limit is set.
    CustomerHasCreditLimit,
    /// `customer.credit_limit` — the limit (null when none).
    CustomerCreditLimit,
    /// `customer.open_receivables` — residual of open invoices.
    CustomerOpenReceivables,
    /// `customer.max_overdue_days` — days the oldest overdue invoice is past due.
    CustomerMaxOverdueDays,
    /// `customer.late_payment_share` — share of invoices paid late (0..1).
    CustomerLatePaymentShare,
    /// `customer.payment_terms_days` — payment terms.
    CustomerPaymentTermsDays,
}

/// Every field: enum value, dotted name, type, description. `FieldId(i)` is `FIELDS[i]`.
pub const FIELDS: &[(Field, &str, FieldType, &str)] = &[
    (
        Field::OrderName,
        "order.name",
        FieldType::String,
        "order reference",
    ),
    (
        Field::OrderState,
        "order.state",
        FieldType::String,
        "Odoo state: draft, sent, sale, done, cancel",
    ),
    (
        Field::OrderWarehouse,
        "order.warehouse",
        FieldType::String,
        "warehouse code",
    ),
    (
        Field::OrderOpenValue,
        "order.open_value",
        FieldType::Number,
        "undelivered value at net prices",
    ),
    (
        Field::OrderLineCount,
        "order.line_count",
        FieldType::Number,
        "number of lines",
    ),
    (
        Field::OrderHasPromise,
        "order.has_promise",
        FieldType::Bool,
        "a promised date is set",
    ),
    (
        Field::OrderHoursToPromise,
        "order.hours_to_promise",
        FieldType::Number,
        "hours until the promised date, negative when past",
    ),
    (
        Field::OrderAgeDays,
        "order.age_days",
        FieldType::Number,
        "days since the order date",
    ),
    (
        Field::OrderChangeCount,
        "order.change_count",
        FieldType::Number,
        "tracked changes within the repeated-changes window",
    ),
    (
        Field::LineQty,
        "line.qty",
        FieldType::Number,
        "ordered quantity",
    ),
    (
        Field::LineOpenQty,
        "line.open_qty",
        FieldType::Number,
        "quantity left to deliver",
    ),
    (
        Field::LineReservedQty,
        "line.reserved_qty",
        FieldType::Number,
        "quantity reserved in the warehouse",
    ),
    (
        Field::LinePriceUnit,
        "line.price_unit",
        FieldType::Number,
        "unit price before discount",
    ),
    (
        Field::LineDiscountPct,
        "line.discount_pct",
        FieldType::Number,
        "discount in percent",
    ),
    (
        Field::LineNetPrice,
        "line.net_price",
        FieldType::Number,
        "unit price after discount",
    ),
    (
        Field::LineMarginPct,
        "line.margin_pct",
        FieldType::Number,
        "margin in percent of net price; null without cost",
    ),
    (
        Field::LineOpenValue,
        "line.open_value",
        FieldType::Number,
        "open quantity times net price",
    ),
    (
        Field::LineHoursToPromise,
        "line.hours_to_promise",
        FieldType::Number,
        "hours until the line's promised date",
    ),
    (
        Field::ProductSku,
        "product.sku",
        FieldType::String,
        "internal reference",
    ),
    (
        Field::ProductCategory,
        "product.category",
        FieldType::String,
        "category name",
    ),
    (
        Field::ProductCost,
        "product.cost",
        FieldType::Number,
        "unit cost; null when unknown",
    ),
    (
        Field::ProductListPrice,
        "product.list_price",
        FieldType::Number,
        "list price",
    ),
    (
        Field::ProductFreeStock,
        "product.free_stock",
        FieldType::Number,
        "on hand minus reserved in the order's warehouse",
    ),
    (
        Field::CustomerName,
        "customer.name",
        FieldType::String,
        "display name",
    ),
    (
        Field::CustomerTier,
        "customer.tier",
        FieldType::String,
        "A, B or C",
    ),
    (
        Field::CustomerKeyAccount,
        "customer.key_account",
        FieldType::Bool,
        "key account flag",
    ),
    (
        Field::CustomerCountry,
        "customer.country",
        FieldType::String,
        "ISO country code",
    ),
    (
        Field::CustomerHasCreditLimit,
        "customer.has_credit_limit",
        FieldType::Bool,
        "a credit limit is set",
    ),
    (
        Field::CustomerCreditLimit,
        "customer.credit_limit",
        FieldType::Number,
        "credit limit; null when none",
    ),
    (
        Field::CustomerOpenReceivables,
        "customer.open_receivables",
        FieldType::Number,
        "residual of open invoices",
    ),
    (
        Field::CustomerMaxOverdueDays,
        "customer.max_overdue_days",
        FieldType::Number,
        "days the oldest overdue invoice is past due",
    ),
    (
        Field::CustomerLatePaymentShare,
        "customer.late_payment_share",
        FieldType::Number,
        "share of invoices paid late, 0 to 1",
    ),
    (
        Field::CustomerPaymentTermsDays,
        "customer.payment_terms_days",
        FieldType::Number,
        "payment terms in days",
    ),
];

/// The schema custom rules compile against.
pub fn schema() -> Schema {
    FIELDS
        .iter()
        .fold(Schema::new(), |s, (_, name, ty, _)| s.field(name, *ty))
}

/// Whether a field belongs to the line scope (unavailable to order-scope rules).
pub fn is_line_field(f: Field) -> bool {
    matches!(
        f,
        Field::LineQty
            | Field::LineOpenQty
            | Field::LineReservedQty
            | Field::LinePriceUnit
            | Field::LineDiscountPct
            | Field::LineNetPrice
            | Field::LineMarginPct
            | Field::LineOpenValue
            | Field::LineHoursToPromise
            | Field::ProductSku
            | Field::ProductCategory
            | Field::ProductCost
            | Field::ProductListPrice
            | Field::ProductFreeStock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_documents_every_field_with_its_type() {
        let readme = include_str!("../../README.md");
        for (_, name, ty, desc) in FIELDS {
            let ty = match ty {
                FieldType::Number => "number",
                FieldType::String => "string",
                FieldType::Bool => "bool",
            };
            let row = format!("| `{name}` | {ty} | {desc} |");
            assert!(readme.contains(&row), "README lacks the row: {row}");
        }
    }
}
