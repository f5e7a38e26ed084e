//! The Qdrant vector index (`src/retrieval/qdrant.rs`).
//!
//! Against a real server only when one is given: `TEST_QDRANT_URL` (else `QDRANT_URL`), its
//! gRPC address such as `http://127.0.0.1:6334`, with `TEST_QDRANT_API_KEY` (else
//! `QDRANT_API_KEY`) if it needs one. The live test works in a collection of its own and
//! deletes it. Without a server it prints `qdrant test did NOT run: set TEST_QDRANT_URL`
//! (see it with `--nocapture`). The failure paths — a server that refuses or never
//! answers, and the retriever keeping vectors in memory then — need no server and always run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use order_copilot::app::source::BoxFuture;
use order_copilot::retrieval::embed::{Embedder, normalise};
use order_copilot::retrieval::qdrant::QdrantIndex;
use order_copilot::retrieval::vector::{self, Point, VectorIndex};
use order_copilot::retrieval::{Corpus, Doc, RetrievalConfig, Retriever};

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// The server to test against and its key, or `None` after saying plainly that the test
/// did not run.
fn server() -> Option<(String, Option<String>)> {
    let Some(url) = env(&["TEST_QDRANT_URL", "QDRANT_URL"]) else {
        eprintln!("qdrant test did NOT run: set TEST_QDRANT_URL");
        return None;
    };
    Some((url, env(&["TEST_QDRANT_API_KEY", "QDRANT_API_KEY"])))
}

fn point(id: &str, corpus: Corpus, v: &[f32]) -> Point {
    Point {
        id: id.into(),
        corpus,
        vector: normalise(v.to_vec()),
    }
}

fn ids(hits: &[(String, f32)]) -> Vec<&str> {
    hits.iter().map(|(id, _)| id.as_str()).collect()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn qdrant_upserts_searches_by_corpus_replaces_by_id_and_refuses_other_dimensions() {
    let Some((url, key)) = server() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let collection = format!("order_copilot_test_{}_{nanos}", std::process::id());
    // Run the checks in a task so that the collection is deleted even when one fails.
    let outcome = tokio::spawn(live_checks(url.clone(), key.clone(), collection.clone())).await;
    let client = qdrant_client::Qdrant::from_url(&url)
        .api_key(key)
        .skip_compatibility_check()
        .build()
        .unwrap();
    let _ = client.delete_collection(collection.as_str()).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn live_checks(url: String, key: Option<String>, collection: String) {
    let ix = QdrantIndex::connect(&url, key.as_deref(), &collection, 4)
        .await
        .unwrap();
    assert!(ix.describe().contains(&collection), "{}", ix.describe());
    if let Some(k) = &key {
        assert!(!ix.describe().contains(k.as_str()));
    }
    assert_eq!(ix.len().await.unwrap(), 0);
    ix.upsert(vec![
        point("policies/a.toml#x", Corpus::Policy, &[1.0, 0.0, 0.0, 0.0]),
        point("SKU-1", Corpus::Product, &[0.9, 0.1, 0.0, 0.0]),
        point("policies/a.toml#y", Corpus::Policy, &[0.0, 1.0, 0.0, 0.0]),
        point("past:1", Corpus::Case, &[0.0, 0.0, 1.0, 0.0]),
    ])
    .await
    .unwrap();
    assert_eq!(ix.len().await.unwrap(), 4);

    let q = normalise(vec![1.0, 0.05, 0.0, 0.0]);
    let all = ix.search(&q, &Corpus::ALL, 3).await.unwrap();
    assert_eq!(
        ids(&all),
        ["policies/a.toml#x", "SKU-1", "policies/a.toml#y"]
    );
    // Cosine similarity, as the in-memory index gives it.
    let want: f32 = q[0];
    assert!((all[0].1 - want).abs() < 1e-3, "{all:?}");
    assert!(all.windows(2).all(|w| w[0].1 >= w[1].1), "{all:?}");
    let policy = ix.search(&q, &[Corpus::Policy], 10).await.unwrap();
    assert_eq!(ids(&policy), ["policies/a.toml#x", "policies/a.toml#y"]);
    let others = ix
        .search(&q, &[Corpus::Product, Corpus::Case], 10)
        .await
        .unwrap();
    assert_eq!(ids(&others), ["SKU-1", "past:1"]);
    assert!(ix.search(&q, &[], 10).await.unwrap().is_empty());

    // The same ids again replace their points: no duplicates, the new vector found.
    ix.upsert(vec![
        point("policies/a.toml#x", Corpus::Policy, &[0.0, 0.0, 0.0, 1.0]),
        point("SKU-1", Corpus::Product, &[0.9, 0.1, 0.0, 0.0]),
    ])
    .await
    .unwrap();
    assert_eq!(ix.len().await.unwrap(), 4);
    let top = ix.search(&q, &Corpus::ALL, 1).await.unwrap();
    assert_eq!(ids(&top), ["SKU-1"]);
    let moved = ix
        .search(&normalise(vec![0.0, 0.0, 0.0, 1.0]), &[Corpus::Policy], 1)
        .await
        .unwrap();
    assert_eq!(ids(&moved), ["policies/a.toml#x"]);
    assert!(
        ix.upsert(vec![point("bad", Corpus::Case, &[1.0, 0.0])])
            .await
            .is_err()
    );

    // The configuration reaches the same collection, and it is kept, points and all.
    let cfg = RetrievalConfig {
        qdrant_url: Some(url.clone()),
        qdrant_api_key: key.clone(),
        qdrant_collection: collection.clone(),
        ..RetrievalConfig::bm25_only()
    };
    let again = vector::from_config(&cfg, 4).await.unwrap();
    assert!(
        again.describe().starts_with("Qdrant"),
        "{}",
        again.describe()
    );
    assert_eq!(
        ids(&again.search(&q, &Corpus::ALL, 1).await.unwrap()),
        ["SKU-1"]
    );

    // A model of another dimension is refused, both dimensions named.
    let e = match QdrantIndex::connect(&url, key.as_deref(), &collection, 8).await {
        Ok(_) => panic!("a 4-dimensional collection accepted 8-dimensional vectors"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains(&collection), "{e}");
    assert!(
        e.contains("4-dimensional") && e.contains("8-dimensional"),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_that_refuses_fails_fast_naming_it_but_not_the_key() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let e = match QdrantIndex::connect(&url, Some("s3cret-qdrant-key"), "c", 4).await {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(e.contains(&url) && e.contains("does not answer"), "{e}");
    assert!(e.contains("6334"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts connections and reads nothing: without timeouts the start would hang.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let started = Instant::now();
    let r = QdrantIndex::connect(&url, None, "c", 4).await;
    let took = started.elapsed();
    hold.abort();
    let e = format!("{:#}", r.err().expect("a silent server was accepted"));
    assert!(e.contains("does not answer"), "{e}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// Bag-of-words vectors: enough to rank documents sharing words with the query.
struct WordHash;

impl Embedder for WordHash {
    fn name(&self) -> String {
        "word hash".into()
    }

    fn dim(&self) -> usize {
        64
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0f32; 64];
                    for w in t.split(|c: char| !c.is_alphanumeric()) {
                        if !w.is_empty() {
                            let h = w
                                .to_lowercase()
                                .bytes()
                                .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
                            v[h % 64] += 1.0;
                        }
                    }
                    normalise(v)
                })
                .collect())
        })
    }
}

#[tokio::test]
async fn an_unreachable_server_leaves_the_vectors_in_memory() {
    let cfg = RetrievalConfig {
        qdrant_url: Some(format!("http://127.0.0.1:{}", closed_port())),
        ..RetrievalConfig::bm25_only()
    };
    let docs = vec![
        Doc {
            id: "policies/x.toml#a".into(),
            corpus: Corpus::Policy,
            title: "Credit release".into(),
            text: "Finance approves releasing a credit hold.".into(),
        },
        Doc {
            id: "SKU-1".into(),
            corpus: Corpus::Product,
            title: "Bolt".into(),
            text: "Hex bolt M8 zinc plated.".into(),
        },
    ];
    let r = Retriever::build_with_embedder(&cfg, Some(Arc::new(WordHash)), docs)
        .await
        .unwrap();
    assert!(r.has_vectors());
    let index = r.info().vector_index.unwrap();
    assert!(index.contains("exact in-memory"), "{index}");
    let hits = r.search("releasing credit", &[], 2).await.unwrap();
    assert_eq!(hits[0].id, "policies/x.toml#a");
}
