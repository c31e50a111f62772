//! End to end: with billing-daemon and then Postgres stopped, radiusd keeps
//! answering from the last snapshot, and expiries are computed from the clock
//! at each request. This test runs its own Postgres cluster (through
//! scripts/pg-cluster.sh) because it stops it.

mod support;

use serde_json::json;
use support::{StackOptions, chap, pap, poll_async, rfc3339_in, spawn_stack_with};

#[tokio::test]
async fn radiusd_answers_from_the_last_snapshot_with_daemon_and_postgres_down() {
    let mut stack = spawn_stack_with(StackOptions {
        own_postgres: true,
        ..StackOptions::default()
    })
    .await;
    let plan = stack
        .create_plan(json!({"rate_limit": "4M/8M", "ip_pool": "pool-r"}))
        .await;
    stack
        .create_subscriber("lena", "lena-pw", plan, json!({}))
        .await;
    stack
        .create_subscriber("mike", "mike-pw", plan, json!({"status": "suspended"}))
        .await;
    // Expires while the daemon and Postgres are down (the test checks below
    // that it was still valid after both stopped).
    stack
        .create_subscriber(
            "nora",
            "nora-pw",
            plan,
            json!({"expires_at": rfc3339_in(20)}),
        )
        .await;
    let r = stack.radius.clone();
    r.poll_until(
        || pap("nora", "nora-pw"),
        "nora accepted",
        |r| r.is_accept(),
    )
    .await;

    let before = [
        r.send(&pap("lena", "lena-pw")).await,
        r.send(&chap("lena", "lena-pw")).await,
        r.send(&pap("lena", "wrong")).await,
        r.send(&pap("mike", "mike-pw")).await,
        r.send(&pap("nobody", "x")).await,
    ];
    assert!(
        before[0].is_accept() && before[1].is_accept(),
        "{}",
        before[0]
    );

    stack.stop_daemon();
    stack.stop_postgres();

    let after = [
        r.send(&pap("lena", "lena-pw")).await,
        r.send(&chap("lena", "lena-pw")).await,
        r.send(&pap("lena", "wrong")).await,
        r.send(&pap("mike", "mike-pw")).await,
        r.send(&pap("nobody", "x")).await,
    ];
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.code, b.code, "before:\n{b}\nafter:\n{a}");
        // Session-Timeout counts down; everything else is the same.
        let strip = |reply: &support::Reply| {
            reply
                .stable_attrs()
                .into_iter()
                .filter(|(n, _)| n != "Session-Timeout")
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(a), strip(b), "before:\n{b}\nafter:\n{a}");
        if let (Some(tb), Some(ta)) = (b.attr("Session-Timeout"), a.attr("Session-Timeout")) {
            let (tb, ta): (i64, i64) = (tb.parse().unwrap(), ta.parse().unwrap());
            assert!(ta <= tb && ta > 0, "Session-Timeout {tb} then {ta}");
        }
    }

    // nora was valid when the last snapshot was published (polled above); her expiry passes
    // while nothing can publish a new one, and radiusd alone must start rejecting her. On a
    // slow machine the expiry may already have passed here; that is fine, the loop below
    // only needs to end on the right reject (no assertion on how long anything took).
    let expired = poll_async(std::time::Duration::from_secs(60), async || {
        let reply = r.send(&pap("nora", "nora-pw")).await;
        if reply.is_reject() {
            return Ok(reply);
        }
        assert!(reply.is_accept(), "{reply}");
        Err(reply.to_string())
    })
    .await;
    let reply = expired.unwrap_or_else(|last| panic!("nora never expired:\n{last}"));
    let message = reply.attr("Reply-Message").unwrap_or_default();
    assert!(
        message.to_lowercase().contains("expired"),
        "reject without the expiry reason:\n{reply}"
    );
    assert!(stack.radiusd_alive(), "radiusd died");
}
