//! Who may see which data classes, applied in one place.
//!
//! `policies/data_access.toml` names the data classes (personal contact data, credit and
//! payment data, costs and margins) each role may see and each kind of model provider may
//! receive. [`Withhold`] is the single filter both use: it replaces what an audience may
//! not see — by JSON key, by the sensitive values the current snapshot holds
//! ([`Sensitive`], one Aho-Corasick automaton), and by pattern (e-mail, phone, IBAN) —
//! with a visible marker, never by dropping it silently. People see
//! `[withheld: credit_payment — not visible to viewer]`; a model sees
//! `[withheld: credit_payment]`. Pure: no I/O, no HTTP, no model.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, MatchKind};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::core::Kind;
use crate::core::ScanResult;
use crate::core::fmt::{Money, Num};
use crate::domain::Snapshot;
use crate::policy::{DATA_CLASSES, Policy};

/// Keys of structured data that hold one data class.
pub const KEY_CLASSES: &[(&str, &str)] = &[
    ("email", "personal_contact"),
    ("phone", "personal_contact"),
    ("contact", "personal_contact"),
    ("contact_name", "personal_contact"),
    ("credit_limit", "credit_payment"),
    ("open_receivables", "credit_payment"),
    ("receivables", "credit_payment"),
    ("open_invoices", "credit_payment"),
    ("exposure", "credit_payment"),
    ("headroom", "credit_payment"),
    ("uninvoiced_orders", "credit_payment"),
    ("overdue_invoices", "credit_payment"),
    ("max_overdue_days", "credit_payment"),
    ("oldest_overdue_invoice", "credit_payment"),
    ("payment_terms_days", "credit_payment"),
    ("invoices_paid_12m", "payment_history"),
    ("paid_late_12m", "payment_history"),
    ("late_payment_pct", "payment_history"),
    ("payment_history", "payment_history"),
    ("credit_review", "credit_payment"),
    ("margin_at_risk", "costs_margins"),
    ("margin_pct", "costs_margins"),
    ("margin", "costs_margins"),
    ("cost", "costs_margins"),
];

/// Fields of a tagged object (`{"class": …, "fact": …}`) that carry its content.
const CONTENT_KEYS: &[&str] = &["fact", "summary", "tradeoffs", "text", "title"];

/// Shortest learned value worth matching: shorter numbers (`12`, `5.5`) are quantities as
/// often as they are money, and scrubbing them would blank half of every answer.
const MIN_VALUE_LEN: usize = 4;

/// Data class of an evidence fact or a recommendation's text.
pub fn fact_class(kind: &Kind, fact: &str) -> Option<&'static str> {
    let f = fact.to_ascii_lowercase();
    if is_payment_history(&f) {
        Some("payment_history")
    } else if *kind == Kind::CreditHold
        || f.contains("credit")
        || f.contains("receivable")
        || f.contains("overdue")
        || f.contains("paid ")
    {
        Some("credit_payment")
    } else if f.contains("margin") || f.contains("cost") {
        Some("costs_margins")
    } else {
        None
    }
}

/// Whether a (lower-case) fact is about how the customer paid: the payment-history lines
/// of the credit detector ("paid 3 of 6 invoices late …", "payments worsening: …",
/// "… partly paid", "… settled in part by credit notes").
fn is_payment_history(f: &str) -> bool {
    (f.starts_with("paid ") && f.contains(" late"))
        || f.starts_with("payments ")
        || f.contains("partly paid")
        || f.contains("settled in part by credit notes")
}

/// What was withheld, per data class (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Redactions {
    /// Class → number of values withheld.
    pub classes: BTreeMap<String, u64>,
}

impl Redactions {
    fn add(&mut self, class: &str) {
        *self.classes.entry(class.to_string()).or_default() += 1;
    }

    /// Whether nothing was withheld.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Merge another count in.
    pub fn merge(&mut self, other: &Redactions) {
        for (k, v) in &other.classes {
            *self.classes.entry(k.clone()).or_default() += v;
        }
    }
}

/// The sensitive values of one scan, by class, as they appear in text: contact e-mails;
/// credit limits, receivables, invoice amounts and every figure of a credit fact; costs,
/// margins and every figure of a margin fact. Built once per scan.
pub struct Sensitive {
    automaton: Option<AhoCorasick>,
    classes: Vec<&'static str>,
}

impl Sensitive {
    /// Learn the values of a snapshot and what its scan derived from them.
    pub fn learn(snap: &Snapshot, result: &ScanResult) -> Sensitive {
        let mut values: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut put = |v: String, class: &'static str| {
            if v.len() >= MIN_VALUE_LEN {
                values.entry(v).or_insert(class);
            }
        };
        let money = |d: Decimal| [Money(d).to_string(), Num(d).to_string()];
        for c in &snap.customers {
            if let Some(e) = &c.email {
                put(e.clone(), "personal_contact");
            }
            if let Some(l) = c.credit_limit {
                for v in money(l) {
                    put(v, "credit_payment");
                }
                put(l.round_dp(0).to_string(), "credit_payment");
            }
        }
        let mut receivables: BTreeMap<u32, Decimal> = BTreeMap::new();
        for i in &snap.invoices {
            *receivables.entry(i.customer).or_default() += i.residual;
            for v in money(i.amount_total).into_iter().chain(money(i.residual)) {
                put(v, "credit_payment");
            }
        }
        for r in receivables.into_values() {
            for v in money(r) {
                put(v, "credit_payment");
            }
        }
        for p in &snap.products {
            if let Some(c) = p.cost {
                for v in money(c) {
                    put(v, "costs_margins");
                }
            }
        }
        for e in &result.exceptions {
            for v in money(e.impact.margin_at_risk) {
                put(v, "costs_margins");
            }
            if e.kind == Kind::CreditHold {
                for n in numbers(&e.title) {
                    put(n.to_string(), "credit_payment");
                }
            }
            let texts = e.evidence.iter().map(|ev| ev.fact.as_str()).chain(
                e.recommendations.iter().flat_map(|r| {
                    std::iter::once(r.summary.as_str())
                        .chain(r.tradeoffs.iter().map(String::as_str))
                }),
            );
            for t in texts {
                if let Some(class) = fact_class(&e.kind, t) {
                    for n in numbers(after_keyword(t)) {
                        put(n.to_string(), class);
                    }
                }
            }
        }
        let (patterns, classes): (Vec<String>, Vec<&'static str>) = values.into_iter().unzip();
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()
            .filter(|_| !patterns.is_empty());
        Sensitive { automaton, classes }
    }

    /// How many values were learned.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

/// Words after which a fact's figures are credit or margin data; figures before them
/// (`S00042 is 1250.00 uninvoiced; … exposure reaches 9800.00`) are order values.
const FIGURE_WORDS: &[&str] = &[
    "limit",
    "receivable",
    "exposure",
    "overdue",
    "paid",
    "credit",
    "margin",
    "cost",
];

/// The part of a fact from its first credit or margin word on (all of it when it has none).
fn after_keyword(text: &str) -> &str {
    let lower = text.to_ascii_lowercase();
    FIGURE_WORDS
        .iter()
        .filter_map(|w| lower.find(w))
        .min()
        .map_or(text, |i| &text[i..])
}

/// Number-like tokens of a text (`3200.00`, `1000`), not parts of words or ids (`S00042`).
fn numbers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ','))
        .map(|t| t.trim_end_matches(['.', ',']))
        .filter(|t| {
            !t.is_empty()
                && t.starts_with(|c: char| c.is_ascii_digit())
                && t.chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        })
}

/// Which data classes one audience may see: the people holding a role, the members of a
/// channel, or a model provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// Class → who may not see it (`viewer`), or `None` for a model provider.
    blocked: Vec<(&'static str, Option<String>)>,
}

impl Audience {
    /// The people holding a role.
    pub fn role(policy: &Policy, role: &str) -> Audience {
        Audience::roles(policy, std::slice::from_ref(&role.to_string()))
    }

    /// Everyone in a group (a Discuss channel's members): the classes all of them may see.
    pub fn roles(policy: &Policy, roles: &[String]) -> Audience {
        let blocked = DATA_CLASSES
            .iter()
            .filter_map(|c| {
                roles
                    .iter()
                    .find(|r| !policy.role_sees(r, c))
                    .map(|r| (*c, Some(r.clone())))
            })
            .collect();
        Audience { blocked }
    }

    /// A model provider (`local` or `external`).
    pub fn provider(policy: &Policy, provider: &str) -> Audience {
        let blocked = DATA_CLASSES
            .iter()
            .filter(|c| !policy.allows_data(provider, c))
            .map(|c| (*c, None))
            .collect();
        Audience { blocked }
    }

    /// Data classes withheld from this audience.
    pub fn blocked(&self) -> Vec<&'static str> {
        self.blocked.iter().map(|(c, _)| *c).collect()
    }

    /// Whether this audience sees everything.
    pub fn sees_all(&self) -> bool {
        self.blocked.is_empty()
    }

    fn marker(&self, class: &str) -> Option<String> {
        self.blocked
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(c, who)| match who {
                Some(r) => format!("[withheld: {c} — not visible to {r}]"),
                None => format!("[withheld: {c}]"),
            })
    }
}

/// The filter: an audience and the values to look for.
pub struct Withhold<'a> {
    audience: &'a Audience,
    sensitive: Option<&'a Sensitive>,
}

impl<'a> Withhold<'a> {
    /// Filter for an audience, with the current scan's values when there is one.
    pub fn new(audience: &'a Audience, sensitive: Option<&'a Sensitive>) -> Withhold<'a> {
        Withhold {
            audience,
            sensitive,
        }
    }

    fn replace(&self, class: &str, out: &mut Redactions) -> Option<Value> {
        let m = self.audience.marker(class)?;
        out.add(class);
        Some(Value::String(m))
    }

    /// Filter a JSON value in place.
    pub fn value(&self, v: &mut Value, out: &mut Redactions) {
        if self.audience.sees_all() {
            return;
        }
        match v {
            Value::Object(map) => {
                let tagged = map
                    .get("class")
                    .and_then(Value::as_str)
                    .filter(|c| self.audience.marker(c).is_some())
                    .map(str::to_string);
                for (k, val) in map.iter_mut() {
                    if val.is_null() {
                        continue;
                    }
                    if let Some(class) = &tagged
                        && CONTENT_KEYS.contains(&k.as_str())
                        && let Some(m) = self.replace(class, out)
                    {
                        *val = m;
                        continue;
                    }
                    let keyed = KEY_CLASSES
                        .iter()
                        .find(|(key, _)| key == k)
                        .and_then(|(_, class)| self.replace(class, out));
                    match keyed {
                        Some(m) => *val = m,
                        None => self.value(val, out),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.value(x, out)),
            // A string that is only an amount is a structured field: its key decides
            // (a revenue figure may equal an exposure by coincidence).
            Value::String(s) if numbers(s).next().is_some_and(|n| n.len() == s.len()) => {}
            Value::String(s) => {
                if let Some(t) = self.scrub(s, out) {
                    *s = t;
                }
            }
            _ => {}
        }
    }

    /// Filter free text.
    pub fn text(&self, s: &str, out: &mut Redactions) -> String {
        self.scrub(s, out).unwrap_or_else(|| s.to_string())
    }

    /// The filtered text, or `None` when nothing in it is withheld.
    fn scrub(&self, s: &str, out: &mut Redactions) -> Option<String> {
        if self.audience.sees_all() || s.is_empty() {
            return None;
        }
        // Learned values first (one pass of the automaton), then patterns over the rest.
        let mut changed = false;
        let mut text = String::new();
        let mut last = 0;
        if let Some(sens) = self.sensitive
            && let Some(ac) = &sens.automaton
        {
            for m in ac.find_iter(s) {
                let class = sens.classes[m.pattern().as_usize()];
                if !bounded(s, m.start(), m.end()) {
                    continue;
                }
                let Some(marker) = self.audience.marker(class) else {
                    continue;
                };
                text.push_str(&s[last..m.start()]);
                text.push_str(&marker);
                out.add(class);
                last = m.end();
                changed = true;
            }
        }
        let s: std::borrow::Cow<'_, str> = if changed {
            text.push_str(&s[last..]);
            text.into()
        } else {
            s.into()
        };
        match self.patterns(&s, out) {
            Some(t) => Some(t),
            None if changed => Some(s.into_owned()),
            None => None,
        }
    }

    /// E-mail addresses and phone numbers (personal contact data) and IBANs (payment
    /// data) anywhere in a text, learned or not.
    fn patterns(&self, s: &str, out: &mut Redactions) -> Option<String> {
        let contact = self.audience.marker("personal_contact");
        let payment = self.audience.marker("credit_payment");
        if contact.is_none() && payment.is_none() {
            return None;
        }
        let mut result = String::with_capacity(s.len());
        let mut changed = false;
        for (i, word) in s.split(' ').enumerate() {
            if i > 0 {
                result.push(' ');
            }
            let hit = match (&contact, &payment) {
                (Some(m), _) if is_email(word) || is_phone(word) => Some((m, "personal_contact")),
                (_, Some(m)) if is_iban(word) => Some((m, "credit_payment")),
                _ => None,
            };
            match hit {
                Some((m, class)) => {
                    result.push_str(m);
                    out.add(class);
                    changed = true;
                }
                None => result.push_str(word),
            }
        }
        changed.then_some(result)
    }
}

/// Whether a match stands alone: not inside a longer number or word (`1000` in `10000`
/// or in `S01000`).
fn bounded(s: &str, start: usize, end: usize) -> bool {
    let b = s.as_bytes();
    let before = start
        .checked_sub(1)
        .and_then(|i| b.get(i))
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'@');
    let after = match b.get(end) {
        Some(c) if c.is_ascii_alphanumeric() => true,
        Some(b'.' | b',') => b.get(end + 1).is_some_and(u8::is_ascii_digit),
        _ => false,
    };
    !before && !after
}

fn is_email(w: &str) -> bool {
    let w = w.trim_matches(|c: char| !c.is_alphanumeric());
    match w.split_once('@') {
        Some((user, host)) => !user.is_empty() && host.contains('.') && !host.starts_with('.'),
        None => false,
    }
}

fn is_phone(w: &str) -> bool {
    // Surrounding punctuation is not part of the number: `(+31-20-5550142);`.
    let w = w
        .trim_start_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '+'))
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let digits = w.chars().filter(|c| c.is_ascii_digit()).count();
    w.starts_with('+')
        && digits >= 8
        && w.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.'))
}

/// An IBAN written as one word: two letters, two check digits, 11 to 30 letters or digits.
fn is_iban(w: &str) -> bool {
    let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let b = w.as_bytes();
    (15..=34).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy::embedded().unwrap()
    }

    fn demo() -> (Snapshot, ScanResult) {
        let p = policy();
        let cfg = crate::demo::DemoConfig::with_lines(42, 800, chrono::Utc::now());
        let snap = crate::demo::generate(&cfg, &mut |_, _, _| {});
        let now = snap.taken_at;
        let result = crate::core::detect(&snap, &p, now);
        (snap, result)
    }

    #[test]
    fn roles_see_what_the_policy_names_and_the_marker_says_why() {
        let p = policy();
        let viewer = Audience::role(&p, "viewer");
        assert_eq!(
            viewer.blocked(),
            vec!["credit_payment", "payment_history", "costs_margins"]
        );
        assert_eq!(
            Audience::role(&p, "service_rep").blocked(),
            vec!["payment_history", "costs_margins"]
        );
        assert!(Audience::role(&p, "finance").sees_all());
        // Payment history is finance's own: not even a sales manager or an admin sees it.
        for role in ["sales_manager", "admin"] {
            assert_eq!(Audience::role(&p, role).blocked(), vec!["payment_history"]);
        }
        let mut v = json!({"credit_limit": "1000.00", "email": "a@b.nl", "margin_at_risk": 3});
        let mut out = Redactions::default();
        Withhold::new(&viewer, None).value(&mut v, &mut out);
        assert_eq!(
            v["credit_limit"],
            "[withheld: credit_payment — not visible to viewer]"
        );
        assert_eq!(
            v["margin_at_risk"],
            "[withheld: costs_margins — not visible to viewer]"
        );
        assert_eq!(v["email"], "a@b.nl");
    }

    #[test]
    fn a_channel_sees_what_every_member_may_see() {
        let p = policy();
        let a = Audience::roles(&p, &["finance".into(), "viewer".into()]);
        assert_eq!(
            a.blocked(),
            vec!["credit_payment", "payment_history", "costs_margins"]
        );
        let a = Audience::roles(&p, &["finance".into(), "admin".into()]);
        assert_eq!(a.blocked(), vec!["payment_history"]);
        let a = Audience::roles(&p, &["finance".into()]);
        assert!(a.sees_all());
    }

    /// The credit summary's payment history (and its flat figures) are withheld by key
    /// from a role without the class; the credit position around it stays.
    #[test]
    fn payment_history_is_withheld_from_all_but_finance() {
        let p = policy();
        let rep = Audience::role(&p, "service_rep");
        let mut v = json!({"credit_limit": "1000.00", "late_payment_pct": 50,
            "payment_history": {"invoices_paid_12m": 4, "paid_late_12m": 2, "avg_days_late": 12.5}});
        let mut out = Redactions::default();
        Withhold::new(&rep, None).value(&mut v, &mut out);
        assert_eq!(v["credit_limit"], "1000.00");
        assert_eq!(
            v["payment_history"],
            "[withheld: payment_history — not visible to service_rep]"
        );
        assert_eq!(
            v["late_payment_pct"],
            "[withheld: payment_history — not visible to service_rep]"
        );
        assert_eq!(out.classes.get("payment_history"), Some(&2));
        assert_eq!(
            fact_class(
                &Kind::CreditHold,
                "paid 3 of 6 invoices late in the last 12 months"
            ),
            Some("payment_history")
        );
        assert_eq!(
            fact_class(
                &Kind::CreditHold,
                "payments worsening: 20 days past due on average"
            ),
            Some("payment_history")
        );
        assert_eq!(
            fact_class(
                &Kind::CreditHold,
                "exposure 12000.00 exceeds the credit limit 10000.00"
            ),
            Some("credit_payment")
        );
    }

    #[test]
    fn learned_values_are_withheld_inside_free_text() {
        let (snap, result) = demo();
        let sens = Sensitive::learn(&snap, &result);
        assert!(sens.len() > 10, "{}", sens.len());
        let hold = result
            .exceptions
            .iter()
            .find(|e| e.kind == Kind::CreditHold && e.title.contains("limit"))
            .unwrap();
        let p = policy();
        let viewer = Audience::role(&p, "viewer");
        let mut out = Redactions::default();
        let t = Withhold::new(&viewer, Some(&sens)).text(&hold.title, &mut out);
        assert!(
            !numbers(&t).any(|n| n.len() >= MIN_VALUE_LEN),
            "{} -> {t}",
            hold.title
        );
        assert!(t.contains("not visible to viewer"), "{t}");
        assert!(t.starts_with(&hold.order_ref), "{t}");
        // Finance sees the title as it is.
        let finance = Audience::role(&p, "finance");
        let t = Withhold::new(&finance, Some(&sens)).text(&hold.title, &mut out);
        assert_eq!(t, hold.title);
    }

    #[test]
    fn values_inside_longer_numbers_and_ids_stay() {
        assert!(bounded("limit 1000 ok", 6, 10));
        assert!(!bounded("S01000", 2, 6));
        assert!(!bounded("10000", 0, 4));
        assert!(!bounded("1000.50", 0, 4));
        assert!(bounded("limit 1000.", 6, 10));
    }

    #[test]
    fn patterns_catch_contacts_and_ibans_nobody_learned() {
        let p = policy();
        let external = Audience::provider(&p, "external");
        let mut out = Redactions::default();
        let t = Withhold::new(&external, None).text(
            "call +31-20-5551234, mail x@y.nl, pay NL91ABNA0417164300 now (or +31-20-5559876);",
            &mut out,
        );
        assert!(
            !t.contains("5551234") && !t.contains("x@y.nl") && !t.contains("NL91"),
            "{t}"
        );
        assert!(!t.contains("5559876"), "{t}");
        assert_eq!(out.classes.get("personal_contact"), Some(&3));
        assert_eq!(out.classes.get("credit_payment"), Some(&1));
    }
}
