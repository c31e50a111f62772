//! Accounting: decoding Accounting-Requests ([`event`]) and applying them to Postgres
//! ([`ingest`]): sessions, usage per subscriber per day, and the authentication log.
//!
//! The journal consumer ([`consumer`]) calls [`AccountingEvent::from_packet`] on each
//! journaled packet, then [`apply_batch`] (and [`record_auth_results`] for post-auth records)
//! inside one transaction, and commits. A timer calls [`close_stale`].

pub mod consumer;
pub mod event;
pub mod ingest;

pub use event::{AccountingEvent, EventError, StatusType};
pub use ingest::{
    AuthResult, DEFAULT_INTERIM_INTERVAL_SECS, IngestStats, apply_batch, close_stale,
    record_auth_results,
};
