//! What the module journals: accounting requests and post-auth results, in an explicit
//! little-endian encoding versioned by its first byte (the kind).
//!
//! ```text
//! Accounting (kind 1): i64 received_at_ms, address, u32 length + packet bytes
//! AuthResult (kind 2): i64 at_ms, address, u8 accepted (0|1), string username,
//!                      optional nas_identifier, optional calling_station_id,
//!                      optional reason
//! address: u8 family (4|6), 4 or 16 address bytes, u16 port,
//!          for family 6 also u32 flowinfo and u32 scope_id
//! string: u32 length + UTF-8 bytes; optional: u8 0 (none) | 1 (some) + string
//! ```
//!
//! Decoding checks every length against the input and rejects unknown kinds, trailing
//! bytes and invalid UTF-8; it never panics.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

const KIND_ACCOUNTING: u8 = 1;
const KIND_AUTH_RESULT: u8 = 2;

/// One journaled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRecord {
    /// An Accounting-Request, as received.
    Accounting {
        /// When radiusd received it (Unix milliseconds).
        received_at_ms: i64,
        /// The router's address and port.
        source: SocketAddr,
        /// The raw RADIUS Accounting-Request packet.
        packet: Vec<u8>,
    },
    /// The outcome of an authentication (post-auth).
    AuthResult {
        /// When it was decided (Unix milliseconds).
        at_ms: i64,
        /// The router's address and port.
        source: SocketAddr,
        /// User-Name.
        username: String,
        /// NAS-Identifier, if sent.
        nas_identifier: Option<String>,
        /// Calling-Station-Id (the MAC), if sent.
        calling_station_id: Option<String>,
        /// Accept or reject.
        accepted: bool,
        /// Why (for a reject, or a note on an accept).
        reason: Option<String>,
    },
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The input ended inside a field.
    #[error("record truncated")]
    Truncated,
    /// The first byte names no record kind this build knows.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// A field holds an impossible value.
    #[error("invalid record field: {0}")]
    Invalid(&'static str),
    /// Bytes left after the record.
    #[error("{0} trailing bytes after record")]
    Trailing(usize),
    /// A field is too long to encode (over 4 GiB).
    #[error("record field too long")]
    TooLong,
}

impl JournalRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(64);
        match self {
            JournalRecord::Accounting {
                received_at_ms,
                source,
                packet,
            } => {
                out.push(KIND_ACCOUNTING);
                out.extend_from_slice(&received_at_ms.to_le_bytes());
                put_addr(&mut out, source);
                put_bytes(&mut out, packet)?;
            }
            JournalRecord::AuthResult {
                at_ms,
                source,
                username,
                nas_identifier,
                calling_station_id,
                accepted,
                reason,
            } => {
                out.push(KIND_AUTH_RESULT);
                out.extend_from_slice(&at_ms.to_le_bytes());
                put_addr(&mut out, source);
                out.push(u8::from(*accepted));
                put_bytes(&mut out, username.as_bytes())?;
                put_opt(&mut out, nas_identifier.as_deref())?;
                put_opt(&mut out, calling_station_id.as_deref())?;
                put_opt(&mut out, reason.as_deref())?;
            }
        }
        Ok(out)
    }

    /// Decodes a record; any malformed input is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader(bytes);
        let record = match r.u8()? {
            KIND_ACCOUNTING => JournalRecord::Accounting {
                received_at_ms: r.i64()?,
                source: r.addr()?,
                packet: r.bytes()?.to_vec(),
            },
            KIND_AUTH_RESULT => {
                let at_ms = r.i64()?;
                let source = r.addr()?;
                let accepted = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(RecordError::Invalid("accepted flag")),
                };
                JournalRecord::AuthResult {
                    at_ms,
                    source,
                    accepted,
                    username: r.string()?,
                    nas_identifier: r.opt_string()?,
                    calling_station_id: r.opt_string()?,
                    reason: r.opt_string()?,
                }
            }
            kind => return Err(RecordError::UnknownKind(kind)),
        };
        if !r.0.is_empty() {
            return Err(RecordError::Trailing(r.0.len()));
        }
        Ok(record)
    }
}

fn put_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
        }
        SocketAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
            out.extend_from_slice(&a.flowinfo().to_le_bytes());
            out.extend_from_slice(&a.scope_id().to_le_bytes());
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), RecordError> {
    let len = u32::try_from(bytes.len()).map_err(|_| RecordError::TooLong)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_opt(out: &mut Vec<u8>, value: Option<&str>) -> Result<(), RecordError> {
    match value {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes())?;
        }
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn addr(&mut self) -> Result<SocketAddr, RecordError> {
        match self.u8()? {
            4 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                Ok(SocketAddr::new(IpAddr::V4(ip), self.u16()?))
            }
            6 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                let port = self.u16()?;
                let flowinfo = self.u32()?;
                let scope_id = self.u32()?;
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip, port, flowinfo, scope_id,
                )))
            }
            _ => Err(RecordError::Invalid("address family")),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = usize::try_from(self.u32()?).map_err(|_| RecordError::Truncated)?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Invalid("UTF-8"))
    }

    fn opt_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            _ => Err(RecordError::Invalid("option flag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
            (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
                |(ip, port, flow, scope)| SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    port,
                    flow,
                    scope
                ))
            ),
        ]
    }

    fn record() -> impl Strategy<Value = JournalRecord> {
        prop_oneof![
            (
                any::<i64>(),
                addr(),
                proptest::collection::vec(any::<u8>(), 0..600)
            )
                .prop_map(|(received_at_ms, source, packet)| {
                    JournalRecord::Accounting {
                        received_at_ms,
                        source,
                        packet,
                    }
                }),
            (
                any::<i64>(),
                addr(),
                ".{0,40}",
                proptest::option::of(".{0,20}"),
                proptest::option::of("[0-9A-F:]{0,17}"),
                any::<bool>(),
                proptest::option::of(".{0,60}"),
            )
                .prop_map(
                    |(
                        at_ms,
                        source,
                        username,
                        nas_identifier,
                        calling_station_id,
                        accepted,
                        reason,
                    )| {
                        JournalRecord::AuthResult {
                            at_ms,
                            source,
                            username,
                            nas_identifier,
                            calling_station_id,
                            accepted,
                            reason,
                        }
                    }
                ),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(r in record()) {
            let bytes = r.encode().unwrap();
            prop_assert_eq!(JournalRecord::decode(&bytes).unwrap(), r);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = JournalRecord::decode(&bytes);
        }

        #[test]
        fn truncated_or_extended_is_an_error(r in record(), cut in any::<prop::sample::Index>(), extra in 1u8..) {
            let bytes = r.encode().unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(JournalRecord::decode(&bytes[..cut]).is_err());
            let mut longer = bytes.clone();
            longer.push(extra);
            prop_assert_eq!(JournalRecord::decode(&longer), Err(RecordError::Trailing(1)));
        }

        #[test]
        fn mutated_never_panics(r in record(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = r.encode().unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = JournalRecord::decode(&bytes);
        }
    }

    #[test]
    fn unknown_kind() {
        assert_eq!(
            JournalRecord::decode(&[9]),
            Err(RecordError::UnknownKind(9))
        );
        assert_eq!(JournalRecord::decode(&[]), Err(RecordError::Truncated));
    }
}
