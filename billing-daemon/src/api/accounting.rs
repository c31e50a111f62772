//! Read-only accounting endpoints: `/api/v1/sessions`, `/api/v1/subscribers/{username}/sessions`,
//! `/api/v1/subscribers/{username}/usage` and `/api/v1/auth-log`.

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{QueryBuilder, Row};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, limit, subscriber_id};

const SESSION_COLUMNS: &str = "id, router_id, host(source_ip) AS source_ip, host(nas_ip) AS nas_ip, \
    nas_identifier, username, subscriber_id, acct_session_id, nas_port, nas_port_id, \
    host(framed_ip) AS framed_ip, calling_mac, started_at, last_update_at, stopped_at, \
    terminate_cause, closed_by, input_bytes, output_bytes, input_packets, output_packets, \
    session_seconds, interim_interval";

/// An accounting session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// Id.
    pub id: i64,
    /// The router that sent its accounting (null if not registered).
    pub router_id: Option<i64>,
    /// Source address of the accounting packets.
    #[schema(example = "192.0.2.10")]
    pub source_ip: String,
    /// NAS-IP-Address as the router sent it.
    pub nas_ip: Option<String>,
    /// NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// User-Name.
    pub username: String,
    /// The subscriber (null if the username matches none).
    pub subscriber_id: Option<i64>,
    /// Acct-Session-Id.
    pub acct_session_id: String,
    /// NAS-Port.
    pub nas_port: Option<i64>,
    /// NAS-Port-Id (interface).
    pub nas_port_id: Option<String>,
    /// Framed-IP-Address.
    pub framed_ip: Option<String>,
    /// Calling-Station-Id (client MAC).
    pub calling_mac: Option<String>,
    /// Start (from the Start, else derived from Acct-Session-Time).
    pub started_at: DateTime<Utc>,
    /// Last accounting packet.
    pub last_update_at: DateTime<Utc>,
    /// End; null while online.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Acct-Terminate-Cause name (NAS-Reboot for Accounting-On/Off closures).
    pub terminate_cause: Option<String>,
    /// router, nas-reboot or stale; null while online.
    pub closed_by: Option<String>,
    /// True while open.
    pub online: bool,
    /// Bytes from the client (upload), gigawords included.
    pub input_bytes: i64,
    /// Bytes to the client (download), gigawords included.
    pub output_bytes: i64,
    /// Acct-Input-Packets.
    pub input_packets: i64,
    /// Acct-Output-Packets.
    pub output_packets: i64,
    /// Acct-Session-Time, seconds.
    pub session_seconds: i64,
    /// Acct-Interim-Interval, if the router sent one.
    pub interim_interval: Option<i32>,
}

fn session_from_row(r: &PgRow) -> Result<SessionOut, sqlx::Error> {
    let stopped_at: Option<DateTime<Utc>> = r.try_get("stopped_at")?;
    Ok(SessionOut {
        id: r.try_get("id")?,
        router_id: r.try_get("router_id")?,
        source_ip: r.try_get("source_ip")?,
        nas_ip: r.try_get("nas_ip")?,
        nas_identifier: r.try_get("nas_identifier")?,
        username: r.try_get("username")?,
        subscriber_id: r.try_get("subscriber_id")?,
        acct_session_id: r.try_get("acct_session_id")?,
        nas_port: r.try_get("nas_port")?,
        nas_port_id: r.try_get("nas_port_id")?,
        framed_ip: r.try_get("framed_ip")?,
        calling_mac: r.try_get("calling_mac")?,
        started_at: r.try_get("started_at")?,
        last_update_at: r.try_get("last_update_at")?,
        online: stopped_at.is_none(),
        stopped_at,
        terminate_cause: r.try_get("terminate_cause")?,
        closed_by: r.try_get("closed_by")?,
        input_bytes: r.try_get("input_bytes")?,
        output_bytes: r.try_get("output_bytes")?,
        input_packets: r.try_get("input_packets")?,
        output_packets: r.try_get("output_packets")?,
        session_seconds: r.try_get("session_seconds")?,
        interim_interval: r.try_get("interim_interval")?,
    })
}

/// Filters for `GET /sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OnlineQuery {
    /// Only this router.
    pub router_id: Option<i64>,
    /// Only this username.
    pub username: Option<String>,
    /// Only this subscriber (its MAC logins included).
    pub subscriber_id: Option<i64>,
    /// Page size (default 1000, at most 10000).
    pub limit: Option<i64>,
}

/// Sessions online now (not stopped), newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "accounting", params(OnlineQuery),
    responses((status = 200, body = [SessionOut]), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn online(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<OnlineQuery>,
) -> Result<ApiJson<Vec<SessionOut>>, ApiError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE stopped_at IS NULL"
    ));
    if let Some(r) = q.router_id {
        qb.push(" AND router_id = ").push_bind(r);
    }
    if let Some(u) = q.username.filter(|u| !u.is_empty()) {
        qb.push(" AND username = ").push_bind(u);
    }
    if let Some(s) = q.subscriber_id {
        qb.push(" AND subscriber_id = ").push_bind(s);
    }
    qb.push(" ORDER BY started_at DESC, id DESC LIMIT ")
        .push_bind(limit(q.limit, 1000, 10_000)?);
    let rows = qb.build().fetch_all(&st.pool).await?;
    let out = rows
        .iter()
        .map(session_from_row)
        .collect::<Result<_, _>>()?;
    Ok(ApiJson(out))
}

/// Paging for a subscriber's sessions.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecentQuery {
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// A subscriber's recent sessions, online and closed, newest first.
#[utoipa::path(get, path = "/api/v1/subscribers/{username}/sessions", tag = "accounting",
    params(("username" = String, Path), RecentQuery),
    responses((status = 200, body = [SessionOut]), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn subscriber_sessions(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiQuery(q): ApiQuery<RecentQuery>,
) -> Result<ApiJson<Vec<SessionOut>>, ApiError> {
    let limit = limit(q.limit, 100, 1000)?;
    let id = subscriber_id(&st.pool, &username).await?;
    // By subscriber (MAC logins resolve to it) or by the login itself.
    let rows = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE subscriber_id = $1 \
         UNION SELECT {SESSION_COLUMNS} FROM sessions WHERE username = $2 \
         ORDER BY started_at DESC, id DESC LIMIT $3"
    ))
    .bind(id)
    .bind(&username)
    .bind(limit)
    .fetch_all(&st.pool)
    .await?;
    let out = rows
        .iter()
        .map(session_from_row)
        .collect::<Result<_, _>>()?;
    Ok(ApiJson(out))
}

/// Range of `GET /subscribers/{username}/usage`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// First day (inclusive), `YYYY-MM-DD` or RFC 3339 (its UTC day). Default: 30 days
    /// before `to`.
    pub from: Option<String>,
    /// Last day (inclusive), same formats. Default: today (UTC).
    pub to: Option<String>,
}

/// Usage of one day (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// The day.
    pub day: NaiveDate,
    /// Bytes uploaded.
    pub input_bytes: i64,
    /// Bytes downloaded.
    pub output_bytes: i64,
    /// Upload + download.
    pub total_bytes: i64,
    /// Session seconds.
    pub seconds: i64,
}

/// A subscriber's usage per day.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    /// The subscriber.
    pub username: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Days with usage, oldest first.
    pub days: Vec<UsageDay>,
    /// Sum over `days` (day = `to`).
    pub total: UsageDay,
}

/// Parses `YYYY-MM-DD` or an RFC 3339 timestamp (its UTC day).
pub fn parse_day(field: &str, s: &str) -> Result<NaiveDate, ApiError> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).date_naive())
        .map_err(|_| ApiError::BadRequest {
            code: "bad_request",
            message: format!(
                "{field} {s:?} is not a date: use YYYY-MM-DD or RFC 3339 (2026-01-31T00:00:00Z)"
            ),
        })
}

/// A subscriber's usage per day in a date range.
#[utoipa::path(get, path = "/api/v1/subscribers/{username}/usage", tag = "accounting",
    params(("username" = String, Path), UsageQuery),
    responses((status = 200, body = UsageOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn usage(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<ApiJson<UsageOut>, ApiError> {
    let to = match q.to.as_deref() {
        Some(s) => parse_day("to", s)?,
        None => Utc::now().date_naive(),
    };
    let from = match q.from.as_deref() {
        Some(s) => parse_day("from", s)?,
        None => to - chrono::Days::new(30),
    };
    if from > to {
        return Err(ApiError::Validation(format!(
            "from ({from}) must not be after to ({to})"
        )));
    }
    let id = subscriber_id(&st.pool, &username).await?;
    let rows = sqlx::query(
        "SELECT day, input_bytes, output_bytes, seconds FROM usage_daily \
         WHERE subscriber_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .fetch_all(&st.pool)
    .await?;
    let mut total = UsageDay {
        day: to,
        input_bytes: 0,
        output_bytes: 0,
        total_bytes: 0,
        seconds: 0,
    };
    let mut days = Vec::with_capacity(rows.len());
    for r in rows {
        let d = UsageDay {
            day: r.try_get("day")?,
            input_bytes: r.try_get("input_bytes")?,
            output_bytes: r.try_get("output_bytes")?,
            total_bytes: 0,
            seconds: r.try_get("seconds")?,
        };
        let d = UsageDay {
            total_bytes: d.input_bytes.saturating_add(d.output_bytes),
            ..d
        };
        total.input_bytes = total.input_bytes.saturating_add(d.input_bytes);
        total.output_bytes = total.output_bytes.saturating_add(d.output_bytes);
        total.total_bytes = total.total_bytes.saturating_add(d.total_bytes);
        total.seconds = total.seconds.saturating_add(d.seconds);
        days.push(d);
    }
    Ok(ApiJson(UsageOut {
        username,
        from,
        to,
        days,
        total,
    }))
}

/// Filters for `GET /auth-log`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuthLogQuery {
    /// Only this username.
    pub username: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// One authentication result.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthLogOut {
    /// Id.
    pub id: i64,
    /// When radiusd answered.
    pub at: DateTime<Utc>,
    /// The router (null if not registered).
    pub router_id: Option<i64>,
    /// Source address of the Access-Request.
    pub source_ip: Option<String>,
    /// User-Name.
    pub username: String,
    /// NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// Calling-Station-Id.
    pub calling_station_id: Option<String>,
    /// Access-Accept (true) or Access-Reject (false).
    pub accepted: bool,
    /// Why.
    pub reason: Option<String>,
}

/// Recent accepts and rejects with their reasons, newest first.
#[utoipa::path(get, path = "/api/v1/auth-log", tag = "accounting", params(AuthLogQuery),
    responses((status = 200, body = [AuthLogOut]), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn auth_log(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AuthLogQuery>,
) -> Result<ApiJson<Vec<AuthLogOut>>, ApiError> {
    let mut qb = QueryBuilder::new(
        "SELECT id, at, router_id, host(source_ip) AS source_ip, username, nas_identifier, \
         calling_station_id, accepted, reason FROM auth_log WHERE true",
    );
    if let Some(u) = q.username.filter(|u| !u.is_empty()) {
        qb.push(" AND username = ").push_bind(u);
    }
    qb.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(limit(q.limit, 100, 1000)?);
    let rows = qb.build().fetch_all(&st.pool).await?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(AuthLogOut {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                router_id: r.try_get("router_id")?,
                source_ip: r.try_get("source_ip")?,
                username: r.try_get("username")?,
                nas_identifier: r.try_get("nas_identifier")?,
                calling_station_id: r.try_get("calling_station_id")?,
                accepted: r.try_get("accepted")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(ApiJson(out))
}
