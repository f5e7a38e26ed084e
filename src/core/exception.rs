//! The exception record every detector produces, and its parts: kind, impact, evidence,
//! recommendations with typed actions.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{SourceId, Tier};
use crate::policy::Severity;

/// What kind of exception. Built-in kinds have fixed names; custom rules carry their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Demand exceeds stock plus inbound by the promise date.
    StockShortage,
    /// Scarce stock held by lower-priority orders while higher-priority ones starve.
    AllocationConflict,
    /// Price or discount off contract or below the margin floor.
    PriceMismatch,
    /// Customer exposure over the credit limit, or overdue invoices.
    CreditHold,
    /// Shipment will reach the customer after the promise.
    ShipmentDelay,
    /// Inbound purchase line late, slipping or unconfirmed.
    SupplierDelay,
    /// Shipping documents or proof of delivery missing.
    MissingDocuments,
    /// An order changed repeatedly.
    RepeatedChanges,
    /// A custom rule from `policies/`.
    Custom(String),
}

impl Kind {
    /// All built-in kinds.
    pub const BUILTIN: [Kind; 8] = [
        Kind::StockShortage,
        Kind::AllocationConflict,
        Kind::PriceMismatch,
        Kind::CreditHold,
        Kind::ShipmentDelay,
        Kind::SupplierDelay,
        Kind::MissingDocuments,
        Kind::RepeatedChanges,
    ];

    /// Machine name (`stock_shortage`, or the custom rule's name).
    pub fn as_str(&self) -> &str {
        match self {
            Kind::StockShortage => "stock_shortage",
            Kind::AllocationConflict => "allocation_conflict",
            Kind::PriceMismatch => "price_mismatch",
            Kind::CreditHold => "credit_hold",
            Kind::ShipmentDelay => "shipment_delay",
            Kind::SupplierDelay => "supplier_delay",
            Kind::MissingDocuments => "missing_documents",
            Kind::RepeatedChanges => "repeated_changes",
            Kind::Custom(n) => n,
        }
    }

    /// Parse a name; unknown names are custom kinds.
    pub fn parse(s: &str) -> Kind {
        Kind::BUILTIN
            .iter()
            .find(|k| k.as_str() == s)
            .cloned()
            .unwrap_or_else(|| Kind::Custom(s.to_string()))
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Kind::parse(&s))
    }
}

/// The record a fact came from, so people and the copilot can cite it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Odoo model name (`sale.order.line`, `stock.quant`, `policy` for policy clauses).
    /// Detectors name models with literals, which are borrowed rather than copied into an
    /// allocation per fact; it serialises as a plain string either way.
    pub model: Cow<'static, str>,
    /// Record id in the source (0 for policy clauses).
    pub id: SourceId,
    /// Human reference (`S00042/3`, `SKU-10023@WH2`, `thresholds.credit_hold.max_overdue_days`).
    pub reference: String,
}

/// One fact supporting an exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The fact, in a sentence.
    pub fact: String,
    /// Where it comes from.
    pub source: SourceRef,
}

/// What the exception costs if nothing is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    /// Revenue at risk (company currency).
    pub revenue_at_risk: Decimal,
    /// Margin at risk (company currency; zero when cost is unknown).
    pub margin_at_risk: Decimal,
    /// Hours past the promise (actual or expected); zero when on time.
    pub hours_past_promise: i64,
    /// Customer tier.
    pub tier: Tier,
}

/// A concrete next step. Every variant that changes Odoo or contacts someone needs approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Move reserved stock from a lower-priority line to this one.
    Reallocate {
        /// Product SKU.
        product: String,
        /// Quantity to move.
        qty: Decimal,
        /// Warehouse code.
        warehouse: String,
        /// Order giving up the stock.
        from_order: String,
        /// Its line id.
        from_line: SourceId,
        /// Order receiving it.
        to_order: String,
        /// Its line id.
        to_line: SourceId,
    },
    /// Ship what is available now, back-order the rest.
    SplitShipment {
        /// Order.
        order: String,
        /// Line id.
        line: SourceId,
        /// Quantity shipped now.
        ship_now: Decimal,
        /// Quantity back-ordered.
        backorder: Decimal,
    },
    /// Transfer stock between warehouses.
    Transfer {
        /// Product SKU.
        product: String,
        /// Quantity.
        qty: Decimal,
        /// From warehouse code.
        from_warehouse: String,
        /// To warehouse code.
        to_warehouse: String,
    },
    /// Offer a substitute product.
    Substitute {
        /// Order.
        order: String,
        /// Line id.
        line: SourceId,
        /// Ordered SKU.
        from_product: String,
        /// Substitute SKU.
        to_product: String,
        /// Quantity.
        qty: Decimal,
    },
    /// Ask the supplier to ship sooner.
    ExpeditePurchase {
        /// Purchase order.
        po_ref: String,
        /// Purchase line id.
        line: SourceId,
        /// Supplier name.
        supplier: String,
        /// The exact text the supplier receives, as the approver saw it (escaped when
        /// posted). Filled when the request is made; absent on recommendations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Buy elsewhere.
    ResourcePurchase {
        /// Product SKU.
        product: String,
        /// Quantity.
        qty: Decimal,
        /// Warehouse code.
        warehouse: String,
    },
    /// Agree a new date with the customer.
    Reschedule {
        /// Order.
        order: String,
        /// Proposed new promised date.
        new_date: DateTime<Utc>,
    },
    /// Release the order despite the credit position.
    ReleaseCreditHold {
        /// Order.
        order: String,
        /// Customer name.
        customer: String,
    },
    /// Correct the line's price.
    ApplyPrice {
        /// Order.
        order: String,
        /// Line id.
        line: SourceId,
        /// Price to apply (net unit price).
        price: Decimal,
    },
    /// Ask the warehouse, carrier or customer for missing documents.
    RequestDocuments {
        /// Picking.
        picking: String,
        /// Documents missing.
        documents: Vec<String>,
    },
    /// Contact the customer.
    ContactCustomer {
        /// Order.
        order: String,
        /// Why (internal: never sent to the customer).
        purpose: String,
        /// The exact text the customer receives, as the approver saw it (escaped when
        /// posted). Written or drafted when the request is made; absent on recommendations
        /// and on requests stored before it existed (those cannot execute).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Send the order to a role for a decision.
    RouteForApproval {
        /// Order.
        order: String,
        /// Role that decides.
        role: String,
    },
}

impl Action {
    /// Action name as used in `policies/approvals.toml`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Reallocate { .. } => "reallocate",
            Action::SplitShipment { .. } => "split_shipment",
            Action::Transfer { .. } => "transfer",
            Action::Substitute { .. } => "substitute",
            Action::ExpeditePurchase { .. } => "expedite_purchase",
            Action::ResourcePurchase { .. } => "resource_purchase",
            Action::Reschedule { .. } => "reschedule",
            Action::ReleaseCreditHold { .. } => "release_credit_hold",
            Action::ApplyPrice { .. } => "apply_price",
            Action::RequestDocuments { .. } => "request_documents",
            Action::ContactCustomer { .. } => "contact_customer",
            Action::RouteForApproval { .. } => "route_for_approval",
        }
    }
}

/// Longest message an action may send to a customer or supplier, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// Why a request's message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

impl Action {
    /// Whether executing it posts a public message outside the company (to the customer
    /// or the supplier), whose exact text the request must carry.
    pub fn sends_message(&self) -> bool {
        matches!(
            self,
            Action::ContactCustomer { .. } | Action::ExpeditePurchase { .. }
        )
    }

    /// The exact text the action sends, when it sends one and the request carries it.
    pub fn message(&self) -> Option<&str> {
        match self {
            Action::ContactCustomer { message, .. } | Action::ExpeditePurchase { message, .. } => {
                message.as_deref()
            }
            _ => None,
        }
    }

    /// The action as requested with `text` as its message: checked (not empty, at most
    /// [`MAX_MESSAGE_CHARS`], no control characters), trimmed, and required where the action
    /// contacts a customer. A supplier chaser without a text gets the standard one, which
    /// the approver then sees like any other.
    pub fn with_message(mut self, text: Option<&str>) -> Result<Action, MessageError> {
        let text = text.map(check_message).transpose()?;
        match &mut self {
            Action::ContactCustomer { message, .. } => {
                let text = text.or_else(|| message.take()).ok_or_else(|| {
                    MessageError(
                        "write or draft the message the customer will receive: a contact_customer request carries the exact text that is sent".into(),
                    )
                })?;
                *message = Some(check_message(&text)?);
            }
            Action::ExpeditePurchase {
                po_ref, message, ..
            } => {
                let text = match text.or_else(|| message.take()) {
                    Some(t) => check_message(&t)?,
                    None => format!("Please confirm whether {po_ref} can be shipped sooner."),
                };
                *message = Some(text);
            }
            other => {
                if text.is_some() {
                    return Err(MessageError(format!(
                        "{} sends no message; leave the message out",
                        other.name()
                    )));
                }
            }
        }
        Ok(self)
    }
}

/// A message as it may be sent: trimmed, not empty, bounded, no control characters other
/// than line breaks and tabs. HTML needs no refusal here: the executor escapes it.
pub fn check_message(text: &str) -> Result<String, MessageError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(MessageError(
            "the message is empty: write the text the recipient will receive".into(),
        ));
    }
    let n = t.chars().count();
    if n > MAX_MESSAGE_CHARS {
        return Err(MessageError(format!(
            "the message is {n} characters; at most {MAX_MESSAGE_CHARS}"
        )));
    }
    if let Some(c) = t
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(MessageError(format!(
            "the message contains the control character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(t.replace("\r\n", "\n"))
}

/// A proposed next step with its trade-offs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The action and its exact parameters.
    #[serde(flatten)]
    pub action: Action,
    /// What it does, in a sentence.
    pub summary: String,
    /// What it costs or risks.
    pub tradeoffs: Vec<String>,
    /// Roles that may approve it (from `policies/approvals.toml`).
    pub approver_roles: Vec<String>,
}

/// Escalation of an exception to another role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// Role escalated to.
    pub to_role: String,
    /// Why.
    pub reason: String,
}

/// A detected exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    /// Stable id: the same condition gives the same id across scans.
    pub id: String,
    /// Kind.
    pub kind: Kind,
    /// One-line summary.
    pub title: String,
    /// The order it concerns (a purchase order for supplier delays).
    pub order_ref: String,
    /// Line position within the order, when it concerns one line.
    pub line: Option<u32>,
    /// Line source id.
    pub line_id: Option<SourceId>,
    /// Other orders it affects (sales orders hurt by a supplier delay).
    pub related_orders: Vec<String>,
    /// Customer name (the supplier's for supplier delays without downstream orders).
    pub customer: String,
    /// Customer tier.
    pub tier: Tier,
    /// Warehouse code.
    pub warehouse: Option<String>,
    /// Product SKU.
    pub product: Option<String>,
    /// Impact.
    pub impact: Impact,
    /// Score 0–100.
    pub score: u8,
    /// Severity from the score.
    pub severity: Severity,
    /// How sure the detector is, 0–1.
    pub confidence: f64,
    /// Role that owns it.
    pub owner_role: String,
    /// Escalation, if the policy escalates it.
    pub escalation: Option<Escalation>,
    /// Facts with their source records.
    pub evidence: Vec<Evidence>,
    /// The policy key that fired (`thresholds.credit_hold.max_overdue_days`, `rules.<name>`).
    pub policy_rule: String,
    /// Version of the policy that fired.
    pub policy_version: String,
    /// Options, best first.
    pub recommendations: Vec<Recommendation>,
    /// Whether this is a prediction rather than a present condition.
    pub predicted: bool,
}

/// A stable exception id from the kind and the parts that identify the condition:
/// `EX-` and 16 hex digits of the 64-bit FNV-1a hash of them. FNV-1a is fixed by its
/// definition (no seed, no platform dependence), so ids stay the same across versions and
/// machines; at a million open exceptions the chance of any collision is about 3·10⁻⁸.
pub fn stable_id(kind: &str, parts: &[&str]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(kind.as_bytes());
    for p in parts {
        eat(&[0x1f]);
        eat(p.as_bytes());
    }
    // Hand-written hex: this runs once per exception.
    let mut id = String::with_capacity(19);
    id.push_str("EX-");
    for shift in (0..16).rev() {
        let nibble = ((h >> (shift * 4)) & 0xf) as u32;
        id.push(char::from_digit(nibble, 16).unwrap_or('0'));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_message_is_required_checked_and_kept() {
        let contact = Action::ContactCustomer {
            order: "S1".into(),
            purpose: "tell the customer the delivery is late".into(),
            message: None,
        };
        let e = contact.clone().with_message(None).err().map(|e| e.0);
        assert!(
            e.as_deref().is_some_and(
                |e| e.starts_with("write or draft the message the customer will receive")
            ),
            "{e:?}"
        );
        let ok = contact
            .clone()
            .with_message(Some("  Dear Ann,\r\nit ships Friday.  "));
        assert_eq!(
            ok.ok().as_ref().and_then(Action::message),
            Some("Dear Ann,\nit ships Friday.")
        );
        for bad in ["   ", "a\u{0}b", &"x".repeat(MAX_MESSAGE_CHARS + 1)] {
            assert!(contact.clone().with_message(Some(bad)).is_err(), "{bad:?}");
        }
        // Exactly the limit is fine; HTML is text here (the executor escapes it).
        let long = "é".repeat(MAX_MESSAGE_CHARS);
        assert!(contact.clone().with_message(Some(&long)).is_ok());
        assert!(contact.with_message(Some("<b>hi</b>")).is_ok());
        // A supplier chaser gets the standard text the approver sees; other actions take none.
        let chase = Action::ExpeditePurchase {
            po_ref: "P7".into(),
            line: 3,
            supplier: "Acme".into(),
            message: None,
        };
        assert_eq!(
            chase
                .with_message(None)
                .ok()
                .as_ref()
                .and_then(Action::message),
            Some("Please confirm whether P7 can be shipped sooner.")
        );
        let route = Action::RouteForApproval {
            order: "S1".into(),
            role: "finance".into(),
        };
        assert!(route.clone().with_message(Some("hi")).is_err());
        assert!(route.with_message(None).is_ok());
    }

    #[test]
    fn old_requests_without_a_message_still_read() {
        let old = serde_json::json!({"action": "contact_customer", "order": "S1", "purpose": "p"});
        let a: Result<Action, _> = serde_json::from_value(old.clone());
        assert_eq!(a.as_ref().ok().and_then(Action::message), None);
        // Recommendations serialise as before (no `message: null`).
        assert_eq!(
            a.ok().map(|a| serde_json::to_value(a).ok()),
            Some(Some(old))
        );
    }

    #[test]
    fn stable_id_is_fixed() {
        // Pinned: a change here would orphan every stored case.
        assert_eq!(
            stable_id("stock_shortage", &["S00042", "1234"]),
            stable_id("stock_shortage", &["S00042", "1234"])
        );
        assert_eq!(stable_id("", &[]), "EX-cbf29ce484222325");
        assert_eq!(
            stable_id("a", &[]),
            format!("EX-{:016x}", 0xaf63_dc4c_8601_ec8c_u64)
        );
        assert_ne!(stable_id("a", &["bc"]), stable_id("ab", &["c"]));
        assert_ne!(stable_id("k", &["a", "b"]), stable_id("k", &["ab"]));
    }
}
