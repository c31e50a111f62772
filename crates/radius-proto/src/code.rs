//! Packet codes (RFC 2865 §3, RFC 2866 §3, RFC 5997, RFC 5176 §3).

use std::fmt;

/// A RADIUS packet code.
///
/// Any octet value can be represented, so decoding an unknown code is not an error; the
/// codes this crate knows about are associated constants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

/// How the Authenticator field of a packet with a given code is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthenticatorKind {
    /// Random Request Authenticator chosen by the client (Access-Request, Status-Server).
    Random,
    /// `MD5(Code|Identifier|Length|16 zero octets|Attributes|Secret)`: Accounting-Request,
    /// Disconnect-Request, CoA-Request.
    RequestDigest,
    /// `MD5(Code|Identifier|Length|Request Authenticator|Attributes|Secret)`: every reply.
    Response,
}

impl Code {
    /// Access-Request (1).
    pub const ACCESS_REQUEST: Self = Self(1);
    /// Access-Accept (2).
    pub const ACCESS_ACCEPT: Self = Self(2);
    /// Access-Reject (3).
    pub const ACCESS_REJECT: Self = Self(3);
    /// Accounting-Request (4).
    pub const ACCOUNTING_REQUEST: Self = Self(4);
    /// Accounting-Response (5).
    pub const ACCOUNTING_RESPONSE: Self = Self(5);
    /// Access-Challenge (11).
    pub const ACCESS_CHALLENGE: Self = Self(11);
    /// Status-Server (12, RFC 5997).
    pub const STATUS_SERVER: Self = Self(12);
    /// Status-Client (13).
    pub const STATUS_CLIENT: Self = Self(13);
    /// Disconnect-Request (40, RFC 5176).
    pub const DISCONNECT_REQUEST: Self = Self(40);
    /// Disconnect-ACK (41).
    pub const DISCONNECT_ACK: Self = Self(41);
    /// Disconnect-NAK (42).
    pub const DISCONNECT_NAK: Self = Self(42);
    /// CoA-Request (43).
    pub const COA_REQUEST: Self = Self(43);
    /// CoA-ACK (44).
    pub const COA_ACK: Self = Self(44);
    /// CoA-NAK (45).
    pub const COA_NAK: Self = Self(45);

    /// The FreeRADIUS dictionary name of a known code.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "Access-Request",
            2 => "Access-Accept",
            3 => "Access-Reject",
            4 => "Accounting-Request",
            5 => "Accounting-Response",
            11 => "Access-Challenge",
            12 => "Status-Server",
            13 => "Status-Client",
            40 => "Disconnect-Request",
            41 => "Disconnect-ACK",
            42 => "Disconnect-NAK",
            43 => "CoA-Request",
            44 => "CoA-ACK",
            45 => "CoA-NAK",
            _ => return None,
        })
    }

    /// Whether this code is a request (sent by a client, answered by a server).
    pub fn is_request(self) -> bool {
        matches!(self.0, 1 | 4 | 12 | 40 | 43)
    }

    /// How the Authenticator field is computed for this code.
    ///
    /// Unknown codes are treated as replies (their Authenticator is left as set when
    /// encoding; see [`crate::Packet::encode`]).
    pub fn authenticator_kind(self) -> AuthenticatorKind {
        match self.0 {
            1 | 12 => AuthenticatorKind::Random,
            4 | 40 | 43 => AuthenticatorKind::RequestDigest,
            _ => AuthenticatorKind::Response,
        }
    }

    /// Whether this code is one this crate knows a name for.
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({})", self.0),
            None => write!(f, "Code({})", self.0),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Code {}", self.0),
        }
    }
}

impl From<u8> for Code {
    fn from(v: u8) -> Self {
        Self(v)
    }
}

impl From<Code> for u8 {
    fn from(c: Code) -> Self {
        c.0
    }
}
