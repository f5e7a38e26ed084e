//! Planting supply situations the way users make them: partner tags (Contacts → Tags),
//! editing a confirmed order's lines in the form (each Save is one write of `order_line`
//! commands), and reading back what Odoo reserved on the delivery moves.

use std::sync::Arc;

use order_copilot::domain::Snapshot;
use order_copilot::odoo::config::{DEFAULT, OdooConfig};
use order_copilot::odoo::source::OdooSource;
use serde_json::{Value, json};

use chrono::{DateTime, Utc};

use super::{RealOdoo, odoo_datetime};

impl RealOdoo {
    /// A partner tag (Contacts → Configuration → Tags), created if missing.
    pub async fn tag(&self, name: &str) -> i64 {
        let found = self
            .search_read(
                "res.partner.category",
                json!([["name", "=", name]]),
                &["id"],
            )
            .await;
        match found.first().and_then(|r| r["id"].as_i64()) {
            Some(id) => id,
            None => {
                self.create("res.partner.category", json!({"name": name}))
                    .await
            }
        }
    }

    /// The tags field value for `names` (`category_id`).
    pub async fn tags(&self, names: &[&str]) -> Value {
        let mut ids = Vec::new();
        for n in names {
            ids.push(self.tag(n).await);
        }
        json!({"category_id": [[6, 0, ids]]})
    }

    /// An order's line ids, in the order's line order.
    pub async fn order_lines(&self, order: i64) -> Vec<i64> {
        self.search_read(
            "sale.order.line",
            json!([["order_id", "=", order], ["display_type", "=", false]]),
            &["id", "sequence"],
        )
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
    }

    /// Edit one line of an order in the form and Save (one `write` of `order_line`).
    pub async fn edit_line(&self, order: i64, line: i64, vals: Value) {
        self.write(
            "sale.order",
            &[order],
            json!({"order_line": [[1, line, vals]]}),
        )
        .await;
    }

    /// Add a line to an order in the form and Save.
    pub async fn add_line(&self, order: i64, product: i64, qty: f64) {
        self.write(
            "sale.order",
            &[order],
            json!({"order_line": [[0, 0, {"product_id": product, "product_uom_qty": qty}]]}),
        )
        .await;
    }

    /// What Odoo reserved for an order: the `quantity` of its open delivery moves.
    pub async fn reserved(&self, order: i64) -> f64 {
        self.search_read(
            "stock.move",
            json!([
                ["sale_line_id.order_id", "=", order],
                ["state", "not in", ["draft", "done", "cancel"]]
            ]),
            &["quantity"],
        )
        .await
        .iter()
        .map(|r| r["quantity"].as_f64().unwrap())
        .sum()
    }

    /// The one line of a purchase order.
    pub async fn purchase_line(&self, po: i64) -> i64 {
        self.find("purchase.order.line", json!([["order_id", "=", po]]))
            .await
    }

    /// Make a product make-to-order and bought from `vendor` with `delay` days of lead
    /// time (Inventory → Configuration: the archived "Replenish on Order (MTO)" route
    /// unarchived; the product's Routes: MTO + Buy; its Purchase tab: a vendor line).
    pub async fn make_to_order(&self, product: i64, vendor: i64, delay: i64) {
        let mto = self.xmlid("stock.route_warehouse0_mto").await;
        let buy = self.xmlid("purchase_stock.route_warehouse0_buy").await;
        self.write("stock.route", &[mto], json!({"active": true}))
            .await;
        let tmpl = self
            .read("product.product", &[product], &["product_tmpl_id"])
            .await[0]["product_tmpl_id"][0]
            .as_i64()
            .unwrap();
        self.write(
            "product.template",
            &[tmpl],
            json!({"route_ids": [[6, 0, [mto, buy]]]}),
        )
        .await;
        self.create(
            "product.supplierinfo",
            json!({"partner_id": vendor, "product_tmpl_id": tmpl, "delay": delay, "price": 1.0}),
        )
        .await;
    }

    /// The request for quotation a confirmed make-to-order sale created (its source
    /// document is the order), confirmed (Confirm Order); its id and its one line.
    pub async fn confirm_procured_purchase(&self, order: i64) -> (i64, i64) {
        let name = self.name_of("sale.order", order).await;
        let po = self
            .find("purchase.order", json!([["origin", "=", name]]))
            .await;
        self.call("purchase.order", "button_confirm", json!([[po]]), json!({}))
            .await;
        (po, self.purchase_line(po).await)
    }

    /// Edit a purchase line's expected arrival in the purchase order form and Save.
    pub async fn replan_purchase_line(&self, po: i64, line: i64, planned: DateTime<Utc>) {
        self.write(
            "purchase.order",
            &[po],
            json!({"order_line": [[1, line, {"date_planned": odoo_datetime(planned)}]]}),
        )
        .await;
    }

    /// One full load of this database through the connector with the built-in mappings.
    pub async fn snapshot(&self) -> Snapshot {
        let cfg = OdooConfig::parse("default", DEFAULT).unwrap();
        let source = OdooSource::new(self.admin.clone(), cfg);
        Arc::unwrap_or_clone(source.refresh().await.unwrap())
    }
}
