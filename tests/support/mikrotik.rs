//! A MikroTik router stand-in for the end-to-end tests. It behaves as
//! ../shared/reference/mikrotik-radius.md documents RouterOS:
//!
//! * as a NAS it drives radiusd from its own loopback address (127.0.0.X): PAP
//!   Access-Requests and Accounting Start/Interim/Stop for its sessions, retransmitted until
//!   answered;
//! * its `/radius incoming` listener (a UDP socket on that address, at a port picked at run
//!   time) answers RFC 5176 Disconnect- and CoA-Requests: requests whose Request
//!   Authenticator or Message-Authenticator does not verify are dropped without an answer;
//!   the session is found by the identification attributes present (User-Name,
//!   Acct-Session-Id, Framed-IP-Address; all of them must match, and NAS-IP-Address, if
//!   present, must be the router's); a Disconnect ends it (ACK, then an Accounting-Stop with
//!   Acct-Terminate-Cause = Admin-Reset, as RouterOS does), a CoA applies
//!   Mikrotik-Rate-Limit and Session-Timeout (ACK); no session gives a NAK with Error-Cause
//!   503 (Session-Context-Not-Found). Replies carry Message-Authenticator (the RouterOS v7
//!   shape);
//! * duplicate detection per RFC 5080 §2.2.2: a retransmission (same source, identifier and
//!   authenticator) gets the cached reply again and changes nothing;
//! * switches for the failure cases: [`Mikrotik::set_silent`] (unreachable: receive, record,
//!   never answer or apply) and [`Mikrotik::set_coa_unsupported`] (NAK every CoA with
//!   Error-Cause 405, as RouterOS services without CoA support would).
//!
//! Everything the listener receives is recorded ([`Mikrotik::received`],
//! [`Mikrotik::wait_for`]), with what it made of it ([`Verdict`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use radius_proto::{Code, Error as ProtoError, Packet, attr};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::acct::{self, AcctClient, AcctSession, Answer, Counters};
use super::{DEADLINE, Radius, Stack, id_of, poll, random_bytes, random_hex};

/// How long an answered request stays in the duplicate cache (RFC 5080 §2.2.2: 5 to 30 s).
const REPLY_CACHE_TTL: Duration = Duration::from_secs(30);

/// One session the router has up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouterSession {
    pub(crate) username: String,
    pub(crate) acct_session_id: String,
    pub(crate) framed_ip: Ipv4Addr,
    pub(crate) nas_port: u32,
    /// Mikrotik-Rate-Limit in force: from the Access-Accept, then from the last CoA.
    pub(crate) rate_limit: Option<String>,
    /// Session-Timeout in force (seconds), likewise.
    pub(crate) session_timeout: Option<u32>,
    /// The counters of the last Interim-Update sent (they go into the Stop).
    pub(crate) counters: Counters,
}

/// What the listener made of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Sessions matched and the request was applied: Disconnect-ACK or CoA-ACK sent.
    Ack,
    /// Disconnect-NAK or CoA-NAK sent with this Error-Cause (503 no such session, 402 no
    /// session identification attribute, 403 NAS-IP-Address is not this router's, 405 CoA
    /// switched off).
    Nak(u32),
    /// A retransmission of a request already answered: the cached reply was sent again and
    /// nothing was applied.
    Duplicate,
    /// Received while silent: not answered, not applied.
    Ignored,
    /// The Request Authenticator did not verify with the router's secret: dropped.
    BadAuthenticator,
    /// A Message-Authenticator was present and did not verify: dropped.
    BadMessageAuthenticator,
    /// Not a well-formed Disconnect- or CoA-Request: dropped.
    Malformed,
}

/// One datagram the `/radius incoming` listener received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) at: DateTime<Utc>,
    pub(crate) from: SocketAddr,
    /// The decoded packet (`None` if it did not decode).
    pub(crate) packet: Option<Packet>,
    pub(crate) verdict: Verdict,
    /// The same source, identifier and authenticator arrived before: a retransmission.
    pub(crate) retransmission: bool,
}

impl Received {
    pub(crate) fn code(&self) -> Option<Code> {
        self.packet.as_ref().map(|p| p.code)
    }

    pub(crate) fn is_disconnect(&self) -> bool {
        self.code() == Some(Code::DISCONNECT_REQUEST)
    }

    pub(crate) fn is_coa(&self) -> bool {
        self.code() == Some(Code::COA_REQUEST)
    }

    /// The first attribute `typ` as text (`None` if absent or not UTF-8).
    pub(crate) fn string(&self, typ: u8) -> Option<String> {
        self.packet
            .as_ref()
            .and_then(|p| p.string(typ).ok().flatten())
            .map(str::to_owned)
    }

    pub(crate) fn ipv4(&self, typ: u8) -> Option<Ipv4Addr> {
        self.packet
            .as_ref()
            .and_then(|p| p.ipv4(typ).ok().flatten())
    }

    pub(crate) fn integer(&self, typ: u8) -> Option<u32> {
        self.packet
            .as_ref()
            .and_then(|p| p.integer(typ).ok().flatten())
    }

    pub(crate) fn has(&self, typ: u8) -> bool {
        self.packet.as_ref().is_some_and(|p| p.attr(typ).is_some())
    }

    pub(crate) fn user_name(&self) -> Option<String> {
        self.string(attr::USER_NAME)
    }

    pub(crate) fn acct_session_id(&self) -> Option<String> {
        self.string(attr::ACCT_SESSION_ID)
    }

    pub(crate) fn framed_ip(&self) -> Option<Ipv4Addr> {
        self.ipv4(attr::FRAMED_IP_ADDRESS)
    }

    pub(crate) fn nas_ip(&self) -> Option<Ipv4Addr> {
        self.ipv4(attr::NAS_IP_ADDRESS)
    }

    /// Mikrotik-Rate-Limit of a CoA-Request.
    pub(crate) fn rate_limit(&self) -> Option<String> {
        self.packet
            .as_ref()
            .and_then(|p| {
                p.vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT)
                    .ok()
                    .flatten()
            })
            .map(str::to_owned)
    }

    /// Whether this is a first-time Disconnect-Request for `session` that carries all four
    /// attributes RouterOS needs to find it (User-Name, Acct-Session-Id, Framed-IP-Address,
    /// NAS-IP-Address), whatever the verdict.
    pub(crate) fn disconnects(&self, session: &RouterSession) -> bool {
        self.is_disconnect() && !self.retransmission && self.identifies(session)
    }

    /// Like [`Received::disconnects`], for a CoA-Request.
    pub(crate) fn changes(&self, session: &RouterSession) -> bool {
        self.is_coa() && !self.retransmission && self.identifies(session)
    }

    fn identifies(&self, s: &RouterSession) -> bool {
        self.user_name().as_deref() == Some(s.username.as_str())
            && self.acct_session_id().as_deref() == Some(s.acct_session_id.as_str())
            && self.framed_ip() == Some(s.framed_ip)
            && self.nas_ip().is_some()
    }
}

/// What the listener keeps between packets.
#[derive(Default)]
struct State {
    sessions: Vec<RouterSession>,
    received: Vec<Received>,
    /// RFC 5080 duplicate detection, keyed by (source, identifier).
    answered: HashMap<(SocketAddr, u8), Seen>,
    silent: bool,
    coa_unsupported: bool,
    next_session: u32,
}

/// The last request from one (source, identifier).
struct Seen {
    at: Instant,
    authenticator: [u8; 16],
    /// The reply sent (`None`: not answered, e.g. while silent, so a retransmission is
    /// processed afresh).
    reply: Option<Vec<u8>>,
}

struct Shared {
    ip: Ipv4Addr,
    secret: Vec<u8>,
    state: Mutex<State>,
    /// Where Accounting-Stops after a Disconnect go (`None`: a router without radiusd).
    acct: Option<AcctClient>,
    /// Background tasks (the listener, Accounting-Stops in flight), aborted on drop.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A MikroTik router at 127.0.0.X with a `/radius incoming` listener. Dropping it stops the
/// listener and any Accounting-Stop still being retransmitted.
pub(crate) struct Mikrotik {
    shared: Arc<Shared>,
    coa_port: u16,
    secret: String,
    /// radiusd's auth and acct ports (`None` for a router that only answers CoA).
    radius: Option<Radius>,
    router_id: Option<i64>,
}

impl Mikrotik {
    /// A router at 127.0.0.`host` with a random secret, registered through the stack's API
    /// (`POST /routers` with its address, secret and [`Mikrotik::coa_port`]) and talking to
    /// the stack's radiusd. radiusd serves it once the daemon has published the router;
    /// [`Mikrotik::login`] retransmits until then. Pick `host` other than 1 (the stack's own
    /// router for radclient) and than any other router of the test.
    pub(crate) async fn attach(stack: &Stack, host: u8) -> Self {
        let secret = random_hex(12);
        let mut router = Self::start(host, &secret, Some(stack.radius.clone())).await;
        let created = stack
            .api
            .create(
                "/routers",
                json!({
                    "name": format!("mikrotik-{host}-{}", random_hex(3)),
                    "ip": router.ip().to_string(),
                    "secret": secret,
                    "nas_identifier": router.nas_identifier(),
                    "coa_port": router.coa_port,
                }),
            )
            .await;
        router.router_id = Some(id_of(&created));
        router
    }

    /// A router at 127.0.0.`host` with `secret`, not registered anywhere. With `radius` it
    /// can log in and send accounting there (the router must be known to that radiusd);
    /// without, it only answers Disconnect/CoA.
    pub(crate) async fn start(host: u8, secret: &str, radius: Option<Radius>) -> Self {
        assert!(
            host != 0 && host != 255,
            "127.0.0.{host} is not a host address"
        );
        let ip = Ipv4Addr::new(127, 0, 0, host);
        let sock = UdpSocket::bind(SocketAddr::from((ip, 0)))
            .await
            .unwrap_or_else(|e| panic!("bind the /radius incoming listener on {ip}: {e}"));
        let coa_port = sock.local_addr().expect("local_addr").port();
        let acct = radius
            .as_ref()
            .map(|r| AcctClient::new(r.acct_port, secret).with_source(IpAddr::V4(ip)));
        let shared = Arc::new(Shared {
            ip,
            secret: secret.as_bytes().to_vec(),
            state: Mutex::new(State::default()),
            acct,
            tasks: Mutex::new(Vec::new()),
        });
        let listener = tokio::spawn(listen(Arc::clone(&shared), sock));
        lock(&shared.tasks).push(listener.abort_handle());
        Self {
            shared,
            coa_port,
            secret: secret.to_owned(),
            radius,
            router_id: None,
        }
    }

    /// The router's address (source of its RADIUS requests, NAS-IP-Address).
    pub(crate) fn ip(&self) -> Ipv4Addr {
        self.shared.ip
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// The `/radius incoming` port on [`Mikrotik::ip`].
    pub(crate) fn coa_port(&self) -> u16 {
        self.coa_port
    }

    /// Where Disconnect/CoA requests go: [`Mikrotik::ip`] and [`Mikrotik::coa_port`].
    pub(crate) fn coa_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip(), self.coa_port))
    }

    /// The router's id in the daemon (routers made by [`Mikrotik::attach`]).
    pub(crate) fn router_id(&self) -> i64 {
        self.router_id
            .expect("router_id: this router was not registered with Mikrotik::attach")
    }

    /// NAS-Identifier of its requests (`/system identity`).
    pub(crate) fn nas_identifier(&self) -> String {
        format!("MikroTik-{}", self.ip().octets()[3])
    }

    /// Unreachable router: requests are still recorded but never answered or applied.
    pub(crate) fn set_silent(&self, silent: bool) {
        self.shared.state().silent = silent;
    }

    /// A service without CoA support: every CoA-Request gets a CoA-NAK with Error-Cause 405
    /// (Unsupported-Service) and changes nothing. Disconnects still work.
    pub(crate) fn set_coa_unsupported(&self, unsupported: bool) {
        self.shared.state().coa_unsupported = unsupported;
    }

    /// The sessions up now.
    pub(crate) fn sessions(&self) -> Vec<RouterSession> {
        self.shared.state().sessions.clone()
    }

    /// The session with this Acct-Session-Id, if it is up.
    pub(crate) fn session(&self, acct_session_id: &str) -> Option<RouterSession> {
        self.shared
            .state()
            .sessions
            .iter()
            .find(|s| s.acct_session_id == acct_session_id)
            .cloned()
    }

    /// Everything the listener has received, in order.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.shared.state().received.clone()
    }

    /// How many received packets satisfy `pred`.
    pub(crate) fn count(&self, pred: impl Fn(&Received) -> bool) -> usize {
        self.shared
            .state()
            .received
            .iter()
            .filter(|r| pred(r))
            .count()
    }

    /// Waits (polling) until a received packet satisfies `pred` and returns the first that
    /// does; panics after [`DEADLINE`] ([`Mikrotik::received`] shows what did arrive).
    pub(crate) async fn wait_for(&self, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
        poll(DEADLINE, what, || {
            self.shared
                .state()
                .received
                .iter()
                .find(|r| pred(r))
                .cloned()
        })
        .await
    }

    /// Waits (polling) until the session with this Acct-Session-Id is gone; panics after
    /// [`DEADLINE`].
    pub(crate) async fn wait_session_gone(&self, acct_session_id: &str) {
        poll(
            DEADLINE,
            &format!("session {acct_session_id} ended"),
            || self.session(acct_session_id).is_none().then_some(()),
        )
        .await;
    }

    // ------------------------------------------------------------------ as a NAS

    fn radius(&self) -> &Radius {
        self.radius
            .as_ref()
            .expect("this router was started without radiusd")
    }

    /// Sends a PPPoE PAP Access-Request for `username` from the router's address,
    /// retransmitting until radiusd answers; returns the verified reply (Access-Accept or
    /// Access-Reject). Panics if nothing comes within [`DEADLINE`].
    pub(crate) async fn login(&self, username: &str, password: &str) -> Packet {
        let server = SocketAddr::from(([127, 0, 0, 1], self.radius().auth_port));
        let sock = acct::connected_socket(IpAddr::V4(self.ip()), server).await;
        let request = Packet::access_request(random_bytes::<1>()[0], random_bytes())
            .with_string(attr::USER_NAME, username)
            .with_user_password(password.as_bytes(), self.secret.as_bytes())
            .expect("User-Password")
            .with_integer(attr::SERVICE_TYPE, attr::service_type::FRAMED_USER)
            .with_integer(attr::FRAMED_PROTOCOL, attr::framed_protocol::PPP)
            .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::ETHERNET)
            .with_string(attr::CALLING_STATION_ID, "02:00:00:00:00:01")
            .with_string(attr::CALLED_STATION_ID, "pppoe-service")
            .with_string(attr::NAS_IDENTIFIER, &self.nas_identifier())
            .with_ipv4(attr::NAS_IP_ADDRESS, self.ip())
            .with_message_authenticator();
        acct::request(&sock, &request, self.secret.as_bytes(), DEADLINE)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no answer from radiusd to {username}'s Access-Request from {} within {DEADLINE:?}",
                    self.ip()
                )
            })
    }

    /// Logs `username` in (the Access-Accept is required), brings the session up with the
    /// Accept's Mikrotik-Rate-Limit, Session-Timeout and Framed-IP-Address (else an address
    /// of the router's pool) and sends Accounting Start. Returns the session.
    pub(crate) async fn connect(&self, username: &str, password: &str) -> RouterSession {
        let reply = self.login(username, password).await;
        assert_eq!(
            reply.code,
            Code::ACCESS_ACCEPT,
            "{username} was not accepted: {reply:?}"
        );
        let rate_limit = reply
            .vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT)
            .ok()
            .flatten()
            .map(str::to_owned);
        let session_timeout = reply.integer(attr::SESSION_TIMEOUT).ok().flatten();
        let framed_ip = reply.ipv4(attr::FRAMED_IP_ADDRESS).ok().flatten();
        self.start_session(username, framed_ip, rate_limit, session_timeout)
            .await
    }

    /// Brings a session up without a login (one that was up before, e.g. across a daemon
    /// change) and sends Accounting Start (if the router has a radiusd); `framed_ip` `None`
    /// takes one from the router's pool (10.<host>.X.Y).
    pub(crate) async fn start_session(
        &self,
        username: &str,
        framed_ip: Option<Ipv4Addr>,
        rate_limit: Option<String>,
        session_timeout: Option<u32>,
    ) -> RouterSession {
        let n = {
            let mut st = self.shared.state();
            st.next_session += 1;
            st.next_session
        };
        let host = self.ip().octets()[3];
        let [_, _, hi, lo] = n.to_be_bytes();
        let session = RouterSession {
            username: username.to_owned(),
            acct_session_id: format!("81{host:02x}{n:04x}"),
            framed_ip: framed_ip.unwrap_or(Ipv4Addr::new(10, host, hi, lo.max(1))),
            nas_port: 0x00F0_0000 | n,
            rate_limit,
            session_timeout,
            counters: Counters::default(),
        };
        self.shared.state().sessions.push(session.clone());
        self.send_acct(acct_session(&session, self.ip()).start())
            .await;
        session
    }

    /// Sends an Interim-Update for the session with these counters (totals so far).
    pub(crate) async fn interim(&self, acct_session_id: &str, counters: Counters) {
        let session = {
            let mut st = self.shared.state();
            let s = st
                .sessions
                .iter_mut()
                .find(|s| s.acct_session_id == acct_session_id)
                .unwrap_or_else(|| panic!("interim: session {acct_session_id} is not up"));
            s.counters = counters;
            s.clone()
        };
        self.send_acct(acct_session(&session, self.ip()).interim(counters))
            .await;
    }

    /// Ends the session as the customer would (Stop, User-Request) with these counters.
    pub(crate) async fn stop(&self, acct_session_id: &str, counters: Counters) {
        let session = {
            let mut st = self.shared.state();
            let at = st
                .sessions
                .iter()
                .position(|s| s.acct_session_id == acct_session_id)
                .unwrap_or_else(|| panic!("stop: session {acct_session_id} is not up"));
            st.sessions.remove(at)
        };
        self.send_acct(acct_session(&session, self.ip()).stop(counters))
            .await;
    }

    /// Sends accounting to radiusd, retransmitting until acknowledged (nothing for a
    /// router started without radiusd).
    async fn send_acct(&self, packet: Packet) {
        if let Some(acct) = &self.shared.acct {
            acct.send(packet, DEADLINE).await;
        }
    }
}

impl Drop for Mikrotik {
    fn drop(&mut self) {
        for task in lock(&self.shared.tasks).drain(..) {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The accounting view of a router session.
fn acct_session(s: &RouterSession, router: Ipv4Addr) -> AcctSession {
    let mut a = AcctSession::new(&s.username, &s.acct_session_id, s.nas_port);
    a.framed_ip = s.framed_ip;
    a.nas_ip = router;
    a
}

// ------------------------------------------------------------------ /radius incoming

async fn listen(shared: Arc<Shared>, sock: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let (reply, ended) = handle(&shared, &buf[..n], from);
        if let Some(reply) = reply {
            let _ = sock.send_to(&reply, from).await;
        }
        // RouterOS reports a session it ended on request with a Stop, after the ACK.
        if let Some(acct) = &shared.acct {
            for s in ended {
                let acct = acct.clone();
                let stop = acct_session(&s, shared.ip)
                    .stop_because(s.counters, attr::acct_terminate_cause::ADMIN_RESET);
                let task = tokio::spawn(async move {
                    if acct.try_once(stop, DEADLINE * 6).await == Answer::NoResponse {
                        eprintln!(
                            "mikrotik stand-in: Accounting-Stop of {} never acknowledged",
                            s.acct_session_id
                        );
                    }
                });
                lock(&shared.tasks).push(task.abort_handle());
            }
        }
    }
}

/// Decides about one datagram: records it, returns the reply to send (if any) and the
/// sessions a Disconnect ended.
fn handle(
    shared: &Shared,
    bytes: &[u8],
    from: SocketAddr,
) -> (Option<Vec<u8>>, Vec<RouterSession>) {
    let mut st = shared.state();
    let record = |st: &mut State, packet: Option<Packet>, verdict, retransmission| {
        st.received.push(Received {
            at: Utc::now(),
            from,
            packet,
            verdict,
            retransmission,
        });
    };
    let packet = match Packet::decode(bytes) {
        Ok(p) if matches!(p.code, Code::DISCONNECT_REQUEST | Code::COA_REQUEST) => p,
        Ok(p) => {
            record(&mut st, Some(p), Verdict::Malformed, false);
            return (None, Vec::new());
        }
        Err(_) => {
            record(&mut st, None, Verdict::Malformed, false);
            return (None, Vec::new());
        }
    };
    match packet.verify_request(&shared.secret) {
        Ok(()) => {}
        Err(e) => {
            let verdict = if e == ProtoError::BadMessageAuthenticator {
                Verdict::BadMessageAuthenticator
            } else {
                Verdict::BadAuthenticator
            };
            record(&mut st, Some(packet), verdict, false);
            return (None, Vec::new());
        }
    }

    let now = Instant::now();
    st.answered
        .retain(|_, seen| now.duration_since(seen.at) < REPLY_CACHE_TTL);
    let key = (from, packet.id);
    let seen = st
        .answered
        .get(&key)
        .filter(|seen| seen.authenticator == packet.authenticator)
        .map(|seen| seen.reply.clone());
    let retransmission = seen.is_some();
    if st.silent {
        if !retransmission {
            st.answered.insert(
                key,
                Seen {
                    at: now,
                    authenticator: packet.authenticator,
                    reply: None,
                },
            );
        }
        record(&mut st, Some(packet), Verdict::Ignored, retransmission);
        return (None, Vec::new());
    }
    if let Some(Some(reply)) = seen {
        record(&mut st, Some(packet), Verdict::Duplicate, true);
        return (Some(reply), Vec::new());
    }

    let (verdict, ended) = apply(&mut st, &packet, shared.ip);
    let (ack, nak) = if packet.code == Code::DISCONNECT_REQUEST {
        (Code::DISCONNECT_ACK, Code::DISCONNECT_NAK)
    } else {
        (Code::COA_ACK, Code::COA_NAK)
    };
    let reply = match verdict {
        Verdict::Nak(cause) => {
            Packet::reply_to(&packet, nak).with_integer(attr::ERROR_CAUSE, cause)
        }
        _ => Packet::reply_to(&packet, ack),
    }
    .with_message_authenticator()
    .encode(&shared.secret)
    .expect("encode reply");
    st.answered.insert(
        key,
        Seen {
            at: now,
            authenticator: packet.authenticator,
            reply: Some(reply.clone()),
        },
    );
    record(&mut st, Some(packet), verdict, retransmission);
    (Some(reply), ended)
}

/// Applies an authenticated, new Disconnect- or CoA-Request to the sessions.
fn apply(st: &mut State, packet: &Packet, router: Ipv4Addr) -> (Verdict, Vec<RouterSession>) {
    if packet.code == Code::COA_REQUEST && st.coa_unsupported {
        return (
            Verdict::Nak(attr::error_cause::UNSUPPORTED_SERVICE),
            Vec::new(),
        );
    }
    let matched = match matching(&st.sessions, packet, router) {
        Ok(m) => m,
        Err(cause) => return (Verdict::Nak(cause), Vec::new()),
    };
    if packet.code == Code::DISCONNECT_REQUEST {
        let mut ended = Vec::new();
        let mut i = 0;
        st.sessions.retain(|s| {
            let keep = !matched.contains(&i);
            i += 1;
            if !keep {
                ended.push(s.clone());
            }
            keep
        });
        return (Verdict::Ack, ended);
    }
    let rate_limit = packet
        .vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT)
        .ok()
        .flatten()
        .map(str::to_owned);
    let session_timeout = packet.integer(attr::SESSION_TIMEOUT).ok().flatten();
    for &i in &matched {
        let s = &mut st.sessions[i];
        if let Some(r) = &rate_limit {
            s.rate_limit = Some(r.clone());
        }
        if let Some(t) = session_timeout {
            s.session_timeout = Some(t);
        }
    }
    (Verdict::Ack, Vec::new())
}

/// Indexes of the sessions a request identifies, or the Error-Cause of the NAK.
fn matching(
    sessions: &[RouterSession],
    packet: &Packet,
    router: Ipv4Addr,
) -> Result<Vec<usize>, u32> {
    use attr::error_cause::{
        MISSING_ATTRIBUTE, NAS_IDENTIFICATION_MISMATCH, SESSION_CONTEXT_NOT_FOUND,
    };
    if let Some(nas_ip) = packet.ipv4(attr::NAS_IP_ADDRESS).ok().flatten()
        && nas_ip != router
    {
        return Err(NAS_IDENTIFICATION_MISMATCH);
    }
    let user = packet.attr(attr::USER_NAME);
    let session_id = packet.attr(attr::ACCT_SESSION_ID);
    let framed_ip = packet.attr(attr::FRAMED_IP_ADDRESS);
    if user.is_none() && session_id.is_none() && framed_ip.is_none() {
        return Err(MISSING_ATTRIBUTE);
    }
    let found: Vec<usize> = sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            user.is_none_or(|u| u == s.username.as_bytes())
                && session_id.is_none_or(|id| id == s.acct_session_id.as_bytes())
                && framed_ip.is_none_or(|ip| ip == s.framed_ip.octets())
        })
        .map(|(i, _)| i)
        .collect();
    if found.is_empty() {
        Err(SESSION_CONTEXT_NOT_FOUND)
    } else {
        Ok(found)
    }
}
