//! Crash matrix, with the real `order-copilot serve` binary against `FakeOdoo` (in this
//! test process, so it outlives the servers it serves).
//!
//! - **Crash matrix**: the server is killed with SIGKILL at each step of an execution
//!   (`after_claim`, `after_marker`, `after_side_effect`, `before_finish` — the debug-build
//!   fault points of `ORDER_COPILOT_CRASH_AT`, see `app::outbox::crash_point`), started
//!   again on the same data, and the request ends `executed` with exactly one effect in
//!   Odoo (one starting note, one promised-date write, one closing note) and an audit
//!   chain that verifies.
//!
//! Races between replicas on one PostgreSQL are not tested here yet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use order_copilot::demo::{DemoConfig, generate};
use order_copilot::odoo::executor::Marks;
use order_copilot::odoo::fake::{FakeConfig, FakeOdoo};
use serde_json::{Value, json};

/// One key for every process of a test (replicas on one database share it).
const AUDIT_KEY: &str = "crash-matrix-audit-key-0123456789abcdef";

/// Where the servers keep their data: a data directory (SQLite) or PostgreSQL.
#[derive(Clone)]
struct Storage {
    data_dir: PathBuf,
    database_url: Option<String>,
}

struct OdooEnv {
    url: String,
    db: String,
    login: String,
    key: String,
}

fn bin(storage: &Storage, odoo: Option<&OdooEnv>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_order-copilot"));
    c.env_remove("DATABASE_URL")
        .env_remove("ODOO_URL")
        .env_remove("QDRANT_URL")
        .env_remove("ORDER_COPILOT_POLICIES")
        .env_remove("ORDER_COPILOT_CRASH_AT")
        .env("ORDER_COPILOT_LOG", "warn")
        .env("AUDIT_KEY", AUDIT_KEY)
        .env("ORDER_COPILOT_DATA_DIR", &storage.data_dir);
    if let Some(u) = &storage.database_url {
        c.env("DATABASE_URL", u);
    }
    if let Some(o) = odoo {
        c.env("ODOO_URL", &o.url)
            .env("ODOO_DB", &o.db)
            .env("ODOO_LOGIN", &o.login)
            .env("ODOO_API_KEY", &o.key);
    }
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn token(storage: &Storage, role: &str, name: &str) -> String {
    let o = bin(storage, None)
        .args(["token", "create", "--role", role, "--name", name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn verify(storage: &Storage) -> String {
    let o = bin(storage, None)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "audit verify failed: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

fn export(storage: &Storage) -> Vec<Value> {
    let o = bin(storage, None)
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A running `serve`.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Start `serve` and wait until it listens. `crash`: the fault point to stop at and
    /// the file it names the step in.
    fn start(storage: &Storage, odoo: &OdooEnv, crash: Option<(&str, &Path)>) -> Server {
        Server::start_with(storage, Some(odoo), crash, 3600)
    }

    /// [`Server::start`] on any source (`None`: the demo), scanning every `scan_every` s.
    fn start_with(
        storage: &Storage,
        odoo: Option<&OdooEnv>,
        crash: Option<(&str, &Path)>,
        scan_every: u64,
    ) -> Server {
        let port = free_port();
        let log = storage.data_dir.join(format!("serve-{port}.log"));
        let mut c = bin(storage, odoo);
        c.args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--orders",
            "150",
            "--scan-interval",
            &scan_every.to_string(),
            "--exec-lease",
            "2",
            "--exec-poll",
            "0.2",
            "--exec-backoff",
            "0.2",
            "--exec-backoff-cap",
            "1",
        ]);
        if let Some((step, file)) = crash {
            c.env("ORDER_COPILOT_CRASH_AT", step)
                .env("ORDER_COPILOT_CRASH_FILE", file);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!(
                    "serve exited before listening: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if line.starts_with("order-copilot listening on") {
                break;
            }
        }
        // Keep draining standard output so the server never writes into a closed pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "graceful stop exits 0: {status:?}: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    let r = common::client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn post(base: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = common::client()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The first `recommendations` array anywhere in `v`.
fn recommendations(v: &Value) -> Option<&Vec<Value>> {
    match v {
        Value::Object(m) => m
            .get("recommendations")
            .and_then(Value::as_array)
            .or_else(|| m.values().find_map(recommendations)),
        Value::Array(a) => a.iter().find_map(recommendations),
        _ => None,
    }
}

/// Up to `n` open cases with a reschedule option, on distinct orders: (case id, option
/// index, order name).
async fn reschedule_cases(base: &str, token: &str, n: usize) -> Vec<(String, usize, String)> {
    let list = get(base, token, "/api/exceptions?limit=200").await;
    let mut found = Vec::new();
    let mut orders = HashSet::new();
    for item in list["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let case = get(base, token, &format!("/api/cases/{id}")).await;
        let Some(recs) = recommendations(&case) else {
            continue;
        };
        let hit = recs.iter().enumerate().find_map(|(i, r)| {
            // A recommendation carries its action's fields flattened.
            let order = r["order"].as_str()?.to_string();
            (r["action"] == "reschedule").then_some((i, order))
        });
        if let Some((i, order)) = hit
            && orders.insert(order.clone())
        {
            found.push((id.to_string(), i, order));
            if found.len() == n {
                break;
            }
        }
    }
    found
}

/// What one request left in Odoo.
#[derive(Debug, PartialEq, Eq)]
struct Effects {
    started: usize,
    finished: usize,
    writes: usize,
}

fn effects(fake: &FakeOdoo, approval: &str, order: &str) -> Effects {
    let marks = Marks::of(approval).unwrap();
    let (started, finished, order_id) = fake.with_db(|db| {
        let count = |mid: &str| {
            db.models["mail.message"]
                .rows
                .values()
                .filter(|m| m.get("message_id").and_then(Value::as_str) == Some(mid))
                .count()
        };
        let order_id = db.models["sale.order"]
            .rows
            .iter()
            .find(|(_, r)| r.get("name").and_then(Value::as_str) == Some(order))
            .map(|(id, _)| *id)
            .unwrap();
        (count(&marks.started), count(&marks.finished), order_id)
    });
    let writes = fake
        .calls()
        .iter()
        .filter(|c| c.model == "sale.order" && c.method == "write")
        .filter(|c| {
            c.args
                .first()
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.contains(&json!(order_id)))
        })
        .count();
    Effects {
        started,
        finished,
        writes,
    }
}

async fn status(base: &str, token: &str, id: &str) -> String {
    get(base, token, &format!("/api/approvals/{id}")).await["approval"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Wait until every request is `executed` (asked of `base`); panics with the states after
/// `limit`.
async fn wait_executed(base: &str, token: &str, ids: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut states = Vec::new();
        for id in ids {
            states.push(status(base, token, id).await);
        }
        if states.iter().all(|s| s == "executed") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all executed after {limit:?}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

async fn fake_odoo() -> FakeOdoo {
    let snap = generate(
        &DemoConfig {
            seed: 42,
            orders: 200,
            now: Utc::now(),
        },
        &mut |_, _, _| {},
    );
    FakeOdoo::start(FakeConfig::version(17), &snap)
        .await
        .unwrap()
}

fn odoo_env(fake: &FakeOdoo) -> OdooEnv {
    let admin = fake.user("admin").unwrap();
    OdooEnv {
        url: fake.url(),
        db: fake.db(),
        login: admin.login,
        key: admin.key,
    }
}

/// The tokens a test uses: a requester, and an approver per role that may approve a
/// reschedule (the requester may not approve it: `approvals.toml`).
struct People {
    requester: String,
    approvers: HashMap<String, String>,
}

fn people(storage: &Storage) -> People {
    People {
        requester: token(storage, "admin", "rita"),
        approvers: [("planner", "pam"), ("service_rep", "sam")]
            .into_iter()
            .map(|(role, name)| (role.to_string(), token(storage, role, name)))
            .collect(),
    }
}

/// Request the option and return (request id, the token of someone who may approve it).
async fn request(base: &str, p: &People, case: &str, option: usize) -> (String, String) {
    let (code, v) = post(
        base,
        &p.requester,
        &format!("/api/cases/{case}/actions"),
        json!({"recommendation": option}),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let ap = &v["approval"];
    let role = ap["approver_roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|r| p.approvers.contains_key(*r))
        .unwrap_or_else(|| panic!("no approver token for {ap}"));
    (
        ap["id"].as_str().unwrap().to_string(),
        p.approvers[role].clone(),
    )
}

/// What Odoo must show at the moment the server stopped at `step` (so the kill lands
/// where the test says it does).
fn expected_at(step: &str) -> Effects {
    let (started, writes, finished) = match step {
        "after_claim" => (0, 0, 0),
        "after_marker" => (1, 0, 0),
        "after_side_effect" => (1, 1, 0),
        "before_finish" => (1, 1, 1),
        other => panic!("unknown step {other}"),
    };
    Effects {
        started,
        finished,
        writes,
    }
}

async fn crash_at(step: &str) {
    let fake = fake_odoo().await;
    let odoo = odoo_env(&fake);
    let dir = common::temp_dir("oc-crash-matrix");
    let storage = Storage {
        data_dir: dir.to_path_buf(),
        database_url: None,
    };
    let p = people(&storage);
    let crashed = dir.join("crashed");
    let server = Server::start(&storage, &odoo, Some((step, &crashed)));
    let cases = reschedule_cases(&server.base, &p.requester, 1).await;
    let (case, option, order) = cases.first().cloned().expect("a reschedule case");
    let (id, approver) = request(&server.base, &p, &case, option).await;
    let before = effects(&fake, &id, &order);
    assert_eq!(before.writes, 0, "{before:?}");

    let started = Instant::now();
    let (code, v) = post(
        &server.base,
        &approver,
        &format!("/api/approvals/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved", "answers at once: {v}");
    assert!(
        wait_for_file(&crashed, Duration::from_secs(30)),
        "{step} was not reached: {}",
        std::fs::read_to_string(&server.log).unwrap_or_default()
    );
    assert_eq!(std::fs::read_to_string(&crashed).unwrap(), step);
    server.kill();
    assert_eq!(effects(&fake, &id, &order), expected_at(step), "at {step}");

    // Restart on the same data: the dead process's lease expires and the new one finishes.
    let server = Server::start(&storage, &odoo, None);
    wait_executed(
        &server.base,
        &p.requester,
        std::slice::from_ref(&id),
        Duration::from_secs(30),
    )
    .await;
    let recovered = started.elapsed();
    let after = effects(&fake, &id, &order);
    assert_eq!(
        after,
        Effects {
            started: 1,
            finished: 1,
            writes: 1
        },
        "exactly one effect after a crash {step}"
    );
    let v = get(&server.base, &p.requester, &format!("/api/approvals/{id}")).await;
    let result = &v["approval"]["result"];
    if step == "before_finish" {
        assert_eq!(result["already_executed"], true, "{v}");
    } else {
        assert_eq!(result["resumed"], step != "after_claim", "{v}");
    }
    server.stop();

    let text = verify(&storage);
    assert!(text.contains("chain intact"), "{text}");
    let rows = export(&storage);
    let of = |kind: &str| {
        rows.iter()
            .filter(|r| r["kind"] == kind && r["payload"]["approval"] == id.as_str())
            .count()
    };
    assert_eq!(of("approval.decided") + of("approval.approved"), 1);
    assert_eq!(of("action.started"), 2, "one start per process");
    assert_eq!(of("action.executed"), 1);
    assert_eq!(of("action.failed"), 0);
    eprintln!("crash {step}: recovered to executed in {recovered:.1?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_claim() {
    crash_at("after_claim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_marker() {
    crash_at("after_marker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_side_effect() {
    crash_at("after_side_effect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_before_finish() {
    crash_at("before_finish").await;
}
