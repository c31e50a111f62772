//! Recovering a payment the daemon never heard about: a customer paid the paybill, the C2B
//! confirmation was lost (Daraja documents no retry), and the customer shows the operator
//! the receipt from the M-Pesa SMS. `POST /api/v1/payments/recover` asks Transaction Status
//! about that receipt; M-Pesa answers later at this request's own ResultURL (or gives up at
//! its QueueTimeOutURL), `/pay/cb/ts/{token}/result|timeout`.
//!
//! * The answer is believed only at the unguessable URL of an open request, for that
//!   request's OriginatorConversationID and receipt, when the transaction is Completed and
//!   was paid to this business's shortcode. Its body is stored before it is processed.
//! * The result carries no account number (mpesa-daraja.md §2.8), so the operator names the
//!   subscriber; without one the payment is recorded unmatched, for an operator to assign.
//! * The money goes through the C2B path ([`credit_receipt`]): the receipt's unique
//!   constraint means a receipt is credited once, whether the lost confirmation turns up
//!   later, the receipt is recovered twice, or it belongs to an STK payment an STK Query
//!   already credited (then it only fills in the receipt).
//!
//! Nothing is recovered automatically: the daemon cannot ask about a receipt it has never
//! seen, and the only payments it holds without a receipt (STK successes found by STK Query)
//! get theirs from the C2B confirmation or from a recovery the operator starts. The
//! reconciler only closes requests M-Pesa never answered, so the receipt can be asked about
//! again, and processes stored answers that could not be processed at the time.

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use daraja::callbacks::{TransactionStatusResult, parse_transaction_status_result};
use sqlx::{PgPool, Row};

use super::Mpesa;
use super::callbacks::{
    self, ReceiptCredit, ReceiptPayment, credit_receipt, parse_nairobi_time, result_code_text,
};
use crate::api::AppState;

/// `payment_callbacks.kind` of an answer at the ResultURL.
pub const RESULT: &str = "status_result";
/// `payment_callbacks.kind` of an answer at the QueueTimeOutURL.
pub const TIMEOUT: &str = "status_timeout";

/// Why a recovery could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Not a receipt number.
    #[error("{0}")]
    Invalid(String),
    /// No Transaction Status operator configured.
    #[error(
        "recovery by receipt is not configured: set JASIYO_MPESA_INITIATOR_NAME and \
         JASIYO_MPESA_SECURITY_CREDENTIAL (an API operator with the Transaction Status role)"
    )]
    NotConfigured,
    /// The ledger has this receipt already.
    #[error("receipt {receipt} is already in the ledger: payment {payment_id}")]
    AlreadyCredited {
        /// The receipt.
        receipt: String,
        /// The payment holding it.
        payment_id: i64,
    },
    /// A request for this receipt is still open.
    #[error("recovery {0} of this receipt is still waiting for M-Pesa")]
    InProgress(i64),
    /// Daraja refused the request (the recovery is marked failed).
    #[error("M-Pesa refused the Transaction Status request: {0}")]
    Daraja(daraja::Error),
    /// Database.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A receipt as the customer reads it out: trimmed, upper-cased, 6 to 20 letters and
/// digits (what the ledger accepts).
pub fn normalise_receipt(text: &str) -> Result<String, RecoverError> {
    let r = text.trim().to_ascii_uppercase();
    if (6..=20).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(r)
    } else {
        Err(RecoverError::Invalid(format!(
            "{:?} is not an M-Pesa receipt number (6 to 20 letters and digits, e.g. NLJ7RT61SV)",
            text.trim()
        )))
    }
}

/// Writes the request row, asks Transaction Status and records M-Pesa's ids. Returns the
/// recovery id; the answer arrives later.
pub async fn start(
    pool: &PgPool,
    mpesa: &Mpesa,
    receipt: &str,
    subscriber_id: Option<i64>,
) -> Result<i64, RecoverError> {
    if !mpesa.settings.recovery_enabled() {
        return Err(RecoverError::NotConfigured);
    }
    let receipt = normalise_receipt(receipt)?;
    let credited: Option<i64> = sqlx::query_scalar("SELECT id FROM payments WHERE receipt = $1")
        .bind(&receipt)
        .fetch_optional(pool)
        .await?;
    if let Some(payment_id) = credited {
        return Err(RecoverError::AlreadyCredited {
            receipt,
            payment_id,
        });
    }
    let token = callbacks::new_token();
    // Committed before the request, so an answer never finds an unknown URL.
    let id: i64 = match sqlx::query_scalar(
        "INSERT INTO payment_recoveries (receipt, subscriber_id, result_token) \
         VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(&receipt)
    .bind(subscriber_id)
    .bind(&token)
    .fetch_one(pool)
    .await
    {
        Ok(id) => id,
        Err(sqlx::Error::Database(e))
            if e.constraint() == Some("payment_recoveries_one_open_per_receipt_idx") =>
        {
            let open: i64 = sqlx::query_scalar(
                "SELECT id FROM payment_recoveries \
                  WHERE receipt = $1 AND status IN ('requesting', 'pending')",
            )
            .bind(&receipt)
            .fetch_optional(pool)
            .await?
            .unwrap_or_default();
            return Err(RecoverError::InProgress(open));
        }
        Err(e) => return Err(e.into()),
    };
    let (result_url, timeout_url) = mpesa.status_urls(&token);
    match mpesa
        .client
        .transaction_status(&receipt, &result_url, &timeout_url)
        .await
    {
        Ok(accepted) => {
            // The answer may have been processed already: only fill in what is missing.
            sqlx::query(
                "UPDATE payment_recoveries SET \
                    status = CASE WHEN status = 'requesting' THEN 'pending' ELSE status END, \
                    conversation_id = COALESCE(conversation_id, NULLIF($2, '')), \
                    originator_conversation_id = COALESCE(originator_conversation_id, NULLIF($3, '')), \
                    updated_at = now() \
                  WHERE id = $1",
            )
            .bind(id)
            .bind(&accepted.conversation_id)
            .bind(&accepted.originator_conversation_id)
            .execute(pool)
            .await?;
            tracing::info!(
                recovery = id,
                receipt,
                originator_conversation_id = %accepted.originator_conversation_id,
                "Transaction Status request accepted"
            );
            Ok(id)
        }
        Err(e) => {
            tracing::warn!(recovery = id, receipt, error = %e, "Transaction Status request refused");
            sqlx::query(
                "UPDATE payment_recoveries SET status = 'failed', result_desc = $2, updated_at = now() \
                  WHERE id = $1 AND status = 'requesting'",
            )
            .bind(id)
            .bind(format!("request not sent: {e}"))
            .execute(pool)
            .await?;
            Err(RecoverError::Daraja(e))
        }
    }
}

/// What a Transaction Status result means for the receipt asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The money was received: credit it.
    Paid {
        /// Whole shillings.
        amount_kes: i64,
        /// FinalisedTime (or InitiatedTime), `YYYYMMDDHHmmss` Nairobi time.
        time: Option<String>,
        /// The payer's number from DebitPartyName ("2547... - NAME"), without the name.
        payer: Option<String>,
    },
    /// M-Pesa answered, and it is not a payment to credit (unknown receipt, not completed,
    /// wrong operator...).
    NotPaid {
        /// ResultCode (or the transaction's status).
        code: String,
        /// Why.
        desc: String,
    },
    /// Not an answer to this request: credit nothing, change nothing.
    Refused(String),
}

/// Judges a result for the request that asked about `receipt` and was given
/// `expected_ocid` (None: the synchronous reply is not stored yet). `shortcodes` are the
/// numbers money to this business is paid to.
pub fn judge(
    receipt: &str,
    expected_ocid: Option<&str>,
    shortcodes: &[&str],
    r: &TransactionStatusResult,
) -> Verdict {
    if let Some(want) = expected_ocid
        && want != r.originator_conversation_id
    {
        return Verdict::Refused(format!(
            "OriginatorConversationID {:?} is not this request's",
            r.originator_conversation_id
        ));
    }
    if !r.result_code.is_success() {
        return Verdict::NotPaid {
            code: result_code_text(&r.result_code),
            desc: r.result_desc.clone(),
        };
    }
    if !r.is_completed() {
        return Verdict::NotPaid {
            code: result_code_text(&r.result_code),
            desc: format!(
                "transaction status {:?}, not Completed",
                r.transaction_status.as_deref().unwrap_or("(none)")
            ),
        };
    }
    if let Some(got) = &r.receipt
        && !got.eq_ignore_ascii_case(receipt)
    {
        return Verdict::Refused(format!("ReceiptNo {got:?} is not {receipt}"));
    }
    let Some(amount) = r
        .amount_kes
        .and_then(|a| i64::try_from(a).ok())
        .filter(|a| *a >= 1)
    else {
        return Verdict::Refused("a completed transaction without an Amount".into());
    };
    let param = |key: &str| {
        r.parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_deref())
    };
    // "600000 - Business name": money paid to someone else is not ours to credit.
    if let Some(credit_party) = param("CreditPartyName") {
        let number = credit_party.split(" - ").next().unwrap_or("").trim();
        if !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && !shortcodes.contains(&number)
        {
            return Verdict::Refused(format!("paid to {number}, not to this business"));
        }
    }
    Verdict::Paid {
        amount_kes: amount,
        time: r
            .finalised_time
            .clone()
            .or_else(|| r.initiated_time.clone()),
        payer: r
            .debit_party_name
            .as_deref()
            .map(|d| d.split(" - ").next().unwrap_or(d).trim().to_owned())
            .filter(|p| !p.is_empty()),
    }
}

/// `POST /pay/cb/ts/{token}/result`.
pub async fn result(
    State(st): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    answer(st, token, req, RESULT).await
}

/// `POST /pay/cb/ts/{token}/timeout`.
pub async fn timeout(
    State(st): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    answer(st, token, req, TIMEOUT).await
}

async fn answer(st: AppState, token: String, req: Request, kind: &'static str) -> Response {
    let Some(mpesa) = st.mpesa.as_ref() else {
        return callbacks::not_found();
    };
    let (peer, xff, body) = match callbacks::read(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !callbacks::is_token(&token) {
        return callbacks::not_found();
    }
    let (source_ip, allowed) = callbacks::source(mpesa, peer, xff.as_deref());
    let id = match callbacks::store(&st.pool, kind, source_ip, Some(&token), &body).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, kind, "could not store a Transaction Status answer");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    if !allowed {
        return callbacks::refuse_source(&st.pool, id, "Transaction Status answer", source_ip)
            .await;
    }
    match process(&st.pool, mpesa, id, kind, &token, &body).await {
        Ok(Some(outcome)) => {
            tracing::info!(callback = id, kind, outcome, "Transaction Status answer");
            callbacks::ack()
        }
        Ok(None) => {
            tracing::warn!(
                callback = id,
                kind,
                "Transaction Status answer at a URL no request has"
            );
            callbacks::not_found()
        }
        Err(e) => {
            tracing::warn!(callback = id, error = %e, "Transaction Status answer kept for later");
            callbacks::ack()
        }
    }
}

/// Processes a stored answer. `None`: no request has this token (nothing changed; the row
/// records it).
pub async fn process(
    pool: &PgPool,
    mpesa: &Mpesa,
    callback_id: i64,
    kind: &str,
    token: &str,
    body: &[u8],
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT id, receipt, subscriber_id, status, originator_conversation_id \
           FROM payment_recoveries WHERE result_token = $1 FOR UPDATE",
    )
    .bind(token)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        callbacks::finish(
            &mut tx,
            callback_id,
            "refused: no recovery at this URL",
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    };
    let id: i64 = row.try_get("id")?;
    let receipt: String = row.try_get("receipt")?;
    let subscriber_id: Option<i64> = row.try_get("subscriber_id")?;
    let status: String = row.try_get("status")?;
    let expected: Option<String> = row.try_get("originator_conversation_id")?;
    sqlx::query("UPDATE payment_callbacks SET recovery_id = $2 WHERE id = $1")
        .bind(callback_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let parsed = parse_transaction_status_result(body);
    let mut payment_id = None;
    let outcome = if matches!(status.as_str(), "credited" | "already_credited") {
        format!("ignored: recovery {id} is already {status}")
    } else if kind == TIMEOUT {
        match parsed.ok().map(|r| r.originator_conversation_id) {
            Some(got) if expected.as_deref().is_some_and(|want| want != got) => {
                format!("refused: OriginatorConversationID {got:?} is not this request's")
            }
            _ if matches!(status.as_str(), "requesting" | "pending") => {
                close(
                    &mut tx,
                    id,
                    "timed_out",
                    None,
                    "M-Pesa gave up (QueueTimeOutURL)",
                )
                .await?;
                "timed out: M-Pesa gave up; ask again".to_owned()
            }
            _ => format!("ignored: timeout for a recovery already {status}"),
        }
    } else {
        match parsed {
            Err(e) => format!("unreadable: {e}"),
            Ok(r) => {
                let s = &mpesa.settings.shortcode;
                let ours = [s.business_shortcode(), s.party_b()];
                match judge(&receipt, expected.as_deref(), &ours, &r) {
                    Verdict::Refused(why) => format!("refused: {why}"),
                    Verdict::NotPaid { code, desc } => {
                        remember_ocid(&mut tx, id, &r.originator_conversation_id).await?;
                        close(&mut tx, id, "failed", Some(&code), &desc).await?;
                        format!("not credited: {code} {desc}")
                    }
                    Verdict::Paid {
                        amount_kes,
                        time,
                        payer,
                    } => {
                        remember_ocid(&mut tx, id, &r.originator_conversation_id).await?;
                        let note = format!("recovered by Transaction Status (recovery {id})");
                        let credit = credit_receipt(
                            &mut tx,
                            &ReceiptPayment {
                                receipt: &receipt,
                                amount_kes,
                                subscriber_id,
                                msisdn: payer.as_deref(),
                                bill_ref: None,
                                paid_at: time
                                    .as_deref()
                                    .and_then(parse_nairobi_time)
                                    .unwrap_or_else(Utc::now),
                                note: Some(&note),
                            },
                        )
                        .await?;
                        let new_status = match credit {
                            ReceiptCredit::New { .. } => "credited",
                            ReceiptCredit::ReceiptOfStk(_) | ReceiptCredit::Duplicate(_) => {
                                "already_credited"
                            }
                        };
                        sqlx::query(
                            "UPDATE payment_recoveries SET status = $2, result_code = $3, \
                                    result_desc = $4, amount_kes = $5, payment_id = $6, \
                                    updated_at = now() WHERE id = $1",
                        )
                        .bind(id)
                        .bind(new_status)
                        .bind(result_code_text(&r.result_code))
                        .bind(&r.result_desc)
                        .bind(amount_kes)
                        .bind(credit.payment_id())
                        .execute(&mut *tx)
                        .await?;
                        payment_id = Some(credit.payment_id());
                        credit.outcome()
                    }
                }
            }
        }
    };
    callbacks::finish(&mut tx, callback_id, &outcome, None, payment_id).await?;
    tx.commit().await?;
    Ok(Some(outcome))
}

/// An answer came before the synchronous reply was stored: its id is the one to expect.
async fn remember_ocid(
    conn: &mut sqlx::PgConnection,
    id: i64,
    ocid: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_recoveries \
            SET originator_conversation_id = COALESCE(originator_conversation_id, NULLIF($2, '')) \
          WHERE id = $1",
    )
    .bind(id)
    .bind(ocid)
    .execute(conn)
    .await?;
    Ok(())
}

async fn close(
    conn: &mut sqlx::PgConnection,
    id: i64,
    status: &str,
    code: Option<&str>,
    desc: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_recoveries SET status = $2, result_code = COALESCE($3, result_code), \
                result_desc = $4, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(code)
    .bind(desc)
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes requests M-Pesa has not answered within `deadline`, so the receipt can be asked
/// about again (an answer that still comes is processed all the same).
pub async fn expire(pool: &PgPool, deadline: Duration) -> Result<u64, sqlx::Error> {
    let closed = sqlx::query(
        "UPDATE payment_recoveries SET status = 'timed_out', \
                result_desc = 'no answer from M-Pesa by the deadline', updated_at = now() \
          WHERE status IN ('requesting', 'pending') \
            AND created_at < now() - make_interval(secs => $1)",
    )
    .bind(deadline.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64, params: &[(&str, &str)]) -> TransactionStatusResult {
        let params: Vec<_> = params
            .iter()
            .map(|(k, v)| format!(r#"{{"Key":"{k}","Value":"{v}"}}"#))
            .collect();
        let body = format!(
            r#"{{"Result":{{"ConversationID":"AG_1","OriginatorConversationID":"oc-1",
                "ResultCode":{code},"ResultDesc":"desc","ResultType":0,"TransactionID":"X1",
                "ResultParameters":{{"ResultParameter":[{}]}}}}}}"#,
            params.join(",")
        );
        parse_transaction_status_result(body.as_bytes()).unwrap()
    }

    const PAID: &[(&str, &str)] = &[
        ("DebitPartyName", "254708374149 - John Doe"),
        ("CreditPartyName", "174379 - Jasiyo ISP"),
        ("TransactionStatus", "Completed"),
        ("Amount", "300"),
        ("ReceiptNo", "MBN31H462N"),
        ("FinalisedTime", "20180223054112"),
    ];

    #[test]
    fn a_completed_payment_to_us_is_paid() {
        assert_eq!(
            judge("MBN31H462N", Some("oc-1"), &["174379"], &result(0, PAID)),
            Verdict::Paid {
                amount_kes: 300,
                time: Some("20180223054112".into()),
                payer: Some("254708374149".into()),
            }
        );
        // Before the synchronous reply is stored, any id is this request's.
        assert!(matches!(
            judge("MBN31H462N", None, &["174379"], &result(0, PAID)),
            Verdict::Paid { .. }
        ));
    }

    #[test]
    fn answers_to_something_else_are_refused() {
        let r = result(0, PAID);
        for (receipt, ocid, ours) in [
            ("MBN31H462N", "oc-2", "174379"),
            ("OTHER00001", "oc-1", "174379"),
            ("MBN31H462N", "oc-1", "600000"),
        ] {
            assert!(
                matches!(judge(receipt, Some(ocid), &[ours], &r), Verdict::Refused(_)),
                "{receipt} {ocid} {ours}"
            );
        }
        let no_amount: Vec<_> = PAID
            .iter()
            .copied()
            .filter(|(k, _)| *k != "Amount")
            .collect();
        assert!(matches!(
            judge("MBN31H462N", None, &["174379"], &result(0, &no_amount)),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn failures_and_unfinished_transactions_are_not_paid() {
        assert_eq!(
            judge("MBN31H462N", Some("oc-1"), &["174379"], &result(1, &[])),
            Verdict::NotPaid {
                code: "1".into(),
                desc: "desc".into()
            }
        );
        let pending: Vec<_> = PAID
            .iter()
            .map(|(k, v)| {
                if *k == "TransactionStatus" {
                    (*k, "Pending")
                } else {
                    (*k, *v)
                }
            })
            .collect();
        assert!(matches!(
            judge("MBN31H462N", None, &["174379"], &result(0, &pending)),
            Verdict::NotPaid { .. }
        ));
    }

    #[test]
    fn receipts_as_typed() {
        assert_eq!(normalise_receipt(" nlj7rt61sv ").unwrap(), "NLJ7RT61SV");
        for bad in ["", "ABC", "NLJ7-RT61SV", &"A".repeat(21)] {
            assert!(normalise_receipt(bad).is_err(), "{bad:?}");
        }
    }
}
