//! The public portal API under `/portal/v1`, for the hotspot login page a router serves:
//! the router's packages, buying one with an STK Push, and polling the purchase until the
//! voucher code comes back. No bearer token (the customer is not logged in); CORS open to
//! any origin (the page comes from the router, another origin); rate limits per client
//! address and per phone ([`limits`]).
//!
//! A purchase is a voucher of its own (see `payments::stk::start_voucher`): not usable
//! until paid, and reported `paid` with its code only once the snapshot radiusd reads has
//! it usable, so the page's automatic login cannot race the publisher.

pub mod handlers;
pub mod limits;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::convert::Infallible;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::routing::{get, post};
use jasiyo_snapshot::{LoadMode, SnapshotReader, SubscriberStatus};
use tower_http::cors::{Any, CorsLayer};

use crate::api::AppState;
use crate::config::PortalLimits;
use crate::domain::rate_limit::RateLimit;

/// Largest purchase body accepted (a package id, a phone and a MAC fit in a tenth of it).
pub const MAX_BODY: usize = 1024;

/// How long after a purchase its code can be fetched with its token.
pub const CODE_HANDBACK_HOURS: i64 = 24;

/// The portal's own state: its rate limits, and a reader of the snapshot radiusd answers
/// from.
#[derive(Debug)]
pub struct Portal {
    /// Rate limits.
    pub limits: limits::Limits,
    snapshot_dir: Option<PathBuf>,
    reader: Mutex<Option<Arc<SnapshotReader>>>,
}

impl Portal {
    /// A portal with these limits that checks usability in the snapshot published into
    /// `snapshot_dir` (None: a purchase is never reported paid; for tests without a
    /// publisher).
    pub fn new(limits: PortalLimits, snapshot_dir: Option<PathBuf>) -> Self {
        Self {
            limits: limits::Limits::new(limits),
            snapshot_dir,
            reader: Mutex::new(None),
        }
    }

    /// Whether radiusd, reading the snapshot as published now, accepts voucher
    /// `lookup_name` (active, not expired). The reader is opened on first use.
    pub fn usable_in_snapshot(&self, lookup_name: &str) -> bool {
        let Some(reader) = self.reader() else {
            return false;
        };
        reader.refresh();
        let snapshot = reader.current();
        let now = chrono::Utc::now().timestamp();
        snapshot
            .subscriber_by_username(lookup_name.as_bytes())
            .is_some_and(|v| v.status() == SubscriberStatus::Active && v.expires_at() > now)
    }

    fn reader(&self) -> Option<Arc<SnapshotReader>> {
        let dir = self.snapshot_dir.as_ref()?;
        let mut slot = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match SnapshotReader::open_with(dir, LoadMode::Map) {
                Ok(r) => *slot = Some(Arc::new(r)),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "portal: snapshot not readable");
                    return None;
                }
            }
        }
        slot.clone()
    }

    /// Runs [`limits::Limits::forget_idle`] every `every` until the task is aborted.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let portal = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(p) = portal.upgrade() else { return };
                p.limits.forget_idle();
            }
        })
    }
}

/// The `/portal/v1` routes, with CORS open to any origin.
pub fn routes() -> axum::Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600));
    axum::Router::new()
        .route("/routers/{router_id}/packages", get(handlers::packages))
        .route("/routers/{router_id}/purchases", post(handlers::purchase))
        .route("/purchases/{token}", get(handlers::poll))
        // Set before the CORS layer so that it is inside it (and the app's own, set later
        // on routes without one, does not replace it): a preflight OPTIONS is answered by
        // the layer, not refused as a method these routes lack.
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(cors)
}

/// The client's address as believed: the TCP peer, or the address the trusted proxy
/// (`JASIYO_TRUSTED_PROXY`, M-Pesa's setting) appended to X-Forwarded-For when the peer is
/// that proxy. Unknown peer (no socket, in tests): 0.0.0.0.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let xff = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(Self(match &st.mpesa {
            Some(m) => m.settings.callback_source(peer, xff),
            None => peer,
        }))
    }
}

/// The page's words for a failed purchase, by Daraja's ResultCode (None: no result known,
/// the push expired unanswered).
pub fn failure_message(status: &str, result_code: Option<&str>) -> &'static str {
    if status == "expired_unknown" {
        return "We could not confirm your payment. If M-Pesa took the money, keep the \
                M-Pesa message and contact us.";
    }
    match result_code {
        Some("1032") => "You cancelled the M-Pesa request. Nothing was charged.",
        Some("1037") => {
            "Your phone did not answer the M-Pesa request in time. Make sure it is on and \
             unlocked, then try again."
        }
        Some("1") => "Your M-Pesa balance is not enough for this package.",
        Some("2001") => "The M-Pesa PIN was wrong. Nothing was charged; please try again.",
        _ => "The M-Pesa payment did not go through. Please try again.",
    }
}

/// A package's summary for the page, made by the server: what it gives, how long it is
/// valid, its download speed. "1 hour, 5 Mbit/s"; "1 GB, valid 30 days, 5 Mbit/s".
pub fn describe(
    duration_seconds: i64,
    time_allowance_seconds: Option<i64>,
    data_cap_bytes: Option<i64>,
    rate_limit: &str,
) -> String {
    let mut parts = Vec::new();
    if let Some(bytes) = data_cap_bytes {
        parts.push(bytes_text(bytes));
    }
    if let Some(secs) = time_allowance_seconds {
        parts.push(format!("{} online", duration_text(secs)));
    }
    if parts.is_empty() {
        parts.push(duration_text(duration_seconds));
    } else {
        parts.push(format!("valid {}", duration_text(duration_seconds)));
    }
    if let Ok(r) = RateLimit::parse(rate_limit) {
        // tx: what the router sends, the customer's download.
        parts.push(speed_text(r.rate.tx));
    }
    parts.join(", ")
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn duration_text(secs: i64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn bytes_text(bytes: i64) -> String {
    // Exact binary or decimal multiples read as whole numbers; anything else to one place.
    for (size, unit) in [(1_i64 << 30, "GB"), (1_000_000_000, "GB")] {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    if bytes >= 1_000_000_000 && bytes % 100_000_000 == 0 {
        return format!("{}.{} GB", bytes / 1_000_000_000, bytes / 100_000_000 % 10);
    }
    for (size, unit) in [(1_i64 << 20, "MB"), (1_000_000, "MB")] {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / f64::from(1_u32 << 30))
    } else if b >= 1e6 {
        format!("{:.1} MB", b / f64::from(1_u32 << 20))
    } else {
        format!("{bytes} bytes")
    }
}

fn speed_text(bits: u64) -> String {
    let (n, unit) = if bits >= 1_000_000 && bits % 1_000_000 == 0 {
        (bits / 1_000_000, "Mbit/s")
    } else if bits >= 1_000 && bits % 1_000 == 0 {
        (bits / 1_000, "kbit/s")
    } else {
        (bits, "bit/s")
    };
    format!("{n} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(describe(3600, None, None, "5M/5M"), "1 hour, 5 Mbit/s");
        assert_eq!(describe(86_400, None, None, "2M/10M"), "1 day, 10 Mbit/s");
        assert_eq!(
            describe(30 * 86_400, None, Some(1 << 30), "5M/5M"),
            "1 GB, valid 30 days, 5 Mbit/s"
        );
        assert_eq!(
            describe(86_400, Some(7200), Some(500_000_000), "512k/1M"),
            "500 MB, 2 hours online, valid 1 day, 1 Mbit/s"
        );
        assert_eq!(
            describe(90, None, None, "512k/512k"),
            "90 seconds, 512 kbit/s"
        );
        assert_eq!(
            describe(1800, None, Some(1_500_000_000), "bad"),
            "1.5 GB, valid 30 minutes"
        );
        assert_eq!(
            describe(60, None, Some(1_234_567_890), "1M/1M"),
            "1.1 GB, valid 1 minute, 1 Mbit/s"
        );
    }

    #[test]
    fn failure_messages_per_result_code() {
        assert!(failure_message("failed", Some("1032")).contains("cancelled"));
        assert!(failure_message("failed", Some("1037")).contains("did not answer"));
        assert!(failure_message("failed", Some("1")).contains("balance"));
        assert!(failure_message("failed", Some("2001")).contains("PIN"));
        assert!(failure_message("failed", Some("SFC_IC0003")).contains("did not go through"));
        assert!(failure_message("failed", None).contains("did not go through"));
        assert!(failure_message("expired_unknown", None).contains("could not confirm"));
    }
}
