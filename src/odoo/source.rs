//! The Odoo source: a mirror of the records the core needs, loaded in full once and then
//! kept current by `write_date`, turned into the same [`Snapshot`] the demo builds.
//!
//! Per model the first load checks `fields_get` (missing optional fields are dropped with a
//! warning; a model the user may not read degrades the detectors that need it instead of
//! failing the scan). Later syncs ask only for what changed since the last one (and for the
//! ids that left the domain), and every `full_reload_every` syncs everything is reloaded to
//! catch deletions. When Odoo is unreachable the last good snapshot keeps being served, and
//! [`Source::status`] says how stale it is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::client::OdooClient;
use super::config::{OdooConfig, document_kind};
use super::schema::{self, Schema, Table};
use super::wire::{self, OdooError, Record};
use crate::app::source::{BoxFuture, Source, SourceError};
use crate::domain::*;

/// Records of one model by id.
type Mirror = BTreeMap<i64, Record>;

/// What the last syncs did, for `/api/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncStatus {
    /// Server version.
    pub odoo_version: String,
    /// When the last sync succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// When the last sync was tried.
    pub last_attempt: Option<DateTime<Utc>>,
    /// Why the last sync failed (the snapshot served is then the last good one).
    pub last_error: Option<String>,
    /// Seconds since the data served was read from Odoo.
    pub stale_seconds: Option<i64>,
    /// Detectors running on partial data, and why.
    pub warnings: Vec<String>,
    /// RPC calls of the last full load.
    pub full_load_calls: u64,
    /// RPC calls of the last incremental sync.
    pub incremental_calls: Option<u64>,
    /// Records changed in the last incremental sync.
    pub incremental_changes: usize,
}

struct State {
    mirrors: HashMap<&'static str, Mirror>,
    /// Fields actually read per model (after fields_get).
    fields: HashMap<&'static str, Vec<String>>,
    /// Models that could not be read, with the reason.
    unreadable: HashMap<&'static str, String>,
    /// Fields the user may not read, with what that costs (found once, by fields_get).
    field_warnings: Vec<String>,
    field_names: HashMap<i64, String>,
    since: Option<DateTime<Utc>>,
    syncs_since_full: u32,
    last_good: Option<Arc<Snapshot>>,
}

/// Snapshots from a live Odoo.
pub struct OdooSource {
    client: Arc<OdooClient>,
    cfg: OdooConfig,
    schema: Schema,
    state: tokio::sync::Mutex<State>,
    status: Mutex<SyncStatus>,
}

impl OdooSource {
    /// A source over a connected client.
    pub fn new(client: Arc<OdooClient>, cfg: OdooConfig) -> OdooSource {
        let schema = Schema {
            major: client.version().major,
        };
        let status = SyncStatus {
            odoo_version: client.version().text.clone(),
            ..SyncStatus::default()
        };
        OdooSource {
            client,
            cfg,
            schema,
            state: tokio::sync::Mutex::new(State {
                mirrors: HashMap::new(),
                fields: HashMap::new(),
                unreadable: HashMap::new(),
                field_warnings: Vec::new(),
                field_names: HashMap::new(),
                since: None,
                syncs_since_full: 0,
                last_good: None,
            }),
            status: Mutex::new(status),
        }
    }

    /// The client (shared with the executor and the bot).
    pub fn client(&self) -> &Arc<OdooClient> {
        &self.client
    }

    /// A copy of the sync status.
    pub fn sync_status(&self) -> SyncStatus {
        let mut s = match self.status.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        s.stale_seconds = s.last_success.map(|t| (Utc::now() - t).num_seconds());
        s
    }

    fn set_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        let mut g = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g);
    }

    /// Sync (full or incremental) and build a snapshot; on failure serve the last good one.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, SourceError> {
        let mut st = self.state.lock().await;
        let started = Utc::now();
        self.set_status(|s| s.last_attempt = Some(started));
        let full = st.since.is_none() || st.syncs_since_full >= self.cfg.sync.full_reload_every;
        let calls_before = self.client.rpc_calls();
        let outcome = if full {
            self.full_load(&mut st, started).await
        } else {
            self.incremental(&mut st, started).await
        };
        let calls = self.client.rpc_calls() - calls_before;
        match outcome {
            Ok(changes) => {
                st.since = Some(started);
                st.syncs_since_full = if full { 0 } else { st.syncs_since_full + 1 };
                let snap = Arc::new(self.build(&st, started));
                st.last_good = Some(snap.clone());
                let mut warnings: Vec<String> = st
                    .unreadable
                    .iter()
                    .map(|(m, why)| format!("{m}: {why}"))
                    .collect();
                warnings.extend(st.field_warnings.iter().cloned());
                warnings.sort();
                self.set_status(|s| {
                    s.last_success = Some(started);
                    s.last_error = None;
                    s.warnings = warnings;
                    if full {
                        s.full_load_calls = calls;
                    } else {
                        s.incremental_calls = Some(calls);
                        s.incremental_changes = changes;
                    }
                });
                Ok(snap)
            }
            Err(e) => {
                let msg = e.to_string();
                self.set_status(|s| s.last_error = Some(msg.clone()));
                match &st.last_good {
                    Some(snap) => {
                        tracing::warn!(error = %msg, taken_at = %snap.taken_at, "Odoo sync failed; serving the last good snapshot");
                        Ok(snap.clone())
                    }
                    None => Err(SourceError(format!("Odoo sync failed: {msg}"))),
                }
            }
        }
    }

    async fn full_load(&self, st: &mut State, now: DateTime<Utc>) -> Result<usize, OdooError> {
        let mut mirrors = HashMap::new();
        let mut unreadable = HashMap::new();
        let (referenced, by_domain): (Vec<Table>, Vec<Table>) =
            schema::tables(self.schema, &self.cfg, now)
                .into_iter()
                .partition(|t| t.by_reference);
        for table in by_domain {
            let fields = match self.resolve_fields(st, &table).await {
                Ok(f) => f,
                Err(e) => {
                    self.degrade(&table, e, &mut unreadable)?;
                    continue;
                }
            };
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            let mut with_date = refs.clone();
            with_date.push("write_date");
            match self
                .client
                .search_read_all(
                    table.model,
                    table.domain.clone(),
                    &with_date,
                    self.cfg.sync.page_size,
                )
                .await
            {
                Ok(rows) => {
                    let m: Mirror = rows
                        .into_iter()
                        .filter_map(|r| r.get("id").and_then(Value::as_i64).map(|id| (id, r)))
                        .collect();
                    mirrors.insert(table.model, m);
                }
                Err(e) => self.degrade(&table, e, &mut unreadable)?,
            }
        }
        for table in referenced {
            match self.resolve_fields(st, &table).await {
                Ok(fields) => {
                    let mut m = Mirror::new();
                    self.read_referenced(&table, &fields, &mirrors, &mut m, None)
                        .await?;
                    mirrors.insert(table.model, m);
                }
                Err(e) => self.degrade(&table, e, &mut unreadable)?,
            }
        }
        st.mirrors = mirrors;
        st.unreadable = unreadable;
        self.load_field_names(st).await?;
        Ok(st.mirrors.values().map(BTreeMap::len).sum())
    }

    /// Read the records of `ids` that also match `domain` into `mirror`, a page of ids at a
    /// time (ids that no longer exist are simply not returned); how many were read.
    async fn read_ids(
        &self,
        model: &str,
        fields: &[&str],
        domain: Value,
        ids: &[i64],
        mirror: &mut Mirror,
    ) -> Result<usize, OdooError> {
        let mut read = 0;
        for chunk in ids.chunks(self.cfg.sync.page_size.max(1)) {
            let d = schema::and(json!(["id", "in", chunk]), domain.clone());
            for r in self
                .client
                .search_read_all(model, d, fields, self.cfg.sync.page_size)
                .await?
            {
                if let Some(id) = r.get("id").and_then(Value::as_i64) {
                    mirror.insert(id, r);
                    read += 1;
                }
            }
        }
        Ok(read)
    }

    /// Bring a by-reference table (the partners) up to date with what the other mirrors
    /// reference: read the ids not held yet, re-read held ones changed since `changed_from`
    /// (incremental syncs), follow each partner to its company, and drop those no longer
    /// referenced. Returns the number of records read or dropped.
    async fn read_referenced(
        &self,
        table: &Table,
        fields: &[String],
        others: &HashMap<&'static str, Mirror>,
        mirror: &mut Mirror,
        changed_from: Option<&str>,
    ) -> Result<usize, OdooError> {
        let mut refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        refs.push("write_date");
        let mut wanted = partner_references(others);
        let mut changes = 0;
        if let Some(from) = changed_from {
            let held: Vec<i64> = mirror
                .keys()
                .copied()
                .filter(|id| wanted.contains(id))
                .collect();
            let recent = json!([["write_date", ">=", from]]);
            changes += self
                .read_ids(table.model, &refs, recent, &held, mirror)
                .await?;
        }
        // Twice: the referenced partners, then the companies of contacts among them.
        for _ in 0..2 {
            let missing: Vec<i64> = wanted
                .iter()
                .copied()
                .filter(|id| !mirror.contains_key(id))
                .collect();
            changes += self
                .read_ids(table.model, &refs, json!([]), &missing, mirror)
                .await?;
            let companies: Vec<i64> = wanted
                .iter()
                .filter_map(|id| mirror.get(id))
                .filter_map(|r| wire::m2o_id(wire::get(r, "commercial_partner_id")))
                .collect();
            let before = wanted.len();
            wanted.extend(companies);
            if wanted.len() == before {
                break;
            }
        }
        let stale: Vec<i64> = mirror
            .keys()
            .copied()
            .filter(|id| !wanted.contains(id))
            .collect();
        changes += stale.len();
        for id in stale {
            mirror.remove(&id);
        }
        Ok(changes)
    }

    async fn incremental(&self, st: &mut State, now: DateTime<Utc>) -> Result<usize, OdooError> {
        let Some(since) = st.since else {
            return Ok(0);
        };
        // write_date has one-second precision: overlap by a second, merging is idempotent.
        let from = wire::format_datetime(since - Duration::seconds(1));
        let mut changed = 0;
        let mut referenced = Vec::new();
        for table in schema::tables(self.schema, &self.cfg, now) {
            if st.unreadable.contains_key(table.model) {
                continue;
            }
            if table.by_reference {
                referenced.push(table);
                continue;
            }
            let Some(fields) = st.fields.get(table.model).cloned() else {
                continue;
            };
            let mut refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            refs.push("write_date");
            let recent = json!(["write_date", ">=", from]);
            let rows = self
                .client
                .search_read_all(
                    table.model,
                    schema::and(recent.clone(), table.domain.clone()),
                    &refs,
                    self.cfg.sync.page_size,
                )
                .await?;
            let left = self
                .client
                .search_read_all(
                    table.model,
                    schema::and(recent, schema::not(table.domain.clone())),
                    &["id"],
                    self.cfg.sync.page_size,
                )
                .await?;
            let m = st.mirrors.entry(table.model).or_default();
            changed += rows.len() + left.len();
            for r in rows {
                if let Some(id) = r.get("id").and_then(Value::as_i64) {
                    m.insert(id, r);
                }
            }
            for r in left {
                if let Some(id) = r.get("id").and_then(Value::as_i64) {
                    m.remove(&id);
                }
            }
        }
        for table in referenced {
            let Some(fields) = st.fields.get(table.model).cloned() else {
                continue;
            };
            let mut m = st.mirrors.remove(table.model).unwrap_or_default();
            let read = self
                .read_referenced(&table, &fields, &st.mirrors, &mut m, Some(&from))
                .await;
            st.mirrors.insert(table.model, m);
            changed += read?;
        }
        self.load_field_names(st).await?;
        Ok(changed)
    }

    /// Which fields to read: checked once against fields_get.
    async fn resolve_fields(
        &self,
        st: &mut State,
        table: &Table,
    ) -> Result<Vec<String>, OdooError> {
        if let Some(f) = st.fields.get(table.model) {
            return Ok(f.clone());
        }
        let known = self.client.fields_get(table.model).await?;
        let mut fields = Vec::new();
        for f in &table.fields {
            if !known.contains_key(f) {
                return Err(OdooError::BadQuery(format!(
                    "field {}.{f} is missing (fields_get does not show it to this user)",
                    table.model
                )));
            }
            fields.push(f.clone());
        }
        for f in &table.optional {
            if known.contains_key(f) {
                fields.push(f.clone());
            } else if !f.is_empty() {
                tracing::info!(model = table.model, field = %f, "optional field not available; carrying on without it");
                if f == "credit_limit" {
                    st.field_warnings.push(
                        "res.partner.credit_limit: not readable by the integration user (needs an accounting group such as Invoicing / Billing): credit_hold runs without credit limits".into(),
                    );
                }
            }
        }
        st.fields.insert(table.model, fields.clone());
        Ok(fields)
    }

    fn degrade(
        &self,
        table: &Table,
        e: OdooError,
        unreadable: &mut HashMap<&'static str, String>,
    ) -> Result<(), OdooError> {
        if table.essential
            || !matches!(
                e,
                OdooError::AccessError(_) | OdooError::UserError(_) | OdooError::BadQuery(_)
            )
        {
            return Err(e);
        }
        let why = format!("cannot be read ({e}); without it: {}", table.affects);
        tracing::warn!(model = table.model, "{why}");
        unreadable.insert(table.model, why);
        Ok(())
    }

    async fn load_field_names(&self, st: &mut State) -> Result<(), OdooError> {
        if self.schema.tracking_field() != "field_id" {
            return Ok(());
        }
        let Some(tv) = st.mirrors.get("mail.tracking.value") else {
            return Ok(());
        };
        let missing: Vec<i64> = tv
            .values()
            .filter_map(|r| wire::m2o_id(wire::get(r, "field_id")))
            .filter(|id| !st.field_names.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for chunk in missing.chunks(1000) {
            for r in self
                .client
                .read("ir.model.fields", chunk, &["name"])
                .await?
            {
                if let (Some(id), Some(name)) =
                    (wire::get(&r, "id").as_i64(), wire::get(&r, "name").as_str())
                {
                    st.field_names.insert(id, name.to_string());
                }
            }
        }
        Ok(())
    }

    /// Turn the mirror into a snapshot.
    fn build(&self, st: &State, now: DateTime<Utc>) -> Snapshot {
        let empty = Mirror::new();
        let m = |model: &str| st.mirrors.get(model).unwrap_or(&empty);
        let cfg = &self.cfg;
        let mut s = Snapshot {
            source: format!(
                "odoo {} db={} ({})",
                self.client.url(),
                self.client.db(),
                self.client.version().text
            ),
            taken_at: now,
            currency: m("res.company")
                .values()
                .next()
                .and_then(|c| wire::m2o(wire::get(c, "currency_id")))
                .and_then(|(_, n)| n)
                .unwrap_or("EUR")
                .to_string(),
            ..Snapshot::default()
        };

        // Warehouses, and locations / operation types → warehouse.
        let mut wh_ix: HashMap<i64, Ix> = HashMap::new();
        let mut in_type: HashMap<i64, Ix> = HashMap::new();
        let mut out_type: HashMap<i64, Ix> = HashMap::new();
        for r in m("stock.warehouse").values() {
            let ix = s.warehouses.len() as Ix;
            let code = wire::opt_str(wire::get(r, "code"))
                .unwrap_or("WH")
                .to_string();
            let o = cfg.warehouses.overrides.get(&code);
            wh_ix.insert(int(r), ix);
            if let Some(t) = wire::m2o_id(wire::get(r, "in_type_id")) {
                in_type.insert(t, ix);
            }
            if let Some(t) = wire::m2o_id(wire::get(r, "out_type_id")) {
                out_type.insert(t, ix);
            }
            s.warehouses.push(Warehouse {
                id: int(r),
                name: wire::opt_str(wire::get(r, "name"))
                    .unwrap_or(&code)
                    .to_string(),
                code,
                pool: o.and_then(|o| o.pool).unwrap_or(cfg.warehouses.pool),
                transfer_hours: o
                    .and_then(|o| o.transfer_hours)
                    .unwrap_or(cfg.warehouses.transfer_hours),
            });
        }
        let loc_wh: HashMap<i64, Ix> = m("stock.location")
            .values()
            .filter_map(|r| {
                wire::m2o_id(wire::get(r, "warehouse_id"))
                    .and_then(|w| wh_ix.get(&w))
                    .map(|&w| (int(r), w))
            })
            .collect();

        // Products (variants); substitutes name templates.
        let mut prod_ix: HashMap<i64, Ix> = HashMap::new();
        let mut tmpl_variant: HashMap<i64, Ix> = HashMap::new();
        for r in m("product.product").values() {
            let ix = s.products.len() as Ix;
            prod_ix.insert(int(r), ix);
            if let Some(t) = wire::m2o_id(wire::get(r, "product_tmpl_id")) {
                tmpl_variant.entry(t).or_insert(ix);
            }
            let cost = wire::dec(wire::get(r, "standard_price"));
            s.products.push(Product {
                id: int(r),
                sku: wire::opt_str(wire::get(r, "default_code"))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("P{}", int(r))),
                name: wire::opt_str(wire::get(r, "name"))
                    .unwrap_or("")
                    .to_string(),
                category: wire::m2o(wire::get(r, "categ_id"))
                    .and_then(|(_, n)| n)
                    .map(|n| n.rsplit(" / ").next().unwrap_or(n).to_string())
                    .unwrap_or_default(),
                cost: (!cost.is_zero()).then_some(cost),
                list_price: wire::dec(wire::get(r, "lst_price")),
                substitutes: Vec::new(),
            });
        }
        for (pi, r) in m("product.product").values().enumerate() {
            let subs: Vec<Ix> = wire::ids(wire::get(r, "optional_product_ids"))
                .iter()
                .filter_map(|t| tmpl_variant.get(t).copied())
                .filter(|&x| x as usize != pi)
                .collect();
            s.products[pi].substitutes = subs;
        }

        // Stock per product and warehouse.
        let mut stock: BTreeMap<(Ix, Ix), StockLevel> = BTreeMap::new();
        for r in m("stock.quant").values() {
            let (Some(&p), Some(&w)) = (
                wire::m2o_id(wire::get(r, "product_id")).and_then(|p| prod_ix.get(&p)),
                wire::m2o_id(wire::get(r, "location_id")).and_then(|l| loc_wh.get(&l)),
            ) else {
                continue;
            };
            let e = stock.entry((p, w)).or_insert(StockLevel {
                id: int(r),
                product: p,
                warehouse: w,
                on_hand: Decimal::ZERO,
                reserved: Decimal::ZERO,
            });
            e.id = e.id.min(int(r));
            e.on_hand += wire::dec(wire::get(r, "quantity"));
            e.reserved += wire::dec(wire::get(r, "reserved_quantity"));
        }
        s.stock = stock.into_values().collect();

        // Partners: vendors, customers (commercial entities), contact → customer.
        let tags: HashMap<i64, String> = m("res.partner.category")
            .values()
            .filter_map(|r| wire::opt_str(wire::get(r, "name")).map(|n| (int(r), n.to_lowercase())))
            .collect();
        let has_tag = |r: &Record, names: &[String]| {
            wire::ids(wire::get(r, "category_id")).iter().any(|t| {
                tags.get(t)
                    .is_some_and(|n| names.iter().any(|x| x.to_lowercase() == *n))
            })
        };
        let days_field = self.schema.payment_days();
        let mut term_days: HashMap<i64, u32> = HashMap::new();
        for r in m("account.payment.term.line").values() {
            if let Some(t) = wire::m2o_id(wire::get(r, "payment_id")) {
                let d = wire::get(r, days_field)
                    .as_i64()
                    .unwrap_or(0)
                    .clamp(0, 3650) as u32;
                let e = term_days.entry(t).or_insert(0);
                *e = (*e).max(d);
            }
        }
        let mut sup_ix: HashMap<i64, Ix> = HashMap::new();
        let mut cust_ix: HashMap<i64, Ix> = HashMap::new();
        let mut pricelist_customers: HashMap<i64, Vec<Ix>> = HashMap::new();
        let partners = m("res.partner");
        // Customers are the companies the orders and invoices read are for, vendors those the
        // purchase orders are with (see the read plan: not Odoo's ranks).
        let commercial_of = |id: i64| -> i64 {
            partners
                .get(&id)
                .and_then(|r| wire::m2o_id(wire::get(r, "commercial_partner_id")))
                .unwrap_or(id)
        };
        let referenced = |model: &str, field: &str| -> HashSet<i64> {
            m(model)
                .values()
                .filter_map(|r| wire::m2o_id(wire::get(r, field)))
                .map(commercial_of)
                .collect()
        };
        // Odoo applies partners' credit limits only while the company has them turned on
        // (Settings → Customer Credit Limit); limits left on partners after turning it off
        // are ignored, here too. (Without the field, as before 15, they apply.)
        let limits_on = m("res.company")
            .values()
            .next()
            .and_then(|c| c.get("account_use_credit_limit"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let vendors = referenced("purchase.order", "partner_id");
        let mut customers = referenced("sale.order", "partner_id");
        customers.extend(referenced("account.move", "commercial_partner_id"));
        for r in partners.values() {
            let id = int(r);
            if vendors.contains(&id) {
                sup_ix.insert(id, s.suppliers.len() as Ix);
                s.suppliers.push(Supplier {
                    id,
                    name: wire::opt_str(wire::get(r, "name"))
                        .unwrap_or("")
                        .to_string(),
                    country: wire::opt_str(wire::get(r, "country_code"))
                        .unwrap_or("")
                        .to_string(),
                    lead_time_days: cfg.suppliers.lead_time_days,
                    on_time_rate: None,
                });
            }
            let commercial = wire::m2o_id(wire::get(r, "commercial_partner_id")).unwrap_or(id);
            if customers.contains(&id) && commercial == id {
                let ix = s.customers.len() as Ix;
                cust_ix.insert(id, ix);
                if let Some(pl) = wire::m2o_id(wire::get(r, "property_product_pricelist")) {
                    pricelist_customers.entry(pl).or_default().push(ix);
                }
                let limit = wire::dec(wire::get(r, "credit_limit"));
                s.customers.push(Customer {
                    id,
                    reference: wire::opt_str(wire::get(r, "ref"))
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("C{id}")),
                    name: wire::opt_str(wire::get(r, "name"))
                        .unwrap_or("")
                        .to_string(),
                    tier: if has_tag(r, &cfg.tiers.a_tags) {
                        Tier::A
                    } else if has_tag(r, &cfg.tiers.b_tags) {
                        Tier::B
                    } else {
                        Tier::C
                    },
                    key_account: has_tag(r, &cfg.tiers.key_account_tags),
                    credit_limit: (limits_on && limit > Decimal::ZERO).then_some(limit),
                    payment_terms_days: wire::m2o_id(wire::get(r, "property_payment_term_id"))
                        .and_then(|t| term_days.get(&t).copied())
                        .unwrap_or(30),
                    payments: PaymentHistory::default(),
                    lang: wire::opt_str(wire::get(r, "lang"))
                        .map(|l| l.split('_').next().unwrap_or(l).to_string())
                        .unwrap_or_else(|| "en".into()),
                    country: wire::opt_str(wire::get(r, "country_code"))
                        .unwrap_or("")
                        .to_string(),
                    email: wire::opt_str(wire::get(r, "email")).map(str::to_string),
                });
            }
        }
        // Contacts map to their company.
        let customer_of = |partner: i64| -> Option<Ix> {
            cust_ix.get(&partner).copied().or_else(|| {
                partners
                    .get(&partner)
                    .and_then(|r| wire::m2o_id(wire::get(r, "commercial_partner_id")))
                    .and_then(|c| cust_ix.get(&c).copied())
            })
        };

        for r in m("account.move").values() {
            let Some(c) = wire::m2o_id(wire::get(r, "commercial_partner_id")).and_then(customer_of)
            else {
                continue;
            };
            let (Some(date), Some(due)) = (
                wire::datetime(wire::get(r, "invoice_date")),
                wire::datetime(wire::get(r, "invoice_date_due")),
            ) else {
                continue;
            };
            s.invoices.push(Invoice {
                id: int(r),
                name: wire::opt_str(wire::get(r, "name"))
                    .unwrap_or("")
                    .to_string(),
                customer: c,
                amount_total: wire::dec(wire::get(r, "amount_total")),
                residual: wire::dec(wire::get(r, "amount_residual")),
                invoice_date: date,
                due_date: due,
            });
        }

        // Payment history: each invoice's receivable line, settled by the partials it lists.
        let mut settlements: HashMap<Ix, Vec<Settlement>> = HashMap::new();
        for (c, settlement) in settlements_of(
            m("account.move.line"),
            m("account.partial.reconcile"),
            customer_of,
        ) {
            settlements.entry(c).or_default().push(settlement);
        }
        for (c, list) in settlements {
            if let Some(customer) = s.customers.get_mut(c as usize) {
                customer.payments = PaymentHistory::summarize(&list, now);
            }
        }

        // Inbound purchase lines (and their receipt moves, for make-to-order links).
        let mut receipt_of: HashMap<i64, Ix> = HashMap::new();
        let confirmed_field = self.schema.po_confirmed();
        let pos = m("purchase.order");
        for r in m("purchase.order.line").values() {
            let Some(po) = wire::m2o_id(wire::get(r, "order_id")).and_then(|o| pos.get(&o)) else {
                continue;
            };
            let (Some(&p), Some(&sup)) = (
                wire::m2o_id(wire::get(r, "product_id")).and_then(|p| prod_ix.get(&p)),
                wire::m2o_id(wire::get(po, "partner_id"))
                    .map(commercial_of)
                    .and_then(|v| sup_ix.get(&v)),
            ) else {
                continue;
            };
            let w = wire::m2o_id(wire::get(po, "picking_type_id"))
                .and_then(|t| in_type.get(&t).copied())
                .unwrap_or(0);
            let planned = wire::datetime(wire::get(r, "date_planned"));
            let state = match wire::get(po, "state").as_str() {
                Some("purchase") => PurchaseState::Purchase,
                Some("sent") => PurchaseState::Sent,
                Some("done") => PurchaseState::Done,
                Some("cancel") => PurchaseState::Cancel,
                _ => PurchaseState::Draft,
            };
            for receipt in wire::ids(wire::get(r, "move_ids")) {
                receipt_of.insert(receipt, s.inbound.len() as Ix);
            }
            s.inbound.push(InboundLine {
                id: int(r),
                po_ref: wire::opt_str(wire::get(po, "name"))
                    .unwrap_or("")
                    .to_string(),
                supplier: sup,
                product: p,
                warehouse: w,
                qty: wire::dec(wire::get(r, "product_qty")),
                qty_received: wire::dec(wire::get(r, "qty_received")),
                ordered_at: wire::datetime(wire::get(po, "date_approve"))
                    .or_else(|| wire::datetime(wire::get(po, "date_order")))
                    .unwrap_or(now),
                // Odoo keeps no first-planned date: the store's own history of this
                // line's `date_planned` supplies it (`app::planned`).
                original_planned: None,
                planned,
                confirmed: wire::get(po, confirmed_field).as_bool().unwrap_or(false),
                state,
            });
        }

        // Carriers.
        let mut carrier_ix: HashMap<i64, Ix> = HashMap::new();
        for r in m("delivery.carrier").values() {
            let name = wire::opt_str(wire::get(r, "name"))
                .unwrap_or("")
                .to_string();
            let o = cfg.carriers.overrides.get(&name);
            carrier_ix.insert(int(r), s.carriers.len() as Ix);
            s.carriers.push(Carrier {
                id: int(r),
                on_time_rate: o.and_then(|o| o.on_time_rate),
                transit_hours: o
                    .and_then(|o| o.transit_hours)
                    .unwrap_or(cfg.carriers.transit_hours),
                name,
            });
        }

        // Orders and their lines (contiguous, in Odoo's line order).
        let promised_field = cfg.orders.promised_date_field.as_str();
        let mut order_ix: HashMap<i64, Ix> = HashMap::new();
        let mut lines_of: HashMap<i64, Vec<&Record>> = HashMap::new();
        for r in m("sale.order.line").values() {
            if let Some(o) = wire::m2o_id(wire::get(r, "order_id")) {
                lines_of.entry(o).or_default().push(r);
            }
        }
        let mut reserved: HashMap<i64, Decimal> = HashMap::new();
        let qty_field = self.schema.move_reserved_qty();
        for r in m("stock.move").values() {
            if let Some(l) = wire::m2o_id(wire::get(r, "sale_line_id")) {
                *reserved.entry(l).or_default() += wire::dec(wire::get(r, qty_field));
            }
        }
        for r in m("sale.order").values() {
            let (Some(c), Some(state)) = (
                wire::m2o_id(wire::get(r, "partner_id")).and_then(customer_of),
                wire::get(r, "state")
                    .as_str()
                    .and_then(|x| self.schema.order_state(x)),
            ) else {
                continue;
            };
            let w = wire::m2o_id(wire::get(r, "warehouse_id"))
                .and_then(|w| wh_ix.get(&w).copied())
                .unwrap_or(0);
            let oi = s.orders.len() as Ix;
            order_ix.insert(int(r), oi);
            let first_line = s.lines.len() as Ix;
            let mut ls = lines_of.remove(&int(r)).unwrap_or_default();
            ls.sort_by_key(|l| (wire::get(l, "sequence").as_i64().unwrap_or(0), int(l)));
            let mut seq = 0;
            for l in ls {
                let Some(&p) =
                    wire::m2o_id(wire::get(l, "product_id")).and_then(|p| prod_ix.get(&p))
                else {
                    continue;
                };
                seq += 1;
                s.lines.push(OrderLine {
                    id: int(l),
                    order: oi,
                    seq,
                    product: p,
                    qty: wire::dec(wire::get(l, "product_uom_qty")),
                    qty_delivered: wire::dec(wire::get(l, "qty_delivered")),
                    qty_invoiced: wire::dec(wire::get(l, "qty_invoiced")),
                    qty_reserved: reserved.get(&int(l)).copied().unwrap_or(Decimal::ZERO),
                    price_unit: wire::dec(wire::get(l, "price_unit")),
                    discount: wire::dec(wire::get(l, "discount")),
                    promised: None,
                });
            }
            s.orders.push(SalesOrder {
                id: int(r),
                name: wire::opt_str(wire::get(r, "name"))
                    .unwrap_or("")
                    .to_string(),
                customer: c,
                warehouse: w,
                state,
                date_order: wire::datetime(wire::get(r, "date_order")).unwrap_or(now),
                promised: wire::datetime(wire::get(r, promised_field)),
                client_ref: wire::opt_str(wire::get(r, "client_order_ref")).map(str::to_string),
                note: wire::opt_str(wire::get(r, "note"))
                    .map(wire::html_to_text)
                    .filter(|n| !n.is_empty()),
                first_line,
                line_count: seq,
                tax_rate: {
                    let untaxed = wire::dec(wire::get(r, "amount_untaxed"));
                    let total = wire::dec(wire::get(r, "amount_total"));
                    if untaxed > Decimal::ZERO && total > untaxed {
                        (total - untaxed) / untaxed
                    } else {
                        Decimal::ZERO
                    }
                },
            });
        }

        // Make-to-order: a delivery move that waits for a purchase line's receipt.
        let line_ix: HashMap<i64, Ix> = s
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.id, i as Ix))
            .collect();
        for r in m("stock.move").values() {
            let Some(&line) =
                wire::m2o_id(wire::get(r, "sale_line_id")).and_then(|l| line_ix.get(&l))
            else {
                continue;
            };
            for orig in wire::ids(wire::get(r, "move_orig_ids")) {
                if let Some(&inbound) = receipt_of.get(&orig) {
                    s.supply_links.push(SupplyLink { inbound, line });
                }
            }
        }

        // Pickings and their documents.
        let mut attached: HashMap<i64, Vec<DocumentKind>> = HashMap::new();
        let prefixes: Vec<(String, DocumentKind)> = cfg
            .documents
            .attachment_prefixes
            .iter()
            .filter_map(|(k, p)| document_kind(k).map(|d| (p.to_lowercase(), d)))
            .collect();
        for r in m("ir.attachment").values() {
            let (Some(pid), Some(name)) = (
                wire::get(r, "res_id").as_i64(),
                wire::opt_str(wire::get(r, "name")),
            ) else {
                continue;
            };
            let name = name.to_lowercase();
            if let Some((_, d)) = prefixes.iter().find(|(p, _)| name.starts_with(p.as_str())) {
                let v = attached.entry(pid).or_default();
                if !v.contains(d) {
                    v.push(*d);
                }
            }
        }
        let req_field = cfg.documents.required_field.as_str();
        let always: Vec<DocumentKind> = cfg
            .documents
            .always
            .iter()
            .filter_map(|d| document_kind(d))
            .collect();
        let export: Vec<DocumentKind> = cfg
            .documents
            .export
            .iter()
            .filter_map(|d| document_kind(d))
            .collect();
        for r in m("stock.picking").values() {
            let Some(&oi) = wire::m2o_id(wire::get(r, "sale_id")).and_then(|o| order_ix.get(&o))
            else {
                continue;
            };
            let order = &s.orders[oi as usize];
            let required = match r.get(req_field).and_then(wire::opt_str) {
                Some(list) if !req_field.is_empty() => {
                    list.split(',').filter_map(document_kind).collect()
                }
                _ => {
                    let mut v = always.clone();
                    let country = s
                        .customers
                        .get(order.customer as usize)
                        .map(|c| c.country.as_str())
                        .unwrap_or("");
                    if !cfg.documents.home_countries.is_empty()
                        && !cfg.documents.home_countries.iter().any(|h| h == country)
                    {
                        v.extend(export.iter().copied());
                    }
                    v
                }
            };
            let state = match wire::get(r, "state").as_str() {
                Some("done") => PickingState::Done,
                Some("cancel") => PickingState::Cancel,
                Some("assigned") => PickingState::Assigned,
                Some("confirmed") => PickingState::Confirmed,
                _ => PickingState::Waiting,
            };
            s.pickings.push(Picking {
                id: int(r),
                name: wire::opt_str(wire::get(r, "name"))
                    .unwrap_or("")
                    .to_string(),
                order: oi,
                warehouse: wire::m2o_id(wire::get(r, "picking_type_id"))
                    .and_then(|t| out_type.get(&t).copied())
                    .unwrap_or(order.warehouse),
                carrier: r
                    .get("carrier_id")
                    .and_then(wire::m2o_id)
                    .and_then(|c| carrier_ix.get(&c).copied()),
                state,
                scheduled: wire::datetime(wire::get(r, "scheduled_date")),
                done_at: wire::datetime(wire::get(r, "date_done")),
                tracking_ref: r
                    .get("carrier_tracking_ref")
                    .and_then(wire::opt_str)
                    .map(str::to_string),
                documents_required: required,
                documents_present: attached.remove(&int(r)).unwrap_or_default(),
            });
        }

        // Contract prices: fixed prices on the pricelists the customer's orders use (the one
        // Odoo priced them with) and on the customer's own pricelist.
        for r in m("sale.order").values() {
            if let (Some(pl), Some(&oi)) = (
                wire::m2o_id(wire::get(r, "pricelist_id")),
                order_ix.get(&int(r)),
            ) && let Some(o) = s.orders.get(oi as usize)
            {
                let v = pricelist_customers.entry(pl).or_default();
                if !v.contains(&o.customer) {
                    v.push(o.customer);
                }
            }
        }
        for r in m("product.pricelist.item").values() {
            let (Some((pl, pl_name)), Some(&p)) = (
                wire::m2o(wire::get(r, "pricelist_id")),
                wire::m2o_id(wire::get(r, "product_id")).and_then(|p| prod_ix.get(&p)),
            ) else {
                continue;
            };
            for &c in pricelist_customers
                .get(&pl)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                s.contract_prices.push(ContractPrice {
                    id: int(r),
                    customer: c,
                    product: p,
                    price: wire::dec(wire::get(r, "fixed_price")),
                    min_qty: wire::dec(wire::get(r, "min_quantity")),
                    valid_from: wire::datetime(wire::get(r, "date_start")),
                    valid_to: wire::datetime(wire::get(r, "date_end")),
                    reference: pl_name.unwrap_or("pricelist").to_string(),
                });
            }
        }

        // Tracked changes: one per message, that is one per save of the order. Odoo 17/18
        // track no line quantity itself: a quantity edit shows as the order's amounts
        // (`amount_untaxed` and `amount_total` in one message), and confirming or
        // cancelling as `state` — a step of the order's life, not a change to it.
        let messages = m("mail.message");
        let tf = self.schema.tracking_field();
        let field_of = |r: &Record| -> String {
            if tf == "field_id" {
                wire::m2o_id(wire::get(r, "field_id"))
                    .and_then(|id| st.field_names.get(&id))
                    .cloned()
                    .unwrap_or_default()
            } else {
                wire::opt_str(wire::get(r, "field"))
                    .unwrap_or("")
                    .to_string()
            }
        };
        s.changes = order_changes(m("mail.tracking.value"), messages, field_of, &order_ix);
        s.changes.sort_by_key(|c| (c.order, c.at, c.id));
        s
    }
}

/// The tracked changes of the orders read: one per message, that is one per save of an
/// order, leaving out [`LIFECYCLE_FIELDS`]; a message's `amount_total` stands for the
/// amounts that move with it. `field_of` names a tracking row's field.
fn order_changes(
    tracking: &Mirror,
    messages: &Mirror,
    field_of: impl Fn(&Record) -> String,
    order_ix: &HashMap<i64, Ix>,
) -> Vec<OrderChange> {
    let mut changes = Vec::new();
    let mut saves: BTreeMap<i64, Vec<(String, &Record)>> = BTreeMap::new();
    for r in tracking.values() {
        let field = field_of(r);
        if LIFECYCLE_FIELDS.contains(&field.as_str()) {
            continue;
        }
        if let Some(msg) = wire::m2o_id(wire::get(r, "mail_message_id")) {
            saves.entry(msg).or_default().push((field, r));
        }
    }
    for (msg_id, values) in saves {
        let Some(msg) = messages.get(&msg_id) else {
            continue;
        };
        let (Some(&oi), Some(at)) = (
            wire::get(msg, "res_id")
                .as_i64()
                .and_then(|o| order_ix.get(&o)),
            wire::datetime(wire::get(msg, "date")),
        ) else {
            continue;
        };
        // The total stands for the amounts that move with it.
        let Some((field, r)) = values
            .iter()
            .find(|(f, _)| f == "amount_total")
            .or_else(|| values.first())
        else {
            continue;
        };
        changes.push(OrderChange {
            id: int(r),
            order: oi,
            at,
            field: field.clone(),
            old_value: tracked_value(r, "old"),
            new_value: tracked_value(r, "new"),
            author: wire::m2o(wire::get(msg, "author_id"))
                .and_then(|(_, n)| n)
                .unwrap_or("")
                .to_string(),
        });
    }
    changes
}

/// How the customer invoices' receivable lines were settled: for each line of an invoice
/// (positive balance) of a known customer, the partial reconciliations it lists — with a
/// credit note's receivable line (negative balance among the same lines) as a credit, with
/// anything else (a payment) as a payment on the partial's `max_date`, the later of the two
/// lines' dates, that is when the money arrived.
fn settlements_of(
    lines: &Mirror,
    partials: &Mirror,
    customer_of: impl Fn(i64) -> Option<Ix>,
) -> Vec<(Ix, Settlement)> {
    let mut out = Vec::new();
    for r in lines.values() {
        let amount = wire::dec(wire::get(r, "balance"));
        let (Some((move_id, name)), Some(due), Some(c)) = (
            wire::m2o(wire::get(r, "move_id")),
            wire::datetime(wire::get(r, "date_maturity")),
            wire::m2o_id(wire::get(r, "partner_id")).and_then(&customer_of),
        ) else {
            continue;
        };
        if amount <= Decimal::ZERO {
            continue; // a credit note's line: it settles invoices, it is not one
        }
        let mut s = Settlement {
            id: move_id,
            invoice: name.unwrap_or("").to_string(),
            due,
            amount,
            residual: wire::dec(wire::get(r, "amount_residual")),
            payments: Vec::new(),
            credited: Decimal::ZERO,
        };
        for p in wire::ids(wire::get(r, "matched_credit_ids")) {
            let Some(partial) = partials.get(&p) else {
                continue;
            };
            let paid = wire::dec(wire::get(partial, "amount"));
            let by_credit_note = wire::m2o_id(wire::get(partial, "credit_move_id"))
                .and_then(|l| lines.get(&l))
                .is_some_and(|l| wire::dec(wire::get(l, "balance")) < Decimal::ZERO);
            if by_credit_note {
                s.credited += paid;
            } else if let Some(date) = wire::datetime(wire::get(partial, "max_date")) {
                s.payments.push((date, paid));
            }
        }
        out.push((c, s));
    }
    out
}

/// Tracked `sale.order` fields that mark a step of the order's life (confirmed, cancelled,
/// locked) rather than a change to what was ordered.
const LIFECYCLE_FIELDS: [&str; 2] = ["state", "locked"];

/// The partners the other mirrors point at: the customers of the orders and invoices and
/// the vendors of the purchase orders.
fn partner_references(mirrors: &HashMap<&'static str, Mirror>) -> HashSet<i64> {
    const REFS: [(&str, &str); 3] = [
        ("sale.order", "partner_id"),
        ("purchase.order", "partner_id"),
        ("account.move", "commercial_partner_id"),
    ];
    REFS.iter()
        .filter_map(|(model, field)| mirrors.get(model).map(|m| (m, *field)))
        .flat_map(|(m, field)| {
            m.values()
                .filter_map(move |r| wire::m2o_id(wire::get(r, field)))
        })
        .collect()
}

fn int(r: &Record) -> i64 {
    r.get("id").and_then(Value::as_i64).unwrap_or(0)
}

/// The old or new value of a tracking row as text, whichever typed column holds it.
fn tracked_value(r: &Record, side: &str) -> String {
    let get = |k: &str| {
        r.get(&format!("{side}_value_{k}"))
            .cloned()
            .unwrap_or(Value::Bool(false))
    };
    if let Some(s) = wire::opt_str(&get("char")) {
        return s.to_string();
    }
    if let Some(s) = wire::opt_str(&get("datetime")) {
        return s.to_string();
    }
    let f = wire::dec(&get("float"));
    if !f.is_zero() {
        return f.to_string();
    }
    wire::dec(&get("integer")).to_string()
}

impl Source for OdooSource {
    fn describe(&self) -> String {
        format!(
            "odoo {} db={} ({})",
            self.client.url(),
            self.client.db(),
            self.client.version().text
        )
    }

    fn key(&self) -> String {
        format!("odoo {} db={}", self.client.url(), self.client.db())
    }

    fn snapshot(&self) -> BoxFuture<'_, Result<Arc<Snapshot>, SourceError>> {
        Box::pin(self.refresh())
    }

    fn status(&self) -> Value {
        serde_json::to_value(self.sync_status()).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The rows of the `n`th recorded answer.
    fn rows(doc: &Value, n: usize) -> Vec<Record> {
        doc["exchanges"][n]["response"]["body"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    fn mirror(rows: Vec<Record>) -> Mirror {
        rows.into_iter().map(|r| (int(&r), r)).collect()
    }

    /// Recorded from real Odoo 17 and 18 servers: an order confirmed, its quantity edited
    /// once and its promise moved once is one change (the edit), not three tracking rows.
    #[test]
    fn one_edit_of_a_confirmed_order_is_one_change() {
        for doc in [
            include_str!("../../tests/fixtures/odoo/sale_order_tracking_17.json"),
            include_str!("../../tests/fixtures/odoo/sale_order_tracking_18.json"),
        ] {
            let doc: Value = serde_json::from_str(doc).unwrap();
            let (messages, tracking, fields) = (rows(&doc, 0), rows(&doc, 1), rows(&doc, 2));
            assert_eq!(tracking.len(), 3, "the premise: state, untaxed, total");
            let names: HashMap<i64, String> = fields
                .iter()
                .map(|r| (int(r), r["name"].as_str().unwrap().to_string()))
                .collect();
            let order = messages[0]["res_id"].as_i64().unwrap();
            let order_ix = HashMap::from([(order, 0 as Ix)]);
            let changes = order_changes(
                &mirror(tracking),
                &mirror(messages),
                |r| {
                    wire::m2o_id(wire::get(r, "field_id"))
                        .and_then(|id| names.get(&id).cloned())
                        .unwrap_or_default()
                },
                &order_ix,
            );
            assert_eq!(changes.len(), 1, "{}: {changes:?}", doc["odoo_version"]);
            let c = &changes[0];
            assert_eq!(
                (c.field.as_str(), c.old_value.as_str(), c.new_value.as_str()),
                ("amount_total", "920", "1150"),
                "{}",
                doc["odoo_version"]
            );
            assert_eq!(c.author, "Administrator");
        }
    }
}
