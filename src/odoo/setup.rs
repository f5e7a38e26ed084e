//! `order-copilot odoo setup`: what an administrator would otherwise click through in Odoo,
//! done through the API and idempotently — the bot's Discuss channel (created if missing),
//! the bot's membership of it, and the automation rule that sends new `mail.message`
//! comments to the copilot's webhook ("Send Webhook Notification"). Running it again changes
//! nothing, except the webhook URL when it differs.

use serde_json::{Value, json};

use super::client::OdooClient;
use super::config::OdooConfig;
use super::schema::Schema;
use super::wire::{self, OdooError};

/// Fields of `mail.message` the webhook sends.
pub const WEBHOOK_FIELDS: &[&str] = &[
    "author_id",
    "body",
    "date",
    "message_type",
    "model",
    "res_id",
    "record_name",
    "subtype_id",
    "parent_id",
];

/// What setup found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SetupReport {
    /// The channel.
    pub channel_id: i64,
    /// Whether it was created now.
    pub channel_created: bool,
    /// Whether the bot was added to it now.
    pub member_added: bool,
    /// The automation rule.
    pub automation_id: i64,
    /// Whether it was created now.
    pub automation_created: bool,
    /// Whether its webhook URL was updated now.
    pub url_updated: bool,
}

fn first_id(rows: &[wire::Record]) -> Option<i64> {
    rows.first().and_then(|r| wire::get(r, "id").as_i64())
}

/// Set up the bot's channel and the webhook automation, as an administrator.
pub async fn setup(
    admin: &OdooClient,
    cfg: &OdooConfig,
    bot_login: &str,
    webhook_url: &str,
) -> Result<SetupReport, OdooError> {
    let schema = Schema {
        major: admin.version().major,
    };
    let channel_model = schema.channel_model();
    let bot = admin
        .search_read(
            "res.users",
            json!([["login", "=", bot_login]]),
            &["partner_id", "email"],
            None,
            0,
            Some(1),
        )
        .await?;
    let bot_partner = bot
        .first()
        .and_then(|r| wire::m2o_id(wire::get(r, "partner_id")))
        .ok_or_else(|| OdooError::MissingRecord(format!("no Odoo user with login {bot_login}: create the bot user (an internal user with its own API key) first")))?;
    // Seen on the real 17 and 18: a user without an e-mail address may post in channels
    // but not on a record's chatter ("Unable to send message, please configure the
    // sender's email address"), so the bot's answers on orders would all fail.
    if bot
        .first()
        .and_then(|r| wire::opt_str(wire::get(r, "email")))
        .is_none()
    {
        return Err(OdooError::UserError(format!(
            "the bot user {bot_login} has no e-mail address: Odoo refuses its answers on an order's chatter without one; set it in Settings → Users → {bot_login}, then run setup again"
        )));
    }

    let name = cfg.bot.channel.as_str();
    let found = admin
        .search_read(
            channel_model,
            json!([["name", "=", name]]),
            &["channel_partner_ids"],
            None,
            0,
            Some(1),
        )
        .await?;
    let (channel_id, channel_created, members) = match found.first() {
        Some(r) => (
            wire::get(r, "id").as_i64().unwrap_or(0),
            false,
            wire::ids(wire::get(r, "channel_partner_ids")),
        ),
        None => {
            let id = admin.create(channel_model, json!({"name": name, "channel_type": "channel", "description": "Ask order-copilot about orders and exceptions."})).await?;
            (id, true, Vec::new())
        }
    };
    let member_added = !members.contains(&bot_partner);
    if member_added {
        let mut kw = serde_json::Map::new();
        kw.insert("partner_ids".into(), json!([bot_partner]));
        admin
            .call(channel_model, "add_members", vec![json!([channel_id])], kw)
            .await?;
    }

    let model_id = first_id(
        &admin
            .search_read(
                "ir.model",
                json!([["model", "=", "mail.message"]]),
                &["id"],
                None,
                0,
                Some(1),
            )
            .await?,
    )
    .ok_or_else(|| OdooError::MissingRecord("ir.model mail.message".into()))?;
    let existing = existing_webhook_rule(admin, &cfg.bot.automation_name, webhook_url).await?;
    let (automation_id, automation_created, url_updated) = match existing {
        Some((id, url_updated)) => (id, false, url_updated),
        None => {
            let field_ids: Vec<Value> = admin
                .search_read(
                    "ir.model.fields",
                    json!([
                        ["model", "=", "mail.message"],
                        ["name", "in", WEBHOOK_FIELDS]
                    ]),
                    &["id"],
                    None,
                    0,
                    None,
                )
                .await?
                .iter()
                .map(|r| wire::get(r, "id").clone())
                .collect();
            let models = format!("['{channel_model}', 'sale.order']");
            let id = admin
                .create(
                    "base.automation",
                    json!({
                        "name": cfg.bot.automation_name,
                        "model_id": model_id,
                        "trigger": "on_create_or_write",
                        "filter_domain": format!("[('message_type', '=', 'comment'), ('model', 'in', {models})]"),
                        "action_server_ids": [[0, 0, {
                            "name": "Send Webhook Notification",
                            "model_id": model_id,
                            "usage": "base_automation",
                            "state": "webhook",
                            "webhook_url": webhook_url,
                            "webhook_field_ids": [[6, 0, field_ids]],
                        }]],
                    }),
                )
                .await?;
            (id, true, false)
        }
    };
    Ok(SetupReport {
        channel_id,
        channel_created,
        member_added,
        automation_id,
        automation_created,
        url_updated,
    })
}

/// The `base.automation` rule named `name`, if there is one, as (id, whether its webhook
/// URL was changed now): every webhook action of the rule that does not call `url` is
/// pointed at it, so running setup again after the server moved keeps the rule.
pub(crate) async fn existing_webhook_rule(
    admin: &OdooClient,
    name: &str,
    url: &str,
) -> Result<Option<(i64, bool)>, OdooError> {
    let existing = admin
        .search_read(
            "base.automation",
            json!([["name", "=", name]]),
            &["action_server_ids"],
            None,
            0,
            Some(1),
        )
        .await?;
    let Some(r) = existing.first() else {
        return Ok(None);
    };
    let id = wire::get(r, "id").as_i64().unwrap_or(0);
    let actions = wire::ids(wire::get(r, "action_server_ids"));
    let current = admin
        .read("ir.actions.server", &actions, &["webhook_url"])
        .await?;
    let stale: Vec<i64> = current
        .iter()
        .filter(|a| wire::get(a, "webhook_url").as_str() != Some(url))
        .filter_map(|a| wire::get(a, "id").as_i64())
        .collect();
    if !stale.is_empty() {
        admin
            .write("ir.actions.server", &stale, json!({"webhook_url": url}))
            .await?;
    }
    Ok(Some((id, !stale.is_empty())))
}
