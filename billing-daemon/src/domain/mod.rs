//! Domain types that enforce the invariants of input before it reaches Postgres.

pub mod rate_limit;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use rate_limit::{RateLimit, RateLimitError};

/// Which RouterOS services a plan may be used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// PPP (PPPoE, and the other PPP tunnels) only.
    Pppoe,
    /// Hotspot only.
    Hotspot,
    /// Both.
    Both,
}

impl Service {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pppoe => "pppoe",
            Self::Hotspot => "hotspot",
            Self::Both => "both",
        }
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pppoe" => Ok(Self::Pppoe),
            "hotspot" => Ok(Self::Hotspot),
            "both" => Ok(Self::Both),
            other => Err(format!("unknown service {other:?}")),
        }
    }
}

impl From<Service> for jasiyo_snapshot::Service {
    fn from(s: Service) -> Self {
        match s {
            Service::Pppoe => Self::Pppoe,
            Service::Hotspot => Self::Hotspot,
            Service::Both => Self::Both,
        }
    }
}

/// Administrative status of a subscriber. Expiry is separate (`expires_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// May log in while not expired and not out of data.
    Active,
    /// Refused regardless of expiry.
    Suspended,
}

impl SubscriberStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl FromStr for SubscriberStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(format!("unknown status {other:?}")),
        }
    }
}

impl From<SubscriberStatus> for jasiyo_snapshot::SubscriberStatus {
    fn from(s: SubscriberStatus) -> Self {
        match s {
            SubscriberStatus::Active => Self::Active,
            SubscriberStatus::Suspended => Self::Suspended,
        }
    }
}

/// Checks a subscriber username: 1..64 characters, no whitespace or control characters.
pub fn validate_username(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 || n > 64 {
        return Err("username must be 1..64 characters".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("username must not contain whitespace or control characters".to_owned());
    }
    if s.starts_with(jasiyo_snapshot::voucher::VOUCHER_PREFIX) {
        return Err(format!(
            "username must not start with {:?} (reserved for hotspot vouchers)",
            jasiyo_snapshot::voucher::VOUCHER_PREFIX
        ));
    }
    Ok(())
}

/// A MAC address, accepted as `AA:BB:CC:DD:EE:FF` or `aa-bb-cc-dd-ee-ff` (either case),
/// displayed upper-case with colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            format!("invalid MAC address {s:?}: expected AA:BB:CC:DD:EE:FF or aa-bb-cc-dd-ee-ff")
        };
        let sep = if s.contains(':') { ':' } else { '-' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

/// New expiry after a renewal: the plan's duration added to whichever is later, now or the
/// current expiry (so paying early never loses days, and paying late starts from today).
pub fn renewed_expiry(
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    duration_seconds: i64,
) -> DateTime<Utc> {
    now.max(expires_at) + Duration::seconds(duration_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn mac_forms() {
        let m: Mac = "aa-bb-cc-0d-ee-ff".parse().unwrap();
        assert_eq!(m.to_string(), "AA:BB:CC:0D:EE:FF");
        let m2: Mac = "AA:BB:CC:0D:EE:FF".parse().unwrap();
        assert_eq!(m, m2);
        for bad in [
            "",
            "AA:BB:CC:DD:EE",
            "AA:BB:CC:DD:EE:FF:00",
            "AABBCCDDEEFF",
            "AA:BB-CC:DD:EE:FF",
            "GG:BB:CC:DD:EE:FF",
            "A:BB:CC:DD:EE:FFF",
            "+A:BB:CC:DD:EE:FF",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("0712345678@isp").is_ok());
        assert!(validate_username(&"x".repeat(64)).is_ok());
        assert!(validate_username(&"é".repeat(64)).is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username(&"x".repeat(65)).is_err());
        assert!(validate_username("a b").is_err());
        assert!(validate_username("a\u{0}").is_err());
        assert!(validate_username("tab\t").is_err());
    }

    #[test]
    fn renew_from_future_expiry_extends_it() {
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let exp = Utc.with_ymd_and_hms(2026, 1, 20, 0, 0, 0).unwrap();
        assert_eq!(
            renewed_expiry(now, exp, 86_400),
            Utc.with_ymd_and_hms(2026, 1, 21, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn renew_after_expiry_starts_from_now() {
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let exp = Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(
            renewed_expiry(now, exp, 30 * 86_400),
            Utc.with_ymd_and_hms(2026, 2, 9, 12, 0, 0).unwrap()
        );
        assert_eq!(renewed_expiry(now, now, 60), now + Duration::seconds(60));
    }
}
