//! A faithful, in-process stand-in for Safaricom's Daraja (M-Pesa) API, for tests only.
//!
//! [`FakeDaraja::start`] binds an axum server on `127.0.0.1` at a port picked at run time;
//! point the client under test at [`FakeDaraja::base_url`]. The fake behaves as
//! `mpesa-daraja.md` (§1, §2, §5) documents Daraja: it checks every field the way Safaricom
//! does and answers with Daraja's own error envelopes, so a client that passes here sends
//! what production expects. It implements OAuth, STK Push and STK Query, C2B URL
//! registration and simulation, and Transaction Status, and it POSTs callbacks and
//! notifications to the daemon the way M-Pesa does, including the awkward parts (numbers
//! vs strings, a `Balance` item without a value, hashed MSISDNs, duplicates, late and lost
//! callbacks, a C2B confirmation for an STK payment).
//!
//! Each phone's behaviour is scripted with [`FakeDaraja::script`]; afterwards
//! [`FakeDaraja::ledger`], [`FakeDaraja::deliveries`] and [`FakeDaraja::requests`] show
//! what moved, what was sent to the daemon (with its answers) and what the daemon asked.
//! Dropping the value stops the server and every pending delivery.
//!
//! It deliberately shares no code with the project's client (`crates/daraja`): both are
//! written from the reference, so a misreading in one is caught by the other.

mod c2b;
mod config;
mod deliver;
mod model;
mod oauth;
mod status;
pub use status::STATUS_NOT_FOUND_CODE;
mod stk;
mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use tokio::task::AbortHandle;

pub use config::{
    FakeConfig, Initiator, Merchant, Mode, MsisdnStyle, RetryPolicy, SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE, Shortcode, StatusMode,
};
pub use model::Delivery;
pub use model::{
    AmountFormat, C2bOutcome, Channel, DeliveryAttempt, DeliveryKind, LedgerEntry, Outcome,
    RequestRecord, ResultCode, StkPush, StkState,
};
pub use wire::{nairobi_timestamp, stk_password};

/// Largest request body the fake reads; Daraja's gateway refuses far smaller ones, and a
/// bound keeps a runaway test from eating memory.
const MAX_BODY: usize = 1 << 20;

/// A running fake Daraja. Dropping it stops the server and all background deliveries.
pub struct FakeDaraja {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: AbortHandle,
}

pub(crate) struct Shared {
    pub(crate) config: FakeConfig,
    state: Mutex<State>,
    pub(crate) http: reqwest::Client,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// A C2B URL registration for one merchant.
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    pub(crate) confirmation_url: String,
    pub(crate) validation_url: String,
    pub(crate) cancel_on_timeout: bool,
}

/// An accepted push plus what the fake still has to do for it.
pub(crate) struct StkEntry {
    pub(crate) push: StkPush,
    pub(crate) outcome: Outcome,
    /// For [`Delivery::Late`]: the callback body waiting for a query to release it.
    pub(crate) held_callback: Option<String>,
    /// Ends the outcome's delay early ([`FakeDaraja::complete_now`]).
    pub(crate) release: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
pub(crate) struct State {
    /// Token -> when it stops working.
    pub(crate) tokens: HashMap<String, Instant>,
    pub(crate) scripts: HashMap<String, VecDeque<Outcome>>,
    pub(crate) stk: HashMap<String, StkEntry>,
    pub(crate) stk_order: Vec<String>,
    /// Phones with a prompt open (Daraja's per-subscriber lock).
    pub(crate) locked_phones: HashSet<String>,
    pub(crate) ledger: Vec<LedgerEntry>,
    pub(crate) receipts: HashSet<String>,
    pub(crate) deliveries: Vec<DeliveryAttempt>,
    pub(crate) requests: Vec<RequestRecord>,
    /// By index into `config.merchants`.
    pub(crate) registrations: HashMap<usize, Registration>,
    /// Merchant index -> account balance, reported as `OrgAccountBalance`.
    pub(crate) balances: HashMap<usize, u64>,
    pub(crate) recent_queries: VecDeque<Instant>,
    pub(crate) overrides: Overrides,
}

/// Settings a test may flip while the fake runs (start values come from the config).
#[derive(Default, Clone)]
pub(crate) struct Overrides {
    pub(crate) sandbox_query_bug: Option<bool>,
    pub(crate) query_rate_limit: Option<Option<u32>>,
    pub(crate) status_mode: Option<StatusMode>,
}

impl State {
    /// A receipt no payment in this fake has used.
    pub(crate) fn new_receipt(&mut self) -> String {
        loop {
            let candidate = wire::receipt_candidate();
            if self.receipts.insert(candidate.clone()) {
                return candidate;
            }
        }
    }
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in the fake; the records are still the
        // best evidence a test has, so keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fut` in the background, to be cancelled when the fake is dropped.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut).abort_handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    pub(crate) fn merchant_for_business_shortcode(&self, code: &str) -> Option<(usize, &Merchant)> {
        self.config
            .merchants
            .iter()
            .enumerate()
            .find(|(_, m)| m.shortcode.business_shortcode() == code)
    }

    pub(crate) fn merchant_answering_to(&self, number: &str) -> Option<(usize, &Merchant)> {
        self.config
            .merchants
            .iter()
            .enumerate()
            .find(|(_, m)| m.shortcode.answers_to(number))
    }

    pub(crate) fn sandbox_query_bug(&self) -> bool {
        let o = self.state().overrides.sandbox_query_bug;
        o.unwrap_or(self.config.sandbox_query_bug)
    }

    pub(crate) fn query_rate_limit(&self) -> Option<u32> {
        let o = self.state().overrides.query_rate_limit;
        o.unwrap_or(self.config.query_rate_limit)
    }

    pub(crate) fn status_mode(&self) -> StatusMode {
        let o = self.state().overrides.status_mode;
        o.unwrap_or(self.config.status_mode)
    }
}

impl FakeDaraja {
    /// Starts the fake on `127.0.0.1:<free port>`. Panics if it cannot bind: this is test
    /// set-up, where a loud failure is the useful one.
    pub async fn start(config: FakeConfig) -> FakeDaraja {
        assert!(
            !config.merchants.is_empty(),
            "FakeConfig needs at least one merchant"
        );
        let http = reqwest::Client::builder()
            .timeout(config.callback_timeout)
            .build()
            .expect("build the fake's HTTP client");
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            http,
            tasks: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/oauth/v1/generate", get(oauth::generate))
            .route("/mpesa/stkpush/v1/processrequest", post(stk::push))
            .route("/mpesa/stkpushquery/v1/query", post(stk::query))
            .route("/mpesa/c2b/v1/registerurl", post(c2b::register))
            .route("/mpesa/c2b/v2/registerurl", post(c2b::register))
            .route("/mpesa/c2b/v1/simulate", post(c2b::simulate))
            .route("/mpesa/c2b/v2/simulate", post(c2b::simulate))
            .route("/mpesa/transactionstatus/v1/query", post(status::query))
            .fallback(|| async { wire::ApiError::new("404.001.01", "Resource not found") })
            .method_not_allowed_fallback(|| async {
                wire::ApiError::new("405.001", "Method not allowed")
            })
            .layer(middleware::from_fn_with_state(
                shared.clone(),
                record_request,
            ))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Daraja on loopback");
        let addr = listener.local_addr().expect("local address of the fake");
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "fake Daraja server stopped");
            }
        })
        .abort_handle();
        FakeDaraja {
            shared,
            addr,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`, to use in place of `https://sandbox.safaricom.co.ke`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// Queues what `phone` (`2547...`) does with its next STK push; several calls queue
    /// outcomes for successive pushes. Without a script a push gets the config's
    /// `default_outcome`.
    pub fn script(&self, phone: &str, outcome: Outcome) {
        self.shared
            .state()
            .scripts
            .entry(phone.to_owned())
            .or_default()
            .push_back(outcome);
    }

    /// Every completed payment, in order.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.shared.state().ledger.clone()
    }

    /// Every POST the fake made to the daemon, with the status it got back.
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.shared.state().deliveries.clone()
    }

    /// Every API call the fake received, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.state().requests.clone()
    }

    /// Every accepted STK push, in order.
    pub fn stk_pushes(&self) -> Vec<StkPush> {
        let st = self.shared.state();
        st.stk_order
            .iter()
            .filter_map(|id| st.stk.get(id).map(|e| e.push.clone()))
            .collect()
    }

    /// Ends the wait of a pending push now instead of after its scripted delay, so a test
    /// decides when the customer answers. False if no such push is pending.
    pub fn complete_now(&self, checkout_request_id: &str) -> bool {
        let st = self.shared.state();
        match st.stk.get(checkout_request_id) {
            Some(e) if e.push.state == StkState::Pending => {
                e.release.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Makes every issued token expired, so the next call gets `404.001.03`.
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    pub fn set_sandbox_query_bug(&self, on: bool) {
        self.shared.state().overrides.sandbox_query_bug = Some(on);
    }

    pub fn set_query_rate_limit(&self, per_second: Option<u32>) {
        self.shared.state().overrides.query_rate_limit = Some(per_second);
    }

    pub fn set_status_mode(&self, mode: StatusMode) {
        self.shared.state().overrides.status_mode = Some(mode);
    }

    /// A customer pays `amount` to the first merchant with account `bill_ref` from `phone`
    /// (Lipa na M-Pesa from the SIM menu): validation (if enabled and registered), then the
    /// confirmation. Returns when the confirmation's delivery is over.
    pub async fn pay_c2b(&self, bill_ref: &str, amount: u64, phone: &str) -> C2bOutcome {
        c2b::run_payment(&self.shared, 0, bill_ref, amount, phone).await
    }

    /// Like [`FakeDaraja::pay_c2b`] to the merchant that answers to `shortcode`.
    pub async fn pay_c2b_to(
        &self,
        shortcode: &str,
        bill_ref: &str,
        amount: u64,
        phone: &str,
    ) -> C2bOutcome {
        let (index, _) = self
            .shared
            .merchant_answering_to(shortcode)
            .unwrap_or_else(|| panic!("no merchant {shortcode} in the fake's config"));
        c2b::run_payment(&self.shared, index, bill_ref, amount, phone).await
    }

    /// Polls `check` until it returns `Some` (every 10 ms, for up to 10 s) and returns
    /// that value; panics naming `what` otherwise.
    pub async fn eventually<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeDaraja {
    fn drop(&mut self) {
        self.server.abort();
        let tasks = self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for t in tasks.iter() {
            t.abort();
        }
    }
}

/// Keeps every API call for [`FakeDaraja::requests`]. Headers are left out on purpose:
/// they carry the Basic credentials and bearer tokens.
async fn record_request(
    AxState(shared): AxState<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let at: DateTime<Utc> = Utc::now();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let (body_text, response) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            (text, response)
        }
        Err(_) => (
            format!("<body over {MAX_BODY} bytes, not kept>"),
            wire::ApiError::new("400.002.02", "Bad Request - Request body too large")
                .into_response(),
        ),
    };
    shared.state().requests.push(RequestRecord {
        method,
        path,
        query,
        body: body_text,
        status: response.status().as_u16(),
        at,
    });
    response
}
