//! A decoded RADIUS Accounting-Request: what the ingest needs from it, nothing else.
//!
//! # Times
//!
//! Every time the ingest stores comes from the **server clock**: the event happened at
//! `received_at - Acct-Delay-Time` ([`AccountingEvent::event_time`]), as RFC 2866 §5.2 defines.
//! `Event-Timestamp` is decoded and kept on the event, but not trusted for billing: a MikroTik
//! without a battery-backed clock or NTP boots in 1970 or at its last saved time, and a
//! wrong router clock must neither put usage on the wrong day nor make live sessions look
//! stale.
//!
//! # The session key
//!
//! [`AccountingEvent::session_key`] is a hex SHA-256 (first 128 bits) of, length-prefixed:
//!
//! 1. the **UDP source IP** of the packet. It identifies the router (`routers.ip` is that
//!    address). NAS-IP-Address does not: RouterOS has been seen sending different
//!    NAS-IP-Address values from one router (mikrotik-radius.md §11.9), and NAS-Identifier is
//!    often the default "MikroTik" (§11.11). The router id itself is not used because it is
//!    only known after a database lookup and changes if a router is re-registered; the source
//!    address is known at decode time, before any database is reachable.
//! 2. **Acct-Session-Id**, unique per router only (§6);
//! 3. **User-Name**;
//! 4. **NAS-Port** (absent = no bytes). On hotspots it equals the session id; on PPPoE it is
//!    the 0x00F000xx port, which separates sessions should a router reuse a session id.
//!
//! Retransmissions (same Id, same Acct-Delay-Time = 0, §7) and every Start/Interim/Stop of a
//! session give the same key; the ingest de-duplicates by applying counters monotonically.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use radius_proto::attr;
use radius_proto::{Code, Packet};
use sha2::{Digest, Sha256};

/// Acct-Status-Type values the ingest handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusType {
    /// Start (1).
    Start,
    /// Stop (2).
    Stop,
    /// Interim-Update (3).
    InterimUpdate,
    /// Accounting-On (7): the router (re)started accounting; its sessions are gone.
    AccountingOn,
    /// Accounting-Off (8): the router stops accounting; its sessions are gone.
    AccountingOff,
}

impl StatusType {
    /// The dictionary name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::Stop => "Stop",
            Self::InterimUpdate => "Interim-Update",
            Self::AccountingOn => "Accounting-On",
            Self::AccountingOff => "Accounting-Off",
        }
    }

    /// Accounting-On or Accounting-Off (router-wide, no session).
    pub fn is_router_wide(self) -> bool {
        matches!(self, Self::AccountingOn | Self::AccountingOff)
    }
}

/// Why a datagram is not an accounting event the ingest can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not a RADIUS packet at all.
    #[error("malformed RADIUS packet: {0}")]
    Malformed(#[from] radius_proto::Error),
    /// A RADIUS packet, but not an Accounting-Request.
    #[error("not an Accounting-Request: code {0}")]
    NotAccountingRequest(u8),
    /// A required attribute is absent.
    #[error("{status}: missing required attribute {attribute}")]
    MissingAttribute {
        /// The Acct-Status-Type (or "Accounting-Request" when that is what is missing).
        status: &'static str,
        /// The attribute's dictionary name.
        attribute: &'static str,
    },
    /// An attribute has the wrong length or encoding for its type.
    #[error("attribute {attribute}: {detail}")]
    InvalidAttribute {
        /// The attribute's dictionary name.
        attribute: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// An Acct-Status-Type the ingest does not handle (Failed, Tunnel-*, ...).
    #[error("unsupported Acct-Status-Type {0}")]
    UnsupportedStatusType(u32),
}

/// One decoded Accounting-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingEvent {
    /// When the server received the packet (server clock).
    pub received_at: DateTime<Utc>,
    /// UDP source of the packet.
    pub source: SocketAddr,
    /// Acct-Status-Type.
    pub status: StatusType,
    /// User-Name (required for Start/Interim/Stop).
    pub username: Option<String>,
    /// Acct-Session-Id (required for Start/Interim/Stop).
    pub acct_session_id: Option<String>,
    /// NAS-IP-Address (data only, see the module docs).
    pub nas_ip: Option<Ipv4Addr>,
    /// NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// NAS-Port.
    pub nas_port: Option<u32>,
    /// NAS-Port-Id (the interface).
    pub nas_port_id: Option<String>,
    /// Framed-IP-Address.
    pub framed_ip: Option<Ipv4Addr>,
    /// Calling-Station-Id (the client MAC on hotspot and PPPoE; an IP string on PPTP/L2TP).
    pub calling_station_id: Option<String>,
    /// Acct-Input-Gigawords << 32 | Acct-Input-Octets: bytes from the client (upload).
    pub input_bytes: Option<u64>,
    /// Acct-Output-Gigawords << 32 | Acct-Output-Octets: bytes to the client (download).
    pub output_bytes: Option<u64>,
    /// Acct-Input-Packets.
    pub input_packets: Option<u32>,
    /// Acct-Output-Packets.
    pub output_packets: Option<u32>,
    /// Acct-Session-Time, seconds.
    pub session_time: Option<u32>,
    /// Acct-Terminate-Cause.
    pub terminate_cause: Option<u32>,
    /// Event-Timestamp (router clock; not used for billing).
    pub event_timestamp: Option<DateTime<Utc>>,
    /// Acct-Delay-Time, seconds (0 when absent).
    pub delay_time: u32,
    /// Acct-Interim-Interval, seconds.
    pub interim_interval: Option<u32>,
}

fn invalid(attribute: &'static str, e: impl std::fmt::Display) -> EventError {
    EventError::InvalidAttribute {
        attribute,
        detail: e.to_string(),
    }
}

/// The text of a string attribute. A NUL byte is valid UTF-8 but Postgres text cannot hold
/// it (SQLSTATE 22021), so such a packet is refused here, where it becomes one reject,
/// instead of failing the whole batch's statements.
fn string(p: &Packet, typ: u8, name: &'static str) -> Result<Option<String>, EventError> {
    match p.string(typ).map_err(|e| invalid(name, e))? {
        Some(s) if s.contains('\0') => Err(invalid(name, NUL_IN_TEXT)),
        s => Ok(s.map(str::to_owned)),
    }
}

/// Why a string with a NUL byte is refused.
pub const NUL_IN_TEXT: &str = "contains a NUL byte, which Postgres text cannot store";

fn integer(p: &Packet, typ: u8, name: &'static str) -> Result<Option<u32>, EventError> {
    p.integer(typ).map_err(|e| invalid(name, e))
}

fn ipv4(p: &Packet, typ: u8, name: &'static str) -> Result<Option<Ipv4Addr>, EventError> {
    p.ipv4(typ).map_err(|e| invalid(name, e))
}

/// `gigawords << 32 | octets`; None if neither is present, and an error for gigawords alone.
fn counter(
    p: &Packet,
    octets: (u8, &'static str),
    gigawords: (u8, &'static str),
) -> Result<Option<u64>, EventError> {
    let lo = integer(p, octets.0, octets.1)?;
    let hi = integer(p, gigawords.0, gigawords.1)?;
    match (hi, lo) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(EventError::MissingAttribute {
            status: "Accounting-Request",
            attribute: octets.1,
        }),
        (hi, Some(lo)) => Ok(Some(u64::from(hi.unwrap_or(0)) << 32 | u64::from(lo))),
    }
}

impl AccountingEvent {
    /// Decodes an Accounting-Request received at `received_at` from `source`.
    ///
    /// The Request Authenticator is not verified here (radiusd did that before the packet
    /// reached the journal). Start, Interim-Update and Stop need User-Name and
    /// Acct-Session-Id; Accounting-On/Off need nothing but the status.
    pub fn from_packet(
        received_at: DateTime<Utc>,
        source: SocketAddr,
        raw: &[u8],
    ) -> Result<Self, EventError> {
        let p = Packet::decode(raw)?;
        if p.code != Code::ACCOUNTING_REQUEST {
            return Err(EventError::NotAccountingRequest(p.code.0));
        }
        use attr::acct_status_type as st;
        let status = match integer(&p, attr::ACCT_STATUS_TYPE, "Acct-Status-Type")? {
            None => {
                return Err(EventError::MissingAttribute {
                    status: "Accounting-Request",
                    attribute: "Acct-Status-Type",
                });
            }
            Some(st::START) => StatusType::Start,
            Some(st::STOP) => StatusType::Stop,
            Some(st::INTERIM_UPDATE) => StatusType::InterimUpdate,
            Some(st::ACCOUNTING_ON) => StatusType::AccountingOn,
            Some(st::ACCOUNTING_OFF) => StatusType::AccountingOff,
            Some(other) => return Err(EventError::UnsupportedStatusType(other)),
        };
        let username = string(&p, attr::USER_NAME, "User-Name")?;
        let acct_session_id = string(&p, attr::ACCT_SESSION_ID, "Acct-Session-Id")?;
        if !status.is_router_wide() {
            let missing = |attribute| EventError::MissingAttribute {
                status: status.name(),
                attribute,
            };
            if username.as_deref().is_none_or(str::is_empty) {
                return Err(missing("User-Name"));
            }
            if acct_session_id.as_deref().is_none_or(str::is_empty) {
                return Err(missing("Acct-Session-Id"));
            }
        }
        let event_timestamp = integer(&p, attr::EVENT_TIMESTAMP, "Event-Timestamp")?
            .and_then(|t| Utc.timestamp_opt(i64::from(t), 0).single());
        Ok(Self {
            received_at,
            source,
            status,
            username,
            acct_session_id,
            nas_ip: ipv4(&p, attr::NAS_IP_ADDRESS, "NAS-IP-Address")?,
            nas_identifier: string(&p, attr::NAS_IDENTIFIER, "NAS-Identifier")?,
            nas_port: integer(&p, attr::NAS_PORT, "NAS-Port")?,
            nas_port_id: string(&p, attr::NAS_PORT_ID, "NAS-Port-Id")?,
            framed_ip: ipv4(&p, attr::FRAMED_IP_ADDRESS, "Framed-IP-Address")?,
            calling_station_id: string(&p, attr::CALLING_STATION_ID, "Calling-Station-Id")?,
            input_bytes: counter(
                &p,
                (attr::ACCT_INPUT_OCTETS, "Acct-Input-Octets"),
                (attr::ACCT_INPUT_GIGAWORDS, "Acct-Input-Gigawords"),
            )?,
            output_bytes: counter(
                &p,
                (attr::ACCT_OUTPUT_OCTETS, "Acct-Output-Octets"),
                (attr::ACCT_OUTPUT_GIGAWORDS, "Acct-Output-Gigawords"),
            )?,
            input_packets: integer(&p, attr::ACCT_INPUT_PACKETS, "Acct-Input-Packets")?,
            output_packets: integer(&p, attr::ACCT_OUTPUT_PACKETS, "Acct-Output-Packets")?,
            session_time: integer(&p, attr::ACCT_SESSION_TIME, "Acct-Session-Time")?,
            terminate_cause: integer(&p, attr::ACCT_TERMINATE_CAUSE, "Acct-Terminate-Cause")?,
            event_timestamp,
            delay_time: integer(&p, attr::ACCT_DELAY_TIME, "Acct-Delay-Time")?.unwrap_or(0),
            interim_interval: integer(&p, attr::ACCT_INTERIM_INTERVAL, "Acct-Interim-Interval")?,
        })
    }

    /// When the event happened, on the server clock: `received_at - Acct-Delay-Time`,
    /// truncated to microseconds (what Postgres stores, so comparisons survive a round trip).
    pub fn event_time(&self) -> DateTime<Utc> {
        (self.received_at - Duration::seconds(i64::from(self.delay_time))).trunc_subsecs(6)
    }

    /// The router identity: the UDP source address.
    pub fn source_ip(&self) -> IpAddr {
        self.source.ip()
    }

    /// The unique session key (see the module docs); `None` for Accounting-On/Off.
    pub fn session_key(&self) -> Option<String> {
        if self.status.is_router_wide() {
            return None;
        }
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(self.source.ip().to_string().as_bytes());
        field(self.acct_session_id.as_deref().unwrap_or("").as_bytes());
        field(self.username.as_deref().unwrap_or("").as_bytes());
        match self.nas_port {
            Some(port) => field(&port.to_be_bytes()),
            None => field(&[]),
        }
        Some(hex::encode(&h.finalize()[..16]))
    }
}

/// The dictionary name of an Acct-Terminate-Cause value (RFC 2866 §5.10, RFC 3580).
pub fn terminate_cause_name(value: u32) -> String {
    let name = match value {
        1 => "User-Request",
        2 => "Lost-Carrier",
        3 => "Lost-Service",
        4 => "Idle-Timeout",
        5 => "Session-Timeout",
        6 => "Admin-Reset",
        7 => "Admin-Reboot",
        8 => "Port-Error",
        9 => "NAS-Error",
        10 => "NAS-Request",
        11 => "NAS-Reboot",
        12 => "Port-Unneeded",
        13 => "Port-Preempted",
        14 => "Port-Suspended",
        15 => "Service-Unavailable",
        16 => "Callback",
        17 => "User-Error",
        18 => "Host-Request",
        _ => return value.to_string(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use radius_proto::attr::{acct_status_type as st, mikrotik};

    const SECRET: &[u8] = b"testing123";

    fn src() -> SocketAddr {
        "10.0.0.1:47863".parse().unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 29, 17, 33, 2).unwrap()
    }

    /// acct-start-hotspot-01.txt, attribute by attribute in wire order.
    fn start_packet() -> Packet {
        Packet::accounting_request(45)
            .with_integer(attr::ACCT_STATUS_TYPE, st::START)
            .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::WIRELESS_802_11)
            .with_string(attr::CALLING_STATION_ID, "BC:24:11:EB:56:4D")
            .with_string(attr::CALLED_STATION_ID, "hs-vlan888-hotspot")
            .with_string(attr::NAS_PORT_ID, "vlan888-hotspot")
            .with_string(attr::USER_NAME, "thepumper")
            .with_integer(attr::NAS_PORT, 2_148_532_244)
            .with_string(attr::ACCT_SESSION_ID, "80100014")
            .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 5, 88, 2))
            .with_vendor_ipv4(
                mikrotik::VENDOR_ID,
                mikrotik::HOST_IP,
                Ipv4Addr::new(10, 5, 88, 2),
            )
            // "Jun 30 2026 00:33:02 +07"
            .with_integer(attr::EVENT_TIMESTAMP, 1_782_754_382)
            .with_string(attr::NAS_IDENTIFIER, "KhwanrichaiHome")
            .with_integer(attr::ACCT_DELAY_TIME, 0)
            .with_ipv4(attr::NAS_IP_ADDRESS, Ipv4Addr::new(10, 0, 0, 1))
    }

    /// acct-stop-hotspot-01.txt, with the given gigawords.
    fn stop_packet(in_giga: u32, out_giga: u32) -> Packet {
        Packet::accounting_request(46)
            .with_integer(attr::ACCT_STATUS_TYPE, st::STOP)
            .with_integer(
                attr::ACCT_TERMINATE_CAUSE,
                attr::acct_terminate_cause::USER_REQUEST,
            )
            .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::WIRELESS_802_11)
            .with_string(attr::CALLING_STATION_ID, "BC:24:11:EB:56:4D")
            .with_string(attr::CALLED_STATION_ID, "hs-vlan888-hotspot")
            .with_string(attr::NAS_PORT_ID, "vlan888-hotspot")
            .with_string(attr::USER_NAME, "thepumper")
            .with_integer(attr::NAS_PORT, 2_148_532_244)
            .with_string(attr::ACCT_SESSION_ID, "80100014")
            .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 5, 88, 2))
            .with_vendor_ipv4(
                mikrotik::VENDOR_ID,
                mikrotik::HOST_IP,
                Ipv4Addr::new(10, 5, 88, 2),
            )
            .with_integer(attr::EVENT_TIMESTAMP, 1_782_754_387)
            .with_integer(attr::ACCT_INPUT_OCTETS, 56)
            .with_integer(attr::ACCT_OUTPUT_OCTETS, 56)
            .with_integer(attr::ACCT_INPUT_GIGAWORDS, in_giga)
            .with_integer(attr::ACCT_OUTPUT_GIGAWORDS, out_giga)
            .with_integer(attr::ACCT_INPUT_PACKETS, 1)
            .with_integer(attr::ACCT_OUTPUT_PACKETS, 1)
            .with_integer(attr::ACCT_SESSION_TIME, 5)
            .with_string(attr::NAS_IDENTIFIER, "KhwanrichaiHome")
            .with_integer(attr::ACCT_DELAY_TIME, 0)
            .with_ipv4(attr::NAS_IP_ADDRESS, Ipv4Addr::new(10, 0, 0, 1))
    }

    /// acct-interim-hotspot-01.txt.
    fn interim_packet() -> Packet {
        Packet::accounting_request(42)
            .with_integer(attr::ACCT_STATUS_TYPE, st::INTERIM_UPDATE)
            .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::WIRELESS_802_11)
            .with_string(attr::CALLING_STATION_ID, "C8:94:BB:38:A7:01")
            .with_string(attr::CALLED_STATION_ID, "hotspot1")
            .with_string(attr::NAS_PORT_ID, "bridge")
            .with_string(attr::USER_NAME, "usbwalt")
            .with_integer(attr::NAS_PORT, 2_156_920_841)
            .with_string(attr::ACCT_SESSION_ID, "80900009")
            .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(192, 168, 88, 254))
            .with_vendor_ipv4(
                mikrotik::VENDOR_ID,
                mikrotik::HOST_IP,
                Ipv4Addr::new(192, 168, 88, 254),
            )
            // 2020-04-26T18:12:52Z
            .with_integer(attr::EVENT_TIMESTAMP, 1_587_924_772)
            .with_integer(attr::ACCT_INPUT_OCTETS, 14960)
            .with_integer(attr::ACCT_OUTPUT_OCTETS, 12341)
            .with_integer(attr::ACCT_INPUT_GIGAWORDS, 0)
            .with_integer(attr::ACCT_OUTPUT_GIGAWORDS, 0)
            .with_integer(attr::ACCT_INPUT_PACKETS, 86)
            .with_integer(attr::ACCT_OUTPUT_PACKETS, 87)
            .with_integer(attr::ACCT_SESSION_TIME, 60)
            .with_string(
                attr::NAS_IDENTIFIER,
                "MikroTik-OrangeFarm_Extension_9_iCafe",
            )
            .with_integer(attr::ACCT_DELAY_TIME, 1)
            .with_ipv4(attr::NAS_IP_ADDRESS, Ipv4Addr::new(192, 168, 1, 2))
    }

    fn decode(p: &Packet) -> Result<AccountingEvent, EventError> {
        AccountingEvent::from_packet(at(), src(), &p.encode(SECRET).unwrap())
    }

    #[test]
    fn start_has_no_counters() {
        let bytes = start_packet().encode(SECRET).unwrap();
        assert_eq!(bytes.len(), 168, "same length as the capture");
        let e = decode(&start_packet()).unwrap();
        assert_eq!(e.status, StatusType::Start);
        assert_eq!(e.username.as_deref(), Some("thepumper"));
        assert_eq!(e.acct_session_id.as_deref(), Some("80100014"));
        assert_eq!(e.nas_port, Some(2_148_532_244));
        assert_eq!(e.nas_port_id.as_deref(), Some("vlan888-hotspot"));
        assert_eq!(e.nas_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(e.nas_identifier.as_deref(), Some("KhwanrichaiHome"));
        assert_eq!(e.framed_ip, Some(Ipv4Addr::new(10, 5, 88, 2)));
        assert_eq!(e.calling_station_id.as_deref(), Some("BC:24:11:EB:56:4D"));
        assert_eq!(e.input_bytes, None);
        assert_eq!(e.output_bytes, None);
        assert_eq!(e.session_time, None);
        assert_eq!(e.delay_time, 0);
        assert_eq!(e.interim_interval, None);
        assert_eq!(
            e.event_timestamp,
            Some(Utc.with_ymd_and_hms(2026, 6, 29, 17, 33, 2).unwrap())
        );
        assert_eq!(e.event_time(), at());
        assert_eq!(e.source, src());
    }

    #[test]
    fn stop_with_gigawords() {
        let bytes = stop_packet(0, 0).encode(SECRET).unwrap();
        assert_eq!(bytes.len(), 216, "same length as the capture");
        let e = decode(&stop_packet(0, 0)).unwrap();
        assert_eq!(e.status, StatusType::Stop);
        assert_eq!(
            e.terminate_cause,
            Some(attr::acct_terminate_cause::USER_REQUEST)
        );
        assert_eq!(e.input_bytes, Some(56));
        assert_eq!(e.output_bytes, Some(56));
        assert_eq!((e.input_packets, e.output_packets), (Some(1), Some(1)));
        assert_eq!(e.session_time, Some(5));

        let e = decode(&stop_packet(3, 0xFFFF_FFFF)).unwrap();
        assert_eq!(e.input_bytes, Some(3 * (1 << 32) + 56));
        assert_eq!(e.output_bytes, Some(0xFFFF_FFFF_u64 * (1 << 32) + 56));
    }

    #[test]
    fn interim_capture() {
        let bytes = interim_packet().encode(SECRET).unwrap();
        assert_eq!(bytes.len(), 211, "same length as the capture");
        let e = decode(&interim_packet()).unwrap();
        assert_eq!(e.status, StatusType::InterimUpdate);
        assert_eq!(e.input_bytes, Some(14960));
        assert_eq!(e.output_bytes, Some(12341));
        assert_eq!((e.input_packets, e.output_packets), (Some(86), Some(87)));
        assert_eq!(e.session_time, Some(60));
        assert_eq!(e.delay_time, 1);
        assert_eq!(e.event_time(), at() - Duration::seconds(1));
        let p = interim_packet().with_integer(attr::ACCT_INTERIM_INTERVAL, 60);
        assert_eq!(decode(&p).unwrap().interim_interval, Some(60));
    }

    #[test]
    fn accounting_on_capture() {
        let p = Packet::accounting_request(23)
            .with_integer(attr::ACCT_STATUS_TYPE, st::ACCOUNTING_ON)
            .with_string(
                attr::NAS_IDENTIFIER,
                "MikroTik-OrangeFarm_Extension_9_iCafe",
            )
            .with_integer(attr::ACCT_DELAY_TIME, 0)
            .with_ipv4(attr::NAS_IP_ADDRESS, Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(p.encode(SECRET).unwrap().len(), 77);
        let e = decode(&p).unwrap();
        assert_eq!(e.status, StatusType::AccountingOn);
        assert_eq!(e.username, None);
        assert_eq!(e.session_key(), None);
        let off = p.clone();
        let mut off = off;
        off.attributes[0] =
            radius_proto::Attribute::new(attr::ACCT_STATUS_TYPE, st::ACCOUNTING_OFF.to_be_bytes());
        assert_eq!(decode(&off).unwrap().status, StatusType::AccountingOff);
    }

    #[test]
    fn session_key_is_stable_across_a_session_and_distinct_otherwise() {
        let start = decode(&start_packet()).unwrap();
        let stop = decode(&stop_packet(0, 0)).unwrap();
        let k = start.session_key().unwrap();
        assert_eq!(k.len(), 32);
        assert_eq!(Some(k.clone()), stop.session_key());
        // NAS-IP-Address is data, not identity.
        let mut other_nas_ip = start.clone();
        other_nas_ip.nas_ip = Some(Ipv4Addr::new(192, 168, 88, 1));
        assert_eq!(other_nas_ip.session_key(), Some(k.clone()));
        // Another router (source), user, session id or port is another session.
        let mut e = start.clone();
        e.source = "10.0.0.2:47863".parse().unwrap();
        assert_ne!(e.session_key(), Some(k.clone()));
        let mut e = start.clone();
        e.username = Some("other".into());
        assert_ne!(e.session_key(), Some(k.clone()));
        let mut e = start.clone();
        e.acct_session_id = Some("80100015".into());
        assert_ne!(e.session_key(), Some(k.clone()));
        let mut e = start.clone();
        e.nas_port = None;
        assert_ne!(e.session_key(), Some(k.clone()));
        // The source port is not part of it (retransmits and Stop use other ports).
        let mut e = start;
        e.source = "10.0.0.1:1".parse().unwrap();
        assert_eq!(e.session_key(), Some(k));
    }

    #[test]
    fn errors() {
        // Not RADIUS.
        assert!(matches!(
            AccountingEvent::from_packet(at(), src(), &[1, 2, 3]),
            Err(EventError::Malformed(_))
        ));
        // Not an Accounting-Request.
        let p = Packet::access_request(1, [7; 16]).with_string(attr::USER_NAME, "a");
        assert_eq!(decode(&p), Err(EventError::NotAccountingRequest(1)));
        // No status.
        let p = Packet::accounting_request(1).with_string(attr::USER_NAME, "a");
        let e = decode(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Accounting-Request: missing required attribute Acct-Status-Type"
        );
        // Unsupported status (Failed = 15).
        let p = Packet::accounting_request(1).with_integer(attr::ACCT_STATUS_TYPE, 15);
        assert_eq!(decode(&p), Err(EventError::UnsupportedStatusType(15)));
        // Missing session id / user name.
        let mut p = start_packet();
        p.attributes.retain(|a| a.typ != attr::ACCT_SESSION_ID);
        assert_eq!(
            decode(&p).unwrap_err().to_string(),
            "Start: missing required attribute Acct-Session-Id"
        );
        let mut p = interim_packet();
        p.attributes.retain(|a| a.typ != attr::USER_NAME);
        assert_eq!(
            decode(&p).unwrap_err().to_string(),
            "Interim-Update: missing required attribute User-Name"
        );
        // A counter of the wrong length.
        let p = stop_packet(0, 0).with_attr(attr::ACCT_SESSION_TIME, vec![0, 1]);
        let mut p = p;
        p.attributes
            .retain(|a| a.typ != attr::ACCT_SESSION_TIME || a.value.len() == 2);
        assert!(matches!(
            decode(&p),
            Err(EventError::InvalidAttribute {
                attribute: "Acct-Session-Time",
                ..
            })
        ));
        // Gigawords without octets.
        let mut p = stop_packet(1, 0);
        p.attributes.retain(|a| a.typ != attr::ACCT_INPUT_OCTETS);
        assert_eq!(
            decode(&p).unwrap_err().to_string(),
            "Accounting-Request: missing required attribute Acct-Input-Octets"
        );
        // A NUL byte: valid UTF-8, but not storable as Postgres text.
        let mut p = start_packet();
        p.attributes.retain(|a| a.typ != attr::CALLING_STATION_ID);
        let p = p.with_string(attr::CALLING_STATION_ID, "02:00\0");
        assert_eq!(
            decode(&p).unwrap_err().to_string(),
            format!("attribute Calling-Station-Id: {NUL_IN_TEXT}")
        );
        // Not UTF-8.
        let mut p = start_packet();
        p.attributes.retain(|a| a.typ != attr::USER_NAME);
        let p = p.with_attr(attr::USER_NAME, vec![0xff, 0xfe]);
        assert!(matches!(
            decode(&p),
            Err(EventError::InvalidAttribute {
                attribute: "User-Name",
                ..
            })
        ));
    }

    #[test]
    fn terminate_cause_names() {
        assert_eq!(terminate_cause_name(1), "User-Request");
        assert_eq!(terminate_cause_name(11), "NAS-Reboot");
        assert_eq!(terminate_cause_name(99), "99");
    }
}
