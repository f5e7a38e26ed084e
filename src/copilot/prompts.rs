//! The copilot's templates (`prompts/*.j2`, compiled into the binary) in one minijinja
//! environment: the system prompt, the drafts, and the offline answers. Templates see
//! only the data passed in; numbers are formatted by the `money` filter.

use minijinja::{Environment, UndefinedBehavior, Value};

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("system.j2", include_str!("../../prompts/system.j2")),
    ("context.j2", include_str!("../../prompts/context.j2")),
    (
        "customer_update.j2",
        include_str!("../../prompts/customer_update.j2"),
    ),
    (
        "credit_review.j2",
        include_str!("../../prompts/credit_review.j2"),
    ),
    (
        "escalation_note.j2",
        include_str!("../../prompts/escalation_note.j2"),
    ),
    (
        "answer_explain.j2",
        include_str!("../../prompts/answer_explain.j2"),
    ),
    (
        "answer_options.j2",
        include_str!("../../prompts/answer_options.j2"),
    ),
    (
        "answer_list.j2",
        include_str!("../../prompts/answer_list.j2"),
    ),
    (
        "answer_stock.j2",
        include_str!("../../prompts/answer_stock.j2"),
    ),
    (
        "answer_credit.j2",
        include_str!("../../prompts/answer_credit.j2"),
    ),
    (
        "answer_similar.j2",
        include_str!("../../prompts/answer_similar.j2"),
    ),
    (
        "answer_policy.j2",
        include_str!("../../prompts/answer_policy.j2"),
    ),
    (
        "answer_history.j2",
        include_str!("../../prompts/answer_history.j2"),
    ),
    (
        "answer_draft.j2",
        include_str!("../../prompts/answer_draft.j2"),
    ),
    (
        "answer_approval.j2",
        include_str!("../../prompts/answer_approval.j2"),
    ),
    (
        "answer_problem.j2",
        include_str!("../../prompts/answer_problem.j2"),
    ),
    (
        "answer_smalltalk.j2",
        include_str!("../../prompts/answer_smalltalk.j2"),
    ),
    (
        "answer_offtopic.j2",
        include_str!("../../prompts/answer_offtopic.j2"),
    ),
];

/// Languages the customer update is written in.
pub const LANGUAGES: &[&str] = &["en", "de", "nl", "fr", "pl"];

/// `"12345.5"` → `"12,345.50"`; anything that is not a number passes through.
fn money(v: Value) -> String {
    let s = v.to_string();
    let Ok(d) = s.parse::<rust_decimal::Decimal>() else {
        return s;
    };
    let d = d.round_dp(2);
    let neg = d.is_sign_negative() && !d.is_zero();
    let text = format!("{:.2}", d.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}.{frac}", if neg { "-" } else { "" })
}

/// The template environment.
pub struct Prompts {
    env: Environment<'static>,
}

impl Prompts {
    /// Load the embedded templates. Fails only if a template does not compile, which a
    /// unit test rules out.
    pub fn new() -> Result<Prompts, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.add_filter("money", money);
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .map_err(|e| format!("prompts/{name}: {e}"))?;
        }
        Ok(Prompts { env })
    }

    /// Render a template with a JSON context.
    pub fn render(&self, name: &str, ctx: serde_json::Value) -> Result<String, String> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| format!("prompts/{name}: {e}"))?;
        t.render(Value::from(minijinja::value::Serde(&ctx)))
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("prompts/{name}: {e}"))
    }

    /// Whether customer updates can be written in this language.
    pub fn has_language(&self, lang: &str) -> bool {
        LANGUAGES.contains(&lang)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn p() -> Prompts {
        Prompts::new().unwrap()
    }

    #[test]
    fn money_groups_thousands_and_keeps_two_decimals() {
        assert_eq!(money(Value::from("1234567.5")), "1,234,567.50");
        assert_eq!(money(Value::from("12")), "12.00");
        assert_eq!(money(Value::from("-1000")), "-1,000.00");
        assert_eq!(money(Value::from("n/a")), "n/a");
    }

    #[test]
    fn system_prompt() {
        insta::assert_snapshot!(p().render("system.j2", json!({})).unwrap());
        insta::assert_snapshot!(
            "context",
            p().render(
                "context.j2",
                json!({"user": "ana", "role": "service_rep", "today": "2026-11-26", "currency": "EUR",
                       "order": "S00042", "redacted": ["credit_payment"]})
            )
            .unwrap()
        );
    }

    #[test]
    fn customer_updates_in_every_language_and_tone() {
        let mut all = String::new();
        for lang in LANGUAGES {
            for tone in ["neutral", "apologetic", "formal", "friendly"] {
                let text = p()
                    .render(
                        "customer_update.j2",
                        json!({"lang": lang, "tone": tone, "customer": "Bakker Bouw B.V.", "order": "S00042",
                               "promised": "2026-12-01",
                               "issues": [{"kind": "stock_shortage", "eta": "2026-12-04"}, {"kind": "credit_hold", "eta": null}]}),
                    )
                    .unwrap();
                assert!(
                    text.contains("S00042") && text.contains("2026-12-04"),
                    "{lang}/{tone}: {text}"
                );
                all.push_str(&format!("## {lang} {tone}\n{text}\n\n"));
            }
        }
        insta::assert_snapshot!(all);
    }

    #[test]
    fn credit_review_and_escalation() {
        let case = json!({"case_id": "EX-1", "rule": "thresholds.credit_hold.max_overdue_days", "kind_label": "credit hold",
            "title": "S00042: invoices 67 days overdue", "owner": "finance", "severity": "high", "score": 57,
            "revenue_at_risk": "19895.72",
            "evidence": [{"fact": "credit limit 334000.00", "ref": "C00264"}],
            "options": [{"option": 1, "summary": "Release S00042", "approver_roles": ["finance"], "tradeoffs": ["adds exposure"]}]});
        let credit = json!({"customer": "Pennine Ltd", "tier": "A", "key_account": true, "credit_limit": "334000.00",
            "exposure": "143092.77", "open_receivables": "90200.66", "open_invoices": 7, "uninvoiced_orders": "52892.11",
            "open_orders": 3, "overdue_invoices": 1, "oldest_overdue_invoice": "INV/2026/00362", "max_overdue_days": 67,
            "paid_late_12m": 24, "invoices_paid_12m": 49, "late_payment_pct": 49, "payment_terms_days": 30,
            "payment_history": {"invoices_paid_12m": 49, "paid_late_12m": 24, "late_payment_pct": 49, "avg_days_late": 12.5,
                "max_days_late": 41, "avg_days_past_due": 6.1, "partially_paid": 1, "credited": 2,
                "trend": {"direction": "worsening", "recent_days_past_due": 14.0, "recent_invoices": 9, "earlier_days_past_due": 3.2, "earlier_invoices": 40},
                "oldest_open": {"invoice": "INV/2026/00362", "due": "2026-09-30", "days_past_due": 67, "residual": "4200.00"}}});
        let review = p()
            .render(
                "credit_review.j2",
                json!({"order": "S00042", "open_value": "19895.72", "currency": "EUR",
                "promised": "2026-12-06", "credit": credit, "case": case}),
            )
            .unwrap();
        let note = p()
            .render("escalation_note.j2", json!({"order": "S00042", "customer": "Pennine Ltd", "tier": "A",
                "to_role": "sales_manager", "from": "ana", "open_value": "19895.72", "currency": "EUR",
                "promised": "2026-12-06", "cases": [case]}))
            .unwrap();
        insta::assert_snapshot!(format!("{review}\n\n=====\n\n{note}"));
    }
}
