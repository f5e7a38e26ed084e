//! The storage suite, run against both SQLite and PostgreSQL: the case lifecycle of scan
//! merges, exactly-once approval decisions and execution claims, tokens, and the audit
//! log's hash chain under tampering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{Db, open};
use order_copilot::store::audit::{self, AuditEvent, AuditLog, TurnWrite};
use order_copilot::store::{
    ApprovalRow, ApprovalStatus, CaseQuery, CaseStatus, CaseUpsert, ConversationRow, Decision,
    DecisionOutcome, Store, TurnRow,
};
use serde_json::json;

fn case(id: &str, score: u8) -> CaseUpsert {
    CaseUpsert {
        id: id.into(),
        kind: "stock_shortage".into(),
        order_ref: format!("S{id}"),
        customer: "Acme".into(),
        tier: "A".into(),
        warehouse: Some("WH1".into()),
        product: Some("SKU-1".into()),
        owner_role: "planner".into(),
        severity: "high".into(),
        score,
        revenue_cents: i64::from(score) * 100,
        title: format!("case {id}"),
        policy_version: "v1".into(),
        exception_json: json!({"id": id}).to_string(),
    }
}

async fn status(store: &Store, id: &str) -> CaseStatus {
    store.get_case(id).await.unwrap().unwrap().summary.status
}

async fn lifecycle(db: Db) {
    let (store, _store_dir) = open(db).await;
    let s = store
        .merge_scan(&[case("a", 50), case("b", 70)], 1)
        .await
        .unwrap();
    assert_eq!((s.new, s.updated, s.cleared, s.reopened), (2, 0, 0, 0));
    // Idempotent: the same detections merge into the same cases.
    let s = store
        .merge_scan(&[case("a", 55), case("b", 70)], 2)
        .await
        .unwrap();
    assert_eq!((s.new, s.updated), (0, 2));
    assert_eq!(
        store.get_case("a").await.unwrap().unwrap().summary.score,
        55
    );
    // b acknowledged, then a vanishes: a is cleared, b stays.
    assert!(
        store
            .transition_case(
                "b",
                &[CaseStatus::Open],
                CaseStatus::Acknowledged,
                None,
                "pat",
                3
            )
            .await
            .unwrap()
    );
    let s = store.merge_scan(&[case("b", 70)], 4).await.unwrap();
    assert_eq!(s.cleared, 1);
    let a = store.get_case("a").await.unwrap().unwrap();
    assert_eq!(a.summary.status, CaseStatus::Resolved);
    assert_eq!(a.summary.outcome.as_deref(), Some("cleared"));
    assert_eq!(status(&store, "b").await, CaseStatus::Acknowledged);
    // a comes back: reopened.
    let s = store
        .merge_scan(&[case("a", 50), case("b", 70)], 5)
        .await
        .unwrap();
    assert_eq!(s.reopened, 1);
    let a = store.get_case("a").await.unwrap().unwrap();
    assert_eq!(a.summary.status, CaseStatus::Open);
    assert_eq!(a.summary.reopened, 1);
    assert_eq!(a.summary.outcome, None);
    // Dismissed stays dismissed while the condition persists.
    assert!(
        store
            .transition_case(
                "a",
                &[CaseStatus::Open],
                CaseStatus::Dismissed,
                Some("known"),
                "pat",
                6
            )
            .await
            .unwrap()
    );
    store
        .merge_scan(&[case("a", 50), case("b", 70)], 7)
        .await
        .unwrap();
    assert_eq!(status(&store, "a").await, CaseStatus::Dismissed);
    // A transition from the wrong state does nothing.
    assert!(
        !store
            .transition_case(
                "a",
                &[CaseStatus::Open],
                CaseStatus::Acknowledged,
                None,
                "pat",
                8
            )
            .await
            .unwrap()
    );
    // Queue: active only, ranked by score.
    let (items, total) = store
        .list_cases(&CaseQuery {
            limit: 10,
            ..CaseQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(items[0].id, "b");
    let (items, _) = store
        .list_cases(&CaseQuery {
            status: Some(CaseStatus::Dismissed),
            limit: 10,
            ..CaseQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    let (items, _) = store
        .list_cases(&CaseQuery {
            customer: Some("acm".into()),
            owner: Some("planner".into()),
            limit: 10,
            ..CaseQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        items.len(),
        1,
        "customer filter is a case-insensitive substring"
    );
    store.close().await;
}

fn decision(id: &str, actor: &str, now: i64) -> Decision {
    Decision {
        id: id.into(),
        actor: actor.into(),
        role: "planner".into(),
        approve: true,
        reason: None,
        now,
    }
}

fn approval(id: &str, expires_at: i64) -> ApprovalRow {
    ApprovalRow {
        id: id.into(),
        case_id: Some("a".into()),
        action: "reallocate".into(),
        params: json!({"action": "reallocate"}),
        evidence: json!([]),
        policy_rule: "approvals.reallocate".into(),
        policy_version: "v1".into(),
        approver_roles: vec!["planner".into(), "sales_manager".into()],
        approvers_needed: 1,
        requester_may_approve: false,
        order_value: None,
        decisions: Vec::new(),
        requested_by: "sam".into(),
        requested_at: 1,
        expires_at,
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        reason: None,
        result: None,
        executed_at: None,
        execution: None,
    }
}

async fn approvals_exactly_once(db: Db) {
    let (store, _store_dir) = open(db).await;
    store
        .insert_approval(&approval("ap1", i64::MAX))
        .await
        .unwrap();
    // 16 concurrent deciders: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let st = store.clone();
        tasks.push(tokio::spawn(async move {
            st.decide_approval(&decision("ap1", &format!("u{i}"), 10))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        let o = t.await.unwrap();
        assert!(
            matches!(o, DecisionOutcome::Approved | DecisionOutcome::NotPending),
            "{o:?}"
        );
        wins += usize::from(o == DecisionOutcome::Approved);
    }
    assert_eq!(wins, 1);
    // The approving decision enqueued the execution in its transaction.
    let due = store.due_executions(10, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!((due[0].id.as_str(), due[0].attempts), ("ap1", 0));
    // 16 concurrent workers claim it with a lease until 1000: exactly one gets it.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let st = store.clone();
        tasks.push(tokio::spawn(async move {
            st.claim_execution("ap1", &format!("w{i}"), 20, 1000)
                .await
                .unwrap()
                .then_some(i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let owner = format!("w{}", winners[0]);
    let a = store.get_approval("ap1").await.unwrap().unwrap();
    assert_eq!(a.status, ApprovalStatus::Executing);
    let ex = a.execution.clone().unwrap();
    assert_eq!(
        (ex.attempts, ex.worker.as_deref()),
        (1, None),
        "{ex:?}: the API reads the lease against the real clock, and 1000 µs is long past"
    );
    // While the lease lives nobody else takes it, and only its holder renews it.
    assert!(store.due_executions(999, 10).await.unwrap().is_empty());
    assert!(
        !store
            .claim_execution("ap1", "intruder", 999, 5000)
            .await
            .unwrap()
    );
    assert!(!store.renew_lease("ap1", "intruder", 5000).await.unwrap());
    assert!(store.renew_lease("ap1", &owner, 2000).await.unwrap());
    assert!(
        !store
            .claim_execution("ap1", "intruder", 1500, 5000)
            .await
            .unwrap()
    );
    // A crash here: once the lease expires another worker takes it over (attempt 2), and
    // the old holder can no longer record an end.
    assert_eq!(store.due_executions(2000, 10).await.unwrap().len(), 1);
    assert!(
        store
            .claim_execution("ap1", "heir", 2000, 9000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_execution("ap1", &owner, true, "{\"ok\":true}", 2100)
            .await
            .unwrap(),
        "a lost lease finishes nothing"
    );
    assert!(
        store
            .finish_execution("ap1", "heir", true, "{\"ok\":true}", 2200)
            .await
            .unwrap()
    );
    assert!(store.due_executions(i64::MAX, 10).await.unwrap().is_empty());
    let a = store.get_approval("ap1").await.unwrap().unwrap();
    assert_eq!(a.status, ApprovalStatus::Executed);
    assert_eq!(a.result, Some(json!({"ok": true})));
    let ex = a.execution.unwrap();
    assert_eq!((ex.attempts, ex.finished_at), (2, Some(2200)), "{ex:?}");
    // Role filter matches whole names only.
    store
        .insert_approval(&approval("ap2", i64::MAX))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_approvals(Some(ApprovalStatus::Pending), Some("planner"), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_approvals(Some(ApprovalStatus::Pending), Some("plan"), None, 10)
            .await
            .unwrap()
            .len(),
        0
    );
    // Expiry: an expired request cannot be decided and is swept.
    store.insert_approval(&approval("ap3", 100)).await.unwrap();
    assert!(
        store
            .decide_approval(&decision("ap3", "pat", 200))
            .await
            .unwrap()
            == DecisionOutcome::NotPending
    );
    assert_eq!(
        store.expire_approvals(200).await.unwrap(),
        vec!["ap3".to_string()]
    );
    assert_eq!(
        store.get_approval("ap3").await.unwrap().unwrap().status,
        ApprovalStatus::Expired
    );
    store.close().await;
}

async fn two_approvers_are_counted_once_each(db: Db) {
    let (store, _dir) = open(db).await;
    let mut a = approval("ap4", i64::MAX);
    a.approvers_needed = 2;
    store.insert_approval(&a).await.unwrap();
    // The same person twice counts once.
    assert_eq!(
        store
            .decide_approval(&decision("ap4", "pat", 10))
            .await
            .unwrap(),
        DecisionOutcome::Waiting {
            approvals: 1,
            needed: 2
        }
    );
    assert_eq!(
        store
            .decide_approval(&decision("ap4", "pat", 11))
            .await
            .unwrap(),
        DecisionOutcome::AlreadyDecided
    );
    let row = store.get_approval("ap4").await.unwrap().unwrap();
    assert_eq!(row.status, ApprovalStatus::Pending);
    assert_eq!(row.approvals(), 1);
    assert_eq!(row.decisions[0].by, "pat");
    // Eight people race for the second approval: exactly one completes it, every decision
    // after that finds it decided.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let st = store.clone();
        tasks.push(tokio::spawn(async move {
            st.decide_approval(&decision("ap4", &format!("v{i}"), 20))
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == DecisionOutcome::Approved)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, DecisionOutcome::Approved | DecisionOutcome::NotPending)),
        "{outcomes:?}"
    );
    let row = store.get_approval("ap4").await.unwrap().unwrap();
    assert_eq!(row.status, ApprovalStatus::Approved);
    assert_eq!(row.approvals(), 2, "{:?}", row.decisions);
    store.close().await;
}

async fn tokens(db: Db) {
    let (store, _store_dir) = open(db).await;
    assert!(store.insert_token("pat", "planner", "h1", 1).await.unwrap());
    assert!(
        !store.insert_token("pat", "admin", "h2", 2).await.unwrap(),
        "active name is taken"
    );
    assert_eq!(
        store.find_token("h1").await.unwrap(),
        Some(("pat".into(), "planner".into()))
    );
    assert!(store.revoke_token("pat", 3).await.unwrap());
    assert_eq!(store.find_token("h1").await.unwrap(), None);
    assert!(!store.revoke_token("pat", 4).await.unwrap());
    // Names are unique forever: a new holder of a revoked name would inherit its
    // conversations and its place in the audit log.
    assert!(
        !store.insert_token("pat", "buyer", "h3", 5).await.unwrap(),
        "a revoked name is not reused"
    );
    assert_eq!(store.find_token("h3").await.unwrap(), None);
    store.close().await;
}

/// Tamper with the database directly, as an attacker with database access would.
async fn exec(store: &Store, sql: &str) {
    order_copilot::store::exec_for_tests(store, sql)
        .await
        .unwrap();
}

async fn audit_chain(db: Db) {
    let (store, _store_dir) = open(db).await;
    let (log, writer) = AuditLog::start(store.clone());
    let mut tasks = Vec::new();
    for i in 0..400 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(AuditEvent::new(
                "test.event",
                "tester",
                json!({"i": i, "api_key": "sk-secret"}),
            ))
            .await
            .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=400).collect::<Vec<i64>>(),
        "every acknowledged event has its own seq"
    );
    drop(log);
    writer.finish().await;
    let v = audit::verify(&store, |_| {}).await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.rows, 400);
    // Secrets never entered.
    let rows = audit::search(
        &store,
        &audit::AuditQuery {
            limit: Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        rows.iter()
            .all(|r| r.event.payload["api_key"] == "<redacted>")
    );
    let mut out = Vec::new();
    assert_eq!(
        audit::export(&store, i64::MIN, &mut out).await.unwrap(),
        400
    );
    assert!(!String::from_utf8(out).unwrap().contains("sk-secret"));

    // Edited row.
    exec(
        &store,
        "UPDATE audit SET payload = '{\"i\":999}' WHERE seq = 120",
    )
    .await;
    let v = audit::verify(&store, |_| {}).await.unwrap();
    assert_eq!(v.first_bad.as_ref().map(|b| b.0), Some(120), "{v:?}");
    assert!(v.first_bad.unwrap().1.contains("edited"));
    store.close().await;
}

async fn audit_deleted_reordered_truncated(db: Db) {
    for tamper in ["delete", "reorder", "truncate"] {
        let (store, _store_dir) = open(db).await;
        let events: Vec<AuditEvent> = (0..50)
            .map(|i| AuditEvent::new("e", "t", json!({"i": i})))
            .collect();
        audit::write_batch(&store, events).await.unwrap();
        let expect = match tamper {
            "delete" => {
                exec(&store, "DELETE FROM audit WHERE seq = 30").await;
                30
            }
            "reorder" => {
                // Swap the contents of rows 10 and 11 (keeping their seq).
                exec(&store, "UPDATE audit SET seq = -10 WHERE seq = 10").await;
                exec(&store, "UPDATE audit SET seq = 10 WHERE seq = 11").await;
                exec(&store, "UPDATE audit SET seq = 11 WHERE seq = -10").await;
                10
            }
            _ => {
                exec(&store, "DELETE FROM audit WHERE seq > 45").await;
                46
            }
        };
        let v = audit::verify(&store, |_| {}).await.unwrap();
        assert_eq!(
            v.first_bad.as_ref().map(|b| b.0),
            Some(expect),
            "{tamper}: {v:?}"
        );
        store.close().await;
    }
}

/// Copilot turns are stored in the transaction of their audit events: many concurrent
/// turns share commits, each is stored with its conversation exactly once, and a turn that
/// cannot be stored (its number taken) fails alone while its events are still written.
async fn turns_commit_with_their_audit_events(db: Db) {
    let (store, _store_dir) = open(db).await;
    let (log, writer) = AuditLog::start(store.clone());
    let turn = |conv: &str, seq: i64, id: &str| TurnRow {
        id: id.into(),
        conversation_id: conv.into(),
        seq,
        actor: "ana".into(),
        message: "why is S00042 blocked?".into(),
        answer: "short of stock".into(),
        mode: "offline".into(),
        fallback: false,
        context: json!({"order": "S00042"}),
        events: json!([]),
        created_at: 1_700_000_000_000_000 + seq,
    };
    let mut tasks = Vec::new();
    for c in 0..120 {
        let log = log.clone();
        let conv = format!("cv_{c}");
        tasks.push(tokio::spawn(async move {
            let events = (0..3)
                .map(|i| AuditEvent::new("chat.step", "copilot", json!({"c": c, "i": i})))
                .collect();
            let write = TurnWrite {
                conversation: Some(ConversationRow {
                    id: conv.clone(),
                    owner: "ana".into(),
                    role: "service_rep".into(),
                    created_at: 1,
                }),
                turn: turn(&conv, 1, &format!("turn_{c}")),
            };
            log.append_turn(events, write).await.unwrap()
        }));
    }
    for t in tasks {
        let w = t.await.unwrap();
        assert_eq!(w.seqs.len(), 3);
        assert!(w.turn.is_ok(), "{:?}", w.turn);
    }
    for c in [0, 77, 119] {
        let id = format!("cv_{c}");
        assert_eq!(
            store.get_conversation(&id).await.unwrap().unwrap().owner,
            "ana"
        );
        assert_eq!(store.list_turns(&id, 10).await.unwrap().len(), 1);
    }
    // A second turn numbered 1 in cv_5: refused alone; its events and a good turn in the
    // same batch are written.
    let (dup, good) = tokio::join!(
        log.append_turn(
            vec![AuditEvent::new(
                "chat.answer",
                "copilot",
                json!({"dup": true})
            )],
            TurnWrite {
                conversation: None,
                turn: turn("cv_5", 1, "turn_dup"),
            },
        ),
        log.append_turn(
            vec![AuditEvent::new(
                "chat.answer",
                "copilot",
                json!({"dup": false})
            )],
            TurnWrite {
                conversation: None,
                turn: turn("cv_6", 2, "turn_6b"),
            },
        )
    );
    let (dup, good) = (dup.unwrap(), good.unwrap());
    assert!(dup.turn.is_err() && dup.seqs.len() == 1);
    assert!(good.turn.is_ok());
    assert_eq!(store.list_turns("cv_5", 10).await.unwrap().len(), 1);
    assert_eq!(store.list_turns("cv_6", 10).await.unwrap().len(), 2);
    writer.finish().await;
    let v = audit::verify(&store, |_| {}).await.unwrap();
    assert!(v.first_bad.is_none(), "{v:?}");
    assert_eq!(v.rows, 362);
    store.close().await;
}

both!(lifecycle);
both!(turns_commit_with_their_audit_events);
both!(approvals_exactly_once);
both!(tokens);
both!(audit_chain);
both!(audit_deleted_reordered_truncated);
both!(two_approvers_are_counted_once_each);

/// A live server keeps appending while someone verifies: rows written after the
/// verification started are not part of it, and never look like a truncated log.
async fn verify_while_appending(db: Db) {
    let (store, _store_dir) = open(db).await;
    let (log, writer) = AuditLog::start(store.clone());
    for i in 0..50 {
        log.append(AuditEvent::new("test.event", "tester", json!({"i": i})))
            .await
            .unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (log, stop) = (log.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                log.append(AuditEvent::new("test.event", "tester", json!({"i": i})))
                    .await
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    for _ in 0..30 {
        let v = audit::verify(&store, |_| {}).await.unwrap();
        assert!(v.ok(), "{v:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(appender.await.unwrap() > 0);
    drop(log);
    writer.finish().await;
    assert!(audit::verify(&store, |_| {}).await.unwrap().ok());
}

both!(verify_while_appending);
