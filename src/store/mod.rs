//! Storage with sqlx: a SQLite file by default, PostgreSQL when `DATABASE_URL` points to
//! one. The same portable SQL (and the same migrations in `migrations/`) runs on both
//! through sqlx's `Any` driver; placeholders are `$N`, which both accept.
//!
//! This module owns every SQL statement of the product: cases, approvals, API tokens and
//! the hash-chained audit log ([`audit`]). It knows nothing of HTTP or of the exception
//! core beyond the serialised exception it stores; times are Unix microseconds passed in
//! by the caller.

pub mod audit;
pub mod audit_key;
pub mod changes;
mod chat;
pub mod intel;
pub mod outbox;
pub mod predictions;
pub mod purchase_dates;
mod rows;
pub mod seal;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, AssertSqlSafe, Row};

pub use changes::{Applied, Change, Decision, DecisionOutcome};
pub use chat::{ConversationRow, TurnRow};
pub use outbox::{Due, ExecutionState};
pub use rows::*;

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no or could not be reached.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// Directory.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A stored value could not be decoded.
    #[error("corrupt stored value in {what}: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The audit key is missing, unusable, or not the one the chain is signed with.
    #[error("audit key: {0}")]
    AuditKey(String),
    /// The body key (prompts and responses at rest) is missing or unusable.
    #[error("body key: {0}")]
    BodyKey(String),
    /// The database URL is not one we support.
    #[error("unsupported DATABASE_URL scheme (use sqlite:// or postgres://)")]
    UnsupportedUrl,
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `DATABASE_URL`, if set (postgres://… or sqlite://…).
    pub database_url: Option<String>,
    /// Data directory; the SQLite file is `order-copilot.db` in it.
    pub data_dir: PathBuf,
}

impl StoreConfig {
    /// The URL to connect to, and the backend it means. Passwords in the URL never leave
    /// this function except inside the connection options.
    fn resolve(&self) -> Result<(String, Backend), StoreError> {
        match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok((url.clone(), Backend::Postgres))
            }
            Some(url) if url.starts_with("sqlite:") => Ok((url.clone(), Backend::Sqlite)),
            Some(_) => Err(StoreError::UnsupportedUrl),
            None => {
                let file = self.data_dir.join("order-copilot.db");
                Ok((
                    format!("sqlite://{}?mode=rwc", file.display()),
                    Backend::Sqlite,
                ))
            }
        }
    }

    /// A description safe to log (no password).
    pub fn describe(&self) -> String {
        match &self.database_url {
            Some(url) => redact_url(url),
            None => self.data_dir.join("order-copilot.db").display().to_string(),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((cred, host)) => {
            let user = cred.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// The database handle.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    audit_keys: std::sync::Arc<audit_key::AuditKeys>,
    body_keys: std::sync::Arc<seal::BodyKeys>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connect (creating the SQLite file and data directory when needed) and migrate.
    pub async fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        install_default_drivers();
        let (url, backend) = cfg.resolve()?;
        if backend == Backend::Sqlite && cfg.database_url.is_none() {
            std::fs::create_dir_all(&cfg.data_dir).map_err(|e| StoreError::DataDir {
                path: cfg.data_dir.display().to_string(),
                source: e,
            })?;
        }
        let max = if backend == Backend::Sqlite { 4 } else { 10 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL makes each commit
                        // durable (fsync) — the audit log acknowledges only after it.
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous=FULL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout=10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let env_key = std::env::var("AUDIT_KEY").ok();
        let audit_keys = audit_key::AuditKeys::load(&cfg.data_dir, env_key.as_deref())?;
        let body_key = std::env::var(seal::KEY_ENV).ok();
        let body_keys = seal::BodyKeys::load(&cfg.data_dir, body_key.as_deref())?;
        Ok(Store {
            pool,
            backend,
            audit_keys: std::sync::Arc::new(audit_keys),
            body_keys: std::sync::Arc::new(body_keys),
        })
    }

    /// The audit log's keys and checkpoint file (from `AUDIT_KEY` or the data directory).
    pub fn audit_keys(&self) -> &audit_key::AuditKeys {
        &self.audit_keys
    }

    /// The keys prompt and response bodies are sealed with at rest (from `BODY_KEY` or
    /// the data directory).
    pub fn body_keys(&self) -> &seal::BodyKeys {
        &self.body_keys
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for the audit log.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- cases ------------------------------------------------------------------

    /// All case ids with their status.
    pub async fn case_statuses(&self) -> Result<Vec<(String, CaseStatus)>, StoreError> {
        let rows = sqlx::query("SELECT id, status FROM cases")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let s: String = r.try_get(1)?;
                Ok((
                    id,
                    CaseStatus::from_str(&s).map_err(|d| corrupt("cases.status", d))?,
                ))
            })
            .collect()
    }

    /// Apply a scan: insert new cases, update and reopen existing ones, auto-resolve
    /// vanished ones as "cleared". One transaction.
    pub async fn merge_scan(
        &self,
        cases: &[CaseUpsert],
        now: i64,
    ) -> Result<MergeStats, StoreError> {
        let existing: std::collections::HashMap<String, CaseStatus> =
            self.case_statuses().await?.into_iter().collect();
        let mut stats = MergeStats::default();
        let mut tx = self.pool.begin().await?;
        let mut seen = std::collections::HashSet::with_capacity(cases.len());
        for c in cases {
            seen.insert(c.id.as_str());
            match existing.get(&c.id) {
                None => {
                    bind_case(sqlx::query(
                        "INSERT INTO cases (id, kind, order_ref, customer, tier, warehouse, product, owner_role, severity, score, revenue_cents, title, policy_version, customer_lc, status, active, first_seen, last_seen, reopened, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $15, 'open', 1, $13, $13, 0, $13)",
                    ), c, now)
                    .bind(c.customer.to_lowercase())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("INSERT INTO case_payloads (id, exception_json) VALUES ($1, $2)")
                        .bind(&c.id)
                        .bind(&c.exception_json)
                        .execute(&mut *tx)
                        .await?;
                    stats.new += 1;
                }
                Some(status) => {
                    let reopen = *status == CaseStatus::Resolved;
                    bind_case(sqlx::query(
                        "UPDATE cases SET kind = $2, order_ref = $3, customer = $4, customer_lc = $16, tier = $5, warehouse = $6, product = $7, owner_role = $8, severity = $9, score = $10, revenue_cents = $11, title = $12, last_seen = $13, policy_version = $14, updated_at = $13, \
                         status = CASE WHEN $15 = 1 THEN 'open' ELSE status END, \
                         active = CASE WHEN $15 = 1 THEN 1 ELSE active END, \
                         outcome = CASE WHEN $15 = 1 THEN NULL ELSE outcome END, \
                         decided_by = CASE WHEN $15 = 1 THEN NULL ELSE decided_by END, \
                         decided_at = CASE WHEN $15 = 1 THEN NULL ELSE decided_at END, \
                         reopened = reopened + $15 \
                         WHERE id = $1",
                    ), c, now)
                    .bind(i64::from(reopen))
                    .bind(c.customer.to_lowercase())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE case_payloads SET exception_json = $2 WHERE id = $1")
                        .bind(&c.id)
                        .bind(&c.exception_json)
                        .execute(&mut *tx)
                        .await?;
                    if reopen {
                        stats.reopened += 1;
                    } else {
                        stats.updated += 1;
                    }
                }
            }
        }
        for (id, status) in &existing {
            if status.is_active() && !seen.contains(id.as_str()) {
                sqlx::query(
                    "UPDATE cases SET status = 'resolved', active = 0, outcome = 'cleared', decided_by = 'system', decided_at = $2, updated_at = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                stats.cleared += 1;
            }
        }
        tx.commit().await?;
        Ok(stats)
    }

    /// The ranked queue with filters, and the total number matching.
    pub async fn list_cases(&self, q: &CaseQuery) -> Result<(Vec<CaseSummary>, i64), StoreError> {
        let (where_sql, args) = case_filter(q);
        let order = match q.sort {
            CaseSort::Score => "score DESC, revenue_cents DESC, id",
            CaseSort::Revenue => "revenue_cents DESC, score DESC, id",
            CaseSort::Oldest => "first_seen ASC, id",
            CaseSort::Updated => "updated_at DESC, id",
        };
        let sql = format!(
            "SELECT id, kind, order_ref, customer, tier, warehouse, product, owner_role, severity, score, revenue_cents, title, status, outcome, first_seen, last_seen, reopened FROM cases WHERE {where_sql} ORDER BY {order} LIMIT {} OFFSET {}",
            q.limit.clamp(1, 500),
            q.offset.max(0)
        );
        let query = bind_args(sqlx::query(AssertSqlSafe(sql)), &args);
        let count_sql = format!("SELECT COUNT(*) FROM cases WHERE {where_sql}");
        let cq = bind_args(sqlx::query(AssertSqlSafe(count_sql)), &args);
        // The page and the total are independent reads: run them side by side.
        let (rows, count) = tokio::join!(query.fetch_all(&self.pool), cq.fetch_one(&self.pool));
        let items = rows?
            .iter()
            .map(CaseSummary::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = count?.try_get(0)?;
        Ok((items, total))
    }

    /// How many active cases each value of the queue's filters has.
    pub async fn case_facets(&self) -> Result<CaseFacets, StoreError> {
        // Five small grouped reads over the active rows (each served by an index that
        // starts with `active`), side by side.
        let group = |col: &'static str| {
            let sql = format!(
                "SELECT {col}, COUNT(*) FROM cases WHERE active = 1 AND {col} IS NOT NULL GROUP BY {col} ORDER BY {col}"
            );
            async move {
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<Vec<(String, i64)>, StoreError>>()
            }
        };
        let (kind, owner, severity, warehouse, tier) = tokio::join!(
            group("kind"),
            group("owner_role"),
            group("severity"),
            group("warehouse"),
            group("tier")
        );
        Ok(CaseFacets {
            kind: kind?,
            owner: owner?,
            severity: severity?,
            warehouse: warehouse?,
            tier: tier?,
        })
    }

    /// One case with its stored exception.
    pub async fn get_case(&self, id: &str) -> Result<Option<CaseDetail>, StoreError> {
        let row = sqlx::query(
            "SELECT c.id, c.kind, c.order_ref, c.customer, c.tier, c.warehouse, c.product, c.owner_role, c.severity, c.score, c.revenue_cents, c.title, c.status, c.outcome, c.first_seen, c.last_seen, c.reopened, c.decided_by, c.decided_at, p.exception_json, c.policy_version \
             FROM cases c JOIN case_payloads p ON p.id = c.id WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| CaseDetail::from_row(&r)).transpose()
    }

    /// Change a case's status if it is currently in one of `from`. Returns whether it changed.
    pub async fn transition_case(
        &self,
        id: &str,
        from: &[CaseStatus],
        to: CaseStatus,
        outcome: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let c = Change::TransitionCase {
            id: id.to_string(),
            from: from.to_vec(),
            to,
            outcome: outcome.map(str::to_string),
            actor: actor.to_string(),
            now,
        };
        Ok(self.apply(&c).await?.changed())
    }

    /// Number of cases per status.
    pub async fn case_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) FROM cases GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    // ---- approvals --------------------------------------------------------------

    /// Store a new approval request.
    pub async fn insert_approval(&self, a: &ApprovalRow) -> Result<(), StoreError> {
        self.apply(&Change::InsertApproval(Box::new(a.clone())))
            .await
            .map(|_| ())
    }

    /// One approval.
    pub async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let mut rows: Vec<ApprovalRow> = row
            .iter()
            .map(ApprovalRow::from_row)
            .collect::<Result<_, _>>()?;
        self.attach_decisions(&mut rows).await?;
        Ok(rows.pop())
    }

    /// Approvals by status (optionally only those a role may decide), newest first.
    pub async fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        role: Option<&str>,
        case_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApprovalRow>, StoreError> {
        let mut wh = vec!["1 = 1".to_string()];
        let mut args: Vec<String> = Vec::new();
        if let Some(s) = status {
            args.push(s.as_str().to_string());
            wh.push(format!("status = ${}", args.len()));
        }
        if let Some(r) = role {
            args.push(format!("%,{r},%"));
            wh.push(format!("approver_roles LIKE ${}", args.len()));
        }
        if let Some(c) = case_id {
            args.push(c.to_string());
            wh.push(format!("case_id = ${}", args.len()));
        }
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {} ORDER BY requested_at DESC, id LIMIT {}",
            wh.join(" AND "),
            limit.clamp(1, 500)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
        for a in &args {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut rows: Vec<ApprovalRow> = rows
            .iter()
            .map(ApprovalRow::from_row)
            .collect::<Result<_, _>>()?;
        self.attach_decisions(&mut rows).await?;
        Ok(rows)
    }

    /// Record one person's decision on a pending, unexpired request: a rejection ends it,
    /// an approval approves it once enough distinct people approved. Concurrent deciders
    /// are counted one at a time, so exactly one of them completes it.
    pub async fn decide_approval(&self, d: &Decision) -> Result<DecisionOutcome, StoreError> {
        match self.apply(&Change::DecideApproval(d.clone())).await? {
            Applied::Decision(o) => Ok(o),
            other => Err(corrupt("approval decision", format!("{other:?}"))),
        }
    }

    /// Claim a due execution for `owner` with a lease until `lease_until` (approved →
    /// executing). Of concurrent claimers exactly one wins; an unexpired lease is never
    /// taken. Unaudited (the worker claims through [`Change::ClaimExecution`]).
    pub async fn claim_execution(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let attempts = sqlx::query("SELECT attempts FROM outbox WHERE approval_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(attempts) = attempts else {
            return Ok(false);
        };
        let c = Change::ClaimExecution {
            id: id.to_string(),
            owner: owner.to_string(),
            attempts: attempts.try_get(0)?,
            now,
            lease_until,
        };
        Ok(self.apply(&c).await?.changed())
    }

    /// Record the execution result, if `owner` still holds the execution.
    pub async fn finish_execution(
        &self,
        id: &str,
        owner: &str,
        ok: bool,
        result_json: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let c = Change::FinishExecution {
            id: id.to_string(),
            owner: owner.to_string(),
            ok,
            result_json: result_json.to_string(),
            now,
        };
        Ok(self.apply(&c).await?.changed())
    }

    /// Mark pending requests past their expiry as expired; returns their ids.
    pub async fn expire_approvals(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1")
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if !ids.is_empty() {
            sqlx::query("UPDATE approvals SET status = 'expired', decided_at = $1 WHERE status = 'pending' AND expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(ids)
    }

    // ---- tokens -----------------------------------------------------------------

    /// Store a token (hash only) that never expires. A name is never reused, revoked or
    /// not (returns `false`).
    pub async fn insert_token(
        &self,
        name: &str,
        role: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let c = Change::InsertToken {
            name: name.to_string(),
            role: role.to_string(),
            hash: hash.to_string(),
            now,
            expires_at: None,
        };
        Ok(self.apply(&c).await?.changed())
    }

    /// Revoke a token by name; returns whether an active one existed.
    pub async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let c = Change::RevokeToken {
            name: name.to_string(),
            now,
        };
        Ok(self.apply(&c).await?.changed())
    }

    /// The active (not revoked) token with this hash: (name, role).
    pub async fn find_token(&self, hash: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .find_active_token(hash)
            .await?
            .map(|t| (t.name, t.role)))
    }

    /// The token with this hash unless revoked, with its expiry (the caller decides whether
    /// it is still valid).
    pub async fn find_active_token(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(
            "SELECT name, role, created_at, expires_at, revoked_at FROM tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_row(&r)).transpose()
    }

    /// Every token ever created (never the secrets), by name.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        sqlx::query(
            "SELECT name, role, created_at, expires_at, revoked_at FROM tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token_row)
        .collect()
    }

    /// Model tokens (prompt + completion) the copilot's answers to conversations `owner`
    /// owns used since `since` (Unix µs): the cost guard's spend.
    pub async fn model_tokens_since(&self, owner: &str, since: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT CAST(COALESCE(SUM(COALESCE(a.prompt_tokens, 0) + COALESCE(a.completion_tokens, 0)), 0) AS BIGINT) \
             FROM audit a JOIN conversations c ON c.id = a.conversation_id \
             WHERE a.kind = 'chat.answer' AND a.at >= $2 AND c.owner = $1",
        )
        .bind(owner)
        .bind(since)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Number of tokens ever created.
    pub async fn token_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM tokens")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }
}

/// An API token as stored (its hash is never read back out).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    /// Name (the holder).
    pub name: String,
    /// Role.
    pub role: String,
    /// Created (Unix µs).
    pub created_at: i64,
    /// Stops working (Unix µs); `None` = never.
    pub expires_at: Option<i64>,
    /// Revoked (Unix µs).
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    /// `active`, `expired` or `revoked` at `now` (Unix µs).
    pub fn state(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

fn token_row(r: &sqlx::any::AnyRow) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        name: r.try_get(0)?,
        role: r.try_get(1)?,
        created_at: r.try_get(2)?,
        expires_at: r.try_get(3)?,
        revoked_at: r.try_get(4)?,
    })
}

/// Run raw SQL. Only the tests use this, to tamper with the audit log as an attacker with
/// database access would.
#[doc(hidden)]
pub async fn exec_for_tests(store: &Store, sql: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(&store.pool)
        .await?
        .rows_affected())
}

/// Every text column of every row a raw query returns, as one string. Only the tests use
/// this, to read the database as someone without the keys would.
#[doc(hidden)]
pub async fn dump_for_tests(store: &Store, sql: &str) -> Result<String, StoreError> {
    let rows = sqlx::query(AssertSqlSafe(sql.to_string()))
        .fetch_all(&store.pool)
        .await?;
    let mut out = String::new();
    for r in rows {
        for i in 0..r.len() {
            if let Ok(s) = r.try_get::<String, _>(i) {
                out.push_str(&s);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Create an empty PostgreSQL database `name` next to the one `admin_url` points at and
/// return a config for it. For tests, which need one database each.
pub async fn create_database_for_tests(
    admin_url: &str,
    name: &str,
) -> Result<StoreConfig, StoreError> {
    install_default_drivers();
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(corrupt("database name", name.to_string()));
    }
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    Ok(StoreConfig {
        database_url: Some(format!("{base}/{name}")),
        // Each database its own directory: its own audit key and checkpoints.
        data_dir: std::env::temp_dir().join(name),
    })
}

/// Bind a case's fields as `$1`–`$14` (id … title, then the time, then the policy
/// version), the order both the insert and the update of a scan merge use.
fn bind_case<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &'q CaseUpsert,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&c.id)
        .bind(&c.kind)
        .bind(&c.order_ref)
        .bind(&c.customer)
        .bind(&c.tier)
        .bind(c.warehouse.as_deref())
        .bind(c.product.as_deref())
        .bind(&c.owner_role)
        .bind(&c.severity)
        .bind(i64::from(c.score))
        .bind(c.revenue_cents)
        .bind(&c.title)
        .bind(now)
        .bind(&c.policy_version)
}

/// Roles as stored: `,planner,sales_manager,` so a `LIKE '%,role,%'` matches whole names.
pub(crate) fn roles_column(roles: &[String]) -> String {
    format!(",{},", roles.join(","))
}

/// A bound value of a dynamically built filter.
enum Arg {
    Text(String),
    Int(i64),
}

/// The `WHERE` clause of a queue query and its bound values, in placeholder order.
fn case_filter(q: &CaseQuery) -> (String, Vec<Arg>) {
    let mut wh = Vec::new();
    if q.status.is_none() && !q.all {
        wh.push("active = 1".to_string());
    }
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |clause: &str, value: Arg| {
        args.push(value);
        wh.push(clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(s) = &q.status {
        push("status = ?", Arg::Text(s.as_str().to_string()));
    }
    let exact = [
        ("kind = ?", &q.kind),
        ("owner_role = ?", &q.owner),
        ("severity = ?", &q.severity),
        ("warehouse = ?", &q.warehouse),
        ("tier = ?", &q.tier),
        ("order_ref = ?", &q.order_ref),
        ("product = ?", &q.product),
    ];
    for (clause, value) in exact {
        if let Some(v) = value {
            push(clause, Arg::Text(v.clone()));
        }
    }
    if let Some(v) = &q.customer {
        let escaped = v
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        push(
            "customer_lc LIKE ? ESCAPE '\\'",
            Arg::Text(format!("%{escaped}%")),
        );
    }
    if let Some(t) = q.opened_from {
        push("first_seen >= ?", Arg::Int(t));
    }
    if let Some(t) = q.opened_before {
        push("first_seen < ?", Arg::Int(t));
    }
    if !q.ids.is_empty() {
        let mut marks = Vec::with_capacity(q.ids.len());
        for id in &q.ids {
            args.push(Arg::Text(id.clone()));
            marks.push(format!("${}", args.len()));
        }
        wh.push(format!("id IN ({})", marks.join(", ")));
    }
    if wh.is_empty() {
        wh.push("1 = 1".to_string());
    }
    (wh.join(" AND "), args)
}

fn bind_args<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
        };
    }
    q
}

pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.into(),
    }
}
