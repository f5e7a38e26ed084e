//! Identity: users are named API tokens with a role. Tokens are random 256-bit secrets
//! shown once at creation; only their SHA-256 hash is stored, so a database leak does not
//! leak credentials (the tokens' entropy makes a slow hash unnecessary).

use serde::Serialize;
use sha2::{Digest, Sha256};

use serde_json::json;

use crate::policy::Policy;
use crate::store::audit::{self, AuditEvent};
use crate::store::{Applied, Change, Store};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Token name (the user's name).
    pub name: String,
    /// Role.
    pub role: String,
}

/// Prefix that makes tokens recognisable in secret scanners.
pub const TOKEN_PREFIX: &str = "oc_";

/// Why a token could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad name.
    #[error("token name `{0}` is not valid (1–64 letters, digits, `-`, `_`, `.`, `@`)")]
    BadName(String),
    /// Unknown role.
    #[error("unknown role `{role}` (known roles: {known})")]
    UnknownRole {
        /// Asked for.
        role: String,
        /// Known.
        known: String,
    },
    /// Name taken.
    #[error(
        "a token named `{0}` exists or existed: names are never reused (its conversations and audit history stay its own); choose another name"
    )]
    Exists(String),
    /// Not found.
    #[error("no active token named `{0}`")]
    NotFound(String),
    /// No randomness.
    #[error("the operating system provided no randomness: {0}")]
    Random(String),
    /// A bad `--expires`.
    #[error("expiry `{0}` is not a duration like 90d, 12h or 30m (or `never`); at most 36500 days")]
    BadExpiry(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How long a new token lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// `limits.token_expiry_days` of the policy (0 there = never).
    PolicyDefault,
    /// Never expires.
    Never,
    /// This long after creation.
    After(chrono::Duration),
}

impl std::str::FromStr for Expiry {
    type Err = TokenError;

    /// `90d`, `12h`, `30m` or `never`.
    fn from_str(s: &str) -> Result<Expiry, TokenError> {
        let bad = || TokenError::BadExpiry(s.chars().take(32).collect());
        let t = s.trim();
        if t.eq_ignore_ascii_case("never") {
            return Ok(Expiry::Never);
        }
        let (last, _) = t.char_indices().last().ok_or_else(bad)?;
        let (n, unit) = t.split_at(last);
        let n: i64 = n.parse().map_err(|_| bad())?;
        let minutes = match unit {
            "d" => n.checked_mul(24 * 60),
            "h" => n.checked_mul(60),
            "m" => Some(n),
            _ => None,
        }
        .filter(|m| *m > 0 && *m <= 36_500 * 24 * 60)
        .ok_or_else(bad)?;
        Ok(Expiry::After(chrono::Duration::minutes(minutes)))
    }
}

impl Expiry {
    /// When a token created at `now` (Unix µs) stops working; `None` = never.
    pub fn at(self, policy: &Policy, now: i64) -> Option<i64> {
        let d = match self {
            Expiry::Never => return None,
            Expiry::After(d) => d,
            Expiry::PolicyDefault => match policy.limits.token_expiry_days {
                0 => return None,
                days => chrono::Duration::days(i64::from(days)),
            },
        };
        d.num_microseconds().map(|us| now.saturating_add(us))
    }
}

/// SHA-256 hex of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// Create a token for `name` with `role`, audited as done by `system`; returns the secret
/// (shown once).
pub async fn create_token(
    store: &Store,
    policy: &Policy,
    name: &str,
    role: &str,
) -> Result<String, TokenError> {
    create_token_by(store, policy, name, role, "system").await
}

/// The `token.created` / `token.revoked` event, written in the token change's transaction.
fn token_event(
    kind: &'static str,
    actor: &str,
    payload: serde_json::Value,
) -> impl FnOnce(Applied) -> Vec<AuditEvent> + Send + 'static {
    let ev = AuditEvent::new(kind, actor, payload);
    move |a: Applied| if a.changed() { vec![ev] } else { vec![] }
}

/// Create a token for `name` with `role` lasting the policy's default
/// (`limits.token_expiry_days`); see [`create_token_expiring`].
pub async fn create_token_by(
    store: &Store,
    policy: &Policy,
    name: &str,
    role: &str,
    actor: &str,
) -> Result<String, TokenError> {
    create_token_expiring(store, policy, name, role, actor, Expiry::PolicyDefault).await
}

/// Create a token for `name` with `role` that lasts `expiry`; the change and its
/// `token.created` audit event are stored in one transaction. Returns the secret (shown
/// once).
pub async fn create_token_expiring(
    store: &Store,
    policy: &Policy,
    name: &str,
    role: &str,
    actor: &str,
    expiry: Expiry,
) -> Result<String, TokenError> {
    if !valid_name(name) {
        return Err(TokenError::BadName(name.to_string()));
    }
    if !policy.roles.iter().any(|r| r == role) {
        return Err(TokenError::UnknownRole {
            role: role.to_string(),
            known: policy.roles.join(", "),
        });
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let now = chrono::Utc::now().timestamp_micros();
    let expires_at = expiry.at(policy, now);
    let change = Change::InsertToken {
        name: name.to_string(),
        role: role.to_string(),
        hash: hash_token(&secret),
        now,
        expires_at,
    };
    let expires = expires_at.and_then(chrono::DateTime::from_timestamp_micros);
    let event = token_event(
        "token.created",
        actor,
        json!({"name": name, "role": role, "expires_at": expires}),
    );
    if !audit::commit_with(store, change, event).await?.changed() {
        return Err(TokenError::Exists(name.to_string()));
    }
    Ok(secret)
}

/// Revoke a token by name; the change and its `token.revoked` event are stored together.
pub async fn revoke_token(store: &Store, name: &str, actor: &str) -> Result<(), TokenError> {
    let change = Change::RevokeToken {
        name: name.to_string(),
        now: chrono::Utc::now().timestamp_micros(),
    };
    let event = token_event("token.revoked", actor, json!({"name": name}));
    if audit::commit_with(store, change, event).await?.changed() {
        Ok(())
    } else {
        Err(TokenError::NotFound(name.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn expiry_parses_days_hours_minutes_and_never() {
        let p = Policy::embedded().unwrap();
        assert_eq!("never".parse::<Expiry>().unwrap().at(&p, 5), None);
        let day = 24 * 3600 * 1_000_000_i64;
        assert_eq!("90d".parse::<Expiry>().unwrap().at(&p, 0), Some(90 * day));
        assert_eq!("12h".parse::<Expiry>().unwrap().at(&p, 0), Some(day / 2));
        assert_eq!(
            "30m".parse::<Expiry>().unwrap().at(&p, 0),
            Some(1_800_000_000)
        );
        assert_eq!(
            Expiry::PolicyDefault.at(&p, 0),
            Some(i64::from(p.limits.token_expiry_days) * day)
        );
        for bad in ["", "d", "90", "90y", "-1d", "0d", "99999999d", "9é", "1.5d"] {
            let e = bad.parse::<Expiry>().unwrap_err().to_string();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
    }
}
