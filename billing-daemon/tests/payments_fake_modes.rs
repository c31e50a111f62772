//! The fake Daraja's harder delivery modes against the daemon (Postgres + the fake, as in
//! tests/payments.rs): a callback held back until STK Query has told the result (Late), a
//! callback posted to a forged path (WrongPath), a failure callback after the success
//! (ThenConflicting), and the sandbox bug where STK Query answers 1032 for a paid push.
//! Every receipt is credited once, a query never undoes a payment, and a push that was paid
//! does not stay failed once the money is reported.

mod common;

use common::pay::{ALICE_ACTIVE, C2B_TOKEN, Pay};
use fake_daraja::{Delivery, DeliveryKind, Outcome, ResultCode};
use serde_json::json;
use sqlx::PgPool;

const PHONE: &str = "254712345678";

/// The push's intent id, once it is `paid`.
async fn paid_push(pay: &Pay, outcome: Outcome) -> i64 {
    pay.fake.script(PHONE, outcome);
    let intent = pay.push("alice", "0712345678").await;
    let id = intent["id"].as_i64().unwrap();
    pay.until_intent(id, "paid").await;
    id
}

/// One payment for the intent, with the fake's receipt, and alice renewed once.
async fn credited_once(pay: &Pay, intent: i64) {
    let receipt = pay.fake.ledger()[0].receipt.clone();
    pay.until(
        &format!("SELECT receipt FROM payments WHERE intent_id = {intent}"),
        &receipt,
    )
    .await;
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "1");
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "true");
    assert_eq!(
        pay.scalar(
            "SELECT (expires_at < now() + interval '31 days')::text FROM subscribers WHERE id = 1"
        )
        .await,
        "true",
        "one period, not two"
    );
    let (ours, theirs) = pay.receipts().await;
    assert_eq!(ours, theirs);
}

fn stk_statuses(pay: &Pay) -> Vec<Option<u16>> {
    pay.fake
        .deliveries()
        .iter()
        .filter(|d| d.kind == DeliveryKind::StkCallback)
        .map(|d| d.status)
        .collect()
}

#[sqlx::test]
async fn a_late_callback_after_the_query_brings_the_receipt_and_credits_nothing_more(pool: PgPool) {
    let pay = Pay::start(pool).await;
    // No C2B URLs registered: the receipt can only come from the late callback.
    let intent = paid_push(&pay, Outcome::success().with_delivery(Delivery::Late)).await;
    credited_once(&pay, intent).await;
    assert_eq!(stk_statuses(&pay), [Some(200)]);
    let outcome = pay
        .scalar("SELECT outcome FROM payment_callbacks WHERE kind = 'stk'")
        .await;
    // The fake releases the callback as it answers the query, so either may get to the
    // intent first: the callback credits it, or fills in the receipt of the query's credit.
    assert!(
        outcome == "credited (renewed)" || outcome.starts_with("already credited as payment"),
        "{outcome}"
    );
}

#[sqlx::test]
async fn a_callback_to_a_forged_path_is_refused_and_the_query_credits_the_push(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.register_c2b().await;
    let intent = paid_push(&pay, Outcome::success().with_delivery(Delivery::WrongPath)).await;
    // The C2B copy of the payment brings the receipt.
    credited_once(&pay, intent).await;
    let statuses = stk_statuses(&pay);
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == Some(404)),
        "{statuses:?}"
    );
    // Whatever came to the forged path bought nothing.
    assert_eq!(
        pay.scalar(
            "SELECT count(*)::text FROM payment_callbacks WHERE kind = 'stk' AND payment_id IS NOT NULL"
        )
        .await,
        "0"
    );
}

#[sqlx::test]
async fn a_failure_callback_after_the_success_changes_nothing(pool: PgPool) {
    let pay = Pay::start(pool).await;
    let intent = paid_push(
        &pay,
        Outcome::success().with_delivery(Delivery::ThenConflicting(ResultCode::Code(1032))),
    )
    .await;
    pay.until(
        "SELECT count(*)::text FROM payment_callbacks WHERE kind = 'stk' AND processed_at IS NOT NULL",
        "2",
    )
    .await;
    credited_once(&pay, intent).await;
    assert_eq!(
        pay.scalar(&format!(
            "SELECT status || ' ' || result_code FROM payment_intents WHERE id = {intent}"
        ))
        .await,
        "paid 0"
    );
}

#[sqlx::test]
async fn the_sandbox_query_bug_does_not_fail_a_paid_push_for_good(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.fake.set_sandbox_query_bug(true);
    // The query answers 1032 for the paid push; the success callback comes after it.
    let intent = paid_push(&pay, Outcome::success().with_delivery(Delivery::Late)).await;
    credited_once(&pay, intent).await;
    assert!(
        pay.fake
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/stkpushquery/v1/query") && r.status == 200),
        "the query answered (1032) before the callback"
    );
}

#[sqlx::test]
async fn the_sandbox_query_bug_then_the_c2b_copy_pays_the_push(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.fake.set_sandbox_query_bug(true);
    // The callback never comes and the query says 1032: only the C2B copy tells the truth.
    pay.register_c2b().await;
    let intent = paid_push(&pay, Outcome::success().with_delivery(Delivery::Never)).await;
    credited_once(&pay, intent).await;
}

#[sqlx::test]
async fn a_push_the_query_failed_is_paid_when_its_c2b_copy_comes(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.fake.set_sandbox_query_bug(true);
    // No C2B URLs registered and no callback: the query's 1032 is all the daemon hears.
    pay.fake
        .script(PHONE, Outcome::success().with_delivery(Delivery::Never));
    let intent = pay.push("alice", "0712345678").await;
    let id = intent["id"].as_i64().unwrap();
    pay.until(
        &format!("SELECT status || ' ' || result_code FROM payment_intents WHERE id = {id}"),
        "failed 1032",
    )
    .await;
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "false");
    // Then the C2B copy of the payment arrives, as Safaricom sends it.
    let paid = pay.fake.ledger()[0].clone();
    let copy = json!({
        "TransactionType": "Pay Bill", "TransID": paid.receipt, "TransTime": "20261124102115",
        "TransAmount": format!("{}.00", paid.amount), "BusinessShortCode": "174379",
        "BillRefNumber": paid.account_reference, "InvoiceNumber": "", "OrgAccountBalance": "",
        "ThirdPartyTransID": "", "MSISDN": "2547 ***** 678", "FirstName": "JOHN",
        "MiddleName": "", "LastName": ""
    });
    let status = pay
        .post_raw(
            &format!("/pay/cb/c2b/{C2B_TOKEN}/confirmation"),
            copy.to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        pay.scalar(&format!(
            "SELECT status FROM payment_intents WHERE id = {id}"
        ))
        .await,
        "paid"
    );
    credited_once(&pay, id).await;
}

#[sqlx::test]
async fn a_cancelled_push_stays_cancelled_when_the_customer_then_pays_the_paybill(pool: PgPool) {
    let pay = Pay::start(pool).await;
    pay.register_c2b().await;
    // The customer cancels the prompt: Safaricom's own callback says 1032.
    pay.fake.script(PHONE, Outcome::failing(1032));
    let intent = pay.push("alice", "0712345678").await;
    let id = intent["id"].as_i64().unwrap();
    pay.until(
        &format!("SELECT status || ' ' || result_code FROM payment_intents WHERE id = {id}"),
        "failed 1032",
    )
    .await;
    // Then pays the same amount to the paybill by hand, with the same account number.
    let account = intent["account_reference"].as_str().unwrap().to_owned();
    pay.fake.pay_c2b(&account, 1000, PHONE).await;
    let receipt = pay.fake.ledger()[0].receipt.clone();
    pay.until(
        &format!("SELECT applied FROM payments WHERE receipt = '{receipt}'"),
        "renewed",
    )
    .await;
    // Credited once, as a paybill payment; the cancelled push is not rewritten as paid.
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "1");
    assert_eq!(
        pay.scalar(&format!(
            "SELECT status || ' ' || coalesce((SELECT count(*) FROM payments WHERE intent_id = {id}), 0) \
             FROM payment_intents WHERE id = {id}"
        ))
        .await,
        "failed 0"
    );
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "true");
}

#[sqlx::test]
async fn the_c2b_copy_of_a_push_with_a_made_up_account_reference_counts_once(pool: PgPool) {
    let pay = Pay::start(pool).await;
    // Too long for Daraja's 12 characters: the push's AccountReference is made from the
    // intent id, and that is the BillRefNumber of the payment's C2B copy.
    sqlx::query(
        "INSERT INTO subscribers (id, username, password, plan_id, expires_at) \
         VALUES (3, 'wanjiku-nyambura', 'x', 1, now() - interval '1 day')",
    )
    .execute(&pay.pool)
    .await
    .unwrap();
    pay.register_c2b().await;
    // No callback: STK Query and the C2B copy are all the daemon hears, in either order.
    pay.fake
        .script(PHONE, Outcome::success().with_delivery(Delivery::Never));
    let intent = pay.push("wanjiku-nyambura", "0712345678").await;
    assert_ne!(intent["account_reference"], "wanjiku-nyambura");
    let id = intent["id"].as_i64().unwrap();
    pay.until_intent(id, "paid").await;
    let receipt = pay.fake.ledger()[0].receipt.clone();
    pay.until(
        &format!("SELECT receipt FROM payments WHERE intent_id = {id}"),
        &receipt,
    )
    .await;
    assert_eq!(pay.scalar("SELECT count(*)::text FROM payments").await, "1");
    assert_eq!(
        pay.scalar("SELECT applied || ' ' || subscriber_id FROM payments")
            .await,
        "renewed 3"
    );
}
