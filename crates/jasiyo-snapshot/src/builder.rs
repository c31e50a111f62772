//! Building a snapshot file image from plain owned data (the daemon side).

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;

use zerocopy::IntoBytes;
use zerocopy::little_endian::{I64, U16, U32, U64};

use crate::error::BuildError;
use crate::format::{self, Header, PlanRecord, RouterRecord, Section, StrRef, SubscriberRecord};
use crate::voucher::is_lookup_name;

/// Which services a plan may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// PPPoE (and other PPP) sessions only.
    Pppoe,
    /// Hotspot logins only.
    Hotspot,
    /// Either.
    Both,
}

impl Service {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Pppoe => format::SERVICE_PPPOE,
            Self::Hotspot => format::SERVICE_HOTSPOT,
            Self::Both => format::SERVICE_BOTH,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            format::SERVICE_PPPOE => Some(Self::Pppoe),
            format::SERVICE_HOTSPOT => Some(Self::Hotspot),
            format::SERVICE_BOTH => Some(Self::Both),
            _ => None,
        }
    }
}

/// Whether a subscriber may log in at all (expiry and allowances are separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriberStatus {
    /// May log in.
    Active,
    /// Blocked by the operator.
    Suspended,
}

impl SubscriberStatus {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Active => format::STATUS_ACTIVE,
            Self::Suspended => format::STATUS_SUSPENDED,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            format::STATUS_ACTIVE => Some(Self::Active),
            format::STATUS_SUSPENDED => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A plan as the module needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    pub id: i64,
    /// `Mikrotik-Rate-Limit` value, already validated by the daemon.
    pub rate_limit: String,
    /// `Framed-Pool` for subscribers without a static address.
    pub ip_pool: Option<String>,
    pub service: Service,
    /// Most sessions a subscriber of the plan may have open at once; `None`: unlimited.
    pub simultaneous_use: Option<NonZeroU32>,
    /// `Mikrotik-Rate-Limit` once the data allowance is used up (fair-use policy), already
    /// validated; `None`: a subscriber with no data left is rejected.
    pub fup_rate_limit: Option<String>,
    /// The plan's validity in seconds: an unused voucher's time from its first use.
    pub duration_seconds: u64,
}

/// A router (NAS) as FreeRADIUS's dynamic-clients lookup needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterEntry {
    pub id: i64,
    pub ip: IpAddr,
    pub secret: String,
    pub nas_identifier: Option<String>,
    pub name: String,
}

/// A subscriber as the module needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberEntry {
    pub id: i64,
    pub username: String,
    /// Clear text: PAP, CHAP and MS-CHAPv2 all need it.
    pub password: String,
    pub plan_id: i64,
    pub status: SubscriberStatus,
    /// Unix seconds.
    pub expires_at: i64,
    pub static_ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    /// `None`: no data allowance applies.
    pub data_remaining_bytes: Option<u64>,
    /// `None`: no time allowance applies.
    pub time_remaining_seconds: Option<u64>,
    /// Accounting sessions open now (stored saturating at `u16::MAX`, far above any limit).
    pub open_sessions: u32,
    /// A voucher not used yet (`activated_at` NULL): its validity starts at its first login,
    /// so `expires_at` is only the latest day it may start.
    pub unused: bool,
}

/// Accumulates strings and hands out references into the strings section.
struct Strings {
    bytes: Vec<u8>,
}

impl Strings {
    fn push(&mut self, s: &str) -> Result<StrRef, BuildError> {
        let offset = u32::try_from(self.bytes.len()).map_err(|_| BuildError::TooLarge)?;
        let len = u32::try_from(s.len()).map_err(|_| BuildError::TooLarge)?;
        self.bytes.extend_from_slice(s.as_bytes());
        Ok(StrRef {
            offset: U32::new(offset),
            len: U32::new(len),
        })
    }

    fn push_opt(&mut self, s: Option<&str>) -> Result<StrRef, BuildError> {
        s.map_or(Ok(StrRef::default()), |s| self.push(s))
    }
}

/// Inserts `value` (a record index) under `hash` into an open-addressing table.
///
/// Returns the index already stored for an equal key (`same_key` compares a stored index's
/// key with the new one), which leaves the table unchanged: equal keys probe the same chain,
/// so the index doubles as the duplicate check, with no extra set.
fn index_insert(
    slots: &mut [u64],
    hash: u64,
    value: usize,
    same_key: impl Fn(usize) -> bool,
) -> Result<Option<usize>, BuildError> {
    let mask = slots.len() - 1;
    // The table is at most half full, so an empty slot is always found.
    let mut slot = (hash as usize) & mask;
    let stored = format::index_slot(
        hash,
        u32::try_from(value + 1).map_err(|_| BuildError::TooLarge)?,
    );
    while slots[slot] != 0 {
        let existing = (slots[slot] & 0xFFFF_FFFF) as usize - 1;
        if slots[slot] >> 32 == stored >> 32 && same_key(existing) {
            return Ok(Some(existing));
        }
        slot = (slot + 1) & mask;
    }
    slots[slot] = stored;
    Ok(None)
}

fn router_key(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut address = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            address[..4].copy_from_slice(&v4.octets());
            (format::FAMILY_V4, address)
        }
        IpAddr::V6(v6) => (format::FAMILY_V6, v6.octets()),
    }
}

pub(crate) fn router_lookup_key(ip: IpAddr) -> (u8, [u8; 16]) {
    // A v4-mapped IPv6 source is the same router as its IPv4 address.
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => router_key(IpAddr::V4(v4)),
            None => router_key(ip),
        },
        IpAddr::V4(_) => router_key(ip),
    }
}

/// What makes a file an overlay rather than a base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayOf {
    /// Generation of the base the overlay applies to (the publisher's `base_generation()`).
    pub base_generation: u64,
    /// Ids of every subscriber changed or deleted since that base; the base's records for
    /// them are ignored. The overlay's own subscribers must all be among them.
    pub overridden_ids: Vec<i64>,
    /// Number of subscribers that exist in all (base and overlay together).
    pub subscriber_total: u64,
}

/// Builds the complete file image of a base snapshot holding every subscriber.
///
/// `generation` must be the publisher's [`crate::Publisher::next_generation`];
/// `published_at` is Unix seconds. The inputs need not be sorted.
pub fn build_snapshot(
    generation: u64,
    published_at: i64,
    plans: &[PlanEntry],
    routers: &[RouterEntry],
    subscribers: &[SubscriberEntry],
) -> Result<Vec<u8>, BuildError> {
    build_file(generation, published_at, plans, routers, subscribers, None)
}

/// Builds an overlay: all plans and routers, the subscribers changed since the base (as they
/// are now), and the ids overridden since the base. Small, so a change is published quickly
/// however many subscribers the base holds.
pub fn build_overlay(
    generation: u64,
    published_at: i64,
    plans: &[PlanEntry],
    routers: &[RouterEntry],
    changed_subscribers: &[SubscriberEntry],
    overlay: &OverlayOf,
) -> Result<Vec<u8>, BuildError> {
    if overlay.base_generation == 0 || overlay.base_generation >= generation {
        return Err(BuildError::BadBase(overlay.base_generation));
    }
    build_file(
        generation,
        published_at,
        plans,
        routers,
        changed_subscribers,
        Some(overlay),
    )
}

fn build_file(
    generation: u64,
    published_at: i64,
    plans: &[PlanEntry],
    routers: &[RouterEntry],
    subscribers: &[SubscriberEntry],
    overlay: Option<&OverlayOf>,
) -> Result<Vec<u8>, BuildError> {
    let mut strings = Strings {
        bytes: Vec::with_capacity(subscribers.len() * 24 + plans.len() * 32),
    };

    // Plans, sorted by id so the reader can binary-search.
    let mut plan_order: Vec<&PlanEntry> = plans.iter().collect();
    plan_order.sort_unstable_by_key(|p| p.id);
    let mut plan_ids = std::collections::HashSet::with_capacity(plans.len());
    let mut plan_records = Vec::with_capacity(plans.len());
    for plan in &plan_order {
        if !plan_ids.insert(plan.id) {
            return Err(BuildError::DuplicatePlan(plan.id));
        }
        let mut flags = 0;
        if plan.ip_pool.is_some() {
            flags |= format::PLAN_HAS_IP_POOL;
        }
        if plan.fup_rate_limit.is_some() {
            flags |= format::PLAN_HAS_FUP_RATE_LIMIT;
        }
        plan_records.push(PlanRecord {
            id: I64::new(plan.id),
            rate_limit: strings.push(&plan.rate_limit)?,
            ip_pool: strings.push_opt(plan.ip_pool.as_deref())?,
            fup_rate_limit: strings.push_opt(plan.fup_rate_limit.as_deref())?,
            duration_seconds: U64::new(plan.duration_seconds),
            simultaneous_use: U32::new(plan.simultaneous_use.map_or(0, NonZeroU32::get)),
            service: plan.service.code(),
            flags,
            reserved: [0; 2],
        });
    }

    // Routers, sorted by address for binary search by source IP.
    let mut router_order: Vec<&RouterEntry> = routers.iter().collect();
    router_order.sort_unstable_by_key(|r| router_key(r.ip));
    let mut router_records = Vec::with_capacity(routers.len());
    for pair in router_order.windows(2) {
        if router_key(pair[0].ip) == router_key(pair[1].ip) {
            return Err(BuildError::DuplicateRouter(pair[1].ip));
        }
    }
    for router in router_order {
        let (family, address) = router_key(router.ip);
        router_records.push(RouterRecord {
            id: I64::new(router.id),
            address,
            secret: strings.push(&router.secret)?,
            nas_identifier: strings.push_opt(router.nas_identifier.as_deref())?,
            name: strings.push(&router.name)?,
            family,
            flags: if router.nas_identifier.is_some() {
                format::ROUTER_HAS_NAS_IDENTIFIER
            } else {
                0
            },
            coa_port: U16::new(0),
            reserved: [0; 12],
        });
    }

    // Subscribers and their two indexes.
    let mut username_slots = vec![0u64; format::index_slots(subscribers.len())];
    // A voucher's MAC is the device it is bound to, a check at login and not a login of its
    // own: out of the MAC index, so a hotspot's MAC login never logs a device in on a voucher
    // and two vouchers bought on the same phone do not collide.
    let mac_login = |s: &SubscriberEntry| s.mac.filter(|_| !is_lookup_name(s.username.as_bytes()));
    let mac_count = subscribers
        .iter()
        .filter(|s| mac_login(s).is_some())
        .count();
    let mut mac_slots = vec![0u64; format::index_slots(mac_count)];
    let mut subscriber_records = Vec::with_capacity(subscribers.len());
    for (index, subscriber) in subscribers.iter().enumerate() {
        if !plan_ids.contains(&subscriber.plan_id) {
            return Err(BuildError::UnknownPlan {
                username: subscriber.username.clone(),
                plan_id: subscriber.plan_id,
            });
        }
        let username = subscriber.username.as_str();
        let duplicate = index_insert(
            &mut username_slots,
            format::index_hash(username.as_bytes()),
            index,
            |other| subscribers[other].username == username,
        )?;
        if duplicate.is_some() {
            return Err(BuildError::DuplicateUsername(subscriber.username.clone()));
        }
        let mut flags = 0;
        if let Some(mac) = mac_login(subscriber) {
            let duplicate =
                index_insert(&mut mac_slots, format::index_hash(&mac), index, |other| {
                    mac_login(&subscribers[other]) == Some(mac)
                })?;
            if duplicate.is_some() {
                return Err(BuildError::DuplicateMac(mac));
            }
        }
        if subscriber.mac.is_some() {
            flags |= format::SUBSCRIBER_HAS_MAC;
        }
        if subscriber.unused {
            flags |= format::SUBSCRIBER_UNUSED;
        }
        if subscriber.static_ip.is_some() {
            flags |= format::SUBSCRIBER_HAS_STATIC_IP;
        }
        if subscriber.data_remaining_bytes.is_some() {
            flags |= format::SUBSCRIBER_DATA_LIMITED;
        }
        if subscriber.time_remaining_seconds.is_some() {
            flags |= format::SUBSCRIBER_TIME_LIMITED;
        }
        let (username, password) = (
            subscriber.username.as_bytes(),
            subscriber.password.as_bytes(),
        );
        let mut inline = [0u8; format::INLINE_LEN];
        let (username_ref, password_ref) = if username.len() + password.len() <= format::INLINE_LEN
        {
            inline[..username.len()].copy_from_slice(username);
            inline[username.len()..username.len() + password.len()].copy_from_slice(password);
            flags |= format::SUBSCRIBER_INLINE_STRINGS;
            let inline_ref = |offset: usize, len: usize| StrRef {
                offset: U32::new(offset as u32),
                len: U32::new(len as u32),
            };
            (
                inline_ref(0, username.len()),
                inline_ref(username.len(), password.len()),
            )
        } else {
            (
                strings.push(&subscriber.username)?,
                strings.push(&subscriber.password)?,
            )
        };
        subscriber_records.push(SubscriberRecord {
            id: I64::new(subscriber.id),
            username: username_ref,
            password: password_ref,
            expires_at: I64::new(subscriber.expires_at),
            data_remaining_bytes: U64::new(subscriber.data_remaining_bytes.unwrap_or(0)),
            time_remaining_seconds: U64::new(subscriber.time_remaining_seconds.unwrap_or(0)),
            plan_id: I64::new(subscriber.plan_id),
            static_ip: subscriber.static_ip.map_or([0; 4], |ip| ip.octets()),
            mac: subscriber.mac.unwrap_or([0; 6]),
            status: subscriber.status.code(),
            flags,
            open_sessions: U16::new(u16::try_from(subscriber.open_sessions).unwrap_or(u16::MAX)),
            reserved: [0; 2],
            inline,
        });
    }

    let mut overridden: Vec<i64> = overlay.map_or_else(Vec::new, |o| o.overridden_ids.clone());
    overridden.sort_unstable();
    overridden.dedup();
    if let Some(stray) = subscribers
        .iter()
        .find(|s| overlay.is_some() && overridden.binary_search(&s.id).is_err())
    {
        return Err(BuildError::NotOverridden(stray.id));
    }
    let overridden: Vec<I64> = overridden.into_iter().map(I64::new).collect();

    let username_index: Vec<U64> = username_slots.into_iter().map(U64::new).collect();
    let mac_index: Vec<U64> = mac_slots.into_iter().map(U64::new).collect();
    let bodies: [&[u8]; format::SECTION_COUNT] = [
        plan_records.as_slice().as_bytes(),
        router_records.as_slice().as_bytes(),
        subscriber_records.as_slice().as_bytes(),
        username_index.as_slice().as_bytes(),
        mac_index.as_slice().as_bytes(),
        &strings.bytes,
        overridden.as_slice().as_bytes(),
    ];

    let mut sections = [Section::default(); format::SECTION_COUNT];
    let mut offset = format::HEADER_LEN;
    for (section, body) in sections.iter_mut().zip(bodies) {
        *section = Section {
            offset: U64::new(offset as u64),
            len: U64::new(body.len() as u64),
        };
        offset += body.len();
    }
    let header = Header {
        magic: format::MAGIC,
        version: U32::new(format::VERSION),
        header_len: U32::new(format::HEADER_LEN as u32),
        generation: U64::new(generation),
        published_at: I64::new(published_at),
        file_len: U64::new(offset as u64),
        checksum: U64::new(0),
        base_generation: U64::new(overlay.map_or(0, |o| o.base_generation)),
        subscriber_total: U64::new(
            overlay.map_or(subscribers.len() as u64, |o| o.subscriber_total),
        ),
        plan_record_len: U16::new(size_of::<PlanRecord>() as u16),
        router_record_len: U16::new(size_of::<RouterRecord>() as u16),
        subscriber_record_len: U16::new(size_of::<SubscriberRecord>() as u16),
        reserved0: U16::new(0),
        sections,
        reserved: [0; 72],
    };

    let mut file = Vec::with_capacity(offset);
    file.extend_from_slice(header.as_bytes());
    for body in bodies {
        file.extend_from_slice(body);
    }
    let checksum = format::file_checksum(&file);
    file[format::CHECKSUM_OFFSET..format::CHECKSUM_OFFSET + 8]
        .copy_from_slice(&checksum.to_le_bytes());
    Ok(file)
}
