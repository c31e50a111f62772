//! `Mikrotik-Rate-Limit` strings: parsing and validation.
//!
//! Grammar (RouterOS manual):
//!
//! ```text
//! rx-rate[/tx-rate] [rx-burst-rate[/tx-burst-rate] [rx-burst-threshold[/tx-burst-threshold]
//!     [rx-burst-time[/tx-burst-time] [priority] [rx-rate-min[/tx-rate-min]]]]]
//! ```
//!
//! rx/tx are from the router's point of view: **rx is the client's upload**, tx its download.
//! Rates are whole numbers with an optional `k` (×1000) or `M` (×1,000,000) suffix; a missing
//! tx value equals the rx value. Burst time is whole seconds, priority 1..8 (1 highest), and
//! rate-min must not exceed rate. The database holds a syntactic CHECK mirroring this parser
//! (`jasiyo_valid_rate_limit`), so even plain SQL cannot store a malformed string.

use std::fmt;

/// A validated rate limit. Rates are bits per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate (rx = client upload, tx = client download).
    pub rate: Pair,
    /// Burst section, if any.
    pub burst: Option<Burst>,
    /// Priority 1..8, if given.
    pub priority: Option<u8>,
    /// Guaranteed minimum rate, if given (defaults to `rate` on the router).
    pub rate_min: Option<Pair>,
}

/// The burst part of a rate limit, with the router's defaults applied for missing fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    /// Burst rate.
    pub rate: Pair,
    /// Burst threshold (defaults to the sustained rate).
    pub threshold: Pair,
    /// Burst time in seconds (defaults to 1 s).
    pub time: Pair,
}

/// An rx/tx pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Router receive = client upload.
    pub rx: u64,
    /// Router transmit = client download.
    pub tx: u64,
}

/// Why a rate-limit string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The string is empty.
    #[error("rate_limit is empty")]
    Empty,
    /// Leading, trailing or doubled spaces, or characters other than digits, `k`, `M`, `/`, space.
    #[error(
        "rate_limit must be single-space separated fields, e.g. \"2M/10M 4M/20M 1500k/8M 16/16 8 1M/5M\""
    )]
    Layout,
    /// More than six fields.
    #[error(
        "rate_limit has more than 6 fields (rate, burst-rate, burst-threshold, burst-time, priority, rate-min)"
    )]
    TooManyFields,
    /// A rate that is not `digits[k|M]`.
    #[error("invalid {field} value {value:?}: expected a number with optional k or M suffix")]
    BadRate {
        /// Which field.
        field: &'static str,
        /// The offending text.
        value: String,
    },
    /// A burst time that is not whole seconds.
    #[error("invalid burst-time {0:?}: expected whole seconds, e.g. 16 or 16/16")]
    BadTime(String),
    /// Priority outside 1..8.
    #[error("invalid priority {0:?}: expected 1..8")]
    BadPriority(String),
    /// rate-min above rate.
    #[error("rate-min {min} exceeds rate {rate} ({direction})")]
    MinAboveRate {
        /// "rx (upload)" or "tx (download)".
        direction: &'static str,
        /// rate-min, bits per second.
        min: u64,
        /// rate, bits per second.
        rate: u64,
    },
}

impl RateLimit {
    /// Parses and validates a `Mikrotik-Rate-Limit` string.
    pub fn parse(s: &str) -> Result<Self, RateLimitError> {
        if s.is_empty() {
            return Err(RateLimitError::Empty);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'k' | b'M' | b'/' | b' '))
        {
            return Err(RateLimitError::Layout);
        }
        let fields: Vec<&str> = s.split(' ').collect();
        if fields.iter().any(|f| f.is_empty()) {
            return Err(RateLimitError::Layout);
        }
        if fields.len() > 6 {
            return Err(RateLimitError::TooManyFields);
        }
        let rate = parse_rate_pair(fields[0], "rate")?;
        let burst = match fields.get(1) {
            None => None,
            Some(b) => {
                let burst_rate = parse_rate_pair(b, "burst-rate")?;
                let threshold = match fields.get(2) {
                    Some(t) => parse_rate_pair(t, "burst-threshold")?,
                    None => rate,
                };
                let time = match fields.get(3) {
                    Some(t) => parse_time_pair(t)?,
                    None => Pair { rx: 1, tx: 1 },
                };
                Some(Burst {
                    rate: burst_rate,
                    threshold,
                    time,
                })
            }
        };
        let priority = match fields.get(4) {
            None => None,
            Some(p) => match p.parse::<u8>() {
                Ok(n @ 1..=8) if p.len() == 1 => Some(n),
                _ => return Err(RateLimitError::BadPriority((*p).to_owned())),
            },
        };
        let rate_min = match fields.get(5) {
            None => None,
            Some(m) => {
                let min = parse_rate_pair(m, "rate-min")?;
                if min.rx > rate.rx {
                    return Err(RateLimitError::MinAboveRate {
                        direction: "rx (upload)",
                        min: min.rx,
                        rate: rate.rx,
                    });
                }
                if min.tx > rate.tx {
                    return Err(RateLimitError::MinAboveRate {
                        direction: "tx (download)",
                        min: min.tx,
                        rate: rate.tx,
                    });
                }
                Some(min)
            }
        };
        Ok(Self {
            rate,
            burst,
            priority,
            rate_min,
        })
    }
}

fn parse_rate_pair(s: &str, field: &'static str) -> Result<Pair, RateLimitError> {
    let bad = || RateLimitError::BadRate {
        field,
        value: s.to_owned(),
    };
    let (rx, tx) = match s.split_once('/') {
        Some((rx, tx)) => (rx, Some(tx)),
        None => (s, None),
    };
    let rx = parse_rate(rx).ok_or_else(bad)?;
    let tx = match tx {
        Some(tx) => parse_rate(tx).ok_or_else(bad)?,
        None => rx,
    };
    Ok(Pair { rx, tx })
}

fn parse_rate(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 1_000),
        b'M' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_time_pair(s: &str) -> Result<Pair, RateLimitError> {
    let bad = || RateLimitError::BadTime(s.to_owned());
    let parse = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (rx, tx) = match s.split_once('/') {
        Some((rx, tx)) => (parse(rx).ok_or_else(bad)?, parse(tx).ok_or_else(bad)?),
        None => {
            let v = parse(s).ok_or_else(bad)?;
            (v, v)
        }
    };
    Ok(Pair { rx, tx })
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.rx, self.tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> RateLimit {
        RateLimit::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn manual_examples() {
        let r = ok("128k");
        assert_eq!(
            r.rate,
            Pair {
                rx: 128_000,
                tx: 128_000
            }
        );
        assert!(r.burst.is_none());

        let r = ok("64k/128M");
        assert_eq!(
            r.rate,
            Pair {
                rx: 64_000,
                tx: 128_000_000
            }
        );

        // "64k 256k": burst threshold defaults to the rate, burst time to 1 s.
        let r = ok("64k 256k");
        let b = r.burst.unwrap();
        assert_eq!(
            b.rate,
            Pair {
                rx: 256_000,
                tx: 256_000
            }
        );
        assert_eq!(
            b.threshold,
            Pair {
                rx: 64_000,
                tx: 64_000
            }
        );
        assert_eq!(b.time, Pair { rx: 1, tx: 1 });

        let r = ok("64k/64k 256k/256k 128k/128k 10/10");
        let b = r.burst.unwrap();
        assert_eq!(
            b.threshold,
            Pair {
                rx: 128_000,
                tx: 128_000
            }
        );
        assert_eq!(b.time, Pair { rx: 10, tx: 10 });
    }

    #[test]
    fn full_string_rx_is_upload() {
        let r = ok("2M/4M 4M/8M 1500k/3M 16/16 8 1M/2M");
        assert_eq!(
            r.rate,
            Pair {
                rx: 2_000_000,
                tx: 4_000_000
            }
        );
        let b = r.burst.unwrap();
        assert_eq!(
            b.rate,
            Pair {
                rx: 4_000_000,
                tx: 8_000_000
            }
        );
        assert_eq!(
            b.threshold,
            Pair {
                rx: 1_500_000,
                tx: 3_000_000
            }
        );
        assert_eq!(b.time, Pair { rx: 16, tx: 16 });
        assert_eq!(r.priority, Some(8));
        assert_eq!(
            r.rate_min,
            Some(Pair {
                rx: 1_000_000,
                tx: 2_000_000
            })
        );
    }

    #[test]
    fn common_billing_strings() {
        for s in [
            "10M/10M",
            "5M/5M",
            "2M/2M 4M/4M",
            "10M/5M 15M/7M",
            "1k/1k",
            "51200k/102400k",
            "0/0",
        ] {
            ok(s);
        }
    }

    #[test]
    fn bad_inputs() {
        use RateLimitError as E;
        type Check = fn(&RateLimitError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == E::Empty),
            (" 5M", |e| *e == E::Layout),
            ("5M ", |e| *e == E::Layout),
            ("5M  10M", |e| *e == E::Layout),
            ("5M\t10M", |e| *e == E::Layout),
            ("5G", |e| *e == E::Layout),
            ("5m", |e| *e == E::Layout),
            ("-5M", |e| *e == E::Layout),
            ("1.5M", |e| *e == E::Layout),
            ("M", |e| matches!(e, E::BadRate { .. })),
            ("5M/", |e| matches!(e, E::BadRate { .. })),
            ("/5M", |e| matches!(e, E::BadRate { .. })),
            ("5M/5M/5M", |e| matches!(e, E::BadRate { .. })),
            ("5kM", |e| matches!(e, E::BadRate { .. })),
            ("99999999999999999999M", |e| matches!(e, E::BadRate { .. })),
            ("2M 4M 1M 16k", |e| matches!(e, E::BadTime(_))),
            ("2M 4M 1M 16/", |e| matches!(e, E::BadTime(_))),
            ("2M 4M 1M 16 0", |e| matches!(e, E::BadPriority(_))),
            ("2M 4M 1M 16 9", |e| matches!(e, E::BadPriority(_))),
            ("2M 4M 1M 16 08", |e| matches!(e, E::BadPriority(_))),
            ("2M 4M 1M 16 1k", |e| matches!(e, E::BadPriority(_))),
            ("2M/4M 4M/8M 1M/2M 16/16 8 3M/2M", |e| {
                matches!(
                    e,
                    E::MinAboveRate {
                        direction: "rx (upload)",
                        ..
                    }
                )
            }),
            ("2M/4M 4M/8M 1M/2M 16/16 8 1M/5M", |e| {
                matches!(
                    e,
                    E::MinAboveRate {
                        direction: "tx (download)",
                        ..
                    }
                )
            }),
            ("2M 4M 1M 16 8 1M 1M", |e| *e == E::TooManyFields),
        ];
        for (input, check) in cases {
            match RateLimit::parse(input) {
                Ok(r) => panic!("{input:?} should be refused, got {r:?}"),
                Err(e) => assert!(check(&e), "{input:?}: unexpected error {e:?}"),
            }
        }
    }
}
