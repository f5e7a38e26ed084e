//! Where snapshots come from and where approved actions go: the [`Source`] and
//! [`Executor`] traits, and the demo distributor's implementation of both.
//!
//! The demo source keeps its snapshot in memory and executes approved actions on it
//! (moving a reservation, changing a promised date, attaching documents…), so the next
//! scan sees the effect — the same loop the Odoo connector closes against a real Odoo.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{Duration, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use crate::core::Action;
use crate::demo::{self, DemoConfig};
use crate::domain::{History, Ix, PurchaseState, Snapshot};

/// A boxed, sendable future (object-safe async traits).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Why an action could not be executed. The message is safe to show and to log.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    /// What went wrong.
    pub message: String,
    /// Whether trying the same request again later may succeed (the target was
    /// unreachable or did not answer in time) rather than fail the same way (a refusal, a
    /// missing record, a request that cannot execute as approved).
    pub transient: bool,
}

impl ExecError {
    /// A failure that a retry would repeat.
    pub fn permanent(message: impl Into<String>) -> ExecError {
        ExecError {
            message: message.into(),
            transient: false,
        }
    }

    /// A failure a later retry may get past.
    pub fn transient(message: impl Into<String>) -> ExecError {
        ExecError {
            message: message.into(),
            transient: true,
        }
    }
}

/// Builds snapshots.
pub trait Source: Send + Sync {
    /// What it is (`demo seed=42 orders=1500`, an Odoo URL without credentials).
    fn describe(&self) -> String;
    /// What the store files this source's own history under (the planned dates of its
    /// purchase lines): stable across restarts and upgrades of the source.
    fn key(&self) -> String {
        self.describe()
    }
    /// The current snapshot.
    fn snapshot(&self) -> BoxFuture<'_, Result<Arc<Snapshot>, SourceError>>;
    /// Source-specific health for `/api/status` (sync times, staleness, degraded parts).
    fn status(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// The history before the snapshot the predictive models learn from (past orders,
    /// purchase lines, invoices); `None` when the source keeps none.
    fn history(&self) -> BoxFuture<'_, Result<Option<Arc<History>>, SourceError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Carries out approved actions. `key` is the approval id: executing the same key twice
/// must not act twice (retries after a crash re-send it).
pub trait Executor: Send + Sync {
    /// Execute and return a JSON description of what was done.
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>>;
}

/// The demo distributor as a live source.
pub struct DemoSource {
    snap: RwLock<Arc<Snapshot>>,
    history: Option<Arc<History>>,
    done: Mutex<HashMap<String, serde_json::Value>>,
}

impl DemoSource {
    /// Generate the demo and its year of history.
    pub fn new(cfg: &DemoConfig) -> DemoSource {
        let (s, h) = demo::generate_with_history(cfg, &mut |_, _, _| {});
        DemoSource::with_history(s, h)
    }

    /// Wrap an existing snapshot and the history before it.
    pub fn with_history(s: Snapshot, h: History) -> DemoSource {
        let mut d = DemoSource::from_snapshot(s);
        d.history = Some(Arc::new(h));
        d
    }

    /// Wrap an existing snapshot (without history).
    pub fn from_snapshot(s: Snapshot) -> DemoSource {
        DemoSource {
            snap: RwLock::new(Arc::new(s)),
            history: None,
            done: Mutex::new(HashMap::new()),
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snap.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Apply an action to the in-memory data (copy on write).
    fn apply(&self, action: &Action) -> Result<serde_json::Value, ExecError> {
        let mut guard = match self.snap.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let s = Arc::make_mut(&mut guard);
        let now = Utc::now();
        let order_ix = |s: &Snapshot, name: &str| -> Result<Ix, ExecError> {
            s.order_by_name(name)
                .map(|(i, _)| i)
                .ok_or_else(|| ExecError::permanent(format!("order {name} is not in the data")))
        };
        let line_ix = |s: &Snapshot, id: i64| -> Result<usize, ExecError> {
            s.lines
                .iter()
                .position(|l| l.id == id)
                .ok_or_else(|| ExecError::permanent(format!("order line {id} is not in the data")))
        };
        let product_ix = |s: &Snapshot, sku: &str| -> Result<Ix, ExecError> {
            s.products
                .iter()
                .position(|p| p.sku == sku)
                .map(|i| i as Ix)
                .ok_or_else(|| ExecError::permanent(format!("product {sku} is not in the data")))
        };
        let wh_ix = |s: &Snapshot, code: &str| -> Result<Ix, ExecError> {
            s.warehouses
                .iter()
                .position(|w| w.code == code)
                .map(|i| i as Ix)
                .ok_or_else(|| ExecError::permanent(format!("warehouse {code} is not in the data")))
        };
        Ok(match action {
            Action::Reallocate {
                qty,
                from_line,
                to_line,
                ..
            } => {
                let (f, t) = (line_ix(s, *from_line)?, line_ix(s, *to_line)?);
                let available = s.lines[f].qty_reserved;
                let moved = (*qty).min(available).max(Decimal::ZERO);
                s.lines[f].qty_reserved -= moved;
                s.lines[t].qty_reserved += moved;
                json!({"moved": moved, "from_line": from_line, "to_line": to_line})
            }
            Action::SplitShipment {
                order, ship_now, ..
            } => {
                json!({"order": order, "ship_now": ship_now, "note": "backorder created"})
            }
            Action::Transfer {
                product,
                qty,
                from_warehouse,
                to_warehouse,
            } => {
                let p = product_ix(s, product)?;
                let (fw, tw) = (wh_ix(s, from_warehouse)?, wh_ix(s, to_warehouse)?);
                let Some(from) = s
                    .stock
                    .iter()
                    .position(|q| q.product == p && q.warehouse == fw)
                else {
                    return Err(ExecError::permanent(format!(
                        "no stock of {product} in {from_warehouse}"
                    )));
                };
                let moved =
                    (*qty).min((s.stock[from].on_hand - s.stock[from].reserved).max(Decimal::ZERO));
                s.stock[from].on_hand -= moved;
                match s
                    .stock
                    .iter()
                    .position(|q| q.product == p && q.warehouse == tw)
                {
                    Some(to) => s.stock[to].on_hand += moved,
                    None => {
                        let id = s.stock.iter().map(|q| q.id).max().unwrap_or(0) + 1;
                        s.stock.push(crate::domain::StockLevel {
                            id,
                            product: p,
                            warehouse: tw,
                            on_hand: moved,
                            reserved: Decimal::ZERO,
                        })
                    }
                }
                json!({"moved": moved, "product": product, "from": from_warehouse, "to": to_warehouse})
            }
            Action::Substitute {
                line, to_product, ..
            } => {
                let l = line_ix(s, *line)?;
                let p = product_ix(s, to_product)?;
                s.lines[l].product = p;
                s.lines[l].qty_reserved = Decimal::ZERO;
                json!({"line": line, "product": to_product})
            }
            Action::ExpeditePurchase { line, message, .. } => {
                let text = message
                    .as_deref()
                    .ok_or_else(|| ExecError::permanent(no_text(action)))?;
                let Some(b) = s.inbound.iter_mut().find(|b| b.id == *line) else {
                    return Err(ExecError::permanent(format!(
                        "purchase line {line} is not in the data"
                    )));
                };
                let sooner = now + Duration::days(3);
                b.planned = Some(b.planned.map_or(sooner, |p| p.min(sooner)).max(now));
                b.confirmed = true;
                json!({"purchase_line": line, "planned": b.planned, "message_posted": text})
            }
            Action::ResourcePurchase {
                product,
                qty,
                warehouse,
            } => {
                let p = product_ix(s, product)?;
                let w = wh_ix(s, warehouse)?;
                let id = s.inbound.iter().map(|b| b.id).max().unwrap_or(0) + 1;
                let po_ref = format!("P{:05}", s.inbound.len() + 1);
                s.inbound.push(crate::domain::InboundLine {
                    id,
                    po_ref: po_ref.clone(),
                    supplier: 0,
                    product: p,
                    warehouse: w,
                    qty: *qty,
                    qty_received: Decimal::ZERO,
                    ordered_at: now,
                    original_planned: Some(now + Duration::days(2)),
                    planned: Some(now + Duration::days(2)),
                    confirmed: true,
                    state: PurchaseState::Purchase,
                });
                json!({"purchase": po_ref, "qty": qty})
            }
            Action::Reschedule { order, new_date } => {
                let o = order_ix(s, order)?;
                s.orders[o as usize].promised = Some(*new_date);
                let (first, count) = (
                    s.orders[o as usize].first_line,
                    s.orders[o as usize].line_count,
                );
                for l in s.lines.iter_mut().skip(first as usize).take(count as usize) {
                    l.promised = None;
                }
                json!({"order": order, "promised": new_date})
            }
            Action::ReleaseCreditHold { order, .. } => {
                let o = order_ix(s, order)?;
                let c = s.orders[o as usize].customer as usize;
                if let Some(cust) = s.customers.get_mut(c) {
                    // Finance raises the limit to cover this order's exposure.
                    cust.credit_limit = None;
                }
                json!({"order": order, "released": true})
            }
            Action::ApplyPrice { line, price, .. } => {
                let l = line_ix(s, *line)?;
                s.lines[l].price_unit = *price;
                s.lines[l].discount = Decimal::ZERO;
                json!({"line": line, "price": price})
            }
            Action::RequestDocuments { picking, documents } => {
                let Some(p) = s.pickings.iter_mut().find(|p| &p.name == picking) else {
                    return Err(ExecError::permanent(format!(
                        "picking {picking} is not in the data"
                    )));
                };
                for d in &p.documents_required.clone() {
                    if documents.iter().any(|x| x == d.as_str()) && !p.documents_present.contains(d)
                    {
                        p.documents_present.push(*d);
                    }
                }
                json!({"picking": picking, "documents": documents})
            }
            Action::ContactCustomer { order, message, .. } => {
                // The approved text, and only that: the purpose is internal.
                let text = message
                    .as_deref()
                    .ok_or_else(|| ExecError::permanent(no_text(action)))?;
                json!({"order": order, "message_posted": text})
            }
            Action::RouteForApproval { order, role } => {
                json!({"order": order, "routed_to": role})
            }
        })
    }
}

/// Why a request that must carry its message cannot execute without one (requests stored
/// before the text was required): nothing is sent, and the purpose is never sent instead.
pub fn no_text(action: &Action) -> String {
    format!(
        "this {} request was approved without the text to send, so nothing was sent; request it again with the exact message",
        action.name()
    )
}

impl Source for DemoSource {
    fn describe(&self) -> String {
        self.current().source.clone()
    }

    fn snapshot(&self) -> BoxFuture<'_, Result<Arc<Snapshot>, SourceError>> {
        Box::pin(async move { Ok(self.current()) })
    }

    fn history(&self) -> BoxFuture<'_, Result<Option<Arc<History>>, SourceError>> {
        Box::pin(async move { Ok(self.history.clone()) })
    }
}

impl Executor for DemoSource {
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>> {
        Box::pin(async move {
            let mut done = match self.done.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Some(previous) = done.get(key) {
                return Ok(previous.clone());
            }
            let result = self.apply(action)?;
            done.insert(key.to_string(), result.clone());
            Ok(result)
        })
    }
}
