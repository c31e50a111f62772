//! What to send for a queued action, decided when it is sent (plain Rust, no I/O).
//!
//! The queue row says why (the trigger saw a suspension, an expiry, an allowance used up...).
//! Between the change and the send the operator may have undone it, so the decision looks
//! at the subscriber as it is now: a customer who was renewed before the Disconnect went
//! out keeps the session.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use radius_proto::{Packet, attr};

/// Why an action was queued (the `reason` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The subscriber was suspended.
    Suspended,
    /// The subscriber was deleted.
    Deleted,
    /// Its expiry passed (or was set into the past).
    Expired,
    /// The data allowance reached zero.
    DataExhausted,
    /// The time allowance reached zero.
    TimeExhausted,
    /// The plan, or the plan's rate, changed.
    PlanChanged,
    /// An operator asked for it (`POST /sessions/{id}/disconnect`).
    Operator,
    /// Renewed while a session of the expired subscription was still open: the router is
    /// made to ask again, so the customer gets the new plan without calling anyone.
    Reactivated,
}

impl Reason {
    /// The database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
            Self::DataExhausted => "data_exhausted",
            Self::TimeExhausted => "time_exhausted",
            Self::PlanChanged => "plan_changed",
            Self::Operator => "operator",
            Self::Reactivated => "reactivated",
        }
    }

    /// From the database name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "suspended" => Self::Suspended,
            "deleted" => Self::Deleted,
            "expired" => Self::Expired,
            "data_exhausted" => Self::DataExhausted,
            "time_exhausted" => Self::TimeExhausted,
            "plan_changed" => Self::PlanChanged,
            "operator" => Self::Operator,
            "reactivated" => Self::Reactivated,
            _ => return None,
        })
    }
}

/// The subscriber and its plan as they are when the action is sent.
#[derive(Clone, Debug)]
pub struct SubscriberNow {
    /// `status = 'active'`.
    pub active: bool,
    /// Paid until.
    pub expires_at: DateTime<Utc>,
    /// Data left (None: unlimited).
    pub data_remaining_bytes: Option<i64>,
    /// Time left (None: unlimited).
    pub time_remaining_seconds: Option<i64>,
    /// The plan's Mikrotik-Rate-Limit.
    pub rate_limit: String,
    /// The plan's fair-use rate once the data is used up (None: no fair use, cut off).
    pub fup_rate_limit: Option<String>,
}

impl SubscriberNow {
    fn data_used_up(&self) -> bool {
        self.data_remaining_bytes == Some(0)
    }

    /// May this subscriber be online at all right now?
    fn may_be_online(&self, now: DateTime<Utc>) -> bool {
        self.active
            && self.expires_at > now
            && self.time_remaining_seconds != Some(0)
            && !(self.data_used_up() && self.fup_rate_limit.is_none())
    }

    /// The rate an online session should have: the plan's, or the fair-use rate once the
    /// data is used up (the same rule the module applies at login).
    fn rate_limit(&self) -> &str {
        match &self.fup_rate_limit {
            Some(fup) if self.data_used_up() => fup,
            _ => &self.rate_limit,
        }
    }
}

/// What to do with the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// End it (Disconnect-Request).
    Disconnect,
    /// Change its rate (CoA-Request with Mikrotik-Rate-Limit).
    ChangeRate(String),
    /// Nothing to send; the reason is recorded.
    Skip(&'static str),
}

/// Decides the request for an action. `subscriber` is None when the row is gone;
/// `is_fallback` is true for the Disconnect that replaces a refused or unanswered CoA.
pub fn decide(
    reason: Reason,
    subscriber: Option<&SubscriberNow>,
    session_open: bool,
    is_fallback: bool,
    now: DateTime<Utc>,
) -> Decision {
    if !session_open {
        return Decision::Skip("the session had already ended");
    }
    if is_fallback {
        return Decision::Disconnect;
    }
    let Some(sub) = subscriber else {
        // Deleted, or never a subscriber (a username the router let in by itself).
        return Decision::Disconnect;
    };
    match reason {
        Reason::Operator | Reason::Deleted | Reason::Reactivated => Decision::Disconnect,
        Reason::Suspended if sub.active => Decision::Skip("resumed before it was sent"),
        Reason::Expired if sub.expires_at > now => Decision::Skip("renewed before it was sent"),
        Reason::TimeExhausted if sub.time_remaining_seconds != Some(0) => {
            Decision::Skip("time allowance restored before it was sent")
        }
        Reason::DataExhausted if !sub.data_used_up() => {
            Decision::Skip("data allowance restored before it was sent")
        }
        Reason::Suspended | Reason::Expired | Reason::TimeExhausted => Decision::Disconnect,
        Reason::DataExhausted | Reason::PlanChanged => {
            if sub.may_be_online(now) {
                Decision::ChangeRate(sub.rate_limit().to_owned())
            } else {
                Decision::Disconnect
            }
        }
    }
}

/// The session a request addresses, as accounting recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTarget {
    /// User-Name.
    pub username: String,
    /// Acct-Session-Id.
    pub acct_session_id: String,
    /// Framed-IP-Address, if the router reported one.
    pub framed_ip: Option<Ipv4Addr>,
    /// NAS-IP-Address as the router reported it, else the router's own address.
    pub nas_ip: Option<Ipv4Addr>,
}

/// Builds the request (identifier 0: the sender picks one): a CoA-Request setting
/// `new_rate` as Mikrotik-Rate-Limit, or without one a Disconnect-Request. It carries what
/// RouterOS needs to find the session (User-Name, Acct-Session-Id, Framed-IP-Address;
/// NAS-IP-Address as RFC 5176 asks for NAS identification), Event-Timestamp (RFC 5176 §3)
/// and a Message-Authenticator, which RouterOS v7 puts on its own replies.
/// A Disconnect-Request carries nothing else (RFC 5176 §3).
pub fn request(new_rate: Option<&str>, target: &SessionTarget, now: DateTime<Utc>) -> Packet {
    let base = match new_rate {
        None => Packet::disconnect_request(0),
        Some(_) => Packet::coa_request(0),
    };
    let mut p = base
        .with_string(attr::USER_NAME, &target.username)
        .with_string(attr::ACCT_SESSION_ID, &target.acct_session_id);
    if let Some(ip) = target.framed_ip {
        p = p.with_ipv4(attr::FRAMED_IP_ADDRESS, ip);
    }
    if let Some(ip) = target.nas_ip {
        p = p.with_ipv4(attr::NAS_IP_ADDRESS, ip);
    }
    if let Some(rate) = new_rate {
        p = p.with_vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT, rate);
    }
    let timestamp = u32::try_from(now.timestamp()).unwrap_or(u32::MAX);
    p.with_integer(attr::EVENT_TIMESTAMP, timestamp)
        .with_message_authenticator()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use radius_proto::Code;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn sub() -> SubscriberNow {
        SubscriberNow {
            active: true,
            expires_at: now() + chrono::Duration::days(3),
            data_remaining_bytes: Some(5_000_000),
            time_remaining_seconds: None,
            rate_limit: "5M/10M".into(),
            fup_rate_limit: None,
        }
    }

    fn decide_now(reason: Reason, s: Option<&SubscriberNow>) -> Decision {
        decide(reason, s, true, false, now())
    }

    #[test]
    fn an_ended_session_is_left_alone() {
        for reason in [Reason::Suspended, Reason::Operator, Reason::PlanChanged] {
            assert_eq!(
                decide(reason, Some(&sub()), false, false, now()),
                Decision::Skip("the session had already ended")
            );
        }
    }

    #[test]
    fn suspension_deletion_and_operator_disconnect() {
        let mut s = sub();
        s.active = false;
        assert_eq!(
            decide_now(Reason::Suspended, Some(&s)),
            Decision::Disconnect
        );
        assert_eq!(decide_now(Reason::Deleted, None), Decision::Disconnect);
        assert_eq!(
            decide_now(Reason::Operator, Some(&sub())),
            Decision::Disconnect
        );
    }

    #[test]
    fn undone_changes_are_skipped() {
        assert!(matches!(
            decide_now(Reason::Suspended, Some(&sub())),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide_now(Reason::Expired, Some(&sub())),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide_now(Reason::DataExhausted, Some(&sub())),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide_now(Reason::TimeExhausted, Some(&sub())),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn expiry_and_time_used_up_disconnect() {
        let mut s = sub();
        s.expires_at = now();
        assert_eq!(decide_now(Reason::Expired, Some(&s)), Decision::Disconnect);
        let mut s = sub();
        s.time_remaining_seconds = Some(0);
        assert_eq!(
            decide_now(Reason::TimeExhausted, Some(&s)),
            Decision::Disconnect
        );
    }

    #[test]
    fn data_used_up_gets_the_fair_use_rate_or_is_cut_off() {
        let mut s = sub();
        s.data_remaining_bytes = Some(0);
        assert_eq!(
            decide_now(Reason::DataExhausted, Some(&s)),
            Decision::Disconnect
        );
        s.fup_rate_limit = Some("512k/1M".into());
        assert_eq!(
            decide_now(Reason::DataExhausted, Some(&s)),
            Decision::ChangeRate("512k/1M".into())
        );
    }

    #[test]
    fn plan_change_sends_the_rate_the_customer_should_have() {
        assert_eq!(
            decide_now(Reason::PlanChanged, Some(&sub())),
            Decision::ChangeRate("5M/10M".into())
        );
        let mut s = sub();
        s.data_remaining_bytes = Some(0);
        s.fup_rate_limit = Some("1M/1M".into());
        assert_eq!(
            decide_now(Reason::PlanChanged, Some(&s)),
            Decision::ChangeRate("1M/1M".into())
        );
        // A plan change for someone who may not be online at all ends the session.
        s.active = false;
        assert_eq!(
            decide_now(Reason::PlanChanged, Some(&s)),
            Decision::Disconnect
        );
    }

    #[test]
    fn a_fallback_always_disconnects() {
        assert_eq!(
            decide(Reason::PlanChanged, Some(&sub()), true, true, now()),
            Decision::Disconnect
        );
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            Reason::Suspended,
            Reason::Deleted,
            Reason::Expired,
            Reason::DataExhausted,
            Reason::TimeExhausted,
            Reason::PlanChanged,
            Reason::Operator,
            Reason::Reactivated,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("bogus"), None);
    }

    fn target() -> SessionTarget {
        SessionTarget {
            username: "alice".into(),
            acct_session_id: "81a00001".into(),
            framed_ip: Some(Ipv4Addr::new(10, 0, 0, 5)),
            nas_ip: Some(Ipv4Addr::new(192, 168, 88, 1)),
        }
    }

    #[test]
    fn disconnect_request_identifies_the_session_and_nothing_more() {
        let secret = b"router-secret";
        let p = request(None, &target(), now());
        let wire = p.encode(secret).unwrap();
        let got = Packet::decode(&wire).unwrap();
        got.verify_request(secret).unwrap();
        got.require_message_authenticator().unwrap();
        assert_eq!(got.code, Code::DISCONNECT_REQUEST);
        assert_eq!(got.string(attr::USER_NAME).unwrap(), Some("alice"));
        assert_eq!(got.string(attr::ACCT_SESSION_ID).unwrap(), Some("81a00001"));
        assert_eq!(
            got.ipv4(attr::FRAMED_IP_ADDRESS).unwrap(),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(
            got.ipv4(attr::NAS_IP_ADDRESS).unwrap(),
            Some(Ipv4Addr::new(192, 168, 88, 1))
        );
        assert_eq!(
            got.integer(attr::EVENT_TIMESTAMP).unwrap(),
            Some(u32::try_from(now().timestamp()).unwrap())
        );
        assert_eq!(got.vendor_specifics().count(), 0);
    }

    #[test]
    fn coa_request_carries_the_rate() {
        let secret = b"s";
        let mut t = target();
        t.framed_ip = None;
        let p = request(Some("1M/2M"), &t, now());
        let got = Packet::decode(&p.encode(secret).unwrap()).unwrap();
        got.verify_request(secret).unwrap();
        assert_eq!(got.code, Code::COA_REQUEST);
        assert_eq!(got.ipv4(attr::FRAMED_IP_ADDRESS).unwrap(), None);
        assert_eq!(
            got.vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT)
                .unwrap(),
            Some("1M/2M")
        );
    }
}
