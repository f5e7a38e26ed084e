-- Every prediction the models made about the present, and its eventual outcome, for
-- model governance (precision at the policy threshold, false positives, acceptance of
-- the recommendations, overrides). One row per model version and subject: re-scoring the
-- same subject updates its latest probability and keeps when it was first predicted.
-- Portable SQL (SQLite and PostgreSQL). Times are Unix microseconds.

CREATE TABLE predictions (
    id              TEXT PRIMARY KEY,
    model           TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    -- What it is about: `S00042/3` (line), `P00017#60012` (purchase line), `C00012`
    -- (customer), `S00042` (order).
    subject         TEXT NOT NULL,
    first_at        BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    probability     DOUBLE PRECISION NOT NULL,
    max_probability DOUBLE PRECISION NOT NULL,
    threshold       DOUBLE PRECISION NOT NULL,
    -- 1 once the probability reached the threshold (a predicted exception was raised).
    flagged         INTEGER NOT NULL,
    exception_id    TEXT,
    -- NULL until known; then 1 (it happened) or 0 (it did not).
    outcome         INTEGER,
    outcome_at      BIGINT,
    outcome_note    TEXT
);
CREATE INDEX predictions_model ON predictions (model, outcome);
CREATE INDEX predictions_rank ON predictions (model, probability DESC);
CREATE INDEX predictions_exception ON predictions (exception_id);
