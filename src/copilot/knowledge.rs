//! What the copilot needs from retrieval: passages from policies, resolved-case history
//! and the catalogue, ranked for a query. [`Passages`] is the copilot's side of that
//! contract; `src/retrieval` implements it (BM25 and vectors fused by reciprocal rank).
//! Without a retriever the tools that need one say so rather than guess.

use serde::{Deserialize, Serialize};

use crate::app::source::BoxFuture;

/// A searchable collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corpus {
    /// Policy clauses from `policies/`.
    Policy,
    /// Resolved past exceptions.
    Case,
    /// The product catalogue.
    Product,
}

impl Corpus {
    /// Machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Corpus::Policy => "policy",
            Corpus::Case => "case",
            Corpus::Product => "product",
        }
    }
}

/// One retrieved passage. `id` is its citation reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Citation reference (`policies/approvals.toml#release_credit_hold`, `SKU-10023`, `past:17`).
    pub id: String,
    /// Where it comes from.
    pub corpus: Corpus,
    /// Title.
    pub title: String,
    /// The relevant text.
    pub snippet: String,
    /// Relevance (higher is better; comparable within one search only).
    pub score: f32,
}

/// Ranked search over the copilot's knowledge.
pub trait Passages: Send + Sync {
    /// The best `k` passages for `query` from `corpora`.
    fn search<'a>(
        &'a self,
        query: &'a str,
        corpora: &'a [Corpus],
        k: usize,
    ) -> BoxFuture<'a, Result<Vec<Passage>, String>>;
}

/// [`Passages`] over the app's retriever (`src/retrieval`), which the server builds in the
/// background after its first scan: until it is ready, searches say so.
pub struct AppPassages {
    app: std::sync::Arc<crate::app::App>,
}

impl AppPassages {
    /// Over the app's retriever.
    pub fn new(app: std::sync::Arc<crate::app::App>) -> AppPassages {
        AppPassages { app }
    }
}

impl Passages for AppPassages {
    fn search<'a>(
        &'a self,
        query: &'a str,
        corpora: &'a [Corpus],
        k: usize,
    ) -> BoxFuture<'a, Result<Vec<Passage>, String>> {
        use crate::retrieval::Corpus as R;
        Box::pin(async move {
            let Some(r) = self.app.retriever() else {
                return Err("the search index is still being built; try again shortly".into());
            };
            let wanted: Vec<R> = corpora
                .iter()
                .map(|c| match c {
                    Corpus::Policy => R::Policy,
                    Corpus::Case => R::Case,
                    Corpus::Product => R::Product,
                })
                .collect();
            let hits = r
                .search(query, &wanted, k)
                .await
                .map_err(|e| format!("search failed: {e}"))?;
            Ok(hits
                .into_iter()
                .map(|h| Passage {
                    id: h.id,
                    corpus: match h.corpus {
                        R::Policy => Corpus::Policy,
                        R::Case => Corpus::Case,
                        R::Product => Corpus::Product,
                    },
                    title: h.title,
                    snippet: h.snippet,
                    score: h.score,
                })
                .collect())
        })
    }
}
