//! End-to-end harness: a real stack per test.
//!
//! [`spawn_stack`] creates a fresh database on the test cluster
//! (`JASIYO_TEST_PG`, set by `scripts/test.sh`), migrates it with
//! `billing-daemon migrate`, starts `billing-daemon serve` on a port picked now,
//! creates an API token and (unless asked not to) a router for 127.0.0.1, then
//! builds a temporary raddb with `scripts/make-raddb.sh` and starts Debian's
//! `freeradius -X` on picked loopback ports with the freshly built module.
//! Requests go out through `radclient` from freeradius-utils and its output is
//! parsed into a [`Reply`].
//!
//! Each stack has its own accounting journal ([`Stack::journal_path`], in the
//! test's temporary directory, [`StackOptions::journal_capacity`] bytes): the
//! daemon creates it and radiusd's `jasiyo` appends to it, so Accounting-Requests
//! sent with [`Radius::send_acct`] land in Postgres. [`Stack::wait_journal_drained`]
//! and [`Stack::wait_for_sql`] wait for them there.
//!
//! Every process started here is killed by pid when the [`Stack`] drops, also
//! when the test panics; the logs of a failed test are printed then.
//!
//! The tests must run as root (radiusd switches to `freerad`, Postgres runs as
//! `postgres`) after `cargo build --workspace` (they run the built
//! `billing-daemon` and `librlm_jasiyo.so`). `scripts/test.sh` does both.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub(crate) mod acct;
pub(crate) mod coa_server;
pub(crate) mod hotspot;
pub(crate) mod mikrotik;

use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a condition that the product promises "within a second" may take
/// in a test before it fails: generous, because tests never assert on timing.
/// The C2B path token of the test stack's daemon.
pub(crate) const MPESA_C2B_TOKEN: &str = "e2ec2btokene2ec2btokene2ec2btoken";

pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
/// Start-up of the daemon or radiusd.
const STARTUP: Duration = Duration::from_secs(60);

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The checkout (root package) directory.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>` of the build this test binary belongs to.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

fn built(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, or run scripts/test.sh)",
        path.display()
    );
    path
}

/// The directory of shared fixtures next to the checkout (`../shared`), or
/// `JASIYO_SHARED_DIR` when set (a clone elsewhere, e.g. in CI).
pub(crate) fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("JASIYO_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    assert!(
        dir.join("fixtures/routeros").is_dir(),
        "{}/fixtures/routeros/ not found: the end-to-end tests need the shared fixtures next to \
         the repository (../shared), or JASIYO_SHARED_DIR pointing at them",
        dir.display()
    );
    dir
}

/// Options for [`spawn_stack_with`].
#[derive(Clone, Debug)]
pub(crate) struct StackOptions {
    /// Create a router for 127.0.0.1 (so radclient gets answers) before radiusd starts.
    pub(crate) local_router: bool,
    /// Run on a Postgres cluster of the test's own (for tests that stop Postgres)
    /// instead of the shared test cluster.
    pub(crate) own_postgres: bool,
    /// Size of the accounting journal the daemon creates (`JASIYO_JOURNAL_CAPACITY`:
    /// bytes, or with a K/M/G suffix; a multiple of 4096). Small sizes let a test fill it.
    pub(crate) journal_capacity: String,
    /// More environment for the daemon, after the defaults of [`daemon_command`] (which
    /// shorten the Disconnect/CoA retransmission times so a silent router is given up on
    /// in seconds).
    pub(crate) daemon_env: Vec<(&'static str, String)>,
    /// Seconds between the daemon's stale-session sweeps (`JASIYO_STALE_SWEEP_INTERVAL`;
    /// `None`: the daemon's default).
    pub(crate) stale_sweep_interval: Option<u32>,
    /// Interim interval the daemon assumes when a router sends none
    /// (`JASIYO_DEFAULT_INTERIM_INTERVAL`, seconds; `None`: the daemon's default).
    pub(crate) default_interim_interval: Option<u32>,
    /// Base URL of a fake Daraja (crates/fake-daraja, sandbox credentials) to take M-Pesa
    /// payments through; `None`: M-Pesa off.
    pub(crate) mpesa: Option<String>,
    /// Give the daemon its own address as `JASIYO_PUBLIC_URL` (set anyway with `mpesa`),
    /// so it serves the hotspot login page.
    pub(crate) public_url: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            local_router: true,
            own_postgres: false,
            journal_capacity: "8M".to_owned(),
            daemon_env: Vec::new(),
            stale_sweep_interval: None,
            default_interim_interval: None,
            mpesa: None,
            public_url: false,
        }
    }
}

pub(crate) async fn spawn_stack() -> Stack {
    spawn_stack_with(StackOptions::default()).await
}

/// A stack taking M-Pesa payments through a fake Daraja started here (sandbox credentials).
pub(crate) async fn spawn_stack_with_mpesa() -> (Stack, fake_daraja::FakeDaraja) {
    let fake = fake_daraja::FakeDaraja::start(fake_daraja::FakeConfig::sandbox()).await;
    let stack = spawn_stack_with(StackOptions {
        mpesa: Some(fake.base_url()),
        ..StackOptions::default()
    })
    .await;
    (stack, fake)
}

/// A running stack: database, daemon, radiusd. Drops kill what it started.
pub(crate) struct Stack {
    pub(crate) api: Api,
    pub(crate) radius: Radius,
    /// URL of this test's database (superuser).
    pub(crate) db_url: String,
    db_name: String,
    admin_url: String,
    daemon: Option<Child>,
    radiusd: Option<Child>,
    pg: Option<PgCluster>,
    dir: Option<tempfile::TempDir>,
    journal_capacity: String,
    /// Settings of the daemon from [`StackOptions`] (environment variables).
    daemon_env: Vec<(&'static str, String)>,
    /// The `/radius incoming` port of the local router: a socket of ours that never
    /// answers, so Disconnects the daemon sends it go nowhere else (3799 on this machine
    /// may be someone's).
    coa_sink: UdpSocket,
    mpesa: Option<String>,
    /// `JASIYO_PUBLIC_URL` = the daemon's address (see [`StackOptions::public_url`]).
    public_url: bool,
    /// The voucher key both the daemon (`JASIYO_VOUCHER_KEY_FILE`) and radiusd
    /// (`voucher_key_file`) read, for tests that compute voucher lookup names.
    pub(crate) voucher_key: jasiyo_snapshot::voucher::VoucherKey,
}

pub(crate) async fn spawn_stack_with(options: StackOptions) -> Stack {
    let daemon_bin = built("billing-daemon");
    let module = built("librlm_jasiyo.so");

    let dir = tempfile::Builder::new()
        .prefix("jasiyo-e2e-")
        .tempdir()
        .expect("tempdir");
    // radiusd runs as freerad and Postgres as postgres: both must get through.
    chmod(dir.path(), 0o755);
    let mut stack = Stack {
        api: Api::new("http://127.0.0.1:0".into(), String::new()),
        radius: Radius {
            auth_port: 0,
            acct_port: 0,
            secret: random_hex(12),
        },
        db_url: String::new(),
        db_name: format!(
            "e2e_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ),
        admin_url: String::new(),
        daemon: None,
        radiusd: None,
        pg: None,
        dir: None,
        journal_capacity: options.journal_capacity.clone(),
        daemon_env: [
            ("JASIYO_STALE_SWEEP_INTERVAL", options.stale_sweep_interval),
            (
                "JASIYO_DEFAULT_INTERIM_INTERVAL",
                options.default_interim_interval,
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?.to_string())))
        .chain(options.daemon_env.iter().cloned())
        .collect(),
        coa_sink: free_udp_socket(),
        mpesa: options.mpesa.clone(),
        public_url: options.public_url,
        voucher_key: write_voucher_key(&voucher_key_path(dir.path())),
    };
    let tmp = dir.path().to_path_buf();
    stack.dir = Some(dir);

    // Postgres: the shared test cluster, or one of our own.
    stack.admin_url = if options.own_postgres {
        let pg = PgCluster::start(&tmp.join("pg"));
        let url = pg.url();
        stack.pg = Some(pg);
        url
    } else {
        std::env::var("JASIYO_TEST_PG").unwrap_or_else(|_| {
            panic!(
                "JASIYO_TEST_PG is not set: run the tests with scripts/test.sh \
                 (it starts a private Postgres cluster and sets it)"
            )
        })
    };
    psql(
        &stack.admin_url,
        &format!("CREATE DATABASE {}", stack.db_name),
    );
    stack.db_url = with_database(&stack.admin_url, &stack.db_name);

    // The daemon.
    run_ok(
        daemon_command(&daemon_bin, &stack.db_url, &tmp).arg("migrate"),
        "billing-daemon migrate",
    );
    let token_out = run_ok(
        daemon_command(&daemon_bin, &stack.db_url, &tmp).args(["token", "create", "--name", "e2e"]),
        "billing-daemon token create",
    );
    let token = token_out
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .expect("billing-daemon token create printed a token")
        .to_string();
    let api_port = free_tcp_port();
    stack.api = Api::new(format!("http://127.0.0.1:{api_port}"), token);
    stack.start_daemon().await;

    if options.local_router {
        stack.create_local_router().await;
    }

    // radiusd: make-raddb.sh copies the module into the raddb (the build
    // directory may not be reachable for freerad).
    let (auth_sock, acct_sock) = (free_udp_socket(), free_udp_socket());
    stack.radius.auth_port = auth_sock.local_addr().expect("addr").port();
    stack.radius.acct_port = acct_sock.local_addr().expect("addr").port();
    let raddb = tmp.join("raddb");
    run_ok(
        Command::new(repo_root().join("scripts/make-raddb.sh"))
            .arg(&raddb)
            .args(["--auth-port", &stack.radius.auth_port.to_string()])
            .args(["--acct-port", &stack.radius.acct_port.to_string()])
            .arg("--snapshot-dir")
            .arg(tmp.join("snapshot"))
            .arg("--journal")
            .arg(journal_path(&tmp))
            .arg("--voucher-key-file")
            .arg(voucher_key_path(&tmp))
            .arg("--module")
            .arg(&module),
        "scripts/make-raddb.sh",
    );
    drop((auth_sock, acct_sock));
    let radiusd_log = fs::File::create(tmp.join("radiusd.log")).expect("radiusd.log");
    let child = Command::new("freeradius")
        .env(
            "FR_LIBRARY_PATH",
            format!("{}:/usr/lib/freeradius", raddb.join("lib").display()),
        )
        .arg("-X")
        .arg("-d")
        .arg(&raddb)
        .stdin(Stdio::null())
        .stdout(radiusd_log.try_clone().expect("dup"))
        .stderr(radiusd_log)
        .spawn()
        .expect("spawn freeradius");
    stack.radiusd = Some(child);
    stack.wait_radiusd_ready().await;
    stack
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Stack {
    fn tmp(&self) -> &Path {
        self.dir.as_ref().expect("tempdir").path()
    }

    /// What the daemon has logged so far.
    pub(crate) fn daemon_log(&self) -> String {
        fs::read_to_string(self.tmp().join("daemon.log")).unwrap_or_default()
    }

    /// The router for 127.0.0.1 with this stack's secret, via the API.
    pub(crate) async fn create_local_router(&self) -> Value {
        self.api
            .create(
                "/routers",
                json!({"name": "e2e-local", "ip": "127.0.0.1", "secret": self.radius.secret,
                       "coa_port": self.coa_sink.local_addr().expect("coa sink").port()}),
            )
            .await
    }

    async fn wait_healthy(&mut self) {
        let url = format!("{}/healthz", self.api.base);
        let start = Instant::now();
        loop {
            if let Ok(resp) = self.api.http.get(&url).send().await
                && resp.status().is_success()
            {
                return;
            }
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!(
                    "billing-daemon serve exited ({status}) before /healthz answered:\n{}",
                    tail(&self.tmp().join("daemon.log"), 40)
                );
            }
            assert!(
                start.elapsed() < STARTUP,
                "billing-daemon: /healthz not 200 after {STARTUP:?}:\n{}",
                tail(&self.tmp().join("daemon.log"), 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_radiusd_ready(&mut self) {
        let log = self.tmp().join("radiusd.log");
        let start = Instant::now();
        loop {
            if fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Ready to process requests")
            {
                return;
            }
            if let Some(status) = self
                .radiusd
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!(
                    "freeradius exited ({status}) during start-up:\n{}",
                    tail(&log, 60)
                );
            }
            assert!(
                start.elapsed() < STARTUP,
                "freeradius not ready after {STARTUP:?}:\n{}",
                tail(&log, 60)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The accounting journal the daemon consumes and radiusd appends to
    /// (`<test tmp>/journal/accounting.journal`).
    pub(crate) fn journal_path(&self) -> PathBuf {
        journal_path(self.tmp())
    }

    /// Starts `billing-daemon serve` on the stack's API port (again, after
    /// [`Stack::stop_daemon`] or [`Stack::kill_daemon`]) and waits for `/healthz`.
    /// The daemon reopens the same journal and resumes from its read position.
    pub(crate) async fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "billing-daemon is already running");
        let tmp = self.tmp().to_path_buf();
        let listen = self
            .api
            .base
            .strip_prefix("http://")
            .expect("http API")
            .to_owned();
        // Appended, so the log of a daemon killed earlier is kept.
        let daemon_log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(tmp.join("daemon.log"))
            .expect("daemon.log");
        let child = daemon_command(&built("billing-daemon"), &self.db_url, &tmp)
            .arg("serve")
            .env("JASIYO_LISTEN", listen)
            .env("JASIYO_JOURNAL_CAPACITY", &self.journal_capacity)
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .envs(self.mpesa_env())
            .stdout(daemon_log.try_clone().expect("dup"))
            .stderr(daemon_log)
            .spawn()
            .expect("spawn billing-daemon serve");
        self.daemon = Some(child);
        self.wait_healthy().await;
    }

    /// The daemon's M-Pesa settings for the fake Daraja, if there is one: the fake's
    /// sandbox credentials, this daemon's API address as the callback base, and STK Query
    /// timings short enough for a test.
    fn mpesa_env(&self) -> Vec<(&'static str, String)> {
        let Some(base) = &self.mpesa else {
            return if self.public_url {
                vec![("JASIYO_PUBLIC_URL", self.api.base.clone())]
            } else {
                Vec::new()
            };
        };
        vec![
            ("JASIYO_MPESA_ENVIRONMENT", base.clone()),
            ("JASIYO_MPESA_CONSUMER_KEY", "test-key".to_owned()),
            ("JASIYO_MPESA_CONSUMER_SECRET", "test-secret".to_owned()),
            (
                "JASIYO_MPESA_PASSKEY",
                fake_daraja::SANDBOX_PASSKEY.to_owned(),
            ),
            ("JASIYO_MPESA_SHORTCODE", "174379".to_owned()),
            ("JASIYO_PUBLIC_URL", self.api.base.clone()),
            ("JASIYO_MPESA_C2B_TOKEN", MPESA_C2B_TOKEN.to_owned()),
            ("JASIYO_MPESA_QUERY_AFTER", "0.5".to_owned()),
            ("JASIYO_MPESA_QUERY_INTERVAL", "0.5".to_owned()),
        ]
    }

    /// A client that sends Accounting-Requests to radiusd as a router does
    /// (retransmitting until answered), with this stack's secret.
    pub(crate) fn acct(&self) -> acct::AcctClient {
        acct::AcctClient::new(self.radius.acct_port, &self.radius.secret)
    }

    /// Starts this stack's own Postgres cluster again, on the same port (needs
    /// `own_postgres`), after [`Stack::stop_postgres`].
    pub(crate) fn restart_postgres(&mut self) {
        self.pg
            .as_mut()
            .expect("restart_postgres needs StackOptions::own_postgres")
            .restart();
    }

    /// Kills billing-daemon with SIGKILL (no clean shutdown), and reaps it.
    pub(crate) fn kill_daemon(&mut self) {
        if let Some(child) = self.daemon.take() {
            kill(child);
        }
    }

    /// The daemon's `/healthz` body (snapshot generation and the `journal` numbers:
    /// `reserved`, `committed`, `lag_bytes`, `records_applied_total`, ...).
    pub(crate) async fn health(&self) -> Value {
        let url = format!("{}/healthz", self.api.base);
        let resp = self
            .api
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        resp.json().await.unwrap_or(Value::Null)
    }

    /// Waits until `sql` (one value, as psql prints it unaligned) equals `expected`;
    /// panics after [`DEADLINE`] with the last value. For rows that the journal
    /// consumer writes a few milliseconds after radiusd answered.
    pub(crate) async fn wait_for_sql(&self, sql: &str, expected: &str) -> String {
        let found = poll_async(DEADLINE, async || {
            let got = self.sql(sql);
            if got.trim() == expected {
                Ok(got)
            } else {
                Err(got)
            }
        })
        .await;
        found.unwrap_or_else(|got| {
            panic!(
                "{sql}: {got:?}, not {expected:?} after {DEADLINE:?}\n---- daemon log ----\n{}",
                tail(&self.tmp().join("daemon.log"), 30)
            )
        })
    }

    /// Waits until the journal is drained into Postgres (`/healthz` journal
    /// `committed == reserved`). After it, every acknowledged Accounting-Request
    /// and post-auth result is in the database.
    pub(crate) async fn wait_journal_drained(&self) {
        let drained = poll_async(DEADLINE, async || {
            let h = self.health().await;
            let j = &h["journal"];
            if j["reserved"].is_u64() && j["reserved"] == j["committed"] {
                Ok(())
            } else {
                Err(h.to_string())
            }
        })
        .await;
        if let Err(h) = drained {
            panic!(
                "journal not drained after {DEADLINE:?}: {h}\n---- daemon log ----\n{}",
                tail(&self.tmp().join("daemon.log"), 30)
            );
        }
    }

    /// Kills billing-daemon (SIGTERM, then waits for it).
    pub(crate) fn stop_daemon(&mut self) {
        if let Some(child) = self.daemon.take() {
            terminate(child, "billing-daemon");
        }
    }

    /// Stops this stack's own Postgres cluster (needs `own_postgres`).
    pub(crate) fn stop_postgres(&mut self) {
        self.pg
            .as_mut()
            .expect("stop_postgres needs StackOptions::own_postgres")
            .stop();
    }

    /// Is radiusd still running?
    pub(crate) fn radiusd_alive(&mut self) -> bool {
        self.radiusd
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// Runs SQL on this test's database (as the superuser), like an operator in psql.
    /// The output has no trailing newline.
    pub(crate) fn sql(&self, statement: &str) -> String {
        psql(&self.db_url, statement).trim_end().to_owned()
    }

    /// A plan with sensible defaults, overridden by `fields`; returns its id.
    pub(crate) async fn create_plan(&self, fields: Value) -> i64 {
        let mut body = json!({
            "name": format!("plan-{}", random_hex(4)),
            "rate_limit": "2M/5M",
            "price_kes": 1000,
            "duration_seconds": 30 * 86400,
            "service": "both",
        });
        merge(&mut body, fields);
        id_of(&self.api.create("/plans", body).await)
    }

    /// An active subscriber expiring in a day, overridden by `fields`.
    pub(crate) async fn create_subscriber(
        &self,
        username: &str,
        password: &str,
        plan_id: i64,
        fields: Value,
    ) -> Value {
        let mut body = json!({
            "username": username,
            "password": password,
            "plan_id": plan_id,
            "expires_at": rfc3339_in(86400),
        });
        merge(&mut body, fields);
        self.api.create("/subscribers", body).await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(child) = self.radiusd.take() {
            kill(child);
        }
        if let Some(child) = self.daemon.take() {
            kill(child);
        }
        if std::thread::panicking()
            && let Some(dir) = &self.dir
        {
            eprintln!(
                "---- billing-daemon log (tail) ----\n{}\n---- radiusd log (tail) ----\n{}",
                tail(&dir.path().join("daemon.log"), 60),
                tail(&dir.path().join("radiusd.log"), 120)
            );
        }
        if self.pg.is_none() && !self.admin_url.is_empty() {
            // Best effort: the test cluster is thrown away at the end of the run anyway.
            let _ = Command::new(format!("{PG_BIN}/psql"))
                .arg(&self.admin_url)
                .args([
                    "-X",
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // Stop our own cluster before its directory goes.
        drop(self.pg.take());
        if std::env::var_os("JASIYO_E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping {}", dir.keep().display());
        }
    }
}

/// The journal of the stack in `tmp`.
fn journal_path(tmp: &Path) -> PathBuf {
    tmp.join("journal/accounting.journal")
}

/// The voucher key file of the stack in `tmp`.
fn voucher_key_path(tmp: &Path) -> PathBuf {
    tmp.join("voucher.key")
}

/// Writes a fresh voucher key file readable by radiusd's group, as the daemon would.
fn write_voucher_key(path: &Path) -> jasiyo_snapshot::voucher::VoucherKey {
    let hex = random_hex(32);
    fs::write(path, format!("{hex}\n")).expect("write voucher key");
    chmod(path, 0o640);
    run_ok(
        Command::new("chgrp").arg("freerad").arg(path),
        "chgrp freerad voucher.key",
    );
    jasiyo_snapshot::voucher::VoucherKey::from_hex(&hex).expect("valid key")
}

fn daemon_command(bin: &Path, db_url: &str, tmp: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("DATABASE_URL", db_url)
        .env("JASIYO_SNAPSHOT_DIR", tmp.join("snapshot"))
        .env("JASIYO_JOURNAL_PATH", journal_path(tmp))
        // The key the stack wrote for radiusd's module too (the daemon creates one when
        // there is none, as on a fresh install).
        .env("JASIYO_VOUCHER_KEY_FILE", voucher_key_path(tmp))
        .env("JASIYO_SNAPSHOT_GROUP", "freerad")
        .env("JASIYO_LOG", "info")
        // RFC 5080's schedule (2 s doubling to 16 s, 30 s per exchange, rounds a minute
        // apart) shortened, so a test of a silent router ends in seconds.
        .env("JASIYO_COA_TIMEOUT", "0.2")
        .env("JASIYO_COA_MAX_TIMEOUT", "0.4")
        .env("JASIYO_COA_TRANSMISSIONS", "3")
        .env("JASIYO_COA_MAX_DURATION", "2")
        .env("JASIYO_ENFORCEMENT_ROUNDS", "2")
        .env("JASIYO_ENFORCEMENT_ROUND_BACKOFF", "0.3")
        .stdin(Stdio::null());
    cmd
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn terminate(mut child: Child, what: &str) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            eprintln!("{what} ignored SIGTERM for 20 s; killing it");
            kill(child);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ Postgres

/// A private cluster of the test's own, managed by scripts/pg-cluster.sh.
pub(crate) struct PgCluster {
    dir: PathBuf,
    port: u16,
    running: bool,
}

fn pg_cluster_script() -> PathBuf {
    std::env::var_os("JASIYO_PG_CLUSTER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("scripts/pg-cluster.sh"))
}

impl PgCluster {
    pub(crate) fn start(dir: &Path) -> Self {
        let script = pg_cluster_script();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_tcp_port();
            let port_s = port.to_string();
            if !dir.join("PG_VERSION").exists() {
                run_ok(
                    Command::new(&script)
                        .args(["init"])
                        .arg(dir)
                        .arg(&port_s)
                        .env("JASIYO_PG_EPHEMERAL", "1"),
                    "pg-cluster.sh init",
                );
            }
            let out = Command::new(&script)
                .arg("start")
                .arg(dir)
                .arg(&port_s)
                .output()
                .expect("run pg-cluster.sh");
            if out.status.success() {
                return Self {
                    dir: dir.to_path_buf(),
                    port,
                    running: true,
                };
            }
            last_error = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("pg-cluster.sh start failed five times:\n{last_error}");
    }

    pub(crate) fn url(&self) -> String {
        run_ok(
            Command::new(pg_cluster_script())
                .arg("url")
                .arg(&self.dir)
                .arg(self.port.to_string()),
            "pg-cluster.sh url",
        )
        .trim()
        .to_string()
    }

    /// Starts the stopped cluster again on its port (the daemon's URL stays valid).
    pub(crate) fn restart(&mut self) {
        if !self.running {
            run_ok(
                Command::new(pg_cluster_script())
                    .arg("start")
                    .arg(&self.dir)
                    .arg(self.port.to_string()),
                "pg-cluster.sh start",
            );
            self.running = true;
        }
    }

    pub(crate) fn stop(&mut self) {
        if self.running {
            run_ok(
                Command::new(pg_cluster_script())
                    .arg("stop")
                    .arg(&self.dir)
                    .arg(self.port.to_string()),
                "pg-cluster.sh stop",
            );
            self.running = false;
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new(pg_cluster_script())
                .arg("stop")
                .arg(&self.dir)
                .arg(self.port.to_string())
                .status();
        }
    }
}

/// Runs one statement with psql; returns its unaligned output. Panics on error.
pub(crate) fn psql(url: &str, statement: &str) -> String {
    run_ok(
        Command::new(format!("{PG_BIN}/psql"))
            .arg(url)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", statement])
            .env("PGCONNECT_TIMEOUT", "10"),
        &format!("psql -c {statement:?}"),
    )
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let cut = url.rfind('/').expect("database URL has a path");
    format!("{}/{db}", &url[..cut])
}

// ------------------------------------------------------------------ API

/// The daemon's REST API, authenticated with this stack's token.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base: String, token: String) -> Self {
        Self {
            base,
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
        }
    }

    /// Sends `method path` (under /api/v1) with an optional JSON body; returns
    /// the status and the JSON body (Null when empty or not JSON).
    pub(crate) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POST that must succeed (2xx); returns the created object.
    pub(crate) async fn create(&self, path: &str, body: Value) -> Value {
        self.expect_ok(reqwest::Method::POST, path, Some(body))
            .await
    }

    /// GET that must succeed; returns the JSON body.
    pub(crate) async fn get(&self, path: &str) -> Value {
        self.expect_ok(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str) -> Value {
        self.expect_ok(reqwest::Method::POST, path, None).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> Value {
        self.expect_ok(reqwest::Method::PATCH, path, Some(body))
            .await
    }

    async fn expect_ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.request(method.clone(), path, body.clone()).await;
        assert!(
            status.is_success(),
            "{method} /api/v1{path} {}: {status} {value}",
            body.map(|b| b.to_string()).unwrap_or_default()
        );
        value
    }
}

/// Calls `check` until it returns `Some`, every 100 ms; panics after `deadline`.
/// For conditions the product reaches by itself (never a timing assertion).
pub(crate) async fn poll<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    poll_async(deadline, async || check().ok_or_else(String::new))
        .await
        .unwrap_or_else(|_| panic!("{what}: not so after {deadline:?}"))
}

/// The one polling loop of the harness: awaits `check` every 100 ms until it returns `Ok`;
/// after `deadline`, returns the last `Err` (what it saw, for the caller's panic message).
pub(crate) async fn poll_async<T>(
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(last) if start.elapsed() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub(crate) fn id_of(value: &Value) -> i64 {
    value["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no numeric id in {value}"))
}

pub(crate) fn merge(base: &mut Value, fields: Value) {
    if let (Some(base), Value::Object(fields)) = (base.as_object_mut(), fields) {
        for (k, v) in fields {
            base.insert(k, v);
        }
    }
}

/// RFC 3339 time `seconds` from now (negative: in the past).
pub(crate) fn rfc3339_in(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ------------------------------------------------------------------ RADIUS

/// Where radiusd listens and the secret of the 127.0.0.1 router.
#[derive(Clone, Debug)]
pub(crate) struct Radius {
    pub(crate) auth_port: u16,
    pub(crate) acct_port: u16,
    pub(crate) secret: String,
}

/// One radclient exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    /// "Access-Accept", "Access-Reject", ...; None when no reply came.
    pub(crate) code: Option<String>,
    /// Reply attributes in order, values as radclient prints them with the
    /// quotes of strings removed.
    pub(crate) attrs: Vec<(String, String)>,
    /// radclient's whole output, for failure messages.
    pub(crate) output: String,
}

impl Reply {
    pub(crate) fn is_accept(&self) -> bool {
        self.code.as_deref() == Some("Access-Accept")
    }

    pub(crate) fn is_reject(&self) -> bool {
        self.code.as_deref() == Some("Access-Reject")
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// The attributes minus those that differ on every packet
    /// (Message-Authenticator, and what MS-CHAP derives from the challenge).
    pub(crate) fn stable_attrs(&self) -> Vec<(String, String)> {
        self.attrs
            .iter()
            .filter(|(n, _)| n != "Message-Authenticator" && !n.starts_with("MS-"))
            .cloned()
            .collect()
    }

    /// Parses radclient -x output: the attribute lines after "Received <code>".
    pub(crate) fn parse(output: &str) -> Self {
        let mut code = None;
        let mut attrs = Vec::new();
        let mut in_reply = false;
        for line in output.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("Received ") {
                code = rest.split_whitespace().next().map(str::to_string);
                in_reply = true;
                continue;
            }
            if line.starts_with("Sent ") || line.starts_with('(') {
                in_reply = false;
            }
            if in_reply && line.starts_with(char::is_whitespace) {
                if let Some((name, value)) = line.trim().split_once(" = ") {
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value);
                    attrs.push((name.to_string(), value.to_string()));
                }
            }
        }
        Self {
            code,
            attrs,
            output: output.to_string(),
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.output)
    }
}

/// A radclient attribute value for a string.
pub(crate) fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::from("0x"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Attributes of a PPPoE Access-Request as RouterOS sends them.
pub(crate) fn pppoe_attrs(username: &str) -> Vec<(String, String)> {
    vec![
        ("Service-Type".into(), "Framed-User".into()),
        ("Framed-Protocol".into(), "PPP".into()),
        ("User-Name".into(), quoted(username)),
        ("NAS-Port-Type".into(), "Ethernet".into()),
        ("Calling-Station-Id".into(), quoted("EC:F4:BB:FA:36:C9")),
        ("NAS-Identifier".into(), quoted("e2e")),
        ("Message-Authenticator".into(), "0x00".into()),
    ]
}

/// PPPoE with PAP.
pub(crate) fn pap(username: &str, password: &str) -> Vec<(String, String)> {
    let mut attrs = pppoe_attrs(username);
    attrs.push(("User-Password".into(), quoted(password)));
    attrs
}

/// PPPoE with CHAP (radclient computes CHAP-Password from the cleartext).
pub(crate) fn chap(username: &str, password: &str) -> Vec<(String, String)> {
    let mut attrs = pppoe_attrs(username);
    attrs.push(("CHAP-Password".into(), quoted(password)));
    attrs
}

/// A PPPoE MS-CHAPv2 request (radclient itself only does MS-CHAPv1) and the
/// authenticator response a server that knows the password must send back.
pub(crate) struct MsChapV2 {
    pub(crate) attrs: Vec<(String, String)>,
    /// `S=<40 hex digits>` expected in MS-CHAP2-Success (after its ident octet).
    pub(crate) expected_success: String,
}

pub(crate) fn mschapv2_request(username: &str, password: &str) -> MsChapV2 {
    use radius_proto::mschap;
    let auth_challenge: [u8; 16] = random_bytes();
    let peer_challenge: [u8; 16] = random_bytes();
    let user = username.as_bytes();
    let response = mschap::ms_chap2_response(1, &auth_challenge, &peer_challenge, user, password);
    let nt: [u8; 24] = response[26..].try_into().expect("24 bytes");
    let mut attrs = pppoe_attrs(username);
    attrs.push(("MS-CHAP-Challenge".into(), hex(&auth_challenge)));
    attrs.push(("MS-CHAP2-Response".into(), hex(&response)));
    MsChapV2 {
        attrs,
        expected_success: mschap::authenticator_response(
            password,
            &nt,
            &peer_challenge,
            &auth_challenge,
            user,
        ),
    }
}

/// PPPoE with MS-CHAPv2.
pub(crate) fn mschapv2(username: &str, password: &str) -> Vec<(String, String)> {
    mschapv2_request(username, password).attrs
}

/// Decodes radclient's `0x...` octets.
pub(crate) fn unhex(value: &str) -> Vec<u8> {
    let digits = value.strip_prefix("0x").unwrap_or(value);
    (0..digits.len() / 2)
        .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Hotspot login with PAP, as RouterOS sends it (Login-User + Mikrotik-Host-IP).
pub(crate) fn hotspot_pap(username: &str, password: &str) -> Vec<(String, String)> {
    vec![
        ("Service-Type".into(), "Login-User".into()),
        ("User-Name".into(), quoted(username)),
        ("User-Password".into(), quoted(password)),
        ("NAS-Port-Type".into(), "Wireless-802.11".into()),
        ("Calling-Station-Id".into(), quoted("A4:17:31:41:CB:B6")),
        ("Framed-IP-Address".into(), "192.168.10.183".into()),
        ("Mikrotik-Host-IP".into(), "192.168.10.183".into()),
        ("NAS-Identifier".into(), quoted("e2e")),
        ("Message-Authenticator".into(), "0x00".into()),
    ]
}

impl Radius {
    /// Sends one Access-Request with these attributes (radclient input syntax)
    /// and the stack's secret.
    pub(crate) async fn send(&self, attrs: &[(String, String)]) -> Reply {
        let input: String = attrs.iter().map(|(n, v)| format!("{n} = {v}\n")).collect();
        self.send_raw(&input, &self.secret).await
    }

    /// Sends radclient input text (one packet) to the auth port.
    pub(crate) async fn send_raw(&self, input: &str, secret: &str) -> Reply {
        radclient(
            self.auth_port,
            "auth",
            input,
            secret,
            &["-r", "1", "-t", "2"],
        )
        .await
    }

    /// Sends one Accounting-Request with these attributes (radclient input
    /// syntax, e.g. `("Acct-Status-Type", "Start")`) and the stack's secret.
    /// radclient adds the Request Authenticator. `reply.code` is
    /// `Some("Accounting-Response")` once radiusd has the packet in the journal,
    /// `None` when no response came (one try, 2 s timeout).
    pub(crate) async fn send_acct(&self, attrs: &[(String, String)]) -> Reply {
        let input: String = attrs.iter().map(|(n, v)| format!("{n} = {v}\n")).collect();
        self.send_acct_raw(&input, &["-r", "1", "-t", "2"]).await
    }

    /// Sends radclient input text to the acct port with extra radclient options
    /// (e.g. `["-r", "10", "-t", "1"]` to keep retransmitting, or `-c`/`-p` for
    /// many packets; blank-line separated packets in `input`).
    pub(crate) async fn send_acct_raw(&self, input: &str, options: &[&str]) -> Reply {
        radclient(self.acct_port, "acct", input, &self.secret, options).await
    }

    /// Sends the request until `done(reply)` holds; panics after [`DEADLINE`]
    /// with the last reply. Returns the reply that satisfied it.
    pub(crate) async fn poll_until(
        &self,
        attrs: impl Fn() -> Vec<(String, String)>,
        what: &str,
        done: impl Fn(&Reply) -> bool,
    ) -> Reply {
        let found = poll_async(DEADLINE, async || {
            let reply = self.send(&attrs()).await;
            if done(&reply) {
                Ok(reply)
            } else {
                Err(reply.to_string())
            }
        })
        .await;
        found
            .unwrap_or_else(|last| panic!("{what}: not so after {DEADLINE:?}; last reply:\n{last}"))
    }
}

/// Runs radclient once against 127.0.0.1:`port` with `command` (auth, acct)
/// and parses its output.
async fn radclient(port: u16, command: &str, input: &str, secret: &str, options: &[&str]) -> Reply {
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    radclient_at(server, command, input, secret, options).await
}

/// Runs radclient once against `server` with `command` (auth, acct, coa, disconnect)
/// and parses its output.
pub(crate) async fn radclient_at(
    server: std::net::SocketAddr,
    command: &str,
    input: &str,
    secret: &str,
    options: &[&str],
) -> Reply {
    let mut child = tokio::process::Command::new("radclient")
        .arg("-x")
        .args(options)
        .arg(server.to_string())
        .arg(command)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn radclient (apt-get install freeradius-utils)");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).await.expect("write");
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("radclient hung")
        .expect("radclient");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Reply::parse(&text)
}

/// The radclient input for a fixture file: its attribute lines, without the
/// `#` comment lines.
pub(crate) fn fixture_packet(path: &Path) -> String {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

// ------------------------------------------------------------------ small things

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

pub(crate) fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn free_udp_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0")
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .expect("/dev/urandom");
    buf
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let buf: [u8; 32] = random_bytes();
    buf[..bytes.min(32)].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
