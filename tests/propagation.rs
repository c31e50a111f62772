//! End to end: changes made through the API or in plain SQL reach radiusd on
//! the next request (the daemon republishes the snapshot within 100 ms; the
//! tests poll with a generous deadline and never assert on timing).

mod support;

use serde_json::json;
use support::{StackOptions, pap, rfc3339_in, spawn_stack, spawn_stack_with};

fn mentions(reply: &support::Reply, word: &str) -> bool {
    reply.is_reject()
        && reply
            .attr("Reply-Message")
            .is_some_and(|m| m.to_lowercase().contains(word))
}

#[tokio::test]
async fn suspend_resume_expire_and_renew_through_the_api() {
    let stack = spawn_stack().await;
    let plan = stack
        .create_plan(json!({"duration_seconds": 30 * 86400}))
        .await;
    stack
        .create_subscriber(
            "hana",
            "hana-pw",
            plan,
            json!({"expires_at": rfc3339_in(3600)}),
        )
        .await;
    let r = &stack.radius;
    let req = || pap("hana", "hana-pw");
    r.poll_until(req, "hana accepted", |r| r.is_accept()).await;

    stack.api.post("/subscribers/hana/suspend").await;
    r.poll_until(req, "suspended via the API", |r| mentions(r, "suspend"))
        .await;

    stack.api.post("/subscribers/hana/resume").await;
    r.poll_until(req, "resumed via the API", |r| r.is_accept())
        .await;

    stack
        .api
        .patch("/subscribers/hana", json!({"expires_at": rfc3339_in(-10)}))
        .await;
    r.poll_until(req, "expired via PATCH", |r| mentions(r, "expired"))
        .await;

    // Renewal extends by the plan's duration from now (the old expiry is past).
    stack.api.post("/subscribers/hana/renew").await;
    let reply = r
        .poll_until(req, "renewed via the API", |r| r.is_accept())
        .await;
    let timeout: i64 = reply
        .attr("Session-Timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no numeric Session-Timeout:\n{reply}"));
    assert!(
        timeout > 29 * 86400 && timeout <= 30 * 86400,
        "Session-Timeout after renewal should be about 30 days, got {timeout}"
    );
}

#[tokio::test]
async fn plan_changes_reach_the_next_request() {
    let stack = spawn_stack().await;
    let basic = stack.create_plan(json!({"rate_limit": "1M/2M"})).await;
    let premium = stack.create_plan(json!({"rate_limit": "10M/20M"})).await;
    stack
        .create_subscriber("ivan", "ivan-pw", basic, json!({}))
        .await;
    let r = &stack.radius;
    let req = || pap("ivan", "ivan-pw");
    r.poll_until(req, "ivan on 1M/2M", |r| {
        r.attr("Mikrotik-Rate-Limit") == Some("1M/2M")
    })
    .await;

    // The plan itself changes.
    stack
        .api
        .patch(&format!("/plans/{basic}"), json!({"rate_limit": "3M/6M"}))
        .await;
    r.poll_until(req, "plan rate limit edited", |r| {
        r.attr("Mikrotik-Rate-Limit") == Some("3M/6M")
    })
    .await;

    // The subscriber moves to another plan.
    stack
        .api
        .patch("/subscribers/ivan", json!({"plan_id": premium}))
        .await;
    r.poll_until(req, "subscriber moved to premium", |r| {
        r.attr("Mikrotik-Rate-Limit") == Some("10M/20M")
    })
    .await;
}

#[tokio::test]
async fn plain_sql_changes_propagate() {
    let stack = spawn_stack().await;
    let plan = stack.create_plan(json!({"rate_limit": "2M/4M"})).await;
    stack
        .create_subscriber("jane", "old-pw", plan, json!({}))
        .await;
    let r = &stack.radius;
    r.poll_until(|| pap("jane", "old-pw"), "jane accepted", |r| r.is_accept())
        .await;

    stack.sql("UPDATE subscribers SET password = 'new-pw' WHERE username = 'jane'");
    r.poll_until(
        || pap("jane", "new-pw"),
        "password changed in SQL",
        |r| r.is_accept(),
    )
    .await;
    assert!(r.send(&pap("jane", "old-pw")).await.is_reject());

    stack.sql(&format!(
        "UPDATE plans SET rate_limit = '7M/9M' WHERE id = {plan}"
    ));
    r.poll_until(
        || pap("jane", "new-pw"),
        "rate limit changed in SQL",
        |r| r.attr("Mikrotik-Rate-Limit") == Some("7M/9M"),
    )
    .await;

    stack.sql("UPDATE subscribers SET status = 'suspended' WHERE username = 'jane'");
    r.poll_until(
        || pap("jane", "new-pw"),
        "suspended in SQL",
        |r| mentions(r, "suspend"),
    )
    .await;

    stack.sql("DELETE FROM subscribers WHERE username = 'jane'");
    r.poll_until(
        || pap("jane", "new-pw"),
        "deleted in SQL",
        |r| r.is_reject() && !mentions(r, "suspend"),
    )
    .await;
}

#[tokio::test]
async fn router_created_through_the_api_is_answered_without_restarting_radiusd() {
    let mut stack = spawn_stack_with(StackOptions {
        local_router: false,
        ..StackOptions::default()
    })
    .await;
    let plan = stack.create_plan(json!({})).await;
    stack
        .create_subscriber("kim", "kim-pw", plan, json!({}))
        .await;
    let r = stack.radius.clone();

    // No router for 127.0.0.1 yet: radiusd does not answer at all.
    let reply = r.send(&pap("kim", "kim-pw")).await;
    assert_eq!(reply.code, None, "an unknown NAS got an answer:\n{reply}");

    let router = stack.create_local_router().await;
    assert_eq!(
        router["ip"].as_str().map(|ip| ip.trim_end_matches("/32")),
        Some("127.0.0.1")
    );
    r.poll_until(
        || pap("kim", "kim-pw"),
        "new router answered",
        |r| r.is_accept(),
    )
    .await;
    assert!(stack.radiusd_alive(), "radiusd was restarted or died");
}
