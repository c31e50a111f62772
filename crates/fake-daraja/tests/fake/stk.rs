use std::time::Duration;

use chrono::Utc;
use fake_daraja::{
    AmountFormat, Channel, Delivery, DeliveryKind, FakeConfig, FakeDaraja, Merchant, Outcome,
    SANDBOX_PASSKEY, StkState,
};
use serde_json::{Value, json};

use crate::support::*;

const CB: &str = "/pay/cb/stk/tok123";

/// A config where nothing but the STK callback reaches the receiver.
fn quiet() -> FakeConfig {
    FakeConfig {
        c2b_confirmation_for_stk: false,
        ..FakeConfig::sandbox()
    }
}

/// The `ResultCode` of the callback for the push `accepted` answered, once it arrived.
fn result_code(rx: &Receiver, accepted: &Value) -> Option<Value> {
    rx.hits().iter().map(Hit::json).find_map(|cb| {
        let stk = &cb["Body"]["stkCallback"];
        (stk["CheckoutRequestID"] == accepted["CheckoutRequestID"])
            .then(|| stk["ResultCode"].clone())
    })
}

fn item<'a>(callback: &'a Value, name: &str) -> Option<&'a Value> {
    callback["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        .as_array()?
        .iter()
        .find(|i| i["Name"] == name)
}

#[tokio::test]
async fn accepted_push_is_paid_and_called_back_in_the_real_shape() {
    let (fake, tok) = start(quiet()).await;
    let rx = Receiver::start().await;
    let (status, accepted) = post(&fake, PUSH, &tok, &push_body(PHONE, 1, &rx.url(CB))).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["ResponseCode"], "0");
    assert_eq!(
        accepted["CustomerMessage"],
        "Success. Request accepted for processing"
    );
    let checkout = accepted["CheckoutRequestID"].as_str().unwrap();
    // ws_CO_ + ddMMyyyyHHmmssSSS + msisdn
    assert!(checkout.starts_with("ws_CO_") && checkout.ends_with(PHONE));
    assert_eq!(checkout.len(), 6 + 17 + 12);
    assert!(accepted["MerchantRequestID"].as_str().unwrap().len() > 10);

    let hit = fake
        .eventually("the callback", |_| rx.hits_on(CB).into_iter().next())
        .await;
    // Written as Daraja writes it: Amount 1.00, Balance without a Value.
    assert!(
        hit.body.contains(r#"{"Name":"Amount","Value":1.00}"#),
        "{}",
        hit.body
    );
    assert!(hit.body.contains(r#"{"Name":"Balance"}"#), "{}", hit.body);
    let cb = hit.json();
    let stk = &cb["Body"]["stkCallback"];
    assert_eq!(stk["CheckoutRequestID"], checkout);
    assert_eq!(stk["MerchantRequestID"], accepted["MerchantRequestID"]);
    assert_eq!(stk["ResultCode"], 0);
    assert!(
        stk.get("AccountReference").is_none(),
        "not echoed by Daraja"
    );
    let receipt = item(&cb, "MpesaReceiptNumber").unwrap()["Value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(receipt.len(), 10);
    assert!(
        receipt
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    let date = item(&cb, "TransactionDate").unwrap()["Value"]
        .as_u64()
        .unwrap();
    assert_eq!(date.to_string().len(), 14);
    assert_eq!(
        item(&cb, "PhoneNumber").unwrap()["Value"].as_u64(),
        Some(254708374149)
    );

    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].receipt, receipt);
    assert_eq!(ledger[0].amount, 1);
    assert_eq!(ledger[0].account_reference, "alice01");
    assert_eq!(
        ledger[0].channel,
        Channel::Stk {
            checkout_request_id: checkout.to_owned()
        }
    );
    let delivered = fake
        .eventually("the delivery record", |f| {
            f.deliveries().into_iter().find(|d| d.status.is_some())
        })
        .await;
    assert_eq!(delivered.kind, DeliveryKind::StkCallback);
    assert_eq!(delivered.status, Some(200));
    assert_eq!(delivered.url, rx.url(CB));
    let pushes = fake.stk_pushes();
    assert_eq!(pushes[0].state, StkState::Completed(0.into()));
    assert_eq!(pushes[0].receipt.as_deref(), Some(receipt.as_str()));
}

/// Every field check, each against an otherwise valid push.
#[tokio::test]
async fn invalid_pushes_get_daraja_error_envelopes() {
    let (fake, tok) = start(quiet()).await;
    let good = push_body(PHONE, 1, "https://example.com/pay/cb/x");
    let utc_now = Utc::now().format("%Y%m%d%H%M%S").to_string();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "BusinessShortCode",
            json!("17437x"),
            "400.002.02",
            "Bad Request - Invalid BusinessShortCode",
        ),
        (
            "BusinessShortCode",
            json!("600000"),
            "500.001.1001",
            "Merchant does not exist",
        ),
        (
            "Timestamp",
            json!("2021-06-28 09:24"),
            "400.002.02",
            "Bad Request - Invalid Timestamp",
        ),
        // UTC instead of Nairobi time: three hours off.
        (
            "Timestamp",
            json!(utc_now),
            "400.002.02",
            "Bad Request - Invalid Timestamp",
        ),
        (
            "Password",
            json!("c2VjcmV0"),
            "500.001.1001",
            "Wrong credentials",
        ),
        (
            "TransactionType",
            json!("PayBill"),
            "400.002.02",
            "Bad Request - Invalid TransactionType",
        ),
        (
            "Amount",
            json!("0"),
            "400.002.02",
            "Bad Request - Invalid Amount",
        ),
        (
            "Amount",
            json!(1.5),
            "400.002.02",
            "Bad Request - Invalid Amount",
        ),
        (
            "Amount",
            json!("ten"),
            "400.002.02",
            "Bad Request - Invalid Amount",
        ),
        (
            "PartyA",
            json!("0708374149"),
            "400.002.02",
            "Bad Request - Invalid PartyA",
        ),
        (
            "PartyB",
            json!("abc"),
            "400.002.02",
            "Bad Request - Invalid PartyB",
        ),
        (
            "PhoneNumber",
            json!("+254708374149"),
            "400.002.02",
            "Bad Request - Invalid PhoneNumber",
        ),
        (
            "PhoneNumber",
            json!("254808374149"),
            "400.002.02",
            "Bad Request - Invalid PhoneNumber",
        ),
        (
            "CallBackURL",
            json!("http://example.com/pay/cb/x"),
            "400.002.02",
            "Bad Request - Invalid CallBackURL",
        ),
        (
            "CallBackURL",
            json!("https://example.com/mpesa/callback"),
            "400.002.02",
            "Bad Request - Invalid CallBackURL",
        ),
        (
            "CallBackURL",
            json!("not a url"),
            "400.002.02",
            "Bad Request - Invalid CallBackURL",
        ),
        (
            "AccountReference",
            json!("abcdefghijklm"),
            "400.002.02",
            "Bad Request - Invalid AccountReference",
        ),
        (
            "AccountReference",
            json!(""),
            "400.002.02",
            "Bad Request - Invalid AccountReference",
        ),
        (
            "TransactionDesc",
            json!("abcdefghijklmn"),
            "400.002.02",
            "Bad Request - Invalid TransactionDesc",
        ),
    ];
    for (field, value, code, message) in cases {
        let mut body = good.clone();
        body[field] = value.clone();
        let got = post(&fake, PUSH, &tok, &body).await;
        let status = if code.starts_with("500") { 500 } else { 400 };
        assert_eq!(got.0, status, "{field}={value}: {}", got.1);
        assert_eq!(got.1["errorCode"], code, "{field}={value}: {}", got.1);
        assert_eq!(got.1["errorMessage"], message, "{field}={value}");
    }
    // A missing field is as invalid as a wrong one.
    let mut body = good.clone();
    body.as_object_mut().unwrap().remove("PhoneNumber");
    assert_error(
        &post(&fake, PUSH, &tok, &body).await,
        400,
        "400.002.02",
        "Bad Request - Invalid PhoneNumber",
    );
    // The password signed with a different timestamp than the one sent.
    let mut body = good.clone();
    body["Password"] = json!(fake_daraja::stk_password(
        "174379",
        SANDBOX_PASSKEY,
        "20210628092408"
    ));
    assert_error(
        &post(&fake, PUSH, &tok, &body).await,
        500,
        "500.001.1001",
        "Wrong credentials",
    );

    // Without Content-Type: the misleading message the Express FAQ describes.
    let got = post_raw(&fake, PUSH, &tok, None, &good.to_string()).await;
    assert_error(
        &got,
        400,
        "400.002.02",
        "Bad Request - Invalid BusinessShortCode",
    );
    // Malformed and non-object JSON.
    for raw in ["{\"BusinessShortCode\":", "[1,2]", "", "null"] {
        let got = post_raw(&fake, PUSH, &tok, Some("application/json"), raw).await;
        assert_eq!(got.0, 400, "{raw:?}");
        assert_eq!(got.1["errorCode"], "400.002.02", "{raw:?}");
    }
    // Oversized body.
    let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(2 << 20));
    let got = post_raw(&fake, PUSH, &tok, Some("application/json"), &huge).await;
    assert_eq!(got.0, 400);
    let last = fake.requests().pop().unwrap();
    assert_eq!((last.path.as_str(), last.status), (PUSH, 400));
    assert!(last.body.len() < 100, "the oversized body is not kept");
    assert!(fake.stk_pushes().is_empty(), "nothing was accepted");
}

#[tokio::test]
async fn till_pushes_use_store_number_and_till_and_mismatches_fail_in_the_callback() {
    let (fake, tok) = start(FakeConfig {
        merchants: vec![
            Merchant::till("300584", "5678912", SANDBOX_PASSKEY),
            Merchant::paybill("174379", SANDBOX_PASSKEY),
        ],
        c2b_confirmation_for_stk: false,
        ..FakeConfig::sandbox()
    })
    .await;
    let rx = Receiver::start().await;
    let ts = fake_daraja::nairobi_timestamp(Utc::now());
    let mut till = push_body("254711000001", 5, &rx.url("/pay/cb/a"));
    till["BusinessShortCode"] = json!("300584");
    till["Password"] = json!(fake_daraja::stk_password("300584", SANDBOX_PASSKEY, &ts));
    till["Timestamp"] = json!(ts);
    till["TransactionType"] = json!("CustomerBuyGoodsOnline");
    till["PartyB"] = json!("5678912");
    let (status, till_accepted) = post(&fake, PUSH, &tok, &till).await;
    assert_eq!(status, 200, "{till_accepted}");
    // Queried with the paybill's credentials, the till's push does not exist.
    let till_id = till_accepted["CheckoutRequestID"].as_str().unwrap();
    assert_error(
        &post(&fake, QUERY, &tok, &query_body(till_id)).await,
        400,
        "400.002.02",
        "Bad Request - Invalid CheckoutRequestID",
    );

    // Till number as BusinessShortCode is not a merchant: the store number signs.
    let mut wrong = till.clone();
    wrong["BusinessShortCode"] = json!("5678912");
    wrong["Password"] = json!(fake_daraja::stk_password("5678912", SANDBOX_PASSKEY, &ts));
    assert_error(
        &post(&fake, PUSH, &tok, &wrong).await,
        500,
        "500.001.1001",
        "Merchant does not exist",
    );

    // Paybill with the Buy Goods type: accepted, then 2028.
    let mut mistyped = push_body("254711000002", 5, &rx.url("/pay/cb/b"));
    mistyped["TransactionType"] = json!("CustomerBuyGoodsOnline");
    assert_eq!(post(&fake, PUSH, &tok, &mistyped).await.0, 200);
    // Paybill with a wrong PartyB: accepted, then the string code SFC_IC0003.
    let mut misdirected = push_body("254711000003", 5, &rx.url("/pay/cb/c"));
    misdirected["PartyB"] = json!("600000");
    assert_eq!(post(&fake, PUSH, &tok, &misdirected).await.0, 200);

    let result_of = |path: &str| {
        rx.hits_on(path)
            .first()
            .map(|h| h.json()["Body"]["stkCallback"]["ResultCode"].clone())
    };
    let codes = fake
        .eventually("three callbacks", |_| {
            Some((
                result_of("/pay/cb/a")?,
                result_of("/pay/cb/b")?,
                result_of("/pay/cb/c")?,
            ))
        })
        .await;
    assert_eq!(codes, (json!(0), json!(2028), json!("SFC_IC0003")));
    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].shortcode, "5678912");
}

#[tokio::test]
async fn a_phone_with_an_open_prompt_is_locked_and_rule_17_refuses_a_quick_repeat() {
    let (fake, tok) = start(quiet()).await;
    let rx = Receiver::start().await;
    fake.script(
        PHONE,
        Outcome::success().with_delay(Duration::from_millis(300)),
    );
    let body = push_body(PHONE, 10, &rx.url(CB));
    assert_eq!(post(&fake, PUSH, &tok, &body).await.0, 200);
    assert_error(
        &post(&fake, PUSH, &tok, &body).await,
        500,
        "500.001.1001",
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    );
    // Another phone is not affected.
    assert_eq!(
        post(
            &fake,
            PUSH,
            &tok,
            &push_body("254711111111", 10, &rx.url(CB))
        )
        .await
        .0,
        200
    );
    fake.eventually("the first payment", |f| {
        (f.ledger().len() == 2).then_some(())
    })
    .await;

    // Paid 10 a moment ago: the same amount again is rule-limited, another amount is not.
    let (_, again) = post(&fake, PUSH, &tok, &body).await;
    let code = fake
        .eventually("the rule-17 callback", |_| result_code(&rx, &again))
        .await;
    assert_eq!(code, 17);
    let (_, other) = post(&fake, PUSH, &tok, &push_body(PHONE, 11, &rx.url(CB))).await;
    let code = fake
        .eventually("the next callback", |_| result_code(&rx, &other))
        .await;
    assert_eq!(code, 0);
    assert_eq!(fake.ledger().len(), 3);
}

#[tokio::test]
async fn scripted_failures_have_no_metadata_and_keep_string_codes() {
    let (fake, tok) = start(quiet()).await;
    let rx = Receiver::start().await;
    let phones = [
        "254700000001",
        "254700000002",
        "254700000003",
        "254700000004",
    ];
    fake.script(phones[0], Outcome::failing(1032));
    fake.script(phones[1], Outcome::failing(1037));
    fake.script(phones[2], Outcome::failing("SFC_IC0003"));
    fake.script(
        phones[3],
        Outcome::success().with_amount_format(AmountFormat::Integer),
    );
    for (i, phone) in phones.iter().enumerate() {
        let url = rx.url(&format!("/pay/cb/{i}"));
        assert_eq!(
            post(&fake, PUSH, &tok, &push_body(phone, 7, &url)).await.0,
            200
        );
    }
    fake.eventually("four callbacks", |_| (rx.hits().len() == 4).then_some(()))
        .await;
    let cb = |i: usize| rx.hits_on(&format!("/pay/cb/{i}"))[0].clone();
    let c = cb(0).json();
    assert_eq!(c["Body"]["stkCallback"]["ResultCode"], 1032);
    assert_eq!(
        c["Body"]["stkCallback"]["ResultDesc"],
        "Request cancelled by user"
    );
    assert!(c["Body"]["stkCallback"].get("CallbackMetadata").is_none());
    assert_eq!(cb(1).json()["Body"]["stkCallback"]["ResultCode"], 1037);
    assert_eq!(
        cb(2).json()["Body"]["stkCallback"]["ResultCode"],
        "SFC_IC0003"
    );
    assert!(cb(3).body.contains(r#"{"Name":"Amount","Value":7}"#));
    assert_eq!(fake.ledger().len(), 1, "only the success moved money");
}

#[tokio::test]
async fn query_says_being_processed_then_the_result_as_a_string() {
    let (fake, tok) = start(quiet()).await;
    let rx = Receiver::start().await;
    fake.script(
        PHONE,
        Outcome::success().with_delay(Duration::from_millis(300)),
    );
    let (_, accepted) = post(&fake, PUSH, &tok, &push_body(PHONE, 1, &rx.url(CB))).await;
    let id = accepted["CheckoutRequestID"].as_str().unwrap();
    let got = post(&fake, QUERY, &tok, &query_body(id)).await;
    assert_error(
        &got,
        500,
        "500.001.1001",
        "The transaction is being processed",
    );

    let mut result = Value::Null;
    for _ in 0..200 {
        let got = post(&fake, QUERY, &tok, &query_body(id)).await;
        if got.0 == 200 {
            result = got.1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(result["ResultCode"], "0");
    assert_eq!(result["ResponseCode"], "0");
    assert_eq!(result["CheckoutRequestID"], id);
    assert_eq!(result["MerchantRequestID"], accepted["MerchantRequestID"]);
    assert!(
        result.get("MpesaReceiptNumber").is_none(),
        "no receipt in a query"
    );

    // The reported sandbox bug: a paid push queried as cancelled.
    fake.set_sandbox_query_bug(true);
    let got = post(&fake, QUERY, &tok, &query_body(id)).await;
    assert_eq!(got.1["ResultCode"], "1032");

    assert_error(
        &post(&fake, QUERY, &tok, &query_body("ws_CO_000")).await,
        400,
        "400.002.02",
        "Bad Request - Invalid CheckoutRequestID",
    );
    let mut bad = query_body(id);
    bad["Password"] = json!("d3Jvbmc=");
    assert_error(
        &post(&fake, QUERY, &tok, &bad).await,
        500,
        "500.001.1001",
        "Wrong credentials",
    );
}

#[tokio::test]
async fn queries_above_the_rate_limit_get_spike_arrest() {
    let (fake, tok) = start(FakeConfig {
        query_rate_limit: Some(2),
        ..quiet()
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(post(&fake, QUERY, &tok, &query_body("ws_CO_1")).await.1["errorCode"].clone());
    }
    assert_eq!(codes[..2], [json!("400.002.02"), json!("400.002.02")]);
    assert!(codes[2..].contains(&json!("500.003.02")), "{codes:?}");
    fake.set_query_rate_limit(None);
    let got = post(&fake, QUERY, &tok, &query_body("ws_CO_1")).await;
    assert_eq!(got.1["errorCode"], "400.002.02");
}

async fn push_and_settle(fake: &FakeDaraja, tok: &str, phone: &str, url: &str) -> String {
    let (status, accepted) = post(fake, PUSH, tok, &push_body(phone, 3, url)).await;
    assert_eq!(status, 200, "{accepted}");
    let id = accepted["CheckoutRequestID"].as_str().unwrap().to_owned();
    fake.eventually("the push to complete", |f| {
        f.stk_pushes()
            .iter()
            .any(|p| p.checkout_request_id == id && p.state != StkState::Pending)
            .then_some(())
    })
    .await;
    id
}

#[tokio::test]
async fn callbacks_delivered_twice_concurrently_never_late_and_to_a_wrong_path() {
    let (fake, tok) = start(quiet()).await;
    let rx = Receiver::start().await;
    let modes = [
        ("254700000011", Delivery::Twice, "/pay/cb/twice"),
        ("254700000012", Delivery::TwiceConcurrently, "/pay/cb/conc"),
        ("254700000013", Delivery::Never, "/pay/cb/never"),
        ("254700000014", Delivery::WrongPath, "/pay/cb/right-token"),
        (
            "254700000015",
            Delivery::ThenConflicting(1032.into()),
            "/pay/cb/conflict",
        ),
    ];
    for (phone, delivery, path) in &modes {
        fake.script(phone, Outcome::success().with_delivery(delivery.clone()));
        push_and_settle(&fake, &tok, phone, &rx.url(path)).await;
    }
    fake.eventually("the deliveries", |_| (rx.hits().len() == 7).then_some(()))
        .await;
    let twice = rx.hits_on("/pay/cb/twice");
    assert_eq!(twice.len(), 2);
    assert_eq!(twice[0].body, twice[1].body, "the same body twice");
    assert_eq!(rx.hits_on("/pay/cb/conc").len(), 2);
    assert!(rx.hits_on("/pay/cb/never").is_empty());
    assert!(rx.hits_on("/pay/cb/right-token").is_empty());
    let forged: Vec<_> = rx
        .hits()
        .into_iter()
        .filter(|h| {
            h.path.starts_with("/pay/cb/")
                && h.json()["Body"]["stkCallback"]["CallbackMetadata"]["Item"][4]["Value"]
                    == 254700000014u64
        })
        .collect();
    assert_eq!(forged.len(), 1);
    assert_ne!(forged[0].path, "/pay/cb/right-token");
    let conflict = rx.hits_on("/pay/cb/conflict");
    assert_eq!(conflict.len(), 2);
    assert_eq!(conflict[0].json()["Body"]["stkCallback"]["ResultCode"], 0);
    assert_eq!(
        conflict[1].json()["Body"]["stkCallback"]["ResultCode"],
        1032
    );
    assert_eq!(fake.ledger().len(), 5, "every one of them was paid");
}

#[tokio::test]
async fn a_late_callback_waits_for_the_query_to_report_the_result() {
    let (fake, tok) = start(quiet()).await;
    let rx = Receiver::start().await;
    fake.script(PHONE, Outcome::success().with_delivery(Delivery::Late));
    let id = push_and_settle(&fake, &tok, PHONE, &rx.url(CB)).await;
    assert!(rx.hits().is_empty(), "held back until queried");
    let got = post(&fake, QUERY, &tok, &query_body(&id)).await;
    assert_eq!(got.1["ResultCode"], "0");
    fake.eventually("the late callback", |_| {
        (rx.hits_on(CB).len() == 1).then_some(())
    })
    .await;
    // A second query does not send it again.
    post(&fake, QUERY, &tok, &query_body(&id)).await;
    assert_eq!(rx.hits_on(CB).len(), 1);
}

#[tokio::test]
async fn non_2xx_answers_are_retried_and_every_attempt_is_recorded() {
    let (fake, tok) = start(FakeConfig {
        retry: fake_daraja::RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        },
        ..quiet()
    })
    .await;
    let rx = Receiver::start().await;
    rx.reply_next(500, json!({}));
    rx.reply_next(503, json!({}));
    push_and_settle(&fake, &tok, PHONE, &rx.url(CB)).await;
    let attempts = fake
        .eventually("three attempts", |f| {
            let d = f.deliveries();
            (d.len() == 3).then_some(d)
        })
        .await;
    let seen: Vec<_> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(seen, [(1, Some(500)), (2, Some(503)), (3, Some(200))]);

    // Nobody listening: every attempt recorded with the error, then it gives up.
    let (fake, tok) = start(FakeConfig {
        retry: fake_daraja::RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
        ..quiet()
    })
    .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/pay/cb/x", l.local_addr().unwrap())
    };
    push_and_settle(&fake, &tok, PHONE, &closed).await;
    let attempts = fake
        .eventually("two failed attempts", |f| {
            let d = f.deliveries();
            (d.len() == 2).then_some(d)
        })
        .await;
    assert!(
        attempts
            .iter()
            .all(|a| a.status.is_none() && a.error.is_some())
    );
    assert_eq!(
        fake.ledger().len(),
        1,
        "paid even though the daemon never heard"
    );
}

#[tokio::test]
async fn a_test_can_end_the_wait_of_a_pending_push() {
    let (fake, tok) = start(quiet()).await;
    let rx = Receiver::start().await;
    fake.script(
        PHONE,
        Outcome::success().with_delay(Duration::from_secs(3600)),
    );
    let (_, accepted) = post(&fake, PUSH, &tok, &push_body(PHONE, 1, &rx.url(CB))).await;
    let id = accepted["CheckoutRequestID"].as_str().unwrap();
    let got = post(&fake, QUERY, &tok, &query_body(id)).await;
    assert_eq!(got.1["errorMessage"], "The transaction is being processed");
    assert!(fake.complete_now(id));
    let code = fake
        .eventually("the callback", |_| result_code(&rx, &accepted))
        .await;
    assert_eq!(code, 0);
    assert!(!fake.complete_now(id), "already completed");
    assert!(!fake.complete_now("ws_CO_unknown"));
}
