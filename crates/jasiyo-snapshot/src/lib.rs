//! The subscriber snapshot: how `billing-daemon` hands subscriber state to `rlm_jasiyo`
//! inside radiusd without a database call on the request path.
//!
//! A snapshot directory holds:
//!
//! - `base-<generation>.snap`: a complete snapshot (plans, routers, every subscriber, hash
//!   indexes, strings) in the explicit little-endian layout of [`format`], checksummed.
//! - `subscribers.snap`: the newest file, either a hard link to the newest base or a small
//!   **overlay** on it carrying all plans and routers, the subscribers changed since that
//!   base and the ids of those changed or deleted. The daemon writes a base at start and when
//!   an overlay has grown large; every other change is an overlay, so a change costs in
//!   proportion to what changed, not to the number of subscribers.
//! - `generation`: one shared page holding the generation of the newest announced snapshot.
//!
//! Every snapshot file is **immutable**: the publisher writes a new one under a temporary
//! name, syncs it and renames it into place.
//!
//! # Synchronization
//!
//! There is one writer (the daemon's [`Publisher`]) and many readers (every radiusd worker
//! thread, through one [`SnapshotReader`] per module instance, possibly several processes).
//!
//! 1. **Publishing.** The publisher validates the new image, writes it to a temporary file,
//!    `fsync`s it, `rename`s it into place (a base under its own name, then linked over
//!    `subscribers.snap`; an overlay straight over `subscribers.snap`) and `fsync`s the
//!    directory. Only then
//!    does it store the new generation into the control page with `Release` ordering. Rename
//!    is atomic, so at every instant the path names either the old file or the new one,
//!    complete. A crash before the rename leaves only a stray temporary file; a crash after
//!    it but before the announcement leaves a newer file that readers pick up at the next
//!    announcement (the next publisher continues from the larger generation).
//! 2. **Noticing.** On every request a reader does one `Acquire` load of the shared
//!    generation and compares it with the generation it last handled (an atomic of its own).
//!    Equal: nothing to do. This is the whole cost of staying current.
//! 3. **Loading.** When the generation moved, one thread wins a `compare_exchange` on the
//!    reader's `loading` flag, opens `subscribers.snap`, maps it, and validates it completely
//!    (magic, version, length, checksum, every offset). An overlay on the base already
//!    mapped reuses that mapping; an overlay on a new base opens and validates
//!    `base-<generation>.snap` too. The publisher keeps the previous base file, so a reader
//!    that read an overlay just before a new base appeared still finds its base (and if it
//!    does not, it simply tries again on the next request). Threads that lose the race do not
//!    wait: they keep using the current snapshot. A file that fails validation is refused,
//!    logged by the caller, and the previous snapshot stays current; that generation is not
//!    retried. Because files are never modified after the rename, a mapping, once
//!    validated, stays valid: readers never see a torn or half-written snapshot.
//! 4. **Switching and releasing.** The new [`Snapshot`] is installed with
//!    [`arc_swap::ArcSwap::store`]. Requests take a [`SnapshotGuard`] with
//!    [`SnapshotReader::current`], a lock-free load, and use that one snapshot for their
//!    whole decision. The old mapping is unmapped when the last guard or `Arc` holding it is
//!    dropped, never while a reader still uses it; unlinking the old file by rename does
//!    not disturb an existing mapping.
//!
//! Nothing on the read path takes a lock or blocks; loading a new generation costs one
//! thread one `open` + `mmap` + checksum pass, off everybody else's path.
//!
//! # Permissions
//!
//! Snapshots contain clear-text passwords and router secrets. The directory is mode 0750 and
//! the files 0640, owned by the daemon's user with the group given to [`Publisher::open`]
//! (FreeRADIUS's `freerad`, which radiusd switches to before modules are instantiated).

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod builder;
mod control;
mod error;
pub mod format;
mod publish;
mod reader;
mod snapshot;
pub mod voucher;

pub use builder::{
    OverlayOf, PlanEntry, RouterEntry, Service, SubscriberEntry, SubscriberStatus, build_overlay,
    build_snapshot,
};
pub use error::{BuildError, PublishError, SnapshotError};
pub use publish::Publisher;
pub use reader::{Refresh, SnapshotGuard, SnapshotReader};
pub use snapshot::{LoadMode, PlanView, RouterView, Snapshot, SubscriberView};

/// Formats a MAC address the way RouterOS prints it: upper case, colon separated.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    std::format!("{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{f:02X}")
}

/// Parses a MAC address written with `:` or `-` separators (or none), any case.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let hex: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b':' && *b != b'-' && *b != b'.')
        .collect();
    if hex.len() != 12 || text.len() > 17 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, pair) in mac.iter_mut().zip(hex.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests;
