//! Claims of completion in a model's answer.
//!
//! A model can never change anything: `act` tools only create approval requests. Small
//! models still write "the credit hold has been released" after requesting a release.
//! The engine checks every model answer with [`false_completion`] and, when it finds such
//! a sentence, appends a correction that names what is really pending — the user is never
//! left believing an action ran.

/// Verbs of what the copilot could be thought to have done ("I updated the date").
const FIRST_PERSON_VERBS: &[&str] = &[
    "released",
    "sent",
    "emailed",
    "updated",
    "rescheduled",
    "moved",
    "changed",
    "approved",
    "executed",
    "applied",
    "cancelled",
    "canceled",
    "posted",
    "contacted",
    "notified",
    "reallocated",
    "adjusted",
    "corrected",
    "lifted",
    "removed",
    "expedited",
];

/// Of those, the ones that after "has been" / "is now" can only mean an approved action
/// ran: "updated", "changed", "moved" also describe an order's own history ("the order has
/// been changed four times"), so they count only in the first person.
const ACTION_RESULTS: &[&str] = &[
    "released",
    "sent",
    "emailed",
    "rescheduled",
    "approved",
    "executed",
    "contacted",
    "notified",
    "reallocated",
    "lifted",
    "expedited",
];

/// Of those, the ones that even after "was" cannot describe an order's history in a
/// tool result ("the hold was released").
const UNAMBIGUOUS: &[&str] = &["released", "executed", "lifted", "rescheduled"];

/// Sentences with these are about the future, a request or a negation, not a claim.
const HEDGES: &[&str] = &[
    "pending",
    "awaiting",
    "waiting",
    "request",
    "once",
    "after approv",
    "until",
    "will",
    "would",
    "could",
    "can ",
    "cannot",
    "not ",
    "n't",
    "no ",
    "never",
    "if ",
    "needs",
    "need to",
    "must",
    "should",
];

/// The first sentence of `answer` that says an action was carried out, if any.
pub fn false_completion(answer: &str) -> Option<String> {
    answer
        .split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .find(|sentence| claims(sentence))
        .map(str::to_string)
}

fn claims(sentence: &str) -> bool {
    let lower = sentence.to_lowercase();
    if HEDGES.iter().any(|h| lower.contains(h)) {
        return false;
    }
    if lower.contains("successfully") {
        return true;
    }
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let first_person = |w: &str| matches!(w, "i" | "i've" | "we" | "we've");
    // "Released." / "Done: sent to the customer."
    if words
        .first()
        .is_some_and(|w| *w == "done" || ACTION_RESULTS.contains(w))
    {
        return true;
    }
    // "has been drafted and sent": a result verb anywhere after "been".
    if let Some(b) = words.iter().position(|w| *w == "been")
        && words[b + 1..].iter().any(|w| ACTION_RESULTS.contains(w))
    {
        return true;
    }
    (1..words.len()).any(|j| {
        let (verb, prev) = (words[j], words[j - 1]);
        let prev2 = if j >= 2 { words[j - 2] } else { "" };
        (FIRST_PERSON_VERBS.contains(&verb)
            && (first_person(prev) || matches!(prev, "have" | "already") && first_person(prev2)))
            || (ACTION_RESULTS.contains(&verb) && matches!(prev, "been" | "now"))
            || (UNAMBIGUOUS.contains(&verb) && matches!(prev, "was" | "were"))
    })
}

/// The first sentence of `answer` that says an approval request was made ("I have
/// requested the release…", "an approval request was created"): false when the turn
/// created none.
pub fn claimed_request(answer: &str) -> Option<String> {
    answer
        .split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .find(|sentence| {
            let lower = sentence.to_lowercase();
            let made = ["requested", "submitted", "created", "raised", "filed"];
            let said = [
                "i have ",
                "i've ",
                "i ",
                "we have ",
                "has been ",
                "have been ",
                "was ",
            ];
            let negated = lower.contains("not ")
                || lower.contains("n't")
                || lower.contains("nothing")
                || lower.starts_with("no ")
                || lower.contains(" no ");
            !negated
                && !lower.contains("can ")
                && !lower.contains("would")
                && !lower.contains("will")
                && made
                    .iter()
                    .any(|m| said.iter().any(|s| lower.contains(&format!("{s}{m}"))))
        })
        .map(str::to_string)
}

/// The correction appended to an answer that claimed a request no tool call made.
pub fn no_request_correction() -> String {
    "Correction: no approval request was created in this turn. Ask again to request the action; an authorised person then decides.".into()
}

/// The correction appended to an answer that claimed a completed action.
pub fn correction(approvals: &[String]) -> String {
    match approvals {
        [] => "Correction: nothing has been changed. The copilot cannot change orders or contact customers; ask it to request the action, and an authorised person decides.".into(),
        [one] => format!(
            "Correction: nothing has been changed yet. Approval request {one} is pending; the action runs only once an authorised person approves it."
        ),
        many => format!(
            "Correction: nothing has been changed yet. Approval requests {} are pending; the actions run only once an authorised person approves them.",
            many.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_of_completed_actions_are_found() {
        for text in [
            "The credit hold on S00042 has been released.",
            "Done! I have sent the update to the customer.",
            "I released the hold [S00042].",
            "The promised date has been rescheduled to 2026-12-04.",
            "The order is now rescheduled.",
            "We already notified the carrier.",
            "The hold was successfully lifted.",
            "I've contacted the customer about S00017.",
            "APPROVED: the credit hold was released (approval ap_1 executed).",
            "Released.",
            "The poem has been drafted and sent to Wagner Anlagenbau GmbH about order S00042.",
        ] {
            assert!(false_completion(text).is_some(), "{text}");
        }
    }

    #[test]
    fn requests_plans_and_negations_are_not_claims() {
        for text in [
            "I requested the release of the credit hold; it is pending approval by finance.",
            "Once finance approves, the hold will be released.",
            "The hold has not been released.",
            "S00042 is short of 40 units of SKU-10023 [S00042].",
            "The approval request AP-12 is waiting for finance.",
            "Stock was allocated to S00017 on 2026-11-20, before S00042 was confirmed.",
            "Nothing was sent.",
            "The customer can be contacted after approval.",
            // Facts of the order's own history, from tool results.
            "The order has been changed 4 times in 30 days [S00042].",
            "The promised date was moved twice by the customer.",
            "Invoice INV/2026/0042 was posted on 2026-10-01.",
        ] {
            let found = false_completion(text);
            assert!(found.is_none(), "{text}: {found:?}");
        }
    }

    #[test]
    fn claimed_requests_are_found() {
        for text in [
            "I have requested the release of the credit hold for S01021.",
            "An approval request has been created for finance.",
            "I've submitted option 2 for approval.",
        ] {
            assert!(claimed_request(text).is_some(), "{text}");
        }
        for text in [
            "I can request the release if you ask.",
            "Nothing was requested.",
            "S00042 was ordered on 2026-11-20.",
            "Shall I request option 1?",
        ] {
            assert!(claimed_request(text).is_none(), "{text}");
        }
    }

    #[test]
    fn the_correction_names_pending_requests() {
        assert!(correction(&[]).contains("nothing has been changed"));
        assert!(correction(&["ap_1".into()]).contains("ap_1 is pending"));
        assert!(correction(&["ap_1".into(), "ap_2".into()]).contains("ap_1, ap_2 are pending"));
    }
}
