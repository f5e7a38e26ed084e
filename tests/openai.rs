//! The OpenAI-compatible adapter against recorded exchanges with a real model server.
//!
//! `tests/fixtures/openai/*.json` were recorded in this project from llama.cpp's
//! `llama-server` running Qwen2.5-Coder-1.5B-Instruct (`scripts/local-llm start`), through
//! a recording proxy in this file (`record_fixtures_from_live_model`). Each holds the
//! `ModelRequest` the adapter was given, the request body it sent and the server's raw
//! answer. The replay tests give the adapter the same `ModelRequest`, serve the recorded
//! bytes from a fake server on an ephemeral port only if the body the adapter sends now is
//! exactly the recorded one, and check what the adapter makes of them. The error-path
//! tests script the fake server (429, 5xx, hangs, truncated streams, refused connections).
//! The live smoke test talks to a real model when `LLM_BASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use order_copilot::copilot::model::{
    ChatMessage, FinishReason, Model, ModelError, ModelEvent, ModelOutput, ModelRequest, Provider,
    Role, ToolCall, ToolSpec,
};
use order_copilot::copilot::openai::{OpenAiConfig, OpenAiModel, RetryPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Fixtures

/// One recorded exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fixture {
    /// What the exchange shows.
    description: String,
    /// The model (alias) that answered.
    model: String,
    /// What the adapter was asked.
    input: ModelRequest,
    /// The request body the adapter sent.
    request: Value,
    /// The server's status, content type and raw body.
    status: u16,
    content_type: String,
    response: String,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openai")
}

fn load(name: &str) -> Fixture {
    let path = fixture_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a stream of chat-completion chunks says, decoded here independently of the
/// adapter (plain JSON values, no async-openai types).
#[derive(Debug, Default)]
struct Decoded {
    text: String,
    calls: BTreeMap<u64, (String, String, String)>,
    finish: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

fn decode_sse(body: &str) -> Decoded {
    let mut d = Decoded::default();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            d.prompt_tokens = u["prompt_tokens"].as_u64().unwrap();
            d.completion_tokens = u["completion_tokens"].as_u64().unwrap();
        }
        for choice in chunk["choices"].as_array().unwrap() {
            let delta = &choice["delta"];
            if let Some(t) = delta["content"].as_str() {
                d.text.push_str(t);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let entry = d.calls.entry(call["index"].as_u64().unwrap()).or_default();
                if let Some(id) = call["id"].as_str() {
                    entry.0 = id.to_owned();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    entry.1.push_str(name);
                }
                if let Some(args) = call["function"]["arguments"].as_str() {
                    entry.2.push_str(args);
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                d.finish = Some(f.to_owned());
            }
        }
    }
    d
}

// ---------------------------------------------------------------------------------------
// The fake server

/// What the fake server answers to one request.
#[derive(Clone)]
enum Reply {
    /// The recorded answer, only if the request body equals the recorded one.
    Recorded(Box<Fixture>),
    /// A status with headers and a body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// The first `n` bytes of a recorded answer, then the connection ends.
    Truncated(Box<Fixture>, usize),
    /// A 200 event stream: the first `n` bytes of a recording, then `tail`.
    Spliced(Box<Fixture>, usize, String),
    /// Never answers.
    Hang,
}

#[derive(Default)]
struct FakeState {
    replies: Mutex<VecDeque<Reply>>,
    /// Request bodies received, in order.
    received: Mutex<Vec<Value>>,
    /// Requests whose body did not match the recording.
    mismatches: Mutex<Vec<String>>,
    /// The Authorization header of each request.
    auth: Mutex<Vec<Option<String>>>,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<FakeState>,
}

impl Fake {
    async fn start(replies: Vec<Reply>) -> Fake {
        let state = Arc::new(FakeState {
            replies: Mutex::new(replies.into()),
            ..FakeState::default()
        });
        let app = Router::new()
            .route("/v1/chat/completions", axum::routing::post(fake_handler))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { addr, state }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn requests(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    fn mismatches(&self) -> Vec<String> {
        self.state.mismatches.lock().unwrap().clone()
    }
}

/// The recorded body served a few bytes at a time, so event boundaries fall anywhere.
fn dribble(bytes: Vec<u8>) -> Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(23)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(futures::stream::iter(pieces))
}

async fn fake_handler(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.received.lock().unwrap().push(received.clone());
    state.auth.lock().unwrap().push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_owned()),
    );
    let reply = state.replies.lock().unwrap().pop_front();
    let respond = |status: u16, content_type: &str, body: Body| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    };
    match reply {
        Some(Reply::Recorded(f)) => {
            if received != f.request {
                state.mismatches.lock().unwrap().push(format!(
                    "sent:\n{}\nrecorded:\n{}",
                    serde_json::to_string_pretty(&received).unwrap(),
                    serde_json::to_string_pretty(&f.request).unwrap()
                ));
                return respond(
                    400,
                    "application/json",
                    Body::from(
                        r#"{"error":{"message":"request does not match the recording","type":"invalid_request_error"}}"#,
                    ),
                );
            }
            respond(f.status, &f.content_type, dribble(f.response.into_bytes()))
        }
        Some(Reply::Truncated(f, n)) => {
            let mut bytes = f.response.into_bytes();
            bytes.truncate(n);
            respond(200, "text/event-stream", dribble(bytes))
        }
        Some(Reply::Status(status, extra, body)) => {
            let mut r = Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "application/json");
            for (k, v) in extra {
                r = r.header(k, v);
            }
            r.body(Body::from(body)).unwrap()
        }
        Some(Reply::Spliced(f, n, tail)) => {
            let mut bytes = f.response.into_bytes();
            bytes.truncate(n);
            bytes.extend_from_slice(tail.as_bytes());
            respond(200, "text/event-stream", dribble(bytes))
        }
        Some(Reply::Hang) => std::future::pending().await,
        None => respond(
            500,
            "text/plain",
            Body::from("the fake server has no reply left"),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Requests used by the recordings

const SYSTEM: &str = "You are the order copilot of a wholesale distributor. You help service reps with sales orders and their exceptions. Use the tools to look up facts; never invent order data. Once a tool result is available, do not call the same tool again: answer in two or three sentences, citing the order reference.";

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "explain_order".into(),
            description: "Explain everything that blocks or threatens one sales order: the exceptions, their evidence and the options.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"order": {"type": "string", "description": "Sales order reference, e.g. S00042"}},
                "required": ["order"]
            }),
        },
        ToolSpec {
            name: "customer_credit".into(),
            description: "Credit limit, exposure, overdue invoices and holds of one customer.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"customer": {"type": "string", "description": "Customer name or reference"}},
                "required": ["customer"]
            }),
        },
    ]
}

fn request(messages: Vec<ChatMessage>, tools: Vec<ToolSpec>, max_tokens: u32) -> ModelRequest {
    ModelRequest {
        messages,
        tools,
        max_tokens,
        timeout: Duration::from_secs(120),
    }
}

fn model_for(base_url: &str, model: &str) -> OpenAiModel {
    OpenAiModel::new(OpenAiConfig::new(base_url, model).unwrap()).unwrap()
}

async fn complete(
    model: &OpenAiModel,
    req: &ModelRequest,
) -> (Result<ModelOutput, ModelError>, Vec<String>) {
    let mut deltas = Vec::new();
    let mut sink = |e: ModelEvent| match e {
        ModelEvent::TextDelta(t) => deltas.push(t),
    };
    let out = model.complete(req, &mut sink).await;
    (out, deltas)
}

/// Replays `name` and checks the adapter's output against the recording's own content.
async fn replay(name: &str) -> (ModelOutput, Vec<String>, Fixture) {
    let f = load(name);
    let fake = Fake::start(vec![Reply::Recorded(Box::new(f.clone()))]).await;
    let model = model_for(&fake.base_url(), &f.model);
    let (out, deltas) = complete(&model, &f.input).await;
    assert_eq!(
        fake.mismatches(),
        Vec::<String>::new(),
        "request body differs from the recording"
    );
    let out = out.unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = decode_sse(&f.response);
    assert_eq!(out.text, want.text, "{name}: text");
    assert_eq!(deltas.concat(), out.text, "{name}: streamed text");
    assert_eq!(
        u64::from(out.prompt_tokens),
        want.prompt_tokens,
        "{name}: prompt tokens"
    );
    assert_eq!(
        u64::from(out.completion_tokens),
        want.completion_tokens,
        "{name}: completion tokens"
    );
    let calls: Vec<(String, String, String)> = want.calls.into_values().collect();
    let got: Vec<(String, String, String)> = out
        .tool_calls
        .iter()
        .map(|c| (c.id.clone(), c.name.clone(), c.arguments.clone()))
        .collect();
    assert_eq!(got, calls, "{name}: tool calls");
    (out, deltas, f)
}

// ---------------------------------------------------------------------------------------
// Replays of recorded exchanges

#[tokio::test]
async fn recorded_tool_call_is_decoded_from_streamed_fragments() {
    let (out, deltas, f) = replay("tool_call").await;
    assert_eq!(out.finish, FinishReason::ToolCalls);
    assert!(deltas.is_empty(), "no text beside the call: {deltas:?}");
    assert_eq!(out.tool_calls.len(), 1);
    let call = &out.tool_calls[0];
    assert_eq!(call.name, "explain_order");
    assert_eq!(call.id.len(), 32, "llama-server's ids are 32 characters");
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(args, json!({"order": "S00042"}));
    assert!(
        out.prompt_tokens > 100 && out.completion_tokens > 5,
        "{out:?}"
    );
    // the request carried both tools, streaming with usage, temperature 0
    assert_eq!(f.request["tools"].as_array().unwrap().len(), 2);
    assert_eq!(f.request["stream_options"]["include_usage"], json!(true));
    assert_eq!(f.request["temperature"], json!(0.0));
}

#[tokio::test]
async fn recorded_tool_result_follow_up_answers_in_text() {
    let (out, deltas, f) = replay("tool_result").await;
    assert_eq!(out.finish, FinishReason::Stop);
    assert!(out.tool_calls.is_empty());
    assert!(
        deltas.len() > 3,
        "the answer streamed in pieces: {deltas:?}"
    );
    assert!(out.text.contains("S00042"), "{}", out.text);
    // the assistant's call and the tool's answer went back in OpenAI's shape
    let messages = f.request["messages"].as_array().unwrap();
    let call = &messages[2]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "explain_order");
    assert!(
        messages[2].get("content").is_none(),
        "no empty content beside tool calls"
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], call["id"]);
}

#[tokio::test]
async fn recorded_plain_text_streams_through_the_sink() {
    let (out, deltas, f) = replay("plain_text").await;
    assert_eq!(out.finish, FinishReason::Stop);
    assert!(out.tool_calls.is_empty());
    assert!(deltas.len() > 3);
    assert!(!out.text.trim().is_empty());
    assert!(f.request.get("tools").is_none() && f.request.get("parallel_tool_calls").is_none());
}

#[tokio::test]
async fn recorded_context_overflow_is_context_too_long() {
    let f = load("context_too_long");
    assert_eq!(f.status, 400);
    let fake = Fake::start(vec![Reply::Recorded(Box::new(f.clone()))]).await;
    let model = model_for(&fake.base_url(), &f.model);
    let (out, deltas) = complete(&model, &f.input).await;
    assert_eq!(fake.mismatches(), Vec::<String>::new());
    assert!(matches!(out, Err(ModelError::ContextTooLong(_))), "{out:?}");
    assert!(deltas.is_empty());
    assert_eq!(fake.requests(), 1, "not retried");
}

/// Parallel calls as OpenAI streams them (index 0 and 1 interleaved). The local model
/// never makes parallel calls, so this stream is built from the recorded tool-call
/// chunks: the recording's call is split in two halves interleaved with a second call
/// at index 1, in the same chunk shape.
#[tokio::test]
async fn parallel_tool_calls_are_kept_apart_by_index() {
    let mut f = load("tool_call");
    let chunks: Vec<Value> = f
        .response
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut out = String::new();
    for chunk in &chunks {
        out.push_str(&format!("data: {chunk}\n\n"));
        let has_call = chunk["choices"][0]["delta"]["tool_calls"].is_array();
        if has_call {
            let mut second = chunk.clone();
            let call = &mut second["choices"][0]["delta"]["tool_calls"][0];
            call["index"] = json!(1);
            // the second call's arguments arrive whole in its first fragment
            if call.get("id").is_some() {
                call["id"] = json!("second-call-id");
                call["function"]["name"] = json!("customer_credit");
                call["function"]["arguments"] = json!(r#"{"customer": "Acme"}"#);
            } else {
                call["function"]["arguments"] = json!("");
            }
            out.push_str(&format!("data: {second}\n\n"));
        }
    }
    out.push_str("data: [DONE]\n\n");
    f.response = out;
    let fake = Fake::start(vec![Reply::Recorded(Box::new(f.clone()))]).await;
    let model = model_for(&fake.base_url(), &f.model);
    let (got, _) = complete(&model, &f.input).await;
    let got = got.unwrap();
    assert_eq!(got.finish, FinishReason::ToolCalls);
    let calls: Vec<(&str, Value)> = got
        .tool_calls
        .iter()
        .map(|c| (c.name.as_str(), serde_json::from_str(&c.arguments).unwrap()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("explain_order", json!({"order": "S00042"})),
            ("customer_credit", json!({"customer": "Acme"})),
        ]
    );
    assert_eq!(got.tool_calls[1].id, "second-call-id");
}

// ---------------------------------------------------------------------------------------
// Error paths

/// Where the chunk that carries the finish reason starts in a recorded text answer.
fn before_finish(f: &Fixture) -> usize {
    let finish_at = f.response.find(r#""finish_reason":"stop""#).unwrap();
    f.response[..finish_at].rfind("data: ").unwrap()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_millis(300),
    }
}

fn scripted_model(base_url: &str, retry: RetryPolicy) -> OpenAiModel {
    let mut cfg = OpenAiConfig::new(base_url, "qwen2.5-coder-1.5b").unwrap();
    cfg.retry = retry;
    OpenAiModel::new(cfg).unwrap()
}

fn with_timeout(mut req: ModelRequest, timeout: Duration) -> ModelRequest {
    req.timeout = timeout;
    req
}

fn rate_limited(retry_after: &str) -> Reply {
    Reply::Status(
        429,
        vec![("retry-after", retry_after.to_owned())],
        r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
    )
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let f = load("plain_text");
    let fake = Fake::start(vec![
        rate_limited("0.2"),
        Reply::Recorded(Box::new(f.clone())),
    ])
    .await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let started = Instant::now();
    let (out, _) = complete(&model, &f.input).await;
    assert_eq!(out.unwrap().text, decode_sse(&f.response).text);
    assert_eq!(fake.requests(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn retry_after_is_capped() {
    let f = load("plain_text");
    let fake = Fake::start(vec![
        rate_limited("3600"),
        Reply::Recorded(Box::new(f.clone())),
    ])
    .await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let started = Instant::now();
    let (out, _) = complete(&model, &f.input).await;
    assert!(out.is_ok(), "{out:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_fails_fast_as_transient() {
    let f = load("plain_text");
    let fake = Fake::start(vec![
        rate_limited("30"),
        Reply::Recorded(Box::new(f.clone())),
    ])
    .await;
    let retry = RetryPolicy {
        max_retry_after: Duration::from_secs(60),
        ..quick_retries()
    };
    let model = scripted_model(&fake.base_url(), retry);
    let started = Instant::now();
    let (out, _) = complete(
        &model,
        &with_timeout(f.input.clone(), Duration::from_secs(2)),
    )
    .await;
    assert!(
        matches!(&out, Err(ModelError::Transient(m)) if m.contains("429")),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn server_error_then_success() {
    let f = load("tool_call");
    let fake = Fake::start(vec![
        Reply::Status(500, vec![], "upstream exploded".into()),
        Reply::Recorded(Box::new(f.clone())),
    ])
    .await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let (out, _) = complete(&model, &f.input).await;
    assert_eq!(out.unwrap().tool_calls[0].name, "explain_order");
    assert_eq!(fake.requests(), 2);
    assert_eq!(
        fake.mismatches(),
        Vec::<String>::new(),
        "the retry sent the same body"
    );
}

#[tokio::test]
async fn persistent_server_errors_are_transient_after_bounded_retries() {
    let f = load("plain_text");
    let busy = || {
        Reply::Status(
            503,
            vec![],
            r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#.into(),
        )
    };
    let fake = Fake::start(vec![busy(), busy(), busy(), busy()]).await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let (out, _) = complete(&model, &f.input).await;
    assert!(
        matches!(&out, Err(ModelError::Transient(m)) if m.contains("503") && m.contains("Loading model")),
        "{out:?}"
    );
    assert_eq!(fake.requests(), 3, "max_attempts");
}

#[tokio::test]
async fn refused_connection_is_transient_within_the_budget() {
    // a port that was just free: nothing listens on it
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let model = scripted_model(
        &format!("http://127.0.0.1:{port}/v1"),
        RetryPolicy::default(),
    );
    let f = load("plain_text");
    let started = Instant::now();
    let (out, _) = complete(
        &model,
        &with_timeout(f.input.clone(), Duration::from_secs(3)),
    )
    .await;
    assert!(
        matches!(&out, Err(ModelError::Transient(m)) if m.contains("connect")),
        "{out:?}"
    );
    // three attempts with 250 ms .. 2 s backoff, never past the 3 s budget
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(took >= Duration::from_millis(125), "it did retry: {took:?}");
}

#[tokio::test]
async fn a_silent_server_is_a_timeout_at_the_requests_deadline() {
    let fake = Fake::start(vec![Reply::Hang]).await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let f = load("plain_text");
    let started = Instant::now();
    let timeout = Duration::from_millis(400);
    let (out, _) = complete(&model, &with_timeout(f.input.clone(), timeout)).await;
    assert_eq!(out, Err(ModelError::Timeout(timeout)));
    let took = started.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(300),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_stream_cut_before_the_finish_is_transient_and_not_retried() {
    let f = load("tool_result");
    let cut = before_finish(&f);
    let fake = Fake::start(vec![Reply::Truncated(Box::new(f.clone()), cut)]).await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let (out, deltas) = complete(&model, &f.input).await;
    assert!(matches!(out, Err(ModelError::Transient(_))), "{out:?}");
    assert!(!deltas.is_empty(), "text before the cut was streamed");
    assert_eq!(
        fake.requests(),
        1,
        "an answer that started is never replayed"
    );
}

/// Servers report failures after the answer started as an error object in the stream
/// (OpenAI and llama.cpp both use `data: {"error": …}`).
#[tokio::test]
async fn an_error_event_mid_stream_is_classified() {
    let f = load("tool_result");
    let cut = before_finish(&f);
    let failed =
        r#"data: {"error":{"code":500,"message":"slot unavailable","type":"server_error"}}"#;
    let overflow = r#"data: {"error":{"code":400,"message":"context size exceeded","type":"exceed_context_size_error"}}"#;
    for (tail, transient) in [(failed, true), (overflow, false)] {
        let fake = Fake::start(vec![Reply::Spliced(
            Box::new(f.clone()),
            cut,
            format!("{tail}\n\n"),
        )])
        .await;
        let model = scripted_model(&fake.base_url(), quick_retries());
        let (out, deltas) = complete(&model, &f.input).await;
        assert!(!deltas.is_empty());
        if transient {
            assert!(
                matches!(&out, Err(ModelError::Transient(m)) if m.contains("slot unavailable")),
                "{out:?}"
            );
        } else {
            assert!(
                matches!(&out, Err(ModelError::ContextTooLong(_))),
                "{out:?}"
            );
        }
        assert_eq!(fake.requests(), 1);
    }
}

#[tokio::test]
async fn bad_key_is_permanent_and_the_key_stays_secret() {
    let fake = Fake::start(vec![Reply::Status(
        401,
        vec![],
        r#"{"error":{"message":"Incorrect API key provided: sk-test-0123456789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
    )])
    .await;
    let cfg = OpenAiConfig::new(&fake.base_url(), "gpt-4o-mini")
        .unwrap()
        .with_api_key("sk-test-0123456789")
        .unwrap();
    let model = OpenAiModel::new(cfg).unwrap();
    let f = load("plain_text");
    let (out, _) = complete(&model, &f.input).await;
    let Err(ModelError::Permanent(message)) = out else {
        panic!("{out:?}")
    };
    assert!(
        message.contains("401") && message.contains("invalid_api_key"),
        "{message}"
    );
    assert!(!message.contains("sk-test-0123456789"), "{message}");
    assert_eq!(fake.requests(), 1);
    assert_eq!(
        fake.state.auth.lock().unwrap().clone(),
        vec![Some("Bearer sk-test-0123456789".to_owned())],
        "the key is sent as a bearer token"
    );
}

#[tokio::test]
async fn unknown_model_is_permanent_and_no_key_sends_no_authorization() {
    let fake = Fake::start(vec![Reply::Status(
        404,
        vec![],
        r#"{"error":{"message":"The model `nope` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#.into(),
    )])
    .await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let f = load("plain_text");
    let (out, _) = complete(&model, &f.input).await;
    assert!(
        matches!(&out, Err(ModelError::Permanent(m)) if m.contains("404")),
        "{out:?}"
    );
    assert_eq!(fake.state.auth.lock().unwrap().clone(), vec![None]);
}

#[tokio::test]
async fn a_tool_result_without_a_call_id_is_refused_before_sending() {
    let fake = Fake::start(vec![]).await;
    let model = scripted_model(&fake.base_url(), quick_retries());
    let mut msg = ChatMessage::new(Role::Tool, "{}");
    msg.tool_call_id = None;
    let (out, _) = complete(&model, &request(vec![msg], vec![], 10)).await;
    assert!(matches!(out, Err(ModelError::Permanent(_))), "{out:?}");
    assert_eq!(fake.requests(), 0);
}

#[test]
fn provider_follows_the_base_url() {
    assert_eq!(
        model_for("http://127.0.0.1:1/v1", "m").provider(),
        Provider::Local
    );
    assert_eq!(
        model_for("https://api.openai.com/v1", "m").provider(),
        Provider::External
    );
    assert_eq!(
        model_for("https://api.openai.com/v1", "gpt-4o-mini").name(),
        "gpt-4o-mini"
    );
}

// ---------------------------------------------------------------------------------------
// Live: the real local model

/// The live model: `TEST_LLM_BASE_URL`/`TEST_LLM_MODEL` (set by `scripts/test`, which starts
/// the local model) or the product's own `LLM_*` variables; `None`, with a plain note, when
/// neither is set.
fn live_model(test: &str) -> Option<OpenAiModel> {
    let test_var = |name: &str| {
        let test_name = format!("TEST_{name}");
        std::env::var(&test_name).ok()
    };
    let cfg = match OpenAiConfig::from_vars(test_var) {
        Ok(None) => OpenAiConfig::from_env(),
        found => found,
    };
    match cfg {
        Ok(Some(cfg)) => Some(OpenAiModel::new(cfg).unwrap()),
        Ok(None) => {
            eprintln!(
                "{test}: NOT RUN — neither TEST_LLM_BASE_URL nor LLM_BASE_URL is set (scripts/test sets the first when scripts/local-llm can start the local model)"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn tool_call_request() -> ModelRequest {
    request(
        vec![
            ChatMessage::new(Role::System, SYSTEM),
            ChatMessage::new(Role::User, "Why is order S00042 blocked?"),
        ],
        tools(),
        200,
    )
}

#[tokio::test]
async fn live_local_model_calls_a_tool_then_answers() {
    let Some(model) = live_model("live_local_model_calls_a_tool_then_answers") else {
        return;
    };
    let req = tool_call_request();
    let (out, _) = complete(&model, &req).await;
    let out = out.unwrap();
    assert_eq!(out.finish, FinishReason::ToolCalls, "{out:?}");
    let call = out.tool_calls.first().unwrap().clone();
    assert_eq!(call.name, "explain_order");
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(args["order"], "S00042");
    assert!(out.prompt_tokens > 0 && out.completion_tokens > 0);

    // the result goes back: the model answers from it (as recorded in tool_result.json)
    let (out, deltas) = complete(&model, &after_call(&req, &call, TOOL_RESULT)).await;
    let out = out.unwrap();
    assert_eq!(out.finish, FinishReason::Stop, "{out:?}");
    assert_eq!(out.text, deltas.concat());
    assert!(out.text.contains("S00042"), "{}", out.text);
}

/// `req` followed by the assistant's `call` and the tool's `result`.
fn after_call(req: &ModelRequest, call: &ToolCall, result: &str) -> ModelRequest {
    let mut next = req.clone();
    next.messages.push(ChatMessage {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: vec![call.clone()],
        tool_call_id: None,
    });
    next.messages
        .push(ChatMessage::tool_result(&call.id, result));
    next
}

const TOOL_RESULT: &str = r#"{"order":"S00042","customer":"Northwind Foods","exceptions":[{"kind":"credit_hold","summary":"Open balance 18,400.00 EUR exceeds the credit limit of 15,000.00 EUR; invoice INV/2026/0311 is 23 days overdue.","owner":"finance"}],"options":["Ask finance to release the hold for this order","Request prepayment of 3,400.00 EUR"]}"#;

// ---------------------------------------------------------------------------------------
// Recording (run by hand against a live model; rewrites tests/fixtures/openai/)

/// Exchanges seen by the recording proxy: request body, status, content type, raw answer.
type Exchanges = Arc<Mutex<Vec<(Value, u16, String, String)>>>;

/// A proxy between the adapter and the live server that keeps each exchange.
async fn recording_proxy(upstream: String) -> (SocketAddr, Exchanges) {
    let log: Exchanges = Arc::default();
    let state = (upstream, log.clone());
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(
                |State((upstream, log)): State<(String, Exchanges)>, body: Bytes| async move {
                    let answer = order_copilot::outbound::client_builder()
                        .build()
                        .unwrap()
                        .post(format!("{upstream}/chat/completions"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = answer.status().as_u16();
                    let content_type = answer
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let text = answer.text().await.unwrap();
                    log.lock().unwrap().push((
                        serde_json::from_slice(&body).unwrap(),
                        status,
                        content_type.clone(),
                        text.clone(),
                    ));
                    Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(Body::from(text))
                        .unwrap()
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, log)
}

#[tokio::test]
#[ignore = "records fixtures from a live model: LLM_BASE_URL=… LLM_MODEL=… cargo test --test openai -- --ignored"]
async fn record_fixtures_from_live_model() {
    let cfg = OpenAiConfig::from_env()
        .unwrap()
        .expect("LLM_BASE_URL must be set to record");
    let model_name = cfg.model.clone();
    let (addr, log) = recording_proxy(cfg.base_url.clone()).await;
    let model = model_for(&format!("http://{addr}/v1"), &model_name);
    let save = |name: &str, description: &str, input: &ModelRequest| {
        let (request, status, content_type, response) = log.lock().unwrap().pop().unwrap();
        let f = Fixture {
            description: description.into(),
            model: model_name.clone(),
            input: input.clone(),
            request,
            status,
            content_type,
            response,
        };
        std::fs::create_dir_all(fixture_dir()).unwrap();
        let path = fixture_dir().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&f).unwrap() + "\n").unwrap();
        eprintln!("recorded {}", path.display());
    };

    let first = tool_call_request();
    let (out, _) = complete(&model, &first).await;
    let call = out
        .unwrap()
        .tool_calls
        .first()
        .cloned()
        .expect("the model called no tool");
    save(
        "tool_call",
        "A question about an order; the model calls explain_order.",
        &first,
    );

    let second = after_call(&first, &call, TOOL_RESULT);
    let (out, _) = complete(&model, &second).await;
    assert!(
        out.unwrap().tool_calls.is_empty(),
        "the model called another tool"
    );
    save(
        "tool_result",
        "The tool's result goes back; the model answers in text.",
        &second,
    );

    let plain = request(
        vec![
            ChatMessage::new(
                Role::System,
                "You are the order copilot of a wholesale distributor. Answer in one short sentence.",
            ),
            ChatMessage::new(Role::User, "What can you help me with?"),
        ],
        vec![],
        60,
    );
    let (out, _) = complete(&model, &plain).await;
    out.unwrap();
    save(
        "plain_text",
        "No tools offered; a plain streamed text answer.",
        &plain,
    );

    let long = request(
        vec![
            ChatMessage::new(Role::System, SYSTEM),
            ChatMessage::new(Role::User, "order S00042 blocked? ".repeat(1000)),
        ],
        tools(),
        50,
    );
    let (out, _) = complete(&model, &long).await;
    assert!(matches!(out, Err(ModelError::ContextTooLong(_))), "{out:?}");
    save(
        "context_too_long",
        "A prompt longer than the server's context (8192 tokens): HTTP 400.",
        &long,
    );
}
