-- Cases, approvals, identity and the audit log. Portable SQL: the same file runs on
-- SQLite and PostgreSQL. Times are Unix microseconds;
-- money is stored as decimal text beside an integer in cents for sorting.

CREATE TABLE cases (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    order_ref       TEXT NOT NULL,
    customer        TEXT NOT NULL,
    -- Lowercased once at write time: the queue's customer search compares it directly.
    customer_lc     TEXT NOT NULL,
    tier            TEXT NOT NULL,
    warehouse       TEXT,
    product         TEXT,
    owner_role      TEXT NOT NULL,
    severity        TEXT NOT NULL,
    score           INTEGER NOT NULL,
    revenue_cents   BIGINT NOT NULL,
    title           TEXT NOT NULL,
    status          TEXT NOT NULL,
    -- 1 while open or acknowledged: the queue's equality predicate, so its index also
    -- gives the ranking order.
    active          INTEGER NOT NULL,
    outcome         TEXT,
    decided_by      TEXT,
    decided_at      BIGINT,
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    reopened        INTEGER NOT NULL DEFAULT 0,
    policy_version  TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- Queue order, and the same order within the two most used filters (covering their counts).
CREATE INDEX cases_queue ON cases (active, score DESC, revenue_cents DESC, id);
CREATE INDEX cases_queue_kind ON cases (active, kind, score DESC, revenue_cents DESC, id);
CREATE INDEX cases_queue_owner ON cases (active, owner_role, score DESC, revenue_cents DESC, id);
CREATE INDEX cases_queue_revenue ON cases (active, revenue_cents DESC, score DESC, id);
CREATE INDEX cases_queue_place ON cases (active, tier, warehouse, score DESC, revenue_cents DESC, id);
CREATE INDEX cases_customer ON cases (active, customer_lc);

-- The full exception (evidence, recommendations) apart from the queue's rows, so listing
-- and counting read small rows.
CREATE TABLE case_payloads (
    id              TEXT PRIMARY KEY,
    exception_json  TEXT NOT NULL
);
CREATE INDEX cases_status ON cases (status);
CREATE INDEX cases_order ON cases (order_ref);

CREATE TABLE approvals (
    id              TEXT PRIMARY KEY,
    case_id         TEXT,
    action          TEXT NOT NULL,
    params_json     TEXT NOT NULL,
    evidence_json   TEXT NOT NULL,
    policy_rule     TEXT NOT NULL,
    policy_version  TEXT NOT NULL,
    approver_roles  TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    requested_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    status          TEXT NOT NULL,
    decided_by      TEXT,
    decided_at      BIGINT,
    reason          TEXT,
    result_json     TEXT,
    executed_at     BIGINT
);
CREATE INDEX approvals_status ON approvals (status, requested_at);
CREATE INDEX approvals_case ON approvals (case_id);

CREATE TABLE tokens (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);

CREATE TABLE audit (
    seq               BIGINT PRIMARY KEY,
    at                BIGINT NOT NULL,
    kind              TEXT NOT NULL,
    actor             TEXT NOT NULL,
    conversation_id   TEXT,
    case_id           TEXT,
    model             TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    latency_ms        BIGINT,
    policy_version    TEXT,
    payload           TEXT NOT NULL,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_case ON audit (case_id);

-- The chain's head, updated with every batch: `audit verify` checks the last row against
-- it, so rows cut off the end are caught too.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
