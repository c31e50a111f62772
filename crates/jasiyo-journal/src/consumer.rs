//! The consuming side: billing-daemon, exactly one per journal.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{CommitError, OpenError};
use crate::layout::{self, ABANDONED, ALIGN, HEADER_LEN, RECORD_HEADER, Slot};
use crate::map::JournalMap;

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// How long a reserved slot may stay uncommitted, blocking the records after it, before
    /// the consumer abandons it (its writer died or stalled; it never acknowledged the
    /// record, so the router retransmits it). Default 30 s.
    ///
    /// Long on purpose: a writer that is merely descheduled longer than this while copying
    /// its payload could, once the space is reused, damage a later record that was
    /// acknowledged (the checksum catches it, but the record is lost). Copying a few hundred
    /// bytes never takes seconds on a live process, so 30 s only delays the journal after a
    /// writer really died, which is rare and recovers by itself.
    pub abandon_after: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            abandon_after: Duration::from_secs(30),
        }
    }
}

/// One record read from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute position of the record (unique for the life of the journal).
    pub position: u64,
    /// Position just after it: pass this (or a later boundary) to
    /// [`JournalConsumer::commit`] once the record is durable elsewhere.
    pub next: u64,
    /// The payload, as appended.
    pub data: Vec<u8>,
}

/// The result of one [`JournalConsumer::read_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Records in position order.
    pub entries: Vec<Entry>,
    /// The read position after this batch: a valid argument to
    /// [`JournalConsumer::commit`] once every entry is durable.
    pub end: u64,
    /// Gaps skipped in this call because their writer died or stalled past the grace period
    /// (each is at least one reservation that was never acknowledged). Log them.
    pub abandoned: u64,
    /// Committed records skipped because they failed validation (length or checksum): only
    /// possible after a machine crash tore the file. Log them loudly.
    pub corrupt: u64,
}

/// A slot the consumer is waiting on.
#[derive(Debug, Clone, Copy)]
struct Stall {
    position: u64,
    word: u64,
    since: Instant,
}

/// The single consumer of a journal. Holds an exclusive `flock` on the file for its life, so
/// a second daemon cannot consume the same journal.
pub struct JournalConsumer {
    map: JournalMap,
    _file: File,
    path: PathBuf,
    options: ConsumerOptions,
    /// Next position to read.
    cursor: u64,
    /// Durable consumed position (mirror of the shared one, which only we write).
    consumed: u64,
    /// Record boundaries read but not committed, increasing; the last is `cursor`.
    boundaries: VecDeque<u64>,
    stall: Option<Stall>,
}

impl JournalConsumer {
    /// Opens the journal at `path`, creating it (mode 0660, group `group` if given, so that
    /// radiusd's user can write it) with a ring of `capacity` bytes if it does not exist.
    pub fn create_or_open(
        path: impl AsRef<Path>,
        capacity: u64,
        group: Option<u32>,
    ) -> Result<Self, OpenError> {
        Self::create_or_open_with(path, capacity, group, ConsumerOptions::default())
    }

    /// [`create_or_open`](Self::create_or_open) with explicit options.
    pub fn create_or_open_with(
        path: impl AsRef<Path>,
        capacity: u64,
        group: Option<u32>,
        options: ConsumerOptions,
    ) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if !layout::valid_capacity(capacity) {
            return Err(OpenError::InvalidCapacity(capacity));
        }
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(path, capacity, group)?;
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|source| crate::io_error(path, source))?
            }
            Err(source) => return Err(crate::io_error(path, source)),
        };
        lock_exclusive(&file).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                OpenError::Busy(path.to_owned())
            } else {
                crate::io_error(path, source)
            }
        })?;
        let len = file
            .metadata()
            .map_err(|source| crate::io_error(path, source))?
            .len();
        let map = crate::map_error(path, JournalMap::open(&file, len))?;
        if map.capacity() != capacity {
            return Err(OpenError::CapacityMismatch {
                path: path.to_owned(),
                found: map.capacity(),
                requested: capacity,
            });
        }
        let consumed = map.consumed().load(Ordering::Acquire);
        let reserved = map.reserved().load(Ordering::Acquire);
        if !layout::positions_consistent(capacity, consumed, reserved) {
            return Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason: "inconsistent positions",
            });
        }
        Ok(Self {
            map,
            _file: file,
            path: path.to_owned(),
            options,
            cursor: consumed,
            consumed,
            boundaries: VecDeque::from([consumed]),
            stall: None,
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ring capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.map.capacity()
    }

    /// A stable identity of this journal file: a hash of its random key (never the key
    /// itself, which guards the slot tags). A file recreated at the same path gets another
    /// id, so positions stored elsewhere under the old id are never applied to it.
    pub fn journal_id(&self) -> u64 {
        // A fixed domain string keeps the id unrelated to any checksum seed.
        xxhash_rust::xxh3::xxh3_64_with_seed(b"jasiyo-journal-id", self.map.key())
    }

    /// The key, for the test that the id does not reveal it.
    #[cfg(test)]
    pub(crate) fn map_key_for_test(&self) -> u64 {
        self.map.key()
    }

    /// The durable consumed position: everything before it is done and never read again.
    pub fn committed_position(&self) -> u64 {
        self.consumed
    }

    /// Position the next [`read_batch`](Self::read_batch) starts from.
    pub fn read_position(&self) -> u64 {
        self.cursor
    }

    /// The writers' reserved position now (`reserved - committed` is the lag in bytes).
    pub fn reserved_position(&self) -> u64 {
        self.map.reserved().load(Ordering::Acquire)
    }

    /// Gaps abandoned over the life of the journal file.
    pub fn abandoned_total(&self) -> u64 {
        self.map.abandoned_total().load(Ordering::Relaxed)
    }

    /// Reads up to `max_records` committed records after the read position, in position
    /// order. Stops early at a slot a writer is still filling; skips a slot stuck longer than
    /// the grace period (see [`Batch::abandoned`]). Never blocks.
    pub fn read_batch(&mut self, max_records: usize) -> Batch {
        let map = &self.map;
        let key = map.key();
        let capacity = map.capacity();
        let reserved = map.reserved().load(Ordering::Acquire);
        let mut batch = Batch::default();
        let mut p = self.cursor;
        // Sweeping: we are inside a gap we decided to abandon; every unclaimed word up to the
        // next claimed slot is poisoned without further grace.
        let mut sweeping = false;
        while p < reserved && batch.entries.len() < max_records {
            let state = map.state_word(p);
            let word = state.load(Ordering::Acquire);
            match layout::classify(key, p, word) {
                Slot::Committed => {
                    sweeping = false;
                    self.stall = None;
                    match read_record(map, p, reserved) {
                        Some(entry) => {
                            p = entry.next;
                            push_boundary(&mut self.boundaries, p);
                            batch.entries.push(entry);
                        }
                        None => {
                            // Torn by a machine crash: poison it so a restart agrees, then
                            // sweep to the next claimed slot.
                            let _ = state.compare_exchange(
                                word,
                                layout::word(key, p, ABANDONED),
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            );
                            batch.corrupt += 1;
                            sweeping = true;
                            p += ALIGN;
                        }
                    }
                }
                Slot::Padding => {
                    sweeping = false;
                    self.stall = None;
                    p += capacity - map.offset(p);
                    push_boundary(&mut self.boundaries, p);
                }
                Slot::Abandoned => {
                    // Poisoned earlier (by us, or before a restart): part of a gap.
                    sweeping = true;
                    p += ALIGN;
                }
                Slot::Stale if sweeping => {
                    // A word inside an abandoned gap, or the header of a reservation after it
                    // whose writer has not claimed yet: poison it so that writer fails.
                    if poison(state, word, key, p) {
                        p += ALIGN;
                    }
                    // else: a writer claimed it just now; look again.
                }
                Slot::Stale | Slot::Claimed => {
                    let now = Instant::now();
                    match self.stall {
                        Some(s) if s.position == p && s.word == word => {
                            if now.duration_since(s.since) < self.options.abandon_after {
                                break;
                            }
                            if poison(state, word, key, p) {
                                self.stall = None;
                                batch.abandoned += 1;
                                map.abandoned_total().fetch_add(1, Ordering::Relaxed);
                                sweeping = true;
                                p += ALIGN;
                            }
                            // else: the writer made progress; look again.
                        }
                        _ => {
                            // First sight, or progress since (claimed): start the clock.
                            self.stall = Some(Stall {
                                position: p,
                                word,
                                since: now,
                            });
                            break;
                        }
                    }
                }
            }
        }
        self.cursor = p;
        push_boundary(&mut self.boundaries, p);
        batch.end = p;
        batch
    }

    /// Records that everything before `up_to` (a boundary from [`Entry::next`] or
    /// [`Batch::end`]) is durable elsewhere: stores it as the consumed position, frees the
    /// space for writers and makes it durable (msync of the header page). After a crash the
    /// consumer resumes from the last committed position.
    pub fn commit(&mut self, up_to: u64) -> Result<(), CommitError> {
        if up_to == self.consumed {
            return Ok(());
        }
        let not_boundary = CommitError::NotABoundary {
            position: up_to,
            consumed: self.consumed,
            read: self.cursor,
        };
        if up_to < self.consumed || up_to > self.cursor {
            return Err(not_boundary);
        }
        let Ok(index) = self.boundaries.binary_search(&up_to) else {
            return Err(not_boundary);
        };
        self.boundaries.drain(..index);
        // Release: our reads of the records before `up_to` happen before any writer, which
        // loads `consumed` with Acquire, reuses their space.
        self.map.consumed().store(up_to, Ordering::Release);
        self.consumed = up_to;
        self.map.flush_header()?;
        Ok(())
    }
}

fn push_boundary(boundaries: &mut VecDeque<u64>, position: u64) {
    if boundaries.back().is_none_or(|&last| last < position) {
        boundaries.push_back(position);
    }
}

/// Reads the committed record at `position`, or `None` if it fails validation.
fn read_record(map: &JournalMap, position: u64, reserved: u64) -> Option<Entry> {
    let capacity = map.capacity();
    let offset = map.offset(position);
    let room = capacity - offset;
    if room < RECORD_HEADER {
        return None;
    }
    // SAFETY: offset + 16 <= capacity (checked). The slot's commit was observed with Acquire,
    // so its writer's writes of these bytes happened before; no writer reuses them before we
    // advance `consumed` past this position.
    let head = unsafe { map.read_ring(offset + 8, 8) };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = <[u8; 8]>::try_from(head).ok()?;
    let len = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
    let sum = u32::from_le_bytes([c0, c1, c2, c3]);
    let size = layout::record_size(len);
    if len > layout::max_payload(capacity) || size > room || position + size > reserved {
        return None;
    }
    // SAFETY: offset + 16 + len <= offset + size <= capacity (checked); same ownership
    // argument as for the header above.
    let data = unsafe { map.read_ring(offset + RECORD_HEADER, len as usize) };
    if layout::payload_checksum(map.key(), position, &data) != sum {
        return None;
    }
    Some(Entry {
        position,
        next: position + size,
        data,
    })
}

/// Creates the journal at `path`: a temporary file in the same directory, allocated (so a
/// writer never meets a full disk through the mapping, which would be SIGBUS), header
/// written, group and mode set, synced, renamed into place, directory synced.
fn create(path: &Path, capacity: u64, group: Option<u32>) -> Result<(), OpenError> {
    let io = |source| crate::io_error(path, source);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        let len = HEADER_LEN as u64 + capacity;
        allocate(&file, len).map_err(io)?;
        JournalMap::initialize(&file, capacity, random_key().map_err(io)?)
            .map_err(|e| crate::map_error_into(path, e))?;
        if let Some(gid) = group {
            std::os::unix::fs::fchown(&file, None, Some(gid)).map_err(io)?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(0o660))
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        // No clobbering: if another daemon created it meanwhile, keep theirs.
        std::fs::hard_link(&tmp, path).or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(io(e))
            }
        })?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Allocates `len` bytes of disk for `file` (falls back to `set_len` where the file system
/// does not support `posix_fallocate`).
fn allocate(file: &File, len: u64) -> std::io::Result<()> {
    let Ok(off_len) = libc::off_t::try_from(len) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    // SAFETY: posix_fallocate only reads its integer arguments; the descriptor is owned by
    // `file`, open for writing, and stays open for the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off_len) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// Takes the exclusive consumer lock (`flock`, released when the file is closed).
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    // SAFETY: flock only takes the descriptor and flags; the descriptor is owned by `file`
    // and open for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A random per-file key (low three bits zero: they hold the slot state).
fn random_key() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes) & !layout::STATE_MASK)
}

/// Marks the slot at `position` abandoned if its state word still holds `seen`. Returns
/// false when a writer changed it first (claimed or committed it): the one-word CAS decides
/// that race, so a writer either finds its slot poisoned or the consumer finds it claimed.
fn poison(state: &AtomicU64, seen: u64, key: u64, position: u64) -> bool {
    state
        .compare_exchange(
            seen,
            layout::word(key, position, ABANDONED),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
}
