//! One worker: one UDP socket, up to 128 requests in flight (one per RADIUS identifier),
//! retransmission on timeout, reply verification.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use radius_proto::{Code, Packet, attr};
use rand::{Rng, RngCore};

use crate::stats::Stats;
use crate::users::Users;

/// Which NAS the requests imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Service {
    /// RouterOS PPPoE: Framed-User, PPP, NAS-Port-Type Ethernet.
    Pppoe,
    /// RouterOS hotspot: Login-User, Wireless-802.11, Mikrotik-Host-IP, WISPr-Logoff-URL.
    Hotspot,
    /// Only User-Name, User-Password and NAS-IP-Address.
    Plain,
}

/// Which requests to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Access-Request with User-Password.
    Access,
    /// Accounting-Request, Acct-Status-Type Interim-Update.
    Interim,
}

/// Settings shared by every worker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) server: SocketAddr,
    pub(crate) bind: Ipv4Addr,
    pub(crate) secret: Vec<u8>,
    pub(crate) users: Users,
    pub(crate) random_users: bool,
    pub(crate) service: Service,
    pub(crate) kind: Kind,
    pub(crate) nas_ip: Ipv4Addr,
    pub(crate) nas_identifier: String,
    pub(crate) message_authenticator: bool,
    pub(crate) require_message_authenticator: bool,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    /// Stop issuing new requests after this many in total (all workers).
    pub(crate) max_requests: u64,
    /// Stop issuing new requests at this instant.
    pub(crate) deadline: Option<Instant>,
    /// Requests issued so far, across workers.
    pub(crate) issued: AtomicU64,
}

struct InFlight {
    bytes: Vec<u8>,
    authenticator: [u8; 16],
    first_sent: Instant,
    last_sent: Instant,
    tries: u32,
}

/// Runs one worker with `window` requests in flight until the shared limits say stop and
/// everything in flight has been answered or has timed out.
pub(crate) fn run(shared: &Arc<Shared>, window: usize) -> anyhow::Result<Stats> {
    let sock = udp_socket(shared.bind)?;
    sock.connect(shared.server)
        .with_context(|| format!("connecting the UDP socket to {}", shared.server))?;
    let poll = Duration::from_millis(2).min(shared.timeout);
    sock.set_read_timeout(Some(poll))?;

    let window = window.clamp(1, 256);
    let mut slots: Vec<Option<InFlight>> = (0..256).map(|_| None).collect();
    // Identifiers are reused in FIFO order so a late reply rarely meets a new request
    // with its identifier (and if it does, the authenticator check rejects it).
    let mut free: std::collections::VecDeque<u8> = (0..=255u8).collect();
    let mut in_flight = 0usize;
    let mut stats = Stats::default();
    let mut rng = rand::rng();
    let (mut user, mut pass) = (String::new(), String::new());
    let mut buf = vec![0u8; 4096];
    let mut encode_buf = Vec::with_capacity(512);
    // The authenticator of the previous request per identifier, to recognise late
    // duplicate replies (e.g. the server's cached answer to a retransmission).
    let mut previous: Vec<Option<[u8; 16]>> = vec![None; 256];
    let mut issuing = true;
    let mut last_sweep = Instant::now();

    loop {
        // Fill the window.
        while issuing && in_flight < window {
            if shared.deadline.is_some_and(|d| Instant::now() >= d) {
                issuing = false;
                break;
            }
            let seq = shared.issued.fetch_add(1, Ordering::Relaxed);
            if seq >= shared.max_requests {
                issuing = false;
                break;
            }
            let Some(id) = free.pop_front() else { break };
            let index = if shared.random_users {
                rng.random_range(0..shared.users.len())
            } else {
                seq
            };
            shared.users.get(index, &mut user, &mut pass);
            let mut authenticator = [0u8; 16];
            let packet = match shared.kind {
                Kind::Access => {
                    rng.fill_bytes(&mut authenticator);
                    build_request(shared, id, authenticator, index, &user, &pass)?
                }
                Kind::Interim => build_interim(shared, id, index, seq, &user),
            };
            packet.encode_into(&shared.secret, &mut encode_buf)?;
            if let Some(computed) = Packet::authenticator_from_wire(&encode_buf) {
                // Accounting: the Request Authenticator is the digest encode computed.
                authenticator = computed;
            }
            let now = Instant::now();
            if sock.send(&encode_buf).is_err() {
                stats.socket_errors += 1;
            }
            stats.sent += 1;
            if let Some(slot) = slots.get_mut(usize::from(id)) {
                *slot = Some(InFlight {
                    bytes: encode_buf.clone(),
                    authenticator,
                    first_sent: now,
                    last_sent: now,
                    tries: 1,
                });
            }
            in_flight += 1;
        }
        if !issuing && in_flight == 0 {
            break;
        }

        // Receive one reply (or time out after `poll`).
        match sock.recv(&mut buf) {
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default();
                handle_reply(
                    shared,
                    data,
                    &mut slots,
                    &mut previous,
                    &mut free,
                    &mut in_flight,
                    &mut stats,
                );
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => stats.socket_errors += 1,
        }

        // Retransmit or give up on requests that have waited too long.
        let now = Instant::now();
        if now.duration_since(last_sweep) >= poll {
            last_sweep = now;
            for (id, slot) in slots.iter_mut().enumerate() {
                let Some(f) = slot else { continue };
                if now.duration_since(f.last_sent) < shared.timeout {
                    continue;
                }
                if f.tries <= shared.retries {
                    // Same identifier, authenticator and bytes (RFC 5080 §2.2.1).
                    if sock.send(&f.bytes).is_err() {
                        stats.socket_errors += 1;
                    }
                    f.tries += 1;
                    f.last_sent = now;
                    stats.retransmits += 1;
                } else {
                    *slot = None;
                    stats.timeouts += 1;
                    in_flight -= 1;
                    free.push_back(u8::try_from(id).unwrap_or(0));
                }
            }
        }
    }
    Ok(stats)
}

fn handle_reply(
    shared: &Shared,
    data: &[u8],
    slots: &mut [Option<InFlight>],
    previous: &mut [Option<[u8; 16]>],
    free: &mut std::collections::VecDeque<u8>,
    in_flight: &mut usize,
    stats: &mut Stats,
) {
    let Ok(reply) = Packet::decode(data) else {
        stats.malformed += 1;
        return;
    };
    let Some(slot) = slots.get_mut(usize::from(reply.id)) else {
        return;
    };
    let Some(f) = slot.as_ref() else {
        stats.stale += 1;
        return;
    };
    if reply
        .verify_response(&f.authenticator, &shared.secret)
        .is_err()
    {
        let prev = previous.get(usize::from(reply.id)).copied().flatten();
        if prev.is_some_and(|a| reply.verify_response(&a, &shared.secret).is_ok()) {
            // A late duplicate answer to the identifier's previous request.
            stats.stale += 1;
        } else {
            // Wrong secret or forged; keep waiting for the real answer.
            stats.bad_authenticator += 1;
        }
        return;
    }
    let latency = f.first_sent.elapsed();
    if let Some(p) = previous.get_mut(usize::from(reply.id)) {
        *p = Some(f.authenticator);
    }
    *slot = None;
    *in_flight -= 1;
    free.push_back(reply.id);
    if shared.require_message_authenticator && !reply.has_message_authenticator() {
        stats.missing_message_authenticator += 1;
    }
    stats
        .latencies_us
        .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    match reply.code {
        Code::ACCESS_ACCEPT => stats.accept += 1,
        Code::ACCESS_REJECT => stats.reject += 1,
        Code::ACCESS_CHALLENGE => stats.challenge += 1,
        Code::ACCOUNTING_RESPONSE => stats.accounting_response += 1,
        _ => stats.other += 1,
    }
}

/// A UDP socket bound to `bind` with large buffers: a full window of replies arriving at
/// once must not overflow the kernel's default receive buffer (~208 KiB, which holds only
/// about 200 small datagrams once per-packet overhead is counted).
fn udp_socket(bind: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(1 << 20);
    s.bind(&SocketAddr::from((bind, 0)).into())
        .with_context(|| format!("binding a UDP socket on {bind}"))?;
    Ok(s.into())
}

/// A synthetic client MAC for subscriber `n`, RouterOS style (upper case, colons).
fn mac_for(n: u64) -> String {
    let b = n.to_be_bytes();
    format!("02:00:{:02X}:{:02X}:{:02X}:{:02X}", b[4], b[5], b[6], b[7])
}

/// Builds the Access-Request the way a RouterOS NAS of the chosen service would.
pub(crate) fn build_request(
    shared: &Shared,
    id: u8,
    authenticator: [u8; 16],
    index: u64,
    user: &str,
    pass: &str,
) -> anyhow::Result<Packet> {
    let nas_port = u32::try_from(index % u64::from(u32::MAX)).unwrap_or(0);
    let mut p = Packet::access_request(id, authenticator);
    p = match shared.service {
        Service::Pppoe => p
            .with_integer(attr::SERVICE_TYPE, attr::service_type::FRAMED_USER)
            .with_integer(attr::FRAMED_PROTOCOL, attr::framed_protocol::PPP)
            .with_integer(attr::NAS_PORT, nas_port)
            .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::ETHERNET)
            .with_string(attr::USER_NAME, user)
            .with_string(attr::CALLING_STATION_ID, &mac_for(index))
            .with_string(attr::CALLED_STATION_ID, "pppoe-bench")
            .with_string(attr::NAS_PORT_ID, "ether2")
            .with_user_password(pass.as_bytes(), &shared.secret)?,
        Service::Hotspot => {
            let host = Ipv4Addr::from(0x0a00_0000 | (nas_port & 0x00ff_ffff));
            p.with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::WIRELESS_802_11)
                .with_string(attr::CALLING_STATION_ID, &mac_for(index))
                .with_string(attr::CALLED_STATION_ID, "hotspot1")
                .with_string(attr::NAS_PORT_ID, "bridge")
                .with_string(attr::USER_NAME, user)
                .with_integer(attr::NAS_PORT, nas_port)
                .with_string(attr::ACCT_SESSION_ID, &format!("{nas_port:08x}"))
                .with_ipv4(attr::FRAMED_IP_ADDRESS, host)
                .with_vendor_ipv4(attr::mikrotik::VENDOR_ID, attr::mikrotik::HOST_IP, host)
                .with_user_password(pass.as_bytes(), &shared.secret)?
                .with_integer(attr::SERVICE_TYPE, attr::service_type::LOGIN_USER)
                .with_vendor_string(
                    attr::wispr::VENDOR_ID,
                    attr::wispr::LOGOFF_URL,
                    "http://10.5.50.1/logout",
                )
        }
        Service::Plain => p
            .with_string(attr::USER_NAME, user)
            .with_user_password(pass.as_bytes(), &shared.secret)?,
    };
    if shared.service != Service::Plain {
        p = p.with_string(attr::NAS_IDENTIFIER, &shared.nas_identifier);
    }
    p = p.with_ipv4(attr::NAS_IP_ADDRESS, shared.nas_ip);
    if shared.message_authenticator {
        // Last, as post-BlastRADIUS RouterOS does.
        p = p.with_message_authenticator();
    }
    Ok(p)
}

/// An Interim-Update for subscriber `index` as RouterOS sends it for a PPPoE session: one
/// session per subscriber (Acct-Session-Id from the index), cumulative counters that grow
/// with the request sequence number (so every packet carries new usage), Gigawords included.
pub(crate) fn build_interim(shared: &Shared, id: u8, index: u64, seq: u64, user: &str) -> Packet {
    let nas_port = u32::try_from(index % u64::from(u32::MAX)).unwrap_or(0);
    let input = (seq + 1).saturating_mul(1_500_000);
    let output = (seq + 1).saturating_mul(9_000_000);
    let seconds = u32::try_from((seq + 1).saturating_mul(60) % u64::from(u32::MAX)).unwrap_or(0);
    let low = |v: u64| (v & 0xffff_ffff) as u32;
    let b = nas_port.to_be_bytes();
    Packet::accounting_request(id)
        .with_integer(
            attr::ACCT_STATUS_TYPE,
            attr::acct_status_type::INTERIM_UPDATE,
        )
        .with_string(attr::USER_NAME, user)
        .with_string(attr::ACCT_SESSION_ID, &format!("{index:08x}"))
        .with_integer(attr::NAS_PORT, nas_port)
        .with_integer(attr::NAS_PORT_TYPE, attr::nas_port_type::ETHERNET)
        .with_string(attr::NAS_PORT_ID, "ether2")
        .with_integer(attr::SERVICE_TYPE, attr::service_type::FRAMED_USER)
        .with_integer(attr::FRAMED_PROTOCOL, attr::framed_protocol::PPP)
        .with_string(attr::CALLING_STATION_ID, &mac_for(index))
        .with_string(attr::CALLED_STATION_ID, "pppoe-bench")
        .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, b[1], b[2], b[3]))
        .with_integer(attr::ACCT_AUTHENTIC, 1)
        .with_integer(attr::ACCT_SESSION_TIME, seconds)
        .with_counter64(attr::ACCT_INPUT_OCTETS, attr::ACCT_INPUT_GIGAWORDS, input)
        .with_counter64(
            attr::ACCT_OUTPUT_OCTETS,
            attr::ACCT_OUTPUT_GIGAWORDS,
            output,
        )
        .with_integer(attr::ACCT_INPUT_PACKETS, low(input / 1000))
        .with_integer(attr::ACCT_OUTPUT_PACKETS, low(output / 1000))
        .with_integer(attr::ACCT_DELAY_TIME, 0)
        .with_string(attr::NAS_IDENTIFIER, &shared.nas_identifier)
        .with_ipv4(attr::NAS_IP_ADDRESS, shared.nas_ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Pattern;

    fn shared(service: Service) -> Shared {
        Shared {
            server: "127.0.0.1:9".parse().unwrap(),
            bind: Ipv4Addr::LOCALHOST,
            secret: b"s3cret".to_vec(),
            users: Users::Pattern {
                user: Pattern::parse("u{n}"),
                password: Pattern::parse("p{n}"),
                start: 1,
                count: 10,
            },
            random_users: false,
            service,
            kind: Kind::Access,
            nas_ip: Ipv4Addr::new(127, 0, 0, 1),
            nas_identifier: "radload".into(),
            message_authenticator: true,
            require_message_authenticator: false,
            timeout: Duration::from_secs(1),
            retries: 1,
            max_requests: 1,
            deadline: None,
            issued: AtomicU64::new(0),
        }
    }

    #[test]
    fn requests_decode_and_verify() {
        for service in [Service::Pppoe, Service::Hotspot, Service::Plain] {
            let s = shared(service);
            let p = build_request(&s, 9, [3; 16], 4, "u5", "p5").unwrap();
            let bytes = p.encode(&s.secret).unwrap();
            let d = Packet::decode(&bytes).unwrap();
            d.verify_request(&s.secret).unwrap();
            assert_eq!(d.string(attr::USER_NAME).unwrap(), Some("u5"));
            assert_eq!(d.user_password(&s.secret).unwrap().unwrap(), b"p5");
            assert_eq!(
                d.attributes.last().unwrap().typ,
                attr::MESSAGE_AUTHENTICATOR
            );
        }
        assert_eq!(mac_for(0x0102_0304), "02:00:01:02:03:04");
    }

    #[test]
    fn interim_updates_verify_and_carry_gigawords() {
        let s = shared(Service::Pppoe);
        let p = build_interim(&s, 7, 4, 5000, "u5");
        let bytes = p.encode(&s.secret).unwrap();
        let d = Packet::decode(&bytes).unwrap();
        d.verify_request(&s.secret).unwrap();
        assert_eq!(d.integer(attr::ACCT_STATUS_TYPE).unwrap(), Some(3));
        assert_eq!(d.string(attr::ACCT_SESSION_ID).unwrap(), Some("00000004"));
        // 5001 x 9,000,000 = 45,009,000,000 = 10 x 2^32 + 2,059,327,040
        assert_eq!(d.integer(attr::ACCT_OUTPUT_GIGAWORDS).unwrap(), Some(10));
        assert_eq!(
            d.integer(attr::ACCT_OUTPUT_OCTETS).unwrap(),
            Some(2_059_327_040)
        );
    }
}
