//! The real server on an ephemeral port, on SQLite and on PostgreSQL: authentication,
//! every documented route, the case → approval → execution → audit loop, two approvers
//! racing, rate limits, body limits, error shapes and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{Db, TestServer, api_get as get, api_post as post, client};
use order_copilot::http::ROUTES;
use order_copilot::store::audit::{self, AuditQuery};
use serde_json::{Value, json};

async fn auth_and_routes(db: Db) {
    let s = TestServer::start(db, 300).await;
    let c = client();
    // Open endpoints.
    assert_eq!(
        c.get(s.url("/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(c.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    let doc: Value = c
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for r in ROUTES {
        assert!(
            doc["paths"][r.path][r.method].is_object(),
            "{} {} undocumented",
            r.method,
            r.path
        );
    }
    // Everything else under /api needs a token.
    let r = c.get(s.url("/api/exceptions")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        body["error"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    let (st, _) = get(&s, "oc_not_a_token", "/api/exceptions").await;
    assert_eq!(st, 401);
    // Every documented route exists (no 404/405 for a real id-less probe).
    let (_, list) = get(&s, &s.admin, "/api/exceptions?limit=1").await;
    let case_id = list["items"][0]["id"].as_str().unwrap().to_string();
    let order = list["items"][0]["order_ref"].as_str().unwrap().to_string();
    for r in ROUTES {
        let path = r.path.replace("{id}", &case_id).replace("{order}", &order);
        let req = if r.method == "get" {
            c.get(s.url(&path))
        } else {
            c.post(s.url(&path)).json(&json!({}))
        };
        let resp = req.bearer_auth(&s.admin).send().await.unwrap();
        let code = resp.status().as_u16();
        assert!(resp.headers().contains_key("x-request-id"));
        assert_ne!(code, 405, "{} {path}", r.method);
        if code == 404 {
            // A resource may be missing (a case id is no approval id); the route may not.
            let body: Value = resp.json().await.unwrap();
            assert_ne!(
                body["error"]["message"], "no such route",
                "{} {path}",
                r.method
            );
        }
    }
    // Metrics count requests.
    let m = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("http_requests_total{method=\"GET\",route=\"/api/exceptions\",status=\"200\"}"),
        "{m}"
    );
    assert!(m.contains("order_copilot_cases{status=\"open\"}"));
    // A request id sent by the client comes back.
    let r = c
        .get(s.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    s.stop().await;
}

async fn queue_filters_and_errors(db: Db) {
    let s = TestServer::start(db, 300).await;
    let (st, v) = get(&s, &s.admin, "/api/exceptions?kind=credit_hold&limit=5").await;
    assert_eq!(st, 200);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] == "credit_hold")
    );
    assert!(v["total"].as_i64().unwrap() >= v["items"].as_array().unwrap().len() as i64);
    let (_, v) = get(&s, &s.admin, "/api/exceptions?limit=50").await;
    let scores: Vec<i64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_i64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked by score");
    let (_, v) = get(&s, &s.admin, "/api/exceptions?sort=revenue&limit=20").await;
    let rev: Vec<f64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["revenue_at_risk"].as_f64().unwrap())
        .collect();
    assert!(rev.windows(2).all(|w| w[0] >= w[1]));
    for bad in [
        "/api/exceptions?limit=0",
        "/api/exceptions?limit=abc",
        "/api/exceptions?status=nope",
        "/api/exceptions?sort=x",
        "/api/exceptions?bogus=1",
    ] {
        let (st, v) = get(&s, &s.admin, bad).await;
        assert_eq!(st, 400, "{bad}");
        assert_eq!(v["error"]["code"], "bad_request", "{bad}");
    }
    let (st, v) = get(&s, &s.admin, "/api/cases/EX-nope").await;
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (st, v) = get(&s, &s.admin, "/api/orders/S99999/explain").await;
    assert_eq!(st, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("S99999"));
    // Bad JSON, oversized body.
    let c = client();
    let r = c
        .post(s.url("/api/cases/x/resolve"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(s.url("/api/cases/x/resolve"))
        .bearer_auth(&s.admin)
        .body(vec![b'x'; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    s.stop().await;
}

async fn approval_loop(db: Db) {
    let s = TestServer::start(db, 400).await;
    let rep = s.token("sam", "service_rep").await;
    let planner = s.token("pat", "planner").await;
    let (_, v) = get(&s, &rep, "/api/exceptions?kind=allocation_conflict&limit=1").await;
    let case = v["items"][0].clone();
    let id = case["id"].as_str().unwrap();
    let (st, detail) = get(&s, &rep, &format!("/api/cases/{id}")).await;
    assert_eq!(st, 200);
    let rec = &detail["case"]["exception"]["recommendations"][0];
    assert_eq!(rec["action"], "reallocate");

    // A service rep may not decide a planner's case, nor approve a reallocation.
    let (st, _) = post(&s, &rep, &format!("/api/cases/{id}/acknowledge"), json!({})).await;
    assert_eq!(st, 403);
    let (st, v) = post(
        &s,
        &rep,
        &format!("/api/cases/{id}/actions"),
        json!({"recommendation": 0}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let ap = v["approval"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["approval"]["status"], "pending");
    assert_eq!(
        v["approval"]["approver_roles"],
        json!(["planner", "sales_manager"])
    );
    assert_eq!(
        v["approval"]["params"],
        rec.clone()
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("summary");
                o.remove("tradeoffs");
                o.remove("approver_roles");
                Value::Object(o)
            })
            .unwrap()
    );
    let (st, v) = post(&s, &rep, &format!("/api/approvals/{ap}/approve"), json!({})).await;
    assert_eq!(st, 403, "{v}");
    // The planner's inbox has it; the planner approves; it executes once.
    let (_, inbox) = get(&s, &planner, "/api/approvals?status=pending&mine=true").await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == ap.as_str())
    );
    let (st, v) = post(
        &s,
        &planner,
        &format!("/api/approvals/{ap}/approve"),
        json!({"reason": "tier A first"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // The approval answers at once; the outbox worker executes it.
    assert_eq!(v["approval"]["status"], "approved", "{v}");
    let done = s.executed(&ap).await;
    assert_eq!(done.status.as_str(), "executed", "{:?}", done.result);
    let result = done.result.unwrap();
    assert!(
        result["moved"].is_string() || result["moved"].is_number(),
        "{result}"
    );
    let (_, v) = get(&s, &planner, &format!("/api/approvals/{ap}")).await;
    assert_eq!(v["approval"]["status"], "executed");
    assert_eq!(v["approval"]["execution"]["attempts"], 1, "{v}");
    // Executing changed the data; the re-scan after it (moments after the end is stored)
    // cleared the case.
    let mut d = Value::Null;
    for _ in 0..200 {
        d = get(&s, &planner, &format!("/api/cases/{id}")).await.1;
        if d["case"]["status"] == "resolved" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(d["case"]["status"], "resolved");
    assert_eq!(d["case"]["outcome"], "cleared");
    // The planner (no `read_audit`) reads the case's decisions, not its audit trail: no
    // refused attempts, no payload beyond outcome, reason and action, no chain hashes.
    let kinds = |d: &Value| -> Vec<String> {
        d["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(d["history_scope"], "decisions");
    let seen = kinds(&d);
    for k in ["approval.requested", "approval.decided", "action.executed"] {
        assert!(seen.iter().any(|s| s == k), "{k} missing from {seen:?}");
    }
    assert!(!seen.iter().any(|s| s == "approval.refused"), "{seen:?}");
    for h in d["history"].as_array().unwrap() {
        assert_eq!(h["hash"], "", "{h}");
        let keys: Vec<&String> = h["payload"].as_object().unwrap().keys().collect();
        assert!(
            keys.iter().all(
                |k| ["outcome", "reason", "decision", "status", "action"].contains(&k.as_str())
            ),
            "{keys:?}"
        );
    }
    // The admin (`read_audit`) reads the whole trail.
    let (_, d) = get(&s, &s.admin, &format!("/api/cases/{id}")).await;
    assert_eq!(d["history_scope"], "audit");
    let seen = kinds(&d);
    for k in [
        "approval.requested",
        "approval.refused",
        "approval.decided",
        "action.executed",
    ] {
        assert!(seen.iter().any(|s| s == k), "{k} missing from {seen:?}");
    }
    // Second approval attempt: conflict.
    let (st, _) = post(
        &s,
        &planner,
        &format!("/api/approvals/{ap}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, 409);
    // Audit: searchable by the right roles only, chain intact.
    let (st, _) = get(&s, &planner, "/api/audit?kind=approval.").await;
    assert_eq!(st, 403);
    let (st, v) = get(&s, &s.admin, "/api/audit?kind=approval.&limit=10").await;
    assert_eq!(st, 200);
    assert!(v["items"].as_array().unwrap().len() >= 3);
    let (_, v) = get(&s, &s.admin, "/api/audit/verify").await;
    assert_eq!(v["ok"], true);
    // Resolve/dismiss need an outcome; the owner may decide.
    let (_, v) = get(&s, &planner, "/api/exceptions?owner=planner&limit=2").await;
    let other = v["items"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = post(
        &s,
        &planner,
        &format!("/api/cases/{other}/resolve"),
        json!({}),
    )
    .await;
    assert_eq!(st, 400);
    let (st, v) = post(
        &s,
        &planner,
        &format!("/api/cases/{other}/acknowledge"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["audit_seq"].as_i64().unwrap() > 0);
    let (st, v) = post(
        &s,
        &planner,
        &format!("/api/cases/{other}/resolve"),
        json!({"outcome": "moved stock from WH2"}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["case"]["status"], "resolved");
    let (st, _) = post(
        &s,
        &planner,
        &format!("/api/cases/{other}/acknowledge"),
        json!({}),
    )
    .await;
    assert_eq!(st, 409);
    s.stop().await;
}

async fn racing_approvers(db: Db) {
    let s = TestServer::start(db, 400).await;
    let rep = s.token("sam", "service_rep").await;
    let p1 = s.token("pat", "planner").await;
    let p2 = s.token("max", "sales_manager").await;
    let (_, v) = get(&s, &rep, "/api/exceptions?kind=stock_shortage&limit=1").await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let (_, d) = get(&s, &rep, &format!("/api/cases/{id}")).await;
    let recs = d["case"]["exception"]["recommendations"]
        .as_array()
        .unwrap();
    let idx = recs
        .iter()
        .position(|r| {
            r["approver_roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "planner")
        })
        .unwrap();
    let (_, v) = post(
        &s,
        &rep,
        &format!("/api/cases/{id}/actions"),
        json!({"recommendation": idx}),
    )
    .await;
    let ap = v["approval"]["id"].as_str().unwrap().to_string();
    let approver2 = if recs[idx]["approver_roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "sales_manager")
    {
        p2
    } else {
        p1.clone()
    };
    let url = s.url(&format!("/api/approvals/{ap}/approve"));
    let (a, b) = tokio::join!(
        client().post(&url).bearer_auth(&p1).json(&json!({})).send(),
        client()
            .post(&url)
            .bearer_auth(&approver2)
            .json(&json!({}))
            .send(),
    );
    let mut codes = vec![a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    codes.sort();
    // One wins. The loser hears that the request is decided (409) — or, when both clicks
    // were the same person's and the first was counted before the second was checked,
    // that they already approved it (403).
    let same_person = approver2 == p1;
    assert!(
        codes == vec![200, 409] || same_person && codes == vec![200, 403],
        "{codes:?}"
    );
    assert_eq!(s.executed(&ap).await.status.as_str(), "executed");
    let executed = audit::search(
        &s.app.store,
        &AuditQuery {
            kind: Some("action.executed".into()),
            limit: Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|r| r.event.payload["approval"] == ap.as_str())
    .count();
    assert_eq!(executed, 1, "exactly one execution");
    s.stop().await;
}

async fn login_rate_limit_and_shutdown(db: Db) {
    let s = TestServer::start(db, 200).await;
    let c = client();
    let mut last = 0;
    for _ in 0..12 {
        last = c
            .get(s.url("/api/me"))
            .bearer_auth("oc_wrong")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    let failures = audit::search(
        &s.app.store,
        &AuditQuery {
            kind: Some("auth.failed".into()),
            limit: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(failures.len(), 10, "failures until the limit are audited");
    assert!(
        failures
            .iter()
            .all(|f| !f.event.payload.to_string().contains("oc_wrong")),
        "tokens never enter the log"
    );
    let store = s.app.store.clone();
    let _dir = s.stop().await;
    let last = audit::search(
        &store,
        &AuditQuery {
            limit: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(last[0].event.kind, "server.stopped");
    assert!(audit::verify(&store, |_| {}).await.unwrap().ok());
}

/// A customer is sent exactly the text the approver approved: a request without it is
/// refused, the approver sees it, the execution sends it and not the internal purpose.
async fn customer_messages(db: Db) {
    let s = TestServer::start(db, 400).await;
    let rep = s.token("sam", "service_rep").await;
    let (_, v) = get(&s, &rep, "/api/exceptions?limit=200").await;
    let mut found = None;
    for c in v["items"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let (_, d) = get(&s, &rep, &format!("/api/cases/{id}")).await;
        let recs = d["case"]["exception"]["recommendations"]
            .as_array()
            .unwrap();
        if let Some(i) = recs.iter().position(|r| r["action"] == "contact_customer") {
            found = Some((id.to_string(), i, recs[i].clone()));
            break;
        }
    }
    let (id, i, rec) = found.expect("a demo case proposes contacting the customer");
    let url = format!("/api/cases/{id}/actions");
    let (st, v) = post(&s, &rep, &url, json!({"recommendation": i})).await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("write or draft the message the customer will receive"),
        "{v}"
    );
    for bad in [json!("   "), json!("x".repeat(4001))] {
        let (st, v) = post(&s, &rep, &url, json!({"recommendation": i, "message": bad})).await;
        assert_eq!(st, 400, "{v}");
    }
    let text = "Dear customer,\n\nyour order leaves on Friday. <b>Sorry</b> for the wait.";
    let (st, v) = post(
        &s,
        &rep,
        &url,
        json!({"recommendation": i, "message": format!("  {text}  ")}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let ap = v["approval"]["id"].as_str().unwrap().to_string();
    // The approver sees the exact text next to the internal purpose.
    let role = v["approval"]["approver_roles"][0]
        .as_str()
        .unwrap()
        .to_string();
    let approver = s.token("ann", &role).await;
    let (_, a) = get(&s, &approver, &format!("/api/approvals/{ap}")).await;
    assert_eq!(a["approval"]["params"]["message"], text);
    assert_eq!(a["approval"]["params"]["purpose"], rec["purpose"]);
    let (st, v) = post(
        &s,
        &approver,
        &format!("/api/approvals/{ap}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved", "{v}");
    let done = s.executed(&ap).await;
    assert_eq!(done.status.as_str(), "executed", "{:?}", done.result);
    assert_eq!(done.result.unwrap()["message_posted"], text);
    s.stop().await;
}

/// Request `action` on the first active case recommending it whose request needs
/// `needed` approvers; returns the approval.
async fn request_needing(s: &TestServer, tok: &str, action: &str, needed: u64) -> Value {
    let (_, v) = get(s, &s.admin, "/api/exceptions?limit=500&sort=revenue").await;
    let mut items = v["items"].as_array().unwrap().clone();
    if needed == 1 {
        items.reverse(); // small orders first
    }
    for c in &items {
        let id = c["id"].as_str().unwrap();
        let (_, d) = get(s, &s.admin, &format!("/api/cases/{id}")).await;
        let recs = d["case"]["exception"]["recommendations"]
            .as_array()
            .unwrap();
        let Some(i) = recs.iter().position(|r| r["action"] == action) else {
            continue;
        };
        // A customer contact carries the exact text the customer will receive.
        let body = if action == "contact_customer" {
            json!({"recommendation": i, "message": "Your order is on its way; we will confirm the date."})
        } else {
            json!({"recommendation": i})
        };
        let (st, v) = post(s, tok, &format!("/api/cases/{id}/actions"), body).await;
        assert_eq!(st, 201, "{v}");
        if v["approval"]["approvers_needed"] == needed {
            return v["approval"].clone();
        }
    }
    panic!("no {action} request needing {needed} approvers in the demo");
}

async fn refused_with(s: &TestServer, tok: &str, ap: &str, needle: &str) {
    let (st, v) = post(s, tok, &format!("/api/approvals/{ap}/approve"), json!({})).await;
    assert_eq!(st, 403, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(needle), "{msg}");
}

async fn requester_may_not_approve(db: Db) {
    let s = TestServer::start(db, 400).await;
    let fin = s.token("fiona", "finance").await;
    let fin2 = s.token("frank", "finance").await;
    // Finance asks to release a credit hold and tries to approve it itself: 403, audited,
    // still pending; another finance user approves it.
    let ap = request_needing(&s, &fin, "release_credit_hold", 1).await;
    let id = ap["id"].as_str().unwrap();
    assert_eq!(ap["requester_may_approve"], false);
    refused_with(&s, &fin, id, "you requested this release_credit_hold").await;
    let (_, v) = get(&s, &fin, &format!("/api/approvals/{id}")).await;
    assert_eq!(v["approval"]["status"], "pending");
    let refused = audit::search(
        &s.app.store,
        &AuditQuery {
            kind: Some("approval.refused".into()),
            actor: Some("fiona".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].event.payload["approval"], id);
    let (st, v) = post(
        &s,
        &fin2,
        &format!("/api/approvals/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved");
    assert_eq!(s.executed(id).await.status.as_str(), "executed");
    // A service rep's own customer contact needs someone else too.
    let rep = s.token("sam", "service_rep").await;
    let ap = request_needing(&s, &rep, "contact_customer", 1).await;
    refused_with(&s, &rep, ap["id"].as_str().unwrap(), "someone else").await;
    // Where the policy allows it (a planner's own reallocation), the requester approves.
    let planner = s.token("pat", "planner").await;
    let ap = request_needing(&s, &planner, "reallocate", 1).await;
    let (st, v) = post(
        &s,
        &planner,
        &format!("/api/approvals/{}/approve", ap["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = get(&s, &s.admin, "/api/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    s.stop().await;
}

async fn second_approver(db: Db) {
    let s = TestServer::start(db, 400).await;
    let rep = s.token("sam", "service_rep").await;
    let f1 = s.token("fiona", "finance").await;
    let f2 = s.token("frank", "finance").await;
    // A hold on an order above 5,000 needs two distinct finance approvers.
    let ap = request_needing(&s, &rep, "release_credit_hold", 2).await;
    let id = ap["id"].as_str().unwrap().to_string();
    let value: f64 = ap["order_value"].as_str().unwrap().parse().unwrap();
    assert!(value > 5_000.0, "{ap}");
    let (st, v) = post(&s, &f1, &format!("/api/approvals/{id}/approve"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["approval"]["status"], "pending", "{v}");
    assert_eq!(v["approval"]["decisions"][0]["by"], "fiona");
    // The same person again does not count twice; the request left the first approver's
    // inbox and waits in the second's.
    refused_with(&s, &f1, &id, "you already approved").await;
    let inbox = |tok: String| {
        let s = &s;
        async move {
            let (_, v) = get(s, &tok, "/api/approvals?status=pending&mine=true").await;
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(!inbox(f1.clone()).await.contains(&id));
    assert!(inbox(f2.clone()).await.contains(&id));
    let (_, v) = get(&s, &s.admin, &format!("/api/approvals/{id}")).await;
    assert_eq!(v["approval"]["status"], "pending");
    let (st, v) = post(&s, &f2, &format!("/api/approvals/{id}/approve"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved", "{v}");
    assert_eq!(s.executed(&id).await.status.as_str(), "executed");
    assert_eq!(v["approval"]["decided_by"], "frank");
    let by: Vec<&str> = v["approval"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["fiona", "frank"]);
    let decided = audit::search(
        &s.app.store,
        &AuditQuery {
            kind: Some("approval.decided".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mine: Vec<_> = decided
        .iter()
        .filter(|r| r.event.payload["approval"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 2, "one event per approver");
    assert!(
        mine.iter()
            .any(|r| r.event.payload["status"] == "pending" && r.event.payload["needed"] == 2)
    );
    s.stop().await;
}

both!(auth_and_routes);
both!(queue_filters_and_errors);
both!(approval_loop);
both!(racing_approvers);
both!(login_rate_limit_and_shutdown);
both!(customer_messages);
both!(requester_may_not_approve);
both!(second_approver);
