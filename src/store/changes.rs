//! State changes that carry an audit event: each is applied inside the audit writer's
//! transaction, in a savepoint with the events it produces, so a change is stored exactly
//! when its audit trail is ([`super::audit::AuditLog::commit`]). The [`Store`] methods of
//! the same names run the same SQL in a transaction of their own (tests, tools).
//!
//! Every change is a compare-and-set: [`Applied`] says whether it took effect, so a lost
//! race writes no event.

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{ApprovalRow, CaseStatus, Store, StoreError, roles_column};

/// A decision on an approval request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Request id.
    pub id: String,
    /// Who decides.
    pub actor: String,
    /// Their role.
    pub role: String,
    /// Approve (true) or reject.
    pub approve: bool,
    /// Reason given.
    pub reason: Option<String>,
    /// When (Unix µs).
    pub now: i64,
}

/// A state change stored with its audit events.
#[derive(Debug, Clone)]
pub enum Change {
    /// Move a case from one of `from` to `to`.
    TransitionCase {
        /// Case id.
        id: String,
        /// Statuses it may be in.
        from: Vec<CaseStatus>,
        /// New status.
        to: CaseStatus,
        /// Outcome text.
        outcome: Option<String>,
        /// Who.
        actor: String,
        /// When (Unix µs).
        now: i64,
    },
    /// Store a new (pending) approval request.
    InsertApproval(Box<ApprovalRow>),
    /// Record one person's decision.
    DecideApproval(Decision),
    /// Take the lease of a due execution whose lease expired (approved → executing).
    ClaimExecution {
        /// Request id.
        id: String,
        /// The claiming process.
        owner: String,
        /// The attempts the claimer saw (another claim meanwhile makes this one fail).
        attempts: i64,
        /// When (Unix µs).
        now: i64,
        /// When the lease runs out unless renewed (Unix µs).
        lease_until: i64,
    },
    /// Record an execution's result (executing → executed | failed), if `owner` still
    /// holds it.
    FinishExecution {
        /// Request id.
        id: String,
        /// The process that ran it.
        owner: String,
        /// Whether it succeeded.
        ok: bool,
        /// The result as JSON text.
        result_json: String,
        /// When (Unix µs).
        now: i64,
    },
    /// Give a held execution back to be retried at `due_at` (a transient error).
    RetryExecution {
        /// Request id.
        id: String,
        /// The process that held it.
        owner: String,
        /// When to try again (Unix µs).
        due_at: i64,
        /// Why this attempt failed.
        error: String,
    },
    /// Store a token (hash only); an active token of the same name blocks it.
    InsertToken {
        /// Name.
        name: String,
        /// Role.
        role: String,
        /// SHA-256 of the secret.
        hash: String,
        /// When (Unix µs).
        now: i64,
        /// When it stops working (Unix µs); `None` = never.
        expires_at: Option<i64>,
    },
    /// Revoke an active token.
    RevokeToken {
        /// Name.
        name: String,
        /// When (Unix µs).
        now: i64,
    },
}

/// What a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// The request is no longer pending (decided, expired, or unknown): nothing changed.
    NotPending,
    /// This person already decided it: nothing changed.
    AlreadyDecided,
    /// Approval recorded; it waits for more approvers.
    Waiting {
        /// Distinct approvals so far.
        approvals: u32,
        /// Needed in all.
        needed: u32,
    },
    /// The last approval needed: the request is approved.
    Approved,
    /// Rejected.
    Rejected,
}

/// Whether a change took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It did.
    Yes,
    /// The compare-and-set found another state: nothing changed.
    No,
    /// A decision's outcome.
    Decision(DecisionOutcome),
}

impl Applied {
    /// Whether anything was written.
    pub fn changed(self) -> bool {
        match self {
            Applied::Yes => true,
            Applied::No => false,
            Applied::Decision(d) => !matches!(
                d,
                DecisionOutcome::NotPending | DecisionOutcome::AlreadyDecided
            ),
        }
    }
}

/// Apply a change on a connection inside a transaction.
pub(crate) async fn apply(conn: &mut AnyConnection, c: &Change) -> Result<Applied, StoreError> {
    let yes = |n: u64| if n == 1 { Applied::Yes } else { Applied::No };
    match c {
        Change::TransitionCase {
            id,
            from,
            to,
            outcome,
            actor,
            now,
        } => {
            let list = from
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE cases SET status = $2, active = $6, outcome = $3, decided_by = $4, decided_at = $5, updated_at = $5 WHERE id = $1 AND status IN ({list})"
            );
            let r = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(to.as_str())
                .bind(outcome.as_deref())
                .bind(actor)
                .bind(*now)
                .bind(i64::from(to.is_active()))
                .execute(&mut *conn)
                .await?;
            Ok(yes(r.rows_affected()))
        }
        Change::InsertApproval(a) => {
            let r = sqlx::query(
                "INSERT INTO approvals (id, case_id, action, params_json, evidence_json, policy_rule, policy_version, approver_roles, requested_by, requested_at, expires_at, status, approvers_needed, requester_may_approve, order_value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, $14)",
            )
            .bind(&a.id)
            .bind(a.case_id.as_deref())
            .bind(&a.action)
            .bind(a.params.to_string())
            .bind(a.evidence.to_string())
            .bind(&a.policy_rule)
            .bind(&a.policy_version)
            .bind(roles_column(&a.approver_roles))
            .bind(&a.requested_by)
            .bind(a.requested_at)
            .bind(a.expires_at)
            .bind(i64::from(a.approvers_needed))
            .bind(i64::from(a.requester_may_approve))
            .bind(a.order_value.as_deref())
            .execute(&mut *conn)
            .await?;
            Ok(yes(r.rows_affected()))
        }
        Change::DecideApproval(d) => decide(conn, d).await.map(Applied::Decision),
        Change::ClaimExecution {
            id,
            owner,
            attempts,
            now,
            lease_until,
        } => Ok(yes(u64::from(
            super::outbox::claim(conn, id, owner, *attempts, *now, *lease_until).await?,
        ))),
        Change::FinishExecution {
            id,
            owner,
            ok,
            result_json,
            now,
        } => Ok(yes(u64::from(
            super::outbox::finish(conn, id, owner, *ok, result_json, *now).await?,
        ))),
        Change::RetryExecution {
            id,
            owner,
            due_at,
            error,
        } => Ok(yes(u64::from(
            super::outbox::retry(conn, id, owner, *due_at, error).await?,
        ))),
        Change::InsertToken {
            name,
            role,
            hash,
            now,
            expires_at,
        } => {
            let r = sqlx::query(
                // A name is never reused, revoked or not: conversations, approvals and
                // audit events are kept under it, and a new holder must not inherit them.
                "INSERT INTO tokens (name, role, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(role)
            .bind(hash)
            .bind(*now)
            .bind(*expires_at)
            .execute(&mut *conn)
            .await?;
            Ok(yes(r.rows_affected()))
        }
        Change::RevokeToken { name, now } => {
            let r = sqlx::query(
                "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            )
            .bind(name)
            .bind(*now)
            .execute(&mut *conn)
            .await?;
            Ok(yes(r.rows_affected()))
        }
    }
}

/// Record one decision. The first statement locks the request's row (PostgreSQL) or the
/// database (SQLite) while it is pending and unexpired, so concurrent approvers are
/// counted one after the other: with two needed, the second approval — whoever gives
/// it — is the one that approves, exactly once.
async fn decide(conn: &mut AnyConnection, d: &Decision) -> Result<DecisionOutcome, StoreError> {
    let locked = sqlx::query(
        "UPDATE approvals SET status = status WHERE id = $1 AND status = 'pending' AND expires_at > $2",
    )
    .bind(&d.id)
    .bind(d.now)
    .execute(&mut *conn)
    .await?;
    if locked.rows_affected() != 1 {
        return Ok(DecisionOutcome::NotPending);
    }
    let decision = if d.approve { "approved" } else { "rejected" };
    let inserted = sqlx::query(
        "INSERT INTO approval_decisions (approval_id, decided_by, role, decision, reason, decided_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (approval_id, decided_by) DO NOTHING",
    )
    .bind(&d.id)
    .bind(&d.actor)
    .bind(&d.role)
    .bind(decision)
    .bind(d.reason.as_deref())
    .bind(d.now)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(DecisionOutcome::AlreadyDecided);
    }
    let row = sqlx::query(
        "SELECT a.approvers_needed, (SELECT COUNT(*) FROM approval_decisions x WHERE x.approval_id = a.id AND x.decision = 'approved') FROM approvals a WHERE a.id = $1",
    )
    .bind(&d.id)
    .fetch_one(&mut *conn)
    .await?;
    let needed: i64 = row.try_get(0)?;
    let approvals: i64 = row.try_get(1)?;
    let done = !d.approve || approvals >= needed;
    if !done {
        return Ok(DecisionOutcome::Waiting {
            approvals: approvals as u32,
            needed: needed as u32,
        });
    }
    sqlx::query(
        "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, reason = $5 WHERE id = $1",
    )
    .bind(&d.id)
    .bind(decision)
    .bind(&d.actor)
    .bind(d.now)
    .bind(d.reason.as_deref())
    .execute(&mut *conn)
    .await?;
    if d.approve {
        // The execution is enqueued with the decision: both are stored, or neither.
        super::outbox::enqueue(conn, &d.id, d.now).await?;
    }
    Ok(if d.approve {
        DecisionOutcome::Approved
    } else {
        DecisionOutcome::Rejected
    })
}

impl Store {
    /// Apply one change in a transaction of its own (no audit event: for tests and tools
    /// that write the log themselves).
    pub async fn apply(&self, c: &Change) -> Result<Applied, StoreError> {
        let mut tx = self.pool().begin().await?;
        let a = apply(&mut tx, c).await?;
        tx.commit().await?;
        Ok(a)
    }

    /// The decisions on these requests, and where their executions stand, attached to
    /// each row.
    pub(super) async fn attach_decisions(
        &self,
        rows: &mut [ApprovalRow],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let now = chrono::Utc::now().timestamp_micros();
        let states = self.execution_states(&ids, now).await?;
        for (id, state) in states {
            if let Some(row) = rows.iter_mut().find(|x| x.id == id) {
                row.execution = Some(state);
            }
        }
        let marks: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT approval_id, decided_by, role, decision, reason, decided_at FROM approval_decisions WHERE approval_id IN ({}) ORDER BY decided_at, decided_by",
            marks.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for r in rows.iter() {
            q = q.bind(r.id.clone());
        }
        for r in q.fetch_all(self.pool()).await? {
            let id: String = r.try_get(0)?;
            if let Some(row) = rows.iter_mut().find(|x| x.id == id) {
                row.decisions.push(super::ApprovalDecision {
                    by: r.try_get(1)?,
                    role: r.try_get(2)?,
                    decision: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    at: r.try_get(5)?,
                });
            }
        }
        Ok(())
    }
}
