//! The data-access policy applied to everything sent to a language model.
//!
//! `policies/data_access.toml` says which data classes (personal contact data, credit and
//! payment data, costs and margins) each kind of provider (`local`, `external`) may
//! receive. [`Redactor`] removes the rest from tool results and messages before a prompt
//! is sent, and counts what it removed per class — the audit log records those counts,
//! never the values. Offline answers never leave the process and are not redacted.

use serde_json::Value;

use super::model::Provider;
pub use crate::app::access::Redactions;
use crate::app::access::{Audience, Sensitive, Withhold};
use crate::policy::Policy;

/// Applies the data-access policy for one provider.
pub struct Redactor<'a> {
    audience: Audience,
    sensitive: Option<&'a Sensitive>,
}

impl<'a> Redactor<'a> {
    /// The redactor for a provider under a policy (keys and patterns only).
    pub fn new(policy: &Policy, provider: Provider) -> Redactor<'static> {
        let p = match provider {
            Provider::Local => "local",
            Provider::External => "external",
        };
        Redactor {
            audience: Audience::provider(policy, p),
            sensitive: None,
        }
    }

    /// The same, also scrubbing the values a scan's snapshot holds wherever they appear.
    pub fn learned(self, sensitive: &'a Sensitive) -> Redactor<'a> {
        Redactor {
            audience: self.audience,
            sensitive: Some(sensitive),
        }
    }

    /// Data classes this provider may not receive.
    pub fn blocked(&self) -> Vec<&'static str> {
        self.audience.blocked()
    }

    /// Redact a JSON value in place.
    pub fn value(&self, v: &mut Value, out: &mut Redactions) {
        Withhold::new(&self.audience, self.sensitive).value(v, out)
    }

    /// Redact free text: learned values, e-mail addresses, phone numbers and IBANs.
    pub fn text(&self, s: &str, out: &mut Redactions) -> String {
        Withhold::new(&self.audience, self.sensitive).text(s, out)
    }
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
