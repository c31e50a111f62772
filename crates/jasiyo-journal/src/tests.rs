//! Tests of the journal protocol. They live inside the crate so they can stop a writer
//! half-way (simulating one that dies) and reach the protocol internals.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::layout::{self, HEADER_LEN};
use crate::writer::StopAt;
use crate::*;

fn journal(capacity: u64) -> (tempfile::TempDir, PathBuf, JournalConsumer, JournalWriter) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let consumer = JournalConsumer::create_or_open(&path, capacity, None).unwrap();
    let writer = JournalWriter::open(&path).unwrap();
    (dir, path, consumer, writer)
}

fn with_grace(path: &Path, capacity: u64, grace: Duration) -> JournalConsumer {
    JournalConsumer::create_or_open_with(
        path,
        capacity,
        None,
        ConsumerOptions {
            abandon_after: grace,
        },
    )
    .unwrap()
}

/// Reopens the consumer. Retries `Busy` for a moment: a child process that another test is
/// spawning holds a copy of every descriptor (and so of our `flock`) until it execs.
fn reopen(path: &Path, capacity: u64) -> JournalConsumer {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match JournalConsumer::create_or_open(path, capacity, None) {
            Err(OpenError::Busy(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other.unwrap(),
        }
    }
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(len.max(8), (i % 251) as u8);
    v.truncate(len.max(8));
    v
}

#[test]
fn round_trip_and_commit() {
    let (_dir, path, mut consumer, writer) = journal(4096);
    let a = writer.append(b"hello").unwrap();
    let b = writer.append(b"").unwrap();
    let c = writer.append(&[1u8; 100]).unwrap();
    assert_eq!((a, b, c), (0, 24, 40));
    let batch = consumer.read_batch(10);
    let data: Vec<&[u8]> = batch.entries.iter().map(|e| e.data.as_slice()).collect();
    assert_eq!(data, vec![&b"hello"[..], &b""[..], &[1u8; 100][..]]);
    assert_eq!(batch.end, 40 + 16 + 104);
    assert_eq!((batch.abandoned, batch.corrupt), (0, 0));
    assert!(consumer.read_batch(10).entries.is_empty());
    consumer.commit(batch.entries[0].next).unwrap();
    assert!(matches!(
        consumer.commit(1),
        Err(CommitError::NotABoundary { .. })
    ));
    assert!(matches!(
        consumer.commit(30),
        Err(CommitError::NotABoundary { .. })
    ));
    consumer.commit(batch.end).unwrap();
    assert_eq!(consumer.committed_position(), batch.end);
    // The file has the promised mode.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn record_codec_through_the_journal() {
    let (_dir, _path, mut consumer, writer) = journal(8192);
    let record = JournalRecord::AuthResult {
        at_ms: 1_700_000_000_000,
        source: "192.0.2.1:1812".parse().unwrap(),
        username: "alice".into(),
        nas_identifier: Some("hap-ac2".into()),
        calling_station_id: None,
        accepted: false,
        reason: Some("plan expired".into()),
    };
    writer.append(&record.encode().unwrap()).unwrap();
    let batch = consumer.read_batch(1);
    assert_eq!(
        JournalRecord::decode(&batch.entries[0].data).unwrap(),
        record
    );
}

#[test]
fn wraps_many_laps_with_varied_sizes() {
    let capacity = 4096;
    let (_dir, _path, mut consumer, writer) = journal(capacity);
    let mut next_expected = 0u64;
    let mut written = 0u64;
    let mut sizes = (0..).map(|i: u64| ((i * 7919) % 600) as usize);
    while consumer.committed_position() < 200 * capacity {
        // Fill until full.
        loop {
            let len = sizes.next().unwrap();
            match writer.append(&payload(written, len)) {
                Ok(_) => written += 1,
                Err(AppendError::Full { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let batch = consumer.read_batch(usize::MAX);
        for e in &batch.entries {
            let seq = u64::from_le_bytes(e.data[..8].try_into().unwrap());
            assert_eq!(seq, next_expected);
            assert_eq!(e.data, payload(seq, e.data.len()));
            next_expected += 1;
        }
        assert_eq!(next_expected, written);
        consumer.commit(batch.end).unwrap();
    }
}

#[test]
fn full_until_commit() {
    let (_dir, _path, mut consumer, writer) = journal(4096);
    let rec = [0u8; 1000];
    let mut n = 0;
    let err = loop {
        match writer.append(&rec) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(n, 4);
    assert!(matches!(err, AppendError::Full { .. }), "{err:?}");
    let batch = consumer.read_batch(1);
    // Read but not committed: still full.
    assert!(matches!(writer.append(&rec), Err(AppendError::Full { .. })));
    consumer.commit(batch.end).unwrap();
    // One record freed, but the next one needs padding to the lap end plus itself.
    let pos = writer.append(&rec).unwrap();
    assert_eq!(pos, 4096);
    let batch = consumer.read_batch(10);
    assert_eq!(batch.entries.len(), 4);
    assert_eq!(batch.entries.last().unwrap().position, 4096);
}

#[test]
fn too_large_is_refused() {
    let (_dir, _path, _consumer, writer) = journal(4096);
    assert_eq!(writer.max_record_len(), 2032);
    assert!(writer.append(&[0u8; 2032]).is_ok());
    assert!(matches!(
        writer.append(&[0u8; 2033]),
        Err(AppendError::TooLarge {
            len: 2033,
            max: 2032
        })
    ));
}

#[test]
fn concurrent_writers_and_a_consumer() {
    const WRITERS: u64 = 4;
    const PER_WRITER: u64 = 20_000;
    let (_dir, path, mut consumer, writer) = journal(64 * 1024);
    let writer = Arc::new(writer);
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            // Two threads share one writer; the others map the file on their own, as a
            // second module instance (or radiusd process) does.
            let writer = if w < 2 {
                writer.clone()
            } else {
                Arc::new(JournalWriter::open(&path).unwrap())
            };
            std::thread::spawn(move || {
                for seq in 0..PER_WRITER {
                    let mut data = w.to_le_bytes().to_vec();
                    data.extend_from_slice(&seq.to_le_bytes());
                    data.resize(16 + (seq % 97) as usize, w as u8);
                    loop {
                        match writer.append(&data) {
                            Ok(_) => break,
                            Err(AppendError::Full { .. }) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    let mut next = [0u64; WRITERS as usize];
    let mut last_position = None;
    let mut total = 0;
    while total < WRITERS * PER_WRITER {
        let batch = consumer.read_batch(1000);
        assert_eq!((batch.abandoned, batch.corrupt), (0, 0));
        for e in &batch.entries {
            assert!(last_position < Some(e.position));
            last_position = Some(e.position);
            let w = u64::from_le_bytes(e.data[..8].try_into().unwrap()) as usize;
            let seq = u64::from_le_bytes(e.data[8..16].try_into().unwrap());
            assert_eq!(seq, next[w], "writer {w}");
            assert_eq!(e.data.len(), 16 + (seq % 97) as usize);
            assert!(e.data[16..].iter().all(|&b| b == w as u8));
            next[w] += 1;
            total += 1;
        }
        consumer.commit(batch.end).unwrap();
        if batch.entries.is_empty() {
            std::thread::yield_now();
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(consumer.read_batch(10).entries.is_empty());
    assert_eq!(next, [PER_WRITER; WRITERS as usize]);
}

#[test]
fn reopened_consumer_resumes_from_last_commit() {
    let (_dir, path, mut consumer, writer) = journal(4096);
    for i in 0..10 {
        writer.append(&payload(i, 40)).unwrap();
    }
    let batch = consumer.read_batch(4);
    consumer.commit(batch.end).unwrap();
    let more = consumer.read_batch(3);
    assert_eq!(more.entries.len(), 3);
    drop(consumer); // "crash": read 3 more, never committed them
    let mut consumer = reopen(&path, 4096);
    assert_eq!(consumer.committed_position(), batch.end);
    let again = consumer.read_batch(100);
    let seqs: Vec<u64> = again
        .entries
        .iter()
        .map(|e| u64::from_le_bytes(e.data[..8].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, (4..10).collect::<Vec<_>>());
}

#[test]
fn second_consumer_is_refused() {
    let (_dir, path, _consumer, _writer) = journal(4096);
    assert!(matches!(
        JournalConsumer::create_or_open(&path, 4096, None),
        Err(OpenError::Busy(_))
    ));
}

#[test]
fn bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    drop(JournalConsumer::create_or_open(&path, 4096, None).unwrap());
    assert!(matches!(
        JournalConsumer::create_or_open(&path, 8192, None),
        Err(OpenError::CapacityMismatch {
            found: 4096,
            requested: 8192,
            ..
        })
    ));
    assert!(matches!(
        JournalConsumer::create_or_open(dir.path().join("x"), 5000, None),
        Err(OpenError::InvalidCapacity(5000))
    ));
    let original = std::fs::read(&path).unwrap();
    let refuse = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let w = JournalWriter::open(&path)
            .err()
            .expect("writer must refuse");
        let c = JournalConsumer::create_or_open(&path, 4096, None)
            .err()
            .expect("consumer must refuse");
        (w, c)
    };
    let mut bytes = original.clone();
    bytes[0] = b'X';
    assert!(matches!(
        refuse(&bytes),
        (OpenError::NotAJournal(_), OpenError::NotAJournal(_))
    ));
    let mut bytes = original.clone();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        refuse(&bytes),
        (
            OpenError::UnsupportedVersion { found: 2, .. },
            OpenError::UnsupportedVersion { found: 2, .. }
        )
    ));
    let mut bytes = original.clone();
    bytes[20] ^= 1; // capacity, caught by the checksum
    assert!(matches!(
        refuse(&bytes),
        (OpenError::Corrupt { .. }, OpenError::Corrupt { .. })
    ));
    let bytes = &original[..original.len() - 4096];
    assert!(matches!(
        refuse(bytes),
        (OpenError::Corrupt { .. }, OpenError::Corrupt { .. })
    ));
    let mut bytes = original.clone();
    bytes[64..72].copy_from_slice(&9000u64.to_ne_bytes()); // reserved > consumed + capacity
    assert!(matches!(
        refuse(&bytes),
        (OpenError::Corrupt { .. }, OpenError::Corrupt { .. })
    ));
    assert!(matches!(
        refuse(b"short"),
        (OpenError::NotAJournal(_), OpenError::NotAJournal(_))
    ));
}

#[test]
fn abandoned_reservation_is_skipped_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let mut consumer = with_grace(&path, 4096, Duration::from_millis(200));
    let writer = JournalWriter::open(&path).unwrap();
    writer.append(b"before").unwrap();
    // A writer that reserved and died before claiming, one that claimed and wrote but died
    // before committing, and one that reserved and has not claimed yet (alive, slow).
    let dead = writer.append_until(&[9u8; 50], StopAt::Reserved).unwrap();
    let half = writer.append_until(&[8u8; 30], StopAt::Claimed).unwrap();
    let after = writer.append(b"after").unwrap();
    let slow = writer.append_until(&[7u8; 10], StopAt::Reserved).unwrap();
    let last = writer.append(b"last").unwrap();

    let start = Instant::now();
    let batch = consumer.read_batch(10);
    assert_eq!(batch.entries.len(), 1);
    assert_eq!(batch.end, dead);
    // Within the grace period nothing moves.
    assert!(consumer.read_batch(10).entries.is_empty());
    std::thread::sleep(Duration::from_millis(250));
    // The dead reservation is skipped. The half-written one was claimed, so it gets a grace
    // period of its own (a claimed slot may be a live writer that is just filling it).
    let batch = consumer.read_batch(10);
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        (batch.entries.len(), batch.abandoned, batch.end),
        (0, 1, half)
    );
    std::thread::sleep(Duration::from_millis(250));
    let batch = consumer.read_batch(10);
    let got: Vec<(u64, &[u8])> = batch
        .entries
        .iter()
        .map(|e| (e.position, e.data.as_slice()))
        .collect();
    assert_eq!(got, vec![(after, &b"after"[..])]);
    assert_eq!((batch.abandoned, batch.end), (1, slow));
    // The slow writer still has its clock running; after its own grace it is skipped too,
    // and its late claim fails (it never acknowledged anything).
    std::thread::sleep(Duration::from_millis(250));
    let batch = consumer.read_batch(10);
    assert_eq!(batch.abandoned, 1);
    assert_eq!(batch.entries.len(), 1);
    assert_eq!(batch.entries[0].position, last);
    assert_eq!(
        crate::writer::claim_for_test(&writer, slow),
        Err(AppendError::Abandoned { position: slow })
    );
    assert_eq!(consumer.abandoned_total(), 3);
    consumer.commit(batch.end).unwrap();
    assert!(writer.append(b"fine").is_ok());
    // The half-written writer cannot commit late.
    assert!(
        crate::writer::commit_for_test(&writer, half).is_err(),
        "a late commit of an abandoned slot must fail"
    );
}

#[test]
fn sweep_poisons_reservations_behind_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let mut consumer = with_grace(&path, 4096, Duration::from_millis(50));
    let writer = JournalWriter::open(&path).unwrap();
    let dead = writer.append_until(&[1u8; 20], StopAt::Reserved).unwrap();
    let pending = writer.append_until(&[2u8; 20], StopAt::Reserved).unwrap();
    let done = writer.append(b"done").unwrap();
    assert!(consumer.read_batch(10).entries.is_empty());
    std::thread::sleep(Duration::from_millis(80));
    let batch = consumer.read_batch(10);
    assert_eq!(batch.abandoned, 1);
    assert_eq!(batch.entries[0].position, done);
    // The reservation after the dead one was swept up in the same gap: its writer cannot
    // claim it any more, so it could never be acknowledged and then lost.
    assert!(dead < pending);
    assert_eq!(
        crate::writer::claim_for_test(&writer, pending),
        Err(AppendError::Abandoned { position: pending })
    );
}

#[test]
fn restarted_consumer_keeps_poisoned_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let mut consumer = with_grace(&path, 4096, Duration::from_millis(20));
    let writer = JournalWriter::open(&path).unwrap();
    writer.append_until(&[1u8; 20], StopAt::Claimed).unwrap();
    writer.append(b"x").unwrap();
    consumer.read_batch(10);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(consumer.read_batch(10).entries.len(), 1);
    drop(consumer); // crash without committing
    let mut consumer = with_grace(&path, 4096, Duration::from_secs(3600));
    // The poisoned gap is passed at once, without another grace period.
    let batch = consumer.read_batch(10);
    assert_eq!(batch.entries.len(), 1);
    assert_eq!(batch.entries[0].data, b"x");
}

#[test]
fn torn_record_is_skipped_as_corrupt() {
    let (_dir, path, consumer, writer) = journal(4096);
    writer.append(b"one").unwrap();
    let two = writer.append(b"two").unwrap();
    writer.append(b"three").unwrap();
    drop(consumer);
    // Flip a payload byte of "two" on disk, as a machine crash could leave it.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[HEADER_LEN + two as usize + 16] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut consumer = reopen(&path, 4096);
    let batch = consumer.read_batch(10);
    let data: Vec<&[u8]> = batch.entries.iter().map(|e| e.data.as_slice()).collect();
    assert_eq!(data, vec![&b"one"[..], &b"three"[..]]);
    assert_eq!(batch.corrupt, 1);
}

const CHILD_ENV: &str = "JASIYO_JOURNAL_TEST_CHILD";

/// Not a test by itself: the body of the writer child process spawned by
/// `sigkill_writer_mid_append` (selected by an environment variable). It prints `ack <i>
/// <position>` for each append that returned `Ok`, buffered, so that most of its time is
/// spent appending and the SIGKILL lands in the middle of one.
#[test]
fn child_writer_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, path) = spec.split_once(':').unwrap();
    let writer = JournalWriter::open(path).unwrap();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out).unwrap(); // end libtest's "test ... " line
    for i in 0.. {
        if mode == "stall" && i == 200 {
            // Be killed between claiming and committing.
            writer
                .append_until(&payload(i, 64), StopAt::Claimed)
                .unwrap();
            writeln!(out, "stalled").unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_secs(3600));
        }
        loop {
            match writer.append(&payload(i, (i % 300) as usize)) {
                Ok(position) => {
                    writeln!(out, "ack {i} {position}").unwrap();
                    break;
                }
                Err(AppendError::Full { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

fn spawn_child(mode: &str, path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::child_writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", path.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Drains everything readable now into `seen`, committing as it goes.
fn drain(consumer: &mut JournalConsumer, seen: &mut HashMap<u64, Vec<u8>>) -> u64 {
    let batch = consumer.read_batch(10_000);
    assert_eq!(batch.corrupt, 0);
    for e in batch.entries {
        assert!(seen.insert(e.position, e.data).is_none(), "read twice");
    }
    consumer.commit(batch.end).unwrap();
    batch.abandoned
}

#[test]
fn sigkill_writer_mid_append() {
    for mode in ["loop", "stall"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        // A small ring, consumed while the child writes, so it wraps many times.
        let mut consumer = with_grace(&path, 64 * 1024, Duration::from_millis(100));
        let mut child = spawn_child(mode, &path);
        let acked = Arc::new(std::sync::Mutex::new(HashMap::<u64, u64>::new()));
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let (acked, stalled) = (acked.clone(), stalled.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line == "stalled" {
                        stalled.store(true, std::sync::atomic::Ordering::SeqCst);
                    } else if let Some(rest) = line.strip_prefix("ack ") {
                        let (i, pos) = rest.split_once(' ').unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .insert(pos.parse().unwrap(), i.parse().unwrap());
                    }
                }
            })
        };
        let mut seen = HashMap::new();
        let mut abandoned = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "child made no progress");
            abandoned += drain(&mut consumer, &mut seen);
            let done = match mode {
                "loop" => seen.len() >= 30_000,
                _ => stalled.load(std::sync::atomic::Ordering::SeqCst),
            };
            if done {
                break;
            }
            std::thread::yield_now();
        }
        child.kill().unwrap(); // SIGKILL, while it appends as fast as it can
        child.wait().unwrap();
        reader.join().unwrap();
        // A new writer still works, and the consumer gets past whatever the child left.
        let writer = JournalWriter::open(&path).unwrap();
        // The child may have filled the ring before it died (a busy machine lets the
        // consumer fall behind): drain until there is room.
        let tail = loop {
            match writer.append(b"after the crash") {
                Ok(position) => break position,
                Err(AppendError::Full { .. }) => {
                    assert!(Instant::now() < deadline, "journal stays full");
                    abandoned += drain(&mut consumer, &mut seen);
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("append after the crash: {e}"),
            }
        };
        while !seen.contains_key(&tail) {
            assert!(
                Instant::now() < deadline,
                "journal stuck after the writer was killed"
            );
            abandoned += drain(&mut consumer, &mut seen);
            std::thread::sleep(Duration::from_millis(10));
        }
        let acked = acked.lock().unwrap();
        for (pos, i) in acked.iter() {
            let data = seen
                .get(pos)
                .unwrap_or_else(|| panic!("acknowledged record {i} lost"));
            assert_eq!(*data, payload(*i, (*i % 300) as usize));
        }
        // Nothing but the acknowledged records, the child's unacknowledged last ones and
        // ours was read.
        assert!(seen.len() > acked.len());
        if mode == "stall" {
            assert_eq!(acked.len(), 200);
            assert_eq!(abandoned, 1);
        }
        assert!(abandoned <= 1);
    }
}

/// The model of the journal: records appended and not yet committed, the positions the
/// writer side should produce, and how many of the pending records the consumer has read.
#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Read(usize),
    Commit(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..700).prop_map(Op::Append),
        2 => (1usize..8).prop_map(Op::Read),
        2 => any::<usize>().prop_map(Op::Commit),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn behaves_like_a_queue(ops in proptest::collection::vec(op(), 1..300)) {
        let capacity = 4096u64;
        let (_dir, path, mut consumer, writer) = journal(capacity);
        // pending: (position, next, data) appended, not committed; read: how many of them
        // the consumer has returned since the last reopen.
        let mut pending: VecDeque<(u64, u64, Vec<u8>)> = VecDeque::new();
        let mut read = 0usize;
        let mut reserved = 0u64;
        let mut consumed = 0u64;
        let mut counter = 0u64;
        for op in ops {
            match op {
                Op::Append(len) => {
                    let data = payload(counter, len);
                    counter += 1;
                    let size = layout::record_size(data.len() as u64);
                    let offset = reserved % capacity;
                    let at = if offset + size <= capacity { reserved } else { reserved + capacity - offset };
                    let result = writer.append(&data);
                    if at + size - consumed <= capacity {
                        prop_assert_eq!(result, Ok(at));
                        reserved = at + size;
                        pending.push_back((at, at + size, data));
                    } else {
                        let is_full = matches!(result, Err(AppendError::Full { .. }));
                        prop_assert!(is_full);
                    }
                }
                Op::Read(max) => {
                    let batch = consumer.read_batch(max);
                    let expected: Vec<_> = pending.iter().skip(read).take(max).collect();
                    prop_assert_eq!(batch.entries.len(), expected.len());
                    for (e, (pos, next, data)) in batch.entries.iter().zip(expected) {
                        prop_assert_eq!(e.position, *pos);
                        prop_assert_eq!(e.next, *next);
                        prop_assert_eq!(&e.data, data);
                    }
                    read += batch.entries.len();
                }
                Op::Commit(k) => {
                    if read > 0 {
                        let k = k % read;
                        let up_to = pending[k].1;
                        consumer.commit(up_to).unwrap();
                        pending.drain(..=k);
                        read -= k + 1;
                        consumed = up_to;
                    }
                }
                Op::Reopen => {
                    drop(consumer);
                    consumer = reopen(&path, capacity);
                    read = 0;
                }
            }
        }
        // Everything pending is still there, in order.
        let batch = consumer.read_batch(usize::MAX);
        let got: Vec<u64> = batch.entries.iter().map(|e| e.position).collect();
        let want: Vec<u64> = pending.iter().skip(read).map(|p| p.0).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn created_with_group_and_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let gid = std::fs::metadata(dir.path()).unwrap().gid();
    let path = dir.path().join("journal");
    let _consumer = JournalConsumer::create_or_open(&path, 4096, Some(gid)).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.gid(), gid);
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.len(), 4096 + 4096);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn journal_id_is_stable_per_file_and_differs_between_files() {
    let (dir, path, consumer, _writer) = journal(4096);
    let id = consumer.journal_id();
    assert_ne!(id, consumer.map_key_for_test());
    drop(consumer);
    assert_eq!(reopen(&path, 4096).journal_id(), id);
    let other = JournalConsumer::create_or_open(dir.path().join("other"), 4096, None).unwrap();
    assert_ne!(other.journal_id(), id);
}
