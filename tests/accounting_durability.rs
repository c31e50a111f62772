//! End to end: accounting loses nothing. radiusd acknowledges an Accounting-Request only
//! once rlm_jasiyo has it in the journal; billing-daemon applies the journal to Postgres and
//! only then advances its read position. So a daemon killed with SIGKILL mid-stream, or
//! Postgres down for the whole stream, costs nothing, and a full journal makes radiusd stay
//! silent so that the router retransmits.

mod support;

use std::time::Duration;

use serde_json::json;
use support::acct::{AcctSession, Answer, Counters};
use support::{StackOptions, spawn_stack_with};

/// How long a whole stream may take before the test fails (never a timing assertion: a
/// slow machine only gets closer to it).
const STREAM_DEADLINE: Duration = Duration::from_secs(300);

/// `sessions` sessions of `users` subscribers, each Start, three Interim-Updates and a
/// Stop (5 packets a session); returns the packets in send order and the expected totals
/// (input bytes, output bytes, seconds) of every session's Stop.
fn stream(prefix: &str, users: usize, sessions: usize) -> (Vec<radius_proto::Packet>, Totals) {
    let mut packets = Vec::with_capacity(sessions * 5);
    let mut totals = Totals::default();
    for s in 0..sessions {
        let user = format!("{prefix}{}", s % users);
        let session = AcctSession::new(&user, &format!("{prefix}-{s:06}"), s as u32 + 1);
        // Above 4 GiB on the last updates: Gigawords must be counted.
        let step = Counters {
            input: (1 << 30) + s as u64,
            output: (3 << 30) + 7 * s as u64,
            seconds: 300,
        };
        let at = |k: u64| Counters {
            input: step.input * k,
            output: step.output * k,
            seconds: step.seconds * k as u32,
        };
        packets.push(session.start());
        for k in 1..=3 {
            packets.push(session.interim(at(k)));
        }
        let last = at(4);
        packets.push(session.stop(last));
        totals.input += u128::from(last.input);
        totals.output += u128::from(last.output);
        totals.seconds += u128::from(last.seconds);
        totals.sessions += 1;
    }
    (packets, totals)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    sessions: u128,
    input: u128,
    output: u128,
    seconds: u128,
}

/// What Postgres holds: stopped sessions and the sums of their counters, and the sums of
/// the daily usage (which would double if a record were applied twice as new usage).
fn landed(stack: &support::Stack, prefix: &str) -> (Totals, Totals) {
    let row = stack.sql(&format!(
        "SELECT count(*), coalesce(sum(input_bytes), 0), coalesce(sum(output_bytes), 0), \
         coalesce(sum(session_seconds), 0) FROM sessions \
         WHERE acct_session_id LIKE '{prefix}-%' AND closed_by = 'router'"
    ));
    let usage = stack.sql(&format!(
        "SELECT count(DISTINCT s.id), coalesce(sum(u.input_bytes), 0), \
         coalesce(sum(u.output_bytes), 0), coalesce(sum(u.seconds), 0) \
         FROM usage_daily u JOIN subscribers s ON s.id = u.subscriber_id \
         WHERE s.username LIKE '{prefix}%'"
    ));
    (parse_totals(&row), parse_totals(&usage))
}

fn parse_totals(row: &str) -> Totals {
    let v: Vec<u128> = row
        .split('|')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad row {row:?}"))
        })
        .collect();
    Totals {
        sessions: v[0],
        input: v[1],
        output: v[2],
        seconds: v[3],
    }
}

async fn create_users(stack: &support::Stack, prefix: &str, users: usize) {
    let plan = stack.create_plan(json!({"simultaneous_use": null})).await;
    for u in 0..users {
        stack
            .create_subscriber(&format!("{prefix}{u}"), "pw", plan, json!({}))
            .await;
    }
}

/// Waits until every session of the stream is in Postgres, then checks the totals exactly:
/// sessions, counters (with Gigawords) and daily usage.
async fn assert_all_landed(stack: &support::Stack, prefix: &str, expected: &Totals, users: usize) {
    let (sessions, usage) = support::poll(STREAM_DEADLINE, "every session stopped", || {
        let (s, u) = landed(stack, prefix);
        (s.sessions == expected.sessions).then_some((s, u))
    })
    .await;
    assert_eq!(&sessions, expected, "session counters");
    assert_eq!(
        usage,
        Totals {
            sessions: users as u128,
            input: expected.input,
            output: expected.output,
            seconds: expected.seconds,
        },
        "daily usage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_mid_stream_of_10000_packets_loses_and_repeats_nothing() {
    let mut stack = spawn_stack_with(StackOptions::default()).await;
    let users = 20;
    create_users(&stack, "kill", users).await;
    let (packets, expected) = stream("kill", users, 2000);
    assert_eq!(packets.len(), 10_000);
    // First half: streamed while the daemon is consuming.
    let mut second_half = packets;
    let first_half: Vec<_> = second_half.drain(..5_000).collect();
    let acct = stack.acct();
    let sender = {
        let acct = acct.clone();
        tokio::spawn(async move { acct.send_all(first_half, 32, STREAM_DEADLINE).await })
    };
    // SIGKILL (no clean shutdown) once part of the stream is in Postgres: the daemon dies
    // between batches or inside one, with records read but not committed.
    support::poll(STREAM_DEADLINE, "some sessions applied", || {
        (landed(&stack, "kill").0.sessions >= 100).then_some(())
    })
    .await;
    stack.kill_daemon();
    sender.await.expect("first half");
    // Second half: radiusd keeps acknowledging into the journal while the daemon is dead.
    acct.send_all(second_half, 32, STREAM_DEADLINE).await;
    stack.start_daemon().await;
    assert_all_landed(&stack, "kill", &expected, users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_the_whole_stream_then_everything_lands() {
    let mut stack = spawn_stack_with(StackOptions {
        own_postgres: true,
        ..StackOptions::default()
    })
    .await;
    let users = 5;
    create_users(&stack, "pgdown", users).await;
    let (packets, expected) = stream("pgdown", users, 200);
    stack.stop_postgres();
    // Every packet is acknowledged: it is in the journal, not yet in Postgres.
    stack.acct().send_all(packets, 16, STREAM_DEADLINE).await;
    stack.restart_postgres();
    assert_all_landed(&stack, "pgdown", &expected, users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_gets_no_answer_and_the_retransmission_lands_once_space_frees() {
    let mut stack = spawn_stack_with(StackOptions {
        // The smallest journal the daemon accepts: a few dozen records.
        journal_capacity: "16K".to_owned(),
        ..StackOptions::default()
    })
    .await;
    create_users(&stack, "full", 1).await;
    stack.stop_daemon();
    let acct = stack.acct();
    let mut sent = 0u32;
    let refused = loop {
        let session = AcctSession::new("full0", &format!("full-{sent:06}"), sent + 1);
        let packet = session.stop(Counters {
            input: 1000,
            output: 2000,
            seconds: 60,
        });
        match acct.try_once(packet.clone(), Duration::from_secs(3)).await {
            Answer::Acknowledged => sent += 1,
            Answer::NoResponse => break packet,
        }
        assert!(sent < 10_000, "the journal never filled");
    };
    assert!(
        sent > 0,
        "nothing was journaled before the journal was full"
    );

    // The router keeps retransmitting; once the daemon drains the journal, it is answered.
    stack.start_daemon().await;
    acct.send(refused, STREAM_DEADLINE).await;
    let total = u128::from(sent) + 1;
    support::poll(STREAM_DEADLINE, "every Stop in Postgres", || {
        let n: u128 = stack
            .sql("SELECT count(*) FROM sessions WHERE acct_session_id LIKE 'full-%'")
            .parse()
            .expect("count");
        (n == total).then_some(())
    })
    .await;
}
