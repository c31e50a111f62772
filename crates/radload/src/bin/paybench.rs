//! `jasiyo-paybench`: the payment-activation benchmark (issue 5). For every pending STK intent
//! listed in `--intents` (one line each: `username callback_token checkout_request_id amount`),
//! `--at-once` of them at a time (all, by default, started together): POST the success callback Safaricom would send to the daemon's per-intent URL,
//! then send PAP Access-Requests for that subscriber to radiusd, one after another, until the
//! first Access-Accept (`--gap-ms` apart). The latency of one subscriber is from just before its callback POST
//! to that Access-Accept. Prints one JSON object: count, failures, p50/p99/max of the
//! activation latency and of the callback POST alone, in ms.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use radius_proto::{Code, Packet, attr};
use tokio::net::UdpSocket;
use tokio::sync::{Barrier, Semaphore};

#[derive(Parser, Debug)]
#[command(
    name = "jasiyo-paybench",
    about = "Time M-Pesa callback -> Access-Accept for many subscribers at once"
)]
struct Cli {
    /// The daemon's public base URL (the callbacks go to <base>/pay/cb/stk/<token>).
    #[arg(long)]
    callback_base: String,
    /// radiusd's auth listener.
    #[arg(long)]
    server: SocketAddr,
    /// The client's shared secret.
    #[arg(long, env = "PAYBENCH_SECRET", hide_env_values = true)]
    secret: String,
    /// Every subscriber's password.
    #[arg(long, env = "PAYBENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// The intents, one per line: username callback_token checkout_request_id amount.
    #[arg(long)]
    intents: PathBuf,
    /// Pause between one subscriber's Access-Requests: the resolution of the measurement,
    /// traded against the load 500 subscribers asking back to back put on radiusd.
    #[arg(long, default_value_t = 10)]
    gap_ms: u64,
    /// How many subscribers are in flight at a time (default: all, started together).
    #[arg(long)]
    at_once: Option<usize>,
    /// Give up on one subscriber after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    give_up: f64,
}

struct Intent {
    username: String,
    token: String,
    checkout: String,
    amount: u64,
}

/// What Daraja POSTs for a paid push (mpesa-daraja.md §2.3), with a receipt of our own:
/// `run` (random per process) keeps receipts of separate runs on one database apart, or
/// the daemon would rightly refuse a receipt already credited for another push.
fn callback_body(intent: &Intent, run: &str, index: usize) -> String {
    serde_json::json!({"Body": {"stkCallback": {
        "MerchantRequestID": format!("bench-{index}"),
        "CheckoutRequestID": intent.checkout,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": intent.amount},
            {"Name": "MpesaReceiptNumber", "Value": format!("{run}{index:06}")},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": 20261124102115_u64},
            {"Name": "PhoneNumber", "Value": 254_700_000_000_u64 + index as u64},
        ]},
    }}})
    .to_string()
}

/// Sends one Access-Request and waits for its reply (or 1 s): Some(true) on Access-Accept.
async fn ask(
    socket: &UdpSocket,
    cli: &Cli,
    username: &str,
    id: u8,
) -> anyhow::Result<Option<bool>> {
    let authenticator: [u8; 16] = rand::random();
    let request = Packet::access_request(id, authenticator)
        .with_string(attr::USER_NAME, username)
        .with_user_password(cli.password.as_bytes(), cli.secret.as_bytes())?
        .with_message_authenticator();
    socket.send(&request.encode(cli.secret.as_bytes())?).await?;
    let mut buf = [0u8; radius_proto::MAX_PACKET_LEN];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let Ok(n) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await else {
            return Ok(None);
        };
        let Ok(reply) = Packet::decode(&buf[..n?]) else {
            continue;
        };
        if reply.id != id
            || reply
                .verify_response(&authenticator, cli.secret.as_bytes())
                .is_err()
        {
            continue;
        }
        return Ok(Some(reply.code == Code::ACCESS_ACCEPT));
    }
}

/// (activation ms, callback POST ms) for one subscriber.
async fn one(
    cli: Arc<Cli>,
    http: reqwest::Client,
    intent: Intent,
    index: usize,
    run: Arc<str>,
    start: Arc<Barrier>,
    slots: Arc<Semaphore>,
) -> anyhow::Result<(f64, f64)> {
    let _slot = slots.acquire().await?;
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(cli.server).await?;
    let url = format!("{}/pay/cb/stk/{}", cli.callback_base, intent.token);
    let body = callback_body(&intent, &run, index);
    start.wait().await;
    let t0 = Instant::now();
    let reply = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("callback for {}", intent.username))?;
    let posted = t0.elapsed();
    anyhow::ensure!(
        reply.status().is_success(),
        "callback for {}: HTTP {}",
        intent.username,
        reply.status()
    );
    let mut id = 0u8;
    loop {
        id = id.wrapping_add(1);
        if ask(&socket, &cli, &intent.username, id).await? == Some(true) {
            return Ok((ms(t0.elapsed()), ms(posted)));
        }
        tokio::time::sleep(Duration::from_millis(cli.gap_ms)).await;
        anyhow::ensure!(
            t0.elapsed().as_secs_f64() < cli.give_up,
            "{} not accepted within {} s",
            intent.username,
            cli.give_up
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Arc::new(Cli::parse());
    let text = std::fs::read_to_string(&cli.intents)
        .with_context(|| format!("reading {}", cli.intents.display()))?;
    let intents = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            anyhow::ensure!(f.len() == 4, "expected 4 fields: {l}");
            Ok(Intent {
                username: f[0].to_owned(),
                token: f[1].to_owned(),
                checkout: f[2].to_owned(),
                amount: f[3].parse().context("amount")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(intents.len())
        .build()?;
    let at_once = cli
        .at_once
        .unwrap_or(intents.len())
        .clamp(1, intents.len().max(1));
    // Started together only when all are in flight at once; otherwise each on its own.
    let start = Arc::new(Barrier::new(if at_once >= intents.len() {
        intents.len()
    } else {
        1
    }));
    let slots = Arc::new(Semaphore::new(at_once));
    let run: Arc<str> = (0..4)
        .map(|_| char::from(b'A' + rand::random_range(0..26u8)))
        .collect::<String>()
        .into();
    let tasks: Vec<_> = intents
        .into_iter()
        .enumerate()
        .map(|(i, intent)| {
            tokio::spawn(one(
                cli.clone(),
                http.clone(),
                intent,
                i,
                run.clone(),
                start.clone(),
                slots.clone(),
            ))
        })
        .collect();
    let (mut activation, mut post, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        match t.await? {
            Ok((a, p)) => {
                activation.push(a);
                post.push(p);
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    activation.sort_by(f64::total_cmp);
    post.sort_by(f64::total_cmp);
    for f in failures.iter().take(5) {
        eprintln!("jasiyo-paybench: {f}");
    }
    println!(
        "{}",
        serde_json::json!({
            "at_once": at_once,
            "count": activation.len(),
            "failures": failures.len(),
            "activation_p50_ms": percentile(&activation, 50.0),
            "activation_p99_ms": percentile(&activation, 99.0),
            "activation_max_ms": activation.last(),
            "callback_p50_ms": percentile(&post, 50.0),
            "callback_p99_ms": percentile(&post, 99.0),
        })
    );
    Ok(())
}
