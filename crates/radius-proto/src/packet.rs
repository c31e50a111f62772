//! The RADIUS packet: header, ordered attributes, encoding with authenticators, decoding
//! with bounds checks, and verification.

use std::net::Ipv4Addr;

use crate::attr::{
    self, Attribute, CHAP_CHALLENGE, CHAP_PASSWORD, MESSAGE_AUTHENTICATOR, PROXY_STATE,
    USER_PASSWORD, VENDOR_SPECIFIC, VendorSpecific,
};
use crate::auth::{self, AUTHENTICATOR_LEN};
use crate::code::{AuthenticatorKind, Code};
use crate::error::{Error, Result};

/// Size of the fixed header: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// Largest packet RFC 2865 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// Largest attribute value (255 minus the type and length octets).
pub const MAX_ATTR_VALUE_LEN: usize = 253;

/// A RADIUS packet: code, identifier, authenticator and attributes in wire order.
///
/// The meaning of [`Packet::authenticator`] depends on where the packet comes from:
///
/// * a request you build: for Access-Request/Status-Server the random Request Authenticator;
///   for Accounting/CoA/Disconnect requests it is ignored by [`Packet::encode`], which
///   computes the digest;
/// * a reply you build (see [`Packet::reply_to`]): the **request's** authenticator, from
///   which [`Packet::encode`] computes the Response Authenticator;
/// * a decoded packet: the octets that were on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The packet code.
    pub code: Code,
    /// The identifier used to match replies to requests.
    pub id: u8,
    /// The Authenticator field (see the type's documentation).
    pub authenticator: [u8; AUTHENTICATOR_LEN],
    /// The attributes, in wire order.
    pub attributes: Vec<Attribute>,
}

impl Packet {
    /// A packet with no attributes.
    pub fn new(code: Code, id: u8, authenticator: [u8; AUTHENTICATOR_LEN]) -> Self {
        Self {
            code,
            id,
            authenticator,
            attributes: Vec::new(),
        }
    }

    /// An Access-Request with the given random Request Authenticator (use a
    /// cryptographically random value; it salts User-Password hiding).
    pub fn access_request(id: u8, authenticator: [u8; AUTHENTICATOR_LEN]) -> Self {
        Self::new(Code::ACCESS_REQUEST, id, authenticator)
    }

    /// A Status-Server request (RFC 5997); add [`Packet::with_message_authenticator`].
    pub fn status_server(id: u8, authenticator: [u8; AUTHENTICATOR_LEN]) -> Self {
        Self::new(Code::STATUS_SERVER, id, authenticator)
    }

    /// An Accounting-Request; its Request Authenticator is computed by [`Packet::encode`].
    pub fn accounting_request(id: u8) -> Self {
        Self::new(Code::ACCOUNTING_REQUEST, id, [0; AUTHENTICATOR_LEN])
    }

    /// A Disconnect-Request (RFC 5176); its Request Authenticator is computed by
    /// [`Packet::encode`].
    pub fn disconnect_request(id: u8) -> Self {
        Self::new(Code::DISCONNECT_REQUEST, id, [0; AUTHENTICATOR_LEN])
    }

    /// A CoA-Request (RFC 5176); its Request Authenticator is computed by [`Packet::encode`].
    pub fn coa_request(id: u8) -> Self {
        Self::new(Code::COA_REQUEST, id, [0; AUTHENTICATOR_LEN])
    }

    /// A reply to `request` with the given code: same identifier, the request's
    /// authenticator (so [`Packet::encode`] can compute the Response Authenticator), and the
    /// request's Proxy-State attributes copied in order (RFC 2865 §5.33).
    pub fn reply_to(request: &Self, code: Code) -> Self {
        let mut p = Self::new(code, request.id, request.authenticator);
        p.attributes.extend(
            request
                .attributes
                .iter()
                .filter(|a| a.typ == PROXY_STATE)
                .cloned(),
        );
        p
    }

    // ----- building -------------------------------------------------------------------

    /// Appends an attribute (builder style).
    pub fn with_attr(mut self, typ: u8, value: impl Into<Vec<u8>>) -> Self {
        self.attributes.push(Attribute::new(typ, value));
        self
    }

    /// Appends a string attribute.
    pub fn with_string(self, typ: u8, value: &str) -> Self {
        self.with_attr(typ, value.as_bytes())
    }

    /// Appends an integer attribute (32-bit big-endian).
    pub fn with_integer(self, typ: u8, value: u32) -> Self {
        self.with_attr(typ, value.to_be_bytes())
    }

    /// Appends a 64-bit counter split as RFC 2869 §5.1/§5.2 carry it: the low 32 bits in
    /// `octets` (e.g. Acct-Input-Octets), then the high 32 bits in `gigawords`
    /// (Acct-Input-Gigawords).
    pub fn with_counter64(self, octets: u8, gigawords: u8, value: u64) -> Self {
        // Truncation is the point: the low word, then the high word.
        self.with_integer(octets, value as u32)
            .with_integer(gigawords, (value >> 32) as u32)
    }

    /// Appends an IPv4 address attribute.
    pub fn with_ipv4(self, typ: u8, value: Ipv4Addr) -> Self {
        self.with_attr(typ, value.octets())
    }

    /// Appends a Vendor-Specific attribute with one sub-attribute. A value longer than 247
    /// octets makes [`Packet::encode`] fail with [`Error::AttributeTooLong`].
    pub fn with_vendor_attr(mut self, vendor: u32, vendor_type: u8, value: &[u8]) -> Self {
        let mut v = Vec::with_capacity(6 + value.len());
        v.extend_from_slice(&vendor.to_be_bytes());
        v.push(vendor_type);
        v.push(u8::try_from(value.len() + 2).unwrap_or(0));
        v.extend_from_slice(value);
        self.attributes.push(Attribute::new(VENDOR_SPECIFIC, v));
        self
    }

    /// Appends a string Vendor-Specific attribute.
    pub fn with_vendor_string(self, vendor: u32, vendor_type: u8, value: &str) -> Self {
        self.with_vendor_attr(vendor, vendor_type, value.as_bytes())
    }

    /// Appends an integer Vendor-Specific attribute.
    pub fn with_vendor_integer(self, vendor: u32, vendor_type: u8, value: u32) -> Self {
        self.with_vendor_attr(vendor, vendor_type, &value.to_be_bytes())
    }

    /// Appends an IPv4 Vendor-Specific attribute.
    pub fn with_vendor_ipv4(self, vendor: u32, vendor_type: u8, value: Ipv4Addr) -> Self {
        self.with_vendor_attr(vendor, vendor_type, &value.octets())
    }

    /// Appends User-Password, hidden with `secret` and this packet's authenticator
    /// (RFC 2865 §5.2). Set the authenticator before calling this.
    pub fn with_user_password(self, password: &[u8], secret: &[u8]) -> Result<Self> {
        let hidden = auth::hide_password(password, secret, &self.authenticator)?;
        Ok(self.with_attr(USER_PASSWORD, hidden))
    }

    /// Appends CHAP-Password for `password` with CHAP identifier `chap_id`. The challenge is
    /// the CHAP-Challenge attribute if one was already added, else the authenticator.
    pub fn with_chap_password(self, chap_id: u8, password: &[u8]) -> Self {
        let challenge = self
            .attr(CHAP_CHALLENGE)
            .map_or_else(|| self.authenticator.to_vec(), <[u8]>::to_vec);
        let resp = auth::chap_response(chap_id, password, &challenge);
        let mut v = Vec::with_capacity(17);
        v.push(chap_id);
        v.extend_from_slice(&resp);
        self.with_attr(CHAP_PASSWORD, v)
    }

    /// Appends a Message-Authenticator placeholder; [`Packet::encode`] fills in the HMAC.
    /// Its position is kept (RouterOS puts it last; anywhere is valid).
    pub fn with_message_authenticator(self) -> Self {
        self.with_attr(MESSAGE_AUTHENTICATOR, [0u8; AUTHENTICATOR_LEN])
    }

    /// Appends an attribute in place.
    pub fn push(&mut self, attribute: Attribute) {
        self.attributes.push(attribute);
    }

    // ----- reading ----------------------------------------------------------------------

    /// The value of the first attribute of type `typ`.
    pub fn attr(&self, typ: u8) -> Option<&[u8]> {
        self.attrs(typ).next()
    }

    /// The values of every attribute of type `typ`, in wire order.
    pub fn attrs(&self, typ: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// The first attribute `typ` as UTF-8 text; `Ok(None)` if absent.
    pub fn string(&self, typ: u8) -> Result<Option<&str>> {
        self.attr(typ)
            .map(|v| attr::decode_string(typ, v))
            .transpose()
    }

    /// The first attribute `typ` as a 32-bit integer; `Ok(None)` if absent.
    pub fn integer(&self, typ: u8) -> Result<Option<u32>> {
        self.attr(typ)
            .map(|v| attr::decode_integer(typ, v))
            .transpose()
    }

    /// The first attribute `typ` as an IPv4 address; `Ok(None)` if absent.
    pub fn ipv4(&self, typ: u8) -> Result<Option<Ipv4Addr>> {
        self.attr(typ)
            .map(|v| attr::decode_ipv4(typ, v))
            .transpose()
    }

    /// Every well-formed Vendor-Specific attribute, parsed. Malformed ones are skipped; use
    /// [`Attribute::vendor_specific`] to see their errors.
    pub fn vendor_specifics(&self) -> impl Iterator<Item = VendorSpecific<'_>> {
        self.attributes
            .iter()
            .filter_map(|a| a.vendor_specific().and_then(Result::ok))
    }

    /// The values of every vendor sub-attribute `(vendor, vendor_type)`, in wire order.
    pub fn vendor_attrs(&self, vendor: u32, vendor_type: u8) -> impl Iterator<Item = &[u8]> {
        self.vendor_specifics()
            .filter(move |vs| vs.vendor == vendor)
            .flat_map(|vs| vs.sub_attributes())
            .filter(move |(t, _)| *t == vendor_type)
            .map(|(_, v)| v)
    }

    /// The value of the first vendor sub-attribute `(vendor, vendor_type)`.
    pub fn vendor_attr(&self, vendor: u32, vendor_type: u8) -> Option<&[u8]> {
        self.vendor_attrs(vendor, vendor_type).next()
    }

    /// The first vendor sub-attribute as UTF-8 text; `Ok(None)` if absent.
    pub fn vendor_string(&self, vendor: u32, vendor_type: u8) -> Result<Option<&str>> {
        self.vendor_attr(vendor, vendor_type)
            .map(|v| attr::decode_string(vendor_type, v))
            .transpose()
    }

    /// The first vendor sub-attribute as a 32-bit integer; `Ok(None)` if absent.
    pub fn vendor_integer(&self, vendor: u32, vendor_type: u8) -> Result<Option<u32>> {
        self.vendor_attr(vendor, vendor_type)
            .map(|v| attr::decode_integer(vendor_type, v))
            .transpose()
    }

    /// The first vendor sub-attribute as an IPv4 address; `Ok(None)` if absent.
    pub fn vendor_ipv4(&self, vendor: u32, vendor_type: u8) -> Result<Option<Ipv4Addr>> {
        self.vendor_attr(vendor, vendor_type)
            .map(|v| attr::decode_ipv4(vendor_type, v))
            .transpose()
    }

    /// The User-Password of a request, unhidden with `secret`; `Ok(None)` if absent.
    pub fn user_password(&self, secret: &[u8]) -> Result<Option<Vec<u8>>> {
        self.attr(USER_PASSWORD)
            .map(|v| auth::unhide_password(v, secret, &self.authenticator))
            .transpose()
    }

    /// Whether the request's CHAP-Password matches `password` (challenge: CHAP-Challenge if
    /// present, else the Request Authenticator). `false` if CHAP-Password is absent or not
    /// 17 octets.
    pub fn verify_chap_password(&self, password: &[u8]) -> bool {
        let Some(cp) = self.attr(CHAP_PASSWORD) else {
            return false;
        };
        let Some((&chap_id, resp)) = cp.split_first() else {
            return false;
        };
        if resp.len() != 16 {
            return false;
        }
        let challenge = self.attr(CHAP_CHALLENGE).unwrap_or(&self.authenticator);
        auth::constant_time_eq(&auth::chap_response(chap_id, password, challenge), resp)
    }

    /// Whether a Message-Authenticator attribute is present.
    pub fn has_message_authenticator(&self) -> bool {
        self.attr(MESSAGE_AUTHENTICATOR).is_some()
    }

    // ----- encoding ---------------------------------------------------------------------

    /// Encodes the packet with its authenticators computed for `secret`.
    ///
    /// * Access-Request, Status-Server: the Authenticator field is written as set.
    /// * Accounting-Request, Disconnect-Request, CoA-Request: the Request Authenticator is
    ///   `MD5(Code|Identifier|Length|16 zero octets|Attributes|Secret)`.
    /// * Every other code is treated as a reply: [`Packet::authenticator`] must hold the
    ///   request's authenticator, and the Response Authenticator
    ///   `MD5(Code|Identifier|Length|Request Authenticator|Attributes|Secret)` is written.
    ///
    /// If a Message-Authenticator attribute is present (add it with
    /// [`Packet::with_message_authenticator`]), its HMAC-MD5 is computed first over the
    /// packet with the attribute zeroed and the Authenticator field set to the Request
    /// Authenticator (requests with a random one), the request's authenticator (replies), or
    /// zeros (Accounting/CoA/Disconnect requests), as RFC 3579 §3.2 and RFC 5176 §3.5 say.
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(self.wire_len_hint());
        self.encode_into(secret, &mut buf)?;
        Ok(buf)
    }

    /// Like [`Packet::encode`] but clears and reuses `buf`.
    pub fn encode_into(&self, secret: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        let kind = self.code.authenticator_kind();
        let initial = match kind {
            AuthenticatorKind::RequestDigest => [0; AUTHENTICATOR_LEN],
            _ => self.authenticator,
        };
        let ma_offset = self.write_unsigned(&initial, buf)?;
        if let Some(off) = ma_offset {
            let ma = auth::message_authenticator(buf, secret);
            write_authenticator_at(buf, off, &ma);
        }
        if matches!(
            kind,
            AuthenticatorKind::RequestDigest | AuthenticatorKind::Response
        ) {
            let digest = auth::packet_digest(buf, secret);
            write_authenticator_at(buf, 4, &digest);
        }
        Ok(())
    }

    /// The packet's bytes exactly as stored, without computing any authenticator. This is
    /// what was on the wire for a decoded packet.
    pub fn to_bytes_unsigned(&self) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(self.wire_len_hint());
        self.write_raw(&self.authenticator, &mut buf)?;
        Ok(buf)
    }

    fn wire_len_hint(&self) -> usize {
        HEADER_LEN
            + self
                .attributes
                .iter()
                .map(|a| 2 + a.value.len())
                .sum::<usize>()
    }

    /// Writes header + attributes with `authenticator`, every Message-Authenticator value
    /// as stored. Returns the value offset of the first Message-Authenticator.
    fn write_raw(&self, authenticator: &[u8; 16], buf: &mut Vec<u8>) -> Result<Option<usize>> {
        buf.clear();
        buf.push(self.code.0);
        buf.push(self.id);
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(authenticator);
        let mut ma_offset = None;
        for a in &self.attributes {
            if a.value.len() > MAX_ATTR_VALUE_LEN {
                return Err(Error::AttributeTooLong {
                    typ: a.typ,
                    len: a.value.len(),
                });
            }
            if a.typ == MESSAGE_AUTHENTICATOR && ma_offset.is_none() {
                if a.value.len() != AUTHENTICATOR_LEN {
                    return Err(Error::InvalidMessageAuthenticatorLength { len: a.value.len() });
                }
                ma_offset = Some(buf.len() + 2);
            }
            buf.push(a.typ);
            // Bounded by the check above.
            buf.push(u8::try_from(a.value.len() + 2).unwrap_or(u8::MAX));
            buf.extend_from_slice(&a.value);
        }
        if buf.len() > MAX_PACKET_LEN {
            return Err(Error::PacketTooLong { len: buf.len() });
        }
        let len = u16::try_from(buf.len()).map_err(|_| Error::PacketTooLong { len: buf.len() })?;
        if let Some(l) = buf.get_mut(2..4) {
            l.copy_from_slice(&len.to_be_bytes());
        }
        Ok(ma_offset)
    }

    /// Like `write_raw`, but with the first Message-Authenticator value zeroed.
    fn write_unsigned(&self, authenticator: &[u8; 16], buf: &mut Vec<u8>) -> Result<Option<usize>> {
        let off = self.write_raw(authenticator, buf)?;
        if let Some(o) = off {
            write_authenticator_at(buf, o, &[0; AUTHENTICATOR_LEN]);
        }
        Ok(off)
    }

    /// The Authenticator field of encoded bytes (octets 4..20), e.g. the Request
    /// Authenticator that [`Packet::encode`] computed for an Accounting/CoA/Disconnect
    /// request, which [`Packet::verify_response`] needs for the reply. `None` if `bytes` is
    /// shorter than the header.
    pub fn authenticator_from_wire(bytes: &[u8]) -> Option<[u8; AUTHENTICATOR_LEN]> {
        bytes.get(4..HEADER_LEN)?.try_into().ok()
    }

    // ----- decoding ---------------------------------------------------------------------

    /// Decodes a packet from untrusted bytes.
    ///
    /// Checks the header, the Length field (20..=4096, not more than received; octets past
    /// it are padding and ignored, RFC 2865 §3) and every attribute's length. Attribute
    /// values are kept raw; nothing is verified cryptographically (see
    /// [`Packet::verify_response`] and [`Packet::verify_request`]). Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let Some((header, _)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(Error::TooShort { len: bytes.len() });
        };
        let [code, id, l0, l1, auth @ ..] = *header;
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
            return Err(Error::InvalidLength { length });
        }
        let Some(body) = bytes.get(HEADER_LEN..length) else {
            return Err(Error::Truncated {
                length,
                received: bytes.len(),
            });
        };
        let mut attributes = Vec::new();
        let mut rest = body;
        let mut offset = HEADER_LEN;
        while !rest.is_empty() {
            let typ = rest.first().copied().unwrap_or(0);
            let alen = rest.get(1).map_or(0, |l| usize::from(*l));
            let (Some(value), Some(next)) = (rest.get(2..alen.max(2)), rest.get(alen..)) else {
                return Err(Error::MalformedAttribute {
                    offset,
                    typ,
                    length: alen,
                });
            };
            if alen < 2 {
                return Err(Error::MalformedAttribute {
                    offset,
                    typ,
                    length: alen,
                });
            }
            // RFC 3579 §3.2: Message-Authenticator is always 16 octets; a packet with any
            // other length cannot be verified and is refused here rather than later.
            if typ == MESSAGE_AUTHENTICATOR && value.len() != AUTHENTICATOR_LEN {
                return Err(Error::InvalidMessageAuthenticatorLength { len: value.len() });
            }
            attributes.push(Attribute::new(typ, value));
            rest = next;
            offset += alen;
        }
        Ok(Self {
            code: Code(code),
            id,
            authenticator: auth,
            attributes,
        })
    }

    // ----- verification -----------------------------------------------------------------

    /// Verifies a decoded reply against the request it answers: the Response Authenticator
    /// and, if present, the Message-Authenticator. Does not check the identifier or code;
    /// compare [`Packet::id`] yourself. A missing Message-Authenticator is not an error
    /// here; call [`Packet::require_message_authenticator`] for that.
    pub fn verify_response(
        &self,
        request_authenticator: &[u8; AUTHENTICATOR_LEN],
        secret: &[u8],
    ) -> Result<()> {
        if self.code.authenticator_kind() != AuthenticatorKind::Response {
            return Err(Error::UnexpectedCode { code: self.code.0 });
        }
        let mut buf = Vec::with_capacity(self.wire_len_hint());
        let ma_offset = self.write_raw(request_authenticator, &mut buf)?;
        let expected = auth::packet_digest(&buf, secret);
        if !auth::constant_time_eq(&expected, &self.authenticator) {
            return Err(Error::BadResponseAuthenticator);
        }
        if let Some(off) = ma_offset {
            check_message_authenticator(&mut buf, off, secret)?;
        }
        Ok(())
    }

    /// Verifies a decoded request: for Accounting/CoA/Disconnect requests the Request
    /// Authenticator digest; for every request, the Message-Authenticator if present.
    /// (An Access-Request without Message-Authenticator carries nothing verifiable here.)
    pub fn verify_request(&self, secret: &[u8]) -> Result<()> {
        let kind = self.code.authenticator_kind();
        let mut buf = Vec::with_capacity(self.wire_len_hint());
        let ma_offset = match kind {
            AuthenticatorKind::Random => self.write_raw(&self.authenticator, &mut buf)?,
            AuthenticatorKind::RequestDigest => {
                let off = self.write_raw(&[0; AUTHENTICATOR_LEN], &mut buf)?;
                let expected = auth::packet_digest(&buf, secret);
                if !auth::constant_time_eq(&expected, &self.authenticator) {
                    return Err(Error::BadRequestAuthenticator);
                }
                off
            }
            AuthenticatorKind::Response => {
                return Err(Error::UnexpectedCode { code: self.code.0 });
            }
        };
        if let Some(off) = ma_offset {
            check_message_authenticator(&mut buf, off, secret)?;
        }
        Ok(())
    }

    /// Errors with [`Error::MissingMessageAuthenticator`] unless a Message-Authenticator is
    /// present (whether it verifies is checked by the `verify_*` methods).
    pub fn require_message_authenticator(&self) -> Result<()> {
        if self.has_message_authenticator() {
            Ok(())
        } else {
            Err(Error::MissingMessageAuthenticator)
        }
    }
}

/// Verifies the Message-Authenticator whose value starts at `off` in `buf` (which carries
/// the right Authenticator field already), zeroing it in the process.
fn check_message_authenticator(buf: &mut [u8], off: usize, secret: &[u8]) -> Result<()> {
    let got: [u8; AUTHENTICATOR_LEN] = buf
        .get(off..off + AUTHENTICATOR_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::InvalidMessageAuthenticatorLength { len: 0 })?;
    write_authenticator_at(buf, off, &[0; AUTHENTICATOR_LEN]);
    let expected = auth::message_authenticator(buf, secret);
    if auth::constant_time_eq(&expected, &got) {
        Ok(())
    } else {
        Err(Error::BadMessageAuthenticator)
    }
}

fn write_authenticator_at(buf: &mut [u8], off: usize, value: &[u8; AUTHENTICATOR_LEN]) {
    if let Some(dst) = buf.get_mut(off..off + AUTHENTICATOR_LEN) {
        dst.copy_from_slice(value);
    }
}
