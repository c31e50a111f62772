//! The instance block, its Rust state, and instantiate/detach.

use core::ffi::{CStr, c_char, c_int, c_void};
use std::fmt;
use std::path::PathBuf;

use jasiyo::freeradius as fr;
use jasiyo_snapshot::voucher::{VoucherKey, VoucherKeyError};
use jasiyo_snapshot::{LoadMode, SnapshotError, SnapshotReader};

use super::guard::guard;
use super::log;
use super::pairs::Attrs;
use crate::journal::{JournalFailure, LazyJournal};
use crate::policy::{Config, UnknownUser};

/// The instance block: `inst_size` bytes FreeRADIUS allocates (zeroed, talloc) per configured
/// instance and fills from [`super::CONFIG`] before `instantiate` runs. Strings parsed into it
/// are talloc children of the block, owned by the server.
#[repr(C)]
pub(super) struct Instance {
    /// `snapshot_dir` (PW_TYPE_STRING, required).
    pub snapshot_dir: *const c_char,
    /// `unknown_user` (PW_TYPE_STRING, default "notfound").
    pub unknown_user: *const c_char,
    /// `acct_interim_interval` (PW_TYPE_INTEGER: a uint32_t).
    pub acct_interim_interval: u32,
    /// `dynamic_clients` (PW_TYPE_BOOLEAN: a C bool).
    pub dynamic_clients: bool,
    /// `journal` (PW_TYPE_STRING, optional): the accounting journal billing-daemon creates.
    pub journal: *const c_char,
    /// `voucher_key_file` (PW_TYPE_STRING, optional): the key voucher lookup names derive from.
    pub voucher_key_file: *const c_char,
    /// Set by instantiate, freed by detach: the Rust side of this instance.
    pub state: *mut State,
}

/// Everything an instance needs on the request path.
pub(super) struct State {
    /// `"rlm_jasiyo (NAME)"`, the prefix of this instance's log lines.
    pub label: String,
    pub config: Config,
    /// This instance answers the dynamic-clients virtual server instead of authorizing users.
    pub dynamic_clients: bool,
    pub reader: SnapshotReader,
    pub attrs: Attrs,
    /// The accounting journal, when `journal` is configured (never for dynamic clients).
    pub journal: Option<LazyJournal>,
}

/// What can go wrong inside the module. [`ModuleError::rcode`] is the one place that turns
/// it into a module return code.
#[derive(Debug)]
pub(super) enum ModuleError {
    /// A configuration item is missing or invalid.
    Config(String),
    /// The snapshot directory could not be opened.
    Snapshot(PathBuf, SnapshotError),
    /// A dictionary attribute the module needs is not loaded.
    MissingAttribute(&'static CStr),
    /// The instance block has no state (instantiate did not run or failed).
    NoState,
    /// The server could not allocate a pair.
    OutOfMemory,
    /// The accounting request has no raw packet to journal (see `mod_accounting`).
    NoRawPacket,
    /// The record could not be journaled.
    Journal(JournalFailure),
    /// `voucher_key_file` is set but unreadable or malformed.
    VoucherKey(VoucherKeyError),
}

impl ModuleError {
    /// The module return code for a request that hit this error.
    pub(super) fn rcode(&self) -> fr::rlm_rcode_t {
        fr::RLM_MODULE_FAIL
    }
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(message) => f.write_str(message),
            Self::Snapshot(dir, error) => write!(
                f,
                "cannot open the subscriber snapshot in {}: {error} (is billing-daemon \
                 publishing there, and can the radiusd user read it?)",
                dir.display()
            ),
            Self::MissingAttribute(name) => write!(
                f,
                "dictionary attribute {} is not defined (the MikroTik and FreeRADIUS \
                 dictionaries must be loaded)",
                name.to_string_lossy()
            ),
            Self::NoState => f.write_str("instance is not instantiated"),
            Self::OutOfMemory => f.write_str("out of memory adding an attribute"),
            Self::NoRawPacket => f.write_str(
                "the Accounting-Request has no raw packet data (not received from the network?); \
                 not journaled",
            ),
            Self::Journal(failure) => write!(f, "accounting not recorded: {failure}"),
            Self::VoucherKey(error) => write!(
                f,
                "voucher_key_file: {error} (billing-daemon creates it; radiusd's user must be \
                 able to read it; leave the item out to turn vouchers off)"
            ),
        }
    }
}

/// The instance's Rust state.
///
/// # Safety
/// `instance` must be the instance block of this module that the server passes to a
/// callback, and no `detach` may run concurrently (the server guarantees both).
pub(super) unsafe fn state<'i>(instance: *mut c_void) -> Result<&'i State, ModuleError> {
    // SAFETY: the block is an `Instance` (inst_size) and `state` is either null or the Box
    // instantiate leaked, which lives until detach (caller contract).
    unsafe {
        instance
            .cast::<Instance>()
            .as_ref()
            .and_then(|inst| inst.state.as_ref())
            .ok_or(ModuleError::NoState)
    }
}

/// Reads a parsed string item, if set.
///
/// # Safety
/// `ptr` is null or a NUL-terminated string that outlives the returned reference.
unsafe fn config_str<'a>(ptr: *const c_char) -> Option<&'a CStr> {
    // SAFETY: caller contract.
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) })
}

/// The instance's name: `jasiyo` for `jasiyo { }`, `NAME` for `jasiyo NAME { }`.
///
/// # Safety
/// `cs` is the module's configuration section (or null).
unsafe fn instance_name(cs: *mut fr::CONF_SECTION) -> String {
    if cs.is_null() {
        return "jasiyo".to_owned();
    }
    // SAFETY: `cs` is a live section; the names it returns live as long as it does and are
    // copied before returning.
    unsafe {
        let name2 = fr::cf_section_name2(cs);
        let name = if name2.is_null() {
            fr::cf_section_name1(cs)
        } else {
            name2
        };
        config_str(name).map_or_else(|| "jasiyo".to_owned(), |n| n.to_string_lossy().into_owned())
    }
}

/// Builds the state from the parsed configuration, opening the snapshot.
///
/// # Safety
/// `inst` is the parsed instance block and the dictionary is loaded (instantiate time).
unsafe fn build_state(inst: &Instance, label: String) -> Result<State, ModuleError> {
    // SAFETY: string items are null or talloc strings owned by the instance block.
    let (dir, unknown, journal, voucher_key_file) = unsafe {
        (
            config_str(inst.snapshot_dir),
            config_str(inst.unknown_user),
            config_str(inst.journal),
            config_str(inst.voucher_key_file),
        )
    };
    let dir = dir
        .and_then(|d| d.to_str().ok())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ModuleError::Config("snapshot_dir must be set to a directory".into()))?;
    let unknown = unknown.and_then(|u| u.to_str().ok()).unwrap_or("notfound");
    let unknown_user = UnknownUser::parse(unknown).ok_or_else(|| {
        ModuleError::Config(format!(
            "unknown_user = \"{unknown}\" is invalid: use \"notfound\" or \"reject\""
        ))
    })?;
    let interval = inst.acct_interim_interval;
    if interval != 0 && interval < 60 {
        return Err(ModuleError::Config(format!(
            "acct_interim_interval = {interval} is too small: RFC 2869 forbids less than 60 \
             seconds (0 omits the attribute)"
        )));
    }
    let journal = match journal {
        _ if inst.dynamic_clients => None,
        None => None,
        Some(path) if path.is_empty() => None,
        Some(path) => Some(
            path.to_str()
                .map(LazyJournal::new)
                .map_err(|_| ModuleError::Config("journal must be a UTF-8 path".into()))?,
        ),
    };
    // Only the instance that authorizes users needs the key; a bad one fails instantiate, so
    // a typo does not silently turn every voucher into an unknown user.
    let vouchers = match voucher_key_file.map(CStr::to_str) {
        _ if inst.dynamic_clients => None,
        None => None,
        Some(Ok("")) => None,
        Some(Ok(path)) => {
            Some(VoucherKey::load(std::path::Path::new(path)).map_err(ModuleError::VoucherKey)?)
        }
        Some(Err(_)) => {
            return Err(ModuleError::Config(
                "voucher_key_file must be a UTF-8 path".into(),
            ));
        }
    };
    let dir = PathBuf::from(dir);
    // The subscriber instance copies a large base into huge-page memory for fast lookups;
    // the dynamic-clients instance only reads routers, so it maps the files and shares the
    // page cache instead of holding a second private copy.
    let mode = if inst.dynamic_clients {
        LoadMode::Map
    } else {
        LoadMode::Auto
    };
    let reader =
        SnapshotReader::open_with(&dir, mode).map_err(|e| ModuleError::Snapshot(dir.clone(), e))?;
    // SAFETY: instantiate time (caller contract).
    let attrs = unsafe { Attrs::resolve() }?;
    let current = reader.current();
    log::global(
        fr::L_INFO,
        &format!(
            "{label}: opened snapshot {} generation {} ({} subscribers, {} plans, {} routers){}",
            dir.display(),
            current.generation(),
            current.subscriber_count(),
            current.plan_count(),
            current.router_count(),
            if inst.dynamic_clients {
                "; answering dynamic clients"
            } else {
                ""
            }
        ),
    );
    drop(current);
    if let Some(journal) = &journal {
        // Radiusd may start before billing-daemon created the journal: the first request
        // that finds it missing tries again (see crate::journal).
        let status = match journal.writer(super::request::unix_now_ms()) {
            Ok(_) => "opened".to_owned(),
            Err(e) => format!("not open yet, will retry on the next request: {e}"),
        };
        log::global(
            fr::L_INFO,
            &format!(
                "{label}: accounting journal {}: {status}",
                journal.path().display()
            ),
        );
    } else if !inst.dynamic_clients {
        log::global(
            fr::L_INFO,
            &format!("{label}: no journal configured: accounting returns noop"),
        );
    }
    if !inst.dynamic_clients {
        let status = match (&vouchers, voucher_key_file) {
            (Some(_), Some(path)) => format!("vouchers on (key file {})", path.to_string_lossy()),
            _ => "no voucher_key_file: vouchers off".to_owned(),
        };
        log::global(fr::L_INFO, &format!("{label}: {status}"));
    }
    Ok(State {
        label,
        config: Config {
            unknown_user,
            acct_interim_interval: interval,
            vouchers,
        },
        dynamic_clients: inst.dynamic_clients,
        reader,
        attrs,
        journal,
    })
}

/// `instantiate`: validate the configuration, open the snapshot, resolve attributes.
///
/// # Safety
/// Called by radiusd with the module's section and its freshly parsed instance block.
pub(super) unsafe extern "C" fn mod_instantiate(
    cs: *mut fr::CONF_SECTION,
    instance: *mut c_void,
) -> c_int {
    guard("instantiate", -1, || {
        // SAFETY: radiusd passes the module's section and instance block (function contract).
        let label = format!("rlm_jasiyo ({})", unsafe { instance_name(cs) });
        // SAFETY: as above; the block is `inst_size` bytes laid out as `Instance`, and no
        // other thread sees it before instantiate returns.
        let Some(inst) = (unsafe { instance.cast::<Instance>().as_mut() }) else {
            return -1;
        };
        // SAFETY: instantiate time, on the main thread (function contract).
        match unsafe { build_state(inst, label.clone()) } {
            Ok(state) => {
                inst.state = Box::into_raw(Box::new(state));
                0
            }
            Err(error) => {
                log::global(fr::L_ERR, &format!("{label}: {error}"));
                -1
            }
        }
    })
}

/// `detach` (the talloc destructor of the instance block): frees the Rust state. Runs on
/// shutdown and, after a HUP, once the replacing instance is live.
///
/// # Safety
/// Called by radiusd exactly once per instance block, when no request uses it any more.
pub(super) unsafe extern "C" fn mod_detach(instance: *mut c_void) -> c_int {
    guard("detach", 0, || {
        // SAFETY: the block is ours (function contract); taking the pointer out makes a
        // second detach a no-op.
        let state = unsafe { instance.cast::<Instance>().as_mut() }
            .map_or(core::ptr::null_mut(), |inst| {
                core::mem::replace(&mut inst.state, core::ptr::null_mut())
            });
        if !state.is_null() {
            // SAFETY: `state` came from Box::into_raw in instantiate and is dropped once.
            drop(unsafe { Box::from_raw(state) });
        }
        0
    })
}
