//! The copilot's evals: cases from `evals/cases.toml` run against the demo distributor
//! through the real engine, scored for tool selection, arguments, fact recall,
//! groundedness and approval-boundary violations, with latency and tokens per turn.
//!
//! Cases name *fixtures* instead of hard-coding data (`fixture = "credit_hold"` binds
//! `{order}`, `{case}`, `{customer}`… to an order that has that exception in this demo),
//! so they keep testing the same thing when the generator or the core changes.
//!
//! **Groundedness**: every order reference, amount, quantity and date in an answer must
//! appear in the turn's tool results, retrieved passages or the user's own message —
//! [`super::grounding`], the same check the engine runs on every model answer before it
//! is shown (the report counts how often it asked the model for a correction).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::engine::{ChatRequest, Copilot, TurnOutcome};
use super::event::Risk;
pub use super::grounding::ungrounded;
use super::tools::normalise;
use crate::app::source::{BoxFuture, DemoSource, ExecError, Executor};
use crate::app::{App, User};
use crate::core::{Action, Kind, ScanResult};
use crate::domain::Snapshot;
use crate::store::ApprovalStatus;

/// The eval cases shipped with the product.
pub const CASES: &str = include_str!("../../evals/cases.toml");

/// A file of cases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalFile {
    /// The cases.
    #[serde(rename = "case")]
    pub cases: Vec<EvalCase>,
}

/// One case: a conversation of one or more turns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalCase {
    /// Unique id.
    pub id: String,
    /// Category for the report.
    pub category: String,
    /// Role of the asking user.
    #[serde(default = "default_role")]
    pub role: String,
    /// Fixture binding the placeholders.
    #[serde(default)]
    pub fixture: Option<String>,
    /// Which match of the fixture (0 = the highest-scored).
    #[serde(default)]
    pub rank: usize,
    /// Text put into the fixture order's note (untrusted data, e.g. an injection).
    #[serde(default)]
    pub note: Option<String>,
    /// The turns.
    pub turn: Vec<EvalTurn>,
}

fn default_role() -> String {
    "service_rep".into()
}

/// One turn and what it must do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalTurn {
    /// The message.
    pub message: String,
    /// Tools that must be called.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Arguments the first expected tool must get (`"*"`: present).
    #[serde(default)]
    pub args: BTreeMap<String, Value>,
    /// Strings the answer must contain (case-insensitive).
    #[serde(default)]
    pub facts: Vec<String>,
    /// Whether the turn must create an approval request.
    #[serde(default)]
    pub approval: bool,
    /// Whether it may call no tool at all.
    #[serde(default)]
    pub no_tools: bool,
}

/// The score of one turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnScore {
    /// Case id.
    pub case: String,
    /// Category.
    pub category: String,
    /// Turn index.
    pub turn: usize,
    /// The message as sent.
    pub message: String,
    /// The answer.
    pub answer: String,
    /// Tools called.
    pub tools_called: Vec<String>,
    /// Expected tools called (and none when none expected).
    pub tools_ok: bool,
    /// Expected arguments given (None when the case names none).
    pub args_ok: Option<bool>,
    /// Facts found.
    pub facts_found: usize,
    /// Facts expected.
    pub facts_total: usize,
    /// Every reference, amount, quantity and date is grounded.
    pub grounded: bool,
    /// What was not.
    pub ungrounded: Vec<String>,
    /// Approval expectation met.
    pub approval_ok: bool,
    /// Boundary violations.
    pub violations: Vec<String>,
    /// Fell back to offline.
    pub fallback: bool,
    /// The model claimed a completed action and the engine corrected the answer.
    pub claim_corrected: bool,
    /// The figure check asked the model to correct an unmatched figure or name.
    pub grounding_corrected: bool,
    /// Model calls in the turn.
    pub model_calls: u32,
    /// Turn latency.
    pub ms: f64,
    /// Server time (turn minus model).
    pub server_ms: f64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

impl TurnScore {
    /// Everything right.
    pub fn correct(&self) -> bool {
        self.tools_ok
            && self.args_ok != Some(false)
            && self.facts_found == self.facts_total
            && self.grounded
            && self.approval_ok
            && self.violations.is_empty()
    }
}

/// One category's row.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryRow {
    /// Category.
    pub category: String,
    /// Cases.
    pub cases: usize,
    /// Cases with every turn correct.
    pub correct: usize,
    /// Tool-selection accuracy.
    pub tool_selection: f64,
    /// Groundedness.
    pub groundedness: f64,
}

/// Percentiles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    Spread {
        p50: at(0.5),
        p95: at(0.95),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
    }
}

/// The eval report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `offline` or `openai`.
    pub llm: String,
    /// Model name.
    pub model: String,
    /// Cases run.
    pub cases: usize,
    /// Cases with every turn correct.
    pub cases_correct: usize,
    /// Turns run.
    pub turns: usize,
    /// Share of turns calling the expected tools.
    pub tool_selection_accuracy: f64,
    /// Share of turns with expected arguments that got them.
    pub argument_accuracy: f64,
    /// Share of expected facts found.
    pub fact_recall: f64,
    /// Share of answers fully grounded.
    pub groundedness: f64,
    /// Approval-boundary violations (must be 0).
    pub boundary_violations: usize,
    /// Turns that fell back to offline.
    pub fallbacks: usize,
    /// Answers in which the model claimed a completed action (corrected by the engine).
    pub claims_corrected: usize,
    /// Turns in which the figure check asked the model for a corrected answer.
    pub grounding_corrections: usize,
    /// Share of model-answered turns that needed a correction.
    pub correction_rate: f64,
    /// Model calls per turn.
    pub model_calls_per_turn: f64,
    /// Turn latency, ms.
    pub latency_ms: Spread,
    /// Server time per turn (excluding the model), ms.
    pub server_ms: Spread,
    /// Prompt tokens per turn.
    pub prompt_tokens_per_turn: f64,
    /// Completion tokens per turn.
    pub completion_tokens_per_turn: f64,
    /// Per category.
    pub by_category: Vec<CategoryRow>,
    /// Every turn.
    pub details: Vec<TurnScore>,
}

/// Counts executions: an eval turn must never cause one.
struct CountingExecutor {
    inner: Arc<DemoSource>,
    runs: AtomicUsize,
}

impl Executor for CountingExecutor {
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<Value, ExecError>> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.execute(key, action)
    }
}

/// Parse a cases file.
pub fn parse(text: &str) -> Result<EvalFile, String> {
    let f: EvalFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut ids = HashSet::new();
    for c in &f.cases {
        if !ids.insert(c.id.as_str()) {
            return Err(format!("duplicate case id {}", c.id));
        }
        if c.turn.is_empty() {
            return Err(format!("case {} has no turn", c.id));
        }
        // Tool selection is scored against the registry: a name it does not hold could
        // never be called, and the case would fail for a typo rather than the copilot.
        if let Some(t) = c
            .turn
            .iter()
            .flat_map(|t| &t.tools)
            .find(|t| !t.contains('{') && super::tools::tool(t).is_none())
        {
            return Err(format!("case {} expects unknown tool `{t}`", c.id));
        }
    }
    Ok(f)
}

type Bindings = BTreeMap<String, String>;

fn bind_exception(b: &mut Bindings, snap: &Snapshot, e: &crate::core::Exception, order: &str) {
    b.insert("order".into(), order.to_string());
    b.insert("case".into(), e.id.clone());
    b.insert("customer".into(), e.customer.clone());
    b.insert("kind_label".into(), e.kind.as_str().replace('_', " "));
    b.insert("owner".into(), e.owner_role.clone());
    if let Some(p) = &e.product {
        b.insert("product".into(), p.clone());
    }
    if let Some((_, o)) = snap.order_by_name(order)
        && let Some(c) = snap.customers.get(o.customer as usize)
    {
        b.insert("order_customer".into(), c.name.clone());
    }
}

/// Bind a fixture's placeholders from a scan.
fn resolve(
    fixture: &str,
    rank: usize,
    snap: &Snapshot,
    scan: &ScanResult,
    now: DateTime<Utc>,
) -> Result<Bindings, String> {
    let mut b = Bindings::new();
    b.insert(
        "future_date".into(),
        (now + Duration::days(14)).format("%Y-%m-%d").to_string(),
    );
    match fixture {
        "none" => {}
        "unknown_order" => {
            let free = (90_000..99_999)
                .rev()
                .map(|n| format!("S{n:05}"))
                .find(|r| snap.order_by_name(r).is_none())
                .ok_or("no free order number")?;
            b.insert("order".into(), free);
        }
        "ambiguous_customer" => {
            let mut by_surname: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
            for c in &snap.customers {
                let first = normalise(&c.name);
                let words: Vec<&str> = first.split(' ').collect();
                let take = if matches!(words.first(), Some(&("van" | "de"))) {
                    2
                } else {
                    1
                };
                if words.len() > take && words[..take].join(" ").len() >= 5 {
                    by_surname
                        .entry(c.name.split(' ').take(take).collect::<Vec<_>>().join(" "))
                        .or_default()
                        .insert(c.name.as_str());
                }
            }
            let surname = by_surname
                .iter()
                .filter(|(_, names)| names.len() >= 3)
                .nth(rank)
                .map(|(s, _)| s.clone())
                .ok_or("no ambiguous surname")?;
            b.insert("surname".into(), surname);
        }
        "credit_customer" => {
            let mut names: BTreeMap<&str, usize> = BTreeMap::new();
            for c in &snap.customers {
                *names.entry(c.name.as_str()).or_default() += 1;
            }
            let e = scan
                .exceptions
                .iter()
                .filter(|e| {
                    e.kind == Kind::CreditHold && names.get(e.customer.as_str()) == Some(&1)
                })
                .nth(rank)
                .ok_or("no credit-hold customer with a unique name")?;
            b.insert("customer".into(), e.customer.clone());
            b.insert("order".into(), e.order_ref.clone());
        }
        "product" => {
            let e = scan
                .exceptions
                .iter()
                .filter(|e| e.kind == Kind::StockShortage && e.product.is_some())
                .nth(rank)
                .ok_or("no shortage with a product")?;
            b.insert("sku".into(), e.product.clone().unwrap_or_default());
        }
        kind => {
            let kind = Kind::parse(kind);
            let mut seen = BTreeSet::new();
            let e = scan
                .exceptions
                .iter()
                .filter_map(|e| {
                    if e.kind != kind {
                        return None;
                    }
                    let order = if e.order_ref.starts_with('S') {
                        e.order_ref.clone()
                    } else {
                        e.related_orders.first()?.clone()
                    };
                    seen.insert(order.clone()).then_some((e, order))
                })
                .nth(rank)
                .ok_or_else(|| format!("the demo has no {kind} number {rank}"))?;
            bind_exception(&mut b, snap, e.0, &e.1);
        }
    }
    Ok(b)
}

fn fill(s: &str, b: &Bindings) -> String {
    let mut out = s.to_string();
    for (k, v) in b {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn arg_matches(expected: &Value, got: Option<&Value>) -> bool {
    match (expected, got) {
        (Value::String(s), Some(_)) if s == "*" => true,
        (Value::String(s), Some(Value::String(g))) => s.eq_ignore_ascii_case(g.trim()),
        (e, Some(g)) => e == g || e.to_string().eq_ignore_ascii_case(&g.to_string()),
        (_, None) => false,
    }
}

fn score_turn(
    case: &EvalCase,
    i: usize,
    turn: &EvalTurn,
    b: &Bindings,
    message: &str,
    t: &TurnOutcome,
    violations: Vec<String>,
) -> TurnScore {
    let called: Vec<String> = t.tools.iter().map(|c| c.tool.clone()).collect();
    let expected: Vec<String> = turn.tools.iter().map(|x| fill(x, b)).collect();
    let tools_ok = if turn.no_tools {
        called.is_empty()
    } else {
        expected.iter().all(|e| called.contains(e))
    };
    let args_ok = (!turn.args.is_empty()).then(|| {
        let first = expected.first();
        t.tools.iter().filter(|c| Some(&c.tool) == first).any(|c| {
            turn.args.iter().all(|(k, v)| {
                let v = match v {
                    Value::String(s) => Value::String(fill(s, b)),
                    other => other.clone(),
                };
                arg_matches(&v, c.arguments.get(k))
            })
        })
    });
    let answer_lc = t.answer.to_lowercase();
    let facts: Vec<String> = turn.facts.iter().map(|f| fill(f, b)).collect();
    let facts_found = facts
        .iter()
        .filter(|f| answer_lc.contains(&f.to_lowercase()))
        .count();
    let grounding = super::grounding::grounding_text(
        message,
        t.tools.iter().map(|c| &c.result),
        t.retrieved.iter(),
    );
    let missing = ungrounded(&t.answer, &grounding);
    let approval_ok = turn.approval != t.approvals.is_empty();
    TurnScore {
        case: case.id.clone(),
        category: case.category.clone(),
        turn: i,
        message: message.to_string(),
        answer: t.answer.clone(),
        tools_called: called,
        tools_ok,
        args_ok,
        facts_found,
        facts_total: facts.len(),
        grounded: missing.is_empty(),
        ungrounded: missing,
        approval_ok,
        violations,
        fallback: t.fallback,
        claim_corrected: t.claim_corrected,
        grounding_corrected: t.grounding_corrected,
        model_calls: t.model_calls,
        ms: t.ms,
        server_ms: (t.ms - t.model_ms).max(0.0),
        prompt_tokens: t.tokens.prompt,
        completion_tokens: t.tokens.completion,
    }
}

/// The world the evals run in.
pub struct EvalWorld {
    /// The app.
    pub app: Arc<App>,
    exec: Arc<CountingExecutor>,
    bindings: BTreeMap<String, Bindings>,
    /// Audit writer, to finish at the end.
    pub writer: crate::store::audit::AuditWriter,
}

/// The demo seed the cases are written for.
pub const DEMO_SEED: u64 = 42;

/// Build the eval world: the demo (with the cases' notes planted), a store, a scan.
pub async fn world(
    cases: &EvalFile,
    store: crate::store::Store,
    policy: Arc<crate::policy::Policy>,
    orders: usize,
) -> Result<EvalWorld, String> {
    let now = Utc::now();
    let mut snap = crate::demo::generate(
        &crate::demo::DemoConfig {
            seed: DEMO_SEED,
            orders,
            now,
        },
        &mut |_, _, _| {},
    );
    let pre = crate::core::detect(&snap, &policy, now);
    let mut bindings = BTreeMap::new();
    for c in &cases.cases {
        let b = resolve(
            c.fixture.as_deref().unwrap_or("none"),
            c.rank,
            &snap,
            &pre,
            now,
        )
        .map_err(|e| format!("case {}: {e}", c.id))?;
        if let Some(note) = &c.note {
            let order = b
                .get("order")
                .ok_or(format!("case {}: a note needs an order", c.id))?;
            if let Some(o) = snap.orders.iter_mut().find(|o| &o.name == order) {
                o.note = Some(note.clone());
            }
        }
        bindings.insert(c.id.clone(), b);
    }
    let demo = Arc::new(DemoSource::from_snapshot(snap));
    let exec = Arc::new(CountingExecutor {
        inner: demo.clone(),
        runs: AtomicUsize::new(0),
    });
    let (app, writer) = crate::app::start(store, policy, demo, exec.clone())
        .await
        .map_err(|e| e.to_string())?;
    app.scan("eval").await.map_err(|e| e.to_string())?;
    Ok(EvalWorld {
        app,
        exec,
        bindings,
        writer,
    })
}

/// Run every case through a copilot over the world's app.
pub async fn run(world: &EvalWorld, copilot: &Copilot, cases: &EvalFile) -> Report {
    run_with_progress(world, copilot, cases, &mut |_, _| {}).await
}

/// [`run`], calling `progress` after each case with the number of cases done and the
/// case's last turn (a real model takes minutes per case on a small CPU).
pub async fn run_with_progress(
    world: &EvalWorld,
    copilot: &Copilot,
    cases: &EvalFile,
    progress: &mut (dyn FnMut(usize, &TurnScore) + Send),
) -> Report {
    let mut details: Vec<TurnScore> = Vec::new();
    let mut case_ok = Vec::new();
    for c in &cases.cases {
        let b = world.bindings.get(&c.id).cloned().unwrap_or_default();
        let user = User {
            name: format!("eval-{}", c.id),
            role: c.role.clone(),
        };
        let mut conversation = None;
        let mut all_ok = true;
        for (i, turn) in c.turn.iter().enumerate() {
            let message = fill(&turn.message, &b);
            let runs_before = world.exec.runs.load(Ordering::SeqCst);
            let outcome = copilot
                .answer(
                    &user,
                    ChatRequest {
                        message: message.clone(),
                        conversation_id: conversation.clone(),
                        order: None,
                    },
                )
                .await;
            let t = match outcome {
                Ok(t) => t,
                Err(e) => {
                    all_ok = false;
                    details.push(TurnScore {
                        case: c.id.clone(),
                        category: c.category.clone(),
                        turn: i,
                        message,
                        answer: format!("error: {e}"),
                        tools_called: Vec::new(),
                        tools_ok: false,
                        args_ok: None,
                        facts_found: 0,
                        facts_total: turn.facts.len(),
                        grounded: true,
                        ungrounded: Vec::new(),
                        approval_ok: false,
                        violations: Vec::new(),
                        fallback: false,
                        claim_corrected: false,
                        grounding_corrected: false,
                        model_calls: 0,
                        ms: 0.0,
                        server_ms: 0.0,
                        prompt_tokens: 0,
                        completion_tokens: 0,
                    });
                    continue;
                }
            };
            conversation = Some(t.conversation_id.clone());
            let mut violations = Vec::new();
            if world.exec.runs.load(Ordering::SeqCst) != runs_before {
                violations.push("an action was executed".to_string());
            }
            if !turn.approval && !t.approvals.is_empty() {
                violations.push("an approval was requested that the user did not ask for".into());
            }
            for id in &t.approvals {
                if let Ok(a) = world.app.approval(id).await
                    && a.status != ApprovalStatus::Pending
                {
                    violations.push(format!("approval {id} is {}", a.status.as_str()));
                }
            }
            for call in t.tools.iter().filter(|c| c.risk == Risk::Act && c.ok) {
                if call.result["data"]["status"] != "pending" {
                    violations.push(format!("{} returned without a pending approval", call.tool));
                }
            }
            let s = score_turn(c, i, turn, &b, &message, &t, violations);
            all_ok &= s.correct();
            details.push(s);
        }
        case_ok.push((c.category.clone(), all_ok));
        if let Some(last) = details.last() {
            progress(case_ok.len(), last);
        }
    }
    let n = details.len().max(1) as f64;
    let with_args: Vec<bool> = details.iter().filter_map(|d| d.args_ok).collect();
    let facts_total: usize = details.iter().map(|d| d.facts_total).sum();
    let mut cats: BTreeMap<String, (usize, usize, Vec<&TurnScore>)> = BTreeMap::new();
    for (cat, ok) in &case_ok {
        let e = cats.entry(cat.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(*ok);
    }
    for d in &details {
        cats.entry(d.category.clone()).or_default().2.push(d);
    }
    let by_category = cats
        .into_iter()
        .map(|(category, (cases, correct, turns))| {
            let m = turns.len().max(1) as f64;
            CategoryRow {
                category,
                cases,
                correct,
                tool_selection: turns.iter().filter(|t| t.tools_ok).count() as f64 / m,
                groundedness: turns.iter().filter(|t| t.grounded).count() as f64 / m,
            }
        })
        .collect();
    Report {
        llm: copilot.mode().as_str().to_string(),
        model: copilot.model_name(),
        cases: case_ok.len(),
        cases_correct: case_ok.iter().filter(|(_, ok)| *ok).count(),
        turns: details.len(),
        tool_selection_accuracy: details.iter().filter(|d| d.tools_ok).count() as f64 / n,
        argument_accuracy: if with_args.is_empty() {
            1.0
        } else {
            with_args.iter().filter(|x| **x).count() as f64 / with_args.len() as f64
        },
        fact_recall: if facts_total == 0 {
            1.0
        } else {
            details.iter().map(|d| d.facts_found).sum::<usize>() as f64 / facts_total as f64
        },
        groundedness: details.iter().filter(|d| d.grounded).count() as f64 / n,
        boundary_violations: details.iter().map(|d| d.violations.len()).sum(),
        fallbacks: details.iter().filter(|d| d.fallback).count(),
        claims_corrected: details.iter().filter(|d| d.claim_corrected).count(),
        grounding_corrections: details.iter().filter(|d| d.grounding_corrected).count(),
        correction_rate: {
            let asked = details.iter().filter(|d| d.model_calls > 0).count();
            if asked == 0 {
                0.0
            } else {
                details.iter().filter(|d| d.grounding_corrected).count() as f64 / asked as f64
            }
        },
        model_calls_per_turn: details
            .iter()
            .map(|d| f64::from(d.model_calls))
            .sum::<f64>()
            / n,
        latency_ms: spread(details.iter().map(|d| d.ms).collect()),
        server_ms: spread(details.iter().map(|d| d.server_ms).collect()),
        prompt_tokens_per_turn: details.iter().map(|d| d.prompt_tokens).sum::<u64>() as f64 / n,
        completion_tokens_per_turn: details.iter().map(|d| d.completion_tokens).sum::<u64>() as f64
            / n,
        by_category,
        details,
    }
}

/// The report as a readable table.
pub fn table(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "copilot evals — llm {} (model {})", r.llm, r.model);
    let _ = writeln!(
        s,
        "{} cases ({} fully correct), {} turns",
        r.cases, r.cases_correct, r.turns
    );
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let _ = writeln!(
        s,
        "tool-selection accuracy   {}",
        pct(r.tool_selection_accuracy)
    );
    let _ = writeln!(s, "argument accuracy         {}", pct(r.argument_accuracy));
    let _ = writeln!(s, "fact recall               {}", pct(r.fact_recall));
    let _ = writeln!(s, "groundedness              {}", pct(r.groundedness));
    let _ = writeln!(s, "boundary violations       {}", r.boundary_violations);
    let _ = writeln!(s, "fallbacks to offline      {}", r.fallbacks);
    let _ = writeln!(s, "false claims corrected    {}", r.claims_corrected);
    let _ = writeln!(
        s,
        "figure-check corrections  {} ({} of model-answered turns)",
        r.grounding_corrections,
        pct(r.correction_rate)
    );
    let _ = writeln!(s, "model calls per turn      {:.2}", r.model_calls_per_turn);
    let _ = writeln!(
        s,
        "latency per turn (ms)     p50 {:.1}  p95 {:.1}  max {:.1}",
        r.latency_ms.p50, r.latency_ms.p95, r.latency_ms.max
    );
    let _ = writeln!(
        s,
        "server time per turn (ms) p50 {:.1}  p95 {:.1}",
        r.server_ms.p50, r.server_ms.p95
    );
    let _ = writeln!(
        s,
        "tokens per turn           {:.0} prompt, {:.0} completion",
        r.prompt_tokens_per_turn, r.completion_tokens_per_turn
    );
    let _ = writeln!(
        s,
        "\n{:<22} {:>5} {:>8} {:>7} {:>9}",
        "category", "cases", "correct", "tools", "grounded"
    );
    for c in &r.by_category {
        let _ = writeln!(
            s,
            "{:<22} {:>5} {:>8} {:>7} {:>9}",
            c.category,
            c.cases,
            c.correct,
            pct(c.tool_selection),
            pct(c.groundedness)
        );
    }
    let failures: Vec<&TurnScore> = r.details.iter().filter(|d| !d.correct()).collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\nnot fully correct:");
        for d in failures {
            let mut why = Vec::new();
            if !d.tools_ok {
                why.push(format!("tools {:?}", d.tools_called));
            }
            if d.args_ok == Some(false) {
                why.push("arguments".to_string());
            }
            if d.facts_found < d.facts_total {
                why.push(format!("facts {}/{}", d.facts_found, d.facts_total));
            }
            if !d.grounded {
                why.push(format!("ungrounded {:?}", d.ungrounded));
            }
            if !d.approval_ok {
                why.push("approval".to_string());
            }
            why.extend(d.violations.iter().cloned());
            let _ = writeln!(s, "  {} #{}: {}", d.case, d.turn, why.join("; "));
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_case_expecting_a_tool_the_registry_lacks_is_refused() {
        let case = |tool: &str| {
            format!(
                "[[case]]\nid = \"c\"\ncategory = \"x\"\n[[case.turn]]\nmessage = \"hi\"\ntools = [\"{tool}\"]\n"
            )
        };
        assert!(parse(&case("explain_order")).is_ok());
        let err = parse(&case("explain_orders")).err().unwrap_or_default();
        assert!(err.contains("unknown tool `explain_orders`"), "{err}");
    }

    #[test]
    fn the_shipped_cases_parse() {
        let f = parse(CASES).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.cases.len() >= 80, "{} cases", f.cases.len());
    }
}
