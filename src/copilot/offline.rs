//! Offline mode: deterministic intent and entity recognition over a message, the same
//! tools a model would call, and answers rendered from the `prompts/answer_*.j2`
//! templates. It is the embedded default and the fail-safe when a model is down, slow or
//! answers garbage. Everything it says comes from the tool results of the turn.
//!
//! [`understand`] reads a message (order references, case ids, customer and product names
//! found in the data, exception kinds, warehouses, tiers, roles, horizons like "this
//! week") with the previous turn's context for follow-ups; [`answer`] runs the tools
//! through the engine's [`Turn`] and renders the answer.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::engine::Turn;
use super::tools::{Tone, ToolError, ToolOutput, kind_label, normalise};
use crate::domain::Snapshot;

/// What the previous turns were about, kept with each turn for follow-up questions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnContext {
    /// Intent name.
    pub intent: Option<String>,
    /// Order discussed.
    pub order: Option<String>,
    /// Customer discussed (a name or the phrase used).
    pub customer: Option<String>,
    /// Product discussed.
    pub product: Option<String>,
}

/// An action the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActRequest {
    /// One of the case's numbered options.
    Option(u32),
    /// An action by name (`reallocate`, `expedite_purchase`…).
    Named(&'static str),
    /// Release a credit hold.
    ReleaseCredit,
    /// Send the customer an update.
    Contact,
    /// Move the promised date.
    Reschedule(String),
    /// "Go ahead", without saying which.
    Unspecified,
}

/// What the user wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Why is an order blocked / at risk.
    Why,
    /// Options and trade-offs.
    Options,
    /// A filtered list of exceptions.
    List,
    /// Stock and inbound of a product.
    Stock,
    /// A customer's credit position.
    Credit,
    /// Similar past cases.
    Similar,
    /// Policy question.
    Policy,
    /// A case's history.
    History,
    /// Draft a customer update.
    DraftUpdate,
    /// Draft a finance review package.
    DraftCredit,
    /// Draft an escalation note.
    DraftEscalation,
    /// Do something (becomes an approval request).
    Act(ActRequest),
    /// Greeting or thanks.
    SmallTalk {
        /// Thanks rather than a greeting.
        thanks: bool,
    },
    /// Not about orders.
    OffTopic,
}

impl Intent {
    /// Name stored in the turn context.
    pub fn name(&self) -> &'static str {
        match self {
            Intent::Why => "why",
            Intent::Options => "options",
            Intent::List => "list",
            Intent::Stock => "stock",
            Intent::Credit => "credit",
            Intent::Similar => "similar",
            Intent::Policy => "policy",
            Intent::History => "history",
            Intent::DraftUpdate => "draft_update",
            Intent::DraftCredit => "draft_credit",
            Intent::DraftEscalation => "draft_escalation",
            Intent::Act(_) => "act",
            Intent::SmallTalk { .. } => "smalltalk",
            Intent::OffTopic => "offtopic",
        }
    }

    fn needs_order(&self) -> bool {
        matches!(
            self,
            Intent::Why
                | Intent::Options
                | Intent::DraftUpdate
                | Intent::DraftCredit
                | Intent::DraftEscalation
                | Intent::Act(_)
        )
    }
}

/// A message, understood.
#[derive(Debug, Clone, PartialEq)]
pub struct Understanding {
    /// What the user wants.
    pub intent: Intent,
    /// Order (from the message, the open order, or the previous turn).
    pub order: Option<String>,
    /// Case id in the message.
    pub case_id: Option<String>,
    /// Customer name or phrase.
    pub customer: Option<String>,
    /// Product code or name.
    pub product: Option<String>,
    /// Exception kind.
    pub kind: Option<String>,
    /// Warehouse code.
    pub warehouse: Option<String>,
    /// Tier letter.
    pub tier: Option<String>,
    /// Owner role.
    pub owner: Option<String>,
    /// Minimum severity.
    pub severity: Option<String>,
    /// Horizon in days.
    pub due_within_days: Option<u32>,
    /// Tone of a draft.
    pub tone: Option<Tone>,
    /// Language of a draft.
    pub language: Option<String>,
    /// Role to escalate to.
    pub to_role: Option<String>,
}

impl Understanding {
    /// Whether the user asked for an action (the only case in which act tools may run).
    pub fn asks_to_act(&self) -> bool {
        matches!(self.intent, Intent::Act(_))
    }

    /// The context to keep for the next turn.
    pub fn context(&self) -> TurnContext {
        TurnContext {
            intent: Some(self.intent.name().to_string()),
            order: self.order.clone(),
            customer: self.customer.clone(),
            product: self.product.clone(),
        }
    }
}

const KIND_WORDS: &[(&str, &[&str])] = &[
    (
        "credit_hold",
        &["credit hold", "credit-hold", "on hold", "credit"],
    ),
    ("allocation_conflict", &["allocation", "allocat"]),
    (
        "stock_shortage",
        &[
            "shortage",
            "short ",
            "out of stock",
            "stock-out",
            "stockout",
        ],
    ),
    (
        "price_mismatch",
        &["price", "discount", "margin", "pricing"],
    ),
    (
        "missing_documents",
        &["document", "paperwork", "proof of delivery", "pod"],
    ),
    (
        "supplier_delay",
        &["supplier", "purchase order", "vendor", "inbound delay"],
    ),
    (
        "shipment_delay",
        &[
            "shipment",
            "late deliver",
            "delivery delay",
            "delayed",
            "late",
        ],
    ),
    (
        "repeated_changes",
        &["repeated change", "changes", "changed"],
    ),
];

const ROLE_WORDS: &[(&str, &[&str])] = &[
    (
        "service_rep",
        &["service rep", "service_rep", "customer service"],
    ),
    ("planner", &["planner", "planning"]),
    ("buyer", &["buyer", "purchasing"]),
    ("finance", &["finance"]),
    (
        "sales_manager",
        &["sales manager", "sales_manager", "manager"],
    ),
];

const NAMED_ACTIONS: &[(&str, &[&str])] = &[
    (
        "reallocate",
        &[
            "reallocat",
            "move the stock",
            "move stock",
            "free up stock",
            "free up the stock",
            "take the stock from",
            "take stock from",
        ],
    ),
    ("transfer", &["transfer"]),
    ("split_shipment", &["split"]),
    ("substitute", &["substitut"]),
    ("expedite_purchase", &["expedite"]),
    (
        "resource_purchase",
        &["re-source", "buy elsewhere", "buy it elsewhere"],
    ),
    (
        "apply_price",
        &[
            "apply the price",
            "apply the contract price",
            "correct the price",
            "fix the price",
        ],
    ),
    (
        "request_documents",
        &[
            "request the documents",
            "request documents",
            "ask for the documents",
        ],
    ),
];

// The same questions in the other languages the company's staff write in (German, Dutch,
// French, Polish, Spanish): the stems, lower-case, as they appear inside words.
const FOREIGN_WHY: &[&str] = &[
    "warum",
    "wieso",
    "waarom",
    "pourquoi",
    "dlaczego",
    "por qué",
    "por que",
    "blockiert",
    "gesperrt",
    "geblokkeerd",
    "bloqué",
    "zablokowan",
    "bloquead",
    "retenid",
];
const FOREIGN_OPTIONS: &[&str] = &[
    "optionen",
    "möglichkeiten",
    "opties",
    "mogelijkheden",
    "possibilités",
    "opcje",
    "opciones",
    "alternativas",
];
const FOREIGN_CREDIT: &[&str] = &["kredit", "krediet", "crédit", "kredyt", "crédito"];
const FOREIGN_STOCK: &[&str] = &[
    "lagerbestand",
    "bestand",
    "voorraad",
    "stan magazyn",
    "existencias",
    "inventario",
];
const FOREIGN_DRAFT_VERBS: &[&str] = &[
    " schreib",
    " entwirf",
    " entwurf",
    " schrijf",
    " opstellen",
    " rédige",
    " écri",
    " napisz",
    " przygotuj",
    " escrib",
    " redact",
    " prepara",
];
const FOREIGN_MESSAGE_WORDS: &[&str] = &[
    "nachricht",
    "mitteilung",
    "bericht",
    "message",
    "mise à jour",
    "wiadomo",
    "mensaje",
    "actualizaci",
    "correo",
    "update",
];

const LEGAL: &[&str] = &[
    "b", "v", "n", "bv", "nv", "gmbh", "co", "kg", "ag", "sarl", "sas", "sa", "srl", "ltd", "plc",
    "sp", "z", "o", "s", "a",
];

const PARTICLES: &[&str] = &["van", "de", "der", "den", "von", "le", "la", "du"];

fn has_any(m: &str, words: &[&str]) -> bool {
    words.iter().any(|w| m.contains(w))
}

/// Whole-word containment on normalised text (words separated by single spaces), without
/// allocating: it runs for every customer and product name on every turn.
fn word_in(m: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return false;
    }
    let bytes = m.as_bytes();
    m.match_indices(phrase).any(|(i, _)| {
        let end = i + phrase.len();
        (i == 0 || bytes[i - 1] == b' ') && (end == bytes.len() || bytes[end] == b' ')
    })
}

/// Order references (`S00042`) and case ids (`EX-…`) in a message.
fn references(message: &str) -> (Vec<String>, Option<String>) {
    let mut orders = Vec::new();
    let mut case = None;
    for raw in message.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let w = raw.trim_matches('-');
        let upper = w.to_ascii_uppercase();
        if let Some(hex) = upper.strip_prefix("EX-")
            && hex.len() == 16
            && hex.chars().all(|c| c.is_ascii_hexdigit())
        {
            case = Some(format!("EX-{}", hex.to_ascii_lowercase()));
            continue;
        }
        let mut chars = upper.chars();
        if matches!(chars.next(), Some('S'))
            && (3..=8).contains(&chars.clone().count())
            && chars.all(|c| c.is_ascii_digit())
            && !orders.contains(&upper)
        {
            orders.push(upper);
        }
    }
    (orders, case)
}

fn sku(message: &str) -> Option<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .map(|w| w.to_ascii_uppercase())
        .find(|w| {
            w.strip_prefix("SKU-")
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        })
}

fn number_after(m: &str, word: &str) -> Option<u32> {
    let i = m.find(word)? + word.len();
    m[i..]
        .split_whitespace()
        .next()?
        .trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

fn number_before(m: &str, word: &str) -> Option<u32> {
    let i = m.find(word)?;
    m[..i].split_whitespace().last()?.parse().ok()
}

/// The longest horizon a question can ask for, in days.
const MAX_HORIZON_DAYS: u32 = 365;

/// Days from `today` to the last day of its month (0 on the last day), by the calendar:
/// February has 29 days in a leap year.
fn days_to_month_end(today: NaiveDate) -> u32 {
    let last = today
        .with_day(1)
        .and_then(|first| first.checked_add_months(Months::new(1)))
        .and_then(|next| next.pred_opt());
    // Only a date at the end of chrono's range has no next month; it is its own end.
    last.map_or(0, |l| u32::try_from((l - today).num_days()).unwrap_or(0))
}

fn horizon(m: &str, now: DateTime<Utc>) -> Option<u32> {
    let to_sunday = 7 - now.weekday().num_days_from_monday();
    if m.contains("today") {
        return Some(1);
    }
    if m.contains("tomorrow") {
        return Some(2);
    }
    if m.contains("this week") {
        return Some(to_sunday.max(1));
    }
    if m.contains("next week") {
        return Some(to_sunday + 7);
    }
    if m.contains("this month") {
        return Some(days_to_month_end(now.date_naive()).max(1) + 1);
    }
    for unit in ["days", "day"] {
        if let Some(n) = number_before(m, unit) {
            return Some(n.clamp(1, MAX_HORIZON_DAYS));
        }
    }
    for unit in ["weeks", "week"] {
        if let Some(n) = number_before(m, unit) {
            return Some(n.saturating_mul(7).clamp(1, MAX_HORIZON_DAYS));
        }
    }
    None
}

fn date_in(message: &str) -> Option<String> {
    message
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .find(|w| chrono::NaiveDate::parse_from_str(w, "%Y-%m-%d").is_ok())
        .map(str::to_string)
}

/// A customer named in the message: the unique name, or the phrase that matches several.
fn customer_in(snap: &Snapshot, m: &str, weak: bool) -> Option<String> {
    let mut strong: Vec<(String, &str)> = Vec::new();
    let mut weak_hits: Vec<String> = Vec::new();
    // A full name, legal form included, is the strongest match.
    let full: Vec<&str> = snap
        .customers
        .iter()
        .filter(|c| word_in(m, &normalise(&c.name)))
        .map(|c| c.name.as_str())
        .collect();
    if let Some(longest) = full.iter().max_by_key(|n| n.len()) {
        return Some((*longest).to_string());
    }
    for c in &snap.customers {
        let words: Vec<String> = normalise(&c.name).split(' ').map(str::to_string).collect();
        let core_len = words
            .iter()
            .rposition(|w| !LEGAL.contains(&w.as_str()))
            .map_or(words.len(), |i| i + 1);
        let core = words[..core_len].join(" ");
        if core.len() >= 4 && word_in(m, &core) {
            strong.push((core, c.name.as_str()));
            continue;
        }
        if weak && !words.is_empty() {
            let take = if PARTICLES.contains(&words[0].as_str()) {
                2
            } else {
                1
            };
            let surname = words[..take.min(core_len)].join(" ");
            if surname.len() >= 4 && word_in(m, &surname) && !weak_hits.contains(&surname) {
                weak_hits.push(surname);
            }
        }
    }
    if !strong.is_empty() {
        let longest = strong.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        strong.retain(|(c, _)| c.len() == longest);
        let names: std::collections::BTreeSet<&str> = strong.iter().map(|(_, n)| *n).collect();
        return match names.len() {
            1 => names.into_iter().next().map(str::to_string),
            _ => strong.first().map(|(core, _)| core.clone()),
        };
    }
    match weak_hits.len() {
        0 => None,
        _ => weak_hits.into_iter().max_by_key(|s| s.len()),
    }
}

fn product_in(snap: &Snapshot, m: &str) -> Option<String> {
    snap.products
        .iter()
        .filter(|p| {
            let n = normalise(&p.name);
            n.len() >= 6 && word_in(m, &n)
        })
        .max_by_key(|p| p.name.len())
        .map(|p| p.sku.clone())
}

/// Read a message. `open_order` is the order the user has open in the UI or the chatter.
pub fn understand(
    message: &str,
    snap: &Snapshot,
    prior: &TurnContext,
    open_order: Option<&str>,
    now: DateTime<Utc>,
    user_role: &str,
) -> Understanding {
    let m = format!(" {} ", message.to_lowercase().replace(['’', '`'], "'"));
    let norm = normalise(message);
    let (orders, case_id) = references(message);
    let product = sku(message);
    let is_question_about_lists = has_any(
        &m,
        &[
            "which",
            "list",
            "show",
            " what orders",
            "at risk",
            "queue",
            " top ",
            "exceptions",
            "how many",
            "my cases",
            "orders are",
            "orders with",
            "any orders",
        ],
    );
    let wants = |words: &[&str]| has_any(&m, words);

    let act_option = number_after(&m, "option ").filter(|_| {
        wants(&[
            "request",
            "go with",
            "go ahead",
            "do option",
            "take option",
            "execute",
            "approve",
            "choose",
            "pick",
            "apply option",
            "use option",
        ])
    });
    let asks_policy = wants(&[
        "policy",
        "policies",
        "who approves",
        "who can approve",
        "who may approve",
        "who must approve",
        "who has to approve",
        "approval rule",
        "threshold",
        " rule",
        "who owns",
        "when does",
        "allowed to",
        "needs approval",
        "need approval",
        "expire",
    ]);
    let drafting = (wants(&[" draft", " write", " prepare", " compose"])
        && wants(&[
            "update", "message", "mail", "letter", "note", "package", "review", "escalat", "reply",
        ]))
        || (wants(FOREIGN_DRAFT_VERBS) && wants(FOREIGN_MESSAGE_WORDS));
    let sending = wants(&[
        " send",
        " email ",
        " e-mail",
        " notify",
        "contact the customer",
        "message the customer",
        "tell the customer",
    ]);
    let named_action = NAMED_ACTIONS
        .iter()
        .find(|(_, words)| has_any(&m, words))
        .map(|(a, _)| *a);

    let intent = if norm.is_empty() {
        Intent::OffTopic
    } else if let Some(n) = act_option {
        Intent::Act(ActRequest::Option(n))
    } else if wants(&["release"])
        && wants(&["hold", "credit", " it", "order", " s0", " s1"])
        && !drafting
        && !asks_policy
    {
        Intent::Act(ActRequest::ReleaseCredit)
    } else if sending && !drafting && !asks_policy {
        Intent::Act(ActRequest::Contact)
    } else if wants(&[
        "reschedule",
        "move the promised date",
        "change the promised date",
        "move the date",
        "new promised date",
    ]) && !asks_policy
    {
        Intent::Act(ActRequest::Reschedule(date_in(message).unwrap_or_default()))
    } else if let Some(a) =
        named_action.filter(|_| !asks_policy && !wants(&["similar", "why", "option"]))
    {
        Intent::Act(ActRequest::Named(a))
    } else if wants(&[
        " approve ",
        "go ahead",
        " do it",
        "proceed",
        "yes please",
        "make it so",
        "execute",
        "just do",
    ]) && !wants(&["who ", "policy", "can approve", "may approve"])
    {
        Intent::Act(ActRequest::Unspecified)
    } else if drafting && wants(&["credit", "finance", "review package", "package"]) {
        Intent::DraftCredit
    } else if wants(&["escalat"]) && !wants(&["who ", "policy", "when does"]) {
        Intent::DraftEscalation
    } else if drafting
        || wants(&[
            "update for the customer",
            "update to the customer",
            "customer update",
        ])
    {
        Intent::DraftUpdate
    } else if asks_policy {
        Intent::Policy
    } else if wants(&[
        "similar",
        "past case",
        "precedent",
        "how did we",
        "happened before",
        "previous case",
        "resolved before",
        "like this before",
    ]) {
        Intent::Similar
    } else if wants(&[
        "history",
        "audit",
        "what happened to",
        "approvals for",
        "status of case",
    ]) {
        Intent::History
    } else if wants(&[
        "option",
        "alternativ",
        "trade-off",
        "tradeoff",
        "what can i do",
        "what can we do",
        "what should i do",
        "what should we do",
        "how can i fix",
        "how do i fix",
        "how can we fix",
        "how do we fix",
        "how to fix",
        "resolve it",
        "how to resolve",
        "next step",
        "what now",
        "choices",
    ]) || wants(FOREIGN_OPTIONS)
    {
        Intent::Options
    } else if (wants(&[
        "credit",
        "exposure",
        "overdue",
        "receivable",
        "payment",
        "pays",
        "paying",
    ]) || wants(FOREIGN_CREDIT))
        && !wants(&["why", "blocked"])
        && !wants(FOREIGN_WHY)
        && !is_question_about_lists
    {
        Intent::Credit
    } else if product.is_some()
        || ((wants(&[
            "stock",
            "inventory",
            "inbound",
            "availab",
            "on hand",
            "in the warehouse",
        ]) || wants(FOREIGN_STOCK))
            && !is_question_about_lists)
    {
        Intent::Stock
    } else if !orders.is_empty() && !is_question_about_lists {
        Intent::Why
    } else if is_question_about_lists || wants(&["urgent", "critical", "late orders"]) {
        Intent::List
    } else if wants(FOREIGN_WHY)
        || wants(&[
            "why",
            "blocked",
            "what's wrong",
            "what is wrong",
            "problem",
            "stuck",
            "explain",
            "status",
        ])
    {
        Intent::Why
    } else if wants(&[
        " hello ",
        " hi ",
        " hey ",
        "good morning",
        "good afternoon",
        "hallo",
        "bonjour",
    ]) {
        Intent::SmallTalk { thanks: false }
    } else if wants(&["thank", "thanks", "cheers", "great"]) {
        Intent::SmallTalk { thanks: true }
    } else if prior.order.is_some()
        && matches!(
            prior.intent.as_deref(),
            Some("why" | "options" | "draft_update" | "credit")
        )
        && wants(&["what about", "and ", "how about", "customer", "it "])
    {
        match prior.intent.as_deref() {
            Some("options") => Intent::Options,
            Some("draft_update") => Intent::DraftUpdate,
            Some("credit") => Intent::Credit,
            _ => Intent::Why,
        }
    } else {
        Intent::OffTopic
    };

    // A bare follow-up with a new order keeps the previous question ("and S00043?").
    let intent = match (&intent, orders.is_empty(), prior.intent.as_deref()) {
        (Intent::Why, false, Some("options")) if norm.split(' ').count() <= 4 => Intent::Options,
        (Intent::Why, false, Some("draft_update")) if norm.split(' ').count() <= 4 => {
            Intent::DraftUpdate
        }
        _ => intent,
    };

    let order = orders.first().cloned().or_else(|| {
        (intent.needs_order()
            || matches!(intent, Intent::History | Intent::Credit | Intent::Similar))
        .then(|| {
            open_order
                .map(str::to_string)
                .or_else(|| prior.order.clone())
        })
        .flatten()
    });
    let wants_customer = matches!(intent, Intent::Credit | Intent::List | Intent::Similar);
    let customer = customer_in(snap, &norm, wants_customer).or_else(|| {
        (matches!(intent, Intent::Credit) && order.is_none())
            .then(|| prior.customer.clone())
            .flatten()
    });
    let product = product.or_else(|| {
        matches!(intent, Intent::Stock)
            .then(|| product_in(snap, &norm).or_else(|| prior.product.clone()))
            .flatten()
    });
    let kind = KIND_WORDS
        .iter()
        .find(|(_, words)| has_any(&m, words))
        .map(|(k, _)| k.to_string());
    let warehouse = snap
        .warehouses
        .iter()
        .find(|w| word_in(&norm, &w.code.to_lowercase()) || word_in(&norm, &normalise(&w.name)))
        .map(|w| w.code.clone());
    let tier = ["a", "b", "c"]
        .iter()
        .find(|t| word_in(&norm, &format!("tier {t}")) || word_in(&norm, &format!("{t} tier")))
        .map(|t| t.to_ascii_uppercase())
        .or_else(|| wants(&["strategic account", "strategic customer"]).then(|| "A".to_string()));
    let owner = if wants(&[" my ", " mine", "for me", "assigned to me"]) {
        Some(user_role.to_string())
    } else {
        ROLE_WORDS
            .iter()
            .find(|(_, words)| has_any(&m, words))
            .map(|(r, _)| r.to_string())
    };
    let severity = ["critical", "high"]
        .iter()
        .find(|s| m.contains(*s))
        .map(|s| s.to_string());
    let tone = if wants(&["apolog", "sorry"]) {
        Some(Tone::Apologetic)
    } else if wants(&["formal"]) {
        Some(Tone::Formal)
    } else if wants(&["friendly", "warm", "casual"]) {
        Some(Tone::Friendly)
    } else {
        None
    };
    let language = [
        ("german", "de"),
        ("deutsch", "de"),
        ("dutch", "nl"),
        ("french", "fr"),
        ("polish", "pl"),
        ("english", "en"),
    ]
    .iter()
    .find(|(w, _)| m.contains(w))
    .map(|(_, l)| l.to_string());
    let to_role = if matches!(intent, Intent::DraftEscalation) {
        ROLE_WORDS
            .iter()
            .find(|(_, words)| has_any(&m, words))
            .map(|(r, _)| r.to_string())
    } else {
        None
    };
    Understanding {
        intent,
        order,
        case_id,
        customer,
        product,
        kind,
        warehouse,
        tier,
        owner: if wants_customer || is_question_about_lists {
            owner
        } else {
            None
        },
        severity,
        due_within_days: horizon(&m, now),
        tone,
        language,
        to_role,
    }
}

fn problem(turn: &Turn<'_>, e: &ToolError) -> String {
    let kind = match e {
        ToolError::NotFound(_) => "not_found",
        ToolError::Ambiguous(_) => "ambiguous",
        ToolError::Refused(_) => "refused",
        ToolError::Unavailable(_) => "unavailable",
        ToolError::InvalidArguments(_) | ToolError::UnknownTool(_) => "invalid",
        ToolError::Internal(_) => "internal",
    };
    turn.render(
        "answer_problem.j2",
        json!({"kind": kind, "message": e.to_string()}),
    )
}

fn describe_filters(u: &Understanding) -> String {
    let mut parts = Vec::new();
    if let Some(k) = &u.kind {
        parts.push(kind_label(k));
    }
    if let Some(s) = &u.severity {
        parts.push(format!("severity {s} or above"));
    }
    if let Some(c) = &u.customer {
        parts.push(format!("customer {c}"));
    }
    if let Some(w) = &u.warehouse {
        parts.push(format!("warehouse {w}"));
    }
    if let Some(t) = &u.tier {
        parts.push(format!("tier {t}"));
    }
    if let Some(o) = &u.owner {
        parts.push(format!("owned by {o}"));
    }
    if let Some(d) = u.due_within_days {
        parts.push(format!("due within {d} day(s)"));
    }
    if parts.is_empty() {
        "(no filter)".to_string()
    } else {
        parts.join(", ")
    }
}

async fn one(
    turn: &mut Turn<'_>,
    tool: &'static str,
    args: Value,
    template: &str,
    var: &str,
    extra: Value,
) -> String {
    match turn.call(tool, args).await {
        Ok(out) => {
            let mut ctx = json!({});
            ctx[var] = out.data;
            if let Value::Object(m) = extra {
                for (k, v) in m {
                    ctx[k] = v;
                }
            }
            turn.render(template, ctx)
        }
        Err(e) => problem(turn, &e),
    }
}

fn approval_text(turn: &Turn<'_>, out: &ToolOutput) -> String {
    turn.render("answer_approval.j2", json!({"a": out.data}))
}

/// Answer a message offline, calling tools through the turn.
pub async fn answer(turn: &mut Turn<'_>, u: &Understanding) -> String {
    // A request about a customer rather than an order ("credit review for <customer>"):
    // the order is the customer's, when exactly one of their orders has an exception of
    // the kind the request is about.
    let inferred;
    let u = match (&u.order, &u.customer) {
        (None, Some(c)) if u.intent.needs_order() => {
            let kind = match u.intent {
                Intent::DraftCredit | Intent::Act(ActRequest::ReleaseCredit) => {
                    Some("credit_hold".to_string())
                }
                _ => u.kind.clone(),
            };
            inferred = Understanding {
                order: turn.sole_exception_order(c, kind.as_deref()),
                ..u.clone()
            };
            &inferred
        }
        _ => u,
    };
    if u.intent.needs_order() && u.order.is_none() {
        return turn.render("answer_offtopic.j2", json!({"need_order": true}));
    }
    let order = u.order.clone().unwrap_or_default();
    match &u.intent {
        Intent::Why => {
            one(turn, "explain_order", json!({"order": order}), "answer_explain.j2", "x", json!({})).await
        }
        Intent::Options => {
            one(turn, "explain_order", json!({"order": order}), "answer_options.j2", "x", json!({})).await
        }
        Intent::List => {
            let args = json!({
                "kind": u.kind, "owner": u.owner, "customer": u.customer, "warehouse": u.warehouse,
                "tier": u.tier, "severity": u.severity, "due_within_days": u.due_within_days, "limit": 5,
            });
            let args = strip_nulls(args);
            let what = describe_filters(u);
            one(turn, "list_exceptions", args, "answer_list.j2", "r", json!({"what": what})).await
        }
        Intent::Stock => match &u.product {
            Some(p) => {
                one(turn, "product_stock", json!({"product": p}), "answer_stock.j2", "p", json!({})).await
            }
            None => turn.render(
                "answer_problem.j2",
                json!({"kind": "ambiguous", "message": "I need a product code (SKU-…) or its name"}),
            ),
        },
        Intent::Credit => {
            let customer = match (&u.customer, &u.order) {
                (Some(c), _) => Some(c.clone()),
                (None, Some(o)) => turn
                    .snapshot()
                    .order_by_name(o)
                    .and_then(|(_, so)| turn.snapshot().customers.get(so.customer as usize))
                    .map(|c| c.reference.clone()),
                (None, None) => None,
            };
            match customer {
                Some(c) => {
                    one(turn, "customer_credit", json!({"customer": c}), "answer_credit.j2", "c", json!({})).await
                }
                None => turn.render(
                    "answer_problem.j2",
                    json!({"kind": "ambiguous", "message": "I need the customer's name or one of their orders"}),
                ),
            }
        }
        Intent::Similar => {
            let kind = u.kind.clone().or_else(|| {
                u.order.as_deref().and_then(|o| turn.top_kind(o))
            });
            let mut query = turn.message().to_string();
            if let Some(o) = &u.order
                && let Some(c) = turn.customer_of(o)
            {
                query = format!("{query} {c}");
            }
            one(turn, "similar_cases", strip_nulls(json!({"query": query, "kind": kind})), "answer_similar.j2", "s", json!({})).await
        }
        Intent::Policy => {
            let q = turn.message().to_string();
            one(turn, "search_policy", json!({"query": q}), "answer_policy.j2", "p", json!({})).await
        }
        Intent::History => {
            let args = match (&u.case_id, &u.order) {
                (Some(c), _) => json!({"case_id": c}),
                (None, Some(o)) => json!({"order": o}),
                (None, None) => {
                    return turn.render("answer_offtopic.j2", json!({"need_order": true}));
                }
            };
            one(turn, "case_history", args, "answer_history.j2", "h", json!({})).await
        }
        Intent::DraftUpdate => {
            let args = strip_nulls(json!({"order": order, "tone": u.tone.map(|t| t.as_str()), "language": u.language}));
            one(turn, "draft_customer_update", args, "answer_draft.j2", "d", json!({"what": "customer update"})).await
        }
        Intent::DraftCredit => {
            one(turn, "draft_credit_review", json!({"order": order}), "answer_draft.j2", "d", json!({"what": "finance review package"})).await
        }
        Intent::DraftEscalation => {
            let args = strip_nulls(json!({"order": order, "to_role": u.to_role}));
            one(turn, "draft_escalation", args, "answer_draft.j2", "d", json!({"what": "escalation note"})).await
        }
        Intent::Act(a) => act(turn, u, a, &order).await,
        Intent::SmallTalk { thanks } => {
            let user = turn.user_name().to_string();
            turn.render("answer_smalltalk.j2", json!({"thanks": thanks, "user": user}))
        }
        Intent::OffTopic => turn.render("answer_offtopic.j2", json!({"need_order": false})),
    }
}

async fn act(turn: &mut Turn<'_>, u: &Understanding, a: &ActRequest, order: &str) -> String {
    match a {
        ActRequest::Option(n) => {
            let args = strip_nulls(
                json!({"order": order, "case_id": u.case_id, "kind": u.kind, "option": n}),
            );
            match turn.call("request_action", args).await {
                Ok(out) => approval_text(turn, &out),
                Err(e) => problem(turn, &e),
            }
        }
        ActRequest::ReleaseCredit => match turn
            .call("release_credit_hold", json!({"order": order}))
            .await
        {
            Ok(out) => approval_text(turn, &out),
            Err(e) => problem(turn, &e),
        },
        ActRequest::Reschedule(date) if date.is_empty() => turn.render(
            "answer_problem.j2",
            json!({"kind": "ambiguous", "message": "I need the new date as YYYY-MM-DD"}),
        ),
        ActRequest::Reschedule(date) => {
            match turn
                .call(
                    "reschedule_order",
                    json!({"order": order, "new_date": date}),
                )
                .await
            {
                Ok(out) => approval_text(turn, &out),
                Err(e) => problem(turn, &e),
            }
        }
        ActRequest::Contact => {
            let args = strip_nulls(
                json!({"order": order, "tone": u.tone.map(|t| t.as_str()), "language": u.language}),
            );
            let draft = match turn.call("draft_customer_update", args).await {
                Ok(out) => out,
                Err(e) => return problem(turn, &e),
            };
            let text = draft.data["draft"].as_str().unwrap_or_default().to_string();
            match turn
                .call("contact_customer", json!({"order": order, "message": text}))
                .await
            {
                Ok(out) => {
                    let shown = turn.render(
                        "answer_draft.j2",
                        json!({"d": draft.data, "what": "customer update"}),
                    );
                    format!("{}\n\n{shown}", approval_text(turn, &out))
                }
                Err(e) => problem(turn, &e),
            }
        }
        ActRequest::Named(action) => {
            let x = match turn.call("explain_order", json!({"order": order})).await {
                Ok(out) => out.data,
                Err(e) => return problem(turn, &e),
            };
            let found = x["exceptions"].as_array().and_then(|es| {
                es.iter().find_map(|e| {
                    e["options"].as_array()?.iter().find_map(|o| {
                        (o["action"] == *action)
                            .then(|| (e["case_id"].clone(), o["option"].clone()))
                    })
                })
            });
            match found {
                Some((case_id, option)) => {
                    match turn.call("request_action", json!({"case_id": case_id, "option": option})).await {
                        Ok(out) => approval_text(turn, &out),
                        Err(e) => problem(turn, &e),
                    }
                }
                None => turn.render(
                    "answer_problem.j2",
                    json!({"kind": "refused", "message": format!("no exception of {order} proposes to {}; ask for the options to see what is possible", kind_label(action))}),
                ),
            }
        }
        ActRequest::Unspecified => {
            let options = one(
                turn,
                "explain_order",
                json!({"order": order}),
                "answer_options.j2",
                "x",
                json!({}),
            )
            .await;
            format!(
                "Which option should I request? Say \"request option <number> for {order}\".\n\n{options}"
            )
        }
    }
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// "This month" reaches the calendar month's last day (the next day is the 1st) on
        /// every day of ten years, leap years included; on the last day it reaches the next.
        #[test]
        fn this_month_ends_on_the_calendar_month_end(day in 0u64..3653, hour in 0u32..24) {
            let today = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(day);
            let now = today.and_hms_opt(hour, 0, 0).unwrap().and_utc();
            let h = horizon("what is due this month?", now).unwrap();
            let next = |d: NaiveDate, n: u32| d + chrono::Days::new(u64::from(n));
            if next(today, 1).day() == 1 {
                prop_assert_eq!(h, 2, "{}", today);
            } else {
                let last = next(today, h - 1);
                prop_assert_eq!(last.month(), today.month(), "{} +{}", today, h);
                prop_assert_eq!(next(last, 1).day(), 1, "{} +{}", today, h);
            }
        }

        /// Any number of weeks or days, up to a 10-year horizon and far past it, is clamped
        /// to a year without overflowing.
        #[test]
        fn long_horizons_are_clamped_not_overflowed(n in any::<u32>(), small in 0u32..600) {
            let now = Utc::now();
            for n in [n, small] {
                let want = (u64::from(n) * 7).clamp(1, 365) as u32;
                prop_assert_eq!(horizon(&format!("due in the next {n} weeks"), now), Some(want));
                prop_assert_eq!(horizon(&format!("due within {n} days"), now), Some(n.clamp(1, 365)));
            }
        }
    }

    #[test]
    fn leap_february_has_29_days() {
        let at = |d: &str| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap()
                .and_utc()
        };
        assert_eq!(horizon("this month", at("2024-02-10")), Some(20));
        assert_eq!(horizon("this month", at("2023-02-10")), Some(19));
        assert_eq!(days_to_month_end(at("2024-02-29").date_naive()), 0);
        assert_eq!(days_to_month_end(at("2024-12-31").date_naive()), 0);
    }

    #[test]
    fn word_in_matches_whole_words_only() {
        assert!(word_in("why is bakker bouw late", "bakker bouw"));
        assert!(word_in("bakker", "bakker"));
        assert!(word_in("late for bakker", "bakker"));
        assert!(!word_in("bakkerij late", "bakker"));
        assert!(!word_in("the rebakker", "bakker"));
        assert!(word_in("rebakker and bakker", "bakker"));
        assert!(!word_in("anything", ""));
    }

    fn snap() -> Snapshot {
        crate::demo::generate(
            &crate::demo::DemoConfig {
                seed: 42,
                orders: 200,
                now: Utc::now(),
            },
            &mut |_, _, _| {},
        )
    }

    fn u(message: &str) -> Understanding {
        understand(
            message,
            &snap(),
            &TurnContext::default(),
            None,
            Utc::now(),
            "planner",
        )
    }

    #[test]
    fn intents() {
        assert_eq!(u("Why is S00042 blocked?").intent, Intent::Why);
        assert_eq!(u("why is s00042 blocked").order.as_deref(), Some("S00042"));
        assert_eq!(u("What are my options for S00042?").intent, Intent::Options);
        assert_eq!(
            u("Which orders are at risk this week?").intent,
            Intent::List
        );
        assert!(
            u("Which orders are at risk this week?")
                .due_within_days
                .is_some()
        );
        assert_eq!(
            u("Draft an apologetic update for S00042 in German").tone,
            Some(Tone::Apologetic)
        );
        assert_eq!(
            u("Draft an apologetic update for S00042 in German")
                .language
                .as_deref(),
            Some("de")
        );
        assert_eq!(
            u("Prepare the credit review package for S00042").intent,
            Intent::DraftCredit
        );
        assert_eq!(
            u("Release the credit hold on S00042").intent,
            Intent::Act(ActRequest::ReleaseCredit)
        );
        assert_eq!(
            u("Request option 2 for S00042").intent,
            Intent::Act(ActRequest::Option(2))
        );
        assert_eq!(u("Who approves a credit release?").intent, Intent::Policy);
        assert_eq!(u("How is SKU-10023 stocked?").intent, Intent::Stock);
        assert_eq!(u("hello").intent, Intent::SmallTalk { thanks: false });
        assert_eq!(u("What's the weather in Paris?").intent, Intent::OffTopic);
        assert!(!u("Why is S00042 blocked?").asks_to_act());
    }

    #[test]
    fn follow_ups_use_the_previous_order() {
        let prior = TurnContext {
            intent: Some("why".into()),
            order: Some("S00042".into()),
            ..TurnContext::default()
        };
        let x = understand(
            "what are my options?",
            &snap(),
            &prior,
            None,
            Utc::now(),
            "planner",
        );
        assert_eq!(x.intent, Intent::Options);
        assert_eq!(x.order.as_deref(), Some("S00042"));
    }
}
