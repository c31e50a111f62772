//! Helpers shared by the integration tests: an app on a fresh `#[sqlx::test]` database, driven
//! with `tower::ServiceExt::oneshot` (no socket).
#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use billing_daemon::accounting::{AccountingEvent, IngestStats, apply_batch};
use billing_daemon::api::{AppState, app};
use billing_daemon::config::RadiusSettings;
use billing_daemon::publisher::SnapshotHandle;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

pub struct TestApp {
    pub router: axum::Router,
    pub token: String,
    pub pool: PgPool,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// Asserts an error reply with this status and code.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "body: {}", self.text);
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "body: {}",
            self.text
        );
    }
}

/// The handlers' state for a test: no journal, a detached publisher, and M-Pesa if given.
pub fn state(pool: &PgPool, mpesa: Option<billing_daemon::payments::Mpesa>) -> AppState {
    AppState {
        pool: pool.clone(),
        snapshot: SnapshotHandle::detached(1),
        radius: RadiusSettings {
            public_address: "198.51.100.7".to_owned(),
            auth_port: 11812,
            acct_port: 11813,
        },
        journal: None,
        mpesa,
    }
}

impl TestApp {
    pub async fn new(pool: PgPool) -> Self {
        let token = billing_daemon::token::create(&pool, "test").await.unwrap();
        Self {
            router: app(state(&pool, None)),
            token,
            pool,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_owned())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        Reply {
            status,
            content_type,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, None, Some(&self.token.clone())).await
    }
    pub async fn post(&self, uri: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            uri,
            Some(&body.to_string()),
            Some(&self.token.clone()),
        )
        .await
    }
    pub async fn post_empty(&self, uri: &str) -> Reply {
        self.send("POST", uri, None, Some(&self.token.clone()))
            .await
    }
    pub async fn patch(&self, uri: &str, body: &Value) -> Reply {
        self.send(
            "PATCH",
            uri,
            Some(&body.to_string()),
            Some(&self.token.clone()),
        )
        .await
    }
    pub async fn delete(&self, uri: &str) -> Reply {
        self.send("DELETE", uri, None, Some(&self.token.clone()))
            .await
    }

    /// Creates a plan and returns its id.
    pub async fn plan(&self, name: &str, duration_seconds: i64, cap: Option<i64>) -> i64 {
        let r = self
            .post(
                "/api/v1/plans",
                &serde_json::json!({
                    "name": name, "rate_limit": "5M/5M", "price_kes": 1500,
                    "duration_seconds": duration_seconds, "data_cap_bytes": cap, "service": "both"
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()["id"].as_i64().unwrap()
    }
}

/// Applies `events` as one batch in a transaction of its own, committed.
pub async fn apply(pool: &PgPool, events: &[AccountingEvent]) -> IngestStats {
    let mut tx = pool.begin().await.unwrap();
    let stats = apply_batch(&mut tx, events).await.unwrap();
    tx.commit().await.unwrap();
    stats
}
