//! Finding the records a user or a model named: orders, customers, products, cases.

use super::{ToolEnv, ToolError, check_ref, kind_label};
use crate::app::ScanState;
use crate::core::Exception;
use crate::core::explain::OrderExplanation;
use crate::domain::{Ix, Snapshot};

/// How a name matched.
pub enum Match {
    /// Exactly one.
    One(Ix),
    /// Several (the first few).
    Many(Vec<Ix>),
    /// None.
    None,
}

/// Lowercase words of letters and digits, single-spaced.
pub fn normalise(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Find a customer by reference, full name or part of the name.
pub fn find_customer(snap: &Snapshot, query: &str) -> Match {
    // Two customers may share a name; only the reference tells them apart then.
    let records = snap
        .customers
        .iter()
        .map(|c| (c.reference.as_str(), c.name.as_str()));
    find_by(records, query, false)
}

/// Find a product by code or name.
pub fn find_product(snap: &Snapshot, query: &str) -> Match {
    let records = snap
        .products
        .iter()
        .map(|p| (p.sku.as_str(), p.name.as_str()));
    find_by(records, query, true)
}

/// The records (code, name) a query names: the one whose code it is, else those whose
/// whole name it is (the first of them when `first_exact`), else those whose name holds it.
fn find_by<'a>(
    records: impl Iterator<Item = (&'a str, &'a str)>,
    query: &str,
    first_exact: bool,
) -> Match {
    let q = normalise(query);
    if q.len() < 3 {
        return Match::None;
    }
    let mut hits = Vec::new();
    let mut exact = Vec::new();
    for (i, (code, name)) in records.enumerate() {
        if code.eq_ignore_ascii_case(query.trim()) {
            return Match::One(i as Ix);
        }
        let name = normalise(name);
        if name == q {
            if first_exact {
                return Match::One(i as Ix);
            }
            exact.push(i as Ix);
        } else if name.contains(&q) {
            hits.push(i as Ix);
        }
    }
    if !exact.is_empty() {
        hits = exact;
    }
    match hits.len() {
        0 => Match::None,
        1 => Match::One(hits[0]),
        _ => {
            hits.truncate(6);
            Match::Many(hits)
        }
    }
}

pub(super) fn customer_ix(snap: &Snapshot, query: &str) -> Result<Ix, ToolError> {
    match find_customer(snap, query) {
        Match::One(c) => Ok(c),
        Match::Many(cs) => {
            let names: Vec<String> = cs
                .iter()
                .filter_map(|&i| snap.customers.get(i as usize))
                .map(|c| format!("{} ({})", c.name, c.reference))
                .collect();
            Err(ToolError::Ambiguous(format!(
                "several customers match `{query}`: {}",
                names.join("; ")
            )))
        }
        Match::None => Err(ToolError::NotFound(format!(
            "no customer matches `{query}`"
        ))),
    }
}

pub(super) fn customer_of(snap: &Snapshot, order: &str) -> Option<Ix> {
    snap.order_by_name(order).map(|(_, o)| o.customer)
}

pub(super) async fn explanation(
    env: &ToolEnv<'_>,
    order: &str,
) -> Result<OrderExplanation, ToolError> {
    let order = check_ref("order", order)?;
    crate::core::explain::explain(
        &env.state.snapshot,
        &env.app.policy,
        &env.state.result,
        &order,
    )
    .map_err(|e| ToolError::NotFound(e.to_string()))
}

/// The active case for an order (one kind, or the highest scored).
pub(super) fn case_for<'s>(
    state: &'s ScanState,
    order: &str,
    kind: Option<&str>,
) -> Result<&'s Exception, ToolError> {
    let mut cases: Vec<&Exception> = state
        .result
        .exceptions
        .iter()
        .filter(|e| e.order_ref.eq_ignore_ascii_case(order))
        .filter(|e| kind.is_none_or(|k| e.kind.as_str() == k))
        .collect();
    cases.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    match cases.as_slice() {
        [] => Err(ToolError::NotFound(match kind {
            Some(k) => format!("{order} has no active {} exception", kind_label(k)),
            None => format!("{order} has no active exception"),
        })),
        [one] => Ok(one),
        [first, ..] if kind.is_some() => Ok(first),
        many => Err(ToolError::Ambiguous(format!(
            "{order} has {} exceptions ({}); say which kind",
            many.len(),
            many.iter()
                .map(|e| e.kind.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The order's reference as stored, or not found.
pub(super) fn order_name(env: &ToolEnv<'_>, raw: &str) -> Result<String, ToolError> {
    let order = check_ref("order", raw)?;
    match env.state.snapshot.order_by_name(&order) {
        Some((_, o)) => Ok(o.name.clone()),
        None => Err(ToolError::NotFound(format!("no order {order}"))),
    }
}
