//! End to end: accounting flows back into authorization. Usage reported by the router
//! counts down a subscriber's data and time allowance, which the next Access-Accept carries
//! (Mikrotik-Total-Limit, Session-Timeout) and which rejects (or slows to the plan's FUP
//! rate) at zero; open sessions count against the plan's simultaneous-use limit.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use radius_proto::attr;
use serde_json::json;
use support::acct::{AcctSession, Counters};
use support::{DEADLINE, Reply, StackOptions, pap, poll_async, spawn_stack, spawn_stack_with};

/// How long a stale closure may take in a test: 2.5 intervals plus a sweep, on a busy machine.
const STALE_DEADLINE: Duration = Duration::from_secs(60);

fn total_limit(reply: &Reply) -> Option<u64> {
    let low: u64 = reply.attr("Mikrotik-Total-Limit")?.parse().ok()?;
    let high: u64 = reply
        .attr("Mikrotik-Total-Limit-Gigawords")
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    Some(high << 32 | low)
}

fn rejected_for(reply: &Reply, words: &str) -> bool {
    reply.is_reject()
        && reply
            .attr("Reply-Message")
            .is_some_and(|m| m.to_lowercase().contains(words))
}

#[tokio::test]
async fn a_data_allowance_counts_down_and_rejects_at_zero() {
    let stack = spawn_stack().await;
    // 6 GiB: above 4 GiB, so the limit needs Mikrotik-Total-Limit-Gigawords.
    let cap: u64 = 6 << 30;
    let plan = stack
        .create_plan(json!({"data_cap_bytes": cap, "simultaneous_use": null}))
        .await;
    stack
        .create_subscriber("dora", "dora-pw", plan, json!({}))
        .await;
    let r = &stack.radius;
    let login = || pap("dora", "dora-pw");
    let first = r
        .poll_until(login, "dora accepted", |r| r.is_accept())
        .await;
    assert_eq!(total_limit(&first), Some(cap), "{first}");

    // 1 GiB up and 2 GiB down in one session: 3 GiB left.
    let acct = stack.acct();
    let session = AcctSession::new("dora", "81a00001", 1);
    acct.send(session.start(), DEADLINE).await;
    let used = Counters {
        input: 1 << 30,
        output: 2 << 30,
        seconds: 600,
    };
    acct.send(session.interim(used), DEADLINE).await;
    // A retransmitted (duplicate) Interim must not count twice.
    acct.send(session.interim(used), DEADLINE).await;
    let left = cap - (3 << 30);
    r.poll_until(login, "the allowance counted down by exactly 3 GiB", |r| {
        r.is_accept() && total_limit(r) == Some(left)
    })
    .await;
    assert_eq!(
        stack.sql("SELECT data_remaining_bytes FROM subscribers WHERE username = 'dora'"),
        left.to_string()
    );

    // The session ends having used more than the allowance: the next login is refused.
    acct.send(
        session.stop(Counters {
            input: 3 << 30,
            output: 4 << 30,
            seconds: 1200,
        }),
        DEADLINE,
    )
    .await;
    r.poll_until(login, "rejected at zero", |r| rejected_for(r, "data"))
        .await;
    assert_eq!(
        stack.sql("SELECT data_remaining_bytes FROM subscribers WHERE username = 'dora'"),
        "0"
    );
}

#[tokio::test]
async fn a_plan_with_a_fup_rate_slows_down_instead_of_rejecting() {
    let stack = spawn_stack().await;
    let plan = stack
        .create_plan(json!({
            "rate_limit": "10M/10M",
            "data_cap_bytes": 1_000_000,
            "fup_rate_limit": "1M/1M",
            "simultaneous_use": null,
        }))
        .await;
    stack
        .create_subscriber("fay", "fay-pw", plan, json!({}))
        .await;
    let r = &stack.radius;
    let login = || pap("fay", "fay-pw");
    let before = r.poll_until(login, "fay accepted", |r| r.is_accept()).await;
    assert_eq!(before.attr("Mikrotik-Rate-Limit"), Some("10M/10M"));

    let acct = stack.acct();
    let session = AcctSession::new("fay", "81a00002", 2);
    acct.send(
        session.stop(Counters {
            input: 400_000,
            output: 700_000,
            seconds: 60,
        }),
        DEADLINE,
    )
    .await;
    let after = r
        .poll_until(login, "accepted at the FUP rate", |r| {
            r.is_accept() && r.attr("Mikrotik-Rate-Limit") == Some("1M/1M")
        })
        .await;
    assert_eq!(
        total_limit(&after),
        None,
        "no byte limit at the FUP rate:\n{after}"
    );
}

#[tokio::test]
async fn a_time_allowance_caps_session_timeout_and_rejects_at_zero() {
    let stack = spawn_stack().await;
    let plan = stack
        .create_plan(json!({"time_allowance_seconds": 7200, "simultaneous_use": null}))
        .await;
    stack
        .create_subscriber("tim", "tim-pw", plan, json!({}))
        .await;
    let r = &stack.radius;
    let login = || pap("tim", "tim-pw");
    let first = r.poll_until(login, "tim accepted", |r| r.is_accept()).await;
    // Expiry is a day away: the allowance is the tighter cap.
    assert_eq!(first.attr("Session-Timeout"), Some("7200"), "{first}");

    let acct = stack.acct();
    let session = AcctSession::new("tim", "81a00003", 3);
    acct.send(session.start(), DEADLINE).await;
    acct.send(
        session.interim(Counters {
            input: 1000,
            output: 1000,
            seconds: 1800,
        }),
        DEADLINE,
    )
    .await;
    r.poll_until(login, "Session-Timeout capped by the time left", |r| {
        r.is_accept() && r.attr("Session-Timeout") == Some("5400")
    })
    .await;
    acct.send(
        session.stop(Counters {
            input: 2000,
            output: 2000,
            seconds: 7300,
        }),
        DEADLINE,
    )
    .await;
    r.poll_until(login, "rejected with no time left", |r| {
        rejected_for(r, "time")
    })
    .await;
}

#[tokio::test]
async fn a_second_simultaneous_login_is_rejected_until_the_first_session_ends() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({"simultaneous_use": 1})).await;
    stack
        .create_subscriber("sam", "sam-pw", plan, json!({}))
        .await;
    let r = &stack.radius;
    let login = || pap("sam", "sam-pw");
    r.poll_until(login, "sam accepted", |r| r.is_accept()).await;

    let acct = stack.acct();
    let first = AcctSession::new("sam", "81a00004", 4);
    acct.send(first.start(), DEADLINE).await;
    let second = r
        .poll_until(login, "second login rejected", |r| {
            rejected_for(r, "simultaneous")
        })
        .await;
    assert!(second.has("Message-Authenticator"), "{second}");

    // The reason is in the authentication log (journaled by post-auth).
    let logged = poll_async(DEADLINE, async || {
        let log = stack.api.get("/auth-log?username=sam").await;
        let logged = log.as_array().is_some_and(|entries| {
            entries.iter().any(|e| {
                e["accepted"] == json!(false)
                    && e["reason"]
                        .as_str()
                        .is_some_and(|m| m.to_lowercase().contains("simultaneous"))
            })
        });
        if logged { Ok(()) } else { Err(log.to_string()) }
    })
    .await;
    if let Err(log) = logged {
        panic!("auth-log has no simultaneous-use reject after {DEADLINE:?}: {log}");
    }

    acct.send(
        first.stop(Counters {
            input: 10,
            output: 10,
            seconds: 30,
        }),
        DEADLINE,
    )
    .await;
    r.poll_until(login, "accepted again after the Stop", |r| r.is_accept())
        .await;

    // A router reboot (Accounting-On) also frees the slot.
    acct.send(AcctSession::new("sam", "81a00005", 5).start(), DEADLINE)
        .await;
    r.poll_until(login, "rejected while the new session is open", |r| {
        rejected_for(r, "simultaneous")
    })
    .await;
    acct.send(support::acct::accounting_on_off(true), DEADLINE)
        .await;
    r.poll_until(login, "accepted after Accounting-On", |r| r.is_accept())
        .await;
}

#[tokio::test]
async fn stale_session_closure_keeps_customers_from_being_locked_out_after_a_router_power_cut() {
    // A session without Acct-Interim-Interval is stale after 2.5 x 1 s here, swept every second.
    let stack = spawn_stack_with(StackOptions {
        stale_sweep_interval: Some(1),
        default_interim_interval: Some(1),
        ..StackOptions::default()
    })
    .await;
    let plan = stack.create_plan(json!({"simultaneous_use": 1})).await;
    stack
        .create_subscriber("pia", "pia-pw", plan, json!({}))
        .await;
    let r = &stack.radius;
    let login = || pap("pia", "pia-pw");
    r.poll_until(login, "pia accepted", |r| r.is_accept()).await;

    let acct = stack.acct();
    let session = AcctSession::new("pia", "81b00001", 7);
    acct.send(session.start(), DEADLINE).await;
    // The router keeps the session alive with Interims while the second login is tried. Should
    // the test stall long enough for a sweep to close it anyway, the next Interim reopens it,
    // so the rejection below is reached either way.
    let stop = Arc::new(AtomicBool::new(false));
    let alive = tokio::spawn({
        let (acct, session, stop) = (acct.clone(), session.clone(), stop.clone());
        async move {
            let mut c = Counters::default();
            while !stop.load(Ordering::Relaxed) {
                c.input += 1000;
                c.output += 3000;
                c.seconds += 1;
                acct.send(session.interim(c), DEADLINE).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            c
        }
    });
    r.poll_until(login, "second login rejected", |r| {
        rejected_for(r, "simultaneous")
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let last = alive.await.expect("keep-alive task");

    // Power cut: the router says nothing more. The sweep closes the session at its last
    // update, and the customer gets back in.
    let closed = support::poll(STALE_DEADLINE, "session closed as stale", || {
        let row = stack.sql(
            "SELECT closed_by, stopped_at = last_update_at, session_seconds \
             FROM sessions WHERE acct_session_id = '81b00001'",
        );
        row.starts_with("stale|").then_some(row)
    })
    .await;
    assert_eq!(closed, format!("stale|t|{}", last.seconds));
    r.poll_until(login, "accepted again after the stale closure", |r| {
        r.is_accept()
    })
    .await;

    // The router was only unreachable: its late Interim (now saying it reports hourly)
    // reopens the session, which counts against the limit again.
    let late = Counters {
        input: last.input + 5000,
        output: last.output + 5000,
        seconds: last.seconds + 30,
    };
    acct.send(
        session
            .interim(late)
            .with_integer(attr::ACCT_INTERIM_INTERVAL, 3600),
        DEADLINE,
    )
    .await;
    stack
        .wait_for_sql(
            "SELECT coalesce(closed_by, 'open'), stopped_at IS NULL, input_bytes \
             FROM sessions WHERE acct_session_id = '81b00001'",
            &format!("open|t|{}", late.input),
        )
        .await;
    r.poll_until(login, "rejected again once reopened", |r| {
        rejected_for(r, "simultaneous")
    })
    .await;
}
