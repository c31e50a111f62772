//! Randomised interleavings of everything M-Pesa may do to the daemon, checked against the
//! fake Daraja's own ledger (issue 5, Tests).
//!
//! Each case is a few subscribers, each with at most one STK push (paid, cancelled or timed
//! out after a random delay; its callback delivered 0..3 times, sometimes concurrently, late
//! or followed by a conflicting failure; its C2B copy 0..2 times) and 0..2 paybill payments
//! of their own (from the push's phone or another one), while the daemon's HTTP server and
//! reconciler are stopped and started again on the same database at random moments. Once
//! everything M-Pesa sends has been answered and the reconciler has settled, the money rules
//! must hold: every receipt is credited exactly once, each subscriber's payments sum to what
//! the fake's ledger says they paid, no paid push is left without its payment, and the
//! wallets and renewals are what those amounts buy.
//!
//! Scenarios come from proptest strategies driven by a seeded generator. A case takes
//! seconds, so there is no shrinking: a failure prints the seed and the scenario, and
//! `PAYPROP_SEED=<seed>` replays it (`PAYPROP_CASES` changes how many cases run).
//!
//! The daemon is the real binary in a child process. A restart is graceful (SIGTERM:
//! requests in flight finish, as in a redeploy) or a crash (SIGKILL wherever it is: between
//! storing a body and processing it, inside a payment's transaction, between a push and its
//! reply). The fake retries a notification that found the daemon down or got no answer,
//! which is a choice of this test: Safaricom documents no retry policy, and a notification
//! it never re-sends is recovered by other means (STK Query here; Transaction Status by
//! receipt elsewhere).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use fake_daraja::{
    Channel, Delivery, DeliveryKind, FakeConfig, FakeDaraja, Outcome, RetryPolicy, StkState,
};
use futures_util::future::join_all;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::json;
use sqlx::{PgPool, Row};

const PRICE: i64 = 1000;
const DURATION_SECS: i64 = 30 * 86_400;

// ---------------------------------------------------------------------------------------
// Scenarios

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PushResult {
    Paid,
    /// 1032, the customer pressed cancel.
    Cancelled,
    /// 1037, the phone could not be reached.
    TimedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Callbacks {
    Never,
    Once,
    /// Held back until a query has reported the result.
    Late,
    Twice,
    TwiceConcurrently,
    /// The real one, then a failure (1032) for the same push.
    ThenConflicting,
    /// Twice concurrently, then the test posts the same body once more.
    Thrice,
}

#[derive(Clone, Debug)]
struct Push {
    result: PushResult,
    delay_ms: u64,
    callbacks: Callbacks,
    c2b_copies: u8,
}

#[derive(Clone, Debug)]
struct Paybill {
    at_ms: u64,
    amount: u64,
    /// From the phone the push went to (else from another of the customer's phones).
    same_phone: bool,
}

#[derive(Clone, Debug)]
struct Customer {
    /// A username too long for an AccountReference (the push then carries `JAS<id>`).
    long_name: bool,
    push: Option<Push>,
    paybills: Vec<Paybill>,
}

#[derive(Clone, Debug)]
struct Restart {
    at_ms: u64,
    down_ms: u64,
    /// SIGKILL instead of SIGTERM.
    crash: bool,
}

#[derive(Clone, Debug)]
struct Scenario {
    customers: Vec<Customer>,
    restarts: Vec<Restart>,
}

fn push_strategy() -> impl Strategy<Value = Push> {
    (
        prop_oneof![
            3 => Just(PushResult::Paid),
            1 => Just(PushResult::Cancelled),
            1 => Just(PushResult::TimedOut),
        ],
        0u64..1500,
        prop_oneof![
            Just(Callbacks::Never),
            Just(Callbacks::Once),
            Just(Callbacks::Late),
            Just(Callbacks::Twice),
            Just(Callbacks::TwiceConcurrently),
            Just(Callbacks::ThenConflicting),
            Just(Callbacks::Thrice),
        ],
        0u8..=2,
    )
        .prop_map(|(result, delay_ms, callbacks, c2b_copies)| Push {
            result,
            delay_ms,
            callbacks,
            c2b_copies,
        })
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    // Amounts at most the price keep the wallet below the price, so what a subscriber ends
    // with does not depend on the order the payments were applied in (see `expected`).
    let paybill = (
        0u64..2500,
        prop_oneof![Just(300u64), Just(700), Just(1000)],
        any::<bool>(),
    )
        .prop_map(|(at_ms, amount, same_phone)| Paybill {
            at_ms,
            amount,
            same_phone,
        });
    let customer = (
        proptest::bool::weighted(0.25),
        proptest::option::weighted(0.8, push_strategy()),
        proptest::collection::vec(paybill, 0..=2),
    )
        .prop_map(|(long_name, push, paybills)| Customer {
            long_name,
            push,
            paybills,
        });
    let restart =
        (0u64..3000, 0u64..500, any::<bool>()).prop_map(|(at_ms, down_ms, crash)| Restart {
            at_ms,
            down_ms,
            crash,
        });
    (
        proptest::collection::vec(customer, 1..=4),
        proptest::collection::vec(restart, 0..=2),
    )
        .prop_map(|(customers, restarts)| Scenario {
            customers,
            restarts,
        })
}

impl Push {
    fn outcome(&self) -> Outcome {
        let base = match self.result {
            PushResult::Paid => Outcome::success(),
            PushResult::Cancelled => Outcome::failing(1032),
            PushResult::TimedOut => Outcome::failing(1037),
        };
        let delivery = match self.callbacks {
            Callbacks::Never => Delivery::Never,
            Callbacks::Once => Delivery::Once,
            Callbacks::Late => Delivery::Late,
            Callbacks::Twice => Delivery::Twice,
            Callbacks::TwiceConcurrently | Callbacks::Thrice => Delivery::TwiceConcurrently,
            Callbacks::ThenConflicting => Delivery::ThenConflicting(1032.into()),
        };
        base.with_delay(Duration::from_millis(self.delay_ms))
            .with_delivery(delivery)
            .with_c2b_copies(self.c2b_copies)
    }

    /// STK callbacks the fake itself sends (all eventually answered 2xx).
    fn fake_callbacks(&self) -> usize {
        match self.callbacks {
            Callbacks::Never => 0,
            Callbacks::Once | Callbacks::Late => 1,
            Callbacks::Twice
            | Callbacks::TwiceConcurrently
            | Callbacks::ThenConflicting
            | Callbacks::Thrice => 2,
        }
    }

    /// Whether nothing but the receipt tells this push's payment from one of the customer's
    /// own paybill payments: same phone, same amount, same account number. Until the receipt
    /// comes, the daemon may take one for the other (see `check`).
    fn ambiguous_with(&self, customer: &Customer) -> bool {
        !customer.long_name
            && customer
                .paybills
                .iter()
                .any(|pb| pb.same_phone && i64::try_from(pb.amount).unwrap() == PRICE)
    }

    /// Whether the daemon is ever told this payment's receipt.
    fn receipt_reaches_daemon(&self) -> bool {
        self.result == PushResult::Paid
            && (self.callbacks != Callbacks::Never || self.c2b_copies > 0)
    }
}

// ---------------------------------------------------------------------------------------
// The daemon, stopped and started on one address and one database

/// The real `billing-daemon serve`, as a child process on one address and one database
/// (with its own snapshot directory and journal, kept across restarts as on a server).
struct Daemon {
    addr: SocketAddr,
    db_url: String,
    fake_url: String,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl Daemon {
    async fn start(pool: &PgPool, fake_url: String) -> Self {
        // The test database's URL: the server of DATABASE_URL, the database sqlx::test made.
        let server = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let mut db_url = url::Url::parse(&server).expect("DATABASE_URL is a URL");
        db_url.set_path(pool.connect_options().get_database().expect("a database"));
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut daemon = Daemon {
            addr,
            db_url: db_url.to_string(),
            fake_url,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        daemon.spawn().await;
        daemon
    }

    /// Starts the process and waits until it accepts connections; its address may still be
    /// held for a moment by the one before, so a start that fails is tried again.
    async fn spawn(&mut self) {
        let public_url = format!("http://{}", self.addr);
        let env = common::pay::mpesa_env(
            &self.fake_url,
            &public_url,
            &[("JASIYO_MPESA_QUERY_DEADLINE", "60")],
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join("daemon.log"))
                .unwrap();
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_billing-daemon"))
                .arg("serve")
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("DATABASE_URL", &self.db_url)
                .env("JASIYO_LISTEN", self.addr.to_string())
                .env("JASIYO_SNAPSHOT_DIR", self.dir.path().join("snapshot"))
                .env(
                    "JASIYO_JOURNAL_PATH",
                    self.dir.path().join("accounting.journal"),
                )
                // Not the default under /var/lib: a test leaves nothing outside its directory.
                .env(
                    "JASIYO_VOUCHER_KEY_FILE",
                    self.dir.path().join("voucher.key"),
                )
                .env("JASIYO_LOG", "info")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("starting billing-daemon");
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "billing-daemon exited with {status}; see {}",
                        self.dir.path().join("daemon.log").display()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
                if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                    self.child = Some(child);
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "billing-daemon did not listen"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Stops it: with SIGTERM, as a redeploy does (requests in flight finish), or with
    /// SIGKILL wherever it is (a crash or a power cut: Postgres rolls back the transactions
    /// in flight; bodies already stored stay for the next daemon's reconciler).
    async fn stop(&mut self, crash: bool) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if crash {
            child.kill().await.unwrap();
        } else {
            let pid = child.id().expect("running").to_string();
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap();
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .expect("billing-daemon stops within 30 s of SIGTERM")
                .unwrap();
            assert!(status.success(), "billing-daemon stopped with {status}");
        }
    }

    /// Stops (gracefully or not), stays down for `down`, and starts a fresh process on the
    /// same address (nothing carried over but the database, the snapshot and the journal).
    async fn restart(&mut self, crash: bool, down: Duration) {
        self.stop(crash).await;
        tokio::time::sleep(down).await;
        self.spawn().await;
    }
}

/// POSTs until the daemon answers (it may be restarting); returns the status.
async fn post_until_answered(http: &reqwest::Client, url: &str, body: String) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match http
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return r.status().as_u16(),
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{url}: no answer: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// One case

struct Sub {
    id: i64,
    username: String,
    phone: String,
    other_phone: String,
}

struct Case<'a> {
    pool: &'a PgPool,
    api_token: &'a str,
    number: u32,
    scenario: &'a Scenario,
}

impl Case<'_> {
    async fn run(&self) -> Result<(), String> {
        let pool = self.pool;
        let first_payment: i64 =
            scalar_i64(pool, "SELECT COALESCE(max(id), 0) FROM payments").await;
        let first_callback: i64 =
            scalar_i64(pool, "SELECT COALESCE(max(id), 0) FROM payment_callbacks").await;
        let first_intent: i64 =
            scalar_i64(pool, "SELECT COALESCE(max(id), 0) FROM payment_intents").await;

        let mut config = FakeConfig::sandbox();
        config.retry = RetryPolicy {
            max_attempts: 60,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        };
        let fake = FakeDaraja::start(config).await;
        let mut daemon = Daemon::start(pool, fake.base_url()).await;
        let base = format!("http://{}", daemon.addr);
        let http = reqwest::Client::new();

        let mut subs = Vec::new();
        for (i, c) in self.scenario.customers.iter().enumerate() {
            let mut username = format!("c{}u{i}", self.number);
            if c.long_name {
                username.push_str("-with-a-long-name");
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO subscribers (username, password, plan_id, expires_at) \
                 VALUES ($1, 'x', 1, now() - interval '1 day') RETURNING id",
            )
            .bind(&username)
            .fetch_one(pool)
            .await
            .unwrap();
            subs.push(Sub {
                id,
                username,
                phone: format!("25471{:03}{i:04}", self.number % 1000),
                other_phone: format!("25472{:03}{i:04}", self.number % 1000),
            });
        }
        let case_start: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(pool)
            .await
            .unwrap();

        let reply = http
            .post(format!("{base}/api/v1/payments/c2b/register"))
            .bearer_auth(self.api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 204);

        // The pushes, before anything else can stop the daemon.
        let mut pushes: Vec<Option<(Push, i64)>> = Vec::new();
        for (c, s) in self.scenario.customers.iter().zip(&subs) {
            let Some(p) = &c.push else {
                pushes.push(None);
                continue;
            };
            fake.script(&s.phone, p.outcome());
            let reply = http
                .post(format!("{base}/api/v1/payments/stk"))
                .bearer_auth(self.api_token)
                .json(&json!({"username": s.username, "phone": s.phone}))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status().as_u16(), 202);
            let body: serde_json::Value = reply.json().await.unwrap();
            pushes.push(Some((p.clone(), body["id"].as_i64().unwrap())));
        }

        // Everything else at once: customers paying by paybill, the third delivery of a
        // callback, and the restarts.
        let fake = &fake;
        let http = &http;
        let mut customers = Vec::new();
        for (c, s) in self.scenario.customers.iter().zip(&subs) {
            for pb in &c.paybills {
                let phone = if pb.same_phone {
                    &s.phone
                } else {
                    &s.other_phone
                };
                customers.push(async move {
                    tokio::time::sleep(Duration::from_millis(pb.at_ms)).await;
                    fake.pay_c2b(&s.username, pb.amount, phone).await;
                });
            }
        }
        let mut replays = Vec::new();
        for (p, s) in pushes.iter().zip(&subs) {
            if let Some((p, _)) = p
                && p.callbacks == Callbacks::Thrice
            {
                replays.push(async move {
                    let first = fake
                        .eventually("the fake's two callbacks", |f| {
                            let answered: Vec<_> = stk_callbacks_to(f, &s.phone)
                                .into_iter()
                                .filter(|d| d.status.is_some_and(|c| c < 300))
                                .collect();
                            (answered.len() >= 2).then(|| answered[0].clone())
                        })
                        .await;
                    post_until_answered(http, &first.url, first.body).await;
                });
            }
        }
        let restarts = async {
            let mut at = 0;
            let mut rs = self.scenario.restarts.clone();
            rs.sort_by_key(|r| r.at_ms);
            for r in rs {
                tokio::time::sleep(Duration::from_millis(r.at_ms.saturating_sub(at))).await;
                daemon
                    .restart(r.crash, Duration::from_millis(r.down_ms))
                    .await;
                at = r.at_ms;
            }
        };
        tokio::join!(join_all(customers), join_all(replays), restarts);

        // Settle: everything the fake sends has been answered, and the books agree.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let result = loop {
            let quiet = fake_quiet(fake, &self.scenario.customers, &subs);
            let problems = match quiet {
                Err(why) => vec![why],
                Ok(()) => {
                    check(
                        pool,
                        fake,
                        &self.scenario.customers,
                        &subs,
                        &pushes,
                        (first_payment, first_callback, first_intent),
                        case_start,
                    )
                    .await
                }
            };
            if problems.is_empty() {
                break Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(problems.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        daemon.stop(false).await;
        match result {
            Ok(()) => Ok(()),
            Err(problems) => Err(format!(
                "{problems}\nwhat the daemon recorded:\n{}",
                history(pool, first_intent, first_callback).await
            )),
        }
    }
}

fn stk_callbacks_to(f: &FakeDaraja, phone: &str) -> Vec<fake_daraja::DeliveryAttempt> {
    let urls: Vec<String> = f
        .stk_pushes()
        .into_iter()
        .filter(|p| p.phone == phone)
        .map(|p| p.callback_url)
        .collect();
    f.deliveries()
        .into_iter()
        .filter(|d| d.kind == DeliveryKind::StkCallback && urls.contains(&d.url))
        .collect()
}

/// Ok when every push has ended and every callback and C2B copy the fake owes the daemon
/// has been answered with 2xx.
fn fake_quiet(f: &FakeDaraja, customers: &[Customer], subs: &[Sub]) -> Result<(), String> {
    let deliveries = f.deliveries();
    for (c, s) in customers.iter().zip(subs) {
        let Some(p) = &c.push else { continue };
        let Some(push) = f.stk_pushes().into_iter().find(|x| x.phone == s.phone) else {
            return Err(format!("no push to {}", s.phone));
        };
        if push.state == StkState::Pending {
            return Err(format!("push to {} still open", s.phone));
        }
        let answered = |kind: DeliveryKind, needle: &str| {
            deliveries
                .iter()
                .filter(|d| {
                    d.kind == kind
                        && d.body.contains(needle)
                        && d.status.is_some_and(|c| (200..300).contains(&c))
                })
                .count()
        };
        let callbacks = answered(DeliveryKind::StkCallback, &push.checkout_request_id);
        if callbacks < p.fake_callbacks() {
            return Err(format!(
                "{}: {callbacks} of {} callbacks answered",
                s.phone,
                p.fake_callbacks()
            ));
        }
        if let Some(receipt) = &push.receipt {
            let copies = answered(DeliveryKind::C2bConfirmation, receipt);
            if copies < usize::from(p.c2b_copies) {
                return Err(format!(
                    "{}: {copies} of {} C2B copies answered",
                    s.phone, p.c2b_copies
                ));
            }
        }
    }
    Ok(())
}

/// The case's intents and stored callbacks in order, for a failure message.
async fn history(pool: &PgPool, first_intent: i64, first_callback: i64) -> String {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT format('intent %s %s %s %s', id, phone, status, coalesce(result_code, '-')) \
           FROM payment_intents WHERE id > $1 \
         UNION ALL \
         SELECT line FROM ( \
           SELECT format('%s callback %s %s intent=%s payment=%s: %s', \
                         to_char(received_at, 'HH24:MI:SS.MS'), id, kind, intent_id, payment_id, \
                         coalesce(outcome, 'unprocessed')) AS line \
             FROM payment_callbacks WHERE id > $2 ORDER BY id) c",
    )
    .bind(first_intent)
    .bind(first_callback)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    rows.join("\n")
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The money rules; an empty list when they all hold.
async fn check(
    pool: &PgPool,
    fake: &FakeDaraja,
    customers: &[Customer],
    subs: &[Sub],
    pushes: &[Option<(Push, i64)>],
    (first_payment, first_callback, first_intent): (i64, i64, i64),
    case_start: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let ledger = fake.ledger();
    let rows = sqlx::query(
        "SELECT id, receipt, intent_id, subscriber_id, amount_kes, applied FROM payments \
          WHERE id > $1 ORDER BY id",
    )
    .bind(first_payment)
    .fetch_all(pool)
    .await
    .unwrap();
    struct P {
        id: i64,
        receipt: Option<String>,
        intent_id: Option<i64>,
        subscriber_id: Option<i64>,
        amount: i64,
        applied: String,
    }
    let payments: Vec<P> = rows
        .iter()
        .map(|r| P {
            id: r.get("id"),
            receipt: r.get("receipt"),
            intent_id: r.get("intent_id"),
            subscriber_id: r.get("subscriber_id"),
            amount: r.get("amount_kes"),
            applied: r.get("applied"),
        })
        .collect();

    // A push that only its receipt tells from one of the customer's paybill payments, and
    // whose receipt never reaches the daemon, may have one of the two taken for the other:
    // the daemon then has one payment too few for that customer (no more) until an
    // operator or Transaction Status by receipt supplies it.
    let ambiguous: Vec<bool> = customers
        .iter()
        .map(|c| {
            c.push
                .as_ref()
                .is_some_and(|p| p.result == PushResult::Paid && p.ambiguous_with(c))
        })
        .collect();
    let lossy: Vec<bool> = customers
        .iter()
        .map(|c| {
            c.push.as_ref().is_some_and(|p| {
                p.result == PushResult::Paid && p.ambiguous_with(c) && !p.receipt_reaches_daemon()
            })
        })
        .collect();
    let lossy_count = lossy.iter().filter(|l| **l).count();
    let sub_of_account = |account: &str| {
        subs.iter()
            .position(|s| s.username.eq_ignore_ascii_case(account))
    };

    // Every payment the daemon has is one M-Pesa made, and vice versa.
    if payments.len() > ledger.len() || payments.len() + lossy_count < ledger.len() {
        problems.push(format!(
            "{} payments credited, the fake's ledger has {}",
            payments.len(),
            ledger.len()
        ));
    }
    for p in &payments {
        if let Some(r) = &p.receipt
            && !ledger.iter().any(|e| &e.receipt == r)
        {
            problems.push(format!(
                "payment {} has receipt {r} M-Pesa never issued",
                p.id
            ));
        }
        if p.subscriber_id.is_none() {
            problems.push(format!("payment {} matched no subscriber", p.id));
        }
    }
    let intents: HashMap<String, (i64, String)> =
        sqlx::query("SELECT id, checkout_request_id, status FROM payment_intents WHERE id > $1")
            .bind(first_intent)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .filter_map(|r| {
                let checkout: Option<String> = r.get("checkout_request_id");
                checkout.map(|c| (c, (r.get("id"), r.get("status"))))
            })
            .collect();
    for e in &ledger {
        let by_receipt: Vec<&P> = payments
            .iter()
            .filter(|p| p.receipt.as_deref() == Some(e.receipt.as_str()))
            .collect();
        match &e.channel {
            Channel::C2b => {
                let may_be_taken = sub_of_account(&e.account_reference).is_some_and(|i| lossy[i]);
                if by_receipt.len() > 1 || (by_receipt.is_empty() && !may_be_taken) {
                    problems.push(format!(
                        "paybill receipt {} ({} KES for {}) credited {} times",
                        e.receipt,
                        e.amount,
                        e.account_reference,
                        by_receipt.len()
                    ));
                }
            }
            Channel::Stk {
                checkout_request_id,
            } => {
                let Some((intent, status)) = intents.get(checkout_request_id) else {
                    problems.push(format!("no intent for push {checkout_request_id}"));
                    continue;
                };
                if status != "paid" {
                    problems.push(format!("intent {intent} was paid but is {status}"));
                }
                let by_intent: Vec<&P> = payments
                    .iter()
                    .filter(|p| p.intent_id == Some(*intent))
                    .collect();
                let index = pushes
                    .iter()
                    .position(|p| p.as_ref().is_some_and(|(_, id)| id == intent));
                let receipt_known = index
                    .and_then(|i| pushes[i].as_ref())
                    .is_some_and(|(p, _)| p.receipt_reaches_daemon());
                let is_ambiguous = index.is_some_and(|i| ambiguous[i]);
                match by_intent.as_slice() {
                    [p] if p.receipt.as_deref() == Some(e.receipt.as_str()) => {}
                    [p] if p.receipt.is_none() && !receipt_known => {}
                    // Linked to the paybill payment it could not be told from (money checks
                    // below still apply).
                    [_] if is_ambiguous => {}
                    other => problems.push(format!(
                        "push receipt {} (intent {intent}): payments {:?} by intent, {} by receipt",
                        e.receipt,
                        other
                            .iter()
                            .map(|p| (p.id, p.receipt.clone()))
                            .collect::<Vec<_>>(),
                        by_receipt.len()
                    )),
                }
                if by_receipt.len() > 1 {
                    problems.push(format!("receipt {} credited twice", e.receipt));
                }
            }
        }
    }
    // Pushes that were not paid stay unpaid (unless the customer's own paybill payment could
    // not be told from the push's C2B copy: then it may be linked to the push, which the
    // money checks below keep honest); none is left pending.
    for (checkout, (intent, status)) in &intents {
        let paid = ledger.iter().any(|e| {
            matches!(&e.channel, Channel::Stk { checkout_request_id } if checkout_request_id == checkout)
        });
        let taken = pushes.iter().zip(customers).any(|(p, c)| {
            p.as_ref()
                .is_some_and(|(p, id)| id == intent && p.ambiguous_with(c))
        }) && payments
            .iter()
            .any(|p| p.intent_id == Some(*intent) && p.receipt.is_some());
        if !paid && status != "failed" && !(taken && status == "paid") {
            problems.push(format!("unpaid intent {intent} is {status}"));
        }
    }
    // Sums per subscriber, and what they buy.
    for (i, s) in subs.iter().enumerate() {
        let own_intent = pushes[i].as_ref().map(|(_, id)| *id);
        let paid: u64 = ledger
            .iter()
            .filter(|e| match &e.channel {
                Channel::C2b => e.account_reference.eq_ignore_ascii_case(&s.username),
                Channel::Stk {
                    checkout_request_id,
                } => intents
                    .get(checkout_request_id)
                    .is_some_and(|(id, _)| Some(*id) == own_intent),
            })
            .map(|e| e.amount)
            .sum();
        let paid = i64::try_from(paid).unwrap();
        let credited: i64 = payments
            .iter()
            .filter(|p| p.subscriber_id == Some(s.id))
            .map(|p| p.amount)
            .sum();
        if credited != paid && !(lossy[i] && credited == paid - PRICE) {
            problems.push(format!(
                "{}: credited {credited} KES, paid {paid} KES",
                s.username
            ));
            continue;
        }
        let renewals = payments
            .iter()
            .filter(|p| p.subscriber_id == Some(s.id) && p.applied == "renewed")
            .count();
        let row = sqlx::query(
            "SELECT wallet_balance_kes, \
                    (SELECT COALESCE(sum(amount_kes), 0)::bigint FROM wallet_entries w \
                      WHERE w.subscriber_id = s.id) AS entries, \
                    expires_at >= $2 + make_interval(secs => $3) AS not_short, \
                    expires_at <= now() + make_interval(secs => $3) AS not_long \
               FROM subscribers s WHERE id = $1",
        )
        .bind(s.id)
        .bind(case_start)
        .bind((DURATION_SECS * (credited / PRICE)) as f64)
        .fetch_one(pool)
        .await
        .unwrap();
        let wallet: i64 = row.get("wallet_balance_kes");
        let entries: i64 = row.get("entries");
        if i64::try_from(renewals).unwrap() != credited / PRICE || wallet != credited % PRICE {
            problems.push(format!(
                "{}: credited {credited} KES, {renewals} renewals and {wallet} KES in the wallet",
                s.username
            ));
        }
        if entries != wallet {
            problems.push(format!(
                "{}: wallet {wallet} KES but its entries sum to {entries}",
                s.username
            ));
        }
        if credited >= PRICE && !(row.get::<bool, _>("not_short") && row.get::<bool, _>("not_long"))
        {
            problems.push(format!(
                "{}: expiry is not {} periods on",
                s.username,
                credited / PRICE
            ));
        }
    }
    let unprocessed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payment_callbacks WHERE id > $1 AND processed_at IS NULL",
    )
    .bind(first_callback)
    .fetch_one(pool)
    .await
    .unwrap();
    if unprocessed > 0 {
        problems.push(format!("{unprocessed} stored callbacks not processed"));
    }
    problems
}

// ---------------------------------------------------------------------------------------

#[sqlx::test]
async fn every_interleaving_credits_each_payment_once(pool: PgPool) {
    sqlx::query(
        "INSERT INTO plans (id, name, rate_limit, price_kes, duration_seconds, service) \
         VALUES (1, 'monthly', '5M/5M', $1, $2, 'both')",
    )
    .bind(PRICE)
    .bind(DURATION_SECS)
    .execute(&pool)
    .await
    .unwrap();
    let api_token = billing_daemon::token::create(&pool, "test").await.unwrap();

    let seed: u64 = std::env::var("PAYPROP_SEED")
        .ok()
        .map(|s| s.parse().expect("PAYPROP_SEED is a number"))
        .unwrap_or_else(rand::random);
    let cases: u32 = std::env::var("PAYPROP_CASES")
        .ok()
        .map(|s| s.parse().expect("PAYPROP_CASES is a number"))
        .unwrap_or(12);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = scenario_strategy();
    let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
    for number in 0..cases {
        let scenario = strategy.new_tree(&mut runner).unwrap().current();
        for c in &scenario.customers {
            *summary.entry("customers").or_default() += 1;
            *summary.entry("paybills").or_default() += c.paybills.len();
        }
        *summary.entry("restarts").or_default() += scenario.restarts.len();
        let case = Case {
            pool: &pool,
            api_token: &api_token,
            number,
            scenario: &scenario,
        };
        if let Err(problems) = case.run().await {
            panic!(
                "case {number} failed (replay: PAYPROP_SEED={seed} PAYPROP_CASES={}):\n\
                 {problems}\nscenario: {scenario:#?}",
                number + 1
            );
        }
    }
    eprintln!("{cases} cases, seed {seed}: {summary:?}");
}
