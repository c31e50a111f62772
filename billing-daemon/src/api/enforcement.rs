//! The enforcement log (`GET /api/v1/enforcement-log`, `.../{id}`) and an operator's
//! disconnect (`POST /api/v1/sessions/{id}/disconnect`).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{QueryBuilder, Row};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, limit};
use crate::enforcement::queue;

const ACTION_COLUMNS: &str = "id, created_at, reason, session_id, subscriber_id, username, \
    router_id, kind, rate_limit, status, attempts, sent_at, completed_at, target, \
    error_cause, detail, fallback_of";

/// One Disconnect or CoA the daemon sent or will send, and how it ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnforcementOut {
    /// Id.
    pub id: i64,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Why: suspended, deleted, expired, data_exhausted, time_exhausted, plan_changed,
    /// operator, or reactivated (renewed while a session of the expired subscription was open).
    pub reason: String,
    /// The session.
    pub session_id: Option<i64>,
    /// The subscriber (kept after the subscriber is deleted).
    pub subscriber_id: Option<i64>,
    /// User-Name of the session.
    pub username: String,
    /// The router.
    pub router_id: Option<i64>,
    /// What was sent: disconnect or coa (null until sent, or when nothing was).
    pub kind: Option<String>,
    /// The Mikrotik-Rate-Limit a CoA carried.
    pub rate_limit: Option<String>,
    /// pending, acked, naked, timeout, skipped or failed.
    pub status: String,
    /// Exchanges tried (each with its own retransmissions).
    pub attempts: i32,
    /// Start of the latest exchange.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it reached its final status.
    pub completed_at: Option<DateTime<Utc>>,
    /// Router address and port it was sent to.
    pub target: Option<String>,
    /// Error-Cause of a NAK.
    pub error_cause: Option<i32>,
    /// The Error-Cause's name, why nothing was sent, or the last exchange's problem.
    pub detail: Option<String>,
    /// For a Disconnect that replaces a refused or unanswered CoA: that CoA's id.
    pub fallback_of: Option<i64>,
}

fn action_from_row(r: &PgRow) -> Result<EnforcementOut, sqlx::Error> {
    Ok(EnforcementOut {
        id: r.try_get("id")?,
        created_at: r.try_get("created_at")?,
        reason: r.try_get("reason")?,
        session_id: r.try_get("session_id")?,
        subscriber_id: r.try_get("subscriber_id")?,
        username: r.try_get("username")?,
        router_id: r.try_get("router_id")?,
        kind: r.try_get("kind")?,
        rate_limit: r.try_get("rate_limit")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        sent_at: r.try_get("sent_at")?,
        completed_at: r.try_get("completed_at")?,
        target: r.try_get("target")?,
        error_cause: r.try_get("error_cause")?,
        detail: r.try_get("detail")?,
        fallback_of: r.try_get("fallback_of")?,
    })
}

/// Filters for `GET /enforcement-log`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this username.
    pub username: Option<String>,
    /// Only this subscriber.
    pub subscriber_id: Option<i64>,
    /// Only this router.
    pub router_id: Option<i64>,
    /// Only this session.
    pub session_id: Option<i64>,
    /// Only this status (pending, acked, naked, timeout, skipped, failed).
    pub status: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

const STATUSES: [&str; 6] = ["pending", "acked", "naked", "timeout", "skipped", "failed"];

/// Disconnects and CoAs, newest first.
#[utoipa::path(get, path = "/api/v1/enforcement-log", tag = "enforcement", params(LogQuery),
    responses((status = 200, body = [EnforcementOut]), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn log(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<ApiJson<Vec<EnforcementOut>>, ApiError> {
    let limit = limit(q.limit, 100, 1000)?;
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::Validation(format!(
            "status must be one of {}",
            STATUSES.join(", ")
        )));
    }
    let mut qb = QueryBuilder::new(format!(
        "SELECT {ACTION_COLUMNS} FROM enforcement_actions WHERE true"
    ));
    if let Some(u) = &q.username {
        qb.push(" AND username = ").push_bind(u);
    }
    if let Some(s) = q.subscriber_id {
        qb.push(" AND subscriber_id = ").push_bind(s);
    }
    if let Some(r) = q.router_id {
        qb.push(" AND router_id = ").push_bind(r);
    }
    if let Some(s) = q.session_id {
        qb.push(" AND session_id = ").push_bind(s);
    }
    if let Some(s) = &q.status {
        qb.push(" AND status = ").push_bind(s);
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    let rows = qb.build().fetch_all(&st.pool).await?;
    let out = rows.iter().map(action_from_row).collect::<Result<_, _>>()?;
    Ok(ApiJson(out))
}

async fn fetch(pool: &sqlx::PgPool, id: i64) -> Result<EnforcementOut, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM enforcement_actions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no enforcement action {id}")))?;
    Ok(action_from_row(&row)?)
}

/// One action.
#[utoipa::path(get, path = "/api/v1/enforcement-log/{id}", tag = "enforcement",
    params(("id" = i64, Path, description = "Action id")),
    responses((status = 200, body = EnforcementOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<EnforcementOut>, ApiError> {
    Ok(ApiJson(fetch(&st.pool, id).await?))
}

/// Queues a Disconnect-Request for an online session. Answers 202 at once with the queued
/// action (its `Location` is the log entry, which shows the router's answer when it comes).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/disconnect", tag = "enforcement",
    params(("id" = i64, Path, description = "Session id")),
    responses((status = 202, body = EnforcementOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The session has already ended")),
    security(("bearer" = [])))]
pub async fn disconnect(
    State(st): State<AppState>,
    ApiPath(session_id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let mut tx = st.pool.begin().await?;
    let open: Option<bool> =
        sqlx::query_scalar("SELECT stopped_at IS NULL FROM sessions WHERE id = $1 FOR UPDATE")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
    match open {
        None => return Err(ApiError::NotFound(format!("no session {session_id}"))),
        Some(false) => {
            return Err(ApiError::Conflict(format!(
                "session {session_id} has already ended"
            )));
        }
        Some(true) => {}
    }
    let id = queue::queue_operator_disconnect(&mut tx, session_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no session {session_id}")))?;
    tx.commit().await?;
    let action = fetch(&st.pool, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/enforcement-log/{id}"))],
        ApiJson(action),
    )
        .into_response())
}
