//! An independent RFC 5176 receiver for the end-to-end tests: Debian's FreeRADIUS 3.2.1 with
//! a configuration of its own that only listens for CoA- and Disconnect-Requests.
//!
//! radiusd silently drops a request whose Request Authenticator (or Message-Authenticator)
//! does not verify with the client's secret, so an ACK from it proves the request was
//! correctly signed; the caller verifies the ACK's Response Authenticator. Every request it
//! accepts is written with all its attributes to a detail file, which
//! [`CoaServer::requests`] parses.
//!
//! The configuration is written here rather than derived from /etc/freeradius: it needs
//! nothing of the stock one. In 3.2 one `recv-coa` section handles both CoA-Request and
//! Disconnect-Request (the Debian `sites-available/coa` says so); the reply is CoA-ACK or
//! Disconnect-ACK to match, when the section returns `ok`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{DEADLINE, free_udp_socket, kill, poll, random_hex, tail};

/// One request as radiusd logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoggedRequest {
    /// "CoA-Request" or "Disconnect-Request".
    pub(crate) packet_type: String,
    /// The attributes in order, values as radiusd prints them with the quotes of strings
    /// removed (e.g. `("Mikrotik-Rate-Limit", "1M/2M")`, `("Framed-IP-Address",
    /// "10.0.0.5")`). radiusd's own additions (Packet-Type, Timestamp) are left out.
    pub(crate) attrs: Vec<(String, String)>,
}

impl LoggedRequest {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn is_disconnect(&self) -> bool {
        self.packet_type == "Disconnect-Request"
    }

    pub(crate) fn is_coa(&self) -> bool {
        self.packet_type == "CoA-Request"
    }
}

/// A running FreeRADIUS CoA/Disconnect receiver on 127.0.0.1 at a port picked at run time,
/// answering clients from 127.0.0.0/8 that use [`CoaServer::secret`]. Dropping it kills
/// radiusd (by its pid) and removes its directory.
pub(crate) struct CoaServer {
    addr: SocketAddr,
    secret: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl CoaServer {
    /// Writes the configuration and starts `freeradius -X` on it; returns once it is ready.
    pub(crate) async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("jasiyo-coa-")
            .tempdir()
            .expect("tempdir");
        let sock = free_udp_socket();
        let addr = sock.local_addr().expect("local_addr");
        let secret = random_hex(12);
        write_config(dir.path(), addr.port(), &secret);
        drop(sock);
        let log = fs::File::create(dir.path().join("radiusd.out")).expect("radiusd.out");
        let child = Command::new("freeradius")
            .arg("-X")
            .arg("-d")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn freeradius");
        let mut server = Self {
            addr,
            secret,
            child: Some(child),
            dir,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let out = self.dir.path().join("radiusd.out");
        let child = self.child.as_mut().expect("child");
        poll(DEADLINE * 6, "the CoA receiver (freeradius) ready", || {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "freeradius (CoA receiver) exited ({status}) during start-up:\n{}",
                    tail(&out, 40)
                );
            }
            fs::read_to_string(&out)
                .unwrap_or_default()
                .contains("Ready to process requests")
                .then_some(())
        })
        .await;
    }

    /// Where to send CoA/Disconnect-Requests.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    fn detail_path(&self) -> PathBuf {
        self.dir.path().join("log/requests.detail")
    }

    /// Every request accepted so far, in order.
    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        parse_detail(&fs::read_to_string(self.detail_path()).unwrap_or_default())
    }

    /// Waits (polling) until a logged request satisfies `pred`; panics after [`DEADLINE`].
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&LoggedRequest) -> bool,
    ) -> LoggedRequest {
        poll(DEADLINE, what, || {
            self.requests().into_iter().find(|r| pred(r))
        })
        .await
    }

    /// radiusd's debug output so far (for failure messages).
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("radiusd.out"), lines)
    }
}

impl Drop for CoaServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
        if std::thread::panicking() {
            eprintln!(
                "---- CoA receiver (freeradius -X) log (tail) ----\n{}",
                self.log_tail(60)
            );
        }
    }
}

/// A complete raddb in `dir`: radiusd.conf (no user/group switch: it runs as the test's
/// user and writes only below `dir`) and an empty local dictionary (radiusd loads the
/// shipped ones, MikroTik's included, from /usr/share/freeradius).
fn write_config(dir: &Path, port: u16, secret: &str) {
    for sub in ["log", "run"] {
        fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    fs::write(dir.join("dictionary"), "").expect("dictionary");
    let d = dir.display();
    let conf = format!(
        r#"# The test's CoA/Disconnect receiver (tests/support/coa_server.rs).
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
raddbdir = {d}
confdir = {d}
logdir = {d}/log
radacctdir = {d}/log
run_dir = {d}/run
libdir = /usr/lib/freeradius
name = freeradius
pidfile = {d}/run/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no

log {{
	destination = files
	file = {d}/log/radius.log
	colourise = no
}}

security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}}

client loopback {{
	ipaddr = 127.0.0.0/8
	secret = "{secret}"
}}

modules {{
	always ok {{
		rcode = ok
	}}
	detail requests_log {{
		filename = {d}/log/requests.detail
		permissions = 0600
		header = "%t"
	}}
}}

listen {{
	type = coa
	ipaddr = 127.0.0.1
	port = {port}
	virtual_server = receiver
}}

server receiver {{
	recv-coa {{
		requests_log
		ok
	}}
	send-coa {{
		ok
	}}
}}
"#
    );
    fs::write(dir.join("radiusd.conf"), conf).expect("radiusd.conf");
}

/// Parses detail-file records: a header line, then `\tName = value` lines, then a blank
/// line. A record still being written (no blank line yet) is left for the next call.
fn parse_detail(text: &str) -> Vec<LoggedRequest> {
    let mut out = Vec::new();
    let mut current: Option<LoggedRequest> = None;
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        let line = line.trim_end_matches('\n');
        if line.trim().is_empty() {
            out.extend(current.take());
        } else if let Some(pair) = line.strip_prefix('\t') {
            let Some((name, value)) = pair.split_once(" = ") else {
                continue;
            };
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            let r = current.get_or_insert_with(|| LoggedRequest {
                packet_type: String::new(),
                attrs: Vec::new(),
            });
            match name {
                "Packet-Type" => r.packet_type = value.to_owned(),
                "Timestamp" => {}
                _ => r.attrs.push((name.to_owned(), value.to_owned())),
            }
        } else {
            current = Some(LoggedRequest {
                packet_type: String::new(),
                attrs: Vec::new(),
            });
        }
    }
    out
}
