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
//! - [`cli`] — the command line (`scan`, `explain`, `bench`), rendering and progress.
//!
//! Data flows one way: a source builds a `Snapshot`, `core::detect` turns it into ranked
//! exceptions, and the interfaces render them.

pub mod cli;
pub mod core;
pub mod demo;
pub mod domain;
pub mod policy;
