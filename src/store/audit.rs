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
//!
//! Bodies (what was sent to a model and what it answered, see [`BODY_FIELDS`]) are not
//! in the hashed payload: each is replaced there by `{"body_sha256": <digest>}` and stored
//! sealed ([`super::seal`]) in `audit_bodies`. The chain covers the digests, so a body
//! dropped by retention ([`expire_bodies`]) leaves the chain intact, and a body that is
//! there must match its digest ([`open_bodies`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::{mpsc, oneshot};

use super::audit_key::Key;
use super::changes::{self, Applied, Change};
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
    /// Hash of this row: an HMAC under the audit key `key_id`, or a plain SHA-256 for a
    /// row from before the chain was keyed.
    pub hash: String,
    /// Which audit key signed the row (`None`: unkeyed legacy row).
    #[serde(default)]
    pub key_id: Option<String>,
}

fn field(h: &mut dyn FnMut(&[u8]), bytes: &[u8]) {
    h(&(bytes.len() as u64).to_be_bytes());
    h(bytes);
}

fn opt(h: &mut dyn FnMut(&[u8]), v: &Option<String>) {
    match v {
        Some(s) => {
            h(&[1]);
            field(h, s.as_bytes());
        }
        None => h(&[0]),
    }
}

fn opt_i(h: &mut dyn FnMut(&[u8]), v: Option<i64>) {
    match v {
        Some(i) => {
            h(&[1]);
            h(&i.to_be_bytes());
        }
        None => h(&[0]),
    }
}

/// Feed a row's fields to a hash: every field length-prefixed, so no two rows hash alike
/// by shifting bytes between fields.
fn encode(
    h: &mut dyn FnMut(&[u8]),
    seq: i64,
    at: i64,
    e: &AuditEvent,
    payload: &str,
    prev_hash: &str,
) {
    h(&seq.to_be_bytes());
    h(&at.to_be_bytes());
    field(h, e.kind.as_bytes());
    field(h, e.actor.as_bytes());
    opt(h, &e.conversation_id);
    opt(h, &e.case_id);
    opt(h, &e.model);
    opt_i(h, e.prompt_tokens);
    opt_i(h, e.completion_tokens);
    opt_i(h, e.latency_ms);
    opt(h, &e.policy_version);
    field(h, payload.as_bytes());
    field(h, prev_hash.as_bytes());
}

/// The unkeyed hash of a row (SHA-256): how rows were signed before the chain was keyed,
/// and all anyone without the key can compute.
pub fn row_hash(seq: i64, at: i64, e: &AuditEvent, payload: &str, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    encode(&mut |b: &[u8]| h.update(b), seq, at, e, payload, prev_hash);
    hex::encode(h.finalize())
}

/// The keyed hash of a row: an HMAC-SHA-256 under an audit key.
pub fn row_mac(
    key: &Key,
    seq: i64,
    at: i64,
    e: &AuditEvent,
    payload: &str,
    prev_hash: &str,
) -> String {
    key.mac(|f| encode(f, seq, at, e, payload, prev_hash))
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

/// Payload fields that are prompt or response bodies, per event kind: sealed at rest,
/// kept as their SHA-256 in the chain, dropped after `retention.body_days`.
pub const BODY_FIELDS: &[(&str, &[&str])] = &[
    ("llm.prompt", &["messages"]),
    ("llm.response", &["text", "tool_calls"]),
    ("chat.message", &["message"]),
    ("chat.answer", &["answer"]),
    ("copilot.tool", &["result"]),
];

/// The key a body's digest stands under in the hashed payload.
pub const BODY_DIGEST: &str = "body_sha256";

fn body_fields(kind: &str) -> &'static [&'static str] {
    BODY_FIELDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, f)| *f)
        .unwrap_or(&[])
}

/// Take the bodies out of an event's payload, leaving their digests: (field, JSON text).
fn take_bodies(e: &mut AuditEvent) -> Vec<(&'static str, String)> {
    let fields = body_fields(&e.kind);
    let Some(map) = e.payload.as_object_mut() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in fields {
        if let Some(v) = map.get_mut(*f)
            && !v.is_null()
        {
            let plain = v.to_string();
            let mut digest = serde_json::Map::new();
            digest.insert(
                BODY_DIGEST.to_string(),
                serde_json::Value::String(super::seal::digest(&plain)),
            );
            *v = serde_json::Value::Object(digest);
            out.push((*f, plain));
        }
    }
    out
}

fn body_aad(seq: i64, field: &str) -> String {
    format!("audit:{seq}:{field}")
}

/// A copilot turn to store with its audit events.
#[derive(Debug, Clone)]
pub struct TurnWrite {
    /// The conversation, when this turn starts it.
    pub conversation: Option<ConversationRow>,
    /// The finished turn.
    pub turn: TurnRow,
}

/// The events a state change produces, given what it did (none when it did nothing).
pub type ChangeEvents = Box<dyn FnOnce(Applied) -> Vec<AuditEvent> + Send>;

/// Events to append, with a turn to store beside them, or a state change whose events
/// they are.
struct Entry {
    events: Vec<AuditEvent>,
    turn: Option<TurnWrite>,
    change: Option<(Change, ChangeEvents)>,
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
    /// What the state change did (`Ok(Applied::Yes)` without one). A change that fails, or
    /// whose events fail, is rolled back with its events, alone.
    pub change: Result<Applied, String>,
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

    /// Apply a state change and append the events it produces in one transaction:
    /// both are stored, or neither. `events` sees what the change did (a lost
    /// compare-and-set usually produces none). Returns what it did and the events' seqs.
    pub async fn commit(
        &self,
        change: Change,
        events: impl FnOnce(Applied) -> Vec<AuditEvent> + Send + 'static,
    ) -> Result<(Applied, Vec<i64>), AuditError> {
        let w = self
            .send(Entry {
                events: Vec::new(),
                turn: None,
                change: Some((change, Box::new(events))),
            })
            .await?;
        let applied = w.change.map_err(AuditError::Write)?;
        Ok((applied, w.seqs))
    }

    async fn submit(
        &self,
        events: Vec<AuditEvent>,
        turn: Option<TurnWrite>,
    ) -> Result<Written, AuditError> {
        self.send(Entry {
            events,
            turn,
            change: None,
        })
        .await
    }

    async fn send(&self, entry: Entry) -> Result<Written, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((entry, ack))
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
    if let Err(e) = checkpoint_now(&store).await {
        tracing::error!(error = %e, "audit checkpoint not written");
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Write events in one transaction, chained to the current head. Returns their seqs.
pub async fn write_batch(store: &Store, events: Vec<AuditEvent>) -> Result<Vec<i64>, StoreError> {
    let entry = Entry {
        events,
        turn: None,
        change: None,
    };
    let mut written = write_entries(store, vec![entry]).await?;
    Ok(written.pop().map(|w| w.seqs).unwrap_or_default())
}

/// [`AuditLog::commit`] without the writer task (the CLI, which owns the store alone).
pub async fn commit_with(
    store: &Store,
    change: Change,
    events: impl FnOnce(Applied) -> Vec<AuditEvent> + Send + 'static,
) -> Result<Applied, StoreError> {
    let entry = Entry {
        events: Vec::new(),
        turn: None,
        change: Some((change, Box::new(events))),
    };
    let w = write_entries(store, vec![entry]).await?;
    match w.into_iter().next().map(|w| w.change) {
        Some(Ok(a)) => Ok(a),
        Some(Err(e)) => Err(super::corrupt("audited change", e)),
        None => Err(super::corrupt("audited change", "not written")),
    }
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
    } else {
        // Take SQLite's write lock before reading the head: a transaction that reads first
        // and writes later fails at once if another connection wrote in between.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
    }
    let head = sqlx::query("SELECT seq, hash, at, key_id FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (seq0, prev0, last_at, head_key): (i64, String, i64, Option<String>) = match head {
        Some(r) => (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?),
        None => (0, GENESIS.to_string(), 0, None),
    };
    let keys = store.audit_keys();
    if let Some(k) = head_key.as_deref().filter(|k| keys.get(k).is_none()) {
        return Err(StoreError::AuditKey(format!(
            "the audit chain's last row is signed with key {k}, but this process has key {} (and no retired key {k}): give every process on this database the same AUDIT_KEY (or the same audit.key file); rotate keys with `order-copilot audit rotate-key`",
            keys.current.id
        )));
    }
    let mut chain = Chain {
        seq: seq0,
        prev: prev0,
        // Time never runs backwards along the chain, even if the clock does.
        at: now_micros().max(last_at),
        key: keys.current.clone(),
    };
    if seq0 > 0 && head_key.as_deref() != Some(keys.current.id.as_str()) {
        // The chain so far is unkeyed (a log from before keying) or signed with a retired
        // key: the new key takes over here, with an audited event that chains to (and so
        // anchors) the rows before it.
        let from = head_key.unwrap_or_else(|| "unkeyed".into());
        let rotated = AuditEvent::new(
            "audit.key_rotated",
            "system",
            serde_json::json!({"from": from, "to": keys.current.id, "rows_before": seq0}),
        );
        insert_events(&mut tx, store.body_keys(), &mut chain, vec![rotated]).await?;
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let (seqs, change) = match entry.change {
            None => (
                insert_events(&mut tx, store.body_keys(), &mut chain, entry.events).await?,
                Ok(Applied::Yes),
            ),
            Some((change, events)) => {
                // The change and its events stand or fall together, apart from the batch.
                sqlx::query("SAVEPOINT change_write")
                    .execute(&mut *tx)
                    .await?;
                let before = chain.clone();
                let r = async {
                    let applied = changes::apply(&mut tx, &change).await?;
                    let seqs =
                        insert_events(&mut tx, store.body_keys(), &mut chain, events(applied))
                            .await?;
                    Ok::<_, StoreError>((applied, seqs))
                }
                .await;
                match r {
                    Ok((applied, seqs)) => {
                        sqlx::query("RELEASE SAVEPOINT change_write")
                            .execute(&mut *tx)
                            .await?;
                        (seqs, Ok(applied))
                    }
                    Err(e) => {
                        sqlx::query("ROLLBACK TO SAVEPOINT change_write")
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("RELEASE SAVEPOINT change_write")
                            .execute(&mut *tx)
                            .await?;
                        chain = before;
                        tracing::error!(error = %e, "audited change rolled back");
                        (Vec::new(), Err(e.to_string()))
                    }
                }
            }
        };
        let turn = match &entry.turn {
            None => Ok(()),
            Some(w) => {
                sqlx::query("SAVEPOINT turn_write")
                    .execute(&mut *tx)
                    .await?;
                match super::chat::write_turn(
                    &mut tx,
                    store.body_keys(),
                    w.conversation.as_ref(),
                    &w.turn,
                )
                .await
                {
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
        out.push(Written { seqs, turn, change });
    }
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(chain.seq)
    .bind(&chain.prev)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Err(e) = keys.checkpoint(chain.seq, &chain.prev, false) {
        tracing::error!(error = %e, "audit checkpoint not written");
    }
    Ok(out)
}

/// Append a checkpoint of the chain's head now.
pub async fn checkpoint_now(store: &Store) -> Result<(), StoreError> {
    let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(store.pool())
        .await?;
    if let Some(r) = head {
        let (seq, hash): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
        store.audit_keys().checkpoint(seq, &hash, true)?;
    }
    Ok(())
}

/// Where the chain stands while a batch extends it.
#[derive(Clone)]
struct Chain {
    seq: i64,
    prev: String,
    at: i64,
    key: Key,
}

/// Insert events at the end of the chain; returns their seqs.
async fn insert_events(
    conn: &mut sqlx::AnyConnection,
    bodies: &super::seal::BodyKeys,
    chain: &mut Chain,
    events: Vec<AuditEvent>,
) -> Result<Vec<i64>, StoreError> {
    let mut seqs = Vec::with_capacity(events.len());
    for mut e in events {
        redact(&mut e.payload);
        let taken = take_bodies(&mut e);
        chain.seq += 1;
        let payload = e.payload.to_string();
        let hash = row_mac(&chain.key, chain.seq, chain.at, &e, &payload, &chain.prev);
        sqlx::query(
            "INSERT INTO audit (seq, at, kind, actor, conversation_id, case_id, model, prompt_tokens, completion_tokens, latency_ms, policy_version, payload, prev_hash, hash, key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(chain.seq)
        .bind(chain.at)
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
        .bind(&chain.prev)
        .bind(&hash)
        .bind(&chain.key.id)
        .execute(&mut *conn)
        .await?;
        for (field, plain) in taken {
            let sealed = bodies.seal(&plain, &body_aad(chain.seq, field))?;
            sqlx::query("INSERT INTO audit_bodies (seq, field, at, body) VALUES ($1, $2, $3, $4)")
                .bind(chain.seq)
                .bind(field)
                .bind(chain.at)
                .bind(&sealed)
                .execute(&mut *conn)
                .await?;
        }
        chain.prev = hash;
        seqs.push(chain.seq);
    }
    Ok(seqs)
}

const COLUMNS: &str = "seq, at, kind, actor, conversation_id, case_id, model, prompt_tokens, completion_tokens, latency_ms, policy_version, payload, prev_hash, hash, key_id";

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
            key_id: r.try_get(14)?,
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
    /// Rows from before the chain was keyed (plain SHA-256), at its start. They verify
    /// as a chain, and the first keyed row anchors them, but someone who could write the
    /// database then could have rewritten them.
    pub legacy_rows: i64,
    /// Checkpoints outside the database the chain was checked against.
    pub checkpoints: usize,
}

impl Verification {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Why a row's hash does not check.
fn hash_problem(
    keys: &super::audit_key::AuditKeys,
    rec: &AuditRecord,
    payload: &str,
    keyed_from: Option<i64>,
) -> Option<String> {
    let plain = row_hash(rec.seq, rec.at, &rec.event, payload, &rec.prev_hash);
    match &rec.key_id {
        None => match keyed_from {
            Some(first) => Some(format!(
                "is unkeyed, but the keyed chain began at row {first}: the chain was recomputed without the key"
            )),
            None if plain != rec.hash => {
                Some("content does not match its hash (the row was edited)".into())
            }
            None => None,
        },
        Some(id) => {
            let Some(key) = keys.get(id) else {
                return Some(format!(
                    "is signed with key {id}, which this installation does not have (a retired key file is missing, or the row was forged)"
                ));
            };
            if row_mac(key, rec.seq, rec.at, &rec.event, payload, &rec.prev_hash) == rec.hash {
                None
            } else if plain == rec.hash {
                Some("carries a plain SHA-256 where its keyed hash belongs: the chain was recomputed without the key".into())
            } else {
                Some("content does not match its keyed hash (the row was edited)".into())
            }
        }
    }
}

/// Walk the whole chain in order and check every link and hash (keyed rows under their
/// key, the unkeyed prefix of an upgraded log as legacy), then the chain head kept in the
/// database and the checkpoints kept outside it.
pub async fn verify(
    store: &Store,
    mut progress: impl FnMut(i64),
) -> Result<Verification, StoreError> {
    let keys = store.audit_keys();
    let checkpoints = keys.checkpoints();
    let mut result = Verification {
        rows: 0,
        first_bad: None,
        legacy_rows: 0,
        checkpoints: checkpoints.as_ref().map(Vec::len).unwrap_or(0),
    };
    let checkpoints = match checkpoints {
        Ok(c) => c,
        Err(why) => {
            result.first_bad = Some((0, why));
            return Ok(result);
        }
    };
    let at_seq: std::collections::HashMap<i64, &super::audit_key::Checkpoint> =
        checkpoints.iter().map(|c| (c.seq, c)).collect();
    // The head is read once, after the checkpoints and before the rows: rows appended
    // while verifying (a live server, other replicas) are after it and not checked, instead
    // of looking like a head that ran ahead of the rows read.
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(store.pool())
        .await?
        .map(|h| Ok::<_, StoreError>((h.try_get::<i64, _>(0)?, h.try_get::<String, _>(1)?)))
        .transpose()?;
    let until = head.as_ref().map(|h| h.0).unwrap_or(i64::MAX);
    let mut expected_seq = 1i64;
    let mut prev = GENESIS.to_string();
    let mut last_at = i64::MIN;
    let mut keyed_from: Option<i64> = None;
    let page = 5_000i64;
    loop {
        let batch = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT {page}"
        )))
        .bind(expected_seq)
        .bind(until)
        .fetch_all(store.pool())
        .await?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            let (rec, payload) = record(r)?;
            result.rows += 1;
            let why = if rec.seq != expected_seq {
                result.first_bad = Some((
                    expected_seq,
                    format!(
                        "row {expected_seq} is missing (row {} follows {})",
                        rec.seq,
                        expected_seq - 1
                    ),
                ));
                return Ok(result);
            } else if rec.prev_hash != prev {
                Some("does not chain to the row before it (a row was removed, inserted or reordered)".to_string())
            } else if rec.at < last_at {
                Some("is timestamped before the row before it (reordered)".to_string())
            } else {
                hash_problem(keys, &rec, &payload, keyed_from)
            };
            let why = why.or_else(|| {
                at_seq.get(&rec.seq).filter(|c| c.hash != rec.hash).map(|c| {
                    format!(
                        "differs from the checkpoint written at {} (outside the database): the chain was rewritten up to here",
                        fmt_time(c.at)
                    )
                })
            });
            if let Some(why) = why {
                result.first_bad = Some((rec.seq, why));
                return Ok(result);
            }
            match rec.key_id {
                Some(_) if keyed_from.is_none() => keyed_from = Some(rec.seq),
                None => result.legacy_rows += 1,
                Some(_) => {}
            }
            prev = rec.hash;
            last_at = rec.at;
            expected_seq += 1;
        }
        progress(result.rows);
    }
    let last = expected_seq - 1;
    if let Some((seq, hash)) = head
        && (seq != last || hash != prev)
    {
        result.first_bad = Some((
            expected_seq,
            format!("rows {expected_seq}..={seq} are missing from the end of the log"),
        ));
        return Ok(result);
    }
    if let Some(c) = checkpoints
        .iter()
        .filter(|c| c.seq > last)
        .max_by_key(|c| c.seq)
    {
        result.first_bad = Some((
            expected_seq,
            format!(
                "rows {expected_seq}..={} were deleted from the end of the log (the checkpoint written at {} outside the database recorded {} rows)",
                c.seq,
                fmt_time(c.at),
                c.seq
            ),
        ));
    }
    Ok(result)
}

fn fmt_time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| us.to_string())
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

/// Write every row from `since` (Unix µs) on as JSON Lines, bodies opened
/// ([`open_bodies`]); returns the count.
pub async fn export(
    store: &Store,
    since: i64,
    out: &mut (dyn std::io::Write + Send),
) -> Result<i64, StoreError> {
    export_with(store, since, true, out).await
}

/// [`export`], with bodies opened or left as their digests (`open`: false), as stored.
pub async fn export_with(
    store: &Store,
    since: i64,
    open: bool,
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
        let mut recs = rows
            .iter()
            .map(|r| record(r).map(|x| x.0))
            .collect::<Result<Vec<_>, _>>()?;
        if open {
            open_bodies(store, &mut recs).await?;
        }
        for rec in &recs {
            after = rec.seq;
            let line = serde_json::to_string(&rec)
                .map_err(|e| super::corrupt("audit row", e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| super::corrupt("export output", e.to_string()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Put the bodies back into records read from the log (for holders of `read_audit`):
/// each `{"body_sha256": …}` becomes the body, decrypted and checked against its digest.
/// A body past its retention stays its digest, marked `"expired": true`; one that does not
/// open or match keeps its digest with an `"error"` saying why. Rows from before bodies
/// were sealed carry their bodies inline and are left as they are.
pub async fn open_bodies(store: &Store, recs: &mut [AuditRecord]) -> Result<(), StoreError> {
    let seqs: Vec<i64> = recs
        .iter()
        .filter(|r| !body_fields(&r.event.kind).is_empty())
        .map(|r| r.seq)
        .collect();
    let mut found: std::collections::HashMap<(i64, String), String> =
        std::collections::HashMap::new();
    for chunk in seqs.chunks(500) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // The list is integers formatted here, never caller text.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT seq, field, body FROM audit_bodies WHERE seq IN ({list})"
        )))
        .fetch_all(store.pool())
        .await?;
        for r in rows {
            found.insert((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?);
        }
    }
    let keys = store.body_keys();
    for rec in recs.iter_mut() {
        let seq = rec.seq;
        let fields = body_fields(&rec.event.kind);
        let Some(map) = rec.event.payload.as_object_mut() else {
            continue;
        };
        for f in fields {
            let Some(slot) = map.get_mut(*f) else {
                continue;
            };
            let Some(digest) = slot
                .get(BODY_DIGEST)
                .and_then(|d| d.as_str())
                .map(str::to_string)
            else {
                continue; // Inline: a row from before bodies were sealed.
            };
            let problem = match found.remove(&(seq, f.to_string())) {
                None => Some(("expired", serde_json::Value::Bool(true))),
                Some(sealed) => match keys.open(&sealed, &body_aad(seq, f)) {
                    Ok(plain) if super::seal::digest(&plain) == digest => {
                        *slot = serde_json::from_str(&plain)
                            .unwrap_or(serde_json::Value::String(plain));
                        None
                    }
                    Ok(_) => Some((
                        "error",
                        "the stored body does not match the digest the chain holds".into(),
                    )),
                    Err(e) => Some(("error", e.to_string().into())),
                },
            };
            if let Some((k, v)) = problem
                && let Some(o) = slot.as_object_mut()
            {
                o.insert(k.to_string(), v);
            }
        }
    }
    Ok(())
}

/// What a retention run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Expired {
    /// Audit bodies dropped (their digests stay in the chain).
    pub audit_bodies: u64,
    /// Conversation turns whose question, answer and events became their digests.
    pub turns: u64,
    /// Audit rows older than the cut-off that carry their bodies inline (written before
    /// bodies were sealed): kept, since rewriting them would break the chain.
    pub legacy_rows: u64,
}

impl Expired {
    /// The audit event recording a run (`retention.expired`).
    pub fn event(&self, before: i64, body_days: u32) -> AuditEvent {
        AuditEvent::new(
            "retention.expired",
            "system",
            serde_json::json!({"before": before, "body_days": body_days,
                               "audit_bodies": self.audit_bodies, "turns": self.turns,
                               "legacy_rows_kept": self.legacy_rows}),
        )
    }
}

/// Drop every body stored before `before` (Unix µs): sealed audit bodies are deleted
/// (the chain keeps their digests) and conversation turns' texts become
/// `expired:sha256:<digest>`.
pub async fn expire_bodies(store: &Store, before: i64) -> Result<Expired, StoreError> {
    let mut out = Expired::default();
    let r = sqlx::query("DELETE FROM audit_bodies WHERE at < $1")
        .bind(before)
        .execute(store.pool())
        .await?;
    out.audit_bodies = r.rows_affected();
    out.turns = super::chat::expire_turns(store, before).await?;
    let kinds = BODY_FIELDS
        .iter()
        .map(|(k, _)| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(",");
    // Kinds are the constants above, never caller text.
    let legacy: i64 = sqlx::query(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM audit WHERE at < $1 AND kind IN ({kinds}) AND payload NOT LIKE '%\"{BODY_DIGEST}\"%'"
    )))
    .bind(before)
    .fetch_one(store.pool())
    .await?
    .try_get(0)?;
    out.legacy_rows = legacy.max(0) as u64;
    Ok(out)
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
