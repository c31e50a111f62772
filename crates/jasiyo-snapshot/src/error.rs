//! Errors of the three sides: building, publishing and reading a snapshot.

use std::net::IpAddr;
use std::path::PathBuf;

/// Why a snapshot could not be built from the given data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two subscribers have the same username.
    #[error("duplicate username {0:?}")]
    DuplicateUsername(String),
    /// Two subscribers are bound to the same MAC address.
    #[error("duplicate MAC address {}", crate::format_mac(*.0))]
    DuplicateMac([u8; 6]),
    /// Two plans have the same id.
    #[error("duplicate plan id {0}")]
    DuplicatePlan(i64),
    /// Two routers have the same address.
    #[error("duplicate router address {0}")]
    DuplicateRouter(IpAddr),
    /// A subscriber refers to a plan that is not in the snapshot.
    #[error("subscriber {username:?} refers to unknown plan {plan_id}")]
    UnknownPlan {
        /// The subscriber.
        username: String,
        /// The missing plan.
        plan_id: i64,
    },
    /// An overlay names no base, or a base not older than itself.
    #[error("an overlay needs an older base generation, got {0}")]
    BadBase(u64),
    /// An overlay carries a subscriber whose id is not in its overridden ids.
    #[error("overlay subscriber {0} is missing from the overridden ids")]
    NotOverridden(i64),
    /// More than 4 GiB of strings or 2^32 records.
    #[error("snapshot too large for the format (4 GiB of strings, 2^32 records)")]
    TooLarge,
}

/// Why a snapshot could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// A filesystem operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes handed to `publish` are not a valid snapshot (a bug in the caller).
    #[error("refusing to publish an invalid snapshot: {0}")]
    Invalid(#[from] SnapshotError),
    /// The bytes were built for another generation than the next one.
    #[error("snapshot has generation {found}, expected {expected}")]
    WrongGeneration {
        /// `next_generation()` at the time of publishing.
        expected: u64,
        /// The generation in the snapshot header.
        found: u64,
    },
    /// The control file exists but is not ours.
    #[error("{} is not a jasiyo generation file", .0.display())]
    BadControlFile(PathBuf),
    /// An overlay was built on another base than the one in place.
    #[error("overlay is for base {found}, the published base is {expected:?}")]
    WrongBase {
        /// The base in place (`None` before the first base).
        expected: Option<u64>,
        /// The base the overlay names.
        found: u64,
    },
}

/// Why a snapshot file was refused by a reader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file or the control file could not be opened or mapped.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Shorter than its header says, or than a header.
    #[error("truncated: {actual} bytes, header says {expected}")]
    Truncated {
        /// Length the header claims (or the header length).
        expected: u64,
        /// Bytes actually present.
        actual: u64,
    },
    /// Does not start with the snapshot magic.
    #[error("not a jasiyo snapshot (bad magic)")]
    BadMagic,
    /// Written by another format version.
    #[error("format version {found}, this build reads version {expected}")]
    VersionMismatch {
        /// The version this build reads.
        expected: u32,
        /// The version in the file.
        found: u32,
    },
    /// The checksum does not match the contents.
    #[error("checksum mismatch: file is corrupt")]
    ChecksumMismatch,
    /// Internally inconsistent (a section or reference out of bounds, a bad code).
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// The control file is missing or not ours.
    #[error("{} is not a jasiyo generation file", .0.display())]
    BadControlFile(PathBuf),
}
