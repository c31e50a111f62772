//! Append throughput: one thread, and two threads sharing one writer, with a consumer thread
//! draining the ring so it never fills.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jasiyo_journal::{AppendError, JournalConsumer, JournalWriter};

const RECORD: [u8; 300] = [7u8; 300];

fn drain(mut consumer: JournalConsumer, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let batch = consumer.read_batch(4096);
        if batch.entries.is_empty() {
            std::thread::yield_now();
        }
        consumer.commit(batch.end).expect("commit");
    }
}

fn append_retrying(writer: &JournalWriter) {
    loop {
        match writer.append(&RECORD) {
            Ok(_) => return,
            Err(AppendError::Full { .. }) => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal");
    let consumer = JournalConsumer::create_or_open(&path, 64 << 20, None).expect("create");
    let writer = Arc::new(JournalWriter::open(&path).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = stop.clone();
        std::thread::spawn(move || drain(consumer, stop))
    };

    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1 thread, 300 B", |b| b.iter(|| append_retrying(&writer)));
    group.bench_function("2 threads, 300 B", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let other = {
                let writer = writer.clone();
                std::thread::spawn(move || (0..iters / 2).for_each(|_| append_retrying(&writer)))
            };
            (0..iters - iters / 2).for_each(|_| append_retrying(&writer));
            other.join().expect("join");
            start.elapsed()
        })
    });
    group.finish();

    stop.store(true, Ordering::Relaxed);
    drainer.join().expect("drainer");
}

criterion_group!(benches, bench);
criterion_main!(benches);
