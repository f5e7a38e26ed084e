//! Copilot conversations and their turns. A turn is stored whole once it finished (its
//! message, answer, mode and the events it streamed), so reading a conversation back
//! replays exactly what the user saw.

use sqlx::Row;

use super::{Store, StoreError};

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
    .bind(&t.message)
    .bind(&t.answer)
    .bind(&t.mode)
    .bind(i64::from(t.fallback))
    .bind(t.context.to_string())
    .bind(t.events.to_string())
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
        write_turn(&mut tx, None, t).await?;
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
        let mut turns = rows
            .iter()
            .map(|r| {
                let fallback: i64 = r.try_get(7)?;
                let context: String = r.try_get(8)?;
                let events: String = r.try_get(9)?;
                Ok(TurnRow {
                    id: r.try_get(0)?,
                    conversation_id: r.try_get(1)?,
                    seq: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    message: r.try_get(4)?,
                    answer: r.try_get(5)?,
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
