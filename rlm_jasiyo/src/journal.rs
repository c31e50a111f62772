//! The module's side of the accounting journal: a [`JournalWriter`] opened lazily, because
//! radiusd may start before billing-daemon has created the file.
//!
//! The request path takes no lock: once the writer is open it is read from a `OnceLock` (one
//! atomic load). While it is not, a request tries to open it at most once per
//! [`REOPEN_INTERVAL_MS`] (the others fail at once, so a missing journal costs no system call
//! per packet), and failures are logged at most once per [`LOG_INTERVAL_MS`] (a full journal
//! under load would otherwise write a log line per packet).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use jasiyo_journal::{AppendError, JournalRecord, JournalWriter, RecordError};

/// How long after a failed open the next request tries again.
pub const REOPEN_INTERVAL_MS: i64 = 1_000;
/// How often a journal failure is logged at most.
pub const LOG_INTERVAL_MS: i64 = 10_000;

/// Why a record is not in the journal. In every case nothing was recorded: accounting
/// returns `fail` (no Accounting-Response, the router retransmits).
#[derive(Debug)]
pub enum JournalFailure {
    /// The journal is not open; `reason` says why when this request tried to open it.
    NotOpen {
        /// The open error of this attempt, or `None` when an earlier attempt failed recently.
        reason: Option<String>,
    },
    /// The record could not be encoded (a field over 4 GiB: impossible for RADIUS).
    Encode(RecordError),
    /// The append failed (full, too large, abandoned).
    Append(AppendError),
}

impl fmt::Display for JournalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOpen {
                reason: Some(reason),
            } => write!(
                f,
                "journal not open: {reason} (billing-daemon creates it; can the radiusd user \
                 read and write it?)"
            ),
            Self::NotOpen { reason: None } => {
                f.write_str("journal not open (the last attempt failed; retrying shortly)")
            }
            Self::Encode(e) => write!(f, "journal record: {e}"),
            Self::Append(e) => write!(f, "{e}"),
        }
    }
}

/// A journal path and, once it could be opened, its writer.
pub struct LazyJournal {
    path: PathBuf,
    writer: OnceLock<JournalWriter>,
    /// Earliest time (Unix ms) a request may try to open the journal again.
    next_open_ms: AtomicI64,
    /// Earliest time (Unix ms) a failure may be logged again.
    next_log_ms: AtomicI64,
}

impl LazyJournal {
    /// A journal at `path`, not opened yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            writer: OnceLock::new(),
            next_open_ms: AtomicI64::new(i64::MIN),
            next_log_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the writer is open.
    pub fn is_open(&self) -> bool {
        self.writer.get().is_some()
    }

    /// The writer, opening it if it is not open and no attempt failed in the last
    /// [`REOPEN_INTERVAL_MS`].
    pub fn writer(&self, now_ms: i64) -> Result<&JournalWriter, JournalFailure> {
        if let Some(writer) = self.writer.get() {
            return Ok(writer);
        }
        let due = self.next_open_ms.load(Ordering::Relaxed);
        // Only the request that moves the deadline tries; concurrent ones fail at once.
        if now_ms < due
            || self
                .next_open_ms
                .compare_exchange(
                    due,
                    now_ms.saturating_add(REOPEN_INTERVAL_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return self
                .writer
                .get()
                .ok_or(JournalFailure::NotOpen { reason: None });
        }
        match JournalWriter::open(&self.path) {
            // A racing opener may have won; either mapping works, the loser is unmapped.
            Ok(writer) => Ok(self.writer.get_or_init(|| writer)),
            Err(e) => Err(JournalFailure::NotOpen {
                reason: Some(e.to_string()),
            }),
        }
    }

    /// Encodes and appends `record`. `Ok` means it is in the journal (acknowledge it).
    pub fn append(&self, record: &JournalRecord, now_ms: i64) -> Result<u64, JournalFailure> {
        let writer = self.writer(now_ms)?;
        let bytes = record.encode().map_err(JournalFailure::Encode)?;
        writer.append(&bytes).map_err(JournalFailure::Append)
    }

    /// Whether a failure at `now_ms` should be logged (true at most once per
    /// [`LOG_INTERVAL_MS`]).
    pub fn should_log(&self, now_ms: i64) -> bool {
        let due = self.next_log_ms.load(Ordering::Relaxed);
        now_ms >= due
            && self
                .next_log_ms
                .compare_exchange(
                    due,
                    now_ms.saturating_add(LOG_INTERVAL_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jasiyo_journal::JournalConsumer;
    use std::net::SocketAddr;

    fn record() -> JournalRecord {
        JournalRecord::Accounting {
            received_at_ms: 1,
            source: SocketAddr::from(([192, 0, 2, 1], 1813)),
            packet: vec![4, 1, 0, 20],
        }
    }

    #[test]
    fn opens_once_the_file_exists_and_retries_at_most_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let journal = LazyJournal::new(&path);
        assert!(matches!(
            journal.append(&record(), 0),
            Err(JournalFailure::NotOpen { reason: Some(_) })
        ));
        let mut consumer = JournalConsumer::create_or_open(&path, 4096, None).unwrap();
        // Within the interval no new attempt is made.
        assert!(matches!(
            journal.append(&record(), REOPEN_INTERVAL_MS - 1),
            Err(JournalFailure::NotOpen { reason: None })
        ));
        assert!(!journal.is_open());
        journal.append(&record(), REOPEN_INTERVAL_MS).unwrap();
        assert!(journal.is_open());
        let batch = consumer.read_batch(10);
        assert_eq!(batch.entries.len(), 1);
        assert_eq!(
            JournalRecord::decode(&batch.entries[0].data).unwrap(),
            record()
        );
    }

    #[test]
    fn full_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let _consumer = JournalConsumer::create_or_open(&path, 4096, None).unwrap();
        let journal = LazyJournal::new(&path);
        let mut full = None;
        for _ in 0..1000 {
            if let Err(e) = journal.append(&record(), 0) {
                full = Some(e);
                break;
            }
        }
        assert!(matches!(
            full,
            Some(JournalFailure::Append(AppendError::Full { .. }))
        ));
    }

    #[test]
    fn failures_are_logged_at_most_every_interval() {
        let journal = LazyJournal::new("/nonexistent");
        assert!(journal.should_log(5));
        assert!(!journal.should_log(6));
        assert!(!journal.should_log(5 + LOG_INTERVAL_MS - 1));
        assert!(journal.should_log(5 + LOG_INTERVAL_MS));
    }
}
