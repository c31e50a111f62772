//! A pure RADIUS codec: packets, attributes, vendor attributes and every authenticator the
//! Jasiyo project needs (RFC 2865, 2866, 2869, 3579, 5176). No I/O, no `unsafe`.
//!
//! # Overview
//!
//! * [`Packet`] holds a [`Code`], an identifier, the 16-octet Authenticator field and the
//!   attributes ([`Attribute`]) in wire order. Values are raw octets; typed helpers read and
//!   write strings, integers and IPv4 addresses.
//! * [`Packet::encode`] serialises a packet and computes what the code needs: the Request
//!   Authenticator of Accounting/CoA/Disconnect requests, the Response Authenticator of
//!   replies, and the Message-Authenticator HMAC if the packet has that attribute.
//! * [`Packet::decode`] parses untrusted bytes with every length checked. It never panics
//!   (property-tested and fuzzed); malformed input gives an [`Error`].
//! * [`Packet::verify_response`] / [`Packet::verify_request`] check authenticators.
//! * [`attr`] has the attribute type numbers, value constants and the MikroTik, WISPr and
//!   Microsoft vendor dictionaries; [`auth`] has the cryptographic building blocks.
//!
//! # A client: Access-Request with PAP and Message-Authenticator
//!
//! ```
//! use radius_proto::{attr, Code, Packet};
//!
//! let secret = b"testing123";
//! let request_authenticator = [0x42; 16]; // use 16 random octets in real code
//! let request = Packet::access_request(7, request_authenticator)
//!     .with_string(attr::USER_NAME, "alice")
//!     .with_user_password(b"hunter2", secret)?
//!     .with_integer(attr::SERVICE_TYPE, attr::service_type::FRAMED_USER)
//!     .with_message_authenticator();
//! let bytes = request.encode(secret)?;
//! # // The server side of the exchange, to make the example self-contained:
//! # let received = Packet::decode(&bytes)?;
//! # received.verify_request(secret)?;
//! # assert_eq!(received.user_password(secret)?.as_deref(), Some(&b"hunter2"[..]));
//! # let reply_bytes = Packet::reply_to(&received, Code::ACCESS_ACCEPT)
//! #     .with_vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT, "2M/4M")
//! #     .with_integer(attr::SESSION_TIMEOUT, 3600)
//! #     .with_message_authenticator()
//! #     .encode(secret)?;
//!
//! // ... send `bytes`, receive `reply_bytes` ...
//! let reply = Packet::decode(&reply_bytes)?;
//! assert_eq!(reply.id, request.id);
//! reply.verify_response(&request.authenticator, secret)?;
//! reply.require_message_authenticator()?;
//! assert_eq!(reply.code, Code::ACCESS_ACCEPT);
//! assert_eq!(reply.integer(attr::SESSION_TIMEOUT)?, Some(3600));
//! assert_eq!(
//!     reply.vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT)?,
//!     Some("2M/4M")
//! );
//! # Ok::<(), radius_proto::Error>(())
//! ```
//!
//! # A Disconnect-Request (RFC 5176)
//!
//! ```
//! use radius_proto::{attr, Code, Packet};
//! use std::net::Ipv4Addr;
//!
//! let secret = b"router-secret";
//! let request = Packet::disconnect_request(1)
//!     .with_string(attr::USER_NAME, "alice")
//!     .with_string(attr::ACCT_SESSION_ID, "81a00001")
//!     .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 0, 0, 5))
//!     .with_ipv4(attr::NAS_IP_ADDRESS, Ipv4Addr::new(192, 168, 88, 1));
//! let bytes = request.encode(secret)?;
//! // The Request Authenticator that went on the wire is needed to verify the reply.
//! // Retransmit exactly `bytes` (same identifier and authenticator, RFC 5080).
//! let request_authenticator = Packet::authenticator_from_wire(&bytes).unwrap();
//! # let sent = Packet::decode(&bytes)?;
//! # sent.verify_request(secret)?;
//! # let nak = Packet::reply_to(&sent, Code::DISCONNECT_NAK)
//! #     .with_integer(attr::ERROR_CAUSE, attr::error_cause::SESSION_CONTEXT_NOT_FOUND)
//! #     .encode(secret)?;
//! let reply = Packet::decode(&nak)?;
//! reply.verify_response(&request_authenticator, secret)?;
//! assert_eq!(reply.code, Code::DISCONNECT_NAK);
//! assert_eq!(reply.integer(attr::ERROR_CAUSE)?, Some(503));
//! # Ok::<(), radius_proto::Error>(())
//! ```
//!
//! # Authenticators in brief
//!
//! | packet | Authenticator field | Message-Authenticator computed with |
//! |---|---|---|
//! | Access-Request, Status-Server | random, from [`Packet::authenticator`] | that authenticator |
//! | Accounting-, Disconnect-, CoA-Request | `MD5(hdr, 16×0, attrs, secret)` | 16 zero octets |
//! | any reply | `MD5(hdr, request auth, attrs, secret)` | the request's authenticator |
//!
//! For replies built with [`Packet::reply_to`], [`Packet::authenticator`] holds the
//! request's authenticator until [`Packet::encode`] replaces it on the wire.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attr;
pub mod auth;
mod code;
mod error;
pub mod mschap;
mod packet;

pub use attr::{Attribute, VendorSpecific};
pub use code::{AuthenticatorKind, Code};
pub use error::{Error, Result};
pub use packet::{HEADER_LEN, MAX_ATTR_VALUE_LEN, MAX_PACKET_LEN, Packet};
