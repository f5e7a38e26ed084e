//! The audit log's key and its anchor outside the database.
//!
//! Every audit row's hash is an HMAC-SHA-256 under a key the database does not hold:
//! `AUDIT_KEY` (32+ characters) or the file `audit.key` in the data directory, created on
//! the first start (32 random bytes, hex, mode 0600). Someone who can write the database
//! but not read the key cannot recompute the chain after changing a row. Each key has an
//! id (the first 16 hex digits of its SHA-256) stored with every row it signed; a rotated
//! key is kept as `audit.key.<id>` so older rows still verify.
//!
//! **Checkpoints** anchor the chain outside the database: after a batch (at most every
//! [`CHECKPOINT_EVERY`]) and when the writer stops, the head's seq and hash are appended,
//! with an HMAC of their own, to `audit-checkpoints.jsonl` in the data directory (an
//! append-only file; `chattr +a` makes the file system enforce it). Rows deleted from the
//! end, or a chain rewritten up to the head, disagree with the last checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::StoreError;

type HmacSha256 = Hmac<sha2_11::Sha256>;

/// How often the writer appends a checkpoint at most (and always when it stops).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "audit.key";

/// The checkpoint file's name in the data directory.
pub const CHECKPOINT_FILE: &str = "audit-checkpoints.jsonl";

/// One audit key.
#[derive(Clone)]
pub struct Key {
    /// Public id: 16 hex digits of the key's SHA-256.
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    fn new(secret: Vec<u8>) -> Key {
        use sha2::Digest;
        let id = hex::encode(&sha2::Sha256::digest(&secret)[..8]);
        Key { id, secret }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Key, StoreError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b)
            .map_err(|e| super::corrupt("audit key", format!("no OS randomness: {e}")))?;
        Ok(Key::new(hex::encode(b).into_bytes()))
    }

    /// A MAC over bytes the caller feeds in.
    pub fn mac(&self, feed: impl FnOnce(&mut dyn FnMut(&[u8]))) -> String {
        // HMAC takes keys of any length: this cannot fail.
        let mut m = match HmacSha256::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        feed(&mut |b: &[u8]| m.update(b));
        hex::encode(m.finalize().into_bytes())
    }

    fn write(&self, path: &Path) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::DataDir {
            path: path.display().to_string(),
            source: e,
        };
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(path).map_err(io)?;
        f.write_all(&self.secret).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)
    }
}

/// The keys a store signs and verifies with, and where its checkpoints go.
#[derive(Debug)]
pub struct AuditKeys {
    /// The key new rows are signed with.
    pub current: Key,
    /// Retired keys, for rows they signed.
    pub retired: Vec<Key>,
    /// The key file this process created at start, if it did (the caller says so once).
    pub created: Option<PathBuf>,
    /// The data directory (key files, checkpoints).
    pub dir: PathBuf,
    last_checkpoint: Mutex<Option<Instant>>,
}

/// A checkpoint line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// Rows in the chain then (the head's seq).
    pub seq: i64,
    /// The head's hash.
    pub hash: String,
    /// When (Unix µs).
    pub at: i64,
    /// The key that signed it.
    pub key: String,
    /// HMAC over seq and hash.
    pub mac: String,
}

fn read_key(path: &Path) -> Result<Key, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::DataDir {
        path: path.display().to_string(),
        source: e,
    })?;
    let t = text.trim();
    if t.len() < 32 {
        return Err(super::corrupt(
            "audit key",
            format!("{} holds fewer than 32 characters", path.display()),
        ));
    }
    Ok(Key::new(t.as_bytes().to_vec()))
}

impl AuditKeys {
    /// Load the keys for a data directory: `env_key` (`AUDIT_KEY`) when given, else the
    /// key file, created when missing; retired keys from `audit.key.<id>` files.
    pub fn load(dir: &Path, env_key: Option<&str>) -> Result<AuditKeys, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::DataDir {
            path: dir.display().to_string(),
            source: e,
        })?;
        let mut created = None;
        let current = match env_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) if k.len() < 32 => {
                return Err(super::corrupt(
                    "AUDIT_KEY",
                    "must be at least 32 characters (e.g. 64 hex digits from `openssl rand -hex 32`)",
                ));
            }
            Some(k) => Key::new(k.as_bytes().to_vec()),
            None => {
                let path = dir.join(KEY_FILE);
                if path.exists() {
                    read_key(&path)?
                } else {
                    let k = Key::generate()?;
                    k.write(&path)?;
                    created = Some(path);
                    k
                }
            }
        };
        let retired = retired_key_files(dir, KEY_FILE)
            .iter()
            .map(|p| read_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditKeys {
            current,
            retired,
            created,
            dir: dir.to_path_buf(),
            last_checkpoint: Mutex::new(None),
        })
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|k| k.id == id)
    }

    /// Where checkpoints go.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join(CHECKPOINT_FILE)
    }

    fn checkpoint_mac(key: &Key, seq: i64, hash: &str) -> String {
        key.mac(|f| {
            f(b"checkpoint");
            f(&seq.to_be_bytes());
            f(hash.as_bytes());
        })
    }

    /// Append a checkpoint of the head when one is due (`force`: always).
    pub fn checkpoint(&self, seq: i64, hash: &str, force: bool) -> Result<(), StoreError> {
        let mut last = match self.last_checkpoint.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !force && last.is_some_and(|t| t.elapsed() < CHECKPOINT_EVERY) {
            return Ok(());
        }
        let c = Checkpoint {
            seq,
            hash: hash.to_string(),
            at: chrono::Utc::now().timestamp_micros(),
            key: self.current.id.clone(),
            mac: Self::checkpoint_mac(&self.current, seq, hash),
        };
        let path = self.checkpoint_path();
        let io = |e: std::io::Error| StoreError::DataDir {
            path: path.display().to_string(),
            source: e,
        };
        let line =
            serde_json::to_string(&c).map_err(|e| super::corrupt("checkpoint", e.to_string()))?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)?;
        f.sync_data().map_err(io)?;
        *last = Some(Instant::now());
        Ok(())
    }

    /// Every checkpoint, oldest first; a line that does not parse or whose MAC does not
    /// check is an error naming its line.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, String> {
        let text = match std::fs::read_to_string(self.checkpoint_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", CHECKPOINT_FILE)),
        };
        let mut out = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let c: Checkpoint = serde_json::from_str(line)
                .map_err(|e| format!("{CHECKPOINT_FILE} line {}: unreadable ({e})", i + 1))?;
            let ok = self
                .get(&c.key)
                .is_some_and(|k| Self::checkpoint_mac(k, c.seq, &c.hash) == c.mac);
            if !ok {
                return Err(format!(
                    "{CHECKPOINT_FILE} line {}: its MAC does not check (forged, or signed by a key not present)",
                    i + 1
                ));
            }
            out.push(c);
        }
        Ok(out)
    }

    /// Retire the current key (kept as `audit.key.<id>`) and install a new one in the key
    /// file. Returns (old id, new id). Not available with `AUDIT_KEY`.
    pub fn rotate_file(dir: &Path) -> Result<(String, String), StoreError> {
        let path = dir.join(KEY_FILE);
        let old = read_key(&path)?;
        let new = Key::generate()?;
        let retired = dir.join(format!("{KEY_FILE}.{}", old.id));
        if !retired.exists() {
            old.write(&retired)?;
        }
        let tmp = dir.join(format!(".{KEY_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        new.write(&tmp)?;
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::DataDir {
            path: path.display().to_string(),
            source: e,
        })?;
        Ok((old.id, new.id))
    }
}

/// The retired keys beside a key file: `<key_file>.<anything>` in `dir` (a rotation renames
/// the old key so), in a stable order. An unreadable directory has none.
pub(crate) fn retired_key_files(dir: &Path, key_file: &str) -> Vec<PathBuf> {
    let prefix = format!("{key_file}.");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}
