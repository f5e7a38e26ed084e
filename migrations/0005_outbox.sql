-- Durable execution: the outbox of approved actions, and scan leases. Portable SQL
-- (SQLite and PostgreSQL).

-- One row per approved request, written in the same transaction as the decision that
-- approved it (and its audit event). A worker claims a due row by a conditional update
-- that takes a lease (owner, expiry; renewed by a heartbeat while it runs); only an
-- expired lease is taken over, so one action runs in one place at a time. A transient
-- failure releases the lease with a later `due_at` (backoff); the end (executed or
-- failed) sets `finished_at`. Times are Unix microseconds.
CREATE TABLE outbox (
    approval_id   TEXT PRIMARY KEY,
    enqueued_at   BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_expires BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    finished_at   BIGINT
);
CREATE INDEX outbox_due ON outbox (finished_at, due_at);

-- Requests approved (or left executing by a crash) before the outbox existed: the worker
-- picks them up like any other (the executor is idempotent by request id).
INSERT INTO outbox (approval_id, enqueued_at, due_at)
    SELECT id, COALESCE(decided_at, requested_at), 0 FROM approvals
    WHERE status IN ('approved', 'executing');

-- Scans claimed per partition: one replica scans a partition at a time, under a lease.
CREATE TABLE scan_leases (
    part          TEXT PRIMARY KEY,
    lease_owner   TEXT,
    lease_expires BIGINT NOT NULL DEFAULT 0,
    scanned_at    BIGINT
);
