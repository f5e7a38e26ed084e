//! Vector search behind one trait: [`ExactIndex`] in memory (the default) or a Qdrant
//! server when `QDRANT_URL` is set ([`super::qdrant::QdrantIndex`]).
//!
//! Why exact search in memory rather than an embedded ANN engine: Qdrant's in-process
//! engine (`qdrant-edge` 0.8/0.9) does not compile on stable Rust and would add ~300 crates;
//! at a copilot's corpus size (thousands to tens of thousands of 384-d vectors) a flat
//! scan is exact and takes well under a millisecond per query (`order-copilot bench
//! retrieval` measures it).

use std::collections::HashMap;
use std::sync::RwLock;

use super::{Corpus, RetrievalConfig};
use crate::app::source::BoxFuture;

/// A document's vector.
#[derive(Debug, Clone)]
pub struct Point {
    /// Document id.
    pub id: String,
    /// Its corpus, for filtering.
    pub corpus: Corpus,
    /// Unit-length vector.
    pub vector: Vec<f32>,
}

/// Nearest-neighbour search over unit vectors (cosine = dot product).
pub trait VectorIndex: Send + Sync {
    /// What and where, for logs.
    fn describe(&self) -> String;
    /// Add or replace points by id.
    fn upsert<'a>(&'a self, points: Vec<Point>) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The `k` ids of `corpora` most similar to `query`, with their cosine similarity, best first.
    fn search<'a>(
        &'a self,
        query: &'a [f32],
        corpora: &'a [Corpus],
        k: usize,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(String, f32)>>>;
}

/// The index the configuration asks for: the Qdrant server of `QDRANT_URL` (connected,
/// its collection checked or created), else an empty [`ExactIndex`].
pub async fn from_config(
    cfg: &RetrievalConfig,
    dim: usize,
) -> anyhow::Result<std::sync::Arc<dyn VectorIndex>> {
    match cfg.qdrant_url.as_deref().filter(|u| !u.trim().is_empty()) {
        None => Ok(std::sync::Arc::new(ExactIndex::new(dim))),
        Some(url) => Ok(std::sync::Arc::new(
            super::qdrant::QdrantIndex::connect(
                url,
                cfg.qdrant_api_key.as_deref(),
                &cfg.qdrant_collection,
                dim,
            )
            .await?,
        )),
    }
}

/// Refuse points whose vectors are not `dim` long, naming the first one and `index`.
pub fn check_dims(points: &[Point], dim: usize, index: &str) -> anyhow::Result<()> {
    match points.iter().find(|p| p.vector.len() != dim) {
        Some(bad) => anyhow::bail!(
            "vector of {} has {} dimensions; {index} holds {dim}",
            bad.id,
            bad.vector.len()
        ),
        None => Ok(()),
    }
}

/// Exact cosine search over vectors kept in one flat array.
pub struct ExactIndex {
    dim: usize,
    inner: RwLock<Flat>,
}

#[derive(Default)]
struct Flat {
    ids: Vec<String>,
    corpora: Vec<Corpus>,
    /// `ids.len() * dim` floats, row-major.
    vectors: Vec<f32>,
    pos: HashMap<String, usize>,
}

impl ExactIndex {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> ExactIndex {
        ExactIndex {
            dim,
            inner: RwLock::new(Flat::default()),
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.read().ids.len()
    }

    /// Whether it holds no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Flat> {
        match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Add or replace points (synchronous).
    pub fn upsert_now(&self, points: Vec<Point>) -> anyhow::Result<()> {
        check_dims(&points, self.dim, "the index")?;
        let mut f = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for p in points {
            match f.pos.get(&p.id).copied() {
                Some(i) => {
                    f.corpora[i] = p.corpus;
                    f.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(&p.vector);
                }
                None => {
                    let i = f.ids.len();
                    f.pos.insert(p.id.clone(), i);
                    f.ids.push(p.id);
                    f.corpora.push(p.corpus);
                    f.vectors.extend_from_slice(&p.vector);
                }
            }
        }
        Ok(())
    }

    /// The `k` nearest points of `corpora` (synchronous).
    pub fn search_now(&self, query: &[f32], corpora: &[Corpus], k: usize) -> Vec<(String, f32)> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let f = self.read();
        let mut top: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for (i, row) in f.vectors.chunks_exact(self.dim).enumerate() {
            if !corpora.contains(&f.corpora[i]) {
                continue;
            }
            let s = dot(row, query);
            if top.len() == k && top.last().is_some_and(|(worst, _)| s <= *worst) {
                continue;
            }
            // Keep `top` sorted best first; insertion is cheap for the small k asked for.
            let at = top.partition_point(|(t, _)| *t >= s);
            top.insert(at, (s, i));
            top.truncate(k);
        }
        top.into_iter()
            .map(|(s, i)| (f.ids[i].clone(), s))
            .collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators let the compiler vectorise the loop.
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.as_chunks::<4>();
    let (cb, rb) = b.as_chunks::<4>();
    for (x, y) in ca.iter().zip(cb) {
        for j in 0..4 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

impl VectorIndex for ExactIndex {
    fn describe(&self) -> String {
        format!("exact in-memory ({} dimensions)", self.dim)
    }

    fn upsert<'a>(&'a self, points: Vec<Point>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { self.upsert_now(points) })
    }

    fn search<'a>(
        &'a self,
        query: &'a [f32],
        corpora: &'a [Corpus],
        k: usize,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(String, f32)>>> {
        Box::pin(async move { Ok(self.search_now(query, corpora, k)) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::retrieval::embed::normalise;

    fn p(id: &str, corpus: Corpus, v: &[f32]) -> Point {
        Point {
            id: id.into(),
            corpus,
            vector: normalise(v.to_vec()),
        }
    }

    #[test]
    fn nearest_first_filtered_by_corpus_and_replaced_by_id() {
        let ix = ExactIndex::new(3);
        ix.upsert_now(vec![
            p("a", Corpus::Policy, &[1.0, 0.0, 0.0]),
            p("b", Corpus::Product, &[0.9, 0.1, 0.0]),
            p("c", Corpus::Policy, &[0.0, 1.0, 0.0]),
        ])
        .unwrap();
        let q = normalise(vec![1.0, 0.05, 0.0]);
        let all: Vec<String> = ix
            .search_now(&q, &Corpus::ALL, 3)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(all, ["a", "b", "c"]);
        let pol: Vec<String> = ix
            .search_now(&q, &[Corpus::Policy], 1)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(pol, ["a"]);
        ix.upsert_now(vec![p("a", Corpus::Policy, &[0.0, 0.0, 1.0])])
            .unwrap();
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.search_now(&q, &Corpus::ALL, 1)[0].0, "b");
        assert!(
            ix.upsert_now(vec![p("d", Corpus::Case, &[1.0, 0.0])])
                .is_err()
        );
    }

    #[test]
    fn exact_search_agrees_with_sorting_every_score() {
        let ix = ExactIndex::new(8);
        let mut rng = fastrand::Rng::with_seed(7);
        let pts: Vec<Point> = (0..300)
            .map(|i| {
                let v: Vec<f32> = (0..8).map(|_| rng.f32() - 0.5).collect();
                p(&format!("d{i}"), Corpus::ALL[i % 3], &v)
            })
            .collect();
        ix.upsert_now(pts.clone()).unwrap();
        let q = normalise((0..8).map(|_| rng.f32() - 0.5).collect());
        let mut want: Vec<(f32, String)> = pts
            .iter()
            .map(|x| (dot(&x.vector, &q), x.id.clone()))
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        let got: Vec<String> = ix
            .search_now(&q, &Corpus::ALL, 10)
            .into_iter()
            .map(|x| x.0)
            .collect();
        let want: Vec<String> = want.into_iter().take(10).map(|x| x.1).collect();
        assert_eq!(got, want);
    }
}
