//! [`OpenAiModel`]: the copilot's [`Model`] over any OpenAI-compatible chat-completions
//! endpoint (OpenAI, Azure's v1 API, vLLM, Ollama, llama.cpp's `llama-server`).
//!
//! This is the only module that knows the OpenAI wire format (through async-openai's
//! types); the engine sees [`ModelRequest`], [`ModelEvent`] and [`ModelOutput`] only.
//!
//! - **Streaming**: every request streams; text deltas go to the sink as they arrive, and
//!   streamed tool-call fragments are assembled by their `index` (several calls per answer
//!   are kept apart). Token counts come from the final usage chunk (`include_usage`).
//! - **Time**: the request's `timeout` bounds everything, retries included; past it the
//!   answer is [`ModelError::Timeout`].
//! - **Retries**: async-openai's own retry layer (three tries, `Retry-After` honoured
//!   without a cap) is replaced by [`RetryPolicy`]: refused connections, 408/429 and 5xx
//!   are retried with jittered exponential backoff, `Retry-After` is capped, and no wait
//!   is started that would end past the deadline — the caller then gets
//!   [`ModelError::Transient`] early instead of a late timeout. Nothing is retried once
//!   the answer has started streaming (text already reached the sink).
//! - **Errors** are classified by what the engine should do: transient (retry later or
//!   answer offline), permanent (bad key, unknown model), context too long (trim).
//!   Error text from the server is shortened and never contains the API key.
//! - **Secrets**: the API key is held as a [`SecretString`], sent only in the
//!   `Authorization` header (marked sensitive) and never logged or formatted.
//!
//! Must not depend on the engine, the tools or the store.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCallChunk,
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestToolMessage, ChatCompletionRequestToolMessageContent,
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    ChatCompletionStreamOptions, ChatCompletionTool, ChatCompletionTools,
    CreateChatCompletionRequest, CreateChatCompletionStreamResponse, FinishReason as WireFinish,
    FunctionCall, FunctionObject,
};
use futures::StreamExt;
use reqwest as http;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::model::{
    ChatMessage, FinishReason, Model, ModelError, ModelEvent, ModelOutput, ModelRequest, Provider,
    Role, ToolCall,
};
use crate::app::source::BoxFuture;

/// Upper bounds on what one answer may hold: a misbehaving server cannot make the adapter
/// buffer without limit. Far above anything a `max_tokens`-bounded answer produces.
const MAX_TEXT_BYTES: usize = 256 * 1024;
const MAX_TOOL_CALLS: usize = 32;
const MAX_ARGUMENT_BYTES: usize = 64 * 1024;
/// How much of an error body is read, and how much of its message is kept.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;
const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// Why the adapter's configuration was refused (at start-up, never a panic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LLM configuration: {0}")]
pub struct ConfigError(String);

/// How failed requests are retried, within the request's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled after each further failure (with jitter).
    pub initial_backoff: Duration,
    /// Longest computed backoff.
    pub max_backoff: Duration,
    /// Longest wait a server's `Retry-After` may ask for; a longer request is capped.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// Where the model is and how to talk to it. Built from `LLM_*` environment variables by
/// [`OpenAiConfig::from_env`]; `Debug` never shows the API key.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API's base URL including the version path, e.g. `http://127.0.0.1:8081/v1` or
    /// `https://api.openai.com/v1` (`LLM_BASE_URL`).
    pub base_url: String,
    /// Model name sent with every request (`LLM_MODEL`).
    pub model: String,
    /// Bearer token (`LLM_API_KEY`); none for local servers without authentication.
    pub api_key: Option<SecretString>,
    /// Local or external (`LLM_PROVIDER`): decides which data classes may be sent. Defaults
    /// to local only when the base URL's host is a loopback address.
    pub provider: Provider,
    /// Sampling temperature (`LLM_TEMPERATURE`, default 0: the most repeatable answers).
    pub temperature: f32,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider)
            .field("temperature", &self.temperature)
            .field("retry", &self.retry)
            .finish()
    }
}

impl OpenAiConfig {
    /// A validated configuration for `base_url` and `model`, no key, provider inferred from
    /// the URL, temperature 0, default retries.
    pub fn new(base_url: &str, model: &str) -> Result<OpenAiConfig, ConfigError> {
        let base_url = validate_base_url(base_url)?;
        let model = model.trim();
        if model.is_empty() || model.len() > 200 {
            return Err(ConfigError("LLM_MODEL must be a model name".into()));
        }
        Ok(OpenAiConfig {
            provider: infer_provider(&base_url),
            base_url,
            model: model.to_owned(),
            api_key: None,
            temperature: 0.0,
            retry: RetryPolicy::default(),
        })
    }

    /// The configuration from the process environment, or `None` when `LLM_BASE_URL` is not
    /// set (the copilot then answers offline).
    pub fn from_env() -> Result<Option<OpenAiConfig>, ConfigError> {
        OpenAiConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`OpenAiConfig::from_env`], reading variables through `var`.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OpenAiConfig>, ConfigError> {
        let Some(base_url) = var("LLM_BASE_URL").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let model = var("LLM_MODEL").unwrap_or_default();
        if model.trim().is_empty() {
            return Err(ConfigError(
                "LLM_MODEL is required when LLM_BASE_URL is set".into(),
            ));
        }
        let mut cfg = OpenAiConfig::new(&base_url, &model)?;
        if let Some(key) = var("LLM_API_KEY").filter(|k| !k.is_empty()) {
            cfg = cfg.with_api_key(key)?;
        }
        if let Some(provider) = var("LLM_PROVIDER").filter(|v| !v.trim().is_empty()) {
            cfg.provider = match provider.trim().to_ascii_lowercase().as_str() {
                "local" => Provider::Local,
                "external" => Provider::External,
                _ => {
                    return Err(ConfigError(
                        "LLM_PROVIDER must be `local` or `external`".into(),
                    ));
                }
            };
        }
        if let Some(t) = var("LLM_TEMPERATURE").filter(|v| !v.trim().is_empty()) {
            cfg.temperature = t
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|t| (0.0..=2.0).contains(t))
                .ok_or_else(|| ConfigError("LLM_TEMPERATURE must be between 0 and 2".into()))?;
        }
        Ok(Some(cfg))
    }

    /// The same configuration with a bearer token. Refused if it cannot be an HTTP header
    /// value (the error never repeats the key).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Result<OpenAiConfig, ConfigError> {
        let key = key.into();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError(
                "LLM_API_KEY must be printable ASCII without spaces".into(),
            ));
        }
        self.api_key = Some(SecretString::from(key));
        Ok(self)
    }
}

fn validate_base_url(raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url =
        http::Url::parse(trimmed).map_err(|_| ConfigError("LLM_BASE_URL is not a URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError(
            "LLM_BASE_URL must be an http:// or https:// URL with a host".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError(
            "LLM_BASE_URL must not carry credentials; use LLM_API_KEY".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError(
            "LLM_BASE_URL must not have a query or fragment".into(),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Local only for loopback hosts: a model elsewhere on the network is treated as external
/// unless `LLM_PROVIDER=local` says otherwise (the safe default for data access).
pub fn infer_provider(base_url: &str) -> Provider {
    let Ok(url) = http::Url::parse(base_url) else {
        return Provider::External;
    };
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Provider::Local
    } else {
        Provider::External
    }
}

/// async-openai's view of the endpoint: base URL and a prebuilt header map. Unlike its
/// `OpenAIConfig` it reads no `OPENAI_*` variables behind our back and sends no
/// `Authorization` header when there is no key.
#[derive(Clone)]
struct Endpoint {
    base_url: String,
    api_key: SecretString,
    headers: http::header::HeaderMap,
}

impl Endpoint {
    fn new(cfg: &OpenAiConfig) -> Result<Endpoint, ConfigError> {
        let mut headers = http::header::HeaderMap::new();
        if let Some(key) = &cfg.api_key {
            let mut value =
                http::header::HeaderValue::try_from(format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| ConfigError("LLM_API_KEY is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(Endpoint {
            base_url: cfg.base_url.clone(),
            api_key: cfg
                .api_key
                .clone()
                .unwrap_or_else(|| SecretString::from("")),
            headers,
        })
    }
}

impl Config for Endpoint {
    fn headers(&self) -> http::header::HeaderMap {
        self.headers.clone()
    }
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }
    fn api_base(&self) -> &str {
        &self.base_url
    }
    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

/// The copilot's model over an OpenAI-compatible endpoint. Cheap to share (`Arc`).
pub struct OpenAiModel {
    cfg: OpenAiConfig,
    endpoint: Endpoint,
    http: http::Client,
}

impl fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// The adapter for `cfg`. Fails only on configuration the HTTP client cannot use.
    pub fn new(cfg: OpenAiConfig) -> Result<OpenAiModel, ConfigError> {
        let http = crate::outbound::client_builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("order-copilot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))?;
        Ok(OpenAiModel {
            endpoint: Endpoint::new(&cfg)?,
            cfg,
            http,
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &OpenAiConfig {
        &self.cfg
    }

    /// The chat-completions request body for `req`, exactly as it is sent.
    pub fn wire_request(
        &self,
        req: &ModelRequest,
    ) -> Result<CreateChatCompletionRequest, ModelError> {
        let messages = req
            .messages
            .iter()
            .map(wire_message)
            .collect::<Result<Vec<_>, _>>()?;
        let tools: Vec<ChatCompletionTools> = req
            .tools
            .iter()
            .map(|t| {
                ChatCompletionTools::Function(ChatCompletionTool {
                    function: FunctionObject {
                        name: t.name.clone(),
                        description: Some(t.description.clone()),
                        parameters: Some(t.parameters.clone()),
                        strict: None,
                    },
                })
            })
            .collect();
        let has_tools = !tools.is_empty();
        Ok(CreateChatCompletionRequest {
            model: self.cfg.model.clone(),
            messages,
            stream: Some(true),
            stream_options: Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            temperature: Some(self.cfg.temperature),
            // `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible
            // server honours it (llama.cpp, vLLM, Ollama, Azure's older API versions).
            #[allow(deprecated)]
            max_tokens: Some(req.max_tokens),
            parallel_tool_calls: has_tools.then_some(true),
            tools: has_tools.then_some(tools),
            ..Default::default()
        })
    }

    async fn run(
        &self,
        body: CreateChatCompletionRequest,
        deadline: Instant,
        sink: &mut (dyn FnMut(ModelEvent) + Send),
    ) -> Result<ModelOutput, ModelError> {
        let service = Retrying {
            http: self.http.clone(),
            policy: self.cfg.retry,
            deadline,
        };
        let client =
            Client::build(self.http.clone(), self.endpoint.clone()).with_http_service(service);
        let mut stream = client
            .chat()
            .create_stream(body)
            .await
            .map_err(|e| self.classify(e))?;
        let mut answer = Answer::default();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| self.classify(e))?;
            answer.push(chunk, sink)?;
        }
        answer.finish()
    }

    fn classify(&self, err: OpenAIError) -> ModelError {
        let classified = classify(err);
        match &self.cfg.api_key {
            Some(key) => scrub(classified, key.expose_secret()),
            None => classified,
        }
    }
}

impl Model for OpenAiModel {
    fn name(&self) -> String {
        self.cfg.model.clone()
    }

    fn provider(&self) -> Provider {
        self.cfg.provider
    }

    fn complete<'a>(
        &'a self,
        req: &'a ModelRequest,
        sink: &'a mut (dyn FnMut(ModelEvent) + Send),
    ) -> BoxFuture<'a, Result<ModelOutput, ModelError>> {
        Box::pin(async move {
            let deadline = Instant::now() + req.timeout;
            let body = self.wire_request(req)?;
            match tokio::time::timeout_at(deadline, self.run(body, deadline, sink)).await {
                Ok(result) => result,
                Err(_) => Err(ModelError::Timeout(req.timeout)),
            }
        })
    }
}

fn wire_message(m: &ChatMessage) -> Result<ChatCompletionRequestMessage, ModelError> {
    Ok(match m.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(m.content.clone()),
            name: None,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(m.content.clone()),
            name: None,
        }),
        Role::Assistant => {
            let tool_calls: Vec<ChatCompletionMessageToolCalls> = m
                .tool_calls
                .iter()
                .map(|c| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: c.id.clone(),
                        function: FunctionCall {
                            name: c.name.clone(),
                            arguments: c.arguments.clone(),
                        },
                    })
                })
                .collect();
            // OpenAI requires content unless there are tool calls.
            let content = (!m.content.is_empty() || tool_calls.is_empty())
                .then(|| ChatCompletionRequestAssistantMessageContent::Text(m.content.clone()));
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                ..Default::default()
            })
        }
        Role::Tool => {
            let Some(id) = m.tool_call_id.clone() else {
                return Err(ModelError::Permanent(
                    "a tool result without the id of the call it answers".into(),
                ));
            };
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(m.content.clone()),
                tool_call_id: id,
            })
        }
    })
}

/// A tool call being assembled from streamed fragments.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The answer being assembled from stream chunks.
#[derive(Default)]
struct Answer {
    text: String,
    calls: BTreeMap<u32, PartialCall>,
    finish: Option<WireFinish>,
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl Answer {
    fn push(
        &mut self,
        chunk: CreateChatCompletionStreamResponse,
        sink: &mut (dyn FnMut(ModelEvent) + Send),
    ) -> Result<(), ModelError> {
        if let Some(usage) = chunk.usage {
            self.prompt_tokens = usage.prompt_tokens;
            self.completion_tokens = usage.completion_tokens;
        }
        // One choice is asked for (`n` unset); any other index is ignored.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                if self.text.len() + text.len() > MAX_TEXT_BYTES {
                    return Err(ModelError::Permanent(format!(
                        "the answer exceeded {MAX_TEXT_BYTES} bytes"
                    )));
                }
                self.text.push_str(&text);
                sink(ModelEvent::TextDelta(text));
            }
            for fragment in choice.delta.tool_calls.unwrap_or_default() {
                self.push_call(fragment)?;
            }
            if let Some(finish) = choice.finish_reason {
                self.finish = Some(finish);
            }
        }
        Ok(())
    }

    fn push_call(
        &mut self,
        fragment: ChatCompletionMessageToolCallChunk,
    ) -> Result<(), ModelError> {
        if !self.calls.contains_key(&fragment.index) && self.calls.len() >= MAX_TOOL_CALLS {
            return Err(ModelError::Permanent(format!(
                "the answer had more than {MAX_TOOL_CALLS} tool calls"
            )));
        }
        let call = self.calls.entry(fragment.index).or_default();
        if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            // Servers send the name whole in the call's first fragment; the arguments come
            // in pieces to be concatenated.
            if let Some(name) = function.name.filter(|n| !n.is_empty())
                && call.name.is_empty()
            {
                call.name = name;
            }
            if let Some(args) = function.arguments {
                if call.arguments.len() + args.len() > MAX_ARGUMENT_BYTES {
                    return Err(ModelError::Permanent(format!(
                        "tool call arguments exceeded {MAX_ARGUMENT_BYTES} bytes"
                    )));
                }
                call.arguments.push_str(&args);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<ModelOutput, ModelError> {
        let Some(finish) = self.finish else {
            return Err(ModelError::Transient(
                "the answer stream ended before the model finished".into(),
            ));
        };
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .map(|(index, c)| ToolCall {
                // A server that omits ids still gets distinct ones within the answer.
                id: if c.id.is_empty() {
                    format!("call_{index}")
                } else {
                    c.id
                },
                name: c.name,
                arguments: c.arguments,
            })
            .collect();
        let finish = match finish {
            WireFinish::ToolCalls | WireFinish::FunctionCall => FinishReason::ToolCalls,
            // Some servers say `stop` beside tool calls; the calls are what matters.
            WireFinish::Stop if !tool_calls.is_empty() => FinishReason::ToolCalls,
            WireFinish::Stop => FinishReason::Stop,
            WireFinish::Length => FinishReason::Length,
            WireFinish::ContentFilter => FinishReason::Other,
        };
        Ok(ModelOutput {
            text: self.text,
            tool_calls,
            finish,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        })
    }
}

/// An HTTP error answer, read by [`Retrying`] before async-openai sees it: async-openai
/// drops the headers (`Retry-After`) and cannot parse every server's error body
/// (llama.cpp's numeric `code`).
#[derive(Debug)]
struct HttpFailure {
    status: u16,
    message: String,
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.message)
    }
}

impl std::error::Error for HttpFailure {}

/// The HTTP service under async-openai: sends the request, retries what is worth retrying
/// within the deadline, and turns error answers into [`HttpFailure`].
#[derive(Clone)]
struct Retrying {
    http: http::Client,
    policy: RetryPolicy,
    deadline: Instant,
}

impl tower::Service<HttpRequestFactory> for Retrying {
    type Response = http::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response, OpenAIError>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), OpenAIError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(factory).await })
    }
}

impl Retrying {
    async fn send(self, factory: HttpRequestFactory) -> Result<http::Response, OpenAIError> {
        let mut attempt = 1;
        loop {
            let request = factory.build().await?;
            let (failure, retry_after) = match self.http.execute(request).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let failure = read_failure(response).await;
                    if !retryable_status(status) {
                        return Err(boxed(failure));
                    }
                    (boxed(failure), retry_after)
                }
                Err(e) if e.is_connect() || e.is_timeout() => (OpenAIError::Reqwest(e), None),
                Err(e) => return Err(OpenAIError::Reqwest(e)),
            };
            if attempt >= self.policy.max_attempts {
                return Err(failure);
            }
            let wait = match retry_after {
                Some(asked) => asked.min(self.policy.max_retry_after),
                None => self.backoff(attempt),
            };
            // A wait that would end past the deadline only turns a clear "unavailable"
            // into a timeout: give up now.
            if Instant::now() + wait >= self.deadline {
                return Err(failure);
            }
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %failure, "retrying the model request");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .policy
            .initial_backoff
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(self.policy.max_backoff);
        // Full jitter over the upper half: spreads clients without ever waiting ~0.
        exp.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

fn boxed(failure: HttpFailure) -> OpenAIError {
    OpenAIError::Boxed(Box::new(failure))
}

fn retryable_status(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error()
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &http::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// The error answer's message: the `error.message` (with its type or code) of an
/// OpenAI-style body, else the body's text; bounded.
async fn read_failure(mut response: http::Response) -> HttpFailure {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY_BYTES);
    HttpFailure {
        status,
        message: error_message(&body),
    }
}

fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let err = v.get("error")?;
            let message = match err {
                serde_json::Value::String(s) => s.clone(),
                other => other.get("message")?.as_str()?.to_owned(),
            };
            let kind: Vec<String> = ["type", "code"]
                .iter()
                .filter_map(|k| match err.get(k)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            Some(if kind.is_empty() {
                message
            } else {
                format!("{message} ({})", kind.join(", "))
            })
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    shorten(&text)
}

fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_ERROR_MESSAGE_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Phrases servers use when the prompt does not fit: OpenAI's `context_length_exceeded`,
/// llama.cpp's `exceed_context_size_error`, vLLM's "maximum context length".
fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "exceed_context_size",
        "context length",
        "context size",
        "context window",
        "maximum context",
    ]
    .iter()
    .any(|p| m.contains(p))
}

fn classify_http(status: u16, message: String) -> ModelError {
    let text = format!("HTTP {status}: {message}");
    match status {
        400 | 413 if is_context_overflow(&message) => ModelError::ContextTooLong(text),
        408 | 425 | 429 | 500..=599 => ModelError::Transient(text),
        _ => ModelError::Permanent(text),
    }
}

fn classify(err: OpenAIError) -> ModelError {
    match err {
        OpenAIError::Boxed(inner) => match inner.downcast::<HttpFailure>() {
            Ok(f) => classify_http(f.status, f.message),
            Err(other) => ModelError::Permanent(shorten(&other.to_string())),
        },
        OpenAIError::Reqwest(e) => classify_transport(&e),
        OpenAIError::ApiError(e) => {
            classify_http(e.status_code.as_u16(), shorten(&e.api_error.to_string()))
        }
        // A stream event that is not a completion chunk: llama.cpp reports errors that
        // happen mid-answer as `data: {"error": …}`.
        OpenAIError::JSONDeserialize(_, content) => {
            let message = error_message(content.as_bytes());
            if content.contains("\"error\"") {
                if is_context_overflow(&message) {
                    ModelError::ContextTooLong(message)
                } else {
                    ModelError::Transient(format!("the model server failed mid-answer: {message}"))
                }
            } else {
                ModelError::Permanent(format!(
                    "unreadable answer from the model server: {message}"
                ))
            }
        }
        OpenAIError::StreamError(e) => {
            ModelError::Transient(shorten(&format!("the answer stream broke: {e}")))
        }
        other => ModelError::Permanent(shorten(&other.to_string())),
    }
}

fn classify_transport(e: &http::Error) -> ModelError {
    if e.is_connect() {
        ModelError::Transient("cannot connect to the model server".into())
    } else if e.is_timeout() {
        ModelError::Transient("the model server did not respond".into())
    } else if e.is_body() || e.is_decode() || e.is_request() {
        ModelError::Transient("the connection to the model server broke".into())
    } else {
        ModelError::Permanent(shorten(&format!("HTTP client error: {e}")))
    }
}

/// The same error with every occurrence of `secret` masked: servers echo parts of what
/// they received, and error text reaches logs and the audit trail.
fn scrub(err: ModelError, secret: &str) -> ModelError {
    if secret.is_empty() {
        return err;
    }
    let mask = |s: String| s.replace(secret, "***");
    match err {
        ModelError::Transient(s) => ModelError::Transient(mask(s)),
        ModelError::Permanent(s) => ModelError::Permanent(mask(s)),
        ModelError::ContextTooLong(s) => ModelError::ContextTooLong(mask(s)),
        timeout @ ModelError::Timeout(_) => timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_base_url_means_no_model() {
        assert_eq!(
            OpenAiConfig::from_vars(vars(&[])).map(|c| c.is_none()),
            Ok(true)
        );
    }

    #[test]
    fn provider_is_local_only_for_loopback_unless_configured() {
        for (url, want) in [
            ("http://127.0.0.1:8081/v1", Provider::Local),
            ("http://localhost:11434/v1/", Provider::Local),
            ("http://[::1]:8000/v1", Provider::Local),
            ("http://10.0.0.5:8000/v1", Provider::External),
            ("https://api.openai.com/v1", Provider::External),
        ] {
            let cfg = OpenAiConfig::from_vars(vars(&[("LLM_BASE_URL", url), ("LLM_MODEL", "m")]))
                .ok()
                .flatten()
                .map(|c| c.provider);
            assert_eq!(cfg, Some(want), "{url}");
        }
        let cfg = OpenAiConfig::from_vars(vars(&[
            ("LLM_BASE_URL", "http://10.0.0.5:8000/v1"),
            ("LLM_MODEL", "m"),
            ("LLM_PROVIDER", "local"),
        ]));
        assert_eq!(
            cfg.ok().flatten().map(|c| c.provider),
            Some(Provider::Local)
        );
    }

    #[test]
    fn bad_configuration_is_an_error_that_never_shows_the_key() {
        for bad in [
            vec![("LLM_BASE_URL", "ftp://x/v1"), ("LLM_MODEL", "m")],
            vec![("LLM_BASE_URL", "not a url"), ("LLM_MODEL", "m")],
            vec![("LLM_BASE_URL", "http://u:p@host/v1"), ("LLM_MODEL", "m")],
            vec![("LLM_BASE_URL", "http://host/v1")],
            vec![
                ("LLM_BASE_URL", "http://host/v1"),
                ("LLM_MODEL", "m"),
                ("LLM_PROVIDER", "cloud"),
            ],
            vec![
                ("LLM_BASE_URL", "http://host/v1"),
                ("LLM_MODEL", "m"),
                ("LLM_TEMPERATURE", "9"),
            ],
            vec![
                ("LLM_BASE_URL", "http://host/v1"),
                ("LLM_MODEL", "m"),
                ("LLM_API_KEY", "sk-secret\nx"),
            ],
        ] {
            let err = OpenAiConfig::from_vars(vars(&bad)).err();
            assert!(err.is_some(), "{bad:?} accepted");
            assert!(!format!("{err:?}").contains("sk-secret"));
        }
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let cfg = OpenAiConfig::new("https://api.openai.com/v1", "gpt-4o-mini")
            .and_then(|c| c.with_api_key("sk-live-123"));
        let Ok(cfg) = cfg else {
            unreachable!("valid config refused")
        };
        let model = OpenAiModel::new(cfg.clone());
        assert!(!format!("{cfg:?}").contains("sk-live-123"));
        assert!(!format!("{model:?}").contains("sk-live-123"));
    }

    #[test]
    fn errors_are_classified_by_what_the_caller_should_do() {
        let ctx = error_message(br#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#);
        assert!(matches!(
            classify_http(400, ctx),
            ModelError::ContextTooLong(_)
        ));
        let openai_ctx = error_message(br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#);
        assert!(matches!(
            classify_http(400, openai_ctx),
            ModelError::ContextTooLong(_)
        ));
        assert!(matches!(
            classify_http(400, "bad tool schema".into()),
            ModelError::Permanent(_)
        ));
        assert!(matches!(
            classify_http(401, "Incorrect API key".into()),
            ModelError::Permanent(_)
        ));
        assert!(matches!(
            classify_http(404, "model not found".into()),
            ModelError::Permanent(_)
        ));
        assert!(matches!(
            classify_http(429, "slow down".into()),
            ModelError::Transient(_)
        ));
        assert!(matches!(
            classify_http(503, "loading model".into()),
            ModelError::Transient(_)
        ));
    }

    #[test]
    fn scrub_masks_the_key_in_server_messages() {
        let err = scrub(
            ModelError::Permanent("HTTP 401: Incorrect API key provided: sk-abc123".into()),
            "sk-abc123",
        );
        assert_eq!(
            err,
            ModelError::Permanent("HTTP 401: Incorrect API key provided: ***".into())
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = http::header::HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            http::header::HeaderValue::from_static("2"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(
            http::header::RETRY_AFTER,
            http::header::HeaderValue::try_from(later)
                .unwrap_or(http::header::HeaderValue::from_static("x")),
        );
        let got = retry_after(&h).unwrap_or_default();
        assert!(
            got > Duration::from_secs(25) && got <= Duration::from_secs(30),
            "{got:?}"
        );
        h.insert(
            http::header::RETRY_AFTER,
            http::header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = Retrying {
            http: crate::outbound::client_builder()
                .build()
                .unwrap_or_default(),
            policy: RetryPolicy::default(),
            deadline: Instant::now(),
        };
        for _ in 0..50 {
            let first = r.backoff(1);
            assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(250));
            assert!(r.backoff(10) <= Duration::from_secs(2));
        }
    }
}
