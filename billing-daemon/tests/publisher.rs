//! The publisher end to end against Postgres: first snapshot at start, then changes made with
//! plain SQL show up in a newly published snapshot.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use jasiyo_snapshot::{Snapshot, SubscriberStatus};
use sqlx::PgPool;

/// Polls the published snapshot until `check` holds (fails after a generous deadline; the
/// publisher's own target is 100 ms, but CI machines stall).
async fn wait_for(dir: &Path, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = Snapshot::open(&dir.join("subscribers.snap")) {
            if check(&s) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "snapshot never showed: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[sqlx::test]
async fn plain_sql_changes_are_published(pool: PgPool) {
    billing_daemon::demo::load(&pool, Some("demo-secret"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = billing_daemon::publisher::start(pool.clone(), dir.path(), None)
        .await
        .unwrap();
    let first = handle.generation();
    assert!(first >= 1);

    let s = wait_for(dir.path(), "demo data", |s| s.generation() >= first).await;
    assert_eq!(s.plan_count(), 4);
    assert_eq!(s.router_count(), 1);
    let alice = s.subscriber_by_username(b"alice").unwrap();
    assert_eq!(alice.password(), b"alice-pass");
    assert_eq!(alice.status(), SubscriberStatus::Active);
    assert_eq!(alice.plan().unwrap().rate_limit(), b"5M/5M");
    assert_eq!(
        s.subscriber_by_username(b"bob").unwrap().status(),
        SubscriberStatus::Suspended
    );
    let dave = s.subscriber_by_mac([0x02, 0, 0, 0, 0, 1]).unwrap();
    assert_eq!(dave.username(), b"dave");
    assert_eq!(dave.data_remaining_bytes(), Some(2_000_000_000));
    let router = s.router_by_ip("127.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(router.secret(), b"demo-secret");

    // Update by plain SQL.
    sqlx::query("UPDATE subscribers SET status = 'suspended' WHERE username = 'alice'")
        .execute(&pool)
        .await
        .unwrap();
    wait_for(dir.path(), "alice suspended", |s| {
        s.subscriber_by_username(b"alice")
            .is_some_and(|a| a.status() == SubscriberStatus::Suspended)
    })
    .await;

    // Insert a burst of rows in separate transactions; all arrive.
    let plan_id: i64 = sqlx::query_scalar(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, ip_pool, service) \
         VALUES ('Biz', '2M/4M 4M/8M 1500k/3M 16/16 8 1M/2M', 3000, 60, 'biz-pool', 'pppoe') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    for i in 0..20 {
        sqlx::query(
            "INSERT INTO subscribers (username, password, plan_id, expires_at, static_ip) \
             VALUES ($1, 'pw', $2, to_timestamp(2000000000), $3::inet)",
        )
        .bind(format!("burst{i}"))
        .bind(plan_id)
        .bind(format!("10.9.0.{}", i + 1))
        .execute(&pool)
        .await
        .unwrap();
    }
    let s = wait_for(dir.path(), "burst of 20", |s| {
        s.subscriber_by_username(b"burst19").is_some()
    })
    .await;
    for i in 0..20 {
        let b = s
            .subscriber_by_username(format!("burst{i}").as_bytes())
            .unwrap();
        assert_eq!(b.expires_at(), 2_000_000_000);
        assert_eq!(
            b.static_ip(),
            Some(format!("10.9.0.{}", i + 1).parse().unwrap())
        );
        assert_eq!(b.plan().unwrap().ip_pool(), Some(&b"biz-pool"[..]));
    }

    // A plan change is visible through the subscriber's plan.
    sqlx::query("UPDATE plans SET rate_limit = '1M/1M' WHERE id = $1")
        .bind(plan_id)
        .execute(&pool)
        .await
        .unwrap();
    wait_for(dir.path(), "plan rate change", |s| {
        s.subscriber_by_username(b"burst0")
            .and_then(|b| b.plan())
            .is_some_and(|p| p.rate_limit() == b"1M/1M")
    })
    .await;

    // Deletes, a new router, and a TRUNCATE-style full reload.
    sqlx::query("DELETE FROM subscribers WHERE username LIKE 'burst%'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO routers (name, ip, secret) VALUES ('branch', '2001:db8::7', 'b-secret')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let ip: IpAddr = "2001:db8::7".parse().unwrap();
    let s = wait_for(dir.path(), "deletes and new router", |s| {
        s.subscriber_by_username(b"burst0").is_none() && s.router_by_ip(ip).is_some()
    })
    .await;
    assert_eq!(s.router_by_ip(ip).unwrap().secret(), b"b-secret");

    // sessions and auth_log reference routers, so TRUNCATE needs CASCADE (it empties them too).
    sqlx::query("TRUNCATE routers CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    wait_for(dir.path(), "truncate", |s| s.router_count() == 0).await;
    assert!(handle.generation() > first);
    handle.shutdown().await;
}

#[sqlx::test]
async fn survives_losing_the_listen_connection(pool: PgPool) {
    billing_daemon::demo::load(&pool, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = billing_daemon::publisher::start(pool.clone(), dir.path(), None)
        .await
        .unwrap();

    // Kill the publisher's LISTEN connection, then change data while it may be reconnecting.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%') t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    sqlx::query("UPDATE subscribers SET password = 'changed-1' WHERE username = 'alice'")
        .execute(&pool)
        .await
        .unwrap();
    wait_for(dir.path(), "change made around the reconnect", |s| {
        s.subscriber_by_username(b"alice")
            .is_some_and(|a| a.password() == b"changed-1")
    })
    .await;
    // And notifications flow again afterwards.
    sqlx::query("UPDATE subscribers SET password = 'changed-2' WHERE username = 'alice'")
        .execute(&pool)
        .await
        .unwrap();
    wait_for(dir.path(), "change after the reconnect", |s| {
        s.subscriber_by_username(b"alice")
            .is_some_and(|a| a.password() == b"changed-2")
    })
    .await;
    handle.shutdown().await;
}

/// A voucher is published under its lookup name with its plan's duration, flagged unused
/// until activated; its bound MAC is no MAC login.
#[sqlx::test]
async fn vouchers_are_published_unused_until_activated(pool: PgPool) {
    let key = jasiyo_snapshot::voucher::VoucherKey::from_hex(&"5a".repeat(32)).unwrap();
    let name = key.lookup_name("HX7K-Q9MZ").unwrap();
    let plan_id: i64 = sqlx::query_scalar(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service, \
         time_allowance_seconds) VALUES ('1 hour', '2M/2M', 20, 86400, 'hotspot', 3600) \
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let batch_id: i64 = sqlx::query_scalar(
        "INSERT INTO voucher_batches (plan_id, count, code_length) VALUES ($1, 1, 8) RETURNING id",
    )
    .bind(plan_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscribers (username, password, plan_id, expires_at, voucher_batch_id, \
         voucher_code_sealed, time_remaining_seconds) \
         VALUES ($1, '', $2, '9999-12-31', $3, '\\x00', 3600)",
    )
    .bind(&name)
    .bind(plan_id)
    .bind(batch_id)
    .execute(&pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _handle = billing_daemon::publisher::start(pool.clone(), dir.path(), None)
        .await
        .unwrap();
    let s = wait_for(dir.path(), "the voucher", |s| {
        s.subscriber_by_username(name.as_bytes()).is_some()
    })
    .await;
    let v = s.subscriber_by_username(name.as_bytes()).unwrap();
    assert!(v.unused());
    assert_eq!(v.password(), b"");
    assert_eq!(v.time_remaining_seconds(), Some(3600));
    assert_eq!(v.plan().unwrap().duration_seconds(), 86_400);

    sqlx::query(
        "UPDATE subscribers SET activated_at = now(), expires_at = now() + interval '1 day', \
         mac = '02:00:00:00:00:09' WHERE username = $1",
    )
    .bind(&name)
    .execute(&pool)
    .await
    .unwrap();
    let s = wait_for(dir.path(), "the voucher activated", |s| {
        s.subscriber_by_username(name.as_bytes())
            .is_some_and(|v| !v.unused())
    })
    .await;
    let v = s.subscriber_by_username(name.as_bytes()).unwrap();
    assert_eq!(v.mac(), Some([0x02, 0, 0, 0, 0, 9]));
    assert!(s.subscriber_by_mac([0x02, 0, 0, 0, 0, 9]).is_none());
}
