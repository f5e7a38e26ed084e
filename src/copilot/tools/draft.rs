//! The draft tools: they write text (customer updates, finance packages, escalation
//! notes) and send nothing.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::{customer_of, explanation};
use super::read::credit_position;
use super::read::{exception_json, explanation_sources};
use super::{OrderArgs, ToolEnv, ToolError, ToolOutput, day, money};
use crate::copilot::event::{Source, SourceKind};
use crate::core::Kind;
use crate::core::explain::OrderExplanation;

/// Tone of a customer update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    /// Plain and factual.
    #[default]
    Neutral,
    /// Says sorry.
    Apologetic,
    /// Formal.
    Formal,
    /// Warm.
    Friendly,
}

impl Tone {
    /// Machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Neutral => "neutral",
            Tone::Apologetic => "apologetic",
            Tone::Formal => "formal",
            Tone::Friendly => "friendly",
        }
    }
}

/// A customer update draft.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// Sales order, e.g. S00042.
    pub order: String,
    /// Tone (default neutral).
    pub tone: Option<Tone>,
    /// Language code (default: the customer's language).
    pub language: Option<String>,
}

/// An internal escalation note.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationArgs {
    /// Sales order, e.g. S00042.
    pub order: String,
    /// Role to escalate to (default: the policy's escalation role).
    pub to_role: Option<String>,
}

pub(super) async fn draft_customer_update(
    env: &ToolEnv<'_>,
    a: UpdateArgs,
) -> Result<ToolOutput, ToolError> {
    let (x, lang, tone, text) = customer_update(env, &a).await?;
    Ok(ToolOutput {
        summary: format!(
            "draft update to {} about {} ({lang}, {}); not sent",
            x.customer,
            x.order,
            tone.as_str()
        ),
        count: 1,
        sources: vec![Source::new(
            SourceKind::Order,
            &x.order,
            format!("order {}", x.order),
        )],
        data: json!({"order": x.order, "customer": x.customer, "language": lang, "tone": tone.as_str(), "draft": text, "sent": false}),
        approval: None,
        retrieval: None,
    })
}

/// A customer update for an order, in the customer's language unless one is asked for:
/// the explanation it was written from, the language, the tone and the text.
pub(super) async fn customer_update(
    env: &ToolEnv<'_>,
    a: &UpdateArgs,
) -> Result<(OrderExplanation, String, Tone, String), ToolError> {
    let x = explanation(env, &a.order).await?;
    let snap = &env.state.snapshot;
    let lang = match &a.language {
        Some(l) => l.trim().to_ascii_lowercase(),
        None => customer_of(snap, &x.order)
            .and_then(|c| snap.customers.get(c as usize))
            .map(|c| c.lang.clone())
            .unwrap_or_else(|| "en".into()),
    };
    let lang = if env.prompts.has_language(&lang) {
        lang
    } else {
        "en".to_string()
    };
    let tone = a.tone.unwrap_or_default();
    // Only what a customer may read: no credit figures, margins or internal names.
    let issues: Vec<Value> = x
        .exceptions
        .iter()
        .filter(|e| e.order_ref == x.order)
        .map(|e| {
            let eta = x.lines.iter().filter_map(|l| l.eta).max().map(day);
            json!({"kind": e.kind.as_str(), "eta": eta})
        })
        .collect();
    let text = env
        .prompts
        .render(
            "customer_update.j2",
            json!({
                "lang": lang, "tone": tone.as_str(), "customer": x.customer, "order": x.order,
                "promised": x.promised.map(day), "issues": issues,
            }),
        )
        .map_err(ToolError::Internal)?;
    Ok((x, lang, tone, text))
}

pub(super) async fn draft_credit_review(
    env: &ToolEnv<'_>,
    a: OrderArgs,
) -> Result<ToolOutput, ToolError> {
    let x = explanation(env, &a.order).await?;
    let snap = &env.state.snapshot;
    let hold = x
        .exceptions
        .iter()
        .find(|e| e.kind == Kind::CreditHold && e.order_ref == x.order)
        .ok_or_else(|| {
            ToolError::NotFound(format!(
                "{} is not on credit hold; a finance review package is for credit holds",
                x.order
            ))
        })?;
    let c = customer_of(snap, &x.order)
        .ok_or_else(|| ToolError::Internal("order without customer".into()))?;
    let credit = credit_position(snap, c, env.state.result.now);
    let case = exception_json(hold, &x.order);
    let text = env
        .prompts
        .render(
            "credit_review.j2",
            json!({"order": x.order, "open_value": money(x.open_value), "currency": x.currency,
                   "promised": x.promised.map(day), "credit": credit, "case": case}),
        )
        .map_err(ToolError::Internal)?;
    let mut sources = explanation_sources(&x);
    sources.push(Source::new(
        SourceKind::Customer,
        credit["reference"].as_str().unwrap_or_default(),
        format!("customer {}", x.customer),
    ));
    Ok(ToolOutput {
        summary: format!(
            "finance review package for {} ({}); not sent",
            x.order, x.customer
        ),
        count: 1,
        sources,
        data: json!({"order": x.order, "case_id": hold.id, "credit_review": text, "credit": credit, "sent": false}),
        approval: None,
        retrieval: None,
    })
}

pub(super) async fn draft_escalation(
    env: &ToolEnv<'_>,
    a: EscalationArgs,
) -> Result<ToolOutput, ToolError> {
    let x = explanation(env, &a.order).await?;
    if x.exceptions.is_empty() {
        return Err(ToolError::NotFound(format!(
            "{} has no exception to escalate",
            x.order
        )));
    }
    let top = &x.exceptions[0];
    let to_role = match &a.to_role {
        Some(r) if env.app.policy.roles.iter().any(|k| k == r) => r.clone(),
        Some(r) => {
            return Err(ToolError::InvalidArguments(format!("unknown role `{r}`")));
        }
        None => top
            .escalation
            .as_ref()
            .map(|e| e.to_role.clone())
            .or_else(|| {
                env.app
                    .policy
                    .route(top.kind.as_str())
                    .and_then(|r| r.escalate_to.clone())
            })
            .unwrap_or_else(|| "sales_manager".into()),
    };
    let cases: Vec<Value> = x
        .exceptions
        .iter()
        .take(3)
        .map(|e| exception_json(e, &x.order))
        .collect();
    let text = env
        .prompts
        .render(
            "escalation_note.j2",
            json!({"order": x.order, "customer": x.customer, "tier": x.tier, "to_role": to_role,
                   "from": env.user.name, "open_value": money(x.open_value), "currency": x.currency,
                   "promised": x.promised.map(day), "cases": cases}),
        )
        .map_err(ToolError::Internal)?;
    Ok(ToolOutput {
        summary: format!("escalation note to {to_role} about {}; not sent", x.order),
        count: 1,
        sources: explanation_sources(&x),
        data: json!({"order": x.order, "to_role": to_role, "draft": text, "sent": false}),
        approval: None,
        retrieval: None,
    })
}
