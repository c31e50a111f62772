//! STK Push intents: starting a push, and moving an intent to paid or failed.
//!
//! An intent is written (and commits, taking the phone's one pending slot) before the push is
//! sent, so a callback can never arrive for an intent we do not know; its CallBackURL holds a
//! random token that only this intent has.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use jasiyo_snapshot::voucher::VoucherKey;
use sqlx::types::ipnetwork::IpNetwork;
use sqlx::{PgConnection, PgPool, Row};

use super::ledger::{self, Channel, Recorded};
use super::{Mpesa, callbacks};
use crate::domain::Mac;
use crate::vouchers::{self, BatchError, NewBatch, Origin};

/// Why a push could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad phone or amount.
    #[error("{0}")]
    Invalid(String),
    /// This phone already has a push waiting for the customer.
    #[error("a payment request to {0} is already waiting for the customer to answer")]
    PhoneBusy(String),
    /// Daraja refused or failed (the intent is marked failed).
    #[error("M-Pesa refused the request: {0}")]
    Daraja(daraja::Error),
    /// The voucher could not be made (package not for hotspot, key...).
    #[error(transparent)]
    Voucher(#[from] BatchError),
    /// Database.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What to push.
#[derive(Clone, Debug)]
pub struct Purchase {
    /// The subscriber.
    pub subscriber_id: i64,
    /// Their username (the AccountReference when it fits in 12 characters).
    pub username: String,
    /// The plan bought.
    pub plan_id: i64,
    /// Its price.
    pub amount_kes: i64,
    /// The phone, as typed.
    pub phone: String,
}

/// The AccountReference shown in the prompt: the username if Daraja accepts it, else a
/// reference made from the intent id. Either way the callback is matched by intent, since
/// Daraja does not echo the reference.
fn account_reference(username: &str, intent_id: i64) -> daraja::AccountReference {
    daraja::AccountReference::new(username)
        .or_else(|_| daraja::AccountReference::new(format!("JAS{intent_id}")))
        .expect("JAS + an id is at most 12 characters")
}

/// Writes the intent, sends the push and records Daraja's ids. Returns the intent id.
pub async fn start(pool: &PgPool, mpesa: &Mpesa, p: &Purchase) -> Result<i64, StartError> {
    let (phone, amount) = check(&p.phone, p.amount_kes)?;
    let token = callbacks::new_token();
    let mut tx = pool.begin().await?;
    let (intent_id, reference) = insert_intent(
        &mut tx,
        &IntentRow {
            subscriber_id: p.subscriber_id,
            username: &p.username,
            plan_id: p.plan_id,
            amount_kes: p.amount_kes,
            phone: &phone,
            callback_token: &token,
            voucher: None,
        },
    )
    .await?;
    tx.commit().await?;
    push(pool, mpesa, intent_id, phone, amount, reference, &token).await?;
    Ok(intent_id)
}

/// A voucher to buy with an STK Push: on the hotspot login page, or for a customer at the
/// counter.
#[derive(Clone, Debug)]
pub struct VoucherPurchase {
    /// The package (a plan serving hotspot logins).
    pub plan_id: i64,
    /// The phone, as typed.
    pub phone: String,
    /// The router whose login page sold it.
    pub router_id: Option<i64>,
    /// The buyer's address, as believed.
    pub client_ip: Option<IpAddr>,
    /// The buyer's device, as the router gave it.
    pub mac: Option<Mac>,
}

/// A voucher purchase under way.
#[derive(Clone, Debug)]
pub struct VoucherStarted {
    /// The intent.
    pub intent_id: i64,
    /// The secret the buyer polls with, and the only way to the code.
    pub poll_token: String,
    /// The phone prompted (2547XXXXXXXX).
    pub phone: String,
    /// The price asked.
    pub amount_kes: i64,
}

/// A poll token: 32 random bytes, base64url without padding (43 characters).
pub fn new_poll_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut token = [0u8; 32];
    rand::rng().fill_bytes(&mut token);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

/// Buys a voucher: in one transaction, a portal batch of one voucher, not usable until paid
/// (`vouchers::create_batch`), and the intent whose payer is that voucher; then the push.
/// The ledger makes the voucher usable when the payment comes. Nothing is written if the
/// phone already has a push waiting or the package cannot be sold.
pub async fn start_voucher(
    pool: &PgPool,
    mpesa: &Mpesa,
    key: &VoucherKey,
    p: &VoucherPurchase,
) -> Result<VoucherStarted, StartError> {
    let mut tx = pool.begin().await?;
    let (batch_id, _) = vouchers::create_batch(
        &mut tx,
        key,
        NewBatch {
            plan_id: p.plan_id,
            count: 1,
            prefix: String::new(),
            code_length: PORTAL_CODE_LENGTH,
            valid_until: None,
            note: Some(match (p.router_id, p.mac) {
                (Some(r), Some(mac)) => format!("bought on router {r}'s page by device {mac}"),
                (Some(r), None) => format!("bought on router {r}'s page"),
                (None, _) => "bought through the API".to_owned(),
            }),
            origin: Origin::Portal,
        },
    )
    .await?;
    let voucher = sqlx::query(
        "SELECT s.id, s.username, b.price_kes FROM subscribers s \
           JOIN voucher_batches b ON b.id = s.voucher_batch_id WHERE b.id = $1",
    )
    .bind(batch_id)
    .fetch_one(&mut *tx)
    .await?;
    let amount_kes: i64 = voucher.try_get("price_kes")?;
    // An error from here on drops the transaction: no batch is left behind.
    let (phone, amount) = check(&p.phone, amount_kes)?;
    let token = callbacks::new_token();
    let poll_token = new_poll_token();
    let username: String = voucher.try_get("username")?;
    let (intent_id, reference) = insert_intent(
        &mut tx,
        &IntentRow {
            subscriber_id: voucher.try_get("id")?,
            username: &username,
            plan_id: p.plan_id,
            amount_kes,
            phone: &phone,
            callback_token: &token,
            voucher: Some((p.router_id, p.client_ip, &poll_token)),
        },
    )
    .await?;
    tx.commit().await?;
    let phone_text = phone.as_str().to_owned();
    push(pool, mpesa, intent_id, phone, amount, reference, &token).await?;
    Ok(VoucherStarted {
        intent_id,
        poll_token,
        phone: phone_text,
        amount_kes,
    })
}

/// Symbols of a code bought on the login page (the customer never types it; the page
/// logs in with it, and it is long enough to type from the screen if that fails).
const PORTAL_CODE_LENGTH: usize = 10;

/// The phone, normalised, and the price as M-Pesa takes it.
fn check(phone: &str, amount_kes: i64) -> Result<(daraja::Msisdn, u32), StartError> {
    let phone: daraja::Msisdn = phone
        .parse()
        .map_err(|e: daraja::ValidationError| StartError::Invalid(e.0))?;
    let amount = u32::try_from(amount_kes)
        .ok()
        .filter(|a| *a >= 1)
        .ok_or_else(|| {
            StartError::Invalid(format!(
                "the price {amount_kes} KES cannot be paid by M-Pesa (whole shillings, at least 1)"
            ))
        })?;
    Ok((phone, amount))
}

/// An intent to write.
struct IntentRow<'a> {
    subscriber_id: i64,
    username: &'a str,
    plan_id: i64,
    amount_kes: i64,
    phone: &'a daraja::Msisdn,
    callback_token: &'a str,
    /// A voucher purchase: the router, the buyer's address, the poll token.
    voucher: Option<(Option<i64>, Option<IpAddr>, &'a str)>,
}

/// Writes a pending intent (taking the phone's one pending slot) and its AccountReference,
/// in the caller's transaction.
async fn insert_intent(
    conn: &mut PgConnection,
    i: &IntentRow<'_>,
) -> Result<(i64, daraja::AccountReference), StartError> {
    let (router_id, client_ip, poll_token) = match i.voucher {
        Some((router, ip, token)) => (router, ip.map(IpNetwork::from), Some(token)),
        None => (None, None, None),
    };
    let intent_id: i64 = match sqlx::query_scalar(
        "INSERT INTO payment_intents (subscriber_id, plan_id, phone, amount_kes, account_reference, \
                                      callback_token, purpose, router_id, client_ip, poll_token) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(i.subscriber_id)
    .bind(i.plan_id)
    .bind(i.phone.as_str())
    .bind(i.amount_kes)
    .bind(i.callback_token)
    .bind(if i.voucher.is_some() { "voucher" } else { "subscriber" })
    .bind(router_id)
    .bind(client_ip)
    .bind(poll_token)
    .fetch_one(&mut *conn)
    .await
    {
        Ok(id) => id,
        Err(sqlx::Error::Database(e))
            if e.constraint() == Some("payment_intents_one_pending_per_phone_idx") =>
        {
            return Err(StartError::PhoneBusy(i.phone.as_str().to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    let reference = account_reference(i.username, intent_id);
    sqlx::query("UPDATE payment_intents SET account_reference = $2 WHERE id = $1")
        .bind(intent_id)
        .bind(reference.as_str())
        .execute(&mut *conn)
        .await?;
    Ok((intent_id, reference))
}

/// Sends the push of a committed intent and records Daraja's ids; a refusal marks the
/// intent failed.
async fn push(
    pool: &PgPool,
    mpesa: &Mpesa,
    intent_id: i64,
    phone: daraja::Msisdn,
    amount: u32,
    reference: daraja::AccountReference,
    token: &str,
) -> Result<(), StartError> {
    let request = daraja::StkPushRequest {
        phone,
        amount_kes: amount,
        account_reference: reference,
        description: daraja::TransactionDesc::new("Internet").expect("a short description"),
        callback_url: mpesa.stk_callback_url(token),
    };
    match mpesa.client.stk_push(&request).await {
        Ok(accepted) => {
            let s = &mpesa.settings;
            // COALESCE: a fast callback may have filled them in already.
            sqlx::query(
                "UPDATE payment_intents SET \
                    merchant_request_id = COALESCE(merchant_request_id, $2), \
                    checkout_request_id = COALESCE(checkout_request_id, $3), \
                    next_query_at = now() + make_interval(secs => $4), \
                    query_deadline = now() + make_interval(secs => $5), updated_at = now() \
                  WHERE id = $1",
            )
            .bind(intent_id)
            .bind(&accepted.merchant_request_id)
            .bind(&accepted.checkout_request_id)
            .bind(s.query_after.as_secs_f64())
            .bind(s.query_deadline.as_secs_f64())
            .execute(pool)
            .await?;
            tracing::info!(
                intent = intent_id,
                checkout_request_id = %accepted.checkout_request_id,
                amount_kes = amount,
                "STK push accepted"
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(intent = intent_id, error = %e, "STK push refused");
            sqlx::query(
                "UPDATE payment_intents SET status = 'failed', result_desc = $2, updated_at = now() \
                  WHERE id = $1 AND status = 'pending'",
            )
            .bind(intent_id)
            .bind(format!("push not sent: {e}"))
            .execute(pool)
            .await?;
            Err(StartError::Daraja(e))
        }
    }
}

/// A pending (or failed/expired) intent, locked.
#[derive(Clone, Debug)]
pub struct Intent {
    /// Id.
    pub id: i64,
    /// Subscriber.
    pub subscriber_id: i64,
    /// Plan bought.
    pub plan_id: i64,
    /// Price asked.
    pub amount_kes: i64,
    /// Phone pushed to.
    pub phone: String,
    /// pending, paid, failed, expired_unknown.
    pub status: String,
    /// From Daraja's reply (None if the push reply never came back).
    pub checkout_request_id: Option<String>,
    /// The AccountReference the push carried (its C2B copy's BillRefNumber).
    pub account_reference: String,
    /// When the push was started: its payment cannot be older.
    pub created_at: DateTime<Utc>,
}

/// The columns [`intent_from_row`] reads.
const INTENT_COLUMNS: &str = "id, subscriber_id, plan_id, amount_kes, phone, status, \
                              checkout_request_id, account_reference, created_at";

fn intent_from_row(r: &sqlx::postgres::PgRow) -> Result<Intent, sqlx::Error> {
    Ok(Intent {
        id: r.try_get("id")?,
        subscriber_id: r.try_get("subscriber_id")?,
        plan_id: r.try_get("plan_id")?,
        amount_kes: r.try_get("amount_kes")?,
        phone: r.try_get("phone")?,
        status: r.try_get("status")?,
        checkout_request_id: r.try_get("checkout_request_id")?,
        account_reference: r.try_get("account_reference")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Locks an intent by its callback token or its id.
pub async fn lock(
    conn: &mut PgConnection,
    token: Option<&str>,
    id: Option<i64>,
) -> Result<Option<Intent>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {INTENT_COLUMNS} FROM payment_intents \
          WHERE callback_token = $1 OR id = $2 FOR UPDATE"
    ))
    .bind(token)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(intent_from_row)
    .transpose()
}

/// Locks the intent at callback URL `token` for its callback, which names
/// `checkout_request_id`: Daraja's ids are filled in if the push reply never stored them,
/// in the same statement. The intent's CheckoutRequestID, as returned, differs from the
/// callback's only if the callback is not this intent's (and then nothing was filled in).
pub async fn lock_for_callback(
    conn: &mut PgConnection,
    token: &str,
    checkout_request_id: &str,
    merchant_request_id: &str,
) -> Result<Option<Intent>, sqlx::Error> {
    // SET expressions see the row as it was, so the CASE tests the stored id.
    sqlx::query(&format!(
        "UPDATE payment_intents SET \
            merchant_request_id = CASE WHEN checkout_request_id IS NULL OR checkout_request_id = $2 \
                                       THEN COALESCE(merchant_request_id, $3) \
                                       ELSE merchant_request_id END, \
            checkout_request_id = COALESCE(checkout_request_id, $2) \
          WHERE callback_token = $1 RETURNING {INTENT_COLUMNS}"
    ))
    .bind(token)
    .bind(checkout_request_id)
    .bind(merchant_request_id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(intent_from_row)
    .transpose()
}

/// Locks the intents at these callback URLs, in id order; with the token of each.
pub async fn lock_by_tokens(
    conn: &mut PgConnection,
    tokens: &[&str],
) -> Result<Vec<(String, Intent)>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT callback_token, {INTENT_COLUMNS} FROM payment_intents \
          WHERE callback_token = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(tokens)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("callback_token")?, intent_from_row(r)?)))
    .collect()
}

/// A success callback for a pending intent, as [`mark_paid_many`] takes it.
#[derive(Debug)]
pub struct PaidCallback<'a> {
    /// The intent, locked.
    pub intent: &'a Intent,
    /// M-Pesa's receipt.
    pub receipt: &'a str,
    /// Whole shillings paid.
    pub amount_kes: i64,
    /// When M-Pesa says it was paid.
    pub paid_at: DateTime<Utc>,
    /// ResultCode and ResultDesc.
    pub result: (&'a str, &'a str),
}

/// [`mark_paid`] for a burst of success callbacks, each for its own pending intent and
/// subscriber, in a few statements: those [`ledger::record_plain_renewals`] can do are
/// credited and their intents marked paid. Returns each one's payment, or None for one to
/// go through [`mark_paid`] (nothing of it was written).
pub async fn mark_paid_many(
    conn: &mut PgConnection,
    paid: &[PaidCallback<'_>],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let payments: Vec<ledger::NewPayment<'_>> = paid
        .iter()
        .map(|p| payment(p.intent, Some(p.receipt), p.amount_kes, p.paid_at))
        .collect();
    let done = ledger::record_plain_renewals(conn, &payments).await?;
    if done.iter().all(Option::is_none) {
        return Ok(done);
    }
    let credited: Vec<&PaidCallback<'_>> = paid
        .iter()
        .zip(&done)
        .filter(|(_, d)| d.is_some())
        .map(|(p, _)| p)
        .collect();
    set_paid_many(
        conn,
        &credited.iter().map(|p| p.intent.id).collect::<Vec<_>>(),
        &credited.iter().map(|p| p.result.0).collect::<Vec<_>>(),
        &credited.iter().map(|p| p.result.1).collect::<Vec<_>>(),
    )
    .await?;
    Ok(done)
}

/// The intent was paid (by callback with a receipt, or by a query without one): credit it
/// once and mark it paid. A paid intent stays paid; a failed or expired one becomes paid
/// (a late success is still money received).
pub async fn mark_paid(
    conn: &mut PgConnection,
    intent: &Intent,
    receipt: Option<&str>,
    amount_kes: i64,
    paid_at: DateTime<Utc>,
    result: (&str, &str),
) -> Result<(Recorded, String), sqlx::Error> {
    // A success known only from STK Query has no receipt; the same payment may already be
    // in the ledger from its C2B confirmation (Safaricom sends one for STK payments too).
    // Claim that one instead of crediting twice.
    if receipt.is_none()
        && let Some(payment_id) = claim_c2b_copy(conn, intent, amount_kes).await?
    {
        set_paid(conn, intent, result).await?;
        return Ok((
            Recorded::Duplicate { payment_id },
            format!("already credited by its C2B confirmation (payment {payment_id})"),
        ));
    }
    let recorded = ledger::record(conn, &payment(intent, receipt, amount_kes, paid_at)).await?;
    let (recorded, outcome) = match recorded {
        Recorded::New { applied, .. } => {
            let outcome = format!("credited ({applied})");
            (recorded, outcome)
        }
        Recorded::Duplicate { payment_id } => match receipt {
            Some(receipt) => {
                reconcile_receipt(conn, intent, receipt, amount_kes, paid_at, payment_id).await?
            }
            None => (
                recorded,
                format!("already credited as payment {payment_id}"),
            ),
        },
    };
    if amount_kes != intent.amount_kes {
        tracing::warn!(
            intent = intent.id,
            paid = amount_kes,
            price = intent.amount_kes,
            "STK payment differs from the price: applied through the wallet"
        );
    }
    set_paid(conn, intent, result).await?;
    Ok((recorded, outcome))
}

/// The ledger entry of an STK payment for `intent`.
fn payment<'a>(
    intent: &'a Intent,
    receipt: Option<&'a str>,
    amount_kes: i64,
    paid_at: DateTime<Utc>,
) -> ledger::NewPayment<'a> {
    ledger::NewPayment {
        channel: Channel::Stk,
        receipt,
        intent_id: Some(intent.id),
        subscriber_id: Some(intent.subscriber_id),
        plan_id: Some(intent.plan_id),
        amount_kes,
        msisdn: Some(&intent.phone),
        bill_ref: None,
        paid_at,
        note: None,
    }
}

/// The C2B payment already in the ledger that can be this push's C2B copy (locked): same
/// subscriber, amount and account reference, not yet any push's, paid after the push was
/// started, from the push's phone as far as the opaque MSISDN tells. A paybill payment that
/// fails any of these is the customer's own.
async fn c2b_copy_of(
    conn: &mut PgConnection,
    intent: &Intent,
    amount_kes: i64,
) -> Result<Option<i64>, sqlx::Error> {
    // Before looking (`ledger::lock_subscriber` says why).
    ledger::lock_subscriber(conn, intent.subscriber_id).await?;
    let candidates = sqlx::query(
        "SELECT id, msisdn FROM payments \
          WHERE intent_id IS NULL AND channel = 'c2b' AND subscriber_id = $2 \
            AND amount_kes = $3 AND lower(trim(bill_ref)) = lower($4) \
            AND paid_at >= $5 - make_interval(secs => $6) \
            AND NOT EXISTS (SELECT 1 FROM payments WHERE intent_id = $1) \
          ORDER BY paid_at, id FOR UPDATE",
    )
    .bind(intent.id)
    .bind(intent.subscriber_id)
    .bind(amount_kes)
    .bind(&intent.account_reference)
    .bind(intent.created_at)
    .bind(CLOCK_SLACK_SECS)
    .fetch_all(&mut *conn)
    .await?;
    for c in candidates {
        let msisdn: Option<String> = c.try_get("msisdn")?;
        if msisdn.is_none_or(|m| ledger::opaque_msisdn_may_be(&m, &intent.phone)) {
            return Ok(Some(c.try_get("id")?));
        }
    }
    Ok(None)
}

/// A success known only from STK Query: the C2B confirmation of the same payment may be in
/// the ledger already ([`c2b_copy_of`]); take it for the intent instead of crediting twice.
async fn claim_c2b_copy(
    conn: &mut PgConnection,
    intent: &Intent,
    amount_kes: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let Some(id) = c2b_copy_of(conn, intent, amount_kes).await? else {
        return Ok(None);
    };
    link(conn, id, intent.id).await?;
    Ok(Some(id))
}

/// How far M-Pesa's clock (TransTime, whole seconds) may be behind ours.
const CLOCK_SLACK_SECS: f64 = 5.0;

/// The callback brought `receipt` for an intent that is already in the ledger, or a
/// receipt that is. Before the receipt was known, the intent and the C2B confirmations were
/// matched by subscriber, amount and phone; the receipt settles it:
/// * the intent's payment has no receipt yet: it is this one;
/// * the receipt's payment (its C2B copy) has no intent yet: it is this push's;
/// * the intent's payment carries another receipt: that was a separate payment of the same
///   amount taken for this one. It is given back its own identity (a C2B payment, as
///   credited), and this receipt is linked or credited for the intent.
async fn reconcile_receipt(
    conn: &mut PgConnection,
    intent: &Intent,
    receipt: &str,
    amount_kes: i64,
    paid_at: DateTime<Utc>,
    duplicate_of: i64,
) -> Result<(Recorded, String), sqlx::Error> {
    let by_intent: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, receipt FROM payments WHERE intent_id = $1 FOR UPDATE")
            .bind(intent.id)
            .fetch_optional(&mut *conn)
            .await?;
    let by_receipt: Option<(i64, Option<i64>)> =
        sqlx::query_as("SELECT id, intent_id FROM payments WHERE receipt = $1 FOR UPDATE")
            .bind(receipt)
            .fetch_optional(&mut *conn)
            .await?;
    let same = |id: i64| (Recorded::Duplicate { payment_id: id }, None::<&str>);
    let (recorded, note) = match (by_intent, by_receipt) {
        (Some((a, _)), Some((b, _))) if a == b => same(a),
        (Some((a, None)), None) => {
            sqlx::query("UPDATE payments SET receipt = $2 WHERE id = $1")
                .bind(a)
                .bind(receipt)
                .execute(&mut *conn)
                .await?;
            (
                Recorded::Duplicate { payment_id: a },
                Some("receipt filled in"),
            )
        }
        (None, Some((b, None))) => link(conn, b, intent.id).await?,
        (Some((a, Some(other))), by_receipt @ (None | Some((_, None)))) => {
            tracing::warn!(
                intent = intent.id,
                payment = a,
                other_receipt = %other,
                receipt,
                "a payment of the same amount was taken for this push before its receipt was \
                 known; it stays credited on its own"
            );
            sqlx::query("UPDATE payments SET intent_id = NULL, channel = 'c2b' WHERE id = $1")
                .bind(a)
                .execute(&mut *conn)
                .await?;
            match by_receipt {
                Some((b, _)) => link(conn, b, intent.id).await?,
                None => {
                    let recorded =
                        ledger::record(conn, &payment(intent, Some(receipt), amount_kes, paid_at))
                            .await?;
                    let outcome = match &recorded {
                        Recorded::New { applied, .. } => format!("credited ({applied})"),
                        Recorded::Duplicate { payment_id } => {
                            format!("already credited as payment {payment_id}")
                        }
                    };
                    return Ok((recorded, outcome));
                }
            }
        }
        (by_intent, by_receipt) => {
            // Both credited separately, or the receipt belongs to another push: nothing
            // safe to change automatically.
            tracing::error!(
                intent = intent.id,
                receipt,
                ?by_intent,
                ?by_receipt,
                "STK receipt conflicts with the ledger; left for an operator"
            );
            same(duplicate_of)
        }
    };
    let payment_id = match recorded {
        Recorded::New { payment_id, .. } | Recorded::Duplicate { payment_id } => payment_id,
    };
    let outcome = match note {
        Some(note) => format!("already credited as payment {payment_id}; {note}"),
        None => format!("already credited as payment {payment_id}"),
    };
    Ok((recorded, outcome))
}

/// Makes payment `id` (already credited) the one of `intent_id`.
async fn link(
    conn: &mut PgConnection,
    id: i64,
    intent_id: i64,
) -> Result<(Recorded, Option<&'static str>), sqlx::Error> {
    sqlx::query("UPDATE payments SET intent_id = $2 WHERE id = $1")
        .bind(id)
        .bind(intent_id)
        .execute(&mut *conn)
        .await?;
    Ok((Recorded::Duplicate { payment_id: id }, Some("linked")))
}

async fn set_paid(
    conn: &mut PgConnection,
    intent: &Intent,
    result: (&str, &str),
) -> Result<(), sqlx::Error> {
    set_paid_many(conn, &[intent.id], &[result.0], &[result.1]).await
}

/// Marks intents paid with their result codes and texts.
async fn set_paid_many(
    conn: &mut PgConnection,
    ids: &[i64],
    codes: &[&str],
    descs: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_intents i SET status = 'paid', result_code = t.code, \
                result_desc = t.descr, next_query_at = NULL, updated_at = now() \
           FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS t(id, code, descr) \
          WHERE i.id = t.id",
    )
    .bind(ids)
    .bind(codes)
    .bind(descs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether the C2B copy of this push's payment (Safaricom sends one for STK payments to a
/// paybill: same amount, BillRefNumber = the AccountReference) is already in the ledger,
/// unclaimed. STK Query can then answer "failed" only wrongly (the sandbox answers 1032 for
/// paid pushes), so the push is paid.
pub async fn c2b_copy_exists(
    conn: &mut PgConnection,
    intent: &Intent,
) -> Result<bool, sqlx::Error> {
    // The same test that mark_paid then uses to take the copy: a copy seen here is the one
    // claimed there, never a new credit.
    Ok(c2b_copy_of(conn, intent, intent.amount_kes)
        .await?
        .is_some())
}

/// A C2B payment just recorded may be the copy of a push that was marked failed (STK
/// Query's word, which the sandbox gets wrong) or expired unanswered: same subscriber,
/// amount and AccountReference, no payment yet, and a payer who can be the push's phone (the
/// opaque MSISDN). That push was paid after all: mark it paid
/// by this payment. Returns the intent. A push whose failure came in its own callback (at
/// its secret URL, for its CheckoutRequestID) is not claimed: the customer cancelled it,
/// and a paybill payment of the same amount afterwards is a payment of its own.
pub async fn claim_for_c2b(
    conn: &mut PgConnection,
    payment_id: i64,
    subscriber_id: i64,
    amount_kes: i64,
    bill_ref: &str,
    msisdn: Option<&str>,
) -> Result<Option<i64>, sqlx::Error> {
    // SKIP LOCKED: an intent locked now is being paid by its own callback, which will find
    // this payment by its receipt and link it.
    let candidates: Vec<(i64, String)> = sqlx::query_as(
        "SELECT i.id, i.phone FROM payment_intents i \
          WHERE i.subscriber_id = $1 AND i.amount_kes = $2 \
            AND lower(i.account_reference) = lower($3) AND i.status IN ('failed', 'expired_unknown') \
            AND i.created_at > now() - interval '1 day' \
            AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.intent_id = i.id) \
            AND NOT EXISTS (SELECT 1 FROM payment_callbacks c \
                             WHERE c.intent_id = i.id AND c.kind = 'stk' \
                               AND c.outcome LIKE 'failed:%') \
          ORDER BY i.created_at DESC FOR UPDATE SKIP LOCKED",
    )
    .bind(subscriber_id)
    .bind(amount_kes)
    .bind(bill_ref.trim())
    .fetch_all(&mut *conn)
    .await?;
    // A payment from another phone is the customer's own, not the push's copy.
    let Some((intent, _)) = candidates
        .into_iter()
        .find(|(_, phone)| msisdn.is_none_or(|m| ledger::opaque_msisdn_may_be(m, phone)))
    else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE payment_intents SET status = 'paid', next_query_at = NULL, updated_at = now(), \
                result_desc = 'paid: its C2B confirmation arrived after ' || coalesce(result_code, 'no result') \
          WHERE id = $1",
    )
    .bind(intent)
    .execute(&mut *conn)
    .await?;
    link(conn, payment_id, intent).await?;
    Ok(Some(intent))
}

/// The push failed (cancelled, timed out, wrong PIN...). Only a pending intent changes:
/// a failure never undoes a payment.
pub async fn mark_failed(
    conn: &mut PgConnection,
    intent: &Intent,
    result: (&str, &str),
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE payment_intents SET status = 'failed', result_code = $2, result_desc = $3, \
                next_query_at = NULL, updated_at = now() \
          WHERE id = $1 AND status = 'pending'",
    )
    .bind(intent.id)
    .bind(result.0)
    .bind(result.1)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_reference_is_the_username_when_it_fits() {
        assert_eq!(account_reference("alice01", 7).as_str(), "alice01");
        assert_eq!(
            account_reference("a-very-long-username", 123).as_str(),
            "JAS123"
        );
    }
}
