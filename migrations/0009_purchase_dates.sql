-- The planned arrival date of each purchase line as the store has seen it (issue 19):
-- Odoo does not track `purchase.order.line.date_planned`, so the only way to know that a
-- purchase moved later is to remember what it said before. One row per source and line
-- (the date first seen, the latest one), and one row per change seen. Portable SQL
-- (SQLite and PostgreSQL). Times are Unix microseconds.

CREATE TABLE purchase_line_dates (
    -- Which source (its description: an Odoo URL and database, no credentials).
    source        TEXT NOT NULL,
    line_id       BIGINT NOT NULL,
    po_ref        TEXT NOT NULL,
    first_planned BIGINT NOT NULL,
    first_seen    BIGINT NOT NULL,
    planned       BIGINT NOT NULL,
    -- When the latest change was seen (NULL: never changed).
    changed_at    BIGINT,
    changes       BIGINT NOT NULL,
    PRIMARY KEY (source, line_id)
);

CREATE TABLE purchase_line_date_changes (
    source       TEXT NOT NULL,
    line_id      BIGINT NOT NULL,
    seen_at      BIGINT NOT NULL,
    planned_from BIGINT NOT NULL,
    planned_to   BIGINT NOT NULL
);
CREATE INDEX purchase_line_date_changes_line ON purchase_line_date_changes (source, line_id, seen_at);
