//! `/api/v1/plans`

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, double_option};
use crate::db::{PLAN_COLUMNS, Plan, plan_from_row};
use crate::domain::{RateLimit, Service};

/// A plan as the API shows it: the row itself (it holds no secret).
pub use crate::db::Plan as PlanOut;

/// Body of `POST /plans`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanCreate {
    /// Unique name, 1..100 characters.
    pub name: String,
    /// Mikrotik-Rate-Limit.
    pub rate_limit: String,
    /// Whole shillings, >= 0.
    pub price_kes: i64,
    /// Seconds, > 0.
    pub duration_seconds: i64,
    /// Bytes, >= 0; omit or null for unlimited.
    #[serde(default)]
    pub data_cap_bytes: Option<i64>,
    /// IP pool name.
    #[serde(default)]
    pub ip_pool: Option<String>,
    /// Defaults to both.
    #[serde(default = "default_service")]
    pub service: Service,
    /// Most sessions a subscriber may have open at once, >= 1; defaults to 1; null for
    /// unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>, default = 1)]
    pub simultaneous_use: Option<Option<i32>>,
    /// Mikrotik-Rate-Limit applied once the data allowance is used up; omit or null to
    /// reject at zero data instead.
    #[serde(default)]
    pub fup_rate_limit: Option<String>,
    /// Online seconds per period, > 0; omit or null for no time allowance.
    #[serde(default)]
    pub time_allowance_seconds: Option<i64>,
    /// Bind a hotspot voucher to the device it is first used from (default false).
    #[serde(default)]
    pub bind_first_mac: bool,
}

fn default_service() -> Service {
    Service::Both
}

/// What a plan created without `simultaneous_use` allows: one login at a time, which is what
/// a PPPoE subscription means (the column's default says the same for plain SQL).
const DEFAULT_SIMULTANEOUS_USE: i32 = 1;

/// Body of `PATCH /plans/{id}`: any subset; null clears a nullable field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    /// New name.
    pub name: Option<String>,
    /// New rate limit.
    pub rate_limit: Option<String>,
    /// New price.
    pub price_kes: Option<i64>,
    /// New duration.
    pub duration_seconds: Option<i64>,
    /// New cap (null = unlimited).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub data_cap_bytes: Option<Option<i64>>,
    /// New pool (null = none).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub ip_pool: Option<Option<String>>,
    /// New service.
    pub service: Option<Service>,
    /// New simultaneous-use limit (null = unlimited).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub simultaneous_use: Option<Option<i32>>,
    /// New fair-use rate (null = none: reject at zero data).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub fup_rate_limit: Option<Option<String>>,
    /// New time allowance (null = none).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub time_allowance_seconds: Option<Option<i64>>,
    /// New voucher MAC binding.
    pub bind_first_mac: Option<bool>,
}

fn validate(p: &Plan) -> Result<(), ApiError> {
    let v = |m: &str| Err(ApiError::Validation(m.to_owned()));
    let n = p.name.chars().count();
    if n == 0 || n > 100 || p.name.trim() != p.name {
        return v("name must be 1..100 characters without leading or trailing spaces");
    }
    RateLimit::parse(&p.rate_limit)
        .map_err(|e| ApiError::Validation(format!("rate_limit: {e}")))?;
    if p.price_kes < 0 {
        return v("price_kes must be >= 0");
    }
    if p.duration_seconds <= 0 {
        return v("duration_seconds must be > 0");
    }
    if p.data_cap_bytes.is_some_and(|c| c < 0) {
        return v("data_cap_bytes must be >= 0 or null");
    }
    if p.simultaneous_use.is_some_and(|n| n < 1) {
        return v("simultaneous_use must be >= 1 or null");
    }
    if let Some(fup) = &p.fup_rate_limit {
        RateLimit::parse(fup).map_err(|e| ApiError::Validation(format!("fup_rate_limit: {e}")))?;
    }
    if p.time_allowance_seconds.is_some_and(|t| t <= 0) {
        return v("time_allowance_seconds must be > 0 or null");
    }
    if let Some(pool) = &p.ip_pool {
        if pool.is_empty()
            || pool.len() > 64
            || pool.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return v("ip_pool must be 1..64 characters without whitespace");
        }
    }
    Ok(())
}

async fn fetch(pool: &sqlx::PgPool, id: i64) -> Result<Plan, ApiError> {
    let row = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(plan_from_row(&row)?)
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("plan {id} not found"))
}

/// Create a plan.
#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = PlanCreate,
    responses((status = 201, body = PlanOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(name = %body.name))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<PlanCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let plan = Plan {
        id: 0,
        name: body.name,
        rate_limit: body.rate_limit,
        price_kes: body.price_kes,
        duration_seconds: body.duration_seconds,
        data_cap_bytes: body.data_cap_bytes,
        ip_pool: body.ip_pool,
        service: body.service,
        simultaneous_use: body
            .simultaneous_use
            .unwrap_or(Some(DEFAULT_SIMULTANEOUS_USE)),
        fup_rate_limit: body.fup_rate_limit,
        time_allowance_seconds: body.time_allowance_seconds,
        bind_first_mac: body.bind_first_mac,
    };
    validate(&plan)?;
    let row = sqlx::query(&format!(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, data_cap_bytes, ip_pool, service, \
         simultaneous_use, fup_rate_limit, time_allowance_seconds, bind_first_mac) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {PLAN_COLUMNS}"
    ))
    .bind(&plan.name)
    .bind(&plan.rate_limit)
    .bind(plan.price_kes)
    .bind(plan.duration_seconds)
    .bind(plan.data_cap_bytes)
    .bind(&plan.ip_pool)
    .bind(plan.service.as_str())
    .bind(plan.simultaneous_use)
    .bind(&plan.fup_rate_limit)
    .bind(plan.time_allowance_seconds)
    .bind(plan.bind_first_mac)
    .fetch_one(&st.pool)
    .await?;
    Ok((StatusCode::CREATED, ApiJson(plan_from_row(&row)?)))
}

/// List plans.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans",
    responses((status = 200, body = [PlanOut])), security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>) -> Result<ApiJson<Vec<PlanOut>>, ApiError> {
    let rows = sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY id"))
        .fetch_all(&st.pool)
        .await?;
    let plans = rows.iter().map(plan_from_row).collect::<Result<_, _>>()?;
    Ok(ApiJson(plans))
}

/// Get one plan.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans", params(("id" = i64, Path)),
    responses((status = 200, body = PlanOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<PlanOut>, ApiError> {
    Ok(ApiJson(fetch(&st.pool, id).await?))
}

/// Change a plan.
#[utoipa::path(patch, path = "/api/v1/plans/{id}", tag = "plans", params(("id" = i64, Path)), request_body = PlanPatch,
    responses((status = 200, body = PlanOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(id))]
pub async fn patch(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PlanPatch>,
) -> Result<ApiJson<PlanOut>, ApiError> {
    let mut tx = st.pool.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found(id))?;
    let mut p = plan_from_row(&row)?;
    if let Some(v) = body.name {
        p.name = v;
    }
    if let Some(v) = body.rate_limit {
        p.rate_limit = v;
    }
    if let Some(v) = body.price_kes {
        p.price_kes = v;
    }
    if let Some(v) = body.duration_seconds {
        p.duration_seconds = v;
    }
    if let Some(v) = body.data_cap_bytes {
        p.data_cap_bytes = v;
    }
    if let Some(v) = body.ip_pool {
        p.ip_pool = v;
    }
    if let Some(v) = body.service {
        p.service = v;
    }
    if let Some(v) = body.simultaneous_use {
        p.simultaneous_use = v;
    }
    if let Some(v) = body.fup_rate_limit {
        p.fup_rate_limit = v;
    }
    if let Some(v) = body.time_allowance_seconds {
        p.time_allowance_seconds = v;
    }
    if let Some(v) = body.bind_first_mac {
        p.bind_first_mac = v;
    }
    validate(&p)?;
    let row = sqlx::query(&format!(
        "UPDATE plans SET name = $2, rate_limit = $3, price_kes = $4, duration_seconds = $5, \
         data_cap_bytes = $6, ip_pool = $7, service = $8, simultaneous_use = $9, \
         fup_rate_limit = $10, time_allowance_seconds = $11, bind_first_mac = $12 \
         WHERE id = $1 RETURNING {PLAN_COLUMNS}"
    ))
    .bind(id)
    .bind(&p.name)
    .bind(&p.rate_limit)
    .bind(p.price_kes)
    .bind(p.duration_seconds)
    .bind(p.data_cap_bytes)
    .bind(&p.ip_pool)
    .bind(p.service.as_str())
    .bind(p.simultaneous_use)
    .bind(&p.fup_rate_limit)
    .bind(p.time_allowance_seconds)
    .bind(p.bind_first_mac)
    .fetch_one(&mut *tx)
    .await?;
    let out = plan_from_row(&row)?;
    tx.commit().await?;
    Ok(ApiJson(out))
}

/// Delete a plan (409 while subscribers use it).
#[utoipa::path(delete, path = "/api/v1/plans/{id}", tag = "plans", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let result = sqlx::query("DELETE FROM plans WHERE id = $1")
        .bind(id)
        .execute(&st.pool)
        .await;
    match result {
        Ok(r) if r.rows_affected() == 0 => Err(not_found(id)),
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23503") => {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM subscribers WHERE plan_id = $1")
                .bind(id)
                .fetch_one(&st.pool)
                .await?;
            Err(ApiError::Conflict(format!(
                "plan {id} is in use by {n} subscriber(s)"
            )))
        }
        Err(e) => Err(e.into()),
    }
}
