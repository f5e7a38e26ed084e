//! Custom rules from `policies/`: each compiled expression is evaluated per open line or
//! per order, over the fields listed in `policy::fields`. A rule that fires becomes an
//! exception of its own kind with the same evidence, scoring, routing and approvals as the
//! built-in kinds; the evidence lists the value of every field the rule read.

use crate::core::fmt::Num;
use rust_decimal::Decimal;

use super::{base, ev, impact, line_ref, margin_on, rec};
use crate::core::context::Context;
use crate::core::exception::{Action, Exception, Kind};
use crate::domain::{Ix, OrderLine, OrderState, SalesOrder};
use crate::policy::expr::{FieldId, Record, Value};
use crate::policy::fields::{FIELDS, Field};
use crate::policy::{CustomRule, RuleScope};

/// The record a rule reads: an order, optionally one of its lines.
pub struct RuleRecord<'c, 'a> {
    ctx: &'c Context<'a>,
    oi: Ix,
    order: &'a SalesOrder,
    line: Option<(Ix, &'a OrderLine)>,
    open_value: Decimal,
}

impl<'c, 'a> RuleRecord<'c, 'a> {
    /// A record for an order (and optionally a line of it).
    pub fn new(ctx: &'c Context<'a>, oi: Ix, line: Option<Ix>) -> Option<Self> {
        let order = ctx.snap.orders.get(oi as usize)?;
        let line = match line {
            Some(li) => Some((li, ctx.snap.lines.get(li as usize)?)),
            None => None,
        };
        let open_value = ctx.order_value(oi);
        Some(RuleRecord {
            ctx,
            oi,
            order,
            line,
            open_value,
        })
    }

    fn customer(&self) -> Option<&'a crate::domain::Customer> {
        self.ctx.snap.customers.get(self.order.customer as usize)
    }

    fn product(&self) -> Option<&'a crate::domain::Product> {
        self.line
            .and_then(|(_, l)| self.ctx.snap.products.get(l.product as usize))
    }

    fn order_need_hours(&self) -> Option<i64> {
        let first = self.order.first_line;
        let need = (0..self.order.line_count)
            .map(|k| self.ctx.need(first + k))
            .min()
            .or(self.order.promised)?;
        Some((need - self.ctx.now).num_hours())
    }
}

fn num(d: Decimal) -> Value<'static> {
    Value::Num(d)
}

fn int(i: i64) -> Value<'static> {
    Value::Num(Decimal::from(i))
}

impl Record for RuleRecord<'_, '_> {
    fn get(&self, field: FieldId) -> Value<'_> {
        let Some((f, ..)) = FIELDS.get(field.0 as usize) else {
            return Value::Null;
        };
        let ctx = self.ctx;
        let line = self.line.map(|(_, l)| l);
        match f {
            Field::OrderName => Value::Str(&self.order.name),
            Field::OrderState => Value::Str(self.order.state.as_str()),
            Field::OrderWarehouse => ctx
                .snap
                .warehouses
                .get(self.order.warehouse as usize)
                .map(|w| Value::Str(&w.code))
                .unwrap_or(Value::Null),
            Field::OrderOpenValue => num(self.open_value),
            Field::OrderLineCount => int(i64::from(self.order.line_count)),
            Field::OrderHasPromise => Value::Bool(self.order.promised.is_some()),
            Field::OrderHoursToPromise => self.order_need_hours().map(int).unwrap_or(Value::Null),
            Field::OrderAgeDays => int((ctx.now - self.order.date_order).num_days()),
            Field::OrderChangeCount => ctx
                .recent_changes
                .get(self.oi as usize)
                .map(|&n| int(i64::from(n)))
                .unwrap_or(Value::Null),
            Field::LineQty => line.map(|l| num(l.qty)).unwrap_or(Value::Null),
            Field::LineOpenQty => self
                .line
                .map(|(li, _)| num(ctx.open(li)))
                .unwrap_or(Value::Null),
            Field::LineReservedQty => line.map(|l| num(l.qty_reserved)).unwrap_or(Value::Null),
            Field::LinePriceUnit => line.map(|l| num(l.price_unit)).unwrap_or(Value::Null),
            Field::LineDiscountPct => line.map(|l| num(l.discount)).unwrap_or(Value::Null),
            Field::LineNetPrice => self
                .line
                .map(|(li, _)| num(ctx.net(li)))
                .unwrap_or(Value::Null),
            Field::LineMarginPct => match (self.line, self.product().and_then(|p| p.cost)) {
                (Some((li, _)), Some(cost)) if ctx.net(li) > Decimal::ZERO => {
                    let net = ctx.net(li);
                    num((net - cost) / net * Decimal::ONE_HUNDRED)
                }
                _ => Value::Null,
            },
            Field::LineOpenValue => self
                .line
                .map(|(li, _)| num(ctx.open_value(li)))
                .unwrap_or(Value::Null),
            Field::LineHoursToPromise => self
                .line
                .map(|(li, _)| int((ctx.need(li) - ctx.now).num_hours()))
                .unwrap_or(Value::Null),
            Field::ProductSku => self
                .product()
                .map(|p| Value::Str(&p.sku))
                .unwrap_or(Value::Null),
            Field::ProductCategory => self
                .product()
                .map(|p| Value::Str(&p.category))
                .unwrap_or(Value::Null),
            Field::ProductCost => self
                .product()
                .and_then(|p| p.cost)
                .map(num)
                .unwrap_or(Value::Null),
            Field::ProductListPrice => self
                .product()
                .map(|p| num(p.list_price))
                .unwrap_or(Value::Null),
            Field::ProductFreeStock => line
                .and_then(|l| ctx.stock.get(ctx.slot(l.product, self.order.warehouse)))
                .map(|s| num(s.0 - s.1))
                .unwrap_or(Value::Null),
            Field::CustomerName => self
                .customer()
                .map(|c| Value::Str(&c.name))
                .unwrap_or(Value::Null),
            Field::CustomerTier => self
                .customer()
                .map(|c| Value::Str(c.tier.as_str()))
                .unwrap_or(Value::Null),
            Field::CustomerKeyAccount => self
                .customer()
                .map(|c| Value::Bool(c.key_account))
                .unwrap_or(Value::Null),
            Field::CustomerCountry => self
                .customer()
                .map(|c| Value::Str(&c.country))
                .unwrap_or(Value::Null),
            Field::CustomerHasCreditLimit => self
                .customer()
                .map(|c| Value::Bool(c.credit_limit.is_some()))
                .unwrap_or(Value::Null),
            Field::CustomerCreditLimit => self
                .customer()
                .and_then(|c| c.credit_limit)
                .map(num)
                .unwrap_or(Value::Null),
            Field::CustomerOpenReceivables => ctx
                .credit
                .get(self.order.customer as usize)
                .map(|p| num(p.receivables))
                .unwrap_or(Value::Null),
            Field::CustomerMaxOverdueDays => ctx
                .credit
                .get(self.order.customer as usize)
                .map(|p| int(p.max_overdue_days))
                .unwrap_or(Value::Null),
            Field::CustomerLatePaymentShare => self
                .customer()
                .filter(|c| c.payments.invoices_paid > 0)
                .map(|c| {
                    num(Decimal::from(c.payments.paid_late)
                        / Decimal::from(c.payments.invoices_paid))
                })
                .unwrap_or(Value::Null),
            Field::CustomerPaymentTermsDays => self
                .customer()
                .map(|c| int(i64::from(c.payment_terms_days)))
                .unwrap_or(Value::Null),
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Num(d) => Num(d.round_dp(2)).to_string(),
        Value::Str(s) => format!("'{s}'"),
        Value::Bool(b) => b.to_string(),
    }
}

pub(super) fn detect(ctx: &Context, out: &mut Vec<Exception>) {
    if ctx.policy.rules.is_empty() {
        return;
    }
    let snap = ctx.snap;
    for (oi, order) in snap.orders.iter().enumerate() {
        if !ctx.valid.order(oi)
            || !matches!(
                order.state,
                OrderState::Draft | OrderState::Sent | OrderState::Sale
            )
        {
            continue;
        }
        for rule in &ctx.policy.rules {
            match rule.scope {
                RuleScope::Order => {
                    if let Some(r) = RuleRecord::new(ctx, oi as Ix, None)
                        && rule.when.eval_bool(&r)
                    {
                        super::push(out, fire(ctx, rule, &r));
                    }
                }
                RuleScope::Line => {
                    for k in 0..order.line_count {
                        let li = order.first_line + k;
                        // The context's open quantity (never negative) spares
                        // recomputing it per rule.
                        if ctx.open(li).is_zero() || !ctx.valid.line(li as usize) {
                            continue;
                        }
                        if let Some(r) = RuleRecord::new(ctx, oi as Ix, Some(li))
                            && rule.when.eval_bool(&r)
                        {
                            super::push(out, fire(ctx, rule, &r));
                        }
                    }
                }
            }
        }
    }
}

fn fire(ctx: &Context, rule: &CustomRule, r: &RuleRecord) -> Exception {
    let order = r.order;
    let line = r.line.map(|(_, l)| l);
    let (revenue, margin, what) = match line {
        Some(l) => (
            l.open_value(),
            margin_on(ctx, l, l.open_qty()),
            line_ref(order, l),
        ),
        None => (
            r.open_value,
            ctx.snap
                .order_lines(order)
                .iter()
                .map(|l| margin_on(ctx, l, l.open_qty()))
                .sum(),
            order.name.clone(),
        ),
    };
    let hours = r
        .line
        .map(|(li, _)| ctx.hours_late(li, ctx.now))
        .unwrap_or(0);
    let line_id = line.map(|l| l.id.to_string()).unwrap_or_default();
    let mut e = base(
        ctx,
        Kind::Custom(rule.name.clone()),
        &[&order.name, &line_id],
        order,
        line,
        format!("{what}: {}", rule.title),
        format!("rules.{}", rule.name),
        impact(ctx, order, revenue, margin, hours),
    );
    let facts: Vec<String> = rule
        .when
        .fields_used()
        .into_iter()
        .filter_map(|f| {
            FIELDS
                .get(f.0 as usize)
                .map(|(_, name, ..)| format!("{name} = {}", show(&r.get(f))))
        })
        .collect();
    let (model, id) = match line {
        Some(l) => ("sale.order.line", l.id),
        None => ("sale.order", order.id),
    };
    e.evidence
        .push(ev(facts.join("; "), model, id, what.clone()));
    e.evidence.push(ev(
        format!("rule `{}` fired: {}", rule.name, rule.when.source()),
        "policy",
        0,
        format!("{}#rules.{}", rule.file, rule.name),
    ));
    e.confidence = 1.0;
    if let Some(action) = &rule.recommend {
        let role = ctx
            .policy
            .approvers(action)
            .first()
            .cloned()
            .unwrap_or_else(|| rule.route.owner.clone());
        let act = if action == "contact_customer" {
            Action::ContactCustomer {
                order: order.name.clone(),
                purpose: rule.title.clone(),
                message: None,
            }
        } else {
            Action::RouteForApproval {
                order: order.name.clone(),
                role: role.clone(),
            }
        };
        e.recommendations.push(rec(
            ctx,
            act,
            format!("Send {what} to the {role} for a decision ({})", rule.title),
            vec!["the order waits for the decision".to_string()],
        ));
    }
    e
}
