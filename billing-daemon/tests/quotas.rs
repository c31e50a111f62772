//! Quotas and simultaneous use against Postgres (`#[sqlx::test]`): the ingest counts the
//! allowances down and announces open-session changes, the publisher carries both into the
//! snapshot, and the API manages the plan and subscriber fields.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

use axum::http::StatusCode;
use billing_daemon::accounting::{
    AccountingEvent, DEFAULT_INTERIM_INTERVAL_SECS, apply_batch, close_stale,
};
use chrono::Duration;
use common::{TestApp, apply, t0};
use jasiyo_snapshot::Snapshot;
use radius_proto::attr::acct_status_type as st;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

const G: u64 = 1 << 32;
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// An Accounting-Request from ROUTER (`common::acct`); `counters` is (input bytes, output
/// bytes, session seconds).
fn acct(
    status: u32,
    user: &'static str,
    sid: &str,
    at_secs: i64,
    counters: Option<(u64, u64, u32)>,
) -> AccountingEvent {
    let a = common::acct(status, user, sid, at_secs);
    match counters {
        Some((i, o, s)) => a.counters(i, o, s),
        None => a,
    }
    .event()
}

fn accounting_on(at_secs: i64) -> AccountingEvent {
    common::nas_event(st::ACCOUNTING_ON, ROUTER, t0() + Duration::seconds(at_secs))
}

/// A plan (limit 1), the router, and: alice (100 GB, 1 h), bob (unlimited), carol (100 bytes,
/// 10 s).
async fn setup(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO plans (id, name, rate_limit, price_kes, duration_seconds, service) \
         VALUES (1, 'p', '5M/5M', 1, 86400, 'both')",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO routers (id, name, ip, secret) VALUES (1, 'r1', '192.0.2.1', 's')")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO subscribers (id, username, password, plan_id, expires_at, \
           data_remaining_bytes, time_remaining_seconds) VALUES \
         (1, 'alice', 'x', 1, now() + interval '30 days', 100000000000, 3600), \
         (2, 'bob', 'x', 1, now() + interval '30 days', NULL, NULL), \
         (3, 'carol', 'x', 1, now() + interval '30 days', 100, 10)",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// (data_remaining_bytes, time_remaining_seconds) of each subscriber, by id.
async fn allowances(pool: &PgPool) -> Vec<(Option<i64>, Option<i64>)> {
    sqlx::query_as(
        "SELECT data_remaining_bytes, time_remaining_seconds FROM subscribers ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn usage_counts_the_allowances_down_exactly_once(pool: PgPool) {
    setup(&pool).await;
    let stream = [
        acct(st::START, "alice", "a1", 0, None),
        acct(st::START, "bob", "b1", 0, None),
        acct(
            st::INTERIM_UPDATE,
            "alice",
            "a1",
            300,
            Some((5 * G + 7, G, 300)),
        ),
        acct(st::INTERIM_UPDATE, "bob", "b1", 300, Some((G, G, 300))),
        acct(st::STOP, "alice", "a1", 700, Some((6 * G, 2 * G, 700))),
    ];
    let stats = apply(&pool, &stream[..3]).await;
    assert_eq!(stats.allowances_counted, 1);
    assert_eq!(
        allowances(&pool).await,
        [
            (Some(100_000_000_000 - (6 * G + 7) as i64), Some(3300)),
            (None, None),
            (Some(100), Some(10)),
        ]
    );
    let stats = apply(&pool, &stream[3..]).await;
    // bob has no allowance: nothing is written for him.
    assert_eq!(stats.allowances_counted, 1);
    let want = [
        (Some(100_000_000_000 - (8 * G) as i64), Some(3600 - 700)),
        (None, None),
        (Some(100), Some(10)),
    ];
    assert_eq!(allowances(&pool).await, want);

    // Replays, whole or reordered, change nothing.
    let stats = apply(&pool, &stream).await;
    assert_eq!(stats.allowances_counted, 0);
    let reversed: Vec<_> = stream.iter().rev().cloned().collect();
    apply(&pool, &reversed).await;
    assert_eq!(allowances(&pool).await, want);

    // usage_daily and the allowance agree.
    let used: (i64, i64) = sqlx::query_as(
        "SELECT (sum(input_bytes + output_bytes))::bigint, sum(seconds)::bigint \
         FROM usage_daily WHERE subscriber_id = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(used, ((8 * G) as i64, 700));
}

#[sqlx::test]
async fn allowances_stop_at_zero(pool: PgPool) {
    setup(&pool).await;
    apply(
        &pool,
        &[
            acct(st::START, "carol", "c1", 0, None),
            acct(st::INTERIM_UPDATE, "carol", "c1", 60, Some((70, 80, 60))),
        ],
    )
    .await;
    assert_eq!(allowances(&pool).await[2], (Some(0), Some(0)));
    // More usage at zero writes nothing (no new row version, no republication).
    let stats = apply(
        &pool,
        &[acct(st::STOP, "carol", "c1", 120, Some((700, 800, 120)))],
    )
    .await;
    assert_eq!(stats.allowances_counted, 0);
    assert_eq!(allowances(&pool).await[2], (Some(0), Some(0)));
    // A top-up by the operator counts down from the new value.
    sqlx::query("UPDATE subscribers SET data_remaining_bytes = 1000 WHERE id = 3")
        .execute(&pool)
        .await
        .unwrap();
    apply(
        &pool,
        &[
            acct(st::START, "carol", "c2", 200, None),
            acct(st::INTERIM_UPDATE, "carol", "c2", 260, Some((100, 200, 60))),
        ],
    )
    .await;
    assert_eq!(allowances(&pool).await[2], (Some(700), Some(0)));
}

async fn listener(pool: &PgPool) -> PgListener {
    let mut l = PgListener::connect_with(pool).await.unwrap();
    l.listen("jasiyo_changes").await.unwrap();
    l
}

/// Notifications received until the channel has been quiet for a moment.
async fn drain(l: &mut PgListener) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    while let Ok(n) = tokio::time::timeout(StdDuration::from_millis(300), l.recv()).await {
        got.insert(n.unwrap().payload().to_owned());
    }
    got
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[sqlx::test]
async fn open_session_changes_are_announced(pool: PgPool) {
    setup(&pool).await;
    let mut l = listener(&pool).await;

    // Opened: bob (no allowance, so only the ingest's own notification) and an unknown user.
    let stats = apply(
        &pool,
        &[
            acct(st::START, "bob", "b1", 0, None),
            acct(st::START, "bob", "b2", 0, None),
            acct(st::START, "nobody", "n1", 0, None),
        ],
    )
    .await;
    assert_eq!(stats.subscribers_notified, 1);
    assert_eq!(drain(&mut l).await, set(&["subscribers:2"]));

    // Counters only: the open-session count is unchanged, nothing is announced.
    let stats = apply(
        &pool,
        &[acct(
            st::INTERIM_UPDATE,
            "bob",
            "b1",
            300,
            Some((10, 20, 300)),
        )],
    )
    .await;
    assert_eq!(stats.subscribers_notified, 0);
    assert_eq!(drain(&mut l).await, set(&[]));

    // Stopped.
    apply(
        &pool,
        &[acct(st::STOP, "bob", "b2", 400, Some((1, 2, 400)))],
    )
    .await;
    assert_eq!(drain(&mut l).await, set(&["subscribers:2"]));

    // Closed by the router's Accounting-On (rows not in the batch), and a replayed Stop.
    apply(&pool, &[acct(st::START, "alice", "a1", 500, None)]).await;
    assert_eq!(drain(&mut l).await, set(&["subscribers:1"]));
    let stats = apply(
        &pool,
        &[
            accounting_on(600),
            acct(st::STOP, "bob", "b2", 400, Some((1, 2, 400))),
        ],
    )
    .await;
    assert_eq!(stats.sessions_closed_by_nas, 3);
    assert_eq!(stats.subscribers_notified, 2);
    assert_eq!(
        drain(&mut l).await,
        set(&["subscribers:1", "subscribers:2"])
    );

    // Stale closure and the reopening by a late Interim.
    apply(&pool, &[acct(st::START, "bob", "b3", 1000, None)]).await;
    drain(&mut l).await;
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        close_stale(
            &mut tx,
            t0() + Duration::seconds(2000),
            DEFAULT_INTERIM_INTERVAL_SECS
        )
        .await
        .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(drain(&mut l).await, set(&["subscribers:2"]));
    apply(
        &pool,
        &[acct(
            st::INTERIM_UPDATE,
            "bob",
            "b3",
            2100,
            Some((5, 5, 1100)),
        )],
    )
    .await;
    assert_eq!(drain(&mut l).await, set(&["subscribers:2"]));

    // A rolled-back batch announces nothing.
    let mut tx = pool.begin().await.unwrap();
    apply_batch(&mut tx, &[acct(st::START, "alice", "a9", 3000, None)], None)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(drain(&mut l).await, set(&[]));
}

/// Polls the published snapshot until `check` holds.
async fn wait_for(dir: &Path, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    loop {
        if let Ok(s) = Snapshot::open(&dir.join("subscribers.snap")) {
            if check(&s) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "snapshot never showed: {what}");
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

fn open_sessions(s: &Snapshot, user: &str) -> Option<u16> {
    s.subscriber_by_username(user.as_bytes())
        .map(|v| v.open_sessions())
}

#[sqlx::test]
async fn the_snapshot_carries_open_sessions_and_allowances(pool: PgPool) {
    setup(&pool).await;
    sqlx::query(
        "UPDATE plans SET simultaneous_use = 2, fup_rate_limit = '256k/512k', \
         time_allowance_seconds = 7200 WHERE id = 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Sessions that exist before the publisher starts are counted by the full load.
    apply(
        &pool,
        &[
            acct(st::START, "bob", "b1", 0, None),
            acct(st::START, "bob", "b2", 0, None),
            acct(st::START, "alice", "a1", 0, None),
            acct(st::STOP, "alice", "a1", 10, Some((1, 1, 10))),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let handle = billing_daemon::publisher::start(pool.clone(), dir.path(), None)
        .await
        .unwrap();
    let s = wait_for(dir.path(), "full load", |s| s.subscriber_count() == 3).await;
    assert_eq!(open_sessions(&s, "bob"), Some(2));
    assert_eq!(open_sessions(&s, "alice"), Some(0));
    let alice = s.subscriber_by_username(b"alice").unwrap();
    assert_eq!(alice.data_remaining_bytes(), Some(100_000_000_000 - 2));
    assert_eq!(alice.time_remaining_seconds(), Some(3600 - 10));
    let bob = s.subscriber_by_username(b"bob").unwrap();
    assert_eq!(bob.time_remaining_seconds(), None);
    let plan = bob.plan().unwrap();
    assert_eq!(plan.simultaneous_use().map(|n| n.get()), Some(2));
    assert_eq!(plan.fup_rate_limit(), Some(&b"256k/512k"[..]));

    // Incremental: a Start, a Stop and usage reach the snapshot through the notifications.
    apply(&pool, &[acct(st::START, "alice", "a2", 100, None)]).await;
    wait_for(dir.path(), "alice online", |s| {
        open_sessions(s, "alice") == Some(1)
    })
    .await;
    apply(
        &pool,
        &[
            acct(st::STOP, "bob", "b1", 200, Some((1, 1, 200))),
            acct(st::INTERIM_UPDATE, "carol", "c1", 60, Some((500, 500, 60))),
        ],
    )
    .await;
    let s = wait_for(dir.path(), "bob down to one, carol used up", |s| {
        open_sessions(s, "bob") == Some(1)
            && s.subscriber_by_username(b"carol")
                .is_some_and(|c| c.data_remaining_bytes() == Some(0))
    })
    .await;
    let carol = s.subscriber_by_username(b"carol").unwrap();
    assert_eq!(carol.time_remaining_seconds(), Some(0));
    // carol's session was created by the Interim, so it is open.
    assert_eq!(carol.open_sessions(), 1);

    // Stale closure frees the slots.
    let mut tx = pool.begin().await.unwrap();
    close_stale(
        &mut tx,
        t0() + Duration::seconds(5000),
        DEFAULT_INTERIM_INTERVAL_SECS,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    wait_for(dir.path(), "stale sessions closed", |s| {
        ["alice", "bob", "carol"]
            .iter()
            .all(|u| open_sessions(s, u) == Some(0))
    })
    .await;

    // A plan change to unlimited use.
    sqlx::query("UPDATE plans SET simultaneous_use = NULL, fup_rate_limit = NULL WHERE id = 1")
        .execute(&pool)
        .await
        .unwrap();
    wait_for(dir.path(), "plan unlimited", |s| {
        s.plan_by_id(1)
            .is_some_and(|p| p.simultaneous_use().is_none() && p.fup_rate_limit().is_none())
    })
    .await;
    handle.shutdown().await;
}

#[sqlx::test]
async fn api_plans_carry_the_quota_fields(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let base = json!({"name": "Home", "rate_limit": "5M/5M", "price_kes": 1500,
                      "duration_seconds": 86400});
    // Defaults: one session at a time, no FUP, no time allowance.
    let r = app.post("/api/v1/plans", &base).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = r.json();
    assert_eq!(p["simultaneous_use"], 1);
    assert!(p["fup_rate_limit"].is_null());
    assert!(p["time_allowance_seconds"].is_null());
    let id = p["id"].as_i64().unwrap();

    let mut full = base.clone();
    full["name"] = json!("Hotspot day");
    full["simultaneous_use"] = json!(null);
    full["fup_rate_limit"] = json!("256k/512k 512k/1M 256k/512k 16/16 8 128k/256k");
    full["time_allowance_seconds"] = json!(3600);
    let r = app.post("/api/v1/plans", &full).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = r.json();
    assert!(p["simultaneous_use"].is_null());
    assert_eq!(
        p["fup_rate_limit"],
        "256k/512k 512k/1M 256k/512k 16/16 8 128k/256k"
    );
    assert_eq!(p["time_allowance_seconds"], 3600);

    // PATCH sets and clears them.
    let r = app
        .patch(
            &format!("/api/v1/plans/{id}"),
            &json!({"simultaneous_use": 3, "fup_rate_limit": "1M/1M", "time_allowance_seconds": 60}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["simultaneous_use"], 3);
    assert_eq!(r.json()["fup_rate_limit"], "1M/1M");
    let r = app
        .patch(
            &format!("/api/v1/plans/{id}"),
            &json!({"simultaneous_use": null, "fup_rate_limit": null, "time_allowance_seconds": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = r.json();
    assert!(p["simultaneous_use"].is_null() && p["fup_rate_limit"].is_null());
    assert!(p["time_allowance_seconds"].is_null());
    assert_eq!(p["rate_limit"], "5M/5M");

    for (field, bad) in [
        ("simultaneous_use", json!(0)),
        ("fup_rate_limit", json!("fast")),
        ("fup_rate_limit", json!("")),
        // syntactically fine, but rate-min above the rate
        ("fup_rate_limit", json!("1M/1M 0/0 0/0 0/0 8 2M/2M")),
        ("time_allowance_seconds", json!(0)),
    ] {
        let mut body = base.clone();
        body["name"] = json!(format!("bad {field}"));
        body[field] = bad.clone();
        app.post("/api/v1/plans", &body)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.patch(&format!("/api/v1/plans/{id}"), &json!({ field: bad }))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }

    // The OpenAPI document describes them.
    let doc = app
        .send("GET", "/api/v1/openapi.json", None, None)
        .await
        .json();
    let schemas = &doc["components"]["schemas"];
    for schema in ["PlanOut", "PlanCreate", "PlanPatch"] {
        for field in [
            "simultaneous_use",
            "fup_rate_limit",
            "time_allowance_seconds",
        ] {
            assert!(
                schemas[schema]["properties"][field].is_object(),
                "{schema}.{field}"
            );
        }
    }
    for schema in ["SubscriberOut", "SubscriberCreate", "SubscriberPatch"] {
        assert!(
            schemas[schema]["properties"]["time_remaining_seconds"].is_object(),
            "{schema}"
        );
    }
}

#[sqlx::test]
async fn api_subscribers_time_remaining_follows_the_plan(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let plan = app
        .post(
            "/api/v1/plans",
            &json!({"name": "Timed", "rate_limit": "5M/5M", "price_kes": 50,
                    "duration_seconds": 86400, "time_allowance_seconds": 7200}),
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let untimed = app.plan("Untimed", 86_400, None).await;

    // Defaults from the plan; explicit values (null included) win.
    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "tim", "password": "pw", "plan_id": plan}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["time_remaining_seconds"], 7200);
    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "una", "password": "pw", "plan_id": plan, "time_remaining_seconds": null}),
        )
        .await;
    assert!(r.json()["time_remaining_seconds"].is_null(), "{}", r.text);
    let r = app
        .post(
            "/api/v1/subscribers",
            &json!({"username": "vic", "password": "pw", "plan_id": untimed}),
        )
        .await;
    assert!(r.json()["time_remaining_seconds"].is_null(), "{}", r.text);

    // PATCH sets it; renew resets it to the plan's allowance.
    let r = app
        .patch(
            "/api/v1/subscribers/tim",
            &json!({"time_remaining_seconds": 5}),
        )
        .await;
    assert_eq!(r.json()["time_remaining_seconds"], 5, "{}", r.text);
    let r = app.post_empty("/api/v1/subscribers/tim/renew").await;
    assert_eq!(r.json()["time_remaining_seconds"], 7200, "{}", r.text);
    let r = app
        .patch(
            "/api/v1/subscribers/tim",
            &json!({"time_remaining_seconds": null}),
        )
        .await;
    assert!(r.json()["time_remaining_seconds"].is_null(), "{}", r.text);
    // Moving to an untimed plan and renewing clears it.
    app.patch(
        "/api/v1/subscribers/una",
        &json!({"plan_id": untimed, "time_remaining_seconds": 9}),
    )
    .await;
    let r = app.post_empty("/api/v1/subscribers/una/renew").await;
    assert!(r.json()["time_remaining_seconds"].is_null(), "{}", r.text);

    for bad in
        [json!({"username": "w1", "password": "pw", "plan_id": plan, "time_remaining_seconds": -1})]
    {
        app.post("/api/v1/subscribers", &bad)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    app.patch(
        "/api/v1/subscribers/tim",
        &json!({"time_remaining_seconds": -5}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
