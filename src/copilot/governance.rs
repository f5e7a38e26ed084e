//! The data-access policy applied to everything sent to a language model.
//!
//! `policies/data_access.toml` says which data classes (personal contact data, credit and
//! payment data, costs and margins) each kind of provider (`local`, `external`) may
//! receive. [`Redactor`] removes the rest from tool results and messages before a prompt
//! is sent, and counts what it removed per class — the audit log records those counts,
//! never the values. Offline answers never leave the process and are not redacted.

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::Provider;
use crate::policy::Policy;

/// Keys of tool data that hold one data class.
const KEY_CLASSES: &[(&str, &str)] = &[
    ("email", "personal_contact"),
    ("phone", "personal_contact"),
    ("contact", "personal_contact"),
    ("contact_name", "personal_contact"),
    ("credit_limit", "credit_payment"),
    ("open_receivables", "credit_payment"),
    ("open_invoices", "credit_payment"),
    ("exposure", "credit_payment"),
    ("headroom", "credit_payment"),
    ("uninvoiced_orders", "credit_payment"),
    ("overdue_invoices", "credit_payment"),
    ("max_overdue_days", "credit_payment"),
    ("oldest_overdue_invoice", "credit_payment"),
    ("payment_terms_days", "credit_payment"),
    ("invoices_paid_12m", "credit_payment"),
    ("paid_late_12m", "credit_payment"),
    ("late_payment_pct", "credit_payment"),
    ("credit_review", "credit_payment"),
    ("margin_at_risk", "costs_margins"),
    ("margin_pct", "costs_margins"),
    ("cost", "costs_margins"),
];

/// Fields of a tagged object (`{"class": …, "fact": …}`) that carry its content.
const CONTENT_KEYS: &[&str] = &["fact", "summary", "tradeoffs", "text", "title"];

/// What was removed, per data class (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Redactions {
    /// Class → number of values removed.
    pub classes: BTreeMap<String, u64>,
}

impl Redactions {
    fn add(&mut self, class: &str) {
        *self.classes.entry(class.to_string()).or_default() += 1;
    }

    /// Whether nothing was removed.
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

/// Applies the data-access policy for one provider.
pub struct Redactor {
    blocked: Vec<&'static str>,
}

fn marker(class: &str) -> Value {
    Value::String(format!("[withheld: {class}]"))
}

impl Redactor {
    /// The redactor for a provider under a policy.
    pub fn new(policy: &Policy, provider: Provider) -> Redactor {
        let p = match provider {
            Provider::Local => "local",
            Provider::External => "external",
        };
        Redactor {
            blocked: crate::policy::DATA_CLASSES
                .iter()
                .copied()
                .filter(|c| !policy.allows_data(p, c))
                .collect(),
        }
    }

    /// Data classes this provider may not receive.
    pub fn blocked(&self) -> &[&'static str] {
        &self.blocked
    }

    fn blocks(&self, class: &str) -> bool {
        self.blocked.contains(&class)
    }

    /// Redact a JSON value in place.
    pub fn value(&self, v: &mut Value, out: &mut Redactions) {
        if self.blocked.is_empty() {
            return;
        }
        match v {
            Value::Object(map) => {
                let tagged = map
                    .get("class")
                    .and_then(Value::as_str)
                    .filter(|c| self.blocks(c))
                    .map(str::to_string);
                for (k, val) in map.iter_mut() {
                    if let Some(class) = &tagged
                        && CONTENT_KEYS.contains(&k.as_str())
                        && !val.is_null()
                    {
                        *val = marker(class);
                        out.add(class);
                        continue;
                    }
                    match KEY_CLASSES.iter().find(|(key, _)| key == k) {
                        Some((_, class)) if self.blocks(class) && !val.is_null() => {
                            *val = marker(class);
                            out.add(class);
                        }
                        _ => self.value(val, out),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.value(x, out)),
            Value::String(s) => {
                let t = self.text(s, out);
                if t != *s {
                    *s = t;
                }
            }
            _ => {}
        }
    }

    /// Redact free text: e-mail addresses and phone numbers when personal contact data
    /// is blocked.
    pub fn text(&self, s: &str, out: &mut Redactions) -> String {
        if !self.blocks("personal_contact") {
            return s.to_string();
        }
        let mut result = String::with_capacity(s.len());
        for (i, word) in s.split(' ').enumerate() {
            if i > 0 {
                result.push(' ');
            }
            if is_email(word) || is_phone(word) {
                result.push_str("[withheld: personal_contact]");
                out.add("personal_contact");
            } else {
                result.push_str(word);
            }
        }
        result
    }
}

fn is_email(w: &str) -> bool {
    let w = w.trim_matches(|c: char| !c.is_alphanumeric());
    match w.split_once('@') {
        Some((user, host)) => !user.is_empty() && host.contains('.') && !host.starts_with('.'),
        None => false,
    }
}

fn is_phone(w: &str) -> bool {
    let digits = w.chars().filter(|c| c.is_ascii_digit()).count();
    w.starts_with('+')
        && digits >= 8
        && w.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn external_providers_get_no_credit_margin_or_contact_data_by_default() {
        let policy = Policy::embedded().unwrap();
        let r = Redactor::new(&policy, Provider::External);
        let mut v = json!({
            "customer": "Bakker Bouw",
            "credit_limit": "100000.00",
            "exceptions": [{"margin_at_risk": "12.00", "revenue_at_risk": "100.00",
                "evidence": [{"fact": "credit limit 100000.00", "class": "credit_payment", "ref": "C1"},
                             {"fact": "reserved 5", "ref": "S1"}]}],
            "note": "mail jan@bakker.nl or call +31-20-5551234"
        });
        let mut out = Redactions::default();
        r.value(&mut v, &mut out);
        let text = v.to_string();
        assert!(!text.contains("100000"), "{text}");
        assert!(!text.contains("12.00"));
        assert!(!text.contains("jan@bakker.nl") && !text.contains("5551234"));
        assert!(
            text.contains("reserved 5") && text.contains("100.00") && text.contains("Bakker Bouw")
        );
        assert_eq!(out.classes.get("credit_payment"), Some(&2));
        assert_eq!(out.classes.get("costs_margins"), Some(&1));
        assert_eq!(out.classes.get("personal_contact"), Some(&2));
    }

    #[test]
    fn local_providers_get_everything_the_policy_allows() {
        let policy = Policy::embedded().unwrap();
        let r = Redactor::new(&policy, Provider::Local);
        let mut v = json!({"credit_limit": "1.00", "email": "a@b.c"});
        let before = v.clone();
        let mut out = Redactions::default();
        r.value(&mut v, &mut out);
        assert_eq!(v, before);
        assert!(out.is_empty());
    }
}
