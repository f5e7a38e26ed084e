//! Events in seconds: Odoo tells the server when an order, a delivery, a purchase or an
//! invoice changes, and the server scans right away instead of at the next poll.
//!
//! `odoo setup` installs one automation rule per model in [`EVENT_MODELS`] ("On save",
//! action "Send Webhook Notification" to `/odoo/events?secret=…`; [`setup_events`]). Odoo
//! sends the webhook *inside* the saving transaction, with a one-second timeout — one per
//! record saved, a confirmation saves the order, its lines, its delivery — so the
//! endpoint answers 202 at once and the [`EventScanner`] scans once the webhooks have been
//! quiet for [`SETTLE`] (at most [`MAX_SETTLE`]), when the change is committed: the scan's incremental sync re-reads the
//! records written since the last sync (the evented ones among them) and re-scans. One
//! more scan follows [`CONFIRM_AFTER`] later, for a transaction that committed after the
//! first read. Events arriving during a scan coalesce into one more scan. The poll
//! (`--scan-interval`) stays as the safety net for a lost webhook.
//!
//! The endpoint is separate from the bot's `/odoo/webhook` (its own secret,
//! `ODOO_EVENTS_SECRET`), takes bodies up to [`MAX_BODY`] bytes and [`EVENTS_PER_MINUTE`]
//! deliveries a minute; a payload is data (model and id, checked), never an instruction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::bot::{MinuteWindow, webhook_secret_ok};
use super::client::{OdooClient, Secret};
use super::wire::{self, OdooError};
use crate::app::App;

/// The models whose changes trigger a scan.
pub const EVENT_MODELS: &[&str] = &[
    "sale.order",
    "sale.order.line",
    "stock.picking",
    "purchase.order",
    "purchase.order.line",
    "account.move",
];

/// Name of the automation rule of one model (found again by it on the next setup).
pub fn rule_name(model: &str) -> String {
    format!("order-copilot: scan on {model} change")
}

/// Quiet time after the last event before scanning: Odoo commits the change after the
/// last webhook of its transaction.
pub const SETTLE: Duration = Duration::from_millis(150);
/// Longest wait for the events of one save to stop.
pub const MAX_SETTLE: Duration = Duration::from_secs(1);
/// A second scan this long after an evented one, for a change committed after the first.
pub const CONFIRM_AFTER: Duration = Duration::from_secs(2);
/// Deliveries per minute the endpoint takes before answering 429.
pub const EVENTS_PER_MINUTE: usize = 1200;
/// Largest payload accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Runs the scans events ask for, one at a time.
pub struct EventScanner {
    bell: Notify,
    /// Events accepted.
    pub received: AtomicU64,
    /// Scans run because of events (including confirmation scans).
    pub scans: AtomicU64,
}

impl EventScanner {
    /// Start the scanner over `app` (held weakly: the task ends with the app, or when
    /// `stop` changes).
    pub fn start(
        app: &Arc<App>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<EventScanner> {
        let s = Arc::new(EventScanner {
            bell: Notify::new(),
            received: AtomicU64::new(0),
            scans: AtomicU64::new(0),
        });
        let (me, app): (Arc<EventScanner>, Weak<App>) = (s.clone(), Arc::downgrade(app));
        tokio::spawn(async move {
            let mut confirm = false;
            loop {
                let evented = tokio::select! {
                    _ = me.bell.notified() => true,
                    _ = tokio::time::sleep(CONFIRM_AFTER), if confirm => false,
                    _ = stop.changed() => break,
                };
                if evented {
                    // Odoo sends one webhook per record saved, all inside the saving
                    // transaction: wait until they stop (at most MAX_SETTLE), then it has
                    // committed.
                    let started = Instant::now();
                    loop {
                        let before = me.received.load(Ordering::Relaxed);
                        tokio::time::sleep(SETTLE).await;
                        if me.received.load(Ordering::Relaxed) == before
                            || started.elapsed() >= MAX_SETTLE
                        {
                            break;
                        }
                    }
                }
                let Some(app) = app.upgrade() else { break };
                let started = Instant::now();
                match app.scan("odoo-events").await {
                    Ok(summary) => tracing::debug!(
                        exceptions = summary.exceptions,
                        new = summary.merge.new,
                        ms = started.elapsed().as_millis() as u64,
                        confirm = !evented,
                        "scan on Odoo events"
                    ),
                    Err(e) => {
                        app.counters.scan_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "scan on Odoo events failed; the poll will retry");
                    }
                }
                me.scans.fetch_add(1, Ordering::Relaxed);
                confirm = evented;
            }
        });
        s
    }

    /// Ask for a scan (coalesced with others pending).
    pub fn ring(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.bell.notify_one();
    }
}

struct EventsState {
    scanner: Arc<EventScanner>,
    secret: Secret,
    hits: MinuteWindow,
}

/// The route: `POST /odoo/events?secret=…` (or header `X-Webhook-Secret`).
pub fn routes(scanner: Arc<EventScanner>, secret: Secret) -> Router {
    Router::new()
        .route("/odoo/events", post(event))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(EventsState {
            scanner,
            secret,
            hits: MinuteWindow::default(),
        }))
}

/// The model and record id of an Odoo webhook payload (`_model`, `_id`), when the model is
/// one of [`EVENT_MODELS`] and the id a positive integer.
pub fn parse_event(body: &[u8]) -> Option<(&'static str, i64)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let model = v.get("_model")?.as_str()?;
    let model = EVENT_MODELS.iter().find(|m| **m == model)?;
    let id = v.get("_id")?.as_i64().filter(|i| *i > 0)?;
    Some((model, id))
}

async fn event(
    State(s): State<Arc<EventsState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !webhook_secret_ok(&q, &headers, &s.secret) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad or missing events secret"})),
        )
            .into_response();
    }
    if !s.hits.admit(EVENTS_PER_MINUTE) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "too many events"})),
        )
            .into_response();
    }
    let Some((model, id)) = parse_event(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected an Odoo webhook payload (_model, _id) of an order, delivery, purchase or invoice"})),
        )
            .into_response();
    };
    tracing::debug!(model, id, "Odoo event");
    s.scanner.ring();
    (
        StatusCode::ACCEPTED,
        Json(json!({"ok": true, "model": model, "id": id})),
    )
        .into_response()
}

/// One model's automation rule as setup left it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRule {
    /// Model.
    pub model: &'static str,
    /// The `base.automation` id.
    pub automation_id: i64,
    /// Whether it was created now.
    pub created: bool,
    /// Whether its webhook URL was updated now.
    pub url_updated: bool,
}

/// Install (or update) the automation rules that send [`EVENT_MODELS`] changes to
/// `events_url`, as an administrator. Idempotent: rules are found again by name; only a
/// changed URL is written. The webhook sends `write_date` with `_model` and `_id`.
pub async fn setup_events(
    admin: &OdooClient,
    events_url: &str,
) -> Result<Vec<EventRule>, OdooError> {
    let mut out = Vec::new();
    for &model in EVENT_MODELS {
        let name = rule_name(model);
        if let Some((id, url_updated)) =
            super::setup::existing_webhook_rule(admin, &name, events_url).await?
        {
            out.push(EventRule {
                model,
                automation_id: id,
                created: false,
                url_updated,
            });
            continue;
        }
        let model_id = admin
            .search_read(
                "ir.model",
                json!([["model", "=", model]]),
                &["id"],
                None,
                0,
                Some(1),
            )
            .await?
            .first()
            .and_then(|r| wire::get(r, "id").as_i64())
            .ok_or_else(|| OdooError::MissingRecord(format!("ir.model {model}")))?;
        let field_ids: Vec<Value> = admin
            .search_read(
                "ir.model.fields",
                json!([["model", "=", model], ["name", "=", "write_date"]]),
                &["id"],
                None,
                0,
                None,
            )
            .await?
            .iter()
            .map(|r| wire::get(r, "id").clone())
            .collect();
        let id = admin
            .create(
                "base.automation",
                json!({
                    "name": name,
                    "model_id": model_id,
                    "trigger": "on_create_or_write",
                    "action_server_ids": [[0, 0, {
                        "name": "Send Webhook Notification",
                        "model_id": model_id,
                        "usage": "base_automation",
                        "state": "webhook",
                        "webhook_url": events_url,
                        "webhook_field_ids": [[6, 0, field_ids]],
                    }]],
                }),
            )
            .await?;
        out.push(EventRule {
            model,
            automation_id: id,
            created: true,
            url_updated: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_known_model_and_a_positive_id() {
        assert_eq!(
            parse_event(br#"{"_model": "sale.order", "_id": 42, "_action": "x", "write_date": "2026-12-06 18:00:00"}"#),
            Some(("sale.order", 42))
        );
        assert_eq!(parse_event(br#"{"_model": "res.users", "_id": 2}"#), None);
        assert_eq!(parse_event(br#"{"_model": "sale.order", "_id": -1}"#), None);
        assert_eq!(
            parse_event(br#"{"_model": "sale.order", "_id": "42"}"#),
            None
        );
        assert_eq!(parse_event(b"not json"), None);
        assert_eq!(
            rule_name("stock.picking"),
            "order-copilot: scan on stock.picking change"
        );
    }
}
