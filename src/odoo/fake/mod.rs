//! `FakeOdoo`: a real HTTP server on a loopback port that answers like Odoo 16–19, from a
//! snapshot, in Odoo's exact wire format — the `/jsonrpc` envelope, errors as HTTP 200 with
//! `error.data.name`, `false` for empty values, `[id, "name"]` many2one pairs, naive-UTC
//! datetimes, recordsets serialised as `"model(id,)"` — and JSON-2 (`/json/2/…`, bearer key,
//! HTTP 4xx errors) for 19. Field types per version come from Odoo's own `fields_get`
//! (`fields.tsv`), so unknown fields fail as they do in Odoo. Posting a message fires the
//! "Send Webhook Notification" automations synchronously with a 1 s timeout, as Odoo does.
//!
//! It exists for tests and the `bench odoo` benchmark; the tests check it against the
//! recorded exchanges so it cannot drift from real Odoo.

mod data;
pub mod domain;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::wire::{self, Record};
use crate::domain::Snapshot;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// char, text, html, selection: strings.
    Str,
    /// integer (and many2one_reference).
    Int,
    /// float, monetary.
    Float,
    /// boolean.
    Bool,
    /// date.
    Date,
    /// datetime.
    Datetime,
    /// many2one.
    M2o,
    /// one2many.
    O2m,
    /// many2many.
    M2m,
}

/// One field.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Kind.
    pub kind: Kind,
    /// Odoo type name.
    pub ty: String,
    /// Target model of relational fields.
    pub relation: Option<String>,
    /// Stored in the database.
    pub store: bool,
    /// Label.
    pub label: String,
    /// Read-only in forms.
    pub readonly: bool,
    /// Required.
    pub required: bool,
    /// Selection values (`[[key, label], …]`).
    pub selection: Option<Value>,
}

/// A model: its fields and rows.
#[derive(Debug, Default)]
pub struct Model {
    /// Fields by name.
    pub fields: BTreeMap<String, FieldDef>,
    /// Rows by id (many2one as a bare id, x2many as a list of ids).
    pub rows: BTreeMap<i64, Record>,
}

/// An Odoo error: class name and message.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Python exception class.
    pub name: &'static str,
    /// Message.
    pub message: String,
}

impl Fault {
    fn new(name: &'static str, message: impl Into<String>) -> Fault {
        Fault {
            name,
            message: message.into(),
        }
    }
    /// `builtins.ValueError`.
    pub fn value(m: impl Into<String>) -> Fault {
        Fault::new("builtins.ValueError", m)
    }
}

/// A user of the fake.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// res.users id.
    pub id: i64,
    /// Login.
    pub login: String,
    /// API key (works as the password).
    pub key: String,
    /// res.partner id.
    pub partner_id: i64,
    /// Display name.
    pub name: String,
    /// Member of an accounting group (may read credit fields).
    pub accounting: bool,
}

/// The database of the fake.
pub struct Db {
    /// Major version served.
    pub version: u32,
    /// Models.
    pub models: BTreeMap<String, Model>,
    /// Bumped by every change, to invalidate cached searches.
    pub generation: u64,
    search_cache: Mutex<HashMap<String, CachedSearch>>,
}

/// The ids a search found, and the generation of the data it ran on.
type CachedSearch = (u64, Arc<Vec<i64>>);

const MAGIC: &[(&str, Kind, &str)] = &[
    ("id", Kind::Int, "integer"),
    ("display_name", Kind::Str, "char"),
    ("create_date", Kind::Datetime, "datetime"),
    ("write_date", Kind::Datetime, "datetime"),
];

/// Field registry (from Odoo's fields_get): `versions model field type relation stored label`.
const FIELDS: &str = include_str!("fields.tsv");

/// Fields only accounting groups may read.
const RESTRICTED: &[(&str, &str)] = &[
    ("res.partner", "credit"),
    ("res.partner", "credit_limit"),
    ("res.partner", "use_partner_credit_limit"),
    ("res.partner", "credit_to_invoice"),
];

impl Db {
    /// An empty database with the field registry of `version`.
    pub fn new(version: u32) -> Db {
        // 16 answers with 17's fields, 19 with 18's, plus their own renames.
        let base = match version {
            ..=17 => "17",
            _ => "18",
        };
        let own = version.to_string();
        let mut models: BTreeMap<String, Model> = BTreeMap::new();
        for line in FIELDS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let c: Vec<&str> = line.split('\t').collect();
            if c.len() < 10 {
                continue;
            }
            let versions: Vec<&str> = c[0].split(',').collect();
            let inherits = matches!(version, 16 | 19) && versions.contains(&base);
            if !(c[0] == "*" || versions.contains(&own.as_str()) || inherits) {
                continue;
            }
            let kind = match c[3] {
                "integer" | "many2one_reference" => Kind::Int,
                "float" | "monetary" => Kind::Float,
                "boolean" => Kind::Bool,
                "date" => Kind::Date,
                "datetime" => Kind::Datetime,
                "many2one" => Kind::M2o,
                "one2many" => Kind::O2m,
                "many2many" => Kind::M2m,
                _ => Kind::Str,
            };
            models.entry(c[1].to_string()).or_default().fields.insert(
                c[2].to_string(),
                FieldDef {
                    kind,
                    ty: c[3].to_string(),
                    relation: (c[4] != "-").then(|| c[4].to_string()),
                    store: c[5] == "1",
                    label: c[6].to_string(),
                    readonly: c[7] == "1",
                    required: c[8] == "1",
                    selection: serde_json::from_str(c[9]).ok(),
                },
            );
        }
        // Renamed fields do not exist in the versions that renamed them.
        let drop: &[(&str, &str)] = match version {
            16 => &[
                ("stock.move", "quantity"),
                ("mail.tracking.value", "field_id"),
                ("account.payment.term.line", "nb_days"),
            ],
            19 => &[("purchase.order", "mail_reception_confirmed")],
            _ => &[],
        };
        for (m, f) in drop {
            if let Some(model) = models.get_mut(*m) {
                model.fields.remove(*f);
            }
        }
        for m in models.values_mut() {
            for (name, kind, ty) in MAGIC {
                m.fields.entry(name.to_string()).or_insert(FieldDef {
                    kind: *kind,
                    ty: ty.to_string(),
                    relation: None,
                    store: *name != "display_name",
                    label: name.to_string(),
                    readonly: true,
                    required: false,
                    selection: None,
                });
            }
        }
        Db {
            version,
            models,
            generation: 0,
            search_cache: Mutex::new(HashMap::new()),
        }
    }

    /// A field of a model.
    pub fn field(&self, model: &str, name: &str) -> Option<&FieldDef> {
        self.models.get(model).and_then(|m| m.fields.get(name))
    }

    /// A stored value as kept in the row (`false` when unset).
    pub fn raw(&self, model: &str, r: &Record, name: &str) -> Value {
        self.raw_ref(model, r, name).into_owned()
    }

    /// [`Db::raw`] without copying a stored value.
    pub fn raw_ref<'a>(
        &self,
        model: &str,
        r: &'a Record,
        name: &str,
    ) -> std::borrow::Cow<'a, Value> {
        if let Some(v) = r.get(name) {
            return std::borrow::Cow::Borrowed(v);
        }
        std::borrow::Cow::Owned(match self.field(model, name).map(|f| f.kind) {
            Some(Kind::O2m | Kind::M2m) => json!([]),
            Some(Kind::Int) => json!(0),
            Some(Kind::Float) => json!(0.0),
            _ => Value::Bool(false),
        })
    }

    /// The display name of a record.
    pub fn display_name(&self, model: &str, id: i64) -> Value {
        let Some(r) = self.models.get(model).and_then(|m| m.rows.get(&id)) else {
            return Value::Bool(false);
        };
        r.get("display_name")
            .or_else(|| r.get("name"))
            .or_else(|| r.get("complete_name"))
            .filter(|v| v.is_string())
            .cloned()
            .unwrap_or(Value::Bool(false))
    }

    /// A value as Odoo sends it.
    pub fn wire_value(&self, model: &str, r: &Record, name: &str) -> Value {
        let v = self.raw(model, r, name);
        if name == "display_name" {
            return r
                .get("id")
                .and_then(Value::as_i64)
                .map(|id| self.display_name(model, id))
                .unwrap_or(v);
        }
        match self.field(model, name) {
            Some(FieldDef {
                kind: Kind::M2o,
                relation: Some(rel),
                ..
            }) => match v.as_i64() {
                Some(id) => json!([id, self.display_name(rel, id)]),
                None => Value::Bool(false),
            },
            _ => v,
        }
    }

    /// Insert a row (a fresh id when `id` is absent); returns the id.
    pub fn insert(&mut self, model: &str, mut r: Record) -> i64 {
        self.generation += 1;
        let m = self.models.entry(model.to_string()).or_default();
        let id = match r.get("id").and_then(Value::as_i64) {
            Some(id) => id,
            None => m.rows.keys().next_back().copied().unwrap_or(0) + 1,
        };
        r.insert("id".into(), json!(id));
        r.entry("write_date")
            .or_insert_with(|| json!(wire::format_datetime(Utc::now())));
        let created = r.get("write_date").cloned().unwrap_or(Value::Bool(false));
        r.entry("create_date").or_insert(created);
        m.rows.insert(id, r);
        id
    }
}

/// What the fake serves, and how.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Major version (16–19).
    pub version: u32,
    /// Database name.
    pub db: String,
    /// Send the webhook of a follower-notifying comment three times, as Odoo 17 was seen to.
    pub duplicate_webhooks: bool,
}

impl FakeConfig {
    /// The shape of a version.
    pub fn version(v: u32) -> FakeConfig {
        FakeConfig {
            version: v,
            db: format!("demo{v}"),
            duplicate_webhooks: v == 17,
        }
    }
}

/// One call the fake answered (credentials removed), for tests.
#[derive(Debug, Clone)]
pub struct Call {
    /// Model.
    pub model: String,
    /// Method.
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Calling user.
    pub uid: i64,
}

struct Shared {
    cfg: FakeConfig,
    users: Vec<FakeUser>,
    db: Mutex<Db>,
    calls: Mutex<Vec<Call>>,
    requests: AtomicU64,
    down: AtomicBool,
    http: reqwest::Client,
}

/// A running fake Odoo.
pub struct FakeOdoo {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeOdoo {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The default users: the administrator, the bot, and a sales user without accounting rights.
pub fn default_users() -> Vec<FakeUser> {
    vec![
        FakeUser {
            id: 2,
            login: "admin".into(),
            key: "admin-api-key".into(),
            partner_id: 3,
            name: "Mitchell Admin".into(),
            accounting: true,
        },
        FakeUser {
            id: 8,
            login: "bot".into(),
            key: "bot-api-key".into(),
            partner_id: 43,
            name: "Integration Bot".into(),
            accounting: true,
        },
        FakeUser {
            id: 9,
            login: "salesonly".into(),
            key: "sales-api-key".into(),
            partner_id: 44,
            name: "Sales Only User".into(),
            accounting: false,
        },
        FakeUser {
            id: 6,
            login: "demo".into(),
            key: "demo-api-key".into(),
            partner_id: 7,
            name: "Marc Demo".into(),
            accounting: false,
        },
    ]
}

impl FakeOdoo {
    /// Serve `snap` on `127.0.0.1:0`.
    pub async fn start(cfg: FakeConfig, snap: &Snapshot) -> std::io::Result<FakeOdoo> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        FakeOdoo::start_on(listener, cfg, snap)
    }

    /// Serve `snap` on `listener` — e.g. one that wraps each connection in TLS, to test
    /// the client over HTTPS. [`FakeOdoo::url`] still says `http://`; such a caller builds
    /// its own URL from [`FakeOdoo::addr`].
    pub fn start_on<L>(listener: L, cfg: FakeConfig, snap: &Snapshot) -> std::io::Result<FakeOdoo>
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let users = default_users();
        let db = data::load(cfg.version, snap, &users);
        let shared = Arc::new(Shared {
            cfg,
            users,
            db: Mutex::new(db),
            calls: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            down: AtomicBool::new(false),
            http: crate::outbound::client_builder()
                .timeout(std::time::Duration::from_secs(1))
                .build()
                .map_err(std::io::Error::other)?,
        });
        let app = Router::new()
            .route("/jsonrpc", post(jsonrpc))
            .route("/json/2/{model}/{method}", post(json2))
            .route("/web/version", get(web_version))
            .with_state(shared.clone());
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeOdoo {
            addr,
            shared,
            stop: Some(tx),
        })
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Database name.
    pub fn db(&self) -> String {
        self.shared.cfg.db.clone()
    }

    /// A user by login.
    pub fn user(&self, login: &str) -> Option<FakeUser> {
        self.shared.users.iter().find(|u| u.login == login).cloned()
    }

    /// HTTP requests answered.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The calls answered so far.
    pub fn calls(&self) -> Vec<Call> {
        match self.shared.calls.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Make every request fail with 503 (Odoo unreachable behind its proxy) or recover.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::Relaxed);
    }

    /// Run `f` on the database (to change data between syncs, or to look at it).
    pub fn with_db<T>(&self, f: impl FnOnce(&mut Db) -> T) -> T {
        let mut g = match self.shared.db.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // The caller may change anything.
        g.generation += 1;
        f(&mut g)
    }

    /// Call a method directly as a user (what `execute_kw` does), e.g. to post a message as
    /// a user in tests; fires webhooks like a real post.
    pub async fn execute_as(
        &self,
        uid: i64,
        model: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, Fault> {
        execute(&self.shared, uid, model, method, args, kwargs).await
    }
}

fn version_info(v: u32) -> Value {
    let text = match v {
        17 => "17.0-20240709".to_string(),
        18 => "18.0-20250506".to_string(),
        v => format!("{v}.0"),
    };
    json!({"server_version": text, "server_version_info": [v, 0, 0, "final", 0, ""], "server_serie": format!("{v}.0"), "protocol_version": 1})
}

fn error_data(f: &Fault) -> Value {
    json!({
        "name": f.name,
        "debug": format!("Traceback (most recent call last):\n  <0 stack frames removed by the recorder>\n{}: {}\n", f.name, f.message),
        "message": f.message,
        "arguments": [f.message],
        "context": {},
    })
}

async fn jsonrpc(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    if s.down.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "Bad Request").into_response();
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let p = &req["params"];
    let args = p["args"].as_array().cloned().unwrap_or_default();
    let result = match (p["service"].as_str(), p["method"].as_str()) {
        (Some("common"), Some("version")) => Ok(version_info(s.cfg.version)),
        (Some("common"), Some("login" | "authenticate")) => login(&s, &args),
        (Some("object"), Some("execute_kw")) => execute_kw(&s, args).await,
        _ => Err(Fault::new("builtins.KeyError", "unknown service or method")),
    };
    let body = match result {
        // Like Odoo's JSON-RPC dispatcher: a method that returned None has no `result`.
        Ok(Value::Null) => json!({"jsonrpc": "2.0", "id": id}),
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err(f) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": 200, "message": "Odoo Server Error", "data": error_data(&f)}})
        }
    };
    axum::Json(body).into_response()
}

fn check_db(s: &Shared, db: Option<&str>) -> Result<(), Fault> {
    if db == Some(s.cfg.db.as_str()) {
        Ok(())
    } else {
        let name = db.unwrap_or("");
        Err(Fault::new(
            "psycopg2.OperationalError",
            format!(
                "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database \"{name}\" does not exist\n"
            ),
        ))
    }
}

fn login(s: &Shared, args: &[Value]) -> Result<Value, Fault> {
    check_db(s, args.first().and_then(Value::as_str))?;
    let (login, key) = (
        args.get(1).and_then(Value::as_str),
        args.get(2).and_then(Value::as_str),
    );
    Ok(s.users
        .iter()
        .find(|u| Some(u.login.as_str()) == login && Some(u.key.as_str()) == key)
        .map(|u| json!(u.id))
        .unwrap_or(Value::Bool(false)))
}

async fn execute_kw(s: &Arc<Shared>, mut args: Vec<Value>) -> Result<Value, Fault> {
    if args.len() < 6 {
        return Err(Fault::new(
            "builtins.TypeError",
            "execute_kw() missing required positional arguments",
        ));
    }
    check_db(s, args[0].as_str())?;
    let uid = args[1].as_i64().unwrap_or(0);
    let key = args[2].as_str().unwrap_or("");
    let Some(user) = s.users.iter().find(|u| u.id == uid) else {
        return if s.users.iter().any(|u| u.key == key) {
            Err(Fault::new(
                "odoo.exceptions.MissingError",
                format!(
                    "Record does not exist or has been deleted.\n(Record: res.users({uid},), User: {uid})"
                ),
            ))
        } else {
            Err(Fault::new("odoo.exceptions.AccessDenied", "Access Denied"))
        };
    };
    if user.key != key {
        return Err(Fault::new("odoo.exceptions.AccessDenied", "Access Denied"));
    }
    let kwargs = match args.get(6) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    let model = args[3].as_str().unwrap_or("").to_string();
    let method = args[4].as_str().unwrap_or("").to_string();
    let pos = match args.swap_remove(5) {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    execute(s, uid, &model, &method, pos, kwargs).await
}

async fn web_version(State(s): State<Arc<Shared>>) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    if s.cfg.version < 19 {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let v = version_info(s.cfg.version);
    axum::Json(json!({"version_info": v["server_version_info"], "version": v["server_version"]}))
        .into_response()
}

async fn json2(
    State(s): State<Arc<Shared>>,
    Path((model, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    if s.down.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    if s.cfg.version < 19 {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let fail = |status: StatusCode, f: Fault| {
        let mut d = error_data(&f);
        if let Value::Object(o) = &mut d {
            o.remove("debug");
            o.insert("debug".into(), json!(""));
        }
        (status, axum::Json(d)).into_response()
    };
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("bearer ")
                .or_else(|| v.strip_prefix("Bearer "))
        })
        .unwrap_or("");
    let Some(user) = s.users.iter().find(|u| u.key == key) else {
        return fail(
            StatusCode::UNAUTHORIZED,
            Fault::new("odoo.exceptions.AccessDenied", "Access Denied"),
        );
    };
    let mut named = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => o,
        _ => {
            return fail(
                StatusCode::BAD_REQUEST,
                Fault::value("the body must be a JSON object"),
            );
        }
    };
    let mut pos = Vec::new();
    for name in super::client::arg_names(&method) {
        match named.remove(*name) {
            Some(v) => pos.push(v),
            None => break,
        }
    }
    match execute(&s, user.id, &model, &method, pos, named).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(f) => {
            let status = match f.name {
                "odoo.exceptions.AccessDenied" => StatusCode::UNAUTHORIZED,
                "odoo.exceptions.AccessError" => StatusCode::FORBIDDEN,
                "odoo.exceptions.MissingError" => StatusCode::NOT_FOUND,
                "builtins.ValueError"
                | "odoo.exceptions.UserError"
                | "odoo.exceptions.ValidationError" => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            fail(status, f)
        }
    }
}

fn arg<'a>(
    pos: &'a [Value],
    kw: &'a Map<String, Value>,
    i: usize,
    name: &str,
) -> Option<&'a Value> {
    pos.get(i).or_else(|| kw.get(name))
}

fn id_list(v: Option<&Value>) -> Vec<i64> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Dispatch one call as `uid`.
async fn execute(
    s: &Arc<Shared>,
    uid: i64,
    model: &str,
    method: &str,
    pos: Vec<Value>,
    kw: Map<String, Value>,
) -> Result<Value, Fault> {
    if let Ok(mut c) = s.calls.lock() {
        c.push(Call {
            model: model.into(),
            method: method.into(),
            args: pos.clone(),
            kwargs: kw.clone(),
            uid,
        });
    }
    let user = s
        .users
        .iter()
        .find(|u| u.id == uid)
        .cloned()
        .ok_or_else(|| Fault::new("odoo.exceptions.AccessDenied", "Access Denied"))?;
    let (result, webhooks) = {
        let mut db = match s.db.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut hooks = Vec::new();
        let r = dispatch(&mut db, &s.cfg, &user, model, method, &pos, &kw, &mut hooks);
        (r, hooks)
    };
    // Like Odoo: the webhooks go out synchronously, before the caller gets its answer.
    for (url, payload) in webhooks {
        if let Err(e) = s.http.post(&url).json(&payload).send().await {
            tracing::debug!(error = %e, "fake Odoo: webhook delivery failed");
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    db: &mut Db,
    cfg: &FakeConfig,
    user: &FakeUser,
    model: &str,
    method: &str,
    pos: &[Value],
    kw: &Map<String, Value>,
    hooks: &mut Vec<(String, Value)>,
) -> Result<Value, Fault> {
    if !db.models.contains_key(model) {
        return Err(Fault::new(
            "odoo.exceptions.UserError",
            format!("Object {model} doesn't exist"),
        ));
    }
    if method.starts_with('_') {
        return Err(Fault::new(
            "odoo.exceptions.AccessError",
            format!("Private methods (such as {method}) cannot be called remotely."),
        ));
    }
    // Model rights of users outside the accounting and administration groups.
    if !user.accounting && model == "account.payment" {
        return Err(Fault::new(
            "odoo.exceptions.AccessError",
            "You are not allowed to access 'Payments' (account.payment) records.\n\nThis operation is allowed for the following groups:\n\t- Invoicing/Billing\n\nContact your administrator to request access if necessary.".to_string(),
        ));
    }
    if user.id != 2 && model == "res.company" && matches!(method, "write" | "create" | "unlink") {
        return Err(Fault::new(
            "odoo.exceptions.AccessError",
            "You are not allowed to modify 'Companies' (res.company) records.\n\nThis operation is allowed for the following groups:\n\t- Administration/Settings\n\nContact your administrator to request access if necessary.".to_string(),
        ));
    }
    let empty = json!([]);
    match method {
        "unlink" => {
            let ids = id_list(arg(pos, kw, 0, "ids"));
            if model == "sale.order"
                && ids.iter().any(|id| {
                    db.models[model]
                        .rows
                        .get(id)
                        .and_then(|r| r.get("state"))
                        .and_then(Value::as_str)
                        .is_some_and(|s| s == "sale" || s == "sent")
                })
            {
                return Err(Fault::new(
                    "odoo.exceptions.UserError",
                    "You can not delete a sent quotation or a confirmed sales order. You must first cancel it.",
                ));
            }
            db.generation += 1;
            if let Some(m) = db.models.get_mut(model) {
                for id in ids {
                    m.rows.remove(&id);
                }
            }
            Ok(json!(true))
        }
        "search_read" => {
            let domain = arg(pos, kw, 0, "domain").unwrap_or(&empty);
            let fields = field_list(arg(pos, kw, 1, "fields"));
            let ids = search(db, model, domain, kw)?;
            let ids = record_rules(db, user, model, ids);
            read(db, user, model, &ids, fields.as_deref())
        }
        "search" => Ok(json!(search(
            db,
            model,
            arg(pos, kw, 0, "domain").unwrap_or(&empty),
            kw
        )?)),
        "search_count" => {
            let d = domain::parse(db, model, arg(pos, kw, 0, "domain").unwrap_or(&empty))?;
            let m = &db.models[model];
            Ok(json!(
                m.rows
                    .values()
                    .filter(|r| domain::eval(db, model, r, &d))
                    .count()
            ))
        }
        "read" => {
            let ids: Vec<i64> = id_list(arg(pos, kw, 0, "ids"))
                .into_iter()
                .filter(|id| db.models[model].rows.contains_key(id))
                .collect();
            let fields = field_list(arg(pos, kw, 1, "fields"));
            read(db, user, model, &ids, fields.as_deref())
        }
        "fields_get" => {
            let only = field_list(arg(pos, kw, 0, "allfields")).filter(|l| !l.is_empty());
            let attrs = field_list(kw.get("attributes"));
            let mut out = Map::new();
            for (name, f) in &db.models[model].fields {
                if only.as_ref().is_some_and(|o| !o.contains(name))
                    || (!user.accounting && RESTRICTED.contains(&(model, name.as_str())))
                {
                    continue;
                }
                let mut d = Map::new();
                let mut all = vec![
                    ("type", json!(f.ty)),
                    ("string", json!(f.label)),
                    ("store", json!(f.store)),
                    ("readonly", json!(f.readonly)),
                    ("required", json!(f.required)),
                ];
                if let Some(sel) = &f.selection {
                    all.push(("selection", sel.clone()));
                }
                for (k, v) in all {
                    if attrs.as_ref().is_none_or(|a| a.iter().any(|x| x == k)) {
                        d.insert(k.into(), v);
                    }
                }
                if let Some(r) = &f.relation
                    && attrs
                        .as_ref()
                        .is_none_or(|a| a.iter().any(|x| x == "relation"))
                {
                    d.insert("relation".into(), json!(r));
                }
                out.insert(name.clone(), Value::Object(d));
            }
            Ok(Value::Object(out))
        }
        "read_group" => read_group(db, model, pos, kw),
        "name_search" => {
            let name = arg(pos, kw, 0, "name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            let limit = kw.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
            let m = &db.models[model];
            Ok(json!(
                m.rows
                    .keys()
                    .filter(|id| db
                        .display_name(model, **id)
                        .as_str()
                        .is_some_and(|n| n.to_lowercase().contains(&name)))
                    .take(limit)
                    .map(|id| json!([id, db.display_name(model, *id)]))
                    .collect::<Vec<_>>()
            ))
        }
        "write" => {
            let ids = id_list(arg(pos, kw, 0, "ids"));
            let vals = arg(pos, kw, 1, "vals")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            write(db, user, model, &ids, &vals)?;
            Ok(json!(true))
        }
        "create" => {
            let v = arg(pos, kw, 0, "vals_list").cloned().unwrap_or(json!({}));
            let many = v.is_array();
            let list = match v {
                Value::Array(a) => a,
                o => vec![o],
            };
            let mut ids = Vec::new();
            for vals in list {
                let vals = vals.as_object().cloned().unwrap_or_default();
                check_fields(db, model, vals.keys())?;
                ids.push(create(db, model, vals));
            }
            Ok(if many {
                json!(ids)
            } else {
                json!(ids.first().copied().unwrap_or(0))
            })
        }
        "message_post" => {
            let ids = id_list(arg(pos, kw, 0, "ids"));
            let &[id] = ids.as_slice() else {
                return Err(Fault::value(format!(
                    "Expected singleton: {model}({})",
                    ids.iter().map(|i| format!("{i},")).collect::<String>()
                )));
            };
            if !db.models[model].rows.contains_key(&id) {
                return Err(Fault::new(
                    "odoo.exceptions.MissingError",
                    format!(
                        "Record does not exist or has been deleted.\n(Record: {model}({id},), User: {})",
                        user.id
                    ),
                ));
            }
            // Like the real 17/18: only channels take posts from an author without e-mail.
            let channel = model == "discuss.channel" || model == "mail.channel";
            if !channel
                && db.models["res.partner"]
                    .rows
                    .get(&user.partner_id)
                    .and_then(|p| p.get("email"))
                    .and_then(wire::opt_str)
                    .is_none()
            {
                return Err(Fault::new(
                    "odoo.exceptions.UserError",
                    "Unable to send message, please configure the sender's email address.",
                ));
            }
            let body = kw.get("body").and_then(Value::as_str).unwrap_or("");
            let body = if kw
                .get("body_is_html")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                body.to_string()
            } else {
                format!("<p>{}</p>", wire::escape_html(body))
            };
            let note = kw.get("subtype_xmlid").and_then(Value::as_str) == Some("mail.mt_note");
            let comment = kw
                .get("message_type")
                .and_then(Value::as_str)
                .unwrap_or("notification")
                == "comment";
            let mut m = Map::new();
            m.insert("model".into(), json!(model));
            m.insert("res_id".into(), json!(id));
            m.insert("record_name".into(), db.display_name(model, id));
            m.insert("body".into(), json!(body));
            m.insert("author_id".into(), json!(user.partner_id));
            m.insert("date".into(), json!(wire::format_datetime(Utc::now())));
            m.insert(
                "message_type".into(),
                json!(if comment { "comment" } else { "notification" }),
            );
            m.insert("subtype_id".into(), json!(if note { 2 } else { 1 }));
            m.insert("is_internal".into(), json!(false));
            if let Some(p) = kw.get("parent_id").and_then(Value::as_i64) {
                m.insert("parent_id".into(), json!(p));
            }
            // Like Odoo: the caller's Message-Id is kept; otherwise one is made up.
            let message_id = match kw.get("message_id").and_then(Value::as_str) {
                Some(given) => given.to_string(),
                None => format!(
                    "<{}.{}-openerp-message-notify@fake>",
                    db.generation,
                    Utc::now().timestamp_micros()
                ),
            };
            m.insert("message_id".into(), json!(message_id));
            // Files uploaded for the composer are re-linked to the record the message is
            // posted on (as the real server does): they become the record's attachments.
            let attachments = id_list(kw.get("attachment_ids"));
            if !attachments.is_empty() {
                m.insert("attachment_ids".into(), json!(attachments));
                db.generation += 1;
                let now = json!(wire::format_datetime(Utc::now()));
                if let Some(rows) = db.models.get_mut("ir.attachment") {
                    for a in &attachments {
                        if let Some(r) = rows.rows.get_mut(a) {
                            r.insert("res_model".into(), json!(model));
                            r.insert("res_id".into(), json!(id));
                            r.insert("write_date".into(), now.clone());
                        }
                    }
                }
            }
            let mid = create(db, "mail.message", m);
            let times = if cfg.duplicate_webhooks && comment && !note {
                3
            } else {
                1
            };
            for _ in 0..times {
                hooks.extend(webhooks_for(db, mid));
            }
            // Automations wrapping discuss.channel.message_post make it return a recordset.
            Ok(if model == "discuss.channel" {
                json!(format!("mail.message({mid},)"))
            } else {
                json!(mid)
            })
        }
        "activity_schedule" => {
            let ids = id_list(arg(pos, kw, 0, "ids"));
            let mut last = 0;
            for id in ids {
                let mut a = Map::new();
                a.insert("res_model".into(), json!(model));
                a.insert("res_id".into(), json!(id));
                a.insert("res_name".into(), db.display_name(model, id));
                a.insert("activity_type_id".into(), json!(4));
                for k in ["summary", "note", "date_deadline", "user_id"] {
                    if let Some(v) = kw.get(k) {
                        a.insert(k.into(), v.clone());
                    }
                }
                a.entry("user_id").or_insert(json!(user.id));
                a.insert("state".into(), json!("planned"));
                last = create(db, "mail.activity", a);
            }
            Ok(json!(format!("mail.activity({last},)")))
        }
        "action_confirm" if model == "sale.order" => {
            let ids = id_list(arg(pos, kw, 0, "ids"));
            write(
                db,
                user,
                model,
                &ids,
                &Map::from_iter([("state".to_string(), json!("sale"))]),
            )?;
            Ok(json!(true))
        }
        "add_members" if model == "discuss.channel" => {
            let ids = id_list(arg(pos, kw, 0, "ids"));
            let partners = id_list(kw.get("partner_ids"));
            db.generation += 1;
            for id in ids {
                if let Some(r) = db.models.get_mut(model).and_then(|m| m.rows.get_mut(&id)) {
                    let mut cur = wire::ids(r.get("channel_partner_ids").unwrap_or(&json!([])));
                    for p in &partners {
                        if !cur.contains(p) {
                            cur.push(*p);
                        }
                    }
                    r.insert("member_count".into(), json!(cur.len()));
                    r.insert("channel_partner_ids".into(), json!(cur));
                }
            }
            Ok(Value::Null)
        }
        _ => Err(Fault::new(
            "builtins.AttributeError",
            if db.version <= 17 {
                format!("The method '{method}' does not exist on the model '{model}'")
            } else {
                format!("The method '{model}.{method}' does not exist")
            },
        )),
    }
}

fn field_list(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

fn check_fields<'a>(
    db: &Db,
    model: &str,
    names: impl Iterator<Item = &'a String>,
) -> Result<(), Fault> {
    for n in names {
        if db.field(model, n.split(':').next().unwrap_or(n)).is_none() {
            return Err(Fault::value(format!(
                "Invalid field '{n}' on model '{model}'"
            )));
        }
    }
    Ok(())
}

fn search(
    db: &Db,
    model: &str,
    domain: &Value,
    kw: &Map<String, Value>,
) -> Result<Vec<i64>, Fault> {
    let order = kw.get("order").and_then(Value::as_str).unwrap_or("id");
    // Pages of one query share its result until the data changes (Odoo runs SQL per page;
    // re-filtering in Rust per page would make the fake, not the client, the bottleneck).
    let key = format!("{model}|{order}|{domain}");
    let cached = match db.search_cache.lock() {
        Ok(c) => c
            .get(&key)
            .filter(|(g, _)| *g == db.generation)
            .map(|(_, ids)| ids.clone()),
        Err(_) => None,
    };
    let ids: Arc<Vec<i64>> = match cached {
        Some(ids) => ids,
        None => {
            let d = domain::parse(db, model, domain)?;
            let m = &db.models[model];
            let mut rows: Vec<&Record> = m
                .rows
                .values()
                .filter(|r| domain::eval(db, model, r, &d))
                .collect();
            let keys: Vec<(String, bool)> = order
                .split(',')
                .filter_map(|k| {
                    let mut it = k.split_whitespace();
                    let f = it.next()?.to_string();
                    Some((f, it.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"))))
                })
                .collect();
            check_fields(db, model, keys.iter().map(|(f, _)| f))?;
            // Rows are kept in id order already.
            if !(keys.len() == 1 && keys[0].0 == "id" && !keys[0].1) {
                let mut keyed: Vec<(Vec<std::borrow::Cow<'_, Value>>, &Record)> = rows
                    .iter()
                    .map(|r| {
                        (
                            keys.iter().map(|(f, _)| db.raw_ref(model, r, f)).collect(),
                            *r,
                        )
                    })
                    .collect();
                keyed.sort_by(|(a, _), (b, _)| {
                    for (i, (_, desc)) in keys.iter().enumerate() {
                        let o = domain::cmp_values(&a[i], &b[i]);
                        let o = if *desc { o.reverse() } else { o };
                        if o != std::cmp::Ordering::Equal {
                            return o;
                        }
                    }
                    std::cmp::Ordering::Equal
                });
                rows = keyed.into_iter().map(|(_, r)| r).collect();
            }
            let ids = Arc::new(
                rows.iter()
                    .filter_map(|r| r.get("id").and_then(Value::as_i64))
                    .collect::<Vec<_>>(),
            );
            if let Ok(mut c) = db.search_cache.lock() {
                if c.len() > 32 {
                    c.clear();
                }
                c.insert(key, (db.generation, ids.clone()));
            }
            ids
        }
    };
    let offset = kw.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = kw
        .get("limit")
        .and_then(Value::as_u64)
        .map(|l| l as usize)
        .unwrap_or(usize::MAX);
    Ok(ids.iter().skip(offset).take(limit).copied().collect())
}

/// Record rules, as the real 17 and 18 servers have them for a salesman outside the
/// accounting groups ("Personal Invoices" / "Personal Invoice Lines"): only customer
/// invoices and credit notes whose salesperson is the user or nobody, and their journal
/// items — payments' entries are hidden, partial reconciliations stay readable.
fn record_rules(db: &Db, user: &FakeUser, model: &str, ids: Vec<i64>) -> Vec<i64> {
    if user.accounting || !matches!(model, "account.move" | "account.move.line") {
        return ids;
    }
    let moves = db.models.get("account.move");
    let visible = |move_id: Option<i64>| {
        let Some(m) = move_id.and_then(|m| moves.and_then(|t| t.rows.get(&m))) else {
            return false;
        };
        let customer_move = matches!(
            m.get("move_type").and_then(Value::as_str),
            Some("out_invoice" | "out_refund")
        );
        let salesperson = m.get("invoice_user_id").and_then(Value::as_i64);
        customer_move && salesperson.is_none_or(|u| u == user.id)
    };
    ids.into_iter()
        .filter(|id| {
            let move_id = if model == "account.move" {
                Some(*id)
            } else {
                db.models
                    .get(model)
                    .and_then(|t| t.rows.get(id))
                    .and_then(|r| r.get("move_id"))
                    .and_then(Value::as_i64)
            };
            visible(move_id)
        })
        .collect()
}

fn read(
    db: &Db,
    user: &FakeUser,
    model: &str,
    ids: &[i64],
    fields: Option<&[String]>,
) -> Result<Value, Fault> {
    let m = &db.models[model];
    let names: Vec<String> = match fields {
        Some(f) if !f.is_empty() => f.iter().filter(|n| n.as_str() != "id").cloned().collect(),
        _ => m
            .fields
            .keys()
            .filter(|n| {
                n.as_str() != "id"
                    && (user.accounting || !RESTRICTED.contains(&(model, n.as_str())))
            })
            .cloned()
            .collect(),
    };
    check_fields(db, model, names.iter())?;
    let denied: Vec<&String> = names
        .iter()
        .filter(|n| !user.accounting && RESTRICTED.contains(&(model, n.as_str())))
        .collect();
    if !denied.is_empty() {
        let msg = if db.version <= 17 {
            format!(
                "The requested operation can not be completed due to security restrictions.\n\nDocument type: Contact ({model})\nOperation: read\nUser: {}\nFields:\n{}",
                user.id,
                denied.iter().map(|f| format!("- {f} (allowed for groups 'Technical / Show Accounting Features - Readonly', 'Invoicing / Billing')")).collect::<Vec<_>>().join("\n")
            )
        } else {
            format!(
                "You do not have enough rights to access the fields \"{}\" on Contact ({model}). Please contact your system administrator.",
                denied
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        return Err(Fault::new("odoo.exceptions.AccessError", msg));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(r) = m.rows.get(id) else { continue };
        let mut o = Map::new();
        o.insert("id".into(), json!(id));
        for n in &names {
            o.insert(n.clone(), db.wire_value(model, r, n));
        }
        out.push(Value::Object(o));
    }
    Ok(Value::Array(out))
}

fn write(
    db: &mut Db,
    user: &FakeUser,
    model: &str,
    ids: &[i64],
    vals: &Map<String, Value>,
) -> Result<(), Fault> {
    check_fields(db, model, vals.keys())?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !db.models[model].rows.contains_key(id))
    {
        return Err(Fault::new(
            "odoo.exceptions.MissingError",
            format!(
                "Record does not exist or has been deleted.\n(Record: {model}({missing},), User: {})",
                user.id
            ),
        ));
    }
    let now = json!(wire::format_datetime(Utc::now()));
    db.generation += 1;
    if let Some(m) = db.models.get_mut(model) {
        for id in ids {
            if let Some(r) = m.rows.get_mut(id) {
                for (k, v) in vals {
                    r.insert(k.clone(), v.clone());
                }
                r.insert("write_date".into(), now.clone());
            }
        }
    }
    Ok(())
}

fn create(db: &mut Db, model: &str, mut vals: Map<String, Value>) -> i64 {
    // One2many commands `[(0, 0, {...})]` create the children (automation actions).
    let mut children = Vec::new();
    for (k, v) in vals.iter_mut() {
        if let (
            Some(FieldDef {
                kind: Kind::O2m | Kind::M2m,
                relation: Some(rel),
                ..
            }),
            Value::Array(cmds),
        ) = (db.field(model, k).cloned(), v.clone())
        {
            let mut ids = Vec::new();
            for c in cmds {
                match c.as_array().map(Vec::as_slice) {
                    Some([op, _, Value::Object(child)]) if op.as_i64() == Some(0) => {
                        children.push((k.clone(), rel.clone(), child.clone()))
                    }
                    Some([op, _, Value::Array(set)]) if op.as_i64() == Some(6) => {
                        ids.extend(set.iter().filter_map(Value::as_i64))
                    }
                    _ => {
                        if let Some(id) = c.as_i64() {
                            ids.push(id)
                        }
                    }
                }
            }
            *v = json!(ids);
        }
    }
    let id = db.insert(model, vals);
    for (field, rel, child) in children {
        let cid = create(db, &rel, child);
        if let Some(r) = db.models.get_mut(model).and_then(|m| m.rows.get_mut(&id)) {
            let mut cur = wire::ids(r.get(&field).unwrap_or(&json!([])));
            cur.push(cid);
            r.insert(field.clone(), json!(cur));
        }
        if rel == "ir.actions.server"
            && let Some(c) = db
                .models
                .get_mut("ir.actions.server")
                .and_then(|m| m.rows.get_mut(&cid))
        {
            c.insert("base_automation_id".into(), json!(id));
        }
    }
    id
}

/// The webhook posts a new mail.message triggers: active automations on mail.message whose
/// filter matches, with a webhook action.
fn webhooks_for(db: &Db, message_id: i64) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let Some(msg) = db
        .models
        .get("mail.message")
        .and_then(|m| m.rows.get(&message_id))
    else {
        return out;
    };
    let Some(autos) = db.models.get("base.automation") else {
        return out;
    };
    let msg_model_id = db
        .models
        .get("ir.model")
        .and_then(|m| {
            m.rows
                .values()
                .find(|r| r.get("model").and_then(Value::as_str) == Some("mail.message"))
        })
        .and_then(|r| r.get("id").and_then(Value::as_i64));
    for a in autos.rows.values() {
        if a.get("active").and_then(Value::as_bool) == Some(false)
            || a.get("model_id").and_then(Value::as_i64) != msg_model_id
        {
            continue;
        }
        if let Some(f) = a
            .get("filter_domain")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
        {
            let json_text = f
                .replace('(', "[")
                .replace(')', "]")
                .replace('\'', "\"")
                .replace("True", "true")
                .replace("False", "false");
            let matched = serde_json::from_str::<Value>(&json_text)
                .ok()
                .and_then(|d| domain::parse(db, "mail.message", &d).ok())
                .is_some_and(|d| domain::eval(db, "mail.message", msg, &d));
            if !matched {
                continue;
            }
        }
        for act_id in wire::ids(a.get("action_server_ids").unwrap_or(&json!([]))) {
            let Some(act) = db
                .models
                .get("ir.actions.server")
                .and_then(|m| m.rows.get(&act_id))
            else {
                continue;
            };
            if act.get("state").and_then(Value::as_str) != Some("webhook") {
                continue;
            }
            let Some(url) = act.get("webhook_url").and_then(Value::as_str) else {
                continue;
            };
            let mut p = Map::new();
            p.insert(
                "_action".into(),
                json!(format!(
                    "{}(#{act_id})",
                    act.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("Send Webhook Notification")
                )),
            );
            p.insert("_id".into(), json!(message_id));
            p.insert("_model".into(), json!("mail.message"));
            p.insert("id".into(), json!(message_id));
            for fid in wire::ids(act.get("webhook_field_ids").unwrap_or(&json!([]))) {
                if let Some(name) = db
                    .models
                    .get("ir.model.fields")
                    .and_then(|m| m.rows.get(&fid))
                    .and_then(|r| r.get("name"))
                    .and_then(Value::as_str)
                {
                    // Many2one values go out as bare ids.
                    p.insert(name.into(), db.raw("mail.message", msg, name));
                }
            }
            out.push((url.to_string(), Value::Object(p)));
        }
    }
    out
}

fn read_group(
    db: &Db,
    model: &str,
    pos: &[Value],
    kw: &Map<String, Value>,
) -> Result<Value, Fault> {
    let empty = json!([]);
    let dom = arg(pos, kw, 0, "domain").unwrap_or(&empty);
    let fields = field_list(arg(pos, kw, 1, "fields")).unwrap_or_default();
    let groupby = field_list(arg(pos, kw, 2, "groupby")).unwrap_or_default();
    let lazy = kw.get("lazy").and_then(Value::as_bool).unwrap_or(true);
    let groupby: Vec<String> = if lazy {
        groupby.into_iter().take(1).collect()
    } else {
        groupby
    };
    for g in &groupby {
        match db.field(model, g) {
            None => {
                return Err(Fault::value(format!(
                    "Invalid field '{g}' on model '{model}'"
                )));
            }
            Some(f)
                if !(f.store
                    || db.version >= 18 && model == "stock.quant" && g == "warehouse_id") =>
            {
                return Err(Fault::value(format!(
                    "Cannot convert field {model}.{g} to SQL"
                )));
            }
            _ => {}
        }
    }
    let aggs: Vec<String> = fields
        .iter()
        .map(|f| f.split(':').next().unwrap_or(f).to_string())
        .filter(|f| !groupby.contains(f))
        .collect();
    check_fields(db, model, aggs.iter())?;
    let d = domain::parse(db, model, dom)?;
    let m = &db.models[model];
    let mut groups: BTreeMap<Vec<String>, (Vec<Value>, usize, Vec<f64>)> = BTreeMap::new();
    for r in m.rows.values().filter(|r| domain::eval(db, model, r, &d)) {
        let vals: Vec<Value> = groupby
            .iter()
            .map(|g| {
                if g == "warehouse_id" && model == "stock.quant" {
                    // A related field: through the location.
                    let loc = r.get("location_id").and_then(Value::as_i64);
                    loc.and_then(|l| db.models.get("stock.location").and_then(|t| t.rows.get(&l)))
                        .and_then(|l| l.get("warehouse_id").cloned())
                        .unwrap_or(Value::Bool(false))
                } else {
                    db.raw(model, r, g)
                }
            })
            .collect();
        let key: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
        let e = groups
            .entry(key)
            .or_insert_with(|| (vals, 0, vec![0.0; aggs.len()]));
        e.1 += 1;
        for (i, a) in aggs.iter().enumerate() {
            e.2[i] += db.raw(model, r, a).as_f64().unwrap_or(0.0);
        }
    }
    let mut out = Vec::new();
    for (vals, count, sums) in groups.into_values() {
        let mut o = Map::new();
        let mut dom_terms: Vec<Value> = Vec::new();
        for (g, v) in groupby.iter().zip(&vals) {
            let rel = if g == "warehouse_id" && model == "stock.quant" {
                Some("stock.warehouse".to_string())
            } else {
                db.field(model, g).and_then(|f| f.relation.clone())
            };
            let shown = match (rel, v.as_i64()) {
                (Some(rel), Some(id)) => json!([id, db.display_name(&rel, id)]),
                _ => v.clone(),
            };
            o.insert(g.clone(), shown);
            dom_terms.push(json!([g, "=", v]));
        }
        if lazy {
            if let Some(g) = groupby.first() {
                o.insert(format!("{g}_count"), json!(count));
            }
        } else {
            o.insert("__count".into(), json!(count));
        }
        for (a, s) in aggs.iter().zip(sums) {
            o.insert(a.clone(), json!(s));
        }
        let mut full = Vec::new();
        let base = dom.as_array().cloned().unwrap_or_default();
        for _ in 0..dom_terms.len() {
            full.push(json!("&"));
        }
        full.extend(base);
        full.extend(dom_terms);
        o.insert("__domain".into(), Value::Array(full));
        out.push(Value::Object(o));
    }
    Ok(Value::Array(out))
}

/// Users of a fake by id (for tests that map authors).
pub fn users_by_partner(users: &[FakeUser]) -> HashMap<i64, FakeUser> {
    users.iter().map(|u| (u.partner_id, u.clone())).collect()
}
