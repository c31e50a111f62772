//! The on-disk layout, version 3 (version 1 had no allowances of time, FUP rate,
//! simultaneous-use limit or open-session count; version 2 no plan duration, no unused-voucher
//! flag, and 32 inline bytes, too few for a voucher's 33-byte lookup name).
//!
//! ```text
//! +--------------------+ 0
//! | Header (256 bytes) |   magic, version, generation, file length, checksum, section table
//! +--------------------+
//! | plans              |   [PlanRecord; n]        sorted by id
//! | routers            |   [RouterRecord; n]      sorted by (family, address)
//! | subscribers        |   [SubscriberRecord; n]
//! | username index     |   [u64; 2^k]             open addressing, xxh3-64 of the username
//! | MAC index          |   [u64; 2^k]             open addressing, xxh3-64 of the 6 MAC bytes
//! |                    |                          (MAC logins only: not vouchers' bound MACs)
//! | strings            |   bytes referenced by StrRef {offset, len}
//! | overridden ids     |   [i64; n]               sorted; overlays only (see below)
//! +--------------------+ file_len
//! ```
//!
//! Every integer is little-endian and every struct is `repr(C)` with alignment 1 (zerocopy's
//! byte-order types), so the layout depends on neither the compiler version nor the host.
//! Sizes are pinned by compile-time assertions. An index slot holds `record index + 1` in its
//! low 32 bits (0: empty) and the top 32 bits of the key's hash as a tag in its high 32 bits;
//! lookups probe linearly from `hash & (len - 1)` and only look at records whose tag matches.
//! Usernames and passwords that fit in [`INLINE_LEN`] bytes together live inside their record.
//! Both keep a hit at two dependent memory reads (slot, record), which is what a lookup in a
//! 100 MB mapping costs: cache and TLB misses, not instructions.
//!
//! A file is either a **base** (`base_generation == 0`: every subscriber) or an **overlay** on
//! the base whose generation it names: all plans and routers, the subscribers changed since
//! that base, and the sorted ids of every subscriber changed or deleted since it. A lookup
//! consults the overlay first, then the base, ignoring base records whose id the overlay
//! overrides. Overlays keep a change at a million subscribers down to a small file.
//!
//! The checksum is xxh3-64 over the whole file with the checksum field itself skipped. It
//! detects truncation and corruption, not tampering: the file is only writable by the
//! daemon's user.

use zerocopy::little_endian::{I64, U16, U32, U64};

/// Name of a base file in the snapshot directory.
pub fn base_file_name(generation: u64) -> String {
    format!("base-{generation}.snap")
}
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// First eight bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"JASIYOSN";
/// The format version this crate reads and writes. Any other value is refused.
pub const VERSION: u32 = 3;
/// Size of [`Header`] in bytes.
pub const HEADER_LEN: usize = 256;
/// Byte offset of [`Header::checksum`], skipped when hashing.
pub const CHECKSUM_OFFSET: usize = 40;
/// Byte offset of [`Header::base_generation`] (0 in a base).
pub const BASE_GENERATION_OFFSET: usize = 48;
/// Smallest index table, so that an empty snapshot still has a valid (empty) table.
pub const MIN_INDEX_SLOTS: usize = 8;

/// Section numbers in [`Header::sections`].
pub const SECTION_PLANS: usize = 0;
pub const SECTION_ROUTERS: usize = 1;
pub const SECTION_SUBSCRIBERS: usize = 2;
pub const SECTION_USERNAME_INDEX: usize = 3;
pub const SECTION_MAC_INDEX: usize = 4;
pub const SECTION_STRINGS: usize = 5;
pub const SECTION_OVERRIDES: usize = 6;
pub const SECTION_COUNT: usize = 7;

/// Where a section lives in the file.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Section {
    pub offset: U64,
    pub len: U64,
}

/// The fixed-size file header.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: U32,
    pub header_len: U32,
    pub generation: U64,
    pub published_at: I64,
    pub file_len: U64,
    pub checksum: U64,
    /// 0 for a base; for an overlay, the generation of the base it applies to.
    pub base_generation: U64,
    /// Subscribers visible through this file (with its base, for an overlay).
    pub subscriber_total: U64,
    pub plan_record_len: U16,
    pub router_record_len: U16,
    pub subscriber_record_len: U16,
    pub reserved0: U16,
    pub sections: [Section; SECTION_COUNT],
    pub reserved: [u8; 72],
}

/// A string in the strings section. Absent optional strings have `len == 0` and a flag bit
/// cleared in their record; the reader never interprets `offset` of an absent string.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct StrRef {
    pub offset: U32,
    pub len: U32,
}

/// Plan service codes ([`PlanRecord::service`]).
pub const SERVICE_PPPOE: u8 = 1;
pub const SERVICE_HOTSPOT: u8 = 2;
pub const SERVICE_BOTH: u8 = 3;

/// [`PlanRecord::flags`] bit: `ip_pool` is present.
pub const PLAN_HAS_IP_POOL: u8 = 1;
/// [`PlanRecord::flags`] bit: `fup_rate_limit` is present (the rate applied once the data
/// allowance is used up; without it the subscriber is rejected at zero).
pub const PLAN_HAS_FUP_RATE_LIMIT: u8 = 2;

#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct PlanRecord {
    pub id: I64,
    pub rate_limit: StrRef,
    pub ip_pool: StrRef,
    pub fup_rate_limit: StrRef,
    /// The plan's validity: for an unused voucher, how long it stays valid from its first use.
    pub duration_seconds: U64,
    /// Most open sessions a subscriber of this plan may have; 0: unlimited.
    pub simultaneous_use: U32,
    pub service: u8,
    pub flags: u8,
    pub reserved: [u8; 2],
}

/// [`RouterRecord::family`] values.
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;
/// [`RouterRecord::flags`] bit: `nas_identifier` is present.
pub const ROUTER_HAS_NAS_IDENTIFIER: u8 = 1;

#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RouterRecord {
    pub id: I64,
    /// IPv4 in the first four bytes (rest zero), or the 16 IPv6 bytes.
    pub address: [u8; 16],
    pub secret: StrRef,
    pub nas_identifier: StrRef,
    pub name: StrRef,
    pub family: u8,
    pub flags: u8,
    pub coa_port: U16,
    pub reserved: [u8; 12],
}

/// [`SubscriberRecord::status`] values.
pub const STATUS_ACTIVE: u8 = 1;
pub const STATUS_SUSPENDED: u8 = 2;
/// [`SubscriberRecord::flags`] bits.
pub const SUBSCRIBER_HAS_STATIC_IP: u8 = 1;
pub const SUBSCRIBER_HAS_MAC: u8 = 2;
pub const SUBSCRIBER_DATA_LIMITED: u8 = 4;
/// Username and password are in [`SubscriberRecord::inline`]: the username at offset 0 and the
/// password right after it; their `StrRef` offsets are relative to that buffer.
pub const SUBSCRIBER_INLINE_STRINGS: u8 = 8;
/// [`SubscriberRecord::time_remaining_seconds`] applies (without it time is unlimited).
pub const SUBSCRIBER_TIME_LIMITED: u8 = 16;
/// A voucher nobody has logged in with yet: its validity starts at its first accepted login,
/// and `expires_at` is only the batch's last day of validity.
pub const SUBSCRIBER_UNUSED: u8 = 32;
/// Room for username + password inside a subscriber record: a voucher's lookup name (33
/// bytes, empty password) fits, so voucher lookups cost no more than anybody else's.
pub const INLINE_LEN: usize = 40;

#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SubscriberRecord {
    pub id: I64,
    pub username: StrRef,
    pub password: StrRef,
    /// Unix seconds.
    pub expires_at: I64,
    pub data_remaining_bytes: U64,
    pub time_remaining_seconds: U64,
    /// Resolved against the plans of the newest file (an overlay's plans replace its base's).
    pub plan_id: I64,
    pub static_ip: [u8; 4],
    pub mac: [u8; 6],
    pub status: u8,
    pub flags: u8,
    /// Sessions the daemon saw open when it published this record (saturating at
    /// `u16::MAX`); for the simultaneous-use limit.
    pub open_sessions: U16,
    pub reserved: [u8; 2],
    pub inline: [u8; INLINE_LEN],
}

const _: () = assert!(size_of::<Header>() == HEADER_LEN);
const _: () = assert!(std::mem::offset_of!(Header, checksum) == CHECKSUM_OFFSET);
const _: () = assert!(std::mem::offset_of!(Header, base_generation) == BASE_GENERATION_OFFSET);
const _: () = assert!(size_of::<Section>() == 16);
const _: () = assert!(size_of::<StrRef>() == 8);
const _: () = assert!(size_of::<PlanRecord>() == 48);
const _: () = assert!(size_of::<RouterRecord>() == 64);
const _: () = assert!(size_of::<SubscriberRecord>() == 112);
const _: () = assert!(align_of::<Header>() == 1 && align_of::<SubscriberRecord>() == 1);

/// The hash both sides use for the indexes. Part of the format: changing it is a new version.
pub fn index_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// An index slot: `record index + 1` (0 for empty) tagged with the high half of the hash.
pub fn index_slot(hash: u64, record_index_plus_one: u32) -> u64 {
    (hash & 0xFFFF_FFFF_0000_0000) | u64::from(record_index_plus_one)
}

/// Number of slots for an index holding `entries` keys: a power of two with load <= 1/2.
pub fn index_slots(entries: usize) -> usize {
    entries
        .saturating_mul(2)
        .max(MIN_INDEX_SLOTS)
        .next_power_of_two()
}

/// Checksum of a whole snapshot file, skipping the checksum field.
pub fn file_checksum(bytes: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(bytes.get(..CHECKSUM_OFFSET).unwrap_or(bytes));
    hasher.update(bytes.get(CHECKSUM_OFFSET + 8..).unwrap_or(&[]));
    hasher.digest()
}
