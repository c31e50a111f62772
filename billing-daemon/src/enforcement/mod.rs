//! Automatic enforcement: RFC 5176 Disconnect- and CoA-Requests to the routers when an online
//! subscriber is suspended, deleted, expires, uses up an allowance or changes plan.
//!
//! * **Queue.** Every action is a row of `enforcement_actions`, written in the transaction of
//!   the change that calls for it: by triggers on `subscribers` and `plans` (whoever made the
//!   change), by the expiry scheduler here, by the API for an operator's disconnect. Writing a
//!   row notifies `jasiyo_enforcement`.
//! * **Expiry.** Expiry is the passing of time, not a change, so the task keeps the earliest
//!   future `expires_at` among online subscribers and wakes at that instant (not on a minute
//!   tick) to queue their sessions. It recomputes that instant when a subscriber changes
//!   (`jasiyo_changes`, at most every [`EXPIRY_RECHECK`]) and at least every [`IDLE_POLL`].
//!   Those notifications do not make it read the queue: only its own channel, a finished
//!   send, a retry coming due or the idle poll do.
//! * **Sending.** Due rows are claimed and each runs in a task of its own, so an unreachable
//!   router delays only its own actions. [`policy::decide`] picks Disconnect or CoA from the
//!   state at that moment; [`dynauth::exchange`] sends it with RFC 5080 retransmission. The
//!   outcome (ACK, NAK with Error-Cause, no answer) is written back into the row, which stays
//!   as the enforcement log. A refused or unanswered CoA is replaced by a Disconnect, so the
//!   customer re-authenticates onto the new plan. An unanswered Disconnect is tried again in
//!   later rounds (`rounds`, back-off doubling from `round_backoff`).
//! * **Restarts.** A row stays `pending` until its outcome is written, so actions that were
//!   queued or being sent when the daemon stopped are sent after it starts again.

pub mod dynauth;
pub mod policy;
pub mod queue;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use dynauth::{Outcome, RetryPolicy};
use policy::Decision;
use queue::{DueAction, Final};

/// How often the next expiry is recomputed at most while subscribers keep changing.
pub const EXPIRY_RECHECK: Duration = Duration::from_millis(250);
/// The longest the task sleeps without looking at the queue and the expiries.
pub const IDLE_POLL: Duration = Duration::from_secs(10);
/// Most actions claimed at once.
const CLAIM_LIMIT: i64 = 500;

/// Enforcement settings (`coa_*` and `enforcement_*` in the config).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EnforcementConfig {
    /// Retransmission within one exchange.
    pub retry: RetryPolicy,
    /// Exchanges tried for a Disconnect that gets no answer (a CoA gets one, then the
    /// Disconnect fallback).
    pub rounds: u32,
    /// Wait before the second round; doubles for each further one.
    pub round_backoff: Duration,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            rounds: 5,
            round_backoff: Duration::from_secs(60),
        }
    }
}

/// The running enforcement task.
#[derive(Debug)]
pub struct Enforcer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts the enforcement task.
pub fn start(pool: PgPool, config: EnforcementConfig) -> Enforcer {
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(pool, config, stop_rx));
    Enforcer { stop, task }
}

impl Enforcer {
    /// Stops the task. Exchanges in flight are abandoned; their rows are still pending, so
    /// they are sent again after the next start.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Ids of the actions being sent now (not to be claimed again meanwhile).
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<HashSet<i64>>>);

impl InFlight {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ids(&self) -> Vec<i64> {
        self.set().iter().copied().collect()
    }
}

async fn connect_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen_all([queue::CHANNEL, crate::publisher::CHANNEL])
        .await?;
    Ok(l)
}

async fn run(pool: PgPool, config: EnforcementConfig, mut stop: watch::Receiver<bool>) {
    let in_flight = InFlight::default();
    let mut tasks = JoinSet::new();
    let mut listener: Option<PgListener> = None;
    let mut expiry_dirty = true;
    let mut expiry_checked = tokio::time::Instant::now();
    let mut next_expiry: Option<DateTime<Utc>> = None;
    // The queue is read only when something may have changed in it (a notification on
    // its channel, a send finished, a retry came due, the idle poll), not on every
    // subscriber change: those arrive by the thousand while accounting flows.
    let mut dispatch_needed = true;
    let mut dispatched = tokio::time::Instant::now();
    let mut next_due: Option<DateTime<Utc>> = None;
    let mut db_backoff = Duration::from_millis(100);
    loop {
        if listener.is_none() {
            match connect_listener(&pool).await {
                Ok(l) => {
                    listener = Some(l);
                    // Notifications sent while not listening are gone: look at everything.
                    expiry_dirty = true;
                    dispatch_needed = true;
                }
                Err(e) => tracing::warn!(error = %e, "enforcement: LISTEN failed; polling"),
            }
        }
        let now = Utc::now();
        let expiry_due = next_expiry.is_some_and(|t| t <= now);
        let dispatch = dispatch_needed
            || next_due.is_some_and(|t| t <= now)
            || dispatched.elapsed() >= IDLE_POLL;
        let pass = async {
            if expiry_due || (expiry_dirty && expiry_checked.elapsed() >= EXPIRY_RECHECK) {
                let queued = queue::queue_expired(&pool).await?;
                if queued > 0 {
                    tracing::info!(sessions = queued, "enforcement: expiry passed while online");
                }
                next_expiry = queue::next_expiry(&pool).await?;
                expiry_dirty = false;
                expiry_checked = tokio::time::Instant::now();
            }
            if dispatch {
                for action in queue::due(&pool, &in_flight.ids(), CLAIM_LIMIT).await? {
                    in_flight.set().insert(action.id);
                    let (pool, in_flight) = (pool.clone(), in_flight.clone());
                    tasks.spawn(async move {
                        let id = action.id;
                        if let Err(e) = send_action(&pool, &config, action).await {
                            tracing::warn!(action = id, error = %e, "enforcement: could not record an outcome; will retry");
                        }
                        in_flight.set().remove(&id);
                    });
                }
                next_due = queue::next_due(&pool, &in_flight.ids()).await?;
                dispatch_needed = false;
                dispatched = tokio::time::Instant::now();
            }
            Ok::<(), sqlx::Error>(())
        };
        let result = pass.await;
        let mut wake = dispatched + IDLE_POLL;
        match result {
            Ok(()) => {
                db_backoff = Duration::from_millis(100);
                for t in [next_due, next_expiry].into_iter().flatten() {
                    wake = wake.min(instant_of(t));
                }
                if expiry_dirty {
                    wake = wake.min(expiry_checked + EXPIRY_RECHECK);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "enforcement: database error; retrying");
                dispatch_needed = true;
                wake = tokio::time::Instant::now() + db_backoff;
                db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep_until(wake) => {}
            Some(_) = tasks.join_next() => dispatch_needed = true,
            received = recv(&mut listener) => match received {
                Some(channel) if channel == crate::publisher::CHANNEL => expiry_dirty = true,
                Some(_) => dispatch_needed = true,
                None => {
                    tracing::warn!("enforcement: lost the LISTEN connection; reconnecting");
                    listener = None;
                }
            },
        }
    }
    tasks.abort_all();
}

/// The next notification's channel; None when the connection is lost. Pends forever
/// without a listener (the loop then runs on its timer).
async fn recv(listener: &mut Option<PgListener>) -> Option<String> {
    match listener {
        Some(l) => match l.try_recv().await {
            Ok(Some(n)) => Some(n.channel().to_owned()),
            Ok(None) | Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// A database time as a tokio instant (a past time is now).
fn instant_of(t: DateTime<Utc>) -> tokio::time::Instant {
    let ahead = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    // Wake just after, so `expires_at <= now()` holds in Postgres too.
    tokio::time::Instant::now() + ahead + Duration::from_millis(1)
}

/// Sends one action and records its outcome.
async fn send_action(
    pool: &PgPool,
    config: &EnforcementConfig,
    action: DueAction,
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let decision = policy::decide(
        action.reason,
        action.subscriber.as_ref(),
        action.session_open && action.session.is_some(),
        action.fallback_of.is_some(),
        now,
    );
    if let Decision::Skip(why) = decision {
        tracing::info!(
            action = action.id,
            reason = action.reason.as_str(),
            why,
            "enforcement: nothing to send"
        );
        return queue::finish(pool, action.id, Final::Skipped, None, Some(why), false).await;
    }
    let (Some(session), Some(router)) = (&action.session, &action.router) else {
        return queue::finish(
            pool,
            action.id,
            Final::Failed,
            None,
            Some("the session's router is not registered"),
            false,
        )
        .await;
    };
    let rate = match &decision {
        Decision::ChangeRate(rate) => Some(rate.as_str()),
        _ => None,
    };
    let is_coa = rate.is_some();
    let kind = if is_coa { "coa" } else { "disconnect" };
    let mut request = policy::request(rate, session, now);
    request.id = rand::rng().random();
    let target = SocketAddr::new(router.ip, router.coa_port);
    queue::mark_sent(pool, action.id, kind, rate, &target.to_string()).await?;
    let waits = config.retry.waits(|| rand::rng().random_range(-0.1..=0.1));
    let outcome = dynauth::exchange(target, router.secret.as_bytes(), &request, &waits).await;
    tracing::info!(
        action = action.id,
        reason = action.reason.as_str(),
        kind,
        router = router.id,
        %target,
        username = %session.username,
        acct_session_id = %session.acct_session_id,
        outcome = ?outcome,
        "enforcement: exchange ended"
    );
    match outcome {
        Ok(Outcome::Ack) => queue::finish(pool, action.id, Final::Acked, None, None, false).await,
        Ok(Outcome::Nak { error_cause }) => {
            let detail = error_cause.map(|c| {
                radius_proto::attr::error_cause::name(c)
                    .map_or_else(|| format!("Error-Cause {c}"), str::to_owned)
            });
            queue::finish(
                pool,
                action.id,
                Final::Naked,
                error_cause,
                detail.as_deref(),
                is_coa,
            )
            .await
        }
        Ok(Outcome::NoAnswer {
            transmissions,
            last_problem,
        }) => {
            let detail = match last_problem {
                Some(p) => format!("no answer to {transmissions} transmissions ({p})"),
                None => format!("no answer to {transmissions} transmissions"),
            };
            let round = u32::try_from(action.attempts).unwrap_or(0) + 1;
            if !is_coa && round < config.rounds {
                let backoff = config
                    .round_backoff
                    .saturating_mul(1 << (round - 1).min(16));
                let at = Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
                queue::retry_at(pool, action.id, at, &detail).await
            } else {
                queue::finish(pool, action.id, Final::Timeout, None, Some(&detail), is_coa).await
            }
        }
        Err(e) => {
            queue::finish(
                pool,
                action.id,
                Final::Failed,
                None,
                Some(&format!("could not send: {e}")),
                false,
            )
            .await
        }
    }
}
