//! A Qdrant server as the [`VectorIndex`]: chosen when `QDRANT_URL` is set, over gRPC with
//! `qdrant-client` (`default-features = false`: no protoc, no snapshot download, no serde).
//!
//! A normal dependency, not a cargo feature, so every binary honours `QDRANT_URL` without a
//! rebuild. Measured on the 2-core build machine (2026-11-27, under a load of ~5 from other
//! builds): it adds 21 crates to 511 (`cargo tree --prefix none | sort -u`), all pure Rust
//! (tonic, h2, prost, flate2/miniz_oxide; ring and rustls were already here), no build
//! script needing protoc or a C compiler. Their units took 255 s of wall time in that loaded
//! build (qdrant-client 90 s, tonic 61 s, pin-project-internal 31 s, h2 27 s, prost-derive
//! 27 s, the rest 19 s), at about 0.5 CPU each: ~2 min of CPU, ~6 % of the 34.5 min of CPU of
//! a cold debug build, ~1–2 min of wall time on two idle cores. A feature would not save it
//! where it matters — the test script would still have to check the crate with it.
//!
//! - One collection (`QDRANT_COLLECTION`, default `order_copilot`) with one unnamed vector
//!   of the embedder's dimension and cosine distance, created at start if missing (with a
//!   keyword index on `corpus`). A collection that exists with another dimension or
//!   distance is refused with both named: it was filled by another model.
//! - Qdrant ids must be unsigned integers or UUIDs, ours are refs (`SKU-10023`), so a point's
//!   id is [`point_id`]: a UUID derived from the ref by SHA-256, the same on every machine
//!   and every run, so re-indexing replaces points instead of adding duplicates. The ref and
//!   its corpus are kept in the payload (`doc_id`, `corpus`) and searches return the ref.
//! - Upserts go in batches of [`UPSERT_BATCH`] and wait for the server to apply them, so a
//!   search right after sees them (what [`VectorIndex::upsert`] promises).
//! - Every request has a timeout ([`REQUEST_TIMEOUT`], connection [`CONNECT_TIMEOUT`]; the
//!   client retries a failed request once, so a server that never answers costs ~20 s). The
//!   API key (`QDRANT_API_KEY`) is sent as the `api-key` header and appears in no log, error
//!   or [`VectorIndex::describe`]; a URL carrying credentials is refused.
//! - Points outlive the process: documents removed from their sources stay in the
//!   collection until it is dropped, but the retriever keeps only ids it still knows, so
//!   they never reach a prompt.
//!
//! When the server cannot be reached or the collection does not fit at start,
//! [`super::vector::from_config`] fails and the retriever logs the reason and keeps the
//! vectors in memory instead ([`super::Retriever::build_with_embedder`]).

use std::time::Duration;

use anyhow::Context;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::with_payload_selector::SelectorOptions;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    Distance, FieldType, Filter, PayloadIncludeSelector, PointStruct, Query, QueryPoints,
    QueryPointsBuilder, ScoredPoint, UpsertPointsBuilder, Value, VectorParamsBuilder,
    VectorsConfig, value::Kind,
};
use sha2::{Digest, Sha256};

use super::Corpus;
use super::vector::{Point, VectorIndex, check_dims};
use crate::app::source::BoxFuture;

/// Payload key holding our document id (the citation ref).
pub const DOC_ID: &str = "doc_id";
/// Payload key holding the document's corpus (`policy`, `case`, `product`).
pub const CORPUS: &str = "corpus";
/// Points sent per upsert request (384 floats each: ~400 KB a request).
pub const UPSERT_BATCH: usize = 256;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Vectors in a collection of a Qdrant server.
pub struct QdrantIndex {
    client: Qdrant,
    /// The URL as given (it carries no credentials: [`QdrantIndex::connect`] refuses those).
    url: String,
    collection: String,
    dim: usize,
}

impl QdrantIndex {
    /// Connect to the server at `url` (its gRPC port, 6334 by default), check that it
    /// answers, and create `collection` for `dim`-dimensional cosine vectors if it is
    /// missing. Fails, naming the server (never the key), when the server does not answer,
    /// and naming both sides when an existing collection holds other vectors.
    pub async fn connect(
        url: &str,
        api_key: Option<&str>,
        collection: &str,
        dim: usize,
    ) -> anyhow::Result<QdrantIndex> {
        let url = check_url(url)?;
        let collection = collection.trim();
        if collection.is_empty() {
            anyhow::bail!("QDRANT_COLLECTION is empty");
        }
        if dim == 0 {
            anyhow::bail!("cannot index vectors of 0 dimensions in Qdrant");
        }
        let client = Qdrant::from_url(&url)
            .api_key(api_key.map(str::trim).filter(|k| !k.is_empty()))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // The check prints to stdout from a thread of its own, and blocks.
            .skip_compatibility_check()
            .build()
            .with_context(|| format!("QDRANT_URL={url} is not a usable URL"))?;
        client.health_check().await.with_context(|| {
            format!(
                "the Qdrant server at {url} does not answer (QDRANT_URL must be its gRPC address, port 6334 by default; 6333 is the REST port)"
            )
        })?;
        let index = QdrantIndex {
            client,
            url,
            collection: collection.to_string(),
            dim,
        };
        index.ensure_collection().await?;
        Ok(index)
    }

    /// The collection's name.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    async fn ensure_collection(&self) -> anyhow::Result<()> {
        let name = &self.collection;
        let exists = self.client.collection_exists(name).await.with_context(|| {
            format!("cannot list collections on the Qdrant server {}", self.url)
        })?;
        if exists {
            let info = self
                .client
                .collection_info(name)
                .await
                .with_context(|| format!("cannot read Qdrant collection `{name}`"))?;
            let vectors = info
                .result
                .and_then(|i| i.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config);
            return check_vectors(name, vectors.as_ref(), self.dim);
        }
        self.client
            .create_collection(
                CreateCollectionBuilder::new(name.as_str())
                    .vectors_config(VectorParamsBuilder::new(self.dim as u64, Distance::Cosine)),
            )
            .await
            .with_context(|| format!("cannot create Qdrant collection `{name}`"))?;
        self.client
            .create_field_index(
                CreateFieldIndexCollectionBuilder::new(name.as_str(), CORPUS, FieldType::Keyword)
                    .wait(true),
            )
            .await
            .with_context(|| format!("cannot index `{CORPUS}` in Qdrant collection `{name}`"))?;
        tracing::info!(collection = %name, dim = self.dim, "created Qdrant collection");
        Ok(())
    }

    /// Number of points in the collection (exact count).
    pub async fn len(&self) -> anyhow::Result<u64> {
        let r = self
            .client
            .count(CountPointsBuilder::new(self.collection.as_str()).exact(true))
            .await
            .with_context(|| format!("cannot count points of `{}`", self.collection))?;
        Ok(r.result.map(|c| c.count).unwrap_or(0))
    }

    async fn upsert_points(&self, points: Vec<Point>) -> anyhow::Result<()> {
        let index = format!("Qdrant collection `{}`", self.collection);
        check_dims(&points, self.dim, &index)?;
        for batch in points.chunks(UPSERT_BATCH) {
            let structs: Vec<PointStruct> = batch.iter().map(point_struct).collect();
            self.client
                .upsert_points(
                    UpsertPointsBuilder::new(self.collection.as_str(), structs).wait(true),
                )
                .await
                .with_context(|| {
                    format!(
                        "cannot upsert {} points into Qdrant collection `{}` at {}",
                        batch.len(),
                        self.collection,
                        self.url
                    )
                })?;
        }
        Ok(())
    }

    async fn search_points(
        &self,
        query: &[f32],
        corpora: &[Corpus],
        k: usize,
    ) -> anyhow::Result<Vec<(String, f32)>> {
        if query.len() != self.dim {
            anyhow::bail!(
                "query vector has {} dimensions; Qdrant collection `{}` holds {}",
                query.len(),
                self.collection,
                self.dim
            );
        }
        let Some(request) = query_request(&self.collection, query, corpora, k) else {
            return Ok(Vec::new());
        };
        let r = self.client.query(request).await.with_context(|| {
            format!(
                "Qdrant search in `{}` at {} failed",
                self.collection, self.url
            )
        })?;
        Ok(r.result.iter().filter_map(hit).collect())
    }
}

impl VectorIndex for QdrantIndex {
    fn describe(&self) -> String {
        format!(
            "Qdrant {} collection {} ({} dimensions, cosine)",
            self.url, self.collection, self.dim
        )
    }

    fn upsert<'a>(&'a self, points: Vec<Point>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.upsert_points(points))
    }

    fn search<'a>(
        &'a self,
        query: &'a [f32],
        corpora: &'a [Corpus],
        k: usize,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(String, f32)>>> {
        Box::pin(self.search_points(query, corpora, k))
    }
}

/// The Qdrant point id of a document: a UUID made of the first 16 bytes of
/// SHA-256(`order-copilot/doc/` + id), marked as version 8 (custom, RFC 9562). Stable across
/// machines, runs and versions of this program — changing it would orphan every stored point.
pub fn point_id(doc_id: &str) -> String {
    let digest = Sha256::digest(format!("order-copilot/doc/{doc_id}").as_bytes());
    let mut b = [0u8; 16];
    for (to, from) in b.iter_mut().zip(digest.iter()) {
        *to = *from;
    }
    // Version 8 (custom) with the RFC 9562 variant bits, set by the builder.
    uuid::Builder::from_custom_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The point stored for a document: derived id, vector, and our id and corpus as payload.
pub fn point_struct(p: &Point) -> PointStruct {
    PointStruct::new(
        point_id(&p.id),
        p.vector.clone(),
        [
            (DOC_ID, Value::from(p.id.as_str())),
            (CORPUS, Value::from(p.corpus.as_str())),
        ],
    )
}

/// The filter keeping points of any of `corpora`.
pub fn corpus_filter(corpora: &[Corpus]) -> Filter {
    let names: Vec<String> = corpora.iter().map(|c| c.as_str().to_string()).collect();
    Filter::must([Condition::matches(CORPUS, names)])
}

/// The nearest-neighbour request for `query` among `corpora`, asking back only our id; `None`
/// when nothing can match (no corpus, or `k` of 0).
pub fn query_request(
    collection: &str,
    query: &[f32],
    corpora: &[Corpus],
    k: usize,
) -> Option<QueryPoints> {
    if corpora.is_empty() || k == 0 {
        return None;
    }
    Some(
        QueryPointsBuilder::new(collection)
            .query(Query::new_nearest(query.to_vec()))
            .filter(corpus_filter(corpora))
            .limit(k as u64)
            .with_payload(SelectorOptions::Include(PayloadIncludeSelector {
                fields: vec![DOC_ID.to_string()],
            }))
            .build(),
    )
}

/// Our id and the score of a search result; `None` for a point without our id (one another
/// program put in the collection).
fn hit(p: &ScoredPoint) -> Option<(String, f32)> {
    match p.payload.get(DOC_ID).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(id)) => Some((id.clone(), p.score)),
        _ => None,
    }
}

/// Refuse a collection whose vectors are not one unnamed `dim`-dimensional cosine vector.
pub fn check_vectors(
    collection: &str,
    vectors: Option<&VectorsConfig>,
    dim: usize,
) -> anyhow::Result<()> {
    match vectors.and_then(|v| v.config.as_ref()) {
        Some(VectorsConfigKind::Params(p)) => {
            let distance = Distance::try_from(p.distance).unwrap_or(Distance::UnknownDistance);
            if p.size == dim as u64 && distance == Distance::Cosine {
                return Ok(());
            }
            anyhow::bail!(
                "Qdrant collection `{collection}` holds {}-dimensional vectors with {} distance, but the embedding model gives {dim}-dimensional vectors for Cosine distance: set QDRANT_COLLECTION to another name, or delete the collection to have it recreated",
                p.size,
                distance.as_str_name()
            )
        }
        Some(VectorsConfigKind::ParamsMap(m)) => {
            let mut names: Vec<&str> = m.map.keys().map(String::as_str).collect();
            names.sort_unstable();
            anyhow::bail!(
                "Qdrant collection `{collection}` has named vectors ({}), but the embedding model needs one unnamed {dim}-dimensional Cosine vector: set QDRANT_COLLECTION to another name",
                names.join(", ")
            )
        }
        None => anyhow::bail!("Qdrant collection `{collection}` reports no vector configuration"),
    }
}

/// The URL trimmed, or an error: it must be `http://` or `https://` and carry no credentials
/// (the key goes in `QDRANT_API_KEY`, which is never shown).
pub fn check_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else {
        anyhow::bail!(
            "QDRANT_URL must start with http:// or https:// (e.g. http://127.0.0.1:6334)"
        );
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        anyhow::bail!(
            "QDRANT_URL must not carry credentials: put the key in QDRANT_API_KEY instead"
        );
    }
    if authority.is_empty() {
        anyhow::bail!("QDRANT_URL has no host");
    }
    Ok(url.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use qdrant_client::qdrant::condition::ConditionOneOf;
    use qdrant_client::qdrant::r#match::MatchValue;
    use qdrant_client::qdrant::point_id::PointIdOptions;
    use qdrant_client::qdrant::query::Variant;
    use qdrant_client::qdrant::vector_input::Variant as VectorVariant;
    use qdrant_client::qdrant::{VectorParams, VectorParamsMap};

    #[test]
    fn point_ids_are_stable_distinct_uuids() {
        // Fixed values (checked with Python's hashlib): a change would orphan every point
        // stored by an earlier version.
        assert_eq!(
            point_id("policies/approvals.toml#release_credit_hold"),
            "eda64dc4-930d-89c3-b45d-6831cd3716b4"
        );
        assert_eq!(
            point_id("SKU-10023"),
            "40755961-f469-8222-9b79-267f1f0d1fd5"
        );
        assert_eq!(point_id("SKU-10023"), point_id("SKU-10023"));
        assert_ne!(point_id("SKU-10023"), point_id("SKU-10024"));
        assert_ne!(point_id("past:1"), point_id("past:10"));
        for id in ["", "a", "past:17", "EX-0001", "ünïcode"] {
            let u = point_id(id);
            let groups: Vec<usize> = u.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{u}");
            assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{u}");
            assert!(!u.chars().any(|c| c.is_ascii_uppercase()), "{u}");
            assert_eq!(&u[14..15], "8", "version nibble of {u}");
            assert!(
                matches!(&u[19..20], "8" | "9" | "a" | "b"),
                "variant of {u}"
            );
        }
    }

    #[test]
    fn a_point_carries_the_derived_id_the_vector_and_our_id_and_corpus() {
        let p = point_struct(&Point {
            id: "SKU-10023".into(),
            corpus: Corpus::Product,
            vector: vec![0.6, 0.8],
        });
        assert_eq!(
            p.id.and_then(|i| i.point_id_options),
            Some(PointIdOptions::Uuid(point_id("SKU-10023")))
        );
        let text = |k: &str| match p.payload.get(k).and_then(|v| v.kind.clone()) {
            Some(Kind::StringValue(s)) => s,
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(text(DOC_ID), "SKU-10023");
        assert_eq!(text(CORPUS), "product");
        assert_eq!(p.payload.len(), 2);
        assert!(p.vectors.is_some());
    }

    #[test]
    fn the_search_request_filters_by_corpus_and_asks_only_for_our_id() {
        assert!(query_request("c", &[1.0, 0.0], &[], 5).is_none());
        assert!(query_request("c", &[1.0, 0.0], &Corpus::ALL, 0).is_none());
        let r = query_request("docs", &[0.6, 0.8], &[Corpus::Policy, Corpus::Case], 7).unwrap();
        assert_eq!(r.collection_name, "docs");
        assert_eq!(r.limit, Some(7));
        let filter = r.filter.unwrap();
        assert!(filter.should.is_empty() && filter.must_not.is_empty());
        assert_eq!(filter.must.len(), 1);
        match filter.must[0].condition_one_of.as_ref().unwrap() {
            ConditionOneOf::Field(f) => {
                assert_eq!(f.key, CORPUS);
                match f.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                    Some(MatchValue::Keywords(k)) => assert_eq!(k.strings, ["policy", "case"]),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        match r.with_payload.and_then(|w| w.selector_options) {
            Some(SelectorOptions::Include(i)) => assert_eq!(i.fields, [DOC_ID]),
            other => panic!("{other:?}"),
        }
        match r.query.and_then(|q| q.variant) {
            Some(Variant::Nearest(v)) => match v.variant {
                Some(VectorVariant::Dense(d)) => assert_eq!(d.data, [0.6, 0.8]),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn results_give_our_ids_and_skip_foreign_points() {
        let mut ours = ScoredPoint {
            score: 0.75,
            ..Default::default()
        };
        ours.payload.insert(DOC_ID.into(), Value::from("past:17"));
        assert_eq!(hit(&ours), Some(("past:17".to_string(), 0.75)));
        let foreign = ScoredPoint {
            score: 0.9,
            ..Default::default()
        };
        assert_eq!(hit(&foreign), None);
        let mut numeric = ScoredPoint::default();
        numeric.payload.insert(DOC_ID.into(), Value::from(17i64));
        assert_eq!(hit(&numeric), None);
    }

    fn params(size: u64, distance: Distance) -> VectorsConfig {
        VectorsConfig {
            config: Some(VectorsConfigKind::Params(VectorParams {
                size,
                distance: distance as i32,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_collection_of_other_vectors_is_refused_with_both_named() {
        check_vectors("c", Some(&params(384, Distance::Cosine)), 384).unwrap();
        let e = check_vectors("c", Some(&params(768, Distance::Cosine)), 384)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`c`") && e.contains("768-dimensional"), "{e}");
        assert!(e.contains("384-dimensional"), "{e}");
        let e = check_vectors("c", Some(&params(384, Distance::Dot)), 384)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Dot distance") && e.contains("Cosine"), "{e}");
        let mut named = VectorParamsMap::default();
        named.map.insert("text".into(), VectorParams::default());
        let e = check_vectors(
            "c",
            Some(&VectorsConfig {
                config: Some(VectorsConfigKind::ParamsMap(named)),
            }),
            384,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("named vectors (text)"), "{e}");
        assert!(check_vectors("c", None, 384).is_err());
    }

    #[test]
    fn urls_must_be_http_and_carry_no_credentials() {
        assert_eq!(
            check_url(" http://127.0.0.1:6334/ ").unwrap(),
            "http://127.0.0.1:6334"
        );
        assert_eq!(
            check_url("https://x.cloud.qdrant.io:6334").unwrap(),
            "https://x.cloud.qdrant.io:6334"
        );
        assert!(check_url("127.0.0.1:6334").is_err());
        assert!(check_url("http://").is_err());
        let e = check_url("https://me:s3cret@x.cloud.qdrant.io")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("QDRANT_API_KEY"), "{e}");
    }
}
