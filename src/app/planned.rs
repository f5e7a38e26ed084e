//! Slips a source cannot see by itself: the store's own history of each confirmed
//! purchase line's planned date ([`Store::keep_planned_dates`]) gives the line the date it
//! was first planned, so the supplier-delay detector sees that a purchase moved later
//! (Odoo keeps only the current `date_planned`). Lines whose source already knows their
//! first planned date (the demo) are left as they are.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::{PurchaseState, Snapshot};
use crate::store::purchase_dates::PlannedSeen;
use crate::store::{Store, StoreError};

/// Record the planned dates of `snap`'s confirmed purchase lines under `source` and give
/// each line the first planned date the store holds for it. Returns the snapshot unchanged
/// (the same `Arc`) when no line needs it.
pub async fn keep_planned_dates(
    store: &Store,
    source: &str,
    snap: Arc<Snapshot>,
    now: DateTime<Utc>,
) -> Result<Arc<Snapshot>, StoreError> {
    let seen: Vec<PlannedSeen> = snap
        .inbound
        .iter()
        .filter(|b| b.state == PurchaseState::Purchase && b.original_planned.is_none())
        .filter_map(|b| {
            b.planned.map(|p| PlannedSeen {
                line_id: b.id,
                po_ref: b.po_ref.clone(),
                planned: p.timestamp_micros(),
            })
        })
        .collect();
    if seen.is_empty() {
        return Ok(snap);
    }
    let known = store
        .keep_planned_dates(source, &seen, now.timestamp_micros())
        .await?;
    let mut snap = snap;
    let s = Arc::make_mut(&mut snap);
    for b in s.inbound.iter_mut().filter(|b| {
        b.state == PurchaseState::Purchase && b.original_planned.is_none() && b.planned.is_some()
    }) {
        b.original_planned = known
            .get(&b.id)
            .and_then(|r| DateTime::from_timestamp_micros(r.first_planned));
    }
    Ok(snap)
}
