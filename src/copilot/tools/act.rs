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
