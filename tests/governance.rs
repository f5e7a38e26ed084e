//! A state change and its audit event are one transaction, on SQLite and PostgreSQL: a
//! failure injected into the audit insert (a database trigger, as a full disk or a killed
//! connection would) leaves neither the change nor the event — for case decisions,
//! approval requests and decisions, executions and tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{Db, TestServer};
use order_copilot::app::{AppError, User, identity};
use order_copilot::store::audit::{self, AuditQuery};
use order_copilot::store::{ApprovalStatus, CaseStatus, Store, exec_for_tests};

/// The kinds the test makes fail.
const KINDS: &[&str] = &[
    "case.acknowledged",
    "approval.requested",
    "approval.decided",
    "action.started",
    "action.executed",
    "token.created",
    "token.revoked",
];

/// Make every insert of an audit event of `kind` fail.
async fn fail_audit_of(store: &Store, db: Db, kind: &str) {
    match db {
        Db::Sqlite => {
            exec_for_tests(
                store,
                &format!(
                    "CREATE TRIGGER inject_failure_{} BEFORE INSERT ON audit WHEN NEW.kind = '{kind}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                    kind.replace('.', "_")
                ),
            )
            .await
            .unwrap();
        }
        Db::Postgres => {
            exec_for_tests(
                store,
                &format!(
                    "CREATE FUNCTION inject_failure() RETURNS trigger AS $$ BEGIN IF NEW.kind = '{kind}' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                ),
            )
            .await
            .unwrap();
            exec_for_tests(
                store,
                "CREATE TRIGGER inject_failure BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION inject_failure()",
            )
            .await
            .unwrap();
        }
    }
}

async fn heal(store: &Store, db: Db) {
    match db {
        Db::Sqlite => {
            for kind in KINDS {
                exec_for_tests(
                    store,
                    &format!(
                        "DROP TRIGGER IF EXISTS inject_failure_{}",
                        kind.replace('.', "_")
                    ),
                )
                .await
                .unwrap();
            }
        }
        Db::Postgres => {
            exec_for_tests(store, "DROP TRIGGER inject_failure ON audit")
                .await
                .unwrap();
            exec_for_tests(store, "DROP FUNCTION inject_failure()")
                .await
                .unwrap();
        }
    }
}

async fn events(store: &Store, kind: &str) -> usize {
    let q = AuditQuery {
        kind: Some(kind.into()),
        limit: Some(1000),
        ..AuditQuery::default()
    };
    audit::search(store, &q).await.unwrap().len()
}

fn user(name: &str, role: &str) -> User {
    User {
        name: name.into(),
        role: role.into(),
    }
}

async fn change_and_event_are_one_transaction(db: Db) {
    let s = TestServer::start_without_worker(db, 300).await;
    let app = &s.app;
    let store = &app.store;
    let planner = user("pat", "planner");
    let q = order_copilot::store::CaseQuery {
        owner: Some("planner".into()),
        limit: 5,
        ..Default::default()
    };
    let cases = app.list_cases(&q).await.unwrap().0;
    let case = cases[0].id.clone();

    // A case decision whose event cannot be written does not happen.
    fail_audit_of(store, db, "case.acknowledged").await;
    let e = app
        .decide_case(&planner, &case, CaseStatus::Acknowledged, None)
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::Internal(_)), "{e}");
    let c = store.get_case(&case).await.unwrap().unwrap();
    assert_eq!(c.summary.status, CaseStatus::Open, "no event, no change");
    heal(store, db).await;
    app.decide_case(&planner, &case, CaseStatus::Acknowledged, None)
        .await
        .unwrap();
    assert_eq!(events(store, "case.acknowledged").await, 1);

    // An approval request is stored with its event or not at all.
    fail_audit_of(store, db, "approval.requested").await;
    let before = store
        .list_approvals(None, None, None, 500)
        .await
        .unwrap()
        .len();
    assert!(app.request_action(&planner, &case, 0, None).await.is_err());
    assert_eq!(
        store
            .list_approvals(None, None, None, 500)
            .await
            .unwrap()
            .len(),
        before,
        "no event, no request"
    );
    heal(store, db).await;
    let ap = app.request_action(&planner, &case, 0, None).await.unwrap();
    let approver = user("ann", &ap.approver_roles[0]);

    // A decision whose event fails leaves the request pending with no decision recorded.
    fail_audit_of(store, db, "approval.decided").await;
    assert!(
        app.decide_approval(&approver, &ap.id, true, None)
            .await
            .is_err()
    );
    let row = store.get_approval(&ap.id).await.unwrap().unwrap();
    assert_eq!(row.status, ApprovalStatus::Pending, "no event, no decision");
    assert!(row.decisions.is_empty(), "{:?}", row.decisions);
    assert_eq!(events(store, "approval.decided").await, 0);
    heal(store, db).await;

    assert!(
        store.due_executions(i64::MAX, 10).await.unwrap().is_empty(),
        "no decision, nothing enqueued"
    );

    // The approving decision answers `approved` at once; its execution was enqueued with it.
    let row = app
        .decide_approval(&approver, &ap.id, true, None)
        .await
        .unwrap();
    assert_eq!(row.status, ApprovalStatus::Approved);
    assert_eq!(events(store, "approval.decided").await, 1);
    let due = store.due_executions(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");

    // An execution whose result event fails stays `executing` under its lease (the next
    // worker after the lease finishes it), never `executed` without its event.
    let cfg = order_copilot::app::outbox::OutboxConfig {
        lease_secs: 1.0,
        ..Default::default()
    };
    fail_audit_of(store, db, "action.executed").await;
    assert!(app.run_due_executions(&cfg).await.is_err());
    let row = store.get_approval(&ap.id).await.unwrap().unwrap();
    assert_eq!(row.status, ApprovalStatus::Executing);
    assert_eq!(events(store, "action.started").await, 1);
    assert_eq!(events(store, "action.executed").await, 0);
    heal(store, db).await;
    assert_eq!(
        app.run_due_executions(&cfg).await.unwrap(),
        0,
        "the lease still holds it"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.run_due_executions(&cfg).await.unwrap(), 1);
    let row = store.get_approval(&ap.id).await.unwrap().unwrap();
    assert_eq!(row.status, ApprovalStatus::Executed);
    assert_eq!(row.execution.unwrap().attempts, 2);
    assert_eq!(events(store, "action.executed").await, 1);

    // A token is created with its event or not at all.
    fail_audit_of(store, db, "token.created").await;
    assert!(
        identity::create_token(store, &app.policy, "tina", "buyer")
            .await
            .is_err()
    );
    assert_eq!(store.token_count().await.unwrap(), 1, "only the admin's");
    heal(store, db).await;
    identity::create_token(store, &app.policy, "tina", "buyer")
        .await
        .unwrap();
    fail_audit_of(store, db, "token.revoked").await;
    assert!(identity::revoke_token(store, "tina", "test").await.is_err());
    heal(store, db).await;
    identity::revoke_token(store, "tina", "test").await.unwrap();
    assert_eq!(events(store, "token.revoked").await, 1);

    // A lost compare-and-set writes no event.
    assert!(
        app.decide_case(&planner, &case, CaseStatus::Acknowledged, None)
            .await
            .is_err()
    );
    assert_eq!(events(store, "case.acknowledged").await, 1);
    let v = audit::verify(store, |_| {}).await.unwrap();
    assert!(v.ok(), "{v:?}");
    s.stop().await;
}

both!(change_and_event_are_one_transaction);

// ---- the keyed, anchored audit chain ----------------------------------------------------

use order_copilot::store::audit::{AuditEvent, AuditRecord};
use order_copilot::store::{StoreConfig, audit_key};

async fn rows(store: &Store) -> Vec<AuditRecord> {
    let q = AuditQuery {
        ascending: Some(true),
        limit: Some(10_000),
        ..AuditQuery::default()
    };
    audit::search(store, &q).await.unwrap()
}

async fn write(store: &Store, n: usize, tag: &str) {
    let events = (0..n)
        .map(|i| AuditEvent::new("e", "t", serde_json::json!({"tag": tag, "i": i})))
        .collect();
    audit::write_batch(store, events).await.unwrap();
}

/// What someone with write access to the database but not the key can do: change row
/// `from`'s payload and recompute every hash from there with SHA-256, the head included.
async fn recompute_from(store: &Store, from: i64, as_legacy: bool) {
    rehash(store, from, as_legacy, true).await
}

/// Recompute every hash from row `from` with SHA-256 (`forge`: after changing its payload).
async fn rehash(store: &Store, from: i64, as_legacy: bool, forge: bool) {
    let mut prev = audit::GENESIS.to_string();
    for mut r in rows(store).await {
        if r.seq == from && forge {
            r.event.payload = serde_json::json!({"tag": "forged"});
        }
        if r.seq >= from {
            let payload = r.event.payload.to_string();
            let hash = audit::row_hash(r.seq, r.at, &r.event, &payload, &prev);
            let key = if as_legacy {
                "NULL".to_string()
            } else {
                "key_id".to_string()
            };
            exec_for_tests(
                store,
                &format!(
                    "UPDATE audit SET payload = '{payload}', prev_hash = '{prev}', hash = '{hash}', key_id = {key} WHERE seq = {}",
                    r.seq
                ),
            )
            .await
            .unwrap();
            r.hash = hash;
        }
        prev = r.hash;
    }
    let last = rows(store).await.last().unwrap().seq;
    exec_for_tests(
        store,
        &format!("UPDATE audit_head SET seq = {last}, hash = '{prev}'"),
    )
    .await
    .unwrap();
}

async fn verify_fails(store: &Store, seq: i64, needle: &str) {
    let v = audit::verify(store, |_| {}).await.unwrap();
    let (at, why) = v
        .first_bad
        .clone()
        .unwrap_or_else(|| panic!("not caught: {v:?}"));
    assert_eq!(at, seq, "{why}");
    assert!(why.contains(needle), "{why}");
}

async fn tampering_is_caught_and_named(db: Db) {
    for tamper in [
        "rewrite",
        "recompute",
        "recompute_as_legacy",
        "delete_tail",
        "forge_checkpoint",
    ] {
        let (store, _dir) = common::open(db).await;
        write(&store, 30, "a").await; // the store's first batch: checkpointed
        write(&store, 10, "b").await;
        audit::checkpoint_now(&store).await.unwrap();
        let v = audit::verify(&store, |_| {}).await.unwrap();
        assert!(
            v.ok() && v.rows == 40 && v.checkpoints == 2 && v.legacy_rows == 0,
            "{v:?}"
        );
        assert!(
            rows(&store)
                .await
                .iter()
                .all(|r| r.key_id.as_deref() == Some(store.audit_keys().current.id.as_str()))
        );
        match tamper {
            "rewrite" => {
                exec_for_tests(
                    &store,
                    "UPDATE audit SET payload = '{\"tag\":\"x\"}' WHERE seq = 12",
                )
                .await
                .unwrap();
                verify_fails(&store, 12, "the row was edited").await;
            }
            "recompute" => {
                recompute_from(&store, 12, false).await;
                verify_fails(&store, 12, "recomputed without the key").await;
            }
            "recompute_as_legacy" => {
                recompute_from(&store, 12, true).await;
                verify_fails(&store, 12, "recomputed without the key").await;
            }
            "forge_checkpoint" => {
                // A checkpoint line written without the key.
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(store.audit_keys().checkpoint_path())
                    .unwrap();
                let key = &store.audit_keys().current.id;
                writeln!(
                    f,
                    r#"{{"seq":40,"hash":"00","at":1,"key":"{key}","mac":"00"}}"#
                )
                .unwrap();
                verify_fails(&store, 0, "line 3: its MAC does not check").await;
            }
            _ => {
                // Delete the last rows and move the in-database head back to cover it.
                let keep = rows(&store).await[34].clone();
                exec_for_tests(&store, "DELETE FROM audit WHERE seq > 35")
                    .await
                    .unwrap();
                exec_for_tests(
                    &store,
                    &format!("UPDATE audit_head SET seq = 35, hash = '{}'", keep.hash),
                )
                .await
                .unwrap();
                verify_fails(&store, 36, "deleted from the end").await;
            }
        }
        store.close().await;
    }
}

async fn unkeyed_log_upgrades_and_keys_rotate(db: Db) {
    let (store, cfg) = common::open(db).await;
    write(&store, 20, "old").await;
    // Make it a log from before keying: unkeyed SHA-256 rows, no checkpoints.
    rehash(&store, 1, true, false).await;
    std::fs::remove_file(store.audit_keys().checkpoint_path()).unwrap();
    let v = audit::verify(&store, |_| {}).await.unwrap();
    assert!(v.ok() && v.legacy_rows == 20, "{v:?}");
    // The first keyed write starts the keyed chain with an audited rotation event.
    write(&store, 5, "new").await;
    let all = rows(&store).await;
    assert_eq!(all[20].event.kind, "audit.key_rotated");
    assert_eq!(all[20].event.payload["from"], "unkeyed");
    assert_eq!(all[20].event.payload["rows_before"], 20);
    let v = audit::verify(&store, |_| {}).await.unwrap();
    assert!(v.ok() && v.rows == 26 && v.legacy_rows == 20, "{v:?}");
    // The keyed rows anchor the legacy prefix: a legacy row rewritten and the prefix
    // recomputed no longer chains into the first keyed row.
    let keyed = all[20].clone();
    rehash(&store, 3, true, true).await;
    exec_for_tests(
        &store,
        &format!(
            "UPDATE audit SET prev_hash = '{}', hash = '{}', key_id = '{}', payload = '{}' WHERE seq = 21",
            keyed.prev_hash,
            keyed.hash,
            keyed.key_id.clone().unwrap(),
            keyed.event.payload
        ),
    )
    .await
    .unwrap();
    verify_fails(&store, 21, "does not chain").await;
    store.close().await;

    // Key rotation: the old key is retired (older rows still verify), the first write
    // under the new key is an audited rotation.
    let (store, cfg2) = common::open(db).await;
    write(&store, 5, "k1").await;
    let old = store.audit_keys().current.id.clone();
    store.close().await;
    let (from, to) = audit_key::AuditKeys::rotate_file(&cfg2.data_dir).unwrap();
    assert_eq!(from, old);
    let store = Store::open(&cfg2).await.unwrap();
    assert_eq!(store.audit_keys().current.id, to);
    audit::write_batch(&store, Vec::new()).await.unwrap();
    write(&store, 2, "k2").await;
    let all = rows(&store).await;
    assert_eq!(all[5].event.kind, "audit.key_rotated");
    assert_eq!(all[5].event.payload["from"], old.as_str());
    assert_eq!(all[7].key_id.as_deref(), Some(to.as_str()));
    let v = audit::verify(&store, |_| {}).await.unwrap();
    assert!(v.ok(), "{v:?}");
    store.close().await;

    // A process with another key refuses to extend the chain, and cannot verify it.
    let other_dir = common::temp_dir("oc-otherkey");
    let other = StoreConfig {
        database_url: Some(match db {
            Db::Sqlite => format!("sqlite://{}/order-copilot.db", cfg2.data_dir.display()),
            Db::Postgres => cfg2.database_url.clone().unwrap(),
        }),
        data_dir: other_dir.to_path_buf(),
    };
    let store = Store::open(&other).await.unwrap();
    let e = audit::write_batch(
        &store,
        vec![AuditEvent::new("e", "t", serde_json::json!({}))],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("same AUDIT_KEY"), "{e}");
    verify_fails(&store, 1, "this installation does not have").await;
    store.close().await;
    let _ = cfg;
}

both!(tampering_is_caught_and_named);
both!(unkeyed_log_upgrades_and_keys_rotate);
