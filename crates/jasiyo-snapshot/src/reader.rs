//! Reading snapshots (the module side). See the crate documentation for the synchronization
//! argument.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::control::{ControlMap, control_path, snapshot_path};
use crate::error::SnapshotError;
use crate::snapshot::{LoadMode, Snapshot};

/// A borrowed handle on the current snapshot; cheap, lock-free, and keeps that snapshot's
/// mapping alive until dropped.
pub type SnapshotGuard = arc_swap::Guard<Arc<Snapshot>>;

/// What [`SnapshotReader::refresh`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Refresh {
    /// No newer snapshot was announced (or another thread is loading it).
    Unchanged,
    /// A newer snapshot was loaded and is now current.
    Loaded {
        /// Its generation.
        generation: u64,
    },
    /// A newer snapshot was announced but refused; the previous one stays current and this
    /// generation is not tried again.
    Refused {
        /// The announced generation.
        generation: u64,
        /// Why it was refused.
        error: SnapshotError,
    },
}

/// Follows the snapshots published into one directory. One per module instance.
pub struct SnapshotReader {
    snapshot_path: PathBuf,
    mode: LoadMode,
    control: ControlMap,
    current: ArcSwap<Snapshot>,
    /// The last announced generation this reader has acted on (loaded or refused).
    handled_generation: AtomicU64,
    /// Set while one thread loads a new snapshot; others carry on with the current one.
    loading: AtomicBool,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("snapshot_path", &self.snapshot_path)
            .field("current", &self.current.load().generation())
            .finish_non_exhaustive()
    }
}

impl SnapshotReader {
    /// Opens the snapshot directory `dir` written by a [`crate::Publisher`].
    ///
    /// Fails if the control file or the snapshot is missing or invalid: a RADIUS server
    /// without subscriber data should not start.
    pub fn open(dir: &Path) -> Result<Self, SnapshotError> {
        Self::open_with(dir, LoadMode::Auto)
    }

    /// Like [`Self::open`], holding the files as `mode` says (for example
    /// [`LoadMode::Map`] for a reader that only needs routers).
    pub fn open_with(dir: &Path, mode: LoadMode) -> Result<Self, SnapshotError> {
        let control_file = control_path(dir);
        let file = File::open(&control_file).map_err(|source| SnapshotError::Io {
            action: "opening",
            path: control_file.clone(),
            source,
        })?;
        let control = ControlMap::map_read_only(&file).map_err(|source| SnapshotError::Io {
            action: "mapping",
            path: control_file.clone(),
            source,
        })?;
        if !control.is_valid() {
            return Err(SnapshotError::BadControlFile(control_file));
        }
        // Read the announcement before opening the file: the file is at least that new.
        let announced = control.generation().load(Ordering::Acquire);
        let snapshot_path = snapshot_path(dir);
        let snapshot = Snapshot::open_with(&snapshot_path, mode)?;
        Ok(Self {
            snapshot_path,
            mode,
            control,
            current: ArcSwap::from_pointee(snapshot),
            handled_generation: AtomicU64::new(announced),
            loading: AtomicBool::new(false),
        })
    }

    /// Checks for a newer snapshot and loads it if there is one.
    ///
    /// The common case is one atomic load of the shared generation. Loading is done by at
    /// most one thread at a time; the others return [`Refresh::Unchanged`] at once and keep
    /// answering from the current snapshot, so this never blocks.
    pub fn refresh(&self) -> Refresh {
        let announced = self.control.generation().load(Ordering::Acquire);
        if announced == self.handled_generation.load(Ordering::Acquire) {
            return Refresh::Unchanged;
        }
        if self
            .loading
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Refresh::Unchanged;
        }
        let outcome = self.load_announced(announced);
        self.loading.store(false, Ordering::Release);
        outcome
    }

    fn load_announced(&self, announced: u64) -> Refresh {
        // Another thread may have handled it between our check and taking the flag.
        if announced == self.handled_generation.load(Ordering::Acquire) {
            return Refresh::Unchanged;
        }
        let current = self.current.load();
        if announced <= current.generation() {
            // Already current: the file was loaded before its announcement arrived.
            self.handled_generation.store(announced, Ordering::Release);
            return Refresh::Unchanged;
        }
        let outcome = match Snapshot::open_reusing(&self.snapshot_path, Some(&current), self.mode) {
            Ok(snapshot) if snapshot.generation() >= announced => {
                let generation = snapshot.generation();
                self.current.store(Arc::new(snapshot));
                Refresh::Loaded { generation }
            }
            // The file in place is older than what was announced: the publisher renames
            // before announcing, so someone else replaced the file. Keep what we have.
            Ok(_) => Refresh::Refused {
                generation: announced,
                error: SnapshotError::Malformed("file is older than its announcement"),
            },
            // A base removed between reading the overlay and opening the base: a newer
            // publication is already in place; try again on the next request.
            Err(SnapshotError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Refresh::Unchanged;
            }
            Err(error) => Refresh::Refused {
                generation: announced,
                error,
            },
        };
        self.handled_generation.store(announced, Ordering::Release);
        outcome
    }

    /// The current snapshot. Lock-free; the returned guard keeps it mapped while held.
    /// Requests should hold one guard for their whole decision so they see one snapshot.
    pub fn current(&self) -> SnapshotGuard {
        self.current.load()
    }
}
