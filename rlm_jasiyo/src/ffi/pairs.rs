//! Dictionary attributes (resolved once per instance) and reading/writing `VALUE_PAIR`s.
//!
//! Every new pair is allocated by the server (`fr_pair_afrom_da`) as a talloc child of the
//! list's owner, and its value is copied into server memory (`fr_pair_value_bstrncpy`,
//! `fr_pair_value_memcpy`); no Rust-owned memory ever ends up in a pair.

use core::ffi::{CStr, c_void};
use std::net::{Ipv4Addr, Ipv6Addr};

use jasiyo::freeradius as fr;

use super::instance::ModuleError;

/// `DICT_ATTR` pointers for every attribute the module reads or writes. Dictionary entries
/// live as long as the server's dictionary, which outlives module instances.
pub(super) struct Attrs {
    // Request.
    pub user_name: *const fr::DICT_ATTR,
    pub service_type: *const fr::DICT_ATTR,
    pub framed_protocol: *const fr::DICT_ATTR,
    pub calling_station_id: *const fr::DICT_ATTR,
    pub nas_identifier: *const fr::DICT_ATTR,
    pub mikrotik_host_ip: *const fr::DICT_ATTR,
    pub user_password: *const fr::DICT_ATTR,
    pub chap_password: *const fr::DICT_ATTR,
    pub chap_challenge: *const fr::DICT_ATTR,
    // Control.
    pub cleartext_password: *const fr::DICT_ATTR,
    pub auth_type: *const fr::DICT_ATTR,
    pub client_ip_address: *const fr::DICT_ATTR,
    pub client_ipv6_address: *const fr::DICT_ATTR,
    pub client_require_ma: *const fr::DICT_ATTR,
    pub client_secret: *const fr::DICT_ATTR,
    pub client_shortname: *const fr::DICT_ATTR,
    pub client_nas_type: *const fr::DICT_ATTR,
    // Reply.
    pub reply_message: *const fr::DICT_ATTR,
    pub message_authenticator: *const fr::DICT_ATTR,
    pub session_timeout: *const fr::DICT_ATTR,
    pub acct_interim_interval: *const fr::DICT_ATTR,
    pub framed_ip_address: *const fr::DICT_ATTR,
    pub framed_pool: *const fr::DICT_ATTR,
    pub mikrotik_rate_limit: *const fr::DICT_ATTR,
    pub mikrotik_total_limit: *const fr::DICT_ATTR,
    pub mikrotik_total_limit_gigawords: *const fr::DICT_ATTR,
}

impl Attrs {
    /// Looks every attribute up by name.
    ///
    /// # Safety
    /// Must run on the server's main thread while the dictionary is loaded (instantiate).
    pub(super) unsafe fn resolve() -> Result<Self, ModuleError> {
        // SAFETY: forwarded from the caller.
        let get = |name: &'static CStr| unsafe { lookup(name) };
        Ok(Self {
            user_name: get(c"User-Name")?,
            service_type: get(c"Service-Type")?,
            framed_protocol: get(c"Framed-Protocol")?,
            calling_station_id: get(c"Calling-Station-Id")?,
            nas_identifier: get(c"NAS-Identifier")?,
            mikrotik_host_ip: get(c"Mikrotik-Host-IP")?,
            user_password: get(c"User-Password")?,
            chap_password: get(c"CHAP-Password")?,
            chap_challenge: get(c"CHAP-Challenge")?,
            cleartext_password: get(c"Cleartext-Password")?,
            auth_type: get(c"Auth-Type")?,
            client_ip_address: get(c"FreeRADIUS-Client-IP-Address")?,
            client_ipv6_address: get(c"FreeRADIUS-Client-IPv6-Address")?,
            client_require_ma: get(c"FreeRADIUS-Client-Require-MA")?,
            client_secret: get(c"FreeRADIUS-Client-Secret")?,
            client_shortname: get(c"FreeRADIUS-Client-Shortname")?,
            client_nas_type: get(c"FreeRADIUS-Client-NAS-Type")?,
            reply_message: get(c"Reply-Message")?,
            message_authenticator: get(c"Message-Authenticator")?,
            session_timeout: get(c"Session-Timeout")?,
            acct_interim_interval: get(c"Acct-Interim-Interval")?,
            framed_ip_address: get(c"Framed-IP-Address")?,
            framed_pool: get(c"Framed-Pool")?,
            mikrotik_rate_limit: get(c"Mikrotik-Rate-Limit")?,
            mikrotik_total_limit: get(c"Mikrotik-Total-Limit")?,
            mikrotik_total_limit_gigawords: get(c"Mikrotik-Total-Limit-Gigawords")?,
        })
    }
}

/// # Safety
/// As for [`Attrs::resolve`].
unsafe fn lookup(name: &'static CStr) -> Result<*const fr::DICT_ATTR, ModuleError> {
    // SAFETY: `name` is NUL-terminated; the dictionary is loaded (caller contract).
    let da = unsafe { fr::dict_attrbyname(name.as_ptr()) };
    if da.is_null() {
        Err(ModuleError::MissingAttribute(name))
    } else {
        Ok(da)
    }
}

/// A value to store in a new pair.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    /// `string` attributes (copied, NUL added by the server).
    Text(&'a [u8]),
    /// `octets` attributes.
    Octets(&'a [u8]),
    /// `integer` attributes.
    Integer(u32),
    /// `ipaddr` attributes.
    Ipv4(Ipv4Addr),
    /// `ipv6addr` attributes.
    Ipv6(Ipv6Addr),
}

/// One of the request's pair lists, with the talloc context new pairs must belong to.
#[derive(Clone, Copy)]
pub(super) struct List {
    ctx: *mut c_void,
    head: *mut *mut fr::VALUE_PAIR,
}

impl List {
    /// The reply list (`request->reply->vps`, owned by `request->reply`).
    ///
    /// # Safety
    /// `request` must be the live request of the current callback, with a reply packet.
    pub(super) unsafe fn reply(request: *mut fr::REQUEST) -> Option<Self> {
        // SAFETY: caller contract; the reply packet may be absent, hence the null check.
        unsafe {
            let reply = (*request).reply;
            (!reply.is_null()).then(|| Self {
                ctx: reply.cast(),
                head: &raw mut (*reply).vps,
            })
        }
    }

    /// The control list (`request->config`, owned by `request`).
    ///
    /// # Safety
    /// `request` must be the live request of the current callback.
    pub(super) unsafe fn control(request: *mut fr::REQUEST) -> Self {
        Self {
            ctx: request.cast(),
            // SAFETY: caller contract.
            head: unsafe { &raw mut (*request).config },
        }
    }

    /// Whether the list holds an attribute `da`.
    ///
    /// # Safety
    /// The list must still be live (same callback) and `da` a dictionary attribute.
    pub(super) unsafe fn contains(self, da: *const fr::DICT_ATTR) -> bool {
        // SAFETY: caller contract; `fr_pair_find_by_da` only walks the list.
        unsafe { !fr::fr_pair_find_by_da(*self.head, da, fr::JASIYO_TAG_ANY as i8).is_null() }
    }

    /// The first pair of attribute `da` in the list.
    ///
    /// # Safety
    /// The list must still be live (same callback) and `da` a dictionary attribute; the
    /// returned reference must not outlive the callback.
    pub(super) unsafe fn find<'r>(self, da: *const fr::DICT_ATTR) -> Option<&'r fr::VALUE_PAIR> {
        // SAFETY: caller contract; the pair is owned by the list's owner, which lives until
        // the request is freed.
        unsafe { fr::fr_pair_find_by_da(*self.head, da, fr::JASIYO_TAG_ANY as i8).as_ref() }
    }

    /// Sets `da` to `value` with operator `op`, replacing an existing pair of the same
    /// attribute, or appending.
    ///
    /// # Safety
    /// The list must still be live (same callback), and `da` must be a dictionary attribute
    /// whose type matches `value` (string/octets/integer/ipaddr/ipv6addr).
    pub(super) unsafe fn set(
        self,
        da: *const fr::DICT_ATTR,
        op: fr::FR_TOKEN,
        value: Value<'_>,
    ) -> Result<(), ModuleError> {
        // SAFETY: `ctx` is the list owner (a talloc context) and `da` a dictionary attribute.
        let vp = unsafe { fr::fr_pair_afrom_da(self.ctx, da) };
        if vp.is_null() {
            return Err(ModuleError::OutOfMemory);
        }
        // SAFETY: `vp` is a fresh, exclusively owned pair; the value setters copy the bytes
        // into memory owned by `vp`, and the union member written matches the attribute
        // type (caller contract). `fr_pair_replace` then links it into the live list.
        unsafe {
            (*vp).op = op;
            match value {
                Value::Text(bytes) => {
                    fr::fr_pair_value_bstrncpy(vp, bytes.as_ptr().cast(), bytes.len());
                }
                Value::Octets(bytes) => fr::fr_pair_value_memcpy(vp, bytes.as_ptr(), bytes.len()),
                Value::Integer(n) => {
                    (*vp).data.integer = n;
                    (*vp).length = 4;
                    (*vp).type_ = fr::VT_DATA;
                }
                Value::Ipv4(ip) => {
                    // `s_addr` holds the address in network byte order.
                    (*vp).data.ipaddr.s_addr = u32::from_ne_bytes(ip.octets());
                    (*vp).length = 4;
                    (*vp).type_ = fr::VT_DATA;
                }
                Value::Ipv6(ip) => {
                    (*vp).data.ipv6addr.__in6_u.__u6_addr8 = ip.octets();
                    (*vp).length = 16;
                    (*vp).type_ = fr::VT_DATA;
                }
            }
            fr::fr_pair_replace(self.head, vp);
        }
        Ok(())
    }
}

/// The first pair of attribute `da` in the request packet (`request->packet->vps`).
///
/// # Safety
/// `request` must be the live request of the current callback; the returned reference must
/// not outlive the callback.
pub(super) unsafe fn request_pair<'r>(
    request: *mut fr::REQUEST,
    da: *const fr::DICT_ATTR,
) -> Option<&'r fr::VALUE_PAIR> {
    // SAFETY: caller contract; pairs of the request packet live until the request is freed.
    unsafe {
        let packet = (*request).packet;
        if packet.is_null() {
            return None;
        }
        fr::fr_pair_find_by_da((*packet).vps, da, fr::JASIYO_TAG_ANY as i8).as_ref()
    }
}

/// The bytes of a `string` (or `octets`) pair.
///
/// # Safety
/// `vp` must be a string or octets pair.
pub(super) unsafe fn pair_bytes(vp: &fr::VALUE_PAIR) -> &[u8] {
    // SAFETY: for string/octets pairs the union holds a pointer to `length` bytes owned by
    // the pair (caller contract on the type).
    unsafe {
        let data = vp.data.octets;
        if data.is_null() {
            &[]
        } else {
            core::slice::from_raw_parts(data, vp.length)
        }
    }
}

/// The value of an `integer` pair.
///
/// # Safety
/// `vp` must be an integer pair.
pub(super) unsafe fn pair_integer(vp: &fr::VALUE_PAIR) -> u32 {
    // SAFETY: integer pairs store their value in `data.integer` (caller contract).
    unsafe { vp.data.integer }
}
