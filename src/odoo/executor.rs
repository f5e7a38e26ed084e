//! Approved actions carried out in Odoo as named workflow calls — `message_post` (HTML body
//! flagged as HTML), `activity_schedule`, a promised-date or price update — never raw state
//! writes. Actions Odoo has no safe one-call method for (reallocations, transfers, splits,
//! substitutions, re-sourcing, credit releases) become an activity for the owner with the
//! exact instructions, plus a note.
//!
//! **What is sent is what was approved.** An action that messages a customer or supplier
//! carries the exact text in the request ([`Action::message`]); the executor posts that
//! text, escaped, and nothing else. The recommendation's internal purpose goes into the
//! internal note only. A request without its text (stored before the text was required)
//! fails before anything is written.
//!
//! **Idempotent by request id, before any side effect.** Every message the executor posts
//! carries a Message-Id made from the request id ([`Marks`]), and the activity's summary
//! names the request. Before acting, one read finds what already happened for the request:
//! the starting note, the customer or supplier message, the activity (open, or done), the
//! finished note; a written field is compared with the approved value. Then the executor
//! posts the starting note if it is missing, does only what is still missing, and posts
//! the finished note. A retry after a crash or timeout anywhere in between therefore sends
//! one message and schedules one activity, however many times it runs.
//!
//! The result lists every call with its arguments and Odoo's answer; the app audits it.
//! Errors say whether a retry may help ([`ExecError::transient`], from
//! [`OdooError::is_transient`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};

use super::client::OdooClient;
use super::config::OdooConfig;
use super::wire::{self, OdooError, Record};
use crate::app::source::{BoxFuture, ExecError, Executor, no_text};
use crate::core::Action;

/// Executes approved actions against Odoo.
pub struct OdooExecutor {
    client: Arc<OdooClient>,
    cfg: OdooConfig,
    done: Mutex<HashMap<String, Value>>,
}

/// The marks one request leaves in Odoo, by which a retry finds what already happened.
/// The first three are Message-Ids (RFC 5322) given to the messages the executor posts;
/// the last is the start of the summary of the activity it schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marks {
    /// The internal note posted before the first side effect.
    pub started: String,
    /// The customer's or supplier's message.
    pub message: String,
    /// The internal note that closes the execution.
    pub finished: String,
    /// The activity's summary starts with this (the colon keeps `ap_1` from matching
    /// `ap_10`).
    pub activity: String,
}

impl Marks {
    /// The marks of request `key` (an approval id: letters, digits, `_`, `-`, `.`).
    pub fn of(key: &str) -> Result<Marks, ExecError> {
        let ok = !key.is_empty()
            && key.len() <= 64
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(ExecError::permanent(format!(
                "request id `{}` cannot mark an Odoo record (letters, digits, _ - . only)",
                wire::truncate(key, 64)
            )));
        }
        Ok(Marks {
            started: format!("<{key}.started@order-copilot>"),
            message: format!("<{key}.message@order-copilot>"),
            finished: format!("<{key}.finished@order-copilot>"),
            activity: format!("order-copilot {key}:"),
        })
    }
}

/// What Odoo already holds for one request.
#[derive(Debug, Default)]
struct Progress {
    started: bool,
    message: bool,
    finished: Option<i64>,
    activity: bool,
}

/// The HTML body of a message: the text escaped, blank lines as paragraphs, line breaks
/// as `<br>`. Only `&`, `<` and `>` are escaped — enough for text nodes, and what Odoo's
/// sanitizer stores unchanged, so the stored body reads back equal.
pub fn message_html(text: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            format!(
                "<p>{}</p>",
                p.lines().map(escape).collect::<Vec<_>>().join("<br>")
            )
        })
        .collect()
}

fn exec_error(context: &str, e: &OdooError) -> ExecError {
    let message = format!("{context}: {e}");
    if e.is_transient() {
        ExecError::transient(message)
    } else {
        ExecError::permanent(message)
    }
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
            exec_error(
                &format!(
                    "{model}.{method} (calls so far: {})",
                    Value::Array(self.calls.clone())
                ),
                &e,
            )
        })
    }

    /// `message_post` of an HTML body on one record (a comment, or an internal note) with
    /// the Message-Id a retry looks for.
    async fn post(
        &mut self,
        c: &OdooClient,
        model: &str,
        id: i64,
        html: &str,
        note: bool,
        message_id: &str,
    ) -> Result<Value, ExecError> {
        let mut kw = wire::message_post_kwargs(html, note);
        kw.insert("message_id".into(), json!(message_id));
        self.call(c, model, "message_post", vec![json!([id])], kw)
            .await
    }
}

fn kw(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
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

    async fn read(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        all: bool,
    ) -> Result<Vec<Record>, ExecError> {
        let mut kw = kw(&[("fields", json!(fields))]);
        if all {
            // Archived rows too: an activity type that keeps done activities archives them.
            kw.insert("context".into(), json!({"active_test": false}));
        }
        let v = self
            .client
            .call(model, "search_read", vec![domain], kw)
            .await
            .map_err(|e| exec_error(&format!("cannot read {model}"), &e))?;
        wire::records(v).map_err(|e| exec_error(&format!("cannot read {model}"), &e))
    }

    /// The record an action concerns: its model, id and salesperson (for sales orders).
    async fn record(&self, action: &Action) -> Result<(&'static str, i64, Option<i64>), ExecError> {
        let (model, name, _) = Self::target(action);
        let (domain, fields): (Value, &[&str]) = match model {
            "product.product" => (json!([["default_code", "=", name]]), &["id"]),
            "sale.order" => (json!([["name", "=", name]]), &["id", "user_id"]),
            _ => (json!([["name", "=", name]]), &["id"]),
        };
        let rows = self.read(model, domain, fields, false).await?;
        let r = rows
            .first()
            .ok_or_else(|| ExecError::permanent(format!("{model} {name} is not in Odoo")))?;
        let id = wire::get(r, "id")
            .as_i64()
            .ok_or_else(|| ExecError::permanent(format!("{model} {name} has no id")))?;
        Ok((model, id, r.get("user_id").and_then(wire::m2o_id)))
    }

    /// What already happened for the request on the record.
    async fn progress(
        &self,
        model: &str,
        id: i64,
        marks: &Marks,
        activity: bool,
    ) -> Result<Progress, ExecError> {
        let rows = self
            .read(
                "mail.message",
                json!([
                    ["model", "=", model],
                    ["res_id", "=", id],
                    [
                        "message_id",
                        "in",
                        [&marks.started, &marks.message, &marks.finished]
                    ]
                ]),
                &["id", "message_id"],
                false,
            )
            .await?;
        let mut p = Progress::default();
        for r in &rows {
            match wire::get(r, "message_id").as_str() {
                Some(m) if m == marks.started => p.started = true,
                Some(m) if m == marks.message => p.message = true,
                Some(m) if m == marks.finished => p.finished = wire::get(r, "id").as_i64(),
                _ => {}
            }
        }
        if activity && p.finished.is_none() {
            let named = |rows: &[Record], field: &str| {
                rows.iter().any(|r| {
                    wire::get(r, field)
                        .as_str()
                        .is_some_and(|s| s.contains(&marks.activity))
                })
            };
            let open = self
                .read(
                    "mail.activity",
                    json!([
                        ["res_model", "=", model],
                        ["res_id", "=", id],
                        ["summary", "ilike", &marks.activity]
                    ]),
                    &["id", "summary"],
                    true,
                )
                .await?;
            p.activity = named(&open, "summary");
            if !p.activity {
                // Marked done already: Odoo deletes it and posts a message naming it.
                let done = self
                    .read(
                        "mail.message",
                        json!([
                            ["model", "=", model],
                            ["res_id", "=", id],
                            ["mail_activity_type_id", "!=", false],
                            ["body", "ilike", &marks.activity]
                        ]),
                        &["id", "body"],
                        false,
                    )
                    .await?;
                p.activity = named(&done, "body");
            }
        }
        Ok(p)
    }

    /// Who gets a role's activity: the login `[actions] role_users` names (when it exists
    /// in Odoo), else `fallback` (the order's salesperson), else the integration user.
    async fn user_for(&self, role: &str, fallback: Option<i64>) -> Result<i64, ExecError> {
        if let Some(login) = self.cfg.actions.role_users.get(role)
            && let Some(id) = self
                .client
                .first_id("res.users", json!([["login", "=", login]]))
                .await
                .map_err(|e| exec_error(&format!("cannot look up the {role}'s user"), &e))?
        {
            return Ok(id);
        }
        Ok(fallback.unwrap_or(self.client.uid()))
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

    /// What to tell the owner, as plain text (internal: notes and activities only).
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
            } => format!(
                "Ask {supplier} to ship {po_ref} sooner (the approved message was posted to them)."
            ),
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
            Action::ContactCustomer { order, purpose, .. } => {
                format!(
                    "Customer contacted about {order} (the approved message); purpose: {purpose}"
                )
            }
            Action::RouteForApproval { order, role } => {
                format!("{order} needs a decision by the {role}.")
            }
        }
    }

    /// Whether the action leaves an activity for its owner.
    fn schedules_activity(action: &Action) -> bool {
        !matches!(
            action,
            Action::Reschedule { .. } | Action::ApplyPrice { .. } | Action::ContactCustomer { .. }
        )
    }

    async fn run(&self, key: &str, action: &Action) -> Result<Value, ExecError> {
        let marks = Marks::of(key)?;
        // The public text is checked before anything is read or written.
        let public = match (action.sends_message(), action.message()) {
            (false, _) => None,
            (true, Some(text)) => Some(message_html(text)),
            (true, None) => return Err(ExecError::permanent(no_text(action))),
        };
        let c = &*self.client;
        let (model, id, owner) = self.record(action).await?;
        let activity = Self::schedules_activity(action);
        let p = self.progress(model, id, &marks, activity).await?;
        if let Some(m) = p.finished {
            return Ok(json!({
                "already_executed": true, "record": format!("{model},{id}"), "message_id": m,
            }));
        }
        let mut t = Trail { calls: Vec::new() };
        let text = Self::instructions(action);
        if !p.started {
            let note = format!(
                "<p><b>order-copilot</b> is carrying out approved request {key}: {}</p>",
                wire::escape_html(&text)
            );
            t.post(c, model, id, &note, true, &marks.started).await?;
        }
        crate::app::outbox::crash_point("after_marker");
        let mut updated = false;
        match action {
            Action::Reschedule { new_date, .. } => {
                let field = self.cfg.orders.promised_date_field.as_str();
                let want = json!(wire::format_datetime(*new_date));
                let now = self
                    .read(model, json!([["id", "=", id]]), &[field], false)
                    .await?;
                if now.first().map(|r| wire::get(r, field)) != Some(&want) {
                    t.call(
                        c,
                        model,
                        "write",
                        vec![json!([id]), json!({ field: want })],
                        Map::new(),
                    )
                    .await?;
                }
                updated = true;
            }
            Action::ApplyPrice { line, price, .. } => {
                let price: f64 = price.to_string().parse().map_err(|_| {
                    ExecError::permanent(format!("price {price} is not a number Odoo takes"))
                })?;
                let now = self
                    .read(
                        "sale.order.line",
                        json!([["id", "=", line]]),
                        &["price_unit", "discount"],
                        false,
                    )
                    .await?;
                let r = now.first().ok_or_else(|| {
                    ExecError::permanent(format!("sale.order.line {line} is not in Odoo"))
                })?;
                let same = |f: &str, v: f64| {
                    wire::get(r, f)
                        .as_f64()
                        .is_some_and(|x| (x - v).abs() < 1e-6)
                };
                if !(same("price_unit", price) && same("discount", 0.0)) {
                    t.call(
                        c,
                        "sale.order.line",
                        "write",
                        vec![json!([line]), json!({"price_unit": price, "discount": 0.0})],
                        Map::new(),
                    )
                    .await?;
                }
                updated = true;
            }
            _ => {}
        }
        if let Some(body) = &public
            && !p.message
        {
            t.post(c, model, id, body, false, &marks.message).await?;
        }
        if activity && !p.activity {
            let route_role = match action {
                Action::RouteForApproval { role, .. } => role.as_str(),
                _ => Self::target(action).2,
            };
            let user = self.user_for(route_role, owner).await?;
            let deadline = (Utc::now() + Duration::days(1))
                .format("%Y-%m-%d")
                .to_string();
            t.call(
                c,
                model,
                "activity_schedule",
                vec![json!([id]), json!("mail.mail_activity_data_todo")],
                kw(&[
                    (
                        "summary",
                        json!(format!(
                            "{} {}",
                            marks.activity,
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
        crate::app::outbox::crash_point("after_side_effect");
        // The note closes the execution and marks it done.
        let note = format!(
            "<p><b>order-copilot</b>: {}</p><p><small>order-copilot approval {} done</small></p>",
            wire::escape_html(&text),
            wire::escape_html(key)
        );
        let answer = t.post(c, model, id, &note, true, &marks.finished).await?;
        let mode = match (&public, updated) {
            (Some(_), _) => "message",
            (None, true) => "update",
            (None, false) => "activity",
        };
        Ok(json!({
            "mode": mode, "record": format!("{model},{id}"), "message_id": wire::record_id(&answer),
            "resumed": p.started, "calls": t.calls,
        }))
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
        exec_error("Odoo", &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_html_escapes_and_keeps_lines() {
        assert_eq!(
            message_html("Dear Ann,\n\nS1 <b>ships</b> 3 & 4 June.\nThanks"),
            "<p>Dear Ann,</p><p>S1 &lt;b&gt;ships&lt;/b&gt; 3 &amp; 4 June.<br>Thanks</p>"
        );
        assert_eq!(message_html("a\r\nb"), "<p>a<br>b</p>");
    }

    #[test]
    fn marks_name_the_request_and_refuse_odd_ids() {
        let m = Marks::of("ap_0a1b").ok();
        assert_eq!(
            m.as_ref().map(|m| m.started.as_str()),
            Some("<ap_0a1b.started@order-copilot>")
        );
        assert_eq!(
            m.as_ref().map(|m| m.activity.as_str()),
            Some("order-copilot ap_0a1b:")
        );
        for bad in ["", "ap 1", "ap%", "a>b"] {
            assert!(Marks::of(bad).is_err(), "{bad}");
        }
    }
}
