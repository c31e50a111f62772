//! Safaricom M-Pesa Daraja for Jasiyo: the project's own client and the parsing of what
//! Daraja sends back.
//!
//! * [`Client`] talks to Daraja: OAuth (one cached token per client, refreshed early, one
//!   refresh in flight, refreshed and retried once when Daraja rejects it), STK Push
//!   (paybill or till), STK Query, C2B URL registration and Transaction Status. Sandbox or
//!   production is an explicit [`Environment`], and no credential has a default.
//! * [`callbacks`] parses the STK callback, C2B validation/confirmation and Transaction
//!   Status result bodies without I/O, tolerating the ways real payloads differ from the
//!   documentation, and builds the replies Daraja expects.
//! * The request values are validated when built: [`Msisdn`] normalises Kenyan phone
//!   numbers, [`AccountReference`] and [`TransactionDesc`] enforce Daraja's lengths.
//! * [`nairobi_timestamp`] and [`password`] are the STK `Timestamp` and `Password`: one
//!   timestamp per request, in Kenyan time.
//!
//! There is no database here: idempotency (one credit per receipt), matching a callback to
//! a payment intent and the amount check are the daemon's, because callbacks are unsigned
//! and only the daemon's records can tell a forged one from a real one.
//!
//! ```no_run
//! # async fn demo() -> Result<(), daraja::Error> {
//! use daraja::{Client, Credentials, Environment, Shortcode, StkPushRequest};
//! use secrecy::SecretString;
//!
//! let client = Client::new(
//!     Environment::Sandbox,
//!     Shortcode::Paybill { shortcode: "174379".into() },
//!     Credentials {
//!         consumer_key: "from the Daraja portal".into(),
//!         consumer_secret: SecretString::from("from the Daraja portal"),
//!         passkey: SecretString::from("from the Daraja portal"),
//!         initiator_name: None,
//!         security_credential: None,
//!     },
//! )?;
//! let accepted = client
//!     .stk_push(&StkPushRequest {
//!         phone: "0708 374 149".parse()?,
//!         amount_kes: 50,
//!         account_reference: "alice01".parse()?,
//!         description: "Internet 1d".parse()?,
//!         callback_url: "https://isp.example/pay/cb/stk/6f1c9a".into(),
//!     })
//!     .await?;
//! // Store accepted.checkout_request_id; the callback or STK Query tells the result.
//! # Ok(()) }
//! ```
//!
//! Secrets (consumer secret, passkey, security credential, tokens, the STK password) are
//! [`secrecy::SecretString`]s: their `Debug` prints `[REDACTED]`, and the client logs
//! only paths, status codes and Daraja's error codes.

pub mod callbacks;
mod client;
mod error;
mod password;
mod types;

pub use client::{Client, ClientOptions};
pub use error::Error;
pub use password::{nairobi_timestamp, password};
pub use types::{
    AccountReference, Credentials, Environment, Msisdn, ResponseType, ResultCode, Shortcode,
    StkPushAccepted, StkPushRequest, StkQueryOutcome, TransactionDesc, TransactionStatusAccepted,
    ValidationError,
};
