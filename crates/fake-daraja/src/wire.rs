//! Daraja's wire conventions: the error envelope, identifiers, timestamps, and the field
//! checks several endpoints share.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};

use crate::config::MsisdnStyle;

/// A synchronous Daraja error: `{"requestId", "errorCode", "errorMessage"}`. The HTTP
/// status is the code's leading three digits, as on Daraja.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// `400.002.02 Bad Request - Invalid <field>`, Daraja's answer to any bad field.
    pub(crate) fn invalid(field: &str) -> Self {
        ApiError::new("400.002.02", format!("Bad Request - Invalid {field}"))
    }

    pub(crate) fn bad_token() -> Self {
        ApiError::new("404.001.03", "Invalid Access Token")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self
            .code
            .get(..3)
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "requestId": request_id(),
            "errorCode": self.code,
            "errorMessage": self.message,
        });
        (status, axum::Json(body)).into_response()
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn random_digits(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..10), 10).unwrap_or('0'))
        .collect()
}

/// Shaped like Daraja's `1c5b-4ba8-815c-ac45c57a3db01495926`; also used for
/// `MerchantRequestID` and `OriginatorConversationID`, which look the same.
pub(crate) fn request_id() -> String {
    format!(
        "{}-{}-{}-{}{}",
        random_hex(4),
        random_hex(4),
        random_hex(4),
        random_hex(12),
        random_digits(7)
    )
}

/// `AG_<yyyyMMdd>_<20 hex>`, the shape of Daraja's `ConversationID`.
pub(crate) fn conversation_id(now: DateTime<Utc>) -> String {
    format!(
        "AG_{}_{}",
        now.with_timezone(&nairobi()).format("%Y%m%d"),
        random_hex(20)
    )
}

/// `ws_CO_<ddMMyyyyHHmmssSSS><msisdn>`.
pub(crate) fn checkout_request_id(now: DateTime<Utc>, phone: &str) -> String {
    format!(
        "ws_CO_{}{}",
        now.with_timezone(&nairobi()).format("%d%m%Y%H%M%S%3f"),
        phone
    )
}

/// A receipt candidate matching `^[A-Z0-9]{10}$` and starting with a letter, as real
/// receipts do. The caller makes it unique.
pub(crate) fn receipt_candidate() -> String {
    let mut rng = rand::rng();
    let first = char::from(b'A' + rng.random_range(0..26u8));
    let rest: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .map(|b| char::from(b).to_ascii_uppercase())
        .take(9)
        .collect();
    format!("{first}{rest}")
}

pub(crate) fn opaque_token() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(28)
        .map(char::from)
        .collect()
}

/// Kenya is UTC+3 all year (no DST), so a fixed offset is exact.
pub(crate) fn nairobi() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).unwrap_or_else(|| unreachable!("3 h is a valid offset"))
}

/// `YYYYMMDDHHmmss` in Africa/Nairobi: the format of `Timestamp`, `TransactionDate`,
/// `TransTime`.
pub fn nairobi_timestamp(now: DateTime<Utc>) -> String {
    now.with_timezone(&nairobi())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// `base64(shortcode + passkey + timestamp)`, the STK `Password`.
pub fn stk_password(shortcode: &str, passkey: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{shortcode}{passkey}{timestamp}"))
}

/// Parses a `YYYYMMDDHHmmss` Nairobi timestamp.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    nairobi()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Daraja bodies mix numbers and strings for the same field (`"BusinessShortCode":
/// 174379` and `"PartyB": "174379"` in one sample), so both are read as text.
pub(crate) fn text(obj: &Map<String, Value>, name: &str) -> Option<String> {
    match obj.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Field `name` as text if `ok` accepts it, else Daraja's `Invalid <name>`.
pub(crate) fn field(
    obj: &Map<String, Value>,
    name: &str,
    ok: impl Fn(&str) -> bool,
) -> Result<String, ApiError> {
    text(obj, name)
        .filter(|v| ok(v))
        .ok_or_else(|| ApiError::invalid(name))
}

/// A whole number of shillings, at least 1, given as number or string.
pub(crate) fn whole_amount(obj: &Map<String, Value>, name: &str) -> Option<u64> {
    let raw = text(obj, name)?;
    let value: f64 = raw.trim().parse().ok()?;
    if !value.is_finite() || value < 1.0 || value.fract() != 0.0 || value > 1e12 {
        return None;
    }
    // Checked above: whole, positive and far below u64::MAX.
    Some(value as u64)
}

/// `2547XXXXXXXX` or `2541XXXXXXXX`, the only MSISDN forms Daraja accepts.
pub(crate) fn is_msisdn(s: &str) -> bool {
    s.len() == 12
        && (s.starts_with("2547") || s.starts_with("2541"))
        && s.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn is_shortcode(s: &str) -> bool {
    (5..=9).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Words Daraja refuses anywhere in a callback or C2B URL (mpesa-daraja.md §1.4).
const FORBIDDEN_URL_WORDS: &[&str] = &[
    "m-pesa",
    "mpesa",
    "safaricom",
    "exe",
    "cmd",
    "sql",
    "query",
    "ngrok",
    "mockbin",
    "requestbin",
];

/// Daraja wants public HTTPS URLs; plain HTTP is allowed here only to loopback so the fake
/// can call a daemon running inside the test.
pub(crate) fn is_acceptable_url(s: &str) -> bool {
    let Ok(url) = url::Url::parse(s) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    let lower = s.to_ascii_lowercase();
    scheme_ok && !FORBIDDEN_URL_WORDS.iter().any(|w| lower.contains(w))
}

/// Daraja's APIs require `Content-Type: application/json`.
pub(crate) fn has_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// The body as a JSON object, or Daraja's answer to a malformed one.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::new(
            "400.002.02",
            "Bad Request - Invalid JSON request body",
        )),
    }
}

/// What C2B notifications carry as `MSISDN` in place of the phone number.
pub(crate) fn opaque_msisdn(phone: &str, style: MsisdnStyle) -> String {
    match style {
        MsisdnStyle::Hashed => {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(phone.as_bytes()))
        }
        MsisdnStyle::Masked => {
            let head = phone.get(..4).unwrap_or(phone);
            let tail = phone.get(phone.len().saturating_sub(3)..).unwrap_or("");
            format!("{head} ***** {tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_the_documented_sandbox_vector() {
        // mpesa-daraja.md §1.2: the sample request's Password for 174379 at 20210628092408.
        assert_eq!(
            stk_password("174379", crate::config::SANDBOX_PASSKEY, "20210628092408"),
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMjEwNjI4MDkyNDA4"
        );
    }

    #[test]
    fn timestamps_are_nairobi_time() {
        let t = Utc.with_ymd_and_hms(2024, 7, 10, 21, 30, 5).unwrap();
        assert_eq!(nairobi_timestamp(t), "20240711003005");
        assert_eq!(parse_timestamp("20240711003005"), Some(t));
        assert_eq!(parse_timestamp("2024071100300"), None);
        assert_eq!(parse_timestamp("20241311003005"), None);
    }

    #[test]
    fn urls() {
        assert!(is_acceptable_url("https://example.com/pay/cb/abc"));
        assert!(is_acceptable_url("http://127.0.0.1:4000/pay/cb/abc"));
        assert!(is_acceptable_url("http://localhost:4000/pay/cb/abc"));
        assert!(!is_acceptable_url("http://example.com/pay/cb/abc"));
        assert!(!is_acceptable_url("https://example.com/mpesa/cb"));
        assert!(!is_acceptable_url("https://example.com/M-PESA/cb"));
        assert!(!is_acceptable_url("https://example.com/cb?query=1"));
        assert!(!is_acceptable_url("https://abc.ngrok.io/cb"));
        assert!(!is_acceptable_url("not a url"));
    }

    #[test]
    fn ids_have_daraja_shapes() {
        let receipt = receipt_candidate();
        assert_eq!(receipt.len(), 10);
        assert!(
            receipt
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        let t = Utc.with_ymd_and_hms(2024, 7, 10, 6, 15, 26).unwrap();
        assert_eq!(
            checkout_request_id(t, "254712345678"),
            "ws_CO_10072024091526000254712345678"
        );
        assert_eq!(request_id().len(), 4 + 1 + 4 + 1 + 4 + 1 + 19);
    }

    #[test]
    fn msisdn_and_amounts() {
        assert!(is_msisdn("254712345678"));
        assert!(is_msisdn("254112345678"));
        assert!(!is_msisdn("0712345678"));
        assert!(!is_msisdn("25471234567"));
        assert!(!is_msisdn("254812345678"));
        assert_eq!(
            opaque_msisdn("254708374149", MsisdnStyle::Masked),
            "2547 ***** 149"
        );
        let obj = json!({"a": 1, "b": "2", "c": "1.00", "d": 1.5, "e": 0, "f": "x"});
        let obj = obj.as_object().unwrap();
        assert_eq!(whole_amount(obj, "a"), Some(1));
        assert_eq!(whole_amount(obj, "b"), Some(2));
        assert_eq!(whole_amount(obj, "c"), Some(1));
        assert_eq!(whole_amount(obj, "d"), None);
        assert_eq!(whole_amount(obj, "e"), None);
        assert_eq!(whole_amount(obj, "f"), None);
        assert_eq!(whole_amount(obj, "missing"), None);
    }
}
