//! End to end: a customer pays with M-Pesa (through the fake Daraja, crates/fake-daraja) and
//! real radiusd lets them in on the next Access-Request, without anyone touching anything. A
//! customer still online on an expired subscription is disconnected on payment so the
//! router asks again and applies the renewed plan.

mod support;

use std::time::Duration;

use fake_daraja::{C2bOutcome, DeliveryKind, FakeConfig, FakeDaraja, Outcome};
use radius_proto::Code;
use serde_json::json;
use support::mikrotik::{Mikrotik, Verdict};
use support::{
    Stack, StackOptions, pap, poll, rfc3339_in, spawn_stack_with, spawn_stack_with_mpesa,
};

/// An expired subscriber on a 500 KES plan, refused by radiusd until they pay.
async fn expired_customer(stack: &Stack, username: &str) {
    let plan = stack
        .create_plan(json!({"price_kes": 500, "simultaneous_use": null}))
        .await;
    stack
        .create_subscriber(
            username,
            "pw",
            plan,
            json!({"expires_at": rfc3339_in(-3600)}),
        )
        .await;
    stack
        .radius
        .poll_until(
            || pap(username, "pw"),
            "refused while expired",
            |r| r.is_reject(),
        )
        .await;
}

#[tokio::test]
async fn an_stk_payment_lets_the_customer_in_at_the_next_request() {
    let (stack, fake) = spawn_stack_with_mpesa().await;
    expired_customer(&stack, "wanjiku").await;
    let intent = stack
        .api
        .create(
            "/payments/stk",
            json!({"username": "wanjiku", "phone": "0712345678"}),
        )
        .await;
    assert_eq!(intent["status"], "pending");
    let accept = stack
        .radius
        .poll_until(
            || pap("wanjiku", "pw"),
            "accepted once paid",
            |r| r.is_accept(),
        )
        .await;
    assert!(accept.attr("Session-Timeout").is_some(), "{accept}");
    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 1);
    let payments = stack.api.get("/payments?username=wanjiku").await;
    assert_eq!(payments[0]["receipt"], ledger[0].receipt.as_str());
    assert_eq!(payments[0]["applied"], "renewed");
}

#[tokio::test]
async fn a_paybill_payment_lets_the_customer_in() {
    let (stack, fake) = spawn_stack_with_mpesa().await;
    expired_customer(&stack, "otieno").await;
    stack.api.post("/payments/c2b/register").await;
    let paid = fake.pay_c2b("Otieno ", 500, "254722000001").await;
    assert!(matches!(paid, C2bOutcome::Completed { .. }), "{paid:?}");
    stack
        .radius
        .poll_until(
            || pap("otieno", "pw"),
            "accepted once paid",
            |r| r.is_accept(),
        )
        .await;
    let refused = fake.pay_c2b("nobody-here", 500, "254722000002").await;
    assert!(
        matches!(refused, C2bOutcome::Rejected { .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn paying_reconnects_a_customer_the_router_kept_online_after_expiry() {
    let (stack, fake) = spawn_stack_with_mpesa().await;
    let router = Mikrotik::attach(&stack, 41).await;
    let plan = stack
        .create_plan(json!({"price_kes": 500, "simultaneous_use": null}))
        .await;
    stack
        .create_subscriber("kamau", "pw", plan, json!({"expires_at": rfc3339_in(3)}))
        .await;
    let session = loop {
        let reply = router.login("kamau", "pw").await;
        if reply.code == Code::ACCESS_ACCEPT {
            break router.connect("kamau", "pw").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stack
        .wait_for_sql(
            "SELECT count(*) FROM sessions WHERE username = 'kamau' AND stopped_at IS NULL",
            "1",
        )
        .await;
    // The router is unreachable when the subscription runs out, so the session stays up.
    router.set_silent(true);
    poll(
        support::DEADLINE * 2,
        "the expiry Disconnect given up on",
        || {
            let s = stack.sql(
                "SELECT status FROM enforcement_actions WHERE username = 'kamau' AND reason = 'expired'",
            );
            (s == "timeout").then_some(())
        },
    )
    .await;
    router.set_silent(false);
    fake.script("254711000222", Outcome::success());
    stack
        .api
        .create(
            "/payments/stk",
            json!({"username": "kamau", "phone": "0711000222"}),
        )
        .await;
    let got = router
        .wait_for("the Disconnect after payment", |r| {
            r.disconnects(&session) && r.verdict == Verdict::Ack
        })
        .await;
    assert!(got.is_disconnect());
    router.wait_session_gone(&session.acct_session_id).await;
    stack
        .wait_for_sql(
            "SELECT status FROM enforcement_actions WHERE username = 'kamau' AND reason = 'reactivated'",
            "acked",
        )
        .await;
    // The router asks again and the renewed customer is in.
    let again = router.login("kamau", "pw").await;
    assert_eq!(again.code, Code::ACCESS_ACCEPT);
}

#[tokio::test]
async fn the_callback_allow_list_refuses_other_sources_and_believes_only_the_proxy() {
    let mut config = FakeConfig::sandbox();
    // No validation call, so the confirmation is the only thing the daemon hears.
    config.c2b_external_validation = false;
    config.retry.max_attempts = 1;
    let fake = FakeDaraja::start(config).await;
    // Safaricom's range, which loopback is not in; the proxy in front of the daemon is
    // 127.0.0.1.
    let stack = spawn_stack_with(StackOptions {
        mpesa: Some(fake.base_url()),
        daemon_env: vec![
            ("JASIYO_MPESA_CALLBACK_ALLOW", "196.201.214.0/24".to_owned()),
            ("JASIYO_TRUSTED_PROXY", "127.0.0.1".to_owned()),
        ],
        ..StackOptions::default()
    })
    .await;
    expired_customer(&stack, "achieng").await;
    stack.api.post("/payments/c2b/register").await;

    // A genuine confirmation straight from 127.0.0.1 without a forwarded address: the proxy
    // itself is not an allowed source.
    let paid = fake.pay_c2b("achieng", 500, "254722000003").await;
    let C2bOutcome::Completed { trans_id } = paid else {
        panic!("{paid:?}");
    };
    let sent: Vec<_> = fake
        .deliveries()
        .into_iter()
        .filter(|d| d.kind == DeliveryKind::C2bConfirmation)
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(403), "{:?}", sent[0]);
    assert_eq!(stack.sql("SELECT count(*) FROM payments"), "0");
    assert_eq!(
        stack.sql("SELECT outcome FROM payment_callbacks WHERE kind = 'c2b_confirmation'"),
        "refused: source address not allowed"
    );
    assert!(
        stack
            .daemon_log()
            .contains("C2B confirmation refused: source address not allowed"),
        "not logged"
    );
    let post = |client: reqwest::Client, forwarded: &'static str| {
        let (url, body) = (sent[0].url.clone(), sent[0].body.clone());
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .header("x-forwarded-for", forwarded)
                .body(body)
                .send()
                .await
                .expect("POST the confirmation")
                .status()
                .as_u16()
        }
    };
    // An allowed address in X-Forwarded-For from a peer that is not the proxy: ignored.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    assert_eq!(post(elsewhere, "196.201.214.200").await, 403);
    assert_eq!(stack.sql("SELECT count(*) FROM payments"), "0");
    // Through the proxy, which appends the address Safaricom connected from: believed, and
    // kept as the source.
    assert_eq!(
        post(reqwest::Client::new(), "203.0.113.9, 196.201.214.200").await,
        200
    );
    stack
        .radius
        .poll_until(
            || pap("achieng", "pw"),
            "accepted once the confirmation is believed",
            |r| r.is_accept(),
        )
        .await;
    assert_eq!(
        stack.sql("SELECT receipt FROM payments WHERE channel = 'c2b'"),
        trans_id
    );
    assert_eq!(
        stack.sql(
            "SELECT string_agg(host(source_ip), ',' ORDER BY id) FROM payment_callbacks \
              WHERE kind = 'c2b_confirmation'"
        ),
        "127.0.0.1,127.0.0.2,196.201.214.200"
    );
}
