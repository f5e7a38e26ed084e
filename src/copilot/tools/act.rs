//! The act tools, every one of them only an approval request: the one place the copilot
//! asks for a change. [`admit`] is the boundary dispatch checks before any of them runs;
//! the request then goes through the same use-case a person's request goes through, and
//! nothing changes until an approver decides.

use chrono::{DateTime, NaiveDate};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::draft::UpdateArgs;
use super::draft::customer_update;
use super::lookup::{case_for, order_name};
use super::{
    ApprovalInfo, OrderArgs, ToolEnv, ToolError, ToolOutput, check_ref, day, kind_label, valid_kind,
};
use crate::copilot::event::{Source, SourceKind};
use crate::core::{Action, Evidence};
use crate::store::ApprovalRow;

/// Whether an act tool may be requested in this turn: only when the user's own message
/// asked for an action (not an instruction injected into a record), and only by someone
/// allowed to request actions.
pub(super) fn admit(env: &ToolEnv<'_>) -> Result<(), ToolError> {
    if !env.user_asked_to_act {
        return Err(ToolError::Refused(
            "the user did not ask for an action in this message; actions are only requested when the user asks".into(),
        ));
    }
    env.app.require(env.user, "request_actions")?;
    Ok(())
}

/// The orders a conversation is about, the only ones its act tools may target: order
/// references (`S00042`) and case ids (`EX-…`, standing for their order) in the user's own
/// messages of the conversation, and the orders the user opened or was discussing
/// (`named`). Text from records, retrieved passages or the model never adds one.
pub fn conversation_orders<'m>(
    state: &crate::app::ScanState,
    messages: impl IntoIterator<Item = &'m str>,
    named: &[Option<&str>],
) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut add = |word: &str| {
        let w = word.trim().to_ascii_uppercase();
        if w.is_empty() || w.len() > 64 {
            return;
        }
        if state.snapshot.order_by_name(&w).is_some() {
            out.insert(w);
        } else if let Some(e) = state
            .result
            .exceptions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(&w))
        {
            out.insert(e.order_ref.clone());
        }
    };
    for m in messages {
        for word in m.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
            add(word);
        }
    }
    for n in named.iter().flatten() {
        add(n);
    }
    out
}

/// Whether this act call stays inside the conversation: it must name an order (or a case
/// of one) the conversation is about, and the turn may make at most
/// `limits.copilot_requests_per_turn` requests. Checked at dispatch, before the tool runs,
/// whatever the model was told by the data it read.
pub(super) fn in_scope(env: &ToolEnv<'_>, args: &serde_json::Value) -> Result<(), ToolError> {
    let order = args
        .get("order")
        .and_then(|v| v.as_str())
        .map(|o| o.trim().to_ascii_uppercase());
    let case_order = args.get("case_id").and_then(|v| v.as_str()).map(|id| {
        env.state
            .result
            .exceptions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(id.trim()))
            .map(|e| e.order_ref.clone())
    });
    let targets: Vec<String> = match (order, case_order) {
        (None, None) => {
            return Err(ToolError::Refused(
                "an action must name the order (or the case) it is for".into(),
            ));
        }
        (_, Some(None)) => {
            return Err(ToolError::Refused("no such case".into()));
        }
        (o, Some(Some(c))) => o.into_iter().chain(std::iter::once(c)).collect(),
        (Some(o), None) => vec![o],
    };
    if let Some(t) = targets.iter().find(|t| !env.scope.contains(*t)) {
        let named = if env.scope.is_empty() {
            "none".to_string()
        } else {
            env.scope.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        return Err(ToolError::Refused(format!(
            "{t} is not an order this conversation is about (the user named: {named}); actions are only requested for those"
        )));
    }
    let max = env.app.policy.limits.copilot_requests_per_turn;
    let n = env
        .act_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    if n > max {
        return Err(ToolError::Refused(format!(
            "at most {max} action requests per message; ask again for more"
        )));
    }
    Ok(())
}

/// Request one of a case's recommended options.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestActionArgs {
    /// Case id (EX-…); or give the order.
    pub case_id: Option<String>,
    /// Sales order, e.g. S00042.
    pub order: Option<String>,
    /// Exception kind, when the order has several.
    pub kind: Option<String>,
    /// Option number as listed by explain_order (1 = first).
    pub option: u32,
}

/// Send a message to the customer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactArgs {
    /// Sales order, e.g. S00042.
    pub order: String,
    /// The exact text the customer will receive, in their language (draft it first with
    /// draft_customer_update); the approver approves this text and nothing else is sent.
    pub message: String,
}

/// Move an order's promised date.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleArgs {
    /// Sales order, e.g. S00042.
    pub order: String,
    /// New promised date, YYYY-MM-DD.
    pub new_date: String,
}

pub(super) fn approval_output(row: ApprovalRow, summary: String, order: &str) -> ToolOutput {
    let info = ApprovalInfo {
        approval_id: row.id.clone(),
        case_id: row.case_id.clone(),
        action: row.action.clone(),
        approver_roles: row.approver_roles.clone(),
        summary: summary.clone(),
    };
    let mut sources = vec![Source::new(
        SourceKind::Order,
        order,
        format!("order {order}"),
    )];
    if let Some(c) = &row.case_id {
        sources.push(Source::new(SourceKind::Case, c, format!("case {c}")));
    }
    ToolOutput {
        summary: format!(
            "approval request {} created and PENDING: {summary}; nothing has been done — it runs only after {} approves",
            row.id,
            row.approver_roles.join(" or ")
        ),
        count: 1,
        sources,
        data: json!({
            "approval_id": row.id, "status": "pending", "executed": false, "action": row.action,
            "approver_roles": row.approver_roles, "case_id": row.case_id, "what": summary,
            "message": row.params.get("message"),
            "expires_at": DateTime::from_timestamp_micros(row.expires_at).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        }),
        approval: Some(info),
        retrieval: None,
    }
}

pub(super) async fn request_action(
    env: &ToolEnv<'_>,
    a: RequestActionArgs,
) -> Result<ToolOutput, ToolError> {
    let kind = a.kind.as_deref().map(|k| valid_kind(env, k)).transpose()?;
    let exception = match (&a.case_id, &a.order) {
        (Some(id), _) => {
            let id = check_ref("case_id", id)?;
            env.state
                .result
                .exceptions
                .iter()
                .find(|e| e.id == id)
                .ok_or_else(|| ToolError::NotFound(format!("no active case {id}")))?
        }
        // Without a kind, the options meant are those listed first: the highest-scored
        // exception's (explain_order lists them in that order).
        (None, Some(o)) => {
            let o = check_ref("order", o)?;
            match case_for(&env.state, &o, kind.as_deref()) {
                Err(ToolError::Ambiguous(_)) => env
                    .state
                    .result
                    .exceptions
                    .iter()
                    .find(|e| e.order_ref.eq_ignore_ascii_case(&o))
                    .ok_or_else(|| ToolError::NotFound(format!("{o} has no active exception")))?,
                other => other?,
            }
        }
        (None, None) => {
            return Err(ToolError::InvalidArguments(
                "give a case_id or an order".into(),
            ));
        }
    };
    let index = (a.option as usize)
        .checked_sub(1)
        .ok_or_else(|| ToolError::InvalidArguments("option numbers start at 1".into()))?;
    let rec = exception.recommendations.get(index).ok_or_else(|| {
        ToolError::InvalidArguments(format!(
            "case {} has {} option(s); there is no option {}",
            exception.id,
            exception.recommendations.len(),
            a.option
        ))
    })?;
    let summary = format!(
        "{} (option {} of the {} on {})",
        rec.summary,
        a.option,
        kind_label(exception.kind.as_str()),
        exception.order_ref
    );
    let order = exception.order_ref.clone();
    // Contacting the customer needs the exact text: drafted here, in their language, and
    // shown to the approver as it will be sent.
    let message = match &rec.action {
        Action::ContactCustomer { order, .. } => {
            let draft = UpdateArgs {
                order: order.clone(),
                tone: None,
                language: None,
            };
            Some(customer_update(env, &draft).await?.3)
        }
        _ => None,
    };
    let row = env
        .app
        .request_action(env.user, &exception.id, index, message.as_deref())
        .await?;
    Ok(approval_output(row, summary, &order))
}

pub(super) async fn act_on_order(
    env: &ToolEnv<'_>,
    order: &str,
    kind: Option<&str>,
    action: Action,
    summary: String,
) -> Result<ToolOutput, ToolError> {
    let case = case_for(&env.state, order, kind).ok();
    let evidence: Vec<Evidence> = case.map(|c| c.evidence.clone()).unwrap_or_default();
    let rule = case
        .map(|c| c.policy_rule.clone())
        .unwrap_or_else(|| "copilot request".into());
    let row = env
        .app
        .request(
            env.user,
            case.map(|c| c.id.as_str()),
            &action,
            &evidence,
            &rule,
        )
        .await?;
    Ok(approval_output(row, summary, order))
}

pub(super) async fn release_credit_hold(
    env: &ToolEnv<'_>,
    a: OrderArgs,
) -> Result<ToolOutput, ToolError> {
    let order = check_ref("order", &a.order)?;
    let hold = case_for(&env.state, &order, Some("credit_hold")).map_err(|_| {
        ToolError::NotFound(format!(
            "{order} is not on credit hold; there is nothing to release"
        ))
    })?;
    let order = hold.order_ref.clone();
    let action = Action::ReleaseCreditHold {
        order: order.clone(),
        customer: hold.customer.clone(),
    };
    act_on_order(
        env,
        &order,
        Some("credit_hold"),
        action,
        format!("release the credit hold on {order}"),
    )
    .await
}

pub(super) async fn contact_customer(
    env: &ToolEnv<'_>,
    a: ContactArgs,
) -> Result<ToolOutput, ToolError> {
    let order = order_name(env, &a.order)?;
    let message = crate::core::exception::check_message(&a.message)
        .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
    let action = Action::ContactCustomer {
        order: order.clone(),
        purpose: format!(
            "customer update requested in the copilot by {}",
            env.user.name
        ),
        message: Some(message),
    };
    act_on_order(
        env,
        &order,
        None,
        action,
        format!("send the customer of {order} the message drafted"),
    )
    .await
}

pub(super) async fn reschedule_order(
    env: &ToolEnv<'_>,
    a: RescheduleArgs,
) -> Result<ToolOutput, ToolError> {
    let order = order_name(env, &a.order)?;
    let date = NaiveDate::parse_from_str(a.new_date.trim(), "%Y-%m-%d").map_err(|_| {
        ToolError::InvalidArguments(format!("new_date `{}` is not YYYY-MM-DD", a.new_date))
    })?;
    let new_date = date
        .and_hms_opt(12, 0, 0)
        .map(|t| t.and_utc())
        .ok_or_else(|| ToolError::InvalidArguments("bad date".into()))?;
    if new_date < env.state.result.now {
        return Err(ToolError::InvalidArguments(
            "the new date is in the past".into(),
        ));
    }
    let action = Action::Reschedule {
        order: order.clone(),
        new_date,
    };
    act_on_order(
        env,
        &order,
        None,
        action,
        format!("move the promised date of {order} to {}", day(new_date)),
    )
    .await
}
