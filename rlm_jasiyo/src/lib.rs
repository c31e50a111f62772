//! `rlm_jasiyo`: a FreeRADIUS 3.2 module that authorizes MikroTik PPPoE and Hotspot users from
//! the subscriber snapshot billing-daemon publishes, with no database call on the request path,
//! and hands accounting requests and post-auth results to billing-daemon through the journal.
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

pub mod journal;
pub mod panic_guard;
pub mod policy;

#[cfg(all(feature = "module", not(test)))]
mod ffi;
