//! Applying accounting events to `sessions` and `usage_daily`, and auth results to `auth_log`.
//!
//! # Rules
//!
//! [`apply_batch`] gives the same result as applying its events one by one, in order, and
//! every event is applied idempotently and monotonically:
//!
//! * **Start** creates the session, or (if an Interim or Stop created it first) replaces the
//!   derived start time with the Start's own time. Retransmitted Starts keep the earliest.
//! * **Interim-Update** without a Start creates the session, starting at
//!   `event time - Acct-Session-Time`. **Stop** without a Start records it the same way.
//! * Counters (64-bit, gigawords included), packets and session time only ever go up: the
//!   stored value is the greatest ever reported. A duplicate, a retransmission or a late
//!   packet with smaller counters changes nothing.
//! * A session stopped by the router stays stopped: a late Interim or a retransmitted Start
//!   after the Stop only raises counters. The earliest Stop time wins. A session closed as
//!   **stale** by [`close_stale`] is a guess, so the router has the last word: its Stop
//!   replaces the stale closure, and an Interim newer than the closure reopens the session.
//! * **Accounting-On / Accounting-Off** close every open session of the router (same UDP
//!   source address) with cause NAS-Reboot (`closed_by = 'nas-reboot'`).
//! * **Usage**: each session row's counters are also what has been attributed to
//!   `usage_daily`. An event that raises a counter adds exactly the increase to the
//!   subscriber's row for the (UTC) day of the event, in the same transaction. Replaying an
//!   event adds 0; reordered events never count a byte twice or lose one (the total per
//!   session always equals its final counters). Only which of two days gets the bytes can
//!   depend on order, when packets of one session arrive out of order across midnight.
//!   Sessions of usernames that match no subscriber (neither username, nor bound MAC, nor
//!   a hotspot voucher's code) are tracked, but have no usage rows.
//! * **Vouchers**: routers report a voucher's session under the code the customer typed; a
//!   User-Name that is no username is looked up as a code (its lookup name, see
//!   `jasiyo_snapshot::voucher`), so the voucher is counted down like any subscriber. The
//!   session keeps the User-Name as the router reported it: a Disconnect must name it.
//! * **Allowances**: the same increases count the subscriber's allowances down, in the same
//!   transaction: bytes (in + out) from `data_remaining_bytes`, seconds from
//!   `time_remaining_seconds`, never below 0, and only where an allowance is set (NULL is
//!   unlimited). Being the increases, they are 0 on a replay, so this is idempotent too. The
//!   row trigger announces the changed subscribers, and the snapshot carries the new values.
//! * **Open sessions**: the snapshot carries each subscriber's open-session count for the
//!   simultaneous-use limit. Whenever a batch (or [`close_stale`]) may have changed it (a
//!   session created open, stopped, closed by NAS reboot or as stale, reopened by a late
//!   Interim, or newly matched to a subscriber) it sends `subscribers:<id>` on the snapshot
//!   channel, once per subscriber, so the publisher refetches that subscriber.
//!
//! # Cost
//!
//! A batch is a fixed handful of statements whatever its size: an advisory lock, one select
//! each for routers, subscribers and the batch's existing sessions, one multi-row update of
//! the known sessions by id and one insert of the new ones (UNNEST arrays), one upsert of
//! `usage_daily`, one update of the allowances, one update
//! if the batch holds an Accounting-On/Off, and one `pg_notify` select for the subscribers
//! whose open sessions changed. The merge itself happens in Rust on the locked rows.
//!
//! # Concurrency
//!
//! [`apply_batch`] and [`close_stale`] take a transaction-scoped advisory lock, so they may run
//! from several tasks or processes, serialized. The caller owns the transaction: commit it
//! (together with, say, the journal read position) to make the batch durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{PgConnection, Row};

use jasiyo_snapshot::voucher::VoucherKey;

use super::event::{AccountingEvent, StatusType, terminate_cause_name};
use crate::domain::Mac;

/// Interim interval assumed for stale detection when the router sent none (the default of
/// `JASIYO_DEFAULT_INTERIM_INTERVAL`).
pub const DEFAULT_INTERIM_INTERVAL_SECS: u32 = 300;

/// Advisory lock key serializing writers of `sessions` (ASCII "jsysess").
const ACCOUNTING_LOCK: i64 = 0x006a_7379_7365_7373;

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Events applied.
    pub events: usize,
    /// Sessions created.
    pub sessions_created: usize,
    /// Existing sessions written.
    pub sessions_updated: usize,
    /// Sessions closed by Accounting-On/Off.
    pub sessions_closed_by_nas: u64,
    /// `usage_daily` rows written.
    pub usage_rows: usize,
    /// Subscribers whose data or time allowance was counted down.
    pub allowances_counted: u64,
    /// Subscribers announced because their open-session count may have changed.
    pub subscribers_notified: usize,
}

/// Who closed a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClosedBy {
    Router,
    NasReboot,
    Stale,
}

impl ClosedBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::NasReboot => "nas-reboot",
            Self::Stale => "stale",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "router" => Some(Self::Router),
            "nas-reboot" => Some(Self::NasReboot),
            "stale" => Some(Self::Stale),
            _ => None,
        }
    }
}

/// A session row while a batch is merged.
#[derive(Debug, Clone)]
struct SessionState {
    /// The row's id once it is in the table (then it is updated by id, not inserted).
    id: Option<i64>,
    unique_key: String,
    router_id: Option<i64>,
    source_ip: IpAddr,
    nas_ip: Option<String>,
    nas_identifier: Option<String>,
    username: String,
    subscriber_id: Option<i64>,
    acct_session_id: String,
    nas_port: Option<i64>,
    nas_port_id: Option<String>,
    framed_ip: Option<String>,
    calling_mac: Option<String>,
    started_at: DateTime<Utc>,
    start_seen: bool,
    last_update_at: DateTime<Utc>,
    stopped_at: Option<DateTime<Utc>>,
    terminate_cause: Option<String>,
    input_bytes: i64,
    output_bytes: i64,
    input_packets: i64,
    output_packets: i64,
    session_seconds: i64,
    interim_interval: Option<i32>,
    closed_by: Option<ClosedBy>,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Usage increases per (subscriber, day).
type UsageDelta = HashMap<(i64, NaiveDate), [i64; 3]>;

/// What each subscriber's allowances lose: (bytes in + out, seconds), summed over the days of
/// `usage`, ordered by subscriber id (the update then locks rows in a fixed order).
fn allowance_decrements(usage: &UsageDelta) -> BTreeMap<i64, (i64, i64)> {
    let mut out: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (&(sub, _), &[i, o, sec]) in usage {
        let d = out.entry(sub).or_default();
        d.0 = d.0.saturating_add(i.saturating_add(o));
        d.1 = d.1.saturating_add(sec);
    }
    out
}

/// Whether a session counts towards a subscriber's open sessions: (open, subscriber).
type OpenState = (bool, Option<i64>);

/// Subscribers whose open-session count moved when a session went from `before` to `after`.
fn open_count_changes(before: OpenState, after: OpenState) -> impl Iterator<Item = i64> {
    let changed = before != after;
    let lost = before.1.filter(|_| changed && before.0);
    let gained = after.1.filter(|_| changed && after.0);
    lost.into_iter()
        .chain(gained.filter(move |g| Some(*g) != lost))
}

impl SessionState {
    fn new(key: String, e: &AccountingEvent, t: DateTime<Utc>) -> Self {
        let started_at = match e.status {
            StatusType::Start => t,
            _ => t - Duration::seconds(i64::from(e.session_time.unwrap_or(0))),
        };
        Self {
            id: None,
            unique_key: key,
            router_id: None,
            source_ip: e.source_ip(),
            nas_ip: None,
            nas_identifier: None,
            username: e.username.clone().unwrap_or_default(),
            subscriber_id: None,
            acct_session_id: e.acct_session_id.clone().unwrap_or_default(),
            nas_port: e.nas_port.map(i64::from),
            nas_port_id: None,
            framed_ip: None,
            calling_mac: None,
            started_at,
            start_seen: e.status == StatusType::Start,
            last_update_at: t,
            stopped_at: None,
            terminate_cause: None,
            input_bytes: 0,
            output_bytes: 0,
            input_packets: 0,
            output_packets: 0,
            session_seconds: 0,
            interim_interval: None,
            closed_by: None,
        }
    }

    /// Merges one Start/Interim/Stop; returns the counter increases (in, out, seconds).
    fn apply(&mut self, e: &AccountingEvent, t: DateTime<Utc>) -> [i64; 3] {
        let newest = t >= self.last_update_at;
        // Descriptive attributes: fill gaps, and follow the newest packet.
        fn take<T: Clone>(field: &mut Option<T>, v: Option<T>, newest: bool) {
            if v.is_some() && (newest || field.is_none()) {
                *field = v;
            }
        }
        take(&mut self.nas_ip, e.nas_ip.map(|i| i.to_string()), newest);
        take(&mut self.nas_identifier, e.nas_identifier.clone(), newest);
        take(&mut self.nas_port_id, e.nas_port_id.clone(), newest);
        take(
            &mut self.framed_ip,
            e.framed_ip.map(|i| i.to_string()),
            newest,
        );
        take(&mut self.calling_mac, e.calling_station_id.clone(), newest);
        take(
            &mut self.interim_interval,
            e.interim_interval
                .map(|i| i32::try_from(i).unwrap_or(i32::MAX)),
            newest,
        );

        // Start time: a Start's own time beats one derived from Acct-Session-Time.
        match e.status {
            StatusType::Start => {
                self.started_at = if self.start_seen {
                    self.started_at.min(t)
                } else {
                    t
                };
                self.start_seen = true;
            }
            _ if !self.start_seen => {
                let derived = t - Duration::seconds(i64::from(e.session_time.unwrap_or(0)));
                self.started_at = self.started_at.min(derived);
            }
            _ => {}
        }

        // Counters only go up; the increase is what usage gets.
        let bump = |cur: &mut i64, v: Option<i64>| -> i64 {
            match v {
                Some(v) if v > *cur => v - std::mem::replace(cur, v),
                _ => 0,
            }
        };
        let d_in = bump(&mut self.input_bytes, e.input_bytes.map(clamp));
        let d_out = bump(&mut self.output_bytes, e.output_bytes.map(clamp));
        let d_sec = bump(&mut self.session_seconds, e.session_time.map(i64::from));
        bump(&mut self.input_packets, e.input_packets.map(i64::from));
        bump(&mut self.output_packets, e.output_packets.map(i64::from));

        // Open / closed.
        match e.status {
            StatusType::Stop => {
                let cause = e.terminate_cause.map(terminate_cause_name);
                if self.closed_by == Some(ClosedBy::Router) {
                    if self.stopped_at.is_none_or(|s| t < s) {
                        self.stopped_at = Some(t);
                    }
                    take(&mut self.terminate_cause, cause, false);
                } else if self.closed_by != Some(ClosedBy::NasReboot) {
                    self.stopped_at = Some(t);
                    self.terminate_cause = cause;
                    self.closed_by = Some(ClosedBy::Router);
                }
            }
            StatusType::InterimUpdate
                if self.closed_by == Some(ClosedBy::Stale)
                    && self.stopped_at.is_some_and(|s| t > s) =>
            {
                self.stopped_at = None;
                self.terminate_cause = None;
                self.closed_by = None;
            }
            _ => {}
        }
        if newest {
            self.last_update_at = t;
        }
        [d_in, d_out, d_sec]
    }

    fn close_by_nas(&mut self, t: DateTime<Utc>) -> bool {
        if self.stopped_at.is_some() {
            return false;
        }
        self.stopped_at = Some(t);
        self.terminate_cause = Some("NAS-Reboot".to_owned());
        self.closed_by = Some(ClosedBy::NasReboot);
        true
    }
}

const SESSION_SELECT: &str = "SELECT id, unique_key, router_id, host(source_ip) AS source_ip, \
    host(nas_ip) AS nas_ip, nas_identifier, username, subscriber_id, acct_session_id, nas_port, \
    nas_port_id, host(framed_ip) AS framed_ip, calling_mac, started_at, start_seen, \
    last_update_at, stopped_at, terminate_cause, input_bytes, output_bytes, input_packets, \
    output_packets, session_seconds, interim_interval, closed_by FROM sessions";

fn state_from_row(row: &sqlx::postgres::PgRow) -> Result<SessionState, sqlx::Error> {
    let source_ip: String = row.try_get("source_ip")?;
    let closed_by: Option<String> = row.try_get("closed_by")?;
    Ok(SessionState {
        id: Some(row.try_get("id")?),
        unique_key: row.try_get("unique_key")?,
        router_id: row.try_get("router_id")?,
        source_ip: source_ip.parse().map_err(|e| sqlx::Error::ColumnDecode {
            index: "source_ip".to_owned(),
            source: Box::new(e),
        })?,
        nas_ip: row.try_get("nas_ip")?,
        nas_identifier: row.try_get("nas_identifier")?,
        username: row.try_get("username")?,
        subscriber_id: row.try_get("subscriber_id")?,
        acct_session_id: row.try_get("acct_session_id")?,
        nas_port: row.try_get("nas_port")?,
        nas_port_id: row.try_get("nas_port_id")?,
        framed_ip: row.try_get("framed_ip")?,
        calling_mac: row.try_get("calling_mac")?,
        started_at: row.try_get("started_at")?,
        start_seen: row.try_get("start_seen")?,
        last_update_at: row.try_get("last_update_at")?,
        stopped_at: row.try_get("stopped_at")?,
        terminate_cause: row.try_get("terminate_cause")?,
        input_bytes: row.try_get("input_bytes")?,
        output_bytes: row.try_get("output_bytes")?,
        input_packets: row.try_get("input_packets")?,
        output_packets: row.try_get("output_packets")?,
        session_seconds: row.try_get("session_seconds")?,
        interim_interval: row.try_get("interim_interval")?,
        closed_by: closed_by.as_deref().and_then(ClosedBy::parse),
    })
}

async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ACCOUNTING_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Router ids by source address.
async fn routers_by_ip(
    conn: &mut PgConnection,
    ips: Vec<String>,
) -> Result<HashMap<IpAddr, i64>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT id, host(ip) AS ip FROM routers WHERE ip = ANY($1::text[]::inet[])")
            .bind(ips)
            .fetch_all(&mut *conn)
            .await?;
    let mut out = HashMap::new();
    for r in rows {
        let ip: String = r.try_get("ip")?;
        if let Ok(ip) = ip.parse() {
            out.insert(ip, r.try_get("id")?);
        }
    }
    Ok(out)
}

/// Subscriber ids of usernames: by username, else (MAC-auth hotspot logins) by bound MAC,
/// else (with the voucher key) as a voucher code.
async fn subscribers_by_username(
    conn: &mut PgConnection,
    usernames: Vec<String>,
    vouchers: Option<&VoucherKey>,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let macs: Vec<String> = usernames
        .iter()
        .filter_map(|u| u.parse::<Mac>().ok())
        .map(|m| m.to_string())
        .collect();
    let rows = sqlx::query(
        "SELECT id, username, mac::text AS mac FROM subscribers \
         WHERE username = ANY($1) OR mac = ANY($2::text[]::macaddr[])",
    )
    .bind(&usernames)
    .bind(macs)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_name = HashMap::new();
    let mut by_mac = HashMap::new();
    for r in rows {
        let id: i64 = r.try_get("id")?;
        by_name.insert(r.try_get::<String, _>("username")?, id);
        if let Some(mac) = r.try_get::<Option<String>, _>("mac")? {
            if let Ok(m) = mac.parse::<Mac>() {
                by_mac.insert(m, id);
            }
        }
    }
    let mut out = HashMap::new();
    let mut unmatched = Vec::new();
    for u in usernames {
        let id = by_name
            .get(&u)
            .copied()
            .or_else(|| u.parse::<Mac>().ok().and_then(|m| by_mac.get(&m).copied()));
        match id {
            Some(id) => {
                out.insert(u, id);
            }
            None => unmatched.push(u),
        }
    }
    // Only what matched nobody can be a voucher code: the keyed hash and a second query
    // are spent on those alone, not on every subscriber's session.
    if let Some(key) = vouchers {
        // (code as typed, lookup name): one voucher may be typed several ways.
        let codes: Vec<(String, String)> = unmatched
            .into_iter()
            .filter_map(|u| key.lookup_name(&u).map(|name| (u, name)))
            .collect();
        if !codes.is_empty() {
            let names: Vec<&str> = codes.iter().map(|(_, name)| name.as_str()).collect();
            let found: HashMap<String, i64> =
                sqlx::query_as("SELECT username, id FROM subscribers WHERE username = ANY($1)")
                    .bind(&names)
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .collect();
            for (code, name) in codes {
                if let Some(id) = found.get(&name) {
                    out.insert(code, *id);
                }
            }
        }
    }
    Ok(out)
}

/// Applies a batch of accounting events inside the caller's transaction (see the module
/// docs for the rules; `vouchers` is the voucher key, without which a voucher code matches
/// no subscriber). Commit the transaction to make it durable.
pub async fn apply_batch(
    conn: &mut PgConnection,
    events: &[AccountingEvent],
    vouchers: Option<&VoucherKey>,
) -> Result<IngestStats, sqlx::Error> {
    let mut stats = IngestStats {
        events: events.len(),
        ..IngestStats::default()
    };
    if events.is_empty() {
        return Ok(stats);
    }
    lock(conn).await?;

    let keys: Vec<Option<String>> = events.iter().map(AccountingEvent::session_key).collect();
    let mut distinct_keys: Vec<String> = keys.iter().flatten().cloned().collect();
    distinct_keys.sort_unstable();
    distinct_keys.dedup();
    let mut sessions: HashMap<String, SessionState> = HashMap::with_capacity(distinct_keys.len());
    if !distinct_keys.is_empty() {
        let rows = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE unique_key = ANY($1) FOR UPDATE"
        ))
        .bind(&distinct_keys)
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            let s = state_from_row(r)?;
            sessions.insert(s.unique_key.clone(), s);
        }
    }
    // How the stored sessions counted towards open sessions before this batch; new sessions
    // did not count.
    let before: HashMap<String, OpenState> = sessions
        .iter()
        .map(|(k, s)| (k.clone(), (s.stopped_at.is_none(), s.subscriber_id)))
        .collect();

    // Merge, in order.
    let mut usage: UsageDelta = HashMap::new();
    let mut nas_closures: Vec<(IpAddr, DateTime<Utc>)> = Vec::new();
    // Usage increases wait for the subscriber lookup: (session key, day, deltas).
    let mut pending: Vec<(String, NaiveDate, [i64; 3])> = Vec::new();
    for (e, key) in events.iter().zip(&keys) {
        let t = e.event_time();
        match key {
            None => {
                // Accounting-On/Off: every open session of this router is gone.
                let ip = e.source_ip();
                for s in sessions.values_mut().filter(|s| s.source_ip == ip) {
                    if s.close_by_nas(t) {
                        stats.sessions_closed_by_nas += 1;
                    }
                }
                if !nas_closures.iter().any(|(i, _)| *i == ip) {
                    nas_closures.push((ip, t));
                }
            }
            Some(key) => {
                let s = sessions
                    .entry(key.clone())
                    .or_insert_with(|| SessionState::new(key.clone(), e, t));
                let d = s.apply(e, t);
                if d != [0; 3] {
                    pending.push((key.clone(), t.date_naive(), d));
                }
            }
        }
    }

    // Routers and subscribers of the sessions that do not have them yet.
    let mut ips: Vec<String> = sessions
        .values()
        .filter(|s| s.router_id.is_none())
        .map(|s| s.source_ip.to_string())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    if !ips.is_empty() {
        let routers = routers_by_ip(conn, ips).await?;
        for s in sessions.values_mut().filter(|s| s.router_id.is_none()) {
            s.router_id = routers.get(&s.source_ip).copied();
        }
    }
    let mut names: Vec<String> = sessions
        .values()
        .filter(|s| s.subscriber_id.is_none())
        .map(|s| s.username.clone())
        .collect();
    names.sort_unstable();
    names.dedup();
    if !names.is_empty() {
        let subs = subscribers_by_username(conn, names, vouchers).await?;
        for s in sessions.values_mut().filter(|s| s.subscriber_id.is_none()) {
            s.subscriber_id = subs.get(&s.username).copied();
        }
    }
    for (key, day, d) in pending {
        if let Some(sub) = sessions.get(&key).and_then(|s| s.subscriber_id) {
            let u = usage.entry((sub, day)).or_insert([0; 3]);
            for (a, b) in u.iter_mut().zip(d) {
                *a = a.saturating_add(b);
            }
        }
    }

    let mut notify: BTreeSet<i64> = BTreeSet::new();
    for (key, s) in &sessions {
        let was = before.get(key).copied().unwrap_or((false, None));
        notify.extend(open_count_changes(
            was,
            (s.stopped_at.is_none(), s.subscriber_id),
        ));
    }

    write_sessions(conn, sessions.values(), &mut stats).await?;
    write_usage(conn, &usage).await?;
    stats.usage_rows = usage.len();
    stats.allowances_counted = count_down_allowances(conn, &allowance_decrements(&usage)).await?;

    if !nas_closures.is_empty() {
        let (ips, ats): (Vec<String>, Vec<DateTime<Utc>>) = nas_closures
            .iter()
            .map(|(ip, t)| (ip.to_string(), *t))
            .unzip();
        let closed: Vec<Option<i64>> = sqlx::query_scalar(
            "UPDATE sessions s SET stopped_at = o.at, terminate_cause = 'NAS-Reboot', \
             closed_by = 'nas-reboot' \
             FROM UNNEST($1::text[], $2::timestamptz[]) AS o(ip, at) \
             WHERE s.stopped_at IS NULL AND s.source_ip = o.ip::inet \
             AND s.unique_key <> ALL($3) \
             RETURNING s.subscriber_id",
        )
        .bind(ips)
        .bind(ats)
        .bind(&distinct_keys)
        .fetch_all(&mut *conn)
        .await?;
        stats.sessions_closed_by_nas += closed.len() as u64;
        notify.extend(closed.into_iter().flatten());
    }
    stats.subscribers_notified = notify_subscribers(conn, notify).await?;
    Ok(stats)
}

/// Counts the allowances down by `decrements` (subscriber id -> bytes, seconds): floor 0,
/// NULL (unlimited) stays NULL. Only rows whose allowance actually changes are written, so
/// unlimited subscribers and those already at 0 cost no row version and no republication.
/// Returns the rows changed.
async fn count_down_allowances(
    conn: &mut PgConnection,
    decrements: &BTreeMap<i64, (i64, i64)>,
) -> Result<u64, sqlx::Error> {
    let (ids, (bytes, secs)): (Vec<i64>, (Vec<i64>, Vec<i64>)) = decrements
        .iter()
        .filter(|(_, (b, t))| *b > 0 || *t > 0)
        .map(|(id, d)| (*id, *d))
        .unzip();
    if ids.is_empty() {
        return Ok(0);
    }
    // GREATEST ignores NULLs (GREATEST(NULL - x, 0) is 0), hence the CASEs that keep NULL.
    let done = sqlx::query(
        "UPDATE subscribers s SET \
           data_remaining_bytes = CASE WHEN s.data_remaining_bytes IS NOT NULL \
             THEN GREATEST(s.data_remaining_bytes - d.bytes, 0) END, \
           time_remaining_seconds = CASE WHEN s.time_remaining_seconds IS NOT NULL \
             THEN GREATEST(s.time_remaining_seconds - d.secs, 0) END \
         FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS d(id, bytes, secs) \
         WHERE s.id = d.id \
           AND ((d.bytes > 0 AND s.data_remaining_bytes > 0) \
             OR (d.secs > 0 AND s.time_remaining_seconds > 0))",
    )
    .bind(ids)
    .bind(bytes)
    .bind(secs)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Sends `subscribers:<id>` on the snapshot channel for each id, in one statement, so the
/// publisher refetches them (with their open-session counts). Delivered at commit, and not
/// at all if the transaction rolls back. Returns how many were sent.
async fn notify_subscribers(
    conn: &mut PgConnection,
    ids: BTreeSet<i64>,
) -> Result<usize, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = ids.into_iter().collect();
    sqlx::query("SELECT pg_notify($2, 'subscribers:' || id) FROM UNNEST($1::bigint[]) AS id")
        .bind(&ids)
        .bind(crate::publisher::CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(ids.len())
}

async fn write_sessions<'a>(
    conn: &mut PgConnection,
    sessions: impl Iterator<Item = &'a SessionState>,
    stats: &mut IngestStats,
) -> Result<(), sqlx::Error> {
    let mut c = SessionColumns::default();
    let mut u = SessionColumns::default();
    for s in sessions {
        if s.id.is_some() {
            stats.sessions_updated += 1;
            u.push(s);
        } else {
            stats.sessions_created += 1;
            c.push(s);
        }
    }
    update_sessions(conn, u).await?;
    if c.unique_key.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sessions (unique_key, router_id, source_ip, nas_ip, nas_identifier, username, \
           subscriber_id, acct_session_id, nas_port, nas_port_id, framed_ip, calling_mac, started_at, \
           start_seen, last_update_at, stopped_at, terminate_cause, input_bytes, output_bytes, \
           input_packets, output_packets, session_seconds, interim_interval, closed_by) \
         SELECT k, r, src::inet, nip::inet, nid, u, sub, asid, np, npid, fip::inet, mac, sa, ss, lu, so, tc, \
           ib, ob, ip, op, sec, ii, cb \
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
           $7::bigint[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[], \
           $13::timestamptz[], $14::bool[], $15::timestamptz[], $16::timestamptz[], $17::text[], \
           $18::bigint[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[], $23::int[], \
           $24::text[]) \
           AS t(k, r, src, nip, nid, u, sub, asid, np, npid, fip, mac, sa, ss, lu, so, tc, ib, ob, ip, op, sec, ii, cb) \
         ON CONFLICT (unique_key) DO UPDATE SET \
           router_id = EXCLUDED.router_id, nas_ip = EXCLUDED.nas_ip, \
           nas_identifier = EXCLUDED.nas_identifier, subscriber_id = EXCLUDED.subscriber_id, \
           nas_port_id = EXCLUDED.nas_port_id, framed_ip = EXCLUDED.framed_ip, \
           calling_mac = EXCLUDED.calling_mac, started_at = EXCLUDED.started_at, \
           start_seen = EXCLUDED.start_seen, last_update_at = EXCLUDED.last_update_at, \
           stopped_at = EXCLUDED.stopped_at, terminate_cause = EXCLUDED.terminate_cause, \
           input_bytes = GREATEST(sessions.input_bytes, EXCLUDED.input_bytes), \
           output_bytes = GREATEST(sessions.output_bytes, EXCLUDED.output_bytes), \
           input_packets = GREATEST(sessions.input_packets, EXCLUDED.input_packets), \
           output_packets = GREATEST(sessions.output_packets, EXCLUDED.output_packets), \
           session_seconds = GREATEST(sessions.session_seconds, EXCLUDED.session_seconds), \
           interim_interval = EXCLUDED.interim_interval, closed_by = EXCLUDED.closed_by",
    )
    .bind(c.unique_key)
    .bind(c.router_id)
    .bind(c.source_ip)
    .bind(c.nas_ip)
    .bind(c.nas_identifier)
    .bind(c.username)
    .bind(c.subscriber_id)
    .bind(c.acct_session_id)
    .bind(c.nas_port)
    .bind(c.nas_port_id)
    .bind(c.framed_ip)
    .bind(c.calling_mac)
    .bind(c.started_at)
    .bind(c.start_seen)
    .bind(c.last_update_at)
    .bind(c.stopped_at)
    .bind(c.terminate_cause)
    .bind(c.input_bytes)
    .bind(c.output_bytes)
    .bind(c.input_packets)
    .bind(c.output_packets)
    .bind(c.session_seconds)
    .bind(c.interim_interval)
    .bind(c.closed_by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes sessions that are in the table (locked by this transaction), by id. Most of a
/// batch in the steady state (Interim-Updates of known sessions): an UPDATE by primary key
/// of only the columns a packet can change costs Postgres much less than the upsert (no
/// speculative insertion and second row lock, no key columns sent and parsed again).
async fn update_sessions(conn: &mut PgConnection, u: SessionColumns) -> Result<(), sqlx::Error> {
    if u.id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE sessions s SET router_id = t.r, nas_ip = t.nip::inet, nas_identifier = t.nid, \
           subscriber_id = t.sub, nas_port_id = t.npid, framed_ip = t.fip::inet, \
           calling_mac = t.mac, started_at = t.sa, start_seen = t.ss, last_update_at = t.lu, \
           stopped_at = t.so, terminate_cause = t.tc, \
           input_bytes = GREATEST(s.input_bytes, t.ib), output_bytes = GREATEST(s.output_bytes, t.ob), \
           input_packets = GREATEST(s.input_packets, t.ip), \
           output_packets = GREATEST(s.output_packets, t.op), \
           session_seconds = GREATEST(s.session_seconds, t.sec), interim_interval = t.ii, \
           closed_by = t.cb \
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], \
           $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::bool[], \
           $11::timestamptz[], $12::timestamptz[], $13::text[], $14::bigint[], $15::bigint[], \
           $16::bigint[], $17::bigint[], $18::bigint[], $19::int[], $20::text[]) \
           AS t(id, r, nip, nid, sub, npid, fip, mac, sa, ss, lu, so, tc, ib, ob, ip, op, sec, ii, cb) \
         WHERE s.id = t.id",
    )
    .bind(u.id)
    .bind(u.router_id)
    .bind(u.nas_ip)
    .bind(u.nas_identifier)
    .bind(u.subscriber_id)
    .bind(u.nas_port_id)
    .bind(u.framed_ip)
    .bind(u.calling_mac)
    .bind(u.started_at)
    .bind(u.start_seen)
    .bind(u.last_update_at)
    .bind(u.stopped_at)
    .bind(u.terminate_cause)
    .bind(u.input_bytes)
    .bind(u.output_bytes)
    .bind(u.input_packets)
    .bind(u.output_packets)
    .bind(u.session_seconds)
    .bind(u.interim_interval)
    .bind(u.closed_by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Column arrays for the UNNEST upsert.
#[derive(Default)]
struct SessionColumns {
    /// Of rows in the table (updated by id; their key columns stay empty).
    id: Vec<i64>,
    unique_key: Vec<String>,
    router_id: Vec<Option<i64>>,
    source_ip: Vec<String>,
    nas_ip: Vec<Option<String>>,
    nas_identifier: Vec<Option<String>>,
    username: Vec<String>,
    subscriber_id: Vec<Option<i64>>,
    acct_session_id: Vec<String>,
    nas_port: Vec<Option<i64>>,
    nas_port_id: Vec<Option<String>>,
    framed_ip: Vec<Option<String>>,
    calling_mac: Vec<Option<String>>,
    started_at: Vec<DateTime<Utc>>,
    start_seen: Vec<bool>,
    last_update_at: Vec<DateTime<Utc>>,
    stopped_at: Vec<Option<DateTime<Utc>>>,
    terminate_cause: Vec<Option<String>>,
    input_bytes: Vec<i64>,
    output_bytes: Vec<i64>,
    input_packets: Vec<i64>,
    output_packets: Vec<i64>,
    session_seconds: Vec<i64>,
    interim_interval: Vec<Option<i32>>,
    closed_by: Vec<Option<&'static str>>,
}

impl SessionColumns {
    /// Adds a session: a row in the table by its id and changeable columns, a new one whole.
    fn push(&mut self, s: &SessionState) {
        if let Some(id) = s.id {
            self.id.push(id);
        } else {
            self.unique_key.push(s.unique_key.clone());
            self.source_ip.push(s.source_ip.to_string());
            self.username.push(s.username.clone());
            self.acct_session_id.push(s.acct_session_id.clone());
            self.nas_port.push(s.nas_port);
        }
        self.router_id.push(s.router_id);
        self.nas_ip.push(s.nas_ip.clone());
        self.nas_identifier.push(s.nas_identifier.clone());
        self.subscriber_id.push(s.subscriber_id);
        self.nas_port_id.push(s.nas_port_id.clone());
        self.framed_ip.push(s.framed_ip.clone());
        self.calling_mac.push(s.calling_mac.clone());
        self.started_at.push(s.started_at);
        self.start_seen.push(s.start_seen);
        self.last_update_at.push(s.last_update_at);
        self.stopped_at.push(s.stopped_at);
        self.terminate_cause.push(s.terminate_cause.clone());
        self.input_bytes.push(s.input_bytes);
        self.output_bytes.push(s.output_bytes);
        self.input_packets.push(s.input_packets);
        self.output_packets.push(s.output_packets);
        self.session_seconds.push(s.session_seconds);
        self.interim_interval.push(s.interim_interval);
        self.closed_by.push(s.closed_by.map(ClosedBy::as_str));
    }
}

async fn write_usage(conn: &mut PgConnection, usage: &UsageDelta) -> Result<(), sqlx::Error> {
    if usage.is_empty() {
        return Ok(());
    }
    let mut subs = Vec::with_capacity(usage.len());
    let mut days = Vec::with_capacity(usage.len());
    let mut ins = Vec::with_capacity(usage.len());
    let mut outs = Vec::with_capacity(usage.len());
    let mut secs = Vec::with_capacity(usage.len());
    for (&(sub, day), &[i, o, s]) in usage {
        subs.push(sub);
        days.push(day);
        ins.push(i);
        outs.push(o);
        secs.push(s);
    }
    sqlx::query(
        "INSERT INTO usage_daily (subscriber_id, day, input_bytes, output_bytes, seconds) \
         SELECT * FROM UNNEST($1::bigint[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[]) \
         ON CONFLICT (subscriber_id, day) DO UPDATE SET \
           input_bytes = usage_daily.input_bytes + EXCLUDED.input_bytes, \
           output_bytes = usage_daily.output_bytes + EXCLUDED.output_bytes, \
           seconds = usage_daily.seconds + EXCLUDED.seconds",
    )
    .bind(subs)
    .bind(days)
    .bind(ins)
    .bind(outs)
    .bind(secs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Closes open sessions with no update for 2.5 x their interim interval (`default_interim`
/// seconds when the router sent none) as of `now`: `stopped_at` becomes the last update,
/// `closed_by = 'stale'`. Returns how many were closed. A later Interim or Stop from the
/// router overrides this (see the module docs). Their subscribers are announced on the
/// snapshot channel, so a customer locked out by the simultaneous-use limit after a router
/// power cut can log in again.
///
/// An interval the router sent below the RFC 2869 minimum of 60 s counts as 60 s (or as
/// `default_interim`, if that is lower): that floor bounds the index range scanned.
pub async fn close_stale(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    default_interim: u32,
) -> Result<u64, sqlx::Error> {
    lock(conn).await?;
    let closed: Vec<Option<i64>> = sqlx::query_scalar(
        "UPDATE sessions SET stopped_at = last_update_at, closed_by = 'stale' \
         WHERE stopped_at IS NULL \
           AND last_update_at < $1 - make_interval(secs => 2.5 * LEAST(60, $2)) \
           AND last_update_at < $1 - make_interval(secs => 2.5 * COALESCE(interim_interval, $2)) \
         RETURNING subscriber_id",
    )
    .bind(now)
    .bind(f64::from(default_interim))
    .fetch_all(&mut *conn)
    .await?;
    let count = closed.len() as u64;
    notify_subscribers(conn, closed.into_iter().flatten().collect()).await?;
    Ok(count)
}

/// One post-auth result, for `auth_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResult {
    /// When radiusd answered.
    pub at: DateTime<Utc>,
    /// UDP source of the Access-Request (the router).
    pub source: Option<IpAddr>,
    /// User-Name.
    pub username: String,
    /// NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// Calling-Station-Id.
    pub calling_station_id: Option<String>,
    /// Access-Accept (true) or Access-Reject.
    pub accepted: bool,
    /// Why (the module's reject reason; None or a note for accepts).
    pub reason: Option<String>,
}

/// Appends auth results to `auth_log` in one statement; the router is resolved from the
/// source address. Returns the rows written.
pub async fn record_auth_results(
    conn: &mut PgConnection,
    results: &[AuthResult],
) -> Result<u64, sqlx::Error> {
    if results.is_empty() {
        return Ok(0);
    }
    let at: Vec<DateTime<Utc>> = results.iter().map(|r| r.at).collect();
    let src: Vec<Option<String>> = results
        .iter()
        .map(|r| r.source.map(|s| s.to_string()))
        .collect();
    let user: Vec<&str> = results.iter().map(|r| r.username.as_str()).collect();
    let nid: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.nas_identifier.as_deref())
        .collect();
    let csid: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.calling_station_id.as_deref())
        .collect();
    let acc: Vec<bool> = results.iter().map(|r| r.accepted).collect();
    let reason: Vec<Option<&str>> = results.iter().map(|r| r.reason.as_deref()).collect();
    let done = sqlx::query(
        "INSERT INTO auth_log (at, router_id, source_ip, username, nas_identifier, \
           calling_station_id, accepted, reason) \
         SELECT t.at, r.id, t.src::inet, t.u, t.nid, t.csid, t.acc, t.reason \
         FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], \
           $6::bool[], $7::text[]) WITH ORDINALITY AS t(at, src, u, nid, csid, acc, reason, n) \
         LEFT JOIN routers r ON r.ip = t.src::inet \
         ORDER BY t.n",
    )
    .bind(at)
    .bind(src)
    .bind(user)
    .bind(nid)
    .bind(csid)
    .bind(acc)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ev(status: StatusType, secs: i64, input: Option<u64>, time: Option<u32>) -> AccountingEvent {
        AccountingEvent {
            received_at: Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
                + Duration::seconds(secs),
            source: "192.0.2.1:1813".parse().unwrap(),
            status,
            username: Some("alice".into()),
            acct_session_id: Some("81000001".into()),
            nas_ip: None,
            nas_identifier: None,
            nas_port: Some(1),
            nas_port_id: None,
            framed_ip: None,
            calling_station_id: None,
            input_bytes: input,
            output_bytes: input.map(|i| i * 2),
            input_packets: None,
            output_packets: None,
            session_time: time,
            terminate_cause: (status == StatusType::Stop).then_some(1),
            event_timestamp: None,
            delay_time: 0,
            interim_interval: None,
        }
    }

    fn run(events: &[AccountingEvent]) -> (SessionState, [i64; 3]) {
        let mut s: Option<SessionState> = None;
        let mut total = [0; 3];
        for e in events {
            let t = e.event_time();
            let st = s.get_or_insert_with(|| SessionState::new("k".into(), e, t));
            let d = st.apply(e, t);
            for (a, b) in total.iter_mut().zip(d) {
                *a += b;
            }
        }
        (s.unwrap(), total)
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn every_order_gives_the_same_session() {
        let g = 1u64 << 32;
        let seq = [
            ev(StatusType::Start, 0, None, None),
            ev(StatusType::InterimUpdate, 300, Some(5 * g + 7), Some(300)),
            ev(StatusType::InterimUpdate, 600, Some(9 * g + 1), Some(600)),
            ev(StatusType::Stop, 700, Some(10 * g), Some(700)),
            // a retransmitted Start, one second later
            ev(StatusType::Start, 1, None, None),
        ];
        let (want, total) = run(&seq);
        assert_eq!(want.input_bytes, (10 * g) as i64);
        assert_eq!(want.output_bytes, (20 * g) as i64);
        assert_eq!(total, [(10 * g) as i64, (20 * g) as i64, 700]);
        assert_eq!(want.closed_by, Some(ClosedBy::Router));
        assert_eq!(want.started_at, seq[0].event_time());
        assert_eq!(want.stopped_at, Some(seq[3].event_time()));
        for p in permutations(seq.len()) {
            let events: Vec<_> = p.iter().map(|&i| seq[i].clone()).collect();
            let (got, t) = run(&events);
            assert_eq!(t, total, "{p:?}");
            assert_eq!(got.input_bytes, want.input_bytes, "{p:?}");
            assert_eq!(got.session_seconds, want.session_seconds, "{p:?}");
            assert_eq!(got.started_at, want.started_at, "{p:?}");
            assert_eq!(got.stopped_at, want.stopped_at, "{p:?}");
            assert_eq!(got.closed_by, want.closed_by, "{p:?}");
            assert_eq!(got.last_update_at, want.last_update_at, "{p:?}");
        }
    }

    #[test]
    fn open_count_changes_name_both_sides() {
        let changes = |b, a| open_count_changes(b, a).collect::<Vec<_>>();
        // created open / stopped / reopened
        assert_eq!(changes((false, None), (true, Some(7))), [7]);
        assert_eq!(changes((true, Some(7)), (false, Some(7))), [7]);
        assert_eq!(changes((false, Some(7)), (true, Some(7))), [7]);
        // counters only: nothing
        assert!(changes((true, Some(7)), (true, Some(7))).is_empty());
        assert!(changes((false, Some(7)), (false, Some(7))).is_empty());
        // created already stopped (Stop without Start): nothing to count
        assert!(changes((false, None), (false, Some(7))).is_empty());
        // an open session of an unknown user that now matches a subscriber
        assert_eq!(changes((true, None), (true, Some(7))), [7]);
        // unknown user throughout
        assert!(changes((false, None), (true, None)).is_empty());
        // moved between subscribers while open: both counts change
        assert_eq!(changes((true, Some(7)), (true, Some(8))), [7, 8]);
    }

    #[test]
    fn allowance_decrements_sum_days_and_directions() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
        let usage: UsageDelta = HashMap::from([
            ((7, day(1)), [10, 20, 30]),
            ((7, day(2)), [1, 2, 3]),
            ((3, day(1)), [0, 0, 5]),
            ((9, day(1)), [i64::MAX, 1, 0]),
        ]);
        let d = allowance_decrements(&usage);
        assert_eq!(
            d.into_iter().collect::<Vec<_>>(),
            [(3, (0, 5)), (7, (33, 33)), (9, (i64::MAX, 0))]
        );
    }

    #[test]
    fn stale_is_overridden_by_the_router() {
        let (mut s, _) = run(&[ev(StatusType::InterimUpdate, 300, Some(10), Some(300))]);
        assert_eq!(
            s.started_at,
            ev(StatusType::Start, 0, None, None).event_time()
        );
        s.stopped_at = Some(s.last_update_at);
        s.closed_by = Some(ClosedBy::Stale);
        // A replay of the same interim does not reopen it; a newer one does.
        let e = ev(StatusType::InterimUpdate, 300, Some(10), Some(300));
        s.apply(&e, e.event_time());
        assert_eq!(s.closed_by, Some(ClosedBy::Stale));
        let e = ev(StatusType::InterimUpdate, 900, Some(20), Some(900));
        assert_eq!(s.apply(&e, e.event_time()), [10, 20, 600]);
        assert_eq!(s.closed_by, None);
        // NAS reboot closure is final.
        assert!(s.close_by_nas(e.event_time()));
        let e = ev(StatusType::Stop, 1000, Some(30), Some(1000));
        s.apply(&e, e.event_time());
        assert_eq!(s.closed_by, Some(ClosedBy::NasReboot));
        assert_eq!(s.input_bytes, 30);
    }
}
