//! The snapshot publisher: keeps an in-memory copy of plans, routers and subscribers, follows
//! `LISTEN jasiyo_changes`, and publishes a fresh snapshot for rlm_jasiyo after every change.
//!
//! Flow:
//! 1. A listener task `LISTEN`s first, then the publisher does a full load (one query per
//!    table, inside one REPEATABLE READ transaction), builds and publishes. Listening before
//!    loading means no change can fall between the two.
//! 2. Notifications (`<table>:<id>`, or `<table>:*` after TRUNCATE) are coalesced: the
//!    publisher collects until the channel has been quiet for [`QUIET`] or [`MAX_COALESCE`]
//!    has passed since the first one, then refetches just those rows by id (rows that are
//!    gone are deletes) and publishes. A publication is an overlay carrying the subscribers
//!    changed since the last base (small, so a change at a million subscribers is out in
//!    milliseconds), or a new base after a full load or once the overlay would exceed
//!    [`OVERLAY_LIMIT`] subscribers.
//! 3. If the listener's connection drops, notifications may have been lost: it reconnects,
//!    re-`LISTEN`s, and asks for a full reload.
//! 4. Any failure (database down, disk full, a transiently inconsistent set of rows) is logged
//!    and retried with backoff; readers keep the last good snapshot meanwhile.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::TryStreamExt;
use jasiyo_snapshot::{OverlayOf, PlanEntry, Publisher, RouterEntry, SubscriberEntry};
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use crate::domain::{Mac, Service, SubscriberStatus};

/// The NOTIFY channel the triggers use.
pub const CHANNEL: &str = "jasiyo_changes";
/// Stop collecting a burst once the channel has been quiet this long.
pub const QUIET: Duration = Duration::from_millis(5);
/// Never collect a burst for longer than this.
pub const MAX_COALESCE: Duration = Duration::from_millis(50);
/// Above this many changed rows in one burst, a full reload is cheaper than refetching by id.
const FULL_RELOAD_THRESHOLD: usize = 20_000;
/// Subscribers changed since the last base above which the next publication is a new base
/// rather than an overlay: overlays cost in proportion to their size, bases to the total.
const OVERLAY_LIMIT: usize = 50_000;

/// Which table a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Plans,
    Routers,
    Subscribers,
}

#[derive(Debug)]
enum Event {
    Row(Table, i64),
    Reload,
}

fn parse_payload(payload: &str) -> Option<Event> {
    let (table, id) = payload.split_once(':')?;
    let table = match table {
        "plans" => Table::Plans,
        "routers" => Table::Routers,
        "subscribers" => Table::Subscribers,
        _ => return None,
    };
    if id == "*" {
        return Some(Event::Reload);
    }
    Some(Event::Row(table, id.parse().ok()?))
}

/// Changes waiting to be applied.
#[derive(Debug, Default)]
struct Pending {
    full: bool,
    plans: BTreeSet<i64>,
    routers: BTreeSet<i64>,
    subscribers: BTreeSet<i64>,
}

impl Pending {
    fn add(&mut self, ev: Event) {
        match ev {
            Event::Reload => self.full = true,
            Event::Row(Table::Plans, id) => {
                self.plans.insert(id);
            }
            Event::Row(Table::Routers, id) => {
                self.routers.insert(id);
            }
            Event::Row(Table::Subscribers, id) => {
                self.subscribers.insert(id);
            }
        }
    }
    fn is_empty(&self) -> bool {
        !self.full
            && self.plans.is_empty()
            && self.routers.is_empty()
            && self.subscribers.is_empty()
    }
    fn len(&self) -> usize {
        self.plans.len() + self.routers.len() + self.subscribers.len()
    }
}

/// Rows keyed by id, stored contiguously so the builder can take a slice without copying.
struct Rows<T> {
    rows: Vec<T>,
    ids: Vec<i64>,
    index: HashMap<i64, usize>,
}

impl<T> Rows<T> {
    fn new() -> Self {
        Self {
            rows: Vec::new(),
            ids: Vec::new(),
            index: HashMap::new(),
        }
    }
    fn with_capacity(n: usize) -> Self {
        Self {
            rows: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
        }
    }
    fn upsert(&mut self, id: i64, row: T) {
        match self.index.get(&id) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(id, self.rows.len());
                self.rows.push(row);
                self.ids.push(id);
            }
        }
    }
    fn remove(&mut self, id: i64) {
        if let Some(i) = self.index.remove(&id) {
            self.rows.swap_remove(i);
            self.ids.swap_remove(i);
            if let Some(&moved) = self.ids.get(i) {
                self.index.insert(moved, i);
            }
        }
    }
    fn get(&self, id: i64) -> Option<&T> {
        self.index.get(&id).and_then(|&i| self.rows.get(i))
    }
    fn contains(&self, id: i64) -> bool {
        self.index.contains_key(&id)
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
}

/// The in-memory copy of everything a snapshot contains.
struct State {
    plans: Rows<PlanEntry>,
    routers: Rows<RouterEntry>,
    subscribers: Rows<SubscriberEntry>,
    /// Subscribers changed or deleted since the last published base: the next overlay
    /// carries them. Cleared when a base is published.
    since_base: HashSet<i64>,
    /// The rows were reloaded wholesale, so what changed is unknown: publish a base.
    base_needed: bool,
}

impl State {
    fn empty() -> Self {
        Self {
            plans: Rows::new(),
            routers: Rows::new(),
            subscribers: Rows::new(),
            since_base: HashSet::new(),
            base_needed: true,
        }
    }
}

const PLAN_SQL: &str = "SELECT id, rate_limit, ip_pool, service, simultaneous_use, \
     fup_rate_limit, duration_seconds FROM plans";
const ROUTER_SQL: &str = "SELECT id, name, host(ip) AS ip, secret, nas_identifier FROM routers";
/// Subscribers for the full load: open sessions counted for everybody at once by one
/// grouped scan of the open-session index, joined in.
const SUBSCRIBER_SQL_ALL: &str = "SELECT id, username, password, plan_id, status, \
     extract(epoch FROM expires_at)::bigint AS expires_at, host(static_ip) AS static_ip, \
     COALESCE(mac, voucher_mac)::text AS mac, data_remaining_bytes, time_remaining_seconds, \
     (voucher_batch_id IS NOT NULL AND activated_at IS NULL) AS unused, \
     coalesce(open.n, 0) AS open_sessions \
     FROM subscribers LEFT JOIN (SELECT subscriber_id, count(*) AS n FROM sessions \
     WHERE stopped_at IS NULL AND subscriber_id IS NOT NULL GROUP BY subscriber_id) open \
     ON open.subscriber_id = subscribers.id";
/// Subscribers refetched by id: a grouped scan of every open session would cost as much as
/// the full load, so each row counts its own through the partial index
/// `sessions_open_subscriber_idx`.
const SUBSCRIBER_SQL_BY_ID: &str = "SELECT id, username, password, plan_id, status, \
     extract(epoch FROM expires_at)::bigint AS expires_at, host(static_ip) AS static_ip, \
     COALESCE(mac, voucher_mac)::text AS mac, data_remaining_bytes, time_remaining_seconds, \
     (voucher_batch_id IS NOT NULL AND activated_at IS NULL) AS unused, \
     (SELECT count(*) FROM sessions WHERE sessions.subscriber_id = subscribers.id \
      AND sessions.stopped_at IS NULL) AS open_sessions \
     FROM subscribers";

fn bad_column(column: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: e.to_string().into(),
    }
}

fn plan_entry(row: &PgRow) -> Result<PlanEntry, sqlx::Error> {
    let service: String = row.try_get("service")?;
    let service: Service = service.parse().map_err(|e| bad_column("service", e))?;
    Ok(PlanEntry {
        id: row.try_get("id")?,
        rate_limit: row.try_get("rate_limit")?,
        ip_pool: row.try_get("ip_pool")?,
        service: service.into(),
        // The column is NULL (unlimited) or >= 1 by its CHECK.
        simultaneous_use: row
            .try_get::<Option<i32>, _>("simultaneous_use")?
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new),
        fup_rate_limit: row.try_get("fup_rate_limit")?,
        // > 0 by the column's CHECK.
        duration_seconds: u64::try_from(row.try_get::<i64, _>("duration_seconds")?)
            .map_err(|e| bad_column("duration_seconds", e))?,
    })
}

fn router_entry(row: &PgRow) -> Result<RouterEntry, sqlx::Error> {
    let ip: String = row.try_get("ip")?;
    Ok(RouterEntry {
        id: row.try_get("id")?,
        ip: ip.parse::<IpAddr>().map_err(|e| bad_column("ip", e))?,
        secret: row.try_get("secret")?,
        nas_identifier: row.try_get("nas_identifier")?,
        name: row.try_get("name")?,
    })
}

fn subscriber_entry(row: &PgRow) -> Result<SubscriberEntry, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let status: SubscriberStatus = status.parse().map_err(|e| bad_column("status", e))?;
    let static_ip: Option<String> = row.try_get("static_ip")?;
    let mac: Option<String> = row.try_get("mac")?;
    let data: Option<i64> = row.try_get("data_remaining_bytes")?;
    let time: Option<i64> = row.try_get("time_remaining_seconds")?;
    let open: i64 = row.try_get("open_sessions")?;
    Ok(SubscriberEntry {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password: row.try_get("password")?,
        plan_id: row.try_get("plan_id")?,
        status: status.into(),
        expires_at: row.try_get("expires_at")?,
        static_ip: static_ip
            .map(|s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|e| bad_column("static_ip", e))
            })
            .transpose()?,
        mac: mac
            .map(|s| {
                s.parse::<Mac>()
                    .map(|m| m.0)
                    .map_err(|e| bad_column("mac", e))
            })
            .transpose()?,
        data_remaining_bytes: data.map(|d| u64::try_from(d).unwrap_or(0)),
        time_remaining_seconds: time.map(|t| u64::try_from(t).unwrap_or(0)),
        open_sessions: u32::try_from(open).unwrap_or(u32::MAX),
        unused: row.try_get("unused")?,
    })
}

async fn begin_snapshot_read(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Loads everything: one streaming query per table, in one consistent read.
async fn full_load(pool: &PgPool) -> anyhow::Result<State> {
    let mut tx = begin_snapshot_read(pool).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM subscribers")
        .fetch_one(&mut *tx)
        .await?;
    let mut state = State {
        plans: Rows::new(),
        routers: Rows::new(),
        subscribers: Rows::with_capacity(usize::try_from(count).unwrap_or(0)),
        since_base: HashSet::new(),
        base_needed: true,
    };
    {
        let mut s = sqlx::query(PLAN_SQL).fetch(&mut *tx);
        while let Some(row) = s.try_next().await? {
            let e = plan_entry(&row)?;
            state.plans.upsert(e.id, e);
        }
    }
    {
        let mut s = sqlx::query(ROUTER_SQL).fetch(&mut *tx);
        while let Some(row) = s.try_next().await? {
            let e = router_entry(&row)?;
            state.routers.upsert(e.id, e);
        }
    }
    {
        let mut s = sqlx::query(SUBSCRIBER_SQL_ALL).fetch(&mut *tx);
        while let Some(row) = s.try_next().await? {
            let e = subscriber_entry(&row)?;
            state.subscribers.upsert(e.id, e);
        }
    }
    tx.commit().await?;
    Ok(state)
}

async fn fetch_by_ids<T>(
    conn: &mut PgConnection,
    sql: &str,
    ids: &[i64],
    parse: fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<(i64, T)>, sqlx::Error> {
    let rows = sqlx::query(&format!("{sql} WHERE id = ANY($1)"))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<i64, _>("id")?, parse(r)?)))
        .collect()
}

fn apply<T>(rows: &mut Rows<T>, ids: &BTreeSet<i64>, fetched: Vec<(i64, T)>) {
    let mut present = BTreeSet::new();
    for (id, row) in fetched {
        present.insert(id);
        rows.upsert(id, row);
    }
    for id in ids.difference(&present) {
        rows.remove(*id);
    }
}

/// Refetches the changed rows by id and applies them (absent rows are deletes).
async fn apply_incremental(
    pool: &PgPool,
    state: &mut State,
    pending: &Pending,
) -> anyhow::Result<()> {
    let mut tx = begin_snapshot_read(pool).await?;
    let mut plan_ids = pending.plans.clone();
    let subs = if pending.subscribers.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<i64> = pending.subscribers.iter().copied().collect();
        fetch_by_ids(&mut tx, SUBSCRIBER_SQL_BY_ID, &ids, subscriber_entry).await?
    };
    // A subscriber may already point at a plan whose notification has not reached us yet.
    for (_, s) in &subs {
        if !state.plans.contains(s.plan_id) {
            plan_ids.insert(s.plan_id);
        }
    }
    if !plan_ids.is_empty() {
        let ids: Vec<i64> = plan_ids.iter().copied().collect();
        let plans = fetch_by_ids(&mut tx, PLAN_SQL, &ids, plan_entry).await?;
        apply(&mut state.plans, &plan_ids, plans);
    }
    if !pending.routers.is_empty() {
        let ids: Vec<i64> = pending.routers.iter().copied().collect();
        let routers = fetch_by_ids(&mut tx, ROUTER_SQL, &ids, router_entry).await?;
        apply(&mut state.routers, &pending.routers, routers);
    }
    tx.commit().await?;
    apply(&mut state.subscribers, &pending.subscribers, subs);
    state.since_base.extend(pending.subscribers.iter().copied());
    Ok(())
}

/// Builds and publishes off the async executor; gives state and publisher back.
async fn build_and_publish(
    state: State,
    publisher: Publisher,
) -> (State, Publisher, anyhow::Result<PublishStats>) {
    let joined = tokio::task::spawn_blocking(move || {
        let (mut state, mut publisher) = (state, publisher);
        let r = build_and_publish_blocking(&mut state, &mut publisher);
        (state, publisher, r)
    })
    .await;
    match joined {
        Ok(v) => v,
        // spawn_blocking only fails if the closure panicked; that is a bug, not a state to
        // recover from.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What one publication did.
#[derive(Debug, Clone, Copy)]
struct PublishStats {
    generation: u64,
    /// A full base rather than an overlay.
    base: bool,
    bytes: usize,
    build: Duration,
    write: Duration,
}

fn build_and_publish_blocking(
    state: &mut State,
    publisher: &mut Publisher,
) -> anyhow::Result<PublishStats> {
    let generation = publisher.next_generation();
    let now = chrono::Utc::now().timestamp();
    let t0 = Instant::now();
    let base = publisher
        .base_generation()
        .filter(|_| !state.base_needed && state.since_base.len() <= OVERLAY_LIMIT);
    let bytes = match base {
        None => jasiyo_snapshot::build_snapshot(
            generation,
            now,
            &state.plans.rows,
            &state.routers.rows,
            &state.subscribers.rows,
        )
        .context("building base snapshot")?,
        Some(base_generation) => {
            let changed: Vec<SubscriberEntry> = state
                .since_base
                .iter()
                .filter_map(|id| state.subscribers.get(*id).cloned())
                .collect();
            let overlay = OverlayOf {
                base_generation,
                overridden_ids: state.since_base.iter().copied().collect(),
                subscriber_total: state.subscribers.len() as u64,
            };
            jasiyo_snapshot::build_overlay(
                generation,
                now,
                &state.plans.rows,
                &state.routers.rows,
                &changed,
                &overlay,
            )
            .context("building overlay snapshot")?
        }
    };
    let build = t0.elapsed();
    let t1 = Instant::now();
    let generation = publisher.publish(&bytes).context("publishing snapshot")?;
    if base.is_none() {
        state.since_base.clear();
        state.base_needed = false;
    }
    Ok(PublishStats {
        generation,
        base: base.is_none(),
        bytes: bytes.len(),
        build,
        write: t1.elapsed(),
    })
}

async fn connect_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(CHANNEL).await?;
    Ok(l)
}

/// Follows the channel forever, forwarding events; on connection loss reconnects and asks for
/// a full reload (notifications sent meanwhile are gone).
async fn listen_task(
    mut listener: PgListener,
    pool: PgPool,
    tx: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let received = tokio::select! {
            r = listener.try_recv() => r,
            _ = stop.changed() => return,
        };
        match received {
            Ok(Some(n)) => match parse_payload(n.payload()) {
                Some(ev) => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                None => tracing::warn!(payload = n.payload(), "ignoring unexpected notification"),
            },
            Ok(None) | Err(_) => {
                tracing::warn!("lost the LISTEN connection to Postgres; reconnecting");
                let mut backoff = Duration::from_millis(100);
                listener = loop {
                    if tx.is_closed() {
                        return;
                    }
                    match connect_listener(&pool).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN reconnect failed; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(backoff) => {}
                                _ = stop.changed() => return,
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                tracing::info!("LISTEN connection re-established; full reload");
                if tx.send(Event::Reload).is_err() {
                    return;
                }
            }
        }
    }
}

/// Handle to the running publisher.
#[derive(Clone, Debug)]
pub struct SnapshotHandle {
    generation: Arc<AtomicU64>,
    stop: Arc<watch::Sender<bool>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl SnapshotHandle {
    fn new() -> Self {
        Self {
            generation: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(watch::channel(false).0),
            tasks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Stops the publisher tasks and waits for them (they release their database
    /// connections). The last published snapshot stays in place for readers.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Last published generation (0 before the first publication).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    /// A handle that never publishes (for API tests that do not need the publisher).
    pub fn detached(generation: u64) -> Self {
        let h = Self::new();
        h.generation.store(generation, Ordering::Release);
        h
    }
}

/// Starts the publisher: LISTEN, full load, first publication. Returns once the first
/// snapshot is published (or with the error that prevented it); the task keeps running.
pub async fn start(pool: PgPool, dir: &Path, group: Option<u32>) -> anyhow::Result<SnapshotHandle> {
    let publisher = Publisher::open(dir, group)
        .with_context(|| format!("opening snapshot directory {}", dir.display()))?;
    let listener = connect_listener(&pool)
        .await
        .context("LISTEN jasiyo_changes")?;
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = SnapshotHandle::new();
    let (ready_tx, ready_rx) = oneshot::channel();
    let listen = tokio::spawn(listen_task(
        listener,
        pool.clone(),
        tx,
        handle.stop.subscribe(),
    ));
    let publish = tokio::spawn(run(pool, publisher, rx, handle.clone(), ready_tx));
    handle
        .tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend([listen, publish]);
    match ready_rx.await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            handle.shutdown().await;
            Err(e)
        }
        Err(_) => {
            handle.shutdown().await;
            anyhow::bail!("snapshot publisher stopped before the first publication")
        }
    }
}

async fn run(
    pool: PgPool,
    publisher: Publisher,
    mut rx: mpsc::UnboundedReceiver<Event>,
    handle: SnapshotHandle,
    ready: oneshot::Sender<anyhow::Result<()>>,
) {
    let mut ready = Some(ready);
    let mut stop = handle.stop.subscribe();
    let mut state = State::empty();
    let mut publisher = Some(publisher);
    let mut pending = Pending {
        full: true,
        ..Pending::default()
    };
    let mut dirty = false;
    let mut backoff = Duration::from_millis(50);
    loop {
        // Changes that queued up while the last snapshot was being built have waited long
        // enough: take them without a coalescing window.
        while let Ok(ev) = rx.try_recv() {
            pending.add(ev);
        }
        if pending.is_empty() && !dirty {
            // Idle: wait for the next change, then collect the rest of its burst.
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = stop.changed() => return,
            };
            let Some(ev) = ev else { return };
            pending.add(ev);
            let hard = TokioInstant::now() + MAX_COALESCE;
            loop {
                let until = hard.min(TokioInstant::now() + QUIET);
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(ev)) => pending.add(ev),
                    Ok(None) | Err(_) => break,
                }
            }
        }

        let result = step(
            &pool,
            &mut state,
            &mut publisher,
            &mut pending,
            &mut dirty,
            &handle,
        )
        .await;
        match result {
            Ok(()) => {
                backoff = Duration::from_millis(50);
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Err(e) => {
                if let Some(r) = ready.take() {
                    // The first publication failed: `serve` reports it and exits.
                    let _ = r.send(Err(e));
                    return;
                }
                tracing::error!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "snapshot update failed; readers keep the last published snapshot"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn step(
    pool: &PgPool,
    state: &mut State,
    publisher: &mut Option<Publisher>,
    pending: &mut Pending,
    dirty: &mut bool,
    handle: &SnapshotHandle,
) -> anyhow::Result<()> {
    if !pending.is_empty() {
        if pending.full || pending.len() > FULL_RELOAD_THRESHOLD {
            let t = Instant::now();
            *state = full_load(pool).await.context("full load from Postgres")?;
            tracing::debug!(
                elapsed_ms = t.elapsed().as_millis() as u64,
                subscribers = state.subscribers.len(),
                "full load"
            );
        } else {
            apply_incremental(pool, state, pending)
                .await
                .context("refetching changed rows")?;
        }
        *pending = Pending::default();
        *dirty = true;
    }
    if *dirty {
        let Some(p) = publisher.take() else {
            anyhow::bail!("publisher missing")
        };
        let taken = std::mem::replace(state, State::empty());
        let (s, p, result) = build_and_publish(taken, p).await;
        *state = s;
        *publisher = Some(p);
        let stats = result?;
        *dirty = false;
        handle.generation.store(stats.generation, Ordering::Release);
        tracing::debug!(
            generation = stats.generation,
            base = stats.base,
            bytes = stats.bytes,
            plans = state.plans.len(),
            routers = state.routers.len(),
            subscribers = state.subscribers.len(),
            build_ms = stats.build.as_secs_f64() * 1e3,
            write_ms = stats.write.as_secs_f64() * 1e3,
            "published snapshot"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert!(matches!(
            parse_payload("plans:3"),
            Some(Event::Row(Table::Plans, 3))
        ));
        assert!(matches!(
            parse_payload("subscribers:*"),
            Some(Event::Reload)
        ));
        assert!(parse_payload("users:1").is_none());
        assert!(parse_payload("plans:x").is_none());
        assert!(parse_payload("plans").is_none());
    }

    #[test]
    fn rows_remove_keeps_index_consistent() {
        let mut r: Rows<&str> = Rows::new();
        r.upsert(1, "a");
        r.upsert(2, "b");
        r.upsert(3, "c");
        r.remove(1);
        assert_eq!(r.len(), 2);
        r.upsert(3, "C");
        r.upsert(2, "B");
        assert_eq!(
            r.rows.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from(["B", "C"])
        );
        r.remove(3);
        r.remove(3);
        r.remove(2);
        assert_eq!(r.len(), 0);
        assert!(r.index.is_empty());
    }
}
