//! The copilot's typed tools over the exception core, the store and retrieval, and the
//! one registry that lists them ([`TOOLS`]).
//!
//! Every tool has a Rust argument type (its JSON Schema is generated from it, so the
//! model sees exactly what the code accepts) and a risk class: `read` tools look things
//! up, `draft` tools write text and send nothing, `act` tools would change Odoo or contact
//! a customer. **An act tool never executes here**: [`dispatch`] turns it into an approval
//! request through the same use-case a person's request goes through ([`App::request`] /
//! [`App::request_action`]), and the caller is told it is pending. Only a human holding an
//! approver role can approve it, through the approvals API; no tool decides approvals.
//!
//! Results are bounded (a summary, a count, at most a handful of rows) and carry the
//! source ids the answer cites. Text that comes from customers or Odoo records (order
//! notes) is returned as quoted, untrusted data.
//!
//! - this file: the registry, dispatch (the approval boundary and the data-access filter
//!   of every result) and the helpers every tool shares;
//! - [`read`] — the read tools; [`draft`] — the draft tools; [`act`] — the act tools, all
//!   of them approval requests, and the check that admits them;
//! - [`lookup`] — finding orders, customers, products and cases from what a user typed.

pub mod act;
mod draft;
mod lookup;
mod read;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::event::{Risk, Source, SourceKind};
use super::knowledge::{Corpus, Passages};
use super::prompts::Prompts;
use crate::app::access::{Audience, Redactions, Withhold};
use crate::app::{App, AppError, ScanState, User};
use crate::core::{Evidence, Kind};

pub use act::{ContactArgs, RequestActionArgs, RescheduleArgs};
pub use draft::{EscalationArgs, Tone, UpdateArgs};
pub use lookup::{Match, find_customer, find_product, normalise};
pub use read::{
    CustomerArgs, HistoryArgs, ListArgs, PolicyArgs, ProductArgs, SimilarArgs, credit_position,
};

/// Most rows a list tool returns to the model.
pub const MAX_ROWS: usize = 8;
/// Most evidence facts per exception in a result.
const MAX_FACTS: usize = 6;
/// Longest quoted order note.
const MAX_NOTE: usize = 300;

/// Why a tool call failed. The message is safe to show to the model and the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not match the tool's schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// No such tool.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The thing asked about does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Several things match; the user must say which.
    #[error("{0}")]
    Ambiguous(String),
    /// Not allowed for this user or in this turn.
    #[error("{0}")]
    Refused(String),
    /// A dependency (the retrieval index, the scan) is not there.
    #[error("{0}")]
    Unavailable(String),
    /// Something broke inside (details are logged, not shown).
    #[error("internal error")]
    Internal(String),
}

impl From<AppError> for ToolError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(m) => ToolError::NotFound(m),
            AppError::Forbidden(m) => ToolError::Refused(m),
            AppError::Conflict(m) | AppError::BadRequest(m) => ToolError::Refused(m),
            AppError::Internal(m) => ToolError::Internal(m),
        }
    }
}

/// An approval request created by an act tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalInfo {
    /// Approval request id.
    pub approval_id: String,
    /// Case it belongs to.
    pub case_id: Option<String>,
    /// Action name.
    pub action: String,
    /// Roles that may approve it.
    pub approver_roles: Vec<String>,
    /// What it would do.
    pub summary: String,
}

/// A search the tool ran.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalInfo {
    /// Query.
    pub query: String,
    /// Corpora searched.
    pub corpora: Vec<Corpus>,
    /// Hits (id, score).
    pub hits: Vec<(String, f32)>,
}

/// What a tool returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// What it found, in a sentence.
    pub summary: String,
    /// How many records matched (the rows in `data` may be fewer).
    pub count: u64,
    /// Records to cite.
    pub sources: Vec<Source>,
    /// Bounded data for the model and the templates.
    pub data: Value,
    /// The approval request an act tool created.
    pub approval: Option<ApprovalInfo>,
    /// The search a retrieval tool ran.
    pub retrieval: Option<RetrievalInfo>,
}

/// Everything a tool may use. Built per turn.
pub struct ToolEnv<'a> {
    /// Use-cases (store, policy, approvals).
    pub app: &'a App,
    /// Who is asking.
    pub user: &'a User,
    /// The latest scan.
    pub state: Arc<ScanState>,
    /// Retrieval, when built.
    pub knowledge: Option<&'a dyn Passages>,
    /// Templates for drafts.
    pub prompts: &'a Prompts,
    /// Whether the user's own message asked for an action this turn. Act tools proposed
    /// without it (for example by instructions injected into a record) are refused.
    pub user_asked_to_act: bool,
    /// Who will read the answer: every tool result is filtered for them.
    pub audience: &'a Audience,
    /// The orders this conversation is about ([`act::conversation_orders`]): the only
    /// ones act tools may target.
    pub scope: std::collections::BTreeSet<String>,
    /// Act requests admitted so far this turn.
    pub act_requests: std::sync::atomic::AtomicU32,
}

/// How a tool runs: parse the JSON arguments into the tool's Rust type, then do it.
type Run = for<'a> fn(&'a ToolEnv<'a>, &'a Value) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;

/// One entry of the registry: a tool's name, description, risk, schema and handler.
pub struct ToolDef {
    /// Name the model calls.
    pub name: &'static str,
    /// Risk class.
    pub risk: Risk,
    /// What it does, for the model.
    pub description: &'static str,
    schema: fn() -> Value,
    run: Run,
}

impl ToolDef {
    /// JSON Schema of the arguments, generated from the Rust type.
    pub fn schema(&self) -> Value {
        (self.schema)()
    }

    /// The same schema as a model is shown it: [`compact`], so that fourteen tools fit
    /// the prompt budget. Arguments are still checked against the Rust type at dispatch.
    pub fn prompt_schema(&self) -> Value {
        let mut s = self.schema();
        let defs = s
            .as_object_mut()
            .and_then(|m| m.remove("$defs"))
            .unwrap_or(Value::Null);
        compact(&mut s, &defs);
        s
    }
}

/// Say the same in fewer tokens: `$ref`s inlined, `["T", "null"]` types and
/// `anyOf [X, null]` reduced to `T`/`X` (an optional field is one that is not required),
/// `oneOf` of constants turned into an `enum`, and `format`/`additionalProperties` dropped
/// (serde enforces both at dispatch).
fn compact(v: &mut Value, defs: &Value) {
    let Value::Object(m) = v else { return };
    if let Some(Value::String(r)) = m.remove("$ref") {
        let name = r.rsplit('/').next().unwrap_or_default();
        if let Some(Value::Object(def)) = defs.get(name) {
            for (k, x) in def {
                if !m.contains_key(k) {
                    m.insert(k.clone(), x.clone());
                }
            }
        }
    }
    if let Some(Value::Array(alts)) = m.remove("anyOf") {
        let mut rest: Vec<Value> = alts
            .into_iter()
            .filter(|a| a.get("type") != Some(&Value::String("null".into())))
            .collect();
        if rest.len() == 1 {
            let mut only = rest.remove(0);
            compact(&mut only, defs);
            if let Value::Object(o) = only {
                for (k, x) in o {
                    if !m.contains_key(&k) {
                        m.insert(k, x);
                    }
                }
            }
        } else {
            m.insert("anyOf".into(), Value::Array(rest));
        }
    }
    if let Some(Value::Array(alts)) = m.get("oneOf")
        && let Some(consts) = alts
            .iter()
            .map(|a| a.get("const").cloned())
            .collect::<Option<Vec<_>>>()
    {
        m.remove("oneOf");
        m.insert("type".into(), Value::String("string".into()));
        m.insert("enum".into(), Value::Array(consts));
    }
    if let Some(Value::Array(types)) = m.get("type") {
        let non_null: Vec<&Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .collect();
        if let [one] = non_null.as_slice() {
            let one = (*one).clone();
            m.insert("type".into(), one);
        }
    }
    m.remove("format");
    m.remove("additionalProperties");
    for x in m.values_mut() {
        match x {
            Value::Object(_) => compact(x, defs),
            Value::Array(items) => items.iter_mut().for_each(|i| compact(i, defs)),
            _ => {}
        }
    }
}

fn schema_of<T: JsonSchema>() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        // Keep the prompt small: the tool's name and description already say what it is.
        m.remove("$schema");
        m.remove("title");
        m.remove("description");
    }
    v
}

/// One sales order.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderArgs {
    /// Sales order, e.g. S00042.
    pub order: String,
}

/// One registry entry: the argument type gives both the schema and the parser, so the
/// model is shown exactly what the handler accepts.
macro_rules! entry {
    ($name:literal, $risk:ident, $args:ty, $handler:path, $description:literal) => {
        ToolDef {
            name: $name,
            risk: Risk::$risk,
            description: $description,
            schema: schema_of::<$args>,
            run: |env, args| Box::pin(async move { $handler(env, parse::<$args>(args)?).await }),
        }
    };
}

/// The registry: every tool, in the order the model sees them (read, draft, then act, so
/// the tools offered without act stay a prefix the model server's prompt cache shares).
/// Nothing else lists tools: the engine's offer, the prompts, the approval boundary, the
/// evals and the README table are all checked against or built from this list.
pub static TOOLS: &[ToolDef] = &[
    entry!(
        "explain_order",
        Read,
        OrderArgs,
        read::explain_order,
        "Why an order is blocked or at risk: its exceptions with evidence, owner, and numbered options with trade-offs."
    ),
    entry!(
        "list_exceptions",
        Read,
        ListArgs,
        read::list_exceptions,
        "The ranked exception queue, filtered; returns the top rows and the total."
    ),
    entry!(
        "product_stock",
        Read,
        ProductArgs,
        read::product_stock,
        "Stock per warehouse, inbound purchase lines and open demand for a product."
    ),
    entry!(
        "customer_credit",
        Read,
        CustomerArgs,
        read::customer_credit,
        "A customer's credit position: limit, exposure, overdue invoices, payment behaviour, credit holds."
    ),
    entry!(
        "similar_cases",
        Read,
        SimilarArgs,
        read::similar_cases,
        "Resolved past exceptions similar to a description, with how they were resolved."
    ),
    entry!(
        "search_policy",
        Read,
        PolicyArgs,
        read::search_policy,
        "Search the business policies (thresholds, routing, who approves what)."
    ),
    entry!(
        "case_history",
        Read,
        HistoryArgs,
        read::case_history,
        "A case's status, approvals and audit history, by case id or order."
    ),
    entry!(
        "draft_customer_update",
        Draft,
        UpdateArgs,
        draft::draft_customer_update,
        "Draft (not send) an update to the customer about an order, in their language and a chosen tone."
    ),
    entry!(
        "draft_credit_review",
        Draft,
        OrderArgs,
        draft::draft_credit_review,
        "Draft a finance review package for an order on credit hold."
    ),
    entry!(
        "draft_escalation",
        Draft,
        EscalationArgs,
        draft::draft_escalation,
        "Draft an internal escalation note about an order."
    ),
    entry!(
        "request_action",
        Act,
        RequestActionArgs,
        act::request_action,
        "Request one of a case's numbered options. Creates an approval request; nothing runs until an approver decides."
    ),
    entry!(
        "release_credit_hold",
        Act,
        OrderArgs,
        act::release_credit_hold,
        "Request release of an order's credit hold (approval by finance; nothing runs now)."
    ),
    entry!(
        "contact_customer",
        Act,
        ContactArgs,
        act::contact_customer,
        "Request sending the customer this exact message (needs approval; nothing is sent now)."
    ),
    entry!(
        "reschedule_order",
        Act,
        RescheduleArgs,
        act::reschedule_order,
        "Request a new promised date for an order (needs approval; nothing changes now)."
    ),
];

/// The tool with this name.
pub fn tool(name: &str) -> Option<&'static ToolDef> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The names of the tools of one risk class, in registry order.
pub fn names(risk: Risk) -> impl Iterator<Item = &'static str> {
    TOOLS.iter().filter(move |t| t.risk == risk).map(|t| t.name)
}

fn parse<T: DeserializeOwned>(args: &Value) -> Result<T, ToolError> {
    serde_json::from_value(args.clone()).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

/// Run a tool call. Act tools become approval requests; they never execute.
pub async fn dispatch(
    env: &ToolEnv<'_>,
    name: &str,
    args: &Value,
) -> Result<ToolOutput, ToolError> {
    let def = tool(name).ok_or_else(|| ToolError::UnknownTool(name.to_string()))?;
    if def.risk == Risk::Act {
        // The boundary: decided here, from the tool's class, whatever the caller said.
        act::admit(env)?;
        act::in_scope(env, args)?;
    }
    let mut out = (def.run)(env, args).await?;
    // The one filter for what the asking audience may see: the model (or template)
    // never receives a value its reader may not see, so no answer can repeat it.
    let w = Withhold::new(env.audience, Some(env.state.sensitive()));
    let mut counts = Redactions::default();
    w.value(&mut out.data, &mut counts);
    out.summary = w.text(&out.summary, &mut counts);
    Ok(out)
}

// ---- shared helpers -----------------------------------------------------------------

fn bounded(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

fn check_ref(what: &str, s: &str) -> Result<String, ToolError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return Err(ToolError::InvalidArguments(format!(
            "{what} must be 1 to 64 characters"
        )));
    }
    Ok(s.to_string())
}

/// `1234.5` → `"1234.50"`: amounts as exact decimal strings.
pub fn money(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

fn qty(d: Decimal) -> String {
    d.normalize().to_string()
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The citation of an evidence record.
pub fn evidence_source(e: &Evidence) -> Source {
    let r = &e.source.reference;
    match e.source.model.as_ref() {
        "policy" => Source::new(
            SourceKind::Policy,
            format!("policies/{r}"),
            format!("policy {r}"),
        ),
        "purchase.order.line" => {
            let po = r.split('/').next().unwrap_or(r);
            Source::new(SourceKind::Purchase, po, format!("purchase {r}"))
        }
        "stock.quant" | "product.product" | "product.pricelist.item" => {
            let sku = r.split('@').next().unwrap_or(r);
            Source::new(SourceKind::Product, sku, format!("{} {r}", e.source.model))
        }
        "res.partner" | "account.move" => {
            Source::new(SourceKind::Customer, r, format!("{} {r}", e.source.model))
        }
        _ => {
            let order = r.split('/').next().unwrap_or(r);
            Source::new(SourceKind::Order, order, format!("{} {r}", e.source.model))
        }
    }
}

/// A human label of a kind (`credit hold`).
pub fn kind_label(kind: &str) -> String {
    kind.replace('_', " ")
}

fn valid_kind(env: &ToolEnv<'_>, kind: &str) -> Result<String, ToolError> {
    let k = kind.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    let known = Kind::BUILTIN.iter().any(|b| b.as_str() == k)
        || env.app.policy.rules.iter().any(|r| r.name == k);
    if known {
        Ok(k)
    } else {
        Err(ToolError::InvalidArguments(format!(
            "unknown exception kind `{kind}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    #[test]
    fn every_tool_has_an_object_schema_and_a_unique_name() {
        let mut names = BTreeSet::new();
        for t in TOOLS {
            assert!(names.insert(t.name), "duplicate tool {}", t.name);
            let s = t.schema();
            assert_eq!(s["type"], "object", "{}", t.name);
            assert!(s.get("$schema").is_none());
        }
        assert!(TOOLS.iter().any(|t| t.risk == Risk::Act));
        // Act tools come last: the engine leaves them out unless the user asks to act, and
        // the rest must stay a common prefix for the model server's prompt cache.
        let first_act = TOOLS.iter().position(|t| t.risk == Risk::Act);
        let last_other = TOOLS.iter().rposition(|t| t.risk != Risk::Act);
        assert!(first_act > last_other, "{first_act:?} {last_other:?}");
    }

    #[test]
    fn schemas_follow_the_argument_types() {
        let s = tool("request_action")
            .map(|t| t.schema())
            .unwrap_or_default();
        assert_eq!(s["required"], json!(["option"]));
        assert_eq!(s["additionalProperties"], json!(false));
        let u = tool("draft_customer_update")
            .map(|t| t.schema())
            .unwrap_or_default();
        assert!(u.to_string().contains("apologetic"));
    }

    #[test]
    fn prompt_schemas_are_compact_and_say_the_same() {
        let u = tool("draft_customer_update")
            .map(|t| t.prompt_schema())
            .unwrap_or_default();
        assert_eq!(
            u["properties"]["tone"]["enum"],
            json!(["neutral", "apologetic", "formal", "friendly"])
        );
        assert_eq!(
            u["properties"]["tone"]["description"],
            "Tone (default neutral)."
        );
        assert_eq!(u["properties"]["language"]["type"], "string");
        assert_eq!(u["required"], json!(["order"]));
        let r = tool("request_action")
            .map(|t| t.prompt_schema())
            .unwrap_or_default();
        assert_eq!(r["properties"]["option"]["type"], "integer");
        assert_eq!(r["properties"]["option"]["minimum"], 0);
        for t in TOOLS {
            let text = t.prompt_schema().to_string();
            for gone in [
                "$ref",
                "$defs",
                "\"null\"",
                "format",
                "additionalProperties",
                "anyOf",
            ] {
                assert!(!text.contains(gone), "{}: {gone} in {text}", t.name);
            }
            assert!(text.len() < t.schema().to_string().len() + 1, "{}", t.name);
        }
    }

    #[test]
    fn the_readme_table_lists_the_registry() {
        let readme = include_str!("../../../README.md");
        for risk in [Risk::Read, Risk::Draft, Risk::Act] {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| {} | ", risk.as_str())))
                .unwrap_or_default();
            let listed: Vec<&str> = row
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| tool(n).is_some() || !n.contains(' '))
                .collect();
            let registered: Vec<&str> = names(risk).collect();
            assert_eq!(listed, registered, "README row for {}", risk.as_str());
        }
    }

    #[test]
    fn unknown_arguments_are_rejected() {
        let r: Result<OrderArgs, _> = parse(&json!({"order": "S1", "approved": true}));
        assert!(matches!(r, Err(ToolError::InvalidArguments(_))));
    }
}
