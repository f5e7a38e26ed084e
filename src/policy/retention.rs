//! `[retention]` (`policies/retention.toml`): how long prompt and response bodies are
//! kept. After `body_days` a body is replaced by its SHA-256 (the audit chain, which covers
//! only the digests, still verifies). A policy without the section gets
//! [`Retention::default`].

use serde::{Deserialize, Serialize};

/// The `[retention]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days a prompt's or response's body is kept; 0 = kept forever.
    pub body_days: u32,
    /// Hours between retention runs of a running server (at least 1).
    pub every_hours: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            body_days: 30,
            every_hours: 6,
        }
    }
}

impl Retention {
    /// The first impossible value, as (dotted key, problem).
    pub fn problem(&self) -> Option<(String, String)> {
        if self.body_days > 36_500 {
            return Some((
                "retention.body_days".into(),
                format!(
                    "{} days is more than 100 years; use 0 to keep bodies forever",
                    self.body_days
                ),
            ));
        }
        if self.every_hours == 0 || self.every_hours > 24 * 7 {
            return Some((
                "retention.every_hours".into(),
                "must be between 1 and 168 (a week)".into(),
            ));
        }
        None
    }

    /// The cut-off for a run at `now` (Unix µs): bodies stored before it expire; `None`
    /// when bodies are kept forever.
    pub fn cutoff(&self, now: i64) -> Option<i64> {
        (self.body_days > 0).then(|| now.saturating_sub(i64::from(self.body_days) * 86_400_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_body_days_before_now() {
        let r = Retention {
            body_days: 2,
            every_hours: 1,
        };
        assert_eq!(r.cutoff(3 * 86_400_000_000), Some(86_400_000_000));
        let forever = Retention {
            body_days: 0,
            ..r.clone()
        };
        assert_eq!(forever.cutoff(1), None);
        assert!(
            Retention {
                every_hours: 0,
                ..r
            }
            .problem()
            .is_some()
        );
    }
}
