//! `/api/v1/voucher-batches` and `/api/v1/vouchers`: hotspot vouchers (see
//! [`crate::vouchers`]).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, limit};
use crate::vouchers::codes::{DEFAULT_CODE_LENGTH, unseal};
use crate::vouchers::print::{self, Card, Sheet};
use crate::vouchers::{
    Batch, BatchError, NewBatch, Origin, STATE_SQL, VoucherConfig, VoucherState, batch_from_row,
    batch_select, create_batch, fetch_batch,
};

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Invalid(m) => Self::Validation(m),
            BatchError::Exhausted => Self::Conflict(e.to_string()),
            BatchError::Db(e) => e.into(),
            BatchError::Random(e) => Self::Unexpected(e.into()),
        }
    }
}

fn config(st: &AppState) -> Result<&VoucherConfig, ApiError> {
    st.vouchers
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("vouchers are not configured".to_owned()))
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("voucher batch {id} not found"))
}

/// Body of `POST /voucher-batches`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreate {
    /// The package: a plan serving hotspot logins (`plan` is accepted too).
    #[serde(alias = "plan")]
    pub plan_id: i64,
    /// Vouchers to make, 1..100000.
    pub count: i64,
    /// Put in front of every code: up to 8 letters and digits (upper-cased).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Random symbols after the prefix, 6..24 (default 10: 43.9 bits).
    #[serde(default)]
    pub code_length: Option<usize>,
    /// No voucher of the batch is valid after this, used or not; null = only the plan's
    /// duration from first use counts.
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// A note for the operator (up to 200 characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// A new batch and its codes (the only answer that carries them, besides printing).
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCreated {
    /// The batch.
    pub batch: Batch,
    /// Its codes, in voucher order.
    pub codes: Vec<String>,
}

/// Make a batch of vouchers.
#[utoipa::path(post, path = "/api/v1/voucher-batches", tag = "vouchers", request_body = BatchCreate,
    responses((status = 201, body = BatchCreated), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(plan_id = body.plan_id, count = body.count))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<BatchCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let cfg = config(&st)?;
    let req = NewBatch {
        plan_id: body.plan_id,
        count: body.count,
        prefix: body.prefix.unwrap_or_default(),
        code_length: body.code_length.unwrap_or(DEFAULT_CODE_LENGTH),
        valid_until: body.valid_until,
        note: body.note,
        origin: Origin::Printed,
    };
    let mut tx = st.pool.begin().await?;
    let (id, codes) = create_batch(&mut tx, &cfg.key, req).await?;
    let batch = fetch_batch(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    tx.commit().await?;
    tracing::info!(batch = id, count = codes.len(), "voucher batch made");
    Ok((StatusCode::CREATED, ApiJson(BatchCreated { batch, codes })))
}

/// Paging of `GET /voucher-batches`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BatchListQuery {
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

fn offset(o: Option<i64>) -> Result<i64, ApiError> {
    let o = o.unwrap_or(0);
    if o < 0 {
        return Err(ApiError::Validation("offset must be >= 0".to_owned()));
    }
    Ok(o)
}

/// List batches, newest first, with their vouchers per state.
#[utoipa::path(get, path = "/api/v1/voucher-batches", tag = "vouchers", params(BatchListQuery),
    responses((status = 200, body = [Batch]), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<BatchListQuery>,
) -> Result<ApiJson<Vec<Batch>>, ApiError> {
    let rows = sqlx::query(&batch_select("ORDER BY b.id DESC LIMIT $1 OFFSET $2"))
        .bind(limit(q.limit, 100, 1000)?)
        .bind(offset(q.offset)?)
        .fetch_all(&st.pool)
        .await?;
    let out = rows.iter().map(batch_from_row).collect::<Result<_, _>>()?;
    Ok(ApiJson(out))
}

/// One batch, with its vouchers per state.
#[utoipa::path(get, path = "/api/v1/voucher-batches/{id}", tag = "vouchers", params(("id" = i64, Path)),
    responses((status = 200, body = Batch), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<Batch>, ApiError> {
    let mut conn = st.pool.acquire().await?;
    Ok(ApiJson(
        fetch_batch(&mut conn, id)
            .await?
            .ok_or_else(|| not_found(id))?,
    ))
}

/// Revoke a batch: every voucher of it is suspended (rejected at the next login, and the
/// online ones disconnected by the enforcement queue) and the batch marked revoked.
/// Revoking again changes nothing.
#[utoipa::path(post, path = "/api/v1/voucher-batches/{id}/revoke", tag = "vouchers", params(("id" = i64, Path)),
    responses((status = 200, body = Batch), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(id))]
pub async fn revoke(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<Batch>, ApiError> {
    let mut tx = st.pool.begin().await?;
    let found: Option<i64> = sqlx::query_scalar(
        "UPDATE voucher_batches SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    found.ok_or_else(|| not_found(id))?;
    // The subscribers' enforcement trigger queues a Disconnect for each open session.
    let n = sqlx::query(
        "UPDATE subscribers SET status = 'suspended' \
         WHERE voucher_batch_id = $1 AND status <> 'suspended'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let batch = fetch_batch(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    tx.commit().await?;
    tracing::info!(batch = id, suspended = n, "voucher batch revoked");
    Ok(ApiJson(batch))
}

/// The sheet of a batch: its vouchers' codes unsealed, with what is printed on each card.
async fn sheet(st: &AppState, id: i64) -> Result<Sheet, ApiError> {
    let cfg = config(st)?;
    let row = sqlx::query(
        "SELECT b.revoked_at, b.valid_until, p.name, COALESCE(b.price_kes, p.price_kes) AS price, \
                p.duration_seconds, p.data_cap_bytes, p.time_allowance_seconds \
           FROM voucher_batches b JOIN plans p ON p.id = b.plan_id WHERE b.id = $1",
    )
    .bind(id)
    .fetch_optional(&st.pool)
    .await?
    .ok_or_else(|| not_found(id))?;
    if row
        .try_get::<Option<DateTime<Utc>>, _>("revoked_at")?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "voucher batch {id} is revoked: its vouchers cannot be sold"
        )));
    }
    let terms = print::terms(
        row.try_get("duration_seconds")?,
        row.try_get("data_cap_bytes")?,
        row.try_get("time_allowance_seconds")?,
        row.try_get("valid_until")?,
    );
    let vouchers = sqlx::query(
        "SELECT id, username, voucher_code_sealed FROM subscribers \
         WHERE voucher_batch_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&st.pool)
    .await?;
    let mut cards = Vec::with_capacity(vouchers.len());
    for v in &vouchers {
        let name: String = v.try_get("username")?;
        let sealed: Vec<u8> = v.try_get("voucher_code_sealed")?;
        let code = unseal(cfg.key.print_key(), &name, &sealed).map_err(anyhow::Error::new)?;
        cards.push(Card {
            voucher_id: v.try_get("id")?,
            code,
        });
    }
    Ok(Sheet {
        isp_name: cfg.isp_name.clone(),
        plan_name: row.try_get("name")?,
        price_kes: row.try_get("price")?,
        terms,
        batch_id: id,
        cards,
    })
}

fn download(content_type: &'static str, name: String, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            // Codes are money: no proxy or browser cache keeps them.
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// The printable page of a batch (HTML with print CSS: a grid of cards).
#[utoipa::path(get, path = "/api/v1/voucher-batches/{id}/print", tag = "vouchers", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/html"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn print_html(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let html = print::html(&sheet(&st, id).await?);
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response())
}

/// The batch as a PDF (A4, 24 cards a page).
#[utoipa::path(get, path = "/api/v1/voucher-batches/{id}/print.pdf", tag = "vouchers", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/pdf"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn print_pdf(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let s = sheet(&st, id).await?;
    // Laying out 100,000 cards takes a while: not on the async threads.
    let pdf = tokio::task::spawn_blocking(move || print::pdf(&s))
        .await
        .map_err(anyhow::Error::new)?;
    Ok(download(
        "application/pdf",
        format!("vouchers-{id}.pdf"),
        pdf,
    ))
}

/// The batch's codes as CSV.
#[utoipa::path(get, path = "/api/v1/voucher-batches/{id}/codes.csv", tag = "vouchers", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn codes_csv(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let csv = print::csv(&sheet(&st, id).await?).map_err(anyhow::Error::new)?;
    Ok(download(
        "text/csv; charset=utf-8",
        format!("vouchers-{id}.csv"),
        csv,
    ))
}

/// Filters of `GET /vouchers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VoucherQuery {
    /// Only this batch.
    pub batch: Option<i64>,
    /// Only this state.
    pub state: Option<VoucherState>,
    /// The voucher with this code (as a customer reads it out; case and dashes ignored).
    pub code: Option<String>,
    /// Page size (default 1000, at most 10000).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// A voucher (never its code).
#[derive(Debug, Serialize, ToSchema)]
pub struct VoucherOut {
    /// Its subscriber id.
    pub id: i64,
    /// Its lookup name (its username).
    pub username: String,
    /// Its batch.
    pub batch_id: i64,
    /// Its package.
    pub plan_id: i64,
    /// Computed state.
    pub state: VoucherState,
    /// First use; null = unused.
    pub activated_at: Option<DateTime<Utc>>,
    /// End of validity (for an unused voucher, its batch's valid_until or 9999-12-31).
    pub expires_at: DateTime<Utc>,
    /// Data left; null = unlimited.
    pub data_remaining_bytes: Option<i64>,
    /// Online seconds left; null = unlimited.
    pub time_remaining_seconds: Option<i64>,
    /// The device it is bound to (plans with bind_first_mac).
    pub mac: Option<String>,
}

/// List vouchers (filters: batch, state, code; paging: limit, offset).
#[utoipa::path(get, path = "/api/v1/vouchers", tag = "vouchers", params(VoucherQuery),
    responses((status = 200, body = [VoucherOut]), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn vouchers(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<VoucherQuery>,
) -> Result<ApiJson<Vec<VoucherOut>>, ApiError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT * FROM (SELECT s.id, s.username, s.voucher_batch_id, s.plan_id, s.activated_at, \
           s.expires_at, s.data_remaining_bytes, s.time_remaining_seconds, \
           s.voucher_mac::text AS mac, {STATE_SQL} AS state \
           FROM subscribers s JOIN voucher_batches b ON b.id = s.voucher_batch_id) v WHERE true"
    ));
    if let Some(batch) = q.batch {
        qb.push(" AND voucher_batch_id = ").push_bind(batch);
    }
    if let Some(state) = q.state {
        qb.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(code) = &q.code {
        let name = config(&st)?.key.lookup_name(code).ok_or_else(|| {
            ApiError::Validation("code must be 4..32 letters and digits".to_owned())
        })?;
        qb.push(" AND username = ").push_bind(name);
    }
    qb.push(" ORDER BY id LIMIT ")
        .push_bind(limit(q.limit, 1000, 10_000)?)
        .push(" OFFSET ")
        .push_bind(offset(q.offset)?);
    let rows = qb.build().fetch_all(&st.pool).await?;
    let out = rows
        .iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok(VoucherOut {
                id: r.try_get("id")?,
                username: r.try_get("username")?,
                batch_id: r.try_get("voucher_batch_id")?,
                plan_id: r.try_get("plan_id")?,
                state: VoucherState::parse(&state).unwrap_or(VoucherState::Active),
                activated_at: r.try_get("activated_at")?,
                expires_at: r.try_get("expires_at")?,
                data_remaining_bytes: r.try_get("data_remaining_bytes")?,
                time_remaining_seconds: r.try_get("time_remaining_seconds")?,
                mac: r.try_get("mac")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(ApiJson(out))
}

/// Days of `GET /vouchers/sales`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SalesQuery {
    /// First day (UTC, default 30 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day (UTC, default today).
    pub to: Option<NaiveDate>,
}

/// Voucher sales of one package on one day.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SalesDay {
    /// UTC day.
    pub day: NaiveDate,
    /// The package.
    pub plan_id: i64,
    /// Its name.
    pub plan_name: String,
    /// Vouchers first used that day.
    pub activated: i64,
    /// Their value, KES (the batches' prices).
    pub activated_kes: i64,
    /// Vouchers bought on the hotspot login page and paid that day.
    pub portal_sold: i64,
    /// Their value, KES.
    pub portal_kes: i64,
}

/// Voucher sales per day and package: first uses (a printed voucher is money once a
/// customer uses it) and portal purchases (once paid).
#[utoipa::path(get, path = "/api/v1/vouchers/sales", tag = "vouchers", params(SalesQuery),
    responses((status = 200, body = [SalesDay]), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn sales(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<SalesQuery>,
) -> Result<ApiJson<Vec<SalesDay>>, ApiError> {
    let (from, to) = super::days(q.from, q.to);
    if from > to {
        return Err(ApiError::Validation("from must not be after to".to_owned()));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::Validation(
            "at most 366 days at a time".to_owned(),
        ));
    }
    let out = sqlx::query_as::<_, SalesDay>(
        "WITH a AS ( \
           SELECT (s.activated_at AT TIME ZONE 'UTC')::date AS day, b.plan_id, count(*) AS n, \
                  sum(COALESCE(b.price_kes, p.price_kes))::bigint AS kes \
             FROM subscribers s JOIN voucher_batches b ON b.id = s.voucher_batch_id \
             JOIN plans p ON p.id = b.plan_id \
            WHERE s.activated_at >= $1::date AND s.activated_at < $2::date + 1 \
            GROUP BY 1, 2), \
         q AS ( \
           SELECT (b.paid_at AT TIME ZONE 'UTC')::date AS day, b.plan_id, \
                  sum(b.count)::bigint AS n, \
                  sum(b.count * COALESCE(b.price_kes, p.price_kes))::bigint AS kes \
             FROM voucher_batches b JOIN plans p ON p.id = b.plan_id \
            WHERE b.origin = 'portal' AND b.paid_at >= $1::date AND b.paid_at < $2::date + 1 \
            GROUP BY 1, 2) \
         SELECT COALESCE(a.day, q.day) AS day, p.id AS plan_id, p.name AS plan_name, \
                COALESCE(a.n, 0) AS activated, COALESCE(a.kes, 0) AS activated_kes, \
                COALESCE(q.n, 0) AS portal_sold, COALESCE(q.kes, 0) AS portal_kes \
           FROM a FULL JOIN q ON q.day = a.day AND q.plan_id = a.plan_id \
           JOIN plans p ON p.id = COALESCE(a.plan_id, q.plan_id) \
          ORDER BY 1 DESC, 3",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&st.pool)
    .await?;
    Ok(ApiJson(out))
}
