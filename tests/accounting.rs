//! End to end: accounting through Debian's radiusd, rlm_jasiyo's journal and the
//! billing-daemon's consumer into Postgres, read back through the API: Gigawords counted,
//! duplicates and reordering harmless, Accounting-On closing the router's sessions, and
//! post-auth results in the authentication log with their reasons.

mod support;

use serde_json::{Value, json};
use support::acct::{AcctSession, Counters, accounting_on_off};
use support::{DEADLINE, pap, poll_async, quoted, spawn_stack};

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

async fn sessions_of(stack: &support::Stack, username: &str) -> Vec<Value> {
    stack
        .api
        .get(&format!("/subscribers/{username}/sessions"))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls the subscriber's sessions until `done` holds for the list.
async fn poll_sessions(
    stack: &support::Stack,
    username: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let found = poll_async(DEADLINE, async || {
        let list = sessions_of(stack, username).await;
        if done(&list) {
            Ok(list)
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
    found.unwrap_or_else(|list| panic!("{what}: not so after {DEADLINE:?}; sessions: {list}"))
}

fn counters_of(s: &Value) -> (i64, i64, i64) {
    (
        s["input_bytes"].as_i64().expect("input_bytes"),
        s["output_bytes"].as_i64().expect("output_bytes"),
        s["session_seconds"].as_i64().expect("session_seconds"),
    )
}

#[tokio::test]
async fn duplicates_and_reordering_never_lose_or_double_count() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({"simultaneous_use": null})).await;
    stack
        .create_subscriber("otto", "otto-pw", plan, json!({}))
        .await;
    let acct = stack.acct();

    // Session A: the Stop arrives first, then a late Interim with smaller counters, then
    // the Start, then the Stop again (a retransmission the router did not know was seen).
    let a = AcctSession::new("otto", "80f00002", 2);
    let a_stop = Counters {
        input: 7_000_000_000,
        output: 9_000_000_000,
        seconds: 900,
    };
    acct.send(a.stop(a_stop), DEADLINE).await;
    acct.send(
        a.interim(Counters {
            input: 1_000,
            output: 2_000,
            seconds: 300,
        }),
        DEADLINE,
    )
    .await;
    acct.send(a.start(), DEADLINE).await;
    acct.send(a.stop(a_stop), DEADLINE).await;

    // Session B: Interim without a Start, the same Interim three times, then a smaller one.
    let b = AcctSession::new("otto", "80f00003", 3);
    let b_interim = Counters {
        input: 5_000_000,
        output: 6_000_000,
        seconds: 600,
    };
    for _ in 0..3 {
        acct.send(b.interim(b_interim), DEADLINE).await;
    }
    acct.send(
        b.interim(Counters {
            input: 1,
            output: 1,
            seconds: 1,
        }),
        DEADLINE,
    )
    .await;

    let list = poll_sessions(&stack, "otto", "both sessions recorded", |l| {
        l.len() == 2
            && l.iter().any(|s| {
                s["acct_session_id"] == json!("80f00003")
                    && counters_of(s) == (5_000_000, 6_000_000, 600)
            })
            && l.iter()
                .any(|s| s["acct_session_id"] == json!("80f00002") && s["online"] == json!(false))
    })
    .await;
    let by_id = |id: &str| {
        list.iter()
            .find(|s| s["acct_session_id"] == json!(id))
            .unwrap_or_else(|| panic!("no session {id}: {list:?}"))
    };
    let sa = by_id("80f00002");
    assert_eq!(counters_of(sa), (7_000_000_000, 9_000_000_000, 900));
    assert_eq!(sa["closed_by"], json!("router"));
    let sb = by_id("80f00003");
    assert_eq!(
        sb["online"],
        json!(true),
        "an Interim without Start opens it"
    );

    // Usage is the sum of both sessions' final counters: nothing counted twice.
    let usage = stack.api.get("/subscribers/otto/usage").await;
    assert_eq!(
        usage["total"]["input_bytes"],
        json!(7_000_000_000_i64 + 5_000_000),
        "{usage}"
    );
    assert_eq!(
        usage["total"]["output_bytes"],
        json!(9_000_000_000_i64 + 6_000_000),
        "{usage}"
    );
    assert_eq!(usage["total"]["seconds"], json!(1500), "{usage}");
}

#[tokio::test]
async fn accounting_on_closes_the_routers_open_sessions() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({"simultaneous_use": null})).await;
    stack
        .create_subscriber("rita", "rita-pw", plan, json!({}))
        .await;
    let acct = stack.acct();
    for (i, id) in ["80f00010", "80f00011"].iter().enumerate() {
        acct.send(
            AcctSession::new("rita", id, 10 + i as u32).start(),
            DEADLINE,
        )
        .await;
    }
    poll_sessions(&stack, "rita", "two sessions online", |l| {
        l.len() == 2 && l.iter().all(|s| s["online"] == json!(true))
    })
    .await;

    // The router rebooted: it says so before any new session.
    acct.send(accounting_on_off(true), DEADLINE).await;
    let closed = poll_sessions(&stack, "rita", "closed by Accounting-On", |l| {
        l.len() == 2 && l.iter().all(|s| s["online"] == json!(false))
    })
    .await;
    for s in &closed {
        assert_eq!(s["terminate_cause"], json!("NAS-Reboot"), "{s}");
        assert_eq!(s["closed_by"], json!("nas-reboot"), "{s}");
    }
}

#[tokio::test]
async fn post_auth_results_reach_the_auth_log_with_reasons() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({})).await;
    stack
        .create_subscriber("lola", "lola-pw", plan, json!({}))
        .await;
    stack
        .create_subscriber("mona", "mona-pw", plan, json!({"status": "suspended"}))
        .await;
    let r = &stack.radius;
    r.poll_until(
        || pap("lola", "lola-pw"),
        "lola accepted",
        |r| r.is_accept(),
    )
    .await;
    assert!(r.send(&pap("lola", "wrong")).await.is_reject());
    assert!(r.send(&pap("mona", "mona-pw")).await.is_reject());

    let logged = poll_async(DEADLINE, async || {
        let lola = stack.api.get("/auth-log?username=lola").await;
        let mona = stack.api.get("/auth-log?username=mona").await;
        let has = |log: &Value, accepted: bool, reason: &str| {
            log.as_array().is_some_and(|l| {
                l.iter().any(|e| {
                    e["accepted"] == json!(accepted)
                        && e["reason"].as_str().unwrap_or("").contains(reason)
                })
            })
        };
        if has(&lola, true, "")
            && has(&lola, false, "Invalid username or password")
            && has(&mona, false, "Account suspended")
        {
            Ok(())
        } else {
            Err(format!("lola {lola}, mona {mona}"))
        }
    })
    .await;
    if let Err(logs) = logged {
        panic!("auth-log incomplete after {DEADLINE:?}: {logs}");
    }
}

#[tokio::test]
async fn a_packet_postgres_cannot_store_is_set_aside_and_the_rest_lands() {
    let mut stack = spawn_stack().await;
    let plan = stack.create_plan(json!({"simultaneous_use": null})).await;
    stack
        .create_subscriber("paula", "paula-pw", plan, json!({}))
        .await;
    // An operator's rule that one session breaks: Postgres refuses that row (SQLSTATE 23514)
    // although the packet decodes, as it refuses any value it cannot store.
    stack.sql(
        "ALTER TABLE sessions ADD CONSTRAINT e2e_poison CHECK (acct_session_id <> '80dead01')",
    );
    // With the daemon stopped, radiusd still journals every packet, so the daemon later
    // reads them all as one batch with the poison in the middle.
    stack.stop_daemon();
    let acct = stack.acct();
    let good = |i: u32| AcctSession::new("paula", &format!("80900{i:03}"), 20 + i);
    for i in 0..3 {
        acct.send(good(i).start(), DEADLINE).await;
    }
    // A User-Name with a NUL byte: valid UTF-8, never storable as Postgres text.
    acct.send(
        AcctSession::new("pau\0la", "80nul001", 90).start(),
        DEADLINE,
    )
    .await;
    acct.send(AcctSession::new("paula", "80dead01", 91).start(), DEADLINE)
        .await;
    for i in 3..6 {
        acct.send(good(i).start(), DEADLINE).await;
    }
    acct.send(
        good(1).interim(Counters {
            input: 7000,
            output: 9000,
            seconds: 60,
        }),
        DEADLINE,
    )
    .await;
    stack.start_daemon().await;
    stack.wait_journal_drained().await;

    let sessions = sessions_of(&stack, "paula").await;
    assert_eq!(sessions.len(), 6, "{sessions:?}");
    assert!(sessions.iter().all(|s| s["online"] == json!(true)));
    let s1 = sessions
        .iter()
        .find(|s| s["acct_session_id"] == json!("80900001"))
        .expect("session 80900001");
    assert_eq!(counters_of(s1), (7000, 9000, 60));
    let rejects = stack.sql(
        "SELECT string_agg(CASE WHEN error LIKE '%NUL byte%' THEN 'nul' \
           WHEN error LIKE '%23514%' AND error LIKE '%e2e_poison%' THEN 'refused' \
           ELSE error END, ',' ORDER BY journal_position) FROM accounting_rejects",
    );
    assert_eq!(rejects, "nul,refused");
    // The raw packets are kept for whoever repairs them.
    assert_eq!(
        stack.sql(
            "SELECT count(*) FROM accounting_rejects \
             WHERE position(convert_to('80dead01', 'UTF8') in raw) > 0 \
                OR position('\\x70617500'::bytea in raw) > 0"
        ),
        "2"
    );
    let health = stack.health().await;
    let j = &health["journal"];
    assert_eq!(j["rejects_total"], 2, "{health}");
    assert_eq!(j["refused_total"], 1, "{health}");
    assert_eq!(j["accounting_total"], 7, "{health}");
}
