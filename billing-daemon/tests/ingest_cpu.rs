//! CPU cost of the journal consumer per record: the daemon's own CPU and that of the Postgres
//! cluster's processes, while a backlog of Interim-Updates (one session per subscriber, drawn
//! at random, as `jasiyo-radload --kind interim` sends them) goes through the consumer.
//! CPU seconds, not wall time: the machine is shared.
//!
//! Not a test of behaviour, so ignored by default; run it optimized on a test cluster:
//!
//! ```text
//! scripts/test.sh --release -p billing-daemon --test ingest_cpu -- --ignored --nocapture
//! ```
//!
//! `INGEST_CPU_RECORDS` (default 100000) records per measured pass, over
//! `INGEST_CPU_SESSIONS` (default 100000) sessions; each pass is measured at the largest
//! batch and at a small one (what the consumer reads while packets trickle in live).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use billing_daemon::accounting::consumer::{JournalConfig, JournalIngest};
use jasiyo_journal::{JournalRecord, JournalWriter};
use radius_proto::Packet;
use radius_proto::attr::{self, acct_status_type as st};
use sqlx::PgPool;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process (or `self`) in clock ticks, from /proc/<pid>/stat.
fn cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the parenthesized command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
}

/// Parent pid of a process.
fn ppid(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1).map(str::to_owned)
}

/// CPU ticks of the postmaster `pm` and all its children (backends, WAL writer, ...).
fn cluster_ticks(pm: &str) -> u64 {
    let mut total = cpu_ticks(pm);
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit()) && ppid(&name).as_deref() == Some(pm) {
            total += cpu_ticks(&name);
        }
    }
    total
}

fn interim(i: usize, pass: u64) -> Vec<u8> {
    let user = format!("bench{i}");
    let bytes = pass * 1_000_000 + i as u64;
    let packet = Packet::accounting_request((i % 256) as u8)
        .with_integer(attr::ACCT_STATUS_TYPE, st::INTERIM_UPDATE)
        .with_string(attr::USER_NAME, &user)
        .with_string(attr::ACCT_SESSION_ID, &format!("{i:08x}"))
        .with_integer(attr::NAS_PORT, 15_728_640 + i as u32)
        .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::ETHERNET)
        .with_string(attr::NAS_PORT_ID, "ether2")
        .with_integer(attr::SERVICE_TYPE, attr::service_type::FRAMED_USER)
        .with_integer(attr::FRAMED_PROTOCOL, attr::framed_protocol::PPP)
        .with_string(attr::CALLING_STATION_ID, "EC:F4:BB:FA:36:C9")
        .with_string(attr::CALLED_STATION_ID, "pppoe-bench")
        .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 5, 88, 2))
        .with_string(attr::NAS_IDENTIFIER, "bench")
        .with_integer(attr::ACCT_SESSION_TIME, (pass * 300) as u32)
        .with_counter64(attr::ACCT_INPUT_OCTETS, attr::ACCT_INPUT_GIGAWORDS, bytes)
        .with_counter64(
            attr::ACCT_OUTPUT_OCTETS,
            attr::ACCT_OUTPUT_GIGAWORDS,
            3 * bytes,
        )
        .with_integer(attr::ACCT_INPUT_PACKETS, pass as u32)
        .with_integer(attr::ACCT_OUTPUT_PACKETS, pass as u32)
        .with_integer(attr::ACCT_DELAY_TIME, 0)
        .encode(b"secret")
        .unwrap();
    // A router reporting every 300 s: the derived start time stays where it was.
    let hour_ago = chrono::Utc::now().timestamp_millis() / 1000 * 1000 - 3_600_000;
    JournalRecord::Accounting {
        received_at_ms: hour_ago + pass as i64 * 300_000,
        source: SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 40000)),
        packet,
    }
    .encode()
    .unwrap()
}

#[sqlx::test(migrator = "billing_daemon::MIGRATOR")]
#[ignore = "a measurement: run with --ignored --nocapture, optimized"]
async fn cpu_per_record_of_the_consumer(pool: PgPool) {
    let records = env_or("INGEST_CPU_RECORDS", 100_000);
    let sessions = env_or("INGEST_CPU_SESSIONS", 100_000);
    for sql in [
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service) \
         VALUES ('bench', '2M/5M', 1000, 2592000, 'both')",
        "INSERT INTO routers (name, ip, secret) VALUES ('bench', '192.0.2.1', 'secret')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO subscribers (username, password, plan_id, expires_at) \
         SELECT 'bench' || n, 'pw', (SELECT id FROM plans), now() + interval '30 days' \
         FROM generate_series(0, $1 - 1) AS n",
    )
    .bind(sessions as i64)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE subscribers")
        .execute(&pool)
        .await
        .unwrap();
    let data_dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&pool)
        .await
        .unwrap();
    let postmaster = std::fs::read_to_string(format!("{data_dir}/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let capacity = ((records.max(sessions) as u64 * 400) / 4096 + 1) * 4096;
    let mut config = JournalConfig::new(&path, capacity, None);
    let mut ingest = JournalIngest::open(pool.clone(), &config).await.unwrap();
    let writer = JournalWriter::open(&path).unwrap();

    // A cheap deterministic shuffle: the sessions in a random-looking order per pass.
    let order = |pass: u64, k: usize| -> usize {
        ((k as u64 * 2_654_435_761 + pass * 40_503) % sessions as u64) as usize
    };
    let mut pass = 0u64;
    let mut run_pass = async |ingest: &mut JournalIngest, n: usize| -> (u64, u64, f64) {
        pass += 1;
        for k in 0..n {
            writer.append(&interim(order(pass, k), pass)).unwrap();
        }
        let (me0, pg0, t0) = (
            cpu_ticks("self"),
            cluster_ticks(&postmaster),
            Instant::now(),
        );
        loop {
            let batch = ingest.read().await.unwrap();
            if batch.entries.is_empty() {
                break;
            }
            ingest.store(&batch).await.unwrap();
            ingest.commit(&batch).await.unwrap();
        }
        (
            cpu_ticks("self") - me0,
            cluster_ticks(&postmaster) - pg0,
            t0.elapsed().as_secs_f64(),
        )
    };
    // Every session created first (the steady state is Interims of known sessions).
    let created = run_pass(&mut ingest, sessions).await;
    println!("creating {sessions} sessions: {created:?} (daemon, postgres ticks; s)");
    let ticks_per_s = 100.0; // USER_HZ on Linux
    for batch_max in [5000, 150] {
        config.batch_max = batch_max;
        drop(ingest);
        ingest = JournalIngest::open(pool.clone(), &config).await.unwrap();
        let (me, pg, secs) = run_pass(&mut ingest, records).await;
        let per_k = |ticks: u64| ticks as f64 / ticks_per_s / records as f64 * 1e6;
        println!(
            "batch_max {batch_max}: {records} Interim-Updates in {secs:.2} s wall; CPU per 1k \
             records: daemon {:.1} ms, postgres {:.1} ms, total {:.1} ms",
            per_k(me),
            per_k(pg),
            per_k(me + pg)
        );
    }
    // Whether Interims were heap-only updates (no index entries) shows in the statistics.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&pool)
        .await
        .ok();
    let (upd, hot): (i64, i64) = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!("sessions: {upd} updates, {hot} of them HOT");
}
