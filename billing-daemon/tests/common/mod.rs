//! Helpers shared by the integration tests: an app on a fresh `#[sqlx::test]` database, driven
//! with `tower::ServiceExt::oneshot` (no socket).
#![allow(dead_code, unreachable_pub)]

pub mod nas;
pub mod pay;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use billing_daemon::accounting::{AccountingEvent, IngestStats, apply_batch};
use billing_daemon::api::{AppState, app};
use billing_daemon::config::RadiusSettings;
use billing_daemon::publisher::SnapshotHandle;
use chrono::{DateTime, Duration, TimeZone, Utc};
use radius_proto::Packet;
use radius_proto::attr::{self, acct_status_type as st};
use serde_json::Value;
use sqlx::PgPool;
use std::net::{Ipv4Addr, SocketAddr};
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

/// The voucher key of the tests' daemon.
pub fn voucher_key() -> jasiyo_snapshot::voucher::VoucherKey {
    jasiyo_snapshot::voucher::VoucherKey::from_hex(&"5a".repeat(32)).unwrap()
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
        vouchers: Some(billing_daemon::vouchers::VoucherConfig {
            key: voucher_key(),
            isp_name: "Mtaani Net".to_owned(),
        }),
        hotspot_page: billing_daemon::hotspot_page::PageSettings {
            public_url: Some("https://pay.example.co.ke".to_owned()),
            isp_name: "Mtaani Net".to_owned(),
        },
        portal: std::sync::Arc::new(billing_daemon::portal::Portal::new(
            billing_daemon::config::PortalLimits::default(),
            None,
        )),
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
            // Lossy: a PDF has binary bytes (its text is ASCII).
            text: String::from_utf8_lossy(&bytes).into_owned(),
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
    let stats = apply_batch(&mut tx, events, Some(&voucher_key()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    stats
}

/// The time the accounting tests' events are told from.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 29, 12, 0, 0).unwrap()
}

/// A session-level packet description.
#[derive(Clone, Debug)]
pub struct Acct {
    pub status: u32,
    pub user: &'static str,
    pub sid: String,
    pub router: Ipv4Addr,
    pub at: DateTime<Utc>,
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub secs: Option<u32>,
    pub interim_interval: Option<u32>,
}

/// An Accounting-Request from router 192.0.2.1, `at_secs` after [`t0`].
pub fn acct(status: u32, user: &'static str, sid: &str, at_secs: i64) -> Acct {
    Acct {
        status,
        user,
        sid: sid.to_owned(),
        router: Ipv4Addr::new(192, 0, 2, 1),
        at: t0() + Duration::seconds(at_secs),
        input: None,
        output: None,
        secs: None,
        interim_interval: None,
    }
}

impl Acct {
    pub fn counters(mut self, input: u64, output: u64, secs: u32) -> Self {
        self.input = Some(input);
        self.output = Some(output);
        self.secs = Some(secs);
        self
    }
    pub fn router(mut self, ip: Ipv4Addr) -> Self {
        self.router = ip;
        self
    }
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }
    /// Encodes the datagram as RouterOS lays it out (acct-*-hotspot-01.txt) and decodes it.
    pub fn event(&self) -> AccountingEvent {
        let port = u32::from_str_radix(&self.sid, 16).unwrap_or(7);
        let mut p = Packet::accounting_request(7).with_integer(attr::ACCT_STATUS_TYPE, self.status);
        if self.status == st::STOP {
            p = p.with_integer(attr::ACCT_TERMINATE_CAUSE, 1);
        }
        p = p
            .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::WIRELESS_802_11)
            .with_string(attr::CALLING_STATION_ID, "BC:24:11:EB:56:4D")
            .with_string(attr::CALLED_STATION_ID, "hs-vlan888-hotspot")
            .with_string(attr::NAS_PORT_ID, "vlan888-hotspot")
            .with_string(attr::USER_NAME, self.user)
            .with_integer(attr::NAS_PORT, port)
            .with_string(attr::ACCT_SESSION_ID, &self.sid)
            .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 5, 88, 2))
            .with_integer(
                attr::EVENT_TIMESTAMP,
                u32::try_from(self.at.timestamp()).unwrap(),
            );
        if let (Some(i), Some(o)) = (self.input, self.output) {
            p = p
                .with_integer(attr::ACCT_INPUT_OCTETS, (i & 0xFFFF_FFFF) as u32)
                .with_integer(attr::ACCT_OUTPUT_OCTETS, (o & 0xFFFF_FFFF) as u32)
                .with_integer(attr::ACCT_INPUT_GIGAWORDS, (i >> 32) as u32)
                .with_integer(attr::ACCT_OUTPUT_GIGAWORDS, (o >> 32) as u32)
                .with_integer(attr::ACCT_INPUT_PACKETS, 10)
                .with_integer(attr::ACCT_OUTPUT_PACKETS, 20);
        }
        if let Some(s) = self.secs {
            p = p.with_integer(attr::ACCT_SESSION_TIME, s);
        }
        if let Some(i) = self.interim_interval {
            p = p.with_integer(attr::ACCT_INTERIM_INTERVAL, i);
        }
        p = p
            .with_string(attr::NAS_IDENTIFIER, "KhwanrichaiHome")
            .with_integer(attr::ACCT_DELAY_TIME, 0)
            .with_ipv4(attr::NAS_IP_ADDRESS, self.router);
        let raw = p.encode(b"secret").unwrap();
        AccountingEvent::from_packet(self.at, SocketAddr::from((self.router, 47863)), &raw).unwrap()
    }
}

/// Accounting-On/Off (`status`) from `router`.
pub fn nas_event(status: u32, router: Ipv4Addr, at: DateTime<Utc>) -> AccountingEvent {
    let raw = Packet::accounting_request(23)
        .with_integer(attr::ACCT_STATUS_TYPE, status)
        .with_string(attr::NAS_IDENTIFIER, "MikroTik")
        .with_integer(attr::ACCT_DELAY_TIME, 0)
        .with_ipv4(attr::NAS_IP_ADDRESS, router)
        .encode(b"secret")
        .unwrap();
    AccountingEvent::from_packet(at, SocketAddr::from((router, 1813)), &raw).unwrap()
}
