//! What happened before the snapshot: a year of delivered orders, received purchase
//! lines and paid (or unpaid) invoices, as plain facts — dates promised and dates kept,
//! amounts due and dates paid. Nothing here says "late" or "risky": the predictive
//! models derive their outcomes from these dates, as they would from Odoo's records.
//!
//! Records reference the snapshot they came with by index (customers, products,
//! warehouses, suppliers, carriers of that [`super::Snapshot`]).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Ix;

/// A delivered sales order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PastOrder {
    /// Order reference.
    pub name: String,
    /// Index into the snapshot's customers.
    pub customer: Ix,
    /// Index into the snapshot's warehouses.
    pub warehouse: Ix,
    /// Index into the snapshot's carriers, if one carried it.
    pub carrier: Option<Ix>,
    /// When it was confirmed.
    pub ordered_at: DateTime<Utc>,
    /// The promised delivery date at confirmation.
    pub promised: DateTime<Utc>,
    /// Tracked changes (quantities, dates, lines) after confirmation.
    pub changes: Vec<DateTime<Utc>>,
    /// First line in [`History::lines`].
    pub first_line: Ix,
    /// Number of lines.
    pub line_count: u32,
}

/// A delivered sales order line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PastLine {
    /// Index into [`History::orders`].
    pub order: Ix,
    /// Index into the snapshot's products.
    pub product: Ix,
    /// Ordered quantity.
    pub qty: Decimal,
    /// Net value.
    pub value: Decimal,
    /// Free stock of the product in the order's warehouse when the line was confirmed.
    pub available_at_order: Decimal,
    /// When the customer received it.
    pub delivered_at: DateTime<Utc>,
}

/// A received purchase line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PastPurchase {
    /// Purchase order reference.
    pub po_ref: String,
    /// Index into the snapshot's suppliers.
    pub supplier: Ix,
    /// Index into the snapshot's products.
    pub product: Ix,
    /// Index into the snapshot's warehouses.
    pub warehouse: Ix,
    /// Quantity.
    pub qty: Decimal,
    /// When it was ordered.
    pub ordered_at: DateTime<Utc>,
    /// The arrival date planned at ordering.
    pub original_planned: DateTime<Utc>,
    /// When the supplier confirmed it, if it did.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// A customer invoice of the past year.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PastInvoice {
    /// Index into the snapshot's customers.
    pub customer: Ix,
    /// Amount.
    pub amount: Decimal,
    /// Invoice date.
    pub invoice_date: DateTime<Utc>,
    /// Due date.
    pub due_date: DateTime<Utc>,
    /// When it was paid; `None` while unpaid.
    pub paid_at: Option<DateTime<Utc>>,
}

/// A year of the business before the snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Start of the period.
    pub since: DateTime<Utc>,
    /// End of the period (the snapshot's time).
    pub until: DateTime<Utc>,
    /// Delivered orders, oldest first.
    pub orders: Vec<PastOrder>,
    /// Their lines, grouped by order.
    pub lines: Vec<PastLine>,
    /// Received purchase lines.
    pub purchases: Vec<PastPurchase>,
    /// Invoices.
    pub invoices: Vec<PastInvoice>,
}
