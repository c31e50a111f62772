//! The crate's single error type.

/// Everything that can go wrong while decoding, encoding or verifying a RADIUS packet.
///
/// Decoding untrusted bytes only ever produces one of these; it never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The datagram is shorter than the 20-octet RADIUS header.
    #[error("packet too short: {len} octets, the header alone is 20")]
    TooShort {
        /// Octets received.
        len: usize,
    },

    /// The Length field is outside 20..=4096 (RFC 2865 §3).
    #[error("invalid Length field {length}: must be between 20 and 4096")]
    InvalidLength {
        /// The value of the Length field.
        length: usize,
    },

    /// The Length field says more octets than were received (RFC 2865 §3: silently discard).
    #[error("truncated packet: Length field says {length} octets, only {received} received")]
    Truncated {
        /// The value of the Length field.
        length: usize,
        /// Octets actually received.
        received: usize,
    },

    /// An attribute header is malformed: its length is below 2 or runs past the packet end.
    #[error("malformed attribute at offset {offset}: type {typ}, length {length}")]
    MalformedAttribute {
        /// Offset of the attribute from the start of the packet.
        offset: usize,
        /// The attribute type octet (0 if the length octet itself is missing).
        typ: u8,
        /// The attribute length octet (0 if missing).
        length: usize,
    },

    /// An attribute value does not fit in one attribute (at most 253 octets).
    #[error("attribute {typ} value is {len} octets, at most 253 fit")]
    AttributeTooLong {
        /// The attribute type.
        typ: u8,
        /// The value length.
        len: usize,
    },

    /// A vendor sub-attribute value does not fit (at most 247 octets).
    #[error("vendor {vendor} attribute {typ} value is {len} octets, at most 247 fit")]
    VendorAttributeTooLong {
        /// The vendor id.
        vendor: u32,
        /// The vendor attribute type.
        typ: u8,
        /// The value length.
        len: usize,
    },

    /// The encoded packet would exceed 4096 octets.
    #[error("encoded packet would be {len} octets, the maximum is 4096")]
    PacketTooLong {
        /// The length the packet would have had.
        len: usize,
    },

    /// A Vendor-Specific attribute is malformed (shorter than a vendor id, or its
    /// sub-attributes do not add up).
    #[error("malformed Vendor-Specific attribute")]
    MalformedVendorSpecific,

    /// An attribute has the wrong length for the data type asked for.
    #[error("attribute {typ}: expected {expected} octets, got {actual}")]
    InvalidValueLength {
        /// The attribute type (vendor attribute type for VSAs).
        typ: u8,
        /// The length the data type needs.
        expected: usize,
        /// The length found.
        actual: usize,
    },

    /// A string attribute is not valid UTF-8.
    #[error("attribute {typ} is not valid UTF-8")]
    InvalidUtf8 {
        /// The attribute type (vendor attribute type for VSAs).
        typ: u8,
    },

    /// A password to hide is longer than 128 octets (RFC 2865 §5.2).
    #[error("password is {len} octets, at most 128 can be hidden")]
    PasswordTooLong {
        /// The password length.
        len: usize,
    },

    /// A hidden User-Password is not a non-zero multiple of 16 octets up to 128.
    #[error("hidden User-Password has invalid length {len}")]
    InvalidHiddenPassword {
        /// The attribute value length.
        len: usize,
    },

    /// A Message-Authenticator attribute is not 16 octets long.
    #[error("Message-Authenticator is {len} octets, must be 16")]
    InvalidMessageAuthenticatorLength {
        /// The attribute value length.
        len: usize,
    },

    /// The packet has no Message-Authenticator but one was required.
    #[error("Message-Authenticator missing")]
    MissingMessageAuthenticator,

    /// The Message-Authenticator (HMAC-MD5, RFC 3579 §3.2) does not match.
    #[error("Message-Authenticator does not verify (wrong shared secret or tampered packet)")]
    BadMessageAuthenticator,

    /// The Response Authenticator (RFC 2865 §3) does not match.
    #[error("Response Authenticator does not verify (wrong shared secret or not our request)")]
    BadResponseAuthenticator,

    /// The operation does not apply to a packet with this code (for example verifying a
    /// reply as if it were a request).
    #[error("operation not valid for a packet with code {code}")]
    UnexpectedCode {
        /// The packet's code.
        code: u8,
    },

    /// The Request Authenticator of an Accounting/CoA/Disconnect request does not match.
    #[error("Request Authenticator does not verify (wrong shared secret or tampered packet)")]
    BadRequestAuthenticator,
}

/// Shorthand for results carrying this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
