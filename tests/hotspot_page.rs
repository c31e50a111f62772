//! End to end: the hotspot login page (`billing-daemon/assets/hotspot/login.html`, served
//! per router at `/portal/v1/routers/{id}/login.html`) in headless Chromium, behind a
//! MikroTik hotspot stand-in that logs in through the stack's radiusd (see
//! support/hotspot.rs): typed voucher codes over HTTP-CHAP and PAP, and the whole purchase
//! (package, phone, the fake Daraja's payment, the automatic login).

mod support;

use fake_daraja::Outcome;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use support::hotspot::{Chrome, HotspotRouter, LOGGED_IN};
use support::{
    Reply, Stack, StackOptions, hotspot_pap, id_of, spawn_stack_with, spawn_stack_with_mpesa,
};

async fn stack() -> Stack {
    spawn_stack_with(StackOptions {
        public_url: true,
        ..StackOptions::default()
    })
    .await
}

/// A hotspot package: an hour online, valid a day from first use.
async fn hotspot_plan(stack: &Stack) -> i64 {
    stack
        .create_plan(json!({
            "name": "1 hour", "rate_limit": "2M/4M", "price_kes": 20, "duration_seconds": 86_400,
            "time_allowance_seconds": 3600, "service": "hotspot",
        }))
        .await
}

/// A printed batch of `count` vouchers; waits until radiusd has them (the last code is
/// the probe: it is logged in once, so it is used up for the test).
async fn printed_batch(stack: &Stack, plan: i64, count: i64) -> (i64, Vec<String>) {
    let created = stack
        .api
        .create(
            "/voucher-batches",
            json!({"plan_id": plan, "count": count + 1}),
        )
        .await;
    let mut codes: Vec<String> = created["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    let probe = codes.pop().expect("a probe code");
    stack
        .radius
        .poll_until(
            || hotspot_pap(&probe, &probe),
            "the batch in the snapshot",
            Reply::is_accept,
        )
        .await;
    (id_of(&created["batch"]), codes)
}

/// Types `code` into the voucher form of the page at the router and submits it.
async fn type_code(chrome: &Chrome, router: &HotspotRouter, code: &str) {
    use fantoccini::Locator;
    let c = &chrome.client;
    c.goto(&router.login_url())
        .await
        .expect("open the login page");
    let input = c
        .wait()
        .for_element(Locator::Id("code"))
        .await
        .expect("#code");
    input.send_keys(code).await.expect("type the code");
    c.find(Locator::Css("#codeform button"))
        .await
        .expect("Connect button")
        .click()
        .await
        .expect("click Connect");
}

fn lookup_name(stack: &Stack, code: &str) -> String {
    stack.voucher_key.lookup_name(code).expect("a valid code")
}

/// A printed code typed on the page (lower case, dashes) logs in over HTTP-CHAP: the page
/// computes MD5(chap-id, code, challenge) from RouterOS's octal-escaped values; a revoked
/// voucher and an unknown code show the router's reject reason on the page. The page's MD5
/// is checked against RFC 1321's test vectors and over all byte values.
#[tokio::test]
async fn typed_code_logs_in_with_http_chap() {
    let stack = stack().await;
    let plan = hotspot_plan(&stack).await;
    let (_, codes) = printed_batch(&stack, plan, 1).await;
    let (revoked_batch, revoked) = printed_batch(&stack, plan, 1).await;
    let router = HotspotRouter::start(&stack, 7, true).await;
    let chrome = Chrome::start().await;

    // MD5 in the page, RFC 1321 appendix A.5.
    chrome
        .client
        .goto(&router.login_url())
        .await
        .expect("open the login page");
    for (input, digest) in [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ] {
        let got = chrome
            .client
            .execute("return jasiyoMd5(arguments[0]);", vec![json!(input)])
            .await
            .expect("jasiyoMd5");
        assert_eq!(got, json!(digest), "MD5({input:?})");
    }
    // Bytes 0..=255 repeated (several blocks, every byte value), as CHAP challenges are.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let got = chrome
        .client
        .execute(
            "var s = ''; for (var i = 0; i < 1000; i++) { s += String.fromCharCode(i % 256); } \
             return jasiyoMd5(s);",
            vec![],
        )
        .await
        .expect("jasiyoMd5 of bytes");
    assert_eq!(
        got,
        json!(hex(&Md5::digest(&bytes))),
        "MD5 of all byte values"
    );

    // Nothing to buy here (no packages sold on this router): the voucher form only.
    assert_eq!(chrome.text("err").await, "", "no error on a fresh page");

    // The code as a customer types it.
    let typed = format!("  {}  ", codes[0].to_lowercase());
    type_code(&chrome, &router, &typed).await;
    chrome
        .wait_text("status", "logged in with the typed code", |t| {
            t == LOGGED_IN
        })
        .await;
    chrome.screenshot("chap-logged-in").await;
    let logins = router.logins();
    assert_eq!(logins.len(), 1, "{logins:?}");
    let login = &logins[0];
    assert!(login.accepted && login.chap, "{login:?}");
    assert_eq!(login.username, codes[0].replace('-', "").to_uppercase());
    assert_eq!(login.dst.as_deref(), Some("http%3A%2F%2Fneverssl.com%2F"));
    assert_eq!(login.popup.as_deref(), Some("true"));
    // The first use is journaled and activates the voucher.
    stack
        .wait_for_sql(
            &format!(
                "SELECT activated_at IS NOT NULL FROM subscribers WHERE username = '{}'",
                lookup_name(&stack, &codes[0])
            ),
            "t",
        )
        .await;

    // A revoked voucher: the reject reason shows on the page RouterOS serves again.
    stack
        .api
        .post(&format!("/voucher-batches/{revoked_batch}/revoke"))
        .await;
    stack
        .radius
        .poll_until(
            || hotspot_pap(&revoked[0], ""),
            "the revocation in the snapshot",
            Reply::is_reject,
        )
        .await;
    type_code(&chrome, &router, &revoked[0]).await;
    chrome
        .wait_text("err", "the revoked voucher's reason", |t| {
            t == "voucher revoked"
        })
        .await;
    chrome.screenshot("chap-revoked").await;

    // An unknown code is refused too, and the page says so.
    type_code(&chrome, &router, "TRYX-ME47-HAXX").await;
    let shown = chrome
        .wait_text("err", "the unknown code's reject", |t| !t.is_empty())
        .await;
    let last = router.logins().last().cloned().expect("a login");
    assert!(!last.accepted, "{last:?}");
    assert_eq!(
        Some(shown.as_str()),
        Some(
            last.reply_message
                .as_deref()
                .unwrap_or("invalid username or password")
        )
    );
    router.assert_clean();
    chrome.close().await;
}

/// A hotspot set to HTTP-PAP (no chap-id on the page): the page posts the code itself.
#[tokio::test]
async fn typed_code_logs_in_with_http_pap() {
    let stack = stack().await;
    let plan = hotspot_plan(&stack).await;
    let (_, codes) = printed_batch(&stack, plan, 1).await;
    let router = HotspotRouter::start(&stack, 8, false).await;
    let chrome = Chrome::start().await;

    type_code(&chrome, &router, &codes[0]).await;
    chrome
        .wait_text("status", "logged in over PAP", |t| t == LOGGED_IN)
        .await;
    let logins = router.logins();
    assert_eq!(logins.len(), 1, "{logins:?}");
    let normalized = codes[0].replace('-', "").to_uppercase();
    assert!(logins[0].accepted && !logins[0].chap, "{logins:?}");
    assert_eq!(logins[0].username, normalized);
    assert_eq!(logins[0].password, normalized, "PAP: the code in clear");
    router.assert_clean();
    chrome.close().await;
}

/// The page is only served for known routers, and only with a public URL.
#[tokio::test]
async fn login_page_is_per_router() {
    let stack = stack().await;
    let router = HotspotRouter::start(&stack, 9, true).await;
    let http = reqwest::Client::new();
    let url = |id: i64| format!("{}/portal/v1/routers/{id}/login.html", stack.api.base);
    let resp = http
        .get(url(router.nas.router_id()))
        .send()
        .await
        .expect("GET login.html");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = resp.text().await.expect("text");
    assert!(page.contains(&format!("\"router\":{}", router.nas.router_id())));
    assert!(page.contains(&format!("\"api\":\"{}\"", stack.api.base)));
    assert!(page.contains("$(link-login-only)") && page.contains("$(chap-challenge)"));

    let resp = http.get(url(999_999)).send().await.expect("GET");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

/// A router selling two hotspot packages on its page; returns it and the packages' ids.
async fn router_selling(stack: &Stack, host: u8) -> (HotspotRouter, i64, i64) {
    let hour = hotspot_plan(stack).await;
    let day = stack
        .create_plan(json!({
            "name": "1 day", "rate_limit": "5M/5M", "price_kes": 50,
            "duration_seconds": 86_400, "service": "hotspot",
        }))
        .await;
    let router = HotspotRouter::start(stack, host, true).await;
    let (status, body) = stack
        .api
        .request(
            reqwest::Method::PUT,
            &format!("/routers/{}/packages", router.nas.router_id()),
            Some(json!({"package_ids": [hour, day]})),
        )
        .await;
    assert!(status.is_success(), "PUT packages: {status} {body}");
    (router, hour, day)
}

/// Chooses a package on the page, types the phone number and taps Pay.
async fn buy(chrome: &Chrome, router: &HotspotRouter, package: i64, phone: &str) {
    use fantoccini::Locator;
    let c = &chrome.client;
    c.goto(&router.login_url())
        .await
        .expect("open the login page");
    let choice = c
        .wait()
        .for_element(Locator::Css(&format!("button[data-package=\"{package}\"]")))
        .await
        .expect("the package on the page");
    chrome.screenshot("packages").await;
    choice.click().await.expect("choose the package");
    c.find(Locator::Id("phone"))
        .await
        .expect("#phone")
        .send_keys(phone)
        .await
        .expect("type the phone number");
    c.find(Locator::Id("pay"))
        .await
        .expect("#pay")
        .click()
        .await
        .expect("tap Pay");
}

/// The whole purchase on the page: packages listed, the 1-day package chosen, the phone
/// typed; the fake Daraja pays; the page gets the code and logs in by itself over HTTP-CHAP;
/// the voucher is then active (its first use journaled and applied), of the package bought,
/// and one payment of its price is in the ledger.
#[tokio::test]
async fn buying_on_the_page_logs_in_by_itself() {
    let (stack, fake) = spawn_stack_with_mpesa().await;
    let (router, _, day) = router_selling(&stack, 10).await;
    let chrome = Chrome::start().await;

    let ids: Vec<i64> = {
        chrome
            .client
            .goto(&router.login_url())
            .await
            .expect("open the login page");
        chrome
            .wait_text("pkgs", "the packages listed", |t| t.contains("KES 50"))
            .await;
        let ids = chrome
            .client
            .execute(
                "var b = document.querySelectorAll('#pkgs button'), out = []; \
                 for (var i = 0; i < b.length; i++) { out.push(+b[i].getAttribute('data-package')); } \
                 return out;",
                vec![],
            )
            .await
            .expect("package ids");
        serde_json::from_value(ids).expect("ids")
    };
    assert_eq!(ids.len(), 2, "both packages, in order: {ids:?}");
    assert_eq!(ids[1], day);

    buy(&chrome, &router, day, "0712 345 678").await;
    chrome
        .wait_text("status", "logged in after paying", |t| t == LOGGED_IN)
        .await;
    chrome.screenshot("bought-logged-in").await;

    let logins = router.logins();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert!(logins[0].accepted && logins[0].chap, "{logins:?}");
    let code = logins[0].username.clone();
    let name = lookup_name(&stack, &code);
    stack
        .wait_for_sql(
            &format!(
                "SELECT activated_at IS NOT NULL AND plan_id = {day} FROM subscribers \
                 WHERE username = '{name}'"
            ),
            "t",
        )
        .await;
    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(
        (ledger[0].amount, ledger[0].phone.as_str()),
        (50, "254712345678")
    );
    assert_eq!(
        stack.sql("SELECT count(*) FROM payments"),
        "1",
        "one payment credited"
    );
    router.assert_clean();
    chrome.close().await;
}

/// The customer cancels the prompt: the page says so, logs nobody in, and lets them try
/// again.
#[tokio::test]
async fn a_cancelled_payment_shows_why_and_logs_nobody_in() {
    let (stack, fake) = spawn_stack_with_mpesa().await;
    let (router, hour, _) = router_selling(&stack, 11).await;
    fake.script("254712000111", Outcome::failing(1032));
    let chrome = Chrome::start().await;

    buy(&chrome, &router, hour, "0712000111").await;
    let shown = chrome
        .wait_text("status", "the cancellation on the page", |t| {
            t.to_lowercase().contains("cancel")
        })
        .await;
    chrome.screenshot("cancelled").await;
    assert!(router.logins().is_empty(), "{:?}", router.logins());
    let enabled = chrome
        .client
        .execute("return !document.getElementById('pay').disabled;", vec![])
        .await
        .expect("pay button");
    assert_eq!(enabled, json!(true), "Pay can be tapped again ({shown})");
    router.assert_clean();
    chrome.close().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
