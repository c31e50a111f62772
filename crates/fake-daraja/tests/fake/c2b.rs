use std::time::Duration;

use fake_daraja::{C2bOutcome, Channel, DeliveryKind, FakeConfig, FakeDaraja, Mode};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::support::*;

const V1: &str = "/mpesa/c2b/v1/registerurl";
const V2: &str = "/mpesa/c2b/v2/registerurl";

fn registration(rx: &Receiver, response_type: &str) -> Value {
    json!({
        "ShortCode": "174379",
        "ResponseType": response_type,
        "ConfirmationURL": rx.url("/pay/c2b/k3y/confirm"),
        "ValidationURL": rx.url("/pay/c2b/k3y/validate"),
    })
}

async fn registered(config: FakeConfig, response_type: &str) -> (FakeDaraja, String, Receiver) {
    let (fake, tok) = start(config).await;
    let rx = Receiver::start().await;
    let (status, body) = post(&fake, V2, &tok, &registration(&rx, response_type)).await;
    assert_eq!(status, 200, "{body}");
    (fake, tok, rx)
}

fn assert_all_strings(v: &Value) {
    for (k, val) in v.as_object().unwrap() {
        assert!(val.is_string(), "{k} is not a string: {val}");
    }
}

#[tokio::test]
async fn register_accepts_v1_and_v2_and_production_refuses_a_second_time() {
    let (fake, tok) = start(FakeConfig::sandbox()).await;
    let rx = Receiver::start().await;
    let (status, body) = post(&fake, V1, &tok, &registration(&rx, "Completed")).await;
    assert_eq!(status, 200);
    assert_eq!(body["ResponseCode"], "0");
    assert!(
        body["OriginatorCoversationID"].is_string(),
        "Daraja's spelling"
    );
    assert_eq!(
        post(&fake, V2, &tok, &registration(&rx, "Cancelled"))
            .await
            .0,
        200
    );

    let (fake, tok) = start(FakeConfig {
        mode: Mode::Production,
        ..FakeConfig::sandbox()
    })
    .await;
    assert_eq!(
        post(&fake, V1, &tok, &registration(&rx, "Completed"))
            .await
            .0,
        200
    );
    assert_error(
        &post(&fake, V2, &tok, &registration(&rx, "Completed")).await,
        500,
        "500.003.1001",
        "Urls are already registered",
    );
}

#[tokio::test]
async fn register_validates_fields() {
    let (fake, tok) = start(FakeConfig::sandbox()).await;
    let rx = Receiver::start().await;
    let cases = [
        ("ResponseType", json!("completed"), "ResponseType"),
        ("ShortCode", json!("600000"), "ShortCode"),
        (
            "ConfirmationURL",
            json!("https://example.com/mpesa/confirm"),
            "ConfirmationURL",
        ),
        (
            "ValidationURL",
            json!("https://example.com/exec/validate"),
            "ValidationURL",
        ),
        (
            "ValidationURL",
            json!("http://example.com/validate"),
            "ValidationURL",
        ),
    ];
    for (field, value, name) in cases {
        let mut body = registration(&rx, "Completed");
        body[field] = value;
        assert_error(
            &post(&fake, V1, &tok, &body).await,
            400,
            "400.002.02",
            &format!("Bad Request - Invalid {name}"),
        );
    }
    let got = post_raw(&fake, V1, &tok, Some("application/json"), "{oops").await;
    assert_eq!(got.1["errorCode"], "400.002.02");
}

#[tokio::test]
async fn payment_runs_validation_then_confirmation_with_string_values_and_a_hashed_msisdn() {
    let (fake, _tok, rx) = registered(FakeConfig::sandbox(), "Completed").await;
    rx.reply_next(
        200,
        json!({"ResultCode": "0", "ResultDesc": "Accepted", "ThirdPartyTransID": "inv-42"}),
    );
    let outcome = fake.pay_c2b(" Alice01 ", 500, PHONE).await;
    let C2bOutcome::Completed { trans_id } = outcome else {
        panic!("{outcome:?}");
    };
    let hits = rx.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].path, "/pay/c2b/k3y/validate");
    assert_eq!(hits[1].path, "/pay/c2b/k3y/confirm");
    let validation = hits[0].json();
    let confirmation = hits[1].json();
    assert_all_strings(&validation);
    assert_all_strings(&confirmation);
    assert_eq!(validation["OrgAccountBalance"], "");
    assert_eq!(confirmation["OrgAccountBalance"], "500.00");
    assert_eq!(confirmation["TransID"], trans_id.as_str());
    assert_eq!(confirmation["TransactionType"], "Pay Bill");
    assert_eq!(confirmation["TransAmount"], "500.00");
    assert_eq!(confirmation["BusinessShortCode"], "174379");
    assert_eq!(
        confirmation["BillRefNumber"], " Alice01 ",
        "as the customer typed it"
    );
    assert_eq!(confirmation["ThirdPartyTransID"], "inv-42");
    assert_eq!(validation["ThirdPartyTransID"], "");
    assert_eq!(
        confirmation["MSISDN"],
        hex::encode(sha2::Sha256::digest(PHONE.as_bytes()))
    );
    assert_eq!(confirmation["TransTime"].as_str().unwrap().len(), 14);

    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].receipt, trans_id);
    assert_eq!(ledger[0].channel, Channel::C2b);
    assert_eq!(ledger[0].amount, 500);
    let kinds: Vec<_> = fake
        .deliveries()
        .iter()
        .map(|d| (d.kind, d.status))
        .collect();
    assert_eq!(
        kinds,
        [
            (DeliveryKind::C2bValidation, Some(200)),
            (DeliveryKind::C2bConfirmation, Some(200))
        ]
    );
}

#[tokio::test]
async fn a_rejected_validation_moves_no_money() {
    let (fake, _tok, rx) = registered(FakeConfig::sandbox(), "Completed").await;
    rx.reply_next(
        200,
        json!({"ResultCode": "C2B00012", "ResultDesc": "Rejected"}),
    );
    let outcome = fake.pay_c2b("nobody", 100, PHONE).await;
    assert_eq!(
        outcome,
        C2bOutcome::Rejected {
            result_code: "C2B00012".into()
        }
    );
    assert_eq!(rx.hits().len(), 1, "no confirmation");
    assert!(fake.ledger().is_empty());
}

#[tokio::test]
async fn unreachable_validation_applies_the_registered_response_type() {
    let config = FakeConfig {
        c2b_validation_timeout: Duration::from_millis(200),
        ..FakeConfig::sandbox()
    };
    let (fake, _tok, rx) = registered(config.clone(), "Completed").await;
    rx.hang_on("validate");
    assert!(matches!(
        fake.pay_c2b("alice01", 100, PHONE).await,
        C2bOutcome::Completed { .. }
    ));
    assert_eq!(rx.hits_on("/pay/c2b/k3y/confirm").len(), 1);
    let validation = &fake.deliveries()[0];
    assert_eq!(validation.status, None);
    assert!(validation.error.is_some());

    let (fake, _tok, rx) = registered(config, "Cancelled").await;
    rx.hang_on("validate");
    assert_eq!(
        fake.pay_c2b("alice01", 100, PHONE).await,
        C2bOutcome::Cancelled
    );
    assert!(rx.hits_on("/pay/c2b/k3y/confirm").is_empty());
    assert!(fake.ledger().is_empty());

    // A 500 from the daemon counts as no answer too.
    let (fake, _tok, rx) = registered(FakeConfig::sandbox(), "Cancelled").await;
    rx.reply_next(500, json!({}));
    assert_eq!(
        fake.pay_c2b("alice01", 100, PHONE).await,
        C2bOutcome::Cancelled
    );
}

#[tokio::test]
async fn without_external_validation_only_the_confirmation_is_sent() {
    let (fake, _tok, rx) = registered(
        FakeConfig {
            c2b_external_validation: false,
            ..FakeConfig::sandbox()
        },
        "Completed",
    )
    .await;
    fake.pay_c2b("alice01", 100, PHONE).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].path, "/pay/c2b/k3y/confirm");
}

#[tokio::test]
async fn simulate_endpoint_runs_the_same_flow_in_sandbox_only() {
    let (fake, tok, rx) = registered(FakeConfig::sandbox(), "Completed").await;
    let body = json!({"ShortCode": 174379, "CommandID": "CustomerPayBillOnline", "Amount": 1,
                      "Msisdn": 254708374149u64, "BillRefNumber": "alice01"});
    let (status, accepted) = post(&fake, "/mpesa/c2b/v1/simulate", &tok, &body).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["ResponseCode"], "0");
    fake.eventually("the confirmation", |_| {
        (rx.hits_on("/pay/c2b/k3y/confirm").len() == 1).then_some(())
    })
    .await;
    let mut bad = body.clone();
    bad["CommandID"] = json!("CustomerBuyGoodsOnline");
    assert_error(
        &post(&fake, "/mpesa/c2b/v2/simulate", &tok, &bad).await,
        400,
        "400.002.02",
        "Bad Request - Invalid CommandID",
    );
    let mut bad = body.clone();
    bad["Msisdn"] = json!("0708374149");
    assert_eq!(
        post(&fake, "/mpesa/c2b/v2/simulate", &tok, &bad).await.1["errorCode"],
        "400.002.02"
    );

    let (fake, tok) = start(FakeConfig {
        mode: Mode::Production,
        ..FakeConfig::sandbox()
    })
    .await;
    assert_error(
        &post(&fake, "/mpesa/c2b/v1/simulate", &tok, &body).await,
        404,
        "404.001.01",
        "Resource not found",
    );
}

#[tokio::test]
async fn a_paid_stk_push_also_arrives_as_a_c2b_confirmation() {
    let (fake, tok, rx) = registered(FakeConfig::sandbox(), "Completed").await;
    let (status, _) = post(
        &fake,
        PUSH,
        &tok,
        &push_body(PHONE, 20, &rx.url("/pay/cb/stk/t")),
    )
    .await;
    assert_eq!(status, 200);
    let (callback, confirmation) = fake
        .eventually("callback and confirmation", |_| {
            let cb = rx.hits_on("/pay/cb/stk/t").into_iter().next()?;
            let conf = rx.hits_on("/pay/c2b/k3y/confirm").into_iter().next()?;
            Some((cb.json(), conf.json()))
        })
        .await;
    let receipt = callback["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Name"] == "MpesaReceiptNumber")
        .unwrap()["Value"]
        .clone();
    assert_eq!(confirmation["TransID"], receipt);
    assert_eq!(confirmation["BillRefNumber"], "alice01");
    assert_eq!(confirmation["TransAmount"], "20.00");
    assert!(
        rx.hits_on("/pay/c2b/k3y/validate").is_empty(),
        "no validation for STK"
    );
    assert_eq!(fake.ledger().len(), 1, "one payment, two notifications");
}

#[tokio::test]
async fn msisdn_can_be_masked_as_the_v2_docs_show() {
    let (fake, _tok, rx) = registered(
        FakeConfig {
            c2b_msisdn: fake_daraja::MsisdnStyle::Masked,
            c2b_external_validation: false,
            ..FakeConfig::sandbox()
        },
        "Completed",
    )
    .await;
    fake.pay_c2b("alice01", 100, PHONE).await;
    assert_eq!(rx.hits()[0].json()["MSISDN"], "2547 ***** 149");
}
