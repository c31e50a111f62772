//! End to end: hotspot vouchers through Debian's radiusd with rlm_jasiyo answering from the
//! snapshot. Vouchers are written with SQL (a plan, a batch, a subscriber row named by the
//! code's lookup name), the way the daemon's batch API stores them.
//!
//! The daemon reads the journaled "voucher first use" and activates the voucher; the last
//! tests follow that through: one activation for two routers at once, validity counted from
//! it, and a data voucher counted down across two devices and cut off at zero.

mod support;

use md5::{Digest, Md5};
use support::acct::Counters;
use support::mikrotik::Mikrotik;
use support::{Reply, Stack, hotspot_pap, psql, quoted, shared_dir, spawn_stack, unhex};

/// A hotspot plan: `duration` seconds of validity from first use, at most `devices` online.
fn plan(stack: &Stack, duration: i64, time: Option<i64>, data: Option<i64>, devices: i32) -> i64 {
    let sql = format!(
        "INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service, \
         time_allowance_seconds, data_cap_bytes, simultaneous_use) \
         VALUES ('voucher-{}', '2M/4M', 50, {duration}, 'hotspot', {}, {}, {devices}) \
         RETURNING id",
        support::random_hex(4),
        time.map_or("NULL".into(), |t| t.to_string()),
        data.map_or("NULL".into(), |d| d.to_string()),
    );
    psql(&stack.db_url, &sql).trim().parse().expect("plan id")
}

/// A printed batch of `plan`, valid until `valid_until` (SQL expression, or NULL).
fn batch(stack: &Stack, plan: i64, valid_until: &str) -> i64 {
    let sql = format!(
        "INSERT INTO voucher_batches (plan_id, count, code_length, valid_until) \
         VALUES ({plan}, 1, 8, {valid_until}) RETURNING id"
    );
    psql(&stack.db_url, &sql).trim().parse().expect("batch id")
}

/// An unused voucher for `code`: allowances from the plan, expiry the batch's end (or none),
/// then `set` (SQL assignments) applied to it.
fn voucher(stack: &Stack, code: &str, batch: i64, set: &str) -> String {
    let name = stack.voucher_key.lookup_name(code).expect("a valid code");
    psql(
        &stack.db_url,
        &format!(
            "INSERT INTO subscribers (username, password, plan_id, expires_at, voucher_batch_id, \
             voucher_code_sealed, time_remaining_seconds, data_remaining_bytes) \
             SELECT '{name}', '', b.plan_id, coalesce(b.valid_until, '9999-12-31'), b.id, \
             '\\x00', p.time_allowance_seconds, p.data_cap_bytes \
             FROM voucher_batches b JOIN plans p ON p.id = b.plan_id WHERE b.id = {batch}"
        ),
    );
    if !set.is_empty() {
        psql(
            &stack.db_url,
            &format!("UPDATE subscribers SET {set} WHERE username = '{name}'"),
        );
    }
    name
}

/// Inserts one more voucher in `batch` and waits until radiusd accepts it: the vouchers
/// written before it are in the snapshot too (the publisher applies changes in commit order),
/// so the tests' first requests with them are answered from it, and journaled as vouchers.
async fn wait_published(stack: &Stack, batch: i64) {
    voucher(stack, "READY777", batch, "");
    stack
        .radius
        .poll_until(
            || hotspot_pap("READY777", ""),
            "the vouchers in the snapshot",
            Reply::is_accept,
        )
        .await;
}

fn session_timeout(reply: &Reply) -> i64 {
    reply
        .attr("Session-Timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no Session-Timeout in\n{reply}"))
}

fn assert_voucher_accept(reply: &Reply, what: &str) {
    assert!(
        reply.is_accept(),
        "{what}: expected Access-Accept:\n{reply}"
    );
    assert!(reply.has("Message-Authenticator"), "{what}:\n{reply}");
    assert_eq!(
        reply.attr("Mikrotik-Rate-Limit"),
        Some("2M/4M"),
        "{what}:\n{reply}"
    );
}

/// The auth-log rows the daemon wrote from the journal for `username`:
/// `accepted|reason` lines.
fn auth_log(stack: &Stack, username: &str) -> Vec<String> {
    psql(
        &stack.db_url,
        &format!(
            "SELECT accepted || '|' || coalesce(reason, '') FROM auth_log \
             WHERE username = '{username}' ORDER BY id"
        ),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// No auth-log row holds a code in any form.
fn assert_no_code_logged(stack: &Stack, codes: &[&str]) {
    for code in codes {
        let bare = code.replace('-', "");
        let rows = psql(
            &stack.db_url,
            &format!(
                "SELECT count(*) FROM auth_log WHERE upper(replace(username, '-', '')) = \
                 upper('{bare}')"
            ),
        );
        assert_eq!(rows.trim(), "0", "code {code} reached the auth log");
    }
}

fn hotspot_chap(username: &str, password: &str) -> Vec<(String, String)> {
    hotspot_pap(username, password)
        .into_iter()
        .map(|(name, value)| {
            if name == "User-Password" {
                // radclient computes the CHAP response from the clear text (against the
                // Request Authenticator, as there is no CHAP-Challenge).
                ("CHAP-Password".to_owned(), value)
            } else {
                (name, value)
            }
        })
        .collect()
}

/// A time voucher's first login: accepted with Session-Timeout reflecting both its time
/// allowance and the batch's end, journaled under the lookup name as its first use; typed in
/// lower case with a dash, with an empty password, over HTTP-CHAP; rejected once expired.
#[tokio::test]
async fn time_voucher_first_use_is_accepted_and_journaled() {
    let stack = spawn_stack().await;
    let r = &stack.radius;
    // One hour online, valid a day from first use.
    let plan = plan(&stack, 86_400, Some(3600), None, 1);
    let hour = voucher(
        &stack,
        "HX7KQ9MZ",
        batch(&stack, plan, "now() + interval '2 hours'"),
        "",
    );
    // Same package, but the batch ends in ten minutes.
    let ending = voucher(
        &stack,
        "TEN4MIN7",
        batch(&stack, plan, "now() + interval '10 minutes'"),
        "",
    );

    wait_published(&stack, batch(&stack, plan, "NULL")).await;
    let reply = r.send(&hotspot_pap("HX7KQ9MZ", "HX7KQ9MZ")).await;
    assert_voucher_accept(&reply, "first use");
    assert_eq!(
        session_timeout(&reply),
        3600,
        "the time allowance:\n{reply}"
    );
    assert!(!reply.has("Mikrotik-Total-Limit"), "no data cap:\n{reply}");

    let reply = r.send(&hotspot_pap("ten4-min7", "")).await;
    assert_voucher_accept(&reply, "lower case, dash, empty password");
    let timeout = session_timeout(&reply);
    // The snapshot holds whole seconds (rounded), the module's clock is truncated: 601 too.
    assert!(
        (500..=601).contains(&timeout),
        "the batch's end, not the hour: {timeout}\n{reply}"
    );

    let reply = r.send(&hotspot_chap("hx7k-q9mz", "hx7k-q9mz")).await;
    assert_voucher_accept(&reply, "HTTP-CHAP with the code as typed");
    let reply = r.send(&hotspot_chap("HX7KQ9MZ", "HX7KQ9MY")).await;
    assert!(reply.is_reject(), "CHAP with another code:\n{reply}");
    let reply = r.send(&hotspot_pap("HX7KQ9MZ", "HX7KQ9MY")).await;
    assert!(reply.is_reject(), "PAP with another code:\n{reply}");

    // The journal carries the lookup name and the first use; the daemon's auth log shows it.
    let logged = support::poll(support::DEADLINE, "first use in the auth log", || {
        let rows = auth_log(&stack, &hour);
        (rows.len() >= 4).then_some(rows)
    })
    .await;
    assert_eq!(logged[0], "true|voucher first use", "{logged:?}");
    // The second login may already see the voucher activated by the daemon.
    assert!(logged[1].starts_with("true|"), "CHAP: {logged:?}");
    assert!(
        logged[2..].iter().all(|row| row.starts_with("false|")),
        "{logged:?}"
    );
    support::poll(support::DEADLINE, "the other voucher's first use", || {
        auth_log(&stack, &ending)
            .contains(&"true|voucher first use".to_owned())
            .then_some(())
    })
    .await;
    assert_no_code_logged(&stack, &["HX7KQ9MZ", "TEN4MIN7", "HX7KQ9MY"]);

    // Activated an hour ago with a day's validity: in use, no longer a first use.
    psql(
        &stack.db_url,
        &format!(
            "UPDATE subscribers SET activated_at = now() - interval '1 hour', \
             expires_at = now() + interval '23 hours', time_remaining_seconds = 1200 \
             WHERE username = '{hour}'"
        ),
    );
    let reply = r
        .poll_until(
            || hotspot_pap("HX7KQ9MZ", ""),
            "the activated voucher",
            |reply| reply.attr("Session-Timeout") == Some("1200"),
        )
        .await;
    assert_voucher_accept(&reply, "active voucher");
    // Past its validity.
    psql(
        &stack.db_url,
        &format!(
            "UPDATE subscribers SET expires_at = now() - interval '1 second' WHERE username = '{hour}'"
        ),
    );
    let reply = r
        .poll_until(
            || hotspot_pap("HX7KQ9MZ", ""),
            "the expired voucher rejected",
            Reply::is_reject,
        )
        .await;
    assert_eq!(
        reply.attr("Reply-Message"),
        Some("voucher expired"),
        "{reply}"
    );
    let rows = support::poll(support::DEADLINE, "the reject in the auth log", || {
        let rows = auth_log(&stack, &hour);
        rows.contains(&"false|voucher expired".to_owned())
            .then_some(rows)
    })
    .await;
    assert!(
        rows.contains(&"true|".to_owned()),
        "the active login is no first use: {rows:?}"
    );
}

/// Every refusal says why in the hotspot's words; a lookup name is no login.
#[tokio::test]
async fn voucher_rejects_say_why() {
    let stack = spawn_stack().await;
    let r = &stack.radius;
    let data_plan = plan(&stack, 86_400, None, Some(1 << 30), 1);
    let time_plan = plan(&stack, 86_400, Some(3600), None, 1);
    let open = batch(&stack, data_plan, "NULL");
    let timed = batch(&stack, time_plan, "NULL");
    let used = "activated_at = now() - interval '1 hour', expires_at = now() + interval '1 hour'";
    voucher(
        &stack,
        "DATAUSED",
        open,
        &format!("{used}, data_remaining_bytes = 0"),
    );
    voucher(
        &stack,
        "TIMEUSED",
        timed,
        &format!("{used}, time_remaining_seconds = 0"),
    );
    voucher(&stack, "REVOKED7", open, "status = 'suspended'");
    voucher(
        &stack,
        "BOUNDMAC",
        open,
        &format!("{used}, mac = '02:00:00:00:00:01'"),
    );
    let fine = voucher(
        &stack,
        "DATALEFT",
        open,
        &format!("{used}, data_remaining_bytes = 5000000"),
    );
    wait_published(&stack, open).await;

    let reply = r.send(&hotspot_pap("DATALEFT", "DATALEFT")).await;
    assert!(reply.is_accept(), "{reply}");
    assert_eq!(
        reply.attr("Mikrotik-Total-Limit"),
        Some("5000000"),
        "{reply}"
    );
    assert_eq!(
        reply.attr("Mikrotik-Total-Limit-Gigawords"),
        Some("0"),
        "{reply}"
    );
    assert!((3500..=3601).contains(&session_timeout(&reply)), "{reply}");

    for (code, message) in [
        ("DATAUSED", "data used up"),
        ("TIMEUSED", "time used up"),
        ("REVOKED7", "voucher revoked"),
        ("BOUNDMAC", "voucher bound to another device"),
    ] {
        let reply = r.send(&hotspot_pap(code, "")).await;
        assert!(reply.is_reject(), "{code}:\n{reply}");
        assert!(reply.has("Message-Authenticator"), "{code}:\n{reply}");
        assert_eq!(
            reply.attr("Reply-Message"),
            Some(message),
            "{code}:\n{reply}"
        );
    }

    // A lookup name (as a leaked dump shows it) is nobody.
    let reply = r.send(&hotspot_pap(&fine, "")).await;
    assert!(reply.is_reject(), "{reply}");
    assert_eq!(
        reply.attr("Reply-Message"),
        Some("Invalid username or password"),
        "{reply}"
    );
}

/// The RouterOS hotspot captures, replayed as captured with the User-Name and password
/// they carry being a voucher's code (the CHAP response in the capture is the router's own,
/// computed from the capture's challenge), and the CHAP capture with another code.
#[tokio::test]
async fn routeros_hotspot_captures_replayed_with_voucher_codes() {
    let dir = shared_dir().join("fixtures/routeros");
    let chap_packet = support::fixture_packet(&dir.join("hotspot-chap-access-request-01.txt"));
    let pap_packet = support::fixture_packet(&dir.join("hotspot-pap-access-request-01.txt"));
    assert!(
        chap_packet.contains("User-Name = \"test\""),
        "{chap_packet}"
    );
    assert!(
        pap_packet.contains("User-Name = \"usbwalt\""),
        "{pap_packet}"
    );

    let stack = spawn_stack().await;
    let r = &stack.radius;
    let plan = plan(&stack, 86_400, Some(3600), None, 2);
    let batch = batch(&stack, plan, "NULL");
    // The captured logins were "test"/"test" (CHAP) and "usbwalt"/"usbwalt" (PAP): codes.
    let test = voucher(&stack, "test", batch, "");
    let usbwalt = voucher(&stack, "usbwalt", batch, "");
    voucher(&stack, "K7DM-P4QX", batch, "");
    wait_published(&stack, batch).await;
    for (what, packet) in [("CHAP capture", &chap_packet), ("PAP capture", &pap_packet)] {
        let reply = r.send_raw(packet, &r.secret).await;
        assert_voucher_accept(&reply, what);
        assert_eq!(session_timeout(&reply), 3600, "{what}:\n{reply}");
    }

    // The CHAP capture with a printed code typed in: same identifier and challenge, the
    // response the login page's md5.js computes from the code.
    let challenge = chap_field(&chap_packet, "CHAP-Challenge");
    let ident = chap_field(&chap_packet, "CHAP-Password")[0];
    let response = Md5::new()
        .chain_update([ident])
        .chain_update(b"k7dm-p4qx")
        .chain_update(&challenge)
        .finalize();
    let mut password = vec![ident];
    password.extend_from_slice(&response);
    let retyped: String = chap_packet
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some(("User-Name", _)) => format!("User-Name = {}\n", quoted("k7dm-p4qx")),
            Some(("CHAP-Password", _)) => format!("CHAP-Password = {}\n", support::hex(&password)),
            _ => format!("{line}\n"),
        })
        .collect();
    let reply = r.send_raw(&retyped, &r.secret).await;
    assert_voucher_accept(&reply, "CHAP capture with a printed code");

    for name in [&test, &usbwalt] {
        support::poll(support::DEADLINE, "first use journaled", || {
            auth_log(&stack, name)
                .contains(&"true|voucher first use".to_owned())
                .then_some(())
        })
        .await;
    }
    assert_no_code_logged(&stack, &["test", "usbwalt", "K7DMP4QX"]);
}

fn chap_field(packet: &str, name: &str) -> Vec<u8> {
    packet
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(" = "))
        .map(unhex)
        .unwrap_or_else(|| panic!("no {name} in\n{packet}"))
}

fn rejected_with(reply: &Reply, message: &str) -> bool {
    reply.is_reject()
        && reply
            .attr("Reply-Message")
            .is_some_and(|m| m.contains(message))
}

/// A login as the hotspot of router `nas` sends it.
fn hotspot_login_at(code: &str, nas: &str) -> Vec<(String, String)> {
    let mut attrs = hotspot_pap(code, "");
    for (name, value) in &mut attrs {
        if name == "NAS-Identifier" {
            *value = quoted(nas);
        }
    }
    attrs
}

/// Two routers see the same unused voucher at the same instant. Neither knows of the other,
/// so both accept it; the daemon activates it once, from the earlier login, and its validity
/// runs from then: once it has passed, the voucher is refused as expired.
#[tokio::test]
async fn two_routers_at_once_activate_a_voucher_once_and_validity_runs_from_first_use() {
    let stack = spawn_stack().await;
    let r = &stack.radius;
    // Valid 3 seconds from first use, two devices.
    let plan = plan(&stack, 3, None, None, 2);
    let b = batch(&stack, plan, "NULL");
    let name = voucher(&stack, "TWO4ROUT", b, "");
    wait_published(&stack, b).await;
    let (at_a, at_b) = (
        hotspot_login_at("TWO4ROUT", "router-a"),
        hotspot_login_at("two4-rout", "router-b"),
    );
    let (a, other) = tokio::join!(r.send(&at_a), r.send(&at_b));
    assert_voucher_accept(&a, "router A");
    assert_voucher_accept(&other, "router B");
    for reply in [&a, &other] {
        assert!(
            (1..=3).contains(&session_timeout(reply)),
            "the validity from first use:\n{reply}"
        );
    }
    let firsts = support::poll(support::DEADLINE, "both first uses journaled", || {
        let rows = auth_log(&stack, &name)
            .into_iter()
            .filter(|row| row == "true|voucher first use")
            .count();
        (rows == 2).then_some(rows)
    })
    .await;
    assert_eq!(firsts, 2);
    // One activation: at the earlier of the two, with the expiry it implies.
    let activation = support::poll(support::DEADLINE, "the voucher activated", || {
        let row = psql(
            &stack.db_url,
            &format!(
                "SELECT (activated_at = (SELECT min(at) FROM auth_log WHERE username = '{name}')) \
                        || '|' || (expires_at = activated_at + interval '3 seconds') \
                   FROM subscribers WHERE username = '{name}' AND activated_at IS NOT NULL"
            ),
        );
        let row = row.trim().to_owned();
        (!row.is_empty()).then_some(row)
    })
    .await;
    assert_eq!(activation, "true|true");
    r.poll_until(
        || hotspot_pap("TWO4ROUT", ""),
        "refused once the validity from first use has passed",
        |reply| rejected_with(reply, "voucher expired"),
    )
    .await;
}

/// A 3 MB voucher used on two devices at once: the router's interim updates from both count
/// it down (the next login's Mikrotik-Total-Limit is what is left), a third device is refused,
/// and when the data is used up both sessions are disconnected and logins are refused.
#[tokio::test]
async fn a_data_voucher_counts_down_across_two_devices_and_is_cut_off_at_zero() {
    let stack = spawn_stack().await;
    let r = &stack.radius;
    let router = Mikrotik::attach(&stack, 36).await;
    let plan = plan(&stack, 86_400, None, Some(3_000_000), 2);
    let b = batch(&stack, plan, "NULL");
    voucher(&stack, "DATA3MBX", b, "");
    wait_published(&stack, b).await;
    let first = r.send(&hotspot_pap("DATA3MBX", "")).await;
    assert_voucher_accept(&first, "first device");
    assert_eq!(
        first.attr("Mikrotik-Total-Limit"),
        Some("3000000"),
        "{first}"
    );

    // The router reports the sessions with the code as each device typed it.
    let phone = router.start_session("DATA3MBX", None, None, None).await;
    let laptop = router.start_session("data-3mbx", None, None, None).await;
    let used = |input, output| Counters {
        input,
        output,
        seconds: 60,
    };
    router
        .interim(&phone.acct_session_id, used(400_000, 600_000))
        .await;
    router
        .interim(&laptop.acct_session_id, used(500_000, 500_000))
        .await;
    let name = stack.voucher_key.lookup_name("DATA3MBX").unwrap();
    support::poll(
        support::DEADLINE,
        "2 MB counted from the two devices",
        || {
            let left = stack.sql(&format!(
                "SELECT data_remaining_bytes FROM subscribers WHERE username = '{name}'"
            ));
            (left == "1000000").then_some(())
        },
    )
    .await;
    // Two devices are online: a third is refused.
    r.poll_until(
        || hotspot_pap("DATA3MBX", ""),
        "a third device refused",
        |reply| rejected_with(reply, "voucher in use on another device"),
    )
    .await;

    // The laptop uses the rest and more: both sessions are cut off, and logins refused.
    router
        .interim(&laptop.acct_session_id, used(1_000_000, 1_200_000))
        .await;
    router
        .wait_for("Disconnect of the phone", |got| got.disconnects(&phone))
        .await;
    router
        .wait_for("Disconnect of the laptop", |got| got.disconnects(&laptop))
        .await;
    r.poll_until(
        || hotspot_pap("DATA3MBX", ""),
        "refused at zero",
        |reply| rejected_with(reply, "data used up"),
    )
    .await;
}
