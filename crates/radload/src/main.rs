//! `jasiyo-radload`: a RADIUS load generator for benchmarking FreeRADIUS configurations.
//!
//! It sends PAP Access-Requests (with Message-Authenticator, like RouterOS v7), or
//! Accounting-Request Interim-Updates (`--kind interim`), for a population of subscribers,
//! keeps a fixed number of requests in flight, retransmits on timeout, verifies every reply's
//! authenticators, and reports throughput and latency.
//!
//! ```text
//! jasiyo-radload --server 127.0.0.1:41812 --secret testing123 \
//!     --users 'sub{n}' --password-pattern 'pw{n}' --count 1000000 \
//!     --window 256 --duration 10 --json
//! ```
//!
//! It always stops by itself: after `--requests` requests or `--duration` seconds
//! (default 10 s if neither is given), plus at most `timeout × (retries + 1)` to drain.

#![forbid(unsafe_code)]

mod stats;
mod users;
mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use crate::stats::{Report, Stats, percentiles};
use crate::users::{Pattern, Users};
use crate::worker::{Kind, Service, Shared};

/// What the replies are expected to be; anything else makes the exit status 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Expect {
    /// Every request answered with Access-Accept.
    Accept,
    /// Every request answered with Access-Reject.
    Reject,
    /// Every request answered with Accounting-Response.
    AccountingResponse,
    /// Anything goes (exit status 0 unless a run-time error occurs).
    Any,
}

/// RADIUS load generator: PAP Access-Requests or accounting Interim-Updates with a fixed
/// in-flight window.
#[derive(Debug, Parser)]
#[command(name = "jasiyo-radload", version, about)]
struct Cli {
    /// RADIUS authentication server, host:port.
    #[arg(long)]
    server: String,
    /// Shared secret.
    #[arg(long, env = "RADLOAD_SECRET", hide_env_values = true)]
    secret: String,
    /// Source IPv4 address to send from (e.g. 127.0.0.2 to appear as another NAS).
    #[arg(long, default_value = "127.0.0.1")]
    bind: Ipv4Addr,
    /// NAS-IP-Address to send (default: the --bind address).
    #[arg(long)]
    nas_ip: Option<Ipv4Addr>,
    /// NAS-Identifier to send (pppoe and hotspot services).
    #[arg(long, default_value = "radload")]
    nas_identifier: String,

    /// Username pattern; the placeholder n in braces is replaced by the subscriber number.
    #[arg(long, default_value = "user{n}")]
    users: String,
    /// Password pattern, with the same placeholder as the username pattern.
    #[arg(long, default_value = "pass{n}")]
    password_pattern: String,
    /// One password for every user (overrides --password-pattern; default password for
    /// --users-file lines without one).
    #[arg(long)]
    password: Option<String>,
    /// Number of distinct subscribers in the pattern population.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// First subscriber number.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Read `username password` lines from this file instead of using patterns.
    #[arg(long, conflicts_with_all = ["users", "count", "start"])]
    users_file: Option<PathBuf>,
    /// Pick subscribers uniformly at random instead of in order.
    #[arg(long)]
    random: bool,
    /// Which RouterOS service the requests imitate.
    #[arg(long, value_enum, default_value_t = Service::Pppoe)]
    service: Service,
    /// What to send: Access-Requests (to the authentication port) or Interim-Updates (to
    /// the accounting port; one session per subscriber, counters growing with every packet).
    #[arg(long, value_enum, default_value_t = Kind::Access)]
    kind: Kind,

    /// Requests in flight at any time (split over ceil(window/128) sockets).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Stop issuing after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Stop issuing after this many seconds (default 10 if --requests is not given).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds to wait for a reply before retransmitting (FreeRADIUS delays rejects by
    /// `reject_delay`, 1 s by default, so keep this above it when rejects are expected).
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
    /// Retransmissions before a request counts as timed out.
    #[arg(long, default_value_t = 2)]
    retries: u32,

    /// Do not add Message-Authenticator to requests.
    #[arg(long)]
    no_message_authenticator: bool,
    /// Count verified replies without Message-Authenticator as failures.
    #[arg(long)]
    require_message_authenticator: bool,
    /// Exit with status 2 unless every request got this answer.
    #[arg(long, value_enum, default_value_t = Expect::Any)]
    expect: Expect,
    /// Print the result as one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Requests in flight per UDP socket.
const PER_SOCKET_WINDOW: usize = 128;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("jasiyo-radload: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn resolve_v4(server: &str) -> anyhow::Result<SocketAddr> {
    server
        .to_socket_addrs()
        .with_context(|| format!("resolving {server}"))?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("{server} has no IPv4 address"))
}

fn run() -> anyhow::Result<bool> {
    let cli = Cli::parse();
    let server = resolve_v4(&cli.server)?;
    if cli.window == 0 {
        bail!("--window must be at least 1");
    }
    if !(cli.timeout > 0.0 && cli.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let users = match &cli.users_file {
        Some(path) => Users::from_file(path, cli.password.as_deref())?,
        None => {
            if cli.count == 0 {
                bail!("--count must be at least 1");
            }
            let password = cli
                .password
                .as_deref()
                .map_or_else(|| Pattern::parse(&cli.password_pattern), Pattern::parse);
            Users::Pattern {
                user: Pattern::parse(&cli.users),
                password,
                start: cli.start,
                count: cli.count,
            }
        }
    };
    let duration = match (cli.requests, cli.duration) {
        (None, None) => Some(10.0),
        (_, d) => d,
    };
    let duration = duration
        .map(|d| {
            if d > 0.0 && d.is_finite() {
                Ok(Duration::from_secs_f64(d))
            } else {
                bail!("--duration must be a positive number of seconds")
            }
        })
        .transpose()?;

    // At most half of a socket's 256 identifiers in flight: freed identifiers queue up, so one
    // is reused only after 128 others. Reusing it at once makes radiusd, which still holds
    // the answered request for duplicate detection, drop the new one as "conflicting".
    let sockets = cli.window.div_ceil(PER_SOCKET_WINDOW);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        server,
        bind: cli.bind,
        secret: cli.secret.into_bytes(),
        users,
        random_users: cli.random,
        service: cli.service,
        kind: cli.kind,
        nas_ip: cli.nas_ip.unwrap_or(cli.bind),
        nas_identifier: cli.nas_identifier,
        message_authenticator: !cli.no_message_authenticator,
        require_message_authenticator: cli.require_message_authenticator,
        timeout: Duration::from_secs_f64(cli.timeout),
        retries: cli.retries,
        max_requests: cli.requests.unwrap_or(u64::MAX),
        deadline: duration.map(|d| start + d),
        issued: AtomicU64::new(0),
    });

    let handles: Vec<_> = (0..sockets)
        .map(|i| {
            // Spread the window evenly: the first `window % sockets` workers get one more.
            let w = cli.window / sockets + usize::from(i < cli.window % sockets);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("radload-{i}"))
                .spawn(move || worker::run(&shared, w))
        })
        .collect::<Result<_, _>>()
        .context("spawning worker threads")?;
    let mut stats = Stats::default();
    for h in handles {
        let s = h
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        stats.merge(s);
    }
    let elapsed = start.elapsed();

    let mut report = Report {
        stats,
        elapsed,
        window: cli.window,
        sockets,
        server: match server.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", server.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", server.port()),
        },
    };
    let p = percentiles(&mut report.stats.latencies_us);
    let line = report.summary_line(&p);
    if cli.json {
        eprintln!("{line}");
        println!("{}", report.json(&p));
    } else {
        println!("{line}");
    }

    let s = &report.stats;
    let clean = s.timeouts == 0 && s.bad_authenticator == 0 && s.missing_message_authenticator == 0;
    Ok(match cli.expect {
        Expect::Any => true,
        Expect::Accept => clean && s.sent > 0 && s.accept == s.sent,
        Expect::Reject => clean && s.sent > 0 && s.reject == s.sent,
        Expect::AccountingResponse => clean && s.sent > 0 && s.accounting_response == s.sent,
    })
}
