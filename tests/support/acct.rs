//! Accounting-Requests for the end-to-end tests, sent the way a router sends them: each
//! packet is retransmitted (same identifier and bytes, RFC 5080 §2.2.1) until an
//! Accounting-Response with a valid authenticator comes back.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use radius_proto::{Code, Packet, attr};
use tokio::net::UdpSocket;

/// How long one try waits for the Accounting-Response before retransmitting.
const RETRY_AFTER: Duration = Duration::from_millis(1000);

/// One accounting session as a router reports it.
#[derive(Clone, Debug)]
pub(crate) struct AcctSession {
    pub(crate) username: String,
    pub(crate) session_id: String,
    pub(crate) nas_port: u32,
    pub(crate) mac: String,
    pub(crate) framed_ip: std::net::Ipv4Addr,
    /// NAS-IP-Address: the router's own address.
    pub(crate) nas_ip: Ipv4Addr,
}

/// Counters of one Accounting-Request (64-bit byte totals; the packet splits them into
/// Octets and Gigawords).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Bytes from the client (upload): Acct-Input-*.
    pub(crate) input: u64,
    /// Bytes to the client (download): Acct-Output-*.
    pub(crate) output: u64,
    pub(crate) seconds: u32,
}

impl AcctSession {
    pub(crate) fn new(username: &str, session_id: &str, nas_port: u32) -> Self {
        let b = nas_port.to_be_bytes();
        Self {
            username: username.to_owned(),
            session_id: session_id.to_owned(),
            nas_port,
            mac: format!("02:00:{:02X}:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2], b[3]),
            framed_ip: std::net::Ipv4Addr::new(10, 20, b[2], b[3].max(1)),
            nas_ip: Ipv4Addr::LOCALHOST,
        }
    }

    fn base(&self, status: u32) -> Packet {
        Packet::accounting_request(0)
            .with_integer(attr::ACCT_STATUS_TYPE, status)
            .with_string(attr::USER_NAME, &self.username)
            .with_string(attr::ACCT_SESSION_ID, &self.session_id)
            .with_integer(attr::NAS_PORT, self.nas_port)
            .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::ETHERNET)
            .with_string(attr::NAS_PORT_ID, "ether2")
            .with_integer(attr::SERVICE_TYPE, attr::service_type::FRAMED_USER)
            .with_integer(attr::FRAMED_PROTOCOL, attr::framed_protocol::PPP)
            .with_string(attr::CALLING_STATION_ID, &self.mac)
            .with_string(attr::CALLED_STATION_ID, "pppoe-e2e")
            .with_ipv4(attr::FRAMED_IP_ADDRESS, self.framed_ip)
            .with_string(attr::NAS_IDENTIFIER, "e2e")
            .with_ipv4(attr::NAS_IP_ADDRESS, self.nas_ip)
            .with_integer(attr::ACCT_AUTHENTIC, 1)
            .with_integer(attr::ACCT_DELAY_TIME, 0)
    }

    fn with_counters(packet: Packet, c: Counters) -> Packet {
        packet
            .with_integer(attr::ACCT_SESSION_TIME, c.seconds)
            .with_counter64(attr::ACCT_INPUT_OCTETS, attr::ACCT_INPUT_GIGAWORDS, c.input)
            .with_counter64(
                attr::ACCT_OUTPUT_OCTETS,
                attr::ACCT_OUTPUT_GIGAWORDS,
                c.output,
            )
            .with_integer(attr::ACCT_INPUT_PACKETS, (c.input / 1000) as u32)
            .with_integer(attr::ACCT_OUTPUT_PACKETS, (c.output / 1000) as u32)
    }

    pub(crate) fn start(&self) -> Packet {
        self.base(attr::acct_status_type::START)
    }

    pub(crate) fn interim(&self, c: Counters) -> Packet {
        Self::with_counters(self.base(attr::acct_status_type::INTERIM_UPDATE), c)
    }

    pub(crate) fn stop(&self, c: Counters) -> Packet {
        self.stop_because(c, attr::acct_terminate_cause::USER_REQUEST)
    }

    /// A Stop with this Acct-Terminate-Cause (e.g. Admin-Reset after a Disconnect-Request).
    pub(crate) fn stop_because(&self, c: Counters, cause: u32) -> Packet {
        Self::with_counters(self.base(attr::acct_status_type::STOP), c)
            .with_integer(attr::ACCT_TERMINATE_CAUSE, cause)
    }
}

/// Accounting-On (`on`) or Accounting-Off from the router, as RouterOS sends at boot.
pub(crate) fn accounting_on_off(on: bool) -> Packet {
    let status = if on {
        attr::acct_status_type::ACCOUNTING_ON
    } else {
        attr::acct_status_type::ACCOUNTING_OFF
    };
    Packet::accounting_request(0)
        .with_integer(attr::ACCT_STATUS_TYPE, status)
        .with_string(attr::ACCT_SESSION_ID, "")
        .with_string(attr::NAS_IDENTIFIER, "e2e")
        .with_ipv4(attr::NAS_IP_ADDRESS, std::net::Ipv4Addr::LOCALHOST)
        .with_integer(attr::ACCT_DELAY_TIME, 0)
}

/// Sends Accounting-Requests to radiusd's accounting port as a router does.
#[derive(Clone, Debug)]
pub(crate) struct AcctClient {
    pub(crate) server: SocketAddr,
    pub(crate) secret: Vec<u8>,
    /// The address packets are sent from (the NAS's address, as radiusd sees it).
    pub(crate) source: IpAddr,
}

/// The outcome of [`AcctClient::try_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A valid Accounting-Response.
    Acknowledged,
    /// Nothing within the wait (the server deliberately did not answer, or is down).
    NoResponse,
}

impl AcctClient {
    pub(crate) fn new(port: u16, secret: &str) -> Self {
        Self {
            server: SocketAddr::from(([127, 0, 0, 1], port)),
            secret: secret.as_bytes().to_vec(),
            source: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// The same client sending from `source` (a router's loopback address, 127.0.0.X).
    pub(crate) fn with_source(self, source: IpAddr) -> Self {
        Self { source, ..self }
    }

    async fn socket(&self) -> UdpSocket {
        connected_socket(self.source, self.server).await
    }

    /// Sends `packet` (identifier `id`) and its retransmissions on `sock` for up to `wait`
    /// in total; returns whether it was acknowledged.
    async fn exchange(
        &self,
        sock: &UdpSocket,
        mut packet: Packet,
        id: u8,
        wait: Duration,
    ) -> Answer {
        packet.id = id;
        match request(sock, &packet, &self.secret, wait).await {
            Some(reply) if reply.code == Code::ACCOUNTING_RESPONSE => Answer::Acknowledged,
            _ => Answer::NoResponse,
        }
    }

    /// Sends one packet with retransmissions for up to `wait`.
    pub(crate) async fn try_once(&self, packet: Packet, wait: Duration) -> Answer {
        let sock = self.socket().await;
        self.exchange(&sock, packet, rand_id(), wait).await
    }

    /// Sends one packet, retransmitting until it is acknowledged; panics after `deadline`.
    pub(crate) async fn send(&self, packet: Packet, deadline: Duration) {
        let answer = self.try_once(packet, deadline).await;
        assert_eq!(
            answer,
            Answer::Acknowledged,
            "Accounting-Request not acknowledged within {deadline:?}"
        );
    }

    /// Sends every packet, `lanes` at a time, each retransmitted until acknowledged (like
    /// routers that never give up); panics after `deadline`. Packets with the same
    /// Acct-Session-Id go through the same lane, in the order given, so each session's
    /// packets arrive in order.
    pub(crate) async fn send_all(&self, packets: Vec<Packet>, lanes: usize, deadline: Duration) {
        let lanes = lanes.max(1);
        let mut per_lane: Vec<Vec<Packet>> = (0..lanes).map(|_| Vec::new()).collect();
        let mut lane_of: HashMap<Vec<u8>, usize> = HashMap::new();
        for p in packets {
            let key = p.attr(attr::ACCT_SESSION_ID).unwrap_or_default().to_vec();
            let next = lane_of.len() % lanes;
            let lane = *lane_of.entry(key).or_insert(next);
            per_lane[lane].push(p);
        }
        let this = Arc::new(self.clone());
        let until = Instant::now() + deadline;
        let tasks: Vec<_> = per_lane
            .into_iter()
            .map(|lane| {
                let this = Arc::clone(&this);
                tokio::spawn(async move {
                    let sock = this.socket().await;
                    for (i, p) in lane.into_iter().enumerate() {
                        let left = until.saturating_duration_since(Instant::now());
                        let answer = this.exchange(&sock, p, (i % 256) as u8, left).await;
                        assert_eq!(
                            answer,
                            Answer::Acknowledged,
                            "accounting stream not acknowledged within {deadline:?}"
                        );
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("accounting lane");
        }
    }
}

/// A UDP socket bound to `source` (any port) and connected to `server`.
pub(crate) async fn connected_socket(source: IpAddr, server: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind(SocketAddr::new(source, 0))
        .await
        .unwrap_or_else(|e| panic!("bind udp {source}:0: {e}"));
    sock.connect(server).await.expect("connect udp");
    sock
}

/// Sends `packet` on the connected `sock` and retransmits the same bytes (RFC 5080
/// §2.2.1) every [`RETRY_AFTER`] until a reply with its identifier and a valid Response
/// Authenticator (and Message-Authenticator, if it has one) arrives; `None` after `wait`.
pub(crate) async fn request(
    sock: &UdpSocket,
    packet: &Packet,
    secret: &[u8],
    wait: Duration,
) -> Option<Packet> {
    let bytes = packet.encode(secret).expect("encode request");
    let request_auth = Packet::authenticator_from_wire(&bytes).expect("header");
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        sock.send(&bytes).await.expect("send");
        let try_until = (Instant::now() + RETRY_AFTER).min(start + wait);
        while let Ok(Ok(n)) = tokio::time::timeout_at(try_until.into(), sock.recv(&mut buf)).await {
            let Ok(reply) = Packet::decode(&buf[..n]) else {
                continue;
            };
            if reply.id == packet.id && reply.verify_response(&request_auth, secret).is_ok() {
                return Some(reply);
            }
        }
        if start.elapsed() >= wait {
            return None;
        }
    }
}

fn rand_id() -> u8 {
    super::random_bytes::<1>()[0]
}
