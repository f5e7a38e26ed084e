//! Bodies at rest: what people asked and what models answered, encrypted.
//!
//! Prompt and response bodies (the messages sent to a model, its answers and tool calls,
//! a conversation turn's question, answer and streamed events) are stored sealed with
//! ChaCha20-Poly1305 under a key the database does not hold: `BODY_KEY` (64 hex digits) or
//! the file `body.key` in the data directory, created on the first start (32 random bytes,
//! hex, mode 0600) — beside the audit key, never in the database. Someone who can read the
//! database (or a backup of it) without the key reads ciphertext.
//!
//! A sealed value is text: `sealed:v1:<key id>:<hex of nonce ‖ ciphertext>`. Its
//! associated data names where it belongs (`audit:<seq>:<field>`, `turn:<id>:<column>`),
//! so a sealed body copied into another row does not open. Text without the prefix is a
//! row from before encryption and is read as it is (the migration path). A retired key
//! is kept as `body.key.<id>` so older bodies still open.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use super::StoreError;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "body.key";

/// The environment variable that gives the key instead of the file.
pub const KEY_ENV: &str = "BODY_KEY";

/// What every sealed value starts with.
pub const PREFIX: &str = "sealed:v1:";

/// One body key.
#[derive(Clone)]
struct BodyKey {
    id: String,
    cipher: ChaCha20Poly1305,
}

impl BodyKey {
    fn from_hex(text: &str, origin: &str) -> Result<BodyKey, StoreError> {
        let t = text.trim();
        let bytes = unhex(t).filter(|b| b.len() == 32).ok_or_else(|| {
            StoreError::BodyKey(format!(
                "{origin} must be 64 hex digits (32 bytes, e.g. from `openssl rand -hex 32`)"
            ))
        })?;
        use sha2::Digest;
        let id = hex::encode(&sha2::Sha256::digest(&bytes)[..8]);
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| StoreError::BodyKey(format!("{origin}: not a 32-byte key")))?;
        Ok(BodyKey { id, cipher })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The keys bodies are sealed and opened with.
#[derive(Clone)]
pub struct BodyKeys {
    current: BodyKey,
    retired: Vec<BodyKey>,
    /// The key file this process created at start, if it did.
    pub created: Option<PathBuf>,
}

impl std::fmt::Debug for BodyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyKeys({})", self.current.id)
    }
}

/// Why a sealed body does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed under a key this installation does not have.
    #[error("sealed with body key {0}, which this installation does not have")]
    UnknownKey(String),
    /// The ciphertext was changed, or belongs to another row.
    #[error("does not decrypt (changed, or moved from another row)")]
    Tampered,
    /// Not a sealed value of a known version.
    #[error("malformed sealed value")]
    Malformed,
}

impl BodyKeys {
    /// Load the keys for a data directory: `env_key` (`BODY_KEY`) when given, else the key
    /// file, created when missing; retired keys from `body.key.<id>` files.
    pub fn load(dir: &Path, env_key: Option<&str>) -> Result<BodyKeys, StoreError> {
        let mut created = None;
        let current = match env_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => BodyKey::from_hex(k, KEY_ENV)?,
            None => {
                let path = dir.join(KEY_FILE);
                if path.exists() {
                    read_key(&path)?
                } else {
                    let mut b = [0u8; 32];
                    getrandom::fill(&mut b).map_err(|e| {
                        super::corrupt("body key", format!("no OS randomness: {e}"))
                    })?;
                    let text = hex::encode(b);
                    write_key(&path, &text)?;
                    created = Some(path);
                    BodyKey::from_hex(&text, KEY_FILE)?
                }
            }
        };
        let retired = super::audit_key::retired_key_files(dir, KEY_FILE)
            .iter()
            .map(|p| read_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BodyKeys {
            current,
            retired,
            created,
        })
    }

    /// The id of the key new bodies are sealed with.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seal `plain` for the place `aad` names.
    pub fn seal(&self, plain: &str, aad: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce)
            .map_err(|e| super::corrupt("body nonce", format!("no OS randomness: {e}")))?;
        let ct = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| super::corrupt("body", "encryption failed"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!(
            "{PREFIX}{}:{}",
            self.current.id,
            hex::encode(&blob)
        ))
    }

    /// Open a stored value: a sealed one is decrypted, anything else (a row from before
    /// encryption) is returned as it is.
    pub fn open(&self, stored: &str, aad: &str) -> Result<String, OpenError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, blob_hex) = rest.split_once(':').ok_or(OpenError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_string()))?;
        let blob = unhex(blob_hex).ok_or(OpenError::Malformed)?;
        if blob.len() < 12 + 16 {
            return Err(OpenError::Malformed);
        }
        let (nonce, ct) = blob.split_at(12);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Tampered)?;
        String::from_utf8(plain).map_err(|_| OpenError::Malformed)
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// SHA-256 of a body, hex: what stays once its retention ends.
pub fn digest(plain: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(plain.as_bytes()))
}

fn read_key(path: &Path) -> Result<BodyKey, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::DataDir {
        path: path.display().to_string(),
        source: e,
    })?;
    BodyKey::from_hex(&text, &path.display().to_string())
}

fn write_key(path: &Path, text: &str) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::DataDir {
        path: path.display().to_string(),
        source: e,
    };
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(io)?;
    writeln!(f, "{text}").map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn keys() -> BodyKeys {
        BodyKeys::load(
            &std::env::temp_dir(),
            Some("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        )
        .unwrap()
    }

    #[test]
    fn seals_and_opens_only_in_its_place() {
        let k = keys();
        let s = k
            .seal("credit limit 1,000 for ACME", "audit:7:text")
            .unwrap();
        assert!(is_sealed(&s));
        assert!(!s.contains("ACME"));
        assert_eq!(
            k.open(&s, "audit:7:text").unwrap(),
            "credit limit 1,000 for ACME"
        );
        assert_eq!(k.open(&s, "audit:8:text"), Err(OpenError::Tampered));
        // Two seals of one text differ (fresh nonce each time).
        assert_ne!(
            s,
            k.seal("credit limit 1,000 for ACME", "audit:7:text")
                .unwrap()
        );
        // Plain text from before encryption reads as it is.
        assert_eq!(k.open("old answer", "x").unwrap(), "old answer");
        let mut bad = s.clone();
        bad.pop();
        bad.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(k.open(&bad, "audit:7:text").is_err());
    }

    #[test]
    fn a_key_must_be_32_bytes_of_hex() {
        let e = BodyKeys::load(&std::env::temp_dir(), Some("short")).unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
    }
}
