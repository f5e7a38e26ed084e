//! A real Odoo 17.0 / 18.0 for integration tests: a fresh database per test, made from the
//! template of `odoo-local` (../shared/odoo/server), and an admin client that plants
//! scenarios through the ordinary API — the calls a user's clicks make, never SQL.
//!
//! Contract with `scripts/test` (which starts the servers):
//! - `TEST_ODOO17_URL`, `TEST_ODOO18_URL`: a running server of that version;
//! - `ODOO_LOCAL`: the `odoo-local` script, used to create (and drop) databases.
//!
//! When either is missing the test prints one line saying it did NOT run, and returns.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use order_copilot::odoo::client::{ClientOptions, Credentials, OdooClient, Secret};
use order_copilot::odoo::wire::{self, OdooError};
use serde_json::{Value, json};

mod orders;
mod payments;
mod plant;
mod supply;

/// The versions the suite runs against.
pub const VERSIONS: [u32; 2] = [17, 18];

/// One fresh database on a real server.
pub struct RealOdoo {
    /// Major version (17 or 18).
    pub version: u32,
    /// Server URL.
    pub url: String,
    /// Database name (unique to this test).
    pub db: String,
    /// Logged in as `admin` (password `admin`, as `odoo-local db create` makes it).
    pub admin: Arc<OdooClient>,
    odoo_local: PathBuf,
}

/// Why a real-Odoo test cannot run here, or `None` when it can.
pub fn unavailable(version: u32) -> Option<String> {
    let var = format!("TEST_ODOO{version}_URL");
    if std::env::var(&var).map(|v| v.is_empty()).unwrap_or(true) {
        return Some(format!(
            "{var} is not set (scripts/test starts a real Odoo {version}.0 from ../shared/odoo/server/odoo-local)"
        ));
    }
    match std::env::var("ODOO_LOCAL") {
        Ok(p) if PathBuf::from(&p).is_file() => None,
        _ => Some("ODOO_LOCAL does not name the odoo-local script".into()),
    }
}

/// Client options for tests: generous timeout (a 2-core machine under load), one retry.
pub fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(120),
        retries: 1,
        backoff: Duration::from_millis(200),
        ..ClientOptions::default()
    }
}

impl RealOdoo {
    /// A fresh database (no demo data) on the version's server, or `None` (after printing
    /// why) when the suite has no real Odoo of that version.
    pub async fn fresh(version: u32, test: &str) -> Option<RealOdoo> {
        if let Some(why) = unavailable(version) {
            eprintln!("real Odoo {version} test `{test}` did NOT run: {why}");
            return None;
        }
        let url = std::env::var(format!("TEST_ODOO{version}_URL")).unwrap();
        let odoo_local = PathBuf::from(std::env::var("ODOO_LOCAL").unwrap());
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db = format!(
            "oct_{}_{}_{}_{n}",
            test.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(24)
                .collect::<String>(),
            std::process::id(),
            Utc::now().timestamp_micros() % 1_000_000
        );
        let (script, name) = (odoo_local.clone(), db.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new(&script)
                .args(["db", "create", &name, "--version", &version.to_string()])
                .output()
        })
        .await
        .unwrap()
        .expect("run odoo-local db create");
        assert!(
            out.status.success(),
            "odoo-local db create {db} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admin = connect(&url, &db, "admin", "admin").await.unwrap();
        assert_eq!(admin.version().major, version, "server at {url}");
        Some(RealOdoo {
            version,
            url,
            db,
            admin: Arc::new(admin),
            odoo_local,
        })
    }

    /// A client for another user of this database.
    pub async fn login(&self, login: &str, password: &str) -> Result<OdooClient, OdooError> {
        connect(&self.url, &self.db, login, password).await
    }

    /// Drop the database (at the end of a test; a failed test leaves it for inspection).
    pub async fn drop_db(self) {
        let master = master_password();
        let Some(master) = master else { return };
        let body = json!({"jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"service": "db", "method": "drop", "args": [master, self.db]}});
        let _ = reqwest::Client::new()
            .post(format!("{}/jsonrpc", self.url))
            .json(&body)
            .send()
            .await;
    }

    /// `model.method(*args, **kwargs)` as admin.
    /// `args` is a JSON array, `kwargs` a JSON object (or `null`).
    pub async fn call(&self, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
        let args = match args {
            Value::Array(a) => a,
            other => vec![other],
        };
        let kwargs = match kwargs {
            Value::Object(o) => o,
            _ => serde_json::Map::new(),
        };
        self.admin
            .call(model, method, args, kwargs)
            .await
            .unwrap_or_else(|e| panic!("{model}.{method} on Odoo {}: {e}", self.version))
    }

    /// Create one record, returning its id.
    pub async fn create(&self, model: &str, vals: Value) -> i64 {
        self.admin
            .create(model, vals)
            .await
            .unwrap_or_else(|e| panic!("create {model} on Odoo {}: {e}", self.version))
    }

    /// Write values on records.
    pub async fn write(&self, model: &str, ids: &[i64], vals: Value) {
        self.admin
            .write(model, ids, vals)
            .await
            .unwrap_or_else(|e| panic!("write {model} {ids:?} on Odoo {}: {e}", self.version))
    }

    /// Read fields of records.
    pub async fn read(&self, model: &str, ids: &[i64], fields: &[&str]) -> Vec<Value> {
        self.admin
            .read(model, ids, fields)
            .await
            .unwrap_or_else(|e| panic!("read {model} on Odoo {}: {e}", self.version))
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    /// `search_read` with a domain.
    pub async fn search_read(&self, model: &str, domain: Value, fields: &[&str]) -> Vec<Value> {
        self.admin
            .search_read_all(model, domain, fields, 1000)
            .await
            .unwrap_or_else(|e| panic!("search_read {model} on Odoo {}: {e}", self.version))
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    /// The one id matching a domain.
    pub async fn find(&self, model: &str, domain: Value) -> i64 {
        let rows = self.search_read(model, domain.clone(), &["id"]).await;
        assert_eq!(rows.len(), 1, "{model} {domain}: {rows:?}");
        rows[0]["id"].as_i64().unwrap()
    }

    /// The id of an XML id (`module.name`).
    pub async fn xmlid(&self, xmlid: &str) -> i64 {
        let (module, name) = xmlid.split_once('.').unwrap();
        let rows = self
            .search_read(
                "ir.model.data",
                json!([["module", "=", module], ["name", "=", name]]),
                &["res_id"],
            )
            .await;
        rows.first()
            .and_then(|r| r["res_id"].as_i64())
            .unwrap_or_else(|| panic!("no xml id {xmlid} on Odoo {}", self.version))
    }
}

/// Log in to a real server.
pub async fn connect(
    url: &str,
    db: &str,
    login: &str,
    password: &str,
) -> Result<OdooClient, OdooError> {
    OdooClient::connect(
        Credentials {
            url: url.to_string(),
            db: db.to_string(),
            login: login.to_string(),
            api_key: Secret::new(password),
        },
        options(),
    )
    .await
}

/// odoo-local's master password (for dropping test databases).
fn master_password() -> Option<String> {
    if let Ok(p) = std::env::var("ODOO_LOCAL_MASTER") {
        return Some(p);
    }
    let cache = std::env::var("ODOO_LOCAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/odoo-local")
        });
    std::fs::read_to_string(cache.join("master_password"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A naive UTC datetime as Odoo writes it.
pub fn odoo_datetime(t: DateTime<Utc>) -> String {
    wire::format_datetime(t)
}

/// A date as Odoo writes it.
pub fn odoo_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}
