//! order-copilot: catch and resolve order exceptions for distributors running Odoo.
//!
//! # Layout
//!
//! - [`domain`] — the snapshot model: typed data of everything the core reads (orders,
//!   lines, stock, inbound, customers, invoices, pickings, contracts, changes). No I/O.
//! - [`policy`] — the business's rules from `policies/*.toml`: thresholds, routing,
//!   escalation, approval rights and custom rules (a small expression language), loaded
//!   and validated before anything starts; its content hash is the policy version.
//! - [`core`] — the exception core: pure detectors (one per kind) over a snapshot,
//!   scoring, routing, recommendations and the allocation solver. No I/O, no clock.
//! - [`demo`] — the demo distributor: a seeded generator of a believable wholesale
//!   distributor, the embedded default source and the benchmark workload.
//! - [`store`] — storage with sqlx (SQLite file by default, PostgreSQL by URL): cases,
//!   approvals, API tokens and the hash-chained audit log. All SQL lives here.
//! - [`app`] — the server's use-cases: scanning into cases, the case lifecycle,
//!   approvals with exactly-once execution, identity; the `Source`/`Executor` traits and
//!   the demo's implementation of both.
//! - [`http`] — the axum API: thin handlers over `app`, errors mapped in one place.
//! - [`copilot`] — the conversational half: tools over the core, a language model or
//!   offline templates, the approval boundary.
//! - [`odoo`] — the Odoo connector: a typed JSON-RPC/JSON-2 client, the Odoo source and
//!   executor, the chatter/Discuss bot, and `FakeOdoo`, a wire-exact test double.
//! - [`retrieval`] — hybrid search (tantivy BM25 + sentence-embedding vectors, fused by
//!   reciprocal rank) over policy clauses, resolved cases and the catalogue, for citations.
//! - [`outbound`] — the one outbound HTTP client setup (reqwest, rustls with ring) the
//!   Odoo, model and embeddings adapters build on.
//! - [`cli`] — the command line (`serve`, `scan`, `explain`, `token`, `audit`, `bench`).
//!
//! Data flows one way: a source builds a `Snapshot`, `core::detect` turns it into ranked
//! exceptions, and the interfaces render them.

pub mod app;
pub mod cli;
pub mod copilot;
pub mod core;
pub mod demo;
pub mod domain;
pub mod http;
pub mod intel;
pub mod odoo;
pub mod outbound;
pub mod policy;
pub mod predict;
pub mod retrieval;
pub mod store;
