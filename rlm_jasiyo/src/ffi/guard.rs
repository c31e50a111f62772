//! The panic guard every `extern "C"` entry point runs in (the pgrx pattern).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use jasiyo::freeradius as fr;

use super::log;

/// Runs `body`; a panic becomes `on_panic` after logging `"rlm_jasiyo: panic in WHERE: MSG"`.
///
/// `AssertUnwindSafe` is sound here: after a panic the callback returns a failure code and
/// touches nothing the closure may have left half-updated (instance state is only read on the
/// request path, and the snapshot reader's own invariants survive a panicking reader).
pub(super) fn guard<T>(location: &'static str, on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            // Logging allocates; if even that panics, give up quietly rather than unwind.
            let _ = catch_unwind(|| {
                log::global(
                    fr::L_ERR,
                    &format!("rlm_jasiyo: panic in {location}: {message}"),
                );
            });
            on_panic
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}
