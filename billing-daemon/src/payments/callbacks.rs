//! What Safaricom POSTs: the STK result at `/pay/cb/stk/{token}` (one token per intent) and
//! C2B validation and confirmation at `/pay/cb/c2b/{token}/validation|confirmation` (one
//! configured token). No "mpesa" in the paths: Daraja refuses URLs that contain it.
//!
//! Each body is stored (committed) before anything else happens, then processed in one
//! transaction (STK results go through the batch worker, `stk_batch`, first). A body that
//! cannot be processed now (Postgres trouble) stays unprocessed and the reconciler
//! processes it later, so the answer to Safaricom is always quick.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use daraja::callbacks::{self as parse, C2bRejectCode};
use rand::RngCore;
use secrecy::ExposeSecret;
use sqlx::{PgConnection, PgPool, Row};

use super::Mpesa;
use super::ledger::{self, Channel, Recorded};
use super::stk;
use super::stk_batch::Answer;
use crate::api::AppState;

/// Largest callback body read (Safaricom's are well under 2 KiB).
const MAX_BODY: usize = 64 * 1024;

/// `YYYYMMDDHHmmss` in Kenyan time (UTC+3, no DST), as Daraja writes TransTime and
/// TransactionDate.
pub fn parse_nairobi_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S").ok()?;
    let nairobi = chrono::FixedOffset::east_opt(3 * 3600)?;
    nairobi
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// A new per-request URL token: hex of 32 random bytes, the unguessable part of the URL
/// where M-Pesa answers one push or one Transaction Status request.
pub(super) fn new_token() -> String {
    let mut token = [0u8; 32];
    rand::rng().fill_bytes(&mut token);
    hex::encode(token)
}

/// Whether a path segment can be a per-request token ([`new_token`]); anything else is not
/// worth a row.
pub(super) fn is_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn ack() -> Response {
    axum::Json(parse::confirmation_ack()).into_response()
}

pub(super) fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// The request's peer address, its X-Forwarded-For, and its body.
pub(super) async fn read(
    req: Request,
) -> Result<(Option<IpAddr>, Option<String>, Bytes), Response> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = req.uri().path().to_owned();
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            // Daraja's bodies are a few hundred bytes: nothing genuine is this large, and it is
            // not stored (a flood of them must not fill the database).
            tracing::warn!(?peer, %path, error = %e, limit = MAX_BODY,
                "payment callback refused: body too large or unreadable");
            StatusCode::PAYLOAD_TOO_LARGE.into_response()
        })?;
    Ok((peer, xff, body))
}

/// The source address as believed (X-Forwarded-For only from the trusted proxy), and
/// whether the allow-list lets it through.
pub(super) fn source(
    mpesa: &Mpesa,
    peer: Option<IpAddr>,
    xff: Option<&str>,
) -> (Option<IpAddr>, bool) {
    match peer {
        Some(p) => (
            Some(mpesa.settings.callback_source(p, xff)),
            mpesa.settings.callback_source_allowed(p, xff),
        ),
        // No peer (in-process tests): only an open allow-list lets it through.
        None => (None, mpesa.settings.callback_allow.is_empty()),
    }
}

pub(super) async fn store(
    pool: &PgPool,
    kind: &str,
    source_ip: Option<IpAddr>,
    url_token: Option<&str>,
    body: &[u8],
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO payment_callbacks (kind, source_ip, url_token, body) \
         VALUES ($1, $2::inet, $3, $4) RETURNING id",
    )
    .bind(kind)
    .bind(source_ip.map(|ip| ip.to_string()))
    .bind(url_token)
    .bind(body)
    .fetch_one(pool)
    .await
}

pub(super) async fn finish(
    conn: &mut PgConnection,
    callback_id: i64,
    outcome: &str,
    intent_id: Option<i64>,
    payment_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    finish_many(
        conn,
        &[callback_id],
        &[outcome],
        &[intent_id],
        &[payment_id],
    )
    .await
}

/// Stores STK callback bodies (source address, URL token, body) in one statement; their
/// ids, in order.
pub(super) async fn store_stk_many(
    pool: &PgPool,
    callbacks: &[(Option<IpAddr>, &str, &[u8])],
) -> Result<Vec<i64>, sqlx::Error> {
    // Ids drawn first, so each body's id is known without relying on the order of
    // RETURNING.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('payment_callbacks', 'id')) \
           FROM generate_series(1, $1)",
    )
    .bind(i32::try_from(callbacks.len()).unwrap_or(i32::MAX))
    .fetch_all(pool)
    .await?;
    sqlx::query(
        "INSERT INTO payment_callbacks (id, kind, source_ip, url_token, body) \
         SELECT t.id, 'stk', t.ip::inet, t.token, t.body \
           FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bytea[]) AS t(id, ip, token, body)",
    )
    .bind(&ids)
    .bind(
        callbacks
            .iter()
            .map(|c| c.0.map(|ip| ip.to_string()))
            .collect::<Vec<_>>(),
    )
    .bind(callbacks.iter().map(|c| c.1).collect::<Vec<_>>())
    .bind(callbacks.iter().map(|c| c.2).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(ids)
}

/// Records what became of stored callbacks. `intent_ids` and `payment_ids` may be shorter
/// than `ids` (the rest are NULL).
pub(super) async fn finish_many<'e>(
    db: impl sqlx::PgExecutor<'e>,
    ids: &[i64],
    outcomes: &[&str],
    intent_ids: &[Option<i64>],
    payment_ids: &[Option<i64>],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_callbacks c SET outcome = t.outcome, intent_id = t.intent_id, \
                payment_id = t.payment_id, processed_at = now() \
           FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) \
                AS t(id, outcome, intent_id, payment_id) \
          WHERE c.id = t.id",
    )
    .bind(ids)
    .bind(outcomes)
    .bind(intent_ids)
    .bind(payment_ids)
    .execute(db)
    .await?;
    Ok(())
}

/// The outcome of a callback from an address the allow-list does not contain.
pub(super) const REFUSED_SOURCE: &str = "refused: source address not allowed";

/// `POST /pay/cb/stk/{token}`.
pub async fn stk_result(
    State(st): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let Some(mpesa) = st.mpesa.as_ref() else {
        return not_found();
    };
    let (peer, xff, body) = match read(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !is_token(&token) {
        return not_found();
    }
    let (source_ip, allowed) = source(mpesa, peer, xff.as_deref());
    // Processed in batches with whatever else arrives meanwhile (see stk_batch).
    match mpesa
        .stk_batches
        .submit(&st.pool, token, body, source_ip, allowed)
        .await
    {
        Answer::Ack => ack(),
        Answer::NoIntent => not_found(),
        Answer::Refused => StatusCode::FORBIDDEN.into_response(),
        Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// A callback from an address the allow-list does not contain: kept (so an operator can
/// see it), credited nothing, answered 403.
pub(super) async fn refuse_source(
    pool: &PgPool,
    id: i64,
    what: &str,
    source_ip: Option<IpAddr>,
) -> Response {
    tracing::warn!(
        callback = id,
        source = ?source_ip,
        "{what} refused: source address not allowed"
    );
    let _ = mark_refused(pool, id, REFUSED_SOURCE).await;
    StatusCode::FORBIDDEN.into_response()
}

async fn mark_refused(pool: &PgPool, id: i64, outcome: &str) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    finish(&mut conn, id, outcome, None, None).await
}

/// Processes a stored STK callback. `None`: no intent has this token (nothing changed;
/// the row records it).
pub async fn process_stk(
    pool: &PgPool,
    callback_id: i64,
    token: &str,
    body: &[u8],
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let parsed = parse::parse_stk_callback(body);
    let intent = match &parsed {
        Ok(cb) => {
            stk::lock_for_callback(
                &mut tx,
                token,
                &cb.checkout_request_id,
                &cb.merchant_request_id,
            )
            .await?
        }
        Err(_) => stk::lock(&mut tx, Some(token), None).await?,
    };
    let Some(intent) = intent else {
        finish(
            &mut tx,
            callback_id,
            "refused: no intent at this URL",
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    };
    let outcome = match parsed {
        Err(e) => format!("unreadable: {e}"),
        Ok(cb)
            if intent.checkout_request_id.as_deref() != Some(cb.checkout_request_id.as_str()) =>
        {
            format!(
                "refused: CheckoutRequestID {} is not this intent's",
                cb.checkout_request_id
            )
        }
        Ok(cb) => {
            let code = result_code_text(&cb.result_code);
            match &cb.paid {
                Some(paid) => {
                    let amount = i64::try_from(paid.amount_kes).unwrap_or(i64::MAX);
                    let paid_at = paid
                        .transaction_date
                        .as_deref()
                        .and_then(parse_nairobi_time)
                        .unwrap_or_else(Utc::now);
                    let (recorded, outcome) = stk::mark_paid(
                        &mut tx,
                        &intent,
                        Some(&paid.receipt),
                        amount,
                        paid_at,
                        (&code, &cb.result_desc),
                    )
                    .await?;
                    let payment_id = match recorded {
                        Recorded::New { payment_id, .. } | Recorded::Duplicate { payment_id } => {
                            payment_id
                        }
                    };
                    finish(
                        &mut tx,
                        callback_id,
                        &outcome,
                        Some(intent.id),
                        Some(payment_id),
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(Some(outcome));
                }
                None => {
                    if stk::mark_failed(&mut tx, &intent, (&code, &cb.result_desc)).await? {
                        format!("failed: {code} {}", cb.result_desc)
                    } else {
                        format!("ignored: {code} for an intent already {}", intent.status)
                    }
                }
            }
        }
    };
    finish(&mut tx, callback_id, &outcome, Some(intent.id), None).await?;
    tx.commit().await?;
    Ok(Some(outcome))
}

/// ResultCode as stored: the number, or the text Daraja sent.
pub fn result_code_text(code: &daraja::ResultCode) -> String {
    match code {
        daraja::ResultCode::Code(n) => n.to_string(),
        daraja::ResultCode::Text(t) => t.clone(),
    }
}

fn c2b_token_ok(mpesa: &Mpesa, token: &str) -> bool {
    let want = mpesa.settings.c2b_token.expose_secret().as_bytes();
    let got = token.as_bytes();
    // Constant time over the configured length: the token is the only thing that keeps
    // forged confirmations out.
    got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// What the C2B endpoints share: M-Pesa on, the configured token, the body read, stored
/// and the source checked. `Err` is the answer to give at once.
struct C2bRequest<'a> {
    mpesa: &'a Mpesa,
    id: i64,
    source_ip: Option<IpAddr>,
    allowed: bool,
    body: Bytes,
}

async fn c2b_request<'a>(
    st: &'a AppState,
    token: &str,
    kind: &str,
    req: Request,
) -> Result<C2bRequest<'a>, Response> {
    let mpesa = st.mpesa.as_ref().ok_or_else(not_found)?;
    if !c2b_token_ok(mpesa, token) {
        return Err(not_found());
    }
    let (peer, xff, body) = read(req).await?;
    let (source_ip, allowed) = source(mpesa, peer, xff.as_deref());
    let id = store(&st.pool, kind, source_ip, None, &body)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, kind, "could not store a C2B callback");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        })?;
    Ok(C2bRequest {
        mpesa,
        id,
        source_ip,
        allowed,
        body,
    })
}

/// `POST /pay/cb/c2b/{token}/validation`: accept a payment for a known account (and an
/// amount the configured rule allows), refuse anything else so the customer keeps the
/// money.
pub async fn c2b_validation(
    State(st): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let c = match c2b_request(&st, &token, "c2b_validation", req).await {
        Ok(c) => c,
        // Without a record, refuse: an unknown payment must not go through unlogged.
        Err(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
            return axum::Json(parse::validation_reject(C2bRejectCode::OtherError)).into_response();
        }
        Err(resp) => return resp,
    };
    let (reply, outcome) = if !c.allowed {
        (
            parse::validation_reject(C2bRejectCode::OtherError),
            "refused: source address not allowed".to_owned(),
        )
    } else {
        match validate(&st.pool, c.mpesa, &c.body).await {
            Ok(Ok(())) => (parse::validation_accept(), "accepted".to_owned()),
            Ok(Err((code, why))) => (parse::validation_reject(code), format!("refused: {why}")),
            Err(e) => (
                parse::validation_reject(C2bRejectCode::OtherError),
                format!("refused: database error {e}"),
            ),
        }
    };
    if outcome != "accepted" {
        tracing::warn!(callback = c.id, source = ?c.source_ip, outcome, "C2B validation refused");
    }
    let _ = mark_refused(&st.pool, c.id, &outcome).await;
    axum::Json(reply).into_response()
}

type Refusal = (C2bRejectCode, String);

/// Whose account a C2B account number (already trimmed and lower-cased) names, and the
/// price of their plan. It is a username; or, when the customer copied it from a push's
/// prompt or the C2B copy of an STK payment carries it, the push's AccountReference, which
/// is made from the intent id when the username is too long for Daraja
/// (stk::account_reference). A username wins over a reference.
async fn account_owner(
    db: impl sqlx::PgExecutor<'_>,
    account_key: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, p.price_kes FROM ( \
            SELECT id, 0 AS rank FROM subscribers WHERE lower(username) = $1 \
            UNION ALL \
            SELECT subscriber_id, 1 FROM payment_intents WHERE lower(account_reference) = $1 \
         ) found JOIN subscribers s ON s.id = found.id JOIN plans p ON p.id = s.plan_id \
         ORDER BY found.rank LIMIT 1",
    )
    .bind(account_key)
    .fetch_optional(db)
    .await
}

async fn validate(
    pool: &PgPool,
    mpesa: &Mpesa,
    body: &[u8],
) -> Result<Result<(), Refusal>, sqlx::Error> {
    let payment = match parse::parse_c2b(body) {
        Ok(p) => p,
        Err(e) => return Ok(Err((C2bRejectCode::OtherError, format!("unreadable: {e}")))),
    };
    let Some((_, price)) = account_owner(pool, &payment.account_key()).await? else {
        return Ok(Err((
            C2bRejectCode::InvalidAccountNumber,
            format!("no subscriber {:?}", payment.bill_ref_number.trim()),
        )));
    };
    let amount = i64::try_from(payment.amount_kes).unwrap_or(i64::MAX);
    if !mpesa.settings.c2b_amounts.accepts(amount, price) {
        return Ok(Err((
            C2bRejectCode::InvalidAmount,
            format!("{amount} KES for a plan costing {price} KES"),
        )));
    }
    Ok(Ok(()))
}

/// `POST /pay/cb/c2b/{token}/confirmation`: the money has moved; credit it once.
pub async fn c2b_confirmation(
    State(st): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let c = match c2b_request(&st, &token, "c2b_confirmation", req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if !c.allowed {
        return refuse_source(&st.pool, c.id, "C2B confirmation", c.source_ip).await;
    }
    match process_c2b(&st.pool, c.id, &c.body).await {
        Ok(outcome) => tracing::info!(callback = c.id, outcome, "C2B confirmation"),
        Err(e) => tracing::warn!(callback = c.id, error = %e, "C2B confirmation kept for later"),
    }
    ack()
}

/// Processes a stored C2B confirmation.
pub async fn process_c2b(
    pool: &PgPool,
    callback_id: i64,
    body: &[u8],
) -> Result<String, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let payment = match parse::parse_c2b(body) {
        Ok(p) => p,
        Err(e) => {
            let outcome = format!("unreadable: {e}");
            finish(&mut tx, callback_id, &outcome, None, None).await?;
            tx.commit().await?;
            return Ok(outcome);
        }
    };
    let amount = i64::try_from(payment.amount_kes).unwrap_or(i64::MAX);
    let subscriber = account_owner(&mut *tx, &payment.account_key())
        .await?
        .map(|(id, _)| id);
    let credit = credit_receipt(
        &mut tx,
        &ReceiptPayment {
            receipt: payment.trans_id.trim(),
            amount_kes: amount,
            subscriber_id: subscriber,
            msisdn: Some(&payment.msisdn_opaque),
            bill_ref: Some(&payment.bill_ref_number),
            paid_at: parse_nairobi_time(&payment.trans_time).unwrap_or_else(Utc::now),
            note: None,
        },
    )
    .await?;
    let outcome = credit.outcome();
    finish(
        &mut tx,
        callback_id,
        &outcome,
        None,
        Some(credit.payment_id()),
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// A payment known by its M-Pesa receipt rather than by an STK intent: a C2B confirmation,
/// or a payment recovered through Transaction Status.
#[derive(Clone, Debug)]
pub struct ReceiptPayment<'a> {
    /// M-Pesa's receipt (TransID).
    pub receipt: &'a str,
    /// Whole shillings.
    pub amount_kes: i64,
    /// Whose account (None: nobody matched; recorded as unmatched).
    pub subscriber_id: Option<i64>,
    /// The MSISDN field as sent (opaque).
    pub msisdn: Option<&'a str>,
    /// The account number as typed.
    pub bill_ref: Option<&'a str>,
    /// When M-Pesa says it was paid.
    pub paid_at: DateTime<Utc>,
    /// Where it came from, when not a confirmation.
    pub note: Option<&'a str>,
}

/// What [`credit_receipt`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptCredit {
    /// A new payment, applied (renewed, wallet or unmatched).
    New {
        /// The payment.
        payment_id: i64,
        /// What it did.
        applied: &'static str,
    },
    /// The receipt of an STK payment already credited from an STK Query: filled in.
    ReceiptOfStk(i64),
    /// The receipt was already in the ledger.
    Duplicate(i64),
}

impl ReceiptCredit {
    /// The payment that holds the receipt now.
    pub fn payment_id(self) -> i64 {
        match self {
            Self::New { payment_id, .. }
            | Self::ReceiptOfStk(payment_id)
            | Self::Duplicate(payment_id) => payment_id,
        }
    }

    /// As stored in a callback's outcome.
    pub fn outcome(self) -> String {
        match self {
            Self::New { applied, .. } => format!("credited ({applied})"),
            Self::ReceiptOfStk(pid) => format!("receipt of STK payment {pid} (already credited)"),
            Self::Duplicate(pid) => format!("duplicate of payment {pid}"),
        }
    }
}

/// Credits a payment known by its receipt, once: the receipt's unique constraint makes a
/// repeat (or the C2B copy of an STK payment) a duplicate.
pub async fn credit_receipt(
    conn: &mut PgConnection,
    p: &ReceiptPayment<'_>,
) -> Result<ReceiptCredit, sqlx::Error> {
    // An STK success credited from a query has no receipt yet; this may be the same
    // payment. Give it the receipt instead of crediting twice.
    if let Some(sub) = p.subscriber_id
        && let Some(pid) = attach_to_queried_push(conn, sub, p).await?
    {
        return Ok(ReceiptCredit::ReceiptOfStk(pid));
    }
    let recorded = ledger::record(
        conn,
        &ledger::NewPayment {
            channel: Channel::C2b,
            receipt: Some(p.receipt),
            intent_id: None,
            subscriber_id: p.subscriber_id,
            plan_id: None,
            amount_kes: p.amount_kes,
            msisdn: p.msisdn,
            bill_ref: p.bill_ref,
            paid_at: p.paid_at,
            note: p.note,
        },
    )
    .await?;
    Ok(match recorded {
        Recorded::New {
            payment_id,
            applied,
        } => {
            if let (Some(sub), Some(bill_ref)) = (p.subscriber_id, p.bill_ref)
                && let Some(intent) =
                    stk::claim_for_c2b(conn, payment_id, sub, p.amount_kes, bill_ref, p.msisdn)
                        .await?
            {
                tracing::warn!(
                    intent,
                    payment = payment_id,
                    "a push marked failed or expired was paid: its C2B confirmation came"
                );
            }
            ReceiptCredit::New {
                payment_id,
                applied,
            }
        }
        Recorded::Duplicate { payment_id } => ReceiptCredit::Duplicate(payment_id),
    })
}

/// A receipt-less STK payment (credited from STK Query) this receipt can be the one of:
/// same subscriber and amount, the push's account reference (when the payment names one),
/// paid between the push and the query that found it, from the push's phone as far as the
/// opaque MSISDN tells. Takes the oldest and gives it the receipt. A paybill payment of the
/// same amount that fails any of these is the customer's own and is credited on its own.
async fn attach_to_queried_push(
    conn: &mut PgConnection,
    subscriber: i64,
    p: &ReceiptPayment<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    // Before looking (`ledger::lock_subscriber` says why).
    ledger::lock_subscriber(conn, subscriber).await?;
    let candidates = sqlx::query(
        "SELECT p.id, i.phone FROM payments p JOIN payment_intents i ON i.id = p.intent_id \
          WHERE p.receipt IS NULL AND p.channel = 'stk' AND p.subscriber_id = $1 \
            AND p.amount_kes = $2 \
            AND ($3::text IS NULL OR lower(i.account_reference) = lower(trim($3))) \
            AND p.paid_at > now() - interval '1 day' \
            AND $4 BETWEEN i.created_at - interval '5 seconds' AND p.paid_at + interval '5 seconds' \
            AND NOT EXISTS (SELECT 1 FROM payments WHERE receipt = $5) \
          ORDER BY p.paid_at, p.id FOR UPDATE OF p",
    )
    .bind(subscriber)
    .bind(p.amount_kes)
    .bind(p.bill_ref)
    .bind(p.paid_at)
    .bind(p.receipt)
    .fetch_all(&mut *conn)
    .await?;
    for c in candidates {
        let phone: String = c.try_get("phone")?;
        if p.msisdn
            .is_none_or(|m| ledger::opaque_msisdn_may_be(m, &phone))
        {
            let id: i64 = c.try_get("id")?;
            sqlx::query("UPDATE payments SET receipt = $2 WHERE id = $1")
                .bind(id)
                .bind(p.receipt)
                .execute(&mut *conn)
                .await?;
            return Ok(Some(id));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nairobi_times() {
        let t = parse_nairobi_time("20191219102115").unwrap();
        assert_eq!(t.to_rfc3339(), "2019-12-19T07:21:15+00:00");
        assert!(parse_nairobi_time("2019121910211").is_none());
        assert!(parse_nairobi_time("").is_none());
    }

    #[test]
    fn result_codes_as_stored() {
        assert_eq!(result_code_text(&daraja::ResultCode::Code(1032)), "1032");
        assert_eq!(
            result_code_text(&daraja::ResultCode::Text("SFC_IC0003".into())),
            "SFC_IC0003"
        );
    }
}
