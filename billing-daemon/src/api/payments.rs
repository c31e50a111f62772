//! Payments for operators: start an STK Push, see payments and intents with their raw
//! callbacks, enter cash, daily totals, register the C2B URLs, recover a payment whose
//! confirmation never came by its receipt.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{QueryBuilder, Row};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, limit, subscriber_id};
use crate::payments::Mpesa;
use crate::payments::ledger::{self, Channel, Recorded};
use crate::payments::recovery::{self, RecoverError};
use crate::payments::stk::{self, Purchase};

fn mpesa(st: &AppState) -> Result<&Mpesa, ApiError> {
    st.mpesa.as_ref().ok_or_else(|| {
        ApiError::Unavailable("M-Pesa is not configured (JASIYO_MPESA_ENVIRONMENT)".into())
    })
}

/// `POST /payments/stk`: a subscriber's renewal (`username`, optionally `plan_id`), or a
/// voucher for a customer without an account (`package_id`, no `username`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StkIn {
    /// Who pays (absent: a voucher purchase, with `package_id`).
    pub username: Option<String>,
    /// The phone to prompt: 07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX or 2547XXXXXXXX.
    pub phone: String,
    /// The plan to buy (default: the subscriber's plan).
    pub plan_id: Option<i64>,
    /// A voucher of this package (a plan serving hotspot logins), without `username`: the
    /// reply carries the `purchase` token to learn the code with, once paid, at
    /// `GET /portal/v1/purchases/{purchase}`.
    pub package_id: Option<i64>,
}

/// An STK Push and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentOut {
    /// Id.
    pub id: i64,
    /// When the push was asked for.
    pub created_at: DateTime<Utc>,
    /// Who pays.
    pub subscriber_id: i64,
    /// Their username.
    pub username: String,
    /// The plan bought.
    pub plan_id: i64,
    /// The phone prompted (2547XXXXXXXX).
    pub phone: String,
    /// The price asked.
    pub amount_kes: i64,
    /// Shown in the prompt.
    pub account_reference: String,
    /// pending, paid, failed or expired_unknown.
    pub status: String,
    /// Daraja's id of the push.
    pub checkout_request_id: Option<String>,
    /// Daraja's result code (a number, or text such as SFC_IC0003).
    pub result_code: Option<String>,
    /// Its description.
    pub result_desc: Option<String>,
    /// STK Queries made.
    pub query_attempts: i32,
    /// The payment that paid it.
    pub payment_id: Option<i64>,
    /// subscriber (a renewal) or voucher (a voucher purchase).
    pub purpose: String,
    /// The poll token of a voucher purchase (only in the reply that started it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase: Option<String>,
}

const INTENT_SQL: &str = "SELECT i.id, i.created_at, i.subscriber_id, s.username, i.plan_id, i.phone, \
    i.amount_kes, i.account_reference, i.status, i.checkout_request_id, i.result_code, \
    i.result_desc, i.query_attempts, p.id AS payment_id, i.purpose \
    FROM payment_intents i JOIN subscribers s ON s.id = i.subscriber_id \
    LEFT JOIN payments p ON p.intent_id = i.id WHERE true";

fn intent_from_row(r: &PgRow) -> Result<IntentOut, sqlx::Error> {
    Ok(IntentOut {
        id: r.try_get("id")?,
        created_at: r.try_get("created_at")?,
        subscriber_id: r.try_get("subscriber_id")?,
        username: r.try_get("username")?,
        plan_id: r.try_get("plan_id")?,
        phone: r.try_get("phone")?,
        amount_kes: r.try_get("amount_kes")?,
        account_reference: r.try_get("account_reference")?,
        status: r.try_get("status")?,
        checkout_request_id: r.try_get("checkout_request_id")?,
        result_code: r.try_get("result_code")?,
        result_desc: r.try_get("result_desc")?,
        query_attempts: r.try_get("query_attempts")?,
        payment_id: r.try_get("payment_id")?,
        purpose: r.try_get("purpose")?,
        purchase: None,
    })
}

async fn fetch_intent(pool: &sqlx::PgPool, id: i64) -> Result<IntentOut, ApiError> {
    let row = sqlx::query(&format!("{INTENT_SQL} AND i.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no payment intent {id}")))?;
    Ok(intent_from_row(&row)?)
}

/// Sends an M-Pesa prompt (STK Push) to the customer's phone for a plan. Answers 202 with
/// the pending intent; the customer's PIN, or the reconciler, settles it.
#[utoipa::path(post, path = "/api/v1/payments/stk", tag = "payments", request_body = StkIn,
    responses((status = 202, body = IntentOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A prompt to this phone is already waiting"),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody, description = "M-Pesa refused the request"),
        (status = 503, body = ErrorBody, description = "M-Pesa is not configured")),
    security(("bearer" = [])))]
pub async fn start_stk(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<StkIn>,
) -> Result<Response, ApiError> {
    let m = mpesa(&st)?;
    let Some(username) = body.username else {
        let (Some(package_id), None) = (body.package_id, body.plan_id) else {
            return Err(ApiError::Validation(
                "give username (and optionally plan_id), or package_id for a voucher".into(),
            ));
        };
        let key = &st
            .vouchers
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("vouchers are not configured".into()))?
            .key;
        let purchase = stk::VoucherPurchase {
            plan_id: package_id,
            phone: body.phone,
            router_id: None,
            client_ip: None,
            mac: None,
        };
        let started = stk::start_voucher(&st.pool, m, key, &purchase).await?;
        let mut out = fetch_intent(&st.pool, started.intent_id).await?;
        out.purchase = Some(started.poll_token);
        return Ok((StatusCode::ACCEPTED, ApiJson(out)).into_response());
    };
    if body.package_id.is_some() {
        return Err(ApiError::Validation(
            "package_id is for a voucher purchase, without username".into(),
        ));
    }
    let row =
        sqlx::query("SELECT s.id, s.username, s.plan_id FROM subscribers s WHERE s.username = $1")
            .bind(&username)
            .fetch_optional(&st.pool)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no subscriber {username:?}")))?;
    let plan_id = body.plan_id.unwrap_or(row.try_get("plan_id")?);
    let price: i64 = sqlx::query_scalar("SELECT price_kes FROM plans WHERE id = $1")
        .bind(plan_id)
        .fetch_optional(&st.pool)
        .await?
        .ok_or_else(|| ApiError::Validation(format!("plan_id {plan_id} does not exist")))?;
    let purchase = Purchase {
        subscriber_id: row.try_get("id")?,
        username: row.try_get("username")?,
        plan_id,
        amount_kes: price,
        phone: body.phone,
    };
    let id = stk::start(&st.pool, m, &purchase).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(fetch_intent(&st.pool, id).await?),
    )
        .into_response())
}

/// Filters for `GET /payment-intents`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IntentQuery {
    /// pending, paid, failed or expired_unknown.
    pub status: Option<String>,
    /// 2547XXXXXXXX.
    pub phone: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// STK Push intents, newest first.
#[utoipa::path(get, path = "/api/v1/payment-intents", tag = "payments", params(IntentQuery),
    responses((status = 200, body = [IntentOut]), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn intents(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<IntentQuery>,
) -> Result<ApiJson<Vec<IntentOut>>, ApiError> {
    let mut qb = QueryBuilder::new(INTENT_SQL);
    if let Some(s) = &q.status {
        qb.push(" AND i.status = ").push_bind(s);
    }
    if let Some(p) = &q.phone {
        qb.push(" AND i.phone = ").push_bind(p);
    }
    if let Some(u) = &q.username {
        qb.push(" AND s.username = ").push_bind(u);
    }
    qb.push(" ORDER BY i.id DESC LIMIT ")
        .push_bind(limit(q.limit, 100, 1000)?);
    let rows = qb.build().fetch_all(&st.pool).await?;
    Ok(ApiJson(
        rows.iter().map(intent_from_row).collect::<Result<_, _>>()?,
    ))
}

/// A callback as received.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackOut {
    /// Id.
    pub id: i64,
    /// When.
    pub received_at: DateTime<Utc>,
    /// stk, c2b_validation, c2b_confirmation, status_result or status_timeout.
    pub kind: String,
    /// Source address.
    pub source_ip: Option<String>,
    /// The body exactly as received (as text; invalid UTF-8 replaced).
    pub body: String,
    /// What processing made of it (null: not processed yet).
    pub outcome: Option<String>,
}

async fn callbacks(
    pool: &sqlx::PgPool,
    column: &str,
    id: i64,
) -> Result<Vec<CallbackOut>, ApiError> {
    let rows = sqlx::query(&format!(
        "SELECT id, received_at, kind, host(source_ip) AS source_ip, body, outcome \
           FROM payment_callbacks WHERE {column} = $1 ORDER BY id"
    ))
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CallbackOut {
                id: r.try_get("id")?,
                received_at: r.try_get("received_at")?,
                kind: r.try_get("kind")?,
                source_ip: r.try_get("source_ip")?,
                body: String::from_utf8_lossy(&r.try_get::<Vec<u8>, _>("body")?).into_owned(),
                outcome: r.try_get("outcome")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// An intent with its callbacks.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentDetail {
    /// The intent.
    #[serde(flatten)]
    pub intent: IntentOut,
    /// Every callback that came to its URL.
    pub callbacks: Vec<CallbackOut>,
}

/// One intent, with the raw callbacks that came for it.
#[utoipa::path(get, path = "/api/v1/payment-intents/{id}", tag = "payments", params(("id" = i64, Path)),
    responses((status = 200, body = IntentDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn intent(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<IntentDetail>, ApiError> {
    let intent = fetch_intent(&st.pool, id).await?;
    let callbacks = callbacks(&st.pool, "intent_id", id).await?;
    Ok(ApiJson(IntentDetail { intent, callbacks }))
}

/// A payment in the ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentOut {
    /// Id.
    pub id: i64,
    /// When the money moved.
    pub paid_at: DateTime<Utc>,
    /// stk, c2b or cash.
    pub channel: String,
    /// M-Pesa receipt (null for cash, or until it arrives for a query-confirmed push).
    pub receipt: Option<String>,
    /// The STK intent it paid.
    pub intent_id: Option<i64>,
    /// Who paid (null: the account number matched nobody).
    pub subscriber_id: Option<i64>,
    /// Their username.
    pub username: Option<String>,
    /// Whole shillings.
    pub amount_kes: i64,
    /// Phone (STK) or the masked/hashed MSISDN Safaricom sent (C2B).
    pub msisdn: Option<String>,
    /// Account number as the customer typed it (C2B).
    pub bill_ref: Option<String>,
    /// renewed, wallet or unmatched (the status of the money).
    pub applied: String,
    /// The plan renewed.
    pub plan_id: Option<i64>,
    /// The expiry it gave.
    pub expires_at: Option<DateTime<Utc>>,
    /// Note (cash).
    pub note: Option<String>,
}

const PAYMENT_SQL: &str = "SELECT p.id, p.paid_at, p.channel, p.receipt, p.intent_id, p.subscriber_id, \
    s.username, p.amount_kes, p.msisdn, p.bill_ref, p.applied, p.plan_id, p.expires_at, p.note \
    FROM payments p LEFT JOIN subscribers s ON s.id = p.subscriber_id WHERE true";

fn payment_from_row(r: &PgRow) -> Result<PaymentOut, sqlx::Error> {
    Ok(PaymentOut {
        id: r.try_get("id")?,
        paid_at: r.try_get("paid_at")?,
        channel: r.try_get("channel")?,
        receipt: r.try_get("receipt")?,
        intent_id: r.try_get("intent_id")?,
        subscriber_id: r.try_get("subscriber_id")?,
        username: r.try_get("username")?,
        amount_kes: r.try_get("amount_kes")?,
        msisdn: r.try_get("msisdn")?,
        bill_ref: r.try_get("bill_ref")?,
        applied: r.try_get("applied")?,
        plan_id: r.try_get("plan_id")?,
        expires_at: r.try_get("expires_at")?,
        note: r.try_get("note")?,
    })
}

/// Filters for `GET /payments`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PaymentQuery {
    /// renewed, wallet or unmatched.
    pub status: Option<String>,
    /// Phone or MSISDN as stored.
    pub phone: Option<String>,
    /// M-Pesa receipt.
    pub receipt: Option<String>,
    /// stk, c2b or cash.
    pub channel: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Paid on or after this day (UTC).
    pub from: Option<NaiveDate>,
    /// Paid on or before this day (UTC).
    pub to: Option<NaiveDate>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// The ledger, newest first.
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(PaymentQuery),
    responses((status = 200, body = [PaymentOut]), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<PaymentQuery>,
) -> Result<ApiJson<Vec<PaymentOut>>, ApiError> {
    let mut qb = QueryBuilder::new(PAYMENT_SQL);
    if let Some(v) = &q.status {
        qb.push(" AND p.applied = ").push_bind(v);
    }
    if let Some(v) = &q.phone {
        qb.push(" AND p.msisdn = ").push_bind(v);
    }
    if let Some(v) = &q.receipt {
        qb.push(" AND p.receipt = ")
            .push_bind(v.trim().to_uppercase());
    }
    if let Some(v) = &q.channel {
        qb.push(" AND p.channel = ").push_bind(v);
    }
    if let Some(v) = &q.username {
        qb.push(" AND s.username = ").push_bind(v);
    }
    if let Some(d) = q.from {
        qb.push(" AND p.paid_at >= ").push_bind(d).push("::date");
    }
    if let Some(d) = q.to {
        qb.push(" AND p.paid_at < ").push_bind(d).push("::date + 1");
    }
    qb.push(" ORDER BY p.paid_at DESC, p.id DESC LIMIT ")
        .push_bind(limit(q.limit, 100, 1000)?);
    let rows = qb.build().fetch_all(&st.pool).await?;
    Ok(ApiJson(
        rows.iter()
            .map(payment_from_row)
            .collect::<Result<_, _>>()?,
    ))
}

async fn fetch_payment(pool: &sqlx::PgPool, id: i64) -> Result<PaymentOut, ApiError> {
    let row = sqlx::query(&format!("{PAYMENT_SQL} AND p.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no payment {id}")))?;
    Ok(payment_from_row(&row)?)
}

/// A payment with the callbacks that reported it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDetail {
    /// The payment.
    #[serde(flatten)]
    pub payment: PaymentOut,
    /// The raw callbacks (STK result and C2B confirmation) that reported it.
    pub callbacks: Vec<CallbackOut>,
}

/// One payment, with its raw callbacks.
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", params(("id" = i64, Path)),
    responses((status = 200, body = PaymentDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<PaymentDetail>, ApiError> {
    let payment = fetch_payment(&st.pool, id).await?;
    let callbacks = callbacks(&st.pool, "payment_id", id).await?;
    Ok(ApiJson(PaymentDetail { payment, callbacks }))
}

/// `POST /payments`: money taken by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashIn {
    /// Who paid.
    pub username: String,
    /// Whole shillings.
    pub amount_kes: i64,
    /// Receipt book number, who took it...
    pub note: Option<String>,
}

/// Records a cash payment in the same ledger: it renews the plan if it covers the price
/// (with the wallet), else it waits in the wallet.
#[utoipa::path(post, path = "/api/v1/payments", tag = "payments", request_body = CashIn,
    responses((status = 201, body = PaymentOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cash(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CashIn>,
) -> Result<Response, ApiError> {
    if body.amount_kes < 1 {
        return Err(ApiError::Validation("amount_kes must be at least 1".into()));
    }
    let mut tx = st.pool.begin().await?;
    let sub = subscriber_id(&mut *tx, &body.username).await?;
    let recorded = ledger::record(
        &mut tx,
        &ledger::NewPayment {
            channel: Channel::Cash,
            receipt: None,
            intent_id: None,
            subscriber_id: Some(sub),
            plan_id: None,
            amount_kes: body.amount_kes,
            msisdn: None,
            bill_ref: None,
            paid_at: Utc::now(),
            note: body.note.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    let (Recorded::New { payment_id, .. } | Recorded::Duplicate { payment_id }) = recorded;
    Ok((
        StatusCode::CREATED,
        ApiJson(fetch_payment(&st.pool, payment_id).await?),
    )
        .into_response())
}

/// Filters for `GET /payments/daily`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// First day (UTC, default 30 days ago).
    pub from: Option<NaiveDate>,
    /// Last day (UTC, default today).
    pub to: Option<NaiveDate>,
}

/// Money received on one day through one channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyTotal {
    /// Day (UTC).
    pub day: NaiveDate,
    /// stk, c2b or cash.
    pub channel: String,
    /// Payments.
    pub count: i64,
    /// Shillings.
    pub total_kes: i64,
}

/// Totals per day and channel, newest day first.
#[utoipa::path(get, path = "/api/v1/payments/daily", tag = "payments", params(DailyQuery),
    responses((status = 200, body = [DailyTotal]), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn daily(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<DailyQuery>,
) -> Result<ApiJson<Vec<DailyTotal>>, ApiError> {
    let (from, to) = super::days(q.from, q.to);
    let rows = sqlx::query(
        "SELECT (paid_at AT TIME ZONE 'UTC')::date AS day, channel, count(*) AS n, \
                sum(amount_kes)::bigint AS total \
           FROM payments WHERE paid_at >= $1::date AND paid_at < $2::date + 1 \
          GROUP BY 1, 2 ORDER BY 1 DESC, 2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&st.pool)
    .await?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(DailyTotal {
                day: r.try_get("day")?,
                channel: r.try_get("channel")?,
                count: r.try_get("n")?,
                total_kes: r.try_get("total")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(ApiJson(out))
}

/// Registers this daemon's C2B confirmation and validation URLs with Safaricom (once per
/// shortcode in production; to change them, delete them in the Daraja portal first).
#[utoipa::path(post, path = "/api/v1/payments/c2b/register", tag = "payments",
    responses((status = 204), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn register_c2b(State(st): State<AppState>) -> Result<StatusCode, ApiError> {
    let m = mpesa(&st)?;
    let (confirmation, validation) = m.c2b_urls();
    m.client
        .register_c2b_urls(&confirmation, &validation, daraja::ResponseType::Completed)
        .await
        .map_err(|e| ApiError::BadGateway(format!("M-Pesa refused the registration: {e}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /payments/recover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// The M-Pesa receipt from the customer's SMS, e.g. NLJ7RT61SV.
    pub receipt: String,
    /// Whose payment it is: M-Pesa's answer does not carry the account number. Without it
    /// the payment is recorded unmatched, for an operator to assign.
    pub username: Option<String>,
}

/// A recovery by receipt and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryOut {
    /// Id.
    pub id: i64,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The receipt asked about.
    pub receipt: String,
    /// Whose payment (null: recorded unmatched).
    pub subscriber_id: Option<i64>,
    /// Their username.
    pub username: Option<String>,
    /// requesting, pending (waiting for M-Pesa), credited, already_credited, failed or
    /// timed_out.
    pub status: String,
    /// M-Pesa's ResultCode.
    pub result_code: Option<String>,
    /// Its description, or why the request failed.
    pub result_desc: Option<String>,
    /// The amount M-Pesa reported.
    pub amount_kes: Option<i64>,
    /// The payment that holds the receipt.
    pub payment_id: Option<i64>,
}

const RECOVERY_SQL: &str = "SELECT r.id, r.created_at, r.updated_at, r.receipt, r.subscriber_id, \
            s.username, r.status, r.result_code, r.result_desc, r.amount_kes, r.payment_id \
       FROM payment_recoveries r LEFT JOIN subscribers s ON s.id = r.subscriber_id WHERE true";

fn recovery_from_row(r: &sqlx::postgres::PgRow) -> Result<RecoveryOut, sqlx::Error> {
    Ok(RecoveryOut {
        id: r.try_get("id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        receipt: r.try_get("receipt")?,
        subscriber_id: r.try_get("subscriber_id")?,
        username: r.try_get("username")?,
        status: r.try_get("status")?,
        result_code: r.try_get("result_code")?,
        result_desc: r.try_get("result_desc")?,
        amount_kes: r.try_get("amount_kes")?,
        payment_id: r.try_get("payment_id")?,
    })
}

async fn fetch_recovery(pool: &sqlx::PgPool, id: i64) -> Result<RecoveryOut, ApiError> {
    let r = sqlx::query(&format!("{RECOVERY_SQL} AND r.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no recovery {id}")))?;
    Ok(recovery_from_row(&r)?)
}

/// Filters for `GET /payments/recoveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecoveryQuery {
    /// requesting, pending, credited, already_credited, failed or timed_out.
    pub status: Option<String>,
    /// The receipt asked about (any case).
    pub receipt: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Recoveries by receipt, newest first: what was asked, and what M-Pesa answered.
#[utoipa::path(get, path = "/api/v1/payments/recoveries", tag = "payments", params(RecoveryQuery),
    responses((status = 200, body = [RecoveryOut]), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn recoveries(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RecoveryQuery>,
) -> Result<ApiJson<Vec<RecoveryOut>>, ApiError> {
    let mut qb = QueryBuilder::new(RECOVERY_SQL);
    if let Some(status) = &q.status {
        qb.push(" AND r.status = ").push_bind(status);
    }
    if let Some(receipt) = &q.receipt {
        qb.push(" AND r.receipt = ")
            .push_bind(receipt.trim().to_uppercase());
    }
    if let Some(u) = &q.username {
        qb.push(" AND s.username = ").push_bind(u);
    }
    qb.push(" ORDER BY r.id DESC LIMIT ")
        .push_bind(limit(q.limit, 100, 1000)?);
    let rows = qb.build().fetch_all(&st.pool).await?;
    Ok(ApiJson(
        rows.iter()
            .map(recovery_from_row)
            .collect::<Result<_, _>>()?,
    ))
}

/// Asks M-Pesa (Transaction Status) about a receipt the daemon never saw, e.g. a paybill
/// payment whose confirmation was lost. The answer arrives asynchronously: poll
/// `GET /payments/recoveries/{id}`. A receipt already in the ledger is not asked about.
#[utoipa::path(post, path = "/api/v1/payments/recover", tag = "payments", request_body = RecoverIn,
    responses((status = 202, body = RecoveryOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn recover(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RecoverIn>,
) -> Result<Response, ApiError> {
    let m = mpesa(&st)?;
    let subscriber = match &body.username {
        Some(u) => Some(subscriber_id(&st.pool, u).await?),
        None => None,
    };
    let id = match recovery::start(&st.pool, m, &body.receipt, subscriber).await {
        Ok(id) => id,
        Err(e @ RecoverError::Invalid(_)) => return Err(ApiError::Validation(e.to_string())),
        Err(e @ RecoverError::NotConfigured) => return Err(ApiError::Unavailable(e.to_string())),
        Err(e @ (RecoverError::AlreadyCredited { .. } | RecoverError::InProgress(_))) => {
            return Err(ApiError::Conflict(e.to_string()));
        }
        Err(e @ RecoverError::Daraja(_)) => return Err(ApiError::BadGateway(e.to_string())),
        Err(RecoverError::Db(e)) => return Err(e.into()),
    };
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(fetch_recovery(&st.pool, id).await?),
    )
        .into_response())
}

/// A recovery with the raw answers M-Pesa sent for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryDetail {
    /// The recovery.
    #[serde(flatten)]
    pub recovery: RecoveryOut,
    /// Every answer that came to its URLs, as received.
    pub callbacks: Vec<CallbackOut>,
}

/// One recovery by receipt, with M-Pesa's raw answers.
#[utoipa::path(get, path = "/api/v1/payments/recoveries/{id}", tag = "payments", params(("id" = i64, Path)),
    responses((status = 200, body = RecoveryDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn recovery(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<RecoveryDetail>, ApiError> {
    let recovery = fetch_recovery(&st.pool, id).await?;
    let callbacks = callbacks(&st.pool, "recovery_id", id).await?;
    Ok(ApiJson(RecoveryDetail {
        recovery,
        callbacks,
    }))
}
