//! Identity: users are named API tokens with a role. Tokens are random 256-bit secrets
//! shown once at creation; only their SHA-256 hash is stored, so a database leak does not
//! leak credentials (the tokens' entropy makes a slow hash unnecessary).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::policy::Policy;
use crate::store::Store;

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
    #[error("a token named `{0}` is already active (revoke it first, or choose another name)")]
    Exists(String),
    /// Not found.
    #[error("no active token named `{0}`")]
    NotFound(String),
    /// No randomness.
    #[error("the operating system provided no randomness: {0}")]
    Random(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// SHA-256 hex of a token.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// Create a token for `name` with `role`; returns the secret (shown once).
pub async fn create_token(
    store: &Store,
    policy: &Policy,
    name: &str,
    role: &str,
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
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let now = chrono::Utc::now().timestamp_micros();
    if !store
        .insert_token(name, role, &hash_token(&secret), now)
        .await?
    {
        return Err(TokenError::Exists(name.to_string()));
    }
    Ok(secret)
}

/// Revoke a token by name.
pub async fn revoke_token(store: &Store, name: &str) -> Result<(), TokenError> {
    if store
        .revoke_token(name, chrono::Utc::now().timestamp_micros())
        .await?
    {
        Ok(())
    } else {
        Err(TokenError::NotFound(name.to_string()))
    }
}
