//! Hotspot vouchers, the daemon's side, against Postgres (`#[sqlx::test]`): batches (codes,
//! uniqueness, bad input), printing, revoke (and the Disconnect it causes), states, the
//! first use journaled by rlm_jasiyo, and accounting by code.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use billing_daemon::accounting::consumer::{JournalConfig, JournalIngest};
use billing_daemon::enforcement;
use billing_daemon::vouchers::codes::ALPHABET;
use billing_daemon::vouchers::{FIRST_USE_REASON, activate};
use chrono::{DateTime, TimeZone, Utc};
use common::nas::{Mode, quick, router};
use common::{TestApp, acct, voucher_key};
use jasiyo_journal::{JournalRecord, JournalWriter};
use radius_proto::Code;
use radius_proto::attr::acct_status_type as st;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A hotspot plan: 1 day from first use, 1,000,000 bytes, KES 50; returns its id.
async fn plan(app: &TestApp, bind_first_mac: bool) -> i64 {
    let r = app
        .post(
            "/api/v1/plans",
            &json!({"name": format!("Siku 1 {bind_first_mac}"), "rate_limit": "2M/2M",
                    "price_kes": 50, "duration_seconds": 86400, "data_cap_bytes": 1_000_000,
                    "service": "hotspot", "bind_first_mac": bind_first_mac}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["bind_first_mac"], bind_first_mac);
    r.json()["id"].as_i64().unwrap()
}

/// Makes a batch; returns (batch id, codes).
async fn batch(app: &TestApp, body: Value) -> (i64, Vec<String>) {
    let r = app.post("/api/v1/voucher-batches", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let v = r.json();
    let codes = v["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (v["batch"]["id"].as_i64().unwrap(), codes)
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn name(code: &str) -> String {
    voucher_key().lookup_name(code).unwrap()
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn a_batch_is_unique_codes_stored_by_lookup_name(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, false).await;
    let (id, codes) = batch(
        &app,
        json!({"plan": plan, "count": 500, "prefix": "hs", "code_length": 8, "note": "shop 4"}),
    )
    .await;
    assert_eq!(codes.len(), 500);
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 500);
    for c in &codes {
        assert_eq!(c.len(), 10, "{c}");
        assert!(c.starts_with("HS"), "{c}");
        assert!(c[2..].bytes().all(|b| ALPHABET.contains(&b)), "{c}");
    }
    // Stored by lookup name, with no password, unused until the end of time.
    let rows: Vec<(String, String, DateTime<Utc>, Option<i64>)> = sqlx::query_as(
        "SELECT username, password, expires_at, data_remaining_bytes FROM subscribers \
         WHERE voucher_batch_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 500);
    for (row, code) in rows.iter().zip(&codes) {
        assert_eq!(row.0, name(code));
        assert_eq!(row.1, "");
        assert_eq!(row.2, Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap());
        assert_eq!(row.3, Some(1_000_000));
    }
    let b = app
        .get(&format!("/api/v1/voucher-batches/{id}"))
        .await
        .json();
    assert_eq!(b["states"]["unused"], 500);
    assert_eq!(b["states"]["active"], 0);
    assert_eq!(b["price_kes"], 50);
    assert_eq!(b["prefix"], "HS");
    assert_eq!(b["note"], "shop 4");
    // A second batch never repeats a code of the first; with valid_until, unused vouchers
    // expire then.
    let until = "2099-01-01T00:00:00Z";
    let (id2, codes2) = batch(
        &app,
        json!({"plan_id": plan, "count": 100, "valid_until": until}),
    )
    .await;
    assert!(codes2.iter().all(|c| c.len() == 10 && !codes.contains(c)));
    let list = app.get("/api/v1/voucher-batches").await.json();
    assert_eq!(list[0]["id"], id2);
    assert_eq!(list[0]["valid_until"], until);
    assert_eq!(list[1]["id"], id);
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn bad_batches_are_refused_and_write_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, false).await;
    let pppoe = app
        .post(
            "/api/v1/plans",
            &json!({"name": "Home", "rate_limit": "5M/5M", "price_kes": 1500,
                    "duration_seconds": 2592000, "service": "pppoe"}),
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    for (body, status, code) in [
        (json!({"plan": plan, "count": 0}), 422, "validation_failed"),
        (
            json!({"plan": plan, "count": 100001}),
            422,
            "validation_failed",
        ),
        (json!({"plan": 999, "count": 5}), 422, "validation_failed"),
        (json!({"plan": pppoe, "count": 5}), 422, "validation_failed"),
        (
            json!({"plan": plan, "count": 5, "prefix": "AB-C"}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": 5, "prefix": "ABCDEFGHJ"}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": 5, "prefix": "ü"}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": 5, "code_length": 5}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": 5, "code_length": 25}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": 5, "valid_until": "2001-01-01T00:00:00Z"}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": 5, "note": "x".repeat(201)}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": 5, "colour": "red"}),
            422,
            "validation_failed",
        ),
        (
            json!({"plan": plan, "count": "five"}),
            422,
            "validation_failed",
        ),
    ] {
        let r = app.post("/api/v1/voucher-batches", &body).await;
        r.assert_error(StatusCode::from_u16(status).unwrap(), code);
    }
    let r = app
        .send(
            "POST",
            "/api/v1/voucher-batches",
            Some("{\"plan\": 1,"),
            Some(&app.token),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "malformed_json");
    let r = app
        .send("POST", "/api/v1/voucher-batches", Some("{}"), None)
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM voucher_batches").await,
        0
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM subscribers").await, 0);
    app.get("/api/v1/voucher-batches/77")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn printing_unseals_codes_that_a_dump_does_not_hold(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, false).await;
    let (id, codes) = batch(&app, json!({"plan": plan, "count": 30})).await;
    let grouped = |c: &str| format!("{}-{}-{}", &c[..4], &c[4..8], &c[8..]);

    let html = app
        .get(&format!("/api/v1/voucher-batches/{id}/print"))
        .await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(
        html.content_type
            .as_deref()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text.contains("Mtaani Net"));
    assert!(html.text.contains("Siku 1 false &middot; KES 50"));
    assert!(
        html.text.contains("Valid 1 day from first use, 1 MB"),
        "{}",
        html.text
    );
    assert!(html.text.contains("@media") && html.text.contains("@page"));
    assert_eq!(html.text.matches("class=\"card\"").count(), 30);
    for c in &codes {
        assert!(html.text.contains(&grouped(c)), "{c}");
    }

    let csv = app
        .get(&format!("/api/v1/voucher-batches/{id}/codes.csv"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type.as_deref().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 31);
    for (line, c) in lines[1..].iter().zip(&codes) {
        assert!(
            line.contains(&format!(",{c},{},Siku 1 false,50,", grouped(c))),
            "{line}"
        );
    }

    // The PDF's streams are not compressed: its text is there to read.
    let pdf = app
        .get(&format!("/api/v1/voucher-batches/{id}/print.pdf"))
        .await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert_eq!(pdf.content_type.as_deref(), Some("application/pdf"));
    assert!(pdf.text.starts_with("%PDF-"));
    assert!(pdf.text.contains("/Count 2"), "30 cards: two pages");
    for c in &codes {
        assert!(pdf.text.contains(&grouped(c)), "{c}");
    }

    // Neither table, nor anything in them, holds a code in any form.
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT s::text FROM subscribers s UNION ALL SELECT b::text FROM voucher_batches b",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let dump = dump.join("\n").to_uppercase();
    assert!(dump.contains(&name(&codes[0]).to_uppercase()));
    for c in &codes {
        assert!(!dump.contains(c.as_str()), "{c} in the dump");
        assert!(
            !dump.contains(&hex::encode_upper(c)),
            "{c} in the dump, as hex"
        );
    }
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn revoking_suspends_the_batch_and_disconnects_who_is_online(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, false).await;
    let (id, codes) = batch(&app, json!({"plan": plan, "count": 3})).await;
    let (other, _) = batch(&app, json!({"plan": plan, "count": 2})).await;
    let (port, seen) = router("127.0.0.1", Mode::AckDisconnectNakCoa).await;
    sqlx::query(
        "INSERT INTO routers (name, ip, secret, coa_port) VALUES ('r1', '127.0.0.1', 'router-secret', $1)",
    )
    .bind(i32::from(port))
    .execute(&pool)
    .await
    .unwrap();
    // The router reports the session under the code as the customer typed it.
    let typed: &'static str = Box::leak(codes[0].to_lowercase().into_boxed_str());
    common::apply(
        &pool,
        &[acct(st::START, typed, "81a00001", 0)
            .router(std::net::Ipv4Addr::LOCALHOST)
            .event()],
    )
    .await;
    let enforcer = enforcement::start(pool.clone(), quick());

    let r = app
        .post_empty(&format!("/api/v1/voucher-batches/{id}/revoke"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b = r.json();
    assert_eq!(b["states"]["revoked"], 3);
    assert_eq!(b["states"]["unused"], 0);
    let revoked_at = b["revoked_at"].clone();
    assert!(revoked_at.is_string());

    // The online voucher is disconnected, by the User-Name the router knows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Disconnect-Request"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.lock().unwrap()[0],
        (Code::DISCONNECT_REQUEST.0, typed.to_owned())
    );
    enforcer.shutdown().await;

    // Again: nothing changes. The other batch is untouched; the revoked one is not printed.
    let again = app
        .post_empty(&format!("/api/v1/voucher-batches/{id}/revoke"))
        .await;
    assert_eq!(again.json()["revoked_at"], revoked_at);
    let o = app
        .get(&format!("/api/v1/voucher-batches/{other}"))
        .await
        .json();
    assert_eq!(o["states"]["unused"], 2);
    app.get(&format!("/api/v1/voucher-batches/{id}/print"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    app.post_empty("/api/v1/voucher-batches/999/revoke")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let listed = app
        .get(&format!("/api/v1/vouchers?batch={id}&state=revoked"))
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 3);
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn states_are_computed(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, false).await;
    let (id, codes) = batch(&app, json!({"plan": plan, "count": 6})).await;
    let set = |sql: &'static str, code: &str| {
        let pool = pool.clone();
        let n = name(code);
        async move {
            sqlx::query(sql).bind(n).execute(&pool).await.unwrap();
        }
    };
    // 0 unused; 1 active; 2 data used up; 3 validity over; 4 unused past valid_until;
    // 5 suspended on its own.
    let used = "UPDATE subscribers SET activated_at = now(), expires_at = now() + interval '1 day' WHERE username = $1";
    set(used, &codes[1]).await;
    set(used, &codes[2]).await;
    set(
        "UPDATE subscribers SET data_remaining_bytes = 0 WHERE username = $1",
        &codes[2],
    )
    .await;
    set("UPDATE subscribers SET activated_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE username = $1", &codes[3]).await;
    set(
        "UPDATE subscribers SET expires_at = now() - interval '1 second' WHERE username = $1",
        &codes[4],
    )
    .await;
    set(
        "UPDATE subscribers SET status = 'suspended' WHERE username = $1",
        &codes[5],
    )
    .await;
    let b = app
        .get(&format!("/api/v1/voucher-batches/{id}"))
        .await
        .json();
    assert_eq!(
        b["states"],
        json!({"unpaid": 0, "unused": 1, "active": 1, "exhausted": 1, "expired": 2, "revoked": 1})
    );
    for (state, want) in [
        ("unused", 0),
        ("active", 1),
        ("exhausted", 2),
        ("revoked", 5),
    ] {
        let v = app
            .get(&format!("/api/v1/vouchers?state={state}"))
            .await
            .json();
        assert_eq!(v.as_array().unwrap().len(), 1, "{state}: {v}");
        assert_eq!(v[0]["username"], name(&codes[want]), "{state}");
        assert_eq!(v[0]["state"], state);
    }
    // Found by its code as a customer reads it out.
    let dashed = format!("{}-{}", &codes[2][..5].to_lowercase(), &codes[2][5..]);
    let v = app
        .get(&format!("/api/v1/vouchers?code={dashed}"))
        .await
        .json();
    assert_eq!(v[0]["state"], "exhausted");
    assert!(
        !v.to_string().contains(&codes[2]),
        "a listing never shows a code"
    );
    app.get("/api/v1/vouchers?state=lost")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/api/v1/vouchers?code=a%40b")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

fn first_use(code: &str, at: DateTime<Utc>, router: [u8; 4], mac: &str) -> Vec<u8> {
    JournalRecord::AuthResult {
        at_ms: at.timestamp_millis(),
        source: SocketAddr::from((router, 40001)),
        username: name(code),
        nas_identifier: Some("hs".to_owned()),
        calling_station_id: Some(mac.to_owned()),
        accepted: true,
        reason: Some(FIRST_USE_REASON.to_owned()),
    }
    .encode()
    .unwrap()
}

/// One batch of the journal through the consumer, as the daemon runs it.
async fn consume(ingest: &mut JournalIngest) {
    let batch = ingest.read().await.unwrap();
    ingest.store(&batch).await.unwrap();
    ingest.commit(&batch).await.unwrap();
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn first_use_through_the_journal_activates_once_and_binds_the_mac(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, true).await;
    let until = Utc::now() + chrono::Duration::hours(10);
    let (_, codes) = batch(
        &app,
        json!({"plan": plan, "count": 2, "valid_until": until.to_rfc3339()}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let config = JournalConfig {
        vouchers: Some(voucher_key()),
        ..JournalConfig::new(&path, 1 << 20, None)
    };
    let mut ingest = JournalIngest::open(pool.clone(), &config).await.unwrap();
    let writer = JournalWriter::open(&path).unwrap();
    // Two routers report the first use of codes[0] in one batch; the later one is ignored.
    let at = Utc::now() - chrono::Duration::minutes(5);
    let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap();
    writer
        .append(&first_use(
            &codes[0],
            at + chrono::Duration::seconds(1),
            [192, 0, 2, 2],
            "02:00:00:00:00:02",
        ))
        .unwrap();
    writer
        .append(&first_use(
            &codes[0],
            at,
            [192, 0, 2, 1],
            "02:00:00:00:00:01",
        ))
        .unwrap();
    // codes[1] is first used with 1 day of plan duration but only 10 h of batch validity.
    writer
        .append(&first_use(&codes[1], at, [192, 0, 2, 1], "not a mac"))
        .unwrap();
    consume(&mut ingest).await;
    let row = |code: &str| {
        let pool = pool.clone();
        let n = name(code);
        async move {
            sqlx::query_as::<_, (Option<DateTime<Utc>>, DateTime<Utc>, Option<String>)>(
                "SELECT activated_at, expires_at, voucher_mac::text FROM subscribers WHERE username = $1",
            )
            .bind(n)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (activated, _, mac) = row(&codes[0]).await;
    assert_eq!(activated, Some(at));
    assert_eq!(mac.as_deref(), Some("02:00:00:00:00:01"));
    let (activated, expires, mac) = row(&codes[1]).await;
    assert_eq!(activated, Some(at));
    assert_eq!(
        expires.timestamp(),
        until.timestamp(),
        "capped at valid_until"
    );
    assert_eq!(mac, None, "an unreadable Calling-Station-Id binds nothing");
    assert_eq!(count(&pool, "SELECT count(*) FROM auth_log").await, 3);

    // A later batch reporting it again (a router's retry) changes nothing.
    writer
        .append(&first_use(
            &codes[0],
            at + chrono::Duration::minutes(1),
            [192, 0, 2, 2],
            "02:00:00:00:00:02",
        ))
        .unwrap();
    consume(&mut ingest).await;
    let (activated, _, mac) = row(&codes[0]).await;
    assert_eq!(activated, Some(at));
    assert_eq!(mac.as_deref(), Some("02:00:00:00:00:01"));
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn two_concurrent_first_uses_activate_once(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, false).await;
    let (_, codes) = batch(&app, json!({"plan": plan, "count": 1})).await;
    let auth = |secs: i64| billing_daemon::accounting::AuthResult {
        at: Utc.timestamp_opt(Utc::now().timestamp() - secs, 0).unwrap(),
        source: None,
        username: name(&codes[0]),
        nas_identifier: None,
        calling_station_id: None,
        accepted: true,
        reason: Some(FIRST_USE_REASON.to_owned()),
    };
    let (a, b) = (auth(10), auth(5));
    // Two consumers (two daemons, say) at once: the first holds the row...
    let mut tx1 = pool.begin().await.unwrap();
    assert_eq!(
        activate(&mut tx1, std::slice::from_ref(&a)).await.unwrap(),
        1
    );
    let second = {
        let pool = pool.clone();
        let b = b.clone();
        tokio::spawn(async move {
            let mut tx2 = pool.begin().await.unwrap();
            let n = activate(&mut tx2, &[b]).await.unwrap();
            tx2.commit().await.unwrap();
            n
        })
    };
    // ...the second waits for its lock (polled in pg_stat_activity)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count(
        &pool,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE subscribers s SET activated_at%'",
    )
    .await
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "the second never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx1.commit().await.unwrap();
    // ...and then finds it activated.
    assert_eq!(second.await.unwrap(), 0);
    let (activated, expires): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "SELECT activated_at, expires_at FROM subscribers WHERE voucher_batch_id IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(activated, a.at);
    assert_eq!(expires, a.at + chrono::Duration::days(1));
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn accounting_by_code_counts_the_voucher_down_and_sales_report_it(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let plan = plan(&app, false).await;
    let (id, codes) = batch(&app, json!({"plan": plan, "count": 3})).await;
    let typed: &'static str = Box::leak(
        format!("{}-{}", &codes[0][..5], &codes[0][5..])
            .to_lowercase()
            .into_boxed_str(),
    );
    common::apply(
        &pool,
        &[
            acct(st::START, typed, "81b00001", 0).event(),
            acct(st::INTERIM_UPDATE, typed, "81b00001", 300)
                .counters(300_000, 200_000, 300)
                .event(),
        ],
    )
    .await;
    let (data, username): (Option<i64>, String) = sqlx::query_as(
        "SELECT s.data_remaining_bytes, x.username FROM subscribers s \
         JOIN sessions x ON x.subscriber_id = s.id WHERE s.username = $1",
    )
    .bind(name(&codes[0]))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(data, Some(500_000));
    assert_eq!(
        username, typed,
        "the session keeps what the router reported"
    );
    // A User-Name that is no code and no subscriber stays unmatched.
    common::apply(&pool, &[acct(st::START, "nobody@x", "81b00002", 0).event()]).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM sessions WHERE subscriber_id IS NULL"
        )
        .await,
        1
    );

    // Sales: two first uses today, and a paid portal batch (an unpaid one is no sale).
    for c in &codes[..2] {
        sqlx::query("UPDATE subscribers SET activated_at = now() WHERE username = $1")
            .bind(name(c))
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO voucher_batches (plan_id, count, code_length, origin, price_kes, paid_at) \
         VALUES ($1, 4, 10, 'portal', 40, now()), ($1, 1, 10, 'portal', 40, NULL)",
    )
    .bind(plan)
    .execute(&pool)
    .await
    .unwrap();
    let today = Utc::now().date_naive();
    let s = app
        .get(&format!("/api/v1/vouchers/sales?from={today}&to={today}"))
        .await
        .json();
    assert_eq!(
        s,
        json!([{"day": today.to_string(), "plan_id": plan, "plan_name": "Siku 1 false",
                "activated": 2, "activated_kes": 100, "portal_sold": 4, "portal_kes": 160}])
    );
    let yesterday = today.pred_opt().unwrap();
    let s = app
        .get(&format!(
            "/api/v1/vouchers/sales?from={yesterday}&to={yesterday}"
        ))
        .await
        .json();
    assert_eq!(s, json!([]));
    app.get(&format!(
        "/api/v1/vouchers/sales?from={today}&to={yesterday}"
    ))
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let _ = id;
}
