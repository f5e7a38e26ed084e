//! Shared test helpers: a fresh store on each backend, and a real server on an ephemeral
//! port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use order_copilot::app::source::DemoSource;
use order_copilot::app::{App, identity};
use order_copilot::demo::DemoConfig;
use order_copilot::policy::Policy;
use order_copilot::store::{Store, StoreConfig};

/// Run an async test function `name(db: Db)` once on SQLite and once on PostgreSQL.
#[allow(unused_macros)]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Db::Postgres).await
            }
        }
    };
}

/// A unique name for this test process and call.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{prefix}_{}_{}_{n}",
        std::process::id(),
        Utc::now().timestamp_micros() % 1_000_000_000
    )
}

/// A fresh temporary directory.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Which backends to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the test script started. Not optional: `scripts/test` always
/// starts one, so a missing URL is an error, not a skip.
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TEST_DATABASE_URL is not set: run the suite with scripts/test, which starts a throwaway PostgreSQL")
    })
}

/// A store config on an empty database of the given backend.
pub async fn fresh(db: Db) -> StoreConfig {
    match db {
        Db::Sqlite => StoreConfig {
            database_url: None,
            data_dir: temp_dir("oc-sqlite"),
        },
        Db::Postgres => {
            let admin = postgres_url();
            order_copilot::store::create_database_for_tests(&admin, &unique("oc").to_lowercase())
                .await
                .unwrap()
        }
    }
}

pub async fn open(db: Db) -> (Store, StoreConfig) {
    let cfg = fresh(db).await;
    (Store::open(&cfg).await.unwrap(), cfg)
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub admin: String,
    pub cfg: StoreConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(db: Db, orders: usize) -> TestServer {
        Self::start_opts(db, orders, false).await
    }

    /// A server whose scans score the predictive models, trained on the demo's history.
    pub async fn start_with_models(db: Db, orders: usize) -> TestServer {
        Self::start_opts(db, orders, true).await
    }

    async fn start_opts(db: Db, orders: usize, models: bool) -> TestServer {
        let cfg = fresh(db).await;
        let store = Store::open(&cfg).await.unwrap();
        let policy = Arc::new(Policy::embedded().unwrap());
        let demo = Arc::new(DemoSource::new(&DemoConfig {
            seed: 42,
            orders,
            now: Utc::now(),
        }));
        let (app, writer) =
            order_copilot::app::start(store.clone(), policy.clone(), demo.clone(), demo)
                .await
                .unwrap();
        let admin = identity::create_token(&store, &policy, "admin", "admin")
            .await
            .unwrap();
        if models {
            let snap = app.source.snapshot().await.unwrap();
            let history = app.source.history().await.unwrap().unwrap();
            let (trained, failed) = order_copilot::predict::train(&snap, &history, Utc::now());
            assert!(failed.is_empty(), "{failed:?}");
            app.set_models(trained);
        }
        app.scan("system").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(order_copilot::http::run(
            app.clone(),
            writer,
            listener,
            Duration::from_secs(3600),
            async move {
                let _ = rx.await;
            },
        ));
        TestServer {
            addr,
            app,
            admin,
            cfg,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn token(&self, name: &str, role: &str) -> String {
        identity::create_token(&self.app.store, &self.app.policy, name, role)
            .await
            .unwrap()
    }

    /// Graceful shutdown; returns when the server has flushed everything.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

pub fn client() -> reqwest::Client {
    order_copilot::outbound::client_builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET path` with a bearer token: the status and the JSON body (null when not JSON).
pub async fn api_get(s: &TestServer, token: &str, path: &str) -> (u16, serde_json::Value) {
    let r = client()
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `POST path` with a bearer token and a JSON body: the status and the JSON answer.
pub async fn api_post(
    s: &TestServer,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = client()
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}
