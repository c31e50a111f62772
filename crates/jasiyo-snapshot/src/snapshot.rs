//! A validated snapshot and the lookups the module performs on it.
//!
//! A [`Snapshot`] is one file ([`SnapshotFile`]), or an overlay file on top of its base file
//! (see [`crate::format`]). Lookups consult the overlay, then the base.
//!
//! Validation happens once, when the file is opened: checksum, every section in bounds, every
//! string reference inside the strings section, every plan index and index slot in range.
//! Lookups still use checked slicing (`get`), so a bug here can return `None` but never read
//! out of bounds.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use zerocopy::FromBytes;
use zerocopy::little_endian::{I64, U64};

use crate::builder::{Service, SubscriberStatus, router_lookup_key};
use crate::error::SnapshotError;
use crate::format::{self, Header, PlanRecord, RouterRecord, StrRef, SubscriberRecord};

enum Backing {
    /// A read-only private mapping of an immutable snapshot file.
    Mapped(memmap2::Mmap),
    /// A large file read into anonymous memory backed by transparent huge pages.
    HugePages(memmap2::Mmap),
    /// Bytes in memory (tests, benchmarks, the publisher's own check).
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Mapped(map) | Self::HugePages(map) => map,
            Self::Owned(bytes) => bytes,
        }
    }
}

/// How a reader holds snapshot files in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Files of 16 MiB and more are copied into transparent-huge-page memory (fast lookups
    /// at a million subscribers); smaller ones are mapped. For readers that look subscribers
    /// up on every request.
    #[default]
    Auto,
    /// Always map the file: shared with the page cache, no private copy. For readers that
    /// need little of it (routers only) or read it once (validation).
    Map,
    /// Always copy into huge-page memory (tests of that path use small files).
    HugePages,
}

/// Files at least this large are read into huge-page memory instead of mapped.
///
/// A lookup touches two random places (index slot, record) of a file that at a million
/// subscribers is ~110 MB: with 4 KiB pages that is two TLB misses per request, and under a
/// hypervisor each is a two-dimensional page walk. In 2 MiB pages the whole file needs about
/// 60 TLB entries. The price is one private copy per reader (per module instance) instead of
/// sharing the page cache, made only when a new base is loaded; overlays stay mapped.
const HUGE_PAGE_THRESHOLD: u64 = 16 << 20;

/// Reads `file` (`len` bytes) into anonymous memory advised to use transparent huge pages.
/// Falls back to a plain copy where the kernel has no THP; the bytes are the same either way.
fn read_into_huge_pages(mut file: &File, len: usize) -> std::io::Result<memmap2::Mmap> {
    use std::io::Read;
    let mut memory = memmap2::MmapOptions::new().len(len).map_anon()?;
    #[cfg(target_os = "linux")]
    let _ = memory.advise(memmap2::Advice::HugePage);
    file.read_exact(&mut memory)?;
    memory.make_read_only()
}

/// One validated snapshot file: a base or an overlay.
pub(crate) struct SnapshotFile {
    backing: Backing,
    generation: u64,
    published_at: i64,
    base_generation: u64,
    subscriber_total: u64,
    sections: [Range<usize>; format::SECTION_COUNT],
}

impl SnapshotFile {
    /// Loads (per `mode`) and validates the snapshot file at `path`.
    pub(crate) fn open(path: &Path, mode: LoadMode) -> Result<Self, SnapshotError> {
        let io = |action| {
            move |source| SnapshotError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let file = File::open(path).map_err(io("opening"))?;
        let len = file.metadata().map_err(io("reading metadata of"))?.len();
        if len < format::HEADER_LEN as u64 {
            return Err(SnapshotError::Truncated {
                expected: format::HEADER_LEN as u64,
                actual: len,
            });
        }
        let huge_pages = match mode {
            LoadMode::Auto => len >= HUGE_PAGE_THRESHOLD,
            LoadMode::Map => false,
            LoadMode::HugePages => true,
        };
        if huge_pages {
            let len = usize::try_from(len).map_err(|_| SnapshotError::Malformed("file size"))?;
            let memory = read_into_huge_pages(&file, len).map_err(io("reading"))?;
            return Self::validate(Backing::HugePages(memory));
        }
        // SAFETY: snapshot files are immutable once renamed into place: the publisher writes
        // a new file and renames it over the old one, and never writes into a file that is
        // in place. The mapping is private and read-only, and we only ever read it through
        // `&[u8]` after validating it. A process that truncates the file behind our back
        // (only root or the daemon's user can) would cause SIGBUS, which is the documented
        // limit of file-backed mappings.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io("mapping"))?;
        Self::validate(Backing::Mapped(map))
    }

    /// Validates a snapshot held in memory.
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Self, SnapshotError> {
        Self::validate(Backing::Owned(bytes))
    }

    fn validate(backing: Backing) -> Result<Self, SnapshotError> {
        let bytes = backing.bytes();
        let actual = bytes.len() as u64;
        let (header, _) = Header::ref_from_prefix(bytes).map_err(|_| SnapshotError::Truncated {
            expected: format::HEADER_LEN as u64,
            actual,
        })?;
        if header.magic != format::MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if header.version.get() != format::VERSION {
            return Err(SnapshotError::VersionMismatch {
                expected: format::VERSION,
                found: header.version.get(),
            });
        }
        if header.file_len.get() != actual {
            return Err(SnapshotError::Truncated {
                expected: header.file_len.get(),
                actual,
            });
        }
        if format::file_checksum(bytes) != header.checksum.get() {
            return Err(SnapshotError::ChecksumMismatch);
        }
        if header.header_len.get() as usize != format::HEADER_LEN
            || header.plan_record_len.get() as usize != size_of::<PlanRecord>()
            || header.router_record_len.get() as usize != size_of::<RouterRecord>()
            || header.subscriber_record_len.get() as usize != size_of::<SubscriberRecord>()
        {
            return Err(SnapshotError::Malformed("record sizes"));
        }

        let mut sections: [Range<usize>; format::SECTION_COUNT] = Default::default();
        for (range, section) in sections.iter_mut().zip(&header.sections) {
            let start = usize::try_from(section.offset.get())
                .map_err(|_| SnapshotError::Malformed("section offset"))?;
            let len = usize::try_from(section.len.get())
                .map_err(|_| SnapshotError::Malformed("section length"))?;
            let end = start
                .checked_add(len)
                .ok_or(SnapshotError::Malformed("section length"))?;
            if start < format::HEADER_LEN || end > bytes.len() {
                return Err(SnapshotError::Malformed("section out of bounds"));
            }
            *range = start..end;
        }

        let snapshot = Self {
            generation: header.generation.get(),
            published_at: header.published_at.get(),
            base_generation: header.base_generation.get(),
            subscriber_total: header.subscriber_total.get(),
            sections,
            backing,
        };
        snapshot.validate_sections()?;
        Ok(snapshot)
    }

    fn validate_sections(&self) -> Result<(), SnapshotError> {
        let plans = self
            .records::<PlanRecord>(format::SECTION_PLANS)
            .ok_or(SnapshotError::Malformed("plans section"))?;
        let routers = self
            .records::<RouterRecord>(format::SECTION_ROUTERS)
            .ok_or(SnapshotError::Malformed("routers section"))?;
        let subscribers = self
            .records::<SubscriberRecord>(format::SECTION_SUBSCRIBERS)
            .ok_or(SnapshotError::Malformed("subscribers section"))?;
        let strings_len = self.section(format::SECTION_STRINGS).len();
        let string_ok = |s: &StrRef| {
            (s.offset.get() as usize)
                .checked_add(s.len.get() as usize)
                .is_some_and(|end| end <= strings_len)
        };

        for plan in plans {
            let pool_ok = plan.flags & format::PLAN_HAS_IP_POOL == 0 || string_ok(&plan.ip_pool);
            let fup_ok = plan.flags & format::PLAN_HAS_FUP_RATE_LIMIT == 0
                || string_ok(&plan.fup_rate_limit);
            if !string_ok(&plan.rate_limit) || !pool_ok || !fup_ok {
                return Err(SnapshotError::Malformed("plan string"));
            }
            if Service::from_code(plan.service).is_none() {
                return Err(SnapshotError::Malformed("plan service"));
            }
        }
        if plans.windows(2).any(|w| w[0].id.get() >= w[1].id.get()) {
            return Err(SnapshotError::Malformed("plans not sorted"));
        }
        for router in routers {
            let nas_ok = router.flags & format::ROUTER_HAS_NAS_IDENTIFIER == 0
                || string_ok(&router.nas_identifier);
            if !string_ok(&router.secret) || !string_ok(&router.name) || !nas_ok {
                return Err(SnapshotError::Malformed("router string"));
            }
            if router.family != format::FAMILY_V4 && router.family != format::FAMILY_V6 {
                return Err(SnapshotError::Malformed("router address family"));
            }
        }
        if routers
            .windows(2)
            .any(|w| (w[0].family, w[0].address) >= (w[1].family, w[1].address))
        {
            return Err(SnapshotError::Malformed("routers not sorted"));
        }
        for subscriber in subscribers {
            let strings_ok = if subscriber.flags & format::SUBSCRIBER_INLINE_STRINGS != 0 {
                let inline_ok = |s: &StrRef| {
                    (s.offset.get() as usize)
                        .checked_add(s.len.get() as usize)
                        .is_some_and(|end| end <= format::INLINE_LEN)
                };
                inline_ok(&subscriber.username) && inline_ok(&subscriber.password)
            } else {
                string_ok(&subscriber.username) && string_ok(&subscriber.password)
            };
            if !strings_ok {
                return Err(SnapshotError::Malformed("subscriber string"));
            }
            let plan_id = subscriber.plan_id.get();
            if plans
                .binary_search_by_key(&plan_id, |p| p.id.get())
                .is_err()
            {
                return Err(SnapshotError::Malformed("subscriber plan"));
            }
            if SubscriberStatus::from_code(subscriber.status).is_none() {
                return Err(SnapshotError::Malformed("subscriber status"));
            }
        }
        for index in [format::SECTION_USERNAME_INDEX, format::SECTION_MAC_INDEX] {
            let slots = self
                .records::<U64>(index)
                .ok_or(SnapshotError::Malformed("index section"))?;
            if !slots.len().is_power_of_two() {
                return Err(SnapshotError::Malformed("index size"));
            }
            if slots
                .iter()
                .any(|s| (s.get() & 0xFFFF_FFFF) as usize > subscribers.len())
            {
                return Err(SnapshotError::Malformed("index slot"));
            }
            // Lookups stop at the first empty slot; a full table would make a miss loop.
            if slots.iter().all(|s| s.get() != 0) {
                return Err(SnapshotError::Malformed("index full"));
            }
        }
        let overrides = self
            .records::<I64>(format::SECTION_OVERRIDES)
            .ok_or(SnapshotError::Malformed("overrides section"))?;
        if overrides.windows(2).any(|w| w[0].get() >= w[1].get()) {
            return Err(SnapshotError::Malformed("overrides not sorted"));
        }
        if self.base_generation == 0 {
            if !overrides.is_empty() || self.subscriber_total != subscribers.len() as u64 {
                return Err(SnapshotError::Malformed("base with overlay fields"));
            }
        } else if self.base_generation >= self.generation {
            return Err(SnapshotError::Malformed("overlay base is not older"));
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    fn section(&self, section: usize) -> &[u8] {
        self.sections
            .get(section)
            .and_then(|range| self.bytes().get(range.clone()))
            .unwrap_or(&[])
    }

    fn records<T: FromBytes + zerocopy::Immutable + zerocopy::KnownLayout>(
        &self,
        section: usize,
    ) -> Option<&[T]> {
        <[T]>::ref_from_bytes(self.section(section)).ok()
    }

    /// A subscriber's username or password, inline in its record or in the strings section.
    fn subscriber_string<'a>(&'a self, record: &'a SubscriberRecord, s: &StrRef) -> &'a [u8] {
        if record.flags & format::SUBSCRIBER_INLINE_STRINGS != 0 {
            let start = s.offset.get() as usize;
            record
                .inline
                .get(start..start.saturating_add(s.len.get() as usize))
                .unwrap_or(&[])
        } else {
            self.string(s)
        }
    }

    fn string(&self, s: &StrRef) -> &[u8] {
        let start = s.offset.get() as usize;
        let end = start.saturating_add(s.len.get() as usize);
        self.section(format::SECTION_STRINGS)
            .get(start..end)
            .unwrap_or(&[])
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// 0 for a base.
    pub(crate) fn base_generation(&self) -> u64 {
        self.base_generation
    }

    fn subscriber_records(&self) -> &[SubscriberRecord] {
        self.records(format::SECTION_SUBSCRIBERS).unwrap_or(&[])
    }

    fn plan_records(&self) -> &[PlanRecord] {
        self.records(format::SECTION_PLANS).unwrap_or(&[])
    }

    fn router_records(&self) -> &[RouterRecord] {
        self.records(format::SECTION_ROUTERS).unwrap_or(&[])
    }

    /// Probes an index for `key`; `matches` confirms a candidate record.
    fn probe(
        &self,
        section: usize,
        key: &[u8],
        matches: impl Fn(&SubscriberRecord) -> bool,
    ) -> Option<&SubscriberRecord> {
        let slots = self.records::<U64>(section)?;
        let records = self.subscriber_records();
        let mask = slots.len().checked_sub(1)?;
        let hash = format::index_hash(key);
        let tag = hash >> 32;
        let mut slot = (hash as usize) & mask;
        // Validation guarantees an empty slot, so this ends; the bound is belt and braces.
        for _ in 0..slots.len() {
            let value = slots.get(slot)?.get();
            if value == 0 {
                return None;
            }
            // Only a matching tag costs a trip to the record.
            if value >> 32 == tag {
                let candidate = records.get(((value & 0xFFFF_FFFF) as usize).checked_sub(1)?)?;
                if matches(candidate) {
                    return Some(candidate);
                }
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    fn find_username(&self, username: &[u8]) -> Option<&SubscriberRecord> {
        self.probe(format::SECTION_USERNAME_INDEX, username, |r| {
            self.subscriber_string(r, &r.username) == username
        })
    }

    fn find_mac(&self, mac: [u8; 6]) -> Option<&SubscriberRecord> {
        self.probe(format::SECTION_MAC_INDEX, &mac, |r| {
            r.flags & format::SUBSCRIBER_HAS_MAC != 0 && r.mac == mac
        })
    }

    /// Whether this overlay replaces (or deletes) the base's subscriber `id`.
    fn overrides(&self, id: i64) -> bool {
        self.records::<I64>(format::SECTION_OVERRIDES)
            .is_some_and(|ids| ids.binary_search_by_key(&id, |i| i.get()).is_ok())
    }

    fn plan_record(&self, id: i64) -> Option<&PlanRecord> {
        let plans = self.plan_records();
        plans.get(plans.binary_search_by_key(&id, |p| p.id.get()).ok()?)
    }
}

/// A complete view of subscriber state: a base file, or an overlay on its base.
pub struct Snapshot {
    head: Arc<SnapshotFile>,
    /// The base under an overlay; `None` when `head` is itself a base.
    base: Option<Arc<SnapshotFile>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation())
            .field("base_generation", &self.base_generation())
            .field("published_at", &self.published_at())
            .field("plans", &self.plan_count())
            .field("routers", &self.router_count())
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

impl Snapshot {
    /// Opens the snapshot whose newest file is `path`: a base, or an overlay whose base
    /// (`base-<generation>.snap`) is opened from the same directory.
    pub fn open(path: &Path) -> Result<Self, SnapshotError> {
        Self::open_reusing(path, None, LoadMode::Auto)
    }

    /// Like [`Self::open`], holding the files as `mode` says.
    pub fn open_with(path: &Path, mode: LoadMode) -> Result<Self, SnapshotError> {
        Self::open_reusing(path, None, mode)
    }

    /// Like [`Self::open`], reusing `previous`'s base mapping when the new file is an overlay
    /// on the same base (the common case: only the small overlay is read).
    pub(crate) fn open_reusing(
        path: &Path,
        previous: Option<&Self>,
        mode: LoadMode,
    ) -> Result<Self, SnapshotError> {
        let head = SnapshotFile::open(path, mode)?;
        if head.base_generation == 0 {
            return Ok(Self {
                head: Arc::new(head),
                base: None,
            });
        }
        let wanted = head.base_generation;
        let reusable = previous.and_then(|p| {
            [p.base.as_ref(), Some(&p.head)]
                .into_iter()
                .flatten()
                .find(|f| f.base_generation == 0 && f.generation == wanted)
                .cloned()
        });
        let base = match reusable {
            Some(base) => base,
            None => {
                let base_path = path.with_file_name(format::base_file_name(wanted));
                Arc::new(SnapshotFile::open(&base_path, mode)?)
            }
        };
        Self::combine(head, base)
    }

    fn combine(head: SnapshotFile, base: Arc<SnapshotFile>) -> Result<Self, SnapshotError> {
        if base.base_generation != 0 || base.generation != head.base_generation {
            return Err(SnapshotError::Malformed("overlay and base do not match"));
        }
        Ok(Self {
            head: Arc::new(head),
            base: Some(base),
        })
    }

    /// Validates a base snapshot held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SnapshotError> {
        let head = SnapshotFile::from_bytes(bytes)?;
        if head.base_generation != 0 {
            return Err(SnapshotError::Malformed("an overlay needs its base"));
        }
        Ok(Self {
            head: Arc::new(head),
            base: None,
        })
    }

    /// Validates an overlay and its base held in memory.
    pub fn from_base_and_overlay(base: Vec<u8>, overlay: Vec<u8>) -> Result<Self, SnapshotError> {
        let base = SnapshotFile::from_bytes(base)?;
        Self::combine(SnapshotFile::from_bytes(overlay)?, Arc::new(base))
    }

    /// The generation the daemon gave this snapshot; strictly increasing.
    pub fn generation(&self) -> u64 {
        self.head.generation
    }

    /// The generation of the base under an overlay, `None` for a base.
    pub fn base_generation(&self) -> Option<u64> {
        self.base.as_ref().map(|b| b.generation)
    }

    /// When the daemon built it, in Unix seconds.
    pub fn published_at(&self) -> i64 {
        self.head.published_at
    }

    /// Number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        usize::try_from(self.head.subscriber_total).unwrap_or(usize::MAX)
    }

    /// Number of plans.
    pub fn plan_count(&self) -> usize {
        self.head.plan_records().len()
    }

    /// Number of routers.
    pub fn router_count(&self) -> usize {
        self.head.router_records().len()
    }

    fn view<'a>(
        &'a self,
        file: &'a SnapshotFile,
        record: &'a SubscriberRecord,
    ) -> SubscriberView<'a> {
        SubscriberView {
            file,
            plans: &self.head,
            record,
        }
    }

    /// Looks in the overlay, then in the base unless the overlay overrides what it finds.
    fn find(
        &self,
        lookup: impl Fn(&SnapshotFile) -> Option<&SubscriberRecord>,
    ) -> Option<SubscriberView<'_>> {
        if let Some(record) = lookup(&self.head) {
            return Some(self.view(&self.head, record));
        }
        let base = self.base.as_deref()?;
        let record = lookup(base).filter(|r| !self.head.overrides(r.id.get()))?;
        Some(self.view(base, record))
    }

    /// The subscriber with exactly this username (case-sensitive, as RADIUS sends it).
    pub fn subscriber_by_username(&self, username: &[u8]) -> Option<SubscriberView<'_>> {
        self.find(|file| file.find_username(username))
    }

    /// The subscriber bound to this MAC address (Hotspot MAC login).
    pub fn subscriber_by_mac(&self, mac: [u8; 6]) -> Option<SubscriberView<'_>> {
        self.find(|file| file.find_mac(mac))
    }

    /// The router whose address is `ip` (an IPv4-mapped IPv6 address matches its IPv4 form).
    pub fn router_by_ip(&self, ip: IpAddr) -> Option<RouterView<'_>> {
        let key = router_lookup_key(ip);
        let routers = self.head.router_records();
        let index = routers
            .binary_search_by(|r| (r.family, r.address).cmp(&key))
            .ok()?;
        Some(RouterView {
            file: &self.head,
            record: routers.get(index)?,
        })
    }

    /// The plan with this id.
    pub fn plan_by_id(&self, id: i64) -> Option<PlanView<'_>> {
        Some(PlanView {
            file: &self.head,
            record: self.head.plan_record(id)?,
        })
    }

    /// All subscribers: the overlay's, then the base's that it does not override.
    pub fn subscribers(&self) -> impl Iterator<Item = SubscriberView<'_>> {
        let head = self
            .head
            .subscriber_records()
            .iter()
            .map(|r| self.view(&self.head, r));
        let base = self.base.iter().flat_map(move |base| {
            base.subscriber_records()
                .iter()
                .filter(|r| !self.head.overrides(r.id.get()))
                .map(move |r| self.view(base, r))
        });
        head.chain(base)
    }
}

/// A subscriber inside a snapshot.
#[derive(Clone, Copy)]
pub struct SubscriberView<'a> {
    /// The file holding the record and its strings.
    file: &'a SnapshotFile,
    /// The newest file, whose plans are current.
    plans: &'a SnapshotFile,
    record: &'a SubscriberRecord,
}

impl std::fmt::Debug for SubscriberView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is deliberately left out.
        f.debug_struct("SubscriberView")
            .field("id", &self.id())
            .field("username", &String::from_utf8_lossy(self.username()))
            .field("status", &self.status())
            .field("expires_at", &self.expires_at())
            .field("unused", &self.unused())
            .finish_non_exhaustive()
    }
}

impl<'a> SubscriberView<'a> {
    /// Database id.
    pub fn id(&self) -> i64 {
        self.record.id.get()
    }

    /// Username as stored.
    pub fn username(&self) -> &'a [u8] {
        self.file
            .subscriber_string(self.record, &self.record.username)
    }

    /// Clear-text password.
    pub fn password(&self) -> &'a [u8] {
        self.file
            .subscriber_string(self.record, &self.record.password)
    }

    /// The subscriber's plan as it is now; `None` only if the plan was deleted since the
    /// base was written (the daemon refuses to delete plans in use).
    pub fn plan(&self) -> Option<PlanView<'a>> {
        Some(PlanView {
            file: self.plans,
            record: self.plans.plan_record(self.record.plan_id.get())?,
        })
    }

    /// Active or suspended.
    pub fn status(&self) -> SubscriberStatus {
        // Validated on open; a bad code cannot reach here, suspended is the safe reading.
        SubscriberStatus::from_code(self.record.status).unwrap_or(SubscriberStatus::Suspended)
    }

    /// Expiry in Unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.record.expires_at.get()
    }

    /// Static address, if the subscriber has one.
    pub fn static_ip(&self) -> Option<Ipv4Addr> {
        (self.record.flags & format::SUBSCRIBER_HAS_STATIC_IP != 0)
            .then(|| Ipv4Addr::from(self.record.static_ip))
    }

    /// Bound MAC address, if any.
    pub fn mac(&self) -> Option<[u8; 6]> {
        (self.record.flags & format::SUBSCRIBER_HAS_MAC != 0).then_some(self.record.mac)
    }

    /// Remaining data allowance; `None` when no allowance applies.
    pub fn data_remaining_bytes(&self) -> Option<u64> {
        (self.record.flags & format::SUBSCRIBER_DATA_LIMITED != 0)
            .then(|| self.record.data_remaining_bytes.get())
    }

    /// Remaining time allowance in seconds; `None` when no allowance applies.
    pub fn time_remaining_seconds(&self) -> Option<u64> {
        (self.record.flags & format::SUBSCRIBER_TIME_LIMITED != 0)
            .then(|| self.record.time_remaining_seconds.get())
    }

    /// A voucher nobody has logged in with yet: its validity (the plan's duration) starts at
    /// its first accepted login, and [`Self::expires_at`] is the latest that may happen.
    pub fn unused(&self) -> bool {
        self.record.flags & format::SUBSCRIBER_UNUSED != 0
    }

    /// Accounting sessions open when the daemon published this record (saturated at
    /// `u16::MAX`). Lags reality by the accounting round trip: a login is counted once its
    /// Accounting-Start has reached the daemon.
    pub fn open_sessions(&self) -> u16 {
        self.record.open_sessions.get()
    }
}

/// A plan inside a snapshot.
#[derive(Clone, Copy)]
pub struct PlanView<'a> {
    file: &'a SnapshotFile,
    record: &'a PlanRecord,
}

impl std::fmt::Debug for PlanView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanView")
            .field("id", &self.id())
            .field("rate_limit", &String::from_utf8_lossy(self.rate_limit()))
            .field("service", &self.service())
            .finish_non_exhaustive()
    }
}

impl<'a> PlanView<'a> {
    /// Database id.
    pub fn id(&self) -> i64 {
        self.record.id.get()
    }

    /// `Mikrotik-Rate-Limit` value.
    pub fn rate_limit(&self) -> &'a [u8] {
        self.file.string(&self.record.rate_limit)
    }

    /// `Framed-Pool` name, if the plan has one.
    pub fn ip_pool(&self) -> Option<&'a [u8]> {
        (self.record.flags & format::PLAN_HAS_IP_POOL != 0)
            .then(|| self.file.string(&self.record.ip_pool))
    }

    /// Which services the plan may be used for.
    pub fn service(&self) -> Service {
        Service::from_code(self.record.service).unwrap_or(Service::Both)
    }

    /// The plan's validity in seconds (an unused voucher's, from its first use).
    pub fn duration_seconds(&self) -> u64 {
        self.record.duration_seconds.get()
    }

    /// Most sessions a subscriber may have open at once; `None`: unlimited.
    pub fn simultaneous_use(&self) -> Option<NonZeroU32> {
        NonZeroU32::new(self.record.simultaneous_use.get())
    }

    /// `Mikrotik-Rate-Limit` once the data allowance is used up, if the plan has one.
    pub fn fup_rate_limit(&self) -> Option<&'a [u8]> {
        (self.record.flags & format::PLAN_HAS_FUP_RATE_LIMIT != 0)
            .then(|| self.file.string(&self.record.fup_rate_limit))
    }
}

/// A router inside a snapshot.
#[derive(Clone, Copy)]
pub struct RouterView<'a> {
    file: &'a SnapshotFile,
    record: &'a RouterRecord,
}

impl std::fmt::Debug for RouterView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is deliberately left out.
        f.debug_struct("RouterView")
            .field("id", &self.id())
            .field("ip", &self.ip())
            .field("name", &String::from_utf8_lossy(self.name()))
            .finish_non_exhaustive()
    }
}

impl<'a> RouterView<'a> {
    /// Database id.
    pub fn id(&self) -> i64 {
        self.record.id.get()
    }

    /// The router's address, as packets arrive from it.
    pub fn ip(&self) -> IpAddr {
        let a = self.record.address;
        if self.record.family == format::FAMILY_V4 {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(a))
        }
    }

    /// RADIUS shared secret.
    pub fn secret(&self) -> &'a [u8] {
        self.file.string(&self.record.secret)
    }

    /// NAS-Identifier, if the operator set one.
    pub fn nas_identifier(&self) -> Option<&'a [u8]> {
        (self.record.flags & format::ROUTER_HAS_NAS_IDENTIFIER != 0)
            .then(|| self.file.string(&self.record.nas_identifier))
    }

    /// Operator-given name (used as the FreeRADIUS client short name).
    pub fn name(&self) -> &'a [u8] {
        self.file.string(&self.record.name)
    }
}
