//! The client against a small Daraja stub served in-process on a loopback port. The stub
//! only records requests and replays scripted replies; the faithful fake Daraja is a
//! separate crate and is not a dependency of this one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use daraja::{
    AccountReference, Client, ClientOptions, Credentials, Environment, Error, Msisdn, ResponseType,
    ResultCode, Shortcode, StkPushRequest, StkQueryOutcome, TransactionDesc,
};
use secrecy::SecretString;
use serde_json::{Value, json};

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";
const PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

/// An HTTP status and the body to send with it.
type Scripted = (u16, String);

#[derive(Default)]
struct StubState {
    token_requests: AtomicUsize,
    /// `expires_in` exactly as the OAuth reply sends it.
    expires_in: Mutex<Option<Value>>,
    token_delay: Mutex<Duration>,
    valid_tokens: Mutex<HashSet<String>>,
    /// Scripted replies per path, used before the default success reply.
    scripted: Mutex<HashMap<String, VecDeque<Scripted>>>,
    /// Every POST as (path, headers, body).
    calls: Mutex<Vec<(String, HeaderMap, Value)>>,
}

struct Stub {
    state: Arc<StubState>,
    base: String,
}

impl Stub {
    async fn start() -> Stub {
        let state = Arc::new(StubState::default());
        let app = Router::new()
            .route("/oauth/v1/generate", get(oauth))
            .route("/{*path}", post(api))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub {
            state,
            base: format!("http://{addr}"),
        }
    }

    fn script(&self, path: &str, status: u16, body: &str) {
        let mut scripted = self.state.scripted.lock().unwrap();
        let queue = scripted.entry(path.to_owned()).or_default();
        queue.push_back((status, body.to_owned()));
    }

    fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    fn revoke_tokens(&self) {
        self.state.valid_tokens.lock().unwrap().clear();
    }

    fn calls(&self, path: &str) -> Vec<(HeaderMap, Value)> {
        let calls = self.state.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, h, b)| (h.clone(), b.clone()))
            .collect()
    }

    fn client(&self, shortcode: Shortcode) -> Client {
        self.client_with(shortcode, ClientOptions::default())
    }

    fn client_with(&self, shortcode: Shortcode, options: ClientOptions) -> Client {
        Client::with_options(
            Environment::Custom(self.base.parse().unwrap()),
            shortcode,
            credentials(SECRET),
            options,
        )
        .unwrap()
    }
}

fn credentials(consumer_secret: &str) -> Credentials {
    Credentials {
        consumer_key: KEY.into(),
        consumer_secret: SecretString::from(consumer_secret),
        passkey: SecretString::from(PASSKEY),
        initiator_name: Some("testapi".into()),
        security_credential: Some(SecretString::from("ENCRYPTED==")),
    }
}

fn paybill() -> Shortcode {
    Shortcode::Paybill {
        shortcode: "174379".into(),
    }
}

fn envelope(code: &str, message: &str) -> String {
    json!({"requestId": "req-1", "errorCode": code, "errorMessage": message}).to_string()
}

async fn oauth(State(s): State<Arc<StubState>>, headers: HeaderMap) -> Response {
    let n = s.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let delay = *s.token_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(want.as_str())
    {
        return (
            StatusCode::BAD_REQUEST,
            envelope("400.008.01", "Invalid Authentication passed"),
        )
            .into_response();
    }
    let token = format!("tok-{n}");
    s.valid_tokens.lock().unwrap().insert(token.clone());
    let expires_in = s.expires_in.lock().unwrap().clone().unwrap_or(json!(3599));
    axum::Json(json!({"access_token": token, "expires_in": expires_in})).into_response()
}

async fn api(
    State(s): State<Arc<StubState>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let path = format!("/{path}");
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    s.calls.lock().unwrap().push((path.clone(), headers, body));
    if !s.valid_tokens.lock().unwrap().contains(&bearer) {
        return reply(404, &envelope("404.001.03", "Invalid Access Token"));
    }
    let scripted = {
        let mut scripted = s.scripted.lock().unwrap();
        scripted.get_mut(&path).and_then(VecDeque::pop_front)
    };
    if let Some((status, body)) = scripted {
        return reply(status, &body);
    }
    let ok = match path.as_str() {
        "/mpesa/stkpush/v1/processrequest" => json!({
            "MerchantRequestID": "2654-4b64-97ff-b827b542881d3130",
            "CheckoutRequestID": "ws_CO_1007202409152617172396192",
            "ResponseCode": "0",
            "ResponseDescription": "Success. Request accepted for processing",
            "CustomerMessage": "Success. Request accepted for processing"}),
        "/mpesa/stkpushquery/v1/query" => json!({
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": "22205-34066-1",
            "CheckoutRequestID": "ws_CO_13012021093521236557",
            "ResultCode": "0",
            "ResultDesc": "The service request is processed successfully."}),
        "/mpesa/c2b/v2/registerurl" => json!({
            "OriginatorCoversationID": "6e86-45dd-91ac-fd5d4178ab523408729",
            "ResponseCode": "0",
            "ResponseDescription": "Success"}),
        "/mpesa/transactionstatus/v1/query" => json!({
            "OriginatorConversationID": "1236-7134259-1",
            "ConversationID": "AG_20210709_1234409f86436c583e3f",
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully."}),
        _ => return reply(404, &envelope("404.001.01", "Resource not found")),
    };
    reply(200, &ok.to_string())
}

fn reply(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_owned(),
    )
        .into_response()
}

fn push_request() -> StkPushRequest {
    StkPushRequest {
        phone: "0712 345 678".parse::<Msisdn>().unwrap(),
        amount_kes: 10,
        account_reference: AccountReference::new("alice01").unwrap(),
        description: TransactionDesc::new("Internet 1d").unwrap(),
        callback_url: "http://127.0.0.1:1/pay/cb/stk/abc".into(),
    }
}

fn decode_password(body: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["Password"].as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn stk_push_paybill_sends_what_daraja_expects() {
    let stub = Stub::start().await;
    let client = stub.client(paybill());
    let accepted = client.stk_push(&push_request()).await.unwrap();
    assert_eq!(
        accepted.checkout_request_id,
        "ws_CO_1007202409152617172396192"
    );
    assert_eq!(
        accepted.merchant_request_id,
        "2654-4b64-97ff-b827b542881d3130"
    );
    assert_eq!(
        accepted.customer_message,
        "Success. Request accepted for processing"
    );

    let calls = stub.calls("/mpesa/stkpush/v1/processrequest");
    let (headers, body) = &calls[0];
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::AUTHORIZATION], "Bearer tok-1");
    assert_eq!(body["BusinessShortCode"], json!(174379));
    assert_eq!(body["TransactionType"], "CustomerPayBillOnline");
    assert_eq!(body["PartyB"], "174379");
    assert_eq!(body["Amount"], "10");
    assert_eq!(body["PartyA"], "254712345678");
    assert_eq!(body["PhoneNumber"], "254712345678");
    assert_eq!(body["AccountReference"], "alice01");
    assert_eq!(body["TransactionDesc"], "Internet 1d");
    assert_eq!(body["CallBackURL"], "http://127.0.0.1:1/pay/cb/stk/abc");
    // One timestamp for both fields.
    let timestamp = body["Timestamp"].as_str().unwrap();
    assert!(timestamp.len() == 14 && timestamp.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(decode_password(body), format!("174379{PASSKEY}{timestamp}"));
}

#[tokio::test]
async fn stk_push_till_uses_store_and_till_numbers() {
    let stub = Stub::start().await;
    let client = stub.client(Shortcode::Till {
        store_number: "7000001".into(),
        till_number: "5000001".into(),
    });
    client.stk_push(&push_request()).await.unwrap();
    let calls = stub.calls("/mpesa/stkpush/v1/processrequest");
    let body = &calls[0].1;
    assert_eq!(body["TransactionType"], "CustomerBuyGoodsOnline");
    assert_eq!(body["BusinessShortCode"], json!(7000001));
    assert_eq!(body["PartyB"], "5000001");
    let timestamp = body["Timestamp"].as_str().unwrap();
    assert_eq!(
        decode_password(body),
        format!("7000001{PASSKEY}{timestamp}")
    );
}

#[tokio::test]
async fn token_is_cached_and_fetched_once_by_concurrent_callers() {
    let stub = Stub::start().await;
    // A slow token endpoint keeps every caller waiting on the same refresh.
    *stub.state.token_delay.lock().unwrap() = Duration::from_millis(200);
    let client = stub.client(paybill());
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.stk_query("ws_CO_1").await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(stub.token_requests(), 1);
    client.stk_push(&push_request()).await.unwrap();
    assert_eq!(stub.token_requests(), 1);
}

/// How many tokens two queries in a row fetch, given the OAuth reply's `expires_in`.
async fn tokens_for_two_queries(expires_in: Value, options: ClientOptions) -> usize {
    let stub = Stub::start().await;
    *stub.state.expires_in.lock().unwrap() = Some(expires_in);
    let client = stub.client_with(paybill(), options);
    client.stk_query("ws_CO_1").await.unwrap();
    client.stk_query("ws_CO_1").await.unwrap();
    stub.token_requests()
}

#[tokio::test]
async fn token_lifetime_is_honoured() {
    let default = ClientOptions::default;
    // "0" (a string, as Daraja sometimes sends it): already expired, so each call needs a
    // new token.
    assert_eq!(tokens_for_two_queries(json!("0"), default()).await, 2);
    assert_eq!(tokens_for_two_queries(json!("3599"), default()).await, 1);
    assert_eq!(tokens_for_two_queries(json!(3599), default()).await, 1);
    // A lifetime inside the refresh margin is used for half its length: still good for
    // the second call.
    let wide_margin = ClientOptions {
        token_refresh_margin: Duration::from_secs(3599),
        ..default()
    };
    assert_eq!(tokens_for_two_queries(json!(3599), wide_margin).await, 1);
}

#[tokio::test]
async fn refused_token_is_refreshed_and_the_call_retried_once() {
    let stub = Stub::start().await;
    let client = stub.client(paybill());
    client.stk_query("ws_CO_1").await.unwrap();
    // Daraja invalidated the token (e.g. someone else asked for a new one).
    stub.revoke_tokens();
    let accepted = client.stk_push(&push_request()).await.unwrap();
    assert_eq!(
        accepted.checkout_request_id,
        "ws_CO_1007202409152617172396192"
    );
    assert_eq!(stub.token_requests(), 2);
    let pushes = stub.calls("/mpesa/stkpush/v1/processrequest");
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[0].0[header::AUTHORIZATION], "Bearer tok-1");
    assert_eq!(pushes[1].0[header::AUTHORIZATION], "Bearer tok-2");
}

#[tokio::test]
async fn a_token_refused_twice_is_an_error_not_a_loop() {
    let stub = Stub::start().await;
    let client = stub.client(paybill());
    for _ in 0..2 {
        stub.script(
            "/mpesa/stkpushquery/v1/query",
            401,
            &envelope("401.002.01", "Error Occurred - Invalid Access Token"),
        );
    }
    let err = client.stk_query("ws_CO_1").await.unwrap_err();
    assert!(err.is_invalid_token(), "{err}");
    assert_eq!(stub.token_requests(), 2);
    assert_eq!(stub.calls("/mpesa/stkpushquery/v1/query").len(), 2);
}

#[tokio::test]
async fn error_envelopes_map_to_daraja_errors() {
    let stub = Stub::start().await;
    let client = stub.client(paybill());
    let path = "/mpesa/stkpush/v1/processrequest";
    stub.script(
        path,
        400,
        &envelope("400.002.02", "Bad Request - Invalid PhoneNumber"),
    );
    match client.stk_push(&push_request()).await.unwrap_err() {
        Error::Daraja {
            http_status,
            error_code,
            error_message,
            request_id,
        } => {
            assert_eq!(http_status, 400);
            assert_eq!(error_code, "400.002.02");
            assert_eq!(error_message, "Bad Request - Invalid PhoneNumber");
            assert_eq!(request_id.as_deref(), Some("req-1"));
        }
        other => panic!("{other:?}"),
    }

    stub.script(path, 500, &envelope("500.003.02", "Spike Arrest Violation"));
    assert!(
        client
            .stk_push(&push_request())
            .await
            .unwrap_err()
            .is_retryable()
    );

    stub.script(
        path,
        500,
        &envelope(
            "500.001.1001",
            "Unable to lock subscriber, a transaction is already in process for the current subscriber",
        ),
    );
    let err = client.stk_push(&push_request()).await.unwrap_err();
    assert!(err.is_subscriber_locked() && !err.is_retryable(), "{err}");

    // A non-zero ResponseCode in a 200 reply is a refusal too.
    stub.script(
        path,
        200,
        r#"{"MerchantRequestID":"m","CheckoutRequestID":"c","ResponseCode":"1","ResponseDescription":"Rejected"}"#,
    );
    let err = client.stk_push(&push_request()).await.unwrap_err();
    assert_eq!(err.code(), Some("1"));

    // A gateway page instead of JSON.
    stub.script(path, 502, "<html>Bad Gateway</html>");
    let err = client.stk_push(&push_request()).await.unwrap_err();
    assert!(
        matches!(err, Error::Unexpected { http_status: 502, ref detail } if detail.contains("Bad Gateway")),
        "{err:?}"
    );
    assert!(err.is_retryable());

    // 200 but not the promised fields.
    stub.script(path, 200, r#"{"ResponseCode":"0"}"#);
    let err = client.stk_push(&push_request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unexpected {
                http_status: 200,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn query_being_processed_is_pending() {
    let stub = Stub::start().await;
    let client = stub.client(paybill());
    let path = "/mpesa/stkpushquery/v1/query";
    stub.script(
        path,
        500,
        &envelope("500.001.1001", "The transaction is being processed"),
    );
    stub.script(
        path,
        200,
        r#"{"ResponseCode":"0","ResponseDescription":"The service request has been accepted successsfully",
            "MerchantRequestID":"m","CheckoutRequestID":"ws_CO_1","ResultCode":"1032","ResultDesc":"Request cancelled by user"}"#,
    );
    assert_eq!(
        client.stk_query("ws_CO_1").await.unwrap(),
        StkQueryOutcome::Pending
    );
    assert_eq!(
        client.stk_query("ws_CO_1").await.unwrap(),
        StkQueryOutcome::Completed(ResultCode::Code(1032), "Request cancelled by user".into())
    );
    // Default stub reply: success as the string "0".
    match client.stk_query("ws_CO_1").await.unwrap() {
        StkQueryOutcome::Completed(code, _) => assert!(code.is_success()),
        other => panic!("{other:?}"),
    }
    let calls = stub.calls(path);
    let body = &calls[0].1;
    assert_eq!(body["BusinessShortCode"], "174379");
    assert_eq!(body["CheckoutRequestID"], "ws_CO_1");
    let timestamp = body["Timestamp"].as_str().unwrap();
    assert_eq!(decode_password(body), format!("174379{PASSKEY}{timestamp}"));

    // The same error code with another message is a real error.
    stub.script(path, 500, &envelope("500.001.1001", "Wrong credentials"));
    assert!(matches!(
        client.stk_query("ws_CO_1").await,
        Err(Error::Daraja { .. })
    ));
}

#[tokio::test]
async fn c2b_registration() {
    let stub = Stub::start().await;
    let client = stub.client(paybill());
    client
        .register_c2b_urls(
            "https://isp.example/pay/c2b/x1/confirm",
            "https://isp.example/pay/c2b/x1/validate",
            ResponseType::Completed,
        )
        .await
        .unwrap();
    let calls = stub.calls("/mpesa/c2b/v2/registerurl");
    assert_eq!(
        calls[0].1,
        json!({"ShortCode": "174379", "ResponseType": "Completed",
               "ConfirmationURL": "https://isp.example/pay/c2b/x1/confirm",
               "ValidationURL": "https://isp.example/pay/c2b/x1/validate"})
    );
    stub.script(
        "/mpesa/c2b/v2/registerurl",
        500,
        &envelope("500.003.1001", "Urls are already registered"),
    );
    let err = client
        .register_c2b_urls(
            "https://isp.example/pay/c2b/x1/confirm",
            "https://isp.example/pay/c2b/x1/validate",
            ResponseType::Cancelled,
        )
        .await
        .unwrap_err();
    assert!(err.is_already_registered(), "{err}");
    assert_eq!(
        stub.calls("/mpesa/c2b/v2/registerurl")[1].1["ResponseType"],
        "Cancelled"
    );
}

#[tokio::test]
async fn transaction_status_request() {
    let stub = Stub::start().await;
    let client = stub.client(paybill());
    let accepted = client
        .transaction_status(
            "NLJ7RT61SV",
            "https://isp.example/pay/ts/result",
            "https://isp.example/pay/ts/timeout",
        )
        .await
        .unwrap();
    assert_eq!(accepted.conversation_id, "AG_20210709_1234409f86436c583e3f");
    assert_eq!(accepted.originator_conversation_id, "1236-7134259-1");
    let calls = stub.calls("/mpesa/transactionstatus/v1/query");
    let body = &calls[0].1;
    assert_eq!(body["Initiator"], "testapi");
    assert_eq!(body["SecurityCredential"], "ENCRYPTED==");
    assert_eq!(body["CommandID"], "TransactionStatusQuery");
    assert_eq!(body["TransactionID"], "NLJ7RT61SV");
    assert_eq!(body["PartyA"], "174379");
    assert_eq!(body["IdentifierType"], "4");
    assert_eq!(body["ResultURL"], "https://isp.example/pay/ts/result");
    assert_eq!(
        body["QueueTimeOutURL"],
        "https://isp.example/pay/ts/timeout"
    );
}

#[tokio::test]
async fn bad_credentials_fail_at_oauth() {
    let stub = Stub::start().await;
    let client = Client::new(
        Environment::Custom(stub.base.parse().unwrap()),
        paybill(),
        credentials("wrong"),
    )
    .unwrap();
    let err = client.stk_query("ws_CO_1").await.unwrap_err();
    assert_eq!(err.code(), Some("400.008.01"), "{err}");
    assert!(stub.calls("/mpesa/stkpushquery/v1/query").is_empty());
}

#[tokio::test]
async fn requests_time_out() {
    // A server that accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let client = Client::with_options(
        Environment::Custom(format!("http://{addr}").parse().unwrap()),
        paybill(),
        credentials(SECRET),
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    match client.stk_query("ws_CO_1").await.unwrap_err() {
        Error::Http(e) => assert!(e.is_timeout(), "{e}"),
        other => panic!("{other:?}"),
    }
    held.abort();
}
