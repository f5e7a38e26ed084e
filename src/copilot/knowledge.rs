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
