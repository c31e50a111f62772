//! What a test decides about the fake before starting it.

use std::time::Duration;

use secrecy::SecretString;

use crate::model::Outcome;

/// Safaricom's published sandbox shortcode and passkey (mpesa-daraja.md §1.2). They are
/// public test values, which is why the fake may carry them as a default.
pub const SANDBOX_SHORTCODE: &str = "174379";
/// See [`SANDBOX_SHORTCODE`].
pub const SANDBOX_PASSKEY: &str =
    "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

/// How a merchant receives money. It decides which `TransactionType` and `PartyB` an STK
/// push must carry, and what C2B notifications say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shortcode {
    /// A paybill: `BusinessShortCode` = `PartyB` = the shortcode.
    Paybill { shortcode: String },
    /// A till: `BusinessShortCode` is the store (head office) number used at Go Live and
    /// `PartyB` is the till number.
    Till {
        store_number: String,
        till_number: String,
    },
}

impl Shortcode {
    /// The number an STK push names in `BusinessShortCode` (and signs its password with).
    pub(crate) fn business_shortcode(&self) -> &str {
        match self {
            Shortcode::Paybill { shortcode } => shortcode,
            Shortcode::Till { store_number, .. } => store_number,
        }
    }

    /// The number an STK push must name in `PartyB`.
    pub(crate) fn party_b(&self) -> &str {
        match self {
            Shortcode::Paybill { shortcode } => shortcode,
            Shortcode::Till { till_number, .. } => till_number,
        }
    }

    pub(crate) fn transaction_type(&self) -> &'static str {
        match self {
            Shortcode::Paybill { .. } => "CustomerPayBillOnline",
            Shortcode::Till { .. } => "CustomerBuyGoodsOnline",
        }
    }

    /// `TransactionType` as C2B notifications spell it.
    pub(crate) fn c2b_type(&self) -> &'static str {
        match self {
            Shortcode::Paybill { .. } => "Pay Bill",
            Shortcode::Till { .. } => "Buy Goods",
        }
    }

    /// The number a customer pays to, which C2B notifications carry as `BusinessShortCode`.
    pub(crate) fn c2b_shortcode(&self) -> &str {
        self.party_b()
    }

    /// Whether `number` names this merchant in any of its roles (register URL and
    /// Transaction Status accept the store number as well as the till number).
    pub(crate) fn answers_to(&self, number: &str) -> bool {
        match self {
            Shortcode::Paybill { shortcode } => shortcode == number,
            Shortcode::Till {
                store_number,
                till_number,
            } => store_number == number || till_number == number,
        }
    }
}

/// A shortcode the fake knows, with the Lipa Na M-Pesa Online passkey that signs its pushes.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub shortcode: Shortcode,
    pub passkey: SecretString,
}

impl Merchant {
    pub fn paybill(shortcode: &str, passkey: &str) -> Self {
        Merchant {
            shortcode: Shortcode::Paybill {
                shortcode: shortcode.to_owned(),
            },
            passkey: SecretString::from(passkey.to_owned()),
        }
    }

    pub fn till(store_number: &str, till_number: &str, passkey: &str) -> Self {
        Merchant {
            shortcode: Shortcode::Till {
                store_number: store_number.to_owned(),
                till_number: till_number.to_owned(),
            },
            passkey: SecretString::from(passkey.to_owned()),
        }
    }
}

/// Sandbox and production differ in ways the daemon must survive: production refuses a
/// second C2B URL registration and has no simulate endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Sandbox,
    Production,
}

/// Whether and how the fake re-sends a notification the daemon did not answer with 2xx.
/// Safaricom documents no retry policy (mpesa-daraja.md §3.6), so tests choose one.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 means never retry.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// The API operator Transaction Status requests must name. The real `SecurityCredential`
/// is RSA-encrypted with Safaricom's key, which the fake cannot decrypt, so it compares the
/// string the test configured.
#[derive(Clone, Debug)]
pub struct Initiator {
    pub name: String,
    pub security_credential: SecretString,
}

/// What happens to a Transaction Status request after it was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMode {
    /// POST the result to `ResultURL`.
    Answer,
    /// POST a timeout notice to `QueueTimeOutURL` instead.
    QueueTimeout,
    /// Accept the request and never answer.
    Silent,
}

/// How C2B notifications write the payer's `MSISDN` (mpesa-daraja.md §2.6): never the
/// plain number any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsisdnStyle {
    /// SHA-256 hex of `2547XXXXXXXX`, what real payloads carry.
    Hashed,
    /// `2547 ***** 149`, as the v2 docs show it.
    Masked,
}

/// Everything a test may choose; start from [`FakeConfig::sandbox`] and change fields.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub consumer_key: String,
    pub consumer_secret: SecretString,
    /// The first one is what [`crate::FakeDaraja::pay_c2b`] pays to.
    pub merchants: Vec<Merchant>,
    /// Lifetime of an OAuth token; Daraja says 3599 s.
    pub token_lifetime: Duration,
    /// Send `expires_in` as `"3599"` instead of `3599`, as Daraja sometimes does.
    pub expires_in_as_string: bool,
    /// Daraja's FAQ says each token request invalidates the previous token.
    pub new_token_invalidates_previous: bool,
    pub mode: Mode,
    pub retry: RetryPolicy,
    /// How long the fake waits for the daemon to answer one notification.
    pub callback_timeout: Duration,
    /// What a push for a phone without a script does.
    pub default_outcome: Outcome,
    /// How far a push's `Timestamp` (Nairobi time) may be from now. Safaricom documents no
    /// window; a few minutes catches a client that sends UTC or local time instead.
    pub timestamp_window: Duration,
    /// Rule 17: a paid push of the same amount from the same phone within this window fails
    /// with result 17. Zero turns the rule off.
    pub rule17_window: Duration,
    /// STK queries per second above which the fake answers `500.003.02` (spike arrest).
    pub query_rate_limit: Option<u32>,
    /// The reported sandbox bug: STK Query answers 1032 for a paid push.
    pub sandbox_query_bug: bool,
    /// Call the registered ValidationURL before confirming a C2B payment (External
    /// Validation, which a merchant asks Safaricom to enable).
    pub c2b_external_validation: bool,
    /// How long M-Pesa waits for the validation reply before applying `ResponseType`.
    pub c2b_validation_timeout: Duration,
    /// Also send a C2B confirmation for a paid STK push, as Daraja's C2B docs say happens.
    pub c2b_confirmation_for_stk: bool,
    pub c2b_msisdn: MsisdnStyle,
    /// Expected Transaction Status operator; `None` accepts any non-empty one.
    pub initiator: Option<Initiator>,
    pub status_mode: StatusMode,
}

impl FakeConfig {
    /// The sandbox paybill 174379 with its public passkey, consumer key `test-key` and
    /// secret `test-secret`, and the behaviour defaults documented on each field.
    pub fn sandbox() -> Self {
        FakeConfig {
            consumer_key: "test-key".to_owned(),
            consumer_secret: SecretString::from("test-secret".to_owned()),
            merchants: vec![Merchant::paybill(SANDBOX_SHORTCODE, SANDBOX_PASSKEY)],
            token_lifetime: Duration::from_secs(3599),
            expires_in_as_string: false,
            new_token_invalidates_previous: true,
            mode: Mode::Sandbox,
            retry: RetryPolicy::default(),
            callback_timeout: Duration::from_secs(10),
            default_outcome: Outcome::success(),
            timestamp_window: Duration::from_secs(300),
            rule17_window: Duration::from_secs(120),
            query_rate_limit: None,
            sandbox_query_bug: false,
            c2b_external_validation: true,
            c2b_validation_timeout: Duration::from_secs(8),
            c2b_confirmation_for_stk: true,
            c2b_msisdn: MsisdnStyle::Hashed,
            initiator: None,
            status_mode: StatusMode::Answer,
        }
    }
}
