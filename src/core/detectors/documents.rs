//! Missing documents, checked on the deliveries where they are due: the documents prepared
//! ahead (export papers, a dangerous-goods declaration) `ship_docs_before_hours` before a
//! delivery's scheduled date; every shipping document, the delivery slip included, at
//! shipping (a done delivery without them is reported at once); proof of delivery
//! `pod_after_hours` after shipping. The delivery slip is printed when the delivery ships,
//! so an open delivery is never missing it, and a signed proof of delivery is the signed
//! slip, so it stands for it. Missing proof of delivery blocks invoicing disputes and payment.

use chrono::Duration;
use rust_decimal::Decimal;

use crate::text;

use super::{base, day, ev, impact, policy_ev, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};
use crate::domain::{DocumentKind, PickingState};

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    let snap = ctx.snap;
    let t = &ctx.policy.thresholds.missing_documents;
    let before = Duration::hours(i64::from(t.ship_docs_before_hours));
    let pod_after = Duration::hours(i64::from(t.pod_after_hours));
    for p in &snap.pickings {
        let Some(order) = snap.orders.get(p.order as usize) else {
            continue;
        };
        if !ctx.valid.order(p.order as usize)
            || !ctx.order_active(order) && p.state != PickingState::Done
        {
            continue;
        }
        let has = |d: &DocumentKind| {
            p.documents_present.contains(d)
                || *d == DocumentKind::DeliverySlip
                    && p.documents_present.contains(&DocumentKind::ProofOfDelivery)
        };
        // Most pickings have everything: check before collecting anything.
        if p.documents_required.iter().all(has) {
            continue;
        }
        let missing = p.documents_required.iter().copied().filter(|d| !has(d));
        let (docs, rule, fact): (Vec<DocumentKind>, &str, String) = match p.state {
            PickingState::Cancel => continue,
            PickingState::Done => {
                let Some(done) = p.done_at else { continue };
                let pod_due = ctx.now - done > pod_after;
                let docs: Vec<DocumentKind> = missing
                    .filter(|d| *d != DocumentKind::ProofOfDelivery || pod_due)
                    .collect();
                let shipping: Vec<&str> = docs
                    .iter()
                    .filter(|d| **d != DocumentKind::ProofOfDelivery)
                    .map(|d| d.as_str())
                    .collect();
                let (rule, fact) = if shipping.is_empty() {
                    (
                        "thresholds.missing_documents.pod_after_hours",
                        text!(
                            p.name,
                            " shipped ",
                            day(done),
                            " and has no proof of delivery after ",
                            (ctx.now - done).num_days(),
                            " days"
                        ),
                    )
                } else {
                    (
                        "thresholds.missing_documents.ship_docs_before_hours",
                        text!(
                            p.name,
                            " shipped ",
                            day(done),
                            " without ",
                            shipping.join(", "),
                            if docs.contains(&DocumentKind::ProofOfDelivery) {
                                " and has no proof of delivery"
                            } else {
                                ""
                            }
                        ),
                    )
                };
                if docs.is_empty() {
                    continue;
                }
                (docs, rule, fact)
            }
            _ => {
                let ship_docs: Vec<DocumentKind> = missing
                    .filter(|d| {
                        !matches!(
                            d,
                            DocumentKind::ProofOfDelivery | DocumentKind::DeliverySlip
                        )
                    })
                    .collect();
                let Some(scheduled) = p.scheduled else {
                    continue;
                };
                if ship_docs.is_empty() || scheduled - ctx.now > before {
                    continue;
                }
                let names: Vec<&str> = ship_docs.iter().map(|d| d.as_str()).collect();
                let fact = text!(
                    p.name,
                    " ships ",
                    day(scheduled),
                    " and lacks ",
                    names.join(", ")
                );
                (
                    ship_docs,
                    "thresholds.missing_documents.ship_docs_before_hours",
                    fact,
                )
            }
        };
        let names: Vec<String> = docs.iter().map(|d| d.as_str().to_string()).collect();
        let value: Decimal = snap
            .order_lines(order)
            .iter()
            .map(|l| l.qty * l.net_price())
            .sum();
        let listed = names.join(", ");
        let title = text!(p.name, ": missing ", listed);
        let mut e = base(
            ctx,
            Kind::MissingDocuments,
            &[&p.name, &names.join("+")],
            order,
            None,
            title,
            rule.into(),
            impact(ctx, order, value, Decimal::ZERO, 0),
        );
        e.warehouse = snap
            .warehouses
            .get(p.warehouse as usize)
            .map(|w| w.code.clone());
        e.evidence
            .push(ev(fact, "stock.picking", p.id, p.name.clone()));
        let present: Vec<&str> = p.documents_present.iter().map(|d| d.as_str()).collect();
        e.evidence.push(ev(
            if present.is_empty() {
                "attached: nothing".to_string()
            } else {
                text!("attached: ", present.join(", "))
            },
            "ir.attachment",
            p.id,
            p.name.clone(),
        ));
        e.evidence.push(policy_ev(
            ctx,
            rule,
            text!(
                "export and hazard documents are due ",
                t.ship_docs_before_hours,
                " h before shipping, the delivery slip at shipping; proof of delivery within ",
                t.pod_after_hours,
                " h after"
            ),
        ));
        e.confidence = 0.9;
        e.recommendations.push(rec(
            ctx,
            Action::RequestDocuments {
                picking: p.name.clone(),
                documents: names.clone(),
            },
            text!("Ask for ", listed, " on ", p.name),
            vec![if p.state != PickingState::Done {
                "the shipment waits if the documents are not ready by the ship date".to_string()
            } else if docs == [DocumentKind::ProofOfDelivery] {
                "the carrier or customer must supply it; invoicing disputes stay open until then"
                    .to_string()
            } else {
                "the warehouse attaches copies of the documents it shipped with".to_string()
            }],
        ));
        super::push(out, e);
    }
}
