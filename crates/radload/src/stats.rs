//! Counters and latency percentiles, merged across workers, and the report.

use std::time::Duration;

/// What one worker observed.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Distinct requests sent (retransmissions not counted).
    pub(crate) sent: u64,
    pub(crate) accept: u64,
    pub(crate) reject: u64,
    pub(crate) challenge: u64,
    /// Accounting-Responses.
    pub(crate) accounting_response: u64,
    /// Verified replies with any other code.
    pub(crate) other: u64,
    /// Requests that got no valid reply after every retransmission.
    pub(crate) timeouts: u64,
    pub(crate) retransmits: u64,
    /// Replies whose Response Authenticator or Message-Authenticator did not verify.
    pub(crate) bad_authenticator: u64,
    /// Verified replies without a Message-Authenticator (counted only when required).
    pub(crate) missing_message_authenticator: u64,
    /// Replies for an identifier with no request outstanding (late or duplicate).
    pub(crate) stale: u64,
    /// Datagrams that did not decode as RADIUS.
    pub(crate) malformed: u64,
    /// Socket errors on send or receive (e.g. ICMP port unreachable).
    pub(crate) socket_errors: u64,
    /// Latency of each completed request in microseconds, first send to reply.
    pub(crate) latencies_us: Vec<u32>,
}

impl Stats {
    pub(crate) fn merge(&mut self, o: Self) {
        self.sent += o.sent;
        self.accept += o.accept;
        self.reject += o.reject;
        self.challenge += o.challenge;
        self.accounting_response += o.accounting_response;
        self.other += o.other;
        self.timeouts += o.timeouts;
        self.retransmits += o.retransmits;
        self.bad_authenticator += o.bad_authenticator;
        self.missing_message_authenticator += o.missing_message_authenticator;
        self.stale += o.stale;
        self.malformed += o.malformed;
        self.socket_errors += o.socket_errors;
        self.latencies_us.extend(o.latencies_us);
    }

    pub(crate) fn completed(&self) -> u64 {
        self.accept + self.reject + self.challenge + self.accounting_response + self.other
    }
}

/// The final numbers.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) stats: Stats,
    pub(crate) elapsed: Duration,
    pub(crate) window: usize,
    pub(crate) sockets: usize,
    pub(crate) server: String,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

/// Nearest-rank percentiles over latencies in microseconds (sorts in place).
pub(crate) fn percentiles(lat_us: &mut [u32]) -> Percentiles {
    if lat_us.is_empty() {
        return Percentiles::default();
    }
    lat_us.sort_unstable();
    let n = lat_us.len();
    let rank = |p: f64| -> f64 {
        // Nearest rank: ceil(p * n), 1-based.
        let r = ((p * n as f64).ceil() as usize).clamp(1, n);
        f64::from(lat_us.get(r - 1).copied().unwrap_or(0)) / 1000.0
    };
    let sum: u64 = lat_us.iter().map(|&v| u64::from(v)).sum();
    Percentiles {
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: f64::from(lat_us.last().copied().unwrap_or(0)) / 1000.0,
        mean: sum as f64 / n as f64 / 1000.0,
    }
}

impl Report {
    pub(crate) fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.completed() as f64 / secs
        } else {
            0.0
        }
    }

    pub(crate) fn summary_line(&self, p: &Percentiles) -> String {
        let s = &self.stats;
        format!(
            "radload: {} sent, {} answered in {:.2} s = {:.0} req/s (window {}); \
             accept {} reject {} challenge {} accounting-response {} other {} timeout {} \
             retransmit {} \
             bad-auth {} missing-MA {} stale {} malformed {} socket-errors {}; \
             latency ms p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}",
            s.sent,
            s.completed(),
            self.elapsed.as_secs_f64(),
            self.rps(),
            self.window,
            s.accept,
            s.reject,
            s.challenge,
            s.accounting_response,
            s.other,
            s.timeouts,
            s.retransmits,
            s.bad_authenticator,
            s.missing_message_authenticator,
            s.stale,
            s.malformed,
            s.socket_errors,
            p.p50,
            p.p90,
            p.p99,
            p.max,
        )
    }

    pub(crate) fn json(&self, p: &Percentiles) -> serde_json::Value {
        let s = &self.stats;
        serde_json::json!({
            "server": self.server,
            "window": self.window,
            "sockets": self.sockets,
            "sent": s.sent,
            "completed": s.completed(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests_per_s": self.rps(),
            "accept": s.accept,
            "reject": s.reject,
            "challenge": s.challenge,
            "accounting_response": s.accounting_response,
            "other": s.other,
            "timeouts": s.timeouts,
            "retransmits": s.retransmits,
            "bad_authenticator": s.bad_authenticator,
            "missing_message_authenticator": s.missing_message_authenticator,
            "stale": s.stale,
            "malformed": s.malformed,
            "socket_errors": s.socket_errors,
            "latency_ms": {
                "p50": p.p50,
                "p90": p.p90,
                "p99": p.p99,
                "max": p.max,
                "mean": p.mean,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let p = percentiles(&mut v);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(p.mean, 50.5);
        assert_eq!(percentiles(&mut []), Percentiles::default());
        let mut one = [1500];
        assert_eq!(percentiles(&mut one).p99, 1.5);
    }
}
