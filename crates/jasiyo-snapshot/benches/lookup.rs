//! In-process lookup cost at 1M subscribers (target: <= 1 microsecond) and the cost of
//! building a full 1M-subscriber snapshot (target: built and published in <= 1 s).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use jasiyo_snapshot::{
    OverlayOf, PlanEntry, Publisher, Service, Snapshot, SubscriberEntry, SubscriberStatus,
    build_overlay, build_snapshot,
};

const SUBSCRIBERS: i64 = 1_000_000;

fn entries() -> (Vec<PlanEntry>, Vec<SubscriberEntry>) {
    let plans = vec![PlanEntry {
        id: 1,
        rate_limit: "5M/10M 10M/20M 4M/8M 16/16 8 1M/2M".into(),
        ip_pool: Some("pppoe-pool".into()),
        service: Service::Both,
        simultaneous_use: std::num::NonZeroU32::new(1),
        fup_rate_limit: Some("512k/512k".into()),
        duration_seconds: 30 * 86_400,
    }];
    let subscribers = (0..SUBSCRIBERS)
        .map(|i| SubscriberEntry {
            id: i,
            username: format!("user{i:07}"),
            password: format!("pw{i:010}"),
            plan_id: 1,
            status: SubscriberStatus::Active,
            expires_at: 2_000_000_000,
            static_ip: (i % 10 == 0).then(|| Ipv4Addr::from(0x0A00_0000 + i as u32)),
            mac: (i % 4 == 0).then(|| {
                let b = (i as u64).to_be_bytes();
                [0x02, b[3], b[4], b[5], b[6], b[7]]
            }),
            data_remaining_bytes: (i % 3 == 0).then_some(5 << 30),
            time_remaining_seconds: (i % 5 == 0).then_some(3600),
            open_sessions: (i % 2) as u32,
            unused: false,
        })
        .collect();
    (plans, subscribers)
}

fn benches(c: &mut Criterion) {
    let (plans, subscribers) = entries();
    let bytes = build_snapshot(1, 0, &plans, &[], &subscribers).unwrap();
    println!(
        "snapshot of {SUBSCRIBERS} subscribers: {} bytes, {:.1} bytes per subscriber",
        bytes.len(),
        bytes.len() as f64 / SUBSCRIBERS as f64
    );
    let snapshot = Snapshot::from_bytes(bytes).unwrap();

    // Names in a scattered order, made before timing so only the lookup is measured.
    let names: Vec<String> = (0..SUBSCRIBERS as u64)
        .map(|i| format!("user{:07}", (i * 7919) % SUBSCRIBERS as u64))
        .collect();
    print_lookup_percentiles(&snapshot, &names);

    let mut i = 0usize;
    c.bench_function("lookup by username, 1M subscribers", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            black_box(
                snapshot
                    .subscriber_by_username(black_box(names[i].as_bytes()))
                    .map(|s| (s.expires_at(), s.password().len())),
            )
        })
    });
    c.bench_function("lookup miss, 1M subscribers", |b| {
        b.iter(|| {
            black_box(
                snapshot
                    .subscriber_by_username(black_box(b"no-such-user"))
                    .is_none(),
            )
        })
    });

    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("build 1M-subscriber snapshot", |b| {
        b.iter(|| {
            black_box(
                build_snapshot(2, 0, &plans, &[], &subscribers)
                    .unwrap()
                    .len(),
            )
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    group.bench_function("build and publish 1M-subscriber base (fsync)", |b| {
        b.iter(|| {
            let bytes =
                build_snapshot(publisher.next_generation(), 0, &plans, &[], &subscribers).unwrap();
            black_box(publisher.publish(&bytes).unwrap())
        })
    });
    // The common case: one subscriber changed, on top of a 1M base.
    let changed = [subscribers[123_456].clone()];
    group.bench_function("build and publish overlay on a 1M base (fsync)", |b| {
        b.iter(|| {
            let overlay = OverlayOf {
                base_generation: publisher.base_generation().unwrap(),
                overridden_ids: vec![changed[0].id],
                subscriber_total: SUBSCRIBERS as u64,
            };
            let bytes = build_overlay(
                publisher.next_generation(),
                0,
                &plans,
                &[],
                &changed,
                &overlay,
            )
            .unwrap();
            black_box(publisher.publish(&bytes).unwrap())
        })
    });
    group.finish();
}

/// Times lookups one by one (each includes reading the password and expiry, as the module
/// does) and prints p50/p99/p99.9: criterion reports means, the target is a p99.
fn print_lookup_percentiles(snapshot: &Snapshot, names: &[String]) {
    let mut nanos: Vec<u64> = names
        .iter()
        .take(500_000)
        .map(|name| {
            let start = std::time::Instant::now();
            let found = snapshot
                .subscriber_by_username(black_box(name.as_bytes()))
                .map(|s| (s.expires_at(), s.password().len()));
            let elapsed = start.elapsed().as_nanos() as u64;
            black_box(found);
            elapsed
        })
        .collect();
    nanos.sort_unstable();
    let at = |q: f64| nanos[((nanos.len() as f64 * q) as usize).min(nanos.len() - 1)];
    println!(
        "lookup by username, 1M subscribers, one at a time: p50 {} ns, p99 {} ns, p99.9 {} ns",
        at(0.50),
        at(0.99),
        at(0.999)
    );
}

criterion_group!(lookup, benches);
criterion_main!(lookup);
