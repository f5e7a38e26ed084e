//! The typed events of a chat turn. A turn is a stream of these; `/api/chat` renders them
//! as Server-Sent Events (`event: <type>`, `data: <one-line JSON>`), the CLI as text or
//! JSON, and the conversation store keeps them so a turn can be read back as streamed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a cited source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A sales order (`S00042`).
    Order,
    /// An exception case (`EX-…`).
    Case,
    /// A policy clause (`policies/approvals.toml#release_credit_hold`).
    Policy,
    /// A product (its default code).
    Product,
    /// A customer.
    Customer,
    /// A purchase order or line (`P00017`).
    Purchase,
    /// A resolved past exception (`past:<id>`).
    PastCase,
}

/// A record an answer rests on, cited by reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Source {
    /// The reference (`S00042`, `EX-0123…`, `SKU-10023`, `past:17`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// What it is.
    pub kind: SourceKind,
    /// A human label.
    pub label: String,
}

impl Source {
    /// A source.
    pub fn new(kind: SourceKind, reference: impl Into<String>, label: impl Into<String>) -> Source {
        Source {
            reference: reference.into(),
            kind,
            label: label.into(),
        }
    }
}

/// How a turn was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Deterministic intent routing and templates.
    Offline,
    /// A language model through the `Model` trait.
    Openai,
}

impl Mode {
    /// Machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Offline => "offline",
            Mode::Openai => "openai",
        }
    }
}

/// Risk class of a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Reads data; changes nothing.
    Read,
    /// Produces text; sends nothing.
    Draft,
    /// Would change Odoo or contact a customer: never executed by the copilot, only
    /// requested as an approval.
    Act,
}

impl Risk {
    /// Machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Read => "read",
            Risk::Draft => "draft",
            Risk::Act => "act",
        }
    }
}

/// Token counts of a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Prompt tokens, summed over the turn's model calls.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

/// One event of a turn, in stream order: `conversation` first, `done` or `error` last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The turn started.
    Conversation {
        /// Conversation id (new or resumed).
        conversation_id: String,
        /// This turn's id.
        turn_id: String,
        /// How it is answered.
        mode: Mode,
    },
    /// Searching the knowledge base.
    Retrieving {
        /// What for.
        query: String,
        /// Where (`policy`, `case`, `product`).
        corpora: Vec<String>,
    },
    /// A tool is called.
    ToolCall {
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// Its risk class.
        risk: Risk,
        /// Its arguments.
        arguments: Value,
    },
    /// A tool answered.
    ToolResult {
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// What it found, in a sentence.
        summary: String,
        /// How many records it found.
        count: u64,
        /// Records to cite.
        sources: Vec<Source>,
    },
    /// A piece of answer text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// An `act` tool became an approval request.
    ApprovalRequested {
        /// Approval request id.
        approval_id: String,
        /// Case it belongs to.
        case_id: Option<String>,
        /// Action name.
        action: String,
        /// Roles that may approve it.
        approver_roles: Vec<String>,
        /// What it would do.
        summary: String,
    },
    /// Something the user should know about how the turn was answered.
    Notice {
        /// The message.
        message: String,
    },
    /// The turn finished.
    Done {
        /// This turn's id.
        turn_id: String,
        /// Every source the answer rests on.
        citations: Vec<Source>,
        /// Whether it fell back to offline answers.
        fallback: bool,
        /// Token counts.
        tokens: Tokens,
        /// Milliseconds the turn took.
        ms: f64,
    },
    /// The turn failed.
    Error {
        /// What went wrong (safe to show).
        message: String,
    },
}

impl ChatEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            ChatEvent::Conversation { .. } => "conversation",
            ChatEvent::Retrieving { .. } => "retrieving",
            ChatEvent::ToolCall { .. } => "tool_call",
            ChatEvent::ToolResult { .. } => "tool_result",
            ChatEvent::TextDelta { .. } => "text_delta",
            ChatEvent::ApprovalRequested { .. } => "approval_requested",
            ChatEvent::Notice { .. } => "notice",
            ChatEvent::Done { .. } => "done",
            ChatEvent::Error { .. } => "error",
        }
    }

    /// The event's data without its type tag (the SSE `data:` line).
    pub fn data(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("type");
        }
        v
    }

    /// The event as one SSE frame.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.name(), self.data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_carry_the_type_as_event_name_and_one_line_of_json() {
        let e = ChatEvent::ToolResult {
            call_id: "c1".into(),
            tool: "explain_order".into(),
            summary: "line one\nline two".into(),
            count: 2,
            sources: vec![Source::new(SourceKind::Order, "S00042", "order S00042")],
        };
        let frame = e.to_sse();
        assert!(frame.starts_with("event: tool_result\ndata: {"));
        assert!(frame.ends_with("}\n\n"));
        assert_eq!(frame.matches('\n').count(), 3, "data must be one line");
        let data: Value = serde_json::from_str(
            frame
                .lines()
                .nth(1)
                .and_then(|l| l.strip_prefix("data: "))
                .unwrap_or(""),
        )
        .unwrap_or(Value::Null);
        assert_eq!(data["sources"][0]["ref"], "S00042");
        assert_eq!(data["sources"][0]["kind"], "order");
        assert!(data.get("type").is_none());
    }
}
