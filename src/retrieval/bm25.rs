//! BM25 full-text ranking with tantivy, in RAM.
//!
//! The index is rebuilt from its sources at every start (a few thousand documents index in
//! well under a second), so it is never persisted: nothing to migrate, nothing stale.
//! Title and text are indexed stemmed (English) without stop words; an extra unstemmed
//! field carries every word for edit-distance matching, so `hex blot` still finds hex
//! bolts; the raw id is indexed too, so a query naming `SKU-10023` finds that product first.

use std::sync::{Arc, Mutex};

use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::{Corpus, Doc};

/// Analyzer of title and text: words, lowercased, English stop words out, stemmed.
const STEMMED: &str = "oc_stemmed";
/// Analyzer of the fuzzy-matching field: words, lowercased.
const WORDS: &str = "oc_words";
/// Memory of the single indexing thread (tantivy's minimum is 15 MB).
const WRITER_MEMORY: usize = 32_000_000;
/// Words shorter than this are matched exactly only (edit distance on short words matches
/// too much: `bolt` would match `belt`, `bold`, `boot`).
const FUZZY_MIN_CHARS: usize = 5;
/// Words this long or longer may be two edits off.
const FUZZY_TWO_EDITS_CHARS: usize = 9;
/// Most query words used.
const MAX_QUERY_WORDS: usize = 32;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    corpus: Field,
    title: Field,
    text: Field,
    words: Field,
}

struct Inner {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

/// A tantivy index over [`Doc`]s. Cheap to clone (shared); writes are serialised inside.
#[derive(Clone)]
pub struct TantivyIndex {
    inner: Arc<Inner>,
}

impl TantivyIndex {
    /// An empty index.
    pub fn new() -> anyhow::Result<TantivyIndex> {
        let mut b = Schema::builder();
        let indexed = |analyzer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
        };
        let fields = Fields {
            id: b.add_text_field("id", STRING | STORED),
            corpus: b.add_text_field("corpus", STRING),
            title: b.add_text_field("title", indexed(STEMMED)),
            text: b.add_text_field("text", indexed(STEMMED)),
            words: b.add_text_field(
                "words",
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(WORDS)
                        .set_index_option(IndexRecordOption::Basic),
                ),
            ),
        };
        let index = Index::create_in_ram(b.build());
        index.tokenizers().register(STEMMED, stemmed_analyzer()?);
        index.tokenizers().register(WORDS, words_analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(TantivyIndex {
            inner: Arc::new(Inner {
                reader,
                writer: Mutex::new(writer),
                fields,
            }),
        })
    }

    /// Add documents (blocking: run it off the async runtime). Ids must be new; use
    /// [`TantivyIndex::upsert`] to replace.
    pub fn add(&self, docs: &[Doc]) -> anyhow::Result<()> {
        self.write(docs, false)
    }

    /// Add or replace documents by id (blocking).
    pub fn upsert(&self, docs: &[Doc]) -> anyhow::Result<()> {
        self.write(docs, true)
    }

    fn write(&self, docs: &[Doc], replace: bool) -> anyhow::Result<()> {
        let f = self.inner.fields;
        let mut w = self
            .inner
            .writer
            .lock()
            .map_err(|_| anyhow::anyhow!("the BM25 index writer was poisoned by a panic"))?;
        for d in docs {
            if replace {
                w.delete_term(Term::from_field_text(f.id, &d.id));
            }
            let mut doc = TantivyDocument::default();
            doc.add_text(f.id, &d.id);
            doc.add_text(f.corpus, d.corpus.as_str());
            doc.add_text(f.title, &d.title);
            doc.add_text(f.text, &d.text);
            doc.add_text(f.words, &d.title);
            doc.add_text(f.words, &d.text);
            w.add_document(doc)?;
        }
        w.commit()?;
        drop(w);
        self.inner.reader.reload()?;
        Ok(())
    }

    /// Ids of the `limit` best documents of `corpora` for `query`, best first.
    pub fn search(
        &self,
        query: &str,
        corpora: &[Corpus],
        limit: usize,
    ) -> anyhow::Result<Vec<String>> {
        let Some(q) = self.query(query, corpora) else {
            return Ok(Vec::new());
        };
        let searcher = self.inner.reader.searcher();
        let top = searcher.search(&q, &TopDocs::with_limit(limit.max(1)))?;
        let mut ids = Vec::with_capacity(top.len());
        for (_, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(id) = doc.get_first(self.inner.fields.id).and_then(|v| v.as_str()) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// The query: any word of `query` in title (weighted up) or text, stemmed; misspelt
    /// words by edit distance; the whole query or one of its words as an exact id.
    fn query(&self, query: &str, corpora: &[Corpus]) -> Option<BooleanQuery> {
        let f = self.inner.fields;
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let boosted = |q: Box<dyn Query>, b: f32| -> (Occur, Box<dyn Query>) {
            (Occur::Should, Box::new(BoostQuery::new(q, b)))
        };
        let mut stemmed = stemmed_analyzer().ok()?;
        for word in unique_tokens(&mut stemmed, query) {
            let title = Term::from_field_text(f.title, &word);
            let text = Term::from_field_text(f.text, &word);
            any.push(boosted(
                Box::new(TermQuery::new(title, IndexRecordOption::WithFreqs)),
                1.5,
            ));
            any.push((
                Occur::Should,
                Box::new(TermQuery::new(text, IndexRecordOption::WithFreqs)),
            ));
        }
        for word in unique_tokens(&mut words_analyzer(), query) {
            let n = word.chars().count();
            if n < FUZZY_MIN_CHARS || word.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let edits = if n >= FUZZY_TWO_EDITS_CHARS { 2 } else { 1 };
            let term = Term::from_field_text(f.words, &word);
            // A constant score per matched word: a typo is evidence, weaker than a hit.
            any.push(boosted(
                Box::new(FuzzyTermQuery::new(term, edits, true)),
                0.8,
            ));
        }
        let mut raw: Vec<&str> = vec![query.trim()];
        raw.extend(query.split_whitespace().take(MAX_QUERY_WORDS));
        let mut seen = std::collections::HashSet::new();
        for r in raw {
            let r = r.trim_matches(|c: char| !c.is_alphanumeric() && c != '#' && c != ':');
            for v in [r.to_string(), r.to_uppercase()] {
                if !v.is_empty() && seen.insert(v.clone()) {
                    let t = Term::from_field_text(f.id, &v);
                    any.push(boosted(
                        Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
                        20.0,
                    ));
                }
            }
        }
        if any.is_empty() {
            return None;
        }
        let mut must: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(any)))];
        if !Corpus::ALL.iter().all(|c| corpora.contains(c)) {
            let of: Vec<(Occur, Box<dyn Query>)> = corpora
                .iter()
                .map(|c| {
                    let t = Term::from_field_text(f.corpus, c.as_str());
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as Box<dyn Query>,
                    )
                })
                .collect();
            // A filter, not evidence: a rarer corpus must not score higher for being rare.
            must.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(of)), 0.0)),
            ));
        }
        Some(BooleanQuery::new(must))
    }
}

fn stemmed_analyzer() -> anyhow::Result<TextAnalyzer> {
    let stop = StopWordFilter::new(Language::English)
        .ok_or_else(|| anyhow::anyhow!("tantivy has no English stop words"))?;
    Ok(TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(stop)
        .filter(Stemmer::new(Language::English))
        .build())
}

fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .build()
}

/// The distinct tokens of `text`, in order, at most [`MAX_QUERY_WORDS`].
fn unique_tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let t = stream.token().text.clone();
        if !out.contains(&t) {
            out.push(t);
            if out.len() == MAX_QUERY_WORDS {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(id: &str, corpus: Corpus, title: &str, text: &str) -> Doc {
        Doc {
            id: id.into(),
            corpus,
            title: title.into(),
            text: text.into(),
        }
    }

    fn index() -> TantivyIndex {
        let ix = TantivyIndex::new().unwrap();
        ix.add(&[
            doc(
                "SKU-1",
                Corpus::Product,
                "SKU-1 Hex bolt M10x40 Acme",
                "Hex bolt M10x40. Category: Fasteners.",
            ),
            doc(
                "SKU-2",
                Corpus::Product,
                "SKU-2 Deep groove ball bearing 6204-2RS",
                "Bearings.",
            ),
            doc(
                "p#a",
                Corpus::Policy,
                "Approvals: release credit hold",
                "Releasing a credit hold needs finance.",
            ),
        ])
        .unwrap();
        ix
    }

    #[test]
    fn stemmed_words_match_and_corpora_filter() {
        let ix = index();
        assert_eq!(
            ix.search("who approves releasing credit holds", &Corpus::ALL, 5)
                .unwrap()[0],
            "p#a"
        );
        assert!(
            ix.search("credit hold", &[Corpus::Product], 5)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            ix.search("bearings", &[Corpus::Product], 5).unwrap(),
            ["SKU-2"]
        );
    }

    #[test]
    fn misspelt_words_match_by_edit_distance() {
        let ix = index();
        assert_eq!(ix.search("bearng", &Corpus::ALL, 5).unwrap(), ["SKU-2"]);
        assert!(
            ix.search("zzzzzz qqqqq", &Corpus::ALL, 5)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_id_in_the_query_ranks_that_document_first() {
        let ix = index();
        assert_eq!(
            ix.search("what about sku-2?", &Corpus::ALL, 5).unwrap()[0],
            "SKU-2"
        );
    }

    #[test]
    fn upsert_replaces_by_id() {
        let ix = index();
        ix.upsert(&[doc(
            "SKU-1",
            Corpus::Product,
            "SKU-1 Washer",
            "Flat washer.",
        )])
        .unwrap();
        assert!(ix.search("hex bolt", &Corpus::ALL, 5).unwrap().is_empty());
        assert_eq!(ix.search("washer", &Corpus::ALL, 5).unwrap(), ["SKU-1"]);
    }
}
