//! Schema tests: constraints mirror the API's rules, and triggers NOTIFY on every change.

use std::time::Duration;

use billing_daemon::domain::RateLimit;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

#[sqlx::test]
async fn rate_limit_check_agrees_with_the_parser(pool: PgPool) {
    let cases = [
        "128k",
        "64k/128M",
        "64k 256k",
        "64k/64k 256k/256k 128k/128k 10/10",
        "2M/4M 4M/8M 1500k/3M 16/16 8 1M/2M",
        "10M/5M 15M/7M",
        "",
        " 5M",
        "5M  10M",
        "5G",
        "1.5M",
        "5M/5M/5M",
        "2M 4M 1M 16k",
        "2M 4M 1M 16 9",
        "2M 4M 1M 16 0",
        "2M 4M 1M 16 8 1M 1M",
    ];
    for s in cases {
        let db: bool = sqlx::query_scalar("SELECT jasiyo_valid_rate_limit($1)")
            .bind(s)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(db, RateLimit::parse(s).is_ok(), "{s:?}");
    }
    // Plain SQL cannot store a malformed one.
    let err = sqlx::query(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service) VALUES ('x', '5 Mbps', 1, 1, 'both')",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("23514")
    );
}

async fn next(listener: &mut PgListener) -> String {
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("no notification")
        .unwrap()
        .payload()
        .to_owned()
}

#[sqlx::test]
async fn triggers_notify_on_every_change(pool: PgPool) {
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("jasiyo_changes").await.unwrap();

    let plan: i64 = sqlx::query_scalar(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service) VALUES ('p', '5M', 1, 60, 'both') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(next(&mut listener).await, format!("plans:{plan}"));

    let router: i64 = sqlx::query_scalar(
        "INSERT INTO routers (name, ip, secret) VALUES ('r', '192.0.2.1', 's') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(next(&mut listener).await, format!("routers:{router}"));

    let sub: i64 = sqlx::query_scalar(
        "INSERT INTO subscribers (username, password, plan_id, expires_at) VALUES ('u', 'p', $1, now()) RETURNING id",
    )
    .bind(plan)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(next(&mut listener).await, format!("subscribers:{sub}"));

    sqlx::query("UPDATE subscribers SET status = 'suspended' WHERE id = $1")
        .bind(sub)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, format!("subscribers:{sub}"));

    sqlx::query("DELETE FROM subscribers WHERE id = $1")
        .bind(sub)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, format!("subscribers:{sub}"));

    sqlx::query("UPDATE routers SET secret = 't'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, format!("routers:{router}"));

    // sessions and auth_log reference routers, so TRUNCATE needs CASCADE (it empties them too).
    sqlx::query("TRUNCATE routers CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, "routers:*");
}
