//! The engine: one interface ([`Copilot`]), two ways to answer.
//!
//! A turn always starts with a `conversation` event and ends with `done` (or `error`).
//! In `openai` mode a [`Model`] drives a tool loop (step limit, parallel tool calls,
//! invalid arguments fed back once, errors handled by class, a per-turn time budget);
//! when the model is down, slow or answers garbage the turn falls back to offline and
//! says so in a `notice`. In `offline` mode (the default) [`offline`] recognises the
//! intent and renders templates. Both call the same tools through [`Turn::call`]-style
//! dispatch, so the approval boundary in `tools::dispatch` holds whatever answers.
//!
//! Every prompt as sent, response, tool call and result and retrieval is written to the
//! audit log with token counts and latency; prompts pass the data-access policy first.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::event::{ChatEvent, Mode, Risk, Source, Tokens};
use super::governance::{Redactions, Redactor};
use super::knowledge::Passages;
use super::model::{
    ChatMessage, FinishReason, Model, ModelError, ModelEvent, ModelOutput, ModelRequest, Role,
    ToolSpec,
};
use super::offline::{self, TurnContext, Understanding};
use super::prompts::Prompts;
use super::tools::{self, ToolEnv, ToolError, ToolOutput};
use crate::app::access::{Audience, Withhold};
use crate::app::{App, AppError, ScanState, User, new_id};
use crate::domain::Snapshot;
use crate::store::audit::{AuditEvent, TurnWrite, Written};
use crate::store::{ConversationRow, TurnRow};

/// Longest message accepted.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// How the engine behaves.
#[derive(Debug, Clone)]
pub struct CopilotConfig {
    /// Most model calls in one turn.
    pub step_limit: usize,
    /// Time a turn may spend on the model before falling back to offline.
    pub turn_budget: Duration,
    /// Completion tokens per model call.
    pub max_tokens: u32,
    /// Earlier turns sent to the model as conversation history.
    pub history_turns: usize,
}

impl Default for CopilotConfig {
    fn default() -> Self {
        CopilotConfig {
            step_limit: 6,
            turn_budget: Duration::from_secs(25),
            max_tokens: 700,
            history_turns: 4,
        }
    }
}

/// A question for the copilot.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The message (1 to 4,000 characters).
    pub message: String,
    /// Conversation to continue; a new one when `None`.
    pub conversation_id: Option<String>,
    /// The order the user has open, if any.
    pub order: Option<String>,
}

/// A turn that passed validation and may start streaming.
pub struct Started {
    user: User,
    message: String,
    order: Option<String>,
    conversation_id: String,
    turn_id: String,
    seq: i64,
    history: Vec<TurnRow>,
    /// The conversation this turn starts, stored with the turn when it finishes.
    new_conversation: Option<ConversationRow>,
    /// Who reads the answer (the user, or everyone in the bot's channel).
    audience: Audience,
}

impl Started {
    /// Conversation id.
    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }
}

/// One tool call of a turn, as the evals and the audit see it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRecord {
    /// Call id.
    pub call_id: String,
    /// Tool.
    pub tool: String,
    /// Risk class.
    pub risk: Risk,
    /// Arguments as parsed.
    pub arguments: Value,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result (data or error) as the model saw it, before redaction.
    pub result: Value,
}

/// A finished turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnOutcome {
    /// Conversation id.
    pub conversation_id: String,
    /// Turn id.
    pub turn_id: String,
    /// Mode the turn started in.
    pub mode: Mode,
    /// The answer text.
    pub answer: String,
    /// Sources the answer cites.
    pub citations: Vec<Source>,
    /// Whether it fell back to offline.
    pub fallback: bool,
    /// Whether the model's answer claimed a completed action and a correction was appended
    /// ([`super::claims`]).
    pub claim_corrected: bool,
    /// Whether the figure check ([`super::grounding`]) found a figure or name the turn's
    /// evidence does not hold and asked the model once for a corrected answer.
    pub grounding_corrected: bool,
    /// Model calls the turn made.
    pub model_calls: u32,
    /// Tool calls in order.
    pub tools: Vec<ToolRecord>,
    /// Approval requests created.
    pub approvals: Vec<String>,
    /// Retrieved passages (ids and text) — part of the turn's grounding.
    pub retrieved: Vec<Value>,
    /// Tokens.
    pub tokens: Tokens,
    /// Milliseconds the turn took.
    pub ms: f64,
    /// Milliseconds spent waiting for the model.
    pub model_ms: f64,
    /// Every event streamed (text deltas coalesced).
    pub events: Vec<ChatEvent>,
    /// Error, if the turn failed.
    pub error: Option<String>,
}

/// The copilot: tools, a model or offline templates, the approval boundary.
pub struct Copilot {
    app: Arc<App>,
    model: Option<Arc<dyn Model>>,
    knowledge: RwLock<Option<Arc<dyn Passages>>>,
    prompts: Prompts,
    cfg: CopilotConfig,
}

/// The state of a turn in progress: what the tools and the two modes share.
pub struct Turn<'a> {
    copilot: &'a Copilot,
    env: ToolEnv<'a>,
    tx: &'a mpsc::UnboundedSender<ChatEvent>,
    conversation_id: String,
    message: String,
    events: Vec<ChatEvent>,
    sources: Vec<Source>,
    audit: Vec<AuditEvent>,
    tools: Vec<ToolRecord>,
    approvals: Vec<String>,
    retrieved: Vec<Value>,
    calls: u32,
    tokens: Tokens,
    model_time: Duration,
    model_calls: u32,
    grounding_corrected: bool,
}

impl<'a> Turn<'a> {
    fn emit(&mut self, e: ChatEvent) {
        let _ = self.tx.send(e.clone());
        if let ChatEvent::TextDelta { text } = &e
            && let Some(ChatEvent::TextDelta { text: last }) = self.events.last_mut()
        {
            last.push_str(text);
            return;
        }
        self.events.push(e);
    }

    fn audit(&mut self, mut e: AuditEvent) {
        e.conversation_id = Some(self.conversation_id.clone());
        e.policy_version = Some(self.env.app.policy.version.clone());
        self.audit.push(e);
    }

    /// Render a template; a template error is logged and answered plainly.
    pub fn render(&self, name: &str, ctx: Value) -> String {
        match self.copilot.prompts.render(name, ctx) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "template failed");
                "Something went wrong while writing the answer; please try again.".to_string()
            }
        }
    }

    /// The snapshot of the latest scan.
    pub fn snapshot(&self) -> &Snapshot {
        &self.env.state.snapshot
    }

    /// The user's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The asking user's name.
    pub fn user_name(&self) -> &str {
        &self.env.user.name
    }

    /// The kind of an order's highest-scored exception.
    pub fn top_kind(&self, order: &str) -> Option<String> {
        self.env
            .state
            .result
            .exceptions
            .iter()
            .find(|e| e.order_ref.eq_ignore_ascii_case(order))
            .map(|e| e.kind.as_str().to_string())
    }

    /// The one order of `customer` (its name, any case) with an exception (of `kind`, when
    /// given); `None` when there is none or several.
    pub fn sole_exception_order(&self, customer: &str, kind: Option<&str>) -> Option<String> {
        let orders: BTreeSet<&str> = self
            .env
            .state
            .result
            .exceptions
            .iter()
            .filter(|e| e.customer.eq_ignore_ascii_case(customer))
            .filter(|e| kind.is_none_or(|k| e.kind.as_str() == k))
            .map(|e| e.order_ref.as_str())
            .filter(|o| o.starts_with('S'))
            .collect();
        match orders.len() {
            1 => orders.into_iter().next().map(str::to_string),
            _ => None,
        }
    }

    /// The customer name of an order.
    pub fn customer_of(&self, order: &str) -> Option<String> {
        let snap = self.snapshot();
        let (_, o) = snap.order_by_name(order)?;
        snap.customers
            .get(o.customer as usize)
            .map(|c| c.name.clone())
    }

    fn next_call_id(&mut self) -> String {
        self.calls += 1;
        format!("call_{}", self.calls)
    }

    fn announce(&mut self, call_id: &str, name: &str, args: &Value) -> Risk {
        let risk = tools::tool(name).map_or(Risk::Read, |t| t.risk);
        self.emit(ChatEvent::ToolCall {
            call_id: call_id.to_string(),
            tool: name.to_string(),
            risk,
            arguments: args.clone(),
        });
        risk
    }

    /// Record a finished call: events, citations, audit. Returns the result as the tools
    /// message content (before redaction).
    fn record(
        &mut self,
        call_id: &str,
        name: &str,
        risk: Risk,
        args: &Value,
        result: &Result<ToolOutput, ToolError>,
        took: Duration,
    ) -> Value {
        let (content, ok) = match result {
            Ok(out) => {
                if let Some(r) = &out.retrieval {
                    self.emit(ChatEvent::Retrieving {
                        query: r.query.clone(),
                        corpora: r.corpora.iter().map(|c| c.as_str().to_string()).collect(),
                    });
                    self.audit(
                        AuditEvent::new(
                            "copilot.retrieval",
                            "copilot",
                            json!({"call_id": call_id, "query": r.query, "corpora": r.corpora, "hits": r.hits}),
                        ),
                    );
                    self.retrieved.push(json!({"query": r.query, "hits": r.hits.iter().map(|h| &h.0).collect::<Vec<_>>()}));
                }
                self.emit(ChatEvent::ToolResult {
                    call_id: call_id.to_string(),
                    tool: name.to_string(),
                    summary: out.summary.clone(),
                    count: out.count,
                    sources: out.sources.clone(),
                });
                if let Some(a) = &out.approval {
                    self.approvals.push(a.approval_id.clone());
                    self.emit(ChatEvent::ApprovalRequested {
                        approval_id: a.approval_id.clone(),
                        case_id: a.case_id.clone(),
                        action: a.action.clone(),
                        approver_roles: a.approver_roles.clone(),
                        summary: a.summary.clone(),
                    });
                }
                self.sources.extend(out.sources.iter().cloned());
                (
                    json!({"summary": out.summary, "count": out.count, "data": out.data}),
                    true,
                )
            }
            Err(e) => {
                if let ToolError::Internal(detail) = e {
                    tracing::error!(tool = name, error = %detail, "tool failed");
                }
                self.emit(ChatEvent::ToolResult {
                    call_id: call_id.to_string(),
                    tool: name.to_string(),
                    summary: e.to_string(),
                    count: 0,
                    sources: Vec::new(),
                });
                (json!({"error": e.to_string()}), false)
            }
        };
        let mut ev = AuditEvent::new(
            "copilot.tool",
            &self.env.user.name,
            json!({"call_id": call_id, "tool": name, "risk": risk, "arguments": args, "ok": ok, "result": content}),
        );
        ev.latency_ms = Some(took.as_millis() as i64);
        self.audit(ev);
        self.tools.push(ToolRecord {
            call_id: call_id.to_string(),
            tool: name.to_string(),
            risk,
            arguments: args.clone(),
            ok,
            result: content.clone(),
        });
        content
    }

    /// Call one tool (offline mode).
    pub async fn call(&mut self, name: &'static str, args: Value) -> Result<ToolOutput, ToolError> {
        let call_id = self.next_call_id();
        let risk = self.announce(&call_id, name, &args);
        let started = Instant::now();
        let result = tools::dispatch(&self.env, name, &args).await;
        self.record(&call_id, name, risk, &args, &result, started.elapsed());
        result
    }

    fn say(&mut self, text: &str) {
        // What streams is what the reader may see: the same data-access filter as the
        // stored transcript gets when it is read back (a figure a template formats from a
        // generic field, such as a price mismatch's revenue at risk, is caught by value).
        let text = if self.env.audience.sees_all() {
            text.to_string()
        } else {
            Withhold::new(self.env.audience, Some(self.env.state.sensitive()))
                .text(text, &mut Default::default())
        };
        // Stream by line, as a model would stream tokens.
        for piece in text.split_inclusive('\n') {
            self.emit(ChatEvent::TextDelta {
                text: piece.to_string(),
            });
        }
    }
}

/// Why a model turn gave up (shown to the user in a notice), with the offline answer
/// when the turn computed it already (a placed turn fetched its evidence through it).
struct GiveUp {
    why: String,
    offline: Option<String>,
}

impl GiveUp {
    fn new(why: impl Into<String>) -> GiveUp {
        GiveUp {
            why: why.into(),
            offline: None,
        }
    }
}

/// What the resolver made of a turn before any model call ([`Copilot::place`]).
enum Placement {
    /// Nothing to look up and nothing a model would add (a greeting, a question outside
    /// the copilot's scope that names none of the company's records): the offline answer.
    Direct,
    /// The evidence is fetched; the model words the answer, with these tools at hand.
    Grounded(&'static [&'static str]),
    /// The resolver cannot place the question: the model chooses among all tools.
    Free,
}

fn garbage(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || t.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        || t.starts_with("{\"") && t.contains("\"name\"")
        || t.chars().count() > 20_000
}

impl Copilot {
    /// A copilot over an app, answering with `model` or offline when `None`.
    pub fn new(
        app: Arc<App>,
        model: Option<Arc<dyn Model>>,
        cfg: CopilotConfig,
    ) -> Result<Copilot, AppError> {
        Ok(Copilot {
            app,
            model,
            knowledge: RwLock::new(None),
            prompts: Prompts::new().map_err(AppError::Internal)?,
            cfg,
        })
    }

    /// An offline copilot with the default configuration.
    pub fn offline(app: Arc<App>) -> Result<Copilot, AppError> {
        Copilot::new(app, None, CopilotConfig::default())
    }

    /// Use a retriever from now on.
    pub fn set_knowledge(&self, k: Arc<dyn Passages>) {
        match self.knowledge.write() {
            Ok(mut g) => *g = Some(k),
            Err(p) => *p.into_inner() = Some(k),
        }
    }

    fn knowledge(&self) -> Option<Arc<dyn Passages>> {
        match self.knowledge.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// How turns are answered.
    pub fn mode(&self) -> Mode {
        if self.model.is_some() {
            Mode::Openai
        } else {
            Mode::Offline
        }
    }

    /// The model's name, or `offline`.
    pub fn model_name(&self) -> String {
        self.model
            .as_ref()
            .map_or_else(|| "offline".to_string(), |m| m.name())
    }

    /// The app.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The templates.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// Validate a request and open (or resume) its conversation. Errors here happen
    /// before anything streams.
    pub async fn start(&self, user: &User, req: ChatRequest) -> Result<Started, AppError> {
        self.app.require(user, "chat")?;
        let message = req.message.trim().to_string();
        let chars = message.chars().count();
        if chars == 0 || chars > MAX_MESSAGE_CHARS {
            return Err(AppError::BadRequest(format!(
                "message must be 1 to {MAX_MESSAGE_CHARS} characters"
            )));
        }
        let order = req
            .order
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty());
        if order.as_ref().is_some_and(|o| o.len() > 64) {
            return Err(AppError::BadRequest(
                "order is longer than 64 characters".into(),
            ));
        }
        let now = chrono::Utc::now().timestamp_micros();
        let (conversation_id, history, new_conversation) =
            match req.conversation_id.filter(|c| !c.is_empty()) {
                Some(id) => {
                    if id.len() > 64 {
                        return Err(AppError::BadRequest(
                            "conversation_id is longer than 64 characters".into(),
                        ));
                    }
                    let conv = self.app.store.get_conversation(&id).await?;
                    // Someone else's conversation does not exist, as far as this user knows.
                    match conv {
                        Some(c) if c.owner == user.name => {}
                        _ => return Err(AppError::NotFound(format!("no conversation {id}"))),
                    }
                    let history = self.app.store.list_turns(&id, 50).await?;
                    (id, history, None)
                }
                None => {
                    // Stored with its first turn, in the transaction of the turn's audit events.
                    let id = new_id("cv");
                    let row = ConversationRow {
                        id: id.clone(),
                        owner: user.name.clone(),
                        role: user.role.clone(),
                        created_at: now,
                    };
                    (id, Vec::new(), Some(row))
                }
            };
        let seq = history.last().map_or(1, |t| t.seq + 1);
        Ok(Started {
            user: user.clone(),
            message,
            order,
            conversation_id,
            turn_id: new_id("turn"),
            seq,
            history,
            new_conversation,
            audience: Audience::role(&self.app.policy, &user.role),
        })
    }

    /// Run a started turn in the background; its events arrive on the receiver, `done`
    /// or `error` last.
    pub fn stream(self: &Arc<Self>, started: Started) -> mpsc::UnboundedReceiver<ChatEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let me = self.clone();
        tokio::spawn(async move {
            me.run(started, tx).await;
        });
        rx
    }

    /// Answer a message as `user` and wait for the whole turn: the entry point for the
    /// Odoo bot and the CLI (the conversation continues when `conversation_id` is given).
    pub async fn answer(&self, user: &User, req: ChatRequest) -> Result<TurnOutcome, AppError> {
        let started = self.start(user, req).await?;
        let (tx, _rx) = mpsc::unbounded_channel();
        Ok(self.run(started, tx).await)
    }

    /// Answer a message as `user` for a wider audience (the members of a Discuss channel,
    /// by role): the answer holds only the data classes every one of them may see.
    pub async fn answer_for(
        &self,
        user: &User,
        req: ChatRequest,
        members: &[String],
    ) -> Result<TurnOutcome, AppError> {
        let mut started = self.start(user, req).await?;
        let mut roles = vec![user.role.clone()];
        roles.extend(members.iter().cloned());
        started.audience = Audience::roles(&self.app.policy, &roles);
        let (tx, _rx) = mpsc::unbounded_channel();
        Ok(self.run(started, tx).await)
    }

    /// A conversation as stored, for its owner only.
    pub async fn conversation(&self, user: &User, id: &str) -> Result<Value, AppError> {
        if id.len() > 64 {
            return Err(AppError::NotFound(format!("no conversation {id}")));
        }
        match self.app.store.get_conversation(id).await? {
            Some(c) if c.owner == user.name => {}
            _ => return Err(AppError::NotFound(format!("no conversation {id}"))),
        }
        let turns = self.app.store.list_turns(id, 1000).await?;
        Ok(json!({
            "conversation_id": id,
            "turns": turns.iter().map(|t| json!({
                "turn_id": t.id, "user": t.actor, "message": t.message, "answer": t.answer,
                "mode": t.mode, "fallback": t.fallback, "events": t.events,
                "at": chrono::DateTime::from_timestamp_micros(t.created_at),
            })).collect::<Vec<_>>(),
        }))
    }

    /// Run a turn, streaming its events to `tx`.
    pub async fn run(&self, s: Started, tx: mpsc::UnboundedSender<ChatEvent>) -> TurnOutcome {
        let t0 = Instant::now();
        let mode = self.mode();
        let first = ChatEvent::Conversation {
            conversation_id: s.conversation_id.clone(),
            turn_id: s.turn_id.clone(),
            mode,
        };
        let _ = tx.send(first.clone());
        let fail = |message: String, events: Vec<ChatEvent>| TurnOutcome {
            conversation_id: s.conversation_id.clone(),
            turn_id: s.turn_id.clone(),
            mode,
            answer: String::new(),
            citations: Vec::new(),
            fallback: false,
            claim_corrected: false,
            grounding_corrected: false,
            model_calls: 0,
            tools: Vec::new(),
            approvals: Vec::new(),
            retrieved: Vec::new(),
            tokens: Tokens::default(),
            ms: t0.elapsed().as_secs_f64() * 1000.0,
            model_ms: 0.0,
            events,
            error: Some(message),
        };
        let Some(state) = self.app.latest().await else {
            let e = ChatEvent::Error {
                message: "no scan has completed yet; try again in a moment".into(),
            };
            let _ = tx.send(e.clone());
            return fail("no scan".into(), vec![first, e]);
        };
        let prior: TurnContext = s
            .history
            .last()
            .and_then(|t| serde_json::from_value(t.context.clone()).ok())
            .unwrap_or_default();
        let understanding = offline::understand(
            &s.message,
            &state.snapshot,
            &prior,
            s.order.as_deref(),
            state.result.now,
            &s.user.role,
        );
        let knowledge = self.knowledge();
        let mut turn = Turn {
            copilot: self,
            env: ToolEnv {
                app: &self.app,
                user: &s.user,
                state: state.clone(),
                knowledge: knowledge.as_deref(),
                prompts: &self.prompts,
                user_asked_to_act: understanding.asks_to_act(),
                audience: &s.audience,
                scope: crate::copilot::tools::act::conversation_orders(
                    &state,
                    std::iter::once(s.message.as_str())
                        .chain(s.history.iter().map(|t| t.message.as_str())),
                    &[
                        s.order.as_deref(),
                        prior.order.as_deref(),
                        understanding.order.as_deref(),
                    ],
                ),
                act_requests: Default::default(),
            },
            tx: &tx,
            conversation_id: s.conversation_id.clone(),
            message: s.message.clone(),
            events: vec![first],
            sources: Vec::new(),
            audit: Vec::new(),
            tools: Vec::new(),
            approvals: Vec::new(),
            retrieved: Vec::new(),
            calls: 0,
            tokens: Tokens::default(),
            model_time: Duration::ZERO,
            model_calls: 0,
            grounding_corrected: false,
        };
        turn.audit(AuditEvent::new(
            "chat.message",
            &s.user.name,
            json!({"turn_id": s.turn_id, "message": s.message, "order": s.order, "mode": mode, "role": s.user.role}),
        ));
        let mut fallback = false;
        let mut claim_corrected = false;
        let answer = match &self.model {
            Some(model) => match self
                .model_turn(&mut turn, model.as_ref(), &s, &state, &understanding)
                .await
            {
                Ok(mut text) => {
                    // Nothing a model says can have changed anything: a claim that an
                    // action ran is corrected in the answer itself, and audited.
                    let claim = super::claims::false_completion(&text)
                        .map(|c| (c, super::claims::correction(&turn.approvals)));
                    // A request the model says it made, when this turn made none.
                    let claim = claim.or_else(|| {
                        super::claims::claimed_request(&text)
                            .filter(|_| turn.approvals.is_empty())
                            .map(|c| (c, super::claims::no_request_correction()))
                    });
                    if let Some((claim, correction)) = claim {
                        claim_corrected = true;
                        let fix = format!("\n\n{correction}");
                        turn.audit(AuditEvent::new(
                            "copilot.claim_corrected",
                            "copilot",
                            json!({"turn_id": s.turn_id, "claim": claim, "approvals": turn.approvals}),
                        ));
                        turn.say(&fix);
                        text.push_str(&fix);
                    }
                    text
                }
                Err(GiveUp { why, offline }) => {
                    fallback = true;
                    let notice = format!("{why}; answered offline");
                    turn.audit(AuditEvent::new(
                        "copilot.fallback",
                        "copilot",
                        json!({"turn_id": s.turn_id, "reason": why}),
                    ));
                    turn.emit(ChatEvent::Notice { message: notice });
                    // The evidence was fetched already when the turn was placed: its
                    // offline answer is shown, and no tool runs twice.
                    let text = match offline {
                        Some(t) => t,
                        None => offline::answer(&mut turn, &understanding).await,
                    };
                    turn.say(&text);
                    text
                }
            },
            None => {
                let text = offline::answer(&mut turn, &understanding).await;
                turn.say(&text);
                text
            }
        };
        // What the answer's readers may not see is withheld from the answer as a whole too
        // (a value the user typed, or one a model guessed).
        let answer = Withhold::new(&s.audience, Some(state.sensitive()))
            .text(&answer, &mut Default::default());
        let citations = cite(&answer, &turn.sources);
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let mut done_audit = AuditEvent::new(
            "chat.answer",
            "copilot",
            json!({"turn_id": s.turn_id, "answer": answer, "mode": mode, "fallback": fallback,
                   "citations": citations, "approvals": turn.approvals}),
        );
        done_audit.model = Some(self.model_name());
        done_audit.prompt_tokens = Some(turn.tokens.prompt as i64);
        done_audit.completion_tokens = Some(turn.tokens.completion as i64);
        done_audit.latency_ms = Some(ms as i64);
        turn.audit(done_audit);

        let done = ChatEvent::Done {
            turn_id: s.turn_id.clone(),
            citations: citations.clone(),
            fallback,
            tokens: turn.tokens,
            ms,
        };
        let mut events = std::mem::take(&mut turn.events);
        events.push(done.clone());
        let row = TurnRow {
            id: s.turn_id.clone(),
            conversation_id: s.conversation_id.clone(),
            seq: s.seq,
            actor: s.user.name.clone(),
            message: s.message.clone(),
            answer: answer.clone(),
            mode: mode.as_str().to_string(),
            fallback,
            context: serde_json::to_value(understanding_context(&understanding, &turn))
                .unwrap_or(Value::Null),
            events: serde_json::to_value(&events).unwrap_or(Value::Null),
            created_at: chrono::Utc::now().timestamp_micros(),
        };
        // The turn's audit events and the stored turn go in one transaction, shared with
        // whatever else is queued (group commit), acknowledged before `done`.
        let audit = std::mem::take(&mut turn.audit);
        let write = TurnWrite {
            conversation: s.new_conversation.clone(),
            turn: row,
        };
        let error = match self.app.audit.append_turn(audit, write).await {
            Ok(Written { turn: Ok(()), .. }) => {
                let _ = tx.send(done);
                None
            }
            Ok(Written { turn: Err(e), .. }) => {
                tracing::error!(error = %e, "could not store a conversation turn");
                Some("the conversation could not be saved".to_string())
            }
            Err(_) => Some("the audit log could not record this turn".to_string()),
        };
        if let Some(message) = &error {
            let e = ChatEvent::Error {
                message: message.clone(),
            };
            let _ = tx.send(e.clone());
            events.pop();
            events.push(e);
        }
        TurnOutcome {
            conversation_id: s.conversation_id.clone(),
            turn_id: s.turn_id.clone(),
            mode,
            answer,
            citations,
            fallback,
            claim_corrected,
            grounding_corrected: turn.grounding_corrected,
            model_calls: turn.model_calls,
            tools: turn.tools,
            approvals: turn.approvals,
            retrieved: turn.retrieved,
            tokens: turn.tokens,
            ms,
            model_ms: turn.model_time.as_secs_f64() * 1000.0,
            events,
            error,
        }
    }

    /// The system messages of a turn: the fixed instructions (the same for every user and
    /// day, so a server's prompt cache keeps them and the tool schemas), then the turn's
    /// context (who asks, today, the open order, what the data-access policy withholds).
    pub fn system_messages(
        &self,
        user: &User,
        order: Option<&str>,
        state: &ScanState,
        redactor: &Redactor<'_>,
    ) -> [ChatMessage; 2] {
        let system = self
            .prompts
            .render("system.j2", json!({}))
            .unwrap_or_default();
        let context = self
            .prompts
            .render(
                "context.j2",
                json!({"user": user.name, "role": user.role, "today": state.result.now.format("%Y-%m-%d").to_string(),
                       "currency": state.snapshot.currency, "order": order, "redacted": redactor.blocked()}),
            )
            .unwrap_or_default();
        [
            ChatMessage::new(Role::System, system),
            ChatMessage::new(Role::System, context),
        ]
    }

    /// The tools as offered to a model. `act` tools only when the user's message asks for
    /// an action: dispatch refuses them otherwise, so offering them would only spend ~450
    /// prompt tokens and tempt a small model. They come last, so the read and draft tools
    /// stay a prefix the server's prompt cache shares between both sets.
    pub fn tool_specs(with_act: bool) -> Vec<ToolSpec> {
        // Built once: the schemas are generated from the Rust types and never change.
        static SPECS: std::sync::LazyLock<[Vec<ToolSpec>; 2]> =
            std::sync::LazyLock::new(|| [Copilot::build_specs(false), Copilot::build_specs(true)]);
        SPECS[usize::from(with_act)].clone()
    }

    fn build_specs(with_act: bool) -> Vec<ToolSpec> {
        tools::TOOLS
            .iter()
            .filter(|t| with_act || t.risk != Risk::Act)
            .map(|t| ToolSpec {
                name: t.name.to_string(),
                // The system prompt explains the `act` and `draft` marks; read tools need none.
                description: match t.risk {
                    Risk::Read => t.description.to_string(),
                    risk => format!("[{}] {}", risk.as_str(), t.description),
                },
                parameters: t.prompt_schema(),
            })
            .collect()
    }

    /// Where the resolver places a turn: most questions name what they are about, so the
    /// evidence can be fetched before the model is called, and only the tools that could
    /// still help are offered (a small model picks the wrong one out of ten, and every
    /// schema costs prompt tokens). An act request is carried out by the same recognised
    /// request the offline path makes (an approval request, nothing more), so no act tool
    /// is offered afterwards.
    fn place(u: &Understanding) -> Placement {
        use offline::Intent as I;
        match &u.intent {
            I::SmallTalk { .. } => Placement::Direct,
            I::OffTopic
                if u.order.is_none()
                    && u.case_id.is_none()
                    && u.customer.is_none()
                    && u.product.is_none()
                    && u.kind.is_none() =>
            {
                Placement::Direct
            }
            I::OffTopic => Placement::Free,
            I::Why => Placement::Grounded(&[
                "explain_order",
                "similar_cases",
                "customer_credit",
                "product_stock",
            ]),
            I::Options => Placement::Grounded(&["explain_order", "similar_cases", "search_policy"]),
            I::List => Placement::Grounded(&["list_exceptions", "explain_order"]),
            I::Stock => Placement::Grounded(&["product_stock", "list_exceptions"]),
            I::Credit => Placement::Grounded(&["customer_credit", "explain_order"]),
            I::Similar => Placement::Grounded(&["similar_cases", "explain_order"]),
            I::Policy => Placement::Grounded(&["search_policy"]),
            I::History => Placement::Grounded(&["case_history", "explain_order"]),
            I::DraftUpdate => Placement::Grounded(&["draft_customer_update", "explain_order"]),
            I::DraftCredit => Placement::Grounded(&["draft_credit_review", "customer_credit"]),
            I::DraftEscalation => Placement::Grounded(&["draft_escalation", "explain_order"]),
            I::Act(_) => Placement::Grounded(&["explain_order"]),
        }
    }

    /// The tools offered for a placed question, in registry order (so each set is a stable
    /// prefix for the server's prompt cache).
    fn narrowed_specs(names: &[&str]) -> Vec<ToolSpec> {
        Copilot::tool_specs(false)
            .into_iter()
            .filter(|t| names.contains(&t.name.as_str()))
            .collect()
    }

    async fn model_turn(
        &self,
        turn: &mut Turn<'_>,
        model: &dyn Model,
        s: &Started,
        state: &ScanState,
        u: &Understanding,
    ) -> Result<String, GiveUp> {
        let started = Instant::now();
        let placement = Copilot::place(u);
        if matches!(placement, Placement::Direct) {
            let text = offline::answer(turn, u).await;
            turn.say(&text);
            return Ok(text);
        }
        // Ground first: the evidence is fetched through the same tool calls the offline
        // answer makes, and that answer (a compact rendering of the results) is what the
        // model reads and, if the model fails, what the user gets.
        let mut evidence = Vec::new();
        let mut offline_text = None;
        let mut narrowed = None;
        if let Placement::Grounded(names) = placement {
            let before = turn.tools.len();
            let text = offline::answer(turn, u).await;
            evidence = turn.tools[before..].to_vec();
            if !evidence.is_empty() {
                narrowed = Some(names);
            }
            offline_text = Some(text);
        }
        let with_offline = |mut g: GiveUp| {
            g.offline.clone_from(&offline_text);
            g
        };
        let redactor = Redactor::new(&self.app.policy, model.provider()).learned(state.sensitive());
        let mut redactions = Redactions::default();
        let mut messages =
            Vec::from(self.system_messages(&s.user, s.order.as_deref(), state, &redactor));
        // A placed turn fetched its evidence afresh: the previous turn is enough context.
        let (history_turns, history_chars) = match narrowed {
            Some(_) => (self.cfg.history_turns.min(1), 600),
            None => (self.cfg.history_turns, 1500),
        };
        let keep = s.history.len().saturating_sub(history_turns);
        for t in &s.history[keep..] {
            messages.push(ChatMessage::new(
                Role::User,
                redactor.text(&t.message, &mut redactions),
            ));
            messages.push(ChatMessage::new(
                Role::Assistant,
                redactor.text(&bounded_text(&t.answer, history_chars), &mut redactions),
            ));
        }
        messages.push(ChatMessage::new(
            Role::User,
            redactor.text(&s.message, &mut redactions),
        ));
        let tools = match narrowed {
            Some(names) => {
                let mut assistant = ChatMessage::new(Role::Assistant, String::new());
                assistant.tool_calls = evidence
                    .iter()
                    .map(|r| super::model::ToolCall {
                        id: r.call_id.clone(),
                        name: r.tool.clone(),
                        arguments: r.arguments.to_string(),
                    })
                    .collect();
                messages.push(assistant);
                let last = evidence.len() - 1;
                for (i, r) in evidence.iter().enumerate() {
                    let content = if i == last {
                        offline_text.clone().unwrap_or_default()
                    } else {
                        r.result["summary"]
                            .as_str()
                            .or(r.result["error"].as_str())
                            .unwrap_or_default()
                            .to_string()
                    };
                    messages.push(ChatMessage::tool_result(
                        r.call_id.clone(),
                        redactor.text(&content, &mut redactions),
                    ));
                }
                Copilot::narrowed_specs(names)
            }
            None => Copilot::tool_specs(turn.env.user_asked_to_act),
        };
        let mut step = 0;
        let answer = self
            .tool_loop(
                turn,
                model,
                &mut messages,
                &tools,
                narrowed.is_some(),
                &redactor,
                &mut redactions,
                started,
                &mut step,
            )
            .await
            .map_err(with_offline)?;
        // The figure check: what the user reads holds only what the turn looked at.
        let grounding = |turn: &Turn<'_>| {
            super::grounding::grounding_text(
                &s.message,
                turn.tools.iter().map(|c| &c.result),
                turn.retrieved.iter(),
            )
        };
        let missing = super::grounding::check(&answer, &grounding(turn), &state.snapshot);
        if missing.is_empty() {
            turn.say(&answer);
            return Ok(answer);
        }
        turn.grounding_corrected = true;
        let named: Vec<String> = missing
            .iter()
            .take(6)
            .map(|m| bounded_text(m, 40))
            .collect();
        turn.audit(AuditEvent::new(
            "copilot.grounding_correction",
            "copilot",
            json!({"unmatched": named, "answer": bounded_text(&answer, 2000)}),
        ));
        messages.push(ChatMessage::new(Role::Assistant, answer));
        messages.push(ChatMessage::new(
            Role::User,
            format!(
                "Your answer names {} which the tool results do not contain. Answer again, using only references, amounts, quantities, dates and names exactly as they appear in the tool results.",
                named.join(", ")
            ),
        ));
        let answer = self
            .tool_loop(
                turn,
                model,
                &mut messages,
                &[],
                narrowed.is_some(),
                &redactor,
                &mut redactions,
                started,
                &mut step,
            )
            .await
            .map_err(with_offline)?;
        let missing = super::grounding::check(&answer, &grounding(turn), &state.snapshot);
        if !missing.is_empty() {
            // The figures go to the audit log, not to the reader.
            let named: Vec<String> = missing
                .iter()
                .take(6)
                .map(|m| bounded_text(m, 40))
                .collect();
            turn.audit(AuditEvent::new(
                "copilot.grounding_correction",
                "copilot",
                json!({"unmatched": named, "answer": bounded_text(&answer, 2000), "gave_up": true}),
            ));
            return Err(with_offline(GiveUp::new(
                "the model's answer held figures the data does not show",
            )));
        }
        turn.say(&answer);
        Ok(answer)
    }

    /// The tool loop: model calls until one answers in text (step limit, budget, invalid
    /// arguments fed back once). `grounded`: the turn's act request, if any, was made
    /// already, so an act tool the model calls is refused.
    #[allow(clippy::too_many_arguments)]
    async fn tool_loop(
        &self,
        turn: &mut Turn<'_>,
        model: &dyn Model,
        messages: &mut Vec<ChatMessage>,
        tools: &[ToolSpec],
        grounded: bool,
        redactor: &Redactor<'_>,
        redactions: &mut Redactions,
        started: Instant,
        step: &mut usize,
    ) -> Result<String, GiveUp> {
        let mut answer = String::new();
        let mut invalid_fed_back = false;
        let mut trimmed = false;
        while *step < self.cfg.step_limit {
            let Some(remaining) = self.cfg.turn_budget.checked_sub(started.elapsed()) else {
                return Err(GiveUp::new("the model did not answer in time"));
            };
            let req = ModelRequest {
                messages: messages.clone(),
                tools: tools.to_vec(),
                max_tokens: self.cfg.max_tokens,
                timeout: remaining,
            };
            let (out, streamed) = self
                .complete(turn, model, req, redactions, *step, &mut trimmed)
                .await?;
            *step += 1;
            if !streamed.is_empty() {
                answer.push_str(&streamed);
            } else if !out.text.is_empty() {
                answer.push_str(&out.text);
            }
            if out.tool_calls.is_empty() {
                if garbage(&answer) {
                    return Err(GiveUp::new("the model's answer was unusable"));
                }
                return Ok(answer);
            }
            let mut assistant = ChatMessage::new(Role::Assistant, out.text.clone());
            assistant.tool_calls = out.tool_calls.clone();
            messages.push(assistant);
            // Parse every call first; announce them all, run them side by side.
            let mut parsed = Vec::with_capacity(out.tool_calls.len());
            let mut invalid = false;
            for call in &out.tool_calls {
                let args: Result<Value, String> = serde_json::from_str::<Value>(&call.arguments)
                    .map_err(|e| format!("arguments are not valid JSON: {e}"))
                    .and_then(|v| {
                        if v.is_object() {
                            Ok(v)
                        } else {
                            Err("arguments must be a JSON object".into())
                        }
                    });
                let call_id = if call.id.is_empty() || call.id.len() > 64 {
                    turn.next_call_id()
                } else {
                    call.id.clone()
                };
                let name = bounded_text(&call.name, 64);
                let risk = turn.announce(
                    &call_id,
                    &name,
                    args.as_ref()
                        .unwrap_or(&Value::String(bounded_text(&call.arguments, 500))),
                );
                parsed.push((call_id, name, risk, args));
            }
            let env = &turn.env;
            let runs = parsed.iter().map(|(_, name, risk, args)| async move {
                let t = Instant::now();
                let r = match args {
                    Ok(_) if grounded && env.user_asked_to_act && *risk == Risk::Act => {
                        Err(ToolError::Refused(
                            "the action this message asks for was requested already in this turn"
                                .into(),
                        ))
                    }
                    Ok(a) => tools::dispatch(env, name, a).await,
                    Err(e) => Err(ToolError::InvalidArguments(e.clone())),
                };
                (r, t.elapsed())
            });
            let results = futures_util::future::join_all(runs).await;
            for ((call_id, name, risk, args), (result, took)) in parsed.iter().zip(results) {
                if matches!(
                    result,
                    Err(ToolError::InvalidArguments(_) | ToolError::UnknownTool(_))
                ) {
                    invalid = true;
                }
                let shown = args.clone().unwrap_or(Value::Null);
                let mut content = turn.record(call_id, name, *risk, &shown, &result, took);
                redactor.value(&mut content, redactions);
                prune_empty(&mut content);
                messages.push(ChatMessage::tool_result(call_id, content.to_string()));
            }
            if invalid {
                if invalid_fed_back {
                    return Err(GiveUp::new(
                        "the model called tools with invalid arguments twice",
                    ));
                }
                invalid_fed_back = true;
            }
        }
        Err(GiveUp::new(format!(
            "the model did not finish within {} steps",
            self.cfg.step_limit
        )))
    }

    /// One model call, one trim when the prompt is too long, and the audit of prompt and
    /// response. Transient errors are not retried here: the adapter retried them already
    /// (one retry layer, with its own backoff and `Retry-After` handling), so a transient
    /// error that reaches the engine means the model is down and the turn goes offline.
    async fn complete(
        &self,
        turn: &mut Turn<'_>,
        model: &dyn Model,
        mut req: ModelRequest,
        redactions: &Redactions,
        step: usize,
        trimmed: &mut bool,
    ) -> Result<(ModelOutput, String), GiveUp> {
        let deadline = Instant::now() + req.timeout;
        let mut attempt = 0u32;
        loop {
            // Attempt 1 is the retry after a trim.
            let mut ev = AuditEvent::new(
                "llm.prompt",
                "copilot",
                json!({"step": step, "attempt": attempt, "messages": req.messages,
                       "tools": req.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
                       "redacted": redactions.classes}),
            );
            ev.model = Some(model.name());
            turn.audit(ev);
            // Text is collected, not forwarded: an answer is shown only after the figure
            // check has passed it.
            let mut streamed = String::new();
            let t = Instant::now();
            turn.model_calls += 1;
            let result = {
                let mut sink = |e: ModelEvent| match e {
                    ModelEvent::TextDelta(text) => streamed.push_str(&text),
                };
                let budget = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(budget, model.complete(&req, &mut sink)).await {
                    Ok(r) => r,
                    Err(_) => Err(ModelError::Timeout(budget)),
                }
            };
            let took = t.elapsed();
            turn.model_time += took;
            match result {
                Ok(out) => {
                    turn.tokens.prompt += u64::from(out.prompt_tokens);
                    turn.tokens.completion += u64::from(out.completion_tokens);
                    let mut ev = AuditEvent::new(
                        "llm.response",
                        "copilot",
                        json!({"step": step, "text": out.text, "tool_calls": out.tool_calls, "finish": out.finish}),
                    );
                    ev.model = Some(model.name());
                    ev.prompt_tokens = Some(i64::from(out.prompt_tokens));
                    ev.completion_tokens = Some(i64::from(out.completion_tokens));
                    ev.latency_ms = Some(took.as_millis() as i64);
                    turn.audit(ev);
                    if out.finish == FinishReason::Length && out.tool_calls.is_empty() {
                        return Err(GiveUp::new("the model's answer was cut off"));
                    }
                    return Ok((out, streamed));
                }
                Err(e) => {
                    let mut ev = AuditEvent::new(
                        "llm.error",
                        "copilot",
                        json!({"step": step, "attempt": attempt, "error": e.to_string()}),
                    );
                    ev.model = Some(model.name());
                    ev.latency_ms = Some(took.as_millis() as i64);
                    turn.audit(ev);
                    match e {
                        ModelError::Transient(_) => {
                            return Err(GiveUp::new("the model is unavailable"));
                        }
                        ModelError::ContextTooLong(_) if !*trimmed => {
                            *trimmed = true;
                            attempt += 1;
                            trim(&mut req.messages);
                        }
                        ModelError::ContextTooLong(_) => {
                            return Err(GiveUp::new("the conversation is too long for the model"));
                        }
                        ModelError::Timeout(_) => {
                            return Err(GiveUp::new("the model did not answer in time"));
                        }
                        ModelError::Permanent(_) => {
                            return Err(GiveUp::new("the model request failed"));
                        }
                    }
                }
            }
        }
    }
}

/// Drop what says nothing from a tool result before a model reads it: nulls, empty
/// strings, arrays and objects (the audit and the eval keep the full result).
fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(prune_empty);
            m.retain(|_, x| match x {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            });
        }
        Value::Array(a) => a.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// Make a prompt fit: drop the conversation history and shorten tool results.
fn trim(messages: &mut Vec<ChatMessage>) {
    let last_user = messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(0);
    let mut kept = Vec::with_capacity(messages.len());
    for (i, m) in messages.drain(..).enumerate() {
        if m.role == Role::System || i >= last_user {
            kept.push(m);
        }
    }
    for m in &mut kept {
        if m.role == Role::Tool {
            m.content = bounded_text(&m.content, 1500);
        }
    }
    *messages = kept;
}

fn bounded_text(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Citations: the tool sources the answer names, or all of them when it names none.
fn cite(answer: &str, sources: &[Source]) -> Vec<Source> {
    let unique: BTreeSet<&Source> = sources.iter().collect();
    let named: Vec<Source> = unique
        .iter()
        .filter(|s| answer.contains(&s.reference))
        .map(|s| (*s).clone())
        .collect();
    if named.is_empty() {
        unique.into_iter().take(20).cloned().collect()
    } else {
        named
    }
}

fn understanding_context(u: &Understanding, turn: &Turn<'_>) -> TurnContext {
    let mut c = u.context();
    // The order a list answer led with is the natural subject of a follow-up.
    if c.order.is_none()
        && let Some(first) = turn
            .tools
            .iter()
            .find_map(|t| t.result["data"]["rows"][0]["order"].as_str())
    {
        c.order = Some(first.to_string());
    }
    c
}
