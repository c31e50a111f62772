//! Row types and the SQL that reads them. Queries are runtime-checked (`sqlx::query`), so a
//! build needs no database. `inet` and `macaddr` travel as text and are parsed here.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::domain::{Mac, Service, SubscriberStatus};

/// Columns of `plans`, in the order [`plan_from_row`] expects.
pub const PLAN_COLUMNS: &str = "id, name, rate_limit, price_kes, duration_seconds, \
     data_cap_bytes, ip_pool, service, simultaneous_use, fup_rate_limit, time_allowance_seconds, \
     bind_first_mac";
/// Columns of `routers`.
pub const ROUTER_COLUMNS: &str = "id, name, host(ip) AS ip, secret, nas_identifier, coa_port";
/// Columns of `subscribers`.
pub const SUBSCRIBER_COLUMNS: &str = "id, username, password, plan_id, status, expires_at, \
     host(static_ip) AS static_ip, mac::text AS mac, data_remaining_bytes, time_remaining_seconds";

/// A plan row, which is also what the API shows.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = PlanOut)]
pub struct Plan {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Validated `Mikrotik-Rate-Limit`; rx (first) is the client's upload.
    #[schema(example = "5M/5M 10M/10M 4M/4M 16/16 8 1M/1M")]
    pub rate_limit: String,
    /// Price in whole Kenyan shillings.
    pub price_kes: i64,
    /// Validity added on purchase or renewal, seconds.
    pub duration_seconds: i64,
    /// Data allowance per period in bytes; null = unlimited.
    pub data_cap_bytes: Option<i64>,
    /// RouterOS IP pool name (Framed-Pool).
    pub ip_pool: Option<String>,
    /// pppoe, hotspot or both.
    pub service: Service,
    /// Most sessions a subscriber may have open at once (>= 1); null = unlimited.
    pub simultaneous_use: Option<i32>,
    /// `Mikrotik-Rate-Limit` once the data allowance is used up (fair-use policy); null = the
    /// subscriber is rejected at zero data.
    #[schema(example = "512k/512k")]
    pub fup_rate_limit: Option<String>,
    /// Online time per period in seconds (> 0); null = no time allowance.
    pub time_allowance_seconds: Option<i64>,
    /// A hotspot voucher on this plan is bound to the device it is first used from.
    pub bind_first_mac: bool,
}

/// A router (NAS) row.
#[derive(Debug, Clone)]
pub struct Router {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Source address of its RADIUS packets.
    pub ip: IpAddr,
    /// RADIUS shared secret.
    pub secret: SecretString,
    /// Expected NAS-Identifier, if pinned.
    pub nas_identifier: Option<String>,
    /// The router's `/radius incoming` port.
    pub coa_port: i32,
}

/// A subscriber row.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Primary key.
    pub id: i64,
    /// Unique login.
    pub username: String,
    /// Cleartext password (PAP/CHAP/MS-CHAPv2 need it).
    pub password: SecretString,
    /// Plan.
    pub plan_id: i64,
    /// Administrative status.
    pub status: SubscriberStatus,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Static IPv4 address.
    pub static_ip: Option<Ipv4Addr>,
    /// Bound MAC (hotspot MAC login).
    pub mac: Option<Mac>,
    /// Remaining data (None = unlimited).
    pub data_remaining_bytes: Option<i64>,
    /// Remaining online time in seconds (None = unlimited).
    pub time_remaining_seconds: Option<i64>,
}

fn decode<T, E: std::fmt::Display>(column: &str, r: Result<T, E>) -> Result<T, sqlx::Error> {
    r.map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: e.to_string().into(),
    })
}

/// Reads a plan from a row selected with [`PLAN_COLUMNS`].
pub fn plan_from_row(row: &PgRow) -> Result<Plan, sqlx::Error> {
    let service: String = row.try_get("service")?;
    Ok(Plan {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        rate_limit: row.try_get("rate_limit")?,
        price_kes: row.try_get("price_kes")?,
        duration_seconds: row.try_get("duration_seconds")?,
        data_cap_bytes: row.try_get("data_cap_bytes")?,
        ip_pool: row.try_get("ip_pool")?,
        service: decode("service", service.parse())?,
        simultaneous_use: row.try_get("simultaneous_use")?,
        fup_rate_limit: row.try_get("fup_rate_limit")?,
        time_allowance_seconds: row.try_get("time_allowance_seconds")?,
        bind_first_mac: row.try_get("bind_first_mac")?,
    })
}

/// Reads a router from a row selected with [`ROUTER_COLUMNS`].
pub fn router_from_row(row: &PgRow) -> Result<Router, sqlx::Error> {
    let ip: String = row.try_get("ip")?;
    let secret: String = row.try_get("secret")?;
    Ok(Router {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        ip: decode("ip", ip.parse())?,
        secret: SecretString::from(secret),
        nas_identifier: row.try_get("nas_identifier")?,
        coa_port: row.try_get("coa_port")?,
    })
}

/// Reads a subscriber from a row selected with [`SUBSCRIBER_COLUMNS`].
pub fn subscriber_from_row(row: &PgRow) -> Result<Subscriber, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let password: String = row.try_get("password")?;
    let static_ip: Option<String> = row.try_get("static_ip")?;
    let mac: Option<String> = row.try_get("mac")?;
    Ok(Subscriber {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password: SecretString::from(password),
        plan_id: row.try_get("plan_id")?,
        status: decode("status", status.parse())?,
        expires_at: row.try_get("expires_at")?,
        static_ip: static_ip
            .map(|s| decode("static_ip", s.parse()))
            .transpose()?,
        mac: mac.map(|s| decode("mac", s.parse())).transpose()?,
        data_remaining_bytes: row.try_get("data_remaining_bytes")?,
        time_remaining_seconds: row.try_get("time_remaining_seconds")?,
    })
}
