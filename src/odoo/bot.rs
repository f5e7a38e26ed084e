//! The copilot as an Odoo user, in Discuss channels and on sales orders' chatter.
//!
//! Messages arrive by Odoo's "Send Webhook Notification" automation on `mail.message`
//! ([`routes`]: `POST /odoo/webhook`, protected by a secret in the URL or a header) or by
//! polling `mail.message` with `id > last_seen` ([`Bot::poll_once`]). Either way the message
//! is checked at once (duplicate deliveries, the bot's own posts, rate) and queued; the
//! webhook answers 202 without waiting, because Odoo sends it inside the posting transaction
//! with a 1 s timeout. A worker answers in the same thread, as the bot user: in channels the
//! bot is a member of, and on a sales order's chatter when the message mentions the bot (the
//! order is then the context). The author's Odoo login maps to a copilot role
//! (`[bot] roles`); unknown users get read-only answers (no options to act on). In a
//! channel the answer holds only the data classes every member may see (`data_access.toml`),
//! the members read from Odoo on each answer.
//!
//! Answers come from an [`Answerer`]: today [`ExplainAnswerer`] (the core's explanation of
//! the order); the copilot replaces it without touching the transport.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use super::client::{OdooClient, Secret};
use super::config;
use super::schema::Schema;
use super::wire::{self, OdooError};
use crate::app::App;
use crate::app::source::BoxFuture;

/// A question put to the copilot from Odoo.
#[derive(Debug, Clone)]
pub struct Question {
    /// The message as plain text.
    pub text: String,
    /// The order in context (the chatter's record, or a reference in the text).
    pub order: Option<String>,
    /// The author's copilot role; `None` means read-only.
    pub role: Option<String>,
    /// The author's name in Odoo.
    pub author: String,
    /// The copilot roles of everyone else who reads the answer (a channel's members;
    /// unmapped users count as `viewer`); empty on an order's chatter. The answer holds
    /// only the data classes the author and every one of them may see.
    pub audience: Vec<String>,
}

/// Produces the answer (HTML) to a question: [`CopilotAnswerer`] in the server,
/// [`ExplainAnswerer`] where no copilot runs.
pub trait Answerer: Send + Sync {
    /// Answer; errors are rendered into the answer by the implementation.
    fn answer<'a>(&'a self, q: &'a Question) -> BoxFuture<'a, String>;
}

/// Answers through the copilot (offline templates or a model, with the same tools and
/// approval boundary as the web chat), as the author's mapped role; authors without a
/// mapped role ask as `viewer`, who may read and chat but request nothing.
pub struct CopilotAnswerer {
    copilot: Arc<crate::copilot::Copilot>,
}

impl CopilotAnswerer {
    /// Over a running copilot.
    pub fn new(copilot: Arc<crate::copilot::Copilot>) -> CopilotAnswerer {
        CopilotAnswerer { copilot }
    }
}

impl Answerer for CopilotAnswerer {
    fn answer<'a>(&'a self, q: &'a Question) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let user = crate::app::identity::User {
                name: format!("odoo:{}", q.author.chars().take(64).collect::<String>()),
                role: q.role.clone().unwrap_or_else(|| "viewer".to_string()),
            };
            let req = crate::copilot::ChatRequest {
                message: q.text.chars().take(4000).collect(),
                conversation_id: None,
                order: q.order.clone(),
            };
            match self.copilot.answer_for(&user, req, &q.audience).await {
                Ok(turn) => text_to_html(&turn.answer),
                Err(e) => text_to_html(&format!("I could not answer that: {e}")),
            }
        })
    }
}

/// Answers from the core's explanation of the order.
pub struct ExplainAnswerer {
    app: Arc<App>,
}

impl ExplainAnswerer {
    /// Over the app's latest scan.
    pub fn new(app: Arc<App>) -> ExplainAnswerer {
        ExplainAnswerer { app }
    }
}

/// Plain text as an HTML body, line breaks kept.
pub fn text_to_html(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(wire::escape_html).collect();
    format!("<p>{}</p>", lines.join("<br/>"))
}

/// The explanation without its options (for read-only users).
fn without_options(text: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for l in text.lines() {
        if l.trim_start() == "options:" {
            skipping = true;
            continue;
        }
        if skipping && (l.starts_with("     ") || l.starts_with("        ")) {
            continue;
        }
        skipping = false;
        out.push(l);
    }
    out.join("\n")
}

impl Answerer for ExplainAnswerer {
    fn answer<'a>(&'a self, q: &'a Question) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let Some(order) = &q.order else {
                return text_to_html(
                    "Ask me about an order by its reference, e.g. \"why is S00042 late?\", in this channel or by mentioning me on the order.",
                );
            };
            match self.app.explain(order).await {
                Ok(x) => {
                    let mut roles = vec![q.role.clone().unwrap_or_else(|| "viewer".into())];
                    roles.extend(q.audience.iter().cloned());
                    let text = self
                        .app
                        .withhold_text(&roles, &crate::core::explain::render_text(&x))
                        .await;
                    let (text, footer) = match &q.role {
                        Some(role) => (
                            text,
                            format!(
                                "Answered for {} ({role}). Request an option in order-copilot; it runs after approval.",
                                q.author
                            ),
                        ),
                        None => (
                            without_options(&text),
                            format!(
                                "Answered read-only for {}: your Odoo user has no copilot role.",
                                q.author
                            ),
                        ),
                    };
                    format!(
                        "{}<p><small>{}</small></p>",
                        text_to_html(&text),
                        wire::escape_html(&footer)
                    )
                }
                Err(e) => text_to_html(&format!("I cannot explain {order}: {e}")),
            }
        })
    }
}

/// One message to consider.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// mail.message id.
    pub id: i64,
    /// Author partner id.
    pub author: Option<i64>,
    /// HTML body (None when the payload did not carry it).
    pub body: Option<String>,
    /// Model of the thread.
    pub model: String,
    /// Record id of the thread.
    pub res_id: i64,
    /// Display name of the thread's record.
    pub record_name: Option<String>,
    /// `comment`, `notification`…
    pub message_type: Option<String>,
}

impl Incoming {
    /// From a webhook payload or a polled record (many2one as a bare id or a pair).
    pub fn from_value(v: &Value) -> Option<Incoming> {
        if v.get("_model")
            .and_then(Value::as_str)
            .is_some_and(|m| m != "mail.message")
        {
            return None;
        }
        Some(Incoming {
            id: v
                .get("_id")
                .or_else(|| v.get("id"))
                .and_then(Value::as_i64)?,
            author: v.get("author_id").and_then(wire::m2o_id),
            body: v.get("body").and_then(Value::as_str).map(str::to_string),
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            res_id: v.get("res_id").and_then(Value::as_i64).unwrap_or(0),
            record_name: v
                .get("record_name")
                .and_then(wire::opt_str)
                .map(str::to_string),
            message_type: v
                .get("message_type")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// What happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Queued for an answer (or for a closer look).
    Queued,
    /// Seen before.
    Duplicate,
    /// The bot's own message.
    Own,
    /// Not a message the bot considers.
    Ignored,
    /// Over the rate or the queue is full.
    Dropped,
}

/// Counters, for status and tests.
#[derive(Debug, Default)]
pub struct BotStats {
    /// Answers posted.
    pub answered: AtomicU64,
    /// Duplicate deliveries ignored.
    pub duplicates: AtomicU64,
    /// Own messages ignored.
    pub own: AtomicU64,
    /// Messages not addressed to the bot.
    pub ignored: AtomicU64,
    /// Dropped for rate or queue.
    pub dropped: AtomicU64,
    /// Answers that failed to post.
    pub failed: AtomicU64,
    /// Announced messages Odoo does not show the bot (forged or unknown ids).
    pub unverified: AtomicU64,
}

struct Seen {
    set: HashSet<i64>,
    order: VecDeque<i64>,
}

/// The bot.
pub struct Bot {
    client: Arc<OdooClient>,
    cfg: config::Bot,
    schema: Schema,
    answerer: Arc<dyn Answerer>,
    partner_id: i64,
    name: String,
    seen: std::sync::Mutex<Seen>,
    rate: std::sync::Mutex<VecDeque<Instant>>,
    roles: Mutex<HashMap<i64, (String, Option<String>)>>,
    channels: Mutex<Option<(Instant, HashSet<i64>)>>,
    last_seen: AtomicI64,
    queue: mpsc::Sender<Incoming>,
    audit: Option<crate::store::audit::AuditLog>,
    /// Counters.
    pub stats: BotStats,
}

const SEEN_CAPACITY: usize = 10_000;

impl Bot {
    /// Start the bot over a client logged in as the bot user; spawns its worker. Messages
    /// it refuses to act on (ids Odoo does not show it, payloads that disagree with Odoo)
    /// are recorded in `audit` when given.
    pub async fn start(
        client: Arc<OdooClient>,
        cfg: config::Bot,
        answerer: Arc<dyn Answerer>,
        audit: Option<crate::store::audit::AuditLog>,
    ) -> Result<Arc<Bot>, OdooError> {
        let me = client
            .read("res.users", &[client.uid()], &["partner_id", "name"])
            .await?;
        let me = me
            .first()
            .ok_or_else(|| OdooError::MissingRecord("the bot user is not readable".into()))?;
        let partner_id = wire::m2o_id(wire::get(me, "partner_id"))
            .ok_or_else(|| OdooError::Decode("the bot user has no partner".into()))?;
        let (tx, mut rx) = mpsc::channel::<Incoming>(256);
        let bot = Arc::new(Bot {
            schema: Schema {
                major: client.version().major,
            },
            client,
            cfg,
            answerer,
            partner_id,
            name: wire::opt_str(wire::get(me, "name"))
                .unwrap_or("order-copilot")
                .to_string(),
            seen: std::sync::Mutex::new(Seen {
                set: HashSet::new(),
                order: VecDeque::new(),
            }),
            rate: std::sync::Mutex::new(VecDeque::new()),
            roles: Mutex::new(HashMap::new()),
            channels: Mutex::new(None),
            last_seen: AtomicI64::new(0),
            queue: tx,
            audit,
            stats: BotStats::default(),
        });
        let weak = Arc::downgrade(&bot);
        tokio::spawn(async move {
            let limit = Arc::new(tokio::sync::Semaphore::new(4));
            while let Some(m) = rx.recv().await {
                let Some(bot) = weak.upgrade() else { break };
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                tokio::spawn(async move {
                    bot.handle(m).await;
                    drop(permit);
                });
            }
        });
        Ok(bot)
    }

    /// The bot's partner id (its messages' author).
    pub fn partner_id(&self) -> i64 {
        self.partner_id
    }

    /// Consider a delivery: returns at once; the answer is worked out in the background.
    pub fn accept(&self, m: Incoming) -> Accepted {
        if m.author == Some(self.partner_id) {
            self.stats.own.fetch_add(1, Ordering::Relaxed);
            return Accepted::Own;
        }
        if m.message_type.as_deref().is_some_and(|t| t != "comment")
            || !(m.model == self.schema.channel_model() || m.model == "sale.order")
        {
            self.stats.ignored.fetch_add(1, Ordering::Relaxed);
            return Accepted::Ignored;
        }
        {
            let mut s = match self.seen.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !s.set.insert(m.id) {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Accepted::Duplicate;
            }
            s.order.push_back(m.id);
            while s.order.len() > SEEN_CAPACITY {
                if let Some(old) = s.order.pop_front() {
                    s.set.remove(&old);
                }
            }
        }
        match self.queue.try_send(m) {
            Ok(()) => Accepted::Queued,
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("bot queue full; a message was dropped");
                Accepted::Dropped
            }
        }
    }

    fn within_rate(&self) -> bool {
        let mut r = match self.rate.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        while r
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            r.pop_front();
        }
        if r.len() >= self.cfg.answers_per_minute as usize {
            return false;
        }
        r.push_back(now);
        true
    }

    async fn is_member(&self, channel: i64) -> bool {
        let mut c = self.channels.lock().await;
        let fresh = c
            .as_ref()
            .is_some_and(|(t, _)| t.elapsed() < Duration::from_secs(60));
        if !fresh || !c.as_ref().is_some_and(|(_, s)| s.contains(&channel)) {
            match self
                .client
                .search_read(
                    self.schema.channel_model(),
                    json!([["channel_partner_ids", "in", [self.partner_id]]]),
                    &["id"],
                    None,
                    0,
                    Some(1000),
                )
                .await
            {
                Ok(rows) => {
                    *c = Some((
                        Instant::now(),
                        rows.iter()
                            .filter_map(|r| wire::get(r, "id").as_i64())
                            .collect(),
                    ))
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the bot's channels"),
            }
        }
        c.as_ref().is_some_and(|(_, s)| s.contains(&channel))
    }

    async fn author(&self, partner: i64) -> (String, Option<String>) {
        if let Some(x) = self.roles.lock().await.get(&partner) {
            return x.clone();
        }
        let found = self
            .client
            .search_read(
                "res.users",
                json!([["partner_id", "=", partner]]),
                &["login", "name"],
                None,
                0,
                Some(1),
            )
            .await
            .ok()
            .and_then(|r| r.into_iter().next());
        let x = match found {
            Some(u) => {
                let login = wire::get(&u, "login").as_str().unwrap_or("").to_string();
                (
                    wire::opt_str(wire::get(&u, "name"))
                        .unwrap_or(&login)
                        .to_string(),
                    self.cfg.roles.get(&login).cloned(),
                )
            }
            None => (format!("partner {partner}"), None),
        };
        self.roles.lock().await.insert(partner, x.clone());
        x
    }

    /// The copilot roles of a channel's members other than the bot, read from Odoo each
    /// time (membership changes); users without a mapped role, partners without a user
    /// and a channel that cannot be read all count as `viewer`.
    async fn channel_audience(&self, channel: i64) -> Vec<String> {
        const VIEWER: &str = "viewer";
        let members = match self
            .client
            .read(
                self.schema.channel_model(),
                &[channel],
                &["channel_partner_ids"],
            )
            .await
        {
            Ok(rows) => rows
                .first()
                .map(|r| wire::ids(wire::get(r, "channel_partner_ids")))
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, channel, "cannot read a channel's members; answering for viewers");
                return vec![VIEWER.to_string()];
            }
        };
        let members: Vec<i64> = members
            .into_iter()
            .filter(|p| *p != self.partner_id)
            .collect();
        if members.is_empty() {
            return Vec::new();
        }
        let users = match self
            .client
            .search_read(
                "res.users",
                json!([["partner_id", "in", members]]),
                &["login", "partner_id"],
                None,
                0,
                None,
            )
            .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, channel, "cannot read a channel's users; answering for viewers");
                return vec![VIEWER.to_string()];
            }
        };
        let mut roles: Vec<String> = members
            .iter()
            .map(|p| {
                users
                    .iter()
                    .find(|u| wire::m2o_id(wire::get(u, "partner_id")) == Some(*p))
                    .and_then(|u| wire::opt_str(wire::get(u, "login")))
                    .and_then(|login| self.cfg.roles.get(login).cloned())
                    .unwrap_or_else(|| VIEWER.to_string())
            })
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// The message as Odoo holds it, read by id with the bot's own credentials: a webhook
    /// payload is only a hint of which message to look at (whoever knows the URL could
    /// claim any author or thread). Odoo sends the webhook inside the posting transaction,
    /// so the message may not be committed yet: retry for a few seconds.
    async fn read_back(&self, id: i64) -> Option<Incoming> {
        for attempt in 0..5 {
            if let Ok(rows) = self
                .client
                .read(
                    "mail.message",
                    &[id],
                    &[
                        "body",
                        "author_id",
                        "model",
                        "res_id",
                        "record_name",
                        "message_type",
                    ],
                )
                .await
                && let Some(r) = rows.first()
            {
                return Incoming::from_value(&Value::Object(r.clone()));
            }
            tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
        }
        None
    }

    /// Record what the bot refused to act on (when it has an audit log).
    async fn audit(&self, kind: &str, payload: Value) {
        if let Some(log) = &self.audit {
            let ev = crate::store::audit::AuditEvent::new(kind, "odoo-bot", payload);
            if let Err(e) = log.append(ev).await {
                tracing::warn!(error = %e, "could not audit a bot event");
            }
        }
    }

    fn mentions_me(&self, html: &str) -> bool {
        html.contains(&format!("data-oe-id=\"{}\"", self.partner_id))
            || html
                .to_lowercase()
                .contains(&format!("@{}", self.name.to_lowercase()))
    }

    async fn handle(&self, claimed: Incoming) {
        let Some(m) = self.read_back(claimed.id).await else {
            self.stats.unverified.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                message = claimed.id,
                "a message announced to the bot is not in Odoo (or not readable by the bot): ignored"
            );
            self.audit(
                "bot.message_unverified",
                json!({"message": claimed.id, "claimed": {"author": claimed.author, "model": claimed.model, "res_id": claimed.res_id}}),
            )
            .await;
            return;
        };
        let differs = claimed.author.is_some_and(|a| Some(a) != m.author)
            || (!claimed.model.is_empty() && claimed.model != m.model)
            || (claimed.res_id != 0 && claimed.res_id != m.res_id);
        if differs {
            tracing::warn!(
                message = m.id,
                "a webhook payload disagreed with Odoo about a message; Odoo's record is used"
            );
            self.audit(
                "bot.payload_mismatch",
                json!({"message": m.id,
                       "claimed": {"author": claimed.author, "model": claimed.model, "res_id": claimed.res_id},
                       "odoo": {"author": m.author, "model": m.model, "res_id": m.res_id}}),
            )
            .await;
        }
        if m.author == Some(self.partner_id) {
            self.stats.own.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let body = m.body.clone().unwrap_or_default();
        let channel = m.model == self.schema.channel_model();
        let addressed = if channel {
            self.is_member(m.res_id).await
        } else {
            m.model == "sale.order" && self.mentions_me(&body)
        };
        if !addressed {
            self.stats.ignored.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.within_rate() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                message = m.id,
                "bot answer rate reached; message not answered"
            );
            return;
        }
        let text = wire::html_to_text(&body);
        let order = if channel {
            find_order_ref(&text)
        } else {
            m.record_name.clone()
        };
        let (author, role) = match m.author {
            Some(p) => self.author(p).await,
            None => ("someone".into(), None),
        };
        let audience = if channel {
            self.channel_audience(m.res_id).await
        } else {
            Vec::new()
        };
        let q = Question {
            text,
            order,
            role,
            author,
            audience,
        };
        let answer = self.answerer.answer(&q).await;
        let mut kw = wire::message_post_kwargs(&answer, !channel);
        kw.insert("parent_id".into(), json!(m.id));
        match self
            .client
            .call(&m.model, "message_post", vec![json!([m.res_id])], kw)
            .await
        {
            Ok(_) => {
                self.stats.answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, message = m.id, "could not post the bot's answer");
            }
        }
    }

    /// Poll once for new messages (`id > last_seen`); the first poll only sets the mark.
    pub async fn poll_once(&self) -> Result<usize, OdooError> {
        let last = self.last_seen.load(Ordering::Relaxed);
        if last == 0 {
            let top = self
                .client
                .search_read(
                    "mail.message",
                    json!([]),
                    &["id"],
                    Some("id desc"),
                    0,
                    Some(1),
                )
                .await?;
            self.last_seen.store(
                top.first()
                    .and_then(|r| wire::get(r, "id").as_i64())
                    .unwrap_or(0)
                    .max(1),
                Ordering::Relaxed,
            );
            return Ok(0);
        }
        let rows = self
            .client
            .search_read(
                "mail.message",
                json!([
                    ["id", ">", last],
                    ["message_type", "=", "comment"],
                    ["model", "in", [self.schema.channel_model(), "sale.order"]]
                ]),
                &[
                    "body",
                    "author_id",
                    "model",
                    "res_id",
                    "record_name",
                    "message_type",
                ],
                Some("id asc"),
                0,
                Some(100),
            )
            .await?;
        let mut n = 0;
        for r in rows {
            let v = Value::Object(r);
            if let Some(id) = v["id"].as_i64() {
                self.last_seen.fetch_max(id, Ordering::Relaxed);
            }
            if let Some(m) = Incoming::from_value(&v)
                && self.accept(m) == Accepted::Queued
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Poll every `[bot] poll_seconds` until the bot is dropped.
    pub fn spawn_poller(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = Duration::from_secs(self.cfg.poll_seconds.max(1));
        tokio::spawn(async move {
            loop {
                let Some(bot) = weak.upgrade() else { break };
                if let Err(e) = bot.poll_once().await {
                    tracing::warn!(error = %e, "polling Odoo for messages failed");
                }
                drop(bot);
                tokio::time::sleep(every).await;
            }
        });
    }
}

/// The first order reference (`S` followed by digits) in a text.
pub fn find_order_ref(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| {
            w.len() >= 4
                && (w.starts_with('S') || w.starts_with('s'))
                && w[1..].chars().all(|c| c.is_ascii_digit())
        })
        .map(|w| w.to_uppercase())
}

struct WebhookState {
    bot: Arc<Bot>,
    secret: Secret,
    hits: MinuteWindow,
}

/// Deliveries per minute the endpoint takes before answering 429.
pub const WEBHOOK_PER_MINUTE: usize = 600;

/// The webhook route: `POST /odoo/webhook?secret=…` (or header `X-Webhook-Secret`).
pub fn routes(bot: Arc<Bot>, secret: Secret) -> Router {
    Router::new()
        .route("/odoo/webhook", post(webhook))
        .with_state(Arc::new(WebhookState {
            bot,
            secret,
            hits: MinuteWindow::default(),
        }))
}

/// Calls admitted in the last minute, for a per-minute cap on a webhook endpoint.
#[derive(Default)]
pub(crate) struct MinuteWindow(std::sync::Mutex<VecDeque<Instant>>);

impl MinuteWindow {
    /// Records a call now and says whether it is within `per_minute`; a refused call is
    /// not recorded.
    pub(crate) fn admit(&self, per_minute: usize) -> bool {
        let mut h = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        while h
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            h.pop_front();
        }
        if h.len() >= per_minute {
            return false;
        }
        h.push_back(now);
        true
    }
}

/// Whether a webhook call carries the configured secret, as `?secret=` or in the
/// `X-Webhook-Secret` header (what Odoo's automation rules can send). An empty configured
/// secret accepts nothing.
pub(crate) fn webhook_secret_ok(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    secret: &Secret,
) -> bool {
    let given = q
        .get("secret")
        .map(String::as_str)
        .or_else(|| {
            headers
                .get("x-webhook-secret")
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("");
    !secret.expose().is_empty() && same_secret(given, secret.expose())
}

/// Compare secrets without leaking the position of the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

async fn webhook(
    State(s): State<Arc<WebhookState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !webhook_secret_ok(&q, &headers, &s.secret) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "bad or missing webhook secret"})),
        )
            .into_response();
    }
    if !s.hits.admit(WEBHOOK_PER_MINUTE) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": "too many deliveries"})),
        )
            .into_response();
    }
    let Some(m) = serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(Incoming::from_value)
    else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "expected a mail.message webhook payload"})),
        )
            .into_response();
    };
    let outcome = s.bot.accept(m);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"ok": true, "outcome": format!("{outcome:?}").to_lowercase()})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_refs_and_secrets() {
        assert_eq!(find_order_ref("why is S00042 late?"), Some("S00042".into()));
        assert_eq!(
            find_order_ref("status of s00042, please"),
            Some("S00042".into())
        );
        assert_eq!(find_order_ref("hello SKU-1"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn read_only_drops_options() {
        let t = "S1 — BLOCKED\n1. x\n   why:\n     - a\n   options:\n     1) do it — approval: planner\n        · cost\n   rule: r\n";
        let r = without_options(t);
        assert!(
            !r.contains("do it")
                && !r.contains("cost")
                && r.contains("rule: r")
                && r.contains("- a"),
            "{r}"
        );
    }

    #[test]
    fn webhook_payloads() {
        let v = json!({"_action": "Send Webhook Notification(#444)", "_id": 407, "_model": "mail.message", "author_id": 43, "body": "<p>x</p>", "date": "2026-11-26 17:43:06", "id": 407, "message_type": "comment", "model": "discuss.channel", "res_id": 1});
        let m = Incoming::from_value(&v).unwrap_or_else(|| Incoming {
            id: 0,
            author: None,
            body: None,
            model: String::new(),
            res_id: 0,
            record_name: None,
            message_type: None,
        });
        assert_eq!(
            (m.id, m.author, m.res_id, m.model.as_str()),
            (407, Some(43), 1, "discuss.channel")
        );
        assert!(Incoming::from_value(&json!({"_model": "discuss.channel", "_id": 1})).is_none());
    }
}
