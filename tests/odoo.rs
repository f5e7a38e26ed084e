//! The Odoo connector against `FakeOdoo` (a wire-exact double checked against the recorded
//! exchanges in ../shared/odoo/recordings): client, source, executor, bot, for the 17, 18
//! and 19 shapes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use order_copilot::core;
use order_copilot::demo::{self, DemoConfig};
use order_copilot::domain::{OrderState, PurchaseState, Snapshot, SupplyLink};
use order_copilot::odoo::client::{ClientOptions, Credentials, OdooClient, Secret};
use order_copilot::odoo::config::OdooConfig;
use order_copilot::odoo::fake::{FakeConfig, FakeOdoo};
use order_copilot::odoo::source::OdooSource;
use order_copilot::odoo::wire;
use order_copilot::policy::Policy;
use serde_json::{Map, Value, json};

fn demo_snapshot(orders: usize) -> Snapshot {
    demo::generate(
        &DemoConfig {
            seed: 42,
            orders,
            now: Utc::now(),
        },
        &mut |_, _, _| {},
    )
}

/// The demo's facts Odoo does not hold, as an installation would configure them.
fn test_config() -> OdooConfig {
    let text = order_copilot::odoo::config::DEFAULT
        .replace(
            "[warehouses]\n# Hours an inter-warehouse transfer takes, and the transfer pool, unless overridden by\n# warehouse code below.\ntransfer_hours = 24\npool = 1\noverrides = {}",
            "[warehouses]\ntransfer_hours = 24\npool = 1\noverrides = { WH3 = { transfer_hours = 48 } }",
        )
        .replace(
            "transit_hours = 48\noverrides = {}",
            "transit_hours = 48\noverrides = { \"DHL Freight\" = { transit_hours = 36, on_time_rate = 0.94 }, \"DB Schenker\" = { transit_hours = 48, on_time_rate = 0.91 }, \"PostNL Pakketten\" = { transit_hours = 24, on_time_rate = 0.96 }, \"Geodis\" = { transit_hours = 48, on_time_rate = 0.84 }, \"Budget Road Lines\" = { transit_hours = 72, on_time_rate = 0.71 } }",
        )
        .replace("roles = {}", "roles = { admin = \"admin\", demo = \"service_rep\" }");
    OdooConfig::parse("test", &text).unwrap()
}

async fn connect(
    fake: &FakeOdoo,
    login: &str,
) -> Result<OdooClient, order_copilot::odoo::wire::OdooError> {
    connect_at(fake, login, fake.url(), None).await
}

/// Connect as `login` to `url` (the fake's, or its HTTPS twin), trusting `ca_file`.
async fn connect_at(
    fake: &FakeOdoo,
    login: &str,
    url: String,
    ca_file: Option<PathBuf>,
) -> Result<OdooClient, order_copilot::odoo::wire::OdooError> {
    let u = fake.user(login).unwrap();
    OdooClient::connect(
        Credentials {
            url,
            db: fake.db(),
            login: login.into(),
            api_key: Secret::new(u.key),
        },
        ClientOptions {
            timeout: std::time::Duration::from_secs(10),
            retries: 1,
            backoff: std::time::Duration::from_millis(20),
            ca_file,
            ..ClientOptions::default()
        },
    )
    .await
}

fn kinds(snap: &Snapshot) -> BTreeSet<(String, String)> {
    let policy = Policy::embedded().unwrap();
    core::detect(snap, &policy, snap.taken_at)
        .exceptions
        .iter()
        .map(|e| (e.kind.as_str().to_string(), e.order_ref.clone()))
        .collect()
}

// ---- contract tests on the recordings ------------------------------------------------------

/// The recorded exchanges: `$ODOO_RECORDINGS` or `../shared/odoo/recordings` beside the repo.
fn recordings() -> Option<Vec<(String, String, Value)>> {
    let dir = std::env::var("ODOO_RECORDINGS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/odoo/recordings")
        });
    if !dir.is_dir() {
        eprintln!(
            "NOT RUN: no Odoo recordings at {} (set ODOO_RECORDINGS)",
            dir.display()
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the Odoo recordings are required under CI"
        );
        return None;
    }
    let mut out = Vec::new();
    for v in ["17", "18"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(v))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((
                v.to_string(),
                p.file_name().unwrap().to_string_lossy().to_string(),
                serde_json::from_str(&text).unwrap(),
            ));
        }
    }
    assert!(
        out.len() > 200,
        "expected the full set of recordings, found {}",
        out.len()
    );
    Some(out)
}

fn no_nulls(v: &Value, at: &str) {
    match v {
        Value::Null => panic!("null at {at}: Odoo sends false for empty values"),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| no_nulls(x, &format!("{at}[{i}]"))),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| no_nulls(x, &format!("{at}.{k}"))),
        _ => {}
    }
}

/// Every recorded answer decodes: results through the client's decoders, errors into the
/// typed error their `error.data.name` names.
#[test]
fn contract_every_recorded_response_decodes() {
    let Some(recs) = recordings() else { return };
    let mut decoded = 0;
    for (v, name, r) in &recs {
        let body = r["response"]["body"].clone();
        if name.starts_with("webhook_received") {
            let payload = &r["request"]["body"];
            if payload["_model"] == "mail.message" {
                let m = order_copilot::odoo::bot::Incoming::from_value(payload)
                    .unwrap_or_else(|| panic!("{v}/{name}"));
                assert!(
                    m.id > 0 && m.author.is_some() && m.body.is_some() && !m.model.is_empty(),
                    "{v}/{name}"
                );
            } else {
                assert!(
                    order_copilot::odoo::bot::Incoming::from_value(payload).is_none(),
                    "{v}/{name}: not a message"
                );
            }
            decoded += 1;
            continue;
        }
        assert_eq!(
            r["response"]["status"], 200,
            "{v}/{name}: JSON-RPC answers HTTP 200, errors included"
        );
        match wire::jsonrpc_result(body.clone()) {
            Ok(result) => {
                no_nulls(&result, name);
                if let Ok(rows) = wire::records(result.clone()) {
                    for row in &rows {
                        for (k, x) in row {
                            if let Value::Array(a) = x
                                && a.len() == 2
                                && a[0].is_i64()
                                && (a[1].is_string() || a[1] == false)
                            {
                                assert!(wire::m2o(x).is_some(), "{v}/{name}: {k}");
                            }
                            if let Some(s) = x.as_str()
                                && s.len() >= 10
                                && s.as_bytes()[4] == b'-'
                                && s.as_bytes()[7] == b'-'
                                && s[..4].chars().all(|c| c.is_ascii_digit())
                            {
                                assert!(wire::datetime(x).is_some(), "{v}/{name}: {k}={s}");
                            }
                        }
                    }
                } else if name.starts_with("write_") && name.contains("message_post")
                    || name.contains("activity_schedule")
                {
                    assert!(wire::record_id(&result).is_some(), "{v}/{name}: {result}");
                }
            }
            Err(e) => {
                let class = body["error"]["data"]["name"].as_str().unwrap();
                assert_eq!(body["error"]["code"], 200);
                let expected = match class {
                    "odoo.exceptions.AccessDenied" => matches!(e, wire::OdooError::AccessDenied(_)),
                    "odoo.exceptions.AccessError" => matches!(e, wire::OdooError::AccessError(_)),
                    "odoo.exceptions.ValidationError" => {
                        matches!(e, wire::OdooError::Validation(_))
                    }
                    "odoo.exceptions.UserError" => matches!(e, wire::OdooError::UserError(_)),
                    "odoo.exceptions.MissingError" => {
                        matches!(e, wire::OdooError::MissingRecord(_))
                    }
                    "builtins.ValueError" => matches!(e, wire::OdooError::BadQuery(_)),
                    "builtins.AttributeError" => matches!(e, wire::OdooError::UnknownMethod(_)),
                    "psycopg2.OperationalError" => matches!(e, wire::OdooError::UnknownDatabase(_)),
                    _ => false,
                };
                assert!(expected, "{v}/{name}: {class} decoded as {e:?}");
                // The server's own message is kept.
                let msg = body["error"]["data"]["message"].as_str().unwrap();
                assert!(e.to_string().contains(msg.trim()), "{v}/{name}");
            }
        }
        decoded += 1;
    }
    assert_eq!(decoded, recs.len());
    eprintln!("decoded {decoded} recorded responses");
}

/// The JSON kind of a value, with Odoo's `false` standing for "empty" of any type.
fn compatible(rec: &Value, fake: &Value) -> bool {
    match (rec, fake) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Bool(false), _) | (_, Value::Bool(false)) => true,
        (Value::Array(a), Value::Array(b)) => {
            // many2one pairs stay pairs; id lists stay id lists.
            let pair = |x: &[Value]| x.len() == 2 && x[0].is_i64() && !x[1].is_i64();
            if pair(a) || pair(b) {
                pair(a) && pair(b)
            } else {
                true
            }
        }
        (Value::Number(a), Value::Number(b)) => a.is_f64() == b.is_f64(),
        (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

fn same_shape(rec: &Value, fake: &Value, what: &str) -> Result<(), String> {
    no_nulls(fake, what);
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default()
    };
    if keys(rec) != keys(fake) {
        return Err(format!(
            "{what}: envelope keys {:?} vs {:?}",
            keys(rec),
            keys(fake)
        ));
    }
    if let Some(err) = rec.get("error") {
        let fe = &fake["error"];
        if keys(err) != keys(fe) || keys(&err["data"]) != keys(&fe["data"]) {
            return Err(format!("{what}: error object keys differ: {err} vs {fe}"));
        }
        if err["data"]["name"] != fe["data"]["name"]
            || err["code"] != fe["code"]
            || err["message"] != fe["message"]
        {
            return Err(format!(
                "{what}: error {} vs {}",
                err["data"]["name"], fe["data"]["name"]
            ));
        }
        return Ok(());
    }
    let (r, f) = (&rec["result"], &fake["result"]);
    match (r, f) {
        (Value::Array(ra), Value::Array(fa)) => {
            let first = ra.iter().find(|x| x.is_object());
            for (i, row) in fa.iter().enumerate() {
                match (first, row) {
                    (Some(Value::Object(model)), Value::Object(o)) => {
                        let (mk, ok): (BTreeSet<_>, BTreeSet<_>) =
                            (model.keys().collect(), o.keys().collect());
                        // read_group rows carry the aggregates recorded; records the fields asked.
                        if mk != ok {
                            return Err(format!("{what}: row {i} keys {mk:?} vs {ok:?}"));
                        }
                        for (k, x) in model {
                            if !compatible(x, &o[k]) {
                                return Err(format!(
                                    "{what}: field {k}: recorded {x} vs fake {}",
                                    o[k]
                                ));
                            }
                        }
                    }
                    (None, Value::Object(_)) if !ra.is_empty() => {
                        return Err(format!("{what}: records where the recording has {r}"));
                    }
                    (_, x) if ra.first().is_some_and(|y| !compatible(y, x)) => {
                        return Err(format!("{what}: item {x} vs {}", ra[0]));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        (Value::Object(ro), Value::Object(fo)) => {
            // fields_get: the fields both have agree in type and attribute keys.
            let mut common = 0;
            for (k, x) in ro {
                if let Some(y) = fo.get(k) {
                    common += 1;
                    if x.get("type") != y.get("type") || keys(x) != keys(y) {
                        return Err(format!("{what}: {k}: {x} vs {y}"));
                    }
                }
            }
            if common == 0 && !ro.is_empty() {
                return Err(format!("{what}: no field in common"));
            }
            Ok(())
        }
        (Value::String(a), Value::String(b)) => {
            if wire::record_id(r).is_some() != wire::record_id(f).is_some() {
                return Err(format!("{what}: {a} vs {b}"));
            }
            Ok(())
        }
        (a, b) if compatible(a, b) => Ok(()),
        (a, b) => Err(format!("{what}: result {a} vs {b}")),
    }
}

/// Recordings whose answer depends on the recorded database's particular records (a partner
/// hierarchy, a category tree) rather than on the wire format.
const DATA_DEPENDENT: &[&str] = &[
    "error_validation_write_recursive_partner.json",
    "error_validation_write_recursive_tag.json",
];

/// Every recorded request, replayed against the fake of the same version, gets an answer of
/// the same shape: envelope, error objects (HTTP 200), keys, types, false-vs-null, pairs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_answers_every_recorded_request_in_the_recorded_shape() {
    let Some(recs) = recordings() else { return };
    let demo = demo_snapshot(300);
    let mut fakes = std::collections::HashMap::new();
    for v in [17u32, 18] {
        fakes.insert(
            v.to_string(),
            FakeOdoo::start(
                FakeConfig {
                    duplicate_webhooks: false,
                    ..FakeConfig::version(v)
                },
                &demo,
            )
            .await
            .unwrap(),
        );
    }
    let http = order_copilot::outbound::client_builder().build().unwrap();
    let (mut replayed, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    for (v, name, r) in &recs {
        if name.starts_with("webhook_received") || DATA_DEPENDENT.contains(&name.as_str()) {
            skipped.push(format!("{v}/{name}"));
            continue;
        }
        let fake = &fakes[v];
        let mut body = r["request"]["body"].clone();
        let params = body["params"].as_object_mut().unwrap();
        let service = params["service"].as_str().unwrap().to_string();
        let method = params["method"].as_str().unwrap().to_string();
        let args = params["args"].as_array_mut().unwrap();
        let wrong_password = name.contains("wrong_password");
        if service == "common" && (method == "login" || method == "authenticate") {
            if args[0].as_str().unwrap().starts_with("demo") {
                args[0] = json!(fake.db());
            }
            let login = args[1].as_str().unwrap().to_string();
            args[2] = json!(if wrong_password {
                "wrong".to_string()
            } else {
                fake.user(&login).unwrap().key
            });
        }
        if service == "object" {
            args[0] = json!(fake.db());
            let uid = args[1].as_i64().unwrap();
            let user = match uid {
                8 => fake.user("bot"),
                9 => fake.user("salesonly"),
                _ => fake.user("admin"),
            }
            .unwrap();
            if uid != 999 {
                args[1] = json!(user.id);
            }
            args[2] = json!(if wrong_password {
                "wrong".to_string()
            } else {
                user.key
            });
            // Record ids of the recorded database → a record of the same model in the fake.
            let model = args[3].as_str().unwrap().to_string();
            let first_id = fake.with_db(|db| {
                db.models
                    .get(&model)
                    .and_then(|m| m.rows.keys().next().copied())
            });
            if let Some(Value::Array(pos)) = args.get_mut(5)
                && let Some(Value::Array(ids)) = pos.first_mut()
                && ids.iter().all(Value::is_i64)
            {
                for id in ids.iter_mut() {
                    let x = id.as_i64().unwrap();
                    let exists = fake.with_db(|db| {
                        db.models
                            .get(&model)
                            .is_some_and(|m| m.rows.contains_key(&x))
                    });
                    if x < 999
                        && !exists
                        && let Some(f) = first_id
                    {
                        *id = json!(f);
                    }
                }
            }
        }
        let answer: Value = http
            .post(format!("{}/jsonrpc", fake.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        replayed += 1;
        if let Err(e) = same_shape(&r["response"]["body"], &answer, &format!("{v}/{name}")) {
            failures.push(e);
        }
    }
    eprintln!(
        "replayed {replayed} recorded requests; skipped {}: {skipped:?}",
        skipped.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {replayed} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(replayed > 180);
}

// ---- the source ----------------------------------------------------------------------------

async fn round_trip(version: u32) {
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(version), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "admin").await.unwrap());
    assert_eq!(client.version().major, version);
    let source = OdooSource::new(client, test_config());
    let snap = source.refresh().await.unwrap();
    assert_eq!(snap.orders.len(), demo.orders.len());
    assert_eq!(snap.lines.len(), demo.lines.len());
    // Partners are read by reference: the customers of the orders and invoices, the
    // vendors of the purchase orders (not every partner with a rank).
    let customers: BTreeSet<u32> = demo
        .orders
        .iter()
        .map(|o| o.customer)
        .chain(demo.invoices.iter().map(|i| i.customer))
        .collect();
    let suppliers: BTreeSet<u32> = demo.inbound.iter().map(|l| l.supplier).collect();
    assert_eq!(snap.customers.len(), customers.len());
    assert_eq!(snap.suppliers.len(), suppliers.len());
    assert_eq!(snap.products.len(), demo.products.len());
    assert_eq!(snap.stock.len(), demo.stock.len());
    assert_eq!(snap.pickings.len(), demo.pickings.len());
    assert_eq!(snap.inbound.len(), demo.inbound.len());
    assert_eq!(snap.invoices.len(), demo.invoices.len());
    assert_eq!(
        snap.contract_prices.len(),
        demo.contract_prices
            .iter()
            .filter(|c| customers.contains(&c.customer))
            .count()
    );
    assert_eq!(snap.changes.len(), demo.changes.len());
    // Payment history comes back from the receivable lines and their reconciliations.
    let mut with_history = 0;
    for c in &snap.customers {
        let d = demo
            .customers
            .iter()
            .find(|d| d.reference == c.reference)
            .unwrap();
        let (got, want) = (&c.payments, &d.payments);
        // The demo keeps an average even when nothing was late; Odoo's records cannot.
        let avg = |h: &order_copilot::domain::PaymentHistory| {
            if h.paid_late > 0 {
                h.avg_days_late
            } else {
                0.0
            }
        };
        assert_eq!(
            (got.invoices_paid, got.paid_late, avg(got)),
            (want.invoices_paid, want.paid_late, avg(want)),
            "v{version}: {}",
            c.name
        );
        with_history += usize::from(got.invoices_paid > 0);
        let open = demo
            .invoices
            .iter()
            .filter(|i| {
                i.customer as usize
                    == demo
                        .customers
                        .iter()
                        .position(|x| x.reference == c.reference)
                        .unwrap()
            })
            .min_by_key(|i| (i.due_date, i.id));
        assert_eq!(
            got.oldest_open.as_ref().map(|o| o.id),
            open.map(|i| i.id),
            "v{version}: {}",
            c.name
        );
    }
    assert!(with_history > 10, "{with_history}");
    assert!(
        source.sync_status().warnings.is_empty(),
        "{:?}",
        source.sync_status().warnings
    );
    // The core finds the same exceptions in what came through Odoo as in the demo itself,
    // except supplier slips: Odoo keeps no first planned date of a purchase line.
    let a = kinds(&demo);
    let mut through = (*snap).clone();
    through.taken_at = demo.taken_at;
    let b = kinds(&through);
    let only_odoo: Vec<_> = b.difference(&a).collect();
    let only_demo: Vec<_> = a
        .difference(&b)
        .filter(|(k, _)| k != "supplier_delay")
        .collect();
    assert!(
        only_odoo.is_empty() && only_demo.is_empty(),
        "v{version}: only via Odoo {only_odoo:?}, only in the demo {only_demo:?}"
    );
    assert!(b.len() > 40, "{}", b.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_16() {
    round_trip(16).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_17() {
    round_trip(17).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_18() {
    round_trip(18).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_19_json2() {
    round_trip(19).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_and_last_good_snapshot() {
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(18), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "admin").await.unwrap());
    let source = OdooSource::new(client.clone(), test_config());
    let first = source.refresh().await.unwrap();
    let full_calls = source.sync_status().full_load_calls;
    assert!(full_calls > 20, "{full_calls}");
    // Change a promised date and cancel an order through the API, as users would.
    let (o1, o2) = (&first.orders[0], &first.orders[1]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client
        .write(
            "sale.order",
            &[o1.id],
            json!({"commitment_date": "2030-01-02 03:04:05"}),
        )
        .await
        .unwrap();
    client
        .write("sale.order", &[o2.id], json!({"state": "cancel"}))
        .await
        .unwrap();
    let second = source.refresh().await.unwrap();
    let st = source.sync_status();
    assert!(st.incremental_calls.unwrap() < full_calls, "{st:?}");
    assert!(st.incremental_changes >= 2, "{st:?}");
    let (_, o) = second.order_by_name(&o1.name).unwrap();
    assert_eq!(
        o.promised.map(wire::format_datetime).as_deref(),
        Some("2030-01-02 03:04:05")
    );
    assert!(
        second.order_by_name(&o2.name).is_none(),
        "a cancelled order leaves the snapshot"
    );
    assert_eq!(second.orders.len(), first.orders.len() - 1);
    // Odoo down: the last good snapshot is served, with its staleness and the error.
    fake.set_down(true);
    let third = source.refresh().await.unwrap();
    assert!(Arc::ptr_eq(&second, &third));
    let st = source.sync_status();
    assert!(st.last_error.as_deref().unwrap().contains("503"), "{st:?}");
    assert!(st.stale_seconds.is_some());
    let status = order_copilot::app::source::Source::status(&source);
    assert!(
        status["last_error"].is_string() && status["stale_seconds"].is_number(),
        "{status}"
    );
    fake.set_down(false);
    source.refresh().await.unwrap();
    assert!(source.sync_status().last_error.is_none());
}

/// The rows of a real server's answer recorded in `tests/fixtures/odoo/{version}_{name}.json`.
fn real_rows(version: u32, name: &str) -> (Value, Vec<Map<String, Value>>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/odoo/{version}_{name}.json"));
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let body = rec["response"]["body"].clone();
    let rows = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    (body, rows)
}

/// Recorded from the real 17 and 18 (`tests/fixtures/odoo`): confirming an order gives its
/// delivery the commitment date — else the order's expected date — as both `scheduled_date`
/// and `date_deadline` (so shipment_delay adds no transit to it); FakeOdoo answers the
/// same read in the same shape and sets the deadline by the same rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_planned_as_the_real_server_plans_them() {
    let demo = demo_snapshot(50);
    for version in [17u32, 18] {
        let (_, orders) = real_rows(version, "sale_orders_confirmed");
        let (body, picks) = real_rows(version, "deliveries_of_confirmed_orders");
        assert_eq!(picks.len(), 2);
        let promise = |o: &Map<String, Value>| match &o["commitment_date"] {
            Value::Bool(false) => o["expected_date"].clone(),
            d => d.clone(),
        };
        for p in &picks {
            let o = orders.iter().find(|o| o["id"] == p["sale_id"][0]).unwrap();
            assert_eq!(p["date_deadline"], promise(o), "v{version} {p:?}");
            assert_eq!(p["scheduled_date"], promise(o), "v{version} {p:?}");
        }
        let fake = FakeOdoo::start(FakeConfig::version(version), &demo)
            .await
            .unwrap();
        let client = connect(&fake, "admin").await.unwrap();
        let fields: Vec<&str> = picks[0]
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "id")
            .collect();
        let fake_picks = client
            .search_read_all("stock.picking", json!([]), &fields, 1000)
            .await
            .unwrap();
        let envelope = json!({"jsonrpc": "2.0", "id": 1, "result": fake_picks});
        same_shape(&body, &envelope, "stock.picking").unwrap();
        let fake_orders = client
            .search_read_all(
                "sale.order",
                json!([]),
                &["commitment_date", "date_order"],
                1000,
            )
            .await
            .unwrap();
        for p in &fake_picks {
            let o = fake_orders
                .iter()
                .find(|o| o["id"] == p["sale_id"][0])
                .unwrap();
            let want = match &o["commitment_date"] {
                Value::Bool(false) => &o["date_order"],
                d => d,
            };
            assert_eq!(&p["date_deadline"], want, "v{version} fake {p:?}");
        }
    }
}

/// A file attached in a delivery's chatter (uploaded, then posted with the message) is the
/// delivery's document: the real server re-links the upload to the record it is posted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_posted_in_a_deliverys_chatter_is_its_document() {
    use order_copilot::domain::{DocumentKind, PickingState};
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(17), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "admin").await.unwrap());
    let source = OdooSource::new(client.clone(), test_config());
    let first = source.refresh().await.unwrap();
    let pk = first
        .pickings
        .iter()
        .find(|p| {
            p.state == PickingState::Done
                && !p.documents_present.contains(&DocumentKind::ProofOfDelivery)
        })
        .expect("a shipped delivery without proof of delivery in the demo");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let att = client
        .create(
            "ir.attachment",
            json!({"name": "POD-signed.pdf", "res_model": "mail.compose.message", "res_id": 0}),
        )
        .await
        .unwrap();
    let mut kw = Map::new();
    kw.insert("body".into(), json!("signed POD"));
    kw.insert("attachment_ids".into(), json!([att]));
    client
        .call("stock.picking", "message_post", vec![json!([pk.id])], kw)
        .await
        .unwrap();
    let second = source.refresh().await.unwrap();
    let after = second.pickings.iter().find(|p| p.id == pk.id).unwrap();
    assert!(
        after
            .documents_present
            .contains(&DocumentKind::ProofOfDelivery),
        "{after:?}"
    );
}

/// Partners' credit limits apply while the company has them on (Settings → Customer Credit
/// Limit), as in Odoo; turned off, the limits left on partners are not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_limits_follow_the_company_setting() {
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(18), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "admin").await.unwrap());
    let on = OdooSource::new(client.clone(), test_config())
        .refresh()
        .await
        .unwrap();
    assert!(on.customers.iter().any(|c| c.credit_limit.is_some()));
    client
        .write(
            "res.company",
            &[1],
            json!({"account_use_credit_limit": false}),
        )
        .await
        .unwrap();
    let off = OdooSource::new(client, test_config())
        .refresh()
        .await
        .unwrap();
    assert!(off.customers.iter().all(|c| c.credit_limit.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_accounting_rights_degrade_credit_checks() {
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(17), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "salesonly").await.unwrap());
    let source = OdooSource::new(client, test_config());
    let snap = source.refresh().await.unwrap();
    assert!(snap.customers.iter().all(|c| c.credit_limit.is_none()));
    assert!(demo.customers.iter().any(|c| c.credit_limit.is_some()));
    let w = source.sync_status().warnings.join("\n");
    assert!(
        w.contains("credit_limit") && w.contains("accounting group"),
        "{w}"
    );
    // Odoo's "Personal Invoice Lines" rule: a salesman sees the invoices' receivable lines
    // (no salesperson set) but not the payments' entries; the history still adds up, since
    // whatever settled an invoice that is not a credit note is a payment.
    let payments = json!([["move_id.move_type", "=", "entry"]]);
    let admin = connect(&fake, "admin").await.unwrap();
    assert!(
        !admin
            .search_read_all("account.move.line", payments.clone(), &["id"], 100)
            .await
            .unwrap()
            .is_empty()
    );
    let sales = source.client();
    assert!(
        sales
            .search_read_all("account.move.line", payments, &["id"], 100)
            .await
            .unwrap()
            .is_empty()
    );
    let paid = |s: &order_copilot::domain::Snapshot| -> u32 {
        s.customers.iter().map(|c| c.payments.invoices_paid).sum()
    };
    assert!(paid(&snap) > 0);
    assert_eq!(
        paid(&snap),
        demo.customers
            .iter()
            .filter(|d| snap.customers.iter().any(|c| c.reference == d.reference))
            .map(|d| d.payments.invoices_paid)
            .sum::<u32>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_typed_and_credentials_stay_out() {
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(17), &demo)
        .await
        .unwrap();
    let admin = fake.user("admin").unwrap();
    let bad = OdooClient::connect(
        Credentials {
            url: fake.url(),
            db: fake.db(),
            login: "admin".into(),
            api_key: Secret::new("wrong"),
        },
        ClientOptions::default(),
    )
    .await;
    assert!(
        matches!(bad, Err(wire::OdooError::AccessDenied(_))),
        "{bad:?}"
    );
    let bad = OdooClient::connect(
        Credentials {
            url: fake.url(),
            db: "nope".into(),
            login: "admin".into(),
            api_key: Secret::new(admin.key.clone()),
        },
        ClientOptions::default(),
    )
    .await;
    assert!(
        matches!(bad, Err(wire::OdooError::UnknownDatabase(_))),
        "{bad:?}"
    );
    let c = connect(&fake, "admin").await.unwrap();
    assert!(!format!("{c:?}").contains(&admin.key));
    let e = c
        .search_read(
            "sale.order",
            json!([["no_such_field", "=", 1]]),
            &["name"],
            None,
            0,
            Some(1),
        )
        .await;
    assert!(matches!(e, Err(wire::OdooError::BadQuery(_))), "{e:?}");
    let e = c
        .write("sale.order", &[999_999], json!({"client_order_ref": "x"}))
        .await;
    assert!(matches!(e, Err(wire::OdooError::MissingRecord(_))), "{e:?}");
    let e = c
        .call("sale.order", "no_such_method", vec![json!([1])], Map::new())
        .await;
    assert!(matches!(e, Err(wire::OdooError::UnknownMethod(_))), "{e:?}");
    // Pagination, counts, read_group, fields_get.
    let n = c.search_count("sale.order", json!([])).await.unwrap();
    assert_eq!(n as usize, demo.orders.len());
    let all = c
        .search_read_all("sale.order", json!([]), &["name"], 7)
        .await
        .unwrap();
    assert_eq!(all.len(), demo.orders.len());
    let groups = c
        .read_group(
            "stock.quant",
            json!([["location_id.usage", "=", "internal"]]),
            &["quantity:sum"],
            &["location_id"],
            false,
        )
        .await
        .unwrap();
    assert_eq!(groups.len(), demo.warehouses.len());
    assert!(
        groups
            .iter()
            .all(|g| g["__count"].as_i64().unwrap() > 0 && wire::m2o(&g["location_id"]).is_some())
    );
    let f = c.fields_get("sale.order").await.unwrap();
    assert_eq!(f["commitment_date"]["type"], "datetime");
    // A server that is not there: a transport error after bounded retries.
    drop(fake);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = std::time::Instant::now();
    let e = c.search_count("sale.order", json!([])).await;
    assert!(matches!(e, Err(wire::OdooError::Transport(_))), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

// ---- HTTPS: FakeOdoo behind TLS, its certificate signed by a private CA ---------------------

/// A throwaway CA and a certificate for `127.0.0.1` it signed, made by the openssl CLI.
struct Pki {
    /// Removed with everything in it when the `Pki` is dropped.
    dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the HTTPS tests need the openssl CLI (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(name: &str) -> Pki {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("oc-odoo-tls-{name}-"))
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=order-copilot test CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=odoo.test"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        dir: tmp,
    }
}

/// Accepts TCP connections and completes a TLS handshake on each before axum sees it.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            // A client that distrusts the certificate aborts the handshake: wait for the next.
            if let Ok(tls) = self.tls.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// FakeOdoo 17 over HTTPS with `pki`'s server certificate, and its `https://` URL.
async fn fake_over_tls(pki: &Pki, demo: &Snapshot) -> (FakeOdoo, String) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&pki.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let listener = TlsListener {
        tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
    };
    let fake = FakeOdoo::start_on(listener, FakeConfig::version(17), demo).unwrap();
    let url = format!("https://127.0.0.1:{}", fake.addr.port());
    (fake, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_private_ca() {
    let pki = make_pki("ok");
    let demo = demo_snapshot(50);
    let (fake, url) = fake_over_tls(&pki, &demo).await;
    let c = connect_at(&fake, "admin", url.clone(), Some(pki.ca.clone()))
        .await
        .unwrap();
    assert_eq!(c.url(), url);
    assert_eq!(c.version().major, 17);
    let rows = c
        .search_read(
            "sale.order",
            json!([]),
            &["name", "partner_id"],
            Some("id"),
            0,
            Some(5),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut expected: Vec<(i64, &str)> = demo
        .orders
        .iter()
        .map(|o| (o.id, o.name.as_str()))
        .collect();
    expected.sort();
    let expected: Vec<&str> = expected.iter().take(5).map(|(_, n)| *n).collect();
    assert_eq!(names, expected);
    assert!(rows.iter().all(|r| wire::m2o(&r["partner_id"]).is_some()));
    // version, login, search_read: every request went over TLS to the fake.
    assert_eq!(fake.requests(), 3);
}

/// The text of the TLS error `r` must be.
fn tls_error(r: Result<OdooClient, wire::OdooError>) -> String {
    match r {
        Err(wire::OdooError::Tls(msg)) => msg,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_without_the_right_ca_is_refused_clearly() {
    let pki = make_pki("refused");
    let demo = demo_snapshot(20);
    let (fake, url) = fake_over_tls(&pki, &demo).await;
    let mut texts = Vec::new();
    // The platform's roots do not know the private CA.
    let msg = tls_error(connect_at(&fake, "admin", url.clone(), None).await);
    texts.push(msg.clone());
    assert!(msg.contains("certificate"), "{msg}");
    assert!(msg.contains("ODOO_CA_FILE"), "{msg}");
    // A CA file that did not sign the server's certificate (the server's own certificate).
    let msg = tls_error(connect_at(&fake, "admin", url.clone(), Some(pki.cert.clone())).await);
    texts.push(msg.clone());
    assert!(msg.contains("certificate"), "{msg}");
    assert_eq!(
        fake.requests(),
        0,
        "no request may pass an untrusted handshake"
    );
    // CA files that cannot be used: named, before anything is sent.
    let missing = pki.dir.path().join("missing.pem");
    let msg = tls_error(connect_at(&fake, "admin", url.clone(), Some(missing.clone())).await);
    texts.push(msg.clone());
    assert!(
        msg.contains("cannot read the CA file") && msg.contains("missing.pem"),
        "{msg}"
    );
    let not_pem = pki.dir.path().join("not-pem.txt");
    std::fs::write(&not_pem, "just text, no certificate\n").unwrap();
    let msg = tls_error(connect_at(&fake, "admin", url, Some(not_pem)).await);
    texts.push(msg.clone());
    assert!(
        msg.contains("no PEM certificate") && msg.contains("not-pem.txt"),
        "{msg}"
    );
    assert_eq!(fake.requests(), 0);
    // The key never appears in any of these errors.
    let key = fake.user("admin").unwrap().key;
    assert!(texts.len() == 4 && texts.iter().all(|t| !t.contains(&key)));
}

// ---- end to end: scan → case → approval → action in Odoo → chatter --------------------------

async fn end_to_end(version: u32) {
    use order_copilot::app::User;
    use order_copilot::app::source::Executor;
    use order_copilot::core::Action;
    use order_copilot::odoo::executor::{Marks, OdooExecutor};
    use order_copilot::store::{Store, StoreConfig};

    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(version), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "admin").await.unwrap());
    // Removed when the test ends, passed or failed.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig {
        database_url: None,
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let policy = Arc::new(Policy::embedded().unwrap());
    let source = Arc::new(OdooSource::new(client.clone(), test_config()));
    let executor = Arc::new(OdooExecutor::new(client.clone(), test_config()));
    let (app, writer) =
        order_copilot::app::start(store.clone(), policy.clone(), source.clone(), executor)
            .await
            .unwrap();
    let summary = app.scan("system").await.unwrap();
    assert!(summary.merge.new > 40, "{summary:?}");

    // A case whose options include rescheduling with the customer.
    let latest = app.latest().await.unwrap();
    let (case, rec, new_date) = latest
        .result
        .exceptions
        .iter()
        .find_map(|e| {
            e.recommendations
                .iter()
                .enumerate()
                .find_map(|(i, r)| match &r.action {
                    Action::Reschedule { new_date, .. } => Some((e.clone(), i, *new_date)),
                    _ => None,
                })
        })
        .expect("a case with a reschedule option");
    let order_id = latest.snapshot.order_by_name(&case.order_ref).unwrap().1.id;
    let requester = User {
        name: "rita".into(),
        role: "admin".into(),
    };
    let approval = app
        .request_action(&requester, &case.id, rec, None)
        .await
        .unwrap();
    let approver = User {
        name: "sam".into(),
        role: approval.approver_roles[0].clone(),
    };
    let decided = app
        .decide_approval(&approver, &approval.id, true, Some("ok"))
        .await
        .unwrap();
    assert_eq!(decided.status.as_str(), "approved");
    let cfg = order_copilot::app::outbox::OutboxConfig::default();
    assert_eq!(app.run_due_executions(&cfg).await.unwrap(), 1);
    let done = app.approval(&approval.id).await.unwrap();
    assert_eq!(done.status.as_str(), "executed", "{:?}", done.result);

    // In Odoo: the promised date moved, and the order's chatter has the note, as HTML.
    let (promised, notes) = fake.with_db(|db| {
        let promised = db.models["sale.order"].rows[&order_id]["commitment_date"].clone();
        let notes: Vec<Value> = db.models["mail.message"]
            .rows
            .values()
            .filter(|m| {
                m["model"] == "sale.order"
                    && m["res_id"] == order_id
                    && m["body"].as_str().is_some_and(|b| b.contains(&approval.id))
            })
            .map(|m| Value::Object(m.clone()))
            .collect();
        (promised, notes)
    });
    assert_eq!(promised, json!(wire::format_datetime(new_date)));
    // Two internal notes name the request: the one posted before the write, and the one
    // that closes the execution; each carries its Message-Id.
    let marks = Marks::of(&approval.id).unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(notes[0]["message_id"], json!(marks.started), "{notes:?}");
    assert_eq!(notes[1]["message_id"], json!(marks.finished), "{notes:?}");
    for n in &notes {
        assert!(
            n["body"]
                .as_str()
                .unwrap()
                .starts_with("<p><b>order-copilot</b>"),
            "HTML kept: {}",
            n["body"]
        );
        assert_eq!(n["subtype_id"], 2, "an internal note");
    }
    // The write and the note went out as named calls, with Odoo's answers, into the audit.
    let calls: Vec<String> = fake
        .calls()
        .iter()
        .filter(|c| c.method == "write" || c.method == "message_post")
        .map(|c| format!("{}.{}", c.model, c.method))
        .collect();
    assert_eq!(
        calls,
        [
            "sale.order.message_post",
            "sale.order.write",
            "sale.order.message_post"
        ]
    );
    let result: Value = done.result.clone().unwrap();
    assert_eq!(result["calls"].as_array().unwrap().len(), 3, "{result}");
    assert!(result["calls"][2]["answer"].is_i64(), "{result}");
    let audit = order_copilot::store::audit::search(
        &store,
        &order_copilot::store::audit::AuditQuery {
            case_id: Some(case.id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        audit.iter().any(|a| a.event.kind == "action.executed"),
        "{audit:?}"
    );
    // The re-scan after the execution sees the new date through an incremental sync.
    let after = app.latest().await.unwrap();
    assert_eq!(
        after
            .snapshot
            .order_by_name(&case.order_ref)
            .unwrap()
            .1
            .promised,
        Some(new_date)
    );
    assert!(source.sync_status().incremental_calls.is_some());

    // Idempotent by approval id, even for an executor that has forgotten everything.
    let again = OdooExecutor::new(client.clone(), test_config());
    let action: Action = serde_json::from_value(approval.params.clone()).unwrap();
    let r = again.execute(&approval.id, &action).await.unwrap();
    assert_eq!(r["already_executed"], true, "{r}");
    let n = fake.with_db(|db| {
        db.models["mail.message"]
            .rows
            .values()
            .filter(|m| m["body"].as_str().is_some_and(|b| b.contains(&approval.id)))
            .count()
    });
    assert_eq!(n, 2);
    // The bot's answers, until the copilot takes over: the core's explanation of an order
    // with an exception in the re-scan (the rescheduled one may be clear now: its promise
    // moved to the date its delivery is planned for).
    let open_order = after
        .result
        .exceptions
        .iter()
        .find(|e| e.kind != order_copilot::core::Kind::SupplierDelay)
        .map(|e| e.order_ref.clone())
        .unwrap();
    let explain = order_copilot::odoo::bot::ExplainAnswerer::new(app.clone());
    let mut q = Question {
        text: "why?".into(),
        order: Some(open_order.clone()),
        role: None,
        author: "Marc".into(),
        audience: Vec::new(),
    };
    let read_only = explain.answer(&q).await;
    q.role = Some("planner".into());
    let full = explain.answer(&q).await;
    assert!(
        read_only.starts_with(&format!("<p>{open_order}")) && read_only.contains("read-only"),
        "{read_only}"
    );
    assert!(
        full.contains("options:") && !read_only.contains("options:"),
        "{full}"
    );
    drop(app);
    writer.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_17() {
    end_to_end(17).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_18() {
    end_to_end(18).await
}

/// The customer gets the approved text once, against the fake too: a second run and a run
/// after a crash between the starting note and the message add nothing; the purpose stays
/// in the internal note.
async fn approved_text_sent_once(version: u32) {
    use order_copilot::app::source::Executor;
    use order_copilot::core::Action;
    use order_copilot::odoo::executor::{Marks, OdooExecutor, message_html};

    let demo = demo_snapshot(50);
    let fake = FakeOdoo::start(FakeConfig::version(version), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "admin").await.unwrap());
    let order = demo.orders[0].clone();
    let text = "Dear customer,\n\nyour order leaves on Friday & arrives Monday.";
    let contact = Action::ContactCustomer {
        order: order.name.clone(),
        purpose: "internal: the carrier slipped".into(),
        message: Some(text.into()),
    };
    let on_order = |fake: &FakeOdoo| {
        fake.with_db(|db| {
            db.models["mail.message"]
                .rows
                .values()
                .filter(|m| m["model"] == "sale.order" && m["res_id"] == order.id)
                .map(|m| Value::Object(m.clone()))
                .collect::<Vec<_>>()
        })
    };
    let count = |msgs: &[Value], mid: &str| msgs.iter().filter(|m| m["message_id"] == mid).count();
    // Run twice, each time by an executor that remembers nothing.
    for _ in 0..2 {
        OdooExecutor::new(client.clone(), test_config())
            .execute("ap_fake1", &contact)
            .await
            .unwrap();
    }
    // A crash after the starting note: the retry sends the message, once.
    let m2 = Marks::of("ap_fake2").unwrap();
    let mut kw = wire::message_post_kwargs("<p>starting</p>", true);
    kw.insert("message_id".into(), json!(m2.started));
    client
        .call("sale.order", "message_post", vec![json!([order.id])], kw)
        .await
        .unwrap();
    OdooExecutor::new(client.clone(), test_config())
        .execute("ap_fake2", &contact)
        .await
        .unwrap();
    let msgs = on_order(&fake);
    for key in ["ap_fake1", "ap_fake2"] {
        let m = Marks::of(key).unwrap();
        assert_eq!(
            (
                count(&msgs, &m.started),
                count(&msgs, &m.message),
                count(&msgs, &m.finished)
            ),
            (1, 1, 1),
            "{key}: {msgs:?}"
        );
        let sent = msgs
            .iter()
            .find(|x| x["message_id"] == m.message.as_str())
            .unwrap();
        assert_eq!(sent["body"], json!(message_html(text)));
        assert_eq!(sent["subtype_id"], 1, "a public comment");
    }
    for x in &msgs {
        if x["body"]
            .as_str()
            .is_some_and(|b| b.contains("carrier slipped"))
        {
            assert_eq!(x["subtype_id"], 2, "the purpose only in notes: {x}");
        }
    }
    // Odoo unreachable: a transient failure (a retry may succeed), and it does, once.
    fake.set_down(true);
    let e = OdooExecutor::new(client.clone(), test_config())
        .execute("ap_fake3", &contact)
        .await
        .unwrap_err();
    assert!(e.transient, "{e}");
    fake.set_down(false);
    OdooExecutor::new(client.clone(), test_config())
        .execute("ap_fake3", &contact)
        .await
        .unwrap();
    let m3 = Marks::of("ap_fake3").unwrap();
    assert_eq!(count(&on_order(&fake), &m3.message), 1);
    // A record Odoo does not have: permanent.
    let missing = Action::ContactCustomer {
        order: "S-NOT-THERE".into(),
        purpose: "p".into(),
        message: Some(text.into()),
    };
    let e = OdooExecutor::new(client.clone(), test_config())
        .execute("ap_fake4", &missing)
        .await
        .unwrap_err();
    assert!(!e.transient && e.message.contains("is not in Odoo"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_text_sent_once_17() {
    approved_text_sent_once(17).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_text_sent_once_18() {
    approved_text_sent_once(18).await
}

// ---- the bot -----------------------------------------------------------------------------

use common::Recorder;
use order_copilot::odoo::bot::{Answerer, Bot, Question};

struct BotRig {
    fake: FakeOdoo,
    bot: Arc<Bot>,
    questions: Arc<Recorder>,
    webhook: String,
    channel: i64,
}

const SECRET: &str = "a-webhook-secret-of-some-length";

async fn bot_rig(version: u32) -> BotRig {
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(version), &demo)
        .await
        .unwrap();
    let cfg = test_config();
    let questions = Arc::new(Recorder::default());
    let bot = Bot::start(
        Arc::new(connect(&fake, "bot").await.unwrap()),
        cfg.bot.clone(),
        questions.clone(),
        None,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook = format!("http://{}/odoo/webhook", listener.local_addr().unwrap());
    let routes = order_copilot::odoo::bot::routes(bot.clone(), Secret::new(SECRET));
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let admin = connect(&fake, "admin").await.unwrap();
    let report = order_copilot::odoo::setup::setup(
        &admin,
        &cfg,
        "bot",
        &format!("{webhook}?secret={SECRET}"),
    )
    .await
    .unwrap();
    assert!(
        report.channel_created && report.member_added && report.automation_created,
        "{report:?}"
    );
    let again = order_copilot::odoo::setup::setup(
        &admin,
        &cfg,
        "bot",
        &format!("{webhook}?secret={SECRET}"),
    )
    .await
    .unwrap();
    assert!(
        !again.channel_created
            && !again.member_added
            && !again.automation_created
            && !again.url_updated,
        "idempotent: {again:?}"
    );
    assert_eq!(again.channel_id, report.channel_id);
    BotRig {
        fake,
        bot,
        questions,
        webhook,
        channel: report.channel_id,
    }
}

async fn post_as(fake: &FakeOdoo, login: &str, model: &str, id: i64, html: &str) -> i64 {
    let uid = fake.user(login).unwrap().id;
    let v = fake
        .execute_as(
            uid,
            model,
            "message_post",
            vec![json!([id])],
            wire::message_post_kwargs(html, false),
        )
        .await
        .unwrap();
    wire::record_id(&v).unwrap()
}

async fn wait_for(what: &str, f: impl Fn() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn answers(fake: &FakeOdoo, parent: i64) -> Vec<Value> {
    fake.with_db(|db| {
        db.models["mail.message"]
            .rows
            .values()
            .filter(|m| m.get("parent_id") == Some(&json!(parent)))
            .map(|m| Value::Object(m.clone()))
            .collect()
    })
}

async fn bot_in_channels_and_chatter(version: u32) {
    use std::sync::atomic::Ordering::Relaxed;
    let rig = bot_rig(version).await;
    let (fake, bot) = (&rig.fake, &rig.bot);
    // A mapped user asks in the bot's channel.
    let asked = post_as(
        fake,
        "demo",
        "discuss.channel",
        rig.channel,
        "<p>why is <b>S00012</b> late?</p>",
    )
    .await;
    wait_for("the answer", || bot.stats.answered.load(Relaxed) == 1).await;
    let a = answers(fake, asked);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["author_id"], bot.partner_id());
    assert_eq!(a[0]["body"], "<p>answer for Marc Demo about S00012</p>");
    {
        let q = rig.questions.0.lock().unwrap();
        assert_eq!(q[0].role.as_deref(), Some("service_rep"));
        assert_eq!(q[0].order.as_deref(), Some("S00012"));
        assert_eq!(q[0].author, "Marc Demo");
        // The channel's other readers, read from Odoo: no unmapped user among them yet.
        assert!(!q[0].audience.iter().any(|r| r == "viewer"), "{q:?}");
    }
    // The bot's own answer came back through the webhook and was ignored: no loop.
    wait_for("the bot's own message", || bot.stats.own.load(Relaxed) >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bot.stats.answered.load(Relaxed), 1);
    if version == 17 {
        // Odoo 17 posts a follower-notifying comment's webhook several times.
        assert!(bot.stats.duplicates.load(Relaxed) >= 2, "{:?}", bot.stats);
    }
    // An Odoo user without a copilot role joins the channel: from now on the bot answers
    // there for a viewer too (what a viewer may not see is withheld from every answer).
    let salesonly = fake.user("salesonly").unwrap().partner_id;
    let admin = connect(fake, "admin").await.unwrap();
    let mut kw = serde_json::Map::new();
    kw.insert("partner_ids".into(), json!([salesonly]));
    admin
        .call(
            "discuss.channel",
            "add_members",
            vec![json!([rig.channel])],
            kw,
        )
        .await
        .unwrap();
    // An Odoo user without a copilot role gets a read-only answer.
    post_as(
        fake,
        "salesonly",
        "discuss.channel",
        rig.channel,
        "<p>and S00013?</p>",
    )
    .await;
    wait_for("the second answer", || {
        bot.stats.answered.load(Relaxed) == 2
    })
    .await;
    assert_eq!(rig.questions.0.lock().unwrap()[1].role, None);
    assert!(
        rig.questions.0.lock().unwrap()[1]
            .audience
            .iter()
            .any(|r| r == "viewer"),
        "a member without a role reads the channel"
    );
    // On an order's chatter the bot answers only when mentioned, with the order in context.
    let order = fake
        .with_db(|db| {
            db.models["sale.order"].rows.values().next().map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    r["name"].as_str().unwrap().to_string(),
                )
            })
        })
        .unwrap();
    post_as(
        fake,
        "demo",
        "sale.order",
        order.0,
        "<p>customer called about the delivery</p>",
    )
    .await;
    let mentioned = post_as(
        fake,
        "demo",
        "sale.order",
        order.0,
        "<p>@Integration Bot what blocks this order?</p>",
    )
    .await;
    wait_for("the chatter answer", || {
        bot.stats.answered.load(Relaxed) == 3
    })
    .await;
    assert_eq!(
        rig.questions.0.lock().unwrap()[2].order.as_deref(),
        Some(order.1.as_str())
    );
    let a = answers(fake, mentioned);
    assert_eq!(
        (a.len(), &a[0]["subtype_id"], &a[0]["model"]),
        (1, &json!(2), &json!("sale.order")),
        "an internal note on the order: {a:?}"
    );
    // The plain note is read back from Odoo (as every delivery is) and then ignored.
    wait_for("the plain note to be ignored", || {
        bot.stats.ignored.load(Relaxed) >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_17() {
    bot_in_channels_and_chatter(17).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_18() {
    bot_in_channels_and_chatter(18).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secret_rate_and_shape() {
    let rig = bot_rig(18).await;
    let http = order_copilot::outbound::client_builder().build().unwrap();
    let payload = json!({"_action": "Send Webhook Notification(#1)", "_id": 9_999_999, "_model": "mail.message", "id": 9_999_999, "author_id": 7, "body": "<p>S00012?</p>", "message_type": "comment", "model": "discuss.channel", "res_id": rig.channel});
    for url in [rig.webhook.clone(), format!("{}?secret=wrong", rig.webhook)] {
        let r = http.post(&url).json(&payload).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = http
        .post(&rig.webhook)
        .header("x-webhook-secret", SECRET)
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r: Value = http
        .post(format!("{}?secret={SECRET}", rig.webhook))
        .json(&payload)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["outcome"], "duplicate");
    let r = http
        .post(format!("{}?secret={SECRET}", rig.webhook))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The fake's webhook carries what Odoo's does (many2one as bare ids) — and the recording says so.
    if let Some(recs) = recordings() {
        let recorded = recs
            .iter()
            .find(|(v, n, _)| v == "18" && n == "webhook_received_sale_chatter_1.json")
            .unwrap()
            .2["request"]["body"]
            .clone();
        let captured = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
        let sink = captured.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/capture", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/capture",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(v);
                    axum::Json(json!({"ok": true}))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut cfg = test_config();
        cfg.bot.automation_name = "capture".into();
        let admin = connect(&rig.fake, "admin").await.unwrap();
        order_copilot::odoo::setup::setup(&admin, &cfg, "bot", &url)
            .await
            .unwrap();
        let order = rig
            .fake
            .with_db(|db| *db.models["sale.order"].rows.keys().next().unwrap());
        post_as(&rig.fake, "admin", "sale.order", order, "<p>note</p>").await;
        let got = captured.lock().unwrap().clone();
        assert!(!got.is_empty());
        for (k, v) in recorded.as_object().unwrap() {
            assert!(
                got[0]
                    .get(k)
                    .is_some_and(|x| std::mem::discriminant(x) == std::mem::discriminant(v)),
                "{k}: recorded {v}, fake {:?}",
                got[0].get(k)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_answers_new_messages_only() {
    use std::sync::atomic::Ordering::Relaxed;
    let demo = demo_snapshot(300);
    let fake = FakeOdoo::start(FakeConfig::version(17), &demo)
        .await
        .unwrap();
    let admin = connect(&fake, "admin").await.unwrap();
    let cfg = test_config();
    let report =
        order_copilot::odoo::setup::setup(&admin, &cfg, "bot", "http://127.0.0.1:9/unused")
            .await
            .unwrap();
    // No webhook listener: Odoo's posts to it fail (1 s timeout) and the poller is the path.
    let questions = Arc::new(Recorder::default());
    let bot = Bot::start(
        Arc::new(connect(&fake, "bot").await.unwrap()),
        cfg.bot.clone(),
        questions.clone(),
        None,
    )
    .await
    .unwrap();
    let before = post_as(
        &fake,
        "demo",
        "discuss.channel",
        report.channel_id,
        "<p>old S00001</p>",
    )
    .await;
    assert_eq!(
        bot.poll_once().await.unwrap(),
        0,
        "the first poll only sets the mark"
    );
    post_as(
        &fake,
        "demo",
        "discuss.channel",
        report.channel_id,
        "<p>new S00012</p>",
    )
    .await;
    assert_eq!(bot.poll_once().await.unwrap(), 1);
    wait_for("the answer", || bot.stats.answered.load(Relaxed) == 1).await;
    assert!(answers(&fake, before).is_empty());
    // The bot's own answer is seen by the next poll and ignored.
    bot.poll_once().await.unwrap();
    assert_eq!(bot.stats.own.load(Relaxed), 1);
    assert_eq!(questions.0.lock().unwrap().len(), 1);
}

/// Like the real 17/18 (tests/odoo_real.rs): a bot user without an e-mail address cannot
/// post on an order's chatter, so setup refuses it with the fix in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_refuses_a_bot_without_email() {
    let demo = demo_snapshot(50);
    let fake = FakeOdoo::start(FakeConfig::version(17), &demo)
        .await
        .unwrap();
    let admin = connect(&fake, "admin").await.unwrap();
    let bot = fake.user("bot").unwrap();
    admin
        .write("res.users", &[bot.id], json!({"email": false}))
        .await
        .unwrap();
    let e = order_copilot::odoo::setup::setup(
        &admin,
        &test_config(),
        "bot",
        "http://127.0.0.1:9/odoo/webhook?secret=0123456789abcdef",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("has no e-mail address"), "{e}");
    // And Odoo's own rule, as the fake serves it: no chatter post without one.
    admin
        .write("res.partner", &[bot.partner_id], json!({"email": false}))
        .await
        .unwrap();
    let client = connect(&fake, "bot").await.unwrap();
    let order = demo.orders[0].id;
    let e = client
        .call(
            "sale.order",
            "message_post",
            vec![json!([order])],
            wire::message_post_kwargs("<p>hello</p>", true),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("configure the sender's email address"),
        "{e}"
    );
}

/// Make-to-order links come through Odoo's own fields: the delivery move's `move_orig_ids`
/// names the receipt in the purchase line's `move_ids`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_to_order_links_are_read() {
    let mut demo = demo_snapshot(300);
    let line = demo
        .lines
        .iter()
        .position(|l| {
            !l.open_qty().is_zero() && demo.orders[l.order as usize].state == OrderState::Sale
        })
        .unwrap();
    let inbound = demo
        .inbound
        .iter()
        .position(|b| b.state == PurchaseState::Purchase)
        .unwrap();
    demo.supply_links.push(SupplyLink {
        inbound: inbound as u32,
        line: line as u32,
    });
    let fake = FakeOdoo::start(FakeConfig::version(17), &demo)
        .await
        .unwrap();
    let client = Arc::new(connect(&fake, "admin").await.unwrap());
    let source = OdooSource::new(client, test_config());
    let snap = source.refresh().await.unwrap();
    let read: Vec<(i64, i64)> = snap
        .supply_links
        .iter()
        .map(|k| {
            (
                snap.inbound[k.inbound as usize].id,
                snap.lines[k.line as usize].id,
            )
        })
        .collect();
    assert_eq!(read, vec![(demo.inbound[inbound].id, demo.lines[line].id)]);
    assert!(source.sync_status().warnings.is_empty());
}
