//! The two Disconnect/CoA peers of the end-to-end tests, tested with independent clients:
//! the MikroTik stand-in (tests/support/mikrotik.rs) against radclient and raw UDP, and as
//! a NAS against radiusd and the daemon; the FreeRADIUS CoA receiver
//! (tests/support/coa_server.rs) against requests built with radius-proto.

mod support;

use std::net::Ipv4Addr;

use radius_proto::{Code, Packet, attr};
use serde_json::json;
use support::acct::{self, Counters};
use support::coa_server::CoaServer;
use support::mikrotik::{Mikrotik, RouterSession, Verdict};
use support::{DEADLINE, Reply, quoted, spawn_stack};

const SECRET: &str = "stand-in-secret";

/// radclient `command` (disconnect, coa) to the router's listener: one try, 1 s.
async fn radclient(
    router: &Mikrotik,
    command: &str,
    secret: &str,
    attrs: &[(&str, String)],
) -> Reply {
    radclient_with(router, command, secret, attrs, &["-r", "1", "-t", "1"]).await
}

async fn radclient_with(
    router: &Mikrotik,
    command: &str,
    secret: &str,
    attrs: &[(&str, String)],
    options: &[&str],
) -> Reply {
    let input: String = attrs.iter().map(|(n, v)| format!("{n} = {v}\n")).collect();
    support::radclient_at(router.coa_addr(), command, &input, secret, options).await
}

/// The four attributes RouterOS needs to find a session.
fn identify(router: &Mikrotik, s: &RouterSession) -> Vec<(&'static str, String)> {
    vec![
        ("User-Name", quoted(&s.username)),
        ("Acct-Session-Id", quoted(&s.acct_session_id)),
        ("Framed-IP-Address", s.framed_ip.to_string()),
        ("NAS-IP-Address", router.ip().to_string()),
    ]
}

async fn router_with_session(host: u8, user: &str) -> (Mikrotik, RouterSession) {
    let router = Mikrotik::start(host, SECRET, None).await;
    let session = router
        .start_session(
            user,
            Some(Ipv4Addr::new(10, 7, 0, host)),
            Some("4M/8M".into()),
            None,
        )
        .await;
    (router, session)
}

#[tokio::test]
async fn disconnect_of_a_known_session_is_acked_and_of_an_unknown_one_nakked_503() {
    let (router, session) = router_with_session(21, "dora").await;
    let other = router.start_session("olga", None, None, None).await;

    let reply = radclient(&router, "disconnect", SECRET, &identify(&router, &session)).await;
    assert_eq!(reply.code.as_deref(), Some("Disconnect-ACK"), "{reply}");
    assert!(
        reply.has("Message-Authenticator"),
        "the v7 ACK shape:\n{reply}"
    );
    assert_eq!(
        router.session(&session.acct_session_id),
        None,
        "session ended"
    );
    assert!(
        router.session(&other.acct_session_id).is_some(),
        "the other session stays up"
    );
    let got = router
        .wait_for("the Disconnect-Request recorded", |r| {
            r.disconnects(&session)
        })
        .await;
    assert_eq!(got.verdict, Verdict::Ack);
    assert_eq!(got.nas_ip(), Some(router.ip()));

    // The same session again: gone, so NAK with Session-Context-Not-Found.
    let reply = radclient(&router, "disconnect", SECRET, &identify(&router, &session)).await;
    assert_eq!(reply.code.as_deref(), Some("Disconnect-NAK"), "{reply}");
    assert_eq!(
        reply.attr("Error-Cause"),
        Some("Session-Context-Not-Found"),
        "{reply}"
    );

    // Every present attribute must match: the right user with another session's id is no match.
    let mut mixed = identify(&router, &other);
    mixed[0].1 = quoted("dora");
    let reply = radclient(&router, "disconnect", SECRET, &mixed).await;
    assert_eq!(
        reply.attr("Error-Cause"),
        Some("Session-Context-Not-Found"),
        "{reply}"
    );

    // Another router's NAS-IP-Address.
    let mut elsewhere = identify(&router, &other);
    elsewhere[3].1 = "127.0.0.99".into();
    let reply = radclient(&router, "disconnect", SECRET, &elsewhere).await;
    assert_eq!(
        reply.attr("Error-Cause"),
        Some("NAS-Identification-Mismatch"),
        "{reply}"
    );

    // User-Name alone is enough (disconnect-ack-01.txt).
    let reply = radclient(
        &router,
        "disconnect",
        SECRET,
        &[("User-Name", quoted("olga"))],
    )
    .await;
    assert_eq!(reply.code.as_deref(), Some("Disconnect-ACK"), "{reply}");
    assert!(router.sessions().is_empty());
}

#[tokio::test]
async fn coa_changes_the_rate_limit_and_can_be_switched_off() {
    let (router, session) = router_with_session(22, "cora").await;
    let mut attrs = identify(&router, &session);
    attrs.push(("Mikrotik-Rate-Limit", quoted("512k/1M")));
    attrs.push(("Session-Timeout", "600".into()));

    let reply = radclient(&router, "coa", SECRET, &attrs).await;
    assert_eq!(reply.code.as_deref(), Some("CoA-ACK"), "{reply}");
    let now = router.session(&session.acct_session_id).expect("still up");
    assert_eq!(now.rate_limit.as_deref(), Some("512k/1M"));
    assert_eq!(now.session_timeout, Some(600));
    let got = router
        .wait_for("the CoA recorded", |r| r.changes(&session))
        .await;
    assert_eq!(got.rate_limit().as_deref(), Some("512k/1M"));

    // Unknown session.
    let mut unknown = attrs.clone();
    unknown[1].1 = quoted("ffffffff");
    let reply = radclient(&router, "coa", SECRET, &unknown).await;
    assert_eq!(reply.code.as_deref(), Some("CoA-NAK"), "{reply}");
    assert_eq!(
        reply.attr("Error-Cause"),
        Some("Session-Context-Not-Found"),
        "{reply}"
    );

    // A service without CoA: NAK 405, nothing changed; Disconnect still works.
    router.set_coa_unsupported(true);
    attrs[4].1 = quoted("1k/1k");
    let reply = radclient(&router, "coa", SECRET, &attrs).await;
    assert_eq!(reply.code.as_deref(), Some("CoA-NAK"), "{reply}");
    assert_eq!(
        reply.attr("Error-Cause"),
        Some("Unsupported-Service"),
        "{reply}"
    );
    assert_eq!(
        router
            .session(&session.acct_session_id)
            .and_then(|s| s.rate_limit)
            .as_deref(),
        Some("512k/1M")
    );
    let reply = radclient(&router, "disconnect", SECRET, &identify(&router, &session)).await;
    assert_eq!(reply.code.as_deref(), Some("Disconnect-ACK"), "{reply}");
}

#[tokio::test]
async fn wrong_secret_and_silence_get_no_answer() {
    let (router, session) = router_with_session(23, "wanda").await;

    let reply = radclient(
        &router,
        "disconnect",
        "not-the-secret",
        &identify(&router, &session),
    )
    .await;
    assert_eq!(
        reply.code, None,
        "a request signed with another secret was answered:\n{reply}"
    );
    let got = router
        .wait_for("the forged request recorded", |r| r.is_disconnect())
        .await;
    assert_eq!(got.verdict, Verdict::BadAuthenticator);
    assert!(
        router.session(&session.acct_session_id).is_some(),
        "not applied"
    );

    router.set_silent(true);
    let reply = radclient(&router, "disconnect", SECRET, &identify(&router, &session)).await;
    assert_eq!(reply.code, None, "a silent router answered:\n{reply}");
    assert!(
        router.session(&session.acct_session_id).is_some(),
        "not applied"
    );
    assert!(router.count(|r| r.verdict == Verdict::Ignored) >= 1);

    // Back online: radclient's retransmission of a request ignored while silent is
    // processed like a new one.
    let before = router.received().len();
    let attrs = identify(&router, &session);
    let client = radclient_with(
        &router,
        "disconnect",
        SECRET,
        &attrs,
        &["-r", "10", "-t", "1"],
    );
    let unsilence = async {
        router
            .wait_for("the first try while silent", |r| {
                r.verdict == Verdict::Ignored && r.is_disconnect()
            })
            .await;
        let n = router.received().len();
        support::poll(DEADLINE, "a try after", || {
            (router.received().len() > n.max(before)).then_some(())
        })
        .await;
        router.set_silent(false);
    };
    let (reply, ()) = tokio::join!(client, unsilence);
    assert_eq!(reply.code.as_deref(), Some("Disconnect-ACK"), "{reply}");
    let acked = router
        .wait_for("the ACKed try", |r| r.verdict == Verdict::Ack)
        .await;
    assert!(
        acked.retransmission,
        "radclient retransmits with the same id and authenticator"
    );
    assert_eq!(router.session(&session.acct_session_id), None);
}

#[tokio::test]
async fn a_bad_message_authenticator_is_dropped() {
    let (router, session) = router_with_session(25, "mona").await;
    let mut bytes = Packet::disconnect_request(9)
        .with_string(attr::USER_NAME, &session.username)
        .with_message_authenticator()
        .encode(SECRET.as_bytes())
        .expect("encode");
    // Spoil the Message-Authenticator (the last 16 octets), then sign the packet again so
    // that only the Message-Authenticator is wrong.
    let len = bytes.len();
    bytes[len - 1] ^= 1;
    bytes[4..20].fill(0);
    let digest = radius_proto::auth::packet_digest(&bytes, SECRET.as_bytes());
    bytes[4..20].copy_from_slice(&digest);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    sock.send_to(&bytes, router.coa_addr()).await.expect("send");
    let got = router
        .wait_for("the request recorded", |r| r.is_disconnect())
        .await;
    assert_eq!(got.verdict, Verdict::BadMessageAuthenticator);
    assert!(
        router.session(&session.acct_session_id).is_some(),
        "not applied"
    );
    let mut buf = [0u8; 64];
    let answer =
        tokio::time::timeout(std::time::Duration::from_millis(500), sock.recv(&mut buf)).await;
    assert!(answer.is_err(), "answered");
}

#[tokio::test]
async fn a_retransmission_gets_the_cached_reply_and_is_not_applied_twice() {
    let (router, session) = router_with_session(24, "rita").await;
    let request = Packet::disconnect_request(77)
        .with_string(attr::USER_NAME, &session.username)
        .with_string(attr::ACCT_SESSION_ID, &session.acct_session_id)
        .with_ipv4(attr::FRAMED_IP_ADDRESS, session.framed_ip)
        .with_ipv4(attr::NAS_IP_ADDRESS, router.ip())
        .with_message_authenticator();
    let bytes = request.encode(SECRET.as_bytes()).expect("encode");
    let auth = Packet::authenticator_from_wire(&bytes).expect("header");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    sock.connect(router.coa_addr()).await.expect("connect");
    let mut replies = Vec::new();
    for _ in 0..2 {
        sock.send(&bytes).await.expect("send");
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(DEADLINE, sock.recv(&mut buf))
            .await
            .expect("an answer")
            .expect("recv");
        replies.push(buf[..n].to_vec());
    }
    assert_eq!(replies[0], replies[1], "the cached reply is sent again");
    let reply = Packet::decode(&replies[0]).expect("decode");
    reply
        .verify_response(&auth, SECRET.as_bytes())
        .expect("response authenticator");
    reply.require_message_authenticator().expect("v7 shape");
    assert_eq!(
        reply.code,
        Code::DISCONNECT_ACK,
        "not a NAK 503 for the second copy"
    );
    let verdicts: Vec<_> = router
        .received()
        .iter()
        .map(|r| (r.verdict, r.retransmission))
        .collect();
    assert_eq!(
        verdicts,
        [(Verdict::Ack, false), (Verdict::Duplicate, true)]
    );
}

#[tokio::test]
async fn the_stand_in_logs_in_through_radiusd_and_its_sessions_reach_the_daemon() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({"rate_limit": "3M/6M"})).await;
    stack
        .create_subscriber("nasuser", "nas-pw", plan, json!({}))
        .await;
    let router = Mikrotik::attach(&stack, 31).await;

    let session = router.connect("nasuser", "nas-pw").await;
    assert!(
        session
            .rate_limit
            .as_deref()
            .is_some_and(|r| r.starts_with("3M/6M")),
        "{session:?}"
    );
    assert!(session.session_timeout.is_some(), "{session:?}");
    let row = stack
        .wait_for_sql(
            &format!(
                "SELECT host(source_ip), host(nas_ip), username, host(framed_ip), stopped_at IS NULL, router_id \
                 FROM sessions WHERE acct_session_id = '{}'",
                session.acct_session_id
            ),
            &format!("127.0.0.31|127.0.0.31|nasuser|{}|t|{}", session.framed_ip, router.router_id()),
        )
        .await;
    assert!(!row.is_empty());

    router
        .interim(
            &session.acct_session_id,
            Counters {
                input: 1000,
                output: 5000,
                seconds: 60,
            },
        )
        .await;
    let reply = support::radclient_at(
        router.coa_addr(),
        "disconnect",
        &identify(&router, &session)
            .iter()
            .map(|(n, v)| format!("{n} = {v}\n"))
            .collect::<String>(),
        router.secret(),
        &["-r", "1", "-t", "2"],
    )
    .await;
    assert_eq!(reply.code.as_deref(), Some("Disconnect-ACK"), "{reply}");
    // RouterOS reports the end with a Stop: Admin-Reset, last counters.
    stack
        .wait_for_sql(
            &format!(
                "SELECT terminate_cause, output_bytes FROM sessions WHERE acct_session_id = '{}'",
                session.acct_session_id
            ),
            "Admin-Reset|5000",
        )
        .await;
}

/// Sends `request` to the receiver from 127.0.0.1 (retransmitting); the reply, verified
/// against the request's authenticator with the receiver's secret.
async fn exchange(server: &CoaServer, request: &Packet) -> Option<Packet> {
    let sock = acct::connected_socket([127, 0, 0, 1].into(), server.addr()).await;
    acct::request(&sock, request, server.secret().as_bytes(), DEADLINE).await
}

#[tokio::test]
async fn freeradius_acks_our_disconnect_and_coa_requests_and_logs_their_attributes() {
    let server = CoaServer::start().await;
    let framed = Ipv4Addr::new(10, 9, 8, 7);
    let nas = Ipv4Addr::new(127, 0, 0, 42);

    let disconnect = Packet::disconnect_request(5)
        .with_string(attr::USER_NAME, "dan")
        .with_string(attr::ACCT_SESSION_ID, "81a00042")
        .with_ipv4(attr::FRAMED_IP_ADDRESS, framed)
        .with_ipv4(attr::NAS_IP_ADDRESS, nas)
        .with_integer(attr::EVENT_TIMESTAMP, 1_700_000_000)
        .with_message_authenticator();
    let reply = exchange(&server, &disconnect)
        .await
        .unwrap_or_else(|| panic!("no verified answer:\n{}", server.log_tail(40)));
    assert_eq!(reply.code, Code::DISCONNECT_ACK);
    let logged = server
        .wait_for("the Disconnect-Request logged", |r| r.is_disconnect())
        .await;
    assert_eq!(
        logged.attrs,
        [
            ("User-Name", "dan"),
            ("Acct-Session-Id", "81a00042"),
            ("Framed-IP-Address", "10.9.8.7"),
            ("NAS-IP-Address", "127.0.0.42"),
            (
                "Event-Timestamp",
                logged.attr("Event-Timestamp").unwrap_or("?")
            ),
            (
                "Message-Authenticator",
                logged.attr("Message-Authenticator").unwrap_or("?")
            ),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );

    let coa = Packet::coa_request(6)
        .with_string(attr::USER_NAME, "dan")
        .with_string(attr::ACCT_SESSION_ID, "81a00042")
        .with_ipv4(attr::FRAMED_IP_ADDRESS, framed)
        .with_ipv4(attr::NAS_IP_ADDRESS, nas)
        .with_vendor_string(
            attr::mikrotik::VENDOR_ID,
            attr::mikrotik::RATE_LIMIT,
            "256k/512k",
        )
        .with_integer(attr::SESSION_TIMEOUT, 900);
    let reply = exchange(&server, &coa)
        .await
        .unwrap_or_else(|| panic!("no verified answer:\n{}", server.log_tail(40)));
    assert_eq!(reply.code, Code::COA_ACK);
    let logged = server
        .wait_for("the CoA-Request logged", |r| r.is_coa())
        .await;
    assert_eq!(logged.attr("Mikrotik-Rate-Limit"), Some("256k/512k"));
    assert_eq!(logged.attr("Session-Timeout"), Some("900"));
    assert_eq!(logged.attr("User-Name"), Some("dan"));

    // Signed with another secret: radiusd drops it, so an ACK above meant a good signature.
    let bytes = Packet::disconnect_request(7)
        .with_string(attr::USER_NAME, "eve")
        .encode(b"not-the-secret")
        .expect("encode");
    let sock = acct::connected_socket([127, 0, 0, 1].into(), server.addr()).await;
    sock.send(&bytes).await.expect("send");
    let mut buf = [0u8; 4096];
    let answer = tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv(&mut buf)).await;
    assert!(answer.is_err(), "a badly signed request was answered");
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());
}
