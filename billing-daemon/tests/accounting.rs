//! Accounting ingest and its read API, against Postgres (`#[sqlx::test]`).
//!
//! Events are real Accounting-Request datagrams built with radius-proto, shaped like the
//! RouterOS captures in /work/shared/fixtures/routeros/, and decoded by
//! `AccountingEvent::from_packet`, so the whole path from bytes to rows is exercised.

mod common;

use std::net::Ipv4Addr;
use std::time::Instant;

use axum::http::StatusCode;
use billing_daemon::accounting::{
    AccountingEvent, AuthResult, DEFAULT_INTERIM_INTERVAL_SECS, close_stale, record_auth_results,
};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use common::{TestApp, acct, apply, nas_event, t0};
use radius_proto::attr::acct_status_type as st;
use sqlx::{PgPool, Row};

const G: u64 = 1 << 32;

/// username, started_at, stopped_at, start_seen, input_bytes
type StartRow = (String, DateTime<Utc>, Option<DateTime<Utc>>, bool, i64);
/// username, acct_session_id, closed_by, terminate_cause, stopped_at
type ClosedRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// A plan, a router at 192.0.2.1 and subscribers alice, bob and a MAC-bound carol.
async fn setup(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO plans (id, name, rate_limit, price_kes, duration_seconds, service) \
         VALUES (1, 'p', '5M/5M', 1, 86400, 'both')",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO routers (id, name, ip, secret) VALUES (1, 'r1', '192.0.2.1', 's'), (2, 'r2', '192.0.2.2', 's')")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO subscribers (id, username, password, plan_id, expires_at, mac) VALUES \
         (1, 'alice', 'x', 1, now() + interval '30 days', NULL), \
         (2, 'bob', 'x', 1, now() + interval '30 days', NULL), \
         (3, 'carol', 'x', 1, now() + interval '30 days', 'BC:24:11:EB:56:4D')",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Everything observable: sessions and usage, as text.
async fn state(pool: &PgPool) -> String {
    let sessions: Vec<String> = sqlx::query(
        "SELECT concat_ws(' ', unique_key, router_id, host(source_ip), username, subscriber_id, \
           acct_session_id, started_at, last_update_at, stopped_at, terminate_cause, closed_by, \
           input_bytes, output_bytes, input_packets, output_packets, session_seconds, \
           host(framed_ip), calling_mac) AS s FROM sessions ORDER BY unique_key",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("s"))
    .collect();
    let usage: Vec<String> = sqlx::query(
        "SELECT concat_ws(' ', subscriber_id, day, input_bytes, output_bytes, seconds) AS s \
         FROM usage_daily ORDER BY subscriber_id, day",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("s"))
    .collect();
    format!("{}\n--\n{}", sessions.join("\n"), usage.join("\n"))
}

async fn usage(pool: &PgPool, sub: i64) -> Vec<(NaiveDate, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT day, input_bytes, output_bytes, seconds FROM usage_daily WHERE subscriber_id = $1 ORDER BY day",
    )
    .bind(sub)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn start_interim_stop_above_4_gib_land_exactly(pool: PgPool) {
    setup(&pool).await;
    let start = acct(st::START, "alice", "80100014", 0);
    let interim =
        acct(st::INTERIM_UPDATE, "alice", "80100014", 300).counters(5 * G + 7, 6 * G + 123, 300);
    let stop =
        acct(st::STOP, "alice", "80100014", 700).counters(12 * G + 4_294_967_295, 40 * G + 1, 700);
    let s = apply(&pool, &[start.event()]).await;
    assert_eq!((s.sessions_created, s.usage_rows), (1, 0));
    apply(&pool, &[interim.event()]).await;
    let s = apply(&pool, &[stop.event()]).await;
    assert_eq!((s.sessions_created, s.sessions_updated), (0, 1));

    let r = sqlx::query(
        "SELECT input_bytes, output_bytes, input_packets, session_seconds, started_at, stopped_at, \
         terminate_cause, closed_by, router_id, subscriber_id, host(framed_ip) AS f, calling_mac, \
         nas_port, host(nas_ip) AS nas_ip FROM sessions",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        r.get::<i64, _>("input_bytes"),
        (12 * G + 4_294_967_295) as i64
    );
    assert_eq!(r.get::<i64, _>("output_bytes"), (40 * G + 1) as i64);
    assert_eq!(r.get::<i64, _>("input_packets"), 10);
    assert_eq!(r.get::<i64, _>("session_seconds"), 700);
    assert_eq!(r.get::<DateTime<Utc>, _>("started_at"), t0());
    assert_eq!(
        r.get::<Option<DateTime<Utc>>, _>("stopped_at"),
        Some(t0() + Duration::seconds(700))
    );
    assert_eq!(
        r.get::<Option<String>, _>("terminate_cause").as_deref(),
        Some("User-Request")
    );
    assert_eq!(
        r.get::<Option<String>, _>("closed_by").as_deref(),
        Some("router")
    );
    assert_eq!(r.get::<Option<i64>, _>("router_id"), Some(1));
    assert_eq!(r.get::<Option<i64>, _>("subscriber_id"), Some(1));
    assert_eq!(
        r.get::<Option<String>, _>("f").as_deref(),
        Some("10.5.88.2")
    );
    assert_eq!(
        r.get::<Option<String>, _>("calling_mac").as_deref(),
        Some("BC:24:11:EB:56:4D")
    );
    assert_eq!(r.get::<Option<i64>, _>("nas_port"), Some(0x8010_0014));
    assert_eq!(
        r.get::<Option<String>, _>("nas_ip").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(
        usage(&pool, 1).await,
        vec![(
            t0().date_naive(),
            (12 * G + 4_294_967_295) as i64,
            (40 * G + 1) as i64,
            700
        )]
    );
}

#[sqlx::test]
async fn duplicates_and_every_order_give_the_same_state(pool: PgPool) {
    setup(&pool).await;
    let seq: Vec<AccountingEvent> = vec![
        acct(st::START, "alice", "81000001", 0).event(),
        acct(st::INTERIM_UPDATE, "alice", "81000001", 300)
            .counters(3 * G, G + 5, 300)
            .event(),
        acct(st::INTERIM_UPDATE, "alice", "81000001", 600)
            .counters(5 * G + 9, 2 * G, 600)
            .event(),
        acct(st::STOP, "alice", "81000001", 650)
            .counters(5 * G + 10, 2 * G + 1, 650)
            .event(),
        // the router's retransmission of the Start, a second later, Acct-Delay-Time still 0
        acct(st::START, "alice", "81000001", 1).event(),
    ];
    apply(&pool, &seq).await;
    let want = state(&pool).await;
    assert!(
        want.contains("\n1 2026-06-29 21474836490 8589934593 650"),
        "{want}"
    );
    // Replaying everything (one batch, or each event alone) changes nothing.
    apply(&pool, &seq).await;
    for e in &seq {
        apply(&pool, std::slice::from_ref(e)).await;
    }
    assert_eq!(state(&pool).await, want);

    // Every permutation, applied as one batch and as single-event batches.
    let mut perms = vec![vec![0usize, 1, 2, 3, 4]];
    let mut p = perms[0].clone();
    // Heap's algorithm, iterative.
    let mut c = [0usize; 5];
    let mut i = 0;
    while i < 5 {
        if c[i] < i {
            if i % 2 == 0 {
                p.swap(0, i);
            } else {
                p.swap(c[i], i);
            }
            perms.push(p.clone());
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    assert_eq!(perms.len(), 120);
    for (n, p) in perms.iter().enumerate() {
        sqlx::query("TRUNCATE sessions, usage_daily, enforcement_actions")
            .execute(&pool)
            .await
            .unwrap();
        let events: Vec<_> = p.iter().map(|&i| seq[i].clone()).collect();
        if n % 2 == 0 {
            apply(&pool, &events).await;
        } else {
            for e in &events {
                apply(&pool, std::slice::from_ref(e)).await;
            }
        }
        assert_eq!(state(&pool).await, want, "order {p:?}");
    }
}

#[sqlx::test]
async fn interim_or_stop_without_start_create_the_session(pool: PgPool) {
    setup(&pool).await;
    // Interim-Update without Start: started = event time - Acct-Session-Time.
    apply(
        &pool,
        &[acct(st::INTERIM_UPDATE, "alice", "81000002", 600)
            .counters(1000, 2000, 120)
            .event()],
    )
    .await;
    // Stop without Start (acct-stop-hotspot-01.txt: the router never got its Start answered).
    apply(
        &pool,
        &[acct(st::STOP, "bob", "80100014", 5)
            .counters(56, 56, 5)
            .event()],
    )
    .await;
    let rows: Vec<StartRow> = sqlx::query_as(
        "SELECT username, started_at, stopped_at, start_seen, input_bytes FROM sessions ORDER BY username",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "alice".into(),
                t0() + Duration::seconds(480),
                None,
                false,
                1000
            ),
            (
                "bob".into(),
                t0(),
                Some(t0() + Duration::seconds(5)),
                false,
                56
            ),
        ]
    );
    assert_eq!(usage(&pool, 1).await[0].1, 1000);
    assert_eq!(usage(&pool, 2).await[0].3, 5);
    // The Start arriving late fixes the start time without touching counters or reopening.
    apply(&pool, &[acct(st::START, "alice", "81000002", 470).event()]).await;
    apply(&pool, &[acct(st::START, "bob", "80100014", 0).event()]).await;
    let rows: Vec<StartRow> = sqlx::query_as(
        "SELECT username, started_at, stopped_at, start_seen, input_bytes FROM sessions ORDER BY username",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows[0].1, t0() + Duration::seconds(470));
    assert!(rows[0].3);
    assert_eq!(
        rows[1].2,
        Some(t0() + Duration::seconds(5)),
        "stays stopped"
    );
    assert_eq!(rows[1].4, 56);
    // A late Interim after the Stop does not reopen it or lower anything.
    apply(
        &pool,
        &[acct(st::INTERIM_UPDATE, "bob", "80100014", 3)
            .counters(10, 10, 3)
            .event()],
    )
    .await;
    let (stopped, input): (Option<DateTime<Utc>>, i64) =
        sqlx::query_as("SELECT stopped_at, input_bytes FROM sessions WHERE username = 'bob'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((stopped, input), (Some(t0() + Duration::seconds(5)), 56));
    assert_eq!(usage(&pool, 2).await, vec![(t0().date_naive(), 56, 56, 5)]);
}

#[sqlx::test]
async fn mac_logins_resolve_to_the_bound_subscriber(pool: PgPool) {
    setup(&pool).await;
    // Hotspot MAC authentication: User-Name is the MAC.
    apply(
        &pool,
        &[
            acct(st::INTERIM_UPDATE, "BC:24:11:EB:56:4D", "81000003", 60)
                .counters(100, 200, 60)
                .event(),
        ],
    )
    .await;
    let sub: Option<i64> = sqlx::query_scalar("SELECT subscriber_id FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sub, Some(3));
    assert_eq!(usage(&pool, 3).await[0].1, 100);
    // An unknown user is tracked, without usage.
    apply(
        &pool,
        &[acct(st::INTERIM_UPDATE, "mallory", "81000004", 60)
            .counters(100, 200, 60)
            .event()],
    )
    .await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE username = 'mallory' AND subscriber_id IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test]
async fn accounting_on_closes_the_routers_sessions(pool: PgPool) {
    setup(&pool).await;
    let r2 = Ipv4Addr::new(192, 0, 2, 2);
    apply(
        &pool,
        &[
            acct(st::START, "alice", "81000001", 0).event(),
            acct(st::START, "bob", "81000002", 0).event(),
            acct(st::START, "carol", "81000001", 0).router(r2).event(),
        ],
    )
    .await;
    // In one batch: an interim of alice, the reboot, then a new session of alice.
    let s = apply(
        &pool,
        &[
            acct(st::INTERIM_UPDATE, "alice", "81000001", 100)
                .counters(10, 20, 100)
                .event(),
            nas_event(
                st::ACCOUNTING_ON,
                Ipv4Addr::new(192, 0, 2, 1),
                t0() + Duration::seconds(200),
            ),
            acct(st::START, "alice", "82000001", 210).event(),
        ],
    )
    .await;
    assert_eq!(s.sessions_closed_by_nas, 2);
    let rows: Vec<ClosedRow> = sqlx::query_as(
        "SELECT username, acct_session_id, closed_by, terminate_cause, stopped_at FROM sessions \
             ORDER BY username, acct_session_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let at = Some(t0() + Duration::seconds(200));
    let reboot = (
        Some("nas-reboot".to_owned()),
        Some("NAS-Reboot".to_owned()),
        at,
    );
    assert_eq!(
        (rows[0].2.clone(), rows[0].3.clone(), rows[0].4),
        reboot,
        "alice old"
    );
    assert_eq!(rows[1].1, "82000001");
    assert_eq!(rows[1].4, None, "alice's new session is open");
    assert_eq!(
        (rows[2].2.clone(), rows[2].3.clone(), rows[2].4),
        reboot,
        "bob"
    );
    assert_eq!(rows[3].4, None, "carol on the other router stays online");
    // A late Interim of a rebooted session raises counters but does not reopen it.
    apply(
        &pool,
        &[acct(st::INTERIM_UPDATE, "bob", "81000002", 150)
            .counters(10, 20, 150)
            .event()],
    )
    .await;
    let (cb, input): (Option<String>, i64) =
        sqlx::query_as("SELECT closed_by, input_bytes FROM sessions WHERE username = 'bob'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((cb.as_deref(), input), (Some("nas-reboot"), 10));
    // Accounting-Off from the other router closes carol's.
    let s = apply(
        &pool,
        &[nas_event(
            st::ACCOUNTING_OFF,
            r2,
            t0() + Duration::seconds(300),
        )],
    )
    .await;
    assert_eq!(s.sessions_closed_by_nas, 1);
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE stopped_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 1);
}

#[sqlx::test]
async fn stale_sessions_close_and_the_router_overrides(pool: PgPool) {
    setup(&pool).await;
    let mut with_interval = acct(st::START, "bob", "81000002", 0);
    with_interval.interim_interval = Some(60);
    apply(
        &pool,
        &[
            acct(st::START, "alice", "81000001", 0).event(),
            with_interval.event(),
        ],
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();
    // bob: 2.5 x 60 s; alice: 2.5 x the default 300 s.
    assert_eq!(
        close_stale(
            &mut conn,
            t0() + Duration::seconds(150),
            DEFAULT_INTERIM_INTERVAL_SECS
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        close_stale(
            &mut conn,
            t0() + Duration::seconds(151),
            DEFAULT_INTERIM_INTERVAL_SECS
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        close_stale(
            &mut conn,
            t0() + Duration::seconds(750),
            DEFAULT_INTERIM_INTERVAL_SECS
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        close_stale(
            &mut conn,
            t0() + Duration::seconds(751),
            DEFAULT_INTERIM_INTERVAL_SECS
        )
        .await
        .unwrap(),
        1
    );
    drop(conn);
    let rows: Vec<(String, Option<String>, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT username, closed_by, stopped_at FROM sessions ORDER BY username")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows[0], ("alice".into(), Some("stale".into()), Some(t0())));
    assert_eq!(rows[1], ("bob".into(), Some("stale".into()), Some(t0())));
    // The router was only unreachable: a newer Interim reopens alice, a Stop closes bob.
    apply(
        &pool,
        &[
            acct(st::INTERIM_UPDATE, "alice", "81000001", 900)
                .counters(1, 2, 900)
                .event(),
            acct(st::STOP, "bob", "81000002", 900)
                .counters(1, 2, 900)
                .event(),
        ],
    )
    .await;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT username, closed_by, terminate_cause FROM sessions ORDER BY username",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows[0], ("alice".into(), None, None));
    assert_eq!(
        rows[1],
        (
            "bob".into(),
            Some("router".into()),
            Some("User-Request".into())
        )
    );
    // With a lower configured default (2 s), alice's reopened session is stale 5 s after
    // her last Interim.
    let mut conn = pool.acquire().await.unwrap();
    let last = t0() + Duration::seconds(900);
    for (after, closed) in [(5, 0), (6, 1)] {
        let n = close_stale(&mut conn, last + Duration::seconds(after), 2)
            .await
            .unwrap();
        assert_eq!(n, closed, "{after} s after the last update");
    }
}

#[sqlx::test]
async fn usage_is_split_across_days(pool: PgPool) {
    setup(&pool).await;
    let day1 = Utc.with_ymd_and_hms(2026, 6, 29, 23, 50, 0).unwrap();
    let m = |s: i64| day1 + Duration::seconds(s);
    let seq = [
        acct(st::START, "alice", "81000001", 0).at(m(0)).event(),
        acct(st::INTERIM_UPDATE, "alice", "81000001", 0)
            .at(m(480))
            .counters(G + 100, 1000, 480)
            .event(),
        acct(st::INTERIM_UPDATE, "alice", "81000001", 0)
            .at(m(780))
            .counters(2 * G + 250, 2500, 780)
            .event(),
        acct(st::STOP, "alice", "81000001", 0)
            .at(m(1200))
            .counters(2 * G + 300, 3000, 1200)
            .event(),
    ];
    // Two batches, and the second one replayed.
    apply(&pool, &seq[..2]).await;
    apply(&pool, &seq[1..]).await;
    apply(&pool, &seq[1..]).await;
    let d1 = day1.date_naive();
    let d2 = d1.succ_opt().unwrap();
    assert_eq!(
        usage(&pool, 1).await,
        vec![
            (d1, (G + 100) as i64, 1000, 480),
            (d2, (G + 200) as i64, 2000, 720)
        ]
    );
}

#[sqlx::test]
async fn api_sessions_usage_and_auth_log(pool: PgPool) {
    setup(&pool).await;
    let app = TestApp::new(pool.clone()).await;
    let r2 = Ipv4Addr::new(192, 0, 2, 2);
    let day2 = t0() + Duration::days(1);
    apply(
        &pool,
        &[
            acct(st::START, "alice", "81000001", 0).event(),
            acct(st::INTERIM_UPDATE, "alice", "81000001", 300)
                .counters(5 * G, 100, 300)
                .event(),
            acct(st::START, "bob", "81000002", 0).router(r2).event(),
            acct(st::STOP, "alice", "81000000", 0)
                .counters(7, 8, 9)
                .event(),
            acct(st::INTERIM_UPDATE, "alice", "81000001", 0)
                .at(day2)
                .counters(6 * G, 200, 86_400)
                .event(),
        ],
    )
    .await;

    // Online now, with filters.
    let r = app.get("/api/v1/sessions").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let r = app.get("/api/v1/sessions?router_id=1").await.json();
    assert_eq!(r.as_array().unwrap().len(), 1);
    assert_eq!(r[0]["username"], "alice");
    assert_eq!(r[0]["input_bytes"], 6 * G);
    assert_eq!(r[0]["online"], true);
    assert_eq!(r[0]["calling_mac"], "BC:24:11:EB:56:4D");
    let r = app.get("/api/v1/sessions?username=bob").await.json();
    assert_eq!(r.as_array().unwrap().len(), 1);
    assert_eq!(r[0]["router_id"], 2);
    let r = app.get("/api/v1/sessions?subscriber_id=2").await.json();
    assert_eq!(r.as_array().unwrap().len(), 1);
    assert_eq!(r[0]["username"], "bob");
    app.get("/api/v1/sessions?router_id=x")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/api/v1/sessions?nope=1")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/api/v1/sessions?limit=0")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // A subscriber's sessions: online and closed.
    let r = app.get("/api/v1/subscribers/alice/sessions").await.json();
    let a = r.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert!(
        a.iter()
            .any(|s| s["online"] == false && s["closed_by"] == "router")
    );
    app.get("/api/v1/subscribers/nobody/sessions")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    // Usage per day, both date formats.
    let r = app
        .get("/api/v1/subscribers/alice/usage?from=2026-06-29&to=2026-06-30T23:59:59%2B00:00")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["from"], "2026-06-29");
    assert_eq!(v["to"], "2026-06-30");
    assert_eq!(v["days"][0]["day"], "2026-06-29");
    assert_eq!(v["days"][0]["input_bytes"], 5 * G + 7);
    assert_eq!(v["days"][1]["input_bytes"], G);
    assert_eq!(v["total"]["input_bytes"], 6 * G + 7);
    assert_eq!(v["total"]["total_bytes"], 6 * G + 7 + 208);
    let v = app
        .get("/api/v1/subscribers/alice/usage?from=2026-06-30&to=2026-06-30")
        .await
        .json();
    assert_eq!(v["days"].as_array().unwrap().len(), 1);
    let r = app
        .get("/api/v1/subscribers/alice/usage?from=yesterday")
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from \"yesterday\"")
    );
    app.get("/api/v1/subscribers/alice/usage?to=2026-13-01")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/api/v1/subscribers/alice/usage?from=2026-07-01&to=2026-06-01")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/subscribers/nobody/usage")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    // Auth log.
    let mut conn = pool.acquire().await.unwrap();
    let n = record_auth_results(
        &mut conn,
        &[
            AuthResult {
                at: t0(),
                source: Some("192.0.2.1".parse().unwrap()),
                username: "alice".into(),
                nas_identifier: Some("MikroTik".into()),
                calling_station_id: Some("BC:24:11:EB:56:4D".into()),
                accepted: true,
                reason: None,
            },
            AuthResult {
                at: t0() + Duration::seconds(1),
                source: Some("203.0.113.9".parse().unwrap()),
                username: "alice".into(),
                nas_identifier: None,
                calling_station_id: None,
                accepted: false,
                reason: Some("subscription expired".into()),
            },
            AuthResult {
                at: t0() + Duration::seconds(2),
                source: None,
                username: "bob".into(),
                nas_identifier: None,
                calling_station_id: None,
                accepted: false,
                reason: Some("wrong password".into()),
            },
        ],
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    drop(conn);
    let v = app.get("/api/v1/auth-log?username=alice").await.json();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["accepted"], false);
    assert_eq!(a[0]["reason"], "subscription expired");
    assert_eq!(a[0]["router_id"], serde_json::Value::Null);
    assert_eq!(a[1]["accepted"], true);
    assert_eq!(a[1]["router_id"], 1);
    assert_eq!(a[1]["source_ip"], "192.0.2.1");
    assert_eq!(
        app.get("/api/v1/auth-log")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Bearer auth and the OpenAPI document.
    for uri in [
        "/api/v1/sessions",
        "/api/v1/subscribers/alice/sessions",
        "/api/v1/subscribers/alice/usage",
        "/api/v1/auth-log",
    ] {
        app.send("GET", uri, None, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let doc = app
        .send("GET", "/api/v1/openapi.json", None, None)
        .await
        .json();
    for p in [
        "/api/v1/sessions",
        "/api/v1/subscribers/{username}/sessions",
        "/api/v1/subscribers/{username}/usage",
        "/api/v1/auth-log",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p}");
    }
}

/// Not a pass/fail test: prints the ingest rate for 20,000 events (10,000 sessions, a Start
/// and an Interim each, in batches of 5,000, one transaction per batch).
#[sqlx::test]
async fn ingest_throughput(pool: PgPool) {
    setup(&pool).await;
    let users = ["alice", "bob", "carol", "dave"];
    let mut events = Vec::with_capacity(20_000);
    for i in 0..10_000u32 {
        events.push(
            acct(
                st::START,
                users[(i % 4) as usize],
                &format!("{:08x}", 0x8000_0000u32 + i),
                0,
            )
            .event(),
        );
    }
    for i in 0..10_000u32 {
        events.push(
            acct(
                st::INTERIM_UPDATE,
                users[(i % 4) as usize],
                &format!("{:08x}", 0x8000_0000u32 + i),
                300,
            )
            .counters(u64::from(i) * 1000 + G, 2000, 300)
            .event(),
        );
    }
    let begin = Instant::now();
    for chunk in events.chunks(5_000) {
        apply(&pool, chunk).await;
    }
    let first = begin.elapsed();
    // Steady state: interims for existing sessions.
    let interims: Vec<_> = (0..20_000u32)
        .map(|i| {
            let n = i % 10_000;
            acct(
                st::INTERIM_UPDATE,
                users[(n % 4) as usize],
                &format!("{:08x}", 0x8000_0000u32 + n),
                600 + i64::from(i / 10_000) * 300,
            )
            .counters(
                u64::from(n) * 2000 + 2 * G + u64::from(i / 10_000),
                4000,
                600,
            )
            .event()
        })
        .collect();
    let begin = Instant::now();
    for chunk in interims.chunks(5_000) {
        apply(&pool, chunk).await;
    }
    let second = begin.elapsed();
    println!(
        "ingest: 20000 new-session events in {first:?} ({:.0}/s); 20000 interims of existing sessions in {second:?} ({:.0}/s)",
        20_000.0 / first.as_secs_f64(),
        20_000.0 / second.as_secs_f64()
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 10_000);
}
