//! The STK Push/Query `Timestamp` and `Password`.
//!
//! Daraja checks the password against the timestamp sent beside it, so one request must
//! use one timestamp string for both (a second boundary between two clock reads gives a
//! sporadic "Wrong credentials"). It also wants Kenyan time, whatever the server's zone.

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Utc};
use secrecy::{ExposeSecret, SecretString};

/// `YYYYMMDDHHmmss` in East Africa Time. Kenya is UTC+3 all year (no daylight saving), so
/// a fixed offset is exact and needs no time-zone database.
pub fn nairobi_timestamp(now: DateTime<Utc>) -> String {
    const EAT_SECONDS: i32 = 3 * 3600;
    let eat = FixedOffset::east_opt(EAT_SECONDS).expect("+03:00 is a valid offset");
    now.with_timezone(&eat).format("%Y%m%d%H%M%S").to_string()
}

/// `base64(shortcode + passkey + timestamp)`. Kept secret because anyone can decode the
/// passkey back out of it.
pub fn password(shortcode: &str, passkey: &SecretString, timestamp: &str) -> SecretString {
    let plain = [shortcode, passkey.expose_secret(), timestamp].concat();
    SecretString::from(base64::engine::general_purpose::STANDARD.encode(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SANDBOX_PASSKEY: &str =
        "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

    #[test]
    fn password_matches_safaricoms_sample() {
        // The STK Push sample of the Daraja docs (shortcode 174379, the sandbox passkey,
        // timestamp 20210628092408).
        let got = password(
            "174379",
            &SecretString::from(SANDBOX_PASSKEY),
            "20210628092408",
        );
        assert_eq!(
            got.expose_secret(),
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMjEwNjI4MDkyNDA4"
        );
    }

    #[test]
    fn timestamp_is_nairobi_time() {
        let utc = Utc.with_ymd_and_hms(2021, 6, 28, 6, 24, 8).unwrap();
        assert_eq!(nairobi_timestamp(utc), "20210628092408");
        // Crosses midnight and a year boundary in Nairobi before UTC does.
        let utc = Utc.with_ymd_and_hms(2023, 12, 31, 21, 0, 0).unwrap();
        assert_eq!(nairobi_timestamp(utc), "20240101000000");
    }

    #[test]
    fn secret_password_does_not_print() {
        let p = password("174379", &SecretString::from(SANDBOX_PASSKEY), "1");
        assert!(!format!("{p:?}").contains("MTc0"));
    }
}
