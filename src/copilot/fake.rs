//! Models that run without a language model, for tests and benchmarks: [`FakeScriptedModel`]
//! plays back a script of outputs and errors (and records the requests it got), and
//! [`FakeInstantModel`] answers instantly by calling `explain_order` for the first order
//! reference in the question and then quoting the tool's summary — the shape of a real
//! tool-calling exchange with no model time, so a benchmark measures the server alone.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::model::{
    FinishReason, Model, ModelError, ModelEvent, ModelOutput, ModelRequest, Provider, Role,
    ToolCall,
};
use crate::app::source::BoxFuture;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One scripted step.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer with this output (its text is streamed first).
    Output(ModelOutput),
    /// Fail with this error.
    Fail(ModelError),
    /// Take this long, then answer with the output.
    Slow(Duration, ModelOutput),
}

/// A model that plays back a script; after the script it answers "done.".
pub struct FakeScriptedModel {
    steps: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<ModelRequest>>,
    provider: Provider,
}

/// A text answer.
pub fn text(t: &str) -> ModelOutput {
    ModelOutput {
        text: t.to_string(),
        tool_calls: Vec::new(),
        finish: FinishReason::Stop,
        prompt_tokens: 100,
        completion_tokens: 20,
    }
}

/// Tool calls `(id, name, arguments JSON)`.
pub fn calls(list: &[(&str, &str, &str)]) -> ModelOutput {
    ModelOutput {
        text: String::new(),
        tool_calls: list
            .iter()
            .map(|(id, name, args)| ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                arguments: args.to_string(),
            })
            .collect(),
        finish: FinishReason::ToolCalls,
        prompt_tokens: 100,
        completion_tokens: 10,
    }
}

impl FakeScriptedModel {
    /// A local model with a script.
    pub fn new(steps: Vec<Step>) -> FakeScriptedModel {
        FakeScriptedModel::with_provider(steps, Provider::Local)
    }

    /// A model with a script and a provider.
    pub fn with_provider(steps: Vec<Step>, provider: Provider) -> FakeScriptedModel {
        FakeScriptedModel {
            steps: Mutex::new(steps.into()),
            requests: Mutex::new(Vec::new()),
            provider,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<ModelRequest> {
        lock(&self.requests).clone()
    }
}

impl Model for FakeScriptedModel {
    fn name(&self) -> String {
        "fake-scripted".into()
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
            lock(&self.requests).push(req.clone());
            let step = lock(&self.steps).pop_front();
            let out = match step {
                None => text("done."),
                Some(Step::Fail(e)) => return Err(e),
                Some(Step::Output(o)) => o,
                Some(Step::Slow(d, o)) => {
                    if d >= req.timeout {
                        tokio::time::sleep(req.timeout).await;
                        return Err(ModelError::Timeout(req.timeout));
                    }
                    tokio::time::sleep(d).await;
                    o
                }
            };
            if !out.text.is_empty() {
                sink(ModelEvent::TextDelta(out.text.clone()));
            }
            Ok(out)
        })
    }
}

/// A model that answers at once: `explain_order` for the first order in the question, then
/// the tool's summary as the answer.
pub struct FakeInstantModel;

/// The first order reference (`S00042`) in a text.
pub fn first_order(s: &str) -> Option<String> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.len() >= 4 && w.starts_with('S') && w[1..].chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
}

impl Model for FakeInstantModel {
    fn name(&self) -> String {
        "fake-instant".into()
    }

    fn provider(&self) -> Provider {
        Provider::Local
    }

    fn complete<'a>(
        &'a self,
        req: &'a ModelRequest,
        sink: &'a mut (dyn FnMut(ModelEvent) + Send),
    ) -> BoxFuture<'a, Result<ModelOutput, ModelError>> {
        Box::pin(async move {
            let tokens = req
                .messages
                .iter()
                .map(|m| m.content.len() / 4)
                .sum::<usize>() as u32;
            if let Some(result) = req.messages.iter().rev().find(|m| m.role == Role::Tool) {
                let summary = serde_json::from_str::<serde_json::Value>(&result.content)
                    .ok()
                    .and_then(|v| v["summary"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "I could not look that up.".into());
                sink(ModelEvent::TextDelta(summary.clone()));
                let mut out = text(&summary);
                out.prompt_tokens = tokens;
                return Ok(out);
            }
            let question = req
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.as_str())
                .unwrap_or_default();
            let mut out = match first_order(question) {
                Some(o) => calls(&[("call_1", "explain_order", &format!("{{\"order\":\"{o}\"}}"))]),
                None => text("Which order do you mean?"),
            };
            if !out.text.is_empty() {
                sink(ModelEvent::TextDelta(out.text.clone()));
            }
            out.prompt_tokens = tokens;
            Ok(out)
        })
    }
}
