//! Runs the real binary against an in-process RADIUS responder built on radius-proto.

use std::net::UdpSocket;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use radius_proto::{Code, Packet, attr};

const SECRET: &[u8] = b"fake-secret";

struct Fake {
    port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
    received: Arc<AtomicU64>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// Answers Access-Requests: Accept if the password is "pw{n}" for user "u{n}", else Reject.
/// Drops the first transmission of every `drop_every`-th distinct request (0: never).
fn spawn_fake(drop_every: u64, reply_secret: &'static [u8]) -> Fake {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let (stop2, received2) = (Arc::clone(&stop), Arc::clone(&received));
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut dropped = std::collections::HashSet::new();
        while !stop2.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let n_seen = received2.fetch_add(1, Ordering::Relaxed) + 1;
            let req = Packet::decode(&buf[..n]).unwrap();
            req.verify_request(SECRET).unwrap();
            assert!(req.has_message_authenticator());
            if drop_every > 0 && n_seen % drop_every == 0 && dropped.insert(req.authenticator) {
                continue;
            }
            let user = req.string(attr::USER_NAME).unwrap().unwrap().to_owned();
            let pw = req.user_password(SECRET).unwrap().unwrap();
            let ok = user
                .strip_prefix('u')
                .map(|n| format!("pw{n}").into_bytes())
                == Some(pw);
            let code = if ok {
                Code::ACCESS_ACCEPT
            } else {
                Code::ACCESS_REJECT
            };
            let reply = Packet::reply_to(&req, code)
                .with_vendor_string(
                    attr::mikrotik::VENDOR_ID,
                    attr::mikrotik::RATE_LIMIT,
                    "1M/1M",
                )
                .with_message_authenticator()
                .encode(reply_secret)
                .unwrap();
            sock.send_to(&reply, from).unwrap();
        }
    });
    Fake {
        port,
        stop,
        handle: Some(handle),
        received,
    }
}

fn radload(port: u16, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_jasiyo-radload"))
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--secret",
            "fake-secret",
            "--users",
            "u{n}",
            "--password-pattern",
            "pw{n}",
            "--count",
            "50",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("radload: "), "no summary line: {stderr}");
    let json = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), json)
}

#[test]
fn all_accepted_within_request_bound() {
    let fake = spawn_fake(0, SECRET);
    let (code, j) = radload(
        fake.port,
        &[
            "--requests",
            "2000",
            "--window",
            "64",
            "--expect",
            "accept",
            "--random",
        ],
    );
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["sent"], 2000);
    assert_eq!(j["accept"], 2000);
    assert_eq!(j["timeouts"], 0);
    assert_eq!(fake.received.load(Ordering::Relaxed), 2000);
    assert!(j["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn wrong_passwords_are_rejects_and_fail_expect_accept() {
    let fake = spawn_fake(0, SECRET);
    let (code, j) = radload(
        fake.port,
        &[
            "--requests",
            "100",
            "--password",
            "nope",
            "--expect",
            "accept",
        ],
    );
    assert_eq!(code, 2);
    assert_eq!(j["reject"], 100);
    let (code, _) = radload(
        fake.port,
        &[
            "--requests",
            "100",
            "--password",
            "nope",
            "--expect",
            "reject",
        ],
    );
    assert_eq!(code, 0);
}

#[test]
fn drops_are_retransmitted() {
    let fake = spawn_fake(7, SECRET);
    let (code, j) = radload(
        fake.port,
        &[
            "--requests",
            "300",
            "--window",
            "300", // three sockets of at most 128 in flight
            "--timeout",
            "0.2",
            "--expect",
            "accept",
        ],
    );
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["sockets"], 3);
    assert_eq!(j["accept"], 300);
    assert!(j["retransmits"].as_u64().unwrap() > 0, "{j}");
}

#[test]
fn replies_signed_with_another_secret_are_not_counted() {
    let fake = spawn_fake(0, b"other-secret");
    let (code, j) = radload(
        fake.port,
        &[
            "--requests",
            "20",
            "--timeout",
            "0.1",
            "--retries",
            "1",
            "--expect",
            "accept",
        ],
    );
    assert_eq!(code, 2);
    assert_eq!(j["accept"], 0);
    assert_eq!(j["timeouts"], 20);
    assert_eq!(j["bad_authenticator"], 40);
}

#[test]
fn duration_bound_stops() {
    let fake = spawn_fake(0, SECRET);
    let started = std::time::Instant::now();
    let (code, j) = radload(fake.port, &["--duration", "0.5"]);
    assert_eq!(code, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(j["accept"].as_u64().unwrap() > 0);
    assert_eq!(j["sent"], j["accept"]);
}
