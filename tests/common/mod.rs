//! Shared test helpers: a fresh store on each backend, and a real server on an ephemeral
//! port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
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
                if crate::common::postgres_available(stringify!($name)) {
                    super::$name(Db::Postgres).await
                }
            }
        }
    };
}

/// The embedded policy with texts of one file replaced (each `from` must occur in it).
pub fn policy_with(file: &str, edits: &[(&str, &str)]) -> Policy {
    let files: Vec<(String, String)> = order_copilot::policy::EMBEDDED
        .iter()
        .map(|(n, c)| {
            let mut c = c.to_string();
            if *n == file {
                for (from, to) in edits {
                    assert!(c.contains(from), "{file} has no `{from}`");
                    c = c.replace(from, to);
                }
            }
            (n.to_string(), c)
        })
        .collect();
    Policy::from_files(&files).unwrap()
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

/// A fresh temporary directory, removed with everything in it when dropped (also when the
/// test fails). Use it as a `&Path`.
pub struct TestDir(tempfile::TempDir);

impl Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh temporary directory (see [`TestDir`]).
pub fn temp_dir(prefix: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .unwrap(),
    )
}

/// A store configuration on an empty database, holding the SQLite store's directory (removed
/// when this is dropped: keep it as long as the store is open). Use it as a `&StoreConfig`.
pub struct FreshStore {
    pub cfg: StoreConfig,
    _dir: Option<TestDir>,
}

impl Deref for FreshStore {
    type Target = StoreConfig;
    fn deref(&self) -> &StoreConfig {
        &self.cfg
    }
}

/// Which backends to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Whether the PostgreSQL server of the test script is there. `scripts/test` always starts
/// one and sets `TEST_DATABASE_URL`; without it (a bare `cargo test`) the PostgreSQL half
/// of a test prints one line saying it did NOT run and passes — except under `CI=true`,
/// where a missing database is a failure.
pub fn postgres_available(test: &str) -> bool {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.trim().is_empty()) {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "TEST_DATABASE_URL is not set under CI: scripts/test starts a throwaway PostgreSQL"
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of a passing test, and
    // this line must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "PostgreSQL test `{test}` did NOT run: set TEST_DATABASE_URL (scripts/test sets it)"
    );
    false
}

/// The PostgreSQL server the test script started (checked by [`postgres_available`]).
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TEST_DATABASE_URL is not set: run the suite with scripts/test, which starts a throwaway PostgreSQL")
    })
}

/// A store config on an empty database of the given backend.
pub async fn fresh(db: Db) -> FreshStore {
    match db {
        Db::Sqlite => {
            let dir = temp_dir("oc-sqlite");
            FreshStore {
                cfg: StoreConfig {
                    database_url: None,
                    data_dir: dir.to_path_buf(),
                },
                _dir: Some(dir),
            }
        }
        Db::Postgres => {
            let admin = postgres_url();
            let mut cfg = order_copilot::store::create_database_for_tests(
                &admin,
                &unique("oc").to_lowercase(),
            )
            .await
            .unwrap();
            // The database's audit key and checkpoints go to a directory removed on drop,
            // not to a fixed path under the system temp dir that outlives the test.
            let dir = temp_dir("oc-pg");
            cfg.data_dir = dir.to_path_buf();
            FreshStore {
                cfg,
                _dir: Some(dir),
            }
        }
    }
}

/// A store on an empty database; keep the `FreshStore` as long as the store is used.
pub async fn open(db: Db) -> (Store, FreshStore) {
    let cfg = fresh(db).await;
    (Store::open(&cfg).await.unwrap(), cfg)
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub admin: String,
    pub cfg: FreshStore,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    worker: Option<order_copilot::app::outbox::OutboxWorker>,
}

/// The outbox worker's settings in tests: quick polls and retries.
pub fn test_outbox() -> order_copilot::app::outbox::OutboxConfig {
    order_copilot::app::outbox::OutboxConfig {
        lease_secs: 5.0,
        poll_secs: 0.2,
        backoff_secs: 0.1,
        backoff_cap_secs: 1.0,
        ..Default::default()
    }
}

impl TestServer {
    /// A server with its outbox worker, as `serve` runs it.
    pub async fn start(db: Db, orders: usize) -> TestServer {
        Self::start_opts(db, orders, false, true).await
    }

    /// A server without an outbox worker: the test runs approved actions itself
    /// (`App::run_due_executions`).
    pub async fn start_without_worker(db: Db, orders: usize) -> TestServer {
        Self::start_opts(db, orders, false, false).await
    }

    /// A server whose scans score the predictive models, trained on the demo's history.
    pub async fn start_with_models(db: Db, orders: usize) -> TestServer {
        Self::start_opts(db, orders, true, true).await
    }

    /// A server under a policy other than the embedded one.
    pub async fn start_with_policy(db: Db, orders: usize, policy: Policy) -> TestServer {
        Self::start_full(db, orders, false, true, policy).await
    }

    async fn start_opts(db: Db, orders: usize, models: bool, worker: bool) -> TestServer {
        Self::start_full(db, orders, models, worker, Policy::embedded().unwrap()).await
    }

    async fn start_full(
        db: Db,
        orders: usize,
        models: bool,
        worker: bool,
        policy: Policy,
    ) -> TestServer {
        let cfg = fresh(db).await;
        let store = Store::open(&cfg).await.unwrap();
        let policy = Arc::new(policy);
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
        let worker =
            worker.then(|| order_copilot::app::outbox::OutboxWorker::spawn(&app, test_outbox()));
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
            worker,
        }
    }

    /// The approval once its execution ended (executed or failed), waiting up to 30 s.
    pub async fn executed(&self, id: &str) -> order_copilot::store::ApprovalRow {
        wait_executed(&self.app, id).await
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
    /// Stops the worker and the server. Returns the store's configuration, which holds the
    /// SQLite directory: keep it while the store is still read after the stop.
    pub async fn stop(mut self) -> FreshStore {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.cfg
    }
}

/// An approval once its execution ended (executed or failed), waiting up to 30 s for the
/// outbox worker.
pub async fn wait_executed(app: &App, id: &str) -> order_copilot::store::ApprovalRow {
    use order_copilot::store::ApprovalStatus;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = app.store.get_approval(id).await.unwrap().unwrap();
        if matches!(a.status, ApprovalStatus::Executed | ApprovalStatus::Failed) {
            return a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "approval {id} still {} after 30 s: {:?}",
            a.status.as_str(),
            a.execution
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// A bot answerer that answers with who asked about which order, and keeps the questions.
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<order_copilot::odoo::bot::Question>>);

impl order_copilot::odoo::bot::Answerer for Recorder {
    fn answer<'a>(
        &'a self,
        q: &'a order_copilot::odoo::bot::Question,
    ) -> order_copilot::app::source::BoxFuture<'a, String> {
        self.0.lock().unwrap().push(q.clone());
        Box::pin(async move {
            format!(
                "<p>answer for {} about {}</p>",
                q.author,
                q.order.clone().unwrap_or_else(|| "no order".into())
            )
        })
    }
}
