//! Planting for the order-desk kinds (shipment delay, missing documents, price mismatch,
//! credit hold): each helper is what a user's clicks do — Settings → Customer Credit Limit,
//! a partner's credit limit, a customer's own pricelist, editing a quotation line, moving a
//! delivery's scheduled date, the backorder wizard — never SQL.

use serde_json::{Value, json};

use super::RealOdoo;
use super::plant::merge;

impl RealOdoo {
    /// Settings: set `vals` and Save (the other settings keep their current values).
    pub async fn settings(&self, vals: Value) {
        let w = self.create("res.config.settings", vals).await;
        self.call("res.config.settings", "execute", json!([[w]]), json!({}))
            .await;
    }

    /// Settings → Invoicing → Customer Credit Limit: turn it on (no default limit), Save.
    pub async fn enable_credit_limits(&self) {
        self.settings(json!({"account_use_credit_limit": true}))
            .await;
    }

    /// A customer's own credit limit (Sales & Purchase tab → Partner Limit, then the amount).
    pub async fn set_credit_limit(&self, partner: i64, limit: f64) {
        self.write(
            "res.partner",
            &[partner],
            json!({"use_partner_credit_limit": true, "credit_limit": limit}),
        )
        .await;
    }

    /// A country's id by ISO code.
    pub async fn country(&self, code: &str) -> i64 {
        self.find("res.country", json!([["code", "=", code]])).await
    }

    /// Settings → Sales → Pricelists: turn them on, Save. (Saving the settings with
    /// pricelists off archives every pricelist, so this comes before any other setting.)
    pub async fn enable_pricelists(&self) {
        self.settings(json!({"group_product_pricelist": true}))
            .await;
    }

    /// A customer's own pricelist with one fixed price from `min_qty` units (Sales →
    /// Pricelists → New, a rule on the product variant; then the customer's Sales &
    /// Purchase tab → Pricelist).
    pub async fn contract_price(
        &self,
        customer: i64,
        name: &str,
        product: i64,
        price: f64,
        min_qty: f64,
    ) -> i64 {
        let pl = self
            .create(
                "product.pricelist",
                json!({"name": name, "item_ids": [[0, 0, {
                    "applied_on": "0_product_variant", "product_id": product,
                    "compute_price": "fixed", "fixed_price": price, "min_quantity": min_qty,
                }]]}),
            )
            .await;
        self.write(
            "res.partner",
            &[customer],
            json!({"property_product_pricelist": pl}),
        )
        .await;
        pl
    }

    /// A quotation with one line edited before it is saved (`line` sets its fields).
    pub async fn quotation_with(&self, customer: i64, product: i64, qty: f64, line: Value) -> i64 {
        let mut vals = json!({"product_id": product, "product_uom_qty": qty});
        merge(&mut vals, line);
        self.create(
            "sale.order",
            json!({"partner_id": customer, "order_line": [[0, 0, vals]]}),
        )
        .await
    }

    /// Move a delivery's Scheduled Date (the field on the transfer form).
    pub async fn reschedule(&self, picking: i64, when: &str) {
        self.write("stock.picking", &[picking], json!({"scheduled_date": when}))
            .await;
    }

    /// Validate a delivery that holds less than ordered and answer "Create Backorder";
    /// the backorder's id.
    pub async fn validate_with_backorder(&self, picking: i64) -> i64 {
        let wizard = self.pick_and_validate(picking).await;
        assert_eq!(
            wizard["res_model"], "stock.backorder.confirmation",
            "validating a partly reserved delivery offers a backorder: {wizard}"
        );
        let ctx = wizard["context"].clone();
        let w = self
            .admin
            .call(
                "stock.backorder.confirmation",
                "create",
                vec![json!({"pick_ids": [[4, picking]]})],
                serde_json::Map::from_iter([("context".to_string(), ctx.clone())]),
            )
            .await
            .unwrap()
            .as_i64()
            .unwrap();
        self.admin
            .call(
                "stock.backorder.confirmation",
                "process",
                vec![json!([w])],
                serde_json::Map::from_iter([("context".to_string(), ctx)]),
            )
            .await
            .unwrap();
        self.find("stock.picking", json!([["backorder_id", "=", picking]]))
            .await
    }
}
