//! A small builder of hand-made snapshots for unit tests: each test states exactly the
//! records its condition needs. Test-only.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;

/// The fixed "now" of unit tests.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

pub fn d(x: i64) -> Decimal {
    Decimal::from(x)
}

pub fn days(n: i64) -> DateTime<Utc> {
    now() + Duration::days(n)
}

/// Builder over a [`Snapshot`] with two warehouses in one pool.
pub struct Kit {
    pub s: Snapshot,
}

impl Default for Kit {
    fn default() -> Self {
        Self::new()
    }
}

impl Kit {
    pub fn new() -> Kit {
        let mut s = Snapshot {
            source: "test".into(),
            taken_at: now(),
            currency: "EUR".into(),
            ..Snapshot::default()
        };
        for (i, code) in ["WH1", "WH2"].iter().enumerate() {
            s.warehouses.push(Warehouse {
                id: i as i64 + 1,
                code: (*code).into(),
                name: (*code).into(),
                pool: 1,
                transfer_hours: 24,
            });
        }
        s.suppliers.push(Supplier {
            id: 900,
            name: "Slow Supplier".into(),
            country: "CN".into(),
            lead_time_days: 40,
            on_time_rate: Some(0.6),
        });
        s.carriers.push(Carrier {
            id: 1,
            name: "Carrier".into(),
            on_time_rate: Some(0.9),
            transit_hours: 24,
        });
        Kit { s }
    }

    /// A product with list price 100 and cost 60.
    pub fn product(&mut self, sku: &str) -> Ix {
        let i = self.s.products.len();
        self.s.products.push(Product {
            id: 100 + i as i64,
            sku: sku.into(),
            name: format!("{sku} name"),
            category: "Bearings".into(),
            cost: Some(d(60)),
            list_price: d(100),
            substitutes: vec![],
        });
        i as Ix
    }

    pub fn customer(&mut self, name: &str, tier: Tier, limit: Option<i64>) -> Ix {
        let i = self.s.customers.len();
        self.s.customers.push(Customer {
            id: 200 + i as i64,
            reference: format!("C{i:03}"),
            name: name.into(),
            tier,
            key_account: tier == Tier::A,
            credit_limit: limit.map(d),
            payment_terms_days: 30,
            payments: PaymentHistory::default(),
            lang: "en".into(),
            country: "NL".into(),
            email: None,
        });
        i as Ix
    }

    pub fn stock(&mut self, product: Ix, warehouse: Ix, on_hand: i64, reserved: i64) {
        self.s.stock.push(StockLevel {
            id: 300 + self.s.stock.len() as i64,
            product,
            warehouse,
            on_hand: d(on_hand),
            reserved: d(reserved),
        });
    }

    /// A confirmed order with one line per (product, qty), promised in `due_days`.
    pub fn order(
        &mut self,
        customer: Ix,
        warehouse: Ix,
        due_days: Option<i64>,
        lines: &[(Ix, i64)],
    ) -> Ix {
        let oi = self.s.orders.len();
        let first = self.s.lines.len() as Ix;
        for (k, (p, q)) in lines.iter().enumerate() {
            self.s.lines.push(OrderLine {
                id: 1000 + self.s.lines.len() as i64,
                order: oi as Ix,
                seq: k as u32 + 1,
                product: *p,
                qty: d(*q),
                qty_delivered: Decimal::ZERO,
                qty_invoiced: Decimal::ZERO,
                qty_reserved: Decimal::ZERO,
                price_unit: d(100),
                discount: Decimal::ZERO,
                promised: None,
            });
        }
        self.s.orders.push(SalesOrder {
            id: 500 + oi as i64,
            name: format!("S{:05}", oi + 1),
            customer,
            warehouse,
            state: OrderState::Sale,
            date_order: now() - Duration::days(3),
            promised: due_days.map(days),
            client_ref: None,
            note: None,
            first_line: first,
            line_count: lines.len() as u32,
            tax_rate: Decimal::ZERO,
        });
        oi as Ix
    }

    pub fn line_mut(&mut self, order: Ix, seq: u32) -> &mut OrderLine {
        let o = &self.s.orders[order as usize];
        let i = o.first_line + seq - 1;
        &mut self.s.lines[i as usize]
    }

    pub fn inbound(
        &mut self,
        product: Ix,
        warehouse: Ix,
        qty: i64,
        planned_days: i64,
        confirmed: bool,
    ) -> Ix {
        let i = self.s.inbound.len();
        self.s.inbound.push(InboundLine {
            id: 700 + i as i64,
            po_ref: format!("P{:05}", i + 1),
            supplier: 0,
            product,
            warehouse,
            qty: d(qty),
            qty_received: Decimal::ZERO,
            ordered_at: now() - Duration::days(10),
            original_planned: Some(days(planned_days)),
            planned: Some(days(planned_days)),
            confirmed,
            state: PurchaseState::Purchase,
        });
        i as Ix
    }

    pub fn picking(&mut self, order: Ix, scheduled_days: i64) -> Ix {
        let i = self.s.pickings.len();
        let o = &self.s.orders[order as usize];
        self.s.pickings.push(Picking {
            id: 800 + i as i64,
            name: format!("WH{}/OUT/{:05}", o.warehouse + 1, i + 1),
            order,
            warehouse: o.warehouse,
            carrier: Some(0),
            state: PickingState::Assigned,
            scheduled: Some(days(scheduled_days)),
            done_at: None,
            tracking_ref: None,
            documents_required: vec![DocumentKind::DeliverySlip, DocumentKind::ProofOfDelivery],
            documents_present: vec![DocumentKind::DeliverySlip],
        });
        i as Ix
    }

    pub fn invoice(&mut self, customer: Ix, residual: i64, due_days: i64) {
        let i = self.s.invoices.len();
        self.s.invoices.push(Invoice {
            id: 900 + i as i64,
            name: format!("INV/2026/{:05}", i + 1),
            customer,
            amount_total: d(residual),
            residual: d(residual),
            invoice_date: days(due_days - 30),
            due_date: days(due_days),
        });
    }

    pub fn change(&mut self, order: Ix, days_ago: i64) {
        let i = self.s.changes.len();
        self.s.changes.push(OrderChange {
            id: i as i64 + 1,
            order,
            at: now() - Duration::days(days_ago),
            field: "product_uom_qty".into(),
            old_value: "10".into(),
            new_value: "12".into(),
            author: "Marc Demo".into(),
        });
    }
}
