//! End to end: the quota rules through Debian's radiusd with rlm_jasiyo (fair-use rate, time
//! allowance, simultaneous use). Open sessions are written with SQL here, as the accounting
//! ingest writes them, together with the notification the ingest sends; the journal path
//! from radiusd to the ingest has tests of its own.

mod support;

use serde_json::json;
use support::{pap, spawn_stack};

#[tokio::test]
async fn fup_time_allowance_and_simultaneous_use_through_radiusd() {
    let stack = spawn_stack().await;
    let plan = stack
        .create_plan(
            json!({"rate_limit": "5M/10M", "fup_rate_limit": "256k/512k",
                            "time_allowance_seconds": 600, "simultaneous_use": 1}),
        )
        .await;
    let strict = stack.create_plan(json!({"rate_limit": "5M/10M"})).await;
    stack
        .create_subscriber("fay", "fay-pw", plan, json!({"data_remaining_bytes": 0}))
        .await;
    stack
        .create_subscriber("gus", "gus-pw", strict, json!({"data_remaining_bytes": 0}))
        .await;
    let hal = stack
        .create_subscriber("hal", "hal-pw", plan, json!({"data_remaining_bytes": 1000}))
        .await;
    stack
        .create_subscriber("ivy", "ivy-pw", plan, json!({"time_remaining_seconds": 0}))
        .await;
    let r = &stack.radius;
    // hal is the last one that can log in; once he can, the snapshot has them all.
    let reply = r
        .poll_until(|| pap("hal", "hal-pw"), "hal accepted", |r| r.is_accept())
        .await;
    // The plan's time allowance (600 s) is shorter than the subscription (a day).
    assert_eq!(reply.attr("Session-Timeout"), Some("600"), "{reply}");
    assert_eq!(reply.attr("Mikrotik-Rate-Limit"), Some("5M/10M"), "{reply}");
    assert_eq!(reply.attr("Mikrotik-Total-Limit"), Some("1000"), "{reply}");

    // Out of data on a plan with a FUP rate: accepted at that rate, no Total-Limit.
    let reply = r.send(&pap("fay", "fay-pw")).await;
    assert!(reply.is_accept(), "fay:\n{reply}");
    assert_eq!(
        reply.attr("Mikrotik-Rate-Limit"),
        Some("256k/512k"),
        "{reply}"
    );
    assert!(!reply.has("Mikrotik-Total-Limit"), "{reply}");
    // Without one: rejected.
    let reply = r.send(&pap("gus", "gus-pw")).await;
    assert!(reply.is_reject(), "gus:\n{reply}");
    assert_eq!(
        reply.attr("Reply-Message"),
        Some("Data allowance used up"),
        "{reply}"
    );
    // Out of time.
    let reply = r.send(&pap("ivy", "ivy-pw")).await;
    assert!(reply.is_reject(), "ivy:\n{reply}");
    assert_eq!(
        reply.attr("Reply-Message"),
        Some("Time allowance used up"),
        "{reply}"
    );

    // hal goes online (one open session, limit 1): the next login is refused...
    let hal_id = hal["id"].as_i64().unwrap();
    stack.sql(&format!(
        "INSERT INTO sessions (source_ip, username, subscriber_id, acct_session_id, unique_key, \
           started_at, start_seen, last_update_at) \
         VALUES ('127.0.0.1', 'hal', {hal_id}, '81000001', 'e2e-hal-1', now(), true, now()); \
         SELECT pg_notify('jasiyo_changes', 'subscribers:{hal_id}')"
    ));
    let reply = r
        .poll_until(
            || pap("hal", "hal-pw"),
            "hal refused while online",
            |r| r.is_reject(),
        )
        .await;
    assert_eq!(
        reply.attr("Reply-Message"),
        Some("Simultaneous-use limit reached"),
        "{reply}"
    );
    // ...until the session stops.
    stack.sql(&format!(
        "UPDATE sessions SET stopped_at = now(), closed_by = 'router' WHERE unique_key = 'e2e-hal-1'; \
         SELECT pg_notify('jasiyo_changes', 'subscribers:{hal_id}')"
    ));
    r.poll_until(
        || pap("hal", "hal-pw"),
        "hal accepted after the stop",
        |r| r.is_accept(),
    )
    .await;
}
