//! `[limits]` (`policies/limits.toml`): how much one API token may ask of the server —
//! request rates per token, concurrent copilot turns and model tokens per person per day,
//! and how long a new API token lasts. A policy without the section gets [`Limits::default`].

use serde::{Deserialize, Serialize};

/// A token bucket: `per_minute` refills steadily, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained requests per minute (at least 1).
    pub per_minute: u32,
    /// Requests that may arrive at once (at least 1).
    pub burst: u32,
}

/// The `[limits]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// `POST /api/chat` per token.
    pub chat: Rate,
    /// Every other `/api/*` request per token.
    pub api: Rate,
    /// Copilot turns one person may have running at once (at least 1).
    pub concurrent_turns: u32,
    /// Model tokens one person's turns may use per UTC day; 0 = no cap.
    pub model_tokens_per_day: u64,
    /// Days a new API token lasts unless its creator says otherwise; 0 = never expires.
    pub token_expiry_days: u32,
    /// Approval requests the copilot may make in one turn (at least 1).
    #[serde(default = "default_requests_per_turn")]
    pub copilot_requests_per_turn: u32,
}

fn default_requests_per_turn() -> u32 {
    3
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            chat: Rate {
                per_minute: 20,
                burst: 5,
            },
            api: Rate {
                per_minute: 600,
                burst: 120,
            },
            concurrent_turns: 2,
            model_tokens_per_day: 200_000,
            token_expiry_days: 90,
            copilot_requests_per_turn: default_requests_per_turn(),
        }
    }
}

impl Limits {
    /// The first impossible value, as (dotted key, problem).
    pub fn problem(&self) -> Option<(String, String)> {
        for (name, r) in [("chat", self.chat), ("api", self.api)] {
            if r.per_minute == 0 {
                return Some((
                    format!("limits.{name}.per_minute"),
                    "must be at least 1 (a rate of 0 would refuse every request)".into(),
                ));
            }
            if r.burst == 0 {
                return Some((format!("limits.{name}.burst"), "must be at least 1".into()));
            }
        }
        if self.concurrent_turns == 0 {
            return Some((
                "limits.concurrent_turns".into(),
                "must be at least 1 (0 would refuse every chat)".into(),
            ));
        }
        if self.copilot_requests_per_turn == 0 {
            return Some((
                "limits.copilot_requests_per_turn".into(),
                "must be at least 1 (0 would refuse every action the user asks for)".into(),
            ));
        }
        if self.token_expiry_days > 36_500 {
            return Some((
                "limits.token_expiry_days".into(),
                format!(
                    "{} days is more than 100 years; use 0 for tokens that never expire",
                    self.token_expiry_days
                ),
            ));
        }
        None
    }
}
