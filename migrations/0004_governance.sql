-- Separation of duties and a keyed audit chain. Portable SQL (SQLite and PostgreSQL).

-- What the policy required when the request was made: how many distinct people must
-- approve, whether the requester may be one of them, and the order value that chose the
-- count (decimal text; NULL when unknown). Requests made before this migration keep one
-- approver; their requester may not approve (the stricter reading).
ALTER TABLE approvals ADD COLUMN approvers_needed INTEGER NOT NULL DEFAULT 1;
ALTER TABLE approvals ADD COLUMN requester_may_approve INTEGER NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN order_value TEXT;

-- Every decision on a request, one row per person: a request needing two approvers keeps
-- both, and the same person cannot count twice.
CREATE TABLE approval_decisions (
    approval_id  TEXT NOT NULL,
    decided_by   TEXT NOT NULL,
    role         TEXT NOT NULL,
    decision     TEXT NOT NULL,
    reason       TEXT,
    decided_at   BIGINT NOT NULL,
    PRIMARY KEY (approval_id, decided_by)
);

-- Which key signed a row's hash (an HMAC under a key kept outside the database); NULL for
-- rows written before the chain was keyed (plain SHA-256, verified as legacy).
ALTER TABLE audit ADD COLUMN key_id TEXT;
