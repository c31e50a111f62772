//! Publishing snapshots (the daemon side).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::control::{CONTROL_LEN, ControlMap, control_path, snapshot_path};
use crate::error::PublishError;
use crate::format;
use crate::snapshot::{LoadMode, SnapshotFile};

/// Mode of the snapshot directory: the daemon's user writes, the group (freerad) reads.
const DIR_MODE: u32 = 0o750;
/// Mode of the snapshot and control files.
const FILE_MODE: u32 = 0o640;

/// Writes snapshots into a directory and announces them through the control file.
///
/// There must be one publisher per directory; the daemon holds it for its lifetime.
pub struct Publisher {
    dir: PathBuf,
    group: Option<u32>,
    control: ControlMap,
    last_generation: u64,
    /// Generation of the base in place, which overlays must name.
    base_generation: Option<u64>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("dir", &self.dir)
            .field("last_generation", &self.last_generation)
            .finish_non_exhaustive()
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
    let path = path.to_owned();
    move |source| PublishError::Io {
        action,
        path,
        source,
    }
}

/// Gives `file` to `group` (if any) and sets `mode`.
fn set_owner_and_mode(
    path: &Path,
    file: &File,
    group: Option<u32>,
    mode: u32,
) -> Result<(), PublishError> {
    if let Some(gid) = group {
        std::os::unix::fs::fchown(file, None, Some(gid))
            .map_err(io_error("changing group of", path))?;
    }
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(io_error("setting mode of", path))
}

fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing directory", dir))
}

impl Publisher {
    /// Opens `dir` for publishing, creating it and its control file if needed.
    ///
    /// `group` is the group id that may read the snapshots (FreeRADIUS's `freerad`); the
    /// directory becomes mode 0750 and the files 0640, so nobody else can read passwords.
    pub fn open(dir: &Path, group: Option<u32>) -> Result<Self, PublishError> {
        fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
        let dir_handle = File::open(dir).map_err(io_error("opening", dir))?;
        set_owner_and_mode(dir, &dir_handle, group, DIR_MODE)?;

        let control_file = control_path(dir);
        let control = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(&control_file)
        {
            Ok(file) => {
                set_owner_and_mode(&control_file, &file, group, FILE_MODE)?;
                let control = ControlMap::map_read_write(&file)
                    .map_err(io_error("mapping", &control_file))?;
                if file.metadata().map(|m| m.len()).unwrap_or(0) < CONTROL_LEN as u64
                    || !control.is_valid()
                {
                    return Err(PublishError::BadControlFile(control_file));
                }
                control
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Self::create_control(dir, &control_file, group)?
            }
            Err(error) => return Err(io_error("opening", &control_file)(error)),
        };

        // Continue after whatever was published before, even if the daemon crashed between
        // renaming a snapshot into place and announcing it.
        let announced = control.generation().load(Ordering::Acquire);
        let head = SnapshotFile::open(&snapshot_path(dir), LoadMode::Map).ok();
        let on_disk = head.as_ref().map_or(0, SnapshotFile::generation);
        // Overlays may only follow a base that is still on disk.
        let base_generation = head
            .map(|h| match h.base_generation() {
                0 => h.generation(),
                base => base,
            })
            .filter(|base| dir.join(format::base_file_name(*base)).exists());
        Ok(Self {
            dir: dir.to_owned(),
            group,
            control,
            last_generation: announced.max(on_disk),
            base_generation,
        })
    }

    /// Creates the control file under a temporary name and renames it into place, so that a
    /// reader never maps a half-initialised one.
    fn create_control(
        dir: &Path,
        path: &Path,
        group: Option<u32>,
    ) -> Result<ControlMap, PublishError> {
        let temporary = dir.join(format!(".generation.tmp-{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&temporary)
            .map_err(io_error("creating", &temporary))?;
        set_owner_and_mode(&temporary, &file, group, FILE_MODE)?;
        file.set_len(CONTROL_LEN as u64)
            .map_err(io_error("sizing", &temporary))?;
        let mut control =
            ControlMap::map_read_write(&file).map_err(io_error("mapping", &temporary))?;
        control.initialize();
        file.sync_all().map_err(io_error("syncing", &temporary))?;
        fs::rename(&temporary, path).map_err(io_error("renaming into place", path))?;
        sync_dir(dir)?;
        Ok(control)
    }

    /// The generation the next snapshot must carry.
    pub fn next_generation(&self) -> u64 {
        self.last_generation + 1
    }

    /// The base generation overlays must be built on ([`crate::OverlayOf::base_generation`]);
    /// `None` until a base has been published, when the next publication must be a base.
    pub fn base_generation(&self) -> Option<u64> {
        self.base_generation
    }

    /// Publishes a base built by [`crate::build_snapshot`] or an overlay built by
    /// [`crate::build_overlay`], with [`Self::next_generation`].
    ///
    /// The bytes are checked, written to a temporary file, synced, and renamed into place
    /// (atomic: a reader opens either the old file or the new one, whole), and only then
    /// announced by storing the generation (Release) in the control file. A base is written
    /// as `base-<generation>.snap` and linked as `subscribers.snap`; an overlay replaces
    /// `subscribers.snap` only. A crash at any point leaves readers on the last announced
    /// snapshot.
    pub fn publish(&mut self, snapshot_bytes: &[u8]) -> Result<u64, PublishError> {
        let head = snapshot_path(&self.dir);
        let head_temporary = self.temporary("subscribers.snap");
        let base_temporary = self.temporary("base.snap");
        let is_base = snapshot_bytes
            .get(format::BASE_GENERATION_OFFSET..format::BASE_GENERATION_OFFSET + 8)
            .is_some_and(|b| b.iter().all(|&byte| byte == 0));
        let written = if is_base {
            &base_temporary
        } else {
            &head_temporary
        };
        self.write_synced(written, snapshot_bytes)?;
        // Validate what is on disk, as a reader will see it (and without copying the image).
        let (generation, base) = match self.check_written(written) {
            Ok(ids) => ids,
            Err(error) => {
                let _ = fs::remove_file(written);
                return Err(error);
            }
        };

        if base == 0 {
            let base_path = self.dir.join(format::base_file_name(generation));
            fs::rename(&base_temporary, &base_path)
                .map_err(io_error("renaming into place", &base_path))?;
            let _ = fs::remove_file(&head_temporary);
            fs::hard_link(&base_path, &head_temporary)
                .map_err(io_error("linking", &head_temporary))?;
        }
        fs::rename(&head_temporary, &head).map_err(io_error("renaming into place", &head))?;
        sync_dir(&self.dir)?;

        self.control
            .generation()
            .store(generation, Ordering::Release);
        self.last_generation = generation;
        if base == 0 {
            let previous = self.base_generation.replace(generation);
            self.remove_old_bases(previous);
        }
        Ok(generation)
    }

    /// Validates a written temporary file and checks it may follow what is published:
    /// returns its generation and base generation.
    fn check_written(&self, path: &Path) -> Result<(u64, u64), PublishError> {
        let file = SnapshotFile::open(path, LoadMode::Map)?;
        let (generation, base) = (file.generation(), file.base_generation());
        if generation != self.next_generation() {
            return Err(PublishError::WrongGeneration {
                expected: self.next_generation(),
                found: generation,
            });
        }
        if base != 0 && Some(base) != self.base_generation {
            return Err(PublishError::WrongBase {
                expected: self.base_generation,
                found: base,
            });
        }
        Ok((generation, base))
    }

    fn temporary(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.tmp-{}", std::process::id()))
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(io_error("creating", path))?;
        set_owner_and_mode(path, &file, self.group, FILE_MODE)?;
        file.write_all(bytes).map_err(io_error("writing", path))?;
        file.sync_all().map_err(io_error("syncing", path))
    }

    /// Removes base files older than the previous base. The previous one stays, for readers
    /// that saw an overlay on it just before the new base was announced; mappings of removed
    /// files stay valid for readers still holding them.
    fn remove_old_bases(&self, previous: Option<u64>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let keep = [self.base_generation, previous];
        for entry in entries.flatten() {
            let name = entry.file_name();
            let generation = name
                .to_str()
                .and_then(|n| n.strip_prefix("base-"))
                .and_then(|n| n.strip_suffix(".snap"))
                .and_then(|n| n.parse::<u64>().ok());
            if generation.is_some_and(|g| !keep.contains(&Some(g))) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}
