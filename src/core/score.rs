//! Scoring: impact (revenue at risk, margin at risk, hours past the promise, customer
//! tier) folded into a 0–100 score by the policy's weights, then severity and escalation.
//!
//! Each part grows monotonically with its input and saturates at the policy's "full at"
//! value (money on a square-root scale, so the first thousand at risk moves the score more
//! than the fiftieth), so more at risk never lowers a score.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::exception::{Escalation, Exception, Kind};
use crate::policy::{Policy, Scoring};

fn money_part(v: Decimal, full: Decimal) -> f64 {
    let v = v.to_f64().unwrap_or(0.0).max(0.0);
    let full = full.to_f64().unwrap_or(1.0).max(1.0);
    (v / full).sqrt().clamp(0.0, 1.0)
}

/// The 0–100 score of an impact.
pub fn score(impact: &super::Impact, s: &Scoring) -> u8 {
    let w = &s.weights;
    let revenue = money_part(impact.revenue_at_risk, s.revenue_full_at);
    let margin = money_part(impact.margin_at_risk, s.margin_full_at);
    let late = (impact.hours_past_promise.max(0) as f64
        / f64::from(s.lateness_full_at_hours.max(1)))
    .min(1.0);
    let tier = s.tier_factor.of(impact.tier).clamp(0.0, 1.0);
    let total = f64::from(w.revenue) * revenue
        + f64::from(w.margin) * margin
        + f64::from(w.lateness) * late
        + f64::from(w.tier) * tier;
    total.round().clamp(0.0, 100.0) as u8
}

/// Fill in score, severity and escalation.
pub fn finish(e: &mut Exception, policy: &Policy) {
    e.score = score(&e.impact, &policy.scoring);
    e.severity = policy.severity(e.score);
    let (route, floor) = match &e.kind {
        Kind::Custom(name) => {
            let rule = policy.rules.iter().find(|r| &r.name == name);
            (rule.map(|r| &r.route), rule.and_then(|r| r.min_severity))
        }
        k => (policy.route(k.as_str()), None),
    };
    if let Some(f) = floor {
        e.severity = e.severity.max(f);
    }
    e.escalation = route.and_then(|r| {
        let to = r.escalate_to.as_ref()?;
        let at = r.escalate_at_score?;
        (e.score >= at).then(|| Escalation {
            to_role: to.clone(),
            reason: crate::text!("score ", e.score, " is at or above ", at),
        })
    });
    e.confidence = (e.confidence * 100.0).round() / 100.0;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::core::Impact;
    use crate::domain::Tier;
    use proptest::prelude::*;

    fn tier() -> impl Strategy<Value = Tier> {
        prop_oneof![Just(Tier::A), Just(Tier::B), Just(Tier::C)]
    }

    fn impact(r: i64, m: i64, h: i64, t: Tier) -> Impact {
        Impact {
            revenue_at_risk: Decimal::new(r, 2),
            margin_at_risk: Decimal::new(m, 2),
            hours_past_promise: h,
            tier: t,
        }
    }

    #[test]
    fn zero_impact_scores_only_tier() {
        let p = Policy::embedded().unwrap();
        let s = score(&impact(0, 0, 0, Tier::C), &p.scoring);
        assert_eq!(s, 5); // 20 × 0.25
        let s = score(&impact(0, 0, 0, Tier::A), &p.scoring);
        assert_eq!(s, 20);
    }

    #[test]
    fn saturates_at_100() {
        let p = Policy::embedded().unwrap();
        assert_eq!(
            score(
                &impact(i64::MAX / 4, i64::MAX / 4, 100_000, Tier::A),
                &p.scoring
            ),
            100
        );
    }

    #[test]
    fn negative_inputs_do_not_underflow() {
        let p = Policy::embedded().unwrap();
        assert_eq!(score(&impact(-500, -500, -10, Tier::C), &p.scoring), 5);
    }

    proptest! {
        #[test]
        fn more_revenue_never_lowers_the_score(r in 0i64..10_000_000_000, extra in 0i64..10_000_000_000,
                                               m in 0i64..1_000_000_000, h in 0i64..1000, t in tier()) {
            let p = Policy::embedded().unwrap();
            let a = score(&impact(r, m, h, t), &p.scoring);
            let b = score(&impact(r + extra, m, h, t), &p.scoring);
            prop_assert!(b >= a, "{a} then {b}");
        }

        #[test]
        fn more_margin_lateness_or_better_tier_never_lowers(r in 0i64..1_000_000_000, m in 0i64..1_000_000_000,
                                                              dm in 0i64..1_000_000_000, h in 0i64..1000, dh in 0i64..1000) {
            let p = Policy::embedded().unwrap();
            let base = score(&impact(r, m, h, Tier::B), &p.scoring);
            prop_assert!(score(&impact(r, m + dm, h, Tier::B), &p.scoring) >= base);
            prop_assert!(score(&impact(r, m, h + dh, Tier::B), &p.scoring) >= base);
            prop_assert!(score(&impact(r, m, h, Tier::A), &p.scoring) >= base);
            prop_assert!(score(&impact(r, m, h, Tier::C), &p.scoring) <= base);
        }
    }
}
