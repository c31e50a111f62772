//! Errors of the journal.

use std::path::PathBuf;

/// Why a journal could not be opened or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// An I/O error on the journal file or its directory.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the journal magic.
    #[error("{0} is not a jasiyo journal")]
    NotAJournal(PathBuf),
    /// The file is a journal of a layout version this build does not speak.
    #[error("journal {path} has version {found}, this build supports version {supported}")]
    UnsupportedVersion {
        /// The journal file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The header is damaged or inconsistent (checksum, length, positions).
    #[error("journal {path} is corrupt: {reason}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The requested capacity is not a multiple of 4096 in 4 KiB..=1 TiB.
    #[error("invalid journal capacity {0}: a multiple of 4096 between 4 KiB and 1 TiB")]
    InvalidCapacity(u64),
    /// The existing journal has another capacity than requested (resizing is not supported:
    /// drain it, then remove it).
    #[error("journal {path} has capacity {found}, {requested} requested")]
    CapacityMismatch {
        /// The journal file.
        path: PathBuf,
        /// Capacity in the file.
        found: u64,
        /// Capacity asked for.
        requested: u64,
    },
    /// Another consumer holds the journal.
    #[error("journal {0} is already open by another consumer")]
    Busy(PathBuf),
}

/// Why an append did not happen. In every case nothing was acknowledged: the module returns
/// `fail` and the router retransmits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Not enough free space between the reserved and the consumed position.
    #[error("journal full: {needed} bytes needed, {free} free")]
    Full {
        /// Bytes this record needs (with header, alignment and any padding).
        needed: u64,
        /// Bytes free now.
        free: u64,
    },
    /// The record is larger than this journal accepts.
    #[error("record of {len} bytes exceeds the journal's maximum of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Largest payload accepted.
        max: u64,
    },
    /// The consumer gave up on this append's slot because the writer stalled between
    /// reserving and committing for longer than the consumer's grace period.
    #[error("journal slot at {position} was abandoned by the consumer (writer stalled)")]
    Abandoned {
        /// Position of the abandoned slot.
        position: u64,
    },
}

/// Why a commit was refused or not made durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The position is not a record boundary this consumer has read up to.
    #[error(
        "{position} is not a record boundary read by this consumer (consumed {consumed}, read up to {read})"
    )]
    NotABoundary {
        /// Position asked for.
        position: u64,
        /// Current consumed position.
        consumed: u64,
        /// The consumer's read position.
        read: u64,
    },
    /// The new position is stored in the shared header (writers may reuse the space) but
    /// could not be made durable.
    #[error("journal header msync failed: {0}")]
    Io(#[from] std::io::Error),
}
