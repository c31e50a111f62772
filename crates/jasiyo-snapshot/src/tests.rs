//! Unit and property tests: round trip, refusal of damaged files, publication and reading.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use zerocopy::FromBytes;

use super::*;

fn plan(id: i64, service: Service) -> PlanEntry {
    PlanEntry {
        id,
        rate_limit: format!("{id}M/{id}M"),
        ip_pool: (id % 2 == 0).then(|| format!("pool-{id}")),
        service,
        simultaneous_use: std::num::NonZeroU32::new((id % 7) as u32),
        fup_rate_limit: (id % 2 == 1).then(|| format!("{id}k/{id}k")),
        duration_seconds: 3600 * id as u64,
    }
}

fn subscriber(id: i64, plan_id: i64) -> SubscriberEntry {
    SubscriberEntry {
        id,
        username: format!("user{id}"),
        password: format!("secret-{id}"),
        plan_id,
        status: if id % 5 == 0 {
            SubscriberStatus::Suspended
        } else {
            SubscriberStatus::Active
        },
        expires_at: 1_700_000_000 + id,
        static_ip: (id % 3 == 0).then(|| Ipv4Addr::new(10, 0, (id >> 8) as u8, id as u8)),
        mac: (id % 4 == 0).then_some([0x02, 0, 0, 0, (id >> 8) as u8, id as u8]),
        data_remaining_bytes: (id % 7 == 0).then_some(id as u64 * 1000),
        time_remaining_seconds: (id % 6 == 0).then_some(id as u64 * 60),
        open_sessions: (id % 4) as u32,
        unused: id % 8 == 3,
    }
}

fn router(id: i64, last_octet: u8) -> RouterEntry {
    RouterEntry {
        id,
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)),
        secret: format!("router-secret-{id}"),
        nas_identifier: (id == 1).then(|| "MikroTik".to_owned()),
        name: format!("router-{id}"),
    }
}

fn sample(generation: u64, subscribers: i64) -> Vec<u8> {
    let plans = [
        plan(1, Service::Pppoe),
        plan(2, Service::Hotspot),
        plan(7, Service::Both),
    ];
    let routers = [router(1, 1), router(2, 2)];
    let subscribers: Vec<_> = (1..=subscribers)
        .map(|i| subscriber(i, [1, 2, 7][i as usize % 3]))
        .collect();
    build_snapshot(generation, 1_700_000_000, &plans, &routers, &subscribers).unwrap()
}

#[test]
fn round_trip_keeps_every_field() {
    let snapshot = Snapshot::from_bytes(sample(3, 200)).unwrap();
    assert_eq!(snapshot.generation(), 3);
    assert_eq!(snapshot.published_at(), 1_700_000_000);
    assert_eq!(snapshot.subscriber_count(), 200);
    assert_eq!(snapshot.plan_count(), 3);
    assert_eq!(snapshot.router_count(), 2);
    for id in 1..=200 {
        let expected = subscriber(id, [1, 2, 7][id as usize % 3]);
        let found = snapshot
            .subscriber_by_username(expected.username.as_bytes())
            .unwrap();
        assert_eq!(found.id(), id);
        assert_eq!(found.username(), expected.username.as_bytes());
        assert_eq!(found.password(), expected.password.as_bytes());
        assert_eq!(found.status(), expected.status);
        assert_eq!(found.expires_at(), expected.expires_at);
        assert_eq!(found.static_ip(), expected.static_ip);
        assert_eq!(found.mac(), expected.mac);
        assert_eq!(found.data_remaining_bytes(), expected.data_remaining_bytes);
        assert_eq!(
            found.time_remaining_seconds(),
            expected.time_remaining_seconds
        );
        assert_eq!(u32::from(found.open_sessions()), expected.open_sessions);
        assert_eq!(found.unused(), expected.unused);
        assert_eq!(found.plan().unwrap().id(), expected.plan_id);
        if let Some(mac) = expected.mac {
            assert_eq!(snapshot.subscriber_by_mac(mac).unwrap().id(), id);
        }
    }
    assert!(snapshot.subscriber_by_username(b"nobody").is_none());
    assert!(
        snapshot.subscriber_by_username(b"User1").is_none(),
        "usernames are case-sensitive"
    );
    assert!(snapshot.subscriber_by_mac([9; 6]).is_none());

    let plan2 = snapshot.plan_by_id(2).unwrap();
    assert_eq!(plan2.rate_limit(), b"2M/2M");
    assert_eq!(plan2.ip_pool(), Some(&b"pool-2"[..]));
    assert_eq!(plan2.service(), Service::Hotspot);
    assert_eq!(plan2.simultaneous_use().map(|n| n.get()), Some(2));
    assert_eq!(plan2.fup_rate_limit(), None);
    assert_eq!(plan2.duration_seconds(), 7200);
    let plan7 = snapshot.plan_by_id(7).unwrap();
    assert_eq!(plan7.ip_pool(), None);
    assert_eq!(plan7.simultaneous_use(), None);
    assert_eq!(plan7.fup_rate_limit(), Some(&b"7k/7k"[..]));
    let plan1 = snapshot.plan_by_id(1).unwrap();
    assert_eq!(plan1.simultaneous_use().map(|n| n.get()), Some(1));
    assert_eq!(plan1.fup_rate_limit(), Some(&b"1k/1k"[..]));
    assert!(snapshot.plan_by_id(3).is_none());

    let r1 = snapshot.router_by_ip("127.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(r1.secret(), b"router-secret-1");
    assert_eq!(r1.nas_identifier(), Some(&b"MikroTik"[..]));
    assert_eq!(r1.name(), b"router-1");
    assert_eq!(r1.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    let mapped = snapshot
        .router_by_ip("::ffff:127.0.0.2".parse().unwrap())
        .unwrap();
    assert_eq!(mapped.id(), 2);
    assert_eq!(mapped.nas_identifier(), None);
    assert!(
        snapshot
            .router_by_ip("127.0.0.3".parse().unwrap())
            .is_none()
    );
}

#[test]
fn empty_snapshot_is_valid() {
    let bytes = build_snapshot(1, 0, &[], &[], &[]).unwrap();
    let snapshot = Snapshot::from_bytes(bytes).unwrap();
    assert_eq!(snapshot.subscriber_count(), 0);
    assert!(snapshot.subscriber_by_username(b"x").is_none());
    assert!(
        snapshot
            .router_by_ip("127.0.0.1".parse().unwrap())
            .is_none()
    );
}

#[test]
fn vouchers_are_found_by_lookup_name_inline_and_their_macs_are_no_logins() {
    let key = voucher::VoucherKey::from_hex(&"3c".repeat(32)).unwrap();
    let name = key.lookup_name("AB7K-Q9XZ").unwrap();
    let bound = [0x02, 0xAA, 0, 0, 0, 1];
    let voucher = |id: i64, name: String, mac| SubscriberEntry {
        username: name,
        password: String::new(),
        mac,
        unused: id == 1,
        ..subscriber(id, 1)
    };
    let subscribers = [
        voucher(1, name.clone(), None),
        voucher(2, key.lookup_name("OTHER777").unwrap(), Some(bound)),
        // A second voucher on the same phone: no MAC-index collision.
        voucher(3, key.lookup_name("THIRD777").unwrap(), Some(bound)),
    ];
    let bytes = build_snapshot(1, 0, &[plan(1, Service::Hotspot)], &[], &subscribers).unwrap();
    let snapshot = Snapshot::from_bytes(bytes.clone()).unwrap();
    let found = snapshot.subscriber_by_username(name.as_bytes()).unwrap();
    assert_eq!(found.id(), 1);
    assert!(found.unused());
    assert_eq!(found.password(), b"");
    // The lookup name and its empty password live inside the record: no strings section.
    let header = format::Header::ref_from_prefix(&bytes).unwrap().0;
    assert_eq!(
        header.sections[format::SECTION_STRINGS].len.get(),
        10,
        "plan strings only"
    );
    let second = snapshot
        .subscriber_by_username(key.lookup_name("other-777").unwrap().as_bytes())
        .unwrap();
    assert!(!second.unused());
    assert_eq!(second.mac(), Some(bound));
    assert!(snapshot.subscriber_by_mac(bound).is_none());
}

#[test]
fn builder_refuses_inconsistent_data() {
    let plans = [plan(1, Service::Both)];
    let dup = [
        subscriber(1, 1),
        SubscriberEntry {
            id: 2,
            ..subscriber(1, 1)
        },
    ];
    assert!(matches!(
        build_snapshot(1, 0, &plans, &[], &dup),
        Err(BuildError::DuplicateUsername(_))
    ));
    let mut second = subscriber(8, 1);
    second.mac = subscriber(4, 1).mac;
    let dup_mac = [subscriber(4, 1), second];
    assert!(matches!(
        build_snapshot(1, 0, &plans, &[], &dup_mac),
        Err(BuildError::DuplicateMac(_))
    ));
    assert!(matches!(
        build_snapshot(1, 0, &plans, &[], &[subscriber(1, 99)]),
        Err(BuildError::UnknownPlan { plan_id: 99, .. })
    ));
    assert!(matches!(
        build_snapshot(1, 0, &plans, &[router(1, 1), router(2, 1)], &[]),
        Err(BuildError::DuplicateRouter(_))
    ));
    assert!(matches!(
        build_snapshot(
            1,
            0,
            &[plan(1, Service::Both), plan(1, Service::Pppoe)],
            &[],
            &[]
        ),
        Err(BuildError::DuplicatePlan(1))
    ));
}

#[test]
fn truncated_files_are_refused() {
    let bytes = sample(1, 50);
    for len in [
        0,
        10,
        format::HEADER_LEN - 1,
        format::HEADER_LEN,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let error = Snapshot::from_bytes(bytes[..len].to_vec()).unwrap_err();
        assert!(
            matches!(error, SnapshotError::Truncated { .. }),
            "len {len}: {error}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Snapshot::from_bytes(longer),
        Err(SnapshotError::Truncated { .. })
    ));
}

#[test]
fn wrong_magic_and_version_are_refused() {
    let mut bytes = sample(1, 5);
    bytes[0] = b'X';
    assert!(matches!(
        Snapshot::from_bytes(bytes),
        Err(SnapshotError::BadMagic)
    ));
    let mut bytes = sample(1, 5);
    // A version-2 file (before vouchers) is refused, not misread.
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        Snapshot::from_bytes(bytes),
        Err(SnapshotError::VersionMismatch {
            expected: 3,
            found: 2
        })
    ));
}

/// Rewrites the checksum after a deliberate change, to reach the structural checks.
fn reseal(bytes: &mut [u8]) {
    let checksum = format::file_checksum(bytes);
    bytes[format::CHECKSUM_OFFSET..format::CHECKSUM_OFFSET + 8]
        .copy_from_slice(&checksum.to_le_bytes());
}

#[test]
fn structurally_bad_files_are_refused_even_with_a_valid_checksum() {
    // A string reference pointing past the strings section.
    let mut bytes = sample(1, 5);
    let subscribers = format::HEADER_LEN
        + 3 * size_of::<format::PlanRecord>()
        + 2 * size_of::<format::RouterRecord>();
    bytes[subscribers + 8..subscribers + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut bytes);
    assert!(matches!(
        Snapshot::from_bytes(bytes),
        Err(SnapshotError::Malformed(_))
    ));
    // A plan that does not exist.
    let mut bytes = sample(1, 5);
    let plan_id = subscribers + std::mem::offset_of!(format::SubscriberRecord, plan_id);
    bytes[plan_id..plan_id + 4].copy_from_slice(&3u32.to_le_bytes());
    reseal(&mut bytes);
    assert!(matches!(
        Snapshot::from_bytes(bytes),
        Err(SnapshotError::Malformed(_))
    ));
    // A section beyond the end of the file.
    let mut bytes = sample(1, 5);
    let strings_offset = 72 + 16 * format::SECTION_STRINGS;
    bytes[strings_offset..strings_offset + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal(&mut bytes);
    assert!(matches!(
        Snapshot::from_bytes(bytes),
        Err(SnapshotError::Malformed(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_single_byte_corruption_is_refused(position in 0usize..4096, flip in 1u8..=255) {
        let mut bytes = sample(1, 40);
        let position = position % bytes.len();
        bytes[position] ^= flip;
        prop_assert!(Snapshot::from_bytes(bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Snapshot::from_bytes(bytes);
    }

    #[test]
    fn round_trip_of_arbitrary_subscribers(
        names in proptest::collection::hash_set("[a-zA-Z0-9@._-]{1,24}", 0..200),
        expiry in any::<i64>(),
        allowance in proptest::option::of(any::<u64>()),
        time in proptest::option::of(any::<u64>()),
        open in any::<u32>(),
    ) {
        let plans = [plan(5, Service::Both)];
        let entries: Vec<_> = names.iter().enumerate().map(|(i, name)| SubscriberEntry {
            id: i as i64,
            username: name.clone(),
            password: format!("{name}-pw"),
            plan_id: 5,
            status: SubscriberStatus::Active,
            expires_at: expiry,
            static_ip: None,
            mac: None,
            data_remaining_bytes: allowance,
            time_remaining_seconds: time,
            open_sessions: open,
            unused: false,
        }).collect();
        let snapshot = Snapshot::from_bytes(build_snapshot(9, 0, &plans, &[], &entries).unwrap()).unwrap();
        for entry in &entries {
            let found = snapshot.subscriber_by_username(entry.username.as_bytes()).unwrap();
            prop_assert_eq!(found.id(), entry.id);
            prop_assert_eq!(found.password(), entry.password.as_bytes());
            prop_assert_eq!(found.expires_at(), expiry);
            prop_assert_eq!(found.data_remaining_bytes(), allowance);
            prop_assert_eq!(found.time_remaining_seconds(), time);
            prop_assert_eq!(found.open_sessions(), u16::try_from(open).unwrap_or(u16::MAX));
        }
        prop_assert!(snapshot.subscriber_by_username(b"not a generated name!").is_none());
    }
}

#[test]
fn mac_parsing_and_formatting() {
    let mac = [0xA4, 0x17, 0x31, 0x41, 0xCB, 0xB6];
    assert_eq!(parse_mac("A4:17:31:41:CB:B6"), Some(mac));
    assert_eq!(parse_mac("a4-17-31-41-cb-b6"), Some(mac));
    assert_eq!(parse_mac("a417.3141.cbb6"), Some(mac));
    assert_eq!(format_mac(mac), "A4:17:31:41:CB:B6");
    for bad in [
        "",
        "test",
        "A4:17:31:41:CB",
        "A4:17:31:41:CB:B6:00",
        "+4:17:31:41:CB:B6",
        "G4:17:31:41:CB:B6",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
}

fn publish_sample(publisher: &mut Publisher, subscribers: i64) -> u64 {
    let bytes = sample(publisher.next_generation(), subscribers);
    publisher.publish(&bytes).unwrap()
}

#[test]
fn reader_follows_publications() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SnapshotReader::open(dir.path()),
        Err(SnapshotError::Io { .. })
    ));
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    assert_eq!(publisher.next_generation(), 1);
    assert_eq!(publish_sample(&mut publisher, 10), 1);

    let reader = SnapshotReader::open(dir.path()).unwrap();
    assert_eq!(reader.current().generation(), 1);
    assert!(matches!(reader.refresh(), Refresh::Unchanged));

    let held = reader.current();
    assert_eq!(publish_sample(&mut publisher, 20), 2);
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 2 }
    ));
    assert!(matches!(reader.refresh(), Refresh::Unchanged));
    assert_eq!(reader.current().subscriber_count(), 20);
    // A request that took its guard before the switch still sees its whole snapshot.
    assert_eq!(held.generation(), 1);
    assert_eq!(held.subscriber_count(), 10);
    assert!(held.subscriber_by_username(b"user10").is_some());

    // Permissions: nobody but owner and group may read passwords.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o750);
    assert_eq!(mode(&dir.path().join("subscribers.snap")), 0o640);
    assert_eq!(mode(&dir.path().join("generation")), 0o640);
}

#[test]
fn publisher_refuses_invalid_or_out_of_order_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    assert!(matches!(
        publisher.publish(b"garbage"),
        Err(PublishError::Invalid(_))
    ));
    assert!(matches!(
        publisher.publish(&sample(5, 1)),
        Err(PublishError::WrongGeneration {
            expected: 1,
            found: 5
        })
    ));
    publish_sample(&mut publisher, 1);
    // A restarted daemon continues after the last generation.
    drop(publisher);
    let publisher = Publisher::open(dir.path(), None).unwrap();
    assert_eq!(publisher.next_generation(), 2);
}

#[test]
fn corrupt_announced_snapshot_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    publish_sample(&mut publisher, 10);
    let reader = SnapshotReader::open(dir.path()).unwrap();
    publish_sample(&mut publisher, 11);

    // Something damages the file in place after publication (a disk error, a careless
    // admin). The reader refuses it, keeps generation 1 and does not retry generation 2.
    let path = dir.path().join("subscribers.snap");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        reader.refresh(),
        Refresh::Refused {
            generation: 2,
            error: SnapshotError::ChecksumMismatch
        }
    ));
    assert_eq!(reader.current().generation(), 1);
    assert!(matches!(reader.refresh(), Refresh::Unchanged));

    // A truncated file and a wrong-version file are refused the same way.
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    publish_sample(&mut publisher, 12);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert!(matches!(
        reader.refresh(),
        Refresh::Refused {
            error: SnapshotError::Truncated { .. },
            ..
        }
    ));
    publish_sample(&mut publisher, 13);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        reader.refresh(),
        Refresh::Refused {
            error: SnapshotError::VersionMismatch { .. },
            ..
        }
    ));
    assert_eq!(reader.current().generation(), 1);

    // The next good publication is picked up.
    publish_sample(&mut publisher, 14);
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 5 }
    ));
    assert_eq!(reader.current().subscriber_count(), 14);
}

#[test]
fn crash_before_rename_leaves_readers_on_the_last_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    publish_sample(&mut publisher, 3);
    let reader = SnapshotReader::open(dir.path()).unwrap();
    // A daemon that died while writing leaves a partial temporary file behind.
    let partial = sample(2, 300);
    std::fs::write(
        dir.path().join(".subscribers.snap.tmp-999"),
        &partial[..partial.len() / 3],
    )
    .unwrap();
    assert!(matches!(reader.refresh(), Refresh::Unchanged));
    assert_eq!(reader.current().subscriber_count(), 3);
    // The restarted daemon publishes normally.
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    publish_sample(&mut publisher, 4);
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 2 }
    ));
}

#[test]
fn concurrent_publish_while_readers_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    publish_sample(&mut publisher, 1);
    let reader = Arc::new(SnapshotReader::open(dir.path()).unwrap());
    let done = Arc::new(AtomicBool::new(false));

    // Snapshot generation g has g subscribers user1..=userg; a reader must always see a
    // whole snapshot: every user up to the count present, none beyond, generations never
    // going backwards.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let reader = Arc::clone(&reader);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut last_generation = 0;
                let mut checks = 0u64;
                while !done.load(Ordering::Relaxed) || checks == 0 {
                    let _ = reader.refresh();
                    let snapshot = reader.current();
                    let generation = snapshot.generation();
                    assert!(generation >= last_generation);
                    last_generation = generation;
                    let count = snapshot.subscriber_count() as i64;
                    assert_eq!(count, generation as i64);
                    assert!(
                        snapshot
                            .subscriber_by_username(format!("user{count}").as_bytes())
                            .is_some()
                    );
                    assert!(
                        snapshot
                            .subscriber_by_username(format!("user{}", count + 1).as_bytes())
                            .is_none()
                    );
                    checks += 1;
                }
                last_generation
            })
        })
        .collect();
    for _ in 2..=60 {
        let generation = publisher.next_generation();
        publish_sample(&mut publisher, generation as i64);
    }
    done.store(true, Ordering::Relaxed);
    for handle in readers {
        handle.join().unwrap();
    }
    let _ = reader.refresh();
    assert_eq!(reader.current().generation(), 60);
}

fn overlay_of(base_generation: u64, overridden_ids: &[i64], subscriber_total: u64) -> OverlayOf {
    OverlayOf {
        base_generation,
        overridden_ids: overridden_ids.to_vec(),
        subscriber_total,
    }
}

#[test]
fn overlay_changes_renames_deletes_and_adds() {
    let base = sample(1, 100);
    let mut plans = vec![
        plan(1, Service::Pppoe),
        plan(2, Service::Hotspot),
        plan(7, Service::Both),
    ];
    plans[1].rate_limit = "20M/20M".into();
    plans.push(plan(9, Service::Both));
    let mut changed_password = subscriber(5, 1);
    changed_password.password = "new-password".into();
    // What accounting changes: open sessions and the allowances counted down.
    changed_password.open_sessions = 2;
    changed_password.data_remaining_bytes = Some(0);
    changed_password.time_remaining_seconds = Some(17);
    let mut renamed = subscriber(6, 1);
    renamed.username = "renamed6".into();
    let mut added = subscriber(200, 9);
    added.mac = Some([0xAA; 6]);
    let overlay = build_overlay(
        2,
        0,
        &plans,
        &[router(3, 3)],
        &[changed_password, renamed, added],
        &overlay_of(1, &[5, 6, 7, 200], 100),
    )
    .unwrap();
    let snapshot = Snapshot::from_base_and_overlay(base, overlay).unwrap();
    assert_eq!(snapshot.generation(), 2);
    assert_eq!(snapshot.base_generation(), Some(1));
    assert_eq!(snapshot.subscriber_count(), 100);
    assert_eq!(snapshot.subscribers().count(), 100);

    assert_eq!(
        snapshot
            .subscriber_by_username(b"user5")
            .unwrap()
            .password(),
        b"new-password"
    );
    let user5 = snapshot.subscriber_by_username(b"user5").unwrap();
    assert_eq!(user5.open_sessions(), 2);
    assert_eq!(user5.data_remaining_bytes(), Some(0));
    assert_eq!(user5.time_remaining_seconds(), Some(17));
    assert!(
        snapshot.subscriber_by_username(b"user6").is_none(),
        "old name of a renamed user"
    );
    assert_eq!(
        snapshot.subscriber_by_username(b"renamed6").unwrap().id(),
        6
    );
    assert!(
        snapshot.subscriber_by_username(b"user7").is_none(),
        "deleted"
    );
    assert_eq!(
        snapshot
            .subscriber_by_username(b"user200")
            .unwrap()
            .plan()
            .unwrap()
            .id(),
        9
    );
    assert_eq!(snapshot.subscriber_by_mac([0xAA; 6]).unwrap().id(), 200);
    assert_eq!(
        snapshot
            .subscriber_by_mac(subscriber(8, 1).mac.unwrap())
            .unwrap()
            .id(),
        8
    );
    // Unchanged base subscribers see the overlay's plans.
    let base_user = snapshot.subscriber_by_username(b"user1").unwrap();
    assert_eq!(base_user.plan().unwrap().id(), 2);
    assert_eq!(base_user.plan().unwrap().rate_limit(), b"20M/20M");
    // Routers come from the overlay alone.
    assert!(
        snapshot
            .router_by_ip("127.0.0.1".parse().unwrap())
            .is_none()
    );
    assert_eq!(
        snapshot
            .router_by_ip("127.0.0.3".parse().unwrap())
            .unwrap()
            .id(),
        3
    );
}

#[test]
fn overlays_are_checked() {
    let plans = [plan(1, Service::Both)];
    assert!(matches!(
        build_overlay(
            2,
            0,
            &plans,
            &[],
            &[subscriber(1, 1)],
            &overlay_of(1, &[], 1)
        ),
        Err(BuildError::NotOverridden(1))
    ));
    assert!(matches!(
        build_overlay(2, 0, &plans, &[], &[], &overlay_of(2, &[], 0)),
        Err(BuildError::BadBase(2))
    ));
    let overlay = build_overlay(3, 0, &plans, &[], &[], &overlay_of(2, &[], 0)).unwrap();
    assert!(matches!(
        Snapshot::from_bytes(overlay.clone()),
        Err(SnapshotError::Malformed(_))
    ));
    // An overlay on the wrong base is refused.
    assert!(Snapshot::from_base_and_overlay(sample(1, 3), overlay).is_err());
}

#[test]
fn publisher_writes_bases_and_overlays_and_readers_follow() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    assert_eq!(publisher.base_generation(), None);
    let plans = [
        plan(1, Service::Pppoe),
        plan(2, Service::Hotspot),
        plan(7, Service::Both),
    ];
    let overlay = build_overlay(1, 0, &plans, &[], &[], &overlay_of(1, &[], 0));
    assert!(overlay.is_err(), "no base yet");

    publish_sample(&mut publisher, 10);
    assert_eq!(publisher.base_generation(), Some(1));
    let reader = SnapshotReader::open(dir.path()).unwrap();

    let mut changed = subscriber(3, 1);
    changed.password = "changed".into();
    let overlay = build_overlay(2, 0, &plans, &[], &[changed], &overlay_of(1, &[3, 4], 9)).unwrap();
    assert_eq!(publisher.publish(&overlay).unwrap(), 2);
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 2 }
    ));
    let current = reader.current();
    assert_eq!(current.base_generation(), Some(1));
    assert_eq!(
        current.subscriber_by_username(b"user3").unwrap().password(),
        b"changed"
    );
    assert!(current.subscriber_by_username(b"user4").is_none());
    assert_eq!(current.subscriber_count(), 9);

    // An overlay on a base that is not the one in place is refused by the publisher.
    let stray = build_overlay(3, 0, &plans, &[], &[], &overlay_of(2, &[], 9)).unwrap();
    assert!(matches!(
        publisher.publish(&stray),
        Err(PublishError::WrongBase { .. })
    ));

    // Two more bases: the one before the previous base is removed; the reader follows.
    publish_sample(&mut publisher, 20);
    publish_sample(&mut publisher, 30);
    assert_eq!(publisher.base_generation(), Some(4));
    assert!(!dir.path().join("base-1.snap").exists());
    assert!(dir.path().join("base-3.snap").exists());
    assert!(dir.path().join("base-4.snap").exists());
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 4 }
    ));
    assert_eq!(reader.current().subscriber_count(), 30);
    assert_eq!(reader.current().base_generation(), None);
    // The guard taken before still reads its overlay and base.
    assert_eq!(
        current.subscriber_by_username(b"user3").unwrap().password(),
        b"changed"
    );

    // A restarted publisher continues on the same base.
    drop(publisher);
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    assert_eq!(publisher.base_generation(), Some(4));
    let overlay = build_overlay(5, 0, &plans, &[], &[], &overlay_of(4, &[30], 29)).unwrap();
    publisher.publish(&overlay).unwrap();
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 5 }
    ));
    assert!(reader.current().subscriber_by_username(b"user30").is_none());
    assert!(reader.current().subscriber_by_username(b"user29").is_some());
}

#[test]
fn reader_retries_when_the_base_of_an_overlay_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    publish_sample(&mut publisher, 5);
    publish_sample(&mut publisher, 6);
    let plans = [
        plan(1, Service::Pppoe),
        plan(2, Service::Hotspot),
        plan(7, Service::Both),
    ];
    // A reader that only ever saw base 1 and must now open base 2 under an overlay.
    let reader_dir = tempfile::tempdir().unwrap();
    let mut reader_publisher = Publisher::open(reader_dir.path(), None).unwrap();
    publish_sample(&mut reader_publisher, 5);
    let reader = SnapshotReader::open(reader_dir.path()).unwrap();
    publish_sample(&mut reader_publisher, 6);
    let overlay = build_overlay(3, 0, &plans, &[], &[], &overlay_of(2, &[], 6)).unwrap();
    reader_publisher.publish(&overlay).unwrap();
    std::fs::rename(
        reader_dir.path().join("base-2.snap"),
        reader_dir.path().join("moved"),
    )
    .unwrap();
    assert!(matches!(reader.refresh(), Refresh::Unchanged));
    assert_eq!(reader.current().generation(), 1);
    std::fs::rename(
        reader_dir.path().join("moved"),
        reader_dir.path().join("base-2.snap"),
    )
    .unwrap();
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 3 }
    ));
    drop(publisher);
}

#[test]
fn concurrent_overlays_and_bases_while_readers_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    let plans = [plan(1, Service::Both)];
    let base_subscribers =
        |n: i64| -> Vec<SubscriberEntry> { (1..=n).map(|i| subscriber(i, 1)).collect() };
    let bytes = build_snapshot(1, 0, &plans, &[], &base_subscribers(1)).unwrap();
    publisher.publish(&bytes).unwrap();
    let reader = Arc::new(SnapshotReader::open(dir.path()).unwrap());
    let done = Arc::new(AtomicBool::new(false));

    // Every generation g shows exactly users 1..=g, whether it is a base or an overlay.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let reader = Arc::clone(&reader);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !done.load(Ordering::Relaxed) || checks == 0 {
                    let _ = reader.refresh();
                    let snapshot = reader.current();
                    let g = snapshot.generation() as i64;
                    assert_eq!(snapshot.subscriber_count() as i64, g);
                    assert!(
                        snapshot
                            .subscriber_by_username(format!("user{g}").as_bytes())
                            .is_some()
                    );
                    assert!(
                        snapshot
                            .subscriber_by_username(format!("user{}", g + 1).as_bytes())
                            .is_none()
                    );
                    checks += 1;
                }
            })
        })
        .collect();
    for generation in 2..=60u64 {
        let g = generation as i64;
        let bytes = if generation % 10 == 0 {
            build_snapshot(generation, 0, &plans, &[], &base_subscribers(g)).unwrap()
        } else {
            let base = publisher.base_generation().unwrap();
            let changed: Vec<_> = ((base as i64 + 1)..=g).map(|i| subscriber(i, 1)).collect();
            let ids: Vec<i64> = changed.iter().map(|s| s.id).collect();
            build_overlay(
                generation,
                0,
                &plans,
                &[],
                &changed,
                &overlay_of(base, &ids, g as u64),
            )
            .unwrap()
        };
        publisher.publish(&bytes).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for handle in readers {
        handle.join().unwrap();
    }
}

#[test]
fn every_load_mode_reads_the_same_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = Publisher::open(dir.path(), None).unwrap();
    publish_sample(&mut publisher, 300);
    let plans = [
        plan(1, Service::Pppoe),
        plan(2, Service::Hotspot),
        plan(7, Service::Both),
    ];
    let mut changed = subscriber(3, 1);
    changed.password = "changed".into();
    let overlay = build_overlay(2, 0, &plans, &[], &[changed], &overlay_of(1, &[3], 300)).unwrap();
    publisher.publish(&overlay).unwrap();

    let path = dir.path().join("subscribers.snap");
    for mode in [LoadMode::Auto, LoadMode::Map, LoadMode::HugePages] {
        let snapshot = Snapshot::open_with(&path, mode).unwrap();
        assert_eq!(snapshot.generation(), 2, "{mode:?}");
        assert_eq!(snapshot.subscriber_count(), 300, "{mode:?}");
        assert_eq!(
            snapshot
                .subscriber_by_username(b"user3")
                .unwrap()
                .password(),
            b"changed"
        );
        assert_eq!(
            snapshot.subscriber_by_username(b"user299").unwrap().id(),
            299,
            "{mode:?}"
        );
        assert_eq!(
            snapshot
                .subscriber_by_mac(subscriber(8, 1).mac.unwrap())
                .unwrap()
                .id(),
            8
        );
    }
    // A reader in huge-page mode follows publications like any other.
    let reader = SnapshotReader::open_with(dir.path(), LoadMode::HugePages).unwrap();
    publish_sample(&mut publisher, 301);
    assert!(matches!(
        reader.refresh(),
        Refresh::Loaded { generation: 3 }
    ));
    assert_eq!(reader.current().subscriber_count(), 301);
    // Corruption is caught the same way in the copied form.
    let base = dir.path().join("base-3.snap");
    let mut bytes = std::fs::read(&base).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let damaged = dir.path().join("damaged.snap");
    std::fs::write(&damaged, &bytes).unwrap();
    assert!(matches!(
        Snapshot::open_with(&damaged, LoadMode::HugePages),
        Err(SnapshotError::ChecksumMismatch)
    ));
}
