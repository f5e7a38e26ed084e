//! What gets indexed: policy clauses, the product catalogue and resolved cases, as
//! [`Doc`]s whose ids are the refs the copilot cites.
//!
//! - Policy files split into one clause per TOML table (`[approvals.release_credit_hold]`,
//!   `[[rules]]` by name): id `policies/<file>#<table>` — the table path without the file's
//!   own top-level name (`policies/approvals.toml#release_credit_hold`,
//!   `policies/thresholds.toml#credit_hold`, `policies/rules.toml#<rule name>`). The text
//!   is the clause as written — the file's opening comment, the clause's comments, its keys
//!   with underscores read as spaces — so what is searched is exactly what the business edited.
//! - Products: id = default code (`SKU-10023`); name, category and substitutes.
//! - Past cases of the snapshot: id `past:<history id>`; cases resolved in the store: the
//!   case id.

use std::path::Path;

use anyhow::Context;

use super::{Corpus, Doc, truncate_chars};
use crate::domain::Snapshot;
use crate::store::CaseSummary;

/// Policy clauses from `dir` (every `*.toml` in it), or from the files built into the
/// binary when `dir` is `None` — the same choice `--policies` makes for the policy itself.
pub fn policy_docs(dir: Option<&Path>) -> anyhow::Result<Vec<Doc>> {
    let mut files: Vec<(String, String)> = match dir {
        None => crate::policy::EMBEDDED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        Some(dir) => {
            let mut files = Vec::new();
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read policy directory {}", dir.display()))?;
            for entry in entries {
                let path = entry
                    .with_context(|| format!("cannot read policy directory {}", dir.display()))?
                    .path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    files.push((name, text));
                }
            }
            files
        }
    };
    // One order whichever way the files came: by file name.
    files.sort();
    Ok(files
        .iter()
        .flat_map(|(name, text)| policy_file_docs(name, text))
        .collect())
}

/// One file's clauses.
pub fn policy_file_docs(file: &str, text: &str) -> Vec<Doc> {
    let stem = file.strip_suffix(".toml").unwrap_or(file);
    let label = capitalise(stem);
    // The opening comment: what the whole file is about, repeated in each clause so that
    // a clause is understandable (and findable) alone.
    let preamble: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| l.starts_with('#'))
        .map(comment_text)
        .collect();
    let mut docs: Vec<Doc> = Vec::new();
    let mut pending_comments: Vec<&str> = Vec::new();
    let mut current: Option<Clause> = None;
    let mut in_preamble = true;
    for line in text.lines() {
        let l = line.trim();
        if in_preamble && l.starts_with('#') {
            continue;
        }
        in_preamble = false;
        if l.is_empty() {
            pending_comments.clear();
            continue;
        }
        if l.starts_with('#') {
            pending_comments.push(comment_text(l));
            continue;
        }
        if let Some(path) = table_header(l) {
            if let Some(c) = current.take() {
                docs.push(c.into_doc(file, &label, &preamble));
            }
            current = Some(Clause {
                path: path.to_string(),
                array: l.starts_with("[["),
                name: None,
                lines: std::mem::take(&mut pending_comments)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            });
            continue;
        }
        let c = current.get_or_insert_with(|| Clause {
            path: stem.to_string(),
            array: false,
            name: None,
            lines: Vec::new(),
        });
        c.lines
            .extend(pending_comments.drain(..).map(str::to_string));
        if let Some((k, v)) = l.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            if k == "name" && c.array {
                c.name = Some(v.trim_matches('"').to_string());
            }
            c.lines.push(format!("{}: {}", words(k), plain_value(v)));
        } else {
            c.lines.push(plain_value(l));
        }
    }
    if let Some(c) = current.take() {
        docs.push(c.into_doc(file, &label, &preamble));
    }
    // Ids must be unique: a second clause with the same id gets a suffix.
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for d in &mut docs {
        let n = seen.entry(d.id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            d.id = format!("{}-{n}", d.id);
        }
    }
    docs
}

struct Clause {
    path: String,
    array: bool,
    name: Option<String>,
    /// Comments and keys, in file order.
    lines: Vec<String>,
}

impl Clause {
    fn into_doc(self, file: &str, label: &str, preamble: &[&str]) -> Doc {
        let stem = file.strip_suffix(".toml").unwrap_or(file);
        let fragment = match (&self.name, self.path.split_once('.')) {
            (Some(name), _) => name.clone(),
            (None, Some((top, rest))) if top == stem => rest.to_string(),
            (None, _) => self.path.clone(),
        };
        let title = format!("{label}: {}", words(&fragment));
        let mut text = String::new();
        text.push_str(&title);
        text.push('.');
        for part in preamble
            .iter()
            .copied()
            .chain(self.lines.iter().map(String::as_str))
        {
            text.push('\n');
            text.push_str(part);
        }
        Doc {
            id: format!("policies/{file}#{fragment}"),
            corpus: Corpus::Policy,
            title,
            text,
        }
    }
}

/// `[a.b]` or `[[a]]` → `a.b` / `a`.
fn table_header(l: &str) -> Option<&str> {
    let inner = l
        .strip_prefix("[[")
        .and_then(|r| r.split_once("]]"))
        .or_else(|| l.strip_prefix('[').and_then(|r| r.split_once(']')))?;
    let path = inner.0.trim();
    (!path.is_empty()).then_some(path)
}

fn comment_text(l: &str) -> &str {
    l.trim_start_matches('#').trim()
}

/// `release_credit_hold` → `release credit hold`.
fn words(s: &str) -> String {
    s.replace(['_', '.'], " ")
}

/// A TOML value as prose: quotes and brackets dropped, underscores read as spaces.
fn plain_value(v: &str) -> String {
    let v = match v.find(" #") {
        // Outside a string (an even number of quotes before it), `#` starts a comment.
        Some(i) if v[..i].matches('"').count().is_multiple_of(2) => &v[..i],
        _ => v,
    };
    v.chars()
        .filter(|c| !matches!(c, '"' | '[' | ']' | '{' | '}'))
        .map(|c| if c == '_' { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The catalogue: one document per product, id = its default code.
pub fn product_docs(snap: &Snapshot) -> Vec<Doc> {
    snap.products
        .iter()
        .map(|p| {
            let subs: Vec<String> = p
                .substitutes
                .iter()
                .filter_map(|&i| snap.products.get(i as usize))
                .map(|s| format!("{} {}", s.sku, s.name))
                .collect();
            let mut text = format!(
                "{} ({}), category {}. List price {} {}.",
                p.name, p.sku, p.category, p.list_price, snap.currency
            );
            if !subs.is_empty() {
                text.push_str(" Substitutes: ");
                text.push_str(&subs.join("; "));
                text.push('.');
            }
            Doc {
                id: p.sku.clone(),
                corpus: Corpus::Product,
                title: format!("{} {}", p.sku, p.name),
                text,
            }
        })
        .collect()
}

/// The id of a past case of the snapshot's history.
pub fn past_case_id(history_id: i64) -> String {
    format!("past:{history_id}")
}

/// The snapshot's resolved past exceptions, with what was done and what came of it.
pub fn case_docs(snap: &Snapshot) -> Vec<Doc> {
    snap.history
        .iter()
        .map(|h| {
            let customer = snap
                .customers
                .get(h.customer as usize)
                .map(|c| c.name.as_str())
                .unwrap_or("unknown customer");
            let product = h
                .product
                .and_then(|p| snap.products.get(p as usize))
                .map(|p| format!(", product {} {}", p.sku, p.name))
                .unwrap_or_default();
            let hours = (h.resolved_at - h.detected_at).num_hours();
            let kind = words(&h.kind);
            Doc {
                id: past_case_id(h.id),
                corpus: Corpus::Case,
                title: format!("Past {kind} on {} resolved by {}", h.order_ref, words(&h.resolution)),
                text: format!(
                    "{kind} on order {} for {customer}{product}, detected {}. Resolved by {} within {hours} hours: {}.",
                    h.order_ref,
                    h.detected_at.format("%Y-%m-%d"),
                    words(&h.resolution),
                    h.outcome
                ),
            }
        })
        .collect()
}

/// A case a person resolved in the store, as a document; `None` for cases that are not
/// resolved, have no outcome, or were cleared automatically when their condition vanished
/// (outcome `cleared`: nothing was decided, so there is nothing to learn from).
pub fn resolved_case_doc(c: &CaseSummary) -> Option<Doc> {
    if c.status != crate::store::CaseStatus::Resolved {
        return None;
    }
    let outcome = c
        .outcome
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())?;
    if outcome == "cleared" {
        return None;
    }
    let product = c
        .product
        .as_deref()
        .map(|p| format!(", product {p}"))
        .unwrap_or_default();
    Some(Doc {
        id: c.id.clone(),
        corpus: Corpus::Case,
        title: format!(
            "Resolved {} on {}: {}",
            words(&c.kind),
            c.order_ref,
            c.title
        ),
        text: format!(
            "{}. {} on order {} for {} (tier {}){product}. Resolved: {outcome}.",
            c.title,
            words(&c.kind),
            c.order_ref,
            c.customer,
            c.tier
        ),
    })
}

/// Lowercased words of a query, for picking snippets.
pub(crate) fn query_terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 300;

/// The line of `text` sharing most words with the query (a word matches when one is a
/// prefix of the other over at least four characters, so `approves` meets `approvals`),
/// followed by the next lines while they fit; the start of the text when nothing matches.
pub(crate) fn snippet(text: &str, terms: &[String]) -> String {
    let lines: Vec<&str> = text
        .split(['\n'])
        .flat_map(|l| l.split_inclusive(". "))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let score = |line: &str| -> usize {
        let lw: Vec<String> = query_terms(line);
        terms
            .iter()
            .filter(|t| lw.iter().any(|w| shares_stem(t, w)))
            .count()
    };
    let best = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (score(l), i))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .filter(|(s, _)| *s > 0)
        .map(|(_, i)| i)
        .unwrap_or(0);
    let mut out = String::new();
    for l in lines.iter().skip(best) {
        if !out.is_empty() {
            if out.chars().count() + l.chars().count() + 1 > SNIPPET_CHARS {
                break;
            }
            out.push(' ');
        }
        out.push_str(l);
    }
    if out.chars().count() > SNIPPET_CHARS {
        let mut cut = truncate_chars(&out, SNIPPET_CHARS - 1).to_string();
        cut.push('…');
        return cut;
    }
    out
}

fn shares_stem(a: &str, b: &str) -> bool {
    let n = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    n == a.chars().count() || n == b.chars().count() || n >= 4
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policies_split_into_clauses_with_stable_ids() {
        let docs = policy_docs(None).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        for want in [
            "policies/approvals.toml#release_credit_hold",
            "policies/approvals.toml#reallocate",
            "policies/roles.toml#roles",
            "policies/roles.toml#permissions",
            "policies/routing.toml#credit_hold",
            "policies/rules.toml#large_order_standard_account",
            "policies/thresholds.toml#thresholds",
            "policies/thresholds.toml#credit_hold",
            "policies/thresholds.toml#scoring",
        ] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
        let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len());
        let d = docs
            .iter()
            .find(|d| d.id == "policies/approvals.toml#release_credit_hold")
            .unwrap();
        assert_eq!(d.title, "Approvals: release credit hold");
        assert!(d.text.contains("roles: finance"), "{}", d.text);
        assert!(d.text.contains("expires hours: 8"), "{}", d.text);
        assert!(
            d.text.contains("needs an approval from one of"),
            "{}",
            d.text
        );
        // The next clause's keys do not leak into this one.
        assert!(!d.text.contains("sales manager"), "{}", d.text);
    }

    #[test]
    fn a_policy_directory_gives_the_same_ids_as_the_embedded_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let from_dir = policy_docs(Some(&dir)).unwrap();
        let embedded = policy_docs(None).unwrap();
        assert_eq!(from_dir, embedded);
        assert!(policy_docs(Some(Path::new("/nonexistent/policies"))).is_err());
    }

    #[test]
    fn comments_before_a_key_belong_to_the_clause_and_inline_comments_are_dropped() {
        let docs = policy_file_docs(
            "t.toml",
            "# head\n\n[t.a]\n# about x\nx = 1 # inline\n\n# about b\n[t.b]\ny = \"q_r\"\n",
        );
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id, "policies/t.toml#a");
        assert_eq!(docs[0].text, "T: a.\nhead\nabout x\nx: 1");
        assert_eq!(docs[1].text, "T: b.\nhead\nabout b\ny: q r");
    }

    #[test]
    fn snippets_pick_the_matching_line() {
        let text = "Approvals: release credit hold.\nEvery action needs an approval.\nroles: finance\nexpires hours: 8";
        let s = snippet(text, &query_terms("which actions need approval"));
        assert!(s.starts_with("Every action needs an approval."), "{s}");
        let none = snippet(text, &query_terms("zzz"));
        assert!(
            none.starts_with("Approvals: release credit hold."),
            "{none}"
        );
        let long = "word ".repeat(200);
        assert!(snippet(&long, &[]).chars().count() <= SNIPPET_CHARS);
    }
}
