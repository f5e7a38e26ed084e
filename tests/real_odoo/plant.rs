//! Planting scenarios the way users make them: each helper is the API call a click in the
//! Odoo UI makes (create a record, Confirm, Physical Inventory → Apply, Validate, Create
//! Invoice → Post, Register Payment, attach a file in the chatter), never SQL.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{RealOdoo, odoo_date, odoo_datetime};

impl RealOdoo {
    /// The main warehouse's stock location.
    pub async fn stock_location(&self) -> i64 {
        let wh = self
            .search_read("stock.warehouse", json!([]), &["lot_stock_id"])
            .await;
        wh[0]["lot_stock_id"][0].as_i64().unwrap()
    }

    /// A company customer (Contacts → New, "Company"); `extra` adds fields (credit limit,
    /// tags, language, country, pricelist…).
    pub async fn customer(&self, name: &str, extra: Value) -> i64 {
        let mut vals = json!({"name": name, "is_company": true});
        merge(&mut vals, extra);
        self.create("res.partner", vals).await
    }

    /// A company vendor.
    pub async fn vendor(&self, name: &str) -> i64 {
        self.create("res.partner", json!({"name": name, "is_company": true}))
            .await
    }

    /// A storable product (17: `type = product`; 18: `is_storable`).
    pub async fn product(&self, sku: &str, name: &str, list_price: f64, cost: f64) -> i64 {
        let mut vals = json!({
            "name": name, "default_code": sku, "list_price": list_price, "standard_price": cost,
        });
        if self.version >= 18 {
            merge(&mut vals, json!({"type": "consu", "is_storable": true}));
        } else {
            merge(&mut vals, json!({"type": "product"}));
        }
        self.create("product.product", vals).await
    }

    /// Inventory → Physical Inventory: count `qty` of a product in the main stock, Apply.
    pub async fn set_stock(&self, product: i64, qty: f64) {
        let loc = self.stock_location().await;
        let q = self
            .admin
            .call(
                "stock.quant",
                "create",
                vec![json!({"product_id": product, "location_id": loc, "inventory_quantity": qty})],
                obj(json!({"context": {"inventory_mode": true}})),
            )
            .await
            .unwrap();
        let q = q.as_i64().unwrap();
        self.call(
            "stock.quant",
            "action_apply_inventory",
            json!([[q]]),
            json!({}),
        )
        .await;
    }

    /// A quotation for `customer` with `(product, qty)` lines; `extra` sets order fields
    /// (`commitment_date`, `client_order_ref`, …) and `line_extra` line fields by index.
    pub async fn quotation(&self, customer: i64, lines: &[(i64, f64)], extra: Value) -> i64 {
        let order_line: Vec<Value> = lines
            .iter()
            .map(|(p, q)| json!([0, 0, {"product_id": p, "product_uom_qty": q}]))
            .collect();
        let mut vals = json!({"partner_id": customer, "order_line": order_line});
        merge(&mut vals, extra);
        self.create("sale.order", vals).await
    }

    /// Confirm a quotation (the Confirm button).
    pub async fn confirm(&self, order: i64) {
        self.call("sale.order", "action_confirm", json!([[order]]), json!({}))
            .await;
    }

    /// A confirmed order.
    pub async fn order(&self, customer: i64, lines: &[(i64, f64)], extra: Value) -> i64 {
        let id = self.quotation(customer, lines, extra).await;
        self.confirm(id).await;
        id
    }

    /// An order's name (`S00001`).
    pub async fn name_of(&self, model: &str, id: i64) -> String {
        self.read(model, &[id], &["name"]).await[0]["name"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// An order's delivery orders, oldest first.
    pub async fn deliveries(&self, order: i64) -> Vec<i64> {
        self.search_read(
            "stock.picking",
            json!([
                ["sale_id", "=", order],
                ["picking_type_code", "=", "outgoing"]
            ]),
            &["id"],
        )
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
    }

    /// Check availability on a delivery (the "Check Availability" button).
    pub async fn check_availability(&self, picking: i64) {
        self.call(
            "stock.picking",
            "action_assign",
            json!([[picking]]),
            json!({}),
        )
        .await;
    }

    /// Tick "picked" on every move of a delivery (what was reserved is what ships) and
    /// press Validate; Odoo's answer (`true`, or the wizard it opens).
    pub async fn pick_and_validate(&self, picking: i64) -> Value {
        let moves =
            self.read("stock.picking", &[picking], &["move_ids"]).await[0]["move_ids"].clone();
        let ids: Vec<i64> = moves
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        self.write("stock.move", &ids, json!({"picked": true}))
            .await;
        self.call(
            "stock.picking",
            "button_validate",
            json!([[picking]]),
            json!({}),
        )
        .await
    }

    /// Validate a delivery with everything reserved on it picked (Validate).
    pub async fn validate(&self, picking: i64) {
        let r = self.pick_and_validate(picking).await;
        assert_eq!(
            r,
            json!(true),
            "validating picking {picking} asked for a wizard: {r}"
        );
    }

    /// Ship an order's first open delivery (reserve, pick, validate); its id.
    pub async fn ship(&self, order: i64) -> i64 {
        let p = self.deliveries(order).await[0];
        self.check_availability(p).await;
        self.validate(p).await;
        p
    }

    /// Create Invoice (regular, from delivered/ordered quantities) → set the dates → Post.
    /// Dates default to today's; the due date is written as given (no payment term).
    pub async fn invoice(
        &self,
        order: i64,
        invoice_date: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> i64 {
        let w = self
            .create(
                "sale.advance.payment.inv",
                json!({"advance_payment_method": "delivered", "sale_order_ids": [[6, 0, [order]]]}),
            )
            .await;
        self.call(
            "sale.advance.payment.inv",
            "create_invoices",
            json!([[w]]),
            json!({}),
        )
        .await;
        let inv = self
            .search_read(
                "account.move",
                json!([
                    ["move_type", "=", "out_invoice"],
                    ["state", "=", "draft"],
                    ["invoice_line_ids.sale_line_ids.order_id", "=", order]
                ]),
                &["id"],
            )
            .await[0]["id"]
            .as_i64()
            .unwrap();
        self.write(
            "account.move",
            &[inv],
            json!({"invoice_date": odoo_date(invoice_date), "invoice_date_due": odoo_date(due), "invoice_payment_term_id": false}),
        )
        .await;
        self.call("account.move", "action_post", json!([[inv]]), json!({}))
            .await;
        inv
    }

    /// Register Payment on an invoice: `amount` paid on `date`.
    pub async fn pay(&self, invoice: i64, amount: f64, date: DateTime<Utc>) {
        let w = self
            .admin
            .call(
                "account.payment.register",
                "create",
                vec![json!({"payment_date": odoo_date(date), "amount": amount})],
                obj(json!({"context": {"active_model": "account.move", "active_ids": [invoice]}})),
            )
            .await
            .unwrap()
            .as_i64()
            .unwrap();
        self.call(
            "account.payment.register",
            "action_create_payments",
            json!([[w]]),
            json!({}),
        )
        .await;
    }

    /// A confirmed purchase order (Confirm Order) of one line planned for `planned`.
    pub async fn purchase(
        &self,
        vendor: i64,
        product: i64,
        qty: f64,
        planned: DateTime<Utc>,
    ) -> i64 {
        let po = self
            .create(
                "purchase.order",
                json!({"partner_id": vendor, "order_line": [[0, 0, {
                    "product_id": product, "product_qty": qty, "date_planned": odoo_datetime(planned),
                }]]}),
            )
            .await;
        self.call("purchase.order", "button_confirm", json!([[po]]), json!({}))
            .await;
        po
    }

    /// Attach a file in a record's chatter (upload, then post the message with it).
    pub async fn attach(&self, model: &str, id: i64, file_name: &str, content: &[u8]) -> i64 {
        let att = self
            .create(
                "ir.attachment",
                json!({
                    "name": file_name,
                    "datas": base64::engine::general_purpose::STANDARD.encode(content),
                    "res_model": "mail.compose.message",
                    "res_id": 0,
                }),
            )
            .await;
        self.call(
            model,
            "message_post",
            json!([[id]]),
            json!({"body": format!("{file_name} attached"), "attachment_ids": [att],
                   "message_type": "comment", "subtype_xmlid": "mail.mt_note"}),
        )
        .await;
        att
    }
}

/// Add `extra`'s keys to `vals`.
pub fn merge(vals: &mut Value, extra: Value) {
    if let (Value::Object(v), Value::Object(e)) = (vals, extra) {
        v.extend(e);
    }
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => serde_json::Map::new(),
    }
}
