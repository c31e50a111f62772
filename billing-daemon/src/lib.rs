//! Jasiyo billing daemon: Postgres schema and migrations, the REST API, and the publisher of
//! the shared-memory snapshot that rlm_jasiyo answers RADIUS from.
//!
//! Subcommands (see `main.rs`): `migrate`, `serve`, `token create`, `demo-data`.
#![forbid(unsafe_code)]

pub mod accounting;
pub mod api;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod enforcement;
pub mod hotspot_page;
pub mod payments;
pub mod portal;
pub mod publisher;
pub mod serve;
pub mod telemetry;
pub mod token;
pub mod vouchers;

/// The embedded migrations (`billing-daemon/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
