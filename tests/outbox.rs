//! Durable execution through the outbox, on SQLite and PostgreSQL: approving answers at
//! once while the target stalls; transient errors retry with backoff and then execute;
//! permanent errors and exhausted retries end `failed` with the reason; a worker whose
//! lease was taken over records nothing; the audit chain verifies throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use order_copilot::app::outbox::{OutboxConfig, OutboxWorker};
use order_copilot::app::source::{BoxFuture, DemoSource, ExecError, Executor};
use order_copilot::app::{App, User};
use order_copilot::core::Action;
use order_copilot::demo::DemoConfig;
use order_copilot::policy::Policy;
use order_copilot::store::audit::{self, AuditQuery};
use order_copilot::store::{ApprovalRow, ApprovalStatus, Store};

/// What the scripted executor does on its next runs (then it executes on the demo).
#[derive(Debug, Clone, Copy)]
enum Step {
    Transient,
    Permanent,
    /// Hang until the gate opens (an Odoo that stalled).
    Stall,
}

struct Scripted {
    inner: Arc<DemoSource>,
    plan: Mutex<VecDeque<Step>>,
    runs: AtomicUsize,
    gate: tokio::sync::Notify,
}

impl Executor for Scripted {
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let step = self.plan.lock().unwrap().pop_front();
            match step {
                Some(Step::Transient) => Err(ExecError::transient("Odoo did not answer in 30 s")),
                Some(Step::Permanent) => Err(ExecError::permanent(
                    "sale.order S00001 is not in Odoo (deleted since the scan)",
                )),
                Some(Step::Stall) => {
                    self.gate.notified().await;
                    self.inner.execute(key, action).await
                }
                None => self.inner.execute(key, action).await,
            }
        })
    }
}

struct World {
    app: Arc<App>,
    exec: Arc<Scripted>,
    _writer: order_copilot::store::audit::AuditWriter,
    _dir: FreshStore,
}

async fn world(db: Db, plan: &[Step]) -> World {
    let cfg = fresh(db).await;
    let store = Store::open(&cfg).await.unwrap();
    let demo = Arc::new(DemoSource::new(&DemoConfig {
        seed: 42,
        orders: 300,
        now: Utc::now(),
    }));
    let exec = Arc::new(Scripted {
        inner: demo.clone(),
        plan: Mutex::new(plan.iter().copied().collect()),
        runs: AtomicUsize::new(0),
        gate: tokio::sync::Notify::new(),
    });
    let (app, writer) = order_copilot::app::start(
        store,
        Arc::new(Policy::embedded().unwrap()),
        demo,
        exec.clone(),
    )
    .await
    .unwrap();
    app.scan("system").await.unwrap();
    World {
        app,
        exec,
        _writer: writer,
        _dir: cfg,
    }
}

/// Request and approve the first planner case's first option; returns the approval as the
/// approve call answered it.
async fn approve_one(app: &App) -> ApprovalRow {
    let q = order_copilot::store::CaseQuery {
        owner: Some("planner".into()),
        limit: 5,
        ..Default::default()
    };
    let case = app.list_cases(&q).await.unwrap().0[0].id.clone();
    let requester = User {
        name: "pat".into(),
        role: "planner".into(),
    };
    let ap = app
        .request_action(&requester, &case, 0, None)
        .await
        .unwrap();
    let approver = User {
        name: "ann".into(),
        role: ap.approver_roles[0].clone(),
    };
    app.decide_approval(&approver, &ap.id, true, None)
        .await
        .unwrap()
}

fn quick() -> OutboxConfig {
    OutboxConfig {
        lease_secs: 2.0,
        poll_secs: 0.1,
        attempts: 4,
        backoff_secs: 0.05,
        backoff_cap_secs: 0.2,
        concurrency: 4,
    }
}

async fn kinds(app: &App, id: &str) -> Vec<String> {
    let q = AuditQuery {
        kind: Some("action.".into()),
        limit: Some(100),
        ..Default::default()
    };
    let mut rows = audit::search(&app.store, &q).await.unwrap();
    rows.reverse();
    rows.into_iter()
        .filter(|r| r.event.payload["approval"] == id)
        .map(|r| r.event.kind)
        .collect()
}

async fn verifies(app: &App) {
    let v = audit::verify(&app.store, |_| {}).await.unwrap();
    assert!(v.ok(), "{v:?}");
}

async fn approving_answers_while_odoo_stalls(db: Db) {
    let w = world(db, &[Step::Stall]).await;
    let worker = OutboxWorker::spawn(&w.app, quick());
    let started = Instant::now();
    let ap = approve_one(&w.app).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "approving waited {:?}",
        started.elapsed()
    );
    assert_eq!(ap.status, ApprovalStatus::Approved);
    // The worker holds it, heartbeating past the 2 s lease while Odoo stalls.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a = w.app.approval(&ap.id).await.unwrap();
    assert_eq!(a.status, ApprovalStatus::Executing);
    let ex = a.execution.unwrap();
    assert_eq!(
        ex.attempts, 1,
        "the live lease was never taken over: {ex:?}"
    );
    assert_eq!(ex.worker.as_deref(), Some(w.app.worker_id()));
    // Odoo resumes: it executes, once.
    w.exec.gate.notify_one();
    let done = wait_executed(&w.app, &ap.id).await;
    assert_eq!(done.status, ApprovalStatus::Executed, "{:?}", done.result);
    assert_eq!(w.exec.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        kinds(&w.app, &ap.id).await,
        ["action.started", "action.executed"]
    );
    worker.stop(Duration::from_secs(5)).await;
    verifies(&w.app).await;
}

async fn transient_errors_retry_then_execute(db: Db) {
    let w = world(db, &[Step::Transient, Step::Transient]).await;
    let worker = OutboxWorker::spawn(&w.app, quick());
    let ap = approve_one(&w.app).await;
    let done = wait_executed(&w.app, &ap.id).await;
    assert_eq!(done.status, ApprovalStatus::Executed, "{:?}", done.result);
    let ex = done.execution.unwrap();
    assert_eq!(ex.attempts, 3, "{ex:?}");
    assert_eq!(
        ex.last_error.as_deref(),
        Some("Odoo did not answer in 30 s")
    );
    assert_eq!(
        kinds(&w.app, &ap.id).await,
        [
            "action.started",
            "action.retrying",
            "action.started",
            "action.retrying",
            "action.started",
            "action.executed"
        ]
    );
    worker.stop(Duration::from_secs(5)).await;
    verifies(&w.app).await;
}

async fn failures_end_failed_with_the_reason(db: Db) {
    // A permanent error ends it at once.
    let w = world(db, &[Step::Permanent]).await;
    let worker = OutboxWorker::spawn(&w.app, quick());
    let ap = approve_one(&w.app).await;
    let done = wait_executed(&w.app, &ap.id).await;
    assert_eq!(done.status, ApprovalStatus::Failed);
    let result = done.result.unwrap();
    assert!(
        result["error"].as_str().unwrap().contains("is not in Odoo"),
        "{result}"
    );
    assert_eq!(result["attempts"], 1);
    assert_eq!(w.exec.runs.load(Ordering::SeqCst), 1);
    // The case shows it: its approvals carry the failure.
    let (_, approvals) = w.app.case(done.case_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(approvals[0].status, ApprovalStatus::Failed);
    worker.stop(Duration::from_secs(5)).await;
    verifies(&w.app).await;

    // Transient errors past the attempts allowed end it too, saying so.
    let w = world(db, &[Step::Transient; 10]).await;
    let worker = OutboxWorker::spawn(&w.app, quick());
    let ap = approve_one(&w.app).await;
    let done = wait_executed(&w.app, &ap.id).await;
    assert_eq!(done.status, ApprovalStatus::Failed);
    let result = done.result.unwrap();
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{result}"
    );
    assert_eq!(w.exec.runs.load(Ordering::SeqCst), 4);
    worker.stop(Duration::from_secs(5)).await;
    verifies(&w.app).await;
}

async fn a_lost_lease_records_nothing(db: Db) {
    // Worker A stalls in Odoo; its lease is stolen (as if it had stalled past the expiry
    // without heartbeats); when Odoo answers A, it must not record an end.
    let w = world(db, &[Step::Stall]).await;
    let ap = approve_one(&w.app).await;
    let cfg = OutboxConfig {
        lease_secs: 60.0,
        ..quick()
    };
    let app = w.app.clone();
    let a = tokio::spawn(async move { app.run_due_executions(&cfg).await.unwrap() });
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.app.approval(&ap.id).await.unwrap().status != ApprovalStatus::Executing {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    order_copilot::store::exec_for_tests(
        &w.app.store,
        &format!(
            "UPDATE outbox SET lease_owner = 'w_other', lease_expires = {} WHERE approval_id = '{}'",
            i64::MAX,
            ap.id
        ),
    )
    .await
    .unwrap();
    w.exec.gate.notify_one();
    assert_eq!(a.await.unwrap(), 1);
    let row = w.app.approval(&ap.id).await.unwrap();
    assert_eq!(row.status, ApprovalStatus::Executing, "{:?}", row.result);
    assert_eq!(kinds(&w.app, &ap.id).await, ["action.started"]);
    verifies(&w.app).await;
}

both!(approving_answers_while_odoo_stalls);
both!(transient_errors_retry_then_execute);
both!(failures_end_failed_with_the_reason);
both!(a_lost_lease_records_nothing);
