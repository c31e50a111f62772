//! M-Pesa payments against Postgres (`#[sqlx::test]`) and the fake Daraja (crates/fake-daraja,
//! in-process, faithful to the reference): the daemon's HTTP server runs on a loopback port so
//! the fake can deliver callbacks to it, with the reconciler running.
//!
//! The money rules are what is asserted: every receipt is credited once however often and
//! by whichever channel it arrives; a push whose callback never comes is found by STK Query;
//! forged or mismatched callbacks buy nothing; whatever does not buy a plan waits in the
//! wallet.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::pay::{ALICE_ACTIVE, C2B_TOKEN, PRICE, Pay};
use fake_daraja::{C2bOutcome, Delivery, Outcome};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test]
async fn an_stk_payment_renews_once_though_it_also_arrives_as_c2b(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.register_c2b().await;
    let intent = pay.push("alice", "0712 345 678").await;
    assert_eq!(intent["status"], "pending");
    assert_eq!(intent["phone"], "254712345678");
    assert_eq!(intent["amount_kes"], PRICE);
    assert_eq!(intent["account_reference"], "alice");
    pay.until(ALICE_ACTIVE, "true").await;
    // The fake also sends the C2B confirmation of the same payment: wait for it.
    pay.until(
        "SELECT count(*)::text FROM payment_callbacks WHERE kind = 'c2b_confirmation' AND processed_at IS NOT NULL",
        "1",
    )
    .await;
    pay.until("SELECT count(*)::text FROM payments", "1").await;
    let (ours, theirs) = pay.receipts().await;
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 1);
    let id = intent["id"].as_i64().unwrap();
    let (_, detail) = pay
        .api("GET", &format!("/payment-intents/{id}"), None)
        .await;
    assert_eq!(detail["status"], "paid");
    assert_eq!(detail["result_code"], "0");
    assert!(
        detail["callbacks"][0]["body"]
            .as_str()
            .unwrap()
            .contains("stkCallback")
    );
    let (_, list) = pay.api("GET", "/payments?username=alice", None).await;
    assert_eq!(list[0]["applied"], "renewed");
    assert_eq!(list[0]["channel"], "stk");
    let (_, daily) = pay.api("GET", "/payments/daily", None).await;
    assert_eq!(daily[0]["total_kes"], PRICE);
}

#[sqlx::test]
async fn duplicate_and_concurrent_callbacks_credit_once(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.fake.script(
        "254712345678",
        Outcome::success().with_delivery(Delivery::TwiceConcurrently),
    );
    pay.fake.script(
        "254722000111",
        Outcome::success().with_delivery(Delivery::Twice),
    );
    pay.push("alice", "0712345678").await;
    pay.push("bob", "0722000111").await;
    pay.until(
        "SELECT count(*)::text FROM payment_callbacks WHERE kind = 'stk' AND processed_at IS NOT NULL",
        "4",
    )
    .await;
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "2");
    assert_eq!(
        pay.scalar("SELECT count(*)::text FROM payments WHERE applied = 'renewed'")
            .await,
        "2"
    );
    // Each subscriber renewed once: one period, not two.
    assert_eq!(
        pay.scalar(
            "SELECT count(*)::text FROM subscribers \
              WHERE expires_at BETWEEN now() + interval '29 days' AND now() + interval '31 days'"
        )
        .await,
        "2"
    );
}

#[sqlx::test]
async fn a_cancelled_push_fails_and_one_phone_has_one_push_at_a_time(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.fake.script(
        "254712345678",
        Outcome::failing(1032).with_delay(Duration::from_millis(800)),
    );
    let first = pay.push("alice", "0712345678").await;
    let (status, body) = pay
        .api(
            "POST",
            "/payments/stk",
            Some(json!({"username": "bob", "phone": "+254712345678"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let id = first["id"].as_i64().unwrap();
    pay.until_intent(id, "failed").await;
    assert_eq!(
        pay.scalar(&format!(
            "SELECT result_code FROM payment_intents WHERE id = {id}"
        ))
        .await,
        "1032"
    );
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "0");
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "false");
    // The phone is free again.
    pay.push("bob", "0712345678").await;
}

#[sqlx::test]
async fn a_payment_whose_callback_never_comes_is_found_by_query(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.register_c2b().await;
    pay.fake.script(
        "254712345678",
        Outcome::success()
            .with_delay(Duration::from_millis(700))
            .with_delivery(Delivery::Never),
    );
    let intent = pay.push("alice", "0712345678").await;
    let id = intent["id"].as_i64().unwrap();
    pay.until_intent(id, "paid").await;
    pay.until(ALICE_ACTIVE, "true").await;
    // "Being processed" was answered at least once before the result.
    assert_ne!(
        pay.scalar(&format!(
            "SELECT query_attempts::text FROM payment_intents WHERE id = {id}"
        ))
        .await,
        "0"
    );
    // The C2B copy of the payment brings the receipt; still one credit.
    pay.until(
        "SELECT count(*)::text FROM payments WHERE receipt IS NOT NULL",
        "1",
    )
    .await;
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "1");
    let (ours, theirs) = pay.receipts().await;
    assert_eq!(ours, theirs);
}

/// The race the property test found: a push known paid only from STK Query (no receipt) and
/// its C2B copy (no intent) processed at the same moment. Each looks for the other before
/// crediting; a test transaction holds alice's row until both are waiting on it, so each
/// must see what the other committed, and the payment is credited once.
#[sqlx::test]
async fn a_query_credit_and_its_c2b_copy_at_the_same_moment_credit_once(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.register_c2b().await;
    pay.fake.script(
        "254712345678",
        Outcome::success()
            .with_delay(Duration::from_millis(500))
            .with_delivery(Delivery::Never),
    );
    let mut holder = pay.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM subscribers WHERE id = 1 FOR NO KEY UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let intent = pay.push("alice", "0712345678").await;
    // The reconciler with the query's answer and the daemon with the C2B copy, both waiting
    // for alice's row.
    pay.until(
        "SELECT count(*)::text FROM pg_stat_activity \
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
        "2",
    )
    .await;
    holder.commit().await.unwrap();
    let id = intent["id"].as_i64().unwrap();
    pay.until_intent(id, "paid").await;
    pay.until(
        "SELECT count(*)::text FROM payment_callbacks \
          WHERE kind = 'c2b_confirmation' AND processed_at IS NOT NULL",
        "1",
    )
    .await;
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "1");
    assert_eq!(
        pay.scalar("SELECT count(*)::text FROM payments WHERE receipt IS NOT NULL AND intent_id IS NOT NULL")
            .await,
        "1"
    );
    let (ours, theirs) = pay.receipts().await;
    assert_eq!(ours, theirs);
    // One period bought, not two.
    assert_eq!(
        pay.scalar(
            "SELECT (expires_at < now() + interval '31 days')::text FROM subscribers WHERE id = 1"
        )
        .await,
        "true"
    );
}

/// A burst of callbacks at once, as the batch worker takes them together: plain successes
/// (credited in one transaction) mixed with what it must leave to the one-by-one path —
/// the same callback delivered twice at once, two pushes of one subscriber, an amount
/// that is not the price, another push's CheckoutRequestID, a failure, a URL no intent
/// has. Every one ends as it would alone.
#[sqlx::test]
async fn a_burst_of_callbacks_credits_each_payment_once(pool: PgPool) {
    let pay = Pay::start(pool).await;
    const N: i64 = 40;
    // Subscribers 101..=140, expired, each with a pending push (URL token: i in hex, checkout
    // c<i>); subscriber 101 has a second push (token f2, checkout c2), from another phone.
    sqlx::query(
        "INSERT INTO subscribers (id, username, password, plan_id, expires_at) \
         SELECT i, 'burst' || i, 'x', 1, now() - interval '1 day' FROM generate_series(101, 100 + $1) i",
    )
    .bind(N)
    .execute(&pay.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO payment_intents (subscriber_id, plan_id, phone, amount_kes, account_reference, \
                                      callback_token, merchant_request_id, checkout_request_id) \
         SELECT i, 1, '2547' || lpad(i::text, 8, '0'), 1000, 'burst' || i, lpad(to_hex(i), 64, '0'), \
                'm' || i, 'c' || i FROM generate_series(101, 100 + $1) i \
         UNION ALL \
         SELECT 101, 1, '254799999999', 1000, 'burst101', lpad('f2', 64, '0'), 'm2', 'c2'",
    )
    .bind(N)
    .execute(&pay.pool)
    .await
    .unwrap();
    let token = |i: i64| format!("{i:064x}");
    let mut posts: Vec<(String, String, u16)> = Vec::new();
    for i in 101..=100 + N {
        let body = match i {
            // Paid 500 for a 1000 plan: into the wallet, no renewal.
            102 => stk_success(&format!("c{i}"), "500", &format!("BURST{i}")),
            // Another push's CheckoutRequestID at this URL: refused.
            103 => stk_success("c104", "1000", &format!("BURST{i}")),
            // Cancelled.
            105 => r#"{"Body":{"stkCallback":{"MerchantRequestID":"m105","CheckoutRequestID":"c105","ResultCode":1032,"ResultDesc":"Request cancelled by user"}}}"#.to_owned(),
            _ => stk_success(&format!("c{i}"), "1000", &format!("BURST{i}")),
        };
        posts.push((token(i), body.clone(), 200));
        // Delivered twice at once.
        if i % 10 == 0 {
            posts.push((token(i), body, 200));
        }
    }
    posts.push((token(0xf2), stk_success("c2", "1000", "BURSTTWO"), 200));
    posts.push(("ab".repeat(32), stk_success("c9", "1000", "BURSTNONE"), 404));
    let answers = futures_util::future::join_all(posts.iter().map(|(t, body, _)| {
        let path = format!("/pay/cb/stk/{t}");
        let pay = &pay;
        async move { pay.post_raw(&path, body.clone()).await }
    }))
    .await;
    for ((t, _, want), got) in posts.iter().zip(answers) {
        assert_eq!(got, *want, "callback at {t}");
    }
    assert_eq!(
        pay.scalar("SELECT count(*)::text FROM payment_callbacks WHERE processed_at IS NULL")
            .await,
        "0"
    );
    // One payment per paid push: 40 pushes + the second one of 101, less the cancelled
    // one and the refused one.
    assert_eq!(
        pay.scalar("SELECT count(*)::text FROM payments").await,
        (N + 1 - 2).to_string()
    );
    let (ours, _) = pay.receipts().await;
    let mut unique = ours.clone();
    unique.dedup();
    assert_eq!(ours, unique, "a receipt credited twice");
    // Renewed once each (30 days from now), 101 twice (60), 102 not (wallet), 103 and 105 not.
    let periods = |id: i64| {
        let sql = format!(
            "SELECT CASE WHEN expires_at < now() THEN '0' \
                         ELSE round(extract(epoch FROM expires_at - now()) / 2592000)::text END \
               FROM subscribers WHERE id = {id}"
        );
        let pay = &pay;
        async move { pay.scalar(&sql).await }
    };
    assert_eq!(periods(101).await, "2");
    for id in [102, 103, 105] {
        assert_eq!(periods(id).await, "0", "subscriber {id}");
    }
    for id in (104..=100 + N).filter(|i| *i != 105) {
        assert_eq!(periods(id).await, "1", "subscriber {id}");
    }
    assert_eq!(
        pay.scalar("SELECT wallet_balance_kes::text FROM subscribers WHERE id = 102")
            .await,
        "500"
    );
    assert_eq!(
        pay.scalar(
            "SELECT string_agg(status, ',' ORDER BY id) FROM payment_intents \
              WHERE subscriber_id IN (102, 103, 105)"
        )
        .await,
        "paid,pending,failed"
    );
    // The duplicates say what they duplicate.
    assert_eq!(
        pay.scalar(
            "SELECT count(*)::text FROM payment_callbacks WHERE outcome LIKE 'already credited%'"
        )
        .await,
        (N / 10).to_string()
    );
}

/// A success callback as Daraja POSTs it (items by name, Balance without a value), for alice's
/// phone.
fn stk_success(checkout: &str, amount: &str, receipt: &str) -> String {
    format!(
        r#"{{"Body":{{"stkCallback":{{"MerchantRequestID":"m-1","CheckoutRequestID":"{checkout}",
        "ResultCode":0,"ResultDesc":"The service request is processed successfully.",
        "CallbackMetadata":{{"Item":[{{"Name":"Amount","Value":{amount}}},
        {{"Name":"MpesaReceiptNumber","Value":"{receipt}"}},{{"Name":"Balance"}},
        {{"Name":"TransactionDate","Value":20261124102115}},{{"Name":"PhoneNumber","Value":254712345678}}]}}}}}}}}"#
    )
}

#[sqlx::test]
async fn forged_and_mismatched_callbacks_buy_nothing(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.fake.script(
        "254712345678",
        Outcome::success().with_delay(Duration::from_secs(30)),
    );
    let intent = pay.push("alice", "0712345678").await;
    let id = intent["id"].as_i64().unwrap();
    let token = pay
        .scalar(&format!(
            "SELECT callback_token FROM payment_intents WHERE id = {id}"
        ))
        .await;
    let checkout = intent["checkout_request_id"].as_str().unwrap().to_owned();
    let post = |path: String, body: String| {
        let pay = &pay;
        async move { pay.post_raw(&path, body).await }
    };
    // A URL no intent has.
    let guessed = "ab".repeat(32);
    assert_eq!(
        post(
            format!("/pay/cb/stk/{guessed}"),
            stk_success(&checkout, "1000", "FORGED0001")
        )
        .await,
        404
    );
    // The right URL with another push's CheckoutRequestID.
    assert_eq!(
        post(
            format!("/pay/cb/stk/{token}"),
            stk_success("ws_CO_other", "1000", "FORGED0002")
        )
        .await,
        200
    );
    // Malformed bodies are kept and answered, and change nothing.
    assert_eq!(
        post(format!("/pay/cb/stk/{token}"), "{not json".to_owned()).await,
        200
    );
    // An oversized body (Daraja's are a few hundred bytes) is refused unread and not stored.
    let stored = pay
        .scalar("SELECT count(*)::text FROM payment_callbacks")
        .await;
    let padding = "x".repeat(70 * 1024);
    let oversized = stk_success(&checkout, "1000", "FORGED0003").replacen(
        "\"Body\"",
        &format!("\"Padding\":\"{padding}\",\"Body\""),
        1,
    );
    assert_eq!(post(format!("/pay/cb/stk/{token}"), oversized).await, 413);
    assert_eq!(
        pay.scalar("SELECT count(*)::text FROM payment_callbacks")
            .await,
        stored
    );
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "0");
    let outcomes = pay
        .scalar("SELECT string_agg(outcome, ' | ' ORDER BY id) FROM payment_callbacks")
        .await;
    assert!(
        outcomes.contains("refused: CheckoutRequestID"),
        "{outcomes}"
    );
    assert!(outcomes.contains("unreadable"), "{outcomes}");
    // The right push paying less than the price: the money is kept in the wallet, the plan
    // is not bought.
    assert_eq!(
        post(
            format!("/pay/cb/stk/{token}"),
            stk_success(&checkout, "1.00", "LOWPAY0001")
        )
        .await,
        200
    );
    assert_eq!(
        pay.scalar("SELECT applied FROM payments WHERE receipt = 'LOWPAY0001'")
            .await,
        "wallet"
    );
    assert_eq!(
        pay.scalar("SELECT wallet_balance_kes::text FROM subscribers WHERE id = 1")
            .await,
        "1"
    );
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "false");
}

#[sqlx::test]
async fn a_callback_stored_by_a_daemon_that_died_before_processing_it_is_credited(pool: PgPool) {
    let pay = Pay::start(pool).await;
    // Paid, but Safaricom's callback is the only word: the fake's query says "being
    // processed" for a minute and it sends no callback of its own.
    pay.fake.script(
        "254712345678",
        Outcome::success()
            .with_delay(Duration::from_secs(60))
            .with_delivery(Delivery::Never),
    );
    let intent = pay.push("alice", "0712345678").await;
    let id = intent["id"].as_i64().unwrap();
    let checkout = intent["checkout_request_id"].as_str().unwrap();
    // What a daemon killed between storing the body and processing it leaves behind.
    let body = stk_success(checkout, "1000.00", "TKD1CRASH7");
    sqlx::query(
        "INSERT INTO payment_callbacks (kind, source_ip, url_token, body, received_at) \
         SELECT 'stk', '127.0.0.1', callback_token, $2, now() - interval '10 seconds' \
           FROM payment_intents WHERE id = $1",
    )
    .bind(id)
    .bind(body.as_bytes())
    .execute(&pay.pool)
    .await
    .unwrap();
    // The running daemon's reconciler finds it and credits it, once.
    pay.until(
        &format!("SELECT status FROM payment_intents WHERE id = {id}"),
        "paid",
    )
    .await;
    pay.until(
        "SELECT string_agg(receipt || ' ' || applied, ',') FROM payments",
        "TKD1CRASH7 renewed",
    )
    .await;
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "true");
    assert_eq!(
        pay.scalar("SELECT count(*)::text FROM payment_callbacks WHERE processed_at IS NULL")
            .await,
        "0"
    );
}

#[sqlx::test]
async fn c2b_payments_by_account_number(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.register_c2b().await;
    // Unknown account: refused at validation, the customer keeps the money.
    let refused = pay.fake.pay_c2b("nobody", 1000, "254700000001").await;
    assert!(
        matches!(refused, C2bOutcome::Rejected { .. }),
        "{refused:?}"
    );
    // The account typed with odd case and spaces.
    let paid = pay.fake.pay_c2b(" ALICE ", 1000, "254700000002").await;
    assert!(matches!(paid, C2bOutcome::Completed { .. }), "{paid:?}");
    pay.until(ALICE_ACTIVE, "true").await;
    // Less than the price waits in the wallet; the rest renews from it.
    pay.fake.pay_c2b("bob", 400, "254700000003").await;
    pay.until(
        "SELECT wallet_balance_kes::text FROM subscribers WHERE id = 2",
        "400",
    )
    .await;
    pay.fake.pay_c2b("bob", 700, "254700000003").await;
    pay.until(
        "SELECT wallet_balance_kes::text FROM subscribers WHERE id = 2",
        "100",
    )
    .await;
    assert_eq!(
        pay.scalar("SELECT (expires_at > now())::text FROM subscribers WHERE id = 2")
            .await,
        "true"
    );
    // A push's reference (`JAS<id>` when the username is too long for Daraja), copied from
    // the prompt and typed at the paybill: accepted at validation, credited to the push's
    // subscriber.
    sqlx::query(
        "INSERT INTO payment_intents (subscriber_id, plan_id, phone, amount_kes, \
                                      account_reference, callback_token, status) \
         SELECT id, plan_id, '254700000009', 1000, 'JAS4242', md5('a') || md5('b'), 'failed' \
           FROM subscribers WHERE id = 2",
    )
    .execute(&pay.pool)
    .await
    .unwrap();
    let paid = pay.fake.pay_c2b("jas4242", 1000, "254700000004").await;
    assert!(matches!(paid, C2bOutcome::Completed { .. }), "{paid:?}");
    pay.until(
        "SELECT subscriber_id || ' ' || applied FROM payments WHERE bill_ref = 'jas4242'",
        "2 renewed",
    )
    .await;
    let (ours, theirs) = pay.receipts().await;
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 4);
    // The MSISDN is stored as Safaricom sent it (a hash), never used as identity.
    let msisdn = pay
        .scalar("SELECT msisdn FROM payments WHERE channel = 'c2b' LIMIT 1")
        .await;
    assert_eq!(msisdn.len(), 64, "{msisdn}");
}

#[sqlx::test]
async fn bad_requests_and_cash(pool: PgPool) {
    let pay = Pay::start(pool).await;
    for (body, status) in [
        (
            json!({"username": "alice", "phone": "12345"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "nobody", "phone": "0712345678"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"username": "alice", "phone": "0712345678", "plan_id": 99}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "alice"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, reply) = pay.api("POST", "/payments/stk", Some(body.clone())).await;
        assert_eq!(got, status, "{body} -> {reply}");
    }
    let (status, cash) = pay
        .api(
            "POST",
            "/payments",
            Some(json!({"username": "alice", "amount_kes": 1000, "note": "paid at the shop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cash}");
    assert_eq!(cash["applied"], "renewed");
    assert_eq!(cash["channel"], "cash");
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "true");
    let (status, _) = pay
        .api(
            "POST",
            "/payments",
            Some(json!({"username": "alice", "amount_kes": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test]
async fn without_mpesa_the_endpoints_say_so(pool: PgPool) {
    let app = common::TestApp::new(pool).await;
    app.post(
        "/api/v1/payments/stk",
        &json!({"username": "alice", "phone": "0712345678"}),
    )
    .await
    .assert_error(StatusCode::SERVICE_UNAVAILABLE, "not_configured");
    let r = app
        .send(
            "POST",
            &format!("/pay/cb/c2b/{C2B_TOKEN}/confirmation"),
            Some("{}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
