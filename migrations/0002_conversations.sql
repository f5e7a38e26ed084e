-- Copilot conversations: who owns each, and every turn with the events it streamed, so a
-- conversation can be resumed and read back. Portable SQL (SQLite and PostgreSQL); times
-- are Unix microseconds.

CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX conversations_owner ON conversations (owner, updated_at);

CREATE TABLE conversation_turns (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    actor            TEXT NOT NULL,
    message          TEXT NOT NULL,
    answer           TEXT NOT NULL,
    mode             TEXT NOT NULL,
    fallback         BIGINT NOT NULL,
    -- What the turn was about (order, customer, product, intent), for follow-up questions.
    context_json     TEXT NOT NULL,
    events_json      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    UNIQUE (conversation_id, seq)
);
