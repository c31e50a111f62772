//! The shared mapping of a journal file. All `unsafe` of the crate is here. `MmapRaw` hands
//! out raw pointers only, so no Rust reference ever covers bytes another process writes,
//! except the `AtomicU64`s (header positions and record state words).

use std::fs::File;
use std::sync::atomic::AtomicU64;

use crate::layout::{
    self, ALIGN, HEADER_LEN, HeaderProblem, OFF_ABANDONED, OFF_CONSUMED, OFF_RESERVED, STATIC_LEN,
    StaticHeader,
};

/// A validated, shared, read-write mapping of a whole journal file.
pub(crate) struct JournalMap {
    map: memmap2::MmapRaw,
    capacity: u64,
    key: u64,
}

impl JournalMap {
    /// Maps `file` (of `file_len` bytes) and validates its header.
    pub(crate) fn open(file: &File, file_len: u64) -> Result<Self, MapError> {
        if file_len < HEADER_LEN as u64 || usize::try_from(file_len).is_err() {
            return Err(MapError::Header(HeaderProblem::NotAJournal));
        }
        let map = memmap2::MmapOptions::new()
            .len(file_len as usize)
            .populate()
            .map_raw(file)
            .map_err(MapError::Io)?;
        if map.len() as u64 != file_len {
            return Err(MapError::Header(HeaderProblem::Corrupt("short mapping")));
        }
        let mut header = [0u8; STATIC_LEN];
        // SAFETY: the mapping is at least HEADER_LEN >= STATIC_LEN bytes (checked above), so
        // the first STATIC_LEN bytes are readable; `header` is a distinct local buffer. The
        // static header is written once, before the file is renamed into place, and never
        // changes afterwards, so this plain read does not race with any writer.
        unsafe { std::ptr::copy_nonoverlapping(map.as_ptr(), header.as_mut_ptr(), STATIC_LEN) };
        let StaticHeader { capacity, key } =
            layout::decode_static(&header, file_len).map_err(MapError::Header)?;
        Ok(Self { map, capacity, key })
    }

    /// Writes the header of a freshly created file of HEADER_LEN + `capacity` bytes that
    /// nobody else can have opened yet (it still has its temporary name), then maps it.
    pub(crate) fn initialize(file: &File, capacity: u64, key: u64) -> Result<Self, MapError> {
        let len = HEADER_LEN as u64 + capacity;
        let map = memmap2::MmapOptions::new()
            .len(
                usize::try_from(len)
                    .map_err(|_| MapError::Header(HeaderProblem::Corrupt("too large")))?,
            )
            .map_raw(file)
            .map_err(MapError::Io)?;
        let header = layout::encode_static(capacity, key);
        // SAFETY: the mapping is HEADER_LEN + capacity >= STATIC_LEN bytes and read-write;
        // the file is not yet visible under its final name, so no other process maps it.
        unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), map.as_mut_ptr(), STATIC_LEN) };
        // The positions (zero, from set_len/fallocate) are already consistent.
        map.flush().map_err(MapError::Io)?;
        Ok(Self { map, capacity, key })
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// The atomic at byte `offset` of the mapping.
    ///
    /// Callers pass header offsets of the positions, or HEADER_LEN + an 8-aligned ring offset,
    /// so this stays private and is only used through the accessors below.
    fn atomic_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % ALIGN as usize == 0 && offset + 8 <= self.map.len());
        // SAFETY: `offset + 8 <= len` (asserted), and the mapping is page-aligned so the
        // 8-aligned `offset` gives an 8-aligned address, as `AtomicU64` requires. `AtomicU64`
        // has the size and bit validity of `u64`, and every bit pattern is a valid `u64`. The
        // reference lives no longer than `&self`, which owns the mapping. Every concurrent
        // access to these 8 bytes, from this or another process, is an atomic instruction on
        // this word (writers and the consumer only touch state words and positions through
        // this accessor, and payload copies never overlap a state word of a live slot — see
        // the synchronization argument in lib.rs); 64-bit atomics are lock-free and
        // address-free on the targets allowed below, so they synchronise across processes
        // sharing the page. The pointer comes from `MmapRaw::as_mut_ptr`, not from a shared
        // reference, so writing through the atomic is permitted.
        unsafe { &*self.map.as_mut_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The reserved position (end of the last reservation).
    pub(crate) fn reserved(&self) -> &AtomicU64 {
        self.atomic_at(OFF_RESERVED)
    }

    /// The consumed position (everything before it is in the consumer's store).
    pub(crate) fn consumed(&self) -> &AtomicU64 {
        self.atomic_at(OFF_CONSUMED)
    }

    /// Count of gaps the consumer skipped, ever (a statistic).
    pub(crate) fn abandoned_total(&self) -> &AtomicU64 {
        self.atomic_at(OFF_ABANDONED)
    }

    /// Ring offset of `position`.
    pub(crate) fn offset(&self, position: u64) -> u64 {
        position % self.capacity
    }

    /// The state word of the slot at `position` (8-aligned).
    pub(crate) fn state_word(&self, position: u64) -> &AtomicU64 {
        self.atomic_at(HEADER_LEN + self.offset(position) as usize)
    }

    /// Copies `bytes` into the ring at `offset`.
    ///
    /// # Safety
    ///
    /// `offset + bytes.len() <= capacity`, and the caller owns these ring bytes under the
    /// journal protocol: a writer that reserved them and won the claim of their slot, so no
    /// other thread or process reads or writes them until the slot's commit is published.
    pub(crate) unsafe fn write_ring(&self, offset: u64, bytes: &[u8]) {
        debug_assert!(offset + bytes.len() as u64 <= self.capacity);
        // SAFETY: in bounds by the caller's contract (HEADER_LEN + offset + len <= map len);
        // the destination is in the shared mapping, the source a distinct Rust slice, so they
        // do not overlap; exclusive access to the destination is the caller's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().add(HEADER_LEN + offset as usize),
                bytes.len(),
            );
        }
    }

    /// Copies `len` bytes of the ring at `offset` out.
    ///
    /// # Safety
    ///
    /// `offset + len <= capacity`, and the bytes belong to a slot whose commit the caller
    /// observed with `Acquire` and which no writer may reuse before the caller advances the
    /// consumed position past it.
    pub(crate) unsafe fn read_ring(&self, offset: u64, len: usize) -> Vec<u8> {
        debug_assert!(offset + len as u64 <= self.capacity);
        let mut out = vec![0u8; len];
        // SAFETY: in bounds by the caller's contract; `out` is a fresh buffer of `len`
        // bytes that cannot overlap the mapping; nobody writes the source bytes while we copy
        // them, by the caller's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(HEADER_LEN + offset as usize),
                out.as_mut_ptr(),
                len,
            );
        }
        out
    }

    /// Makes the header page (and so the consumed position) durable.
    pub(crate) fn flush_header(&self) -> std::io::Result<()> {
        self.map.flush_range(0, HEADER_LEN)
    }
}

/// Mapping failures, turned into [`crate::OpenError`] by the callers.
#[derive(Debug)]
pub(crate) enum MapError {
    Io(std::io::Error),
    Header(HeaderProblem),
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the journal assumes lock-free, address-free 64-bit atomics");
