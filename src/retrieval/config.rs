//! Retrieval configuration: which embedding model, which vector index. Every field has a
//! flag and an environment variable; the defaults need nothing (the local model if
//! `scripts/install-embeddings` installed it, else BM25 alone; vectors in memory).

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};

/// Whether to use embeddings at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbeddingsMode {
    /// The configured endpoint, else the local model if installed, else BM25 alone (with a warning).
    Auto,
    /// BM25 alone.
    Off,
}

/// Retrieval settings. `Debug` masks the API keys.
#[derive(Clone, Args)]
pub struct RetrievalConfig {
    /// `auto`: embeddings from EMBEDDINGS_BASE_URL if set, else the local model if installed,
    /// else BM25 alone; `off`: BM25 alone.
    #[arg(
        long,
        env = "ORDER_COPILOT_EMBEDDINGS",
        value_enum,
        default_value = "auto"
    )]
    pub embeddings: EmbeddingsMode,
    /// Folder holding the local all-MiniLM-L6-v2 (model.safetensors, tokenizer.json,
    /// config.json). Default: where `scripts/install-embeddings` puts it
    /// (`$ORDER_COPILOT_MODELS` or `~/.cache/order-copilot/models`, then `all-MiniLM-L6-v2`).
    /// Set explicitly, it must hold a loadable model.
    #[arg(long, env = "ORDER_COPILOT_EMBEDDINGS_MODEL", value_name = "DIR")]
    pub embeddings_model_dir: Option<PathBuf>,
    /// An OpenAI-compatible embeddings endpoint (`http://127.0.0.1:8081/v1`); used instead of
    /// the local model when set.
    #[arg(long, env = "EMBEDDINGS_BASE_URL", value_name = "URL")]
    pub embeddings_base_url: Option<String>,
    /// The model name to ask that endpoint for.
    #[arg(long, env = "EMBEDDINGS_MODEL", default_value = "all-MiniLM-L6-v2")]
    pub embeddings_model: String,
    /// Bearer key for that endpoint (from the environment; never logged).
    #[arg(long, env = "EMBEDDINGS_API_KEY", hide_env_values = true)]
    pub embeddings_api_key: Option<String>,
    /// A Qdrant server (`http://127.0.0.1:6334`, its gRPC port) holding the vectors instead
    /// of the in-memory index. Unreachable at start: an error is logged and the vectors stay
    /// in memory.
    #[arg(long, env = "QDRANT_URL", value_name = "URL")]
    pub qdrant_url: Option<String>,
    /// The Qdrant collection (created if missing; one holding vectors of another size or
    /// distance is refused, never overwritten).
    #[arg(long, env = "QDRANT_COLLECTION", default_value = "order_copilot")]
    pub qdrant_collection: String,
    /// API key of the Qdrant server (from the environment; never logged).
    #[arg(long, env = "QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// Vector matches below this cosine similarity are not evidence and are dropped.
    #[arg(long, env = "ORDER_COPILOT_MIN_SIMILARITY", default_value_t = 0.25)]
    pub min_similarity: f32,
}

impl std::fmt::Debug for RetrievalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |k: &Option<String>| k.as_ref().map(|_| "<redacted>");
        f.debug_struct("RetrievalConfig")
            .field("embeddings", &self.embeddings)
            .field("embeddings_model_dir", &self.embeddings_model_dir)
            .field("embeddings_base_url", &self.embeddings_base_url)
            .field("embeddings_model", &self.embeddings_model)
            .field("embeddings_api_key", &masked(&self.embeddings_api_key))
            .field("qdrant_url", &self.qdrant_url)
            .field("qdrant_collection", &self.qdrant_collection)
            .field("qdrant_api_key", &masked(&self.qdrant_api_key))
            .field("min_similarity", &self.min_similarity)
            .finish()
    }
}

#[derive(Parser)]
struct FromEnv {
    #[command(flatten)]
    cfg: RetrievalConfig,
}

impl RetrievalConfig {
    /// The configuration from environment variables alone (defaults for the rest).
    pub fn from_env() -> anyhow::Result<RetrievalConfig> {
        Ok(FromEnv::try_parse_from(["order-copilot"])?.cfg)
    }

    /// BM25 only, nothing read from the environment (tests, tools).
    pub fn bm25_only() -> RetrievalConfig {
        RetrievalConfig {
            embeddings: EmbeddingsMode::Off,
            embeddings_model_dir: None,
            embeddings_base_url: None,
            embeddings_model: "all-MiniLM-L6-v2".into(),
            embeddings_api_key: None,
            qdrant_url: None,
            qdrant_collection: "order_copilot".into(),
            qdrant_api_key: None,
            min_similarity: 0.25,
        }
    }

    /// The local model folder over a given directory, nothing else configured.
    pub fn local_model(dir: PathBuf) -> RetrievalConfig {
        RetrievalConfig {
            embeddings: EmbeddingsMode::Auto,
            embeddings_model_dir: Some(dir),
            ..RetrievalConfig::bm25_only()
        }
    }

    /// Where `scripts/install-embeddings` installs the local model.
    pub fn default_model_dir() -> Option<PathBuf> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let models = env("ORDER_COPILOT_MODELS")
            .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("order-copilot/models")))
            .or_else(|| env("HOME").map(|h| h.join(".cache/order-copilot/models")))?;
        Some(models.join("all-MiniLM-L6-v2"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_api_keys() {
        let cfg = RetrievalConfig {
            embeddings_api_key: Some("sk-embed-secret".into()),
            qdrant_api_key: Some("qd-secret".into()),
            ..RetrievalConfig::bm25_only()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
