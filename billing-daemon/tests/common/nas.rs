//! A loopback router for the enforcement tests: answers Disconnect and CoA requests and
//! records what it got; and an enforcement schedule short enough for tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use billing_daemon::enforcement::EnforcementConfig;
use billing_daemon::enforcement::dynauth::RetryPolicy;
use radius_proto::{Code, Packet, attr};
use tokio::net::UdpSocket;

/// How the loopback router of these tests answers.
#[derive(Clone, Copy)]
pub enum Mode {
    /// ACK Disconnects, NAK CoAs with Unsupported-Service.
    AckDisconnectNakCoa,
    /// Never answer.
    Silent,
}

/// A router at `ip` answering on a port picked now; records (code, User-Name) of each
/// request it receives.
pub async fn router(ip: &str, mode: Mode) -> (u16, Arc<Mutex<Vec<(u8, String)>>>) {
    let socket = UdpSocket::bind((ip, 0)).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let req = Packet::decode(&buf[..n]).unwrap();
            req.verify_request(b"router-secret").unwrap();
            let user = req.string(attr::USER_NAME).unwrap().unwrap().to_owned();
            log.lock().unwrap().push((req.code.0, user));
            let reply = match (mode, req.code) {
                (Mode::Silent, _) => continue,
                (_, Code::DISCONNECT_REQUEST) => Packet::reply_to(&req, Code::DISCONNECT_ACK),
                _ => Packet::reply_to(&req, Code::COA_NAK)
                    .with_integer(attr::ERROR_CAUSE, attr::error_cause::UNSUPPORTED_SERVICE),
            };
            let wire = reply
                .with_message_authenticator()
                .encode(b"router-secret")
                .unwrap();
            socket.send_to(&wire, from).await.unwrap();
        }
    });
    (port, seen)
}

/// RFC 5080's schedule shortened to milliseconds.
pub fn quick() -> EnforcementConfig {
    EnforcementConfig {
        retry: RetryPolicy {
            initial_timeout: Duration::from_millis(50),
            max_timeout: Duration::from_millis(100),
            max_transmissions: 3,
            max_duration: Duration::from_secs(1),
        },
        rounds: 2,
        round_backoff: Duration::from_millis(100),
    }
}
