//! Bounded abuse: per-token request rates (token buckets whose rates live in
//! `policies/limits.toml`), a per-person cap on concurrent copilot turns, and the cost
//! guard (model tokens per person per UTC day). Pure bookkeeping in memory, except the cost
//! guard, which reads the day's spend from the audit log (so every replica agrees).
//!
//! A refusal is a [`Limited`]: a plain message and how long to wait; the HTTP layer turns it
//! into `429 Too Many Requests` with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::policy::limits::Rate;

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// What was exceeded, in words a person can act on.
    pub message: String,
    /// How long until the request would be accepted.
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let s = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || s == 0 {
            s + 1
        } else {
            s
        }
    }
}

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// `POST /api/chat`.
    Chat,
    /// Every other `/api/*` request.
    Api,
}

impl RateClass {
    fn label(self) -> &'static str {
        match self {
            RateClass::Chat => "chat requests",
            RateClass::Api => "API requests",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets above which idle ones are dropped (a full bucket is the same as no bucket).
const PRUNE_ABOVE: usize = 10_000;

/// Token buckets per (token name, class).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(String, RateClass), Bucket>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl RateLimiter {
    /// Take one request from `who`'s `class` bucket at `now`, or say how long to wait.
    pub fn check(
        &self,
        who: &str,
        class: RateClass,
        rate: Rate,
        now: Instant,
    ) -> Result<(), Limited> {
        let per_sec = f64::from(rate.per_minute.max(1)) / 60.0;
        let burst = f64::from(rate.burst.max(1));
        let mut map = lock(&self.buckets);
        if map.len() > PRUNE_ABOVE {
            // A bucket idle long enough to be full again holds nothing worth keeping.
            let full_after = Duration::from_secs_f64(burst / per_sec);
            map.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        }
        let b = map.entry((who.to_string(), class)).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / per_sec);
        Err(Limited {
            message: format!(
                "too many {} from {who}: at most {} a minute (bursts of {}); wait {} s",
                class.label(),
                rate.per_minute,
                rate.burst,
                wait.as_secs() + 1
            ),
            retry_after: wait,
        })
    }
}

/// Copilot turns running per person.
#[derive(Debug, Default, Clone)]
pub struct TurnCounter {
    running: Arc<Mutex<HashMap<String, u32>>>,
}

/// One running turn; dropping it (the stream ended or the client went away) frees the slot.
#[derive(Debug)]
pub struct TurnSlot {
    running: Arc<Mutex<HashMap<String, u32>>>,
    who: String,
}

impl TurnCounter {
    /// Start a turn for `who`, unless `max` are running already.
    pub fn begin(&self, who: &str, max: u32) -> Result<TurnSlot, Limited> {
        let mut map = lock(&self.running);
        let n = map.entry(who.to_string()).or_insert(0);
        if *n >= max {
            return Err(Limited {
                message: format!(
                    "{who} already has {n} copilot turn{} running (at most {max} at once); wait for an answer to finish",
                    if *n == 1 { "" } else { "s" }
                ),
                retry_after: Duration::from_secs(5),
            });
        }
        *n += 1;
        Ok(TurnSlot {
            running: self.running.clone(),
            who: who.to_string(),
        })
    }

    /// Turns `who` has running now.
    pub fn running(&self, who: &str) -> u32 {
        lock(&self.running).get(who).copied().unwrap_or(0)
    }
}

impl Drop for TurnSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.running);
        if let Some(n) = map.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.who);
            }
        }
    }
}

/// The cost guard's answer for a spend so far today: refused once `spent` reaches `cap`
/// (0 = no cap), until the next UTC midnight after `now`.
pub fn model_budget(
    who: &str,
    spent: u64,
    cap: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Limited> {
    if cap == 0 || spent < cap {
        return Ok(());
    }
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    let wait = (midnight - now).to_std().unwrap_or(Duration::ZERO);
    Err(Limited {
        message: format!(
            "{who} has used {spent} model tokens today, the daily cap is {cap}; the copilot answers again after midnight UTC"
        ),
        retry_after: wait,
    })
}

/// The start of `now`'s UTC day, in Unix µs.
pub fn day_start_us(now: chrono::DateTime<chrono::Utc>) -> i64 {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_minute: 60,
        burst: 3,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("pat", RateClass::Chat, RATE, t0).is_ok());
        }
        let e = l.check("pat", RateClass::Chat, RATE, t0).unwrap_err();
        assert_eq!(e.retry_after_secs(), 1, "{e:?}");
        assert!(e.message.contains("at most 60 a minute"), "{}", e.message);
        // Other people and the other class have their own buckets.
        assert!(l.check("sam", RateClass::Chat, RATE, t0).is_ok());
        assert!(l.check("pat", RateClass::Api, RATE, t0).is_ok());
        // One second later one request is back, not two.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.check("pat", RateClass::Chat, RATE, t1).is_ok());
        assert!(l.check("pat", RateClass::Chat, RATE, t1).is_err());
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check("pat", RateClass::Chat, RATE, t2).is_ok());
        }
        assert!(l.check("pat", RateClass::Chat, RATE, t2).is_err());
    }

    #[test]
    fn a_turn_slot_is_freed_when_dropped() {
        let c = TurnCounter::default();
        let a = c.begin("pat", 2).unwrap();
        let _b = c.begin("pat", 2).unwrap();
        let e = c.begin("pat", 2).unwrap_err();
        assert!(e.message.contains("at most 2 at once"), "{}", e.message);
        assert!(c.begin("sam", 2).is_ok());
        drop(a);
        assert_eq!(c.running("pat"), 1);
        assert!(c.begin("pat", 2).is_ok());
    }

    #[test]
    fn the_cost_guard_refuses_until_midnight_utc() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T22:30:00Z")
            .unwrap()
            .to_utc();
        assert!(model_budget("pat", 999, 1000, now).is_ok());
        assert!(model_budget("pat", 5_000_000, 0, now).is_ok(), "0 = no cap");
        let e = model_budget("pat", 1000, 1000, now).unwrap_err();
        assert_eq!(e.retry_after_secs(), 90 * 60);
        assert_eq!(
            day_start_us(now),
            chrono::DateTime::parse_from_rfc3339("2026-12-06T00:00:00Z")
                .unwrap()
                .timestamp_micros()
        );
    }
}
