//! The copilot engine end to end over a real store and the demo distributor: offline
//! answers, the approval boundary (with an adversarial scripted model), the model tool
//! loop (parallel calls, invalid arguments, retries, trimming, time budget, fallback),
//! redaction for external providers, conversations, and `/api/chat` over a real server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use common::*;
use order_copilot::app::source::{BoxFuture, DemoSource, ExecError, Executor};
use order_copilot::app::{App, User};
use order_copilot::copilot::fake::{FakeScriptedModel, Step, calls, text};
use order_copilot::copilot::model::{ModelError, Provider, Role};
use order_copilot::copilot::{ChatEvent, ChatRequest, Copilot, CopilotConfig, Mode, TurnOutcome};
use order_copilot::core::{Action, Kind};
use order_copilot::demo::DemoConfig;
use order_copilot::policy::Policy;
use order_copilot::store::audit::AuditQuery;
use order_copilot::store::{ApprovalStatus, Store};

/// Counts executions: the copilot must never cause one.
struct CountingExecutor {
    inner: Arc<DemoSource>,
    runs: AtomicUsize,
}

impl Executor for CountingExecutor {
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.execute(key, action)
    }
}

struct Fixture {
    app: Arc<App>,
    exec: Arc<CountingExecutor>,
    _writer: order_copilot::store::audit::AuditWriter,
    _store_dir: FreshStore,
}

async fn fixture() -> Fixture {
    let cfg = fresh(Db::Sqlite).await;
    let store = Store::open(&cfg).await.unwrap();
    let demo = Arc::new(DemoSource::new(&DemoConfig {
        seed: 42,
        orders: 400,
        now: Utc::now(),
    }));
    let exec = Arc::new(CountingExecutor {
        inner: demo.clone(),
        runs: AtomicUsize::new(0),
    });
    let (app, writer) = order_copilot::app::start(
        store,
        Arc::new(Policy::embedded().unwrap()),
        demo,
        exec.clone(),
    )
    .await
    .unwrap();
    app.scan("test").await.unwrap();
    Fixture {
        app,
        exec,
        _writer: writer,
        _store_dir: cfg,
    }
}

fn user(role: &str) -> User {
    User {
        name: format!("t-{role}"),
        role: role.into(),
    }
}

async fn order_with(app: &App, kind: Kind) -> (String, String) {
    let state = app.latest().await.unwrap();
    let e = state
        .result
        .exceptions
        .iter()
        .find(|e| e.kind == kind && e.order_ref.starts_with('S'))
        .unwrap_or_else(|| panic!("demo has no {kind}"));
    (e.order_ref.clone(), e.id.clone())
}

fn ask(message: &str) -> ChatRequest {
    ChatRequest {
        message: message.into(),
        ..ChatRequest::default()
    }
}

/// `message` asked by a user of `role`; the turn must finish.
async fn ask_as(copilot: &Copilot, role: &str, message: &str) -> TurnOutcome {
    copilot.answer(&user(role), ask(message)).await.unwrap()
}

async fn audit_of(app: &App, kind: &str) -> Vec<order_copilot::store::audit::AuditRecord> {
    let q = AuditQuery {
        kind: Some(kind.into()),
        limit: Some(100),
        ..AuditQuery::default()
    };
    order_copilot::store::audit::search(&app.store, &q)
        .await
        .unwrap()
}

async fn all_approvals(app: &App) -> Vec<order_copilot::store::ApprovalRow> {
    app.store
        .list_approvals(None, None, None, 500)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_explains_why_an_order_is_blocked_with_citations() {
    let f = fixture().await;
    let copilot = Copilot::offline(f.app.clone()).unwrap();
    let (order, case) = order_with(&f.app, Kind::CreditHold).await;
    let t = ask_as(&copilot, "service_rep", &format!("Why is {order} blocked?")).await;
    assert_eq!(t.mode, Mode::Offline);
    assert!(t.error.is_none(), "{:?}", t.error);
    assert_eq!(t.tools.len(), 1);
    assert_eq!(t.tools[0].tool, "explain_order");
    assert!(
        t.answer.contains(&order) && t.answer.contains(&case),
        "{}",
        t.answer
    );
    assert!(t.answer.to_lowercase().contains("credit hold"));
    assert!(t.citations.iter().any(|c| c.reference == case));
    // Stream shape: conversation first, done last.
    assert!(matches!(
        t.events.first(),
        Some(ChatEvent::Conversation { .. })
    ));
    assert!(matches!(t.events.last(), Some(ChatEvent::Done { .. })));
    // The turn is audited with its conversation id.
    let audit = audit_of(&f.app, "copilot.").await;
    assert!(audit.iter().any(|r| r.event.kind == "copilot.tool"
        && r.event.conversation_id.as_deref() == Some(t.conversation_id.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_to_act_creates_a_pending_approval_and_executes_nothing() {
    let f = fixture().await;
    let copilot = Copilot::offline(f.app.clone()).unwrap();
    let (order, case) = order_with(&f.app, Kind::CreditHold).await;
    let t = ask_as(
        &copilot,
        "service_rep",
        &format!("Release the credit hold on {order}"),
    )
    .await;
    assert_eq!(t.approvals.len(), 1, "{}", t.answer);
    let ap = f.app.approval(&t.approvals[0]).await.unwrap();
    assert_eq!(ap.status, ApprovalStatus::Pending);
    assert_eq!(ap.action, "release_credit_hold");
    assert_eq!(ap.case_id.as_deref(), Some(case.as_str()));
    assert_eq!(ap.approver_roles, vec!["finance".to_string()]);
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, ChatEvent::ApprovalRequested { .. }))
    );
    assert!(t.answer.contains("pending"), "{}", t.answer);
    assert_eq!(f.exec.runs.load(Ordering::SeqCst), 0);
}

/// Contacting a customer from the chat requests the exact text the customer gets: the
/// draft, in the customer's language — never the recommendation's internal purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_contact_requests_the_drafted_text_not_the_purpose() {
    let f = fixture().await;
    let copilot = Copilot::offline(f.app.clone()).unwrap();
    let (order, _) = order_with(&f.app, Kind::ShipmentDelay).await;
    let t = ask_as(
        &copilot,
        "service_rep",
        &format!("Send the customer of {order} an update"),
    )
    .await;
    assert_eq!(t.approvals.len(), 1, "{}", t.answer);
    let ap = f.app.approval(&t.approvals[0]).await.unwrap();
    assert_eq!(ap.action, "contact_customer");
    let message = ap.params["message"].as_str().unwrap();
    assert!(message.contains(&order), "{message}");
    assert!(
        t.answer.contains(message.lines().next().unwrap()),
        "{}",
        t.answer
    );
    assert_ne!(ap.params["purpose"].as_str(), Some(message));
    // A case's contact option, asked for by number, gets its text drafted too.
    let state = f.app.latest().await.unwrap();
    let (case, option, purpose) = state
        .result
        .exceptions
        .iter()
        .find_map(|e| {
            let i = e
                .recommendations
                .iter()
                .position(|r| r.action.name() == "contact_customer")?;
            match &e.recommendations[i].action {
                order_copilot::core::Action::ContactCustomer { purpose, .. } => {
                    Some((e.clone(), i + 1, purpose.clone()))
                }
                _ => None,
            }
        })
        .expect("a demo case proposes contacting the customer");
    let t = ask_as(
        &copilot,
        "admin",
        &format!(
            "Request option {option} for {} (case {})",
            case.order_ref, case.id
        ),
    )
    .await;
    assert_eq!(t.approvals.len(), 1, "{}", t.answer);
    let ap = f.app.approval(&t.approvals[0]).await.unwrap();
    assert_eq!(ap.params["purpose"], purpose.as_str());
    let message = ap.params["message"].as_str().unwrap();
    assert!(
        message.contains(&case.order_ref) && !message.contains(&purpose),
        "{message}"
    );
    assert_eq!(f.exec.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_asked_for_in_chat_is_not_approved_by_the_one_who_asked() {
    let f = fixture().await;
    let copilot = Copilot::offline(f.app.clone()).unwrap();
    let (order, _) = order_with(&f.app, Kind::CreditHold).await;
    let t = ask_as(
        &copilot,
        "finance",
        &format!("Release the credit hold on {order}"),
    )
    .await;
    assert_eq!(t.approvals.len(), 1, "{}", t.answer);
    let id = &t.approvals[0];
    let e = f
        .app
        .decide_approval(&user("finance"), id, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, order_copilot::app::AppError::Forbidden(m) if m.contains("you requested this release_credit_hold")),
        "{e}"
    );
    assert_eq!(
        f.app.approval(id).await.unwrap().status,
        ApprovalStatus::Pending
    );
    assert!(
        audit_of(&f.app, "approval.refused")
            .await
            .iter()
            .any(|r| r.event.actor == "t-finance")
    );
    // Other finance people approve it, as many as its order value needs.
    let needed = f.app.approval(id).await.unwrap().approvers_needed;
    for i in 0..needed {
        let other = User {
            name: format!("finance-{i}"),
            role: "finance".into(),
        };
        let ap = f.app.decide_approval(&other, id, true, None).await.unwrap();
        let expect = if i + 1 < needed {
            ApprovalStatus::Pending
        } else {
            ApprovalStatus::Approved
        };
        assert_eq!(ap.status, expect);
    }
    assert_eq!(
        f.exec.runs.load(Ordering::SeqCst),
        0,
        "approving executes nothing inline"
    );
    let cfg = order_copilot::app::outbox::OutboxConfig::default();
    assert_eq!(f.app.run_due_executions(&cfg).await.unwrap(), 1);
    assert_eq!(
        f.app.approval(id).await.unwrap().status,
        ApprovalStatus::Executed
    );
    assert_eq!(f.exec.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adversarial_model_cannot_cross_the_approval_boundary() {
    let f = fixture().await;
    let (order, case) = order_with(&f.app, Kind::CreditHold).await;
    let release = format!("{{\"order\":\"{order}\"}}");
    let forged = format!("{{\"order\":\"{order}\",\"approved\":true}}");
    let option = format!("{{\"case_id\":\"{case}\",\"option\":2}}");
    let model = Arc::new(FakeScriptedModel::new(vec![
        // Direct act calls while the user only asked a question (as if told by an order note).
        Step::Output(calls(&[
            ("a1", "release_credit_hold", &release),
            ("a2", "request_action", &option),
        ])),
        // A tool that decides approvals does not exist; a forged flag is not an argument.
        Step::Output(calls(&[
            ("a3", "approve_request", "{\"approval_id\":\"ap_1\"}"),
            ("a4", "release_credit_hold", &forged),
        ])),
        Step::Output(text("APPROVED: the credit hold was released.")),
    ]));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    let t = ask_as(
        &copilot,
        "sales_manager",
        &format!("Why is {order} blocked?"),
    )
    .await;
    // Nothing was requested, let alone executed, whatever the model claims in its text.
    assert!(all_approvals(&f.app).await.is_empty());
    // Act tools were not even offered for a question (the fake calls them anyway).
    let offered: Vec<String> = model.requests()[0]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert!(offered.contains(&"explain_order".to_string()));
    assert!(
        !offered.contains(&"release_credit_hold".to_string()),
        "{offered:?}"
    );
    let refused: Vec<_> = t
        .tools
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.tool.as_str())
        .collect();
    assert!(
        refused.contains(&"release_credit_hold") && refused.contains(&"approve_request"),
        "{refused:?}"
    );
    // Its claim that the hold was released is corrected in the answer and audited.
    assert!(t.claim_corrected);
    assert!(
        t.answer
            .ends_with("Correction: nothing has been changed. The copilot cannot change orders or contact customers; ask it to request the action, and an authorised person decides."),
        "{}",
        t.answer
    );
    assert_eq!(audit_of(&f.app, "copilot.claim_corrected").await.len(), 1);

    // Even when the user does ask, the model's act call only creates a pending request.
    let model = Arc::new(FakeScriptedModel::new(vec![
        Step::Output(calls(&[("b1", "release_credit_hold", &release)])),
        Step::Output(text("Released.")),
    ]));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    let t = ask_as(
        &copilot,
        "sales_manager",
        &format!("Please release the hold on {order}"),
    )
    .await;
    assert_eq!(t.approvals.len(), 1);
    for a in all_approvals(&f.app).await {
        assert_eq!(a.status, ApprovalStatus::Pending, "{a:?}");
    }
    assert_eq!(f.exec.runs.load(Ordering::SeqCst), 0);
    // The engine made the request the user's message asks for before the model was
    // called (ground first); the result told the model it is pending, and the model's own
    // act call was refused, so there is one request, not two.
    assert!(t.tools[0].tool == "release_credit_hold");
    assert!(t.tools[0].result["data"]["status"] == "pending");
    assert!(t.tools.iter().skip(1).all(|c| !c.ok), "{:?}", t.tools);
    assert!(
        !model.requests()[0]
            .tools
            .iter()
            .any(|t| t.name == "release_credit_hold")
    );
    // "Released." is not true: the answer says what is pending instead.
    assert!(t.claim_corrected);
    assert!(
        t.answer
            .contains(&format!("Approval request {} is pending", t.approvals[0])),
        "{}",
        t.answer
    );

    // A request the model only says it made (no tool call): corrected, nothing pending.
    let model = Arc::new(FakeScriptedModel::new(vec![Step::Output(text(
        "I have requested the release of the credit hold.",
    ))]));
    let copilot = Copilot::new(f.app.clone(), Some(model), CopilotConfig::default()).unwrap();
    let before = all_approvals(&f.app).await.len();
    let t = ask_as(
        &copilot,
        "sales_manager",
        &format!("Why is {order} on hold?"),
    )
    .await;
    assert!(t.approvals.is_empty() && t.claim_corrected);
    assert!(
        t.answer.contains("no approval request was created"),
        "{}",
        t.answer
    );
    assert_eq!(all_approvals(&f.app).await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_loop_runs_parallel_calls_and_feeds_invalid_arguments_back_once() {
    let f = fixture().await;
    let (order, _) = order_with(&f.app, Kind::StockShortage).await;
    let (other, _) = order_with(&f.app, Kind::CreditHold).await;
    let model = Arc::new(FakeScriptedModel::new(vec![
        Step::Output(calls(&[
            ("c1", "explain_order", &format!("{{\"order\":\"{order}\"}}")),
            ("c2", "explain_order", &format!("{{\"order\":\"{other}\"}}")),
            ("c3", "explain_order", "{\"ordr\":1}"),
        ])),
        Step::Output(text(&format!("{order} is short of stock [{order}]."))),
    ]));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    let t = ask_as(&copilot, "planner", &format!("Compare {order} and {other}")).await;
    assert!(!t.fallback, "{:?}", t.events);
    // The first call is the evidence the engine fetched before asking the model.
    assert_eq!(t.tools.len(), 4);
    assert!(t.tools[0].ok && t.tools[1].ok && t.tools[2].ok && !t.tools[3].ok);
    let reqs = model.requests();
    assert_eq!(reqs.len(), 2);
    let tool_msgs: Vec<_> = reqs[1]
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert_eq!(tool_msgs.len(), 4);
    assert!(tool_msgs[3].content.contains("invalid arguments"));
    assert_eq!(t.answer, format!("{order} is short of stock [{order}]."));
    assert_eq!(t.tokens.prompt, 200);
}

/// Ground first: a question the resolver places gets its evidence before the model is
/// called, with at most four tools offered, and is answered in one model call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_question_is_grounded_first_and_answered_in_one_call() {
    let f = fixture().await;
    let (order, case) = order_with(&f.app, Kind::CreditHold).await;
    let said = format!("{order} is held for credit [{case}].");
    let model = Arc::new(FakeScriptedModel::new(vec![Step::Output(text(&said))]));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    let t = ask_as(&copilot, "service_rep", &format!("Why is {order} blocked?")).await;
    let reqs = model.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(t.model_calls, 1);
    assert!(!t.fallback && !t.grounding_corrected, "{:?}", t.events);
    assert_eq!(t.answer, said);
    assert_eq!(t.tools[0].tool, "explain_order");
    let evidence: Vec<_> = reqs[0]
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert_eq!(evidence.len(), 1);
    assert!(
        evidence[0].content.contains(&case),
        "{}",
        evidence[0].content
    );
    let offered: Vec<&str> = reqs[0].tools.iter().map(|t| t.name.as_str()).collect();
    assert!(
        offered.len() <= 4 && offered.contains(&"explain_order"),
        "{offered:?}"
    );
    // The answer streamed only after the figure check passed it.
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, ChatEvent::TextDelta { text } if text == &said))
    );

    // A greeting needs neither evidence nor a model.
    let model = Arc::new(FakeScriptedModel::new(vec![]));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    let t = ask_as(&copilot, "service_rep", "hello").await;
    assert!(model.requests().is_empty() && t.tools.is_empty() && !t.fallback);
    assert!(t.answer.starts_with("Hello"), "{}", t.answer);
}

/// The figure check: an amount the evidence does not hold is never shown; the model is
/// asked once to correct it, and a second miss gets the offline answer with a notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invented_figure_is_corrected_once_then_answered_offline() {
    let f = fixture().await;
    let (order, case) = order_with(&f.app, Kind::CreditHold).await;
    let invented = format!("{order} exceeds its credit limit of 123,456.78 EUR.");
    let fixed = format!("{order} is held for credit [{case}].");
    let model = Arc::new(FakeScriptedModel::new(vec![
        Step::Output(text(&invented)),
        Step::Output(text(&fixed)),
    ]));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    let t = ask_as(&copilot, "finance", &format!("Why is {order} blocked?")).await;
    assert!(t.grounding_corrected && !t.fallback, "{:?}", t.events);
    assert_eq!(t.answer, fixed);
    assert_eq!(t.model_calls, 2);
    let reqs = model.requests();
    let asked = &reqs[1].messages.last().unwrap().content;
    assert!(asked.contains("123,456.78"), "{asked}");
    assert!(reqs[1].tools.is_empty());
    // What the user read never held the invented figure.
    assert!(
        !serde_json::to_string(&t.events)
            .unwrap()
            .contains("123,456.78")
    );
    assert_eq!(
        audit_of(&f.app, "copilot.grounding_correction").await.len(),
        1
    );

    let model = Arc::new(FakeScriptedModel::new(vec![
        Step::Output(text(&invented)),
        Step::Output(text(&format!("{order}: limit 999,999.99 EUR."))),
    ]));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    let t = ask_as(&copilot, "finance", &format!("Why is {order} blocked?")).await;
    assert!(t.grounding_corrected && t.fallback);
    assert!(
        t.answer.contains(&case) && !t.answer.contains("999,999.99"),
        "{}",
        t.answer
    );
    assert!(t.events.iter().any(
        |e| matches!(e, ChatEvent::Notice { message } if message.contains("does not show") && message.contains("answered offline"))
    ));
    assert!(
        !serde_json::to_string(&t.events)
            .unwrap()
            .contains("999,999.99")
    );
    // The offline answer reuses the evidence: explain_order ran once.
    assert_eq!(
        t.tools.iter().filter(|c| c.tool == "explain_order").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_errors_are_handled_by_class() {
    let f = fixture().await;
    let (order, _) = order_with(&f.app, Kind::StockShortage).await;
    let cfg = CopilotConfig {
        turn_budget: Duration::from_millis(800),
        ..CopilotConfig::default()
    };
    let q = ask(&format!("Why is {order} blocked?"));
    let run = |steps: Vec<Step>| {
        let app = f.app.clone();
        let cfg = cfg.clone();
        let q = q.clone();
        async move {
            let model = Arc::new(FakeScriptedModel::new(steps));
            let c = Copilot::new(app, Some(model.clone()), cfg).unwrap();
            (
                c.answer(&user("planner"), q).await.unwrap(),
                model.requests(),
            )
        }
    };
    // Transient: the adapter has retried already (one retry layer), so the engine does
    // not call again; it falls back to offline at once and says so.
    let (t, reqs) = run(vec![
        Step::Fail(ModelError::Transient("refused".into())),
        Step::Output(text("fine")),
    ])
    .await;
    assert!(t.fallback && reqs.len() == 1, "{reqs:?}");
    assert!(t.events.iter().any(
        |e| matches!(e, ChatEvent::Notice { message } if message.contains("answered offline"))
    ));
    assert!(t.answer.contains(&order));
    // Context too long: trimmed once and retried.
    let (t, reqs) = run(vec![
        Step::Fail(ModelError::ContextTooLong("8192".into())),
        Step::Output(text("short")),
    ])
    .await;
    assert!(!t.fallback && reqs.len() == 2);
    // Slower than the budget: offline answer within the budget.
    let started = std::time::Instant::now();
    let (t, _) = run(vec![Step::Slow(Duration::from_secs(30), text("late"))]).await;
    assert!(t.fallback && started.elapsed() < Duration::from_secs(5));
    // Garbage (nothing usable): offline.
    let (t, _) = run(vec![Step::Output(text("   "))]).await;
    assert!(t.fallback);
    // Permanent: offline.
    let (t, _) = run(vec![Step::Fail(ModelError::Permanent("401".into()))]).await;
    assert!(t.fallback);
    // Invalid arguments twice: abandoned, offline.
    let (t, reqs) = run(vec![
        Step::Output(calls(&[("i1", "explain_order", "not json")])),
        Step::Output(calls(&[("i2", "explain_order", "{\"order\": 5}")])),
        Step::Output(text("never reached")),
    ])
    .await;
    assert!(t.fallback && reqs.len() == 2);
    // Step limit: a model that never stops calling tools.
    let looping = vec![Step::Output(calls(&[("x", "list_exceptions", "{}")])); 10];
    let (t, reqs) = run(looping).await;
    assert!(t.fallback && reqs.len() == CopilotConfig::default().step_limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_providers_never_receive_credit_figures() {
    let f = fixture().await;
    let (order, _) = order_with(&f.app, Kind::CreditHold).await;
    let model = Arc::new(FakeScriptedModel::with_provider(
        vec![
            Step::Output(calls(&[(
                "r1",
                "explain_order",
                &format!("{{\"order\":\"{order}\"}}"),
            )])),
            Step::Output(text("ok")),
        ],
        Provider::External,
    ));
    let copilot =
        Copilot::new(f.app.clone(), Some(model.clone()), CopilotConfig::default()).unwrap();
    copilot
        .answer(&user("finance"), ask(&format!("Why is {order} on hold?")))
        .await
        .unwrap();
    let state = f.app.latest().await.unwrap();
    let e = state
        .result
        .exceptions
        .iter()
        .find(|e| e.order_ref == order && e.kind == Kind::CreditHold)
        .unwrap();
    let limit_fact = e
        .evidence
        .iter()
        .find(|x| x.fact.starts_with("credit limit"))
        .unwrap();
    let sent = serde_json::to_string(&model.requests()[1].messages).unwrap();
    assert!(!sent.contains(&limit_fact.fact), "credit fact leaked");
    assert!(sent.contains("withheld: credit_payment"));
    let prompts = audit_of(&f.app, "llm.prompt").await;
    assert!(
        prompts
            .iter()
            .any(|r| r.event.payload["redacted"]["credit_payment"].as_u64() > Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_resume_and_belong_to_their_owner() {
    let f = fixture().await;
    let copilot = Copilot::offline(f.app.clone()).unwrap();
    let (order, _) = order_with(&f.app, Kind::StockShortage).await;
    let ana = user("service_rep");
    let first = copilot
        .answer(&ana, ask(&format!("why is {order} blocked")))
        .await
        .unwrap();
    let second = copilot
        .answer(
            &ana,
            ChatRequest {
                message: "what are my options?".into(),
                conversation_id: Some(first.conversation_id.clone()),
                order: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.conversation_id, first.conversation_id);
    assert_eq!(second.tools[0].arguments["order"], order.as_str());
    assert!(
        second.answer.contains("Option 1") || second.answer.contains("No automatic option"),
        "{}",
        second.answer
    );
    let conv = copilot
        .conversation(&ana, &first.conversation_id)
        .await
        .unwrap();
    assert_eq!(conv["turns"].as_array().unwrap().len(), 2);
    assert!(
        copilot
            .conversation(&user("planner"), &first.conversation_id)
            .await
            .is_err()
    );
    let stolen = copilot
        .answer(
            &user("planner"),
            ChatRequest {
                message: "hi".into(),
                conversation_id: Some(first.conversation_id.clone()),
                order: None,
            },
        )
        .await;
    assert!(stolen.is_err());
    assert!(copilot.answer(&ana, ask("   ")).await.is_err());
    assert!(copilot.answer(&ana, ask(&"x".repeat(4001))).await.is_err());
}

/// Read an SSE body into (event, data) pairs.
fn frames(body: &str) -> Vec<(String, serde_json::Value)> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut lines = f.lines();
            let event = lines
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_string();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            assert!(lines.next().is_none(), "one data line per event");
            (event, serde_json::from_str(data).unwrap())
        })
        .collect()
}

async fn chat_api(db: Db) {
    let server = TestServer::start(db, 300).await;
    let c = client();
    let state = server.app.latest().await.unwrap();
    let order = state
        .result
        .exceptions
        .iter()
        .find(|e| e.order_ref.starts_with('S'))
        .unwrap()
        .order_ref
        .clone();
    let rep = server.token("rep", "service_rep").await;
    let resp = c
        .post(server.url("/api/chat"))
        .bearer_auth(&rep)
        .json(&serde_json::json!({"message": format!("why is {order} blocked?"), "conversation_id": null, "order": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    let fs = frames(&body);
    assert_eq!(fs.first().unwrap().0, "conversation");
    assert_eq!(fs.last().unwrap().0, "done");
    let conv = fs[0].1["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(fs[0].1["mode"], "offline");
    assert!(
        fs.iter()
            .any(|(e, d)| e == "tool_call" && d["risk"] == "read")
    );
    assert!(
        fs.iter()
            .any(|(e, d)| e == "tool_result"
                && d["sources"].as_array().is_some_and(|s| !s.is_empty()))
    );
    let text: String = fs
        .iter()
        .filter(|(e, _)| e == "text_delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert!(text.contains(&order));
    let done = &fs.last().unwrap().1;
    assert_eq!(done["fallback"], false);
    assert!(done["citations"].as_array().is_some_and(|c| !c.is_empty()));
    assert!(done["tokens"]["prompt"].is_u64() && done["ms"].is_number());

    // Resumable: the stored conversation, for its owner only.
    let got: serde_json::Value = c
        .get(server.url(&format!("/api/conversations/{conv}")))
        .bearer_auth(&rep)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["turns"][0]["answer"].as_str().unwrap(), text.trim_end());
    let other = server.token("other", "planner").await;
    let r = c
        .get(server.url(&format!("/api/conversations/{conv}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Validation happens before streaming.
    for bad in [
        serde_json::json!({"message": ""}),
        serde_json::json!({"message": "x".repeat(4001)}),
        serde_json::json!({"message": "hi", "extra": 1}),
    ] {
        let r = c
            .post(server.url("/api/chat"))
            .bearer_auth(&rep)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = c
        .post(server.url("/api/chat"))
        .json(&serde_json::json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.stop().await;
}

both!(chat_api);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typical_turn_fits_the_prompt_budget() {
    let f = fixture().await;
    let copilot = Copilot::offline(f.app.clone()).unwrap();
    let (order, _) = order_with(&f.app, Kind::CreditHold).await;
    let b = order_copilot::cli::copilot::prompt_budget(&copilot, &[order], None)
        .await
        .unwrap();
    println!("prompt budget: {b}");
    // Ground first: one request with the evidence and at most four tools (was ~1,600).
    assert!(b["total"].as_u64().unwrap() <= 1200, "{b}");
}

/// The same budget as the real local model counts it (its chat template wraps the tool
/// schemas in its own text): the one request of a typical turn within 1,200 prompt tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typical_turn_fits_the_prompt_budget_as_the_live_model_counts_it() {
    let vars = |name: &str| std::env::var(format!("TEST_{name}")).ok();
    let Some(cfg) = order_copilot::copilot::openai::OpenAiConfig::from_vars(vars).unwrap() else {
        eprintln!(
            "a_typical_turn_fits_the_prompt_budget_as_the_live_model_counts_it: NOT RUN — TEST_LLM_BASE_URL is not set (scripts/test sets it when scripts/local-llm can start the local model)"
        );
        return;
    };
    let model = order_copilot::copilot::openai::OpenAiModel::new(cfg).unwrap();
    let f = fixture().await;
    let copilot = Copilot::offline(f.app.clone()).unwrap();
    let (order, _) = order_with(&f.app, Kind::CreditHold).await;
    let b = order_copilot::cli::copilot::prompt_budget(&copilot, &[order], Some(&model))
        .await
        .unwrap();
    println!("prompt budget: {b}");
    let counted = b["by_model"].as_u64().unwrap();
    assert!(counted > 300 && counted <= 1200, "{b}");
}
