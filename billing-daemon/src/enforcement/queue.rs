//! The `enforcement_actions` table: claiming due actions with everything needed to send
//! them, writing outcomes back, and queueing what billing-daemon itself decides (expiries,
//! an operator's disconnect, the Disconnect that replaces a failed CoA).

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::policy::{Reason, SessionTarget, SubscriberNow};

/// The channel the triggers (and these functions) notify when an action is queued.
pub const CHANNEL: &str = "jasiyo_enforcement";

/// The router an action goes to.
#[derive(Clone, Debug)]
pub struct RouterTarget {
    /// Its id.
    pub id: i64,
    /// Its address (the RADIUS client address; `/radius incoming` listens there).
    pub ip: IpAddr,
    /// Its `/radius incoming` port.
    pub coa_port: u16,
    /// The shared secret.
    pub secret: String,
}

/// A pending action that is due, with the session, router and subscriber as they are now.
#[derive(Clone, Debug)]
pub struct DueAction {
    /// Row id.
    pub id: i64,
    /// Why it was queued.
    pub reason: Reason,
    /// Exchanges tried so far.
    pub attempts: i32,
    /// Set for the Disconnect that replaces a failed CoA.
    pub fallback_of: Option<i64>,
    /// The session (None if the action names none: the row was written by hand).
    pub session: Option<SessionTarget>,
    /// False once the router reported the session's end.
    pub session_open: bool,
    /// None when the router is not (or no longer) registered.
    pub router: Option<RouterTarget>,
    /// None when the subscriber is gone.
    pub subscriber: Option<SubscriberNow>,
}

const DUE_SQL: &str = "\
SELECT a.id, a.reason, a.attempts, a.fallback_of, a.username,
       s.id AS session_id, s.acct_session_id, host(s.framed_ip) AS framed_ip,
       host(s.nas_ip) AS nas_ip, s.stopped_at IS NULL AS session_open,
       r.id AS router_id, host(r.ip) AS router_ip, r.coa_port, r.secret,
       sub.id AS sub_id, sub.status = 'active' AS active, sub.expires_at,
       sub.data_remaining_bytes, sub.time_remaining_seconds, p.rate_limit, p.fup_rate_limit
  FROM enforcement_actions a
  LEFT JOIN sessions s ON s.id = a.session_id
  LEFT JOIN routers r ON r.id = COALESCE(a.router_id, s.router_id)
  LEFT JOIN subscribers sub ON sub.id = COALESCE(a.subscriber_id, s.subscriber_id)
  LEFT JOIN plans p ON p.id = sub.plan_id
 WHERE a.status = 'pending' AND a.next_attempt_at <= now() AND a.id <> ALL($1)
 ORDER BY a.next_attempt_at, a.id
 LIMIT $2";

/// Pending actions that are due, oldest first, except those in `skip` (being sent now).
pub async fn due(pool: &PgPool, skip: &[i64], limit: i64) -> Result<Vec<DueAction>, sqlx::Error> {
    let rows = sqlx::query(DUE_SQL)
        .bind(skip)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(due_from_row).collect()
}

fn ipv4(text: Option<String>) -> Option<Ipv4Addr> {
    text.and_then(|t| t.parse().ok())
}

fn due_from_row(r: &PgRow) -> Result<DueAction, sqlx::Error> {
    let reason: String = r.try_get("reason")?;
    let reason = Reason::parse(&reason).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "reason".into(),
        source: format!("unknown reason {reason:?}").into(),
    })?;
    let router = match r.try_get::<Option<i64>, _>("router_id")? {
        Some(id) => {
            let ip: String = r.try_get("router_ip")?;
            let port: i32 = r.try_get("coa_port")?;
            Some(RouterTarget {
                id,
                ip: ip.parse().map_err(|e| sqlx::Error::ColumnDecode {
                    index: "router_ip".into(),
                    source: Box::new(e),
                })?,
                coa_port: u16::try_from(port).unwrap_or(3799),
                secret: r.try_get("secret")?,
            })
        }
        None => None,
    };
    let session = match r.try_get::<Option<i64>, _>("session_id")? {
        Some(_) => Some(SessionTarget {
            username: r.try_get("username")?,
            acct_session_id: r.try_get("acct_session_id")?,
            framed_ip: ipv4(r.try_get("framed_ip")?),
            // RFC 5176 NAS identification: what the router calls itself, else its address.
            nas_ip: ipv4(r.try_get("nas_ip")?).or(match router.as_ref().map(|r| r.ip) {
                Some(IpAddr::V4(v4)) => Some(v4),
                _ => None,
            }),
        }),
        None => None,
    };
    let subscriber = match r.try_get::<Option<i64>, _>("sub_id")? {
        Some(_) => Some(SubscriberNow {
            active: r.try_get("active")?,
            expires_at: r.try_get("expires_at")?,
            data_remaining_bytes: r.try_get("data_remaining_bytes")?,
            time_remaining_seconds: r.try_get("time_remaining_seconds")?,
            rate_limit: r.try_get("rate_limit")?,
            fup_rate_limit: r.try_get("fup_rate_limit")?,
        }),
        None => None,
    };
    Ok(DueAction {
        id: r.try_get("id")?,
        reason,
        attempts: r.try_get("attempts")?,
        fallback_of: r.try_get("fallback_of")?,
        session_open: r
            .try_get::<Option<bool>, _>("session_open")?
            .unwrap_or(false),
        session,
        router,
        subscriber,
    })
}

/// When the next pending action (other than those in `skip`) is due.
pub async fn next_due(pool: &PgPool, skip: &[i64]) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(next_attempt_at) FROM enforcement_actions \
          WHERE status = 'pending' AND id <> ALL($1)",
    )
    .bind(skip)
    .fetch_one(pool)
    .await
}

/// Records that an exchange starts: what is sent and where.
pub async fn mark_sent(
    pool: &PgPool,
    id: i64,
    kind: &str,
    rate_limit: Option<&str>,
    target: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE enforcement_actions SET attempts = attempts + 1, sent_at = now(), kind = $2, \
                rate_limit = $3, target = $4 \
          WHERE id = $1",
    )
    .bind(id)
    .bind(kind)
    .bind(rate_limit)
    .bind(target)
    .execute(pool)
    .await?;
    Ok(())
}

/// A final state of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Final {
    /// The router ACKed.
    Acked,
    /// The router NAKed.
    Naked,
    /// No answer in any round.
    Timeout,
    /// Nothing needed sending.
    Skipped,
    /// It could not be sent (no router, no socket).
    Failed,
}

impl Final {
    fn as_str(self) -> &'static str {
        match self {
            Self::Acked => "acked",
            Self::Naked => "naked",
            Self::Timeout => "timeout",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// Writes an action's final state; with `fallback`, queues a Disconnect to replace it (in
/// the same transaction, so a crash cannot lose the fallback).
pub async fn finish(
    pool: &PgPool,
    id: i64,
    status: Final,
    error_cause: Option<u32>,
    detail: Option<&str>,
    fallback: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE enforcement_actions SET status = $2, completed_at = now(), error_cause = $3, \
                detail = $4 \
          WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(error_cause.map(|c| i32::try_from(c).unwrap_or(i32::MAX)))
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    if fallback {
        sqlx::query(
            "INSERT INTO enforcement_actions \
                    (reason, session_id, subscriber_id, username, router_id, fallback_of) \
             SELECT reason, session_id, subscriber_id, username, router_id, id \
               FROM enforcement_actions WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, "fallback").await?;
    }
    tx.commit().await
}

/// Puts an unanswered action back in the queue for another round at `at`.
pub async fn retry_at(
    pool: &PgPool,
    id: i64,
    at: DateTime<Utc>,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE enforcement_actions SET next_attempt_at = $2, detail = $3 WHERE id = $1")
        .bind(id)
        .bind(at)
        .bind(detail)
        .execute(pool)
        .await?;
    Ok(())
}

async fn notify(conn: &mut sqlx::PgConnection, what: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(what)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queues a Disconnect for every open session of a subscriber whose expiry has passed
/// (each expiry once per session: a renewal followed by a new expiry is enforced again).
/// Returns how many were queued.
pub async fn queue_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let queued = sqlx::query(
        "INSERT INTO enforcement_actions \
                (reason, session_id, subscriber_id, username, router_id, for_expires_at) \
         SELECT 'expired', s.id, sub.id, s.username, s.router_id, sub.expires_at \
           FROM sessions s JOIN subscribers sub ON sub.id = s.subscriber_id \
          WHERE s.stopped_at IS NULL AND sub.expires_at <= now() AND sub.status = 'active' \
         ON CONFLICT DO NOTHING",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if queued > 0 {
        notify(&mut tx, "expired").await?;
    }
    tx.commit().await?;
    Ok(queued)
}

/// The earliest future expiry among subscribers who are online.
pub async fn next_expiry(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(sub.expires_at) \
           FROM sessions s JOIN subscribers sub ON sub.id = s.subscriber_id \
          WHERE s.stopped_at IS NULL AND sub.expires_at > now() AND sub.status = 'active'",
    )
    .fetch_one(pool)
    .await
}

/// Queues an operator's Disconnect of one session. Returns the action id, or None if the
/// session does not exist; `Err(SessionClosed)`-like cases are the caller's to check first.
pub async fn queue_operator_disconnect(
    conn: &mut sqlx::PgConnection,
    session_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO enforcement_actions (reason, session_id, subscriber_id, username, router_id) \
         SELECT 'operator', s.id, s.subscriber_id, s.username, s.router_id \
           FROM sessions s WHERE s.id = $1 \
         RETURNING id",
    )
    .bind(session_id)
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_some() {
        notify(conn, "operator").await?;
    }
    Ok(id)
}
