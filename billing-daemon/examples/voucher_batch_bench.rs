//! Times the making of voucher batches (a benchmark for BENCHMARKS.md, not a test): the same
//! work as `POST /api/v1/voucher-batches` (draw, seal, insert in one transaction, commit)
//! against the database in `DATABASE_URL`, which it migrates.
//!
//! ```text
//! DATABASE_URL=postgres://... cargo run --release -p billing-daemon \
//!     --example voucher_batch_bench -- [count] [rounds]
//! ```
//!
//! Prints one JSON line per round and a summary; count defaults to 10000, rounds to 5.

use std::time::Instant;

use billing_daemon::MIGRATOR;
use billing_daemon::vouchers::{NewBatch, Origin, codes::DEFAULT_CODE_LENGTH, create_batch};
use jasiyo_snapshot::voucher::VoucherKey;
use rand::TryRngCore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: i64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("set DATABASE_URL to a database it may write to"))?;
    let pool = sqlx::PgPool::connect(&url).await?;
    MIGRATOR.run(&pool).await?;
    let mut master = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut master)?;
    let key = VoucherKey::from_bytes(&master);
    let plan: i64 = sqlx::query_scalar(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service) \
         VALUES ('voucher bench ' || gen_random_uuid(), '2M/2M', 50, 86400, 'hotspot') RETURNING id",
    )
    .fetch_one(&pool)
    .await?;
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        let (batch, codes) = create_batch(
            &mut tx,
            &key,
            NewBatch {
                plan_id: plan,
                count,
                prefix: String::new(),
                code_length: DEFAULT_CODE_LENGTH,
                valid_until: None,
                note: Some("benchmark".to_owned()),
                origin: Origin::Printed,
            },
        )
        .await?;
        tx.commit().await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(codes.len(), usize::try_from(count)?);
        println!("{{\"round\":{round},\"batch\":{batch},\"count\":{count},\"ms\":{ms:.1}}}");
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"count\":{count},\"rounds\":{rounds},\"min_ms\":{:.1},\"median_ms\":{:.1},\"max_ms\":{:.1}}}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    Ok(())
}
