//! The web app as the server serves it (every file of `web/` embedded, with its content
//! type, a strict Content-Security-Policy and revalidation by ETag), and the queue filters
//! the app uses (ids for a chart's drill-down, first-seen dates, product, `status=all`,
//! and the filter menus' counts) on SQLite and PostgreSQL. The browser tests are in
//! `tests/e2e/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Db, TestServer, api_get as get, client};
use order_copilot::http::web::{ASSETS, CSP};

fn files_under(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            let rel = p
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel);
        }
    }
}

#[test]
fn every_web_file_is_embedded_and_nothing_else() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut on_disk = BTreeSet::new();
    files_under(&web, &web, &mut on_disk);
    on_disk.remove("README.md");
    let table: BTreeSet<String> = ASSETS.iter().map(|a| a.file.to_string()).collect();
    assert_eq!(
        on_disk, table,
        "web/ and the asset table in src/http/web.rs differ"
    );
    for a in ASSETS {
        let disk = std::fs::read(web.join(a.file)).unwrap();
        assert_eq!(disk, a.body, "{} is stale in the binary", a.file);
    }
}

#[test]
fn every_module_import_names_an_embedded_file() {
    // A module imported by the app but missing from the table would 404 in the browser.
    let urls: BTreeSet<&str> = ASSETS.iter().map(|a| a.url).collect();
    for a in ASSETS.iter().filter(|a| a.file.ends_with(".js")) {
        let text = std::str::from_utf8(a.body).unwrap();
        for part in text
            .split("from \"./")
            .skip(1)
            .chain(text.split("import(\"./").skip(1))
        {
            let name = part.split('"').next().unwrap();
            let url = format!("/js/{name}");
            assert!(
                urls.contains(url.as_str()),
                "{} imports {url}, which is not embedded",
                a.file
            );
        }
    }
}

async fn serves_the_app(db: Db) {
    let s = TestServer::start(db, 120).await;
    let c = client();
    for a in ASSETS {
        let r = c.get(s.url(a.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", a.url);
        let h = r.headers().clone();
        assert_eq!(h["content-type"], a.content_type, "{}", a.url);
        assert_eq!(h["content-security-policy"], CSP);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-cache");
        let etag = h["etag"].to_str().unwrap().to_string();
        assert_eq!(r.bytes().await.unwrap().as_ref(), a.body);
        // Revalidation: the same ETag answers 304 with no body; another one gets the file.
        let r = c
            .get(s.url(a.url))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{}", a.url);
        assert!(r.bytes().await.unwrap().is_empty());
        let r = c
            .get(s.url(a.url))
            .header("if-none-match", "\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The page needs no token; the API still does; unknown paths stay JSON 404s.
    let page = c
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<script type=\"module\" src=\"/js/main.js\">"));
    assert!(
        !page.contains("<script>") && !page.contains(" style="),
        "no inline script or style: the CSP forbids them"
    );
    assert_eq!(
        c.get(s.url("/api/exceptions"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = c.get(s.url("/js/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.post(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    s.stop().await;
}

async fn queue_filters(db: Db) {
    let s = TestServer::start(db, 400).await;
    let admin = s.admin.clone();
    let (st, all) = get(&s, &admin, "/api/exceptions?limit=500").await;
    assert_eq!(st, 200);
    let total = all["total"].as_i64().unwrap();
    assert!(total > 10, "the demo has cases ({total})");
    let items = all["items"].as_array().unwrap();

    // ids: exactly those cases, in queue order, whatever their number.
    let pick: Vec<&str> = items
        .iter()
        .step_by(3)
        .take(7)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let (st, v) = get(
        &s,
        &admin,
        &format!("/api/exceptions?ids={}", pick.join(",")),
    )
    .await;
    assert_eq!(st, 200);
    let got: BTreeSet<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, pick.iter().copied().collect());
    assert_eq!(v["total"], pick.len());
    // ids combine with other filters (AND).
    let kind = items[0]["kind"].as_str().unwrap();
    let (_, v) = get(
        &s,
        &admin,
        &format!("/api/exceptions?kind={kind}&ids={}", pick.join(",")),
    )
    .await;
    let expect = items
        .iter()
        .step_by(3)
        .take(7)
        .filter(|c| c["kind"] == kind)
        .count();
    assert_eq!(v["total"], expect);
    // Bounded: more than 100 ids is refused, an overlong id too.
    let many: Vec<String> = (0..101).map(|i| format!("EX-{i}")).collect();
    let (st, v) = get(
        &s,
        &admin,
        &format!("/api/exceptions?ids={}", many.join(",")),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 100")
    );
    let (st, _) = get(
        &s,
        &admin,
        &format!("/api/exceptions?ids={}", "x".repeat(65)),
    )
    .await;
    assert_eq!(st, 400);

    // First-seen dates: every case was first seen today (UTC).
    let today = chrono::Utc::now().date_naive();
    // Nothing was first seen before today, nor after it.
    for (q, expect) in [
        (format!("opened_from={today}&opened_to={today}"), total),
        (format!("opened_to={}", today.pred_opt().unwrap()), 0),
        (format!("opened_from={}", today.succ_opt().unwrap()), 0),
    ] {
        let (_, v) = get(&s, &admin, &format!("/api/exceptions?{q}&limit=1")).await;
        assert_eq!(v["total"], expect, "{q}");
    }
    let (st, v) = get(&s, &admin, "/api/exceptions?opened_from=26/11/2026").await;
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("opened_from")
    );

    // Product: exact SKU.
    let with_product = items.iter().find(|c| c["product"].is_string()).unwrap();
    let sku = with_product["product"].as_str().unwrap();
    let (_, v) = get(
        &s,
        &admin,
        &format!("/api/exceptions?product={sku}&limit=500"),
    )
    .await;
    let n = items.iter().filter(|c| c["product"] == sku).count();
    assert_eq!(v["total"], n);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["product"] == sku)
    );

    // status=all includes closed cases; the default does not.
    let id = items[0]["id"].as_str().unwrap().to_string();
    s.app
        .decide_case(
            &order_copilot::app::User {
                name: "admin".into(),
                role: "admin".into(),
            },
            &id,
            order_copilot::store::CaseStatus::Dismissed,
            Some("duplicate of another case"),
        )
        .await
        .unwrap();
    let (_, active) = get(&s, &admin, &format!("/api/exceptions?ids={id}")).await;
    assert_eq!(active["total"], 0);
    let (_, every) = get(&s, &admin, &format!("/api/exceptions?ids={id}&status=all")).await;
    assert_eq!(every["total"], 1);
    assert_eq!(every["items"][0]["status"], "dismissed");
    let (_, all2) = get(&s, &admin, "/api/exceptions?status=all&limit=1").await;
    assert_eq!(all2["total"], total);

    // Facets: counts of the active cases per filter value, which the filters reproduce.
    let (st, f) = get(&s, &admin, "/api/exceptions/facets").await;
    assert_eq!(st, 200);
    for (facet, param) in [
        ("kind", "kind"),
        ("owner", "owner"),
        ("severity", "severity"),
        ("warehouse", "warehouse"),
        ("tier", "tier"),
    ] {
        let values = f[facet].as_array().unwrap();
        assert!(!values.is_empty(), "{facet}");
        let mut sum = 0;
        for v in values {
            let value = v["value"].as_str().unwrap();
            let (_, q) = get(
                &s,
                &admin,
                &format!("/api/exceptions?{param}={value}&limit=1"),
            )
            .await;
            assert_eq!(q["total"], v["count"], "{facet}={value}");
            sum += v["count"].as_i64().unwrap();
        }
        if facet != "warehouse" {
            assert_eq!(sum, total - 1, "{facet} counts cover every active case");
        }
    }
    // Any role may read the facets (they are the queue's, which every role reads).
    let rep = s.token("rita", "service_rep").await;
    let (st, _) = get(&s, &rep, "/api/exceptions/facets").await;
    assert_eq!(st, 200);
    s.stop().await;
}

both!(serves_the_app);
both!(queue_filters);
