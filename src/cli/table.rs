//! The ranked queue as a readable table.

use std::io::Write;

use crate::core::explain::fmt_money;
use crate::core::{Exception, ScanResult};
use crate::domain::Snapshot;

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Print the queue: a header line, one row per exception, a footer. (The caller has
/// already said which source was read.)
pub fn queue(
    out: &mut dyn Write,
    snap: &Snapshot,
    result: &ScanResult,
    selected: &[&Exception],
    limit: usize,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} exceptions in {} open order lines (policy {})",
        result.exceptions.len(),
        result.open_lines,
        result.policy_version
    )?;
    if selected.len() != result.exceptions.len() {
        writeln!(out, "{} match the filters", selected.len())?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:>4} {:>5} {:<8} {:<19} {:<10} {:<26} {:<13} {:>14}  what",
        "#", "score", "severity", "kind", "order", "customer", "owner", "at risk"
    )?;
    for (i, e) in selected.iter().take(limit).enumerate() {
        writeln!(
            out,
            "{:>4} {:>5} {:<8} {:<19} {:<10} {:<26} {:<13} {:>14}  {}",
            i + 1,
            e.score,
            e.severity.as_str(),
            cut(e.kind.as_str(), 19),
            cut(&e.order_ref, 10),
            cut(&format!("{} ({})", e.customer, e.tier), 26),
            cut(&e.owner_role, 13),
            fmt_money(e.impact.revenue_at_risk, &snap.currency),
            cut(&e.title, 90)
        )?;
    }
    if selected.len() > limit {
        writeln!(
            out,
            "   … {} more (use --limit N or --json)",
            selected.len() - limit
        )?;
    }
    let mut by_kind: Vec<(&str, usize)> = Vec::new();
    for e in selected {
        match by_kind.iter_mut().find(|(k, _)| *k == e.kind.as_str()) {
            Some((_, n)) => *n += 1,
            None => by_kind.push((e.kind.as_str(), 1)),
        }
    }
    by_kind.sort();
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(out, "\nby kind: {}", kinds.join(", "))?;
    if !result.findings.is_empty() {
        let mut codes: Vec<(&str, usize)> = Vec::new();
        for f in &result.findings {
            match codes.iter_mut().find(|(c, _)| *c == f.code) {
                Some((_, n)) => *n += 1,
                None => codes.push((f.code, 1)),
            }
        }
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        writeln!(out, "data quality: {}", codes.join(", "))?;
    }
    Ok(())
}
