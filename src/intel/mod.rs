//! Operational intelligence: trends of exceptions by kind, customer, supplier, warehouse
//! and route; backlog and cycle time; revenue and margin at risk this month; how often
//! people accept or override the recommendations.
//!
//! Pure functions over plain records ([`Incident`], the latest scan's exceptions, the
//! snapshot for names and links); the server gathers the records (stored cases, the
//! source's resolved past exceptions) and `report` renders the same numbers. Nothing
//! here does I/O or reads the clock: `now` is an argument.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::core::Exception;
use crate::domain::{Ix, Snapshot};

pub mod svg;

/// One exception's life, from a stored case or from the source's history.
#[derive(Debug, Clone)]
pub struct Incident {
    /// Kind name.
    pub kind: String,
    /// When it was detected.
    pub opened: DateTime<Utc>,
    /// When it was resolved or dismissed; `None` while open.
    pub closed: Option<DateTime<Utc>>,
    /// Customer name.
    pub customer: String,
    /// Supplier name, when the exception can be traced to one.
    pub supplier: Option<String>,
    /// Warehouse code.
    pub warehouse: Option<String>,
    /// Route (`WH1→DE`: shipping warehouse to the customer's country).
    pub route: Option<String>,
    /// Revenue at risk, when known (stored cases know it; past exceptions may not).
    pub revenue: Option<Decimal>,
}

/// What a trend groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendBy {
    /// Exception kind.
    #[default]
    Kind,
    /// Customer.
    Customer,
    /// Supplier (of the product or purchase line).
    Supplier,
    /// Shipping warehouse.
    Warehouse,
    /// Warehouse to customer country.
    Route,
}

/// Bucket width of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// One point per day.
    #[default]
    Day,
    /// One point per ISO week (dated by its Monday).
    Week,
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// First day of the bucket (`YYYY-MM-DD`).
    pub date: String,
    /// Exceptions detected in the bucket.
    pub count: u64,
    /// Their revenue at risk (where known), a decimal string.
    pub value: Decimal,
}

/// One series of a trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Group key (kind name, customer name, supplier name, warehouse code, route).
    pub key: String,
    /// Display label.
    pub label: String,
    /// One point per bucket, oldest first, empty buckets included.
    pub points: Vec<Point>,
}

/// A trend: series of counts per bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trends {
    /// What it groups by.
    pub by: TrendBy,
    /// Bucket width.
    pub bucket: Bucket,
    /// Series, largest total first (at most [`MAX_SERIES`]).
    pub series: Vec<Series>,
}

/// Most series a trend returns (the largest by count).
pub const MAX_SERIES: usize = 12;

fn bucket_start(t: NaiveDate, bucket: Bucket) -> NaiveDate {
    match bucket {
        Bucket::Day => t,
        Bucket::Week => t - Duration::days(i64::from(t.weekday().num_days_from_monday())),
    }
}

fn key_of(i: &Incident, by: TrendBy) -> Option<&str> {
    match by {
        TrendBy::Kind => Some(&i.kind),
        TrendBy::Customer => Some(&i.customer)
            .filter(|c| !c.is_empty())
            .map(|c| c.as_str()),
        TrendBy::Supplier => i.supplier.as_deref(),
        TrendBy::Warehouse => i.warehouse.as_deref(),
        TrendBy::Route => i.route.as_deref(),
    }
}

/// Exceptions detected per bucket over the last `days` days, grouped.
pub fn trends(
    incidents: &[Incident],
    by: TrendBy,
    days: u32,
    bucket: Bucket,
    now: DateTime<Utc>,
) -> Trends {
    let today = now.date_naive();
    let first = bucket_start(today - Duration::days(i64::from(days.max(1)) - 1), bucket);
    let step = match bucket {
        Bucket::Day => 1,
        Bucket::Week => 7,
    };
    let mut starts = Vec::new();
    let mut d = first;
    while d <= today {
        starts.push(d);
        d += Duration::days(step);
    }
    let mut groups: HashMap<&str, Vec<(u64, Decimal)>> = HashMap::new();
    for i in incidents {
        let day = i.opened.date_naive();
        if day < first || day > today {
            continue;
        }
        let Some(key) = key_of(i, by) else { continue };
        let slot = ((day - first).num_days() / step) as usize;
        let points = groups
            .entry(key)
            .or_insert_with(|| vec![(0, Decimal::ZERO); starts.len()]);
        if let Some(p) = points.get_mut(slot) {
            p.0 += 1;
            p.1 += i.revenue.unwrap_or_default();
        }
    }
    let mut series: Vec<(u64, Series)> = groups
        .into_iter()
        .map(|(key, pts)| {
            let total = pts.iter().map(|p| p.0).sum();
            let points = starts
                .iter()
                .zip(pts)
                .map(|(d, (count, value))| Point {
                    date: d.format("%Y-%m-%d").to_string(),
                    count,
                    value: value.round_dp(2),
                })
                .collect();
            (
                total,
                Series {
                    key: key.to_string(),
                    label: key.to_string(),
                    points,
                },
            )
        })
        .collect();
    series.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.key.cmp(&b.1.key)));
    Trends {
        by,
        bucket,
        series: series
            .into_iter()
            .take(MAX_SERIES)
            .map(|(_, s)| s)
            .collect(),
    }
}

/// Open exceptions of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenCount {
    /// Kind name.
    pub kind: String,
    /// Open (or acknowledged) exceptions.
    pub count: u64,
}

/// Hours from detection to resolution, per kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CycleTime {
    /// Kind name.
    pub kind: String,
    /// Median hours.
    pub p50: f64,
    /// 90th percentile hours.
    pub p90: f64,
}

/// One day of the backlog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacklogDay {
    /// Day (`YYYY-MM-DD`).
    pub date: String,
    /// Detected that day.
    pub opened: u64,
    /// Resolved or dismissed that day.
    pub closed: u64,
    /// Open at the end of the day.
    pub open: u64,
}

/// Backlog and cycle time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backlog {
    /// Open exceptions per kind, most first.
    pub open_by_kind: Vec<OpenCount>,
    /// Cycle time per kind over closed exceptions.
    pub cycle_time_hours: Vec<CycleTime>,
    /// The last [`BACKLOG_DAYS`] days.
    pub daily: Vec<BacklogDay>,
}

/// Days of daily backlog returned.
pub const BACKLOG_DAYS: i64 = 30;

/// The `q` quantile (0..=1) of sorted values, by nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Backlog, cycle times and the daily opened/closed/open series.
pub fn backlog(incidents: &[Incident], now: DateTime<Utc>) -> Backlog {
    let mut open: BTreeMap<&str, u64> = BTreeMap::new();
    let mut cycles: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for i in incidents {
        match i.closed {
            None => *open.entry(&i.kind).or_default() += 1,
            Some(c) => cycles
                .entry(&i.kind)
                .or_default()
                .push(((c - i.opened).num_minutes().max(0) as f64) / 60.0),
        }
    }
    let mut open_by_kind: Vec<OpenCount> = open
        .into_iter()
        .map(|(k, count)| OpenCount {
            kind: k.to_string(),
            count,
        })
        .collect();
    open_by_kind.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
    let cycle_time_hours = cycles
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            CycleTime {
                kind: k.to_string(),
                p50: (quantile(&v, 0.5) * 10.0).round() / 10.0,
                p90: (quantile(&v, 0.9) * 10.0).round() / 10.0,
            }
        })
        .collect();
    let today = now.date_naive();
    let daily = (0..BACKLOG_DAYS)
        .rev()
        .map(|back| {
            let day = today - Duration::days(back);
            let end =
                Utc.from_utc_datetime(&(day + Duration::days(1)).and_time(chrono::NaiveTime::MIN));
            let mut row = BacklogDay {
                date: day.format("%Y-%m-%d").to_string(),
                opened: 0,
                closed: 0,
                open: 0,
            };
            for i in incidents {
                if i.opened.date_naive() == day {
                    row.opened += 1;
                }
                if i.closed.is_some_and(|c| c.date_naive() == day) {
                    row.closed += 1;
                }
                if i.opened < end && i.closed.is_none_or(|c| c >= end) {
                    row.open += 1;
                }
            }
            row
        })
        .collect();
    Backlog {
        open_by_kind,
        cycle_time_hours,
        daily,
    }
}

/// What revenue at risk groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBy {
    /// Customer.
    #[default]
    Customer,
    /// Supplier.
    Supplier,
    /// Warehouse.
    Warehouse,
}

/// Revenue and margin at risk of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskRow {
    /// Group key (customer reference, supplier name, warehouse code).
    pub key: String,
    /// Display label.
    pub label: String,
    /// Revenue at risk.
    pub revenue_at_risk: Decimal,
    /// Margin at risk.
    pub margin_at_risk: Decimal,
    /// Exceptions.
    pub cases: u64,
    /// Their case ids, highest revenue first (at most [`MAX_CASE_IDS`]).
    pub case_ids: Vec<String>,
}

/// Revenue at risk this month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtRisk {
    /// What it groups by.
    pub by: RiskBy,
    /// Company currency.
    pub currency: String,
    /// Groups, most revenue at risk first.
    pub rows: Vec<RiskRow>,
}

/// Most case ids listed per at-risk row.
pub const MAX_CASE_IDS: usize = 50;

/// Links from records to the names intelligence groups by: each product's supplier (the
/// supplier of its inbound purchase lines), each purchase order's supplier, each
/// customer's reference and country, each warehouse's name.
pub struct Links<'s> {
    snap: &'s Snapshot,
    product_supplier: HashMap<&'s str, Ix>,
    po_supplier: HashMap<&'s str, Ix>,
    customer_by_name: HashMap<&'s str, Ix>,
}

impl<'s> Links<'s> {
    /// Index the snapshot.
    pub fn new(snap: &'s Snapshot) -> Links<'s> {
        let mut product_supplier = HashMap::new();
        let mut po_supplier = HashMap::new();
        for b in &snap.inbound {
            if let Some(p) = snap.products.get(b.product as usize) {
                product_supplier.entry(p.sku.as_str()).or_insert(b.supplier);
            }
            po_supplier.entry(b.po_ref.as_str()).or_insert(b.supplier);
        }
        let customer_by_name = snap
            .customers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i as Ix))
            .collect();
        Links {
            snap,
            product_supplier,
            po_supplier,
            customer_by_name,
        }
    }

    /// Add a product → supplier link (from purchase history, say) where none is known.
    pub fn learn_product_supplier(&mut self, sku: &'s str, supplier: Ix) {
        self.product_supplier.entry(sku).or_insert(supplier);
    }

    /// The supplier behind an exception: its purchase order's, or its product's.
    pub fn supplier(&self, order_ref: &str, product: Option<&str>) -> Option<&'s str> {
        let ix = self
            .po_supplier
            .get(order_ref)
            .or_else(|| product.and_then(|p| self.product_supplier.get(p)))?;
        self.snap
            .suppliers
            .get(*ix as usize)
            .map(|s| s.name.as_str())
    }

    /// `WH1→DE` for a warehouse and a customer name.
    pub fn route(&self, warehouse: Option<&str>, customer: &str) -> Option<String> {
        let w = warehouse?;
        let c = self.customer_by_name.get(customer)?;
        let country = &self.snap.customers.get(*c as usize)?.country;
        Some(format!("{w}→{country}"))
    }

    /// A customer's reference by name.
    pub fn customer_ref(&self, name: &str) -> Option<&'s str> {
        let c = self.customer_by_name.get(name)?;
        self.snap
            .customers
            .get(*c as usize)
            .map(|c| c.reference.as_str())
    }

    /// A warehouse's name by code.
    pub fn warehouse_name(&self, code: &str) -> Option<&'s str> {
        self.snap
            .warehouses
            .iter()
            .find(|w| w.code == code)
            .map(|w| w.name.as_str())
    }

    /// When an exception's revenue falls due: its line's or order's promised date (the
    /// order date plus the default lead time without one), or its purchase line's
    /// planned arrival.
    pub fn due(&self, e: &Exception, default_lead_days: u32) -> Option<DateTime<Utc>> {
        if let Some((_, o)) = self.snap.order_by_name(&e.order_ref) {
            let line_promise = e.line_id.and_then(|id| {
                self.snap
                    .order_lines(o)
                    .iter()
                    .find(|l| l.id == id)
                    .and_then(|l| l.promised)
            });
            return Some(
                line_promise
                    .or(o.promised)
                    .unwrap_or(o.date_order + Duration::days(i64::from(default_lead_days))),
            );
        }
        self.snap
            .inbound
            .iter()
            .find(|b| b.po_ref == e.order_ref)
            .and_then(|b| b.planned)
    }
}

/// The first moment of the month after `now`'s.
pub fn month_end(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// Revenue and margin at risk this month: present (not predicted) exceptions whose
/// revenue falls due before the month ends (overdue ones included), grouped.
pub fn at_risk(
    exceptions: &[Exception],
    links: &Links,
    by: RiskBy,
    limit: usize,
    now: DateTime<Utc>,
    default_lead_days: u32,
) -> AtRisk {
    let end = month_end(now);
    /// Label, revenue, margin, and the exceptions with their revenue.
    type Group<'e> = (String, Decimal, Decimal, Vec<(&'e Exception, Decimal)>);
    let mut groups: HashMap<String, Group> = HashMap::new();
    for e in exceptions.iter().filter(|e| !e.predicted) {
        if links.due(e, default_lead_days).is_some_and(|d| d >= end) {
            continue;
        }
        let (key, label) = match by {
            RiskBy::Customer => (
                links
                    .customer_ref(&e.customer)
                    .unwrap_or(&e.customer)
                    .to_string(),
                e.customer.clone(),
            ),
            RiskBy::Supplier => match links.supplier(&e.order_ref, e.product.as_deref()) {
                Some(s) => (s.to_string(), s.to_string()),
                None => continue,
            },
            RiskBy::Warehouse => match &e.warehouse {
                Some(w) => (w.clone(), links.warehouse_name(w).unwrap_or(w).to_string()),
                None => continue,
            },
        };
        let g = groups
            .entry(key)
            .or_insert_with(|| (label, Decimal::ZERO, Decimal::ZERO, Vec::new()));
        g.1 += e.impact.revenue_at_risk;
        g.2 += e.impact.margin_at_risk;
        g.3.push((e, e.impact.revenue_at_risk));
    }
    let mut rows: Vec<RiskRow> = groups
        .into_iter()
        .map(|(key, (label, revenue, margin, mut list))| {
            list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.id.cmp(&b.0.id)));
            RiskRow {
                key,
                label,
                revenue_at_risk: revenue.round_dp(2),
                margin_at_risk: margin.round_dp(2),
                cases: list.len() as u64,
                case_ids: list
                    .iter()
                    .take(MAX_CASE_IDS)
                    .map(|(e, _)| e.id.clone())
                    .collect(),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.revenue_at_risk
            .cmp(&a.revenue_at_risk)
            .then_with(|| a.key.cmp(&b.key))
    });
    rows.truncate(limit);
    AtRisk {
        by,
        currency: links.snap.currency.clone(),
        rows,
    }
}

/// How people answered the recommendations of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecommendationRow {
    /// Kind name.
    pub kind: String,
    /// Cases that carried at least one recommendation.
    pub proposed: u64,
    /// Approval requests for the top recommendation that were approved (and executed).
    pub accepted: u64,
    /// Requests for another option than the top one, or rejections of the top one.
    pub overridden: u64,
    /// Cases dismissed.
    pub dismissed: u64,
    /// `accepted / proposed`.
    pub acceptance_rate: f64,
    /// `overridden / (accepted + overridden)`: how often a human decided otherwise.
    pub override_rate: f64,
}

/// A decided approval request, as recommendation statistics need it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Kind of the case.
    pub kind: String,
    /// Whether the request was for the case's top recommendation.
    pub top: bool,
    /// Approved (or executed); `false` for rejected.
    pub approved: bool,
}

/// Acceptance and override rates per kind. `proposed` and `dismissed` come per kind;
/// `decisions` are the decided approval requests (pending and expired ones left out).
pub fn recommendations(
    proposed: &[(String, u64, u64)],
    decisions: &[Decision],
) -> Vec<RecommendationRow> {
    let mut rows: BTreeMap<&str, RecommendationRow> = BTreeMap::new();
    let row = |k: &str| RecommendationRow {
        kind: k.to_string(),
        proposed: 0,
        accepted: 0,
        overridden: 0,
        dismissed: 0,
        acceptance_rate: 0.0,
        override_rate: 0.0,
    };
    for (k, p, d) in proposed {
        let r = rows.entry(k).or_insert_with(|| row(k));
        r.proposed = *p;
        r.dismissed = *d;
    }
    for d in decisions {
        let r = rows.entry(&d.kind).or_insert_with(|| row(&d.kind));
        if d.top && d.approved {
            r.accepted += 1;
        } else {
            r.overridden += 1;
        }
    }
    rows.into_values()
        .map(|mut r| {
            let ratio = |a: u64, b: u64| {
                if b == 0 {
                    0.0
                } else {
                    ((a as f64 / b as f64) * 1000.0).round() / 1000.0
                }
            };
            r.acceptance_rate = ratio(r.accepted, r.proposed);
            r.override_rate = ratio(r.overridden, r.accepted + r.overridden);
            r
        })
        .collect()
}

/// How a key account changes its orders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePattern {
    /// Customer reference.
    pub key: String,
    /// Customer name.
    pub label: String,
    /// Tier.
    pub tier: String,
    /// Orders in the history.
    pub past_orders: u64,
    /// Share of them changed after confirmation.
    pub changed_share: f64,
    /// Changes per changed order.
    pub changes_per_changed_order: f64,
    /// Days from confirmation to the first change, median.
    pub median_days_to_first_change: f64,
    /// Open orders now.
    pub open_orders: u64,
    /// Tracked changes to open orders in the last 30 days.
    pub recent_changes: u64,
    /// The field changed most often in open orders (`product_uom_qty`, `commitment_date`, …).
    pub top_field: Option<String>,
}

/// Key accounts by how often they change orders: from the history (share of orders
/// changed, changes per order, how soon) and the present (recent changes to open orders).
pub fn change_patterns(
    snap: &Snapshot,
    history: Option<&crate::domain::History>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<ChangePattern> {
    #[derive(Default)]
    struct Acc {
        orders: u64,
        changed: u64,
        changes: u64,
        first: Vec<f64>,
        open: u64,
        recent: u64,
        fields: BTreeMap<String, u64>,
    }
    let mut acc: HashMap<Ix, Acc> = HashMap::new();
    let key = |c: Ix| {
        snap.customers
            .get(c as usize)
            .is_some_and(|c| c.key_account)
    };
    if let Some(h) = history {
        for o in h.orders.iter().filter(|o| key(o.customer)) {
            let a = acc.entry(o.customer).or_default();
            a.orders += 1;
            if let Some(first) = o.changes.first() {
                a.changed += 1;
                a.changes += o.changes.len() as u64;
                a.first
                    .push((*first - o.ordered_at).num_minutes() as f64 / 1440.0);
            }
        }
    }
    for o in snap
        .orders
        .iter()
        .filter(|o| o.state.is_open_demand() && key(o.customer))
    {
        acc.entry(o.customer).or_default().open += 1;
    }
    for c in &snap.changes {
        let Some(o) = snap.orders.get(c.order as usize) else {
            continue;
        };
        if !key(o.customer) || now - c.at > Duration::days(30) || c.at > now {
            continue;
        }
        let a = acc.entry(o.customer).or_default();
        a.recent += 1;
        *a.fields.entry(c.field.clone()).or_default() += 1;
    }
    let mut rows: Vec<ChangePattern> = acc
        .into_iter()
        .filter_map(|(ci, mut a)| {
            let c = snap.customers.get(ci as usize)?;
            a.first.sort_by(f64::total_cmp);
            let top_field = a
                .fields
                .iter()
                .max_by(|x, y| x.1.cmp(y.1).then_with(|| y.0.cmp(x.0)))
                .map(|(f, _)| f.clone());
            Some(ChangePattern {
                key: c.reference.clone(),
                label: c.name.clone(),
                tier: c.tier.to_string(),
                past_orders: a.orders,
                changed_share: if a.orders == 0 {
                    0.0
                } else {
                    ((a.changed as f64 / a.orders as f64) * 1000.0).round() / 1000.0
                },
                changes_per_changed_order: if a.changed == 0 {
                    0.0
                } else {
                    ((a.changes as f64 / a.changed as f64) * 100.0).round() / 100.0
                },
                median_days_to_first_change: (quantile(&a.first, 0.5) * 10.0).round() / 10.0,
                open_orders: a.open,
                recent_changes: a.recent,
                top_field,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.recent_changes
            .cmp(&a.recent_changes)
            .then_with(|| b.changed_share.total_cmp(&a.changed_share))
            .then_with(|| a.key.cmp(&b.key))
    });
    rows.truncate(limit);
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn inc(kind: &str, opened: DateTime<Utc>, closed: Option<DateTime<Utc>>) -> Incident {
        Incident {
            kind: kind.into(),
            opened,
            closed,
            customer: "Acme".into(),
            supplier: None,
            warehouse: Some("WH1".into()),
            route: None,
            revenue: Some(Decimal::from(100)),
        }
    }

    #[test]
    fn trends_count_per_bucket_with_empty_buckets() {
        let now = at(26, 12);
        let xs = vec![
            inc("a", at(26, 1), None),
            inc("a", at(25, 1), None),
            inc("b", at(26, 2), None),
            inc("a", at(1, 2), None), // outside 7 days
        ];
        let t = trends(&xs, TrendBy::Kind, 7, Bucket::Day, now);
        assert_eq!(t.series.len(), 2);
        assert_eq!(t.series[0].key, "a");
        assert_eq!(t.series[0].points.len(), 7);
        assert_eq!(t.series[0].points[6].date, "2026-11-26");
        assert_eq!(t.series[0].points[6].count, 1);
        assert_eq!(t.series[0].points[5].count, 1);
        assert_eq!(t.series[0].points[5].value, Decimal::from(100));
        let total: u64 = t
            .series
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.count)
            .sum();
        assert_eq!(total, 3);
        let w = trends(&xs, TrendBy::Kind, 30, Bucket::Week, now);
        assert!(w.series[0].points.iter().all(|p| {
            NaiveDate::parse_from_str(&p.date, "%Y-%m-%d")
                .unwrap()
                .weekday()
                == chrono::Weekday::Mon
        }));
        let total: u64 = w
            .series
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.count)
            .sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn backlog_counts_open_and_cycle_times() {
        let now = at(26, 12);
        let xs = vec![
            inc("a", at(20, 0), Some(at(20, 10))),
            inc("a", at(21, 0), Some(at(22, 0))),
            inc("a", at(24, 0), None),
            inc("b", at(25, 0), None),
        ];
        let b = backlog(&xs, now);
        assert_eq!(b.open_by_kind.iter().map(|o| o.count).sum::<u64>(), 2);
        let a = b.cycle_time_hours.iter().find(|c| c.kind == "a").unwrap();
        assert_eq!(a.p50, 10.0);
        assert_eq!(a.p90, 24.0);
        let last = b.daily.last().unwrap();
        assert_eq!(last.date, "2026-11-26");
        assert_eq!(last.open, 2);
        let d21 = b.daily.iter().find(|d| d.date == "2026-11-21").unwrap();
        assert_eq!((d21.opened, d21.closed, d21.open), (1, 0, 1));
    }

    #[test]
    fn recommendation_rates() {
        let rows = recommendations(
            &[("a".into(), 10, 2)],
            &[
                Decision {
                    kind: "a".into(),
                    top: true,
                    approved: true,
                },
                Decision {
                    kind: "a".into(),
                    top: true,
                    approved: false,
                },
                Decision {
                    kind: "a".into(),
                    top: false,
                    approved: true,
                },
                Decision {
                    kind: "a".into(),
                    top: true,
                    approved: true,
                },
            ],
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].accepted, rows[0].overridden, rows[0].dismissed),
            (2, 2, 2)
        );
        assert_eq!(rows[0].acceptance_rate, 0.2);
        assert_eq!(rows[0].override_rate, 0.5);
    }

    #[test]
    fn month_end_rolls_over_the_year() {
        assert_eq!(
            month_end(Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap()),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }
}
