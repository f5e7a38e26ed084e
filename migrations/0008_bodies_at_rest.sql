-- Prompt and response bodies at rest (src/store/seal.rs). Portable SQL (SQLite and
-- PostgreSQL); times are Unix microseconds.
--
-- An audit row of a body-carrying kind (llm.prompt, llm.response, chat.message,
-- chat.answer, copilot.tool) keeps in its hashed payload only each body's SHA-256; the
-- body itself is here, sealed with the body key (outside the database). Retention deletes
-- these rows once they are older than `retention.body_days`: the chain, which covers only
-- the digests, still verifies. Rows written before this migration keep their bodies in
-- the payload, in plain text, and are read as before.
CREATE TABLE audit_bodies (
    seq    BIGINT NOT NULL,
    field  TEXT NOT NULL,
    at     BIGINT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (seq, field)
);
CREATE INDEX audit_bodies_at ON audit_bodies (at);

-- conversation_turns.message, .answer and .events_json hold sealed text from now on
-- (`sealed:v1:…`); older rows stay plain and are read as they are. Retention replaces
-- them with `expired:sha256:<digest>` (and the events with `[]`).
CREATE INDEX conversation_turns_created ON conversation_turns (created_at);
