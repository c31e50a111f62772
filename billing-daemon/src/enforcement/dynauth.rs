//! One RFC 5176 exchange with a router: send a Disconnect- or CoA-Request, retransmit it
//! per RFC 5080 §2.2.1, and accept only a reply that proves it came from the router.
//!
//! A retransmission is the same datagram (same identifier and Request Authenticator, from
//! the same source port), so a router that already acted on the first copy answers from its
//! duplicate cache instead of acting twice. Replies with another identifier, a wrong code or
//! a bad authenticator are ignored (and logged), never taken as the answer: anyone on the
//! path can send a datagram, only the router knows the secret.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use radius_proto::{Code, Packet, attr};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// RFC 5080 §2.2.1 retransmission parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// IRT: the first wait for an answer.
    pub initial_timeout: Duration,
    /// MRT: the longest wait between transmissions.
    pub max_timeout: Duration,
    /// MRC: the most transmissions of one request.
    pub max_transmissions: u32,
    /// MRD: the longest an exchange lasts.
    pub max_duration: Duration,
}

impl Default for RetryPolicy {
    /// The values RFC 5080 recommends: IRT 2 s, MRT 16 s, MRC 5, MRD 30 s.
    fn default() -> Self {
        Self {
            initial_timeout: Duration::from_secs(2),
            max_timeout: Duration::from_secs(16),
            max_transmissions: 5,
            max_duration: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after each transmission: RT = IRT + RAND·IRT, then 2·RT + RAND·RT,
    /// capped at MRT + RAND·MRT, with RAND uniform in [-0.1, 0.1] drawn from `rand`
    /// (so a thousand actions for one router do not retransmit in step). The waits stop at
    /// MRC transmissions, and their sum is cut at MRD.
    pub fn waits(&self, mut rand: impl FnMut() -> f64) -> Vec<Duration> {
        let mut waits = Vec::new();
        let mut total = Duration::ZERO;
        let mut rt: Option<Duration> = None;
        for _ in 0..self.max_transmissions.max(1) {
            let jitter = rand().clamp(-0.1, 0.1);
            let next = match rt {
                None => self.initial_timeout.mul_f64(1.0 + jitter),
                Some(prev) => prev.mul_f64(2.0 + jitter),
            };
            let next = if next > self.max_timeout {
                self.max_timeout.mul_f64(1.0 + jitter)
            } else {
                next
            };
            let next = next.min(self.max_duration.saturating_sub(total));
            if next.is_zero() {
                break;
            }
            total += next;
            waits.push(next);
            rt = Some(next);
        }
        waits
    }
}

/// How an exchange ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Disconnect-ACK or CoA-ACK.
    Ack,
    /// Disconnect-NAK or CoA-NAK, with its Error-Cause if it had one.
    Nak {
        /// Error-Cause (RFC 5176 §3.5).
        error_cause: Option<u32>,
    },
    /// No valid answer after every transmission.
    NoAnswer {
        /// Datagrams sent.
        transmissions: u32,
        /// The last thing that went wrong, if anything did besides silence (an ICMP
        /// unreachable, a reply that failed verification).
        last_problem: Option<String>,
    },
}

/// Sends `request` (a Disconnect- or CoA-Request with identifier and attributes set) to
/// `target` and waits for the router's answer. Errors only when the request cannot be
/// encoded or no socket can be opened; a router that does not answer is [`Outcome::NoAnswer`].
pub async fn exchange(
    target: SocketAddr,
    secret: &[u8],
    request: &Packet,
    waits: &[Duration],
) -> io::Result<Outcome> {
    let (ack, nak) = match request.code {
        Code::DISCONNECT_REQUEST => (Code::DISCONNECT_ACK, Code::DISCONNECT_NAK),
        Code::COA_REQUEST => (Code::COA_ACK, Code::COA_NAK),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("code {} is not a dynamic-authorization request", other.0),
            ));
        }
    };
    let wire = request
        .encode(secret)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let request_authenticator = Packet::authenticator_from_wire(&wire)
        .ok_or_else(|| io::Error::other("encoded packet shorter than its header"))?;
    let local: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    // One socket per exchange: its port is the exchange's identity on the router's
    // duplicate cache, and its connected peer filters what the kernel hands us.
    let socket = UdpSocket::bind((local, 0)).await?;
    socket.connect(target).await?;

    let mut buf = vec![0u8; radius_proto::MAX_PACKET_LEN];
    let mut last_problem = None;
    let mut transmissions = 0;
    for wait in waits {
        match socket.send(&wire).await {
            Ok(_) => transmissions += 1,
            Err(e) => last_problem = Some(format!("send: {e}")),
        }
        let deadline = Instant::now() + *wait;
        loop {
            let received = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_elapsed) => break,
                Ok(Ok(n)) => &buf[..n],
                // An ICMP unreachable from an earlier datagram: the router may come up
                // before the next transmission, so keep to the schedule.
                Ok(Err(e)) => {
                    last_problem = Some(format!("receive: {e}"));
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
            };
            match check_reply(received, request.id, &request_authenticator, secret) {
                Ok(reply) if reply.code == ack => return Ok(Outcome::Ack),
                Ok(reply) if reply.code == nak => {
                    let error_cause = reply.integer(attr::ERROR_CAUSE).ok().flatten();
                    return Ok(Outcome::Nak { error_cause });
                }
                Ok(reply) => {
                    last_problem = Some(format!("unexpected reply code {}", reply.code.0));
                }
                Err(problem) => {
                    tracing::warn!(%target, problem, "ignored a reply to a dynamic-authorization request");
                    last_problem = Some(problem);
                }
            }
        }
    }
    Ok(Outcome::NoAnswer {
        transmissions,
        last_problem,
    })
}

/// A datagram is the answer only if it decodes, has the request's identifier and its
/// Response Authenticator (and Message-Authenticator, if any) verify with the secret.
fn check_reply(
    datagram: &[u8],
    id: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Packet, String> {
    let reply = Packet::decode(datagram).map_err(|e| format!("malformed reply: {e}"))?;
    if reply.id != id {
        return Err(format!(
            "reply identifier {} does not match the request's {id}",
            reply.id
        ));
    }
    reply
        .verify_response(request_authenticator, secret)
        .map_err(|e| format!("reply failed verification: {e}"))?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5080_schedule_without_jitter() {
        let waits = RetryPolicy::default().waits(|| 0.0);
        // 2 + 4 + 8 + 16 = 30 s: the fifth transmission would start at MRD.
        assert_eq!(
            waits,
            [2, 4, 8, 16].map(Duration::from_secs).to_vec(),
            "IRT doubling to MRT, cut at MRD"
        );
    }

    #[test]
    fn schedule_caps_at_mrt_and_mrc() {
        let policy = RetryPolicy {
            initial_timeout: Duration::from_secs(2),
            max_timeout: Duration::from_secs(5),
            max_transmissions: 4,
            max_duration: Duration::from_secs(100),
        };
        assert_eq!(
            policy.waits(|| 0.0),
            [2, 4, 5, 5].map(Duration::from_secs).to_vec()
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let policy = RetryPolicy::default();
        let high = policy.waits(|| 0.5);
        assert_eq!(high[0], Duration::from_millis(2200));
        let low = policy.waits(|| -0.1);
        assert_eq!(low[0], Duration::from_millis(1800));
        let total: Duration = high.iter().sum();
        assert!(total <= policy.max_duration);
    }

    #[test]
    fn at_least_one_transmission() {
        let policy = RetryPolicy {
            max_transmissions: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.waits(|| 0.0).len(), 1);
    }

    fn reply(request: &Packet, code: Code, secret: &[u8]) -> Vec<u8> {
        let wire = request.encode(secret).unwrap();
        let sent = Packet::decode(&wire).unwrap();
        Packet::reply_to(&sent, code).encode(secret).unwrap()
    }

    #[test]
    fn only_a_verified_reply_with_our_identifier_counts() {
        let secret = b"router-secret";
        let request = Packet::disconnect_request(7).with_string(attr::USER_NAME, "alice");
        let wire = request.encode(secret).unwrap();
        let auth = Packet::authenticator_from_wire(&wire).unwrap();
        let good = reply(&request, Code::DISCONNECT_ACK, secret);
        assert!(check_reply(&good, 7, &auth, secret).is_ok());
        assert!(check_reply(&good, 8, &auth, secret).is_err());
        assert!(check_reply(&good, 7, &auth, b"wrong").is_err());
        let forged = reply(&request, Code::DISCONNECT_ACK, b"attacker");
        assert!(check_reply(&forged, 7, &auth, secret).is_err());
        assert!(check_reply(&good[..10], 7, &auth, secret).is_err());
    }

    /// A one-shot router on loopback: verifies each request, answers with what `answer`
    /// returns (raw datagrams, so a test can forge one), counts what it received.
    async fn router(
        secret: &'static [u8],
        answer: impl Fn(&Packet) -> Option<Vec<u8>> + Send + 'static,
    ) -> (SocketAddr, tokio::task::JoinHandle<u32>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut received = 0;
            let mut buf = [0u8; 4096];
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await
            {
                received += 1;
                let req = Packet::decode(&buf[..n]).unwrap();
                req.verify_request(secret).unwrap();
                if let Some(datagram) = answer(&req) {
                    socket.send_to(&datagram, from).await.unwrap();
                }
            }
            received
        });
        (addr, task)
    }

    fn quick() -> Vec<Duration> {
        vec![Duration::from_millis(50); 3]
    }

    const SECRET: &[u8] = b"s3cret";

    fn signed(reply: Packet) -> Option<Vec<u8>> {
        Some(reply.encode(SECRET).unwrap())
    }

    #[tokio::test]
    async fn ack_nak_and_silence() {
        let request = Packet::coa_request(9).with_string(attr::USER_NAME, "bob");

        let (addr, _) = router(SECRET, |r| signed(Packet::reply_to(r, Code::COA_ACK))).await;
        assert_eq!(
            exchange(addr, SECRET, &request, &quick()).await.unwrap(),
            Outcome::Ack
        );

        let (addr, _) = router(SECRET, |r| {
            signed(Packet::reply_to(r, Code::COA_NAK).with_integer(attr::ERROR_CAUSE, 503))
        })
        .await;
        assert_eq!(
            exchange(addr, SECRET, &request, &quick()).await.unwrap(),
            Outcome::Nak {
                error_cause: Some(503)
            }
        );

        let (addr, task) = router(SECRET, |_| None).await;
        let outcome = exchange(addr, SECRET, &request, &quick()).await.unwrap();
        assert!(matches!(
            outcome,
            Outcome::NoAnswer {
                transmissions: 3,
                last_problem: None
            }
        ));
        assert_eq!(
            task.await.unwrap(),
            3,
            "every transmission reached the router"
        );
    }

    #[tokio::test]
    async fn retransmissions_are_the_same_datagram() {
        let request = Packet::disconnect_request(5).with_string(attr::USER_NAME, "bob");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let (addr, _) = router(SECRET, move |r| {
            log.lock().unwrap().push((r.id, r.authenticator));
            None
        })
        .await;
        exchange(addr, SECRET, &request, &quick()).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|s| *s == seen[0]));
    }

    #[tokio::test]
    async fn a_forged_reply_is_not_the_answer() {
        let request = Packet::disconnect_request(3).with_string(attr::USER_NAME, "bob");
        // An ACK signed with another secret: ignored, so the exchange ends unanswered.
        let (addr, _) = router(SECRET, |r| {
            Some(
                Packet::reply_to(r, Code::DISCONNECT_ACK)
                    .encode(b"attacker")
                    .unwrap(),
            )
        })
        .await;
        let outcome = exchange(addr, SECRET, &request, &quick()).await.unwrap();
        let Outcome::NoAnswer {
            transmissions: 3,
            last_problem: Some(problem),
        } = outcome
        else {
            panic!("a forged ACK was taken: {outcome:?}");
        };
        assert!(problem.contains("verification"), "{problem}");
    }

    #[tokio::test]
    async fn a_closed_port_is_no_answer_not_an_error() {
        let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let request = Packet::disconnect_request(1).with_string(attr::USER_NAME, "bob");
        let outcome = exchange(addr, SECRET, &request, &quick()).await.unwrap();
        assert!(matches!(outcome, Outcome::NoAnswer { .. }), "{outcome:?}");
    }
}
