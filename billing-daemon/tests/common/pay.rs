//! The daemon with M-Pesa against the fake Daraja: its HTTP server on a loopback port (so
//! the fake can deliver callbacks to it) and the reconciler running, on a `#[sqlx::test]`
//! database with two expired subscribers, alice (id 1) and bob (id 2), on a 1000 KES plan.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use billing_daemon::api::app;
use billing_daemon::payments::{Mpesa, MpesaSettings, reconciler};
use fake_daraja::{FakeConfig, FakeDaraja, SANDBOX_PASSKEY};
use serde_json::{Value, json};
use sqlx::PgPool;

pub const PRICE: i64 = 1000;
pub const C2B_TOKEN: &str = "c2btokenc2btokenc2btokenc2btoken42";

/// The daemon's M-Pesa settings for the fake at `fake_url`, callbacks to `public_url`, with
/// `more` settings over the defaults.
/// The daemon's M-Pesa settings for a fake at `fake_url`, as environment variables.
pub fn mpesa_env(
    fake_url: &str,
    public_url: &str,
    more: &[(&'static str, &str)],
) -> HashMap<&'static str, String> {
    let env: HashMap<&str, String> = HashMap::from([
        ("JASIYO_MPESA_ENVIRONMENT", fake_url.to_owned()),
        ("JASIYO_MPESA_CONSUMER_KEY", "test-key".to_owned()),
        ("JASIYO_MPESA_CONSUMER_SECRET", "test-secret".to_owned()),
        ("JASIYO_MPESA_PASSKEY", SANDBOX_PASSKEY.to_owned()),
        ("JASIYO_MPESA_SHORTCODE", "174379".to_owned()),
        ("JASIYO_PUBLIC_URL", public_url.to_owned()),
        ("JASIYO_MPESA_C2B_TOKEN", C2B_TOKEN.to_owned()),
        ("JASIYO_MPESA_QUERY_AFTER", "0.3".to_owned()),
        ("JASIYO_MPESA_QUERY_INTERVAL", "0.3".to_owned()),
        ("JASIYO_MPESA_QUERY_DEADLINE", "20".to_owned()),
    ]);
    env.into_iter()
        .chain(more.iter().map(|(k, v)| (*k, (*v).to_owned())))
        .collect()
}

pub fn mpesa(fake_url: &str, public_url: &str, more: &[(&'static str, &str)]) -> Mpesa {
    let env = mpesa_env(fake_url, public_url, more);
    let settings = MpesaSettings::load(None, &|k| env.get(k).cloned())
        .unwrap()
        .unwrap();
    Mpesa::new(settings).unwrap()
}

pub struct Pay {
    /// `http://127.0.0.1:<port>` of the daemon.
    pub base: String,
    /// An API token.
    pub token: String,
    pub pool: PgPool,
    pub fake: FakeDaraja,
    pub http: reqwest::Client,
    _reconciler: reconciler::Reconciler,
}

impl Pay {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, FakeConfig::sandbox()).await
    }

    pub async fn start_with(pool: PgPool, config: FakeConfig) -> Self {
        Self::start_with_env(pool, config, &[]).await
    }

    /// With more daemon settings (`JASIYO_MPESA_*`) than the defaults.
    pub async fn start_with_env(
        pool: PgPool,
        config: FakeConfig,
        more: &[(&'static str, &str)],
    ) -> Self {
        let fake = FakeDaraja::start(config).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mpesa = mpesa(&fake.base_url(), &format!("http://{addr}"), more);
        let state = super::state(&pool, Some(mpesa.clone()));
        serve(listener, state);
        for sql in [
            "INSERT INTO plans (id, name, rate_limit, price_kes, duration_seconds, service) \
             VALUES (1, 'monthly', '5M/5M', 1000, 2592000, 'both')",
            "INSERT INTO subscribers (id, username, password, plan_id, expires_at) \
             VALUES (1, 'alice', 'x', 1, now() - interval '1 day'), \
                    (2, 'bob', 'x', 1, now() - interval '1 day')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let token = billing_daemon::token::create(&pool, "test").await.unwrap();
        Self {
            base: format!("http://{addr}"),
            token,
            _reconciler: reconciler::start(pool.clone(), mpesa),
            pool,
            fake,
            http: reqwest::Client::new(),
        }
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}/api/v1{path}", self.base),
            )
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn push(&self, username: &str, phone: &str) -> Value {
        let (status, body) = self
            .api(
                "POST",
                "/payments/stk",
                Some(json!({"username": username, "phone": phone})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    pub async fn scalar(&self, sql: &str) -> String {
        scalar(&self.pool, sql).await
    }

    /// Polls until `sql` (one text value) returns `want`.
    pub async fn until(&self, sql: &str, want: &str) {
        until(&self.pool, sql, want).await;
    }

    /// POSTs `body` (as JSON) to `path` of the daemon, as Safaricom would; the status.
    pub async fn post_raw(&self, path: &str, body: String) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Polls until STK intent `id` has status `want`.
    pub async fn until_intent(&self, id: i64, want: &str) {
        self.until(
            &format!("SELECT status FROM payment_intents WHERE id = {id}"),
            want,
        )
        .await;
    }

    pub async fn register_c2b(&self) {
        let (status, body) = self.api("POST", "/payments/c2b/register", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    /// The daemon's receipts and the fake's, both sorted.
    pub async fn receipts(&self) -> (Vec<String>, Vec<String>) {
        let mut ours: Vec<String> =
            sqlx::query_scalar("SELECT receipt FROM payments WHERE receipt IS NOT NULL")
                .fetch_all(&self.pool)
                .await
                .unwrap();
        ours.sort();
        let mut theirs: Vec<String> = self.fake.ledger().into_iter().map(|e| e.receipt).collect();
        theirs.sort();
        (ours, theirs)
    }
}

/// Serves the daemon's HTTP application on `listener`, with peer addresses, until the test
/// ends.
pub fn serve(listener: tokio::net::TcpListener, state: billing_daemon::api::AppState) {
    tokio::spawn(async move {
        axum::serve(
            listener,
            app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
}

/// One text value (NULL: empty).
pub async fn scalar(pool: &PgPool, sql: &str) -> String {
    sqlx::query_scalar::<_, Option<String>>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Polls until `sql` (one text value) returns `want`.
pub async fn until(pool: &PgPool, sql: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = scalar(pool, sql).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub const ALICE_ACTIVE: &str =
    "SELECT (expires_at > now() + interval '29 days')::text FROM subscribers WHERE id = 1";
