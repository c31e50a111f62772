//! The journal file layout and the encoding of a record's state word. Safe code only: the
//! shared mapping itself lives in [`crate::map`].
//!
//! ```text
//! header page (HEADER_LEN bytes)
//!   0..8     magic "JASIYOJL"
//!   8..12    version (LE u32)
//!   12..16   header length (LE u32, = HEADER_LEN)
//!   16..24   ring capacity in bytes (LE u64)
//!   24..32   key (LE u64, random per file, low 3 bits zero)
//!   32..56   zero
//!   56..64   xxh3-64 of bytes 0..56 (LE u64)
//!   64..72   reserved position   (native AtomicU64, own cache line)
//!   128..136 consumed position   (native AtomicU64, own cache line)
//!   192..200 abandoned gaps, a statistic (native AtomicU64)
//! ring (capacity bytes): records at 8-byte aligned offsets
//!   +0   state word (native AtomicU64): tag(position) | state
//!   +8   payload length (LE u32)
//!   +12  checksum: low 32 bits of xxh3-64(payload, seed = position ^ key) (LE u32)
//!   +16  payload, then zero to seven bytes of alignment
//! ```
//!
//! Positions are absolute byte counts since the journal was created; the ring offset of a
//! position is `position % capacity`. They are u64 and never wrap in practice (at 1 GB/s it
//! takes 584 years).

/// Size of the header page.
pub(crate) const HEADER_LEN: usize = 4096;
/// File magic.
pub(crate) const MAGIC: [u8; 8] = *b"JASIYOJL";
/// Layout version; bumped on any incompatible change.
pub(crate) const VERSION: u32 = 1;

pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_HEADER_LEN: usize = 12;
pub(crate) const OFF_CAPACITY: usize = 16;
pub(crate) const OFF_KEY: usize = 24;
pub(crate) const OFF_CHECKSUM: usize = 56;
pub(crate) const STATIC_LEN: usize = 64;
pub(crate) const OFF_RESERVED: usize = 64;
pub(crate) const OFF_CONSUMED: usize = 128;
pub(crate) const OFF_ABANDONED: usize = 192;

/// Smallest ring, and the granularity of ring sizes.
pub const MIN_CAPACITY: u64 = 4096;
/// Largest ring (1 TiB).
pub const MAX_CAPACITY: u64 = 1 << 40;

/// Record alignment.
pub(crate) const ALIGN: u64 = 8;
/// Record header: state word, length, checksum.
pub(crate) const RECORD_HEADER: u64 = 16;

/// Low bits of a state word.
pub(crate) const STATE_MASK: u64 = 0b111;
/// A writer owns the slot and is writing it.
pub(crate) const CLAIMED: u64 = 0b001;
/// The record is complete.
pub(crate) const COMMITTED: u64 = 0b011;
/// The rest of this lap is padding (complete).
pub(crate) const PADDING: u64 = 0b111;
/// The consumer gave up on this word (a dead or stalled writer, or corruption).
pub(crate) const ABANDONED: u64 = 0b101;

/// What a state word says about the slot at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Not (yet) claimed in this lap: stale bytes of an earlier lap, of another file, or zero.
    Stale,
    Claimed,
    Committed,
    Padding,
    Abandoned,
}

/// The tag of `position` in a file with `key`: unique per position, and unguessable without
/// the key, so neither a previous lap's header nor payload bytes can pass for it.
pub(crate) fn tag(key: u64, position: u64) -> u64 {
    (position ^ key) & !STATE_MASK
}

/// The state word a slot at `position` holds in state `state`.
pub(crate) fn word(key: u64, position: u64, state: u64) -> u64 {
    tag(key, position) | state
}

/// Decodes a state word read at `position`.
pub(crate) fn classify(key: u64, position: u64, word: u64) -> Slot {
    if word & !STATE_MASK != tag(key, position) {
        return Slot::Stale;
    }
    match word & STATE_MASK {
        CLAIMED => Slot::Claimed,
        COMMITTED => Slot::Committed,
        PADDING => Slot::Padding,
        ABANDONED => Slot::Abandoned,
        _ => Slot::Stale,
    }
}

/// Rounds up to the record alignment.
pub(crate) fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// Bytes a record with a payload of `len` bytes occupies in the ring.
pub(crate) fn record_size(len: u64) -> u64 {
    align_up(RECORD_HEADER + len)
}

/// Largest payload a ring of `capacity` accepts: a record plus the worst-case padding in
/// front of it still fits in an empty ring.
pub(crate) fn max_payload(capacity: u64) -> u64 {
    (capacity / 2 - RECORD_HEADER).min(u64::from(u32::MAX))
}

/// Whether `capacity` is an allowed ring size.
pub(crate) fn valid_capacity(capacity: u64) -> bool {
    (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) && capacity % MIN_CAPACITY == 0
}

/// Checksum of a record's payload, bound to its position.
pub(crate) fn payload_checksum(key: u64, position: u64, payload: &[u8]) -> u32 {
    // Truncation intended: 32 bits detect torn records after a machine crash.
    (xxhash_rust::xxh3::xxh3_64_with_seed(payload, position ^ key) & 0xffff_ffff) as u32
}

/// Encodes the immutable part of the header.
pub(crate) fn encode_static(capacity: u64, key: u64) -> [u8; STATIC_LEN] {
    let mut h = [0u8; STATIC_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
    h[OFF_HEADER_LEN..OFF_HEADER_LEN + 4].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[OFF_CAPACITY..OFF_CAPACITY + 8].copy_from_slice(&capacity.to_le_bytes());
    h[OFF_KEY..OFF_KEY + 8].copy_from_slice(&key.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..OFF_CHECKSUM]);
    h[OFF_CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
    h
}

/// The validated immutable header fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaticHeader {
    pub(crate) capacity: u64,
    pub(crate) key: u64,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    NotAJournal,
    Version(u32),
    Corrupt(&'static str),
}

/// The LE u32 at `at` (constant offsets inside the static header).
fn le_u32(h: &[u8; STATIC_LEN], at: usize) -> u32 {
    h.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

/// The LE u64 at `at` (constant offsets inside the static header).
fn le_u64(h: &[u8; STATIC_LEN], at: usize) -> u64 {
    h.get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Validates the immutable header of a file of `file_len` bytes.
pub(crate) fn decode_static(
    h: &[u8; STATIC_LEN],
    file_len: u64,
) -> Result<StaticHeader, HeaderProblem> {
    if h[..8] != MAGIC {
        return Err(HeaderProblem::NotAJournal);
    }
    let version = le_u32(h, OFF_VERSION);
    if version != VERSION {
        return Err(HeaderProblem::Version(version));
    }
    if le_u64(h, OFF_CHECKSUM) != xxhash_rust::xxh3::xxh3_64(&h[..OFF_CHECKSUM]) {
        return Err(HeaderProblem::Corrupt("header checksum mismatch"));
    }
    if le_u32(h, OFF_HEADER_LEN) as usize != HEADER_LEN {
        return Err(HeaderProblem::Corrupt("unexpected header length"));
    }
    let capacity = le_u64(h, OFF_CAPACITY);
    if !valid_capacity(capacity) {
        return Err(HeaderProblem::Corrupt("invalid capacity"));
    }
    if file_len != HEADER_LEN as u64 + capacity {
        return Err(HeaderProblem::Corrupt(
            "file length does not match capacity",
        ));
    }
    let key = le_u64(h, OFF_KEY);
    if key & STATE_MASK != 0 {
        return Err(HeaderProblem::Corrupt("invalid key"));
    }
    Ok(StaticHeader { capacity, key })
}

/// Whether the shared positions are consistent: `consumed <= reserved <= consumed + capacity`,
/// both aligned.
pub(crate) fn positions_consistent(capacity: u64, consumed: u64, reserved: u64) -> bool {
    consumed % ALIGN == 0
        && reserved % ALIGN == 0
        && consumed <= reserved
        && reserved - consumed <= capacity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_distinct_and_never_zero() {
        let key = 0xdead_beef_0000_0000;
        for state in [CLAIMED, COMMITTED, PADDING, ABANDONED] {
            assert_ne!(word(key, 0, state), 0);
        }
        assert_eq!(classify(key, 64, word(key, 64, COMMITTED)), Slot::Committed);
        assert_eq!(
            classify(key, 64 + 4096, word(key, 64, COMMITTED)),
            Slot::Stale
        );
        assert_eq!(classify(key, 64, 0), Slot::Stale);
    }

    #[test]
    fn header_round_trip() {
        let h = encode_static(8192, 0x1234_5678_9abc_def0 & !STATE_MASK);
        let s = decode_static(&h, 4096 + 8192).unwrap();
        assert_eq!(s.capacity, 8192);
        assert!(decode_static(&h, 4096 + 4096).is_err());
    }

    #[test]
    fn record_sizes() {
        assert_eq!(record_size(0), 16);
        assert_eq!(record_size(1), 24);
        assert_eq!(record_size(8), 24);
        assert_eq!(max_payload(4096), 2032);
    }
}
