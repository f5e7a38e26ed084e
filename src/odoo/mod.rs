//! The Odoo connector. Only this module knows Odoo's wire shapes.
//!
//! - [`wire`] — decoding Odoo values (`false`, many2one pairs, datetimes) and errors.
//! - [`client`] — [`client::OdooClient`]: JSON-RPC (16–18) or JSON-2 (19+), timeouts,
//!   retries on transport failures, a concurrency limit, redacted credentials.
//! - [`schema`] — what is read from which model, per version (all field renames here).
//! - [`config`] — installation-specific mappings (`src/odoo/default.toml`, `ODOO_CONFIG`).
//! - [`source`] — [`source::OdooSource`], the `Source`: full load, incremental sync by
//!   `write_date`, the last good snapshot when Odoo is down.
//! - [`executor`] — [`executor::OdooExecutor`]: approved actions as named Odoo calls.
//! - [`bot`] — the chatter/Discuss bot: webhook endpoint, poller, answers.
//! - [`setup`] — `order-copilot odoo setup`: the bot's channel and automation rule.
//! - [`events`] — `/odoo/events`: automation rules that scan seconds after a change.
//! - [`fake`] — `FakeOdoo`, an HTTP server answering from a snapshot in Odoo's exact wire
//!   format (17, 18 and 19 shapes), for tests and the benchmark.
//!
//! Depends on `domain`, `core` (actions, explanations) and `app` (the traits); nothing
//! depends on it except the CLI's composition.

pub mod bot;
pub mod client;
pub mod config;
pub mod events;
pub mod executor;
pub mod fake;
pub mod schema;
pub mod setup;
pub mod source;
pub mod wire;
