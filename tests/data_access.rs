//! Who sees which data classes (`policies/data_access.toml`, per role): a viewer gets no
//! credit limits, receivables or margins through the API or chat, a service rep no
//! margins, finance everything; the bot answers in a channel for its least-entitled member.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::*;
use order_copilot::app::User;
use order_copilot::copilot::{ChatRequest, Copilot};
use order_copilot::core::Kind;
use order_copilot::core::fmt::Money;
use serde_json::Value;

/// A credit-hold case of the demo: (case id, order, the customer's limit as text shows it,
/// the case's margin at risk as text shows it).
async fn credit_case(s: &TestServer) -> (String, String, String, String) {
    let state = s.app.latest().await.unwrap();
    let e = state
        .result
        .exceptions
        .iter()
        .find(|e| {
            e.kind == Kind::CreditHold
                && e.title.contains("limit")
                && e.impact.margin_at_risk.to_string().len() >= 4
        })
        .expect("the demo has a credit hold over a limit");
    let (_, order) = state.snapshot.order_by_name(&e.order_ref).unwrap();
    let customer = &state.snapshot.customers[order.customer as usize];
    let limit = Money(customer.credit_limit.unwrap()).to_string();
    let margin = Money(e.impact.margin_at_risk).to_string();
    (e.id.clone(), e.order_ref.clone(), limit, margin)
}

fn has(v: &Value, needle: &str) -> bool {
    v.to_string().contains(needle)
}

async fn api_by_role(db: Db) {
    let s = TestServer::start(db, 300).await;
    let (case, order, limit, margin) = credit_case(&s).await;
    let viewer = s.token("vera", "viewer").await;
    let rep = s.token("rita", "service_rep").await;
    let finance = s.token("fin", "finance").await;
    let explain = format!("/api/orders/{order}/explain");
    let case_path = format!("/api/cases/{case}");
    let queue = format!("/api/exceptions?order={order}");

    for path in [&explain, &case_path, &queue] {
        let (st, v) = api_get(&s, &viewer, path).await;
        assert_eq!(st, 200, "{path}: {v}");
        assert!(
            !has(&v, &limit),
            "viewer sees the limit {limit} at {path}: {v}"
        );
        assert!(
            !has(&v, &margin),
            "viewer sees the margin {margin} at {path}"
        );
        assert!(
            has(&v, "[withheld: credit_payment — not visible to viewer]"),
            "{path}: the withheld value is shown as withheld: {v}"
        );
        // Finance sees the credit figures.
        let (_, v) = api_get(&s, &finance, path).await;
        if path != &queue {
            assert!(has(&v, &limit), "finance misses the limit at {path}: {v}");
        }
        assert!(!has(&v, "withheld"), "{path}: {v}");
        // A service rep sees credit, not margins.
        let (_, v) = api_get(&s, &rep, path).await;
        assert!(!has(&v, &margin), "service rep sees the margin at {path}");
        if path != &queue {
            assert!(has(&v, &limit), "service rep misses the limit at {path}");
        }
    }
    let (_, v) = api_get(&s, &viewer, &explain).await;
    assert_eq!(
        v["exceptions"][0]["impact"]["margin_at_risk"],
        "[withheld: costs_margins — not visible to viewer]",
        "{v}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_hold_only_what_the_role_may_see_sqlite() {
    api_by_role(Db::Sqlite).await
}

fn user(role: &str) -> User {
    User {
        name: format!("t-{role}"),
        role: role.into(),
    }
}

fn ask(message: String) -> ChatRequest {
    ChatRequest {
        message,
        ..ChatRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_the_bot_answer_for_their_audience() {
    let s = TestServer::start(Db::Sqlite, 300).await;
    let (_, order, limit, _) = credit_case(&s).await;
    let copilot = Copilot::offline(s.app.clone()).unwrap();
    let q = || ask(format!("Why is {order} blocked? what is the credit limit?"));

    let finance = copilot.answer(&user("finance"), q()).await.unwrap();
    assert!(finance.answer.contains(&limit), "{}", finance.answer);
    let viewer = copilot.answer(&user("viewer"), q()).await.unwrap();
    assert!(!viewer.answer.contains(&limit), "{}", viewer.answer);
    assert!(
        viewer.answer.contains("not visible to viewer"),
        "{}",
        viewer.answer
    );
    // What the tools returned to the viewer's turn held no limit either.
    let tools = serde_json::to_string(&viewer.tools).unwrap();
    assert!(!tools.contains(&limit), "{tools}");

    // The bot in a channel with a viewer member: finance asks, the channel reads.
    let in_channel = copilot
        .answer_for(&user("finance"), q(), &["viewer".to_string()])
        .await
        .unwrap();
    assert!(!in_channel.answer.contains(&limit), "{}", in_channel.answer);
    let bot = order_copilot::odoo::bot::CopilotAnswerer::new(std::sync::Arc::new(copilot));
    use order_copilot::odoo::bot::{Answerer, Question};
    let mut question = Question {
        text: format!("Why is {order} blocked? what is the credit limit?"),
        order: Some(order.clone()),
        role: Some("finance".into()),
        author: "Fiona".into(),
        audience: vec!["viewer".into()],
    };
    let html = bot.answer(&question).await;
    assert!(!html.contains(&limit), "{html}");
    question.audience = vec!["admin".into()];
    let html = bot.answer(&question).await;
    assert!(html.contains(&limit), "{html}");
    // The explain answerer (no copilot) filters the same way.
    let explain = order_copilot::odoo::bot::ExplainAnswerer::new(s.app.clone());
    question.audience = vec!["viewer".into()];
    let html = explain.answer(&question).await;
    assert!(
        !html.contains(&limit) && html.contains("withheld"),
        "{html}"
    );
    s.stop().await;
}
