//! End to end: PAP, CHAP and MS-CHAPv2 through Debian's radiusd with
//! rlm_jasiyo answering from the snapshot that billing-daemon publishes.

mod support;

use serde_json::json;
use support::{
    chap, hotspot_pap, mschapv2, mschapv2_request, pap, rfc3339_in, shared_dir, spawn_stack, unhex,
};

fn assert_accept(reply: &support::Reply, what: &str) {
    assert!(
        reply.is_accept(),
        "{what}: expected Access-Accept, got\n{reply}"
    );
    assert!(
        reply.has("Message-Authenticator"),
        "{what}: Access-Accept without Message-Authenticator:\n{reply}"
    );
}

fn assert_reject(reply: &support::Reply, what: &str) {
    assert!(
        reply.is_reject(),
        "{what}: expected Access-Reject, got\n{reply}"
    );
    assert!(
        reply.has("Message-Authenticator"),
        "{what}: Access-Reject without Message-Authenticator:\n{reply}"
    );
}

/// Session-Timeout must be the time left until expiry: positive and at most
/// what was left when the subscriber was created.
fn session_timeout(reply: &support::Reply) -> i64 {
    reply
        .attr("Session-Timeout")
        .unwrap_or_else(|| panic!("no Session-Timeout in\n{reply}"))
        .parse()
        .unwrap_or_else(|e| panic!("Session-Timeout not a number ({e}) in\n{reply}"))
}

#[tokio::test]
async fn pap_chap_and_mschapv2_accept_with_plan_attributes() {
    let stack = spawn_stack().await;
    let plan = stack
        .create_plan(json!({"rate_limit": "5M/10M", "ip_pool": "pool-e2e"}))
        .await;
    stack
        .create_subscriber(
            "alice",
            "s3cret-Pw",
            plan,
            json!({"expires_at": rfc3339_in(3600)}),
        )
        .await;

    let r = &stack.radius;
    // The first request may race the snapshot that carries alice.
    let reply = r
        .poll_until(
            || pap("alice", "s3cret-Pw"),
            "PAP accept for alice",
            |r| r.is_accept(),
        )
        .await;
    assert_accept(&reply, "PAP");
    assert_eq!(reply.attr("Mikrotik-Rate-Limit"), Some("5M/10M"), "{reply}");
    assert_eq!(reply.attr("Framed-Pool"), Some("pool-e2e"), "{reply}");
    assert!(!reply.has("Framed-IP-Address"), "{reply}");
    let timeout = session_timeout(&reply);
    assert!(
        (1..=3600).contains(&timeout),
        "Session-Timeout {timeout}\n{reply}"
    );
    assert!(reply.has("Acct-Interim-Interval"), "{reply}");
    assert!(
        !reply.has("Mikrotik-Total-Limit"),
        "unlimited data:\n{reply}"
    );

    let reply = r.send(&chap("alice", "s3cret-Pw")).await;
    assert_accept(&reply, "CHAP");
    assert_eq!(reply.attr("Mikrotik-Rate-Limit"), Some("5M/10M"), "{reply}");

    let ms = mschapv2_request("alice", "s3cret-Pw");
    let reply = r.send(&ms.attrs).await;
    assert_accept(&reply, "MS-CHAPv2");
    assert_eq!(reply.attr("Mikrotik-Rate-Limit"), Some("5M/10M"), "{reply}");
    // The server proves it knew the password too (RFC 2759 section 8.7).
    let success = unhex(
        reply
            .attr("MS-CHAP2-Success")
            .unwrap_or_else(|| panic!("MS-CHAPv2 without MS-CHAP2-Success:\n{reply}")),
    );
    assert_eq!(
        success.first(),
        Some(&1),
        "MS-CHAP2-Success ident:\n{reply}"
    );
    assert_eq!(
        String::from_utf8_lossy(&success[1..]),
        ms.expected_success,
        "wrong authenticator response:\n{reply}"
    );

    let reply = r.send(&hotspot_pap("alice", "s3cret-Pw")).await;
    assert_accept(&reply, "Hotspot PAP on a plan for both services");
}

#[tokio::test]
async fn static_ip_and_data_allowance_go_into_the_accept() {
    let stack = spawn_stack().await;
    let plan = stack
        .create_plan(json!({"rate_limit": "1M/2M 2M/4M 768k/1536k 16/16 8 256k/512k", "ip_pool": "pool-e2e"}))
        .await;
    // 5 GiB + 7 bytes: one gigaword and 7 bytes.
    stack
        .create_subscriber(
            "bob",
            "bob-pw",
            plan,
            json!({"static_ip": "10.20.30.40", "data_remaining_bytes": 5_368_709_127_i64}),
        )
        .await;
    let reply = stack
        .radius
        .poll_until(
            || pap("bob", "bob-pw"),
            "PAP accept for bob",
            |r| r.is_accept(),
        )
        .await;
    assert_accept(&reply, "PAP");
    assert_eq!(
        reply.attr("Mikrotik-Rate-Limit"),
        Some("1M/2M 2M/4M 768k/1536k 16/16 8 256k/512k"),
        "{reply}"
    );
    assert_eq!(
        reply.attr("Framed-IP-Address"),
        Some("10.20.30.40"),
        "{reply}"
    );
    assert!(
        !reply.has("Framed-Pool"),
        "static IP wins over the pool:\n{reply}"
    );
    assert_eq!(
        reply.attr("Mikrotik-Total-Limit"),
        Some("1073741831"),
        "{reply}"
    );
    assert_eq!(
        reply.attr("Mikrotik-Total-Limit-Gigawords"),
        Some("1"),
        "{reply}"
    );
}

#[tokio::test]
async fn rejects_say_why() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({})).await;
    let pppoe_only = stack.create_plan(json!({"service": "pppoe"})).await;
    stack
        .create_subscriber("carol", "carol-pw", plan, json!({}))
        .await;
    stack
        .create_subscriber("dave", "dave-pw", plan, json!({"status": "suspended"}))
        .await;
    stack
        .create_subscriber(
            "erin",
            "erin-pw",
            plan,
            json!({"expires_at": rfc3339_in(-60)}),
        )
        .await;
    stack
        .create_subscriber(
            "frank",
            "frank-pw",
            plan,
            json!({"data_remaining_bytes": 0}),
        )
        .await;
    stack
        .create_subscriber("gina", "gina-pw", pppoe_only, json!({}))
        .await;
    let r = &stack.radius;
    // Wait until the snapshot carries them all (gina is the last one created).
    r.poll_until(
        || pap("gina", "gina-pw"),
        "gina accepted",
        |r| r.is_accept(),
    )
    .await;

    // Wrong password and unknown user look the same to the client.
    for (what, request) in [
        ("wrong PAP password", pap("carol", "wrong")),
        ("wrong CHAP password", chap("carol", "wrong")),
        ("wrong MS-CHAPv2 password", mschapv2("carol", "wrong")),
        ("unknown user", pap("nobody-here", "x")),
    ] {
        let reply = r.send(&request).await;
        assert_reject(&reply, what);
        let message = reply
            .attr("Reply-Message")
            .unwrap_or_else(|| panic!("{what}: Access-Reject without Reply-Message:\n{reply}"));
        assert!(
            message
                .to_lowercase()
                .contains("invalid username or password"),
            "{what}: Reply-Message {message:?}"
        );
    }

    for (user, pass, reason) in [
        ("dave", "dave-pw", "suspend"),
        ("erin", "erin-pw", "expired"),
        ("frank", "frank-pw", "data"),
    ] {
        let reply = r.send(&pap(user, pass)).await;
        assert_reject(&reply, user);
        let message = reply
            .attr("Reply-Message")
            .unwrap_or_else(|| panic!("{user}: Access-Reject without Reply-Message:\n{reply}"));
        assert!(
            message.to_lowercase().contains(reason),
            "{user}: Reply-Message {message:?} does not mention {reason:?}"
        );
    }

    let reply = r.send(&hotspot_pap("gina", "gina-pw")).await;
    assert_reject(&reply, "hotspot login on a PPPoE-only plan");
    assert!(reply.has("Reply-Message"), "{reply}");
}

/// Hotspot MAC login (RouterOS sends the client MAC as User-Name) logs the
/// bound subscriber in; a MAC-bound account is refused from another device.
#[tokio::test]
async fn hotspot_mac_login_and_mac_binding() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({"rate_limit": "3M/3M"})).await;
    // hotspot_pap() sends Calling-Station-Id A4:17:31:41:CB:B6, pap() EC:F4:BB:FA:36:C9.
    stack
        .create_subscriber("olga", "olga-pw", plan, json!({"mac": "A4:17:31:41:CB:B6"}))
        .await;
    let r = &stack.radius;
    r.poll_until(
        || hotspot_pap("olga", "olga-pw"),
        "olga accepted from her device",
        |r| r.is_accept(),
    )
    .await;

    let reply = r
        .send(&hotspot_pap("A4:17:31:41:CB:B6", "A4:17:31:41:CB:B6"))
        .await;
    assert_accept(&reply, "MAC login");
    assert_eq!(reply.attr("Mikrotik-Rate-Limit"), Some("3M/3M"), "{reply}");

    let reply = r.send(&pap("olga", "olga-pw")).await;
    assert_reject(&reply, "MAC-bound account from another device");
    assert!(reply.has("Reply-Message"), "{reply}");
}

/// The real RouterOS Hotspot CHAP request (user test, password test), sent
/// byte for byte as captured: CHAP-Challenge and CHAP-Password included.
#[tokio::test]
async fn routeros_hotspot_chap_capture_is_accepted() {
    let fixture = shared_dir().join("fixtures/routeros/hotspot-chap-access-request-01.txt");
    let packet = support::fixture_packet(&fixture);
    assert!(
        packet.contains("CHAP-Password = 0x") && packet.contains("User-Name = \"test\""),
        "unexpected fixture content:\n{packet}"
    );

    let stack = spawn_stack().await;
    let plan = stack
        .create_plan(json!({"service": "hotspot", "rate_limit": "512k/2M"}))
        .await;
    stack
        .create_subscriber("test", "test", plan, json!({}))
        .await;

    let reply = stack
        .radius
        .poll_until(
            || hotspot_pap("test", "test"),
            "subscriber test visible",
            |r| r.is_accept(),
        )
        .await;
    assert!(reply.is_accept());

    let reply = stack.radius.send_raw(&packet, &stack.radius.secret).await;
    assert_accept(&reply, "captured RouterOS Hotspot CHAP request");
    assert_eq!(
        reply.attr("Mikrotik-Rate-Limit"),
        Some("512k/2M"),
        "{reply}"
    );
    assert!(reply.has("Session-Timeout"), "{reply}");
}
