//! Canary test of redaction by value: the demo carries unique values of every data class
//! (`demo::canaries`: a contact e-mail and phone in an order note, a credit limit; the
//! costs canary is the largest product cost the scan's evidence quotes). The whole offline
//! eval suite runs through the model path with a recording model that also asks for the
//! canary order and customer on every turn, and a recording embedder behind retrieval
//! (documents, a resolved case whose outcome quotes the contact, and every query). Under
//! the `external` policy no canary byte leaves; under `local` every one arrives, so the
//! test can fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use order_copilot::app::User;
use order_copilot::app::source::BoxFuture;
use order_copilot::copilot::eval;
use order_copilot::copilot::fake::{calls, first_order, text};
use order_copilot::copilot::model::{
    Model, ModelError, ModelEvent, ModelOutput, ModelRequest, Provider, Role,
};
use order_copilot::copilot::{Copilot, CopilotConfig};
use order_copilot::policy::Policy;
use order_copilot::retrieval::embed::{Embedder, ScrubbingEmbedder, normalise};
use order_copilot::retrieval::{RetrievalConfig, Retriever, corpus_docs};
use order_copilot::store::{CaseStatus, Store};

/// Every request body a model or embeddings endpoint would have received.
#[derive(Default)]
struct Wire(Mutex<Vec<String>>);

impl Wire {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn occurrences(&self, needle: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.matches(needle).count())
            .sum()
    }
}

/// A model that asks for the order in the question, the canary order and customer, and
/// past cases like the question, then answers with what the tools said.
struct RecordingModel {
    provider: Provider,
    wire: Arc<Wire>,
    order: String,
    customer: String,
}

impl Model for RecordingModel {
    fn name(&self) -> String {
        "recording".into()
    }

    fn provider(&self) -> Provider {
        self.provider
    }

    fn complete<'a>(
        &'a self,
        req: &'a ModelRequest,
        sink: &'a mut (dyn FnMut(ModelEvent) + Send),
    ) -> BoxFuture<'a, Result<ModelOutput, ModelError>> {
        Box::pin(async move {
            self.wire
                .0
                .lock()
                .unwrap()
                .push(serde_json::to_string(&req.messages).unwrap());
            let last_user = req
                .messages
                .iter()
                .rposition(|m| m.role == Role::User)
                .unwrap_or(0);
            let results: Vec<&str> = req.messages[last_user..]
                .iter()
                .filter(|m| m.role == Role::Tool)
                .map(|m| m.content.as_str())
                .collect();
            // The engine fetches a placed question's evidence before the first call; this
            // model still asks for the canaries once per turn.
            let asked_already = req.messages[last_user..]
                .iter()
                .any(|m| m.tool_calls.iter().any(|c| c.id == "c1"));
            if !results.is_empty() && asked_already {
                // The answer repeats the tool results: the next turn's history carries them.
                let answer = results.join("\n");
                sink(ModelEvent::TextDelta(answer.clone()));
                return Ok(text(&answer));
            }
            let question = &req.messages[last_user].content;
            let asked = first_order(question).unwrap_or_else(|| self.order.clone());
            let explain_asked = format!("{{\"order\":\"{asked}\"}}");
            let explain_canary = format!("{{\"order\":\"{}\"}}", self.order);
            let credit = serde_json::json!({"customer": self.customer}).to_string();
            // Past cases like the question, and like the resolved case that quotes the
            // canaries (so it is retrieved whatever the question).
            let q: String = question.chars().take(150).collect();
            let similar =
                serde_json::json!({"query": format!("{q} confirmed the new date")}).to_string();
            Ok(calls(&[
                ("c1", "explain_order", &explain_asked),
                ("c2", "explain_order", &explain_canary),
                ("c3", "customer_credit", &credit),
                ("c4", "similar_cases", &similar),
            ]))
        })
    }
}

/// An embeddings endpoint that records its inputs (word-hash vectors).
struct RecordingEmbedder(Arc<Wire>);

impl Embedder for RecordingEmbedder {
    fn name(&self) -> String {
        "recording".into()
    }
    fn dim(&self) -> usize {
        32
    }
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            self.0
                .0
                .lock()
                .unwrap()
                .push(serde_json::to_string(texts).unwrap());
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0f32; 32];
                    for (i, b) in t.bytes().enumerate() {
                        v[(i + usize::from(b)) % 32] += 1.0;
                    }
                    normalise(v)
                })
                .collect())
        })
    }
}

struct Run {
    chat: Arc<Wire>,
    embeddings: Arc<Wire>,
    canaries: Vec<(&'static str, String)>,
}

async fn run(provider: Provider) -> Run {
    let cases = eval::parse(eval::CASES).unwrap();
    let cfg = fresh(Db::Sqlite).await;
    let store = Store::open(&cfg).await.unwrap();
    let policy = Arc::new(Policy::embedded().unwrap());
    let world = eval::world(&cases, store, policy, 1500).await.unwrap();
    let app = world.app.clone();
    let state = app.latest().await.unwrap();
    let c = order_copilot::demo::canaries(&state.snapshot).expect("the demo plants canaries");
    // The costs canary: the longest cost figure the scan's evidence quotes.
    let cost = state
        .result
        .exceptions
        .iter()
        .flat_map(|e| e.evidence.iter())
        .filter_map(|ev| ev.fact.split(" and cost ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .max_by_key(|c| (c.len(), c.to_string()))
        .expect("a margin-floor fact quotes a cost")
        .to_string();
    let cost_order = state
        .result
        .exceptions
        .iter()
        .find(|e| {
            e.evidence
                .iter()
                .any(|ev| ev.fact.contains(&format!(" and cost {cost} ")))
        })
        .unwrap()
        .order_ref
        .clone();
    // A person resolved a case and wrote the contact into the outcome (past-case notes are
    // retrieved, and embedded).
    let case = state
        .result
        .exceptions
        .iter()
        .find(|e| e.order_ref == c.order)
        .or_else(|| state.result.exceptions.first())
        .unwrap()
        .id
        .clone();
    let admin = User {
        name: "canary-admin".into(),
        role: "admin".into(),
    };
    let outcome = format!(
        "Confirmed the new date with {} ({}); limit stays at {}, cost {}.",
        c.email, c.phone, c.credit_limit, cost
    );
    app.decide_case(&admin, &case, CaseStatus::Resolved, Some(&outcome))
        .await
        .unwrap();

    let embeddings = Arc::new(Wire::default());
    let recorder: Arc<dyn Embedder> = Arc::new(RecordingEmbedder(embeddings.clone()));
    let embedder: Arc<dyn Embedder> = match provider {
        Provider::External => Arc::new(ScrubbingEmbedder::new(
            recorder,
            app.embeddings_scrub("external"),
        )),
        Provider::Local => recorder,
    };
    let resolved = app.resolved_case_docs(1000).await.unwrap();
    let docs = corpus_docs(None, &state.snapshot, resolved).unwrap();
    let retriever =
        Retriever::build_with_embedder(&RetrievalConfig::bm25_only(), Some(embedder), docs)
            .await
            .unwrap();
    assert!(app.set_retriever(Arc::new(retriever)));

    let chat = Arc::new(Wire::default());
    let model = Arc::new(RecordingModel {
        provider,
        wire: chat.clone(),
        order: c.order.clone(),
        customer: c.customer.clone(),
    });
    let copilot = Copilot::new(app.clone(), Some(model), CopilotConfig::default()).unwrap();
    copilot.set_knowledge(Arc::new(
        order_copilot::copilot::knowledge::AppPassages::new(app.clone()),
    ));
    let mut cases_run = cases.clone();
    // One more case asks about the order whose evidence quotes the costs canary.
    let mut extra = cases_run.cases[0].clone();
    extra.id = "canary_cost".into();
    extra.fixture = None;
    extra.note = None;
    extra.role = "finance".into();
    extra.turn = vec![eval_turn(&format!("Why is {cost_order} flagged?"))];
    cases_run.cases.push(extra);
    let report = eval::run(&world, &copilot, &cases_run).await;
    assert!(report.turns >= cases.cases.len(), "{}", report.turns);
    Run {
        chat,
        embeddings,
        canaries: vec![
            ("personal_contact e-mail", c.email),
            ("personal_contact phone", c.phone),
            ("credit_payment limit", c.credit_limit),
            ("costs_margins cost", cost),
        ],
    }
}

fn eval_turn(message: &str) -> eval::EvalTurn {
    eval::EvalTurn {
        message: message.to_string(),
        tools: Vec::new(),
        args: Default::default(),
        facts: Vec::new(),
        approval: false,
        no_tools: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_leaves_for_an_external_model_and_all_arrive_locally() {
    let external = run(Provider::External).await;
    let mut leaked = 0;
    for (class, value) in &external.canaries {
        let n = external.chat.occurrences(value) + external.embeddings.occurrences(value);
        println!("external: {class} {value}: {n} occurrences");
        leaked += n;
    }
    println!(
        "external: {} chat requests, {} embeddings requests captured, {leaked} canary occurrences",
        external.chat.count(),
        external.embeddings.count()
    );
    assert!(external.chat.count() > 100 && external.embeddings.count() > 10);
    assert_eq!(leaked, 0, "canary values left for an external provider");

    let local = run(Provider::Local).await;
    for (class, value) in &local.canaries {
        let chat = local.chat.occurrences(value);
        let emb = local.embeddings.occurrences(value);
        println!("local: {class} {value}: {chat} in chat, {emb} in embeddings");
        assert!(
            chat > 0,
            "{class} never reached a local model: the test could not fail"
        );
        assert!(emb > 0, "{class} never reached a local embedder");
    }
    // What people wrote when resolving a case reaches the model only quoted as untrusted.
    let bodies = local.chat.0.lock().unwrap();
    let quoted: Vec<&String> = bodies
        .iter()
        .filter(|b| b.contains("Confirmed the new date"))
        .collect();
    assert!(!quoted.is_empty(), "the resolved case was never retrieved");
    for b in quoted {
        let at = b.find("Confirmed the new date").unwrap();
        let label = b[..at].rfind("untrusted_text").expect("labelled untrusted");
        assert!(at - label < 600, "{}", &b[label..at]);
    }
}
