use fake_daraja::{
    DeliveryKind, FakeConfig, FakeDaraja, Initiator, STATUS_NOT_FOUND_CODE, StatusMode,
};
use serde_json::{Value, json};

use crate::support::*;

const STATUS: &str = "/mpesa/transactionstatus/v1/query";

fn status_body(rx: &Receiver, receipt: &str) -> Value {
    json!({
        "Initiator": "testapi",
        "SecurityCredential": "ZW5jcnlwdGVk",
        "CommandID": "TransactionStatusQuery",
        "TransactionID": receipt,
        "OriginalConversationID": "",
        "PartyA": "174379",
        "IdentifierType": "4",
        "ResultURL": rx.url("/pay/ts/result"),
        "QueueTimeOutURL": rx.url("/pay/ts/timeout"),
        "Remarks": "OK",
        "Occasion": "recon",
    })
}

async fn result_for(fake: &FakeDaraja, rx: &Receiver, path: &str) -> Value {
    fake.eventually("the status result", |_| {
        rx.hits_on(path).first().map(|h| h.json())
    })
    .await
}

fn parameter<'a>(result: &'a Value, key: &str) -> &'a Value {
    result["Result"]["ResultParameters"]["ResultParameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Key"] == key)
        .map(|p| &p["Value"])
        .unwrap()
}

#[tokio::test]
async fn a_known_receipt_is_answered_at_the_result_url() {
    let (fake, tok) = start(FakeConfig::sandbox()).await;
    let rx = Receiver::start().await;
    let fake_daraja::C2bOutcome::Completed { trans_id } = fake.pay_c2b("alice01", 300, PHONE).await
    else {
        panic!("no registration, so nothing can refuse the payment");
    };
    let (status, accepted) = post(&fake, STATUS, &tok, &status_body(&rx, &trans_id)).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["ResponseCode"], "0");
    assert!(
        accepted["ConversationID"]
            .as_str()
            .unwrap()
            .starts_with("AG_")
    );

    let result = result_for(&fake, &rx, "/pay/ts/result").await;
    assert_eq!(result["Result"]["ResultCode"], 0);
    assert_eq!(
        result["Result"]["ConversationID"],
        accepted["ConversationID"]
    );
    assert_eq!(
        result["Result"]["OriginatorConversationID"],
        accepted["OriginatorConversationID"]
    );
    assert_eq!(parameter(&result, "ReceiptNo"), trans_id.as_str());
    assert_eq!(parameter(&result, "Amount"), "300");
    assert_eq!(parameter(&result, "TransactionStatus"), "Completed");
    assert_eq!(
        result["Result"]["ReferenceData"]["ReferenceItem"]["Value"],
        "recon"
    );
}

#[tokio::test]
async fn an_unknown_receipt_gets_a_not_found_result() {
    let (fake, tok) = start(FakeConfig::sandbox()).await;
    let rx = Receiver::start().await;
    assert_eq!(
        post(&fake, STATUS, &tok, &status_body(&rx, "ZZZ0000000"))
            .await
            .0,
        200
    );
    let result = result_for(&fake, &rx, "/pay/ts/result").await;
    assert_eq!(result["Result"]["ResultCode"], STATUS_NOT_FOUND_CODE);
    assert!(result["Result"].get("ResultParameters").is_none());
}

#[tokio::test]
async fn status_requests_are_validated() {
    let (fake, tok) = start(FakeConfig::sandbox()).await;
    let rx = Receiver::start().await;
    let cases = [
        ("Initiator", json!(""), "Initiator"),
        ("SecurityCredential", json!(null), "SecurityCredential"),
        ("CommandID", json!("TransactionStatus"), "CommandID"),
        ("TransactionID", json!(""), "TransactionID"),
        ("PartyA", json!("600000"), "PartyA"),
        ("IdentifierType", json!("9"), "IdentifierType"),
        (
            "ResultURL",
            json!("https://example.com/sql/result"),
            "ResultURL",
        ),
        (
            "QueueTimeOutURL",
            json!("ftp://example.com/t"),
            "QueueTimeOutURL",
        ),
    ];
    for (field, value, name) in cases {
        let mut body = status_body(&rx, "ABC1234567");
        body[field] = value;
        assert_error(
            &post(&fake, STATUS, &tok, &body).await,
            400,
            "400.002.02",
            &format!("Bad Request - Invalid {name}"),
        );
    }
    assert!(rx.hits().is_empty());
}

#[tokio::test]
async fn queue_timeout_and_wrong_initiator_modes() {
    let (fake, tok) = start(FakeConfig {
        initiator: Some(Initiator {
            name: "jasiyo-api".into(),
            security_credential: "right".to_owned().into(),
        }),
        ..FakeConfig::sandbox()
    })
    .await;
    let rx = Receiver::start().await;
    assert_eq!(
        post(&fake, STATUS, &tok, &status_body(&rx, "ABC1234567"))
            .await
            .0,
        200
    );
    let result = result_for(&fake, &rx, "/pay/ts/result").await;
    assert_eq!(result["Result"]["ResultCode"], 2001);

    fake.set_status_mode(StatusMode::QueueTimeout);
    let mut body = status_body(&rx, "ABC1234567");
    body["Initiator"] = json!("jasiyo-api");
    body["SecurityCredential"] = json!("right");
    assert_eq!(post(&fake, STATUS, &tok, &body).await.0, 200);
    result_for(&fake, &rx, "/pay/ts/timeout").await;
    // The receiver sees the POST before the fake records the answer: wait for both.
    let kinds: Vec<_> = fake
        .eventually("two delivery records", |f| {
            let d = f.deliveries();
            (d.len() == 2).then_some(d)
        })
        .await
        .iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(
        kinds,
        [DeliveryKind::StatusResult, DeliveryKind::StatusTimeout]
    );
}
