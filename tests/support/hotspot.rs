//! The hotspot side of a MikroTik for the login page test, and headless Chromium to drive
//! the page.
//!
//! [`HotspotRouter`] is a router registered with the stack ([`Mikrotik::attach`]) whose
//! hotspot web server is a small axum server on the router's loopback address:
//!
//! * `GET /login` serves the page the router would have in its hotspot directory: the
//!   daemon's `/portal/v1/routers/{id}/login.html`, with the RouterOS variables filled in as
//!   RouterOS does (`link-login-only`, `link-orig-esc`, `mac`, `error`, and for HTTP-CHAP a
//!   fresh `chap-id` and 16-byte `chap-challenge` written as octal escapes, `\ooo` per byte);
//! * `POST /login` turns the login form into the Access-Request a RouterOS hotspot sends
//!   (the attributes of ../shared/fixtures/routeros/hotspot-{chap,pap}-access-request-01:
//!   CHAP-Challenge + CHAP-Password from the page's hex MD5, or User-Password; NAS-Port-Type
//!   Wireless-802.11, Calling-Station-Id, Framed-IP-Address, Mikrotik-Host-IP,
//!   WISPr-Logoff-URL, Message-Authenticator last) from the router's address to the stack's
//!   radiusd, and answers a "logged in" page on Access-Accept, or the login page again with
//!   `$(error)` = the Reply-Message on Access-Reject.
//!
//! [`Chrome`] starts `chromedriver` on a picked port (in a process group of its own, killed
//! by that id on drop) and opens a headless Chromium session shaped like a cheap Android
//! phone (360x640).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::response::Html;
use axum::routing::get;
use radius_proto::{Code, Packet, attr};
use serde_json::json;
use tokio::task::AbortHandle;

use super::mikrotik::Mikrotik;
use super::{DEADLINE, Stack, acct, free_tcp_port, poll_async, random_bytes};

/// The hotspot client's MAC and address (attributes only; nothing is sent there).
pub(crate) const CLIENT_MAC: &str = "A4:17:31:41:CB:B6";
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 5, 50, 23);
/// What `$(link-orig-esc)` says the customer asked for.
const ORIGINAL_URL_ESC: &str = "http%3A%2F%2Fneverssl.com%2F";
/// What the "logged in" page says.
pub(crate) const LOGGED_IN: &str = "You are logged in";

/// One login the hotspot passed to RADIUS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HotspotLogin {
    pub(crate) username: String,
    /// HTTP-CHAP (else PAP).
    pub(crate) chap: bool,
    /// The form's password field as posted.
    pub(crate) password: String,
    pub(crate) accepted: bool,
    pub(crate) reply_message: Option<String>,
    /// The form's `dst` and `popup` fields.
    pub(crate) dst: Option<String>,
    pub(crate) popup: Option<String>,
}

#[derive(Default)]
struct HsState {
    /// The CHAP id and challenge of the page served last (one client here).
    challenge: Option<(u8, [u8; 16])>,
    logins: Vec<HotspotLogin>,
    /// `$(name)`s in the page that RouterOS does not know.
    unknown_variables: Vec<String>,
    /// Problems with posted forms (a CHAP password that is not 32 hex digits, ...).
    problems: Vec<String>,
    next_session: u32,
}

struct HsShared {
    chap: bool,
    /// The daemon's page for this router.
    page_url: String,
    /// `http://<router>:<port>`.
    base: String,
    nas_ip: Ipv4Addr,
    nas_identifier: String,
    secret: String,
    radius: SocketAddr,
    http: reqwest::Client,
    state: Mutex<HsState>,
}

impl HsShared {
    fn state(&self) -> MutexGuard<'_, HsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A MikroTik hotspot at 127.0.0.X (see the module docs). Dropping it stops its web server.
pub(crate) struct HotspotRouter {
    /// The router as a NAS (its address, secret, id).
    pub(crate) nas: Mikrotik,
    shared: Arc<HsShared>,
    server: AbortHandle,
}

impl HotspotRouter {
    /// Registers a router at 127.0.0.`host` with the stack and starts its hotspot web
    /// server; `chap`: the hotspot logs in by HTTP-CHAP (else HTTP-PAP).
    pub(crate) async fn start(stack: &Stack, host: u8, chap: bool) -> Self {
        let nas = Mikrotik::attach(stack, host).await;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((nas.ip(), 0)))
            .await
            .unwrap_or_else(|e| panic!("bind the hotspot web server on {}: {e}", nas.ip()));
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(HsShared {
            chap,
            page_url: format!(
                "{}/portal/v1/routers/{}/login.html",
                stack.api.base,
                nas.router_id()
            ),
            base: format!("http://{addr}"),
            nas_ip: nas.ip(),
            nas_identifier: nas.nas_identifier(),
            secret: nas.secret().to_owned(),
            radius: SocketAddr::from(([127, 0, 0, 1], stack.radius.auth_port)),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            state: Mutex::new(HsState::default()),
        });
        let app = axum::Router::new()
            .route("/login", get(login_page).post(login_post))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("hotspot web server");
        })
        .abort_handle();
        Self {
            nas,
            shared,
            server,
        }
    }

    /// The login page's address (what the hotspot redirects a new client to).
    pub(crate) fn login_url(&self) -> String {
        format!("{}/login", self.shared.base)
    }

    /// Every login passed to RADIUS so far.
    pub(crate) fn logins(&self) -> Vec<HotspotLogin> {
        self.shared.state().logins.clone()
    }

    /// Asserts that the page used no unknown RouterOS variable and posted well-formed forms.
    pub(crate) fn assert_clean(&self) {
        let st = self.shared.state();
        assert!(
            st.unknown_variables.is_empty(),
            "the page uses variables RouterOS does not have: {:?}",
            st.unknown_variables
        );
        assert!(st.problems.is_empty(), "{:?}", st.problems);
    }
}

impl Drop for HotspotRouter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `\ooo` per byte, as RouterOS writes `$(chap-id)` and `$(chap-challenge)`.
pub(crate) fn octal_escaped(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "\\{b:03o}");
        s
    })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Fills in `$(name)` from `vars`; unknown names become empty and are returned.
fn fill(page: &str, vars: &HashMap<&str, String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(page.len() + 256);
    let mut unknown = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let name = &after[..end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => unknown.push(name.to_owned()),
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    (out, unknown)
}

/// The login page as the router serves it, with `error` (empty: none).
async fn serve_page(shared: &HsShared, error: &str) -> Html<String> {
    let resp = shared
        .http
        .get(&shared.page_url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {}: {e}", shared.page_url));
    assert!(
        resp.status().is_success(),
        "GET {}: {}",
        shared.page_url,
        resp.status()
    );
    let page = resp.text().await.expect("page text");
    let (chap_id, chap_challenge) = if shared.chap {
        let id = random_bytes::<1>()[0];
        let challenge: [u8; 16] = random_bytes();
        shared.state().challenge = Some((id, challenge));
        (octal_escaped(&[id]), octal_escaped(&challenge))
    } else {
        (String::new(), String::new())
    };
    let vars: HashMap<&str, String> = [
        ("link-login-only", format!("{}/login", shared.base)),
        (
            "link-login",
            format!("{}/login?dst={ORIGINAL_URL_ESC}", shared.base),
        ),
        ("link-orig", "http://neverssl.com/".to_owned()),
        ("link-orig-esc", ORIGINAL_URL_ESC.to_owned()),
        ("chap-id", chap_id),
        ("chap-challenge", chap_challenge),
        ("mac", CLIENT_MAC.to_owned()),
        ("ip", CLIENT_IP.to_string()),
        ("error", html_escape(error)),
        ("identity", shared.nas_identifier.clone()),
    ]
    .into_iter()
    .collect();
    let (page, unknown) = fill(&page, &vars);
    shared.state().unknown_variables.extend(unknown);
    Html(page)
}

async fn login_page(State(shared): State<Arc<HsShared>>) -> Html<String> {
    serve_page(&shared, "").await
}

fn unhex16(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

async fn login_post(
    State(shared): State<Arc<HsShared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Html<String> {
    let username = form.get("username").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let session = {
        let mut st = shared.state();
        st.next_session += 1;
        0x8050_0000 | st.next_session
    };
    let mut request = Packet::access_request(random_bytes::<1>()[0], random_bytes())
        .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::WIRELESS_802_11)
        .with_string(attr::CALLING_STATION_ID, CLIENT_MAC)
        .with_string(attr::CALLED_STATION_ID, "hotspot1")
        .with_string(attr::NAS_PORT_ID, "bridge")
        .with_string(attr::USER_NAME, &username)
        .with_integer(attr::NAS_PORT, session)
        .with_string(attr::ACCT_SESSION_ID, &format!("{session:08x}"))
        .with_ipv4(attr::FRAMED_IP_ADDRESS, CLIENT_IP)
        .with_vendor_ipv4(
            attr::mikrotik::VENDOR_ID,
            attr::mikrotik::HOST_IP,
            CLIENT_IP,
        );
    if shared.chap {
        let challenge = shared.state().challenge;
        let (Some((id, challenge)), Some(response)) = (challenge, unhex16(&password)) else {
            shared.state().problems.push(format!(
                "HTTP-CHAP login without a served challenge or with a password that is not \
                 32 hex digits: {password:?}"
            ));
            return serve_page(&shared, "invalid password").await;
        };
        let mut chap_password = vec![id];
        chap_password.extend_from_slice(&response);
        request = request
            .with_attr(attr::CHAP_CHALLENGE, challenge.to_vec())
            .with_attr(attr::CHAP_PASSWORD, chap_password);
    } else {
        request = request
            .with_user_password(password.as_bytes(), shared.secret.as_bytes())
            .expect("User-Password");
    }
    let request = request
        .with_integer(attr::SERVICE_TYPE, attr::service_type::LOGIN_USER)
        .with_vendor_string(
            attr::wispr::VENDOR_ID,
            attr::wispr::LOGOFF_URL,
            "http://10.5.50.1/logout",
        )
        .with_string(attr::NAS_IDENTIFIER, &shared.nas_identifier)
        .with_ipv4(attr::NAS_IP_ADDRESS, shared.nas_ip)
        .with_message_authenticator();
    let sock = acct::connected_socket(IpAddr::V4(shared.nas_ip), shared.radius).await;
    let reply = acct::request(&sock, &request, shared.secret.as_bytes(), DEADLINE)
        .await
        .unwrap_or_else(|| panic!("no answer from radiusd to the hotspot login of {username:?}"));
    let accepted = reply.code == Code::ACCESS_ACCEPT;
    let reply_message = reply
        .string(attr::REPLY_MESSAGE)
        .ok()
        .flatten()
        .map(str::to_owned);
    shared.state().logins.push(HotspotLogin {
        username: username.clone(),
        chap: shared.chap,
        password,
        accepted,
        reply_message: reply_message.clone(),
        dst: form.get("dst").cloned(),
        popup: form.get("popup").cloned(),
    });
    if accepted {
        Html(format!(
            "<!DOCTYPE html><html><head><title>Logged in</title></head><body>\
             <h1 id=\"status\">{LOGGED_IN}</h1><p id=\"user\">{}</p></body></html>",
            html_escape(&username)
        ))
    } else {
        // RouterOS shows the Reply-Message, or its own text when there is none.
        let error = reply_message.unwrap_or_else(|| "invalid username or password".to_owned());
        serve_page(&shared, &error).await
    }
}

// ------------------------------------------------------------------ Chromium

/// Headless Chromium through chromedriver, 360x640 like a cheap Android phone.
pub(crate) struct Chrome {
    pub(crate) client: fantoccini::Client,
    /// chromedriver, until killed.
    driver: Option<Child>,
    _profile: tempfile::TempDir,
}

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

impl Chrome {
    pub(crate) async fn start() -> Self {
        for bin in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the hotspot page test needs Debian's chromium and \
                 chromium-driver; run the tests with scripts/test.sh (it installs them)"
            );
        }
        let profile = tempfile::Builder::new()
            .prefix("jasiyo-chromium-")
            .tempdir()
            .expect("tempdir");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_tcp_port();
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group: killing it by that id also ends Chromium.
                .process_group(0)
                .spawn()
                .expect("spawn chromedriver");
            let url = format!("http://127.0.0.1:{port}");
            let ready = poll_async(Duration::from_secs(20), async || {
                if let Ok(Some(status)) = driver.try_wait() {
                    return Err(format!("chromedriver exited: {status}"));
                }
                reqwest::get(format!("{url}/status"))
                    .await
                    .map_err(|e| e.to_string())?
                    .error_for_status()
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await;
            if let Err(e) = ready {
                kill_group(&mut driver);
                last = e;
                continue;
            }
            let mut caps = serde_json::Map::new();
            caps.insert(
                "goog:chromeOptions".to_owned(),
                json!({
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-first-run",
                        "--window-size=360,640",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                    "mobileEmulation": {
                        "deviceMetrics": {"width": 360, "height": 640, "pixelRatio": 2.0},
                        "userAgent": "Mozilla/5.0 (Linux; Android 8.1.0; itel A16 Plus) \
                                      AppleWebKit/537.36 (KHTML, like Gecko) \
                                      Chrome/70.0.3538.110 Mobile Safari/537.36",
                    },
                }),
            );
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        driver: Some(driver),
                        _profile: profile,
                    };
                }
                Err(e) => {
                    kill_group(&mut driver);
                    last = e.to_string();
                }
            }
        }
        panic!("could not start headless Chromium through chromedriver: {last}");
    }

    /// Ends the browser session (Chromium exits), then chromedriver.
    pub(crate) async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        if let Some(mut driver) = self.driver.take() {
            kill_group(&mut driver);
        }
    }

    /// The text of the element with this id (empty if absent or hidden).
    pub(crate) async fn text(&self, id: &str) -> String {
        let script = "var e = document.getElementById(arguments[0]); \
                      return e && e.offsetParent !== null ? e.textContent : '';";
        match self.client.execute(script, vec![json!(id)]).await {
            Ok(serde_json::Value::String(s)) => s.trim().to_owned(),
            _ => String::new(),
        }
    }

    /// Waits until the element with this id shows a text for which `done` holds; returns it.
    pub(crate) async fn wait_text(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        poll_async(DEADLINE * 3, async || {
            let text = self.text(id).await;
            if done(&text) { Ok(text) } else { Err(text) }
        })
        .await
        .unwrap_or_else(|last| panic!("{what}: #{id} shows {last:?}"))
    }

    /// Saves a PNG of the page to `$JASIYO_SCREENSHOT_DIR/<name>.png` when that is set (to
    /// look at the page; not part of any assertion).
    pub(crate) async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("JASIYO_SCREENSHOT_DIR") {
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), png)
                .expect("write screenshot");
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            kill_group(&mut driver);
        }
    }
}

/// Kills the process group led by `child` (chromedriver and the Chromium it started).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}
