//! The hotspot login page's API (`/portal/v1`) against Postgres (`#[sqlx::test]`), the fake
//! Daraja and a real snapshot publisher on a temporary directory: buying a package, polling
//! until the code comes back (only once radiusd's snapshot has the voucher usable), the
//! failures, the rate limits, and the operator's packages per router.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;
use billing_daemon::config::PortalLimits;
use billing_daemon::payments::reconciler;
use billing_daemon::portal::Portal;
use billing_daemon::publisher::{self, SnapshotHandle};
use fake_daraja::{FakeConfig, FakeDaraja, Outcome};
use jasiyo_snapshot::{SnapshotReader, SubscriberStatus};
use serde_json::{Value, json};
use sqlx::PgPool;

/// Price of the hour package.
const HOUR_KES: i64 = 20;

struct Harness {
    base: String,
    token: String,
    pool: PgPool,
    fake: FakeDaraja,
    snapshot_dir: tempfile::TempDir,
    _publisher: SnapshotHandle,
    _reconciler: reconciler::Reconciler,
}

/// Plans: 1 "1 hour" (hotspot, 20 KES), 2 "1 GB" (hotspot), 3 "home" (PPPoE only),
/// 4 "not here" (hotspot, not sold on router 1). Router 1 sells [1, 2].
async fn start(pool: PgPool, limits: PortalLimits) -> Harness {
    for sql in [
        "INSERT INTO plans (id, name, rate_limit, price_kes, duration_seconds, data_cap_bytes, service) VALUES \
           (1, '1 hour', '2M/5M', 20, 3600, NULL, 'hotspot'), \
           (2, '1 GB', '5M/5M', 100, 604800, 1073741824, 'hotspot'), \
           (3, 'home', '10M/10M', 2500, 2592000, NULL, 'pppoe'), \
           (4, 'not here', '1M/1M', 10, 3600, NULL, 'both')",
        "INSERT INTO routers (id, name, ip, secret) VALUES (1, 'tower-1', '127.0.0.1', 's3cret')",
        "INSERT INTO router_packages (router_id, plan_id, position) VALUES (1, 1, 1), (1, 2, 2)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let fake = FakeDaraja::start(FakeConfig::sandbox()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mpesa = common::pay::mpesa(&fake.base_url(), &format!("http://{addr}"), &[]);
    let snapshot_dir = tempfile::tempdir().unwrap();
    let publisher = publisher::start(pool.clone(), snapshot_dir.path(), None)
        .await
        .unwrap();
    let mut state = common::state(&pool, Some(mpesa.clone()));
    state.portal = std::sync::Arc::new(Portal::new(limits, Some(snapshot_dir.path().to_owned())));
    common::pay::serve(listener, state);
    let token = billing_daemon::token::create(&pool, "test").await.unwrap();
    Harness {
        base: format!("http://{addr}"),
        token,
        _reconciler: reconciler::start(pool.clone(), mpesa),
        pool,
        fake,
        snapshot_dir,
        _publisher: publisher,
    }
}

struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

impl Harness {
    /// A client whose requests come from `ip` (any 127.0.0.0/8 address works on loopback).
    fn client(from: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(from.parse::<IpAddr>().unwrap())
            .build()
            .unwrap()
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let text = resp.text().await.unwrap();
        Reply {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Self::client("127.0.0.1").get(format!("{}{path}", self.base)))
            .await
    }

    async fn buy_from(&self, from: &str, router: i64, body: &Value) -> Reply {
        self.send(
            Self::client(from)
                .post(format!(
                    "{}/portal/v1/routers/{router}/purchases",
                    self.base
                ))
                .json(body),
        )
        .await
    }

    async fn buy(&self, package: i64, phone: &str) -> Reply {
        self.buy_from(
            "127.0.0.1",
            1,
            &json!({"package_id": package, "phone": phone, "mac": "AA:BB:CC:00:11:22"}),
        )
        .await
    }

    async fn poll(&self, token: &str) -> Reply {
        self.get(&format!("/portal/v1/purchases/{token}")).await
    }

    /// Polls the purchase until its status is `want` (the page polls every 2 s; faster here).
    async fn poll_until(&self, token: &str, want: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.poll(token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            if r.body["status"] == want {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "purchase still {}, want {want}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = reqwest::Client::new()
            .request(
                method.parse().unwrap(),
                format!("{}/api/v1{path}", self.base),
            )
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    async fn scalar(&self, sql: &str) -> String {
        common::pay::scalar(&self.pool, sql).await
    }

    async fn until(&self, sql: &str, want: &str) {
        common::pay::until(&self.pool, sql, want).await;
    }

    /// The one voucher bought, as the portal made it: (lookup name, state as the API
    /// computes it).
    async fn voucher(&self) -> (String, String) {
        let name = self
            .scalar("SELECT username FROM subscribers WHERE voucher_batch_id IS NOT NULL")
            .await;
        let r = self.api("GET", "/vouchers", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let list = r.body.as_array().unwrap();
        assert_eq!(list.len(), 1, "{}", r.body);
        (name, list[0]["state"].as_str().unwrap().to_owned())
    }

    async fn counts(&self) -> String {
        self.scalar(
            "SELECT (SELECT count(*) FROM payment_intents) || ' intents, ' || \
                    (SELECT count(*) FROM voucher_batches) || ' batches, ' || \
                    (SELECT count(*) FROM subscribers) || ' vouchers, ' || \
                    (SELECT count(*) FROM payments) || ' payments'",
        )
        .await
    }
}

fn limits() -> PortalLimits {
    PortalLimits::default()
}

#[sqlx::test]
async fn a_paid_purchase_hands_back_a_usable_code_once_radiusd_can_use_it(pool: PgPool) {
    let p = start(pool, limits()).await;
    // Safaricom also reports the push as a paybill payment (BillRefNumber JAS<id>).
    let r = p.api("POST", "/payments/c2b/register", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    p.fake.script(
        "254712345678",
        Outcome::success().with_delay(Duration::from_millis(600)),
    );
    let r = p.buy(1, "0712 345 678").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["phone"], "254712345678");
    assert_eq!(r.body["amount_kes"], HOUR_KES);
    assert_eq!(
        r.body["message"],
        "Check your phone and enter your M-Pesa PIN"
    );
    let token = r.body["purchase"].as_str().unwrap().to_owned();
    assert!(token.len() >= 43, "{token}");

    // Before the PIN: pending, no code, and the voucher is not usable.
    let first = p.poll(&token).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["status"], "pending", "{}", first.body);
    assert!(first.body.get("code").is_none());
    assert_eq!(first.body["package"]["name"], "1 hour");
    assert_eq!(first.body["package"]["description"], "1 hour, 5 Mbit/s");
    let (name, state) = p.voucher().await;
    assert_eq!(state, "unpaid");
    assert_eq!(
        p.scalar(&format!(
            "SELECT status FROM subscribers WHERE username = '{name}'"
        ))
        .await,
        "suspended"
    );

    let paid = p.poll_until(&token, "paid").await;
    let code = paid["code"].as_str().unwrap();
    assert_eq!(common::voucher_key().lookup_name(code).unwrap(), name);
    // Paid is said only once radiusd's snapshot has it usable.
    let reader = SnapshotReader::open(p.snapshot_dir.path()).unwrap();
    let snap = reader.current();
    let v = snap.subscriber_by_username(name.as_bytes()).unwrap();
    assert_eq!(v.status(), SubscriberStatus::Active);
    assert!(v.unused());
    // A usable, unused voucher: validity starts at its first login.
    let (_, state) = p.voucher().await;
    assert_eq!(state, "unused");
    assert_eq!(
        p.scalar(&format!(
            "SELECT (activated_at IS NULL AND expires_at = '9999-12-31T00:00:00Z')::text \
               FROM subscribers WHERE username = '{name}'"
        ))
        .await,
        "true"
    );
    let r = p.api("GET", &format!("/vouchers?code={code}"), None).await;
    assert_eq!(r.body[0]["username"], name.as_str());

    // The push's C2B copy (JAS<intent>) is the same payment: one credit.
    p.until(
        "SELECT count(*)::text FROM payment_callbacks WHERE kind = 'c2b_confirmation' AND processed_at IS NOT NULL",
        "1",
    )
    .await;
    let intent = p.scalar("SELECT id::text FROM payment_intents").await;
    assert_eq!(
        p.scalar(
            "SELECT string_agg(applied || ' ' || amount_kes || ' ' || intent_id, ',') FROM payments"
        )
        .await,
        format!("renewed {HOUR_KES} {intent}")
    );
    assert_eq!(
        p.scalar("SELECT account_reference FROM payment_intents")
            .await,
        format!("JAS{intent}")
    );
    let mut ours: Vec<String> = sqlx::query_scalar("SELECT receipt FROM payments")
        .fetch_all(&p.pool)
        .await
        .unwrap();
    ours.sort();
    let theirs: Vec<String> = p.fake.ledger().into_iter().map(|e| e.receipt).collect();
    assert_eq!(ours, theirs);
    // Sales count it once paid.
    let r = p.api("GET", "/vouchers/sales", None).await;
    assert_eq!(r.body[0]["portal_sold"], 1, "{}", r.body);
    // The poll says the same again (the page may poll once more).
    let again = p.poll(&token).await;
    assert_eq!(again.body["code"], code);
}

#[sqlx::test]
async fn a_cancelled_purchase_fails_with_its_reason_and_the_voucher_never_works(pool: PgPool) {
    let p = start(pool, limits()).await;
    p.fake.script("254712345678", Outcome::failing(1032));
    let r = p.buy(1, "0712345678").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let token = r.body["purchase"].as_str().unwrap().to_owned();
    let failed = p.poll_until(&token, "failed").await;
    assert_eq!(
        failed["message"],
        "You cancelled the M-Pesa request. Nothing was charged."
    );
    assert!(failed.get("code").is_none());
    let (name, state) = p.voucher().await;
    assert_eq!(state, "unpaid");
    assert_eq!(p.scalar("SELECT count(*)::text FROM payments").await, "0");
    let reader = SnapshotReader::open(p.snapshot_dir.path()).unwrap();
    assert!(
        reader
            .current()
            .subscriber_by_username(name.as_bytes())
            .is_none_or(|v| v.status() == SubscriberStatus::Suspended)
    );
    // The phone is free again.
    p.fake.script("254712345678", Outcome::failing(2001));
    let r = p.buy(1, "0712345678").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let failed = p
        .poll_until(r.body["purchase"].as_str().unwrap(), "failed")
        .await;
    assert!(failed["message"].as_str().unwrap().contains("PIN"));
}

#[sqlx::test]
async fn a_phone_with_a_pending_push_is_busy_and_nothing_is_written(pool: PgPool) {
    let p = start(pool, limits()).await;
    p.fake.script(
        "254712345678",
        Outcome::success().with_delay(Duration::from_secs(60)),
    );
    let r = p.buy(1, "0712345678").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let before = p.counts().await;
    let r = p.buy(2, "+254712345678").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "phone_busy");
    assert_eq!(p.counts().await, before);
    assert_eq!(before, "1 intents, 1 batches, 1 vouchers, 0 payments");
}

#[sqlx::test]
async fn purchases_are_limited_per_phone_and_per_address(pool: PgPool) {
    let p = start(
        pool,
        PortalLimits {
            purchases_per_ip_per_minute: 3,
            purchases_per_phone_per_hour: 2,
            polls_per_ip_per_minute: 1000,
        },
    )
    .await;
    // Per phone: two purchases an hour (each cancelled, so the phone is free again).
    p.fake.script("254711000002", Outcome::failing(1032));
    for _ in 0..2 {
        p.fake.script("254711000001", Outcome::failing(1032));
        let r = p
            .buy_from(
                "127.0.0.2",
                1,
                &json!({"package_id": 1, "phone": "0711000001"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        p.poll_until(r.body["purchase"].as_str().unwrap(), "failed")
            .await;
    }
    let before = p.counts().await;
    let r = p
        .buy_from(
            "127.0.0.3",
            1,
            &json!({"package_id": 1, "phone": "+254711000001"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "rate_limited");
    assert!(r.retry_after.is_some_and(|s| s >= 1), "{:?}", r.retry_after);
    assert_eq!(p.counts().await, before);
    // Another phone is not held up.
    let r = p
        .buy_from(
            "127.0.0.3",
            1,
            &json!({"package_id": 1, "phone": "0711000002"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);

    // Per address: 127.0.0.2 used two of its three; the third (a bad phone, refused) uses
    // the last, and the next is refused before anything is looked at.
    let r = p
        .buy_from("127.0.0.2", 1, &json!({"package_id": 1, "phone": "12"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = p
        .buy_from(
            "127.0.0.2",
            1,
            &json!({"package_id": 1, "phone": "0711000003"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(
        r.retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{:?}",
        r.retry_after
    );
    // Another address is not.
    p.fake.script("254711000003", Outcome::failing(1032));
    let r = p
        .buy_from(
            "127.0.0.4",
            1,
            &json!({"package_id": 1, "phone": "0711000003"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

#[sqlx::test]
async fn unknown_routers_packages_and_tokens_are_404(pool: PgPool) {
    let p = start(pool, limits()).await;
    let r = p.get("/portal/v1/routers/1/packages").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["isp_name"], "Mtaani Net");
    assert_eq!(r.body["currency"], "KES");
    let names: Vec<&str> = r.body["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["1 hour", "1 GB"]);
    assert_eq!(
        r.body["packages"][1]["description"],
        "1 GB, valid 7 days, 5 Mbit/s"
    );
    assert_eq!(r.body["packages"][1]["data_cap_bytes"], 1_073_741_824_i64);

    let r = p.get("/portal/v1/routers/99/packages").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "not_found");
    let r = p
        .buy_from(
            "127.0.0.1",
            99,
            &json!({"package_id": 1, "phone": "0712345678"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // A plan that exists but is not sold on this router, and one that does not exist.
    for package in [4, 3, 999] {
        let r = p.buy(package, "0712345678").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{package}: {}", r.body);
    }
    for token in [
        billing_daemon::payments::stk::new_poll_token(),
        "nope".to_owned(),
    ] {
        let r = p.poll(&token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    assert_eq!(
        p.counts().await,
        "0 intents, 0 batches, 0 vouchers, 0 payments"
    );
    // CORS: the page comes from the router, another origin.
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/portal/v1/routers/1/purchases", p.base),
        )
        .header("Origin", "http://10.5.50.1")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let resp = reqwest::Client::new()
        .get(format!("{}/portal/v1/routers/1/packages", p.base))
        .header("Origin", "http://10.5.50.1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    // Not the operators' API.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/openapi.json", p.base))
        .header("Origin", "http://10.5.50.1")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[sqlx::test]
async fn malformed_and_oversized_bodies_are_refused_and_write_nothing(pool: PgPool) {
    let p = start(pool, limits()).await;
    let url = format!("{}/portal/v1/routers/1/purchases", p.base);
    let http = reqwest::Client::new();
    let cases: [(&str, String, u16); 5] = [
        ("application/json", "{\"package_id\": 1, ".to_owned(), 400),
        (
            "application/json",
            "{\"phone\": \"0712345678\"}".to_owned(),
            422,
        ),
        (
            "application/json",
            "{\"package_id\": 1, \"phone\": \"0712345678\", \"extra\": 1}".to_owned(),
            422,
        ),
        (
            "text/plain",
            "{\"package_id\": 1, \"phone\": \"0712345678\"}".to_owned(),
            415,
        ),
        (
            "application/json",
            format!(
                "{{\"package_id\": 1, \"phone\": \"0712345678\", \"mac\": \"{}\"}}",
                "A".repeat(4096)
            ),
            413,
        ),
    ];
    for (content_type, body, want) in cases {
        let resp = http
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{content_type} {body:.80}");
    }
    let r = p.buy(1, "not a phone").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "validation_failed");
    assert_eq!(
        p.counts().await,
        "0 intents, 0 batches, 0 vouchers, 0 payments"
    );
}

#[sqlx::test]
async fn a_purchase_whose_callback_never_comes_is_paid_by_stk_query(pool: PgPool) {
    let p = start(pool, limits()).await;
    p.fake.script(
        "254712345678",
        Outcome::success()
            .with_delivery(fake_daraja::Delivery::Never)
            .with_c2b_copies(0),
    );
    let r = p.buy(2, "0712345678").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let paid = p
        .poll_until(r.body["purchase"].as_str().unwrap(), "paid")
        .await;
    assert!(paid["code"].as_str().is_some_and(|c| c.len() == 10));
    assert_eq!(paid["package"]["name"], "1 GB");
    assert_eq!(
        p.scalar("SELECT count(*)::text FROM payment_callbacks WHERE kind = 'stk'")
            .await,
        "0"
    );
    assert_eq!(
        p.scalar("SELECT string_agg(applied || ' ' || amount_kes, ',') FROM payments")
            .await,
        "renewed 100"
    );
    let (_, state) = p.voucher().await;
    assert_eq!(state, "unused");
}

#[sqlx::test]
async fn an_operator_can_sell_a_voucher_by_stk_for_a_customer_without_an_account(pool: PgPool) {
    let p = start(pool, limits()).await;
    p.fake.script("254712345678", Outcome::success());
    let r = p
        .api(
            "POST",
            "/payments/stk",
            Some(json!({"package_id": 4, "phone": "0712345678"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["purpose"], "voucher");
    assert_eq!(r.body["amount_kes"], 10);
    let token = r.body["purchase"].as_str().unwrap().to_owned();
    let paid = p.poll_until(&token, "paid").await;
    assert!(paid["code"].is_string());
    // The token is shown once: not in the intent's own view.
    let id = r.body["id"].as_i64().unwrap();
    let r = p.api("GET", &format!("/payment-intents/{id}"), None).await;
    assert_eq!(r.body["status"], "paid");
    assert!(r.body.get("purchase").is_none());
    // A PPPoE-only plan is no voucher; username and package_id do not mix.
    for body in [
        json!({"package_id": 3, "phone": "0722000111"}),
        json!({"package_id": 1, "username": "x", "phone": "0722000111"}),
        json!({"phone": "0722000111"}),
    ] {
        let r = p.api("POST", "/payments/stk", Some(body.clone())).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
    }
}

#[sqlx::test]
async fn the_packages_a_router_sells_are_set_in_order(pool: PgPool) {
    let p = start(pool, limits()).await;
    let r = p
        .api(
            "PUT",
            "/routers/1/packages",
            Some(json!({"package_ids": [4, 2, 1]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["package_ids"], json!([4, 2, 1]));
    let r = p.api("GET", "/routers/1/packages", None).await;
    assert_eq!(r.body["package_ids"], json!([4, 2, 1]));
    assert_eq!(r.body["packages"][0]["description"], "1 hour, 1 Mbit/s");
    let page = p.get("/portal/v1/routers/1/packages").await;
    let ids: Vec<i64> = page.body["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 2, 1]);
    for (body, why) in [
        (json!({"package_ids": [1, 3]}), "PPPoE only"),
        (json!({"package_ids": [1, 999]}), "does not refer"),
        (json!({"package_ids": [1, 2, 1]}), "twice"),
    ] {
        let r = p.api("PUT", "/routers/1/packages", Some(body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(why),
            "{}",
            r.body
        );
    }
    // Refused changes changed nothing.
    let r = p.api("GET", "/routers/1/packages", None).await;
    assert_eq!(r.body["package_ids"], json!([4, 2, 1]));
    let r = p
        .api(
            "PUT",
            "/routers/7/packages",
            Some(json!({"package_ids": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = p
        .api(
            "PUT",
            "/routers/1/packages",
            Some(json!({"package_ids": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = p.get("/portal/v1/routers/1/packages").await;
    assert_eq!(page.body["packages"], json!([]));
    // The operators' endpoint needs a token.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/routers/1/packages", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
