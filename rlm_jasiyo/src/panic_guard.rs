//! Catching panics before they reach radiusd (the pgrx pattern), kept apart from the FFI so
//! it can be tested without the server's symbols.
//!
//! Since Rust 1.81 a panic unwinding out of an `extern "C"` function aborts the process,
//! which would take radiusd and every request in flight with it. Every entry point therefore
//! runs its body through [`catch`], which turns a panic into the entry point's failure value
//! (`RLM_MODULE_FAIL`, or -1 for instantiate) after reporting it once.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `body`; if it panics, calls `report` with `"rlm_jasiyo: panic in WHERE: MESSAGE"` and
/// returns `on_panic`.
///
/// `AssertUnwindSafe` is sound here: after a panic the entry point returns a failure code and
/// touches nothing the closure may have left half-updated (instance state is only read on the
/// request path, and the snapshot reader's invariants survive a panicking reader).
pub fn catch<T>(
    location: &'static str,
    on_panic: T,
    report: impl Fn(&str),
    body: impl FnOnce() -> T,
) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            // Reporting allocates and calls into the server; if even that panics, give up
            // quietly rather than unwind.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                report(&format!("rlm_jasiyo: panic in {location}: {message}"));
            }));
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    const FAIL: i32 = 1;

    #[test]
    fn a_normal_return_passes_through() {
        let reports = RefCell::new(Vec::new());
        let value = catch(
            "authorize",
            FAIL,
            |m| reports.borrow_mut().push(m.to_owned()),
            || 2,
        );
        assert_eq!(value, 2);
        assert!(reports.borrow().is_empty());
    }

    #[test]
    fn a_panic_becomes_the_failure_value_and_is_reported_once() {
        let reports = RefCell::new(Vec::new());
        let value = catch(
            "authorize",
            FAIL,
            |m| reports.borrow_mut().push(m.to_owned()),
            || -> i32 { panic!("index out of bounds: {}", 7) },
        );
        assert_eq!(value, FAIL);
        assert_eq!(
            *reports.borrow(),
            ["rlm_jasiyo: panic in authorize: index out of bounds: 7"]
        );
    }

    #[test]
    fn a_panicking_reporter_does_not_escape() {
        let value = catch(
            "post-auth",
            FAIL,
            |_| panic!("the logger broke too"),
            || -> i32 { panic!("first") },
        );
        assert_eq!(value, FAIL);
    }

    #[test]
    fn non_string_payloads_are_described() {
        let reports = RefCell::new(Vec::new());
        catch(
            "detach",
            0,
            |m| reports.borrow_mut().push(m.to_owned()),
            || std::panic::panic_any(42u8),
        );
        assert_eq!(
            *reports.borrow(),
            ["rlm_jasiyo: panic in detach: (non-string panic payload)"]
        );
    }
}
