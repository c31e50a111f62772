//! Enforcement against Postgres (`#[sqlx::test]`): the triggers queue an action for every
//! open session when a subscriber must be cut off or changed, the expiry scan queues each
//! expiry once, the worker sends and records outcomes (to loopback routers of this test), and
//! the API shows the log and takes an operator's disconnect.

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use billing_daemon::accounting::AccountingEvent;
use billing_daemon::enforcement::{self, queue};
use chrono::Utc;
use common::nas::{Mode, quick, router};
use common::{TestApp, apply};
use radius_proto::Code;
use radius_proto::attr::acct_status_type as st;
use serde_json::Value;
use sqlx::PgPool;

/// Plan 1 (no FUP) and plan 2 (FUP 256k/512k once the data is used up), router 1 at
/// 127.0.0.1 (its CoA port is set per test), subscribers alice (1 MB left) and bob, each
/// with one open session, and an ended session of alice's.
async fn setup(pool: &PgPool) {
    for sql in [
        "INSERT INTO plans (id, name, rate_limit, price_kes, duration_seconds, service) \
         VALUES (1, 'basic', '5M/5M', 1, 86400, 'both')",
        "INSERT INTO plans (id, name, rate_limit, price_kes, duration_seconds, service, fup_rate_limit) \
         VALUES (2, 'fair', '10M/10M', 1, 86400, 'both', '256k/512k')",
        "INSERT INTO routers (id, name, ip, secret) VALUES (1, 'r1', '127.0.0.1', 'router-secret')",
        "INSERT INTO subscribers (id, username, password, plan_id, expires_at, data_remaining_bytes) VALUES \
         (1, 'alice', 'x', 1, now() + interval '30 days', 1000000), \
         (2, 'bob', 'x', 1, now() + interval '30 days', NULL)",
        "INSERT INTO sessions (id, router_id, source_ip, nas_ip, username, subscriber_id, acct_session_id, \
            unique_key, framed_ip, started_at, last_update_at, stopped_at, closed_by) VALUES \
         (10, 1, '127.0.0.1', '192.0.2.1', 'alice', 1, 'a-open', 'k10', '10.0.0.10', now(), now(), NULL, NULL), \
         (11, 1, '127.0.0.1', '192.0.2.1', 'alice', 1, 'a-old', 'k11', '10.0.0.11', now(), now(), now(), 'router'), \
         (20, 1, '127.0.0.1', NULL, 'bob', 2, 'b-open', 'k20', NULL, now(), now(), NULL, NULL)",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

/// (reason, session_id, status) of every action, in id order.
async fn actions(pool: &PgPool) -> Vec<(String, Option<i64>, String)> {
    sqlx::query_as("SELECT reason, session_id, status FROM enforcement_actions ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn pending(reason: &str, session: i64) -> (String, Option<i64>, String) {
    (reason.to_owned(), Some(session), "pending".to_owned())
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

#[sqlx::test]
async fn suspension_queues_a_disconnect_per_open_session_and_notifies(pool: PgPool) {
    setup(&pool).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen(queue::CHANNEL).await.unwrap();
    exec(
        &pool,
        "UPDATE subscribers SET status = 'suspended' WHERE id = 1",
    )
    .await;
    assert_eq!(actions(&pool).await, [pending("suspended", 10)]);
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), "suspended");
    // Updating a suspended subscriber again queues nothing more.
    exec(
        &pool,
        "UPDATE subscribers SET status = 'suspended', plan_id = 2 WHERE id = 1",
    )
    .await;
    assert_eq!(actions(&pool).await.len(), 1);
}

#[sqlx::test]
async fn each_change_queues_its_reason(pool: PgPool) {
    setup(&pool).await;
    exec(&pool, "UPDATE subscribers SET plan_id = 2 WHERE id = 2").await;
    exec(
        &pool,
        "UPDATE subscribers SET expires_at = now() - interval '1 second' WHERE id = 2",
    )
    .await;
    exec(
        &pool,
        "UPDATE subscribers SET time_remaining_seconds = 0 WHERE id = 1",
    )
    .await;
    // A plan's rate edited: everyone online on it (alice, on plan 1).
    exec(&pool, "UPDATE plans SET rate_limit = '6M/6M' WHERE id = 1").await;
    // Renaming a plan is not a rate change.
    exec(&pool, "UPDATE plans SET name = 'basic2' WHERE id = 1").await;
    exec(&pool, "DELETE FROM subscribers WHERE id = 1").await;
    assert_eq!(
        actions(&pool).await,
        [
            pending("plan_changed", 20),
            pending("expired", 20),
            pending("time_exhausted", 10),
            pending("plan_changed", 10),
            pending("deleted", 10),
        ]
    );
    // The deleted subscriber's action keeps who it was for.
    let (sub, user): (Option<i64>, String) = sqlx::query_as(
        "SELECT subscriber_id, username FROM enforcement_actions WHERE reason = 'deleted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((sub, user.as_str()), (Some(1), "alice"));
}

/// An Interim-Update from router 2 (127.0.0.2), reported now.
fn interim(user: &'static str, sid: &str, bytes: u64) -> AccountingEvent {
    common::acct(st::INTERIM_UPDATE, user, sid, 0)
        .router(Ipv4Addr::new(127, 0, 0, 2))
        .at(Utc::now())
        .counters(bytes, 0, 60)
        .event()
}

#[sqlx::test]
async fn data_used_up_by_accounting_queues_once(pool: PgPool) {
    setup(&pool).await;
    exec(
        &pool,
        "INSERT INTO routers (id, name, ip, secret) VALUES (2, 'r2', '127.0.0.2', 's')",
    )
    .await;
    apply(&pool, &[interim("alice", "a-r2", 600_000)]).await;
    assert_eq!(actions(&pool).await, []);
    apply(&pool, &[interim("alice", "a-r2", 1_200_000)]).await;
    apply(&pool, &[interim("alice", "a-r2", 1_500_000)]).await;
    // Both of alice's open sessions (on two routers), once.
    let got = actions(&pool).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(r, _, _)| r == "data_exhausted"));
}

#[sqlx::test]
async fn each_expiry_is_queued_once_per_session(pool: PgPool) {
    setup(&pool).await;
    assert_eq!(queue::queue_expired(&pool).await.unwrap(), 0);
    let next = queue::next_expiry(&pool).await.unwrap().unwrap();
    assert!(next > Utc::now());
    // Expiry passes by the clock (not by an update: the trigger does not fire).
    exec(
        &pool,
        "ALTER TABLE subscribers DISABLE TRIGGER subscribers_enforce_update",
    )
    .await;
    exec(
        &pool,
        "UPDATE subscribers SET expires_at = now() - interval '1 minute' WHERE id = 2",
    )
    .await;
    exec(
        &pool,
        "ALTER TABLE subscribers ENABLE TRIGGER subscribers_enforce_update",
    )
    .await;
    assert_eq!(queue::queue_expired(&pool).await.unwrap(), 1);
    assert_eq!(queue::queue_expired(&pool).await.unwrap(), 0);
    assert_eq!(actions(&pool).await, [pending("expired", 20)]);
    // Renewed and expired again: a new expiry, enforced again.
    exec(
        &pool,
        "ALTER TABLE subscribers DISABLE TRIGGER subscribers_enforce_update",
    )
    .await;
    exec(
        &pool,
        "UPDATE subscribers SET expires_at = now() - interval '1 second' WHERE id = 2",
    )
    .await;
    assert_eq!(queue::queue_expired(&pool).await.unwrap(), 1);
}

/// The test data, router 1 answering as `mode`, and the worker started.
async fn worker_with_router(
    pool: &PgPool,
    mode: Mode,
) -> (Arc<Mutex<Vec<(u8, String)>>>, enforcement::Enforcer) {
    setup(pool).await;
    let (port, seen) = router("127.0.0.1", mode).await;
    exec(
        pool,
        &format!("UPDATE routers SET coa_port = {port} WHERE id = 1"),
    )
    .await;
    (seen, enforcement::start(pool.clone(), quick()))
}

/// Polls until every action is final; returns (reason, kind, status, error_cause, detail).
async fn settled(
    pool: &PgPool,
) -> Vec<(
    String,
    Option<String>,
    String,
    Option<i32>,
    Option<String>,
    i32,
)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<_> = sqlx::query_as(
            "SELECT reason, kind, status, error_cause, detail, attempts \
               FROM enforcement_actions ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        if !rows.is_empty()
            && rows
                .iter()
                .all(|r: &(String, Option<String>, String, _, _, _)| r.2 != "pending")
        {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "actions still pending: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn worker_sends_records_and_falls_back(pool: PgPool) {
    let (seen, enforcer) = worker_with_router(&pool, Mode::AckDisconnectNakCoa).await;
    // bob changes plan (CoA, NAKed, replaced by a Disconnect); alice is suspended.
    exec(&pool, "UPDATE subscribers SET plan_id = 2 WHERE id = 2").await;
    exec(
        &pool,
        "UPDATE subscribers SET status = 'suspended' WHERE id = 1",
    )
    .await;
    let rows = settled(&pool).await;
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_deref(), r.2.as_str(), r.3))
        .collect();
    assert_eq!(
        summary,
        [
            ("plan_changed", Some("coa"), "naked", Some(405)),
            ("suspended", Some("disconnect"), "acked", None),
            ("plan_changed", Some("disconnect"), "acked", None),
        ]
    );
    assert_eq!(rows[0].4.as_deref(), Some("Unsupported-Service"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.contains(&(Code::COA_REQUEST.0, "bob".into())));
    assert!(seen.contains(&(Code::DISCONNECT_REQUEST.0, "alice".into())));
    enforcer.shutdown().await;
}

#[sqlx::test]
async fn unanswered_disconnects_are_retried_in_rounds_then_time_out(pool: PgPool) {
    let (seen, enforcer) = worker_with_router(&pool, Mode::Silent).await;
    exec(
        &pool,
        "UPDATE subscribers SET status = 'suspended' WHERE id = 2",
    )
    .await;
    let rows = settled(&pool).await;
    assert_eq!(rows.len(), 1);
    let (reason, kind, status, _, detail, attempts) = &rows[0];
    assert_eq!(
        (reason.as_str(), kind.as_deref(), status.as_str(), *attempts),
        ("suspended", Some("disconnect"), "timeout", 2)
    );
    assert!(
        detail.as_deref().unwrap().starts_with("no answer to 3"),
        "{detail:?}"
    );
    // Two rounds of three transmissions, each the same request within its round.
    assert_eq!(seen.lock().unwrap().len(), 6);
    enforcer.shutdown().await;
}

#[sqlx::test]
async fn an_unanswered_coa_is_replaced_by_a_disconnect(pool: PgPool) {
    let (seen, enforcer) = worker_with_router(&pool, Mode::Silent).await;
    exec(&pool, "UPDATE subscribers SET plan_id = 2 WHERE id = 2").await;
    // The CoA gets one round; its Disconnect fallback gets the configured two.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = settled(&pool).await;
        if rows.len() == 2 || tokio::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_deref(), r.2.as_str(), r.5))
        .collect();
    assert_eq!(
        summary,
        [
            ("plan_changed", Some("coa"), "timeout", 1),
            ("plan_changed", Some("disconnect"), "timeout", 2),
        ]
    );
    let codes: Vec<u8> = seen.lock().unwrap().iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        [43, 43, 43, 40, 40, 40, 40, 40, 40],
        "CoA-Requests, then Disconnect-Requests"
    );
    enforcer.shutdown().await;
}

#[sqlx::test]
async fn ended_sessions_and_undone_changes_are_skipped(pool: PgPool) {
    setup(&pool).await;
    // Queued while the worker is not running; undone before it starts.
    exec(
        &pool,
        "UPDATE subscribers SET status = 'suspended' WHERE id = 2",
    )
    .await;
    exec(
        &pool,
        "UPDATE subscribers SET status = 'active' WHERE id = 2",
    )
    .await;
    exec(
        &pool,
        "UPDATE subscribers SET status = 'suspended' WHERE id = 1",
    )
    .await;
    exec(
        &pool,
        "UPDATE sessions SET stopped_at = now(), closed_by = 'router' WHERE id = 10",
    )
    .await;
    let enforcer = enforcement::start(pool.clone(), quick());
    let rows = settled(&pool).await;
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.2.as_str(), r.4.as_deref(), r.5))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "suspended",
                "skipped",
                Some("resumed before it was sent"),
                0
            ),
            (
                "suspended",
                "skipped",
                Some("the session had already ended"),
                0
            ),
        ]
    );
    enforcer.shutdown().await;
}

#[sqlx::test]
async fn operator_disconnect_and_the_log(pool: PgPool) {
    setup(&pool).await;
    let app = TestApp::new(pool.clone()).await;
    let r = app.post_empty("/api/v1/sessions/20/disconnect").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let action = r.json();
    assert_eq!(action["reason"], "operator");
    assert_eq!(action["status"], "pending");
    assert_eq!(action["username"], "bob");
    assert_eq!(action["session_id"], 20);
    let id = action["id"].as_i64().unwrap();

    app.post_empty("/api/v1/sessions/11/disconnect")
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    app.post_empty("/api/v1/sessions/999/disconnect")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.post_empty("/api/v1/sessions/abc/disconnect")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");

    exec(
        &pool,
        "UPDATE subscribers SET status = 'suspended' WHERE id = 1",
    )
    .await;
    let log = app.get("/api/v1/enforcement-log").await.json();
    let reasons: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["suspended", "operator"], "newest first");
    let only: Value = app.get("/api/v1/enforcement-log?username=bob").await.json();
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(&format!("/api/v1/enforcement-log/{id}"))
            .await
            .json()["id"],
        id
    );
    app.get("/api/v1/enforcement-log?status=bogus")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/enforcement-log?limit=0")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/enforcement-log/424242")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn renewal_onto_another_plan_changes_the_rate_online(pool: PgPool) {
    setup(&pool).await;
    let app = TestApp::new(pool.clone()).await;
    // A plain renewal (no body) changes no plan: nothing to send.
    let r = app.post_empty("/api/v1/subscribers/bob/renew").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(actions(&pool).await, []);
    let r = app
        .post(
            "/api/v1/subscribers/bob/renew",
            &serde_json::json!({"plan_id": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["plan_id"], 2);
    assert_eq!(actions(&pool).await, [pending("plan_changed", 20)]);
    app.post(
        "/api/v1/subscribers/bob/renew",
        &serde_json::json!({"plan_id": 99}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        "/api/v1/subscribers/bob/renew",
        &serde_json::json!({"plan": 2}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app
        .send(
            "POST",
            "/api/v1/subscribers/bob/renew",
            Some("{not json"),
            Some(&app.token.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[sqlx::test]
async fn renewal_of_an_expired_subscriber_still_online_reconnects_them(pool: PgPool) {
    setup(&pool).await;
    exec(
        &pool,
        "UPDATE subscribers SET expires_at = now() - interval '1 hour' WHERE id = 2",
    )
    .await;
    exec(
        &pool,
        "UPDATE enforcement_actions SET status = 'timeout', completed_at = now()",
    )
    .await;
    let app = TestApp::new(pool.clone()).await;
    let r = app.post_empty("/api/v1/subscribers/bob/renew").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = actions(&pool).await;
    assert_eq!(got.last(), Some(&pending("reactivated", 20)), "{got:?}");
}
