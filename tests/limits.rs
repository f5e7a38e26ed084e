//! Bounded abuse (issue 15) against the real server on an ephemeral port: per-token request
//! rates with `429` and `Retry-After`, the per-person cap on concurrent copilot turns, the
//! cost guard (model tokens per day, audited when hit), token expiry, on SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{Db, TestServer, api_get as get, client, policy_with};
use order_copilot::app::User;
use order_copilot::app::identity::{self, Expiry};
use order_copilot::store::audit::{self, AuditEvent, AuditQuery};
use order_copilot::store::changes::Change;
use serde_json::{Value, json};

async fn chat(s: &TestServer, token: &str, message: &str) -> (u16, Option<u64>, String) {
    let r = client()
        .post(s.url("/api/chat"))
        .bearer_auth(token)
        .json(&json!({"message": message}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, r.text().await.unwrap())
}

/// The conversation id of a chat stream (its first event).
fn conversation_id(sse: &str) -> String {
    let data = sse
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("an event");
    let v: Value = serde_json::from_str(data).unwrap();
    v["conversation_id"].as_str().unwrap().to_string()
}

async fn audited(s: &TestServer, kind: &str) -> Vec<audit::AuditRecord> {
    audit::search(
        &s.app.store,
        &AuditQuery {
            kind: Some(kind.into()),
            limit: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn request_rates(db: Db) {
    let policy = policy_with(
        "limits.toml",
        &[(
            "chat = { per_minute = 20, burst = 5 }",
            "chat = { per_minute = 1, burst = 2 }",
        )],
    );
    let s = TestServer::start_with_policy(db, 100, policy).await;
    let pat = s.token("pat", "service_rep").await;
    for _ in 0..2 {
        let (st, _, body) = chat(&s, &pat, "status").await;
        assert_eq!(st, 200, "{body}");
    }
    let (st, retry, body) = chat(&s, &pat, "status").await;
    assert_eq!(st, 429, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("at most 1 a minute"), "{msg}");
    let retry = retry.expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    // The API bucket is separate, and so is everyone else's.
    assert_eq!(get(&s, &pat, "/api/me").await.0, 200);
    let sam = s.token("sam", "service_rep").await;
    assert_eq!(chat(&s, &sam, "status").await.0, 200);
    s.stop().await;

    let policy = policy_with(
        "limits.toml",
        &[(
            "api = { per_minute = 600, burst = 120 }",
            "api = { per_minute = 1, burst = 3 }",
        )],
    );
    let s = TestServer::start_with_policy(db, 100, policy).await;
    for _ in 0..3 {
        assert_eq!(get(&s, &s.admin, "/api/me").await.0, 200);
    }
    let r = client()
        .get(s.url("/api/exceptions"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    s.stop().await;
}

async fn concurrent_turns_and_cost_guard(db: Db) {
    let policy = policy_with(
        "limits.toml",
        &[
            ("concurrent_turns = 2", "concurrent_turns = 1"),
            (
                "model_tokens_per_day = 200000",
                "model_tokens_per_day = 100",
            ),
        ],
    );
    let s = TestServer::start_with_policy(db, 100, policy).await;
    let pat = s.token("pat", "planner").await;
    let user = User {
        name: "pat".into(),
        role: "planner".into(),
    };
    // One turn running (held here): a second is refused, plainly, until it ends.
    let slot = s.app.begin_turn(&user).await.unwrap();
    let (st, retry, body) = chat(&s, &pat, "status").await;
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("at most 1 at once"), "{body}");
    assert!(retry.is_some());
    drop(slot);
    let (st, _, body) = chat(&s, &pat, "status").await;
    assert_eq!(st, 200, "{body}");
    let conv = conversation_id(&body);
    // The turn's slot is free again once its stream ended.
    let slot = s.app.begin_turn(&user).await.unwrap();
    drop(slot);

    // The cost guard: pat's turns today used 110 model tokens (the copilot's answers
    // record them), over the cap of 100.
    let mut ev = AuditEvent::new("chat.answer", "copilot", json!({"answer": "…"}));
    ev.conversation_id = Some(conv);
    ev.prompt_tokens = Some(80);
    ev.completion_tokens = Some(30);
    s.app.audit.append(ev).await.unwrap();
    let (st, retry, body) = chat(&s, &pat, "status").await;
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("110 model tokens today"), "{body}");
    let retry = retry.unwrap();
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    let hits = audited(&s, "limit.model_tokens").await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].event.actor, "pat");
    assert_eq!(hits[0].event.payload["spent_today"], 110);
    // Someone else's budget is their own.
    let sam = s.token("sam", "planner").await;
    assert_eq!(chat(&s, &sam, "status").await.0, 200);
    s.stop().await;
}

async fn token_expiry(db: Db) {
    let s = TestServer::start(db, 100).await;
    let now = chrono::Utc::now().timestamp_micros();
    // A token whose day has passed (created as `token create --expires 1d` would, a day
    // and a minute ago).
    let secret = "oc_expired_for_the_test";
    s.app
        .store
        .apply(&Change::InsertToken {
            name: "old".into(),
            role: "planner".into(),
            hash: identity::hash_token(secret),
            now: now - 86_460_000_000,
            expires_at: Some(now - 60_000_000),
        })
        .await
        .unwrap();
    let (st, v) = get(&s, secret, "/api/me").await;
    assert_eq!(st, 401, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("expired") && msg.contains("old"), "{msg}");
    let failed = audited(&s, "auth.failed").await;
    assert!(
        failed
            .iter()
            .any(|r| r.event.payload["reason"] == "expired token"),
        "{failed:?}"
    );
    // A token made to last a day works, and the list tells them apart.
    let fresh = identity::create_token_expiring(
        &s.app.store,
        &s.app.policy,
        "new",
        "planner",
        "test",
        "1d".parse::<Expiry>().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(get(&s, &fresh, "/api/me").await.0, 200);
    let tokens = s.app.store.list_tokens().await.unwrap();
    let state = |n: &str| {
        let t = tokens.iter().find(|t| t.name == n).unwrap();
        (t.state(now), t.expires_at)
    };
    assert_eq!(state("old").0, "expired");
    let (st, exp) = state("new");
    assert_eq!(st, "active");
    let left = exp.unwrap() - now;
    assert!((86_000_000_000..=86_500_000_000).contains(&left), "{left}");
    // Without --expires a token lasts the policy's default.
    let (_, admin_exp) = state("admin");
    let days = i64::from(s.app.policy.limits.token_expiry_days);
    assert!((admin_exp.unwrap() - now - days * 86_400_000_000).abs() < 3_600_000_000);
    s.stop().await;
}

both!(request_rates);
both!(concurrent_turns_and_cost_guard);
both!(token_expiry);
