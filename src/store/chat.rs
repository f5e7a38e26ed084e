//! Copilot conversations and their turns. A turn is stored whole once it finished (its
//! message, answer, mode and the events it streamed), so reading a conversation back
//! replays exactly what the user saw.
//!
//! The question, the answer and the streamed events are sealed at rest
//! ([`super::seal`]); turns from before that are read as they are. Retention
//! ([`expire_turns`]) replaces them with `expired:sha256:<digest>` (the events with `[]`).

use sqlx::Row;

use super::seal::{self, BodyKeys};
use super::{Store, StoreError};

/// What an expired turn's question and answer start with.
pub const EXPIRED: &str = "expired:sha256:";

fn aad(turn: &str, column: &str) -> String {
    format!("turn:{turn}:{column}")
}

fn open(keys: &BodyKeys, turn: &str, column: &str, stored: String) -> Result<String, StoreError> {
    if !seal::is_sealed(&stored) {
        return Ok(stored);
    }
    keys.open(&stored, &aad(turn, column))
        .map_err(|e| super::corrupt("conversation_turns", format!("turn {turn} {column}: {e}")))
}

/// One stored turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRow {
    /// Turn id.
    pub id: String,
    /// Conversation it belongs to.
    pub conversation_id: String,
    /// Position in the conversation, from 1.
    pub seq: i64,
    /// Who asked.
    pub actor: String,
    /// The question.
    pub message: String,
    /// The answer text.
    pub answer: String,
    /// `offline` or `openai`.
    pub mode: String,
    /// Whether the turn fell back to offline answers.
    pub fallback: bool,
    /// What the turn was about, JSON.
    pub context: serde_json::Value,
    /// The streamed events, a JSON array.
    pub events: serde_json::Value,
    /// When (Unix µs).
    pub created_at: i64,
}

/// A conversation's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    /// Conversation id.
    pub id: String,
    /// User name of its owner.
    pub owner: String,
    /// The owner's role when it started.
    pub role: String,
    /// Created (Unix µs).
    pub created_at: i64,
}

fn json(what: &'static str, s: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|e| super::corrupt(what, e.to_string()))
}

async fn insert_conversation(
    conn: &mut sqlx::AnyConnection,
    c: &ConversationRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversations (id, owner, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&c.id)
    .bind(&c.owner)
    .bind(&c.role)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Write a finished turn (and its conversation, when the turn is the first) on a
/// connection inside the caller's transaction.
pub(super) async fn write_turn(
    conn: &mut sqlx::AnyConnection,
    keys: &BodyKeys,
    conversation: Option<&ConversationRow>,
    t: &TurnRow,
) -> Result<(), StoreError> {
    if let Some(c) = conversation {
        insert_conversation(conn, c).await?;
    }
    sqlx::query(
        "INSERT INTO conversation_turns (id, conversation_id, seq, actor, message, answer, mode, fallback, context_json, events_json, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&t.id)
    .bind(&t.conversation_id)
    .bind(t.seq)
    .bind(&t.actor)
    .bind(keys.seal(&t.message, &aad(&t.id, "message"))?)
    .bind(keys.seal(&t.answer, &aad(&t.id, "answer"))?)
    .bind(&t.mode)
    .bind(i64::from(t.fallback))
    .bind(t.context.to_string())
    .bind(keys.seal(&t.events.to_string(), &aad(&t.id, "events"))?)
    .bind(t.created_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE conversations SET updated_at = $2 WHERE id = $1")
        .bind(&t.conversation_id)
        .bind(t.created_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// Start a conversation.
    pub async fn insert_conversation(&self, c: &ConversationRow) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert_conversation(&mut conn, c).await
    }

    /// One conversation.
    pub async fn get_conversation(&self, id: &str) -> Result<Option<ConversationRow>, StoreError> {
        let row =
            sqlx::query("SELECT id, owner, role, created_at FROM conversations WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(ConversationRow {
                id: r.try_get(0)?,
                owner: r.try_get(1)?,
                role: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Store a finished turn; its `seq` must be the next one (a concurrent turn of the
    /// same conversation that took the number first makes this fail, never overwrite).
    /// The copilot stores its turns through the audit writer instead
    /// ([`super::audit::AuditLog::append_turn`]), in the transaction of the turn's events.
    pub async fn insert_turn(&self, t: &TurnRow) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        write_turn(&mut tx, self.body_keys(), None, t).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The turns of a conversation, oldest first (at most the last `limit`).
    pub async fn list_turns(
        &self,
        conversation_id: &str,
        limit: i64,
    ) -> Result<Vec<TurnRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, seq, actor, message, answer, mode, fallback, context_json, events_json, created_at \
             FROM conversation_turns WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(conversation_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        let keys = self.body_keys();
        let mut turns = rows
            .iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let fallback: i64 = r.try_get(7)?;
                let context: String = r.try_get(8)?;
                let events = open(keys, &id, "events", r.try_get(9)?)?;
                Ok(TurnRow {
                    message: open(keys, &id, "message", r.try_get(4)?)?,
                    answer: open(keys, &id, "answer", r.try_get(5)?)?,
                    id,
                    conversation_id: r.try_get(1)?,
                    seq: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    mode: r.try_get(6)?,
                    fallback: fallback != 0,
                    context: json("conversation_turns.context_json", &context)?,
                    events: json("conversation_turns.events_json", &events)?,
                    created_at: r.try_get(10)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        turns.reverse();
        Ok(turns)
    }
}

/// Replace the question, answer and events of every turn stored before `before` (Unix
/// µs) with their digests; returns how many turns changed.
pub(super) async fn expire_turns(store: &Store, before: i64) -> Result<u64, StoreError> {
    let keys = store.body_keys();
    let mut n = 0u64;
    loop {
        let rows = sqlx::query(
            "SELECT id, message, answer, events_json FROM conversation_turns \
             WHERE created_at < $1 AND message NOT LIKE 'expired:%' LIMIT 500",
        )
        .bind(before)
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            return Ok(n);
        }
        let mut tx = store.pool().begin().await?;
        for r in &rows {
            let id: String = r.try_get(0)?;
            let gone = |column: &str, stored: String| -> Result<String, StoreError> {
                Ok(format!(
                    "{EXPIRED}{}",
                    seal::digest(&open(keys, &id, column, stored)?)
                ))
            };
            let message = gone("message", r.try_get(1)?)?;
            let answer = gone("answer", r.try_get(2)?)?;
            sqlx::query(
                "UPDATE conversation_turns SET message = $2, answer = $3, events_json = '[]' WHERE id = $1",
            )
            .bind(&id)
            .bind(&message)
            .bind(&answer)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
    }
}
