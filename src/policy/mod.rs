//! Policies: the business's own thresholds, routing, escalation, approval rights and custom
//! rules, read from `policies/*.toml`.
//!
//! Loading validates everything before anything starts: unknown keys, wrong types, unknown
//! roles, impossible numbers and custom-rule expressions that do not compile are all
//! errors naming the file, the key and the problem. The policy **version** is a content
//! hash of the files, recorded with every exception and decision.
//!
//! This module reads files but owns no other I/O; the exception core receives a loaded,
//! validated [`Policy`].

pub mod expr;
pub mod fields;
pub mod limits;
pub mod retention;

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Tier;
use expr::Expr;

/// The default policy files, compiled into the binary so the product runs without them.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "approvals.toml",
        include_str!("../../policies/approvals.toml"),
    ),
    (
        "data_access.toml",
        include_str!("../../policies/data_access.toml"),
    ),
    ("limits.toml", include_str!("../../policies/limits.toml")),
    (
        "retention.toml",
        include_str!("../../policies/retention.toml"),
    ),
    ("roles.toml", include_str!("../../policies/roles.toml")),
    ("routing.toml", include_str!("../../policies/routing.toml")),
    (
        "predictions.toml",
        include_str!("../../policies/predictions.toml"),
    ),
    ("rules.toml", include_str!("../../policies/rules.toml")),
    (
        "thresholds.toml",
        include_str!("../../policies/thresholds.toml"),
    ),
];

/// A policy that failed to load. The message names the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// File name.
        file: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown/mistyped keys.
    #[error("{file}: {message}")]
    Syntax {
        /// File name.
        file: String,
        /// The parser's message (names the key and position).
        message: String,
    },
    /// A value is not acceptable.
    #[error("{file}: key `{key}`: {problem}")]
    Invalid {
        /// File name.
        file: String,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A required section is missing from every file.
    #[error("policies: no file defines `{key}` ({hint})")]
    Missing {
        /// Section name.
        key: String,
        /// What it is for.
        hint: String,
    },
    /// The directory holds no policy files.
    #[error("{dir}: no *.toml policy files found")]
    Empty {
        /// Directory.
        dir: String,
    },
}

/// Thresholds per built-in kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Lead time assumed for orders without a promised date.
    pub default_lead_days: u32,
    /// Stock shortage.
    pub stock_shortage: ShortageThresholds,
    /// Allocation conflict.
    pub allocation_conflict: AllocationThresholds,
    /// Price / discount mismatch.
    pub price_mismatch: PriceThresholds,
    /// Credit hold.
    pub credit_hold: CreditThresholds,
    /// Shipment delay.
    pub shipment_delay: ShipmentThresholds,
    /// Supplier delay.
    pub supplier_delay: SupplierThresholds,
    /// Missing documents.
    pub missing_documents: DocumentThresholds,
    /// Repeated changes.
    pub repeated_changes: ChangeThresholds,
}

/// `thresholds.stock_shortage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortageThresholds {
    /// Demand promised within this many days is checked.
    pub horizon_days: u32,
}

/// `thresholds.allocation_conflict`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationThresholds {
    /// The starving line must be due within this many days.
    pub starving_within_days: u32,
}

/// `thresholds.price_mismatch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceThresholds {
    /// Allowed deviation from the contract price, percent.
    pub contract_tolerance_pct: Decimal,
    /// Minimum margin, percent of net price.
    pub margin_floor_pct: Decimal,
    /// Maximum discount, percent.
    pub max_discount_pct: Decimal,
}

/// `thresholds.credit_hold`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditThresholds {
    /// Overdue days that put shipments on hold.
    pub max_overdue_days: u32,
    /// Share of late payments that marks a weak payer.
    pub late_payer_share: f64,
}

/// `thresholds.shipment_delay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentThresholds {
    /// Hours of tolerance past the promise.
    pub grace_hours: u32,
}

/// `thresholds.supplier_delay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierThresholds {
    /// Slip in days that counts as a delay.
    pub slip_days: u32,
    /// Days after ordering by which the supplier must confirm.
    pub confirm_within_days: u32,
    /// Days a request for quotation may stay sent without being confirmed.
    #[serde(default = "default_rfq_confirm_days")]
    pub rfq_confirm_days: u32,
}

fn default_rfq_confirm_days() -> u32 {
    7
}

/// `thresholds.missing_documents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentThresholds {
    /// Hours before the ship date by which shipping documents must be attached.
    pub ship_docs_before_hours: u32,
    /// Hours after shipping by which proof of delivery must be attached.
    pub pod_after_hours: u32,
}

/// `thresholds.repeated_changes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeThresholds {
    /// Window in days.
    pub window_days: u32,
    /// Minimum changes within the window.
    pub min_changes: u32,
}

/// Weights of the score's four parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Revenue at risk.
    pub revenue: u32,
    /// Margin at risk.
    pub margin: u32,
    /// Hours past the promise.
    pub lateness: u32,
    /// Customer tier.
    pub tier: u32,
}

/// Tier factors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierFactor {
    /// Tier A.
    #[serde(rename = "A")]
    pub a: f64,
    /// Tier B.
    #[serde(rename = "B")]
    pub b: f64,
    /// Tier C.
    #[serde(rename = "C")]
    pub c: f64,
}

impl TierFactor {
    /// Factor for a tier.
    pub fn of(&self, t: Tier) -> f64 {
        match t {
            Tier::A => self.a,
            Tier::B => self.b,
            Tier::C => self.c,
        }
    }
}

/// Severity bands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityBands {
    /// Critical at or above.
    pub critical: u8,
    /// High at or above.
    pub high: u8,
    /// Medium at or above.
    pub medium: u8,
}

/// `[scoring]`: how impact folds into a 0–100 score.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    /// Revenue at risk that fills the revenue part.
    pub revenue_full_at: Decimal,
    /// Margin at risk that fills the margin part.
    pub margin_full_at: Decimal,
    /// Hours late that fill the lateness part.
    pub lateness_full_at_hours: u32,
    /// Part weights (sum 100).
    pub weights: Weights,
    /// Tier factors.
    pub tier_factor: TierFactor,
    /// Severity bands.
    pub severity: SeverityBands,
}

/// Owner and escalation for one kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Role that owns the exception.
    pub owner: String,
    /// Role it escalates to.
    pub escalate_to: Option<String>,
    /// Escalate when the score is at least this.
    pub escalate_at_score: Option<u8>,
}

/// Who may approve one action, and how many of them must.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// Roles allowed to approve.
    pub roles: Vec<String>,
    /// Hours until a request expires.
    pub expires_hours: u32,
    /// Whether the person who asked may also approve. Absent means no: an approval is a
    /// second person's decision unless the policy says otherwise.
    #[serde(default)]
    pub requester_may_approve: bool,
    /// Whether a holder of the case's owner role (the team whose exception it is) may
    /// approve. Absent means yes.
    #[serde(default = "yes")]
    pub case_owner_may_approve: bool,
    /// Distinct people who must approve (default 1).
    #[serde(default = "one")]
    pub approvers: u32,
    /// More approvers for larger orders: each tier whose `order_value` the request's order
    /// value exceeds raises the count to its `approvers`.
    #[serde(default)]
    pub above: Vec<ApproverTier>,
}

/// "`approvers` distinct approvers above `order_value`" (`approvals.<action>.above`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverTier {
    /// Order value (company currency) above which the tier applies.
    pub order_value: Decimal,
    /// Distinct approvers needed then.
    pub approvers: u32,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// Most distinct approvers a policy may ask for.
pub const MAX_APPROVERS: u32 = 5;

impl ApprovalRule {
    /// Distinct approvers needed for an order of this value. An unknown value takes the
    /// highest tier: when in doubt, more eyes.
    pub fn approvers_for(&self, order_value: Option<Decimal>) -> u32 {
        self.above
            .iter()
            .filter(|t| order_value.is_none_or(|v| v > t.order_value))
            .map(|t| t.approvers)
            .fold(self.approvers, u32::max)
    }

    /// The approver roles left for a case owned by `owner_role`.
    pub fn roles_for_case(&self, owner_role: Option<&str>) -> Vec<String> {
        self.roles
            .iter()
            .filter(|r| self.case_owner_may_approve || Some(r.as_str()) != owner_role)
            .cloned()
            .collect()
    }
}

/// Where a custom rule is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// Once per open order line.
    Line,
    /// Once per confirmed order.
    Order,
}

/// Severity of an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    title: String,
    scope: RuleScope,
    when: String,
    owner: String,
    escalate_to: Option<String>,
    escalate_at_score: Option<u8>,
    min_severity: Option<Severity>,
    recommend: Option<String>,
}

/// A custom rule, compiled.
#[derive(Debug, Clone)]
pub struct CustomRule {
    /// Rule name; also the exception kind.
    pub name: String,
    /// One-line title.
    pub title: String,
    /// Scope.
    pub scope: RuleScope,
    /// Compiled condition.
    pub when: Expr,
    /// Routing.
    pub route: Route,
    /// Severity floor.
    pub min_severity: Option<Severity>,
    /// Action to recommend (an approval action name).
    pub recommend: Option<String>,
    /// File it came from.
    pub file: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    roles: Option<RawRoles>,
    thresholds: Option<Thresholds>,
    scoring: Option<Scoring>,
    routing: Option<BTreeMap<String, Route>>,
    approvals: Option<BTreeMap<String, ApprovalRule>>,
    rules: Option<Vec<RawRule>>,
    predictions: Option<Predictions>,
    data_access: Option<BTreeMap<String, DataAccessRule>>,
    limits: Option<limits::Limits>,
    retention: Option<retention::Retention>,
}

/// When a prediction becomes a predicted exception.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionRule {
    /// Calibrated probability at or above which it does (0 < threshold < 1).
    pub threshold: f64,
}

/// Thresholds of the four predictive models (`predictions.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predictions {
    /// Late fulfillment of an open order line.
    pub late_fulfillment: PredictionRule,
    /// Supplier delay of an open purchase line.
    pub supplier_delay: PredictionRule,
    /// Credit hold of a customer.
    pub credit_hold: PredictionRule,
    /// Order change by a key account.
    pub order_change: PredictionRule,
}

/// Which data classes may be sent to one kind of model provider (`data_access.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataAccessRule {
    /// Data classes allowed (from [`DATA_CLASSES`]); everything else is redacted.
    pub allow: Vec<String>,
}

/// Data classes the data-access policy can allow: personal contact data, credit and
/// payment data, a customer's payment history (how late each invoice was paid; finance's
/// own), costs and margins.
pub const DATA_CLASSES: &[&str] = &[
    "personal_contact",
    "credit_payment",
    "payment_history",
    "costs_margins",
];

/// Model providers the data-access policy names.
pub const PROVIDERS: &[&str] = &["local", "external"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    names: Vec<String>,
    #[serde(default)]
    permissions: BTreeMap<String, Vec<String>>,
}

/// Permissions a role can be granted in `roles.toml` (`[roles.permissions]`).
pub const PERMISSIONS: &[&str] = &[
    "decide_any_case",
    "request_actions",
    "read_audit",
    "run_scan",
    "chat",
];

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Content hash of the files (12 hex digits).
    pub version: String,
    /// Where each section came from (section → file), for evidence.
    pub sources: BTreeMap<&'static str, String>,
    /// Known roles.
    pub roles: Vec<String>,
    /// Permission → roles holding it.
    pub permissions: BTreeMap<String, Vec<String>>,
    /// Thresholds.
    pub thresholds: Thresholds,
    /// Scoring.
    pub scoring: Scoring,
    /// Routing per built-in kind.
    pub routing: BTreeMap<String, Route>,
    /// Approval rights per action.
    pub approvals: BTreeMap<String, ApprovalRule>,
    /// Custom rules.
    pub rules: Vec<CustomRule>,
    /// Prediction thresholds; `None` when no file defines them (no predicted exceptions).
    pub predictions: Option<Predictions>,
    /// Data classes each model provider (`local`, `external`) may receive, and each role
    /// may see (keyed by role name). A provider the files do not name receives none.
    pub data_access: BTreeMap<String, DataAccessRule>,
    /// Request rates, concurrent turns, model tokens per day and token lifetime
    /// (`limits.toml`; the defaults when no file defines them).
    pub limits: limits::Limits,
    /// How long prompt and response bodies are kept (`retention.toml`; the defaults when
    /// no file defines them).
    pub retention: retention::Retention,
}

/// The built-in exception kinds that routing must cover.
pub const BUILTIN_KINDS: &[&str] = &[
    "stock_shortage",
    "allocation_conflict",
    "price_mismatch",
    "credit_hold",
    "shipment_delay",
    "supplier_delay",
    "missing_documents",
    "repeated_changes",
];

/// The actions that need approval; the approvals file must cover every one.
pub const ACTIONS: &[&str] = &[
    "reallocate",
    "split_shipment",
    "transfer",
    "substitute",
    "expedite_purchase",
    "resource_purchase",
    "reschedule",
    "release_credit_hold",
    "apply_price",
    "request_documents",
    "contact_customer",
    "route_for_approval",
];

impl Policy {
    /// The policy compiled into the binary.
    pub fn embedded() -> Result<Policy, PolicyError> {
        let files: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        Policy::from_files(&files)
    }

    /// Load every `*.toml` in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Policy, PolicyError> {
        let read_err = |e| PolicyError::Read {
            file: dir.display().to_string(),
            source: e,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                names.push(path);
            }
        }
        names.sort();
        if names.is_empty() {
            return Err(PolicyError::Empty {
                dir: dir.display().to_string(),
            });
        }
        let mut files = Vec::new();
        for path in names {
            let text = std::fs::read_to_string(&path).map_err(|e| PolicyError::Read {
                file: path.display().to_string(),
                source: e,
            })?;
            files.push((path.display().to_string(), text));
        }
        Policy::from_files(&files)
    }

    /// Parse and validate a set of (file name, content) pairs.
    pub fn from_files(files: &[(String, String)]) -> Result<Policy, PolicyError> {
        let mut hasher = Sha256::new();
        let mut roles: Option<(String, RawRoles)> = None;
        let mut thresholds: Option<(String, Thresholds)> = None;
        let mut scoring: Option<(String, Scoring)> = None;
        let mut routing: Option<(String, BTreeMap<String, Route>)> = None;
        let mut approvals: Option<(String, BTreeMap<String, ApprovalRule>)> = None;
        let mut raw_rules: Vec<(String, RawRule)> = Vec::new();
        let mut predictions: Option<(String, Predictions)> = None;
        let mut data_access: Option<(String, BTreeMap<String, DataAccessRule>)> = None;
        let mut limits: Option<(String, limits::Limits)> = None;
        let mut retention: Option<(String, retention::Retention)> = None;

        fn once<T>(
            slot: &mut Option<(String, T)>,
            file: &str,
            key: &str,
            value: Option<T>,
        ) -> Result<(), PolicyError> {
            if let Some(v) = value {
                if let Some((first, _)) = slot {
                    return Err(PolicyError::Invalid {
                        file: file.to_string(),
                        key: key.to_string(),
                        problem: format!("already defined in {first}; define each section once"),
                    });
                }
                *slot = Some((file.to_string(), v));
            }
            Ok(())
        }

        for (file, text) in files {
            let base = Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| file.clone());
            hasher.update(base.as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
            let raw: RawFile = toml::from_str(text).map_err(|e| PolicyError::Syntax {
                file: file.clone(),
                message: e.to_string().trim_end().replace('\n', "\n  "),
            })?;
            once(&mut roles, file, "roles", raw.roles)?;
            once(&mut thresholds, file, "thresholds", raw.thresholds)?;
            once(&mut scoring, file, "scoring", raw.scoring)?;
            once(&mut routing, file, "routing", raw.routing)?;
            once(&mut approvals, file, "approvals", raw.approvals)?;
            once(&mut predictions, file, "predictions", raw.predictions)?;
            once(&mut data_access, file, "data_access", raw.data_access)?;
            once(&mut limits, file, "limits", raw.limits)?;
            once(&mut retention, file, "retention", raw.retention)?;
            for r in raw.rules.unwrap_or_default() {
                raw_rules.push((file.clone(), r));
            }
        }

        let missing = |key: &str, hint: &str| PolicyError::Missing {
            key: key.to_string(),
            hint: hint.to_string(),
        };
        let (roles_file, raw_roles) =
            roles.ok_or_else(|| missing("roles", "the list of role names"))?;
        let roles = raw_roles.names;
        let permissions = raw_roles.permissions;
        let (thr_file, thresholds) =
            thresholds.ok_or_else(|| missing("thresholds", "when conditions become exceptions"))?;
        let (sc_file, scoring) =
            scoring.ok_or_else(|| missing("scoring", "how impact becomes a score"))?;
        let (rt_file, routing) =
            routing.ok_or_else(|| missing("routing", "owner roles per kind"))?;
        let (ap_file, approvals) =
            approvals.ok_or_else(|| missing("approvals", "who approves each action"))?;

        let invalid = |file: &str, key: String, problem: String| PolicyError::Invalid {
            file: file.to_string(),
            key,
            problem,
        };

        if roles.is_empty() {
            return Err(invalid(
                &roles_file,
                "roles.names".into(),
                "must name at least one role".into(),
            ));
        }
        for r in &roles {
            if !valid_name(r) {
                return Err(invalid(
                    &roles_file,
                    "roles.names".into(),
                    format!("`{r}` is not a valid role name (lowercase letters, digits and _)"),
                ));
            }
        }
        let check_role = |file: &str, key: String, role: &str| -> Result<(), PolicyError> {
            if roles.iter().any(|r| r == role) {
                Ok(())
            } else {
                Err(invalid(
                    file,
                    key,
                    format!("unknown role `{role}` (known roles: {})", roles.join(", ")),
                ))
            }
        };

        for (perm, holders) in &permissions {
            if !PERMISSIONS.contains(&perm.as_str()) {
                return Err(invalid(
                    &roles_file,
                    format!("roles.permissions.{perm}"),
                    format!("unknown permission (known: {})", PERMISSIONS.join(", ")),
                ));
            }
            for r in holders {
                check_role(&roles_file, format!("roles.permissions.{perm}"), r)?;
            }
        }

        // Thresholds and scoring: ranges.
        let pct = |file: &str, key: &str, v: Decimal| -> Result<(), PolicyError> {
            if v < Decimal::ZERO || v > Decimal::ONE_HUNDRED {
                Err(invalid(
                    file,
                    key.into(),
                    format!("{v} is not a percentage between 0 and 100"),
                ))
            } else {
                Ok(())
            }
        };
        let p = &thresholds.price_mismatch;
        pct(
            &thr_file,
            "thresholds.price_mismatch.contract_tolerance_pct",
            p.contract_tolerance_pct,
        )?;
        pct(
            &thr_file,
            "thresholds.price_mismatch.margin_floor_pct",
            p.margin_floor_pct,
        )?;
        pct(
            &thr_file,
            "thresholds.price_mismatch.max_discount_pct",
            p.max_discount_pct,
        )?;
        let share = thresholds.credit_hold.late_payer_share;
        if !(0.0..=1.0).contains(&share) {
            return Err(invalid(
                &thr_file,
                "thresholds.credit_hold.late_payer_share".into(),
                format!("{share} is not a share between 0 and 1"),
            ));
        }
        if thresholds.repeated_changes.min_changes == 0 {
            return Err(invalid(
                &thr_file,
                "thresholds.repeated_changes.min_changes".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some((file, p)) = &predictions {
            for (name, rule) in [
                ("late_fulfillment", p.late_fulfillment),
                ("supplier_delay", p.supplier_delay),
                ("credit_hold", p.credit_hold),
                ("order_change", p.order_change),
            ] {
                if !(rule.threshold > 0.0 && rule.threshold < 1.0) {
                    return Err(invalid(
                        file,
                        format!("predictions.{name}.threshold"),
                        format!(
                            "{} is not a probability between 0 and 1 (exclusive)",
                            rule.threshold
                        ),
                    ));
                }
            }
        }
        if thresholds.stock_shortage.horizon_days == 0 {
            return Err(invalid(
                &thr_file,
                "thresholds.stock_shortage.horizon_days".into(),
                "must be at least 1".into(),
            ));
        }
        let w = &scoring.weights;
        let sum = w.revenue + w.margin + w.lateness + w.tier;
        if sum != 100 {
            return Err(invalid(
                &sc_file,
                "scoring.weights".into(),
                format!("weights add up to {sum}; they must add up to 100"),
            ));
        }
        if scoring.revenue_full_at <= Decimal::ZERO || scoring.margin_full_at <= Decimal::ZERO {
            return Err(invalid(
                &sc_file,
                "scoring.revenue_full_at".into(),
                "revenue_full_at and margin_full_at must be positive".into(),
            ));
        }
        if scoring.lateness_full_at_hours == 0 {
            return Err(invalid(
                &sc_file,
                "scoring.lateness_full_at_hours".into(),
                "must be positive".into(),
            ));
        }
        for (t, f) in [
            ("A", scoring.tier_factor.a),
            ("B", scoring.tier_factor.b),
            ("C", scoring.tier_factor.c),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(invalid(
                    &sc_file,
                    format!("scoring.tier_factor.{t}"),
                    format!("{f} is not between 0 and 1"),
                ));
            }
        }
        let s = &scoring.severity;
        if !(s.critical > s.high && s.high > s.medium && s.critical <= 100) {
            return Err(invalid(
                &sc_file,
                "scoring.severity".into(),
                format!(
                    "bands must satisfy 100 >= critical > high > medium (got {}, {}, {})",
                    s.critical, s.high, s.medium
                ),
            ));
        }

        // Routing: every built-in kind, known roles only.
        for kind in BUILTIN_KINDS {
            if !routing.contains_key(*kind) {
                return Err(invalid(
                    &rt_file,
                    format!("routing.{kind}"),
                    "missing: every built-in kind needs an owner".into(),
                ));
            }
        }
        for (kind, route) in &routing {
            if !BUILTIN_KINDS.contains(&kind.as_str()) {
                return Err(invalid(
                    &rt_file,
                    format!("routing.{kind}"),
                    format!(
                        "unknown exception kind (built-in kinds: {}; custom rules route themselves)",
                        BUILTIN_KINDS.join(", ")
                    ),
                ));
            }
            check_route(&rt_file, &format!("routing.{kind}"), route, &check_role)?;
        }

        // Approvals: every action, known roles only.
        for action in ACTIONS {
            if !approvals.contains_key(*action) {
                return Err(invalid(
                    &ap_file,
                    format!("approvals.{action}"),
                    "missing: every action needs approver roles".into(),
                ));
            }
        }
        for (action, rule) in &approvals {
            let key = format!("approvals.{action}");
            if !ACTIONS.contains(&action.as_str()) {
                return Err(invalid(
                    &ap_file,
                    key,
                    format!("unknown action (known actions: {})", ACTIONS.join(", ")),
                ));
            }
            if rule.roles.is_empty() {
                return Err(invalid(
                    &ap_file,
                    format!("{key}.roles"),
                    "must name at least one role".into(),
                ));
            }
            for r in &rule.roles {
                check_role(&ap_file, format!("{key}.roles"), r)?;
            }
            if rule.expires_hours == 0 {
                return Err(invalid(
                    &ap_file,
                    format!("{key}.expires_hours"),
                    "must be positive".into(),
                ));
            }
            for (k, n) in std::iter::once((format!("{key}.approvers"), rule.approvers)).chain(
                rule.above
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("{key}.above[{i}].approvers"), t.approvers)),
            ) {
                if !(1..=MAX_APPROVERS).contains(&n) {
                    return Err(invalid(
                        &ap_file,
                        k,
                        format!("{n} is not between 1 and {MAX_APPROVERS} distinct approvers"),
                    ));
                }
            }
            if let Some(i) = rule
                .above
                .iter()
                .position(|t| t.order_value < Decimal::ZERO)
            {
                return Err(invalid(
                    &ap_file,
                    format!("{key}.above[{i}].order_value"),
                    "must not be negative".into(),
                ));
            }
        }

        // Data access: known providers, known roles and data classes only.
        let (da_file, data_access) = data_access.unwrap_or_default();
        for (provider, rule) in &data_access {
            if !PROVIDERS.contains(&provider.as_str()) && !roles.contains(provider) {
                return Err(invalid(
                    &da_file,
                    format!("data_access.{provider}"),
                    format!(
                        "unknown provider or role (providers: {}; roles: {})",
                        PROVIDERS.join(", "),
                        roles.join(", ")
                    ),
                ));
            }
            for class in &rule.allow {
                if !DATA_CLASSES.contains(&class.as_str()) {
                    return Err(invalid(
                        &da_file,
                        format!("data_access.{provider}.allow"),
                        format!(
                            "unknown data class `{class}` (known: {})",
                            DATA_CLASSES.join(", ")
                        ),
                    ));
                }
            }
        }

        if let Some((file, l)) = &limits
            && let Some((key, problem)) = l.problem()
        {
            return Err(invalid(file, key, problem));
        }
        if let Some((file, r)) = &retention
            && let Some((key, problem)) = r.problem()
        {
            return Err(invalid(file, key, problem));
        }

        // Custom rules.
        let schema = fields::schema();
        let mut rules = Vec::new();
        for (i, (file, r)) in raw_rules.into_iter().enumerate() {
            let key = format!("rules[{i}] ({})", r.name);
            if !valid_name(&r.name) {
                return Err(invalid(
                    &file,
                    format!("rules[{i}].name"),
                    format!(
                        "`{}` is not a valid rule name (lowercase letters, digits and _)",
                        r.name
                    ),
                ));
            }
            if BUILTIN_KINDS.contains(&r.name.as_str())
                || rules.iter().any(|x: &CustomRule| x.name == r.name)
            {
                return Err(invalid(
                    &file,
                    format!("{key}.name"),
                    "name already used".into(),
                ));
            }
            let when = Expr::compile(&r.when, &schema)
                .map_err(|e| invalid(&file, format!("{key}.when"), e.to_string()))?;
            if r.scope == RuleScope::Order {
                for f in when.fields_used() {
                    if let Some((field, name, ..)) = fields::FIELDS.get(f.0 as usize)
                        && fields::is_line_field(*field)
                    {
                        return Err(invalid(
                            &file,
                            format!("{key}.when"),
                            format!("`{name}` is a line field; use scope = \"line\" to read it"),
                        ));
                    }
                }
            }
            let route = Route {
                owner: r.owner,
                escalate_to: r.escalate_to,
                escalate_at_score: r.escalate_at_score,
            };
            check_route(&file, &key, &route, &check_role)?;
            if let Some(a) = &r.recommend
                && !ACTIONS.contains(&a.as_str())
            {
                return Err(invalid(
                    &file,
                    format!("{key}.recommend"),
                    format!(
                        "unknown action `{a}` (known actions: {})",
                        ACTIONS.join(", ")
                    ),
                ));
            }
            rules.push(CustomRule {
                name: r.name,
                title: r.title,
                scope: r.scope,
                when,
                route,
                min_severity: r.min_severity,
                recommend: r.recommend,
                file,
            });
        }

        // Separation of duties must leave someone to approve: an action whose case owner may
        // not approve needs an approver role besides every role that can own a case.
        let owners: std::collections::BTreeSet<&str> = routing
            .values()
            .map(|r| r.owner.as_str())
            .chain(rules.iter().map(|r| r.route.owner.as_str()))
            .collect();
        for (action, rule) in &approvals {
            if let Some(owner) = owners
                .iter()
                .find(|o| rule.roles_for_case(Some(o)).is_empty())
            {
                return Err(invalid(
                    &ap_file,
                    format!("approvals.{action}.case_owner_may_approve"),
                    format!(
                        "no role is left to approve a case owned by {owner}: add an approver role other than {owner}, or allow the case owner"
                    ),
                ));
            }
        }

        let version = hex::encode(&hasher.finalize()[..6]);
        let mut sources = BTreeMap::new();
        sources.insert("roles", roles_file);
        sources.insert("thresholds", thr_file);
        sources.insert("scoring", sc_file);
        sources.insert("routing", rt_file);
        sources.insert("approvals", ap_file);
        let predictions = predictions.map(|(file, p)| {
            sources.insert("predictions", file);
            p
        });
        if !da_file.is_empty() {
            sources.insert("data_access", da_file);
        }
        let limits = limits.map(|(file, l)| {
            sources.insert("limits", file);
            l
        });
        let retention = retention
            .map(|(file, r)| {
                sources.insert("retention", file);
                r
            })
            .unwrap_or_default();
        Ok(Policy {
            version,
            sources,
            roles,
            permissions,
            thresholds,
            scoring,
            routing,
            approvals,
            rules,
            predictions,
            data_access,
            limits: limits.unwrap_or_default(),
            retention,
        })
    }

    /// Whether a model provider (`local` or `external`) may receive a data class.
    pub fn allows_data(&self, provider: &str, class: &str) -> bool {
        self.data_access
            .get(provider)
            .is_some_and(|r| r.allow.iter().any(|c| c == class))
    }

    /// Whether people holding a role may see a data class. A role the data-access files
    /// do not name sees every class only when the files name no role at all (a policy
    /// written before roles had sections); otherwise it sees none.
    pub fn role_sees(&self, role: &str, class: &str) -> bool {
        match self.data_access.get(role) {
            Some(r) => r.allow.iter().any(|c| c == class),
            None => !self.roles.iter().any(|r| self.data_access.contains_key(r)),
        }
    }

    /// Routing for a built-in kind.
    pub fn route(&self, kind: &str) -> Option<&Route> {
        self.routing.get(kind)
    }

    /// Whether a role holds a permission.
    pub fn permits(&self, role: &str, permission: &str) -> bool {
        self.permissions
            .get(permission)
            .is_some_and(|holders| holders.iter().any(|h| h == role))
    }

    /// Roles allowed to approve an action.
    pub fn approvers(&self, action: &str) -> &[String] {
        self.approvals
            .get(action)
            .map(|a| a.roles.as_slice())
            .unwrap_or(&[])
    }

    /// Severity of a score under this policy.
    pub fn severity(&self, score: u8) -> Severity {
        let s = &self.scoring.severity;
        if score >= s.critical {
            Severity::Critical
        } else if score >= s.high {
            Severity::High
        } else if score >= s.medium {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

fn check_route(
    file: &str,
    key: &str,
    route: &Route,
    check_role: &dyn Fn(&str, String, &str) -> Result<(), PolicyError>,
) -> Result<(), PolicyError> {
    check_role(file, format!("{key}.owner"), &route.owner)?;
    if let Some(to) = &route.escalate_to {
        check_role(file, format!("{key}.escalate_to"), to)?;
    }
    if route.escalate_at_score.is_some_and(|s| s > 100) {
        return Err(PolicyError::Invalid {
            file: file.to_string(),
            key: format!("{key}.escalate_at_score"),
            problem: "must be between 0 and 100".into(),
        });
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn embedded_files() -> Vec<(String, String)> {
        EMBEDDED
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect()
    }

    fn with_replaced(file: &str, from: &str, to: &str) -> Vec<(String, String)> {
        let mut files = embedded_files();
        for (n, c) in &mut files {
            if n == file {
                assert!(c.contains(from), "{from} not in {file}");
                *c = c.replacen(from, to, 1);
            }
        }
        files
    }

    #[test]
    fn embedded_policy_loads() {
        let p = Policy::embedded().unwrap();
        assert_eq!(p.version.len(), 12);
        assert_eq!(p.routing.len(), BUILTIN_KINDS.len());
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.severity(90), Severity::Critical);
        assert_eq!(p.severity(0), Severity::Low);
    }

    #[test]
    fn version_changes_with_content() {
        let a = Policy::embedded().unwrap().version;
        let b = Policy::from_files(&with_replaced(
            "thresholds.toml",
            "min_changes = 3",
            "min_changes = 4",
        ))
        .unwrap()
        .version;
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = Policy::from_files(&with_replaced(
            "thresholds.toml",
            "grace_hours = 4",
            "grace_hour = 4",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("thresholds.toml:"), "{e}");
        assert!(e.contains("grace_hour"), "{e}");
    }

    #[test]
    fn unknown_role_is_rejected() {
        let e = Policy::from_files(&with_replaced(
            "routing.toml",
            "owner = \"buyer\"",
            "owner = \"byer\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("routing.toml"), "{e}");
        assert!(e.contains("routing.supplier_delay.owner"), "{e}");
        assert!(e.contains("unknown role `byer`"), "{e}");
    }

    #[test]
    fn bad_rule_expression_is_rejected() {
        let e = Policy::from_files(&with_replaced(
            "rules.toml",
            "order.open_value > 40000",
            "order.open_valu > 40000",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("rules.toml"), "{e}");
        assert!(e.contains("large_order_standard_account"), "{e}");
        assert!(e.contains("when"), "{e}");
    }

    #[test]
    fn weights_must_sum_to_100() {
        let e = Policy::from_files(&with_replaced(
            "thresholds.toml",
            "revenue = 40",
            "revenue = 41",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("scoring.weights"), "{e}");
        assert!(e.contains("101"), "{e}");
    }

    #[test]
    fn prediction_thresholds_are_probabilities() {
        let p = Policy::embedded().unwrap();
        assert_eq!(p.predictions.unwrap().supplier_delay.threshold, 0.6);
        assert_eq!(p.sources["predictions"], "predictions.toml");
        let e = Policy::from_files(&with_replaced(
            "predictions.toml",
            "threshold = 0.6",
            "threshold = 1.5",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("predictions.toml") && e.contains("predictions.supplier_delay.threshold"),
            "{e}"
        );
        let e = Policy::from_files(&with_replaced(
            "predictions.toml",
            "threshold = 0.6",
            "threshold = 0.6\nthreshhold = 0.2",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("threshhold"), "{e}");
        // Without the file there are no predicted exceptions, and the rest still loads.
        let files: Vec<(String, String)> = EMBEDDED
            .iter()
            .filter(|(n, _)| *n != "predictions.toml")
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        assert!(Policy::from_files(&files).unwrap().predictions.is_none());
    }

    #[test]
    fn percentages_are_bounded() {
        let e = Policy::from_files(&with_replaced(
            "thresholds.toml",
            "margin_floor_pct = 8",
            "margin_floor_pct = 180",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("thresholds.price_mismatch.margin_floor_pct"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_section_is_rejected() {
        let mut files = embedded_files();
        files.push(("extra.toml".into(), "[roles]\nnames = [\"x\"]\n".into()));
        let e = Policy::from_files(&files).unwrap_err().to_string();
        assert!(
            e.contains("extra.toml") && e.contains("already defined in roles.toml"),
            "{e}"
        );
    }

    #[test]
    fn missing_section_is_named() {
        let files: Vec<_> = embedded_files()
            .into_iter()
            .filter(|(n, _)| n != "approvals.toml")
            .collect();
        let e = Policy::from_files(&files).unwrap_err().to_string();
        assert!(e.contains("approvals"), "{e}");
    }

    #[test]
    fn separation_of_duties_defaults_and_tiers() {
        let p = Policy::embedded().unwrap();
        for a in [
            "release_credit_hold",
            "apply_price",
            "expedite_purchase",
            "resource_purchase",
            "route_for_approval",
        ] {
            assert!(!p.approvals[a].requester_may_approve, "{a}");
        }
        let hold = &p.approvals["release_credit_hold"];
        assert_eq!(hold.approvers_for(Some(Decimal::from(5_001))), 2);
        let price = &p.approvals["apply_price"];
        assert_eq!(price.approvers_for(Some(Decimal::from(1_000))), 1);
        assert_eq!(price.approvers_for(Some(Decimal::from(50_000))), 1);
        assert_eq!(price.approvers_for(Some(Decimal::from(50_001))), 2);
        assert_eq!(price.approvers_for(None), 2, "unknown value: more eyes");
        // Absent keys: the requester may not approve, one approver, owner allowed.
        let files = with_replaced(
            "approvals.toml",
            "[approvals.transfer]\nroles = [\"planner\"]\nexpires_hours = 24\nrequester_may_approve = true",
            "[approvals.transfer]\nroles = [\"planner\"]\nexpires_hours = 24",
        );
        let t = &Policy::from_files(&files).unwrap().approvals["transfer"];
        assert!(!t.requester_may_approve && t.case_owner_may_approve && t.approvers == 1);
    }

    #[test]
    fn policy_without_an_approver_left_is_rejected() {
        // Finance owns credit holds; if the owner may not approve and finance is the only
        // approver role, nobody could ever release a hold.
        let e = Policy::from_files(&with_replaced(
            "approvals.toml",
            "roles = [\"finance\"]\nexpires_hours = 8",
            "roles = [\"finance\"]\nexpires_hours = 8\ncase_owner_may_approve = false",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("approvals.release_credit_hold.case_owner_may_approve")
                && e.contains("no role is left to approve a case owned by finance"),
            "{e}"
        );
        let e = Policy::from_files(&with_replaced(
            "approvals.toml",
            "above = [{ order_value = 5000, approvers = 2 }]",
            "above = [{ order_value = 5000, approvers = 0 }]",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("approvals.release_credit_hold.above[0].approvers"),
            "{e}"
        );
    }

    #[test]
    fn missing_action_is_named() {
        let e = Policy::from_files(&with_replaced(
            "approvals.toml",
            "[approvals.transfer]",
            "[approvals.transfr]",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("approvals.transfer") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn limits_default_when_absent_and_reject_impossible_rates() {
        let p = Policy::embedded().unwrap();
        assert_eq!(p.sources["limits"], "limits.toml");
        assert_eq!(p.limits.concurrent_turns, 2);
        let without: Vec<(String, String)> = EMBEDDED
            .iter()
            .filter(|(n, _)| *n != "limits.toml")
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        let p = Policy::from_files(&without).unwrap();
        assert_eq!(p.limits, limits::Limits::default());
        let e = Policy::from_files(&with_replaced(
            "limits.toml",
            "chat = { per_minute = 20, burst = 5 }",
            "chat = { per_minute = 0, burst = 5 }",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("limits.toml") && e.contains("limits.chat.per_minute"),
            "{e}"
        );
        let e = Policy::from_files(&with_replaced(
            "limits.toml",
            "concurrent_turns = 2",
            "concurrent_turns = -1",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("limits.toml") && e.contains("concurrent_turns"),
            "{e}"
        );
    }

    #[test]
    fn data_access_names_known_roles_and_classes_only() {
        let p = Policy::embedded().unwrap();
        assert!(!p.role_sees("viewer", "credit_payment"));
        assert!(!p.role_sees("viewer", "costs_margins"));
        assert!(p.role_sees("viewer", "personal_contact"));
        assert!(!p.role_sees("service_rep", "costs_margins"));
        assert!(p.role_sees("finance", "credit_payment"));
        let e = Policy::from_files(&with_replaced(
            "data_access.toml",
            "[data_access.viewer]",
            "[data_access.viewr]",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("data_access.viewr") && e.contains("unknown provider or role"),
            "{e}"
        );
        let e = Policy::from_files(&with_replaced(
            "data_access.toml",
            "[data_access.viewer]\nallow = [\"personal_contact\"]",
            "[data_access.viewer]\nallow = [\"margins\"]",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("data_access.viewer.allow") && e.contains("unknown data class `margins`"),
            "{e}"
        );
    }
}
