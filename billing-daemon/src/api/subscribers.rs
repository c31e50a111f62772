//! `/api/v1/subscribers`

use std::net::Ipv4Addr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, double_option};
use crate::db::{
    PLAN_COLUMNS, Plan, SUBSCRIBER_COLUMNS, Subscriber, plan_from_row, subscriber_from_row,
};
use crate::domain::{Mac, SubscriberStatus, renewed_expiry, validate_username};

/// A subscriber as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberOut {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Cleartext password.
    pub password: String,
    /// Plan id.
    pub plan_id: i64,
    /// active or suspended (expiry is `expires_at`).
    pub status: SubscriberStatus,
    /// End of validity, RFC 3339.
    pub expires_at: DateTime<Utc>,
    /// Static IPv4 address.
    #[schema(value_type = Option<String>)]
    pub static_ip: Option<Ipv4Addr>,
    /// Bound MAC, upper-case with colons.
    #[schema(value_type = Option<String>, example = "AA:BB:CC:DD:EE:FF")]
    pub mac: Option<String>,
    /// Remaining data allowance in bytes; null = unlimited.
    pub data_remaining_bytes: Option<i64>,
    /// Remaining online time in seconds; null = unlimited.
    pub time_remaining_seconds: Option<i64>,
}

impl From<Subscriber> for SubscriberOut {
    fn from(s: Subscriber) -> Self {
        Self {
            id: s.id,
            username: s.username,
            password: s.password.expose_secret().to_owned(),
            plan_id: s.plan_id,
            status: s.status,
            expires_at: s.expires_at,
            static_ip: s.static_ip,
            mac: s.mac.map(|m| m.to_string()),
            data_remaining_bytes: s.data_remaining_bytes,
            time_remaining_seconds: s.time_remaining_seconds,
        }
    }
}

/// Body of `POST /subscribers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberCreate {
    /// 1..64 characters, no whitespace or control characters.
    pub username: String,
    /// Cleartext password, 1..128 characters.
    #[schema(value_type = String)]
    pub password: SecretString,
    /// Existing plan.
    pub plan_id: i64,
    /// Defaults to active.
    #[serde(default)]
    pub status: Option<SubscriberStatus>,
    /// Defaults to now + the plan's duration.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Static IPv4 address.
    #[serde(default)]
    pub static_ip: Option<String>,
    /// MAC, `AA:BB:CC:DD:EE:FF` or `aa-bb-cc-dd-ee-ff`.
    #[serde(default)]
    pub mac: Option<String>,
    /// Defaults to the plan's data cap.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub data_remaining_bytes: Option<Option<i64>>,
    /// Defaults to the plan's time allowance.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub time_remaining_seconds: Option<Option<i64>>,
}

/// Body of `PATCH /subscribers/{username}`; null clears a nullable field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberPatch {
    /// Rename.
    pub username: Option<String>,
    /// New password.
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    /// Move to another plan (expiry and allowance unchanged).
    pub plan_id: Option<i64>,
    /// active or suspended.
    pub status: Option<SubscriberStatus>,
    /// New expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Static IP (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub static_ip: Option<Option<String>>,
    /// MAC (null clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub mac: Option<Option<String>>,
    /// Remaining data (null = unlimited).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub data_remaining_bytes: Option<Option<i64>>,
    /// Remaining online time in seconds (null = unlimited).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub time_remaining_seconds: Option<Option<i64>>,
}

/// Filters for `GET /subscribers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// active, suspended, or expired (expires_at in the past).
    pub status: Option<String>,
    /// Only this plan.
    pub plan_id: Option<i64>,
    /// Case-insensitive substring of the username.
    pub search: Option<String>,
    /// Page size (default 1000, at most 10000).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

fn parse_static_ip(s: &str) -> Result<Ipv4Addr, ApiError> {
    s.parse()
        .map_err(|_| ApiError::Validation(format!("static_ip {s:?} is not an IPv4 address")))
}

fn parse_mac(s: &str) -> Result<Mac, ApiError> {
    s.parse().map_err(ApiError::Validation)
}

fn validate(s: &Subscriber) -> Result<(), ApiError> {
    validate_username(&s.username).map_err(ApiError::Validation)?;
    let pw = s.password.expose_secret();
    if pw.is_empty() || pw.len() > 128 {
        return Err(ApiError::Validation(
            "password must be 1..128 bytes".to_owned(),
        ));
    }
    if s.data_remaining_bytes.is_some_and(|d| d < 0) {
        return Err(ApiError::Validation(
            "data_remaining_bytes must be >= 0 or null".to_owned(),
        ));
    }
    if s.time_remaining_seconds.is_some_and(|t| t < 0) {
        return Err(ApiError::Validation(
            "time_remaining_seconds must be >= 0 or null".to_owned(),
        ));
    }
    Ok(())
}

fn not_found(username: &str) -> ApiError {
    ApiError::NotFound(format!("subscriber {username:?} not found"))
}

async fn plan(conn: &mut PgConnection, id: i64) -> Result<Plan, ApiError> {
    let row = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| {
            ApiError::Validation(format!("plan_id {id} does not refer to an existing plan"))
        })?;
    Ok(plan_from_row(&row)?)
}

async fn lock(conn: &mut PgConnection, username: &str) -> Result<Subscriber, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE username = $1 FOR UPDATE"
    ))
    .bind(username)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| not_found(username))?;
    Ok(subscriber_from_row(&row)?)
}

async fn save(conn: &mut PgConnection, s: &Subscriber) -> Result<Subscriber, ApiError> {
    let row = sqlx::query(&format!(
        "UPDATE subscribers SET username = $2, password = $3, plan_id = $4, status = $5, expires_at = $6, \
         static_ip = $7::inet, mac = $8::macaddr, data_remaining_bytes = $9, \
         time_remaining_seconds = $10 WHERE id = $1 \
         RETURNING {SUBSCRIBER_COLUMNS}"
    ))
    .bind(s.id)
    .bind(&s.username)
    .bind(s.password.expose_secret())
    .bind(s.plan_id)
    .bind(s.status.as_str())
    .bind(s.expires_at)
    .bind(s.static_ip.map(|ip| ip.to_string()))
    .bind(s.mac.map(|m| m.to_string()))
    .bind(s.data_remaining_bytes)
    .bind(s.time_remaining_seconds)
    .fetch_one(conn)
    .await?;
    Ok(subscriber_from_row(&row)?)
}

/// Now, to whole seconds (what RADIUS and the snapshot work in).
fn now_seconds() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// Create a subscriber.
#[utoipa::path(post, path = "/api/v1/subscribers", tag = "subscribers", request_body = SubscriberCreate,
    responses((status = 201, body = SubscriberOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(username = %body.username))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<SubscriberCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = st.pool.begin().await?;
    let plan = plan(&mut tx, body.plan_id).await?;
    let s = Subscriber {
        id: 0,
        username: body.username,
        password: body.password,
        plan_id: plan.id,
        status: body.status.unwrap_or(SubscriberStatus::Active),
        expires_at: body
            .expires_at
            .unwrap_or_else(|| renewed_expiry(now_seconds(), now_seconds(), plan.duration_seconds)),
        static_ip: body.static_ip.as_deref().map(parse_static_ip).transpose()?,
        mac: body.mac.as_deref().map(parse_mac).transpose()?,
        data_remaining_bytes: body.data_remaining_bytes.unwrap_or(plan.data_cap_bytes),
        time_remaining_seconds: body
            .time_remaining_seconds
            .unwrap_or(plan.time_allowance_seconds),
    };
    validate(&s)?;
    let row = sqlx::query(&format!(
        "INSERT INTO subscribers (username, password, plan_id, status, expires_at, static_ip, mac, \
         data_remaining_bytes, time_remaining_seconds) \
         VALUES ($1, $2, $3, $4, $5, $6::inet, $7::macaddr, $8, $9) RETURNING {SUBSCRIBER_COLUMNS}"
    ))
    .bind(&s.username)
    .bind(s.password.expose_secret())
    .bind(s.plan_id)
    .bind(s.status.as_str())
    .bind(s.expires_at)
    .bind(s.static_ip.map(|ip| ip.to_string()))
    .bind(s.mac.map(|m| m.to_string()))
    .bind(s.data_remaining_bytes)
    .bind(s.time_remaining_seconds)
    .fetch_one(&mut *tx)
    .await?;
    let out = subscriber_from_row(&row)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(SubscriberOut::from(out))))
}

/// List subscribers (filters: status, plan_id, search; paging: limit, offset).
#[utoipa::path(get, path = "/api/v1/subscribers", tag = "subscribers", params(ListQuery),
    responses((status = 200, body = [SubscriberOut]), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<Vec<SubscriberOut>>, ApiError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE true"
    ));
    match q.status.as_deref() {
        None | Some("") => {}
        Some("active") => {
            qb.push(" AND status = 'active'");
        }
        Some("suspended") => {
            qb.push(" AND status = 'suspended'");
        }
        Some("expired") => {
            qb.push(" AND expires_at <= now()");
        }
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "status filter {other:?} must be active, suspended or expired"
            )));
        }
    }
    if let Some(plan_id) = q.plan_id {
        qb.push(" AND plan_id = ").push_bind(plan_id);
    }
    if let Some(search) = q.search.filter(|s| !s.is_empty()) {
        let escaped = search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push(" AND username ILIKE ")
            .push_bind(format!("%{escaped}%"));
    }
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::Validation("limit must be 1..10000".to_owned()));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::Validation("offset must be >= 0".to_owned()));
    }
    qb.push(" ORDER BY id LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let rows = qb.build().fetch_all(&st.pool).await?;
    let out = rows
        .iter()
        .map(|r| subscriber_from_row(r).map(SubscriberOut::from))
        .collect::<Result<_, _>>()?;
    Ok(ApiJson(out))
}

/// Get one subscriber.
#[utoipa::path(get, path = "/api/v1/subscribers/{username}", tag = "subscribers", params(("username" = String, Path)),
    responses((status = 200, body = SubscriberOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<ApiJson<SubscriberOut>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE username = $1"
    ))
    .bind(&username)
    .fetch_optional(&st.pool)
    .await?
    .ok_or_else(|| not_found(&username))?;
    Ok(ApiJson(subscriber_from_row(&row)?.into()))
}

/// Change a subscriber.
#[utoipa::path(patch, path = "/api/v1/subscribers/{username}", tag = "subscribers", params(("username" = String, Path)),
    request_body = SubscriberPatch,
    responses((status = 200, body = SubscriberOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(username = %username))]
pub async fn patch(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<SubscriberPatch>,
) -> Result<ApiJson<SubscriberOut>, ApiError> {
    let mut tx = st.pool.begin().await?;
    let mut s = lock(&mut tx, &username).await?;
    if let Some(v) = body.username {
        s.username = v;
    }
    if let Some(v) = body.password {
        s.password = v;
    }
    if let Some(v) = body.plan_id {
        s.plan_id = plan(&mut tx, v).await?.id;
    }
    if let Some(v) = body.status {
        s.status = v;
    }
    if let Some(v) = body.expires_at {
        s.expires_at = v;
    }
    if let Some(v) = body.static_ip {
        s.static_ip = v.as_deref().map(parse_static_ip).transpose()?;
    }
    if let Some(v) = body.mac {
        s.mac = v.as_deref().map(parse_mac).transpose()?;
    }
    if let Some(v) = body.data_remaining_bytes {
        s.data_remaining_bytes = v;
    }
    if let Some(v) = body.time_remaining_seconds {
        s.time_remaining_seconds = v;
    }
    validate(&s)?;
    let out = save(&mut tx, &s).await?;
    tx.commit().await?;
    Ok(ApiJson(out.into()))
}

/// Delete a subscriber.
#[utoipa::path(delete, path = "/api/v1/subscribers/{username}", tag = "subscribers", params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let r = sqlx::query("DELETE FROM subscribers WHERE username = $1")
        .bind(&username)
        .execute(&st.pool)
        .await?;
    if r.rows_affected() == 0 {
        return Err(not_found(&username));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn set_status(
    st: &AppState,
    username: &str,
    status: SubscriberStatus,
) -> Result<ApiJson<SubscriberOut>, ApiError> {
    let row = sqlx::query(&format!(
        "UPDATE subscribers SET status = $2 WHERE username = $1 RETURNING {SUBSCRIBER_COLUMNS}"
    ))
    .bind(username)
    .bind(status.as_str())
    .fetch_optional(&st.pool)
    .await?
    .ok_or_else(|| not_found(username))?;
    Ok(ApiJson(subscriber_from_row(&row)?.into()))
}

/// Suspend (refused at the next login regardless of expiry).
#[utoipa::path(post, path = "/api/v1/subscribers/{username}/suspend", tag = "subscribers", params(("username" = String, Path)),
    responses((status = 200, body = SubscriberOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn suspend(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<ApiJson<SubscriberOut>, ApiError> {
    set_status(&st, &username, SubscriberStatus::Suspended).await
}

/// Resume a suspended subscriber (expiry unchanged).
#[utoipa::path(post, path = "/api/v1/subscribers/{username}/resume", tag = "subscribers", params(("username" = String, Path)),
    responses((status = 200, body = SubscriberOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn resume(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<ApiJson<SubscriberOut>, ApiError> {
    set_status(&st, &username, SubscriberStatus::Active).await
}

/// Optional body of a renewal.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// Renew onto this plan instead of the current one (an online customer gets the new
    /// rate by CoA, or is disconnected to log in again if the router refuses it).
    pub plan_id: Option<i64>,
}

/// Renew: expires_at = max(now, expires_at) + the plan's duration; data_remaining_bytes = the
/// plan's cap, time_remaining_seconds = the plan's time allowance. With `{"plan_id": n}` the
/// subscriber moves to that plan first. Status is left as it is (a suspension is an operator decision).
#[utoipa::path(post, path = "/api/v1/subscribers/{username}/renew", tag = "subscribers", params(("username" = String, Path)),
    request_body(content = Option<RenewBody>, description = "Optional: the plan to renew onto"),
    responses((status = 200, body = SubscriberOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(username = %username))]
pub async fn renew(
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
    body: Option<ApiJson<RenewBody>>,
) -> Result<ApiJson<SubscriberOut>, ApiError> {
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    let mut tx = st.pool.begin().await?;
    let mut s = lock(&mut tx, &username).await?;
    if let Some(plan_id) = body.plan_id {
        s.plan_id = plan_id;
    }
    let plan = plan(&mut tx, s.plan_id).await?;
    s.expires_at = renewed_expiry(now_seconds(), s.expires_at, plan.duration_seconds);
    s.data_remaining_bytes = plan.data_cap_bytes;
    s.time_remaining_seconds = plan.time_allowance_seconds;
    let out = save(&mut tx, &s).await?;
    tx.commit().await?;
    Ok(ApiJson(out.into()))
}
