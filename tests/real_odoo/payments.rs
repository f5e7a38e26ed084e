//! Planting payment history the way users make it: Invoicing → Customers → Invoices → New
//! (a line, the invoice date and due date) → Confirm; Credit Notes → New → Confirm, then
//! the invoice's "Outstanding credits" → Add; Register Payment on a chosen date
//! ([`RealOdoo::pay`]). Never SQL.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{RealOdoo, odoo_date};

impl RealOdoo {
    /// A posted customer invoice (or credit note, `out_refund`) of one untaxed line of
    /// `amount`, dated `date` and due `due`.
    pub async fn posted_move(
        &self,
        move_type: &str,
        customer: i64,
        product: i64,
        amount: f64,
        date: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> i64 {
        let id = self
            .create(
                "account.move",
                json!({
                    "move_type": move_type, "partner_id": customer,
                    "invoice_date": odoo_date(date), "invoice_date_due": odoo_date(due),
                    "invoice_line_ids": [[0, 0, {
                        "product_id": product, "quantity": 1, "price_unit": amount,
                        "tax_ids": [[6, 0, []]],
                    }]],
                }),
            )
            .await;
        self.call("account.move", "action_post", json!([[id]]), json!({}))
            .await;
        id
    }

    /// On an invoice, "Outstanding credits" → Add: settle it with a posted credit note.
    pub async fn apply_credit_note(&self, invoice: i64, credit_note: i64) {
        let line = self
            .find(
                "account.move.line",
                json!([
                    ["move_id", "=", credit_note],
                    ["account_type", "=", "asset_receivable"]
                ]),
            )
            .await;
        self.call(
            "account.move",
            "js_assign_outstanding_line",
            json!([[invoice], line]),
            json!({}),
        )
        .await;
    }
}
