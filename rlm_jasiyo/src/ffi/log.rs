//! Logging through the server (`radlog`, `radlog_request`), always with the fixed format
//! `"%s"`, so a message can never be read as a format string. The module never writes to
//! stdout or stderr itself.

use std::ffi::CString;

use jasiyo::freeradius as fr;

/// Turns a message into a C string, replacing interior NULs (which would truncate it).
fn c_message(message: &str) -> CString {
    CString::new(message.replace('\0', "\\0")).unwrap_or_default()
}

/// A server-wide message (`L_INFO`, `L_ERR`, ...), independent of any request.
pub(super) fn global(level: fr::log_type_t, message: &str) {
    let message = c_message(message);
    // SAFETY: `radlog` is the server's variadic logger; the format is the literal "%s" and
    // the single argument is a valid NUL-terminated string that outlives the call.
    unsafe {
        fr::radlog(level, c"%s".as_ptr(), message.as_ptr());
    }
}

/// Whether debug output for `request` is on (`-X`, or the request's own debug level).
///
/// # Safety
/// `request` must be the live request of the current callback.
pub(super) unsafe fn debug_enabled(request: *mut fr::REQUEST) -> bool {
    // SAFETY: the caller passes the request the server handed to this callback.
    unsafe { fr::radlog_debug_enabled(fr::L_DBG, fr::L_DBG_LVL_1, request) }
}

/// A debug line attached to `request` (like `RDEBUG`); printed only when debugging is on.
/// Callers should check [`debug_enabled`] first to avoid formatting for nothing.
///
/// # Safety
/// `request` must be the live request of the current callback.
pub(super) unsafe fn request_debug(request: *mut fr::REQUEST, message: &str) {
    let message = c_message(message);
    // SAFETY: as for `global`; `request` is live (caller contract).
    unsafe {
        fr::radlog_request(
            fr::L_DBG,
            fr::L_DBG_LVL_1,
            request,
            c"%s".as_ptr(),
            message.as_ptr(),
        );
    }
}

/// An error attached to `request`, always logged (like `RERROR`).
///
/// # Safety
/// `request` must be the live request of the current callback.
pub(super) unsafe fn request_error(request: *mut fr::REQUEST, message: &str) {
    let message = c_message(message);
    // SAFETY: as for `global`; `request` is live (caller contract).
    unsafe {
        fr::radlog_request(
            fr::L_ERR,
            fr::L_DBG_LVL_OFF,
            request,
            c"%s".as_ptr(),
            message.as_ptr(),
        );
    }
}

/// Records why the module failed or rejected the request (`Module-Failure-Message`), which
/// the server's auth log prints as "Login incorrect (jasiyo: MESSAGE)".
///
/// # Safety
/// `request` must be the live request of the current callback.
pub(super) unsafe fn failure_message(request: *mut fr::REQUEST, message: &str) {
    let message = c_message(message);
    // SAFETY: as for `global`; `request` is live (caller contract).
    unsafe {
        fr::module_failure_msg(request, c"%s".as_ptr(), message.as_ptr());
    }
}
