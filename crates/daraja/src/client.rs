//! The HTTP side: OAuth token management and the four calls the daemon makes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::error::Error;
use crate::password::{nairobi_timestamp, password};
use crate::types::{
    Credentials, Environment, ResponseType, ResultCode, Shortcode, StkPushAccepted, StkPushRequest,
    StkQueryOutcome, TransactionStatusAccepted,
};

const OAUTH: &str = "/oauth/v1/generate?grant_type=client_credentials";
const STK_PUSH: &str = "/mpesa/stkpush/v1/processrequest";
const STK_QUERY: &str = "/mpesa/stkpushquery/v1/query";
const C2B_REGISTER: &str = "/mpesa/c2b/v2/registerurl";
const TRANSACTION_STATUS: &str = "/mpesa/transactionstatus/v1/query";

/// Safaricom refuses callback URLs containing these (case-insensitive); checking here
/// turns a vague `400.002.02` into a message naming the word.
const FORBIDDEN_URL_WORDS: &[&str] = &[
    "m-pesa",
    "mpesa",
    "safaricom",
    "exe",
    "cmd",
    "sql",
    "query",
    "ngrok",
    "mockbin",
    "requestbin",
];

/// Timeouts and the token refresh margin.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole request, connect to last byte.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Refresh a token this long before Daraja says it expires, so a request never leaves
    /// with a token that dies in flight.
    pub token_refresh_margin: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            token_refresh_margin: Duration::from_secs(60),
        }
    }
}

/// A Daraja client for one shortcode. Cheap to clone; clones share the HTTP connection
/// pool and the token, because Daraja may invalidate the previous token whenever a new one
/// is issued, so all workers must use one.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    production: bool,
    shortcode: Shortcode,
    credentials: Credentials,
    refresh_margin: Duration,
    /// Held across the OAuth request: callers that find no valid token queue here and get
    /// the one the first of them fetched.
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("shortcode", &self.inner.shortcode)
            .finish_non_exhaustive()
    }
}

/// A reply read to the end, before deciding what it means.
struct Reply {
    status: u16,
    json: Option<Value>,
    /// The start of a non-JSON body, for error messages.
    snippet: String,
}

impl Reply {
    async fn read(resp: reqwest::Response) -> Result<Reply, Error> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let json = serde_json::from_slice(&bytes).ok();
        let snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        Ok(Reply {
            status,
            json,
            snippet,
        })
    }

    /// Daraja's error envelope, whatever the HTTP status (it is usually 4xx/5xx, but the
    /// envelope is what carries the meaning).
    fn envelope(&self) -> Option<Error> {
        let o = self.json.as_ref()?.as_object()?;
        let code = text(o.get("errorCode"))?;
        Some(Error::Daraja {
            http_status: self.status,
            error_code: code,
            error_message: text(o.get("errorMessage")).unwrap_or_default(),
            request_id: text(o.get("requestId")),
        })
    }

    fn is_invalid_token(&self) -> bool {
        self.status == 401 || self.envelope().is_some_and(|e| e.is_invalid_token())
    }

    /// The JSON object of a successful reply, or the error it stands for.
    fn into_object(self) -> Result<serde_json::Map<String, Value>, Error> {
        if let Some(e) = self.envelope() {
            return Err(e);
        }
        match self.json {
            Some(Value::Object(o)) if (200..300).contains(&self.status) => Ok(o),
            _ => Err(Error::Unexpected {
                http_status: self.status,
                detail: self.snippet,
            }),
        }
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A `ResponseCode` other than 0 in a 200 reply is a refusal too; report it like the
/// envelope.
fn check_response_code(o: &serde_json::Map<String, Value>, http_status: u16) -> Result<(), Error> {
    match o.get("ResponseCode").and_then(ResultCode::from_json) {
        None | Some(ResultCode::Code(0)) => Ok(()),
        Some(code) => Err(Error::Daraja {
            http_status,
            error_code: code.to_string(),
            error_message: text(o.get("ResponseDescription")).unwrap_or_default(),
            request_id: None,
        }),
    }
}

impl Client {
    /// A client with the default timeouts. Checks the configuration; does not contact
    /// Daraja (the first call fetches a token).
    pub fn new(
        env: Environment,
        shortcode: Shortcode,
        credentials: Credentials,
    ) -> Result<Client, Error> {
        Client::with_options(env, shortcode, credentials, ClientOptions::default())
    }

    pub fn with_options(
        env: Environment,
        shortcode: Shortcode,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        shortcode.validate()?;
        let required = [
            ("consumer key", credentials.consumer_key.as_str()),
            (
                "consumer secret",
                credentials.consumer_secret.expose_secret(),
            ),
            ("passkey", credentials.passkey.expose_secret()),
        ];
        for (what, value) in required {
            if value.trim().is_empty() {
                return Err(Error::Invalid(format!("the Daraja {what} is empty")));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .build()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url: env.base_url(),
                production: env == Environment::Production,
                shortcode,
                credentials,
                refresh_margin: options.token_refresh_margin,
                token: Mutex::new(None),
            }),
        })
    }

    pub fn shortcode(&self) -> &Shortcode {
        &self.inner.shortcode
    }

    /// Send the payment prompt to the customer's phone. `Ok` means Daraja accepted the
    /// request, not that anyone paid: the result comes by callback or STK Query, keyed by
    /// the returned `checkout_request_id`.
    pub async fn stk_push(&self, req: &StkPushRequest) -> Result<StkPushAccepted, Error> {
        if req.amount_kes < 1 {
            return Err(Error::Invalid("the amount must be at least KES 1".into()));
        }
        self.check_url("callback URL", &req.callback_url)?;
        let sc = &self.inner.shortcode;
        let business: u64 = sc
            .business_shortcode()
            .parse()
            .map_err(|_| Error::Invalid("shortcode is not a number".into()))?;
        // One clock read for both fields (see `password`).
        let timestamp = nairobi_timestamp(Utc::now());
        let password = password(
            sc.business_shortcode(),
            &self.inner.credentials.passkey,
            &timestamp,
        );
        // Types as in Safaricom's sample request.
        let body = json!({
            "BusinessShortCode": business,
            "Password": password.expose_secret(),
            "Timestamp": timestamp,
            "TransactionType": sc.transaction_type(),
            "Amount": req.amount_kes.to_string(),
            "PartyA": req.phone.as_str(),
            "PartyB": sc.party_b(),
            "PhoneNumber": req.phone.as_str(),
            "CallBackURL": req.callback_url,
            "AccountReference": req.account_reference.as_str(),
            "TransactionDesc": req.description.as_str(),
        });
        let reply = self.post(STK_PUSH, &body).await?;
        let status = reply.status;
        let o = reply.into_object()?;
        check_response_code(&o, status)?;
        let field = |key: &str| {
            text(o.get(key)).ok_or_else(|| Error::Unexpected {
                http_status: status,
                detail: format!("STK Push reply without {key}"),
            })
        };
        Ok(StkPushAccepted {
            merchant_request_id: field("MerchantRequestID")?,
            checkout_request_id: field("CheckoutRequestID")?,
            customer_message: text(o.get("CustomerMessage")).unwrap_or_default(),
        })
    }

    /// Ask what became of a push. "The transaction is being processed" (an HTTP 500
    /// envelope while the prompt is open) is [`StkQueryOutcome::Pending`], not an error.
    /// A `Completed` success carries no receipt and no amount.
    pub async fn stk_query(&self, checkout_request_id: &str) -> Result<StkQueryOutcome, Error> {
        let id = checkout_request_id.trim();
        if id.is_empty() {
            return Err(Error::Invalid("empty CheckoutRequestID".into()));
        }
        let sc = self.inner.shortcode.business_shortcode();
        let timestamp = nairobi_timestamp(Utc::now());
        let password = password(sc, &self.inner.credentials.passkey, &timestamp);
        let body = json!({
            "BusinessShortCode": sc,
            "Password": password.expose_secret(),
            "Timestamp": timestamp,
            "CheckoutRequestID": id,
        });
        let reply = self.post(STK_QUERY, &body).await?;
        let status = reply.status;
        let o = match reply.into_object() {
            Ok(o) => o,
            Err(Error::Daraja {
                ref error_code,
                ref error_message,
                ..
            }) if error_code == "500.001.1001"
                && error_message
                    .to_ascii_lowercase()
                    .contains("being processed") =>
            {
                return Ok(StkQueryOutcome::Pending);
            }
            Err(e) => return Err(e),
        };
        check_response_code(&o, status)?;
        let code = o
            .get("ResultCode")
            .and_then(ResultCode::from_json)
            .ok_or_else(|| Error::Unexpected {
                http_status: status,
                detail: "STK Query reply without ResultCode".into(),
            })?;
        Ok(StkQueryOutcome::Completed(
            code,
            text(o.get("ResultDesc")).unwrap_or_default(),
        ))
    }

    /// Register the C2B confirmation and validation URLs (API v2). In production this works
    /// once per shortcode; again gives an error for which
    /// [`Error::is_already_registered`] is true.
    pub async fn register_c2b_urls(
        &self,
        confirmation: &str,
        validation: &str,
        on_timeout: ResponseType,
    ) -> Result<(), Error> {
        self.check_url("confirmation URL", confirmation)?;
        self.check_url("validation URL", validation)?;
        let body = json!({
            "ShortCode": self.inner.shortcode.business_shortcode(),
            "ResponseType": on_timeout.as_str(),
            "ConfirmationURL": confirmation,
            "ValidationURL": validation,
        });
        let reply = self.post(C2B_REGISTER, &body).await?;
        let status = reply.status;
        check_response_code(&reply.into_object()?, status)
    }

    /// Ask for the status of a transaction by its receipt. Needs `initiator_name` and
    /// `security_credential`. The answer is POSTed later to `result_url` (parse it with
    /// [`crate::callbacks::parse_transaction_status_result`]), or to `timeout_url` if
    /// M-Pesa gives up.
    pub async fn transaction_status(
        &self,
        receipt: &str,
        result_url: &str,
        timeout_url: &str,
    ) -> Result<TransactionStatusAccepted, Error> {
        let creds = &self.inner.credentials;
        let (Some(initiator), Some(credential)) =
            (&creds.initiator_name, &creds.security_credential)
        else {
            return Err(Error::Invalid(
                "Transaction Status needs an initiator name and security credential".into(),
            ));
        };
        let receipt = receipt.trim();
        if receipt.is_empty()
            || receipt.len() > 20
            || !receipt.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::Invalid(format!(
                "{receipt:?} is not a receipt number"
            )));
        }
        self.check_url("result URL", result_url)?;
        self.check_url("timeout URL", timeout_url)?;
        let body = json!({
            "Initiator": initiator,
            "SecurityCredential": credential.expose_secret(),
            "CommandID": "TransactionStatusQuery",
            "TransactionID": receipt,
            "PartyA": self.inner.shortcode.business_shortcode(),
            // 4: an organisation shortcode.
            "IdentifierType": "4",
            "ResultURL": result_url,
            "QueueTimeOutURL": timeout_url,
            "Remarks": "Reconciliation",
            "Occasion": "Reconciliation",
        });
        let reply = self.post(TRANSACTION_STATUS, &body).await?;
        let status = reply.status;
        let o = reply.into_object()?;
        check_response_code(&o, status)?;
        Ok(TransactionStatusAccepted {
            conversation_id: text(o.get("ConversationID")).unwrap_or_default(),
            // Safaricom spells it without the second "n" in some replies.
            originator_conversation_id: text(o.get("OriginatorConversationID"))
                .or_else(|| text(o.get("OriginatorCoversationID")))
                .unwrap_or_default(),
        })
    }

    fn check_url(&self, what: &str, url: &str) -> Result<(), Error> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Error::Invalid(format!("{what} {url:?} is not a URL: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if !self.inner.production => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "{what} {url:?} must be https{}",
                    if self.inner.production {
                        " in production"
                    } else {
                        " or http"
                    }
                )));
            }
        }
        let lower = url.to_ascii_lowercase();
        if let Some(word) = FORBIDDEN_URL_WORDS.iter().find(|w| lower.contains(*w)) {
            return Err(Error::Invalid(format!(
                "{what} {url:?} contains {word:?}, which Safaricom refuses in callback URLs"
            )));
        }
        Ok(())
    }

    /// POST with a bearer token; a rejected token is dropped and the call made once more
    /// with a fresh one (a gateway rejection means the request was not acted on, so the
    /// resend is safe even for STK Push).
    async fn post(&self, path: &str, body: &Value) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.inner.base_url);
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let resp = self
                .inner
                .http
                .post(&url)
                .bearer_auth(token.expose_secret())
                .json(body)
                .send()
                .await?;
            let reply = Reply::read(resp).await?;
            tracing::debug!(path, status = reply.status, "daraja call");
            if !retried && reply.is_invalid_token() {
                tracing::info!(
                    path,
                    status = reply.status,
                    "daraja refused the token; refreshing"
                );
                self.forget_token(&token).await;
                retried = true;
                continue;
            }
            return Ok(reply);
        }
    }

    /// The cached token, or a new one. Concurrent callers wait on the lock for the single
    /// refresh instead of each asking Daraja, which would also invalidate one another's
    /// tokens.
    async fn token(&self) -> Result<SecretString, Error> {
        let mut slot = self.inner.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    /// Drop the cached token if it is still the one that was refused; another caller may
    /// already have replaced it.
    async fn forget_token(&self, refused: &SecretString) {
        let mut slot = self.inner.token.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == refused.expose_secret())
        {
            *slot = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, Error> {
        let creds = &self.inner.credentials;
        let asked_at = Instant::now();
        let resp = self
            .inner
            .http
            .get(format!("{}{OAUTH}", self.inner.base_url))
            .basic_auth(
                &creds.consumer_key,
                Some(creds.consumer_secret.expose_secret()),
            )
            .send()
            .await?;
        let reply = Reply::read(resp).await?;
        tracing::debug!(status = reply.status, "daraja token request");
        if let Some(e) = reply.envelope() {
            return Err(e);
        }
        let unexpected = |detail: &str| Error::Unexpected {
            http_status: reply.status,
            detail: detail.to_owned(),
        };
        if !(200..300).contains(&reply.status) {
            // Error bodies hold no token, so they can be quoted.
            return Err(unexpected(&format!("OAuth failed: {}", reply.snippet)));
        }
        // A success body is never quoted: it holds the token.
        let o = reply
            .json
            .as_ref()
            .and_then(Value::as_object)
            .ok_or_else(|| unexpected("OAuth reply is not a JSON object"))?;
        let token = match o.get("access_token") {
            Some(Value::String(s)) if !s.is_empty() => SecretString::from(s.as_str()),
            _ => return Err(unexpected("OAuth reply without access_token")),
        };
        // Documented as a number, seen as a string ("3599").
        let expires_in = match o.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| unexpected("OAuth reply without a valid expires_in"))?;
        let lifetime = Duration::from_secs(expires_in);
        // Measured from when the request left, so the time the reply took counts as used.
        // A lifetime shorter than twice the margin (tests, or an odd reply) is used for half
        // its length instead.
        let usable = if lifetime > self.inner.refresh_margin * 2 {
            lifetime - self.inner.refresh_margin
        } else {
            lifetime / 2
        };
        Ok(CachedToken {
            value: token,
            refresh_at: asked_at + usable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AccountReference, Msisdn, TransactionDesc};

    fn client(env: Environment) -> Client {
        Client::new(
            env,
            Shortcode::Paybill {
                shortcode: "174379".into(),
            },
            Credentials {
                consumer_key: "k".into(),
                consumer_secret: SecretString::from("s"),
                passkey: SecretString::from("p"),
                initiator_name: None,
                security_credential: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn callback_urls_are_checked() {
        let sandbox = client(Environment::Sandbox);
        assert!(
            sandbox
                .check_url("u", "https://isp.example/pay/cb/stk/abc")
                .is_ok()
        );
        assert!(
            sandbox
                .check_url("u", "http://127.0.0.1:8080/pay/cb/x")
                .is_ok()
        );
        for bad in [
            "https://isp.example/mpesa/callback",
            "https://isp.example/M-PESA/cb",
            "https://isp.example/pay?query=1",
            "https://abc.ngrok.io/pay",
            "https://isp.example/pay/cmd",
            "ftp://isp.example/pay",
            "not a url",
        ] {
            assert!(sandbox.check_url("u", bad).is_err(), "{bad}");
        }
        let production = client(Environment::Production);
        assert!(production.check_url("u", "http://isp.example/pay").is_err());
        assert!(production.check_url("u", "https://isp.example/pay").is_ok());
    }

    #[test]
    fn configuration_is_checked() {
        let creds = |secret: &str| Credentials {
            consumer_key: "k".into(),
            consumer_secret: SecretString::from(secret),
            passkey: SecretString::from("p"),
            initiator_name: None,
            security_credential: None,
        };
        let paybill = Shortcode::Paybill {
            shortcode: "174379".into(),
        };
        assert!(Client::new(Environment::Sandbox, paybill.clone(), creds("")).is_err());
        assert!(
            Client::new(
                Environment::Sandbox,
                Shortcode::Paybill {
                    shortcode: "abc".into()
                },
                creds("s")
            )
            .is_err()
        );
        let c = Client::new(Environment::Sandbox, paybill, creds("hidden-secret")).unwrap();
        assert!(!format!("{c:?}").contains("hidden-secret"));
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_sending() {
        // The base URL points nowhere: reaching the network would fail differently.
        let c = client(Environment::Custom("http://127.0.0.1:9".parse().unwrap()));
        let req = StkPushRequest {
            phone: "0712345678".parse::<Msisdn>().unwrap(),
            amount_kes: 0,
            account_reference: AccountReference::new("alice").unwrap(),
            description: TransactionDesc::new("Internet").unwrap(),
            callback_url: "https://isp.example/pay/cb/1".into(),
        };
        assert!(matches!(c.stk_push(&req).await, Err(Error::Invalid(_))));
        let req = StkPushRequest {
            amount_kes: 10,
            callback_url: "https://isp.example/mpesa/cb".into(),
            ..req
        };
        assert!(matches!(c.stk_push(&req).await, Err(Error::Invalid(_))));
        assert!(matches!(c.stk_query(" ").await, Err(Error::Invalid(_))));
        assert!(matches!(
            c.transaction_status("NLJ7RT61SV", "https://a.example/r", "https://a.example/t")
                .await,
            Err(Error::Invalid(_))
        ));
    }
}
