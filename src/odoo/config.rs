//! Installation-specific mappings (`src/odoo/default.toml` built in; `ODOO_CONFIG` to
//! replace it): which partner tag means which tier, which field holds the promised date,
//! which attachment is which shipping document, and the bot's role map. Validated at load:
//! unknown keys and unknown document kinds are errors naming the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::domain::DocumentKind;

/// The built-in defaults.
pub const DEFAULT: &str = include_str!("default.toml");

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooConfig {
    /// Customer tiers from partner tags.
    pub tiers: Tiers,
    /// Sales orders.
    pub orders: Orders,
    /// Shipping documents.
    pub documents: Documents,
    /// Warehouse facts Odoo does not hold.
    pub warehouses: Warehouses,
    /// Vendor facts.
    pub suppliers: Suppliers,
    /// Carrier facts.
    pub carriers: Carriers,
    /// Tracked changes.
    pub changes: Changes,
    /// Synchronisation.
    pub sync: Sync,
    /// Executing approved actions.
    pub actions: Actions,
    /// The chatter/Discuss bot.
    pub bot: Bot,
}

/// `[tiers]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    /// Tags meaning tier A.
    pub a_tags: Vec<String>,
    /// Tags meaning tier B.
    pub b_tags: Vec<String>,
    /// Tags meaning key account.
    pub key_account_tags: Vec<String>,
}

/// `[orders]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Orders {
    /// Field holding the promised date.
    pub promised_date_field: String,
    /// Days of fully delivered orders to keep.
    pub lookback_days: u32,
}

/// `[documents]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Documents {
    /// Optional picking field listing required documents.
    pub required_field: String,
    /// Always required.
    pub always: Vec<String>,
    /// Home countries (ISO codes).
    pub home_countries: Vec<String>,
    /// Required for shipments abroad.
    pub export: Vec<String>,
    /// Attachment name prefix per document kind.
    pub attachment_prefixes: BTreeMap<String, String>,
}

/// `[warehouses]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warehouses {
    /// Default transfer hours.
    pub transfer_hours: u32,
    /// Default pool.
    pub pool: u16,
    /// Per warehouse code.
    pub overrides: BTreeMap<String, WarehouseOverride>,
}

/// One warehouse's overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseOverride {
    /// Transfer hours into it.
    pub transfer_hours: Option<u32>,
    /// Its pool.
    pub pool: Option<u16>,
}

/// `[suppliers]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppliers {
    /// Lead time in days.
    pub lead_time_days: u32,
}

/// `[carriers]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carriers {
    /// Default transit hours.
    pub transit_hours: u32,
    /// Per carrier name.
    pub overrides: BTreeMap<String, CarrierOverride>,
}

/// One carrier's overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierOverride {
    /// Transit hours.
    pub transit_hours: Option<u32>,
    /// Share delivered on time (0..=1).
    pub on_time_rate: Option<f32>,
}

/// `[changes]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Days of tracked changes to read.
    pub window_days: u32,
}

/// `[sync]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    /// Page size.
    pub page_size: usize,
    /// Incremental syncs between full reloads.
    pub full_reload_every: u32,
}

/// `[actions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    /// Copilot role → Odoo login receiving activities.
    pub role_users: BTreeMap<String, String>,
}

/// `[bot]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bot {
    /// Channel name.
    pub channel: String,
    /// Automation rule name.
    pub automation_name: String,
    /// Odoo login → copilot role.
    pub roles: BTreeMap<String, String>,
    /// Answers per minute.
    pub answers_per_minute: u32,
    /// Poll interval.
    pub poll_seconds: u64,
}

/// A document kind from its machine name.
pub fn document_kind(name: &str) -> Option<DocumentKind> {
    Some(match name.trim() {
        "delivery_slip" => DocumentKind::DeliverySlip,
        "commercial_invoice" => DocumentKind::CommercialInvoice,
        "certificate_of_origin" => DocumentKind::CertificateOfOrigin,
        "dangerous_goods" => DocumentKind::DangerousGoods,
        "proof_of_delivery" => DocumentKind::ProofOfDelivery,
        _ => return None,
    })
}

impl OdooConfig {
    /// The built-in defaults.
    pub fn embedded() -> Result<OdooConfig, String> {
        OdooConfig::parse("odoo.toml (built in)", DEFAULT)
    }

    /// Load a file.
    pub fn load(path: &Path) -> Result<OdooConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        OdooConfig::parse(&path.display().to_string(), &text)
    }

    /// Parse and validate.
    pub fn parse(name: &str, text: &str) -> Result<OdooConfig, String> {
        let c: OdooConfig = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        let docs = c
            .documents
            .always
            .iter()
            .chain(&c.documents.export)
            .chain(c.documents.attachment_prefixes.keys());
        for d in docs {
            if document_kind(d).is_none() {
                return Err(format!(
                    "{name}: unknown document kind `{d}` (known: delivery_slip, commercial_invoice, certificate_of_origin, dangerous_goods, proof_of_delivery)"
                ));
            }
        }
        if c.sync.page_size == 0 || c.sync.page_size > 50_000 {
            return Err(format!("{name}: sync.page_size must be 1..=50000"));
        }
        if c.orders.promised_date_field.trim().is_empty() {
            return Err(format!("{name}: orders.promised_date_field is empty"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_bad_keys_are_named() {
        let c = OdooConfig::embedded();
        assert!(c.is_ok(), "{c:?}");
        let bad = DEFAULT.replace("always = [\"delivery_slip\"", "always = [\"fax\"");
        let e = OdooConfig::parse("x.toml", &bad).err().unwrap_or_default();
        assert!(e.contains("unknown document kind `fax`"), "{e}");
        let bad = DEFAULT.replace("[suppliers]", "[suppliers]\nlead = 3");
        let e = OdooConfig::parse("x.toml", &bad).err().unwrap_or_default();
        assert!(e.contains("x.toml") && e.contains("lead"), "{e}");
    }
}
