//! The generation control file: one page, mapped shared by the publisher (read-write) and by
//! every reader (read-only), holding the generation of the newest published snapshot.
//!
//! Layout: bytes 0..8 magic `JASIYOGN`, 8..12 version (LE u32), 16..24 the generation, a
//! native-endian `AtomicU64` (the file is machine-local by nature: it is shared memory).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::AtomicU64;

/// Size of the control file: one page.
pub(crate) const CONTROL_LEN: usize = 4096;
const CONTROL_MAGIC: [u8; 8] = *b"JASIYOGN";
const CONTROL_VERSION: u32 = 1;
const GENERATION_OFFSET: usize = 16;

/// A shared mapping of the control file. `MmapRaw` hands out raw pointers only, so no Rust
/// reference ever covers bytes that another process writes, except the `AtomicU64`.
pub(crate) struct ControlMap {
    map: memmap2::MmapRaw,
}

impl ControlMap {
    /// Maps `file` shared and read-only (readers).
    pub(crate) fn map_read_only(file: &File) -> std::io::Result<Self> {
        let map = memmap2::MmapOptions::new()
            .len(CONTROL_LEN)
            .map_raw_read_only(file)?;
        Ok(Self { map })
    }

    /// Maps `file` shared and read-write (the publisher).
    pub(crate) fn map_read_write(file: &File) -> std::io::Result<Self> {
        let map = memmap2::MmapOptions::new().len(CONTROL_LEN).map_raw(file)?;
        Ok(Self { map })
    }

    /// Writes the header of a freshly created control file (publisher only, before any
    /// reader can have mapped it: the file is created under a temporary name).
    pub(crate) fn initialize(&mut self) {
        let mut header = [0u8; 12];
        header[..8].copy_from_slice(&CONTROL_MAGIC);
        header[8..].copy_from_slice(&CONTROL_VERSION.to_le_bytes());
        // SAFETY: the mapping is read-write (only the publisher calls this, on a map from
        // `map_read_write`) and CONTROL_LEN >= 12 bytes long; nobody else has the file yet.
        unsafe {
            std::ptr::copy_nonoverlapping(header.as_ptr(), self.map.as_mut_ptr(), header.len());
        }
    }

    /// Whether the header says this is our control file.
    pub(crate) fn is_valid(&self) -> bool {
        if self.map.len() < CONTROL_LEN {
            return false;
        }
        let mut header = [0u8; 12];
        // SAFETY: the mapping is at least CONTROL_LEN bytes, so the first 12 are readable.
        // The header is written once, before the file is renamed into place, and never
        // changes afterwards, so this plain read does not race with a writer.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr(), header.as_mut_ptr(), 12) };
        header[..8] == CONTROL_MAGIC && header[8..] == CONTROL_VERSION.to_le_bytes()
    }

    /// The shared generation counter.
    pub(crate) fn generation(&self) -> &AtomicU64 {
        // SAFETY: the mapping is CONTROL_LEN (4096) bytes and page-aligned, so offset 16 is
        // in bounds and 8-byte aligned, as `AtomicU64` requires. `AtomicU64` has the size
        // and bit validity of `u64`, and every bit pattern is a valid `u64`. The reference
        // lives no longer than `&self`, which owns the mapping. All concurrent access, from
        // this or other processes, goes through atomic instructions on this word; 64-bit
        // atomics are lock-free and address-free on the targets allowed below, so they
        // synchronise across processes sharing the page. The pointer comes from `MmapRaw`,
        // not from a shared reference, so writes through the atomic are permitted.
        unsafe {
            &*self
                .map
                .as_mut_ptr()
                .add(GENERATION_OFFSET)
                .cast::<AtomicU64>()
        }
    }
}

/// Path of the control file in `dir`.
pub(crate) fn control_path(dir: &Path) -> std::path::PathBuf {
    dir.join("generation")
}

/// Name of the snapshot file in `dir`.
pub(crate) fn snapshot_path(dir: &Path) -> std::path::PathBuf {
    dir.join("subscribers.snap")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the shared generation counter assumes lock-free, address-free 64-bit atomics");
