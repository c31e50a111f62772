//! Recovering a payment by its receipt through Transaction Status (issue 5: "Missed C2B
//! confirmations are recovered through Transaction Status by receipt"), against Postgres and
//! the fake Daraja, which answers Transaction Status from its own ledger at the ResultURL
//! (or the QueueTimeOutURL) the daemon gave it.
//!
//! What is asserted is the money: a lost confirmation is recovered and credited once, however
//! often the receipt is asked about and whether or not the confirmation turns up after all;
//! an unknown receipt, a refused operator, a timeout and forged answers credit nothing.

mod common;

use axum::http::StatusCode;
use std::time::Duration;

use billing_daemon::payments::recovery;
use common::pay::{ALICE_ACTIVE, C2B_TOKEN, PRICE, Pay};
use fake_daraja::{C2bOutcome, Delivery, FakeConfig, Initiator, Outcome, StatusMode};
use serde_json::{Value, json};
use sqlx::PgPool;

const INITIATOR: &str = "jasiyo-api-operator";
const CREDENTIAL: &str = "ZW5jcnlwdGVkLWluaXRpYXRvci1wYXNzd29yZA==";

/// The daemon with a Transaction Status operator; the fake expects `expected_credential`.
/// No C2B URLs are registered, so the fake's C2B confirmations go nowhere: lost.
async fn start_with_credential(pool: PgPool, expected_credential: &str) -> Pay {
    let mut config = FakeConfig::sandbox();
    config.c2b_external_validation = false;
    config.initiator = Some(Initiator {
        name: INITIATOR.to_owned(),
        security_credential: expected_credential.to_owned().into(),
    });
    Pay::start_with_env(
        pool,
        config,
        &[
            ("JASIYO_MPESA_INITIATOR_NAME", INITIATOR),
            ("JASIYO_MPESA_SECURITY_CREDENTIAL", CREDENTIAL),
        ],
    )
    .await
}

async fn start(pool: PgPool) -> Pay {
    start_with_credential(pool, CREDENTIAL).await
}

/// A paybill payment whose confirmation never reaches the daemon; its receipt.
async fn lost_c2b(pay: &Pay, account: &str, amount: u64) -> String {
    match pay.fake.pay_c2b(account, amount, "254712345678").await {
        C2bOutcome::Completed { trans_id } => trans_id,
        other => panic!("the fake refused the payment: {other:?}"),
    }
}

async fn recover(pay: &Pay, body: Value) -> Value {
    recover_answered(pay, body, StatusCode::ACCEPTED).await
}

async fn recover_answered(pay: &Pay, body: Value, want: StatusCode) -> Value {
    let (status, reply) = pay
        .api("POST", "/payments/recover", Some(body.clone()))
        .await;
    assert_eq!(status, want, "{body} -> {reply}");
    reply
}

/// Polls the recovery until its status is `want`; returns it with its callbacks.
async fn until_recovery(pay: &Pay, id: i64, want: &str) -> Value {
    pay.until(
        &format!("SELECT status FROM payment_recoveries WHERE id = {id}"),
        want,
    )
    .await;
    let (status, detail) = pay
        .api("GET", &format!("/payments/recoveries/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    detail
}

/// A lost paybill payment of alice's and a recovery of it that M-Pesa accepts and never
/// answers: (receipt, recovery id).
async fn unanswered_recovery(pay: &Pay) -> (String, i64) {
    let receipt = lost_c2b(pay, "alice", 1000).await;
    pay.fake.set_status_mode(StatusMode::Silent);
    let started = recover(pay, json!({"receipt": receipt, "username": "alice"})).await;
    let id = started["id"].as_i64().unwrap();
    until_recovery(pay, id, "pending").await;
    (receipt, id)
}

async fn count(pay: &Pay, sql: &str) -> String {
    pay.scalar(&format!("SELECT count(*)::text FROM {sql}"))
        .await
}

#[sqlx::test]
async fn a_lost_paybill_confirmation_is_recovered_by_receipt_once(pool: PgPool) {
    let pay = start(pool).await;
    let receipt = lost_c2b(&pay, "alice", 1000).await;
    assert_eq!(count(&pay, "payments").await, "0");
    assert!(pay.fake.deliveries().is_empty());

    // The operator types the receipt from the customer's SMS, in whatever case.
    let started = recover(
        &pay,
        json!({"receipt": format!(" {} ", receipt.to_lowercase()), "username": "alice"}),
    )
    .await;
    assert_eq!(started["receipt"], receipt.as_str());
    assert_eq!(started["username"], "alice");
    let id = started["id"].as_i64().unwrap();
    let done = until_recovery(&pay, id, "credited").await;
    assert_eq!(done["amount_kes"], PRICE);
    assert_eq!(done["result_code"], "0");
    assert_eq!(done["callbacks"][0]["kind"], "status_result");
    assert!(
        done["callbacks"][0]["body"]
            .as_str()
            .unwrap()
            .contains(&receipt),
        "{done}"
    );
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "true");
    let (_, payment) = pay
        .api("GET", &format!("/payments/{}", done["payment_id"]), None)
        .await;
    assert_eq!(payment["receipt"], receipt.as_str());
    assert_eq!(payment["channel"], "c2b");
    assert_eq!(payment["applied"], "renewed");
    assert_eq!(payment["msisdn"], "254712345678");
    assert!(
        payment["note"]
            .as_str()
            .unwrap()
            .contains("Transaction Status"),
        "{payment}"
    );
    // The ResultURL was this request's own, with nothing M-Pesa would refuse in it.
    let asked = pay
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path.contains("transactionstatus"))
        .unwrap();
    let asked: Value = serde_json::from_str(&asked.body).unwrap();
    let result_url = asked["ResultURL"].as_str().unwrap();
    assert!(result_url.contains("/pay/cb/ts/"), "{result_url}");
    assert!(!result_url.to_lowercase().contains("mpesa"), "{result_url}");
    assert_eq!(asked["TransactionID"], receipt.as_str());
    assert_eq!(asked["Initiator"], INITIATOR);

    // Asked again: the ledger has it, M-Pesa is not asked.
    let reply = recover_answered(
        &pay,
        json!({"receipt": receipt, "username": "alice"}),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already in the ledger"),
        "{reply}"
    );
    // The lost confirmation turns up after all: a duplicate, not a second renewal.
    let confirmation = json!({
        "TransactionType": "Pay Bill", "TransID": receipt, "TransTime": "20261124102115",
        "TransAmount": "1000.00", "BusinessShortCode": "174379", "BillRefNumber": "alice",
        "InvoiceNumber": "", "OrgAccountBalance": "1000.00", "ThirdPartyTransID": "",
        "MSISDN": "94c392c311d522da950619227b3361752a42042db7e1e699b26e628305c68a88",
        "FirstName": "JOHN", "MiddleName": "", "LastName": "DOE"
    });
    let status = pay
        .post_raw(
            &format!("/pay/cb/c2b/{C2B_TOKEN}/confirmation"),
            confirmation.to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(count(&pay, "payments").await, "1");
    assert_eq!(
        pay.scalar("SELECT outcome FROM payment_callbacks WHERE kind = 'c2b_confirmation'")
            .await,
        format!("duplicate of payment {}", done["payment_id"])
    );
    assert_eq!(
        pay.scalar(
            "SELECT (expires_at < now() + interval '31 days')::text FROM subscribers WHERE id = 1"
        )
        .await,
        "true",
        "renewed once"
    );
    let (ours, theirs) = pay.receipts().await;
    assert_eq!(ours, theirs);
    // The operator's list finds it by receipt (any case), status or username.
    for query in [
        format!("receipt={}", receipt.to_lowercase()),
        "status=credited".to_owned(),
        "username=alice".to_owned(),
    ] {
        let (got, list) = pay
            .api("GET", &format!("/payments/recoveries?{query}"), None)
            .await;
        assert_eq!(got, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 1, "{query}: {list}");
        assert_eq!(list[0]["id"], id);
    }
    let (_, none) = pay
        .api("GET", "/payments/recoveries?status=failed", None)
        .await;
    assert_eq!(none, json!([]));
}

#[sqlx::test]
async fn without_a_username_the_recovered_payment_waits_unmatched(pool: PgPool) {
    let pay = start(pool).await;
    let receipt = lost_c2b(&pay, "someone", 300).await;
    let started = recover(&pay, json!({"receipt": receipt})).await;
    let done = until_recovery(&pay, started["id"].as_i64().unwrap(), "credited").await;
    let (_, payment) = pay
        .api("GET", &format!("/payments/{}", done["payment_id"]), None)
        .await;
    assert_eq!(payment["applied"], "unmatched");
    assert_eq!(payment["subscriber_id"], Value::Null);
    assert_eq!(payment["amount_kes"], 300);
}

#[sqlx::test]
async fn a_receipt_mpesa_does_not_know_credits_nothing(pool: PgPool) {
    let pay = start(pool).await;
    let started = recover(&pay, json!({"receipt": "ZZZ9999999", "username": "alice"})).await;
    let id = started["id"].as_i64().unwrap();
    let failed = until_recovery(&pay, id, "failed").await;
    assert_eq!(
        failed["result_code"],
        fake_daraja::STATUS_NOT_FOUND_CODE.to_string()
    );
    assert_eq!(count(&pay, "payments").await, "0");
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "false");
    assert!(
        failed["callbacks"][0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("not credited"),
        "{failed}"
    );
    // A failed request does not block asking again.
    recover(&pay, json!({"receipt": "ZZZ9999999", "username": "alice"})).await;
}

#[sqlx::test]
async fn a_refused_operator_credits_nothing(pool: PgPool) {
    let pay = start_with_credential(pool, "c29tZXRoaW5nLWVsc2U=").await;
    let receipt = lost_c2b(&pay, "alice", 1000).await;
    let started = recover(&pay, json!({"receipt": receipt, "username": "alice"})).await;
    let failed = until_recovery(&pay, started["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(failed["result_code"], "2001");
    assert_eq!(count(&pay, "payments").await, "0");
}

#[sqlx::test]
async fn a_queue_timeout_credits_nothing_and_the_receipt_can_be_asked_again(pool: PgPool) {
    let pay = start(pool).await;
    let receipt = lost_c2b(&pay, "alice", 1000).await;
    pay.fake.set_status_mode(StatusMode::QueueTimeout);
    let first = recover(&pay, json!({"receipt": receipt, "username": "alice"})).await;
    let timed_out = until_recovery(&pay, first["id"].as_i64().unwrap(), "timed_out").await;
    assert_eq!(timed_out["callbacks"][0]["kind"], "status_timeout");
    assert_eq!(count(&pay, "payments").await, "0");
    pay.fake.set_status_mode(StatusMode::Answer);
    let second = recover(&pay, json!({"receipt": receipt, "username": "alice"})).await;
    until_recovery(&pay, second["id"].as_i64().unwrap(), "credited").await;
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "true");
}

#[sqlx::test]
async fn forged_answers_credit_nothing(pool: PgPool) {
    let pay = start(pool).await;
    // M-Pesa accepts the request and never answers: only forgers post to the URLs.
    let (receipt, id) = unanswered_recovery(&pay).await;
    // A second request for the same receipt while this one is open.
    recover_answered(
        &pay,
        json!({"receipt": receipt, "username": "alice"}),
        StatusCode::CONFLICT,
    )
    .await;
    let token = pay
        .scalar(&format!(
            "SELECT result_token FROM payment_recoveries WHERE id = {id}"
        ))
        .await;
    let ocid = pay
        .scalar(&format!(
            "SELECT originator_conversation_id FROM payment_recoveries WHERE id = {id}"
        ))
        .await;
    assert!(!ocid.is_empty());
    let result = |ocid: &str, receipt: &str, credit_party: &str| {
        json!({"Result": {
            "ConversationID": "AG_20261124_forged", "OriginatorConversationID": ocid,
            "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
            "ResultType": 0, "TransactionID": "OKR0000000",
            "ResultParameters": {"ResultParameter": [
                {"Key": "DebitPartyName", "Value": "254712345678 - JOHN DOE"},
                {"Key": "CreditPartyName", "Value": credit_party},
                {"Key": "TransactionStatus", "Value": "Completed"},
                {"Key": "Amount", "Value": "5000"},
                {"Key": "ReceiptNo", "Value": receipt},
                {"Key": "FinalisedTime", "Value": "20261124102115"}]}}})
        .to_string()
    };
    let post = |path: String, body: String| {
        let pay = &pay;
        async move { pay.post_raw(&path, body).await }
    };
    let ours = "174379 - JASIYO";
    // A URL no request has, and one that cannot be a token: not found.
    let guessed = "cd".repeat(32);
    for path in [
        format!("/pay/cb/ts/{guessed}/result"),
        "/pay/cb/ts/notatoken/result".to_owned(),
    ] {
        assert_eq!(post(path, result(&ocid, &receipt, ours)).await, 404);
    }
    // The right URL, but not the answer to this request: kept, acknowledged, refused.
    let url = format!("/pay/cb/ts/{token}/result");
    for body in [
        result("forged-conversation", &receipt, ours),
        result(&ocid, "OTHERRCPT1", ours),
        result(&ocid, &receipt, "600000 - SOMEONE ELSE"),
        "{not json".to_owned(),
    ] {
        assert_eq!(post(url.clone(), body).await, 200);
    }
    assert_eq!(
        post(url.clone(), "x".repeat(100 * 1024)).await,
        413,
        "oversized"
    );
    assert_eq!(count(&pay, "payments").await, "0");
    assert_eq!(pay.scalar(ALICE_ACTIVE).await, "false");
    let outcomes = pay
        .scalar(&format!(
            "SELECT string_agg(outcome, ' | ' ORDER BY id) FROM payment_callbacks \
              WHERE recovery_id = {id}"
        ))
        .await;
    for want in [
        "OriginatorConversationID \"forged-conversation\"",
        "ReceiptNo \"OTHERRCPT1\"",
        "paid to 600000",
        "unreadable",
    ] {
        assert!(outcomes.contains(want), "{want}: {outcomes}");
    }
    assert_eq!(
        count(
            &pay,
            "payment_callbacks WHERE url_token IS NOT NULL AND recovery_id IS NULL"
        )
        .await,
        "1",
        "the guessed URL is kept, matched to nothing"
    );
    // A forged timeout does not close the request either.
    assert_eq!(
        post(
            format!("/pay/cb/ts/{token}/timeout"),
            result("forged-conversation", &receipt, ours)
        )
        .await,
        200
    );
    let (_, detail) = pay
        .api("GET", &format!("/payments/recoveries/{id}"), None)
        .await;
    assert_eq!(detail["status"], "pending", "{detail}");
}

#[sqlx::test]
async fn a_recovered_receipt_fills_in_an_stk_payment_found_by_query(pool: PgPool) {
    let pay = start(pool).await;
    // The callback goes to a forged path and no C2B copy comes: only STK Query finds it.
    pay.fake.script(
        "254712345678",
        Outcome::success().with_delivery(Delivery::WrongPath),
    );
    let intent = pay.push("alice", "0712345678").await;
    pay.until_intent(intent["id"].as_i64().unwrap(), "paid")
        .await;
    assert_eq!(count(&pay, "payments WHERE receipt IS NULL").await, "1");
    let receipt = pay.fake.ledger()[0].receipt.clone();
    let started = recover(&pay, json!({"receipt": receipt, "username": "alice"})).await;
    let done = until_recovery(&pay, started["id"].as_i64().unwrap(), "already_credited").await;
    assert_eq!(count(&pay, "payments").await, "1");
    let (_, payment) = pay
        .api("GET", &format!("/payments/{}", done["payment_id"]), None)
        .await;
    assert_eq!(payment["receipt"], receipt.as_str());
    assert_eq!(payment["channel"], "stk");
    assert_eq!(payment["intent_id"], intent["id"]);
    let (ours, theirs) = pay.receipts().await;
    assert_eq!(ours, theirs);
}

#[sqlx::test]
async fn bad_recovery_requests(pool: PgPool) {
    let pay = start(pool.clone()).await;
    for (body, status) in [
        (
            json!({"receipt": "NLJ-7RT61SV"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"receipt": ""}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"receipt": "NLJ7RT61SV", "username": "nobody"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"username": "alice"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"receipt": "NLJ7RT61SV", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        recover_answered(&pay, body, status).await;
    }
    let (got, _) = pay.api("GET", "/payments/recoveries/999", None).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    for (bad, want) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=1001", StatusCode::UNPROCESSABLE_ENTITY),
        ("colour=red", StatusCode::BAD_REQUEST),
    ] {
        let (got, _) = pay
            .api("GET", &format!("/payments/recoveries?{bad}"), None)
            .await;
        assert_eq!(got, want, "{bad}");
    }
    assert_eq!(count(&pay, "payment_recoveries").await, "0");
    assert!(
        !pay.fake
            .requests()
            .iter()
            .any(|r| r.path.contains("transactionstatus"))
    );
}

#[sqlx::test]
async fn without_an_initiator_recovery_says_it_is_not_configured(pool: PgPool) {
    let pay = Pay::start(pool).await;
    let reply = recover_answered(
        &pay,
        json!({"receipt": "NLJ7RT61SV", "username": "alice"}),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(reply["error"]["code"], "not_configured");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JASIYO_MPESA_INITIATOR_NAME"),
        "{reply}"
    );
    // The answer URLs exist only for requests that were made.
    let guessed = format!("/pay/cb/ts/{}/result", "ab".repeat(32));
    assert_eq!(pay.post_raw(&guessed, "{}".to_owned()).await, 404);
}

#[sqlx::test]
async fn an_unanswered_request_is_closed_at_the_deadline(pool: PgPool) {
    let pay = start(pool).await;
    let (receipt, id) = unanswered_recovery(&pay).await;
    // Not yet due: left open.
    assert_eq!(
        recovery::expire(&pay.pool, Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    // Past the deadline (the reconciler's is 20 s here): the reconciler closes it.
    sqlx::query("UPDATE payment_recoveries SET created_at = now() - interval '2 hours'")
        .execute(&pay.pool)
        .await
        .unwrap();
    let closed = until_recovery(&pay, id, "timed_out").await;
    assert_eq!(
        closed["result_desc"],
        "no answer from M-Pesa by the deadline"
    );
    // The receipt may be asked about again.
    pay.fake.set_status_mode(StatusMode::Answer);
    let again = recover(&pay, json!({"receipt": receipt, "username": "alice"})).await;
    until_recovery(&pay, again["id"].as_i64().unwrap(), "credited").await;
}
