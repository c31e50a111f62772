//! `demo-data`: a small, idempotent data set for trying the stack. Re-running it resets the
//! demo rows to their demo state (and keeps the router's secret unless a new one is given).

use rand::RngCore;
use sqlx::PgPool;

/// `/radius incoming` port of the demo router (see [`load`]).
pub const DEMO_ROUTER_COA_PORT: i32 = 53799;

/// What `demo-data` created, for printing.
#[derive(Debug)]
pub struct DemoSummary {
    /// Name of the demo router.
    pub router_name: String,
    /// Its IP.
    pub router_ip: String,
    /// Its shared secret.
    pub router_secret: String,
}

/// Loads the demo data set. `router_secret`: use this secret (otherwise keep the existing one,
/// or make a random one the first time).
pub async fn load(pool: &PgPool, router_secret: Option<&str>) -> anyhow::Result<DemoSummary> {
    let mut tx = pool.begin().await?;
    let plan = "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, data_cap_bytes, ip_pool, service) \
                VALUES ($1, $2, $3, $4, $5, $6, $7) \
                ON CONFLICT (name) DO UPDATE SET rate_limit = EXCLUDED.rate_limit, price_kes = EXCLUDED.price_kes, \
                duration_seconds = EXCLUDED.duration_seconds, data_cap_bytes = EXCLUDED.data_cap_bytes, \
                ip_pool = EXCLUDED.ip_pool, service = EXCLUDED.service RETURNING id";
    let home: i64 = sqlx::query_scalar(plan)
        .bind("Home 5M")
        .bind("5M/5M")
        .bind(1500_i64)
        .bind(30 * 86_400_i64)
        .bind(None::<i64>)
        .bind(None::<String>)
        .bind("both")
        .fetch_one(&mut *tx)
        .await?;
    let hotspot: i64 = sqlx::query_scalar(plan)
        .bind("Hotspot 1 day")
        .bind("2M/2M")
        .bind(50_i64)
        .bind(86_400_i64)
        .bind(Some(2_000_000_000_i64))
        .bind(None::<String>)
        .bind("hotspot")
        .fetch_one(&mut *tx)
        .await?;
    let one_hour: i64 = sqlx::query_scalar(plan)
        .bind("Hotspot 1 hour")
        .bind("2M/2M")
        .bind(20_i64)
        .bind(3_600_i64)
        .bind(None::<i64>)
        .bind(None::<String>)
        .bind("hotspot")
        .fetch_one(&mut *tx)
        .await?;
    let one_gb: i64 = sqlx::query_scalar(plan)
        .bind("Hotspot 1 GB")
        .bind("5M/5M")
        .bind(100_i64)
        .bind(7 * 86_400_i64)
        .bind(Some(1_i64 << 30))
        .bind(None::<String>)
        .bind("hotspot")
        .fetch_one(&mut *tx)
        .await?;

    let fresh_secret = || {
        let mut b = [0u8; 12];
        rand::rng().fill_bytes(&mut b);
        hex::encode(b)
    };
    // The demo router is this machine, where 3799 may be another FreeRADIUS's CoA port:
    // its Disconnects go to an unusual port nothing listens on (and are logged as
    // unanswered).
    let secret: String = match router_secret {
        Some(s) => sqlx::query_scalar(
            "INSERT INTO routers (name, ip, secret, coa_port) VALUES ('demo-router', '127.0.0.1', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET ip = EXCLUDED.ip, secret = EXCLUDED.secret, \
               coa_port = EXCLUDED.coa_port RETURNING secret",
        )
        .bind(s)
        .bind(DEMO_ROUTER_COA_PORT)
        .fetch_one(&mut *tx)
        .await?,
        None => sqlx::query_scalar(
            "INSERT INTO routers (name, ip, secret, coa_port) VALUES ('demo-router', '127.0.0.1', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET ip = EXCLUDED.ip, coa_port = EXCLUDED.coa_port \
             RETURNING secret",
        )
        .bind(fresh_secret())
        .bind(DEMO_ROUTER_COA_PORT)
        .fetch_one(&mut *tx)
        .await?,
    };

    // What the demo router's hotspot login page sells, in this order.
    sqlx::query(
        "DELETE FROM router_packages WHERE router_id = (SELECT id FROM routers WHERE name = 'demo-router')",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO router_packages (router_id, plan_id, position) \
         SELECT r.id, t.plan, t.n FROM routers r, UNNEST($1::bigint[]) WITH ORDINALITY AS t(plan, n) \
          WHERE r.name = 'demo-router'",
    )
    .bind([one_hour, hotspot, one_gb])
    .execute(&mut *tx)
    .await?;

    // (username, password, plan, status, expires in seconds from now, mac, data remaining)
    type Demo<'a> = (
        &'a str,
        &'a str,
        i64,
        &'a str,
        i64,
        Option<&'a str>,
        Option<i64>,
    );
    let subscribers: [Demo<'_>; 5] = [
        (
            "alice",
            "alice-pass",
            home,
            "active",
            30 * 86_400,
            None,
            None,
        ),
        (
            "bob",
            "bob-pass",
            home,
            "suspended",
            30 * 86_400,
            None,
            None,
        ),
        ("carol", "carol-pass", home, "active", -86_400, None, None),
        (
            "dave",
            "dave-pass",
            hotspot,
            "active",
            86_400,
            Some("02:00:00:00:00:01"),
            Some(2_000_000_000),
        ),
        // The user of the captured RouterOS hotspot CHAP request in shared/fixtures.
        ("test", "test", home, "active", 30 * 86_400, None, None),
    ];
    for (username, password, plan_id, status, expires_in, mac, data) in subscribers {
        sqlx::query(
            "INSERT INTO subscribers (username, password, plan_id, status, expires_at, mac, data_remaining_bytes) \
             VALUES ($1, $2, $3, $4, date_trunc('second', now()) + make_interval(secs => $5), $6::macaddr, $7) \
             ON CONFLICT (username) DO UPDATE SET password = EXCLUDED.password, plan_id = EXCLUDED.plan_id, \
             status = EXCLUDED.status, expires_at = EXCLUDED.expires_at, static_ip = NULL, mac = EXCLUDED.mac, \
             data_remaining_bytes = EXCLUDED.data_remaining_bytes",
        )
        .bind(username)
        .bind(password)
        .bind(plan_id)
        .bind(status)
        .bind(expires_in as f64)
        .bind(mac)
        .bind(data)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(DemoSummary {
        router_name: "demo-router".to_owned(),
        router_ip: "127.0.0.1".to_owned(),
        router_secret: secret,
    })
}
