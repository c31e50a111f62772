//! The authorization decision, free of FFI: what a request gets, given the current snapshot.
//!
//! `ffi` reads the attributes out of the FreeRADIUS request into an [`AuthorizeInput`], calls
//! [`authorize`] and writes the [`Decision`] back. Everything here is plain Rust over borrowed
//! snapshot data, so it is unit-tested without a server and does not allocate.
//!
//! Rules, in order:
//! 1. Look the subscriber up by User-Name. If there is none and the User-Name is a MAC
//!    address (RouterOS Hotspot MAC login sends the client MAC, `AA:BB:CC:DD:EE:FF`), look it
//!    up by bound MAC instead; such a login is accepted without a password.
//! 2. Nobody found: `NotFound`, or `Reject` if the instance is configured so.
//! 3. Suspended, expired (checked against the clock of this request, so an expiry is enforced
//!    even while the daemon is down) or out of time allowance: `Reject`.
//! 4. Out of data: `Reject`, unless the plan has a fair-use (FUP) rate; then the login is
//!    accepted at that rate with no `Mikrotik-Total-Limit`.
//! 5. A plan limited to PPPoE rejects Hotspot requests and vice versa.
//! 6. A subscriber bound to a MAC is rejected when the request's Calling-Station-Id names
//!    another device (or something that is not a MAC at all, such as a PPTP client's IP).
//! 7. A subscriber with as many open sessions as the plan's simultaneous-use limit is
//!    rejected. The count is the daemon's, from accounting: a session counts once its
//!    Accounting-Start is in Postgres and the snapshot republished (milliseconds), and stops
//!    counting at its Stop, at the router's Accounting-On/Off, or when closed as stale.
//! 8. Otherwise `Accept`, with the reply attributes RouterOS applies. `Session-Timeout` is the
//!    time to expiry or the time allowance left, whichever is shorter.
//!
//! Hotspot vouchers (with `voucher_key_file` configured): a User-Name that matches no
//! subscriber and no MAC login is taken as a voucher code typed by the customer; its lookup
//! name ([`jasiyo_snapshot::voucher`]) is looked up instead. A User-Name that is itself a
//! lookup name never matches, so a leaked dump or snapshot logs nobody in. The module checks
//! a voucher's credentials itself (the code is the secret, and the hotspot sends it as the
//! password, or an empty password, over PAP or HTTP-CHAP), then applies rules 3 to 8 with
//! the rejects worded for the hotspot page ("voucher expired", ...). An unused voucher's
//! validity starts now: `Session-Timeout` is also capped by the plan's duration.

use std::net::{IpAddr, Ipv4Addr};

use jasiyo_snapshot::voucher::{self, LOOKUP_NAME_LEN, VoucherKey};
use jasiyo_snapshot::{Service, Snapshot, SubscriberStatus, SubscriberView};
use md5::{Digest, Md5};

/// RADIUS Service-Type values (RFC 2865 §5.6) that tell RouterOS services apart.
const SERVICE_TYPE_LOGIN_USER: u32 = 1;
const SERVICE_TYPE_FRAMED_USER: u32 = 2;
/// Framed-Protocol PPP (RFC 2865 §5.7).
const FRAMED_PROTOCOL_PPP: u32 = 1;

/// The service a request is for, detected the way RouterOS requests differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// PPPoE, PPTP, L2TP, SSTP, OVPN: `Service-Type = Framed-User` or `Framed-Protocol = PPP`.
    Ppp,
    /// Hotspot: `Service-Type = Login-User`, or a `Mikrotik-Host-IP` attribute.
    Hotspot,
    /// Anything else (e.g. a test client sending neither); plan service is not enforced.
    Unknown,
}

impl ServiceKind {
    /// Classifies a request from its Service-Type, Framed-Protocol and whether it carries
    /// Mikrotik-Host-IP.
    pub fn detect(
        service_type: Option<u32>,
        framed_protocol: Option<u32>,
        has_mikrotik_host_ip: bool,
    ) -> Self {
        if service_type == Some(SERVICE_TYPE_FRAMED_USER)
            || framed_protocol == Some(FRAMED_PROTOCOL_PPP)
        {
            Self::Ppp
        } else if service_type == Some(SERVICE_TYPE_LOGIN_USER) || has_mikrotik_host_ip {
            Self::Hotspot
        } else {
            Self::Unknown
        }
    }
}

/// What an unknown User-Name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownUser {
    /// `notfound`: let later modules (or the default reject) decide.
    NotFound,
    /// `reject`: Access-Reject with a Reply-Message.
    Reject,
}

impl UnknownUser {
    /// Parses the module configuration value (`notfound` or `reject`, case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("notfound") {
            Some(Self::NotFound)
        } else if value.eq_ignore_ascii_case("reject") {
            Some(Self::Reject)
        } else {
            None
        }
    }
}

/// Per-instance settings (from the module's configuration section).
#[derive(Debug, Clone)]
pub struct Config {
    /// What an unknown User-Name gets.
    pub unknown_user: UnknownUser,
    /// `Acct-Interim-Interval` sent in every Access-Accept, in seconds.
    pub acct_interim_interval: u32,
    /// The voucher key (`voucher_key_file`); `None`: vouchers are off.
    pub vouchers: Option<VoucherKey>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            unknown_user: UnknownUser::NotFound,
            acct_interim_interval: 300,
            vouchers: None,
        }
    }
}

/// HTTP-CHAP from the hotspot login page: `CHAP-Password` (identifier and MD5 response) and
/// the challenge it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chap<'a> {
    /// `CHAP-Password`: one identifier byte, then the 16-byte response.
    pub password: &'a [u8],
    /// `CHAP-Challenge`, or the Request Authenticator when the request has none (RFC 2865).
    pub challenge: &'a [u8],
}

/// The credentials a request carries, as far as vouchers need them (subscribers' passwords
/// are checked by FreeRADIUS's pap, chap and mschap against `Cleartext-Password`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Credentials<'a> {
    /// `User-Password` (PAP), decrypted.
    pub user_password: Option<&'a [u8]>,
    /// `CHAP-Password` with its challenge.
    pub chap: Option<Chap<'a>>,
}

/// The parts of an Access-Request the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizeInput<'a> {
    /// User-Name, as sent.
    pub username: &'a [u8],
    /// Which service the router asks for.
    pub service: ServiceKind,
    /// Calling-Station-Id, as sent (the client MAC for PPPoE and Hotspot).
    pub calling_station_id: Option<&'a [u8]>,
    /// The current time in Unix seconds, read for this request.
    pub now: i64,
    /// PAP or CHAP credentials, checked here only for vouchers.
    pub credentials: Credentials<'a>,
}

/// Why a request is rejected. [`RejectReason::message`] is the Reply-Message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No such subscriber, and the instance rejects unknown users.
    UnknownUser,
    /// The operator suspended the account.
    Suspended,
    /// `expires_at` is not in the future.
    Expired,
    /// The data allowance is exhausted and the plan has no fair-use rate.
    DataUsedUp,
    /// The time allowance is exhausted.
    TimeUsedUp,
    /// As many sessions open as the plan allows.
    SimultaneousUse,
    /// A PPPoE-only plan used for a Hotspot login.
    HotspotNotAllowed,
    /// A Hotspot-only plan used for a PPP connection.
    PppoeNotAllowed,
    /// The account is bound to another device's MAC.
    DeviceNotAllowed,
    /// The subscriber's plan is missing from the snapshot (never expected).
    NoPlan,
    /// Rejected later by FreeRADIUS itself: wrong password, or an unknown user with
    /// `unknown_user = notfound`. Deliberately one message for both, so a Hotspot login page
    /// does not reveal which usernames exist. Also a voucher whose password is not its code.
    BadCredentials,
    /// A voucher past its validity (or its batch's last day).
    VoucherExpired,
    /// A voucher's data allowance is used up.
    VoucherDataUsedUp,
    /// A voucher's time allowance is used up.
    VoucherTimeUsedUp,
    /// The voucher's batch was revoked.
    VoucherRevoked,
    /// As many devices online on the voucher as its package allows.
    VoucherInUse,
    /// The voucher is bound to the device that used it first.
    VoucherBound,
}

impl RejectReason {
    /// The Reply-Message text sent to the router (and shown to Hotspot users).
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownUser => "Unknown user",
            Self::Suspended => "Account suspended",
            Self::Expired => "Account expired",
            Self::DataUsedUp => "Data allowance used up",
            Self::TimeUsedUp => "Time allowance used up",
            Self::SimultaneousUse => "Simultaneous-use limit reached",
            Self::HotspotNotAllowed => "Plan does not allow Hotspot",
            Self::PppoeNotAllowed => "Plan does not allow PPPoE",
            Self::DeviceNotAllowed => "Device not allowed",
            Self::NoPlan => "Account has no plan",
            Self::BadCredentials => "Invalid username or password",
            Self::VoucherExpired => "voucher expired",
            Self::VoucherDataUsedUp => "data used up",
            Self::VoucherTimeUsedUp => "time used up",
            Self::VoucherRevoked => "voucher revoked",
            Self::VoucherInUse => "voucher in use on another device",
            Self::VoucherBound => "voucher bound to another device",
        }
    }

    /// The same reason worded for a hotspot customer holding a voucher.
    fn for_voucher(self) -> Self {
        match self {
            Self::Suspended => Self::VoucherRevoked,
            Self::Expired => Self::VoucherExpired,
            Self::DataUsedUp => Self::VoucherDataUsedUp,
            Self::TimeUsedUp => Self::VoucherTimeUsedUp,
            Self::SimultaneousUse => Self::VoucherInUse,
            Self::DeviceNotAllowed => Self::VoucherBound,
            other => other,
        }
    }
}

/// How the accepted user proves who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'s> {
    /// `control:Cleartext-Password`; FreeRADIUS's pap/chap/mschap do the crypto.
    Password(&'s [u8]),
    /// Hotspot MAC login: `control:Auth-Type := Accept`, no password check.
    MacLogin,
    /// A voucher whose credentials this module already checked: `control:Auth-Type := Accept`.
    Voucher,
}

/// Where the subscriber's address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address<'s> {
    /// `Framed-IP-Address`: the subscriber's static address.
    Static(Ipv4Addr),
    /// `Framed-Pool`: the plan's pool on the router.
    Pool(&'s [u8]),
    /// Neither; the router's profile decides.
    RouterDefault,
}

/// `Mikrotik-Total-Limit` and `Mikrotik-Total-Limit-Gigawords`: bytes = gigawords × 2³² + limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalLimit {
    /// Low 32 bits.
    pub limit: u32,
    /// High bits (saturates at `u32::MAX`, far beyond any real allowance).
    pub gigawords: u32,
}

impl TotalLimit {
    /// Splits a byte count into the two attributes.
    pub fn from_bytes(bytes: u64) -> Self {
        Self {
            // Truncation is the point: the low 32 bits.
            limit: (bytes & 0xffff_ffff) as u32,
            gigawords: u32::try_from(bytes >> 32).unwrap_or(u32::MAX),
        }
    }
}

/// Everything an Access-Accept carries. Borrows strings from the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept<'s> {
    /// Subscriber id, for logs.
    pub subscriber_id: i64,
    /// The subscriber's username as stored (differs from User-Name for a MAC login).
    pub username: &'s [u8],
    /// Password, or MAC login.
    pub credential: Credential<'s>,
    /// `Mikrotik-Rate-Limit`; omitted when empty. The plan's fair-use rate when `fair_use`.
    pub rate_limit: &'s [u8],
    /// The data allowance is used up and the plan's fair-use rate applies (for logs).
    pub fair_use: bool,
    /// `Session-Timeout`: seconds until expiry or the time allowance left, whichever is
    /// shorter, at least 1.
    pub session_timeout: u32,
    /// `Acct-Interim-Interval`.
    pub acct_interim_interval: u32,
    /// `Framed-IP-Address` or `Framed-Pool`.
    pub address: Address<'s>,
    /// Present when a data allowance applies (and is not used up).
    pub total_limit: Option<TotalLimit>,
    /// An unused voucher: this login starts its validity (post-auth journals its first use).
    pub first_use: bool,
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'s> {
    /// Unknown user; the module returns `notfound`.
    NotFound,
    /// Access-Reject with the reason as Reply-Message.
    Reject(RejectReason),
    /// Access-Accept (once pap/chap/mschap have checked the password).
    Accept(Accept<'s>),
}

/// Decides what `input` gets from `snapshot`.
pub fn authorize<'s>(
    snapshot: &'s Snapshot,
    config: &Config,
    input: &AuthorizeInput<'_>,
) -> Decision<'s> {
    match find(snapshot, config, input.username) {
        Found::Subscriber(sub) => decide(sub, Credential::Password(sub.password()), config, input),
        Found::MacLogin(sub) => decide(sub, Credential::MacLogin, config, input),
        Found::Voucher(sub) => {
            if !voucher_credentials_ok(input.username, &input.credentials) {
                return Decision::Reject(RejectReason::BadCredentials);
            }
            match decide(sub, Credential::Voucher, config, input) {
                Decision::Reject(reason) => Decision::Reject(reason.for_voucher()),
                other => other,
            }
        }
        Found::Nobody => match config.unknown_user {
            UnknownUser::NotFound => Decision::NotFound,
            UnknownUser::Reject => Decision::Reject(RejectReason::UnknownUser),
        },
    }
}

/// Whom a User-Name names.
enum Found<'s> {
    Subscriber(SubscriberView<'s>),
    MacLogin(SubscriberView<'s>),
    Voucher(SubscriberView<'s>),
    Nobody,
}

/// Username, then MAC login, then voucher code (see the module documentation).
fn find<'s>(snapshot: &'s Snapshot, config: &Config, username: &[u8]) -> Found<'s> {
    // A lookup name typed as User-Name is refused here: only a code may reach a voucher.
    if !voucher::is_lookup_name(username) {
        if let Some(sub) = snapshot.subscriber_by_username(username) {
            return Found::Subscriber(sub);
        }
    }
    if let Some(sub) = parse_mac(username).and_then(|mac| snapshot.subscriber_by_mac(mac)) {
        return Found::MacLogin(sub);
    }
    let Some(key) = &config.vouchers else {
        return Found::Nobody;
    };
    let mut name = [0u8; LOOKUP_NAME_LEN];
    key.lookup_name_into(username, &mut name)
        .and_then(|name| snapshot.subscriber_by_username(name.as_bytes()))
        .map_or(Found::Nobody, Found::Voucher)
}

pub use jasiyo_snapshot::voucher::FIRST_USE_REASON as VOUCHER_FIRST_USE;

/// How post-auth journals a request: under the voucher's lookup name when the User-Name is a
/// voucher code (so no code reaches the database), and whether an accept of it is the
/// voucher's first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalName<'a> {
    /// The lookup name of a voucher, else the User-Name as sent.
    pub username: &'a [u8],
    /// A voucher nobody had used in the snapshot this request was decided on.
    pub unused_voucher: bool,
}

/// The name post-auth journals for a request whose User-Name is `username`.
pub fn journal_name<'a>(
    snapshot: &'a Snapshot,
    config: &Config,
    username: &'a [u8],
) -> JournalName<'a> {
    match find(snapshot, config, username) {
        Found::Voucher(sub) => JournalName {
            username: sub.username(),
            unused_voucher: sub.unused(),
        },
        _ => JournalName {
            username,
            unused_voucher: false,
        },
    }
}

/// Whether a voucher login's credentials are the code: a PAP password that is the code
/// (compared normalized, so case and dashes do not matter) or empty or absent, or a CHAP
/// response computed from the code as sent, its normalized form, or the empty password.
/// Each is what a MikroTik hotspot login page sends for a voucher, depending on its form.
fn voucher_credentials_ok(code: &[u8], credentials: &Credentials<'_>) -> bool {
    let mut normalized = [0u8; 32];
    let normalized = voucher::normalize_into(code, &mut normalized).map(|len| &normalized[..len]);
    if let Some(chap) = credentials.chap {
        return [Some(code), normalized, Some(&b""[..])]
            .into_iter()
            .flatten()
            .any(|secret| chap_matches(&chap, secret));
    }
    match credentials.user_password {
        None | Some(b"") => true,
        Some(password) => {
            let mut typed = [0u8; 32];
            let typed = voucher::normalize_into(password, &mut typed).map(|len| &typed[..len]);
            typed.is_some() && typed == normalized
        }
    }
}

/// RFC 1994 CHAP with MD5: response = MD5(identifier || secret || challenge).
fn chap_matches(chap: &Chap<'_>, secret: &[u8]) -> bool {
    let [ident, response @ ..] = chap.password else {
        return false;
    };
    if response.len() != 16 {
        return false;
    }
    let digest = Md5::new()
        .chain_update([*ident])
        .chain_update(secret)
        .chain_update(chap.challenge)
        .finalize();
    digest.as_slice() == response
}

fn decide<'s>(
    sub: SubscriberView<'s>,
    credential: Credential<'s>,
    config: &Config,
    input: &AuthorizeInput<'_>,
) -> Decision<'s> {
    if sub.status() == SubscriberStatus::Suspended {
        return Decision::Reject(RejectReason::Suspended);
    }
    let remaining = sub.expires_at().saturating_sub(input.now);
    if remaining <= 0 {
        return Decision::Reject(RejectReason::Expired);
    }
    let time_left = sub.time_remaining_seconds();
    if time_left == Some(0) {
        return Decision::Reject(RejectReason::TimeUsedUp);
    }
    // The snapshot validates plan references when it is opened; a miss is refused safely.
    let Some(plan) = sub.plan() else {
        return Decision::Reject(RejectReason::NoPlan);
    };
    let fup_rate = plan.fup_rate_limit().filter(|r| !r.is_empty());
    let fair_use = sub.data_remaining_bytes() == Some(0);
    if fair_use && fup_rate.is_none() {
        return Decision::Reject(RejectReason::DataUsedUp);
    }
    match (plan.service(), input.service) {
        (Service::Pppoe, ServiceKind::Hotspot) => {
            return Decision::Reject(RejectReason::HotspotNotAllowed);
        }
        (Service::Hotspot, ServiceKind::Ppp) => {
            return Decision::Reject(RejectReason::PppoeNotAllowed);
        }
        _ => {}
    }
    if let (Some(bound), Some(station)) = (sub.mac(), input.calling_station_id) {
        if parse_mac(station) != Some(bound) {
            return Decision::Reject(RejectReason::DeviceNotAllowed);
        }
    }
    if let Some(limit) = plan.simultaneous_use() {
        if u32::from(sub.open_sessions()) >= limit.get() {
            return Decision::Reject(RejectReason::SimultaneousUse);
        }
    }
    // An unused voucher's validity starts with this login: no longer than the plan's
    // duration, nor past the batch's last day (`remaining`).
    let first_use = sub.unused();
    let remaining = if first_use {
        remaining.min(i64::try_from(plan.duration_seconds().max(1)).unwrap_or(i64::MAX))
    } else {
        remaining
    };
    let address = match (sub.static_ip(), plan.ip_pool()) {
        (Some(ip), _) => Address::Static(ip),
        (None, Some(pool)) if !pool.is_empty() => Address::Pool(pool),
        _ => Address::RouterDefault,
    };
    // `remaining` > 0 and `time_left` != 0 here, so the timeout is at least 1.
    let timeout = time_left.map_or(remaining, |t| {
        remaining.min(i64::try_from(t).unwrap_or(i64::MAX))
    });
    Decision::Accept(Accept {
        subscriber_id: sub.id(),
        username: sub.username(),
        credential,
        rate_limit: match fup_rate {
            Some(rate) if fair_use => rate,
            _ => plan.rate_limit(),
        },
        fair_use,
        session_timeout: u32::try_from(timeout).unwrap_or(u32::MAX),
        acct_interim_interval: config.acct_interim_interval,
        address,
        // At zero the FUP rate is the limit; a Total-Limit of 0 would cut the session at once.
        total_limit: sub
            .data_remaining_bytes()
            .filter(|_| !fair_use)
            .map(TotalLimit::from_bytes),
        first_use,
    })
}

/// A dynamic RADIUS client (router) definition for FreeRADIUS's dynamic-clients server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDecision<'s> {
    /// `FreeRADIUS-Client-Secret`.
    pub secret: &'s [u8],
    /// `FreeRADIUS-Client-Shortname`: the router's name.
    pub shortname: &'s [u8],
    /// `FreeRADIUS-Client-NAS-Type`.
    pub nas_type: &'static str,
}

/// The client definition for a packet from `source`, if a router with that address exists.
pub fn dynamic_client(snapshot: &Snapshot, source: IpAddr) -> Option<ClientDecision<'_>> {
    let router = snapshot.router_by_ip(normalize_ip(source))?;
    Some(ClientDecision {
        secret: router.secret(),
        shortname: router.name(),
        nas_type: "other",
    })
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 router it maps.
fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Parses a MAC address written as six hex pairs separated by `:` or `-` (either case), the
/// form RouterOS uses in User-Name (MAC login) and Calling-Station-Id.
pub fn parse_mac(text: &[u8]) -> Option<[u8; 6]> {
    if text.len() != 17 {
        return None;
    }
    let separator = text[2];
    if separator != b':' && separator != b'-' {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        let at = i * 3;
        if i > 0 && text[at - 1] != separator {
            return None;
        }
        *byte = (hex_digit(text[at])? << 4) | hex_digit(text[at + 1])?;
    }
    Some(mac)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jasiyo_snapshot::{PlanEntry, RouterEntry, SubscriberEntry, build_snapshot};
    use std::net::Ipv6Addr;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const MAC: [u8; 6] = [0xEC, 0xF4, 0xBB, 0xFA, 0x36, 0xC9];

    fn plan(id: i64, service: Service, pool: Option<&str>) -> PlanEntry {
        PlanEntry {
            id,
            rate_limit: "2M/10M 4M/20M 1500k/8M 16/16 8 1M/5M".to_owned(),
            ip_pool: pool.map(str::to_owned),
            service,
            // Unlimited here, so that the tests of other rules are not about this one.
            simultaneous_use: None,
            fup_rate_limit: None,
            duration_seconds: 30 * DAY as u64,
        }
    }

    fn sub(id: i64, username: &str, plan_id: i64) -> SubscriberEntry {
        SubscriberEntry {
            id,
            username: username.to_owned(),
            password: format!("pw-{username}"),
            plan_id,
            status: SubscriberStatus::Active,
            expires_at: NOW + DAY,
            static_ip: None,
            mac: None,
            data_remaining_bytes: None,
            time_remaining_seconds: None,
            open_sessions: 0,
            unused: false,
        }
    }

    fn snapshot() -> Snapshot {
        let plans = [
            plan(1, Service::Both, Some("pool-home")),
            plan(2, Service::Pppoe, None),
            plan(3, Service::Hotspot, Some("hs-pool")),
            PlanEntry {
                simultaneous_use: std::num::NonZeroU32::new(2),
                fup_rate_limit: Some("256k/512k".to_owned()),
                ..plan(4, Service::Both, None)
            },
            PlanEntry {
                simultaneous_use: std::num::NonZeroU32::new(1),
                ..plan(5, Service::Pppoe, None)
            },
        ];
        let routers = [
            RouterEntry {
                id: 1,
                ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                secret: "s3cret".to_owned(),
                nas_identifier: Some("MikroTik".to_owned()),
                name: "kibera-core".to_owned(),
            },
            RouterEntry {
                id: 2,
                ip: IpAddr::V6("2001:db8::1".parse().unwrap()),
                secret: "v6secret".to_owned(),
                nas_identifier: None,
                name: "v6-router".to_owned(),
            },
        ];
        let mut subs = vec![
            sub(1, "alice", 1),
            SubscriberEntry {
                status: SubscriberStatus::Suspended,
                ..sub(2, "suspended", 1)
            },
            SubscriberEntry {
                expires_at: NOW - 1,
                ..sub(3, "expired", 1)
            },
            SubscriberEntry {
                expires_at: NOW,
                ..sub(4, "expires-now", 1)
            },
            SubscriberEntry {
                data_remaining_bytes: Some(0),
                ..sub(5, "nodata", 1)
            },
            SubscriberEntry {
                data_remaining_bytes: Some(5 * (1 << 32) + 123),
                ..sub(6, "capped", 1)
            },
            sub(7, "pppoe-only", 2),
            sub(8, "hotspot-only", 3),
            SubscriberEntry {
                mac: Some(MAC),
                ..sub(9, "bound", 1)
            },
            SubscriberEntry {
                static_ip: Some(Ipv4Addr::new(100, 64, 0, 7)),
                ..sub(10, "static", 1)
            },
            SubscriberEntry {
                expires_at: NOW + i64::from(u32::MAX) + 10,
                ..sub(11, "forever", 2)
            },
        ];
        subs.extend([
            SubscriberEntry {
                time_remaining_seconds: Some(0),
                ..sub(13, "notime", 1)
            },
            SubscriberEntry {
                time_remaining_seconds: Some(600),
                ..sub(14, "short-time", 1)
            },
            SubscriberEntry {
                time_remaining_seconds: Some(10 * DAY as u64),
                ..sub(15, "long-time", 1)
            },
            SubscriberEntry {
                data_remaining_bytes: Some(0),
                ..sub(16, "fup", 4)
            },
            SubscriberEntry {
                data_remaining_bytes: Some(1 << 20),
                open_sessions: 1,
                ..sub(17, "fup-plan-with-data", 4)
            },
            SubscriberEntry {
                open_sessions: 2,
                ..sub(18, "two-open", 4)
            },
            SubscriberEntry {
                open_sessions: 1,
                ..sub(19, "one-open", 5)
            },
            sub(20, "none-open", 5),
            SubscriberEntry {
                open_sessions: 40,
                ..sub(21, "unlimited-open", 1)
            },
            SubscriberEntry {
                time_remaining_seconds: Some(0),
                data_remaining_bytes: Some(0),
                ..sub(22, "fup-no-time", 4)
            },
        ]);
        // Both suspended and expired: suspension is reported.
        subs.push(SubscriberEntry {
            status: SubscriberStatus::Suspended,
            expires_at: NOW - DAY,
            ..sub(12, "suspended-expired", 1)
        });
        let bytes = build_snapshot(7, NOW, &plans, &routers, &subs).unwrap();
        Snapshot::from_bytes(bytes).unwrap()
    }

    fn input(username: &str) -> AuthorizeInput<'_> {
        AuthorizeInput {
            username: username.as_bytes(),
            service: ServiceKind::Unknown,
            calling_station_id: None,
            now: NOW,
            credentials: Credentials::default(),
        }
    }

    fn accept<'s>(decision: Decision<'s>) -> Accept<'s> {
        match decision {
            Decision::Accept(a) => a,
            other => panic!("expected Accept, got {other:?}"),
        }
    }

    #[test]
    fn active_user_gets_password_and_reply_attributes() {
        let snap = snapshot();
        let a = accept(authorize(&snap, &Config::default(), &input("alice")));
        assert_eq!(a.subscriber_id, 1);
        assert_eq!(a.username, b"alice");
        assert_eq!(a.credential, Credential::Password(b"pw-alice"));
        assert_eq!(a.rate_limit, b"2M/10M 4M/20M 1500k/8M 16/16 8 1M/5M");
        assert_eq!(a.session_timeout, 86_400);
        assert_eq!(a.acct_interim_interval, 300);
        assert_eq!(a.address, Address::Pool(b"pool-home"));
        assert_eq!(a.total_limit, None);
        assert!(!a.fair_use);
    }

    #[test]
    fn time_allowance_rejects_at_zero_and_caps_session_timeout() {
        let snap = snapshot();
        let config = Config::default();
        assert_eq!(
            authorize(&snap, &config, &input("notime")),
            Decision::Reject(RejectReason::TimeUsedUp)
        );
        // Less time left than validity: the allowance is the timeout.
        assert_eq!(
            accept(authorize(&snap, &config, &input("short-time"))).session_timeout,
            600
        );
        // More time left than validity: expiry is.
        assert_eq!(
            accept(authorize(&snap, &config, &input("long-time"))).session_timeout,
            86_400
        );
        let mut late = input("short-time");
        late.now = NOW + DAY - 30;
        assert_eq!(accept(authorize(&snap, &config, &late)).session_timeout, 30);
        // FUP is about data; time used up still rejects.
        assert_eq!(
            authorize(&snap, &config, &input("fup-no-time")),
            Decision::Reject(RejectReason::TimeUsedUp)
        );
    }

    #[test]
    fn out_of_data_gets_the_fup_rate_when_the_plan_has_one() {
        let snap = snapshot();
        let config = Config::default();
        let a = accept(authorize(&snap, &config, &input("fup")));
        assert!(a.fair_use);
        assert_eq!(a.rate_limit, b"256k/512k");
        assert_eq!(a.total_limit, None);
        // Same plan, data left: the plan's own rate and the allowance as Total-Limit.
        let a = accept(authorize(&snap, &config, &input("fup-plan-with-data")));
        assert!(!a.fair_use);
        assert_eq!(a.rate_limit, b"2M/10M 4M/20M 1500k/8M 16/16 8 1M/5M");
        assert_eq!(
            a.total_limit,
            Some(TotalLimit {
                limit: 1 << 20,
                gigawords: 0
            })
        );
        // A plan without a FUP rate still rejects at zero.
        assert_eq!(
            authorize(&snap, &config, &input("nodata")),
            Decision::Reject(RejectReason::DataUsedUp)
        );
    }

    #[test]
    fn simultaneous_use_limit_counts_open_sessions() {
        let snap = snapshot();
        let config = Config::default();
        // Plan 4 allows 2: one open is fine, two are the limit.
        assert!(matches!(
            authorize(&snap, &config, &input("fup-plan-with-data")),
            Decision::Accept(_)
        ));
        assert_eq!(
            authorize(&snap, &config, &input("two-open")),
            Decision::Reject(RejectReason::SimultaneousUse)
        );
        // Plan 5 allows 1.
        assert_eq!(
            authorize(&snap, &config, &input("one-open")),
            Decision::Reject(RejectReason::SimultaneousUse)
        );
        assert!(matches!(
            authorize(&snap, &config, &input("none-open")),
            Decision::Accept(_)
        ));
        // No limit on the plan.
        assert!(matches!(
            authorize(&snap, &config, &input("unlimited-open")),
            Decision::Accept(_)
        ));
        // The account's own state is reported first.
        assert_eq!(
            authorize(
                &snap,
                &config,
                &AuthorizeInput {
                    service: ServiceKind::Hotspot,
                    ..input("one-open")
                }
            ),
            Decision::Reject(RejectReason::HotspotNotAllowed)
        );
    }

    #[test]
    fn session_timeout_follows_the_request_clock() {
        let snap = snapshot();
        let mut req = input("alice");
        req.now = NOW + DAY - 90;
        assert_eq!(
            accept(authorize(&snap, &Config::default(), &req)).session_timeout,
            90
        );
        // The same snapshot, a later clock: expired without any new publication.
        req.now = NOW + DAY;
        assert_eq!(
            authorize(&snap, &Config::default(), &req),
            Decision::Reject(RejectReason::Expired)
        );
    }

    #[test]
    fn session_timeout_clamps_to_u32() {
        let snap = snapshot();
        let a = accept(authorize(&snap, &Config::default(), &input("forever")));
        assert_eq!(a.session_timeout, u32::MAX);
    }

    #[test]
    fn interim_interval_comes_from_config() {
        let snap = snapshot();
        let config = Config {
            acct_interim_interval: 60,
            ..Config::default()
        };
        assert_eq!(
            accept(authorize(&snap, &config, &input("alice"))).acct_interim_interval,
            60
        );
    }

    #[test]
    fn unknown_user_is_notfound_or_reject_as_configured() {
        let snap = snapshot();
        assert_eq!(
            authorize(&snap, &Config::default(), &input("mallory")),
            Decision::NotFound
        );
        let reject = Config {
            unknown_user: UnknownUser::Reject,
            ..Config::default()
        };
        assert_eq!(
            authorize(&snap, &reject, &input("mallory")),
            Decision::Reject(RejectReason::UnknownUser)
        );
        assert_eq!(
            authorize(&snap, &Config::default(), &input("")),
            Decision::NotFound
        );
    }

    #[test]
    fn suspended_expired_and_out_of_data_are_rejected() {
        let snap = snapshot();
        let config = Config::default();
        let cases = [
            ("suspended", RejectReason::Suspended),
            ("expired", RejectReason::Expired),
            ("expires-now", RejectReason::Expired),
            ("nodata", RejectReason::DataUsedUp),
            ("suspended-expired", RejectReason::Suspended),
        ];
        for (user, reason) in cases {
            assert_eq!(
                authorize(&snap, &config, &input(user)),
                Decision::Reject(reason),
                "{user}"
            );
        }
    }

    #[test]
    fn reject_messages() {
        assert_eq!(RejectReason::Suspended.message(), "Account suspended");
        assert_eq!(RejectReason::Expired.message(), "Account expired");
        assert_eq!(RejectReason::DataUsedUp.message(), "Data allowance used up");
        assert_eq!(RejectReason::TimeUsedUp.message(), "Time allowance used up");
        assert_eq!(
            RejectReason::SimultaneousUse.message(),
            "Simultaneous-use limit reached"
        );
        assert_eq!(
            RejectReason::HotspotNotAllowed.message(),
            "Plan does not allow Hotspot"
        );
        assert_eq!(
            RejectReason::PppoeNotAllowed.message(),
            "Plan does not allow PPPoE"
        );
        assert_eq!(
            RejectReason::DeviceNotAllowed.message(),
            "Device not allowed"
        );
    }

    #[test]
    fn data_allowance_becomes_total_limit_and_gigawords() {
        let snap = snapshot();
        let a = accept(authorize(&snap, &Config::default(), &input("capped")));
        assert_eq!(
            a.total_limit,
            Some(TotalLimit {
                limit: 123,
                gigawords: 5
            })
        );
        assert_eq!(
            TotalLimit::from_bytes(u64::MAX),
            TotalLimit {
                limit: u32::MAX,
                gigawords: u32::MAX
            }
        );
        assert_eq!(
            TotalLimit::from_bytes(1 << 32),
            TotalLimit {
                limit: 0,
                gigawords: 1
            }
        );
    }

    #[test]
    fn static_ip_wins_over_pool_and_no_pool_means_router_default() {
        let snap = snapshot();
        let config = Config::default();
        assert_eq!(
            accept(authorize(&snap, &config, &input("static"))).address,
            Address::Static(Ipv4Addr::new(100, 64, 0, 7))
        );
        assert_eq!(
            accept(authorize(&snap, &config, &input("pppoe-only"))).address,
            Address::RouterDefault
        );
    }

    #[test]
    fn plan_service_restricts_the_request_service() {
        let snap = snapshot();
        let config = Config::default();
        let with = |user, service| AuthorizeInput {
            service,
            ..input(user)
        };
        assert_eq!(
            authorize(&snap, &config, &with("pppoe-only", ServiceKind::Hotspot)),
            Decision::Reject(RejectReason::HotspotNotAllowed)
        );
        assert_eq!(
            authorize(&snap, &config, &with("hotspot-only", ServiceKind::Ppp)),
            Decision::Reject(RejectReason::PppoeNotAllowed)
        );
        for (user, service) in [
            ("pppoe-only", ServiceKind::Ppp),
            ("pppoe-only", ServiceKind::Unknown),
            ("hotspot-only", ServiceKind::Hotspot),
            ("hotspot-only", ServiceKind::Unknown),
            ("alice", ServiceKind::Ppp),
            ("alice", ServiceKind::Hotspot),
        ] {
            assert!(
                matches!(
                    authorize(&snap, &config, &with(user, service)),
                    Decision::Accept(_)
                ),
                "{user} {service:?}"
            );
        }
    }

    #[test]
    fn service_detection_matches_routeros() {
        // PPPoE / PPTP: Service-Type = Framed-User, Framed-Protocol = PPP.
        assert_eq!(
            ServiceKind::detect(Some(2), Some(1), false),
            ServiceKind::Ppp
        );
        assert_eq!(ServiceKind::detect(None, Some(1), false), ServiceKind::Ppp);
        assert_eq!(ServiceKind::detect(Some(2), None, false), ServiceKind::Ppp);
        // Hotspot: Service-Type = Login-User, Mikrotik-Host-IP.
        assert_eq!(
            ServiceKind::detect(Some(1), None, true),
            ServiceKind::Hotspot
        );
        assert_eq!(
            ServiceKind::detect(Some(1), None, false),
            ServiceKind::Hotspot
        );
        assert_eq!(ServiceKind::detect(None, None, true), ServiceKind::Hotspot);
        // radtest: nothing.
        assert_eq!(ServiceKind::detect(None, None, false), ServiceKind::Unknown);
        assert_eq!(
            ServiceKind::detect(Some(8), None, false),
            ServiceKind::Unknown
        );
    }

    #[test]
    fn mac_bound_account_checks_calling_station_id() {
        let snap = snapshot();
        let config = Config::default();
        let from = |station: &'static str| AuthorizeInput {
            calling_station_id: Some(station.as_bytes()),
            ..input("bound")
        };
        assert!(matches!(
            authorize(&snap, &config, &from("EC:F4:BB:FA:36:C9")),
            Decision::Accept(_)
        ));
        assert!(matches!(
            authorize(&snap, &config, &from("ec-f4-bb-fa-36-c9")),
            Decision::Accept(_)
        ));
        assert_eq!(
            authorize(&snap, &config, &from("EC:F4:BB:FA:36:CA")),
            Decision::Reject(RejectReason::DeviceNotAllowed)
        );
        // A PPTP Calling-Station-Id is the client's IP: not the bound device.
        assert_eq!(
            authorize(&snap, &config, &from("203.0.113.9")),
            Decision::Reject(RejectReason::DeviceNotAllowed)
        );
        // No Calling-Station-Id at all: nothing to compare.
        assert!(matches!(
            authorize(&snap, &config, &input("bound")),
            Decision::Accept(_)
        ));
        // Accounts without a bound MAC ignore the station.
        assert!(matches!(
            authorize(
                &snap,
                &config,
                &AuthorizeInput {
                    calling_station_id: Some(b"11:22:33:44:55:66"),
                    ..input("alice")
                }
            ),
            Decision::Accept(_)
        ));
    }

    #[test]
    fn hotspot_mac_login_finds_the_bound_subscriber() {
        let snap = snapshot();
        let config = Config::default();
        for name in [
            "EC:F4:BB:FA:36:C9",
            "ec:f4:bb:fa:36:c9",
            "EC-F4-BB-FA-36-C9",
        ] {
            let req = AuthorizeInput {
                username: name.as_bytes(),
                service: ServiceKind::Hotspot,
                calling_station_id: Some(b"EC:F4:BB:FA:36:C9"),
                now: NOW,
                credentials: Credentials::default(),
            };
            let a = accept(authorize(&snap, &config, &req));
            assert_eq!(a.credential, Credential::MacLogin, "{name}");
            assert_eq!(a.username, b"bound");
            assert_eq!(a.subscriber_id, 9);
        }
        // A MAC nobody is bound to is just an unknown user.
        assert_eq!(
            authorize(&snap, &config, &input("AA:BB:CC:DD:EE:FF")),
            Decision::NotFound
        );
    }

    #[test]
    fn parse_mac_accepts_routeros_forms_only() {
        assert_eq!(parse_mac(b"EC:F4:BB:FA:36:C9"), Some(MAC));
        assert_eq!(parse_mac(b"ec:f4:bb:fa:36:c9"), Some(MAC));
        assert_eq!(parse_mac(b"EC-F4-BB-FA-36-C9"), Some(MAC));
        for bad in [
            &b""[..],
            b"EC:F4:BB:FA:36",
            b"EC:F4:BB:FA:36:C9:00",
            b"EC:F4-BB:FA:36:C9",
            b"EC.F4.BB.FA.36.C9",
            b"ECF4BBFA36C9",
            b"EG:F4:BB:FA:36:C9",
            b"EC:F4:BB:FA:36:C ",
            b"alice-the-tester!",
        ] {
            assert_eq!(parse_mac(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn unknown_user_config_parses() {
        assert_eq!(UnknownUser::parse("notfound"), Some(UnknownUser::NotFound));
        assert_eq!(UnknownUser::parse("Reject"), Some(UnknownUser::Reject));
        assert_eq!(UnknownUser::parse("accept"), None);
    }

    #[test]
    fn dynamic_client_by_source_address() {
        let snap = snapshot();
        let c = dynamic_client(&snap, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).unwrap();
        assert_eq!(c.secret, b"s3cret");
        assert_eq!(c.shortname, b"kibera-core");
        assert_eq!(c.nas_type, "other");
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(dynamic_client(&snap, mapped), Some(c));
        let v6 = dynamic_client(&snap, "2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(v6.secret, b"v6secret");
        assert_eq!(
            dynamic_client(&snap, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
            None
        );
        assert_eq!(dynamic_client(&snap, IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
    }

    // Vouchers.

    const PHONE: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn key() -> VoucherKey {
        VoucherKey::from_hex(&"6b".repeat(32)).unwrap()
    }

    fn voucher_config() -> Config {
        Config {
            vouchers: Some(key()),
            ..Config::default()
        }
    }

    /// A voucher of plan 30 (1 day validity, 1 device, 1 hour online) unless changed.
    fn voucher(id: i64, code: &str) -> SubscriberEntry {
        SubscriberEntry {
            username: key().lookup_name(code).unwrap(),
            password: String::new(),
            time_remaining_seconds: Some(3600),
            ..sub(id, "unused", 30)
        }
    }

    fn voucher_snapshot() -> Snapshot {
        let plans = [
            PlanEntry {
                rate_limit: "2M/4M".to_owned(),
                duration_seconds: DAY as u64,
                simultaneous_use: std::num::NonZeroU32::new(1),
                ..plan(30, Service::Hotspot, None)
            },
            PlanEntry {
                duration_seconds: 1800,
                ..plan(31, Service::Hotspot, None)
            },
            plan(32, Service::Pppoe, None),
        ];
        let unused = |id, code| SubscriberEntry {
            unused: true,
            // An unused voucher without a batch end date (9999-12-31).
            expires_at: 253_402_214_400,
            ..voucher(id, code)
        };
        let subs = [
            unused(1, "HX7KQ9MZ"),
            SubscriberEntry {
                expires_at: NOW + 600,
                ..unused(2, "UNTIL600")
            },
            SubscriberEntry {
                time_remaining_seconds: None,
                data_remaining_bytes: Some(1 << 30),
                plan_id: 31,
                ..unused(3, "DATA1GB7")
            },
            SubscriberEntry {
                expires_at: NOW - 1,
                ..unused(4, "PASTEND7")
            },
            SubscriberEntry {
                expires_at: NOW + 7200,
                time_remaining_seconds: Some(1000),
                data_remaining_bytes: Some(5 * (1 << 32) + 7),
                ..voucher(5, "ACTIVE77")
            },
            SubscriberEntry {
                expires_at: NOW - 1,
                ..voucher(6, "EXPIRED7")
            },
            SubscriberEntry {
                time_remaining_seconds: None,
                data_remaining_bytes: Some(0),
                plan_id: 31,
                ..voucher(7, "NODATA77")
            },
            SubscriberEntry {
                time_remaining_seconds: Some(0),
                ..voucher(8, "NOTIME77")
            },
            SubscriberEntry {
                status: SubscriberStatus::Suspended,
                unused: true,
                ..voucher(9, "REVOKED7")
            },
            SubscriberEntry {
                open_sessions: 1,
                ..voucher(10, "INUSE777")
            },
            SubscriberEntry {
                mac: Some(PHONE),
                ..voucher(11, "BOUND777")
            },
            SubscriberEntry {
                plan_id: 32,
                ..voucher(12, "PPPOE777")
            },
            // An operator's subscriber whose username happens to look like a code.
            sub(13, "ZX9QWERT", 32),
        ];
        let bytes = build_snapshot(9, NOW, &plans, &[], &subs).unwrap();
        Snapshot::from_bytes(bytes).unwrap()
    }

    fn hotspot<'a>(code: &'a str, password: Option<&'a str>) -> AuthorizeInput<'a> {
        AuthorizeInput {
            service: ServiceKind::Hotspot,
            calling_station_id: Some(b"02:11:22:33:44:55"),
            credentials: Credentials {
                user_password: password.map(str::as_bytes),
                chap: None,
            },
            ..input(code)
        }
    }

    #[test]
    fn unused_voucher_is_accepted_and_its_validity_starts_now() {
        let snap = voucher_snapshot();
        let config = voucher_config();
        let a = accept(authorize(
            &snap,
            &config,
            &hotspot("HX7KQ9MZ", Some("HX7KQ9MZ")),
        ));
        assert_eq!(a.subscriber_id, 1);
        assert_eq!(a.credential, Credential::Voucher);
        assert!(a.first_use);
        assert_eq!(
            a.username,
            key().lookup_name("HX7KQ9MZ").unwrap().as_bytes()
        );
        assert_eq!(a.rate_limit, b"2M/4M");
        // One hour online inside a day of validity: the hour.
        assert_eq!(a.session_timeout, 3600);
        assert_eq!(a.total_limit, None);
        // The batch ends in 10 minutes: that is sooner than the hour.
        let a = accept(authorize(&snap, &config, &hotspot("UNTIL600", None)));
        assert_eq!(a.session_timeout, 600);
        // No time allowance: the plan's duration (30 min) from now, and data as Total-Limit.
        let a = accept(authorize(&snap, &config, &hotspot("DATA1GB7", None)));
        assert_eq!(a.session_timeout, 1800);
        assert_eq!(a.total_limit, Some(TotalLimit::from_bytes(1 << 30)));
    }

    #[test]
    fn active_voucher_gets_what_is_left() {
        let snap = voucher_snapshot();
        let a = accept(authorize(
            &snap,
            &voucher_config(),
            &hotspot("ACTIVE77", Some("")),
        ));
        assert!(!a.first_use);
        // 1000 s of time left, 2 h of validity left.
        assert_eq!(a.session_timeout, 1000);
        assert_eq!(
            a.total_limit,
            Some(TotalLimit {
                limit: 7,
                gigawords: 5
            })
        );
        let mut late = hotspot("ACTIVE77", None);
        late.now = NOW + 7200 - 20;
        assert_eq!(
            accept(authorize(&snap, &voucher_config(), &late)).session_timeout,
            20
        );
    }

    #[test]
    fn codes_may_be_typed_in_any_case_and_with_dashes() {
        let snap = voucher_snapshot();
        let config = voucher_config();
        for typed in ["hx7kq9mz", "HX7K-Q9MZ", "hx7k-q9mz", "Hx7k-Q9Mz"] {
            let a = accept(authorize(&snap, &config, &hotspot(typed, Some(typed))));
            assert_eq!(a.subscriber_id, 1, "{typed}");
            // The password may be typed differently from the username, too.
            let a = accept(authorize(&snap, &config, &hotspot(typed, Some("HX7KQ9MZ"))));
            assert_eq!(a.subscriber_id, 1, "{typed}");
        }
    }

    #[test]
    fn pap_password_must_be_the_code_or_empty() {
        let snap = voucher_snapshot();
        let config = voucher_config();
        for password in [None, Some(""), Some("HX7KQ9MZ"), Some(" hx7k-q9mz ")] {
            assert!(
                matches!(
                    authorize(&snap, &config, &hotspot("HX7KQ9MZ", password)),
                    Decision::Accept(_)
                ),
                "{password:?}"
            );
        }
        for password in ["HX7KQ9MY", "x", "HX7KQ9MZ!", "ACTIVE77"] {
            assert_eq!(
                authorize(&snap, &config, &hotspot("HX7KQ9MZ", Some(password))),
                Decision::Reject(RejectReason::BadCredentials),
                "{password}"
            );
        }
    }

    fn chap_response(ident: u8, secret: &[u8], challenge: &[u8]) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[0] = ident;
        let digest = Md5::new()
            .chain_update([ident])
            .chain_update(secret)
            .chain_update(challenge)
            .finalize();
        out[1..].copy_from_slice(&digest);
        out
    }

    #[test]
    fn http_chap_answers_the_challenge_with_the_code_or_nothing() {
        let snap = voucher_snapshot();
        let config = voucher_config();
        let challenge = [0x5c; 16];
        for (typed, secret) in [
            ("hx7k-q9mz", &b"hx7k-q9mz"[..]),
            ("hx7k-q9mz", b"HX7KQ9MZ"),
            ("HX7KQ9MZ", b""),
        ] {
            let response = chap_response(7, secret, &challenge);
            assert!(
                matches!(
                    authorize(&snap, &config, &chap_input(typed, &response, &challenge)),
                    Decision::Accept(_)
                ),
                "{typed} {secret:?}"
            );
        }
        let wrong = chap_response(7, b"HX7KQ9MY", &challenge);
        // A response to another challenge than the one sent.
        let stale = chap_response(7, b"HX7KQ9MZ", &[0; 16]);
        // Malformed CHAP-Passwords (not 17 bytes) are refused, not read out of bounds.
        for password in [&wrong[..], &stale, b"", &[7; 16], &[7; 18]] {
            assert_eq!(
                authorize(
                    &snap,
                    &config,
                    &chap_input("HX7KQ9MZ", password, &challenge)
                ),
                Decision::Reject(RejectReason::BadCredentials)
            );
        }
    }

    fn chap_input<'a>(
        code: &'a str,
        password: &'a [u8],
        challenge: &'a [u8],
    ) -> AuthorizeInput<'a> {
        AuthorizeInput {
            credentials: Credentials {
                user_password: None,
                chap: Some(Chap {
                    password,
                    challenge,
                }),
            },
            ..hotspot(code, None)
        }
    }

    #[test]
    fn voucher_rejects_say_why_in_the_hotspot_words() {
        let snap = voucher_snapshot();
        let config = voucher_config();
        let cases = [
            ("EXPIRED7", RejectReason::VoucherExpired, "voucher expired"),
            ("PASTEND7", RejectReason::VoucherExpired, "voucher expired"),
            ("NODATA77", RejectReason::VoucherDataUsedUp, "data used up"),
            ("NOTIME77", RejectReason::VoucherTimeUsedUp, "time used up"),
            ("REVOKED7", RejectReason::VoucherRevoked, "voucher revoked"),
            (
                "INUSE777",
                RejectReason::VoucherInUse,
                "voucher in use on another device",
            ),
            (
                "PPPOE777",
                RejectReason::HotspotNotAllowed,
                "Plan does not allow Hotspot",
            ),
        ];
        for (code, reason, message) in cases {
            assert_eq!(
                authorize(&snap, &config, &hotspot(code, None)),
                Decision::Reject(reason),
                "{code}"
            );
            assert_eq!(reason.message(), message);
        }
        // Bound to the phone that used it first.
        assert!(matches!(
            authorize(&snap, &config, &hotspot("BOUND777", None)),
            Decision::Accept(_)
        ));
        let other = AuthorizeInput {
            calling_station_id: Some(b"02:11:22:33:44:56"),
            ..hotspot("BOUND777", None)
        };
        assert_eq!(
            authorize(&snap, &config, &other),
            Decision::Reject(RejectReason::VoucherBound)
        );
        assert_eq!(
            RejectReason::VoucherBound.message(),
            "voucher bound to another device"
        );
        // The bound MAC is no MAC login.
        assert_eq!(
            authorize(&snap, &config, &hotspot("02:11:22:33:44:55", None)),
            Decision::NotFound
        );
    }

    #[test]
    fn a_lookup_name_never_logs_in() {
        let snap = voucher_snapshot();
        let name = key().lookup_name("HX7KQ9MZ").unwrap();
        assert!(snap.subscriber_by_username(name.as_bytes()).is_some());
        assert_eq!(
            authorize(&snap, &voucher_config(), &hotspot(&name, Some(""))),
            Decision::NotFound
        );
        let reject = Config {
            unknown_user: UnknownUser::Reject,
            ..voucher_config()
        };
        assert_eq!(
            authorize(&snap, &reject, &hotspot(&name, None)),
            Decision::Reject(RejectReason::UnknownUser)
        );
    }

    #[test]
    fn without_a_key_vouchers_are_off_and_subscribers_come_first() {
        let snap = voucher_snapshot();
        assert_eq!(
            authorize(&snap, &Config::default(), &hotspot("HX7KQ9MZ", None)),
            Decision::NotFound
        );
        // An unknown code is an unknown user.
        assert_eq!(
            authorize(&snap, &voucher_config(), &hotspot("NOSUCH77", None)),
            Decision::NotFound
        );
        // A subscriber whose username is code-shaped is that subscriber, password and all.
        let a = accept(authorize(&snap, &voucher_config(), &input("ZX9QWERT")));
        assert_eq!(a.credential, Credential::Password(b"pw-ZX9QWERT"));
    }

    #[test]
    fn vouchers_are_journaled_under_their_lookup_name() {
        let snap = voucher_snapshot();
        let config = voucher_config();
        let name = key().lookup_name("HX7KQ9MZ").unwrap();
        let j = journal_name(&snap, &config, b"hx7k-q9mz");
        assert_eq!(j.username, name.as_bytes());
        assert!(j.unused_voucher);
        let j = journal_name(&snap, &config, b"ACTIVE77");
        assert_eq!(
            j.username,
            key().lookup_name("ACTIVE77").unwrap().as_bytes()
        );
        assert!(!j.unused_voucher);
        for as_sent in [&b"ZX9QWERT"[..], b"NOSUCH77", b"alice", name.as_bytes()] {
            let j = journal_name(&snap, &config, as_sent);
            assert_eq!(j.username, as_sent);
            assert!(!j.unused_voucher);
        }
        assert_eq!(
            journal_name(&snap, &Config::default(), b"HX7KQ9MZ").username,
            b"HX7KQ9MZ"
        );
    }
}
