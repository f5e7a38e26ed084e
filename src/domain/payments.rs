//! A customer's payment behaviour, summed up from how each invoice was settled: its due
//! date against the dates of the payments that settled it, partial payments, and credit
//! notes (which settle an invoice without being a payment, so they never make it "paid
//! late" nor "paid on time").
//!
//! Pure: a source turns its records into [`Settlement`]s (the Odoo connector from
//! `account.move.line` and `account.partial.reconcile`), and [`PaymentHistory::summarize`]
//! does the arithmetic the credit detector, the credit summary and the finance review
//! package read.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::SourceId;

/// The period payment behaviour is measured over.
pub const PAYMENT_WINDOW_DAYS: i64 = 365;
/// The recent part of that period, compared with the rest for the trend.
pub const RECENT_DAYS: i64 = 90;
/// A change in average days late smaller than this is "steady".
pub const TREND_DAYS: f32 = 5.0;

/// Payment behaviour over the last twelve months.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentHistory {
    /// Invoices paid in full in the period (due in the last twelve months; settled by at
    /// least one payment, not by credit notes alone).
    pub invoices_paid: u32,
    /// Of those, paid after their due date.
    pub paid_late: u32,
    /// Average days late over the late ones.
    pub avg_days_late: f32,
    /// The most days any of them was paid late.
    #[serde(default)]
    pub max_days_late: u32,
    /// Average days past the due date over every paid invoice (on time counts as 0).
    #[serde(default)]
    pub avg_days_past_due: f32,
    /// Open invoices of the period with a payment on them (partially paid).
    #[serde(default)]
    pub partially_paid: u32,
    /// Invoices of the period settled, in whole or part, by a credit note.
    #[serde(default)]
    pub credited: u32,
    /// The last three months against the nine before, when both have paid invoices.
    #[serde(default)]
    pub trend: Option<PaymentTrend>,
    /// The open invoice due first (the oldest open item), when there is one.
    #[serde(default)]
    pub oldest_open: Option<OpenItem>,
}

/// Whether the customer pays later or sooner than before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendDirection {
    /// Paying later than before.
    Worsening,
    /// Within [`TREND_DAYS`] of before.
    Steady,
    /// Paying sooner than before.
    Improving,
}

impl TrendDirection {
    /// The direction's name, as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            TrendDirection::Worsening => "worsening",
            TrendDirection::Steady => "steady",
            TrendDirection::Improving => "improving",
        }
    }
}

/// Average days past due of the invoices paid in the last [`RECENT_DAYS`] against those
/// paid earlier in the period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PaymentTrend {
    /// Average days past due, invoices paid in the last three months.
    pub recent_days_past_due: f32,
    /// How many those were.
    pub recent_invoices: u32,
    /// Average days past due, invoices paid in the nine months before.
    pub earlier_days_past_due: f32,
    /// How many those were.
    pub earlier_invoices: u32,
    /// Which way it goes.
    pub direction: TrendDirection,
}

/// An open invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenItem {
    /// Source id of the invoice.
    pub id: SourceId,
    /// Invoice number.
    pub invoice: String,
    /// When it was due.
    pub due: DateTime<Utc>,
    /// Amount still open.
    pub residual: Decimal,
}

/// How one invoice was settled, as far as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// Source id of the invoice.
    pub id: SourceId,
    /// Invoice number.
    pub invoice: String,
    /// Due date.
    pub due: DateTime<Utc>,
    /// Amount invoiced.
    pub amount: Decimal,
    /// Amount still open.
    pub residual: Decimal,
    /// Payments: (date, amount).
    pub payments: Vec<(DateTime<Utc>, Decimal)>,
    /// Amount settled by credit notes.
    pub credited: Decimal,
}

impl Settlement {
    /// When the invoice was paid in full: the date of its last payment, if it is settled
    /// and a payment took part (an invoice cancelled by a credit note alone was not paid).
    pub fn paid_on(&self) -> Option<DateTime<Utc>> {
        if self.residual > Decimal::ZERO {
            return None;
        }
        self.payments.iter().map(|(d, _)| *d).max()
    }
}

impl PaymentHistory {
    /// Sum up the settlements of one customer's invoices as of `now`. Only invoices due in
    /// the last [`PAYMENT_WINDOW_DAYS`], or still open, count.
    pub fn summarize(settlements: &[Settlement], now: DateTime<Utc>) -> PaymentHistory {
        let from = now - Duration::days(PAYMENT_WINDOW_DAYS);
        let recent_from = now - Duration::days(RECENT_DAYS);
        let mut h = PaymentHistory::default();
        let (mut late_days, mut past_due_days) = (0i64, 0i64);
        let (mut recent, mut earlier) = ((0i64, 0u32), (0i64, 0u32));
        for s in settlements {
            let open = s.residual > Decimal::ZERO;
            if s.due < from && !open {
                continue;
            }
            if s.credited > Decimal::ZERO {
                h.credited += 1;
            }
            if open {
                if !s.payments.is_empty() {
                    h.partially_paid += 1;
                }
                let older = h
                    .oldest_open
                    .as_ref()
                    .is_none_or(|o| (s.due, s.id) < (o.due, o.id));
                if older {
                    h.oldest_open = Some(OpenItem {
                        id: s.id,
                        invoice: s.invoice.clone(),
                        due: s.due,
                        residual: s.residual,
                    });
                }
                continue;
            }
            let Some(paid) = s.paid_on() else {
                continue;
            };
            let days = (paid.date_naive() - s.due.date_naive()).num_days().max(0);
            h.invoices_paid += 1;
            past_due_days += days;
            if days > 0 {
                h.paid_late += 1;
                late_days += days;
                h.max_days_late = h.max_days_late.max(days.min(i64::from(u32::MAX)) as u32);
            }
            let bucket = if paid >= recent_from {
                &mut recent
            } else {
                &mut earlier
            };
            bucket.0 += days;
            bucket.1 += 1;
        }
        let avg = |sum: i64, n: u32| if n == 0 { 0.0 } else { sum as f32 / n as f32 };
        h.avg_days_late = avg(late_days, h.paid_late);
        h.avg_days_past_due = avg(past_due_days, h.invoices_paid);
        if recent.1 > 0 && earlier.1 > 0 {
            let (r, e) = (avg(recent.0, recent.1), avg(earlier.0, earlier.1));
            h.trend = Some(PaymentTrend {
                recent_days_past_due: r,
                recent_invoices: recent.1,
                earlier_days_past_due: e,
                earlier_invoices: earlier.1,
                direction: if r - e >= TREND_DAYS {
                    TrendDirection::Worsening
                } else if e - r >= TREND_DAYS {
                    TrendDirection::Improving
                } else {
                    TrendDirection::Steady
                },
            });
        }
        h
    }

    /// Share of the paid invoices that were paid late (0 without any).
    pub fn late_share(&self) -> f64 {
        if self.invoices_paid == 0 {
            0.0
        } else {
            f64::from(self.paid_late) / f64::from(self.invoices_paid)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeZone;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() - Duration::days(n)
    }

    fn s(id: i64, due_ago: i64, residual: i64, pays: &[(i64, i64)], credited: i64) -> Settlement {
        Settlement {
            id,
            invoice: format!("INV/{id}"),
            due: day(due_ago),
            amount: Decimal::from(100),
            residual: Decimal::from(residual),
            payments: pays
                .iter()
                .map(|&(ago, a)| (day(ago), Decimal::from(a)))
                .collect(),
            credited: Decimal::from(credited),
        }
    }

    #[test]
    fn late_on_time_partial_credited_and_old() {
        let h = PaymentHistory::summarize(
            &[
                s(1, 200, 0, &[(180, 100)], 0),        // 20 days late, earlier
                s(2, 100, 0, &[(110, 100)], 0),        // early, earlier
                s(3, 60, 0, &[(70, 40), (30, 60)], 0), // partial, then 30 late, recent
                s(4, 50, 0, &[], 100),                 // credited only: not paid
                s(5, 40, 60, &[(35, 40)], 0),          // open, part paid
                s(6, 10, 100, &[], 0),                 // open
                s(7, 400, 0, &[(300, 100)], 0),        // due before the window
                s(8, 20, 0, &[(20, 50)], 50),          // half credited, paid on the day
            ],
            day(0),
        );
        assert_eq!((h.invoices_paid, h.paid_late), (4, 2));
        assert_eq!(h.avg_days_late, 25.0);
        assert_eq!(h.max_days_late, 30);
        assert_eq!(h.avg_days_past_due, 12.5);
        assert_eq!((h.partially_paid, h.credited), (1, 2));
        assert_eq!(h.oldest_open.as_ref().unwrap().invoice, "INV/5");
        let t = h.trend.unwrap();
        assert_eq!((t.recent_invoices, t.earlier_invoices), (2, 2));
        assert_eq!(
            (t.recent_days_past_due, t.earlier_days_past_due),
            (15.0, 10.0)
        );
        assert_eq!(t.direction, TrendDirection::Worsening);
        assert_eq!(h.late_share(), 0.5);
    }

    #[test]
    fn no_history_is_empty() {
        let h = PaymentHistory::summarize(&[], day(0));
        assert_eq!(h, PaymentHistory::default());
        assert_eq!(h.late_share(), 0.0);
        // One side of the trend alone is no trend.
        let h = PaymentHistory::summarize(&[s(1, 20, 0, &[(10, 100)], 0)], day(0));
        assert_eq!((h.invoices_paid, h.paid_late, h.max_days_late), (1, 1, 10));
        assert!(h.trend.is_none());
    }
}
