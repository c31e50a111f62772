//! The portal endpoints (see the module above): packages, purchase, poll.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::{CODE_HANDBACK_HOURS, ClientIp, describe, failure_message};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiPath};
use crate::config::DEFAULT_ISP_NAME;
use crate::domain::Mac;
use crate::payments::stk::{self, VoucherPurchase};
use crate::vouchers::codes;

/// A package a router's hotspot page sells.
#[derive(Debug, Serialize, ToSchema)]
pub struct Package {
    /// The plan's id (what a purchase names as `package_id`).
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Price, KES.
    pub price_kes: i64,
    /// Validity from first login, seconds.
    pub duration_seconds: i64,
    /// Online time allowed, seconds (null: no limit but the validity).
    pub time_allowance_seconds: Option<i64>,
    /// Data allowed, bytes (null: unlimited).
    pub data_cap_bytes: Option<i64>,
    /// MikroTik rate limit (rx/tx: the customer's upload/download).
    pub rate_limit: String,
    /// A summary for people, such as "1 hour, 5 Mbit/s".
    pub description: String,
}

fn package_from_row(r: &sqlx::postgres::PgRow) -> Result<Package, sqlx::Error> {
    let duration_seconds: i64 = r.try_get("duration_seconds")?;
    let time_allowance_seconds: Option<i64> = r.try_get("time_allowance_seconds")?;
    let data_cap_bytes: Option<i64> = r.try_get("data_cap_bytes")?;
    let rate_limit: String = r.try_get("rate_limit")?;
    Ok(Package {
        id: r.try_get("plan_id")?,
        name: r.try_get("name")?,
        price_kes: r.try_get("price_kes")?,
        description: describe(
            duration_seconds,
            time_allowance_seconds,
            data_cap_bytes,
            &rate_limit,
        ),
        duration_seconds,
        time_allowance_seconds,
        data_cap_bytes,
        rate_limit,
    })
}

/// The packages router `router_id` sells, in its order.
pub async fn router_packages(
    db: impl sqlx::PgExecutor<'_>,
    router_id: i64,
) -> Result<Vec<Package>, sqlx::Error> {
    sqlx::query(
        "SELECT p.id AS plan_id, p.name, p.price_kes, p.duration_seconds, p.time_allowance_seconds, \
                p.data_cap_bytes, p.rate_limit \
           FROM router_packages rp JOIN plans p ON p.id = rp.plan_id \
          WHERE rp.router_id = $1 ORDER BY rp.position, p.id",
    )
    .bind(router_id)
    .fetch_all(db)
    .await?
    .iter()
    .map(package_from_row)
    .collect()
}

/// `GET /portal/v1/routers/{router_id}/packages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackagesOut {
    /// The ISP's name (`JASIYO_ISP_NAME`).
    pub isp_name: String,
    /// Always KES.
    pub currency: &'static str,
    /// In the order the operator set.
    pub packages: Vec<Package>,
}

/// 404 unless router `router_id` exists (the portal's endpoints and its login page).
pub(crate) async fn router_exists(st: &AppState, router_id: i64) -> Result<(), ApiError> {
    let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM routers WHERE id = $1)")
        .bind(router_id)
        .fetch_one(&st.pool)
        .await?;
    if found {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no router {router_id}")))
    }
}

/// The packages this router's hotspot page sells. Public (no token), CORS open.
#[utoipa::path(get, path = "/portal/v1/routers/{router_id}/packages", tag = "portal",
    params(("router_id" = i64, Path, description = "The router")),
    responses((status = 200, body = PackagesOut), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "Too many requests from this address; see Retry-After")))]
pub async fn packages(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(router_id): ApiPath<i64>,
) -> Result<ApiJson<PackagesOut>, ApiError> {
    st.portal.limits.read_from(ip)?;
    router_exists(&st, router_id).await?;
    let packages = router_packages(&st.pool, router_id).await?;
    Ok(ApiJson(PackagesOut {
        isp_name: st
            .vouchers
            .as_ref()
            .map_or(DEFAULT_ISP_NAME, |v| v.isp_name.as_str())
            .to_owned(),
        currency: "KES",
        packages,
    }))
}

/// `POST /portal/v1/routers/{router_id}/purchases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseIn {
    /// A package this router sells.
    pub package_id: i64,
    /// The M-Pesa phone: 07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX or 2547XXXXXXXX.
    pub phone: String,
    /// The device's MAC as the router gave it (`$(mac)`); kept in the voucher's note. A
    /// value that is no MAC is ignored.
    pub mac: Option<String>,
}

/// A purchase started.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseOut {
    /// The poll token: `GET /portal/v1/purchases/{purchase}`. Secret: it fetches the code.
    pub purchase: String,
    /// pending.
    pub status: &'static str,
    /// The phone prompted (2547XXXXXXXX).
    pub phone: String,
    /// The price asked.
    pub amount_kes: i64,
    /// For the customer.
    pub message: &'static str,
}

/// Buys a package with an M-Pesa prompt to the customer's phone. Answers 202 with the poll
/// token; poll it for the voucher code. Public (no token), CORS open.
#[utoipa::path(post, path = "/portal/v1/routers/{router_id}/purchases", tag = "portal",
    params(("router_id" = i64, Path, description = "The router")),
    request_body = PurchaseIn,
    responses((status = 202, body = PurchaseOut), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "Unknown router, or a package it does not sell"),
        (status = 409, body = ErrorBody, description = "phone_busy: a prompt to this phone is already waiting"),
        (status = 413, description = "Body too large"),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody, description = "rate_limited; see Retry-After"),
        (status = 502, body = ErrorBody, description = "M-Pesa refused the request"),
        (status = 503, body = ErrorBody, description = "M-Pesa or vouchers not configured")))]
pub async fn purchase(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(router_id): ApiPath<i64>,
    ApiJson(body): ApiJson<PurchaseIn>,
) -> Result<Response, ApiError> {
    st.portal.limits.purchase_from(ip)?;
    let (Some(mpesa), Some(vouchers)) = (&st.mpesa, &st.vouchers) else {
        return Err(ApiError::Unavailable(
            "buying on this page is not available: M-Pesa or vouchers are not configured".into(),
        ));
    };
    let phone: daraja::Msisdn = body
        .phone
        .parse()
        .map_err(|e: daraja::ValidationError| ApiError::Validation(e.0))?;
    st.portal.limits.purchase_for(phone.as_str())?;
    router_exists(&st, router_id).await?;
    let sold: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM router_packages WHERE router_id = $1 AND plan_id = $2)",
    )
    .bind(router_id)
    .bind(body.package_id)
    .fetch_one(&st.pool)
    .await?;
    if !sold {
        return Err(ApiError::NotFound(format!(
            "package {} is not sold on this router",
            body.package_id
        )));
    }
    let mac = body.mac.as_deref().and_then(|m| m.parse::<Mac>().ok());
    let started = stk::start_voucher(
        &st.pool,
        mpesa,
        &vouchers.key,
        &VoucherPurchase {
            plan_id: body.package_id,
            phone: phone.as_str().to_owned(),
            router_id: Some(router_id),
            client_ip: Some(ip),
            mac,
        },
    )
    .await?;
    tracing::info!(
        intent = started.intent_id,
        router = router_id,
        package = body.package_id,
        client = %ip,
        "portal purchase started"
    );
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(PurchaseOut {
            purchase: started.poll_token,
            status: "pending",
            phone: started.phone,
            amount_kes: started.amount_kes,
            message: "Check your phone and enter your M-Pesa PIN",
        }),
    )
        .into_response())
}

/// `GET /portal/v1/purchases/{token}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PollOut {
    /// pending, paid or failed.
    pub status: &'static str,
    /// For the customer.
    pub message: &'static str,
    /// The voucher code, only when paid (and only within 24 hours of the purchase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What was bought.
    pub package: Package,
}

/// Whether `token` can be a poll token (43 URL-safe base64 characters); anything else is
/// not worth a query.
fn is_poll_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a purchase stands. `paid` (with the code) only once radiusd's snapshot has the
/// voucher usable, so the page can log in with it at once. Public (no token), CORS open.
#[utoipa::path(get, path = "/portal/v1/purchases/{token}", tag = "portal",
    params(("token" = String, Path, description = "The purchase's poll token")),
    responses((status = 200, body = PollOut),
        (status = 404, body = ErrorBody, description = "Unknown token, or a purchase more than 24 hours old"),
        (status = 429, body = ErrorBody, description = "rate_limited; see Retry-After")))]
pub async fn poll(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(token): ApiPath<String>,
) -> Result<ApiJson<PollOut>, ApiError> {
    st.portal.limits.read_from(ip)?;
    let unknown = || ApiError::NotFound("no such purchase (or it is more than a day old)".into());
    if !is_poll_token(&token) {
        return Err(unknown());
    }
    let r = sqlx::query(
        "SELECT i.status, i.result_code, i.amount_kes AS price_kes, s.username, \
                s.status AS voucher_status, s.voucher_code_sealed, b.paid_at, b.revoked_at, \
                p.id AS plan_id, p.name, p.duration_seconds, p.time_allowance_seconds, \
                p.data_cap_bytes, p.rate_limit \
           FROM payment_intents i JOIN subscribers s ON s.id = i.subscriber_id \
           JOIN voucher_batches b ON b.id = s.voucher_batch_id JOIN plans p ON p.id = i.plan_id \
          WHERE i.poll_token = $1 AND i.purpose = 'voucher' \
            AND i.created_at > now() - make_interval(hours => $2)",
    )
    .bind(&token)
    .bind(i32::try_from(CODE_HANDBACK_HOURS).unwrap_or(24))
    .fetch_optional(&st.pool)
    .await?
    .ok_or_else(unknown)?;
    let package = package_from_row(&r)?;
    let status: String = r.try_get("status")?;
    let result_code: Option<String> = r.try_get("result_code")?;
    let paid_at: Option<chrono::DateTime<chrono::Utc>> = r.try_get("paid_at")?;
    let revoked_at: Option<chrono::DateTime<chrono::Utc>> = r.try_get("revoked_at")?;
    let out = |status, message, code| {
        Ok(ApiJson(PollOut {
            status,
            message,
            code,
            package,
        }))
    };
    match status.as_str() {
        "pending" => out(
            "pending",
            "Check your phone and enter your M-Pesa PIN",
            None,
        ),
        "paid" if revoked_at.is_some() => out(
            "failed",
            "This voucher was cancelled by the provider. Please contact us.",
            None,
        ),
        // Paid, but less than the price: it waits on the voucher's wallet, not usable.
        "paid" if paid_at.is_none() => out(
            "failed",
            "The amount paid does not cover this package. Please contact us.",
            None,
        ),
        "paid" => {
            let username: String = r.try_get("username")?;
            let voucher_status: String = r.try_get("voucher_status")?;
            if voucher_status != "active" || !st.portal.usable_in_snapshot(&username) {
                return out(
                    "pending",
                    "Payment received. Preparing your voucher...",
                    None,
                );
            }
            let vouchers = st
                .vouchers
                .as_ref()
                .ok_or_else(|| ApiError::Unavailable("vouchers are not configured".into()))?;
            let sealed: Vec<u8> = r.try_get("voucher_code_sealed")?;
            let code = codes::unseal(vouchers.key.print_key(), &username, &sealed)
                .map_err(|_| anyhow::anyhow!("a paid voucher's code does not unseal"))?;
            out(
                "paid",
                "Payment received. You are being logged in.",
                Some(code),
            )
        }
        other => out(
            "failed",
            failure_message(other, result_code.as_deref()),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_tokens() {
        let t = stk::new_poll_token();
        assert!(is_poll_token(&t), "{t}");
        assert!(!is_poll_token(&t[1..]));
        assert!(!is_poll_token(&format!("{}=", &t[1..])));
        assert_ne!(t, stk::new_poll_token());
    }
}
