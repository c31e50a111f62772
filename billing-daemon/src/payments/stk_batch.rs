//! STK callbacks handled in batches, so a burst of payments (everyone paying at 6 p.m.,
//! or Safaricom delivering a backlog at once) activates customers in well under a second.
//!
//! The HTTP handler hands each callback to one worker and waits for its answer. The
//! worker takes whatever has queued up (one callback when it is quiet, up to
//! [`MAX_BATCH`] in a burst) and:
//! 1. stores every body in one statement (committed before anything else, as one by one);
//! 2. marks those from addresses the allow-list refuses;
//! 3. credits the plain successes (a pending intent at that URL, its CheckoutRequestID,
//!    the price paid exactly, one per subscriber, intent and receipt in the batch) in one
//!    transaction of a few statements ([`stk::mark_paid_many`]);
//! 4. hands every other callback (a failure, a duplicate, a mismatch, a wallet payment,
//!    an unpaid voucher...) to the one-by-one [`callbacks::process_stk`], concurrently,
//!    after that transaction committed, so it sees what the batch did.
//!
//! Nothing changes about what is credited: the batch writes the rows the one-by-one path
//! would, and leaves everything else to it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use axum::body::Bytes;
use chrono::Utc;
use daraja::callbacks as parse;
use futures_util::FutureExt;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::callbacks::{self, REFUSED_SOURCE, parse_nairobi_time, result_code_text};
use super::stk::{self, PaidCallback};

/// Most callbacks handled together.
pub const MAX_BATCH: usize = 128;

/// Callbacks waiting for the worker before handlers wait to hand theirs over.
const QUEUE: usize = 4096;

/// What the handler answers Safaricom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Stored (and processed, or kept for later).
    Ack,
    /// No intent has this URL.
    NoIntent,
    /// The source address is not on the allow-list.
    Refused,
    /// Not even stored (Postgres down): Safaricom may try again.
    Unavailable,
}

/// One callback for the worker.
struct Job {
    token: String,
    body: Bytes,
    source_ip: Option<IpAddr>,
    allowed: bool,
    reply: oneshot::Sender<Answer>,
}

/// The worker's queue, started with the first callback.
#[derive(Debug, Default)]
pub struct StkBatches {
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl StkBatches {
    /// Hands a callback to the worker and waits for the answer.
    pub async fn submit(
        &self,
        pool: &PgPool,
        token: String,
        body: Bytes,
        source_ip: Option<IpAddr>,
        allowed: bool,
    ) -> Answer {
        let queue = self.queue.get_or_init(|| {
            let (queue, jobs) = mpsc::channel(QUEUE);
            tokio::spawn(run(pool.clone(), jobs));
            queue
        });
        let (reply, answer) = oneshot::channel();
        let job = Job {
            token,
            body,
            source_ip,
            allowed,
            reply,
        };
        if queue.send(job).await.is_err() {
            return Answer::Unavailable;
        }
        // A dropped reply: the worker died with it (its body may be stored; the
        // reconciler processes stored bodies left unprocessed).
        answer.await.unwrap_or(Answer::Unavailable)
    }
}

async fn run(pool: PgPool, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // A panic must not stop the worker: every callback after it would go unanswered.
        // The batch's handlers answer 503 (their replies are dropped); bodies already
        // stored are processed later by the reconciler.
        let batch = handle(&pool, std::mem::take(&mut jobs));
        if AssertUnwindSafe(batch).catch_unwind().await.is_err() {
            tracing::error!("STK batch worker panicked; carrying on with the next batch");
        }
    }
}

async fn handle(pool: &PgPool, jobs: Vec<Job>) {
    let ids = match callbacks::store_stk_many(
        pool,
        &jobs
            .iter()
            .map(|j| (j.source_ip, j.token.as_str(), &j.body[..]))
            .collect::<Vec<_>>(),
    )
    .await
    {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, callbacks = jobs.len(), "could not store STK callbacks");
            for j in jobs {
                let _ = j.reply.send(Answer::Unavailable);
            }
            return;
        }
    };
    let mut jobs: Vec<(i64, Job)> = ids.into_iter().zip(jobs).collect();

    let (allowed, refused): (Vec<_>, Vec<_>) = jobs.drain(..).partition(|(_, j)| j.allowed);
    if !refused.is_empty() {
        for (id, j) in &refused {
            tracing::warn!(callback = id, source = ?j.source_ip,
                "STK callback refused: source address not allowed");
        }
        let ids: Vec<i64> = refused.iter().map(|(id, _)| *id).collect();
        let outcomes = vec![REFUSED_SOURCE; ids.len()];
        if let Err(e) = callbacks::finish_many(pool, &ids, &outcomes, &[], &[]).await {
            tracing::warn!(error = %e, "could not mark refused STK callbacks");
        }
        for (_, j) in refused {
            let _ = j.reply.send(Answer::Refused);
        }
    }

    let credited = match credit_plain(pool, &allowed).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "STK batch: crediting together failed; one by one");
            HashSet::new()
        }
    };
    for (id, job) in allowed {
        if credited.contains(&id) {
            let _ = job.reply.send(Answer::Ack);
            continue;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let answer = match callbacks::process_stk(&pool, id, &job.token, &job.body).await {
                Ok(Some(outcome)) => {
                    tracing::info!(callback = id, outcome, "STK callback");
                    Answer::Ack
                }
                Ok(None) => Answer::NoIntent,
                Err(e) => {
                    tracing::warn!(callback = id, error = %e,
                        "STK callback kept for later processing");
                    Answer::Ack
                }
            };
            let _ = job.reply.send(answer);
        });
    }
}

/// Credits the plain successes among `jobs` in one transaction; the callbacks done.
async fn credit_plain(pool: &PgPool, jobs: &[(i64, Job)]) -> Result<HashSet<i64>, sqlx::Error> {
    let parsed: Vec<(i64, &str, parse::StkCallback)> = jobs
        .iter()
        .filter_map(|(id, j)| {
            let cb = parse::parse_stk_callback(&j.body).ok()?;
            cb.paid.is_some().then_some((*id, j.token.as_str(), cb))
        })
        .collect();
    if parsed.is_empty() {
        return Ok(HashSet::new());
    }
    let mut tx = pool.begin().await?;
    let tokens: Vec<&str> = parsed.iter().map(|(_, t, _)| *t).collect();
    let intents: HashMap<String, stk::Intent> = stk::lock_by_tokens(&mut tx, &tokens)
        .await?
        .into_iter()
        .collect();
    // One per intent, subscriber and receipt: the rest go one by one, after this commits.
    let (mut seen_intents, mut seen_subscribers, mut seen_receipts) =
        (HashSet::new(), HashSet::new(), HashSet::new());
    let mut plain: Vec<(i64, &stk::Intent, &parse::StkCallback, String)> = Vec::new();
    for (id, token, cb) in &parsed {
        let (Some(intent), Some(paid)) = (intents.get(*token), cb.paid.as_ref()) else {
            continue;
        };
        let amount = i64::try_from(paid.amount_kes).unwrap_or(i64::MAX);
        if intent.status == "pending"
            && intent.checkout_request_id.as_deref() == Some(cb.checkout_request_id.as_str())
            && amount == intent.amount_kes
            && seen_intents.insert(intent.id)
            && seen_subscribers.insert(intent.subscriber_id)
            && seen_receipts.insert(paid.receipt.as_str())
        {
            plain.push((*id, intent, cb, result_code_text(&cb.result_code)));
        }
    }
    if plain.is_empty() {
        return Ok(HashSet::new());
    }
    let paid: Vec<PaidCallback<'_>> = plain
        .iter()
        .map(|(_, intent, cb, code)| {
            let p = cb.paid.as_ref().expect("only paid callbacks are plain");
            PaidCallback {
                intent,
                receipt: &p.receipt,
                amount_kes: intent.amount_kes,
                paid_at: p
                    .transaction_date
                    .as_deref()
                    .and_then(parse_nairobi_time)
                    .unwrap_or_else(Utc::now),
                result: (code, &cb.result_desc),
            }
        })
        .collect();
    let payments = stk::mark_paid_many(&mut tx, &paid).await?;
    let done: Vec<(i64, i64, i64)> = plain
        .iter()
        .zip(payments)
        .filter_map(|((id, intent, _, _), payment)| Some((*id, intent.id, payment?)))
        .collect();
    let outcome = "credited (renewed)";
    callbacks::finish_many(
        &mut *tx,
        &done.iter().map(|d| d.0).collect::<Vec<_>>(),
        &vec![outcome; done.len()],
        &done.iter().map(|d| Some(d.1)).collect::<Vec<_>>(),
        &done.iter().map(|d| Some(d.2)).collect::<Vec<_>>(),
    )
    .await?;
    tx.commit().await?;
    for (id, intent, payment) in &done {
        tracing::info!(callback = id, intent, payment, outcome, "STK callback");
    }
    Ok(done.into_iter().map(|d| d.0).collect())
}
