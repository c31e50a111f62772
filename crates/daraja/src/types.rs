//! Values that go into Daraja requests, validated when they are built so that a bad phone
//! number or an over-long reference fails here with a clear message instead of as a vague
//! `400.002.02` from Safaricom (or, worse, a prompt the customer cannot read).

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value was refused. Only the message is kept: these come from operator or customer
/// input and are shown back to them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// Which Daraja to talk to. There is deliberately no `Default`: sending production money
/// requests to the sandbox (or the reverse) must be a visible choice in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Environment {
    Sandbox,
    Production,
    /// Any other base URL, e.g. the in-process fake Daraja of the tests.
    Custom(reqwest::Url),
}

impl Environment {
    /// The base URL without a trailing slash; API paths start with `/`.
    pub fn base_url(&self) -> String {
        match self {
            Environment::Sandbox => "https://sandbox.safaricom.co.ke".to_owned(),
            Environment::Production => "https://api.safaricom.co.ke".to_owned(),
            Environment::Custom(url) => url.as_str().trim_end_matches('/').to_owned(),
        }
    }
}

/// The business number customers pay into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortcode {
    Paybill {
        shortcode: String,
    },
    /// A Buy Goods till. Daraja wants the store (head office) number used at Go Live as the
    /// `BusinessShortCode` and the till as `PartyB`; mixing them up gives `2028` or
    /// `SFC_IC0003`.
    Till {
        store_number: String,
        till_number: String,
    },
}

impl Shortcode {
    /// `BusinessShortCode` of STK Push/Query, and the organisation shortcode of C2B
    /// registration and Transaction Status. For a till that is the store number (the
    /// reference documents this for STK; for C2B and Transaction Status it is the common
    /// practice, not checked against production).
    pub fn business_shortcode(&self) -> &str {
        match self {
            Shortcode::Paybill { shortcode } => shortcode,
            Shortcode::Till { store_number, .. } => store_number,
        }
    }

    /// `PartyB` of an STK Push: where the money goes.
    pub fn party_b(&self) -> &str {
        match self {
            Shortcode::Paybill { shortcode } => shortcode,
            Shortcode::Till { till_number, .. } => till_number,
        }
    }

    /// `TransactionType` of an STK Push.
    pub fn transaction_type(&self) -> &'static str {
        match self {
            Shortcode::Paybill { .. } => "CustomerPayBillOnline",
            Shortcode::Till { .. } => "CustomerBuyGoodsOnline",
        }
    }

    /// Digits only, as Daraja expects (checked by `Client::new` too, so configuration
    /// can report it early).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let numbers: &[(&str, &str)] = match self {
            Shortcode::Paybill { shortcode } => &[("shortcode", shortcode)],
            Shortcode::Till {
                store_number,
                till_number,
            } => &[("store number", store_number), ("till number", till_number)],
        };
        for (what, value) in numbers {
            // Sent as a JSON number in the STK Push body (as in Safaricom's sample), so it
            // must be digits only.
            if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValidationError(format!(
                    "{what} {value:?} is not a Daraja shortcode (digits only)"
                )));
            }
        }
        Ok(())
    }
}

/// What Daraja needs to act for the business. No field has a default: an empty or sandbox
/// passkey in production would fail every payment, so the caller must supply each one.
/// `Debug` shows only the consumer key; the secrets print as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub consumer_key: String,
    pub consumer_secret: SecretString,
    /// The Lipa Na M-Pesa Online passkey (STK Push/Query password).
    pub passkey: SecretString,
    /// API operator with the Transaction Status role; only Transaction Status needs it.
    pub initiator_name: Option<String>,
    /// The initiator password encrypted with Safaricom's certificate (base64), as the
    /// Daraja portal produces it.
    pub security_credential: Option<SecretString>,
}

/// What M-Pesa does with a C2B payment when the validation URL does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    Completed,
    Cancelled,
}

impl ResponseType {
    /// Exactly as Daraja wants it (sentence case).
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Completed => "Completed",
            ResponseType::Cancelled => "Cancelled",
        }
    }
}

/// A Safaricom (Kenyan M-Pesa) phone number in the form Daraja wants: `2547XXXXXXXX` or
/// `2541XXXXXXXX`.
///
/// Parses what people type: `0712 345 678`, `0112-345-678`, `+254712345678`,
/// `254712345678`, `712345678`. Anything else (other countries, landlines, too few or
/// too many digits) is refused rather than guessed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

impl Msisdn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Msisdn {
    type Err = ValidationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || ValidationError(format!("{input:?} is not a Kenyan mobile number"));
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let national = if let Some(rest) = compact.strip_prefix("+254") {
            rest
        } else if compact.len() == 12 {
            compact.strip_prefix("254").ok_or_else(bad)?
        } else if compact.len() == 10 {
            compact.strip_prefix('0').ok_or_else(bad)?
        } else {
            &compact
        };
        let valid = national.len() == 9
            && national.bytes().all(|b| b.is_ascii_digit())
            && (national.starts_with('7') || national.starts_with('1'));
        if !valid {
            return Err(bad());
        }
        Ok(Msisdn(format!("254{national}")))
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Msisdn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Msisdn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Text shown in the customer's payment prompt. The prompt is a SIM/USSD screen, so only
/// printable ASCII is allowed, and Daraja caps the length.
fn prompt_text(what: &str, max: usize, value: String) -> Result<String, ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError(format!("{what} is empty")));
    }
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(ValidationError(format!(
            "{what} {value:?} contains {c:?}; only printable ASCII is shown in the prompt"
        )));
    }
    if value.len() > max {
        return Err(ValidationError(format!(
            "{what} {value:?} is {} characters; Daraja allows at most {max}",
            value.len()
        )));
    }
    Ok(value)
}

macro_rules! prompt_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                prompt_text($what, $max, value.into()).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prompt_type!(
    /// STK Push `AccountReference`: at most 12 characters, shown in the prompt. For a
    /// paybill it is also the `BillRefNumber` of the C2B confirmation that may follow an
    /// STK payment, so the daemon uses the username here.
    AccountReference,
    "account reference",
    12
);

prompt_type!(
    /// STK Push `TransactionDesc`: at most 13 characters.
    TransactionDesc,
    "transaction description",
    13
);

/// A Daraja result code. Usually a number (sent as a JSON number in callbacks and as a
/// string in STK Query), but strings such as `"SFC_IC0003"` occur. Numeric strings are
/// read as numbers so that `0` and `"0"` compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResultCode {
    Code(i64),
    Text(String),
}

impl ResultCode {
    pub fn parse(s: &str) -> ResultCode {
        let t = s.trim();
        match t.parse::<i64>() {
            Ok(n) => ResultCode::Code(n),
            Err(_) => ResultCode::Text(t.to_owned()),
        }
    }

    /// `0`: the customer paid (for STK) or the request was processed.
    pub fn is_success(&self) -> bool {
        matches!(self, ResultCode::Code(0))
    }

    /// What the code means, from the STK/Express table of the reference (§2.4); `None` for
    /// a code not in it.
    pub fn name(&self) -> Option<&'static str> {
        let name = match self {
            ResultCode::Code(0) => "success",
            ResultCode::Code(1) => "balance insufficient",
            ResultCode::Code(2) => "below the minimum amount",
            ResultCode::Code(3) => "above the maximum per transaction",
            ResultCode::Code(4) => "would exceed the daily transfer limit",
            ResultCode::Code(8) => "would exceed the till/paybill maximum balance",
            ResultCode::Code(17) => {
                "rule limited: same amount to the same customer within 2 minutes"
            }
            ResultCode::Code(1001) => {
                "unable to lock subscriber: a transaction is already in process"
            }
            ResultCode::Code(1019) => "transaction expired",
            ResultCode::Code(1025) => "error sending the push (prompt too long)",
            ResultCode::Code(1032) => "cancelled by the customer",
            ResultCode::Code(1037) => "customer's phone could not be reached",
            ResultCode::Code(2001) => "wrong PIN (initiator information invalid)",
            ResultCode::Code(2028) => {
                "not permitted by product assignment (wrong TransactionType or PartyB)"
            }
            ResultCode::Code(8006) => "security credential locked",
            ResultCode::Code(9999) => "error sending the push request",
            ResultCode::Text(t) if t == "SFC_IC0003" => {
                "operator does not exist (wrong PartyB or TransactionType)"
            }
            _ => return None,
        };
        Some(name)
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultCode::Code(n) => write!(f, "{n}"),
            ResultCode::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for ResultCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ResultCode::Code(n) => s.serialize_i64(*n),
            ResultCode::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for ResultCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        ResultCode::from_json(&value)
            .ok_or_else(|| serde::de::Error::custom(format!("not a result code: {value}")))
    }
}

impl ResultCode {
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<ResultCode> {
        match value {
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Some(ResultCode::Code(i)),
                // 0.0 or 1032.0 from a sender that writes every number as a float.
                None => n
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| ResultCode::Code(f as i64)),
            },
            serde_json::Value::String(s) if !s.trim().is_empty() => Some(ResultCode::parse(s)),
            _ => None,
        }
    }
}

/// One STK Push. Build it from validated parts; the client adds the shortcode, password and
/// timestamp.
#[derive(Debug, Clone)]
pub struct StkPushRequest {
    pub phone: Msisdn,
    /// Whole shillings, at least 1.
    pub amount_kes: u32,
    pub account_reference: AccountReference,
    pub description: TransactionDesc,
    /// Where Safaricom POSTs the result. Must not contain words Safaricom filters (such as
    /// "mpesa" or "query"); the client refuses such URLs before sending.
    pub callback_url: String,
}

/// Daraja accepted the push: the prompt is on its way. This is not a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StkPushAccepted {
    pub merchant_request_id: String,
    /// The key of the payment intent: callbacks and queries carry it.
    pub checkout_request_id: String,
    pub customer_message: String,
}

/// What STK Query says about a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StkQueryOutcome {
    /// "The transaction is being processed": the prompt is still open.
    Pending,
    /// Final: the result code and its description. A success here carries no receipt and no
    /// amount.
    Completed(ResultCode, String),
}

/// Daraja accepted a Transaction Status request; the answer arrives later at the ResultURL
/// with these ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionStatusAccepted {
    pub conversation_id: String,
    pub originator_conversation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_people_type_are_normalised() {
        for (input, want) in [
            ("0712345678", "254712345678"),
            ("0712 345 678", "254712345678"),
            ("0712-345-678", "254712345678"),
            ("+254712345678", "254712345678"),
            ("+254 712 345 678", "254712345678"),
            ("254712345678", "254712345678"),
            ("712345678", "254712345678"),
            ("0112345678", "254112345678"),
            ("+254112345678", "254112345678"),
            ("254112345678", "254112345678"),
            ("112345678", "254112345678"),
            (" 0708374149 ", "254708374149"),
        ] {
            let got: Msisdn = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.as_str(), want, "{input}");
        }
    }

    #[test]
    fn other_numbers_are_refused() {
        for input in [
            "",
            "07123456789",   // 11 digits
            "071234567",     // 9 digits with the 0
            "0212345678",    // Nairobi landline
            "+255712345678", // Tanzania
            "255712345678",
            "254812345678", // not a mobile prefix
            "+2540712345678",
            "0712a45678",
            "+0712345678",
            "2547123456789",
            "612345678",
            "0712.345.678",
        ] {
            assert!(input.parse::<Msisdn>().is_err(), "{input:?} accepted");
        }
    }

    #[test]
    fn msisdn_deserializes_through_validation() {
        let m: Msisdn = serde_json::from_str("\"0712 345 678\"").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"254712345678\"");
        assert!(serde_json::from_str::<Msisdn>("\"12345\"").is_err());
    }

    #[test]
    fn account_reference_and_description_lengths() {
        assert!(AccountReference::new("alice01").is_ok());
        assert!(AccountReference::new("abcdefghijkl").is_ok()); // 12
        assert!(AccountReference::new("abcdefghijklm").is_err()); // 13
        assert!(AccountReference::new("").is_err());
        assert!(AccountReference::new("   ").is_err());
        assert!(AccountReference::new("tab\there").is_err());
        assert!(AccountReference::new("café").is_err());
        assert!(TransactionDesc::new("Internet 30d").is_ok());
        assert!(TransactionDesc::new("abcdefghijklm").is_ok()); // 13
        assert!(TransactionDesc::new("abcdefghijklmn").is_err()); // 14
        let err = AccountReference::new("a-very-long-username").unwrap_err();
        assert!(err.0.contains("at most 12"), "{err}");
    }

    #[test]
    fn result_codes_from_numbers_and_strings() {
        let parse = |s: &str| serde_json::from_str::<ResultCode>(s).unwrap();
        assert_eq!(parse("0"), ResultCode::Code(0));
        assert_eq!(parse("\"0\""), ResultCode::Code(0));
        assert_eq!(parse("1032"), ResultCode::Code(1032));
        assert_eq!(parse("\"1032\""), ResultCode::Code(1032));
        assert_eq!(parse("1032.0"), ResultCode::Code(1032));
        assert_eq!(
            parse("\"SFC_IC0003\""),
            ResultCode::Text("SFC_IC0003".into())
        );
        assert!(serde_json::from_str::<ResultCode>("null").is_err());
        assert!(serde_json::from_str::<ResultCode>("\"\"").is_err());
        assert!(serde_json::from_str::<ResultCode>("0.5").is_err());
        assert!(parse("\"0\"").is_success());
        assert!(!parse("1").is_success());
        assert!(!parse("\"SFC_IC0003\"").is_success());
        assert_eq!(
            parse("17").name().unwrap().split(':').next(),
            Some("rule limited")
        );
        assert_eq!(parse("1032").name(), Some("cancelled by the customer"));
        assert!(parse("\"SFC_IC0003\"").name().is_some());
        assert_eq!(parse("424242").name(), None);
        assert_eq!(
            ResultCode::Text("SFC_IC0003".into()).to_string(),
            "SFC_IC0003"
        );
    }

    #[test]
    fn shortcodes_pick_the_right_fields() {
        let paybill = Shortcode::Paybill {
            shortcode: "174379".into(),
        };
        assert_eq!(paybill.business_shortcode(), "174379");
        assert_eq!(paybill.party_b(), "174379");
        assert_eq!(paybill.transaction_type(), "CustomerPayBillOnline");
        let till = Shortcode::Till {
            store_number: "7000001".into(),
            till_number: "5000001".into(),
        };
        assert_eq!(till.business_shortcode(), "7000001");
        assert_eq!(till.party_b(), "5000001");
        assert_eq!(till.transaction_type(), "CustomerBuyGoodsOnline");
        assert!(paybill.validate().is_ok() && till.validate().is_ok());
        assert!(
            Shortcode::Paybill {
                shortcode: "17 4379".into()
            }
            .validate()
            .is_err()
        );
        assert!(
            Shortcode::Till {
                store_number: "".into(),
                till_number: "1".into()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials {
            consumer_key: "key".into(),
            consumer_secret: SecretString::from("very-secret-1"),
            passkey: SecretString::from("very-secret-2"),
            initiator_name: Some("api".into()),
            security_credential: Some(SecretString::from("very-secret-3")),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }
}
