//! Durable execution of approved actions: the worker that drains the outbox.
//!
//! Approving a request stores the decision, its audit event and an outbox row in one
//! transaction ([`crate::store::outbox`]); nothing waits on Odoo inside a request. The
//! worker ([`OutboxWorker`], one per server process) claims due rows with a **lease**
//! (this process's id, an expiry, renewed by a heartbeat while the action runs), runs the
//! executor — idempotent by the request id, so a retry finds what already happened — and
//! records the end: `executed`, `failed` with the reason, or a transient error retried
//! after a capped exponential backoff with jitter. Only an expired lease is taken over,
//! so any number of replicas on one PostgreSQL run each action in one place at a time, and
//! a crashed process's executions are picked up by whoever is running once its leases
//! expire (it replaces the old start-up `recover`). A worker that loses its lease (it
//! stalled past the expiry and another took over) abandons the run and records nothing.
//!
//! The worker is woken at once by an approval in its own process and polls as the safety
//! net (approvals in other replicas, due retries, expired leases).
//!
//! [`crash_point`] names the steps of an execution for the kill -9 tests; it does
//! something only in debug builds and only when `ORDER_COPILOT_CRASH_AT` names the step.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::{App, AppError, now_us};
use crate::core::Action;
use crate::store::Change;
use crate::store::audit::AuditEvent;

/// How the worker runs approved actions (`serve` flags; every field has an env var).
#[derive(Debug, Clone, Args)]
pub struct OutboxConfig {
    /// Seconds a claim holds an execution without a heartbeat; a crashed process's
    /// executions are taken over after this long.
    #[arg(
        long = "exec-lease",
        env = "ORDER_COPILOT_EXEC_LEASE",
        default_value_t = 30.0
    )]
    pub lease_secs: f64,
    /// Seconds between polls of the outbox (an approval in this process wakes the worker
    /// at once; the poll finds other replicas' approvals, due retries and expired leases).
    #[arg(
        long = "exec-poll",
        env = "ORDER_COPILOT_EXEC_POLL",
        default_value_t = 2.0
    )]
    pub poll_secs: f64,
    /// Attempts before a transient failure (Odoo unreachable, timing out) becomes final.
    #[arg(
        long = "exec-attempts",
        env = "ORDER_COPILOT_EXEC_ATTEMPTS",
        default_value_t = 8
    )]
    pub attempts: u32,
    /// Seconds before the first retry; doubled each attempt (with jitter).
    #[arg(
        long = "exec-backoff",
        env = "ORDER_COPILOT_EXEC_BACKOFF",
        default_value_t = 2.0
    )]
    pub backoff_secs: f64,
    /// Longest wait between retries, in seconds.
    #[arg(
        long = "exec-backoff-cap",
        env = "ORDER_COPILOT_EXEC_BACKOFF_CAP",
        default_value_t = 300.0
    )]
    pub backoff_cap_secs: f64,
    /// Executions one process runs at the same time.
    #[arg(
        id = "exec_concurrency",
        long = "exec-concurrency",
        env = "ORDER_COPILOT_EXEC_CONCURRENCY",
        default_value_t = 8
    )]
    pub concurrency: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            lease_secs: 30.0,
            poll_secs: 2.0,
            attempts: 8,
            backoff_secs: 2.0,
            backoff_cap_secs: 300.0,
            concurrency: 8,
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl OutboxConfig {
    /// Refuse settings that cannot work (a zero lease, no attempts…).
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--exec-lease", self.lease_secs),
            ("--exec-poll", self.poll_secs),
            ("--exec-backoff", self.backoff_secs),
            ("--exec-backoff-cap", self.backoff_cap_secs),
        ];
        for (flag, v) in positive {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(format!(
                    "{flag} must be a number of seconds above 0 and at most 86400"
                ));
            }
        }
        if self.lease_secs < 1.0 {
            return Err("--exec-lease must be at least 1 second".into());
        }
        if self.attempts == 0 || self.attempts > 100 {
            return Err("--exec-attempts must be between 1 and 100".into());
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err("--exec-concurrency must be between 1 and 256".into());
        }
        Ok(())
    }

    fn lease(&self) -> Duration {
        secs(self.lease_secs)
    }

    /// How long to wait before attempt `attempt + 1` after `attempt` failed: the base
    /// doubled per attempt, capped, with "equal jitter" (half fixed, half random) so
    /// replicas retrying one stalled Odoo do not hit it in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_secs * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let d = exp.min(self.backoff_cap_secs);
        secs(d / 2.0 + fastrand::f64() * d / 2.0)
    }
}

/// Steps of an execution where a test may kill the server: `after_claim`,
/// `after_marker` (the executor recorded in Odoo that the request started),
/// `after_side_effect` (the message, write or activity is in Odoo), `before_finish` (the
/// executor returned; the result is not stored yet). In a debug build with
/// `ORDER_COPILOT_CRASH_AT` naming the step, the process writes the step's name to
/// `ORDER_COPILOT_CRASH_FILE` (when set) and stops there for good, for the test to kill
/// it with SIGKILL. Release builds compile this to nothing.
pub fn crash_point(step: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("ORDER_COPILOT_CRASH_AT").is_ok_and(|s| s == step) {
        if let Ok(path) = std::env::var("ORDER_COPILOT_CRASH_FILE") {
            let _ = std::fs::write(path, step);
        }
        tracing::error!(step, "crash point reached: waiting to be killed");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

/// The outbox side of the app: who this process is, and the bell an approval rings.
pub(super) struct Outbox {
    /// This process's lease owner id (`w_…`, fresh per start).
    pub(super) owner: String,
    wake: tokio::sync::Notify,
}

impl Outbox {
    pub(super) fn new() -> Outbox {
        Outbox {
            owner: super::new_id("w"),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Wake this process's worker (an approval was enqueued).
    pub(super) fn ring(&self) {
        self.wake.notify_one();
    }
}

/// How one claimed execution ended.
enum Ended {
    Finished { ok: bool },
    Retrying,
    LeaseLost,
}

impl App {
    /// This process's id as an execution lease owner.
    pub fn worker_id(&self) -> &str {
        &self.outbox.owner
    }

    /// Claim and run every execution due now (up to `cfg.concurrency` at a time);
    /// returns how many this process ran. The worker calls it; so can a test or a tool
    /// that wants the queue drained without a worker.
    pub async fn run_due_executions(&self, cfg: &OutboxConfig) -> Result<usize, AppError> {
        let mut ran = 0;
        loop {
            let due = self
                .store
                .due_executions(now_us(), cfg.concurrency as i64)
                .await?;
            if due.is_empty() {
                return Ok(ran);
            }
            let mut claimed = Vec::new();
            for d in due {
                if let Some(attempt) = self.claim(&d.id, d.attempts, cfg).await? {
                    claimed.push((d.id, attempt));
                }
            }
            if claimed.is_empty() {
                // Everything due was taken by others meanwhile.
                return Ok(ran);
            }
            ran += claimed.len();
            let runs = claimed
                .iter()
                .map(|(id, attempt)| self.run_claimed(id, *attempt, cfg));
            let mut executed = false;
            for r in futures::future::join_all(runs).await {
                executed |= matches!(r?, Ended::Finished { ok: true });
            }
            if executed {
                // Let the queue reflect the changes now rather than at the next interval
                // (one scan for the batch).
                if let Err(e) = self.scan("system").await {
                    tracing::warn!(error = %e, "re-scan after execution failed");
                }
            }
        }
    }

    /// Take the lease of one execution; `Some(attempt number)` when this process got it.
    async fn claim(
        &self,
        id: &str,
        attempts: i64,
        cfg: &OutboxConfig,
    ) -> Result<Option<u32>, AppError> {
        let now = now_us();
        let lease_until = now + micros(cfg.lease());
        let row = self.store.get_approval(id).await?;
        let attempt = u32::try_from(attempts + 1).unwrap_or(u32::MAX);
        let (owner, case_id, version) = (
            self.outbox.owner.clone(),
            row.as_ref().and_then(|r| r.case_id.clone()),
            row.as_ref().map(|r| r.policy_version.clone()),
        );
        let claim = Change::ClaimExecution {
            id: id.to_string(),
            owner: owner.clone(),
            attempts,
            now,
            lease_until,
        };
        let approval = id.to_string();
        let (applied, _) = self
            .audit
            .commit(claim, move |a| {
                if !a.changed() {
                    return vec![];
                }
                let mut ev = AuditEvent::new(
                    "action.started",
                    "system",
                    json!({"approval": approval, "worker": owner, "attempt": attempt, "lease_until": lease_until}),
                );
                ev.case_id = case_id;
                ev.policy_version = version;
                vec![ev]
            })
            .await?;
        Ok(applied.changed().then_some(attempt))
    }

    /// Run a claimed execution to its end (or to a retry, or until the lease is lost).
    async fn run_claimed(
        &self,
        id: &str,
        attempt: u32,
        cfg: &OutboxConfig,
    ) -> Result<Ended, AppError> {
        crash_point("after_claim");
        let row = self
            .store
            .get_approval(id)
            .await?
            .ok_or_else(|| AppError::Internal(format!("approval {id} vanished")))?;
        let started = Instant::now();
        let outcome = match serde_json::from_value::<Action>(row.params.clone()) {
            Err(e) => Some(Err(crate::app::source::ExecError::permanent(format!(
                "the stored action cannot be read: {e}"
            )))),
            Ok(action) => {
                // The action and the heartbeat side by side: a lost lease stops the run.
                let run = async {
                    let r = self.executor.execute(id, &action).await;
                    crash_point("before_finish");
                    r
                };
                tokio::select! {
                    r = run => Some(r.map(|v| (v, action))),
                    lost = self.heartbeat(id, cfg) => {
                        lost?;
                        None
                    }
                }
            }
        };
        let Some(outcome) = outcome else {
            tracing::warn!(
                approval = id,
                "execution lease lost (another worker took it over): abandoned"
            );
            return Ok(Ended::LeaseLost);
        };
        let ended = match outcome {
            Ok((result, action)) => {
                self.finish(
                    &row,
                    true,
                    json!({"action": action, "result": result}),
                    result,
                    started,
                )
                .await?
            }
            Err(e) if e.transient && attempt < cfg.attempts => {
                self.retry(&row, attempt, &e.message, cfg).await?
            }
            Err(e) => {
                let reason = if e.transient {
                    format!("{} (gave up after {attempt} attempts)", e.message)
                } else {
                    e.message.clone()
                };
                let result = json!({"error": reason, "attempts": attempt});
                self.finish(
                    &row,
                    false,
                    json!({"action": row.params, "result": result}),
                    result,
                    started,
                )
                .await?
            }
        };
        if let Ended::LeaseLost = ended {
            tracing::warn!(
                approval = id,
                "execution lease lost before its end was stored"
            );
        }
        Ok(ended)
    }

    /// Renew the lease every third of its length; returns (`Ok`) only when it is lost.
    async fn heartbeat(&self, id: &str, cfg: &OutboxConfig) -> Result<(), AppError> {
        let every = cfg.lease() / 3;
        loop {
            tokio::time::sleep(every).await;
            let until = now_us() + micros(cfg.lease());
            match self.store.renew_lease(id, &self.outbox.owner, until).await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                // A database hiccup: keep running; the next beat tries again, and the
                // finish is conditional on still holding the lease anyway.
                Err(e) => tracing::warn!(approval = id, error = %e, "lease not renewed"),
            }
        }
    }

    /// Store the end of an execution with its audit event (if this process still holds it).
    async fn finish(
        &self,
        row: &crate::store::ApprovalRow,
        ok: bool,
        event: serde_json::Value,
        result: serde_json::Value,
        started: Instant,
    ) -> Result<Ended, AppError> {
        let mut payload = event;
        payload["approval"] = json!(row.id);
        let mut ev = AuditEvent::new(
            if ok {
                "action.executed"
            } else {
                "action.failed"
            },
            "system",
            payload,
        )
        .policy(&row.policy_version);
        ev.case_id = row.case_id.clone();
        ev.latency_ms = Some(started.elapsed().as_millis() as i64);
        let finish = Change::FinishExecution {
            id: row.id.clone(),
            owner: self.outbox.owner.clone(),
            ok,
            result_json: result.to_string(),
            now: now_us(),
        };
        let (applied, _) = self
            .audit
            .commit(finish, move |a| if a.changed() { vec![ev] } else { vec![] })
            .await?;
        if !applied.changed() {
            return Ok(Ended::LeaseLost);
        }
        self.counters
            .executions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Ended::Finished { ok })
    }

    /// Give a held execution back for a retry after the backoff, audited.
    async fn retry(
        &self,
        row: &crate::store::ApprovalRow,
        attempt: u32,
        error: &str,
        cfg: &OutboxConfig,
    ) -> Result<Ended, AppError> {
        let wait = cfg.backoff(attempt);
        let due_at = now_us() + micros(wait);
        let mut ev = AuditEvent::new(
            "action.retrying",
            "system",
            json!({"approval": row.id, "attempt": attempt, "of": cfg.attempts, "error": error,
                "retry_at": due_at, "wait_ms": wait.as_millis() as u64}),
        )
        .policy(&row.policy_version);
        ev.case_id = row.case_id.clone();
        let change = Change::RetryExecution {
            id: row.id.clone(),
            owner: self.outbox.owner.clone(),
            due_at,
            error: error.to_string(),
        };
        let (applied, _) = self
            .audit
            .commit(change, move |a| if a.changed() { vec![ev] } else { vec![] })
            .await?;
        tracing::warn!(approval = %row.id, attempt, error, wait_ms = wait.as_millis() as u64, "transient execution failure: retrying later");
        Ok(if applied.changed() {
            Ended::Retrying
        } else {
            Ended::LeaseLost
        })
    }
}

/// The running worker of one process. [`OutboxWorker::stop`] lets the current executions
/// end (up to a grace period) and stops; an execution cut off keeps its lease until it
/// expires, and is then taken over.
pub struct OutboxWorker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl OutboxWorker {
    /// Start the worker over an app (it holds the app weakly: dropping the app ends it).
    pub fn spawn(app: &Arc<App>, cfg: OutboxConfig) -> OutboxWorker {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let weak: Weak<App> = Arc::downgrade(app);
        let task = tokio::spawn(async move {
            loop {
                let Some(app) = weak.upgrade() else { break };
                let poll = secs(cfg.poll_secs);
                let work = app.run_due_executions(&cfg);
                let r = tokio::select! {
                    r = work => r,
                    _ = stopped.changed() => break,
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "executing approved actions failed; retrying at the next poll");
                }
                // Sleep until rung, the next poll, or a retry coming due before it.
                let next = match app.store.next_execution_at().await {
                    Ok(Some(t)) => {
                        let wait = (t - now_us()).max(0) as u64;
                        Duration::from_micros(wait).min(poll)
                    }
                    _ => poll,
                };
                let woken = async {
                    app.outbox.wake.notified().await;
                };
                tokio::select! {
                    _ = woken => {},
                    _ = tokio::time::sleep(next) => {},
                    _ = stopped.changed() => break,
                }
            }
        });
        OutboxWorker { stop, task }
    }

    /// Stop taking work, let running executions end for up to `grace`, then stop.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let cfg = OutboxConfig {
            backoff_secs: 1.0,
            backoff_cap_secs: 10.0,
            ..OutboxConfig::default()
        };
        for _ in 0..100 {
            let b1 = cfg.backoff(1).as_secs_f64();
            assert!((0.5..=1.0).contains(&b1), "{b1}");
            let b3 = cfg.backoff(3).as_secs_f64();
            assert!((2.0..=4.0).contains(&b3), "{b3}");
            let b20 = cfg.backoff(20).as_secs_f64();
            assert!((5.0..=10.0).contains(&b20), "{b20}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(OutboxConfig::default().validate().is_ok());
        for bad in [
            OutboxConfig {
                lease_secs: 0.0,
                ..OutboxConfig::default()
            },
            OutboxConfig {
                attempts: 0,
                ..OutboxConfig::default()
            },
            OutboxConfig {
                poll_secs: f64::NAN,
                ..OutboxConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
