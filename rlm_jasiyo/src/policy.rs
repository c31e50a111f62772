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

use std::net::{IpAddr, Ipv4Addr};

use jasiyo_snapshot::{Service, Snapshot, SubscriberStatus, SubscriberView};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// What an unknown User-Name gets.
    pub unknown_user: UnknownUser,
    /// `Acct-Interim-Interval` sent in every Access-Accept, in seconds.
    pub acct_interim_interval: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            unknown_user: UnknownUser::NotFound,
            acct_interim_interval: 300,
        }
    }
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
    /// does not reveal which usernames exist.
    BadCredentials,
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
    let (subscriber, credential) = match snapshot.subscriber_by_username(input.username) {
        Some(sub) => {
            let password = sub.password();
            (sub, Credential::Password(password))
        }
        None => match parse_mac(input.username).and_then(|mac| snapshot.subscriber_by_mac(mac)) {
            Some(sub) => (sub, Credential::MacLogin),
            None => {
                return match config.unknown_user {
                    UnknownUser::NotFound => Decision::NotFound,
                    UnknownUser::Reject => Decision::Reject(RejectReason::UnknownUser),
                };
            }
        },
    };
    decide(subscriber, credential, config, input)
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
}
