//! Approved actions carried out in Odoo as named workflow calls — `message_post` (HTML body
//! flagged as HTML), `activity_schedule`, a promised-date or price update — never raw state
//! writes. Actions Odoo has no safe one-call method for (reallocations, transfers, splits,
//! substitutions, re-sourcing, credit releases) become an activity for the owner with the
//! exact instructions, plus a note.
//!
//! Every execution ends with an internal note on the record carrying the approval id; before
//! acting, the executor looks for that note, so a retry after a crash does not act twice.
//! The result lists every call with its arguments and Odoo's answer; the app audits it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};

use super::client::OdooClient;
use super::config::OdooConfig;
use super::wire::{self, OdooError};
use crate::app::source::{BoxFuture, ExecError, Executor};
use crate::core::Action;

/// Executes approved actions against Odoo.
pub struct OdooExecutor {
    client: Arc<OdooClient>,
    cfg: OdooConfig,
    done: Mutex<HashMap<String, Value>>,
}

/// Calls made for one execution, kept for the audit.
struct Trail {
    calls: Vec<Value>,
}

impl Trail {
    async fn call(
        &mut self,
        c: &OdooClient,
        model: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, ExecError> {
        let req = json!({"model": model, "method": method, "args": args, "kwargs": kwargs});
        let answer = c.call(model, method, args, kwargs).await;
        let entry = match &answer {
            Ok(v) => json!({"request": req, "answer": v}),
            Err(e) => json!({"request": req, "error": e.to_string()}),
        };
        self.calls.push(entry);
        answer.map_err(|e| {
            ExecError(format!(
                "{model}.{method}: {e}; calls so far: {}",
                Value::Array(self.calls.clone())
            ))
        })
    }
}

impl Trail {
    /// `message_post` of an HTML body on one record (a comment, or an internal note).
    async fn post(
        &mut self,
        c: &OdooClient,
        model: &str,
        id: i64,
        html: &str,
        note: bool,
    ) -> Result<Value, ExecError> {
        self.call(
            c,
            model,
            "message_post",
            vec![json!([id])],
            wire::message_post_kwargs(html, note),
        )
        .await
    }
}

fn kw(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The marker that makes executions idempotent.
fn marker(key: &str) -> String {
    format!("order-copilot approval {key}")
}

impl OdooExecutor {
    /// An executor over a connected client.
    pub fn new(client: Arc<OdooClient>, cfg: OdooConfig) -> OdooExecutor {
        OdooExecutor {
            client,
            cfg,
            done: Mutex::new(HashMap::new()),
        }
    }

    async fn find(&self, model: &str, name: &str) -> Result<(i64, Option<i64>), ExecError> {
        let fields: &[&str] = if model == "sale.order" {
            &["name", "user_id"]
        } else {
            &["name"]
        };
        let rows = self
            .client
            .search_read(
                model,
                json!([["name", "=", name]]),
                fields,
                None,
                0,
                Some(1),
            )
            .await
            .map_err(|e| ExecError(format!("cannot look up {model} {name}: {e}")))?;
        let r = rows
            .first()
            .ok_or_else(|| ExecError(format!("{model} {name} is not in Odoo")))?;
        Ok((
            wire::get(r, "id").as_i64().unwrap_or(0),
            r.get("user_id").and_then(wire::m2o_id),
        ))
    }

    async fn user_for(&self, role: &str, fallback: Option<i64>) -> i64 {
        if let Some(login) = self.cfg.actions.role_users.get(role)
            && let Ok(Some(id)) = self
                .client
                .first_id("res.users", json!([["login", "=", login]]))
                .await
        {
            return id;
        }
        fallback.unwrap_or(self.client.uid())
    }

    /// The model, record name and role an action concerns.
    fn target(action: &Action) -> (&'static str, String, &'static str) {
        match action {
            Action::ExpeditePurchase { po_ref, .. } => ("purchase.order", po_ref.clone(), "buyer"),
            Action::RequestDocuments { picking, .. } => {
                ("stock.picking", picking.clone(), "service_rep")
            }
            Action::Reallocate { to_order, .. } => ("sale.order", to_order.clone(), "planner"),
            Action::Transfer { product, .. } | Action::ResourcePurchase { product, .. } => {
                ("product.product", product.clone(), "planner")
            }
            Action::SplitShipment { order, .. } | Action::Substitute { order, .. } => {
                ("sale.order", order.clone(), "planner")
            }
            Action::Reschedule { order, .. } | Action::ContactCustomer { order, .. } => {
                ("sale.order", order.clone(), "service_rep")
            }
            Action::ReleaseCreditHold { order, .. } => ("sale.order", order.clone(), "finance"),
            Action::ApplyPrice { order, .. } => ("sale.order", order.clone(), "sales_manager"),
            Action::RouteForApproval { order, .. } => {
                ("sale.order", order.clone(), "sales_manager")
            }
        }
    }

    /// What to tell the owner, as plain text.
    fn instructions(action: &Action) -> String {
        match action {
            Action::Reallocate {
                product,
                qty,
                warehouse,
                from_order,
                to_order,
                ..
            } => format!(
                "Move {qty} × {product} reserved in {warehouse} from {from_order} to {to_order} (unreserve {from_order}'s delivery, then check availability on {to_order}'s)."
            ),
            Action::SplitShipment {
                order,
                ship_now,
                backorder,
                ..
            } => format!("Ship {ship_now} now on {order} and create a backorder for {backorder}."),
            Action::Transfer {
                product,
                qty,
                from_warehouse,
                to_warehouse,
            } => format!(
                "Create an internal transfer of {qty} × {product} from {from_warehouse} to {to_warehouse}."
            ),
            Action::Substitute {
                order,
                from_product,
                to_product,
                qty,
                ..
            } => format!(
                "Offer {to_product} instead of {from_product} ({qty}) on {order}, with the customer's agreement."
            ),
            Action::ExpeditePurchase {
                po_ref, supplier, ..
            } => format!("Ask {supplier} to ship {po_ref} sooner."),
            Action::ResourcePurchase {
                product,
                qty,
                warehouse,
            } => format!("Buy {qty} × {product} for {warehouse} from another vendor."),
            Action::Reschedule { order, new_date } => format!(
                "{order}: promised date set to {}.",
                new_date.format("%Y-%m-%d %H:%M")
            ),
            Action::ReleaseCreditHold { order, customer } => format!(
                "Finance released {order} for {customer} despite the credit position; it may ship."
            ),
            Action::ApplyPrice { line, price, .. } => {
                format!("Line {line}: unit price set to {price}, no discount.")
            }
            Action::RequestDocuments { picking, documents } => format!(
                "Attach the missing documents to {picking}: {}.",
                documents.join(", ")
            ),
            Action::ContactCustomer { order, purpose } => {
                format!("Customer contacted about {order}: {purpose}")
            }
            Action::RouteForApproval { order, role } => {
                format!("{order} needs a decision by the {role}.")
            }
        }
    }

    async fn run(&self, key: &str, action: &Action) -> Result<Value, ExecError> {
        let c = &*self.client;
        let (model, name, role) = Self::target(action);
        let (model, name) = if model == "product.product" {
            // Product-level actions land on the order that raised them when there is none
            // better: the note goes to the product's chatter.
            let id = c
                .first_id("product.product", json!([["default_code", "=", name]]))
                .await?
                .ok_or_else(|| ExecError(format!("product {name} is not in Odoo")))?;
            ("product.product", id.to_string())
        } else {
            (model, name)
        };
        let (id, owner) = if model == "product.product" {
            (name.parse().unwrap_or(0), None)
        } else {
            self.find(model, &name).await?
        };
        // Already done? (a retry after a crash)
        let prior = c
            .search_read(
                "mail.message",
                json!([
                    ["model", "=", model],
                    ["res_id", "=", id],
                    ["body", "ilike", marker(key)]
                ]),
                &["id"],
                None,
                0,
                Some(1),
            )
            .await
            .map_err(|e| ExecError(e.to_string()))?;
        if let Some(m) = prior.first().and_then(|r| wire::get(r, "id").as_i64()) {
            return Ok(
                json!({"already_executed": true, "record": format!("{model},{id}"), "message_id": m}),
            );
        }
        let mut t = Trail { calls: Vec::new() };
        let text = Self::instructions(action);
        let deadline = (Utc::now() + Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
        let mut mode = "activity";
        match action {
            Action::Reschedule { new_date, .. } => {
                mode = "update";
                let field = self.cfg.orders.promised_date_field.clone();
                t.call(
                    c,
                    model,
                    "write",
                    vec![
                        json!([id]),
                        json!({field: wire::format_datetime(*new_date)}),
                    ],
                    Map::new(),
                )
                .await?;
            }
            Action::ApplyPrice { line, price, .. } => {
                mode = "update";
                t.call(c, "sale.order.line", "write", vec![json!([line]), json!({"price_unit": price.to_string().parse::<f64>().unwrap_or(0.0), "discount": 0.0})], Map::new()).await?;
            }
            Action::ContactCustomer { purpose, .. } => {
                mode = "message";
                let body = format!("<p>{}</p>", wire::escape_html(purpose));
                t.post(c, model, id, &body, false).await?;
            }
            Action::ExpeditePurchase { po_ref, .. } => {
                mode = "message";
                let body = format!(
                    "<p>Please confirm whether {} can be shipped sooner.</p>",
                    wire::escape_html(po_ref)
                );
                t.post(c, model, id, &body, false).await?;
            }
            _ => {}
        }
        if matches!(mode, "activity") || matches!(action, Action::ExpeditePurchase { .. }) {
            let route_role = match action {
                Action::RouteForApproval { role, .. } => role.as_str(),
                _ => role,
            };
            let user = self.user_for(route_role, owner).await;
            t.call(
                c,
                model,
                "activity_schedule",
                vec![json!([id]), json!("mail.mail_activity_data_todo")],
                kw(&[
                    (
                        "summary",
                        json!(format!(
                            "order-copilot: {}",
                            action.name().replace('_', " ")
                        )),
                    ),
                    (
                        "note",
                        json!(format!("<p>{}</p>", wire::escape_html(&text))),
                    ),
                    ("date_deadline", json!(deadline)),
                    ("user_id", json!(user)),
                ]),
            )
            .await?;
        }
        // The note closes the execution and marks it done.
        let note = format!(
            "<p><b>order-copilot</b>: {}</p><p><small>{}</small></p>",
            wire::escape_html(&text),
            wire::escape_html(&marker(key))
        );
        let answer = t
            .call(
                c,
                model,
                "message_post",
                vec![json!([id])],
                wire::message_post_kwargs(&note, true),
            )
            .await?;
        Ok(
            json!({"mode": mode, "record": format!("{model},{id}"), "message_id": wire::record_id(&answer), "calls": t.calls}),
        )
    }
}

impl Executor for OdooExecutor {
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            if let Some(v) = match self.done.lock() {
                Ok(g) => g.get(key).cloned(),
                Err(p) => p.into_inner().get(key).cloned(),
            } {
                return Ok(v);
            }
            let v = self.run(key, action).await?;
            match self.done.lock() {
                Ok(mut g) => g.insert(key.to_string(), v.clone()),
                Err(p) => p.into_inner().insert(key.to_string(), v.clone()),
            };
            Ok(v)
        })
    }
}

impl From<OdooError> for ExecError {
    fn from(e: OdooError) -> Self {
        ExecError(e.to_string())
    }
}
