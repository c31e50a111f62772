use std::time::Duration;

use fake_daraja::{FakeConfig, FakeDaraja};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn issues_a_token_with_expires_in_as_a_number_or_a_string() {
    let fake = FakeDaraja::start(FakeConfig::sandbox()).await;
    let (status, body) = oauth(&fake, "test-key", "test-secret", "client_credentials").await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 3599);
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 20));

    let fake = FakeDaraja::start(FakeConfig {
        expires_in_as_string: true,
        ..FakeConfig::sandbox()
    })
    .await;
    let (_, body) = oauth(&fake, "test-key", "test-secret", "client_credentials").await;
    assert_eq!(body["expires_in"], "3599");
}

#[tokio::test]
async fn refuses_bad_grant_type_and_bad_credentials() {
    let fake = FakeDaraja::start(FakeConfig::sandbox()).await;
    let got = oauth(&fake, "test-key", "test-secret", "password").await;
    assert_error(&got, 400, "400.008.02", "Invalid grant type passed");
    let got = oauth(&fake, "test-key", "wrong", "client_credentials").await;
    assert_error(&got, 400, "400.008.01", "Invalid Authentication passed");

    // Bearer instead of Basic, the phpNuxBill plugin's mistake.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/oauth/v1/generate?grant_type=client_credentials",
            fake.base_url()
        ))
        .bearer_auth("dGVzdC1rZXk6dGVzdC1zZWNyZXQ=")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn unknown_expired_and_superseded_tokens_get_404_001_03() {
    let fake = FakeDaraja::start(FakeConfig {
        token_lifetime: Duration::from_millis(300),
        ..FakeConfig::sandbox()
    })
    .await;
    let body = push_body(PHONE, 1, "https://example.com/pay/cb/x");
    let got = post(&fake, PUSH, "made-up", &body).await;
    assert_error(&got, 404, "404.001.03", "Invalid Access Token");

    // A new token invalidates the previous one (Daraja's FAQ).
    let first = token(&fake).await;
    let second = token(&fake).await;
    assert_error(
        &post(&fake, QUERY, &first, &query_body("ws_CO_x")).await,
        404,
        "404.001.03",
        "Invalid Access Token",
    );
    let got = post(&fake, QUERY, &second, &query_body("ws_CO_x")).await;
    assert_eq!(got.1["errorCode"], "400.002.02", "the live token passes");

    // Expiry: poll until the token dies rather than sleeping a fixed time.
    let mut expired = false;
    for _ in 0..200 {
        let got = post(&fake, QUERY, &second, &query_body("ws_CO_x")).await;
        if got.1["errorCode"] == "404.001.03" {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(expired, "token never expired");
}

#[tokio::test]
async fn tokens_can_coexist_and_be_expired_by_the_test() {
    let fake = FakeDaraja::start(FakeConfig {
        new_token_invalidates_previous: false,
        ..FakeConfig::sandbox()
    })
    .await;
    let first = token(&fake).await;
    let _second = token(&fake).await;
    let got = post(&fake, QUERY, &first, &query_body("ws_CO_x")).await;
    assert_eq!(got.1["errorCode"], "400.002.02");
    fake.expire_tokens();
    let got = post(&fake, QUERY, &first, &query_body("ws_CO_x")).await;
    assert_eq!(got.1["errorCode"], "404.001.03");
}

#[tokio::test]
async fn records_requests_without_secrets_and_answers_unknown_paths() {
    let (fake, tok) = start(FakeConfig::sandbox()).await;
    let got = post(&fake, "/mpesa/nothing/v1/here", &tok, &json!({})).await;
    assert_error(&got, 404, "404.001.01", "Resource not found");
    let resp = reqwest::Client::new()
        .get(format!("{}{PUSH}", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);

    let requests = fake.requests();
    let token_calls = requests
        .iter()
        .filter(|r| r.path == "/oauth/v1/generate")
        .count();
    assert_eq!(token_calls, 1);
    assert_eq!(
        requests[0].query.as_deref(),
        Some("grant_type=client_credentials")
    );
    assert_eq!(requests[1].status, 404);
    assert_eq!(requests[2].method, "GET");
    assert!(requests.iter().all(|r| !r.body.contains("test-secret")));
}
