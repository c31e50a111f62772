//! The portal's rate limits: keyed GCRA limiters (`governor`) per client address and per
//! phone. Keys seen recently are kept; [`Limits::forget_idle`], on a timer, drops the ones
//! whose limit has fully recovered, so a stream of new addresses or phones cannot grow the
//! maps without bound.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::api::error::ApiError;
use crate::config::PortalLimits;

/// The three limiters.
#[derive(Debug)]
pub struct Limits {
    purchases_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    purchases_per_phone: DefaultKeyedRateLimiter<String>,
    polls_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    /// Limiters for these settings (each allows its whole allowance at once, then
    /// replenishes evenly over the period).
    pub fn new(cfg: PortalLimits) -> Self {
        Self {
            purchases_per_ip: RateLimiter::keyed(Quota::per_minute(nonzero(
                cfg.purchases_per_ip_per_minute,
            ))),
            purchases_per_phone: RateLimiter::keyed(Quota::per_hour(nonzero(
                cfg.purchases_per_phone_per_hour,
            ))),
            polls_per_ip: RateLimiter::keyed(Quota::per_minute(nonzero(
                cfg.polls_per_ip_per_minute,
            ))),
            clock: DefaultClock::default(),
        }
    }

    fn check<K>(&self, limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), ApiError>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Whole seconds, rounded up: a client that waits this long gets through.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::RateLimited {
                retry_after: secs.max(1),
            }
        })
    }

    /// A purchase started from `ip`.
    pub fn purchase_from(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check(&self.purchases_per_ip, &ip)
    }

    /// A purchase for `phone` (normalised, 2547XXXXXXXX).
    pub fn purchase_for(&self, phone: &str) -> Result<(), ApiError> {
        self.check(&self.purchases_per_phone, &phone.to_owned())
    }

    /// A read (package list or status poll) from `ip`.
    pub fn read_from(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check(&self.polls_per_ip, &ip)
    }

    /// Drops the keys whose limit has fully recovered (they behave as new keys anyway).
    pub fn forget_idle(&self) {
        self.purchases_per_ip.retain_recent();
        self.purchases_per_ip.shrink_to_fit();
        self.purchases_per_phone.retain_recent();
        self.purchases_per_phone.shrink_to_fit();
        self.polls_per_ip.retain_recent();
        self.polls_per_ip.shrink_to_fit();
    }

    /// Keys held, all limiters together (for tests of [`Self::forget_idle`]).
    pub fn len(&self) -> usize {
        self.purchases_per_ip.len() + self.purchases_per_phone.len() + self.polls_per_ip.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_and_others_do_not() {
        let limits = Limits::new(PortalLimits {
            purchases_per_ip_per_minute: 2,
            purchases_per_phone_per_hour: 1,
            polls_per_ip_per_minute: 3,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.purchase_from(a).is_ok());
        assert!(limits.purchase_from(a).is_ok());
        match limits.purchase_from(a) {
            Err(ApiError::RateLimited { retry_after }) => assert!((1..=30).contains(&retry_after)),
            other => panic!("{other:?}"),
        }
        assert!(limits.purchase_from(b).is_ok());
        assert!(limits.purchase_for("254712345678").is_ok());
        match limits.purchase_for("254712345678") {
            // One an hour: the next in an hour.
            Err(ApiError::RateLimited { retry_after }) => {
                assert!((3500..=3600).contains(&retry_after), "{retry_after}");
            }
            other => panic!("{other:?}"),
        }
        assert!(limits.purchase_for("254712345679").is_ok());
        for _ in 0..3 {
            assert!(limits.read_from(a).is_ok());
        }
        assert!(limits.read_from(a).is_err());
        assert!(!limits.is_empty());
    }
}
