//! The planned arrival date of each purchase line as this store has seen it. Odoo does not
//! track `date_planned`, so a purchase moved later looks, in Odoo, like one that was always
//! planned that late; the store remembers the date first seen and each change, and the scan
//! compares the current date with the first one ([`crate::app::planned`]).

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError};

/// A purchase line's planned date as one scan read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSeen {
    /// Source id of the purchase line.
    pub line_id: i64,
    /// Purchase order reference.
    pub po_ref: String,
    /// Planned arrival (Unix µs).
    pub planned: i64,
}

/// What the store knows of one line's planned date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRecord {
    /// The planned date when the store first saw the line (Unix µs).
    pub first_planned: i64,
    /// When the store first saw it (Unix µs).
    pub first_seen: i64,
    /// The latest planned date seen (Unix µs).
    pub planned: i64,
    /// How many times the planned date changed.
    pub changes: i64,
    /// When the latest change was seen (Unix µs).
    pub changed_at: Option<i64>,
}

/// One change of a line's planned date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedChange {
    /// When the change was seen (Unix µs).
    pub seen_at: i64,
    /// Planned before (Unix µs).
    pub from: i64,
    /// Planned after (Unix µs).
    pub to: i64,
}

impl Store {
    /// Record the planned dates one scan read from `source`: a line seen for the first time
    /// is stored with its date as the first planned one; a line whose date differs from
    /// the latest stored gets a change row. Returns what the store now knows of each line
    /// passed in. Lines not passed in are left alone (a received line keeps its history).
    pub async fn keep_planned_dates(
        &self,
        source: &str,
        seen: &[PlannedSeen],
        now: i64,
    ) -> Result<HashMap<i64, PlannedRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT line_id, first_planned, first_seen, planned, changes, changed_at \
             FROM purchase_line_dates WHERE source = $1",
        )
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        let mut known: HashMap<i64, PlannedRecord> = HashMap::with_capacity(rows.len());
        for r in &rows {
            known.insert(
                r.try_get(0)?,
                PlannedRecord {
                    first_planned: r.try_get(1)?,
                    first_seen: r.try_get(2)?,
                    planned: r.try_get(3)?,
                    changes: r.try_get(4)?,
                    changed_at: r.try_get(5)?,
                },
            );
        }
        let mut out = HashMap::with_capacity(seen.len());
        let mut inserts: Vec<&PlannedSeen> = Vec::new();
        let mut updates: Vec<(&PlannedSeen, i64)> = Vec::new();
        for s in seen {
            let rec = match known.get(&s.line_id) {
                Some(k) if k.planned == s.planned => *k,
                Some(k) => {
                    updates.push((s, k.planned));
                    PlannedRecord {
                        planned: s.planned,
                        changes: k.changes + 1,
                        changed_at: Some(now),
                        ..*k
                    }
                }
                None => {
                    inserts.push(s);
                    PlannedRecord {
                        first_planned: s.planned,
                        first_seen: now,
                        planned: s.planned,
                        changes: 0,
                        changed_at: None,
                    }
                }
            };
            out.insert(s.line_id, rec);
        }
        if inserts.is_empty() && updates.is_empty() {
            return Ok(out);
        }
        let mut tx = self.pool().begin().await?;
        for s in inserts {
            sqlx::query(
                "INSERT INTO purchase_line_dates (source, line_id, po_ref, first_planned, first_seen, planned, changed_at, changes) \
                 VALUES ($1, $2, $3, $4, $5, $4, NULL, 0) ON CONFLICT (source, line_id) DO NOTHING",
            )
            .bind(source)
            .bind(s.line_id)
            .bind(&s.po_ref)
            .bind(s.planned)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (s, before) in updates {
            sqlx::query(
                "UPDATE purchase_line_dates SET planned = $3, changes = changes + 1, \
                 changed_at = $4, po_ref = $5 WHERE source = $1 AND line_id = $2",
            )
            .bind(source)
            .bind(s.line_id)
            .bind(s.planned)
            .bind(now)
            .bind(&s.po_ref)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO purchase_line_date_changes (source, line_id, seen_at, planned_from, planned_to) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(source)
            .bind(s.line_id)
            .bind(now)
            .bind(before)
            .bind(s.planned)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Every change of one line's planned date, oldest first.
    pub async fn planned_changes(
        &self,
        source: &str,
        line_id: i64,
    ) -> Result<Vec<PlannedChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT seen_at, planned_from, planned_to FROM purchase_line_date_changes \
             WHERE source = $1 AND line_id = $2 ORDER BY seen_at",
        )
        .bind(source)
        .bind(line_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PlannedChange {
                    seen_at: r.try_get(0)?,
                    from: r.try_get(1)?,
                    to: r.try_get(2)?,
                })
            })
            .collect()
    }
}
