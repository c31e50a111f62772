//! End to end: accounting through Debian's radiusd, rlm_jasiyo's journal and the
//! billing-daemon's consumer into Postgres.

mod support;

use serde_json::json;
use support::{pap, quoted, spawn_stack};

/// An Accounting-Request of one PPPoE session as RouterOS sends it.
fn acct(status: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = vec![
        ("Acct-Status-Type".into(), status.into()),
        ("User-Name".into(), quoted("acct-alice")),
        ("Acct-Session-Id".into(), quoted("81a00001")),
        ("NAS-Port".into(), "15728641".into()),
        ("NAS-Port-Type".into(), "Ethernet".into()),
        ("NAS-Identifier".into(), quoted("e2e")),
        ("Framed-IP-Address".into(), "10.5.88.2".into()),
        ("Calling-Station-Id".into(), quoted("EC:F4:BB:FA:36:C9")),
        ("Acct-Delay-Time".into(), "0".into()),
    ];
    attrs.extend(extra.iter().map(|(n, v)| ((*n).to_owned(), v.clone())));
    attrs
}

fn counters(input: u64, output: u64, secs: u32) -> Vec<(&'static str, String)> {
    vec![
        ("Acct-Input-Octets", (input & 0xFFFF_FFFF).to_string()),
        ("Acct-Input-Gigawords", (input >> 32).to_string()),
        ("Acct-Output-Octets", (output & 0xFFFF_FFFF).to_string()),
        ("Acct-Output-Gigawords", (output >> 32).to_string()),
        ("Acct-Session-Time", secs.to_string()),
    ]
}

#[tokio::test]
async fn start_interim_stop_land_exactly_and_auth_results_are_logged() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({})).await;
    stack
        .create_subscriber("acct-alice", "pw-acct-alice", plan, json!({}))
        .await;
    let r = &stack.radius;
    r.poll_until(
        || pap("acct-alice", "pw-acct-alice"),
        "PAP accept for acct-alice",
        |reply| reply.is_accept(),
    )
    .await;

    let g = 1u64 << 32;
    let packets = [
        acct("Start", &[]),
        acct("Interim-Update", &counters(5 * g + 1234, g + 99, 60)),
        acct(
            "Stop",
            &[
                counters(6 * g + 7, 2 * g + 1, 120),
                vec![("Acct-Terminate-Cause", "User-Request".to_owned())],
            ]
            .concat(),
        ),
    ];
    for packet in &packets {
        let reply = r.send_acct(packet).await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Accounting-Response"),
            "radiusd answers once the packet is journaled:\n{reply}"
        );
    }

    stack.wait_journal_drained().await;
    let row = stack
        .wait_for_sql(
            "SELECT input_bytes, output_bytes, session_seconds, start_seen, closed_by, \
               terminate_cause, host(framed_ip), calling_mac, subscriber_id IS NOT NULL \
             FROM sessions WHERE acct_session_id = '81a00001'",
            &format!(
                "{}|{}|120|t|router|User-Request|10.5.88.2|EC:F4:BB:FA:36:C9|t",
                6 * g + 7,
                2 * g + 1
            ),
        )
        .await;
    assert!(!row.is_empty());
    // The accept of the login went through the journal too (a reject would say why).
    stack
        .wait_for_sql(
            "SELECT count(*) FROM auth_log WHERE username = 'acct-alice' AND accepted",
            "1",
        )
        .await;
    let health = stack.health().await;
    assert_eq!(health["journal"]["accounting_total"], 3, "{health}");
    assert_eq!(health["journal"]["rejects_total"], 0, "{health}");
}
