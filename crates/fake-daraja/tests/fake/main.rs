//! Tests of the fake Daraja itself, driven with raw HTTP calls (no project client), so the
//! fake is checked against the reference on its own.

mod c2b;
mod oauth;
mod status;
mod stk;
mod support;
