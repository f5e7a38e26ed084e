-- Token expiry (issue 15): when a token stops working (Unix µs); NULL = never. Tokens
-- created before this migration never expire. Portable SQL (SQLite and PostgreSQL).
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;

-- The cost guard sums a person's model tokens per day from the copilot's answers.
CREATE INDEX audit_kind_at ON audit (kind, at);
