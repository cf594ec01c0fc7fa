//! The guests built from `guests/` by `host/build.rs`: the TechEmpower and
//! wiki guests embedded in the binary (for `percore demo`), and the path of
//! every guest's component (for tests and benches).

#![allow(
    missing_docs,
    reason = "generated constants are documented in build.rs"
)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
