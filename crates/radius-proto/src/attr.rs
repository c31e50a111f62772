//! Attribute type numbers, well-known values, vendor dictionaries and value codecs.
//!
//! Type numbers are plain `u8` constants named after the FreeRADIUS dictionary
//! (`User-Name` is [`USER_NAME`]). Vendor attributes live in per-vendor modules
//! ([`mikrotik`], [`wispr`], [`microsoft`]) with the vendor id as `VENDOR_ID`.

use std::net::Ipv4Addr;

use crate::error::{Error, Result};

/// One attribute as it appears on the wire: a type and a raw value (at most 253 octets when
/// encoded). Vendor-Specific attributes keep their raw value here; see
/// [`Attribute::vendor_specific`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The attribute type number.
    pub typ: u8,
    /// The raw value octets.
    pub value: Vec<u8>,
}

impl Attribute {
    /// An attribute with a raw value.
    pub fn new(typ: u8, value: impl Into<Vec<u8>>) -> Self {
        Self {
            typ,
            value: value.into(),
        }
    }

    /// A Vendor-Specific attribute (type 26) carrying one sub-attribute
    /// (RFC 2865 §5.26 recommended format: vendor id, vendor type, vendor length, value).
    pub fn vendor(vendor: u32, vendor_type: u8, value: &[u8]) -> Result<Self> {
        if value.len() > 247 {
            return Err(Error::VendorAttributeTooLong {
                vendor,
                typ: vendor_type,
                len: value.len(),
            });
        }
        let mut v = Vec::with_capacity(6 + value.len());
        v.extend_from_slice(&vendor.to_be_bytes());
        v.push(vendor_type);
        // Bounded by the check above: 2 + 247 <= 255.
        v.push(u8::try_from(value.len() + 2).map_err(|_| Error::MalformedVendorSpecific)?);
        v.extend_from_slice(value);
        Ok(Self::new(VENDOR_SPECIFIC, v))
    }

    /// Parses a Vendor-Specific attribute's value into its vendor id and sub-attributes.
    ///
    /// Returns `None` if this is not a Vendor-Specific attribute, and an error if the value
    /// does not follow the RFC 2865 §5.26 recommended format.
    pub fn vendor_specific(&self) -> Option<Result<VendorSpecific<'_>>> {
        (self.typ == VENDOR_SPECIFIC).then(|| VendorSpecific::parse(&self.value))
    }
}

/// A parsed Vendor-Specific attribute value: vendor id plus the raw sub-attribute area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VendorSpecific<'a> {
    /// The SMI Network Management Private Enterprise Code of the vendor.
    pub vendor: u32,
    data: &'a [u8],
}

impl<'a> VendorSpecific<'a> {
    /// Parses and validates a Vendor-Specific value (vendor id + sub-attributes, each
    /// `type(1) length(1) value`, length >= 2, exactly filling the value).
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let (id, data) = value
            .split_first_chunk::<4>()
            .ok_or(Error::MalformedVendorSpecific)?;
        let vs = Self {
            vendor: u32::from_be_bytes(*id),
            data,
        };
        // Validate once so iteration can be infallible.
        let mut rest = data;
        while !rest.is_empty() {
            let len = usize::from(*rest.get(1).ok_or(Error::MalformedVendorSpecific)?);
            if len < 2 || len > rest.len() {
                return Err(Error::MalformedVendorSpecific);
            }
            rest = rest.get(len..).ok_or(Error::MalformedVendorSpecific)?;
        }
        Ok(vs)
    }

    /// The sub-attributes as `(vendor type, value)` pairs, in wire order.
    pub fn sub_attributes(&self) -> SubAttributes<'a> {
        SubAttributes { rest: self.data }
    }
}

/// Iterator over the sub-attributes of a validated [`VendorSpecific`].
#[derive(Clone, Debug)]
pub struct SubAttributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SubAttributes<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let typ = *self.rest.first()?;
        let len = usize::from(*self.rest.get(1)?);
        let value = self.rest.get(2..len)?;
        self.rest = self.rest.get(len..)?;
        Some((typ, value))
    }
}

/// Decodes an `integer` (32-bit big-endian) value.
pub fn decode_integer(typ: u8, value: &[u8]) -> Result<u32> {
    let b: [u8; 4] = value.try_into().map_err(|_| Error::InvalidValueLength {
        typ,
        expected: 4,
        actual: value.len(),
    })?;
    Ok(u32::from_be_bytes(b))
}

/// Decodes an `ipaddr` (IPv4) value.
pub fn decode_ipv4(typ: u8, value: &[u8]) -> Result<Ipv4Addr> {
    let b: [u8; 4] = value.try_into().map_err(|_| Error::InvalidValueLength {
        typ,
        expected: 4,
        actual: value.len(),
    })?;
    Ok(Ipv4Addr::from(b))
}

/// Decodes a `string`/`text` value as UTF-8.
pub fn decode_string(typ: u8, value: &[u8]) -> Result<&str> {
    std::str::from_utf8(value).map_err(|_| Error::InvalidUtf8 { typ })
}

// ---------------------------------------------------------------------------------------
// Standard attribute types (RFC 2865, 2866, 2869, 3162, 3576/5176, 4818, 5090)
// ---------------------------------------------------------------------------------------

/// User-Name (1), string.
pub const USER_NAME: u8 = 1;
/// User-Password (2), hidden with the shared secret (RFC 2865 §5.2).
pub const USER_PASSWORD: u8 = 2;
/// CHAP-Password (3): CHAP identifier + 16-octet response.
pub const CHAP_PASSWORD: u8 = 3;
/// NAS-IP-Address (4), ipaddr.
pub const NAS_IP_ADDRESS: u8 = 4;
/// NAS-Port (5), integer.
pub const NAS_PORT: u8 = 5;
/// Service-Type (6), integer; see [`service_type`].
pub const SERVICE_TYPE: u8 = 6;
/// Framed-Protocol (7), integer; see [`framed_protocol`].
pub const FRAMED_PROTOCOL: u8 = 7;
/// Framed-IP-Address (8), ipaddr.
pub const FRAMED_IP_ADDRESS: u8 = 8;
/// Framed-IP-Netmask (9), ipaddr.
pub const FRAMED_IP_NETMASK: u8 = 9;
/// Filter-Id (11), string.
pub const FILTER_ID: u8 = 11;
/// Framed-MTU (12), integer.
pub const FRAMED_MTU: u8 = 12;
/// Reply-Message (18), string.
pub const REPLY_MESSAGE: u8 = 18;
/// State (24), octets.
pub const STATE: u8 = 24;
/// Class (25), octets.
pub const CLASS: u8 = 25;
/// Vendor-Specific (26).
pub const VENDOR_SPECIFIC: u8 = 26;
/// Session-Timeout (27), integer seconds.
pub const SESSION_TIMEOUT: u8 = 27;
/// Idle-Timeout (28), integer seconds.
pub const IDLE_TIMEOUT: u8 = 28;
/// Termination-Action (29), integer.
pub const TERMINATION_ACTION: u8 = 29;
/// Called-Station-Id (30), string.
pub const CALLED_STATION_ID: u8 = 30;
/// Calling-Station-Id (31), string.
pub const CALLING_STATION_ID: u8 = 31;
/// NAS-Identifier (32), string.
pub const NAS_IDENTIFIER: u8 = 32;
/// Proxy-State (33), octets; copied unchanged into replies.
pub const PROXY_STATE: u8 = 33;
/// Acct-Status-Type (40), integer; see [`acct_status_type`].
pub const ACCT_STATUS_TYPE: u8 = 40;
/// Acct-Delay-Time (41), integer seconds.
pub const ACCT_DELAY_TIME: u8 = 41;
/// Acct-Input-Octets (42), integer.
pub const ACCT_INPUT_OCTETS: u8 = 42;
/// Acct-Output-Octets (43), integer.
pub const ACCT_OUTPUT_OCTETS: u8 = 43;
/// Acct-Session-Id (44), string.
pub const ACCT_SESSION_ID: u8 = 44;
/// Acct-Authentic (45), integer.
pub const ACCT_AUTHENTIC: u8 = 45;
/// Acct-Session-Time (46), integer seconds.
pub const ACCT_SESSION_TIME: u8 = 46;
/// Acct-Input-Packets (47), integer.
pub const ACCT_INPUT_PACKETS: u8 = 47;
/// Acct-Output-Packets (48), integer.
pub const ACCT_OUTPUT_PACKETS: u8 = 48;
/// Acct-Terminate-Cause (49), integer; see [`acct_terminate_cause`].
pub const ACCT_TERMINATE_CAUSE: u8 = 49;
/// Acct-Multi-Session-Id (50), string.
pub const ACCT_MULTI_SESSION_ID: u8 = 50;
/// Acct-Link-Count (51), integer.
pub const ACCT_LINK_COUNT: u8 = 51;
/// Acct-Input-Gigawords (52), integer: wraps of Acct-Input-Octets (RFC 2869).
pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
/// Acct-Output-Gigawords (53), integer.
pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
/// Event-Timestamp (55), integer (unix seconds).
pub const EVENT_TIMESTAMP: u8 = 55;
/// CHAP-Challenge (60), octets.
pub const CHAP_CHALLENGE: u8 = 60;
/// NAS-Port-Type (61), integer; see [`nas_port_type`].
pub const NAS_PORT_TYPE: u8 = 61;
/// Port-Limit (62), integer.
pub const PORT_LIMIT: u8 = 62;
/// Connect-Info (77), string.
pub const CONNECT_INFO: u8 = 77;
/// Message-Authenticator (80), HMAC-MD5 (RFC 3579 §3.2).
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// Acct-Interim-Interval (85), integer seconds.
pub const ACCT_INTERIM_INTERVAL: u8 = 85;
/// NAS-Port-Id (87), string.
pub const NAS_PORT_ID: u8 = 87;
/// Framed-Pool (88), string.
pub const FRAMED_POOL: u8 = 88;
/// Chargeable-User-Identity (89), octets.
pub const CHARGEABLE_USER_IDENTITY: u8 = 89;
/// NAS-IPv6-Address (95), ipv6addr.
pub const NAS_IPV6_ADDRESS: u8 = 95;
/// Framed-Interface-Id (96), ifid.
pub const FRAMED_INTERFACE_ID: u8 = 96;
/// Framed-IPv6-Prefix (97), ipv6prefix.
pub const FRAMED_IPV6_PREFIX: u8 = 97;
/// Error-Cause (101), integer; see [`error_cause`] (RFC 5176 §3.5).
pub const ERROR_CAUSE: u8 = 101;
/// Delegated-IPv6-Prefix (123), ipv6prefix (RFC 4818).
pub const DELEGATED_IPV6_PREFIX: u8 = 123;

/// Values of Service-Type (6).
pub mod service_type {
    /// Login-User (1): RouterOS hotspot logins.
    pub const LOGIN_USER: u32 = 1;
    /// Framed-User (2): RouterOS PPP (PPPoE, PPTP, L2TP, SSTP).
    pub const FRAMED_USER: u32 = 2;
    /// Call-Check (10).
    pub const CALL_CHECK: u32 = 10;
    /// Authorize-Only (17, RFC 5176).
    pub const AUTHORIZE_ONLY: u32 = 17;
}

/// Values of Framed-Protocol (7).
pub mod framed_protocol {
    /// PPP (1).
    pub const PPP: u32 = 1;
}

/// Values of NAS-Port-Type (61).
pub mod nas_port_type {
    /// Async (0).
    pub const ASYNC: u32 = 0;
    /// Virtual (5): RouterOS PPTP/L2TP.
    pub const VIRTUAL: u32 = 5;
    /// Ethernet (15): RouterOS PPPoE.
    pub const ETHERNET: u32 = 15;
    /// Wireless-802.11 (19): RouterOS hotspot (even on wired interfaces).
    pub const WIRELESS_802_11: u32 = 19;
}

/// Values of Acct-Status-Type (40).
pub mod acct_status_type {
    /// Start (1).
    pub const START: u32 = 1;
    /// Stop (2).
    pub const STOP: u32 = 2;
    /// Interim-Update (3).
    pub const INTERIM_UPDATE: u32 = 3;
    /// Accounting-On (7).
    pub const ACCOUNTING_ON: u32 = 7;
    /// Accounting-Off (8).
    pub const ACCOUNTING_OFF: u32 = 8;
}

/// Values of Acct-Terminate-Cause (49, RFC 2866 §5.10).
pub mod acct_terminate_cause {
    /// User-Request (1).
    pub const USER_REQUEST: u32 = 1;
    /// Lost-Carrier (2).
    pub const LOST_CARRIER: u32 = 2;
    /// Lost-Service (3).
    pub const LOST_SERVICE: u32 = 3;
    /// Idle-Timeout (4).
    pub const IDLE_TIMEOUT: u32 = 4;
    /// Session-Timeout (5).
    pub const SESSION_TIMEOUT: u32 = 5;
    /// Admin-Reset (6).
    pub const ADMIN_RESET: u32 = 6;
    /// Admin-Reboot (7).
    pub const ADMIN_REBOOT: u32 = 7;
    /// Port-Error (8).
    pub const PORT_ERROR: u32 = 8;
    /// NAS-Error (9).
    pub const NAS_ERROR: u32 = 9;
    /// NAS-Request (10).
    pub const NAS_REQUEST: u32 = 10;
    /// NAS-Reboot (11).
    pub const NAS_REBOOT: u32 = 11;
}

/// Values of Error-Cause (101, RFC 5176 §3.5).
pub mod error_cause {
    /// Residual Session Context Removed (201).
    pub const RESIDUAL_SESSION_CONTEXT_REMOVED: u32 = 201;
    /// Invalid EAP Packet (Ignored) (202).
    pub const INVALID_EAP_PACKET: u32 = 202;
    /// Unsupported Attribute (401).
    pub const UNSUPPORTED_ATTRIBUTE: u32 = 401;
    /// Missing Attribute (402).
    pub const MISSING_ATTRIBUTE: u32 = 402;
    /// NAS Identification Mismatch (403).
    pub const NAS_IDENTIFICATION_MISMATCH: u32 = 403;
    /// Invalid Request (404).
    pub const INVALID_REQUEST: u32 = 404;
    /// Unsupported Service (405).
    pub const UNSUPPORTED_SERVICE: u32 = 405;
    /// Unsupported Extension (406).
    pub const UNSUPPORTED_EXTENSION: u32 = 406;
    /// Invalid Attribute Value (407).
    pub const INVALID_ATTRIBUTE_VALUE: u32 = 407;
    /// Administratively Prohibited (501).
    pub const ADMINISTRATIVELY_PROHIBITED: u32 = 501;
    /// Request Not Routable (Proxy) (502).
    pub const REQUEST_NOT_ROUTABLE: u32 = 502;
    /// Session Context Not Found (503).
    pub const SESSION_CONTEXT_NOT_FOUND: u32 = 503;
    /// Session Context Not Removable (504).
    pub const SESSION_CONTEXT_NOT_REMOVABLE: u32 = 504;
    /// Other Proxy Processing Error (505).
    pub const OTHER_PROXY_PROCESSING_ERROR: u32 = 505;
    /// Resources Unavailable (506).
    pub const RESOURCES_UNAVAILABLE: u32 = 506;
    /// Request Initiated (507).
    pub const REQUEST_INITIATED: u32 = 507;
    /// Multiple Session Selection Unsupported (508).
    pub const MULTIPLE_SESSION_SELECTION_UNSUPPORTED: u32 = 508;

    /// A short English name for an Error-Cause value, if known.
    pub fn name(value: u32) -> Option<&'static str> {
        Some(match value {
            201 => "Residual-Session-Context-Removed",
            202 => "Invalid-EAP-Packet",
            401 => "Unsupported-Attribute",
            402 => "Missing-Attribute",
            403 => "NAS-Identification-Mismatch",
            404 => "Invalid-Request",
            405 => "Unsupported-Service",
            406 => "Unsupported-Extension",
            407 => "Invalid-Attribute-Value",
            501 => "Administratively-Prohibited",
            502 => "Request-Not-Routable",
            503 => "Session-Context-Not-Found",
            504 => "Session-Context-Not-Removable",
            505 => "Other-Proxy-Processing-Error",
            506 => "Resources-Unavailable",
            507 => "Request-Initiated",
            508 => "Multiple-Session-Selection-Unsupported",
            _ => return None,
        })
    }
}

/// MikroTik vendor attributes (vendor 14988; FreeRADIUS `dictionary.mikrotik`).
pub mod mikrotik {
    /// The MikroTik vendor id.
    pub const VENDOR_ID: u32 = 14988;
    /// Mikrotik-Recv-Limit (1), integer.
    pub const RECV_LIMIT: u8 = 1;
    /// Mikrotik-Xmit-Limit (2), integer.
    pub const XMIT_LIMIT: u8 = 2;
    /// Mikrotik-Group (3), string.
    pub const GROUP: u8 = 3;
    /// Mikrotik-Rate-Limit (8), string: `rx/tx [burst rx/tx [threshold [time [prio [min]]]]]`.
    pub const RATE_LIMIT: u8 = 8;
    /// Mikrotik-Realm (9), string.
    pub const REALM: u8 = 9;
    /// Mikrotik-Host-IP (10), ipaddr: the hotspot client's address.
    pub const HOST_IP: u8 = 10;
    /// Mikrotik-Mark-Id (11), string.
    pub const MARK_ID: u8 = 11;
    /// Mikrotik-Recv-Limit-Gigawords (14), integer.
    pub const RECV_LIMIT_GIGAWORDS: u8 = 14;
    /// Mikrotik-Xmit-Limit-Gigawords (15), integer.
    pub const XMIT_LIMIT_GIGAWORDS: u8 = 15;
    /// Mikrotik-Total-Limit (17), integer: low 32 bits of the data allowance.
    pub const TOTAL_LIMIT: u8 = 17;
    /// Mikrotik-Total-Limit-Gigawords (18), integer: high 32 bits of the data allowance.
    pub const TOTAL_LIMIT_GIGAWORDS: u8 = 18;
    /// Mikrotik-Address-List (19), string.
    pub const ADDRESS_LIST: u8 = 19;
    /// Mikrotik-Delegated-IPv6-Pool (22), string.
    pub const DELEGATED_IPV6_POOL: u8 = 22;
}

/// WISPr vendor attributes (vendor 14122; FreeRADIUS `dictionary.wispr`).
pub mod wispr {
    /// The WISPr vendor id.
    pub const VENDOR_ID: u32 = 14122;
    /// WISPr-Location-ID (1), string.
    pub const LOCATION_ID: u8 = 1;
    /// WISPr-Location-Name (2), string.
    pub const LOCATION_NAME: u8 = 2;
    /// WISPr-Logoff-URL (3), string: sent by RouterOS hotspots in Access-Requests.
    pub const LOGOFF_URL: u8 = 3;
    /// WISPr-Redirection-URL (4), string.
    pub const REDIRECTION_URL: u8 = 4;
    /// WISPr-Bandwidth-Min-Up (5), integer.
    pub const BANDWIDTH_MIN_UP: u8 = 5;
    /// WISPr-Bandwidth-Min-Down (6), integer.
    pub const BANDWIDTH_MIN_DOWN: u8 = 6;
    /// WISPr-Bandwidth-Max-Up (7), integer.
    pub const BANDWIDTH_MAX_UP: u8 = 7;
    /// WISPr-Bandwidth-Max-Down (8), integer.
    pub const BANDWIDTH_MAX_DOWN: u8 = 8;
    /// WISPr-Session-Terminate-Time (9), string.
    pub const SESSION_TERMINATE_TIME: u8 = 9;
    /// WISPr-Session-Terminate-End-Of-Day (10), string.
    pub const SESSION_TERMINATE_END_OF_DAY: u8 = 10;
    /// WISPr-Billing-Class-Of-Service (11), string.
    pub const BILLING_CLASS_OF_SERVICE: u8 = 11;
}

/// Microsoft vendor attributes used by MS-CHAP (vendor 311, RFC 2548).
pub mod microsoft {
    /// The Microsoft vendor id.
    pub const VENDOR_ID: u32 = 311;
    /// MS-CHAP-Response (1).
    pub const CHAP_RESPONSE: u8 = 1;
    /// MS-CHAP-Error (2).
    pub const CHAP_ERROR: u8 = 2;
    /// MS-MPPE-Encryption-Policy (7).
    pub const MPPE_ENCRYPTION_POLICY: u8 = 7;
    /// MS-MPPE-Encryption-Types (8).
    pub const MPPE_ENCRYPTION_TYPES: u8 = 8;
    /// MS-CHAP-Challenge (11).
    pub const CHAP_CHALLENGE: u8 = 11;
    /// MS-MPPE-Send-Key (16).
    pub const MPPE_SEND_KEY: u8 = 16;
    /// MS-MPPE-Recv-Key (17).
    pub const MPPE_RECV_KEY: u8 = 17;
    /// MS-CHAP2-Response (25).
    pub const CHAP2_RESPONSE: u8 = 25;
    /// MS-CHAP2-Success (26).
    pub const CHAP2_SUCCESS: u8 = 26;
}
