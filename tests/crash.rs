//! Crash test: the real binary serves on a loopback port while clients create approval
//! requests (each one an audited event); the server is killed with SIGKILL mid-write.
//! Afterwards `audit verify` passes, every request the server acknowledged is in the log,
//! and the server starts again on the same data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_order-copilot"));
    c.env_remove("DATABASE_URL")
        // The demo: these tests are not about the Odoo a developer may have configured.
        .env_remove("ODOO_URL")
        .env_remove("ORDER_COPILOT_POLICIES")
        .env("ORDER_COPILOT_LOG", "warn");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `serve`; return the child, its address and (on first start) the admin token.
fn start(dir: &std::path::Path, port: u16) -> (Child, Option<String>) {
    let mut child = bin()
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            dir.to_str().unwrap(),
            "--orders",
            "300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut token = None;
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("oc_")) {
            token.get_or_insert_with(|| {
                t.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .to_string()
            });
        }
        if line.starts_with("order-copilot listening on") {
            break;
        }
    }
    (child, token)
}

fn export(dir: &std::path::Path) -> Vec<Value> {
    let o = bin()
        .args(["audit", "export", "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn verify(dir: &std::path::Path) -> String {
    let o = bin()
        .args(["audit", "verify", "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "audit verify failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_mid_write_loses_nothing_acknowledged() {
    let dir = common::temp_dir("oc-crash");
    let port = free_port();
    let (mut child, token) = start(&dir, port);
    let token = token.expect("first start prints an admin token");
    let base = format!("http://127.0.0.1:{port}");
    let c = common::client();
    let list: Value = c
        .get(format!("{base}/api/exceptions?limit=20"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cases: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!cases.is_empty());

    // Writers: each acknowledged (201) request is an approval id that must survive.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (c, base, token, cases, acked) = (
            c.clone(),
            base.clone(),
            token.clone(),
            cases.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < deadline {
                let case = &cases[i % cases.len()];
                i += 1;
                let r = c
                    .post(format!("{base}/api/cases/{case}/actions"))
                    .bearer_auth(&token)
                    .json(&json!({"recommendation": 0}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => break,
                        };
                        acked
                            .lock()
                            .unwrap()
                            .push(v["approval"]["id"].as_str().unwrap().to_string());
                    }
                    Ok(_) => {}
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Let writes flow, then kill without warning.
    while acked.lock().unwrap().len() < 150 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 150,
        "only {} writes were acknowledged",
        acked.len()
    );

    let text = verify(&dir);
    assert!(text.contains("chain intact"), "{text}");
    let rows = export(&dir);
    let logged: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|r| r["kind"] == "approval.requested")
        .filter_map(|r| r["payload"]["approval"].as_str())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !logged.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );

    // The server starts again on the same data, and stops cleanly on SIGTERM.
    let (mut child, again) = start(&dir, port);
    assert!(
        again.is_none(),
        "no second admin token on a non-empty database"
    );
    let ok = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    verify(&dir);
    let rows = export(&dir);
    assert_eq!(rows.last().unwrap()["kind"], "server.stopped");
}
