//! The journal consumer: moves what rlm_jasiyo journaled (Accounting-Requests and post-auth
//! results) into Postgres, exactly once, in journal order.
//!
//! # One batch
//!
//! 1. Read up to [`JournalConfig::batch_max`] records ([`JournalConsumer::read_batch`], on a
//!    blocking thread: it copies from the shared mapping).
//! 2. Decode each: [`JournalRecord::decode`], then [`AccountingEvent::from_packet`] for an
//!    accounting record. Whatever cannot be decoded goes to `accounting_rejects` with the
//!    error, never dropped silently.
//! 3. In ONE transaction: [`apply_batch`], [`record_auth_results`], the rejects, and
//!    `journal_progress.position = batch end` for this journal. Commit.
//! 4. Only then advance the journal's durable read position ([`JournalConsumer::commit`]),
//!    which frees the space for radiusd.
//!
//! # Exactly once
//!
//! A crash before 3 commits leaves the journal where it was: the batch is read again and
//! nothing of it is in Postgres. A crash between 3 and 4 leaves Postgres ahead of the
//! journal: on start the consumer reads the stored position for this journal's id and skips
//! the records below it (accounting is idempotent anyway, the auth log is not). A recreated
//! journal file has a new id, so an old position never hides its records.
//!
//! # Failures
//!
//! A Postgres error keeps the batch in memory and retries it with a capped exponential
//! back-off (100 ms to 5 s); the journal is never committed past what Postgres holds, and
//! radiusd keeps answering until the journal is full. Except when Postgres refuses the
//! batch's data ([`Failure`]): retrying would fail forever and fill the journal, so the
//! batch is split until the refused records are isolated; they go to `accounting_rejects`
//! with Postgres' error and the rest lands, in the one transaction (see
//! [`JournalIngest::store`]). Gaps of writers that died and records
//! torn by a machine crash are logged as errors (their packets were never acknowledged, or
//! were lost with the page cache).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use jasiyo_journal::{Batch, ConsumerOptions, JournalConsumer, JournalRecord};
use jasiyo_snapshot::voucher::VoucherKey;
use serde::Serialize;
use sqlx::{Acquire, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::event::{AccountingEvent, NUL_IN_TEXT};
use super::ingest::{
    AuthResult, DEFAULT_INTERIM_INTERVAL_SECS, apply_batch, close_stale, record_auth_results,
};

/// Largest batch: big enough that the per-batch statements are amortized (ingest does a
/// fixed handful per batch), small enough to keep one transaction short.
pub const DEFAULT_BATCH_MAX: usize = 5000;
/// Poll interval right after a partial batch (records are arriving).
const BUSY_POLL: Duration = Duration::from_millis(2);
/// Poll interval after a while with nothing to read.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Retry back-off for Postgres errors.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the lag is checked (and logged when above a tenth of the journal).
const LAG_CHECK: Duration = Duration::from_secs(10);

/// Where the journal is and how to consume it.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The journal file (created if missing).
    pub path: PathBuf,
    /// Ring size of a new file (an existing one must match).
    pub capacity: u64,
    /// Group of the directory and file (radiusd's), or `None` to leave it alone.
    pub group: Option<u32>,
    /// Records per batch at most.
    pub batch_max: usize,
    /// Consumer options (grace period for stalled writers).
    pub options: ConsumerOptions,
    /// Time between two stale-session sweeps.
    pub stale_sweep_interval: Duration,
    /// Interim interval (seconds) assumed for sessions whose router sent none.
    pub default_interim_interval: u32,
    /// The voucher key: accounting for a voucher code is counted against its voucher (None:
    /// codes match nothing).
    pub vouchers: Option<VoucherKey>,
}

impl JournalConfig {
    /// Defaults for a journal at `path`.
    pub fn new(path: impl Into<PathBuf>, capacity: u64, group: Option<u32>) -> Self {
        Self {
            path: path.into(),
            capacity,
            group,
            batch_max: DEFAULT_BATCH_MAX,
            options: ConsumerOptions::default(),
            stale_sweep_interval: Duration::from_secs(60),
            default_interim_interval: DEFAULT_INTERIM_INTERVAL_SECS,
            vouchers: None,
        }
    }
}

/// Live counters of the consumer, shared with `/healthz`.
#[derive(Debug, Default)]
pub struct JournalStats {
    journal_id: AtomicU64,
    capacity: AtomicU64,
    reserved: AtomicU64,
    committed: AtomicU64,
    records: AtomicU64,
    accounting: AtomicU64,
    auth_results: AtomicU64,
    rejects: AtomicU64,
    refused: AtomicU64,
    skipped: AtomicU64,
    abandoned: AtomicU64,
    corrupt: AtomicU64,
    store_errors: AtomicU64,
}

/// A consistent-enough copy of [`JournalStats`] (each number is read atomically).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct JournalStatus {
    /// Identity of the journal file (hash of its key), as stored in `journal_progress`.
    pub journal_id: u64,
    /// Ring size in bytes.
    pub capacity: u64,
    /// Writers' reserved position (bytes appended since the file was created).
    pub reserved: u64,
    /// Committed read position: everything before it is in Postgres.
    pub committed: u64,
    /// `reserved - committed`: bytes journaled and not yet in Postgres.
    pub lag_bytes: u64,
    /// Records stored in Postgres since the daemon started (all kinds, rejects included).
    pub records_applied_total: u64,
    /// Accounting-Requests applied to sessions.
    pub accounting_total: u64,
    /// Post-auth results written to the auth log.
    pub auth_results_total: u64,
    /// Records kept in `accounting_rejects` (undecodable or refused by Postgres).
    pub rejects_total: u64,
    /// Of those, the records Postgres refused (found by splitting their batch).
    pub refused_total: u64,
    /// Records skipped because Postgres already had them (after a crash).
    pub skipped_total: u64,
    /// Gaps of writers that died or stalled (never acknowledged).
    pub abandoned_total: u64,
    /// Records torn by a machine crash.
    pub corrupt_total: u64,
    /// Failed attempts to store a batch (each retried).
    pub store_errors_total: u64,
}

impl JournalStats {
    /// The current numbers.
    pub fn status(&self) -> JournalStatus {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (reserved, committed) = (get(&self.reserved), get(&self.committed));
        JournalStatus {
            journal_id: get(&self.journal_id),
            capacity: get(&self.capacity),
            reserved,
            committed,
            lag_bytes: reserved.saturating_sub(committed),
            records_applied_total: get(&self.records),
            accounting_total: get(&self.accounting),
            auth_results_total: get(&self.auth_results),
            rejects_total: get(&self.rejects),
            refused_total: get(&self.refused),
            skipped_total: get(&self.skipped),
            abandoned_total: get(&self.abandoned),
            corrupt_total: get(&self.corrupt),
            store_errors_total: get(&self.store_errors),
        }
    }

    fn add(a: &AtomicU64, n: usize) {
        a.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What one stored batch held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    /// Accounting events applied.
    pub accounting: usize,
    /// Auth results logged.
    pub auth_results: usize,
    /// Records kept as rejects.
    pub rejects: usize,
    /// Records below the stored position (already in Postgres).
    pub skipped: usize,
}

/// A record that could not be decoded.
struct Reject {
    position: u64,
    received_at: Option<DateTime<Utc>>,
    source: Option<String>,
    raw: Vec<u8>,
    error: String,
}

/// The decoded records of a batch. `items` is every record for Postgres in journal order;
/// the events and auth results are in that order too, so a range of items is a range of
/// each (see [`Decoded::slices`]).
#[derive(Default)]
struct Decoded {
    items: Vec<Item>,
    events: Vec<AccountingEvent>,
    auths: Vec<AuthResult>,
    /// Records that could not be decoded.
    rejects: Vec<Reject>,
}

/// Where a decoded record came from.
#[derive(Clone, Copy)]
struct Item {
    /// Index in the batch's entries.
    entry: usize,
    position: u64,
    /// An accounting event (else an auth result).
    event: bool,
}

impl Item {
    fn new(entry: usize, position: u64, event: bool) -> Self {
        Self {
            entry,
            position,
            event,
        }
    }
}

impl Decoded {
    /// The events and auth results of `items[range]`.
    fn slices(&self, range: Range<usize>) -> (&[AccountingEvent], &[AuthResult]) {
        let events_before = |i: usize| self.items[..i].iter().filter(|it| it.event).count();
        let (e0, e1) = (events_before(range.start), events_before(range.end));
        let (a0, a1) = (range.start - e0, range.end - e1);
        (&self.events[e0..e1], &self.auths[a0..a1])
    }
}

/// A decoded record Postgres refused on its own.
struct Refused {
    entry: usize,
    position: u64,
    event: bool,
    received_at: Option<DateTime<Utc>>,
    source: Option<String>,
    error: String,
}

impl Refused {
    /// Its `accounting_rejects` row; `record` is its journal record. Like an undecodable
    /// record, an Accounting-Request keeps the packet, anything else the record.
    fn reject(&self, record: &[u8]) -> Reject {
        let raw = match JournalRecord::decode(record) {
            Ok(JournalRecord::Accounting { packet, .. }) => packet,
            _ => record.to_vec(),
        };
        Reject {
            position: self.position,
            received_at: self.received_at,
            source: self.source.clone(),
            raw,
            error: self.error.clone(),
        }
    }
}

/// What kind of failure a Postgres error is, which decides what the consumer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection, the server or a conflict (SQLSTATE classes 08, 40, 53, 55, 57, 58; I/O,
    /// pool timeouts): the same batch will go through later. Retried with back-off.
    Transient,
    /// Postgres refuses the values (classes 22, 23; 54000, a value too large for an index):
    /// some record of the batch cannot be stored as it is. The batch is split to find it.
    Data,
    /// Anything else: the schema, privileges, a bug (class 42 and the rest). The statements
    /// are fixed and every value is a parameter, so this is not any record's fault; rejecting
    /// records for it would move all accounting into `accounting_rejects`. Retried with
    /// back-off (the journal holds the records until it is fixed), and logged as an error.
    Other,
}

impl Failure {
    /// The kind of `e`.
    pub fn of(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => db.code().map_or(Self::Other, |c| Self::of_sqlstate(&c)),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Transient,
            _ => Self::Other,
        }
    }

    /// The kind of a SQLSTATE.
    pub fn of_sqlstate(code: &str) -> Self {
        match code.get(..2) {
            Some("08" | "40" | "53" | "55" | "57" | "58") => Self::Transient,
            Some("22" | "23") => Self::Data,
            _ if code == "54000" => Self::Data,
            _ => Self::Other,
        }
    }
}

/// Applies `items[range]` of `d` (accounting, then auth results and the vouchers' first
/// uses they report).
async fn apply_range(
    conn: &mut PgConnection,
    d: &Decoded,
    range: Range<usize>,
    vouchers: Option<&VoucherKey>,
) -> Result<(), sqlx::Error> {
    let (events, auths) = d.slices(range);
    apply_batch(conn, events, vouchers).await?;
    record_auth_results(conn, auths).await?;
    crate::vouchers::activate(conn, auths).await?;
    Ok(())
}

/// Applies every item of `d` in journal order, each range under a savepoint, splitting a
/// range Postgres refuses for its data in halves until the records it refuses on their own
/// are found; returns those. Applying consecutive ranges in order is the same as applying
/// them at once (see [`apply_batch`]), so what lands is what a whole batch without the
/// refused records would have done. Any other error ends it.
async fn apply_split(
    conn: &mut PgConnection,
    d: &Decoded,
    vouchers: Option<&VoucherKey>,
) -> Result<Vec<Refused>, sqlx::Error> {
    let mut refused = Vec::new();
    // Ranges still to apply, the next one last.
    let mut todo = Vec::new();
    todo.push(0..d.items.len());
    while let Some(range) = todo.pop() {
        if range.is_empty() {
            continue;
        }
        let mut savepoint = conn.begin().await?;
        match apply_range(&mut savepoint, d, range.clone(), vouchers).await {
            Ok(()) => savepoint.commit().await?,
            Err(e) if Failure::of(&e) == Failure::Data => {
                savepoint.rollback().await?;
                if range.len() > 1 {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                    continue;
                }
                let item = d.items[range.start];
                let (received_at, source) = if item.event {
                    let e = &d
                        .slices(range)
                        .0
                        .first()
                        .expect("an event item has its event");
                    (Some(e.received_at), Some(e.source.to_string()))
                } else {
                    let a = &d
                        .slices(range)
                        .1
                        .first()
                        .expect("an auth item has its result");
                    (None, a.source.map(|s| s.to_string()))
                };
                refused.push(Refused {
                    entry: item.entry,
                    position: item.position,
                    event: item.event,
                    received_at,
                    source,
                    error: refusal(&e),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

/// The reason stored for a record Postgres refused: its message and SQLSTATE.
fn refusal(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!(
            "Postgres refused it: {} (SQLSTATE {})",
            db.message(),
            db.code().as_deref().unwrap_or("?")
        ),
        other => format!("Postgres refused it: {other}"),
    }
}

/// The journal and the Postgres side of its consumption.
pub struct JournalIngest {
    /// `None` only while a blocking read holds it.
    consumer: Option<JournalConsumer>,
    pool: PgPool,
    journal_id: u64,
    /// Records before this position are in Postgres (`journal_progress`).
    stored_up_to: u64,
    batch_max: usize,
    stats: Arc<JournalStats>,
    vouchers: Option<VoucherKey>,
}

/// Creates the parent directory of a file radiusd uses (the journal, the voucher key) if it
/// is missing: mode 0750, group `group`, so radiusd can reach the file but nobody else can
/// list it.
pub(crate) fn create_dir(path: &Path, group: Option<u32>) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(dir, None, Some(gid))
            .with_context(|| format!("setting the group of {}", dir.display()))?;
    }
    // The umask may have narrowed the mode.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
        .with_context(|| format!("chmod 0750 {}", dir.display()))?;
    Ok(())
}

/// Postgres' bigint holds the id's bit pattern.
fn db_id(journal_id: u64) -> i64 {
    i64::from_ne_bytes(journal_id.to_ne_bytes())
}

fn db_position(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

impl JournalIngest {
    /// Opens (or creates) the journal and reads how far Postgres already has it.
    pub async fn open(pool: PgPool, config: &JournalConfig) -> anyhow::Result<Self> {
        create_dir(&config.path, config.group)?;
        let (path, capacity, group, options) = (
            config.path.clone(),
            config.capacity,
            config.group,
            config.options.clone(),
        );
        let consumer = tokio::task::spawn_blocking(move || {
            JournalConsumer::create_or_open_with(&path, capacity, group, options)
        })
        .await
        .context("journal open task")??;
        let journal_id = consumer.journal_id();
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT position FROM journal_progress WHERE journal_id = $1")
                .bind(db_id(journal_id))
                .fetch_optional(&pool)
                .await
                .context("reading journal_progress")?;
        let stored_up_to = stored.map_or(0, |p| u64::try_from(p).unwrap_or(0));
        let committed = consumer.committed_position();
        if stored_up_to < committed && stored.is_some() {
            // Postgres is behind the journal: restored from an older backup, say. What lies
            // between is gone from the journal; say so instead of pretending.
            tracing::error!(
                journal = %config.path.display(),
                stored = stored_up_to,
                committed,
                "Postgres has less of the journal than the journal says was stored \
                 (database restored?): records in between cannot be recovered"
            );
        }
        let stats = Arc::new(JournalStats::default());
        stats.journal_id.store(journal_id, Ordering::Relaxed);
        stats.capacity.store(consumer.capacity(), Ordering::Relaxed);
        stats.committed.store(committed, Ordering::Relaxed);
        stats
            .reserved
            .store(consumer.reserved_position(), Ordering::Relaxed);
        tracing::info!(
            journal = %config.path.display(),
            journal_id = format!("{journal_id:016x}"),
            capacity = consumer.capacity(),
            committed,
            reserved = consumer.reserved_position(),
            stored_up_to,
            "accounting journal open"
        );
        Ok(Self {
            consumer: Some(consumer),
            pool,
            journal_id,
            stored_up_to,
            batch_max: config.batch_max.max(1),
            stats,
            vouchers: config.vouchers.clone(),
        })
    }

    /// The journal's id (as stored in `journal_progress`).
    pub fn journal_id(&self) -> u64 {
        self.journal_id
    }

    /// The shared counters.
    pub fn stats(&self) -> Arc<JournalStats> {
        self.stats.clone()
    }

    /// The journal's committed read position.
    pub fn committed_position(&self) -> u64 {
        self.consumer
            .as_ref()
            .map_or(0, JournalConsumer::committed_position)
    }

    fn refresh_positions(&self) {
        if let Some(c) = &self.consumer {
            self.stats
                .reserved
                .store(c.reserved_position(), Ordering::Relaxed);
            self.stats
                .committed
                .store(c.committed_position(), Ordering::Relaxed);
        }
    }

    /// Runs `f` on the consumer on a blocking thread (its reads page in the ring, its commit
    /// msyncs: neither belongs on the async threads), then refreshes the reported positions.
    async fn on_blocking_thread<T: Send + 'static>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut JournalConsumer) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let mut consumer = self
            .consumer
            .take()
            .context("journal consumer lost by an earlier failed read or commit")?;
        let (consumer, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut consumer);
            (consumer, result)
        })
        .await
        .context(what)?;
        self.consumer = Some(consumer);
        self.refresh_positions();
        Ok(result)
    }

    /// Reads the next batch (on a blocking thread).
    pub async fn read(&mut self) -> anyhow::Result<Batch> {
        let max = self.batch_max;
        let batch = self
            .on_blocking_thread("journal read task", move |c| c.read_batch(max))
            .await?;
        if batch.abandoned > 0 {
            self.stats
                .abandoned
                .fetch_add(batch.abandoned, Ordering::Relaxed);
            tracing::error!(
                gaps = batch.abandoned,
                "journal: skipped slots of radiusd writers that died or stalled before \
                 committing (those packets were never acknowledged; routers retransmit them)"
            );
        }
        if batch.corrupt > 0 {
            self.stats
                .corrupt
                .fetch_add(batch.corrupt, Ordering::Relaxed);
            tracing::error!(
                records = batch.corrupt,
                "journal: skipped records that fail their checksum (torn by a machine \
                 crash?); their accounting is lost"
            );
        }
        Ok(batch)
    }

    /// Stores a batch in Postgres in one transaction (see the module docs). On error nothing
    /// of it is stored; call again with the same batch.
    ///
    /// When Postgres refuses the batch for its data ([`Failure::Data`]: a value it cannot
    /// store, a constraint), the batch is split in halves, and those again, each applied in
    /// journal order under a savepoint, until the records it refuses on their own are found;
    /// those go to `accounting_rejects` with Postgres' error, everything else lands, and
    /// `journal_progress` moves in the same transaction. Any other error is returned.
    pub async fn store(&mut self, batch: &Batch) -> Result<StoreOutcome, sqlx::Error> {
        let mut outcome = StoreOutcome::default();
        let decoded = self.decode(batch, &mut outcome);
        let refused = match self.write(&decoded, batch, false).await {
            Ok(refused) => refused,
            Err(e) if Failure::of(&e) == Failure::Data => {
                tracing::warn!(
                    error = %e,
                    records = decoded.items.len(),
                    "journal: Postgres refused a batch for its data; splitting it to find the \
                     records it refuses"
                );
                self.write(&decoded, batch, true).await?
            }
            Err(e) => return Err(e),
        };
        let refused_events = refused.iter().filter(|r| r.event).count();
        outcome.accounting = decoded.events.len() - refused_events;
        outcome.auth_results = decoded.auths.len() - (refused.len() - refused_events);
        outcome.rejects = decoded.rejects.len() + refused.len();

        self.stored_up_to = self.stored_up_to.max(batch.end);
        let s = &self.stats;
        JournalStats::add(
            &s.records,
            outcome.accounting + outcome.auth_results + outcome.rejects,
        );
        JournalStats::add(&s.accounting, outcome.accounting);
        JournalStats::add(&s.auth_results, outcome.auth_results);
        JournalStats::add(&s.rejects, outcome.rejects);
        JournalStats::add(&s.refused, refused.len());
        JournalStats::add(&s.skipped, outcome.skipped);
        if !decoded.rejects.is_empty() {
            tracing::warn!(
                records = decoded.rejects.len(),
                "journal: records that could not be decoded were kept in accounting_rejects"
            );
        }
        for r in &refused {
            tracing::error!(
                position = r.position,
                error = %r.error,
                "journal: Postgres refused a record; it was kept in accounting_rejects"
            );
        }
        Ok(outcome)
    }

    /// Decodes the records of `batch` not yet in Postgres (counting the others as skipped).
    fn decode(&self, batch: &Batch, outcome: &mut StoreOutcome) -> Decoded {
        let mut d = Decoded::default();
        for (index, entry) in batch.entries.iter().enumerate() {
            if entry.position < self.stored_up_to {
                outcome.skipped += 1;
                continue;
            }
            let reject = |received_at, source: Option<String>, raw: &[u8], error| Reject {
                position: entry.position,
                received_at,
                source,
                raw: raw.to_vec(),
                error,
            };
            match JournalRecord::decode(&entry.data) {
                Ok(JournalRecord::Accounting {
                    received_at_ms,
                    source,
                    packet,
                }) => {
                    let received_at = Utc.timestamp_millis_opt(received_at_ms).single();
                    let event = received_at
                        .ok_or_else(|| format!("invalid receive time {received_at_ms} ms"))
                        .and_then(|at| {
                            AccountingEvent::from_packet(at, source, &packet)
                                .map_err(|e| e.to_string())
                        });
                    match event {
                        Ok(event) => {
                            d.items.push(Item::new(index, entry.position, true));
                            d.events.push(event);
                        }
                        Err(error) => d.rejects.push(reject(
                            received_at,
                            Some(source.to_string()),
                            &packet,
                            error,
                        )),
                    }
                }
                Ok(JournalRecord::AuthResult {
                    at_ms,
                    source,
                    username,
                    nas_identifier,
                    calling_station_id,
                    accepted,
                    reason,
                }) => {
                    let at = Utc.timestamp_millis_opt(at_ms).single();
                    let texts = [
                        Some(&username),
                        nas_identifier.as_ref(),
                        calling_station_id.as_ref(),
                        reason.as_ref(),
                    ];
                    let error = if at.is_none() {
                        Some(format!("auth result with invalid time {at_ms} ms"))
                    } else if texts.into_iter().flatten().any(|t| t.contains('\0')) {
                        Some(format!("auth result: a text {NUL_IN_TEXT}"))
                    } else {
                        None
                    };
                    match (at, error) {
                        (Some(at), None) => {
                            d.items.push(Item::new(index, entry.position, false));
                            d.auths.push(AuthResult {
                                at,
                                source: Some(source.ip()),
                                username,
                                nas_identifier,
                                calling_station_id,
                                accepted,
                                reason,
                            });
                        }
                        (_, error) => d.rejects.push(reject(
                            None,
                            Some(source.to_string()),
                            &entry.data,
                            error.unwrap_or_default(),
                        )),
                    }
                }
                Err(e) => d.rejects.push(reject(
                    None,
                    None,
                    &entry.data,
                    format!("journal record: {e}"),
                )),
            }
        }
        d
    }

    /// One transaction: the decoded records (whole, or split until Postgres' refusals are
    /// isolated when `split`), the rejects, the stored position. Returns the refused records.
    async fn write(
        &self,
        d: &Decoded,
        batch: &Batch,
        split: bool,
    ) -> Result<Vec<Refused>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let refused = if split {
            apply_split(&mut tx, d, self.vouchers.as_ref()).await?
        } else {
            apply_range(&mut tx, d, 0..d.items.len(), self.vouchers.as_ref()).await?;
            Vec::new()
        };
        let refused_rejects: Vec<Reject> = refused
            .iter()
            .map(|r| r.reject(&batch.entries[r.entry].data))
            .collect();
        insert_rejects(
            &mut tx,
            self.journal_id,
            d.rejects.iter().chain(&refused_rejects),
        )
        .await?;
        // GREATEST: a re-read batch that ends below what is stored never moves it back.
        sqlx::query(
            "INSERT INTO journal_progress (journal_id, position, updated_at) \
             VALUES ($1, $2, now()) \
             ON CONFLICT (journal_id) DO UPDATE \
             SET position = GREATEST(journal_progress.position, EXCLUDED.position), \
                 updated_at = now()",
        )
        .bind(db_id(self.journal_id))
        .bind(db_position(batch.end))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(refused)
    }

    /// Advances the journal's durable read position to the end of `batch` (call only after
    /// [`store`](Self::store) succeeded for it).
    pub async fn commit(&mut self, batch: &Batch) -> anyhow::Result<()> {
        let end = batch.end;
        // msync of the header page: a disk write, so off the async threads.
        self.on_blocking_thread("journal commit task", move |c| c.commit(end))
            .await?
            .context("committing the journal read position")
    }

    /// Whether a batch moved nothing (no records, no skipped gap or padding).
    fn is_empty(&self, batch: &Batch) -> bool {
        batch.entries.is_empty() && batch.end == self.committed_position()
    }
}

async fn insert_rejects<'a>(
    conn: &mut PgConnection,
    journal_id: u64,
    rejects: impl Iterator<Item = &'a Reject>,
) -> Result<(), sqlx::Error> {
    let rejects: Vec<&Reject> = rejects.collect();
    if rejects.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = rejects.iter().map(|r| db_position(r.position)).collect();
    let received: Vec<Option<DateTime<Utc>>> = rejects.iter().map(|r| r.received_at).collect();
    let sources: Vec<Option<&str>> = rejects.iter().map(|r| r.source.as_deref()).collect();
    let raws: Vec<&[u8]> = rejects.iter().map(|r| r.raw.as_slice()).collect();
    let errors: Vec<&str> = rejects.iter().map(|r| r.error.as_str()).collect();
    // ON CONFLICT: a batch replayed after a crash between the two commits is skipped by
    // position anyway; this keeps the table exact even if it were not.
    sqlx::query(
        "INSERT INTO accounting_rejects \
           (journal_id, journal_position, received_at, source, raw, error) \
         SELECT $1, t.p, t.r, t.s, t.raw, t.e \
         FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::bytea[], $6::text[]) \
           AS t(p, r, s, raw, e) \
         ON CONFLICT (journal_id, journal_position) DO NOTHING",
    )
    .bind(db_id(journal_id))
    .bind(positions)
    .bind(received)
    .bind(sources)
    .bind(raws)
    .bind(errors)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sleeps `d`, or returns `true` early when `stop` is raised.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

/// The consumer loop: read, store (retrying Postgres errors), commit, until `stop` is
/// raised. A batch in progress is finished first (unless Postgres is down: then it is left
/// in the journal, which is safe).
pub async fn run(mut ingest: JournalIngest, mut stop: watch::Receiver<bool>) {
    let mut poll = BUSY_POLL;
    let mut last_lag_check = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        let batch = match ingest.read().await {
            Ok(b) => b,
            Err(e) => {
                // Only a panicked blocking task gets here; nothing can be read any more.
                tracing::error!(error = format!("{e:#}"), "journal consumer stopped");
                return;
            }
        };
        if last_lag_check.elapsed() >= LAG_CHECK {
            last_lag_check = Instant::now();
            let st = ingest.stats.status();
            if st.lag_bytes > st.capacity / 10 {
                tracing::warn!(
                    lag_bytes = st.lag_bytes,
                    capacity = st.capacity,
                    "journal: consumer lags (radiusd fails accounting once the journal is full)"
                );
            }
        }
        if ingest.is_empty(&batch) {
            if sleep_or_stop(poll, &mut stop).await {
                break;
            }
            poll = (poll * 2).min(IDLE_POLL);
            continue;
        }
        let mut backoff = RETRY_MIN;
        loop {
            match ingest.store(&batch).await {
                Ok(_) => break,
                Err(e) => {
                    ingest.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    let retry_in_ms = backoff.as_millis() as u64;
                    let records = batch.entries.len();
                    if Failure::of(&e) == Failure::Transient {
                        tracing::warn!(
                            error = %e,
                            retry_in_ms,
                            records,
                            "journal: storing a batch in Postgres failed; keeping it and retrying"
                        );
                    } else {
                        // Not the connection and not the data: the schema or privileges.
                        // Nothing moves until someone fixes it; say so loudly.
                        tracing::error!(
                            error = %e,
                            retry_in_ms,
                            records,
                            "journal: Postgres cannot store accounting (schema or privileges?); \
                             keeping the batch and retrying"
                        );
                    }
                    if sleep_or_stop(backoff, &mut stop).await {
                        tracing::info!(
                            "journal consumer stopped with a batch not stored (it stays in the journal)"
                        );
                        return;
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        if let Err(e) = ingest.commit(&batch).await {
            // The position is in the shared header (writers reuse the space) but maybe not on
            // disk; after a machine crash the batch is read again and skipped by position.
            tracing::error!(error = format!("{e:#}"), "journal: commit not durable");
        }
        if batch.entries.len() < ingest.batch_max {
            poll = BUSY_POLL;
            if sleep_or_stop(poll, &mut stop).await {
                break;
            }
        }
    }
    tracing::info!("journal consumer stopped");
}

/// The running consumer and stale-session timer.
pub struct JournalHandle {
    stats: Arc<JournalStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl JournalHandle {
    /// The shared counters.
    pub fn stats(&self) -> Arc<JournalStats> {
        self.stats.clone()
    }

    /// Stops both tasks, letting the consumer finish its current batch.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Opens the journal and starts the consumer and the stale-session timer.
pub async fn start(pool: PgPool, config: &JournalConfig) -> anyhow::Result<JournalHandle> {
    let ingest = JournalIngest::open(pool.clone(), config).await?;
    let stats = ingest.stats();
    let (stop, stop_rx) = watch::channel(false);
    let consumer = tokio::spawn(run(ingest, stop_rx.clone()));
    let stale = tokio::spawn(stale_timer(
        pool,
        config.stale_sweep_interval,
        config.default_interim_interval,
        stop_rx,
    ));
    Ok(JournalHandle {
        stats,
        stop,
        tasks: vec![consumer, stale],
    })
}

/// Closes stale sessions every `interval`.
async fn stale_timer(
    pool: PgPool,
    interval: Duration,
    default_interim: u32,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if sleep_or_stop(interval, &mut stop).await {
            return;
        }
        let result = async {
            let mut tx = pool.begin().await?;
            let n = close_stale(&mut tx, Utc::now(), default_interim).await?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "closed stale sessions"),
            Err(e) => {
                tracing::warn!(error = %e, "closing stale sessions failed; trying again at the next sweep")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    #[test]
    fn sqlstates_are_classified_by_what_a_retry_can_fix() {
        let kind = Failure::of_sqlstate;
        // connection, serialization/deadlock, resources, lock timeout, shutdown, system
        for code in [
            "08006", "40001", "40P01", "53300", "55P03", "57P01", "58030",
        ] {
            assert_eq!(kind(code), Failure::Transient, "{code}");
        }
        // NUL in text, bad cast, check/unique/foreign key, index row too large
        for code in ["22021", "22P02", "23514", "23505", "23503", "54000"] {
            assert_eq!(kind(code), Failure::Data, "{code}");
        }
        // undefined table or column, no privilege, internal error, a trigger's RAISE
        for code in ["42P01", "42703", "42501", "XX000", "P0001", "54001"] {
            assert_eq!(kind(code), Failure::Other, "{code}");
        }
        assert_eq!(Failure::of(&sqlx::Error::PoolTimedOut), Failure::Transient);
        assert_eq!(Failure::of(&sqlx::Error::RowNotFound), Failure::Other);
    }
}
