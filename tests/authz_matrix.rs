//! The authorisation matrix (issue 15, item 6): every route of the route table
//! ([`ROUTES`], plus the web app's assets) × every principal (no token, and one token per
//! role of the policy) × {own, other's} resource, with the status each cell must answer,
//! checked against a running server.
//!
//! Each route has exactly one entry in [`rule`]; a route in the table without one fails
//! the test, and so does a route the router serves that the table does not list (read
//! from the router's source, `src/http/mod.rs`). Expectations come from the policy's data
//! (permissions, case owner roles, the approver roles recorded on a request), never from
//! the functions under test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, VecDeque};

use common::{Db, TestServer, client};
use order_copilot::http::ROUTES;
use order_copilot::store::ConversationRow;
use serde_json::{Value, json};

/// Who may use a route, as data.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Anyone, without a token.
    Public,
    /// Any valid token.
    AnyUser,
    /// A token whose role holds this permission.
    Permission(&'static str),
    /// The case's owner role, or a holder of this permission (decide any case).
    CaseOwnerOr(&'static str),
    /// `request_actions`, on an active case.
    RequestAction,
    /// A role the request names as approver; approving your own request only where the
    /// request allows it.
    Approve,
    /// A role the request names as approver.
    Reject,
    /// The conversation's owner; anyone else is told it does not exist (404).
    ConversationOwner,
    /// `chat`; continuing a conversation only its owner may (404 for anyone else's).
    Chat,
}

/// The entry of every route. A new route needs one here.
fn rule(method: &str, path: &str) -> Option<Rule> {
    use Rule::*;
    Some(match (method, path) {
        ("get", "/healthz" | "/readyz" | "/metrics" | "/api/openapi.json") => Public,
        ("get", "/api/me" | "/api/exceptions" | "/api/exceptions/facets") => AnyUser,
        ("get", "/api/cases/{id}") => AnyUser,
        ("post", "/api/cases/{id}/acknowledge") => CaseOwnerOr("decide_any_case"),
        ("post", "/api/cases/{id}/resolve") => CaseOwnerOr("decide_any_case"),
        ("post", "/api/cases/{id}/dismiss") => CaseOwnerOr("decide_any_case"),
        ("post", "/api/cases/{id}/actions") => RequestAction,
        ("get", "/api/approvals" | "/api/approvals/{id}") => AnyUser,
        ("post", "/api/approvals/{id}/approve") => Approve,
        ("post", "/api/approvals/{id}/reject") => Reject,
        ("get", "/api/audit" | "/api/audit/verify") => Permission("read_audit"),
        ("get", "/api/orders/{order}/explain") => AnyUser,
        ("post", "/api/chat") => Chat,
        ("get", "/api/conversations/{id}") => ConversationOwner,
        ("post", "/api/scan") => Permission("run_scan"),
        ("get", "/api/status") => AnyUser,
        ("get", p) if p.starts_with("/api/intelligence/") => AnyUser,
        ("get", "/api/predictions" | "/api/models") => AnyUser,
        _ => return None,
    })
}

/// Every `.route("path", method(...))` the router source registers, as (method, path).
fn routes_in_router_source() -> Vec<(String, String)> {
    let src = include_str!("../src/http/mod.rs");
    let body = &src[src.find("pub fn router_with").unwrap()..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join("");
    let mut out = Vec::new();
    let mut rest = flat.as_str();
    let api_start = flat.find("letapi=").unwrap();
    let api_end = flat.find(".route_layer(").unwrap();
    while let Some(i) = rest.find(".route(\"") {
        let at = flat.len() - rest.len() + i;
        let tail = &rest[i + 8..];
        let end = tail.find('"').unwrap();
        let path = &tail[..end];
        let after = &tail[end + 2..];
        let method = after[..after.find('(').unwrap()].to_string();
        let full = if at > api_start && at < api_end {
            format!("/api{path}")
        } else {
            path.to_string()
        };
        out.push((method, full));
        rest = &tail[end..];
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Whose {
    Own,
    Other,
}

/// One principal: a role's token, or none.
#[derive(Debug, Clone)]
struct Who {
    role: Option<String>,
    name: String,
    token: Option<String>,
}

struct World {
    /// Open cases not yet used, by owner role.
    cases: BTreeMap<String, VecDeque<String>>,
    /// Any case and its order, for read-only routes.
    any_case: String,
    any_order: String,
    other_requester: String,
    /// An approval request, for read-only routes.
    any_approval: String,
}

impl World {
    fn take_case(&mut self, owned_by: Option<&str>, not_owned_by: Option<&str>) -> Option<String> {
        for (owner, q) in self.cases.iter_mut() {
            if owned_by.is_some_and(|o| o != owner) || not_owned_by.is_some_and(|o| o == owner) {
                continue;
            }
            if let Some(id) = q.pop_front() {
                return Some(id);
            }
        }
        None
    }
}

async fn send(s: &TestServer, who: &Who, method: &str, path: &str, body: &Value) -> u16 {
    let c = client();
    let req = if method == "get" {
        c.get(s.url(path))
    } else {
        c.post(s.url(path)).json(body)
    };
    let req = match &who.token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    // Read the whole answer (a chat streams until its turn ends).
    let _ = resp.bytes().await;
    status
}

/// The body that requests a case's first recommendation (with the text to send, for an
/// action that sends one).
async fn action_body(s: &TestServer, case: &str) -> Value {
    let detail = s.app.store.get_case(case).await.unwrap().unwrap();
    let action = detail.exception["recommendations"][0]["action"].to_string();
    if action.contains("contact_customer") {
        json!({"recommendation": 0, "message": "Hello, about your order: we will write again shortly."})
    } else {
        json!({"recommendation": 0})
    }
}

/// A pending approval requested by `requester` (its token), on a fresh case; with the
/// row, for the expectation.
async fn pending_approval(
    s: &TestServer,
    world: &mut World,
    requester: &str,
) -> Option<order_copilot::store::ApprovalRow> {
    for _ in 0..20 {
        let case = world.take_case(None, None)?;
        let body = action_body(s, &case).await;
        let (st, body) =
            common::api_post(s, requester, &format!("/api/cases/{case}/actions"), body).await;
        if st == 201 {
            let id = body["approval"]["id"].as_str().unwrap();
            return s.app.store.get_approval(id).await.unwrap();
        }
        eprintln!("request on {case}: {st} {body}");
    }
    None
}

async fn matrix(db: Db) {
    // Rates are tested in tests/limits.rs; here every cell must reach its route.
    let policy = common::policy_with(
        "limits.toml",
        &[
            (
                "chat = { per_minute = 20, burst = 5 }",
                "chat = { per_minute = 10000, burst = 1000 }",
            ),
            (
                "api = { per_minute = 600, burst = 120 }",
                "api = { per_minute = 10000, burst = 1000 }",
            ),
        ],
    );
    let s = TestServer::start_with_policy(db, 400, policy).await;
    let policy = s.app.policy.clone();
    let permits = |role: &str, p: &str| {
        policy
            .permissions
            .get(p)
            .is_some_and(|rs| rs.iter().any(|r| r == role))
    };

    // Every route the router serves is in the table, and every route in the table has an
    // entry here.
    let table: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    for r in routes_in_router_source() {
        assert!(
            table.contains(&r),
            "the router serves {} {} but the route table (http::ROUTES) does not list it",
            r.0,
            r.1
        );
    }
    for (m, p) in &table {
        assert!(
            rule(m, p).is_some(),
            "route {m} {p} has no entry in the authorisation matrix (tests/authz_matrix.rs `rule`)"
        );
    }

    // Principals.
    let mut people = Vec::new();
    for role in &policy.roles {
        let name = format!("{role}_user");
        let token = s.token(&name, role).await;
        people.push(Who {
            role: Some(role.clone()),
            name,
            token: Some(token),
        });
    }
    // Last: after 10 failed logins a minute the address is refused (429) whatever token
    // it then shows, so the anonymous cells run after everyone else's.
    people.push(Who {
        role: None,
        name: "anonymous".into(),
        token: None,
    });
    let other_requester = s.token("other_requester", "admin").await;

    // Resources: open cases by owner role.
    let (_, list) = common::api_get(&s, &s.admin, "/api/exceptions?limit=500").await;
    let mut cases: BTreeMap<String, VecDeque<String>> = BTreeMap::new();
    for c in list["items"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        // Cases with a recommendation to request (read in-process: not part of the matrix).
        let detail = s.app.store.get_case(id).await.unwrap().unwrap();
        if c["status"] == "open"
            && detail.exception["recommendations"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            cases
                .entry(c["owner_role"].as_str().unwrap().to_string())
                .or_default()
                .push_back(id.to_string());
        }
    }
    // A sales order's case (a supplier's purchase order has no explanation page).
    let any = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["order_ref"].as_str().unwrap().starts_with('S'))
        .unwrap();
    let mut world = World {
        cases,
        any_case: any["id"].as_str().unwrap().to_string(),
        any_order: any["order_ref"].as_str().unwrap().to_string(),
        other_requester,
        any_approval: String::new(),
    };
    let requester = world.other_requester.clone();
    world.any_approval = pending_approval(&s, &mut world, &requester)
        .await
        .unwrap()
        .id;
    let now = chrono::Utc::now().timestamp_micros();
    for who in &people {
        s.app
            .store
            .insert_conversation(&ConversationRow {
                id: format!("conv_{}", who.name),
                owner: who.name.clone(),
                role: who.role.clone().unwrap_or_default(),
                created_at: now,
            })
            .await
            .unwrap();
    }
    s.app
        .store
        .insert_conversation(&ConversationRow {
            id: "conv_somebody_else".into(),
            owner: "somebody_else".into(),
            role: "admin".into(),
            created_at: now,
        })
        .await
        .unwrap();

    let mut checked = 0usize;
    let mut not_applicable = 0usize;
    let mut failures = Vec::new();
    let mut routes: Vec<(String, String)> = table.clone();
    for a in order_copilot::http::web::ASSETS {
        routes.push(("get".into(), a.url.to_string()));
    }
    let mut anonymous_failures = 0usize;
    for who in &people {
        for (method, path) in &routes {
            let r = if ROUTES.iter().any(|x| x.path == path && x.method == method) {
                rule(method, path).unwrap()
            } else {
                Rule::Public // a web app asset: the page loads, its data needs a token
            };
            for whose in [Whose::Own, Whose::Other] {
                let role = who.role.as_deref();
                // (path, body, expected), or None when the cell cannot exist.
                let cell: Option<(String, Value, u16)> = match r {
                    Rule::Public => Some((path.clone(), json!({}), 200)),
                    Rule::AnyUser => Some((
                        path.replace(
                            "{id}",
                            if path.starts_with("/api/approvals/") {
                                &world.any_approval
                            } else {
                                &world.any_case
                            },
                        )
                        .replace("{order}", &world.any_order),
                        json!({}),
                        if role.is_some() { 200 } else { 401 },
                    )),
                    Rule::Permission(p) => Some((
                        path.clone(),
                        json!({}),
                        match role {
                            None => 401,
                            Some(r) if permits(r, p) => 200,
                            Some(_) => 403,
                        },
                    )),
                    Rule::CaseOwnerOr(p) => {
                        let case = match (whose, role) {
                            (Whose::Own, Some(r)) => world.take_case(Some(r), None),
                            (Whose::Own, None) => None,
                            (Whose::Other, r) => world.take_case(None, r),
                        };
                        case.map(|id| {
                            let expect = match role {
                                None => 401,
                                Some(r) if whose == Whose::Own || permits(r, p) => 200,
                                Some(_) => 403,
                            };
                            (
                                path.replace("{id}", &id),
                                json!({"outcome": "checked by the authorisation matrix"}),
                                expect,
                            )
                        })
                    }
                    Rule::RequestAction => {
                        let case = match (whose, role) {
                            (Whose::Own, Some(r)) => world.take_case(Some(r), None),
                            (Whose::Own, None) => None,
                            (Whose::Other, r) => world.take_case(None, r),
                        };
                        match case {
                            None => None,
                            Some(id) => {
                                let expect = match role {
                                    None => 401,
                                    Some(r) if permits(r, "request_actions") => 201,
                                    Some(_) => 403,
                                };
                                Some((
                                    path.replace("{id}", &id),
                                    action_body(&s, &id).await,
                                    expect,
                                ))
                            }
                        }
                    }
                    // Without a token nothing is decided: the request stays as it is.
                    Rule::Approve | Rule::Reject if role.is_none() => {
                        (whose == Whose::Other).then(|| {
                            (
                                path.replace("{id}", &world.any_approval),
                                json!({"reason": "checked by the authorisation matrix"}),
                                401,
                            )
                        })
                    }
                    Rule::Approve | Rule::Reject => {
                        let requester = match (whose, &who.token, role) {
                            (Whose::Own, Some(t), Some(r)) if permits(r, "request_actions") => {
                                Some(t.clone())
                            }
                            (Whose::Own, _, _) => None,
                            (Whose::Other, _, _) => Some(world.other_requester.clone()),
                        };
                        match requester {
                            None => None,
                            Some(t) => {
                                let row = pending_approval(&s, &mut world, &t)
                                    .await
                                    .expect("no case left to request an action on");
                                let expect = match role {
                                    None => 401,
                                    Some(r) if !row.approver_roles.iter().any(|x| x == r) => 403,
                                    Some(_)
                                        if matches!(r, Rule::Approve)
                                            && whose == Whose::Own
                                            && !row.requester_may_approve =>
                                    {
                                        403
                                    }
                                    Some(_) => 200,
                                };
                                Some((
                                    path.replace("{id}", &row.id),
                                    json!({"reason": "checked by the authorisation matrix"}),
                                    expect,
                                ))
                            }
                        }
                    }
                    Rule::ConversationOwner => {
                        let id = match whose {
                            Whose::Own => format!("conv_{}", who.name),
                            Whose::Other => "conv_somebody_else".into(),
                        };
                        let expect = match (role, whose) {
                            (None, _) => 401,
                            (Some(_), Whose::Own) => 200,
                            (Some(_), Whose::Other) => 404,
                        };
                        Some((path.replace("{id}", &id), json!({}), expect))
                    }
                    Rule::Chat => {
                        let id = match whose {
                            Whose::Own => format!("conv_{}", who.name),
                            Whose::Other => "conv_somebody_else".into(),
                        };
                        let expect = match (role, whose) {
                            (None, _) => 401,
                            (Some(r), _) if !permits(r, "chat") => 403,
                            (Some(_), Whose::Own) => 200,
                            (Some(_), Whose::Other) => 404,
                        };
                        Some((
                            path.clone(),
                            json!({"message": "status of the order?", "conversation_id": id}),
                            expect,
                        ))
                    }
                };
                let Some((url, body, mut expect)) = cell else {
                    not_applicable += 1;
                    continue;
                };
                if expect == 401 {
                    // Failed logins: 10 a minute per address, then 429.
                    if anonymous_failures >= 10 {
                        expect = 429;
                    }
                    anonymous_failures += 1;
                }
                let got = send(&s, who, method, &url, &body).await;
                checked += 1;
                if got != expect {
                    failures.push(format!(
                        "{method} {url} as {} ({whose:?}): expected {expect}, got {got}",
                        who.name
                    ));
                }
            }
        }
    }
    let _ = writeln_stderr(&format!(
        "authorisation matrix: {} routes × {} principals × 2 = {} cells; {checked} checked against the server, {not_applicable} cannot exist (e.g. no case owned by that role)",
        routes.len(),
        people.len(),
        routes.len() * people.len() * 2
    ));
    assert!(
        failures.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > routes.len() * people.len(), "{checked}");
    s.stop().await;
}

fn writeln_stderr(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{line}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorisation_matrix() {
    matrix(Db::Sqlite).await
}
