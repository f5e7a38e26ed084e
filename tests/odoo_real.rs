//! The connector and the detectors against a real Odoo 17.0 and 18.0 (see
//! `tests/real_odoo/mod.rs` for how the servers are found): scenarios planted through the
//! ordinary API, the way users make them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod real_odoo;

use std::sync::Arc;

use chrono::{Duration, Utc};
use order_copilot::domain::Snapshot;
use order_copilot::odoo::config::OdooConfig;
use order_copilot::odoo::source::OdooSource;
use real_odoo::RealOdoo;
use serde_json::json;

async fn fresh_database_answers(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "smoke").await else {
        return;
    };
    let id = odoo
        .create(
            "res.partner",
            json!({"name": "Smoke Test Co", "is_company": true}),
        )
        .await;
    let rows = odoo.read("res.partner", &[id], &["name"]).await;
    assert_eq!(rows[0]["name"], "Smoke Test Co");
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_database_answers_17() {
    fresh_database_answers(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_database_answers_18() {
    fresh_database_answers(18).await
}

// ---- reading ----------------------------------------------------------------------------

/// One full load of the database, as `serve` and `odoo check` do it.
async fn load(odoo: &RealOdoo) -> Snapshot {
    let cfg = OdooConfig::parse("default", order_copilot::odoo::config::DEFAULT).unwrap();
    let source = OdooSource::new(odoo.admin.clone(), cfg);
    let snap = source.refresh().await.unwrap();
    Arc::unwrap_or_clone(snap)
}

/// A brand-new customer's first order (no invoice posted, so `customer_rank` is 0) and a
/// purchase from a vendor with no bill are read.
async fn first_orders_are_read(version: u32) {
    let Some(odoo) = RealOdoo::fresh(version, "first_orders").await else {
        return;
    };
    let customer = odoo.customer("Brand New Retail Ltd", json!({})).await;
    let vendor = odoo.vendor("Fresh Supplier GmbH").await;
    let p = odoo.product("NEW-1", "New Widget", 10.0, 6.0).await;
    odoo.set_stock(p, 20.0).await;
    let so = odoo.order(customer, &[(p, 5.0)], json!({})).await;
    let so_name = odoo.name_of("sale.order", so).await;
    let po = odoo
        .purchase(vendor, p, 50.0, Utc::now() + Duration::days(10))
        .await;
    let po_name = odoo.name_of("purchase.order", po).await;
    let rank = odoo
        .read("res.partner", &[customer], &["customer_rank"])
        .await;
    assert_eq!(
        rank[0]["customer_rank"], 0,
        "the premise: no rank before an invoice"
    );

    let snap = load(&odoo).await;
    let order = snap
        .orders
        .iter()
        .find(|o| o.name == so_name)
        .unwrap_or_else(|| panic!("{so_name} not read; orders: {:?}", snap.orders));
    assert_eq!(
        snap.customers[order.customer as usize].name,
        "Brand New Retail Ltd"
    );
    assert_eq!(snap.order_lines(order).len(), 1);
    let inbound = snap
        .inbound
        .iter()
        .find(|l| l.po_ref == po_name)
        .unwrap_or_else(|| panic!("{po_name} not read"));
    assert_eq!(
        snap.suppliers[inbound.supplier as usize].name,
        "Fresh Supplier GmbH"
    );
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_orders_are_read_17() {
    first_orders_are_read(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_orders_are_read_18() {
    first_orders_are_read(18).await
}

// ---- the bot on real Discuss -------------------------------------------------------------

use common::Recorder;
use order_copilot::odoo::bot::Bot;
use order_copilot::odoo::client::Secret;

/// Messages by `author` (a partner) in a thread, oldest first.
async fn posts_by(
    odoo: &RealOdoo,
    model: &str,
    res_id: i64,
    author: i64,
) -> Vec<serde_json::Value> {
    odoo.search_read(
        "mail.message",
        json!([
            ["model", "=", model],
            ["res_id", "=", res_id],
            ["author_id", "=", author],
            ["message_type", "=", "comment"]
        ]),
        &["body", "subtype_id", "parent_id"],
    )
    .await
}

/// Wait (up to 60 s: the answer goes Odoo → webhook → bot → Odoo) for `n` posts.
async fn wait_posts(
    odoo: &RealOdoo,
    model: &str,
    res_id: i64,
    author: i64,
    n: usize,
) -> Vec<serde_json::Value> {
    for _ in 0..240 {
        let p = posts_by(odoo, model, res_id, author).await;
        if p.len() >= n {
            return p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!(
        "Odoo {}: no answer from the bot in {model} {res_id} after 60 s",
        odoo.version
    );
}

/// An internal user with a password (Settings → Users → New), in `groups` (xml ids).
async fn user(
    odoo: &RealOdoo,
    name: &str,
    login: &str,
    groups: &[&str],
    email: bool,
) -> (i64, i64) {
    let mut ids = Vec::new();
    for g in groups {
        ids.push(odoo.xmlid(g).await);
    }
    let groups_field = if odoo.version >= 19 {
        "group_ids"
    } else {
        "groups_id"
    };
    let uid = odoo
        .create(
            "res.users",
            json!({"name": name, "login": login, "password": format!("{login}-password"),
                   "email": if email { json!(format!("{login}@example.com")) } else { json!(false) },
                   groups_field: [[6, 0, ids]]}),
        )
        .await;
    let partner = odoo.read("res.users", &[uid], &["partner_id"]).await[0]["partner_id"][0]
        .as_i64()
        .unwrap();
    (uid, partner)
}

/// The whole loop on a real server: `odoo setup` installs the channel and the
/// base_automation webhook; a user's message in the channel and a mention on an order's
/// chatter reach the bot through Odoo's own webhook on loopback; the answers are posted
/// back by the bot user; the bot's own posts do not loop.
async fn bot_on_real_discuss(version: u32) {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(odoo) = RealOdoo::fresh(version, "bot").await else {
        return;
    };
    let (_, bot_partner) = user(
        &odoo,
        "Order Copilot",
        "copilot-bot",
        &[
            "base.group_user",
            "sales_team.group_sale_salesman_all_leads",
        ],
        false,
    )
    .await;
    let (_, rep_partner) = user(
        &odoo,
        "Rita Rep",
        "rita",
        &[
            "base.group_user",
            "sales_team.group_sale_salesman_all_leads",
        ],
        true,
    )
    .await;
    let mut cfg = OdooConfig::parse("default", order_copilot::odoo::config::DEFAULT).unwrap();
    cfg.bot.roles.insert("rita".into(), "service_rep".into());
    let questions = Arc::new(Recorder::default());
    let bot_client = odoo
        .login("copilot-bot", "copilot-bot-password")
        .await
        .unwrap();
    let bot = Bot::start(
        Arc::new(bot_client),
        cfg.bot.clone(),
        questions.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(bot.partner_id(), bot_partner);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secret = "a-real-webhook-secret-0123456789";
    let webhook = format!(
        "http://{}/odoo/webhook?secret={secret}",
        listener.local_addr().unwrap()
    );
    let routes = order_copilot::odoo::bot::routes(bot.clone(), Secret::new(secret));
    tokio::spawn(async move { axum::serve(listener, routes).await });
    // A bot user made without an e-mail address could answer in channels but never on an
    // order's chatter (Odoo refuses the post): setup says so instead of half-working.
    let refused = order_copilot::odoo::setup::setup(&odoo.admin, &cfg, "copilot-bot", &webhook)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("has no e-mail address"), "{refused}");
    let bot_user = odoo
        .find("res.users", json!([["login", "=", "copilot-bot"]]))
        .await;
    odoo.write(
        "res.users",
        &[bot_user],
        json!({"email": "copilot-bot@example.com"}),
    )
    .await;
    let report = order_copilot::odoo::setup::setup(&odoo.admin, &cfg, "copilot-bot", &webhook)
        .await
        .unwrap();
    assert!(
        report.channel_created && report.automation_created,
        "{report:?}"
    );
    let channel = report.channel_id;
    let channel_model = if version <= 16 {
        "mail.channel"
    } else {
        "discuss.channel"
    };
    // Rita joins the channel and asks there.
    odoo.call(
        channel_model,
        "add_members",
        json!([[channel]]),
        json!({"partner_ids": [rep_partner]}),
    )
    .await;
    let customer = odoo.customer("Discuss Test Customer", json!({})).await;
    let p = odoo.product("BOT-1", "Bot Widget", 10.0, 5.0).await;
    let so = odoo.order(customer, &[(p, 2.0)], json!({})).await;
    let so_name = odoo.name_of("sale.order", so).await;
    let rita = odoo.login("rita", "rita-password").await.unwrap();
    let post = |model: &'static str, id: i64, body: String, partners: Vec<i64>| {
        let rita = &rita;
        async move {
            let mut kw = serde_json::Map::new();
            kw.insert("body".into(), json!(body));
            kw.insert("message_type".into(), json!("comment"));
            kw.insert("subtype_xmlid".into(), json!("mail.mt_comment"));
            kw.insert("partner_ids".into(), json!(partners));
            rita.call(model, "message_post", vec![json!([id])], kw)
                .await
                .unwrap()
        }
    };
    post(
        channel_model,
        channel,
        format!("<p>why is {so_name} late?</p>"),
        vec![],
    )
    .await;
    let answers = wait_posts(&odoo, channel_model, channel, bot_partner, 1).await;
    assert_eq!(
        answers[0]["body"],
        format!("<p>answer for Rita Rep about {so_name}</p>"),
        "{answers:?}"
    );
    {
        let q = questions.0.lock().unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].role.as_deref(), Some("service_rep"));
        assert_eq!(q[0].order.as_deref(), Some(so_name.as_str()));
    }
    // The bot believes Odoo, not the payload: a forged delivery that claims an admin's
    // message on a partner's chatter is Rita's question in the bot's channel is read back
    // and ignored; an id Odoo does not have is ignored too.
    let elsewhere = odoo
        .call(
            "res.partner",
            "message_post",
            json!([[customer]]),
            json!({"body": format!("<p>why is {so_name} late?</p>"), "message_type": "comment"}),
        )
        .await;
    let elsewhere = order_copilot::odoo::wire::record_id(&elsewhere).unwrap();
    let http = reqwest::Client::new();
    let ignored = bot.stats.ignored.load(Relaxed);
    for id in [elsewhere, 2_000_000_000] {
        let forged = json!({"_model": "mail.message", "_id": id, "id": id, "author_id": rep_partner,
            "model": channel_model, "res_id": channel, "message_type": "comment",
            "body": format!("<p>why is {so_name} late?</p>")});
        let r = http.post(&webhook).json(&forged).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
    for _ in 0..80 {
        if bot.stats.unverified.load(Relaxed) == 1 && bot.stats.ignored.load(Relaxed) > ignored {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(bot.stats.unverified.load(Relaxed), 1, "{:?}", bot.stats);
    assert!(bot.stats.ignored.load(Relaxed) > ignored, "{:?}", bot.stats);
    assert_eq!(bot.stats.answered.load(Relaxed), 1, "{:?}", bot.stats);

    // On the order's chatter: a plain note is not for the bot; a mention is.
    post(
        "sale.order",
        so,
        "<p>customer called about the delivery</p>".into(),
        vec![],
    )
    .await;
    let mention = format!(
        "<p><a href=\"#\" data-oe-model=\"res.partner\" data-oe-id=\"{bot_partner}\">@Order Copilot</a> what blocks this order?</p>"
    );
    post("sale.order", so, mention, vec![bot_partner]).await;
    for _ in 0..600 {
        if bot.stats.answered.load(Relaxed) + bot.stats.failed.load(Relaxed) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(bot.stats.failed.load(Relaxed), 0, "{:?}", bot.stats);
    let answers = wait_posts(&odoo, "sale.order", so, bot_partner, 1).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        questions.0.lock().unwrap()[1].order.as_deref(),
        Some(so_name.as_str())
    );
    // No loop: the bot's own posts came back through the webhook and were ignored.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(bot.stats.answered.load(Relaxed), 2, "{:?}", bot.stats);
    assert!(bot.stats.own.load(Relaxed) >= 1, "{:?}", bot.stats);
    assert_eq!(
        posts_by(&odoo, channel_model, channel, bot_partner)
            .await
            .len(),
        1
    );
    odoo.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_on_real_discuss_17() {
    bot_on_real_discuss(17).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_on_real_discuss_18() {
    bot_on_real_discuss(18).await
}
