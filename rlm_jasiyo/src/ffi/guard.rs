//! The panic guard every `extern "C"` entry point runs in: [`crate::panic_guard::catch`]
//! reporting through radiusd's log.

use jasiyo::freeradius as fr;

use super::log;

/// Runs `body`; a panic is logged as an error and becomes `on_panic`.
pub(super) fn guard<T>(location: &'static str, on_panic: T, body: impl FnOnce() -> T) -> T {
    crate::panic_guard::catch(
        location,
        on_panic,
        |message| log::global(fr::L_ERR, message),
        body,
    )
}
