//! The voucher key file: read it, or create it on first start.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use jasiyo_snapshot::voucher::{VoucherKey, VoucherKeyError};
use rand::TryRngCore;

/// Mode of a created key file: radiusd (the group) reads it, nobody else.
const KEY_FILE_MODE: u32 = 0o640;

/// Whether [`load_or_create`] found the file or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// It was there.
    Existing,
    /// It was missing and has been created.
    Created,
}

/// Reads the key file at `path`; if there is none, creates it with 32 bytes from the OS
/// CSPRNG (mode 0640, group `group` so radiusd can read it, its directory as the journal's).
/// A file that exists but is malformed or unreadable is an error, never replaced: the codes
/// already sold were derived from it.
pub fn load_or_create(path: &Path, group: Option<u32>) -> anyhow::Result<(VoucherKey, KeyOrigin)> {
    match VoucherKey::load(path) {
        Ok(key) => return Ok((key, KeyOrigin::Existing)),
        Err(VoucherKeyError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(anyhow::Error::new(e).context(
                "refusing to start: fix or restore the voucher key file (every voucher code \
                 sold depends on it; a new key would invalidate them all)",
            ));
        }
    }
    crate::accounting::consumer::create_dir(path, group)?;
    let mut master = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut master)
        .context("reading the OS random number generator")?;
    // Written to a private temporary name, then linked into place: a crash never leaves a
    // half-written key file, and two daemons starting at once agree on one key.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(KEY_FILE_MODE)
            .open(&tmp)?;
        if let Some(gid) = group {
            std::os::unix::fs::fchown(&f, None, Some(gid))?;
        }
        // The umask may have narrowed the mode.
        f.set_permissions(std::fs::Permissions::from_mode(KEY_FILE_MODE))?;
        writeln!(f, "{}", hex::encode(master))?;
        f.sync_all()
    };
    let linked = write().and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        // Another process created it meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = VoucherKey::load(path)?;
            return Ok((key, KeyOrigin::Existing));
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("creating the voucher key file {}", path.display()));
        }
    }
    Ok((VoucherKey::from_bytes(&master), KeyOrigin::Created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/voucher.key");
        let (a, origin) = load_or_create(&path, None).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, KEY_FILE_MODE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        let (b, origin) = load_or_create(&path, None).unwrap();
        assert_eq!(origin, KeyOrigin::Existing);
        assert_eq!(a.lookup_name("ACEF3467"), b.lookup_name("ACEF3467"));
        assert_eq!(a.print_key(), b.print_key());
        // No temporary file left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_malformed_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voucher.key");
        std::fs::write(&path, "not a key\n").unwrap();
        let e = load_or_create(&path, None).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("64 hex digits"), "{msg}");
        assert!(msg.contains("refusing to start"), "{msg}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key\n");
    }

    #[test]
    fn an_unreadable_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let e = load_or_create(dir.path(), None).unwrap_err();
        assert!(format!("{e:#}").contains("refusing to start"));
    }
}
