//! The snapshot model: plain typed data of everything the exception core reads.
//!
//! A [`Snapshot`] is built by a source (the demo generator today, the Odoo connector
//! later) and handed to the core read-only. Nothing here performs I/O or knows where the
//! data came from. Money and quantities are [`Decimal`] (never floating point); every
//! time is UTC.
//!
//! Records reference each other by *index* into the snapshot's vectors (for example
//! [`OrderLine::order`] is an index into [`Snapshot::orders`]), so the core follows a
//! reference with one bounds-checked array access instead of a hash lookup. Every record
//! also keeps its source id and reference (`S00042`, `WH2/OUT/00031`) for evidence.
//! [`Snapshot::check`] verifies every index and reports impossible records as
//! data-quality findings instead of letting anything downstream panic.

mod check;
pub mod history;
pub mod payments;
#[cfg(test)]
pub mod testkit;

pub use check::{DataQualityFinding, Validity};
pub use history::History;
pub use payments::{OpenItem, PaymentHistory, PaymentTrend, Settlement, TrendDirection};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Identifier of a record in its source system (an Odoo record id, or a demo id).
pub type SourceId = i64;

/// Index of a record inside one of the snapshot's vectors.
pub type Ix = u32;

/// Customer priority tier. `A` is the most important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// Strategic accounts.
    A,
    /// Key accounts.
    B,
    /// Standard accounts.
    C,
}

impl Tier {
    /// The tier's letter, as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::A => "A",
            Tier::B => "B",
            Tier::C => "C",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A physical warehouse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Warehouse {
    /// Source id.
    pub id: SourceId,
    /// Short code as in Odoo (`WH1`), also the prefix of picking names.
    pub code: String,
    /// Human name (`Rotterdam`).
    pub name: String,
    /// Warehouses sharing a pool can transfer stock to each other.
    pub pool: u16,
    /// Hours an inter-warehouse transfer into this warehouse takes.
    pub transfer_hours: u32,
}

/// A sellable product variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Product {
    /// Source id.
    pub id: SourceId,
    /// Internal reference (`SKU-10023`).
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Product category name.
    pub category: String,
    /// Unit cost; `None` when the source has no cost for it.
    pub cost: Option<Decimal>,
    /// Public list price per unit.
    pub list_price: Decimal,
    /// Products that can replace this one, best first.
    pub substitutes: Vec<Ix>,
}

/// Stock of one product in one warehouse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockLevel {
    /// Source id of the quant (or an aggregate id).
    pub id: SourceId,
    /// Index into [`Snapshot::products`].
    pub product: Ix,
    /// Index into [`Snapshot::warehouses`].
    pub warehouse: Ix,
    /// Physical quantity on hand (may be negative in dirty data).
    pub on_hand: Decimal,
    /// Quantity reserved for outgoing moves.
    pub reserved: Decimal,
}

/// A supplier (vendor).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Supplier {
    /// Source id (a partner id in Odoo).
    pub id: SourceId,
    /// Display name.
    pub name: String,
    /// ISO country code.
    pub country: String,
    /// Typical lead time in days.
    pub lead_time_days: u32,
    /// Share of past purchase lines received by their first planned date (0..=1), when known.
    pub on_time_rate: Option<f32>,
}

/// Lifecycle of a purchase line as the core needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseState {
    /// RFQ not yet confirmed by us (not sent yet, or waiting for approval).
    Draft,
    /// RFQ sent to the supplier, not yet confirmed.
    Sent,
    /// Confirmed purchase order.
    Purchase,
    /// Fully received or locked.
    Done,
    /// Cancelled.
    Cancel,
}

/// An inbound purchase order line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundLine {
    /// Source id of the purchase.order.line.
    pub id: SourceId,
    /// Purchase order reference (`P00017`).
    pub po_ref: String,
    /// Index into [`Snapshot::suppliers`].
    pub supplier: Ix,
    /// Index into [`Snapshot::products`].
    pub product: Ix,
    /// Index into [`Snapshot::warehouses`] (destination).
    pub warehouse: Ix,
    /// Ordered quantity.
    pub qty: Decimal,
    /// Quantity already received.
    pub qty_received: Decimal,
    /// When the PO was confirmed.
    pub ordered_at: DateTime<Utc>,
    /// The arrival date first planned when the PO was confirmed.
    pub original_planned: Option<DateTime<Utc>>,
    /// The current planned arrival date.
    pub planned: Option<DateTime<Utc>>,
    /// Whether the supplier has confirmed the line (Odoo: `date_planned` acknowledged / `mail_reception_confirmed`).
    pub confirmed: bool,
    /// Lifecycle state.
    pub state: PurchaseState,
}

impl InboundLine {
    /// Quantity still to arrive (never negative).
    pub fn open_qty(&self) -> Decimal {
        at_least_zero(self.qty - self.qty_received)
    }
}

/// A customer (invoicing partner).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Customer {
    /// Source id.
    pub id: SourceId,
    /// Customer reference.
    pub reference: String,
    /// Display name.
    pub name: String,
    /// Priority tier.
    pub tier: Tier,
    /// Key accounts get extra attention for repeated changes.
    pub key_account: bool,
    /// Credit limit; `None` means no limit is set.
    pub credit_limit: Option<Decimal>,
    /// Payment terms in days.
    pub payment_terms_days: u32,
    /// Payment behaviour.
    pub payments: PaymentHistory,
    /// Preferred language (BCP-47, e.g. `en`, `de`, `nl`).
    pub lang: String,
    /// ISO country code.
    pub country: String,
    /// Contact e-mail (personal data; never sent to external models unless policy allows).
    pub email: Option<String>,
}

/// An open (posted, not fully paid) customer invoice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invoice {
    /// Source id.
    pub id: SourceId,
    /// Invoice number (`INV/2026/00123`).
    pub name: String,
    /// Index into [`Snapshot::customers`].
    pub customer: Ix,
    /// Total amount.
    pub amount_total: Decimal,
    /// Amount still to be paid.
    pub residual: Decimal,
    /// Invoice date.
    pub invoice_date: DateTime<Utc>,
    /// Due date.
    pub due_date: DateTime<Utc>,
}

/// Sales order state, as in Odoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Quotation.
    Draft,
    /// Quotation sent.
    Sent,
    /// Confirmed sales order.
    Sale,
    /// Locked / done.
    Done,
    /// Cancelled.
    Cancel,
}

impl OrderState {
    /// The Odoo technical value.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Draft => "draft",
            OrderState::Sent => "sent",
            OrderState::Sale => "sale",
            OrderState::Done => "done",
            OrderState::Cancel => "cancel",
        }
    }

    /// Confirmed and not closed: the order's lines are demand.
    pub fn is_open_demand(self) -> bool {
        matches!(self, OrderState::Sale)
    }
}

/// A sales order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SalesOrder {
    /// Source id.
    pub id: SourceId,
    /// Order reference (`S00042`).
    pub name: String,
    /// Index into [`Snapshot::customers`].
    pub customer: Ix,
    /// Index into [`Snapshot::warehouses`].
    pub warehouse: Ix,
    /// State.
    pub state: OrderState,
    /// Order date.
    pub date_order: DateTime<Utc>,
    /// Promised delivery date (Odoo `commitment_date`), if any.
    pub promised: Option<DateTime<Utc>>,
    /// Customer's own reference.
    pub client_ref: Option<String>,
    /// Free text from the customer or the sales rep (untrusted data).
    pub note: Option<String>,
    /// First line of this order in [`Snapshot::lines`] (lines of an order are contiguous).
    pub first_line: Ix,
    /// Number of lines.
    pub line_count: u32,
    /// Taxes as a share of the untaxed amount (Odoo `amount_total / amount_untaxed - 1`;
    /// zero without taxes): what is not invoiced yet weighs on credit with its taxes, as the
    /// invoices' open amounts do.
    #[serde(default)]
    pub tax_rate: Decimal,
}

/// A sales order line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderLine {
    /// Source id.
    pub id: SourceId,
    /// Index into [`Snapshot::orders`].
    pub order: Ix,
    /// Position within the order (1-based), as shown to users.
    pub seq: u32,
    /// Index into [`Snapshot::products`].
    pub product: Ix,
    /// Ordered quantity.
    pub qty: Decimal,
    /// Quantity delivered.
    pub qty_delivered: Decimal,
    /// Quantity invoiced.
    pub qty_invoiced: Decimal,
    /// Quantity currently reserved in the warehouse for this line.
    pub qty_reserved: Decimal,
    /// Unit price before discount.
    pub price_unit: Decimal,
    /// Discount in percent (0..=100).
    pub discount: Decimal,
    /// Line-level promised date overriding the order's.
    pub promised: Option<DateTime<Utc>>,
}

impl OrderLine {
    /// Quantity still to deliver (never negative).
    #[inline]
    pub fn open_qty(&self) -> Decimal {
        if self.qty_delivered.is_zero() {
            return at_least_zero(self.qty);
        }
        at_least_zero(self.qty - self.qty_delivered)
    }

    /// Net unit price after discount.
    pub fn net_price(&self) -> Decimal {
        let mut x = self.price_unit * (Decimal::ONE_HUNDRED - self.discount);
        // Dividing by 100 is a change of scale: exact, and far cheaper than a division.
        match x.set_scale(x.scale() + 2) {
            Ok(()) => x,
            Err(_) => {
                self.price_unit * (Decimal::ONE_HUNDRED - self.discount) / Decimal::ONE_HUNDRED
            }
        }
    }

    /// Value of the undelivered part at the net price.
    pub fn open_value(&self) -> Decimal {
        self.open_qty() * self.net_price()
    }

    /// Confirmed but not yet invoiced value.
    pub fn uninvoiced_value(&self) -> Decimal {
        (self.qty - self.qty_invoiced).max(Decimal::ZERO) * self.net_price()
    }
}

/// `d.max(Decimal::ZERO)` without a general comparison: this runs for every line, several
/// times a scan. Like `Decimal::max`, it keeps `d` itself (scale and sign of a zero) unless
/// `d` is below zero.
#[inline]
fn at_least_zero(d: Decimal) -> Decimal {
    if d.is_sign_negative() && !d.is_zero() {
        Decimal::ZERO
    } else {
        d
    }
}

/// Document kinds a shipment may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Delivery slip / packing slip.
    DeliverySlip,
    /// Commercial invoice for export.
    CommercialInvoice,
    /// Certificate of origin.
    CertificateOfOrigin,
    /// Dangerous goods declaration.
    DangerousGoods,
    /// Signed proof of delivery.
    ProofOfDelivery,
}

impl DocumentKind {
    /// Machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::DeliverySlip => "delivery_slip",
            DocumentKind::CommercialInvoice => "commercial_invoice",
            DocumentKind::CertificateOfOrigin => "certificate_of_origin",
            DocumentKind::DangerousGoods => "dangerous_goods",
            DocumentKind::ProofOfDelivery => "proof_of_delivery",
        }
    }
}

/// Picking state, as in Odoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickingState {
    /// Draft or waiting another operation.
    Waiting,
    /// Waiting for availability.
    Confirmed,
    /// Ready (reserved).
    Assigned,
    /// Shipped.
    Done,
    /// Cancelled.
    Cancel,
}

/// A carrier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Carrier {
    /// Source id.
    pub id: SourceId,
    /// Display name.
    pub name: String,
    /// Share of past shipments delivered by the carrier's promised date (0..=1), when known.
    pub on_time_rate: Option<f32>,
    /// Typical transit time in hours.
    pub transit_hours: u32,
}

/// An outgoing delivery (picking).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Picking {
    /// Source id.
    pub id: SourceId,
    /// Picking name (`WH2/OUT/00031`).
    pub name: String,
    /// Index into [`Snapshot::orders`].
    pub order: Ix,
    /// Index into [`Snapshot::warehouses`].
    pub warehouse: Ix,
    /// Index into [`Snapshot::carriers`], if assigned.
    pub carrier: Option<Ix>,
    /// State.
    pub state: PickingState,
    /// Scheduled ship date.
    pub scheduled: Option<DateTime<Utc>>,
    /// When it was shipped.
    pub done_at: Option<DateTime<Utc>>,
    /// Carrier tracking reference.
    pub tracking_ref: Option<String>,
    /// Documents the shipment needs.
    pub documents_required: Vec<DocumentKind>,
    /// Documents attached.
    pub documents_present: Vec<DocumentKind>,
}

/// A negotiated customer price for a product (a pricelist item).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContractPrice {
    /// Source id.
    pub id: SourceId,
    /// Index into [`Snapshot::customers`].
    pub customer: Ix,
    /// Index into [`Snapshot::products`].
    pub product: Ix,
    /// Agreed net unit price.
    pub price: Decimal,
    /// Smallest line quantity the price applies to (Odoo's `min_quantity`; zero: any).
    #[serde(default)]
    pub min_qty: Decimal,
    /// Valid from (inclusive).
    pub valid_from: Option<DateTime<Utc>>,
    /// Valid to (inclusive).
    pub valid_to: Option<DateTime<Utc>>,
    /// Contract reference shown in evidence.
    pub reference: String,
}

impl ContractPrice {
    /// Whether the contract applies at `t`.
    pub fn valid_at(&self, t: DateTime<Utc>) -> bool {
        self.valid_from.is_none_or(|f| f <= t) && self.valid_to.is_none_or(|e| t <= e)
    }

    /// Whether the contract applies to a line of `qty` at `t` (as Odoo picks a pricelist
    /// rule: valid at the order date, and the quantity at least the rule's minimum).
    pub fn applies(&self, qty: Decimal, t: DateTime<Utc>) -> bool {
        self.min_qty <= qty && self.valid_at(t)
    }
}

/// Odoo's own link between a purchase line and a sales line it was bought for: with
/// make-to-order the line's delivery move waits for that purchase line's receipt
/// (`stock.move.move_orig_ids` → `purchase.order.line.move_ids`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SupplyLink {
    /// Index into [`Snapshot::inbound`].
    pub inbound: Ix,
    /// Index into [`Snapshot::lines`].
    pub line: Ix,
}

/// A tracked change to an order (Odoo `mail.tracking.value`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderChange {
    /// Source id.
    pub id: SourceId,
    /// Index into [`Snapshot::orders`].
    pub order: Ix,
    /// When the change was made.
    pub at: DateTime<Utc>,
    /// Field changed (`product_uom_qty`, `commitment_date`, …).
    pub field: String,
    /// Old value, as text.
    pub old_value: String,
    /// New value, as text.
    pub new_value: String,
    /// Who made it (user name).
    pub author: String,
}

/// A past exception and how it was resolved (case history).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PastException {
    /// History id.
    pub id: SourceId,
    /// Kind name (`stock_shortage`, …).
    pub kind: String,
    /// Order reference.
    pub order_ref: String,
    /// Index into [`Snapshot::customers`].
    pub customer: Ix,
    /// Product involved, if any.
    pub product: Option<Ix>,
    /// When it was detected.
    pub detected_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: DateTime<Utc>,
    /// The action taken (`reallocate`, `expedite`, …).
    pub resolution: String,
    /// What happened, in a sentence.
    pub outcome: String,
}

/// Everything the exception core reads, at one point in time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Where the data came from (`demo seed=42 orders=1200`, an Odoo URL).
    pub source: String,
    /// When the data was read.
    pub taken_at: DateTime<Utc>,
    /// Company currency (ISO code).
    pub currency: String,
    /// Warehouses.
    pub warehouses: Vec<Warehouse>,
    /// Products.
    pub products: Vec<Product>,
    /// Stock per product and warehouse.
    pub stock: Vec<StockLevel>,
    /// Suppliers.
    pub suppliers: Vec<Supplier>,
    /// Inbound purchase lines.
    pub inbound: Vec<InboundLine>,
    /// Carriers.
    pub carriers: Vec<Carrier>,
    /// Customers.
    pub customers: Vec<Customer>,
    /// Open customer invoices.
    pub invoices: Vec<Invoice>,
    /// Sales orders.
    pub orders: Vec<SalesOrder>,
    /// Sales order lines, grouped by order.
    pub lines: Vec<OrderLine>,
    /// Outgoing pickings.
    pub pickings: Vec<Picking>,
    /// Contract prices.
    pub contract_prices: Vec<ContractPrice>,
    /// Tracked order changes.
    pub changes: Vec<OrderChange>,
    /// Purchase lines bought for specific sales lines (make-to-order), where the source
    /// knows it.
    #[serde(default)]
    pub supply_links: Vec<SupplyLink>,
    /// Resolved past exceptions.
    pub history: Vec<PastException>,
}

impl Snapshot {
    /// The lines of an order, as a slice (empty if the order's range is invalid).
    pub fn order_lines(&self, order: &SalesOrder) -> &[OrderLine] {
        let start = order.first_line as usize;
        let end = start.saturating_add(order.line_count as usize);
        self.lines.get(start..end).unwrap_or(&[])
    }

    /// Find an order by its reference (case-insensitive).
    pub fn order_by_name(&self, name: &str) -> Option<(Ix, &SalesOrder)> {
        self.orders
            .iter()
            .enumerate()
            .find(|(_, o)| o.name.eq_ignore_ascii_case(name))
            .map(|(i, o)| (i as Ix, o))
    }

    /// Number of open order lines (confirmed orders, something left to deliver).
    pub fn open_line_count(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| {
                l.open_qty() > Decimal::ZERO
                    && self
                        .orders
                        .get(l.order as usize)
                        .is_some_and(|o| o.state.is_open_demand())
            })
            .count()
    }
}
