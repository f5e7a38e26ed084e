//! Retrieval: find the policy clauses, past cases and catalogue entries that bear on a
//! question, so the copilot can put them in a prompt with their source ids and cite them.
//!
//! Two rankings of the same documents, fused by reciprocal rank:
//! - [`bm25`] — full text with tantivy (an in-RAM index: everything in it is rebuilt from
//!   its sources at start — policy files, the snapshot, the store — so there is nothing to
//!   persist or migrate), with stemming, stop words, an exact match on the document id
//!   (`SKU-10023`) and edit-distance matching for misspelt words;
//! - [`vector`] — cosine similarity of sentence embeddings ([`embed`]: all-MiniLM-L6-v2 run
//!   in Rust with candle, or an OpenAI-compatible endpoint) in an index behind the
//!   [`vector::VectorIndex`] trait: exact search in memory by default, a Qdrant server
//!   ([`qdrant`]) when `QDRANT_URL` is set — or in memory after all, with an error logged,
//!   when that server is unreachable or its collection holds other vectors at start.
//!
//! Without an embedding model, retrieval runs on BM25 alone and says so once at start.
//! [`docs`] turns policies, the catalogue and case history into [`Doc`]s whose ids are the
//! citation refs. This module must not depend on HTTP or the copilot; the server calls
//! [`Retriever::upsert`] when a case is resolved.

pub mod bm25;
pub mod config;
pub mod docs;
pub mod embed;
pub mod qdrant;
pub mod vector;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use config::RetrievalConfig;
pub use docs::{case_docs, past_case_id, policy_docs, product_docs, resolved_case_doc};

use bm25::TantivyIndex;
use embed::Embedder;
use vector::{Point, VectorIndex};

/// Which collection a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corpus {
    /// Clauses of the policy files (`policies/approvals.toml#release_credit_hold`).
    Policy,
    /// Resolved cases: the demo's or Odoo's history (`past:17`) and cases resolved here.
    Case,
    /// The product catalogue (id: the product's default code).
    Product,
}

impl Corpus {
    /// Every corpus.
    pub const ALL: [Corpus; 3] = [Corpus::Policy, Corpus::Case, Corpus::Product];

    /// The serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Corpus::Policy => "policy",
            Corpus::Case => "case",
            Corpus::Product => "product",
        }
    }
}

/// A document to index. The id is the citation ref and unique across corpora.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    /// Citation ref.
    pub id: String,
    /// Collection.
    pub corpus: Corpus,
    /// One-line title.
    pub title: String,
    /// Body text.
    pub text: String,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Citation ref (the document's id).
    pub id: String,
    /// Collection.
    pub corpus: Corpus,
    /// The document's title.
    pub title: String,
    /// The passage of the document that best matches the query (at most ~300 characters).
    pub snippet: String,
    /// Fused score: the sum over rankings of 1 / (60 + rank). Higher is better.
    pub score: f32,
}

/// The constant of reciprocal rank fusion (Cormack et al. 2009): damps the weight of the
/// very top ranks so that agreement between rankings matters more than either's first place.
pub const RRF_K: f32 = 60.0;

/// Longest id accepted (ids are refs, not text).
pub const MAX_ID_CHARS: usize = 256;
/// Longest title kept.
pub const MAX_TITLE_CHARS: usize = 400;
/// Longest body kept; the rest of a longer document is cut (and the cut is logged).
pub const MAX_TEXT_CHARS: usize = 16_000;
/// Longest query used; longer queries are cut.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most hits a search returns.
pub const MAX_K: usize = 100;

/// Fuse rankings (each a list of ids, best first) by reciprocal rank: every id scores the
/// sum of `1 / (RRF_K + rank)` over the rankings it appears in (rank 1-based). Ties keep the
/// order of first appearance, so the result is deterministic.
pub fn rrf(rankings: &[Vec<String>]) -> Vec<(String, f32)> {
    let mut scores: HashMap<&str, (f32, usize)> = HashMap::new();
    let mut order = 0usize;
    for ranking in rankings {
        for (i, id) in ranking.iter().enumerate() {
            let add = 1.0 / (RRF_K + (i + 1) as f32);
            let e = scores.entry(id.as_str()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += add;
        }
    }
    let mut out: Vec<(&str, f32, usize)> =
        scores.into_iter().map(|(k, (s, o))| (k, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter()
        .map(|(k, s, _)| (k.to_string(), s))
        .collect()
}

/// What was built, for logs, `/api/status`-like reports and the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct RetrieverInfo {
    /// Documents per corpus.
    pub docs: Vec<(Corpus, usize)>,
    /// The embedding model, or `None` when running on BM25 alone.
    pub embedder: Option<String>,
    /// The vector index.
    pub vector_index: Option<String>,
    /// Time to build the BM25 index.
    pub bm25_build_ms: f64,
    /// Time to embed every document and fill the vector index.
    pub vector_build_ms: f64,
}

/// The two halves a search uses for vectors.
struct Vectors {
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn VectorIndex>,
}

/// Hybrid search over policies, case history and the catalogue. `Send + Sync`; share it
/// in an `Arc`.
pub struct Retriever {
    docs: RwLock<HashMap<String, Doc>>,
    bm25: TantivyIndex,
    vectors: Option<Vectors>,
    min_similarity: f32,
    /// Serialises upserts so the two indexes and the document map change together.
    upserts: tokio::sync::Mutex<()>,
    info: RwLock<RetrieverInfo>,
}

impl Retriever {
    /// Build both indexes over `docs`. With no embedding model installed or configured,
    /// logs one warning and builds BM25 only; a model that is configured but broken is an
    /// error.
    pub async fn build(cfg: &RetrievalConfig, docs: Vec<Doc>) -> anyhow::Result<Retriever> {
        let embedder = embed::from_config(cfg).await?;
        Self::build_with_embedder(cfg, embedder, docs).await
    }

    /// [`Retriever::build`] with the embedder already loaded ([`embed::from_config`]), so a
    /// server can refuse a broken configuration at start and embed in the background.
    pub async fn build_with_embedder(
        cfg: &RetrievalConfig,
        embedder: Option<Arc<dyn Embedder>>,
        docs: Vec<Doc>,
    ) -> anyhow::Result<Retriever> {
        let vectors = match embedder {
            Some(embedder) => {
                let index = match vector::from_config(cfg, embedder.dim()).await {
                    Ok(index) => index,
                    // A Qdrant server that is down or holds other vectors must not cost
                    // the product its search: the same vectors, kept in memory instead.
                    Err(e) => {
                        tracing::error!(
                            error = %format!("{e:#}"),
                            "the configured vector index is unusable; vectors are kept in memory instead"
                        );
                        Arc::new(vector::ExactIndex::new(embedder.dim()))
                    }
                };
                Some(Vectors { embedder, index })
            }
            None if cfg.embeddings == config::EmbeddingsMode::Off => {
                tracing::info!("retrieval runs on BM25 only (ORDER_COPILOT_EMBEDDINGS=off)");
                None
            }
            None => {
                tracing::warn!(
                    "retrieval runs on BM25 only: no embedding model is installed (run scripts/install-embeddings) or configured (ORDER_COPILOT_EMBEDDINGS_MODEL, EMBEDDINGS_BASE_URL)"
                );
                None
            }
        };
        Self::with_parts(cfg.min_similarity, vectors, docs).await
    }

    /// Build over explicit parts (an embedder and index of the caller's choice).
    pub async fn with_vectors(
        min_similarity: f32,
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorIndex>,
        docs: Vec<Doc>,
    ) -> anyhow::Result<Retriever> {
        Self::with_parts(min_similarity, Some(Vectors { embedder, index }), docs).await
    }

    async fn with_parts(
        min_similarity: f32,
        vectors: Option<Vectors>,
        docs: Vec<Doc>,
    ) -> anyhow::Result<Retriever> {
        let docs = dedupe(docs.into_iter().filter_map(sanitize).collect());
        let started = Instant::now();
        let bm25 = TantivyIndex::new()?;
        let bm25 = {
            let docs = docs.clone();
            tokio::task::spawn_blocking(move || bm25.add(&docs).map(|()| bm25)).await??
        };
        let bm25_build_ms = ms(started.elapsed());
        let started = Instant::now();
        if let Some(v) = &vectors {
            embed_into(v, &docs).await?;
        }
        let vector_build_ms = ms(started.elapsed());
        let info = RetrieverInfo {
            docs: count_by_corpus(docs.iter()),
            embedder: vectors.as_ref().map(|v| v.embedder.name()),
            vector_index: vectors.as_ref().map(|v| v.index.describe()),
            bm25_build_ms,
            vector_build_ms,
        };
        tracing::info!(
            docs = docs.len(),
            bm25_ms = bm25_build_ms.round(),
            vectors_ms = vector_build_ms.round(),
            embedder = info.embedder.as_deref().unwrap_or("none (BM25 only)"),
            vector_index = info.vector_index.as_deref().unwrap_or("none"),
            "retrieval indexes built"
        );
        Ok(Retriever {
            docs: RwLock::new(docs.into_iter().map(|d| (d.id.clone(), d)).collect()),
            bm25,
            vectors,
            min_similarity,
            upserts: tokio::sync::Mutex::new(()),
            info: RwLock::new(info),
        })
    }

    /// What was built.
    pub fn info(&self) -> RetrieverInfo {
        match self.info.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether searches use vectors as well as BM25.
    pub fn has_vectors(&self) -> bool {
        self.vectors.is_some()
    }

    /// The `k` best documents of the given corpora (all corpora when `corpora` is empty)
    /// for `query`, fused from the BM25 and the vector ranking. An empty query finds nothing.
    pub async fn search(
        &self,
        query: &str,
        corpora: &[Corpus],
        k: usize,
    ) -> anyhow::Result<Vec<Hit>> {
        let query = truncate_chars(query.trim(), MAX_QUERY_CHARS);
        if query.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let k = k.min(MAX_K);
        let corpora: Vec<Corpus> = if corpora.is_empty() {
            Corpus::ALL.to_vec()
        } else {
            corpora.to_vec()
        };
        // Each ranking contributes more candidates than asked for, so that a document
        // both rankings like but neither puts first can still surface.
        let depth = (k * 4).max(40);
        let lexical = self.bm25.search(query, &corpora, depth)?;
        let mut rankings = vec![lexical];
        if let Some(v) = &self.vectors {
            let q = v.embedder.embed(&[query.to_string()]).await?;
            if let Some(qv) = q.first() {
                // A vector index on a server can fail where BM25 cannot: answer from BM25.
                match v.index.search(qv, &corpora, depth).await {
                    Ok(near) => rankings.push(
                        near.into_iter()
                            .filter(|(_, sim)| *sim >= self.min_similarity)
                            .map(|(id, _)| id)
                            .collect(),
                    ),
                    Err(e) => tracing::warn!(
                        error = %format!("{e:#}"),
                        "vector search failed; this search uses BM25 alone"
                    ),
                }
            }
        }
        let fused = rrf(&rankings);
        let docs = match self.docs.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let terms = docs::query_terms(query);
        Ok(fused
            .into_iter()
            .filter_map(|(id, score)| {
                let d = docs.get(&id)?;
                corpora.contains(&d.corpus).then(|| Hit {
                    id: d.id.clone(),
                    corpus: d.corpus,
                    title: d.title.clone(),
                    snippet: docs::snippet(&d.text, &terms),
                    score,
                })
            })
            .take(k)
            .collect())
    }

    /// Add or replace documents (by id) in both indexes, e.g. when a case is resolved.
    /// Searches see them when this returns.
    pub async fn upsert(&self, docs: Vec<Doc>) -> anyhow::Result<()> {
        let docs = dedupe(docs.into_iter().filter_map(sanitize).collect());
        if docs.is_empty() {
            return Ok(());
        }
        let _one_at_a_time = self.upserts.lock().await;
        // Vectors first: if embedding fails, neither index changed.
        if let Some(v) = &self.vectors {
            embed_into(v, &docs).await?;
        }
        let bm25 = self.bm25.clone();
        let batch = docs.clone();
        tokio::task::spawn_blocking(move || bm25.upsert(&batch)).await??;
        let mut map = match self.docs.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for d in docs {
            map.insert(d.id.clone(), d);
        }
        let counts = count_by_corpus(map.values());
        drop(map);
        if let Ok(mut info) = self.info.write() {
            info.docs = counts;
        }
        Ok(())
    }
}

/// Every document of the three corpora: the policy clauses (from `policies_dir`, or the
/// embedded defaults), the snapshot's catalogue and past cases, and cases resolved in the
/// store (`resolved`).
pub fn corpus_docs(
    policies_dir: Option<&std::path::Path>,
    snapshot: &crate::domain::Snapshot,
    resolved: Vec<Doc>,
) -> anyhow::Result<Vec<Doc>> {
    let mut docs = policy_docs(policies_dir)?;
    docs.extend(product_docs(snapshot));
    docs.extend(case_docs(snapshot));
    docs.extend(resolved);
    Ok(docs)
}

/// Embed documents in batches and store their vectors.
async fn embed_into(v: &Vectors, docs: &[Doc]) -> anyhow::Result<()> {
    for chunk in docs.chunks(embed::BATCH) {
        let texts: Vec<String> = chunk.iter().map(embed::doc_text).collect();
        let vecs = v.embedder.embed(&texts).await?;
        if vecs.len() != chunk.len() {
            anyhow::bail!(
                "the embedding model returned {} vectors for {} texts",
                vecs.len(),
                chunk.len()
            );
        }
        let points = chunk
            .iter()
            .zip(vecs)
            .map(|(d, vector)| Point {
                id: d.id.clone(),
                corpus: d.corpus,
                vector,
            })
            .collect();
        v.index.upsert(points).await?;
    }
    Ok(())
}

fn count_by_corpus<'a>(docs: impl Iterator<Item = &'a Doc>) -> Vec<(Corpus, usize)> {
    let mut n = [0usize; 3];
    for d in docs {
        n[d.corpus as usize] += 1;
    }
    Corpus::ALL.iter().map(|c| (*c, n[*c as usize])).collect()
}

/// Keep the last of documents sharing an id, in first-seen order.
fn dedupe(docs: Vec<Doc>) -> Vec<Doc> {
    let mut pos: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Doc> = Vec::with_capacity(docs.len());
    for d in docs {
        match pos.get(&d.id) {
            Some(&i) => out[i] = d,
            None => {
                pos.insert(d.id.clone(), out.len());
                out.push(d);
            }
        }
    }
    out
}

/// Bound a document's fields; refuse one without a usable id.
fn sanitize(mut d: Doc) -> Option<Doc> {
    let id = d.id.trim();
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        tracing::warn!(id = %truncate_chars(id, 80), "retrieval: document skipped: its id is empty, too long or has control characters");
        return None;
    }
    d.id = id.to_string();
    if d.title.chars().count() > MAX_TITLE_CHARS {
        d.title = truncate_chars(&d.title, MAX_TITLE_CHARS).to_string();
    }
    if d.text.chars().count() > MAX_TEXT_CHARS {
        tracing::warn!(id = %d.id, "retrieval: document text cut to {MAX_TEXT_CHARS} characters");
        d.text = truncate_chars(&d.text, MAX_TEXT_CHARS).to_string();
    }
    Some(d)
}

/// The first `n` characters of `s` (never splitting a character).
pub(crate) fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rrf_rewards_agreement_over_a_single_first_place() {
        // "b" is second in both rankings; "a" and "c" are first in one and absent from the other.
        let fused = rrf(&[ids(&["a", "b"]), ids(&["c", "b"])]);
        assert_eq!(fused[0].0, "b");
        let expect_b = 2.0 / (RRF_K + 2.0);
        assert!((fused[0].1 - expect_b).abs() < 1e-6);
        assert_eq!(fused.len(), 3);
    }

    #[test]
    fn rrf_scores_are_reciprocal_ranks_and_ties_keep_first_appearance() {
        let fused = rrf(&[ids(&["x", "y", "z"]), ids(&["q"])]);
        let names: Vec<&str> = fused.iter().map(|(k, _)| k.as_str()).collect();
        // x (rank 1) ties q (rank 1 of the second ranking); x appeared first.
        assert_eq!(names, ["x", "q", "y", "z"]);
        assert!((fused[0].1 - 1.0 / 61.0).abs() < 1e-7);
        assert!((fused[2].1 - 1.0 / 62.0).abs() < 1e-7);
        assert!((fused[3].1 - 1.0 / 63.0).abs() < 1e-7);
    }

    #[test]
    fn rrf_of_nothing_is_empty_and_one_ranking_keeps_its_order() {
        assert!(rrf(&[]).is_empty());
        assert!(rrf(&[vec![], vec![]]).is_empty());
        let one = rrf(&[ids(&["c", "a", "b"])]);
        let names: Vec<&str> = one.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn dedupe_keeps_the_last_version_in_first_position() {
        let d = |id: &str, t: &str| Doc {
            id: id.into(),
            corpus: Corpus::Case,
            title: t.into(),
            text: String::new(),
        };
        let out = dedupe(vec![d("a", "1"), d("b", "1"), d("a", "2")]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].title, "2");
        assert_eq!(out[1].id, "b");
    }

    #[test]
    fn sanitize_refuses_bad_ids_and_bounds_text() {
        let mut d = Doc {
            id: "  ".into(),
            corpus: Corpus::Policy,
            title: "t".into(),
            text: "x".repeat(MAX_TEXT_CHARS + 10),
        };
        assert!(sanitize(d.clone()).is_none());
        d.id = "a\nb".into();
        assert!(sanitize(d.clone()).is_none());
        d.id = " ok ".into();
        let s = sanitize(d).unwrap();
        assert_eq!(s.id, "ok");
        assert_eq!(s.text.chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn corpus_serde_names() {
        assert_eq!(
            serde_json::to_string(&Corpus::Policy).unwrap(),
            "\"policy\""
        );
        let c: Corpus = serde_json::from_str("\"product\"").unwrap();
        assert_eq!(c, Corpus::Product);
        for c in Corpus::ALL {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
    }
}
