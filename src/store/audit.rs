//! The append-only, hash-chained audit log.
//!
//! Every event (prompt sent, model response, tool call and result, retrieval, approval
//! requested/decided, action executed, policy loaded, login failure, case decisions) is one
//! row. Each row stores the hash of the previous row and its own hash over all its fields,
//! so [`verify`] detects any edited, deleted or reordered row and names the first bad one;
//! the chain head is also kept beside the log so cutting rows off the end is caught too.
//!
//! Appends go through one writer task ([`AuditLog`]) that batches whatever is queued into
//! one transaction — one fsync for many events — and acknowledges each event only after
//! its batch committed. An acknowledged event is therefore never lost. A copilot turn's
//! stored conversation rows ride in the same transaction as its events
//! ([`AuditLog::append_turn`]): two hundred concurrent turns cost one commit, not two
//! hundred, and a turn is never stored without its audit trail.
//!
//! Secrets never enter: payload keys that name credentials are replaced by `<redacted>`
//! before hashing, whatever the caller passed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::{mpsc, oneshot};

use super::chat::{ConversationRow, TurnRow};
use super::{Backend, Store, StoreError};

/// The hash the first row chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most events written in one transaction.
const MAX_BATCH: usize = 2048;

/// An event to append.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    /// What happened (`approval.requested`, `llm.prompt`, `auth.failed`, …).
    pub kind: String,
    /// Who (user name, `system`, `copilot`).
    pub actor: String,
    /// Conversation id.
    pub conversation_id: Option<String>,
    /// Case id.
    pub case_id: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Prompt tokens.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens.
    pub completion_tokens: Option<i64>,
    /// Latency in milliseconds.
    pub latency_ms: Option<i64>,
    /// Policy version in force.
    pub policy_version: Option<String>,
    /// Details.
    pub payload: serde_json::Value,
}

impl AuditEvent {
    /// An event with a kind, an actor and a payload.
    pub fn new(kind: &str, actor: &str, payload: serde_json::Value) -> AuditEvent {
        AuditEvent {
            kind: kind.to_string(),
            actor: actor.to_string(),
            payload,
            ..AuditEvent::default()
        }
    }

    /// With a case id.
    pub fn case(mut self, id: &str) -> Self {
        self.case_id = Some(id.to_string());
        self
    }

    /// With a policy version.
    pub fn policy(mut self, v: &str) -> Self {
        self.policy_version = Some(v.to_string());
        self
    }
}

/// A stored audit row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When (Unix µs).
    pub at: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hash of the previous row.
    pub prev_hash: String,
    /// Hash of this row.
    pub hash: String,
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn opt(h: &mut Sha256, v: &Option<String>) {
    match v {
        Some(s) => {
            h.update([1]);
            field(h, s.as_bytes());
        }
        None => h.update([0]),
    }
}

fn opt_i(h: &mut Sha256, v: Option<i64>) {
    match v {
        Some(i) => {
            h.update([1]);
            h.update(i.to_be_bytes());
        }
        None => h.update([0]),
    }
}

/// The hash of a row: every field length-prefixed, so no two rows hash alike by shifting
/// bytes between fields.
pub fn row_hash(seq: i64, at: i64, e: &AuditEvent, payload: &str, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    field(&mut h, e.kind.as_bytes());
    field(&mut h, e.actor.as_bytes());
    opt(&mut h, &e.conversation_id);
    opt(&mut h, &e.case_id);
    opt(&mut h, &e.model);
    opt_i(&mut h, e.prompt_tokens);
    opt_i(&mut h, e.completion_tokens);
    opt_i(&mut h, e.latency_ms);
    opt(&mut h, &e.policy_version);
    field(&mut h, payload.as_bytes());
    field(&mut h, prev_hash.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Keys whose values never enter the log.
fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "bearer",
        "cookie",
    ]
    .iter()
    .any(|s| k.contains(s))
        && !k.ends_with("_tokens")
        && k != "tokens"
}

/// Replace credential values anywhere in a payload.
pub fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if secret_key(k) && !val.is_null() {
                    *val = serde_json::Value::String("<redacted>".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A copilot turn to store with its audit events.
#[derive(Debug, Clone)]
pub struct TurnWrite {
    /// The conversation, when this turn starts it.
    pub conversation: Option<ConversationRow>,
    /// The finished turn.
    pub turn: TurnRow,
}

/// Events to append, with a turn to store beside them.
struct Entry {
    events: Vec<AuditEvent>,
    turn: Option<TurnWrite>,
}

/// What an entry got once its batch committed.
#[derive(Debug, Clone)]
pub struct Written {
    /// The events' sequence numbers, in order.
    pub seqs: Vec<i64>,
    /// Whether the turn was stored (always `Ok` without one). A turn that cannot be
    /// stored (another turn of the conversation took its number) fails alone: its events
    /// and the rest of the batch are still written.
    pub turn: Result<(), String>,
}

type Pending = (Entry, oneshot::Sender<Result<Written, String>>);

/// Handle to the audit writer task. Cloning shares the task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

/// The writer task. [`AuditWriter::finish`] writes everything already queued, then stops
/// (appends after that fail with [`AuditError::Closed`]), whether or not handles remain.
pub struct AuditWriter {
    task: tokio::task::JoinHandle<()>,
    close: oneshot::Sender<()>,
}

impl AuditWriter {
    /// Drain what is queued to disk and stop the writer.
    pub async fn finish(self) {
        let _ = self.close.send(());
        let _ = self.task.await;
    }
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The writer is gone (shutting down).
    #[error("audit log is closed")]
    Closed,
    /// The batch could not be written.
    #[error("audit write failed: {0}")]
    Write(String),
}

impl AuditLog {
    /// Start the writer task over a store.
    pub fn start(store: Store) -> (AuditLog, AuditWriter) {
        let (tx, rx) = mpsc::channel::<Pending>(16_384);
        let (close, closed) = oneshot::channel();
        let task = tokio::spawn(writer(store, rx, closed));
        (AuditLog { tx }, AuditWriter { task, close })
    }

    /// Append an event; returns its sequence number once it is durably stored.
    pub async fn append(&self, event: AuditEvent) -> Result<i64, AuditError> {
        let written = self.submit(vec![event], None).await?;
        written.seqs.first().copied().ok_or(AuditError::Closed)
    }

    /// Append a turn's events and store the turn (and its new conversation) in the same
    /// transaction; returns once both are durable.
    pub async fn append_turn(
        &self,
        events: Vec<AuditEvent>,
        turn: TurnWrite,
    ) -> Result<Written, AuditError> {
        self.submit(events, Some(turn)).await
    }

    async fn submit(
        &self,
        events: Vec<AuditEvent>,
        turn: Option<TurnWrite>,
    ) -> Result<Written, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((Entry { events, turn }, ack))
            .await
            .map_err(|_| AuditError::Closed)?;
        match done.await {
            Ok(Ok(w)) => Ok(w),
            Ok(Err(e)) => Err(AuditError::Write(e)),
            Err(_) => Err(AuditError::Closed),
        }
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Pending>, mut closed: oneshot::Receiver<()>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut acks = Vec::new();
    let mut closing = false;
    loop {
        let next = if closing {
            // Drain what was queued before the close, then stop.
            match rx.try_recv() {
                Ok(p) => p,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                biased;
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
                _ = &mut closed => {
                    closing = true;
                    rx.close();
                    continue;
                }
            }
        };
        let mut events = next.0.events.len();
        entries.push(next.0);
        acks.push(next.1);
        while events < MAX_BATCH {
            match rx.try_recv() {
                Ok((entry, ack)) => {
                    events += entry.events.len();
                    entries.push(entry);
                    acks.push(ack);
                }
                Err(_) => break,
            }
        }
        match write_entries(&store, std::mem::take(&mut entries)).await {
            Ok(written) => {
                for (ack, w) in acks.drain(..).zip(written) {
                    let _ = ack.send(Ok(w));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit batch failed");
                let msg = e.to_string();
                for ack in acks.drain(..) {
                    let _ = ack.send(Err(msg.clone()));
                }
            }
        }
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Write events in one transaction, chained to the current head. Returns their seqs.
pub async fn write_batch(store: &Store, events: Vec<AuditEvent>) -> Result<Vec<i64>, StoreError> {
    let mut written = write_entries(store, vec![Entry { events, turn: None }]).await?;
    Ok(written.pop().map(|w| w.seqs).unwrap_or_default())
}

/// Write entries in one transaction: their events chained to the current head, in order,
/// and each entry's turn inside a savepoint of its own.
async fn write_entries(store: &Store, entries: Vec<Entry>) -> Result<Vec<Written>, StoreError> {
    let mut tx = store.pool().begin().await?;
    if store.backend() == Backend::Postgres {
        // Several replicas may append: serialise chain extension across them.
        sqlx::query("SELECT pg_advisory_xact_lock(726354)")
            .execute(&mut *tx)
            .await?;
    }
    let head = sqlx::query("SELECT seq, hash, at FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (mut seq, mut prev, last_at): (i64, String, i64) = match head {
        Some(r) => (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?),
        None => (0, GENESIS.to_string(), 0),
    };
    // Time never runs backwards along the chain, even if the clock does.
    let at = now_micros().max(last_at);
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut seqs = Vec::with_capacity(entry.events.len());
        for mut e in entry.events {
            redact(&mut e.payload);
            seq += 1;
            let payload = e.payload.to_string();
            let hash = row_hash(seq, at, &e, &payload, &prev);
            sqlx::query(
                "INSERT INTO audit (seq, at, kind, actor, conversation_id, case_id, model, prompt_tokens, completion_tokens, latency_ms, policy_version, payload, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(seq)
            .bind(at)
            .bind(&e.kind)
            .bind(&e.actor)
            .bind(e.conversation_id.as_deref())
            .bind(e.case_id.as_deref())
            .bind(e.model.as_deref())
            .bind(e.prompt_tokens)
            .bind(e.completion_tokens)
            .bind(e.latency_ms)
            .bind(e.policy_version.as_deref())
            .bind(&payload)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            prev = hash;
            seqs.push(seq);
        }
        let turn = match &entry.turn {
            None => Ok(()),
            Some(w) => {
                sqlx::query("SAVEPOINT turn_write")
                    .execute(&mut *tx)
                    .await?;
                match super::chat::write_turn(&mut tx, w.conversation.as_ref(), &w.turn).await {
                    Ok(()) => {
                        sqlx::query("RELEASE SAVEPOINT turn_write")
                            .execute(&mut *tx)
                            .await?;
                        Ok(())
                    }
                    Err(e) => {
                        sqlx::query("ROLLBACK TO SAVEPOINT turn_write")
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("RELEASE SAVEPOINT turn_write")
                            .execute(&mut *tx)
                            .await?;
                        Err(e.to_string())
                    }
                }
            }
        };
        out.push(Written { seqs, turn });
    }
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(seq)
    .bind(&prev)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(out)
}

const COLUMNS: &str = "seq, at, kind, actor, conversation_id, case_id, model, prompt_tokens, completion_tokens, latency_ms, policy_version, payload, prev_hash, hash";

fn record(r: &sqlx::any::AnyRow) -> Result<(AuditRecord, String), StoreError> {
    let payload: String = r.try_get(11)?;
    let value =
        serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload.clone()));
    Ok((
        AuditRecord {
            seq: r.try_get(0)?,
            at: r.try_get(1)?,
            event: AuditEvent {
                kind: r.try_get(2)?,
                actor: r.try_get(3)?,
                conversation_id: r.try_get(4)?,
                case_id: r.try_get(5)?,
                model: r.try_get(6)?,
                prompt_tokens: r.try_get(7)?,
                completion_tokens: r.try_get(8)?,
                latency_ms: r.try_get(9)?,
                policy_version: r.try_get(10)?,
                payload: value,
            },
            prev_hash: r.try_get(12)?,
            hash: r.try_get(13)?,
        },
        payload,
    ))
}

/// Result of verifying the chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    /// Rows checked.
    pub rows: i64,
    /// The first bad row's sequence number and what is wrong with it, if any.
    pub first_bad: Option<(i64, String)>,
}

impl Verification {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Walk the whole chain in order and check every link and hash.
pub async fn verify(
    store: &Store,
    mut progress: impl FnMut(i64),
) -> Result<Verification, StoreError> {
    let mut expected_seq = 1i64;
    let mut prev = GENESIS.to_string();
    let mut last_at = i64::MIN;
    let mut rows = 0i64;
    let page = 5_000i64;
    loop {
        let batch = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit WHERE seq >= $1 ORDER BY seq LIMIT {page}"
        )))
        .bind(expected_seq)
        .fetch_all(store.pool())
        .await?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            let (rec, payload) = record(r)?;
            rows += 1;
            let bad = |why: String| {
                Ok(Verification {
                    rows,
                    first_bad: Some((rec.seq, why)),
                })
            };
            if rec.seq != expected_seq {
                return Ok(Verification {
                    rows,
                    first_bad: Some((
                        expected_seq,
                        format!(
                            "row {expected_seq} is missing (row {} follows {})",
                            rec.seq,
                            expected_seq - 1
                        ),
                    )),
                });
            }
            if rec.prev_hash != prev {
                return bad("does not chain to the row before it (a row was removed, inserted or reordered)".into());
            }
            if rec.at < last_at {
                return bad("is timestamped before the row before it (reordered)".into());
            }
            let hash = row_hash(rec.seq, rec.at, &rec.event, &payload, &rec.prev_hash);
            if hash != rec.hash {
                return bad("content does not match its hash (the row was edited)".into());
            }
            prev = rec.hash;
            last_at = rec.at;
            expected_seq += 1;
        }
        progress(rows);
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(store.pool())
        .await?;
    if let Some(h) = head {
        let (seq, hash): (i64, String) = (h.try_get(0)?, h.try_get(1)?);
        if seq != expected_seq - 1 || hash != prev {
            return Ok(Verification {
                rows,
                first_bad: Some((
                    expected_seq,
                    format!("rows {expected_seq}..={seq} are missing from the end of the log"),
                )),
            });
        }
    }
    Ok(Verification {
        rows,
        first_bad: None,
    })
}

/// Filters for audit search.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// Event kind (exact) or prefix ending in `.` (`approval.`).
    pub kind: Option<String>,
    /// Actor.
    pub actor: Option<String>,
    /// Case id.
    pub case_id: Option<String>,
    /// Conversation id.
    pub conversation_id: Option<String>,
    /// From this time (Unix µs).
    pub since: Option<i64>,
    /// Only rows after this seq (pagination).
    pub after_seq: Option<i64>,
    /// Newest first (default) or oldest first.
    pub ascending: Option<bool>,
    /// Page size.
    pub limit: Option<i64>,
}

/// Search the log.
pub async fn search(store: &Store, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    let mut wh = vec!["1 = 1".to_string()];
    let mut strs: Vec<String> = Vec::new();
    let mut ints: Vec<(usize, i64)> = Vec::new();
    let mut n = 0usize;
    let mut next = || {
        n += 1;
        n
    };
    if let Some(k) = &q.kind {
        let i = next();
        if k.ends_with('.') {
            wh.push(format!("kind LIKE ${i}"));
            strs.push(format!("{k}%"));
        } else {
            wh.push(format!("kind = ${i}"));
            strs.push(k.clone());
        }
    }
    for (col, v) in [
        ("actor", &q.actor),
        ("case_id", &q.case_id),
        ("conversation_id", &q.conversation_id),
    ] {
        if let Some(v) = v {
            let i = next();
            wh.push(format!("{col} = ${i}"));
            strs.push(v.clone());
        }
    }
    let mut int_clauses = Vec::new();
    if let Some(s) = q.since {
        int_clauses.push(("at >=", s));
    }
    if let Some(s) = q.after_seq {
        int_clauses.push((
            if q.ascending.unwrap_or(false) {
                "seq >"
            } else {
                "seq <"
            },
            s,
        ));
    }
    for (c, v) in int_clauses {
        let i = next();
        wh.push(format!("{c} ${i}"));
        ints.push((i, v));
    }
    let dir = if q.ascending.unwrap_or(false) {
        "ASC"
    } else {
        "DESC"
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit WHERE {} ORDER BY seq {dir} LIMIT {}",
        wh.join(" AND "),
        q.limit.unwrap_or(100).clamp(1, 10_000)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
    for s in &strs {
        query = query.bind(s);
    }
    for (_, v) in &ints {
        query = query.bind(*v);
    }
    let rows = query.fetch_all(store.pool()).await?;
    rows.iter().map(|r| record(r).map(|x| x.0)).collect()
}

/// Write every row from `since` (Unix µs) on as JSON Lines; returns the count.
pub async fn export(
    store: &Store,
    since: i64,
    out: &mut (dyn std::io::Write + Send),
) -> Result<i64, StoreError> {
    let mut after = 0i64;
    let mut n = 0i64;
    loop {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT 5000"
        )))
        .bind(after)
        .bind(since)
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let (rec, _) = record(r)?;
            after = rec.seq;
            let line = serde_json::to_string(&rec)
                .map_err(|e| super::corrupt("audit row", e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| super::corrupt("export output", e.to_string()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({"token": "abc", "nested": [{"api_key": "k", "ok": 1}],
            "Authorization": "Bearer x", "prompt_tokens": 12, "password": null});
        redact(&mut v);
        assert_eq!(v["token"], "<redacted>");
        assert_eq!(v["nested"][0]["api_key"], "<redacted>");
        assert_eq!(v["nested"][0]["ok"], 1);
        assert_eq!(v["Authorization"], "<redacted>");
        assert_eq!(v["prompt_tokens"], 12);
        assert!(v["password"].is_null());
    }

    #[test]
    fn hash_covers_every_field() {
        let e = AuditEvent::new("k", "a", serde_json::json!({}));
        let base = row_hash(1, 2, &e, "{}", GENESIS);
        assert_ne!(base, row_hash(2, 2, &e, "{}", GENESIS));
        assert_ne!(base, row_hash(1, 3, &e, "{}", GENESIS));
        assert_ne!(base, row_hash(1, 2, &e, "{ }", GENESIS));
        assert_ne!(base, row_hash(1, 2, &e.clone().case("c"), "{}", GENESIS));
        let mut m = e.clone();
        m.latency_ms = Some(1);
        assert_ne!(base, row_hash(1, 2, &m, "{}", GENESIS));
        // Moving bytes between fields changes the hash.
        let a = AuditEvent::new("ab", "c", serde_json::json!({}));
        let b = AuditEvent::new("a", "bc", serde_json::json!({}));
        assert_ne!(
            row_hash(1, 2, &a, "{}", GENESIS),
            row_hash(1, 2, &b, "{}", GENESIS)
        );
    }
}
