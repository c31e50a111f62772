//! The request callbacks: authorize, accounting, post-auth.

use core::ffi::c_void;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use jasiyo::freeradius as fr;
use jasiyo_journal::JournalRecord;
use jasiyo_snapshot::Refresh;

use super::guard::guard;
use super::instance::{ModuleError, State, state};
use super::log;
use super::pairs::{List, Value, pair_bytes, pair_integer, request_pair};
use crate::policy::{
    self, Accept, Address, AuthorizeInput, Chap, ClientDecision, Credential, Credentials, Decision,
    RejectReason, ServiceKind,
};

/// The Message-Authenticator placeholder; the server computes the real HMAC-MD5 when it
/// encodes the reply (FreeRADIUS 3.2.1 adds none by itself, and RouterOS v7 requires one).
const MESSAGE_AUTHENTICATOR_PLACEHOLDER: [u8; 16] = [0; 16];

/// `authorize`: answer a user's Access-Request, or (with `dynamic_clients = yes`) a
/// dynamic-client lookup.
///
/// # Safety
/// Called by radiusd with this module's instance block and a live request.
pub(super) unsafe extern "C" fn mod_authorize(
    instance: *mut c_void,
    request: *mut fr::REQUEST,
) -> fr::rlm_rcode_t {
    guard("authorize", fr::RLM_MODULE_FAIL, || {
        // SAFETY: function contract.
        let result = unsafe { state(instance) }.and_then(|state| {
            refresh(state);
            if state.dynamic_clients {
                // SAFETY: `request` is live for this callback (function contract).
                unsafe { authorize_client(state, request) }
            } else {
                // SAFETY: as above.
                unsafe { authorize_user(state, request) }
            }
        });
        result.unwrap_or_else(|error| {
            // SAFETY: as above.
            unsafe { log::request_error(request, &format!("rlm_jasiyo: {error}")) };
            error.rcode()
        })
    })
}

/// `accounting`: append the Accounting-Request, as received, to the journal. `ok` (so radiusd
/// sends the Accounting-Response) only once the append succeeded; any failure (journal not
/// open, full, record too large) returns `fail`, radiusd sends no response and the router
/// retransmits (RFC 2866: no reply unless the packet was recorded). Without a configured
/// journal: `noop`.
///
/// # Safety
/// Called by radiusd with this module's instance block and a live request.
pub(super) unsafe extern "C" fn mod_accounting(
    instance: *mut c_void,
    request: *mut fr::REQUEST,
) -> fr::rlm_rcode_t {
    guard("accounting", fr::RLM_MODULE_FAIL, || {
        // SAFETY: function contract.
        let result = unsafe { state(instance) }.and_then(|state| {
            let Some(journal) = &state.journal else {
                return Ok(fr::RLM_MODULE_NOOP);
            };
            // SAFETY: `request` is live for this callback (function contract). A packet
            // without raw bytes is an error of this request: logged with it.
            let record = unsafe { accounting_record(request) }?;
            match journal.append(&record, unix_now_ms()) {
                Ok(position) => {
                    // SAFETY: as above.
                    if unsafe { log::debug_enabled(request) } {
                        // SAFETY: as above.
                        unsafe {
                            log::request_debug(
                                request,
                                &format!("journaled at position {position}"),
                            );
                        }
                    }
                    Ok(fr::RLM_MODULE_OK)
                }
                Err(failure) => {
                    // Under load a full journal fails every packet: one log line per
                    // interval, not one per packet.
                    if journal.should_log(unix_now_ms()) {
                        log::global(
                            fr::L_ERR,
                            &format!(
                                "{}: accounting not recorded: {failure}; no Accounting-Response \
                                 until it can be (routers retransmit)",
                                state.label
                            ),
                        );
                    }
                    Ok(ModuleError::Journal(failure).rcode())
                }
            }
        });
        result.unwrap_or_else(|error| {
            // SAFETY: as above.
            unsafe { log::request_error(request, &format!("rlm_jasiyo: {error}")) };
            error.rcode()
        })
    })
}

/// The journal record of the current Accounting-Request: the raw packet radiusd received
/// (`request->packet->data`, still attached while the accounting section runs), when and
/// from where.
///
/// # Safety
/// `request` is the live request of the current callback.
unsafe fn accounting_record(request: *mut fr::REQUEST) -> Result<JournalRecord, ModuleError> {
    // SAFETY: caller contract: the packet, when present, is live for the callback.
    let packet = unsafe { (*request).packet.as_ref() }.ok_or(ModuleError::NoRawPacket)?;
    // A packet that did not come from a socket (e.g. read back from a detail file) has no
    // raw bytes; 20 is the RADIUS header, the least a received packet has.
    if packet.data.is_null() || packet.data_len < 20 {
        return Err(ModuleError::NoRawPacket);
    }
    // SAFETY: `data` points at `data_len` bytes owned by the packet (checked non-null),
    // which outlive this copy.
    let raw = unsafe { core::slice::from_raw_parts(packet.data, packet.data_len) }.to_vec();
    // SAFETY: caller contract.
    let ip = unsafe { source_ip(request) }.ok_or(ModuleError::NoRawPacket)?;
    // `time_t` and `suseconds_t` are i64 on the 64-bit targets we build for.
    let received_at_ms = packet
        .timestamp
        .tv_sec
        .saturating_mul(1000)
        .saturating_add(packet.timestamp.tv_usec / 1000);
    Ok(JournalRecord::Accounting {
        received_at_ms,
        source: SocketAddr::new(ip, packet.src_port),
        packet: raw,
    })
}

/// `post-auth`: make sure every Access-Accept and Access-Reject carries a
/// Message-Authenticator, including rejects from pap/chap/mschap (wrong password), and that
/// every Access-Reject says why (a generic Reply-Message when nothing else set one).
///
/// # Safety
/// Called by radiusd with this module's instance block and a live request.
pub(super) unsafe extern "C" fn mod_post_auth(
    instance: *mut c_void,
    request: *mut fr::REQUEST,
) -> fr::rlm_rcode_t {
    guard("post-auth", fr::RLM_MODULE_FAIL, || {
        // SAFETY: function contract.
        let result = unsafe { state(instance) }.and_then(|state| {
            // SAFETY: `request` is live for this callback (function contract).
            let Some(reply) = (unsafe { List::reply(request) }) else {
                return Ok(fr::RLM_MODULE_NOOP);
            };
            let attrs = &state.attrs;
            let mut rcode = fr::RLM_MODULE_NOOP;
            // SAFETY: the reply list and packet are live; Reply-Message is a string and
            // Message-Authenticator an octets attribute.
            unsafe {
                let is_reject = (*(*request).reply).code == fr::JASIYO_PW_CODE_ACCESS_REJECT as u32;
                if is_reject && !reply.contains(attrs.reply_message) {
                    let message = RejectReason::BadCredentials.message();
                    reply.set(
                        attrs.reply_message,
                        fr::T_OP_EQ,
                        Value::Text(message.as_bytes()),
                    )?;
                    rcode = fr::RLM_MODULE_OK;
                }
                if !reply.contains(attrs.message_authenticator) {
                    add_message_authenticator(state, reply)?;
                    rcode = fr::RLM_MODULE_OK;
                }
            }
            // SAFETY: as above.
            unsafe { journal_auth_result(state, request, reply) };
            Ok(rcode)
        });
        result.unwrap_or_else(|error| {
            // SAFETY: as above.
            unsafe { log::request_error(request, &format!("rlm_jasiyo: {error}")) };
            error.rcode()
        })
    })
}

/// Appends the outcome of an Access-Request (accept, or reject and why) to the journal, for
/// the daemon's auth log. Best effort: a failure is logged (at most once per interval) and
/// never changes the answer.
///
/// # Safety
/// `request` is the live request of the current post-auth callback and `reply` its reply list.
unsafe fn journal_auth_result(state: &State, request: *mut fr::REQUEST, reply: List) {
    let Some(journal) = &state.journal else {
        return;
    };
    let attrs = &state.attrs;
    let text = |vp: &fr::VALUE_PAIR| {
        // SAFETY: only called on string attributes below.
        String::from_utf8_lossy(unsafe { pair_bytes(vp) }).into_owned()
    };
    let snapshot = state.reader.current();
    // SAFETY: caller contract; User-Name, NAS-Identifier, Calling-Station-Id and
    // Reply-Message are string attributes, copied before the callback returns.
    let record = unsafe {
        let code = (*(*request).reply).code;
        let accepted = code == fr::JASIYO_PW_CODE_ACCESS_ACCEPT as u32;
        if !accepted && code != fr::JASIYO_PW_CODE_ACCESS_REJECT as u32 {
            return;
        }
        let Some(ip) = source_ip(request) else {
            return;
        };
        let port = (*request).packet.as_ref().map_or(0, |p| p.src_port);
        let user_name = request_pair(request, attrs.user_name).map_or(&[][..], |vp| pair_bytes(vp));
        // A voucher is journaled under its lookup name: its code never reaches the database.
        let name = policy::journal_name(&snapshot, &state.config, user_name);
        JournalRecord::AuthResult {
            at_ms: unix_now_ms(),
            source: SocketAddr::new(ip, port),
            username: String::from_utf8_lossy(name.username).into_owned(),
            nas_identifier: request_pair(request, attrs.nas_identifier).map(text),
            calling_station_id: request_pair(request, attrs.calling_station_id).map(text),
            accepted,
            reason: if accepted {
                name.unused_voucher
                    .then(|| policy::VOUCHER_FIRST_USE.to_owned())
            } else {
                reply.find(attrs.reply_message).map(text)
            },
        }
    };
    if let Err(error) = journal.append(&record, unix_now_ms())
        && journal.should_log(unix_now_ms())
    {
        log::global(
            fr::L_WARN,
            &format!(
                "{}: auth result not journaled (the answer is unchanged): {error}",
                state.label
            ),
        );
    }
}

/// Follows the daemon's publications: one atomic load unless a new generation was announced.
fn refresh(state: &State) {
    match state.reader.refresh() {
        Refresh::Unchanged => {}
        Refresh::Loaded { generation } => log::global(
            fr::L_INFO,
            &format!("{}: loaded snapshot generation {generation}", state.label),
        ),
        Refresh::Refused { generation, error } => log::global(
            fr::L_ERR,
            &format!(
                "{}: refused snapshot generation {generation}, keeping generation {}: {error}",
                state.label,
                state.reader.current().generation()
            ),
        ),
        other => log::global(
            fr::L_INFO,
            &format!("{}: snapshot refresh: {other:?}", state.label),
        ),
    }
}

/// Wall clock in Unix milliseconds.
pub(super) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// # Safety
/// `request` is the live request of the current authorize callback.
unsafe fn authorize_user(
    state: &State,
    request: *mut fr::REQUEST,
) -> Result<fr::rlm_rcode_t, ModuleError> {
    let attrs = &state.attrs;
    // SAFETY: the request is live; each attribute is read with the accessor of its dictionary
    // type (User-Name and Calling-Station-Id: string; Service-Type and Framed-Protocol:
    // integer), and the borrowed bytes are used only within this callback.
    let (username, calling_station_id, service, credentials) = unsafe {
        let Some(user_name) = request_pair(request, attrs.user_name) else {
            return Ok(fr::RLM_MODULE_NOOP);
        };
        let service = ServiceKind::detect(
            request_pair(request, attrs.service_type).map(|vp| pair_integer(vp)),
            request_pair(request, attrs.framed_protocol).map(|vp| pair_integer(vp)),
            request_pair(request, attrs.mikrotik_host_ip).is_some(),
        );
        (
            pair_bytes(user_name),
            request_pair(request, attrs.calling_station_id).map(|vp| pair_bytes(vp)),
            service,
            credentials(state, request),
        )
    };
    let input = AuthorizeInput {
        username,
        service,
        calling_station_id,
        now: unix_now(),
        credentials,
    };
    let snapshot = state.reader.current();
    let decision = policy::authorize(&snapshot, &state.config, &input);
    // SAFETY: the request is live (function contract).
    let debug = unsafe { log::debug_enabled(request) };
    match decision {
        Decision::NotFound => {
            if debug {
                // SAFETY: as above.
                unsafe {
                    log::request_debug(
                        request,
                        &format!(
                            "user \"{}\" not in snapshot generation {}",
                            String::from_utf8_lossy(username),
                            snapshot.generation()
                        ),
                    );
                }
            }
            Ok(fr::RLM_MODULE_NOTFOUND)
        }
        Decision::Reject(reason) => {
            if debug {
                // SAFETY: as above.
                unsafe {
                    log::request_debug(
                        request,
                        &format!(
                            "reject \"{}\": {}",
                            String::from_utf8_lossy(username),
                            reason.message()
                        ),
                    );
                }
            }
            // SAFETY: as above.
            unsafe { log::failure_message(request, reason.message()) };
            // SAFETY: as above.
            let reply = unsafe { List::reply(request) };
            if let Some(reply) = reply {
                // SAFETY: the reply list is live; Reply-Message is a string attribute.
                unsafe {
                    reply.set(
                        attrs.reply_message,
                        fr::T_OP_EQ,
                        Value::Text(reason.message().as_bytes()),
                    )?;
                    add_message_authenticator(state, reply)?;
                }
            }
            Ok(fr::RLM_MODULE_REJECT)
        }
        Decision::Accept(accept) => {
            if debug {
                // SAFETY: as above.
                unsafe { log::request_debug(request, &describe(&accept, input.username)) };
            }
            // SAFETY: as above.
            unsafe { apply_accept(state, request, &accept) }?;
            Ok(fr::RLM_MODULE_UPDATED)
        }
    }
}

/// The request's PAP or CHAP credentials (vouchers' are checked by the module).
///
/// # Safety
/// `request` is the live request of the current authorize callback; the borrowed bytes are
/// used only within it.
unsafe fn credentials<'r>(state: &State, request: *mut fr::REQUEST) -> Credentials<'r> {
    let attrs = &state.attrs;
    // SAFETY: caller contract; User-Password is a string attribute (radiusd decrypted it on
    // receipt), CHAP-Password and CHAP-Challenge octets; the packet's vector is 16 bytes it
    // owns.
    unsafe {
        let chap = request_pair(request, attrs.chap_password).map(|vp| Chap {
            password: pair_bytes(vp),
            challenge: match request_pair(request, attrs.chap_challenge) {
                Some(challenge) => pair_bytes(challenge),
                // RFC 2865 §5.3: without CHAP-Challenge the Request Authenticator is it.
                None => (*request)
                    .packet
                    .as_ref()
                    .map_or(&[][..], |packet| &packet.vector[..]),
            },
        });
        Credentials {
            user_password: request_pair(request, attrs.user_password).map(|vp| pair_bytes(vp)),
            chap,
        }
    }
}

fn describe(accept: &Accept<'_>, user_name: &[u8]) -> String {
    format!(
        "accept \"{}\" (subscriber {} \"{}\"{}): Session-Timeout {}, Mikrotik-Rate-Limit \"{}\"{}",
        String::from_utf8_lossy(user_name),
        accept.subscriber_id,
        String::from_utf8_lossy(accept.username),
        match (accept.credential, accept.first_use) {
            (Credential::MacLogin, _) => ", MAC login",
            (Credential::Voucher, true) => ", voucher, first use",
            (Credential::Voucher, false) => ", voucher",
            (Credential::Password(_), _) => "",
        },
        accept.session_timeout,
        String::from_utf8_lossy(accept.rate_limit),
        if accept.fair_use {
            " (data used up: fair-use rate)"
        } else {
            ""
        },
    )
}

/// # Safety
/// `request` is the live request of the current authorize callback.
unsafe fn apply_accept(
    state: &State,
    request: *mut fr::REQUEST,
    accept: &Accept<'_>,
) -> Result<(), ModuleError> {
    let attrs = &state.attrs;
    // SAFETY: the request is live (caller contract); every `set` below pairs an attribute with
    // a value of its dictionary type: Cleartext-Password, Reply-Message, Framed-Pool and
    // Mikrotik-Rate-Limit are strings; Auth-Type, Session-Timeout, Acct-Interim-Interval and
    // Mikrotik-Total-Limit(-Gigawords) integers; Framed-IP-Address an ipaddr.
    unsafe {
        let control = List::control(request);
        match accept.credential {
            Credential::Password(password) => control.set(
                attrs.cleartext_password,
                fr::T_OP_SET,
                Value::Text(password),
            )?,
            Credential::MacLogin | Credential::Voucher => control.set(
                attrs.auth_type,
                fr::T_OP_SET,
                Value::Integer(fr::JASIYO_PW_AUTH_TYPE_ACCEPT as u32),
            )?,
        }
        let Some(reply) = List::reply(request) else {
            return Ok(());
        };
        if !accept.rate_limit.is_empty() {
            reply.set(
                attrs.mikrotik_rate_limit,
                fr::T_OP_EQ,
                Value::Text(accept.rate_limit),
            )?;
        }
        reply.set(
            attrs.session_timeout,
            fr::T_OP_EQ,
            Value::Integer(accept.session_timeout),
        )?;
        if accept.acct_interim_interval > 0 {
            reply.set(
                attrs.acct_interim_interval,
                fr::T_OP_EQ,
                Value::Integer(accept.acct_interim_interval),
            )?;
        }
        match accept.address {
            Address::Static(ip) => {
                reply.set(attrs.framed_ip_address, fr::T_OP_EQ, Value::Ipv4(ip))?;
            }
            Address::Pool(pool) => reply.set(attrs.framed_pool, fr::T_OP_EQ, Value::Text(pool))?,
            Address::RouterDefault => {}
        }
        if let Some(total) = accept.total_limit {
            reply.set(
                attrs.mikrotik_total_limit,
                fr::T_OP_EQ,
                Value::Integer(total.limit),
            )?;
            reply.set(
                attrs.mikrotik_total_limit_gigawords,
                fr::T_OP_EQ,
                Value::Integer(total.gigawords),
            )?;
        }
        add_message_authenticator(state, reply)?;
    }
    Ok(())
}

/// # Safety
/// `reply` is the live reply list of the current callback.
unsafe fn add_message_authenticator(state: &State, reply: List) -> Result<(), ModuleError> {
    // SAFETY: caller contract; Message-Authenticator is an octets attribute.
    unsafe {
        reply.set(
            state.attrs.message_authenticator,
            fr::T_OP_EQ,
            Value::Octets(&MESSAGE_AUTHENTICATOR_PLACEHOLDER),
        )
    }
}

/// The packet's source address (the NAS), from `request->packet->src_ipaddr`.
///
/// # Safety
/// `request` is the live request of the current callback.
unsafe fn source_ip(request: *mut fr::REQUEST) -> Option<IpAddr> {
    // SAFETY: caller contract; `af` says which union member is valid.
    unsafe {
        let packet = (*request).packet.as_ref()?;
        let addr = &packet.src_ipaddr;
        match addr.af {
            libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::from(
                addr.ipaddr.ip4addr.s_addr.to_ne_bytes(),
            ))),
            libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
                addr.ipaddr.ip6addr.__in6_u.__u6_addr8,
            ))),
            _ => None,
        }
    }
}

/// Answers FreeRADIUS's dynamic-clients virtual server: defines the client from the router
/// whose address the packet came from, or `notfound` (the packet is then ignored).
///
/// # Safety
/// `request` is the live request of the current authorize callback.
unsafe fn authorize_client(
    state: &State,
    request: *mut fr::REQUEST,
) -> Result<fr::rlm_rcode_t, ModuleError> {
    // SAFETY: caller contract.
    let Some(source) = (unsafe { source_ip(request) }) else {
        return Ok(fr::RLM_MODULE_NOTFOUND);
    };
    let snapshot = state.reader.current();
    let Some(ClientDecision {
        secret,
        shortname,
        nas_type,
    }) = policy::dynamic_client(&snapshot, source)
    else {
        log::global(
            fr::L_INFO,
            &format!(
                "{}: no router with address {source} in snapshot generation {}",
                state.label,
                snapshot.generation()
            ),
        );
        return Ok(fr::RLM_MODULE_NOTFOUND);
    };
    let attrs = &state.attrs;
    // SAFETY: caller contract; each attribute gets a value of its dictionary type
    // (IP-Address ipaddr, IPv6-Address ipv6addr, Require-MA integer, the rest strings).
    unsafe {
        let control = List::control(request);
        match source {
            IpAddr::V4(ip) => {
                control.set(attrs.client_ip_address, fr::T_OP_SET, Value::Ipv4(ip))?
            }
            IpAddr::V6(ip) => {
                control.set(attrs.client_ipv6_address, fr::T_OP_SET, Value::Ipv6(ip))?;
            }
        }
        control.set(attrs.client_require_ma, fr::T_OP_SET, Value::Integer(0))?;
        control.set(attrs.client_secret, fr::T_OP_SET, Value::Text(secret))?;
        let shortname = if shortname.is_empty() {
            nas_type.as_bytes()
        } else {
            shortname
        };
        control.set(attrs.client_shortname, fr::T_OP_SET, Value::Text(shortname))?;
        control.set(
            attrs.client_nas_type,
            fr::T_OP_SET,
            Value::Text(nas_type.as_bytes()),
        )?;
    }
    log::global(
        fr::L_INFO,
        &format!(
            "{}: defined dynamic client {source} (\"{}\") from snapshot generation {}",
            state.label,
            String::from_utf8_lossy(shortname),
            snapshot.generation()
        ),
    );
    Ok(fr::RLM_MODULE_UPDATED)
}
