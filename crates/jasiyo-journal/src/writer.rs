//! The writing side: radiusd worker threads, any number, in any number of processes.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::{AppendError, OpenError};
use crate::layout::{self, CLAIMED, COMMITTED, PADDING, RECORD_HEADER, Slot};
use crate::map::JournalMap;

/// An open journal, for appending. Share one per module instance between all worker threads
/// (`&self` methods; it is `Send + Sync`).
pub struct JournalWriter {
    map: JournalMap,
}

/// Where a test-only append stops (simulating a writer that dies there).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopAt {
    /// After reserving the space, before claiming the slot.
    Reserved,
    /// After claiming the slot and writing the payload, before committing.
    Claimed,
}

impl JournalWriter {
    /// Opens the journal the daemon created at `path`, read-write.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| crate::io_error(path, source))?;
        let len = file
            .metadata()
            .map_err(|source| crate::io_error(path, source))?
            .len();
        let map = crate::map_error(path, JournalMap::open(&file, len))?;
        let consumed = map.consumed().load(Ordering::Acquire);
        let reserved = map.reserved().load(Ordering::Acquire);
        if !layout::positions_consistent(map.capacity(), consumed, reserved) {
            return Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason: "inconsistent positions",
            });
        }
        Ok(Self { map })
    }

    /// Ring capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.map.capacity()
    }

    /// Largest payload [`append`](Self::append) accepts.
    pub fn max_record_len(&self) -> u64 {
        layout::max_payload(self.map.capacity())
    }

    /// Appends one record and returns its position. Lock-free: it never blocks and never
    /// waits for another writer or the consumer.
    ///
    /// When this returns `Ok`, the record is complete in the shared file mapping: it survives
    /// this process dying (the page cache holds it) and the consumer will read it. Only then
    /// may the caller acknowledge it (RFC 2866). Any `Err` means nothing was recorded.
    pub fn append(&self, data: &[u8]) -> Result<u64, AppendError> {
        self.append_inner(data, None)
    }

    #[cfg(test)]
    pub(crate) fn append_until(&self, data: &[u8], stop: StopAt) -> Result<u64, AppendError> {
        self.append_inner(data, Some(stop))
    }

    fn append_inner(&self, data: &[u8], stop: Option<StopAt>) -> Result<u64, AppendError> {
        let map = &self.map;
        let capacity = map.capacity();
        let key = map.key();
        let max = layout::max_payload(capacity);
        if data.len() as u64 > max {
            return Err(AppendError::TooLarge {
                len: data.len(),
                max,
            });
        }
        let size = layout::record_size(data.len() as u64);

        // 1. Reserve [start, end) with a CAS loop on the reserved position.
        let reserved = map.reserved();
        let mut start = reserved.load(Ordering::Relaxed);
        let (record_at, end) = loop {
            let offset = start % capacity;
            let record_at = if offset + size <= capacity {
                start
            } else {
                start + (capacity - offset)
            };
            let end = record_at + size;
            // Acquire: the consumer's reads of the space we are about to reuse happen before
            // its Release store of `consumed`, hence before our writes.
            let consumed = map.consumed().load(Ordering::Acquire);
            let free = (consumed + capacity).saturating_sub(start);
            if end - start > free {
                return Err(AppendError::Full {
                    needed: end - start,
                    free,
                });
            }
            match reserved.compare_exchange_weak(start, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break (record_at, end),
                Err(actual) => start = actual,
            }
        };
        debug_assert!(end > record_at);

        if stop == Some(StopAt::Reserved) {
            return Ok(record_at);
        }

        // 2. Fill the tail of the lap with a padding record if the record does not fit.
        if record_at != start {
            claim(map, start, layout::word(key, start, PADDING))?;
        }

        // 3. Claim the slot, write length, checksum and payload, commit with Release.
        claim(map, record_at, layout::word(key, record_at, CLAIMED))?;
        let offset = map.offset(record_at);
        let mut head = [0u8; (RECORD_HEADER - 8) as usize];
        head[..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&layout::payload_checksum(key, record_at, data).to_le_bytes());
        // SAFETY: [offset + 8, offset + size) lies in the ring (records never straddle the
        // lap end: offset + size <= capacity by construction above), it belongs to our
        // reservation, and we won the claim of its slot, so no other writer and not the
        // consumer (which reads only committed slots) accesses these bytes until our commit.
        unsafe {
            map.write_ring(offset + 8, &head);
            map.write_ring(offset + RECORD_HEADER, data);
        }

        if stop == Some(StopAt::Claimed) {
            return Ok(record_at);
        }

        map.state_word(record_at)
            .compare_exchange(
                layout::word(key, record_at, CLAIMED),
                layout::word(key, record_at, COMMITTED),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .map_err(|_| AppendError::Abandoned {
                position: record_at,
            })?;
        Ok(record_at)
    }
}

/// Claims the slot at `position` by replacing whatever stale word is there with `new`. Fails
/// if the consumer already abandoned it (it holds our tag).
fn claim(map: &JournalMap, position: u64, new: u64) -> Result<(), AppendError> {
    let word = map.state_word(position);
    let key = map.key();
    let mut current = word.load(Ordering::Relaxed);
    loop {
        if layout::classify(key, position, current) != Slot::Stale {
            // Only the consumer writes our tag into our slot before we do: it gave up on us.
            return Err(AppendError::Abandoned { position });
        }
        // Acquire keeps our payload writes after the claim.
        match word.compare_exchange(current, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(actual) => current = actual,
        }
    }
}

/// Test access to [`claim`]: a slow writer's late claim of its slot.
#[cfg(test)]
pub(crate) fn claim_for_test(writer: &JournalWriter, position: u64) -> Result<(), AppendError> {
    claim(
        &writer.map,
        position,
        layout::word(writer.map.key(), position, CLAIMED),
    )
}

/// Test access to the commit step: a stalled writer's late commit.
#[cfg(test)]
pub(crate) fn commit_for_test(writer: &JournalWriter, position: u64) -> Result<u64, u64> {
    let key = writer.map.key();
    writer.map.state_word(position).compare_exchange(
        layout::word(key, position, CLAIMED),
        layout::word(key, position, COMMITTED),
        Ordering::Release,
        Ordering::Relaxed,
    )
}
