//! Raw Daraja calls and a tiny daemon stand-in that receives the fake's callbacks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use chrono::Utc;
use fake_daraja::{FakeConfig, FakeDaraja, SANDBOX_PASSKEY, SANDBOX_SHORTCODE};
use serde_json::{Value, json};

pub(crate) const PHONE: &str = "254708374149";

pub(crate) async fn start(config: FakeConfig) -> (FakeDaraja, String) {
    let fake = FakeDaraja::start(config).await;
    let token = token(&fake).await;
    (fake, token)
}

pub(crate) async fn token(fake: &FakeDaraja) -> String {
    let (status, body) = oauth(fake, "test-key", "test-secret", "client_credentials").await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn oauth(fake: &FakeDaraja, key: &str, secret: &str, grant: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/oauth/v1/generate?grant_type={grant}",
            fake.base_url()
        ))
        .basic_auth(key, Some(secret))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// POSTs `body` as JSON with the bearer token.
pub(crate) async fn post(fake: &FakeDaraja, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// POSTs raw bytes with the given content type (or none).
pub(crate) async fn post_raw(
    fake: &FakeDaraja,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn assert_error(got: &(u16, Value), status: u16, code: &str, message: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["errorCode"], code, "{}", got.1);
    assert_eq!(got.1["errorMessage"], message, "{}", got.1);
    assert!(got.1["requestId"].as_str().is_some_and(|s| !s.is_empty()));
}

/// A push Safaricom accepts, for the sandbox paybill.
pub(crate) fn push_body(phone: &str, amount: u64, callback: &str) -> Value {
    let ts = fake_daraja::nairobi_timestamp(Utc::now());
    json!({
        "BusinessShortCode": 174379,
        "Password": fake_daraja::stk_password(SANDBOX_SHORTCODE, SANDBOX_PASSKEY, &ts),
        "Timestamp": ts,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": amount.to_string(),
        "PartyA": phone,
        "PartyB": "174379",
        "PhoneNumber": phone,
        "CallBackURL": callback,
        "AccountReference": "alice01",
        "TransactionDesc": "Internet",
    })
}

pub(crate) fn query_body(checkout_request_id: &str) -> Value {
    let ts = fake_daraja::nairobi_timestamp(Utc::now());
    json!({
        "BusinessShortCode": "174379",
        "Password": fake_daraja::stk_password(SANDBOX_SHORTCODE, SANDBOX_PASSKEY, &ts),
        "Timestamp": ts,
        "CheckoutRequestID": checkout_request_id,
    })
}

pub(crate) const PUSH: &str = "/mpesa/stkpush/v1/processrequest";
pub(crate) const QUERY: &str = "/mpesa/stkpushquery/v1/query";

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub(crate) path: String,
    pub(crate) body: String,
}

impl Hit {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct ReceiverState {
    hits: Vec<Hit>,
    /// Scripted answers, used in order; when empty: 200 with an accepting body.
    replies: VecDeque<(u16, Value)>,
    /// When set, requests to paths containing this never get an answer.
    hang_on: Option<String>,
}

/// Stands in for the daemon: records every POST and answers as scripted.
pub(crate) struct Receiver {
    base: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, state }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn reply_next(&self, status: u16, body: Value) {
        self.state.lock().unwrap().replies.push_back((status, body));
    }

    pub(crate) fn hang_on(&self, path_part: &str) {
        self.state.lock().unwrap().hang_on = Some(path_part.to_owned());
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    pub(crate) fn hits_on(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let path = uri.path().to_owned();
    let (reply, hang) = {
        let mut st = state.lock().unwrap();
        st.hits.push(Hit {
            path: path.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let hang = st.hang_on.as_deref().is_some_and(|p| path.contains(p));
        (st.replies.pop_front(), hang)
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let (status, body) =
        reply.unwrap_or((200, json!({"ResultCode": "0", "ResultDesc": "Accepted"})));
    (StatusCode::from_u16(status).unwrap(), axum::Json(body))
}
