//! `jasiyo-coa-sink`: a router's `/radius incoming` for the enforcement benchmark. It ACKs
//! every Disconnect- and CoA-Request whose Request Authenticator verifies with the secret,
//! and writes one line per first arrival to stdout:
//!
//! ```text
//! <unix time in ns when it arrived> <disconnect|coa> <User-Name>
//! ```
//!
//! so a script can join arrival times with the times it made the changes. Retransmissions
//! (same source, identifier and authenticator) are answered again but not written.

use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use radius_proto::{Code, Packet, attr};

#[derive(Parser, Debug)]
#[command(
    name = "jasiyo-coa-sink",
    about = "ACK Disconnect/CoA requests and log when each arrived"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// The router's shared secret.
    #[arg(long, env = "COA_SINK_SECRET", hide_env_values = true)]
    secret: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let socket = UdpSocket::bind(cli.listen).with_context(|| format!("binding {}", cli.listen))?;
    let secret = cli.secret.as_bytes();
    let mut seen = HashSet::new();
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; radius_proto::MAX_PACKET_LEN];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let arrived = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let Ok(request) = Packet::decode(&buf[..n]) else {
            continue;
        };
        if request.verify_request(secret).is_err() {
            continue;
        }
        let (ack, kind) = match request.code {
            Code::DISCONNECT_REQUEST => (Code::DISCONNECT_ACK, "disconnect"),
            Code::COA_REQUEST => (Code::COA_ACK, "coa"),
            _ => continue,
        };
        if seen.insert((from, request.id, request.authenticator)) {
            let user = request
                .string(attr::USER_NAME)
                .ok()
                .flatten()
                .unwrap_or("-");
            writeln!(out, "{arrived} {kind} {user}")?;
            out.flush()?;
        }
        let reply = Packet::reply_to(&request, ack)
            .with_message_authenticator()
            .encode(secret)?;
        socket.send_to(&reply, from)?;
    }
}
