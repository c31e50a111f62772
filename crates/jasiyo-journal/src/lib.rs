//! The accounting journal: how `rlm_jasiyo` hands Accounting-Requests and post-auth results
//! to `billing-daemon` without a lock on the request path and without losing any.
//!
//! One file, created by the daemon ([`JournalConsumer::create_or_open`], mode 0660, group
//! `freerad`), mapped shared by every radiusd process ([`JournalWriter::open`]): a header page
//! and a ring of `capacity` bytes (layout in `layout.rs`). Many writers append
//! ([`JournalWriter::append`]); one consumer reads in position order
//! ([`JournalConsumer::read_batch`]), stores the records elsewhere (Postgres), and then commits
//! ([`JournalConsumer::commit`]). Payloads are opaque bytes; [`record`] has the codec of what
//! the module journals.
//!
//! # Synchronization
//!
//! **Positions.** The header holds two shared `AtomicU64`s: `reserved` (end of the last
//! reservation, written by writers) and `consumed` (everything before it is done, written only
//! by the consumer). Both are absolute byte positions that only grow; the ring offset of a
//! position is `position % capacity`. Invariant: `consumed <= reserved <= consumed +
//! capacity`. Records start at 8-byte aligned positions and never straddle the end of the
//! ring.
//!
//! **Slots and state words.** A record is a 16-byte header (an `AtomicU64` state word, then
//! length and checksum) and its payload. The state word is `tag(position) | state`, where
//! `tag(position) = (position ^ key) & !7` and `key` is 64 random bits chosen when the file is
//! created; the state (low 3 bits) is `CLAIMED`, `COMMITTED`, `PADDING` (committed; the rest of
//! the lap is empty) or `ABANDONED`. A word whose tag is not this position's tag is *stale*:
//! left over from an earlier lap (different position, so different tag), zero, or payload
//! bytes (which cannot carry a valid tag without knowing the key, and the file is readable only
//! by the daemon and radiusd).
//!
//! **Append** (writer, lock-free):
//! 1. Reserve: load `consumed` (`Acquire`), compute where the record goes (at `reserved`, or
//!    at the next lap start behind padding), refuse with `Full` if the end would pass
//!    `consumed + capacity`, and `compare_exchange_weak` `reserved` forward (`Relaxed`: the
//!    RMW total order on `reserved` alone makes reservations disjoint). A failed CAS retries
//!    from the observed value; some writer always succeeds, so the loop is lock-free, and no
//!    writer ever waits for another or for the consumer.
//! 2. If the record does not fit before the lap end, claim the tail with a `PADDING` word.
//! 3. Claim the record's slot: CAS its state word from the stale value observed to
//!    `tag | CLAIMED`. If it already carries our tag, the consumer abandoned it: `Err`.
//! 4. Write length, checksum and payload with plain copies, then CAS the state word from
//!    `tag | CLAIMED` to `tag | COMMITTED` with `Release`. If that fails the consumer abandoned
//!    the slot: `Err`. On `Ok` the record is complete in the shared mapping.
//!
//! **Why space is free when it is reused.** The consumer copies records out before storing
//! `consumed` with `Release`; a writer loads `consumed` with `Acquire` before reserving, so
//! the consumer's reads (and any state words it wrote) happen before the writer's writes.
//!
//! **Why a reader never sees a half-written record.** The consumer loads a state word with
//! `Acquire` and reads length and payload only if it is `tag(position) | COMMITTED`; that
//! value is written by the writer's `Release` CAS *after* all its payload writes, so they are
//! visible. A `CLAIMED` or stale word stops the batch (a writer in progress). Lengths are also
//! checked against the lap end and `reserved`, and the checksum against the payload, so even a
//! file torn by a machine crash never yields a malformed record (it is counted as `corrupt`).
//!
//! **Why a stale record from an earlier lap is never mistaken for a new one.** Its state word
//! carries the tag of its own position, `capacity * k` bytes earlier; tags are distinct for
//! distinct positions. So at a new position it reads as stale: not claimed yet.
//!
//! **Why every record is read exactly once, in order.** The consumer walks positions from its
//! cursor: a committed record advances it by the record's size, padding to the next lap start.
//! Because reservations are contiguous and a record's size is fixed before its commit, the
//! walk lands on every slot start in order and never inside a payload. Nothing is read at or
//! beyond the `reserved` loaded at the start of the batch, and every slot below it belongs to a
//! completed reservation.
//!
//! **Dead and stalled writers.** A writer may die (or stall) after reserving and before
//! committing; its slot would block the journal forever. When the slot at the cursor stays
//! the same (same stale or `CLAIMED` word) for longer than
//! [`ConsumerOptions::abandon_after`], the consumer CASes that word to `tag | ABANDONED` and
//! then *sweeps*: it steps forward 8 bytes at a time, CASing every stale word to its own
//! `tag | ABANDONED`, until it meets a word with a valid tag (the next claimed, committed or
//! padding slot) or the loaded `reserved`. Since the length of a dead writer's slot may never
//! have been written, this is how its extent is found. Every writer whose slot header lies in
//! the swept range either claimed it before the sweep got there (then the sweep stops at it)
//! or finds its own tag in its state word when it tries (step 3 or 4 CAS fails) and returns
//! `Err` without acknowledging; the CAS on a single word decides the race. So a record that
//! was acknowledged is never skipped; what is skipped was never acknowledged, and the router
//! retransmits it. A `CLAIMED` slot met during a sweep gets its own grace period (its writer
//! may be alive). Poison words are permanent, so a consumer restarted mid-sweep passes them
//! without waiting again.
//!
//! The one case the grace period cannot make safe: a writer that claimed its slot and is then
//! descheduled for longer than the grace period *while copying the payload*. Its commit fails
//! (nothing is acknowledged), but its remaining payload stores land in space the consumer may
//! already have released, and could damage a later record there (caught by the checksum, so
//! counted as `corrupt`, never decoded as garbage). Keep the grace period orders of magnitude
//! above any plausible stall (the default is 30 s against a copy of a few hundred bytes).
//!
//! **Crashes.** A writer killed at any point leaves either nothing (before step 1), a
//! reservation that is abandoned as above, or a complete committed record; because the mapping
//! is shared and file-backed, everything it stored is in the page cache and is read by the
//! consumer. A consumer killed at any point restarts from the last `consumed` it stored:
//! records after it are read again (the caller is idempotent), records before it are never read
//! again. [`JournalConsumer::commit`] msyncs the header page after storing `consumed`, so that
//! position also survives a machine crash. The ring is *not* synced by writers: a machine crash
//! (power loss) can lose records acknowledged shortly before it (as FreeRADIUS's detail file
//! can). After such a crash the consumer may meet stale, torn or missing slots between
//! `consumed` and `reserved`; it skips them as abandoned (after the grace period) or corrupt,
//! and never stalls for good or returns garbage.
//!
//! **Cross-process atomics.** The positions and state words are naturally aligned
//! `AtomicU64`s in a shared file mapping; 64-bit atomics are lock-free and address-free on the
//! targets we build for (x86_64, aarch64), so they synchronize between processes exactly as
//! between threads, including between two mappings of the same file. Payload bytes are copied
//! with plain reads and writes through raw pointers from `MmapRaw` (never through Rust
//! references), and the protocol above ensures that no two parties access them at once
//! (except the stalled-writer case just described).
//!
//! **Other hazards.** The file is fully allocated at creation (`posix_fallocate`), so a writer
//! never hits a full disk through the mapping (which would be SIGBUS in radiusd); nobody may
//! truncate it while mapped (the directory belongs to the daemon). Only one consumer may exist:
//! it holds an exclusive `flock` on the file. A page fault on a cold page of the ring is the
//! only way an append can wait (the mapping is pre-faulted with `MAP_POPULATE`).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
// Tests index and unwrap freely; the library does neither.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

mod consumer;
mod error;
mod layout;
mod map;
pub mod record;
mod writer;

use std::path::Path;

pub use consumer::{Batch, ConsumerOptions, Entry, JournalConsumer};
pub use error::{AppendError, CommitError, OpenError};
pub use layout::{MAX_CAPACITY, MIN_CAPACITY};
pub use record::{JournalRecord, RecordError};
pub use writer::JournalWriter;

fn io_error(path: &Path, source: std::io::Error) -> OpenError {
    OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

fn map_error_into(path: &Path, error: map::MapError) -> OpenError {
    use layout::HeaderProblem;
    match error {
        map::MapError::Io(source) => io_error(path, source),
        map::MapError::Header(HeaderProblem::NotAJournal) => {
            OpenError::NotAJournal(path.to_owned())
        }
        map::MapError::Header(HeaderProblem::Version(found)) => OpenError::UnsupportedVersion {
            path: path.to_owned(),
            found,
            supported: layout::VERSION,
        },
        map::MapError::Header(HeaderProblem::Corrupt(reason)) => OpenError::Corrupt {
            path: path.to_owned(),
            reason,
        },
    }
}

fn map_error<T>(path: &Path, result: Result<T, map::MapError>) -> Result<T, OpenError> {
    result.map_err(|e| map_error_into(path, e))
}

#[cfg(test)]
mod tests;
