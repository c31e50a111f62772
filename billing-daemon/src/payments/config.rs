//! M-Pesa settings: the `[mpesa]` table of the config file, then `JASIYO_MPESA_*` variables.
//! M-Pesa is off unless an environment is chosen, and then every credential must be given:
//! none has a default, and sandbox or production is never guessed.
//!
//! | key (`[mpesa]`)       | environment                        | meaning |
//! |-----------------------|------------------------------------|---------|
//! | `environment`         | `JASIYO_MPESA_ENVIRONMENT`         | `sandbox`, `production`, or a base URL (a test fake) |
//! | `consumer_key`        | `JASIYO_MPESA_CONSUMER_KEY`        | Daraja app key |
//! | `consumer_secret`     | `JASIYO_MPESA_CONSUMER_SECRET`     | Daraja app secret |
//! | `passkey`             | `JASIYO_MPESA_PASSKEY`             | Lipa na M-Pesa Online passkey |
//! | `shortcode`           | `JASIYO_MPESA_SHORTCODE`           | paybill number, or the store number of a till |
//! | `till`                | `JASIYO_MPESA_TILL`                | till number (Buy Goods); absent: a paybill |
//! | `initiator_name`      | `JASIYO_MPESA_INITIATOR_NAME`      | API operator for Transaction Status (payment recovery); with `security_credential` or not at all |
//! | `security_credential` | `JASIYO_MPESA_SECURITY_CREDENTIAL` | that operator's password encrypted with Safaricom's certificate (base64, from the Daraja portal) |
//! | `public_url`          | `JASIYO_PUBLIC_URL`                | how Safaricom reaches this daemon, e.g. `https://pay.example.co.ke` |
//! | `c2b_token`           | `JASIYO_MPESA_C2B_TOKEN`           | secret path segment of the C2B URLs (at least 32 characters) |
//! | `callback_allow`      | `JASIYO_MPESA_CALLBACK_ALLOW`      | addresses/networks callbacks may come from (comma-separated); empty: any |
//! | `trusted_proxy`       | `JASIYO_TRUSTED_PROXY`             | the reverse proxy whose `X-Forwarded-For` is believed |
//! | `query_after`         | `JASIYO_MPESA_QUERY_AFTER`         | first STK Query of a pending push, seconds [25] |
//! | `query_interval`      | `JASIYO_MPESA_QUERY_INTERVAL`      | between queries, seconds [30, with jitter] |
//! | `query_deadline`      | `JASIYO_MPESA_QUERY_DEADLINE`      | give up querying after, seconds [300] |
//! | `c2b_amounts`         | `JASIYO_MPESA_C2B_AMOUNTS`         | C2B validation: `any` [default], `price` (exactly the plan's), `at-least-price` |

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde::Deserialize;

use crate::config::{positive_seconds, public_url};

/// `[mpesa]` in the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpesaFile {
    environment: Option<String>,
    consumer_key: Option<String>,
    consumer_secret: Option<String>,
    passkey: Option<String>,
    shortcode: Option<String>,
    till: Option<String>,
    initiator_name: Option<String>,
    security_credential: Option<String>,
    public_url: Option<String>,
    c2b_token: Option<String>,
    callback_allow: Option<String>,
    trusted_proxy: Option<IpAddr>,
    query_after: Option<f64>,
    query_interval: Option<f64>,
    query_deadline: Option<f64>,
    c2b_amounts: Option<String>,
}

/// An address or a network (`196.201.214.0/24`) a callback may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedSource {
    addr: IpAddr,
    prefix: u8,
}

impl AllowedSource {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("{text:?} is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .with_context(|| format!("{text:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u8) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let ((a, width), (b, width_b)) = (bits(self.addr), bits(ip));
        if width != width_b {
            return false;
        }
        let shift = u32::from(width - self.prefix);
        shift >= 128 || (a >> shift) == (b >> shift)
    }
}

/// Which C2B amounts validation lets through (when Safaricom has External Validation on for
/// the shortcode). Whatever gets through is never lost: an amount that does not buy the
/// plan waits in the wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum C2bAmounts {
    /// Any amount.
    Any,
    /// Exactly the price of the subscriber's plan.
    Price,
    /// The price or more.
    AtLeastPrice,
}

impl C2bAmounts {
    /// Whether validation accepts `amount` for a plan costing `price`.
    pub fn accepts(self, amount: i64, price: i64) -> bool {
        match self {
            Self::Any => true,
            Self::Price => amount == price,
            Self::AtLeastPrice => amount >= price,
        }
    }
}

/// Resolved M-Pesa settings.
#[derive(Debug, Clone)]
pub struct MpesaSettings {
    /// Which Daraja.
    pub environment: daraja::Environment,
    /// Paybill or till.
    pub shortcode: daraja::Shortcode,
    /// Keys, passkey and the optional initiator (secrets redacted in `Debug`).
    pub credentials: daraja::Credentials,
    /// Base URL Safaricom reaches the daemon at (no trailing slash).
    pub public_url: String,
    /// Secret path segment of the C2B URLs.
    pub c2b_token: SecretString,
    /// Where callbacks may come from (empty: anywhere).
    pub callback_allow: Vec<AllowedSource>,
    /// The proxy whose `X-Forwarded-For` is believed.
    pub trusted_proxy: Option<IpAddr>,
    /// First STK Query of a pending push.
    pub query_after: Duration,
    /// Between STK Queries.
    pub query_interval: Duration,
    /// When to stop querying and leave the intent `expired_unknown`.
    pub query_deadline: Duration,
    /// C2B validation's amount rule.
    pub c2b_amounts: C2bAmounts,
}

impl MpesaSettings {
    /// None when no environment is chosen (M-Pesa off).
    pub fn load(
        file: Option<MpesaFile>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Self>> {
        let f = file.unwrap_or_default();
        let text = |key: &str, file: Option<String>| env(key).or(file).filter(|v| !v.is_empty());
        let Some(environment) = text("JASIYO_MPESA_ENVIRONMENT", f.environment) else {
            return Ok(None);
        };
        let environment = match environment.as_str() {
            "sandbox" => daraja::Environment::Sandbox,
            "production" => daraja::Environment::Production,
            url => daraja::Environment::Custom(url.parse().with_context(|| {
                format!("JASIYO_MPESA_ENVIRONMENT {url:?}: sandbox, production or a URL")
            })?),
        };
        let required = |key: &str, file: Option<String>| {
            text(key, file).with_context(|| format!("M-Pesa is on: {key} must be set"))
        };
        let shortcode = required("JASIYO_MPESA_SHORTCODE", f.shortcode)?;
        let shortcode = match text("JASIYO_MPESA_TILL", f.till) {
            Some(till) => daraja::Shortcode::Till {
                store_number: shortcode,
                till_number: till,
            },
            None => daraja::Shortcode::Paybill { shortcode },
        };
        let credentials = daraja::Credentials {
            consumer_key: required("JASIYO_MPESA_CONSUMER_KEY", f.consumer_key)?,
            consumer_secret: required("JASIYO_MPESA_CONSUMER_SECRET", f.consumer_secret)?.into(),
            passkey: required("JASIYO_MPESA_PASSKEY", f.passkey)?.into(),
            initiator_name: text("JASIYO_MPESA_INITIATOR_NAME", f.initiator_name),
            security_credential: text("JASIYO_MPESA_SECURITY_CREDENTIAL", f.security_credential)
                .map(SecretString::from),
        };
        if credentials.initiator_name.is_some() != credentials.security_credential.is_some() {
            bail!(
                "Transaction Status needs both JASIYO_MPESA_INITIATOR_NAME and \
                 JASIYO_MPESA_SECURITY_CREDENTIAL, or neither (recovery by receipt off)"
            );
        }
        let public_url = public_url(&required("JASIYO_PUBLIC_URL", f.public_url)?)?;
        let c2b_token = required("JASIYO_MPESA_C2B_TOKEN", f.c2b_token)?;
        if c2b_token.len() < 32 || !c2b_token.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("JASIYO_MPESA_C2B_TOKEN must be at least 32 letters and digits");
        }
        let callback_allow = text("JASIYO_MPESA_CALLBACK_ALLOW", f.callback_allow)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(AllowedSource::parse)
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        let trusted_proxy = match env("JASIYO_TRUSTED_PROXY") {
            Some(v) => Some(
                v.parse()
                    .with_context(|| format!("JASIYO_TRUSTED_PROXY {v:?} is not an address"))?,
            ),
            None => f.trusted_proxy,
        };
        let c2b_amounts = match text("JASIYO_MPESA_C2B_AMOUNTS", f.c2b_amounts).as_deref() {
            None | Some("any") => C2bAmounts::Any,
            Some("price") => C2bAmounts::Price,
            Some("at-least-price") => C2bAmounts::AtLeastPrice,
            Some(other) => {
                bail!("JASIYO_MPESA_C2B_AMOUNTS {other:?}: any, price or at-least-price")
            }
        };
        Ok(Some(Self {
            environment,
            shortcode,
            credentials,
            public_url,
            c2b_token: c2b_token.into(),
            callback_allow,
            trusted_proxy,
            query_after: positive_seconds(
                env,
                "JASIYO_MPESA_QUERY_AFTER",
                f.query_after,
                Duration::from_secs(25),
            )?,
            query_interval: positive_seconds(
                env,
                "JASIYO_MPESA_QUERY_INTERVAL",
                f.query_interval,
                Duration::from_secs(30),
            )?,
            query_deadline: positive_seconds(
                env,
                "JASIYO_MPESA_QUERY_DEADLINE",
                f.query_deadline,
                Duration::from_secs(300),
            )?,
            c2b_amounts,
        }))
    }

    /// Whether Transaction Status (recovering a payment by its receipt) is configured.
    pub fn recovery_enabled(&self) -> bool {
        self.credentials.initiator_name.is_some() && self.credentials.security_credential.is_some()
    }

    /// Whether a callback from `peer` (the TCP peer) with this `X-Forwarded-For` may be
    /// believed. The forwarded address counts only when the peer is the trusted proxy.
    pub fn callback_source_allowed(&self, peer: IpAddr, forwarded_for: Option<&str>) -> bool {
        self.callback_allow.is_empty()
            || self
                .callback_allow
                .iter()
                .any(|a| a.contains(self.callback_source(peer, forwarded_for)))
    }

    /// Where a callback came from as believed: the address the trusted proxy appended to
    /// X-Forwarded-For (the last one) when the peer is that proxy, else the peer.
    pub fn callback_source(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        match (self.trusted_proxy, forwarded_for) {
            (Some(proxy), Some(xff)) if proxy == peer => xff
                .rsplit(',')
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(peer),
            _ => peer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env_of;
    use secrecy::ExposeSecret;

    const TOKEN: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

    fn full() -> Vec<(&'static str, &'static str)> {
        vec![
            ("JASIYO_MPESA_ENVIRONMENT", "sandbox"),
            ("JASIYO_MPESA_CONSUMER_KEY", "key"),
            ("JASIYO_MPESA_CONSUMER_SECRET", "hunter2"),
            ("JASIYO_MPESA_PASSKEY", "passkey-secret"),
            ("JASIYO_MPESA_SHORTCODE", "174379"),
            ("JASIYO_PUBLIC_URL", "https://pay.example.co.ke/"),
            ("JASIYO_MPESA_C2B_TOKEN", TOKEN),
        ]
    }

    #[test]
    fn off_unless_an_environment_is_chosen() {
        assert!(MpesaSettings::load(None, &env_of(&[])).unwrap().is_none());
    }

    #[test]
    fn every_credential_is_required() {
        let all = full();
        for skip in 1..all.len() {
            let some: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, kv)| *kv)
                .collect();
            assert!(
                MpesaSettings::load(None, &env_of(&some)).is_err(),
                "without {}",
                all[skip].0
            );
        }
    }

    #[test]
    fn a_full_configuration() {
        let s = MpesaSettings::load(None, &env_of(&full()))
            .unwrap()
            .unwrap();
        assert_eq!(s.environment, daraja::Environment::Sandbox);
        assert_eq!(s.public_url, "https://pay.example.co.ke");
        assert_eq!(s.c2b_token.expose_secret(), TOKEN);
        assert_eq!(s.query_after, Duration::from_secs(25));
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("passkey-secret"),
            "{debug}"
        );
        assert!(!debug.contains(TOKEN), "{debug}");
        let mut till = full();
        till.push(("JASIYO_MPESA_TILL", "5551234"));
        till.push(("JASIYO_MPESA_ENVIRONMENT", "http://127.0.0.1:9/"));
        let s = MpesaSettings::load(None, &env_of(&till)).unwrap().unwrap();
        assert!(matches!(s.shortcode, daraja::Shortcode::Till { .. }));
        assert!(matches!(s.environment, daraja::Environment::Custom(_)));
    }

    #[test]
    fn the_transaction_status_initiator_is_both_or_neither() {
        let s = MpesaSettings::load(None, &env_of(&full()))
            .unwrap()
            .unwrap();
        assert!(!s.recovery_enabled());
        for half in [
            ("JASIYO_MPESA_INITIATOR_NAME", "apiop"),
            ("JASIYO_MPESA_SECURITY_CREDENTIAL", "c2VjcmV0Y3JlZA=="),
        ] {
            let mut e = full();
            e.push(half);
            assert!(MpesaSettings::load(None, &env_of(&e)).is_err(), "{half:?}");
        }
        let mut e = full();
        e.push(("JASIYO_MPESA_INITIATOR_NAME", "apiop"));
        e.push(("JASIYO_MPESA_SECURITY_CREDENTIAL", "c2VjcmV0Y3JlZA=="));
        let s = MpesaSettings::load(None, &env_of(&e)).unwrap().unwrap();
        assert!(s.recovery_enabled());
        assert!(!format!("{s:?}").contains("c2VjcmV0Y3JlZA=="));
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("JASIYO_MPESA_C2B_TOKEN", "short"),
            ("JASIYO_PUBLIC_URL", "pay.example.co.ke"),
            ("JASIYO_MPESA_ENVIRONMENT", "staging"),
            ("JASIYO_MPESA_CALLBACK_ALLOW", "196.201.214.0/33"),
            ("JASIYO_MPESA_QUERY_AFTER", "0"),
            ("JASIYO_MPESA_C2B_AMOUNTS", "some"),
        ] {
            let mut e = full();
            e.push((k, v));
            assert!(MpesaSettings::load(None, &env_of(&e)).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn callback_sources() {
        let mut e = full();
        e.push((
            "JASIYO_MPESA_CALLBACK_ALLOW",
            "196.201.214.200, 196.201.213.0/24",
        ));
        e.push(("JASIYO_TRUSTED_PROXY", "10.0.0.1"));
        let s = MpesaSettings::load(None, &env_of(&e)).unwrap().unwrap();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(s.callback_source_allowed(ip("196.201.214.200"), None));
        assert!(s.callback_source_allowed(ip("196.201.213.44"), None));
        assert!(s.callback_source_allowed(ip("::ffff:196.201.213.44"), None));
        assert!(!s.callback_source_allowed(ip("203.0.113.9"), None));
        // X-Forwarded-For only from the trusted proxy.
        assert!(s.callback_source_allowed(ip("10.0.0.1"), Some("1.2.3.4, 196.201.214.200")));
        assert!(!s.callback_source_allowed(ip("203.0.113.9"), Some("196.201.214.200")));
        assert!(!s.callback_source_allowed(ip("10.0.0.1"), Some("203.0.113.9")));
        // The address believed is the one kept with the callback.
        assert_eq!(
            s.callback_source(ip("10.0.0.1"), Some("1.2.3.4, 196.201.214.200")),
            ip("196.201.214.200")
        );
        assert_eq!(
            s.callback_source(ip("203.0.113.9"), Some("196.201.214.200")),
            ip("203.0.113.9")
        );
        // No list: anyone (the per-intent secret URL and the checks still apply).
        let open = MpesaSettings::load(None, &env_of(&full()))
            .unwrap()
            .unwrap();
        assert!(open.callback_source_allowed(ip("203.0.113.9"), None));
    }
}
