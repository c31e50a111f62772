//! The reconciler: what to do when Safaricom's callbacks do not come.
//!
//! * A pending STK intent is asked about with STK Query, first `query_after` after the push,
//!   then every `query_interval` (with jitter) until `query_deadline`. "Being processed"
//!   keeps it pending; a success credits it on the intent (the receipt comes later from the
//!   callback or the C2B confirmation); a failure fails it, unless the push's C2B copy is
//!   already in the ledger (the sandbox's STK Query answers 1032 for paid pushes; a copy
//!   that comes after the failure pays the push too, see `stk::claim_for_c2b`). A query
//!   acts on pending intents only, so it can never undo a payment. Past the deadline the
//!   intent becomes `expired_unknown`: left for the daily reconciliation, and a late
//!   success still counts.
//! * A push whose reply never came back (the daemon died while sending) has no
//!   CheckoutRequestID to ask about; after the deadline it is `expired_unknown` too, and its
//!   callback, if it comes, still credits it.
//! * Callback bodies that were stored but not processed (Postgres trouble at the time) are
//!   processed again, Transaction Status answers included.
//! * A Transaction Status request (recovery by receipt) unanswered by `query_deadline` is
//!   closed as timed out, so the operator can ask again.

use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::callbacks::{process_c2b, process_stk, result_code_text};
use super::{Mpesa, recovery, stk};

/// How often the reconciler looks for due work.
const TICK: Duration = Duration::from_millis(500);
/// Intents queried per tick at most.
const BATCH: i64 = 20;

/// The running reconciler.
#[derive(Debug)]
pub struct Reconciler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Reconciler {
    /// Stops it (a query in flight is abandoned; the intent stays due).
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Starts the reconciler.
pub fn start(pool: PgPool, mpesa: Mpesa) -> Reconciler {
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = tick(&pool, &mpesa).await {
                tracing::warn!(error = %e, "payment reconciler: database error");
            }
            tokio::select! {
                _ = stop_rx.changed() => break,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    });
    Reconciler { stop, task }
}

async fn tick(pool: &PgPool, mpesa: &Mpesa) -> Result<(), sqlx::Error> {
    // Pushes that never got Daraja's reply: nothing to ask, past their deadline.
    sqlx::query(
        "UPDATE payment_intents SET status = 'expired_unknown', next_query_at = NULL, \
                result_desc = 'no reply to the push was stored', updated_at = now() \
          WHERE status = 'pending' AND checkout_request_id IS NULL \
            AND created_at < now() - make_interval(secs => $1)",
    )
    .bind(mpesa.settings.query_deadline.as_secs_f64())
    .execute(pool)
    .await?;

    let due = sqlx::query(
        "SELECT id, checkout_request_id, query_deadline < now() AS past_deadline \
           FROM payment_intents \
          WHERE status = 'pending' AND checkout_request_id IS NOT NULL AND next_query_at <= now() \
          ORDER BY next_query_at LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(pool)
    .await?;
    for row in due {
        let id: i64 = row.try_get("id")?;
        let checkout: String = row.try_get("checkout_request_id")?;
        let past_deadline: bool = row
            .try_get::<Option<bool>, _>("past_deadline")?
            .unwrap_or(false);
        let answer = mpesa.client.stk_query(&checkout).await;
        apply_query(pool, mpesa, id, past_deadline, answer).await?;
    }

    // Transaction Status requests M-Pesa never answered: free the receipt to be asked again.
    let closed = recovery::expire(pool, mpesa.settings.query_deadline).await?;
    if closed > 0 {
        tracing::warn!(
            closed,
            "Transaction Status requests unanswered by the deadline"
        );
    }

    // Stored callbacks that were not processed (give the handler a moment first).
    let stale = sqlx::query(
        "SELECT id, kind, url_token, body FROM payment_callbacks \
          WHERE processed_at IS NULL AND kind <> 'c2b_validation' \
            AND received_at < now() - interval '5 seconds' \
          ORDER BY id LIMIT 50",
    )
    .fetch_all(pool)
    .await?;
    for row in stale {
        let id: i64 = row.try_get("id")?;
        let body: Vec<u8> = row.try_get("body")?;
        let kind: String = row.try_get("kind")?;
        let token: Option<String> = row.try_get("url_token")?;
        let token = token.as_deref().unwrap_or("");
        let outcome = match kind.as_str() {
            "stk" => process_stk(pool, id, token, &body)
                .await?
                .unwrap_or_else(|| "no intent".to_owned()),
            recovery::RESULT | recovery::TIMEOUT => {
                recovery::process(pool, mpesa, id, &kind, token, &body)
                    .await?
                    .unwrap_or_else(|| "no recovery".to_owned())
            }
            _ => process_c2b(pool, id, &body).await?,
        };
        tracing::info!(callback = id, outcome, "processed a stored callback late");
    }
    Ok(())
}

async fn apply_query(
    pool: &PgPool,
    mpesa: &Mpesa,
    id: i64,
    past_deadline: bool,
    answer: Result<daraja::StkQueryOutcome, daraja::Error>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(intent) = stk::lock(&mut tx, None, Some(id)).await? else {
        return Ok(());
    };
    if intent.status != "pending" {
        // A callback got there first.
        return Ok(());
    }
    match answer {
        Ok(daraja::StkQueryOutcome::Completed(code, desc)) => {
            let text = result_code_text(&code);
            // A failure is believed only if the push's C2B copy is not in the ledger: the
            // sandbox answers 1032 for paid pushes.
            let paid = if code.is_success() {
                Some((text.as_str(), desc.clone()))
            } else if stk::c2b_copy_exists(&mut tx, &intent).await? {
                tracing::warn!(
                    intent = id,
                    code = text,
                    "STK Query says not paid, but its C2B confirmation came"
                );
                Some((
                    "0",
                    format!("paid: its C2B confirmation arrived; STK Query said {text} {desc}"),
                ))
            } else {
                None
            };
            match paid {
                Some((code, desc)) => {
                    let (_, outcome) = stk::mark_paid(
                        &mut tx,
                        &intent,
                        None,
                        intent.amount_kes,
                        Utc::now(),
                        (code, &desc),
                    )
                    .await?;
                    tracing::info!(intent = id, outcome, "STK Query found the payment");
                }
                None => {
                    stk::mark_failed(&mut tx, &intent, (&text, &desc)).await?;
                    tracing::info!(intent = id, code = text, "STK Query: not paid");
                }
            }
        }
        Ok(daraja::StkQueryOutcome::Pending) | Err(_) if past_deadline => {
            sqlx::query(
                "UPDATE payment_intents SET status = 'expired_unknown', next_query_at = NULL, \
                        result_desc = 'no result by the deadline', updated_at = now() \
                  WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        other => {
            if let Err(e) = &other {
                tracing::warn!(intent = id, error = %e, "STK Query failed; will ask again");
            }
            let jitter = rand::rng().random_range(0.8..1.2);
            sqlx::query(
                "UPDATE payment_intents SET query_attempts = query_attempts + 1, \
                        next_query_at = now() + make_interval(secs => $2), updated_at = now() \
                  WHERE id = $1",
            )
            .bind(id)
            .bind(mpesa.settings.query_interval.as_secs_f64() * jitter)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}
