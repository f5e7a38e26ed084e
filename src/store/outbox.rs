//! The outbox of approved actions and the leases that hand each one to exactly one
//! worker at a time, and the scan leases that hand each scan partition to one replica.
//!
//! A row is enqueued by the decision that approves its request, in the same transaction
//! ([`super::changes`]); claiming, retrying and finishing are audited changes too
//! ([`super::Change::ClaimExecution`] …). What lives here is the SQL of those changes, the
//! unaudited lease bookkeeping (heartbeats, scan leases) and the reads. A claim is a
//! conditional update — the row must be unfinished, due, its lease expired and its attempt
//! count the one the claimer saw — so of any number of concurrent claimers on one
//! database (PostgreSQL re-checks the condition after waiting for the row; SQLite has one
//! writer) exactly one gets the row. Lease times come from the claimers' clocks: replicas
//! must agree on the time to well within a lease.

use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Store, StoreError};

/// Where an approved request's execution stands, as the approvals API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionState {
    /// Attempts started so far (a crash or lost lease counts as one).
    pub attempts: u32,
    /// When it was enqueued (Unix µs).
    pub enqueued_at: i64,
    /// When it may next be attempted (Unix µs), while unfinished.
    pub due_at: Option<i64>,
    /// The process that holds it now, while its lease is live.
    pub worker: Option<String>,
    /// When that lease runs out (Unix µs).
    pub lease_expires: Option<i64>,
    /// Why the last attempt did not finish (a transient error it retries after).
    pub last_error: Option<String>,
    /// When it ended (executed or failed).
    pub finished_at: Option<i64>,
}

/// An execution due to be claimed: its request and the attempts the claimer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Request id.
    pub id: String,
    /// Attempts so far; the claim succeeds only if nobody started another meanwhile.
    pub attempts: i64,
}

/// Enqueue an approved request (inside the deciding transaction).
pub(super) async fn enqueue(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (approval_id, enqueued_at, due_at) VALUES ($1, $2, $2) ON CONFLICT (approval_id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Take the lease of a due row whose lease expired, and mark its request executing.
pub(super) async fn claim(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    attempts: i64,
    now: i64,
    lease_until: i64,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE outbox SET lease_owner = $2, lease_expires = $3, attempts = attempts + 1 \
         WHERE approval_id = $1 AND finished_at IS NULL AND due_at <= $4 AND lease_expires <= $4 AND attempts = $5",
    )
    .bind(id)
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(attempts)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE approvals SET status = 'executing' WHERE id = $1 AND status IN ('approved', 'executing')",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// End an execution the caller still holds: the row is finished and the request
/// executed or failed. A worker that lost its lease finishes nothing.
pub(super) async fn finish(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    ok: bool,
    result_json: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE outbox SET finished_at = $3, lease_expires = 0 WHERE approval_id = $1 AND lease_owner = $2 AND finished_at IS NULL",
    )
    .bind(id)
    .bind(owner)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    let r = sqlx::query(
        "UPDATE approvals SET status = $2, result_json = $3, executed_at = $4 WHERE id = $1 AND status = 'executing'",
    )
    .bind(id)
    .bind(if ok { "executed" } else { "failed" })
    .bind(result_json)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Give a held execution back to be tried again at `due_at` (after a transient error).
pub(super) async fn retry(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    due_at: i64,
    error: &str,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE outbox SET lease_owner = NULL, lease_expires = 0, due_at = $3, last_error = $4 \
         WHERE approval_id = $1 AND lease_owner = $2 AND finished_at IS NULL",
    )
    .bind(id)
    .bind(owner)
    .bind(due_at)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

impl Store {
    /// Unfinished executions that may be claimed now (due, lease expired), oldest first.
    pub async fn due_executions(&self, now: i64, limit: i64) -> Result<Vec<Due>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT approval_id, attempts FROM outbox WHERE finished_at IS NULL AND due_at <= $1 AND lease_expires <= $1 ORDER BY due_at, approval_id LIMIT {}",
            limit.clamp(1, 1000)
        )))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    id: r.try_get(0)?,
                    attempts: r.try_get(1)?,
                })
            })
            .collect()
    }

    /// When the next unfinished execution becomes claimable (due and lease expired), if any.
    pub async fn next_execution_at(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN due_at > lease_expires THEN due_at ELSE lease_expires END) FROM outbox WHERE finished_at IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// Extend a held lease to `until`; false when the caller no longer holds it (it
    /// expired and another worker took it, or the execution ended).
    pub async fn renew_lease(&self, id: &str, owner: &str, until: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE outbox SET lease_expires = $3 WHERE approval_id = $1 AND lease_owner = $2 AND finished_at IS NULL",
        )
        .bind(id)
        .bind(owner)
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The execution state of requests, by id.
    pub(super) async fn execution_states(
        &self,
        ids: &[&str],
        now: i64,
    ) -> Result<Vec<(String, ExecutionState)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT approval_id, attempts, enqueued_at, due_at, lease_owner, lease_expires, last_error, finished_at FROM outbox WHERE approval_id IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let finished_at: Option<i64> = r.try_get(7)?;
                let lease_expires: i64 = r.try_get(5)?;
                let live = finished_at.is_none() && lease_expires > now;
                let attempts: i64 = r.try_get(1)?;
                Ok((
                    r.try_get(0)?,
                    ExecutionState {
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        enqueued_at: r.try_get(2)?,
                        due_at: if finished_at.is_none() {
                            Some(r.try_get(3)?)
                        } else {
                            None
                        },
                        worker: if live { r.try_get(4)? } else { None },
                        lease_expires: live.then_some(lease_expires),
                        last_error: r.try_get(6)?,
                        finished_at,
                    },
                ))
            })
            .collect()
    }

    /// Take the lease of scan partition `partition` until `until` when it is free (never
    /// held, expired, or already this owner's) and its last scan is at least `every` µs
    /// old; false when another replica holds it or scanned it recently.
    pub async fn claim_scan(
        &self,
        partition: &str,
        owner: &str,
        now: i64,
        until: i64,
        every: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO scan_leases (part, lease_expires) VALUES ($1, 0) ON CONFLICT (part) DO NOTHING",
        )
        .bind(partition)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query(
            "UPDATE scan_leases SET lease_owner = $2, lease_expires = $3 \
             WHERE part = $1 AND (lease_expires <= $4 OR lease_owner = $2) \
             AND (scanned_at IS NULL OR scanned_at <= $5)",
        )
        .bind(partition)
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(now - every)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Release a scan lease the caller holds, recording when the scan finished.
    pub async fn release_scan(
        &self,
        partition: &str,
        owner: &str,
        scanned_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE scan_leases SET lease_owner = NULL, lease_expires = 0, scanned_at = COALESCE($3, scanned_at) WHERE part = $1 AND lease_owner = $2",
        )
        .bind(partition)
        .bind(owner)
        .bind(scanned_at)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
