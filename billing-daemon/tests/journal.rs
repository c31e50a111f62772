//! The journal consumer against Postgres (`#[sqlx::test]`) and a real journal file in a
//! temporary directory: exactly once across a crash between the Postgres commit and the
//! journal commit, malformed records kept, Postgres errors never advance the journal.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use billing_daemon::accounting::consumer::{self, JournalConfig, JournalIngest};
use jasiyo_journal::{JournalRecord, JournalWriter};
use radius_proto::Packet;
use radius_proto::attr::{self, acct_status_type as st};
use sqlx::PgPool;

const CAPACITY: u64 = 1 << 20;
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An Accounting-Request as a router sends it.
fn acct_packet(status: u32, user: &str, sid: &str, input: u64, secs: u32) -> Vec<u8> {
    Packet::accounting_request(7)
        .with_integer(attr::ACCT_STATUS_TYPE, status)
        .with_string(attr::USER_NAME, user)
        .with_string(attr::ACCT_SESSION_ID, sid)
        .with_integer(attr::NAS_PORT, 1)
        .with_counter64(attr::ACCT_INPUT_OCTETS, attr::ACCT_INPUT_GIGAWORDS, input)
        .with_integer(attr::ACCT_OUTPUT_OCTETS, 100)
        .with_integer(attr::ACCT_SESSION_TIME, secs)
        .with_string(attr::NAS_IDENTIFIER, "test-router")
        .encode(b"secret")
        .unwrap()
}

fn accounting(packet: Vec<u8>) -> Vec<u8> {
    JournalRecord::Accounting {
        received_at_ms: now_ms(),
        source: SocketAddr::from((ROUTER, 40000)),
        packet,
    }
    .encode()
    .unwrap()
}

fn auth(user: &str, accepted: bool) -> Vec<u8> {
    JournalRecord::AuthResult {
        at_ms: now_ms(),
        source: SocketAddr::from((ROUTER, 40001)),
        username: user.to_owned(),
        nas_identifier: Some("test-router".to_owned()),
        calling_station_id: Some("02:00:00:00:00:01".to_owned()),
        accepted,
        reason: (!accepted).then(|| "Subscription expired".to_owned()),
    }
    .encode()
    .unwrap()
}

fn config(path: &Path) -> JournalConfig {
    JournalConfig::new(path, CAPACITY, None)
}

/// A new journal in a temporary directory (kept while the first value lives), its ingest
/// and a writer, as radiusd would append.
async fn fresh_journal(pool: &PgPool) -> (tempfile::TempDir, JournalIngest, JournalWriter) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let ingest = JournalIngest::open(pool.clone(), &config(&path))
        .await
        .unwrap();
    let writer = JournalWriter::open(&path).unwrap();
    (dir, ingest, writer)
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// (input_bytes, session_seconds, stopped)
async fn session(pool: &PgPool, sid: &str) -> (i64, i64, bool) {
    sqlx::query_as(
        "SELECT input_bytes, session_seconds, stopped_at IS NOT NULL \
         FROM sessions WHERE acct_session_id = $1",
    )
    .bind(sid)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn exactly_once_across_a_crash_between_postgres_and_journal_commits(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal/accounting.journal");
    let cfg = config(&path);
    let mut ingest = JournalIngest::open(pool.clone(), &cfg).await.unwrap();
    // The directory is created for radiusd's group, the file by the journal crate.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);

    let writer = JournalWriter::open(&path).unwrap();
    let g = 1u64 << 32;
    writer.append(&auth("alice", true)).unwrap();
    writer
        .append(&accounting(acct_packet(st::START, "alice", "s1", 0, 0)))
        .unwrap();
    writer
        .append(&accounting(acct_packet(
            st::INTERIM_UPDATE,
            "alice",
            "s1",
            5 * g + 7,
            60,
        )))
        .unwrap();
    writer.append(&auth("bob", false)).unwrap();

    let batch = ingest.read().await.unwrap();
    assert_eq!(batch.entries.len(), 4);
    let outcome = ingest.store(&batch).await.unwrap();
    assert_eq!((outcome.accounting, outcome.auth_results), (2, 2));
    // Crash: Postgres has the batch, the journal was never committed.
    drop(ingest);

    let mut ingest = JournalIngest::open(pool.clone(), &cfg).await.unwrap();
    assert_eq!(ingest.committed_position(), 0);
    let again = ingest.read().await.unwrap();
    assert_eq!(
        again.entries, batch.entries,
        "the journal hands the batch out again"
    );
    let outcome = ingest.store(&again).await.unwrap();
    assert_eq!(outcome.skipped, 4);
    assert_eq!((outcome.accounting, outcome.auth_results), (0, 0));
    ingest.commit(&again).await.unwrap();
    assert_eq!(ingest.committed_position(), again.end);

    assert_eq!(count(&pool, "SELECT count(*) FROM auth_log").await, 2);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM auth_log WHERE NOT accepted AND reason = 'Subscription expired'"
        )
        .await,
        1
    );
    assert_eq!(session(&pool, "s1").await, ((5 * g + 7) as i64, 60, false));
    let stored: i64 = count(&pool, "SELECT position FROM journal_progress").await;
    assert_eq!(stored as u64, again.end);

    // New records after the replayed ones are applied normally.
    writer
        .append(&accounting(acct_packet(st::STOP, "alice", "s1", 6 * g, 90)))
        .unwrap();
    writer.append(&auth("alice", true)).unwrap();
    let next = ingest.read().await.unwrap();
    let outcome = ingest.store(&next).await.unwrap();
    assert_eq!(
        (outcome.accounting, outcome.auth_results, outcome.skipped),
        (1, 1, 0)
    );
    ingest.commit(&next).await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM auth_log").await, 3);
    assert_eq!(session(&pool, "s1").await, ((6 * g) as i64, 90, true));
    // The counters are this process's: the replayed batch counts as skipped only.
    let st = ingest.stats().status();
    assert_eq!(st.committed, next.end);
    assert_eq!(st.lag_bytes, 0);
    assert_eq!(st.accounting_total, 1);
    assert_eq!(st.auth_results_total, 1);
    assert_eq!(st.skipped_total, 4);
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn malformed_records_land_in_accounting_rejects(pool: PgPool) {
    let (_dir, mut ingest, writer) = fresh_journal(&pool).await;
    // Not a journal record at all.
    writer.append(b"\x09garbage").unwrap();
    // A record whose packet is not RADIUS.
    writer.append(&accounting(vec![1, 2, 3])).unwrap();
    // An Interim without User-Name.
    let no_user = Packet::accounting_request(1)
        .with_integer(attr::ACCT_STATUS_TYPE, st::INTERIM_UPDATE)
        .with_string(attr::ACCT_SESSION_ID, "x")
        .encode(b"secret")
        .unwrap();
    writer.append(&accounting(no_user)).unwrap();
    // And a good one between them is not held up.
    writer
        .append(&accounting(acct_packet(st::START, "carol", "c1", 0, 0)))
        .unwrap();

    let batch = ingest.read().await.unwrap();
    let outcome = ingest.store(&batch).await.unwrap();
    ingest.commit(&batch).await.unwrap();
    assert_eq!((outcome.rejects, outcome.accounting), (3, 1));
    let rows: Vec<(i64, Option<String>, Vec<u8>, String)> = sqlx::query_as(
        "SELECT journal_position, source, raw, error FROM accounting_rejects ORDER BY journal_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].0 as u64, batch.entries[0].position);
    assert_eq!(rows[0].1, None);
    assert_eq!(rows[0].2, b"\x09garbage");
    assert!(rows[0].3.contains("unknown record kind"), "{}", rows[0].3);
    assert_eq!(rows[1].1.as_deref(), Some("192.0.2.1:40000"));
    assert_eq!(rows[1].2, vec![1, 2, 3]);
    assert!(rows[2].3.contains("User-Name"), "{}", rows[2].3);
    assert_eq!(session(&pool, "c1").await, (0, 0, false));
    assert_eq!(ingest.committed_position(), batch.end);
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: not after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn postgres_errors_never_advance_the_journal(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    // Every store fails while the progress table is missing (a real Postgres error).
    sqlx::query("ALTER TABLE journal_progress RENAME TO journal_progress_away")
        .execute(&pool)
        .await
        .unwrap();
    let handle = consumer::start(pool.clone(), &config(&path)).await;
    // open() reads journal_progress: without it the daemon refuses to start.
    assert!(handle.is_err());
    sqlx::query("ALTER TABLE journal_progress_away RENAME TO journal_progress")
        .execute(&pool)
        .await
        .unwrap();
    let handle = consumer::start(pool.clone(), &config(&path)).await.unwrap();
    let stats = handle.stats();
    sqlx::query("ALTER TABLE journal_progress RENAME TO journal_progress_away")
        .execute(&pool)
        .await
        .unwrap();

    let writer = JournalWriter::open(&path).unwrap();
    writer
        .append(&accounting(acct_packet(st::START, "dave", "d1", 0, 0)))
        .unwrap();
    writer.append(&auth("dave", true)).unwrap();
    wait_until("a failed store", async || {
        stats.status().store_errors_total >= 2
    })
    .await;
    let st = stats.status();
    assert_eq!(st.committed, 0, "journal committed past Postgres: {st:?}");
    assert!(st.reserved > 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM sessions").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM auth_log").await, 0);

    // Postgres recovers: the kept batch lands, once, and only then the journal moves.
    sqlx::query("ALTER TABLE journal_progress_away RENAME TO journal_progress")
        .execute(&pool)
        .await
        .unwrap();
    wait_until("the batch stored and committed", async || {
        stats.status().committed == stats.status().reserved
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM sessions").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM auth_log").await, 1);
    handle.shutdown().await;
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
async fn records_postgres_refuses_are_isolated_and_the_rest_lands_once(pool: PgPool) {
    let (_dir, mut ingest, writer) = fresh_journal(&pool).await;
    // Rules of this database that one record of each kind breaks (SQLSTATE 23514): what a
    // value Postgres cannot store does to a batch, without the decoder catching it first.
    for sql in [
        "ALTER TABLE sessions ADD CONSTRAINT poison CHECK (acct_session_id <> 'poison')",
        "ALTER TABLE auth_log ADD CONSTRAINT poison CHECK (username <> 'poison')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    for i in 0..10 {
        writer
            .append(&accounting(acct_packet(
                st::START,
                &format!("u{i}"),
                &format!("s{i}"),
                0,
                0,
            )))
            .unwrap();
        writer.append(&auth(&format!("u{i}"), true)).unwrap();
        if i == 4 {
            writer
                .append(&accounting(acct_packet(st::START, "eve", "poison", 0, 0)))
                .unwrap();
            // A NUL byte: the decoder refuses it before Postgres sees it.
            writer
                .append(&accounting(acct_packet(st::START, "eve\0", "s-nul", 0, 0)))
                .unwrap();
        }
        if i == 7 {
            writer.append(&auth("poison", false)).unwrap();
        }
    }
    // A later Interim of a good session in the same batch still applies after the split.
    writer
        .append(&accounting(acct_packet(
            st::INTERIM_UPDATE,
            "u3",
            "s3",
            500,
            30,
        )))
        .unwrap();

    let batch = ingest.read().await.unwrap();
    assert_eq!(batch.entries.len(), 24);
    let poison_positions = [
        batch.entries[10].position,
        batch.entries[11].position,
        batch.entries[18].position,
    ];
    // A problem of the schema is no record's fault: nothing is rejected, the batch stays.
    sqlx::query("ALTER TABLE usage_daily RENAME TO usage_daily_away")
        .execute(&pool)
        .await
        .unwrap();
    // u3's Interim counts usage only once u3 is a subscriber.
    sqlx::query(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service) \
         VALUES ('p', '1M/1M', 1, 86400, 'both')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscribers (username, password, plan_id, expires_at) \
         SELECT 'u3', 'pw', id, now() + interval '1 day' FROM plans",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = ingest.store(&batch).await.unwrap_err();
    assert_eq!(
        consumer::Failure::of(&err),
        consumer::Failure::Other,
        "{err}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM accounting_rejects").await,
        0
    );
    sqlx::query("ALTER TABLE usage_daily_away RENAME TO usage_daily")
        .execute(&pool)
        .await
        .unwrap();

    let outcome = ingest.store(&batch).await.unwrap();
    ingest.commit(&batch).await.unwrap();
    assert_eq!(
        (outcome.accounting, outcome.auth_results, outcome.rejects),
        (11, 10, 3)
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM sessions").await, 10);
    assert_eq!(count(&pool, "SELECT count(*) FROM auth_log").await, 10);
    assert_eq!(session(&pool, "s3").await, (500, 30, false));
    assert_eq!(
        count(&pool, "SELECT input_bytes FROM usage_daily").await,
        500,
        "usage counted once"
    );
    let rows: Vec<(i64, Option<String>, Vec<u8>, String)> = sqlx::query_as(
        "SELECT journal_position, source, raw, error FROM accounting_rejects \
         ORDER BY journal_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let positions: Vec<u64> = rows.iter().map(|r| r.0 as u64).collect();
    assert_eq!(positions, poison_positions);
    // The Accounting-Request keeps its packet, the auth result its journal record.
    let JournalRecord::Accounting { packet, .. } =
        JournalRecord::decode(&batch.entries[10].data).unwrap()
    else {
        panic!("an accounting record")
    };
    assert_eq!(rows[0].2, packet);
    assert_eq!(rows[0].1.as_deref(), Some("192.0.2.1:40000"));
    assert!(
        rows[0].3.contains("23514") && rows[0].3.contains("poison"),
        "{}",
        rows[0].3
    );
    assert!(rows[1].3.contains("NUL"), "{}", rows[1].3);
    assert_eq!(rows[2].2, batch.entries[18].data);
    assert!(rows[2].3.contains("23514"), "{}", rows[2].3);
    let stored: i64 = count(&pool, "SELECT position FROM journal_progress").await;
    assert_eq!(stored as u64, batch.end);
    let st = ingest.stats().status();
    assert_eq!((st.rejects_total, st.refused_total), (3, 2));
    assert_eq!(st.committed, batch.end);
}
