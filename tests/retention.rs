//! Bodies at rest and their retention (issue 15, item 5), on SQLite and PostgreSQL:
//! prompts, responses and conversation turns are stored encrypted (nothing of them is
//! readable in the database without the body key), read back whole by the log's readers,
//! and after retention replaced by their digests while the audit chain still verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{Db, open};
use order_copilot::store::audit::{self, AuditEvent, AuditLog, AuditQuery, TurnWrite};
use order_copilot::store::{ConversationRow, Store, TurnRow, dump_for_tests, seal};
use serde_json::json;

const PROMPT: &str = "CANARY-PROMPT credit limit 4,321.77 for Hostile & Sons";
const ANSWER: &str = "CANARY-ANSWER margin 12.5% on SO-CANARY";
const QUESTION: &str = "CANARY-QUESTION why is SO-CANARY on hold?";

/// Everything an attacker holding a copy of the database (but not the keys) can read.
async fn raw(store: &Store) -> String {
    let mut all = String::new();
    for sql in [
        "SELECT payload FROM audit",
        "SELECT body FROM audit_bodies",
        "SELECT message, answer, events_json, context_json FROM conversation_turns",
    ] {
        all.push_str(&dump_for_tests(store, sql).await.unwrap());
    }
    all
}

fn turn(id: &str, conv: &str, seq: i64, created_at: i64) -> TurnRow {
    TurnRow {
        id: id.into(),
        conversation_id: conv.into(),
        seq,
        actor: "rep".into(),
        message: QUESTION.into(),
        answer: ANSWER.into(),
        mode: "openai".into(),
        fallback: false,
        context: json!({"order": "SO-1"}),
        events: json!([{"type": "text_delta", "text": ANSWER}]),
        created_at,
    }
}

fn events(conv: &str) -> Vec<AuditEvent> {
    let mut prompt = AuditEvent::new(
        "llm.prompt",
        "copilot",
        json!({"step": 0, "messages": [{"role": "user", "content": PROMPT}], "tools": ["explain"]}),
    );
    prompt.conversation_id = Some(conv.into());
    let mut response = AuditEvent::new(
        "llm.response",
        "copilot",
        json!({"step": 0, "text": ANSWER, "tool_calls": [], "finish": "stop"}),
    );
    response.conversation_id = Some(conv.into());
    response.prompt_tokens = Some(120);
    let message = AuditEvent::new(
        "chat.message",
        "rep",
        json!({"turn_id": "t1", "message": QUESTION, "order": "SO-1"}),
    );
    // Not a body kind: stays as it is.
    let decided = AuditEvent::new("case.resolved", "rep", json!({"outcome": "paid"}));
    vec![prompt, response, message, decided]
}

async fn all_rows(store: &Store, open: bool) -> Vec<audit::AuditRecord> {
    let mut rows = audit::search(
        store,
        &AuditQuery {
            ascending: Some(true),
            limit: Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    if open {
        audit::open_bodies(store, &mut rows).await.unwrap();
    }
    rows
}

async fn sealed_then_expired(db: Db) {
    let (store, _dir) = open(db).await;
    let (log, writer) = AuditLog::start(store.clone());
    let t0 = chrono::Utc::now().timestamp_micros();
    let w = log
        .append_turn(
            events("c1"),
            TurnWrite {
                conversation: Some(ConversationRow {
                    id: "c1".into(),
                    owner: "rep".into(),
                    role: "service_rep".into(),
                    created_at: t0,
                }),
                turn: turn("t1", "c1", 1, t0),
            },
        )
        .await
        .unwrap();
    assert!(w.turn.is_ok(), "{:?}", w.turn);
    drop(log);
    writer.finish().await;

    // At rest: not one body byte is readable without the body key.
    let dump = raw(&store).await;
    for canary in [
        "CANARY-PROMPT",
        "CANARY-ANSWER",
        "CANARY-QUESTION",
        "4,321.77",
    ] {
        assert!(!dump.contains(canary), "{canary} stored in plain text");
    }
    assert!(dump.contains(seal::PREFIX), "bodies are sealed");
    assert!(
        dump.contains("paid"),
        "other payloads are not sealed: {dump}"
    );

    // The chain covers the digests and verifies.
    assert!(audit::verify(&store, |_| {}).await.unwrap().ok());

    // As stored, a body is its digest; opened (read_audit, export) it is the body.
    let rows = all_rows(&store, false).await;
    let prompt = rows.iter().find(|r| r.event.kind == "llm.prompt").unwrap();
    let digest = prompt.event.payload["messages"][audit::BODY_DIGEST]
        .as_str()
        .unwrap()
        .to_string();
    let rows = all_rows(&store, true).await;
    let prompt = rows.iter().find(|r| r.event.kind == "llm.prompt").unwrap();
    assert_eq!(prompt.event.payload["messages"][0]["content"], PROMPT);
    assert_eq!(
        seal::digest(&prompt.event.payload["messages"].to_string()),
        digest,
        "the digest in the chain is the body's"
    );
    let response = rows
        .iter()
        .find(|r| r.event.kind == "llm.response")
        .unwrap();
    assert_eq!(response.event.payload["text"], ANSWER);
    assert_eq!(response.event.payload["finish"], "stop");
    let mut out = Vec::new();
    audit::export(&store, i64::MIN, &mut out).await.unwrap();
    let exported = String::from_utf8(out).unwrap();
    assert!(exported.contains("CANARY-PROMPT") && exported.contains("CANARY-QUESTION"));
    let mut out = Vec::new();
    audit::export_with(&store, i64::MIN, false, &mut out)
        .await
        .unwrap();
    assert!(!String::from_utf8(out).unwrap().contains("CANARY"));
    let turns = store.list_turns("c1", 10).await.unwrap();
    assert_eq!(turns[0].message, QUESTION);
    assert_eq!(turns[0].answer, ANSWER);
    assert_eq!(turns[0].events[0]["text"], ANSWER);

    // A body copied over another row's does not open there (its associated data names
    // its row and field), and says so.
    order_copilot::store::exec_for_tests(
        &store,
        "UPDATE audit_bodies SET body = (SELECT b.body FROM audit_bodies b WHERE b.field = 'message') WHERE field = 'text'",
    )
    .await
    .unwrap();
    let rows = all_rows(&store, true).await;
    let tampered = rows
        .iter()
        .find(|r| r.event.kind == "llm.response")
        .unwrap();
    assert!(
        tampered.event.payload["text"]["error"]
            .as_str()
            .unwrap()
            .contains("does not decrypt"),
        "{}",
        tampered.event.payload
    );
    let message = rows
        .iter()
        .find(|r| r.event.kind == "chat.message")
        .unwrap();
    assert_eq!(message.event.payload["message"], QUESTION);

    // Retention: a cut-off before the rows changes nothing.
    let none = audit::expire_bodies(&store, t0 - 1).await.unwrap();
    assert_eq!((none.audit_bodies, none.turns), (0, 0));
    // After it, bodies become their digests and the chain still verifies.
    let done = audit::expire_bodies(&store, chrono::Utc::now().timestamp_micros() + 1)
        .await
        .unwrap();
    assert_eq!(done.audit_bodies, 4, "messages, text, tool_calls, message");
    assert_eq!(done.turns, 1);
    assert_eq!(done.legacy_rows, 0);
    let v = audit::verify(&store, |_| {}).await.unwrap();
    assert!(v.ok(), "the chain verifies after retention: {v:?}");
    let rows = all_rows(&store, true).await;
    let prompt = rows.iter().find(|r| r.event.kind == "llm.prompt").unwrap();
    assert_eq!(prompt.event.payload["messages"][audit::BODY_DIGEST], digest);
    assert_eq!(prompt.event.payload["messages"]["expired"], true);
    let turns = store.list_turns("c1", 10).await.unwrap();
    assert_eq!(
        turns[0].message,
        format!("expired:sha256:{}", seal::digest(QUESTION))
    );
    assert_eq!(turns[0].events, json!([]));
    let dump = raw(&store).await;
    assert!(!dump.contains(seal::PREFIX), "no sealed body is left");
    // A second run finds nothing more.
    let again = audit::expire_bodies(&store, chrono::Utc::now().timestamp_micros() + 1)
        .await
        .unwrap();
    assert_eq!((again.audit_bodies, again.turns), (0, 0));
    store.close().await;
}

both!(sealed_then_expired);

/// Rows written before encryption (plain text in the database) are still read, and
/// retention turns them into digests too.
async fn plaintext_rows_from_before_still_read(db: Db) {
    let (store, _dir) = open(db).await;
    let t0 = chrono::Utc::now().timestamp_micros();
    store
        .insert_conversation(&ConversationRow {
            id: "old".into(),
            owner: "rep".into(),
            role: "service_rep".into(),
            created_at: t0,
        })
        .await
        .unwrap();
    store.insert_turn(&turn("o1", "old", 1, t0)).await.unwrap();
    // What a row written before 0008 looks like: plain text.
    order_copilot::store::exec_for_tests(
        &store,
        "UPDATE conversation_turns SET message = 'plain old question', answer = 'plain old answer', events_json = '[]' WHERE id = 'o1'",
    )
    .await
    .unwrap();
    let turns = store.list_turns("old", 10).await.unwrap();
    assert_eq!(turns[0].message, "plain old question");
    assert_eq!(turns[0].answer, "plain old answer");
    let done = audit::expire_bodies(&store, t0 + 1).await.unwrap();
    assert_eq!(done.turns, 1);
    let turns = store.list_turns("old", 10).await.unwrap();
    assert_eq!(
        turns[0].answer,
        format!("expired:sha256:{}", seal::digest("plain old answer"))
    );
    store.close().await;
}

both!(plaintext_rows_from_before_still_read);

/// Without the body key (another data directory, no BODY_KEY) the database's bodies do
/// not open: the key really is outside the database.
async fn another_key_cannot_open(db: Db) {
    let (store, fresh) = open(db).await;
    let t0 = chrono::Utc::now().timestamp_micros();
    store
        .insert_conversation(&ConversationRow {
            id: "k".into(),
            owner: "rep".into(),
            role: "service_rep".into(),
            created_at: t0,
        })
        .await
        .unwrap();
    store.insert_turn(&turn("k1", "k", 1, t0)).await.unwrap();
    let key_file = fresh.data_dir.join(seal::KEY_FILE);
    assert!(key_file.exists(), "the key lives in the data directory");
    store.close().await;
    std::fs::remove_file(&key_file).unwrap();
    // A new key is generated on open; the old bodies no longer open.
    let store = Store::open(&fresh).await.unwrap();
    let e = store.list_turns("k", 10).await.unwrap_err();
    assert!(e.to_string().contains("body key"), "{e}");
    store.close().await;
}

both!(another_key_cannot_open);
