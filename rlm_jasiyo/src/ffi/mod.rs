//! The FreeRADIUS side: the exported `module_t`, its configuration table and the `extern "C"`
//! callbacks. Deliberately thin: read attributes, call [`crate::policy`], write attributes.
//!
//! State lives in the instance block FreeRADIUS allocates per configured instance (a pointer
//! to a boxed [`instance::State`]), never in globals: on HUP the server instantiates the new
//! instance before it detaches the old one, so two can be alive at once.
//!
//! Every callback body runs inside [`guard`]: a panic is caught, logged and turned into
//! `RLM_MODULE_FAIL` (or `-1` for instantiate) instead of unwinding into C, which would abort
//! radiusd.

mod guard;
mod instance;
mod log;
mod pairs;
mod request;

use core::ffi::{c_char, c_int, c_void};
use core::mem::offset_of;
use core::ptr;

use jasiyo::freeradius as fr;

use instance::Instance;

/// `module_t` with a `Sync` promise so it can be a plain (non-`mut`) exported static.
#[repr(transparent)]
pub(crate) struct ModuleExport(fr::module_t);

// SAFETY: radiusd only reads the export (it holds it as `module_t const *`), and every pointer
// in it refers to immutable 'static data (C string literals, `CONFIG`, functions).
unsafe impl Sync for ModuleExport {}

/// The configuration table (`CONF_PARSER[]`), terminated by `{NULL, -1, 0, NULL, NULL}`.
#[repr(transparent)]
struct ConfigTable([fr::CONF_PARSER; 7]);

// SAFETY: read-only for the whole process lifetime; the pointers are to 'static C strings.
unsafe impl Sync for ConfigTable {}

const fn conf_type(base: fr::PW_TYPE, flags: fr::jasiyo_constants) -> c_int {
    // Both are small non-negative C enum values (a type code and flag bits below 1 << 20).
    (base as c_int) | flags
}

static CONFIG: ConfigTable = ConfigTable([
    fr::CONF_PARSER {
        name: c"snapshot_dir".as_ptr(),
        type_: conf_type(
            fr::PW_TYPE_STRING,
            fr::JASIYO_PW_TYPE_REQUIRED | fr::JASIYO_PW_TYPE_NOT_EMPTY,
        ),
        offset: offset_of!(Instance, snapshot_dir),
        data: ptr::null_mut(),
        dflt: ptr::null(),
    },
    fr::CONF_PARSER {
        name: c"unknown_user".as_ptr(),
        type_: conf_type(fr::PW_TYPE_STRING, 0),
        offset: offset_of!(Instance, unknown_user),
        data: ptr::null_mut(),
        dflt: c"notfound".as_ptr().cast::<c_void>(),
    },
    fr::CONF_PARSER {
        name: c"acct_interim_interval".as_ptr(),
        type_: conf_type(fr::PW_TYPE_INTEGER, 0),
        offset: offset_of!(Instance, acct_interim_interval),
        data: ptr::null_mut(),
        dflt: c"300".as_ptr().cast::<c_void>(),
    },
    fr::CONF_PARSER {
        name: c"dynamic_clients".as_ptr(),
        type_: conf_type(fr::PW_TYPE_BOOLEAN, 0),
        offset: offset_of!(Instance, dynamic_clients),
        data: ptr::null_mut(),
        dflt: c"no".as_ptr().cast::<c_void>(),
    },
    fr::CONF_PARSER {
        // Optional: without it accounting returns noop and post-auth journals nothing.
        name: c"journal".as_ptr(),
        type_: conf_type(fr::PW_TYPE_STRING, 0),
        offset: offset_of!(Instance, journal),
        data: ptr::null_mut(),
        dflt: ptr::null(),
    },
    fr::CONF_PARSER {
        // Optional: without it vouchers are off.
        name: c"voucher_key_file".as_ptr(),
        type_: conf_type(fr::PW_TYPE_STRING, 0),
        offset: offset_of!(Instance, voucher_key_file),
        data: ptr::null_mut(),
        dflt: ptr::null(),
    },
    fr::CONF_PARSER {
        name: ptr::null::<c_char>(),
        type_: -1,
        offset: 0,
        data: ptr::null_mut(),
        dflt: ptr::null(),
    },
]);

const fn methods() -> [fr::packetmethod; fr::MOD_COUNT as usize] {
    let mut methods: [fr::packetmethod; fr::MOD_COUNT as usize] = [None; fr::MOD_COUNT as usize];
    methods[fr::MOD_AUTHORIZE as usize] = Some(request::mod_authorize);
    methods[fr::MOD_ACCOUNTING as usize] = Some(request::mod_accounting);
    methods[fr::MOD_POST_AUTH as usize] = Some(request::mod_post_auth);
    methods
}

/// The symbol radiusd looks up (`"rlm_" + name`) after `dlopen("rlm_jasiyo.so")`.
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
#[used]
pub(crate) static rlm_jasiyo: ModuleExport = ModuleExport(fr::module_t {
    // The magic of the exact server version whose headers we were built against.
    magic: fr::JASIYO_RLM_MODULE_INIT,
    name: c"jasiyo".as_ptr(),
    type_: fr::JASIYO_RLM_TYPE_THREAD_SAFE | fr::JASIYO_RLM_TYPE_HUP_SAFE,
    inst_size: size_of::<Instance>(),
    config: &CONFIG.0 as *const fr::CONF_PARSER,
    bootstrap: None,
    instantiate: Some(instance::mod_instantiate),
    detach: Some(instance::mod_detach),
    methods: methods(),
});
