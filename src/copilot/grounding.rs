//! The figure check: every order reference, amount, quantity, percentage, date and name
//! in an answer must appear in what the turn actually looked at — its tool results, the
//! passages it retrieved, or the user's own message. The engine runs it on every model
//! answer before anyone sees it (an unmatched figure gets one correction request, then
//! the offline answer); the evals score the same function as groundedness.

use std::collections::HashSet;

use super::tools::normalise;
use crate::domain::Snapshot;

/// Normalise a number token: no thousands separators, no trailing zeros.
fn norm_number(t: &str) -> Option<String> {
    let t = t.trim_start_matches('+').replace(',', "");
    let t = t.trim_end_matches('%');
    let d: rust_decimal::Decimal = t.parse().ok()?;
    Some(d.abs().normalize().to_string())
}

fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '(' | ')'
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '"'
                    | '\''
                    | ';'
                    | '!'
                    | '?'
                    | '·'
                    | '—'
                    | '`'
                    | '<'
                    | '>'
                    | '='
                    | '|'
            )
    })
    .map(|t| t.trim_matches(|c: char| matches!(c, '.' | ',' | ':' | '…' | '*' | '-' | '/')))
    .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
}

/// Figures (references, amounts, quantities, percentages, dates) of an answer that its grounding does not contain.
pub fn ungrounded(answer: &str, grounding: &str) -> Vec<String> {
    let lower = grounding.to_lowercase();
    let numbers: HashSet<String> = tokens(grounding)
        .flat_map(|t| t.split(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '-'))))
        .filter_map(norm_number)
        .collect();
    let mut missing = Vec::new();
    for line in answer.lines() {
        // A list marker at the start of a line is layout, not a claim.
        let body = line.trim_start();
        let body = match body.find(['.', ')']) {
            Some(i) if i > 0 && i <= 3 && body[..i].chars().all(|c| c.is_ascii_digit()) => {
                &body[i + 1..]
            }
            _ => body,
        };
        for t in tokens(body) {
            let ok = if t.chars().any(|c| c.is_alphabetic())
                || t.contains([':', '/'])
                || t.matches('-').count() == 2
            {
                lower.contains(&t.to_lowercase())
            } else {
                norm_number(t).is_some_and(|n| numbers.contains(&n))
                    || lower.contains(&t.to_lowercase())
            };
            if !ok && !missing.iter().any(|m: &String| m == t) {
                missing.push(t.to_string());
            }
        }
    }
    missing
}

/// Customer and product names of the data that an answer mentions and its grounding does
/// not: a model that names the wrong customer is as wrong as one that invents a figure.
/// Names are matched whole-word on normalised text; a name shorter than five characters
/// is too likely an ordinary word to be checked.
pub fn ungrounded_names(answer: &str, grounding: &str, snap: &Snapshot) -> Vec<String> {
    let text = format!(" {} ", normalise(answer));
    let known = format!(" {} ", normalise(grounding));
    let mut missing: Vec<String> = Vec::new();
    let names = snap
        .customers
        .iter()
        .map(|c| c.name.as_str())
        .chain(snap.products.iter().map(|p| p.name.as_str()));
    for name in names {
        let n = normalise(name);
        if n.len() < 5 {
            continue;
        }
        let needle = format!(" {n} ");
        if text.contains(&needle) && !known.contains(&needle) && !missing.iter().any(|m| m == name)
        {
            missing.push(name.to_string());
        }
    }
    missing
}

/// Everything an answer of a turn may draw on: the user's message, every tool result and
/// every retrieved passage, as one text.
pub fn grounding_text<'a>(
    message: &str,
    results: impl Iterator<Item = &'a serde_json::Value>,
    retrieved: impl Iterator<Item = &'a serde_json::Value>,
) -> String {
    let mut g = message.to_string();
    for v in results.chain(retrieved) {
        g.push('\n');
        g.push_str(&v.to_string());
    }
    g
}

/// Every figure and name of `answer` that `grounding` does not hold.
pub fn check(answer: &str, grounding: &str, snap: &Snapshot) -> Vec<String> {
    let mut missing = ungrounded(answer, grounding);
    missing.extend(ungrounded_names(answer, grounding, snap));
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groundedness_checks_references_amounts_quantities_and_dates() {
        let grounding =
            r#"{"order":"S00042","revenue_at_risk":"19895.72","qty":"110","eta":"2026-12-04"}"#;
        assert!(
            ungrounded(
                "S00042: 19,895.72 EUR at risk, 110 short until 2026-12-04.",
                grounding
            )
            .is_empty()
        );
        assert_eq!(ungrounded("S00043 is late", grounding), vec!["S00043"]);
        assert_eq!(
            ungrounded("about 20,000.00 EUR", grounding),
            vec!["20,000.00"]
        );
        assert_eq!(
            ungrounded("ships 2026-12-05", grounding),
            vec!["2026-12-05"]
        );
        assert!(ungrounded("1. first\n2) second", grounding).is_empty());
    }

    #[test]
    fn names_of_the_data_must_be_grounded_too() {
        let snap = crate::demo::generate(
            &crate::demo::DemoConfig {
                seed: 42,
                orders: 50,
                now: chrono::Utc::now(),
            },
            &mut |_, _, _| {},
        );
        let a = &snap.customers[0].name;
        let b = snap
            .customers
            .iter()
            .map(|c| &c.name)
            .find(|n| {
                normalise(n) != normalise(a)
                    && !normalise(n).contains(&normalise(a))
                    && !normalise(a).contains(&normalise(n))
            })
            .unwrap_or(a);
        let grounding = format!("{{\"customer\":\"{a}\"}}");
        assert!(ungrounded_names(&format!("{a} is on hold."), &grounding, &snap).is_empty());
        assert_eq!(
            ungrounded_names(&format!("{b} is on hold."), &grounding, &snap),
            vec![b.clone()]
        );
        assert!(check("nothing named", &grounding, &snap).is_empty());
    }
}
