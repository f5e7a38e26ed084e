//! Property tests of everything that comes from outside (issue 15, item 6): chat request
//! bodies (through the real router, token and all), Odoo webhook payloads, policy files
//! and Odoo replies. 10^5 generated inputs in total: none panics, none is a server error,
//! and every refusal says what is wrong in words (never an internal error's text).
//!
//! Each test prints how many inputs it ran and how long they took.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::time::Instant;

use order_copilot::odoo::bot::Incoming;
use order_copilot::odoo::wire;
use order_copilot::policy::{EMBEDDED, Policy, PolicyError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

fn report(what: &str, n: u32, t: Instant) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "properties: {n} {what} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        "(<[a-z/]{0,5}>|&[a-z#0-9]{0,6};|[a-zA-Z0-9 ]){0,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    ".{0,12}",
                    Just("id".to_string()),
                    Just("_id".to_string()),
                    Just("_model".to_string()),
                    Just("body".to_string()),
                    Just("author_id".to_string()),
                    Just("res_id".to_string()),
                    Just("model".to_string()),
                    Just("error".to_string()),
                    Just("result".to_string()),
                    Just("jsonrpc".to_string()),
                    Just("data".to_string()),
                    Just("message".to_string()),
                    Just("name".to_string()),
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Odoo webhook payloads (mail.message): the real shape with fields of any type, and
/// anything else, and raw bytes.
#[test]
fn webhook_payloads_never_panic() {
    let t = Instant::now();
    let shaped = (
        prop_oneof![
            Just(json!("mail.message")),
            Just(json!("res.partner")),
            any_json()
        ],
        prop_oneof![any::<i64>().prop_map(|i| json!(i)), any_json()],
        any_json(),
        prop_oneof![".{0,300}".prop_map(Value::String), any_json()],
        any_json(),
        any_json(),
    )
        .prop_map(|(model, id, author, body, res_model, res_id)| {
            json!({"_model": model, "_id": id, "author_id": author, "body": body,
                   "model": res_model, "res_id": res_id, "message_type": "comment"})
        });
    let mut r = runner(15_000);
    r.run(&shaped, |v| {
        let m = Incoming::from_value(&v);
        if let Some(m) = &m {
            // Only mail.message deliveries with an integer id are taken.
            prop_assert!(v["_model"].as_str().is_none_or(|m| m == "mail.message"));
            prop_assert_eq!(Some(m.id), v["_id"].as_i64().or(v["id"].as_i64()));
            if let Some(b) = &m.body {
                let _ = wire::html_to_text(b);
            }
        } else if v["_model"] == "mail.message" {
            prop_assert!(v["_id"].as_i64().is_none());
        }
        Ok(())
    })
    .unwrap();
    let mut r = runner(10_000);
    r.run(&proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
        // What the webhook does with a delivery's body.
        let _ = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .as_ref()
            .and_then(Incoming::from_value);
        let _ = wire::html_to_text(&String::from_utf8_lossy(&bytes));
        Ok(())
    })
    .unwrap();
    let mut r = runner(5_000);
    r.run(&any_json(), |v| {
        let _ = Incoming::from_value(&v);
        Ok(())
    })
    .unwrap();
    report("webhook payloads", 30_000, t);
}

/// Odoo replies: the JSON-RPC envelope, record lists and every field decoder, on any JSON.
#[test]
fn odoo_replies_never_panic() {
    let t = Instant::now();
    let mut r = runner(30_000);
    r.run(&any_json(), |v| {
        match wire::jsonrpc_result(v.clone()) {
            Ok(res) => {
                prop_assert!(v.get("error").is_none());
                prop_assert_eq!(&res, v.get("result").unwrap_or(&Value::Null));
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.trim().is_empty());
                prop_assert!(!msg.contains("panicked"));
            }
        }
        let _ = wire::json2_error(500, &v);
        match wire::records(v.clone()) {
            Ok(rs) => {
                for rec in &rs {
                    for (k, _) in rec.iter() {
                        let f = wire::get(rec, k);
                        let _ = (
                            wire::dec(f),
                            wire::int(f),
                            wire::m2o(f),
                            wire::m2o_id(f),
                            wire::ids(f),
                            wire::datetime(f),
                            wire::opt_str(f),
                            wire::record_id(f),
                        );
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("expected")),
        }
        let _ = (
            wire::dec(&v),
            wire::datetime(&v),
            wire::m2o(&v),
            wire::ids(&v),
        );
        Ok(())
    })
    .unwrap();
    report("Odoo replies", 30_000, t);
}

/// Ways to damage a policy file.
#[derive(Debug, Clone)]
enum Damage {
    DropLine(usize),
    ReplaceValue(usize, String),
    InsertLine(usize, String),
    Truncate(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let junk = prop_oneof![
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[\"nobody\"]".to_string()),
        Just("true".to_string()),
        Just("\"x\" ]".to_string()),
        Just("4294967296".to_string()),
        Just("0".to_string()),
        Just("0.0".to_string()),
        Just("1000000".to_string()),
        ".{0,20}",
    ];
    prop_oneof![
        (0usize..200).prop_map(Damage::DropLine),
        (0usize..200, junk.clone()).prop_map(|(i, j)| Damage::ReplaceValue(i, j)),
        (
            0usize..200,
            prop_oneof![
                Just("[roles]".to_string()),
                Just("[limits]".to_string()),
                Just("[retention]".to_string()),
                Just("unknown_key = 1".to_string()),
                Just("[[rules]]".to_string()),
                ".{0,30}",
            ]
        )
            .prop_map(|(i, l)| Damage::InsertLine(i, l)),
        (0usize..20_000).prop_map(Damage::Truncate),
    ]
}

fn apply(text: &str, d: &Damage) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match d {
        Damage::DropLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
        }
        Damage::ReplaceValue(i, j) => {
            if let Some(l) = lines.get_mut(i % n)
                && let Some((k, _)) = l.split_once('=')
            {
                *l = format!("{k}= {j}");
            }
        }
        Damage::InsertLine(i, l) => lines.insert(i % (lines.len() + 1), l.clone()),
        Damage::Truncate(at) => {
            let mut at = (*at).min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return text[..at].to_string();
        }
    }
    lines.join("\n")
}

/// Damaged policy files load or are refused with an error naming the file (or the
/// missing section) — never a panic.
#[test]
fn policy_files_never_panic() {
    let t = Instant::now();
    let mut r = runner(15_000);
    let refused = std::cell::Cell::new(0u32);
    r.run(
        &(0..EMBEDDED.len(), proptest::collection::vec(damage(), 1..4)),
        |(file, damages)| {
            let files: Vec<(String, String)> = EMBEDDED
                .iter()
                .enumerate()
                .map(|(i, (n, c))| {
                    let mut c = c.to_string();
                    if i == file {
                        for d in &damages {
                            c = apply(&c, d);
                        }
                    }
                    (n.to_string(), c)
                })
                .collect();
            match Policy::from_files(&files) {
                Ok(p) => prop_assert!(!p.roles.is_empty()),
                Err(e) => {
                    refused.set(refused.get() + 1);
                    let msg = e.to_string();
                    match &e {
                        PolicyError::Missing { key, .. } => {
                            prop_assert!(msg.contains(key.as_str()))
                        }
                        _ => prop_assert!(
                            msg.contains(EMBEDDED[file].0) || msg.contains(".toml"),
                            "{msg}"
                        ),
                    }
                }
            }
            Ok(())
        },
    )
    .unwrap();
    assert!(
        refused.get() > 1000,
        "the damage must reach the validator: {}",
        refused.get()
    );
    report("damaged policy sets", 15_000, t);
}

/// A chat body, as sent: valid-looking or not.
fn chat_body() -> impl Strategy<Value = (Vec<u8>, Option<&'static str>)> {
    let message = prop_oneof![
        Just(String::new()),
        Just("   ".to_string()),
        ".{1,80}",
        "x{4001}",
        "é{3990,4010}",
    ];
    // Never empty: a valid body without a conversation starts a real turn.
    let conv = prop_oneof!["nope-[a-z0-9]{1,20}", "[a-z]{65,80}"];
    let order = prop_oneof![
        Just(None),
        Just(Some("S0001".to_string())),
        "[A-Z0-9]{65,70}".prop_map(Some)
    ];
    let shaped =
        (message, conv, order, proptest::option::of(any_json())).prop_map(|(m, c, o, extra)| {
            let mut v = json!({"message": m, "conversation_id": c});
            if let Some(o) = &o {
                v["order"] = json!(o);
            }
            if let Some(x) = extra {
                v["surprise"] = x;
            }
            let trimmed = m.trim().chars().count();
            // Which field the refusal must name.
            let why = if v.get("surprise").is_some() {
                Some("unknown field")
            } else if trimmed == 0 || trimmed > 4000 {
                Some("message")
            } else if o.is_some_and(|o| o.len() > 64) {
                Some("order")
            } else if c.len() > 64 {
                Some("conversation_id")
            } else {
                Some("no conversation")
            };
            (serde_json::to_vec(&v).unwrap(), why)
        });
    prop_oneof![
        8 => shaped,
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| (b, Some("invalid JSON body"))),
        1 => any_json()
            .prop_map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("message");
                }
                (serde_json::to_vec(&v).unwrap(), Some(""))
            }),
    ]
}

/// Chat bodies through the real router (authentication, body limit, JSON parsing, the
/// copilot's checks): refused with a 4xx that names what is wrong, never a 5xx.
#[test]
fn chat_bodies_never_panic() {
    use tower::ServiceExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let policy = common::policy_with(
        "limits.toml",
        &[
            (
                "chat = { per_minute = 20, burst = 5 }",
                "chat = { per_minute = 1000000, burst = 1000000 }",
            ),
            (
                "api = { per_minute = 600, burst = 120 }",
                "api = { per_minute = 1000000, burst = 1000000 }",
            ),
        ],
    );
    let s = rt.block_on(common::TestServer::start_with_policy(
        common::Db::Sqlite,
        30,
        policy,
    ));
    let copilot =
        std::sync::Arc::new(order_copilot::copilot::Copilot::offline(s.app.clone()).unwrap());
    let router =
        order_copilot::http::router(order_copilot::http::AppState::new(s.app.clone(), copilot));
    let token = s.admin.clone();
    let t = Instant::now();
    let mut r = runner(25_000);
    r.run(&chat_body(), |(body, why)| {
        let mut req = axum::http::Request::post("/api/chat")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        // What the server's listener attaches to every request.
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        let (status, text) = rt.block_on(async {
            let resp = router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).to_string())
        });
        prop_assert!((400..500).contains(&status), "{status}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let msg = v["error"]["message"].as_str().unwrap_or("");
        prop_assert!(!msg.is_empty(), "{text}");
        prop_assert!(
            !msg.contains("panicked") && !msg.contains("database"),
            "{msg}"
        );
        if let Some(w) = why.filter(|w| !w.is_empty()) {
            prop_assert!(msg.contains(w), "expected `{w}` in: {msg}");
        }
        Ok(())
    })
    .unwrap();
    report("chat bodies", 25_000, t);
    rt.block_on(s.stop());
}
