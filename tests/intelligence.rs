//! The operational-intelligence API on a real server, on SQLite and on PostgreSQL:
//! trends, revenue at risk, backlog and recommendation statistics, checked against the
//! queue they summarise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{Db, TestServer, api_get as get, api_post as post, client};
use serde_json::{Value, json};

fn dec(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

async fn intelligence(db: Db) {
    let s = TestServer::start(db, 400).await;
    let rep = s.token("sam", "service_rep").await;
    let planner = s.token("pat", "planner").await;

    // Trends: every grouping answers; today's bucket holds every case detected today.
    let (_, status) = get(&s, &rep, "/api/status").await;
    let open_cases = status["cases"]["open"].as_i64().unwrap();
    assert!(open_cases > 0);
    let (st, t) = get(&s, &rep, "/api/intelligence/trends").await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        (t["by"].as_str(), t["bucket"].as_str()),
        (Some("kind"), Some("day"))
    );
    let series = t["series"].as_array().unwrap();
    assert!(!series.is_empty());
    for x in series {
        assert_eq!(x["points"].as_array().unwrap().len(), 90);
    }
    let today: i64 = series
        .iter()
        .map(|x| x["points"][89]["count"].as_i64().unwrap())
        .sum();
    assert!(today >= open_cases, "{today} < {open_cases}");
    // The past exceptions fill the earlier buckets.
    let earlier: i64 = series
        .iter()
        .flat_map(|x| x["points"].as_array().unwrap()[..89].iter())
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert!(earlier > 0);
    for by in ["customer", "supplier", "warehouse", "route"] {
        let (st, t) = get(
            &s,
            &rep,
            &format!("/api/intelligence/trends?by={by}&days=365&bucket=week"),
        )
        .await;
        assert_eq!(st, 200, "{by}: {t}");
        assert_eq!(t["by"], by);
        assert!(!t["series"].as_array().unwrap().is_empty(), "{by}: {t}");
        assert!(t["series"].as_array().unwrap().len() <= 12);
    }
    let (_, t) = get(&s, &rep, "/api/intelligence/trends?by=route&days=7").await;
    assert!(t["series"][0]["key"].as_str().unwrap().contains('→'), "{t}");
    for bad in [
        "/api/intelligence/trends?days=0",
        "/api/intelligence/trends?days=731",
        "/api/intelligence/trends?by=planet",
        "/api/intelligence/trends?bucket=month",
        "/api/intelligence/at-risk?limit=101",
        "/api/intelligence/at-risk?by=kind",
    ] {
        let (st, v) = get(&s, &rep, bad).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }

    // At risk: sorted, linked to real cases, sums add up. Margins are for the roles that
    // may see them (data_access.toml): a planner, not a service rep.
    let (st, withheld) = get(&s, &rep, "/api/intelligence/at-risk?by=customer&limit=100").await;
    assert_eq!(st, 200, "{withheld}");
    assert_eq!(
        withheld["rows"][0]["margin_at_risk"],
        "[withheld: costs_margins — not visible to service_rep]"
    );
    let (st, r) = get(
        &s,
        &planner,
        "/api/intelligence/at-risk?by=customer&limit=100",
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["currency"], "EUR");
    let rows = r["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    let revenue: Vec<f64> = rows.iter().map(|x| dec(&x["revenue_at_risk"])).collect();
    assert!(revenue.windows(2).all(|w| w[0] >= w[1]));
    for x in rows {
        assert!(dec(&x["margin_at_risk"]) <= dec(&x["revenue_at_risk"]) + 0.01);
        assert!(
            x["case_ids"].as_array().unwrap().len() as i64 <= x["cases"].as_i64().unwrap().min(50)
        );
    }
    let first = rows[0]["case_ids"][0].as_str().unwrap();
    let (st, c) = get(&s, &rep, &format!("/api/cases/{first}")).await;
    assert_eq!(st, 200);
    assert_eq!(c["case"]["customer"], rows[0]["label"]);
    for by in ["supplier", "warehouse"] {
        let (st, r) = get(
            &s,
            &rep,
            &format!("/api/intelligence/at-risk?by={by}&limit=5"),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        assert!(r["rows"].as_array().unwrap().len() <= 5);
        assert!(!r["rows"].as_array().unwrap().is_empty(), "{by}: {r}");
    }

    // Backlog: the open counts are the queue's.
    let (st, b) = get(&s, &rep, "/api/intelligence/backlog").await;
    assert_eq!(st, 200, "{b}");
    let open: i64 = b["open_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["count"].as_i64().unwrap())
        .sum();
    assert_eq!(open, open_cases);
    assert_eq!(b["daily"].as_array().unwrap().len(), 30);
    assert_eq!(b["daily"][29]["open"].as_i64().unwrap(), open_cases);
    for c in b["cycle_time_hours"].as_array().unwrap() {
        assert!(c["p50"].as_f64().unwrap() <= c["p90"].as_f64().unwrap());
    }

    // Recommendations: one accepted, one overridden (rejected), one dismissed.
    let (_, v) = get(&s, &rep, "/api/exceptions?kind=allocation_conflict&limit=3").await;
    let ids: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 3, "{v}");
    let before = rec_row(&s, &rep, "allocation_conflict").await;
    for (i, decision) in ["approve", "reject"].iter().enumerate() {
        let (st, v) = post(
            &s,
            &planner,
            &format!("/api/cases/{}/actions", ids[i]),
            json!({"recommendation": 0}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let ap = v["approval"]["id"].as_str().unwrap();
        let (st, v) = post(
            &s,
            &planner,
            &format!("/api/approvals/{ap}/{decision}"),
            json!({"reason": "test"}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, v) = post(
        &s,
        &planner,
        &format!("/api/cases/{}/dismiss", ids[2]),
        json!({"reason": "known"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let after = rec_row(&s, &rep, "allocation_conflict").await;
    assert_eq!(
        after["accepted"].as_i64().unwrap(),
        before["accepted"].as_i64().unwrap() + 1
    );
    assert_eq!(
        after["overridden"].as_i64().unwrap(),
        before["overridden"].as_i64().unwrap() + 1
    );
    assert_eq!(
        after["dismissed"].as_i64().unwrap(),
        before["dismissed"].as_i64().unwrap() + 1
    );
    assert!(after["proposed"].as_i64().unwrap() >= 3);
    assert_eq!(after["override_rate"].as_f64().unwrap(), 0.5);

    // A token is required.
    let r = client()
        .get(s.url("/api/intelligence/backlog"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

async fn rec_row(s: &TestServer, token: &str, kind: &str) -> Value {
    let (st, v) = get(s, token, "/api/intelligence/recommendations").await;
    assert_eq!(st, 200, "{v}");
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| json!({"accepted": 0, "overridden": 0, "dismissed": 0, "proposed": 0}))
}

both!(intelligence);
